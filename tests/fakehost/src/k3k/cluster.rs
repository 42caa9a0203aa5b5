//! One Cluster's reconcile, following k3k's `ClusterReconciler`: initial phase
//! Provisioning, the `cluster.k3k.io/finalizer`, policy validation (Pending /
//! ValidationFailed), status fields (hostVersion, CIDRs, tlsSANs, policyName), the owned
//! host objects, then Provisioning → Ready after the simulated start-up delay (or Failed /
//! ProvisioningFailed while a fault is injected, retried until cleared). Bootstrap and
//! kubeconfig Secrets appear only once the server answers, as k3k fetches them from it.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use serde_json::{Map, Value, json};
use sha2::Digest as _;
use tokio::net::{TcpListener, TcpSocket};

use super::Controls;
use super::objects::{self, ClusterCas, Exposure, ensure, ensure_status, text};
use crate::engine::{Engine, PatchRequest, now_rfc3339};
use crate::kinds::ResourceRef;
use crate::patch::PatchType;
use crate::pki::IssuedCert;
use crate::vcluster::{VirtualCluster, VirtualClusterSpec, kubeconfig_yaml};

pub const FINALIZER: &str = "cluster.k3k.io/finalizer";
pub const POLICY_LABEL: &str = "policy.k3k.io/policy-name";

pub(super) fn clusters() -> ResourceRef {
    ResourceRef::new("k3k.io", "clusters")
}

/// What the controller remembers about one Cluster (by uid) between passes.
pub(super) struct ClusterState {
    pub namespace: String,
    pub name: String,
    pub cas: ClusterCas,
    token: String,
    admin: Option<IssuedCert>,
    /// The nodePort, bound on 127.0.0.1 but not listening until the server starts.
    reserved: Option<TcpSocket>,
    node_port: Option<u16>,
    pub server: Option<VirtualCluster>,
    observed_generation: i64,
    pub provisioning_until: Option<Instant>,
    failed: bool,
    fault_assigned: bool,
    current_revision: String,
}

impl ClusterState {
    pub(super) fn new(engine: &Engine, cluster: &Value) -> anyhow::Result<Self> {
        let namespace = text(cluster, "/metadata/namespace").to_string();
        let name = text(cluster, "/metadata/name").to_string();
        // A bootstrap Secret from an earlier controller run keeps its CAs (kubeconfigs
        // minted from them stay valid), as with `persistence: dynamic`.
        let kept = engine
            .get(
                &ResourceRef::core("secrets"),
                Some(&namespace),
                &objects::secret_name(&name, "bootstrap"),
            )
            .ok()
            .and_then(|s| ClusterCas::from_bootstrap_secret(&s));
        let cas = match kept {
            Some(cas) => cas,
            None => ClusterCas::generate()?,
        };
        let token: String = (0..16)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect();
        Ok(Self {
            namespace,
            name,
            cas,
            token,
            admin: None,
            reserved: None,
            node_port: None,
            server: None,
            observed_generation: 0,
            provisioning_until: None,
            failed: false,
            fault_assigned: false,
            current_revision: String::new(),
        })
    }

