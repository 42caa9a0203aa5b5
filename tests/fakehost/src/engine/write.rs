//! Create, update and patch. The rules: the server owns uid, creationTimestamp,
//! resourceVersion and generation (bumped only when something outside metadata/status
//! changes); kinds with a status subresource ignore `.status` on the main endpoint and
//! everything but `.status` on `/status`; a stale resourceVersion is a 409 Conflict; a no-op
//! write stores nothing; a deleting object may not gain finalizers and disappears once its
//! last finalizer is removed.

use serde_json::{Map, Value, json};

use super::delete::{pending_finalizers, remove_now};
use super::{defaults, now_rfc3339, resolve, str_at, validate};
use crate::errors::ApiError;
use crate::kinds::{ResourceRef, ResourceType, crd, split_api_version};
use crate::managed::{self, WriteContext};
use crate::patch::PatchType;
use crate::seams::Policies;
use crate::store::StoreInner;

/// Options shared by create, update and patch.
#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    /// `dryRun=All`: run every check, store nothing.
    pub dry_run: bool,
    /// `fieldManager`; required for apply patches.
    pub field_manager: Option<String>,
    /// `force` for apply patches: take ownership of conflicting fields.
    pub force: bool,
}

/// A patch request: its type (from Content-Type), raw body and target endpoint.
#[derive(Clone, Debug)]
pub struct PatchRequest<'a> {
    pub patch_type: PatchType,
    pub body: &'a [u8],
    pub status_subresource: bool,
}

const SYSTEM_METADATA: &[&str] = &[
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "selfLink",
    "resourceVersion",
];

fn generated_suffix() -> String {
    // The alphabet kube-apiserver uses for generateName (no vowels, no confusable digits).
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn new_uid() -> String {
    let bits: u128 = rand::random();
    let bits = (bits & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Checks apiVersion/kind against the endpoint (filling them in when absent) and returns
/// the version the object is written in.
pub(super) fn check_type_meta(rt: &ResourceType, object: &mut Value) -> Result<String, ApiError> {
    let Some(map) = object.as_object_mut() else {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON object",
        ));
    };
    let api_version = match map.get("apiVersion").and_then(Value::as_str) {
        Some(api_version) => {
            let (group, version) = split_api_version(api_version);
            if group != rt.group || !rt.serves_version(version) {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({api_version}) does not match the expected API version ({})",
                    rt.api_version(rt.preferred_version())
                )));
            }
            version.to_string()
        }
        None => {
            let version = rt.preferred_version().to_string();
            map.insert("apiVersion".into(), json!(rt.api_version(&version)));
            version
        }
    };
    match map.get("kind").and_then(Value::as_str) {
        Some(kind) if kind != rt.kind => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({kind}) does not match the expected kind ({})",
                rt.kind
            )));
        }
        Some(_) => {}
        None => {
            map.insert("kind".into(), json!(rt.kind));
        }
    }
    if !map.get("metadata").is_some_and(Value::is_object) {
        map.insert("metadata".into(), json!({}));
    }
    Ok(api_version)
}

fn metadata_mut(object: &mut Value) -> &mut Map<String, Value> {
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = json!({});
    }
    match object.get_mut("metadata") {
        Some(Value::Object(map)) => map,
        // Unreachable: ensured an object just above.
        _ => unreachable!("metadata was just made an object"),
    }
}

/// The namespace in the body must agree with the URL; it is filled in when absent.
pub(super) fn reconcile_namespace(
    rt: &ResourceType,
    namespace: Option<&str>,
    object: &mut Value,
) -> Result<(), ApiError> {
    let metadata = metadata_mut(object);
    match (rt.namespaced, namespace) {
        (true, Some(ns)) => match metadata.get("namespace").and_then(Value::as_str) {
            Some(body_ns) if !body_ns.is_empty() && body_ns != ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => {
                metadata.insert("namespace".into(), json!(ns));
            }
        },
        _ => {
            metadata.remove("namespace");
        }
    }
    Ok(())
}

