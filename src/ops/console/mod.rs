//! Read models and two-step flows for the HTML console. Each page of the console asks for
//! what it shows in one call here; every piece is fetched through the same checked use cases
//! the API uses (so authorization cannot differ), and the `can_*` flags only decide which
//! controls are shown — the write use cases check again. The two flows (setup then sign in,
//! accept an invitation then sign in) exist because a browser form is one request.
//!
//! Here: the tenant pages. [`flows`]: the two-step flows and the typed-name deletions;
//! [`admin`]: the platform administrator's pages (nodes, plans, audit).

mod admin;
mod flows;

pub use admin::{AuditPage, AuditSearch, NodeRow, PlanUse};

use super::auth::SessionView;
use super::authz::{org_standing, project_standing, workspace_and_standing, workspace_for};
use super::invitations::InvitationView;
use super::kubeconfig::{IssuedKubeconfig, KubeconfigRequest};
use super::members::{OrgMemberView as MemberView, ProjectMemberView, WorkspaceMemberView};
use super::orgs::OrgView;
use super::tokens::TokenView;
use super::users::MeView;
use super::workspaces::WorkspaceView;
use super::{Actor, Ops, OpsError, OpsResult};
use crate::domain::policy::{self, Action};
use crate::domain::*;
use crate::store::records;

/// The most rows a console page lists in one go (organizations, workspaces, members).
pub const PAGE_ROWS: usize = 500;

/// The most workspaces the dashboard lists per organization; the organization page has
/// them all. Those that need attention come first.
pub const DASHBOARD_ROWS: usize = 8;

pub struct OrgWithWorkspaces {
    pub org: OrgView,
    /// Up to [`DASHBOARD_ROWS`] workspaces: not Ready first (errors first of all), then
    /// by name.
    pub workspaces: Vec<WorkspaceView>,
    /// How many workspaces the caller can see in the organization.
    pub total: usize,
    /// How many of them are in each state (states with none left out), errors first.
    pub states: Vec<(WorkspaceState, usize)>,
}

pub struct Dashboard {
    pub orgs: Vec<OrgWithWorkspaces>,
}

pub struct OrgPage {
    pub org: OrgView,
    pub workspaces: Vec<WorkspaceView>,
    pub members: Vec<MemberView>,
    /// Members whose role the identity provider's groups decide (see `ops::sso`).
    pub idp_managed: Vec<UserId>,
    /// Pending invitations; empty when the caller may not manage members.
    pub invitations: Vec<InvitationView>,
    /// Plans that can be chosen for a new workspace.
    pub plans: Vec<Plan>,
    pub can_manage_members: bool,
    pub can_manage_owners: bool,
    pub can_create_workspace: bool,
    /// Renaming (the display name): organization admins.
    pub can_update: bool,
    /// Deleting: owners, once the organization has no workspaces.
    pub can_delete: bool,
    /// Reading the organization's audit log: organization admins.
    pub can_read_audit: bool,
}

impl OrgPage {
    /// Whether the identity provider decides `user`'s role here.
    pub fn idp_managed(&self, user: &UserId) -> bool {
        self.idp_managed.contains(user)
    }
}

pub struct WorkspacePage {
    pub ws: WorkspaceView,
    pub org_name: String,
    pub projects: Vec<Project>,
    /// The sum of every project's own quota in the workspace.
    pub projects_quota: Quota,
    pub members: Vec<WorkspaceMemberView>,
    /// Organization members who are not yet workspace members (for the "add" form).
    pub candidates: Vec<MemberView>,
    pub plans: Vec<Plan>,
    pub can_manage_members: bool,
    pub can_change_plan: bool,
    pub can_delete: bool,
    pub can_create_project: bool,
    /// Whether a kubeconfig can be issued now (the workspace is Ready or Updating).
    pub kubeconfig_ready: bool,
    /// The certificate lifetimes offered (hours), within what configuration allows.
    pub kubeconfig_hours: Vec<u32>,
    /// The default download is an exec-plugin kubeconfig (certificates are the fallback).
    pub exec_kubeconfigs: bool,
    pub kubeconfig_default_hours: u32,
    /// The nodes dedicated to the workspace.
    pub nodes: Vec<NodeAssignment>,
    /// Whether the plan includes dedicated nodes.
    pub dedicated_nodes: bool,
    /// Platform administrators: nodes that could be dedicated (unassigned agents), or why
    /// the inventory is not available. Empty for everyone else.
    pub node_choices: Vec<String>,
    pub node_inventory_error: Option<String>,
}

