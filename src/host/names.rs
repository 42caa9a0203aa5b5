//! Every name, label, annotation and field manager kaas derives for the host cluster and the
//! virtual clusters, in one place. Invariant: all of them are pure functions of ids, so the
//! reconciler, cleanup and `kaas doctor` always agree on what an object is called, and every
//! derived name is a valid Kubernetes name for any id (checked by the tests below).
//!
//! A workspace's `short` is its id's lower-case 26-character ULID (`WorkspaceId::short`);
//! its display id `ws_<short>` (29 characters) is the value of the workspace-id label.

use std::collections::BTreeMap;

use crate::domain::{ProjectId, WorkspaceId};

/// The one field manager kaas uses for server-side apply, on the host and in tenants.
pub const FIELD_MANAGER: &str = "kaas";

/// `app.kubernetes.io/managed-by=kaas` marks every object kaas creates.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "kaas";

/// Carried by every object kaas creates for a workspace; the reconciler's watches select on
/// it to map an event back to its workspace.
pub const WORKSPACE_ID_LABEL: &str = "hexabase.ai/workspace-id";
/// Carried by objects kaas creates for a project inside a virtual cluster.
pub const PROJECT_ID_LABEL: &str = "hexabase.ai/project-id";
/// Host node label that assigns a node to a workspace's dedicated pool.
pub const NODE_POOL_LABEL: &str = "hexabase.ai/node-pool";
/// Taint key of dedicated nodes; the value is the pool name (`ws-<short>`).
pub const DEDICATED_TAINT_KEY: &str = "dedicated";
/// Every pool name starts with this; a `dedicated` taint whose value does not is not kaas's.
pub const POOL_PREFIX: &str = "ws-";

/// K3K binds a VirtualClusterPolicy to a namespace by this namespace label.
pub const POLICY_NAME_LABEL: &str = "policy.k3k.io/policy-name";
/// K3K's finalizer on a Cluster (the reconciler waits for it before removing the namespace).
pub const K3K_CLUSTER_FINALIZER: &str = "cluster.k3k.io/finalizer";
/// Key of the admin kubeconfig in `k3k-<cluster>-kubeconfig`.
pub const K3K_KUBECONFIG_KEY: &str = "kubeconfig.yaml";
/// Key of the CA bundle JSON in `k3k-<cluster>-bootstrap`.
pub const K3K_BOOTSTRAP_KEY: &str = "bootstrap";

/// PodTolerationRestriction: tolerations merged into every pod of the namespace.
pub const DEFAULT_TOLERATIONS_ANNOTATION: &str = "scheduler.alpha.kubernetes.io/defaultTolerations";
/// PodTolerationRestriction: a pod with any toleration not covered by this list is refused.
pub const TOLERATIONS_WHITELIST_ANNOTATION: &str =
    "scheduler.alpha.kubernetes.io/tolerationsWhitelist";

/// Pod Security Admission namespace labels (the four K3K's policy controller rewrites).
pub const PSA_ENFORCE: &str = "pod-security.kubernetes.io/enforce";
pub const PSA_ENFORCE_VERSION: &str = "pod-security.kubernetes.io/enforce-version";
pub const PSA_WARN: &str = "pod-security.kubernetes.io/warn";
pub const PSA_WARN_VERSION: &str = "pod-security.kubernetes.io/warn-version";

/// Host namespace of a workspace: `kaas-ws-<short>` (34 characters).
pub fn namespace(ws: WorkspaceId) -> String {
    format!("kaas-ws-{}", ws.short())
}

/// The labels K3K puts on its shared-mode node agent DaemonSets, as a selector.
pub const K3K_SHARED_AGENT_SELECTOR: &str = "type=agent,mode=shared";

/// The workspace whose host namespace is `ns` (`kaas-ws-<short>`), if it is one.
pub fn workspace_of_namespace(ns: &str) -> Option<WorkspaceId> {
    ns.strip_prefix("kaas-ws-")
        .and_then(|short| format!("ws_{short}").parse().ok())
}