/// Everything outside metadata (and status, for kinds with a status subresource): what
/// `generation` counts changes of.
fn spec_view(rt: &ResourceType, object: &Value) -> Value {
    let mut view = object.clone();
    if let Some(map) = view.as_object_mut() {
        for key in ["metadata", "apiVersion", "kind"] {
            map.remove(key);
        }
        if rt.has_status {
            map.remove("status");
        }
    }
    view
}

/// The object without resourceVersion and managedFields timestamps, for no-op detection.
fn comparable(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(metadata) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("resourceVersion");
        if let Some(Value::Array(entries)) = metadata.get_mut("managedFields") {
            for entry in entries.iter_mut().filter_map(Value::as_object_mut) {
                entry.remove("time");
            }
        }
    }
    copy
}

fn check_namespace_usable(
    store: &StoreInner,
    rt: &ResourceType,
    namespace: Option<&str>,
    name: &str,
) -> Result<Option<Value>, ApiError> {
    let Some(ns) = namespace.filter(|_| rt.namespaced) else {
        return Ok(None);
    };
    let Some(ns_object) = store.get(&ResourceRef::core("namespaces"), "", ns) else {
        return Err(ApiError::not_found("", "namespaces", ns));
    };
    if ns_object.pointer("/metadata/deletionTimestamp").is_some() {
        return Err(ApiError::namespace_terminating(
            &rt.group,
            &rt.resource,
            name,
            ns,
        ));
    }
    Ok(Some((*ns_object).clone()))
}

fn admit(
    policies: &Policies,
    rt: &ResourceType,
    namespace_object: Option<&Value>,
    object: &mut Value,
) -> Result<(), ApiError> {
    if rt.group.is_empty()
        && rt.resource == "pods"
        && let (Some(plugin), Some(ns)) = (&policies.pod_admission, namespace_object)
    {
        plugin.admit_pod(ns, object).map_err(ApiError::admission)?;
    }
    Ok(())
}

/// Checks and completes an object about to be created (everything but storing it).
pub(super) fn prepare_new(
    store: &StoreInner,
    policies: &Policies,
    rt: &ResourceType,
    namespace: Option<&str>,
    mut object: Value,
    now: &str,
) -> Result<(Value, String), ApiError> {
    let version = check_type_meta(rt, &mut object)?;
    reconcile_namespace(rt, namespace, &mut object)?;
    let metadata = metadata_mut(&mut object);
    if metadata
        .get("resourceVersion")
        .and_then(Value::as_str)
        .is_some_and(|rv| !rv.is_empty())
    {
        return Err(ApiError::internal(
            "resourceVersion should not be set on objects to be created",
        ));
    }
    let has_name = metadata
        .get("name")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    if !has_name && let Some(prefix) = metadata.get("generateName").and_then(Value::as_str) {
        let name = format!("{prefix}{}", generated_suffix());
        metadata.insert("name".into(), json!(name));
    }
    for key in SYSTEM_METADATA {
        metadata.remove(*key);
    }
    let name = str_at(&object, "/metadata/name")
        .unwrap_or_default()
        .to_string();
    if rt.has_status
        && let Some(map) = object.as_object_mut()
    {
        map.remove("status");
    }
    let namespace_object = check_namespace_usable(store, rt, namespace, &name)?;
    defaults::on_create(store, rt, &mut object, now);
    defaults::check(store, rt, None, &object)?;
    admit(policies, rt, namespace_object.as_ref(), &mut object)?;
    validate::validate(policies, rt, &version, &mut object)?;
    if rt.group == "apiextensions.k8s.io" && rt.resource == "customresourcedefinitions" {
        let defined = crd::resource_type_from_crd(&object)?;
        if let Some(existing) = store.registry.get(&defined.reference())
            && existing.builtin
        {
            return Err(ApiError::invalid_field(
                &rt.group,
                &rt.kind,
                &name,
                "spec.names.plural",
                "Invalid value: conflicts with a built-in resource",
            ));
        }
    }
    let uid = new_uid();
    defaults::with_uid(rt, &mut object, &uid);
    let metadata = metadata_mut(&mut object);
    metadata.insert("uid".into(), json!(uid));
    metadata.insert("creationTimestamp".into(), json!(now));
    if rt.tracks_generation {
        metadata.insert("generation".into(), json!(1));
    }
    Ok((object, version))
}