    /// Stops the virtual cluster server and releases its port.
    pub(super) fn tear_down(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop();
        }
        self.reserved = None;
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

fn reserve_node_port(
    preferred: Option<u16>,
    used: &BTreeSet<u64>,
) -> anyhow::Result<(u16, TcpSocket)> {
    let candidates: Vec<u16> = match preferred {
        Some(port) => vec![port],
        None => {
            // Start at a random offset: several fake hosts may run in one process.
            let offset = rand::random_range(0..2768u16);
            (0..2768u16).map(|i| 30_000 + (offset + i) % 2768).collect()
        }
    };
    for port in candidates {
        if used.contains(&u64::from(port)) {
            continue;
        }
        let socket = TcpSocket::new_v4()?;
        if socket
            .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
            .is_ok()
        {
            return Ok((port, socket));
        }
    }
    anyhow::bail!("provided port is already allocated")
}

fn used_node_ports(engine: &Engine, except_service: (&str, &str)) -> BTreeSet<u64> {
    let services = engine
        .list(&ResourceRef::core("services"), None, &Default::default())
        .map(|l| l.items)
        .unwrap_or_default();
    services
        .iter()
        .filter(|s| (text(s, "/metadata/namespace"), text(s, "/metadata/name")) != except_service)
        .filter_map(|s| s.pointer("/spec/ports").and_then(Value::as_array))
        .flatten()
        .filter_map(|p| p.get("nodePort").and_then(Value::as_u64))
        .collect()
}

/// Runs one reconcile of a live (not deleting) Cluster.
pub(super) fn reconcile(
    engine: &Engine,
    cluster: &Value,
    state: &mut ClusterState,
    controls: &mut Controls,
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
        cluster = engine.get(&clusters(), Some(&ns), &name)?;
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

    let mut status = cluster
        .get("status")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let namespace = engine.get(&ResourceRef::core("namespaces"), None, &ns)?;
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
    let mode = Some(text(&cluster, "/spec/mode"))
        .filter(|m| !m.is_empty())
        .unwrap_or("shared")
        .to_string();
    let mut invalid = controls
        .invalid
        .get(&key)
        .map(|m| format!("cluster validation error: {m}"));
    if name == "system" {
        invalid = Some("cluster validation error: invalid cluster name \"system\"".into());
    }
    if invalid.is_none() && !policy_name.is_empty() {
        match engine.get(
            &ResourceRef::new("k3k.io", "virtualclusterpolicies"),
            None,
            &policy_name,
        ) {
            Ok(policy) => {
                let allowed = Some(text(&policy, "/spec/allowedMode"))
                    .filter(|m| !m.is_empty())
                    .unwrap_or("shared");
                if allowed != mode {
                    invalid = Some(format!(
                        "cluster validation error: mode \"{mode}\" is not allowed by the policy \"{policy_name}\""
                    ));
                }
            }
            Err(e) => {
                // k3k returns the lookup error: any error but validation means Failed.
                set_phase(
                    &mut status,
                    &cluster,
                    "Failed",
                    "False",
                    "ProvisioningFailed",
                    &e.message,
                );
                return Ok(ensure_status(
                    engine,
                    &clusters(),
                    &cluster,
                    Value::Object(status),
                )?);
            }
        }
    }
    if let Some(message) = invalid {
        set_phase(
            &mut status,
            &cluster,
            "Pending",
            "False",
            "ValidationFailed",
            &message,
        );
        return Ok(ensure_status(
            engine,
            &clusters(),
            &cluster,
            Value::Object(status),
        )?);
    }

    if !status.contains_key("hostVersion") {
        status.insert("hostVersion".into(), json!(host_version));
    }
    let spec_or = |field: &str, default: &str| {
        Some(text(&cluster, &format!("/spec/{field}")).to_string())
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

    let node_port = cluster
        .pointer("/spec/expose/nodePort")
        .filter(|v| v.is_object())
        .cloned();
    let mut exposure = Exposure {
        service_type: "ClusterIP",
        server_node_port: None,
        etcd_node_port: None,
    };
    if cluster
        .pointer("/spec/expose/loadBalancer")
        .is_some_and(Value::is_object)
    {
        exposure.service_type = "LoadBalancer";
    }
    let service_name = objects::service_name(&name);
    if let Some(node_port) = &node_port {
        exposure.service_type = "NodePort";
        let wanted = node_port
            .get("serverPort")
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok());
        let used = used_node_ports(engine, (&ns, &service_name));
        if state.node_port.is_none() || (wanted.is_some() && wanted != state.node_port) {
            if let Some(server) = state.server.take() {
                server.stop();
            }
            match reserve_node_port(wanted, &used) {
                Ok((port, socket)) => {
                    state.node_port = Some(port);
                    state.reserved = Some(socket);
                }
                Err(e) => {
                    set_phase(
                        &mut status,
                        &cluster,
                        "Failed",
                        "False",
                        "ProvisioningFailed",
                        &format!("Service \"{service_name}\" is invalid: {e}"),
                    );
                    return Ok(ensure_status(
                        engine,
                        &clusters(),
                        &cluster,
                        Value::Object(status),
                    )?);
                }
            }
        }
        exposure.server_node_port = state.node_port;
        let etcd = node_port
            .get("etcdPort")
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok());
        exposure.etcd_node_port = etcd.or_else(|| {
            let existing = engine
                .get(&ResourceRef::core("services"), Some(&ns), &service_name)
                .ok();
            let kept = existing
                .as_ref()
                .and_then(|s| s.pointer("/spec/ports/1/nodePort"))
                .and_then(Value::as_u64)
                .and_then(|p| u16::try_from(p).ok());
            kept.or_else(|| {
                (30_000u16..=32_767)
                    .rev()
                    .find(|p| !used.contains(&u64::from(*p)) && Some(*p) != state.node_port)
            })
        });
    }
    let service = ensure(
        engine,
        &ResourceRef::core("services"),
        &ns,
        objects::service(&cluster, &exposure),
        &[],
    )?;
    let service_ip = text(&service, "/spec/clusterIP").to_string();
    ensure(
        engine,
        &ResourceRef::core("services"),
        &ns,
        objects::headless_service(&cluster),
        &[],
    )?;
    ensure(
        engine,
        &ResourceRef::core("secrets"),
        &ns,
        objects::token_secret(&cluster, &state.token),
        &["data"],
    )?;
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

