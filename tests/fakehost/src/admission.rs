//! admission: the kube-apiserver pod admission plugins that decide tenant placement,
//! PodTolerationRestriction and DefaultTolerationSeconds, mirroring upstream
//! `plugin/pkg/admission/podtolerationrestriction`, `plugin/pkg/admission/defaulttolerationseconds`
//! and `pkg/util/tolerations` (v1.33), quirks included.
//!
//! Real ordering (kube-apiserver's recommended plugin order): LimitRanger (may add resource
//! requests, making the pod non-BestEffort) → … → DefaultTolerationSeconds →
//! PodTolerationRestriction. Run them in that order.
//!
//! Upstream behaviours worth knowing (all mirrored, all security-relevant for kaas):
//! - A whitelist annotation that is present but empty (`[]` or `""`) imposes NO restriction:
//!   upstream only verifies `if len(whitelist) > 0`, and a present annotation also stops the
//!   fallback to the cluster-wide whitelist.
//! - Every non-BestEffort pod gets `node.kubernetes.io/memory-pressure:NoSchedule` (Exists)
//!   merged in, so a whitelist must admit it, as well as DefaultTolerationSeconds' two.
//! - Namespace default tolerations are merged only on create; the whitelist is verified on
//!   create and on every update of the pod itself (not subresources).

use serde_json::{Map, Value};

pub const NS_DEFAULT_TOLERATIONS: &str = "scheduler.alpha.kubernetes.io/defaultTolerations";
pub const NS_WHITELIST_TOLERATIONS: &str = "scheduler.alpha.kubernetes.io/tolerationsWhitelist";
pub const TAINT_NODE_NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const TAINT_NODE_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const TAINT_NODE_MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
/// DefaultTolerationSeconds' default for both not-ready and unreachable.
pub const DEFAULT_TOLERATION_SECONDS: i64 = 300;

/// Which pod operation is being admitted (the plugins register for Create and Update).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
}

/// core.Toleration; an absent string field is "" as in Go, so DeepEqual compares the same.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Toleration {
    key: String,
    operator: String,
    value: String,
    effect: String,
    toleration_seconds: Option<i64>,
}

impl Toleration {
    /// Decodes one toleration as Go's encoding/json would: field names match
    /// case-insensitively, unknown fields are ignored, `null` is the zero value.
    fn from_json(v: &Value) -> Result<Toleration, String> {
        let obj = match v {
            Value::Null => return Ok(Toleration::default()),
            Value::Object(o) => o,
            other => return Err(unmarshal_error(other, "v1.Toleration")),
        };
        let field = |name: &str| {
            obj.get(name).or_else(|| {
                obj.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v)
            })
        };
        let string = |name: &str| match field(name) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(unmarshal_error(
                other,
                &format!("Toleration.{name} of type string"),
            )),
        };
        let toleration_seconds = match field("tolerationSeconds") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => Some(n.as_i64().ok_or_else(|| {
                format!("json: cannot unmarshal number {n} into Go struct field Toleration.tolerationSeconds of type int64")
            })?),
            Some(other) => {
                return Err(unmarshal_error(other, "Toleration.tolerationSeconds of type int64"));
            }
        };
        Ok(Toleration {
            key: string("key")?,
            operator: string("operator")?,
            value: string("value")?,
            effect: string("effect")?,
            toleration_seconds,
        })
    }

    /// JSON as the API server serialises v1.Toleration (omitempty on every field).
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        for (k, v) in [
            ("key", &self.key),
            ("operator", &self.operator),
            ("value", &self.value),
            ("effect", &self.effect),
        ] {
            if !v.is_empty() {
                m.insert(k.to_string(), Value::String(v.clone()));
            }
        }
        if let Some(s) = self.toleration_seconds {
            m.insert("tolerationSeconds".into(), Value::from(s));
        }
        Value::Object(m)
    }
}

fn unmarshal_error(v: &Value, target: &str) -> String {
    let kind = match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    format!("json: cannot unmarshal {kind} into Go value of type {target}")
}

