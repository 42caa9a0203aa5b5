//! K3K's shared-mode node agent (pkg/controller/cluster/agent/shared.go): config Secret
//! `k3k-<n>-agent-config`, ServiceAccount, Service and DaemonSet `k3k-<n>-kubelet`, each
//! written the way `ensureObject` does — created, or else replaced by an Update with K3K's own
//! object, so whatever someone else changed in them is lost on every pass. The DaemonSet's
//! pods get `spec.nodeSelector`, affinity from `status.policy.agentAffinity` else
//! `spec.agentAffinity`, no tolerations, `workerLimit` as container limits unless
//! `workerResources` (pod-level) is set. Roles, bindings and the DNS Service are not made.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::objects::{owner_reference, safe_concat_name, text, write_options};
use super::server::{apply_resources, from_policy_or_spec};
use crate::engine::Engine;
use crate::errors::ApiError;
use crate::kinds::ResourceRef;

/// The k3k-kubelet image of K3K v1.1.0's chart.
pub const KUBELET_IMAGE: &str = "rancher/k3k-kubelet:v1.1.0";
const KUBELET_PORT: u64 = 10250;

pub fn agent_name(cluster: &str) -> String {
    safe_concat_name(&["k3k", cluster, "kubelet"])
}

fn agent_labels(cluster: &str) -> Value {
    json!({"cluster": cluster, "type": "agent", "mode": "shared"})
}

fn config_secret(cluster: &Value, service_ip: &str, token: &str, host_version: &str) -> Value {
    let name = text(cluster, "/metadata/name");
    let version = Some(text(cluster, "/spec/version"))
        .filter(|v| !v.is_empty())
        .unwrap_or(host_version);
    let mirror = cluster.pointer("/spec/mirrorHostNodes") == Some(&json!(true));
    let config = format!(
        "clusterName: {name}\nclusterNamespace: {}\nserverIP: {service_ip}\nserviceName: {}\ntoken: {token}\nmirrorHostNodes: {mirror}\nversion: {version}\nkubeletPort: {KUBELET_PORT}",
        text(cluster, "/metadata/namespace"),
        agent_name(name),
    );
    json!({"apiVersion": "v1", "kind": "Secret",
           "metadata": {"name": safe_concat_name(&["k3k", name, "agent-config"]), "ownerReferences": [owner_reference(cluster, "Cluster")]},
           "data": {"config.yaml": STANDARD.encode(config)}})
}

/// `SharedAgent.podSpec`.
fn pod_spec(cluster: &Value) -> Value {
    let name = text(cluster, "/metadata/name");
    let mirror = cluster.pointer("/spec/mirrorHostNodes") == Some(&json!(true));
    let mut env = vec![
        json!({"name": "AGENT_HOSTNAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}}}),
        json!({"name": "POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}}),
    ];
    env.extend(
        cluster
            .pointer("/spec/agentEnvs")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
    );
    let mut container = json!({
        "name": agent_name(name), "image": KUBELET_IMAGE, "env": env,
        "volumeMounts": [{"name": "config", "mountPath": "/opt/rancher/k3k/"}],
        "ports": [{"name": "kubelet-port", "protocol": "TCP", "containerPort": KUBELET_PORT}],
    });
    if let Some(context) = from_policy_or_spec(cluster, "securityContext", "securityContext") {
        container["securityContext"] = context;
    }
    let mut spec = json!({
        "dnsPolicy": if mirror { "ClusterFirstWithHostNet" } else { "ClusterFirst" },
        "serviceAccountName": agent_name(name),
        "volumes": [{"name": "config", "secret": {"secretName": safe_concat_name(&["k3k", name, "agent-config"]),
                                                  "items": [{"key": "config.yaml", "path": "config.yaml"}]}}],
    });
    if mirror {
        spec["hostNetwork"] = json!(true);
    }
    if let Some(affinity) = from_policy_or_spec(cluster, "agentAffinity", "agentAffinity") {
        spec["affinity"] = affinity;
    }
    if let Some(selector) = cluster
        .pointer("/spec/nodeSelector")
        .and_then(Value::as_object)
        .filter(|s| !s.is_empty())
    {
        spec["nodeSelector"] = json!(selector);
    }
    if let Some(class) = from_policy_or_spec(cluster, "runtimeClassName", "runtimeClassName") {
        spec["runtimeClassName"] = class;
    }
    if let Some(host_users) = from_policy_or_spec(cluster, "hostUsers", "hostUsers") {
        spec["hostUsers"] = host_users;
    }
    apply_resources(
        cluster,
        "workerLimit",
        "workerResources",
        &mut container,
        &mut spec,
    );
    spec["containers"] = json!([container]);
    spec
}

pub fn daemon_set(cluster: &Value) -> Value {
    let name = text(cluster, "/metadata/name");
    json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
           "metadata": {"name": agent_name(name), "labels": agent_labels(name), "ownerReferences": [owner_reference(cluster, "Cluster")]},
           "spec": {"selector": {"matchLabels": agent_labels(name)},
                    "template": {"metadata": {"labels": agent_labels(name)}, "spec": pod_spec(cluster)}}})
}

/// `ensureObject`: Create, or on AlreadyExists an Update with `object` as it is (no
/// resourceVersion), replacing labels, annotations and spec.
fn ensure_object(
    engine: &Engine,
    resource: &ResourceRef,
    ns: &str,
    object: Value,
) -> Result<(), ApiError> {
    match engine.create(resource, Some(ns), object.clone(), &write_options()) {
        Err(e) if e.code == 409 => {
            engine.update(resource, Some(ns), object, &write_options())?;
            Ok(())
        }
        other => other.map(|_| ()),
    }
}

/// `SharedAgent.EnsureResources` (what of it fakehost makes).
pub fn ensure(
    engine: &Engine,
    cluster: &Value,
    service_ip: &str,
    token: &str,
    host_version: &str,
) -> Result<(), ApiError> {
    let ns = text(cluster, "/metadata/namespace");
    let name = text(cluster, "/metadata/name");
    let owner = json!([owner_reference(cluster, "Cluster")]);
    ensure_object(
        engine,
        &ResourceRef::core("secrets"),
        ns,
        config_secret(cluster, service_ip, token, host_version),
    )?;
    ensure_object(
        engine,
        &ResourceRef::core("serviceaccounts"),
        ns,
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": agent_name(name), "ownerReferences": owner}}),
    )?;
    ensure_object(
        engine,
        &ResourceRef::core("services"),
        ns,
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": agent_name(name), "ownerReferences": owner},
               "spec": {"type": "ClusterIP", "selector": agent_labels(name),
                        "ports": [{"name": "k3s-kubelet-port", "protocol": "TCP", "port": KUBELET_PORT}]}}),
    )?;
    ensure_object(
        engine,
        &ResourceRef::new("apps", "daemonsets"),
        ns,
        daemon_set(cluster),
    )
}
