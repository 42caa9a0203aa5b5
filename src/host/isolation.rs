//! The host objects that isolate one workspace from the others on a shared host: kaas's own
//! NetworkPolicies and its priority-class ResourceQuotas in the workspace namespace.
//!
//! ## Why kaas owns the NetworkPolicies
//! K3K's VirtualClusterPolicy controller (v1.1) writes one NetworkPolicy `k3k-<policy>` into
//! every bound namespace: all pods, ingress from anywhere, egress to `0.0.0.0/0` except the
//! pod CIDRs plus the namespace and kube-dns. NetworkPolicies are additive (a connection is
//! allowed if any policy selecting the pod allows it), so while that policy exists nothing kaas
//! adds can deny the host API server, node addresses or kubelets. kaas therefore sets
//! `disableNetworkPolicy: true` on the VirtualClusterPolicy (K3K then deletes its policy, and
//! its cluster controller deletes the standalone `k3k-<cluster>` one whenever a policy is bound)
//! and writes these instead. Every pod of the namespace — k3s servers, the shared-mode virtual
//! kubelet, virtual-mode agents and shared-mode tenant pods — is selected by
//! [`ISOLATION_POLICY`], so what it allows is the whole of what such a pod may do, plus the
//! narrow additions of [`API_SERVER_POLICY`], [`TENANT_INGRESS_POLICY`] and
//! [`NODE_AGENT_POLICY`]. The two that open something for K3K's own pods select them by
//! K3K's labels *and* the absence of `k3k.io/clusterName`: a shared-mode tenant chooses its
//! pods' labels, which the virtual kubelet copies to the host, but cannot shed that one
//! ([`k3k_own_pods`]).
//!
//! ## What is allowed
//! Ingress (every pod): from pods of the same namespace. Other workspaces' pods are in another
//! namespace: denied.
//! Ingress (shared-mode tenant pods, [`TENANT_INGRESS_POLICY`]): from addresses outside the
//! pod CIDRs — clients arriving through a NodePort or LoadBalancer a tenant opened (or a node,
//! after kube-proxy's source NAT). Other workspaces' pods are inside the pod CIDRs: still denied.
//! Ingress (k3s server pods): TCP 6443 from anywhere — the workspace's API server is reached
//! through kaas's NodePort Service by tenants, by kaas and by the host's ingress controller,
//! and may arrive source-NATed to a node's pod-network address — and etcd's TCP 2379 from the
//! K3K controller's namespace (it removes an etcd member before releasing a server pod).
//! Egress (every pod): to pods of the same namespace; to cluster DNS (kube-dns in
//! kube-system, UDP/TCP 53); and to every address except the pod CIDRs, the service CIDRs,
//! each host node's addresses (which covers the host API server on K3s, kubelets on 10250 and
//! every NodePort of other workspaces) and the configured extra denials (an API server VIP or a
//! load balancer that is not a node address).
//! Egress (shared-mode node agent only): the host API server (each node address, TCP 6443, and
//! the configured extra addresses, TCP 443/6443). The virtual kubelet creates the tenants'
//! pods on the host through it; nothing else in the namespace gets that.
//! Egress (k3s server pods only, when kaas offers the virtual clusters its OIDC issuer): the
//! issuer's address and port ([`issuer_egress`]). Each server's kube-apiserver fetches the
//! issuer's discovery document and JWKS from kaas's public URL, which on a single box is
//! usually a node address — denied above — and without them no exec kubeconfig works.
//!
//! Not a rule here, but relied on: kubelet probes come from the pod's own node, which K3s's
//! kube-router policy controller always admits (its rule "permit the traffic to pods when
//! source is the pod's local node"). Node addresses are observed; a node that joins or changes
//! address reaches the policies with the next pass over each workspace.
//!
//! ## Priority classes
//! The virtual kubelet copies any `system-*` priorityClassName of a tenant pod to the host pod,
//! which could preempt other tenants. Two scoped ResourceQuotas refuse that at admission:
//! `system-node-critical` pods: 0; `system-cluster-critical` pods: what the virtual cluster's
//! own system pods need ([`cluster_critical_pods`]).

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{
    ResourceQuota, ResourceQuotaSpec, ScopeSelector, ScopedResourceSelectorRequirement,
};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::names;
use crate::domain::netaddr::IpNet;
use crate::domain::{K3kMode, Plan, WorkspaceId};

