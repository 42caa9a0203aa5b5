//! The toleration rules of workspace namespaces: the toleration of a workspace's dedicated
//! nodes, the tolerations Kubernetes and a virtual cluster's system pods carry, the
//! PodTolerationRestriction whitelist built from them (and the superset check it uses), and
//! the compact JSON the namespace annotations hold. Pure functions; `desired` puts them on
//! the namespace and `doctor` probes the admission plugin with them.

use k8s_openapi::api::core::v1::{Namespace, Toleration};
use serde_json::{Map, Value};

use super::names;
use crate::domain::WorkspaceId;

/// The toleration of a workspace's own dedicated nodes: `dedicated=ws-<short>:NoSchedule`.
pub fn dedicated_toleration(ws: WorkspaceId) -> Toleration {
    Toleration {
        key: Some(names::DEDICATED_TAINT_KEY.into()),
        operator: Some("Equal".into()),
        value: Some(names::node_pool(ws)),
        effect: Some("NoSchedule".into()),
        toleration_seconds: None,
    }
}

/// Tolerations Kubernetes itself puts on pods, which every namespace must keep admitting:
/// - DefaultTolerationSeconds adds `not-ready` and `unreachable` (NoExecute, 300 s);
/// - the DaemonSet controller adds those two without a time limit, plus `disk-pressure`,
///   `memory-pressure`, `pid-pressure`, `unschedulable` and (host-network pods)
///   `network-unavailable`, all NoSchedule;
/// - PodTolerationRestriction itself adds `memory-pressure` to every non-BestEffort pod.
///
/// Each entry is `Exists` without `tolerationSeconds`: a whitelist entry with seconds only
/// admits tolerations with at most that many seconds, which would refuse the DaemonSet's
/// unlimited ones. None of these keys can reach a dedicated node's `dedicated` taint.
pub fn system_tolerations() -> Vec<Toleration> {
    const SYSTEM: [(&str, &str); 7] = [
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
        ("node.kubernetes.io/network-unavailable", "NoSchedule"),
    ];
    SYSTEM
        .iter()
        .map(|(key, effect)| Toleration {
            key: Some((*key).into()),
            operator: Some("Exists".into()),
            effect: Some((*effect).into()),
            value: None,
            toleration_seconds: None,
        })
        .collect()
}

/// Tolerations a virtual cluster's own system pods carry, which K3K's virtual kubelet copies
/// unchanged onto their host pods (shared mode): K3s's CoreDNS (and metrics-server, local-path)
/// tolerate `CriticalAddonsOnly` (Exists, any effect) and `node-role.kubernetes.io/
/// control-plane` / `master` (Exists, NoSchedule). Without them PodTolerationRestriction refuses
/// CoreDNS's host pod and the workspace has no DNS.
///
/// Admitting them keeps dedicated-node isolation: none of these keys is `dedicated`, and a
/// toleration only ever matches a taint of its own key, so no pod gains a way onto another
/// workspace's pool. What they do allow: tenant pods that carry them may land on nodes
/// tainted with those keys — K3s taints none by default; an operator who taints the server
/// node `CriticalAddonsOnly` or `control-plane` to keep workloads off it should keep it out
/// of the shared pool with a node selector instead (kaas's shared workspaces select no node).
pub fn virtual_cluster_system_tolerations() -> Vec<Toleration> {
    let exists = |key: &str, effect: Option<&str>| Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: effect.map(Into::into),
        value: None,
        toleration_seconds: None,
    };
    vec![
        exists("CriticalAddonsOnly", None),
        exists("node-role.kubernetes.io/control-plane", Some("NoSchedule")),
        exists("node-role.kubernetes.io/master", Some("NoSchedule")),
    ]
}

/// The namespace's toleration whitelist: its own dedicated toleration (if any), then the
/// system ones (Kubernetes' own, then the virtual cluster's system pods').
///
/// The own toleration is listed twice: with `operator: Equal` (the default toleration's
/// form) and without an operator. NB: upstream's check admits an operator-less toleration
/// only through an identical entry (an `Equal` entry demands `operator: Equal` literally),
/// and the merge then keeps the pod's operator-less copy instead of the default, so a
/// tenant who writes `{key: dedicated, value: ws-…, effect: NoSchedule}` would be refused.
///
/// NB: never whitelist `dedicated` with `Exists` (or without a value): a whitelist entry
/// with `Exists` covers every value of its key, i.e. every other workspace's pool. And the
/// list is never empty: PodTolerationRestriction treats an empty whitelist (`[]` or `""`)
/// as "no restriction at all".
pub fn toleration_whitelist(ws: WorkspaceId, dedicated: bool) -> Vec<Toleration> {
    let mut list = Vec::new();
    if dedicated {
        let own = dedicated_toleration(ws);
        let without_operator = Toleration {
            operator: None,
            ..own.clone()
        };
        list.extend([own, without_operator]);
    }
    list.extend(system_tolerations());
    list.extend(virtual_cluster_system_tolerations());
    list
}

