//! `FakeHost`: one running fake K3s API server — its CA and admin credentials, the HTTPS
//! listener, the engine (for in-process callers such as the simulated K3K controller),
//! fault controls and request counters, seeded with what a fresh K3s box has (system
//! namespaces, the `kubernetes` service, the `local-path` StorageClass, nodes).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::engine::{Engine, WriteOptions};
use crate::faults::{FaultPlan, Faults, RequestCounts};
use crate::http::{AppState, ServeSettings, router};
use crate::kinds::ResourceRef;
use crate::pki::Ca;
use crate::policies::{PodTolerationRestriction, RbacAuthorizer, StructuralSchema};
use crate::seams::{Authorizer, PodAdmission, Policies, SchemaValidator};
use crate::tls::{CertPair, server_config};

/// The nodes a fresh host has.
#[derive(Clone, Debug)]
pub struct NodeSeed {
    pub count: usize,
    pub cpu: String,
    pub memory: String,
    pub pods: String,
    pub labels: BTreeMap<String, String>,
}

impl Default for NodeSeed {
    fn default() -> Self {
        Self {
            count: 1,
            cpu: "4".into(),
            memory: "8Gi".into(),
            pods: "110".into(),
            labels: BTreeMap::new(),
        }
    }
}

/// How to start a fake host.
#[derive(Clone)]
pub struct FakeHostOptions {
    /// Where to listen; port 0 picks a free one.
    pub listen: SocketAddr,
    pub nodes: NodeSeed,
    /// Enable the PodTolerationRestriction admission plugin.
    pub pod_toleration_restriction: bool,
    /// Manifest files or directories (YAML/JSON, multi-document) applied at start, e.g. CRDs.
    pub manifests: Vec<PathBuf>,
    /// Overrides RBAC (`policies::RbacAuthorizer`).
    pub authorizer: Option<Arc<dyn Authorizer>>,
    /// Overrides PodTolerationRestriction (`policies::PodTolerationRestriction`) when enabled.
    pub pod_admission: Option<Arc<dyn PodAdmission>>,
    /// Overrides the CRD schema validator (`policies::StructuralSchema`).
    pub validator: Option<Arc<dyn SchemaValidator>>,
    /// `gitVersion` reported by `/version`.
    pub git_version: String,
    /// Events kept for watch replay and consistent paging.
    pub watch_history: usize,
    pub bookmark_interval: Duration,
    pub default_watch_timeout: Duration,
    /// Extra names/addresses for the serving certificate.
    pub extra_sans: Vec<String>,
}

impl Default for FakeHostOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            nodes: NodeSeed::default(),
            pod_toleration_restriction: false,
            manifests: Vec::new(),
            authorizer: None,
            pod_admission: None,
            validator: None,
            git_version: "v1.33.1+k3s1".into(),
            watch_history: 50_000,
            bookmark_interval: Duration::from_secs(5),
            default_watch_timeout: Duration::from_secs(30 * 60),
            extra_sans: Vec::new(),
        }
    }
}

/// A running fake host. Dropping it without `shutdown` leaves the server task running until
/// the runtime ends.
pub struct FakeHost {
    addr: SocketAddr,
    ca: Ca,
    admin: CertPair,
    engine: Engine,
    faults: Faults,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<()>,
}

impl FakeHost {
    pub async fn start(options: FakeHostOptions) -> anyhow::Result<Self> {
        let ca = Ca::new("k3s-server-ca")?;
        let mut sans = vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "kubernetes.default.svc".to_string(),
        ];
        sans.extend(options.extra_sans.iter().cloned());
        let ip = options.listen.ip().to_string();
        if !sans.contains(&ip) && !options.listen.ip().is_unspecified() {
            sans.push(ip);
        }
        let (cert_pem, key_pem) = ca.issue_server_cert(&sans)?;
        let serving = CertPair { cert_pem, key_pem };
        let admin = ca
            .issue_client_cert(
                "system:admin",
                &["system:masters".to_string()],
                Duration::from_secs(365 * 86_400),
            )?
            .into();
        let tls = server_config(ca.cert_pem(), &serving)?;

