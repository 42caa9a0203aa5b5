//! Single sign-on through a real OpenID Connect provider: node-oidc-provider (tests/oidc,
//! installed by `npm ci` there, which .ci/run does) on loopback, and the real kaas binary,
//! driven over HTTP like a browser (redirects followed, cookies kept).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::binary::Server;

/// The provider, stopped when dropped.
struct Idp {
    child: Child,
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts tests/oidc/provider.js accepting `redirects`, with more environment (`TLS_CERT`,
/// `TLS_KEY`: served over HTTPS); returns it with its issuer URL.
fn start_idp(redirects: &str, env: &[(&str, &Path)]) -> (Idp, String) {
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// kaas on a port known beforehand (its URL is the `public_url` the provider redirects to),
/// configured with providers of the test provider, which accepts each `/sso/<id>/callback`.
/// Dropped: kaas, then the provider, then the temporary directory (fields drop in order).
pub(super) struct SsoBox {
    /// kaas's URL, `http://127.0.0.1:<port>`.
    pub(super) kaas: String,
    /// The provider's issuer URL.
    pub(super) issuer: String,
    pub(super) server: Server,
    _idp: Idp,
    /// Holds kaas.toml and the data directory.
    dir: tempfile::TempDir,
}

impl SsoBox {
    /// Starts the provider for `callback_ids`, then kaas with `[server] public_url` and the
    /// `[[sso.providers]]` entries `providers` writes for the issuer.
    pub(super) fn start(callback_ids: &[&str], providers: impl FnOnce(&str) -> String) -> SsoBox {
        SsoBox::start_in(tempfile::tempdir().unwrap(), callback_ids, &[], providers)
    }

    /// [`SsoBox::start`] in `dir` (which may hold the provider's files), with more
    /// environment for the provider (see [`start_idp`]).
    fn start_in(
        dir: tempfile::TempDir,
        callback_ids: &[&str],
        idp_env: &[(&str, &Path)],
        providers: impl FnOnce(&str) -> String,
    ) -> SsoBox {
        let kaas = format!("http://127.0.0.1:{}", free_port());
        let redirects: Vec<String> = callback_ids
            .iter()
            .map(|id| format!("{kaas}/sso/{id}/callback"))
            .collect();
        let (idp, issuer) = start_idp(&redirects.join(","), idp_env);
        std::fs::write(
            dir.path().join("kaas.toml"),
            format!(
                "[server]\npublic_url = \"{kaas}\"\n\n{}",
                providers(&issuer)
            ),
        )
        .unwrap();
        let server = SsoBox::serve(&dir, &kaas);
        SsoBox {
            kaas,
            issuer,
            server,
            _idp: idp,
            dir,
        }
    }

    fn serve(dir: &tempfile::TempDir, kaas: &str) -> Server {
        let config = dir.path().join("kaas.toml");
        Server::start_on(
            &dir.path().join("data"),
            kaas.trim_start_matches("http://"),
            &[("KAAS_CONFIG", config.to_str().unwrap())],
        )
    }

    /// kaas's data directory.
    pub(super) fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Stops kaas (SIGTERM) and starts it again on the same port, data and config.
    pub(super) fn restart(self) -> SsoBox {
        self.server.stop();
        let server = SsoBox::serve(&self.dir, &self.kaas);
        SsoBox { server, ..self }
    }

    /// Stops kaas with SIGTERM; the provider and the directory go with the rest.
    pub(super) fn stop(self) {
        self.server.stop();
    }
}

/// The client `kaas` of the test provider, with its secret.
pub(super) const KAAS_CLIENT: (&str, &str) = ("kaas", "kaas-secret");
/// Accounts for anyone the provider vouches for.
pub(super) const OPEN: &str = r#"accounts = "open""#;
/// Accounts for verified addresses at example.com.
pub(super) const EXAMPLE_COM: &str = r#"accounts = "domains"
allowed_domains = ["example.com"]"#;
/// The provider's group k8s-admins (alice is in it) makes its members admins of acme.
pub(super) const ACME_GROUPS: &str = r#"scopes = ["openid", "email", "profile", "groups"]
groups_claim = "groups"
groups = [{ group = "k8s-admins", org = "acme", role = "admin" }]"#;

/// A `[[sso.providers]]` entry for the provider's `(client_id, client_secret)`, with
/// `extra` lines.
pub(super) fn provider(
    id: &str,
    name: &str,
    issuer: &str,
    (client_id, client_secret): (&str, &str),
    extra: &[&str],
) -> String {
    format!(
        "[[sso.providers]]\nid = \"{id}\"\nname = \"{name}\"\nissuer = \"{issuer}\"\n\
         client_id = \"{client_id}\"\nclient_secret = \"{client_secret}\"\n{}\n\n",
        extra.join("\n")
    )
}

/// The provider "corp" ("Corp IdP", client `kaas`) with `extra` lines.
pub(super) fn corp(issuer: &str, extra: &[&str]) -> String {
    provider("corp", "Corp IdP", issuer, KAAS_CLIENT, extra)
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

    /// Creates the organization `name` (as [`ACME_GROUPS`] needs); its id.
    pub(super) async fn create_org(&self, name: &str) -> String {
        let (s, org) = self
            .call(reqwest::Method::POST, "/orgs", Some(json!({"name": name})))
            .await;
        assert_eq!(s, 201, "{org}");
        org["id"].as_str().unwrap().to_string()
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
    let sso_box = SsoBox::start(
        &["corp", "invited", "badkey", "tamper", "expired"],
        |issuer| {
            let open = &[OPEN];
            [
                corp(issuer, &[EXAMPLE_COM, ACME_GROUPS]),
                // The same client under the default account policy: only invited addresses
                // get accounts.
                provider("invited", "Invited IdP", issuer, KAAS_CLIENT, &[]),
                // The provider signs this client's ID tokens with HS256 and the client
                // secret: not a key kaas accepts for the provider.
                provider(
                    "badkey",
                    "Bad Key IdP",
                    issuer,
                    ("kaas-hs", "kaas-hs-secret-0123456789-0123456789-0123456789"),
                    open,
                ),
                // The provider's token responses to this client carry an ID token altered
                // after signing.
                provider(
                    "tamper",
                    "Tampered IdP",
                    issuer,
                    ("kaas-tamper", "kaas-tamper-secret"),
                    open,
                ),
                // The provider's ID tokens for this client have expired when they arrive.
                provider(
                    "expired",
                    "Slow IdP",
                    issuer,
                    ("kaas-expired", "kaas-expired-secret"),
                    open,
                ),
            ]
            .concat()
        },
    );
    let kaas = sso_box.kaas.clone();
    let admin = admin(&sso_box.server).await;
    let acme = admin.create_org("acme").await;
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

    // A wrong state is refused, and does not use up the right one; the right code and
    // state opened in another browser (a link someone was sent: login CSRF) sign nobody in
    // there; a changed code is refused by the provider (and uses the state up).
    let (stopper, _) = browser(true);
    let res = sso(&stopper, &kaas, "corp", "alice").await;
    assert_eq!(res.status(), 303);
    let back = res.headers()["location"].to_str().unwrap().to_string();
    let state = between(&back, "state=", "&").to_string();
    let wrong = back.replace(&state, "not-the-state");
    let (path, _, html) = landed(stopper.get(&wrong).send().await.unwrap()).await;
    assert_eq!(path, "/login");
    assert!(html.contains("already used or has expired"), "{html}");
    assert_eq!(me(&stopper, &kaas).await.0, 401);
    let (elsewhere, _) = browser(false);
    let (path, _, html) = landed(elsewhere.get(&back).send().await.unwrap()).await;
    assert_eq!(path, "/login");
    assert!(html.contains("started in another browser"), "{html}");
    assert_eq!(me(&elsewhere, &kaas).await.0, 401);
    let code = between(&back, "code=", "&").to_string();
    let tampered = back.replace(&code, &format!("{code}x"));
    let (path, _, html) = landed(stopper.get(&tampered).send().await.unwrap()).await;
    assert_eq!(path, "/login");
    assert!(html.contains("the code was refused"), "{html}");
    assert_eq!(me(&stopper, &kaas).await.0, 401);

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
    sso_box.stop();
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

    let ca_file = format!("ca_file = \"{}\"", bundle.to_str().unwrap());
    let sso_box = SsoBox::start_in(
        dir,
        &["onprem", "nobundle"],
        &[("TLS_CERT", &cert), ("TLS_KEY", &key)],
        |issuer| {
            provider("onprem", "onprem", issuer, KAAS_CLIENT, &[OPEN, &ca_file])
                + &provider("nobundle", "nobundle", issuer, KAAS_CLIENT, &[OPEN])
        },
    );
    assert!(sso_box.issuer.starts_with("https://"));
    let kaas = sso_box.kaas.clone();

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
    sso_box.stop();
}

/// Anyone may start a sign-in, and each waits up to ten minutes for the provider: one
/// client address may have 30 under way, so it cannot fill the table for everyone else.
#[tokio::test]
async fn one_address_cannot_fill_the_table_of_sign_ins_under_way() {
    let b = SsoBox::start(&["corp"], |issuer| corp(issuer, &[OPEN]));
    let start = |c: &reqwest::Client| c.get(format!("{}/sso/corp/start", b.kaas)).send();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for _ in 0..30 {
        let res = start(&c).await.unwrap();
        assert_eq!(res.status(), 303);
        assert!(
            res.headers()["set-cookie"]
                .to_str()
                .unwrap()
                .starts_with("kaas_sso=kaassso_"),
            "{:?}",
            res.headers()
        );
    }
    let res = start(&c).await.unwrap();
    assert_eq!(res.status(), 429);
    assert!(
        res.headers().contains_key("retry-after"),
        "{:?}",
        res.headers()
    );
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("Too many attempts — try again in 10 minutes."),
        "the page says why"
    );
}

/// The provider requires PKCE of every client, so each sign-in in these tests shows that
/// kaas sends an S256 challenge and its verifier; here the verifier is altered on its way to
/// the provider (client `kaas-pkce`), which then refuses the code: nobody is signed in.
#[tokio::test]
async fn a_code_redeemed_without_its_pkce_verifier_is_refused() {
    let b = SsoBox::start(&["pkce"], |issuer| {
        provider(
            "pkce",
            "PKCE IdP",
            issuer,
            ("kaas-pkce", "kaas-pkce-secret"),
            &[OPEN],
        )
    });
    let (c, log) = browser(false);
    let (path, _, html) = landed(sso(&c, &b.kaas, "pkce", "alice").await).await;
    let asked = log.lock().unwrap().clone();
    assert!(
        asked
            .iter()
            .any(|u| u.contains("code_challenge_method=S256") && u.contains("code_challenge=")),
        "kaas asked for the code with an S256 challenge: {asked:?}"
    );
    assert_eq!(path, "/login");
    // The provider's answer to a wrong verifier (it says no more to the client).
    assert!(
        html.contains(
            "PKCE IdP sign-in failed: the code was refused: Server returned error response: \
             invalid_grant: grant request is invalid"
        ),
        "{html}"
    );
    assert_eq!(me(&c, &b.kaas).await.0, 401);
    b.stop();
}

/// ID tokens signed with the provider's own key, each with one claim wrong: another client's
/// (`aud`), another issuer's (`iss`), another sign-in's (`nonce`, or none), for kaas and
/// another client with nothing saying which asked (`aud` without `azp`), or for kaas but
/// asked for by another client (`azp`). Each is refused, signs nobody in, and is audited as a
/// failed sign-in with the reason.
#[tokio::test]
async fn id_tokens_for_another_client_issuer_or_sign_in_are_refused() {
    // (provider id, the reason kaas gives after "the ID token was refused: ").
    let cases = [
        (
            "aud",
            "Invalid audiences: must contain `kaas-aud` (found audiences: `someone-else`)",
        ),
        (
            "iss",
            "Invalid issuer: expected `ISSUER` (found `https://idp.elsewhere.test`)",
        ),
        ("nonce", "Invalid nonce: nonce mismatch"),
        ("nononce", "Invalid nonce: missing nonce claim"),
        (
            "multiaud",
            "Invalid audiences: `someone-else` is not a trusted audience",
        ),
        (
            "azp",
            "Invalid authorized party: must be `kaas-azp` (found `someone-else`)",
        ),
    ];
    let ids: Vec<&str> = cases.iter().map(|(id, _)| *id).collect();
    let b = SsoBox::start(&ids, |issuer| {
        ids.iter()
            .map(|id| {
                let client = format!("kaas-{id}");
                let secret = format!("{client}-secret");
                provider(
                    id,
                    &format!("{id} IdP"),
                    issuer,
                    (&client, &secret),
                    &[OPEN],
                )
            })
            .collect()
    });
    let admin = admin(&b.server).await;
    for (id, reason) in cases {
        let reason = reason.replace("ISSUER", &b.issuer);
        let (c, _) = browser(false);
        let (path, _, html) = landed(sso(&c, &b.kaas, id, "alice").await).await;
        assert_eq!(path, "/login", "{id}: {html}");
        let message = format!("{id} IdP sign-in failed: the ID token was refused: {reason}");
        assert!(html.contains(&message), "{id}: {html}");
        assert_eq!(me(&c, &b.kaas).await.0, 401, "{id}: nobody is signed in");
        let (_, audit) = admin
            .call(reqwest::Method::GET, "/audit?action=auth.login", None)
            .await;
        let detail = format!("via=sso ({id}): the ID token was refused: {reason}");
        assert!(
            audit["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["outcome"] == "failure"
                    && e["detail"].as_str().unwrap_or("").contains(&detail)),
            "{id}: {audit}"
        );
    }
    assert_eq!(admin.user("alice@example.com").await, Value::Null);
    b.stop();
}
