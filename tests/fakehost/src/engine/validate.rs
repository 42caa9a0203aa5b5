//! Validation kube-apiserver applies before storing: object names (DNS-1123 subdomain for
//! most kinds, DNS-1123/1035 labels for namespaces and services, path segments for RBAC),
//! label keys and values, the handful of built-in field rules kaas can trip over, and the
//! CRD schema of custom resources through the `SchemaValidator` seam.

use serde_json::Value;

use crate::errors::{ApiError, Cause};
use crate::kinds::ResourceType;
use crate::seams::Policies;

const SUBDOMAIN_MESSAGE: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MESSAGE: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_MESSAGE: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn is_dns1035_label(s: &str) -> bool {
    is_dns_label(s) && s.starts_with(|c: char| c.is_ascii_lowercase())
}

fn invalid_value(field: &str, value: &str, message: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: \"{value}\": {message}"),
        field: field.into(),
    }
}

fn required(field: &str, message: &str) -> Cause {
    Cause {
        reason: "FieldValueRequired".into(),
        message: if message.is_empty() {
            "Required value".into()
        } else {
            format!("Required value: {message}")
        },
        field: field.into(),
    }
}

/// The name rule for this kind, or None if the name is acceptable.
fn name_problem(rt: &ResourceType, name: &str) -> Option<&'static str> {
    match (rt.group.as_str(), rt.resource.as_str()) {
        ("", "namespaces") => (!is_dns_label(name)).then_some(LABEL_MESSAGE),
        ("", "services") => (!is_dns1035_label(name)).then_some(DNS1035_MESSAGE),
        ("rbac.authorization.k8s.io", _) => {
            let bad = name.is_empty()
                || name == "."
                || name == ".."
                || name.contains('/')
                || name.contains('%');
            bad.then_some("may not contain '/' or '%' and may not be '.' or '..'")
        }
        _ => (!is_dns_subdomain(name)).then_some(SUBDOMAIN_MESSAGE),
    }
}

fn label_key_ok(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    prefix.is_none_or(is_dns_subdomain) && label_value_ok(name) && !name.is_empty()
}

fn label_value_ok(value: &str) -> bool {
    value.is_empty()
        || (value.len() <= 63
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && value.starts_with(|c: char| c.is_ascii_alphanumeric())
            && value.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

fn metadata_causes(rt: &ResourceType, object: &Value, causes: &mut Vec<Cause>) {
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if name.is_empty() {
        causes.push(required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else if let Some(message) = name_problem(rt, name) {
        causes.push(invalid_value("metadata.name", name, message));
    }
    if let Some(labels) = object
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
    {
        for (key, value) in labels {
            if !label_key_ok(key) {
                causes.push(invalid_value("metadata.labels", key, "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"));
            }
            match value.as_str() {
                Some(v) if label_value_ok(v) => {}
                _ => causes.push(invalid_value(
                    "metadata.labels",
                    &value.as_str().map(str::to_string).unwrap_or_else(|| value.to_string()),
                    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                )),
            }
        }
    }
}

fn builtin_causes(rt: &ResourceType, object: &Value, causes: &mut Vec<Cause>) {
    match (rt.group.as_str(), rt.resource.as_str()) {
        ("", "pods") => {
            let containers = object.pointer("/spec/containers").and_then(Value::as_array);
            match containers {
                None => causes.push(required("spec.containers", "")),
                Some(list) if list.is_empty() => causes.push(required("spec.containers", "")),
                Some(list) => {
                    for (index, container) in list.iter().enumerate() {
                        if container
                            .get("name")
                            .and_then(Value::as_str)
                            .is_none_or(str::is_empty)
                        {
                            causes.push(required(&format!("spec.containers[{index}].name"), ""));
                        }
                        if container
                            .get("image")
                            .and_then(Value::as_str)
                            .is_none_or(str::is_empty)
                        {
                            causes.push(required(&format!("spec.containers[{index}].image"), ""));
                        }
                    }
                }
            }
        }
        ("", "services") => {
            let spec = object.get("spec");
            let headless = spec
                .and_then(|s| s.get("clusterIP"))
                .and_then(Value::as_str)
                == Some("None");
            let external =
                spec.and_then(|s| s.get("type")).and_then(Value::as_str) == Some("ExternalName");
            let no_ports = spec
                .and_then(|s| s.get("ports"))
                .and_then(Value::as_array)
                .is_none_or(|p| p.is_empty());
            if no_ports && !headless && !external {
                causes.push(required("spec.ports", ""));
            }
        }
        ("", "configmaps") | ("", "secrets") => {
            for field in ["data", "stringData"] {
                if let Some(data) = object.get(field).and_then(Value::as_object) {
                    for (key, value) in data {
                        if !value.is_string() {
                            causes.push(invalid_value(
                                &format!("{field}[{key}]"),
                                &value.to_string(),
                                "must be a string",
                            ));
                        }
                    }
                }
            }
        }
        ("apps", "deployments")
        | ("apps", "statefulsets")
        | ("apps", "daemonsets")
        | ("apps", "replicasets") => {
            let selector = object
                .pointer("/spec/selector/matchLabels")
                .and_then(Value::as_object);
            let labels = object
                .pointer("/spec/template/metadata/labels")
                .and_then(Value::as_object);
            match (selector, labels) {
                (None, _) if object.pointer("/spec/selector/matchExpressions").is_none() => {
                    causes.push(required("spec.selector", ""))
                }
                (Some(selector), labels) => {
                    let matches = selector
                        .iter()
                        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
                    if !matches {
                        causes.push(invalid_value(
                            "spec.template.metadata.labels",
                            &format!("{labels:?}"),
                            "`selector` does not match template `labels`",
                        ));
                    }
                }
                _ => {}
            }
        }
        _ => {}
    }
}

/// Validates (and, for custom resources, defaults) an object about to be stored.
pub fn validate(
    policies: &Policies,
    rt: &ResourceType,
    version: &str,
    object: &mut Value,
) -> Result<(), ApiError> {
    let mut causes = Vec::new();
    metadata_causes(rt, object, &mut causes);
    if rt.builtin {
        builtin_causes(rt, object, &mut causes);
    } else if let Some(schema) = rt.schema(version)
        && let Err(errors) = policies.validator.validate_and_default(schema, object)
    {
        causes.extend(errors.into_iter().map(|e| Cause {
            reason: "FieldValueInvalid".into(),
            message: e.message,
            field: e.path,
        }));
    }
    if causes.is_empty() {
        return Ok(());
    }
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Err(ApiError::invalid(&rt.group, &rt.kind, name, causes))
}
