//! Workspaces and their members. Creating one records it as `Pending` for the reconciler;
//! a plan change is checked against what the workspace's virtual cluster cannot change (K3K
//! mode, server storage) and what the workspace holds (projects, members, project quotas),
//! and bumps the generation; deleting moves it to `Deleting`, and the reconciler
//! removes the record once the host objects are gone.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::authz::{org_for, workspace_for, workspace_standing};
use super::cluster_access::RemovedMember;
use super::members::{self, WorkspaceMemberView};
use super::users::conflict_as_409;
use super::{Actor, Change, Ops, OpsError, OpsResult, Page, invalid, page};
use crate::domain::membership::MemberLimit;
use crate::domain::names::check_resource_name;
use crate::domain::plan::{check_projects_fit_in, plan_move_refusal};
use crate::domain::policy::{self, Action};
use crate::domain::*;
use crate::store::{Reader, records};

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWorkspace {
    /// DNS label, unique in the organization.
    #[schema(pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length = 40)]
    pub name: String,
    /// A plan id, e.g. `starter`.
    pub plan: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspacePatch {
    pub plan: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WorkspaceView {
    #[serde(flatten)]
    pub workspace: Workspace,
    pub plan: Plan,
    pub projects: u64,
    pub members: u64,
    /// The caller's workspace role, if they have one.
    pub my_role: Option<WorkspaceRole>,
    /// What the virtual cluster's own pods reserve on the host, on top of the plan's quota.
    pub overhead: OverheadView,
}

/// K3K's own pods of a workspace and what they reserve (requests), which the host quota adds
/// to the plan's tenant quota and the meter leaves out of tenant usage.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OverheadView {
    pub servers: u32,
    /// Node agents: one per shared host node in shared mode, the plan's agents in virtual mode.
    pub agents: u32,
    /// The virtual cluster's system pods that run on the host (CoreDNS, in shared mode).
    pub system_pods: u32,
    pub reserved: Quota,
}

impl OverheadView {
    pub fn of(plan: &Plan, agent_nodes: u32) -> OverheadView {
        let o = crate::domain::overhead::Overhead::of(plan, agent_nodes);
        let shared = plan.k3k_mode == K3kMode::Shared;
        OverheadView {
            servers: plan.servers,
            agents: if shared { agent_nodes } else { plan.agents },
            system_pods: u32::from(shared),
            reserved: o.requests(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceRoleInput {
    pub role: WorkspaceRole,
}

pub(crate) fn plan_for(r: &impl Reader, id: &str, field: &'static str) -> OpsResult<Plan> {
    records::get_plan(r, id)?.ok_or_else(|| invalid(field, format!("there is no plan {id:?}")))
}

impl Ops {
    fn workspace_view(
        &self,
        r: &impl Reader,
        actor: &Actor,
        ws: Workspace,
    ) -> OpsResult<WorkspaceView> {
        let plan = plan_for(r, &ws.plan_id, "plan")?;
        self.workspace_view_on(r, actor, ws, plan)
    }

    /// [`Self::workspace_view`] with the plan already read. Listings share one read per
    /// plan, and count projects and members in the indexes: a page of 100 workspaces
    /// would otherwise decode every project and member record just to count them.
    fn workspace_view_on(
        &self,
        r: &impl Reader,
        actor: &Actor,
        ws: Workspace,
        plan: Plan,
    ) -> OpsResult<WorkspaceView> {
        let projects = records::count_workspace_projects(r, ws.id)?;
        let members = records::count_members(r, ws.id)?;
        let my_role = records::get_member(r, ws.id, actor.user_id)?.map(|m| m.role);
        let overhead = OverheadView::of(&plan, self.shared_agent_nodes());
        Ok(WorkspaceView {
            workspace: ws,
            plan,
            projects,
            members,
            my_role,
            overhead,
        })
    }

    pub fn create_workspace(
        &self,
        actor: &Actor,
        org: OrgId,
        input: NewWorkspace,
    ) -> OpsResult<WorkspaceView> {
        check_resource_name(&input.name).map_err(|p| invalid("name", p.0))?;
        let tx = self.store.write()?;
        let o = org_for(&tx, actor, org, Action::WorkspaceCreate)?;
        let plan = plan_for(&tx, &input.plan, "plan")?;
        if plan.retired {
            return Err(invalid(
                "plan",
                format!("plan {:?} is retired; choose another", plan.id),
            ));
        }
        self.check_plan_currency(&tx, org, &plan)?;
        let total = self.settings.max_workspaces_total;
        if total > 0 && records::count_all_workspaces(&tx)? >= u64::from(total) {
            return Err(OpsError::Conflict(format!(
                "this box is full: it holds the {total} workspaces it is configured for; \
                 ask a platform administrator"
            )));
        }
        let usage = self.org_usage(&tx, &o)?;
        if usage.workspaces >= u64::from(usage.max_workspaces) {
            return Err(OpsError::Conflict(format!(
                "workspace limit reached: the organization has {} of {} workspaces allowed",
                usage.workspaces, usage.max_workspaces
            )));
        }
        let now = self.now();
        let ws = Workspace {
            id: WorkspaceId::generate(),
            org_id: org,
            name: input.name,
            plan_id: plan.id.clone(),
            state: WorkspaceState::Pending,
            observed_phase: None,
            message: "waiting to be provisioned".into(),
            generation: 1,
            applied_generation: 0,
            created_at: now,
            updated_at: now,
        };
        records::insert_workspace(&tx, &ws).map_err(conflict_as_409)?;
        self.meter_workspace(&tx, &ws)?;
        let mut ev = self.event(actor, "workspace.create", ws.id, Some(org));
        ev.detail = format!("name={} plan={}", ws.name, plan.id);
        records::append_audit(&tx, &ev)?;
        let view = self.workspace_view(&tx, actor, ws)?;
        self.commit(tx, &[Change::Workspace(view.workspace.id)])?;
        Ok(view)
    }

    /// Workspaces of an organization the caller can see, by name.
    pub fn list_workspaces(
        &self,
        actor: &Actor,
        org: OrgId,
        after: Option<&str>,
        limit: usize,
    ) -> OpsResult<Page<WorkspaceView>> {
        let r = self.store.read()?;
        org_for(&r, actor, org, Action::OrgRead)?;
        let sees_all = policy::allows(
            &super::authz::org_standing(&r, actor, org)?,
            Action::WorkspaceListAll,
        );
        let mut views = Vec::new();
        let mut plans: std::collections::HashMap<String, Plan> = Default::default();
        let mut cursor = after.map(str::to_string);
        // Scan in batches, keeping only visible workspaces, until the page is full.
        loop {
            let batch = records::list_org_workspaces(&r, org, cursor.as_deref(), 200)?;
            let done = batch.len() < 200;
            cursor = batch.last().map(|w| w.name.clone());
            for ws in batch {
                if views.len() > limit {
                    break;
                }
                let visible = sees_all
                    || policy::allows(&workspace_standing(&r, actor, &ws)?, Action::WorkspaceRead);
                if visible {
                    let plan = match plans.get(&ws.plan_id) {
                        Some(p) => p.clone(),
                        None => {
                            let p = plan_for(&r, &ws.plan_id, "plan")?;
                            plans.insert(ws.plan_id.clone(), p.clone());
                            p
                        }
                    };
                    views.push(self.workspace_view_on(&r, actor, ws, plan)?);
                }
            }
            if done || views.len() > limit {
                break;
            }
        }
        Ok(page(views, limit, |v: &WorkspaceView| {
            v.workspace.name.clone()
        }))
    }

    pub fn get_workspace(&self, actor: &Actor, id: WorkspaceId) -> OpsResult<WorkspaceView> {
        let r = self.store.read()?;
        let ws = workspace_for(&r, actor, id, Action::WorkspaceRead)?;
        self.workspace_view(&r, actor, ws)
    }

    /// Moves a workspace to another plan after checking that what it holds fits.
    pub fn change_plan(
        &self,
        actor: &Actor,
        id: WorkspaceId,
        patch: WorkspacePatch,
    ) -> OpsResult<WorkspaceView> {
        let tx = self.store.write()?;
        let mut ws = workspace_for(&tx, actor, id, Action::WorkspaceChangePlan)?;
        if ws.state == WorkspaceState::Deleting {
            return Err(OpsError::Conflict("the workspace is being deleted".into()));
        }
        let plan = plan_for(&tx, &patch.plan, "plan")?;
        if plan.id == ws.plan_id {
            return self.workspace_view(&tx, actor, ws);
        }
        if plan.retired {
            return Err(invalid(
                "plan",
                format!("plan {:?} is retired; choose another", plan.id),
            ));
        }
        self.check_plan_currency(&tx, ws.org_id, &plan)?;
        let current = plan_for(&tx, &ws.plan_id, "plan")?;
        if let Some(why) = plan_move_refusal(&current, &plan) {
            // NB: 422 on `plan`, where the limits below are 409. Those are about what the
            // workspace holds now, and it can change (delete a project, release a node, then
            // try again); this plan can never be right for this workspace's cluster, which is
            // also how the API server answers a change to an immutable field. The field puts
            // the reason next to the plan chooser in the console.
            return Err(invalid("plan", why));
        }
        let projects = records::list_workspace_projects(&tx, ws.id, None, usize::MAX)?;
        if projects.len() as u64 > u64::from(plan.max_projects) {
            return Err(OpsError::Conflict(format!(
                "plan {:?} allows {} projects; the workspace has {}",
                plan.id,
                plan.max_projects,
                projects.len()
            )));
        }
        let members = records::count_members(&tx, ws.id)?;
        if members > u64::from(plan.max_members) {
            return Err(OpsError::Conflict(format!(
                "plan {:?} allows {} workspace members; the workspace has {members}",
                plan.id, plan.max_members
            )));
        }
        // The same limit holds in each project (see `domain::membership`).
        for p in &projects {
            let n = records::count_members(&tx, p.id)?;
            if n > u64::from(plan.max_members) {
                return Err(OpsError::Conflict(format!(
                    "plan {:?} allows {} members per project; project {} has {n}",
                    plan.id, plan.max_members, p.name
                )));
            }
        }
        let nodes = records::all_node_assignments(&tx)?
            .iter()
            .filter(|a| a.workspace_id == ws.id)
            .count();
        if nodes as u64 > u64::from(plan.max_dedicated_nodes) {
            return Err(OpsError::Conflict(format!(
                "the workspace has {nodes} dedicated node(s) and plan {:?} allows {}: release nodes first",
                plan.id, plan.max_dedicated_nodes
            )));
        }
        let quotas: Vec<Quota> = projects.iter().filter_map(|p| p.quota).collect();
        check_projects_fit_in(&plan.quota, quotas).map_err(|e| {
            OpsError::Conflict(format!(
                "the projects' quotas do not fit in plan {:?} ({e}): lower or remove project quotas first",
                plan.id
            ))
        })?;
        let old = std::mem::replace(&mut ws.plan_id, plan.id.clone());
        ws.generation += 1;
        ws.updated_at = self.now();
        records::update_workspace(&tx, &ws)?;
        self.meter_workspace(&tx, &ws)?;
        let mut ev = self.event(actor, "workspace.plan.change", ws.id, Some(ws.org_id));
        ev.detail = format!("{old} -> {}", plan.id);
        records::append_audit(&tx, &ev)?;
        let view = self.workspace_view(&tx, actor, ws)?;
        self.commit(tx, &[Change::Workspace(id)])?;
        Ok(view)
    }

    /// Marks a workspace for deletion; the reconciler tears it down and removes the record.
    pub fn delete_workspace(&self, actor: &Actor, id: WorkspaceId) -> OpsResult<WorkspaceView> {
        let tx = self.store.write()?;
        let mut ws = workspace_for(&tx, actor, id, Action::WorkspaceDelete)?;
        if ws.state != WorkspaceState::Deleting {
            ws.state = WorkspaceState::Deleting;
            ws.message = "deletion requested".into();
            ws.generation += 1;
            ws.updated_at = self.now();
            records::update_workspace(&tx, &ws)?;
            self.meter_workspace(&tx, &ws)?;
            records::append_audit(
                &tx,
                &self.event(actor, "workspace.delete", ws.id, Some(ws.org_id)),
            )?;
        }
        let view = self.workspace_view(&tx, actor, ws)?;
        self.commit(tx, &[Change::Workspace(id)])?;
        Ok(view)
    }

    pub fn list_workspace_members(
        &self,
        actor: &Actor,
        id: WorkspaceId,
    ) -> OpsResult<Vec<WorkspaceMemberView>> {
        let r = self.store.read()?;
        workspace_for(&r, actor, id, Action::WorkspaceRead)?;
        members::views(&r, records::list_members(&r, id, None, usize::MAX)?)
    }

    /// Adds or changes a workspace member; they must belong to the organization, and a
    /// newcomer must fit in the plan's member limit.
    pub fn put_workspace_member(
        &self,
        actor: &Actor,
        id: WorkspaceId,
        user: UserId,
        input: WorkspaceRoleInput,
    ) -> OpsResult<WorkspaceMemberView> {
        let tx = self.store.write()?;
        let ws = workspace_for(&tx, actor, id, Action::WorkspaceMembersManage)?;
        let plan = plan_for(&tx, &ws.plan_id, "plan")?;
        let limit = MemberLimit {
            max: plan.max_members,
            source: format!(
                "plan {:?} allows {} workspace members",
                plan.id, plan.max_members
            ),
        };
        let m = members::put(
            &tx,
            ws.org_id,
            id,
            user,
            input.role,
            Some(&limit),
            self.now(),
        )?;
        let mut ev = self.event(actor, "workspace.member.put", &m.email, Some(ws.org_id));
        ev.detail = format!("{} {}", ws.id, input.role.as_str());
        records::append_audit(&tx, &ev)?;
        self.commit(tx, &[Change::Members(id)])?;
        Ok(m)
    }

    /// Removes a workspace member; says until when the kubeconfigs issued to them remain
    /// valid (they lose the role inside the virtual cluster at the next tenant sync).
    pub fn remove_workspace_member(
        &self,
        actor: &Actor,
        id: WorkspaceId,
        user: UserId,
    ) -> OpsResult<RemovedMember> {
        let tx = self.store.write()?;
        let ws = workspace_for(&tx, actor, id, Action::WorkspaceMembersManage)?;
        members::remove(&tx, id, user)?;
        let removed = RemovedMember::of(&tx, user, self.now(), self.cluster_token_lifetime())?;
        let mut ev = self.event(
            actor,
            "workspace.member.remove",
            &removed.email,
            Some(ws.org_id),
        );
        ev.detail = ws.id.to_string();
        records::append_audit(&tx, &ev)?;
        self.commit(tx, &[Change::Members(id)])?;
        Ok(removed)
    }
}
