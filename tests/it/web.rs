//! The HTML console through the router: each page's status and key content, form errors
//! next to their fields with the input kept, CSRF refusals, authorization (404 for other
//! tenants and for non-administrators), post-redirect-get with a flash, headers and assets.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use kaas::domain::{OrgId, WorkspaceId};
use kaas::ops::orgs::NewOrg;
use kaas::ops::workspaces::NewWorkspace;
use kaas::ops::{Actor, AuthVia};

use crate::support::*;

mod billing;

/// A browser's view of the console: its cookies and the CSRF token of its session.
#[derive(Clone, Default)]
struct Browser {
    cookies: Vec<(String, String)>,
    csrf: String,
}

impl Browser {
    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Applies `Set-Cookie` headers like a browser (Max-Age=0 deletes).
    fn take_cookies(&mut self, r: &Res) {
        for v in r.headers.get_all(header::SET_COOKIE) {
            let v = v.to_str().unwrap();
            let pair = v.split(';').next().unwrap();
            let (k, val) = pair.split_once('=').unwrap();
            self.cookies.retain(|(n, _)| n != k);
            if !v.contains("Max-Age=0") {
                self.cookies.push((k.to_string(), val.to_string()));
            }
        }
    }

    fn has_cookie(&self, name: &str) -> bool {
        self.cookies.iter().any(|(k, _)| k == name)
    }
}

fn html(r: &Res) -> &str {
    r.body.as_str().unwrap_or("")
}

