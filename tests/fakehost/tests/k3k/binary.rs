//! The `fakehost` binary as a developer runs it: `--k3k` loads the K3K CRDs and runs the
//! simulated controller, so a Cluster applied with kubectl becomes Ready.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::k3k::support::kubectl_ok;

#[tokio::test]
async fn the_binary_with_k3k_provisions_clusters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("fh.kubeconfig");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_fakehost"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--k3k",
            "--k3k-delay-ms",
            "50",
            "--nodes",
            "3",
        ])
        .arg("--kubeconfig-out")
        .arg(&kubeconfig)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("fakehost starts");
    let stdout = child.stdout.take().expect("stdout");
    let url = tokio::time::timeout(Duration::from_secs(20), async {
        BufReader::new(stdout).lines().next_line().await
    })
    .await
    .expect("prints its URL in time")
    .expect("reads")
    .expect("a line");
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    let nodes = kubectl_ok(&kubeconfig, &["get", "nodes", "-o", "name"]).await;
    assert_eq!(nodes.lines().count(), 3, "{nodes}");
    kubectl_ok(&kubeconfig, &["create", "namespace", "ws-bin"]).await;
    let cluster = dir.path().join("cluster.yaml");
    std::fs::write(
        &cluster,
        "apiVersion: k3k.io/v1beta1\nkind: Cluster\nmetadata: {name: bin, namespace: ws-bin}\nspec: {expose: {nodePort: {}}}\n",
    )
    .expect("manifest");
    kubectl_ok(
        &kubeconfig,
        &["apply", "-f", cluster.to_str().expect("path")],
    )
    .await;
    kubectl_ok(
        &kubeconfig,
        &[
            "wait",
            "--for=jsonpath={.status.phase}=Ready",
            "cluster/bin",
            "-n",
            "ws-bin",
            "--timeout=20s",
        ],
    )
    .await;
    child.kill().await.expect("stopped");
}
