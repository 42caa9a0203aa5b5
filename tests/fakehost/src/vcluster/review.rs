//! Self-reviews on a virtual cluster: SelfSubjectAccessReview (`kubectl auth can-i`) and
//! SelfSubjectRulesReview (`kubectl auth can-i --list`). kubectl's typed client sends these
//! as Kubernetes protobuf (`application/vnd.kubernetes.protobuf`: the `k8s\0` magic, then a
//! `runtime.Unknown` wrapping the object), so both JSON and that encoding are read here; the
//! answer is JSON, which client-go accepts alongside protobuf.

use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::authz::{to_rbac_objects, to_rbac_user};
use crate::engine::{Engine, ListOptions};
use crate::errors::ApiError;
use crate::http::json_response;
use crate::kinds::ResourceRef;
use crate::rbac;
use crate::seams::{RbacObjects, RequestAttributes, UserInfo};
use crate::tls::ClientIdentity;

/// One protobuf field: only length-delimited ones (strings, messages) matter here.
enum Field<'a> {
    Scalar,
    Bytes(&'a [u8]),
}

fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn fields(buf: &[u8]) -> Option<Vec<(u64, Field<'_>)>> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < buf.len() {
        let tag = varint(buf, &mut pos)?;
        let field = match tag & 7 {
            0 => {
                varint(buf, &mut pos)?;
                Field::Scalar
            }
            2 => {
                let len = usize::try_from(varint(buf, &mut pos)?).ok()?;
                let bytes = buf.get(pos..pos.checked_add(len)?)?;
                pos += len;
                Field::Bytes(bytes)
            }
            1 => {
                pos += 8;
                Field::Scalar
            }
            5 => {
                pos += 4;
                Field::Scalar
            }
            _ => return None,
        };
        out.push((tag >> 3, field));
    }
    Some(out)
}

fn message(buf: &[u8], number: u64) -> Option<&[u8]> {
    fields(buf)?.into_iter().find_map(|(n, f)| match f {
        Field::Bytes(b) if n == number => Some(b),
        _ => None,
    })
}

fn string(buf: &[u8], number: u64) -> Option<String> {
    message(buf, number).map(|b| String::from_utf8_lossy(b).into_owned())
}

/// The object inside a `k8s\0` protobuf envelope (`runtime.Unknown.raw`, field 2).
fn unwrap_envelope(body: &[u8]) -> Option<&[u8]> {
    message(body.strip_prefix(b"k8s\0")?, 2)
}

/// Reads the `spec` of a review as JSON, whichever encoding the client used.
fn spec_of(headers: &HeaderMap, body: &[u8], access_review: bool) -> Result<Value, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if !content_type.contains("protobuf") {
        let review: Value = serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("the body of the request could not be decoded: {e}"))
        })?;
        return Ok(review.get("spec").cloned().unwrap_or(Value::Null));
    }
    let undecodable =
        || ApiError::bad_request("the body of the request could not be decoded as protobuf");
    let object = unwrap_envelope(body).ok_or_else(undecodable)?;
    let spec = message(object, 2).unwrap_or_default();
    if !access_review {
        return Ok(json!({"namespace": string(spec, 1).unwrap_or_default()}));
    }
    if let Some(attrs) = message(spec, 1) {
        let keys = [
            "namespace",
            "verb",
            "group",
            "version",
            "resource",
            "subresource",
            "name",
        ];
        let map: serde_json::Map<String, Value> = keys
            .iter()
            .zip(1..)
            .filter_map(|(k, n)| string(attrs, n).map(|v| (k.to_string(), json!(v))))
            .collect();
        return Ok(json!({"resourceAttributes": map}));
    }
    if let Some(attrs) = message(spec, 2) {
        return Ok(
            json!({"nonResourceAttributes": {"path": string(attrs, 1).unwrap_or_default(), "verb": string(attrs, 2).unwrap_or_default()}}),
        );
    }
    Err(ApiError::invalid_field(
        "authorization.k8s.io",
        "SelfSubjectAccessReview",
        "",
        "spec.resourceAttributes",
        "Required value: exactly one of nonResourceAttributes or resourceAttributes must be specified",
    ))
}

fn rbac_snapshot(engine: &Engine) -> RbacObjects {
    let all = |resource: &str| {
        engine
            .list(
                &ResourceRef::new("rbac.authorization.k8s.io", resource),
                None,
                &ListOptions::default(),
            )
            .map(|list| list.items.iter().map(|o| (**o).clone()).collect())
            .unwrap_or_default()
    };
    RbacObjects {
        roles: all("roles"),
        cluster_roles: all("clusterroles"),
        role_bindings: all("rolebindings"),
        cluster_role_bindings: all("clusterrolebindings"),
    }
}

