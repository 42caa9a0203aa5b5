//! The HTTP plumbing the JSON API and the console share: cookies ([`cookie`]), where a
//! request came from ([`origin`]), typed ids in paths ([`Id`]), CSRF ([`csrf`]) and safe redirect targets ([`redirect`]). Nothing
//! here knows what an error looks like on either surface: an extractor that refuses a
//! request describes why as a [`Refusal`], and each surface's router says once, with a
//! [`Surface`] layer, how a refusal is shown there (the API's JSON error body, the console's
//! HTML page). The CSRF checks run inside each surface's authenticating extractors (the
//! token travels with that surface's credentials: a header, a form field), which turn a
//! [`CsrfFault`] into their own 403.

pub mod cookie;
pub mod csrf;
pub mod ids;
pub mod limits;
pub mod origin;
pub mod redirect;

use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

pub use cookie::{read_cookie, session_clear_cookie, session_set_cookie};
pub use csrf::CsrfFault;
pub use ids::Id;
pub use origin::{ClientOrigin, TrustedProxies, origin};

/// Why a shared extractor refused a request, before any handler ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The path names nothing this server has, e.g. a malformed id (404). The detail says
    /// which part of the path, for the API's message.
    NotFound(String),
}

/// How one surface shows a [`Refusal`]. Installed on a router with
/// `.layer(axum::Extension(Surface(render)))`; the shared extractors find it in the request.
#[derive(Clone, Copy)]
pub struct Surface(pub fn(Refusal) -> Response);

/// The response for `r` in the shape of the surface serving `parts`. (A router without a
/// [`Surface`] is a wiring mistake; it still answers with the right status.)
pub fn refuse(parts: &Parts, r: Refusal) -> Response {
    match parts.extensions.get::<Surface>() {
        Some(Surface(render)) => render(r),
        None => {
            tracing::error!(?r, "no Surface layer on this route; answering plain text");
            let status = match r {
                Refusal::NotFound(_) => StatusCode::NOT_FOUND,
            };
            status.into_response()
        }
    }
}
