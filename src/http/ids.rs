//! Typed ids in paths: `Id<OrgId>`, `Id<(WorkspaceId, UserId)>`, `Id<(WorkspaceId, String)>`
//! for any mix of id types and plain segments. An id that does not parse names nothing, so
//! it is a 404 in the serving surface's shape, before the handler runs.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::response::Response;
use serde::de::DeserializeOwned;

use super::{Refusal, refuse};

/// The path's parameters, parsed into their types.
pub struct Id<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Id<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(Id(v)),
            Err(e) => Err(refuse(parts, Refusal::NotFound(e.body_text()))),
        }
    }
}
