//! kube-scheduler and the fake nodes' kubelets. The scheduler binds each pending pod to a
//! node it fits (`scheduling::schedulable`; resources are not counted), the least busy
//! first, or marks it Unschedulable. A kubelet starts a bound pod at once (Running, a pod IP
//! from its node's podCIDR) and reports it Ready when its containers are (`Containers`); a
//! deleting pod's containers are stopped (no longer Ready) while finalizers hold it.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::{Containers, condition_true, deleting, list, scheduling, text, write_options};
use crate::engine::{Engine, now_rfc3339};
use crate::kinds::ResourceRef;

fn pods() -> ResourceRef {
    ResourceRef::core("pods")
}

fn terminal(pod: &Value) -> bool {
    matches!(text(pod, "/status/phase"), "Succeeded" | "Failed")
}

fn node_ready(node: &Value) -> bool {
    condition_true(node, "Ready")
}

pub(super) fn schedule(engine: &Engine) {
    let nodes = list(engine, &ResourceRef::core("nodes"), None);
    let all = list(engine, &pods(), None);
    let mut load: BTreeMap<String, usize> = BTreeMap::new();
    for pod in &all {
        let node = text(pod, "/spec/nodeName");
        if !node.is_empty() && !terminal(pod) {
            *load.entry(node.to_string()).or_default() += 1;
        }
    }
    for pod in &all {
        if deleting(pod) || !text(pod, "/spec/nodeName").is_empty() || terminal(pod) {
            continue;
        }
        let spec = pod.get("spec").cloned().unwrap_or_else(|| json!({}));
        let chosen = nodes
            .iter()
            .filter(|n| node_ready(n) && scheduling::schedulable(n, &spec))
            .min_by_key(|n| {
                let name = text(n, "/metadata/name");
                (load.get(name).copied().unwrap_or(0), name.to_string())
            });
        let ns = text(pod, "/metadata/namespace");
        match chosen {
            Some(node) => {
                let name = text(node, "/metadata/name").to_string();
                let mut bound = pod.clone();
                bound["spec"]["nodeName"] = json!(name);
                // The binding subresource's effect; the kubelet reports the rest.
                if engine
                    .update(&pods(), Some(ns), bound, &write_options("kube-scheduler"))
                    .is_ok()
                {
                    *load.entry(name).or_default() += 1;
                }
            }
            None => {
                let message = format!(
                    "0/{} nodes are available: no node matches the pod's node selector, affinity and tolerations.",
                    nodes.len()
                );
                let current = pod
                    .pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .and_then(|l| l.iter().find(|c| text(c, "/type") == "PodScheduled"));
                if current.is_some_and(|c| text(c, "/message") == message) {
                    continue;
                }
                let mut updated = pod.clone();
                updated["status"]["conditions"] = json!([{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                                          "message": message, "lastTransitionTime": now_rfc3339()}]);
                let _ = engine.update_status(
                    &pods(),
                    Some(ns),
                    updated,
                    &write_options("kube-scheduler"),
                );
            }
        }
    }
}

/// A free address in the node's podCIDR (`10.42.<n>.0/24`).
fn pod_ip(node: &Value, taken: &BTreeSet<String>) -> String {
    let cidr = text(node, "/spec/podCIDR");
    let prefix = cidr
        .split('/')
        .next()
        .and_then(|ip| ip.rsplit_once('.'))
        .map(|(net, _)| net.to_string())
        .unwrap_or_else(|| "10.42.0".into());
    (2..255)
        .map(|host| format!("{prefix}.{host}"))
        .find(|ip| !taken.contains(ip))
        .unwrap_or_else(|| format!("{prefix}.254"))
}

fn host_ip(node: &Value) -> String {
    node.pointer("/status/addresses")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().find(|x| text(x, "/type") == "InternalIP"))
        .map(|a| text(a, "/address").to_string())
        .unwrap_or_default()
}

/// The status a kubelet reports for a running pod (`ready`: its readiness probes pass).
fn running_status(pod: &Value, ready: bool, previous: &Value) -> Value {
    let now = now_rfc3339();
    let since = |kind: &str, status: &str| {
        previous
            .get("conditions")
            .and_then(Value::as_array)
            .and_then(|l| {
                l.iter()
                    .find(|c| text(c, "/type") == kind && text(c, "/status") == status)
            })
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or_else(|| json!(now))
    };
    let flag = if ready { "True" } else { "False" };
    let started = previous
        .get("startTime")
        .cloned()
        .unwrap_or_else(|| json!(now));
    let containers: Vec<Value> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| json!({"name": c.get("name").cloned().unwrap_or(json!("")), "image": c.get("image").cloned().unwrap_or(json!("")),
                         "ready": ready, "started": true, "restartCount": 0, "state": {"running": {"startedAt": started}}}))
        .collect();
    let condition = |kind: &str, status: &str| json!({"type": kind, "status": status, "lastTransitionTime": since(kind, status)});
    json!({
        "phase": "Running", "hostIP": previous.get("hostIP").cloned().unwrap_or(json!("")),
        "podIP": previous.get("podIP").cloned().unwrap_or(json!("")),
        "podIPs": previous.get("podIPs").cloned().unwrap_or(json!([])),
        "startTime": started,
        "qosClass": previous.get("qosClass").cloned().unwrap_or(json!("BestEffort")),
        "conditions": [condition("Initialized", "True"), condition("Ready", flag), condition("ContainersReady", flag),
                       condition("PodScheduled", "True")],
        "containerStatuses": containers,
    })
}

pub(super) fn run(engine: &Engine, containers: &dyn Containers) {
    let nodes: BTreeMap<String, Value> = list(engine, &ResourceRef::core("nodes"), None)
        .into_iter()
        .map(|n| (text(&n, "/metadata/name").to_string(), n))
        .collect();
    let all = list(engine, &pods(), None);
    let mut taken: BTreeSet<String> = all
        .iter()
        .filter(|p| !terminal(p))
        .map(|p| text(p, "/status/podIP").to_string())
        .filter(|ip| !ip.is_empty())
        .collect();
    for pod in &all {
        let Some(node) = nodes.get(text(pod, "/spec/nodeName")) else {
            continue;
        };
        if terminal(pod) {
            continue;
        }
        let mut previous = pod.get("status").cloned().unwrap_or_else(|| json!({}));
        if text(pod, "/status/podIP").is_empty() {
            let ip = pod_ip(node, &taken);
            taken.insert(ip.clone());
            previous["podIP"] = json!(ip);
            previous["podIPs"] = json!([{"ip": ip}]);
            previous["hostIP"] = json!(host_ip(node));
        }
        // A deleting pod's containers are stopped: it stays only for its finalizers.
        let ready = !deleting(pod) && containers.ready(pod);
        let status = running_status(pod, ready, &previous);
        if pod.get("status") == Some(&status) {
            continue;
        }
        let mut updated = pod.clone();
        updated["status"] = status;
        let ns = text(pod, "/metadata/namespace");
        if let Err(error) = engine.update_status(&pods(), Some(ns), updated, &write_options("k3s"))
        {
            tracing::debug!(%error, "kubelet status");
        }
    }
}
