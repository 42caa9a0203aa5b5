//! Routes for signing in and the caller's own account: first-run setup, login, logout,
//! profile, password, sessions and API tokens.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Authed, Body};
use crate::domain::{SessionId, TokenId};
use crate::http::{ClientOrigin, Id, session_clear_cookie, session_set_cookie};
use crate::ops::auth::{LoggedIn, LoginInput, PasswordChange, PasswordChanged, SessionView};
use crate::ops::mfa::{Challenge, CodeInput, SignIn};
use crate::ops::setup::SetupInput;
use crate::ops::tokens::{CreatedToken, NewToken, TokenView};
use crate::ops::users::{MeView, ProfilePatch, UserView};
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct LoginResult {
    pub user: UserView,
    /// Send as `X-CSRF-Token` with every state-changing request made with the cookie.
    pub csrf_token: String,
    pub expires_at: Timestamp,
    /// After setting up two-step sign-in only: one-time recovery codes, shown this once.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recovery_codes: Vec<String>,
}

/// Creates the first platform administrator with the token from the setup link.
#[utoipa::path(post, path = "/setup", tag = "auth", request_body = SetupInput,
    responses((status = 201, body = UserView), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn setup(
    State(s): State<AppState>,
    ClientOrigin(o): ClientOrigin,
    Body(input): Body<SetupInput>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    let user = s.ops.complete_setup(input, &o).await?;
    Ok((StatusCode::CREATED, Json(UserView::from(&user))))
}

/// Signs in with e-mail and password; sets the session cookie. An account with two-step
/// sign-in (or one that must set it up) gets 202 and a pending sign-in instead, which
/// `POST /auth/login/code` finishes.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginInput,
    responses((status = 200, body = LoginResult), (status = 202, body = Challenge),
        (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn login(
    State(s): State<AppState>,
    ClientOrigin(o): ClientOrigin,
    Body(input): Body<LoginInput>,
) -> ApiResult<Response> {
    match s.ops.login(input, &o).await? {
        SignIn::Done(done) => Ok(signed_in(&s, &done, Vec::new())),
        SignIn::SecondFactor(c) => Ok((StatusCode::ACCEPTED, Json(c)).into_response()),
    }
}

/// Finishes a pending sign-in with a code from the authenticator app or a recovery code
/// (for an enrolment, the first code of the new secret: the answer then holds the recovery
/// codes, shown once). Wrong codes are throttled like passwords.
#[utoipa::path(post, path = "/auth/login/code", tag = "auth", request_body = CodeInput,
    responses((status = 200, body = LoginResult), (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn login_code(
    State(s): State<AppState>,
    ClientOrigin(o): ClientOrigin,
    Body(input): Body<CodeInput>,
) -> ApiResult<Response> {
    let done = s.ops.complete_second_factor(input, &o).await?;
    Ok(signed_in(&s, &done.logged_in, done.recovery_codes))
}

fn signed_in(s: &AppState, done: &LoggedIn, recovery_codes: Vec<String>) -> Response {
    let max_age = s.ops.settings.session_absolute_timeout.as_secs();
    let expires_at = crate::ops::plus(done.session.created_at, s.ops.settings.session_idle_timeout);
    let mut res = Json(LoginResult {
        user: UserView::from(&done.user),
        csrf_token: done.session.csrf_token.clone(),
        expires_at,
        recovery_codes,
    })
    .into_response();
    if let Some(c) = session_set_cookie(s, &done.secret, max_age) {
        res.headers_mut().insert(header::SET_COOKIE, c);
    }
    res
}

/// Ends the current session and clears the cookie. With an API token there is no session:
/// it answers 204 and the token stays valid (`DELETE /me/tokens/{id}` revokes it).
#[utoipa::path(post, path = "/auth/logout", tag = "auth",
    responses((status = 204), (status = 401, body = ErrorBody)))]
pub async fn logout(State(s): State<AppState>, Authed(a): Authed) -> ApiResult<Response> {
    s.ops.logout(&a)?;
    let mut res = StatusCode::NO_CONTENT.into_response();
    if let Some(c) = session_clear_cookie(&s) {
        res.headers_mut().insert(header::SET_COOKIE, c);
    }
    Ok(res)
}

/// The caller and their organizations.
#[utoipa::path(get, path = "/me", tag = "account", responses((status = 200, body = MeView)))]
pub async fn me(State(s): State<AppState>, Authed(a): Authed) -> ApiResult<Json<MeView>> {
    Ok(Json(s.ops.me(&a)?))
}

/// Changes the caller's display name.
#[utoipa::path(patch, path = "/me", tag = "account", request_body = ProfilePatch,
    responses((status = 200, body = UserView), (status = 422, body = ErrorBody)))]
pub async fn update_me(
    State(s): State<AppState>,
    Authed(a): Authed,
    Body(input): Body<ProfilePatch>,
) -> ApiResult<Json<UserView>> {
    Ok(Json(s.ops.update_profile(&a, input)?))
}

/// Changes the caller's password; their other sessions end and all their API tokens are
/// revoked (the answer says how many). Wrong current passwords are throttled like sign-in.
#[utoipa::path(post, path = "/me/password", tag = "account", request_body = PasswordChange,
    responses((status = 200, body = PasswordChanged), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn change_password(
    State(s): State<AppState>,
    Authed(a): Authed,
    Body(input): Body<PasswordChange>,
) -> ApiResult<Json<PasswordChanged>> {
    Ok(Json(s.ops.change_password(&a, input).await?))
}

/// The caller's sessions.
#[utoipa::path(get, path = "/me/sessions", tag = "account", responses((status = 200, body = [SessionView])))]
pub async fn list_sessions(
    State(s): State<AppState>,
    Authed(a): Authed,
) -> ApiResult<Json<Vec<SessionView>>> {
    Ok(Json(s.ops.list_sessions(&a)?))
}

/// Ends one of the caller's sessions.
#[utoipa::path(delete, path = "/me/sessions/{id}", tag = "account",
    params(("id" = String, Path, description = "session id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn revoke_session(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id(id): Id<SessionId>,
) -> ApiResult<StatusCode> {
    s.ops.revoke_session(&a, id)?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's API tokens (never their secrets).
#[utoipa::path(get, path = "/me/tokens", tag = "account", responses((status = 200, body = [TokenView])))]
pub async fn list_tokens(
    State(s): State<AppState>,
    Authed(a): Authed,
) -> ApiResult<Json<Vec<TokenView>>> {
    Ok(Json(s.ops.list_tokens(&a)?))
}

/// Creates an API token; its secret is in this response only. Needs the caller's current
/// password (throttled like sign-in) and a session: an API token cannot create tokens (403).
#[utoipa::path(post, path = "/me/tokens", tag = "account", request_body = NewToken,
    responses((status = 201, body = CreatedToken), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn create_token(
    State(s): State<AppState>,
    Authed(a): Authed,
    Body(input): Body<NewToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.ops.create_token(&a, input).await?),
    ))
}

/// Revokes one of the caller's API tokens.
#[utoipa::path(delete, path = "/me/tokens/{id}", tag = "account",
    params(("id" = String, Path, description = "token id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn revoke_token(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id(id): Id<TokenId>,
) -> ApiResult<StatusCode> {
    s.ops.revoke_token(&a, id)?;
    Ok(StatusCode::NO_CONTENT)
}

#[allow(dead_code)]
fn _assert_error_type(_: ApiError) {}
