//! The console's one error type and how each failure becomes an HTML page. Internal details
//! never reach the page; each 5xx is logged once, here. (The JSON API has its own in
//! `api::error`.)

use askama::Template;
use askama_web::WebTemplate;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::view::Bare;
use crate::http::Refusal;
use crate::ops::OpsError;

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// No such page, or one the caller may not know exists (404).
    #[error("not found")]
    NotFound,
    /// The caller sees the object but their role does not allow this (403).
    #[error("{0}")]
    Forbidden(String),
    /// A form without this session's CSRF token, or posted from another site (403).
    #[error("the form was not sent from this kaas console")]
    Csrf,
    /// A request no console form would send (400).
    #[error("{0}")]
    BadRequest(String),
    /// A state that forbids the action (409) when no form is there to show it.
    #[error("{0}")]
    Conflict(String),
    /// The host cluster cannot serve this now (503); the message says what to wait for.
    #[error("{0}")]
    Unavailable(String),
    /// Too many attempts (429).
    #[error("too many attempts — try again in {0} seconds")]
    Throttled(u64),
    /// Not signed in: off to the sign-in page, coming back to `next` afterwards (303).
    #[error("sign in first")]
    SignIn { next: Option<String> },
    /// A fault on our side (500); the detail is logged, not shown.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type WebResult<T> = Result<T, WebError>;

impl From<OpsError> for WebError {
    fn from(e: OpsError) -> Self {
        match e {
            OpsError::NotFound(_) => WebError::NotFound,
            OpsError::Forbidden(m) => WebError::Forbidden(m),
            OpsError::Unauthenticated(_) => WebError::SignIn { next: None },
            OpsError::Invalid { message, .. } => WebError::BadRequest(message),
            OpsError::Conflict(m) => WebError::Conflict(m),
            OpsError::Throttled(d) => WebError::Throttled(d.as_secs().max(1)),
            OpsError::Unavailable(m) => WebError::Unavailable(m),
            OpsError::Store(err) => WebError::Internal(err.to_string()),
        }
    }
}

impl From<askama::Error> for WebError {
    fn from(e: askama::Error) -> Self {
        WebError::Internal(format!("template: {e}"))
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub b: Bare,
    pub code: u16,
    pub heading: &'static str,
    pub message: String,
}

/// The sign-in URL that brings the user back to `next` (a local path only).
pub fn login_url(next: Option<&str>) -> String {
    match next.filter(|n| crate::http::redirect::is_local_path(n) && *n != "/") {
        Some(n) => format!(
            "/login?{}",
            form_urlencoded::Serializer::new(String::new())
                .append_pair("next", n)
                .finish()
        ),
        None => "/login".into(),
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, heading, message) = match &self {
            WebError::SignIn { next } => {
                return Redirect::to(&login_url(next.as_deref())).into_response();
            }
            WebError::NotFound => (
                StatusCode::NOT_FOUND,
                "Page not found",
                "There is nothing here, or you do not have access to it. Check the address, \
                 or go back to your dashboard."
                    .to_string(),
            ),
            WebError::Forbidden(m) => (StatusCode::FORBIDDEN, "Not allowed", capitalise(m)),
            WebError::Csrf => (
                StatusCode::FORBIDDEN,
                "This form has expired",
                "The form was not sent from this console session (perhaps you signed in again \
                 in another tab). Go back, reload the page and try again."
                    .to_string(),
            ),
            WebError::BadRequest(m) => (StatusCode::BAD_REQUEST, "Bad request", capitalise(m)),
            WebError::Conflict(m) => (StatusCode::CONFLICT, "That did not work", capitalise(m)),
            WebError::Unavailable(m) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Not available right now",
                capitalise(m),
            ),
            WebError::Throttled(secs) => (
                StatusCode::TOO_MANY_REQUESTS,
                "Slow down",
                try_again_in(*secs),
            ),
            WebError::Internal(detail) => {
                tracing::error!(error = %detail, "console request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "kaas could not complete the request. The error was logged; try again, \
                     and if it persists ask your platform administrator to check the logs."
                        .to_string(),
                )
            }
        };
        let page = ErrorPage {
            b: Bare::new(heading, None),
            code: status.as_u16(),
            heading,
            message,
        };
        let mut res = match page.render() {
            Ok(html) => (status, axum::response::Html(html)).into_response(),
            Err(e) => {
                tracing::error!(error = %e, "could not render the error page");
                (status, heading).into_response()
            }
        };
        if let WebError::Throttled(secs) = self
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        res
    }
}

/// What a throttled person reads: "1 second", not "1 seconds"; waits of a minute or more
/// in (rounded-up) minutes.
pub fn try_again_in(secs: u64) -> String {
    let (n, unit) = if secs < 60 {
        (secs.max(1), "second")
    } else {
        (secs.div_ceil(60), "minute")
    };
    let s = if n == 1 { "" } else { "s" };
    format!("Too many attempts — try again in {n} {unit}{s}.")
}

/// Messages from the use cases start lower-case ("your role does not allow …").
pub fn capitalise(m: &str) -> String {
    let mut c = m.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// How the console shows the shared extractors' refusals (its [`crate::http::Surface`]):
/// a malformed id is a page that does not exist.
pub fn refusal(r: Refusal) -> Response {
    match r {
        Refusal::NotFound(_) => WebError::NotFound.into_response(),
    }
}

/// Any path the console (and the API) does not have.
pub async fn not_found() -> WebError {
    WebError::NotFound
}

#[cfg(test)]
mod tests {
    use super::try_again_in;

    #[test]
    fn waits_read_naturally() {
        let cases = [
            (0, "1 second"),
            (1, "1 second"),
            (32, "32 seconds"),
            (60, "1 minute"),
            (61, "2 minutes"),
            (900, "15 minutes"),
        ];
        for (secs, said) in cases {
            let want = format!("Too many attempts — try again in {said}.");
            assert_eq!(try_again_in(secs), want);
        }
    }
}
