//! The shell client through the real binary, as a user at a terminal runs it against a
//! running `kaas serve`: `kaas login` (password, and the device grant approved over HTTP as
//! the console's page does) → `kaas ws create --wait` on fakehost → `kaas kubeconfig
//! --merge` → the real kubectl → `kaas logout`, after which the next command says to log in.
//! Also: wrong passwords, unknown workspaces, expired and revoked credentials, output
//! shapes, HTTPS with a private CA, completions.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::binary::{Server, client};
use crate::support::kubectl;

const BIN: &str = env!("CARGO_BIN_EXE_kaas");
pub(crate) const ADMIN_PASSWORD: &str = "an admin passphrase";

/// A user's terminal: its own home, config directory and kubeconfig.
pub(crate) struct Terminal {
    pub(crate) home: tempfile::TempDir,
}

pub(crate) struct Ran {
    pub(crate) ok: bool,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl std::fmt::Debug for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ok={} stdout={:?} stderr={:?}",
            self.ok, self.stdout, self.stderr
        )
    }
}

impl Terminal {
    pub(crate) fn new() -> Terminal {
        Terminal {
            home: tempfile::tempdir().unwrap(),
        }
    }

    pub(crate) fn credentials(&self) -> PathBuf {
        self.home.path().join("cfg/kaas/credentials.toml")
    }

    pub(crate) fn kubeconfig(&self) -> PathBuf {
        self.home.path().join("kube/config")
    }

    pub(crate) fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(BIN);
        c.args(args)
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join("cfg"))
            .env("KUBECONFIG", self.kubeconfig())
            .env_remove("KAAS_CONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        c
    }

    /// Runs `kaas ARGS` with `stdin` (not a terminal) and waits for it.
    pub(crate) async fn kaas(&self, args: &[&str], stdin: &str) -> Ran {
        let mut child = self.command(args).spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.as_bytes()).await.unwrap();
        drop(input);
        let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
            .await
            .expect("kaas finishes")
            .unwrap();
        Ran {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub(crate) async fn password_login(&self, base: &str, email: &str, password: &str) -> Ran {
        self.kaas(
            &["login", base, "--email", email, "--password-stdin"],
            &format!("{password}\n"),
        )
        .await
    }

    /// The stored credential of `base`.
    pub(crate) fn stored(&self, base: &str) -> Value {
        let text = std::fs::read_to_string(self.credentials()).unwrap();
        let v: toml::Value = toml::from_str(&text).unwrap();
        serde_json::to_value(&v["servers"][base]).unwrap()
    }
}

/// A failure as the user sees it: a non-zero exit and exactly one line on stderr.
pub(crate) fn one_line_failure(r: &Ran) -> String {
    assert!(!r.ok, "expected a failure: {r:?}");
    let line = r.stderr.trim_end_matches('\n');
    assert_eq!(line.lines().count(), 1, "one line: {r:?}");
    line.to_string()
}

/// Creates the platform administrator through the setup link.
async fn set_up_admin(server: &Server) {
    server
        .set_up_admin_in_console(&client(), ADMIN_PASSWORD)
        .await;
}

