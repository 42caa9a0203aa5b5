//! `host::credentials` against a K3K virtual cluster, on fakehost (simulated K3K and virtual
//! API server) and on realhost (the real K3K and a real kube-apiserver): kaas reads the
//! `k3k-<n>-bootstrap` Secret, mints certificates and kubeconfigs with its own functions,
//! and the real kubectl uses them. The virtual cluster's API server authenticates the
//! certificates (CN → user, each O → group) and authorizes with RBAC, as K3s does.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jiff::Timestamp;
use kaas::host::credentials::{
    Bootstrap, admin_identity, kubeconfig_yaml, mint_client_certificate, parse_bootstrap,
};
use kaas::host::names;
use serde_json::{Value, json};

use crate::realhost::{RealHostedApp, unique};
use crate::support::{HostedApp, TestHost, kubectl_output};

const CLUSTER: &str = "ws-x";

const TEAM_VIEW: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: team-view, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: team}]
"#;

fn describe(output: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

async fn can_i(kubeconfig: &Path, verb: &str, resource: &str, namespace: &str) -> String {
    let output = kubectl_output(
        kubeconfig,
        &["auth", "can-i", verb, resource, "-n", namespace],
    )
    .await;
    // `can-i` exits 1 for "no"; anything on stderr beyond that is a failure to ask.
    assert!(
        output.status.code().is_some_and(|c| c <= 1),
        "{}",
        describe(&output)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Mints a certificate with kaas's functions and writes the kubeconfig kaas would hand out.
fn write_kubeconfig(
    dir: &Path,
    bootstrap: &Bootstrap,
    server: &str,
    user: &str,
    groups: &[String],
) -> PathBuf {
    let cert = mint_client_certificate(
        bootstrap,
        user,
        groups,
        Timestamp::now(),
        Duration::from_secs(600),
    )
    .expect("certificate minted");
    let yaml = kubeconfig_yaml(CLUSTER, server, &bootstrap.server_ca_pem, user, &cert)
        .expect("kubeconfig");
    let path = dir.join(format!("{}.kubeconfig", user.replace(['@', ':'], "-")));
    std::fs::write(&path, yaml).expect("kubeconfig written");
    path
}

/// A bootstrap whose client CA the virtual cluster has never seen (same server CA).
fn foreign_bootstrap(server_ca_pem: &str) -> Bootstrap {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "k3s-client-ca");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyCertSign,
    ];
    let ca = params.self_signed(&key).expect("foreign CA");
    let entry = |pem: &str| json!({"Timestamp": "", "Content": pem});
    let json = json!({
        "serverCA": entry(server_ca_pem),
        "clientCA": entry(&ca.pem()),
        "clientCAKey": entry(&key.serialize_pem()),
    });
    parse_bootstrap(json.to_string().as_bytes()).expect("foreign bootstrap parses")
}

/// A K3K Cluster made directly on the host (no kaas workspace): kaas's credential functions
/// work with what K3K publishes for it.
async fn minted_credentials_journey<H: TestHost>(h: &H) {
    let suffix = unique();
    let namespace = format!("kaas-ws-cred-{suffix}");
    let cluster = format!("ws-cred-{suffix}");
    h.create(
        "",
        "namespaces",
        None,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
    )
    .await
    .expect("namespace created");
    h.create(
        "k3k.io",
        "clusters",
        Some(&namespace),
        json!({"apiVersion": "k3k.io/v1beta1", "kind": "Cluster",
               "metadata": {"name": cluster},
               "spec": {"mode": "shared", "servers": 1, "expose": {"nodePort": {}}}}),
    )
    .await
    .expect("cluster created");
    h.until("K3K to report the cluster Ready", async || {
        h.get("k3k.io", "clusters", Some(&namespace), &cluster)
            .await
            .is_some_and(|c| c["status"]["phase"] == "Ready")
    })
    .await;

    // Everything below comes from what kaas can read on the host: the Service's nodePort
    // and the bootstrap Secret.
    let service = h
        .get(
            "",
            "services",
            Some(&namespace),
            &names::k3k_service(&cluster),
        )
        .await
        .expect("service");
    let node_port = service["spec"]["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .find(|p| p["port"] == 443)
        .and_then(|p| p["nodePort"].as_u64())
        .expect("nodePort of 443");
    let mut secret = None;
    h.until("the bootstrap secret", async || {
        secret = h
            .get(
                "",
                "secrets",
                Some(&namespace),
                &names::k3k_bootstrap_secret(&cluster),
            )
            .await;
        secret.is_some()
    })
    .await;
    let secret = secret.expect("bootstrap secret");
    let data = secret["data"][names::K3K_BOOTSTRAP_KEY]
        .as_str()
        .expect("bootstrap data");
    let bootstrap =
        parse_bootstrap(&STANDARD.decode(data).expect("base64")).expect("bootstrap parses");

    let server = format!("https://127.0.0.1:{node_port}");
    let dir = tempfile::tempdir().expect("tempdir");
    let (admin_user, admin_groups) = admin_identity();
    let admin = write_kubeconfig(dir.path(), &bootstrap, &server, admin_user, &admin_groups);
    let alice_groups = vec!["kaas:ws:x:workspace-viewer".to_string(), "team".to_string()];
    let alice = write_kubeconfig(
        dir.path(),
        &bootstrap,
        &server,
        "alice@example.com",
        &alice_groups,
    );

    let namespaces = kubectl_output(&admin, &["get", "namespaces", "-o", "name"]).await;
    assert!(namespaces.status.success(), "{}", describe(&namespaces));
    let listed = String::from_utf8_lossy(&namespaces.stdout);
    assert!(listed.contains("namespace/default"), "{listed}");
    assert!(listed.contains("namespace/kube-system"), "{listed}");

    // Before any binding, alice's groups grant nothing in `default`.
    assert_eq!(can_i(&alice, "list", "pods", "default").await, "no");

    let manifest = dir.path().join("team-view.yaml");
    std::fs::write(&manifest, TEAM_VIEW).expect("manifest written");
    let applied = kubectl_output(
        &admin,
        &["apply", "-f", manifest.to_str().expect("utf-8 path")],
    )
    .await;
    assert!(applied.status.success(), "{}", describe(&applied));

    // The binding names only the group `team`, so these answers prove the O made it through.
    // A real apiserver's RBAC authorizer learns of the binding from its informer, a moment
    // after the write is acknowledged: wait for it rather than race it.
    h.until("the binding to take effect for alice", async || {
        can_i(&alice, "list", "pods", "default").await == "yes"
    })
    .await;
    assert_eq!(can_i(&alice, "create", "pods", "default").await, "no");
    assert_eq!(can_i(&alice, "list", "pods", "kube-system").await, "no");
    let pods = kubectl_output(&alice, &["get", "pods", "-n", "default"]).await;
    assert!(pods.status.success(), "{}", describe(&pods));
    // SelfSubjectReview: the exact identity the server derived from the certificate.
    let whoami = kubectl_output(&alice, &["auth", "whoami", "-o", "json"]).await;
    assert!(whoami.status.success(), "{}", describe(&whoami));
    let review: Value = serde_json::from_slice(&whoami.stdout).expect("json");
    assert_eq!(
        review["status"]["userInfo"]["username"],
        "alice@example.com"
    );
    let groups = review["status"]["userInfo"]["groups"]
        .as_array()
        .expect("groups");
    for group in &alice_groups {
        assert!(groups.iter().any(|g| g == group), "{review}");
    }

    // A certificate from another CA: the server refuses to authenticate it.
    let foreign = foreign_bootstrap(&bootstrap.server_ca_pem);
    let intruder_dir = dir.path().join("foreign");
    std::fs::create_dir(&intruder_dir).expect("dir");
    let intruder = write_kubeconfig(&intruder_dir, &foreign, &server, admin_user, &admin_groups);
    let refused = kubectl_output(&intruder, &["get", "namespaces"]).await;
    assert!(!refused.status.success(), "{}", describe(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    // kubectl's wording for any 401 (the reason after it depends on the server's Status).
    assert!(
        stderr.contains("You must be logged in to the server") || stderr.contains("Unauthorized"),
        "{}",
        describe(&refused)
    );

    // The Cluster goes (K3K's finalizer), then its namespace.
    h.delete("k3k.io", "clusters", Some(&namespace), &cluster)
        .await;
    h.until("the cluster deleted", async || {
        h.get("k3k.io", "clusters", Some(&namespace), &cluster)
            .await
            .is_none()
    })
    .await;
    h.delete("", "namespaces", None, &namespace).await;
}

// Multi-threaded: fakehost's virtual cluster answers kubectl in-process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minted_credentials_authenticate_and_carry_groups_into_a_virtual_cluster_on_fakehost() {
    minted_credentials_journey(&HostedApp::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minted_credentials_authenticate_and_carry_groups_into_a_virtual_cluster_on_realhost() {
    minted_credentials_journey(&RealHostedApp::start().await).await;
}