fn location(r: &Res) -> &str {
    r.headers
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn csrf_of(page: &str) -> String {
    page.split("name=\"_csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or("")
        .to_string()
}

async fn get(app: &TestApp, b: &mut Browser, path: &str) -> Res {
    let req = Request::get(path)
        .header(header::COOKIE, b.cookie_header())
        .body(Body::empty())
        .unwrap();
    let r = app.raw(req).await;
    b.take_cookies(&r);
    r
}

async fn post(app: &TestApp, b: &mut Browser, path: &str, fields: &[(&str, &str)]) -> Res {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    let req = Request::post(path)
        .header(header::COOKIE, b.cookie_header())
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap();
    let r = app.raw(req).await;
    b.take_cookies(&r);
    r
}

/// A form post with the session's CSRF token added.
async fn submit(app: &TestApp, b: &mut Browser, path: &str, fields: &[(&str, &str)]) -> Res {
    let csrf = b.csrf.clone();
    let mut all = vec![("_csrf", csrf.as_str())];
    all.extend_from_slice(fields);
    post(app, b, path, &all).await
}

/// Signs in through the login form and picks up the CSRF token from the dashboard.
async fn sign_in(app: &TestApp, email: &str) -> Browser {
    let mut b = Browser::default();
    let r = post(
        app,
        &mut b,
        "/login",
        &[("email", email), ("password", PASSWORD)],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
    let r = get(app, &mut b, "/").await;
    assert_eq!(r.status, StatusCode::OK);
    b.csrf = csrf_of(html(&r));
    assert!(!b.csrf.is_empty());
    b
}

fn actor(id: kaas::domain::UserId, email: &str) -> Actor {
    Actor {
        user_id: id,
        email: email.into(),
        platform_admin: false,
        via: AuthVia::Shell,
        source: "test".into(),
    }
}

/// An organization owned by `email`, with one workspace.
async fn org_with_workspace(app: &TestApp, email: &str, org: &str) -> (OrgId, WorkspaceId) {
    let (uid, _) = app.user(email, false).await;
    let a = actor(uid, email);
    let o = app
        .ops()
        .create_org(
            &a,
            NewOrg {
                name: org.into(),
                display_name: None,
            },
        )
        .unwrap();
    let w = app
        .ops()
        .create_workspace(
            &a,
            o.org.id,
            NewWorkspace {
                name: "prod".into(),
                plan: "starter".into(),
            },
        )
        .unwrap();
    (o.org.id, w.workspace.id)
}

#[tokio::test]
async fn setup_creates_the_admin_signs_them_in_and_flashes_once() {
    let app = TestApp::new();
    let token = app.ops().prepare_setup().unwrap().unwrap();
    let mut b = Browser::default();
    let r = get(&app, &mut b, "/setup?token=wrong").await;
    assert_eq!(r.status, StatusCode::GONE);
    assert!(html(&r).contains("no longer works"));

    let r = get(&app, &mut b, &format!("/setup?token={token}")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(html(&r).contains("Create the first platform administrator"));
    assert!(html(&r).contains(&format!("name=\"token\" value=\"{token}\"")));

    let weak = [
        ("token", token.as_str()),
        ("email", "root@example.com"),
        ("name", "Root"),
        ("password", "short"),
    ];
    let r = post(&app, &mut b, "/setup", &weak).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let page = html(&r);
    assert!(
        page.contains("id=\"password-err\""),
        "error next to the field"
    );
    assert!(page.contains("value=\"root@example.com\""), "input kept");
    assert!(
        !page.contains("value=\"short\""),
        "passwords are never echoed"
    );

    let good = [
        ("token", token.as_str()),
        ("email", "root@example.com"),
        ("name", "Root"),
        ("password", PASSWORD),
    ];
    let r = post(&app, &mut b, "/setup", &good).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/");
    assert!(b.has_cookie("kaas_session") && b.has_cookie("kaas_flash"));
    let set: Vec<_> = r.headers.get_all(header::SET_COOKIE).iter().collect();
    assert!(set.iter().any(|c| {
        let c = c.to_str().unwrap();
        c.starts_with("kaas_session=") && c.contains("HttpOnly") && c.contains("SameSite=Lax")
    }));

    let r = get(&app, &mut b, "/").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(html(&r).contains("Welcome, Root"));
    assert!(html(&r).contains("Create your first organization"));
    assert!(!b.has_cookie("kaas_flash"), "the flash is shown once");
    let r = get(&app, &mut b, "/").await;
    assert!(!html(&r).contains("Welcome, Root"));

    let r = get(&app, &mut b, &format!("/setup?token={token}")).await;
    assert_eq!(r.status, StatusCode::GONE, "the link is single-use");
}

#[tokio::test]
async fn login_errors_throttling_and_next() {
    let app = TestApp::new();
    app.user("ada@example.com", false).await;
    let mut b = Browser::default();
    let r = get(&app, &mut b, "/login").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(html(&r).contains("<label for=\"email\">"));

    let r = post(
        &app,
        &mut b,
        "/login",
        &[("email", "ada@example.com"), ("password", "nope")],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(html(&r).contains("Wrong e-mail address or password"));
    assert!(html(&r).contains("value=\"ada@example.com\""));

    // Only local paths are followed after sign-in.
    for (next, to) in [("/account", "/account"), ("//evil.example", "/")] {
        let mut b = Browser::default();
        let r = post(
            &app,
            &mut b,
            "/login",
            &[
                ("email", "ada@example.com"),
                ("password", PASSWORD),
                ("next", next),
            ],
        )
        .await;
        assert_eq!(location(&r), to);
    }

    let mut throttled = None;
    for _ in 0..30 {
        let r = post(
            &app,
            &mut b,
            "/login",
            &[("email", "ada@example.com"), ("password", "wrong again")],
        )
        .await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            throttled = Some(r);
            break;
        }
    }
    let r = throttled.expect("throttled after repeated failures");
    assert!(
        html(&r).contains("Too many attempts — try again in"),
        "{}",
        html(&r)
    );
}

#[tokio::test]
async fn signed_out_visitors_go_to_login_and_come_back() {
    let app = TestApp::new();
    app.user("ada@example.com", false).await;
    let mut b = Browser::default();
    let r = get(&app, &mut b, "/account").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/login?next=%2Faccount");
    let r = get(&app, &mut b, "/login?next=%2Faccount").await;
    assert!(html(&r).contains("name=\"next\" value=\"/account\""));

    let mut b = sign_in(&app, "ada@example.com").await;
    let r = submit(&app, &mut b, "/logout", &[]).await;
    assert_eq!(location(&r), "/login");
    assert!(!b.has_cookie("kaas_session"));
    let r = get(&app, &mut b, "/login").await;
    assert!(html(&r).contains("You have signed out."));
}

#[tokio::test]
async fn forms_without_the_session_csrf_token_are_refused() {
    let app = TestApp::new();
    app.user("ada@example.com", false).await;
    let mut b = sign_in(&app, "ada@example.com").await;
    let r = post(&app, &mut b, "/orgs", &[("name", "acme")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(html(&r).contains("This form has expired"));
    let r = post(
        &app,
        &mut b,
        "/orgs",
        &[("_csrf", "forged"), ("name", "acme")],
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // A post a browser marks as cross-site is refused even with the token.
    let req = Request::post("/orgs")
        .header(header::COOKIE, b.cookie_header())
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("sec-fetch-site", "cross-site")
        .body(Body::from(format!("_csrf={}&name=acme", b.csrf)))
        .unwrap();
    assert_eq!(app.raw(req).await.status, StatusCode::FORBIDDEN);
    let r = get(&app, &mut b, "/").await;
    assert!(
        html(&r).contains("Create your first organization"),
        "nothing was created"
    );
}

#[tokio::test]
async fn organization_and_workspace_journey() {
    let app = TestApp::new();
    app.user("ada@example.com", false).await;
    let mut b = sign_in(&app, "ada@example.com").await;

    let r = submit(&app, &mut b, "/orgs", &[("name", "Not A Name")]).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html(&r).contains("id=\"org-name-err\""));
    assert!(html(&r).contains("value=\"Not A Name\""));

    let r = submit(
        &app,
        &mut b,
        "/orgs",
        &[("name", "acme"), ("display_name", "Acme Inc")],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let org_url = location(&r).to_string();
    assert!(org_url.starts_with("/orgs/org_"));
    let r = get(&app, &mut b, &org_url).await;
    assert_eq!(r.status, StatusCode::OK);
    let page = html(&r);
    assert!(page.contains("Organization Acme Inc created"));
    assert!(
        page.contains("Limits in use") && page.contains("0 <span class=\"muted\">of</span> 10")
    );
    assert!(
        page.contains("2 CPU · 4 GiB memory · 10 GiB storage · 50 pods"),
        "plan quota shown"
    );

    let ws_post = format!("{org_url}/workspaces");
    let r = submit(
        &app,
        &mut b,
        &ws_post,
        &[("name", "Bad_Name"), ("plan", "starter")],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html(&r).contains("id=\"ws-name-err\""));
    assert!(html(&r).contains("value=\"Bad_Name\""));
    let r = submit(
        &app,
        &mut b,
        &ws_post,
        &[("name", "prod"), ("plan", "nope")],
    )
    .await;
    assert!(html(&r).contains("id=\"ws-plan-err\""));

    let r = submit(
        &app,
        &mut b,
        &ws_post,
        &[("name", "prod"), ("plan", "starter")],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let ws_url = location(&r).to_string();
    let ws_id = ws_url.trim_start_matches("/workspaces/").to_string();
    let r = get(&app, &mut b, &ws_url).await;
    let page = html(&r);
    assert!(page.contains("is being created"));
    assert!(page.contains(&format!("data-ws=\"{ws_id}\" data-state=\"Pending\"")));
    assert!(page.contains("waiting to be provisioned"));

    let r = get(&app, &mut b, &format!("/status?ws={ws_id}&ws=ws_bogus")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body[0]["state"], "Pending");
    assert_eq!(r.body[0]["class"], "st-pending");
    assert_eq!(r.body.as_array().unwrap().len(), 1);

    // A project: a half-filled quota is refused next to the quota, a good one is made.
    let p_post = format!("{ws_url}/projects");
    let r = submit(&app, &mut b, &p_post, &[("name", "web"), ("cpu", "500")]).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html(&r).contains("Fill in all four quota fields"));
    let r = submit(&app, &mut b, &p_post, &[("name", "web"), ("cpu", "abc")]).await;
    assert!(html(&r).contains("id=\"project-cpu-err\""));
    let quota = [
        ("name", "web"),
        ("cpu", "500"),
        ("memory", "512"),
        ("storage", "1"),
        ("pods", "5"),
    ];
    let r = submit(&app, &mut b, &p_post, &quota).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = get(&app, &mut b, location(&r)).await;
    assert!(html(&r).contains("Namespace <code>web</code>"));
    assert!(html(&r).contains("0.50 CPU"));
    let r = get(&app, &mut b, &ws_url).await;
    assert!(
        html(&r).contains("0.50 CPU <span class=\"muted\">of</span> 2 CPU"),
        "project quotas vs plan"
    );

    // Plan change and deletion (the name must be typed).
    let r = submit(
        &app,
        &mut b,
        &format!("{ws_url}/plan"),
        &[("plan", "standard")],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = get(&app, &mut b, location(&r)).await;
    assert!(html(&r).contains("moves to plan Standard"));
    let r = submit(
        &app,
        &mut b,
        &format!("{ws_url}/delete"),
        &[("confirm", "prd")],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html(&r).contains("id=\"delete-confirm-err\""));
    assert!(html(&r).contains("value=\"prd\""));
    let r = submit(
        &app,
        &mut b,
        &format!("{ws_url}/delete"),
        &[("confirm", "prod")],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&r), org_url);
    let r = get(&app, &mut b, &org_url).await;
    assert!(html(&r).contains("data-state=\"Deleting\""));
}

#[tokio::test]
async fn invitations_show_the_link_once_and_can_be_accepted() {
    let app = TestApp::new();
    let (org, _) = org_with_workspace(&app, "ada@example.com", "acme").await;
    let mut ada = sign_in(&app, "ada@example.com").await;
    let inv_post = format!("/orgs/{org}/invitations");
    let r = submit(
        &app,
        &mut ada,
        &inv_post,
        &[("email", "not-an-address"), ("role", "member")],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html(&r).contains("id=\"invite-email-err\""));

    let r = submit(
        &app,
        &mut ada,
        &inv_post,
        &[("email", "bob@example.com"), ("role", "member")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let page = html(&r);
    assert!(page.contains("only time the link is shown"));
    let link = page
        .split("value=\"http://kaas.test/invite?token=")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("the link is on the page")
        .to_string();
    assert!(page.contains("data-copy=\"secret-value\""));

    let r = get(&app, &mut ada, &format!("/orgs/{org}")).await;
    assert!(
        html(&r).contains("bob@example.com"),
        "pending invitation listed"
    );
    assert!(!html(&r).contains(&link), "the token is not shown again");

    let mut bob = Browser::default();
    let r = get(&app, &mut bob, &format!("/invite?token={link}")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(html(&r).contains("Create your account") && html(&r).contains("acme"));
    let r = post(
        &app,
        &mut bob,
        "/invite",
        &[("token", &link), ("name", "Bob"), ("password", "short")],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html(&r).contains("id=\"password-err\"") && html(&r).contains("value=\"Bob\""));
    let r = post(
        &app,
        &mut bob,
        "/invite",
        &[("token", &link), ("name", "Bob"), ("password", PASSWORD)],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&r), format!("/orgs/{org}"));
    let r = get(&app, &mut bob, &format!("/orgs/{org}")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(html(&r).contains("You have joined"));
    assert!(
        !html(&r).contains("Invitations"),
        "members do not manage invitations"
    );
    let r = get(&app, &mut bob, &format!("/invite?token={link}")).await;
    assert_eq!(r.status, StatusCode::GONE);

    // Members: change a role, then remove (both confirmed forms).
    let bob_id = app
        .ops()
        .user_id_by_email("bob@example.com")
        .unwrap()
        .unwrap();
    let r = submit(
        &app,
        &mut ada,
        &format!("/orgs/{org}/members/{bob_id}/role"),
        &[("role", "admin")],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = get(&app, &mut ada, location(&r)).await;
    assert!(html(&r).contains("bob@example.com is now admin"));
    let r = submit(
        &app,
        &mut ada,
        &format!("/orgs/{org}/members/{bob_id}/remove"),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = get(&app, &mut bob, &format!("/orgs/{org}")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn other_tenants_and_non_admins_get_404_pages() {
    let app = TestApp::new();
    let (org, ws) = org_with_workspace(&app, "ada@example.com", "acme").await;
    org_with_workspace(&app, "eve@example.com", "evil").await;
    let mut eve = sign_in(&app, "eve@example.com").await;
    for path in [
        format!("/orgs/{org}"),
        format!("/workspaces/{ws}"),
        "/orgs/not-an-id".to_string(),
        "/admin".into(),
        "/admin/users".into(),
        "/admin/plans".into(),
        "/admin/audit".into(),
        "/admin/nodes".into(),
        "/no/such/page".into(),
    ] {
        let r = get(&app, &mut eve, &path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert!(html(&r).contains("Page not found"), "{path}");
        assert!(
            r.headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{path}"
        );
    }
    let r = submit(
        &app,
        &mut eve,
        &format!("/orgs/{org}/workspaces"),
        &[("name", "x"), ("plan", "starter")],
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = submit(
        &app,
        &mut eve,
        "/admin/users",
        &[
            ("email", "x@example.com"),
            ("name", "X"),
            ("password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // The API keeps its JSON errors.
    let r = app.call("GET", "/nothing-here", &Auth::None, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "not_found");
}

#[tokio::test]
async fn platform_administration_pages() {
    let app = TestApp::new();
    app.user("root@example.com", true).await;
    let (org, _) = org_with_workspace(&app, "ada@example.com", "acme").await;
    let mut root = sign_in(&app, "root@example.com").await;

    let r = get(&app, &mut root, "/admin").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(html(&r).contains("acme") && html(&r).contains("Set limits"));
    let r = submit(
        &app,
        &mut root,
        &format!("/admin/orgs/{org}/limits"),
        &[("max_workspaces", "x"), ("max_members", "")],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html(&r).contains("Enter a whole number"));
    let r = submit(
        &app,
        &mut root,
        &format!("/admin/orgs/{org}/limits"),
        &[("max_workspaces", "3"), ("max_members", "")],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = get(&app, &mut root, "/admin").await;
    assert!(html(&r).contains("1 / 3"));

    let r = get(&app, &mut root, "/admin/users").await;
    assert!(html(&r).contains("ada@example.com"));
    let r = submit(
        &app,
        &mut root,
        "/admin/users",
        &[
            ("email", "x@example.com"),
            ("name", "X"),
            ("password", "short"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        html(&r).contains("id=\"user-password-err\"")
            && html(&r).contains("value=\"x@example.com\"")
    );
    let r = submit(
        &app,
        &mut root,
        "/admin/users",
        &[
            ("email", "x@example.com"),
            ("name", "X"),
            ("password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let x = app
        .ops()
        .user_id_by_email("x@example.com")
        .unwrap()
        .unwrap();
    let r = submit(
        &app,
        &mut root,
        &format!("/admin/users/{x}"),
        &[("action", "disable")],
    )
    .await;
    let r = get(&app, &mut root, location(&r)).await;
    assert!(html(&r).contains("x@example.com is disabled"));
    let me = app
        .ops()
        .user_id_by_email("root@example.com")
        .unwrap()
        .unwrap();
    let r = submit(
        &app,
        &mut root,
        &format!("/admin/users/{me}"),
        &[("action", "remove_admin")],
    )
    .await;
    let r = get(&app, &mut root, location(&r)).await;
    assert!(html(&r).contains("last active platform administrator"));
    let r = submit(
        &app,
        &mut root,
        &format!("/admin/users/{x}/password"),
        &[("password", PASSWORD)],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);

    let r = get(&app, &mut root, "/admin/plans").await;
    assert!(html(&r).contains("Starter") && html(&r).contains("Premium"));
    let r = get(&app, &mut root, "/admin/plans/starter").await;
    assert_eq!(r.status, StatusCode::OK);
    let r = get(&app, &mut root, "/admin/plans/new").await;
    assert_eq!(r.status, StatusCode::OK);
    let plan = [
        ("id", "team"),
        ("display_name", "Team"),
        ("description", ""),
        ("k3k_mode", "shared"),
        ("servers", "2"),
        ("agents", "0"),
        ("storage_gib", "5"),
        ("cpu", "4000"),
        ("memory", "8192"),
        ("storage", "50"),
        ("pods", "100"),
        ("limits.default_cpu_millis", "500"),
        ("limits.default_memory_mib", "512"),
        ("limits.default_request_cpu_millis", "100"),
        ("limits.default_request_memory_mib", "128"),
        ("max_dedicated_nodes", "0"),
        ("max_projects", "10"),
        ("max_members", "10"),
        ("k3s_version", ""),
        ("prices.currency", "EUR"),
        ("prices.base_monthly", "49.90"),
        ("prices.cpu_core_hour.unit_price", "0.0125"),
        ("prices.cpu_core_hour.included", "100"),
    ];
    let r = submit(&app, &mut root, "/admin/plans", &plan).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html(&r).contains("id=\"plan-servers-err\"") && html(&r).contains("value=\"Team\""));
    let mut good = plan.to_vec();
    good[4] = ("servers", "1");
    let r = submit(&app, &mut root, "/admin/plans", &good).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
    let r = submit(&app, &mut root, "/admin/plans/team", &good).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));

    let r = get(&app, &mut root, "/admin/audit?action=org.").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(html(&r).contains("org.limits.set") && !html(&r).contains("user.create"));
    let r = get(&app, &mut root, "/admin/audit?actor=ada@example.com").await;
    assert!(html(&r).contains("workspace.create"));
    let r = get(&app, &mut root, "/admin/audit?since=yesterday").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html(&r).contains("id=\"audit-since-err\""));
}

#[tokio::test]
async fn account_profile_password_sessions_and_tokens() {
    let app = TestApp::new();
    app.user("ada@example.com", false).await;
    let mut b = sign_in(&app, "ada@example.com").await;
    let r = get(&app, &mut b, "/account").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(html(&r).contains("this session"));

    let r = submit(&app, &mut b, "/account/profile", &[("name", "  ")]).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html(&r).contains("id=\"profile-name-err\""));
    let r = submit(&app, &mut b, "/account/profile", &[("name", "Ada L")]).await;
    let r = get(&app, &mut b, location(&r)).await;
    assert!(html(&r).contains("Your name was saved") && html(&r).contains("Ada L"));

    let r = submit(
        &app,
        &mut b,
        "/account/password",
        &[("current_password", "wrong"), ("new_password", PASSWORD)],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html(&r).contains("id=\"password-current_password-err\""));

    let r = submit(
        &app,
        &mut b,
        "/account/tokens",
        &[("name", "ci"), ("scope", "read-only"), ("days", "9999")],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        html(&r).contains("id=\"token-expires_in_days-err\"") && html(&r).contains("value=\"ci\"")
    );
    let r = submit(
        &app,
        &mut b,
        "/account/tokens",
        &[("name", "ci"), ("scope", "read-only"), ("days", "30")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let secret = html(&r)
        .split("value=\"kaas_")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("secret shown")
        .to_string();
    let r = get(&app, &mut b, "/account").await;
    assert!(html(&r).contains("ci") && !html(&r).contains(&secret));
    let tok = app
        .ops()
        .list_tokens(&actor(
            app.ops()
                .user_id_by_email("ada@example.com")
                .unwrap()
                .unwrap(),
            "ada@example.com",
        ))
        .unwrap();
    let r = submit(
        &app,
        &mut b,
        &format!("/account/tokens/{}/revoke", tok[0].id),
        &[],
    )
    .await;
    let r = get(&app, &mut b, location(&r)).await;
    assert!(html(&r).contains("The API token was revoked"));

    // Ending the current session signs this browser out.
    let sid = html(&r)
        .split("/account/sessions/")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap()
        .to_string();
    let r = submit(
        &app,
        &mut b,
        &format!("/account/sessions/{sid}/revoke"),
        &[],
    )
    .await;
    assert_eq!(location(&r), "/login");
    let r = get(&app, &mut b, "/account").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn pages_are_locked_down_and_assets_cached() {
    let app = TestApp::new();
    let (_, ws) = org_with_workspace(&app, "ada@example.com", "acme").await;
    let mut b = sign_in(&app, "ada@example.com").await;
    for path in ["/", "/account", &format!("/workspaces/{ws}"), "/login"] {
        let r = get(&app, &mut b, path).await;
        let csp = r.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.starts_with(
            "default-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'"
        ));
        assert_eq!(r.headers[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(r.headers[header::REFERRER_POLICY], "no-referrer");
        let page = html(&r);
        assert!(
            !page.contains("<style") && !page.contains(" style=") && !page.contains("<script>"),
            "{path}"
        );
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "no external requests: {path}"
        );
    }
    let v = kaas::web::assets::version();
    let r = get(&app, &mut b, &format!("/static/{v}/app.css")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    assert!(
        r.headers[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    let r = get(&app, &mut b, "/static/old/app.css").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let total: usize = ["app.css", "app.js"]
        .iter()
        .map(|f| {
            std::fs::metadata(format!("{}/static/{f}", env!("CARGO_MANIFEST_DIR")))
                .unwrap()
                .len() as usize
        })
        .sum();
    assert!(total < 60 * 1024, "CSS + JS = {total} bytes");
}

#[tokio::test]
async fn kubeconfig_needs_a_ready_workspace_and_stays_within_the_tenant() {
    let app = TestApp::new();
    let (_, ws) = org_with_workspace(&app, "ada@example.com", "acme").await;
    org_with_workspace(&app, "eve@example.com", "evil").await;
    let mut ada = sign_in(&app, "ada@example.com").await;
    let page = get(&app, &mut ada, &format!("/workspaces/{ws}")).await;
    let body = html(&page);
    assert!(body.contains("Access with kubectl"));
    assert!(body.contains("Available once the workspace is Ready"));
    assert!(body.contains("kubectl --kubeconfig acme-prod.kubeconfig get ns"));
    assert!(body.contains("cannot be revoked"));
    // A plan without dedicated nodes and none assigned: no node section.
    assert!(!body.contains("Dedicated nodes"));

    // Not ready: back to the workspace with the reason, no file.
    let r = submit(
        &app,
        &mut ada,
        &format!("/workspaces/{ws}/kubeconfig"),
        &[("lifetime_hours", "8")],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&r), format!("/workspaces/{ws}#kubeconfig"));
    assert!(r.headers.get(header::CONTENT_DISPOSITION).is_none());
    let page = get(&app, &mut ada, &format!("/workspaces/{ws}")).await;
    assert!(html(&page).contains("flash-error"), "{}", html(&page));
    assert!(html(&page).contains("not ready yet"));

    // A lifetime ops refuses is a flash too.
    let r = submit(
        &app,
        &mut ada,
        &format!("/workspaces/{ws}/kubeconfig"),
        &[("lifetime_hours", "9999")],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let page = get(&app, &mut ada, &format!("/workspaces/{ws}")).await;
    assert!(html(&page).contains("Certificate lifetime must be between 1 and"));

    // Without the CSRF token, and from another organization: refused.
    let r = post(
        &app,
        &mut ada,
        &format!("/workspaces/{ws}/kubeconfig"),
        &[("lifetime_hours", "8")],
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let mut eve = sign_in(&app, "eve@example.com").await;
    let r = submit(
        &app,
        &mut eve,
        &format!("/workspaces/{ws}/kubeconfig"),
        &[("lifetime_hours", "8")],
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Without a host, the nodes page explains instead of failing.
    let (_, _) = app.user("root@example.com", true).await;
    let mut root = sign_in(&app, "root@example.com").await;
    let r = get(&app, &mut root, "/admin/nodes").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(html(&r).contains("No node inventory yet"), "{}", html(&r));
    assert!(html(&r).contains("host cluster is not connected"));
    assert!(html(&r).contains("href=\"/admin/nodes\" aria-current=\"page\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedicated_nodes_and_kubeconfig_download_through_the_console() {
    let h = HostedApp::start_with_nodes(true, 3).await;
    let app = &h.app;
    app.user("root@example.com", true).await;
    let (ada_id, ada_token) = app.user("ada@example.com", false).await;
    org_with_workspace(app, "eve@example.com", "evil").await;
    let a = actor(ada_id, "ada@example.com");
    let o = app
        .ops()
        .create_org(
            &a,
            NewOrg {
                name: "acme".into(),
                display_name: None,
            },
        )
        .unwrap();
    let ws = app
        .ops()
        .create_workspace(
            &a,
            o.org.id,
            NewWorkspace {
                name: "prem".into(),
                plan: "premium".into(),
            },
        )
        .unwrap()
        .workspace
        .id;
    h.wait_ws(&bearer(&ada_token), &ws.to_string(), "Ready", |w| {
        w.is_some_and(|w| w["state"] == "Ready")
    })
    .await;

    let mut root = sign_in(app, "root@example.com").await;
    let mut ada = sign_in(app, "ada@example.com").await;
    let mut eve = sign_in(app, "eve@example.com").await;

    // The inventory: administrators only, once the host's node list arrived.
    for b in [&mut ada, &mut eve] {
        let r = get(app, b, "/admin/nodes").await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let page = loop {
        let r = get(app, &mut root, "/admin/nodes").await;
        assert_eq!(r.status, StatusCode::OK);
        if html(&r).contains("fakehost-node-3") {
            break html(&r).to_string();
        }
        assert!(std::time::Instant::now() < deadline, "{}", html(&r));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(page.contains("fakehost-node-1"));
    assert!(page.contains("control-plane"));
    assert!(page.contains("st-ready"));
    assert!(page.contains("labels</summary>"));
    assert!(!page.contains(&format!("href=\"/workspaces/{ws}\"")));

    // The workspace page offers agent nodes only, to administrators only.
    let r = get(app, &mut root, &format!("/workspaces/{ws}")).await;
    let body = html(&r);
    assert!(body.contains("Dedicated nodes"));
    assert!(body.contains("Assign node"));
    assert!(body.contains("<option value=\"fakehost-node-2\""));
    assert!(!body.contains("<option value=\"fakehost-node-1\""));
    let r = get(app, &mut ada, &format!("/workspaces/{ws}")).await;
    assert!(html(&r).contains("Dedicated nodes"));
    assert!(!html(&r).contains("Assign node"));

    // Assigning: CSRF, administrators only, refusals next to the field.
    let path = format!("/workspaces/{ws}/nodes");
    let r = post(app, &mut root, &path, &[("node", "fakehost-node-2")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = submit(app, &mut ada, &path, &[("node", "fakehost-node-2")]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = submit(app, &mut root, &path, &[("node", "fakehost-node-1")]).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html(&r).contains("id=\"nodes-node-err\""), "{}", html(&r));
    assert!(html(&r).contains("control plane"));
    assert!(app.ops().workspace_nodes(&shell(), ws).unwrap().is_empty());
    let r = submit(app, &mut root, &path, &[("node", "fakehost-node-2")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
    assert_eq!(location(&r), format!("/workspaces/{ws}#nodes"));
    let nodes = app.ops().workspace_nodes(&shell(), ws).unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].node, "fakehost-node-2");
    let r = get(app, &mut root, &format!("/workspaces/{ws}")).await;
    assert!(html(&r).contains("is now dedicated"));
    assert!(html(&r).contains("Release node"));
    assert!(html(&r).contains("pods on it are evicted"));
    assert!(!html(&r).contains("<option value=\"fakehost-node-2\""));
    let r = get(app, &mut root, "/admin/nodes").await;
    assert!(html(&r).contains(&format!("href=\"/workspaces/{ws}\">prem</a>")));
    let r = get(app, &mut ada, &format!("/workspaces/{ws}")).await;
    assert!(html(&r).contains("fakehost-node-2"));
    assert!(!html(&r).contains("Release node"));
    let r = get(app, &mut eve, &format!("/workspaces/{ws}")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Releasing.
    let release = format!("/workspaces/{ws}/nodes/fakehost-node-2/release");
    for b in [&mut ada, &mut eve] {
        let r = submit(app, b, &release, &[]).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
    }
    let r = post(app, &mut root, &release, &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(app.ops().workspace_nodes(&shell(), ws).unwrap().len(), 1);
    let r = submit(app, &mut root, &release, &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(app.ops().workspace_nodes(&shell(), ws).unwrap().is_empty());
    let r = submit(app, &mut root, &release, &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // The kubeconfig comes as a file, never a page.
    let kc = format!("/workspaces/{ws}/kubeconfig");
    let r = submit(app, &mut ada, &kc, &[("lifetime_hours", "1")]).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.headers[header::CONTENT_TYPE], "application/yaml");
    assert_eq!(
        r.headers[header::CONTENT_DISPOSITION],
        "attachment; filename=\"acme-prem.kubeconfig\""
    );
    assert_eq!(r.headers[header::CACHE_CONTROL], "no-store");
    let yaml = r.body.as_str().unwrap_or("");
    assert!(yaml.contains("apiVersion"), "{yaml}");
    assert!(yaml.contains("client-certificate-data"), "{yaml}");
    assert!(!yaml.contains("<html"));
    let r = submit(app, &mut eve, &kc, &[("lifetime_hours", "1")]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_warnings_are_shown_to_administrators() {
    let h = HostedApp::start_with_nodes(false, 2).await;
    let app = &h.app;
    app.user("root@example.com", true).await;
    let mut root = sign_in(app, "root@example.com").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let r = get(app, &mut root, "/admin/nodes").await;
        assert_eq!(r.status, StatusCode::OK);
        if html(&r).contains("The host cluster needs attention") {
            assert!(html(&r).contains("PodTolerationRestriction"));
            assert!(html(&r).contains("class=\"warn-banner\" role=\"alert\""));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", html(&r));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let r = get(app, &mut root, "/admin").await;
    assert!(html(&r).contains("The host cluster needs attention"));
    assert!(html(&r).contains("PodTolerationRestriction"));
}
