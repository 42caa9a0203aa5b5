//! The HTML console through the router: each page's status and key content, form errors
//! next to their fields with the input kept, CSRF refusals, authorization (404 for other
//! tenants and for non-administrators), post-redirect-get with a flash, headers and assets.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use kaas::domain::{OrgId, OrgRole, ProjectRole, UserId, WorkspaceId};
use kaas::ops::invitations::{AcceptInvitation, NewInvitation};
use kaas::ops::orgs::NewOrg;
use kaas::ops::projects::{NewProject, ProjectRoleInput};
use kaas::ops::workspaces::NewWorkspace;
use kaas::ops::{Actor, AuthVia, Origin};

use crate::support::*;

mod audit;
mod auth_hardening;
mod billing;
mod kubeconfig;
mod limits;
mod mfa;
mod plans;
mod plumbing;

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

/// A kubeconfig download, checked to be a file (YAML, an attachment named `filename`, not
/// cached): its text.
fn kubeconfig_download<'a>(r: &'a Res, filename: &str) -> &'a str {
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.headers[header::CONTENT_TYPE], "application/yaml");
    assert_eq!(
        r.headers[header::CONTENT_DISPOSITION],
        format!("attachment; filename=\"{filename}\"").as_str()
    );
    assert_eq!(r.headers[header::CACHE_CONTROL], "no-store");
    r.body.as_str().unwrap_or("")
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

/// The owner of an organization made by [`org_with_workspace`].
fn owner(app: &TestApp, email: &str) -> Actor {
    let id = app.ops().user_id_by_email(email).unwrap().unwrap();
    actor(id, email)
}

