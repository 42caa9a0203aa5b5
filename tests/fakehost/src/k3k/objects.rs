//! The host objects K3K creates for a Cluster `<n>` (names from k3k's
//! `SafeConcatNameWithPrefix`): Services `k3k-<n>-service` (443→6443 plus etcd 2379) and
//! `k3k-<n>-service-headless`, Secrets `k3k-<n>-token`, `k3k-<n>-bootstrap`,
//! `k3k-<n>-kubeconfig`, and StatefulSet `k3k-<n>-server`, all controlled by the Cluster;
//! plus the create-or-update helpers the controller writes them with (no write when in sync).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use crate::engine::{Engine, PatchRequest, WriteOptions};
use crate::errors::ApiError;
use crate::kinds::ResourceRef;
use crate::patch::PatchType;
use crate::pki::Ca;

pub(super) const MANAGER: &str = "k3k-cluster-controller";

pub(super) fn write_options() -> WriteOptions {
    WriteOptions {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    }
}

pub(super) fn text<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// k3k's `SafeConcatName`: joined with `-`; names of 64+ characters are cut to 57 and
/// suffixed with 6 hex characters of their SHA-256, so they stay valid object names.
pub fn safe_concat_name(parts: &[&str]) -> String {
    let full = parts
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("-");
    if full.len() < 64 {
        return full;
    }
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(full.as_bytes());
    let hex: String = digest.iter().take(3).map(|b| format!("{b:02x}")).collect();
    let mut cut = full[..57].to_string();
    while cut.ends_with(|c: char| !c.is_ascii_alphanumeric()) {
        cut.pop();
    }
    format!("{cut}-{hex}")
}

pub fn service_name(cluster: &str) -> String {
    safe_concat_name(&["k3k", cluster, "service"])
}

pub fn server_name(cluster: &str) -> String {
    safe_concat_name(&["k3k", cluster, "server"])
}

pub fn secret_name(cluster: &str, suffix: &str) -> String {
    safe_concat_name(&["k3k", cluster, suffix])
}

pub(super) fn owner_reference(owner: &Value, kind: &str) -> Value {
    json!({"apiVersion": "k3k.io/v1beta1", "kind": kind, "name": text(owner, "/metadata/name"),
           "uid": text(owner, "/metadata/uid"), "controller": true, "blockOwnerDeletion": true})
}

fn server_labels(cluster: &str) -> Value {
    json!({"cluster": cluster, "role": "server"})
}

/// Whether everything in `desired` is already in `existing` (arrays element-wise), so
/// fields the API server defaulted (clusterIP, protocol...) do not count as drift.
pub(super) fn is_subset(desired: &Value, existing: &Value) -> bool {
    match (desired, existing) {
        (Value::Object(d), Value::Object(e)) => d
            .iter()
            .all(|(k, v)| e.get(k).is_some_and(|x| is_subset(v, x))),
        (Value::Array(d), Value::Array(e)) => {
            d.len() == e.len() && d.iter().zip(e).all(|(a, b)| is_subset(a, b))
        }
        _ => desired == existing,
    }
}

fn merge_into(target: &mut Value, desired: &Value) {
    match (target, desired) {
        (Value::Object(t), Value::Object(d)) => {
            for (k, v) in d {
                match t.get_mut(k) {
                    Some(existing) => merge_into(existing, v),
                    None => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (target, desired) => *target = desired.clone(),
    }
}

/// Creates `desired`, or brings the existing object in line: top-level keys in `exact` are
/// replaced wholesale (Secret data, quota specs: removed keys must go), the rest merged.
pub(super) fn ensure(
    engine: &Engine,
    resource: &ResourceRef,
    namespace: &str,
    desired: Value,
    exact: &[&str],
) -> Result<Value, ApiError> {
    let name = text(&desired, "/metadata/name").to_string();
    let existing = match engine.get(resource, Some(namespace), &name) {
        Ok(existing) => existing,
        Err(e) if e.code == 404 => {
            return engine.create(resource, Some(namespace), desired, &write_options());
        }
        Err(e) => return Err(e),
    };
    let Some(fields) = desired.as_object() else {
        return Ok(existing);
    };
    let in_sync = fields
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "apiVersion" | "kind"))
        .all(|(k, v)| {
            let current = existing.get(k).unwrap_or(&Value::Null);
            if exact.contains(&k.as_str()) {
                current == v
            } else {
                is_subset(v, current)
            }
        });
    if in_sync {
        return Ok(existing);
    }
    let mut updated = existing.clone();
    for (key, value) in fields
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "apiVersion" | "kind"))
    {
        if exact.contains(&key.as_str()) {
            updated[key] = value.clone();
        } else {
            merge_into(&mut updated[key], value);
        }
    }
    engine.update(resource, Some(namespace), updated, &write_options())
}

