//! CustomResourceDefinition handling: turning a CRD object into a served resource type,
//! checking the few rules kube-apiserver enforces before accepting one, and writing the
//! status the apiextensions controller would (`Established`, `NamesAccepted`).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{ALL_VERBS, ResourceType};
use crate::errors::{ApiError, Cause};

const GROUP: &str = "apiextensions.k8s.io";
const KIND: &str = "CustomResourceDefinition";

fn cause(field: &str, message: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid".into(),
        message: message.into(),
        field: field.into(),
    }
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

/// Validates a CRD and returns the resource type it defines.
pub fn resource_type_from_crd(crd: &Value) -> Result<ResourceType, ApiError> {
    let name = str_at(crd, "/metadata/name").unwrap_or_default();
    let group = str_at(crd, "/spec/group").unwrap_or_default();
    let plural = str_at(crd, "/spec/names/plural").unwrap_or_default();
    let kind = str_at(crd, "/spec/names/kind").unwrap_or_default();
    let scope = str_at(crd, "/spec/scope").unwrap_or_default();
    let mut causes = Vec::new();
    if group.is_empty() {
        causes.push(cause("spec.group", "Required value"));
    }
    if plural.is_empty() {
        causes.push(cause("spec.names.plural", "Required value"));
    }
    if kind.is_empty() {
        causes.push(cause("spec.names.kind", "Required value"));
    }
    if name != format!("{plural}.{group}") {
        causes.push(cause(
            "metadata.name",
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    if scope != "Namespaced" && scope != "Cluster" {
        causes.push(cause(
            "spec.scope",
            "Unsupported value: must be Cluster or Namespaced",
        ));
    }
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        causes.push(cause(
            "spec.versions",
            "Required value: must have exactly one version marked as storage version",
        ));
    }
    let storage_count = versions
        .iter()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .count();
    if !versions.is_empty() && storage_count != 1 {
        causes.push(cause(
            "spec.versions",
            "must have exactly one version marked as storage version",
        ));
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid(GROUP, KIND, name, causes));
    }

    let mut served = Vec::new();
    let mut schemas = BTreeMap::new();
    let mut printer_columns = BTreeMap::new();
    let mut has_status = false;
    for version in &versions {
        let Some(version_name) = version.get("name").and_then(Value::as_str) else {
            continue;
        };
        if version.get("served").and_then(Value::as_bool) == Some(true) {
            served.push(version_name.to_string());
        }
        if let Some(schema) = version.pointer("/schema/openAPIV3Schema") {
            schemas.insert(version_name.to_string(), schema.clone());
        }
        if let Some(columns) = version
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
        {
            printer_columns.insert(version_name.to_string(), columns.clone());
        }
        if version.pointer("/subresources/status").is_some() {
            has_status = true;
        }
    }
    // Discovery prefers the storage version; kube-apiserver orders by version priority, and
    // for the single-version CRDs kaas uses the two agree.
    served.sort_by_key(|v| {
        versions
            .iter()
            .find(|x| x.get("name").and_then(Value::as_str) == Some(v))
            .and_then(|x| x.get("storage").and_then(Value::as_bool))
            != Some(true)
    });
    let string_list = |pointer: &str| -> Vec<String> {
        crd.pointer(pointer)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(ResourceType {
        group: group.to_string(),
        versions: served,
        resource: plural.to_string(),
        singular: str_at(crd, "/spec/names/singular")
            .map(str::to_string)
            .unwrap_or_else(|| kind.to_lowercase()),
        kind: kind.to_string(),
        namespaced: scope == "Namespaced",
        short_names: string_list("/spec/names/shortNames"),
        categories: string_list("/spec/names/categories"),
        verbs: ALL_VERBS.iter().map(|s| s.to_string()).collect(),
        extra_subresources: Vec::new(),
        has_status,
        tracks_generation: true,
        builtin: false,
        schemas,
        printer_columns,
    })
}

/// The status the apiextensions controllers write once the names are accepted.
pub fn accepted_status(crd: &Value, now: &str) -> Value {
    let names = crd
        .pointer("/spec/names")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let mut accepted = names;
    if let Some(map) = accepted.as_object_mut() {
        if !map.contains_key("singular") {
            let kind = map
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_lowercase();
            map.insert("singular".into(), json!(kind));
        }
        if !map.contains_key("listKind") {
            let kind = map.get("kind").and_then(Value::as_str).unwrap_or_default();
            map.insert("listKind".into(), json!(format!("{kind}List")));
        }
    }
    let stored: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|versions| {
            versions
                .iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    json!({
        "acceptedNames": accepted,
        "storedVersions": stored,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
    })
}
