//! The API semantics shared by the HTTP layer and in-process callers (the simulated K3K
//! controller): resolving resources, get/list with selectors and paging, create/update/patch
//! with resourceVersion, generation, status-subresource and field-management rules,
//! finalizer-aware deletion with namespace cascade and ownerReference garbage collection,
//! and watches. Everything happens under the store lock, so each call is atomic.

mod defaults;
mod delete;
mod list;
mod patching;
mod quota;
mod rbac_writes;
mod services;
mod validate;
mod watch;
mod write;

use std::sync::Arc;

use serde_json::Value;

use crate::errors::ApiError;
use crate::kinds::{ResourceRef, ResourceType};
use crate::seams::{Decision, Policies, RbacObjects, RequestAttributes, UserInfo};
use crate::store::{Store, StoreConfig, StoreInner};

pub use delete::{DeleteOptions, Propagation};
pub use list::{ListOptions, ObjectList};
pub use watch::{WatchEvent, WatchOptions, Watcher};
pub use write::{PatchRequest, WriteOptions};

/// A handle on the fake cluster's API semantics. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    store: Store,
    policies: Policies,
}

/// `2025-01-01T00:00:00Z`, the timestamp format of Kubernetes metadata.
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

pub(crate) fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

impl Engine {
    pub fn new(policies: Policies, history_len: usize) -> Self {
        Self {
            inner: Arc::new(EngineInner {
                store: Store::new(StoreConfig { history_len }),
                policies,
            }),
        }
    }

    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    pub(crate) fn policies(&self) -> &Policies {
        &self.inner.policies
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.store().lock().resource_version()
    }

    /// The served type of a resource, if any.
    pub fn resource_type(&self, resource: &ResourceRef) -> Option<Arc<ResourceType>> {
        self.store().lock().registry.get(resource)
    }

    /// The served type for an apiVersion/kind pair (e.g. `k3k.io/v1beta1`, `Cluster`).
    pub fn resource_for_kind(&self, api_version: &str, kind: &str) -> Option<ResourceRef> {
        self.store()
            .lock()
            .registry
            .by_kind(api_version, kind)
            .map(|rt| rt.reference())
    }

    /// A copy of the registry, for discovery.
    pub fn registry(&self) -> crate::kinds::Registry {
        self.store().lock().registry.clone()
    }