/// The policy selecting every pod of a workspace namespace.
pub const ISOLATION_POLICY: &str = "kaas-isolation";
/// The policy opening the k3s servers' API (and etcd, to K3K).
pub const API_SERVER_POLICY: &str = "kaas-api-server";
/// The policy letting outside clients reach shared-mode tenant pods.
pub const TENANT_INGRESS_POLICY: &str = "kaas-tenant-ingress";
/// The label K3K's virtual kubelet puts on every host pod of a tenant (`translate`).
pub const K3K_CLUSTER_NAME_LABEL: &str = "k3k.io/clusterName";
/// The policy letting the shared-mode virtual kubelet reach the host API server.
pub const NODE_AGENT_POLICY: &str = "kaas-node-agent";
/// The quota refusing `system-node-critical` pods.
pub const NODE_CRITICAL_QUOTA: &str = "kaas-system-node-critical";
/// The quota bounding `system-cluster-critical` pods.
pub const CLUSTER_CRITICAL_QUOTA: &str = "kaas-system-cluster-critical";

/// The port of a kubelet (denied with every other port of a node address).
pub const KUBELET_PORT: i32 = 10250;
/// The host API server's port on a K3s node.
pub const HOST_API_PORT: i32 = 6443;
/// etcd's client port on a k3s server pod.
pub const ETCD_PORT: i32 = 2379;

/// What isolation needs to know about the host besides the workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsolationSettings {
    /// The host's pod network(s) (K3s: `--cluster-cidr`, default 10.42.0.0/16).
    pub pod_cidrs: Vec<String>,
    /// The host's Service network(s) (K3s: `--service-cidr`, default 10.43.0.0/16).
    pub service_cidrs: Vec<String>,
    /// More networks no workspace pod may reach (an API server VIP, a management network).
    pub denied_egress: Vec<String>,
    /// The host nodes' addresses (InternalIP/ExternalIP), observed.
    pub node_addresses: Vec<String>,
    /// Where K3K's controller runs (it dials etcd on server pods).
    pub k3k_namespace: String,
}

impl Default for IsolationSettings {
    fn default() -> Self {
        IsolationSettings {
            pod_cidrs: vec!["10.42.0.0/16".into()],
            service_cidrs: vec!["10.43.0.0/16".into()],
            denied_egress: Vec::new(),
            node_addresses: Vec::new(),
            k3k_namespace: "k3k-system".into(),
        }
    }
}

/// The labels of K3K's shared-mode node agent pods (`agent/shared.go`).
pub fn k3k_shared_agent_pod_labels(cluster: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("cluster".to_string(), cluster.to_string()),
        ("type".to_string(), "agent".to_string()),
        ("mode".to_string(), "shared".to_string()),
    ])
}

/// `system-cluster-critical` pods a workspace's own system needs on the host: in shared mode
/// the virtual cluster's CoreDNS (K3s gives it that class; K3K disables traefik, servicelb,
/// metrics-server and local-storage there), one replica; its rolling update has
/// `maxUnavailable: 1`, so the old pod goes before the new one and one suffices. In virtual
/// mode tenant pods run inside the agents and no host pod carries a system class: none.
pub fn cluster_critical_pods(mode: K3kMode) -> u32 {
    match mode {
        K3kMode::Shared => 1,
        K3kMode::Virtual => 0,
    }
}

/// Every network as a CIDR (`a.b.c.d/32` for a single address); entries that are no IP
/// address (host names) are left out, sorted and once each, so the objects are stable.
fn cidrs<'a>(entries: impl IntoIterator<Item = &'a String>) -> (Vec<String>, Vec<String>) {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for e in entries {
        if let Ok(net) = e.parse::<IpNet>() {
            let text = net.to_string();
            let v6_net = text
                .split('/')
                .next()
                .and_then(|a| a.parse::<IpAddr>().ok())
                .is_some_and(|a| a.is_ipv6());
            if v6_net { &mut v6 } else { &mut v4 }.push(text);
        }
    }
    for l in [&mut v4, &mut v6] {
        l.sort();
        l.dedup();
    }
    (v4, v6)
}

fn meta(ws: WorkspaceId, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(names::namespace(ws)),
        labels: Some(names::workspace_labels(ws)),
        ..ObjectMeta::default()
    }
}

