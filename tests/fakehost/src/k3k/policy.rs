//! VirtualClusterPolicy binding, as k3k's policy controller does it: every namespace
//! labelled `policy.k3k.io/policy-name=<vcp>` gets the policy's `quota` as ResourceQuota and
//! its `limit` as LimitRange, both named `k3k-<vcp>` (`SafeConcatNameWithPrefix`), labelled
//! `app.kubernetes.io/managed-by=k3k-policy-controller` and `policy.k3k.io/policy-name`, and
//! controlled by the policy; managed objects of any other (or no) policy are removed; and
//! every Cluster in a bound namespace gets the policy in `status.policy` (`reconcileClusters`:
//! name, defaultPriorityClass — always written, "" when unset —, defaultNodeSelector,
//! sync, defaultServerAffinity, defaultAgentAffinity, securityContext, runtimeClassName,
//! hostUsers), cleared again when the namespace is unbound or its policy is gone.
//!
//! Also the host's ResourceQuota controller (kube-controller-manager, not k3k, so it runs
//! even when the k3k controller is down): `status.hard` from the spec and `status.used` from
//! the namespace's pods and object counts.

use serde_json::{Map, Value, json};

use super::cluster::POLICY_LABEL;
use super::objects::{self, ensure, ensure_status, owner_reference, text};
use super::quantity::{format_milli, parse_milli};
use crate::engine::{DeleteOptions, Engine, ListOptions};
use crate::kinds::ResourceRef;

pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "k3k-policy-controller";

fn list(engine: &Engine, resource: &ResourceRef, namespace: Option<&str>) -> Vec<Value> {
    engine
        .list(resource, namespace, &ListOptions::default())
        .map(|l| l.items.iter().map(|o| (**o).clone()).collect())
        .unwrap_or_default()
}

fn label<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object
        .pointer("/metadata/labels")
        .and_then(|l| l.get(key))
        .and_then(Value::as_str)
}

/// The policy objects' name for policy `vcp`.
pub fn policy_object_name(vcp: &str) -> String {
    objects::safe_concat_name(&["k3k", vcp])
}

/// `AppliedPolicy` as `reconcileClusters` builds it from a VirtualClusterPolicy.
fn applied(policy: &Value) -> Value {
    let spec = policy.get("spec").cloned().unwrap_or_else(|| json!({}));
    let mut applied = json!({
        "name": text(policy, "/metadata/name"),
        "priorityClass": text(&spec, "/defaultPriorityClass"),
    });
    for (from, to) in [
        ("defaultNodeSelector", "nodeSelector"),
        ("sync", "sync"),
        ("defaultServerAffinity", "serverAffinity"),
        ("defaultAgentAffinity", "agentAffinity"),
        ("securityContext", "securityContext"),
        ("runtimeClassName", "runtimeClassName"),
        ("hostUsers", "hostUsers"),
    ] {
        let value = spec.get(from).filter(|v| !v.is_null());
        let empty_map = value
            .and_then(Value::as_object)
            .is_some_and(|m| m.is_empty());
        if let Some(value) = value
            && !(to == "nodeSelector" && empty_map)
        {
            applied[to] = value.clone();
        }
    }
    applied
}

/// `status.policy` of every Cluster in `ns`: the bound policy's, or none.
fn reconcile_clusters(engine: &Engine, ns: &str, policy: Option<&Value>) -> anyhow::Result<()> {
    let clusters = ResourceRef::new("k3k.io", "clusters");
    if engine.resource_type(&clusters).is_none() {
        return Ok(());
    }
    for cluster in list(engine, &clusters, Some(ns)) {
        let mut status = cluster
            .get("status")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        match policy {
            Some(policy) => {
                status.insert("policy".into(), applied(policy));
            }
            None if status.contains_key("policy") => {
                status.remove("policy");
            }
            None => continue,
        }
        ensure_status(engine, &clusters, &cluster, Value::Object(status))?;
    }
    Ok(())
}

