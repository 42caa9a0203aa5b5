//! The desired host objects of a workspace, as pure functions of the record: its namespace
//! (with the toleration admission annotations), its VirtualClusterPolicy and its K3K Cluster.
//! No I/O and no clock: the same workspace, plan and settings always give byte-identical
//! objects, so a reconcile that finds everything in sync performs zero writes.
//!
//! Every object is ready for server-side apply under [`names::FIELD_MANAGER`]: apiVersion,
//! kind, name, namespace and labels are set; status, resourceVersion, uid and managedFields
//! never are. Optional fields kaas does not set are left out (not sent as `null`), so SSA
//! leaves them to their defaults and to other managers.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, ResourceQuota, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::expose::{self, ExposeSettings};
use super::isolation::{self, IsolationSettings};
use super::k3k::cluster::{ClusterMode, ClusterPersistence, ClusterSpec};
use super::k3k::policy::{
    VirtualClusterPolicyAllowedMode, VirtualClusterPolicyLimit, VirtualClusterPolicyLimitLimits,
    VirtualClusterPolicyPodSecurityAdmissionLevel, VirtualClusterPolicyQuota,
    VirtualClusterPolicySpec,
};
use super::k3k::{Cluster, VirtualClusterPolicy};
use super::names;
use super::oidc::{self, ClusterIssuer};
use super::quantity;
use super::tolerations::{dedicated_toleration, toleration_whitelist, tolerations_json};
use crate::domain::overhead::{HostQuota, Overhead};
use crate::domain::{Expose, K3kMode, LimitDefaults, Plan, PodResources, Quota, Workspace};

/// What the host side needs besides the workspace and its plan. Filled by the reconciler
/// from configuration and the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostSettings {
    /// Every host name or IP clients use to reach virtual clusters (become `tlsSANs`).
    pub external_addresses: Vec<String>,
    /// The default K3s image tag, e.g. `v1.33.1-k3s1`; `Plan::k3s_version` overrides it.
    pub k3s_version: String,
    /// Host node names assigned to this workspace; empty = shared nodes only.
    pub dedicated_nodes: Vec<String>,
    /// The pool names (`ws-<short>`) of every workspace that has dedicated nodes. The
    /// whitelist is an allow-list, so these are excluded by construction; the list is what
    /// [`foreign_pools_admitted`] audits an observed namespace against.
    pub all_dedicated_pools: Vec<String>,
    /// Host nodes that run K3K's shared-mode node agent (one pod each, counted in the
    /// quota; see `domain::overhead::node_runs_shared_agent`).
    pub agent_nodes: u32,
    /// kaas's OIDC issuer, which every cluster's kube-apiserver trusts for its own
    /// workspace (see `host::oidc`); None when kaas has no HTTPS URL to offer.
    pub issuer: Option<ClusterIssuer>,
    /// The networks and addresses the workspace's NetworkPolicies deny (`host::isolation`).
    pub isolation: IsolationSettings,
    /// The ingress domain and port (`host::expose`).
    pub expose: ExposeSettings,
    /// The addresses the load balancer published for `kaas-api` (loadbalancer plans),
    /// observed: they join the Cluster's `tlsSANs`.
    pub load_balancer_addresses: Vec<String>,
}

impl HostSettings {
    /// Whether the workspace's pods are pinned to (and tolerate) its own dedicated nodes.
    pub fn is_dedicated(&self) -> bool {
        !self.dedicated_nodes.is_empty()
    }
}

/// Identifies one object kaas must keep, so the reconciler can diff and clean up.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectRef {
    pub api_version: &'static str,
    pub kind: &'static str,
    /// `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    pub name: String,
}

/// Every host object of one workspace, in apply order (namespace first: the Cluster lives in
/// it; policy before Cluster: K3K reads the policy when it provisions). The reconciler applies
/// the API Service (and, for ingress plans, its Traefik route: `host::expose`) before the
/// Cluster, whose `tlsSANs` name the load balancer address the Service got.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredSet {
    pub namespace: Namespace,
    pub policy: VirtualClusterPolicy,
    pub cluster: Cluster,
    pub api_service: Service,
    /// The issuer's authentication configuration (`host::oidc`), applied before the
    /// Cluster that mounts it; None without an issuer.
    pub oidc_secret: Option<Secret>,
    /// kaas's NetworkPolicies in the namespace (`host::isolation`), applied right after it.
    pub network_policies: Vec<NetworkPolicy>,
    /// The priority-class ResourceQuotas in the namespace, applied right after it.
    pub priority_quotas: Vec<ResourceQuota>,
    /// The namespace, policy, issuer Secret (when there is one), Cluster and API Service, by
    /// reference, in apply order. Delete in reverse order (the namespaced isolation objects
    /// go with their namespace).
    pub objects: Vec<ObjectRef>,
}

