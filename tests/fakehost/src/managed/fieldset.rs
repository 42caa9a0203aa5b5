//! Field sets as server-side apply tracks them: each path is a list of FieldsV1 path elements
//! (`f:<field>`, `k:<json keys>` for items of map-lists, `v:<json>` for set items), encoded
//! to and from the nested `fieldsV1` JSON found in `metadata.managedFields`.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::kinds::ResourceType;
use crate::patch::lists::{ListStrategy, list_strategy};

pub type FieldPath = Vec<String>;
pub type FieldSet = BTreeSet<FieldPath>;

/// Which part of an object a field manager can own through a given endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Kinds without a status subresource: everything.
    Whole,
    /// The main endpoint of a kind with a status subresource: everything but `.status`.
    Main,
    /// The `/status` subresource: only `.status`.
    Status,
}

/// Metadata fields a manager can own; the rest is system-managed.
const OWNED_METADATA: &[&str] = &["labels", "annotations", "finalizers", "ownerReferences"];

/// The part of `object` that field management looks at in this scope.
pub fn managed_view(object: &Value, scope: Scope) -> Value {
    let mut view = Map::new();
    let Some(map) = object.as_object() else {
        return Value::Object(view);
    };
    for (key, value) in map {
        let keep = match key.as_str() {
            "apiVersion" | "kind" => false,
            "status" => scope != Scope::Main,
            "metadata" => {
                if let Some(metadata) = value.as_object() {
                    let owned: Map<String, Value> = metadata
                        .iter()
                        .filter(|(k, _)| OWNED_METADATA.contains(&k.as_str()))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    if !owned.is_empty() && scope != Scope::Status {
                        view.insert(key.clone(), Value::Object(owned));
                    }
                }
                false
            }
            _ => scope != Scope::Status,
        };
        if keep {
            view.insert(key.clone(), value.clone());
        }
    }
    Value::Object(view)
}

/// A key field's value; `protocol` defaults to TCP as the API server defaults it, so an
/// applied port without a protocol identifies the same item as the stored, defaulted one.
fn key_value(item: &Map<String, Value>, key: &str) -> Option<Value> {
    match item.get(key) {
        Some(value) => Some(value.clone()),
        None if key == "protocol" => Some(Value::String("TCP".into())),
        None => None,
    }
}

/// The `k:` element identifying a map-list item: its key fields as JSON with sorted keys.
pub fn item_key(item: &Map<String, Value>, keys: &[String]) -> String {
    let mut sorted: Vec<&String> = keys.iter().collect();
    sorted.sort();
    let parts: Vec<String> = sorted
        .iter()
        .filter_map(|k| key_value(item, k).map(|v| format!("{}:{v}", Value::String((*k).clone()))))
        .collect();
    format!("k:{{{}}}", parts.join(","))
}

/// Every field path set in `view`.
pub fn fieldset_of(rt: &ResourceType, view: &Value) -> FieldSet {
    let mut set = FieldSet::new();
    if let Value::Object(map) = view {
        collect_object(rt, map, &mut Vec::new(), &mut Vec::new(), &mut set);
    }
    set
}

fn collect_object(
    rt: &ResourceType,
    map: &Map<String, Value>,
    names: &mut Vec<String>,
    path: &mut FieldPath,
    out: &mut FieldSet,
) {
    for (key, value) in map {
        names.push(key.clone());
        path.push(format!("f:{key}"));
        match value {
            Value::Object(child) if !child.is_empty() => {
                collect_object(rt, child, names, path, out)
            }
            Value::Array(items) if !items.is_empty() => collect_list(rt, items, names, path, out),
            _ => {
                out.insert(path.clone());
            }
        }
        names.pop();
        path.pop();
    }
}

fn collect_list(
    rt: &ResourceType,
    items: &[Value],
    names: &mut Vec<String>,
    path: &mut FieldPath,
    out: &mut FieldSet,
) {
    match list_strategy(rt, names) {
        ListStrategy::Map(keys) if items.iter().all(Value::is_object) => {
            for item in items {
                let Value::Object(item) = item else { continue };
                path.push(item_key(item, &keys));
                out.insert(path.clone());
                collect_object(rt, item, names, path, out);
                path.pop();
            }
        }
        ListStrategy::Set => {
            for item in items {
                path.push(format!("v:{item}"));
                out.insert(path.clone());
                path.pop();
            }
        }
        _ => {
            out.insert(path.clone());
        }
    }
}

