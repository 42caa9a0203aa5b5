//! Resource endpoints: maps a parsed request onto one engine call and the engine's answer
//! onto the status code and body kube-apiserver would send (201 on create, a Status on
//! immediate delete, the object when finalizers hold it, lists, Tables).

use std::sync::Arc;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use super::request_info::ResourceRequest;
use super::{ApiRequest, AppState, body, json_response, review, table, watch};
use crate::engine::{DeleteOptions, ListOptions, PatchRequest, Propagation, WriteOptions};
use crate::errors::ApiError;
use crate::kinds::{ResourceRef, ResourceType};
use crate::patch::PatchType;

pub(super) async fn serve(
    state: &AppState,
    request: &ResourceRequest,
    verb: &str,
    api: ApiRequest,
) -> Response {
    match handle(state, request, verb, api).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

fn header_str(api: &ApiRequest, name: header::HeaderName) -> Option<&str> {
    api.headers.get(name).and_then(|v| v.to_str().ok())
}

fn dry_run(api: &ApiRequest) -> Result<bool, ApiError> {
    match api.query.get("dryRun").map(String::as_str) {
        None | Some("") => Ok(false),
        Some("All") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "Invalid dryRun value: {other:?}; valid values are All"
        ))),
    }
}

/// The default field manager is the User-Agent up to its first '/', as kube-apiserver does.
fn field_manager(api: &ApiRequest, required: bool) -> Option<String> {
    if let Some(manager) = api.query.get("fieldManager").filter(|m| !m.is_empty()) {
        return Some(manager.clone());
    }
    if required {
        return None;
    }
    let agent = header_str(api, header::USER_AGENT).unwrap_or("unknown");
    Some(agent.split('/').next().unwrap_or("unknown").to_string())
}

fn write_options(api: &ApiRequest, apply: bool) -> Result<WriteOptions, ApiError> {
    Ok(WriteOptions {
        dry_run: dry_run(api)?,
        field_manager: field_manager(api, apply),
        force: matches!(
            api.query.get("force").map(String::as_str),
            Some("true" | "1")
        ),
    })
}

fn list_options(api: &ApiRequest) -> Result<ListOptions, ApiError> {
    let limit = match api.query.get("limit").filter(|l| !l.is_empty()) {
        Some(raw) => Some(
            raw.parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("invalid limit: {raw:?}")))?,
        ),
        None => None,
    };
    Ok(ListOptions {
        label_selector: api.query.get("labelSelector").cloned(),
        field_selector: api.query.get("fieldSelector").cloned(),
        limit,
        continue_token: api.query.get("continue").cloned(),
        resource_version: api.query.get("resourceVersion").cloned(),
        resource_version_match: api.query.get("resourceVersionMatch").cloned(),
    })
}

fn delete_options(api: &ApiRequest) -> Result<DeleteOptions, ApiError> {
    let body = body::delete_options(api)?;
    let propagation_raw = api.query.get("propagationPolicy").cloned().or_else(|| {
        body.get("propagationPolicy")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    let propagation = match propagation_raw.as_deref() {
        None | Some("") | Some("Background") => Propagation::Background,
        Some("Foreground") => Propagation::Foreground,
        Some("Orphan") => Propagation::Orphan,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "propagationPolicy: Unsupported value: {other:?}"
            )));
        }
    };
    let body_dry_run = body
        .get("dryRun")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|v| v == "All"));
    Ok(DeleteOptions {
        dry_run: dry_run(api)? || body_dry_run,
        propagation,
        precondition_uid: body
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string),
        precondition_resource_version: body
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

/// Labels an object with the apiVersion the client asked for (no schema conversion).
fn present(mut object: Value, api_version: &str) -> Value {
    if object.get("apiVersion").and_then(Value::as_str) != Some(api_version) {
        object["apiVersion"] = json!(api_version);
    }
    object
}

#[derive(Serialize)]
struct ListBody<'a> {
    kind: String,
    #[serde(rename = "apiVersion")]
    api_version: &'a str,
    metadata: Value,
    items: Vec<std::borrow::Cow<'a, Value>>,
}