/// A downloaded kubeconfig with the names its file is called by.
pub struct KubeconfigDownload {
    pub issued: IssuedKubeconfig,
    pub org_name: String,
    pub workspace_name: String,
}

/// The kubeconfig lifetimes the console offers (hours): 1 h, 8 h, 24 h, 7 days.
const KUBECONFIG_HOURS: [u32; 4] = [1, 8, 24, 168];

pub struct ProjectPage {
    pub project: Project,
    pub workspace_name: String,
    pub org_name: String,
    pub members: Vec<ProjectMemberView>,
    pub candidates: Vec<MemberView>,
    pub can_manage_members: bool,
    /// Changing the quota: workspace admins and organization admins.
    pub can_update: bool,
    pub can_delete: bool,
    /// The workspace plan's quota, and what the *other* projects reserve of it: the room
    /// this project's quota may take.
    pub plan_quota: Quota,
    pub reserved_by_others: Quota,
}

pub struct AccountPage {
    pub me: MeView,
    pub sessions: Vec<SessionView>,
    pub tokens: Vec<TokenView>,
    pub mfa: crate::ops::mfa::MfaStatus,
}

/// What the status poller needs for one workspace.
pub struct WorkspaceStatus {
    pub id: WorkspaceId,
    pub state: WorkspaceState,
    pub message: String,
}

fn allowed(s: &policy::Standing, a: Action) -> bool {
    policy::allows(s, a)
}

/// Workspace states in the order they need someone's attention.
const ATTENTION: [WorkspaceState; 6] = [
    WorkspaceState::Error,
    WorkspaceState::Pending,
    WorkspaceState::Provisioning,
    WorkspaceState::Updating,
    WorkspaceState::Deleting,
    WorkspaceState::Ready,
];

fn attention(s: WorkspaceState) -> usize {
    ATTENTION
        .iter()
        .position(|a| *a == s)
        .unwrap_or(ATTENTION.len())
}

/// The sum of the projects' own quotas (projects without one reserve nothing).
fn sum_quotas<'a>(projects: impl Iterator<Item = &'a Project>) -> Quota {
    projects
        .filter_map(|p| p.quota)
        .fold(Quota::default(), |acc, q| {
            acc.checked_add(&q).unwrap_or(acc)
        })
}

impl Ops {
    /// The caller's organizations, each with the workspaces they can see.
    pub fn console_dashboard(&self, actor: &Actor) -> OpsResult<Dashboard> {
        // NB: only the caller's own memberships, even for platform administrators, who find
        // every organization under Administration instead.
        let me = self.me(actor)?;
        let mut orgs = Vec::new();
        for o in me.organizations {
            let org = self.get_org(actor, o.id)?;
            let mut workspaces = self.list_workspaces(actor, o.id, None, PAGE_ROWS)?.items;
            let total = workspaces.len();
            let states = ATTENTION
                .iter()
                .map(|st| {
                    let n = workspaces
                        .iter()
                        .filter(|w| w.workspace.state == *st)
                        .count();
                    (*st, n)
                })
                .filter(|(_, n)| *n > 0)
                .collect();
            // Stable: within a state, the listing's order (by name) stays.
            workspaces.sort_by_key(|w| attention(w.workspace.state));
            workspaces.truncate(DASHBOARD_ROWS);
            orgs.push(OrgWithWorkspaces {
                org,
                workspaces,
                total,
                states,
            });
        }
        Ok(Dashboard { orgs })
    }

