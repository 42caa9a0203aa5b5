//! Dedicated nodes on the host: the inventory (a watch-backed cache the API lists from) and
//! the per-workspace node pass. Assigned nodes carry kaas's pool label (server-side apply of
//! that one label) and taint (a merge patch with the resourceVersion read, because
//! `spec.taints` is replaced whole by every patch type — every taint kaas does not own is
//! kept). A released node is cordoned (if kaas had to), the workspace's pods on it are
//! evicted through the Eviction API, the label and taint go, and it is uncordoned.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{EvictParams, ListParams, Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde_json::{Value, json};

use super::error::{Error, Result};
use super::kubeapi::{is_not_found, is_synced};
use crate::domain::WorkspaceId;
use crate::host::names;
use crate::host::nodes::{
    dedicated_node_patch, released_node_patch, taints_merge_patch, taints_with_ours,
    taints_without_ours,
};
use crate::ops::nodes::{HostNode, NodeCondition, NodeInventory, NodeTaint};

/// Marks a node kaas cordoned itself, so it uncordons only those.
const CORDONED_BY_KAAS: &str = "kaas.hexabase.ai/cordoned-for-release";

/// The host's nodes, kept current by a watch.
pub struct WatchedNodes {
    store: std::sync::RwLock<Option<Store<Node>>>,
}

impl WatchedNodes {
    pub fn new() -> Arc<WatchedNodes> {
        Arc::new(WatchedNodes {
            store: std::sync::RwLock::new(None),
        })
    }

    /// Starts the watch; `on_change` hears every node that changed.
    pub fn start(&self, client: Client, on_change: impl Fn(&Node) + Send + 'static) {
        let (reader, writer) = reflector::store();
        if let Ok(mut s) = self.store.write() {
            *s = Some(reader);
        }
        let api: Api<Node> = Api::all(client);
        tokio::spawn(async move {
            use futures::StreamExt;
            let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()))
                .default_backoff()
                .touched_objects();
            futures::pin_mut!(stream);
            while let Some(item) = stream.next().await {
                match item {
                    Ok(node) => on_change(&node),
                    Err(e) => tracing::debug!(error = %e, "node watch interrupted; retrying"),
                }
            }
        });
    }
}

impl WatchedNodes {
    /// A cache that has listed `nodes` and watches nothing (for tests of a pass).
    #[cfg(test)]
    pub fn listed(nodes: Vec<Node>) -> Arc<WatchedNodes> {
        let (reader, mut writer) = reflector::store();
        writer.apply_watcher_event(&watcher::Event::Init);
        for n in nodes {
            writer.apply_watcher_event(&watcher::Event::InitApply(n));
        }
        writer.apply_watcher_event(&watcher::Event::InitDone);
        Arc::new(WatchedNodes {
            store: std::sync::RwLock::new(Some(reader)),
        })
    }

    /// The cached nodes, once the watch has listed them.
    fn snapshot(&self) -> Option<Vec<Arc<Node>>> {
        let guard = self.store.read().ok()?;
        let store = guard.as_ref()?;
        is_synced(store).then(|| store.state())
    }
}

impl WatchedNodes {
    /// How many nodes run K3K's shared-mode node agent (one pod each, counted in every
    /// shared workspace's quota), once the watch has listed the nodes.
    pub fn shared_agent_nodes(&self) -> Option<u32> {
        let nodes = self.snapshot()?;
        let count = nodes
            .iter()
            .filter(|n| {
                let taints = n.spec.as_ref().and_then(|s| s.taints.as_ref());
                crate::domain::overhead::node_runs_shared_agent(
                    taints
                        .into_iter()
                        .flatten()
                        .map(|t| (t.key.as_str(), t.effect.as_str())),
                )
            })
            .count();
        Some(u32::try_from(count).unwrap_or(u32::MAX))
    }
}

impl WatchedNodes {
    /// Every InternalIP and ExternalIP of the host's nodes, once the watch has listed them:
    /// what no workspace pod may reach (`host::isolation`).
    pub fn addresses(&self) -> Option<Vec<String>> {
        let nodes = self.snapshot()?;
        let mut out: Vec<String> = nodes
            .iter()
            .filter_map(|n| n.status.as_ref()?.addresses.as_ref())
            .flatten()
            .filter(|a| a.type_ == "InternalIP" || a.type_ == "ExternalIP")
            .map(|a| a.address.clone())
            .collect();
        out.sort();
        out.dedup();
        Some(out)
    }
}

impl NodeInventory for WatchedNodes {
    fn nodes(&self) -> Option<Vec<HostNode>> {
        let guard = self.store.read().ok()?;
        let store = guard.as_ref()?;
        // Until the first list arrived the cache is empty for lack of knowledge, not of nodes.
        if !is_synced(store) {
            return None;
        }
        let mut nodes: Vec<HostNode> = store.state().iter().map(|n| host_node(n)).collect();
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        Some(nodes)
    }
}