/// A new user who joins `org` with `role` through an invitation from `by`.
async fn join(app: &TestApp, org: OrgId, by: &Actor, email: &str, role: OrgRole) -> UserId {
    let (id, _) = app.user(email, false).await;
    let inv = app
        .ops()
        .invite(
            by,
            org,
            NewInvitation {
                email: email.into(),
                role,
            },
        )
        .unwrap();
    let input = AcceptInvitation {
        token: inv.token,
        name: None,
        password: None,
    };
    app.ops()
        .accept_invitation(Some(&actor(id, email)), input, &Origin::local())
        .await
        .unwrap();
    id
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

    // Plan change (to a plan with the cluster's server storage; refusals are in `plans`)
    // and deletion (the name must be typed).
    let mut bigger = app.ops().get_plan(&shell(), "standard").unwrap();
    bigger.id = "bigger".into();
    bigger.display_name = "Bigger".into();
    bigger.storage_gib = kaas::domain::plan::DEFAULT_SERVER_STORAGE_GIB;
    app.ops().create_plan(&shell(), bigger).unwrap();
    let r = submit(
        &app,
        &mut b,
        &format!("{ws_url}/plan"),
        &[("plan", "bigger")],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = get(&app, &mut b, location(&r)).await;
    assert!(html(&r).contains("moves to plan Bigger"));
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
    // Bob holds a kubeconfig for three more hours: the admin is told so.
    {
        let tx = app.ops().store.write().unwrap();
        let mut u = kaas::store::records::get_user(&tx, bob_id)
            .unwrap()
            .unwrap();
        let until = app.ops().now() + jiff::SignedDuration::from_hours(3);
        u.kubeconfigs_valid_until = Some(until);
        kaas::store::records::update_user(&tx, &u).unwrap();
        tx.commit().unwrap();
    }
    let r = submit(
        &app,
        &mut ada,
        &format!("/orgs/{org}/members/{bob_id}/remove"),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = get(&app, &mut ada, location(&r)).await;
    let until = (app.ops().now() + jiff::SignedDuration::from_hours(3))
        .strftime("%Y-%m-%d %H:%M")
        .to_string();
    let tokens = (app.ops().now() + jiff::SignedDuration::from_mins(10))
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string();
    let page = html(&r);
    assert!(
        page.contains(&format!(
            "Kubeconfigs already issued to bob@example.com remain valid certificates until {until} UTC and their cluster tokens until {tokens} UTC at the latest, but no longer grant the removed role"
        )),
        "{page}"
    );
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
        "/admin/host".into(),
        format!("/orgs/{org}/audit"),
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
    // … and until when the cluster access already issued to them remains valid.
    let tokens = (app.ops().now() + jiff::SignedDuration::from_mins(10))
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string();
    assert!(
        html(&r).contains(&format!(
            "Cluster tokens already issued to x@example.com remain valid until {tokens} UTC at the latest"
        )),
        "{}",
        html(&r)
    );
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
    // The host Services tenants may open: every LoadBalancer also takes a node port.
    let mut services = good.clone();
    services.push(("services.node_ports", "1"));
    services.push(("services.load_balancers", "2"));
    let r = submit(&app, &mut root, "/admin/plans/team", &services).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        html(&r).contains("id=\"plan-services.load_balancers-err\""),
        "{}",
        html(&r)
    );
    let n = services.len();
    services[n - 2] = ("services.node_ports", "3");
    services[n - 1] = ("services.load_balancers", "1");
    let r = submit(&app, &mut root, "/admin/plans/team", &services).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
    let team = app.ops().get_plan(&shell(), "team").unwrap();
    assert_eq!(
        (team.services.node_ports, team.services.load_balancers),
        (3, 1)
    );

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
        &[
            ("name", "ci"),
            ("scope", "read-only"),
            ("days", "30"),
            ("current_password", PASSWORD),
        ],
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
        assert_eq!(r.headers[header::REFERRER_POLICY], "same-origin");
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
    let yaml = kubeconfig_download(&r, "acme-prem.kubeconfig");
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
    let r = get(app, &mut root, "/admin/host").await;
    assert_eq!(r.status, StatusCode::OK);
    let page = html(&r);
    assert!(page.contains("The host cluster needs attention"));
    assert!(page.contains(">Connected<") && page.contains("not enforced"));
    assert!(page.contains("installed"), "K3K CRDs");
}

#[tokio::test]
async fn organizations_are_renamed_and_deleted_by_typing_their_name() {
    let app = TestApp::new();
    let (org, _) = org_with_workspace(&app, "ada@example.com", "acme").await;
    org_with_workspace(&app, "eve@example.com", "evil").await;
    let ada_a = owner(&app, "ada@example.com");
    join(&app, org, &ada_a, "bob@example.com", OrgRole::Admin).await;
    join(&app, org, &ada_a, "cy@example.com", OrgRole::Member).await;
    let mut ada = sign_in(&app, "ada@example.com").await;
    let mut bob = sign_in(&app, "bob@example.com").await;
    let mut cy = sign_in(&app, "cy@example.com").await;
    let mut eve = sign_in(&app, "eve@example.com").await;
    let rename = format!("/orgs/{org}/rename");

    // The settings form: admins see it, with the current display name.
    let r = get(&app, &mut bob, &format!("/orgs/{org}")).await;
    assert!(html(&r).contains("action=\"/orgs/"));
    assert!(html(&r).contains("id=\"rename-display_name\""));
    assert!(!html(&r).contains("Delete organization"), "owners only");
    let r = get(&app, &mut cy, &format!("/orgs/{org}")).await;
    assert!(!html(&r).contains("id=\"rename-display_name\""));

    // A bad name is refused next to the field, as typed.
    let long = "x".repeat(101);
    let r = submit(&app, &mut bob, &rename, &[("display_name", &long)]).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html(&r).contains("id=\"rename-display_name-err\""));
    assert!(html(&r).contains(&format!("value=\"{long}\"")));
    assert!(html(&r).contains("at most 100 characters"));

    // Renamed: post-redirect-get with a flash; the name in the navigation follows.
    let r = submit(&app, &mut bob, &rename, &[("display_name", "Acme Corp")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&r), format!("/orgs/{org}"));
    let r = get(&app, &mut bob, location(&r)).await;
    assert!(html(&r).contains("The organization is now called Acme Corp."));
    assert!(html(&r).contains("<h1>Acme Corp</h1>"));

    // A member may not; another tenant does not even learn it exists.
    let r = submit(&app, &mut cy, &rename, &[("display_name", "Mine")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = submit(&app, &mut eve, &rename, &[("display_name", "Mine")]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = post(&app, &mut bob, &rename, &[("display_name", "No token")]).await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "the CSRF token is required"
    );
    assert_eq!(
        app.ops().get_org(&ada_a, org).unwrap().org.display_name,
        "Acme Corp"
    );

    // Deleting: not while a workspace is left, and only by typing the name.
    let delete = format!("/orgs/{org}/delete");
    let r = get(&app, &mut ada, &format!("/orgs/{org}")).await;
    assert!(html(&r).contains("Delete its 1 workspace first"));
    let r = submit(&app, &mut ada, &delete, &[("confirm", "acme")]).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(html(&r).contains("still has 1 workspace"));
    let r = submit(&app, &mut bob, &delete, &[("confirm", "acme")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "admins are not owners");
    let r = submit(&app, &mut eve, &delete, &[("confirm", "acme")]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let r = submit(&app, &mut ada, "/orgs", &[("name", "scratch")]).await;
    let scratch = location(&r).to_string();
    let r = get(&app, &mut ada, &scratch).await;
    assert!(html(&r).contains("To confirm, type the organization name"));
    let r = submit(
        &app,
        &mut ada,
        &format!("{scratch}/delete"),
        &[("confirm", "scrat")],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html(&r).contains("id=\"delete-confirm-err\""));
    assert!(html(&r).contains("value=\"scrat\""));
    let r = submit(
        &app,
        &mut ada,
        &format!("{scratch}/delete"),
        &[("confirm", "scratch")],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/");
    let r = get(&app, &mut ada, "/").await;
    assert!(html(&r).contains("Organization scratch was deleted"));
    let r = get(&app, &mut ada, &scratch).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn organization_admins_read_their_own_audit_log() {
    let app = TestApp::new();
    let (org, _) = org_with_workspace(&app, "ada@example.com", "acme").await;
    org_with_workspace(&app, "eve@example.com", "evil").await;
    join(
        &app,
        org,
        &owner(&app, "ada@example.com"),
        "cy@example.com",
        OrgRole::Member,
    )
    .await;
    app.user("root@example.com", true).await;
    let mut ada = sign_in(&app, "ada@example.com").await;
    let mut cy = sign_in(&app, "cy@example.com").await;
    let mut eve = sign_in(&app, "eve@example.com").await;
    let audit = format!("/orgs/{org}/audit");

    let r = get(&app, &mut ada, &format!("/orgs/{org}")).await;
    assert!(html(&r).contains(&format!("href=\"{audit}\"")));
    let r = get(&app, &mut ada, &audit).await;
    assert_eq!(r.status, StatusCode::OK);
    let page = html(&r);
    assert!(page.contains("workspace.create") && page.contains("org.invitation.create"));
    assert!(!page.contains("evil"), "only this organization's events");
    assert!(
        !page.contains("id=\"audit-org\""),
        "the organization is fixed"
    );
    assert!(page.contains(&format!("href=\"/orgs/{org}\" aria-current=\"page\"")));

    // Filters: by actor and action; bad input next to its field, kept.
    let r = get(&app, &mut ada, &format!("{audit}?action=org.invitation.")).await;
    assert!(html(&r).contains("org.invitation.create") && !html(&r).contains("workspace.create"));
    let r = get(&app, &mut ada, &format!("{audit}?actor=cy%40example.com")).await;
    assert!(html(&r).contains("invitation.accept") && !html(&r).contains("workspace.create"));
    let r = get(&app, &mut ada, &format!("{audit}?actor=cy")).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html(&r).contains("id=\"audit-actor-err\"") && html(&r).contains("value=\"cy\""));
    assert!(html(&r).contains("Audit log"));
    let r = get(&app, &mut ada, &format!("{audit}?until=31.12.2030")).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html(&r).contains("id=\"audit-until-err\""));

    // Members may not read it; other tenants do not learn it exists.
    let r = get(&app, &mut cy, &format!("/orgs/{org}")).await;
    assert!(!html(&r).contains(&format!("href=\"{audit}\"")));
    let r = get(&app, &mut cy, &audit).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = get(&app, &mut eve, &audit).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Administrators filter the whole log by organization name (or id).
    let mut root = sign_in(&app, "root@example.com").await;
    let r = get(&app, &mut root, "/admin/audit?org=acme").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(html(&r).contains("workspace.create") && !html(&r).contains(">evil<"));
    let r = get(&app, &mut root, &format!("/admin/audit?org={org}")).await;
    assert!(html(&r).contains("invitation.create"));
    let r = get(&app, &mut root, "/admin/audit?org=nope").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html(&r).contains("id=\"audit-org-err\"") && html(&r).contains("value=\"nope\""));
}

#[tokio::test]
async fn workspace_member_roles_change_in_place() {
    let app = TestApp::new();
    let (org, ws) = org_with_workspace(&app, "ada@example.com", "acme").await;
    org_with_workspace(&app, "eve@example.com", "evil").await;
    let bob = join(
        &app,
        org,
        &owner(&app, "ada@example.com"),
        "bob@example.com",
        OrgRole::Member,
    )
    .await;
    let mut ada = sign_in(&app, "ada@example.com").await;
    let mut eve = sign_in(&app, "eve@example.com").await;
    let members = format!("/workspaces/{ws}/members");
    let bob_s = bob.to_string();

    let r = submit(
        &app,
        &mut ada,
        &members,
        &[("user", ""), ("role", "workspace-viewer")],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html(&r).contains("id=\"member-user_id-err\""));

    let add = [("user", bob_s.as_str()), ("role", "workspace-viewer")];
    let r = submit(&app, &mut ada, &members, &add).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = get(&app, &mut ada, location(&r)).await;
    assert!(html(&r).contains("bob@example.com is now workspace-viewer"));
    // Each member's role is a small form of its own, preset to the current role.
    assert!(html(&r).contains(&format!(
        "<label class=\"sr-only\" for=\"role-{bob}\">Role of bob@example.com</label>"
    )));
    assert!(html(&r).contains("<option value=\"workspace-viewer\" selected>"));
    // … and a confirmed removal.
    assert!(html(&r).contains(&format!("action=\"/workspaces/{ws}/members/{bob}/remove\"")));
    assert!(html(&r).contains("Remove bob@example.com from workspace "));

    let change = [("user", bob_s.as_str()), ("role", "workspace-admin")];
    let r = submit(&app, &mut ada, &members, &change).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = get(&app, &mut ada, location(&r)).await;
    assert!(html(&r).contains("bob@example.com is now workspace-admin"));
    assert!(html(&r).contains("<option value=\"workspace-admin\" selected>"));

    let r = submit(&app, &mut eve, &members, &change).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let mut bob_b = sign_in(&app, "bob@example.com").await;
    let r = get(&app, &mut bob_b, &format!("/workspaces/{ws}")).await;
    assert!(
        html(&r).contains(&format!("for=\"role-{bob}\"")),
        "workspace admins manage members"
    );
}

#[tokio::test]
async fn project_quota_changes_and_deletion() {
    let app = TestApp::new();
    let (org, ws) = org_with_workspace(&app, "ada@example.com", "acme").await;
    org_with_workspace(&app, "eve@example.com", "evil").await;
    let ada_a = owner(&app, "ada@example.com");
    let bob = join(&app, org, &ada_a, "bob@example.com", OrgRole::Member).await;
    let p = app
        .ops()
        .create_project(
            &ada_a,
            ws,
            NewProject {
                name: "web".into(),
                quota: None,
            },
        )
        .unwrap();
    app.ops()
        .put_project_member(
            &ada_a,
            p.id,
            bob,
            ProjectRoleInput {
                role: ProjectRole::Admin,
            },
        )
        .unwrap();
    let mut ada = sign_in(&app, "ada@example.com").await;
    let mut bob = sign_in(&app, "bob@example.com").await;
    let mut eve = sign_in(&app, "eve@example.com").await;
    let page = format!("/projects/{}", p.id);
    let quota = format!("{page}/quota");

    let r = get(&app, &mut ada, &page).await;
    assert!(html(&r).contains("Reserve a quota"));
    assert!(html(&r).contains("This project may take up to 2 CPU · 4 GiB memory"));

    // Not a number, half a quota, more than the plan has: each said where it belongs.
    let r = submit(
        &app,
        &mut ada,
        &quota,
        &[
            ("cpu", "abc"),
            ("memory", "512"),
            ("storage", "1"),
            ("pods", "5"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html(&r).contains("id=\"quota-cpu-err\"") && html(&r).contains("value=\"abc\""));
    assert!(html(&r).contains("value=\"512\""));
    let r = submit(&app, &mut ada, &quota, &[("cpu", "500")]).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html(&r).contains("id=\"quota-quota-err\"") && html(&r).contains("Fill in all four"));
    let too_big = [
        ("cpu", "64000"),
        ("memory", "512"),
        ("storage", "1"),
        ("pods", "5"),
    ];
    let r = submit(&app, &mut ada, &quota, &too_big).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html(&r).contains("id=\"quota-quota-err\""), "{}", html(&r));
    assert!(html(&r).contains("value=\"64000\""));

    let good = [
        ("cpu", "500"),
        ("memory", "512"),
        ("storage", "1"),
        ("pods", "5"),
    ];
    let r = submit(&app, &mut ada, &quota, &good).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&r), page);
    let r = get(&app, &mut ada, &page).await;
    assert!(html(&r).contains("Quota of web set to 0.50 CPU · 512 MiB memory"));
    assert!(html(&r).contains("Change quota") && html(&r).contains("value=\"500\""));
    let r = submit(
        &app,
        &mut ada,
        &quota,
        &[("cpu", ""), ("memory", ""), ("storage", ""), ("pods", "")],
    )
    .await;
    let r = get(&app, &mut ada, location(&r)).await;
    assert!(html(&r).contains("web has no quota of its own now"));
    assert!(app.ops().get_project(&ada_a, p.id).unwrap().quota.is_none());

    // A project admin manages members, not the quota or the project itself.
    let r = get(&app, &mut bob, &page).await;
    assert!(!html(&r).contains("Reserve a quota") && !html(&r).contains("Delete project"));
    let r = submit(&app, &mut bob, &quota, &good).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = submit(&app, &mut eve, &quota, &good).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Deleting: the name must be typed.
    let delete = format!("{page}/delete");
    let r = submit(&app, &mut bob, &delete, &[("confirm", "web")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = submit(&app, &mut eve, &delete, &[("confirm", "web")]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = submit(&app, &mut ada, &delete, &[("confirm", "Web")]).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html(&r).contains("id=\"delete-confirm-err\"") && html(&r).contains("value=\"Web\""));
    let r = submit(&app, &mut ada, &delete, &[("confirm", "web")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&r), format!("/workspaces/{ws}#projects"));
    let r = get(&app, &mut ada, location(&r)).await;
    assert!(html(&r).contains("Project web was deleted"));
    assert!(html(&r).contains("No projects yet"));
    let r = get(&app, &mut ada, &page).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn unused_plans_are_deleted_and_used_ones_explain_why_not() {
    let app = TestApp::new();
    app.user("root@example.com", true).await;
    org_with_workspace(&app, "ada@example.com", "acme").await;
    let mut root = sign_in(&app, "root@example.com").await;
    let mut ada = sign_in(&app, "ada@example.com").await;

    let r = get(&app, &mut root, "/admin/plans").await;
    assert!(html(&r).contains("In use"));
    let r = get(&app, &mut root, "/admin/plans/starter").await;
    assert!(html(&r).contains("1 workspace uses this plan, so it cannot be deleted"));
    assert!(!html(&r).contains("/admin/plans/starter/delete"));
    let r = submit(&app, &mut root, "/admin/plans/starter/delete", &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/admin/plans/starter");
    let r = get(&app, &mut root, "/admin/plans/starter").await;
    assert!(html(&r).contains("flash-error") && html(&r).contains("retire it instead"));

    let r = get(&app, &mut root, "/admin/plans/standard").await;
    assert!(html(&r).contains("No workspace uses this plan"));
    assert!(html(&r).contains("action=\"/admin/plans/standard/delete\""));
    let r = submit(&app, &mut ada, "/admin/plans/standard/delete", &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "administrators only");
    let r = post(&app, &mut root, "/admin/plans/standard/delete", &[]).await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "the CSRF token is required"
    );
    let r = submit(&app, &mut root, "/admin/plans/standard/delete", &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/admin/plans");
    let r = get(&app, &mut root, "/admin/plans").await;
    assert!(html(&r).contains("Plan standard was deleted"));
    assert!(!html(&r).contains("href=\"/admin/plans/standard\""));
    let r = submit(&app, &mut root, "/admin/plans/standard/delete", &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn administrators_rename_users_and_see_the_host() {
    let app = TestApp::new();
    app.user("root@example.com", true).await;
    let (ada_id, _) = app.user("ada@example.com", false).await;
    let mut root = sign_in(&app, "root@example.com").await;
    let mut ada = sign_in(&app, "ada@example.com").await;
    let path = format!("/admin/users/{ada_id}/name");

    let r = submit(&app, &mut root, &path, &[("name", "   ")]).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html(&r).contains(&format!("id=\"name-{ada_id}-err\"")));
    assert!(html(&r).contains("Must not be empty"));
    assert!(html(&r).contains(&format!(
        "id=\"name-{ada_id}\" name=\"name\" type=\"text\" required maxlength=\"100\" value=\"   \""
    )));
    let r = submit(&app, &mut root, &path, &[("name", "Ada Lovelace")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = get(&app, &mut root, location(&r)).await;
    assert!(html(&r).contains("ada@example.com is now called Ada Lovelace."));
    let r = submit(&app, &mut ada, &path, &[("name", "Queen")]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // The host page says plainly when there is no host connection at all.
    let r = get(&app, &mut root, "/admin/host").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(html(&r).contains("No host cluster"));
    assert!(html(&r).contains("href=\"/admin/host\" aria-current=\"page\""));
    let r = get(&app, &mut ada, "/admin/host").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn pages_and_assets_are_gzip_compressed() {
    let app = TestApp::new();
    let (_, ws) = org_with_workspace(&app, "ada@example.com", "acme").await;
    let b = sign_in(&app, "ada@example.com").await;
    let v = kaas::web::assets::version();
    for path in [
        format!("/workspaces/{ws}"),
        "/".into(),
        format!("/static/{v}/app.css"),
        format!("/static/{v}/app.js"),
    ] {
        let req = Request::get(&path)
            .header(header::COOKIE, b.cookie_header())
            .header(header::ACCEPT_ENCODING, "gzip")
            .body(Body::empty())
            .unwrap();
        let r = app.raw(req).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_eq!(r.headers[header::CONTENT_ENCODING], "gzip", "{path}");
    }
    // A client that does not ask gets plain bytes.
    let req = Request::get(format!("/static/{v}/app.css"))
        .body(Body::empty())
        .unwrap();
    let r = app.raw(req).await;
    assert!(r.headers.get(header::CONTENT_ENCODING).is_none());
}

/// Every visible form control on a page has a label (`<label for>`, an enclosing `<label>` or
/// `aria-label`), and no id is used twice (a label would point at the wrong control).
fn assert_accessible(path: &str, page: &str) {
    let mut ids = std::collections::BTreeSet::new();
    for chunk in page.split(" id=\"").skip(1) {
        let id = chunk.split('"').next().unwrap_or("");
        assert!(
            ids.insert(id.to_string()),
            "{path}: id {id:?} is used twice"
        );
    }
    for tag in ["<input", "<select", "<textarea"] {
        for (at, _) in page.match_indices(tag) {
            let chunk = &page[at + tag.len()..];
            let attrs = chunk.split('>').next().unwrap_or("");
            if attrs.contains("type=\"hidden\"") || attrs.contains(" hidden") {
                continue;
            }
            if attrs.contains("aria-label=") {
                continue;
            }
            let before = &page[..at];
            let open_label = before.rfind("<label");
            if open_label.is_some() && open_label > before.rfind("</label>") {
                continue;
            }
            let id = attrs
                .split("id=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or_else(|| panic!("{path}: a control without an id: {tag}{attrs}"));
            assert!(
                page.contains(&format!("for=\"{id}\"")),
                "{path}: control {id:?} has no label"
            );
        }
    }
}

#[tokio::test]
async fn every_control_is_labelled_on_every_page() {
    let app = TestApp::new();
    // November is billed: its workspace is Ready all month and the month closes into an
    // invoice (the first close notes where billing starts).
    app.clock.set(at("2026-11-01T00:00:00Z"));
    app.ops().close_periods().unwrap();
    let (root_id, _) = app.user("root@example.com", true).await;
    let root_a = Actor {
        platform_admin: true,
        ..actor(root_id, "root@example.com")
    };
    let org = app
        .ops()
        .create_org(
            &root_a,
            NewOrg {
                name: "acme".into(),
                display_name: None,
            },
        )
        .unwrap()
        .org
        .id;
    let ws = app
        .ops()
        .create_workspace(
            &root_a,
            org,
            NewWorkspace {
                name: "prod".into(),
                plan: "premium".into(),
            },
        )
        .unwrap()
        .workspace
        .id;
    app.ops().record_observation(ws, &ready()).unwrap();
    join(&app, org, &root_a, "bob@example.com", OrgRole::Member).await;
    let p = app
        .ops()
        .create_project(
            &root_a,
            ws,
            NewProject {
                name: "web".into(),
                quota: None,
            },
        )
        .unwrap();
    app.clock.set(at("2026-12-01T00:05:00Z"));
    let invoices = app.ops().close_periods().unwrap();
    assert_eq!(invoices.len(), 1, "November's invoice");
    // An invitation for someone without an account yet.
    let invitation = app
        .ops()
        .invite(
            &root_a,
            org,
            NewInvitation {
                email: "carol@example.com".into(),
                role: OrgRole::Member,
            },
        )
        .unwrap()
        .token;
    let mut root = sign_in(&app, "root@example.com").await;
    let r = submit(
        &app,
        &mut root,
        &format!("/workspaces/{ws}/members"),
        &[
            (
                "user",
                &app.ops()
                    .user_id_by_email("bob@example.com")
                    .unwrap()
                    .unwrap()
                    .to_string(),
            ),
            ("role", "workspace-viewer"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = submit(
        &app,
        &mut root,
        "/account/tokens",
        &[
            ("name", "ci"),
            ("scope", "read-only"),
            ("current_password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_accessible("token created", html(&r));
    for path in [
        "/".to_string(),
        format!("/orgs/{org}"),
        format!("/orgs/{org}/audit"),
        format!("/workspaces/{ws}"),
        format!("/projects/{}", p.id),
        "/account".into(),
        "/admin".into(),
        "/admin/users".into(),
        "/admin/plans".into(),
        "/admin/plans/new".into(),
        "/admin/plans/premium".into(),
        "/admin/audit".into(),
        "/admin/nodes".into(),
        "/admin/host".into(),
        format!("/orgs/{org}/billing"),
        format!("/orgs/{org}/billing/account"),
        format!("/orgs/{org}/billing/draft"),
        format!("/invoices/{}", invoices[0]),
    ] {
        let r = get(&app, &mut root, &path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_accessible(&path, html(&r));
    }
    // The usage export's form comes back (with its errors) when the dates are wrong.
    let path = format!("/orgs/{org}/billing/usage?from=x&to=y&format=csv");
    let r = get(&app, &mut root, &path).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{path}");
    assert!(html(&r).contains("id=\"usage-from-err\""), "{}", html(&r));
    assert_accessible(&path, html(&r));
    // Pages before sign-in too: sign-in, an invitation, and the first-run setup of a new box.
    let mut anon = Browser::default();
    let r = get(&app, &mut anon, "/login").await;
    assert_accessible("/login", html(&r));
    let path = format!("/invite?token={invitation}");
    let r = get(&app, &mut anon, &path).await;
    assert_eq!(r.status, StatusCode::OK, "{path}");
    assert!(html(&r).contains("carol@example.com"), "{}", html(&r));
    assert_accessible("/invite", html(&r));
    let fresh = TestApp::new();
    let token = fresh.ops().prepare_setup().unwrap().expect("a new box");
    let r = get(
        &fresh,
        &mut Browser::default(),
        &format!("/setup?token={token}"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(html(&r).contains("name=\"password\""), "{}", html(&r));
    assert_accessible("/setup", html(&r));
}

#[tokio::test]
async fn project_members_share_the_workspace_card_and_the_plans_member_limit() {
    let app = TestApp::new();
    let mut plan = app.ops().get_plan(&shell(), "starter").unwrap();
    plan.id = "two-members".into();
    plan.display_name = "Two members".into();
    plan.max_members = 2;
    app.ops().create_plan(&shell(), plan).unwrap();
    let (org, _) = org_with_workspace(&app, "ada@example.com", "acme").await;
    let ada_a = owner(&app, "ada@example.com");
    let ws = app
        .ops()
        .create_workspace(
            &ada_a,
            org,
            NewWorkspace {
                name: "small".into(),
                plan: "two-members".into(),
            },
        )
        .unwrap()
        .workspace
        .id;
    let p = app
        .ops()
        .create_project(
            &ada_a,
            ws,
            NewProject {
                name: "web".into(),
                quota: None,
            },
        )
        .unwrap()
        .id;
    let bob = join(&app, org, &ada_a, "bob@example.com", OrgRole::Member).await;
    let carol = join(&app, org, &ada_a, "carol@example.com", OrgRole::Member).await;
    let mut ada = sign_in(&app, "ada@example.com").await;
    let members = format!("/projects/{p}/members");

    let r = get(&app, &mut ada, &format!("/projects/{p}")).await;
    assert!(html(&r).contains("No project members yet. Add organization members below"));
    for u in [ada_a.user_id, bob] {
        let u = u.to_string();
        let r = submit(
            &app,
            &mut ada,
            &members,
            &[("user", &u), ("role", "developer")],
        )
        .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
    }
    let r = get(&app, &mut ada, &format!("/projects/{p}")).await;
    let page = html(&r);
    // The workspace's card: a role form per member, preset, and a confirmed removal.
    assert!(page.contains(&format!(
        "<label class=\"sr-only\" for=\"role-{bob}\">Role of bob@example.com</label>"
    )));
    assert!(page.contains("<option value=\"developer\" selected>"));
    assert!(page.contains(&format!("action=\"/projects/{p}/members/{bob}/remove\"")));
    assert!(page.contains("Remove bob@example.com from project web?"));
    assert!(page.contains(&format!("<option value=\"{carol}\">")));

    // The plan has room for two: carol is refused, with the reason on the page.
    let carol_s = carol.to_string();
    let r = submit(
        &app,
        &mut ada,
        &members,
        &[("user", &carol_s), ("role", "viewer")],
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(
        html(&r).contains("Member limit reached: plan")
            && html(&r).contains("allows 2 members per project; 2 in use"),
        "{}",
        html(&r)
    );
    let listed = app.ops().list_project_members(&ada_a, p).unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|m| m.user_id != carol));
}
