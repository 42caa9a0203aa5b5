//! The reconciler: makes the host match redb. A keyed work queue (key = workspace id) is fed
//! by committed changes, by watches on host objects labelled with a workspace id, and by a
//! periodic resync. Each pass builds the desired objects (pure, `desired`), applies only
//! those that differ from what the host has (server-side apply, field manager `kaas`, so an
//! in-sync pass writes nothing), mirrors K3K's status back into redb, and deletes in order:
//! Cluster (wait for K3K's finalizer) → policy → namespace → record. Failures requeue with
//! per-key exponential backoff; the last error is the workspace's message.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, Service};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::connection::HostConnection;
use super::desired::{HostSettings, desired_objects, immutable_changes};
use super::k3k::{Cluster, VirtualClusterPolicy};
use super::names;
use crate::domain::{K3kMode, WorkspaceId, WorkspaceState};
use crate::ops::reconcile::Observation;
use crate::ops::{Change, Ops};

/// How the reconciler behaves; defaults suit production, tests shorten the waits.
#[derive(Debug, Clone)]
pub struct ReconcilerSettings {
    pub host: HostSettings,
    pub resync_interval: Duration,
    /// Workspaces reconciled at once.
    pub concurrency: usize,
    /// How long a Cluster may sit with a deletion timestamp before the status says K3K is
    /// probably not running.
    pub stuck_after: Duration,
    /// While a workspace is not Ready, look again this often even without a watch event.
    pub poll_while_busy: Duration,
    pub max_backoff: Duration,
    /// After a Cluster change, how long to give K3K to start rolling it out before a Ready
    /// Cluster with a rolled-out StatefulSet counts as done (K3K has no observedGeneration,
    /// and real K3K stays Ready while it rolls servers one at a time).
    pub change_grace: Duration,
}

impl Default for ReconcilerSettings {
    fn default() -> Self {
        ReconcilerSettings {
            host: HostSettings::default(),
            resync_interval: Duration::from_secs(300),
            concurrency: 8,
            stuck_after: Duration::from_secs(60),
            poll_while_busy: Duration::from_secs(5),
            max_backoff: Duration::from_secs(60),
            change_grace: Duration::from_secs(30),
        }
    }
}

/// The longest one pass (or one probe) may take before it counts as failed.
const PASS_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Queue {
    due: HashMap<WorkspaceId, Instant>,
    running: HashSet<WorkspaceId>,
    /// Asked for again while running: run once more when done.
    dirty: HashSet<WorkspaceId>,
    failures: HashMap<WorkspaceId, u32>,
}

/// Per-workspace memory that does not belong in redb.
#[derive(Default)]
struct Memory {
    /// A Cluster spec change kaas applied and has not yet seen K3K react to.
    pending_change: HashMap<WorkspaceId, Instant>,
    /// When a Cluster was first seen with a deletion timestamp.
    deleting_since: HashMap<WorkspaceId, Instant>,
    /// kaas's own client inside each virtual cluster, with when it was made.
    tenant_clients: HashMap<WorkspaceId, (Client, Instant)>,
    /// The `tlsSANs` the served certificate was last seen to cover.
    verified_sans: HashMap<WorkspaceId, Vec<String>>,
    /// Server pods (uids) that were running when the served certificate was found to lack
    /// an address: each is restarted once, one at a time.
    san_rolls: HashMap<WorkspaceId, HashSet<String>>,
}

/// How long kaas reuses its in-cluster client (its certificate lives an hour).
const TENANT_CLIENT_TTL: Duration = Duration::from_secs(30 * 60);

/// Counts for benchmarks and tests.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct ReconcileStats {
    pub passes: u64,
    pub failures: u64,
}

/// Watch-backed copies of the host objects kaas owns: a pass that finds them in sync reads
/// nothing from the API server.
struct Caches {
    namespaces: reflector::Store<Namespace>,
    policies: reflector::Store<VirtualClusterPolicy>,
    clusters: reflector::Store<Cluster>,
}

fn cached<K>(store: &reflector::Store<K>, name: &str, namespace: Option<&str>) -> Option<Arc<K>>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    // An unsynced cache knows nothing; the caller reads from the API instead.
    if !matches!(
        futures::FutureExt::now_or_never(store.wait_until_ready()),
        Some(Ok(()))
    ) {
        return None;
    }
    let mut key = reflector::ObjectRef::new(name);
    if let Some(ns) = namespace {
        key = key.within(ns);
    }
    store.get(&key)
}

pub struct Reconciler {
    caches: std::sync::OnceLock<Caches>,
    ops: Arc<Ops>,
    nodes: Arc<super::node_sync::WatchedNodes>,
    quotas: Arc<super::usage_sync::WatchedQuotas>,
    conn: Arc<HostConnection>,
    settings: ReconcilerSettings,
    queue: Mutex<Queue>,
    memory: Mutex<Memory>,
    wake: Notify,
    stats: Mutex<ReconcileStats>,
    /// The node-agent node count last seen (`u32::MAX` before the first node event).
    agent_nodes_seen: AtomicU32,
}

/// A running reconciler; dropping it does not stop it — call [`ReconcilerHandle::stop`].
#[derive(Clone)]
pub struct ReconcilerHandle {
    inner: Arc<Reconciler>,
    stop: Arc<tokio::sync::watch::Sender<bool>>,
}

