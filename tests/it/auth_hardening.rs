//! Sign-in and credential hardening through the API router: throttling that concurrent
//! guesses cannot bypass, wrong current passwords throttled like sign-in, API tokens that
//! need the password, cannot mint tokens and end with a password change or reset, the
//! `Bearer` scheme in any case, and accounts made by accepting an invitation flagged for the
//! platform administrator. (A restart keeping the throttle, and `X-Forwarded-For` from
//! trusted proxies only, are tested against the real binary in `binary.rs`.)

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use jiff::SignedDuration;
use serde_json::{Value, json};

use crate::support::*;

const ADA: &str = "ada@example.com";
const NEW_PASSWORD: &str = "a brand new passphrase";

fn login_body(password: &str) -> Value {
    json!({"email": ADA, "password": password})
}

#[tokio::test]
async fn concurrent_wrong_passwords_get_no_more_than_the_free_allowance() {
    let app = TestApp::new();
    app.user(ADA, false).await;
    // All at the same instant: before the fix each passed the check before any failure was
    // counted, so every one of them was verified.
    let guesses = (0..40).map(|_| {
        app.call(
            "POST",
            "/auth/login",
            &Auth::None,
            Some(login_body("not the password at all")),
        )
    });
    let results = futures::future::join_all(guesses).await;
    let count = |s: StatusCode| results.iter().filter(|r| r.status == s).count();
    assert_eq!(
        (
            count(StatusCode::UNAUTHORIZED),
            count(StatusCode::TOO_MANY_REQUESTS)
        ),
        (5, 35),
        "five free guesses are verified, the rest refused unhashed"
    );
    // The right password waits too, and says how long.
    let r = app
        .call(
            "POST",
            "/auth/login",
            &Auth::None,
            Some(login_body(PASSWORD)),
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{:?}", r.body);
    assert!(r.headers.contains_key(header::RETRY_AFTER));
    app.clock.advance(SignedDuration::from_secs(2));
    let r = app
        .call(
            "POST",
            "/auth/login",
            &Auth::None,
            Some(login_body(PASSWORD)),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
}

#[tokio::test]
async fn wrong_current_passwords_are_throttled_like_sign_in() {
    let app = TestApp::new();
    app.user(ADA, false).await;
    let me = app.login(ADA).await;
    let change =
        |current: &str| Some(json!({"current_password": current, "new_password": NEW_PASSWORD}));
    for i in 0..5 {
        let r = app
            .call("POST", "/me/password", &me, change(&format!("guess {i}")))
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
        assert_eq!(r.field(), "current_password");
    }
    let r = app
        .call("POST", "/me/password", &me, change(PASSWORD))
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{:?}", r.body);
    assert!(r.headers.contains_key(header::RETRY_AFTER));
    // Token creation asks for the same password and shares the count; so does sign-in.
    let r = app
        .call(
            "POST",
            "/me/tokens",
            &me,
            Some(json!({"name": "ci", "scope": "read-only", "current_password": PASSWORD})),
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{:?}", r.body);
    let r = app
        .call(
            "POST",
            "/auth/login",
            &Auth::None,
            Some(login_body(PASSWORD)),
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{:?}", r.body);
    // After the wait the right password works.
    app.clock.advance(SignedDuration::from_secs(2));
    let r = app
        .call("POST", "/me/password", &me, change(PASSWORD))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
}

#[tokio::test]
async fn api_tokens_need_the_password_and_cannot_create_tokens() {
    let app = TestApp::new();
    let (_, token) = app.user(ADA, false).await;
    let me = app.login(ADA).await;
    let new_token = |password: Option<&str>| {
        let mut b = json!({"name": "ci", "scope": "read-write"});
        if let Some(p) = password {
            b["current_password"] = json!(p);
        }
        Some(b)
    };

    let r = app.call("POST", "/me/tokens", &me, new_token(None)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert!(
        r.body.to_string().contains("current_password"),
        "{:?}",
        r.body
    );
    let r = app
        .call(
            "POST",
            "/me/tokens",
            &me,
            new_token(Some("not my password")),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(r.field(), "current_password");

    // A token, even read-write and with the right password, cannot mint another.
    let r = app
        .call(
            "POST",
            "/me/tokens",
            &bearer(&token),
            new_token(Some(PASSWORD)),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("an API token cannot create API tokens"),
        "{:?}",
        r.body
    );

    let r = app
        .call("POST", "/me/tokens", &me, new_token(Some(PASSWORD)))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = app.call("GET", "/me/tokens", &me, None).await;
    assert_eq!(r.body.as_array().map(Vec::len), Some(2), "{:?}", r.body);
}

#[tokio::test]
async fn a_password_change_or_reset_revokes_every_api_token() {
    let app = TestApp::new();
    let (_, root) = app.user("root@example.com", true).await;
    let (ada_id, token) = app.user(ADA, false).await;
    let me = app.login(ADA).await;

    let r = app
        .call(
            "POST",
            "/me/password",
            &me,
            Some(json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body, json!({"sessions_ended": 0, "tokens_revoked": 1}));
    let r = app.call("GET", "/me", &bearer(&token), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "the old token is gone");
    assert_eq!(
        app.call("GET", "/me", &me, None).await.status,
        StatusCode::OK
    );

    // A reset by a platform administrator ends the sessions and the tokens.
    let r = app
        .call(
            "POST",
            "/me/tokens",
            &me,
            Some(json!({"name": "ci", "scope": "read-only", "current_password": NEW_PASSWORD})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let second = r.body["secret"].as_str().unwrap().to_string();
    let r = app
        .call(
            "POST",
            &format!("/users/{ada_id}/password"),
            &bearer(&root),
            Some(json!({"password": "a third long passphrase"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body, json!({"sessions_ended": 1, "tokens_revoked": 1}));
    assert_eq!(
        app.call("GET", "/me", &bearer(&second), None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.call("GET", "/me", &me, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    // The administrator's own token is untouched.
    assert_eq!(
        app.call("GET", "/me", &bearer(&root), None).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let app = TestApp::new();
    let (_, token) = app.user(ADA, false).await;
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let req = Request::get("/api/v1/me")
            .header(header::AUTHORIZATION, format!("{scheme} {token}"))
            .body(Body::empty())
            .unwrap();
        let r = app.raw(req).await;
        assert_eq!(r.status, StatusCode::OK, "{scheme}: {:?}", r.body);
        assert_eq!(r.body["email"], ADA);
    }
    let req = Request::get("/api/v1/me")
        .header(header::AUTHORIZATION, format!("Basic {token}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.raw(req).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn accounts_made_by_accepting_an_invitation_are_flagged_for_the_administrator() {
    let app = TestApp::new();
    let (_, root) = app.user("root@example.com", true).await;
    let (_, owner) = app.user(ADA, false).await;
    let owner = bearer(&owner);
    let org = app.create_org(&owner, "acme").await;
    // The organization's admin invites an address nobody registered and accepts the
    // invitation themselves with the token they were shown.
    let r = app
        .call(
            "POST",
            &format!("/orgs/{org}/invitations"),
            &owner,
            Some(json!({"email": "ceo@bigcorp.example", "role": "member"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let token = r.body["token"].as_str().unwrap().to_string();
    let r = app
        .call(
            "POST",
            "/invitations/accept",
            &Auth::None,
            Some(json!({"token": token, "name": "Not the CEO", "password": NEW_PASSWORD})),
        )
        .await;
    assert!(r.status.is_success(), "{:?}", r.body);

    let r = app.call("GET", "/users", &bearer(&root), None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let via = |email: &str| {
        r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["email"] == email)
            .map(|u| u["created_via"].clone())
            .unwrap()
    };
    assert_eq!(via("ceo@bigcorp.example"), "invitation");
    assert_eq!(via(ADA), "admin");
}
