//! Quota usage from the host for the meter: a watch-backed cache of the ResourceQuotas K3K's
//! policy controller keeps in each workspace namespace, whose `status.used` the host's
//! quota controller fills in (requests of the pods the virtual cluster runs there), and of
//! K3K's own pods there (k3s servers and node agents), whose requests are the cluster's
//! overhead: the meter records tenant usage, `used` less those.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, ResourceQuota};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

use crate::domain::{Quota, WorkspaceId};
use crate::host::names;
use crate::host::quantity::parse_quantity;
use crate::ops::meter::UsageSource;

/// Label K3K puts on the objects its VirtualClusterPolicy controller makes in a namespace.
const POLICY_NAME_LABEL: &str = "policy.k3k.io/policy-name";

/// K3K labels its server and agent pods `cluster=<name>`.
const K3K_CLUSTER_LABEL: &str = "cluster";

/// The host's K3K-managed ResourceQuotas and K3K's own pods, kept current by watches.
pub struct WatchedQuotas {
    store: std::sync::RwLock<Option<Store<ResourceQuota>>>,
    own_pods: std::sync::RwLock<Option<Store<Pod>>>,
}

impl WatchedQuotas {
    pub fn new() -> Arc<WatchedQuotas> {
        Arc::new(WatchedQuotas {
            store: std::sync::RwLock::new(None),
            own_pods: std::sync::RwLock::new(None),
        })
    }

    pub fn start(&self, client: Client) {
        let (reader, writer) = reflector::store();
        if let Ok(mut s) = self.store.write() {
            *s = Some(reader);
        }
        let (pods_reader, pods_writer) = reflector::store();
        if let Ok(mut s) = self.own_pods.write() {
            *s = Some(pods_reader);
        }
        let pods: Api<Pod> = Api::all(client.clone());
        let pods_cfg = watcher::Config::default().labels(K3K_CLUSTER_LABEL);
        tokio::spawn(async move {
            use futures::StreamExt;
            let stream = reflector::reflector(pods_writer, watcher(pods, pods_cfg))
                .default_backoff()
                .touched_objects();
            futures::pin_mut!(stream);
            while let Some(item) = stream.next().await {
                if let Err(e) = item {
                    tracing::debug!(error = %e, "K3K pod watch interrupted; retrying");
                }
            }
        });
        let api: Api<ResourceQuota> = Api::all(client);
        let cfg = watcher::Config::default().labels(POLICY_NAME_LABEL);
        tokio::spawn(async move {
            use futures::StreamExt;
            let stream = reflector::reflector(writer, watcher(api, cfg))
                .default_backoff()
                .touched_objects();
            futures::pin_mut!(stream);
            while let Some(item) = stream.next().await {
                if let Err(e) = item {
                    tracing::debug!(error = %e, "resource quota watch interrupted; retrying");
                }
            }
        });
    }
}

impl UsageSource for WatchedQuotas {
    fn quota_usage(&self, workspaces: &[WorkspaceId]) -> HashMap<WorkspaceId, Quota> {
        let Ok(guard) = self.store.read() else {
            return HashMap::new();
        };
        let Some(store) = guard.as_ref() else {
            return HashMap::new();
        };
        let by_ns: HashMap<String, Arc<ResourceQuota>> = store
            .state()
            .into_iter()
            .filter_map(|q| Some((q.metadata.namespace.clone()?, q)))
            .collect();
        let own = self.own_usage();
        workspaces
            .iter()
            .filter_map(|ws| {
                let ns = names::namespace(*ws);
                let q = by_ns.get(&ns)?;
                let used = q.status.as_ref()?.used.as_ref()?;
                let overhead = own.get(&ns).copied().unwrap_or_default();
                Some((*ws, quota_of(used).saturating_sub(&overhead)))
            })
            .collect()
    }
}

impl WatchedQuotas {
    /// Requests of K3K's own pods per namespace, as the quota controller counts them:
    /// pods not yet finished, each container's requests (a container with only limits was
    /// given requests equal to them at admission).
    fn own_usage(&self) -> HashMap<String, Quota> {
        let Ok(guard) = self.own_pods.read() else {
            return HashMap::new();
        };
        let Some(store) = guard.as_ref() else {
            return HashMap::new();
        };
        let mut out: HashMap<String, Quota> = HashMap::new();
        for pod in store.state() {
            let (Some(ns), Some(cluster)) = (
                pod.metadata.namespace.clone(),
                pod.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(K3K_CLUSTER_LABEL))
                    .cloned(),
            ) else {
                continue;
            };
            if !is_k3k_own_pod(&pod, &cluster) {
                continue;
            }
            let finished = pod
                .status
                .as_ref()
                .and_then(|s| s.phase.as_deref())
                .is_some_and(|p| p == "Succeeded" || p == "Failed");
            if finished {
                continue;
            }
            let entry = out.entry(ns).or_default();
            entry.pods += 1;
            for c in pod.spec.iter().flat_map(|s| &s.containers) {
                let requests = c.resources.as_ref().and_then(|r| r.requests.as_ref());
                let get = |k: &str| {
                    requests
                        .and_then(|r| r.get(k))
                        .and_then(|q| parse_quantity(&q.0))
                        .unwrap_or(0.0)
                };
                entry.cpu_millis += (get("cpu") * 1000.0).round() as u64;
                entry.memory_mib += (get("memory") / 1_048_576.0).round() as u64;
            }
        }
        out
    }
}

/// Whether a pod is one of K3K's own for `cluster`: controlled by its server StatefulSet or
/// its node agent DaemonSet (or, in virtual mode, agent Deployment's ReplicaSet). A label
/// alone is not enough: a tenant could put `cluster=` on a workload.
fn is_k3k_own_pod(pod: &Pod, cluster: &str) -> bool {
    let prefix = format!("k3k-{cluster}-");
    pod.metadata.owner_references.iter().flatten().any(|o| {
        o.controller == Some(true)
            && o.name.starts_with(&prefix)
            && matches!(o.kind.as_str(), "StatefulSet" | "DaemonSet" | "ReplicaSet")
    })
}

/// The used amounts in kaas's units (millicores, MiB, GiB, pods).
fn quota_of(used: &std::collections::BTreeMap<String, Quantity>) -> Quota {
    let get = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| used.get(*k))
            .and_then(|q| parse_quantity(&q.0))
            .unwrap_or(0.0)
    };
    Quota {
        cpu_millis: (get(&["requests.cpu", "cpu"]) * 1000.0).round() as u64,
        memory_mib: (get(&["requests.memory", "memory"]) / 1_048_576.0).round() as u64,
        storage_gib: (get(&["requests.storage"]) / 1_073_741_824.0).round() as u64,
        pods: get(&["pods", "count/pods"]).round() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn used_amounts_in_kaas_units() {
        let used = [
            ("requests.cpu".to_string(), Quantity("750m".into())),
            ("requests.memory".to_string(), Quantity("1Gi".into())),
            ("requests.storage".to_string(), Quantity("5Gi".into())),
            ("pods".to_string(), Quantity("3".into())),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            quota_of(&used),
            Quota {
                cpu_millis: 750,
                memory_mib: 1024,
                storage_gib: 5,
                pods: 3
            }
        );
    }
}
