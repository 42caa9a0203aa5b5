//! One Cluster's reconcile, following k3k's `ClusterReconciler`: initial phase
//! Provisioning, the `cluster.k3k.io/finalizer`, policy validation (Pending /
//! ValidationFailed), status fields (hostVersion, CIDRs, tlsSANs, policyName), then in K3K's
//! order the Service, the config Secrets, the server StatefulSet, the shared-mode agent, and
//! the bootstrap data read from the running K3s through the Service's ClusterIP (port 443):
//! Ready once it answers, Provisioning while no server is ready behind it, Failed when it
//! cannot be reached at all (or while a fault is injected). Every error of a step is the
//! Cluster's Failed / ProvisioningFailed message, as K3K's `updateStatus` makes it.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::Controls;
use super::agent;
use super::k3s::{K3s, Unreachable};
use super::objects::{self, ensure, ensure_status, text};
use super::server;
use crate::engine::{Engine, PatchRequest, now_rfc3339};
use crate::kinds::ResourceRef;
use crate::patch::PatchType;
use crate::pki::IssuedCert;
use crate::vcluster::kubeconfig_yaml;

pub const FINALIZER: &str = "cluster.k3k.io/finalizer";
pub const POLICY_LABEL: &str = "policy.k3k.io/policy-name";

pub(super) fn clusters() -> ResourceRef {
    ResourceRef::new("k3k.io", "clusters")
}

/// What the controller remembers about one Cluster (by uid) between passes.
pub(super) struct ClusterState {
    pub namespace: String,
    pub name: String,
    /// The admin certificate of the kubeconfig Secret, and the client CA that signed it.
    admin: Option<(String, IssuedCert)>,
    fault_assigned: bool,
}

impl ClusterState {
    pub(super) fn new(cluster: &Value) -> Self {
        Self {
            namespace: text(cluster, "/metadata/namespace").to_string(),
            name: text(cluster, "/metadata/name").to_string(),
            admin: None,
            fault_assigned: false,
        }
    }
}

fn condition(previous: &Value, status: &str, reason: &str, message: &str) -> Value {
    // meta.SetStatusCondition: the transition time moves only when the status changes.
    let since = previous
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|list| {
            list.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
        })
        .filter(|c| c.get("status").and_then(Value::as_str) == Some(status))
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .unwrap_or_else(|| json!(now_rfc3339()));
    json!([{"type": "Ready", "status": status, "reason": reason, "message": message, "lastTransitionTime": since}])
}

fn set_phase(
    status: &mut Map<String, Value>,
    cluster: &Value,
    phase: &str,
    ready: &str,
    reason: &str,
    message: &str,
) {
    status.insert("phase".into(), json!(phase));
    status.insert(
        "conditions".into(),
        condition(cluster, ready, reason, message),
    );
}

fn failed(status: &mut Map<String, Value>, cluster: &Value, message: &str) {
    set_phase(
        status,
        cluster,
        "Failed",
        "False",
        "ProvisioningFailed",
        message,
    );
}

/// `c.token`: the token Secret's token, made once.
fn token(engine: &Engine, cluster: &Value) -> anyhow::Result<String> {
    let ns = text(cluster, "/metadata/namespace");
    let name = objects::secret_name(text(cluster, "/metadata/name"), "token");
    if let Ok(secret) = engine.get(&ResourceRef::core("secrets"), Some(ns), &name) {
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::STANDARD.decode(text(&secret, "/data/token"))?;
        return Ok(String::from_utf8(raw)?);
    }
    let token: String = (0..16)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect();
    ensure(
        engine,
        &ResourceRef::core("secrets"),
        ns,
        objects::token_secret(cluster, &token),
        &["data"],
    )?;
    Ok(token)
}

