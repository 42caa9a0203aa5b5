//! Routes for two-step sign-in on the caller's account (status, set-up, recovery codes,
//! turning it off) and an administrator's reset. The sign-in's second step is
//! `auth::login_code`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::error::{ApiResult, ErrorBody};
use super::extract::{Authed, Body};
use crate::domain::UserId;
use crate::http::Id;
use crate::ops::mfa::{ConfirmCode, Enrolment, MfaStatus, PasswordConfirm, RecoveryCodes};
use crate::state::AppState;

/// The caller's two-step sign-in: on or off, whether it is required, recovery codes left.
#[utoipa::path(get, path = "/me/mfa", tag = "account", responses((status = 200, body = MfaStatus)))]
pub async fn status(State(s): State<AppState>, Authed(a): Authed) -> ApiResult<Json<MfaStatus>> {
    Ok(Json(s.ops.mfa_status(&a)?))
}

/// Starts setting up two-step sign-in: a new TOTP secret to add to an authenticator app,
/// active once `POST /me/mfa/totp/confirm` gets one of its codes. Needs a session and the
/// current password (throttled like sign-in).
#[utoipa::path(post, path = "/me/mfa/totp", tag = "account", request_body = PasswordConfirm,
    responses((status = 201, body = Enrolment), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn start(
    State(s): State<AppState>,
    Authed(a): Authed,
    Body(input): Body<PasswordConfirm>,
) -> ApiResult<(StatusCode, Json<Enrolment>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.ops.start_mfa_enrolment(&a, input).await?),
    ))
}

/// Turns two-step sign-in on with a code of the new secret; the recovery codes, shown once.
#[utoipa::path(post, path = "/me/mfa/totp/confirm", tag = "account", request_body = ConfirmCode,
    responses((status = 200, body = RecoveryCodes), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn confirm(
    State(s): State<AppState>,
    Authed(a): Authed,
    Body(input): Body<ConfirmCode>,
) -> ApiResult<Json<RecoveryCodes>> {
    Ok(Json(s.ops.confirm_mfa_enrolment(&a, input)?))
}

/// Replaces the caller's recovery codes; the old ones stop working.
#[utoipa::path(post, path = "/me/mfa/recovery-codes", tag = "account", request_body = PasswordConfirm,
    responses((status = 200, body = RecoveryCodes), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn recovery_codes(
    State(s): State<AppState>,
    Authed(a): Authed,
    Body(input): Body<PasswordConfirm>,
) -> ApiResult<Json<RecoveryCodes>> {
    Ok(Json(s.ops.regenerate_recovery_codes(&a, input).await?))
}

/// Turns the caller's two-step sign-in off (refused, 409, when `[mfa] require` applies).
#[utoipa::path(post, path = "/me/mfa/disable", tag = "account", request_body = PasswordConfirm,
    responses((status = 204), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn disable(
    State(s): State<AppState>,
    Authed(a): Authed,
    Body(input): Body<PasswordConfirm>,
) -> ApiResult<StatusCode> {
    s.ops.disable_mfa(&a, input).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a user's two-step sign-in (platform administrators; audited), for a lost phone.
#[utoipa::path(delete, path = "/users/{user}/mfa", tag = "users",
    params(("user" = String, Path, description = "user id")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn reset(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id(id): Id<UserId>,
) -> ApiResult<StatusCode> {
    s.ops.reset_mfa(&a, id)?;
    Ok(StatusCode::NO_CONTENT)
}