fn selector(labels: BTreeMap<String, String>) -> LabelSelector {
    LabelSelector {
        match_labels: (!labels.is_empty()).then_some(labels),
        ..LabelSelector::default()
    }
}

/// K3K's own pods of the workspace carrying `labels`, and never a tenant's. In shared mode
/// the virtual kubelet copies a tenant pod's labels to its host pod unchanged and only adds
/// [`K3K_CLUSTER_NAME_LABEL`] (`translate.ToHostTranslator.TranslateTo`, called by the
/// provider's `createPod`): a tenant can label a pod `cluster=<n>, type=agent, mode=shared`
/// or `cluster=<n>, role=server`, so those labels alone would hand it the node agent's or the
/// server's openings. K3K's server StatefulSet and node-agent DaemonSet pods carry only
/// `cluster`/`role` and `cluster`/`type`/`mode`, never [`K3K_CLUSTER_NAME_LABEL`], which every
/// tenant host pod has (the virtual kubelet sets it last, over anything the tenant wrote).
fn k3k_own_pods(labels: BTreeMap<String, String>) -> LabelSelector {
    LabelSelector {
        match_labels: (!labels.is_empty()).then_some(labels),
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: K3K_CLUSTER_NAME_LABEL.to_string(),
            operator: "DoesNotExist".to_string(),
            values: None,
        }]),
    }
}

fn same_namespace() -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        pod_selector: Some(LabelSelector::default()),
        ..NetworkPolicyPeer::default()
    }
}

fn namespace_named(name: &str) -> LabelSelector {
    selector(BTreeMap::from([(
        "kubernetes.io/metadata.name".to_string(),
        name.to_string(),
    )]))
}

fn block(cidr: &str, except: Vec<String>) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        ip_block: Some(IPBlock {
            cidr: cidr.to_string(),
            except: (!except.is_empty()).then_some(except),
        }),
        ..NetworkPolicyPeer::default()
    }
}

fn tcp(port: i32) -> NetworkPolicyPort {
    port_of("TCP", port)
}

fn port_of(protocol: &str, port: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        protocol: Some(protocol.to_string()),
        port: Some(IntOrString::Int(port)),
        ..NetworkPolicyPort::default()
    }
}

/// "Anywhere but these", as one IPv4 and one IPv6 block.
fn everywhere_except(v4: Vec<String>, v6: Vec<String>) -> Vec<NetworkPolicyPeer> {
    vec![block("0.0.0.0/0", v4), block("::/0", v6)]
}

/// [`ISOLATION_POLICY`]: every pod of the namespace, both directions.
pub fn isolation_policy(ws: WorkspaceId, s: &IsolationSettings) -> NetworkPolicy {
    let (deny_v4, deny_v6) = cidrs(
        s.pod_cidrs
            .iter()
            .chain(&s.service_cidrs)
            .chain(&s.node_addresses)
            .chain(&s.denied_egress),
    );
    let mut egress_to = vec![same_namespace()];
    egress_to.extend(everywhere_except(deny_v4, deny_v6));
    let dns = NetworkPolicyEgressRule {
        to: Some(vec![NetworkPolicyPeer {
            namespace_selector: Some(namespace_named("kube-system")),
            pod_selector: Some(selector(BTreeMap::from([(
                "k8s-app".to_string(),
                "kube-dns".to_string(),
            )]))),
            ..NetworkPolicyPeer::default()
        }]),
        ports: Some(vec![port_of("UDP", 53), port_of("TCP", 53)]),
    };
    NetworkPolicy {
        metadata: meta(ws, ISOLATION_POLICY),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector::default()),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![same_namespace()]),
                ports: None,
            }]),
            egress: Some(vec![
                NetworkPolicyEgressRule {
                    to: Some(egress_to),
                    ports: None,
                },
                dns,
            ]),
        }),
    }
}

/// [`TENANT_INGRESS_POLICY`]: shared-mode tenant pods (K3K's virtual kubelet labels every host
/// pod it makes `k3k.io/clusterName`) take connections from outside the pod network: the
/// clients of the NodePort and LoadBalancer Services their tenants opened.
pub fn tenant_ingress_policy(ws: WorkspaceId, s: &IsolationSettings) -> NetworkPolicy {
    let (pod_v4, pod_v6) = cidrs(&s.pod_cidrs);
    NetworkPolicy {
        metadata: meta(ws, TENANT_INGRESS_POLICY),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(selector(BTreeMap::from([(
                K3K_CLUSTER_NAME_LABEL.to_string(),
                names::cluster(ws),
            )]))),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(everywhere_except(pod_v4, pod_v6)),
                ports: None,
            }]),
            egress: None,
        }),
    }
}

