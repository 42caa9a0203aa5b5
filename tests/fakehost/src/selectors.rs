//! Label and field selectors as kube-apiserver parses them. Unsupported field selectors are
//! rejected (400) like the real server does, rather than silently matching everything.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::errors::ApiError;

#[derive(Clone, Debug, PartialEq)]
enum LabelRequirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A parsed `labelSelector`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LabelSelector {
    requirements: Vec<LabelRequirement>,
}

/// Splits on commas that are not inside parentheses.
fn split_top_level(input: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (index, ch) in input.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&input[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    parts.push(&input[start..]);
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

fn valid_label_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 317
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
}

fn parse_set(input: &str) -> Option<BTreeSet<String>> {
    let inner = input.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(inner.split(',').map(|v| v.trim().to_string()).collect())
}

impl LabelSelector {
    pub fn parse(input: &str) -> Result<Self, ApiError> {
        let bad = |part: &str| {
            ApiError::bad_request(format!(
                "unable to parse requirement: invalid label selector: {part:?}"
            ))
        };
        let mut requirements = Vec::new();
        for part in split_top_level(input) {
            let requirement = if let Some(key) = part.strip_prefix('!') {
                LabelRequirement::DoesNotExist(key.trim().to_string())
            } else if let Some((key, values)) = part.split_once(" notin ") {
                LabelRequirement::NotIn(
                    key.trim().to_string(),
                    parse_set(values).ok_or_else(|| bad(part))?,
                )
            } else if let Some((key, values)) = part.split_once(" in ") {
                LabelRequirement::In(
                    key.trim().to_string(),
                    parse_set(values).ok_or_else(|| bad(part))?,
                )
            } else if let Some((key, value)) = part.split_once("!=") {
                LabelRequirement::NotEquals(key.trim().to_string(), value.trim().to_string())
            } else if let Some((key, value)) = part.split_once("==") {
                LabelRequirement::Equals(key.trim().to_string(), value.trim().to_string())
            } else if let Some((key, value)) = part.split_once('=') {
                LabelRequirement::Equals(key.trim().to_string(), value.trim().to_string())
            } else {
                LabelRequirement::Exists(part.to_string())
            };
            let key = match &requirement {
                LabelRequirement::Equals(k, _)
                | LabelRequirement::NotEquals(k, _)
                | LabelRequirement::In(k, _)
                | LabelRequirement::NotIn(k, _)
                | LabelRequirement::Exists(k)
                | LabelRequirement::DoesNotExist(k) => k,
            };
            if !valid_label_key(key) {
                return Err(bad(part));
            }
            requirements.push(requirement);
        }
        Ok(Self { requirements })
    }

    pub fn matches(&self, object: &Value) -> bool {
        let labels = object
            .pointer("/metadata/labels")
            .and_then(Value::as_object);
        let label = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
        self.requirements
            .iter()
            .all(|requirement| match requirement {
                LabelRequirement::Equals(k, v) => label(k) == Some(v.as_str()),
                LabelRequirement::NotEquals(k, v) => label(k) != Some(v.as_str()),
                LabelRequirement::In(k, values) => label(k).is_some_and(|l| values.contains(l)),
                LabelRequirement::NotIn(k, values) => label(k).is_none_or(|l| !values.contains(l)),
                LabelRequirement::Exists(k) => label(k).is_some(),
                LabelRequirement::DoesNotExist(k) => label(k).is_none(),
            })
    }
}

/// A parsed `fieldSelector`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FieldSelector {
    /// (field, value, wanted equal?)
    terms: Vec<(String, String, bool)>,
}

/// Fields every resource supports, plus the per-resource extras kube-apiserver registers.
fn field_supported(resource: &str, field: &str) -> bool {
    match field {
        "metadata.name" | "metadata.namespace" => true,
        "spec.nodeName"
        | "status.phase"
        | "spec.restartPolicy"
        | "spec.schedulerName"
        | "spec.serviceAccountName"
        | "status.podIP" => resource == "pods",
        "type" => resource == "secrets" || resource == "events",
        "spec.unschedulable" => resource == "nodes",
        "involvedObject.name"
        | "involvedObject.namespace"
        | "involvedObject.kind"
        | "involvedObject.uid"
        | "reason" => resource == "events",
        _ => false,
    }
}

impl FieldSelector {
    pub fn parse(resource: &str, input: &str) -> Result<Self, ApiError> {
        let mut terms = Vec::new();
        for part in split_top_level(input) {
            let (field, value, equal) = if let Some((f, v)) = part.split_once("!=") {
                (f, v, false)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, v, true)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, v, true)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{part}'; can't understand '{part}'"
                )));
            };
            let field = field.trim();
            if !field_supported(resource, field) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field}"
                )));
            }
            terms.push((field.to_string(), value.trim().to_string(), equal));
        }
        Ok(Self { terms })
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.terms.iter().all(|(field, value, equal)| {
            let pointer = format!("/{}", field.replace('.', "/"));
            let actual = match object.pointer(&pointer) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(Value::Number(n)) => n.to_string(),
                _ => String::new(),
            };
            (actual == *value) == *equal
        })
    }
}

/// Both selectors of a list or watch.
#[derive(Clone, Debug, Default)]
pub struct Selectors {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Selectors {
    pub fn parse(
        resource: &str,
        labels: Option<&str>,
        fields: Option<&str>,
    ) -> Result<Self, ApiError> {
        Ok(Self {
            labels: labels
                .map(LabelSelector::parse)
                .transpose()?
                .unwrap_or_default(),
            fields: fields
                .map(|f| FieldSelector::parse(resource, f))
                .transpose()?
                .unwrap_or_default(),
        })
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.labels.matches(object) && self.fields.matches(object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selector_operators() {
        let object = json!({"metadata": {"labels": {"app": "web", "tier": "front"}}});
        let matches = |s: &str| LabelSelector::parse(s).map(|sel| sel.matches(&object));
        assert_eq!(matches("app=web"), Ok(true));
        assert_eq!(matches("app!=web"), Ok(false));
        assert_eq!(matches("app in (web, db),tier"), Ok(true));
        assert_eq!(matches("app notin (web)"), Ok(false));
        assert_eq!(matches("!missing,app"), Ok(true));
        assert_eq!(matches("!app"), Ok(false));
        assert!(LabelSelector::parse("app in web").is_err());
    }

    #[test]
    fn unsupported_field_selector_is_rejected() {
        assert!(FieldSelector::parse("configmaps", "spec.nodeName=a").is_err());
        let selector = FieldSelector::parse("pods", "spec.nodeName=a,metadata.name!=x");
        let pod = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "a"}});
        assert_eq!(selector.map(|s| s.matches(&pod)), Ok(true));
    }
}
