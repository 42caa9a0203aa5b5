//! Routes for host nodes and their dedication to workspaces (platform administrators
//! assign and release; anyone who sees a workspace sees which nodes are its own).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::error::{ApiResult, ErrorBody};
use super::extract::{Authed, Body};
use crate::domain::{NodeAssignment, WorkspaceId};
use crate::http::Id;
use crate::ops::nodes::{NewAssignment, NodeView};
use crate::state::AppState;

/// Host nodes with capacity, conditions, labels, taints and owner (platform administrators).
#[utoipa::path(get, path = "/nodes", tag = "nodes", responses((status = 200, body = [NodeView]), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn list_nodes(
    State(s): State<AppState>,
    Authed(a): Authed,
) -> ApiResult<Json<Vec<NodeView>>> {
    Ok(Json(s.ops.list_nodes(&a)?))
}

/// The nodes dedicated to a workspace.
#[utoipa::path(get, path = "/workspaces/{ws}/nodes", tag = "nodes", params(("ws" = String, Path, description = "workspace id")),
    responses((status = 200, body = [NodeAssignment]), (status = 404, body = ErrorBody)))]
pub async fn workspace_nodes(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id(ws): Id<WorkspaceId>,
) -> ApiResult<Json<Vec<NodeAssignment>>> {
    Ok(Json(s.ops.workspace_nodes(&a, ws)?))
}

/// Dedicates a host node to the workspace (its plan must allow dedicated nodes).
#[utoipa::path(post, path = "/workspaces/{ws}/nodes", tag = "nodes", request_body = NewAssignment,
    params(("ws" = String, Path, description = "workspace id")),
    responses((status = 201, body = NodeAssignment), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn assign_node(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id(ws): Id<WorkspaceId>,
    Body(input): Body<NewAssignment>,
) -> ApiResult<(StatusCode, Json<NodeAssignment>)> {
    Ok((StatusCode::CREATED, Json(s.ops.assign_node(&a, ws, input)?)))
}

/// Releases a dedicated node: its workspace's pods are evicted, the label and taint removed.
#[utoipa::path(delete, path = "/workspaces/{ws}/nodes/{node}", tag = "nodes",
    params(("ws" = String, Path, description = "workspace id"), ("node" = String, Path, description = "node name")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn release_node(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id((ws, node)): Id<(WorkspaceId, String)>,
) -> ApiResult<StatusCode> {
    s.ops.release_node(&a, ws, &node)?;
    Ok(StatusCode::NO_CONTENT)
}
