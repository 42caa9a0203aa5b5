//! The object store: every object as a `serde_json::Value`, keyed by (group, plural,
//! namespace, name), one global monotonic resourceVersion, a bounded event history and the
//! broadcast that feeds watches.
//!
//! Invariants: the store never decides policy (that is `engine`); every insert, replace or
//! removal bumps the resourceVersion exactly once, stamps it into the object, appends one
//! event to the history and broadcasts it — all under the one lock, so a watcher that
//! subscribes under the lock sees every event after its starting version exactly once.

mod snapshot;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::errors::ApiError;
use crate::kinds::{Registry, ResourceRef};

/// Events to replay plus the receiver for everything after them.
pub type Subscription = (Vec<Arc<StoreEvent>>, broadcast::Receiver<Arc<StoreEvent>>);

/// Key of one object inside a resource: (namespace or "", name).
pub type ObjectKey = (String, String);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One committed change.
#[derive(Clone, Debug)]
pub struct StoreEvent {
    pub event_type: EventType,
    pub resource: ResourceRef,
    pub namespace: String,
    pub name: String,
    pub resource_version: u64,
    /// The object after the change (for DELETED: the last state, stamped with the deletion's
    /// resourceVersion).
    pub object: Arc<Value>,
    /// The object before the change (None for ADDED); lets filtered watches turn a label
    /// change into ADDED/DELETED and lets lists reconstruct older snapshots.
    pub previous: Option<Arc<Value>>,
}

pub struct StoreConfig {
    /// How many events the store keeps for watch replay and consistent paging.
    pub history_len: usize,
}

/// The shared store.
pub struct Store {
    inner: Mutex<StoreInner>,
}

/// State guarded by the store lock. `engine` operates on it through `Store::lock`.
pub struct StoreInner {
    resource_version: u64,
    pub registry: Registry,
    objects: HashMap<ResourceRef, BTreeMap<ObjectKey, Arc<Value>>>,
    history: VecDeque<Arc<StoreEvent>>,
    history_len: usize,
    /// Highest resourceVersion whose event has been evicted from `history`.
    compacted_through: u64,
    events: broadcast::Sender<Arc<StoreEvent>>,
}

