//! Plans and quotas: what a workspace may use. A plan is chosen per workspace and sets its
//! quota, limit-range defaults, K3K mode and storage, whether dedicated nodes are allowed,
//! and the limits inside the workspace (projects, members). Quantities are integers in
//! fixed units (CPU millicores, memory MiB, storage GiB) so sums and comparisons are exact.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::billing::prices::{PlanPrices, default_prices};
use super::names::{NameProblem, check_display_name, check_dns_label};

/// K3K's cluster mode (immutable on a Cluster once created).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum K3kMode {
    Shared,
    Virtual,
}

/// Resource amounts; also used as a project quota. Every field is a hard cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// CPU in millicores (1000 = one core).
    pub cpu_millis: u64,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Persistent storage requests in GiB.
    pub storage_gib: u64,
    /// Number of pods.
    pub pods: u64,
}

impl Quota {
    pub fn checked_add(&self, o: &Quota) -> Option<Quota> {
        Some(Quota {
            cpu_millis: self.cpu_millis.checked_add(o.cpu_millis)?,
            memory_mib: self.memory_mib.checked_add(o.memory_mib)?,
            storage_gib: self.storage_gib.checked_add(o.storage_gib)?,
            pods: self.pods.checked_add(o.pods)?,
        })
    }

    /// The dimensions in which `self` exceeds `cap`, each as (name, wanted, available).
    pub fn excess_over(&self, cap: &Quota) -> Vec<(&'static str, u64, u64)> {
        let dims = [
            ("cpu_millis", self.cpu_millis, cap.cpu_millis),
            ("memory_mib", self.memory_mib, cap.memory_mib),
            ("storage_gib", self.storage_gib, cap.storage_gib),
            ("pods", self.pods, cap.pods),
        ];
        dims.into_iter()
            .filter(|(_, want, have)| want > have)
            .collect()
    }

    pub fn saturating_sub(&self, o: &Quota) -> Quota {
        Quota {
            cpu_millis: self.cpu_millis.saturating_sub(o.cpu_millis),
            memory_mib: self.memory_mib.saturating_sub(o.memory_mib),
            storage_gib: self.storage_gib.saturating_sub(o.storage_gib),
            pods: self.pods.saturating_sub(o.pods),
        }
    }
}

/// Defaults the LimitRange gives containers that do not say what they need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitDefaults {
    pub default_cpu_millis: u64,
    pub default_memory_mib: u64,
    pub default_request_cpu_millis: u64,
    pub default_request_memory_mib: u64,
}

/// What one of K3K's own pods (a k3s server, or a node agent) may use. K3K writes these as
/// the container's limits (`spec.serverLimit`, `spec.workerLimit`); Kubernetes then sets the
/// requests equal to them, so they are also what the scheduler reserves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PodResources {
    pub cpu_millis: u64,
    pub memory_mib: u64,
}

impl PodResources {
    /// A k3s server of a small virtual cluster: API server, controllers and datastore.
    pub const SMALL_SERVER: PodResources = PodResources {
        cpu_millis: 500,
        memory_mib: 1_024,
    };
    /// K3K's node agent (the virtual kubelet in shared mode).
    pub const AGENT: PodResources = PodResources {
        cpu_millis: 100,
        memory_mib: 256,
    };
}

fn default_server_resources() -> PodResources {
    PodResources::SMALL_SERVER
}

fn default_agent_resources() -> PodResources {
    PodResources::AGENT
}

/// A plan, as stored and as shown in the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Plan {
    /// A DNS label, e.g. `starter`; fixed once created.
    pub id: String,
    pub display_name: String,
    #[serde(default)]
    pub description: String,
    pub k3k_mode: K3kMode,
    /// K3K server pods (1 or 3 for HA).
    pub servers: u32,
    /// K3K agent pods (virtual mode only).
    pub agents: u32,
    /// Size of each server's persistent volume, in GiB.
    pub storage_gib: u32,
    /// What each K3K server pod may use (on top of `quota`: see `domain::overhead`).
    #[serde(default = "default_server_resources")]
    pub server_resources: PodResources,
    /// What each K3K agent pod may use: the shared-mode node agent runs once per host node.
    #[serde(default = "default_agent_resources")]
    pub agent_resources: PodResources,
    /// What the workspace's tenants may use; K3K's own pods come on top.
    pub quota: Quota,
    pub limits: LimitDefaults,
    /// How many dedicated host nodes a workspace may have; 0 = shared nodes only.
    pub max_dedicated_nodes: u32,
    pub max_projects: u32,
    pub max_members: u32,
    /// Overrides the K3s version from configuration for workspaces on this plan.
    #[serde(default)]
    pub k3s_version: Option<String>,
    /// Hidden plans stay valid for existing workspaces but are not offered for new ones.
    #[serde(default)]
    pub retired: bool,
    /// What a workspace on this plan costs.
    #[serde(default)]
    pub prices: PlanPrices,
    /// The number of the billable terms (quota and prices) now in force; kaas sets it.
    #[serde(default)]
    #[schema(read_only)]
    pub revision: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct PlanProblem {
    pub field: &'static str,
    pub message: String,
}

