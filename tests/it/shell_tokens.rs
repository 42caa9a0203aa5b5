//! Revocable kubectl access, the whole chain through the real binaries: `kaas serve` over
//! HTTPS (`tls.mode = "files"`, the public URL HTTPS, so the issuer is on and the Clusters
//! trust it with kaas's certificate as CA; tokens live 20 s) → `kaas login URL` (password)
//! → `kaas ws create --wait` → `kaas kubeconfig WS --merge` (the exec-plugin kubeconfig, the
//! default) → the real `kubectl get ns` through `kaas credential`; then an administrator
//! disables the user over the API → kubectl goes on with the token the plugin cached (one
//! issue in the audit log, the cache file untouched), which the API server judges; a new
//! token is refused at once (`kaas credential` prints one line saying to log in again) and
//! the cached one stops working within its lifetime. On fakehost (its JWT authenticator)
//! and on realhost (the real one).

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::binary::Server;
use crate::shell::{ADMIN_PASSWORD, Ran, Terminal, fake_host, one_line_failure};

const BIN: &str = env!("CARGO_BIN_EXE_kaas");
/// The configured token lifetime: the longest a disabled user keeps kubectl access.
const LIFETIME: Duration = Duration::from_secs(20);
const MEMBER_PASSWORD: &str = "a member passphrase";

