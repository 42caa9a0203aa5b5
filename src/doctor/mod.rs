//! `kaas doctor`: checks that this box can run kaas and prints, for each check, pass / warn /
//! fail with what to do about it. The exit code is the worst result (0 pass, 1 warn, 2 fail).
//!
//! Invariants:
//! - Every check is read-only on the host except the PodTolerationRestriction probe, which
//!   keeps one labelled namespace (`kaas-doctor`) and sends a `dryRun=All` pod create to it:
//!   nothing is ever scheduled.
//! - A check says only what it saw. "K3K controller" passes on positive evidence (an available
//!   k3k Deployment, or Clusters it has given a status), fails on evidence of absence (a
//!   Cluster stuck on K3K's finalizer), and otherwise warns that it cannot tell.
//! - When the host cannot be reached, the host checks report that instead of guessing.

//!
//! The checks: [`host`] (the K3s API server, K3K, admission, storage), [`network`]
//! (NetworkPolicy enforcement) and [`machine`] (this box: external address and certificate,
//! data directory, clock).

mod host;
mod machine;
mod network;

use serde::Serialize;

use crate::config::Config;
use crate::reconcile::connection::{HostConnection, locate_kubeconfig};
use host::{
    default_storage_class, k3k_controller, k3k_crds, pod_toleration_restriction, version_check,
};
use machine::{clock, data_dir, external_address};

pub use crate::reconcile::connection::PROBE_NAMESPACE;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
    /// The exit code for a worst result of `self`.
    pub fn exit_code(self) -> u8 {
        match self {
            Status::Pass => 0,
            Status::Warn => 1,
            Status::Fail => 2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable short name, e.g. `k3k-crds`.
    pub name: &'static str,
    pub status: Status,
    /// What was seen.
    pub detail: String,
    /// What to do about a warn or fail.
    pub fix: Option<String>,
}

fn pass(name: &'static str, detail: impl Into<String>) -> Check {
    Check {
        name,
        status: Status::Pass,
        detail: detail.into(),
        fix: None,
    }
}

fn warn(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        name,
        status: Status::Warn,
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}

fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        name,
        status: Status::Fail,
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    pub fn worst(&self) -> Status {
        self.checks
            .iter()
            .map(|c| c.status)
            .max()
            .unwrap_or(Status::Pass)
    }

    pub fn get(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// The report as the operator reads it.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            out.push_str(&format!(
                "[{}] {:<26} {}\n",
                c.status.as_str(),
                c.name,
                c.detail
            ));
            if let Some(fix) = &c.fix {
                out.push_str(&format!("       {:<26} fix: {fix}\n", ""));
            }
        }
        let count = |s| self.checks.iter().filter(|c| c.status == s).count();
        out.push_str(&format!(
            "{} passed, {} warnings, {} failed\n",
            count(Status::Pass),
            count(Status::Warn),
            count(Status::Fail)
        ));
        out
    }
}

/// Runs every check.
pub async fn run(cfg: &Config) -> Report {
    let mut checks = Vec::new();
    let kubeconfig = locate_kubeconfig(
        cfg.host.kubeconfig.clone(),
        std::env::var("KUBECONFIG").ok(),
    );
    let client = HostConnection::new(kubeconfig.clone()).build_client().await;
    let host_fix = "start K3s (systemctl start k3s) and point host.kubeconfig at a kubeconfig \
                    for it (install.sh writes /etc/kaas/host.kubeconfig)";
    let client = match client {
        Ok(client) => match client.apiserver_version().await {
            Ok(info) => {
                checks.push(version_check(&info.git_version, kubeconfig.as_deref()));
                Some(client)
            }
            Err(e) => {
                checks.push(fail(
                    "host",
                    format!("the host API server does not answer: {}", one_line(&e)),
                    host_fix,
                ));
                None
            }
        },
        Err(e) => {
            checks.push(fail("host", e, host_fix));
            None
        }
    };
    match &client {
        Some(client) => {
            let crds = k3k_crds(client).await;
            let crds_ok = crds.status == Status::Pass;
            checks.push(crds);
            checks.push(if crds_ok {
                k3k_controller(client).await
            } else {
                fail(
                    "k3k-controller",
                    "not checked: the K3K CRDs are missing",
                    "install K3K first (see k3k-crds)",
                )
            });
            checks.push(pod_toleration_restriction(client).await);
            checks.push(network::network_policy(client).await);
            checks.push(default_storage_class(client).await);
        }
        None => {
            for name in [
                "k3k-crds",
                "k3k-controller",
                "pod-toleration-restriction",
                "network-policy",
                "default-storage-class",
            ] {
                checks.push(warn(
                    name,
                    "not checked: the host cannot be reached",
                    "fix the host connection first",
                ));
            }
        }
    }
    checks.push(external_address(cfg));
    checks.push(data_dir(&cfg.data.dir));
    checks.push(clock(client.as_ref()).await);
    Report { checks }
}

fn one_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_result_sets_the_exit_code() {
        let r = Report {
            checks: vec![pass("a", "ok"), warn("b", "hm", "do x")],
        };
        assert_eq!(r.worst().exit_code(), 1);
        let text = r.render();
        assert!(
            text.contains("[warn] b") && text.contains("fix: do x"),
            "{text}"
        );
        assert_eq!(Report { checks: vec![] }.worst(), Status::Pass);
    }
}
