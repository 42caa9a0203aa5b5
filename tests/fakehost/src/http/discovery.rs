//! Discovery: `/version`, the legacy discovery documents (`/api`, `/apis`, per group and
//! group-version resource lists, including subresources such as `clusters/status`) built
//! from the live registry so CRDs appear as soon as they are created, and a minimal
//! `/openapi/v2`.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::request_info::ApiPath;
use super::{AppState, json_response};
use crate::engine::Engine;
use crate::errors::ApiError;

pub(super) async fn version(State(state): State<AppState>) -> Response {
    state.faults.gate().await;
    let git_version = state.settings.git_version.clone();
    let numbers: Vec<&str> = git_version
        .trim_start_matches('v')
        .split(['.', '+', '-'])
        .collect();
    json_response(
        StatusCode::OK,
        &json!({
            "major": numbers.first().copied().unwrap_or("1"),
            "minor": numbers.get(1).copied().unwrap_or("33"),
            "gitVersion": git_version,
            "gitCommit": "fakehost",
            "gitTreeState": "clean",
            "buildDate": "2025-05-15T00:00:00Z",
            "goVersion": "go1.24.2",
            "compiler": "gc",
            "platform": "linux/amd64",
        }),
    )
}

/// kubectl fetches the OpenAPI v2 document as protobuf for client-side validation and
/// patch metadata. An empty protobuf message is a valid, empty document: kubectl then
/// validates nothing client-side and falls back to its compiled-in types for strategic merge.
pub(super) async fn openapi_v2(State(state): State<AppState>) -> Response {
    state.faults.gate().await;
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
        )],
        Vec::<u8>::new(),
    )
        .into_response()
}

pub(super) fn serve(engine: &Engine, path: &ApiPath) -> Response {
    match document(engine, path) {
        Some(body) => json_response(StatusCode::OK, &body),
        None => ApiError::path_not_found().into_response(),
    }
}

fn group_entry(group: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({
        "name": group,
        "versions": versions,
        "preferredVersion": versions.first().cloned().unwrap_or(Value::Null),
    })
}

fn document(engine: &Engine, path: &ApiPath) -> Option<Value> {
    let registry = engine.registry();
    match path {
        ApiPath::CoreVersions => Some(json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}],
        })),
        ApiPath::GroupList => {
            let groups: Vec<Value> = registry
                .group_versions()
                .iter()
                .filter(|(group, _)| !group.is_empty())
                .map(|(group, versions)| group_entry(group, versions))
                .collect();
            Some(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
        }
        ApiPath::Group(group) => {
            let versions = registry.group_versions().get(group)?.clone();
            let mut entry = group_entry(group, &versions);
            entry["kind"] = json!("APIGroup");
            entry["apiVersion"] = json!("v1");
            Some(entry)
        }
        ApiPath::ResourceList { group, version } => {
            let mut resources = Vec::new();
            for rt in registry
                .all()
                .filter(|rt| &rt.group == group && rt.serves_version(version))
            {
                let mut entry = json!({
                    "name": rt.resource,
                    "singularName": rt.singular,
                    "namespaced": rt.namespaced,
                    "kind": rt.kind,
                    "verbs": rt.verbs,
                });
                if !rt.short_names.is_empty() {
                    entry["shortNames"] = json!(rt.short_names);
                }
                if !rt.categories.is_empty() {
                    entry["categories"] = json!(rt.categories);
                }
                resources.push(entry);
                if rt.has_status {
                    resources.push(json!({
                        "name": format!("{}/status", rt.resource),
                        "singularName": "",
                        "namespaced": rt.namespaced,
                        "kind": rt.kind,
                        "verbs": ["get", "patch", "update"],
                    }));
                }
                for sub in &rt.extra_subresources {
                    let mut sub_entry = json!({
                        "name": format!("{}/{sub}", rt.resource),
                        "singularName": "",
                        "namespaced": rt.namespaced,
                        "kind": rt.kind,
                        "verbs": ["create"],
                    });
                    if sub == "eviction" {
                        sub_entry["group"] = json!("policy");
                        sub_entry["version"] = json!("v1");
                        sub_entry["kind"] = json!("Eviction");
                    }
                    resources.push(sub_entry);
                }
            }
            if resources.is_empty() {
                return None;
            }
            let group_version = if group.is_empty() {
                version.clone()
            } else {
                format!("{group}/{version}")
            };
            Some(json!({
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": group_version,
                "resources": resources,
            }))
        }
        ApiPath::Resource(_) => None,
    }
}