/// One peer per network.
fn ip_peers(v4: Vec<String>, v6: Vec<String>) -> Vec<NetworkPolicyPeer> {
    v4.iter().chain(&v6).map(|n| block(n, Vec::new())).collect()
}

/// The k3s servers' way to kaas's OIDC issuer at `issuer_url`, when the isolation rules deny
/// it: None when there is nothing to add (no usable URL).
///
/// The issuer's host is an IP address: that address (`/32` or `/128`) on the URL's port (443
/// by default). It is a name: kaas cannot resolve it for the host's pods here (a name's
/// answer may differ inside the cluster and change later), so the rule opens that port on
/// every host node's address — where kaas listens on a single box — and nothing else; a name
/// resolving anywhere outside the pod and Service networks, the nodes and
/// `isolation.denied_egress` is reachable by the isolation rule already. Never ports 6443
/// and 10250 on a node: kaas cannot listen there next to K3s, and they are the host API
/// server's and the kubelet's.
pub fn issuer_egress(issuer_url: &str, s: &IsolationSettings) -> Option<NetworkPolicyEgressRule> {
    let url = url::Url::parse(issuer_url).ok()?;
    let port = i32::from(url.port_or_known_default()?);
    let to = match url.host()? {
        url::Host::Ipv4(ip) => vec![block(&format!("{ip}/32"), Vec::new())],
        url::Host::Ipv6(ip) => vec![block(&format!("{ip}/128"), Vec::new())],
        url::Host::Domain(_) if port == HOST_API_PORT || port == KUBELET_PORT => return None,
        url::Host::Domain(_) => {
            let (v4, v6) = cidrs(&s.node_addresses);
            ip_peers(v4, v6)
        }
    };
    (!to.is_empty()).then(|| NetworkPolicyEgressRule {
        to: Some(to),
        ports: Some(vec![tcp(port)]),
    })
}

/// [`API_SERVER_POLICY`]: the k3s servers' 6443 from anywhere, etcd from K3K; and their way
/// out to kaas's OIDC issuer (`issuer_url`, when kaas offers one: [`issuer_egress`]).
pub fn api_server_policy(
    ws: WorkspaceId,
    s: &IsolationSettings,
    issuer_url: Option<&str>,
) -> NetworkPolicy {
    let issuer = issuer_url.and_then(|u| issuer_egress(u, s));
    let mut policy_types = vec!["Ingress".to_string()];
    if issuer.is_some() {
        policy_types.push("Egress".into());
    }
    NetworkPolicy {
        metadata: meta(ws, API_SERVER_POLICY),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(k3k_own_pods(names::k3k_server_pod_labels(&names::cluster(
                ws,
            )))),
            policy_types: Some(policy_types),
            ingress: Some(vec![
                NetworkPolicyIngressRule {
                    from: None,
                    ports: Some(vec![tcp(names::K3S_SERVER_PORT)]),
                },
                NetworkPolicyIngressRule {
                    from: Some(vec![NetworkPolicyPeer {
                        namespace_selector: Some(namespace_named(&s.k3k_namespace)),
                        ..NetworkPolicyPeer::default()
                    }]),
                    ports: Some(vec![tcp(ETCD_PORT)]),
                },
            ]),
            egress: issuer.map(|rule| vec![rule]),
        }),
    }
}

