//! Roles at each level of the tenancy model. Their string forms are the API's and the
//! Kubernetes side's vocabulary (`workspace-admin` is also the ClusterRole's name).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A person's role in an organization.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum OrgRole {
    /// Sees the organization and the workspaces and projects they are members of.
    Member,
    /// Manages members, invitations and workspaces.
    Admin,
    /// Everything an admin can, plus managing owners and deleting the organization.
    Owner,
}

/// A person's role in a workspace; also the name of the ClusterRole inside the virtual
/// cluster that the role maps to.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
pub enum WorkspaceRole {
    #[serde(rename = "workspace-viewer")]
    Viewer,
    #[serde(rename = "workspace-admin")]
    Admin,
}

/// A person's role in a project; maps to a RoleBinding of a built-in ClusterRole in the
/// project's namespace (`admin`, `edit`, `view`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ProjectRole {
    Viewer,
    Developer,
    Admin,
}

impl OrgRole {
    pub fn as_str(self) -> &'static str {
        match self {
            OrgRole::Member => "member",
            OrgRole::Admin => "admin",
            OrgRole::Owner => "owner",
        }
    }
}

impl WorkspaceRole {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkspaceRole::Viewer => "workspace-viewer",
            WorkspaceRole::Admin => "workspace-admin",
        }
    }
}

impl ProjectRole {
    pub fn as_str(self) -> &'static str {
        match self {
            ProjectRole::Viewer => "viewer",
            ProjectRole::Developer => "developer",
            ProjectRole::Admin => "admin",
        }
    }

    /// The built-in Kubernetes ClusterRole a project role is bound to in the namespace.
    pub fn cluster_role(self) -> &'static str {
        match self {
            ProjectRole::Viewer => "view",
            ProjectRole::Developer => "edit",
            ProjectRole::Admin => "admin",
        }
    }
}
