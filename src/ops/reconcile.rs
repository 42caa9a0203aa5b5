//! What the reconciler reads and writes in redb: a consistent snapshot of one workspace's
//! desired state, the observed state it reports back (written only when something changed,
//! so an in-sync reconcile writes nothing), and the final removal of a deleted workspace.

use serde::Serialize;

use super::{Ops, OpsResult};
use crate::domain::groups::ClusterAccess;
use crate::domain::policy::Standing;
use crate::domain::*;
use crate::store::{Reader, records};

/// Everything needed to build a workspace's host and in-cluster objects.
#[derive(Debug, Clone)]
pub struct WorkspaceSnapshot {
    pub workspace: Workspace,
    pub plan: Plan,
    pub projects: Vec<ProjectSnapshot>,
    /// Who holds a workspace role inside the virtual cluster (enabled users only).
    pub access: ClusterAccess,
    /// Host nodes dedicated to this workspace.
    pub dedicated_nodes: Vec<String>,
    /// Node pools (`ws-<id>`) of every workspace that has dedicated nodes.
    pub all_pools: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ProjectSnapshot {
    pub project: Project,
    /// (user e-mail = certificate CN, role), enabled users only.
    pub members: Vec<(String, ProjectRole)>,
}

/// What the reconciler saw on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Observation {
    pub state: WorkspaceState,
    pub phase: Option<String>,
    pub message: String,
    /// Set when the host confirmed this generation.
    pub applied_generation: Option<u64>,
}

/// Who holds a workspace role in `ws`'s virtual cluster: platform administrators,
/// the organization's owners and admins, and the workspace's members — each only while
/// their account is enabled. Roles go to people by e-mail (the certificate CN), so a
/// removal, demotion or disabling takes effect at the next tenant sync, not at certificate
/// expiry (see `domain::groups`).
fn cluster_access(r: &impl Reader, ws: &Workspace) -> OpsResult<ClusterAccess> {
    let mut access = ClusterAccess::default();
    let mut grant = |u: Option<User>, standing: Standing| {
        if let Some(u) = u.filter(|u| !u.disabled) {
            access.grant(&u.email, &standing);
        }
    };
    for m in records::list_members(r, ws.org_id, None, usize::MAX)? {
        if matches!(m.role, OrgRole::Owner | OrgRole::Admin) {
            let org = Some(m.role);
            grant(
                records::get_user(r, m.user_id)?,
                Standing {
                    org,
                    ..Standing::default()
                },
            );
        }
    }
    for m in records::list_members(r, ws.id, None, usize::MAX)? {
        let workspace = Some(m.role);
        grant(
            records::get_user(r, m.user_id)?,
            Standing {
                workspace,
                ..Standing::default()
            },
        );
    }
    for u in records::list_users(r, None, usize::MAX)? {
        if u.platform_admin {
            grant(
                Some(u),
                Standing {
                    platform_admin: true,
                    ..Standing::default()
                },
            );
        }
    }
    Ok(access)
}

impl Ops {
    pub fn workspace_ids(&self) -> OpsResult<Vec<WorkspaceId>> {
        let r = self.store.read()?;
        Ok(records::all_workspaces(&r)?
            .into_iter()
            .map(|w| w.id)
            .collect())
    }