/// The real kubectl in `t`'s environment, with `kaas` (the exec plugin) on PATH.
async fn kubectl(t: &Terminal, args: &[&str]) -> (bool, String) {
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let home = t.home.path();
    let out = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(t.kubeconfig())
        .arg("--cache-dir")
        .arg(home.join("kube/cache"))
        .arg("--request-timeout=20s")
        .args(args)
        .env("PATH", path)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("cfg"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env_remove("KAAS_CONFIG")
        .kill_on_drop(true)
        .output()
        .await
        .expect("kubectl runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

async fn chain_journey(host_kubeconfig: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("https://127.0.0.1:{port}");
    let server = Server::start_on(
        &dir.path().join("data"),
        &format!("127.0.0.1:{port}"),
        &[
            ("KAAS_SERVER_TLS_MODE", "files"),
            ("KAAS_SERVER_TLS_CERT", cert_path.to_str().unwrap()),
            ("KAAS_SERVER_TLS_KEY", key_path.to_str().unwrap()),
            ("KAAS_SERVER_PUBLIC_URL", &base),
            ("KAAS_ISSUER_TOKEN_LIFETIME", "20s"),
            ("KAAS_HOST_KUBECONFIG", host_kubeconfig.to_str().unwrap()),
            ("KAAS_HOST_EXTERNAL_ADDRESSES", "127.0.0.1"),
        ],
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    let web = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    server.set_up_admin_in_console(&web, ADMIN_PASSWORD).await;
    let ca = cert_path.to_str().unwrap();
    let login = async |t: &Terminal, email: &str, password: &str| {
        let r = t
            .kaas(
                &[
                    "login",
                    &base,
                    "--email",
                    email,
                    "--password-stdin",
                    "--ca-file",
                    ca,
                ],
                &format!("{password}\n"),
            )
            .await;
        assert!(r.ok, "{r:?}");
        t.stored(&base)["token"].as_str().unwrap().to_string()
    };
    let call = async |method: reqwest::Method, path: &str, token: &str, body: Option<Value>| {
        let mut req = web
            .request(method, format!("{base}/api/v1{path}"))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json::<Value>().await.unwrap_or(Value::Null))
    };

    // The administrator makes an account; its owner signs in from a shell.
    let root_terminal = Terminal::new();
    let root = login(&root_terminal, "root@example.com", ADMIN_PASSWORD).await;
    let (status, mem) = call(
        reqwest::Method::POST,
        "/users",
        &root,
        Some(json!({"email": "mem@example.com", "name": "Mem", "password": MEMBER_PASSWORD})),
    )
    .await;
    assert_eq!(status, 201, "{mem}");
    let mem_id = mem["id"].as_str().unwrap().to_string();
    let t = Terminal::new();
    let token = login(&t, "mem@example.com", MEMBER_PASSWORD).await;
    let (status, org) = call(
        reqwest::Method::POST,
        "/orgs",
        &token,
        Some(json!({"name": "acme"})),
    )
    .await;
    assert_eq!(status, 201, "{org}");
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
    let ws_id = ws["id"].as_str().unwrap().to_string();

    // The exec-plugin kubeconfig, merged into the user's own.
    std::fs::create_dir_all(t.kubeconfig().parent().unwrap()).unwrap();
    let r = t.kaas(&["kubeconfig", "dev", "--merge"], "").await;
    assert!(r.ok, "{r:?}");
    let merged: Value =
        serde_yaml::from_str(&std::fs::read_to_string(t.kubeconfig()).unwrap()).unwrap();
    let exec = &merged["users"][0]["user"]["exec"];
    assert_eq!(exec["command"], "kaas", "{merged}");
    assert_eq!(exec["args"][0], "credential", "{merged}");

    // kubectl through `kaas credential`: the new API server first fetches the issuer's
    // discovery document, and kaas's RBAC reaches it shortly after Ready.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (ok, out) = kubectl(&t, &["--context", "dev", "get", "ns", "-o", "name"]).await;
        if ok && out.contains("namespace/default") {
            break;
        }
        assert!(Instant::now() < deadline, "kubectl get ns: {out}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The plugin's cache: one token issued (the audit log's newest `cluster_token.issue`
    // names it), then kubectl commands served from the cache file without another.
    let newest_issue = async || {
        let (status, log) = call(
            reqwest::Method::GET,
            "/audit?action=cluster_token.issue&limit=1",
            &root,
            None,
        )
        .await;
        assert_eq!(status, 200, "{log}");
        log["items"][0]["detail"].as_str().unwrap().to_string()
    };
    let cache_dir = t.home.path().join("cache/kaas/tokens");
    let cached = || {
        let files: Vec<_> = std::fs::read_dir(&cache_dir).unwrap().flatten().collect();
        assert_eq!(files.len(), 1, "{files:?}");
        std::fs::read(files[0].path()).unwrap()
    };
    std::fs::remove_dir_all(&cache_dir).unwrap();
    let (ok, out) = kubectl(&t, &["--context", "dev", "get", "ns"]).await;
    assert!(ok, "{out}");
    // The token expires at most one lifetime from here.
    let fetched = Instant::now();
    let (token_file, issued) = (cached(), newest_issue().await);
    let jti = serde_json::from_slice::<Value>(&token_file).unwrap()["token"]
        .as_str()
        .map(crate::kubectl_tokens::claims)
        .unwrap()["jti"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(issued.contains(&format!("token_id={jti}")), "{issued}");
    let (ok, out) = kubectl(&t, &["--context", "dev", "get", "ns"]).await;
    assert!(ok, "{out}");
    assert_eq!(cached(), token_file, "the cached token was not reused");
    assert_eq!(newest_issue().await, issued, "another token was issued");

    // Disabled by the administrator.
    let (status, body) = call(
        reqwest::Method::PATCH,
        &format!("/users/{mem_id}"),
        &root,
        Some(json!({"disabled": true})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // kubectl still runs on the cached token, which authenticates until it expires: the API
    // server lets it in, or refuses it once the next tenant sync has taken the role away.
    let (ok, out) = kubectl(&t, &["--context", "dev", "get", "ns"]).await;
    assert!(
        fetched.elapsed() < LIFETIME * 3 / 4,
        "too slow to see the cache"
    );
    assert!(
        !out.contains("kaas login"),
        "not served from the cache: {out}"
    );
    assert!(ok || out.contains("Forbidden"), "{out}");
    assert_eq!(cached(), token_file);
    // A new token is refused at once: one readable line.
    let fresh = t
        .command(&["credential", "--server", &base, "--workspace", &ws_id])
        .env("XDG_CACHE_HOME", t.home.path().join("empty-cache"))
        .output()
        .await
        .unwrap();
    let r = Ran {
        ok: fresh.status.success(),
        stdout: String::from_utf8_lossy(&fresh.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&fresh.stderr).into_owned(),
    };
    let line = one_line_failure(&r);
    assert!(line.contains("run `kaas login"), "{line}");
    // The token kubectl cached stops working within its lifetime: no command started after
    // it expired gets in.
    loop {
        let started = Instant::now();
        let (ok, out) = kubectl(&t, &["--context", "dev", "get", "ns"]).await;
        if !ok {
            break;
        }
        assert!(
            started < fetched + LIFETIME,
            "still let in {:?} after the token was issued: {out}",
            started - fetched
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Once it has expired, kubectl says what to do; no token was issued to the disabled user.
    tokio::time::sleep(LIFETIME.saturating_sub(fetched.elapsed())).await;
    let (ok, out) = kubectl(&t, &["--context", "dev", "get", "ns"]).await;
    assert!(!ok, "{out}");
    assert!(out.contains("run `kaas login"), "{out}");
    assert_eq!(newest_issue().await, issued);
    // The API credential itself is refused too.
    let (status, _) = call(reqwest::Method::GET, "/me", &token, None).await;
    assert_eq!(status, 401);
}

// Multi-threaded: fakehost's virtual cluster answers kubectl and its authenticator fetches
// from kaas in-process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_user_loses_kubectl_access_within_the_token_lifetime() {
    let dir = tempfile::tempdir().unwrap();
    let (_host, _k3k, host_kubeconfig) = fake_host(dir.path()).await;
    chain_journey(&host_kubeconfig).await;
}

/// The same chain where the real kube-apiserver's JWT authenticator decides (a realhost of
/// its own: this kaas's reconciler owns the whole host).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_user_loses_kubectl_access_within_the_token_lifetime_on_realhost() {
    crate::realhost::PrivateRealHost::with(1, async |host| chain_journey(&host.kubeconfig).await)
        .await;
}
