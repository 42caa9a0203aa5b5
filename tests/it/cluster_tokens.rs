//! kaas as the OIDC issuer: discovery and JWKS are served at the public URL, and
//! `POST /workspaces/{ws}/token` mints a short-lived token, for its own workspace's audience,
//! only for someone who holds a role there now and whose account is enabled; every issue is
//! audited. The tokens are checked here as an authenticator checks them (key from the JWKS,
//! ES256, issuer, audience, expiry).

use axum::body::Body;
use axum::http::Request;
use serde_json::{Value, json};

use kaas::domain::{Membership, OrgRole};
use kaas::store::records;

use crate::support::*;

async fn get(app: &TestApp, path: &str) -> Res {
    app.raw(Request::get(path).body(Body::empty()).unwrap())
        .await
}

/// The claims of `token` if it verifies for audience `aud` against the served JWKS at the
/// app's current (manual) time.
async fn verify(app: &TestApp, token: &str, aud: &str) -> Result<Value, String> {
    let jwks = get(app, "/oidc/jwks").await.body;
    let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"].as_str() == header.kid.as_deref())
        .ok_or("no key with this kid")?;
    let key = jsonwebtoken::DecodingKey::from_ec_components(
        key["x"].as_str().unwrap(),
        key["y"].as_str().unwrap(),
    )
    .map_err(|e| e.to_string())?;
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_audience(&[aud]);
    v.set_issuer(&["http://kaas.test"]);
    v.validate_exp = false;
    let claims = jsonwebtoken::decode::<Value>(token, &key, &v)
        .map_err(|e| e.to_string())?
        .claims;
    let now = app.ops().now().as_second();
    if claims["exp"].as_i64().unwrap() <= now || claims["nbf"].as_i64().unwrap() > now {
        return Err("expired or not yet valid".into());
    }
    Ok(claims)
}

#[tokio::test]
async fn discovery_and_jwks_are_served_at_the_issuer_url() {
    let app = TestApp::new();
    let d = get(&app, "/.well-known/openid-configuration").await;
    assert_eq!(d.status.as_u16(), 200);
    assert_eq!(d.body["issuer"], "http://kaas.test");
    assert_eq!(d.body["jwks_uri"], "http://kaas.test/oidc/jwks");
    let k = get(&app, "/oidc/jwks").await;
    assert_eq!(k.status.as_u16(), 200);
    let keys = k.body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kty"], "EC");
    assert_eq!(keys[0]["alg"], "ES256");
    // Only public parts are published.
    assert!(keys[0].get("d").is_none());
}

#[tokio::test]
async fn tokens_are_for_current_members_only_one_workspace_each_and_audited() {
    let app = TestApp::new();
    let (_, root) = app.user("root@example.com", true).await;
    let (_, owner) = app.user("own@example.com", false).await;
    let (viewer_id, viewer) = app.user("vic@example.com", false).await;
    let (_, outsider) = app.user("out@example.com", false).await;
    let own = bearer(&owner);
    let org = app.create_org(&own, "acme").await;
    let a = app.create_workspace(&own, &org, "alpha", "starter").await;
    let b = app.create_workspace(&own, &org, "beta", "starter").await;
    {
        let tx = app.ops().store.write().unwrap();
        let m = Membership {
            org_id: org.parse().unwrap(),
            user_id: viewer_id,
            role: OrgRole::Member,
            joined_at: app.ops().now(),
        };
        records::put_member(&tx, &m).unwrap();
        tx.commit().unwrap();
    }
    let r = app
        .call(
            "PUT",
            &format!("/workspaces/{a}/members/{viewer_id}"),
            &own,
            Some(json!({"role": "workspace-viewer"})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.body);

    let token = |who: String, ws: String| {
        let app = &app;
        async move {
            app.call(
                "POST",
                &format!("/workspaces/{ws}/token"),
                &bearer(&who),
                None,
            )
            .await
        }
    };

    // The viewer's token: their e-mail, the viewer group, workspace A's audience only.
    let t = token(viewer.clone(), a.clone()).await;
    assert_eq!(t.status.as_u16(), 200, "{:?}", t.body);
    let jwt = t.body["token"].as_str().unwrap().to_string();
    let claims = verify(&app, &jwt, &format!("kaas:{a}")).await.unwrap();
    assert_eq!(claims["email"], "vic@example.com");
    assert_eq!(
        claims["groups"],
        json!([format!("kaas:ws:{a}:workspace-viewer")])
    );
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        600
    );
    assert_eq!(t.body["token_id"], claims["jti"]);
    // The issue time too, so that the plugin knows the lifetime it caches for.
    let at = |k: &str| {
        t.body[k]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap()
    };
    assert_eq!(at("issued_at").as_second(), claims["iat"].as_i64().unwrap());
    assert_eq!(
        at("expires_at").as_second(),
        claims["exp"].as_i64().unwrap()
    );
    assert!(verify(&app, &jwt, &format!("kaas:{b}")).await.is_err());
    // Ten minutes later it is no longer valid.
    app.clock.advance(jiff::SignedDuration::from_secs(601));
    assert!(verify(&app, &jwt, &format!("kaas:{a}")).await.is_err());

    // No role in B (an organization member only), none at all for the outsider.
    assert_eq!(token(viewer.clone(), b.clone()).await.status.as_u16(), 404);
    assert_eq!(token(outsider, a.clone()).await.status.as_u16(), 404);
    // The owner holds workspace-admin in both.
    let t = token(owner.clone(), b.clone()).await;
    let claims = verify(
        &app,
        t.body["token"].as_str().unwrap(),
        &format!("kaas:{b}"),
    )
    .await
    .unwrap();
    assert_eq!(
        claims["groups"],
        json!([format!("kaas:ws:{b}:workspace-admin")])
    );

    // Every issue is audited: who, workspace, token id, expiry.
    let log = app
        .call(
            "GET",
            "/audit?action=cluster_token.issue",
            &bearer(&root),
            None,
        )
        .await;
    let items = log.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{items:?}");
    let ev = items
        .iter()
        .find(|e| e["actor_label"] == "vic@example.com")
        .unwrap();
    assert_eq!(ev["target"], a.as_str());
    let detail = ev["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("token_id={}", claims_jti(&jwt))),
        "{detail}"
    );
    assert!(detail.contains("expires="), "{detail}");

    // Removed from the workspace: refused at once.
    let r = app
        .call(
            "DELETE",
            &format!("/workspaces/{a}/members/{viewer_id}"),
            &own,
            None,
        )
        .await;
    assert!(r.status.is_success(), "{:?}", r.body);
    assert_eq!(token(viewer.clone(), a.clone()).await.status.as_u16(), 404);
}