impl ReconcilerHandle {
    /// Queues one workspace now.
    pub fn enqueue(&self, id: WorkspaceId) {
        self.inner.enqueue(id, Instant::now());
    }

    /// Queues every workspace now (what the periodic resync does).
    pub fn resync(&self) {
        self.inner.resync_all();
    }

    pub fn stats(&self) -> ReconcileStats {
        self.inner.stats.lock().map(|s| *s).unwrap_or_default()
    }

    /// Whether nothing is queued or running.
    pub fn idle(&self) -> bool {
        self.inner
            .queue
            .lock()
            .map(|q| q.due.is_empty() && q.running.is_empty())
            .unwrap_or(false)
    }

    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

/// An API error in a person's words: the status code and the server's message.
pub(crate) fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("HTTP {}: {}", s.code, s.message),
        other => other.to_string(),
    }
}

pub(crate) fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Whether every field of `desired` is present with the same value in `observed` (extra
/// fields on the host — defaults, other managers' fields — do not count as drift).
/// Quantities (the values of `hard`, `limits`, `requests`, `default`, … maps) compare by
/// value: a server stores "2000m" as "2".
pub fn contains(observed: &Value, desired: &Value) -> bool {
    contains_in(observed, desired, false)
}

/// Keys whose object values map resource names to quantities.
const QUANTITY_MAPS: [&str; 8] = [
    "hard",
    "used",
    "limits",
    "requests",
    "default",
    "defaultRequest",
    "max",
    "min",
];

/// `quantity_map`: whether `desired` is an object mapping resource names to quantities.
fn contains_in(observed: &Value, desired: &Value, quantity_map: bool) -> bool {
    match (observed, desired) {
        (Value::Object(o), Value::Object(d)) => d.iter().all(|(k, dv)| {
            o.get(k).is_some_and(|ov| match (ov, dv) {
                (Value::String(a), Value::String(b)) if quantity_map => {
                    super::quantity::same_quantity(a, b)
                }
                _ => contains_in(ov, dv, QUANTITY_MAPS.contains(&k.as_str())),
            })
        }),
        (Value::Array(o), Value::Array(d)) => {
            o.len() == d.len() && o.iter().zip(d).all(|(ov, dv)| contains_in(ov, dv, false))
        }
        (o, d) => o == d,
    }
}

/// Applies `desired` unless the host already has it. Returns the object as on the host and
/// whether kaas wrote.
pub(crate) async fn apply_if_changed<K>(
    api: &Api<K>,
    name: &str,
    desired: &K,
) -> Result<(K, bool), kube::Error>
where
    K: Resource + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    let want = serde_json::to_value(desired).map_err(kube::Error::SerdeError)?;
    if let Some(have) = api.get_opt(name).await? {
        let have_value = serde_json::to_value(&have).map_err(kube::Error::SerdeError)?;
        if contains(&have_value, &want) {
            return Ok((have, false));
        }
    }
    let params = PatchParams::apply(names::FIELD_MANAGER).force();
    let applied = api.patch(name, &params, &Patch::Apply(desired)).await?;
    Ok((applied, true))
}

/// Like [`apply_if_changed`], but first compares with a cached copy: in sync means no request.
async fn apply_cached<K>(
    api: &Api<K>,
    name: &str,
    desired: &K,
    cached: Option<Arc<K>>,
) -> Result<(K, bool), kube::Error>
where
    K: Resource + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    if let Some(have) = cached {
        let want = serde_json::to_value(desired).map_err(kube::Error::SerdeError)?;
        let have_value = serde_json::to_value(have.as_ref()).map_err(kube::Error::SerdeError)?;
        if contains(&have_value, &want) {
            return Ok(((*have).clone(), false));
        }
    }
    apply_if_changed(api, name, desired).await
}

fn condition<'a>(status: &'a Value, kind: &str) -> Option<&'a Value> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

impl Reconciler {
    pub fn start(
        ops: Arc<Ops>,
        conn: Arc<HostConnection>,
        settings: ReconcilerSettings,
    ) -> ReconcilerHandle {
        let nodes = super::node_sync::WatchedNodes::new();
        ops.set_node_inventory(nodes.clone());
        let quotas = super::usage_sync::WatchedQuotas::new();
        ops.set_usage_source(quotas.clone());
        let inner = Arc::new(Reconciler {
            caches: std::sync::OnceLock::new(),
            nodes,
            quotas,
            ops,
            conn,
            settings,
            queue: Mutex::new(Queue::default()),
            memory: Mutex::new(Memory::default()),
            wake: Notify::new(),
            stats: Mutex::new(ReconcileStats::default()),
            agent_nodes_seen: AtomicU32::new(u32::MAX),
        });
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(inner.clone().run(stopped));
        ReconcilerHandle {
            inner,
            stop: Arc::new(stop),
        }
    }

    fn enqueue(&self, id: WorkspaceId, at: Instant) {
        if let Ok(mut q) = self.queue.lock() {
            if q.running.contains(&id) {
                q.dirty.insert(id);
            } else {
                let due = q.due.entry(id).or_insert(at);
                *due = (*due).min(at);
            }
        }
        self.wake.notify_one();
    }