/// Replaces `.status` through the status subresource when it differs.
pub(super) fn ensure_status(
    engine: &Engine,
    resource: &ResourceRef,
    object: &Value,
    status: Value,
) -> Result<(), ApiError> {
    if object.get("status") == Some(&status) {
        return Ok(());
    }
    let mut patch = Map::new();
    // Merge patch: keys no longer wanted are removed with null.
    if let (Some(old), Some(new)) = (
        object.get("status").and_then(Value::as_object),
        status.as_object(),
    ) {
        for key in old.keys().filter(|k| !new.contains_key(*k)) {
            patch.insert(key.clone(), Value::Null);
        }
    }
    if let Some(new) = status.as_object() {
        patch.extend(new.clone());
    }
    let body = serde_json::to_vec(&json!({"status": patch}))
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let ns = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str);
    let request = PatchRequest {
        patch_type: PatchType::Merge,
        body: &body,
        status_subresource: true,
    };
    engine.patch(
        resource,
        ns,
        text(object, "/metadata/name"),
        &request,
        &write_options(),
    )?;
    Ok(())
}

/// Where the virtual cluster's API server is exposed.
pub(super) struct Exposure {
    pub service_type: &'static str,
    pub server_node_port: Option<u16>,
    pub etcd_node_port: Option<u16>,
}

pub(super) fn service(cluster: &Value, exposure: &Exposure) -> Value {
    let name = text(cluster, "/metadata/name");
    let mut server_port =
        json!({"name": "k3s-server-port", "protocol": "TCP", "port": 443, "targetPort": 6443});
    let mut etcd_port =
        json!({"name": "k3s-etcd-port", "protocol": "TCP", "port": 2379, "targetPort": 2379});
    if let Some(port) = exposure.server_node_port {
        server_port["nodePort"] = json!(port);
    }
    if let Some(port) = exposure.etcd_node_port {
        etcd_port["nodePort"] = json!(port);
    }
    let mut metadata = json!({"name": service_name(name), "ownerReferences": [owner_reference(cluster, "Cluster")]});
    if let Some(annotations) = cluster
        .pointer("/spec/expose/annotations")
        .filter(|a| a.is_object())
    {
        metadata["annotations"] = annotations.clone();
    }
    json!({"apiVersion": "v1", "kind": "Service", "metadata": metadata,
           "spec": {"type": exposure.service_type, "selector": server_labels(name), "ports": [server_port, etcd_port]}})
}

pub(super) fn headless_service(cluster: &Value) -> Value {
    let name = text(cluster, "/metadata/name");
    json!({"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": safe_concat_name(&["k3k", name, "service", "headless"]), "ownerReferences": [owner_reference(cluster, "Cluster")]},
           "spec": {"type": "ClusterIP", "clusterIP": "None", "selector": server_labels(name),
                    "ports": [{"name": "k3s-server-port", "protocol": "TCP", "port": 443, "targetPort": 6443},
                              {"name": "k3s-etcd-port", "protocol": "TCP", "port": 2379, "targetPort": 2379}]}})
}

fn secret(cluster: &Value, suffix: &str, data: &[(&str, &str)]) -> Value {
    let name = text(cluster, "/metadata/name");
    let data: Map<String, Value> = data
        .iter()
        .map(|(k, v)| (k.to_string(), json!(STANDARD.encode(v))))
        .collect();
    json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
           "metadata": {"name": secret_name(name, suffix), "ownerReferences": [owner_reference(cluster, "Cluster")]},
           "data": data})
}

pub(super) fn token_secret(cluster: &Value, token: &str) -> Value {
    secret(cluster, "token", &[("token", token)])
}

