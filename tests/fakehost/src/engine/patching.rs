//! PATCH: JSON merge, JSON and strategic merge patches are applied to the stored object and
//! then go through the update rules; server-side apply (`application/apply-patch+yaml`)
//! merges with field ownership, may create the object, and conflicts per field manager.

use serde_json::Value;

use super::write::{
    PatchRequest, WriteOptions, check_type_meta, finish_update, insert_new, merge_for_update,
    prepare_new, reconcile_namespace,
};
use super::{now_rfc3339, resolve, str_at};
use crate::errors::ApiError;
use crate::kinds::ResourceRef;
use crate::managed::{self, WriteContext};
use crate::patch::{PatchType, apply_patch};
use crate::seams::Policies;
use crate::store::StoreInner;

fn parse_apply_body(body: &[u8]) -> Result<Value, ApiError> {
    let value: Value = serde_yaml::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::bad_request("apply patch must be an object"));
    }
    for field in ["apiVersion", "kind"] {
        if value
            .get(field)
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(ApiError::bad_request(format!(
                "invalid object type: {field} must be set"
            )));
        }
    }
    Ok(value)
}

pub(super) fn patch(
    store: &mut StoreInner,
    policies: &Policies,
    resource: &ResourceRef,
    namespace: Option<&str>,
    name: &str,
    request: &PatchRequest<'_>,
    options: &WriteOptions,
) -> Result<Value, ApiError> {
    let rt = resolve(store, resource, namespace)?;
    if (request.status_subresource && !rt.has_status) || !rt.allows("patch") {
        return Err(ApiError::path_not_found());
    }
    let ns = namespace.unwrap_or_default();
    let current = store.get(resource, ns, name);
    let now = now_rfc3339();

    if request.patch_type == PatchType::Apply {
        let Some(manager) = options.field_manager.as_deref().filter(|m| !m.is_empty()) else {
            return Err(ApiError::invalid_field(
                &rt.group,
                &rt.kind,
                name,
                "metadata.managedFields",
                "Required value: is required for apply patch",
            ));
        };
        let mut applied = parse_apply_body(request.body)?;
        let version = check_type_meta(&rt, &mut applied)?;
        let applied_name = str_at(&applied, "/metadata/name").unwrap_or_default();
        if applied_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({applied_name}) does not match the name on the URL ({name})"
            )));
        }
        reconcile_namespace(&rt, namespace, &mut applied)?;
        let api_version = rt.api_version(&version);
        let ctx = WriteContext {
            manager,
            api_version: &api_version,
            now: &now,
            status_subresource: request.status_subresource,
        };
        return match current {
            None => {
                if request.status_subresource {
                    return Err(ApiError::not_found(&rt.group, &rt.resource, name));
                }
                let base = managed::empty_like(&applied);
                let merged = managed::apply(&rt, &base, &applied, options.force, &ctx)?;
                let (object, _) = prepare_new(store, policies, &rt, namespace, merged, &now)?;
                insert_new(store, &rt, namespace, object, options.dry_run)
            }
            Some(current) => {
                if let Some(rv) =
                    str_at(&applied, "/metadata/resourceVersion").filter(|rv| !rv.is_empty())
                    && Some(rv) != str_at(&current, "/metadata/resourceVersion")
                {
                    return Err(ApiError::stale_resource_version(
                        &rt.group,
                        &rt.resource,
                        name,
                    ));
                }
                let merged = managed::apply(&rt, &current, &applied, options.force, &ctx)?;
                finish_update(
                    store,
                    policies,
                    &rt,
                    &current,
                    merged,
                    request.status_subresource,
                    false,
                    options,
                )
            }
        };
    }

    let Some(current) = current else {
        return Err(ApiError::not_found(&rt.group, &rt.resource, name));
    };
    let patched = apply_patch(&rt, request.patch_type, &current, request.body)?;
    if str_at(&patched, "/metadata/resourceVersion")
        != str_at(&current, "/metadata/resourceVersion")
    {
        return Err(ApiError::stale_resource_version(
            &rt.group,
            &rt.resource,
            name,
        ));
    }
    if str_at(&patched, "/metadata/name") != Some(name) {
        return Err(ApiError::bad_request(
            "metadata.name: the name of an object cannot be changed by a patch",
        ));
    }
    let next = merge_for_update(&rt, &current, patched, request.status_subresource);
    finish_update(
        store,
        policies,
        &rt,
        &current,
        next,
        request.status_subresource,
        true,
        options,
    )
}