/// The host namespace `kaas-ws-<short>`.
///
/// Labels: workspace id, managed-by, the K3K policy binding, and Pod Security Admission.
/// Annotations: PodTolerationRestriction's default tolerations (only with dedicated nodes)
/// and its whitelist (always; see [`toleration_whitelist`]).
pub fn namespace(ws: &Workspace, plan: &Plan, settings: &HostSettings) -> Namespace {
    let mut labels = names::workspace_labels(ws.id);
    labels.insert(names::POLICY_NAME_LABEL.into(), names::policy(ws.id));
    labels.extend(psa_labels(plan.k3k_mode));

    let mut annotations = BTreeMap::new();
    if settings.is_dedicated() {
        annotations.insert(
            names::DEFAULT_TOLERATIONS_ANNOTATION.to_string(),
            tolerations_json(&[dedicated_toleration(ws.id)]),
        );
    }
    annotations.insert(
        names::TOLERATIONS_WHITELIST_ANNOTATION.to_string(),
        tolerations_json(&toleration_whitelist(ws.id, settings.is_dedicated())),
    );

    Namespace {
        metadata: ObjectMeta {
            name: Some(names::namespace(ws.id)),
            labels: Some(labels),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    }
}

/// The cluster-scoped VirtualClusterPolicy `kaas-ws-<short>`, bound to the namespace by its
/// `policy.k3k.io/policy-name` label. K3K turns it into a ResourceQuota, a LimitRange, a
/// NetworkPolicy and the PSA labels of the namespace.
pub fn policy(ws: &Workspace, plan: &Plan, settings: &HostSettings) -> VirtualClusterPolicy {
    let spec = VirtualClusterPolicySpec {
        // NB: immutable in the CRD (`self == oldSelf`), like the Cluster's mode.
        allowed_mode: Some(match plan.k3k_mode {
            K3kMode::Shared => VirtualClusterPolicyAllowedMode::Shared,
            K3kMode::Virtual => VirtualClusterPolicyAllowedMode::Virtual,
        }),
        // The tenants' quota plus what K3K's own pods take (domain::overhead): the plan's
        // promise holds and the servers, agents and CoreDNS always admit.
        quota: Some(VirtualClusterPolicyQuota {
            hard: Some(int_or_strings({
                let mut hard = host_quota_quantities(&HostQuota::of(
                    &plan.quota,
                    &Overhead::of(plan, settings.agent_nodes),
                ));
                hard.extend(service_quantities(plan));
                hard
            })),
            ..VirtualClusterPolicyQuota::default()
        }),
        limit: Some(VirtualClusterPolicyLimit {
            limits: vec![VirtualClusterPolicyLimitLimits {
                r#type: "Container".into(),
                default: Some(int_or_strings(limit_defaults(&plan.limits))),
                default_request: Some(int_or_strings(limit_default_requests(&plan.limits))),
                ..VirtualClusterPolicyLimitLimits::default()
            }],
        }),
        // Where tenant pods go: K3K's virtual kubelet gives every host pod this selector when
        // the policy sets one (else the Cluster's `nodeSelector`, which kaas leaves unset so
        // that K3K's servers and node agents stay on shared nodes; see [`cluster`]).
        default_node_selector: settings
            .is_dedicated()
            .then(|| names::node_pool_selector(ws.id)),
        // K3K rewrites the namespace's PSA labels from this; it must agree with
        // [`psa_labels`] or the two managers would rewrite each other's labels forever.
        pod_security_admission_level: Some(match psa_level(plan.k3k_mode) {
            PsaLevel::Baseline => VirtualClusterPolicyPodSecurityAdmissionLevel::Baseline,
            PsaLevel::Privileged => VirtualClusterPolicyPodSecurityAdmissionLevel::Privileged,
        }),
        // K3K's NetworkPolicy allows all ingress and egress to the host API server, nodes and
        // kubelets; policies only add up, so kaas's own (`host::isolation`) can deny those
        // only when K3K writes none.
        disable_network_policy: Some(true),
        ..VirtualClusterPolicySpec::default()
    };
    let mut vcp = VirtualClusterPolicy::new(&names::policy(ws.id), spec);
    vcp.metadata.labels = Some(names::workspace_labels(ws.id));
    vcp
}

/// The K3K Cluster `ws-<short>` in `kaas-ws-<short>`.
pub fn cluster(ws: &Workspace, plan: &Plan, settings: &HostSettings) -> Cluster {
    let virtual_mode = plan.k3k_mode == K3kMode::Virtual;
    let spec = ClusterSpec {
        // NB: immutable, like persistence.storageRequestSize; see [`immutable_changes`].
        mode: Some(if virtual_mode {
            ClusterMode::Virtual
        } else {
            ClusterMode::Shared
        }),
        // Pinned: an air-gapped box has only the images it was given, and K3K's default
        // (the host's version) may not be among them.
        version: Some(k3s_version(plan, settings)),
        servers: Some(count(plan.servers)),
        // Agents exist only in virtual mode; K3K ignores the field in shared mode.
        agents: virtual_mode.then(|| count(plan.agents)),
        // Dynamic persistence: ephemeral storage regenerates the CAs on restart, which
        // breaks every kubeconfig kaas has minted.
        persistence: Some(ClusterPersistence {
            r#type: Some("dynamic".into()),
            // NB: not canonicalised. A CRD field is stored as written, and the CRD's CEL rule
            // compares it as text: "1024Gi" → "1Ti" would be refused as a change.
            storage_request_size: Some(IntOrString::String(format!("{}Gi", plan.storage_gib))),
            storage_class_name: None,
        }),
        // NB: no `expose`. K3K's Service is then a ClusterIP Service with 443 and etcd's
        // 2379, which K3K's StatefulSet controller dials to remove an etcd member before it
        // releases a server pod (multi-server clusters): with `expose.nodePort` kaas had to
        // drop 2379 (or publish etcd on every node), and every server pod deletion hung.
        // kaas exposes the API server alone with a Service of its own ([`api_service`]).
        expose: None,
        tls_sa_ns: tls_sans(
            &settings
                .external_addresses
                .iter()
                .cloned()
                .chain(expose::extra_tls_sans(
                    ws.id,
                    plan.expose,
                    &settings.expose,
                    &settings.load_balancer_addresses,
                ))
                .collect::<Vec<_>>(),
        ),
        // NB: no `nodeSelector`, even with dedicated nodes. K3K gives it to the server pods
        // and to the shared-mode node agent DaemonSet, which carries no tolerations: the
        // DaemonSet controller never places it on a tainted dedicated node (namespace default
        // tolerations are added to pods at admission, too late for that choice), so the
        // workspace would get no virtual nodes. Servers and agents run on shared nodes;
        // tenant pods are sent to the dedicated ones by the policy's defaultNodeSelector.
        node_selector: None,
        // K3K sets these as its pods' limits (requests follow), so the namespace's LimitRange
        // never caps a k3s server at a tenant container's default and the quota can count
        // them exactly (domain::overhead).
        server_limit: Some(pod_limits(plan.server_resources)),
        worker_limit: Some(pod_limits(plan.agent_resources)),
        // The kube-apiserver trusts kaas's issuer for this workspace (host::oidc).
        server_args: settings
            .issuer
            .as_ref()
            .map(|i| oidc::server_args(&oidc::secret(ws.id, i).1)),
        secret_mounts: settings.issuer.as_ref().map(|_| vec![oidc::secret_mount()]),
        ..ClusterSpec::default()
    };
    let mut c = Cluster::new(&names::cluster(ws.id), spec);
    c.metadata.namespace = Some(names::namespace(ws.id));
    c.metadata.labels = Some(names::workspace_labels(ws.id));
    c
}

/// All host objects of a workspace.
pub fn desired_objects(ws: &Workspace, plan: &Plan, settings: &HostSettings) -> DesiredSet {
    let oidc_secret = settings.issuer.as_ref().map(|i| oidc::secret(ws.id, i).0);
    let mut objects = vec![
        ObjectRef {
            api_version: "v1",
            kind: "Namespace",
            namespace: None,
            name: names::namespace(ws.id),
        },
        ObjectRef {
            api_version: "k3k.io/v1beta1",
            kind: "VirtualClusterPolicy",
            namespace: None,
            name: names::policy(ws.id),
        },
        ObjectRef {
            api_version: "k3k.io/v1beta1",
            kind: "Cluster",
            namespace: Some(names::namespace(ws.id)),
            name: names::cluster(ws.id),
        },
        ObjectRef {
            api_version: "v1",
            kind: "Service",
            namespace: Some(names::namespace(ws.id)),
            name: names::API_SERVICE.to_string(),
        },
    ];
    if oidc_secret.is_some() {
        objects.insert(
            2,
            ObjectRef {
                api_version: "v1",
                kind: "Secret",
                namespace: Some(names::namespace(ws.id)),
                name: oidc::SECRET_NAME.to_string(),
            },
        );
    }
    DesiredSet {
        namespace: namespace(ws, plan, settings),
        policy: policy(ws, plan, settings),
        cluster: cluster(ws, plan, settings),
        api_service: expose::api_service(ws.id, plan.expose),
        oidc_secret,
        network_policies: isolation::network_policies(
            ws.id,
            &settings.isolation,
            settings.issuer.as_ref().map(|i| i.url.as_str()),
        ),
        priority_quotas: isolation::priority_quotas(ws.id, plan),
        objects,
    }
}

/// Limits of one of K3K's pods, as `serverLimit`/`workerLimit` hold them. NB: a CRD field,
/// stored as written; canonical anyway, like everything kaas writes.
fn pod_limits(r: PodResources) -> BTreeMap<String, IntOrString> {
    int_or_strings(BTreeMap::from([
        ("cpu".to_string(), quantity::cpu(r.cpu_millis)),
        ("memory".to_string(), quantity::mebibytes(r.memory_mib)),
    ]))
}

/// The K3s image tag for a workspace: the plan's override, else the configured default.
pub fn k3s_version(plan: &Plan, settings: &HostSettings) -> String {
    plan.k3s_version
        .clone()
        .unwrap_or_else(|| settings.k3s_version.clone())
}

/// Fields the API server refuses to change on an existing Cluster (CEL `self == oldSelf`).
/// A plan change that touches one of them cannot be applied: the reconciler reports these
/// instead of retrying a 422 forever.
pub fn immutable_changes(observed: &ClusterSpec, desired: &ClusterSpec) -> Vec<&'static str> {
    let mut changed = Vec::new();
    if observed.mode.is_some() && observed.mode != desired.mode {
        changed.push("spec.mode");
    }
    let size = |s: &ClusterSpec| {
        s.persistence
            .as_ref()
            .and_then(|p| p.storage_request_size.clone())
    };
    if size(observed).is_some() && size(observed) != size(desired) {
        changed.push("spec.persistence.storageRequestSize");
    }
    changed
}

