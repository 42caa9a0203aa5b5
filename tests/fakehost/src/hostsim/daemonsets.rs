//! The DaemonSet controller (kube-controller-manager): which nodes should run a daemon pod
//! (`nodeShouldRunDaemonPod`: nodeSelector, required node affinity, and the node's
//! NoSchedule/NoExecute taints against the template's tolerations plus the ones the
//! controller adds itself — never a namespace's default tolerations, which admission merges
//! into pods only after this choice), one pod per such node (pinned to it by node affinity,
//! created through admission, so PodTolerationRestriction may refuse it), pods removed from
//! nodes that should not run them unless only a NoSchedule taint stands in the way, pods of
//! an old template replaced one at a time, and the status `updateDaemonSetStatus` computes.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::scheduling::{self, TAINT_UNSCHEDULABLE};
use super::{
    controller_ref, controller_uid, deleting, list, running_and_ready, selector_matches,
    template_hash, text, write_options,
};
use crate::engine::{DeleteOptions, Engine};
use crate::kinds::ResourceRef;

const MANAGER: &str = "kube-controller-manager";

fn daemonsets() -> ResourceRef {
    ResourceRef::new("apps", "daemonsets")
}

/// `AddOrUpdateDaemonPodTolerations`: what every daemon pod tolerates.
pub fn controller_tolerations(host_network: bool) -> Vec<Value> {
    let mut list = vec![
        json!({"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}),
        json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}),
        json!({"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": TAINT_UNSCHEDULABLE, "operator": "Exists", "effect": "NoSchedule"}),
    ];
    if host_network {
        list.push(json!({"key": "node.kubernetes.io/network-unavailable", "operator": "Exists", "effect": "NoSchedule"}));
    }
    list
}

/// The template's pod spec with the controller's tolerations added (those already
/// tolerated by key and effect are kept as written).
fn daemon_pod_spec(ds: &Value) -> Value {
    let mut spec = ds
        .pointer("/spec/template/spec")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let host_network = spec.get("hostNetwork") == Some(&json!(true));
    let mut tolerations = scheduling::tolerations(&spec);
    for added in controller_tolerations(host_network) {
        let present = tolerations.iter().any(|t| {
            text(t, "/key") == text(&added, "/key") && text(t, "/effect") == text(&added, "/effect")
        });
        if !present {
            tolerations.push(added);
        }
    }
    spec["tolerations"] = json!(tolerations);
    spec
}

/// (shouldRun, shouldContinueRunning) for a node.
pub fn should_run(node: &Value, pod_spec: &Value) -> (bool, bool) {
    if !scheduling::fits_affinity(node, pod_spec) {
        return (false, false);
    }
    let tolerations = scheduling::tolerations(pod_spec);
    if scheduling::untolerated(node, &tolerations, &["NoExecute"]).is_some() {
        return (false, false);
    }
    if scheduling::untolerated(node, &tolerations, &["NoSchedule"]).is_some() {
        return (false, true);
    }
    (true, true)
}

fn new_pod(ds: &Value, spec: &Value, node: &str, hash: &str) -> Value {
    let mut pod_spec = spec.clone();
    // ReplaceDaemonSetPodNodeNameNodeAffinity: the pod may only land on its node.
    pod_spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] = json!(
        {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]}
    );
    let mut metadata = ds
        .pointer("/spec/template/metadata")
        .cloned()
        .unwrap_or_else(|| json!({}));
    metadata["generateName"] = json!(format!("{}-", text(ds, "/metadata/name")));
    metadata["labels"]["controller-revision-hash"] = json!(hash);
    metadata["labels"]["pod-template-generation"] = json!(
        ds.pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1)
            .to_string()
    );
    metadata["ownerReferences"] = json!([controller_ref(ds, "apps/v1", "DaemonSet")]);
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec})
}

