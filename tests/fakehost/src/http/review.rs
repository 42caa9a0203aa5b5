//! Self-reviews, answered for the calling user and never stored, on the host and on every
//! virtual cluster alike: SelfSubjectAccessReview (`kubectl auth can-i`) through the
//! engine's authorizer, SelfSubjectRulesReview (`kubectl auth can-i --list`) from the RBAC
//! objects, SelfSubjectReview (`kubectl auth whoami`) from the client certificate. Bodies
//! arrive as protobuf from kubectl (see `body`); answers are JSON, which client-go accepts.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::{ApiRequest, AppState, body, json_response};
use crate::errors::ApiError;
use crate::kinds::ResourceType;
use crate::policies::{to_rbac_objects, to_rbac_user};
use crate::rbac;
use crate::seams::RequestAttributes;

/// The review as sent, with `status` replaced and the type filled in.
fn answer(mut review: Value, rt: &ResourceType, status: Value) -> Response {
    if !review.is_object() {
        review = json!({});
    }
    review["apiVersion"] = json!(rt.api_version(rt.preferred_version()));
    review["kind"] = json!(rt.kind);
    if review.get("metadata").is_none() {
        review["metadata"] = json!({"creationTimestamp": null});
    }
    review["status"] = status;
    json_response(StatusCode::CREATED, &review)
}

fn decode(api: &ApiRequest, rt: &ResourceType) -> Result<Value, ApiError> {
    let api_version = rt.api_version(rt.preferred_version());
    body::decode(api, rt, (&api_version, &rt.kind))
}

pub(super) fn access_review(
    state: &AppState,
    rt: &ResourceType,
    api: &ApiRequest,
) -> Result<Response, ApiError> {
    let review = decode(api, rt)?;
    let spec = review.get("spec").cloned().unwrap_or(Value::Null);
    let text = |pointer: &str| {
        spec.pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let attrs = if spec.get("nonResourceAttributes").is_some() {
        RequestAttributes {
            verb: text("/nonResourceAttributes/verb").unwrap_or_default(),
            non_resource_path: text("/nonResourceAttributes/path"),
            ..Default::default()
        }
    } else if spec.get("resourceAttributes").is_some() {
        RequestAttributes {
            verb: text("/resourceAttributes/verb").unwrap_or_default(),
            api_group: text("/resourceAttributes/group").unwrap_or_default(),
            resource: text("/resourceAttributes/resource").unwrap_or_default(),
            subresource: text("/resourceAttributes/subresource").unwrap_or_default(),
            namespace: text("/resourceAttributes/namespace").filter(|s| !s.is_empty()),
            name: text("/resourceAttributes/name").filter(|s| !s.is_empty()),
            non_resource_path: None,
        }
    } else {
        return Err(ApiError::invalid_field(
            &rt.group,
            &rt.kind,
            "",
            "spec.resourceAttributes",
            "Required value: exactly one of nonResourceAttributes or resourceAttributes must be specified",
        ));
    };
    let decision = state.engine.authorize(&api.user, &attrs);
    let mut status = json!({"allowed": decision.allowed});
    if !decision.reason.is_empty() {
        status["reason"] = json!(decision.reason);
    }
    Ok(answer(review, rt, status))
}

/// The rules come from RBAC whatever authorizer the engine uses, as upstream's
/// rules review asks the RBAC authorizer's `RulesFor`.
pub(super) fn rules_review(
    state: &AppState,
    rt: &ResourceType,
    api: &ApiRequest,
) -> Result<Response, ApiError> {
    let review = decode(api, rt)?;
    let namespace = review
        .pointer("/spec/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let status = rbac::self_subject_rules_review(
        &to_rbac_objects(&state.engine.rbac_objects()),
        &to_rbac_user(&api.user),
        &namespace,
    );
    Ok(answer(review, rt, status))
}

/// `kubectl auth whoami`: the user the client certificate authenticates as.
pub(super) fn subject_review(rt: &ResourceType, api: &ApiRequest) -> Result<Response, ApiError> {
    let review = decode(api, rt)?;
    let mut groups = api.user.groups.clone();
    if !groups.iter().any(|g| g == "system:authenticated") {
        groups.push("system:authenticated".into());
    }
    let status = json!({"userInfo": {"username": api.user.name, "groups": groups}});
    Ok(answer(review, rt, status))
}