async fn handle(
    state: &AppState,
    request: &ResourceRequest,
    verb: &str,
    api: ApiRequest,
) -> Result<Response, ApiError> {
    let engine = &state.engine;
    let rt = engine
        .resource_type(&ResourceRef::new(&request.group, &request.resource))
        .filter(|rt| rt.serves_version(&request.version))
        .ok_or_else(ApiError::path_not_found)?;
    let collection_verb = matches!(verb, "list" | "watch" | "deletecollection" | "create");
    if (!rt.namespaced && request.namespace.is_some())
        || (rt.namespaced
            && request.namespace.is_none()
            && !(collection_verb && request.name.is_none() && verb != "create"))
    {
        return Err(ApiError::path_not_found());
    }
    let subresource = request.subresource.as_deref();
    match subresource {
        None => {}
        Some("status") if rt.has_status && matches!(verb, "get" | "update" | "patch") => {}
        Some(sub) if rt.extra_subresources.iter().any(|s| s == sub) && verb == "create" => {}
        Some(_) => return Err(ApiError::path_not_found()),
    }
    if subresource.is_none() && !rt.allows(verb) {
        return Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({verb} {})",
            rt.resource
        )));
    }
    let api_version = rt.api_version(&request.version);
    let resource = rt.reference();
    let namespace = request.namespace.as_deref();
    let name = request.name.as_deref().unwrap_or_default();
    let accept = header_str(&api, header::ACCEPT);

    match (verb, subresource) {
        ("get", _) => {
            let object = engine.get(&resource, namespace, name)?;
            if table::wants_table(accept) {
                let rv = object
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                return Ok(json_response(
                    StatusCode::OK,
                    &table::table(&rt, &request.version, &[Arc::new(object)], rv, None),
                ));
            }
            Ok(json_response(
                StatusCode::OK,
                &present(object, &api_version),
            ))
        }
        ("list", None) => {
            let page = engine.list(&resource, namespace, &list_options(&api)?)?;
            if table::wants_table(accept) {
                let body = table::table(
                    &rt,
                    &request.version,
                    &page.items,
                    page.resource_version,
                    page.continue_token.as_deref(),
                );
                return Ok(json_response(StatusCode::OK, &body));
            }
            let mut metadata = json!({"resourceVersion": page.resource_version.to_string()});
            if let Some(token) = &page.continue_token {
                metadata["continue"] = json!(token);
            }
            if let Some(remaining) = page.remaining_item_count {
                metadata["remainingItemCount"] = json!(remaining);
            }
            let items = page
                .items
                .iter()
                .map(|o| {
                    if o.get("apiVersion").and_then(Value::as_str) == Some(api_version.as_str()) {
                        std::borrow::Cow::Borrowed(o.as_ref())
                    } else {
                        std::borrow::Cow::Owned(present((**o).clone(), &api_version))
                    }
                })
                .collect();
            let body = ListBody {
                kind: rt.list_kind(),
                api_version: &api_version,
                metadata,
                items,
            };
            let bytes = serde_json::to_vec(&body).map_err(|e| ApiError::internal(e.to_string()))?;
            Ok(([(header::CONTENT_TYPE, "application/json")], bytes).into_response())
        }
        ("watch", None) => watch::serve(
            state,
            &rt,
            &request.version,
            namespace,
            &api.query,
            table::wants_table(accept),
        ),
        ("create", None) if rt.resource == "selfsubjectaccessreviews" => {
            review::access_review(state, &rt, &api)
        }
        ("create", None) if rt.resource == "selfsubjectrulesreviews" => {
            review::rules_review(state, &rt, &api)
        }
        ("create", None) if rt.resource == "selfsubjectreviews" => {
            review::subject_review(&rt, &api)
        }
        ("create", None) => {
            let object = body::decode(&api, &rt, (&api_version, &rt.kind))?;
            let created = engine.create_as(
                &api.user,
                &resource,
                namespace,
                object,
                &write_options(&api, false)?,
            )?;
            Ok(json_response(
                StatusCode::CREATED,
                &present(created, &api_version),
            ))
        }
        ("create", Some("eviction")) => {
            let options = DeleteOptions {
                dry_run: dry_run(&api)?,
                ..Default::default()
            };
            engine.delete(&resource, namespace, name, &options)?;
            Ok(json_response(
                StatusCode::CREATED,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
            ))
        }
        ("update", sub) => {
            let object = body::decode(&api, &rt, (&api_version, &rt.kind))?;
            let body_name = object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if body_name != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({body_name}) does not match the name on the URL ({name})"
                )));
            }
            let options = write_options(&api, false)?;
            let updated = if sub == Some("status") {
                engine.update_status(&resource, namespace, object, &options)?
            } else {
                engine.update_as(&api.user, &resource, namespace, object, &options)?
            };
            Ok(json_response(
                StatusCode::OK,
                &present(updated, &api_version),
            ))
        }
        ("patch", sub) => {
            let content_type = header_str(&api, header::CONTENT_TYPE).unwrap_or_default();
            let patch_type = PatchType::from_content_type(content_type)
                .ok_or_else(|| {
                    ApiError::unsupported_media_type(
                        content_type,
                        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json",
                    )
                })?;
            let apply = patch_type == PatchType::Apply;
            let existed = apply && engine.get(&resource, namespace, name).is_ok();
            let patch = PatchRequest {
                patch_type,
                body: &api.body,
                status_subresource: sub == Some("status"),
            };
            let patched = engine.patch_as(
                &api.user,
                &resource,
                namespace,
                name,
                &patch,
                &write_options(&api, apply)?,
            )?;
            let status = if apply && !existed {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(json_response(status, &present(patched, &api_version)))
        }
        ("delete", None) => {
            let options = delete_options(&api)?;
            let last = engine.delete(&resource, namespace, name, &options)?;
            let still_there = !options.dry_run && engine.get(&resource, namespace, name).is_ok();
            if still_there || options.dry_run {
                return Ok(json_response(StatusCode::OK, &present(last, &api_version)));
            }
            Ok(json_response(
                StatusCode::OK,
                &deleted_status(&rt, name, &last),
            ))
        }
        ("deletecollection", None) => {
            let deleted = engine.delete_collection(
                &resource,
                namespace,
                &list_options(&api)?,
                &delete_options(&api)?,
            )?;
            let body = json!({
                "kind": rt.list_kind(),
                "apiVersion": api_version,
                "metadata": {"resourceVersion": engine.resource_version().to_string()},
                "items": deleted,
            });
            Ok(json_response(StatusCode::OK, &body))
        }
        _ => Err(ApiError::method_not_allowed(format!(
            "{verb} is not supported here"
        ))),
    }
}

fn deleted_status(rt: &ResourceType, name: &str, last: &Value) -> Value {
    let mut details = json!({"name": name, "kind": rt.resource});
    if !rt.group.is_empty() {
        details["group"] = json!(rt.group);
    }
    if let Some(uid) = last.pointer("/metadata/uid") {
        details["uid"] = uid.clone();
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}