/// The caller, and whether it may create this review kind at all (system:basic-user).
fn caller(
    engine: &Engine,
    identity: Option<Extension<ClientIdentity>>,
    resource: &str,
) -> Result<UserInfo, ApiError> {
    let Some(Extension(identity)) = identity else {
        return Err(ApiError::unauthorized());
    };
    let user = UserInfo {
        name: identity.user,
        groups: identity.groups,
    };
    let attrs = RequestAttributes {
        verb: "create".into(),
        api_group: "authorization.k8s.io".into(),
        resource: resource.into(),
        ..Default::default()
    };
    if engine.authorize(&user, &attrs).allowed {
        return Ok(user);
    }
    let rbac_attrs = rbac::RequestAttributes {
        verb: attrs.verb,
        api_group: attrs.api_group,
        resource: attrs.resource,
        ..Default::default()
    };
    Err(ApiError::forbidden(rbac::forbidden_message(
        &to_rbac_user(&user),
        &rbac_attrs,
        "",
    )))
}

pub(super) async fn access_review(
    State(engine): State<Engine>,
    identity: Option<Extension<ClientIdentity>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answer = (|| {
        let user = caller(&engine, identity, "selfsubjectaccessreviews")?;
        let spec = spec_of(&headers, &body, true)?;
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
        } else {
            RequestAttributes {
                verb: text("/resourceAttributes/verb").unwrap_or_default(),
                api_group: text("/resourceAttributes/group").unwrap_or_default(),
                resource: text("/resourceAttributes/resource").unwrap_or_default(),
                subresource: text("/resourceAttributes/subresource").unwrap_or_default(),
                namespace: text("/resourceAttributes/namespace").filter(|s| !s.is_empty()),
                name: text("/resourceAttributes/name").filter(|s| !s.is_empty()),
                non_resource_path: None,
            }
        };
        let decision = engine.authorize(&user, &attrs);
        let mut status = json!({"allowed": decision.allowed});
        if !decision.reason.is_empty() {
            status["reason"] = json!(decision.reason);
        }
        Ok::<_, ApiError>(
            json!({"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
                                 "metadata": {"creationTimestamp": null}, "spec": spec, "status": status}),
        )
    })();
    match answer {
        Ok(review) => json_response(StatusCode::CREATED, &review),
        Err(error) => error.into_response(),
    }
}

pub(super) async fn rules_review(
    State(engine): State<Engine>,
    identity: Option<Extension<ClientIdentity>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answer = (|| {
        let user = caller(&engine, identity, "selfsubjectrulesreviews")?;
        let spec = spec_of(&headers, &body, false)?;
        let namespace = spec
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let status = rbac::self_subject_rules_review(
            &to_rbac_objects(&rbac_snapshot(&engine)),
            &to_rbac_user(&user),
            &namespace,
        );
        Ok::<_, ApiError>(
            json!({"kind": "SelfSubjectRulesReview", "apiVersion": "authorization.k8s.io/v1",
                                 "metadata": {"creationTimestamp": null}, "spec": {"namespace": namespace}, "status": status}),
        )
    })();
    match answer {
        Ok(review) => json_response(StatusCode::CREATED, &review),
        Err(error) => error.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_protobuf_access_review() {
        // Unknown{typeMeta: {}, raw: SSAR{spec: {resourceAttributes: {namespace: "dev", verb: "create", resource: "pods"}}}}
        let attrs = [
            b"\x0a\x03dev".as_slice(),
            b"\x12\x06create",
            b"\x2a\x04pods",
        ]
        .concat();
        let spec = [vec![0x0a, attrs.len() as u8], attrs].concat();
        let object = [vec![0x12, spec.len() as u8], spec].concat();
        let body = [
            b"k8s\0".to_vec(),
            vec![0x0a, 0x00, 0x12, object.len() as u8],
            object,
        ]
        .concat();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            "application/vnd.kubernetes.protobuf"
                .parse()
                .expect("header"),
        );
        let spec = spec_of(&headers, &body, true).expect("decodes");
        assert_eq!(
            spec,
            json!({"resourceAttributes": {"namespace": "dev", "verb": "create", "resource": "pods"}})
        );
    }
}
