//! Billing end to end with a moved clock: workspaces created, made Ready, moved between
//! plans, given a dedicated node, deleted; kaas restarted mid-hour; the month closed — and
//! every line of the invoice equals the amount computed by hand in the comments, to the
//! minor unit. Also the API around it: accounts, drafts, exports, voiding, authorization.

use std::sync::Arc;

use axum::http::StatusCode;
use kaas::ops::{Actor, AuthVia, Ops, Settings};
use serde_json::{Value, json};

use crate::support::*;

fn ws_id(v: &Value) -> kaas::domain::WorkspaceId {
    v["id"].as_str().expect("id").parse().expect("workspace id")
}

/// Two plans with simple prices (EUR): `basic` 30.00/month + 0.01 per core-hour above 100
/// included (2 cores); `big` 90.00/month + 0.01 per core-hour (4 cores) + 0.50 per node-hour.
async fn plans(app: &TestApp, admin: &Auth) {
    let base = app.call("GET", "/plans/standard", admin, None).await.body;
    for (id, cpu, price, cpu_incl, node, nodes) in [
        ("basic", 2_000, 3_000, 100, 0, 0),
        ("big", 4_000, 9_000, 0, 500_000, 1),
    ] {
        let mut p = base.clone();
        p["id"] = json!(id);
        p["display_name"] = json!(id.to_uppercase());
        p["quota"]["cpu_millis"] = json!(cpu);
        p["max_dedicated_nodes"] = json!(nodes);
        p["prices"] = json!({
            "currency": "EUR",
            "base_monthly_minor": price,
            "cpu_core_hour": {"unit_price_micros": 10_000, "included": cpu_incl},
            "node_hour": {"unit_price_micros": node},
        });
        let r = app.call("POST", "/plans", admin, Some(p)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    }
}

async fn fresh_token(
    app: &TestApp,
    user_id: kaas::domain::UserId,
    email: &str,
    admin: bool,
) -> Auth {
    let actor = Actor {
        user_id,
        email: email.into(),
        platform_admin: admin,
        via: AuthVia::Shell,
        source: "test".into(),
    };
    let t = app
        .ops()
        .create_token(
            &actor,
            kaas::ops::tokens::NewToken {
                name: "later".into(),
                scope: kaas::domain::TokenScope::ReadWrite,
                expires_in_days: Some(30),
                current_password: PASSWORD.into(),
            },
        )
        .await
        .expect("token");
    bearer(&t.secret)
}

#[tokio::test]
async fn a_month_of_changes_invoices_to_the_hand_computed_minor_unit() {
    let app = TestApp::new();
    app.clock.set(at("2026-11-01T00:00:00Z"));
    let (admin_id, admin) = app.user("admin@kaas.test", true).await;
    let admin = bearer(&admin);
    let (owner_id, owner) = app.user("owner@acme.test", false).await;
    let owner = bearer(&owner);
    plans(&app, &admin).await;
    // The first close on a new database only notes where billing starts.
    assert!(app.ops().close_periods().unwrap().is_empty());

    let org = app
        .call("POST", "/orgs", &owner, Some(json!({"name": "acme"})))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app
        .call(
            "PUT",
            &format!("/orgs/{org}/billing/account"),
            &owner,
            Some(json!({"name": "Acme Ltd", "email": "ap@acme.test", "address": "1 Main St",
                        "tax_id": "EU123", "currency": "EUR", "tax_rate_bp": 1900, "invoice_prefix": "ACME"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);

    let new_ws = |name: &str| json!({"name": name, "plan": "basic"});
    let ws1 = app
        .call(
            "POST",
            &format!("/orgs/{org}/workspaces"),
            &owner,
            Some(new_ws("one")),
        )
        .await
        .body;
    let ws1 = ws_id(&ws1);
    // Provisioning is not billed: Ready at 00:10.
    app.clock.set(at("2026-11-01T00:10:00Z"));
    app.ops().record_observation(ws1, &ready()).unwrap();
    // Ticks in between change nothing (two at the same second add nothing).
    for t in [
        "2026-11-03T10:00:00Z",
        "2026-11-03T10:00:00Z",
        "2026-11-07T23:59:59Z",
    ] {
        app.clock.set(at(t));
        app.ops().meter_tick().unwrap();
    }
    // Ten days on basic, then big.
    app.clock.set(at("2026-11-11T00:10:00Z"));
    let r = app
        .call(
            "PATCH",
            &format!("/workspaces/{ws1}"),
            &owner,
            Some(json!({"plan": "big"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    // A dedicated node for exactly 24 hours.
    app.clock.set(at("2026-11-11T06:10:00Z"));
    let r = app
        .call(
            "POST",
            &format!("/workspaces/{ws1}/nodes"),
            &admin,
            Some(json!({"node": "agent-1"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    app.clock.set(at("2026-11-12T06:10:00Z"));
    let r = app
        .call(
            "DELETE",
            &format!("/workspaces/{ws1}/nodes/agent-1"),
            &admin,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    // The last observation before kaas stops without a goodbye (a crash) …
    app.clock.set(at("2026-11-15T12:00:00Z"));
    app.ops().meter_tick().unwrap();

    // … and a new run of kaas on the same database half an hour later.
    app.clock.set(at("2026-11-15T12:30:00Z"));
    let ops = Ops::new(
        app.ops().store.clone(),
        Arc::new(app.clock.clone()),
        Settings::default(),
    );
    let report = ops.meter_tick().unwrap();
    assert_eq!(report.gaps, 1, "the unobserved half hour is a gap");
    let actor = Actor {
        user_id: admin_id,
        email: "admin@kaas.test".into(),
        platform_admin: true,
        via: AuthVia::Shell,
        source: "test".into(),
    };
    let org_id: kaas::domain::OrgId = org.parse().unwrap();
    // A second workspace from Nov 20, Ready 30 s later, kept to the end of the month.
    app.clock.set(at("2026-11-20T00:00:00Z"));
    let ws2 = ops
        .create_workspace(
            &actor,
            org_id,
            kaas::ops::workspaces::NewWorkspace {
                name: "two".into(),
                plan: "basic".into(),
            },
        )
        .unwrap()
        .workspace
        .id;
    app.clock.set(at("2026-11-20T00:00:30Z"));
    ops.record_observation(ws2, &ready()).unwrap();
    // Workspace one is deleted on Nov 21 at 00:10; its record goes ten minutes later.
    app.clock.set(at("2026-11-21T00:10:00Z"));
    ops.delete_workspace(&actor, ws1).unwrap();
    app.clock.set(at("2026-11-21T00:20:00Z"));
    ops.finish_workspace_deletion(ws1).unwrap();
    app.clock.set(at("2026-11-28T08:00:00Z"));
    ops.meter_tick().unwrap();
    // Nothing is final before the month ends.
    assert!(ops.close_periods().unwrap().is_empty());

    app.clock.set(at("2026-12-01T00:05:00Z"));
    let made = ops.close_periods().unwrap();
    assert_eq!(made.len(), 1);
    assert!(
        ops.close_periods().unwrap().is_empty(),
        "closing is idempotent"
    );
    let inv = ops.get_invoice(&actor, made[0]).unwrap();
    assert_eq!(inv.number.as_deref(), Some("ACME-00001"));
    assert_eq!(inv.period, "2026-11");
    let lines: Vec<(String, &str, String, i64)> = inv
        .lines
        .iter()
        .map(|l| {
            (
                l.workspace.clone(),
                l.meter.as_str(),
                l.quantity.clone(),
                l.amount_minor,
            )
        })
        .collect();
    // November has 2,592,000 s.
    // one/basic: Nov 1 00:10 → Nov 11 00:10 = 864,000 s.
    //   base 3000 × 864000 / 2592000 = 1000
    //   cpu 2 × 240 h = 480 core-h − 100 × 1/3 included = 446.666667 × 1 ct = 446.67 → 447
    // one/big: Nov 11 00:10 → Nov 15 12:00 (388,200 s) + 12:30 → Nov 21 00:10 (474,000 s)
    //   = 862,200 s; the half-hour gap is not billed.
    //   base 9000 × 862200 / 2592000 = 2993.75 → 2994
    //   cpu 4 × 862200 / 3600 = 958 core-h × 1 ct = 958
    //   node 24 node-h × 50 ct = 1200
    // two/basic: Nov 20 00:00:30 → Dec 1 00:00 = 950,370 s.
    //   base 3000 × 950370 / 2592000 = 1099.965 → 1100
    //   cpu 2 × 950370 / 3600 = 527.983333 − 100 × 950370/2592000 (36.665509) = 491.317824 → 491
    let expected = vec![
        ("one".to_string(), "workspace", "0.333333".to_string(), 1000),
        ("one".into(), "cpu-core-hours", "446.666667".into(), 447),
        ("one".into(), "workspace", "0.332639".into(), 2994),
        ("one".into(), "cpu-core-hours", "958.000000".into(), 958),
        ("one".into(), "node-hours", "24.000000".into(), 1200),
        ("two".into(), "workspace", "0.366655".into(), 1100),
        ("two".into(), "cpu-core-hours", "491.317824".into(), 491),
    ];
    assert_eq!(lines, expected);
    // Subtotal 8190; tax 19 % = 1556.1 → 1556; total 9746.
    assert_eq!(
        (inv.subtotal_minor, inv.tax_minor, inv.total_minor),
        (8_190, 1_556, 9_746)
    );
    assert_eq!(inv.gaps.len(), 1, "{:?}", inv.gaps);
    assert_eq!(inv.gaps[0].from, at("2026-11-15T12:00:00Z"));
    assert_eq!(inv.gaps[0].until, at("2026-11-15T12:30:00Z"));
    assert_eq!(inv.bill_to.name, "Acme Ltd");

    // Over HTTP (with fresh tokens: a month has passed): the list, the CSV, and voiding
    // (operators only, with a reason).
    let admin = fresh_token(&app, admin_id, "admin@kaas.test", true).await;
    let owner = fresh_token(&app, owner_id, "owner@acme.test", false).await;
    let list = app
        .call("GET", &format!("/orgs/{org}/invoices"), &owner, None)
        .await;
    assert_eq!(list.status, StatusCode::OK, "{:?}", list.body);
    assert_eq!(list.body[0]["number"], "ACME-00001");
    assert_eq!(list.body[0]["total_minor"], 9_746);
    let id = made[0];
    let csv = app
        .call("GET", &format!("/invoices/{id}?format=csv"), &owner, None)
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(
        csv.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = csv.body.as_str().unwrap();
    assert!(text.contains("ACME-00001,2026-11,finalized,EUR"), "{text}");
    assert!(text.contains(",total,total,,,,97.46\n"), "{text}");
    let r = app
        .call(
            "POST",
            &format!("/invoices/{id}/void"),
            &owner,
            Some(json!({"reason": "wrong"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .call(
            "POST",
            &format!("/invoices/{id}/void"),
            &admin,
            Some(json!({"reason": " "})),
        )
        .await;
    assert_eq!(
        (r.status, r.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, "reason")
    );
    let r = app
        .call(
            "POST",
            &format!("/invoices/{id}/void"),
            &admin,
            Some(json!({"reason": "duplicate of a manual bill"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["status"], "void");
    assert_eq!(
        r.body["total_minor"], 9_746,
        "a void invoice keeps its figures"
    );
    let r = app
        .call(
            "POST",
            &format!("/invoices/{id}/void"),
            &admin,
            Some(json!({"reason": "again"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let audit = app
        .call("GET", "/audit?action=invoice.void", &admin, None)
        .await;
    assert!(
        audit
            .body
            .to_string()
            .contains("duplicate of a manual bill"),
        "{}",
        audit.body
    );

    // The usage export of the day the node was assigned: node-hours 06:00–07:00 = 50 min.
    let r = app
        .call(
            "GET",
            &format!("/orgs/{org}/usage?from=2026-11-11T06:00:00Z&until=2026-11-11T07:00:00Z"),
            &owner,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let recs = r.body["records"].as_array().unwrap();
    let node = recs
        .iter()
        .find(|r| r["meter"] == "node-hours")
        .expect("node-hours");
    assert_eq!(node["quantity"], "0.833333");
    assert_eq!(node["workspace"], "one");
    let r = app
        .call(
            "GET",
            &format!("/orgs/{org}/usage?from=2026-11-11T06:00:00Z&until=2026-11-11T05:00:00Z"),
            &owner,
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, "until")
    );

    // December goes on: the draft shows the five minutes of workspace two so far.
    let d = app
        .call("GET", &format!("/orgs/{org}/billing"), &owner, None)
        .await;
    assert_eq!(d.status, StatusCode::OK, "{:?}", d.body);
    assert_eq!(d.body["draft"]["period"], "2026-12");
    assert_eq!(d.body["draft"]["lines"][0]["billable_seconds"], 300);
    // Projected: a whole month of basic (30.00) less the minutes not yet... it is the full
    // month since Dec 1 00:00 plus the included-adjusted CPU: at least the base price.
    assert!(d.body["projected_total_minor"].as_i64().unwrap() >= 3_000 * 119 / 100);
    assert_eq!(d.body["daily"].as_array().unwrap().len(), 31);
}

#[tokio::test]
async fn billing_is_for_admins_and_owners_of_the_organization() {
    let app = TestApp::new();
    let (_, owner) = app.user("owner@acme.test", false).await;
    let owner = bearer(&owner);
    let (member_id, member) = app.user("member@acme.test", false).await;
    let member = bearer(&member);
    let (_, stranger) = app.user("someone@else.test", false).await;
    let stranger = bearer(&stranger);
    let org = app
        .call("POST", "/orgs", &owner, Some(json!({"name": "acme"})))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The member joins through an invitation accepted by the ops layer directly.
    app.ops()
        .store
        .write()
        .map(|tx| {
            kaas::store::records::put_member(
                &tx,
                &kaas::domain::Membership {
                    org_id: org.parse().unwrap(),
                    user_id: member_id,
                    role: kaas::domain::OrgRole::Member,
                    joined_at: app.ops().now(),
                },
            )
            .unwrap();
            tx.commit().unwrap();
        })
        .unwrap();
    let path = format!("/orgs/{org}/billing");
    assert_eq!(
        app.call("GET", &path, &owner, None).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.call("GET", &path, &member, None).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.call("GET", &path, &stranger, None).await.status,
        StatusCode::NOT_FOUND
    );

    // The account: defaults, then errors that name the field, and nothing half-saved.
    let acct = format!("/orgs/{org}/billing/account");
    let a = app.call("GET", &acct, &owner, None).await.body;
    assert_eq!(a["currency"], "EUR");
    assert_eq!(a["invoice_prefix"], "ACME");
    let good = json!({"name": "Acme", "currency": "EUR", "invoice_prefix": "AC"});
    for (patch, field) in [
        (json!({"currency": "euro"}), "currency"),
        (json!({"invoice_prefix": "ac me"}), "invoice_prefix"),
        (json!({"tax_rate_bp": 20_000}), "tax_rate_bp"),
        (json!({"email": "nope"}), "email"),
        (json!({"name": ""}), "name"),
    ] {
        let mut body = good.clone();
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = app.call("PUT", &acct, &owner, Some(body)).await;
        assert_eq!(
            (r.status, r.field()),
            (StatusCode::UNPROCESSABLE_ENTITY, field),
            "{:?}",
            r.body
        );
    }
    assert_eq!(
        app.call("GET", &acct, &owner, None).await.body["invoice_prefix"],
        "ACME"
    );
    // A currency no plan is priced in cannot bill this organization's workspaces.
    let r = app
        .call(
            "PUT",
            &acct,
            &owner,
            Some(json!({"name": "Acme", "currency": "USD", "invoice_prefix": "AC"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .call(
            "POST",
            &format!("/orgs/{org}/workspaces"),
            &owner,
            Some(json!({"name": "w", "plan": "starter"})),
        )
        .await;
    assert_eq!(
        (r.status, r.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, "plan"),
        "{:?}",
        r.body
    );
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("billed in USD")
    );
    // A bad period in the draft query is a 400 naming it.
    let r = app
        .call(
            "GET",
            &format!("/orgs/{org}/invoices/draft?period=2026-13"),
            &owner,
            None,
        )
        .await;
    assert_eq!((r.status, r.field()), (StatusCode::BAD_REQUEST, "period"));
}

/// Against fakehost: the quota usage the host's ResourceQuota reports for a workspace's
/// namespace (here, a pod's requests) is sampled by the meter into the usage records.
#[tokio::test(flavor = "multi_thread")]
async fn the_meter_records_the_quota_usage_the_host_reports() {
    let h = HostedApp::start().await;
    let (a, org, ws) = crate::host::org_and_workspace(&h, "starter").await;
    h.wait_ws(&a, &ws, "Ready", |w| crate::host::state(w) == "Ready")
        .await;
    let ns = format!("kaas-ws-{}", ws.trim_start_matches("ws_"));
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "app", "namespace": ns},
        "spec": {"containers": [{"name": "app", "image": "nginx",
            "resources": {"requests": {"cpu": "250m", "memory": "128Mi"},
                          "limits": {"cpu": "250m", "memory": "128Mi"}}}]},
    });
    h.host
        .engine()
        .create(
            &fakehost::ResourceRef::core("pods"),
            Some(&ns),
            pod,
            &fakehost::WriteOptions::default(),
        )
        .expect("pod created");
    let step = || h.app.clock.advance(jiff::SignedDuration::from_secs(60));
    // Until the quota controller and the watch have caught up, the meter knows nothing.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let start = loop {
        step();
        let report = h.app.ops().meter_tick().unwrap();
        let st = kaas::store::usage::meter_state(
            &h.app.ops().store.read().unwrap(),
            ws.parse().unwrap(),
        )
        .unwrap()
        .unwrap();
        if st.seen.used.is_some_and(|u| u.cpu_millis == 250) {
            assert_eq!(report.with_usage, 1);
            break h.app.ops().now();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no quota usage seen: {st:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    // Two more minutes at 250m and 128 MiB requested.
    step();
    step();
    h.app.ops().meter_tick().unwrap();
    let r = h
        .app
        .call(
            "GET",
            &format!("/orgs/{org}/usage?from={start}&until={}", h.app.ops().now()),
            &a,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let sum = |meter: &str| -> f64 {
        r.body["records"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["meter"] == meter)
            .map(|x| x["quantity"].as_str().unwrap().parse::<f64>().unwrap())
            .sum()
    };
    // 0.25 cores × 120 s = 0.008333 core-hours; 0.125 GiB × 120 s = 0.004167 GiB-hours.
    assert!(
        (sum("used-cpu-core-hours") - 0.008_333).abs() < 0.000_002,
        "{}",
        r.body
    );
    assert!(
        (sum("used-memory-gib-hours") - 0.004_167).abs() < 0.000_002,
        "{}",
        r.body
    );
}
