//! What kaas owns on a dedicated host node: the label `hexabase.ai/node-pool=ws-<short>`
//! (plus the workspace-id label, so node events map back to their workspace) and the taint
//! `dedicated=ws-<short>:NoSchedule`. Pure builders of the patch bodies; the reconciler sends
//! them.
//!
//! NB: the two need different patch kinds. Labels are a granular map, so they go by
//! server-side apply under the `kaas` field manager and a later apply without them removes
//! exactly kaas's labels. `spec.taints`, however, is an *atomic* list (`+listType=atomic`
//! in Kubernetes 1.33; k8s-openapi merges it with `list::atomic`): SSA would own and replace
//! the whole list, wiping taints the node controller (`not-ready`, `unreachable`), `kubectl
//! cordon` (`unschedulable`) or an operator set — or conflict with them. A strategic merge
//! patch replaces it whole too (no patch merge key). So taints are read, edited with
//! [`taints_with_ours`] / [`taints_without_ours`] (which keep every taint kaas does not own),
//! and written back with [`taints_merge_patch`], whose `resourceVersion` makes the write fail
//! with 409 instead of losing a concurrent change; on 409, re-read and retry.

use k8s_openapi::api::core::v1::Taint;
use serde_json::{Value, json};

use super::names;
use crate::domain::WorkspaceId;

/// SSA body (apply-patch) giving `node_name` kaas's labels for workspace `ws`. Contains no
/// taints, on purpose (see the module doc).
pub fn dedicated_node_patch(node_name: &str, ws: WorkspaceId) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node_name,
            "labels": {
                names::NODE_POOL_LABEL: names::node_pool(ws),
                names::WORKSPACE_ID_LABEL: names::workspace_label_value(ws),
            },
        },
    })
}

/// SSA body that releases a node: applying it under the `kaas` manager removes the labels
/// kaas set (a label another manager also set stays, owned by that manager).
pub fn released_node_patch(node_name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": { "name": node_name },
    })
}

/// The taint of a workspace's dedicated nodes: `dedicated=ws-<short>:NoSchedule`.
///
/// NoSchedule keeps new foreign pods off; it does not evict pods already running on the
/// node when it is assigned (drain it first if that matters).
pub fn dedicated_taint(ws: WorkspaceId) -> Taint {
    Taint {
        key: names::DEDICATED_TAINT_KEY.into(),
        value: Some(names::node_pool(ws)),
        effect: "NoSchedule".into(),
        time_added: None,
    }
}

/// Whether kaas owns a taint: key `dedicated` with a pool value (`ws-…`). A `dedicated`
/// taint with another value (say an operator's `dedicated=gpu`) is not kaas's.
pub fn is_kaas_taint(t: &Taint) -> bool {
    t.key == names::DEDICATED_TAINT_KEY
        && t.value
            .as_deref()
            .is_some_and(|v| v.starts_with(names::POOL_PREFIX))
}

/// The node's taints with `ws`'s taint present and no other pool's: every taint kaas does
/// not own is kept, in order. Returns `existing` unchanged when it is already right, so
/// `taints_with_ours(t, ws) == t` means "no write needed".
pub fn taints_with_ours(existing: &[Taint], ws: WorkspaceId) -> Vec<Taint> {
    let ours = dedicated_taint(ws);
    let mut seen = false;
    let mut out: Vec<Taint> = Vec::with_capacity(existing.len() + 1);
    for t in existing {
        if !is_kaas_taint(t) {
            out.push(t.clone());
        } else if !seen && same_taint(t, &ours) {
            // Keep it where it is (with whatever timeAdded the server recorded).
            seen = true;
            out.push(t.clone());
        }
        // Any other pool's taint (a previous assignment) or a duplicate goes.
    }
    if !seen {
        out.push(ours);
    }
    out
}

/// The node's taints without pool `pool`'s taint; everything else (including another pool's
/// taint, should the node have been reassigned meanwhile) is kept.
pub fn taints_without_ours(existing: &[Taint], pool: &str) -> Vec<Taint> {
    existing
        .iter()
        .filter(|t| !(t.key == names::DEDICATED_TAINT_KEY && t.value.as_deref() == Some(pool)))
        .cloned()
        .collect()
}

