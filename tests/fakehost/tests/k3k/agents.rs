//! The shared-mode node agent: K3K's DaemonSet `k3k-<n>-kubelet` (shared.go) carries the
//! Cluster's nodeSelector, no tolerations and `workerLimit` as limits, is rewritten with
//! K3K's own object on every pass, and the DaemonSet controller counts only the nodes it
//! selects whose taints the template — plus the controller's own tolerations, never the
//! namespace's default ones — tolerates; the counts follow node and Cluster changes.

use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::{Value, json};

use crate::k3k::support::{K3kHost, eventually, start_with};

async fn patch_node(t: &K3kHost, name: &str, patch: Value) {
    Api::<Node>::all(t.client.clone())
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .expect("node patched");
}

/// (desired, current, ready, available) once they settle at `desired`.
async fn counts(t: &K3kHost, ns: &str, desired: i32) -> (i32, i32, i32, i32) {
    let api = Api::<DaemonSet>::namespaced(t.client.clone(), ns);
    eventually(&format!("{desired} nodes counted"), async || {
        let status = api.get("k3k-c-kubelet").await.expect("daemonset").status?;
        let counts = (
            status.desired_number_scheduled,
            status.current_number_scheduled,
            status.number_ready,
            status.number_available.unwrap_or(0),
        );
        (counts == (desired, desired, desired, desired)).then_some(counts)
    })
    .await
}

