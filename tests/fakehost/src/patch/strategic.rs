//! Strategic merge patch (what `kubectl apply` client-side, `kubectl patch` and kube-rs
//! `Patch::Strategic` send for built-in kinds): maps merge recursively, `null` deletes, lists
//! with a merge key merge item by item, `$patch: delete|replace|merge` directives,
//! `$deleteFromPrimitiveList/<field>` and `$setElementOrder/<field>` are honoured.

use serde_json::{Map, Value};

use super::lists::{ListStrategy, list_strategy};
use crate::errors::ApiError;
use crate::kinds::ResourceType;

const DIRECTIVE: &str = "$patch";
const DELETE_FROM_PRIMITIVE: &str = "$deleteFromPrimitiveList/";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const RETAIN_KEYS: &str = "$retainKeys";

/// Applies `patch` to `original` in place.
pub fn strategic_merge(
    rt: &ResourceType,
    original: &mut Value,
    patch: &Value,
) -> Result<(), ApiError> {
    let Value::Object(patch_map) = patch else {
        return Err(ApiError::bad_request(
            "strategic merge patch must be a JSON object",
        ));
    };
    merge_map(rt, &mut Vec::new(), original, patch_map)
}

fn merge_map(
    rt: &ResourceType,
    path: &mut Vec<String>,
    original: &mut Value,
    patch: &Map<String, Value>,
) -> Result<(), ApiError> {
    match patch.get(DIRECTIVE).and_then(Value::as_str) {
        Some("replace") => {
            let mut replacement = patch.clone();
            replacement.remove(DIRECTIVE);
            *original = Value::Object(replacement);
            return Ok(());
        }
        Some("delete") => {
            *original = Value::Null;
            return Ok(());
        }
        Some("merge") | None => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown patch type: {other:?}"
            )));
        }
    }
    if !original.is_object() {
        *original = Value::Object(Map::new());
    }
    let Value::Object(target) = original else {
        return Ok(());
    };
    // `$retainKeys` lists the only keys to keep (used by kubectl for union types).
    if let Some(Value::Array(retain)) = patch.get(RETAIN_KEYS) {
        let keep: Vec<&str> = retain.iter().filter_map(Value::as_str).collect();
        target.retain(|k, _| keep.contains(&k.as_str()) || patch.contains_key(k));
    }
    for (key, value) in patch {
        if key == DIRECTIVE || key == RETAIN_KEYS || key.starts_with(SET_ELEMENT_ORDER) {
            continue;
        }
        if let Some(field) = key.strip_prefix(DELETE_FROM_PRIMITIVE) {
            let remove: Vec<&Value> = value
                .as_array()
                .map(|a| a.iter().collect())
                .unwrap_or_default();
            if let Some(Value::Array(items)) = target.get_mut(field) {
                items.retain(|item| !remove.contains(&item));
            }
            continue;
        }
        path.push(key.clone());
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Object(child_patch) => {
                let child = target.entry(key.clone()).or_insert(Value::Null);
                merge_map(rt, path, child, child_patch)?;
                if child.is_null() {
                    target.remove(key);
                }
            }
            Value::Array(patch_items) => {
                let strategy = list_strategy(rt, path);
                let current = target.remove(key);
                let merged = merge_list(rt, path, current, patch_items, &strategy)?;
                target.insert(key.clone(), merged);
            }
            scalar => {
                target.insert(key.clone(), scalar.clone());
            }
        }
        path.pop();
    }
    Ok(())
}

fn merge_list(
    rt: &ResourceType,
    path: &mut Vec<String>,
    current: Option<Value>,
    patch_items: &[Value],
    strategy: &ListStrategy,
) -> Result<Value, ApiError> {
    let replace_all = patch_items
        .iter()
        .any(|item| item.get(DIRECTIVE).and_then(Value::as_str) == Some("replace"));
    let mut items = match current {
        Some(Value::Array(items)) if !replace_all => items,
        _ => Vec::new(),
    };
    match strategy {
        ListStrategy::Atomic => Ok(Value::Array(patch_items.to_vec())),
        ListStrategy::Set => {
            for item in patch_items {
                if !items.contains(item) {
                    items.push(item.clone());
                }
            }
            Ok(Value::Array(items))
        }
        ListStrategy::Map(keys) => {
            let Some(merge_key) = keys.first() else {
                return Ok(Value::Array(patch_items.to_vec()));
            };
            for patch_item in patch_items {
                let Value::Object(patch_map) = patch_item else {
                    return Err(ApiError::bad_request(format!(
                        "strategic merge patch: list {} expects objects with merge key {merge_key}",
                        path.join(".")
                    )));
                };
                let directive = patch_map.get(DIRECTIVE).and_then(Value::as_str);
                if directive == Some("replace") {
                    let mut clean = patch_map.clone();
                    clean.remove(DIRECTIVE);
                    if !clean.is_empty() {
                        items.push(Value::Object(clean));
                    }
                    continue;
                }
                let Some(key_value) = patch_map.get(merge_key.as_str()) else {
                    return Err(ApiError::bad_request(format!(
                        "map: {patch_map:?} does not contain declared merge key: {merge_key}"
                    )));
                };
                let position = items
                    .iter()
                    .position(|i| i.get(merge_key.as_str()) == Some(key_value));
                if directive == Some("delete") {
                    if let Some(index) = position {
                        items.remove(index);
                    }
                    continue;
                }
                match position {
                    Some(index) => merge_map(rt, path, &mut items[index], patch_map)?,
                    None => {
                        let mut fresh = Value::Object(Map::new());
                        merge_map(rt, path, &mut fresh, patch_map)?;
                        items.push(fresh);
                    }
                }
            }
            Ok(Value::Array(items))
        }
    }
}
