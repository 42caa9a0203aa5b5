//! k3s: what runs inside K3K's server pods, played in process as realhost plays it. A pod
//! labelled `cluster=<n>, role=server` and controlled by StatefulSet `k3k-<n>-server` runs a
//! K3s server once a kubelet has it Running: it reads the config Secret mounted into it (the
//! init config for ordinal 0, the joining one otherwise; without it K3s cannot start), serves
//! the Cluster's virtual cluster (`VirtualCluster`: one datastore per Cluster, kept while
//! the Cluster exists, as on its persistent volume; its CAs are reused from the
//! `k3k-<n>-bootstrap` Secret when fakehost's controller restarts) with a certificate for the
//! SANs of that moment, and passes its readiness probe after the start-up delay. It listens on
//! 6443 (the API) and on 2379 (etcd's client port, which only K3K's StatefulSet controller
//! dials). A deleted or stopped pod stops its server. A server started with an
//! `authentication-config` (the Cluster's `serverArgs` and `secretMounts`) authenticates
//! bearer tokens with `vcluster::jwt`.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use super::cluster::clusters;
use super::objects::{ClusterCas, secret_name, server_name, service_name, text};
use super::server::{ETCD_PORT, K3S_SERVER_PORT};
use crate::engine::Engine;
use crate::hostsim::{self, Containers, controller_uid, deleting};
use crate::kinds::ResourceRef;
use crate::vcluster::jwt::{self, JwtAuthenticator};
use crate::vcluster::{VirtualCluster, VirtualClusterSpec};

/// One Cluster's K3s: its datastore and when each server pod's K3s started.
struct Datastore {
    cluster_uid: String,
    cluster: VirtualCluster,
    cas: ClusterCas,
    started: HashMap<String, Instant>,
}

/// The K3s servers of every Cluster on one host.
pub(super) struct K3s {
    datastores: HashMap<(String, String), Datastore>,
    /// Time from a server pod's K3s start to its readiness.
    pub delay: Duration,
    /// When to try again a K3s start that failed (nothing else may wake the controller).
    retry_at: Option<Instant>,
    git_version: String,
}

/// Why K3K's bootstrap request to `https://<clusterIP>/v1-k3s/server-bootstrap` failed.
pub(super) enum Unreachable {
    /// No ready endpoint: kube-proxy rejects the connection (ECONNREFUSED).
    NotReady,
    /// The Service has no port 443: nothing answers and the client times out.
    NoPort(String),
}

/// The Cluster a pod is a K3K server of, if it is one.
pub(super) fn server_cluster(pod: &Value) -> Option<String> {
    let name = text(pod, "/metadata/labels/cluster");
    if name.is_empty() || text(pod, "/metadata/labels/role") != "server" {
        return None;
    }
    let owned = pod
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)?
        .iter()
        .any(|r| text(r, "/kind") == "StatefulSet" && text(r, "/name") == server_name(name));
    owned.then(|| name.to_string())
}

/// The `config.yaml` of the Secret the pod mounts as `volume`.
fn mounted_config(engine: &Engine, pod: &Value, volume: &str) -> Option<Value> {
    let secret = pod
        .pointer("/spec/volumes")
        .and_then(Value::as_array)?
        .iter()
        .find(|v| text(v, "/name") == volume)
        .map(|v| text(v, "/secret/secretName").to_string())?;
    let ns = text(pod, "/metadata/namespace");
    let object = engine
        .get(&ResourceRef::core("secrets"), Some(ns), &secret)
        .ok()?;
    let raw = STANDARD.decode(text(&object, "/data/config.yaml")).ok()?;
    serde_yaml::from_slice(&raw).ok()
}

