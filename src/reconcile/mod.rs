//! The reconcile runtime: makes the host cluster match redb. Everything here does I/O with
//! a Kubernetes API; what it applies is built by the pure model in `host`. Shaped like a
//! kube-rs controller: a keyed work queue with an error policy ([`runtime`]), one pass per
//! key that applies ([`apply`]) or tears down ([`teardown`]), a pure status decision
//! ([`observe`]), one typed error with a kind per backoff and metric ([`error`]), and the
//! Kubernetes calls written once ([`kubeapi`]).
//!
//! - [`connection`]: the host kubeconfig, client and connection status (`/readyz`).
//! - [`isolation`]: the workspace's NetworkPolicies and priority-class quotas.
//! - [`node_sync`]: the node inventory (a watch) and dedicated-node labels, taints, release.
//! - [`tenant_sync`]: kaas's client inside each virtual cluster; roles, projects, bindings.
//! - [`usage_sync`]: quota usage for the meter (watches of K3K's quotas and pods).
//! - [`served_cert`]: the certificate a virtual cluster really serves, and its repair.
//!
//! Imports between these files point one way: `runtime` → `apply`/`teardown` → the syncs
//! → `kubeapi`/`error`. `ops` reaches this module only through the ports it defines
//! (`NodeInventory`, `UsageSource`, `KubeconfigMinter`, `HostMonitor`), wired in `app`.

pub mod apply;
pub mod connection;
pub mod context;
pub mod error;
pub mod isolation;
pub mod kubeapi;
pub mod node_sync;
pub mod observe;
pub mod runtime;
pub mod served_cert;
pub mod teardown;
pub mod tenant_sync;
pub mod usage_sync;

#[cfg(test)]
mod fixtures;

pub use context::ReconcilerSettings;
pub use error::Error;
pub use runtime::{ReconcileStats, Reconciler, ReconcilerHandle};