/// K3K Cluster name: `ws-<short>` (29 characters; K3K wants ≤ ~36 so that the names it
/// derives, like `k3k-<cluster>-kubeconfig`, stay valid).
pub fn cluster(ws: WorkspaceId) -> String {
    format!("ws-{}", ws.short())
}

/// VirtualClusterPolicy name (cluster-scoped): `kaas-ws-<short>`.
pub fn policy(ws: WorkspaceId) -> String {
    format!("kaas-ws-{}", ws.short())
}

/// Dedicated node pool of a workspace: `ws-<short>`; the value of both the node label and
/// the taint.
pub fn node_pool(ws: WorkspaceId) -> String {
    format!("{POOL_PREFIX}{}", ws.short())
}

/// The workspace-id label value: the display id `ws_<short>`.
pub fn workspace_label_value(ws: WorkspaceId) -> String {
    ws.to_string()
}

/// The project-id label value: the display id `prj_<short>`.
pub fn project_label_value(project: ProjectId) -> String {
    project.to_string()
}

/// `workspace-id` and `managed-by`: the labels every object of a workspace carries.
pub fn workspace_labels(ws: WorkspaceId) -> BTreeMap<String, String> {
    BTreeMap::from([
        (WORKSPACE_ID_LABEL.to_string(), workspace_label_value(ws)),
        (MANAGED_BY_LABEL.to_string(), MANAGED_BY_VALUE.to_string()),
    ])
}

/// `hexabase.ai/node-pool=ws-<short>`: the node selector of a workspace with dedicated nodes.
pub fn node_pool_selector(ws: WorkspaceId) -> BTreeMap<String, String> {
    BTreeMap::from([(NODE_POOL_LABEL.to_string(), node_pool(ws))])
}

/// kaas's NodePort Service for a virtual cluster's API server, in the workspace namespace.
pub const API_SERVICE: &str = "kaas-api";
/// The port a k3s server's API listens on in its pod.
pub const K3S_SERVER_PORT: i32 = 6443;

/// The labels K3K puts on a cluster's server pods (`cluster=<name>`, `role=server`).
pub fn k3k_server_pod_labels(cluster: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("cluster".to_string(), cluster.to_string()),
        ("role".to_string(), "server".to_string()),
    ])
}

/// K3K's Secrets holding the k3s servers' `config.yaml` (first server, then the others).
pub fn k3k_server_config_secrets(cluster: &str) -> [String; 2] {
    [
        format!("k3k-{cluster}-init-server-config"),
        format!("k3k-{cluster}-server-config"),
    ]
}
/// Key of the k3s configuration in those Secrets.
pub const K3K_SERVER_CONFIG_KEY: &str = "config.yaml";
/// Cluster annotation kaas sets to make K3K reconcile (and rewrite missing config Secrets).
pub const CONFIG_REFRESH_ANNOTATION: &str = "kaas.hexabase.ai/config-refreshed-at";

/// `k3k-<cluster>-kubelet`: the DaemonSet of K3K's shared-mode node agents.
pub fn k3k_kubelet_daemonset(cluster: &str) -> String {
    format!("k3k-{cluster}-kubelet")
}

/// `k3k-<cluster>-server`: the StatefulSet K3K runs the k3s servers in.
pub fn k3k_server_statefulset(cluster: &str) -> String {
    format!("k3k-{cluster}-server")
}

/// `k3k-<cluster>-service`: the Service (443 → 6443) K3K exposes the API server with.
pub fn k3k_service(cluster: &str) -> String {
    format!("k3k-{cluster}-service")
}

/// `k3k-<cluster>-bootstrap`: the Secret holding the cluster's CAs and their keys.
pub fn k3k_bootstrap_secret(cluster: &str) -> String {
    format!("k3k-{cluster}-bootstrap")
}

/// `k3k-<cluster>-kubeconfig`: the Secret holding K3K's admin kubeconfig.
pub fn k3k_kubeconfig_secret(cluster: &str) -> String {
    format!("k3k-{cluster}-kubeconfig")
}

