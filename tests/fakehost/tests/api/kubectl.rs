//! The real kubectl as referee: get, apply (client- and server-side), patch (merge, json,
//! strategic), delete, wait, watch, conflicts, dry run and custom resources.

use std::process::Stdio;
use std::time::Duration;

use fakehost::{ResourceRef, WriteOptions};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::api::support::{start, start_with_k3k};

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
  labels: {app: web, stage: one}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        env: [{name: A, value: "1"}, {name: B, value: "1"}]
"#;

#[tokio::test]
async fn client_side_apply_get_patch_delete() {
    let t = start().await;
    let path = t.manifest("deploy.yaml", DEPLOYMENT);
    assert!(
        t.kubectl_ok(&["apply", "-f", &path])
            .await
            .contains("created")
    );
    // Second apply drops env B and label `stage`, changes the image: a three-way strategic merge.
    let second = DEPLOYMENT
        .replace(", {name: B, value: \"1\"}", "")
        .replace(", stage: one", "")
        .replace("nginx:1.27", "nginx:1.28");
    let path = t.manifest("deploy2.yaml", &second);
    assert!(
        t.kubectl_ok(&["apply", "-f", &path])
            .await
            .contains("configured")
    );
    let object: Value = serde_json::from_str(
        &t.kubectl_ok(&["get", "deployment", "web", "-o", "json"])
            .await,
    )
    .expect("json");
    let container = &object["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "nginx:1.28");
    assert_eq!(container["env"], json!([{"name": "A", "value": "1"}]));
    assert!(object["metadata"]["labels"].get("stage").is_none());
    assert_eq!(object["metadata"]["generation"], 2);

    t.kubectl_ok(&[
        "patch",
        "deployment",
        "web",
        "--type=merge",
        "-p",
        r#"{"metadata":{"labels":{"merged":"yes"}}}"#,
    ])
    .await;
    t.kubectl_ok(&[
        "patch",
        "deployment",
        "web",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/replicas","value":3}]"#,
    ])
    .await;
    t.kubectl_ok(&[
        "patch",
        "deployment",
        "web",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"side","image":"busybox:1"}]}}}}"#,
    ])
    .await;
    let names = t.kubectl_ok(&["get", "deployment", "web", "-o", "jsonpath={.metadata.labels.merged} {.spec.replicas} {.spec.template.spec.containers[*].name}"]).await;
    assert_eq!(names, "yes 3 web side");

    let listed = t.kubectl_ok(&["get", "deployments"]).await;
    assert!(
        listed.starts_with("NAME") && listed.contains("web"),
        "{listed}"
    );

    let failed = t
        .kubectl(&[
            "patch",
            "deployment",
            "web",
            "--type=json",
            "-p",
            r#"[{"op":"test","path":"/spec/replicas","value":9}]"#,
        ])
        .await;
    assert!(
        !failed.status.success(),
        "a failing JSON patch test must fail"
    );

    t.kubectl_ok(&["delete", "deployment", "web"]).await;
    let gone = t.kubectl(&["get", "deployment", "web"]).await;
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("NotFound"),
        "{}",
        String::from_utf8_lossy(&gone.stderr)
    );
}

#[tokio::test]
async fn server_side_apply_conflicts_and_dry_run() {
    let t = start().await;
    let cm = |value: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared\n  namespace: default\ndata:\n  key: \"{value}\"\n"
        )
    };
    let first = t.manifest("a.yaml", &cm("one"));
    t.kubectl_ok(&[
        "apply",
        "--server-side",
        "--field-manager=first",
        "-f",
        &first,
    ])
    .await;
    let second = t.manifest("b.yaml", &cm("two"));
    let conflict = t
        .kubectl(&[
            "apply",
            "--server-side",
            "--field-manager=second",
            "-f",
            &second,
        ])
        .await;
    assert!(!conflict.status.success());
    let stderr = String::from_utf8_lossy(&conflict.stderr);
    assert!(
        stderr.contains("conflict") && stderr.contains("first"),
        "{stderr}"
    );
    t.kubectl_ok(&[
        "apply",
        "--server-side",
        "--field-manager=second",
        "--force-conflicts",
        "-f",
        &second,
    ])
    .await;
    assert_eq!(
        t.kubectl_ok(&["get", "cm", "shared", "-o", "jsonpath={.data.key}"])
            .await,
        "two"
    );

    let dry = t.manifest(
        "dry.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dry\n  namespace: default\n",
    );
    t.kubectl_ok(&["apply", "--dry-run=server", "-f", &dry])
        .await;
    assert!(
        !t.kubectl(&["get", "cm", "dry"]).await.status.success(),
        "server dry run stores nothing"
    );

    let invalid = t.manifest(
        "invalid.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Not_Valid\n  namespace: default\n",
    );
    let output = t.kubectl(&["apply", "-f", &invalid]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("is invalid"), "{stderr}");
}

