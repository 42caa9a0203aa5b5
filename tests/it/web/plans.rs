//! Plan changes the console refuses because a workspace's virtual cluster keeps its K3K mode
//! and server storage: the plans it cannot move to are marked in the change-plan form, and
//! a refusal (of a move, or of an edit of a used plan's server storage) comes back next to
//! the field, with nothing changed.

use axum::http::StatusCode;

use super::billing::inputs;
use super::*;

/// The text of the error shown next to field `id` (`<form>-<field>`), unescaped.
fn field_error(page: &str, id: &str) -> String {
    page.split(&format!("id=\"{id}-err\">"))
        .nth(1)
        .and_then(|r| r.split("</p>").next())
        .unwrap_or("")
        .replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&amp;", "&")
}

#[tokio::test]
async fn a_move_the_cluster_cannot_take_is_marked_and_refused_next_to_the_plan_field() {
    let app = TestApp::new();
    let (_, ws) = org_with_workspace(&app, "ada@example.com", "acme").await;
    let mut bigger = app.ops().get_plan(&shell(), "standard").unwrap();
    bigger.id = "bigger".into();
    bigger.display_name = "Bigger".into();
    bigger.storage_gib = kaas::domain::plan::DEFAULT_SERVER_STORAGE_GIB;
    app.ops().create_plan(&shell(), bigger).unwrap();
    let mut big_disk = app.ops().get_plan(&shell(), "standard").unwrap();
    big_disk.id = "big-disk".into();
    big_disk.display_name = "Big disk".into();
    big_disk.storage_gib = 20;
    app.ops().create_plan(&shell(), big_disk).unwrap();
    let mut b = sign_in(&app, "ada@example.com").await;
    let ws_url = format!("/workspaces/{ws}");

    // The form says which plans the workspace cannot move to, and why.
    let r = get(&app, &mut b, &ws_url).await;
    let page = html(&r);
    assert!(
        page.contains(
            "This workspace's cluster keeps the K3K mode and server storage it was created with"
        ),
        "{page}"
    );
    // The default plans share one storage size: only the 20 GiB plan is out of reach.
    let option = |value: &str| -> String {
        page.split(&format!("<option value=\"{value}\""))
            .nth(1)
            .and_then(|r| r.split("</option>").next())
            .unwrap_or("")
            .to_string()
    };
    let big = option("big-disk");
    assert!(
        big.starts_with(" disabled>")
            && big.ends_with("(not available: different server storage size)"),
        "big-disk: {big}"
    );
    for available in ["standard", "premium"] {
        assert!(
            option(available).starts_with('>'),
            "{available}: {}",
            option(available)
        );
    }
    assert!(
        page.contains("<option value=\"bigger\">Bigger — "),
        "{page}"
    );
    assert!(page.contains("<option value=\"starter\" selected>Starter — "));

    // Sent anyway (a page from before the plan changed, say): refused next to the field.
    let r = submit(
        &app,
        &mut b,
        &format!("{ws_url}/plan"),
        &[("plan", "big-disk")],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let page = html(&r);
    assert!(
        page.contains("aria-describedby=\"plan-plan-err\""),
        "{page}"
    );
    assert_eq!(
        field_error(page, "plan-plan"),
        "Plan \"big-disk\" gives each K3K server 20 GiB of storage, but this workspace's virtual \
         cluster was created with 5 GiB and Kubernetes cannot resize it: choose a plan with 5 GiB \
         of server storage, or create a new workspace on \"big-disk\" and move the workloads"
    );
    let r = get(&app, &mut b, &ws_url).await;
    assert!(html(&r).contains("Plan Starter"), "still on starter");
    let w = app.ops().get_workspace(&shell(), ws).unwrap();
    assert_eq!(
        (w.workspace.plan_id.as_str(), w.workspace.generation),
        ("starter", 1)
    );

    // The move to a plan with the same server storage goes through.
    let r = submit(
        &app,
        &mut b,
        &format!("{ws_url}/plan"),
        &[("plan", "bigger")],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
}

#[tokio::test]
async fn a_used_plans_server_storage_is_refused_next_to_its_field() {
    let app = TestApp::new();
    app.user("root@example.com", true).await;
    org_with_workspace(&app, "ada@example.com", "acme").await;
    let mut root = sign_in(&app, "root@example.com").await;
    let before = app.ops().get_plan(&shell(), "starter").unwrap();

    let r = get(&app, &mut root, "/admin/plans/starter").await;
    let page = html(&r);
    assert!(
        page.contains("Fixed while workspaces use this plan"),
        "the field says so before it is tried"
    );
    let mut form = inputs(page);
    for (k, v) in form.iter_mut() {
        if k == "storage_gib" {
            *v = "4".into();
        }
    }
    let fields: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let r = submit(&app, &mut root, "/admin/plans/starter", &fields).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", html(&r));
    let page = html(&r);
    assert_eq!(
        field_error(page, "plan-storage_gib"),
        "1 workspace uses this plan, and its virtual cluster was created with 5 GiB of server \
         storage, which Kubernetes cannot resize: keep 5 GiB here, and create a new plan with \
         4 GiB for new workspaces (a workspace can move only to a plan with the same server \
         storage and K3K mode)"
    );
    assert!(
        page.contains("name=\"storage_gib\" type=\"text\" value=\"4\""),
        "what was typed is kept"
    );
    assert_eq!(app.ops().get_plan(&shell(), "starter").unwrap(), before);

    // An unused plan's server storage may change.
    let r = get(&app, &mut root, "/admin/plans/standard").await;
    assert!(!html(&r).contains("Fixed while workspaces use this plan"));
    let mut form = inputs(html(&r));
    for (k, v) in form.iter_mut() {
        if k == "storage_gib" {
            *v = "8".into();
        }
    }
    let fields: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let r = submit(&app, &mut root, "/admin/plans/standard", &fields).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
    assert_eq!(
        app.ops()
            .get_plan(&shell(), "standard")
            .unwrap()
            .storage_gib,
        8
    );
}

#[tokio::test]
async fn a_plans_expose_mode_is_chosen_in_the_console() {
    let app = TestApp::new();
    app.user("root@kaas.test", true).await;
    let mut root = sign_in(&app, "root@kaas.test").await;
    let r = get(&app, &mut root, "/admin/plans/standard").await;
    let page = html(&r);
    assert!(
        page.contains("<option value=\"nodeport\" selected>nodeport</option>"),
        "{page}"
    );
    let mut form = inputs(page);
    form.push(("expose".into(), "ingress".into()));
    let fields: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let r = submit(&app, &mut root, "/admin/plans/standard", &fields).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
    let plan = app.ops().get_plan(&shell(), "standard").unwrap();
    assert_eq!(plan.expose, kaas::domain::Expose::Ingress);
    let r = get(&app, &mut root, "/admin/plans/standard").await;
    assert!(html(&r).contains("<option value=\"ingress\" selected>ingress</option>"));
}
