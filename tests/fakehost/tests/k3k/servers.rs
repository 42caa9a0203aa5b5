//! K3K's server pods: `k3k-<n>-server-<i>` made from the StatefulSet K3K writes (server.go's
//! pod spec), Running and Ready on a fake node, made again when deleted; the
//! `etcdpod.k3k.io/finalizer` K3K puts on them holds a deleting pod of a multi-server
//! Cluster until etcd answers behind `k3k-<n>-service:2379`, and is released when the Cluster
//! is gone.

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};

use crate::k3k::support::{K3kHost, eventually, start};

const FINALIZER: &str = "etcdpod.k3k.io/finalizer";

fn pods(t: &K3kHost, ns: &str) -> Api<Pod> {
    Api::namespaced(t.client.clone(), ns)
}

fn ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The pod once it exists, Running and Ready, and is not `previous_uid`.
async fn ready_pod(t: &K3kHost, ns: &str, name: &str, previous_uid: Option<&str>) -> Pod {
    eventually(&format!("{name} ready"), async || {
        let pod = pods(t, ns).get_opt(name).await.expect("get")?;
        let fresh = previous_uid.is_none_or(|u| pod.metadata.uid.as_deref() != Some(u));
        (fresh && pod.metadata.deletion_timestamp.is_none() && ready(&pod)).then_some(pod)
    })
    .await
}

fn json_of(pod: &Pod) -> Value {
    serde_json::to_value(pod).expect("json")
}

#[tokio::test]
async fn server_pods_follow_k3k_server_go() {
    let t = start(Duration::from_millis(50)).await;
    t.namespace("ws-s", json!({})).await;
    let affinity = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["fakehost-node-1"]}]}]}}});
    t.cluster(
        "ws-s",
        "lim",
        json!({"servers": 1, "nodeSelector": {"kubernetes.io/os": "linux"}, "serverAffinity": affinity,
               "priorityClass": "system-cluster-critical", "expose": {"nodePort": {"etcdPort": 0}},
               "serverLimit": {"cpu": "1000m", "memory": "1024Mi"}}),
    )
    .await;
    t.cluster(
        "ws-s",
        "res",
        json!({"servers": 1, "serverLimit": {"cpu": "1"}, "serverResources": {"limits": {"cpu": "2", "memory": "2Gi"}}}),
    )
    .await;
    t.wait_phase("ws-s", "lim", "Ready").await;
    let pod = ready_pod(&t, "ws-s", "k3k-lim-server-0", None).await;
    let p = json_of(&pod);
    assert_eq!(p["metadata"]["labels"]["cluster"], "lim");
    assert_eq!(p["metadata"]["labels"]["role"], "server");
    let owner = &p["metadata"]["ownerReferences"][0];
    assert_eq!(
        (&owner["kind"], &owner["name"], &owner["controller"]),
        (
            &json!("StatefulSet"),
            &json!("k3k-lim-server"),
            &json!(true)
        )
    );
    assert_eq!(p["status"]["phase"], "Running");
    assert!(
        p["status"]["podIP"]
            .as_str()
            .is_some_and(|ip| ip.starts_with("10.42."))
    );
    assert_eq!(p["spec"]["nodeName"], "fakehost-node-1");
    assert_eq!(
        p["spec"]["nodeSelector"],
        json!({"kubernetes.io/os": "linux"})
    );
    assert_eq!(p["spec"]["affinity"], affinity);
    assert_eq!(p["spec"]["priorityClassName"], "system-cluster-critical");
    // K3K writes the limits back from Go quantities: canonical. The API server then
    // requests them too (a limit without a request is requested at the limit).
    assert_eq!(
        p["spec"]["containers"][0]["resources"],
        json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}})
    );
    // K3K's StatefulSet controller puts its finalizer on every server pod.
    assert_eq!(p["metadata"]["finalizers"], json!([FINALIZER]));

    let res = json_of(&ready_pod(&t, "ws-s", "k3k-res-server-0", None).await);
    assert_eq!(
        res["spec"]["resources"],
        json!({"limits": {"cpu": "2", "memory": "2Gi"}}),
        "serverResources are the pod's"
    );
    assert!(
        res["spec"]["containers"][0]["resources"]
            .as_object()
            .is_none_or(|r| r.is_empty()),
        "and replace the container limits: {res}"
    );

    // A single server's pod goes at once (its own etcd is all there is), even without 2379
    // on the Service, and the StatefulSet controller makes it again.
    let uid = pod.metadata.uid.clone().expect("uid");
    pods(&t, "ws-s")
        .delete("k3k-lim-server-0", &DeleteParams::default())
        .await
        .expect("deleted");
    let again = ready_pod(&t, "ws-s", "k3k-lim-server-0", Some(&uid)).await;
    assert_ne!(again.metadata.uid.as_deref(), Some(uid.as_str()));
    t.wait_phase("ws-s", "lim", "Ready").await;
}

#[tokio::test]
async fn a_multi_server_pod_deletion_waits_for_etcd_behind_the_service() {
    let t = start(Duration::from_millis(50)).await;
    t.namespace("ws-ha", json!({})).await;
    let spec = json!({"servers": 2, "expose": {"nodePort": {"etcdPort": 0}}});
    t.cluster("ws-ha", "ha", spec.clone()).await;
    t.cluster("ws-ha", "doomed", spec).await;
    for cluster in ["ha", "doomed"] {
        t.wait_phase("ws-ha", cluster, "Ready").await;
        for i in 0..2 {
            ready_pod(&t, "ws-ha", &format!("k3k-{cluster}-server-{i}"), None).await;
        }
    }
    let api = pods(&t, "ws-ha");
    for cluster in ["ha", "doomed"] {
        api.delete(&format!("k3k-{cluster}-server-1"), &DeleteParams::default())
            .await
            .expect("deleted");
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    for cluster in ["ha", "doomed"] {
        let hanging = api
            .get(&format!("k3k-{cluster}-server-1"))
            .await
            .expect("still there");
        assert!(hanging.metadata.deletion_timestamp.is_some());
        assert_eq!(
            hanging.metadata.finalizers,
            Some(vec![FINALIZER.to_string()])
        );
        assert!(!ready(&hanging), "its containers are stopped");
    }

    // With 2379 back on K3K's Service, the member is removed and the pod goes.
    let old = api.get("k3k-ha-server-1").await.expect("pod").metadata.uid;
    t.clusters("ws-ha")
        .patch(
            "ha",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"expose": {"nodePort": {"etcdPort": null}}}})),
        )
        .await
        .expect("patched");
    ready_pod(&t, "ws-ha", "k3k-ha-server-1", old.as_deref()).await;

    // The Cluster deleted: K3K releases the pods without asking etcd.
    t.clusters("ws-ha")
        .delete("doomed", &DeleteParams::default())
        .await
        .expect("cluster deleted");
    eventually("the doomed servers to go", async || {
        let left = api
            .list(&kube::api::ListParams::default().labels("cluster=doomed"))
            .await
            .expect("list")
            .items;
        let sts = Api::<StatefulSet>::namespaced(t.client.clone(), "ws-ha")
            .get_opt("k3k-doomed-server")
            .await
            .expect("get");
        (left.is_empty() && sts.is_none()).then_some(())
    })
    .await;
}