/// Runs one reconcile of a live (not deleting) Cluster.
pub(super) fn reconcile(
    engine: &Engine,
    cluster: &Value,
    state: &mut ClusterState,
    controls: &mut Controls,
    k3s: &K3s,
    host_version: &str,
) -> anyhow::Result<()> {
    let (ns, name) = (state.namespace.clone(), state.name.clone());
    let key = (ns.clone(), name.clone());
    let mut cluster = cluster.clone();
    let phase = text(&cluster, "/status/phase");
    if phase.is_empty() || phase == "Unknown" {
        let mut status = cluster
            .get("status")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        set_phase(
            &mut status,
            &cluster,
            "Provisioning",
            "False",
            "Provisioning",
            "Cluster is being provisioned",
        );
        ensure_status(engine, &clusters(), &cluster, Value::Object(status))?;
        return Ok(());
    }
    let finalizers: Vec<Value> = cluster
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !finalizers.iter().any(|f| f == FINALIZER) {
        let mut with_ours = finalizers;
        with_ours.push(json!(FINALIZER));
        let body = serde_json::to_vec(
            &json!({"metadata": {"finalizers": with_ours, "resourceVersion": text(&cluster, "/metadata/resourceVersion")}}),
        )?;
        let request = PatchRequest {
            patch_type: PatchType::Merge,
            body: &body,
            status_subresource: false,
        };
        cluster = engine.patch(
            &clusters(),
            Some(&ns),
            &name,
            &request,
            &objects::write_options(),
        )?;
    }
    if !state.fault_assigned {
        state.fault_assigned = true;
        if controls.fail_next > 0 {
            controls.fail_next -= 1;
            controls.failing.insert(key.clone());
        }
    }

    let mut status = cluster
        .get("status")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if let Err(message) = steps(
        engine,
        &cluster,
        state,
        controls,
        k3s,
        host_version,
        &mut status,
    ) {
        match message {
            Outcome::Pending(message) => set_phase(
                &mut status,
                &cluster,
                "Pending",
                "False",
                "ValidationFailed",
                &message,
            ),
            Outcome::Provisioning(message) => set_phase(
                &mut status,
                &cluster,
                "Provisioning",
                "False",
                "Provisioning",
                &message,
            ),
            Outcome::Failed(message) => failed(&mut status, &cluster, &message),
        }
    } else {
        set_phase(
            &mut status,
            &cluster,
            "Ready",
            "True",
            "Provisioned",
            "Cluster successfully provisioned",
        );
    }
    ensure_status(engine, &clusters(), &cluster, Value::Object(status))?;
    Ok(())
}

/// How a reconcile that did not get to the end leaves the Cluster.
enum Outcome {
    Pending(String),
    Provisioning(String),
    Failed(String),
}

impl From<crate::errors::ApiError> for Outcome {
    fn from(error: crate::errors::ApiError) -> Self {
        Outcome::Failed(error.message)
    }
}

impl From<anyhow::Error> for Outcome {
    fn from(error: anyhow::Error) -> Self {
        Outcome::Failed(error.to_string())
    }
}

