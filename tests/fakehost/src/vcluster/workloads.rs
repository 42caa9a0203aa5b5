//! The in-cluster controllers of a virtual cluster that tenants notice: every namespace
//! gets the `default` ServiceAccount and the `kube-root-ca.crt` ConfigMap (K3s' service
//! account and root-CA publisher controllers), a Deployment gets a ReplicaSet per pod
//! template and the ReplicaSet its Pods, and a simulated kubelet marks Pods Running, so
//! `kubectl create deployment` and `kubectl rollout status` behave as on a real cluster.

use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::engine::{DeleteOptions, Engine, ListOptions, WriteOptions, now_rfc3339};
use crate::kinds::ResourceRef;

const POLL: Duration = Duration::from_millis(50);

fn options() -> WriteOptions {
    WriteOptions {
        field_manager: Some("kube-controller-manager".into()),
        ..Default::default()
    }
}

fn text<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn list(engine: &Engine, resource: &ResourceRef, namespace: Option<&str>) -> Vec<Value> {
    engine
        .list(resource, namespace, &ListOptions::default())
        .map(|l| l.items.iter().map(|o| (**o).clone()).collect())
        .unwrap_or_default()
}

fn owned_by(object: &Value, uid: &str) -> bool {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r.get("uid").and_then(Value::as_str) == Some(uid))
        })
}

fn owner_ref(owner: &Value, kind: &str, api_version: &str) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "name": text(owner, "/metadata/name"),
           "uid": text(owner, "/metadata/uid"), "controller": true, "blockOwnerDeletion": true})
}

fn deleting(object: &Value) -> bool {
    object.pointer("/metadata/deletionTimestamp").is_some()
}

/// Runs until `shutdown`: one pass whenever the store changed.
pub(super) async fn run(engine: Engine, root_ca_pem: String, mut shutdown: watch::Receiver<bool>) {
    let mut seen = 0;
    loop {
        let current = engine.resource_version();
        if current != seen {
            pass(&engine, &root_ca_pem);
            // Not the version after the pass: what this pass wrote gets looked at again, so
            // chains (Deployment → ReplicaSet → Pods → statuses) settle.
            seen = current;
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = shutdown.changed() => return,
        }
    }
}

