//! Deletion: finalizers hold an object (it only gains `deletionTimestamp`) until they are
//! all removed; namespace deletion marks the namespace Terminating, deletes its contents and
//! removes the namespace once empty; CRD deletion removes its custom resources first;
//! removing an object garbage-collects dependents whose owners are all gone (background
//! propagation), and `Orphan` strips the owner references instead.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{now_rfc3339, resolve, str_at};
use crate::errors::ApiError;
use crate::kinds::{ResourceRef, ResourceType};
use crate::store::StoreInner;

pub const CRD_CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";
const NAMESPACE_FINALIZER: &str = "kubernetes";

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Propagation {
    #[default]
    Background,
    /// Treated like Background: dependents are deleted once the owner is gone.
    Foreground,
    Orphan,
}

/// Query/body options of a delete.
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    pub dry_run: bool,
    pub propagation: Propagation,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
}

fn is_namespace(rt: &ResourceType) -> bool {
    rt.group.is_empty() && rt.resource == "namespaces"
}

fn is_crd(rt: &ResourceType) -> bool {
    rt.group == "apiextensions.k8s.io" && rt.resource == "customresourcedefinitions"
}

/// Whether something still holds the object (metadata finalizers; for namespaces also the
/// `spec.finalizers` the namespace controller clears).
pub fn pending_finalizers(rt: &ResourceType, object: &Value) -> bool {
    let non_empty = |pointer: &str| {
        object
            .pointer(pointer)
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
    };
    non_empty("/metadata/finalizers") || (is_namespace(rt) && non_empty("/spec/finalizers"))
}

pub(super) fn delete(
    store: &mut StoreInner,
    resource: &ResourceRef,
    namespace: Option<&str>,
    name: &str,
    options: &DeleteOptions,
) -> Result<Arc<Value>, ApiError> {
    let rt = resolve(store, resource, namespace)?;
    if !rt.allows("delete") {
        return Err(ApiError::method_not_allowed(format!(
            "delete is not supported on {}",
            rt.resource
        )));
    }
    let ns = namespace.unwrap_or_default();
    let current = store
        .get(resource, ns, name)
        .ok_or_else(|| ApiError::not_found(&rt.group, &rt.resource, name))?;
    if let Some(uid) = &options.precondition_uid
        && Some(uid.as_str()) != str_at(&current, "/metadata/uid")
    {
        let why = format!(
            "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
            str_at(&current, "/metadata/uid").unwrap_or_default()
        );
        return Err(ApiError::conflict(&rt.group, &rt.resource, name, &why));
    }
    if let Some(rv) = &options.precondition_resource_version
        && Some(rv.as_str()) != str_at(&current, "/metadata/resourceVersion")
    {
        let why = format!(
            "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
            str_at(&current, "/metadata/resourceVersion").unwrap_or_default()
        );
        return Err(ApiError::conflict(&rt.group, &rt.resource, name, &why));
    }
    if options.dry_run || current.pointer("/metadata/deletionTimestamp").is_some() {
        return Ok(current);
    }
    if options.propagation == Propagation::Orphan
        && let Some(uid) = str_at(&current, "/metadata/uid")
    {
        orphan_dependents(store, uid);
    }
    if !pending_finalizers(&rt, &current) {
        return Ok(remove_now(store, &rt, ns, name).unwrap_or(current));
    }
    let mut marked = (*current).clone();
    if let Some(metadata) = marked.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.insert("deletionTimestamp".into(), json!(now_rfc3339()));
        metadata.insert("deletionGracePeriodSeconds".into(), json!(0));
    }
    if is_namespace(&rt) {
        marked["status"] = json!({"phase": "Terminating"});
    }
    let mut latest = store.put(resource, ns, name, marked);
    if is_namespace(&rt) {
        for (content_resource, object) in store.namespace_contents(name) {
            let object_name = str_at(&object, "/metadata/name")
                .unwrap_or_default()
                .to_string();
            // Errors here (e.g. already gone) do not stop the cascade.
            let _ = delete(
                store,
                &content_resource,
                Some(name),
                &object_name,
                &DeleteOptions::default(),
            );
        }
        finish_namespace_if_empty(store, name);
        latest = store.get(resource, ns, name).unwrap_or(latest);
    } else if is_crd(&rt)
        && let Some(defined) = crd_resource(&current)
    {
        for object in store.list(&defined, None) {
            let object_ns = str_at(&object, "/metadata/namespace").map(str::to_string);
            let object_name = str_at(&object, "/metadata/name")
                .unwrap_or_default()
                .to_string();
            let _ = delete(
                store,
                &defined,
                object_ns.as_deref(),
                &object_name,
                &DeleteOptions::default(),
            );
        }
        finish_crd_if_empty(store, &defined);
        latest = store.get(resource, ns, name).unwrap_or(latest);
    }
    Ok(latest)
}

