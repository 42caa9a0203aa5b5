//! rbac::bootstrap: the bootstrap ClusterRoles and ClusterRoleBindings of a fresh v1.33
//! cluster (plugin/pkg/auth/authorizer/rbac/bootstrappolicy), those kaas relies on.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::{
    ALL_AUTHENTICATED, ALL_UNAUTHENTICATED, RbacObjects, SYSTEM_MASTERS,
    effective_cluster_role_rules,
};

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const READ_WRITE: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

fn bootstrap_role(
    name: &str,
    extra_labels: &[&str],
    rules: Value,
    aggregate_from: Option<&str>,
) -> Value {
    let mut labels = serde_json::Map::new();
    labels.insert("kubernetes.io/bootstrapping".into(), "rbac-defaults".into());
    for l in extra_labels {
        labels.insert((*l).to_string(), "true".into());
    }
    let mut cr = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
        },
        "rules": rules,
    });
    if let Some(label) = aggregate_from {
        cr["aggregationRule"] = json!({"clusterRoleSelectors": [{"matchLabels": {label: "true"}}]});
    }
    cr
}

const AGG_ADMIN: &str = "rbac.authorization.k8s.io/aggregate-to-admin";
const AGG_EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";
const AGG_VIEW: &str = "rbac.authorization.k8s.io/aggregate-to-view";

/// The bootstrap ClusterRoles kaas relies on, as a v1.33 kube-apiserver creates them:
/// `cluster-admin`; the aggregated `admin` ⊇ `edit` ⊇ `view` (empty rules, filled from the
/// `system:aggregate-to-*` roles by label); `system:basic-user` (self reviews),
/// `system:discovery` and `system:public-info-viewer`.
pub fn default_cluster_roles() -> Vec<Value> {
    let mut roles = bootstrap_cluster_roles();
    // A live cluster shows aggregated roles with the rules the aggregation controller wrote.
    let snapshot = RbacObjects {
        cluster_roles: roles.clone(),
        ..RbacObjects::default()
    };
    for cr in roles
        .iter_mut()
        .filter(|cr| cr.get("aggregationRule").is_some())
    {
        cr["rules"] = Value::Array(effective_cluster_role_rules(
            &snapshot,
            cr,
            &mut HashSet::new(),
        ));
    }
    roles
}