/// Whether whitelist entry `w` covers toleration `t`: a port of Kubernetes'
/// `tolerations/merge.IsSuperset`, which PodTolerationRestriction's whitelist check uses.
pub fn whitelist_entry_covers(w: &Toleration, t: &Toleration) -> bool {
    let s = |o: &Option<String>| o.clone().unwrap_or_default();
    let (wk, tk, wop, top) = (s(&w.key), s(&t.key), s(&w.operator), s(&t.operator));
    let (we, te) = (s(&w.effect), s(&t.effect));
    // Go compares its value types, where an absent string is "": normalise before comparing.
    if (&wk, &wop, s(&w.value), &we, w.toleration_seconds)
        == (&tk, &top, s(&t.value), &te, t.toleration_seconds)
    {
        return true;
    }
    // An empty key with Exists matches every key.
    if tk != wk && (!wk.is_empty() || wop != "Exists") {
        return false;
    }
    // An empty effect matches every effect.
    if te != we && !we.is_empty() {
        return false;
    }
    // A NoExecute entry with a time limit covers only tolerations with at most that limit.
    if we == "NoExecute"
        && let Some(max) = w.toleration_seconds
        && t.toleration_seconds.is_none_or(|secs| secs > max)
    {
        return false;
    }
    match wop.as_str() {
        // An empty operator means Equal.
        "" | "Equal" => top == "Equal" && s(&t.value) == s(&w.value),
        "Exists" => true,
        _ => false,
    }
}

/// Whether a pod with `tolerations` passes `whitelist` (Kubernetes' `VerifyAgainstWhitelist`;
/// note that an empty whitelist admits everything).
pub fn whitelist_admits(whitelist: &[Toleration], tolerations: &[Toleration]) -> bool {
    whitelist.is_empty()
        || tolerations
            .iter()
            .all(|t| whitelist.iter().any(|w| whitelist_entry_covers(w, t)))
}

/// Audits an observed namespace: the pools among `all_dedicated_pools` (other than
/// `own_pool`) whose toleration its whitelist admits. Empty means isolated. A missing or
/// empty whitelist admits everything; an unparsable one makes the plugin refuse every pod.
/// Neither is what kaas writes, so both report every foreign pool.
pub fn foreign_pools_admitted(
    ns: &Namespace,
    all_dedicated_pools: &[String],
    own_pool: Option<&str>,
) -> Vec<String> {
    let whitelist: Vec<Toleration> = ns
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(names::TOLERATIONS_WHITELIST_ANNOTATION))
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_default();
    all_dedicated_pools
        .iter()
        .filter(|pool| Some(pool.as_str()) != own_pool)
        .filter(|pool| {
            let t = Toleration {
                key: Some(names::DEDICATED_TAINT_KEY.into()),
                operator: Some("Equal".into()),
                value: Some((*pool).clone()),
                effect: Some("NoSchedule".into()),
                toleration_seconds: None,
            };
            whitelist_admits(&whitelist, &[t])
        })
        .cloned()
        .collect()
}

/// Tolerations as the compact JSON array the annotations hold. Built as a `Value` with keys
/// in a fixed order, so it cannot fail and is byte-identical on every reconcile.
pub fn tolerations_json(tolerations: &[Toleration]) -> String {
    let items = tolerations
        .iter()
        .map(|t| {
            let text = |v: &Option<String>| v.clone().map(Value::String);
            // Alphabetical, as Kubernetes itself would serialize a v1.Toleration.
            let fields = [
                ("effect", text(&t.effect)),
                ("key", text(&t.key)),
                ("operator", text(&t.operator)),
                ("tolerationSeconds", t.toleration_seconds.map(Value::from)),
                ("value", text(&t.value)),
            ];
            let m: Map<String, Value> = fields
                .into_iter()
                .filter_map(|(k, v)| Some((k.to_string(), v?)))
                .collect();
            Value::Object(m)
        })
        .collect();
    Value::Array(items).to_string()
}
