//! vcluster: the simulated API server of one K3K virtual cluster — its own `Engine` (fresh
//! store, built-in kinds, the namespaces and bootstrap RBAC of a new K3s), served over HTTPS
//! with a certificate from the cluster's serverCA, authenticating client certificates signed
//! by its clientCA (CN = user, O = groups) and authorizing every request with RBAC, plus the
//! few in-cluster controllers a tenant notices (default ServiceAccounts, Deployments → Pods).

// Every `Engine` call returns the engine's `ApiError` unboxed; these handlers pass it on.
#![allow(clippy::result_large_err)]

mod serve;
mod workloads;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::engine::{Engine, WriteOptions};
use crate::faults::Faults;
use crate::http::{AppState, ServeSettings, router};
use crate::kinds::ResourceRef;
use crate::pki::{Ca, IssuedCert};
use crate::rbac;
use crate::seams::{AcceptAll, Policies};

pub use crate::policies::RbacAuthorizer;

/// What a virtual cluster server needs from its K3K Cluster.
pub struct VirtualClusterSpec {
    pub server_ca: Arc<Ca>,
    pub client_ca: Arc<Ca>,
    /// Names and addresses for the serving certificate besides 127.0.0.1 and localhost.
    pub sans: Vec<String>,
    /// `gitVersion` reported by `/version`, e.g. `v1.33.1+k3s1`.
    pub git_version: String,
}