fn quantities(
    map: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
) -> BTreeMap<String, String> {
    map.map(|m| m.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect())
        .unwrap_or_default()
}

/// What the API shows of a node.
pub fn host_node(n: &Node) -> HostNode {
    let labels = n.metadata.labels.clone().unwrap_or_default();
    let mut roles: Vec<String> = labels
        .keys()
        .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
        .map(str::to_string)
        .collect();
    roles.sort();
    let status = n.status.as_ref();
    let conditions: Vec<NodeCondition> = status
        .and_then(|s| s.conditions.as_ref())
        .map(|cs| {
            cs.iter()
                .map(|c| NodeCondition {
                    kind: c.type_.clone(),
                    status: c.status.clone(),
                    reason: c.reason.clone(),
                    message: c.message.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    let spec = n.spec.as_ref();
    HostNode {
        name: n.metadata.name.clone().unwrap_or_default(),
        roles,
        ready: conditions
            .iter()
            .any(|c| c.kind == "Ready" && c.status == "True"),
        unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
        capacity: quantities(status.and_then(|s| s.capacity.as_ref())),
        allocatable: quantities(status.and_then(|s| s.allocatable.as_ref())),
        conditions,
        labels,
        taints: spec
            .and_then(|s| s.taints.as_ref())
            .map(|ts| {
                ts.iter()
                    .map(|t| NodeTaint {
                        key: t.key.clone(),
                        value: t.value.clone(),
                        effect: t.effect.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// The outcome of a node pass for one workspace.
#[derive(Debug, Default)]
pub struct NodePass {
    /// Assigned nodes that are missing or not Ready (the workspace is degraded).
    pub problems: Vec<String>,
    /// Releases still waiting for pods to leave.
    pub releasing: Vec<String>,
}

/// Makes the host's nodes match the assignments of one workspace.
pub async fn sync(
    client: &Client,
    cache: &WatchedNodes,
    ws: WorkspaceId,
    assigned: &[String],
) -> Result<NodePass> {
    let nodes: Api<Node> = Api::all(client.clone());
    let pool = names::node_pool(ws);
    let mut pass = NodePass::default();
    let err = |what: &str, e: kube::Error| Error::kube(what, e);
    // Read from the watch cache when it is synced; writes carry the resourceVersion read,
    // so a stale copy only costs a 409 and a retry.
    let snapshot = cache.snapshot();
    for name in assigned {
        let found = match &snapshot {
            Some(all) => all
                .iter()
                .find(|n| n.metadata.name.as_deref() == Some(name.as_str()))
                .map(|n| (**n).clone()),
            None => nodes
                .get_opt(name)
                .await
                .map_err(|e| err("reading a dedicated node", e))?,
        };
        let Some(node) = found else {
            pass.problems
                .push(format!("dedicated node {name} is gone from the host"));
            continue;
        };
        let labels = node.metadata.labels.clone().unwrap_or_default();
        if labels.get(names::NODE_POOL_LABEL) != Some(&pool) {
            let params = PatchParams::apply(names::FIELD_MANAGER).force();
            nodes
                .patch(
                    name,
                    &params,
                    &Patch::Apply(&dedicated_node_patch(name, ws)),
                )
                .await
                .map_err(|e| err("labelling a dedicated node", e))?;
            tracing::info!(node = %name, workspace = %ws, "applied the dedicated-node label");
        }
        let existing = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default();
        let wanted = taints_with_ours(&existing, ws);
        if wanted != existing {
            let rv = node.metadata.resource_version.clone().unwrap_or_default();
            nodes
                .patch(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(&taints_merge_patch(&rv, &wanted)),
                )
                .await
                .map_err(|e| err("tainting a dedicated node", e))?;
            tracing::info!(node = %name, workspace = %ws, "applied the dedicated-node taint");
        }
        move_node_agents_off(client, name).await?;
        if !host_node(&node).ready {
            pass.problems
                .push(format!("dedicated node {name} is NotReady"));
        }
    }
    let labelled: Vec<Node> = match &snapshot {
        Some(all) => all
            .iter()
            .filter(|n| {
                n.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(names::NODE_POOL_LABEL))
                    == Some(&pool)
            })
            .map(|n| (**n).clone())
            .collect(),
        None => {
            nodes
                .list(&ListParams::default().labels(&format!("{}={pool}", names::NODE_POOL_LABEL)))
                .await
                .map_err(|e| err("listing the workspace's nodes", e))?
                .items
        }
    };
    for node in labelled {
        let name = node.metadata.name.clone().unwrap_or_default();
        if !assigned.contains(&name) && !release(client, ws, &node).await? {
            pass.releasing.push(name);
        }
    }
    Ok(pass)
}

/// One step of releasing a node; true when the node is clean again.
async fn release(client: &Client, ws: WorkspaceId, node: &Node) -> Result<bool> {
    let nodes: Api<Node> = Api::all(client.clone());
    let name = node.metadata.name.clone().unwrap_or_default();
    let err = |what: &str, e: kube::Error| Error::kube(format!("releasing {name}, {what}"), e);
    let unschedulable = node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false);
    if !unschedulable {
        let body = json!({"metadata": {"annotations": {CORDONED_BY_KAAS: "true"}}, "spec": {"unschedulable": true}});
        nodes
            .patch(&name, &PatchParams::default(), &Patch::Merge(&body))
            .await
            .map_err(|e| err("cordoning", e))?;
        tracing::info!(node = %name, workspace = %ws, "cordoned a released node");
    }
    // Evict the workspace's pods from the node (K3K shared mode runs them in its namespace).
    // NB: not DaemonSet pods, as `kubectl drain --ignore-daemonsets`: they tolerate
    // `unschedulable` and come straight back, so waiting for them would never end; they go
    // with the label and taint. (K3K's own node agents never run on a dedicated node.)
    let pods: Api<Pod> = Api::namespaced(client.clone(), &names::namespace(ws));
    let on_node: Vec<Pod> = pods
        .list(&ListParams::default().fields(&format!("spec.nodeName={name}")))
        .await
        .map_err(|e| err("listing pods", e))?
        .items
        .into_iter()
        .filter(|p| !owned_by_daemonset(p))
        .collect();
    if !on_node.is_empty() {
        for p in &on_node {
            let pod = p.metadata.name.clone().unwrap_or_default();
            match pods.evict(&pod, &EvictParams::default()).await {
                Ok(_) => {
                    tracing::info!(node = %name, pod = %pod, "evicted a pod from a released node")
                }
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(err("evicting a pod", e)),
            }
        }
        return Ok(false);
    }
    let params = PatchParams::apply(names::FIELD_MANAGER).force();
    nodes
        .patch(&name, &params, &Patch::Apply(&released_node_patch(&name)))
        .await
        .map_err(|e| err("removing the label", e))?;
    let fresh = nodes
        .get(&name)
        .await
        .map_err(|e| err("reading it back", e))?;
    let existing = fresh
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let wanted = taints_without_ours(&existing, &names::node_pool(ws));
    let cordoned_by_us = fresh
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(CORDONED_BY_KAAS));
    let rv = fresh.metadata.resource_version.clone().unwrap_or_default();
    let mut body = taints_merge_patch(&rv, &wanted);
    if cordoned_by_us {
        if let Some(spec) = body.pointer_mut("/spec").and_then(Value::as_object_mut) {
            spec.insert("unschedulable".into(), json!(false));
        }
        if let Some(meta) = body.pointer_mut("/metadata").and_then(Value::as_object_mut) {
            meta.insert("annotations".into(), json!({CORDONED_BY_KAAS: null}));
        }
    }
    nodes
        .patch(&name, &PatchParams::default(), &Patch::Merge(&body))
        .await
        .map_err(|e| err("removing the taint", e))?;
    tracing::info!(node = %name, workspace = %ws, "released a dedicated node");
    Ok(true)
}

fn owned_by_daemonset(pod: &Pod) -> bool {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "DaemonSet" && o.controller == Some(true))
}

/// Evicts K3K's shared-mode node agents (of every workspace) from a dedicated node. The
/// taint is NoSchedule, which keeps new pods off but leaves running ones, and the DaemonSet
/// controller keeps a daemon pod running on a node that became NoSchedule-tainted; once
/// evicted it does not place one there again, because the agents tolerate no such taint.
async fn move_node_agents_off(client: &Client, node: &str) -> Result<()> {
    let pods: Api<Pod> = Api::all(client.clone());
    let params = ListParams::default()
        .labels(K3K_SHARED_AGENT_LABELS)
        .fields(&format!("spec.nodeName={node}"));
    let agents = pods
        .list(&params)
        .await
        .map_err(|e| Error::kube(format!("listing K3K's node agents on {node}"), e))?;
    for p in agents.items.iter().filter(|p| owned_by_daemonset(p)) {
        let (Some(ns), Some(name)) = (p.metadata.namespace.as_deref(), p.metadata.name.as_deref())
        else {
            continue;
        };
        if p.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let api: Api<Pod> = Api::namespaced(client.clone(), ns);
        match api.evict(name, &EvictParams::default()).await {
            Ok(_) => {
                tracing::info!(node = %node, pod = %name, "moved a K3K node agent off a dedicated node")
            }
            Err(e) if is_not_found(&e) => {}
            Err(e) => {
                return Err(Error::kube(
                    format!("evicting K3K's node agent {ns}/{name} from {node}"),
                    e,
                ));
            }
        }
    }
    Ok(())
}

/// The labels K3K puts on its shared-mode node agent pods (agent/shared.go).
const K3K_SHARED_AGENT_LABELS: &str = "type=agent,mode=shared";
