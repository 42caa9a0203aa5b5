//! Plan changes through the API, refused with the reason and nothing changed: a move to a plan
//! the workspace's virtual cluster cannot take (K3K mode, server storage — on fakehost, with
//! the Cluster left as it was), a move to a plan its projects, members or project quotas do
//! not fit in or that is retired, and an edit of a used plan's server storage.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::host::{org_and_workspace, short, state};
use crate::support::*;

/// Creates plan `id` as a copy of `base` with `tweak` applied (as a platform administrator).
async fn plan_like(
    app: &TestApp,
    admin: &Auth,
    base: &str,
    id: &str,
    tweak: impl FnOnce(&mut Value),
) {
    let r = app
        .call("GET", &format!("/plans/{base}"), admin, None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let mut p = r.body;
    p["id"] = json!(id);
    p["display_name"] = json!(id);
    tweak(&mut p);
    let r = app.call("POST", "/plans", admin, Some(p)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
}

/// Asks to move `ws` to `plan` and checks the refusal: status, code, field and message.
async fn refused_move(
    app: &TestApp,
    a: &Auth,
    ws: &str,
    plan: &str,
    status: StatusCode,
    field: &str,
    says: &[&str],
) {
    let r = app
        .call(
            "PATCH",
            &format!("/workspaces/{ws}"),
            a,
            Some(json!({"plan": plan})),
        )
        .await;
    assert_eq!(r.status, status, "{plan}: {:?}", r.body);
    let code = if status == StatusCode::CONFLICT {
        "conflict"
    } else {
        "invalid"
    };
    assert_eq!(r.code(), code, "{plan}: {:?}", r.body);
    assert_eq!(r.field(), field, "{plan}: {:?}", r.body);
    let message = r.body["error"]["message"].as_str().unwrap_or("");
    for s in says {
        assert!(message.contains(s), "{plan}: {s:?} not in {message:?}");
    }
}

/// The workspace as the API shows it: its plan and generation.
async fn plan_and_generation(app: &TestApp, a: &Auth, ws: &str) -> (String, u64) {
    let r = app.call("GET", &format!("/workspaces/{ws}"), a, None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    (
        r.body["plan_id"].as_str().unwrap_or("").to_string(),
        r.body["generation"].as_u64().unwrap_or(0),
    )
}

#[tokio::test]
async fn a_move_to_another_server_storage_size_is_refused_and_the_cluster_is_left_alone() {
    let h = HostedApp::start().await;
    let (_, root) = h.app.user("root@example.com", true).await;
    let root = bearer(&root);
    let (a, _, ws) = org_and_workspace(&h, "starter").await;
    h.wait_ws(&a, &ws, "Ready", |w| state(w) == "Ready").await;
    let s = short(&ws);
    let storage = |h: &HostedApp| {
        let c = h
            .get(
                "k3k.io",
                "clusters",
                Some(&format!("kaas-ws-{s}")),
                &format!("ws-{s}"),
            )
            .expect("cluster");
        c["spec"]["persistence"]["storageRequestSize"].clone()
    };
    assert_eq!(storage(&h), "5Gi");

    // A plan with 20 GiB per server; the workspace's cluster has the default plans' 5 GiB.
    plan_like(&h.app, &root, "standard", "big-disk", |p| {
        p["storage_gib"] = json!(20);
    })
    .await;
    refused_move(
        &h.app,
        &a,
        &ws,
        "big-disk",
        StatusCode::UNPROCESSABLE_ENTITY,
        "plan",
        &[
            "plan \"big-disk\" gives each K3K server 20 GiB of storage, but this workspace's \
             virtual cluster was created with 5 GiB and Kubernetes cannot resize it",
            "choose a plan with 5 GiB of server storage, or create a new workspace on \
             \"big-disk\" and move the workloads",
        ],
    )
    .await;
    // A plan in the other K3K mode is refused the same way.
    plan_like(&h.app, &root, "starter", "starter-vm", |p| {
        p["k3k_mode"] = json!("virtual");
    })
    .await;
    refused_move(
        &h.app,
        &a,
        &ws,
        "starter-vm",
        StatusCode::UNPROCESSABLE_ENTITY,
        "plan",
        &["created in shared mode and K3K cannot change a cluster's mode"],
    )
    .await;

    // Nothing moved: still on starter, same generation, Ready, and the Cluster as it was.
    assert_eq!(
        plan_and_generation(&h.app, &a, &ws).await,
        ("starter".to_string(), 1)
    );
    let r = h
        .app
        .call("GET", &format!("/workspaces/{ws}"), &a, None)
        .await;
    assert_eq!(r.body["state"], "Ready", "{:?}", r.body);
    let r = h
        .app
        .call("GET", "/audit?action=workspace.plan", &root, None)
        .await;
    assert_eq!(r.body["items"], json!([]), "no plan change was recorded");
    h.reconciler.resync();
    h.settle().await;
    assert_eq!(storage(&h), "5Gi");
    let r = h
        .app
        .call("GET", &format!("/workspaces/{ws}"), &a, None)
        .await;
    assert_eq!(r.body["state"], "Ready", "{:?}", r.body);
}

#[tokio::test]
async fn plan_changes_that_do_not_fit_are_refused_and_change_nothing() {
    let app = TestApp::new();
    let (_, root) = app.user("root@example.com", true).await;
    let root = bearer(&root);
    let (ada_id, ada) = app.user("ada@example.com", false).await;
    let ada = bearer(&ada);
    let (bob_id, _) = app.user("bob@example.com", false).await;
    let org = app.create_org(&ada, "acme").await;
    let r = app
        .call(
            "POST",
            &format!("/orgs/{org}/invitations"),
            &ada,
            Some(json!({"email": "bob@example.com", "role": "member"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let token = r.body["token"].as_str().unwrap().to_string();
    let bob = app.login("bob@example.com").await;
    let r = app
        .call(
            "POST",
            "/invitations/accept",
            &bob,
            Some(json!({"token": token})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let ws = app.create_workspace(&ada, &org, "prod", "starter").await;
    // Two projects (one with 1.5 CPU of its own) and two members.
    for body in [
        json!({"name": "web", "quota": {"cpu_millis": 1500, "memory_mib": 1024, "storage_gib": 5, "pods": 10}}),
        json!({"name": "api"}),
    ] {
        let r = app
            .call(
                "POST",
                &format!("/workspaces/{ws}/projects"),
                &ada,
                Some(body),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    }
    for user in [ada_id, bob_id] {
        let r = app
            .call(
                "PUT",
                &format!("/workspaces/{ws}/members/{user}"),
                &ada,
                Some(json!({"role": "workspace-viewer"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }

    // Plans of the workspace's mode and server storage, each too small in one way.
    plan_like(&app, &root, "starter", "one-project", |p| {
        p["max_projects"] = json!(1);
    })
    .await;
    plan_like(&app, &root, "starter", "one-member", |p| {
        p["max_members"] = json!(1);
    })
    .await;
    plan_like(&app, &root, "starter", "one-cpu", |p| {
        p["quota"]["cpu_millis"] = json!(1000);
        p["limits"]["default_cpu_millis"] = json!(500);
    })
    .await;
    plan_like(&app, &root, "starter", "old", |p| {
        p["retired"] = json!(true);
    })
    .await;

    let conflict = StatusCode::CONFLICT;
    let invalid = StatusCode::UNPROCESSABLE_ENTITY;
    refused_move(
        &app,
        &ada,
        &ws,
        "one-project",
        conflict,
        "",
        &["plan \"one-project\" allows 1 projects; the workspace has 2"],
    )
    .await;
    refused_move(
        &app,
        &ada,
        &ws,
        "one-member",
        conflict,
        "",
        &["plan \"one-member\" allows 1 workspace members; the workspace has 2"],
    )
    .await;
    refused_move(
        &app,
        &ada,
        &ws,
        "one-cpu",
        conflict,
        "",
        &[
            "the projects' quotas do not fit in plan \"one-cpu\" (cpu_millis 1500 held by \
             projects, 1000 in the quota): lower or remove project quotas first",
        ],
    )
    .await;
    refused_move(
        &app,
        &ada,
        &ws,
        "old",
        invalid,
        "plan",
        &["plan \"old\" is retired; choose another"],
    )
    .await;
    refused_move(
        &app,
        &ada,
        &ws,
        "nope",
        invalid,
        "plan",
        &["there is no plan \"nope\""],
    )
    .await;
    assert_eq!(
        plan_and_generation(&app, &ada, &ws).await,
        ("starter".to_string(), 1),
        "every refusal left the workspace as it was"
    );
    let r = app
        .call(
            "GET",
            &format!("/audit?org={org}&action=workspace.plan"),
            &ada,
            None,
        )
        .await;
    assert_eq!(r.body["items"], json!([]), "{:?}", r.body);

    // A plan it fits in (same mode and server storage, more of everything) is taken.
    plan_like(&app, &root, "standard", "roomy", |p| {
        p["storage_gib"] = json!(kaas::domain::plan::DEFAULT_SERVER_STORAGE_GIB);
    })
    .await;
    let r = app
        .call(
            "PATCH",
            &format!("/workspaces/{ws}"),
            &ada,
            Some(json!({"plan": "roomy"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        plan_and_generation(&app, &ada, &ws).await,
        ("roomy".to_string(), 2)
    );
}

#[tokio::test]
async fn a_used_plans_server_storage_is_fixed_and_an_unused_ones_is_not() {
    let app = TestApp::new();
    let (_, root) = app.user("root@example.com", true).await;
    let root = bearer(&root);
    let (_, ada) = app.user("ada@example.com", false).await;
    let ada = bearer(&ada);
    let org = app.create_org(&ada, "acme").await;
    for name in ["prod", "dev"] {
        let r = app
            .call(
                "POST",
                &format!("/orgs/{org}/workspaces"),
                &ada,
                Some(json!({"name": name, "plan": "starter"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    }

    let before = app.call("GET", "/plans/starter", &root, None).await.body;
    let mut edit = before.clone();
    edit["storage_gib"] = json!(4);
    edit["max_projects"] = json!(7);
    let r = app
        .call("PUT", "/plans/starter", &root, Some(edit.clone()))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(r.code(), "invalid");
    assert_eq!(r.field(), "storage_gib");
    assert_eq!(
        r.body["error"]["message"],
        "storage_gib: 2 workspaces use this plan, and their virtual clusters were created with \
         5 GiB of server storage, which Kubernetes cannot resize: keep 5 GiB here, and create a \
         new plan with 4 GiB for new workspaces (a workspace can move only to a plan with the \
         same server storage and K3K mode)"
    );
    let after = app.call("GET", "/plans/starter", &root, None).await.body;
    assert_eq!(after, before, "nothing of the edit was kept");

    // The rest of the edit, without the storage, is taken.
    edit["storage_gib"] = before["storage_gib"].clone();
    let r = app.call("PUT", "/plans/starter", &root, Some(edit)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["max_projects"], 7);

    // Premium is unused: its server storage may change, its mode may not.
    let mut premium = app.call("GET", "/plans/premium", &root, None).await.body;
    premium["storage_gib"] = json!(20);
    let r = app
        .call("PUT", "/plans/premium", &root, Some(premium.clone()))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = app.call("GET", "/plans/premium", &root, None).await;
    assert_eq!(r.body["storage_gib"], 20);
    premium["k3k_mode"] = json!("virtual");
    let r = app
        .call("PUT", "/plans/premium", &root, Some(premium))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(r.field(), "k3k_mode");
    let message = r.body["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("a plan's K3K mode is fixed once it is created")
            && message.contains("create a new plan in virtual mode"),
        "{message}"
    );
    let r = app.call("GET", "/plans/premium", &root, None).await;
    assert_eq!(r.body["k3k_mode"], "shared");
}