/// A running virtual cluster API server. Cheap to clone; `stop` ends it.
#[derive(Clone)]
pub struct VirtualCluster {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    addr: SocketAddr,
    server_ca: Arc<Ca>,
    client_ca: Arc<Ca>,
    tls: serve::SharedTls,
    sans: Mutex<Vec<String>>,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

fn serving_sans(extra: &[String]) -> Vec<String> {
    let mut sans = vec![
        "127.0.0.1".to_string(),
        "localhost".to_string(),
        "kubernetes".into(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
    ];
    for san in extra {
        if !san.is_empty() && !sans.contains(san) {
            sans.push(san.clone());
        }
    }
    sans
}

/// A fresh K3s store: system namespaces, the `kubernetes` Service and bootstrap RBAC.
fn seeded_engine() -> anyhow::Result<Engine> {
    let policies = Policies {
        authorizer: Arc::new(RbacAuthorizer),
        pod_admission: None,
        validator: Arc::new(AcceptAll),
    };
    let engine = Engine::new(policies, 10_000);
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
               "spec": {"clusterIP": "10.43.0.1", "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]}}),
        &options,
    )?;
    let rbac_group = "rbac.authorization.k8s.io";
    for role in rbac::default_cluster_roles() {
        engine.create(
            &ResourceRef::new(rbac_group, "clusterroles"),
            None,
            role,
            &options,
        )?;
    }
    for binding in rbac::default_cluster_role_bindings() {
        engine.create(
            &ResourceRef::new(rbac_group, "clusterrolebindings"),
            None,
            binding,
            &options,
        )?;
    }
    Ok(engine)
}

impl VirtualCluster {
    /// Seeds a new store and serves it on `listener` (which must already be listening).
    /// Must be called inside a Tokio runtime.
    pub fn start(listener: TcpListener, spec: VirtualClusterSpec) -> anyhow::Result<Self> {
        let addr = listener.local_addr()?;
        let engine = seeded_engine().context("seeding the virtual cluster")?;
        let sans = serving_sans(&spec.sans);
        let (cert, key) = spec.server_ca.issue_server_cert(&sans)?;
        let tls = Arc::new(std::sync::RwLock::new(serve::server_config(&cert, &key)?));
        let state = AppState {
            engine: engine.clone(),
            faults: Faults::default(),
            settings: Arc::new(ServeSettings {
                git_version: spec.git_version.clone(),
                bookmark_interval: Duration::from_secs(5),
                default_watch_timeout: Duration::from_secs(30 * 60),
            }),
        };
        let app = router(state);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let client_ca_pem: Arc<str> = Arc::from(spec.client_ca.cert_pem());
        let server = tokio::spawn(serve::serve(
            listener,
            tls.clone(),
            client_ca_pem,
            app,
            shutdown_rx.clone(),
        ));
        let controllers = tokio::spawn(workloads::run(
            engine.clone(),
            spec.server_ca.cert_pem().to_string(),
            shutdown_rx,
        ));
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                addr,
                server_ca: spec.server_ca,
                client_ca: spec.client_ca,
                tls,
                sans: Mutex::new(sans),
                shutdown,
                tasks: Mutex::new(vec![server, controllers]),
            }),
        })
    }

    /// The virtual cluster's own API semantics, in process and without authorization.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// `https://127.0.0.1:<port>`: with a NodePort Service, the port is the nodePort.
    pub fn url(&self) -> String {
        format!("https://{}", self.inner.addr)
    }

    pub fn server_ca_pem(&self) -> &str {
        self.inner.server_ca.cert_pem()
    }

    pub fn client_ca_pem(&self) -> &str {
        self.inner.client_ca.cert_pem()
    }

    /// The SANs of the current serving certificate.
    pub fn sans(&self) -> Vec<String> {
        self.inner
            .sans
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// A client certificate signed by the cluster's client CA (what kaas mints for tenants).
    pub fn issue_client_cert(
        &self,
        user: &str,
        groups: &[String],
        validity: Duration,
    ) -> anyhow::Result<IssuedCert> {
        Ok(self
            .inner
            .client_ca
            .issue_client_cert(user, groups, validity)?)
    }

    /// A kubeconfig for `user`/`groups` pointing at `url()` with the serverCA as trust root.
    pub fn kubeconfig_for(&self, user: &str, groups: &[String]) -> anyhow::Result<String> {
        let cert = self.issue_client_cert(user, groups, Duration::from_secs(86_400))?;
        Ok(kubeconfig_yaml(
            &self.url(),
            self.server_ca_pem(),
            &cert.cert_pem,
            &cert.key_pem,
            user,
        ))
    }

    /// `system:admin` in `system:masters`, as in K3K's `k3k-<n>-kubeconfig` but reachable here.
    pub fn admin_kubeconfig(&self) -> anyhow::Result<String> {
        self.kubeconfig_for("system:admin", &["system:masters".to_string()])
    }

    /// Re-issues the serving certificate when the SANs change (spec.tlsSANs edited).
    pub fn update_sans(&self, extra: &[String]) -> anyhow::Result<()> {
        let sans = serving_sans(extra);
        let Ok(mut current) = self.inner.sans.lock() else {
            return Ok(());
        };
        if *current == sans {
            return Ok(());
        }
        let (cert, key) = self.inner.server_ca.issue_server_cert(&sans)?;
        let config = serve::server_config(&cert, &key)?;
        match self.inner.tls.write() {
            Ok(mut guard) => *guard = config,
            Err(poisoned) => *poisoned.into_inner() = config,
        }
        *current = sans;
        Ok(())
    }

    /// Stops serving (the port is released) and the in-cluster controllers.
    pub fn stop(&self) {
        self.inner.shutdown.send_replace(true);
        if let Ok(mut tasks) = self.inner.tasks.lock() {
            for task in tasks.drain(..) {
                task.abort();
            }
        }
    }

    pub fn is_stopped(&self) -> bool {
        *self.inner.shutdown.borrow()
    }
}

/// A kubeconfig with embedded credentials, named `default` like K3s' own.
pub fn kubeconfig_yaml(
    server: &str,
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
    user: &str,
) -> String {
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "default", "cluster": {"server": server, "certificate-authority-data": STANDARD.encode(ca_pem)}}],
        "contexts": [{"name": "default", "context": {"cluster": "default", "user": user}}],
        "current-context": "default",
        "preferences": {},
        "users": [{"name": user, "user": {
            "client-certificate-data": STANDARD.encode(cert_pem),
            "client-key-data": STANDARD.encode(key_pem),
        }}],
    });
    serde_yaml::to_string(&config).unwrap_or_default()
}
