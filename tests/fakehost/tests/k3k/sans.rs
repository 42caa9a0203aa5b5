//! K3s reads `tls-san` from the config Secret K3K mounts, and only when it starts. K3K
//! v1.1.0 creates that Secret once and never rewrites it: a `spec.tlsSANs` change reaches
//! `status.tlsSANs`, but the running servers keep their certificate, and even a restarted
//! server pod reads the old Secret. Only a config Secret made again (deleted, so K3K
//! creates it anew) and a server started after that serve the new name.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};

use crate::k3k::support::{api_service, decode, eventually, serves_name, start};

#[tokio::test]
async fn a_new_tls_san_is_served_only_by_a_server_started_with_it() {
    let t = start(Duration::from_millis(50)).await;
    t.namespace("ws-san", json!({})).await;
    t.cluster(
        "ws-san",
        "c",
        json!({"servers": 1, "tlsSANs": ["old.example.test"]}),
    )
    .await;
    t.wait_phase("ws-san", "c", "Ready").await;
    let port = api_service(&t, "ws-san", "edge", "c").await;
    let ca = t.bootstrap("ws-san", "c").await["serverCA"]["Content"]
        .as_str()
        .expect("serverCA")
        .to_string();
    eventually("the old name served", async || {
        serves_name(port, &ca, "old.example.test").await.ok()
    })
    .await;
    assert!(serves_name(port, &ca, "new.example.test").await.is_err());

    t.clusters("ws-san")
        .patch(
            "c",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"tlsSANs": ["old.example.test", "new.example.test"]}})),
        )
        .await
        .expect("patched");
    t.wait_cluster("ws-san", "c", "given the new SAN", |c| {
        c.pointer("/status/tlsSANs")
            .and_then(Value::as_array)
            .is_some_and(|s| s.contains(&json!("new.example.test")))
    })
    .await;
    let secrets = Api::<Secret>::namespaced(t.client.clone(), "ws-san");
    let config = |name: &'static str| {
        let secrets = secrets.clone();
        async move {
            decode(
                &secrets.get(name).await.expect("config secret"),
                "config.yaml",
            )
        }
    };
    assert!(
        !config("k3k-c-init-server-config")
            .await
            .contains("new.example.test"),
        "K3K does not rewrite the config Secret"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused = serves_name(port, &ca, "new.example.test").await;
    assert!(refused.is_err(), "the running server keeps its certificate");

    // A restarted server reads the same old config.
    let pods = Api::<Pod>::namespaced(t.client.clone(), "ws-san");
    let restart = async |pods: &Api<Pod>| {
        let old = pods.get("k3k-c-server-0").await.expect("pod").metadata.uid;
        pods.delete("k3k-c-server-0", &DeleteParams::default())
            .await
            .expect("deleted");
        eventually("the server pod back and ready", async || {
            let pod = pods.get_opt("k3k-c-server-0").await.expect("get")?;
            let ready = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            (pod.metadata.uid != old && ready).then_some(())
        })
        .await;
    };
    restart(&pods).await;
    eventually("served again", async || {
        serves_name(port, &ca, "old.example.test").await.ok()
    })
    .await;
    assert!(serves_name(port, &ca, "new.example.test").await.is_err());

    // The config Secrets made again carry the new name; the next server start serves it.
    for name in ["k3k-c-init-server-config", "k3k-c-server-config"] {
        secrets
            .delete(name, &DeleteParams::default())
            .await
            .expect("deleted");
    }
    eventually("the config Secret made again", async || {
        let secret = secrets
            .get_opt("k3k-c-init-server-config")
            .await
            .expect("get")?;
        decode(&secret, "config.yaml")
            .contains("new.example.test")
            .then_some(())
    })
    .await;
    restart(&pods).await;
    eventually("the new name served", async || {
        serves_name(port, &ca, "new.example.test").await.ok()
    })
    .await;
    serves_name(port, &ca, "old.example.test")
        .await
        .expect("and the old one still");
}
