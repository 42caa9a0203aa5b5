//! vcluster: the simulated API of one K3K virtual cluster — its own `Engine` (fresh store,
//! built-in kinds, the namespaces and bootstrap RBAC of a new K3s) and the few in-cluster
//! controllers a tenant notices (default ServiceAccounts, Deployments → Pods), served by one
//! K3s server per running server pod: HTTPS with a certificate from the cluster's serverCA
//! for the SANs in force when that server started, authenticating client certificates signed
//! by its clientCA (CN = user, O = groups) or bearer tokens its JWT authenticator accepts
//! (`jwt`, from the `authentication-config` the server started with), and authorizing every
//! request with RBAC.

// Every `Engine` call returns the engine's `ApiError` unboxed; these handlers pass it on.
#![allow(clippy::result_large_err)]

pub mod jwt;
mod serve;
mod workloads;

use std::collections::BTreeMap;
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

/// What a virtual cluster's K3s datastore starts from.
pub struct VirtualClusterSpec {
    pub server_ca: Arc<Ca>,
    pub client_ca: Arc<Ca>,
    /// `gitVersion` reported by `/version`, e.g. `v1.33.1+k3s1`.
    pub git_version: String,
}

/// One K3K virtual cluster: its datastore, API and in-cluster controllers (what persists on
/// the server pods' volume), served by one K3s server per running server pod, each on its
/// own loopback port (the pod's 6443) with its own serving certificate. Cheap to clone.
#[derive(Clone)]
pub struct VirtualCluster {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    /// Counts the requests this virtual cluster's servers serve.
    faults: Faults,
    server_ca: Arc<Ca>,
    client_ca: Arc<Ca>,
    router: axum::Router,
    servers: Mutex<BTreeMap<String, Server>>,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// A running K3s server: the pod it runs in, where it listens, the SANs of its certificate.
struct Server {
    pod_uid: String,
    addr: SocketAddr,
    sans: Vec<String>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// The names a K3s server's serving certificate carries besides `tls-san`: K3s' own
/// (loopback, the in-cluster `kubernetes` names and Service IP) and the address K3K's
/// Service gives it, as realhost's servers have them.
fn serving_sans(service_ip: &str, tls_san: &[String]) -> Vec<String> {
    let mut sans: Vec<String> = [
        service_ip,
        "127.0.0.1",
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "10.43.0.1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    sans.extend(tls_san.iter().cloned());
    let mut seen = std::collections::BTreeSet::new();
    sans.retain(|s| !s.is_empty() && seen.insert(s.clone()));
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
    /// Seeds a new datastore and starts the in-cluster controllers; no server runs yet.
    /// Must be called inside a Tokio runtime.
    pub fn new(spec: VirtualClusterSpec) -> anyhow::Result<Self> {
        let engine = seeded_engine().context("seeding the virtual cluster")?;
        let faults = Faults::default();
        let state = AppState {
            engine: engine.clone(),
            faults: faults.clone(),
            settings: Arc::new(ServeSettings {
                git_version: spec.git_version.clone(),
                bookmark_interval: Duration::from_secs(5),
                default_watch_timeout: Duration::from_secs(30 * 60),
            }),
        };
        let (shutdown, shutdown_rx) = watch::channel(false);
        let controllers = tokio::spawn(workloads::run(
            engine.clone(),
            spec.server_ca.cert_pem().to_string(),
            shutdown_rx,
        ));
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                faults,
                server_ca: spec.server_ca,
                client_ca: spec.client_ca,
                router: router(state),
                servers: Mutex::new(BTreeMap::new()),
                shutdown,
                tasks: Mutex::new(vec![controllers]),
            }),
        })
    }

    /// Starts the K3s server of pod `pod` (uid `pod_uid`) on a new loopback port, with a
    /// certificate for the SANs K3s reads at start: its own, `service_ip` and `tls_san`. A
    /// server already running for that pod is kept as it is (K3s reads `tls-san` only at
    /// start); one left by an earlier pod of that name is replaced. `jwt`: the JWT
    /// authenticator of its `authentication-config`, if it was started with one.
    pub fn start_server(
        &self,
        pod: &str,
        pod_uid: &str,
        service_ip: &str,
        tls_san: &[String],
        jwt: Option<Arc<jwt::JwtAuthenticator>>,
    ) -> anyhow::Result<SocketAddr> {
        let mut servers = lock(&self.inner.servers);
        if let Some(server) = servers.get(pod) {
            if server.pod_uid == pod_uid {
                return Ok(server.addr);
            }
            server.halt();
        }
        let sans = serving_sans(service_ip, tls_san);
        let (cert, key) = self.inner.server_ca.issue_server_cert(&sans)?;
        let tls = serve::server_config(&cert, &key)?;
        let std_listener = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))?;
        std_listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(std_listener)?;
        let addr = listener.local_addr()?;
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(serve::serve(
            listener,
            tls,
            Arc::from(self.inner.client_ca.cert_pem()),
            jwt,
            self.inner.router.clone(),
            stop_rx,
        ));
        servers.insert(
            pod.to_string(),
            Server {
                pod_uid: pod_uid.to_string(),
                addr,
                sans,
                stop,
                task,
            },
        );
        Ok(addr)
    }

    /// Requests this virtual cluster's API served, by verb.
    pub fn request_counts(&self) -> crate::faults::RequestCounts {
        self.inner.faults.counts()
    }

    pub fn reset_request_counts(&self) {
        self.inner.faults.reset_counts();
    }

    /// Stops the K3s server of pod `pod` (its connections end with it).
    pub fn stop_server(&self, pod: &str) {
        if let Some(server) = lock(&self.inner.servers).remove(pod) {
            server.halt();
        }
    }

    /// Where the K3s server of pod `pod` with uid `pod_uid` listens, if it runs.
    pub fn server_addr(&self, pod: &str, pod_uid: &str) -> Option<SocketAddr> {
        lock(&self.inner.servers)
            .get(pod)
            .filter(|s| s.pod_uid == pod_uid)
            .map(|s| s.addr)
    }

    /// The pods whose K3s server runs, with their uids.
    pub fn server_pods(&self) -> Vec<(String, String)> {
        lock(&self.inner.servers)
            .iter()
            .map(|(pod, s)| (pod.clone(), s.pod_uid.clone()))
            .collect()
    }

    /// The SANs of the certificate the server of pod `pod` serves.
    pub fn server_sans(&self, pod: &str) -> Option<Vec<String>> {
        lock(&self.inner.servers).get(pod).map(|s| s.sans.clone())
    }

    /// The virtual cluster's own API semantics, in process and without authorization.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Where the first running server (by pod name) listens: the pod's own port, not a
    /// node port.
    pub fn addr(&self) -> Option<SocketAddr> {
        lock(&self.inner.servers).values().next().map(|s| s.addr)
    }

    /// `https://127.0.0.1:<port>` of the first running server.
    pub fn url(&self) -> Option<String> {
        self.addr().map(|addr| format!("https://{addr}"))
    }

    pub fn server_ca_pem(&self) -> &str {
        self.inner.server_ca.cert_pem()
    }

    pub fn client_ca_pem(&self) -> &str {
        self.inner.client_ca.cert_pem()
    }

    /// The SANs of the first running server's certificate.
    pub fn sans(&self) -> Vec<String> {
        lock(&self.inner.servers)
            .values()
            .next()
            .map(|s| s.sans.clone())
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
        let url = self
            .url()
            .ok_or_else(|| anyhow::anyhow!("no server of the virtual cluster runs"))?;
        let cert = self.issue_client_cert(user, groups, Duration::from_secs(86_400))?;
        Ok(kubeconfig_yaml(
            &url,
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

    /// Stops every server and the in-cluster controllers (the datastore is gone with it).
    pub fn stop(&self) {
        self.inner.shutdown.send_replace(true);
        for (_, server) in std::mem::take(&mut *lock(&self.inner.servers)) {
            server.halt();
        }
        for task in lock(&self.inner.tasks).drain(..) {
            task.abort();
        }
    }

    pub fn is_stopped(&self) -> bool {
        *self.inner.shutdown.borrow()
    }
}

impl Server {
    fn halt(&self) {
        self.stop.send_replace(true);
        self.task.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
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
