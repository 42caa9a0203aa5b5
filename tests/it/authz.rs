//! The authorization matrix: every API operation × every kind of caller, each cell run
//! against a fixture in the state the row expects (see [`every_route_and_role_matches_the_matrix`]). The expectations are written out here by hand (not derived from
//! `domain::policy`), so a wrong rule, a missing check or a misrouted handler all fail.
//! A = allowed (the request got past authorization: not 401/403/404; a 503 for the absent
//! host counts, any other 5xx fails), F = 403, N = 404
//! (existence not leaked), U = 401, a = signed in (not 401/403; 404 allowed).

use std::collections::{BTreeMap, BTreeSet};

use axum::http::StatusCode;
use kaas::domain::*;
use kaas::store::records;
use serde_json::{Value, json};

use crate::support::*;

const ROLES: [&str; 11] = [
    "PA", "OW", "AD", "ME", "WA", "WV", "PJ", "PD", "PV", "XO", "AN",
];

/// Routes anyone may call: the credential is in the body.
const OPEN: [(&str, &str); 8] = [
    ("POST", "/setup"),
    ("POST", "/auth/login"),
    // The pending sign-in's token is the credential.
    ("POST", "/auth/login/code"),
    ("POST", "/invitations/lookup"),
    ("POST", "/invitations/accept"),
    // `kaas login`: the password, or the device code, is the credential (tests/it/shell.rs).
    ("POST", "/auth/token"),
    ("POST", "/auth/device"),
    ("POST", "/auth/device/token"),
];

