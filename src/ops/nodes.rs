//! Dedicated nodes: the node inventory (from the host's watch cache, behind
//! [`NodeInventory`]), and assigning and releasing nodes to workspaces whose plan allows it.
//! Each assignment opens a billing interval that its release closes; the reconciler applies
//! labels and taints, and on release cordons, evicts, cleans up and uncordons.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::authz::{require_platform_admin, workspace_for};
use super::workspaces::plan_for;
use super::{Actor, Change, Ops, OpsError, OpsResult, invalid};
use crate::domain::policy::Action;
use crate::domain::*;
use crate::store::records;

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct NodeCondition {
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    pub reason: Option<String>,
    pub message: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct NodeTaint {
    pub key: String,
    pub value: Option<String>,
    pub effect: String,
}

/// A host node as the inventory shows it.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct HostNode {
    pub name: String,
    /// From `node-role.kubernetes.io/*` labels, e.g. `control-plane`.
    pub roles: Vec<String>,
    pub ready: bool,
    pub unschedulable: bool,
    pub capacity: BTreeMap<String, String>,
    pub allocatable: BTreeMap<String, String>,
    pub conditions: Vec<NodeCondition>,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<NodeTaint>,
}

/// The host's nodes, as last seen by the watch (implemented by `host`).
pub trait NodeInventory: Send + Sync {
    /// `None` until the first list from the host arrived.
    fn nodes(&self) -> Option<Vec<HostNode>>;
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NodeView {
    #[serde(flatten)]
    pub node: HostNode,
    /// The workspace the node is dedicated to, if any.
    pub workspace_id: Option<WorkspaceId>,
    pub assigned_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAssignment {
    /// The host node's name.
    pub node: String,
}

impl Ops {
    pub fn set_node_inventory(&self, inventory: Arc<dyn NodeInventory>) {
        let _ = self.nodes.set(inventory);
    }

    fn inventory(&self) -> Option<Vec<HostNode>> {
        self.nodes.get().and_then(|i| i.nodes())
    }

    /// How many host nodes run K3K's shared-mode node agents (0 while the host is unknown).
    pub fn shared_agent_nodes(&self) -> u32 {
        let count = self
            .inventory()
            .unwrap_or_default()
            .iter()
            .filter(|n| {
                crate::domain::overhead::node_runs_shared_agent(
                    n.taints.iter().map(|t| (t.key.as_str(), t.effect.as_str())),
                )
            })
            .count();
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    /// Every host node with its owner (platform administrators).
    pub fn list_nodes(&self, actor: &Actor) -> OpsResult<Vec<NodeView>> {
        require_platform_admin(actor)?;
        let nodes = self.inventory().ok_or_else(|| {
            OpsError::Unavailable(
                "the node list is not available: the host cluster is not connected yet".into(),
            )
        })?;
        let r = self.store.read()?;
        let assignments: BTreeMap<String, NodeAssignment> = records::all_node_assignments(&r)?
            .into_iter()
            .map(|a| (a.node.clone(), a))
            .collect();
        Ok(nodes
            .into_iter()
            .map(|n| {
                let a = assignments.get(&n.name);
                NodeView {
                    workspace_id: a.map(|a| a.workspace_id),
                    assigned_at: a.map(|a| a.assigned_at),
                    node: n,
                }
            })
            .collect())
    }

    /// The nodes dedicated to a workspace (anyone who sees the workspace).
    pub fn workspace_nodes(
        &self,
        actor: &Actor,
        ws: WorkspaceId,
    ) -> OpsResult<Vec<NodeAssignment>> {
        let r = self.store.read()?;
        workspace_for(&r, actor, ws, Action::WorkspaceRead)?;
        Ok(records::all_node_assignments(&r)?
            .into_iter()
            .filter(|a| a.workspace_id == ws)
            .collect())
    }

    /// Dedicates a node to a workspace whose plan allows it.
    pub fn assign_node(
        &self,
        actor: &Actor,
        ws_id: WorkspaceId,
        input: NewAssignment,
    ) -> OpsResult<NodeAssignment> {
        require_platform_admin(actor)?;
        let node = input.node.trim().to_string();
        if node.is_empty() {
            return Err(invalid("node", "must not be empty"));
        }
        if let Some(nodes) = self.inventory() {
            let Some(n) = nodes.iter().find(|n| n.name == node) else {
                return Err(invalid(
                    "node",
                    format!("there is no node {node:?} on the host"),
                ));
            };
            if n.roles
                .iter()
                .any(|r| r == "control-plane" || r == "master")
            {
                return Err(invalid(
                    "node",
                    format!("{node} runs the K3s control plane; dedicate agent nodes only"),
                ));
            }
        }
        let tx = self.store.write()?;
        let ws = records::get_workspace(&tx, ws_id)?.ok_or(OpsError::NotFound("workspace"))?;
        if ws.state == WorkspaceState::Deleting {
            return Err(OpsError::Conflict("the workspace is being deleted".into()));
        }
        let plan = plan_for(&tx, &ws.plan_id, "plan")?;
        if !plan.allows_dedicated_nodes() {
            return Err(OpsError::Conflict(format!(
                "plan {:?} does not include dedicated nodes; move the workspace to a plan that does",
                plan.id
            )));
        }
        let all = records::all_node_assignments(&tx)?;
        if let Some(a) = all.iter().find(|a| a.node == node) {
            return Err(OpsError::Conflict(if a.workspace_id == ws_id {
                format!("{node} is already dedicated to this workspace")
            } else {
                format!(
                    "{node} is already dedicated to workspace {}",
                    a.workspace_id
                )
            }));
        }
        if let Some(nodes) = self.inventory() {
            // K3K's node agents (one per node, for every shared-mode workspace, dedicated or
            // not) run only on nodes without a taint they do not tolerate.
            let shared_left = nodes.iter().any(|n| {
                n.name != node
                    && !all.iter().any(|a| a.node == n.name)
                    && crate::domain::overhead::node_runs_shared_agent(
                        n.taints.iter().map(|t| (t.key.as_str(), t.effect.as_str())),
                    )
            });
            if !shared_left {
                return Err(OpsError::Conflict(format!(
                    "dedicating {node} would leave no shared node: K3K's node agents, which every workspace needs for its pods to be scheduled, run only on shared untainted nodes"
                )));
            }
        }
        let mine = all.iter().filter(|a| a.workspace_id == ws_id).count();
        if mine as u64 >= u64::from(plan.max_dedicated_nodes) {
            return Err(OpsError::Conflict(format!(
                "dedicated node limit reached: plan {:?} allows {}; {mine} in use",
                plan.id, plan.max_dedicated_nodes
            )));
        }
        let now = self.now();
        let interval = NodeInterval {
            id: AuditId::generate(),
            node: node.clone(),
            workspace_id: ws_id,
            org_id: ws.org_id,
            from: now,
            until: None,
        };
        let a = NodeAssignment {
            node: node.clone(),
            workspace_id: ws_id,
            assigned_at: now,
            interval_id: interval.id,
        };
        records::put_node_assignment(&tx, &a, &interval)?;
        self.meter_workspace(&tx, &ws)?;
        let mut ev = self.event(actor, "node.assign", &node, Some(ws.org_id));
        ev.detail = ws_id.to_string();
        records::append_audit(&tx, &ev)?;
        self.commit(tx, &[Change::Workspace(ws_id)])?;
        Ok(a)
    }

    /// Ends a dedication; the reconciler evicts the workspace's pods and cleans the node.
    pub fn release_node(&self, actor: &Actor, ws_id: WorkspaceId, node: &str) -> OpsResult<()> {
        require_platform_admin(actor)?;
        let tx = self.store.write()?;
        let ws = records::get_workspace(&tx, ws_id)?.ok_or(OpsError::NotFound("workspace"))?;
        let a = records::node_assignment(&tx, node)?
            .filter(|a| a.workspace_id == ws_id)
            .ok_or(OpsError::NotFound("dedicated node"))?;
        records::end_node_assignment(&tx, &a, self.now())?;
        self.meter_workspace(&tx, &ws)?;
        let mut ev = self.event(actor, "node.release", node, Some(ws.org_id));
        ev.detail = ws_id.to_string();
        records::append_audit(&tx, &ev)?;
        self.commit(tx, &[Change::Workspace(ws_id)])
    }

    /// The workspace a node is dedicated to, if any (the node watch asks).
    pub fn node_owner(&self, node: &str) -> OpsResult<Option<WorkspaceId>> {
        Ok(records::node_assignment(&self.store.read()?, node)?.map(|a| a.workspace_id))
    }

    /// The dedication intervals of a workspace (for billing node-hours).
    pub fn node_intervals(&self, ws: WorkspaceId) -> OpsResult<Vec<NodeInterval>> {
        Ok(records::node_intervals(&self.store.read()?, ws)?)
    }
}
