//! What every pass shares: the use-case layer, the node cache, the settings, the watch
//! caches of kaas's own host objects, and per-workspace memory that does not belong in redb.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Namespace, ResourceQuota, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::Client;
use kube::runtime::reflector;

use super::error::{Error, Result};
use super::node_sync::WatchedNodes;
use super::observe::Pending;
use crate::domain::WorkspaceId;
use crate::host::desired::HostSettings;
use crate::host::k3k::{Cluster, VirtualClusterPolicy};
use crate::ops::Ops;

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
    /// The longest wait before a retry (and the wait after an error a person must fix).
    pub max_backoff: Duration,
    /// After a Cluster change, how long to give K3K to start rolling it out before a Ready
    /// Cluster with a rolled-out StatefulSet counts as done (K3K has no observedGeneration,
    /// and real K3K stays Ready while it rolls servers one at a time).
    pub change_grace: Duration,
    /// How long a confirmed inside of a virtual cluster (roles, bindings, project namespaces)
    /// is trusted without reading it again, while what kaas wants there is unchanged: a
    /// resync then costs no request inside, and hand edits there are repaired within this.
    pub inside_check_interval: Duration,
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
            inside_check_interval: Duration::from_secs(15 * 60),
        }
    }
}

/// Per-workspace memory that does not belong in redb.
#[derive(Default)]
pub struct Memory {
    /// A Cluster spec change kaas applied and has not yet seen K3K react to.
    pub pending_change: HashMap<WorkspaceId, Pending>,
    /// When a Cluster was first seen with a deletion timestamp.
    pub deleting_since: HashMap<WorkspaceId, Instant>,
    /// kaas's own client inside each virtual cluster, with when it was made.
    pub tenant_clients: HashMap<WorkspaceId, (Client, Instant)>,
    /// The fingerprint of what kaas last found (or made) in place inside each virtual
    /// cluster, and when.
    pub inside_confirmed: HashMap<WorkspaceId, (u64, Instant)>,
    /// Host objects kaas may not watch (the issuer Secret, the ingress route): the digest of
    /// what was last found (or made) in place, and when.
    pub confirmed_objects: HashMap<(WorkspaceId, &'static str), (u64, Instant)>,
    /// The `tlsSANs` the served certificate was last seen to cover.
    pub verified_sans: HashMap<WorkspaceId, Vec<String>>,
    /// Server pods (uids) that were running when the served certificate was found to lack
    /// an address: each is restarted once, one at a time.
    pub san_rolls: HashMap<WorkspaceId, HashSet<String>>,
}

impl Memory {
    /// Forgets a workspace whose Cluster is gone.
    pub fn forget(&mut self, id: WorkspaceId) {
        self.deleting_since.remove(&id);
        self.pending_change.remove(&id);
        self.tenant_clients.remove(&id);
        self.inside_confirmed.remove(&id);
        self.confirmed_objects.retain(|(ws, _), _| *ws != id);
        self.verified_sans.remove(&id);
        self.san_rolls.remove(&id);
    }
}

/// Watch-backed copies of the host objects kaas owns: a pass that finds them in sync reads
/// nothing from the API server.
pub struct Caches {
    pub namespaces: reflector::Store<Namespace>,
    pub policies: reflector::Store<VirtualClusterPolicy>,
    pub clusters: reflector::Store<Cluster>,
    /// kaas's API Services (`kaas-api`, labelled with the workspace id).
    pub services: reflector::Store<Service>,
    /// K3K's shared-mode node agent DaemonSets (`type=agent,mode=shared`).
    pub agent_sets: reflector::Store<DaemonSet>,
    /// kaas's NetworkPolicies (`host::isolation`, labelled with the workspace id).
    pub network_policies: reflector::Store<NetworkPolicy>,
    /// kaas's priority-class ResourceQuotas (labelled with the workspace id).
    pub quotas: reflector::Store<ResourceQuota>,
}

pub struct Context {
    pub ops: Arc<Ops>,
    pub nodes: Arc<WatchedNodes>,
    pub settings: ReconcilerSettings,
    pub memory: Mutex<Memory>,
    /// Set once the watches start (the host answered).
    pub caches: OnceLock<Caches>,
}

impl Context {
    pub fn new(ops: Arc<Ops>, nodes: Arc<WatchedNodes>, settings: ReconcilerSettings) -> Context {
        Context {
            ops,
            nodes,
            settings,
            memory: Mutex::new(Memory::default()),
            caches: OnceLock::new(),
        }
    }

    pub fn memory(&self) -> Result<MutexGuard<'_, Memory>> {
        self.memory
            .lock()
            .map_err(|_| Error::Internal("reconciler state poisoned".into()))
    }

    /// How often to look at a workspace that is on its way somewhere.
    pub fn soon(&self) -> Duration {
        self.settings.poll_while_busy
    }
}
