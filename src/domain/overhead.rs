//! K3K's own pods in a workspace's host namespace — its k3s servers, its node agents and, in
//! shared mode, the virtual cluster's system pods that run as host pods — and what they take
//! from the namespace's ResourceQuota. The host quota is the plan's tenant quota *plus* this
//! overhead, so tenants get what the plan promises and the cluster's own pods always admit.
//!
//! Why each part is counted (read off rancher/k3k v1.1.0):
//! - Servers: `servers` pods of a StatefulSet, each with `spec.serverLimit` as its limits
//!   (requests default to limits) and a PersistentVolumeClaim of `storage_gib`.
//! - Agents: in shared mode the DaemonSet `k3k-<n>-kubelet` runs one virtual kubelet on every
//!   host node whose taints it tolerates (it carries none of its own; see
//!   [`node_runs_shared_agent`]); in virtual mode `agents` k3s agent pods. Both with
//!   `spec.workerLimit` as limits.
//! - System pods (shared mode only): K3K disables servicelb, traefik, metrics-server and
//!   local-storage, so the one system pod left is K3s's CoreDNS, whose host pod the virtual
//!   kubelet copies as written: requests 100m CPU and 70 MiB, a 170 MiB memory limit and no
//!   CPU limit — the namespace's LimitRange then gives it the plan's default CPU limit.

use super::plan::{K3kMode, Plan, Quota};

/// CoreDNS's resources in K3s's manifest (v1.33): what its host pod requests and limits.
const COREDNS_CPU_REQUEST_MILLIS: u64 = 100;
const COREDNS_MEMORY_REQUEST_MIB: u64 = 70;
const COREDNS_MEMORY_LIMIT_MIB: u64 = 170;

/// What K3K's own pods of one workspace take from its host ResourceQuota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Overhead {
    pub cpu_request_millis: u64,
    pub cpu_limit_millis: u64,
    pub memory_request_mib: u64,
    pub memory_limit_mib: u64,
    pub storage_gib: u64,
    pub pods: u64,
}

impl Overhead {
    /// The overhead of a workspace on `plan` when the host has `agent_nodes` nodes that run
    /// shared-mode node agents (ignored in virtual mode, where the plan fixes the agents).
    pub fn of(plan: &Plan, agent_nodes: u32) -> Overhead {
        let servers = u64::from(plan.servers);
        let agents = match plan.k3k_mode {
            K3kMode::Shared => u64::from(agent_nodes),
            K3kMode::Virtual => u64::from(plan.agents),
        };
        let (s, a) = (plan.server_resources, plan.agent_resources);
        let cpu = servers * s.cpu_millis + agents * a.cpu_millis;
        let memory = servers * s.memory_mib + agents * a.memory_mib;
        let mut o = Overhead {
            cpu_request_millis: cpu,
            cpu_limit_millis: cpu,
            memory_request_mib: memory,
            memory_limit_mib: memory,
            storage_gib: servers * u64::from(plan.storage_gib),
            pods: servers + agents,
        };
        if plan.k3k_mode == K3kMode::Shared {
            o.cpu_request_millis += COREDNS_CPU_REQUEST_MILLIS;
            o.cpu_limit_millis += plan.limits.default_cpu_millis;
            o.memory_request_mib += COREDNS_MEMORY_REQUEST_MIB;
            o.memory_limit_mib += COREDNS_MEMORY_LIMIT_MIB;
            o.pods += 1;
        }
        o
    }

    /// The part of the overhead that is reserved (requests), in quota units, to tell tenant
    /// usage from the cluster's own in a ResourceQuota's `used`.
    pub fn requests(&self) -> Quota {
        Quota {
            cpu_millis: self.cpu_request_millis,
            memory_mib: self.memory_request_mib,
            storage_gib: self.storage_gib,
            pods: self.pods,
        }
    }
}

/// The host ResourceQuota of a workspace: the plan's tenant quota plus the overhead, per
/// resource name, in kaas's units (millicores, MiB, GiB, count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostQuota {
    pub requests_cpu_millis: u64,
    pub limits_cpu_millis: u64,
    pub requests_memory_mib: u64,
    pub limits_memory_mib: u64,
    pub requests_storage_gib: u64,
    pub pods: u64,
}

