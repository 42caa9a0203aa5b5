//! What the real binary answers before any handler: `/readyz` with its status only, the Host
//! check against DNS rebinding, who may read `/metrics` (this machine, a token, a separate
//! listener), and HSTS over TLS.

use std::process::Command;

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HOST, STRICT_TRANSPORT_SECURITY};
use serde_json::{Value, json};

use crate::binary::{Server, client};

const BIN: &str = env!("CARGO_BIN_EXE_kaas");
const TOKEN: &str = "metrics-0123456789abcdef";

fn port_of(base: &str) -> u16 {
    base.rsplit(':').next().unwrap().parse().unwrap()
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn a_loopback_kaas_refuses_rebound_names_and_keeps_metrics_to_this_machine() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let c = client();
    let port = port_of(&server.base);

    // Status only, without credentials.
    let r = c
        .get(format!("{}/readyz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"status": "ready"}));
    assert!(!r_has_hsts(&c, &server.base).await, "plain HTTP: no HSTS");

    // A page on evil.example whose name now resolves to 127.0.0.1 reaches nothing.
    for path in ["/readyz", "/setup", "/api/v1/auth/login", "/metrics"] {
        let r = c
            .get(format!("{}{path}", server.base))
            .header(HOST, format!("evil.example:{port}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::MISDIRECTED_REQUEST, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "misdirected", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("server.allowed_hosts"),
            "{body}"
        );
    }
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}")] {
        let r = c
            .get(format!("{}/readyz", server.base))
            .header(HOST, host.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{host}");
    }

    // Metrics: this machine may read them, not a client behind a local proxy.
    let r = c
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("kaas_http_requests_total"));
    let r = c
        .get(format!("{}/metrics", server.base))
        .header("x-forwarded-for", "203.0.113.7")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // `kaas healthcheck` still finds it ready.
    let out = Command::new(BIN)
        .args(["healthcheck", "--timeout", "5", "--data-dir"])
        .arg(dir.path())
        .env_remove("KAAS_CONFIG")
        .env("KAAS_SERVER_LISTEN", format!("127.0.0.1:{port}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn r_has_hsts(c: &reqwest::Client, base: &str) -> bool {
    let r = c.get(format!("{base}/healthz")).send().await.unwrap();
    r.headers().contains_key(STRICT_TRANSPORT_SECURITY)
}

#[tokio::test]
async fn metrics_need_the_token_and_move_to_their_own_listener() {
    let dir = tempfile::tempdir().unwrap();
    let metrics_port = free_port();
    let metrics_listen = format!("127.0.0.1:{metrics_port}");
    let server = Server::start_with(
        dir.path(),
        &[
            ("KAAS_SERVER_METRICS_TOKEN", TOKEN),
            ("KAAS_SERVER_METRICS_LISTEN", &metrics_listen),
            ("KAAS_SERVER_ALLOWED_HOSTS", "kaas.internal"),
            ("KAAS_SERVER_LIMITS_HEADER_READ_TIMEOUT", "1s"),
            ("KAAS_SERVER_LIMITS_MAX_CONNECTIONS_PER_ADDRESS", "4"),
        ],
    );
    let c = client();
    let port = port_of(&server.base);
    let r = c
        .get(format!("{}/readyz", server.base))
        .header(HOST, format!("kaas.internal:{port}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "an allowed name");

    let auth = format!("Bearer {TOKEN}");
    let r = c
        .get(format!("{}/metrics", server.base))
        .header(AUTHORIZATION, &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "not on the main listener"
    );
    let metrics = format!("http://{metrics_listen}/metrics");
    let r = c.get(&metrics).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "no token");
    let r = c
        .get(&metrics)
        .header(AUTHORIZATION, "Bearer wrong-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "a wrong token");
    let r = c
        .get(&metrics)
        .header(AUTHORIZATION, &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("kaas_http_requests_total"));

    // The metrics listener keeps [server.limits] too: connections beyond the per-address
    // limit are closed at once, and idle ones after the header timeout.
    use tokio::io::AsyncReadExt;
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(
            tokio::net::TcpStream::connect(&metrics_listen)
                .await
                .unwrap(),
        );
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let closed_within = async |s: &mut tokio::net::TcpStream, secs: u64| {
        let mut buf = [0u8; 64];
        matches!(
            tokio::time::timeout(std::time::Duration::from_secs(secs), s.read(&mut buf)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    };
    let mut fifth = tokio::net::TcpStream::connect(&metrics_listen)
        .await
        .unwrap();
    assert!(
        closed_within(&mut fifth, 1).await,
        "a fifth connection from one address was kept"
    );
    for s in &mut idle {
        assert!(
            closed_within(s, 3).await,
            "an idle connection outlived the header timeout"
        );
    }
}

#[tokio::test]
async fn tls_answers_carry_hsts() {
    let dir = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let data = dir.path().join("data");
    let server = Server::start_with(
        &data,
        &[
            ("KAAS_SERVER_TLS_MODE", "files"),
            ("KAAS_SERVER_TLS_CERT", cert_path.to_str().unwrap()),
            ("KAAS_SERVER_TLS_KEY", key_path.to_str().unwrap()),
        ],
    );
    assert!(server.base.starts_with("https://"), "{}", server.base);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let c = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let r = c
        .get(format!("{}/readyz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()[STRICT_TRANSPORT_SECURITY],
        "max-age=31536000",
        "{:?}",
        r.headers()
    );
}