    pub fn get(
        &self,
        resource: &ResourceRef,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        let store = self.store().lock();
        let rt = resolve(&store, resource, namespace)?;
        store
            .get(resource, namespace.unwrap_or_default(), name)
            .map(|o| (*o).clone())
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.resource, name))
    }

    pub fn list(
        &self,
        resource: &ResourceRef,
        namespace: Option<&str>,
        options: &ListOptions,
    ) -> Result<ObjectList, ApiError> {
        let store = self.store().lock();
        let rt = resolve_collection(&store, resource, namespace)?;
        list::list(&store, &rt, namespace, options)
    }

    pub fn create(
        &self,
        resource: &ResourceRef,
        namespace: Option<&str>,
        object: Value,
        options: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let mut store = self.store().lock();
        write::create(
            &mut store,
            self.policies(),
            resource,
            namespace,
            object,
            options,
        )
    }

    /// `create` on behalf of `user`, as the HTTP API does it: a Role, ClusterRole or binding
    /// is refused if it would grant `user` more than it holds (RBAC's escalation check).
    pub fn create_as(
        &self,
        user: &UserInfo,
        resource: &ResourceRef,
        namespace: Option<&str>,
        object: Value,
        options: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let mut store = self.store().lock();
        rbac_writes::create(
            &mut store,
            self.policies(),
            user,
            resource,
            namespace,
            object,
            options,
        )
    }

    /// PUT semantics: replaces the object (its status is kept when the kind has a status
    /// subresource); a set `metadata.resourceVersion` must match the stored one.
    pub fn update(
        &self,
        resource: &ResourceRef,
        namespace: Option<&str>,
        object: Value,
        options: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let mut store = self.store().lock();
        write::update(
            &mut store,
            self.policies(),
            resource,
            namespace,
            object,
            false,
            options,
        )
    }

    /// `update` on behalf of `user`, with RBAC's escalation check (see `create_as`).
    pub fn update_as(
        &self,
        user: &UserInfo,
        resource: &ResourceRef,
        namespace: Option<&str>,
        object: Value,
        options: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let mut store = self.store().lock();
        rbac_writes::update(
            &mut store,
            self.policies(),
            user,
            resource,
            namespace,
            object,
            options,
        )
    }

    /// PUT on `/status`: only `.status` of `object` is taken.
    pub fn update_status(
        &self,
        resource: &ResourceRef,
        namespace: Option<&str>,
        object: Value,
        options: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let mut store = self.store().lock();
        write::update(
            &mut store,
            self.policies(),
            resource,
            namespace,
            object,
            true,
            options,
        )
    }

    pub fn patch(
        &self,
        resource: &ResourceRef,
        namespace: Option<&str>,
        name: &str,
        request: &PatchRequest<'_>,
        options: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let mut store = self.store().lock();
        patching::patch(
            &mut store,
            self.policies(),
            resource,
            namespace,
            name,
            request,
            options,
        )
    }

    /// `patch` (server-side apply included) on behalf of `user`, with RBAC's escalation check
    /// on the patched object (see `create_as`).
    pub fn patch_as(
        &self,
        user: &UserInfo,
        resource: &ResourceRef,
        namespace: Option<&str>,
        name: &str,
        request: &PatchRequest<'_>,
        options: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let mut store = self.store().lock();
        rbac_writes::patch(
            &mut store,
            self.policies(),
            user,
            resource,
            namespace,
            name,
            request,
            options,
        )
    }

    /// Deletes an object; with finalizers it only gains a deletionTimestamp. Returns the
    /// object as last seen.
    pub fn delete(
        &self,
        resource: &ResourceRef,
        namespace: Option<&str>,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Value, ApiError> {
        let mut store = self.store().lock();
        delete::delete(&mut store, resource, namespace, name, options).map(|o| (*o).clone())
    }

    /// Deletes every matching object of a collection; returns what was deleted.
    pub fn delete_collection(
        &self,
        resource: &ResourceRef,
        namespace: Option<&str>,
        list_options: &ListOptions,
        options: &DeleteOptions,
    ) -> Result<Vec<Value>, ApiError> {
        let mut store = self.store().lock();
        let rt = resolve_collection(&store, resource, namespace)?;
        let listed = list::list(&store, &rt, namespace, list_options)?;
        let mut deleted = Vec::new();
        for object in listed.items {
            let ns = str_at(&object, "/metadata/namespace").map(str::to_string);
            let name = str_at(&object, "/metadata/name")
                .unwrap_or_default()
                .to_string();
            match delete::delete(&mut store, resource, ns.as_deref(), &name, options) {
                Ok(gone) => deleted.push((*gone).clone()),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(deleted)
    }

    /// Starts a watch. Events are filtered by namespace and selectors.
    pub fn watch(
        &self,
        resource: &ResourceRef,
        namespace: Option<&str>,
        options: &WatchOptions,
    ) -> Result<Watcher, ApiError> {
        let store = self.store().lock();
        let rt = resolve_collection(&store, resource, namespace)?;
        watch::start(&store, &rt, namespace, options)
    }

    /// Decides a request for `user`: `system:masters` always, others through the authorizer.
    pub fn authorize(&self, user: &UserInfo, attrs: &RequestAttributes) -> Decision {
        if user.is_master() {
            return Decision {
                allowed: true,
                reason: "system:masters".into(),
            };
        }
        let rbac = self.rbac_objects();
        self.policies().authorizer.authorize(&rbac, user, attrs)
    }

    /// The Roles, ClusterRoles and bindings in the store now (what RBAC decides from).
    pub fn rbac_objects(&self) -> RbacObjects {
        rbac_writes::rbac_objects(&self.store().lock())
    }

    /// How many objects of a resource exist (for tests and benchmarks).
    pub fn count(&self, resource: &ResourceRef) -> usize {
        self.store().lock().count(resource)
    }
}

/// The type of `resource`, checking that a namespace is given exactly when it is namespaced.
pub(crate) fn resolve(
    store: &StoreInner,
    resource: &ResourceRef,
    namespace: Option<&str>,
) -> Result<Arc<ResourceType>, ApiError> {
    let rt = store
        .registry
        .get(resource)
        .ok_or_else(ApiError::path_not_found)?;
    if rt.namespaced != namespace.is_some() {
        return Err(ApiError::path_not_found());
    }
    Ok(rt)
}

/// Like `resolve`, but namespaced collections may be listed across all namespaces.
pub(crate) fn resolve_collection(
    store: &StoreInner,
    resource: &ResourceRef,
    namespace: Option<&str>,
) -> Result<Arc<ResourceType>, ApiError> {
    let rt = store
        .registry
        .get(resource)
        .ok_or_else(ApiError::path_not_found)?;
    if !rt.namespaced && namespace.is_some() {
        return Err(ApiError::path_not_found());
    }
    Ok(rt)
}
