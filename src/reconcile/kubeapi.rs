//! The few ways kaas talks to any Kubernetes API, written once: apply an object only if the
//! server's copy differs (so an in-sync pass writes nothing), compare with a watch cache
//! first, delete where a 404 counts as success, and tell "not found" apart.

use std::sync::Arc;

use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::reflector;
use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::host::names;

pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Deletes `name`; true when something was there to delete. A 404 is success: the object
/// is already gone, which is what was wanted.
pub async fn delete_if_present<K>(
    api: &Api<K>,
    name: &str,
    params: &DeleteParams,
) -> Result<bool, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, params).await {
        Ok(_) => Ok(true),
        Err(e) if is_not_found(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether every field of `desired` is present with the same value in `observed` (extra
/// fields on the host — defaults, other managers' fields — do not count as drift).
/// Quantities (the values of `hard`, `limits`, `requests`, `default`, … maps) compare by
/// value: a server stores "2000m" as "2".
pub fn contains(observed: &Value, desired: &Value) -> bool {
    contains_in(observed, desired, false)
}

/// Keys whose object values map resource names to quantities.
const QUANTITY_MAPS: [&str; 8] = [
    "hard",
    "used",
    "limits",
    "requests",
    "default",
    "defaultRequest",
    "max",
    "min",
];

/// `quantity_map`: whether `desired` is an object mapping resource names to quantities.
fn contains_in(observed: &Value, desired: &Value, quantity_map: bool) -> bool {
    match (observed, desired) {
        (Value::Object(o), Value::Object(d)) => d.iter().all(|(k, dv)| match o.get(k) {
            Some(Value::String(a)) if quantity_map => {
                matches!(dv, Value::String(b) if crate::host::quantity::same_quantity(a, b))
            }
            Some(ov) => contains_in(ov, dv, QUANTITY_MAPS.contains(&k.as_str())),
            // The API server leaves empty lists out of what it returns (`omitempty`, e.g. a
            // RoleBinding's `subjects`): an empty list is in sync with an absent one, or
            // every pass would write it again.
            None => matches!(dv, Value::Array(a) if a.is_empty()),
        }),
        (Value::Array(o), Value::Array(d)) => {
            o.len() == d.len() && o.iter().zip(d).all(|(ov, dv)| contains_in(ov, dv, false))
        }
        (o, d) => o == d,
    }
}

/// Whether `have` already carries everything in `desired`.
pub fn in_sync<K: Serialize>(have: &K, desired: &K) -> Result<bool, kube::Error> {
    let want = serde_json::to_value(desired).map_err(kube::Error::SerdeError)?;
    let have = serde_json::to_value(have).map_err(kube::Error::SerdeError)?;
    Ok(contains(&have, &want))
}

/// Applies `desired` (server-side apply under kaas's field manager) unless the host already
/// has it. Returns the object as on the host and whether kaas wrote.
pub async fn apply_if_changed<K>(
    api: &Api<K>,
    name: &str,
    desired: &K,
) -> Result<(K, bool), kube::Error>
where
    K: Resource + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    if let Some(have) = api.get_opt(name).await?
        && in_sync(&have, desired)?
    {
        return Ok((have, false));
    }
    let params = PatchParams::apply(names::FIELD_MANAGER).force();
    let applied = api.patch(name, &params, &Patch::Apply(desired)).await?;
    Ok((applied, true))
}

/// Like [`apply_if_changed`], but first compares with a cached copy: in sync means no request.
pub async fn apply_cached<K>(
    api: &Api<K>,
    name: &str,
    desired: &K,
    cached: Option<Arc<K>>,
) -> Result<(K, bool), kube::Error>
where
    K: Resource + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    if let Some(have) = cached
        && in_sync(have.as_ref(), desired)?
    {
        return Ok(((*have).clone(), false));
    }
    apply_if_changed(api, name, desired).await
}

/// Applies each desired object unless an equal one is already in `have` (one list instead
/// of a read per object).
pub async fn apply_missing<K>(api: &Api<K>, desired: Vec<K>, have: &[K]) -> Result<(), kube::Error>
where
    K: Resource + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    for d in desired {
        let name = d.meta().name.clone().unwrap_or_default();
        let present = have.iter().any(|h| {
            h.meta().name.as_deref() == Some(name.as_str()) && in_sync(h, &d).unwrap_or(false)
        });
        if !present {
            apply_if_changed(api, &name, &d).await?;
        }
    }
    Ok(())
}

/// The cached copy of an object, once the watch behind `store` has listed everything; an
/// unsynced cache knows nothing (`None`), and the caller reads from the API instead.
pub fn cached<K>(store: &reflector::Store<K>, name: &str, namespace: Option<&str>) -> Option<Arc<K>>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    lookup(store, name, namespace).flatten()
}

/// What a synced watch cache holds under `name`: `None` while it has not had its first full
/// list (ask the API server), `Some(None)` when the object does not exist.
pub fn lookup<K>(
    store: &reflector::Store<K>,
    name: &str,
    namespace: Option<&str>,
) -> Option<Option<Arc<K>>>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    is_synced(store).then(|| {
        let mut key = reflector::ObjectRef::new(name);
        if let Some(ns) = namespace {
            key = key.within(ns);
        }
        store.get(&key)
    })
}

/// Whether a watch cache has received its first full list.
pub fn is_synced<K>(store: &reflector::Store<K>) -> bool
where
    K: Resource + Clone + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    matches!(
        futures::FutureExt::now_or_never(store.wait_until_ready()),
        Some(Ok(()))
    )
}

#[cfg(test)]
mod tests {
    use super::contains;
    use serde_json::json;

    #[test]
    fn quantities_a_server_rewrote_are_in_sync_and_other_values_compare_exactly() {
        let stored = json!({"spec": {"hard": {"requests.cpu": "2", "limits.memory": "4Gi"},
            "limits": [{"default": {"cpu": "500m"}}]}, "metadata": {"labels": {"n": "2"}}});
        let written = json!({"spec": {"hard": {"requests.cpu": "2000m", "limits.memory": "4096Mi"},
            "limits": [{"default": {"cpu": "0.5"}}]}});
        assert!(contains(&stored, &written));
        let changed = json!({"spec": {"hard": {"requests.cpu": "3"}}});
        assert!(!contains(&stored, &changed));
        // Outside quantity maps, "2" and "2000m" are different strings.
        assert!(!contains(
            &stored,
            &json!({"metadata": {"labels": {"n": "2000m"}}})
        ));
    }

    #[test]
    fn an_empty_list_is_in_sync_with_one_the_server_left_out_and_nothing_else_is() {
        let stored = json!({"roleRef": {"name": "view"}});
        assert!(contains(&stored, &json!({"subjects": []})));
        assert!(!contains(
            &stored,
            &json!({"subjects": [{"kind": "User", "name": "a"}]})
        ));
        assert!(!contains(&stored, &json!({"subjects": {}})));
        assert!(!contains(&stored, &json!({"note": ""})));
    }
}
