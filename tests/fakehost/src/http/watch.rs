//! Watch responses: a chunked stream of JSON lines (`{"type":...,"object":...}`) as
//! kube-apiserver sends them, with periodic BOOKMARKs when allowed, `timeoutSeconds`, an
//! `ERROR` event carrying 410 Expired when the requested resourceVersion is too old, and
//! termination when faults cut all watches.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{AppState, table};
use crate::engine::{WatchEvent, WatchOptions};
use crate::errors::ApiError;
use crate::kinds::ResourceType;

fn line(event_type: &str, object: &Value) -> Bytes {
    let mut bytes =
        serde_json::to_vec(&json!({"type": event_type, "object": object})).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

fn render(event: &WatchEvent, rt: &ResourceType, version: &str, as_table: bool) -> Bytes {
    if as_table && event.event_type != "BOOKMARK" {
        let rv = event
            .object
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let object = table::table(rt, version, std::slice::from_ref(&event.object), rv, None);
        return line(event.event_type, &object);
    }
    let api_version = rt.api_version(version);
    if event.object.get("apiVersion").and_then(Value::as_str) == Some(api_version.as_str()) {
        return line(event.event_type, &event.object);
    }
    let mut relabelled = (*event.object).clone();
    relabelled["apiVersion"] = json!(api_version);
    line(event.event_type, &relabelled)
}

fn streaming_response(receiver: mpsc::Receiver<Result<Bytes, Infallible>>) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-cache, private"),
        ],
        Body::from_stream(ReceiverStream::new(receiver)),
    )
        .into_response()
}

pub(super) fn serve(
    state: &AppState,
    rt: &Arc<ResourceType>,
    version: &str,
    namespace: Option<&str>,
    query: &HashMap<String, String>,
    as_table: bool,
) -> Result<Response, ApiError> {
    let flag = |key: &str| matches!(query.get(key).map(String::as_str), Some("true" | "1"));
    let options = WatchOptions {
        label_selector: query.get("labelSelector").cloned(),
        field_selector: query.get("fieldSelector").cloned(),
        resource_version: query.get("resourceVersion").cloned(),
        send_initial_events: flag("sendInitialEvents"),
    };
    let timeout = match query.get("timeoutSeconds").filter(|t| !t.is_empty()) {
        Some(raw) => Duration::from_secs(
            raw.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds: {raw:?}")))?,
        ),
        None => state.settings.default_watch_timeout,
    };
    let bookmarks = flag("allowWatchBookmarks");
    let (sender, receiver) = mpsc::channel::<Result<Bytes, Infallible>>(256);
    let mut watcher = match state.engine.watch(&rt.reference(), namespace, &options) {
        Ok(watcher) => watcher,
        Err(error) if error.code == 410 => {
            // kube-apiserver answers 200 and reports an expired resourceVersion in-stream.
            let _ = sender.try_send(Ok(line("ERROR", &error.to_status())));
            drop(sender);
            return Ok(streaming_response(receiver));
        }
        Err(error) => return Err(error),
    };
    let rt = rt.clone();
    let version = version.to_string();
    let mut cut = state.faults.cut_signal();
    let bookmark_interval = state.settings.bookmark_interval;
    tokio::spawn(async move {
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval_at(
            tokio::time::Instant::now() + bookmark_interval,
            bookmark_interval,
        );
        cut.mark_unchanged();
        loop {
            tokio::select! {
                event = watcher.next() => {
                    let Some(event) = event else { break };
                    if sender.send(Ok(render(&event, &rt, &version, as_table))).await.is_err() {
                        break;
                    }
                }
                _ = ticker.tick(), if bookmarks => {
                    if sender.send(Ok(render(&watcher.bookmark(), &rt, &version, as_table))).await.is_err() {
                        break;
                    }
                }
                _ = &mut deadline => break,
                _ = cut.changed() => break,
                _ = sender.closed() => break,
            }
        }
    });
    Ok(streaming_response(receiver))
}
