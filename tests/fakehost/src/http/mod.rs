//! The HTTP surface: one route table, then for every API request the same pipeline as
//! kube-apiserver — parse the path, count it, apply faults (pause, latency, injected
//! errors), authenticate (client certificate), authorize, and hand over to the resource or
//! discovery handlers. Bodies may be JSON, YAML or, for built-in kinds, Kubernetes protobuf
//! (`body`, `protobuf`), on the host and on every virtual cluster alike.

mod body;
mod discovery;
mod protobuf;
mod request_info;
mod resources;
mod review;
mod table;
mod watch;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde_json::Value;

use crate::engine::Engine;
use crate::errors::{ApiError, qualified};
use crate::faults::Faults;
use crate::pki::ClientIdentity;
use crate::seams::{RequestAttributes, UserInfo};
use request_info::ApiPath;

/// Server settings that are not policies.
#[derive(Clone, Debug)]
pub struct ServeSettings {
    /// `gitVersion` reported by `/version`.
    pub git_version: String,
    /// How often watches that allow bookmarks get one.
    pub bookmark_interval: Duration,
    /// Watch duration when the client sets no `timeoutSeconds`.
    pub default_watch_timeout: Duration,
}

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub faults: Faults,
    pub settings: Arc<ServeSettings>,
}

/// The whole route table. Discovery and resource paths share one handler because, as in
/// kube-apiserver, which of the two a path is depends on the registered groups.
pub fn router(state: AppState) -> Router {
    Router::new()
        // Non-resource endpoints anyone authenticated may read.
        .route("/version", get(discovery::version))
        .route("/healthz", get(health))
        .route("/livez", get(health))
        .route("/readyz", get(health))
        .route("/openapi/v2", get(discovery::openapi_v2))
        // The API itself: discovery documents and resources.
        .route("/api", any(api))
        .route("/api/{*path}", any(api))
        .route("/apis", any(api))
        .route("/apis/{*path}", any(api))
        .fallback(not_found)
        .with_state(state)
}

async fn health(State(state): State<AppState>) -> &'static str {
    state.faults.gate().await;
    "ok"
}

async fn not_found() -> Response {
    ApiError::path_not_found().into_response()
}

pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(bytes),
    )
        .into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = json_response(status, &self.to_status());
        if let Some(seconds) = self.details.retry_after
            && let Ok(value) = seconds.to_string().parse()
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

/// A parsed request, as the resource handlers need it.
pub(crate) struct ApiRequest {
    pub headers: HeaderMap,
    pub query: HashMap<String, String>,
    pub body: Bytes,
    pub user: UserInfo,
}

fn parse_query(uri: &Uri) -> HashMap<String, String> {
    uri.query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

fn forbidden(user: &UserInfo, attrs: &RequestAttributes) -> ApiError {
    let resource = if attrs.subresource.is_empty() {
        attrs.resource.clone()
    } else {
        format!("{}/{}", attrs.resource, attrs.subresource)
    };
    let subject = match &attrs.name {
        Some(name) => format!(
            "{} \"{name}\"",
            qualified(&attrs.api_group, &attrs.resource)
        ),
        None => qualified(&attrs.api_group, &attrs.resource),
    };
    let scope = match &attrs.namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_string(),
    };
    let mut error = ApiError::forbidden(format!(
        "{subject} is forbidden: User \"{}\" cannot {} resource \"{resource}\" in API group \"{}\" {scope}",
        user.name, attrs.verb, attrs.api_group
    ));
    error.details.group = attrs.api_group.clone();
    error.details.kind = attrs.resource.clone();
    error.details.name = attrs.name.clone().unwrap_or_default();
    error
}

async fn api(
    State(state): State<AppState>,
    identity: Option<Extension<ClientIdentity>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.faults.gate().await;
    let Some(path) = request_info::parse(uri.path()) else {
        return ApiError::path_not_found().into_response();
    };
    let Some(Extension(identity)) = identity else {
        return ApiError::unauthorized().into_response();
    };
    let user = UserInfo {
        name: identity.user,
        groups: identity.groups,
    };
    let query = parse_query(&uri);
    let request = match path {
        ApiPath::Resource(request) => request,
        discovery_path => {
            let attrs = RequestAttributes {
                verb: "get".into(),
                non_resource_path: Some(uri.path().to_string()),
                ..Default::default()
            };
            if !state.engine.authorize(&user, &attrs).allowed {
                return ApiError::forbidden(format!(
                    "forbidden: User \"{}\" cannot get path \"{}\"",
                    user.name,
                    uri.path()
                ))
                .into_response();
            }
            return discovery::serve(&state.engine, &discovery_path).into_response();
        }
    };
    let watch_param = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
    let verb = request_info::verb(&method, &request, watch_param);
    state.faults.count(verb);
    if let Some(error) = state.faults.injected() {
        return error.into_response();
    }
    let attrs = RequestAttributes {
        verb: verb.to_string(),
        api_group: request.group.clone(),
        resource: request.resource.clone(),
        subresource: request.subresource.clone().unwrap_or_default(),
        namespace: request.namespace.clone(),
        name: request.name.clone(),
        non_resource_path: None,
    };
    if !state.engine.authorize(&user, &attrs).allowed {
        return forbidden(&user, &attrs).into_response();
    }
    let api_request = ApiRequest {
        headers,
        query,
        body,
        user,
    };
    resources::serve(&state, &request, verb, api_request).await
}
