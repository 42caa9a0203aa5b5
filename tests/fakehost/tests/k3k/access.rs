//! Tenant access to a virtual cluster as kaas sets it up: a client certificate minted from
//! the bootstrap clientCA, `https://127.0.0.1:<nodePort>`, the serverCA as trust root, and
//! RBAC inside the virtual cluster — exercised with the real kubectl and with kube-rs.

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

use crate::k3k::support::{client_for, kubectl, kubectl_ok, start};

const SETUP: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: dev}
---
apiVersion: v1
kind: Namespace
metadata: {name: qa}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: team-edit, namespace: dev}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: edit}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: team}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: qa-view, namespace: qa}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: qa-readers}]
---
apiVersion: v1
kind: Secret
metadata: {name: db, namespace: qa}
stringData: {password: hunter2}
"#;

const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: "nginx:1.27"}]}
"#;

#[tokio::test]
async fn tenant_rbac_is_enforced_by_the_virtual_cluster() {
    let t = start(Duration::from_millis(50)).await;
    t.namespace("ws-x", json!({})).await;
    t.cluster(
        "ws-x",
        "tenant",
        json!({"mode": "shared", "servers": 1, "expose": {"nodePort": {}}}),
    )
    .await;
    t.wait_phase("ws-x", "tenant", "Ready").await;
    let admin = t
        .tenant_kubeconfig("ws-x", "tenant", "kaas-admin", &["system:masters"])
        .await;
    let alice = t
        .tenant_kubeconfig("ws-x", "tenant", "alice", &["team", "qa-readers"])
        .await;

    // A fresh virtual cluster: alice has no rights yet.
    let can_i = kubectl(
        &alice,
        &["auth", "can-i", "create", "deployments", "-n", "default"],
    )
    .await;
    assert_eq!(
        String::from_utf8_lossy(&can_i.stdout).trim(),
        "no",
        "{}",
        String::from_utf8_lossy(&can_i.stderr)
    );
    assert!(!can_i.status.success());

    // Manifests go as JSON (`kubectl apply`); see below for the protobuf `create` commands.
    let setup = t.dir.path().join("setup.yaml");
    std::fs::write(&setup, SETUP).expect("manifest written");
    kubectl_ok(&admin, &["apply", "-f", setup.to_str().expect("path")]).await;

    assert_eq!(
        kubectl_ok(
            &alice,
            &["auth", "can-i", "create", "deployments", "-n", "dev"]
        )
        .await
        .trim(),
        "yes"
    );
    let web = t.dir.path().join("web.yaml");
    std::fs::write(&web, WEB).expect("manifest written");
    kubectl_ok(
        &alice,
        &["apply", "-n", "dev", "-f", web.to_str().expect("path")],
    )
    .await;
    kubectl_ok(
        &alice,
        &[
            "rollout",
            "status",
            "deployment/web",
            "-n",
            "dev",
            "--timeout=10s",
        ],
    )
    .await;
    let pods = kubectl_ok(
        &alice,
        &[
            "get",
            "pods",
            "-n",
            "dev",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].status.phase}",
        ],
    )
    .await;
    assert_eq!(pods.trim(), "Running Running");

    let denied = kubectl(
        &alice,
        &["apply", "-n", "default", "-f", web.to_str().expect("path")],
    )
    .await;
    assert!(!denied.status.success());
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert!(
        stderr.contains("deployments.apps \"web\" is forbidden: User \"alice\" cannot get resource \"deployments\" in API group \"apps\" in the namespace \"default\""),
        "{stderr}"
    );
    // view does not include secrets.
    kubectl_ok(&alice, &["get", "configmaps", "-n", "qa"]).await;
    let secrets = kubectl(&alice, &["get", "secret", "db", "-n", "qa"]).await;
    assert!(String::from_utf8_lossy(&secrets.stderr).contains("secrets \"db\" is forbidden: User \"alice\" cannot get resource \"secrets\" in API group \"\" in the namespace \"qa\""));
    let rules = kubectl_ok(&alice, &["auth", "can-i", "--list", "-n", "dev"]).await;
    assert!(rules.contains("deployments.apps"), "{rules}");

    // kube-rs sees the same decisions.
    let alice_client = client_for(&std::fs::read_to_string(&alice).expect("kubeconfig")).await;
    let config_map: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "settings"}, "data": {"a": "b"}}))
            .expect("cm");
    Api::<ConfigMap>::namespaced(alice_client.clone(), "dev")
        .create(&PostParams::default(), &config_map)
        .await
        .expect("allowed in dev");
    let error = Api::<ConfigMap>::namespaced(alice_client, "default")
        .create(&PostParams::default(), &config_map)
        .await
        .expect_err("denied in default");
    let kube::Error::Api(status) = error else {
        panic!("expected an API error")
    };
    assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
}

