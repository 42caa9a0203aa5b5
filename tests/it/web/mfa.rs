//! Two-step sign-in in the console: set up from the account page (QR code drawn inline,
//! a wrong code shown next to the field), recovery codes shown once, the code page after
//! the password (no session before it), and an administrator's reset.

use kaas::domain::mfa::{code_at_step, secret_from_typed, step_of};

use super::*;

fn between<'a>(page: &'a str, start: &str, end: &str) -> &'a str {
    page.split(start)
        .nth(1)
        .and_then(|r| r.split(end).next())
        .unwrap_or("")
}

fn code_now(app: &TestApp, secret: &[u8]) -> String {
    let now = u64::try_from(app.ops().now().as_second()).unwrap();
    code_at_step(secret, step_of(now)).unwrap()
}

#[tokio::test]
async fn the_console_sets_up_two_step_sign_in_and_then_asks_for_a_code() {
    let app = TestApp::new();
    let (ada, _) = app.user("ada@example.com", false).await;
    app.user("root@example.com", true).await;
    let mut b = sign_in(&app, "ada@example.com").await;

    let r = get(&app, &mut b, "/account").await;
    assert!(html(&r).contains("Two-step sign-in"));
    let r = submit(
        &app,
        &mut b,
        "/account/mfa",
        &[("current_password", "wrong password")],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = submit(
        &app,
        &mut b,
        "/account/mfa",
        &[("current_password", PASSWORD)],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", html(&r));
    assert!(html(&r).contains("src=\"data:image/svg+xml;base64,"));
    let secret = secret_from_typed(between(html(&r), "id=\"totp-secret\">", "<")).unwrap();

    let r = submit(&app, &mut b, "/account/mfa/confirm", &[("code", "000000")]).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        html(&r).contains("<p class=\"field-error\" id=\"mfa-code-err\">Wrong code</p>"),
        "{}",
        html(&r)
    );
    assert!(html(&r).contains("data:image/svg+xml;base64,"));
    let code = code_now(&app, &secret);
    let r = submit(&app, &mut b, "/account/mfa/confirm", &[("code", &code)]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", html(&r));
    let codes = between(html(&r), "id=\"recovery-codes\">", "</ul>");
    assert_eq!(codes.matches("<li>").count(), 10);
    let r = get(&app, &mut b, "/account").await;
    assert!(html(&r).contains("<span id=\"recovery-left\">10</span>"));

    // Signing in again: the password leads to the code page, not a session.
    let mut fresh = Browser::default();
    let r = post(
        &app,
        &mut fresh,
        "/login",
        &[("email", "ada@example.com"), ("password", PASSWORD)],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", html(&r));
    assert!(fresh.cookies.is_empty(), "no cookie before the code");
    let pending = between(html(&r), "name=\"pending_token\" value=\"", "\"").to_string();
    assert!(!pending.is_empty());
    let r = post(
        &app,
        &mut fresh,
        "/login/code",
        &[("pending_token", &pending), ("code", &code)],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "replayed code");
    assert!(
        html(&r).contains("<p class=\"field-error\" id=\"code-err\">This code was already used"),
        "{}",
        html(&r)
    );
    app.clock.advance(jiff::SignedDuration::from_secs(30));
    let r = post(
        &app,
        &mut fresh,
        "/login/code",
        &[
            ("pending_token", &pending),
            ("code", &code_now(&app, &secret)),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
    let r = get(&app, &mut fresh, "/").await;
    assert_eq!(r.status, StatusCode::OK);

    // The administrator sees it and resets it.
    let mut root = sign_in(&app, "root@example.com").await;
    let r = get(&app, &mut root, "/admin/users").await;
    assert!(html(&r).contains(&format!("/admin/users/{ada}/mfa/reset")));
    let r = submit(
        &app,
        &mut root,
        &format!("/admin/users/{ada}/mfa/reset"),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = get(&app, &mut root, "/admin/users").await;
    assert!(!html(&r).contains(&format!("/admin/users/{ada}/mfa/reset")));
    sign_in(&app, "ada@example.com").await;
}

#[tokio::test]
async fn a_required_second_factor_is_set_up_in_the_sign_in_page() {
    let app = TestApp::with_settings(kaas::ops::Settings {
        mfa_require: kaas::domain::mfa::MfaRequirement::Everyone,
        ..Default::default()
    });
    app.user("ada@example.com", false).await;
    let mut b = Browser::default();
    let r = post(
        &app,
        &mut b,
        "/login",
        &[("email", "ada@example.com"), ("password", PASSWORD)],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", html(&r));
    assert!(html(&r).contains("Set up two-step sign-in"));
    assert!(html(&r).contains("src=\"data:image/svg+xml;base64,"));
    let secret = secret_from_typed(between(html(&r), "id=\"totp-secret\">", "<")).unwrap();
    let pending = between(html(&r), "name=\"pending_token\" value=\"", "\"").to_string();
    let r = post(
        &app,
        &mut b,
        "/login/code",
        &[("pending_token", &pending), ("code", "999999")],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    // Shown again with the same key, so the app already set up still fits.
    assert_eq!(
        secret_from_typed(between(html(&r), "id=\"totp-secret\">", "<")).unwrap(),
        secret
    );
    let r = post(
        &app,
        &mut b,
        "/login/code",
        &[
            ("pending_token", &pending),
            ("code", &code_now(&app, &secret)),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", html(&r));
    assert_eq!(
        between(html(&r), "id=\"recovery-codes\">", "</ul>")
            .matches("<li>")
            .count(),
        10
    );
    let r = get(&app, &mut b, "/").await;
    assert_eq!(r.status, StatusCode::OK, "signed in once enrolled");
}

#[tokio::test]
async fn an_invitation_is_not_a_way_around_the_second_factor() {
    let app = TestApp::with_settings(kaas::ops::Settings {
        mfa_require: kaas::domain::mfa::MfaRequirement::Everyone,
        ..Default::default()
    });
    let (org, _) = org_with_workspace(&app, "owner@example.com", "acme").await;
    app.user("ada@example.com", false).await;
    let inv = app
        .ops()
        .invite(
            &owner(&app, "owner@example.com"),
            org,
            NewInvitation {
                email: "ada@example.com".into(),
                role: OrgRole::Member,
            },
        )
        .unwrap();
    // The right password of an account that must use a second factor opens no session
    // through the invitation form: it says to sign in first.
    let mut b = Browser::default();
    let r = post(
        &app,
        &mut b,
        "/invite",
        &[("token", &inv.token), ("password", PASSWORD)],
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", html(&r));
    assert!(html(&r).contains("two-step sign-in"), "{}", html(&r));
    assert!(!b.has_cookie("kaas_session"));
    // The invitation is still there to accept once signed in.
    assert!(app.ops().invitation_info(&inv.token).is_ok());
}