        let policies = Policies {
            authorizer: options
                .authorizer
                .clone()
                .unwrap_or_else(|| Arc::new(RbacAuthorizer)),
            validator: options
                .validator
                .clone()
                .unwrap_or_else(|| Arc::new(StructuralSchema)),
            pod_admission: options.pod_toleration_restriction.then(|| {
                options
                    .pod_admission
                    .clone()
                    .unwrap_or_else(|| Arc::new(PodTolerationRestriction) as Arc<dyn PodAdmission>)
            }),
        };
        let engine = Engine::new(policies, options.watch_history);
        seed(&engine, &options.nodes)?;
        let faults = Faults::default();
        let listener = TcpListener::bind(options.listen)
            .await
            .with_context(|| format!("binding {}", options.listen))?;
        let addr = listener.local_addr()?;
        let state = AppState {
            engine: engine.clone(),
            faults: faults.clone(),
            settings: Arc::new(ServeSettings {
                git_version: options.git_version.clone(),
                bookmark_interval: options.bookmark_interval,
                default_watch_timeout: options.default_watch_timeout,
            }),
        };
        let (shutdown, shutdown_rx) = watch::channel(false);
        let server = tokio::spawn(crate::server::serve(
            listener,
            tls,
            router(state),
            shutdown_rx,
        ));
        let host = Self {
            addr,
            ca,
            admin,
            engine,
            faults,
            shutdown,
            server,
        };
        for path in &options.manifests {
            host.load_manifest_path(path)?;
        }
        Ok(host)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn ca_pem(&self) -> &str {
        self.ca.cert_pem()
    }

    /// The CA's private key (to mint certificates outside the fake, as kaas does for tenants).
    pub fn ca_key_pem(&self) -> &str {
        self.ca.key_pem()
    }

    /// A client certificate for any user and groups (one O each), signed by the host CA.
    pub fn issue_client_cert(
        &self,
        user: &str,
        groups: &[String],
        validity: Duration,
    ) -> anyhow::Result<CertPair> {
        Ok(self.ca.issue_client_cert(user, groups, validity)?.into())
    }

    /// A complete kubeconfig for the admin (`system:admin`, group `system:masters`).
    pub fn kubeconfig_yaml(&self) -> String {
        self.kubeconfig_with(&self.admin, "default")
    }

    /// A kubeconfig for another user and groups.
    pub fn kubeconfig_for(&self, user: &str, groups: &[String]) -> anyhow::Result<String> {
        let pair = self.issue_client_cert(user, groups, Duration::from_secs(86_400))?;
        Ok(self.kubeconfig_with(&pair, user))
    }

    fn kubeconfig_with(&self, pair: &CertPair, user: &str) -> String {
        let config = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "default", "cluster": {
                "server": self.url(),
                "certificate-authority-data": STANDARD.encode(self.ca.cert_pem()),
            }}],
            "contexts": [{"name": "default", "context": {"cluster": "default", "user": user}}],
            "current-context": "default",
            "preferences": {},
            "users": [{"name": user, "user": {
                "client-certificate-data": STANDARD.encode(&pair.cert_pem),
                "client-key-data": STANDARD.encode(&pair.key_pem),
            }}],
        });
        serde_yaml::to_string(&config).unwrap_or_default()
    }

    pub fn write_kubeconfig(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, self.kubeconfig_yaml())
            .with_context(|| format!("writing {}", path.display()))
    }

    /// The in-process API (same rules as HTTP: resourceVersion, generation, finalizers,
    /// watch events), without authorization.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Fail a share of resource requests (None stops failing).
    pub fn set_fault_plan(&self, plan: Option<FaultPlan>) {
        self.faults.set_plan(plan);
    }

    /// Make every request hang until `resume`.
    pub fn pause(&self) {
        self.faults.pause();
    }

    pub fn resume(&self) {
        self.faults.resume();
    }

    pub fn set_latency(&self, latency: Duration) {
        self.faults.set_latency(latency);
    }

    /// End every open watch now.
    pub fn cut_watches(&self) {
        self.faults.cut_watches();
    }

    pub fn request_counts(&self) -> RequestCounts {
        self.faults.counts()
    }

    pub fn reset_request_counts(&self) {
        self.faults.reset_counts();
    }

    /// Creates every object of a (multi-document) YAML or JSON manifest, in order.
    pub fn load_manifests(&self, text: &str) -> anyhow::Result<Vec<Value>> {
        let mut created = Vec::new();
        for document in serde_yaml::Deserializer::from_str(text) {
            let object: Value = serde::Deserialize::deserialize(document)?;
            if object.is_null() {
                continue;
            }
            created.push(create_manifest_object(&self.engine, object)?);
        }
        Ok(created)
    }

    fn load_manifest_path(&self, path: &Path) -> anyhow::Result<()> {
        let mut files = Vec::new();
        if path.is_dir() {
            for entry in
                std::fs::read_dir(path).with_context(|| format!("reading {}", path.display()))?
            {
                let file = entry?.path();
                let manifest = file
                    .extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"));
                if manifest {
                    files.push(file);
                }
            }
            files.sort();
        } else {
            files.push(path.to_path_buf());
        }
        for file in files {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            self.load_manifests(&text)
                .with_context(|| format!("loading {}", file.display()))?;
        }
        Ok(())
    }

    /// Stops serving and drops all connections.
    pub async fn shutdown(self) {
        self.shutdown.send_replace(true);
        self.faults.resume();
        let _ = self.server.await;
    }
}

