//! Cluster lifecycle: Provisioning → Ready with k3k's objects, spec-change rollouts,
//! validation failures, injected provisioning faults, and deletion behind the finalizer.

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};

use crate::k3k::support::{K3kHost, b64, condition, decode, eventually, policies_resource, start};

fn spec() -> Value {
    json!({"mode": "shared", "servers": 1, "version": "v1.33.1-k3s1", "tlsSANs": ["kaas.example.test"], "expose": {"nodePort": {}}})
}

async fn stateful_set(t: &K3kHost, ns: &str, cluster: &str) -> StatefulSet {
    Api::<StatefulSet>::namespaced(t.client.clone(), ns)
        .get(&format!("k3k-{cluster}-server"))
        .await
        .expect("statefulset")
}

#[tokio::test]
async fn cluster_provisions_then_becomes_ready_with_k3k_objects() {
    let t = start(Duration::from_millis(400)).await;
    t.namespace("ws-a", json!({})).await;
    t.cluster("ws-a", "c1", spec()).await;

    let provisioning = t.wait_phase("ws-a", "c1", "Provisioning").await;
    assert_eq!(
        (
            condition(&provisioning, "status"),
            condition(&provisioning, "reason")
        ),
        ("False", "Provisioning")
    );
    let finalizers = t
        .wait_cluster("ws-a", "c1", "finalized", |c| {
            c.pointer("/metadata/finalizers").is_some()
        })
        .await;
    assert_eq!(
        finalizers.pointer("/metadata/finalizers"),
        Some(&json!(["cluster.k3k.io/finalizer"]))
    );
    // k3k reads the bootstrap data from the running server: nothing to read before Ready.
    assert!(
        t.secret("ws-a", "k3k-c1-bootstrap").await.is_none(),
        "bootstrap secret only once the server is up"
    );
    eventually("the token Secret", async || {
        t.secret("ws-a", "k3k-c1-token").await
    })
    .await;
    // The server pod runs, but K3s is not ready yet: no replica is.
    let sts = eventually("the server StatefulSet", async || {
        Api::<StatefulSet>::namespaced(t.client.clone(), "ws-a")
            .get_opt("k3k-c1-server")
            .await
            .expect("get")
    })
    .await;
    assert_eq!(
        sts.status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0),
        0
    );

    let ready = t.wait_phase("ws-a", "c1", "Ready").await;
    assert_eq!(
        (
            condition(&ready, "type"),
            condition(&ready, "status"),
            condition(&ready, "reason")
        ),
        ("Ready", "True", "Provisioned")
    );
    let status = &ready["status"];
    assert_eq!(status["hostVersion"], json!("v1.33.1"));
    assert_eq!(
        (
            status["clusterCIDR"].as_str(),
            status["serviceCIDR"].as_str()
        ),
        (Some("10.42.0.0/16"), Some("10.43.0.0/16"))
    );
    let service = t.service("ws-a", "k3k-c1-service").await.expect("service");
    let service_spec = service.spec.expect("service spec");
    assert_eq!(service_spec.type_.as_deref(), Some("NodePort"));
    let cluster_ip = service_spec.cluster_ip.clone().expect("clusterIP");
    let sans: Vec<&str> = status["tlsSANs"]
        .as_array()
        .expect("tlsSANs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for san in [
        cluster_ip.as_str(),
        "kaas.example.test",
        "k3k-c1-service",
        "k3k-c1-service.ws-a",
    ] {
        assert!(sans.contains(&san), "{san} missing from {sans:?}");
    }
    let port = t.node_port("ws-a", "c1").await;
    assert!((30_000..=32_767).contains(&port));
    let https = service_spec
        .ports
        .unwrap_or_default()
        .into_iter()
        .find(|p| p.port == 443)
        .expect("443");
    assert_eq!(
        https.target_port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(6443))
    );
    let owner = service.metadata.owner_references.unwrap_or_default();
    assert_eq!(
        owner
            .first()
            .map(|o| (o.kind.as_str(), o.name.as_str(), o.controller)),
        Some(("Cluster", "c1", Some(true)))
    );

    // The bootstrap CAs are real: the client CA loads and signs, the kubeconfig is admin.
    let bootstrap = t.bootstrap("ws-a", "c1").await;
    let content = |key: &str| {
        bootstrap[key]["Content"]
            .as_str()
            .expect("content")
            .to_string()
    };
    let client_ca = fakehost::pki::Ca::from_pem(&content("clientCA"), &content("clientCAKey"))
        .expect("clientCA is a CA with its key");
    fakehost::pki::Ca::from_pem(&content("serverCA"), &content("serverCAKey"))
        .expect("serverCA is a CA with its key");
    assert!(bootstrap["serverCA"]["Timestamp"].is_string());
    let kubeconfig: Value = serde_yaml::from_str(&decode(
        &t.secret("ws-a", "k3k-c1-kubeconfig")
            .await
            .expect("kubeconfig secret"),
        "kubeconfig.yaml",
    ))
    .expect("yaml");
    assert_eq!(
        kubeconfig
            .pointer("/clusters/0/cluster/server")
            .and_then(Value::as_str),
        Some(format!("https://{cluster_ip}:443").as_str())
    );
    let cert_pem = String::from_utf8(b64(kubeconfig
        .pointer("/users/0/user/client-certificate-data")
        .and_then(Value::as_str)
        .expect("cert")))
    .expect("pem");
    assert!(fakehost::pki::verify_signed_by(
        &cert_pem,
        client_ca.cert_pem()
    ));
    let der = rustls_pemfile::certs(&mut cert_pem.as_bytes())
        .next()
        .expect("one cert")
        .expect("pem parses");
    let identity = fakehost::pki::client_identity(der.as_ref()).expect("identity");
    assert_eq!(
        (identity.user.as_str(), identity.groups),
        ("system:admin", vec!["system:masters".to_string()])
    );
    // The StatefulSet controller reports the ready pod on its own schedule.
    eventually("a ready replica", async || {
        let sts = stateful_set(&t, "ws-a", "c1").await;
        (sts.status?.ready_replicas == Some(1)).then_some(())
    })
    .await;
    assert!(t.k3k.vcluster("ws-a", "c1").is_some());
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok(),
        "the virtual cluster is served on the nodePort"
    );

    // In sync, the controller writes nothing (no watch churn for kaas' reflectors).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let settled = t.host.engine().resource_version();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(t.host.engine().resource_version(), settled);
}

