//! Lists: selectors, `limit`/`continue` paging over a consistent snapshot (every page shows
//! the state at the first page's resourceVersion, or 410 once history no longer covers it),
//! and `resourceVersion`/`resourceVersionMatch` semantics.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::errors::ApiError;
use crate::kinds::ResourceType;
use crate::selectors::Selectors;
use crate::store::{ObjectKey, StoreInner};

/// Query options of a list (the `metav1.ListOptions` subset the fake honours).
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
}

/// One page of a list.
#[derive(Clone, Debug)]
pub struct ObjectList {
    pub items: Vec<Arc<Value>>,
    /// The resourceVersion the page reflects.
    pub resource_version: u64,
    pub continue_token: Option<String>,
    pub remaining_item_count: Option<usize>,
}

fn encode_continue(resource_version: u64, last: &ObjectKey) -> String {
    let token = json!({"v": "meta.k8s.io/v1", "rv": resource_version, "start": format!("{}/{}\u{0}", last.0, last.1)});
    URL_SAFE_NO_PAD.encode(token.to_string())
}

fn decode_continue(token: &str) -> Result<(u64, ObjectKey), ApiError> {
    let invalid = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|_| invalid())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    let rv = value
        .get("rv")
        .and_then(Value::as_u64)
        .ok_or_else(invalid)?;
    let start = value
        .get("start")
        .and_then(Value::as_str)
        .ok_or_else(invalid)?;
    let start = start.strip_suffix('\u{0}').unwrap_or(start);
    let (namespace, name) = start.split_once('/').ok_or_else(invalid)?;
    Ok((rv, (namespace.to_string(), name.to_string())))
}

fn parse_resource_version(raw: &str) -> Result<u64, ApiError> {
    raw.parse::<u64>()
        .map_err(|_| ApiError::bad_request(format!("invalid resource version: {raw:?}")))
}

pub(super) fn list(
    store: &StoreInner,
    rt: &ResourceType,
    namespace: Option<&str>,
    options: &ListOptions,
) -> Result<ObjectList, ApiError> {
    let selectors = Selectors::parse(
        &rt.resource,
        options.label_selector.as_deref(),
        options.field_selector.as_deref(),
    )?;
    let requested_rv = options
        .resource_version
        .as_deref()
        .filter(|s| !s.is_empty());
    let reference = rt.reference();

    let (at, start_after) = match options.continue_token.as_deref().filter(|s| !s.is_empty()) {
        Some(token) => {
            if requested_rv.is_some_and(|rv| rv != "0") {
                return Err(ApiError::bad_request(
                    "specifying resource version is not allowed when using continue",
                ));
            }
            let (rv, last) = decode_continue(token)?;
            (rv, Some(last))
        }
        None => {
            let current = store.resource_version();
            let at = match (requested_rv, options.resource_version_match.as_deref()) {
                (Some(rv), Some("Exact")) => parse_resource_version(rv)?,
                (Some(rv), _) if rv != "0" => {
                    let wanted = parse_resource_version(rv)?;
                    if wanted > current {
                        return Err(ApiError::timeout(format!(
                            "Too large resource version: {wanted}, current: {current}"
                        )));
                    }
                    current
                }
                _ => current,
            };
            (at, None)
        }
    };

    let paging = options.limit.is_some_and(|l| l > 0);
    // The common case (latest state, no paging) avoids rebuilding a snapshot.
    let candidates: Vec<(ObjectKey, Arc<Value>)> = if at == store.resource_version()
        && start_after.is_none()
    {
        store
            .list(&reference, namespace)
            .into_iter()
            .map(|o| {
                let ns = o
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let name = o
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                ((ns.to_string(), name.to_string()), o)
            })
            .collect()
    } else {
        let snapshot = store.snapshot_at(&reference, at).map_err(|e| {
            if e.code == 410 && start_after.is_some() {
                ApiError::expired("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.")
            } else {
                e
            }
        })?;
        snapshot
            .into_iter()
            .filter(|((ns, _), _)| namespace.is_none_or(|wanted| ns == wanted))
            .collect()
    };

    let mut matching = candidates
        .into_iter()
        .filter(|(key, _)| start_after.as_ref().is_none_or(|last| key > last))
        .filter(|(_, object)| selectors.matches(object));

    let mut items = Vec::new();
    let mut last_key = None;
    let limit = options.limit.filter(|_| paging).unwrap_or(usize::MAX);
    for (key, object) in matching.by_ref() {
        if items.len() == limit {
            // One more exists: the page is not the last.
            let remaining = 1 + matching.count();
            let selector_used = options
                .label_selector
                .as_deref()
                .is_some_and(|s| !s.is_empty())
                || options
                    .field_selector
                    .as_deref()
                    .is_some_and(|s| !s.is_empty());
            return Ok(ObjectList {
                items,
                resource_version: at,
                continue_token: last_key.as_ref().map(|k| encode_continue(at, k)),
                remaining_item_count: (!selector_used).then_some(remaining),
            });
        }
        last_key = Some(key);
        items.push(object);
    }
    Ok(ObjectList {
        items,
        resource_version: at,
        continue_token: None,
        remaining_item_count: None,
    })
}