/// JSON merge patch body (`application/merge-patch+json`) setting a node's whole taint
/// list, guarded by the `resourceVersion` the list was read at.
pub fn taints_merge_patch(resource_version: &str, taints: &[Taint]) -> Value {
    let taints: Vec<Value> = taints
        .iter()
        .map(|t| {
            let mut m = serde_json::Map::new();
            m.insert("effect".into(), Value::String(t.effect.clone()));
            m.insert("key".into(), Value::String(t.key.clone()));
            if let Some(at) = &t.time_added {
                m.insert("timeAdded".into(), Value::String(at.0.to_string()));
            }
            if let Some(v) = &t.value {
                m.insert("value".into(), Value::String(v.clone()));
            }
            Value::Object(m)
        })
        .collect();
    json!({
        "metadata": { "resourceVersion": resource_version },
        "spec": { "taints": taints },
    })
}

fn same_taint(a: &Taint, b: &Taint) -> bool {
    a.key == b.key && a.value == b.value && a.effect == b.effect
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws() -> WorkspaceId {
        "ws_01hzy3v8k2m4n6p8q0r2s4t6v8".parse().unwrap()
    }

    fn taint(key: &str, value: Option<&str>, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: value.map(String::from),
            effect: effect.into(),
            time_added: None,
        }
    }

    #[test]
    fn the_label_patch_never_touches_taints() {
        let p = dedicated_node_patch("node-a", ws());
        assert_eq!(p["apiVersion"], "v1");
        assert_eq!(p["kind"], "Node");
        assert_eq!(p["metadata"]["name"], "node-a");
        assert_eq!(
            p["metadata"]["labels"][names::NODE_POOL_LABEL],
            "ws-01hzy3v8k2m4n6p8q0r2s4t6v8"
        );
        assert_eq!(
            p["metadata"]["labels"][names::WORKSPACE_ID_LABEL],
            "ws_01hzy3v8k2m4n6p8q0r2s4t6v8"
        );
        assert!(p.get("spec").is_none() && p.get("status").is_none());
        let r = released_node_patch("node-a");
        assert!(r["metadata"].get("labels").is_none());
    }

    #[test]
    fn adding_ours_keeps_every_foreign_taint_and_drops_stale_pools() {
        let cordon = taint("node.kubernetes.io/unschedulable", None, "NoSchedule");
        let gpu = taint("dedicated", Some("gpu"), "NoSchedule");
        let stale = taint(
            "dedicated",
            Some("ws-01j0000000000000000000000z"),
            "NoSchedule",
        );
        let got = taints_with_ours(&[cordon.clone(), stale, gpu.clone()], ws());
        assert_eq!(got, vec![cordon.clone(), gpu, dedicated_taint(ws())]);
        // Already right: unchanged, so the reconciler writes nothing.
        assert_eq!(taints_with_ours(&got, ws()), got);
        // A duplicate of ours is collapsed; its position is kept.
        let dup = vec![dedicated_taint(ws()), cordon.clone(), dedicated_taint(ws())];
        assert_eq!(
            taints_with_ours(&dup, ws()),
            vec![dedicated_taint(ws()), cordon]
        );
        assert_eq!(taints_with_ours(&[], ws()), vec![dedicated_taint(ws())]);
    }

    #[test]
    fn removing_ours_keeps_everything_else() {
        let pool = names::node_pool(ws());
        let other = taint(
            "dedicated",
            Some("ws-01j0000000000000000000000z"),
            "NoSchedule",
        );
        let not_ready = taint("node.kubernetes.io/not-ready", None, "NoExecute");
        let existing = vec![not_ready.clone(), dedicated_taint(ws()), other.clone()];
        assert_eq!(
            taints_without_ours(&existing, &pool),
            vec![not_ready, other]
        );
        assert!(taints_without_ours(&[], &pool).is_empty());
    }

    #[test]
    fn the_taint_patch_is_guarded_by_resource_version() {
        let p = taints_merge_patch("4711", &[dedicated_taint(ws())]);
        assert_eq!(p["metadata"]["resourceVersion"], "4711");
        assert_eq!(
            p["spec"]["taints"],
            serde_json::json!([{
                "effect": "NoSchedule", "key": "dedicated",
                "value": "ws-01hzy3v8k2m4n6p8q0r2s4t6v8",
            }])
        );
        // An empty list is sent as `[]`, which clears the taints (a merge patch with
        // `null` would too, but `[]` says what is meant).
        assert_eq!(
            taints_merge_patch("1", &[])["spec"]["taints"],
            serde_json::json!([])
        );
    }

    #[test]
    fn ownership_is_by_key_and_pool_prefix() {
        assert!(is_kaas_taint(&dedicated_taint(ws())));
        assert!(!is_kaas_taint(&taint(
            "dedicated",
            Some("gpu"),
            "NoSchedule"
        )));
        assert!(!is_kaas_taint(&taint("dedicated", None, "NoSchedule")));
        assert!(!is_kaas_taint(&taint("other", Some("ws-x"), "NoSchedule")));
    }
}
