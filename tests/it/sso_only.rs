//! A platform administrator restricts a user to single sign-on (API and console): only a
//! user linked to an identity provider; password sign-in, `kaas login` with a password and
//! password resets are then refused with the provider to use named; clearing it gives back
//! the password they had. Against tests/oidc's provider and the real binary (see `sso`).

use reqwest::Method;
use serde_json::{Value, json};

use super::sso::{OPEN, SsoBox, admin, between, browser, corp, landed, sso};

const BOB_PASSWORD: &str = "bob's long passphrase";

async fn password_login(kaas: &str, email: &str, password: &str) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(format!("{kaas}/api/v1/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    (
        res.status().as_u16(),
        res.json().await.unwrap_or(Value::Null),
    )
}

/// What `kaas login` sends with a password.
async fn shell_login(kaas: &str, email: &str, password: &str) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(format!("{kaas}/api/v1/auth/token"))
        .json(&json!({"email": email, "password": password, "name": "kaas login"}))
        .send()
        .await
        .unwrap();
    (
        res.status().as_u16(),
        res.json().await.unwrap_or(Value::Null),
    )
}

fn message(body: &Value) -> String {
    body["error"]["message"].as_str().unwrap_or("").to_string()
}

#[tokio::test]
async fn an_administrator_restricts_a_linked_user_to_single_sign_on_and_back() {
    let sso_box = SsoBox::start(&["corp"], |issuer| corp(issuer, &[OPEN]));
    let kaas = sso_box.kaas.clone();
    let admin = admin(&sso_box.server).await;
    let (s, bob) = admin
        .call(
            Method::POST,
            "/users",
            Some(json!({"email": "bob@example.com", "name": "Bob", "password": BOB_PASSWORD})),
        )
        .await;
    assert_eq!(s, 201, "{bob}");
    let bob_path = format!("/users/{}", bob["id"].as_str().unwrap());
    assert_eq!(bob["sso_provider"], Value::Null);

    // Not linked yet: refused on the field, saying why.
    let (s, body) = admin
        .call(Method::PATCH, &bob_path, Some(json!({"sso_only": true})))
        .await;
    assert_eq!(s, 422, "{body}");
    assert_eq!(body["error"]["field"], "sso_only");
    assert!(
        message(&body).contains("not linked to an identity provider"),
        "{body}"
    );
    assert_eq!(
        password_login(&kaas, "bob@example.com", BOB_PASSWORD)
            .await
            .0,
        200
    );

    // Linked by signing in once through the provider; the password still works.
    let (c, _) = browser(false);
    let (path, _, html) = landed(sso(&c, &kaas, "corp", "bob").await).await;
    assert_eq!(path, "/", "{html}");
    let (_, now) = admin.call(Method::GET, &bob_path, None).await;
    assert_eq!(now["sso_provider"], "corp");
    assert_eq!(now["sso_only"], false);

    // Restricted: every use of the password is refused and names the provider.
    let (s, body) = admin
        .call(Method::PATCH, &bob_path, Some(json!({"sso_only": true})))
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["sso_only"], true);
    let (s, body) = password_login(&kaas, "bob@example.com", BOB_PASSWORD).await;
    assert_eq!(s, 401, "{body}");
    assert!(message(&body).contains("Sign in with Corp IdP"), "{body}");
    let (s, body) = shell_login(&kaas, "bob@example.com", BOB_PASSWORD).await;
    assert_eq!(s, 401, "kaas login with a password: {body}");
    assert!(message(&body).contains("Sign in with Corp IdP"), "{body}");
    let (s, body) = admin
        .call(
            Method::POST,
            &format!("{bob_path}/password"),
            Some(json!({"password": "a brand new passphrase"})),
        )
        .await;
    assert_eq!(s, 422, "password reset: {body}");
    assert!(message(&body).contains("Sign in with Corp IdP"), "{body}");
    // The console's sign-in form says the same.
    let (cf, _) = browser(false);
    let res = cf
        .post(format!("{kaas}/login"))
        .form(&[("email", "bob@example.com"), ("password", BOB_PASSWORD)])
        .send()
        .await
        .unwrap();
    let html = res.text().await.unwrap();
    assert!(
        html.contains("Sign in with Corp IdP&quot; button")
            || html.contains("Sign in with Corp IdP&#34; button"),
        "{html}"
    );
    // The provider still signs them in.
    let (c, _) = browser(false);
    let (path, _, html) = landed(sso(&c, &kaas, "corp", "bob").await).await;
    assert_eq!(path, "/", "{html}");
    assert!(html.contains("Signed in as bob@example.com"), "{html}");

    // Cleared: the password they had works again. Both changes are audited.
    let (s, body) = admin
        .call(Method::PATCH, &bob_path, Some(json!({"sso_only": false})))
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        password_login(&kaas, "bob@example.com", BOB_PASSWORD)
            .await
            .0,
        200
    );
    assert_eq!(
        shell_login(&kaas, "bob@example.com", BOB_PASSWORD).await.0,
        200
    );
    let (_, audit) = admin
        .call(Method::GET, "/audit?action=user.update", None)
        .await;
    let details: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target"] == "bob@example.com")
        .map(|e| e["detail"].as_str().unwrap())
        .collect();
    assert!(
        details.iter().any(|d| d.contains("sso_only=true")),
        "{audit}"
    );
    assert!(
        details.iter().any(|d| d.contains("sso_only=false")),
        "{audit}"
    );

    // The console's user list: the switch is offered for the linked user only.
    let users = admin
        .c
        .get(format!("{kaas}/admin/users"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        users.matches("Restrict to single sign-on").count(),
        1,
        "{users}"
    );
    let csrf = between(&users, "name=\"_csrf\" value=\"", "\"").to_string();
    let res = admin
        .c
        .post(format!("{kaas}/admin{bob_path}"))
        .form(&[("_csrf", csrf.as_str()), ("action", "sso_only")])
        .send()
        .await
        .unwrap();
    let html = res.text().await.unwrap();
    assert!(
        html.contains("bob@example.com is restricted to single sign-on."),
        "{html}"
    );
    assert!(html.contains(">SSO only</span>"), "{html}");
    assert!(html.contains("Allow password sign-in"), "{html}");
    assert_eq!(
        password_login(&kaas, "bob@example.com", BOB_PASSWORD)
            .await
            .0,
        401
    );
    // An unlinked user (the administrator) cannot be restricted: said on the page.
    let (_, root) = admin.call(Method::GET, "/me", None).await;
    let res = admin
        .c
        .post(format!(
            "{kaas}/admin/users/{}",
            root["id"].as_str().unwrap()
        ))
        .form(&[("_csrf", csrf.as_str()), ("action", "sso_only")])
        .send()
        .await
        .unwrap();
    let html = res.text().await.unwrap();
    assert!(
        html.contains("is not linked to an identity provider"),
        "{html}"
    );
    sso_box.stop();
}
