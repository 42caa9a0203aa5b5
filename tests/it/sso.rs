//! Single sign-on through a real OpenID Connect provider: node-oidc-provider (tests/oidc,
//! installed by `npm ci` there, which .ci/run does) on loopback, and the real kaas binary,
//! driven over HTTP like a browser (redirects followed, cookies kept).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::binary::Server;

/// The provider, stopped when dropped.
pub(super) struct Idp {
    child: Child,
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts tests/oidc/provider.js accepting `redirects`; returns it with its issuer URL.
pub(super) fn start_idp(redirects: &str) -> (Idp, String) {
    start_idp_with(redirects, &[])
}

/// [`start_idp`] with more environment (`TLS_CERT`, `TLS_KEY`: served over HTTPS).
fn start_idp_with(redirects: &str, env: &[(&str, &Path)]) -> (Idp, String) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc");
    assert!(
        dir.join("node_modules/oidc-provider").is_dir(),
        "the test provider is not installed: run `npm ci` in tests/oidc (.ci/run does)"
    );
    let mut child = Command::new("node")
        .arg("provider.js")
        .current_dir(&dir)
        .env("REDIRECT_URIS", redirects)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node runs (install nodejs)");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    // Drained to the end, so the provider never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let idp = Idp { child };
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100))
            && let Some(port) = line.strip_prefix("listening on ")
        {
            let scheme = if env.is_empty() { "http" } else { "https" };
            return (idp, format!("{scheme}://127.0.0.1:{}", port.trim()));
        }
    }
    panic!("the OpenID Connect provider did not start");
}

pub(super) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A browser: cookies kept, redirects followed and logged; with `stop_at_callback`, the
/// redirect back to kaas is not followed (the test then holds the `code` and `state`).
pub(super) fn browser(stop_at_callback: bool) -> (reqwest::Client, Arc<Mutex<Vec<String>>>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = log.clone();
    let c = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::custom(move |a| {
            seen.lock().unwrap().push(a.url().to_string());
            if stop_at_callback && a.url().path().ends_with("/callback") {
                a.stop()
            } else if a.previous().len() > 10 {
                a.error("too many redirects")
            } else {
                a.follow()
            }
        }))
        .build()
        .unwrap();
    (c, log)
}

pub(super) fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text.find(start).map(|i| i + start.len()).unwrap_or(0);
    let rest = &text[from..];
    &rest[..rest.find(end).unwrap_or(rest.len())]
}

/// Presses kaas's button for `provider` and signs in at the provider as `account`; the
/// response at the end of the redirects.
pub(super) async fn sso(
    c: &reqwest::Client,
    kaas: &str,
    provider: &str,
    account: &str,
) -> reqwest::Response {
    let form = c
        .get(format!("{kaas}/sso/{provider}/start"))
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 200, "the provider's sign-in form");
    let at = form.url().clone();
    let html = form.text().await.unwrap();
    let action = between(&html, "action=\"", "\"").to_string();
    c.post(at.join(&action).unwrap())
        .form(&[("account", account)])
        .send()
        .await
        .unwrap()
}

/// Where a response landed and what it says.
pub(super) async fn landed(res: reqwest::Response) -> (String, u16, String) {
    let path = res.url().path().to_string();
    let status = res.status().as_u16();
    (path, status, res.text().await.unwrap())
}

