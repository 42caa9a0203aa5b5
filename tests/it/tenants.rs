//! Tenants with kubectl: each member downloads a kubeconfig from the API and the real
//! `kubectl` proves what their role can and cannot do inside the workspace's virtual
//! cluster; membership changes reach the cluster on the next reconcile.

use std::path::Path;

use kaas::domain::*;
use kaas::store::records;
use serde_json::json;

use crate::realhost::RealHostedApp;
use crate::support::*;

async fn can_i(kc: &Path, verb: &str, what: &str, ns: &str) -> bool {
    let mut args = vec!["auth", "can-i", verb, what];
    if !ns.is_empty() {
        args.extend(["-n", ns]);
    }
    let (_, out) = kubectl(kc, &args).await;
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

/// Owner, workspace viewer and project developer each get exactly their role's access in
/// the workspace's virtual cluster, proven by the real kubectl; membership changes and drift
/// inside the cluster are reconciled.
async fn each_role_journey<H: TestHost>(h: &H) {
    let dir = tempfile::tempdir().unwrap();
    let mut users = std::collections::BTreeMap::new();
    for name in ["ada", "vic", "dev", "out"] {
        users.insert(
            name,
            h.app().user(&format!("{name}@example.com"), false).await,
        );
    }
    let ada = bearer(&users["ada"].1);
    let org = h
        .app()
        .call("POST", "/orgs", &ada, Some(json!({"name": "acme"})))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let org_id: OrgId = org.parse().unwrap();
    {
        let now = h.app().ops().now();
        let tx = h.app().ops().store.write().unwrap();
        for n in ["vic", "dev", "out"] {
            records::put_member(
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
    // K3K waits until the early kubeconfig request below has been refused.
    h.hold_k3k(true).await;
    let ws = h
        .app()
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
        .app()
        .call("POST", &format!("/workspaces/{ws}/projects"), &ada,
            Some(json!({"name": "web", "quota": {"cpu_millis": 1000, "memory_mib": 1024, "storage_gib": 5, "pods": 10}})))
        .await
        .body["id"].as_str().unwrap().to_string();
    h.app()
        .call(
            "POST",
            &format!("/workspaces/{ws}/projects"),
            &ada,
            Some(json!({"name": "api"})),
        )
        .await;
    let r = h
        .app()
        .call(
            "PUT",
            &format!("/workspaces/{ws}/members/{}", users["vic"].0),
            &ada,
            Some(json!({"role": "workspace-viewer"})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.body);
    let r = h
        .app()
        .call(
            "PUT",
            &format!("/projects/{web}/members/{}", users["dev"].0),
            &ada,
            Some(json!({"role": "developer"})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.body);

    // Not ready yet (K3K held back): a clear 409, not a broken file.
    let early = h
        .app()
        .call(
            "POST",
            &format!("/workspaces/{ws}/kubeconfig"),
            &ada,
            Some(json!({})),
        )
        .await;
    assert_eq!(early.status.as_u16(), 409, "{:?}", early.body);
    assert!(
        early.body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("the workspace is not ready yet"),
        "{:?}",
        early.body
    );
    h.hold_k3k(false).await;
    h.wait_ws(&ada, &ws, "Ready", |w| {
        w.is_some_and(|w| w["state"] == "Ready")
    })
    .await;
    h.settle().await;

    let mut kc = std::collections::BTreeMap::new();
    for n in ["ada", "vic", "dev"] {
        let r = h
            .app()
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
        .app()
        .call(
            "POST",
            &format!("/workspaces/{ws}/kubeconfig"),
            &bearer(&users["out"].1),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 404);
    let r = h
        .app()
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
    assert!(can_i(a, "create", "deployments", "web").await);
    assert!(can_i(a, "get", "secrets", "api").await);
    assert!(!can_i(a, "create", "clusterroles", "").await);
    assert!(!can_i(a, "create", "clusterrolebindings", "").await);
    assert!(!can_i(a, "create", "namespaces", "").await);
    assert!(
        !can_i(
            a,
            "create",
            "customresourcedefinitions.apiextensions.k8s.io",
            ""
        )
        .await
    );
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
    )
    .await;
    assert!(
        ok && out == "10",
        "the project quota is inside the cluster: {out}"
    );
    // The workspace viewer reads but does not write, and never sees secrets.
    let v = &kc["vic"];
    assert!(can_i(v, "list", "pods", "web").await);
    assert!(!can_i(v, "create", "deployments", "web").await);
    assert!(!can_i(v, "get", "secrets", "web").await);
    // The project developer deploys in their project and nowhere else.
    let d = &kc["dev"];
    assert!(can_i(d, "create", "deployments", "web").await);
    assert!(!can_i(d, "create", "deployments", "api").await);
    let manifest = dir.path().join("deploy.json");
    std::fs::write(&manifest, deployment("shop")).unwrap();
    let (ok, out) = kubectl(d, &["apply", "-n", "web", "-f", manifest.to_str().unwrap()]).await;
    assert!(ok, "developer deploys in web: {out}");
    let (ok, out) = kubectl(d, &["apply", "-n", "api", "-f", manifest.to_str().unwrap()]).await;
    assert!(
        !ok && out.contains("forbidden"),
        "developer cannot deploy in api: {out}"
    );

    // Removing the developer from the project reaches the cluster (their certificate names
    // them, and the binding no longer does).
    let r = h
        .app()
        .call(
            "DELETE",
            &format!("/projects/{web}/members/{}", users["dev"].0),
            &ada,
            None,
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.body);
    assert_eq!(r.body["email"], "dev@example.com");
    assert!(
        r.body["kubeconfigs_valid_until"].is_string(),
        "the developer holds a kubeconfig: {:?}",
        r.body
    );
    h.until("the removed developer to lose access", async || {
        !can_i(d, "create", "deployments", "web").await
    })
    .await;

    // Drift inside the virtual cluster: a binding kaas owns deleted by the workspace admin
    // comes back at a resync once kaas's last look inside is older than
    // `inside_check_interval` (half a second in tests).
    let (ok, out) = kubectl(a, &["delete", "rolebinding", "kaas-viewer", "-n", "api"]).await;
    assert!(ok, "{out}");
    h.until("the deleted binding restored", async || {
        h.reconciler().resync();
        kubectl(a, &["get", "rolebinding", "kaas-viewer", "-n", "api"])
            .await
            .0
    })
    .await;

    // Issuance is audited with serial and expiry.
    let r = h
        .app()
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

    // Deleting the workspace takes the virtual cluster away.
    crate::host::delete_workspace(h, &ada, &ws).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_gets_exactly_its_access_through_kubectl_on_fakehost() {
    each_role_journey(&HostedApp::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_gets_exactly_its_access_through_kubectl_on_realhost() {
    each_role_journey(&RealHostedApp::start().await).await;
}
