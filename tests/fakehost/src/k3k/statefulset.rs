//! K3K's StatefulSet controller (pkg/controller/cluster/statefulset.go), for StatefulSets a
//! Cluster controls: every server pod it selects gets `etcdpod.k3k.io/finalizer`; a deleting
//! server pod loses it only once its etcd member is removed through
//! `https://k3k-<n>-service.<ns>:2379` (after reading the etcd CA through that Service's
//! 443), so without port 2379 on that Service server pod deletions hang — unless it is the
//! only pod left, or the Cluster is gone. A deleting StatefulSet releases every pod, then its
//! own finalizer. The first pod it cannot handle ends the pass for that StatefulSet.

use serde_json::{Value, json};

use super::cluster::clusters;
use super::k3s::K3s;
use super::objects::{service_name, text, write_options};
use super::server::ETCD_POD_FINALIZER;
use crate::engine::Engine;
use crate::hostsim::{self, deleting, selector_matches};
use crate::kinds::ResourceRef;

fn has_finalizer(object: &Value) -> bool {
    object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| f.iter().any(|x| x == ETCD_POD_FINALIZER))
}

/// Adds or removes the etcd-pod finalizer with an Update of the object as read.
fn set_finalizer(engine: &Engine, resource: &ResourceRef, object: &Value, present: bool) -> bool {
    if has_finalizer(object) == present {
        return true;
    }
    let mut list: Vec<Value> = object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if present {
        list.push(json!(ETCD_POD_FINALIZER));
    } else {
        list.retain(|f| f != ETCD_POD_FINALIZER);
    }
    let mut updated = object.clone();
    updated["metadata"]["finalizers"] = json!(list);
    let ns = text(object, "/metadata/namespace");
    match engine.update(resource, Some(ns), updated, &write_options()) {
        Ok(_) => true,
        Err(error) => {
            tracing::debug!(%error, "etcd pod finalizer");
            false
        }
    }
}

/// The Cluster controlling the object, by name, if a Cluster controls it.
fn cluster_owner(object: &Value) -> Option<String> {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)?
        .iter()
        .find(|r| {
            r.get("controller") == Some(&json!(true))
                && text(r, "/kind") == "Cluster"
                && text(r, "/apiVersion") == "k3k.io/v1beta1"
        })
        .map(|r| text(r, "/name").to_string())
}

pub(super) fn reconcile(engine: &Engine, k3s: &K3s) {
    let statefulsets = ResourceRef::new("apps", "statefulsets");
    let pods_ref = ResourceRef::core("pods");
    for sts in hostsim::list(engine, &statefulsets, None) {
        let Some(cluster_name) = cluster_owner(&sts) else {
            continue;
        };
        let ns = text(&sts, "/metadata/namespace");
        let selector = sts
            .pointer("/spec/selector")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let pods: Vec<Value> = hostsim::list(engine, &pods_ref, Some(ns))
            .into_iter()
            .filter(|p| selector_matches(&selector, p))
            .collect();
        if deleting(&sts) {
            if pods
                .iter()
                .all(|p| set_finalizer(engine, &pods_ref, p, false))
            {
                set_finalizer(engine, &statefulsets, &sts, false);
            }
            continue;
        }
        let cluster = engine.get(&clusters(), Some(ns), &cluster_name).ok();
        if let [only] = pods.as_slice()
            && deleting(only)
        {
            set_finalizer(engine, &pods_ref, only, false);
            continue;
        }
        for pod in &pods {
            let handled = if !deleting(pod) {
                set_finalizer(engine, &pods_ref, pod, true)
            } else if cluster.is_none() {
                set_finalizer(engine, &pods_ref, pod, false)
            } else {
                let service = engine
                    .get(
                        &ResourceRef::core("services"),
                        Some(ns),
                        &service_name(&cluster_name),
                    )
                    .ok();
                // removePeer needs etcd behind the Service; until then the pod stays.
                service.is_some_and(|s| k3s.etcd_reachable(engine, &s, &cluster_name))
                    && set_finalizer(engine, &pods_ref, pod, false)
            };
            if !handled {
                break;
            }
        }
    }
}
