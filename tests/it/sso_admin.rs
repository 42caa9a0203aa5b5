//! Identity providers managed by platform administrators through the API and the console,
//! against the real OpenID Connect provider of tests/oidc (see `sso`) and the real binary:
//! added, used at once, changed, refused when the issuer is wrong, never showing the client
//! secret, kept across a restart, removed; the config file's providers read-only.

use reqwest::Method;
use serde_json::json;

use super::sso::{OPEN, SsoBox, admin, between, browser, corp, landed, me, sso};

async fn login_page(kaas: &str) -> String {
    reqwest::get(format!("{kaas}/login"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn providers_added_through_the_api_are_used_at_once_and_keep_their_secret() {
    let sso_box = SsoBox::start(&["corp", "added"], |issuer| corp(issuer, &[OPEN]));
    let (kaas, issuer) = (sso_box.kaas.clone(), sso_box.issuer.clone());
    let admin = admin(&sso_box.server).await;

    // The config file's provider is listed, marked, and cannot be changed or shadowed.
    let (s, list) = admin.call(Method::GET, "/sso/providers", None).await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(list[0]["id"], "corp");
    assert_eq!(list[0]["source"], "config_file");
    assert!(list[0].get("client_secret").is_none(), "{list}");
    let provider = |id: &str, issuer: &str| {
        json!({"id": id, "name": "Added IdP", "issuer": issuer, "client_id": "kaas",
               "client_secret": "kaas-secret", "accounts": "open"})
    };
    let (s, body) = admin
        .call(
            Method::POST,
            "/sso/providers",
            Some(provider("corp", &issuer)),
        )
        .await;
    assert_eq!(s, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("config file")
    );
    let (s, body) = admin
        .call(
            Method::PUT,
            "/sso/providers/corp",
            Some(json!({"name": "x", "issuer": issuer, "client_id": "kaas"})),
        )
        .await;
    assert_eq!(s, 409, "{body}");
    assert_eq!(
        admin
            .call(Method::DELETE, "/sso/providers/corp", None)
            .await
            .0,
        409
    );

    // An issuer that does not answer discovery is refused on the field, and nothing is kept.
    let (s, body) = admin
        .call(
            Method::POST,
            "/sso/providers",
            Some(provider("added", "http://127.0.0.1:1")),
        )
        .await;
    assert_eq!(s, 422, "{body}");
    assert_eq!(body["error"]["field"], "issuer");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("discovery document could not be read"),
        "{body}"
    );
    // A URL on the provider's server that is not its issuer.
    let (s, body) = admin
        .call(
            Method::POST,
            "/sso/providers",
            Some(provider("added", &format!("{issuer}/elsewhere"))),
        )
        .await;
    assert_eq!(s, 422, "{body}");
    assert_eq!(body["error"]["field"], "issuer");
    let mut bad_ca = provider("added", &issuer);
    bad_ca["ca_pem"] = json!("not a certificate");
    let (s, body) = admin
        .call(Method::POST, "/sso/providers", Some(bad_ca))
        .await;
    assert_eq!(s, 422, "{body}");
    assert_eq!(body["error"]["field"], "ca_pem");
    let (_, list) = admin.call(Method::GET, "/sso/providers", None).await;
    assert_eq!(list.as_array().unwrap().len(), 1, "nothing stored: {list}");
    assert!(!login_page(&kaas).await.contains("Added IdP"));

    // Added: the button is there at once and signs people in; the secret is never shown.
    let (s, body) = admin
        .call(
            Method::POST,
            "/sso/providers",
            Some(provider("added", &issuer)),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["source"], "console");
    assert!(!body.to_string().contains("kaas-secret"), "{body}");
    assert!(body.get("client_secret").is_none(), "{body}");
    for path in ["/sso/providers", "/sso/providers/added"] {
        let (s, body) = admin.call(Method::GET, path, None).await;
        assert_eq!(s, 200);
        assert!(!body.to_string().contains("kaas-secret"), "{path}: {body}");
    }
    let (s, body) = admin
        .call(
            Method::POST,
            "/sso/providers",
            Some(provider("added", &issuer)),
        )
        .await;
    assert_eq!(s, 409, "the id is taken: {body}");
    let html = login_page(&kaas).await;
    assert!(html.contains("href=\"/sso/added/start\""), "{html}");
    assert!(html.contains("Sign in with Added IdP"), "{html}");
    let (c, _) = browser(false);
    let (path, status, html) = landed(sso(&c, &kaas, "added", "bob").await).await;
    assert_eq!((path.as_str(), status), ("/", 200), "{html}");
    assert!(html.contains("Signed in as bob@example.com"), "{html}");
    assert_eq!(me(&c, &kaas).await.1["email"], "bob@example.com");
    // Sealed in the database: the secret is not in it in the clear.
    let db = std::fs::read(sso_box.data().join("kaas.redb")).unwrap();
    assert!(
        !db.windows(b"kaas-secret".len())
            .any(|w| w == b"kaas-secret"),
        "the client secret is stored in the clear"
    );

    // Changed without a secret: the stored one is kept (the sign-in still works).
    let (s, body) = admin
        .call(
            Method::PUT,
            "/sso/providers/added",
            Some(
                json!({"name": "Renamed IdP", "issuer": issuer, "client_id": "kaas",
                        "accounts": "open"}),
            ),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["name"], "Renamed IdP");
    assert!(login_page(&kaas).await.contains("Sign in with Renamed IdP"));
    let (c, _) = browser(false);
    let (path, _, html) = landed(sso(&c, &kaas, "added", "alice").await).await;
    assert_eq!(path, "/", "{html}");
    // A new (wrong) secret is used at once: the provider refuses the code exchange.
    let (s, _) = admin
        .call(
            Method::PUT,
            "/sso/providers/added",
            Some(
                json!({"name": "Renamed IdP", "issuer": issuer, "client_id": "kaas",
                        "client_secret": "not-the-secret", "accounts": "open"}),
            ),
        )
        .await;
    assert_eq!(s, 200);
    let (c, _) = browser(false);
    let (path, _, html) = landed(sso(&c, &kaas, "added", "alice").await).await;
    assert_eq!(path, "/login");
    assert!(html.contains("the code was refused"), "{html}");
    let (s, _) = admin
        .call(
            Method::PUT,
            "/sso/providers/added",
            Some(
                json!({"name": "Renamed IdP", "issuer": issuer, "client_id": "kaas",
                        "client_secret": "kaas-secret", "accounts": "open"}),
            ),
        )
        .await;
    assert_eq!(s, 200);

    // Audited, with no secret in the log.
    let (_, audit) = admin
        .call(Method::GET, "/audit?action=sso.provider", None)
        .await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"sso.provider.create"), "{audit}");
    assert!(actions.contains(&"sso.provider.update"), "{audit}");
    assert!(!audit.to_string().contains("kaas-secret"));

    // Kept across a restart: the secret is unsealed with the key file beside the database.
    let sso_box = sso_box.restart();
    assert!(login_page(&kaas).await.contains("Sign in with Renamed IdP"));
    let (c, _) = browser(false);
    let (path, _, html) = landed(sso(&c, &kaas, "added", "alice").await).await;
    assert_eq!(path, "/", "{html}");

    // Removed: the button goes at once and the provider's routes with it.
    assert_eq!(
        admin
            .call(Method::DELETE, "/sso/providers/added", None)
            .await
            .0,
        204
    );
    assert!(!login_page(&kaas).await.contains("Renamed IdP"));
    assert!(login_page(&kaas).await.contains("Sign in with Corp IdP"));
    let res = reqwest::get(format!("{kaas}/sso/added/start"))
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(
        admin
            .call(Method::DELETE, "/sso/providers/added", None)
            .await
            .0,
        404
    );
    let (_, audit) = admin
        .call(Method::GET, "/audit?action=sso.provider.delete", None)
        .await;
    assert_eq!(audit["items"][0]["target"], "added", "{audit}");
    sso_box.stop();
}

