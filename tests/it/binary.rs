//! The real `kaas` binary on a free port, driven over HTTP as an operator would: the setup
//! link from its output, then admin → organization → workspace → project → API token; the
//! shell commands; graceful shutdown and restart with the data kept.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_kaas");

pub struct Server {
    child: Child,
    pub base: String,
    pub setup_link: Option<String>,
}

impl Server {
    /// Starts `kaas serve` on a free loopback port and waits until it says it listens.
    pub fn start(data: &Path) -> Server {
        Server::start_with(data, &[])
    }

    /// [`Server::start`] with settings from `KAAS_*` environment variables.
    pub fn start_with(data: &Path, env: &[(&str, &str)]) -> Server {
        Server::start_on(data, "127.0.0.1:0", env)
    }

    /// [`Server::start_with`] on a given address (when its URL must be known beforehand).
    pub fn start_on(data: &Path, listen: &str, env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", listen, "--data-dir"])
            .arg(data)
            .env("KAAS_LOG", "warn")
            .env_remove("KAAS_CONFIG")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("kaas starts");
        let stdout = child.stdout.take().expect("stdout");
        // Read on a thread: the setup line is printed only on a first start, so a blocking
        // read for it would hang on a restart.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut base = None;
        let deadline = Instant::now() + Duration::from_secs(20);
        while base.is_none() && Instant::now() < deadline {
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
                base = line
                    .strip_prefix("kaas listening on ")
                    .map(|a| a.trim().to_string());
            }
        }
        let setup_link = rx
            .recv_timeout(Duration::from_millis(500))
            .ok()
            .and_then(|l| l.split(" at ").nth(1).map(|s| s.trim().to_string()));
        Server {
            child,
            base: base.expect("kaas printed its address"),
            setup_link,
        }
    }

    /// The setup link's one-time token, printed at the first start.
    pub fn setup_token(&self) -> &str {
        let link = self
            .setup_link
            .as_deref()
            .expect("first start prints a setup link");
        link.split("token=")
            .nth(1)
            .expect("the setup link carries its token")
    }

    /// Creates the first platform administrator (root@example.com, "Root") with `password`
    /// through the console's setup form, which also signs `c` in if it keeps cookies.
    pub async fn set_up_admin_in_console(&self, c: &reqwest::Client, password: &str) {
        let res = c
            .post(format!("{}/setup", self.base))
            .form(&[
                ("token", self.setup_token()),
                ("email", "root@example.com"),
                ("name", "Root"),
                ("password", password),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            200,
            "the setup form creates the administrator"
        );
    }

    /// Creates the first platform administrator through `POST /api/v1/setup` (no session).
    pub async fn set_up_admin_via_api(&self, c: &reqwest::Client, email: &str, password: &str) {
        let res = c
            .post(format!("{}/api/v1/setup", self.base))
            .json(
                &json!({"token": self.setup_token(), "email": email, "name": "Root",
                "password": password}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            201,
            "the setup route creates the administrator"
        );
    }

    /// The server's process id (for /proc).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(Instant::now() < deadline, "kaas did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `kaas ARGS --data-dir DATA` with `input` on its standard input (a passphrase, as a
/// person types it) and no `KAAS_CONFIG` from the environment.
pub fn kaas_with_input(args: &[&str], data: &Path, input: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env_remove("KAAS_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .expect("client")
}

async fn json_call(
    c: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = c.request(method, url).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn operator_journey_against_the_real_binary() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let c = client();
    let r: Value = c
        .get(format!("{}/readyz", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r, serde_json::json!({"status": "ready"}), "status only");

    // The printed setup link serves a form; posting it creates the administrator.
    let link = server
        .setup_link
        .clone()
        .expect("first start prints a setup link");
    let page = c.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Create the first platform administrator"),
        "{html}"
    );
    let token = link.split("token=").nth(1).unwrap().to_string();
    let form = [
        ("token", token.as_str()),
        ("email", "root@example.com"),
        ("name", "Root"),
        ("password", "short"),
    ];
    let res = c
        .post(format!("{}/setup", server.base))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    assert!(
        res.text().await.unwrap().contains("id=\"password-err\""),
        "the error sits next to the field"
    );
    server
        .set_up_admin_in_console(&c, "an admin passphrase")
        .await;
    assert_eq!(
        c.get(&link).send().await.unwrap().status(),
        410,
        "the link is single-use"
    );

    // Sign in with the cookie and the CSRF header, make an API token, then use it.
    let login: Value = c
        .post(format!("{}/api/v1/auth/login", server.base))
        .json(&json!({"email": "root@example.com", "password": "an admin passphrase"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let csrf = login["csrf_token"]
        .as_str()
        .expect("csrf token")
        .to_string();
    let res = c
        .post(format!("{}/api/v1/me/tokens", server.base))
        .header("x-csrf-token", &csrf)
        .json(&json!({"name": "walkthrough", "scope": "read-write",
            "current_password": "an admin passphrase"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let tok = res.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_string();

    let api = |p: &str| format!("{}/api/v1{p}", server.base);
    let (s, org) = json_call(
        &c,
        reqwest::Method::POST,
        api("/orgs"),
        &tok,
        Some(json!({"name": "acme"})),
    )
    .await;
    assert_eq!(s, 201, "{org}");
    let org = org["id"].as_str().unwrap().to_string();
    let (s, ws) = json_call(
        &c,
        reqwest::Method::POST,
        api(&format!("/orgs/{org}/workspaces")),
        &tok,
        Some(json!({"name": "prod", "plan": "standard"})),
    )
    .await;
    assert_eq!(s, 201, "{ws}");
    let ws = ws["id"].as_str().unwrap().to_string();
    let (s, p) = json_call(
        &c,
        reqwest::Method::POST,
        api(&format!("/workspaces/{ws}/projects")),
        &tok,
        Some(json!({"name": "web"})),
    )
    .await;
    assert_eq!(s, 201, "{p}");

    // The shell refuses to touch the database while the server has it.
    let out = Command::new(BIN)
        .args([
            "user",
            "create",
            "--email",
            "x@example.com",
            "--name",
            "X",
            "--data-dir",
        ])
        .arg(dir.path())
        .stdin(Stdio::piped())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by a running kaas server"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one readable line: {err}");

    assert!(server.stop().success(), "SIGTERM ends kaas cleanly");

    // With the server stopped the shell can create a user; the data survived.
    let out = kaas_with_input(
        &[
            "user",
            "create",
            "--email",
            "ops@example.com",
            "--name",
            "Ops",
            "--admin",
        ],
        dir.path(),
        "another admin passphrase\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let server = Server::start(dir.path());
    assert!(
        server.setup_link.is_none(),
        "no setup link once an administrator exists"
    );
    let c = client();
    let (s, list) = json_call(
        &c,
        reqwest::Method::GET,
        format!("{}/api/v1/orgs/{org}/workspaces", server.base),
        &tok,
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(list["items"][0]["name"], "prod");
    let res = c
        .post(format!("{}/api/v1/auth/login", server.base))
        .json(&json!({"email": "ops@example.com", "password": "another admin passphrase"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[test]
fn cli_errors_are_one_line_and_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("kaas.toml");
    std::fs::write(&bad, "version = 1\n[server]\nlisen = \"x\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["config", "check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server.lisen"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let out = Command::new(BIN)
        .args(["config", "check", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = Command::new(BIN).arg("version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("kaas "));
    let out = Command::new(BIN)
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("healthcheck"));

    // healthcheck: nothing listening → non-zero with the address named.
    let cfg = dir.path().join("h.toml");
    std::fs::write(&cfg, "[server]\nlisten = \"127.0.0.1:1\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["healthcheck", "--timeout", "2", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("127.0.0.1:1"));
}

/// Login throttling survives a restart, and `X-Forwarded-For` names the client only when the
/// peer is a configured trusted proxy; `kaas user reset-password` revokes API tokens.
#[tokio::test]
async fn a_restart_keeps_a_throttled_account_throttled() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let c = client();
    server
        .set_up_admin_via_api(&c, "root@example.com", "an admin passphrase")
        .await;
    let login = |base: &str, password: &str, forwarded: Option<String>| {
        let mut req = c
            .post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"email": "root@example.com", "password": password}));
        if let Some(f) = forwarded {
            req = req.header("x-forwarded-for", f);
        }
        req.send()
    };
    // An API token, for `kaas user reset-password` to revoke below.
    let res = login(&server.base, "an admin passphrase", None)
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let csrf = res.json::<Value>().await.unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_string();
    let res = c
        .post(format!("{}/api/v1/me/tokens", server.base))
        .header("x-csrf-token", &csrf)
        .json(&json!({"name": "ci", "scope": "read-only",
            "current_password": "an admin passphrase"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let api_token = res.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_string();

    // Guesses with a forged X-Forwarded-For each: the peer is no trusted proxy, so they
    // all count against 127.0.0.1, and the sixth is refused.
    for i in 0..5 {
        let res = login(&server.base, "wrong", Some(format!("198.51.100.{i}")))
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "guess {i}");
    }
    let res = login(&server.base, "wrong", Some("198.51.100.99".into()))
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        429,
        "X-Forwarded-For from an untrusted peer is ignored"
    );
    assert!(server.stop().success());

    // Restarted, now behind a "proxy" on loopback.
    let server = Server::start_with(dir.path(), &[("KAAS_SERVER_TRUSTED_PROXIES", "127.0.0.1")]);
    // The count went on where it stopped: at most one more guess before the wait (the
    // one-second wait may have passed during the restart); a fresh count would allow five.
    let mut verified = 0;
    loop {
        let res = login(&server.base, "wrong", None).await.unwrap();
        match res.status().as_u16() {
            401 => verified += 1,
            429 => break,
            other => panic!("unexpected {other}"),
        }
        assert!(verified <= 1, "the restart reset the count");
    }
    // Throttled even with the right password.
    let res = login(&server.base, "an admin passphrase", None)
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    // From the trusted proxy, X-Forwarded-For names the client: another address, which
    // this account's guesses from 127.0.0.1 do not hold up.
    let res = login(
        &server.base,
        "an admin passphrase",
        Some("198.51.100.7, 203.0.113.7".into()),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 200);
    let sessions: Value = c
        .get(format!("{}/api/v1/me/sessions", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let current = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .unwrap();
    assert_eq!(current["source"], "203.0.113.7", "{sessions}");
    assert!(server.stop().success());

    // The shell's password reset revokes the API token too, and says so.
    let out = kaas_with_input(
        &["user", "reset-password", "--email", "root@example.com"],
        dir.path(),
        "a replacement passphrase\n",
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("1 API token revoked"), "{said}");
    let server = Server::start(dir.path());
    let res = c
        .get(format!("{}/api/v1/me", server.base))
        .bearer_auth(&api_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}