    fn resync_all(&self) {
        match self.ops.workspace_ids() {
            Ok(ids) => {
                let now = Instant::now();
                for id in ids {
                    self.enqueue(id, now);
                }
            }
            Err(e) => tracing::error!(error = %e, "resync could not list workspaces"),
        }
    }

    /// Keys that are due, marked running, at most `room` of them.
    fn take_due(&self, room: usize) -> (Vec<WorkspaceId>, Option<Instant>) {
        let Ok(mut q) = self.queue.lock() else {
            return (Vec::new(), None);
        };
        let now = Instant::now();
        let mut ready: Vec<(Instant, WorkspaceId)> = q
            .due
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(id, at)| (*at, *id))
            .collect();
        ready.sort();
        ready.truncate(room);
        let ids: Vec<WorkspaceId> = ready.into_iter().map(|(_, id)| id).collect();
        for id in &ids {
            q.due.remove(id);
            q.running.insert(*id);
        }
        let next = q.due.values().min().copied();
        (ids, next)
    }

    fn finished(&self, id: WorkspaceId, result: Result<Option<Duration>, String>) {
        let now = Instant::now();
        let retry = {
            let Ok(mut q) = self.queue.lock() else { return };
            q.running.remove(&id);
            let again = q.dirty.remove(&id);
            let retry = match &result {
                Ok(requeue) => {
                    q.failures.remove(&id);
                    requeue.map(|d| now + d)
                }
                Err(_) => {
                    let n = q.failures.entry(id).or_insert(0);
                    *n += 1;
                    let backoff = Duration::from_millis(250u64.saturating_mul(1 << (*n).min(12)))
                        .min(self.settings.max_backoff);
                    Some(now + backoff)
                }
            };
            if again { Some(now) } else { retry }
        };
        if let Ok(mut s) = self.stats.lock() {
            s.passes += 1;
            if result.is_err() {
                s.failures += 1;
            }
        }
        if let Some(at) = retry {
            self.enqueue(id, at);
        }
    }

    async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut changes = self.ops.subscribe();
        let mut resync = tokio::time::interval(self.settings.resync_interval);
        tokio::spawn(self.clone().probe_loop(stop.clone()));
        let mut tasks: JoinSet<(WorkspaceId, Result<Option<Duration>, String>)> = JoinSet::new();
        loop {
            let room = self.settings.concurrency.saturating_sub(tasks.len());
            let (ready, next) = if room > 0 {
                self.take_due(room)
            } else {
                (Vec::new(), None)
            };
            for id in ready {
                let me = self.clone();
                tasks.spawn(async move {
                    // A host that stops answering mid-pass must not hold the key forever.
                    let result = tokio::time::timeout(PASS_TIMEOUT, me.reconcile(id))
                        .await
                        .unwrap_or_else(|_| Err("the host did not answer in time".into()));
                    (id, result)
                });
            }
            let sleep = next.map_or(Duration::from_secs(1), |n| {
                n.saturating_duration_since(Instant::now())
            });
            tokio::select! {
                _ = stop.changed() => break,
                change = changes.recv() => match change {
                    Ok(Change::Workspace(id) | Change::Project(id, _) | Change::Members(id)) => self.enqueue(id, Instant::now()),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => self.resync_all(),
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
                _ = resync.tick() => self.resync_all(),
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    if let Ok((id, result)) = done {
                        self.finished(id, result);
                    }
                }
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
        tasks.abort_all();
    }

    /// Checks the host every few seconds (faster while it is away); on first contact starts
    /// the watches and queues every workspace. Runs apart from the queue so a hanging host
    /// never stalls it.
    async fn probe_loop(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut watching = false;
        loop {
            let usable = tokio::time::timeout(PASS_TIMEOUT, self.conn.probe())
                .await
                .unwrap_or(false);
            if usable
                && !watching
                && let Some(client) = self.conn.client()
            {
                watching = true;
                self.clone().spawn_watches(client);
                self.resync_all();
            }
            let wait = if usable {
                Duration::from_secs(10)
            } else {
                Duration::from_secs(2)
            };
            tokio::select! {
                _ = stop.changed() => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Host objects carrying a workspace-id label feed the queue: a Cluster's status changes,
    /// and anything deleted or edited by hand, bring its workspace back for a pass.
    fn spawn_watches(self: Arc<Self>, client: Client) {
        let selector = names::WORKSPACE_ID_LABEL.to_string();
        let clusters: Api<Cluster> = Api::all(client.clone());
        let policies: Api<VirtualClusterPolicy> = Api::all(client.clone());
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let cfg = watcher::Config::default().labels(&selector);
        // Nodes: a change to a dedicated node (or one that carries a pool label) brings its
        // workspace back for a pass, so hand edits are repaired and NotReady is noticed.
        self.quotas.start(client.clone());
        let me_nodes = self.clone();
        self.nodes.start(
            client.clone(),
            move |node: &k8s_openapi::api::core::v1::Node| {
                let name = node.metadata.name.clone().unwrap_or_default();
                let from_label = node
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(names::NODE_POOL_LABEL))
                    .and_then(|pool| pool.strip_prefix(names::POOL_PREFIX))
                    .and_then(|short| format!("ws_{short}").parse::<WorkspaceId>().ok());
                let from_record = me_nodes.ops.node_owner(&name).ok().flatten();
                for id in [from_label, from_record].into_iter().flatten() {
                    me_nodes.enqueue(id, Instant::now());
                }
                // Every shared workspace's quota counts the nodes that run node agents.
                if let Some(count) = me_nodes.nodes.shared_agent_nodes() {
                    let before = me_nodes.agent_nodes_seen.swap(count, Ordering::Relaxed);
                    if before != count && before != u32::MAX {
                        me_nodes.resync_all();
                    }
                }
            },
        );
        let me = self.clone();
        let (cl_read, cl_write) = reflector::store();
        let (vcp_read, vcp_write) = reflector::store();
        let (ns_read, ns_write) = reflector::store();
        let _ = self.caches.set(Caches {
            namespaces: ns_read,
            policies: vcp_read,
            clusters: cl_read,
        });
        tokio::spawn(async move {
            let c = reflector::reflector(cl_write, watcher(clusters, cfg.clone()))
                .default_backoff()
                .touched_objects()
                .map(|r| r.map(|o| o.meta().labels.clone()));
            let p = reflector::reflector(vcp_write, watcher(policies, cfg.clone()))
                .default_backoff()
                .touched_objects()
                .map(|r| r.map(|o| o.meta().labels.clone()));
            let n = reflector::reflector(ns_write, watcher(namespaces, cfg))
                .default_backoff()
                .touched_objects()
                .map(|r| r.map(|o| o.meta().labels.clone()));
            let mut all = futures::stream::select_all([c.boxed(), p.boxed(), n.boxed()]);
            while let Some(item) = all.next().await {
                match item {
                    Ok(Some(labels)) => {
                        if let Some(id) = labels
                            .get(names::WORKSPACE_ID_LABEL)
                            .and_then(|v| v.parse::<WorkspaceId>().ok())
                        {
                            me.enqueue(id, Instant::now());
                        }
                    }
                    Ok(None) => {}
                    Err(e) => tracing::debug!(error = %e, "host watch interrupted; retrying"),
                }
            }
        });
    }

    /// One pass over one workspace. `Ok(Some(d))` asks to look again after `d`.
    async fn reconcile(&self, id: WorkspaceId) -> Result<Option<Duration>, String> {
        let Some(client) = self.conn.client() else {
            return Err("waiting for the host cluster".into());
        };
        let snapshot = self.ops.reconcile_snapshot(id).map_err(|e| e.to_string())?;
        let Some(snap) = snapshot else {
            return Ok(None);
        };
        let result = if snap.workspace.state == WorkspaceState::Deleting {
            self.delete(&client, id).await
        } else {
            self.apply(&client, &snap).await
        };
        if let Err(e) = &result {
            tracing::warn!(workspace = %id, error = %e, "reconcile failed; will retry");
            let obs = Observation {
                state: if snap.workspace.state == WorkspaceState::Deleting {
                    WorkspaceState::Deleting
                } else {
                    WorkspaceState::Error
                },
                phase: snap.workspace.observed_phase.clone(),
                message: format!("retrying: {e}"),
                applied_generation: None,
            };
            let _ = self.ops.record_observation(id, &obs);
        }
        result
    }

    async fn apply(
        &self,
        client: &Client,
        snap: &crate::ops::reconcile::WorkspaceSnapshot,
    ) -> Result<Option<Duration>, String> {
        let ws = &snap.workspace;
        // The quota counts one node agent per node that runs one: wait for the node list
        // rather than apply a quota that the next pass changes again.
        let Some(agent_nodes) = self.nodes.shared_agent_nodes() else {
            return Ok(Some(Duration::from_millis(200)));
        };
        let host_settings = HostSettings {
            dedicated_nodes: snap.dedicated_nodes.clone(),
            all_dedicated_pools: snap.all_pools.clone(),
            agent_nodes,
            ..self.settings.host.clone()
        };
        let mut desired = desired_objects(ws, &snap.plan, &host_settings);
        let ns_name = names::namespace(ws.id);
        let cluster_name = names::cluster(ws.id);
        let err = |what: &str, e: kube::Error| format!("applying the {what}: {}", describe(&e));

        let caches = self.caches.get();
        let policy_name = names::policy(ws.id);
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let have = caches.and_then(|c| cached(&c.namespaces, &ns_name, None));
        apply_cached(&namespaces, &ns_name, &desired.namespace, have)
            .await
            .map_err(|e| err("namespace", e))?;
        let policies: Api<VirtualClusterPolicy> = Api::all(client.clone());
        let have = caches.and_then(|c| cached(&c.policies, &policy_name, None));
        apply_cached(&policies, &policy_name, &desired.policy, have)
            .await
            .map_err(|e| err("virtual cluster policy", e))?;
        let clusters: Api<Cluster> = Api::namespaced(client.clone(), &ns_name);
        let have = caches.and_then(|c| cached(&c.clusters, &cluster_name, Some(&ns_name)));
        // A field the API server refuses to change would make every apply fail (422): keep
        // the cluster's value, apply the rest, and say what cannot be done.
        let stuck = have
            .as_ref()
            .map(|c| keep_immutable_fields(&c.spec, &mut desired.cluster.spec))
            .filter(|fields| !fields.is_empty());
        let (cluster, changed) = apply_cached(&clusters, &cluster_name, &desired.cluster, have)
            .await
            .map_err(|e| err("K3K cluster", e))?;
        let services: Api<Service> = Api::namespaced(client.clone(), &ns_name);
        let (api_service, _) =
            apply_if_changed(&services, names::API_SERVICE, &desired.api_service)
                .await
                .map_err(|e| err("API service", e))?;

        let now = Instant::now();
        let status = serde_json::to_value(&cluster.status).unwrap_or(Value::Null);
        let phase = status["phase"].as_str().map(str::to_string);
        let ready_cond = condition(&status, "Ready");
        let cond_ready = ready_cond.is_some_and(|c| c["status"] == "True");
        let cond_message = ready_cond
            .and_then(|c| c["message"].as_str())
            .filter(|m| !m.is_empty())
            .map(str::to_string);
        let reacted = {
            let mut mem = self
                .memory
                .lock()
                .map_err(|_| "reconciler state poisoned")?;
            if changed && ws.applied_generation > 0 {
                mem.pending_change.insert(ws.id, now);
            }
            match mem.pending_change.get(&ws.id) {
                // K3K gives no observedGeneration: after a change, wait until it visibly
                // reacted (left Ready) or a grace period passed with nothing to roll out.
                Some(since)
                    if phase.as_deref() == Some("Ready")
                        && now.duration_since(*since) < self.settings.change_grace =>
                {
                    false
                }
                Some(_) if phase.as_deref() != Some("Ready") => {
                    mem.pending_change
                        .insert(ws.id, now - Duration::from_secs(3600));
                    false
                }
                _ => {
                    mem.pending_change.remove(&ws.id);
                    true
                }
            }
        };
        // The StatefulSet is read only while a change may be rolling out; an in-sync,
        // confirmed workspace was rolled out when it was recorded Ready.
        let settled = !changed
            && reacted
            && ws.applied_generation == ws.generation
            && ws.state == WorkspaceState::Ready;
        let rolled_out = settled
            || self
                .server_rolled_out(client, &ns_name, &cluster_name)
                .await;
        // K3K's Ready ignores its node agents; without one there is no node to run a pod on.
        let agents = if snap.plan.k3k_mode == K3kMode::Shared {
            shared_agents(client, &ns_name, &cluster_name).await
        } else {
            Agents::Ready
        };
        let first = ws.applied_generation == 0;
        let (mut state, mut message, mut applied) = match phase.as_deref() {
            Some("Ready") if cond_ready && reacted && rolled_out && !changed => match &agents {
                Agents::Ready => (
                    WorkspaceState::Ready,
                    "the virtual cluster is ready".to_string(),
                    Some(ws.generation),
                ),
                Agents::Nowhere => (
                    WorkspaceState::Error,
                    format!(
                        "no host node can run K3K's node agent (DaemonSet {}): every node carries a taint it does not tolerate, such as a dedicated node's; keep at least one node shared",
                        names::k3k_kubelet_daemonset(&cluster_name)
                    ),
                    None,
                ),
                Agents::Waiting(why) => (
                    if first {
                        WorkspaceState::Provisioning
                    } else {
                        WorkspaceState::Updating
                    },
                    why.clone(),
                    None,
                ),
            },
            Some("Pending") => (
                WorkspaceState::Error,
                format!(
                    "K3K refused the cluster: {}",
                    cond_message
                        .clone()
                        .unwrap_or_else(|| "validation failed".into())
                ),
                None,
            ),
            Some("Failed") => (
                WorkspaceState::Error,
                format!(
                    "K3K could not provision the cluster (retrying): {}",
                    cond_message
                        .clone()
                        .unwrap_or_else(|| "provisioning failed".into())
                ),
                None,
            ),
            _ if first => (
                WorkspaceState::Provisioning,
                "K3K is provisioning the virtual cluster".to_string(),
                None,
            ),
            _ => (
                WorkspaceState::Updating,
                "K3K is rolling out a change".to_string(),
                None,
            ),
        };
        if state == WorkspaceState::Ready {
            let wanted = desired.cluster.spec.tls_sa_ns.clone().unwrap_or_default();
            if let Some(rolling) = self
                .check_served_names(client, ws.id, &api_service, &wanted)
                .await?
            {
                (state, message, applied) = rolling;
            }
        }
        let node_pass =
            super::node_sync::sync(client, &self.nodes, ws.id, &snap.dedicated_nodes).await?;
        let (state, message) = if state == WorkspaceState::Ready && !node_pass.problems.is_empty() {
            (
                WorkspaceState::Error,
                format!("degraded: {}", node_pass.problems.join("; ")),
            )
        } else {
            (state, message)
        };
        if state == WorkspaceState::Ready {
            // Ready means tenants can use it: roles, projects and bindings are in place.
            self.sync_inside(client, snap).await?;
        }
        // A plan the existing cluster cannot take outranks everything else: it will not
        // resolve itself, and the operator must choose what to do.
        let (state, message, applied) = match stuck {
            Some(fields) => (
                WorkspaceState::Error,
                immutable_message(&fields, &snap.plan.id),
                None,
            ),
            None => (state, message, applied),
        };
        let obs = Observation {
            state,
            phase,
            message,
            applied_generation: applied,
        };
        self.ops
            .record_observation(ws.id, &obs)
            .map_err(|e| e.to_string())?;
        let busy = state != WorkspaceState::Ready || !node_pass.releasing.is_empty();
        Ok(busy.then_some(self.settings.poll_while_busy))
    }

    /// Makes sure the API server serves a certificate for every address in `wanted`.
    /// `None`: it does. Otherwise the state to report while the servers are restarted, one
    /// at a time, to read K3K's rewritten configuration (k3s reads `tls-san` only at start).
    async fn check_served_names(
        &self,
        client: &Client,
        id: WorkspaceId,
        api_service: &Service,
        wanted: &[String],
    ) -> Result<Option<(WorkspaceState, String, Option<u64>)>, String> {
        let verified = self
            .memory
            .lock()
            .map_err(|_| "reconciler state poisoned")?
            .verified_sans
            .get(&id)
            .is_some_and(|v| v == wanted);
        if verified || wanted.is_empty() {
            return Ok(None);
        }
        let (Some(address), Some(port)) = (
            self.settings.host.external_addresses.first(),
            super::tenant_sync::api_node_port(api_service),
        ) else {
            return Ok(None);
        };
        let served = match super::served_cert::served_names(address, port).await {
            Ok(names) => names,
            Err(e) => {
                return Ok(Some((
                    WorkspaceState::Updating,
                    format!("checking the served certificate: {e}"),
                    None,
                )));
            }
        };
        let missing: Vec<String> = super::served_cert::missing(&served, wanted)
            .into_iter()
            .map(str::to_string)
            .collect();
        if missing.is_empty() {
            let mut mem = self
                .memory
                .lock()
                .map_err(|_| "reconciler state poisoned")?;
            mem.verified_sans.insert(id, wanted.to_vec());
            mem.san_rolls.remove(&id);
            return Ok(None);
        }
        let ns = names::namespace(id);
        let cluster = names::cluster(id);
        // NB: K3K writes the servers' config Secrets (where k3s reads `tls-san`) only when
        // they do not exist: it creates them and ignores AlreadyExists, so a tlsSANs change
        // never reaches them. Remove stale ones and poke the Cluster so that K3K reconciles
        // and writes them anew; only then can a restarted server pick the names up.
        if let Some(waiting) = self
            .refresh_server_config(client, id, &cluster, wanted)
            .await?
        {
            return Ok(Some((
                WorkspaceState::Updating,
                format!(
                    "restarting the K3K servers so that they serve {}: {waiting}",
                    missing.join(", ")
                ),
                None,
            )));
        }
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let selector = names::k3k_server_pod_labels(&cluster)
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let servers = pods
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| format!("listing the K3K server pods: {}", describe(&e)))?
            .items;
        let uid = |p: &Pod| p.metadata.uid.clone().unwrap_or_default();
        let old: HashSet<String> = {
            let mut mem = self
                .memory
                .lock()
                .map_err(|_| "reconciler state poisoned")?;
            let roll = mem
                .san_rolls
                .entry(id)
                .or_insert_with(|| servers.iter().map(uid).collect());
            roll.retain(|u| servers.iter().any(|p| &uid(p) == u));
            roll.clone()
        };
        let missing = missing.join(", ");
        let all_ready = servers
            .iter()
            .all(|p| p.metadata.deletion_timestamp.is_none() && pod_ready(p));
        let waiting = |what: String| {
            Ok(Some((
                WorkspaceState::Updating,
                format!("restarting the K3K servers so that they serve {missing}: {what}"),
                None,
            )))
        };
        if !all_ready {
            return waiting("waiting for the restarted server to be ready".into());
        }
        let mut candidates: Vec<&Pod> = servers.iter().filter(|p| old.contains(&uid(p))).collect();
        candidates.sort_by_key(|p| p.metadata.creation_timestamp.clone().map(|t| t.0));
        let Some(next) = candidates.first() else {
            return Ok(Some((
                WorkspaceState::Error,
                format!(
                    "every K3K server restarted, but the API server still serves a certificate without {missing}; check host.external_addresses and the Cluster's tlsSANs"
                ),
                None,
            )));
        };
        let name = next.metadata.name.clone().unwrap_or_default();
        match pods.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(format!("restarting server pod {name}: {}", describe(&e))),
        }
        tracing::info!(workspace = %id, pod = %name, missing = %missing, "restarting a K3K server to serve new addresses");
        waiting(format!("restarted {name}"))
    }

    /// `None` when both of K3K's server config Secrets name every address in `wanted`;
    /// otherwise what was done to get there (stale Secrets deleted, K3K asked to rewrite
    /// them) or is awaited.
    async fn refresh_server_config(
        &self,
        client: &Client,
        id: WorkspaceId,
        cluster: &str,
        wanted: &[String],
    ) -> Result<Option<String>, String> {
        let ns = names::namespace(id);
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
        let mut stale = Vec::new();
        let mut absent = false;
        for name in names::k3k_server_config_secrets(cluster) {
            let secret = secrets
                .get_opt(&name)
                .await
                .map_err(|e| format!("reading K3K's server configuration: {}", describe(&e)))?;
            match secret {
                None => absent = true,
                Some(sec) => {
                    let text = sec
                        .data
                        .as_ref()
                        .and_then(|d| d.get(names::K3K_SERVER_CONFIG_KEY))
                        .map(|b| String::from_utf8_lossy(&b.0).to_string())
                        .unwrap_or_default();
                    let listed = super::served_cert::config_tls_sans(&text);
                    if !super::served_cert::missing(&listed, wanted).is_empty() {
                        stale.push(name);
                    }
                }
            }
        }
        if stale.is_empty() && !absent {
            return Ok(None);
        }
        for name in &stale {
            match secrets.delete(name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => {
                    return Err(format!(
                        "removing K3K's stale server configuration {name}: {}",
                        describe(&e)
                    ));
                }
            }
        }
        // Any change to the Cluster makes K3K reconcile it (it does not watch its Secrets).
        let clusters: Api<Cluster> = Api::namespaced(client.clone(), &ns);
        let poke = serde_json::json!({"metadata": {"annotations": {
            names::CONFIG_REFRESH_ANNOTATION: jiff::Timestamp::now().to_string()
        }}});
        clusters
            .patch(cluster, &PatchParams::default(), &Patch::Merge(&poke))
            .await
            .map_err(|e| format!("asking K3K to rewrite its configuration: {}", describe(&e)))?;
        tracing::info!(workspace = %id, stale = ?stale, "asked K3K to rewrite the servers' configuration");
        Ok(Some(
            "waiting for K3K to write the servers' configuration with the new addresses".into(),
        ))
    }

    async fn sync_inside(
        &self,
        host: &Client,
        snap: &crate::ops::reconcile::WorkspaceSnapshot,
    ) -> Result<(), String> {
        let id = snap.workspace.id;
        let cached = self.memory.lock().ok().and_then(|m| {
            m.tenant_clients
                .get(&id)
                .filter(|(_, at)| at.elapsed() < TENANT_CLIENT_TTL)
                .map(|(c, _)| c.clone())
        });
        let client = match cached {
            Some(c) => c,
            None => {
                let address = self.settings.host.external_addresses.first().ok_or(
                    "no external address configured (host.external_addresses): kaas cannot reach the virtual cluster",
                )?;
                let access = super::tenant_sync::access(host, id, address).await?;
                let c = super::tenant_sync::admin_client(&access).await?;
                if let Ok(mut m) = self.memory.lock() {
                    m.tenant_clients.insert(id, (c.clone(), Instant::now()));
                }
                c
            }
        };
        let result = super::tenant_sync::sync(&client, snap).await;
        if result.is_err() {
            // The cluster may have been recreated with new CAs: reconnect next time.
            if let Ok(mut m) = self.memory.lock() {
                m.tenant_clients.remove(&id);
            }
        }
        result
    }

    /// Whether the K3K server StatefulSet has no rollout in progress (absent counts as done:
    /// not every K3K version or fake creates one).
    async fn server_rolled_out(&self, client: &Client, ns: &str, cluster: &str) -> bool {
        let sts: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
        match sts.get_opt(&names::k3k_server_statefulset(cluster)).await {
            Ok(Some(s)) => {
                let spec_replicas = s.spec.as_ref().and_then(|sp| sp.replicas).unwrap_or(1);
                let Some(st) = s.status else { return false };
                let revisions_match = match (&st.current_revision, &st.update_revision) {
                    (Some(c), Some(u)) => c == u,
                    _ => true,
                };
                let generation_seen =
                    st.observed_generation.unwrap_or(0) >= s.metadata.generation.unwrap_or(0);
                revisions_match
                    && generation_seen
                    && st.ready_replicas.unwrap_or(0) >= spec_replicas
            }
            Ok(None) => true,
            Err(_) => false,
        }
    }

    async fn delete(&self, client: &Client, id: WorkspaceId) -> Result<Option<Duration>, String> {
        let ns_name = names::namespace(id);
        let clusters: Api<Cluster> = Api::namespaced(client.clone(), &ns_name);
        let cluster_name = names::cluster(id);
        let record = |message: String| {
            let obs = Observation {
                state: WorkspaceState::Deleting,
                phase: None,
                message,
                applied_generation: None,
            };
            self.ops
                .record_observation(id, &obs)
                .map_err(|e| e.to_string())
        };
        match clusters
            .get_opt(&cluster_name)
            .await
            .map_err(|e| format!("reading the K3K cluster: {}", describe(&e)))?
        {
            Some(c) => {
                if c.meta().deletion_timestamp.is_none() {
                    match clusters
                        .delete(&cluster_name, &DeleteParams::background())
                        .await
                    {
                        Ok(_) => {}
                        Err(e) if is_not_found(&e) => {}
                        Err(e) => {
                            return Err(format!("deleting the K3K cluster: {}", describe(&e)));
                        }
                    }
                }
                let since = {
                    let mut mem = self
                        .memory
                        .lock()
                        .map_err(|_| "reconciler state poisoned")?;
                    *mem.deleting_since.entry(id).or_insert_with(Instant::now)
                };
                let finalizer = c
                    .meta()
                    .finalizers
                    .as_ref()
                    .is_some_and(|f| f.iter().any(|x| x == names::K3K_CLUSTER_FINALIZER));
                let message = if finalizer && since.elapsed() >= self.settings.stuck_after {
                    format!(
                        "deletion is stuck: the K3K cluster still carries the {} finalizer after {} s — is the K3K controller running on the host?",
                        names::K3K_CLUSTER_FINALIZER,
                        since.elapsed().as_secs()
                    )
                } else {
                    "deleting the virtual cluster (waiting for K3K)".to_string()
                };
                record(message)?;
                return Ok(Some(
                    Duration::from_millis(500).min(self.settings.poll_while_busy),
                ));
            }
            None => {
                if let Ok(mut mem) = self.memory.lock() {
                    mem.deleting_since.remove(&id);
                    mem.pending_change.remove(&id);
                    mem.tenant_clients.remove(&id);
                    mem.verified_sans.remove(&id);
                    mem.san_rolls.remove(&id);
                }
            }
        }
        let policies: Api<VirtualClusterPolicy> = Api::all(client.clone());
        match policies
            .delete(&names::policy(id), &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => {
                return Err(format!(
                    "deleting the virtual cluster policy: {}",
                    describe(&e)
                ));
            }
        }
        let namespaces: Api<Namespace> = Api::all(client.clone());
        match namespaces
            .get_opt(&ns_name)
            .await
            .map_err(|e| format!("reading the namespace: {}", describe(&e)))?
        {
            Some(ns) => {
                if ns.meta().deletion_timestamp.is_none() {
                    match namespaces
                        .delete(&ns_name, &DeleteParams::background())
                        .await
                    {
                        Ok(_) => {}
                        Err(e) if is_not_found(&e) => {}
                        Err(e) => return Err(format!("deleting the namespace: {}", describe(&e))),
                    }
                }
                record("deleting the host namespace".into())?;
                Ok(Some(
                    Duration::from_millis(500).min(self.settings.poll_while_busy),
                ))
            }
            None => {
                let pass = super::node_sync::sync(client, &self.nodes, id, &[]).await?;
                if !pass.releasing.is_empty() {
                    record(format!(
                        "releasing dedicated nodes: {}",
                        pass.releasing.join(", ")
                    ))?;
                    return Ok(Some(self.settings.poll_while_busy));
                }
                self.ops
                    .finish_workspace_deletion(id)
                    .map_err(|e| e.to_string())?;
                tracing::info!(workspace = %id, "workspace deleted from the host and the database");
                Ok(None)
            }
        }
    }
}