fn pass(engine: &Engine, root_ca_pem: &str) {
    for namespace in list(engine, &ResourceRef::core("namespaces"), None) {
        if deleting(&namespace) {
            continue;
        }
        let ns = text(&namespace, "/metadata/name");
        // AlreadyExists is the steady state; other errors are retried on the next pass.
        if engine
            .get(&ResourceRef::core("serviceaccounts"), Some(ns), "default")
            .is_err()
        {
            let _ = engine.create(
                &ResourceRef::core("serviceaccounts"),
                Some(ns),
                json!({"metadata": {"name": "default"}}),
                &options(),
            );
        }
        if engine
            .get(
                &ResourceRef::core("configmaps"),
                Some(ns),
                "kube-root-ca.crt",
            )
            .is_err()
        {
            let config_map = json!({"metadata": {"name": "kube-root-ca.crt", "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}},
                                    "data": {"ca.crt": root_ca_pem}});
            let _ = engine.create(
                &ResourceRef::core("configmaps"),
                Some(ns),
                config_map,
                &options(),
            );
        }
    }
    let deployments = list(engine, &ResourceRef::new("apps", "deployments"), None);
    for deployment in deployments.iter().filter(|d| !deleting(d)) {
        reconcile_deployment(engine, deployment);
    }
    for replica_set in list(engine, &ResourceRef::new("apps", "replicasets"), None)
        .iter()
        .filter(|r| !deleting(r))
    {
        reconcile_replica_set(engine, replica_set);
    }
    run_pods(engine);
    for deployment in deployments.iter().filter(|d| !deleting(d)) {
        deployment_status(engine, deployment);
    }
}

fn template_hash(template: &Value) -> String {
    let digest = Sha256::digest(template.to_string().as_bytes());
    digest.iter().take(5).map(|b| format!("{b:02x}")).collect()
}

fn reconcile_deployment(engine: &Engine, deployment: &Value) {
    let ns = text(deployment, "/metadata/namespace");
    let name = text(deployment, "/metadata/name");
    let uid = text(deployment, "/metadata/uid");
    let template = deployment
        .pointer("/spec/template")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let hash = template_hash(&template);
    let rs_name = format!("{name}-{hash}");
    let replicas = deployment
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let replica_sets = ResourceRef::new("apps", "replicasets");
    for old in list(engine, &replica_sets, Some(ns)) {
        if owned_by(&old, uid) && text(&old, "/metadata/name") != rs_name {
            let _ = engine.delete(
                &replica_sets,
                Some(ns),
                text(&old, "/metadata/name"),
                &DeleteOptions::default(),
            );
        }
    }
    let mut pod_template = template;
    pod_template["metadata"]["labels"]["pod-template-hash"] = json!(hash);
    let mut selector = deployment
        .pointer("/spec/selector")
        .cloned()
        .unwrap_or_else(|| json!({}));
    selector["matchLabels"]["pod-template-hash"] = json!(hash);
    let labels = pod_template
        .pointer("/metadata/labels")
        .cloned()
        .unwrap_or_else(|| json!({}));
    match engine.get(&replica_sets, Some(ns), &rs_name) {
        Ok(mut existing) => {
            if existing.pointer("/spec/replicas").and_then(Value::as_i64) != Some(replicas) {
                existing["spec"]["replicas"] = json!(replicas);
                let _ = engine.update(&replica_sets, Some(ns), existing, &options());
            }
        }
        Err(_) => {
            let replica_set = json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": rs_name, "labels": labels, "ownerReferences": [owner_ref(deployment, "Deployment", "apps/v1")],
                             "annotations": {"deployment.kubernetes.io/revision": deployment.pointer("/metadata/generation").cloned().unwrap_or(json!(1)).to_string()}},
                "spec": {"replicas": replicas, "selector": selector, "template": pod_template},
            });
            let _ = engine.create(&replica_sets, Some(ns), replica_set, &options());
        }
    }
}

fn reconcile_replica_set(engine: &Engine, replica_set: &Value) {
    let ns = text(replica_set, "/metadata/namespace");
    let name = text(replica_set, "/metadata/name");
    let uid = text(replica_set, "/metadata/uid");
    let pods = ResourceRef::core("pods");
    let wanted = replica_set
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
        .max(0) as usize;
    let owned: Vec<Value> = list(engine, &pods, Some(ns))
        .into_iter()
        .filter(|p| owned_by(p, uid) && !deleting(p))
        .collect();
    for extra in owned.iter().skip(wanted) {
        let _ = engine.delete(
            &pods,
            Some(ns),
            text(extra, "/metadata/name"),
            &DeleteOptions::default(),
        );
    }
    for _ in owned.len()..wanted {
        let mut pod = replica_set
            .pointer("/spec/template")
            .cloned()
            .unwrap_or_else(|| json!({}));
        pod["apiVersion"] = json!("v1");
        pod["kind"] = json!("Pod");
        pod["metadata"]["generateName"] = json!(format!("{name}-"));
        pod["metadata"]["ownerReferences"] =
            json!([owner_ref(replica_set, "ReplicaSet", "apps/v1")]);
        let _ = engine.create(&pods, Some(ns), pod, &options());
    }
    let count = owned.len().min(wanted);
    let ready = owned
        .iter()
        .take(wanted)
        .filter(|p| text(p, "/status/phase") == "Running")
        .count();
    let status = json!({"replicas": count, "fullyLabeledReplicas": count, "readyReplicas": ready, "availableReplicas": ready,
                        "observedGeneration": replica_set.pointer("/metadata/generation").cloned().unwrap_or(json!(1))});
    if replica_set.get("status") != Some(&status) {
        let mut updated = replica_set.clone();
        updated["status"] = status;
        let _ = engine.update_status(
            &ResourceRef::new("apps", "replicasets"),
            Some(ns),
            updated,
            &options(),
        );
    }
}

