//! The console's side of the sign-in hardening: `Origin: null` cannot carry a login form,
//! an API token asks for the password, a password change says which tokens it revoked, and
//! the administrators' user list flags accounts made by accepting an invitation.

use serde_json::json;

use super::*;

async fn login_with(app: &TestApp, headers: &[(&str, &str)]) -> Res {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([("email", "ada@example.com"), ("password", PASSWORD)])
        .finish();
    let mut req =
        Request::post("/login").header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    app.raw(req.body(Body::from(body)).unwrap()).await
}

#[tokio::test]
async fn a_login_form_from_origin_null_is_refused() {
    let app = TestApp::new();
    app.user("ada@example.com", false).await;
    // What a sandboxed frame or a no-referrer page on another site sends, from a browser
    // without Sec-Fetch-Site: login CSRF would sign the victim in as the attacker.
    let r = login_with(&app, &[("origin", "null"), ("host", "kaas.test")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", html(&r));
    assert!(!r.headers.contains_key(header::SET_COOKIE), "no session");
    // The console's own pages send their origin (Referrer-Policy: same-origin).
    let r = login_with(
        &app,
        &[("origin", "http://kaas.test"), ("host", "kaas.test")],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
    // Where the browser sends Sec-Fetch-Site, it decides.
    let r = login_with(
        &app,
        &[("sec-fetch-site", "same-origin"), ("origin", "null")],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
    let r = login_with(&app, &[("sec-fetch-site", "cross-site")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_new_token_asks_for_the_password_and_a_change_revokes_tokens() {
    let app = TestApp::new();
    // `user` gives Ada an API token.
    let (_, token) = app.user("ada@example.com", false).await;
    let mut b = sign_in(&app, "ada@example.com").await;
    let page = html(&get(&app, &mut b, "/account").await).to_string();
    assert!(page.contains("id=\"token-current_password\""), "{page}");

    let r = submit(
        &app,
        &mut b,
        "/account/tokens",
        &[
            ("name", "ci"),
            ("scope", "read-only"),
            ("current_password", "wrong"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        html(&r).contains("id=\"token-current_password-err\""),
        "{}",
        html(&r)
    );
    assert!(html(&r).contains("value=\"ci\""), "the name is kept");
    assert!(!html(&r).contains("value=\"wrong\""), "the password is not");

    let r = submit(
        &app,
        &mut b,
        "/account/password",
        &[
            ("current_password", PASSWORD),
            ("new_password", "a brand new passphrase"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
    let r = get(&app, &mut b, location(&r)).await;
    assert!(
        html(&r).contains("Password changed: 0 sessions signed out, 1 API token revoked."),
        "{}",
        html(&r)
    );
    let r = app.call("GET", "/me", &bearer(&token), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_user_list_flags_accounts_made_by_invitation() {
    let app = TestApp::new();
    app.user("root@example.com", true).await;
    let (_, owner) = app.user("ada@example.com", false).await;
    let owner = bearer(&owner);
    let org = app.create_org(&owner, "acme").await;
    let r = app
        .call(
            "POST",
            &format!("/orgs/{org}/invitations"),
            &owner,
            Some(json!({"email": "bob@example.com", "role": "member"})),
        )
        .await;
    let token = r.body["token"].as_str().unwrap().to_string();
    let r = app
        .call(
            "POST",
            "/invitations/accept",
            &Auth::None,
            Some(json!({"token": token, "name": "Bob", "password": "bob's long passphrase"})),
        )
        .await;
    assert!(r.status.is_success(), "{:?}", r.body);

    let mut root = sign_in(&app, "root@example.com").await;
    let page = html(&get(&app, &mut root, "/admin/users").await).to_string();
    let row = |email: &str| {
        page.split("<tr>")
            .find(|r| r.contains(email))
            .unwrap_or("")
            .to_string()
    };
    assert!(
        row("bob@example.com").contains("created by invitation"),
        "{page}"
    );
    assert!(!row("ada@example.com").contains("created by invitation"));
}
