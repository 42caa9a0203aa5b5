//! Routes for workspaces, projects and their members.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::ListParams;
use super::error::{ApiResult, ErrorBody};
use super::extract::{Authed, Body, Q};
use crate::domain::{OrgId, Project, ProjectId, UserId, WorkspaceId};
use crate::http::Id;
use crate::ops::Page;
use crate::ops::cluster_access::RemovedMember;
use crate::ops::kubeconfig::{IssuedKubeconfig, KubeconfigRequest};
use crate::ops::members::{ProjectMemberView, WorkspaceMemberView};
use crate::ops::projects::{NewProject, ProjectPatch, ProjectRoleInput};
use crate::ops::workspaces::{NewWorkspace, WorkspacePatch, WorkspaceRoleInput, WorkspaceView};
use crate::state::AppState;

/// Workspaces of an organization that the caller can see.
#[utoipa::path(get, path = "/orgs/{org}/workspaces", tag = "workspaces", params(("org" = String, Path, description = "organization id"), ListParams),
    responses((status = 200, body = Page<WorkspaceView>), (status = 404, body = ErrorBody)))]
pub async fn list_workspaces(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id(org): Id<OrgId>,
    Q(q): Q<ListParams>,
) -> ApiResult<Json<Page<WorkspaceView>>> {
    Ok(Json(s.ops.list_workspaces(
        &a,
        org,
        q.cursor.as_deref(),
        q.limit(),
    )?))
}

/// Creates a workspace (a K3K virtual cluster) on a plan.
#[utoipa::path(post, path = "/orgs/{org}/workspaces", tag = "workspaces", request_body = NewWorkspace,
    params(("org" = String, Path, description = "organization id")),
    responses((status = 201, body = WorkspaceView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_workspace(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id(org): Id<OrgId>,
    Body(input): Body<NewWorkspace>,
) -> ApiResult<(StatusCode, Json<WorkspaceView>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.ops.create_workspace(&a, org, input)?),
    ))
}

#[utoipa::path(get, path = "/workspaces/{ws}", tag = "workspaces", params(("ws" = String, Path, description = "workspace id")),
    responses((status = 200, body = WorkspaceView), (status = 404, body = ErrorBody)))]
pub async fn get_workspace(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id(ws): Id<WorkspaceId>,
) -> ApiResult<Json<WorkspaceView>> {
    Ok(Json(s.ops.get_workspace(&a, ws)?))
}

/// Moves the workspace to another plan: 422 on `plan` for a plan it can never take (retired,
/// or another K3K mode or server storage than its cluster has), 409 while what it holds
/// (projects, members, project quotas, dedicated nodes) does not fit in the plan.
#[utoipa::path(patch, path = "/workspaces/{ws}", tag = "workspaces", request_body = WorkspacePatch,
    params(("ws" = String, Path, description = "workspace id")),
    responses((status = 200, body = WorkspaceView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn change_plan(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id(ws): Id<WorkspaceId>,
    Body(input): Body<WorkspacePatch>,
) -> ApiResult<Json<WorkspaceView>> {
    Ok(Json(s.ops.change_plan(&a, ws, input)?))
}

/// Starts deleting the workspace; it goes to `Deleting` and disappears once torn down.
#[utoipa::path(delete, path = "/workspaces/{ws}", tag = "workspaces", params(("ws" = String, Path, description = "workspace id")),
    responses((status = 202, body = WorkspaceView), (status = 404, body = ErrorBody)))]
pub async fn delete_workspace(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id(ws): Id<WorkspaceId>,
) -> ApiResult<(StatusCode, Json<WorkspaceView>)> {
    Ok((StatusCode::ACCEPTED, Json(s.ops.delete_workspace(&a, ws)?)))
}

#[utoipa::path(get, path = "/workspaces/{ws}/members", tag = "workspaces", params(("ws" = String, Path, description = "workspace id")),
    responses((status = 200, body = [WorkspaceMemberView])))]
pub async fn list_workspace_members(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id(ws): Id<WorkspaceId>,
) -> ApiResult<Json<Vec<WorkspaceMemberView>>> {
    Ok(Json(s.ops.list_workspace_members(&a, ws)?))
}

/// Adds an organization member to the workspace, or changes their role.
#[utoipa::path(put, path = "/workspaces/{ws}/members/{user}", tag = "workspaces", request_body = WorkspaceRoleInput,
    params(("ws" = String, Path, description = "workspace id"), ("user" = String, Path, description = "user id")),
    responses((status = 200, body = WorkspaceMemberView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_workspace_member(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id((ws, user)): Id<(WorkspaceId, UserId)>,
    Body(input): Body<WorkspaceRoleInput>,
) -> ApiResult<Json<WorkspaceMemberView>> {
    Ok(Json(s.ops.put_workspace_member(&a, ws, user, input)?))
}

/// Removes a workspace member; the answer says until when kubeconfigs already issued to them
/// remain valid certificates (granting no removed role).
#[utoipa::path(delete, path = "/workspaces/{ws}/members/{user}", tag = "workspaces",
    params(("ws" = String, Path, description = "workspace id"), ("user" = String, Path, description = "user id")),
    responses((status = 200, body = RemovedMember), (status = 404, body = ErrorBody)))]