/// What K3K's shared-mode node agents (DaemonSet `k3k-<n>-kubelet`) look like.
enum Agents {
    Ready,
    /// The DaemonSet controller finds no node for them.
    Nowhere,
    Waiting(String),
}

async fn shared_agents(client: &Client, ns: &str, cluster: &str) -> Agents {
    let name = names::k3k_kubelet_daemonset(cluster);
    let sets: Api<DaemonSet> = Api::namespaced(client.clone(), ns);
    match sets.get_opt(&name).await {
        Ok(Some(ds)) => {
            let st = ds.status.unwrap_or_default();
            let observed =
                st.observed_generation.unwrap_or(0) >= ds.metadata.generation.unwrap_or(0);
            if observed && st.desired_number_scheduled == 0 {
                Agents::Nowhere
            } else if st.number_ready >= 1 {
                Agents::Ready
            } else {
                Agents::Waiting(format!(
                    "waiting for K3K's node agents ({name}: {} of {} ready)",
                    st.number_ready, st.desired_number_scheduled
                ))
            }
        }
        Ok(None) => Agents::Waiting("waiting for K3K to start its node agents".into()),
        Err(e) => Agents::Waiting(format!("reading {name}: {}", describe(&e))),
    }
}

fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Puts the observed values of the fields the API server will not change into `desired`;
/// returns the names of those that differed.
fn keep_immutable_fields(
    observed: &super::k3k::cluster::ClusterSpec,
    desired: &mut super::k3k::cluster::ClusterSpec,
) -> Vec<&'static str> {
    let fields = immutable_changes(observed, desired);
    for f in &fields {
        match *f {
            "spec.mode" => desired.mode = observed.mode.clone(),
            _ => {
                if let (Some(d), Some(o)) =
                    (desired.persistence.as_mut(), observed.persistence.as_ref())
                {
                    d.storage_request_size = o.storage_request_size.clone();
                }
            }
        }
    }
    fields
}

