//! k3k: the simulated K3K controller (v1.1.0). It runs in-process against a host `Engine`,
//! waits for the `clusters.k3k.io` CRD, and reconciles every Cluster, its server pods and
//! every VirtualClusterPolicy on the host the way rancher/k3k does (see `cluster`, `server`,
//! `agent`, `statefulset` and `policy`). The same task runs what K3K relies on from the host
//! (`crate::hostsim`: StatefulSet and DaemonSet controllers, scheduler, kubelets, kube-proxy)
//! and what runs in K3K's server pods (`k3s`: one virtual cluster, `crate::vcluster`, per
//! Cluster, served by a K3s server per running server pod and reachable through any NodePort
//! or LoadBalancer Service that selects them).
//!
//! Controls on the handle: controller down (deletions hang on the finalizers, exactly as
//! when k3k is not running; the host's own parts keep running), injected provisioning
//! failures and validation failures, the K3s start-up delay.

// Every `Engine` call returns the engine's `ApiError` unboxed; this controller passes it on.
#![allow(clippy::result_large_err)]

mod agent;
mod cluster;
mod k3s;
pub mod objects;
mod policy;
mod quantity;
mod server;
mod statefulset;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::engine::{Engine, ListOptions, PatchRequest};
use crate::host::FakeHost;
use crate::hostsim::{self, kubeproxy::KubeProxy};
use crate::patch::PatchType;
use crate::vcluster::VirtualCluster;
use cluster::{ClusterState, FINALIZER, clusters};
use k3s::K3s;
use objects::text;

pub use cluster::POLICY_LABEL;
pub use policy::{MANAGED_BY, MANAGED_BY_LABEL, policy_object_name};

/// How the simulated controller behaves.
#[derive(Clone, Debug)]
pub struct K3kOptions {
    /// Time a K3K server pod's K3s takes from start to ready (its readiness probe), so a new
    /// Cluster is Provisioning about that long.
    pub provision_delay: Duration,
    /// The host's `gitVersion` (for `status.hostVersion` and the default k3s version).
    pub host_git_version: String,
    /// How often the controller looks for changes on the host.
    pub poll_interval: Duration,
}

impl Default for K3kOptions {
    fn default() -> Self {
        Self {
            provision_delay: Duration::from_millis(500),
            host_git_version: "v1.33.1+k3s1".into(),
            poll_interval: Duration::from_millis(20),
        }
    }
}

/// Switches tests flip while the controller runs.
#[derive(Debug)]
pub(crate) struct Controls {
    down: bool,
    fail_next: u32,
    failing: BTreeSet<(String, String)>,
    invalid: BTreeMap<(String, String), String>,
    delay: Duration,
}

struct Shared {
    controls: Mutex<Controls>,
    vclusters: Mutex<HashMap<(String, String), VirtualCluster>>,
    poked: AtomicBool,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// Handle on a running simulated K3K controller. Cheap to clone.
#[derive(Clone)]
pub struct K3kController {
    shared: Arc<Shared>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn key(namespace: &str, name: &str) -> (String, String) {
    (namespace.to_string(), name.to_string())
}

impl K3kController {
    /// Starts the controller on `engine` (must be called inside a Tokio runtime).
    pub fn start(engine: Engine, options: K3kOptions) -> Self {
        let (stop, stop_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            controls: Mutex::new(Controls {
                down: false,
                fail_next: 0,
                failing: BTreeSet::new(),
                invalid: BTreeMap::new(),
                delay: options.provision_delay,
            }),
            vclusters: Mutex::new(HashMap::new()),
            poked: AtomicBool::new(false),
            stop,
            task: Mutex::new(None),
        });
        let task = tokio::spawn(run(shared.clone(), engine, options, stop_rx));
        *lock(&shared.task) = Some(task);
        Self { shared }
    }

    /// Starts the controller against a running fake host.
    pub fn for_host(host: &FakeHost, options: K3kOptions) -> Self {
        Self::start(host.engine().clone(), options)
    }

