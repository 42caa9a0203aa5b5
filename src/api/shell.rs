//! Routes for signing in from a terminal (`kaas login`): a password exchanged for an API
//! token, and the OAuth 2.0 device authorization grant (RFC 8628). The device endpoints take
//! form bodies and answer the token endpoint's refusals in OAuth's own error shape
//! (`{"error":"authorization_pending",...}`), as device-flow clients expect.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::Body;
use crate::http::ClientOrigin;
use crate::ops::shell_login::{DeviceAuthorization, DevicePoll, PasswordLogin, ShellToken};
use crate::state::AppState;

/// The grant type of a device-code poll (RFC 8628 §3.4).
pub const DEVICE_GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Exchanges an e-mail address and password for an API token for a terminal (`kaas login`).
/// Throttled and audited like every sign-in; the token is listed with the user's other API
/// tokens and revoked like them.
#[utoipa::path(post, path = "/auth/token", tag = "auth", request_body = PasswordLogin,
    responses((status = 200, body = ShellToken), (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn password_token(
    State(s): State<AppState>,
    ClientOrigin(o): ClientOrigin,
    Body(input): Body<PasswordLogin>,
) -> ApiResult<Json<ShellToken>> {
    Ok(Json(s.ops.password_login_token(input, &o).await?))
}

/// A device authorization request (RFC 8628 §3.1), as a form.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DeviceRequest {
    /// Accepted and ignored: kaas has one public client, its own shell.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Accepted and ignored.
    #[serde(default)]
    pub scope: Option<String>,
    /// The token's name in the user's token list, e.g. "kaas login on laptop".
    #[serde(default)]
    pub name: Option<String>,
}

fn form<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, String> {
    serde_urlencoded::from_bytes(body).map_err(|e| format!("the form is incomplete: {e}"))
}

/// Starts a device sign-in: the terminal shows `user_code` and `verification_uri`, a person
/// signed in to the console approves it there, and the terminal polls
/// `/auth/device/token` with `device_code`.
#[utoipa::path(post, path = "/auth/device", tag = "auth",
    request_body(content = DeviceRequest, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = DeviceAuthorization), (status = 400, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn device_authorization(
    State(s): State<AppState>,
    ClientOrigin(o): ClientOrigin,
    body: Bytes,
) -> ApiResult<Json<DeviceAuthorization>> {
    let req: DeviceRequest =
        form(&body).map_err(|m| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", m))?;
    Ok(Json(s.ops.start_device_grant(
        req.name,
        &s.public_url,
        &o,
    )?))
}

/// A device token request (RFC 8628 §3.4), as a form.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DeviceTokenRequest {
    /// `urn:ietf:params:oauth:grant-type:device_code`.
    pub grant_type: String,
    pub device_code: String,
    #[serde(default)]
    pub client_id: Option<String>,
}

/// An OAuth 2.0 error (RFC 6749 §5.2, RFC 8628 §3.5).
#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthError {
    /// `authorization_pending`, `slow_down`, `access_denied`, `expired_token`,
    /// `invalid_request` or `unsupported_grant_type`.
    pub error: String,
    pub error_description: String,
}

fn oauth_error(code: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(OAuthError {
            error: code.into(),
            error_description: description.into(),
        }),
    )
        .into_response()
}

/// Polls a device sign-in: the token once approved, otherwise an OAuth error saying to keep
/// polling (`authorization_pending`, `slow_down`) or to stop (`access_denied`,
/// `expired_token`).
#[utoipa::path(post, path = "/auth/device/token", tag = "auth",
    request_body(content = DeviceTokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = ShellToken), (status = 400, body = OAuthError),
        (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn device_token(
    State(s): State<AppState>,
    ClientOrigin(o): ClientOrigin,
    body: Bytes,
) -> ApiResult<Response> {
    let req: DeviceTokenRequest = match form(&body) {
        Ok(r) => r,
        Err(m) => return Ok(oauth_error("invalid_request", &m)),
    };
    if req.grant_type != DEVICE_GRANT_TYPE {
        return Ok(oauth_error(
            "unsupported_grant_type",
            &format!("grant_type must be {DEVICE_GRANT_TYPE}"),
        ));
    }
    Ok(match s.ops.poll_device_grant(&req.device_code, &o)? {
        DevicePoll::Token(t) => Json(t).into_response(),
        DevicePoll::Pending => oauth_error(
            "authorization_pending",
            "waiting for someone signed in to the console to approve the code",
        ),
        DevicePoll::SlowDown => oauth_error(
            "slow_down",
            "polling too often; wait five seconds more between polls",
        ),
        DevicePoll::Denied => oauth_error("access_denied", "the sign-in was denied in the console"),
        DevicePoll::Expired => oauth_error(
            "expired_token",
            "the code expired or was already used; start again",
        ),
    })
}
