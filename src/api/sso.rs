//! Identity providers for single sign-on (platform administrators): those of the config file
//! are listed read-only; the others are added, changed and removed here. The client secret
//! is write-only: no response carries it.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::error::{ApiResult, ErrorBody};
use super::extract::{Authed, Body};
use crate::http::Id;
use crate::ops::sso_admin::{NewSsoProvider, SsoProviderSettings, SsoProviderView};
use crate::state::AppState;

/// Every identity provider: the config file's (read-only) and those added here.
#[utoipa::path(get, path = "/sso/providers", tag = "sso",
    responses((status = 200, body = [SsoProviderView]), (status = 403, body = ErrorBody)))]
pub async fn list_providers(
    State(s): State<AppState>,
    Authed(a): Authed,
) -> ApiResult<Json<Vec<SsoProviderView>>> {
    Ok(Json(s.ops.list_sso_providers(&a)?))
}

/// Adds an identity provider once its issuer's discovery document was read (an unreachable
/// issuer or a bad document is a 422 on `issuer`); its button is on the sign-in page at once.
#[utoipa::path(post, path = "/sso/providers", tag = "sso", request_body = NewSsoProvider,
    responses((status = 201, body = SsoProviderView), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn create_provider(
    State(s): State<AppState>,
    Authed(a): Authed,
    Body(input): Body<NewSsoProvider>,
) -> ApiResult<(StatusCode, Json<SsoProviderView>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.ops.create_sso_provider(&a, input).await?),
    ))
}

#[utoipa::path(get, path = "/sso/providers/{provider}", tag = "sso",
    params(("provider" = String, Path, description = "provider id")),
    responses((status = 200, body = SsoProviderView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_provider(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id(id): Id<String>,
) -> ApiResult<Json<SsoProviderView>> {
    Ok(Json(s.ops.get_sso_provider(&a, &id)?))
}

/// Replaces a provider's settings (not the config file's: 409); its issuer is asked again.
/// Leaving `client_secret` out keeps the stored one.
#[utoipa::path(put, path = "/sso/providers/{provider}", tag = "sso", request_body = SsoProviderSettings,
    params(("provider" = String, Path, description = "provider id")),
    responses((status = 200, body = SsoProviderView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn update_provider(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id(id): Id<String>,
    Body(input): Body<SsoProviderSettings>,
) -> ApiResult<Json<SsoProviderView>> {
    Ok(Json(s.ops.update_sso_provider(&a, &id, input).await?))
}

/// Removes a provider (not the config file's: 409); its button goes at once.
#[utoipa::path(delete, path = "/sso/providers/{provider}", tag = "sso",
    params(("provider" = String, Path, description = "provider id")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_provider(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id(id): Id<String>,
) -> ApiResult<StatusCode> {
    s.ops.delete_sso_provider(&a, &id)?;
    Ok(StatusCode::NO_CONTENT)
}