/// The simulated kubelet: every pending pod starts at once.
fn run_pods(engine: &Engine) {
    let pods = ResourceRef::core("pods");
    for pod in list(engine, &pods, None) {
        if deleting(&pod) || text(&pod, "/status/phase") != "Pending" {
            continue;
        }
        let now = now_rfc3339();
        let containers: Vec<Value> = pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| json!({"name": c.get("name").cloned().unwrap_or(json!("")), "image": c.get("image").cloned().unwrap_or(json!("")),
                             "ready": true, "started": true, "restartCount": 0, "state": {"running": {"startedAt": now}}}))
            .collect();
        let mut updated = pod.clone();
        let condition =
            |kind: &str| json!({"type": kind, "status": "True", "lastTransitionTime": now});
        updated["status"] = json!({
            "phase": "Running", "hostIP": "10.0.0.11", "podIP": "10.42.0.10", "startTime": now,
            "qosClass": pod.pointer("/status/qosClass").cloned().unwrap_or(json!("BestEffort")),
            "conditions": [condition("Initialized"), condition("Ready"), condition("ContainersReady"), condition("PodScheduled")],
            "containerStatuses": containers,
        });
        let ns = text(&pod, "/metadata/namespace").to_string();
        let _ = engine.update_status(&pods, Some(&ns), updated, &options());
    }
}

fn deployment_status(engine: &Engine, deployment: &Value) {
    let ns = text(deployment, "/metadata/namespace");
    let uid = text(deployment, "/metadata/uid");
    let deployments = ResourceRef::new("apps", "deployments");
    // Re-read: this pass may have changed the ReplicaSets, and the status must describe them.
    let Ok(current) = engine.get(&deployments, Some(ns), text(deployment, "/metadata/name")) else {
        return;
    };
    let owned: Vec<Value> = list(engine, &ResourceRef::new("apps", "replicasets"), Some(ns))
        .into_iter()
        .filter(|r| owned_by(r, uid))
        .collect();
    let sum = |pointer: &str| {
        owned
            .iter()
            .filter_map(|r| r.pointer(pointer).and_then(Value::as_i64))
            .sum::<i64>()
    };
    let wanted = current
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let (replicas, ready) = (sum("/status/replicas"), sum("/status/readyReplicas"));
    let available = if ready >= wanted { "True" } else { "False" };
    let previous = current
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let condition = |kind: &str, status: &str, reason: &str, message: &str| {
        let since = previous
            .iter()
            .find(|c| {
                c.get("type").and_then(Value::as_str) == Some(kind)
                    && c.get("status").and_then(Value::as_str) == Some(status)
            })
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or_else(|| json!(now_rfc3339()));
        json!({"type": kind, "status": status, "reason": reason, "message": message, "lastTransitionTime": since, "lastUpdateTime": since})
    };
    let status = json!({
        "observedGeneration": current.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
        "replicas": replicas, "updatedReplicas": replicas, "readyReplicas": ready, "availableReplicas": ready,
        "unavailableReplicas": (wanted - ready).max(0),
        "conditions": [
            condition("Available", available, if available == "True" { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" },
                      if available == "True" { "Deployment has minimum availability." } else { "Deployment does not have minimum availability." }),
            condition("Progressing", "True", "NewReplicaSetAvailable", "ReplicaSet has successfully progressed."),
        ],
    });
    if current.get("status") != Some(&status) {
        let mut updated = current;
        updated["status"] = status;
        let _ = engine.update_status(&deployments, Some(ns), updated, &options());
    }
}
