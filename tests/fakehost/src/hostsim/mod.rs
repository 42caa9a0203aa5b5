//! hostsim: the parts of a K3s host besides its API server that K3K's objects rely on, run in
//! process against the host `Engine`: the StatefulSet and DaemonSet controllers
//! (kube-controller-manager), kube-scheduler, the kubelets of the fake nodes (pods become
//! Running without containers; what runs in a pod is asked of a `Containers`), and
//! kube-proxy for NodePort and LoadBalancer Services (`127.0.0.1:<nodePort>` forwarded to
//! the pods' listeners). The simulated K3K controller drives them; they keep running while
//! K3K is down, as a host's own components do.

// Every `Engine` call returns the engine's `ApiError` unboxed; these controllers pass it on.
#![allow(clippy::result_large_err)]

pub mod daemonsets;
pub mod kubelet;
pub mod kubeproxy;
pub mod scheduling;
pub mod statefulsets;

use std::net::SocketAddr;

use serde_json::{Value, json};
use sha2::Digest as _;

use crate::engine::{Engine, ListOptions, WriteOptions};
use crate::kinds::ResourceRef;

/// What runs inside pods, as far as the host can tell.
pub trait Containers {
    /// Whether the pod's containers pass their readiness probes (given it runs).
    fn ready(&self, pod: &Value) -> bool;
    /// The listener behind `<podIP>:<port>`, if something in the pod listens there.
    fn endpoint(&self, pod: &Value, port: u16) -> Option<SocketAddr>;
}

/// Pods where nothing listens and every container is ready at once.
pub struct NoContainers;

impl Containers for NoContainers {
    fn ready(&self, _: &Value) -> bool {
        true
    }

    fn endpoint(&self, _: &Value, _: u16) -> Option<SocketAddr> {
        None
    }
}

pub(crate) fn text<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

pub(crate) fn list(engine: &Engine, resource: &ResourceRef, namespace: Option<&str>) -> Vec<Value> {
    engine
        .list(resource, namespace, &ListOptions::default())
        .map(|l| l.items.iter().map(|o| (**o).clone()).collect())
        .unwrap_or_default()
}

pub(crate) fn deleting(object: &Value) -> bool {
    object.pointer("/metadata/deletionTimestamp").is_some()
}

/// The uid of the object's controller (the owner reference with `controller: true`).
pub(crate) fn controller_uid(object: &Value) -> Option<&str> {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)?
        .iter()
        .find(|r| r.get("controller") == Some(&json!(true)))
        .and_then(|r| r.get("uid"))
        .and_then(Value::as_str)
}

pub(crate) fn controller_ref(owner: &Value, api_version: &str, kind: &str) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "name": text(owner, "/metadata/name"),
           "uid": text(owner, "/metadata/uid"), "controller": true, "blockOwnerDeletion": true})
}

pub(crate) fn write_options(manager: &str) -> WriteOptions {
    WriteOptions {
        field_manager: Some(manager.into()),
        ..Default::default()
    }
}

/// `metav1.LabelSelectorAsSelector` on an object's labels (matchLabels and matchExpressions).
pub(crate) fn selector_matches(selector: &Value, object: &Value) -> bool {
    let label = |key: &str| {
        object
            .pointer("/metadata/labels")
            .and_then(|l| l.get(key))
            .and_then(Value::as_str)
    };
    let labels_ok = selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .is_none_or(|m| m.iter().all(|(k, v)| label(k) == v.as_str()));
    let expressions_ok = selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .is_none_or(|list| {
            list.iter().all(|e| {
                let values: Vec<&str> = e
                    .get("values")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                let found = label(text(e, "/key"));
                match text(e, "/operator") {
                    "In" => found.is_some_and(|v| values.contains(&v)),
                    "NotIn" => found.is_none_or(|v| !values.contains(&v)),
                    "Exists" => found.is_some(),
                    "DoesNotExist" => found.is_none(),
                    _ => false,
                }
            })
        });
    labels_ok && expressions_ok
}

/// A short stable hash of a pod template (a ControllerRevision's name suffix).
pub(crate) fn template_hash(template: &Value) -> String {
    sha2::Sha256::digest(template.to_string().as_bytes())
        .iter()
        .take(5)
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(crate) fn condition_true(pod: &Value, kind: &str) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|list| {
            list.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some(kind)
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

/// `podutil.IsPodReady` on a Running pod.
pub(crate) fn running_and_ready(pod: &Value) -> bool {
    text(pod, "/status/phase") == "Running" && condition_true(pod, "Ready")
}

/// One pass of the host's controllers and node agents (kube-proxy is `kubeproxy::KubeProxy`,
/// which keeps listeners between passes).
pub fn pass(engine: &Engine, containers: &dyn Containers) {
    statefulsets::reconcile(engine);
    daemonsets::reconcile(engine);
    kubelet::schedule(engine);
    kubelet::run(engine, containers);
}