#[tokio::test]
async fn wait_for_delete_and_jsonpath_on_custom_resources() {
    let t = start_with_k3k().await;
    let cluster = t.manifest(
        "cluster.yaml",
        "apiVersion: k3k.io/v1beta1\nkind: Cluster\nmetadata:\n  name: c1\n  namespace: default\n  finalizers: [cluster.k3k.io/finalizer]\nspec:\n  mode: shared\n  servers: 1\n  version: v1.33.1-k3s1\n",
    );
    t.kubectl_ok(&["apply", "-f", &cluster]).await;
    let printed = t.kubectl_ok(&["get", "clusters", "-n", "default"]).await;
    assert!(
        printed.contains("MODE") && printed.contains("shared"),
        "printer columns: {printed}"
    );

    // A simulated controller marks it Ready a little later, in-process.
    let engine = t.host.engine().clone();
    let controller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let clusters = ResourceRef::new("k3k.io", "clusters");
        let mut object = engine
            .get(&clusters, Some("default"), "c1")
            .expect("cluster");
        object["status"] = json!({"phase": "Ready"});
        engine
            .update_status(&clusters, Some("default"), object, &WriteOptions::default())
            .expect("status");
    });
    t.kubectl_ok(&[
        "wait",
        "--for=jsonpath={.status.phase}=Ready",
        "cluster/c1",
        "-n",
        "default",
        "--timeout=10s",
    ])
    .await;
    controller.await.expect("controller");

    t.kubectl_ok(&["delete", "cluster", "c1", "-n", "default", "--wait=false"])
        .await;
    let held = t
        .kubectl_ok(&[
            "get",
            "cluster",
            "c1",
            "-n",
            "default",
            "-o",
            "jsonpath={.metadata.deletionTimestamp}",
        ])
        .await;
    assert!(!held.is_empty(), "finalizer holds the cluster");
    let engine = t.host.engine().clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let clusters = ResourceRef::new("k3k.io", "clusters");
        let patch = fakehost::PatchRequest {
            patch_type: fakehost::PatchType::Merge,
            body: br#"{"metadata":{"finalizers":null}}"#,
            status_subresource: false,
        };
        engine
            .patch(
                &clusters,
                Some("default"),
                "c1",
                &patch,
                &WriteOptions::default(),
            )
            .expect("release finalizer");
    });
    t.kubectl_ok(&[
        "wait",
        "--for=delete",
        "cluster/c1",
        "-n",
        "default",
        "--timeout=10s",
    ])
    .await;
}

#[tokio::test]
async fn get_watch_streams_changes() {
    let t = start().await;
    let kubeconfig = t.dir.path().join("kubeconfig");
    let watches_before = t.host.faults().counts().watch;
    let mut child = tokio::process::Command::new("/usr/bin/kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--cache-dir")
        .arg(t.dir.path().join("watch-cache"))
        .args([
            "get",
            "configmaps",
            "-n",
            "default",
            "--watch",
            "--output-watch-events",
        ])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("kubectl get -w");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    // The change comes once kubectl watches (it watches from the resourceVersion of its
    // list, so nothing between the two is missed).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while t.host.faults().counts().watch == watches_before {
        assert!(
            std::time::Instant::now() < deadline,
            "kubectl never started watching"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let watched = t.manifest(
        "watched.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: watched\n  namespace: default\n",
    );
    t.kubectl_ok(&["apply", "-f", &watched]).await;
    t.kubectl_ok(&["delete", "configmap", "watched"]).await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("line in time")
            .expect("read")
            .expect("open");
        if line.contains("watched") {
            seen.push(line);
        }
    }
    assert!(
        seen[0].starts_with("ADDED") && seen[1].starts_with("DELETED"),
        "{seen:?}"
    );
    child.kill().await.expect("stop kubectl");
}