impl Store {
    pub fn new(config: StoreConfig) -> Self {
        // The broadcast buffer only needs to cover a burst between a watcher's reads; a
        // watcher that falls further behind is closed and re-watches from the history.
        let (events, _) = broadcast::channel(16_384);
        Self {
            inner: Mutex::new(StoreInner {
                resource_version: 1,
                registry: Registry::with_builtins(),
                objects: HashMap::new(),
                history: VecDeque::new(),
                history_len: config.history_len.max(16),
                compacted_through: 0,
                events,
            }),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, StoreInner> {
        // NB: a panic while holding the lock is a bug in the fake itself; keep serving.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn stamp_resource_version(object: &mut Value, resource_version: u64) {
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.insert(
            "resourceVersion".into(),
            json!(resource_version.to_string()),
        );
    }
}

impl StoreInner {
    pub fn resource_version(&self) -> u64 {
        self.resource_version
    }

    pub fn get(&self, resource: &ResourceRef, namespace: &str, name: &str) -> Option<Arc<Value>> {
        self.objects
            .get(resource)?
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// Current objects of one resource, ordered by (namespace, name); `namespace = None`
    /// means all namespaces.
    pub fn list(&self, resource: &ResourceRef, namespace: Option<&str>) -> Vec<Arc<Value>> {
        let Some(objects) = self.objects.get(resource) else {
            return Vec::new();
        };
        match namespace {
            None => objects.values().cloned().collect(),
            Some(ns) => objects
                .range((ns.to_string(), String::new())..)
                .take_while(|((object_ns, _), _)| object_ns == ns)
                .map(|(_, object)| object.clone())
                .collect(),
        }
    }

    /// Every object in a namespace, of every resource.
    pub fn namespace_contents(&self, namespace: &str) -> Vec<(ResourceRef, Arc<Value>)> {
        let mut contents = Vec::new();
        for (resource, objects) in &self.objects {
            for ((object_ns, _), object) in objects {
                if object_ns == namespace {
                    contents.push((resource.clone(), object.clone()));
                }
            }
        }
        contents
    }

    /// Every object of every resource whose ownerReferences name `owner_uid`.
    pub fn dependents_of(&self, owner_uid: &str) -> Vec<(ResourceRef, Arc<Value>)> {
        let mut dependents = Vec::new();
        for (resource, objects) in &self.objects {
            for object in objects.values() {
                let owned = object
                    .pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .is_some_and(|refs| {
                        refs.iter()
                            .any(|r| r.get("uid").and_then(Value::as_str) == Some(owner_uid))
                    });
                if owned {
                    dependents.push((resource.clone(), object.clone()));
                }
            }
        }
        dependents
    }

    /// Whether any live object has this uid (for garbage collection of dependents).
    pub fn uid_exists(&self, uid: &str) -> bool {
        self.objects.values().any(|objects| {
            objects
                .values()
                .any(|o| o.pointer("/metadata/uid").and_then(Value::as_str) == Some(uid))
        })
    }

    pub fn count(&self, resource: &ResourceRef) -> usize {
        self.objects.get(resource).map_or(0, BTreeMap::len)
    }

    /// Inserts or replaces an object, stamping the next resourceVersion.
    pub fn put(
        &mut self,
        resource: &ResourceRef,
        namespace: &str,
        name: &str,
        mut object: Value,
    ) -> Arc<Value> {
        self.resource_version += 1;
        let resource_version = self.resource_version;
        stamp_resource_version(&mut object, resource_version);
        let object = Arc::new(object);
        let key = (namespace.to_string(), name.to_string());
        let previous = self
            .objects
            .entry(resource.clone())
            .or_default()
            .insert(key, object.clone());
        let event_type = if previous.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.record(StoreEvent {
            event_type,
            resource: resource.clone(),
            namespace: namespace.to_string(),
            name: name.to_string(),
            resource_version,
            object: object.clone(),
            previous,
        });
        object
    }

    /// Removes an object; the DELETED event carries its last state at a new resourceVersion.
    pub fn remove(
        &mut self,
        resource: &ResourceRef,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<Value>> {
        let key = (namespace.to_string(), name.to_string());
        let previous = self.objects.get_mut(resource)?.remove(&key)?;
        self.resource_version += 1;
        let resource_version = self.resource_version;
        let mut last = (*previous).clone();
        stamp_resource_version(&mut last, resource_version);
        let last = Arc::new(last);
        self.record(StoreEvent {
            event_type: EventType::Deleted,
            resource: resource.clone(),
            namespace: namespace.to_string(),
            name: name.to_string(),
            resource_version,
            object: last.clone(),
            previous: Some(previous),
        });
        Some(last)
    }

    /// Drops every object of a resource without events (its CRD is gone, so nobody can
    /// watch it any more).
    pub fn drop_resource(&mut self, resource: &ResourceRef) {
        self.objects.remove(resource);
    }

    fn record(&mut self, event: StoreEvent) {
        let event = Arc::new(event);
        if self.history.len() >= self.history_len
            && let Some(evicted) = self.history.pop_front()
        {
            self.compacted_through = evicted.resource_version;
        }
        self.history.push_back(event.clone());
        // No receivers is normal (nobody watching).
        let _ = self.events.send(event);
    }

    /// Events after `since` (exclusive) plus a receiver for everything later. Fails with 410
    /// Expired when `since` is older than the retained history.
    pub fn subscribe_since(&self, since: u64) -> Result<Subscription, ApiError> {
        if since < self.compacted_through {
            return Err(ApiError::expired(format!(
                "too old resource version: {since} ({})",
                self.compacted_through + 1
            )));
        }
        let start = self
            .history
            .partition_point(|e| e.resource_version <= since);
        let replay = self.history.iter().skip(start).cloned().collect();
        Ok((replay, self.events.subscribe()))
    }
}
