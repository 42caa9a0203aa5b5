//! Consistent reads at an older resourceVersion, rebuilt from the event history by undoing
//! newer events. Paged lists (`limit`/`continue`) and `resourceVersionMatch=Exact` use it so
//! every page reflects the state at the first page's resourceVersion, as etcd would serve.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use super::{EventType, ObjectKey, StoreInner};
use crate::errors::ApiError;
use crate::kinds::ResourceRef;

impl StoreInner {
    /// The objects of `resource` as they were at `at` (ordered by namespace, name).
    pub fn snapshot_at(
        &self,
        resource: &ResourceRef,
        at: u64,
    ) -> Result<BTreeMap<ObjectKey, Arc<Value>>, ApiError> {
        if at > self.resource_version {
            return Err(ApiError::timeout(format!(
                "Too large resource version: {at}, current: {}",
                self.resource_version
            )));
        }
        if at < self.compacted_through {
            return Err(ApiError::expired(format!(
                "The resourceVersion for the provided list is too old (requested {at})."
            )));
        }
        let mut objects = self.objects.get(resource).cloned().unwrap_or_default();
        for event in self.history.iter().rev() {
            if event.resource_version <= at {
                break;
            }
            if &event.resource != resource {
                continue;
            }
            let key = (event.namespace.clone(), event.name.clone());
            match (event.event_type, &event.previous) {
                (EventType::Added, _) => {
                    objects.remove(&key);
                }
                (_, Some(previous)) => {
                    objects.insert(key, previous.clone());
                }
                (_, None) => {}
            }
        }
        Ok(objects)
    }
}
