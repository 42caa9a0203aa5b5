//! The authorization policy: who may do what, as one table. A caller's [`Standing`] (their
//! roles on the object's path: platform, organization, workspace, project) is compared with
//! the [`Action`] asked for. `ops::` turns a yes into a capability value and a no into
//! 404 (no standing at all: existence is not leaked) or 403 (visible but not allowed).
//!
//! Invariants: platform administrators may do everything; a role never grants less than
//! a lower role at the same level; organization owners and admins act as workspace admins
//! in every workspace of their organization, and workspace admins as project admins.

use super::roles::{OrgRole, ProjectRole, WorkspaceRole};

/// What a caller is on the path to an object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Standing {
    pub platform_admin: bool,
    pub org: Option<OrgRole>,
    pub workspace: Option<WorkspaceRole>,
    pub project: Option<ProjectRole>,
}

/// Everything the API lets someone ask for on an organization, workspace or project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    OrgRead,
    OrgUpdate,
    OrgDelete,
    OrgSetLimits,
    OrgMembersRead,
    OrgMembersManage,
    OrgOwnersManage,
    OrgAuditRead,
    WorkspaceCreate,
    WorkspaceListAll,
    WorkspaceRead,
    WorkspaceChangePlan,
    WorkspaceDelete,
    WorkspaceMembersManage,
    KubeconfigIssue,
    ProjectCreate,
    ProjectRead,
    ProjectUpdate,
    ProjectDelete,
    ProjectMembersManage,
    /// Usage, estimates, invoices and exports of an organization.
    BillingRead,
    /// The organization's billing account (address, tax, currency, invoice prefix).
    BillingManage,
    /// Voiding a finalized invoice: the platform operator's call.
    InvoiceVoid,
}

impl Action {
    pub const ALL: [Action; 23] = [
        Action::OrgRead,
        Action::OrgUpdate,
        Action::OrgDelete,
        Action::OrgSetLimits,
        Action::OrgMembersRead,
        Action::OrgMembersManage,
        Action::OrgOwnersManage,
        Action::OrgAuditRead,
        Action::WorkspaceCreate,
        Action::WorkspaceListAll,
        Action::WorkspaceRead,
        Action::WorkspaceChangePlan,
        Action::WorkspaceDelete,
        Action::WorkspaceMembersManage,
        Action::KubeconfigIssue,
        Action::ProjectCreate,
        Action::ProjectRead,
        Action::ProjectUpdate,
        Action::ProjectDelete,
        Action::ProjectMembersManage,
        Action::BillingRead,
        Action::BillingManage,
        Action::InvoiceVoid,
    ];
}

/// The lowest role at each level that is enough for an action. `None` at a level means
/// that level's roles never grant the action.
struct Rule {
    org: Option<OrgRole>,
    workspace: Option<WorkspaceRole>,
    project: Option<ProjectRole>,
    platform_admin_only: bool,
}

const fn rule(
    org: Option<OrgRole>,
    workspace: Option<WorkspaceRole>,
    project: Option<ProjectRole>,
) -> Rule {
    Rule {
        org,
        workspace,
        project,
        platform_admin_only: false,
    }
}

use OrgRole as O;
use ProjectRole as P;
use WorkspaceRole as W;

/// The matrix, one row per action. Read it as: "at least this org role, OR at least this
/// workspace role, OR at least this project role".
fn rule_for(action: Action) -> Rule {
    match action {
        Action::OrgRead => rule(Some(O::Member), None, None),
        Action::OrgUpdate => rule(Some(O::Admin), None, None),
        Action::OrgDelete => rule(Some(O::Owner), None, None),
        Action::OrgSetLimits => Rule {
            platform_admin_only: true,
            ..rule(None, None, None)
        },
        Action::OrgMembersRead => rule(Some(O::Member), None, None),
        Action::OrgMembersManage => rule(Some(O::Admin), None, None),
        Action::OrgOwnersManage => rule(Some(O::Owner), None, None),
        Action::OrgAuditRead => rule(Some(O::Admin), None, None),
        Action::WorkspaceCreate => rule(Some(O::Admin), None, None),
        Action::WorkspaceListAll => rule(Some(O::Admin), None, None),
        Action::WorkspaceRead => rule(Some(O::Admin), Some(W::Viewer), Some(P::Viewer)),
        Action::WorkspaceChangePlan => rule(Some(O::Admin), None, None),
        Action::WorkspaceDelete => rule(Some(O::Admin), None, None),
        Action::WorkspaceMembersManage => rule(Some(O::Admin), Some(W::Admin), None),
        Action::KubeconfigIssue => rule(Some(O::Admin), Some(W::Viewer), Some(P::Viewer)),
        Action::ProjectCreate => rule(Some(O::Admin), Some(W::Admin), None),
        Action::ProjectRead => rule(Some(O::Admin), Some(W::Viewer), Some(P::Viewer)),
        Action::ProjectUpdate => rule(Some(O::Admin), Some(W::Admin), None),
        Action::ProjectDelete => rule(Some(O::Admin), Some(W::Admin), None),
        Action::ProjectMembersManage => rule(Some(O::Admin), Some(W::Admin), Some(P::Admin)),
        Action::BillingRead => rule(Some(O::Admin), None, None),
        Action::BillingManage => rule(Some(O::Owner), None, None),
        Action::InvoiceVoid => Rule {
            platform_admin_only: true,
            ..rule(None, None, None)
        },
    }
}

