//! What the real `kaas serve` does on its own while it runs and when it stops: scheduled
//! backups (taken when due, pruned, each a valid backup) and the meter's final reading on a
//! clean stop, so the time up to the stop is accounted for.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

use crate::binary::{Server, client};
use crate::ship::admin_token;

const BIN: &str = env!("CARGO_BIN_EXE_kaas");

/// The scheduled backups in `dir`, by name.
fn scheduled_backups(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    let name = p.file_name().unwrap().to_string_lossy().to_string();
                    name.starts_with("scheduled-") && name.ends_with(".redb")
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

fn wait_for(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `kaas backup verify FILE`: its success and its one line.
fn verify(file: &Path) -> (bool, String) {
    let out = Command::new(BIN)
        .args(["backup", "verify"])
        .arg(file)
        .env_remove("KAAS_CONFIG")
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// How many users a backup holds.
fn users(file: &Path) -> usize {
    kaas::store::backup::records(file).unwrap()["users-v1"].len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_server_takes_scheduled_backups_when_due_and_prunes_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let backups = data.join("backups");
    // The shortest interval there is (1 minute); one backup kept.
    let env = [("KAAS_BACKUP_INTERVAL", "1m"), ("KAAS_BACKUP_KEEP", "1")];

    // A new box has no scheduled backup yet, so one is due at once.
    let server = Server::start_with(&data, &env);
    wait_for(
        "the first scheduled backup",
        Duration::from_secs(20),
        || scheduled_backups(&backups).len() == 1,
    );
    let first = scheduled_backups(&backups).remove(0);
    let _token = admin_token(&server).await;
    assert!(server.stop().success());
    let (ok, out) = verify(&first);
    assert!(ok && out.starts_with("backup OK: "), "{out}");
    assert_eq!(users(&first), 0, "taken before the administrator was made");

    // The next is due a minute after the newest on disk, across restarts: with that one made
    // to look 57 seconds old, a server started now takes the next within seconds, and keeps
    // only it.
    let aged = SystemTime::now() - Duration::from_secs(57);
    std::fs::File::options()
        .write(true)
        .open(&first)
        .unwrap()
        .set_modified(aged)
        .unwrap();
    let server = Server::start_with(&data, &env);
    wait_for("the next scheduled backup", Duration::from_secs(20), || {
        scheduled_backups(&backups).iter().any(|b| *b != first)
    });
    let next = scheduled_backups(&backups)
        .into_iter()
        .find(|b| *b != first)
        .unwrap();
    let taken = std::fs::metadata(&next).unwrap().modified().unwrap();
    assert!(
        taken >= aged + Duration::from_secs(60),
        "taken when due (a minute after the newest), not at the start"
    );
    wait_for("the older backup pruned", Duration::from_secs(5), || {
        !first.exists()
    });
    let second = scheduled_backups(&backups);
    assert_eq!(second, [next], "only the newest is kept");
    assert!(server.stop().success());

    // A valid backup of the database as it now is: the administrator is in it.
    let (ok, out) = verify(&second[0]);
    assert!(ok && out.starts_with("backup OK: "), "{out}");
    assert_eq!(users(&second[0]), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_takes_a_last_meter_reading_so_the_time_up_to_it_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // An hourly meter: after the reading at the start, only the stop takes another.
    let env = [
        ("KAAS_BILLING_METER_INTERVAL", "1h"),
        ("KAAS_BACKUP_INTERVAL", "0s"),
    ];
    let server = Server::start_with(&data, &env);
    let token = admin_token(&server).await;
    let c = client();
    let call = async |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut req = c
            .request(method, format!("{}/api/v1{path}", server.base))
            .bearer_auth(&token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json::<Value>().await.unwrap_or(Value::Null))
    };
    let (status, org) = call(
        reqwest::Method::POST,
        "/orgs",
        Some(json!({"name": "acme"})),
    )
    .await;
    assert_eq!(status, 201, "{org}");
    let org = org["id"].as_str().unwrap().to_string();
    let (status, ws) = call(
        reqwest::Method::POST,
        &format!("/orgs/{org}/workspaces"),
        Some(json!({"name": "prod", "plan": "starter"})),
    )
    .await;
    assert_eq!(status, 201, "{ws}");
    let ws_id: kaas::domain::WorkspaceId = ws["id"].as_str().unwrap().parse().unwrap();
    let created: jiff::Timestamp = ws["created_at"].as_str().unwrap().parse().unwrap();
    // Time passes that only a reading at the stop can account for.
    std::thread::sleep(Duration::from_millis(2500));
    let stopping = jiff::Timestamp::now();
    assert!(server.stop().success());
    let stopped = jiff::Timestamp::now();

    // The database, reopened: the workspace's meter was last moved at the stop.
    {
        let (store, _) = kaas::store::Store::open(&data.join("kaas.redb"), 1 << 20).unwrap();
        let r = store.read().unwrap();
        let last = kaas::store::usage::meter_state(&r, ws_id)
            .unwrap()
            .expect("a meter position");
        assert!(
            last.at >= stopping.as_second() && last.at <= stopped.as_second(),
            "last reading at {}, stop between {stopping} and {stopped}",
            last.at
        );
    }

    // What the API exports after a restart: the time observed runs from the creation up to
    // the stop (the time kaas was down is a gap, not observed).
    let server = Server::start_with(&data, &env);
    let login = c
        .post(format!("{}/api/v1/auth/login", server.base))
        .json(&json!({"email": "root@example.com", "password": "an admin passphrase"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let from = created - jiff::SignedDuration::from_hours(1);
    let until = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1);
    let res = c
        .get(format!(
            "{}/api/v1/orgs/{org}/usage?from={from}&until={until}",
            server.base
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let export: Value = res.json().await.unwrap();
    let records = export["records"].as_array().unwrap();
    let meter = records[0]["meter"].clone();
    let observed: i64 = records
        .iter()
        .filter(|r| r["meter"] == meter)
        .map(|r| r["observed_seconds"].as_i64().unwrap())
        .sum();
    let up_to_stop = stopping.as_second() - created.as_second();
    // Whole seconds on both sides: a creation late in its second and a reading early in
    // another make the observed time one second shorter than the seconds' difference.
    // Without the reading at the stop it would be 0.
    assert!(
        observed >= up_to_stop - 1
            && observed >= 1
            && observed <= stopped.as_second() - created.as_second() + 1,
        "observed {observed} s; from the creation to the stop is {up_to_stop} s: {export}"
    );
    assert!(server.stop().success());
}