pub async fn remove_workspace_member(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id((ws, user)): Id<(WorkspaceId, UserId)>,
) -> ApiResult<Json<RemovedMember>> {
    Ok(Json(s.ops.remove_workspace_member(&a, ws, user)?))
}

#[utoipa::path(get, path = "/workspaces/{ws}/projects", tag = "projects", params(("ws" = String, Path, description = "workspace id"), ListParams),
    responses((status = 200, body = Page<Project>)))]
pub async fn list_projects(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id(ws): Id<WorkspaceId>,
    Q(q): Q<ListParams>,
) -> ApiResult<Response> {
    let body = s
        .ops
        .list_projects_shown(&a, ws, q.cursor.as_deref(), q.limit())?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}

/// Creates a project (a namespace in the virtual cluster), optionally with its own quota.
#[utoipa::path(post, path = "/workspaces/{ws}/projects", tag = "projects", request_body = NewProject,
    params(("ws" = String, Path, description = "workspace id")),
    responses((status = 201, body = Project), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_project(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id(ws): Id<WorkspaceId>,
    Body(input): Body<NewProject>,
) -> ApiResult<(StatusCode, Json<Project>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.ops.create_project(&a, ws, input)?),
    ))
}

#[utoipa::path(get, path = "/projects/{project}", tag = "projects", params(("project" = String, Path, description = "project id")),
    responses((status = 200, body = Project), (status = 404, body = ErrorBody)))]
pub async fn get_project(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id(p): Id<ProjectId>,
) -> ApiResult<Json<Project>> {
    Ok(Json(s.ops.get_project(&a, p)?))
}

/// Changes the project's quota.
#[utoipa::path(patch, path = "/projects/{project}", tag = "projects", request_body = ProjectPatch,
    params(("project" = String, Path, description = "project id")),
    responses((status = 200, body = Project), (status = 422, body = ErrorBody)))]
pub async fn update_project(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id(p): Id<ProjectId>,
    Body(input): Body<ProjectPatch>,
) -> ApiResult<Json<Project>> {
    Ok(Json(s.ops.update_project(&a, p, input)?))
}

#[utoipa::path(delete, path = "/projects/{project}", tag = "projects", params(("project" = String, Path, description = "project id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_project(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id(p): Id<ProjectId>,
) -> ApiResult<StatusCode> {
    s.ops.delete_project(&a, p)?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/projects/{project}/members", tag = "projects", params(("project" = String, Path, description = "project id")),
    responses((status = 200, body = [ProjectMemberView])))]
pub async fn list_project_members(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id(p): Id<ProjectId>,
) -> ApiResult<Json<Vec<ProjectMemberView>>> {
    Ok(Json(s.ops.list_project_members(&a, p)?))
}

#[utoipa::path(put, path = "/projects/{project}/members/{user}", tag = "projects", request_body = ProjectRoleInput,
    params(("project" = String, Path, description = "project id"), ("user" = String, Path, description = "user id")),
    responses((status = 200, body = ProjectMemberView), (status = 422, body = ErrorBody)))]
pub async fn put_project_member(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id((p, user)): Id<(ProjectId, UserId)>,
    Body(input): Body<ProjectRoleInput>,
) -> ApiResult<Json<ProjectMemberView>> {
    Ok(Json(s.ops.put_project_member(&a, p, user, input)?))
}

/// Removes a project member; the answer says until when kubeconfigs already issued to them
/// remain valid certificates (granting no removed role).
#[utoipa::path(delete, path = "/projects/{project}/members/{user}", tag = "projects",
    params(("project" = String, Path, description = "project id"), ("user" = String, Path, description = "user id")),
    responses((status = 200, body = RemovedMember), (status = 404, body = ErrorBody)))]
pub async fn remove_project_member(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id((p, user)): Id<(ProjectId, UserId)>,
) -> ApiResult<Json<RemovedMember>> {
    Ok(Json(s.ops.remove_project_member(&a, p, user)?))
}

/// A kubeconfig for the caller: a short-lived client certificate with their current roles.
#[utoipa::path(post, path = "/workspaces/{ws}/kubeconfig", tag = "workspaces", request_body = KubeconfigRequest,
    params(("ws" = String, Path, description = "workspace id")),
    responses((status = 200, body = IssuedKubeconfig), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn issue_kubeconfig(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id(ws): Id<WorkspaceId>,
    Body(input): Body<KubeconfigRequest>,
) -> ApiResult<Json<IssuedKubeconfig>> {
    Ok(Json(s.ops.issue_kubeconfig(&a, ws, input).await?))
}
