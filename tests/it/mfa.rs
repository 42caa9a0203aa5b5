//! Two-step sign-in through the JSON API: setting it up with a computed TOTP code, the
//! sign-in's second step (no session before it), a replayed code and a reused recovery code
//! refused, wrong codes under the password throttle, `[mfa] require` forcing enrolment at
//! the next sign-in, an administrator's audited reset, and API tokens unaffected.

use axum::http::{StatusCode, header};
use kaas::domain::mfa::MfaRequirement;
use kaas::domain::mfa::{code_at_step, secret_from_typed, step_of};
use kaas::ops::Settings;
use serde_json::{Value, json};

use crate::support::*;

const ADA: &str = "ada@example.com";

fn login_body() -> Option<Value> {
    Some(json!({"email": ADA, "password": PASSWORD}))
}

/// The code an authenticator app with `secret` shows at the app's current time.
fn code_now(app: &TestApp, secret: &[u8]) -> String {
    let now = u64::try_from(app.ops().now().as_second()).unwrap();
    code_at_step(secret, step_of(now)).unwrap()
}

fn next_step(app: &TestApp) {
    app.clock.advance(jiff::SignedDuration::from_secs(30));
}

/// Sets up two-step sign-in for `email` from a password session; the secret and the
/// recovery codes.
async fn enrol(app: &TestApp, email: &str) -> (Vec<u8>, Vec<String>) {
    let me = app.login(email).await;
    let r = app
        .call(
            "POST",
            "/me/mfa/totp",
            &me,
            Some(json!({"current_password": PASSWORD})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert!(
        r.body["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/kaas:")
    );
    let secret = secret_from_typed(r.body["secret"].as_str().unwrap()).unwrap();
    let r = app
        .call(
            "POST",
            "/me/mfa/totp/confirm",
            &me,
            Some(json!({"code": code_now(app, &secret)})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let codes: Vec<String> = r.body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(codes.len(), 10);
    (secret, codes)
}

/// The password step: must be 202 with a pending token and no cookie.
async fn password_step(app: &TestApp) -> Value {
    let r = app
        .call("POST", "/auth/login", &Auth::None, login_body())
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert!(
        r.headers.get(header::SET_COOKIE).is_none(),
        "no session before the second factor"
    );
    r.body
}

async fn code_step(app: &TestApp, pending: &Value, code: &str) -> Res {
    app.call(
        "POST",
        "/auth/login/code",
        &Auth::None,
        Some(json!({"pending_token": pending["pending_token"], "code": code})),
    )
    .await
}

fn cookie_of(r: &Res) -> Auth {
    let set = r.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap();
    Auth::Cookie {
        cookie: set.split(';').next().unwrap().to_string(),
        csrf: r.body["csrf_token"].as_str().map(str::to_string),
    }
}

#[tokio::test]
async fn sign_in_takes_a_code_after_the_password_and_a_replayed_code_is_refused() {
    let app = TestApp::new();
    let (_, token) = app.user(ADA, false).await;
    let (secret, _) = enrol(&app, ADA).await;

    // The code that confirmed the set-up cannot sign in: its step is used.
    let pending = password_step(&app).await;
    assert_eq!(pending["second_factor"], "code");
    let r = code_step(&app, &pending, &code_now(&app, &secret)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(r.field(), "code");
    assert!(r.body.to_string().contains("already used"), "{:?}", r.body);

    next_step(&app);
    let code = code_now(&app, &secret);
    let r = code_step(&app, &pending, &code).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let me = cookie_of(&r);
    let r = app.call("GET", "/me", &me, None).await;
    assert_eq!(r.status, StatusCode::OK);

    // The pending token is spent; a new sign-in cannot reuse the code either.
    let r = code_step(&app, &pending, &code).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{:?}", r.body);
    let again = password_step(&app).await;
    let r = code_step(&app, &again, &code).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);

    // A wrong code, and a pending token that never existed.
    let r = code_step(&app, &again, "000000").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = code_step(&app, &json!({"pending_token": "forged"}), &code).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // API tokens are not affected by the second factor.
    let r = app.call("GET", "/me", &bearer(&token), None).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app.call("GET", "/me/mfa", &bearer(&token), None).await;
    assert_eq!(r.body["enabled"], true);
    // …but cannot change it.
    let r = app
        .call(
            "POST",
            "/me/mfa/disable",
            &bearer(&token),
            Some(json!({"current_password": PASSWORD})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
}

#[tokio::test]
async fn a_pending_sign_in_expires() {
    let app = TestApp::new();
    app.user(ADA, false).await;
    let (secret, _) = enrol(&app, ADA).await;
    let pending = password_step(&app).await;
    app.clock.advance(jiff::SignedDuration::from_secs(6 * 60));
    let r = code_step(&app, &pending, &code_now(&app, &secret)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{:?}", r.body);
}

#[tokio::test]
async fn a_recovery_code_signs_in_once() {
    let app = TestApp::new();
    app.user(ADA, false).await;
    let (_, codes) = enrol(&app, ADA).await;

    let pending = password_step(&app).await;
    let r = code_step(&app, &pending, &codes[0].to_uppercase()).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let me = cookie_of(&r);
    let r = app.call("GET", "/me/mfa", &me, None).await;
    assert_eq!(r.body["recovery_codes_left"], 9);

    let pending = password_step(&app).await;
    let r = code_step(&app, &pending, &codes[0]).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert!(r.body.to_string().contains("already used"));
    let r = code_step(&app, &pending, &codes[1]).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);

    // New codes replace the old ones.
    let me = cookie_of(&r);
    let r = app
        .call(
            "POST",
            "/me/mfa/recovery-codes",
            &me,
            Some(json!({"current_password": PASSWORD})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let pending = password_step(&app).await;
    let r = code_step(&app, &pending, &codes[2]).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
}

#[tokio::test]
async fn wrong_codes_count_against_the_password_throttle() {
    let app = TestApp::new();
    app.user(ADA, false).await;
    let (secret, _) = enrol(&app, ADA).await;
    next_step(&app);
    let pending = password_step(&app).await;
    for _ in 0..4 {
        let r = code_step(&app, &pending, "000000").await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    }
    // Another pending sign-in does not get a fresh allowance.
    let pending = password_step(&app).await;
    let r = code_step(&app, &pending, "000000").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = code_step(&app, &pending, &code_now(&app, &secret)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{:?}", r.body);
    // The password too now waits.
    let r = app
        .call("POST", "/auth/login", &Auth::None, login_body())
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{:?}", r.body);
}

#[tokio::test]
async fn a_required_second_factor_is_set_up_at_the_next_sign_in() {
    let app = TestApp::with_settings(Settings {
        mfa_require: MfaRequirement::Admins,
        ..Default::default()
    });
    app.user(ADA, true).await;
    app.user("bob@example.com", false).await;

    // Bob is no administrator: one step.
    let r = app
        .call(
            "POST",
            "/auth/login",
            &Auth::None,
            Some(json!({"email": "bob@example.com", "password": PASSWORD})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);

    let pending = password_step(&app).await;
    assert_eq!(pending["second_factor"], "enrol");
    let secret = secret_from_typed(pending["enrolment"]["secret"].as_str().unwrap()).unwrap();
    let r = code_step(&app, &pending, "123").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = code_step(&app, &pending, &code_now(&app, &secret)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["recovery_codes"].as_array().unwrap().len(), 10);
    let me = cookie_of(&r);
    let r = app.call("GET", "/me/mfa", &me, None).await;
    assert_eq!(r.body["enabled"], true);
    assert_eq!(r.body["required"], true);

    // Required: it cannot be turned off.
    let r = app
        .call(
            "POST",
            "/me/mfa/disable",
            &me,
            Some(json!({"current_password": PASSWORD})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);

    // The next sign-in asks for a code, not an enrolment.
    let pending = password_step(&app).await;
    assert_eq!(pending["second_factor"], "code");
    assert!(pending.get("enrolment").is_none());
}

#[tokio::test]
async fn an_administrator_resets_a_second_factor_and_it_is_audited() {
    let app = TestApp::new();
    let (root_id, root) = app.user("root@example.com", true).await;
    let (ada, ada_token) = app.user(ADA, false).await;
    enrol(&app, ADA).await;
    let _ = root_id;

    // Not for anyone else.
    let r = app
        .call(
            "DELETE",
            &format!("/users/{ada}/mfa"),
            &bearer(&ada_token),
            None,
        )
        .await;
    assert!(r.status.is_client_error() && r.status != StatusCode::NO_CONTENT);

    let r = app
        .call("DELETE", &format!("/users/{ada}/mfa"), &bearer(&root), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let r = app
        .call("DELETE", &format!("/users/{ada}/mfa"), &bearer(&root), None)
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);

    // Back to the password alone.
    let r = app
        .call("POST", "/auth/login", &Auth::None, login_body())
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);

    let r = app
        .call("GET", "/audit?action=user.mfa.reset", &bearer(&root), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let items = r.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{:?}", r.body);
    assert_eq!(items[0]["target"], ADA);
    assert_eq!(items[0]["actor_label"], "root@example.com");
}

#[tokio::test]
async fn turning_it_off_needs_the_password() {
    let app = TestApp::new();
    app.user(ADA, false).await;
    let (secret, _) = enrol(&app, ADA).await;
    next_step(&app);
    let pending = password_step(&app).await;
    let r = code_step(&app, &pending, &code_now(&app, &secret)).await;
    let me = cookie_of(&r);
    let r = app
        .call(
            "POST",
            "/me/mfa/disable",
            &me,
            Some(json!({"current_password": "not my password"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    let r = app
        .call(
            "POST",
            "/me/mfa/disable",
            &me,
            Some(json!({"current_password": PASSWORD})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let r = app
        .call("POST", "/auth/login", &Auth::None, login_body())
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
}

/// The real binary: `KAAS_MFA_REQUIRE=admins` makes the administrator set it up at sign-in,
/// the second factor outlives a restart, and `kaas user reset-mfa` turns it off from the
/// shell (the way back in when the only administrator's phone is lost).
#[tokio::test]
async fn the_shell_resets_a_lost_second_factor_of_the_real_binary() {
    use crate::binary::{BIN, Server, client};
    let dir = tempfile::tempdir().unwrap();
    let env = [("KAAS_MFA_REQUIRE", "admins")];
    let server = Server::start_with(dir.path(), &env);
    let c = client();
    server.set_up_admin_via_api(&c, ADA, PASSWORD).await;
    let login = |base: String| {
        c.post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"email": ADA, "password": PASSWORD}))
            .send()
    };
    let res = login(server.base.clone()).await.unwrap();
    assert_eq!(res.status(), 202);
    assert!(res.headers().get("set-cookie").is_none());
    let pending: Value = res.json().await.unwrap();
    assert_eq!(pending["second_factor"], "enrol");
    let secret = secret_from_typed(pending["enrolment"]["secret"].as_str().unwrap()).unwrap();
    let now = u64::try_from(jiff::Timestamp::now().as_second()).unwrap();
    let res = c
        .post(format!("{}/api/v1/auth/login/code", server.base))
        .json(&json!({"pending_token": pending["pending_token"],
            "code": code_at_step(&secret, step_of(now))}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("set-cookie").is_some());
    assert!(server.stop().success());

    let server = Server::start_with(dir.path(), &env);
    let pending: Value = login(server.base.clone())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pending["second_factor"], "code", "kept across a restart");
    assert!(server.stop().success());

    let out = std::process::Command::new(BIN)
        .args(["user", "reset-mfa", "--email", ADA, "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("turned off"), "{said}");
    let out = std::process::Command::new(BIN)
        .args(["user", "reset-mfa", "--email", ADA, "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "nothing left to reset");

    // Still required: the next sign-in sets up a new one.
    let server = Server::start_with(dir.path(), &env);
    let pending: Value = login(server.base.clone())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pending["second_factor"], "enrol");
    assert!(server.stop().success());
}
