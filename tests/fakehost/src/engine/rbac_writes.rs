//! User writes of Roles, ClusterRoles, RoleBindings and ClusterRoleBindings, as
//! kube-apiserver's policy-based RBAC storages take them: `rbac::escalation` decides on the
//! object as it would be stored, under the same store lock as the write, against the RBAC
//! objects stored at that moment. Every other write, and every in-process one, passes as is.

use std::sync::Arc;

use serde_json::Value;

use super::write::{self, PatchRequest, WriteOptions};
use super::{patching, str_at};
use crate::errors::ApiError;
use crate::kinds::ResourceRef;
use crate::policies::{to_rbac_objects, to_rbac_user};
use crate::rbac::{self, escalation};
use crate::seams::{Policies, RbacObjects, RequestAttributes, UserInfo};
use crate::store::StoreInner;

/// The Roles, ClusterRoles and bindings in the store now.
pub(super) fn rbac_objects(store: &StoreInner) -> RbacObjects {
    let all = |r: &str| store.list(&ResourceRef::new(escalation::RBAC_GROUP, r), None);
    let plain = |v: Vec<Arc<Value>>| v.into_iter().map(|o| (*o).clone()).collect();
    RbacObjects {
        roles: plain(all("roles")),
        cluster_roles: plain(all("clusterroles")),
        role_bindings: plain(all("rolebindings")),
        cluster_role_bindings: plain(all("clusterrolebindings")),
    }
}

/// Whether a write to `resource` in `namespace` by `user` is one the check decides: an RBAC
/// kind, at the scope it is served at (a wrong scope is the write's own 404), by anyone but
/// `system:masters`.
fn guarded(
    store: &StoreInner,
    user: &UserInfo,
    resource: &ResourceRef,
    namespace: Option<&str>,
) -> bool {
    escalation::guards(&resource.group, &resource.resource)
        && !user.is_master()
        && store
            .registry
            .get(resource)
            .is_some_and(|rt| rt.namespaced == namespace.is_some())
}

fn check(
    store: &StoreInner,
    policies: &Policies,
    user: &UserInfo,
    write: &escalation::RbacWrite<'_>,
) -> Result<(), ApiError> {
    let objects = rbac_objects(store);
    let mut authorize = |attrs: &rbac::RequestAttributes| {
        let attrs = RequestAttributes {
            verb: attrs.verb.clone(),
            api_group: attrs.api_group.clone(),
            resource: attrs.resource.clone(),
            subresource: attrs.subresource.clone().unwrap_or_default(),
            namespace: attrs.namespace.clone(),
            name: attrs.name.clone(),
            non_resource_path: attrs.non_resource_path.clone(),
        };
        policies
            .authorizer
            .authorize(&objects, user, &attrs)
            .allowed
    };
    escalation::check_write(
        &to_rbac_objects(&objects),
        &to_rbac_user(user),
        write,
        &mut authorize,
    )
}

pub(super) fn create(
    store: &mut StoreInner,
    policies: &Policies,
    user: &UserInfo,
    resource: &ResourceRef,
    namespace: Option<&str>,
    object: Value,
    options: &WriteOptions,
) -> Result<Value, ApiError> {
    if guarded(store, user, resource, namespace) {
        let write = escalation::RbacWrite {
            resource: &resource.resource,
            namespace,
            request_name: None,
            object: &object,
            old: None,
        };
        check(store, policies, user, &write)?;
    }
    write::create(store, policies, resource, namespace, object, options)
}

pub(super) fn update(
    store: &mut StoreInner,
    policies: &Policies,
    user: &UserInfo,
    resource: &ResourceRef,
    namespace: Option<&str>,
    object: Value,
    options: &WriteOptions,
) -> Result<Value, ApiError> {
    if guarded(store, user, resource, namespace) {
        let name = str_at(&object, "/metadata/name").unwrap_or_default();
        // No stored object: the update's own 404.
        if let Some(old) = store.get(resource, namespace.unwrap_or_default(), name) {
            let write = escalation::RbacWrite {
                resource: &resource.resource,
                namespace,
                request_name: Some(name),
                object: &object,
                old: Some(&old),
            };
            check(store, policies, user, &write)?;
        }
    }
    write::update(store, policies, resource, namespace, object, false, options)
}

/// Patches and applies are checked on their result: the patch is first made as a dry run
/// (whose refusals are the patch's own), all under the one lock.
#[allow(clippy::too_many_arguments)]
pub(super) fn patch(
    store: &mut StoreInner,
    policies: &Policies,
    user: &UserInfo,
    resource: &ResourceRef,
    namespace: Option<&str>,
    name: &str,
    request: &PatchRequest<'_>,
    options: &WriteOptions,
) -> Result<Value, ApiError> {
    if guarded(store, user, resource, namespace) && !request.status_subresource {
        let old = store.get(resource, namespace.unwrap_or_default(), name);
        let dry_run = WriteOptions {
            dry_run: true,
            ..options.clone()
        };
        let result = patching::patch(
            store, policies, resource, namespace, name, request, &dry_run,
        )?;
        let write = escalation::RbacWrite {
            resource: &resource.resource,
            namespace,
            request_name: Some(name),
            object: &result,
            old: old.as_deref(),
        };
        check(store, policies, user, &write)?;
        if options.dry_run {
            return Ok(result);
        }
    }
    patching::patch(store, policies, resource, namespace, name, request, options)
}