fn problem(field: &'static str, message: impl Into<String>) -> PlanProblem {
    PlanProblem {
        field,
        message: message.into(),
    }
}

impl Plan {
    /// Rules a plan must satisfy before it is stored.
    pub fn validate(&self) -> Result<(), PlanProblem> {
        check_dns_label(&self.id, 40).map_err(|NameProblem(m)| problem("id", m))?;
        check_display_name(&self.display_name)
            .map_err(|NameProblem(m)| problem("display_name", m))?;
        if !(self.servers == 1 || self.servers == 3 || self.servers == 5) {
            return Err(problem(
                "servers",
                "must be 1, 3 or 5 (etcd needs an odd count)",
            ));
        }
        if self.k3k_mode == K3kMode::Shared && self.agents > 0 {
            return Err(problem(
                "agents",
                "agents exist only in virtual mode; use 0",
            ));
        }
        if self.agents > 20 {
            return Err(problem("agents", "must be at most 20"));
        }
        if self.storage_gib == 0 {
            return Err(problem("storage_gib", "must be at least 1"));
        }
        for (field, r, min_mib) in [
            ("server_resources", self.server_resources, 256),
            ("agent_resources", self.agent_resources, 64),
        ] {
            if r.cpu_millis < 50 || r.cpu_millis > 64_000 {
                return Err(problem(field, "cpu_millis must be between 50 and 64000"));
            }
            if r.memory_mib < min_mib || r.memory_mib > 262_144 {
                return Err(problem(
                    field,
                    format!("memory_mib must be between {min_mib} and 262144"),
                ));
            }
        }
        let q = &self.quota;
        if q.cpu_millis == 0 || q.memory_mib == 0 || q.pods == 0 {
            return Err(problem(
                "quota",
                "cpu_millis, memory_mib and pods must be above 0",
            ));
        }
        let l = &self.limits;
        if l.default_request_cpu_millis > l.default_cpu_millis {
            return Err(problem(
                "limits.default_request_cpu_millis",
                "must not exceed default_cpu_millis",
            ));
        }
        if l.default_request_memory_mib > l.default_memory_mib {
            return Err(problem(
                "limits.default_request_memory_mib",
                "must not exceed default_memory_mib",
            ));
        }
        if l.default_cpu_millis > q.cpu_millis || l.default_memory_mib > q.memory_mib {
            return Err(problem(
                "limits",
                "container defaults must fit inside the quota",
            ));
        }
        if self.max_projects == 0 || self.max_members == 0 {
            return Err(problem(
                "max_projects",
                "max_projects and max_members must be at least 1",
            ));
        }
        self.prices
            .validate()
            .map_err(|(field, message)| problem(field, message))?;
        if let Some(v) = &self.k3s_version
            && !looks_like_k3s_version(v)
        {
            return Err(problem(
                "k3s_version",
                format!("{v:?} is not like v1.33.1-k3s1"),
            ));
        }
        Ok(())
    }

    /// Whether workspaces on this plan may have dedicated nodes.
    pub fn allows_dedicated_nodes(&self) -> bool {
        self.max_dedicated_nodes > 0
    }
}

/// `v<major>.<minor>.<patch>-k3s<n>`, the tag form of K3s images.
pub fn looks_like_k3s_version(v: &str) -> bool {
    let Some(rest) = v.strip_prefix('v') else {
        return false;
    };
    let Some((semver, build)) = rest.split_once("-k3s") else {
        return false;
    };
    let parts: Vec<&str> = semver.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        && !build.is_empty()
        && build.chars().all(|c| c.is_ascii_digit())
}

