//! The console's audit pages: the administrators' page says whether the hash chain holds
//! and where it breaks; both pages offer the filtered log as CSV and JSON with its hashes.

use axum::http::StatusCode;

use super::*;

#[tokio::test]
async fn the_administrators_audit_page_says_whether_the_chain_holds_and_offers_exports() {
    let app = TestApp::new();
    let (_, root) = app.user("root@example.com", true).await;
    let org = app.create_org(&bearer(&root), "acme").await;
    let mut b = sign_in(&app, "root@example.com").await;
    let r = get(&app, &mut b, "/admin/audit").await;
    assert_eq!(r.status, StatusCode::OK);
    let page = html(&r);
    assert!(page.contains("id=\"audit-chain\""), "{page}");
    assert!(page.contains("The chain is intact"), "{page}");
    assert!(page.contains("/admin/audit/export?format=csv"), "{page}");

    let r = get(
        &app,
        &mut b,
        &format!("/orgs/{org}/audit/export?format=csv"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let csv = html(&r);
    assert!(csv.starts_with("seq,id,time,"), "{csv}");
    assert!(csv.contains("org.create"), "{csv}");
    let r = get(&app, &mut b, "/admin/audit/export?format=json&action=org.").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body[0]["action"], "org.create", "{:?}", r.body);
    let r = get(&app, &mut b, "/admin/audit/export?format=xml").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // An edited record: the page names it.
    let id = {
        use kaas::store::tables::AUDIT;
        use redb::ReadableTable;
        let store = &app.ops().store;
        let tx = store.write().unwrap();
        let id = {
            let mut t = tx.open_table(AUDIT).unwrap();
            let (id, bytes) = {
                let (k, v) = t.first().unwrap().unwrap();
                (k.value(), v.value().to_vec())
            };
            let mut ev: kaas::domain::AuditEvent =
                kaas::store::codec::decode(&bytes, "audit", &id).unwrap();
            ev.actor_label = "someone else".into();
            t.insert(id, kaas::store::codec::encode(&ev).unwrap().as_slice())
                .unwrap();
            kaas::domain::AuditId(id)
        };
        tx.commit().unwrap();
        id
    };
    let r = get(&app, &mut b, "/admin/audit").await;
    let page = html(&r);
    assert!(page.contains("The chain is broken"), "{page}");
    assert!(page.contains(&format!("record #1 ({id})")), "{page}");
}

/// An organization's admin who is no platform administrator: their organization's audit
/// page and its exports (with each record's hashes), only their organization's records,
/// and neither another organization's log nor the whole box's.
#[tokio::test]
async fn an_organizations_admin_reads_and_exports_its_log_and_nothing_else() {
    let app = TestApp::new();
    let (_, ada) = app.user("ada@example.com", false).await;
    let (_, bob) = app.user("bob@example.com", false).await;
    let acme = app.create_org(&bearer(&ada), "acme").await;
    let other = app.create_org(&bearer(&bob), "other").await;
    let mut b = sign_in(&app, "ada@example.com").await;

    let r = get(&app, &mut b, &format!("/orgs/{acme}/audit")).await;
    assert_eq!(r.status, StatusCode::OK);
    let page = html(&r);
    assert!(page.contains("org.create"), "{page}");
    assert!(
        page.contains(&format!("/orgs/{acme}/audit/export?format=csv")),
        "{page}"
    );

    let r = get(
        &app,
        &mut b,
        &format!("/orgs/{acme}/audit/export?format=csv"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let csv = html(&r);
    let mut lines = csv.lines();
    let header = lines.next().unwrap_or_default();
    assert!(header.ends_with(",prev_hash,hash"), "{header}");
    let rows: Vec<&str> = lines.collect();
    assert!(!rows.is_empty(), "{csv}");
    for row in &rows {
        assert!(row.contains(&acme), "a row of another organization: {row}");
        let hash = row.rsplit(',').next().unwrap_or_default();
        assert_eq!(hash.len(), 64, "each record carries its hash: {row}");
    }
    let r = get(
        &app,
        &mut b,
        &format!("/orgs/{acme}/audit/export?format=json"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let events = r.body.as_array().cloned().unwrap_or_default();
    assert!(!events.is_empty(), "{:?}", r.body);
    for e in &events {
        assert_eq!(e["org_id"], acme.as_str(), "{e}");
        assert_eq!(e["hash"].as_str().map(str::len), Some(64), "{e}");
    }
    assert!(
        !events.iter().any(|e| e["target"] == other.as_str()),
        "{:?}",
        r.body
    );

    // Another organization's log and the box's are not hers to read.
    let r = get(
        &app,
        &mut b,
        &format!("/orgs/{other}/audit/export?format=csv"),
    )
    .await;
    assert!(
        matches!(r.status.as_u16(), 403 | 404),
        "another organization's export: {}",
        r.status
    );
    let r = get(&app, &mut b, "/admin/audit/export?format=csv").await;
    assert!(
        matches!(r.status.as_u16(), 403 | 404),
        "the whole box's export: {}",
        r.status
    );
}