/// What the console's /device page does for a signed-in person: look the code up, then
/// approve (or deny) it with the session's CSRF token. Returns the final page.
async fn decide_in_console(
    base: &str,
    email: &str,
    password: &str,
    code: &str,
    decision: &str,
) -> String {
    let c = client();
    let res = c
        .post(format!("{base}/login"))
        .form(&[("email", email), ("password", password)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "signed in to the console");
    decide_with(&c, base, code, decision).await
}

/// What the console's /device page does for the person signed in with `c`.
pub(crate) async fn decide_with(
    c: &reqwest::Client,
    base: &str,
    code: &str,
    decision: &str,
) -> String {
    let page = c
        .get(format!("{base}/device?user_code={code}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(code), "the page shows the code: {page}");
    assert!(page.contains("asks to act as"), "{page}");
    let csrf = page
        .split("name=\"_csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_string();
    let res = c
        .post(format!("{base}/device"))
        .form(&[
            ("_csrf", csrf.as_str()),
            ("user_code", code),
            ("decision", decision),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.text().await.unwrap()
}

/// Starts `kaas login --device`, hands its user code to `approve`, and waits for it.
pub(crate) async fn device_login(
    t: &Terminal,
    base: &str,
    approve: impl AsyncFnOnce(String),
) -> Ran {
    let mut child = t.command(&["login", base, "--device"]).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = String::new();
    let code = loop {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("kaas login --device prints its code")
            .unwrap()
            .unwrap_or_else(|| panic!("kaas login --device ended early: {seen}"));
        seen.push_str(&line);
        seen.push('\n');
        if let Some(rest) = line.split("shows the code ").nth(1) {
            break rest.split(',').next().unwrap().to_string();
        }
    };
    assert!(seen.contains("/device?user_code="), "{seen}");
    approve(code).await;
    let mut rest = String::new();
    while let Ok(Some(line)) = lines.next_line().await {
        rest.push_str(&line);
        rest.push('\n');
    }
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("kaas login --device finishes")
        .unwrap();
    Ran {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: format!("{seen}{rest}"),
    }
}

async fn api(
    base: &str,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = client()
        .request(method, format!("{base}/api/v1{path}"))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A fakehost (K3s API + simulated K3K) for a `kaas serve` process to drive.
pub(crate) async fn fake_host(
    dir: &Path,
) -> (fakehost::FakeHost, fakehost::k3k::K3kController, PathBuf) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let host = fakehost::FakeHost::start(fakehost::FakeHostOptions {
        manifests: vec![PathBuf::from(fakehost::K3K_CRDS_DIR)],
        pod_toleration_restriction: true,
        ..Default::default()
    })
    .await
    .expect("fakehost starts");
    let k3k = fakehost::k3k::K3kController::for_host(
        &host,
        fakehost::k3k::K3kOptions {
            provision_delay: Duration::from_millis(150),
            poll_interval: Duration::from_millis(50),
            ..Default::default()
        },
    );
    let kubeconfig = dir.join("host.kubeconfig");
    host.write_kubeconfig(&kubeconfig).unwrap();
    (host, k3k, kubeconfig)
}

// Multi-threaded: fakehost's virtual cluster answers kubectl and kaas in-process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_logs_in_from_a_shell_creates_a_workspace_and_uses_it_with_kubectl_then_logs_out() {
    let dir = tempfile::tempdir().unwrap();
    let (_host, _k3k, host_kubeconfig) = fake_host(dir.path()).await;
    shell_journey(&host_kubeconfig).await;
}

/// The same journey where the real K3K controllers and a real kube-apiserver per virtual
/// cluster decide (a realhost of its own: this kaas's reconciler owns the whole host).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_logs_in_from_a_shell_creates_a_workspace_and_uses_it_with_kubectl_on_realhost() {
    crate::realhost::PrivateRealHost::with(1, async |host| {
        shell_journey(&host.packaged_service_account_kubeconfig()).await
    })
    .await;
}

/// Login (password, then device) → org list → ws create --wait → output shapes → projects
/// → unknown workspaces → kubeconfig --merge and kubectl → logout → delete, through the real
/// binaries, against a `kaas serve` driving the host behind `host_kubeconfig`.
async fn shell_journey(host_kubeconfig: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        &dir.path().join("data"),
        &[
            ("KAAS_HOST_KUBECONFIG", host_kubeconfig.to_str().unwrap()),
            ("KAAS_HOST_EXTERNAL_ADDRESSES", "127.0.0.1"),
        ],
    );
    let base = server.base.clone();
    set_up_admin(&server).await;
    let t = Terminal::new();

    // Not logged in yet: one line saying how.
    let r = t.kaas(&["ws", "list"], "").await;
    assert_eq!(
        one_line_failure(&r),
        "kaas: not logged in; run `kaas login URL` first"
    );

    // A wrong password: the API's message, one line, and nothing stored.
    let r = t
        .password_login(&base, "root@example.com", "not the password")
        .await;
    assert_eq!(
        one_line_failure(&r),
        "kaas: wrong e-mail address or password"
    );
    assert!(!t.credentials().exists());

    // The password: a token stored 0600 in a 0700 directory, in the agreed format.
    let r = t
        .password_login(&base, "root@example.com", ADMIN_PASSWORD)
        .await;
    assert!(r.ok, "{r:?}");
    assert!(r.stdout.contains("logged in to"), "{r:?}");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&t.credentials()), 0o600);
    assert_eq!(mode(t.credentials().parent().unwrap()), 0o700);
    let text = std::fs::read_to_string(t.credentials()).unwrap();
    assert!(text.contains(&format!("current = \"{base}\"")), "{text}");
    let first = t.stored(&base);
    assert_eq!(first["user"], "root@example.com");
    let first_token = first["token"].as_str().unwrap().to_string();
    assert!(
        first["expires_at"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .is_ok()
    );
    // It is an ordinary API token: in the user's list, where it can be revoked.
    let (status, tokens) = api(
        &base,
        reqwest::Method::GET,
        "/me/tokens",
        &first_token,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        tokens
            .as_array()
            .unwrap()
            .iter()
            .any(|tk| tk["id"] == first["token_id"]
                && tk["name"].as_str().unwrap().starts_with("kaas login on ")),
        "{tokens}"
    );

    // The device grant, approved over HTTP as the console's page does: a new token
    // replaces (and revokes) the password one.
    let approved = device_login(&t, &base, async |code| {
        let page =
            decide_in_console(&base, "root@example.com", ADMIN_PASSWORD, &code, "approve").await;
        assert!(page.contains("Return to your terminal"), "{page}");
    })
    .await;
    assert!(approved.ok, "{approved:?}");
    assert!(
        approved.stdout.contains("as root@example.com"),
        "{approved:?}"
    );
    let second = t.stored(&base);
    assert_ne!(second["token"], first["token"]);
    let token = second["token"].as_str().unwrap().to_string();
    let (status, _) = api(&base, reqwest::Method::GET, "/me", &first_token, None).await;
    assert_eq!(status, 401, "the replaced token is revoked");

    // An organization to work in (the API; the shell client has no org create).
    let (status, org) = api(
        &base,
        reqwest::Method::POST,
        "/orgs",
        &token,
        Some(json!({"name": "acme"})),
    )
    .await;
    assert_eq!(status, 201, "{org}");
    let r = t.kaas(&["org", "list"], "").await;
    assert!(r.ok, "{r:?}");
    assert!(r.stdout.starts_with("ID "), "{r:?}");
    assert!(r.stdout.contains("acme"), "{r:?}");

    // Create and wait: the states stream on stderr, the Ready workspace on stdout.
    let r = t
        .kaas(
            &[
                "ws", "create", "dev", "--plan", "starter", "--wait", "-o", "json",
            ],
            "",
        )
        .await;
    assert!(r.ok, "{r:?}");
    let ws: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(ws["state"], "Ready", "{r:?}");
    assert_eq!(ws["name"], "dev");
    assert!(r.stderr.lines().any(|l| l.starts_with("dev ")), "{r:?}");
    assert!(
        r.stderr.lines().last().unwrap().starts_with("dev Ready"),
        "{r:?}"
    );
    let ws_id = ws["id"].as_str().unwrap().to_string();

    // The three output shapes.
    let r = t.kaas(&["ws", "list"], "").await;
    assert!(r.ok, "{r:?}");
    let mut lines = r.stdout.lines();
    let head: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(head, ["ID", "NAME", "PLAN", "STATE", "PROJECTS", "MESSAGE"]);
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(&row[..4], [ws_id.as_str(), "dev", "starter", "Ready"]);
    let r = t
        .kaas(&["ws", "list", "-o", "json", "--org", "acme"], "")
        .await;
    let list: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], ws_id.as_str());
    let r = t.kaas(&["ws", "get", "dev", "-o", "yaml"], "").await;
    let got: Value = serde_yaml::from_str(&r.stdout).unwrap();
    assert_eq!(got["id"], ws_id.as_str());
    assert_eq!(got["plan"]["id"], "starter");
    let r = t.kaas(&["ws", "get", &ws_id, "-o", "json"], "").await;
    assert_eq!(
        serde_json::from_str::<Value>(&r.stdout).unwrap()["name"],
        "dev"
    );

    // Projects by workspace name.
    let r = t.kaas(&["project", "create", "dev", "web"], "").await;
    assert!(r.ok, "{r:?}");
    let r = t.kaas(&["project", "list", "dev", "-o", "json"], "").await;
    let projects: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(projects[0]["name"], "web", "{r:?}");
    let r = t
        .kaas(&["project", "create", "dev", "Not A Name"], "")
        .await;
    assert!(one_line_failure(&r).starts_with("kaas: name: "), "{r:?}");

    // Unknown workspaces, by name and by id: one line each.
    let r = t.kaas(&["ws", "get", "nope"], "").await;
    assert_eq!(
        one_line_failure(&r),
        "kaas: no workspace named \"nope\" in organization acme"
    );
    let r = t
        .kaas(&["kubeconfig", "ws_01m976tqfv4bdh09mftq6van7g"], "")
        .await;
    assert_eq!(one_line_failure(&r), "kaas: workspace not found");

    // The kubeconfig merged into the user's own, and the real kubectl through it.
    std::fs::create_dir_all(t.kubeconfig().parent().unwrap()).unwrap();
    std::fs::write(
        t.kubeconfig(),
        "apiVersion: v1\nkind: Config\nclusters: []\nusers: []\ncontexts: []\ncurrent-context: \"\"\n",
    )
    .unwrap();
    let r = t.kaas(&["kubeconfig", "dev", "--merge"], "").await;
    assert!(r.ok, "{r:?}");
    assert!(r.stdout.contains("kubectl --context dev"), "{r:?}");
    assert_eq!(mode(&t.kubeconfig()), 0o600);
    // The tenant's RBAC and the project's namespace reach the virtual cluster shortly after
    // Ready (kaas's tenant sync): kubectl is retried for a while.
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let (ok, out) = kubectl(
            &t.kubeconfig(),
            &["--context", "dev", "get", "ns", "-o", "name"],
        )
        .await;
        if ok && out.contains("namespace/web") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "kubectl get ns: {out}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Merging again replaces the context rather than adding one.
    let r = t.kaas(&["kubeconfig", "dev", "--merge"], "").await;
    assert!(r.ok, "{r:?}");
    let merged: Value =
        serde_yaml::from_str(&std::fs::read_to_string(t.kubeconfig()).unwrap()).unwrap();
    assert_eq!(merged["contexts"].as_array().unwrap().len(), 1);
    // --out writes the file as given.
    let out_file = t.home.path().join("dev.kubeconfig");
    let r = t
        .kaas(
            &["kubeconfig", "dev", "--out", out_file.to_str().unwrap()],
            "",
        )
        .await;
    assert!(r.ok, "{r:?}");
    assert_eq!(mode(&out_file), 0o600);
    assert!(
        std::fs::read_to_string(&out_file)
            .unwrap()
            .contains("clusters:")
    );

    let r = t.kaas(&["project", "delete", "dev", "web"], "").await;
    assert!(r.ok, "{r:?}");
    assert_eq!(r.stdout.trim(), "project web deleted");

    // Logout revokes the token on the server and forgets it; the next command says to log in.
    let r = t.kaas(&["logout"], "").await;
    assert!(r.ok, "{r:?}");
    let (status, _) = api(&base, reqwest::Method::GET, "/me", &token, None).await;
    assert_eq!(status, 401, "revoked on the server");
    assert!(
        !std::fs::read_to_string(t.credentials())
            .unwrap()
            .contains(&token)
    );
    let r = t.kaas(&["ws", "list"], "").await;
    assert_eq!(
        one_line_failure(&r),
        "kaas: not logged in; run `kaas login URL` first"
    );
    let r = t.kaas(&["ws", "list", "--server", &base], "").await;
    assert_eq!(
        one_line_failure(&r),
        format!("kaas: not logged in to {base}; run `kaas login {base}` first")
    );

    // Deleting through the shell.
    t.password_login(&base, "root@example.com", ADMIN_PASSWORD)
        .await;
    let r = t.kaas(&["ws", "delete", "dev", "-o", "json"], "").await;
    assert!(r.ok, "{r:?}");
    assert_eq!(
        serde_json::from_str::<Value>(&r.stdout).unwrap()["state"],
        "Deleting"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_revoked_and_denied_credentials_are_refused_with_one_line_saying_to_log_in() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let base = server.base.clone();
    set_up_admin(&server).await;
    let t = Terminal::new();
    assert!(
        t.password_login(&base, "root@example.com", ADMIN_PASSWORD)
            .await
            .ok
    );

    // Revoked on the server (say, in the console) while the file still holds it.
    let stored = t.stored(&base);
    let token = stored["token"].as_str().unwrap();
    let id = stored["token_id"].as_str().unwrap();
    let (status, _) = api(
        &base,
        reqwest::Method::DELETE,
        &format!("/me/tokens/{id}"),
        token,
        None,
    )
    .await;
    assert_eq!(status, 204);
    let r = t.kaas(&["org", "list"], "").await;
    assert_eq!(
        one_line_failure(&r),
        format!("kaas: unknown or revoked API token; run `kaas login {base}` to sign in again")
    );
    // Logging out of a revoked credential still forgets it.
    assert!(t.kaas(&["logout"], "").await.ok);

    // Expired: the stored expiry has passed.
    assert!(
        t.password_login(&base, "root@example.com", ADMIN_PASSWORD)
            .await
            .ok
    );
    let text = std::fs::read_to_string(t.credentials()).unwrap();
    let expires = t.stored(&base)["expires_at"].as_str().unwrap().to_string();
    std::fs::write(
        t.credentials(),
        text.replace(&expires, "2020-01-01T00:00:00Z"),
    )
    .unwrap();
    let r = t.kaas(&["ws", "list", "-o", "json"], "").await;
    assert_eq!(
        one_line_failure(&r),
        format!(
            "kaas: your credential for {base} expired at 2020-01-01T00:00:00Z; run `kaas login {base}` to sign in again"
        )
    );

    // A device sign-in denied in the console ends with the server's reason.
    let denied = device_login(&t, &base, async |code| {
        let page =
            decide_in_console(&base, "root@example.com", ADMIN_PASSWORD, &code, "deny").await;
        assert!(page.contains("denied"), "{page}");
    })
    .await;
    assert!(!denied.ok, "{denied:?}");
    assert!(
        denied
            .stderr
            .trim_end()
            .ends_with("kaas: the sign-in was denied in the console"),
        "{denied:?}"
    );

    // A device code nobody is waiting for is refused by the console, next to the field.
    let c = client();
    c.post(format!("{base}/login"))
        .form(&[("email", "root@example.com"), ("password", ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap();
    let res = c
        .get(format!("{base}/device?user_code=BBBB-BBBB"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("No sign-in is waiting for this code")
    );

    // The token endpoint speaks OAuth's error shape.
    let res = c
        .post(format!("{base}/api/v1/auth/device/token"))
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", "kaasdev_nothing"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "expired_token", "{body}");

    // One address cannot fill the table of waiting sign-ins: beyond ten waiting from it,
    // the next is refused with when to try again.
    let start = async || {
        c.post(format!("{base}/api/v1/auth/device"))
            .form(&[("name", "flood")])
            .send()
            .await
            .unwrap()
    };
    for _ in 0..10 {
        assert_eq!(start().await.status(), 200);
    }
    let res = start().await;
    assert_eq!(res.status(), 429);
    let wait: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((590..=600).contains(&wait), "{wait}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "throttled", "{body}");
    assert_eq!(
        body["error"]["message"],
        format!("too many attempts; try again in {wait} seconds"),
        "{body}"
    );

    // Bad URLs are refused before anything is sent.
    let r = t
        .kaas(
            &[
                "login",
                "kaas.example.com",
                "--password-stdin",
                "--email",
                "a@b.c",
            ],
            "x\n",
        )
        .await;
    assert!(one_line_failure(&r).contains("is not a URL"), "{r:?}");
}

#[tokio::test]
async fn a_server_with_a_private_ca_needs_ca_file_once_and_it_is_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let server = Server::start_with(
        &dir.path().join("data"),
        &[
            ("KAAS_SERVER_TLS_MODE", "files"),
            ("KAAS_SERVER_TLS_CERT", cert_path.to_str().unwrap()),
            ("KAAS_SERVER_TLS_KEY", key_path.to_str().unwrap()),
        ],
    );
    let base = server.base.clone();
    assert!(base.starts_with("https://"), "{base}");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let c = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    server.set_up_admin_in_console(&c, ADMIN_PASSWORD).await;

    let t = Terminal::new();
    let r = t
        .password_login(&base, "root@example.com", ADMIN_PASSWORD)
        .await;
    let line = one_line_failure(&r);
    assert!(line.contains(&format!("cannot reach {base}")), "{line}");
    assert!(
        line.ends_with("pass --ca-file FILE to kaas login"),
        "{line}"
    );

    let r = t
        .kaas(
            &[
                "login",
                &base,
                "--email",
                "root@example.com",
                "--password-stdin",
                "--ca-file",
                cert_path.to_str().unwrap(),
            ],
            &format!("{ADMIN_PASSWORD}\n"),
        )
        .await;
    assert!(r.ok, "{r:?}");
    assert_eq!(
        t.stored(&base)["ca_file"],
        cert_path.canonicalize().unwrap().to_str().unwrap()
    );
    let r = t.kaas(&["org", "list", "-o", "json"], "").await;
    assert!(r.ok, "{r:?}");
    assert_eq!(serde_json::from_str::<Value>(&r.stdout).unwrap(), json!([]));
}

#[tokio::test]
async fn completions_generate_for_bash_zsh_and_fish_and_name_the_client_commands() {
    let t = Terminal::new();
    for shell in ["bash", "zsh", "fish"] {
        let r = t.kaas(&["completion", shell], "").await;
        assert!(r.ok, "{shell}: {r:?}");
        for word in ["login", "logout", "kubeconfig", "ws"] {
            assert!(r.stdout.contains(word), "{shell} lacks {word}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The sign-in endpoints through the API router (the clock under the test's control)
// ---------------------------------------------------------------------------------------------

mod endpoints {
    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use jiff::SignedDuration;
    use serde_json::{Value, json};

    use crate::support::*;

    const ADA: &str = "ada@example.com";

    fn form_post(path: &str, form: &[(&str, &str)]) -> Request<Body> {
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        Request::builder()
            .method("POST")
            .uri(format!("/api/v1{path}"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap()
    }

    async fn audit(app: &TestApp, admin: &Auth, action: &str) -> Vec<Value> {
        let r = app
            .call("GET", &format!("/audit?action={action}"), admin, None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        r.body["items"].as_array().unwrap().clone()
    }

    #[tokio::test]
    async fn password_tokens_are_throttled_like_sign_in_and_audited() {
        let app = TestApp::new();
        let (_, admin) = app.user("root@example.com", true).await;
        app.user(ADA, false).await;
        let body =
            |pw: &str| Some(json!({"email": ADA, "password": pw, "name": "kaas login on box"}));
        let guesses =
            (0..40).map(|_| app.call("POST", "/auth/token", &Auth::None, body("wrong password!")));
        let results = futures::future::join_all(guesses).await;
        let count = |s: StatusCode| results.iter().filter(|r| r.status == s).count();
        assert_eq!(
            (
                count(StatusCode::UNAUTHORIZED),
                count(StatusCode::TOO_MANY_REQUESTS)
            ),
            (5, 35),
            "the sign-in throttle's five free guesses, then refusals"
        );
        let r = app
            .call("POST", "/auth/token", &Auth::None, body(PASSWORD))
            .await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(r.headers.contains_key(header::RETRY_AFTER));
        app.clock.advance(SignedDuration::from_secs(2));
        let r = app
            .call("POST", "/auth/token", &Auth::None, body(PASSWORD))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        assert_eq!(r.body["token_type"], "Bearer");
        assert_eq!(r.body["user"], ADA);
        assert_eq!(r.body["expires_in"], 30 * 86400);
        let token = r.body["access_token"].as_str().unwrap().to_string();
        // An ordinary token: listed by name, and it works.
        let r = app.call("GET", "/me/tokens", &bearer(&token), None).await;
        assert!(
            r.body
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["name"] == "kaas login on box"),
            "{:?}",
            r.body
        );
        let events = audit(&app, &bearer(&admin), "token.create").await;
        assert_eq!(events[0]["actor_label"], ADA);
        assert!(
            events[0]["detail"]
                .as_str()
                .unwrap()
                .contains("kaas login with a password"),
            "{events:?}"
        );
    }

    #[tokio::test]
    async fn a_device_grant_gives_one_token_once_approved_by_a_console_session_only() {
        let app = TestApp::new();
        let (_, admin) = app.user("root@example.com", true).await;
        let (ada_id, ada_token) = app.user(ADA, false).await;
        let r = app
            .raw(form_post(
                "/auth/device",
                &[("client_id", "kaas-cli"), ("name", "laptop")],
            ))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        let code = r.body["user_code"].as_str().unwrap().to_string();
        let device = r.body["device_code"].as_str().unwrap().to_string();
        assert!(
            r.body["verification_uri_complete"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/device?user_code={code}")),
            "{:?}",
            r.body
        );
        assert_eq!(r.body["interval"], 5);
        let poll = || {
            app.raw(form_post(
                "/auth/device/token",
                &[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                    ("device_code", &device),
                ],
            ))
        };
        let r = poll().await;
        assert_eq!(
            (r.status, r.body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("authorization_pending"))
        );
        let r = poll().await;
        assert_eq!(r.body["error"], "slow_down", "polled at once");

        // An API token cannot approve (it would hand out a further credential).
        let ada_by_token = kaas::ops::Actor {
            user_id: ada_id,
            email: ADA.into(),
            platform_admin: false,
            via: kaas::ops::AuthVia::Token(
                kaas::domain::TokenId::generate(),
                kaas::domain::TokenScope::ReadWrite,
            ),
            source: "test".into(),
        };
        assert!(matches!(
            app.ops().decide_device_grant(&ada_by_token, &code, true),
            Err(kaas::ops::OpsError::Forbidden(_))
        ));
        let ada_in_console = kaas::ops::Actor {
            via: kaas::ops::AuthVia::Session(kaas::domain::SessionId::generate()),
            ..ada_by_token
        };
        // Typed loosely, as people do.
        app.ops()
            .decide_device_grant(
                &ada_in_console,
                &code.to_lowercase().replace('-', " "),
                true,
            )
            .unwrap();
        app.clock.advance(SignedDuration::from_secs(11));
        let r = poll().await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        assert_eq!(r.body["user"], ADA);
        let token = r.body["access_token"].as_str().unwrap().to_string();
        let r = app
            .call("GET", "/me/tokens", &bearer(&ada_token), None)
            .await;
        assert!(
            r.body
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["name"] == "laptop"),
            "{:?}",
            r.body
        );
        assert_eq!(
            app.call("GET", "/me", &bearer(&token), None).await.status,
            StatusCode::OK
        );
        // Once only.
        app.clock.advance(SignedDuration::from_secs(11));
        assert_eq!(poll().await.body["error"], "expired_token");
        let events = audit(&app, &bearer(&admin), "auth.device.approve").await;
        assert_eq!(events[0]["target"], code.as_str());
        assert_eq!(events[0]["actor_label"], ADA);

        // A wrong grant type is OAuth's error, not a token.
        let r = app
            .raw(form_post(
                "/auth/device/token",
                &[("grant_type", "password"), ("device_code", "x")],
            ))
            .await;
        assert_eq!(r.body["error"], "unsupported_grant_type");
    }
}