//                roles:   PA OW AD ME WA WV PJ PD PV XO AN
const MATRIX: &[(&str, &str, &str)] = &[
    ("GET", "/me", "a a a a a a a a a a U"),
    ("PATCH", "/me", "A A A A A A A A A A U"),
    ("POST", "/me/password", "A A A A A A A A A A U"),
    ("GET", "/me/sessions", "A A A A A A A A A A U"),
    ("DELETE", "/me/sessions/{session}", "a a a a a a a a a a U"),
    ("GET", "/me/tokens", "A A A A A A A A A A U"),
    // The matrix calls with API tokens, and a token may not create tokens.
    ("POST", "/me/tokens", "F F F F F F F F F F U"),
    ("DELETE", "/me/tokens/{token}", "a a a a a a a a a a U"),
    ("GET", "/me/mfa", "A A A A A A A A A A U"),
    // Like token creation: an API token may not change how its owner signs in.
    ("POST", "/me/mfa/totp", "F F F F F F F F F F U"),
    ("POST", "/me/mfa/totp/confirm", "F F F F F F F F F F U"),
    ("POST", "/me/mfa/recovery-codes", "F F F F F F F F F F U"),
    ("POST", "/me/mfa/disable", "F F F F F F F F F F U"),
    ("POST", "/auth/logout", "a a a a a a a a a a U"),
    ("GET", "/orgs", "A A A A A A A A A A U"),
    ("POST", "/orgs", "A A A A A A A A A A U"),
    ("GET", "/orgs/{org}", "A A A A A A A A A N U"),
    ("PATCH", "/orgs/{org}", "A A A F F F F F F N U"),
    ("DELETE", "/orgs/{org}", "A A F F F F F F F N U"),
    ("PUT", "/orgs/{org}/limits", "A F F F F F F F F F U"),
    ("GET", "/orgs/{org}/members", "A A A A A A A A A N U"),
    (
        "PATCH",
        "/orgs/{org}/members/{victim}",
        "A A A F F F F F F N U",
    ),
    (
        "DELETE",
        "/orgs/{org}/members/{victim}",
        "A A A F F F F F F N U",
    ),
    ("GET", "/orgs/{org}/invitations", "A A A F F F F F F N U"),
    ("POST", "/orgs/{org}/invitations", "A A A F F F F F F N U"),
    (
        "DELETE",
        "/orgs/{org}/invitations/{inv}",
        "A A A F F F F F F N U",
    ),
    ("GET", "/orgs/{org}/workspaces", "A A A A A A A A A N U"),
    ("POST", "/orgs/{org}/workspaces", "A A A F F F F F F N U"),
    ("GET", "/workspaces/{ws}", "A A A N A A A A A N U"),
    ("PATCH", "/workspaces/{ws}", "A A A N F F F F F N U"),
    ("DELETE", "/workspaces/{ws}", "A A A N F F F F F N U"),
    (
        "POST",
        "/workspaces/{ws}/kubeconfig",
        "A A A N A A A A A N U",
    ),
    ("POST", "/workspaces/{ws}/token", "A A A N A A A A A N U"),
    ("GET", "/workspaces/{ws}/members", "A A A N A A A A A N U"),
    (
        "PUT",
        "/workspaces/{ws}/members/{victim}",
        "A A A N A F F F F N U",
    ),
    (
        "DELETE",
        "/workspaces/{ws}/members/{wv}",
        "A A A N A F F F F N U",
    ),
    ("GET", "/workspaces/{ws}/projects", "A A A N A A A A A N U"),
    ("POST", "/workspaces/{ws}/projects", "A A A N A F F F F N U"),
    ("GET", "/projects/{project}", "A A A N A A A A A N U"),
    ("PATCH", "/projects/{project}", "A A A N A F F F F N U"),
    ("DELETE", "/projects/{project}", "A A A N A F F F F N U"),
    (
        "GET",
        "/projects/{project}/members",
        "A A A N A A A A A N U",
    ),
    (
        "PUT",
        "/projects/{project}/members/{victim}",
        "A A A N A F A F F N U",
    ),
    (
        "DELETE",
        "/projects/{project}/members/{pv}",
        "A A A N A F A F F N U",
    ),
    ("GET", "/plans", "A A A A A A A A A A U"),
    ("POST", "/plans", "A F F F F F F F F F U"),
    ("GET", "/plans/{plan}", "A A A A A A A A A A U"),
    ("PUT", "/plans/{plan}", "A F F F F F F F F F U"),
    ("DELETE", "/plans/{plan}", "A F F F F F F F F F U"),
    ("GET", "/users", "A F F F F F F F F F U"),
    ("POST", "/users", "A F F F F F F F F F U"),
    ("GET", "/users/{victim}", "A F F F F F F F F F U"),
    ("PATCH", "/users/{victim}", "A F F F F F F F F F U"),
    ("POST", "/users/{victim}/password", "A F F F F F F F F F U"),
    // The victim has no second factor: 409 for the administrator, still allowed.
    ("DELETE", "/users/{victim}/mfa", "A F F F F F F F F F U"),
    ("GET", "/audit?org={org}", "A A A F F F F F F N U"),
    ("GET", "/audit", "A F F F F F F F F F U"),
    ("GET", "/audit/export?org={org}", "A A A F F F F F F N U"),
    ("GET", "/audit/export", "A F F F F F F F F F U"),
    ("GET", "/audit/verify", "A F F F F F F F F F U"),
    ("GET", "/host", "A F F F F F F F F F U"),
    // Identity providers: none is stored in the fixture (404 for the administrator), and
    // the test app runs no single sign-on (503 on adding one).
    ("GET", "/sso/providers", "A F F F F F F F F F U"),
    ("POST", "/sso/providers", "A F F F F F F F F F U"),
    ("GET", "/sso/providers/{provider}", "a F F F F F F F F F U"),
    ("PUT", "/sso/providers/{provider}", "a F F F F F F F F F U"),
    (
        "DELETE",
        "/sso/providers/{provider}",
        "a F F F F F F F F F U",
    ),
    ("GET", "/nodes", "a F F F F F F F F F U"),
    ("GET", "/workspaces/{ws}/nodes", "A A A N A A A A A N U"),
    ("POST", "/workspaces/{ws}/nodes", "A F F F F F F F F F U"),
    (
        "DELETE",
        "/workspaces/{ws}/nodes/{node}",
        "a F F F F F F F F F U",
    ),
    ("GET", "/orgs/{org}/billing", "A A A F F F F F F N U"),
    (
        "GET",
        "/orgs/{org}/billing/account",
        "A A A F F F F F F N U",
    ),
    (
        "PUT",
        "/orgs/{org}/billing/account",
        "A A F F F F F F F N U",
    ),
    ("GET", "/orgs/{org}/invoices", "A A A F F F F F F N U"),
    ("GET", "/orgs/{org}/invoices/draft", "A A A F F F F F F N U"),
    (
        "GET",
        "/orgs/{org}/usage?from=2026-09-01T00:00:00Z&until=2026-10-02T00:00:00Z",
        "A A A F F F F F F N U",
    ),
    ("GET", "/invoices/{invoice}", "A A A F F F F F F N U"),
    ("POST", "/invoices/{invoice}/void", "A F F F F F F F F F U"),
];