fn parse_list(values: &[Value]) -> Result<Vec<Toleration>, String> {
    values.iter().map(Toleration::from_json).collect()
}

fn pod_tolerations(pod: &Value) -> Result<Vec<Toleration>, String> {
    match pod.get("spec").and_then(|s| s.get("tolerations")) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => parse_list(a),
        Some(other) => Err(unmarshal_error(other, "[]v1.Toleration")),
    }
}

fn set_pod_tolerations(pod: &mut Value, ts: &[Toleration]) -> Result<(), String> {
    let spec = pod
        .as_object_mut()
        .ok_or("pod is not a JSON object")?
        .entry("spec")
        .or_insert_with(|| Value::Object(Map::new()));
    let spec = spec
        .as_object_mut()
        .ok_or("pod spec is not a JSON object")?;
    spec.insert(
        "tolerations".into(),
        Value::Array(ts.iter().map(Toleration::to_json).collect()),
    );
    Ok(())
}

/// extractNSTolerations: `None` when the annotation is absent, `Some(vec![])` when it is
/// present but empty (`""`, `null` or `[]`), an error when it is not a toleration list.
fn namespace_tolerations(namespace: &Value, key: &str) -> Result<Option<Vec<Toleration>>, String> {
    let Some(raw) = namespace
        .get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get(key))
    else {
        return Ok(None);
    };
    let raw = raw.as_str().unwrap_or("");
    if raw.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let parsed: Value =
        serde_json::from_str(raw).map_err(|e| format!("invalid {key} annotation: {e}"))?;
    match parsed {
        Value::Null => Ok(Some(Vec::new())),
        Value::Array(a) => parse_list(&a).map(Some),
        other => Err(unmarshal_error(&other, "[]v1.Toleration")),
    }
}

/// tolerations.isSuperset: whether `ss` tolerates a superset of what `t` tolerates.
fn is_superset(ss: &Toleration, t: &Toleration) -> bool {
    if ss == t {
        return true;
    }
    // An empty key with Exists matches all keys and values.
    if t.key != ss.key && (!ss.key.is_empty() || ss.operator != "Exists") {
        return false;
    }
    // An empty effect matches all effects.
    if t.effect != ss.effect && !ss.effect.is_empty() {
        return false;
    }
    // A bounded NoExecute entry only covers tolerations that leave no later than it does.
    if ss.effect == "NoExecute"
        && let Some(max) = ss.toleration_seconds
        && t.toleration_seconds.is_none_or(|secs| secs > max)
    {
        return false;
    }
    match ss.operator.as_str() {
        // Upstream requires t's operator to be literally "Equal" here (not "").
        "Equal" | "" => t.operator == "Equal" && t.value == ss.value,
        "Exists" => true,
        _ => false,
    }
}

/// tolerations.MergeTolerations: `first` then `second`, dropping any toleration another one
/// is a superset of (of two equal ones the first is kept).
fn merge_tolerations(first: &[Toleration], second: &[Toleration]) -> Vec<Toleration> {
    let all: Vec<&Toleration> = first.iter().chain(second).collect();
    let mut merged: Vec<Toleration> = Vec::new();
    'next: for (i, t) in all.iter().enumerate() {
        if merged.iter().any(|m| is_superset(m, t)) {
            continue 'next;
        }
        if all[i + 1..].iter().any(|t2| t != t2 && is_superset(t2, t)) {
            continue 'next;
        }
        merged.push((*t).clone());
    }
    merged
}

/// tolerations.VerifyAgainstWhitelist: every toleration must be covered by some entry.
fn verify_against_whitelist(tolerations: &[Toleration], whitelist: &[Toleration]) -> bool {
    whitelist.is_empty()
        || tolerations
            .iter()
            .all(|t| whitelist.iter().any(|w| is_superset(w, t)))
}

