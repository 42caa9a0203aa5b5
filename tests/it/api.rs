//! The JSON API through the router: the tenancy journey, sessions and tokens, password
//! changes, invitation expiry, and every kind of bad input answered precisely with nothing
//! stored.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use jiff::SignedDuration;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn setup_link_creates_the_first_admin_once() {
    let app = TestApp::new();
    let token = app
        .ops()
        .prepare_setup()
        .unwrap()
        .expect("no users yet, so a token");
    let body = json!({"token": "wrong", "email": "root@example.com", "name": "Root", "password": PASSWORD});
    let r = app.call("POST", "/setup", &Auth::None, Some(body)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let weak = json!({"token": token, "email": "root@example.com", "name": "Root", "password": "password123"});
    let r = app.call("POST", "/setup", &Auth::None, Some(weak)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.field(), "password");

    let good =
        json!({"token": token, "email": "Root@Example.com", "name": "Root", "password": PASSWORD});
    let r = app
        .call("POST", "/setup", &Auth::None, Some(good.clone()))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["email"], "root@example.com");
    assert_eq!(r.body["platform_admin"], true);
    // Single use.
    let r = app.call("POST", "/setup", &Auth::None, Some(good)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(app.ops().prepare_setup().unwrap().is_none());
}

#[tokio::test]
async fn tenancy_journey_through_the_api() {
    let app = TestApp::new();
    let (_, admin) = app.user("admin@example.com", true).await;
    let (_, ada) = app.user("ada@example.com", false).await;
    let ada = bearer(&ada);

    let r = app
        .call(
            "POST",
            "/orgs",
            &ada,
            Some(json!({"name": "acme", "display_name": "Acme Inc"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["my_role"], "owner");
    let org = r.body["id"].as_str().unwrap().to_string();

    // Invite bob; he accepts by creating his account.
    let r = app
        .call(
            "POST",
            &format!("/orgs/{org}/invitations"),
            &ada,
            Some(json!({"email": "bob@example.com", "role": "member"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let inv_token = r.body["token"].as_str().unwrap().to_string();
    let r = app
        .call(
            "POST",
            "/invitations/lookup",
            &Auth::None,
            Some(json!({"token": inv_token})),
        )
        .await;
    assert_eq!(r.body["org_name"], "acme");
    assert_eq!(r.body["account_exists"], false);
    let r = app
        .call(
            "POST",
            "/invitations/accept",
            &Auth::None,
            Some(json!({"token": inv_token, "name": "Bob", "password": PASSWORD})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let bob_id = r.body["id"].as_str().unwrap().to_string();
    let r = app
        .call(
            "POST",
            "/invitations/accept",
            &Auth::None,
            Some(json!({"token": inv_token, "name": "Bob", "password": PASSWORD})),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "an invitation is single-use"
    );
    let bob = app.login("bob@example.com").await;

    // Workspace and project.
    let r = app
        .call(
            "POST",
            &format!("/orgs/{org}/workspaces"),
            &ada,
            Some(json!({"name": "prod", "plan": "starter"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["state"], "Pending");
    let ws = r.body["id"].as_str().unwrap().to_string();
    let r = app
        .call("POST", &format!("/workspaces/{ws}/projects"), &ada,
            Some(json!({"name": "web", "quota": {"cpu_millis": 1500, "memory_mib": 1024, "storage_gib": 5, "pods": 10}})))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let project = r.body["id"].as_str().unwrap().to_string();
    let r = app
        .call("POST", &format!("/workspaces/{ws}/projects"), &ada,
            Some(json!({"name": "api", "quota": {"cpu_millis": 1000, "memory_mib": 1024, "storage_gib": 1, "pods": 1}})))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("only 500 left"),
        "{:?}",
        r.body
    );

    // Bob sees the org but not the workspace until he is given a role.
    let r = app
        .call("GET", &format!("/workspaces/{ws}"), &bob, None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .call(
            "PUT",
            &format!("/projects/{project}/members/{bob_id}"),
            &ada,
            Some(json!({"role": "developer"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = app
        .call("GET", &format!("/workspaces/{ws}/projects"), &bob, None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    let r = app
        .call("DELETE", &format!("/projects/{project}"), &bob, None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // A plan change the project's quota (1.5 CPU) would not fit in is refused and changes
    // nothing (every other refusal is in `plans`).
    let mut tight = app
        .call("GET", "/plans/starter", &bearer(&admin), None)
        .await
        .body;
    tight["id"] = json!("tight");
    tight["quota"]["cpu_millis"] = json!(1000);
    tight["limits"]["default_cpu_millis"] = json!(500);
    let r = app
        .call("POST", "/plans", &bearer(&admin), Some(tight))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = app
        .call(
            "PATCH",
            &format!("/workspaces/{ws}"),
            &ada,
            Some(json!({"plan": "tight"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("the projects' quotas do not fit in plan \"tight\""),
        "{:?}",
        r.body
    );
    let r = app
        .call("GET", &format!("/workspaces/{ws}"), &ada, None)
        .await;
    assert_eq!(
        (&r.body["plan_id"], &r.body["generation"]),
        (&json!("starter"), &json!(1))
    );

    // A plan change to more room; it keeps the K3K mode and server storage of the
    // workspace's cluster.
    let mut roomier = app
        .call("GET", "/plans/premium", &bearer(&admin), None)
        .await
        .body;
    roomier["id"] = json!("roomier");
    roomier["storage_gib"] = json!(kaas::domain::plan::DEFAULT_SERVER_STORAGE_GIB);
    let r = app
        .call("POST", "/plans", &bearer(&admin), Some(roomier))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = app
        .call(
            "PATCH",
            &format!("/workspaces/{ws}"),
            &ada,
            Some(json!({"plan": "roomier"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["generation"], 2);

    // The audit log saw it all, and the org admin can filter it.
    let r = app
        .call(
            "GET",
            &format!("/audit?org={org}&action=workspace."),
            &ada,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let actions: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["workspace.plan.change", "workspace.create"]);
    let r = app
        .call("GET", "/audit?action=auth.login", &bearer(&admin), None)
        .await;
    assert_eq!(r.body["items"][0]["actor_label"], "bob@example.com");

    // Deleting moves to Deleting.
    let r = app
        .call("DELETE", &format!("/workspaces/{ws}"), &ada, None)
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(r.body["state"], "Deleting");
}

#[tokio::test]
async fn pagination_walks_every_item_once() {
    let app = TestApp::new();
    let (_, a) = app.user("a@example.com", false).await;
    let a = bearer(&a);
    app.ops()
        .set_org_limits(
            &shell(),
            {
                let r = app
                    .call("POST", "/orgs", &a, Some(json!({"name": "big"})))
                    .await;
                r.body["id"].as_str().unwrap().parse().unwrap()
            },
            kaas::domain::OrgLimits {
                max_workspaces: Some(100),
                max_members: None,
            },
        )
        .unwrap();
    let org = app.call("GET", "/orgs", &a, None).await.body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    for i in 0..7 {
        let r = app
            .call(
                "POST",
                &format!("/orgs/{org}/workspaces"),
                &a,
                Some(json!({"name": format!("ws-{i}"), "plan": "starter"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = cursor
            .as_ref()
            .map_or(String::new(), |c| format!("&cursor={c}"));
        let r = app
            .call(
                "GET",
                &format!("/orgs/{org}/workspaces?limit=3{q}"),
                &a,
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        for w in r.body["items"].as_array().unwrap() {
            seen.push(w["name"].as_str().unwrap().to_string());
        }
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, (0..7).map(|i| format!("ws-{i}")).collect::<Vec<_>>());
    let r = app
        .call(
            "GET",
            &format!("/orgs/{org}/workspaces?limit=abc"),
            &a,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.field(), "limit");
}

#[tokio::test]
async fn bad_input_gets_precise_errors_and_changes_nothing() {
    let app = TestApp::new();
    let (_, t) = app.user("a@example.com", false).await;
    let a = bearer(&t);
    let org = app.create_org(&a, "acme").await;

    // Malformed JSON.
    let req = Request::post("/api/v1/orgs")
        .header(header::AUTHORIZATION, format!("Bearer {t}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{\"name\": "))
        .unwrap();
    let r = app.raw(req).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "malformed_json")
    );
    // Wrong content type.
    let req = Request::post("/api/v1/orgs")
        .header(header::AUTHORIZATION, format!("Bearer {t}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("name=x"))
        .unwrap();
    let r = app.raw(req).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Oversize body (the test router allows 64 KiB).
    let big = json!({"name": "x".repeat(100_000)});
    let r = app.call("POST", "/orgs", &a, Some(big)).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
    // Unknown field, named — also nested.
    let r = app
        .call(
            "POST",
            "/orgs",
            &a,
            Some(json!({"name": "x", "colour": "red"})),
        )
        .await;
    assert_eq!(
        (r.status, r.code(), r.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, "unknown_field", "colour")
    );
    let r = app
        .call(
            "POST",
            &format!("/orgs/{org}/workspaces"),
            &a,
            Some(json!({"name": "w", "plan": "starter"})),
        )
        .await;
    let ws = r.body["id"].as_str().unwrap().to_string();
    let r = app
        .call("POST", &format!("/workspaces/{ws}/projects"), &a, Some(json!({"name": "p", "quota": {"cpu_millis": 1, "memory_mib": 1, "storage_gib": 1, "pods": 1, "gpus": 1}})))
        .await;
    assert_eq!((r.code(), r.field()), ("unknown_field", "quota.gpus"));
    // Wrong type, named.
    let r = app
        .call(
            "POST",
            &format!("/workspaces/{ws}/projects"),
            &a,
            Some(json!({"name": "p", "quota": {"cpu_millis": "lots"}})),
        )
        .await;
    assert_eq!((r.code(), r.field()), ("invalid", "quota.cpu_millis"));
    // Invalid names.
    for bad in ["Acme", "-x", "a_b", ""] {
        let r = app
            .call("POST", "/orgs", &a, Some(json!({"name": bad})))
            .await;
        assert_eq!(
            (r.status, r.field()),
            (StatusCode::UNPROCESSABLE_ENTITY, "name"),
            "{bad}"
        );
    }
    let r = app
        .call(
            "POST",
            &format!("/workspaces/{ws}/projects"),
            &a,
            Some(json!({"name": "kube-system"})),
        )
        .await;
    assert_eq!(r.field(), "name");
    // Duplicates.
    let r = app
        .call("POST", "/orgs", &a, Some(json!({"name": "acme"})))
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "conflict"));
    let r = app
        .call(
            "POST",
            &format!("/orgs/{org}/workspaces"),
            &a,
            Some(json!({"name": "w", "plan": "starter"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    // Unknown plan.
    let r = app
        .call(
            "POST",
            &format!("/orgs/{org}/workspaces"),
            &a,
            Some(json!({"name": "w2", "plan": "gold"})),
        )
        .await;
    assert_eq!(
        (r.status, r.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, "plan")
    );
    // Nothing of the failures was stored.
    let r = app.call("GET", "/orgs", &a, None).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    let r = app
        .call("GET", &format!("/orgs/{org}/workspaces"), &a, None)
        .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    let r = app
        .call("GET", &format!("/workspaces/{ws}/projects"), &a, None)
        .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 0);
    // Unknown route, malformed id.
    let r = app.call("GET", "/nope", &a, None).await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "not_found"));
    let r = app.call("GET", "/workspaces/org_123", &a, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn credentials_missing_wrong_or_expired() {
    let app = TestApp::new();
    let (_, t) = app.user("a@example.com", false).await;
    let r = app.call("GET", "/me", &Auth::None, None).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "unauthenticated")
    );
    assert!(r.headers.contains_key(header::WWW_AUTHENTICATE));
    let r = app.call("GET", "/me", &bearer("kaas_nope"), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = app.call("GET", "/me", &bearer(&t), None).await;
    assert_eq!(r.status, StatusCode::OK);
    app.clock.advance(SignedDuration::from_hours(31 * 24));
    let r = app.call("GET", "/me", &bearer(&t), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
}

#[tokio::test]
async fn sessions_need_csrf_expire_and_are_capped() {
    let app = TestApp::new();
    app.user("a@example.com", false).await;
    let s1 = app.login("a@example.com").await;
    let Auth::Cookie { cookie, csrf } = s1.clone() else {
        unreachable!()
    };
    // Reads need no CSRF token; writes do, and it must match.
    assert_eq!(
        app.call("GET", "/me", &s1, None).await.status,
        StatusCode::OK
    );
    let no_csrf = Auth::Cookie {
        cookie: cookie.clone(),
        csrf: None,
    };
    let r = app
        .call("POST", "/orgs", &no_csrf, Some(json!({"name": "x"})))
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "csrf"));
    let wrong = Auth::Cookie {
        cookie: cookie.clone(),
        csrf: Some("nope".into()),
    };
    let r = app
        .call("POST", "/orgs", &wrong, Some(json!({"name": "x"})))
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "csrf"));
    let r = app
        .call("POST", "/orgs", &s1, Some(json!({"name": "x"})))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert!(r.body["id"].is_string() && csrf.is_some());
    let r = app.call("GET", "/orgs", &no_csrf, None).await;
    assert_eq!(
        r.body["items"].as_array().unwrap().len(),
        1,
        "the failed writes stored nothing"
    );

    // At the cap (3) the oldest session ends.
    let s2 = app.login("a@example.com").await;
    let s3 = app.login("a@example.com").await;
    let s4 = app.login("a@example.com").await;
    assert_eq!(
        app.call("GET", "/me", &s1, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    for s in [&s2, &s3, &s4] {
        assert_eq!(app.call("GET", "/me", s, None).await.status, StatusCode::OK);
    }
    let r = app.call("GET", "/me/sessions", &s4, None).await;
    let list = r.body.as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list.iter().filter(|s| s["current"] == true).count(), 1);
    // Revoke one; log out another.
    let victim = list[0]["id"].as_str().unwrap();
    assert_eq!(
        app.call("DELETE", &format!("/me/sessions/{victim}"), &s4, None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.call("GET", "/me", &s2, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.call("POST", "/auth/logout", &s3, None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.call("GET", "/me", &s3, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Idle expiry (12 h by default).
    app.clock.advance(SignedDuration::from_hours(13));
    let r = app.call("GET", "/me", &s4, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn login_throttling_slows_guessing() {
    let app = TestApp::new();
    app.user("a@example.com", false).await;
    let wrong = json!({"email": "a@example.com", "password": "not the password"});
    for _ in 0..5 {
        let r = app
            .call("POST", "/auth/login", &Auth::None, Some(wrong.clone()))
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let right = json!({"email": "a@example.com", "password": PASSWORD});
    let r = app
        .call("POST", "/auth/login", &Auth::None, Some(right.clone()))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::TOO_MANY_REQUESTS, "throttled")
    );
    assert!(r.headers.contains_key(header::RETRY_AFTER));
    app.clock.advance(SignedDuration::from_secs(5));
    let r = app
        .call("POST", "/auth/login", &Auth::None, Some(right))
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "the real user gets in after the wait: {:?}",
        r.body
    );
    // Failed logins are audited, folded: the 1st, 2nd and 4th of the five got a record,
    // the last saying how many there were.
    let (_, admin) = app.user("root@example.com", true).await;
    let r = app
        .call("GET", "/audit?action=auth.login", &bearer(&admin), None)
        .await;
    let failures: Vec<&serde_json::Value> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"] == "failure")
        .collect();
    assert_eq!(failures.len(), 3, "{failures:?}");
    assert!(
        failures[0]["detail"]
            .as_str()
            .unwrap()
            .contains("4 failed attempts from this address this hour"),
        "{:?}",
        failures[0]
    );
}

#[tokio::test]
async fn over_long_sign_in_input_is_refused_before_it_is_kept_or_hashed() {
    let app = TestApp::new();
    app.user("a@example.com", false).await;
    let long_email = format!("{}@example.com", "a".repeat(5000));
    for (body, field) in [
        (json!({"email": long_email, "password": PASSWORD}), "email"),
        (
            json!({"email": "a@example.com", "password": "p".repeat(257)}),
            "password",
        ),
    ] {
        let r = app
            .call("POST", "/auth/login", &Auth::None, Some(body))
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
        assert_eq!(r.body["error"]["field"], field, "{:?}", r.body);
        let text = r.body.to_string();
        assert!(text.len() < 500, "the input is not echoed back: {text}");
    }
    // Neither counted against the account nor written to the audit log.
    for _ in 0..6 {
        let r = app
            .call(
                "POST",
                "/auth/login",
                &Auth::None,
                Some(json!({"email": long_email, "password": "x"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let r = app
        .call(
            "POST",
            "/auth/login",
            &Auth::None,
            Some(json!({"email": "a@example.com", "password": PASSWORD})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let (_, admin) = app.user("root@example.com", true).await;
    let r = app
        .call("GET", "/audit?action=auth.login", &bearer(&admin), None)
        .await;
    let failures = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"] == "failure")
        .count();
    assert_eq!(failures, 0, "{}", r.body);
}

#[tokio::test]
async fn api_tokens_are_shown_once_scoped_and_revocable() {
    let app = TestApp::new();
    let (_, t) = app.user("a@example.com", false).await;
    let a = bearer(&t);
    let signed_in = app.login("a@example.com").await;
    let r = app
        .call(
            "POST",
            "/me/tokens",
            &signed_in,
            Some(
                json!({"name": "ci", "scope": "read-only", "expires_in_days": 7,
                "current_password": PASSWORD}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let ro = r.body["secret"].as_str().unwrap().to_string();
    let id = r.body["id"].as_str().unwrap().to_string();
    assert!(ro.starts_with("kaas_"));
    let r = app.call("GET", "/me/tokens", &a, None).await;
    assert!(
        !r.body.to_string().contains(&ro),
        "secrets are never listed"
    );
    assert_eq!(
        app.call("GET", "/orgs", &bearer(&ro), None).await.status,
        StatusCode::OK
    );
    let r = app
        .call("POST", "/orgs", &bearer(&ro), Some(json!({"name": "x"})))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .call(
            "POST",
            "/me/tokens",
            &signed_in,
            Some(
                json!({"name": "x", "scope": "read-write", "expires_in_days": 9999,
                "current_password": PASSWORD}),
            ),
        )
        .await;
    assert_eq!(r.field(), "expires_in_days");
    assert_eq!(
        app.call("DELETE", &format!("/me/tokens/{id}"), &a, None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.call("GET", "/orgs", &bearer(&ro), None).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn limits_name_the_limit_and_the_count() {
    let app = TestApp::new();
    let (_, t) = app.user("a@example.com", false).await;
    let a = bearer(&t);
    let org = app
        .call("POST", "/orgs", &a, Some(json!({"name": "acme"})))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.ops()
        .set_org_limits(
            &shell(),
            org.parse().unwrap(),
            kaas::domain::OrgLimits {
                max_workspaces: Some(1),
                max_members: Some(2),
            },
        )
        .unwrap();
    app.call(
        "POST",
        &format!("/orgs/{org}/workspaces"),
        &a,
        Some(json!({"name": "one", "plan": "starter"})),
    )
    .await;
    let r = app
        .call(
            "POST",
            &format!("/orgs/{org}/workspaces"),
            &a,
            Some(json!({"name": "two", "plan": "starter"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1 of 1 workspaces"),
        "{:?}",
        r.body
    );
    app.call(
        "POST",
        &format!("/orgs/{org}/invitations"),
        &a,
        Some(json!({"email": "b@example.com", "role": "member"})),
    )
    .await;
    let r = app
        .call(
            "POST",
            &format!("/orgs/{org}/invitations"),
            &a,
            Some(json!({"email": "c@example.com", "role": "member"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1 members and 1 pending"),
        "{:?}",
        r.body
    );
}

#[tokio::test]
async fn the_last_owner_and_the_last_admin_stay() {
    let app = TestApp::new();
    let (admin_id, admin) = app.user("root@example.com", true).await;
    let (ada_id, t) = app.user("a@example.com", false).await;
    let a = bearer(&t);
    let org = app
        .call("POST", "/orgs", &a, Some(json!({"name": "acme"})))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app
        .call(
            "PATCH",
            &format!("/orgs/{org}/members/{ada_id}"),
            &a,
            Some(json!({"role": "member"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = app
        .call("DELETE", &format!("/orgs/{org}/members/{ada_id}"), &a, None)
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = app
        .call(
            "PATCH",
            &format!("/users/{admin_id}"),
            &bearer(&admin),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn openapi_document_describes_every_route() {
    let app = TestApp::new();
    let r = app.call("GET", "/openapi.json", &Auth::None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = r.body["paths"].as_object().unwrap();
    assert_eq!(r.body["servers"][0]["url"], "/api/v1");
    for p in [
        "/orgs",
        "/workspaces/{ws}",
        "/projects/{project}/members/{user}",
        "/audit",
        "/me/tokens",
    ] {
        assert!(paths.contains_key(p), "{p} missing from the document");
    }
}

#[tokio::test]
async fn health_and_metrics() {
    let app = TestApp::new();
    let req = Request::get("/readyz").body(Body::empty()).unwrap();
    let r = app.raw(req).await;
    assert_eq!(r.status, StatusCode::OK);
    // Status only, for anyone: what the host is and how it is set up is for administrators.
    assert_eq!(r.body, json!({"status": "ready"}));
    app.call("GET", "/me", &Auth::None, None).await;
    let r = app
        .raw(Request::get("/metrics").body(Body::empty()).unwrap())
        .await;
    let text = r.body.as_str().unwrap_or_default();
    assert!(text.contains("kaas_http_requests_total"), "{text}");
    assert!(text.contains("route=\"/api/v1/me\""), "{text}");
    // Reconcile errors by kind are exported before the first one happens.
    for kind in [
        "forbidden",
        "misconfigured",
        "conflict",
        "unavailable",
        "timeout",
    ] {
        let series = format!("kaas_reconcile_errors_total{{kind=\"{kind}\"}}");
        assert!(text.contains(&series), "{series} missing: {text}");
    }
}

#[tokio::test]
async fn a_password_change_ends_the_other_sessions_and_keeps_this_one() {
    let app = TestApp::new();
    app.user("a@example.com", false).await;
    let here = app.login("a@example.com").await;
    let elsewhere = app.login("a@example.com").await;
    let new_password = "a brand new passphrase";

    // The current password must be right; a refusal changes nothing.
    let r = app
        .call(
            "POST",
            "/me/password",
            &here,
            Some(json!({"current_password": "not it at all", "new_password": new_password})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(r.field(), "current_password");
    assert_eq!(
        app.call("GET", "/me", &elsewhere, None).await.status,
        StatusCode::OK
    );

    let r = app
        .call(
            "POST",
            "/me/password",
            &here,
            Some(json!({"current_password": PASSWORD, "new_password": new_password})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["sessions_ended"], 1, "{:?}", r.body);
    // This session goes on (writes too); the other one is signed out.
    assert_eq!(
        app.call("GET", "/me", &here, None).await.status,
        StatusCode::OK
    );
    let r = app
        .call("POST", "/orgs", &here, Some(json!({"name": "still-here"})))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = app.call("GET", "/me", &elsewhere, None).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "unauthenticated")
    );
    let r = app.call("GET", "/me/sessions", &here, None).await;
    assert_eq!(r.body.as_array().unwrap().len(), 1, "{:?}", r.body);
    // The old password no longer signs in; the new one does.
    let login = |password: &str| json!({"email": "a@example.com", "password": password});
    let r = app
        .call("POST", "/auth/login", &Auth::None, Some(login(PASSWORD)))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{:?}", r.body);
    let r = app
        .call(
            "POST",
            "/auth/login",
            &Auth::None,
            Some(login(new_password)),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
}

#[tokio::test]
async fn an_expired_invitation_cannot_be_looked_up_or_accepted() {
    let app = TestApp::new();
    let (_, ada) = app.user("ada@example.com", false).await;
    let ada = bearer(&ada);
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
    let expires: jiff::Timestamp = r.body["expires_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        expires,
        app.ops().now() + SignedDuration::from_hours(7 * 24),
        "a week, the default"
    );
    let pending = async |app: &TestApp| {
        let r = app
            .call("GET", &format!("/orgs/{org}/invitations"), &ada, None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        r.body.as_array().unwrap().len()
    };
    let lookup = json!({"token": token});
    let accept = json!({"token": token, "name": "Bob", "password": PASSWORD});

    // A minute before it expires it still works...
    app.clock.set(expires - SignedDuration::from_mins(1));
    let r = app
        .call(
            "POST",
            "/invitations/lookup",
            &Auth::None,
            Some(lookup.clone()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(pending(&app).await, 1);
    // ...and from the moment it expires it does not, for anyone, with a clear reason.
    app.clock.set(expires);
    for (path, body) in [
        ("/invitations/lookup", lookup),
        ("/invitations/accept", accept),
    ] {
        let r = app.call("POST", path, &Auth::None, Some(body)).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::NOT_FOUND, "not_found"),
            "{path}: {:?}",
            r.body
        );
        assert_eq!(
            r.body["error"]["message"],
            "invitation (the link was used, revoked or has expired) not found",
            "{path}"
        );
    }
    assert!(
        app.ops()
            .user_id_by_email("bob@example.com")
            .unwrap()
            .is_none()
    );
    // The organization no longer lists it as pending.
    assert_eq!(pending(&app).await, 0);
}

/// Invites `email` into `org` (as `by`) and accepts with a new account; returns its id.
async fn invited(app: &TestApp, by: &Auth, org: &str, email: &str) -> String {
    let r = app
        .call(
            "POST",
            &format!("/orgs/{org}/invitations"),
            by,
            Some(json!({"email": email, "role": "member"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let accept = json!({"token": r.body["token"], "name": "Someone", "password": PASSWORD});
    let r = app
        .call("POST", "/invitations/accept", &Auth::None, Some(accept))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body["id"].as_str().unwrap().to_string()
}

/// Creates plan `id`: the starter plan with room for `members` members.
async fn starter_with_members(app: &TestApp, root: &Auth, id: &str, members: u32) {
    let mut plan = app.call("GET", "/plans/starter", root, None).await.body;
    plan["id"] = json!(id);
    plan["display_name"] = json!(id);
    plan["max_members"] = json!(members);
    let r = app.call("POST", "/plans", root, Some(plan)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
}

#[tokio::test]
async fn project_members_fit_in_the_plans_member_limit_like_workspace_members() {
    let app = TestApp::new();
    let (_, root) = app.user("root@example.com", true).await;
    let root = bearer(&root);
    starter_with_members(&app, &root, "two-members", 2).await;
    starter_with_members(&app, &root, "one-member", 1).await;
    let (ada_id, ada) = app.user("ada@example.com", false).await;
    let ada = bearer(&ada);
    let org = app.create_org(&ada, "acme").await;
    let ws = app
        .create_workspace(&ada, &org, "prod", "two-members")
        .await;
    let r = app
        .call(
            "POST",
            &format!("/workspaces/{ws}/projects"),
            &ada,
            Some(json!({"name": "web"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let project = r.body["id"].as_str().unwrap().to_string();
    let ada_id = ada_id.to_string();
    let bob = invited(&app, &ada, &org, "bob@example.com").await;
    let carol = invited(&app, &ada, &org, "carol@example.com").await;

    for (scope, role) in [
        (format!("/projects/{project}"), "developer"),
        (format!("/workspaces/{ws}"), "workspace-viewer"),
    ] {
        let put = async |user: &str, role: &str| {
            app.call(
                "PUT",
                &format!("{scope}/members/{user}"),
                &ada,
                Some(json!({ "role": role })),
            )
            .await
        };
        for user in [&ada_id, &bob] {
            let r = put(user, role).await;
            assert_eq!(r.status, StatusCode::OK, "{scope}: {:?}", r.body);
        }
        // A third is refused, naming the limit and the count, and nothing is stored.
        let r = put(&carol, role).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::CONFLICT, "conflict"),
            "{scope}: {:?}",
            r.body
        );
        let what = if scope.starts_with("/projects") {
            "members per project"
        } else {
            "workspace members"
        };
        assert_eq!(
            r.body["error"]["message"],
            format!("member limit reached: plan \"two-members\" allows 2 {what}; 2 in use"),
        );
        let r = app
            .call("GET", &format!("{scope}/members"), &ada, None)
            .await;
        let ids: Vec<&str> = r
            .body
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["user_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids.len(), 2, "{scope}: {ids:?}");
        assert!(!ids.contains(&carol.as_str()), "{scope}: {ids:?}");
        // Members already in change roles at the limit.
        let r = put(&bob, role).await;
        assert_eq!(r.status, StatusCode::OK, "{scope}: {:?}", r.body);
    }

    // The workspace's members leave; the project's two still do not fit in one-member.
    for user in [&ada_id, &bob] {
        let r = app
            .call(
                "DELETE",
                &format!("/workspaces/{ws}/members/{user}"),
                &ada,
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        assert_eq!(r.body["user_id"], user.to_string());
        assert!(r.body["kubeconfigs_valid_until"].is_null(), "none issued");
    }
    let to_one = json!({"plan": "one-member"});
    let r = app
        .call(
            "PATCH",
            &format!("/workspaces/{ws}"),
            &ada,
            Some(to_one.clone()),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert_eq!(
        r.body["error"]["message"],
        "plan \"one-member\" allows 1 members per project; project web has 2"
    );
    let r = app
        .call(
            "DELETE",
            &format!("/projects/{project}/members/{bob}"),
            &ada,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = app
        .call("PATCH", &format!("/workspaces/{ws}"), &ada, Some(to_one))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["plan_id"], "one-member");
}

#[tokio::test]
async fn an_invitation_accepted_after_the_member_limit_was_lowered_is_refused() {
    let app = TestApp::new();
    let (_, root) = app.user("root@example.com", true).await;
    let root = bearer(&root);
    let (_, ada) = app.user("ada@example.com", false).await;
    let ada = bearer(&ada);
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
    let accept = json!({"token": r.body["token"], "name": "Bob", "password": PASSWORD});
    let limit = async |n: u32| {
        let r = app
            .call(
                "PUT",
                &format!("/orgs/{org}/limits"),
                &root,
                Some(json!({"max_workspaces": null, "max_members": n})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    };
    let members = async || {
        let r = app
            .call("GET", &format!("/orgs/{org}/members"), &ada, None)
            .await;
        r.body["items"].as_array().unwrap().len()
    };

    limit(1).await;
    let r = app
        .call(
            "POST",
            "/invitations/accept",
            &Auth::None,
            Some(accept.clone()),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "conflict"),
        "{:?}",
        r.body
    );
    assert_eq!(
        r.body["error"]["message"],
        "member limit reached: the organization allows 1 members; 1 in use"
    );
    assert_eq!(members().await, 1);
    // Nothing was kept: no account, and the invitation still works once there is room.
    let r = app
        .call(
            "POST",
            "/auth/login",
            &Auth::None,
            Some(json!({"email": "bob@example.com", "password": PASSWORD})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{:?}", r.body);
    limit(2).await;
    let r = app
        .call("POST", "/invitations/accept", &Auth::None, Some(accept))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(members().await, 2);
}
