//! Turns "who is asking" plus "which object" into a [`Standing`] and checks it against the
//! policy table. Absent objects and objects the caller may not know about both answer
//! `NotFound`, so ids of other tenants' objects cannot be probed.

use super::{Actor, OpsError, OpsResult};
use crate::domain::policy::{self, Action, Standing};
use crate::domain::*;
use crate::store::{Reader, records};

pub fn org_standing(r: &impl Reader, actor: &Actor, org: OrgId) -> OpsResult<Standing> {
    let mut s = actor.base_standing();
    s.org = records::get_member(r, org, actor.user_id)?.map(|m| m.role);
    Ok(s)
}

pub fn workspace_standing(r: &impl Reader, actor: &Actor, ws: &Workspace) -> OpsResult<Standing> {
    let mut s = org_standing(r, actor, ws.org_id)?;
    s.workspace = records::get_member(r, ws.id, actor.user_id)?.map(|m| m.role);
    if s.project.is_none() {
        // A project member sees the workspace their project lives in. Only "some project
        // role" matters at workspace level: the lowest grant stands for it, so a project
        // admin is not mistaken for an admin of every project. The by-user index says the
        // membership exists, so the first project found in this workspace settles it.
        for pid in records::scopes_of_user::<ProjectId>(r, actor.user_id)? {
            if let Some(p) = records::get_project(r, pid)?
                && p.workspace_id == ws.id
            {
                s.project = Some(ProjectRole::Viewer);
                break;
            }
        }
    }
    Ok(s)
}

pub fn project_standing(r: &impl Reader, actor: &Actor, p: &Project) -> OpsResult<Standing> {
    let mut s = org_standing(r, actor, p.org_id)?;
    s.workspace = records::get_member(r, p.workspace_id, actor.user_id)?.map(|m| m.role);
    s.project = records::get_member(r, p.id, actor.user_id)?.map(|m| m.role);
    Ok(s)
}

/// 404 when the caller may not know the object exists, 403 when they may see it but not
/// do this.
pub fn require(standing: &Standing, action: Action, what: &'static str) -> OpsResult<()> {
    if !policy::visible(standing, action) {
        return Err(OpsError::NotFound(what));
    }
    if !policy::allows(standing, action) {
        return Err(OpsError::Forbidden(format!(
            "your role does not allow this ({})",
            action_words(action)
        )));
    }
    Ok(())
}

/// Loads an organization the caller may act on.
pub fn org_for(
    r: &impl Reader,
    actor: &Actor,
    org: OrgId,
    action: Action,
) -> OpsResult<Organization> {
    let o = records::get_org(r, org)?.ok_or(OpsError::NotFound("organization"))?;
    require(&org_standing(r, actor, org)?, action, "organization")?;
    Ok(o)
}

/// Loads a workspace the caller may act on.
pub fn workspace_for(
    r: &impl Reader,
    actor: &Actor,
    ws: WorkspaceId,
    action: Action,
) -> OpsResult<Workspace> {
    Ok(workspace_and_standing(r, actor, ws, action)?.0)
}

/// Loads a workspace the caller may act on, with the caller's standing in it (for use cases
/// that decide more than one thing by role, without working the standing out twice).
pub fn workspace_and_standing(
    r: &impl Reader,
    actor: &Actor,
    ws: WorkspaceId,
    action: Action,
) -> OpsResult<(Workspace, Standing)> {
    let w = records::get_workspace(r, ws)?.ok_or(OpsError::NotFound("workspace"))?;
    let standing = workspace_standing(r, actor, &w)?;
    require(&standing, action, "workspace")?;
    Ok((w, standing))
}

/// Loads a project the caller may act on.
pub fn project_for(
    r: &impl Reader,
    actor: &Actor,
    p: ProjectId,
    action: Action,
) -> OpsResult<Project> {
    let pr = records::get_project(r, p)?.ok_or(OpsError::NotFound("project"))?;
    require(&project_standing(r, actor, &pr)?, action, "project")?;
    Ok(pr)
}

pub fn require_platform_admin(actor: &Actor) -> OpsResult<()> {
    if actor.platform_admin {
        Ok(())
    } else {
        Err(OpsError::Forbidden(
            "only platform administrators may do this".into(),
        ))
    }
}

fn action_words(a: Action) -> &'static str {
    match a {
        Action::OrgRead => "read the organization",
        Action::OrgUpdate => "change the organization",
        Action::OrgDelete => "delete the organization",
        Action::OrgSetLimits => "set organization limits",
        Action::OrgMembersRead => "list members",
        Action::OrgMembersManage => "manage members",
        Action::OrgOwnersManage => "manage owners",
        Action::OrgAuditRead => "read the audit log",
        Action::WorkspaceCreate => "create workspaces",
        Action::WorkspaceListAll => "list all workspaces",
        Action::WorkspaceRead => "read the workspace",
        Action::WorkspaceChangePlan => "change the workspace plan",
        Action::WorkspaceDelete => "delete the workspace",
        Action::WorkspaceMembersManage => "manage workspace members",
        Action::KubeconfigIssue => "download a kubeconfig",
        Action::ProjectCreate => "create projects",
        Action::ProjectRead => "read the project",
        Action::ProjectUpdate => "change the project",
        Action::ProjectDelete => "delete the project",
        Action::ProjectMembersManage => "manage project members",
        Action::BillingRead => "see billing",
        Action::BillingManage => "change the billing account",
        Action::InvoiceVoid => "void invoices",
    }
}