/// The console's pages: the list marks the config file's provider; the form refuses a bad
/// issuer next to the field, adds a good one, shows no secret when editing, and removes.
#[tokio::test]
async fn the_console_manages_providers_with_errors_next_to_their_fields() {
    let sso_box = SsoBox::start(&["corp", "web"], |issuer| corp(issuer, &[]));
    let (kaas, issuer) = (sso_box.kaas.clone(), sso_box.issuer.clone());
    let admin = admin(&sso_box.server).await;
    let c = &admin.c;
    let page = |path: &'static str| {
        let c = c.clone();
        let kaas = kaas.clone();
        async move {
            let res = c.get(format!("{kaas}{path}")).send().await.unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        }
    };
    let (s, html) = page("/admin/sso").await;
    assert_eq!(s, 200);
    assert!(
        html.contains("Corp IdP") && html.contains("from the config file"),
        "{html}"
    );
    assert!(
        !html.contains("href=\"/admin/sso/corp\""),
        "read-only: no edit link"
    );

    let (_, html) = page("/admin/sso/new").await;
    assert!(
        html.contains(&format!("redirect URI <span class=\"mono\">{kaas}/sso/")),
        "{html}"
    );
    let csrf = between(&html, "name=\"_csrf\" value=\"", "\"").to_string();
    let form = |issuer: &str, groups: &str| {
        vec![
            ("_csrf", csrf.clone()),
            ("id", "web".to_string()),
            ("name", "Web IdP".to_string()),
            ("issuer", issuer.to_string()),
            ("client_id", "kaas".to_string()),
            ("client_secret", "kaas-secret".to_string()),
            ("scopes", "openid email profile groups".to_string()),
            ("accounts", "domains".to_string()),
            ("allowed_domains", "example.com".to_string()),
            ("groups_claim", "groups".to_string()),
            ("groups", groups.to_string()),
        ]
    };
    let post = |path: &'static str, f: Vec<(&'static str, String)>| {
        let c = c.clone();
        let kaas = kaas.clone();
        async move {
            let res = c
                .post(format!("{kaas}{path}"))
                .form(&f)
                .send()
                .await
                .unwrap();
            (
                res.status().as_u16(),
                res.url().path().to_string(),
                res.text().await.unwrap(),
            )
        }
    };
    // A bad mapping line and an unreachable issuer: each refused next to its field, the
    // typed values kept, the secret not.
    let (s, _, html) = post("/admin/sso", form(&issuer, "k8s-admins acme admin")).await;
    assert_eq!(s, 422);
    assert!(html.contains("id=\"provider-groups-err\""), "{html}");
    assert!(
        html.contains("Line 1: write group, organization, role"),
        "{html}"
    );
    let (s, _, html) = post(
        "/admin/sso",
        form("http://127.0.0.1:1", "k8s-admins, acme, admin"),
    )
    .await;
    assert_eq!(s, 422);
    let err = between(&html, "id=\"provider-issuer-err\">", "</p>");
    assert!(
        err.contains("discovery document could not be read"),
        "{html}"
    );
    assert!(html.contains("value=\"Web IdP\""), "typed values are kept");
    assert!(
        !html.contains("kaas-secret"),
        "the secret is not shown again"
    );
    let (_, list) = admin.call(Method::GET, "/sso/providers", None).await;
    assert_eq!(list.as_array().unwrap().len(), 1, "nothing stored: {list}");

    let (s, path, html) = post("/admin/sso", form(&issuer, "k8s-admins, acme, admin")).await;
    assert_eq!((s, path.as_str()), (200, "/admin/sso"), "{html}");
    assert!(html.contains("Provider Web IdP added"), "{html}");
    assert!(html.contains("k8s-admins → acme (admin)"), "{html}");
    assert!(login_page(&kaas).await.contains("Sign in with Web IdP"));

    // Editing shows everything but the secret; saving with it blank keeps it.
    let (s, html) = page("/admin/sso/web").await;
    assert_eq!(s, 200);
    assert!(
        html.contains("Leave blank to keep the current secret"),
        "{html}"
    );
    assert!(!html.contains("kaas-secret"), "{html}");
    assert!(html.contains("k8s-admins, acme, admin"), "{html}");
    let mut edit = form(&issuer, "");
    edit.retain(|(k, _)| *k != "client_secret" && *k != "id");
    edit.push(("client_secret", String::new()));
    let (s, path, html) = post("/admin/sso/web", edit).await;
    assert_eq!((s, path.as_str()), (200, "/admin/sso"), "{html}");
    let (cb, _) = browser(false);
    let (path, _, html) = landed(sso(&cb, &kaas, "web", "alice").await).await;
    assert_eq!(path, "/", "{html}");

    // Removed from its page.
    let (s, path, html) = post("/admin/sso/web/delete", vec![("_csrf", csrf.clone())]).await;
    assert_eq!((s, path.as_str()), (200, "/admin/sso"), "{html}");
    assert!(html.contains("Provider web removed"), "{html}");
    assert!(!login_page(&kaas).await.contains("Web IdP"));
    sso_box.stop();
}