fn create_manifest_object(engine: &Engine, object: Value) -> anyhow::Result<Value> {
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let resource = engine
        .resource_for_kind(api_version, kind)
        .with_context(|| format!("no resource serves {api_version} {kind}"))?;
    let rt = engine
        .resource_type(&resource)
        .context("resource vanished")?;
    let namespace = if rt.namespaced {
        Some(
            object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("default")
                .to_string(),
        )
    } else {
        None
    };
    let options = WriteOptions {
        field_manager: Some("fakehost".into()),
        ..Default::default()
    };
    Ok(engine.create(&resource, namespace.as_deref(), object, &options)?)
}

/// What a fresh single-server K3s has.
fn seed(engine: &Engine, nodes: &NodeSeed) -> anyhow::Result<()> {
    let options = WriteOptions {
        field_manager: Some("k3s".into()),
        ..Default::default()
    };
    for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        engine.create(
            &ResourceRef::core("namespaces"),
            None,
            json!({"metadata": {"name": name}}),
            &options,
        )?;
    }
    engine.create(
        &ResourceRef::core("services"),
        Some("default"),
        json!({"metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
               "spec": {"clusterIP": "10.43.0.1", "clusterIPs": ["10.43.0.1"], "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]}}),
        &options,
    )?;
    engine.create(
        &ResourceRef::new("storage.k8s.io", "storageclasses"),
        None,
        json!({"metadata": {"name": "local-path", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
               "provisioner": "rancher.io/local-path", "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer"}),
        &options,
    )?;
    // The bootstrap ClusterRoles and bindings every cluster has (cluster-admin, admin, edit,
    // view, system:discovery, ...), so tenants' bindings to them work.
    let cluster_roles = ResourceRef::new("rbac.authorization.k8s.io", "clusterroles");
    for role in crate::rbac::default_cluster_roles() {
        engine.create(&cluster_roles, None, role, &options)?;
    }
    let cluster_role_bindings =
        ResourceRef::new("rbac.authorization.k8s.io", "clusterrolebindings");
    for binding in crate::rbac::default_cluster_role_bindings() {
        engine.create(&cluster_role_bindings, None, binding, &options)?;
    }
    for index in 1..=nodes.count {
        let name = format!("fakehost-node-{index}");
        let mut labels = json!({
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "node.kubernetes.io/instance-type": "k3s",
        });
        if index == 1 {
            labels["node-role.kubernetes.io/control-plane"] = json!("true");
            labels["node-role.kubernetes.io/master"] = json!("true");
        }
        for (key, value) in &nodes.labels {
            labels[key] = json!(value);
        }
        let resources = json!({"cpu": nodes.cpu, "memory": nodes.memory, "pods": nodes.pods, "ephemeral-storage": "100Gi"});
        let node = json!({"metadata": {"name": name, "labels": labels}, "spec": {"podCIDR": format!("10.42.{}.0/24", index - 1)}});
        let created = engine.create(&ResourceRef::core("nodes"), None, node, &options)?;
        let mut with_status = created;
        with_status["status"] = json!({
            "capacity": resources,
            "allocatable": resources,
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status",
                            "lastHeartbeatTime": crate::engine::now_rfc3339(), "lastTransitionTime": crate::engine::now_rfc3339()}],
            "addresses": [{"type": "InternalIP", "address": format!("10.0.0.{}", 10 + index)}, {"type": "Hostname", "address": name}],
            "nodeInfo": {"kubeletVersion": "v1.33.1+k3s1", "containerRuntimeVersion": "containerd://2.0.5-k3s1", "operatingSystem": "linux", "architecture": "amd64",
                         "kernelVersion": "6.1.0", "osImage": "Debian GNU/Linux 12 (bookworm)", "kubeProxyVersion": "v1.33.1+k3s1",
                         "machineID": "", "systemUUID": "", "bootID": ""},
        });
        engine.update_status(&ResourceRef::core("nodes"), None, with_status, &options)?;
    }
    Ok(())
}