#[tokio::test]
async fn the_kubelet_daemonset_runs_where_the_daemonset_controller_puts_it() {
    let t = start_with(
        Duration::from_millis(50),
        fakehost::FakeHostOptions {
            nodes: fakehost::NodeSeed {
                count: 3,
                ..Default::default()
            },
            pod_toleration_restriction: true,
            ..Default::default()
        },
    )
    .await;
    patch_node(
        &t,
        "fakehost-node-2",
        json!({"metadata": {"labels": {"pool": "a"}}}),
    )
    .await;
    patch_node(
        &t,
        "fakehost-node-3",
        json!({"metadata": {"labels": {"pool": "a"}},
               "spec": {"taints": [{"key": "dedicated", "value": "ws", "effect": "NoSchedule"}]}}),
    )
    .await;
    // The namespace tolerates the taint for its pods: admission adds it, after the
    // DaemonSet controller has chosen its nodes.
    let ns: k8s_openapi::api::core::v1::Namespace = serde_json::from_value(json!({"metadata": {
        "name": "ws-ag",
        "annotations": {"scheduler.alpha.kubernetes.io/defaultTolerations":
            r#"[{"key": "dedicated", "operator": "Equal", "value": "ws", "effect": "NoSchedule"}]"#}}}))
    .expect("namespace");
    Api::<k8s_openapi::api::core::v1::Namespace>::all(t.client.clone())
        .create(&Default::default(), &ns)
        .await
        .expect("namespace created");
    t.cluster(
        "ws-ag",
        "c",
        json!({"mode": "shared", "nodeSelector": {"pool": "a"}, "workerLimit": {"cpu": "500m", "memory": "256Mi"}}),
    )
    .await;
    t.wait_phase("ws-ag", "c", "Ready").await;
    let daemonsets = Api::<DaemonSet>::namespaced(t.client.clone(), "ws-ag");
    let ds = serde_json::to_value(daemonsets.get("k3k-c-kubelet").await.expect("daemonset"))
        .expect("json");
    let template = &ds["spec"]["template"]["spec"];
    assert_eq!(template["nodeSelector"], json!({"pool": "a"}));
    assert!(template.get("tolerations").is_none(), "{template}");
    assert_eq!(
        template["containers"][0]["resources"],
        json!({"limits": {"cpu": "500m", "memory": "256Mi"}})
    );
    assert_eq!(ds["metadata"]["ownerReferences"][0]["kind"], "Cluster");

    // Node 3 carries pool=a but a taint the template does not tolerate; node 1 lacks the label.
    assert_eq!(counts(&t, "ws-ag", 1).await, (1, 1, 1, 1));
    let pods = Api::<Pod>::namespaced(t.client.clone(), "ws-ag")
        .list(&ListParams::default().labels("type=agent"))
        .await
        .expect("pods")
        .items;
    assert_eq!(pods.len(), 1);
    assert_eq!(
        pods[0].spec.as_ref().and_then(|s| s.node_name.as_deref()),
        Some("fakehost-node-2")
    );

    // Someone else's toleration on the DaemonSet does not last: K3K writes its own back.
    let mut edited = daemonsets.get("k3k-c-kubelet").await.expect("daemonset");
    if let Some(spec) = edited.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
        spec.tolerations = Some(vec![
            serde_json::from_value(
                json!({"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}),
            )
            .expect("toleration"),
        ]);
    }
    daemonsets
        .replace("k3k-c-kubelet", &Default::default(), &edited)
        .await
        .expect("edited");
    eventually("K3K to rewrite the DaemonSet", async || {
        let ds = daemonsets.get("k3k-c-kubelet").await.expect("daemonset");
        let spec = ds.spec?.template.spec?;
        spec.tolerations.is_none().then_some(())
    })
    .await;
    assert_eq!(counts(&t, "ws-ag", 1).await, (1, 1, 1, 1));

    // The counts follow the nodes.
    patch_node(&t, "fakehost-node-3", json!({"spec": {"taints": null}})).await;
    assert_eq!(counts(&t, "ws-ag", 2).await, (2, 2, 2, 2));
    patch_node(
        &t,
        "fakehost-node-1",
        json!({"metadata": {"labels": {"pool": "a"}}}),
    )
    .await;
    assert_eq!(counts(&t, "ws-ag", 3).await, (3, 3, 3, 3));
    // A cordoned node keeps its daemon pod (the controller tolerates unschedulable).
    patch_node(
        &t,
        "fakehost-node-1",
        json!({"spec": {"unschedulable": true}}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(counts(&t, "ws-ag", 3).await, (3, 3, 3, 3));
    // A NoExecute taint does evict it.
    patch_node(
        &t,
        "fakehost-node-1",
        json!({"spec": {"taints": [{"key": "dedicated", "value": "x", "effect": "NoExecute"}]}}),
    )
    .await;
    assert_eq!(counts(&t, "ws-ag", 2).await, (2, 2, 2, 2));
    // And the Cluster: a nodeSelector no node has leaves the agent nowhere to run.
    t.clusters("ws-ag")
        .patch(
            "c",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"nodeSelector": {"pool": "b"}}})),
        )
        .await
        .expect("cluster patched");
    assert_eq!(counts(&t, "ws-ag", 0).await, (0, 0, 0, 0));
}

/// The DaemonSet controller's own tolerations go through the namespace's
/// PodTolerationRestriction whitelist like any other: a whitelist without them refuses the
/// agent's pods, and the DaemonSet wants a node it never gets.
#[tokio::test]
async fn a_whitelist_without_the_controllers_tolerations_refuses_the_agent() {
    let t = start_with(
        Duration::from_millis(50),
        fakehost::FakeHostOptions {
            pod_toleration_restriction: true,
            ..Default::default()
        },
    )
    .await;
    let whitelist = r#"[{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
                        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}]"#;
    let ns: k8s_openapi::api::core::v1::Namespace = serde_json::from_value(json!({"metadata": {
        "name": "ws-wl", "annotations": {"scheduler.alpha.kubernetes.io/tolerationsWhitelist": whitelist}}}))
    .expect("namespace");
    Api::<k8s_openapi::api::core::v1::Namespace>::all(t.client.clone())
        .create(&Default::default(), &ns)
        .await
        .expect("namespace created");
    t.cluster("ws-wl", "c", json!({"mode": "shared"})).await;
    // The server pod only carries DefaultTolerationSeconds' two: admitted, and Ready.
    t.wait_phase("ws-wl", "c", "Ready").await;
    let api = Api::<DaemonSet>::namespaced(t.client.clone(), "ws-wl");
    let status = eventually("the DaemonSet counted", async || {
        api.get("k3k-c-kubelet").await.expect("daemonset").status
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = api
        .get("k3k-c-kubelet")
        .await
        .expect("daemonset")
        .status
        .unwrap_or(status);
    assert_eq!(
        (
            status.desired_number_scheduled,
            status.current_number_scheduled,
            status.number_ready
        ),
        (1, 0, 0)
    );
    assert_eq!(status.number_unavailable, Some(1));
}