/// The plans a new database starts with. Operators edit or retire them as they like.
pub fn default_plans() -> Vec<Plan> {
    let limits = |cpu, mem| LimitDefaults {
        default_cpu_millis: cpu,
        default_memory_mib: mem,
        default_request_cpu_millis: cpu / 4,
        default_request_memory_mib: mem / 4,
    };
    let mut plans = vec![
        Plan {
            id: "starter".into(),
            display_name: "Starter".into(),
            description: "Shared nodes, small quota: trying things out and small apps.".into(),
            k3k_mode: K3kMode::Shared,
            servers: 1,
            agents: 0,
            storage_gib: 2,
            server_resources: PodResources::SMALL_SERVER,
            agent_resources: PodResources::AGENT,
            quota: Quota {
                cpu_millis: 2_000,
                memory_mib: 4_096,
                storage_gib: 10,
                pods: 50,
            },
            limits: limits(500, 512),
            max_dedicated_nodes: 0,
            max_projects: 5,
            max_members: 10,
            k3s_version: None,
            retired: false,
            prices: PlanPrices::default(),
            revision: 0,
        },
        Plan {
            id: "standard".into(),
            display_name: "Standard".into(),
            description: "Shared nodes, production-sized quota.".into(),
            k3k_mode: K3kMode::Shared,
            servers: 1,
            agents: 0,
            storage_gib: 5,
            server_resources: PodResources {
                cpu_millis: 1_000,
                memory_mib: 2_048,
            },
            agent_resources: PodResources::AGENT,
            quota: Quota {
                cpu_millis: 8_000,
                memory_mib: 16_384,
                storage_gib: 100,
                pods: 200,
            },
            limits: limits(1_000, 1_024),
            max_dedicated_nodes: 0,
            max_projects: 20,
            max_members: 50,
            k3s_version: None,
            retired: false,
            prices: PlanPrices::default(),
            revision: 0,
        },
        Plan {
            id: "premium".into(),
            display_name: "Premium".into(),
            description: "Dedicated nodes, highly available control plane.".into(),
            k3k_mode: K3kMode::Shared,
            servers: 3,
            agents: 0,
            storage_gib: 10,
            server_resources: PodResources {
                cpu_millis: 1_000,
                memory_mib: 2_048,
            },
            agent_resources: PodResources::AGENT,
            quota: Quota {
                cpu_millis: 32_000,
                memory_mib: 65_536,
                storage_gib: 500,
                pods: 1_000,
            },
            limits: limits(2_000, 2_048),
            max_dedicated_nodes: 3,
            max_projects: 100,
            max_members: 200,
            k3s_version: None,
            retired: false,
            prices: PlanPrices::default(),
            revision: 0,
        },
    ];
    for p in &mut plans {
        p.prices = default_prices(&p.id);
    }
    plans
}

/// Checks that a set of project quotas (with one of them replaced or added) fits inside the
/// workspace quota; the error names each dimension with how much is left.
pub fn check_project_quotas_fit(
    workspace_quota: &Quota,
    other_projects: impl IntoIterator<Item = Quota>,
    candidate: &Quota,
) -> Result<(), String> {
    let mut used = Quota::default();
    for q in other_projects {
        used = used.checked_add(&q).ok_or("project quotas overflow")?;
    }
    let total = used
        .checked_add(candidate)
        .ok_or("project quotas overflow")?;
    let excess = total.excess_over(workspace_quota);
    if excess.is_empty() {
        return Ok(());
    }
    let left = workspace_quota.saturating_sub(&used);
    let parts: Vec<String> = excess
        .iter()
        .map(|(dim, _, _)| {
            let (want, avail) = match *dim {
                "cpu_millis" => (candidate.cpu_millis, left.cpu_millis),
                "memory_mib" => (candidate.memory_mib, left.memory_mib),
                "storage_gib" => (candidate.storage_gib, left.storage_gib),
                _ => (candidate.pods, left.pods),
            };
            format!("{dim} {want} requested but only {avail} left in the workspace quota")
        })
        .collect();
    Err(parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_plans_are_valid() {
        for p in default_plans() {
            p.validate().unwrap_or_else(|e| panic!("{}: {e}", p.id));
        }
    }

    #[test]
    fn invalid_plans_name_the_field() {
        let mut p = default_plans().remove(0);
        p.servers = 2;
        assert_eq!(p.validate().unwrap_err().field, "servers");
        let mut p = default_plans().remove(0);
        p.agents = 1;
        assert_eq!(p.validate().unwrap_err().field, "agents");
        let mut p = default_plans().remove(0);
        p.k3s_version = Some("latest".into());
        assert_eq!(p.validate().unwrap_err().field, "k3s_version");
    }

    #[test]
    fn k3s_versions() {
        assert!(looks_like_k3s_version("v1.33.1-k3s1"));
        for bad in [
            "1.33.1-k3s1",
            "v1.33-k3s1",
            "v1.33.1",
            "v1.33.1-k3s",
            "latest",
        ] {
            assert!(!looks_like_k3s_version(bad), "{bad}");
        }
    }

    #[test]
    fn project_quotas_must_fit_and_say_what_is_left() {
        let ws = Quota {
            cpu_millis: 2000,
            memory_mib: 4096,
            storage_gib: 10,
            pods: 50,
        };
        let a = Quota {
            cpu_millis: 1500,
            memory_mib: 1024,
            storage_gib: 5,
            pods: 10,
        };
        let b = Quota {
            cpu_millis: 1000,
            memory_mib: 1024,
            storage_gib: 5,
            pods: 10,
        };
        let err = check_project_quotas_fit(&ws, [a], &b).unwrap_err();
        assert_eq!(
            err,
            "cpu_millis 1000 requested but only 500 left in the workspace quota"
        );
        let c = Quota {
            cpu_millis: 500,
            ..b
        };
        assert!(check_project_quotas_fit(&ws, [a], &c).is_ok());
    }
}
