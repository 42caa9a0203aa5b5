//! Applies a workspace's isolation objects (`host::isolation`): kaas's NetworkPolicies and
//! priority-class ResourceQuotas in its namespace, each only when it differs from the host's.

use k8s_openapi::api::core::v1::ResourceQuota;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::{Api, Client};

use super::context::Caches;
use super::error::{Error, Result};
use super::kubeapi::{apply_cached, cached};

/// Applies every NetworkPolicy and quota of the namespace `ns`, comparing with the watch
/// caches' copies once they have synced (an in-sync pass reads nothing).
pub async fn apply(
    client: &Client,
    caches: Option<&Caches>,
    ns: &str,
    policies: &[NetworkPolicy],
    quotas: &[ResourceQuota],
) -> Result<()> {
    let netpols: Api<NetworkPolicy> = Api::namespaced(client.clone(), ns);
    for p in policies {
        let name = p.metadata.name.as_deref().unwrap_or_default();
        let have = caches.and_then(|c| cached(&c.network_policies, name, Some(ns)));
        apply_cached(&netpols, name, p, have)
            .await
            .map_err(|e| Error::kube(format!("applying the network policy {name}"), e))?;
    }
    let rqs: Api<ResourceQuota> = Api::namespaced(client.clone(), ns);
    for q in quotas {
        let name = q.metadata.name.as_deref().unwrap_or_default();
        let have = caches.and_then(|c| cached(&c.quotas, name, Some(ns)));
        apply_cached(&rqs, name, q, have)
            .await
            .map_err(|e| Error::kube(format!("applying the quota {name}"), e))?;
    }
    Ok(())
}
