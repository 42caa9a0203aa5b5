//! Request bodies, as kube-apiserver's negotiated serializers read them: JSON, YAML, and
//! Kubernetes protobuf for built-in kinds (client-go's typed clients, so kubectl's
//! imperative commands, send only that). Custom resources get 415 for protobuf, as upstream.

use axum::http::header;
use serde_json::Value;

use super::ApiRequest;
use super::protobuf::{self, DecodeError};
use crate::errors::ApiError;
use crate::kinds::ResourceType;

const ACCEPTED: &str = "application/json, application/yaml, application/vnd.kubernetes.protobuf";
const ACCEPTED_CUSTOM: &str = "application/json, application/yaml";

fn content_type(api: &ApiRequest) -> &str {
    api.headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
}

fn undecodable(error: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!(
        "the body of the request could not be decoded: {error}"
    ))
}

/// The body as a JSON object. `expected` is the (apiVersion, kind) the endpoint takes, used
/// when a protobuf envelope names no type.
pub(crate) fn decode(
    api: &ApiRequest,
    rt: &ResourceType,
    expected: (&str, &str),
) -> Result<Value, ApiError> {
    let content_type = content_type(api);
    if content_type.contains("protobuf") {
        if !rt.builtin {
            return Err(ApiError::unsupported_media_type(
                content_type,
                ACCEPTED_CUSTOM,
            ));
        }
        return from_protobuf(&api.body, expected, content_type);
    }
    if content_type.contains("yaml") {
        serde_yaml::from_slice::<Value>(&api.body).map_err(undecodable)
    } else if content_type.contains("json") || content_type.is_empty() {
        serde_json::from_slice::<Value>(&api.body).map_err(undecodable)
    } else {
        let accepted = if rt.builtin {
            ACCEPTED
        } else {
            ACCEPTED_CUSTOM
        };
        Err(ApiError::unsupported_media_type(content_type, accepted))
    }
}

/// A DeleteOptions body (optional): JSON or protobuf; `Null` when empty.
pub(crate) fn delete_options(api: &ApiRequest) -> Result<Value, ApiError> {
    if api.body.is_empty() {
        return Ok(Value::Null);
    }
    let content_type = content_type(api);
    if content_type.contains("protobuf") {
        return from_protobuf(&api.body, ("v1", "DeleteOptions"), content_type);
    }
    serde_json::from_slice(&api.body)
        .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))
}

fn from_protobuf(
    body: &[u8],
    expected: (&str, &str),
    content_type: &str,
) -> Result<Value, ApiError> {
    match protobuf::decode(body, expected) {
        Ok(decoded) => {
            if !decoded.unknown.is_empty() {
                tracing::debug!(
                    kind = expected.1,
                    fields = ?decoded.unknown,
                    "protobuf fields fakehost does not model were skipped"
                );
            }
            Ok(decoded.object)
        }
        Err(DecodeError::Malformed(message)) => Err(undecodable(message)),
        Err(DecodeError::UnknownKind { api_version, kind }) => {
            Err(ApiError::unsupported_media_type(
                content_type,
                &format!(
                    "{ACCEPTED_CUSTOM} (fakehost decodes no protobuf for {api_version} {kind})"
                ),
            ))
        }
    }
}
