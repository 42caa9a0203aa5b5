//! The reconciler's runtime: a keyed work queue (key = workspace id) fed by committed
//! changes, by watches on host objects labelled with a workspace id, by node events and by a
//! periodic resync; at most `concurrency` passes at once, one per key; failures requeue with
//! a backoff chosen by the error's kind, and the last error is the workspace's message.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Namespace, Node, ResourceQuota, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client, Resource};
use serde::Serialize;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::connection::HostConnection;
use super::context::{Caches, Context, ReconcilerSettings};
use super::error::{Error, Result};
use super::node_sync::WatchedNodes;
use super::usage_sync::WatchedQuotas;
use super::{apply, teardown};
use crate::domain::{WorkspaceId, WorkspaceState};
use crate::host::k3k::{Cluster, VirtualClusterPolicy};
use crate::host::names;
use crate::ops::reconcile::Observation;
use crate::ops::{Change, Ops};

/// Conflicts in a row a Ready workspace is retried through before it shows them as Error.
const RACES_BEFORE_ERROR: u32 = 3;

/// Whether a failed pass is recorded on the workspace (`retrying: …`, and Error unless it is
/// being deleted). Another writer being first (a 409 on a node a kubelet also updates) is
/// settled by the next pass a moment later, so a healthy workspace is not shown as Error
/// for that, unless it keeps happening.
fn shown(e: &Error, state: WorkspaceState, failures_before: u32) -> bool {
    let healthy = matches!(state, WorkspaceState::Ready | WorkspaceState::Updating);
    !(e.is_race() && healthy && failures_before < RACES_BEFORE_ERROR)
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

/// Counts for benchmarks and tests.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct ReconcileStats {
    pub passes: u64,
    pub failures: u64,
}