#[tokio::test]
async fn the_virtual_cluster_only_trusts_its_own_client_ca() {
    let t = start(Duration::from_millis(20)).await;
    t.namespace("ws-y", json!({})).await;
    t.cluster("ws-y", "one", json!({"expose": {"nodePort": {}}}))
        .await;
    t.cluster("ws-y", "two", json!({"expose": {"nodePort": {}}}))
        .await;
    t.wait_phase("ws-y", "one", "Ready").await;
    t.wait_phase("ws-y", "two", "Ready").await;
    let admin_one = t
        .tenant_kubeconfig("ws-y", "one", "root", &["system:masters"])
        .await;
    let namespaces = kubectl_ok(&admin_one, &["get", "namespaces", "-o", "name"]).await;
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(
            namespaces.contains(&format!("namespace/{ns}")),
            "{namespaces}"
        );
    }
    assert!(
        !namespaces.contains("ws-y"),
        "a virtual cluster has its own store, not the host's"
    );

    // A certificate from cluster two's client CA, presented to cluster one: 401.
    let port_one = t.node_port("ws-y", "one").await;
    let foreign = t
        .tenant_kubeconfig("ws-y", "two", "root", &["system:masters"])
        .await;
    let yaml = std::fs::read_to_string(&foreign).expect("kubeconfig");
    let port_two = t.node_port("ws-y", "two").await;
    let bootstrap_one = t.bootstrap("ws-y", "one").await;
    let ca_one = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        bootstrap_one["serverCA"]["Content"].as_str().expect("ca"),
    );
    let mut config: serde_json::Value = serde_yaml::from_str(&yaml).expect("yaml");
    config["clusters"][0]["cluster"]["server"] = json!(format!("https://127.0.0.1:{port_one}"));
    config["clusters"][0]["cluster"]["certificate-authority-data"] = json!(ca_one);
    let path = foreign.with_file_name("foreign.kubeconfig");
    std::fs::write(&path, serde_yaml::to_string(&config).expect("yaml")).expect("written");
    let output = kubectl(&path, &["get", "namespaces"]).await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("You must be logged in to the server") || stderr.contains("Unauthorized"),
        "{stderr}"
    );
    assert_ne!(port_one, port_two);
}