fn claims_jti(jwt: &str) -> String {
    use base64::Engine;
    let body = jwt.split('.').nth(1).unwrap();
    let v: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .unwrap(),
    )
    .unwrap();
    v["jti"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_disabled_account_is_refused_a_token_with_a_credential_it_still_holds() {
    let app = TestApp::new();
    let (_, root) = app.user("root@example.com", true).await;
    let (owner_id, owner) = app.user("own@example.com", false).await;
    let own = bearer(&owner);
    let org = app.create_org(&own, "acme").await;
    let ws = app.create_workspace(&own, &org, "alpha", "starter").await;
    let path = format!("/workspaces/{ws}/token");
    assert_eq!(
        app.call("POST", &path, &own, None).await.status.as_u16(),
        200
    );
    let r = app
        .call(
            "PATCH",
            &format!("/users/{owner_id}"),
            &bearer(&root),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.body);
    assert_eq!(
        app.call("POST", &path, &own, None).await.status.as_u16(),
        401
    );
}

/// Removing a member or disabling an account answers until when the access already issued
/// remains valid: cluster tokens at most the configured lifetime from now, certificates
/// until the last one expires; one sentence says so.
#[tokio::test]
async fn removal_and_disabling_say_until_when_issued_cluster_access_remains_valid() {
    let app = TestApp::new();
    let (_, root) = app.user("root@example.com", true).await;
    let (_, owner) = app.user("own@example.com", false).await;
    let (wan_id, _) = app.user("wan@example.com", false).await;
    let own = bearer(&owner);
    let org = app.create_org(&own, "acme").await;
    let ws = app.create_workspace(&own, &org, "alpha", "starter").await;
    {
        let tx = app.ops().store.write().unwrap();
        let m = Membership {
            org_id: org.parse().unwrap(),
            user_id: wan_id,
            role: OrgRole::Member,
            joined_at: app.ops().now(),
        };
        records::put_member(&tx, &m).unwrap();
        tx.commit().unwrap();
    }
    let path = format!("/workspaces/{ws}/members/{wan_id}");
    let r = app
        .call(
            "PUT",
            &path,
            &own,
            Some(json!({"role": "workspace-viewer"})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.body);
    // The test issuer's tokens live ten minutes.
    let tokens_until = app.ops().now() + jiff::SignedDuration::from_secs(600);

    let r = app.call("DELETE", &path, &own, None).await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.body);
    assert_eq!(
        r.body["cluster_tokens_valid_until"],
        tokens_until.to_string()
    );
    assert!(r.body["kubeconfigs_valid_until"].is_null());
    assert_eq!(
        r.body["message"],
        format!(
            "Cluster tokens already issued to wan@example.com remain valid until {} UTC at \
             the latest (no kubeconfig certificate of theirs is still valid), but no longer \
             grant the removed role: kaas takes it out of the virtual clusters within seconds.",
            tokens_until.strftime("%Y-%m-%d %H:%M:%S")
        )
    );

    // A certificate issued for three more hours: both are named.
    let certs_until = app.ops().now() + jiff::SignedDuration::from_hours(3);
    {
        let tx = app.ops().store.write().unwrap();
        let mut u = records::get_user(&tx, wan_id).unwrap().unwrap();
        u.kubeconfigs_valid_until = Some(certs_until);
        records::update_user(&tx, &u).unwrap();
        tx.commit().unwrap();
    }
    let r = app
        .call(
            "PATCH",
            &format!("/users/{wan_id}"),
            &bearer(&root),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.body);
    let left = &r.body["remaining_access"];
    assert_eq!(left["kubeconfigs_valid_until"], certs_until.to_string());
    assert_eq!(left["cluster_tokens_valid_until"], tokens_until.to_string());
    assert_eq!(
        left["message"],
        format!(
            "Kubeconfigs already issued to wan@example.com remain valid certificates until {} \
             UTC and their cluster tokens until {} UTC at the latest, but no longer grant any \
             role: kaas takes their roles out of the virtual clusters within seconds.",
            certs_until.strftime("%Y-%m-%d %H:%M"),
            tokens_until.strftime("%Y-%m-%d %H:%M:%S")
        )
    );
    // Enabling again (or any other change) says nothing of the kind.
    let r = app
        .call(
            "PATCH",
            &format!("/users/{wan_id}"),
            &bearer(&root),
            Some(json!({"disabled": false})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.body);
    assert!(r.body.get("remaining_access").is_none(), "{:?}", r.body);
}