    pub fn reconcile_snapshot(&self, id: WorkspaceId) -> OpsResult<Option<WorkspaceSnapshot>> {
        let r = self.store.read()?;
        let Some(workspace) = records::get_workspace(&r, id)? else {
            return Ok(None);
        };
        let plan = super::workspaces::plan_for(&r, &workspace.plan_id, "plan")?;
        let mut projects = Vec::new();
        for project in records::list_workspace_projects(&r, id, None, usize::MAX)? {
            let mut members = Vec::new();
            for m in records::list_members(&r, project.id, None, usize::MAX)? {
                if let Some(u) = records::get_user(&r, m.user_id)?
                    && !u.disabled
                {
                    members.push((u.email, m.role));
                }
            }
            projects.push(ProjectSnapshot { project, members });
        }
        let access = cluster_access(&r, &workspace)?;
        let assignments = records::all_node_assignments(&r)?;
        let dedicated_nodes = assignments
            .iter()
            .filter(|a| a.workspace_id == id)
            .map(|a| a.node.clone())
            .collect();
        let mut all_pools: Vec<String> = assignments
            .iter()
            .map(|a| format!("ws-{}", a.workspace_id.short()))
            .collect();
        all_pools.sort();
        all_pools.dedup();
        Ok(Some(WorkspaceSnapshot {
            workspace,
            plan,
            projects,
            access,
            dedicated_nodes,
            all_pools,
        }))
    }

    /// Records what the host reported. Writes only when something changed; a workspace
    /// being deleted stays `Deleting` whatever the host says.
    pub fn record_observation(&self, id: WorkspaceId, obs: &Observation) -> OpsResult<bool> {
        // Most passes see what is already recorded: decide that under a read transaction,
        // which does not queue behind writers as a write transaction does.
        {
            let r = self.store.read()?;
            match records::get_workspace(&r, id)? {
                None => return Ok(false),
                Some(ws) if observation_recorded(&ws, obs) => return Ok(false),
                Some(_) => {}
            }
        }
        let tx = self.store.write()?;
        let Some(mut ws) = records::get_workspace(&tx, id)? else {
            return Ok(false);
        };
        let state = if ws.state == WorkspaceState::Deleting {
            WorkspaceState::Deleting
        } else {
            obs.state
        };
        if observation_recorded(&ws, obs) {
            return Ok(false);
        }
        let applied = obs.applied_generation.unwrap_or(ws.applied_generation);
        if ws.state != state {
            tracing::info!(workspace = %id, from = ws.state.as_str(), to = state.as_str(), message = %obs.message, "workspace state changed");
        }
        ws.observed_phase = obs.phase.clone();
        ws.message = obs.message.clone();
        ws.applied_generation = applied;
        let state_changed = ws.state != state;
        ws.state = state;
        ws.updated_at = self.now();
        records::update_workspace(&tx, &ws)?;
        if state_changed {
            self.meter_workspace(&tx, &ws)?;
        }
        self.commit(tx, &[])?;
        Ok(true)
    }

    /// Removes a workspace's record once its host objects are gone.
    pub fn finish_workspace_deletion(&self, id: WorkspaceId) -> OpsResult<()> {
        let tx = self.store.write()?;
        let Some(ws) = records::get_workspace(&tx, id)? else {
            return Ok(());
        };
        let now = self.now();
        for a in records::all_node_assignments(&tx)?
            .iter()
            .filter(|a| a.workspace_id == id)
        {
            records::end_node_assignment(&tx, a, now)?;
        }
        self.meter_final(&tx, &ws)?;
        records::delete_workspace(&tx, &ws)?;
        let ev = AuditEvent {
            id: AuditId::generate(),
            time: self.now(),
            actor: None,
            actor_label: "system".into(),
            action: "workspace.deleted".into(),
            target: ws.id.to_string(),
            org_id: Some(ws.org_id),
            outcome: Outcome::Success,
            source: "reconciler".into(),
            detail: ws.name.clone(),
        };
        records::append_audit(&tx, &ev)?;
        self.commit(tx, &[])
    }
}

/// Whether `ws` already says what `obs` saw (a Deleting workspace stays Deleting).
fn observation_recorded(ws: &Workspace, obs: &Observation) -> bool {
    let state = if ws.state == WorkspaceState::Deleting {
        WorkspaceState::Deleting
    } else {
        obs.state
    };
    ws.state == state
        && ws.observed_phase == obs.phase
        && ws.message == obs.message
        && ws.applied_generation == obs.applied_generation.unwrap_or(ws.applied_generation)
}