fn at_least<R: Ord>(have: Option<R>, need: Option<R>) -> bool {
    matches!((have, need), (Some(h), Some(n)) if h >= n)
}

/// Whether the standing allows the action.
pub fn allows(standing: &Standing, action: Action) -> bool {
    if standing.platform_admin {
        return true;
    }
    let r = rule_for(action);
    if r.platform_admin_only {
        return false;
    }
    at_least(standing.org, r.org)
        || at_least(standing.workspace, r.workspace)
        || at_least(standing.project, r.project)
}

/// Whether the caller may know the object exists at all (otherwise: 404). Anyone with
/// any standing on the object's path sees it; an organization member without a role in a
/// workspace does not see that workspace.
pub fn visible(standing: &Standing, action: Action) -> bool {
    if standing.platform_admin {
        return true;
    }
    match action {
        Action::OrgRead
        | Action::OrgUpdate
        | Action::OrgDelete
        | Action::OrgSetLimits
        | Action::OrgMembersRead
        | Action::OrgMembersManage
        | Action::OrgOwnersManage
        | Action::OrgAuditRead
        | Action::WorkspaceCreate
        | Action::WorkspaceListAll
        | Action::BillingRead
        | Action::BillingManage
        | Action::InvoiceVoid => standing.org.is_some(),
        _ => {
            allows(
                &Standing {
                    platform_admin: false,
                    ..*standing
                },
                Action::WorkspaceRead,
            ) || standing.workspace.is_some()
                || standing.project.is_some()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(org: Option<O>, ws: Option<W>, prj: Option<P>) -> Standing {
        Standing {
            platform_admin: false,
            org,
            workspace: ws,
            project: prj,
        }
    }

    #[test]
    fn platform_admin_may_do_everything() {
        let s = Standing {
            platform_admin: true,
            ..Default::default()
        };
        assert!(
            Action::ALL
                .iter()
                .all(|a| allows(&s, *a) && visible(&s, *a))
        );
    }

    #[test]
    fn higher_roles_never_grant_less() {
        let org_roles = [None, Some(O::Member), Some(O::Admin), Some(O::Owner)];
        for a in Action::ALL {
            for w in org_roles.windows(2) {
                let lo = allows(&st(w[0], None, None), a);
                let hi = allows(&st(w[1], None, None), a);
                assert!(!lo || hi, "{a:?}: {:?} allowed but {:?} not", w[0], w[1]);
            }
        }
    }

    #[test]
    fn key_cells_of_the_matrix() {
        let member = st(Some(O::Member), None, None);
        assert!(allows(&member, Action::OrgRead));
        assert!(!allows(&member, Action::WorkspaceCreate));
        assert!(!allows(&member, Action::WorkspaceRead));
        let viewer = st(Some(O::Member), Some(W::Viewer), None);
        assert!(allows(&viewer, Action::WorkspaceRead));
        assert!(!allows(&viewer, Action::ProjectCreate));
        let ws_admin = st(Some(O::Member), Some(W::Admin), None);
        assert!(allows(&ws_admin, Action::ProjectCreate));
        assert!(!allows(&ws_admin, Action::WorkspaceDelete));
        let dev = st(Some(O::Member), None, Some(P::Developer));
        assert!(allows(&dev, Action::ProjectRead));
        assert!(!allows(&dev, Action::ProjectMembersManage));
        let owner = st(Some(O::Owner), None, None);
        assert!(allows(&owner, Action::OrgDelete));
        assert!(!allows(&owner, Action::OrgSetLimits));
        assert!(!allows(
            &st(Some(O::Admin), None, None),
            Action::OrgOwnersManage
        ));
    }

    #[test]
    fn strangers_see_nothing() {
        let none = Standing::default();
        for a in Action::ALL {
            assert!(!visible(&none, a), "{a:?} visible to a stranger");
            assert!(!allows(&none, a), "{a:?} allowed to a stranger");
        }
        let member = st(Some(O::Member), None, None);
        assert!(!visible(&member, Action::WorkspaceRead));
    }
}
