//! Dedicated nodes and placement, end to end against fakehost with PodTolerationRestriction
//! enabled: assignment labels and taints nodes (keeping other taints), the namespace carries
//! the workspace's toleration; another workspace's pod asking for it is rejected by the
//! host; release evicts and cleans; hand edits are repaired; plan rules refuse with reasons;
//! a dedicated node NotReady or gone degrades its workspace, which keeps its other nodes.

use std::time::{Duration, Instant};

use fakehost::ResourceRef;
use serde_json::{Value, json};

use crate::support::*;

fn node(h: &HostedApp, name: &str) -> Value {
    h.get("", "nodes", None, name).expect("node exists")
}

fn taint_keys(n: &Value) -> Vec<String> {
    n["spec"]["taints"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .map(|t| {
                    format!(
                        "{}={}:{}",
                        t["key"].as_str().unwrap_or(""),
                        t["value"].as_str().unwrap_or(""),
                        t["effect"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Replaces a node's taints the way an operator's `kubectl patch` would.
fn set_taints_by_hand(h: &HostedApp, node: &str, taints: Value) {
    let body = json!({"spec": {"taints": taints}}).to_string();
    let patch = fakehost::PatchRequest {
        patch_type: fakehost::PatchType::Merge,
        body: body.as_bytes(),
        status_subresource: false,
    };
    h.host
        .engine()
        .patch(
            &ResourceRef::core("nodes"),
            None,
            node,
            &patch,
            &Default::default(),
        )
        .expect("node patched");
}

fn pod(name: &str, tolerations: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}], "tolerations": tolerations}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedicated_nodes_are_isolated_released_and_repaired() {
    let h = HostedApp::start_with_nodes(true, 3).await;
    let (_, admin) = h.app.user("root@example.com", true).await;
    let root = bearer(&admin);
    let (_, t) = h.app.user("ada@example.com", false).await;
    let ada = bearer(&t);
    let org = h
        .app
        .call("POST", "/orgs", &ada, Some(json!({"name": "acme"})))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let prem = h
        .app
        .call(
            "POST",
            &format!("/orgs/{org}/workspaces"),
            &ada,
            Some(json!({"name": "prem", "plan": "premium"})),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let shared = h
        .app
        .call(
            "POST",
            &format!("/orgs/{org}/workspaces"),
            &ada,
            Some(json!({"name": "shared", "plan": "starter"})),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    for ws in [&prem, &shared] {
        h.wait_ws(&ada, ws, "Ready", |w| {
            w.is_some_and(|w| w["state"] == "Ready")
        })
        .await;
    }
    let prem_short = prem.trim_start_matches("ws_").to_string();
    let pool = format!("ws-{prem_short}");
    // Premium without dedicated nodes (a workspace keeps its cluster's server storage).
    let mut lite = h.app.ops().get_plan(&shell(), "premium").unwrap();
    lite.id = "premium-lite".into();
    lite.max_dedicated_nodes = 0;
    h.app.ops().create_plan(&shell(), lite).unwrap();

    // The inventory: three nodes, the first is the control plane (kaas lists what its
    // node watch has seen, so wait for all three).
    let mut listed = Value::Null;
    let deadline = Instant::now() + Duration::from_secs(10);
    while listed.as_array().is_none_or(|a| a.len() != 3) {
        listed = h.app.call("GET", "/nodes", &root, None).await.body;
        assert!(Instant::now() < deadline, "no inventory: {listed}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        listed[0]["roles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "control-plane")
    );
    assert_eq!(listed[1]["ready"], true);
    assert!(listed[1]["capacity"]["cpu"].is_string());

    // Refusals that name the rule.
    let r = h
        .app
        .call(
            "POST",
            &format!("/workspaces/{shared}/nodes"),
            &root,
            Some(json!({"node": "fakehost-node-2"})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 409);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not include dedicated nodes"),
        "{}",
        r.body
    );
    let r = h
        .app
        .call(
            "POST",
            &format!("/workspaces/{prem}/nodes"),
            &root,
            Some(json!({"node": "fakehost-node-1"})),
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), r.body["error"]["field"].as_str()),
        (422, Some("node")),
        "{}",
        r.body
    );
    let r = h
        .app
        .call(
            "POST",
            &format!("/workspaces/{prem}/nodes"),
            &root,
            Some(json!({"node": "nope"})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 422);
    let r = h
        .app
        .call(
            "POST",
            &format!("/workspaces/{prem}/nodes"),
            &ada,
            Some(json!({"node": "fakehost-node-2"})),
        )
        .await;
    assert_eq!(
        r.status.as_u16(),
        403,
        "only platform administrators assign nodes"
    );

    // Someone else's taint on the node must survive kaas's changes.
    set_taints_by_hand(
        &h,
        "fakehost-node-2",
        json!([{"key": "gpu", "value": "true", "effect": "NoSchedule"}]),
    );

    // Assign.
    let r = h
        .app
        .call(
            "POST",
            &format!("/workspaces/{prem}/nodes"),
            &root,
            Some(json!({"node": "fakehost-node-2"})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.body);
    until("label and taint on the node", || {
        let n = node(&h, "fakehost-node-2");
        n["metadata"]["labels"]["hexabase.ai/node-pool"] == pool.as_str()
            && taint_keys(&n).contains(&format!("dedicated={pool}:NoSchedule"))
    })
    .await;
    assert!(
        taint_keys(&node(&h, "fakehost-node-2")).contains(&"gpu=true:NoSchedule".to_string()),
        "foreign taint kept"
    );
    let ns_name = format!("kaas-ws-{prem_short}");
    until("the namespace's default toleration", || {
        h.get("", "namespaces", None, &ns_name).is_some_and(|ns| {
            ns["metadata"]["annotations"]["scheduler.alpha.kubernetes.io/defaultTolerations"]
                .as_str()
                .unwrap_or("")
                .contains(&pool)
        })
    })
    .await;
    let vcp = h
        .get("k3k.io", "virtualclusterpolicies", None, &ns_name)
        .unwrap();
    assert_eq!(
        vcp["spec"]["defaultNodeSelector"]["hexabase.ai/node-pool"],
        pool.as_str()
    );

    // Placement: the dedicated workspace's pods get the toleration; another workspace
    // asking for it is rejected by the host.
    let pods = ResourceRef::core("pods");
    let created = h
        .host
        .engine()
        .create(
            &pods,
            Some(&ns_name),
            pod("mine", json!([])),
            &Default::default(),
        )
        .unwrap();
    assert!(
        created["spec"]["tolerations"].to_string().contains(&pool),
        "default toleration merged: {created}"
    );
    let shared_ns = format!("kaas-ws-{}", shared.trim_start_matches("ws_"));
    let steal = pod(
        "thief",
        json!([{"key": "dedicated", "operator": "Equal", "value": pool, "effect": "NoSchedule"}]),
    );
    let err = h
        .host
        .engine()
        .create(&pods, Some(&shared_ns), steal, &Default::default())
        .unwrap_err();
    assert!(
        format!("{err:?}").contains("whitelist"),
        "the host refused the foreign toleration: {err:?}"
    );
    let steal_any = pod(
        "thief2",
        json!([{"key": "dedicated", "operator": "Exists"}]),
    );
    assert!(
        h.host
            .engine()
            .create(&pods, Some(&shared_ns), steal_any, &Default::default())
            .is_err(),
        "nor a wildcard for the key"
    );

    // A hand-edited taint is put back.
    set_taints_by_hand(
        &h,
        "fakehost-node-2",
        json!([{"key": "gpu", "value": "true", "effect": "NoSchedule"}]),
    );
    until("the removed taint restored", || {
        taint_keys(&node(&h, "fakehost-node-2")).contains(&format!("dedicated={pool}:NoSchedule"))
    })
    .await;

    // Downgrading with a node assigned is refused with the reason.
    let r = h
        .app
        .call(
            "PATCH",
            &format!("/workspaces/{prem}"),
            &ada,
            Some(json!({"plan": "premium-lite"})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 409);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("release nodes first"),
        "{}",
        r.body
    );

    // Release: the workspace's pod on the node is evicted, label and taint go, node schedulable.
    // (A pod bound to the node at creation: a bound pod's nodeName cannot change.)
    let mut on_node = pod("on-node", json!([]));
    on_node["spec"]["nodeName"] = json!("fakehost-node-2");
    let upd = h
        .host
        .engine()
        .create(&pods, Some(&ns_name), on_node, &Default::default());
    assert!(upd.is_ok(), "{upd:?}");
    let r = h
        .app
        .call(
            "DELETE",
            &format!("/workspaces/{prem}/nodes/fakehost-node-2"),
            &root,
            None,
        )
        .await;
    assert_eq!(r.status.as_u16(), 204);
    until("the node released", || {
        let n = node(&h, "fakehost-node-2");
        n["metadata"]["labels"]["hexabase.ai/node-pool"].is_null()
            && !taint_keys(&n).iter().any(|t| t.starts_with("dedicated="))
            && n["spec"]["unschedulable"] != true
    })
    .await;
    assert!(
        h.get("", "pods", Some(&ns_name), "on-node").is_none(),
        "the workspace's pod was evicted"
    );
    assert!(taint_keys(&node(&h, "fakehost-node-2")).contains(&"gpu=true:NoSchedule".to_string()));

    // The interval is recorded for billing.
    let intervals = h.app.ops().node_intervals(prem.parse().unwrap()).unwrap();
    assert_eq!(intervals.len(), 1);
    assert!(intervals[0].until.is_some());
    let r = h
        .app
        .call(
            "PATCH",
            &format!("/workspaces/{prem}"),
            &ada,
            Some(json!({"plan": "premium-lite"})),
        )
        .await;
    assert_eq!(
        r.status.as_u16(),
        200,
        "downgrade works once released: {}",
        r.body
    );
}

/// Sets a node's Ready condition the way its kubelet (or the node controller) would.
fn set_node_ready(h: &HostedApp, name: &str, ready: bool) {
    let mut n = node(h, name);
    for c in n["status"]["conditions"].as_array_mut().unwrap() {
        if c["type"] == "Ready" {
            c["status"] = json!(if ready { "True" } else { "False" });
            c["reason"] = json!(if ready {
                "KubeletReady"
            } else {
                "NodeStatusUnknown"
            });
        }
    }
    h.host
        .engine()
        .update_status(&ResourceRef::core("nodes"), None, n, &Default::default())
        .expect("node status updated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dedicated_node_going_not_ready_or_away_degrades_its_workspace_which_keeps_the_rest() {
    let h = HostedApp::start_with_nodes(true, 4).await;
    let (_, admin) = h.app.user("root@example.com", true).await;
    let root = bearer(&admin);
    let (_, t) = h.app.user("ada@example.com", false).await;
    let ada = bearer(&t);
    let org = h
        .app
        .call("POST", "/orgs", &ada, Some(json!({"name": "acme"})))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = h
        .app
        .call(
            "POST",
            &format!("/orgs/{org}/workspaces"),
            &ada,
            Some(json!({"name": "prem", "plan": "premium"})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.body);
    let ws = r.body["id"].as_str().unwrap().to_string();
    let pool = format!("ws-{}", ws.trim_start_matches("ws_"));
    let ready = |w: Option<&Value>| w.is_some_and(|w| w["state"] == "Ready");
    h.wait_ws(&ada, &ws, "Ready", ready).await;
    // Nodes 2 and 3 are dedicated (node 1 stays shared for K3K's node agents).
    for n in ["fakehost-node-2", "fakehost-node-3"] {
        let r = h
            .app
            .call(
                "POST",
                &format!("/workspaces/{ws}/nodes"),
                &root,
                Some(json!({"node": n})),
            )
            .await;
        assert_eq!(r.status.as_u16(), 201, "{n}: {}", r.body);
    }
    let dedicated = |n: &Value| taint_keys(n).contains(&format!("dedicated={pool}:NoSchedule"));
    until("both nodes dedicated", || {
        dedicated(&node(&h, "fakehost-node-2")) && dedicated(&node(&h, "fakehost-node-3"))
    })
    .await;
    h.wait_ws(&ada, &ws, "Ready with its nodes", ready).await;
    let assigned = async || -> Vec<String> {
        let r = h
            .app
            .call("GET", &format!("/workspaces/{ws}/nodes"), &ada, None)
            .await;
        assert_eq!(r.status.as_u16(), 200, "{}", r.body);
        let mut names: Vec<String> = r
            .body
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["node"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
    };
    assert_eq!(assigned().await, ["fakehost-node-2", "fakehost-node-3"]);

    // Node 3 goes NotReady: the workspace says so, the inventory shows it, nothing is released.
    set_node_ready(&h, "fakehost-node-3", false);
    let degraded = h
        .wait_ws(&ada, &ws, "degraded by the NotReady node", |w| {
            w.is_some_and(|w| w["state"] == "Error")
        })
        .await
        .unwrap();
    assert_eq!(
        degraded["message"], "degraded: dedicated node fakehost-node-3 is NotReady",
        "{degraded}"
    );
    let inventory = h.app.call("GET", "/nodes", &root, None).await.body;
    let entry = |name: &str| {
        inventory
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(entry("fakehost-node-3")["ready"], false, "{inventory}");
    assert_eq!(entry("fakehost-node-3")["workspace_id"], ws.as_str());
    assert_eq!(entry("fakehost-node-2")["ready"], true, "{inventory}");
    assert_eq!(assigned().await, ["fakehost-node-2", "fakehost-node-3"]);
    // Ready again, the workspace is too.
    set_node_ready(&h, "fakehost-node-3", true);
    h.wait_ws(&ada, &ws, "Ready once the node is back", ready)
        .await;

    // Node 3 disappears from the host: the workspace says so; node 2 stays dedicated to it.
    h.delete("", "nodes", None, "fakehost-node-3").await;
    let degraded = h
        .wait_ws(&ada, &ws, "degraded by the missing node", |w| {
            w.is_some_and(|w| w["state"] == "Error")
        })
        .await
        .unwrap();
    assert_eq!(
        degraded["message"], "degraded: dedicated node fakehost-node-3 is gone from the host",
        "{degraded}"
    );
    assert!(dedicated(&node(&h, "fakehost-node-2")));
    assert_eq!(assigned().await, ["fakehost-node-2", "fakehost-node-3"]);
    // Releasing the missing node is how the operator settles it; node 2 is kept.
    let r = h
        .app
        .call(
            "DELETE",
            &format!("/workspaces/{ws}/nodes/fakehost-node-3"),
            &root,
            None,
        )
        .await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.body);
    h.wait_ws(&ada, &ws, "Ready without the missing node", ready)
        .await;
    assert_eq!(assigned().await, ["fakehost-node-2"]);
    assert!(dedicated(&node(&h, "fakehost-node-2")));
}

#[tokio::test]
async fn a_host_without_the_admission_plugin_is_reported() {
    let h = HostedApp::start_with_nodes(false, 2).await;
    let admin = bearer(&h.app.user("root@example.com", true).await.1);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let host = h.app.call("GET", "/host", &admin, None).await.body;
        if host["pod_toleration_restriction"] == false {
            let w = host["warnings"][0].as_str().unwrap_or("");
            assert!(
                w.contains("PodTolerationRestriction") && w.contains("enable-admission-plugins"),
                "{w}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no warning: {host}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let h2 = HostedApp::start_with_nodes(true, 2).await;
    let admin = bearer(&h2.app.user("root@example.com", true).await.1);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let host = h2.app.call("GET", "/host", &admin, None).await.body;
        if host["pod_toleration_restriction"] == true {
            assert_eq!(host["warnings"], json!([]));
            break;
        }
        assert!(Instant::now() < deadline, "not detected: {host}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
