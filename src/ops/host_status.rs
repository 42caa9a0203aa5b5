//! The host cluster connection as people see it (`/readyz`, the admin API and console): a
//! view type, and the port through which the runtime that watches the host reports it
//! (implemented by `reconcile::connection`; `ops` never talks to Kubernetes).

use std::sync::Arc;

use jiff::Timestamp;
use serde::Serialize;
use utoipa::ToSchema;

use super::authz::require_platform_admin;
use super::{Actor, Ops, OpsResult};

/// What kaas knows about its host connection.
#[derive(Debug, Clone, Default, Serialize, ToSchema, PartialEq, Eq)]
pub struct HostStatus {
    /// Where the credentials came from (a kubeconfig path or `in-cluster`), if found.
    pub source: Option<String>,
    pub connected: bool,
    /// The host's Kubernetes version, e.g. `v1.33.1+k3s1`.
    pub version: Option<String>,
    /// Whether `clusters.k3k.io` and `virtualclusterpolicies.k3k.io` exist.
    pub k3k_crds: bool,
    pub last_error: Option<String>,
    /// Whether the host enforces PodTolerationRestriction (checked with a dry-run pod);
    /// `None` until checked. Without it tenants could land on other workspaces' nodes.
    pub pod_toleration_restriction: Option<bool>,
    /// Whether the host enforces NetworkPolicy (K3s's embedded controller not disabled, read
    /// off its nodes' `k3s.io/node-args`); `None` when the nodes do not tell (not K3s, or not
    /// checked yet). Without it workspaces are not isolated from each other or the host.
    pub network_policy: Option<bool>,
    /// Problems that do not stop kaas but an operator must fix.
    pub warnings: Vec<String>,
    pub checked_at: Option<Timestamp>,
}

/// Reports the host connection as last checked.
pub trait HostMonitor: Send + Sync {
    fn status(&self) -> HostStatus;
}

impl Ops {
    /// Connects the runtime that watches the host (at start, once a host is configured).
    pub fn set_host_monitor(&self, monitor: Arc<dyn HostMonitor>) {
        let _ = self.host.set(monitor);
    }

    /// The connection for the readiness probe; `None` when this kaas manages no host.
    pub fn host_report(&self) -> Option<HostStatus> {
        self.host.get().map(|h| h.status())
    }

    /// The connection as last checked, for platform administrators; `None` when this kaas
    /// manages no host.
    pub fn host_status(&self, actor: &Actor) -> OpsResult<Option<HostStatus>> {
        require_platform_admin(actor)?;
        Ok(self.host_report())
    }

    /// What the host connection asks an operator to fix (e.g. PodTolerationRestriction not
    /// enforced); nothing for anyone but a platform administrator.
    pub fn host_warnings(&self, actor: &Actor) -> Vec<String> {
        self.host_status(actor)
            .ok()
            .flatten()
            .map(|h| h.warnings)
            .unwrap_or_default()
    }
}