/// Stores a prepared object; 409 AlreadyExists if the name is taken.
pub(super) fn insert_new(
    store: &mut StoreInner,
    rt: &ResourceType,
    namespace: Option<&str>,
    object: Value,
    dry_run: bool,
) -> Result<Value, ApiError> {
    let name = str_at(&object, "/metadata/name")
        .unwrap_or_default()
        .to_string();
    let ns = namespace.filter(|_| rt.namespaced).unwrap_or_default();
    if store.get(&rt.reference(), ns, &name).is_some() {
        return Err(ApiError::already_exists(&rt.group, &rt.resource, &name));
    }
    if dry_run {
        return Ok(object);
    }
    let stored = store.put(&rt.reference(), ns, &name, object);
    if rt.group == "apiextensions.k8s.io" && rt.resource == "customresourcedefinitions" {
        let defined = crd::resource_type_from_crd(&stored)?;
        store.registry.insert(defined);
    }
    Ok((*stored).clone())
}

fn manager(options: &WriteOptions) -> &str {
    options
        .field_manager
        .as_deref()
        .filter(|m| !m.is_empty())
        .unwrap_or("unknown")
}

pub(super) fn create(
    store: &mut StoreInner,
    policies: &Policies,
    resource: &ResourceRef,
    namespace: Option<&str>,
    mut object: Value,
    options: &WriteOptions,
) -> Result<Value, ApiError> {
    let rt = resolve(store, resource, namespace)?;
    if !rt.allows("create") {
        return Err(ApiError::method_not_allowed(format!(
            "create is not supported on {}",
            rt.resource
        )));
    }
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("managedFields");
    }
    let now = now_rfc3339();
    let (mut object, version) = prepare_new(store, policies, &rt, namespace, object, &now)?;
    let api_version = rt.api_version(&version);
    let ctx = WriteContext {
        manager: manager(options),
        api_version: &api_version,
        now: &now,
        status_subresource: false,
    };
    managed::track_update(&rt, None, &mut object, &ctx);
    insert_new(store, &rt, namespace, object, options.dry_run)
}

/// Builds the object an update would store from the current one and the incoming body.
pub(super) fn merge_for_update(
    rt: &ResourceType,
    current: &Value,
    mut incoming: Value,
    status_subresource: bool,
) -> Value {
    if status_subresource {
        let mut next = current.clone();
        match incoming.get("status") {
            Some(status) => next["status"] = status.clone(),
            None => {
                if let Some(map) = next.as_object_mut() {
                    map.remove("status");
                }
            }
        }
        return next;
    }
    if rt.has_status
        && let Some(map) = incoming.as_object_mut()
    {
        match current.get("status") {
            Some(status) => {
                map.insert("status".into(), status.clone());
            }
            None => {
                map.remove("status");
            }
        }
    }
    let current_metadata = current
        .get("metadata")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let metadata = metadata_mut(&mut incoming);
    for key in SYSTEM_METADATA
        .iter()
        .chain(&["name", "namespace", "managedFields"])
    {
        match current_metadata.get(*key) {
            Some(value) => {
                metadata.insert(key.to_string(), value.clone());
            }
            None => {
                metadata.remove(*key);
            }
        }
    }
    incoming
}

