//! The group mapping of single sign-on respects the organization's member limit, counted as
//! invitations count it (others' pending invitations keep their seats): the sign-in goes
//! through, the role is not given, and the audit log says why. Real provider (tests/oidc)
//! and real binary (see `sso`).

use reqwest::Method;
use serde_json::{Value, json};

use super::sso::{ACME_GROUPS, OPEN, SsoBox, admin, browser, corp, landed, me, sso};

#[tokio::test]
async fn a_group_mapping_does_not_overfill_an_organization() {
    let sso_box = SsoBox::start(&["corp"], |issuer| corp(issuer, &[OPEN, ACME_GROUPS]));
    let kaas = sso_box.kaas.clone();
    let admin = admin(&sso_box.server).await;
    let acme = admin.create_org("acme").await;
    let limits = |max: u32| json!({"max_workspaces": 5, "max_members": max});
    // Two seats: the owner's, and one held by a pending invitation.
    let (s, body) = admin
        .call(
            Method::PUT,
            &format!("/orgs/{acme}/limits"),
            Some(limits(2)),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let (s, body) = admin
        .call(
            Method::POST,
            &format!("/orgs/{acme}/invitations"),
            Some(json!({"email": "zoe@example.com", "role": "member"})),
        )
        .await;
    assert_eq!(s, 201, "{body}");

    // Alice's groups map to admin in acme, which is full: she is signed in, without it.
    let (c, _) = browser(false);
    let (path, status, html) = landed(sso(&c, &kaas, "corp", "alice").await).await;
    assert_eq!((path.as_str(), status), ("/", 200), "{html}");
    assert_eq!(me(&c, &kaas).await.1["email"], "alice@example.com");
    assert_eq!(admin.role_in(&acme, "alice@example.com").await, Value::Null);
    let (_, members) = admin
        .call(Method::GET, &format!("/orgs/{acme}/members"), None)
        .await;
    assert_eq!(members["items"].as_array().unwrap().len(), 1, "{members}");
    let (_, audit) = admin
        .call(Method::GET, "/audit?action=org.member.role", None)
        .await;
    let refused = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["actor_label"] == "alice@example.com")
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(refused["outcome"], "failure", "{audit}");
    let detail = refused["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains("admin not granted (identity provider corp)")
            && detail.contains("member limit reached")
            && detail.contains("1 pending invitations"),
        "{detail}"
    );

    // With a seat free, the next sign-in gives the role.
    let (s, _) = admin
        .call(
            Method::PUT,
            &format!("/orgs/{acme}/limits"),
            Some(limits(3)),
        )
        .await;
    assert_eq!(s, 200);
    let (c, _) = browser(false);
    let (path, _, html) = landed(sso(&c, &kaas, "corp", "alice").await).await;
    assert_eq!(path, "/", "{html}");
    assert_eq!(admin.role_in(&acme, "alice@example.com").await, "admin");
    sso_box.stop();
}