fn immutable_message(fields: &[&str], plan: &str) -> String {
    let what: Vec<&str> = fields
        .iter()
        .map(|f| match *f {
            "spec.mode" => "its K3K mode",
            _ => "its servers' storage size",
        })
        .collect();
    format!(
        "plan {plan:?} changes {} of the existing virtual cluster, which Kubernetes cannot change; everything else is applied. Move the workspace to a plan with the cluster's current values, or create a new workspace on {plan:?} and move the workloads",
        what.join(" and ")
    )
}

#[cfg(test)]
mod tests {
    use super::contains;
    use serde_json::json;

    #[test]
    fn quantities_a_server_rewrote_are_in_sync_and_other_values_compare_exactly() {
        let stored = json!({"spec": {"hard": {"requests.cpu": "2", "limits.memory": "4Gi"},
            "limits": [{"default": {"cpu": "500m"}}]}, "metadata": {"labels": {"n": "2"}}});
        let written = json!({"spec": {"hard": {"requests.cpu": "2000m", "limits.memory": "4096Mi"},
            "limits": [{"default": {"cpu": "0.5"}}]}});
        assert!(contains(&stored, &written));
        let changed = json!({"spec": {"hard": {"requests.cpu": "3"}}});
        assert!(!contains(&stored, &changed));
        // Outside quantity maps, "2" and "2000m" are different strings.
        assert!(!contains(
            &stored,
            &json!({"metadata": {"labels": {"n": "2000m"}}})
        ));
    }
}
