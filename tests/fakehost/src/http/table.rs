//! `meta.k8s.io/v1` Table output for `kubectl get` (it asks with `Accept: ...;as=Table`):
//! NAME plus the CRD's additionalPrinterColumns, and AGE, rendered the way kube-apiserver's
//! printers do.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::kinds::ResourceType;

/// Whether the Accept header asks for a Table.
pub fn wants_table(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.contains("as=Table"))
}

/// kube's `HumanDuration`-style age: 45s, 12m, 5h, 3d.
fn human_age(created: Option<&str>) -> String {
    let Some(created) = created.and_then(|c| c.parse::<jiff::Timestamp>().ok()) else {
        return "<unknown>".into();
    };
    let seconds = (jiff::Timestamp::now().as_second() - created.as_second()).max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 3 * 3600 => format!("{}m", s / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// Evaluates the simple JSONPath forms printer columns use (`.status.phase`, `.a[0].b`).
fn simple_json_path(object: &Value, path: &str) -> Value {
    let mut current = object;
    for segment in path.trim_start_matches('.').split('.') {
        let (field, index) = match segment.split_once('[') {
            Some((field, rest)) => (field, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (segment, None),
        };
        let Some(next) = current.get(field) else {
            return Value::Null;
        };
        current = next;
        if let Some(index) = index {
            let Some(next) = current.get(index) else {
                return Value::Null;
            };
            current = next;
        }
    }
    current.clone()
}

fn cell(value: Value, column_type: &str) -> Value {
    match (value, column_type) {
        (Value::String(s), "date") => json!(human_age(Some(&s))),
        (Value::Null, _) => json!("<none>"),
        (other, _) => other,
    }
}

pub fn table(
    rt: &ResourceType,
    version: &str,
    objects: &[Arc<Value>],
    resource_version: u64,
    continue_token: Option<&str>,
) -> Value {
    let custom: Vec<Value> = rt.printer_columns.get(version).cloned().unwrap_or_default();
    let mut definitions = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0}),
    ];
    for column in &custom {
        definitions.push(json!({
            "name": column.get("name").cloned().unwrap_or(json!("")),
            "type": column.get("type").cloned().unwrap_or(json!("string")),
            "format": column.get("format").cloned().unwrap_or(json!("")),
            "description": column.get("description").cloned().unwrap_or(json!("")),
            "priority": column.get("priority").cloned().unwrap_or(json!(0)),
        }));
    }
    let has_age = custom
        .iter()
        .any(|c| c.get("jsonPath").and_then(Value::as_str) == Some(".metadata.creationTimestamp"));
    if !has_age {
        definitions.push(json!({"name": "Age", "type": "string", "format": "", "description": "CreationTimestamp is a timestamp representing the server time when this object was created.", "priority": 0}));
    }
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let mut cells = vec![
                object
                    .pointer("/metadata/name")
                    .cloned()
                    .unwrap_or(json!("")),
            ];
            for column in &custom {
                let path = column
                    .get("jsonPath")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let column_type = column
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("string");
                cells.push(cell(simple_json_path(object, path), column_type));
            }
            if !has_age {
                cells.push(json!(human_age(
                    object
                        .pointer("/metadata/creationTimestamp")
                        .and_then(Value::as_str)
                )));
            }
            json!({
                "cells": cells,
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": object.get("metadata").cloned().unwrap_or(json!({})),
                },
            })
        })
        .collect();
    let mut metadata = json!({"resourceVersion": resource_version.to_string()});
    if let Some(token) = continue_token {
        metadata["continue"] = json!(token);
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": definitions,
        "rows": rows,
    })
}