fn item_matches(item: &Value, keys: &Map<String, Value>) -> bool {
    let Some(item) = item.as_object() else {
        return false;
    };
    keys.iter()
        .all(|(k, v)| key_value(item, k).as_ref() == Some(v))
}

/// The value at a field path, if present.
pub fn lookup<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut current = value;
    for element in path {
        current = step(current, element)?;
    }
    Some(current)
}

fn step<'a>(current: &'a Value, element: &str) -> Option<&'a Value> {
    if let Some(field) = element.strip_prefix("f:") {
        return current.get(field);
    }
    if let Some(keys) = element.strip_prefix("k:") {
        let keys: Map<String, Value> = serde_json::from_str(keys).ok()?;
        return current
            .as_array()?
            .iter()
            .find(|item| item_matches(item, &keys));
    }
    if let Some(literal) = element.strip_prefix("v:") {
        let wanted: Value = serde_json::from_str(literal).ok()?;
        return current.as_array()?.iter().find(|item| **item == wanted);
    }
    None
}

/// Removes the field or item at `path`; returns whether something was removed.
pub fn remove_path(value: &mut Value, path: &[String]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut current = value;
    for element in parents {
        let next = if let Some(field) = element.strip_prefix("f:") {
            current.get_mut(field)
        } else if let Some(keys) = element.strip_prefix("k:") {
            let Ok(keys) = serde_json::from_str::<Map<String, Value>>(keys) else {
                return false;
            };
            current
                .as_array_mut()
                .and_then(|a| a.iter_mut().find(|i| item_matches(i, &keys)))
        } else {
            None
        };
        let Some(next) = next else { return false };
        current = next;
    }
    if let Some(field) = last.strip_prefix("f:") {
        return current
            .as_object_mut()
            .and_then(|m| m.remove(field))
            .is_some();
    }
    let Some(items) = current.as_array_mut() else {
        return false;
    };
    let before = items.len();
    if let Some(keys) = last.strip_prefix("k:") {
        if let Ok(keys) = serde_json::from_str::<Map<String, Value>>(keys) {
            items.retain(|i| !item_matches(i, &keys));
        }
    } else if let Some(literal) = last.strip_prefix("v:")
        && let Ok(wanted) = serde_json::from_str::<Value>(literal)
    {
        items.retain(|i| *i != wanted);
    }
    items.len() != before
}

#[derive(Default)]
struct Node {
    owned: bool,
    children: std::collections::BTreeMap<String, Node>,
}

/// Encodes a field set as `fieldsV1`.
pub fn encode(set: &FieldSet) -> Value {
    let mut root = Node::default();
    for path in set {
        let mut node = &mut root;
        for element in path {
            node = node.children.entry(element.clone()).or_default();
        }
        node.owned = true;
    }
    fn render(node: &Node) -> Value {
        let mut map = Map::new();
        if node.owned && !node.children.is_empty() {
            map.insert(".".into(), Value::Object(Map::new()));
        }
        for (element, child) in &node.children {
            map.insert(element.clone(), render(child));
        }
        Value::Object(map)
    }
    render(&root)
}

/// Decodes `fieldsV1` into a field set.
pub fn decode(fields: &Value) -> FieldSet {
    fn walk(value: &Value, path: &mut FieldPath, out: &mut FieldSet) {
        let Some(map) = value.as_object() else { return };
        for (element, child) in map {
            if element == "." {
                out.insert(path.clone());
                continue;
            }
            path.push(element.clone());
            if child.as_object().is_some_and(Map::is_empty) {
                out.insert(path.clone());
            } else {
                walk(child, path, out);
            }
            path.pop();
        }
    }
    let mut out = FieldSet::new();
    walk(fields, &mut Vec::new(), &mut out);
    out
}

/// `.spec.containers[name="a"].image`, the way conflict messages print a path.
pub fn display_path(path: &[String]) -> String {
    let mut out = String::new();
    for element in path {
        if let Some(field) = element.strip_prefix("f:") {
            out.push('.');
            out.push_str(field);
        } else if let Some(keys) = element.strip_prefix("k:") {
            let rendered = serde_json::from_str::<Map<String, Value>>(keys)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_else(|_| keys.to_string());
            out.push_str(&format!("[{rendered}]"));
        } else if let Some(literal) = element.strip_prefix("v:") {
            out.push_str(&format!("[={literal}]"));
        }
    }
    out
}