pub(super) async fn me(c: &reqwest::Client, kaas: &str) -> (u16, Value) {
    let res = c.get(format!("{kaas}/api/v1/me")).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

pub(super) struct Admin {
    pub(super) c: reqwest::Client,
    pub(super) base: String,
    pub(super) token: String,
}

impl Admin {
    pub(super) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .c
            .request(method, format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    pub(super) async fn user(&self, email: &str) -> Value {
        let (_, users) = self.call(reqwest::Method::GET, "/users", None).await;
        users["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["email"] == email)
            .cloned()
            .unwrap_or(Value::Null)
    }

    pub(super) async fn role_in(&self, org: &str, email: &str) -> Value {
        let (_, m) = self
            .call(reqwest::Method::GET, &format!("/orgs/{org}/members"), None)
            .await;
        m["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["email"] == email)
            .map(|u| u["role"].clone())
            .unwrap_or(Value::Null)
    }
}

/// The first administrator through the setup link, signed in (cookie) with an API token.
pub(super) async fn admin(server: &Server) -> Admin {
    let c = super::binary::client();
    server
        .set_up_admin_in_console(&c, "an admin passphrase")
        .await;
    let res = c
        .post(format!("{}/api/v1/me/tokens", server.base))
        .json(
            &json!({"name": "t", "scope": "read-write", "current_password": "an admin passphrase"}),
        )
        .send()
        .await
        .unwrap();
    // The setup form signed the browser in; its API needs the CSRF token of the session.
    let token = if res.status() == 201 {
        res.json::<Value>().await.unwrap()["secret"]
            .as_str()
            .unwrap()
            .to_string()
    } else {
        let login: Value = c
            .post(format!("{}/api/v1/auth/login", server.base))
            .json(&json!({"email": "root@example.com", "password": "an admin passphrase"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let csrf = login["csrf_token"].as_str().unwrap().to_string();
        let res = c
            .post(format!("{}/api/v1/me/tokens", server.base))
            .header("x-csrf-token", &csrf)
            .json(&json!({"name": "t", "scope": "read-write", "current_password": "an admin passphrase"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        res.json::<Value>().await.unwrap()["secret"]
            .as_str()
            .unwrap()
            .to_string()
    };
    Admin {
        c,
        base: server.base.clone(),
        token,
    }
}

#[tokio::test]
async fn single_sign_on_through_a_real_openid_connect_provider() {
    let port = free_port();
    let kaas = format!("http://127.0.0.1:{port}");
    let (_idp, issuer) = start_idp(&format!(
        "{kaas}/sso/corp/callback,{kaas}/sso/invited/callback,{kaas}/sso/badkey/callback,\
         {kaas}/sso/tamper/callback,{kaas}/sso/expired/callback"
    ));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kaas.toml");
    std::fs::write(
        &config,
        format!(
            r#"[server]
public_url = "{kaas}"

[[sso.providers]]
id = "corp"
name = "Corp IdP"
issuer = "{issuer}"
client_id = "kaas"
client_secret = "kaas-secret"
scopes = ["openid", "email", "profile", "groups"]
accounts = "domains"
allowed_domains = ["example.com"]
groups_claim = "groups"
groups = [{{ group = "k8s-admins", org = "acme", role = "admin" }}]

# The same client under the default account policy: only invited addresses get accounts.
[[sso.providers]]
id = "invited"
name = "Invited IdP"
issuer = "{issuer}"
client_id = "kaas"
client_secret = "kaas-secret"

# The provider signs this client's ID tokens with HS256 and the client secret: not a key
# kaas accepts for the provider.
[[sso.providers]]
id = "badkey"
name = "Bad Key IdP"
issuer = "{issuer}"
client_id = "kaas-hs"
client_secret = "kaas-hs-secret-0123456789-0123456789-0123456789"
accounts = "open"

# The provider's token responses to this client carry an ID token altered after signing.
[[sso.providers]]
id = "tamper"
name = "Tampered IdP"
issuer = "{issuer}"
client_id = "kaas-tamper"
client_secret = "kaas-tamper-secret"
accounts = "open"

# The provider's ID tokens for this client have expired when they arrive.
[[sso.providers]]
id = "expired"
name = "Slow IdP"
issuer = "{issuer}"
client_id = "kaas-expired"
client_secret = "kaas-expired-secret"
accounts = "open"
"#
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let server = Server::start_on(
        &data,
        &format!("127.0.0.1:{port}"),
        &[("KAAS_CONFIG", config.to_str().unwrap())],
    );
    let admin = admin(&server).await;
    let (s, org) = admin
        .call(
            reqwest::Method::POST,
            "/orgs",
            Some(json!({"name": "acme"})),
        )
        .await;
    assert_eq!(s, 201, "{org}");
    let acme = org["id"].as_str().unwrap().to_string();
    let (s, bob) = admin
        .call(
            reqwest::Method::POST,
            "/users",
            Some(json!({"email": "bob@example.com", "name": "Bob", "password": "bob's long passphrase"})),
        )
        .await;
    assert_eq!(s, 201, "{bob}");

    // The sign-in page has a button per provider, and says the second factor is the IdP's.
    let (c, log) = browser(false);
    let page = c.get(format!("{kaas}/login")).send().await.unwrap();
    let html = page.text().await.unwrap();
    assert!(html.contains("href=\"/sso/corp/start\""), "{html}");
    assert!(html.contains("Sign in with Corp IdP"), "{html}");
    assert!(html.contains("Sign in with Bad Key IdP"), "{html}");
    assert!(html.contains("skips kaas's own second factor"), "{html}");

    // First sign-in: the account is made (SSO only) and the groups give a role in acme.
    let (path, status, html) = landed(sso(&c, &kaas, "corp", "alice").await).await;
    assert_eq!((path.as_str(), status), ("/", 200), "{html}");
    assert!(html.contains("Signed in as alice@example.com"), "{html}");
    let (s, who) = me(&c, &kaas).await;
    assert_eq!(s, 200);
    assert_eq!(who["email"], "alice@example.com");
    let alice = admin.user("alice@example.com").await;
    assert_eq!(alice["created_via"], "sso", "{alice}");
    assert_eq!(alice["sso_only"], true, "{alice}");
    assert_eq!(alice["name"], "Alice");
    assert_eq!(admin.role_in(&acme, "alice@example.com").await, "admin");
    let org_page = admin
        .c
        .get(format!("{kaas}/orgs/{acme}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        org_page.contains("managed by the identity provider"),
        "the console marks the membership"
    );

    // The callback's state is single use: replaying the whole redirect signs nobody in.
    let callback = log
        .lock()
        .unwrap()
        .iter()
        .find(|u| u.contains("/sso/corp/callback"))
        .cloned()
        .expect("the provider sent the browser back to kaas");
    assert!(callback.contains("code=") && callback.contains("state="));
    let (thief, _) = browser(false);
    let (path, _, html) = landed(thief.get(&callback).send().await.unwrap()).await;
    assert_eq!(path, "/login");
    assert!(html.contains("already used or has expired"), "{html}");
    assert_eq!(me(&thief, &kaas).await.0, 401, "no session from a replay");

    // An SSO-only account has no password to try.
    let res = admin
        .c
        .post(format!("{kaas}/api/v1/auth/login"))
        .json(&json!({"email": "alice@example.com", "password": "any long passphrase"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("single sign-on only"),
        "{body}"
    );

    // The mapping is applied again at each sign-in: a role changed in kaas comes back.
    let (s, _) = admin
        .call(
            reqwest::Method::PATCH,
            &format!("/orgs/{acme}/members/{}", alice["id"].as_str().unwrap()),
            Some(json!({"role": "member"})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(admin.role_in(&acme, "alice@example.com").await, "member");
    let (again, _) = browser(false);
    let (path, _, _) = landed(sso(&again, &kaas, "corp", "alice").await).await;
    assert_eq!(path, "/");
    assert_eq!(admin.role_in(&acme, "alice@example.com").await, "admin");

    // A wrong state is refused, and does not use up the right one; a changed code is
    // refused by the provider (and uses the state up).
    let (held, _) = browser(false);
    let (stopper, _) = browser(true);
    let res = sso(&stopper, &kaas, "corp", "alice").await;
    assert_eq!(res.status(), 303);
    let back = res.headers()["location"].to_str().unwrap().to_string();
    let state = between(&back, "state=", "&").to_string();
    let wrong = back.replace(&state, "not-the-state");
    let (path, _, html) = landed(held.get(&wrong).send().await.unwrap()).await;
    assert_eq!(path, "/login");
    assert!(html.contains("already used or has expired"), "{html}");
    assert_eq!(me(&held, &kaas).await.0, 401);
    let code = between(&back, "code=", "&").to_string();
    let tampered = back.replace(&code, &format!("{code}x"));
    let (path, _, html) = landed(held.get(&tampered).send().await.unwrap()).await;
    assert_eq!(path, "/login");
    assert!(html.contains("the code was refused"), "{html}");
    assert_eq!(me(&held, &kaas).await.0, 401);

    // An existing account is linked by its verified e-mail address, and keeps its password.
    let (cb, _) = browser(false);
    let (path, _, html) = landed(sso(&cb, &kaas, "corp", "bob").await).await;
    assert_eq!(path, "/", "{html}");
    let (_, who) = me(&cb, &kaas).await;
    assert_eq!(who["id"], bob["id"], "the same account");
    let bob_now = admin.user("bob@example.com").await;
    assert_eq!(bob_now["created_via"], "admin");
    assert_eq!(bob_now["sso_only"], false);
    let res = reqwest::Client::new()
        .post(format!("{kaas}/api/v1/auth/login"))
        .json(&json!({"email": "bob@example.com", "password": "bob's long passphrase"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // The account policy: an address outside the allowed domains gets no account.
    let (cm, _) = browser(false);
    let (path, _, html) = landed(sso(&cm, &kaas, "corp", "mallory").await).await;
    assert_eq!(path, "/login");
    assert!(html.contains("domain not allowed"), "{html}");
    assert_eq!(admin.user("mallory@elsewhere.test").await, Value::Null);

    // Under the "invited" policy, the same address gets an account once it is invited.
    let (ci, _) = browser(false);
    let (path, _, html) = landed(sso(&ci, &kaas, "invited", "mallory").await).await;
    assert_eq!(path, "/login");
    assert!(html.contains("no pending invitation"), "{html}");
    let (s, inv) = admin
        .call(
            reqwest::Method::POST,
            &format!("/orgs/{acme}/invitations"),
            Some(json!({"email": "mallory@elsewhere.test", "role": "member"})),
        )
        .await;
    assert_eq!(s, 201, "{inv}");
    let (ci, _) = browser(false);
    let (path, _, html) = landed(sso(&ci, &kaas, "invited", "mallory").await).await;
    assert_eq!(path, "/", "{html}");
    assert_eq!(me(&ci, &kaas).await.1["email"], "mallory@elsewhere.test");

    // An address the provider has not verified links and creates nothing.
    let (ce, _) = browser(false);
    let (path, _, html) = landed(sso(&ce, &kaas, "corp", "eve").await).await;
    assert_eq!(path, "/login");
    assert!(html.contains("has not verified"), "{html}");
    assert_eq!(admin.user("eve@example.com").await, Value::Null);

    // An ID token signed with a key kaas does not accept for the provider is refused.
    let (cx, _) = browser(false);
    let (path, _, html) = landed(sso(&cx, &kaas, "badkey", "alice").await).await;
    assert_eq!(path, "/login");
    assert!(html.contains("the ID token was refused"), "{html}");
    assert!(html.contains("Signature verification failed"), "{html}");
    assert_eq!(me(&cx, &kaas).await.0, 401);

    // An ID token changed after signing (here: to the administrator's address) is refused.
    let (ct, _) = browser(false);
    let (path, _, html) = landed(sso(&ct, &kaas, "tamper", "alice").await).await;
    assert_eq!(path, "/login");
    assert!(html.contains("the ID token was refused"), "{html}");
    assert!(html.contains("Signature verification failed"), "{html}");
    assert_eq!(me(&ct, &kaas).await.0, 401);

    // An expired ID token is refused.
    let (cexp, _) = browser(false);
    let (path, _, html) = landed(sso(&cexp, &kaas, "expired", "alice").await).await;
    assert_eq!(path, "/login");
    assert!(html.contains("ID token expired"), "{html}");
    assert_eq!(me(&cexp, &kaas).await.0, 401);

    // Sessions from SSO are audited like password sign-ins, saying how.
    let (_, audit) = admin
        .call(reqwest::Method::GET, "/audit?action=auth.login", None)
        .await;
    let events = audit["items"].as_array().unwrap();
    assert!(
        events.iter().any(|e| e["outcome"] == "success"
            && e["actor_label"] == "alice@example.com"
            && e["detail"]
                .as_str()
                .unwrap_or("")
                .contains("via=sso (corp)")),
        "{audit}"
    );
    assert!(
        events.iter().any(|e| e["outcome"] == "failure"
            && e["detail"]
                .as_str()
                .unwrap_or("")
                .contains("via=sso (badkey)")),
        "{audit}"
    );

    // Signing out ends the SSO session.
    let home = c
        .get(format!("{kaas}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = between(&home, "name=\"_csrf\" value=\"", "\"").to_string();
    let (path, _, html) = landed(
        c.post(format!("{kaas}/logout"))
            .form(&[("_csrf", csrf.as_str())])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(path, "/login");
    assert!(html.contains("You have signed out."), "{html}");
    assert_eq!(me(&c, &kaas).await.0, 401);
    server.stop();
}

/// A provider served over HTTPS with a certificate of a private CA: trusted through the
/// provider's `ca_file`, and not without it.
#[tokio::test]
async fn an_on_prem_provider_is_trusted_through_its_ca_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::default();
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "on-prem IdP CA");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &rcgen::Issuer::from_params(&ca, &ca_key))
        .unwrap();
    let (cert, key, bundle) = (
        dir.path().join("idp.pem"),
        dir.path().join("idp.key"),
        dir.path().join("ca.pem"),
    );
    std::fs::write(&cert, leaf.pem()).unwrap();
    std::fs::write(&key, leaf_key.serialize_pem()).unwrap();
    std::fs::write(&bundle, ca_cert.pem()).unwrap();

    let port = free_port();
    let kaas = format!("http://127.0.0.1:{port}");
    let (_idp, issuer) = start_idp_with(
        &format!("{kaas}/sso/onprem/callback,{kaas}/sso/nobundle/callback"),
        &[("TLS_CERT", &cert), ("TLS_KEY", &key)],
    );
    assert!(issuer.starts_with("https://"));
    let config = dir.path().join("kaas.toml");
    let provider = |id: &str, extra: &str| {
        format!(
            "[[sso.providers]]\nid = \"{id}\"\nname = \"{id}\"\nissuer = \"{issuer}\"\n\
             client_id = \"kaas\"\nclient_secret = \"kaas-secret\"\naccounts = \"open\"\n{extra}\n"
        )
    };
    std::fs::write(
        &config,
        format!(
            "[server]\npublic_url = \"{kaas}\"\n\n{}{}",
            provider(
                "onprem",
                &format!("ca_file = \"{}\"", bundle.to_str().unwrap())
            ),
            provider("nobundle", "")
        ),
    )
    .unwrap();
    let server = Server::start_on(
        &dir.path().join("data"),
        &format!("127.0.0.1:{port}"),
        &[("KAAS_CONFIG", config.to_str().unwrap())],
    );

    // Without the bundle, the provider's certificate is not trusted: no discovery.
    let (c, _) = browser(false);
    let (path, _, html) = landed(
        c.get(format!("{kaas}/sso/nobundle/start"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(path, "/login");
    assert!(html.contains("cannot be reached right now"), "{html}");

    // With it, the whole sign-in goes through over HTTPS. (The test's browser trusts the
    // CA too: it talks to the provider as well.)
    let _ = rustls::crypto::ring::default_provider().install_default();
    let c = reqwest::Client::builder()
        .cookie_store(true)
        .tls_certs_only([reqwest::Certificate::from_pem(ca_cert.pem().as_bytes()).unwrap()])
        .build()
        .unwrap();
    let (path, _, html) = landed(sso(&c, &kaas, "onprem", "alice").await).await;
    assert_eq!(path, "/", "{html}");
    assert!(html.contains("Signed in as alice@example.com"), "{html}");
    server.stop();
}
