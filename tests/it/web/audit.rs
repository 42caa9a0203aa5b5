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
