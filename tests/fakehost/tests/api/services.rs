//! Services as kube-apiserver stores them: nodePorts allocated at random in 30000–32767,
//! kept (matched by port name) and the clusterIP kept when an update leaves them out — the
//! way K3K replaces its Service's spec on every pass —, dropped with a change to ClusterIP,
//! and refused out of range, already allocated, or on a ClusterIP Service.

use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::api::support::start;

fn service(name: &str, spec: Value) -> Service {
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).expect("service")
}

fn node_ports(service: &Service) -> Vec<(String, Option<i32>)> {
    service
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|p| (p.name.unwrap_or_default(), p.node_port))
        .collect()
}

fn refusal(result: Result<Service, kube::Error>) -> (u16, String) {
    match result {
        Err(kube::Error::Api(status)) => (status.code, status.message.clone()),
        other => panic!("not refused: {other:?}"),
    }
}

#[tokio::test]
async fn a_replaced_spec_keeps_what_the_api_server_allocated() {
    let t = start().await;
    let api = Api::<Service>::namespaced(t.client.clone(), "default");
    let ports =
        json!([{"name": "https", "port": 443, "targetPort": 6443}, {"name": "etcd", "port": 2379}]);
    let created = api
        .create(
            &PostParams::default(),
            &service(
                "api",
                json!({"type": "NodePort", "selector": {"app": "x"}, "ports": ports}),
            ),
        )
        .await
        .expect("created");
    let allocated = node_ports(&created);
    for (_, port) in &allocated {
        assert!(
            port.is_some_and(|p| (30_000..=32_767).contains(&p)),
            "{allocated:?}"
        );
    }
    let ip = created.spec.as_ref().and_then(|s| s.cluster_ip.clone());
    assert!(ip.is_some());
    assert_eq!(
        created
            .spec
            .as_ref()
            .and_then(|s| s.ports.as_ref())
            .map(|p| p[1].target_port.clone()),
        Some(Some(
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(2379)
        )),
        "an absent targetPort is the port"
    );

    // K3K's CreateOrUpdate: the whole spec replaced, without clusterIP or nodePorts.
    let mut replaced = created.clone();
    replaced.spec = service("api", json!({"type": "NodePort", "selector": {"app": "x"},
        "ports": [{"name": "https", "port": 443, "targetPort": 6443}, {"name": "etcd", "port": 2379}]}))
    .spec;
    let updated = api
        .replace("api", &PostParams::default(), &replaced)
        .await
        .expect("replaced");
    assert_eq!(updated.spec.as_ref().and_then(|s| s.cluster_ip.clone()), ip);
    assert_eq!(
        node_ports(&updated),
        allocated,
        "nodePorts follow their port names"
    );
    assert_eq!(
        updated.metadata.resource_version, created.metadata.resource_version,
        "nothing changed, nothing written"
    );

    // Back to ClusterIP: the unchanged nodePorts go with the type.
    let clusterip = api
        .patch(
            "api",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"type": "ClusterIP"}})),
        )
        .await
        .expect("patched");
    assert!(node_ports(&clusterip).iter().all(|(_, p)| p.is_none()));
}

#[tokio::test]
async fn node_ports_are_checked() {
    let t = start().await;
    let api = Api::<Service>::namespaced(t.client.clone(), "default");
    let taken = api
        .create(
            &PostParams::default(),
            &service(
                "first",
                json!({"type": "NodePort", "ports": [{"name": "a", "port": 80}]}),
            ),
        )
        .await
        .expect("created");
    let port = node_ports(&taken)[0].1.expect("allocated");
    let (code, message) = refusal(
        api.create(
            &PostParams::default(),
            &service(
                "second",
                json!({"type": "NodePort", "ports": [{"name": "a", "port": 80, "nodePort": port}]}),
            ),
        )
        .await,
    );
    assert_eq!(code, 422);
    assert_eq!(
        message,
        format!(
            "Service \"second\" is invalid: spec.ports[0].nodePort: Invalid value: {port}: provided port is already allocated"
        )
    );
    let (code, message) = refusal(
        api.create(
            &PostParams::default(),
            &service(
                "third",
                json!({"type": "NodePort", "ports": [{"name": "a", "port": 80, "nodePort": 8080}]}),
            ),
        )
        .await,
    );
    assert_eq!(code, 422);
    assert!(
        message.contains(
            "provided port is not in the valid range. The range of valid ports is 30000-32767"
        ),
        "{message}"
    );
    let (code, message) = refusal(
        api.create(
            &PostParams::default(),
            &service(
                "fourth",
                json!({"ports": [{"name": "a", "port": 80, "nodePort": 31999}]}),
            ),
        )
        .await,
    );
    assert_eq!(code, 422);
    assert!(
        message.contains("Forbidden: may not be used when `type` is 'ClusterIP'"),
        "{message}"
    );
}