    let spec = cluster.get("spec").cloned().unwrap_or_else(|| json!({}));
    let spec_hash: String = sha2::Sha256::digest(spec.to_string().as_bytes())
        .iter()
        .take(5)
        .map(|b| format!("{b:02x}"))
        .collect();
    let servers = cluster
        .pointer("/spec/servers")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let version = Some(text(&cluster, "/spec/version").to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or(format!("{host_version}-k3s1"));
    let statefulsets = ResourceRef::new("apps", "statefulsets");
    let sts = ensure(
        engine,
        &statefulsets,
        &ns,
        objects::stateful_set(
            &cluster,
            servers,
            &format!("rancher/k3s:{version}"),
            &spec_hash,
        ),
        &[],
    )?;
    let revision = format!("{}-{spec_hash}", objects::server_name(&name));

    let now = Instant::now();
    let generation = cluster
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    if generation != state.observed_generation {
        state.observed_generation = generation;
        state.provisioning_until = Some(now + controls.delay);
        if !state.fault_assigned && controls.fail_next > 0 {
            controls.fail_next -= 1;
            controls.failing.insert(key.clone());
        }
        state.fault_assigned = true;
    }
    if state.failed && !controls.failing.contains(&key) {
        // The fault is gone: k3k's next retry provisions again.
        state.failed = false;
        state.provisioning_until = Some(now + controls.delay);
    }
    let provisioning = state.provisioning_until.is_some_and(|until| now < until);
    let ready = if provisioning {
        set_phase(
            &mut status,
            &cluster,
            "Provisioning",
            "False",
            "Provisioning",
            "Cluster is being provisioned",
        );
        false
    } else if controls.failing.contains(&key) {
        state.failed = true;
        set_phase(
            &mut status,
            &cluster,
            "Failed",
            "False",
            "ProvisioningFailed",
            "failed to provision the k3s server: fakehost injected fault",
        );
        false
    } else {
        state.provisioning_until = None;
        let server = start_server(state, &sans, &version.replacen("-k3s", "+k3s", 1))?;
        let admin = match &state.admin {
            Some(admin) => admin.clone(),
            None => {
                let admin = state.cas.client.issue_client_cert(
                    "system:admin",
                    &["system:masters".to_string()],
                    std::time::Duration::from_secs(365 * 86_400),
                )?;
                state.admin = Some(admin.clone());
                admin
            }
        };
        let kubeconfig = kubeconfig_yaml(
            &format!("https://{service_ip}:443"),
            state.cas.server.cert_pem(),
            &admin.cert_pem,
            &admin.key_pem,
            "default",
        );
        ensure(
            engine,
            &ResourceRef::core("secrets"),
            &ns,
            objects::bootstrap_secret(&cluster, &state.cas),
            &["data"],
        )?;
        ensure(
            engine,
            &ResourceRef::core("secrets"),
            &ns,
            objects::kubeconfig_secret(&cluster, &kubeconfig),
            &["data"],
        )?;
        server.update_sans(&sans)?;
        set_phase(
            &mut status,
            &cluster,
            "Ready",
            "True",
            "Provisioned",
            "Cluster successfully provisioned",
        );
        true
    };
    let previous = if state.current_revision.is_empty() {
        revision.clone()
    } else {
        state.current_revision.clone()
    };
    ensure_status(
        engine,
        &statefulsets,
        &sts,
        objects::stateful_set_status(&sts, servers, ready, &revision, &previous),
    )?;
    if ready {
        state.current_revision = revision;
    }
    ensure_status(engine, &clusters(), &cluster, Value::Object(status))?;
    Ok(())
}

fn start_server(
    state: &mut ClusterState,
    sans: &[String],
    git_version: &str,
) -> anyhow::Result<VirtualCluster> {
    if let Some(server) = &state.server {
        return Ok(server.clone());
    }
    let listener = match state.reserved.take() {
        Some(socket) => socket.listen(1024)?,
        None => {
            let std_listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
            std_listener.set_nonblocking(true)?;
            TcpListener::from_std(std_listener)?
        }
    };
    let spec = VirtualClusterSpec {
        server_ca: state.cas.server.clone(),
        client_ca: state.cas.client.clone(),
        sans: sans.to_vec(),
        git_version: git_version.to_string(),
    };
    let server = VirtualCluster::start(listener, spec)?;
    state.server = Some(server.clone());
    Ok(server)
}
