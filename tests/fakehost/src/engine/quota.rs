//! What kube-apiserver's ResourceQuota admission refuses that kaas relies on for isolation:
//! a Service over a quota's `services`, `services.nodeports` or `services.loadbalancers`, and a
//! pod over a quota scoped to its PriorityClass (`scopeSelector` with `PriorityClass In`).
//! Other quota resources are counted in status (the K3K policy simulation) but not enforced.
//! The refusal is kube-apiserver's: 403 `<kind> "<name>" is forbidden: exceeded quota: …`.

use serde_json::Value;

use crate::errors::ApiError;
use crate::kinds::ResourceRef;
use crate::store::StoreInner;

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// A plain count from a quota's `hard` (`"3"`, `"1k"`); `None` for anything else.
fn count(q: &Value) -> Option<u64> {
    let s = q.as_str()?;
    match s.strip_suffix('k') {
        Some(n) => n.parse::<u64>().ok().map(|n| n * 1000),
        None => s.parse().ok(),
    }
}

/// The Service usage kube-apiserver's service evaluator counts.
fn service_usage(svc: &Value) -> [(&'static str, u64); 3] {
    let kind = svc
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    let ports = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map_or(0, |p| p.len() as u64);
    let lb = kind == "LoadBalancer";
    let node_ports = if kind == "NodePort"
        || lb && svc.pointer("/spec/allocateLoadBalancerNodePorts") != Some(&Value::Bool(false))
    {
        ports
    } else {
        0
    };
    [
        ("services", 1),
        ("services.nodeports", node_ports),
        ("services.loadbalancers", u64::from(lb)),
    ]
}

/// The PriorityClass names a quota is scoped to, if it is scoped `PriorityClass In`.
fn priority_scope(quota: &Value) -> Option<Vec<String>> {
    let exprs = quota
        .pointer("/spec/scopeSelector/matchExpressions")?
        .as_array()?;
    let mut classes = Vec::new();
    for e in exprs {
        if text(e, "/scopeName") != "PriorityClass" || text(e, "/operator") != "In" {
            return None;
        }
        for v in e
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            classes.push(v.as_str().unwrap_or_default().to_string());
        }
    }
    Some(classes)
}

fn refuse(
    kind: &str,
    name: &str,
    quota: &str,
    key: &str,
    requested: u64,
    used: u64,
    hard: u64,
) -> ApiError {
    ApiError::forbidden(format!(
        "{kind} \"{name}\" is forbidden: exceeded quota: {quota}, requested: {key}={requested}, used: {key}={used}, limited: {key}={hard}"
    ))
}

/// Checks a created Service or pod against the quotas of its namespace.
pub(super) fn check(
    store: &StoreInner,
    resource: &str,
    current: Option<&Value>,
    object: &Value,
) -> Result<(), ApiError> {
    if current.is_some() || !matches!(resource, "services" | "pods") {
        return Ok(());
    }
    let ns = text(object, "/metadata/namespace");
    let name = text(object, "/metadata/name");
    let quotas = store.list(&ResourceRef::core("resourcequotas"), Some(ns));
    for quota in &quotas {
        let qname = text(quota, "/metadata/name");
        let Some(hard) = quota.pointer("/spec/hard").and_then(Value::as_object) else {
            continue;
        };
        let scoped = quota.pointer("/spec/scopeSelector").is_some()
            || quota.pointer("/spec/scopes").is_some();
        if resource == "services" && !scoped {
            let existing = store.list(&ResourceRef::core("services"), Some(ns));
            for (key, requested) in service_usage(object) {
                let Some(limit) = hard.get(key).and_then(count) else {
                    continue;
                };
                let used: u64 = existing
                    .iter()
                    .map(|s| {
                        service_usage(s)
                            .iter()
                            .find(|(k, _)| *k == key)
                            .map_or(0, |(_, n)| *n)
                    })
                    .sum();
                if requested > 0 && used + requested > limit {
                    return Err(refuse("services", name, qname, key, requested, used, limit));
                }
            }
        }
        if resource == "pods"
            && let Some(classes) = priority_scope(quota)
            && let Some(limit) = hard.get("pods").and_then(count)
        {
            let class = text(object, "/spec/priorityClassName");
            if !classes.iter().any(|c| c == class) {
                continue;
            }
            let used = store
                .list(&ResourceRef::core("pods"), Some(ns))
                .iter()
                .filter(|p| text(p, "/spec/priorityClassName") == class)
                .filter(|p| !matches!(text(p, "/status/phase"), "Succeeded" | "Failed"))
                .count() as u64;
            if used + 1 > limit {
                return Err(refuse("pods", name, qname, "pods", 1, used, limit));
            }
        }
    }
    Ok(())
}