/// qos.GetPodQOS != BestEffort: status.qosClass when set, else whether any (init) container
/// requests or limits a positive amount of cpu or memory.
fn is_best_effort(pod: &Value) -> bool {
    if let Some(q) = pod
        .get("status")
        .and_then(|s| s.get("qosClass"))
        .and_then(Value::as_str)
        .filter(|q| !q.is_empty())
    {
        return q == "BestEffort";
    }
    let spec = pod.get("spec");
    let containers = ["containers", "initContainers"]
        .into_iter()
        .filter_map(|k| spec.and_then(|s| s.get(k)).and_then(Value::as_array))
        .flatten();
    for c in containers {
        for kind in ["requests", "limits"] {
            let Some(res) = c
                .get("resources")
                .and_then(|r| r.get(kind))
                .and_then(Value::as_object)
            else {
                continue;
            };
            for name in ["cpu", "memory"] {
                if res.get(name).is_some_and(quantity_is_positive) {
                    return false;
                }
            }
        }
    }
    true
}

/// Sign and mantissa of a resource.Quantity ("500m", "1Gi", "0", 2, "1e3") — enough to tell
/// a positive quantity from zero or a negative one.
fn quantity_is_positive(q: &Value) -> bool {
    match q {
        Value::Number(n) => n.as_f64().is_some_and(|f| f > 0.0),
        Value::String(s) => {
            let s = s.trim();
            if s.starts_with('-') {
                return false;
            }
            let s = s.trim_start_matches('+');
            let mantissa: String = s
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            mantissa.parse::<f64>().is_ok_and(|f| f > 0.0)
        }
        _ => false,
    }
}

/// PodTolerationRestriction for a pod create (see [`pod_toleration_restriction_for`]).
pub fn pod_toleration_restriction(
    namespace: &Value,
    pod: &mut Value,
    cluster_default_tolerations: &[Value],
    cluster_whitelist: Option<&[Value]>,
) -> Result<(), String> {
    pod_toleration_restriction_for(
        Operation::Create,
        namespace,
        pod,
        cluster_default_tolerations,
        cluster_whitelist,
    )
}

/// PodTolerationRestriction's Admit + Validate on a pod (not a subresource). `namespace` is
/// the pod's Namespace object; the cluster defaults/whitelist stand for the plugin's config
/// file and apply only where the namespace lacks the annotation. On success `pod`'s
/// tolerations may have been rewritten (merged); on rejection the error is upstream's text.
pub fn pod_toleration_restriction_for(
    op: Operation,
    namespace: &Value,
    pod: &mut Value,
    cluster_default_tolerations: &[Value],
    cluster_whitelist: Option<&[Value]>,
) -> Result<(), String> {
    // Admit: merge namespace (or cluster) defaults on create, memory-pressure for
    // non-BestEffort pods on create and update.
    let mut extra = Vec::new();
    if op == Operation::Create {
        extra = match namespace_tolerations(namespace, NS_DEFAULT_TOLERATIONS)? {
            Some(ts) => ts,
            None => parse_list(cluster_default_tolerations)?,
        };
    }
    if !is_best_effort(pod) {
        extra.push(Toleration {
            key: TAINT_NODE_MEMORY_PRESSURE.into(),
            operator: "Exists".into(),
            effect: "NoSchedule".into(),
            ..Toleration::default()
        });
    }
    if !extra.is_empty() {
        let merged = merge_tolerations(&pod_tolerations(pod)?, &extra);
        set_pod_tolerations(pod, &merged)?;
    }

    // Validate: the final tolerations against the namespace (else cluster) whitelist.
    let final_tolerations = pod_tolerations(pod)?;
    if final_tolerations.is_empty() {
        return Ok(());
    }
    let (whitelist, scope) = match namespace_tolerations(namespace, NS_WHITELIST_TOLERATIONS)? {
        Some(ts) => (ts, "namespace"),
        None => (
            parse_list(cluster_whitelist.unwrap_or_default())?,
            "cluster",
        ),
    };
    if !whitelist.is_empty() && !verify_against_whitelist(&final_tolerations, &whitelist) {
        return Err(format!(
            "pod tolerations (possibly merged with namespace default tolerations) conflict with its {scope} whitelist"
        ));
    }
    Ok(())
}