/// K3s' bootstrap data as k3k stores it after decoding: `Content` is the PEM itself.
pub(super) fn bootstrap_secret(cluster: &Value, cas: &ClusterCas) -> Value {
    let entry = |pem: &str| json!({"Timestamp": cas.timestamp, "Content": pem});
    let bootstrap = json!({
        "serverCA": entry(cas.server.cert_pem()), "serverCAKey": entry(cas.server.key_pem()),
        "clientCA": entry(cas.client.cert_pem()), "clientCAKey": entry(cas.client.key_pem()),
        "etcdServerCA": entry(cas.etcd.cert_pem()), "etcdServerCAKey": entry(cas.etcd.key_pem()),
    });
    secret(
        cluster,
        "bootstrap",
        &[("bootstrap", &bootstrap.to_string())],
    )
}

pub(super) fn kubeconfig_secret(cluster: &Value, kubeconfig: &str) -> Value {
    secret(cluster, "kubeconfig", &[("kubeconfig.yaml", kubeconfig)])
}

/// The server StatefulSet; `spec_hash` in the pod template makes a spec change a rollout.
pub(super) fn stateful_set(cluster: &Value, replicas: i64, image: &str, spec_hash: &str) -> Value {
    let name = text(cluster, "/metadata/name");
    json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
           "metadata": {"name": server_name(name), "labels": server_labels(name), "ownerReferences": [owner_reference(cluster, "Cluster")]},
           "spec": {"replicas": replicas, "serviceName": safe_concat_name(&["k3k", name, "service", "headless"]),
                    "selector": {"matchLabels": server_labels(name)},
                    "template": {"metadata": {"labels": server_labels(name), "annotations": {"k3k.io/spec-hash": spec_hash}},
                                 "spec": {"containers": [{"name": "k3s-server", "image": image,
                                                          "args": ["server", "--config", "/opt/rancher/k3s/config.yaml"]}]}}}})
}

/// The StatefulSet controller's view: all replicas updated and ready once provisioned.
pub(super) fn stateful_set_status(
    sts: &Value,
    replicas: i64,
    ready: bool,
    revision: &str,
    previous_revision: &str,
) -> Value {
    let generation = sts
        .pointer("/metadata/generation")
        .cloned()
        .unwrap_or(json!(1));
    let ready_count = if ready { replicas } else { 0 };
    json!({"observedGeneration": generation, "replicas": replicas, "readyReplicas": ready_count,
           "availableReplicas": ready_count, "currentReplicas": if ready { replicas } else { 0 }, "updatedReplicas": ready_count,
           "currentRevision": if ready { revision } else { previous_revision }, "updateRevision": revision, "collisionCount": 0})
}

/// One Cluster's certificate authorities (kept for the Cluster's lifetime, as with
/// `persistence: dynamic`).
pub struct ClusterCas {
    pub server: std::sync::Arc<Ca>,
    pub client: std::sync::Arc<Ca>,
    pub etcd: std::sync::Arc<Ca>,
    pub timestamp: String,
}

impl ClusterCas {
    pub(super) fn generate() -> anyhow::Result<Self> {
        Ok(Self {
            server: std::sync::Arc::new(Ca::new("k3s-server-ca")?),
            client: std::sync::Arc::new(Ca::new("k3s-client-ca")?),
            etcd: std::sync::Arc::new(Ca::new("etcd-server-ca")?),
            timestamp: crate::engine::now_rfc3339(),
        })
    }

    /// Reads the CAs back from an existing `k3k-<n>-bootstrap` Secret.
    pub(super) fn from_bootstrap_secret(secret: &Value) -> Option<Self> {
        let raw = STANDARD.decode(text(secret, "/data/bootstrap")).ok()?;
        let data: Value = serde_json::from_slice(&raw).ok()?;
        let ca = |cert: &str, key: &str| {
            Ca::from_pem(
                text(&data, &format!("/{cert}/Content")),
                text(&data, &format!("/{key}/Content")),
            )
            .ok()
        };
        Some(Self {
            server: std::sync::Arc::new(ca("serverCA", "serverCAKey")?),
            client: std::sync::Arc::new(ca("clientCA", "clientCAKey")?),
            etcd: std::sync::Arc::new(ca("etcdServerCA", "etcdServerCAKey")?),
            timestamp: text(&data, "/serverCA/Timestamp").to_string(),
        })
    }
}
