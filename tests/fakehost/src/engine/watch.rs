//! Watches: replay from the history after a resourceVersion (410 Expired when it is too
//! old), synthetic ADDED events for a watch without one, selector-aware event translation
//! (an object leaving the selector is DELETED, one entering it ADDED), and the
//! `sendInitialEvents` end-of-initial-events bookmark.

use std::collections::VecDeque;
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::errors::ApiError;
use crate::kinds::{ResourceRef, ResourceType};
use crate::selectors::Selectors;
use crate::store::{EventType, StoreEvent, StoreInner};

#[derive(Clone, Debug, Default)]
pub struct WatchOptions {
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub resource_version: Option<String>,
    /// Streaming list: initial state as ADDED events, then a BOOKMARK annotated
    /// `k8s.io/initial-events-end`.
    pub send_initial_events: bool,
}

/// One event as it goes on the wire.
#[derive(Clone, Debug)]
pub struct WatchEvent {
    /// ADDED, MODIFIED, DELETED, BOOKMARK or ERROR.
    pub event_type: &'static str,
    pub object: Arc<Value>,
}

/// A running watch.
pub struct Watcher {
    pending: VecDeque<WatchEvent>,
    receiver: broadcast::Receiver<Arc<StoreEvent>>,
    resource: ResourceRef,
    namespace: Option<String>,
    selectors: Selectors,
    kind: String,
    api_version: String,
    /// Every store event up to here has been looked at.
    progress: u64,
}

pub(super) fn start(
    store: &StoreInner,
    rt: &ResourceType,
    namespace: Option<&str>,
    options: &WatchOptions,
) -> Result<Watcher, ApiError> {
    let selectors = Selectors::parse(
        &rt.resource,
        options.label_selector.as_deref(),
        options.field_selector.as_deref(),
    )?;
    let current = store.resource_version();
    let requested = options
        .resource_version
        .as_deref()
        .filter(|rv| !rv.is_empty() && *rv != "0");
    let mut pending = VecDeque::new();
    let (since, replay, receiver) = match requested {
        Some(raw) => {
            let since: u64 = raw
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {raw:?}")))?;
            let since = since.min(current);
            let (replay, receiver) = store.subscribe_since(since)?;
            (since, replay, receiver)
        }
        None => {
            for object in store.list(&rt.reference(), namespace) {
                if selectors.matches(&object) {
                    pending.push_back(WatchEvent {
                        event_type: "ADDED",
                        object,
                    });
                }
            }
            let (replay, receiver) = store.subscribe_since(current)?;
            (current, replay, receiver)
        }
    };
    let mut watcher = Watcher {
        pending,
        receiver,
        resource: rt.reference(),
        namespace: namespace.map(str::to_string),
        selectors,
        kind: rt.kind.clone(),
        api_version: rt.api_version(rt.preferred_version()),
        progress: since,
    };
    if options.send_initial_events {
        let mut bookmark = watcher.bookmark_at(current);
        if let Some(metadata) = bookmark.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.insert(
                "annotations".into(),
                json!({"k8s.io/initial-events-end": "true"}),
            );
        }
        watcher.pending.push_back(WatchEvent {
            event_type: "BOOKMARK",
            object: Arc::new(bookmark),
        });
    }
    for event in replay {
        watcher.progress = event.resource_version;
        if let Some(translated) = watcher.translate(&event) {
            watcher.pending.push_back(translated);
        }
    }
    watcher.progress = watcher.progress.max(since);
    Ok(watcher)
}

impl Watcher {
    fn bookmark_at(&self, resource_version: u64) -> Value {
        json!({
            "kind": self.kind,
            "apiVersion": self.api_version,
            "metadata": {"resourceVersion": resource_version.to_string()},
        })
    }

    /// A BOOKMARK event at the watcher's progress.
    pub fn bookmark(&self) -> WatchEvent {
        WatchEvent {
            event_type: "BOOKMARK",
            object: Arc::new(self.bookmark_at(self.progress)),
        }
    }

    /// The resourceVersion up to which this watcher has seen everything.
    pub fn progress(&self) -> u64 {
        self.progress
    }

    fn translate(&self, event: &StoreEvent) -> Option<WatchEvent> {
        if event.resource != self.resource {
            return None;
        }
        if let Some(ns) = &self.namespace
            && &event.namespace != ns
        {
            return None;
        }
        let now_matches = self.selectors.matches(&event.object);
        let was_matching = event
            .previous
            .as_ref()
            .is_some_and(|p| self.selectors.matches(p));
        let event_type = match event.event_type {
            EventType::Added if now_matches => "ADDED",
            EventType::Modified if now_matches && was_matching => "MODIFIED",
            EventType::Modified if now_matches => "ADDED",
            EventType::Modified if was_matching => "DELETED",
            EventType::Deleted if was_matching || now_matches => "DELETED",
            _ => return None,
        };
        Some(WatchEvent {
            event_type,
            object: event.object.clone(),
        })
    }

    /// The next event; `None` when the watch has ended (the watcher fell too far behind, or
    /// the server is shutting down) and the client must re-watch.
    pub async fn next(&mut self) -> Option<WatchEvent> {
        if let Some(event) = self.pending.pop_front() {
            return Some(event);
        }
        loop {
            match self.receiver.recv().await {
                Ok(event) => {
                    if event.resource_version <= self.progress {
                        continue;
                    }
                    self.progress = event.resource_version;
                    if let Some(translated) = self.translate(&event) {
                        return Some(translated);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_))
                | Err(broadcast::error::RecvError::Closed) => {
                    return None;
                }
            }
        }
    }
}
