//! `kaas login` for people who sign in through their identity provider: the device grant,
//! approved in a console session that single sign-on opened (node-oidc-provider on
//! loopback, the real `kaas serve`, the real `kaas` shell client). The terminal never sees
//! a password; the credential it keeps works like a password user's, and logout revokes it.

use serde_json::json;

use super::shell::{Terminal, decide_with, device_login, one_line_failure};
use super::sso::{ACME_GROUPS, EXAMPLE_COM, SsoBox, admin, browser, corp, landed, me, sso};

#[tokio::test]
async fn a_single_sign_on_user_logs_in_from_a_shell_with_the_device_grant() {
    let sso_box = SsoBox::start(&["corp"], |issuer| {
        corp(issuer, &[EXAMPLE_COM, ACME_GROUPS])
    });
    let kaas = sso_box.kaas.clone();
    let admin = admin(&sso_box.server).await;
    admin.create_org("acme").await;

    // Alice signs in to the console through the provider: her account is made there and
    // then, without a password of kaas's, and her group makes her an admin of acme.
    let (c, _) = browser(false);
    let (path, status, page) = landed(sso(&c, &kaas, "corp", "alice").await).await;
    assert_eq!((path.as_str(), status), ("/", 200), "{page}");
    let (status, who) = me(&c, &kaas).await;
    assert_eq!(status, 200);
    assert_eq!(who["email"], "alice@example.com");
    let alice = admin.user("alice@example.com").await;
    assert_eq!(alice["sso_provider"], "corp", "{alice}");

    // From her terminal: `kaas login --device`, approved in that console session.
    let t = Terminal::new();
    let r = device_login(&t, &kaas, async |code| {
        let page = decide_with(&c, &kaas, &code, "approve").await;
        assert!(page.contains("Return to your terminal"), "{page}");
    })
    .await;
    assert!(r.ok, "{r:?}");
    assert!(r.stdout.contains("alice@example.com"), "{r:?}");
    assert_eq!(t.stored(&kaas)["user"], "alice@example.com");

    // The credential is hers: the organization her group gave her is listed.
    let r = t.kaas(&["org", "list", "-o", "json"], "").await;
    assert!(r.ok, "{r:?}");
    let orgs: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(
        orgs.as_array().unwrap().iter().any(|o| o["name"] == "acme"),
        "{orgs}"
    );

    // Restricted to single sign-on, the password route says to use the provider; the
    // device-grant credential she holds keeps working.
    let id = alice["id"].as_str().unwrap();
    let (s, body) = admin
        .call(
            reqwest::Method::PATCH,
            &format!("/users/{id}"),
            Some(json!({"sso_only": true})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let other = Terminal::new();
    let r = other
        .password_login(&kaas, "alice@example.com", "any passphrase at all")
        .await;
    let line = one_line_failure(&r);
    assert!(line.contains("Corp IdP"), "{line}");
    assert!(t.kaas(&["org", "list"], "").await.ok);

    // Logout revokes it: the next command says to log in.
    let r = t.kaas(&["logout"], "").await;
    assert!(r.ok, "{r:?}");
    let r = t.kaas(&["org", "list"], "").await;
    assert_eq!(
        one_line_failure(&r),
        "kaas: not logged in; run `kaas login URL` first"
    );
}
