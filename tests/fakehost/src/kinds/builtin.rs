//! The built-in resource types the fake serves, with the scope, short names and
//! subresources kube-apiserver v1.33 advertises for them.

use std::collections::BTreeMap;

use super::{ALL_VERBS, ResourceType};

struct Spec {
    group: &'static str,
    version: &'static str,
    resource: &'static str,
    kind: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    has_status: bool,
    verbs: &'static [&'static str],
    extra_subresources: &'static [&'static str],
}

const fn kind(
    group: &'static str,
    version: &'static str,
    resource: &'static str,
    kind: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    has_status: bool,
) -> Spec {
    Spec {
        group,
        version,
        resource,
        kind,
        namespaced,
        short_names,
        has_status,
        verbs: ALL_VERBS,
        extra_subresources: &[],
    }
}

/// A create-only review kind, answered and never stored.
const fn review(group: &'static str, resource: &'static str, kind_name: &'static str) -> Spec {
    Spec {
        verbs: &["create"],
        ..kind(group, "v1", resource, kind_name, false, &[], false)
    }
}

const NO_DELETECOLLECTION: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];

fn specs() -> Vec<Spec> {
    vec![
        Spec {
            verbs: NO_DELETECOLLECTION,
            ..kind("", "v1", "namespaces", "Namespace", false, &["ns"], true)
        },
        kind("", "v1", "nodes", "Node", false, &["no"], true),
        kind("", "v1", "secrets", "Secret", true, &[], false),
        Spec {
            verbs: NO_DELETECOLLECTION,
            ..kind("", "v1", "services", "Service", true, &["svc"], true)
        },
        kind("", "v1", "configmaps", "ConfigMap", true, &["cm"], false),
        kind(
            "",
            "v1",
            "serviceaccounts",
            "ServiceAccount",
            true,
            &["sa"],
            false,
        ),
        kind(
            "",
            "v1",
            "resourcequotas",
            "ResourceQuota",
            true,
            &["quota"],
            true,
        ),
        kind(
            "",
            "v1",
            "limitranges",
            "LimitRange",
            true,
            &["limits"],
            false,
        ),
        Spec {
            extra_subresources: &["eviction"],
            ..kind("", "v1", "pods", "Pod", true, &["po"], true)
        },
        kind("", "v1", "events", "Event", true, &["ev"], false),
        kind(
            "",
            "v1",
            "persistentvolumeclaims",
            "PersistentVolumeClaim",
            true,
            &["pvc"],
            true,
        ),
        kind(
            "",
            "v1",
            "persistentvolumes",
            "PersistentVolume",
            false,
            &["pv"],
            true,
        ),
        kind("", "v1", "endpoints", "Endpoints", true, &["ep"], false),
        kind(
            "storage.k8s.io",
            "v1",
            "storageclasses",
            "StorageClass",
            false,
            &["sc"],
            false,
        ),
        kind(
            "apps",
            "v1",
            "deployments",
            "Deployment",
            true,
            &["deploy"],
            true,
        ),
        kind(
            "apps",
            "v1",
            "statefulsets",
            "StatefulSet",
            true,
            &["sts"],
            true,
        ),
        kind("apps", "v1", "daemonsets", "DaemonSet", true, &["ds"], true),
        kind(
            "apps",
            "v1",
            "replicasets",
            "ReplicaSet",
            true,
            &["rs"],
            true,
        ),
        kind(
            "rbac.authorization.k8s.io",
            "v1",
            "roles",
            "Role",
            true,
            &[],
            false,
        ),
        kind(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterroles",
            "ClusterRole",
            false,
            &[],
            false,
        ),
        kind(
            "rbac.authorization.k8s.io",
            "v1",
            "rolebindings",
            "RoleBinding",
            true,
            &[],
            false,
        ),
        kind(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterrolebindings",
            "ClusterRoleBinding",
            false,
            &[],
            false,
        ),
        kind(
            "policy",
            "v1",
            "poddisruptionbudgets",
            "PodDisruptionBudget",
            true,
            &["pdb"],
            true,
        ),
        kind(
            "coordination.k8s.io",
            "v1",
            "leases",
            "Lease",
            true,
            &[],
            false,
        ),
        kind(
            "networking.k8s.io",
            "v1",
            "networkpolicies",
            "NetworkPolicy",
            true,
            &["netpol"],
            false,
        ),
        kind("batch", "v1", "jobs", "Job", true, &[], true),
        kind("batch", "v1", "cronjobs", "CronJob", true, &["cj"], true),
        review(
            "authorization.k8s.io",
            "selfsubjectaccessreviews",
            "SelfSubjectAccessReview",
        ),
        review(
            "authorization.k8s.io",
            "selfsubjectrulesreviews",
            "SelfSubjectRulesReview",
        ),
        review(
            "authentication.k8s.io",
            "selfsubjectreviews",
            "SelfSubjectReview",
        ),
        kind(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            &["crd", "crds"],
            true,
        ),
    ]
}

pub(super) fn builtin_types() -> Vec<ResourceType> {
    specs()
        .into_iter()
        .map(|spec| ResourceType {
            group: spec.group.to_string(),
            versions: vec![spec.version.to_string()],
            resource: spec.resource.to_string(),
            singular: spec.kind.to_lowercase(),
            kind: spec.kind.to_string(),
            namespaced: spec.namespaced,
            short_names: spec.short_names.iter().map(|s| s.to_string()).collect(),
            categories: if matches!(
                spec.resource,
                "pods"
                    | "services"
                    | "deployments"
                    | "statefulsets"
                    | "daemonsets"
                    | "replicasets"
                    | "jobs"
                    | "cronjobs"
            ) {
                vec!["all".to_string()]
            } else {
                Vec::new()
            },
            verbs: spec.verbs.iter().map(|s| s.to_string()).collect(),
            extra_subresources: spec
                .extra_subresources
                .iter()
                .map(|s| s.to_string())
                .collect(),
            has_status: spec.has_status,
            tracks_generation: matches!(
                spec.group,
                "apps" | "policy" | "batch" | "apiextensions.k8s.io" | "networking.k8s.io"
            ),
            builtin: true,
            schemas: BTreeMap::new(),
            printer_columns: BTreeMap::new(),
        })
        .collect()
}
