//! How lists merge: which lists are maps keyed by some fields (containers by name, ports by
//! containerPort...), which are sets (finalizers) and which are atomic. Strategic merge patch
//! and server-side apply both consult this. Built-in kinds use the keys from the Kubernetes Go
//! types' struct tags; custom resources use `x-kubernetes-list-type`/`-map-keys` from their
//! CRD schema, and default to atomic as Kubernetes does.

use serde_json::Value;

use crate::kinds::ResourceType;

#[derive(Clone, Debug, PartialEq)]
pub enum ListStrategy {
    /// Items are maps identified by these keys (the first one is the strategic-merge key).
    Map(Vec<String>),
    /// Items are scalars merged as a set.
    Set,
    /// The whole list is replaced.
    Atomic,
}

fn map_keys(keys: &[&str]) -> ListStrategy {
    ListStrategy::Map(keys.iter().map(|k| k.to_string()).collect())
}

/// `path` is the chain of field names from the object root to the list, skipping list items.
pub fn list_strategy(rt: &ResourceType, path: &[String]) -> ListStrategy {
    let Some(last) = path.last().map(String::as_str) else {
        return ListStrategy::Atomic;
    };
    if path.first().map(String::as_str) == Some("metadata") {
        return match last {
            "finalizers" => ListStrategy::Set,
            "ownerReferences" => map_keys(&["uid"]),
            _ => ListStrategy::Atomic,
        };
    }
    if !rt.builtin {
        return custom_list_strategy(rt, path);
    }
    let in_container = path.iter().any(|p| {
        matches!(
            p.as_str(),
            "containers" | "initContainers" | "ephemeralContainers"
        )
    });
    match last {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "imagePullSecrets"
        | "env" => map_keys(&["name"]),
        "volumeMounts" => map_keys(&["mountPath"]),
        "volumeDevices" => map_keys(&["devicePath"]),
        "ports" if in_container => map_keys(&["containerPort", "protocol"]),
        "ports" if rt.resource == "services" => map_keys(&["port", "protocol"]),
        "conditions" => map_keys(&["type"]),
        "topologySpreadConstraints" => map_keys(&["topologyKey", "whenUnsatisfiable"]),
        "hostAliases" => map_keys(&["ip"]),
        "taints" => map_keys(&["key", "effect"]),
        "finalizers" if rt.resource == "namespaces" => ListStrategy::Set,
        _ => ListStrategy::Atomic,
    }
}

/// Walks the CRD's openAPIV3Schema along `path` and reads the list annotations.
fn custom_list_strategy(rt: &ResourceType, path: &[String]) -> ListStrategy {
    let Some(mut node) = rt.schema(rt.preferred_version()) else {
        return ListStrategy::Atomic;
    };
    for name in path {
        if node.get("type").and_then(Value::as_str) == Some("array") {
            let Some(items) = node.get("items") else {
                return ListStrategy::Atomic;
            };
            node = items;
        }
        let Some(child) = node.get("properties").and_then(|p| p.get(name)) else {
            return ListStrategy::Atomic;
        };
        node = child;
    }
    match node.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => ListStrategy::Set,
        Some("map") => {
            let keys: Vec<String> = node
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|keys| {
                    keys.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            if keys.is_empty() {
                ListStrategy::Atomic
            } else {
                ListStrategy::Map(keys)
            }
        }
        _ => ListStrategy::Atomic,
    }
}