/// Pod Security Admission level of a workspace's host namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PsaLevel {
    Baseline,
    Privileged,
}

impl PsaLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            PsaLevel::Baseline => "baseline",
            PsaLevel::Privileged => "privileged",
        }
    }
}

/// Shared mode runs tenant pods as ordinary pods in the host namespace, so the host must
/// refuse privileged ones (host paths, host network, privileged containers): `baseline`.
/// Virtual mode runs k3s agents (and servers) that need privileges (they run containerd),
/// and tenant pods live inside those agents, not on the host: `privileged`.
pub fn psa_level(mode: K3kMode) -> PsaLevel {
    match mode {
        K3kMode::Shared => PsaLevel::Baseline,
        K3kMode::Virtual => PsaLevel::Privileged,
    }
}

/// The PSA labels exactly as K3K's policy controller writes them for the same level
/// (`enforce` + `enforce-version: latest`, plus `warn` + `warn-version` unless privileged).
/// Setting them here too means they hold from the namespace's first moment, before K3K has
/// reconciled the policy; being identical, the two managers never fight over them.
pub fn psa_labels(mode: K3kMode) -> BTreeMap<String, String> {
    let level = psa_level(mode);
    let mut labels = BTreeMap::from([
        (names::PSA_ENFORCE.to_string(), level.as_str().to_string()),
        (names::PSA_ENFORCE_VERSION.to_string(), "latest".to_string()),
    ]);
    if level != PsaLevel::Privileged {
        labels.insert(names::PSA_WARN.into(), level.as_str().into());
        labels.insert(names::PSA_WARN_VERSION.into(), "latest".into());
    }
    labels
}

/// A plan quota as ResourceQuota `hard` entries (also used for project quotas inside the
/// virtual cluster). Requests and limits get the same cap, so a pod cannot escape the quota
/// by declaring small requests and large limits.
pub fn quota_quantities(q: &Quota) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("requests.cpu".into(), quantity::cpu(q.cpu_millis)),
        ("limits.cpu".into(), quantity::cpu(q.cpu_millis)),
        ("requests.memory".into(), quantity::mebibytes(q.memory_mib)),
        ("limits.memory".into(), quantity::mebibytes(q.memory_mib)),
        (
            "requests.storage".into(),
            quantity::gibibytes(q.storage_gib),
        ),
        ("pods".into(), quantity::count(q.pods)),
    ])
}

/// The host ResourceQuota's `hard` entries of a workspace: the tenant quota plus K3K's own
/// pods, with their (different) requests and limits.
pub fn host_quota_quantities(q: &HostQuota) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("requests.cpu".into(), quantity::cpu(q.requests_cpu_millis)),
        ("limits.cpu".into(), quantity::cpu(q.limits_cpu_millis)),
        (
            "requests.memory".into(),
            quantity::mebibytes(q.requests_memory_mib),
        ),
        (
            "limits.memory".into(),
            quantity::mebibytes(q.limits_memory_mib),
        ),
        (
            "requests.storage".into(),
            quantity::gibibytes(q.requests_storage_gib),
        ),
        ("pods".into(), quantity::count(q.pods)),
    ])
}

/// The host quota's Service entries: the plan's NodePorts and LoadBalancers plus kaas's own
/// API Service (a NodePort in nodeport mode, a LoadBalancer — which takes a node port too —
/// in loadbalancer mode, a ClusterIP behind the ingress controller in ingress mode).
pub fn service_quantities(plan: &Plan) -> BTreeMap<String, String> {
    let (own_node_port, own_lb) = match plan.expose {
        Expose::NodePort => (1, 0),
        Expose::LoadBalancer => (1, 1),
        Expose::Ingress => (0, 0),
    };
    BTreeMap::from([
        (
            "services.nodeports".into(),
            quantity::count(u64::from(plan.services.node_ports) + own_node_port),
        ),
        (
            "services.loadbalancers".into(),
            quantity::count(u64::from(plan.services.load_balancers) + own_lb),
        ),
    ])
}

/// A LimitRange item's `default` (limits given to containers that set none).
pub fn limit_defaults(l: &LimitDefaults) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("cpu".into(), quantity::cpu(l.default_cpu_millis)),
        ("memory".into(), quantity::mebibytes(l.default_memory_mib)),
    ])
}