/// `k3k-<cluster>-token`: the Secret holding the k3s join token.
pub fn k3k_token_secret(cluster: &str) -> String {
    format!("k3k-{cluster}-token")
}

/// The group a workspace role is bound to (named in `domain`, where the rule that hands the
/// groups out lives).
pub use crate::domain::groups::workspace_group;

/// Whether `s` is a DNS-1123 label (namespace, Service, and most object names).
pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// Whether `s` is a valid label value: ≤ 63 characters of `[A-Za-z0-9_.-]`, beginning and
/// ending with an alphanumeric character (or empty).
pub fn is_label_value(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::WorkspaceRole;

    fn sample_ids() -> Vec<WorkspaceId> {
        let mut ids = vec![
            WorkspaceId(0),
            WorkspaceId(u128::MAX),
            WorkspaceId(1 << 100),
        ];
        ids.extend((0..50).map(|_| WorkspaceId::generate()));
        ids
    }

    #[test]
    fn derived_names_are_valid_kubernetes_names_for_any_id() {
        for ws in sample_ids() {
            let c = cluster(ws);
            assert!(c.len() <= 36, "{c} too long for K3K");
            let names = [
                namespace(ws),
                c.clone(),
                policy(ws),
                node_pool(ws),
                k3k_server_statefulset(&c),
                k3k_service(&c),
                k3k_bootstrap_secret(&c),
                k3k_kubeconfig_secret(&c),
                k3k_token_secret(&c),
            ];
            for n in names {
                assert!(is_dns1123_label(&n), "{n} is not a DNS-1123 label");
            }
            // StatefulSet pods get `controller-revision-hash=<sts>-<10 chars>`: still a label.
            assert!(k3k_server_statefulset(&c).len() + 11 <= 63);
        }
    }

    #[test]
    fn label_values_are_valid_for_any_id() {
        for ws in sample_ids() {
            for (k, v) in workspace_labels(ws)
                .into_iter()
                .chain(node_pool_selector(ws))
            {
                assert!(is_label_value(&v), "{k}={v}");
            }
            assert_eq!(workspace_label_value(ws).len(), 29);
            assert!(is_label_value(&project_label_value(ProjectId::generate())));
        }
    }

    #[test]
    fn names_have_the_documented_shapes() {
        let ws: WorkspaceId = "ws_01hzy3v8k2m4n6p8q0r2s4t6v8".parse().unwrap();
        assert_eq!(namespace(ws), "kaas-ws-01hzy3v8k2m4n6p8q0r2s4t6v8");
        assert_eq!(cluster(ws), "ws-01hzy3v8k2m4n6p8q0r2s4t6v8");
        assert_eq!(policy(ws), namespace(ws));
        assert_eq!(workspace_of_namespace(&namespace(ws)), Some(ws));
        assert_eq!(workspace_of_namespace("kube-system"), None);
        assert_eq!(workspace_of_namespace("kaas-ws-nonsense"), None);
        assert_eq!(node_pool(ws), cluster(ws));
        assert_eq!(
            k3k_kubeconfig_secret(&cluster(ws)),
            "k3k-ws-01hzy3v8k2m4n6p8q0r2s4t6v8-kubeconfig"
        );
        assert_eq!(
            workspace_group(ws, WorkspaceRole::Admin),
            "kaas:ws:ws_01hzy3v8k2m4n6p8q0r2s4t6v8:workspace-admin"
        );
    }

    #[test]
    fn validators_refuse_bad_names() {
        for bad in ["", "-a", "a-", "A", "a_b", &"a".repeat(64)] {
            assert!(!is_dns1123_label(bad), "{bad}");
        }
        for bad in ["-a", "a.", "a b", &"a".repeat(64)] {
            assert!(!is_label_value(bad), "{bad}");
        }
        assert!(is_label_value("ws_01hzy3v8k2m4n6p8q0r2s4t6v8"));
    }
}
