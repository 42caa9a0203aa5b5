//! The tamper-evident audit log: the hash chain through the API, the export and the console,
//! `kaas audit verify` on a copied database with an edited record, a backup restored with
//! its chain, and failed sign-ins folded into few, capped records.

use std::path::Path;
use std::process::Command;

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_kaas");

#[tokio::test]
async fn the_chain_is_verified_listed_and_exported_with_its_hashes() {
    let app = TestApp::new();
    let (_, root) = app.user("root@example.com", true).await;
    let root = bearer(&root);
    let (_, ada) = app.user("ada@example.com", false).await;
    let ada = bearer(&ada);
    let org = app.create_org(&ada, "acme").await;
    app.create_workspace(&ada, &org, "web", "starter").await;

    let r = app.call("GET", "/audit/verify", &root, None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["intact"], true, "{:?}", r.body);
    let records = r.body["records"].as_u64().unwrap();
    assert!(records >= 4, "{:?}", r.body);
    let r = app.call("GET", "/audit/verify", &ada, None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // The list carries each record's place: newest first, each linked to the one before.
    let r = app.call("GET", "/audit", &root, None).await;
    let items = r.body["items"].as_array().unwrap();
    assert_eq!(items[0]["seq"].as_u64(), Some(records));
    for pair in items.windows(2) {
        assert_eq!(pair[0]["prev_hash"], pair[1]["hash"], "{pair:?}");
        assert_eq!(pair[1]["hash"].as_str().unwrap().len(), 64);
    }

    // An organization admin exports their organization's events, as CSV and JSON.
    let r = app
        .call(
            "GET",
            &format!("/audit/export?org={org}&format=csv"),
            &ada,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = r.body.as_str().unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some(
            "seq,id,time,actor,actor_label,action,target,org_id,outcome,source,detail,prev_hash,hash"
        )
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 2, "org.create and workspace.create: {csv}");
    assert!(rows.iter().all(|l| l.contains(&org)), "{csv}");
    let r = app
        .call("GET", &format!("/audit/export?org={org}"), &ada, None)
        .await;
    let events = r.body.as_array().unwrap();
    assert_eq!(events[0]["action"], "workspace.create");
    assert_eq!(events[0]["hash"].as_str().unwrap().len(), 64);
    // Everything, for platform administrators only.
    let r = app.call("GET", "/audit/export", &ada, None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app.call("GET", "/audit/export", &root, None).await;
    assert_eq!(r.body.as_array().unwrap().len() as u64, records);
}

#[tokio::test]
async fn failed_sign_ins_with_long_distinct_inputs_grow_the_log_by_a_bounded_amount() {
    let app = TestApp::new();
    let (_, root) = app.user("root@example.com", true).await;
    app.user("ada@example.com", false).await;
    let count = |body: &Value| {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["outcome"] == "failure")
            .cloned()
            .collect::<Vec<Value>>()
    };
    // Thirty addresses that are no account, each as long as an address may be, and long
    // passwords: refused one by one until the throttle stops them.
    for i in 0..30 {
        let email = format!("{i:03}{}@example.com", "x".repeat(239));
        assert_eq!(email.len(), 254);
        let r = app
            .call(
                "POST",
                "/auth/login",
                &Auth::None,
                Some(json!({"email": email, "password": "p".repeat(200)})),
            )
            .await;
        assert!(
            r.status == StatusCode::UNAUTHORIZED || r.status == StatusCode::TOO_MANY_REQUESTS,
            "{:?}",
            r.body
        );
    }
    let r = app
        .call("GET", "/audit?action=auth.login", &bearer(&root), None)
        .await;
    let failures = count(&r.body);
    // The 1st, 2nd, 4th, 8th and 16th failure of the hour from this address.
    assert!(
        (1..=5).contains(&failures.len()),
        "{} records for 30 failures",
        failures.len()
    );
    let last = &failures[0];
    assert!(
        last["detail"]
            .as_str()
            .unwrap()
            .contains("failed attempts for unknown accounts"),
        "{last}"
    );
    for e in &failures {
        for field in ["actor_label", "target", "detail", "source", "action"] {
            assert!(e[field].as_str().unwrap().chars().count() <= 1024, "{e}");
        }
    }

    // A real account's failures are counted apart, and the count is said.
    for _ in 0..4 {
        app.call(
            "POST",
            "/auth/login",
            &Auth::None,
            Some(json!({"email": "ada@example.com", "password": "wrong"})),
        )
        .await;
    }
    let r = app
        .call("GET", "/audit?action=auth.login", &bearer(&root), None)
        .await;
    let ada: Vec<Value> = count(&r.body)
        .into_iter()
        .filter(|e| e["target"] == "ada@example.com")
        .collect();
    assert!(ada.len() <= 3, "{ada:?}");
}

fn kaas(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("KAAS_CONFIG")
        .output()
        .unwrap()
}

fn create_user(dir: &Path, email: &str) {
    let out = crate::binary::kaas_with_input(
        &["user", "create", "--email", email, "--name", "X"],
        dir,
        &format!("{PASSWORD}\n"),
    );
    assert!(out.status.success(), "{}", text(&out));
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn kaas_audit_verify_names_an_edited_record_in_a_copy_and_a_restore_keeps_the_chain() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    create_user(&data, "ada@example.com");
    create_user(&data, "bob@example.com");
    let out = kaas(&["audit", "verify"], &data);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("intact (2 records)"), "{}", text(&out));

    // A backup restored elsewhere keeps the chain.
    let backup = tmp.path().join("b.redb");
    let out = Command::new(BIN)
        .args(["backup", "-o"])
        .arg(&backup)
        .arg("--data-dir")
        .arg(&data)
        .env_remove("KAAS_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let restored = tmp.path().join("restored");
    let out = Command::new(BIN)
        .arg("restore")
        .arg(&backup)
        .arg("--data-dir")
        .arg(&restored)
        .env_remove("KAAS_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = kaas(&["audit", "verify"], &restored);
    assert!(text(&out).contains("intact (2 records)"), "{}", text(&out));

    // A copy of the database with the first record's detail rewritten.
    let copy = tmp.path().join("copy.redb");
    std::fs::copy(data.join("kaas.redb"), &copy).unwrap();
    let id = {
        use kaas::store::tables::AUDIT;
        use redb::ReadableTable;
        let (store, _) = kaas::store::Store::open(&copy, 1 << 20).unwrap();
        let tx = store.write().unwrap();
        let id = {
            let mut t = tx.open_table(AUDIT).unwrap();
            let (id, bytes) = {
                let (k, v) = t.first().unwrap().unwrap();
                (k.value(), v.value().to_vec())
            };
            let mut ev: kaas::domain::AuditEvent =
                kaas::store::codec::decode(&bytes, "audit", &id).unwrap();
            ev.detail = "nothing happened here".into();
            t.insert(id, kaas::store::codec::encode(&ev).unwrap().as_slice())
                .unwrap();
            kaas::domain::AuditId(id)
        };
        tx.commit().unwrap();
        id
    };
    let out = Command::new(BIN)
        .args(["audit", "verify", "--file"])
        .arg(&copy)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let msg = text(&out);
    assert!(msg.contains(&format!("record #1 ({id})")), "{msg}");
    assert!(msg.contains("changed after it was written"), "{msg}");
    assert_eq!(msg.trim().lines().count(), 1, "{msg}");
    // The original is untouched and still verifies.
    assert!(kaas(&["audit", "verify"], &data).status.success());
}

#[test]
fn kaas_audit_verify_beside_a_running_server_says_to_verify_a_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = crate::binary::Server::start_with(&data, &[("KAAS_BACKUP_INTERVAL", "0s")]);
    let out = kaas(&["audit", "verify"], &data);
    assert!(!out.status.success());
    let msg = text(&out);
    assert!(msg.contains("in use by a running kaas"), "{msg}");
    assert_eq!(msg.trim().lines().count(), 1, "{msg}");
    // A backup taken through the server verifies.
    let backup = tmp.path().join("b.redb");
    let out = Command::new(BIN)
        .args(["backup", "-o"])
        .arg(&backup)
        .arg("--data-dir")
        .arg(&data)
        .env_remove("KAAS_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = Command::new(BIN)
        .args(["audit", "verify", "--file"])
        .arg(&backup)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("intact ("), "{}", text(&out));
    drop(server);
}
