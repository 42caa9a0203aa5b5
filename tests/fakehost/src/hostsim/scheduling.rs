//! Which nodes a pod may run on, as kube-scheduler's filters and the DaemonSet controller's
//! `nodeShouldRunDaemonPod` decide it: `nodeSelector`, required node affinity (matchExpressions
//! on labels, matchFields on `metadata.name`), and the node's NoSchedule/NoExecute taints
//! against the pod's tolerations (`v1.Toleration.ToleratesTaint`). A cordoned node
//! (`spec.unschedulable`) counts as its `node.kubernetes.io/unschedulable` taint.

use serde_json::{Map, Value, json};

use super::text;

pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

/// `ToleratesTaint`: effect (empty tolerates all), key (empty with Exists tolerates all),
/// then Exists or Equal on the value.
pub fn tolerates(toleration: &Value, taint: &Value) -> bool {
    let field = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let effect = field(toleration, "effect");
    if !effect.is_empty() && effect != field(taint, "effect") {
        return false;
    }
    let key = field(toleration, "key");
    if !key.is_empty() && key != field(taint, "key") {
        return false;
    }
    match field(toleration, "operator").as_str() {
        "Exists" => true,
        "" | "Equal" => field(toleration, "value") == field(taint, "value"),
        _ => false,
    }
}

/// The node's taints, with `spec.unschedulable` as the taint the node controller adds.
pub fn taints(node: &Value) -> Vec<Value> {
    let mut taints = node
        .pointer("/spec/taints")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let cordoned = node.pointer("/spec/unschedulable") == Some(&json!(true));
    if cordoned
        && !taints
            .iter()
            .any(|t| text(t, "/key") == TAINT_UNSCHEDULABLE)
    {
        taints.push(json!({"key": TAINT_UNSCHEDULABLE, "effect": "NoSchedule"}));
    }
    taints
}

/// The first taint with one of `effects` that no toleration tolerates.
pub fn untolerated(node: &Value, tolerations: &[Value], effects: &[&str]) -> Option<Value> {
    taints(node).into_iter().find(|taint| {
        effects.contains(&text(taint, "/effect"))
            && !tolerations.iter().any(|t| tolerates(t, taint))
    })
}

fn label<'a>(node: &'a Value, key: &str) -> Option<&'a str> {
    node.pointer("/metadata/labels")
        .and_then(|l| l.get(key))
        .and_then(Value::as_str)
}

fn values(requirement: &Value) -> Vec<String> {
    requirement
        .get("values")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// One NodeSelectorRequirement against the value found (a label, or a field).
fn requirement_holds(requirement: &Value, found: Option<&str>) -> bool {
    let wanted = values(requirement);
    let number = |s: &str| s.parse::<i64>().ok();
    match text(requirement, "/operator") {
        "In" => found.is_some_and(|v| wanted.iter().any(|w| w == v)),
        "NotIn" => found.is_none_or(|v| !wanted.iter().any(|w| w == v)),
        "Exists" => found.is_some(),
        "DoesNotExist" => found.is_none(),
        "Gt" | "Lt" => {
            let (Some(have), Some(bound)) = (
                found.and_then(number),
                wanted.first().and_then(|w| number(w)),
            ) else {
                return false;
            };
            if text(requirement, "/operator") == "Gt" {
                have > bound
            } else {
                have < bound
            }
        }
        _ => false,
    }
}

/// A NodeSelectorTerm: all of its requirements; a term without any matches nothing.
fn term_matches(node: &Value, term: &Value) -> bool {
    let list = |key: &str| {
        term.get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let (expressions, fields) = (list("matchExpressions"), list("matchFields"));
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    expressions
        .iter()
        .all(|r| requirement_holds(r, label(node, text(r, "/key"))))
        && fields.iter().all(|r| {
            let found = (text(r, "/key") == "metadata.name").then(|| text(node, "/metadata/name"));
            requirement_holds(r, found)
        })
}

/// `nodeSelector` (every pair) and required node affinity (any term).
pub fn fits_affinity(node: &Value, pod_spec: &Value) -> bool {
    let selector: Map<String, Value> = pod_spec
        .get("nodeSelector")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let selected = selector.iter().all(|(k, v)| label(node, k) == v.as_str());
    let required = pod_spec.pointer(
        "/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms",
    );
    let affine = match required.and_then(Value::as_array) {
        None => true,
        Some(terms) => terms.iter().any(|t| term_matches(node, t)),
    };
    selected && affine
}

pub fn tolerations(pod_spec: &Value) -> Vec<Value> {
    pod_spec
        .get("tolerations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// Whether kube-scheduler may bind a pod with `pod_spec` to `node`.
pub fn schedulable(node: &Value, pod_spec: &Value) -> bool {
    fits_affinity(node, pod_spec)
        && untolerated(node, &tolerations(pod_spec), &["NoSchedule", "NoExecute"]).is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(labels: Value, taints: Value) -> Value {
        json!({"metadata": {"name": "n1", "labels": labels}, "spec": {"taints": taints}})
    }

    #[test]
    fn taints_need_a_matching_toleration() {
        let n = node(
            json!({}),
            json!([{"key": "dedicated", "value": "ws-1", "effect": "NoSchedule"}]),
        );
        assert!(!schedulable(&n, &json!({})));
        let exact = json!({"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ws-1", "effect": "NoSchedule"}]});
        assert!(schedulable(&n, &exact));
        let other = json!({"tolerations": [{"key": "dedicated", "value": "ws-2"}]});
        assert!(!schedulable(&n, &other));
        let everything = json!({"tolerations": [{"operator": "Exists"}]});
        assert!(schedulable(&n, &everything));
        // PreferNoSchedule does not keep a pod away.
        let soft = node(
            json!({}),
            json!([{"key": "k", "effect": "PreferNoSchedule"}]),
        );
        assert!(schedulable(&soft, &json!({})));
    }

    #[test]
    fn node_selector_and_required_affinity() {
        let n = node(json!({"pool": "a", "size": "3"}), json!([]));
        assert!(fits_affinity(&n, &json!({"nodeSelector": {"pool": "a"}})));
        assert!(!fits_affinity(&n, &json!({"nodeSelector": {"pool": "b"}})));
        let affinity = |expr: Value| json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [expr]}}}});
        assert!(fits_affinity(
            &n,
            &affinity(
                json!({"matchExpressions": [{"key": "pool", "operator": "In", "values": ["a", "c"]}]})
            )
        ));
        assert!(!fits_affinity(
            &n,
            &affinity(
                json!({"matchExpressions": [{"key": "pool", "operator": "NotIn", "values": ["a"]}]})
            )
        ));
        assert!(fits_affinity(
            &n,
            &affinity(
                json!({"matchExpressions": [{"key": "size", "operator": "Gt", "values": ["2"]}]})
            )
        ));
        assert!(fits_affinity(
            &n,
            &affinity(
                json!({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]})
            )
        ));
        assert!(!fits_affinity(&n, &affinity(json!({}))));
    }

    #[test]
    fn a_cordoned_node_is_tainted_unschedulable() {
        let n = json!({"metadata": {"name": "n"}, "spec": {"unschedulable": true}});
        assert!(!schedulable(&n, &json!({})));
        let tolerant = json!({"tolerations": [{"key": TAINT_UNSCHEDULABLE, "operator": "Exists", "effect": "NoSchedule"}]});
        assert!(schedulable(&n, &tolerant));
    }
}
