//! Guards against a malicious tenant: organization and box-wide workspace limits, no e-mail
//! address disclosed by probing user ids, no invisible or bidi characters in names and
//! billing details, and a data directory others cannot read.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use axum::http::StatusCode;
use kaas::domain::UserId;
use kaas::ops::Settings;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn one_user_owns_a_limited_number_of_organizations_and_the_box_a_limited_number_of_workspaces()
 {
    let app = TestApp::with_settings(Settings {
        max_orgs_per_user: 2,
        max_workspaces_total: 2,
        ..Settings::default()
    });
    let (_, ada) = app.user("ada@example.com", false).await;
    let ada = bearer(&ada);
    let (_, root) = app.user("root@example.com", true).await;
    let root = bearer(&root);
    let first = app.create_org(&ada, "one").await;
    app.create_org(&ada, "two").await;
    let r = app
        .call("POST", "/orgs", &ada, Some(json!({"name": "three"})))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("organization limit reached: you own 2 of the 2"),
        "{:?}",
        r.body
    );
    // Platform administrators are not limited.
    for name in ["r1", "r2", "r3"] {
        app.create_org(&root, name).await;
    }
    // Deleting one makes room again.
    let r = app
        .call("DELETE", &format!("/orgs/{first}"), &ada, None)
        .await;
    assert!(r.status.is_success(), "{:?}", r.body);
    let three = app.create_org(&ada, "three").await;

    // Two workspaces on the whole box, whoever asks.
    app.create_workspace(&ada, &three, "web", "starter").await;
    let rs = app.ops().user_id_by_email("root@example.com").unwrap();
    assert!(rs.is_some());
    let r1 = app.call("GET", "/orgs", &root, None).await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "r1")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.create_workspace(&root, &r1, "api", "starter").await;
    let r = app
        .call(
            "POST",
            &format!("/orgs/{three}/workspaces"),
            &ada,
            Some(json!({"name": "more", "plan": "starter"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("this box is full"),
        "{:?}",
        r.body
    );
}

#[tokio::test]
async fn organization_creation_can_be_kept_to_platform_administrators() {
    let app = TestApp::with_settings(Settings {
        org_creation_admins_only: true,
        ..Settings::default()
    });
    let (_, ada) = app.user("ada@example.com", false).await;
    let (_, root) = app.user("root@example.com", true).await;
    let r = app
        .call(
            "POST",
            "/orgs",
            &bearer(&ada),
            Some(json!({"name": "acme"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("only platform administrators may create organizations"),
        "{:?}",
        r.body
    );
    app.create_org(&bearer(&root), "acme").await;
}

#[tokio::test]
async fn a_user_id_from_another_tenant_answers_like_no_user_at_all() {
    let app = TestApp::new();
    let (_, ada) = app.user("ada@example.com", false).await;
    let ada = bearer(&ada);
    let (bob, bob_t) = app.user("bob@example.com", false).await;
    app.create_org(&bearer(&bob_t), "bobs").await;
    let org = app.create_org(&ada, "acme").await;
    let ws = app.create_workspace(&ada, &org, "web", "starter").await;
    let r = app
        .call(
            "POST",
            &format!("/workspaces/{ws}/projects"),
            &ada,
            Some(json!({"name": "shop"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let project = r.body["id"].as_str().unwrap().to_string();
    let nobody = UserId::generate();
    for (path, role) in [
        (format!("/workspaces/{ws}/members"), "workspace-viewer"),
        (format!("/projects/{project}/members"), "viewer"),
    ] {
        let other = app
            .call(
                "PUT",
                &format!("{path}/{bob}"),
                &ada,
                Some(json!({"role": role})),
            )
            .await;
        let missing = app
            .call(
                "PUT",
                &format!("{path}/{nobody}"),
                &ada,
                Some(json!({"role": role})),
            )
            .await;
        assert_eq!(other.status, StatusCode::NOT_FOUND, "{:?}", other.body);
        assert_eq!(other.status, missing.status);
        assert_eq!(other.body, missing.body, "the answers differ: {path}");
        assert!(!other.body.to_string().contains("bob@"), "{:?}", other.body);
    }
}

#[tokio::test]
async fn invisible_and_bidi_characters_are_refused_in_names_and_billing_details() {
    let app = TestApp::new();
    let (_, ada) = app.user("ada@example.com", false).await;
    let ada = bearer(&ada);
    for bad in [
        "Ada\u{202E}moc.evil",
        "A\u{200B}da",
        "Ada\u{2028}",
        "\u{FEFF}Ada",
    ] {
        let r = app
            .call("PATCH", "/me", &ada, Some(json!({"name": bad})))
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad:?}: {:?}",
            r.body
        );
        assert_eq!(r.field(), "name");
        let r = app
            .call(
                "POST",
                "/orgs",
                &ada,
                Some(json!({"name": "acme", "display_name": bad})),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad:?}: {:?}",
            r.body
        );
        assert_eq!(r.field(), "display_name");
    }
    let org = app.create_org(&ada, "acme").await;
    let account = |name: &str, address: &str| {
        json!({"name": name, "email": "ap@acme.test", "address": address, "tax_id": "EU1",
               "currency": "EUR", "tax_rate_bp": 1900, "invoice_prefix": "ACME"})
    };
    let path = format!("/orgs/{org}/billing/account");
    for (body, field) in [
        (account("Acme\u{202E}dtL", "1 Main St"), "name"),
        (account("Acme", "1 Main St\u{200B}"), "address"),
        (account("Acme", "1 Main St\u{2029}Berlin"), "address"),
    ] {
        let r = app.call("PUT", &path, &ada, Some(body)).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
        assert_eq!(r.field(), field, "{:?}", r.body);
    }
    // A multi-line address is fine.
    let r = app
        .call(
            "PUT",
            &path,
            &ada,
            Some(account("Acme Ltd", "1 Main St\n10115 Berlin")),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
}

const BIN: &str = env!("CARGO_BIN_EXE_kaas");

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// `kaas serve` under umask 022 until it listens, then stopped.
fn serve_once(data: &Path) {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env("KAAS_LOG", "warn")
        .env("KAAS_BACKUP_INTERVAL", "0s")
        .env_remove("KAAS_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    // SAFETY: umask is async-signal-safe and touches only the child's own state.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0o022);
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    assert!(
        lines.any(|l| l.is_ok_and(|l| l.starts_with("kaas listening on "))),
        "kaas did not start"
    );
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(child.wait().unwrap().success());
}

#[test]
fn the_data_directory_database_and_backups_are_private_whatever_the_umask() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("kaas-data");
    serve_once(&data);
    let db = data.join("kaas.redb");
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&db), 0o600);

    let mut backup = Command::new(BIN);
    backup
        .arg("backup")
        .arg("--data-dir")
        .arg(&data)
        .env_remove("KAAS_CONFIG");
    // SAFETY: as above.
    unsafe {
        backup.pre_exec(|| {
            libc::umask(0o022);
            Ok(())
        });
    }
    let out = backup.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let backups = data.join("backups");
    assert_eq!(mode(&backups), 0o700);
    let file = std::fs::read_dir(&backups)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert_eq!(mode(&file), 0o600);

    // What an older kaas (or a hand) left readable by others is closed to them on the next
    // start; a group given on purpose (the packaged unit's 0750) is kept.
    for (p, m) in [
        (&data, 0o755),
        (&db, 0o644),
        (&backups, 0o755),
        (&file, 0o604),
    ] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    }
    serve_once(&data);
    assert_eq!(
        [mode(&data), mode(&db), mode(&backups), mode(&file)],
        [0o750, 0o640, 0o750, 0o600]
    );
}
