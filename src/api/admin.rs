//! Routes for platform administration (users, plans) and the audit log.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde::Deserialize;
use utoipa::IntoParams;

use super::billing::Format;
use super::error::{ApiResult, ErrorBody};
use super::extract::{Authed, Body, Q};
use super::{ListParams, bad_cursor};
use crate::domain::audit::{AuditEntry, ChainReport};
use crate::domain::{AuditId, OrgId, Plan, UserId};
use crate::http::Id;
use crate::ops::Page;
use crate::ops::audit::{AuditFilter, ExportFormat};
use crate::ops::auth::PasswordChanged;
use crate::ops::host_status::HostStatus;
use crate::ops::users::{NewUser, PasswordReset, UserPatch, UserView};
use crate::state::AppState;

/// All users (platform administrators).
#[utoipa::path(get, path = "/users", tag = "users", params(ListParams),
    responses((status = 200, body = Page<UserView>), (status = 403, body = ErrorBody)))]
pub async fn list_users(
    State(s): State<AppState>,
    Authed(a): Authed,
    Q(q): Q<ListParams>,
) -> ApiResult<Json<Page<UserView>>> {
    let after = match q.cursor.as_deref() {
        Some(c) => Some(c.parse::<UserId>().map_err(|e| bad_cursor(e.to_string()))?),
        None => None,
    };
    Ok(Json(s.ops.list_users(&a, after, q.limit())?))
}

/// Creates a user (platform administrators).
#[utoipa::path(post, path = "/users", tag = "users", request_body = NewUser,
    responses((status = 201, body = UserView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_user(
    State(s): State<AppState>,
    Authed(a): Authed,
    Body(input): Body<NewUser>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.ops.create_user(&a, input).await?),
    ))
}

#[utoipa::path(get, path = "/users/{user}", tag = "users", params(("user" = String, Path, description = "user id")),
    responses((status = 200, body = UserView), (status = 404, body = ErrorBody)))]
pub async fn get_user(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id(id): Id<UserId>,
) -> ApiResult<Json<UserView>> {
    Ok(Json(s.ops.get_user(&a, id)?))
}

/// Renames, disables or (un)makes a platform administrator.
#[utoipa::path(patch, path = "/users/{user}", tag = "users", request_body = UserPatch,
    params(("user" = String, Path, description = "user id")),
    responses((status = 200, body = UserView), (status = 409, body = ErrorBody)))]
pub async fn update_user(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id(id): Id<UserId>,
    Body(input): Body<UserPatch>,
) -> ApiResult<Json<UserView>> {
    Ok(Json(s.ops.update_user(&a, id, input)?))
}

/// Sets a new password for a user, ends their sessions and revokes their API tokens; the
/// answer says how many of each.
#[utoipa::path(post, path = "/users/{user}/password", tag = "users", request_body = PasswordReset,
    params(("user" = String, Path, description = "user id")),
    responses((status = 200, body = PasswordChanged), (status = 422, body = ErrorBody)))]
pub async fn reset_password(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id(id): Id<UserId>,
    Body(input): Body<PasswordReset>,
) -> ApiResult<Json<PasswordChanged>> {
    Ok(Json(s.ops.reset_password(&a, id, input).await?))
}

/// Plans that can be chosen (administrators also see retired ones).
#[utoipa::path(get, path = "/plans", tag = "plans", responses((status = 200, body = [Plan])))]
pub async fn list_plans(
    State(s): State<AppState>,
    Authed(a): Authed,
) -> ApiResult<Json<Vec<Plan>>> {
    Ok(Json(s.ops.list_plans(&a)?))
}

#[utoipa::path(get, path = "/plans/{plan}", tag = "plans", params(("plan" = String, Path, description = "plan id")),
    responses((status = 200, body = Plan), (status = 404, body = ErrorBody)))]
pub async fn get_plan(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id(id): Id<String>,
) -> ApiResult<Json<Plan>> {
    Ok(Json(s.ops.get_plan(&a, &id)?))
}

#[utoipa::path(post, path = "/plans", tag = "plans", request_body = Plan,
    responses((status = 201, body = Plan), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_plan(
    State(s): State<AppState>,
    Authed(a): Authed,
    Body(plan): Body<Plan>,
) -> ApiResult<(StatusCode, Json<Plan>)> {
    Ok((StatusCode::CREATED, Json(s.ops.create_plan(&a, plan)?)))
}

/// Replaces a plan; workspaces on it are updated. The K3K mode never changes, and the server
/// storage (`storage_gib`) not while workspaces use the plan (422 on the field).
#[utoipa::path(put, path = "/plans/{plan}", tag = "plans", request_body = Plan,
    params(("plan" = String, Path, description = "plan id")),
    responses((status = 200, body = Plan), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_plan(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id(id): Id<String>,
    Body(plan): Body<Plan>,
) -> ApiResult<Json<Plan>> {
    Ok(Json(s.ops.update_plan(&a, &id, plan)?))
}

#[utoipa::path(delete, path = "/plans/{plan}", tag = "plans", params(("plan" = String, Path, description = "plan id")),
    responses((status = 204), (status = 409, body = ErrorBody)))]
