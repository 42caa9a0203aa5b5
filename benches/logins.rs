//! Issue 16, finding 1, measured on the real binary (numbers printed, nothing asserted): the
//! server's resident memory while 150 clients send bogus logins at once (each one costs an
//! argon2id hash of about 19 MiB unless it is refused first), and after they are done.
//! Before the fix the peak was about 3 GB and about 1 GB stayed resident.
//!
//! Run: `cargo bench --bench logins`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const CLIENTS: usize = 150;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut child, base) = common::serve_ready(dir.path()).await;
    let pid = child.id();
    let client = reqwest::Client::new();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib(pid);

    // Sample the resident set while the flood runs.
    let peak = Arc::new(AtomicU64::new(before));
    let running = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, running) = (peak.clone(), running.clone());
        tokio::spawn(async move {
            while running.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let flood = Instant::now();
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let (client, url) = (client.clone(), format!("{base}/api/v1/auth/login"));
        clients.push(tokio::spawn(async move {
            client
                .post(url)
                .json(&serde_json::json!({
                    "email": format!("nobody-{i}@example.com"),
                    "password": "not the password",
                }))
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }));
    }
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for c in clients {
        *statuses.entry(c.await.unwrap_or(0)).or_default() += 1;
    }
    let took = flood.elapsed();
    running.store(false, Ordering::Relaxed);
    let _ = sampler.await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = rss_kib(pid);

    println!("{CLIENTS} concurrent bogus logins against the release binary:");
    println!(
        "  answers: {statuses:?} (0 = no answer) in {:.2} s",
        took.as_secs_f64()
    );
    println!(
        "  resident memory: before {:.1} MiB, peak {:.1} MiB, 5 s after {:.1} MiB (before the fix: peak ~2,980 MiB, ~1,000 MiB after)",
        mib(before),
        mib(peak.load(Ordering::Relaxed)),
        mib(after)
    );
    let _ = child.kill();
    let _ = child.wait();
}