fn crd_resource(crd: &Value) -> Option<ResourceRef> {
    let group = str_at(crd, "/spec/group")?;
    let plural = str_at(crd, "/spec/names/plural")?;
    Some(ResourceRef::new(group, plural))
}

/// Removes the object now and runs what follows a removal (GC, namespace/CRD completion).
pub(super) fn remove_now(
    store: &mut StoreInner,
    rt: &ResourceType,
    namespace: &str,
    name: &str,
) -> Option<Arc<Value>> {
    let removed = store.remove(&rt.reference(), namespace, name)?;
    if is_crd(rt)
        && let Some(defined) = crd_resource(&removed)
    {
        store.registry.remove(&defined);
        store.drop_resource(&defined);
    }
    if let Some(uid) = str_at(&removed, "/metadata/uid") {
        collect_garbage(store, uid);
    }
    if rt.namespaced {
        finish_namespace_if_empty(store, namespace);
    }
    if !rt.builtin {
        finish_crd_if_empty(store, &rt.reference());
    }
    Some(removed)
}

/// Deletes dependents of a removed owner once none of their owners exist any more.
fn collect_garbage(store: &mut StoreInner, owner_uid: &str) {
    for (resource, dependent) in store.dependents_of(owner_uid) {
        let owners_alive = dependent
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| r.get("uid").and_then(Value::as_str))
            .any(|uid| uid != owner_uid && store.uid_exists(uid));
        if owners_alive {
            continue;
        }
        let ns = str_at(&dependent, "/metadata/namespace").map(str::to_string);
        let name = str_at(&dependent, "/metadata/name")
            .unwrap_or_default()
            .to_string();
        let _ = delete(
            store,
            &resource,
            ns.as_deref(),
            &name,
            &DeleteOptions::default(),
        );
    }
}

fn orphan_dependents(store: &mut StoreInner, owner_uid: &str) {
    for (resource, dependent) in store.dependents_of(owner_uid) {
        let mut updated = (*dependent).clone();
        if let Some(refs) = updated
            .pointer_mut("/metadata/ownerReferences")
            .and_then(Value::as_array_mut)
        {
            refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid));
        }
        let ns = str_at(&dependent, "/metadata/namespace")
            .unwrap_or_default()
            .to_string();
        let name = str_at(&dependent, "/metadata/name")
            .unwrap_or_default()
            .to_string();
        store.put(&resource, &ns, &name, updated);
    }
}

/// The namespace controller's last step: a Terminating namespace with no contents drops its
/// `kubernetes` finalizer and disappears (unless other finalizers hold it).
fn finish_namespace_if_empty(store: &mut StoreInner, namespace: &str) {
    let namespaces = ResourceRef::core("namespaces");
    let Some(ns_object) = store.get(&namespaces, "", namespace) else {
        return;
    };
    if ns_object.pointer("/metadata/deletionTimestamp").is_none()
        || !store.namespace_contents(namespace).is_empty()
    {
        return;
    }
    let mut finished = (*ns_object).clone();
    if let Some(finalizers) = finished
        .pointer_mut("/spec/finalizers")
        .and_then(Value::as_array_mut)
    {
        finalizers.retain(|f| f.as_str() != Some(NAMESPACE_FINALIZER));
    }
    let Some(rt) = store.registry.get(&namespaces) else {
        return;
    };
    if pending_finalizers(&rt, &finished) {
        if finished != *ns_object {
            store.put(&namespaces, "", namespace, finished);
        }
        return;
    }
    remove_now(store, &rt, "", namespace);
}

/// A deleting CRD whose custom resources are all gone loses its cleanup finalizer.
fn finish_crd_if_empty(store: &mut StoreInner, defined: &ResourceRef) {
    let crds = ResourceRef::new("apiextensions.k8s.io", "customresourcedefinitions");
    let crd_name = format!("{}.{}", defined.resource, defined.group);
    let Some(crd) = store.get(&crds, "", &crd_name) else {
        return;
    };
    if crd.pointer("/metadata/deletionTimestamp").is_none() || store.count(defined) > 0 {
        return;
    }
    let mut finished = (*crd).clone();
    if let Some(finalizers) = finished
        .pointer_mut("/metadata/finalizers")
        .and_then(Value::as_array_mut)
    {
        finalizers.retain(|f| f.as_str() != Some(CRD_CLEANUP_FINALIZER));
    }
    let Some(rt) = store.registry.get(&crds) else {
        return;
    };
    if pending_finalizers(&rt, &finished) {
        if finished != *crd {
            store.put(&crds, "", &crd_name, finished);
        }
        return;
    }
    remove_now(store, &rt, "", &crd_name);
}