/// A LimitRange item's `defaultRequest` (requests given to containers that set none).
pub fn limit_default_requests(l: &LimitDefaults) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("cpu".into(), quantity::cpu(l.default_request_cpu_millis)),
        (
            "memory".into(),
            quantity::mebibytes(l.default_request_memory_mib),
        ),
    ])
}

fn int_or_strings(m: BTreeMap<String, String>) -> BTreeMap<String, IntOrString> {
    m.into_iter()
        .map(|(k, v)| (k, IntOrString::String(v)))
        .collect()
}

/// Plan counts fit easily (`Plan::validate` caps them at 5 servers and 20 agents); a
/// corrupt record saturates rather than wraps, and the CRD's own checks still apply.
fn count(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Every external address once, in the configured order; `None` when there are none.
fn tls_sans(addresses: &[String]) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for a in addresses.iter().map(|a| a.trim()).filter(|a| !a.is_empty()) {
        if !out.iter().any(|o| o == a) {
            out.push(a.to_string());
        }
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::WorkspaceState;
    use crate::domain::plan::default_plans;
    use crate::host::tolerations::*;
    use jiff::Timestamp;
    use k8s_openapi::api::core::v1::Toleration;
    use serde_json::Value;

    fn workspace() -> Workspace {
        Workspace {
            id: "ws_01hzy3v8k2m4n6p8q0r2s4t6v8".parse().unwrap(),
            org_id: crate::domain::OrgId::generate(),
            name: "payments".into(),
            plan_id: "starter".into(),
            state: WorkspaceState::Pending,
            observed_phase: None,
            message: String::new(),
            generation: 1,
            applied_generation: 0,
            created_at: Timestamp::UNIX_EPOCH,
            updated_at: Timestamp::UNIX_EPOCH,
        }
    }

    fn plan(id: &str) -> Plan {
        default_plans().into_iter().find(|p| p.id == id).unwrap()
    }

    fn virtual_plan() -> Plan {
        Plan {
            id: "virtual".into(),
            k3k_mode: K3kMode::Virtual,
            agents: 2,
            ..plan("standard")
        }
    }

    fn settings(dedicated: bool) -> HostSettings {
        HostSettings {
            external_addresses: vec!["kaas.example.com".into(), "10.0.0.5".into()],
            k3s_version: "v1.33.1-k3s1".into(),
            dedicated_nodes: if dedicated {
                vec!["node-a".into()]
            } else {
                vec![]
            },
            all_dedicated_pools: vec!["ws-01hzy3v8k2m4n6p8q0r2s4t6v8".into(), other_pool()],
            agent_nodes: 3,
            // Half the cases trust the issuer (and so carry its Secret).
            issuer: dedicated.then(|| ClusterIssuer {
                url: "https://kaas.example.com:8443".into(),
                ca_pem: Some("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n".into()),
            }),
            isolation: IsolationSettings::default(),
            expose: ExposeSettings {
                ingress_domain: "k.example".into(),
                ingress_port: 443,
            },
            load_balancer_addresses: vec!["192.0.2.9".into()],
        }
    }

    #[test]
    fn the_expose_mode_sets_the_api_service_the_tls_sans_and_the_service_quota() {
        let ws = workspace();
        let sans = |mode: Expose| {
            let plan = Plan {
                expose: mode,
                ..plan("starter")
            };
            cluster(&ws, &plan, &settings(false))
                .spec
                .tls_sa_ns
                .unwrap()
        };
        assert_eq!(sans(Expose::NodePort), ["kaas.example.com", "10.0.0.5"]);
        assert_eq!(
            sans(Expose::LoadBalancer),
            ["kaas.example.com", "10.0.0.5", "192.0.2.9"]
        );
        assert_eq!(
            sans(Expose::Ingress),
            [
                "kaas.example.com".to_string(),
                "10.0.0.5".to_string(),
                format!("{}.k.example", names::cluster(ws.id))
            ]
        );
        for (mode, ty, node_ports, lbs) in [
            (Expose::NodePort, "NodePort", "3", "0"),
            (Expose::LoadBalancer, "LoadBalancer", "3", "1"),
            (Expose::Ingress, "ClusterIP", "2", "0"),
        ] {
            let plan = Plan {
                expose: mode,
                ..plan("starter")
            };
            let d = desired_objects(&ws, &plan, &settings(false));
            assert_eq!(d.api_service.spec.unwrap().type_.as_deref(), Some(ty));
            let q = service_quantities(&plan);
            assert_eq!(q["services.nodeports"], node_ports, "{mode:?}");
            assert_eq!(q["services.loadbalancers"], lbs, "{mode:?}");
        }
    }

    fn other_pool() -> String {
        "ws-01j0000000000000000000000z".into()
    }

    /// All combinations the builders branch on.
    fn cases() -> Vec<(Plan, HostSettings)> {
        let mut out = Vec::new();
        for p in [plan("starter"), plan("premium"), virtual_plan()] {
            for d in [false, true] {
                out.push((p.clone(), settings(d)));
            }
        }
        out
    }

    /// The K3K CRDs are kept in the fakehost crate (`tests/fakehost/crds/`).
    fn crd_schema(file: &str) -> Value {
        let path = format!("{}/{file}", fakehost::K3K_CRDS_DIR);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let crd: Value = serde_yaml::from_str(&text).unwrap();
        let version = &crd["spec"]["versions"][0];
        assert_eq!(version["name"], "v1beta1");
        version["schema"]["openAPIV3Schema"].clone()
    }

    /// A structural check of `v` against an OpenAPI v3 schema, as the API server would do it
    /// on create: unknown fields (which the server would prune silently), types, int32
    /// ranges, enums, required fields, int-or-string quantities and the CEL rules of the
    /// shapes these CRDs use (`self >= n`, "at most one of").
    fn check(v: &Value, s: &Value, path: &str, errs: &mut Vec<String>) {
        if s["x-kubernetes-int-or-string"] == true {
            match v {
                Value::Number(n) if n.is_i64() => {}
                Value::String(q) if s.get("pattern").is_none() || is_quantity(q) => {}
                _ => errs.push(format!("{path}: {v} is not an int-or-string quantity")),
            }
            return;
        }
        if let Some(allowed) = s["enum"].as_array()
            && !allowed.contains(v)
        {
            errs.push(format!("{path}: {v} not in {allowed:?}"));
        }
        for rule in s["x-kubernetes-validations"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let r = rule["rule"].as_str().unwrap_or_default();
            if let Some(min) = r.strip_prefix("self >= ") {
                let min: i64 = min.parse().unwrap();
                if v.as_i64().is_none_or(|n| n < min) {
                    errs.push(format!("{path}: {v} breaks {r}"));
                }
            } else if r.ends_with(".filter(x, x).size() <= 1") {
                let set = r
                    .split("has(self.")
                    .skip(1)
                    .filter(|f| v.get(f.split(')').next().unwrap()).is_some())
                    .count();
                if set > 1 {
                    errs.push(format!("{path}: breaks {r}"));
                }
            }
        }
        match s["type"].as_str() {
            Some("object") => {
                let Some(obj) = v.as_object() else {
                    return errs.push(format!("{path}: {v} is not an object"));
                };
                for req in s["required"].as_array().into_iter().flatten() {
                    if !obj.contains_key(req.as_str().unwrap()) {
                        errs.push(format!("{path}: missing required {req}"));
                    }
                }
                for (k, child) in obj {
                    let p = format!("{path}.{k}");
                    if let Some(cs) = s["properties"].get(k) {
                        check(child, cs, &p, errs);
                    } else if s["additionalProperties"].is_object() {
                        check(child, &s["additionalProperties"], &p, errs);
                    } else if s["x-kubernetes-preserve-unknown-fields"] != true {
                        errs.push(format!("{p}: unknown field (the server would prune it)"));
                    }
                }
            }
            Some("array") => match v.as_array() {
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        check(item, &s["items"], &format!("{path}[{i}]"), errs);
                    }
                }
                None => errs.push(format!("{path}: {v} is not an array")),
            },
            Some("string") if !v.is_string() => errs.push(format!("{path}: {v} not a string")),
            Some("boolean") if !v.is_boolean() => errs.push(format!("{path}: {v} not a bool")),
            Some("integer") => match v.as_i64() {
                Some(n) if s["format"] == "int32" && i32::try_from(n).is_err() => {
                    errs.push(format!("{path}: {n} overflows int32"))
                }
                Some(_) => {}
                None => errs.push(format!("{path}: {v} is not an integer")),
            },
            _ => {}
        }
    }

    /// Kubernetes' quantity grammar (the CRD's `pattern`), without a regex engine.
    fn is_quantity(q: &str) -> bool {
        let q = q.strip_prefix(['+', '-']).unwrap_or(q);
        let num_end = q
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(q.len());
        let (num, suffix) = q.split_at(num_end);
        let number_ok = |n: &str| {
            let (int, frac) = n.split_once('.').unwrap_or((n, ""));
            n.matches('.').count() <= 1
                && (!int.is_empty() || !frac.is_empty())
                && int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit())
        };
        let suffix_ok = matches!(
            suffix,
            "" | "Ki"
                | "Mi"
                | "Gi"
                | "Ti"
                | "Pi"
                | "Ei"
                | "n"
                | "u"
                | "m"
                | "k"
                | "M"
                | "G"
                | "T"
                | "P"
                | "E"
        ) || suffix
            .strip_prefix(['e', 'E'])
            .map(|e| e.strip_prefix(['+', '-']).unwrap_or(e))
            .is_some_and(number_ok);
        number_ok(num) && suffix_ok
    }

    fn validate_against(file: &str, obj: &Value) {
        let schema = crd_schema(file);
        let mut errs = Vec::new();
        for key in ["spec", "status"] {
            if let Some(v) = obj.get(key) {
                check(v, &schema["properties"][key], key, &mut errs);
            }
        }
        assert!(errs.is_empty(), "{file}: {errs:#?}\n{obj:#}");
    }

    #[test]
    fn quantity_grammar() {
        for ok in ["2000m", "4096Mi", "10Gi", "50", "1.5", ".5", "1e3", "+2G"] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["", "10GB", "Gi", "1..2", "ten", "2 Gi"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn cluster_validates_against_the_real_crd() {
        for (p, st) in cases() {
            let c = serde_json::to_value(cluster(&workspace(), &p, &st)).unwrap();
            assert_eq!(c["apiVersion"], "k3k.io/v1beta1");
            assert_eq!(c["kind"], "Cluster");
            validate_against("k3k.io_clusters.yaml", &c);
        }
    }

    #[test]
    fn a_cluster_trusts_the_issuer_through_its_mounted_secret() {
        let st = settings(true);
        let set = desired_objects(&workspace(), &plan("starter"), &st);
        let secret = set.oidc_secret.as_ref().unwrap();
        let key = secret.data.as_ref().unwrap().keys().next().unwrap().clone();
        assert_eq!(set.cluster.spec.server_args, Some(oidc::server_args(&key)));
        let mounts = set.cluster.spec.secret_mounts.as_ref().unwrap();
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].secret_name.as_deref(), Some(oidc::SECRET_NAME));
        assert_eq!(mounts[0].mount_path.as_deref(), Some(oidc::MOUNT_PATH));
        validate_against(
            "k3k.io_clusters.yaml",
            &serde_json::to_value(&set.cluster).unwrap(),
        );
        // Without an issuer, nothing of it.
        let set = desired_objects(&workspace(), &plan("starter"), &settings(false));
        assert!(set.oidc_secret.is_none());
        assert!(set.cluster.spec.server_args.is_none());
        assert!(set.cluster.spec.secret_mounts.is_none());
    }

    #[test]
    fn the_checker_catches_what_the_server_would_refuse() {
        let schema = crd_schema("k3k.io_clusters.yaml");
        let bad = serde_json::json!({
            "mode": "Shared", "servers": 0, "tlsSans": ["x"],
            "persistence": {"storageRequestSize": "10GB"},
            "expose": {"nodePort": {}, "ingress": {}},
        });
        let mut errs = Vec::new();
        check(&bad, &schema["properties"]["spec"], "spec", &mut errs);
        let text = errs.join("\n");
        for expected in [
            "spec.mode",
            "spec.servers",
            "spec.tlsSans: unknown",
            "10GB",
            "spec.expose",
        ] {
            assert!(text.contains(expected), "{expected} not caught in:\n{text}");
        }
    }

    #[test]
    fn policy_validates_against_the_real_crd() {
        for (p, st) in cases() {
            let v = serde_json::to_value(policy(&workspace(), &p, &st)).unwrap();
            assert_eq!(v["apiVersion"], "k3k.io/v1beta1");
            assert_eq!(v["kind"], "VirtualClusterPolicy");
            assert!(v["metadata"].get("namespace").is_none(), "cluster-scoped");
            validate_against("k3k.io_virtualclusterpolicies.yaml", &v);
        }
    }

    #[test]
    fn apply_bodies_carry_no_status_or_server_fields() {
        for (p, st) in cases() {
            let set = desired_objects(&workspace(), &p, &st);
            let mut service = serde_json::to_value(&set.api_service).unwrap();
            // k8s-openapi's typed Service carries no apiVersion/kind; kube adds them on apply.
            service["apiVersion"] = "v1".into();
            service["kind"] = "Service".into();
            let mut bodies = vec![
                serde_json::to_value(&set.namespace).unwrap(),
                serde_json::to_value(&set.policy).unwrap(),
            ];
            if let Some(secret) = &set.oidc_secret {
                let mut secret = serde_json::to_value(secret).unwrap();
                secret["apiVersion"] = "v1".into();
                secret["kind"] = "Secret".into();
                bodies.push(secret);
            }
            bodies.push(serde_json::to_value(&set.cluster).unwrap());
            bodies.push(service);
            assert_eq!(bodies.len(), set.objects.len());
            for (body, r) in bodies.iter().zip(&set.objects) {
                assert!(body.get("status").is_none(), "{body}");
                assert_eq!(body["apiVersion"], r.api_version);
                assert_eq!(body["kind"], r.kind);
                assert_eq!(body["metadata"]["name"], r.name.as_str());
                assert_eq!(
                    body["metadata"].get("namespace").and_then(Value::as_str),
                    r.namespace.as_deref()
                );
                let keys: Vec<&String> = body["metadata"].as_object().unwrap().keys().collect();
                for k in keys {
                    assert!(
                        ["name", "namespace", "labels", "annotations"].contains(&k.as_str()),
                        "metadata.{k} must not be applied"
                    );
                }
                let labels = &body["metadata"]["labels"];
                assert_eq!(
                    labels[names::WORKSPACE_ID_LABEL],
                    "ws_01hzy3v8k2m4n6p8q0r2s4t6v8"
                );
                assert_eq!(labels[names::MANAGED_BY_LABEL], "kaas");
                assert!(
                    !body.to_string().contains("null"),
                    "nulls would clear fields: {body}"
                );
            }
        }
    }

    #[test]
    fn builders_are_deterministic() {
        for (p, st) in cases() {
            let a = serde_json::to_string(&desired_objects(&workspace(), &p, &st).namespace);
            let b = serde_json::to_string(&desired_objects(&workspace(), &p, &st).namespace);
            assert_eq!(a.unwrap(), b.unwrap());
            assert_eq!(
                desired_objects(&workspace(), &p, &st),
                desired_objects(&workspace(), &p, &st)
            );
        }
    }

    #[test]
    fn cluster_spec_follows_the_plan() {
        let ws = workspace();
        let c = cluster(&ws, &plan("premium"), &settings(true));
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(
            v["metadata"]["namespace"],
            "kaas-ws-01hzy3v8k2m4n6p8q0r2s4t6v8"
        );
        assert_eq!(v["metadata"]["name"], "ws-01hzy3v8k2m4n6p8q0r2s4t6v8");
        let spec = &v["spec"];
        assert_eq!(spec["mode"], "shared");
        assert_eq!(spec["servers"], 3);
        assert!(spec.get("agents").is_none(), "agents only in virtual mode");
        assert_eq!(spec["version"], "v1.33.1-k3s1");
        assert_eq!(
            spec["persistence"],
            serde_json::json!({"type": "dynamic", "storageRequestSize": "5Gi"})
        );
        // No expose: K3K's Service stays ClusterIP and keeps etcd's 2379 for its own use.
        assert!(spec.get("expose").is_none());
        assert_eq!(
            spec["tlsSANs"],
            serde_json::json!(["kaas.example.com", "10.0.0.5"])
        );
        // Never a node selector, even with dedicated nodes: K3K would give it to the node
        // agent DaemonSet, which cannot run on a tainted dedicated node.
        assert!(spec.get("nodeSelector").is_none());
        assert_eq!(
            spec["serverLimit"],
            serde_json::json!({"cpu": "1", "memory": "2Gi"})
        );
        assert_eq!(
            spec["workerLimit"],
            serde_json::json!({"cpu": "100m", "memory": "256Mi"})
        );

        let mut vp = virtual_plan();
        vp.k3s_version = Some("v1.32.5-k3s1".into());
        let v = serde_json::to_value(cluster(&ws, &vp, &settings(false))).unwrap();
        assert_eq!(v["spec"]["mode"], "virtual");
        assert_eq!(v["spec"]["agents"], 2);
        assert_eq!(
            v["spec"]["version"], "v1.32.5-k3s1",
            "plan overrides the default"
        );
    }

    #[test]
    fn tls_sans_are_deduplicated_and_omitted_when_empty() {
        let mut st = settings(false);
        st.external_addresses = vec!["a".into(), " a ".into(), "".into(), "b".into()];
        let c = cluster(&workspace(), &plan("starter"), &st);
        assert_eq!(
            c.spec.tls_sa_ns,
            Some(vec!["a".to_string(), "b".to_string()])
        );
        st.external_addresses.clear();
        assert_eq!(
            cluster(&workspace(), &plan("starter"), &st).spec.tls_sa_ns,
            None
        );
    }

    #[test]
    fn policy_carries_quota_limits_mode_and_placement() {
        let ws = workspace();
        let v = serde_json::to_value(policy(&ws, &plan("starter"), &settings(false))).unwrap();
        let spec = &v["spec"];
        assert_eq!(
            spec["quota"]["hard"],
            serde_json::json!({
                // The plan's 2 CPU, 4 GiB, 10 GiB and 50 pods for tenants, plus K3K's pods on
                // 3 nodes: a server (500m, 1 GiB, 5 GiB volume), 3 node agents (100m,
                // 256 MiB each) and CoreDNS (requests 100m/70 MiB; limits the LimitRange's
                // 500m and its own 170 MiB). Canonical, as a server stores them.
                "requests.cpu": "2900m", "limits.cpu": "3300m",
                "requests.memory": "5958Mi", "limits.memory": "6058Mi",
                "requests.storage": "15Gi", "pods": "55",
                // The plan's 2 NodePorts plus kaas's own API Service; no LoadBalancer.
                "services.nodeports": "3", "services.loadbalancers": "0",
            })
        );
        let mut more_nodes = settings(false);
        more_nodes.agent_nodes = 10;
        let bigger = policy(&ws, &plan("starter"), &more_nodes);
        assert_eq!(
            bigger.spec.quota.unwrap().hard.unwrap()["pods"],
            IntOrString::String("62".into()),
            "one more agent pod per node"
        );
        assert_eq!(
            spec["limit"]["limits"],
            serde_json::json!([{
                "type": "Container",
                "default": {"cpu": "500m", "memory": "512Mi"},
                "defaultRequest": {"cpu": "125m", "memory": "128Mi"},
            }])
        );
        assert_eq!(spec["allowedMode"], "shared");
        assert_eq!(spec["podSecurityAdmissionLevel"], "baseline");
        assert_eq!(
            spec["disableNetworkPolicy"], true,
            "kaas owns the NetworkPolicies"
        );
        assert!(spec.get("defaultNodeSelector").is_none());

        // With dedicated nodes, the policy (not the Cluster) sends tenant pods there.
        let p = policy(&ws, &plan("premium"), &settings(true));
        let c = cluster(&ws, &plan("premium"), &settings(true));
        assert_eq!(
            p.spec.default_node_selector,
            Some(names::node_pool_selector(ws.id))
        );
        assert_eq!(c.spec.node_selector, None);
    }

    #[test]
    fn namespace_psa_labels_agree_with_the_policy_level() {
        let ws = workspace();
        for (p, st) in cases() {
            let ns = namespace(&ws, &p, &st);
            let labels = ns.metadata.labels.unwrap();
            let level =
                serde_json::to_value(policy(&ws, &p, &st).spec.pod_security_admission_level);
            assert_eq!(labels[names::PSA_ENFORCE], level.unwrap().as_str().unwrap());
            assert_eq!(labels[names::POLICY_NAME_LABEL], names::policy(ws.id));
            // Exactly what K3K's policy controller writes: warn only below privileged.
            assert_eq!(
                labels.contains_key(names::PSA_WARN),
                p.k3k_mode == K3kMode::Shared
            );
        }
        let virt = namespace(&ws, &virtual_plan(), &settings(false));
        assert_eq!(
            virt.metadata.labels.unwrap()[names::PSA_ENFORCE],
            "privileged"
        );
    }

    fn annotation(ns: &Namespace, key: &str) -> Option<String> {
        ns.metadata.annotations.as_ref().unwrap().get(key).cloned()
    }

    fn parsed(json: &str) -> Vec<Toleration> {
        serde_json::from_str(json).unwrap()
    }

    fn pool_toleration(pool: &str, operator: &str, effect: Option<&str>) -> Toleration {
        Toleration {
            key: Some("dedicated".into()),
            operator: Some(operator.into()),
            value: (operator == "Equal").then(|| pool.to_string()),
            effect: effect.map(String::from),
            toleration_seconds: None,
        }
    }

    /// What Kubernetes adds by itself: DefaultTolerationSeconds (300 s), the DaemonSet
    /// controller (no limit) and PodTolerationRestriction's memory-pressure.
    fn kubernetes_added() -> Vec<Toleration> {
        let t = |key: &str, effect: &str, secs: Option<i64>| Toleration {
            key: Some(format!("node.kubernetes.io/{key}")),
            operator: Some("Exists".into()),
            effect: Some(effect.into()),
            toleration_seconds: secs,
            value: None,
        };
        vec![
            t("not-ready", "NoExecute", Some(300)),
            t("unreachable", "NoExecute", Some(300)),
            t("not-ready", "NoExecute", None),
            t("unreachable", "NoExecute", None),
            t("disk-pressure", "NoSchedule", None),
            t("memory-pressure", "NoSchedule", None),
            t("pid-pressure", "NoSchedule", None),
            t("unschedulable", "NoSchedule", None),
            t("network-unavailable", "NoSchedule", None),
        ]
    }

    /// The tolerations of K3s's CoreDNS Deployment (v1.33), which K3K's virtual kubelet copies
    /// onto the host pod as written.
    fn coredns_tolerations() -> Vec<Toleration> {
        parsed(
            r#"[{"key":"CriticalAddonsOnly","operator":"Exists"},
                {"key":"node-role.kubernetes.io/control-plane","operator":"Exists","effect":"NoSchedule"},
                {"key":"node-role.kubernetes.io/master","operator":"Exists","effect":"NoSchedule"}]"#,
        )
    }

    #[test]
    fn every_workspace_admits_the_virtual_clusters_system_pods_but_no_wildcard() {
        for (plan_name, dedicated) in [("starter", false), ("premium", true)] {
            let ws = workspace();
            let ns = namespace(&ws, &plan(plan_name), &settings(dedicated));
            let wl = parsed(&annotation(&ns, names::TOLERATIONS_WHITELIST_ANNOTATION).unwrap());
            let mut coredns = coredns_tolerations();
            coredns.extend(kubernetes_added());
            assert!(
                whitelist_admits(&wl, &coredns),
                "{plan_name}: CoreDNS refused"
            );
            // A wildcard toleration, or one for another pool, still is not.
            let tolerate_all = Toleration {
                operator: Some("Exists".into()),
                ..Toleration::default()
            };
            assert!(!whitelist_admits(&wl, &[tolerate_all]), "{plan_name}");
            assert!(
                !whitelist_admits(
                    &wl,
                    &[pool_toleration(&other_pool(), "Equal", Some("NoSchedule"))]
                ),
                "{plan_name}"
            );
        }
    }

    #[test]
    fn shared_workspace_whitelist_admits_no_dedicated_toleration() {
        let ws = workspace();
        let ns = namespace(&ws, &plan("starter"), &settings(false));
        assert_eq!(annotation(&ns, names::DEFAULT_TOLERATIONS_ANNOTATION), None);
        let wl = parsed(&annotation(&ns, names::TOLERATIONS_WHITELIST_ANNOTATION).unwrap());
        assert!(!wl.is_empty(), "an empty whitelist admits everything");
        for pool in [names::node_pool(ws.id), other_pool()] {
            for t in [
                pool_toleration(&pool, "Equal", Some("NoSchedule")),
                pool_toleration(&pool, "Equal", None),
                pool_toleration(&pool, "Exists", None),
                pool_toleration(&pool, "Exists", Some("NoSchedule")),
            ] {
                assert!(
                    !whitelist_admits(&wl, std::slice::from_ref(&t)),
                    "{t:?} admitted"
                );
            }
        }
        let tolerate_all = Toleration {
            operator: Some("Exists".into()),
            ..Toleration::default()
        };
        assert!(!whitelist_admits(&wl, &[tolerate_all]));
        assert!(whitelist_admits(&wl, &kubernetes_added()));
        let settings = settings(false);
        assert!(foreign_pools_admitted(&ns, &settings.all_dedicated_pools, None).is_empty());
    }

    #[test]
    fn dedicated_workspace_whitelist_admits_only_its_own_pool_and_the_system() {
        let ws = workspace();
        let ns = namespace(&ws, &plan("premium"), &settings(true));
        let own = names::node_pool(ws.id);
        let defaults = parsed(&annotation(&ns, names::DEFAULT_TOLERATIONS_ANNOTATION).unwrap());
        assert_eq!(defaults, vec![dedicated_toleration(ws.id)]);
        let wl = parsed(&annotation(&ns, names::TOLERATIONS_WHITELIST_ANNOTATION).unwrap());
        let mut pod = defaults.clone();
        pod.extend(kubernetes_added());
        assert!(
            whitelist_admits(&wl, &pod),
            "a defaulted pod must be admitted"
        );
        let mut no_operator = dedicated_toleration(ws.id);
        no_operator.operator = None;
        assert!(
            whitelist_admits(&wl, &[no_operator]),
            "operator-less own toleration"
        );
        for t in [
            pool_toleration(&other_pool(), "Equal", Some("NoSchedule")),
            Toleration {
                operator: None,
                ..pool_toleration(&other_pool(), "Equal", Some("NoSchedule"))
            },
            pool_toleration(&own, "Exists", None),
            pool_toleration(&own, "Equal", None),
            pool_toleration(&own, "Equal", Some("NoExecute")),
        ] {
            assert!(
                !whitelist_admits(&wl, std::slice::from_ref(&t)),
                "{t:?} admitted"
            );
        }
        let st = settings(true);
        assert!(foreign_pools_admitted(&ns, &st.all_dedicated_pools, Some(&own)).is_empty());
    }

    #[test]
    fn annotations_are_compact_json_in_a_fixed_key_order() {
        let ns = namespace(&workspace(), &plan("premium"), &settings(true));
        assert_eq!(
            annotation(&ns, names::DEFAULT_TOLERATIONS_ANNOTATION).unwrap(),
            concat!(
                r#"[{"effect":"NoSchedule","key":"dedicated","operator":"Equal","#,
                r#""value":"ws-01hzy3v8k2m4n6p8q0r2s4t6v8"}]"#
            )
        );
        let wl = annotation(&ns, names::TOLERATIONS_WHITELIST_ANNOTATION).unwrap();
        assert!(!wl.contains(' ') && !wl.contains('\n'));
        assert!(wl.contains(
            r#"{"effect":"NoExecute","key":"node.kubernetes.io/not-ready","operator":"Exists"}"#
        ));
        assert_eq!(parsed(&wl), toleration_whitelist(workspace().id, true));
        let with_secs = Toleration {
            toleration_seconds: Some(300),
            ..Toleration::default()
        };
        assert_eq!(
            tolerations_json(&[with_secs]),
            r#"[{"tolerationSeconds":300}]"#
        );
    }

    #[test]
    fn the_audit_flags_open_or_wildcard_whitelists() {
        let st = settings(false);
        let mut ns = namespace(&workspace(), &plan("starter"), &st);
        let set = |ns: &mut Namespace, v: &str| {
            ns.metadata
                .annotations
                .as_mut()
                .unwrap()
                .insert(names::TOLERATIONS_WHITELIST_ANNOTATION.into(), v.into());
        };
        for open in [
            "[]",
            "",
            "not json",
            r#"[{"key":"dedicated","operator":"Exists"}]"#,
        ] {
            set(&mut ns, open);
            assert_eq!(
                foreign_pools_admitted(&ns, &st.all_dedicated_pools, None),
                st.all_dedicated_pools,
                "{open:?} should admit every pool"
            );
        }
    }

    #[test]
    fn covers_is_the_upstream_superset_relation() {
        let e = |k: &str, op: &str, v: Option<&str>, eff: &str, secs: Option<i64>| Toleration {
            key: Some(k.into()).filter(|k: &String| !k.is_empty()),
            operator: Some(op.into()),
            value: v.map(String::from),
            effect: Some(eff.into()).filter(|e: &String| !e.is_empty()),
            toleration_seconds: secs,
        };
        // Empty key + Exists covers everything; an empty effect covers every effect.
        assert!(whitelist_entry_covers(
            &e("", "Exists", None, "", None),
            &e("a", "Equal", Some("b"), "NoSchedule", None)
        ));
        assert!(whitelist_entry_covers(
            &e("a", "Exists", None, "", None),
            &e("a", "Equal", Some("b"), "NoExecute", None)
        ));
        // Equal needs an Equal toleration with the same value.
        assert!(!whitelist_entry_covers(
            &e("a", "Equal", Some("b"), "NoSchedule", None),
            &e("a", "Exists", None, "NoSchedule", None)
        ));
        // A NoExecute time limit refuses longer or unlimited tolerations.
        let limited = e("a", "Exists", None, "NoExecute", Some(300));
        assert!(whitelist_entry_covers(
            &limited,
            &e("a", "Exists", None, "NoExecute", Some(60))
        ));
        assert!(!whitelist_entry_covers(
            &limited,
            &e("a", "Exists", None, "NoExecute", Some(301))
        ));
        assert!(!whitelist_entry_covers(
            &limited,
            &e("a", "Exists", None, "NoExecute", None)
        ));
        // An absent operator means Equal.
        let mut no_op = e("a", "Equal", Some("b"), "NoSchedule", None);
        no_op.operator = None;
        assert!(whitelist_entry_covers(
            &no_op,
            &e("a", "Equal", Some("b"), "NoSchedule", None)
        ));
    }

    #[test]
    fn immutable_changes_are_named() {
        let ws = workspace();
        let old = cluster(&ws, &plan("starter"), &settings(false)).spec;
        assert!(immutable_changes(&old, &old).is_empty());
        let bigger_plan = Plan {
            storage_gib: 20,
            ..plan("standard")
        };
        let bigger = cluster(&ws, &bigger_plan, &settings(false)).spec;
        assert_eq!(
            immutable_changes(&old, &bigger),
            ["spec.persistence.storageRequestSize"]
        );
        let virt = cluster(
            &ws,
            &Plan {
                storage_gib: plan("starter").storage_gib,
                ..virtual_plan()
            },
            &settings(false),
        )
        .spec;
        assert_eq!(immutable_changes(&old, &virt), ["spec.mode"]);
        assert!(immutable_changes(&ClusterSpec::default(), &old).is_empty());
    }

    #[test]
    fn the_api_service_exposes_only_the_servers_api_port() {
        let svc =
            serde_json::to_value(expose::api_service(workspace().id, Expose::NodePort)).unwrap();
        assert_eq!(svc["metadata"]["name"], "kaas-api");
        assert_eq!(
            svc["metadata"]["namespace"],
            "kaas-ws-01hzy3v8k2m4n6p8q0r2s4t6v8"
        );
        assert_eq!(svc["spec"]["type"], "NodePort");
        assert_eq!(
            svc["spec"]["selector"],
            serde_json::json!({"cluster": "ws-01hzy3v8k2m4n6p8q0r2s4t6v8", "role": "server"})
        );
        assert_eq!(
            svc["spec"]["ports"],
            serde_json::json!([{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}])
        );
    }
}