/// [`NODE_AGENT_POLICY`]: the shared-mode virtual kubelet's way to the host API server.
pub fn node_agent_policy(ws: WorkspaceId, s: &IsolationSettings) -> NetworkPolicy {
    let (nodes_v4, nodes_v6) = cidrs(&s.node_addresses);
    let (extra_v4, extra_v6) = cidrs(&s.denied_egress);
    let mut egress = Vec::new();
    let nodes = ip_peers(nodes_v4, nodes_v6);
    if !nodes.is_empty() {
        egress.push(NetworkPolicyEgressRule {
            to: Some(nodes),
            ports: Some(vec![tcp(HOST_API_PORT)]),
        });
    }
    let extra = ip_peers(extra_v4, extra_v6);
    if !extra.is_empty() {
        egress.push(NetworkPolicyEgressRule {
            to: Some(extra),
            ports: Some(vec![tcp(443), tcp(HOST_API_PORT)]),
        });
    }
    NetworkPolicy {
        metadata: meta(ws, NODE_AGENT_POLICY),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(k3k_own_pods(k3k_shared_agent_pod_labels(&names::cluster(
                ws,
            )))),
            policy_types: Some(vec!["Egress".into()]),
            ingress: None,
            // An empty list under policyTypes Egress would deny, not allow: but this policy
            // only ever adds to ISOLATION_POLICY, which selects the same pods.
            egress: Some(egress),
        }),
    }
}

/// The workspace's NetworkPolicies, in apply order; `issuer_url`: kaas's OIDC issuer as the
/// virtual clusters are told to trust it, if they are.
pub fn network_policies(
    ws: WorkspaceId,
    s: &IsolationSettings,
    issuer_url: Option<&str>,
) -> Vec<NetworkPolicy> {
    vec![
        isolation_policy(ws, s),
        api_server_policy(ws, s, issuer_url),
        tenant_ingress_policy(ws, s),
        node_agent_policy(ws, s),
    ]
}

fn priority_quota(ws: WorkspaceId, name: &str, class: &str, pods: u32) -> ResourceQuota {
    ResourceQuota {
        metadata: meta(ws, name),
        spec: Some(ResourceQuotaSpec {
            hard: Some(BTreeMap::from([(
                "pods".to_string(),
                Quantity(pods.to_string()),
            )])),
            scope_selector: Some(ScopeSelector {
                match_expressions: Some(vec![ScopedResourceSelectorRequirement {
                    scope_name: "PriorityClass".into(),
                    operator: "In".into(),
                    values: Some(vec![class.to_string()]),
                }]),
            }),
            scopes: None,
        }),
        status: None,
    }
}

/// The priority-class quotas of a workspace namespace.
pub fn priority_quotas(ws: WorkspaceId, plan: &Plan) -> Vec<ResourceQuota> {
    vec![
        priority_quota(ws, NODE_CRITICAL_QUOTA, "system-node-critical", 0),
        priority_quota(
            ws,
            CLUSTER_CRITICAL_QUOTA,
            "system-cluster-critical",
            cluster_critical_pods(plan.k3k_mode),
        ),
    ]
}

/// The annotation in which K3s records the arguments each node's k3s was started with (its
/// config files included, secrets masked), as a JSON list: `["server","--disable-network-policy"]`.
pub const K3S_NODE_ARGS_ANNOTATION: &str = "k3s.io/node-args";
/// The K3s flag that turns its embedded network policy controller (kube-router's) off.
pub const K3S_DISABLE_NETWORK_POLICY: &str = "--disable-network-policy";

/// Whether the host enforces NetworkPolicy, as far as its nodes tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enforcement {
    /// Every node is K3s with its network policy controller on.
    Enforced,
    /// These K3s nodes run with `--disable-network-policy`.
    Disabled(Vec<String>),
    /// Not every node is K3s: enforcement is the CNI's, which the nodes do not show.
    Unknown,
}

/// What to tell an operator whose host does not enforce NetworkPolicy.
pub const NETWORK_POLICY_FIX: &str = "the host does not enforce NetworkPolicy, so workspaces can reach each other's pods, the host API server and the kubelets: remove `disable-network-policy` from K3s's configuration (/etc/rancher/k3s/config.yaml[.d]) or its command line, and restart K3s";

