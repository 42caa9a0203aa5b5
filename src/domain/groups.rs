//! Which workspace role a person holds inside a virtual cluster, and the groups (certificate
//! O values) their certificates name for display. Which role a person gets is an
//! authorization rule over their standing, so it lives here, beside the policy.
//!
//! NB: roles are granted to the person (`User` subjects named by e-mail, the certificate
//! CN, see [`ClusterAccess`] and `host::tenant`), never to these groups: a group lives in
//! the certificate until it expires, so a removed, demoted or disabled person would keep
//! the role. The groups grant nothing; they only tell `kubectl auth whoami` what kaas
//! thought the person was when it signed.

use std::collections::BTreeSet;

use super::policy::Standing;
use super::{OrgRole, WorkspaceId, WorkspaceRole};

/// The group (certificate O) that a workspace role is bound to inside the virtual cluster:
/// `kaas:ws:<ws id>:workspace-admin` / `kaas:ws:<ws id>:workspace-viewer`.
pub fn workspace_group(ws: WorkspaceId, role: WorkspaceRole) -> String {
    format!("kaas:ws:{ws}:{}", role.as_str())
}

/// The workspace role a standing holds inside the virtual cluster: `workspace-admin` for
/// platform admins, organization owners and admins (who act as workspace admins everywhere in
/// their organization) and workspace admins; `workspace-viewer` for workspace viewers;
/// nothing otherwise. `standing.project` adds nothing here: project roles are bound per
/// project by `host::tenant::project_role_bindings`.
pub fn cluster_role_for(standing: &Standing) -> Option<WorkspaceRole> {
    let admin = standing.platform_admin
        || matches!(standing.org, Some(OrgRole::Owner | OrgRole::Admin))
        || standing.workspace == Some(WorkspaceRole::Admin);
    if admin {
        Some(WorkspaceRole::Admin)
    } else {
        standing.workspace.filter(|r| *r == WorkspaceRole::Viewer)
    }
}

/// Certificate O values (groups) for a user in workspace `ws`, for display only (they are
/// bound to nothing): the group of [`cluster_role_for`]'s role, if any.
pub fn groups_for(ws: WorkspaceId, standing: &Standing) -> Vec<String> {
    cluster_role_for(standing)
        .map(|r| vec![workspace_group(ws, r)])
        .unwrap_or_default()
}

/// Who holds each workspace role inside one virtual cluster, by certificate CN (e-mail):
/// the subjects of the workspace role bindings. Someone who is both is an admin only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterAccess {
    admins: BTreeSet<String>,
    viewers: BTreeSet<String>,
}

impl ClusterAccess {
    /// Records what `standing` grants `email` (nothing for a standing without a role here).
    pub fn grant(&mut self, email: &str, standing: &Standing) {
        match cluster_role_for(standing) {
            Some(WorkspaceRole::Admin) => {
                self.viewers.remove(email);
                self.admins.insert(email.to_string());
            }
            Some(WorkspaceRole::Viewer) if !self.admins.contains(email) => {
                self.viewers.insert(email.to_string());
            }
            _ => {}
        }
    }

    /// The e-mails holding `role`, sorted (stable for server-side apply).
    pub fn holders(&self, role: WorkspaceRole) -> impl Iterator<Item = &str> {
        match role {
            WorkspaceRole::Admin => self.admins.iter(),
            WorkspaceRole::Viewer => self.viewers.iter(),
        }
        .map(String::as_str)
    }

    /// Everyone with a workspace role, sorted.
    pub fn everyone(&self) -> BTreeSet<&str> {
        self.admins
            .iter()
            .chain(&self.viewers)
            .map(String::as_str)
            .collect()
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

    #[test]
    fn cluster_access_keeps_the_highest_role_once_per_person() {
        let st = |org, workspace| Standing {
            org,
            workspace,
            ..Standing::default()
        };
        let mut a = ClusterAccess::default();
        a.grant(
            "vic@x",
            &st(Some(OrgRole::Member), Some(WorkspaceRole::Viewer)),
        );
        a.grant(
            "ada@x",
            &st(Some(OrgRole::Member), Some(WorkspaceRole::Viewer)),
        );
        // ada is also an organization admin (granted later): admin only.
        a.grant("ada@x", &st(Some(OrgRole::Admin), None));
        // Once an admin, a viewer grant does not demote.
        a.grant(
            "ada@x",
            &st(Some(OrgRole::Member), Some(WorkspaceRole::Viewer)),
        );
        a.grant("out@x", &st(Some(OrgRole::Member), None));
        let admins: Vec<_> = a.holders(WorkspaceRole::Admin).collect();
        let viewers: Vec<_> = a.holders(WorkspaceRole::Viewer).collect();
        assert_eq!(admins, ["ada@x"]);
        assert_eq!(viewers, ["vic@x"]);
        assert_eq!(
            a.everyone().into_iter().collect::<Vec<_>>(),
            ["ada@x", "vic@x"]
        );
    }
}
