//! Field management: `metadata.managedFields` bookkeeping for every write and the
//! server-side apply algorithm (`application/apply-patch+yaml`).
//!
//! Semantics kept from kube-apiserver: each (manager, operation, subresource) has an entry
//! with the set of fields it owns; an Update (POST/PUT/non-apply PATCH) takes ownership of the
//! fields it changed away from everyone else; an Apply conflicts (409) when another manager
//! owns a field the apply sets to a different value, unless `force`; fields a manager stops
//! applying are removed when nobody else owns them. Map-lists of built-in kinds (containers
//! by name, ...) and CRD lists with `x-kubernetes-list-type: map` are tracked per item; other
//! lists are atomic.

pub mod fieldset;

use serde_json::{Map, Value, json};

use crate::errors::{ApiError, Cause};
use crate::kinds::ResourceType;
use crate::patch::lists::{ListStrategy, list_strategy};
use fieldset::{
    FieldSet, Scope, decode, display_path, encode, fieldset_of, item_key, lookup, managed_view,
    remove_path,
};

/// One `managedFields` entry, decoded.
#[derive(Clone, Debug)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    subresource: String,
    fields: FieldSet,
}

fn read_entries(object: Option<&Value>) -> Vec<Entry> {
    let Some(list) = object
        .and_then(|o| o.pointer("/metadata/managedFields"))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    list.iter()
        .map(|e| {
            let text = |k: &str| {
                e.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            Entry {
                manager: text("manager"),
                operation: text("operation"),
                api_version: text("apiVersion"),
                time: text("time"),
                subresource: text("subresource"),
                fields: e.get("fieldsV1").map(decode).unwrap_or_default(),
            }
        })
        .collect()
}

fn write_entries(object: &mut Value, entries: Vec<Entry>) {
    let rendered: Vec<Value> = entries
        .into_iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut entry = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": encode(&e.fields),
            });
            if !e.subresource.is_empty() {
                entry["subresource"] = json!(e.subresource);
            }
            entry
        })
        .collect();
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        if rendered.is_empty() {
            metadata.remove("managedFields");
        } else {
            metadata.insert("managedFields".into(), Value::Array(rendered));
        }
    }
}

/// Where a write came from, for managedFields.
pub struct WriteContext<'a> {
    pub manager: &'a str,
    pub api_version: &'a str,
    pub now: &'a str,
    pub status_subresource: bool,
}

fn scope_of(rt: &ResourceType, status_subresource: bool) -> Scope {
    if status_subresource {
        Scope::Status
    } else if rt.has_status {
        Scope::Main
    } else {
        Scope::Whole
    }
}

fn subresource_name(status_subresource: bool) -> String {
    if status_subresource {
        "status".into()
    } else {
        String::new()
    }
}

/// Records an Update by `ctx.manager` that turned `old` into `new` (stored into `new`).
pub fn track_update(
    rt: &ResourceType,
    old: Option<&Value>,
    new: &mut Value,
    ctx: &WriteContext<'_>,
) {
    let scope = scope_of(rt, ctx.status_subresource);
    let new_view = managed_view(new, scope);
    let new_set = fieldset_of(rt, &new_view);
    let old_view = old.map(|o| managed_view(o, scope));
    let changed: FieldSet = new_set
        .iter()
        .filter(|path| old_view.as_ref().and_then(|o| lookup(o, path)) != lookup(&new_view, path))
        .cloned()
        .collect();
    let full_new_set = fieldset_of(rt, &managed_view(new, Scope::Whole));
    let mut entries = read_entries(old);
    let subresource = subresource_name(ctx.status_subresource);
    for entry in &mut entries {
        // Fields that no longer exist are owned by nobody; changed fields move to this manager.
        entry
            .fields
            .retain(|p| full_new_set.contains(p) && !changed.contains(p));
    }
    if !changed.is_empty() {
        match entries.iter_mut().find(|e| {
            e.manager == ctx.manager && e.operation == "Update" && e.subresource == subresource
        }) {
            Some(entry) => {
                entry.fields.extend(changed);
                entry.time = ctx.now.to_string();
                entry.api_version = ctx.api_version.to_string();
            }
            None => entries.push(Entry {
                manager: ctx.manager.to_string(),
                operation: "Update".into(),
                api_version: ctx.api_version.to_string(),
                time: ctx.now.to_string(),
                subresource,
                fields: changed,
            }),
        }
    }
    write_entries(new, entries);
}