    pub fn console_org(&self, actor: &Actor, id: OrgId) -> OpsResult<OrgPage> {
        let org = self.get_org(actor, id)?;
        let standing = org_standing(&self.store.read()?, actor, id)?;
        let can_manage_members = allowed(&standing, Action::OrgMembersManage);
        let invitations = if can_manage_members {
            self.list_invitations(actor, id)?
        } else {
            Vec::new()
        };
        let members = self.list_members(actor, id, None, PAGE_ROWS)?.items;
        let idp_managed = {
            let r = self.store.read()?;
            let mut managed = Vec::new();
            for m in &members {
                if records::get_user(&r, m.user_id)?
                    .and_then(|u| u.sso)
                    .is_some_and(|l| l.managed_orgs.contains(&id))
                {
                    managed.push(m.user_id);
                }
            }
            managed
        };
        Ok(OrgPage {
            workspaces: self.list_workspaces(actor, id, None, PAGE_ROWS)?.items,
            members,
            idp_managed,
            invitations,
            plans: self
                .list_plans(actor)?
                .into_iter()
                .filter(|p| !p.retired)
                .collect(),
            can_manage_members,
            can_manage_owners: allowed(&standing, Action::OrgOwnersManage),
            can_create_workspace: allowed(&standing, Action::WorkspaceCreate),
            can_update: allowed(&standing, Action::OrgUpdate),
            can_delete: allowed(&standing, Action::OrgDelete),
            can_read_audit: allowed(&standing, Action::OrgAuditRead),
            org,
        })
    }

    pub fn console_workspace(&self, actor: &Actor, id: WorkspaceId) -> OpsResult<WorkspacePage> {
        let ws = self.get_workspace(actor, id)?;
        let (standing, all_projects, org_name) = {
            let r = self.store.read()?;
            let (w, standing) = workspace_and_standing(&r, actor, id, Action::WorkspaceRead)?;
            let org_name = records::get_org(&r, w.org_id)?.map_or_else(String::new, |o| o.name);
            let projects = records::list_workspace_projects(&r, id, None, usize::MAX)?;
            (standing, projects, org_name)
        };
        let projects_quota = sum_quotas(all_projects.iter());
        let can_manage_members = allowed(&standing, Action::WorkspaceMembersManage);
        let members = self.list_workspace_members(actor, id)?;
        let candidates = if can_manage_members {
            self.org_candidates(actor, ws.workspace.org_id, |u| {
                members.iter().any(|m| m.user_id == u)
            })?
        } else {
            Vec::new()
        };
        let can_change_plan = allowed(&standing, Action::WorkspaceChangePlan);
        let nodes = self.workspace_nodes(actor, id)?;
        let (node_choices, node_inventory_error) = if actor.platform_admin {
            match self.list_nodes(actor) {
                Ok(all) => (
                    all.into_iter()
                        .filter(|n| {
                            n.workspace_id.is_none()
                                && !n
                                    .node
                                    .roles
                                    .iter()
                                    .any(|r| r == "control-plane" || r == "master")
                        })
                        .map(|n| n.node.name)
                        .collect(),
                    None,
                ),
                Err(OpsError::Unavailable(m)) => (Vec::new(), Some(m)),
                Err(e) => return Err(e),
            }
        } else {
            (Vec::new(), None)
        };
        let max_hours = self.settings.kubeconfig_max_lifetime.as_secs() / 3600;
        let kubeconfig_hours: Vec<u32> = KUBECONFIG_HOURS
            .into_iter()
            .filter(|h| u64::from(*h) <= max_hours.max(1))
            .collect();
        let kubeconfig_default_hours =
            u32::try_from(self.settings.kubeconfig_lifetime.as_secs() / 3600).unwrap_or(8);
        Ok(WorkspacePage {
            kubeconfig_ready: matches!(
                ws.workspace.state,
                WorkspaceState::Ready | WorkspaceState::Updating
            ),
            kubeconfig_hours,
            exec_kubeconfigs: self.exec_default(),
            kubeconfig_default_hours,
            dedicated_nodes: ws.plan.allows_dedicated_nodes(),
            nodes,
            node_choices,
            node_inventory_error,
            projects: self.list_projects(actor, id, None, PAGE_ROWS)?.items,
            projects_quota,
            members,
            candidates,
            plans: if can_change_plan {
                self.list_plans(actor)?
            } else {
                Vec::new()
            },
            org_name,
            can_manage_members,
            can_change_plan,
            can_delete: allowed(&standing, Action::WorkspaceDelete),
            can_create_project: allowed(&standing, Action::ProjectCreate),
            ws,
        })
    }

