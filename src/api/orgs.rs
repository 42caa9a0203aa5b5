//! Routes for organizations, their members, invitations and limits.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::ListParams;
use super::error::{ApiResult, ErrorBody};
use super::extract::{Authed, Body, MaybeAuthed, Q};
use crate::domain::{InvitationId, OrgId, OrgLimits, UserId};
use crate::http::{ClientOrigin, Id};
use crate::ops::Page;
use crate::ops::cluster_access::RemovedMember;
use crate::ops::invitations::{
    AcceptInvitation, CreatedInvitation, InvitationInfo, InvitationView, NewInvitation,
};
use crate::ops::members::OrgMemberView as MemberView;
use crate::ops::orgs::{NewOrg, OrgPatch, OrgView, RoleChange};
use crate::ops::users::UserView;
use crate::state::AppState;

/// Organizations the caller belongs to (all, for platform administrators).
#[utoipa::path(get, path = "/orgs", tag = "organizations", params(ListParams),
    responses((status = 200, body = Page<OrgView>)))]
pub async fn list_orgs(
    State(s): State<AppState>,
    Authed(a): Authed,
    Q(q): Q<ListParams>,
) -> ApiResult<Json<Page<OrgView>>> {
    Ok(Json(s.ops.list_orgs(&a, q.cursor.as_deref(), q.limit())?))
}

/// Creates an organization; the caller becomes its owner.
#[utoipa::path(post, path = "/orgs", tag = "organizations", request_body = NewOrg,
    responses((status = 201, body = OrgView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_org(
    State(s): State<AppState>,
    Authed(a): Authed,
    Body(input): Body<NewOrg>,
) -> ApiResult<(StatusCode, Json<OrgView>)> {
    Ok((StatusCode::CREATED, Json(s.ops.create_org(&a, input)?)))
}

#[utoipa::path(get, path = "/orgs/{org}", tag = "organizations",
    params(("org" = String, Path, description = "organization id")),
    responses((status = 200, body = OrgView), (status = 404, body = ErrorBody)))]
pub async fn get_org(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id(org): Id<OrgId>,
) -> ApiResult<Json<OrgView>> {
    Ok(Json(s.ops.get_org(&a, org)?))
}

#[utoipa::path(patch, path = "/orgs/{org}", tag = "organizations", request_body = OrgPatch,
    params(("org" = String, Path, description = "organization id")),
    responses((status = 200, body = OrgView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update_org(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id(org): Id<OrgId>,
    Body(input): Body<OrgPatch>,
) -> ApiResult<Json<OrgView>> {
    Ok(Json(s.ops.update_org(&a, org, input)?))
}

/// Deletes an organization that has no workspaces.
#[utoipa::path(delete, path = "/orgs/{org}", tag = "organizations",
    params(("org" = String, Path, description = "organization id")),
    responses((status = 204), (status = 409, body = ErrorBody)))]
pub async fn delete_org(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id(org): Id<OrgId>,
) -> ApiResult<StatusCode> {
    s.ops.delete_org(&a, org)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets the organization's limits (platform administrators).
#[utoipa::path(put, path = "/orgs/{org}/limits", tag = "organizations", request_body = OrgLimits,
    params(("org" = String, Path, description = "organization id")),
    responses((status = 200, body = OrgView), (status = 403, body = ErrorBody)))]
pub async fn set_limits(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id(org): Id<OrgId>,
    Body(input): Body<OrgLimits>,
) -> ApiResult<Json<OrgView>> {
    Ok(Json(s.ops.set_org_limits(&a, org, input)?))
}

#[utoipa::path(get, path = "/orgs/{org}/members", tag = "organizations", params(("org" = String, Path, description = "organization id"), ListParams),
    responses((status = 200, body = Page<MemberView>)))]
pub async fn list_members(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id(org): Id<OrgId>,
    Q(q): Q<ListParams>,
) -> ApiResult<Json<Page<MemberView>>> {
    let after = match q.cursor.as_deref() {
        Some(c) => Some(
            c.parse::<UserId>()
                .map_err(|e| super::bad_cursor(e.to_string()))?,
        ),
        None => None,
    };
    Ok(Json(s.ops.list_members(&a, org, after, q.limit())?))
}