pub async fn delete_plan(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id(id): Id<String>,
) -> ApiResult<StatusCode> {
    s.ops.delete_plan(&a, &id)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only this organization's events (required unless a platform administrator).
    pub org: Option<OrgId>,
    /// Only events by this user.
    pub actor: Option<UserId>,
    /// Only actions starting with this, e.g. `workspace.` or `auth.login`.
    pub action: Option<String>,
    /// From this time (RFC 3339), inclusive.
    pub since: Option<Timestamp>,
    /// Until this time (RFC 3339), exclusive.
    pub until: Option<Timestamp>,
    /// From a previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Rows per page: default 50, from 1 to 200.
    #[serde(default, deserialize_with = "super::page_limit")]
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<usize>,
}

/// The audit log, newest first; each event carries its place in the hash chain.
#[utoipa::path(get, path = "/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = Page<AuditEntry>), (status = 403, body = ErrorBody)))]
pub async fn list_audit(
    State(s): State<AppState>,
    Authed(a): Authed,
    Q(q): Q<AuditQuery>,
) -> ApiResult<Json<Page<AuditEntry>>> {
    let before = match q.cursor.as_deref() {
        Some(c) => Some(
            c.parse::<AuditId>()
                .map_err(|e| bad_cursor(e.to_string()))?,
        ),
        None => None,
    };
    let filter = AuditFilter {
        org: q.org,
        actor: q.actor,
        action_prefix: q.action,
        since: q.since,
        until: q.until,
    };
    let limit = ListParams {
        cursor: None,
        limit: q.limit,
    }
    .limit();
    Ok(Json(s.ops.list_audit(&a, filter, before, limit)?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditExportQuery {
    /// Only this organization's events (required unless a platform administrator).
    pub org: Option<OrgId>,
    /// Only events by this user.
    pub actor: Option<UserId>,
    /// Only actions starting with this, e.g. `workspace.` or `auth.login`.
    pub action: Option<String>,
    /// From this time (RFC 3339), inclusive.
    pub since: Option<Timestamp>,
    /// Until this time (RFC 3339), exclusive.
    pub until: Option<Timestamp>,
    /// `json` (default) or `csv`.
    #[param(inline)]
    pub format: Option<Format>,
}

/// Every matching event (newest first, at most 100,000) with its chain number, the previous
/// record's hash and its own, as JSON or CSV: for an organization's admins with `org`, for
/// platform administrators all.
#[utoipa::path(get, path = "/audit/export", tag = "audit", params(AuditExportQuery),
    responses((status = 200, description = "JSON (an array of events) or CSV (one row per event, a header row first)",
            content((Vec<AuditEntry> = "application/json"), (String = "text/csv"))),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn export_audit(
    State(s): State<AppState>,
    Authed(a): Authed,
    Q(q): Q<AuditExportQuery>,
) -> ApiResult<Response> {
    let filter = AuditFilter {
        org: q.org,
        actor: q.actor,
        action_prefix: q.action,
        since: q.since,
        until: q.until,
    };
    let format = match q.format.unwrap_or_default() {
        Format::Json => ExportFormat::Json,
        Format::Csv => ExportFormat::Csv,
    };
    let export = s.ops.export_audit(&a, filter, format)?;
    let mut res = export.body.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(export.content_type),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{}\"", export.filename)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

/// Walks the audit log's hash chain (platform administrators): whether every record is as
/// written, none removed or added, and if not, the first record where the chain breaks.
#[utoipa::path(get, path = "/audit/verify", tag = "audit",
    responses((status = 200, body = ChainReport), (status = 403, body = ErrorBody)))]
pub async fn verify_audit(
    State(s): State<AppState>,
    Authed(a): Authed,
) -> ApiResult<Json<ChainReport>> {
    Ok(Json(s.ops.verify_audit(&a)?))
}

/// The host cluster connection: reachable, version, K3K CRDs, last error (platform administrators).
#[utoipa::path(get, path = "/host", tag = "users", responses((status = 200, body = HostStatus), (status = 403, body = ErrorBody)))]
pub async fn host_status(
    State(s): State<AppState>,
    Authed(a): Authed,
) -> ApiResult<Json<HostStatus>> {
    Ok(Json(s.ops.host_status(&a)?.unwrap_or_default()))
}