/// A change of the server pods' template (here the server count, which changes K3K's startup
/// command) rolls the StatefulSet: new pods one at a time, then the old pod-0 replaced. The
/// Cluster stays Ready all along — K3K's Ready is its bootstrap request answering through the
/// Service, and some server always answers (it used to turn Provisioning again here).
#[tokio::test]
async fn spec_change_rolls_the_server_out_again() {
    let t = start(Duration::from_millis(300)).await;
    t.namespace("ws-b", json!({})).await;
    t.cluster("ws-b", "c2", spec()).await;
    t.wait_phase("ws-b", "c2", "Ready").await;
    let before = stateful_set(&t, "ws-b", "c2").await;
    let bootstrap_before = t.bootstrap("ws-b", "c2").await;
    let pods = Api::<Pod>::namespaced(t.client.clone(), "ws-b");
    let first = pods.get("k3k-c2-server-0").await.expect("server pod 0");

    let patch = json!({"spec": {"servers": 3}});
    t.clusters("ws-b")
        .patch("c2", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patched");
    let rolling = eventually("a rollout in progress", async || {
        let sts = stateful_set(&t, "ws-b", "c2").await;
        let status = sts.status.clone()?;
        (status.current_revision != status.update_revision).then_some(sts)
    })
    .await;
    assert!(
        rolling.metadata.generation > before.metadata.generation,
        "the StatefulSet template changed"
    );
    assert_eq!(rolling.spec.as_ref().and_then(|s| s.replicas), Some(3));
    let cluster = t.clusters("ws-b").get("c2").await.expect("cluster");
    assert_eq!(
        cluster.data.pointer("/status/phase"),
        Some(&json!("Ready")),
        "a server answers during the rollout"
    );

    let done = eventually("the rollout to finish", async || {
        let status = stateful_set(&t, "ws-b", "c2").await.status?;
        (status.ready_replicas == Some(3)
            && status.updated_replicas == Some(3)
            && status.current_revision == status.update_revision)
            .then_some(status)
    })
    .await;
    let revision = done.update_revision.clone().expect("revision");
    for i in 0..3 {
        let pod = pods
            .get(&format!("k3k-c2-server-{i}"))
            .await
            .expect("server pod");
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels.get("controller-revision-hash"), Some(&revision));
    }
    let replaced = pods.get("k3k-c2-server-0").await.expect("server pod 0");
    assert_ne!(
        replaced.metadata.uid, first.metadata.uid,
        "pod 0 was rolled"
    );
    t.wait_phase("ws-b", "c2", "Ready").await;
    assert_eq!(
        t.bootstrap("ws-b", "c2").await,
        bootstrap_before,
        "the CAs are kept across rollouts"
    );
}

