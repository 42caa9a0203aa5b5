//! Tenants with kubectl: each member downloads a kubeconfig from the API and the real
//! `kubectl` proves what their role can and cannot do inside the workspace's virtual
//! cluster; membership changes reach the cluster on the next reconcile.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use kaas::domain::*;
use kaas::store::records;
use serde_json::json;

use crate::support::*;

fn kubectl(kubeconfig: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .expect("kubectl runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text.trim().to_string())
}

fn can_i(kc: &Path, verb: &str, what: &str, ns: &str) -> bool {
    let mut args = vec!["auth", "can-i", verb, what];
    if !ns.is_empty() {
        args.extend(["-n", ns]);
    }
    let (_, out) = kubectl(kc, &args);
    // kubectl may add warnings around its answer.
    if out.lines().any(|l| l.trim() == "yes") {
        true
    } else if out.lines().any(|l| l.trim() == "no") {
        false
    } else {
        panic!("kubectl auth can-i {verb} {what} -n {ns} answered neither yes nor no: {out}")
    }
}

fn deployment(name: &str) -> String {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}
    })
    .to_string()
}

// Multi-threaded: kubectl blocks this thread while the in-process virtual cluster answers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_gets_exactly_its_access_through_kubectl() {
    let h = HostedApp::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut users = std::collections::BTreeMap::new();
    for name in ["ada", "vic", "dev", "out"] {
        users.insert(
            name,
            h.app.user(&format!("{name}@example.com"), false).await,
        );
    }
    let ada = bearer(&users["ada"].1);
    let org = h
        .app
        .call("POST", "/orgs", &ada, Some(json!({"name": "acme"})))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let org_id: OrgId = org.parse().unwrap();
    {
        let now = h.app.ops().now();
        let tx = h.app.ops().store.write().unwrap();
        for n in ["vic", "dev", "out"] {
            records::put_membership(
                &tx,
                &Membership {
                    org_id,
                    user_id: users[n].0,
                    role: OrgRole::Member,
                    joined_at: now,
                },
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
    let ws = h
        .app
        .call(
            "POST",
            &format!("/orgs/{org}/workspaces"),
            &ada,
            Some(json!({"name": "prod", "plan": "starter"})),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let web = h
        .app
        .call("POST", &format!("/workspaces/{ws}/projects"), &ada,
            Some(json!({"name": "web", "quota": {"cpu_millis": 1000, "memory_mib": 1024, "storage_gib": 5, "pods": 10}})))
        .await
        .body["id"].as_str().unwrap().to_string();
    h.app
        .call(
            "POST",
            &format!("/workspaces/{ws}/projects"),
            &ada,
            Some(json!({"name": "api"})),
        )
        .await;
    let r = h
        .app
        .call(
            "PUT",
            &format!("/workspaces/{ws}/members/{}", users["vic"].0),
            &ada,
            Some(json!({"role": "workspace-viewer"})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.body);
    let r = h
        .app
        .call(
            "PUT",
            &format!("/projects/{web}/members/{}", users["dev"].0),
            &ada,
            Some(json!({"role": "developer"})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.body);

    // Not ready yet: a clear 409, not a broken file.
    let early = h
        .app
        .call(
            "POST",
            &format!("/workspaces/{ws}/kubeconfig"),
            &ada,
            Some(json!({})),
        )
        .await;
    assert!(
        early.status.as_u16() == 409 || early.status.as_u16() == 200,
        "{:?}",
        early.body
    );
    h.wait_ws(&ada, &ws, "Ready", |w| {
        w.is_some_and(|w| w["state"] == "Ready")
    })
    .await;
    h.settle().await;

    let mut kc = std::collections::BTreeMap::new();
    for n in ["ada", "vic", "dev"] {
        let r = h
            .app
            .call(
                "POST",
                &format!("/workspaces/{ws}/kubeconfig"),
                &bearer(&users[n].1),
                Some(json!({"lifetime_hours": 2})),
            )
            .await;
        assert_eq!(r.status.as_u16(), 200, "{n}: {:?}", r.body);
        assert!(
            r.body["server"]
                .as_str()
                .unwrap()
                .starts_with("https://127.0.0.1:")
        );
        let path = dir.path().join(format!("{n}.kubeconfig"));
        std::fs::write(&path, r.body["kubeconfig"].as_str().unwrap()).unwrap();
        kc.insert(n, path);
    }
    // Someone without a role in the workspace cannot even see it.
    let r = h
        .app
        .call(
            "POST",
            &format!("/workspaces/{ws}/kubeconfig"),
            &bearer(&users["out"].1),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 404);
    let r = h
        .app
        .call(
            "POST",
            &format!("/workspaces/{ws}/kubeconfig"),
            &ada,
            Some(json!({"lifetime_hours": 9999})),
        )
        .await;
    assert_eq!(r.body["error"]["field"], "lifetime_hours");

    // The organization owner administers project namespaces, never the cluster itself.
    let a = &kc["ada"];
    assert!(can_i(a, "create", "deployments", "web"));
    assert!(can_i(a, "get", "secrets", "api"));
    assert!(!can_i(a, "create", "clusterroles", ""));
    assert!(!can_i(a, "create", "clusterrolebindings", ""));
    assert!(!can_i(a, "create", "namespaces", ""));
    assert!(!can_i(
        a,
        "create",
        "customresourcedefinitions.apiextensions.k8s.io",
        ""
    ));
    let (ok, out) = kubectl(
        a,
        &[
            "get",
            "resourcequota",
            "-n",
            "web",
            "-o",
            "jsonpath={.items[*].spec.hard.pods}",
        ],
    );
    assert!(
        ok && out == "10",
        "the project quota is inside the cluster: {out}"
    );
    // The workspace viewer reads but does not write, and never sees secrets.
    let v = &kc["vic"];
    assert!(can_i(v, "list", "pods", "web"));
    assert!(!can_i(v, "create", "deployments", "web"));
    assert!(!can_i(v, "get", "secrets", "web"));
    // The project developer deploys in their project and nowhere else.
    let d = &kc["dev"];
    assert!(can_i(d, "create", "deployments", "web"));
    assert!(!can_i(d, "create", "deployments", "api"));
    let manifest = dir.path().join("deploy.json");
    std::fs::write(&manifest, deployment("shop")).unwrap();
    let (ok, out) = kubectl(d, &["apply", "-n", "web", "-f", manifest.to_str().unwrap()]);
    assert!(ok, "developer deploys in web: {out}");
    let (ok, out) = kubectl(d, &["apply", "-n", "api", "-f", manifest.to_str().unwrap()]);
    assert!(
        !ok && out.contains("forbidden"),
        "developer cannot deploy in api: {out}"
    );

    // Removing the developer from the project reaches the cluster (their certificate names
    // them, and the binding no longer does).
    let r = h
        .app
        .call(
            "DELETE",
            &format!("/projects/{web}/members/{}", users["dev"].0),
            &ada,
            None,
        )
        .await;
    assert_eq!(r.status.as_u16(), 204);
    let deadline = Instant::now() + Duration::from_secs(15);
    while can_i(d, "create", "deployments", "web") {
        assert!(
            Instant::now() < deadline,
            "the removed developer kept access"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Drift inside the virtual cluster: a binding kaas owns deleted by the workspace admin
    // comes back on the next pass.
    let (ok, out) = kubectl(a, &["delete", "rolebinding", "kaas-viewer", "-n", "api"]);
    assert!(ok, "{out}");
    h.reconciler.resync();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !kubectl(a, &["get", "rolebinding", "kaas-viewer", "-n", "api"]).0 {
        assert!(
            Instant::now() < deadline,
            "the deleted binding was not restored"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Issuance is audited with serial and expiry.
    let r = h
        .app
        .call(
            "GET",
            &format!("/audit?org={org}&action=kubeconfig.issue"),
            &ada,
            None,
        )
        .await;
    let items = r.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{:?}", r.body);
    assert!(
        items[0]["detail"].as_str().unwrap().contains("serial="),
        "{}",
        items[0]
    );
}