/// DefaultTolerationSeconds: unless the pod already tolerates them (same key or empty key,
/// NoExecute or empty effect), append `not-ready` and `unreachable` NoExecute tolerations
/// (Exists, tolerationSeconds 300). Runs on pod create and update, before
/// PodTolerationRestriction.
pub fn default_toleration_seconds(pod: &mut Value) {
    let existing: Vec<Value> = pod
        .get("spec")
        .and_then(|s| s.get("tolerations"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let tolerates = |taint: &str| {
        existing.iter().any(|t| {
            let key = t.get("key").and_then(Value::as_str).unwrap_or("");
            let effect = t.get("effect").and_then(Value::as_str).unwrap_or("");
            (key == taint || key.is_empty()) && (effect == "NoExecute" || effect.is_empty())
        })
    };
    let mut added = Vec::new();
    for taint in [TAINT_NODE_NOT_READY, TAINT_NODE_UNREACHABLE] {
        if !tolerates(taint) {
            added.push(
                Toleration {
                    key: taint.into(),
                    operator: "Exists".into(),
                    effect: "NoExecute".into(),
                    toleration_seconds: Some(DEFAULT_TOLERATION_SECONDS),
                    ..Toleration::default()
                }
                .to_json(),
            );
        }
    }
    if added.is_empty() {
        return;
    }
    let Some(obj) = pod.as_object_mut() else {
        return;
    };
    let spec = obj
        .entry("spec")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(spec) = spec.as_object_mut() else {
        return;
    };
    let list = spec
        .entry("tolerations")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !list.is_array() {
        *list = Value::Array(Vec::new());
    }
    if let Some(a) = list.as_array_mut() {
        a.extend(added);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CONFLICT: &str = "pod tolerations (possibly merged with namespace default tolerations) conflict with its namespace whitelist";

    fn ns(defaults: Option<Value>, whitelist: Option<Value>) -> Value {
        let mut ann = Map::new();
        if let Some(d) = defaults {
            let s = if let Value::String(s) = d {
                s
            } else {
                d.to_string()
            };
            ann.insert(NS_DEFAULT_TOLERATIONS.into(), Value::String(s));
        }
        if let Some(w) = whitelist {
            let s = if let Value::String(s) = w {
                s
            } else {
                w.to_string()
            };
            ann.insert(NS_WHITELIST_TOLERATIONS.into(), Value::String(s));
        }
        json!({"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": "kaas-ws-1", "annotations": ann}})
    }

    fn pod(tolerations: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
               "spec": {"containers": [{"name": "c", "image": "busybox"}], "tolerations": tolerations}})
    }

    fn dedicated(ws: &str) -> Value {
        json!({"key": "dedicated", "operator": "Equal", "value": ws, "effect": "NoSchedule"})
    }

    fn tols(p: &Value) -> Vec<Value> {
        p["spec"]["tolerations"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// What kaas would put on a workspace namespace.
    fn kaas_ns() -> Value {
        ns(
            Some(json!([dedicated("ws-1")])),
            Some(json!([
                dedicated("ws-1"),
                {"key": TAINT_NODE_NOT_READY, "operator": "Exists", "effect": "NoExecute"},
                {"key": TAINT_NODE_UNREACHABLE, "operator": "Exists", "effect": "NoExecute"},
                {"key": TAINT_NODE_MEMORY_PRESSURE, "operator": "Exists", "effect": "NoSchedule"},
            ])),
        )
    }

    #[test]
    fn namespace_defaults_are_merged_on_create() {
        let mut p = pod(json!([{"key": "gpu", "operator": "Exists"}]));
        pod_toleration_restriction(
            &ns(Some(json!([dedicated("ws-1")])), None),
            &mut p,
            &[],
            None,
        )
        .unwrap();
        assert_eq!(
            tols(&p),
            vec![
                json!({"key": "gpu", "operator": "Exists"}),
                dedicated("ws-1")
            ]
        );
    }

    #[test]
    fn merge_keeps_one_copy_and_prefers_the_superset() {
        // Equal tolerations: one copy, the pod's (first).
        let mut p = pod(json!([dedicated("ws-1")]));
        pod_toleration_restriction(
            &ns(Some(json!([dedicated("ws-1")])), None),
            &mut p,
            &[],
            None,
        )
        .unwrap();
        assert_eq!(tols(&p), vec![dedicated("ws-1")]);
        // The pod's Exists on the same key covers the namespace default, which is dropped.
        let wide = json!({"key": "dedicated", "operator": "Exists"});
        let mut p = pod(json!([wide.clone()]));
        pod_toleration_restriction(
            &ns(Some(json!([dedicated("ws-1")])), None),
            &mut p,
            &[],
            None,
        )
        .unwrap();
        assert_eq!(tols(&p), vec![wide.clone()]);
        // A namespace default that is a superset replaces the pod's narrower one.
        let mut p = pod(json!([dedicated("ws-1")]));
        pod_toleration_restriction(&ns(Some(json!([wide.clone()])), None), &mut p, &[], None)
            .unwrap();
        assert_eq!(tols(&p), vec![wide]);
    }

    #[test]
    fn whitelist_admits_covered_and_rejects_others() {
        let mut ok = pod(json!(null));
        default_toleration_seconds(&mut ok);
        pod_toleration_restriction(&kaas_ns(), &mut ok, &[], None).unwrap();
        let got = tols(&ok);
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got.contains(&dedicated("ws-1")));

        // A tenant trying to land on another workspace's dedicated nodes.
        let mut bad = pod(json!([dedicated("ws-2")]));
        default_toleration_seconds(&mut bad);
        assert_eq!(
            pod_toleration_restriction(&kaas_ns(), &mut bad, &[], None),
            Err(CONFLICT.into())
        );
        // A blanket "tolerate everything" is not covered by specific entries.
        let mut all = pod(json!([{"operator": "Exists"}]));
        assert_eq!(
            pod_toleration_restriction(&kaas_ns(), &mut all, &[], None),
            Err(CONFLICT.into())
        );
        // Same key, different effect: not covered.
        let mut effect = pod(
            json!([{"key": "dedicated", "operator": "Equal", "value": "ws-1", "effect": "NoExecute"}]),
        );
        assert_eq!(
            pod_toleration_restriction(&kaas_ns(), &mut effect, &[], None),
            Err(CONFLICT.into())
        );
        // Operator omitted (means Equal for matching) is still not whitelisted by an Equal entry:
        // upstream's isSuperset requires the literal "Equal".
        let mut no_op = pod(json!([{"key": "dedicated", "value": "ws-1", "effect": "NoSchedule"}]));
        assert_eq!(
            pod_toleration_restriction(&kaas_ns(), &mut no_op, &[], None),
            Err(CONFLICT.into())
        );
    }

    #[test]
    fn whitelist_effect_and_key_wildcards() {
        let any_effect = ns(
            None,
            Some(json!([{"key": "dedicated", "operator": "Equal", "value": "ws-1"}])),
        );
        for effect in ["NoSchedule", "NoExecute", "PreferNoSchedule"] {
            let mut p = pod(
                json!([{"key": "dedicated", "operator": "Equal", "value": "ws-1", "effect": effect}]),
            );
            pod_toleration_restriction(&any_effect, &mut p, &[], None).unwrap();
        }
        let mut other_value = pod(json!([dedicated("ws-2")]));
        assert!(pod_toleration_restriction(&any_effect, &mut other_value, &[], None).is_err());

        let exists_key = ns(
            None,
            Some(json!([{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}])),
        );
        let mut p = pod(json!([dedicated("anything")]));
        pod_toleration_restriction(&exists_key, &mut p, &[], None).unwrap();

        let everything = ns(None, Some(json!([{"operator": "Exists"}])));
        let mut p =
            pod(json!([dedicated("x"), {"key": "k", "operator": "Exists", "effect": "NoExecute"}]));
        pod_toleration_restriction(&everything, &mut p, &[], None).unwrap();
    }

    #[test]
    fn toleration_seconds_bound_by_whitelist() {
        let w = ns(
            None,
            Some(json!([{"key": TAINT_NODE_NOT_READY, "operator": "Exists",
            "effect": "NoExecute", "tolerationSeconds": 300}])),
        );
        let t = |secs: Value| {
            pod(json!([{"key": TAINT_NODE_NOT_READY, "operator": "Exists",
            "effect": "NoExecute", "tolerationSeconds": secs}]))
        };
        assert!(pod_toleration_restriction(&w, &mut t(json!(300)), &[], None).is_ok());
        assert!(pod_toleration_restriction(&w, &mut t(json!(60)), &[], None).is_ok());
        assert!(pod_toleration_restriction(&w, &mut t(json!(301)), &[], None).is_err());
        assert!(
            pod_toleration_restriction(&w, &mut t(Value::Null), &[], None).is_err(),
            "forever > 300"
        );
    }

    #[test]
    fn empty_whitelist_annotation_restricts_nothing_like_upstream() {
        // Upstream: `if len(whitelist) > 0 { verify }`, and a present annotation suppresses the
        // cluster whitelist. So `[]` (or "") is NOT "forbid all" — it is "allow all".
        let cluster_wl = [json!({"key": "never", "operator": "Exists"})];
        for empty in [json!([]), json!(""), json!("null")] {
            let mut p = pod(json!([dedicated("ws-2"), {"operator": "Exists"}]));
            pod_toleration_restriction(&ns(None, Some(empty)), &mut p, &[], Some(&cluster_wl))
                .unwrap();
        }
    }

    #[test]
    fn absent_annotations_fall_back_to_cluster_config() {
        let bare = json!({"metadata": {"name": "plain"}});
        let mut p = pod(json!([dedicated("ws-2")]));
        pod_toleration_restriction(&bare, &mut p, &[], None).unwrap();
        assert_eq!(
            tols(&p),
            vec![dedicated("ws-2")],
            "no restriction, no change"
        );

        let cluster_wl = [dedicated("ws-1")];
        let mut p = pod(json!([dedicated("ws-2")]));
        assert_eq!(
            pod_toleration_restriction(&bare, &mut p, &[], Some(&cluster_wl)),
            Err(CONFLICT.replace("namespace whitelist", "cluster whitelist"))
        );
        // Cluster default tolerations apply only without the namespace annotation.
        let mut p = pod(json!([]));
        pod_toleration_restriction(&bare, &mut p, &[dedicated("ws-9")], None).unwrap();
        assert_eq!(tols(&p), vec![dedicated("ws-9")]);
        let mut p = pod(json!([]));
        pod_toleration_restriction(
            &ns(Some(json!("")), None),
            &mut p,
            &[dedicated("ws-9")],
            None,
        )
        .unwrap();
        assert_eq!(tols(&p), Vec::<Value>::new());
    }

    #[test]
    fn malformed_annotations_are_errors() {
        for bad in [
            json!("{not json"),
            json!("{\"key\": \"a\"}"),
            json!("[{\"key\": 5}]"),
            json!("[{\"tolerationSeconds\": \"300\"}]"),
            json!("[{\"tolerationSeconds\": 1.5}]"),
        ] {
            let mut p = pod(json!([]));
            assert!(
                pod_toleration_restriction(&ns(Some(bad.clone()), None), &mut p, &[], None)
                    .is_err(),
                "{bad}"
            );
            let mut p = pod(json!([dedicated("x")]));
            assert!(
                pod_toleration_restriction(&ns(None, Some(bad.clone())), &mut p, &[], None)
                    .is_err(),
                "{bad}"
            );
        }
        // Go's encoding/json matches field names case-insensitively.
        let mut p = pod(json!([]));
        pod_toleration_restriction(
            &ns(
                Some(json!("[{\"Key\":\"a\",\"Operator\":\"Exists\"}]")),
                None,
            ),
            &mut p,
            &[],
            None,
        )
        .unwrap();
        assert_eq!(tols(&p), vec![json!({"key": "a", "operator": "Exists"})]);
    }

    #[test]
    fn default_toleration_seconds_and_whitelist_interaction() {
        let mut p = pod(json!(null));
        default_toleration_seconds(&mut p);
        assert_eq!(
            tols(&p),
            vec![
                json!({"key": TAINT_NODE_NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}),
                json!({"key": TAINT_NODE_UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}),
            ]
        );
        // Already tolerated (explicitly, or by an empty key / empty effect): nothing added.
        let mut own = pod(
            json!([{"key": TAINT_NODE_NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 10}]),
        );
        default_toleration_seconds(&mut own);
        assert_eq!(tols(&own).len(), 2);
        let mut wild = pod(json!([{"operator": "Exists"}]));
        default_toleration_seconds(&mut wild);
        assert_eq!(tols(&wild).len(), 1);

        // A whitelist with only the workspace toleration rejects every ordinary pod,
        // because DefaultTolerationSeconds ran first.
        let naive = ns(
            Some(json!([dedicated("ws-1")])),
            Some(json!([dedicated("ws-1")])),
        );
        let mut p = pod(json!(null));
        default_toleration_seconds(&mut p);
        assert_eq!(
            pod_toleration_restriction(&naive, &mut p, &[], None),
            Err(CONFLICT.into())
        );
        let mut p = pod(json!(null));
        default_toleration_seconds(&mut p);
        pod_toleration_restriction(&kaas_ns(), &mut p, &[], None).unwrap();
    }

    #[test]
    fn non_best_effort_pods_get_memory_pressure_toleration() {
        let mut p = pod(json!(null));
        p["spec"]["containers"][0]["resources"] = json!({"requests": {"cpu": "100m"}});
        let only_ws = ns(
            Some(json!([dedicated("ws-1")])),
            Some(json!([dedicated("ws-1"),
            {"key": TAINT_NODE_NOT_READY, "operator": "Exists", "effect": "NoExecute"},
            {"key": TAINT_NODE_UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}])),
        );
        default_toleration_seconds(&mut p);
        let mut p2 = p.clone();
        assert_eq!(
            pod_toleration_restriction(&only_ws, &mut p, &[], None),
            Err(CONFLICT.into())
        );
        pod_toleration_restriction(&kaas_ns(), &mut p2, &[], None).unwrap();
        assert!(tols(&p2).contains(&json!({"key": TAINT_NODE_MEMORY_PRESSURE, "operator": "Exists", "effect": "NoSchedule"})));
        // Zero quantities and ephemeral-storage do not count.
        let mut be = pod(json!(null));
        be["spec"]["containers"][0]["resources"] =
            json!({"limits": {"cpu": "0", "ephemeral-storage": "1Gi"}});
        assert!(is_best_effort(&be));
        be["spec"]["initContainers"] =
            json!([{"name": "i", "resources": {"limits": {"memory": "64Mi"}}}]);
        assert!(!is_best_effort(&be));
    }

    #[test]
    fn update_skips_defaults_but_still_verifies() {
        let mut p = pod(json!([]));
        pod_toleration_restriction_for(Operation::Update, &kaas_ns(), &mut p, &[], None).unwrap();
        assert_eq!(
            tols(&p),
            Vec::<Value>::new(),
            "no namespace defaults on update"
        );
        let mut p = pod(json!([dedicated("ws-2")]));
        assert_eq!(
            pod_toleration_restriction_for(Operation::Update, &kaas_ns(), &mut p, &[], None),
            Err(CONFLICT.into())
        );
    }
}
