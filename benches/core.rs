//! Issue 2 targets, measured on the real binary (numbers printed, nothing asserted):
//! idle resident memory with 1,000 workspaces stored, start to `/readyz` OK, and the
//! latency of an authenticated GET of a 50-item list.
//!
//! Run: `cargo bench --bench core`.

mod seed;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kaas::clock::SystemClock;
use kaas::domain::OrgLimits;
use kaas::ops::Ops;
use kaas::ops::orgs::NewOrg;
use kaas::ops::workspaces::NewWorkspace;
use kaas::store::Store;

const BIN: &str = env!("CARGO_BIN_EXE_kaas");

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("kaas.redb");

    // Fill a database: 1,000 workspaces in 20 organizations, one with exactly 50.
    let fill = Instant::now();
    let (org_id, token) = {
        let (store, _) = Store::open(&db, 8 << 20).expect("store");
        let ops = Ops::new(Arc::new(store), Arc::new(SystemClock), seed::unlimited());
        ops.seed_plans().expect("plans");
        let shell = seed::shell();
        let me = seed::member(&ops, "bench@example.com").await;
        let token = seed::read_only_token(&ops, &me).await;
        let mut first = None;
        for o in 0..20 {
            let org = ops
                .create_org(
                    &me,
                    NewOrg {
                        name: format!("org-{o:02}"),
                        display_name: None,
                    },
                )
                .expect("org");
            ops.set_org_limits(
                &shell,
                org.org.id,
                OrgLimits {
                    max_workspaces: Some(100),
                    max_members: None,
                },
            )
            .expect("limits");
            for w in 0..50 {
                ops.create_workspace(
                    &me,
                    org.org.id,
                    NewWorkspace {
                        name: format!("ws-{w:02}"),
                        plan: "starter".into(),
                    },
                )
                .expect("ws");
            }
            first.get_or_insert(org.org.id);
        }
        (first.expect("an org"), token)
    };
    let db_size = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
    println!(
        "filled 1,000 workspaces in {:.1} s; database file {:.1} MiB",
        fill.elapsed().as_secs_f64(),
        db_size as f64 / 1048576.0
    );

    // Start the real binary and time it to /readyz OK.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder().build().expect("client");
    let start = Instant::now();
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.path())
        .env("KAAS_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("kaas starts");
    let ready = loop {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
        {
            break start.elapsed();
        }
        if start.elapsed() > Duration::from_secs(10) {
            panic!("kaas not ready after 10 s");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    println!(
        "start to /readyz OK: {:.1} ms (target < 200 ms)",
        ready.as_secs_f64() * 1000.0
    );

    // Authenticated GET of a 50-item list, sequential, over one keep-alive connection.
    let url = format!("{base}/api/v1/orgs/{org_id}/workspaces?limit=50");
    let mut times = Vec::with_capacity(2000);
    for i in 0..2200 {
        let t = Instant::now();
        let r = client
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .expect("get");
        assert!(r.status().is_success());
        let body = r.bytes().await.expect("body");
        if i == 0 {
            let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
            assert_eq!(v["items"].as_array().map(Vec::len), Some(50));
        }
        if i >= 200 {
            times.push(t.elapsed());
        }
    }
    times.sort();
    println!(
        "GET 50 workspaces (authenticated, client round trip, n={}): median {:.3} ms, p90 {:.3} ms, p99 {:.3} ms (target median < 1 ms)",
        times.len(),
        percentile(&times, 0.5).as_secs_f64() * 1000.0,
        percentile(&times, 0.9).as_secs_f64() * 1000.0,
        percentile(&times, 0.99).as_secs_f64() * 1000.0
    );

    // Idle memory: let the server settle, then read its resident set.
    tokio::time::sleep(Duration::from_secs(3)).await;
    match rss_kib(child.id()) {
        Some(kib) => println!(
            "idle resident memory with 1,000 workspaces: {:.1} MiB (target < 30 MiB)",
            kib as f64 / 1024.0
        ),
        None => println!("idle resident memory: could not read /proc"),
    }
    let _ = child.kill();
    let _ = child.wait();
}
