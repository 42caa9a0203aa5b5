//! What the benches that run the real binary share: starting `kaas serve` on a free
//! loopback port over a data directory, and waiting until it answers `/readyz`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_kaas");

/// `kaas serve` over `data`, ready: the process and its base URL.
pub async fn serve_ready(data: &Path) -> (Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data)
        .env("KAAS_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("kaas starts");
    let client = reqwest::Client::new();
    let start = Instant::now();
    while !client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(start.elapsed() < Duration::from_secs(10), "kaas not ready");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (child, base)
}
