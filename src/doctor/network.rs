//! The NetworkPolicy check: kaas's isolation of workspaces (`host::isolation`) is only as
//! good as the host's enforcement, which K3s does with its embedded network policy controller
//! unless started with `--disable-network-policy`. K3s records each node's arguments (config
//! files included) in the node annotation `k3s.io/node-args`; that is what this reads.

use k8s_openapi::api::core::v1::Node;
use kube::{Api, Client};

use super::{Check, fail, one_line, pass, warn};
use crate::host::isolation::{
    Enforcement, K3S_NODE_ARGS_ANNOTATION, NETWORK_POLICY_FIX, network_policy_enforcement,
};

pub(super) async fn network_policy(client: &Client) -> Check {
    const NAME: &str = "network-policy";
    let nodes: Api<Node> = Api::all(client.clone());
    let list = match nodes.list_metadata(&Default::default()).await {
        Ok(l) => l,
        Err(e) => {
            return warn(
                NAME,
                format!("cannot list the nodes: {}", one_line(&e)),
                "give kaas's host account the installer's ClusterRole (nodes: list)",
            );
        }
    };
    let seen = network_policy_enforcement(list.items.iter().map(|n| {
        (
            n.metadata.name.as_deref().unwrap_or_default(),
            n.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(K3S_NODE_ARGS_ANNOTATION))
                .map(String::as_str),
        )
    }));
    match seen {
        Enforcement::Enforced => pass(
            NAME,
            format!(
                "K3s's network policy controller runs on all {} nodes",
                list.items.len()
            ),
        ),
        Enforcement::Disabled(names) => fail(
            NAME,
            format!(
                "K3s runs with --disable-network-policy on {}",
                names.join(", ")
            ),
            NETWORK_POLICY_FIX,
        ),
        Enforcement::Unknown => warn(
            NAME,
            "not every node is K3s (no k3s.io/node-args): cannot tell whether the CNI enforces NetworkPolicy",
            "make sure the host's CNI enforces NetworkPolicy (K3s's default flannel + kube-router does)",
        ),
    }
}
