//! kaas as the OIDC issuer: the discovery document and the JWKS (open, at the root of the
//! public URL, where an OIDC issuer's are: the virtual clusters' kube-apiservers fetch them),
//! and the token a signed-in workspace member gets for their virtual cluster.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::error::{ApiResult, ErrorBody};
use super::extract::Authed;
use crate::domain::WorkspaceId;
use crate::http::Id;
use crate::ops::issuer::ClusterToken;
use crate::state::AppState;

/// NB: not cacheable. The Kubernetes authenticator (go-oidc) refetches the JWKS for a token
/// with an unknown key id only once its cached copy has expired: with `max-age=60`, tokens of
/// a freshly rotated key were refused for up to half a minute (seen on realhost).
const KEYS_CACHE: &str = "no-store";

/// `GET /.well-known/openid-configuration`.
pub async fn discovery(State(s): State<AppState>) -> Response {
    let mut r = match s.ops.issuer() {
        Ok(iss) => Json(crate::domain::oidc::discovery(iss.url())).into_response(),
        Err(e) => super::error::ApiError::from(e).into_response(),
    };
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(KEYS_CACHE));
    r
}

/// `GET /oidc/jwks`: every key that signs or signed a token still valid.
pub async fn jwks(State(s): State<AppState>) -> Response {
    match s.ops.issuer() {
        Ok(iss) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static(KEYS_CACHE)),
            ],
            iss.jwks().as_ref().clone(),
        )
            .into_response(),
        Err(e) => super::error::ApiError::from(e).into_response(),
    }
}

/// A short-lived token for the caller's own kubectl access to the workspace's virtual
/// cluster (an OIDC ID token kaas signs; its audience is this workspace only). Minted only
/// for someone with a role in the workspace whose account is enabled; each one is audited.
/// `kaas credential` calls this for kubectl.
#[utoipa::path(post, path = "/workspaces/{ws}/token", tag = "workspaces",
    params(("ws" = String, Path, description = "workspace id")),
    responses((status = 200, body = ClusterToken), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn issue_token(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id(ws): Id<WorkspaceId>,
) -> ApiResult<Json<ClusterToken>> {
    Ok(Json(s.ops.issue_cluster_token(&a, ws)?))
}