struct Fixture {
    app: TestApp,
    tokens: BTreeMap<&'static str, String>,
    vars: BTreeMap<&'static str, String>,
}

async fn fixture() -> Fixture {
    let app = TestApp::new();
    let mut tokens = BTreeMap::new();
    let mut ids = BTreeMap::new();
    for role in &ROLES[..10] {
        let (id, t) = app
            .user(
                &format!("{}@example.com", role.to_lowercase()),
                *role == "PA",
            )
            .await;
        tokens.insert(*role, t);
        ids.insert(*role, id);
    }
    let (victim, _) = app.user("victim@example.com", false).await;
    let ow = bearer(&tokens["OW"]);
    let org: OrgId = app
        .call("POST", "/orgs", &ow, Some(json!({"name": "acme"})))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    app.call(
        "POST",
        "/orgs",
        &bearer(&tokens["XO"]),
        Some(json!({"name": "other"})),
    )
    .await;
    let ws: WorkspaceId = app
        .call(
            "POST",
            &format!("/orgs/{org}/workspaces"),
            &ow,
            Some(json!({"name": "prod", "plan": "starter"})),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let project: ProjectId = app
        .call(
            "POST",
            &format!("/workspaces/{ws}/projects"),
            &ow,
            Some(json!({"name": "web"})),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let inv = app
        .call(
            "POST",
            &format!("/orgs/{org}/invitations"),
            &ow,
            Some(json!({"email": "new@example.com", "role": "member"})),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let now = app.ops().now();
    let tx = app.ops().store.write().unwrap();
    let member = |user: UserId, role| Membership {
        org_id: org,
        user_id: user,
        role,
        joined_at: now,
    };
    records::put_member(&tx, &member(ids["AD"], OrgRole::Admin)).unwrap();
    for r in ["ME", "WA", "WV", "PJ", "PD", "PV"] {
        records::put_member(&tx, &member(ids[r], OrgRole::Member)).unwrap();
    }
    records::put_member(&tx, &member(victim, OrgRole::Member)).unwrap();
    for (r, role) in [("WA", WorkspaceRole::Admin), ("WV", WorkspaceRole::Viewer)] {
        records::put_member(
            &tx,
            &WorkspaceMember {
                workspace_id: ws,
                user_id: ids[r],
                role,
                added_at: now,
            },
        )
        .unwrap();
    }
    for (r, role) in [
        ("PJ", ProjectRole::Admin),
        ("PD", ProjectRole::Developer),
        ("PV", ProjectRole::Viewer),
    ] {
        records::put_member(
            &tx,
            &ProjectMember {
                project_id: project,
                user_id: ids[r],
                role,
                added_at: now,
            },
        )
        .unwrap();
    }
    tx.commit().unwrap();
    // A finalized invoice: the workspace runs until the month closes.
    app.ops().close_periods().unwrap();
    app.ops()
        .record_observation(
            ws,
            &kaas::ops::reconcile::Observation {
                state: WorkspaceState::Ready,
                phase: Some("Ready".into()),
                message: String::new(),
                applied_generation: None,
            },
        )
        .unwrap();
    app.clock.set("2026-10-01T01:00:00Z".parse().unwrap());
    let invoice = app.ops().close_periods().unwrap()[0].to_string();
    let pa_token_id = app
        .call("GET", "/me/tokens", &bearer(&tokens["PA"]), None)
        .await
        .body[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let vars = BTreeMap::from([
        ("{org}", org.to_string()),
        ("{ws}", ws.to_string()),
        ("{project}", project.to_string()),
        ("{inv}", inv),
        ("{victim}", victim.to_string()),
        ("{wv}", ids["WV"].to_string()),
        ("{pv}", ids["PV"].to_string()),
        ("{plan}", "standard".to_string()),
        ("{node}", "agent-1".to_string()),
        ("{session}", SessionId::generate().to_string()),
        ("{token}", pa_token_id),
        ("{invoice}", invoice),
        ("{provider}", "corp".to_string()),
    ]);
    Fixture { app, tokens, vars }
}

fn body_for(method: &str, path: &str) -> Option<Value> {
    let standard = serde_json::to_value(kaas::domain::plan::default_plans().remove(1)).unwrap();
    let mut gold = serde_json::to_value(kaas::domain::plan::default_plans().remove(0)).unwrap();
    gold["id"] = json!("gold");
    let b = match (method, path) {
        ("PATCH", "/me") => json!({"name": "Renamed"}),
        ("POST", "/me/password") => {
            json!({"current_password": PASSWORD, "new_password": "another long passphrase"})
        }
        ("POST", "/me/tokens") => {
            json!({"name": "t", "scope": "read-only", "current_password": PASSWORD})
        }
        ("POST", "/orgs") => json!({"name": "neworg"}),
        ("PATCH", "/orgs/{org}") => json!({"display_name": "Acme"}),
        ("PUT", "/orgs/{org}/limits") => json!({"max_workspaces": 5, "max_members": 9}),
        ("PATCH", "/orgs/{org}/members/{victim}") => json!({"role": "admin"}),
        ("POST", "/orgs/{org}/invitations") => json!({"email": "z@example.com", "role": "member"}),
        ("POST", "/orgs/{org}/workspaces") => json!({"name": "dev", "plan": "starter"}),
        ("PATCH", "/workspaces/{ws}") => json!({"plan": "standard"}),
        ("POST", "/workspaces/{ws}/kubeconfig") => json!({"lifetime_hours": 1}),
        ("POST", "/workspaces/{ws}/nodes") => json!({"node": "agent-1"}),
        ("PUT", "/workspaces/{ws}/members/{victim}") => json!({"role": "workspace-viewer"}),
        ("POST", "/workspaces/{ws}/projects") => json!({"name": "api"}),
        ("PATCH", "/projects/{project}") => {
            json!({"quota": {"cpu_millis": 100, "memory_mib": 100, "storage_gib": 1, "pods": 1}})
        }
        ("PUT", "/projects/{project}/members/{victim}") => json!({"role": "viewer"}),
        ("POST", "/plans") => gold,
        ("PUT", "/plans/{plan}") => standard,
        ("POST", "/users") => {
            json!({"email": "fresh@example.com", "name": "Fresh", "password": PASSWORD})
        }
        ("PATCH", "/users/{victim}") => json!({"name": "V"}),
        ("POST", "/me/mfa/totp" | "/me/mfa/recovery-codes" | "/me/mfa/disable") => {
            json!({"current_password": PASSWORD})
        }
        ("POST", "/me/mfa/totp/confirm") => json!({"code": "000000"}),
        ("POST", "/users/{victim}/password") => json!({"password": "another long passphrase"}),
        ("PUT", "/orgs/{org}/billing/account") => {
            json!({"name": "Acme", "currency": "EUR", "invoice_prefix": "ACME"})
        }
        ("POST", "/invoices/{invoice}/void") => json!({"reason": "issued twice"}),
        ("POST", "/sso/providers") => json!({"id": "web", "name": "Web", "client_id": "kaas",
            "issuer": "https://idp.example.com", "client_secret": "s"}),
        ("PUT", "/sso/providers/{provider}") => {
            json!({"name": "Web", "issuer": "https://idp.example.com", "client_id": "kaas"})
        }
        _ => return None,
    };
    Some(b)
}

fn meets(expect: &str, status: StatusCode) -> bool {
    let s = status.as_u16();
    match expect {
        "A" => ![401, 403, 404].contains(&s) && (s < 500 || s == 503),
        "a" => ![401, 403].contains(&s) && (s < 500 || s == 503),
        "F" => s == 403,
        "N" => s == 404,
        "U" => s == 401,
        _ => false,
    }
}

#[tokio::test]
async fn every_route_and_role_matches_the_matrix() {
    // A refused request changes nothing, and neither does a GET, so those cells share one
    // fixture (if a refusal wrongly went through, that cell fails anyway). Every write that is
    // expected to get through runs on a fresh fixture, so it cannot hide or cause another
    // cell's result: 147 fixtures instead of 693.
    let shared = fixture().await;
    let mut failures = Vec::new();
    for (method, template, row) in MATRIX {
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells.len(), ROLES.len(), "row {method} {template}");
        for (role, expect) in ROLES.iter().zip(cells) {
            let fresh;
            let f = if *method != "GET" && matches!(expect, "A" | "a") {
                fresh = fixture().await;
                &fresh
            } else {
                &shared
            };
            let mut path = template.to_string();
            for (k, v) in &f.vars {
                path = path.replace(k, v);
            }
            let auth = match *role {
                "AN" => Auth::None,
                r => bearer(&f.tokens[r]),
            };
            let r = f
                .app
                .call(
                    method,
                    &path,
                    &auth,
                    body_for(method, template.split('?').next().unwrap_or(template)),
                )
                .await;
            if !meets(expect, r.status) {
                failures.push(format!(
                    "{method} {template} as {role}: expected {expect}, got {} {}",
                    r.status, r.body
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} cells wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn the_matrix_covers_every_operation_in_the_api() {
    let app = TestApp::new();
    let doc = app
        .call("GET", "/openapi.json", &Auth::None, None)
        .await
        .body;
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert((
                method.to_uppercase(),
                path.trim_start_matches("/api/v1").to_string(),
            ));
        }
    }
    let normalise = |p: &str| {
        let p = p.split('?').next().unwrap_or(p).to_string();
        // The document names path parameters after the route; the matrix after fixtures.
        p.replace("{victim}", "{user}")
            .replace("{wv}", "{user}")
            .replace("{pv}", "{user}")
            .replace("{inv}", "{id}")
            .replace("{invoice}", "{id}")
            .replace("{session}", "{id}")
            .replace("{token}", "{id}")
    };
    let mut tested: BTreeSet<(String, String)> = MATRIX
        .iter()
        .map(|(m, p, _)| (m.to_string(), normalise(p)))
        .collect();
    tested.extend(OPEN.iter().map(|(m, p)| (m.to_string(), p.to_string())));
    let missing: Vec<_> = documented.difference(&tested).collect();
    let stale: Vec<_> = tested.difference(&documented).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "not in the matrix: {missing:?}; not in the API: {stale:?}"
    );
}

/// The open routes refuse bad credentials themselves.
#[tokio::test]
async fn open_routes_check_their_own_credentials() {
    let f = fixture().await;
    let r = f
        .app
        .call(
            "POST",
            "/invitations/lookup",
            &Auth::None,
            Some(json!({"token": "nope"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = f
        .app
        .call(
            "POST",
            "/auth/login",
            &Auth::None,
            Some(json!({"email": "ow@example.com", "password": "wrong password!"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = f
        .app
        .call(
            "POST",
            "/auth/token",
            &Auth::None,
            Some(json!({"email": "ow@example.com", "password": "wrong password!"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = f
        .app
        .call(
            "POST",
            "/setup",
            &Auth::None,
            Some(json!({"token": "x", "email": "a@b.co", "name": "A", "password": PASSWORD})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}