/// Server-side apply of `applied` (already parsed) onto `live` (None = create). Returns the
/// merged object with updated managedFields; the caller applies the usual write rules.
pub fn apply(
    rt: &ResourceType,
    live: &Value,
    applied: &Value,
    force: bool,
    ctx: &WriteContext<'_>,
) -> Result<Value, ApiError> {
    let scope = scope_of(rt, ctx.status_subresource);
    let applied_view = managed_view(applied, scope);
    let applied_set = fieldset_of(rt, &applied_view);
    let live_view = managed_view(live, scope);
    let subresource = subresource_name(ctx.status_subresource);
    let is_mine = |e: &Entry| {
        e.manager == ctx.manager && e.operation == "Apply" && e.subresource == subresource
    };
    let mut entries = read_entries(Some(live));

    let mut conflicts: Vec<(String, String, Vec<String>)> = Vec::new();
    for entry in entries
        .iter()
        .filter(|e| !is_mine(e) && e.manager != ctx.manager)
    {
        for path in entry.fields.intersection(&applied_set) {
            let (Some(current), Some(wanted)) =
                (lookup(&live_view, path), lookup(&applied_view, path))
            else {
                continue;
            };
            // A map-list item or a non-empty map is identity, not a value: no conflict.
            let structural = path
                .last()
                .is_some_and(|p| p.starts_with("k:") || p.starts_with("v:"))
                || (current.is_object() && wanted.is_object());
            if !structural && current != wanted {
                conflicts.push((
                    entry.manager.clone(),
                    entry.api_version.clone(),
                    path.clone(),
                ));
            }
        }
    }
    if !conflicts.is_empty() {
        if !force {
            return Err(conflict_error(rt, live, &conflicts));
        }
        for entry in &mut entries {
            entry.fields.retain(|p| {
                !conflicts
                    .iter()
                    .any(|(m, _, cp)| *m == entry.manager && cp == p)
            });
        }
    }

    let previous: FieldSet = entries
        .iter()
        .find(|e| is_mine(e))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let mut merged = live.clone();
    merge_applied(rt, &mut Vec::new(), &mut merged, &applied_view);
    let owned_by_others: FieldSet = entries
        .iter()
        .filter(|e| !is_mine(e))
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    // Remove deepest paths first so an item's fields go before the item itself.
    let mut dropped: Vec<_> = previous
        .difference(&applied_set)
        .filter(|p| !owned_by_others.contains(*p))
        .collect();
    dropped.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for path in dropped {
        remove_path(&mut merged, path);
    }

    entries.retain(|e| !is_mine(e));
    entries.push(Entry {
        manager: ctx.manager.to_string(),
        operation: "Apply".into(),
        api_version: ctx.api_version.to_string(),
        time: ctx.now.to_string(),
        subresource,
        fields: applied_set,
    });
    write_entries(&mut merged, entries);
    Ok(merged)
}

fn conflict_error(
    rt: &ResourceType,
    live: &Value,
    conflicts: &[(String, String, Vec<String>)],
) -> ApiError {
    let name = live
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let causes: Vec<Cause> = conflicts
        .iter()
        .map(|(manager, api_version, path)| Cause {
            reason: "FieldManagerConflict".into(),
            message: format!("conflict with \"{manager}\" using {api_version}"),
            field: display_path(path),
        })
        .collect();
    let noun = if causes.len() == 1 {
        "conflict"
    } else {
        "conflicts"
    };
    let lines: Vec<String> = causes
        .iter()
        .map(|c| format!("{}: {}", c.message, c.field))
        .collect();
    let mut error = ApiError::conflict(&rt.group, &rt.resource, name, "");
    error.message = format!(
        "Apply failed with {} {noun}: {}",
        causes.len(),
        lines.join("\n")
    );
    error.details.causes = causes;
    error
}

/// Merges the applied configuration into `target`: maps recursively, map-lists by key,
/// sets by value, everything else replaced.
fn merge_applied(rt: &ResourceType, names: &mut Vec<String>, target: &mut Value, applied: &Value) {
    let (Value::Object(target_map), Value::Object(applied_map)) = (&mut *target, applied) else {
        *target = applied.clone();
        return;
    };
    for (key, value) in applied_map {
        names.push(key.clone());
        match (target_map.get_mut(key), value) {
            (_, Value::Null) => {
                target_map.remove(key);
            }
            (Some(existing @ Value::Object(_)), Value::Object(_)) => {
                merge_applied(rt, names, existing, value)
            }
            (Some(Value::Array(existing)), Value::Array(items)) => match list_strategy(rt, names) {
                ListStrategy::Map(keys) if items.iter().all(Value::is_object) => {
                    merge_map_list(rt, names, existing, items, &keys)
                }
                ListStrategy::Set => {
                    for item in items {
                        if !existing.contains(item) {
                            existing.push(item.clone());
                        }
                    }
                }
                _ => *existing = items.clone(),
            },
            _ => {
                target_map.insert(key.clone(), value.clone());
            }
        }
        names.pop();
    }
}

fn merge_map_list(
    rt: &ResourceType,
    names: &mut Vec<String>,
    existing: &mut Vec<Value>,
    items: &[Value],
    keys: &[String],
) {
    let key_of = |v: &Value| v.as_object().map(|m| item_key(m, keys));
    for item in items {
        let wanted = key_of(item);
        match existing.iter_mut().find(|e| key_of(e) == wanted) {
            Some(slot) => merge_applied(rt, names, slot, item),
            None => existing.push(item.clone()),
        }
    }
}

/// A blank object for apply-create: identity fields only.
pub fn empty_like(applied: &Value) -> Value {
    let mut metadata = Map::new();
    for key in ["name", "namespace"] {
        if let Some(v) = applied.pointer(&format!("/metadata/{key}")) {
            metadata.insert(key.into(), v.clone());
        }
    }
    json!({
        "apiVersion": applied.get("apiVersion").cloned().unwrap_or(Value::Null),
        "kind": applied.get("kind").cloned().unwrap_or(Value::Null),
        "metadata": metadata,
    })
}