    fn with_controls(&self, change: impl FnOnce(&mut Controls)) {
        change(&mut lock(&self.shared.controls));
        self.shared.poked.store(true, Ordering::SeqCst);
    }

    /// Controller down: nothing is reconciled (Clusters stay as they are, deletions hang with
    /// `deletionTimestamp` set). Back up, it resumes where it left off.
    pub fn set_down(&self, down: bool) {
        self.with_controls(|c| c.down = down);
    }

    pub fn is_down(&self) -> bool {
        lock(&self.shared.controls).down
    }

    /// The next `n` Clusters provisioned for the first time fail (`Failed` /
    /// `ProvisioningFailed`) until `clear_provisioning_faults`.
    pub fn fail_next_provisions(&self, n: u32) {
        self.with_controls(|c| c.fail_next = n);
    }

    /// This Cluster fails provisioning until `clear_provisioning_faults`.
    pub fn fail_provisioning(&self, namespace: &str, name: &str) {
        self.with_controls(|c| {
            c.failing.insert(key(namespace, name));
        });
    }

    /// Clears every provisioning fault; failed Clusters provision again and become Ready.
    pub fn clear_provisioning_faults(&self) {
        self.with_controls(|c| {
            c.fail_next = 0;
            c.failing.clear();
        });
    }

    /// Makes k3k's validation reject this Cluster (`Pending` / `ValidationFailed` with
    /// `cluster validation error: <message>`), or accept it again with `None`.
    pub fn set_invalid(&self, namespace: &str, name: &str, message: Option<&str>) {
        self.with_controls(|c| match message {
            Some(message) => {
                c.invalid.insert(key(namespace, name), message.to_string());
            }
            None => {
                c.invalid.remove(&key(namespace, name));
            }
        });
    }

    pub fn set_provision_delay(&self, delay: Duration) {
        self.with_controls(|c| c.delay = delay);
    }

    /// The virtual cluster of a Cluster while at least one of its K3s servers runs.
    pub fn vcluster(&self, namespace: &str, name: &str) -> Option<VirtualCluster> {
        lock(&self.shared.vclusters)
            .get(&key(namespace, name))
            .cloned()
    }

    /// Requests served by every running virtual cluster's API, summed by verb.
    pub fn vcluster_request_counts(&self) -> crate::faults::RequestCounts {
        lock(&self.shared.vclusters)
            .values()
            .map(VirtualCluster::request_counts)
            .fold(crate::faults::RequestCounts::default(), |a, b| a + b)
    }

    pub fn reset_vcluster_request_counts(&self) {
        for vcluster in lock(&self.shared.vclusters).values() {
            vcluster.reset_request_counts();
        }
    }