#[rustfmt::skip] // one rule per line reads like upstream's policy.go
fn bootstrap_cluster_roles() -> Vec<Value> {
    let aggregate_to_edit = json!([
        rule(&[""], &["pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets", "services/proxy"], READ),
        rule(&[""], &["serviceaccounts"], &["impersonate"]),
        rule(&[""], &["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"], WRITE),
        rule(&[""], &["pods/eviction"], &["create"]),
        rule(&[""], &["configmaps", "events", "persistentvolumeclaims", "replicationcontrollers",
            "replicationcontrollers/scale", "secrets", "serviceaccounts", "services", "services/proxy"], WRITE),
        rule(&[""], &["serviceaccounts/token"], &["create"]),
        rule(&["apps"], &["daemonsets", "deployments", "deployments/rollback", "deployments/scale",
            "replicasets", "replicasets/scale", "statefulsets", "statefulsets/scale"], WRITE),
        rule(&["autoscaling"], &["horizontalpodautoscalers"], WRITE),
        rule(&["batch"], &["cronjobs", "jobs"], WRITE),
        rule(&["extensions"], &["daemonsets", "deployments", "deployments/rollback", "deployments/scale",
            "ingresses", "networkpolicies", "replicasets", "replicasets/scale", "replicationcontrollers/scale"], WRITE),
        rule(&["policy"], &["poddisruptionbudgets"], WRITE),
        rule(&["networking.k8s.io"], &["ingresses", "networkpolicies"], WRITE),
        rule(&["coordination.k8s.io"], &["leases"], READ_WRITE),
    ]);
    let aggregate_to_view = json!([
        rule(&[""], &["configmaps", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status",
            "pods", "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts",
            "services", "services/status"], READ),
        rule(&[""], &["bindings", "events", "limitranges", "namespaces/status", "pods/log", "pods/status",
            "replicationcontrollers/status", "resourcequotas", "resourcequotas/status"], READ),
        rule(&[""], &["namespaces"], READ),
        rule(&["discovery.k8s.io"], &["endpointslices"], READ),
        rule(&["apps"], &["controllerrevisions", "daemonsets", "daemonsets/status", "deployments",
            "deployments/scale", "deployments/status", "replicasets", "replicasets/scale",
            "replicasets/status", "statefulsets", "statefulsets/scale", "statefulsets/status"], READ),
        rule(&["autoscaling"], &["horizontalpodautoscalers", "horizontalpodautoscalers/status"], READ),
        rule(&["batch"], &["cronjobs", "cronjobs/status", "jobs", "jobs/status"], READ),
        rule(&["extensions"], &["daemonsets", "daemonsets/status", "deployments", "deployments/scale",
            "deployments/status", "ingresses", "ingresses/status", "networkpolicies", "replicasets",
            "replicasets/scale", "replicasets/status", "replicationcontrollers/scale"], READ),
        rule(&["policy"], &["poddisruptionbudgets", "poddisruptionbudgets/status"], READ),
        rule(&["networking.k8s.io"], &["ingresses", "ingresses/status", "networkpolicies"], READ),
    ]);
    vec![
        bootstrap_role("cluster-admin", &[], json!([
            {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
            {"nonResourceURLs": ["*"], "verbs": ["*"]},
        ]), None),
        bootstrap_role("admin", &[], Value::Null, Some(AGG_ADMIN)),
        bootstrap_role("edit", &[AGG_ADMIN], Value::Null, Some(AGG_EDIT)),
        bootstrap_role("view", &[AGG_EDIT], Value::Null, Some(AGG_VIEW)),
        bootstrap_role("system:aggregate-to-admin", &[AGG_ADMIN], json!([
            rule(&["authorization.k8s.io"], &["localsubjectaccessreviews"], &["create"]),
            rule(&["rbac.authorization.k8s.io"], &["rolebindings", "roles"], READ_WRITE),
        ]), None),
        bootstrap_role("system:aggregate-to-edit", &[AGG_EDIT], aggregate_to_edit, None),
        bootstrap_role("system:aggregate-to-view", &[AGG_VIEW], aggregate_to_view, None),
        bootstrap_role("system:basic-user", &[], json!([
            rule(&["authorization.k8s.io"], &["selfsubjectaccessreviews", "selfsubjectrulesreviews"], &["create"]),
            rule(&["authentication.k8s.io"], &["selfsubjectreviews"], &["create"]),
        ]), None),
        bootstrap_role("system:discovery", &[], json!([{"verbs": ["get"], "nonResourceURLs": [
            "/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*",
            "/readyz", "/version", "/version/"]}]), None),
        bootstrap_role("system:public-info-viewer", &[], json!([{"verbs": ["get"], "nonResourceURLs": [
            "/healthz", "/livez", "/readyz", "/version", "/version/"]}]), None),
    ]
}

/// The bootstrap ClusterRoleBindings for the roles above (cluster-admin → system:masters;
/// basic-user, discovery, public-info-viewer → every authenticated user).
pub fn default_cluster_role_bindings() -> Vec<Value> {
    let crb = |name: &str, groups: &[&str]| {
        let subjects: Vec<Value> = groups
            .iter()
            .map(|g| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g}))
            .collect();
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {
                "name": name,
                "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
                "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
            },
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": subjects,
        })
    };
    vec![
        crb("cluster-admin", &[SYSTEM_MASTERS]),
        crb("system:basic-user", &[ALL_AUTHENTICATED]),
        crb("system:discovery", &[ALL_AUTHENTICATED]),
        crb(
            "system:public-info-viewer",
            &[ALL_AUTHENTICATED, ALL_UNAUTHENTICATED],
        ),
    ]
}