#[utoipa::path(patch, path = "/orgs/{org}/members/{user}", tag = "organizations", request_body = RoleChange,
    params(("org" = String, Path, description = "organization id"), ("user" = String, Path, description = "user id")),
    responses((status = 200, body = MemberView), (status = 409, body = ErrorBody)))]
pub async fn change_member(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id((org, user)): Id<(OrgId, UserId)>,
    Body(input): Body<RoleChange>,
) -> ApiResult<Json<MemberView>> {
    Ok(Json(s.ops.change_member_role(&a, org, user, input)?))
}

/// Removes a member (a member may remove themselves to leave), with their workspace and
/// project roles here; the answer says until when kubeconfigs already issued to them remain
/// valid certificates (granting no removed role).
#[utoipa::path(delete, path = "/orgs/{org}/members/{user}", tag = "organizations",
    params(("org" = String, Path, description = "organization id"), ("user" = String, Path, description = "user id")),
    responses((status = 200, body = RemovedMember), (status = 409, body = ErrorBody)))]
pub async fn remove_member(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id((org, user)): Id<(OrgId, UserId)>,
) -> ApiResult<Json<RemovedMember>> {
    Ok(Json(s.ops.remove_member(&a, org, user)?))
}

#[utoipa::path(get, path = "/orgs/{org}/invitations", tag = "organizations",
    params(("org" = String, Path, description = "organization id")),
    responses((status = 200, body = [InvitationView])))]
pub async fn list_invitations(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id(org): Id<OrgId>,
) -> ApiResult<Json<Vec<InvitationView>>> {
    Ok(Json(s.ops.list_invitations(&a, org)?))
}

/// Invites an e-mail address; the token (shown once) goes into the link sent to them.
#[utoipa::path(post, path = "/orgs/{org}/invitations", tag = "organizations", request_body = NewInvitation,
    params(("org" = String, Path, description = "organization id")),
    responses((status = 201, body = CreatedInvitation), (status = 409, body = ErrorBody)))]
pub async fn invite(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id(org): Id<OrgId>,
    Body(input): Body<NewInvitation>,
) -> ApiResult<(StatusCode, Json<CreatedInvitation>)> {
    Ok((StatusCode::CREATED, Json(s.ops.invite(&a, org, input)?)))
}

#[utoipa::path(delete, path = "/orgs/{org}/invitations/{id}", tag = "organizations",
    params(("org" = String, Path, description = "organization id"), ("id" = String, Path, description = "invitation id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn revoke_invitation(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id((org, id)): Id<(OrgId, InvitationId)>,
) -> ApiResult<StatusCode> {
    s.ops.revoke_invitation(&a, org, id)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TokenQuery {
    /// The invitation token from the link.
    pub token: String,
}

/// What an invitation is for, before accepting it (no sign-in needed; the token is the key).
#[utoipa::path(post, path = "/invitations/lookup", tag = "organizations", request_body = TokenQuery,
    responses((status = 200, body = InvitationInfo), (status = 404, body = ErrorBody)))]
pub async fn invitation_info(
    State(s): State<AppState>,
    Body(q): Body<TokenQuery>,
) -> ApiResult<Json<InvitationInfo>> {
    Ok(Json(s.ops.invitation_info(&q.token)?))
}

/// Accepts an invitation: signed in as the invited address, or creating that account.
#[utoipa::path(post, path = "/invitations/accept", tag = "organizations", request_body = AcceptInvitation,
    responses((status = 200, body = UserView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn accept_invitation(
    State(s): State<AppState>,
    MaybeAuthed(a): MaybeAuthed,
    ClientOrigin(o): ClientOrigin,
    Body(input): Body<AcceptInvitation>,
) -> ApiResult<Json<UserView>> {
    let user = s.ops.accept_invitation(a.as_ref(), input, &o).await?;
    Ok(Json(UserView::from(&user)))
}
