//! The groups (certificate O values) through which workspace roles are granted inside a
//! virtual cluster. Which groups a person gets is an authorization rule over their standing,
//! so it lives here, beside the policy; the same names are the subjects of the RoleBindings
//! the host side builds (`host::tenant`), and a certificate carries them until it expires.

use super::policy::Standing;
use super::{OrgRole, WorkspaceId, WorkspaceRole};

/// The group (certificate O) that a workspace role is bound to inside the virtual cluster:
/// `kaas:ws:<ws id>:workspace-admin` / `kaas:ws:<ws id>:workspace-viewer`.
pub fn workspace_group(ws: WorkspaceId, role: WorkspaceRole) -> String {
    format!("kaas:ws:{ws}:{}", role.as_str())
}

/// Certificate O values (groups) for a user in workspace `ws`: the workspace-admin group for
/// platform admins, organization owners and admins (who act as workspace admins everywhere in
/// their organization) and workspace admins; the workspace-viewer group for workspace
/// viewers; nothing otherwise. `standing.project` adds no group: project roles are bound to
/// the user's CN by `host::tenant::project_role_bindings`.
pub fn groups_for(ws: WorkspaceId, standing: &Standing) -> Vec<String> {
    let admin = standing.platform_admin
        || matches!(standing.org, Some(OrgRole::Owner | OrgRole::Admin))
        || standing.workspace == Some(WorkspaceRole::Admin);
    if admin {
        vec![workspace_group(ws, WorkspaceRole::Admin)]
    } else if standing.workspace == Some(WorkspaceRole::Viewer) {
        vec![workspace_group(ws, WorkspaceRole::Viewer)]
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ProjectRole;

    fn ws() -> WorkspaceId {
        "ws_01hzy3v8k2m4n6p8q0r2s4t6v8".parse().unwrap()
    }

    #[test]
    fn groups_follow_the_policy_matrix() {
        let admin = vec![workspace_group(ws(), WorkspaceRole::Admin)];
        let viewer = vec![workspace_group(ws(), WorkspaceRole::Viewer)];
        let st = |org, workspace, project| Standing {
            platform_admin: false,
            org,
            workspace,
            project,
        };
        assert_eq!(
            groups_for(ws(), &st(Some(OrgRole::Owner), None, None)),
            admin
        );
        assert_eq!(
            groups_for(ws(), &st(Some(OrgRole::Admin), None, None)),
            admin
        );
        assert_eq!(
            groups_for(
                ws(),
                &st(Some(OrgRole::Admin), Some(WorkspaceRole::Viewer), None)
            ),
            admin,
            "an org admin acts as workspace admin even when also a viewer"
        );
        assert_eq!(
            groups_for(
                ws(),
                &st(Some(OrgRole::Member), Some(WorkspaceRole::Admin), None)
            ),
            admin
        );
        assert_eq!(
            groups_for(
                ws(),
                &st(Some(OrgRole::Member), Some(WorkspaceRole::Viewer), None)
            ),
            viewer
        );
        assert!(
            groups_for(
                ws(),
                &st(Some(OrgRole::Member), None, Some(ProjectRole::Admin))
            )
            .is_empty()
        );
        let platform = Standing {
            platform_admin: true,
            ..Standing::default()
        };
        assert_eq!(groups_for(ws(), &platform), admin);
    }
}