fn string_set(object: &Value, pointer: &str) -> Vec<String> {
    object
        .pointer(pointer)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The common tail of update and patch: checks, generation, field tracking, store.
#[allow(clippy::too_many_arguments)]
pub(super) fn finish_update(
    store: &mut StoreInner,
    policies: &Policies,
    rt: &ResourceType,
    current: &Value,
    mut next: Value,
    status_subresource: bool,
    track_fields: bool,
    options: &WriteOptions,
) -> Result<Value, ApiError> {
    let name = str_at(current, "/metadata/name")
        .unwrap_or_default()
        .to_string();
    let namespace = str_at(current, "/metadata/namespace")
        .unwrap_or_default()
        .to_string();
    let version = check_type_meta(rt, &mut next)?;
    if current.pointer("/metadata/deletionTimestamp").is_some() {
        let before = string_set(current, "/metadata/finalizers");
        let added: Vec<String> = string_set(&next, "/metadata/finalizers")
            .into_iter()
            .filter(|f| !before.contains(f))
            .collect();
        if !added.is_empty() {
            return Err(ApiError::invalid_field(
                &rt.group,
                &rt.kind,
                &name,
                "metadata.finalizers",
                &format!(
                    "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"
                ),
            ));
        }
    }
    if !status_subresource {
        defaults::on_update(store, rt, current, &mut next);
        defaults::check(store, rt, Some(current), &next)?;
        let namespace_object = if rt.namespaced {
            store
                .get(&ResourceRef::core("namespaces"), "", &namespace)
                .map(|o| (*o).clone())
        } else {
            None
        };
        admit(policies, rt, namespace_object.as_ref(), &mut next)?;
    }
    validate::validate(policies, rt, &version, &mut next)?;
    if rt.tracks_generation && spec_view(rt, current) != spec_view(rt, &next) {
        let generation = current
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        metadata_mut(&mut next).insert("generation".into(), json!(generation + 1));
    }
    let now = now_rfc3339();
    if track_fields {
        let api_version = rt.api_version(&version);
        let ctx = WriteContext {
            manager: manager(options),
            api_version: &api_version,
            now: &now,
            status_subresource,
        };
        managed::track_update(rt, Some(current), &mut next, &ctx);
    }
    if comparable(current) == comparable(&next) {
        return Ok(current.clone());
    }
    if options.dry_run {
        return Ok(next);
    }
    let ns = if rt.namespaced {
        namespace.as_str()
    } else {
        ""
    };
    if next.pointer("/metadata/deletionTimestamp").is_some() && !pending_finalizers(rt, &next) {
        let stored = store.put(&rt.reference(), ns, &name, next);
        let removed = remove_now(store, rt, ns, &name).unwrap_or(stored);
        return Ok((*removed).clone());
    }
    let stored = store.put(&rt.reference(), ns, &name, next);
    if rt.group == "apiextensions.k8s.io"
        && rt.resource == "customresourcedefinitions"
        && !status_subresource
    {
        // A CRD edit (new version, schema change) takes effect at once.
        let defined = crd::resource_type_from_crd(&stored)?;
        store.registry.insert(defined);
    }
    Ok((*stored).clone())
}

pub(super) fn update(
    store: &mut StoreInner,
    policies: &Policies,
    resource: &ResourceRef,
    namespace: Option<&str>,
    mut object: Value,
    status_subresource: bool,
    options: &WriteOptions,
) -> Result<Value, ApiError> {
    let rt = resolve(store, resource, namespace)?;
    if (status_subresource && !rt.has_status) || !rt.allows("update") {
        return Err(ApiError::path_not_found());
    }
    check_type_meta(&rt, &mut object)?;
    let name = str_at(&object, "/metadata/name")
        .unwrap_or_default()
        .to_string();
    let ns = namespace.unwrap_or_default();
    let current = store
        .get(resource, ns, &name)
        .ok_or_else(|| ApiError::not_found(&rt.group, &rt.resource, &name))?;
    match str_at(&object, "/metadata/resourceVersion").filter(|rv| !rv.is_empty()) {
        Some(rv) if Some(rv) != str_at(&current, "/metadata/resourceVersion") => {
            return Err(ApiError::stale_resource_version(
                &rt.group,
                &rt.resource,
                &name,
            ));
        }
        Some(_) => {}
        None if !rt.builtin => {
            // Custom resources do not allow unconditional updates.
            return Err(ApiError::invalid_field(
                &rt.group,
                &rt.kind,
                &name,
                "metadata.resourceVersion",
                "Invalid value: 0x0: must be specified for an update",
            ));
        }
        None => {}
    }
    let next = merge_for_update(&rt, &current, object, status_subresource);
    finish_update(
        store,
        policies,
        &rt,
        &current,
        next,
        status_subresource,
        true,
        options,
    )
}