    /// Issues a kubeconfig for the caller, with the organization and workspace names that
    /// name the downloaded file.
    pub async fn console_kubeconfig(
        &self,
        actor: &Actor,
        id: WorkspaceId,
        req: KubeconfigRequest,
    ) -> OpsResult<KubeconfigDownload> {
        let (org_name, workspace_name) = {
            let r = self.store.read()?;
            let w = workspace_for(&r, actor, id, Action::WorkspaceRead)?;
            let org = records::get_org(&r, w.org_id)?.map_or_else(String::new, |o| o.name);
            (org, w.name)
        };
        let issued = self.issue_kubeconfig(actor, id, req).await?;
        Ok(KubeconfigDownload {
            issued,
            org_name,
            workspace_name,
        })
    }

    pub fn console_project(&self, actor: &Actor, id: ProjectId) -> OpsResult<ProjectPage> {
        let project = self.get_project(actor, id)?;
        let (standing, workspace_name, org_name, plan_quota, reserved_by_others) = {
            let r = self.store.read()?;
            let ws = records::get_workspace(&r, project.workspace_id)?
                .ok_or(OpsError::NotFound("workspace"))?;
            let org = records::get_org(&r, project.org_id)?.map_or_else(String::new, |o| o.name);
            let plan_quota = records::get_plan(&r, &ws.plan_id)?
                .map(|p| p.quota)
                .unwrap_or_default();
            let others = sum_quotas(
                records::list_workspace_projects(&r, ws.id, None, usize::MAX)?
                    .iter()
                    .filter(|p| p.id != project.id),
            );
            let standing = project_standing(&r, actor, &project)?;
            (standing, ws.name, org, plan_quota, others)
        };
        let can_manage_members = allowed(&standing, Action::ProjectMembersManage);
        let members = self.list_project_members(actor, id)?;
        let candidates = if can_manage_members {
            self.org_candidates(actor, project.org_id, |u| {
                members.iter().any(|m| m.user_id == u)
            })?
        } else {
            Vec::new()
        };
        Ok(ProjectPage {
            project,
            workspace_name,
            org_name,
            members,
            candidates,
            can_manage_members,
            can_update: allowed(&standing, Action::ProjectUpdate),
            can_delete: allowed(&standing, Action::ProjectDelete),
            plan_quota,
            reserved_by_others,
        })
    }

    /// Organization members not already in a list. A workspace or project admin who is only
    /// an organization *member* may read the member list too (`OrgMembersRead`).
    fn org_candidates(
        &self,
        actor: &Actor,
        org: OrgId,
        taken: impl Fn(UserId) -> bool,
    ) -> OpsResult<Vec<MemberView>> {
        match self.list_members(actor, org, None, PAGE_ROWS) {
            Ok(p) => Ok(p.items.into_iter().filter(|m| !taken(m.user_id)).collect()),
            // A project-only member of another org's workspace cannot list that org.
            Err(OpsError::NotFound(_) | OpsError::Forbidden(_)) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    pub fn console_account(&self, actor: &Actor) -> OpsResult<AccountPage> {
        Ok(AccountPage {
            me: self.me(actor)?,
            sessions: self.list_sessions(actor)?,
            tokens: self.list_tokens(actor)?,
            mfa: self.mfa_status(actor)?,
        })
    }

    /// Current states of the workspaces the caller can see among `ids` (others are left
    /// out silently: the poller only asks for what its page showed).
    pub fn console_statuses(
        &self,
        actor: &Actor,
        ids: &[WorkspaceId],
    ) -> OpsResult<Vec<WorkspaceStatus>> {
        let r = self.store.read()?;
        let mut out = Vec::new();
        for id in ids.iter().take(PAGE_ROWS) {
            match workspace_for(&r, actor, *id, Action::WorkspaceRead) {
                Ok(w) => out.push(WorkspaceStatus {
                    id: w.id,
                    state: w.state,
                    message: w.message,
                }),
                Err(OpsError::NotFound(_) | OpsError::Forbidden(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}
