//! How a virtual cluster's API is exposed: K3K's Service `k3k-<n>-service` follows
//! server/service.go for every `spec.expose`, and the API is served on 127.0.0.1:<nodePort>
//! of any NodePort or LoadBalancer Service selecting the server pods with targetPort 6443 —
//! K3K's own, or one kaas makes — while a server is ready, and no longer once the Service or
//! its port is gone.

use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};

use crate::k3k::support::{
    K3kHost, answers, api_service, condition, eventually, serves_name, start,
};

/// (name, port, targetPort, has a nodePort) of each port, and the type.
async fn shape(t: &K3kHost, ns: &str, cluster: &str) -> (String, Vec<(String, i64, Value, bool)>) {
    let service = t
        .service(ns, &format!("k3k-{cluster}-service"))
        .await
        .expect("K3K's service");
    let spec = serde_json::to_value(service.spec.expect("spec")).expect("json");
    let ports = spec["ports"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or("").to_string(),
                p["port"].as_i64().unwrap_or(0),
                p["targetPort"].clone(),
                p.get("nodePort").is_some_and(|n| !n.is_null()),
            )
        })
        .collect();
    (spec["type"].as_str().unwrap_or("").to_string(), ports)
}

fn port(name: &str, number: i64, target: i64, node_port: bool) -> (String, i64, Value, bool) {
    (name.to_string(), number, json!(target), node_port)
}

async fn refused(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
}

#[tokio::test]
async fn k3k_service_follows_service_go_for_every_expose() {
    let t = start(Duration::from_millis(50)).await;
    t.namespace("ws-ex", json!({})).await;
    for (name, expose) in [
        ("none", None),
        ("empty", Some(json!({}))),
        ("np", Some(json!({"nodePort": {}}))),
        ("np-noetcd", Some(json!({"nodePort": {"etcdPort": 0}}))),
        ("np-noapi", Some(json!({"nodePort": {"serverPort": 40000}}))),
        (
            "np-out",
            Some(json!({"nodePort": {"serverPort": 40000, "etcdPort": 29999}})),
        ),
        ("lb", Some(json!({"loadBalancer": {}}))),
        (
            "lb-ports",
            Some(json!({"loadBalancer": {"serverPort": 8443, "etcdPort": 0}})),
        ),
    ] {
        let mut spec = json!({"mode": "shared", "servers": 1});
        if let Some(expose) = expose {
            spec["expose"] = expose;
        }
        t.cluster("ws-ex", name, spec).await;
    }
    for name in ["none", "empty", "np", "np-noetcd", "lb"] {
        t.wait_phase("ws-ex", name, "Ready").await;
    }
    let cluster_ip = vec![
        port("k3s-server-port", 443, 6443, false),
        port("k3s-etcd-port", 2379, 2379, false),
    ];
    assert_eq!(
        shape(&t, "ws-ex", "none").await,
        ("ClusterIP".into(), cluster_ip.clone())
    );
    assert_eq!(
        shape(&t, "ws-ex", "empty").await,
        ("ClusterIP".into(), cluster_ip)
    );
    assert_eq!(
        shape(&t, "ws-ex", "np").await,
        (
            "NodePort".into(),
            vec![
                port("k3s-server-port", 443, 6443, true),
                port("k3s-etcd-port", 2379, 2379, true)
            ]
        )
    );
    // etcdPort 0 is out of range: the etcd port is not on the Service at all.
    assert_eq!(
        shape(&t, "ws-ex", "np-noetcd").await,
        (
            "NodePort".into(),
            vec![port("k3s-server-port", 443, 6443, true)]
        )
    );
    assert_eq!(
        shape(&t, "ws-ex", "lb").await,
        (
            "LoadBalancer".into(),
            vec![
                port("k3s-server-port", 443, 6443, true),
                port("k3s-etcd-port", 2379, 2379, true)
            ]
        )
    );
    assert_eq!(
        shape(&t, "ws-ex", "lb-ports").await,
        (
            "LoadBalancer".into(),
            vec![port("k3s-server-port", 8443, 6443, true)]
        )
    );
    // K3K asks for its bootstrap data on the ClusterIP's 443 whatever the Service says: with
    // the API on 8443 nobody answers there, and the Cluster fails though its servers run.
    let failed = t.wait_phase("ws-ex", "lb-ports", "Failed").await;
    assert!(
        condition(&failed, "message").starts_with("failed to request bootstrap secret:"),
        "{failed:#?}"
    );
    // serverPort out of range: no 443, so K3K's bootstrap request to the ClusterIP's 443
    // finds nothing to answer it.
    assert_eq!(
        shape(&t, "ws-ex", "np-noapi").await,
        (
            "NodePort".into(),
            vec![port("k3s-etcd-port", 2379, 2379, true)]
        )
    );
    let failed = t.wait_phase("ws-ex", "np-noapi", "Failed").await;
    assert_eq!(condition(&failed, "reason"), "ProvisioningFailed");
    assert!(
        condition(&failed, "message").starts_with("failed to request bootstrap secret:"),
        "{failed:#?}"
    );
    // Both out of range: a Service without ports, which the API server refuses.
    let failed = t.wait_phase("ws-ex", "np-out", "Failed").await;
    assert_eq!(
        condition(&failed, "message"),
        "Service \"k3k-np-out-service\" is invalid: spec.ports: Required value"
    );
    assert!(t.service("ws-ex", "k3k-np-out-service").await.is_none());

    // K3K's own node ports serve the API (443's), through the same kube-proxy.
    for name in ["np", "np-noetcd", "lb", "lb-ports"] {
        let service = t
            .service("ws-ex", &format!("k3k-{name}-service"))
            .await
            .expect("service");
        let api = service.spec.and_then(|s| s.ports).unwrap_or_default()[0].clone();
        let node_port = u16::try_from(api.node_port.expect("nodePort")).expect("fits");
        if name == "lb-ports" {
            // No bootstrap Secret to mint a client certificate from: the handshake will do.
            let ca = eventually("a server", async || t.k3k.vcluster("ws-ex", name)).await;
            eventually("lb-ports served on its nodePort", async || {
                serves_name(node_port, ca.server_ca_pem(), "127.0.0.1")
                    .await
                    .ok()
            })
            .await;
            continue;
        }
        eventually(&format!("{name} served on its nodePort"), async || {
            answers(&t, "ws-ex", name, node_port).await.then_some(())
        })
        .await;
    }
}