#[tokio::test]
async fn invalid_clusters_are_pending_with_validation_failed() {
    let t = start(Duration::from_millis(50)).await;
    let policy: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "k3k.io/v1beta1", "kind": "VirtualClusterPolicy",
        "metadata": {"name": "shared-only"}, "spec": {"allowedMode": "shared"},
    }))
    .expect("policy");
    Api::<kube::api::DynamicObject>::all_with(t.client.clone(), &policies_resource())
        .create(&Default::default(), &policy)
        .await
        .expect("policy created");
    t.namespace("ws-c", json!({"policy.k3k.io/policy-name": "shared-only"}))
        .await;
    t.cluster(
        "ws-c",
        "virt",
        json!({"mode": "virtual", "servers": 1, "agents": 1}),
    )
    .await;
    let pending = t.wait_phase("ws-c", "virt", "Pending").await;
    assert_eq!(
        (condition(&pending, "status"), condition(&pending, "reason")),
        ("False", "ValidationFailed")
    );
    assert_eq!(
        condition(&pending, "message"),
        "cluster validation error: mode \"virtual\" is not allowed by the policy \"shared-only\""
    );
    assert_eq!(
        pending.pointer("/status/policyName"),
        Some(&json!("shared-only"))
    );

    t.k3k
        .set_invalid("ws-c", "flagged", Some("injected by the test"));
    t.cluster("ws-c", "flagged", json!({"mode": "shared"}))
        .await;
    let flagged = t.wait_phase("ws-c", "flagged", "Pending").await;
    assert_eq!(
        condition(&flagged, "message"),
        "cluster validation error: injected by the test"
    );
    t.k3k.set_invalid("ws-c", "flagged", None);
    t.wait_phase("ws-c", "flagged", "Ready").await;
}

#[tokio::test]
async fn provisioning_faults_fail_until_cleared() {
    let t = start(Duration::from_millis(50)).await;
    t.namespace("ws-d", json!({})).await;
    t.k3k.fail_next_provisions(1);
    t.cluster("ws-d", "first", spec()).await;
    let failed = t.wait_phase("ws-d", "first", "Failed").await;
    assert_eq!(
        (condition(&failed, "status"), condition(&failed, "reason")),
        ("False", "ProvisioningFailed")
    );
    t.cluster("ws-d", "second", spec()).await;
    t.wait_phase("ws-d", "second", "Ready").await;
    // Failed is not terminal: k3k keeps retrying; it still fails while the fault lasts.
    tokio::time::sleep(Duration::from_millis(300)).await;
    t.wait_phase("ws-d", "first", "Failed").await;
    assert!(t.k3k.vcluster("ws-d", "first").is_none());

    t.k3k.fail_provisioning("ws-d", "third");
    t.cluster("ws-d", "third", spec()).await;
    t.wait_phase("ws-d", "third", "Failed").await;
    t.k3k.clear_provisioning_faults();
    t.wait_phase("ws-d", "first", "Ready").await;
    t.wait_phase("ws-d", "third", "Ready").await;
    assert!(t.k3k.vcluster("ws-d", "first").is_some());
}

#[tokio::test]
async fn deletion_hangs_while_the_controller_is_down() {
    let t = start(Duration::from_millis(50)).await;
    t.namespace("ws-e", json!({})).await;
    t.cluster("ws-e", "doomed", spec()).await;
    t.wait_phase("ws-e", "doomed", "Ready").await;
    let port = t.node_port("ws-e", "doomed").await;

    t.k3k.set_down(true);
    t.clusters("ws-e")
        .delete("doomed", &DeleteParams::default())
        .await
        .expect("delete accepted");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let hanging = t.clusters("ws-e").get("doomed").await.expect("still there");
    assert!(hanging.metadata.deletion_timestamp.is_some());
    assert_eq!(
        hanging.metadata.finalizers,
        Some(vec!["cluster.k3k.io/finalizer".to_string()])
    );
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok(),
        "the server still runs"
    );

    t.k3k.set_down(false);
    let deadline = std::time::Instant::now() + crate::k3k::support::WAIT;
    while t
        .clusters("ws-e")
        .get_opt("doomed")
        .await
        .expect("get")
        .is_some()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "deletion never completed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        t.service("ws-e", "k3k-doomed-service").await.is_none(),
        "owned objects are garbage-collected"
    );
    assert!(t.secret("ws-e", "k3k-doomed-bootstrap").await.is_none());
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err(),
        "the server is gone"
    );
}
