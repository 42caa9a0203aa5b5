//! Issue 17 targets (numbers printed, nothing asserted): the server's cluster-token issue
//! (`Ops::issue_cluster_token`: authorization, one ES256 signature, one audited write, on a
//! file-backed database) under 2 ms median; and `kaas credential`'s cached path (the real
//! binary, as kubectl runs it on every command) under 20 ms wall time.
//!
//! Run: `cargo bench --bench issuer`.

mod seed;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kaas::clock::SystemClock;
use kaas::ops::issuer::{IssuerSettings, KEK_LEN};
use kaas::ops::orgs::NewOrg;
use kaas::ops::workspaces::NewWorkspace;
use kaas::ops::{Ops, Settings};
use kaas::store::Store;

const BIN: &str = env!("CARGO_BIN_EXE_kaas");

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn report(what: &str, mut samples: Vec<Duration>, target: Duration) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{what}: median {:.3} ms, p90 {:.3} ms, p99 {:.3} ms over {} runs (target < {:.0} ms)",
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.9)),
        ms(percentile(&samples, 0.99)),
        samples.len(),
        ms(target)
    );
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, _) = Store::open(&dir.path().join("kaas.redb"), 8 << 20).expect("store");
    let ops = Ops::new(Arc::new(store), Arc::new(SystemClock), Settings::default());
    ops.seed_plans().expect("plans");
    ops.set_issuer(IssuerSettings {
        url: "https://kaas.bench:8443".into(),
        token_lifetime: Duration::from_secs(600),
        key_rotation: Duration::from_secs(86_400),
        kek: [3; KEK_LEN],
    })
    .expect("issuer");
    let me = seed::member(&ops, "bench@example.com").await;
    let org = ops
        .create_org(
            &me,
            NewOrg {
                name: "bench".into(),
                display_name: None,
            },
        )
        .expect("org");
    let ws = ops
        .create_workspace(
            &me,
            org.org.id,
            NewWorkspace {
                name: "bench".into(),
                plan: "starter".into(),
            },
        )
        .expect("workspace");
    let ws_id = ws.workspace.id;
    for _ in 0..20 {
        ops.issue_cluster_token(&me, ws_id).expect("token");
    }
    let mut samples = Vec::new();
    for _ in 0..500 {
        let t = Instant::now();
        let token = ops.issue_cluster_token(&me, ws_id).expect("token");
        samples.push(t.elapsed());
        std::hint::black_box(token);
    }
    report(
        "cluster token issue (server)",
        samples,
        Duration::from_millis(2),
    );

    // Of which the signature alone (the rest is authorization and the audited commit).
    let claims = serde_json::json!({"iss": "https://kaas.bench:8443", "aud": "kaas:x",
        "email": "bench@example.com", "groups": ["g"], "exp": 0, "nbf": 0, "iat": 0});
    let issuer = ops.issuer().expect("issuer");
    let mut samples = Vec::new();
    for _ in 0..500 {
        let t = Instant::now();
        std::hint::black_box(issuer.sign(&claims).expect("signed"));
        samples.push(t.elapsed());
    }
    report(
        "  of which the ES256 signature",
        samples,
        Duration::from_millis(2),
    );

    // The plugin's cached path: a token cached for this server and workspace.
    let home = dir.path().join("home");
    let paths = kaas::credential::Paths::from_env(|k| {
        (k == "HOME").then(|| home.to_string_lossy().into_owned())
    })
    .expect("paths");
    let server = "https://kaas.bench:8443";
    let cached = kaas::credential::CachedToken {
        token: ops.issue_cluster_token(&me, ws_id).expect("token").token,
        expires_at: jiff::Timestamp::now() + jiff::SignedDuration::from_secs(600),
        issued_at: Some(jiff::Timestamp::now()),
    };
    kaas::credential::write_private(
        &paths.cache_file(server, &ws_id.to_string()),
        &serde_json::to_vec(&cached).expect("json"),
    )
    .expect("cache");
    let run = || {
        let out = Command::new(BIN)
            .args([
                "credential",
                "--server",
                server,
                "--workspace",
                &ws_id.to_string(),
            ])
            .env_clear()
            .env("HOME", &home)
            .output()
            .expect("kaas credential");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    for _ in 0..5 {
        run();
    }
    let mut samples = Vec::new();
    for _ in 0..100 {
        let t = Instant::now();
        run();
        samples.push(t.elapsed());
    }
    report(
        "kaas credential, cached token (wall time per kubectl call)",
        samples,
        Duration::from_millis(20),
    );
}