/// The node a daemon pod is (or will be) on.
fn pod_node(pod: &Value) -> String {
    let bound = text(pod, "/spec/nodeName");
    if !bound.is_empty() {
        return bound.to_string();
    }
    pod.pointer("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms/0/matchFields/0/values/0")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

pub(super) fn reconcile(engine: &Engine) {
    let nodes = list(engine, &ResourceRef::core("nodes"), None);
    let pods_ref = ResourceRef::core("pods");
    for ds in list(engine, &daemonsets(), None) {
        let ns = text(&ds, "/metadata/namespace").to_string();
        let uid = text(&ds, "/metadata/uid").to_string();
        let selector = ds
            .pointer("/spec/selector")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let hash = template_hash(&ds.pointer("/spec/template").cloned().unwrap_or_default());
        let spec = daemon_pod_spec(&ds);
        let mut by_node: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for pod in list(engine, &pods_ref, Some(&ns)) {
            if controller_uid(&pod) == Some(uid.as_str()) && selector_matches(&selector, &pod) {
                by_node.entry(pod_node(&pod)).or_default().push(pod);
            }
        }
        if !deleting(&ds) {
            manage(engine, &ds, &spec, &nodes, &by_node, &hash);
        }
        status(engine, &ds, &spec, &nodes, &by_node, &hash);
    }
}

fn manage(
    engine: &Engine,
    ds: &Value,
    spec: &Value,
    nodes: &[Value],
    by_node: &BTreeMap<String, Vec<Value>>,
    hash: &str,
) {
    let ns = text(ds, "/metadata/namespace");
    let pods_ref = ResourceRef::core("pods");
    let delete = |pod: &Value| {
        let _ = engine.delete(
            &pods_ref,
            Some(ns),
            text(pod, "/metadata/name"),
            &DeleteOptions::default(),
        );
    };
    let mut replaced = false;
    let unavailable = by_node
        .values()
        .flatten()
        .any(|p| deleting(p) || !running_and_ready(p));
    for node in nodes {
        let name = text(node, "/metadata/name");
        let (run, keep) = should_run(node, spec);
        let pods: Vec<&Value> = by_node
            .get(name)
            .into_iter()
            .flatten()
            .filter(|p| !deleting(p))
            .collect();
        if run && pods.is_empty() {
            if let Err(error) = engine.create(
                &pods_ref,
                Some(ns),
                new_pod(ds, spec, name, hash),
                &write_options(MANAGER),
            ) {
                // FailedCreate (e.g. refused by PodTolerationRestriction): retried later.
                tracing::debug!(%error, "daemon pod creation");
            }
        } else if !keep {
            pods.iter().for_each(|p| delete(p));
        } else if pods.len() > 1 {
            pods.iter().skip(1).for_each(|p| delete(p));
        } else if let Some(pod) = pods.first()
            && run
            && !replaced
            && !unavailable
            && text(pod, "/metadata/labels/controller-revision-hash") != hash
        {
            // RollingUpdate with maxUnavailable 1: one old pod at a time.
            delete(pod);
            replaced = true;
        }
    }
}

fn status(
    engine: &Engine,
    ds: &Value,
    spec: &Value,
    nodes: &[Value],
    by_node: &BTreeMap<String, Vec<Value>>,
    hash: &str,
) {
    let (mut desired, mut current, mut misscheduled, mut ready, mut updated) = (0, 0, 0, 0, 0);
    for node in nodes {
        let pods: Vec<&Value> = by_node
            .get(text(node, "/metadata/name"))
            .into_iter()
            .flatten()
            .collect();
        let (run, _) = should_run(node, spec);
        match (run, pods.first()) {
            (true, Some(pod)) => {
                desired += 1;
                current += 1;
                if running_and_ready(pod) {
                    ready += 1;
                }
                if text(pod, "/metadata/labels/controller-revision-hash") == hash {
                    updated += 1;
                }
            }
            (true, None) => desired += 1,
            (false, Some(_)) => misscheduled += 1,
            (false, None) => {}
        }
    }
    let mut status = json!({
        "desiredNumberScheduled": desired, "currentNumberScheduled": current,
        "numberMisscheduled": misscheduled, "numberReady": ready, "numberAvailable": ready,
        "updatedNumberScheduled": updated,
        "observedGeneration": ds.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
    });
    if desired > ready {
        status["numberUnavailable"] = json!(desired - ready);
    }
    if ds.get("status") == Some(&status) {
        return;
    }
    let mut with_status = ds.clone();
    with_status["status"] = status;
    if let Err(error) = engine.update_status(
        &daemonsets(),
        Some(text(ds, "/metadata/namespace")),
        with_status,
        &write_options(MANAGER),
    ) {
        tracing::debug!(%error, "daemonset status");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_controller_tolerations_cover_its_own_taints_only() {
        let spec = daemon_pod_spec(&json!({"spec": {"template": {"spec": {}}}}));
        let cordoned = json!({"metadata": {"name": "n"}, "spec": {"unschedulable": true}});
        assert_eq!(should_run(&cordoned, &spec), (true, true));
        let dedicated = json!({"metadata": {"name": "n"}, "spec": {"taints": [{"key": "dedicated", "value": "ws", "effect": "NoSchedule"}]}});
        assert_eq!(should_run(&dedicated, &spec), (false, true));
        let evicting = json!({"metadata": {"name": "n"}, "spec": {"taints": [{"key": "dedicated", "value": "ws", "effect": "NoExecute"}]}});
        assert_eq!(should_run(&evicting, &spec), (false, false));
        let network = json!({"metadata": {"name": "n"}, "spec": {"taints": [{"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"}]}});
        assert!(!should_run(&network, &spec).0);
        let host_network =
            daemon_pod_spec(&json!({"spec": {"template": {"spec": {"hostNetwork": true}}}}));
        assert!(should_run(&network, &host_network).0);
    }
}