/// Reads enforcement off the nodes' names and `k3s.io/node-args` annotations.
pub fn network_policy_enforcement<'a>(
    nodes: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> Enforcement {
    let mut disabled = Vec::new();
    let mut any = false;
    for (name, args) in nodes {
        any = true;
        let Some(args) = args.and_then(|a| serde_json::from_str::<Vec<String>>(a).ok()) else {
            return Enforcement::Unknown;
        };
        // The flag alone, or with a value other than false; a later `=false` turns it back on.
        let mut off = false;
        for a in &args {
            if a == K3S_DISABLE_NETWORK_POLICY {
                off = true;
            } else if let Some(v) = a
                .strip_prefix(K3S_DISABLE_NETWORK_POLICY)
                .and_then(|v| v.strip_prefix('='))
            {
                off = v != "false";
            }
        }
        if off {
            disabled.push(name.to_string());
        }
    }
    match (any, disabled.is_empty()) {
        (false, _) => Enforcement::Unknown,
        (true, true) => Enforcement::Enforced,
        (true, false) => Enforcement::Disabled(disabled),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn settings() -> IsolationSettings {
        IsolationSettings {
            node_addresses: vec![
                "192.168.1.10".into(),
                "node-1".into(),
                "192.168.1.10".into(),
                "fd00::10".into(),
            ],
            denied_egress: vec!["10.0.0.100".into()],
            ..IsolationSettings::default()
        }
    }

    fn ws() -> WorkspaceId {
        "ws_01hzy3v8k2m4n6p8q0r2s4t6v8".parse().unwrap()
    }

    #[test]
    fn egress_everywhere_but_pods_services_nodes_and_extra() {
        let p = isolation_policy(ws(), &settings());
        let spec = p.spec.unwrap();
        let egress = spec.egress.unwrap();
        let peers = egress[0].to.as_ref().unwrap();
        assert!(peers[0].pod_selector.is_some() && peers[0].namespace_selector.is_none());
        let v4 = peers[1].ip_block.as_ref().unwrap();
        assert_eq!(v4.cidr, "0.0.0.0/0");
        assert_eq!(
            v4.except.clone().unwrap(),
            vec![
                "10.0.0.100/32",
                "10.42.0.0/16",
                "10.43.0.0/16",
                "192.168.1.10/32"
            ]
        );
        let v6 = peers[2].ip_block.as_ref().unwrap();
        assert_eq!(v6.except.clone().unwrap(), vec!["fd00::10/128"]);
        // Ingress: the namespace alone; tenant pods also from outside the pod network.
        let from = spec.ingress.unwrap()[0].from.clone().unwrap();
        assert_eq!(from, vec![same_namespace()]);
        let tenant = tenant_ingress_policy(ws(), &settings()).spec.unwrap();
        let from = tenant.ingress.unwrap()[0].from.clone().unwrap();
        assert_eq!(
            from[0].ip_block.as_ref().unwrap().except.clone().unwrap(),
            vec!["10.42.0.0/16"]
        );
        assert_eq!(spec.pod_selector, Some(LabelSelector::default()));
    }

    #[test]
    fn the_node_agent_alone_reaches_the_host_api() {
        let p = node_agent_policy(ws(), &settings());
        let spec = p.spec.unwrap();
        let rules = spec.egress.unwrap();
        assert_eq!(rules[0].ports.clone().unwrap(), vec![tcp(HOST_API_PORT)]);
        let to: Vec<_> = rules[0]
            .to
            .clone()
            .unwrap()
            .into_iter()
            .map(|p| p.ip_block.unwrap().cidr)
            .collect();
        assert_eq!(to, vec!["192.168.1.10/32", "fd00::10/128"]);
        let labels = spec.pod_selector.unwrap().match_labels.unwrap();
        assert_eq!(labels.get("mode").map(String::as_str), Some("shared"));
    }

    /// What the API server does with a selector, for the operators kaas uses.
    fn selects(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
        sel.match_labels
            .iter()
            .flatten()
            .all(|(k, v)| labels.get(k) == Some(v))
            && sel
                .match_expressions
                .iter()
                .flatten()
                .all(|e| match e.operator.as_str() {
                    "DoesNotExist" => !labels.contains_key(&e.key),
                    "Exists" => labels.contains_key(&e.key),
                    other => panic!("operator {other} not expected"),
                })
    }

    #[test]
    fn only_k3ks_own_pods_get_the_agents_and_the_servers_openings() {
        let cluster = names::cluster(ws());
        let agent = node_agent_policy(ws(), &settings()).spec.unwrap();
        let agent = agent.pod_selector.unwrap();
        let server = api_server_policy(ws(), &settings(), None).spec.unwrap();
        let server = server.pod_selector.unwrap();
        // K3K's node-agent DaemonSet and server StatefulSet pods (agent/shared.go, server/server.go).
        let agent_pod = k3k_shared_agent_pod_labels(&cluster);
        let server_pod = names::k3k_server_pod_labels(&cluster);
        assert!(selects(&agent, &agent_pod));
        assert!(selects(&server, &server_pod));
        assert!(!selects(&agent, &server_pod) && !selects(&server, &agent_pod));
        // A tenant pod labelled like them: the virtual kubelet adds k3k.io/clusterName.
        for (sel, labels) in [(&agent, agent_pod), (&server, server_pod)] {
            let mut spoofed = labels;
            spoofed.insert(K3K_CLUSTER_NAME_LABEL.into(), cluster.clone());
            spoofed.insert("app".into(), "web".into());
            assert!(!selects(sel, &spoofed), "{spoofed:?} selected");
        }
    }

    /// (peer CIDRs, ports) of the server policy's egress for an issuer at `url`.
    fn issuer_rule(url: &str) -> Option<(Vec<String>, Vec<NetworkPolicyPort>)> {
        let spec = api_server_policy(ws(), &settings(), Some(url))
            .spec
            .unwrap();
        let egress = spec.egress?;
        assert_eq!(egress.len(), 1);
        assert_eq!(spec.policy_types.unwrap(), vec!["Ingress", "Egress"]);
        let rule = egress.into_iter().next().unwrap();
        let to = rule.to.unwrap();
        Some((
            to.into_iter().map(|p| p.ip_block.unwrap().cidr).collect(),
            rule.ports.unwrap(),
        ))
    }

    #[test]
    fn the_servers_alone_reach_the_issuer_at_its_address_and_port() {
        assert_eq!(
            issuer_rule("https://192.168.1.10:8443"),
            Some((vec!["192.168.1.10/32".into()], vec![tcp(8443)]))
        );
        assert_eq!(
            issuer_rule("https://[fd00::10]"),
            Some((vec!["fd00::10/128".into()], vec![tcp(443)]))
        );
        // A name: the nodes' addresses on that port, never the host API's or the kubelets'.
        assert_eq!(
            issuer_rule("https://kaas.example.com:9443"),
            Some((
                vec!["192.168.1.10/32".into(), "fd00::10/128".into()],
                vec![tcp(9443)]
            ))
        );
        assert_eq!(issuer_rule("https://kaas.example.com:6443"), None);
        assert_eq!(issuer_rule("https://kaas.example.com:10250"), None);
        // Without an issuer the servers' policy opens nothing outward.
        let spec = api_server_policy(ws(), &settings(), None).spec.unwrap();
        assert_eq!(spec.policy_types.unwrap(), vec!["Ingress"]);
        assert!(spec.egress.is_none());
        // No other policy carries it.
        let url = Some("https://192.168.1.10:8443");
        for p in network_policies(ws(), &settings(), url) {
            if p.metadata.name.as_deref() != Some(API_SERVER_POLICY) {
                let text = serde_json::to_string(&p).unwrap();
                assert!(!text.contains("8443"), "{text}");
            }
        }
    }

    #[test]
    fn priority_quotas_follow_the_mode() {
        let plan = crate::domain::plan::default_plans().remove(0);
        let q = priority_quotas(ws(), &plan);
        assert_eq!(
            q[0].spec.as_ref().unwrap().hard.as_ref().unwrap()["pods"].0,
            "0"
        );
        assert_eq!(
            cluster_critical_pods(K3kMode::Virtual),
            0,
            "virtual mode runs no tenant pod on the host"
        );
    }

    #[test]
    fn enforcement_is_read_off_k3s_node_args() {
        let on = r#"["server","--write-kubeconfig-mode","0644"]"#;
        let off = r#"["server","--disable-network-policy"]"#;
        let off_eq = r#"["server","--disable-network-policy=true"]"#;
        let back_on = r#"["server","--disable-network-policy","--disable-network-policy=false"]"#;
        assert_eq!(
            network_policy_enforcement([("a", Some(on)), ("b", Some(r#"["agent"]"#))]),
            Enforcement::Enforced
        );
        assert_eq!(
            network_policy_enforcement([("a", Some(off)), ("b", Some(off_eq))]),
            Enforcement::Disabled(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            network_policy_enforcement([("a", Some(back_on))]),
            Enforcement::Enforced
        );
        assert_eq!(
            network_policy_enforcement([("a", Some(on)), ("b", None)]),
            Enforcement::Unknown,
            "a node that is not K3s says nothing about its CNI"
        );
        assert_eq!(network_policy_enforcement([]), Enforcement::Unknown);
    }
}
