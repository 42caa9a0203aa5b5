//! Issue 4 targets against fakehost with its simulated K3K (controller delay zero), numbers
//! printed, nothing asserted: 200 workspaces created at once until all are Ready; a full
//! resync of 1,000 in-sync workspaces (time, and write calls on the host and inside the
//! virtual clusters); host API requests per workspace creation.
//!
//! Run: `cargo bench --bench reconcile`.

mod seed;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kaas::clock::SystemClock;
use kaas::domain::{OrgLimits, WorkspaceState};
use kaas::host::desired::HostSettings;
use kaas::ops::Ops;
use kaas::ops::orgs::NewOrg;
use kaas::ops::workspaces::NewWorkspace;
use kaas::reconcile::ReconcilerSettings;
use kaas::reconcile::connection::HostConnection;
use kaas::store::{Store, records};

fn ready_count(ops: &Ops) -> usize {
    let r = ops.store.read().expect("read");
    records::all_workspaces(&r)
        .expect("workspaces")
        .iter()
        .filter(|w| w.state == WorkspaceState::Ready)
        .count()
}

async fn wait_ready(ops: &Ops, n: usize, limit: Duration) -> Duration {
    let start = Instant::now();
    while ready_count(ops) < n {
        assert!(
            start.elapsed() < limit,
            "only {} of {n} Ready after {limit:?}; the others: {}",
            ready_count(ops),
            not_ready(ops)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

/// What the workspaces that are not Ready say, counted by state and message.
fn not_ready(ops: &Ops) -> String {
    let r = ops.store.read().expect("read");
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for w in records::all_workspaces(&r).expect("workspaces") {
        if w.state != WorkspaceState::Ready {
            *seen
                .entry(format!("{:?}: {}", w.state, w.message))
                .or_default() += 1;
        }
    }
    seen.iter()
        .map(|(what, n)| format!("{n} × {what}"))
        .collect::<Vec<_>>()
        .join("; ")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let host = fakehost::FakeHost::start(fakehost::FakeHostOptions {
        manifests: vec![PathBuf::from(fakehost::K3K_CRDS_DIR)],
        ..Default::default()
    })
    .await
    .expect("fakehost");
    let k3k = fakehost::k3k::K3kController::for_host(
        &host,
        fakehost::k3k::K3kOptions {
            provision_delay: Duration::ZERO,
            poll_interval: Duration::from_millis(20),
            ..Default::default()
        },
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = dir.path().join("host.kubeconfig");
    host.write_kubeconfig(&kubeconfig).expect("kubeconfig");

    let (store, _) = Store::open(&dir.path().join("kaas.redb"), 8 << 20).expect("store");
    let ops = Arc::new(Ops::new(
        Arc::new(store),
        Arc::new(SystemClock),
        seed::unlimited(),
    ));
    ops.seed_plans().expect("plans");
    let shell = seed::shell();
    let me = seed::member(&ops, "owner@example.com").await;
    let org = ops
        .create_org(
            &me,
            NewOrg {
                name: "bench".into(),
                display_name: None,
            },
        )
        .expect("org")
        .org
        .id;
    ops.set_org_limits(
        &shell,
        org,
        OrgLimits {
            max_workspaces: Some(2000),
            max_members: None,
        },
    )
    .expect("limits");

    let conn = HostConnection::new(Some(kubeconfig));
    let settings = ReconcilerSettings {
        host: HostSettings {
            external_addresses: vec!["127.0.0.1".into()],
            k3s_version: "v1.33.1-k3s1".into(),
            ..Default::default()
        },
        resync_interval: Duration::from_secs(3600),
        poll_while_busy: Duration::from_millis(200),
        ..Default::default()
    };
    let reconciler = kaas::app::attach_host(&ops, conn, settings);
    // Let the first probe connect before the clock starts.
    while host.request_counts().get == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // 1. 200 workspaces created at once.
    host.reset_request_counts();
    let start = Instant::now();
    for i in 0..200 {
        ops.create_workspace(
            &me,
            org,
            NewWorkspace {
                name: format!("a-{i:03}"),
                plan: "starter".into(),
            },
        )
        .expect("ws");
    }
    let took = wait_ready(&ops, 200, Duration::from_secs(120)).await + Duration::ZERO;
    let counts = host.request_counts();
    println!(
        "200 workspaces created at once: all Ready in {:.2} s after the first create (target < 20 s); creation total {:.2} s",
        took.as_secs_f64(),
        start.elapsed().as_secs_f64()
    );
    println!(
        "host API requests per workspace creation (to Ready): {:.1} (get {:.1}, list {:.1}, watch {:.1}, patch {:.1}, create {:.1}, update {:.1}, delete {:.1})",
        counts.total() as f64 / 200.0,
        counts.get as f64 / 200.0,
        counts.list as f64 / 200.0,
        counts.watch as f64 / 200.0,
        counts.patch as f64 / 200.0,
        counts.create as f64 / 200.0,
        counts.update as f64 / 200.0,
        counts.delete as f64 / 200.0
    );

    // 2. Up to 1,000 and a full resync of them in sync.
    for i in 0..800 {
        ops.create_workspace(
            &me,
            org,
            NewWorkspace {
                name: format!("b-{i:03}"),
                plan: "starter".into(),
            },
        )
        .expect("ws");
    }
    wait_ready(&ops, 1000, Duration::from_secs(600)).await;
    while !reconciler.idle() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    while !reconciler.idle() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    host.reset_request_counts();
    k3k.reset_vcluster_request_counts();
    let passes_before = reconciler.stats().passes;
    let start = Instant::now();
    reconciler.resync();
    tokio::time::sleep(Duration::from_millis(1)).await;
    while !reconciler.idle() {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let took = start.elapsed();
    let counts = host.request_counts();
    let inside = k3k.vcluster_request_counts();
    println!(
        "full resync of 1,000 in-sync workspaces: {:.2} s (target < 2 s), {} passes, host writes {} (target 0), host reads {}, writes inside virtual clusters {} (target 0), reads inside {}",
        took.as_secs_f64(),
        reconciler.stats().passes - passes_before,
        counts.writes(),
        counts.get + counts.list,
        inside.writes(),
        inside.get + inside.list
    );
    reconciler.stop();
}