/// The JWT authenticator K3s gives its kube-apiserver, from the Cluster's `serverArgs` in
/// the server container's start script: `--kube-apiserver-arg=authentication-config=PATH`,
/// PATH read from the Secret mounted there (the Cluster's `secretMounts`), as realhost maps
/// it. The `--oidc-*` flags are not played: a server given one does not start.
fn jwt_authenticator(
    engine: &Engine,
    pod: &Value,
) -> anyhow::Result<Option<Arc<JwtAuthenticator>>> {
    let Some(container) = pod.pointer("/spec/containers/0") else {
        return Ok(None);
    };
    let script: Vec<&str> = container
        .get("command")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .flat_map(str::split_whitespace)
        .collect();
    let mut issuers = Vec::new();
    for arg in script {
        let Some((name, value)) = arg
            .strip_prefix("--kube-apiserver-arg=")
            .and_then(|kv| kv.split_once('='))
        else {
            continue;
        };
        anyhow::ensure!(
            !name.starts_with("oidc-"),
            "--kube-apiserver-arg={name} is not played by fakehost"
        );
        if name == "authentication-config" {
            let file = mounted_file(engine, pod, container, value)
                .ok_or_else(|| anyhow::anyhow!("authentication-config {value}: no such file"))?;
            issuers.extend(jwt::parse_authentication_config(&file)?);
        }
    }
    if issuers.is_empty() {
        return Ok(None);
    }
    Ok(Some(Arc::new(JwtAuthenticator::start(issuers)?)))
}

/// The content of `path` inside `container`, when a Secret volume is mounted over it.
fn mounted_file(engine: &Engine, pod: &Value, container: &Value, path: &str) -> Option<String> {
    let ns = text(pod, "/metadata/namespace");
    for mount in container.get("volumeMounts")?.as_array()? {
        let base = text(mount, "/mountPath").trim_end_matches('/');
        let Some(rel) = path.strip_prefix(&format!("{base}/")) else {
            continue;
        };
        let sub = text(mount, "/subPath");
        let rel = if sub.is_empty() {
            rel.to_string()
        } else {
            format!("{sub}/{rel}")
        };
        let volume = pod
            .pointer("/spec/volumes")?
            .as_array()?
            .iter()
            .find(|v| text(v, "/name") == text(mount, "/name"))?;
        let source = volume.get("secret")?;
        let key = match source.get("items").and_then(Value::as_array) {
            Some(items) => {
                text(items.iter().find(|i| text(i, "/path") == rel)?, "/key").to_string()
            }
            None => rel,
        };
        let secret = engine
            .get(
                &ResourceRef::core("secrets"),
                Some(ns),
                text(source, "/secretName"),
            )
            .ok()?;
        let raw = STANDARD
            .decode(text(
                &secret,
                &format!("/data/{}", key.replace('~', "~0").replace('/', "~1")),
            ))
            .ok()?;
        return String::from_utf8(raw).ok();
    }
    None
}

impl K3s {
    pub(super) fn new(delay: Duration, host_version: &str) -> Self {
        Self {
            datastores: HashMap::new(),
            delay,
            retry_at: None,
            git_version: format!("{host_version}+k3s1"),
        }
    }

    /// Starts and stops K3s servers to match the server pods; `failing` Clusters' K3s does
    /// not start (fakehost's injected provisioning fault).
    pub(super) fn sync(&mut self, engine: &Engine, failing: &BTreeSet<(String, String)>) {
        let have_clusters = engine.resource_type(&clusters()).is_some();
        self.retry_at = None;
        let mut running: BTreeSet<(String, String, String)> = BTreeSet::new();
        for pod in hostsim::list(engine, &ResourceRef::core("pods"), None) {
            let Some(cluster) = server_cluster(&pod) else {
                continue;
            };
            let ns = text(&pod, "/metadata/namespace").to_string();
            let key = (ns.clone(), cluster.clone());
            if text(&pod, "/status/phase") != "Running" || deleting(&pod) || failing.contains(&key)
            {
                continue;
            }
            if !have_clusters {
                continue;
            }
            match self.start(engine, &pod, &key) {
                Ok(()) => {
                    running.insert((ns, cluster, text(&pod, "/metadata/name").to_string()));
                }
                Err(error) => {
                    tracing::debug!(%error, "k3s server start");
                    self.retry_at = Some(Instant::now() + Duration::from_millis(200));
                }
            }
        }
        let mut gone = Vec::new();
        for (key, store) in &mut self.datastores {
            for (pod, uid) in store.cluster.server_pods() {
                if !running.contains(&(key.0.clone(), key.1.clone(), pod.clone())) {
                    store.cluster.stop_server(&pod);
                    store.started.remove(&uid);
                }
            }
            let live = engine
                .get(&clusters(), Some(&key.0), &key.1)
                .is_ok_and(|c| text(&c, "/metadata/uid") == store.cluster_uid);
            if !live {
                gone.push(key.clone());
            }
        }
        for key in gone {
            if let Some(store) = self.datastores.remove(&key) {
                store.cluster.stop();
            }
        }
    }

