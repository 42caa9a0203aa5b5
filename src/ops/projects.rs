//! Projects (namespaces inside a workspace's virtual cluster) and their members. A project
//! quota must fit in what the workspace's plan leaves after the other projects' quotas;
//! the plan caps how many projects a workspace has.

use serde::Deserialize;
use utoipa::ToSchema;

use super::authz::{project_for, workspace_and_standing, workspace_for};
use super::cluster_access::RemovedMember;
use super::members::{self, ProjectMemberView};
use super::users::conflict_as_409;
use super::workspaces::plan_for;
use super::{Actor, Change, Ops, OpsError, OpsResult, Page, ShownPage, invalid};
use crate::domain::membership::MemberLimit;
use crate::domain::names::check_project_name;
use crate::domain::plan::check_project_quotas_fit;
use crate::domain::policy::{self, Action};
use crate::domain::*;
use crate::store::shown::PageKey;
use crate::store::{Reader, StoreError, records};
use redb::ReadTransaction;

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProject {
    /// DNS label, unique in the workspace; becomes the namespace name.
    #[schema(pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length = 63)]
    pub name: String,
    #[serde(default)]
    pub quota: Option<Quota>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectPatch {
    /// The new quota; `null` removes the project's own quota.
    pub quota: Option<Quota>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectRoleInput {
    pub role: ProjectRole,
}

/// Checks a project's quota against its workspace's plan and sibling projects.
fn check_quota(
    r: &impl Reader,
    ws: &Workspace,
    project: Option<ProjectId>,
    quota: &Quota,
) -> OpsResult<()> {
    let plan = plan_for(r, &ws.plan_id, "plan")?;
    let others = records::list_workspace_projects(r, ws.id, None, usize::MAX)?
        .into_iter()
        .filter(|p| Some(p.id) != project)
        .filter_map(|p| p.quota);
    check_project_quotas_fit(&plan.quota, others, quota).map_err(|e| invalid("quota", e))
}

impl Ops {
    pub fn create_project(
        &self,
        actor: &Actor,
        ws_id: WorkspaceId,
        input: NewProject,
    ) -> OpsResult<Project> {
        check_project_name(&input.name).map_err(|p| invalid("name", p.0))?;
        let tx = self.store.write()?;
        let ws = workspace_for(&tx, actor, ws_id, Action::ProjectCreate)?;
        if ws.state == WorkspaceState::Deleting {
            return Err(OpsError::Conflict("the workspace is being deleted".into()));
        }
        let plan = plan_for(&tx, &ws.plan_id, "plan")?;
        let n = records::count_workspace_projects(&tx, ws.id)?;
        if n >= u64::from(plan.max_projects) {
            return Err(OpsError::Conflict(format!(
                "project limit reached: plan {:?} allows {} projects per workspace; {n} in use",
                plan.id, plan.max_projects
            )));
        }
        if let Some(q) = &input.quota {
            check_quota(&tx, &ws, None, q)?;
        }
        let now = self.now();
        let p = Project {
            id: ProjectId::generate(),
            workspace_id: ws.id,
            org_id: ws.org_id,
            name: input.name,
            quota: input.quota,
            created_at: now,
            updated_at: now,
        };
        records::insert_project(&tx, &p).map_err(conflict_as_409)?;
        let mut ev = self.event(actor, "project.create", p.id, Some(ws.org_id));
        ev.detail = format!("{} in {}", p.name, ws.id);
        records::append_audit(&tx, &ev)?;
        self.commit(tx, &[Change::Project(ws.id, p.id)])?;
        Ok(p)
    }

    /// Projects of a workspace the caller can see, by name.
    pub fn list_projects(
        &self,
        actor: &Actor,
        ws_id: WorkspaceId,
        after: Option<&str>,
        limit: usize,
    ) -> OpsResult<Page<Project>> {
        let (items, next_cursor) = self.project_page(actor, ws_id, after, limit, |r, ids| {
            records::load_projects(r, ids)
        })?;
        Ok(Page { items, next_cursor })
    }

    /// [`Ops::list_projects`] for the API: the page's JSON body. Unchanged records are copied
    /// from the store's memo rather than decoded and encoded again, and the page is kept
    /// until the store next commits: one copy for everyone who sees the workspace's projects
    /// whole, one per member who sees some of them (the caller's right to it is still
    /// checked every time).
    pub fn list_projects_shown(
        &self,
        actor: &Actor,
        ws_id: WorkspaceId,
        after: Option<&str>,
        limit: usize,
    ) -> OpsResult<bytes::Bytes> {
        let generation = self.store.generation();
        let r = self.store.read()?;
        let (_, mut standing) = workspace_and_standing(&r, actor, ws_id, Action::WorkspaceRead)?;
        standing.project = None;
        let whole = policy::allows(&standing, Action::ProjectRead);
        let key = PageKey {
            table: "projects",
            scope: ws_id.0,
            after: after.map(Into::into),
            limit,
            viewer: (!whole).then_some(actor.user_id.0),
        };
        if let Some(body) = self.store.pages().get(&key, generation) {
            return Ok(body);
        }
        let (ids, next_cursor) = visible_project_ids(&r, actor, ws_id, whole, after, limit)?;
        let items = records::show_projects(&r, self.store.shown(), &ids)?;
        let body = bytes::Bytes::from(ShownPage { items, next_cursor }.to_json());
        self.store.pages().put(key, generation, body.clone());
        Ok(body)
    }

    /// One page of the projects the caller may see in a workspace, in name order, and the
    /// cursor of the next: who sees what is decided from the name index and memberships;
    /// only the page is loaded.
    fn project_page<C>(
        &self,
        actor: &Actor,
        ws_id: WorkspaceId,
        after: Option<&str>,
        limit: usize,
        load: impl FnOnce(&ReadTransaction, &[ProjectId]) -> Result<C, StoreError>,
    ) -> OpsResult<(C, Option<String>)> {
        let r = self.store.read()?;
        let (_, mut standing) = workspace_and_standing(&r, actor, ws_id, Action::WorkspaceRead)?;
        standing.project = None;
        let whole = policy::allows(&standing, Action::ProjectRead);
        let (ids, next_cursor) = visible_project_ids(&r, actor, ws_id, whole, after, limit)?;
        Ok((load(&r, &ids)?, next_cursor))
    }

    pub fn get_project(&self, actor: &Actor, id: ProjectId) -> OpsResult<Project> {
        let r = self.store.read()?;
        project_for(&r, actor, id, Action::ProjectRead)
    }

    pub fn update_project(
        &self,
        actor: &Actor,
        id: ProjectId,
        patch: ProjectPatch,
    ) -> OpsResult<Project> {
        let tx = self.store.write()?;
        let mut p = project_for(&tx, actor, id, Action::ProjectUpdate)?;
        let ws =
            records::get_workspace(&tx, p.workspace_id)?.ok_or(OpsError::NotFound("workspace"))?;
        if let Some(q) = &patch.quota {
            check_quota(&tx, &ws, Some(p.id), q)?;
        }
        p.quota = patch.quota;
        p.updated_at = self.now();
        records::update_project(&tx, &p)?;
        records::append_audit(
            &tx,
            &self.event(actor, "project.update", p.id, Some(p.org_id)),
        )?;
        self.commit(tx, &[Change::Project(p.workspace_id, p.id)])?;
        Ok(p)
    }

    pub fn delete_project(&self, actor: &Actor, id: ProjectId) -> OpsResult<()> {
        let tx = self.store.write()?;
        let p = project_for(&tx, actor, id, Action::ProjectDelete)?;
        records::delete_project(&tx, &p)?;
        let mut ev = self.event(actor, "project.delete", p.id, Some(p.org_id));
        ev.detail = p.name.clone();
        records::append_audit(&tx, &ev)?;
        self.commit(tx, &[Change::Project(p.workspace_id, p.id)])
    }

    pub fn list_project_members(
        &self,
        actor: &Actor,
        id: ProjectId,
    ) -> OpsResult<Vec<ProjectMemberView>> {
        let r = self.store.read()?;
        project_for(&r, actor, id, Action::ProjectRead)?;
        members::views(&r, records::list_members(&r, id, None, usize::MAX)?)
    }

    /// Adds or changes a project member; they must belong to the organization, and a
    /// newcomer must fit in the workspace plan's member limit, which holds per project.
    pub fn put_project_member(
        &self,
        actor: &Actor,
        id: ProjectId,
        user: UserId,
        input: ProjectRoleInput,
    ) -> OpsResult<ProjectMemberView> {
        let tx = self.store.write()?;
        let p = project_for(&tx, actor, id, Action::ProjectMembersManage)?;
        let ws =
            records::get_workspace(&tx, p.workspace_id)?.ok_or(OpsError::NotFound("workspace"))?;
        let plan = plan_for(&tx, &ws.plan_id, "plan")?;
        let limit = MemberLimit {
            max: plan.max_members,
            source: format!(
                "plan {:?} allows {} members per project",
                plan.id, plan.max_members
            ),
        };
        let m = members::put(
            &tx,
            p.org_id,
            id,
            user,
            input.role,
            Some(&limit),
            self.now(),
        )?;
        let mut ev = self.event(actor, "project.member.put", &m.email, Some(p.org_id));
        ev.detail = format!("{} {}", p.id, input.role.as_str());
        records::append_audit(&tx, &ev)?;
        self.commit(tx, &[Change::Members(p.workspace_id)])?;
        Ok(m)
    }

    /// Removes a project member; says until when the kubeconfigs issued to them remain
    /// valid (they lose the role inside the virtual cluster at the next tenant sync).
    pub fn remove_project_member(
        &self,
        actor: &Actor,
        id: ProjectId,
        user: UserId,
    ) -> OpsResult<RemovedMember> {
        let tx = self.store.write()?;
        let p = project_for(&tx, actor, id, Action::ProjectMembersManage)?;
        members::remove(&tx, id, user)?;
        let removed = RemovedMember::of(&tx, user, self.now(), self.cluster_token_lifetime())?;
        let mut ev = self.event(
            actor,
            "project.member.remove",
            &removed.email,
            Some(p.org_id),
        );
        ev.detail = p.id.to_string();
        records::append_audit(&tx, &ev)?;
        self.commit(tx, &[Change::Members(p.workspace_id)])?;
        Ok(removed)
    }
}

/// The ids of one page of the projects of a workspace the caller may see (all of them when
/// `whole`, else those they are a member of), in name order, and the next page's cursor.
/// Only the name index and memberships are read.
fn visible_project_ids(
    r: &impl Reader,
    actor: &Actor,
    ws_id: WorkspaceId,
    whole: bool,
    after: Option<&str>,
    limit: usize,
) -> OpsResult<(Vec<ProjectId>, Option<String>)> {
    // One row more than the page tells whether another page follows; the last row of the
    // page names the cursor.
    let wanted = limit.saturating_add(1);
    let last = limit.saturating_sub(1);
    let mut rows = if whole {
        records::workspace_project_ids(r, ws_id, after, wanted, |_| true, |i| i == last)?
    } else {
        // The caller's project memberships, read once from the by-user index (in id order),
        // rather than one member lookup per project of the workspace.
        let mine: Vec<ProjectId> = records::scopes_of_user(r, actor.user_id)?;
        records::workspace_project_ids(
            r,
            ws_id,
            after,
            wanted,
            |p| mine.binary_search_by_key(&p.0, |m| m.0).is_ok(),
            |i| i == last,
        )?
    };
    let next_cursor = if rows.len() > limit {
        rows.truncate(limit);
        rows.last_mut().and_then(|(_, name)| name.take())
    } else {
        None
    };
    Ok((rows.into_iter().map(|(id, _)| id).collect(), next_cursor))
}