#[tokio::test]
async fn any_service_selecting_the_servers_serves_the_api() {
    let t = start(Duration::from_millis(50)).await;
    t.namespace("ws-own", json!({})).await;
    // What kaas does now: no expose, and a Service of its own.
    t.cluster("ws-own", "c", json!({"mode": "shared", "servers": 1}))
        .await;
    t.wait_phase("ws-own", "c", "Ready").await;
    let port = api_service(&t, "ws-own", "edge", "c").await;
    eventually("the API on the other Service's nodePort", async || {
        answers(&t, "ws-own", "c", port).await.then_some(())
    })
    .await;

    // A port that does not reach 6443 serves nothing.
    let services = Api::<Service>::namespaced(t.client.clone(), "ws-own");
    services
        .patch(
            "edge",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"ports": [{"name": "https", "port": 443, "targetPort": 8443, "nodePort": port}]}})),
        )
        .await
        .expect("patched");
    eventually("the wrong targetPort to close the port", async || {
        refused(port).await.then_some(())
    })
    .await;
    services
        .patch(
            "edge",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"ports": [{"name": "https", "port": 443, "targetPort": 6443, "nodePort": port}]}})),
        )
        .await
        .expect("patched back");
    eventually("served again", async || {
        answers(&t, "ws-own", "c", port).await.then_some(())
    })
    .await;

    // No server running, nothing served; the Service gone, nothing served.
    let pods = Api::<k8s_openapi::api::core::v1::Pod>::namespaced(t.client.clone(), "ws-own");
    t.k3k.fail_provisioning("ws-own", "c");
    pods.delete("k3k-c-server-0", &DeleteParams::default())
        .await
        .expect("pod deleted");
    eventually("the port to close while no server runs", async || {
        refused(port).await.then_some(())
    })
    .await;
    t.k3k.clear_provisioning_faults();
    eventually("served by the new server", async || {
        answers(&t, "ws-own", "c", port).await.then_some(())
    })
    .await;
    services
        .delete("edge", &DeleteParams::default())
        .await
        .expect("service deleted");
    eventually("the port to close with the Service", async || {
        refused(port).await.then_some(())
    })
    .await;
}
