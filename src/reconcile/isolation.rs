//! Applies a workspace's isolation objects (`host::isolation`): kaas's NetworkPolicies and
//! priority-class ResourceQuotas in its namespace, each only when it differs from the host's.

use k8s_openapi::api::core::v1::ResourceQuota;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::{Api, Client};

use super::error::{Error, Result};
use super::kubeapi::apply_if_changed;

/// Applies every NetworkPolicy and quota of the namespace `ns`.
pub async fn apply(
    client: &Client,
    ns: &str,
    policies: &[NetworkPolicy],
    quotas: &[ResourceQuota],
) -> Result<()> {
    let netpols: Api<NetworkPolicy> = Api::namespaced(client.clone(), ns);
    for p in policies {
        let name = p.metadata.name.as_deref().unwrap_or_default();
        apply_if_changed(&netpols, name, p)
            .await
            .map_err(|e| Error::kube(format!("applying the network policy {name}"), e))?;
    }
    let rqs: Api<ResourceQuota> = Api::namespaced(client.clone(), ns);
    for q in quotas {
        let name = q.metadata.name.as_deref().unwrap_or_default();
        apply_if_changed(&rqs, name, q)
            .await
            .map_err(|e| Error::kube(format!("applying the quota {name}"), e))?;
    }
    Ok(())
}
