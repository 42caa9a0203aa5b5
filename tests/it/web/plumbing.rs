//! What the console gets from the shared HTTP plumbing and how it shows refusals: a number
//! too large for its field is an error next to that field (the form shown again, nothing
//! stored), a malformed id in a path is a 404 in each surface's own shape, an invitation
//! accepted while signed in needs the session's CSRF token, and ops's refusals are shown
//! by field.

use axum::http::StatusCode;
use serde_json::json;

use super::billing::inputs;
use super::*;

/// One more than the largest `u32`: what a count field cannot hold.
const TOO_BIG: &str = "4294967296";
const TOO_BIG_SAID: &str = "Enter a whole number up to 4294967295";

/// The text of the error shown next to the input whose id is `id`, unescaped.
fn field_error(page: &str, id: &str) -> String {
    page.split(&format!("id=\"{id}-err\">"))
        .nth(1)
        .and_then(|r| r.split("</p>").next())
        .unwrap_or("")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// A page's form with `field` set to `value`, as a browser would send it.
fn with(page: &str, changes: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut form = inputs(page);
    for (k, v) in form.iter_mut() {
        if let Some((_, new)) = changes.iter().find(|(f, _)| *f == k.as_str()) {
            *v = (*new).to_string();
        }
    }
    form
}

fn pairs(form: &[(String, String)]) -> Vec<(&str, &str)> {
    form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

#[tokio::test]
async fn a_number_too_large_for_its_field_is_an_error_next_to_it_and_nothing_changes() {
    let app = TestApp::new();
    app.user("root@example.com", true).await;
    let (org, _) = org_with_workspace(&app, "ada@example.com", "acme").await;
    let mut root = sign_in(&app, "root@example.com").await;

    // A new plan with more servers than a count can hold.
    let r = get(&app, &mut root, "/admin/plans/new").await;
    let mut form = with(
        html(&r),
        &[
            ("id", "huge"),
            ("display_name", "Huge"),
            ("servers", TOO_BIG),
        ],
    );
    // The mode is a <select> on a new plan's page.
    form.push(("k3k_mode".into(), "shared".into()));
    let r = submit(&app, &mut root, "/admin/plans", &pairs(&form)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", html(&r));
    assert_eq!(field_error(html(&r), "plan-servers"), TOO_BIG_SAID);
    assert!(
        html(&r).contains(&format!(
            "name=\"servers\" type=\"text\" value=\"{TOO_BIG}\""
        )),
        "what was typed is kept"
    );
    assert!(
        app.ops().get_plan(&shell(), "huge").is_err(),
        "no plan made"
    );

    // An existing plan's project limit: refused, the plan as it was.
    let before = app.ops().get_plan(&shell(), "standard").unwrap();
    let r = get(&app, &mut root, "/admin/plans/standard").await;
    let form = with(html(&r), &[("max_projects", TOO_BIG)]);
    let r = submit(&app, &mut root, "/admin/plans/standard", &pairs(&form)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", html(&r));
    assert_eq!(field_error(html(&r), "plan-max_projects"), TOO_BIG_SAID);
    assert_eq!(app.ops().get_plan(&shell(), "standard").unwrap(), before);

    // An organization's limits, each field on its own (u64 overflow too).
    let limits = format!("/admin/orgs/{org}/limits");
    let r = submit(
        &app,
        &mut root,
        &limits,
        &[
            ("max_workspaces", TOO_BIG),
            ("max_members", "99999999999999999999999"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", html(&r));
    assert_eq!(field_error(html(&r), &format!("lw-{org}")), TOO_BIG_SAID);
    assert_eq!(field_error(html(&r), &format!("lm-{org}")), TOO_BIG_SAID);
    assert!(html(&r).contains(&format!("aria-describedby=\"lw-{org}-err\"")));
    let limits_now = app.ops().get_org(&shell(), org).unwrap().org.limits;
    assert_eq!(limits_now.max_workspaces, None);
    assert_eq!(limits_now.max_members, None);

    // An API token's lifetime in days.
    let mut ada = sign_in(&app, "ada@example.com").await;
    let r = submit(
        &app,
        &mut ada,
        "/account/tokens",
        &[("name", "ci"), ("scope", "read-only"), ("days", TOO_BIG)],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", html(&r));
    assert_eq!(field_error(html(&r), "token-expires_in_days"), TOO_BIG_SAID);
    assert!(html(&r).contains(&format!("value=\"{TOO_BIG}\"")), "kept");
    let ada_actor = owner(&app, "ada@example.com");
    let tokens = app.ops().list_tokens(&ada_actor).unwrap();
    assert!(!tokens.iter().any(|t| t.name == "ci"), "no token made");
}

#[tokio::test]
async fn a_malformed_id_is_not_found_in_each_surfaces_shape() {
    let app = TestApp::new();
    let (org, _) = org_with_workspace(&app, "ada@example.com", "acme").await;
    let mut ada = sign_in(&app, "ada@example.com").await;
    let (_, token) = app.user("bob@example.com", false).await;

    // The console: its 404 page, for pages and forms alike.
    for path in [
        "/orgs/nope",
        "/workspaces/org_x",
        "/projects/42",
        "/invoices/x",
    ] {
        let r = get(&app, &mut ada, path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert!(html(&r).contains("Page not found"), "{path}: {}", html(&r));
    }
    let r = submit(
        &app,
        &mut ada,
        &format!("/orgs/{org}/members/usr_nope/remove"),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(html(&r).contains("Page not found"));

    // The API: its JSON error body.
    let r = app
        .call("GET", "/orgs/nope", &Auth::Bearer(token.clone()), None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "not_found", "{}", r.body);
    let message = r.body["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.starts_with("not found ("),
        "the path's fault: {message}"
    );
    let r = app
        .call(
            "DELETE",
            &format!("/orgs/{org}/members/usr_nope"),
            &Auth::Bearer(token),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "not_found", "{}", r.body);
}

#[tokio::test]
async fn accepting_an_invitation_while_signed_in_needs_the_session_csrf_token() {
    let app = TestApp::new();
    let (org, _) = org_with_workspace(&app, "ada@example.com", "acme").await;
    app.user("bob@example.com", false).await;
    let inv = app
        .ops()
        .invite(
            &owner(&app, "ada@example.com"),
            org,
            NewInvitation {
                email: "bob@example.com".into(),
                role: OrgRole::Member,
            },
        )
        .unwrap();
    let mut bob = sign_in(&app, "bob@example.com").await;
    let r = post(&app, &mut bob, "/invite", &[("token", inv.token.as_str())]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", html(&r));
    let r = post(
        &app,
        &mut bob,
        "/invite",
        &[
            ("token", inv.token.as_str()),
            ("_csrf", "not-this-sessions"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let bob_actor = owner(&app, "bob@example.com");
    assert!(app.ops().get_org(&bob_actor, org).is_err(), "not joined");

    let r = submit(&app, &mut bob, "/invite", &[("token", inv.token.as_str())]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
    assert_eq!(location(&r), format!("/orgs/{org}"));
    assert!(app.ops().get_org(&bob_actor, org).is_ok(), "joined");
}

#[tokio::test]
async fn a_usage_export_that_ends_before_it_starts_is_refused_next_to_to() {
    let app = TestApp::new();
    let (org, _) = org_with_workspace(&app, "ada@example.com", "acme").await;
    let mut ada = sign_in(&app, "ada@example.com").await;
    let r = get(
        &app,
        &mut ada,
        &format!("/orgs/{org}/billing/usage?from=2026-11-10&to=2026-11-01&format=csv"),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", html(&r));
    assert_eq!(
        field_error(html(&r), "usage-to"),
        "The period must end after it starts"
    );
    // The same rule in the API's words, on its own field.
    let (_, token) = app.user("root@example.com", true).await;
    let r = app
        .call(
            "GET",
            &format!("/orgs/{org}/usage?from=2026-11-10T00:00:00Z&until=2026-11-01T00:00:00Z"),
            &Auth::Bearer(token),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.body["error"]["field"], json!("until"));
    assert_eq!(
        r.body["error"]["message"],
        json!("until: the period must end after it starts")
    );
}