    fn start(
        &mut self,
        engine: &Engine,
        pod: &Value,
        key: &(String, String),
    ) -> anyhow::Result<()> {
        let (ns, name) = key;
        let cluster = engine.get(&clusters(), Some(ns), name)?;
        let cluster_uid = text(&cluster, "/metadata/uid").to_string();
        let sts_owner = engine
            .get(
                &ResourceRef::new("apps", "statefulsets"),
                Some(ns),
                &server_name(name),
            )
            .ok()
            .and_then(|s| controller_uid(&s).map(str::to_string));
        anyhow::ensure!(
            sts_owner.as_deref() == Some(cluster_uid.as_str()),
            "the server StatefulSet is not this Cluster's"
        );
        let pod_name = text(pod, "/metadata/name");
        let volume = if pod_name.ends_with("-0") {
            "initconfig"
        } else {
            "config"
        };
        let config = mounted_config(engine, pod, volume)
            .ok_or_else(|| anyhow::anyhow!("no config.yaml in the {volume} Secret"))?;
        let tls_san: Vec<String> = config
            .get("tls-san")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        let service = engine.get(
            &ResourceRef::core("services"),
            Some(ns),
            &service_name(name),
        )?;
        let service_ip = text(&service, "/spec/clusterIP").to_string();
        if self
            .datastores
            .get(key)
            .is_some_and(|d| d.cluster_uid != cluster_uid)
            && let Some(old) = self.datastores.remove(key)
        {
            old.cluster.stop();
        }
        if !self.datastores.contains_key(key) {
            let kept = engine
                .get(
                    &ResourceRef::core("secrets"),
                    Some(ns),
                    &secret_name(name, "bootstrap"),
                )
                .ok()
                .and_then(|s| ClusterCas::from_bootstrap_secret(&s));
            let cas = match kept {
                Some(cas) => cas,
                None => ClusterCas::generate()?,
            };
            let cluster = VirtualCluster::new(VirtualClusterSpec {
                server_ca: cas.server.clone(),
                client_ca: cas.client.clone(),
                git_version: self.git_version_for(&cluster),
            })?;
            self.datastores.insert(
                key.clone(),
                Datastore {
                    cluster_uid,
                    cluster,
                    cas,
                    started: HashMap::new(),
                },
            );
        }
        let Some(store) = self.datastores.get_mut(key) else {
            return Ok(());
        };
        let uid = text(pod, "/metadata/uid");
        // The authenticator is read when the server starts, not on every pass.
        let jwt = if store.cluster.server_addr(pod_name, uid).is_some() {
            None
        } else {
            jwt_authenticator(engine, pod)?
        };
        store
            .cluster
            .start_server(pod_name, uid, &service_ip, &tls_san, jwt)?;
        store
            .started
            .entry(uid.to_string())
            .or_insert_with(Instant::now);
        Ok(())
    }

    fn git_version_for(&self, cluster: &Value) -> String {
        let version = text(cluster, "/spec/version");
        if version.is_empty() {
            self.git_version.clone()
        } else {
            version.replacen("-k3s", "+k3s", 1)
        }
    }