    /// Waits up to `timeout` for a K3s server of the Cluster to be running.
    pub async fn wait_for_vcluster(
        &self,
        namespace: &str,
        name: &str,
        timeout: Duration,
    ) -> Option<VirtualCluster> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(vcluster) = self.vcluster(namespace, name) {
                return Some(vcluster);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the controller and every virtual cluster server it started.
    pub async fn shutdown(&self) {
        self.shared.stop.send_replace(true);
        let task = lock(&self.shared.task).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

async fn run(
    shared: Arc<Shared>,
    engine: Engine,
    options: K3kOptions,
    mut stop: watch::Receiver<bool>,
) {
    let host_version = {
        let raw = options.host_git_version.as_str();
        raw.split(['+', '-']).next().unwrap_or(raw).to_string()
    };
    let mut world = World {
        states: HashMap::new(),
        k3s: K3s::new(options.provision_delay, &host_version),
        proxy: KubeProxy::default(),
        host_version,
    };
    let mut seen = u64::MAX;
    let mut wake: Option<Instant> = None;
    loop {
        let current = engine.resource_version();
        let poked = shared.poked.swap(false, Ordering::SeqCst);
        let due = wake.is_some_and(|t| t <= Instant::now());
        if current != seen || poked || due {
            let complete = pass(&shared, &engine, &mut world);
            // Another pass follows if this one wrote anything; an in-sync pass writes nothing.
            seen = current;
            let retry = (!complete).then(|| Instant::now() + Duration::from_millis(200));
            wake = world.k3s.next_due().into_iter().chain(retry).min();
        }
        tokio::select! {
            _ = tokio::time::sleep(options.poll_interval) => {}
            _ = stop.changed() => break,
        }
    }
    world.proxy.shutdown();
    world.k3s.shutdown();
    lock(&shared.vclusters).clear();
}

/// What the task keeps between passes.
struct World {
    /// K3K's memory of each Cluster, by uid.
    states: HashMap<String, ClusterState>,
    k3s: K3s,
    proxy: KubeProxy,
    host_version: String,
}

/// One pass; false when something is left to retry soon.
fn pass(shared: &Shared, engine: &Engine, world: &mut World) -> bool {
    // The ResourceQuota controller belongs to the host, not to k3k.
    if let Err(error) = policy::update_quota_status(engine) {
        tracing::debug!(%error, "resource quota status");
    }
    let mut controls = lock(&shared.controls);
    world.k3s.delay = controls.delay;
    hostsim::pass(engine, &world.k3s);
    world.k3s.sync(engine, &controls.failing);
    if !controls.down && engine.resource_type(&clusters()).is_some() {
        k3k_pass(engine, world, &mut controls);
    }
    drop(controls);
    let complete = world.proxy.sync(engine, &world.k3s);
    let mut published = lock(&shared.vclusters);
    published.clear();
    published.extend(world.k3s.running());
    complete
}

/// K3K's own controllers: policies, Clusters, the server pods' etcd finalizer.
fn k3k_pass(engine: &Engine, world: &mut World, controls: &mut Controls) {
    if let Err(error) = policy::reconcile(engine) {
        tracing::debug!(%error, "virtual cluster policies");
    }
    let all = engine
        .list(&clusters(), None, &ListOptions::default())
        .map(|l| l.items)
        .unwrap_or_default();
    let live: BTreeSet<String> = all
        .iter()
        .map(|c| text(c, "/metadata/uid").to_string())
        .collect();
    world.states.retain(|uid, _| live.contains(uid));
    for cluster in all {
        let uid = text(&cluster, "/metadata/uid").to_string();
        if cluster.pointer("/metadata/deletionTimestamp").is_some() {
            world.states.remove(&uid);
            if let Err(error) = remove_finalizer(engine, &cluster) {
                tracing::debug!(%error, "removing the k3k finalizer");
            }
            continue;
        }
        let state = world
            .states
            .entry(uid)
            .or_insert_with(|| ClusterState::new(&cluster));
        if let Err(error) = cluster::reconcile(
            engine,
            &cluster,
            state,
            controls,
            &world.k3s,
            &world.host_version,
        ) {
            tracing::debug!(%error, "k3k cluster reconcile");
        }
    }
    statefulset::reconcile(engine, &world.k3s);
}

fn remove_finalizer(engine: &Engine, cluster: &Value) -> anyhow::Result<()> {
    let finalizers: Vec<Value> = cluster
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !finalizers.iter().any(|f| f == FINALIZER) {
        return Ok(());
    }
    let remaining: Vec<Value> = finalizers.into_iter().filter(|f| f != FINALIZER).collect();
    let body = serde_json::to_vec(
        &json!({"metadata": {"finalizers": remaining, "resourceVersion": text(cluster, "/metadata/resourceVersion")}}),
    )?;
    let request = PatchRequest {
        patch_type: PatchType::Merge,
        body: &body,
        status_subresource: false,
    };
    let ns = text(cluster, "/metadata/namespace");
    engine.patch(
        &clusters(),
        Some(ns),
        text(cluster, "/metadata/name"),
        &request,
        &objects::write_options(),
    )?;
    Ok(())
}
