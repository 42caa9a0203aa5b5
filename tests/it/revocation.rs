//! Cluster access ends with the role, not with the certificate: a workspace admin removed
//! from the workspace and the organization, an organization admin demoted, and a disabled
//! user all keep a kubeconfig that still authenticates, and the virtual cluster's API server
//! refuses it (403) once kaas has synced; enabling the user again gives the role back.

use std::path::{Path, PathBuf};

use kaas::domain::*;
use kaas::store::records;
use serde_json::{Value, json};

use crate::realhost::RealHostedApp;
use crate::support::*;

/// `kubectl get secrets -n <ns>`: Ok when allowed, Err with kubectl's words when not.
async fn read_secrets(kc: &Path, ns: &str) -> Result<(), String> {
    match kubectl(kc, &["get", "secrets", "-n", ns]).await {
        (true, _) => Ok(()),
        (false, out) => Err(out),
    }
}

/// Refused by RBAC (403), not failing to authenticate (401) or to connect.
fn forbidden(r: &Result<(), String>) -> bool {
    r.as_ref()
        .err()
        .is_some_and(|out| out.contains("(Forbidden)") && out.contains("cannot list resource"))
}

async fn kubeconfig<H: TestHost>(
    h: &H,
    dir: &Path,
    ws: &str,
    who: &str,
    token: &str,
) -> (PathBuf, Value) {
    let r = h
        .app()
        .call(
            "POST",
            &format!("/workspaces/{ws}/kubeconfig"),
            &bearer(token),
            Some(json!({"lifetime_hours": 3})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{who}: {:?}", r.body);
    let path = dir.join(format!("{who}.kubeconfig"));
    std::fs::write(&path, r.body["kubeconfig"].as_str().unwrap()).unwrap();
    (path, r.body)
}

async fn removal_demotion_and_disabling_journey<H: TestHost>(h: &H) {
    let dir = tempfile::tempdir().unwrap();
    let app = h.app();
    let (_, root) = app.user("root@example.com", true).await;
    let mut users = std::collections::BTreeMap::new();
    for name in ["ada", "wan", "oad", "dis"] {
        users.insert(name, app.user(&format!("{name}@example.com"), false).await);
    }
    let ada = bearer(&users["ada"].1);
    let org = app
        .call("POST", "/orgs", &ada, Some(json!({"name": "acme"})))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let org_id: OrgId = org.parse().unwrap();
    {
        let now = app.ops().now();
        let tx = app.ops().store.write().unwrap();
        for (n, role) in [
            ("wan", OrgRole::Member),
            ("oad", OrgRole::Admin),
            ("dis", OrgRole::Member),
        ] {
            let m = Membership {
                org_id,
                user_id: users[n].0,
                role,
                joined_at: now,
            };
            records::put_member(&tx, &m).unwrap();
        }
        tx.commit().unwrap();
    }
    let ws = app
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
    let r = app
        .call(
            "POST",
            &format!("/workspaces/{ws}/projects"),
            &ada,
            Some(json!({"name": "web"})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 201, "{:?}", r.body);
    for n in ["wan", "dis"] {
        let r = app
            .call(
                "PUT",
                &format!("/workspaces/{ws}/members/{}", users[n].0),
                &ada,
                Some(json!({"role": "workspace-admin"})),
            )
            .await;
        assert_eq!(r.status.as_u16(), 200, "{:?}", r.body);
    }
    h.wait_ws(&ada, &ws, "Ready", |w| {
        w.is_some_and(|w| w["state"] == "Ready")
    })
    .await;
    h.settle().await;

    let mut kc = std::collections::BTreeMap::new();
    let mut issued = std::collections::BTreeMap::new();
    for n in ["ada", "wan", "oad", "dis"] {
        let (path, body) = kubeconfig(h, dir.path(), &ws, n, &users[n].1).await;
        if n != "ada" {
            // The certificate still names the role's group, for display; it grants nothing.
            let groups = body["groups"].to_string();
            assert!(groups.contains("workspace-admin"), "{n}: {groups}");
        }
        issued.insert(n, body["expires_at"].as_str().unwrap().to_string());
        kc.insert(n, path);
    }
    for n in ["ada", "wan", "oad", "dis"] {
        let r = read_secrets(&kc[n], "web").await;
        assert!(r.is_ok(), "{n} administers the project namespace: {r:?}");
    }

    // The workspace admin is removed from the workspace, then from the organization: the
    // admin learns until when the certificate they hold stays valid, and the virtual
    // cluster refuses it from the next sync on.
    let r = app
        .call(
            "DELETE",
            &format!("/workspaces/{ws}/members/{}", users["wan"].0),
            &ada,
            None,
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.body);
    assert_eq!(r.body["email"], "wan@example.com");
    assert_eq!(r.body["kubeconfigs_valid_until"], issued["wan"].as_str());
    let message = r.body["message"].as_str().unwrap();
    assert!(
        message.contains("remain valid certificates until")
            && message.contains("no longer grant the removed role"),
        "{message}"
    );
    let r = app
        .call(
            "DELETE",
            &format!("/orgs/{org}/members/{}", users["wan"].0),
            &ada,
            None,
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.body);
    assert_eq!(r.body["kubeconfigs_valid_until"], issued["wan"].as_str());
    let mut last = Ok(());
    h.until("the removed workspace admin to be refused", async || {
        last = read_secrets(&kc["wan"], "web").await;
        forbidden(&last)
    })
    .await;
    assert!(
        !kubectl(
            &kc["wan"],
            &["auth", "can-i", "create", "pods/exec", "-n", "web"]
        )
        .await
        .1
        .lines()
        .any(|l| l.trim() == "yes")
    );

    // An organization admin demoted to member: workspace-admin came from the organization
    // role, and goes with it.
    let r = app
        .call(
            "PATCH",
            &format!("/orgs/{org}/members/{}", users["oad"].0),
            &ada,
            Some(json!({"role": "member"})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.body);
    h.until("the demoted organization admin to be refused", async || {
        forbidden(&read_secrets(&kc["oad"], "web").await)
    })
    .await;

    // A disabled user: every binding drops them; enabled again, they are back.
    let admin = bearer(&root);
    let r = app
        .call(
            "PATCH",
            &format!("/users/{}", users["dis"].0),
            &admin,
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.body);
    h.until("the disabled user to be refused", async || {
        forbidden(&read_secrets(&kc["dis"], "web").await)
    })
    .await;
    let r = app
        .call(
            "PATCH",
            &format!("/users/{}", users["dis"].0),
            &admin,
            Some(json!({"disabled": false})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.body);
    h.until("the enabled user to be allowed again", async || {
        read_secrets(&kc["dis"], "web").await.is_ok()
    })
    .await;

    // The owner was never touched.
    assert!(read_secrets(&kc["ada"], "web").await.is_ok());
    crate::host::delete_workspace(h, &ada, &ws).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_demoted_and_disabled_people_lose_cluster_access_on_fakehost() {
    removal_demotion_and_disabling_journey(&HostedApp::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_demoted_and_disabled_people_lose_cluster_access_on_realhost() {
    removal_demotion_and_disabling_journey(&RealHostedApp::start().await).await;
}

/// What the tenant sync binds, read from the snapshot it works from: people by e-mail, with
/// their highest workspace role, and nobody whose account is disabled.
#[tokio::test]
async fn the_bindings_name_enabled_people_by_their_highest_role() {
    let app = TestApp::new();
    let (_, root) = app.user("root@example.com", true).await;
    let (_, ada) = app.user("ada@example.com", false).await;
    let ada = bearer(&ada);
    let org = app.create_org(&ada, "acme").await;
    let ws = app.create_workspace(&ada, &org, "prod", "starter").await;
    let org_id: OrgId = org.parse().unwrap();
    let mut ids = std::collections::BTreeMap::new();
    for (n, role) in [
        ("oad", OrgRole::Admin),
        ("wan", OrgRole::Member),
        ("vic", OrgRole::Member),
        ("dis", OrgRole::Member),
        ("mem", OrgRole::Member),
    ] {
        let id = app.user(&format!("{n}@example.com"), false).await.0;
        let now = app.ops().now();
        let tx = app.ops().store.write().unwrap();
        let m = Membership {
            org_id,
            user_id: id,
            role,
            joined_at: now,
        };
        records::put_member(&tx, &m).unwrap();
        tx.commit().unwrap();
        ids.insert(n, id);
    }
    for (n, role) in [
        ("wan", "workspace-admin"),
        ("vic", "workspace-viewer"),
        ("dis", "workspace-admin"),
        ("oad", "workspace-viewer"),
    ] {
        let r = app
            .call(
                "PUT",
                &format!("/workspaces/{ws}/members/{}", ids[n]),
                &ada,
                Some(json!({"role": role})),
            )
            .await;
        assert_eq!(r.status.as_u16(), 200, "{:?}", r.body);
    }
    let r = app
        .call(
            "PATCH",
            &format!("/users/{}", ids["dis"]),
            &bearer(&root),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.body);

    let id: WorkspaceId = ws.parse().unwrap();
    let snap = app.ops().reconcile_snapshot(id).unwrap().unwrap();
    let holders = |role| snap.access.holders(role).collect::<Vec<_>>();
    assert_eq!(
        holders(WorkspaceRole::Admin),
        [
            "ada@example.com",
            "oad@example.com",
            "root@example.com",
            "wan@example.com"
        ],
        "the owner, the organization admin (also a viewer), the platform administrator and \
         the workspace admin; not the disabled one"
    );
    assert_eq!(holders(WorkspaceRole::Viewer), ["vic@example.com"]);
}