    fn server_of<'a, 'p>(&'a self, pod: &'p Value) -> Option<(&'a Datastore, &'p str)> {
        let cluster = server_cluster(pod)?;
        let key = (text(pod, "/metadata/namespace").to_string(), cluster);
        Some((self.datastores.get(&key)?, text(pod, "/metadata/uid")))
    }

    /// Whether the pod's K3s runs (whatever its readiness).
    pub(super) fn runs(&self, pod: &Value) -> bool {
        self.server_of(pod)
            .is_some_and(|(store, uid)| store.started.contains_key(uid))
    }

    /// When a pass is due for a server's readiness probe. A probe that came due while a
    /// pass ran (after its kubelet looked) stays due for a while, so the next pass sees it.
    pub(super) fn next_due(&self) -> Option<Instant> {
        let grace = Duration::from_secs(1);
        self.datastores
            .values()
            .flat_map(|d| d.started.values())
            .map(|t| *t + self.delay)
            .filter(|t| *t + grace > Instant::now())
            .chain(self.retry_at)
            .min()
    }

    /// Every virtual cluster with a running server.
    pub(super) fn running(&self) -> Vec<((String, String), VirtualCluster)> {
        self.datastores
            .iter()
            .filter(|(_, d)| !d.started.is_empty())
            .map(|(k, d)| (k.clone(), d.cluster.clone()))
            .collect()
    }

    /// K3K's bootstrap request through its Service's ClusterIP, port 443: the CAs of the
    /// K3s behind it, or why it got none.
    pub(super) fn bootstrap(
        &self,
        engine: &Engine,
        service: &Value,
        cluster: &str,
    ) -> Result<&ClusterCas, Unreachable> {
        let Some(port) = hostsim::kubeproxy::service_port(service, 443) else {
            return Err(Unreachable::NoPort(format!(
                "Get \"https://{}/v1-k3s/server-bootstrap\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
                text(service, "/spec/clusterIP")
            )));
        };
        if hostsim::kubeproxy::endpoints(engine, self, service, &port).is_empty() {
            return Err(Unreachable::NotReady);
        }
        let key = (
            text(service, "/metadata/namespace").to_string(),
            cluster.to_string(),
        );
        self.datastores
            .get(&key)
            .map(|d| &d.cas)
            .ok_or(Unreachable::NotReady)
    }

    /// Whether etcd answers on `https://<service>.<ns>:2379` (K3K's member removal), and
    /// K3K can read the etcd CA through the same Service's 443 first.
    pub(super) fn etcd_reachable(&self, engine: &Engine, service: &Value, cluster: &str) -> bool {
        let Some(port) = hostsim::kubeproxy::service_port(service, ETCD_PORT) else {
            return false;
        };
        self.bootstrap(engine, service, cluster).is_ok()
            && hostsim::kubeproxy::ready_pods(engine, service)
                .iter()
                .any(|pod| {
                    hostsim::kubeproxy::target_port(&port, pod) == Some(ETCD_PORT as u16)
                        && self.runs(pod)
                })
    }

    pub(super) fn shutdown(&mut self) {
        for (_, store) in self.datastores.drain() {
            store.cluster.stop();
        }
    }
}

impl Containers for K3s {
    fn ready(&self, pod: &Value) -> bool {
        if server_cluster(pod).is_none() {
            return true;
        }
        self.server_of(pod)
            .and_then(|(store, uid)| store.started.get(uid))
            .is_some_and(|started| started.elapsed() >= self.delay)
    }

    fn endpoint(&self, pod: &Value, port: u16) -> Option<SocketAddr> {
        let (store, uid) = self.server_of(pod)?;
        let name = text(pod, "/metadata/name");
        // Only the API has a listener; etcd's client port is for K3K's in-process calls.
        (u64::from(port) == K3S_SERVER_PORT)
            .then(|| store.cluster.server_addr(name, uid))
            .flatten()
    }
}
