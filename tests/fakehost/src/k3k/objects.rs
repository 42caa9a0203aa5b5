//! Names K3K derives for a Cluster `<n>` (k3k's `SafeConcatNameWithPrefix`), its Secrets
//! `k3k-<n>-token`, `k3k-<n>-bootstrap` and `k3k-<n>-kubeconfig` (controlled by the
//! Cluster), the CAs, and the write helpers the controller uses the way K3K's calls behave
//! (create-or-update, spec replaced wholesale, create once, status update).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use crate::engine::{Engine, WriteOptions};
use crate::errors::ApiError;
use crate::kinds::ResourceRef;
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

/// Replaces `.status` through the status subresource when it differs (`Status().Update`
/// with the object's resourceVersion: a stale object is a conflict, retried next pass).
pub(super) fn ensure_status(
    engine: &Engine,
    resource: &ResourceRef,
    object: &Value,
    status: Value,
) -> Result<(), ApiError> {
    if object.get("status") == Some(&status) {
        return Ok(());
    }
    let mut updated = object.clone();
    updated["status"] = status;
    let ns = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str);
    engine.update_status(resource, ns, updated, &write_options())?;
    Ok(())
}

/// `controllerutil.CreateOrUpdate` setting the whole `spec` (and the Cluster as
/// controller): created as `desired`, or updated with K3K's spec in place of the stored one
/// (fields it leaves out are defaulted or, for a Service, kept as allocated by the API
/// server; anything else someone changed is lost). No write when nothing changes.
pub(super) fn replace_spec(
    engine: &Engine,
    resource: &ResourceRef,
    namespace: &str,
    desired: Value,
) -> Result<Value, ApiError> {
    let name = text(&desired, "/metadata/name").to_string();
    let existing = match engine.get(resource, Some(namespace), &name) {
        Ok(existing) => existing,
        Err(e) if e.code == 404 => {
            return engine.create(resource, Some(namespace), desired, &write_options());
        }
        Err(e) => return Err(e),
    };
    let mut updated = existing.clone();
    updated["spec"] = desired.get("spec").cloned().unwrap_or_else(|| json!({}));
    let owner = desired.pointer("/metadata/ownerReferences/0").cloned();
    if let Some(owner) = owner {
        let mut refs: Vec<Value> = existing
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        refs.retain(|r| r.get("uid") != owner.get("uid"));
        refs.push(owner);
        updated["metadata"]["ownerReferences"] = json!(refs);
    }
    engine.update(resource, Some(namespace), updated, &write_options())
}

/// Creates `desired` unless an object of that name exists (K3K's Create that ignores
/// AlreadyExists); returns what is stored.
pub(super) fn create_once(
    engine: &Engine,
    resource: &ResourceRef,
    namespace: &str,
    desired: Value,
) -> Result<Value, ApiError> {
    match engine.create(resource, Some(namespace), desired.clone(), &write_options()) {
        Err(e) if e.code == 409 => {
            engine.get(resource, Some(namespace), text(&desired, "/metadata/name"))
        }
        other => other,
    }
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