pub struct Reconciler {
    ctx: Context,
    conn: Arc<HostConnection>,
    quotas: Arc<WatchedQuotas>,
    queue: Mutex<Queue>,
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

impl Reconciler {
    /// Starts the reconciler over `conn`. `nodes` and `quotas` are the watch caches it
    /// fills once the host answers (the same ones `ops` reads through its ports; `app`
    /// wires both).
    pub fn start(
        ops: Arc<Ops>,
        conn: Arc<HostConnection>,
        nodes: Arc<WatchedNodes>,
        quotas: Arc<WatchedQuotas>,
        settings: ReconcilerSettings,
    ) -> ReconcilerHandle {
        let inner = Arc::new(Reconciler {
            ctx: Context::new(ops, nodes, settings),
            conn,
            quotas,
            queue: Mutex::new(Queue::default()),
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
        match self.ctx.ops.workspace_ids() {
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

    /// Failed passes of `id` since its last success.
    fn consecutive_failures(&self, id: WorkspaceId) -> u32 {
        self.queue
            .lock()
            .map(|q| q.failures.get(&id).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// The error policy: a success forgets past failures and requeues if the pass asked;
    /// a failure is counted by kind and requeued after its kind's backoff.
    fn finished(&self, id: WorkspaceId, result: Result<Option<Duration>>) {
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
                Err(e) => {
                    e.count();
                    let n = q.failures.entry(id).or_insert(0);
                    *n += 1;
                    Some(now + e.backoff(*n, self.ctx.settings.max_backoff))
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
        let mut changes = self.ctx.ops.subscribe();
        let mut resync = tokio::time::interval(self.ctx.settings.resync_interval);
        tokio::spawn(self.clone().probe_loop(stop.clone()));
        let mut tasks: JoinSet<(WorkspaceId, Result<Option<Duration>>)> = JoinSet::new();
        loop {
            let room = self.ctx.settings.concurrency.saturating_sub(tasks.len());
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
                        .unwrap_or_else(|_| {
                            Err(Error::Timeout("the host did not answer in time".into()))
                        });
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

    /// A node changed: a dedicated node (or one that carries a pool label) brings its
    /// workspace back for a pass, so hand edits are repaired and NotReady is noticed.
    fn node_changed(&self, node: &Node) {
        let name = node.metadata.name.clone().unwrap_or_default();
        let from_label = node
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(names::NODE_POOL_LABEL))
            .and_then(|pool| pool.strip_prefix(names::POOL_PREFIX))
            .and_then(|short| format!("ws_{short}").parse::<WorkspaceId>().ok());
        let from_record = self.ctx.ops.node_owner(&name).ok().flatten();
        for id in [from_label, from_record].into_iter().flatten() {
            self.enqueue(id, Instant::now());
        }
        // Every shared workspace's quota counts the nodes that run node agents.
        if let Some(count) = self.ctx.nodes.shared_agent_nodes() {
            let before = self.agent_nodes_seen.swap(count, Ordering::Relaxed);
            if before != count && before != u32::MAX {
                self.resync_all();
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
        let services: Api<Service> = Api::all(client.clone());
        let agent_sets: Api<DaemonSet> = Api::all(client.clone());
        let network_policies: Api<NetworkPolicy> = Api::all(client.clone());
        let quotas: Api<ResourceQuota> = Api::all(client.clone());
        let cfg = watcher::Config::default().labels(&selector);
        // K3K labels its shared-mode agent DaemonSets this way (and nothing else of ours).
        let agents_cfg = watcher::Config::default().labels(names::K3K_SHARED_AGENT_SELECTOR);
        self.quotas.start(client.clone());
        let me_nodes = self.clone();
        self.ctx.nodes.start(client.clone(), move |node: &Node| {
            me_nodes.node_changed(node)
        });
        let me = self.clone();
        let (cl_read, cl_write) = reflector::store();
        let (vcp_read, vcp_write) = reflector::store();
        let (ns_read, ns_write) = reflector::store();
        let (svc_read, svc_write) = reflector::store();
        let (ds_read, ds_write) = reflector::store();
        let (np_read, np_write) = reflector::store();
        let (rq_read, rq_write) = reflector::store();
        let _ = self.ctx.caches.set(Caches {
            namespaces: ns_read,
            policies: vcp_read,
            clusters: cl_read,
            services: svc_read,
            agent_sets: ds_read,
            network_policies: np_read,
            quotas: rq_read,
        });
        tokio::spawn(async move {
            // Each touched object names its workspace: by label, or (K3K's DaemonSets) by
            // the namespace it is in.
            let c = reflector::reflector(cl_write, watcher(clusters, cfg.clone()))
                .default_backoff()
                .touched_objects()
                .map(|r| r.map(|o| workspace_of(o.meta())));
            let p = reflector::reflector(vcp_write, watcher(policies, cfg.clone()))
                .default_backoff()
                .touched_objects()
                .map(|r| r.map(|o| workspace_of(o.meta())));
            let n = reflector::reflector(ns_write, watcher(namespaces, cfg.clone()))
                .default_backoff()
                .touched_objects()
                .map(|r| r.map(|o| workspace_of(o.meta())));
            let np = reflector::reflector(np_write, watcher(network_policies, cfg.clone()))
                .default_backoff()
                .touched_objects()
                .map(|r| r.map(|o| workspace_of(o.meta())));
            let rq = reflector::reflector(rq_write, watcher(quotas, cfg.clone()))
                .default_backoff()
                .touched_objects()
                .map(|r| r.map(|o| workspace_of(o.meta())));
            let s = reflector::reflector(svc_write, watcher(services, cfg))
                .default_backoff()
                .touched_objects()
                .map(|r| r.map(|o| workspace_of(o.meta())));
            let d = reflector::reflector(ds_write, watcher(agent_sets, agents_cfg))
                .default_backoff()
                .touched_objects()
                .map(|r| {
                    r.map(|o| {
                        o.meta()
                            .namespace
                            .as_deref()
                            .and_then(names::workspace_of_namespace)
                    })
                });
            let mut all = futures::stream::select_all([
                c.boxed(),
                p.boxed(),
                n.boxed(),
                s.boxed(),
                d.boxed(),
                np.boxed(),
                rq.boxed(),
            ]);
            while let Some(item) = all.next().await {
                match item {
                    Ok(Some(id)) => me.enqueue(id, Instant::now()),
                    Ok(None) => {}
                    Err(e) => tracing::debug!(error = %e, "host watch interrupted; retrying"),
                }
            }
        });
    }

    /// One pass over one workspace: teardown when it is being deleted, apply otherwise.
    /// `Ok(Some(d))` asks to look again after `d`; an error is recorded as the workspace's
    /// message (`retrying: …`).
    async fn reconcile(&self, id: WorkspaceId) -> Result<Option<Duration>> {
        let Some(client) = self.conn.client() else {
            return Err(Error::Unavailable("waiting for the host cluster".into()));
        };
        let Some(snap) = self.ctx.ops.reconcile_snapshot(id)? else {
            return Ok(None);
        };
        let deleting = snap.workspace.state == WorkspaceState::Deleting;
        let result = if deleting {
            teardown::teardown(&self.ctx, &client, id).await
        } else {
            apply::apply(&self.ctx, &client, &snap).await
        };
        if let Err(e) = &result {
            tracing::warn!(workspace = %id, error = %e, kind = e.metric_label(), "reconcile failed; will retry");
            if !shown(e, snap.workspace.state, self.consecutive_failures(id)) {
                return result;
            }
            let obs = Observation {
                state: if deleting {
                    WorkspaceState::Deleting
                } else {
                    WorkspaceState::Error
                },
                phase: snap.workspace.observed_phase.clone(),
                message: format!("retrying: {e}"),
                applied_generation: None,
            };
            let _ = self.ctx.ops.record_observation(id, &obs);
        }
        result
    }
}

/// The workspace a host object of kaas's is labelled with.
fn workspace_of(meta: &kube::api::ObjectMeta) -> Option<WorkspaceId> {
    meta.labels
        .as_ref()?
        .get(names::WORKSPACE_ID_LABEL)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_healthy_workspace_is_not_shown_as_error_for_a_passing_conflict() {
        let race = Error::Conflict("the object has been modified".into());
        assert!(!shown(&race, WorkspaceState::Ready, 0));
        assert!(!shown(
            &race,
            WorkspaceState::Updating,
            RACES_BEFORE_ERROR - 1
        ));
        // It keeps happening: shown.
        assert!(shown(&race, WorkspaceState::Ready, RACES_BEFORE_ERROR));
        // Not yet healthy, or being deleted: every failure is shown as before.
        assert!(shown(&race, WorkspaceState::Provisioning, 0));
        assert!(shown(&race, WorkspaceState::Deleting, 0));
        // Anything else is shown at once.
        let down = Error::Unavailable("HTTP 500".into());
        assert!(shown(&down, WorkspaceState::Ready, 0));
    }
}