impl HostQuota {
    pub fn of(tenant: &Quota, overhead: &Overhead) -> HostQuota {
        HostQuota {
            requests_cpu_millis: tenant
                .cpu_millis
                .saturating_add(overhead.cpu_request_millis),
            limits_cpu_millis: tenant.cpu_millis.saturating_add(overhead.cpu_limit_millis),
            requests_memory_mib: tenant
                .memory_mib
                .saturating_add(overhead.memory_request_mib),
            limits_memory_mib: tenant.memory_mib.saturating_add(overhead.memory_limit_mib),
            requests_storage_gib: tenant.storage_gib.saturating_add(overhead.storage_gib),
            pods: tenant.pods.saturating_add(overhead.pods),
        }
    }
}

/// Taints the DaemonSet controller tolerates on every daemon pod by itself (not
/// `network-unavailable`: only host-network pods get that, and K3K's kubelet is not one).
const DAEMONSET_TOLERATED: [(&str, &str); 6] = [
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
];

/// Whether K3K's shared-mode node agent (DaemonSet `k3k-<n>-kubelet`, no tolerations of its
/// own, no node selector from kaas) runs on a node with these `(key, effect)` taints: the
/// DaemonSet controller places a daemon pod only where it tolerates every NoSchedule and
/// NoExecute taint. So it never runs on a dedicated node (`dedicated=ws-…:NoSchedule`).
pub fn node_runs_shared_agent<'a>(taints: impl IntoIterator<Item = (&'a str, &'a str)>) -> bool {
    taints.into_iter().all(|(key, effect)| {
        effect == "PreferNoSchedule"
            || DAEMONSET_TOLERATED
                .iter()
                .any(|(k, e)| *k == key && *e == effect)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::plan::default_plans;

    fn plan(id: &str) -> Plan {
        default_plans().into_iter().find(|p| p.id == id).unwrap()
    }

    #[test]
    fn a_shared_workspace_pays_for_its_server_an_agent_per_node_and_coredns() {
        let p = plan("starter");
        let o = Overhead::of(&p, 3);
        // 1 server (500m, 1 GiB) + 3 agents (100m, 256 MiB) + CoreDNS (100m/default, 70/170 MiB).
        assert_eq!(o.cpu_request_millis, 500 + 300 + 100);
        assert_eq!(o.cpu_limit_millis, 500 + 300 + p.limits.default_cpu_millis);
        assert_eq!(o.memory_request_mib, 1024 + 768 + 70);
        assert_eq!(o.memory_limit_mib, 1024 + 768 + 170);
        assert_eq!(o.storage_gib, 5);
        assert_eq!(o.pods, 1 + 3 + 1);
        let host = HostQuota::of(&p.quota, &o);
        assert_eq!(host.pods, p.quota.pods + 5);
        assert_eq!(host.requests_storage_gib, p.quota.storage_gib + 5);
    }

    #[test]
    fn a_virtual_workspace_pays_for_its_plans_servers_and_agents_only() {
        let mut p = plan("standard");
        p.k3k_mode = K3kMode::Virtual;
        p.agents = 2;
        let o = Overhead::of(&p, 10);
        assert_eq!(o.pods, 1 + 2, "node count does not matter in virtual mode");
        assert_eq!(o.cpu_request_millis, o.cpu_limit_millis);
    }

    #[test]
    fn the_shared_agent_skips_nodes_with_taints_it_does_not_tolerate() {
        assert!(node_runs_shared_agent([]));
        assert!(node_runs_shared_agent([(
            "node.kubernetes.io/unschedulable",
            "NoSchedule"
        )]));
        assert!(node_runs_shared_agent([("gpu", "PreferNoSchedule")]));
        assert!(!node_runs_shared_agent([("dedicated", "NoSchedule")]));
        assert!(!node_runs_shared_agent([(
            "node-role.kubernetes.io/control-plane",
            "NoSchedule"
        )]));
        assert!(!node_runs_shared_agent([(
            "node.kubernetes.io/network-unavailable",
            "NoSchedule"
        )]));
    }
}