/// kubectl's imperative commands send protobuf; a virtual cluster decodes them through the
/// same HTTP layer as the host, and its RBAC decides them for a minted tenant certificate.
#[tokio::test]
async fn imperative_kubectl_works_in_a_virtual_cluster_under_rbac() {
    let t = start(Duration::from_millis(20)).await;
    t.namespace("ws-z", json!({})).await;
    t.cluster("ws-z", "pb", json!({"expose": {"nodePort": {}}}))
        .await;
    t.wait_phase("ws-z", "pb", "Ready").await;
    let admin = t
        .tenant_kubeconfig("ws-z", "pb", "kaas-admin", &["system:masters"])
        .await;
    let bob = t
        .tenant_kubeconfig("ws-z", "pb", "bob", &["devs", "auditors"])
        .await;
    kubectl_ok(&admin, &["create", "namespace", "dev"]).await;
    kubectl_ok(
        &admin,
        &[
            "create",
            "rolebinding",
            "devs-edit",
            "--clusterrole=edit",
            "--group=devs",
            "-n",
            "dev",
        ],
    )
    .await;
    kubectl_ok(
        &admin,
        &[
            "create",
            "clusterrolebinding",
            "auditors-view",
            "--clusterrole=view",
            "--group=auditors",
        ],
    )
    .await;

    kubectl_ok(
        &bob,
        &[
            "create",
            "configmap",
            "app",
            "--from-literal=mode=fast",
            "-n",
            "dev",
        ],
    )
    .await;
    kubectl_ok(
        &bob,
        &[
            "create",
            "deployment",
            "api",
            "--image=nginx:1.27",
            "-n",
            "dev",
        ],
    )
    .await;
    kubectl_ok(
        &bob,
        &[
            "create",
            "secret",
            "generic",
            "token",
            "--from-literal=t=x",
            "-n",
            "dev",
        ],
    )
    .await;
    assert_eq!(
        kubectl_ok(
            &bob,
            &[
                "get",
                "configmap",
                "app",
                "-n",
                "dev",
                "-o",
                "jsonpath={.data.mode}"
            ]
        )
        .await,
        "fast"
    );
    // view through the second group: read anywhere, write nowhere else.
    kubectl_ok(&bob, &["get", "configmaps", "-n", "default"]).await;
    let denied = kubectl(&bob, &["create", "configmap", "app", "-n", "default"]).await;
    assert!(!denied.status.success());
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains(
            "configmaps is forbidden: User \"bob\" cannot create resource \"configmaps\" in API group \"\" in the namespace \"default\""
        ),
        "{}",
        String::from_utf8_lossy(&denied.stderr)
    );
    let denied = kubectl(&bob, &["create", "namespace", "mine"]).await;
    assert!(!denied.status.success());
    let denied = kubectl(
        &bob,
        &[
            "create",
            "rolebinding",
            "escalate",
            "--clusterrole=admin",
            "--user=bob",
            "-n",
            "dev",
        ],
    )
    .await;
    assert!(!denied.status.success(), "edit cannot bind roles");
    let can_i = kubectl(&bob, &["auth", "can-i", "create", "namespaces"]).await;
    assert_eq!(String::from_utf8_lossy(&can_i.stdout).trim(), "no");
    assert_eq!(
        kubectl_ok(
            &bob,
            &["auth", "can-i", "create", "deployments", "-n", "dev"]
        )
        .await
        .trim(),
        "yes"
    );
}

/// RBAC's escalation check holds inside a virtual cluster as on the host: a namespace admin
/// binds `view` but not `cluster-admin`; `system:masters` (kaas's identity) binds anything.
#[tokio::test]
async fn a_namespace_admin_cannot_bind_cluster_admin_in_the_virtual_cluster() {
    let t = start(Duration::from_millis(20)).await;
    t.namespace("ws-z", json!({})).await;
    t.cluster("ws-z", "esc", json!({"expose": {"nodePort": {}}}))
        .await;
    t.wait_phase("ws-z", "esc", "Ready").await;
    let admin = t
        .tenant_kubeconfig("ws-z", "esc", "kaas-admin", &["system:masters"])
        .await;
    let ann = t.tenant_kubeconfig("ws-z", "esc", "ann", &["devs"]).await;
    kubectl_ok(&admin, &["create", "namespace", "dev"]).await;
    kubectl_ok(
        &admin,
        &[
            "create",
            "rolebinding",
            "ann-admin",
            "-n",
            "dev",
            "--clusterrole=admin",
            "--user=ann",
        ],
    )
    .await;
    kubectl_ok(
        &ann,
        &[
            "create",
            "rolebinding",
            "readers",
            "-n",
            "dev",
            "--clusterrole=view",
            "--group=readers",
        ],
    )
    .await;
    let denied = kubectl(
        &ann,
        &[
            "create",
            "rolebinding",
            "root",
            "-n",
            "dev",
            "--clusterrole=cluster-admin",
            "--user=ann",
        ],
    )
    .await;
    assert!(!denied.status.success());
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert!(
        stderr.contains(
            "rolebindings.rbac.authorization.k8s.io \"root\" is forbidden: user \"ann\" (groups=[\"devs\" \"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:"
        ) && stderr.contains("{APIGroups:[\"*\"], Resources:[\"*\"], Verbs:[\"*\"]}"),
        "{stderr}"
    );
    kubectl_ok(
        &admin,
        &[
            "create",
            "clusterrolebinding",
            "ann-root",
            "--clusterrole=cluster-admin",
            "--user=ann",
        ],
    )
    .await;
}