/// `ClusterReconciler.reconcile` after the finalizer: every step in K3K's order.
fn steps(
    engine: &Engine,
    cluster: &Value,
    state: &mut ClusterState,
    controls: &Controls,
    k3s: &K3s,
    host_version: &str,
    status: &mut Map<String, Value>,
) -> Result<(), Outcome> {
    let (ns, name) = (state.namespace.as_str(), state.name.as_str());
    let namespace = engine.get(&ResourceRef::core("namespaces"), None, ns)?;
    let policy_name = text(
        &namespace,
        &format!("/metadata/labels/{}", POLICY_LABEL.replace('/', "~1")),
    )
    .to_string();
    if policy_name.is_empty() {
        status.remove("policyName");
    } else {
        status.insert("policyName".into(), json!(policy_name));
    }
    let mode = Some(text(cluster, "/spec/mode"))
        .filter(|m| !m.is_empty())
        .unwrap_or("shared")
        .to_string();
    if let Some(message) = controls.invalid.get(&(ns.to_string(), name.to_string())) {
        return Err(Outcome::Pending(format!(
            "cluster validation error: {message}"
        )));
    }
    if !policy_name.is_empty() {
        // k3k returns the lookup error: any error but validation means Failed.
        let policy = engine.get(
            &ResourceRef::new("k3k.io", "virtualclusterpolicies"),
            None,
            &policy_name,
        )?;
        // `validate` runs only for a Cluster under a policy.
        if name == "system" {
            return Err(Outcome::Pending(
                "cluster validation error: invalid cluster name \"system\"".into(),
            ));
        }
        let allowed = Some(text(&policy, "/spec/allowedMode"))
            .filter(|m| !m.is_empty())
            .unwrap_or("shared");
        if allowed != mode {
            return Err(Outcome::Pending(format!(
                "cluster validation error: mode \"{mode}\" is not allowed by the policy \"{policy_name}\""
            )));
        }
    }

    if !status.contains_key("hostVersion") {
        status.insert("hostVersion".into(), json!(host_version));
    }
    let token = token(engine, cluster)?;
    let spec_or = |field: &str, default: &str| {
        Some(text(cluster, &format!("/spec/{field}")).to_string())
            .filter(|v| !v.is_empty())
            .unwrap_or(default.to_string())
    };
    let shared = mode == "shared";
    status.insert(
        "clusterCIDR".into(),
        json!(spec_or(
            "clusterCIDR",
            if shared {
                "10.42.0.0/16"
            } else {
                "10.52.0.0/16"
            }
        )),
    );
    status.insert(
        "serviceCIDR".into(),
        json!(spec_or(
            "serviceCIDR",
            if shared {
                "10.43.0.0/16"
            } else {
                "10.53.0.0/16"
            }
        )),
    );

    let services = ResourceRef::core("services");
    let service = objects::replace_spec(engine, &services, ns, server::service(cluster))?;
    let service_ip = text(&service, "/spec/clusterIP").to_string();
    let service_name = objects::service_name(name);
    let mut sans: BTreeSet<String> = cluster
        .pointer("/spec/tlsSANs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect();
    sans.extend([
        service_ip.clone(),
        service_name.clone(),
        format!("{service_name}.{ns}"),
    ]);
    let sans: Vec<String> = sans.into_iter().filter(|s| !s.is_empty()).collect();
    status.insert("tlsSANs".into(), json!(sans));
    // The config Secrets are created once and never updated: a later tlsSANs change does
    // not reach them (K3K v1.1.0's createClusterConfigs ignores AlreadyExists).
    let with_status = {
        let mut c = cluster.clone();
        c["status"] = Value::Object(status.clone());
        c
    };
    for init in [true, false] {
        objects::create_once(
            engine,
            &ResourceRef::core("secrets"),
            ns,
            server::config_secret(&with_status, init, &service_ip, &token, &sans),
        )?;
    }
    objects::create_once(engine, &services, ns, server::headless_service(cluster))?;
    let version = Some(text(cluster, "/spec/version").to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or(format!("{host_version}-k3s1"));
    objects::replace_spec(
        engine,
        &ResourceRef::new("apps", "statefulsets"),
        ns,
        server::stateful_set(cluster, &format!("rancher/k3s:{version}")),
    )?;
    if shared {
        agent::ensure(engine, cluster, &service_ip, &token, host_version)?;
    }

    if controls
        .failing
        .contains(&(ns.to_string(), name.to_string()))
    {
        return Err(Outcome::Failed(
            "failed to provision the k3s server: fakehost injected fault".into(),
        ));
    }
    let cas = match k3s.bootstrap(engine, &service, name) {
        Ok(cas) => cas,
        Err(Unreachable::NotReady) => {
            return Err(Outcome::Provisioning(
                "failed to request bootstrap secret: server not ready".into(),
            ));
        }
        Err(Unreachable::NoPort(why)) => {
            return Err(Outcome::Failed(format!(
                "failed to request bootstrap secret: {why}"
            )));
        }
    };
    ensure(
        engine,
        &ResourceRef::core("secrets"),
        ns,
        objects::bootstrap_secret(cluster, cas),
        &["data"],
    )?;
    let client_ca = cas.client.cert_pem().to_string();
    let admin = match &state.admin {
        Some((ca, admin)) if *ca == client_ca => admin.clone(),
        _ => {
            let admin = cas
                .client
                .issue_client_cert(
                    "system:admin",
                    &["system:masters".to_string()],
                    std::time::Duration::from_secs(365 * 86_400),
                )
                .map_err(|e| Outcome::Failed(e.to_string()))?;
            state.admin = Some((client_ca, admin.clone()));
            admin
        }
    };
    let kubeconfig = kubeconfig_yaml(
        &format!("https://{service_ip}:443"),
        cas.server.cert_pem(),
        &admin.cert_pem,
        &admin.key_pem,
        "default",
    );
    ensure(
        engine,
        &ResourceRef::core("secrets"),
        ns,
        objects::kubeconfig_secret(cluster, &kubeconfig),
        &["data"],
    )?;
    Ok(())
}