/// Every schema reachable from `v` through `$ref`s (names), transitively.
fn reachable(v: &serde_json::Value, schemas: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("$ref", serde_json::Value::String(r)) => {
                        let name = r.trim_start_matches("#/components/schemas/").to_string();
                        if !out.contains(&name) {
                            out.push(name.clone());
                            reachable(&schemas[name.as_str()], schemas, out);
                        }
                    }
                    _ => reachable(x, schemas, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| reachable(x, schemas, out)),
        _ => {}
    }
}

/// The OpenAPI document: no response of the providers' routes can carry a client secret,
/// and the request's secret is marked write-only.
#[tokio::test]
async fn the_client_secret_is_in_no_response_schema() {
    use crate::support::{Auth, TestApp};
    let app = TestApp::new();
    let doc = app
        .call("GET", "/openapi.json", &Auth::None, None)
        .await
        .body;
    let schemas = &doc["components"]["schemas"];
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/sso/providers") {
            continue;
        }
        for (_, op) in item.as_object().unwrap() {
            let mut names = Vec::new();
            reachable(&op["responses"], schemas, &mut names);
            for n in &names {
                assert!(
                    schemas[n.as_str()]["properties"]
                        .get("client_secret")
                        .is_none(),
                    "{path}: {n} has a client secret"
                );
            }
            assert!(
                !op["responses"].to_string().contains("client_secret"),
                "{path}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 5, "list, create, get, update, delete");
    for input in ["NewSsoProvider", "SsoProviderSettings"] {
        assert_eq!(
            schemas[input]["properties"]["client_secret"]["writeOnly"], true,
            "{input}: {}",
            schemas[input]
        );
    }
}
