//! Issue 7 (and 8's backup) targets, measured on a real database file (numbers printed,
//! nothing asserted):
//! - a meter tick over 1,000 workspaces (target < 100 ms);
//! - finalizing a month for 100 organizations with 1,000 workspaces and 744 hourly records
//!   each (target < 2 s);
//! - the database file size of a year of hourly usage for 1,000 workspaces (target < 500 MB),
//!   and how long a backup of it takes (issue 8: < 5 s).
//!
//! Run: `cargo bench --bench billing`.

mod seed;

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use kaas::clock::ManualClock;
use kaas::domain::billing::{DayUsage, HourSlice};
use kaas::domain::{OrgLimits, WorkspaceId, WorkspaceState};
use kaas::ops::Ops;
use kaas::ops::orgs::NewOrg;
use kaas::ops::reconcile::Observation;
use kaas::ops::workspaces::NewWorkspace;
use kaas::store::Store;
use kaas::store::usage as ustore;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn at(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

/// A realistic hour: fully observed and billable, some quota usage, sometimes a node.
fn hour_slice(revision: u32, ws: u128, hour: u32) -> HourSlice {
    let wobble = ((ws as u64).wrapping_mul(31) + u64::from(hour) * 7) % 1000;
    HourSlice {
        revision,
        observed_s: 3600,
        billable_s: 3600,
        node_s: if ws.is_multiple_of(10) { 3600 } else { 0 },
        used_s: 3600,
        used_cpu_milli_s: (500 + wobble) * 3600,
        used_memory_mib_s: (1024 + wobble) * 3600,
        used_storage_gib_s: 5 * 3600,
    }
}

fn full_day(revision: u32, ws: u128) -> DayUsage {
    DayUsage {
        hours: (0..24u8)
            .map(|h| (h, vec![hour_slice(revision, ws, u32::from(h))]))
            .collect(),
    }
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = ManualClock::new(at("2026-11-01T00:00:00Z"));
    let (store, _) = Store::open(&dir.path().join("kaas.redb"), 64 << 20).expect("store");
    let ops = Ops::new(Arc::new(store), Arc::new(clock.clone()), seed::unlimited());
    ops.seed_plans().expect("plans");
    ops.close_periods().expect("billing starts");
    let shell = seed::shell();

    // 100 organizations × 10 workspaces, all Ready.
    let fill = Instant::now();
    let mut workspaces: Vec<WorkspaceId> = Vec::new();
    for o in 0..100 {
        let org = ops
            .create_org(
                &shell,
                NewOrg {
                    name: format!("org-{o:03}"),
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
                max_workspaces: Some(20),
                max_members: None,
            },
        )
        .expect("limits");
        for w in 0..10 {
            let ws = ops
                .create_workspace(
                    &shell,
                    org,
                    NewWorkspace {
                        name: format!("ws-{w}"),
                        plan: ["starter", "standard", "premium"][w % 3].into(),
                    },
                )
                .expect("workspace")
                .workspace
                .id;
            ops.record_observation(
                ws,
                &Observation {
                    state: WorkspaceState::Ready,
                    phase: Some("Ready".into()),
                    message: String::new(),
                    applied_generation: Some(1),
                },
            )
            .expect("ready");
            workspaces.push(ws);
        }
    }
    println!(
        "filled 100 organizations, {} workspaces in {:?}",
        workspaces.len(),
        fill.elapsed()
    );

    // Meter ticks, a minute apart.
    let mut ticks = Vec::new();
    for _ in 0..30 {
        clock.advance(jiff::SignedDuration::from_secs(60));
        let t = Instant::now();
        let report = ops.meter_tick().expect("tick");
        ticks.push(t.elapsed());
        assert_eq!(report.workspaces, 1_000);
    }
    ticks.sort();
    println!(
        "meter tick over 1,000 workspaces: median {:?}, p99 {:?}, max {:?}  (target < 100 ms)",
        percentile(&ticks, 0.5),
        percentile(&ticks, 0.99),
        ticks.last().unwrap()
    );

    // A whole November of hourly records for every workspace (744 h = 31 days × 24; the
    // month has 30 days, so the 31st day is December's first, as a real meter would have).
    let revision = |ws: &WorkspaceId| {
        ustore::meter_state(&ops.store.read().unwrap(), *ws)
            .unwrap()
            .map(|s| s.seen.revision)
            .unwrap_or(1)
    };
    let first_day = (at("2026-11-01T00:00:00Z").as_second() / 86_400) as i32;
    let tx = ops.store.write().expect("tx");
    for ws in &workspaces {
        let rev = revision(ws);
        for d in 0..31 {
            ustore::put_usage_day(&tx, *ws, first_day + d, &full_day(rev, ws.0)).expect("day");
        }
    }
    tx.commit().expect("commit");
    clock.set(at("2026-12-01T00:05:00Z"));
    let t = Instant::now();
    let made = ops.close_periods().expect("close");
    println!(
        "finalizing November for 100 organizations, 1,000 workspaces × 744 hourly records: {:?} ({} invoices)  (target < 2 s)",
        t.elapsed(),
        made.len()
    );

    // A year of hourly usage for 1,000 workspaces in a fresh file.
    let year_path = dir.path().join("year.redb");
    let (year, _) = Store::open(&year_path, 64 << 20).expect("store");
    let start = Instant::now();
    for chunk in (0..1_000u128).collect::<Vec<_>>().chunks(50) {
        let tx = year.write().expect("tx");
        for w in chunk {
            let ws = WorkspaceId(kaas::domain::ids::monotonic() ^ *w);
            for d in 0..365 {
                ustore::put_usage_day(&tx, ws, first_day + d, &full_day(3, *w)).expect("day");
            }
        }
        tx.commit().expect("commit");
    }
    let bytes = std::fs::metadata(&year_path).map(|m| m.len()).unwrap_or(0);
    println!(
        "a year of hourly usage for 1,000 workspaces (8,760,000 hourly records in 365,000 day records): {:.1} MB on disk, written in {:?}  (target < 500 MB)",
        bytes as f64 / 1e6,
        start.elapsed()
    );
    let t = Instant::now();
    let b = year
        .backup_to(&dir.path().join("year-backup.redb"))
        .expect("backup");
    println!(
        "backup of that database ({} records, {:.1} MB): {:?}  (issue 8 target < 5 s)",
        b.records,
        b.bytes as f64 / 1e6,
        t.elapsed()
    );
}
