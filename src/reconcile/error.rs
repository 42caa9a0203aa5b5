//! Why a reconcile pass failed, by kind. The kind decides how soon the key is tried again
//! (a refusal that only a person can fix waits long; a conflict, a timeout or a host that is
//! away retries soon) and labels `kaas_reconcile_errors_total`. The message is the one
//! people read (the workspace's `retrying: …`), so every variant carries its words whole:
//! what kaas was doing, the HTTP status and the server's own message.

use std::fmt::Display;
use std::time::Duration;

use crate::ops::OpsError;

/// The counter of failed passes, labelled by [`Error::metric_label`].
pub const ERRORS_TOTAL: &str = "kaas_reconcile_errors_total";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The host refused kaas's credentials (401, 403): its RBAC or kubeconfig needs a
    /// person. Waits long.
    #[error("{0}")]
    Forbidden(String),
    /// The API server or an admission webhook refused an object (400, 422): the same
    /// request fails again until the spec changes. Waits long.
    #[error("{0}")]
    Invalid(String),
    /// kaas's own configuration lacks what the pass needs (`host.external_addresses`).
    /// Waits long.
    #[error("{0}")]
    Misconfigured(String),
    /// Another writer was first (409), or the namespace is being terminated. Retries soon.
    #[error("{0}")]
    Conflict(String),
    /// Something the pass reads is not there yet (404, a Secret K3K has not written).
    /// Retries soon.
    #[error("{0}")]
    NotReady(String),
    /// The host answered with a server error or throttling (5xx, 429), or not at all.
    /// Retries soon.
    #[error("{0}")]
    Unavailable(String),
    /// The pass (or a request in it) took too long. Retries soon.
    #[error("{0}")]
    Timeout(String),
    /// kaas's own database.
    #[error(transparent)]
    Store(#[from] OpsError),
    /// Anything else: a body kaas could not decode, a poisoned lock.
    #[error("{0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every kind, in the order `/metrics` lists them (each is exported from the start, at 0).
pub const KINDS: [&str; 9] = [
    "forbidden",
    "invalid",
    "misconfigured",
    "conflict",
    "not_ready",
    "unavailable",
    "timeout",
    "store",
    "internal",
];

impl Error {
    /// A failed Kubernetes request, in a person's words: `<what kaas was doing>: HTTP <code>:
    /// <the server's message>`, classified by its status.
    pub fn kube(doing: impl Display, e: kube::Error) -> Error {
        let message = format!("{doing}: {}", describe(&e));
        match &e {
            kube::Error::Api(s) => match s.code {
                // NB: a namespace being deleted refuses new objects with a 403; it is a race
                // with the deletion, not a missing permission.
                403 if s.message.contains("being terminated") => Error::Conflict(message),
                401 | 403 => Error::Forbidden(message),
                400 | 422 => Error::Invalid(message),
                404 | 410 => Error::NotReady(message),
                409 => Error::Conflict(message),
                408 | 504 => Error::Timeout(message),
                _ => Error::Unavailable(message),
            },
            kube::Error::SerdeError(_) => Error::Internal(message),
            _ => Error::Unavailable(message),
        }
    }

    /// The `kind` label of `kaas_reconcile_errors_total`.
    /// Another writer was first: the next pass, a moment later, settles it.
    pub fn is_race(&self) -> bool {
        matches!(self, Error::Conflict(_))
    }

    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Forbidden(_) => KINDS[0],
            Error::Invalid(_) => KINDS[1],
            Error::Misconfigured(_) => KINDS[2],
            Error::Conflict(_) => KINDS[3],
            Error::NotReady(_) => KINDS[4],
            Error::Unavailable(_) => KINDS[5],
            Error::Timeout(_) => KINDS[6],
            Error::Store(_) => KINDS[7],
            Error::Internal(_) => KINDS[8],
        }
    }

    /// How long to wait before the `failures`-th retry (1 for the first): what a person must
    /// fix waits `max`; anything else backs off exponentially from 250 ms up to `max`.
    pub fn backoff(&self, failures: u32, max: Duration) -> Duration {
        match self {
            Error::Forbidden(_) | Error::Invalid(_) | Error::Misconfigured(_) => max,
            _ => Duration::from_millis(250u64.saturating_mul(1 << failures.min(12))).min(max),
        }
    }

    /// Counts this error in `/metrics`.
    pub fn count(&self) {
        metrics::counter!(ERRORS_TOTAL, "kind" => self.metric_label()).increment(1);
    }
}

/// Exports every kind's counter at 0, so a dashboard sees the series before the first error.
pub fn register_metrics() {
    metrics::describe_counter!(ERRORS_TOTAL, "Failed reconcile passes, by kind of error");
    for kind in KINDS {
        metrics::counter!(ERRORS_TOTAL, "kind" => kind).increment(0);
    }
}

/// An API error in a person's words: the status code and the server's message.
pub fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("HTTP {}: {}", s.code, s.message),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16, message: &str) -> kube::Error {
        kube::Error::Api(Box::new(
            kube::core::Status::failure(message, "Reason").with_code(code),
        ))
    }

    #[test]
    fn api_errors_are_classified_by_status_and_keep_their_words() {
        let e = Error::kube("applying the namespace", api(403, "no RBAC"));
        assert_eq!(e.metric_label(), "forbidden");
        assert_eq!(e.to_string(), "applying the namespace: HTTP 403: no RBAC");
        let cases = [
            (401, "x", "forbidden"),
            (
                403,
                "unable to create new content in namespace p because it is being terminated",
                "conflict",
            ),
            (422, "x", "invalid"),
            (400, "x", "invalid"),
            (404, "x", "not_ready"),
            (409, "x", "conflict"),
            (504, "x", "timeout"),
            (500, "x", "unavailable"),
            (429, "x", "unavailable"),
        ];
        for (code, message, kind) in cases {
            assert_eq!(
                Error::kube("doing", api(code, message)).metric_label(),
                kind,
                "{code}"
            );
        }
    }

    #[test]
    fn what_a_person_must_fix_waits_long_and_the_rest_backs_off_from_short() {
        let max = Duration::from_secs(60);
        let forbidden = Error::Forbidden("x".into());
        assert_eq!(forbidden.backoff(1, max), max);
        assert_eq!(Error::Misconfigured("x".into()).backoff(1, max), max);
        let busy = Error::Unavailable("x".into());
        assert_eq!(busy.backoff(1, max), Duration::from_millis(500));
        assert_eq!(busy.backoff(2, max), Duration::from_secs(1));
        assert_eq!(busy.backoff(30, max), max);
        assert_eq!(
            Error::Conflict("x".into()).backoff(1, max),
            Duration::from_millis(500)
        );
    }

    #[test]
    fn every_kind_has_its_label_listed() {
        let all = [
            Error::Forbidden(String::new()),
            Error::Invalid(String::new()),
            Error::Misconfigured(String::new()),
            Error::Conflict(String::new()),
            Error::NotReady(String::new()),
            Error::Unavailable(String::new()),
            Error::Timeout(String::new()),
            Error::Store(OpsError::NotFound("workspace")),
            Error::Internal(String::new()),
        ];
        let labels: Vec<&str> = all.iter().map(Error::metric_label).collect();
        assert_eq!(labels, KINDS);
    }
}