pub(super) fn reconcile(engine: &Engine) -> anyhow::Result<()> {
    let policies = ResourceRef::new("k3k.io", "virtualclusterpolicies");
    if engine.resource_type(&policies).is_none() {
        return Ok(());
    }
    for namespace in list(engine, &ResourceRef::core("namespaces"), None) {
        if namespace.pointer("/metadata/deletionTimestamp").is_some() {
            continue;
        }
        let ns = text(&namespace, "/metadata/name");
        let bound = label(&namespace, POLICY_LABEL).filter(|p| !p.is_empty());
        let policy = bound.and_then(|p| engine.get(&policies, None, p).ok());
        if let Err(error) = reconcile_clusters(engine, ns, policy.as_ref()) {
            tracing::debug!(%error, "cluster status.policy");
        }
        for (resource, field) in [
            (ResourceRef::core("resourcequotas"), "quota"),
            (ResourceRef::core("limitranges"), "limit"),
        ] {
            let wanted = policy.as_ref().and_then(|p| {
                p.pointer(&format!("/spec/{field}"))
                    .filter(|v| v.is_object())
                    .map(|spec| (p, spec))
            });
            let wanted_name = wanted.map(|(p, _)| policy_object_name(text(p, "/metadata/name")));
            for existing in list(engine, &resource, Some(ns)) {
                let managed = label(&existing, MANAGED_BY_LABEL) == Some(MANAGED_BY);
                let name = text(&existing, "/metadata/name");
                if managed && Some(name) != wanted_name.as_deref() {
                    let _ = engine.delete(&resource, Some(ns), name, &DeleteOptions::default());
                }
            }
            if let Some((policy, spec)) = wanted {
                let vcp = text(policy, "/metadata/name");
                let kind = if field == "quota" {
                    "ResourceQuota"
                } else {
                    "LimitRange"
                };
                let desired = json!({
                    "apiVersion": "v1", "kind": kind,
                    "metadata": {"name": policy_object_name(vcp), "labels": {MANAGED_BY_LABEL: MANAGED_BY, POLICY_LABEL: vcp},
                                 "ownerReferences": [owner_reference(policy, "VirtualClusterPolicy")]},
                    "spec": spec,
                });
                ensure(engine, &resource, ns, desired, &["spec"])?;
            }
        }
    }
    Ok(())
}

fn pod_total(pod: &Value, kind: &str, resource: &str) -> i128 {
    let amount = |container: &Value| {
        let get = |k: &str| {
            container
                .pointer(&format!("/resources/{k}/{resource}"))
                .and_then(Value::as_str)
                .and_then(parse_milli)
        };
        // A request defaults to the limit when only the limit is set (API defaulting).
        match kind {
            "requests" => get("requests").or_else(|| get("limits")).unwrap_or(0),
            _ => get("limits").unwrap_or(0),
        }
    };
    let containers = |key: &str| {
        pod.pointer(&format!("/spec/{key}"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let sum: i128 = containers("containers").iter().map(amount).sum();
    // Init containers run one at a time: the pod needs the largest of them, at least.
    containers("initContainers")
        .iter()
        .map(amount)
        .fold(sum, i128::max)
}

fn used_for(engine: &Engine, ns: &str, key: &str, pods: &[Value]) -> String {
    let count = |resource: ResourceRef| list(engine, &resource, Some(ns)).len().to_string();
    let total = |kind: &str, resource: &str, binary: bool| {
        format_milli(
            pods.iter().map(|p| pod_total(p, kind, resource)).sum(),
            binary,
        )
    };
    match key {
        "pods" | "count/pods" => pods.len().to_string(),
        "cpu" | "requests.cpu" => total("requests", "cpu", false),
        "memory" | "requests.memory" => total("requests", "memory", true),
        "limits.cpu" => total("limits", "cpu", false),
        "limits.memory" => total("limits", "memory", true),
        "ephemeral-storage" | "requests.ephemeral-storage" => {
            total("requests", "ephemeral-storage", true)
        }
        "limits.ephemeral-storage" => total("limits", "ephemeral-storage", true),
        "services"
        | "secrets"
        | "configmaps"
        | "persistentvolumeclaims"
        | "resourcequotas"
        | "replicationcontrollers" => count(ResourceRef::core(key)),
        "services.nodeports" | "services.loadbalancers" => {
            let wanted = if key == "services.nodeports" {
                "NodePort"
            } else {
                "LoadBalancer"
            };
            list(engine, &ResourceRef::core("services"), Some(ns))
                .iter()
                .filter(|s| text(s, "/spec/type") == wanted)
                .count()
                .to_string()
        }
        other => match other.strip_prefix("count/") {
            Some(rest) => {
                let (plural, group) = rest.split_once('.').unwrap_or((rest, ""));
                count(ResourceRef::new(group, plural))
            }
            None => "0".to_string(),
        },
    }
}

/// The ResourceQuota controller's status for every quota on the host.
pub(super) fn update_quota_status(engine: &Engine) -> anyhow::Result<()> {
    let quotas = ResourceRef::core("resourcequotas");
    for quota in list(engine, &quotas, None) {
        let ns = text(&quota, "/metadata/namespace");
        let hard = quota
            .pointer("/spec/hard")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        // Terminal pods no longer count against a quota.
        let pods: Vec<Value> = list(engine, &ResourceRef::core("pods"), Some(ns))
            .into_iter()
            .filter(|p| !matches!(text(p, "/status/phase"), "Succeeded" | "Failed"))
            .collect();
        let used: Map<String, Value> = hard
            .keys()
            .map(|k| (k.clone(), json!(used_for(engine, ns, k, &pods))))
            .collect();
        ensure_status(engine, &quotas, &quota, json!({"hard": hard, "used": used}))?;
    }
    Ok(())
}
