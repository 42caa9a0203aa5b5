//! The console's billing pages through the router: a month of usage made with the manual
//! clock and closed into an invoice, then the overview, invoice, draft, downloads, usage
//! export, billing account, voiding and plan prices — each with its refusals (404 for
//! other tenants, 403 for members without billing rights) and errors next to their fields.

use std::sync::Arc;

use axum::http::{StatusCode, header};
use kaas::domain::{InvoiceId, Membership, OrgId, OrgRole, UserId};
use kaas::ops::orgs::NewOrg;
use kaas::ops::workspaces::NewWorkspace;
use kaas::ops::{Ops, Settings};

use super::*;

fn join(app: &TestApp, org: OrgId, user: UserId, role: OrgRole) {
    let tx = app.ops().store.write().unwrap();
    kaas::store::records::put_member(
        &tx,
        &Membership {
            org_id: org,
            user_id: user,
            role,
            joined_at: app.ops().now(),
        },
    )
    .unwrap();
    tx.commit().unwrap();
}

/// Organization `acme` (owner, an admin and a plain member; a platform administrator and
/// a stranger with an organization of their own): workspace `prod` on the standard plan,
/// Ready from Nov 1 00:10, kaas down from Nov 15 12:00 to 12:30, November closed into
/// invoice ACME-00001. The clock ends at Dec 1 00:05.
struct Billed {
    org: OrgId,
    invoice: InvoiceId,
    other_org: OrgId,
}

async fn billed(app: &TestApp) -> Billed {
    app.clock.set(at("2026-11-01T00:00:00Z"));
    app.user("root@kaas.test", true).await;
    let (owner, _) = app.user("owner@acme.test", false).await;
    let (admin, _) = app.user("admin@acme.test", false).await;
    let (member, _) = app.user("member@acme.test", false).await;
    let (stranger, _) = app.user("eve@other.test", false).await;
    // The first close on a new database notes where billing starts.
    app.ops().close_periods().unwrap();
    let org = app
        .ops()
        .create_org(
            &actor(owner, "owner@acme.test"),
            NewOrg {
                name: "acme".into(),
                display_name: Some("Acme Inc".into()),
            },
        )
        .unwrap()
        .org
        .id;
    let other_org = app
        .ops()
        .create_org(
            &actor(stranger, "eve@other.test"),
            NewOrg {
                name: "other".into(),
                display_name: None,
            },
        )
        .unwrap()
        .org
        .id;
    join(app, org, admin, OrgRole::Admin);
    join(app, org, member, OrgRole::Member);
    let ws = app
        .ops()
        .create_workspace(
            &actor(owner, "owner@acme.test"),
            org,
            NewWorkspace {
                name: "prod".into(),
                plan: "standard".into(),
            },
        )
        .unwrap()
        .workspace
        .id;
    app.clock.set(at("2026-11-01T00:10:00Z"));
    app.ops().record_observation(ws, &ready()).unwrap();
    app.clock.set(at("2026-11-15T12:00:00Z"));
    app.ops().meter_tick().unwrap();
    // kaas restarts half an hour later: a new run of the meter, and a gap.
    app.clock.set(at("2026-11-15T12:30:00Z"));
    let ops = Ops::new(
        app.ops().store.clone(),
        Arc::new(app.clock.clone()),
        Settings::default(),
    );
    ops.meter_tick().unwrap();
    app.clock.set(at("2026-12-01T00:05:00Z"));
    let made = ops.close_periods().unwrap();
    assert_eq!(made.len(), 1);
    Billed {
        org,
        invoice: made[0],
        other_org,
    }
}

fn header_of(r: &Res, name: header::HeaderName) -> &str {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test]
async fn an_owner_sees_the_month_the_invoices_and_downloads() {
    let app = TestApp::new();
    let b = billed(&app).await;
    let (org, id) = (b.org, b.invoice);
    let mut owner = sign_in(&app, "owner@acme.test").await;

    let r = get(&app, &mut owner, &format!("/orgs/{org}")).await;
    assert!(html(&r).contains(&format!("href=\"/orgs/{org}/billing\"")));
    let r = get(&app, &mut owner, &format!("/orgs/{org}/billing")).await;
    assert_eq!(r.status, StatusCode::OK);
    let page = html(&r);
    for want in [
        "December 2026 so far",
        "Estimate so far",
        "Projected for December 2026",
        "Invoice made on</dt><dd>1 January 2027",
        "Workspace prod</th>",
        "<td>Standard plan</td>",
        "<svg class=\"chart\"",
        "<title id=\"chart-title\">CPU core-hours per day, December 2026</title>",
        "<desc id=\"chart-desc\">So far this month:",
        "ACME-00001",
        "November 2026",
        "st-ready",
        "EUR",
        "aria-current=\"page\"><span class=\"nav-text\">Billing</span>",
    ] {
        assert!(page.contains(want), "{want}\n{page}");
    }
    assert!(
        !page.contains(" style=") && !page.contains("<script>") && !page.contains("http://"),
        "the CSP holds: no inline style or script, no external references"
    );
    // The invoice: bill-to, lines, totals, the gap, downloads; no void form for an owner.
    let r = get(&app, &mut owner, &format!("/invoices/{id}")).await;
    assert_eq!(r.status, StatusCode::OK);
    let page = html(&r);
    for want in [
        "Invoice ACME-00001",
        "Bill to",
        "Acme Inc",
        "1–30 November 2026",
        "Issued</dt><dd>1 December 2026",
        "Subtotal",
        "Total</th>",
        "kaas was not running from 2026-11-15 12:00 UTC to 2026-11-15 12:30 UTC; that time is not billed.",
        &format!("/invoices/{id}/download?format=csv"),
        &format!("/invoices/{id}/download?format=json"),
    ] {
        assert!(page.contains(want), "{want}\n{page}");
    }
    assert!(
        !page.contains("/void\""),
        "only platform administrators void"
    );
    let inv = app.ops().get_invoice(&shell(), id).unwrap();
    let total = format!("{} EUR", inv.currency.format(inv.total_minor));
    assert!(page.contains(&total), "{total}");

    let r = get(
        &app,
        &mut owner,
        &format!("/invoices/{id}/download?format=csv"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(header_of(&r, header::CONTENT_TYPE).starts_with("text/csv"));
    assert_eq!(
        header_of(&r, header::CONTENT_DISPOSITION),
        "attachment; filename=\"ACME-00001.csv\""
    );
    assert!(html(&r).contains("ACME-00001,2026-11,finalized,EUR"));
    let r = get(
        &app,
        &mut owner,
        &format!("/invoices/{id}/download?format=json"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["number"], "ACME-00001");
    assert_eq!(r.body["total_minor"], inv.total_minor);
    let r = get(
        &app,
        &mut owner,
        &format!("/invoices/{id}/download?format=pdf"),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // The draft of December, laid out as an invoice and marked as an estimate.
    let r = get(&app, &mut owner, &format!("/orgs/{org}/billing/draft")).await;
    assert_eq!(r.status, StatusCode::OK);
    let page = html(&r);
    assert!(page.contains("Draft — estimate") && page.contains("Draft for December 2026"));
    assert!(page.contains(&format!("/orgs/{org}/billing/draft/download?format=csv")));
    let r = get(
        &app,
        &mut owner,
        &format!("/orgs/{org}/billing/draft/download?format=csv"),
    )
    .await;
    assert_eq!(
        header_of(&r, header::CONTENT_DISPOSITION),
        "attachment; filename=\"draft-2026-12.csv\""
    );
    assert!(html(&r).contains("draft,2026-12,draft,EUR"), "{}", html(&r));

    // The usage export: whole days, `to` included; errors next to the fields, input kept.
    let url = format!("/orgs/{org}/billing/usage?from=2026-11-15&to=2026-11-15&format=csv");
    let r = get(&app, &mut owner, &url).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(header_of(&r, header::CONTENT_TYPE).starts_with("text/csv"));
    let csv = html(&r);
    assert!(csv.starts_with("hour,workspace_id,workspace,plan"));
    assert!(csv.contains("2026-11-15T23:00:00Z") && !csv.contains("2026-11-16T"));
    let url = format!("/orgs/{org}/billing/usage?from=2026-11-01&to=2026-11-01&format=json");
    let r = get(&app, &mut owner, &url).await;
    assert_eq!(r.body["records"][0]["workspace"], "prod");
    let url = format!("/orgs/{org}/billing/usage?from=nope&to=2026-11-30&format=csv");
    let r = get(&app, &mut owner, &url).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html(&r).contains("id=\"usage-from-err\"") && html(&r).contains("value=\"nope\""));
    let url = format!("/orgs/{org}/billing/usage?from=2026-11-10&to=2026-11-01&format=csv");
    let r = get(&app, &mut owner, &url).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html(&r).contains("id=\"usage-to-err\""), "{}", html(&r));
}

#[tokio::test]
async fn an_organization_without_invoices_says_when_the_first_comes() {
    let app = TestApp::new();
    app.clock.set(at("2026-11-10T09:00:00Z"));
    let (org, _) = org_with_workspace(&app, "ada@example.com", "acme").await;
    let mut ada = sign_in(&app, "ada@example.com").await;
    let r = get(&app, &mut ada, &format!("/orgs/{org}/billing")).await;
    assert_eq!(r.status, StatusCode::OK);
    let page = html(&r);
    assert!(
        page.contains(
            "No invoices yet: the first is made when this month closes on 1 December 2026."
        )
    );
    assert!(page.contains("Nothing billed yet this month"));
    assert!(page.contains("No usage recorded yet this month"));
    assert!(page.contains("value=\"2026-11-01\"") && page.contains("value=\"2026-11-10\""));
}

#[tokio::test]
async fn members_without_billing_rights_get_403_and_other_tenants_404() {
    let app = TestApp::new();
    let b = billed(&app).await;
    let (org, id) = (b.org, b.invoice);
    let paths = [
        format!("/orgs/{org}/billing"),
        format!("/orgs/{org}/billing/account"),
        format!("/orgs/{org}/billing/draft"),
        format!("/orgs/{org}/billing/draft/download?format=csv"),
        format!("/orgs/{org}/billing/usage?from=2026-11-01&to=2026-11-02&format=csv"),
        format!("/invoices/{id}"),
        format!("/invoices/{id}/download?format=csv"),
    ];
    let mut member = sign_in(&app, "member@acme.test").await;
    for p in &paths {
        let r = get(&app, &mut member, p).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{p}");
        assert!(html(&r).contains("Not allowed"), "{p}");
    }
    let r = get(&app, &mut member, &format!("/orgs/{org}")).await;
    assert!(
        !html(&r).contains("/billing\""),
        "no billing link for a member"
    );
    let mut eve = sign_in(&app, "eve@other.test").await;
    for p in &paths {
        let r = get(&app, &mut eve, p).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{p}");
    }
    let r = submit(
        &app,
        &mut eve,
        &format!("/orgs/{org}/billing/account"),
        &[("name", "x"), ("currency", "EUR"), ("invoice_prefix", "X")],
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Her own organization's billing is hers.
    let r = get(&app, &mut eve, &format!("/orgs/{}/billing", b.other_org)).await;
    assert_eq!(r.status, StatusCode::OK);
    // An organization admin reads billing but may not change the account.
    let mut admin = sign_in(&app, "admin@acme.test").await;
    let r = get(&app, &mut admin, &format!("/invoices/{id}")).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = get(&app, &mut admin, &format!("/orgs/{org}/billing/account")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(html(&r).contains("Only owners of Acme Inc can change the billing account."));
    assert!(!html(&r).contains("name=\"invoice_prefix\""));
    let r = submit(
        &app,
        &mut admin,
        &format!("/orgs/{org}/billing/account"),
        &[("name", "x"), ("currency", "EUR"), ("invoice_prefix", "X")],
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(html(&r).contains("does not allow"), "{}", html(&r));
}

#[tokio::test]
async fn the_billing_account_form_keeps_input_and_names_the_field() {
    let app = TestApp::new();
    let (org, _) = org_with_workspace(&app, "ada@example.com", "acme").await;
    let mut ada = sign_in(&app, "ada@example.com").await;
    let url = format!("/orgs/{org}/billing/account");
    let r = get(&app, &mut ada, &url).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(html(&r).contains("value=\"ACME\"") && html(&r).contains("ACME-00001"));
    let good = [
        ("name", "Acme Ltd"),
        ("email", "ap@acme.test"),
        ("address", "1 Main St\n12345 Town"),
        ("tax_id", "EU123"),
        ("currency", "EUR"),
        ("tax_rate", "7.5"),
        ("invoice_prefix", "AC"),
    ];
    for (field, bad) in [
        ("tax_rate", "abc"),
        ("tax_rate", "101"),
        ("invoice_prefix", "ac me"),
        ("currency", "euro"),
        ("email", "nope"),
        ("name", ""),
    ] {
        let mut form = good.to_vec();
        for f in form.iter_mut() {
            if f.0 == field {
                f.1 = bad;
            }
        }
        let r = submit(&app, &mut ada, &url, &form).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{field}");
        let page = html(&r);
        assert!(
            page.contains(&format!("id=\"account-{field}-err\"")),
            "{field}: {page}"
        );
        assert!(
            page.contains("value=\"Acme Ltd\"") || field == "name",
            "input kept"
        );
        assert!(
            page.contains(&format!("value=\"{bad}\"")),
            "{field}: bad input kept"
        );
        assert!(page.contains("1 Main St\n12345 Town</textarea>"));
    }
    let r = submit(&app, &mut ada, &url, &good).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
    assert_eq!(location(&r), format!("/orgs/{org}/billing"));
    let r = get(&app, &mut ada, location(&r)).await;
    assert!(html(&r).contains("Billing account saved"));
    assert!(html(&r).contains("billed in EUR to Acme Ltd"));
    let r = get(&app, &mut ada, &url).await;
    assert!(html(&r).contains("value=\"7.5\"") && html(&r).contains("AC-00001"));
    let a = app.ops().billing_account(&shell(), org).unwrap();
    assert_eq!(a.tax_rate_bp, Some(750));
    assert_eq!(a.address, "1 Main St\n12345 Town");
}

#[tokio::test]
async fn platform_administrators_void_with_a_reason() {
    let app = TestApp::new();
    let b = billed(&app).await;
    let url = format!("/invoices/{}/void", b.invoice);
    let mut owner = sign_in(&app, "owner@acme.test").await;
    let r = submit(&app, &mut owner, &url, &[("reason", "too expensive")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    let mut root = sign_in(&app, "root@kaas.test").await;
    let page_url = format!("/invoices/{}", b.invoice);
    let r = get(&app, &mut root, &page_url).await;
    assert!(html(&r).contains(&format!("action=\"{url}\"")));
    let r = submit(&app, &mut root, &url, &[("reason", "  ")]).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html(&r).contains("id=\"void-reason-err\""));
    assert!(
        html(&r).contains("<details class=\"confirm\" open>"),
        "kept open"
    );
    let r = submit(&app, &mut root, &url, &[("reason", "billed twice")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&r), page_url);
    let r = get(&app, &mut root, &page_url).await;
    let page = html(&r);
    assert!(page.contains("Invoice ACME-00001 is void"), "flash");
    assert!(page.contains("Void since 2026-12-01 00:05 UTC") && page.contains("billed twice"));
    assert!(
        !page.contains(&format!("action=\"{url}\"")),
        "nothing left to void"
    );
    let r = submit(&app, &mut root, &url, &[("reason", "again")]).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(html(&r).contains("already void"));
    // The owner sees it void in the list.
    let r = get(&app, &mut owner, &format!("/orgs/{}/billing", b.org)).await;
    assert!(html(&r).contains("st-deleting") && html(&r).contains("<s>"));
}

/// The inputs of a page's form as a browser would send them (checked boxes only).
pub(super) fn inputs(page: &str) -> Vec<(String, String)> {
    let attr = |tag: &str, name: &str| {
        tag.split(&format!(" {name}=\""))
            .nth(1)
            .and_then(|r| r.split('"').next())
            .map(|v| {
                v.replace("&quot;", "\"")
                    .replace("&#x2f;", "/")
                    .replace("&amp;", "&")
            })
    };
    page.split("<input")
        .skip(1)
        .filter_map(|rest| {
            let tag = rest.split('>').next().unwrap_or("");
            let kind = attr(tag, "type").unwrap_or_default();
            if (kind == "checkbox" || kind == "radio") && !tag.contains(" checked") {
                return None;
            }
            let name = attr(tag, "name")?;
            (name != "_csrf").then(|| (name, attr(tag, "value").unwrap_or_else(|| "on".into())))
        })
        .collect()
}

#[tokio::test]
async fn plan_prices_survive_a_console_edit_and_are_validated() {
    let app = TestApp::new();
    app.user("root@kaas.test", true).await;
    let mut root = sign_in(&app, "root@kaas.test").await;
    let r = get(&app, &mut root, "/admin/plans").await;
    assert!(html(&r).contains("99.00 EUR/month · CPU 0.01/core-hour above 2000"));
    let r = get(&app, &mut root, "/admin/plans/standard").await;
    let page = html(&r);
    for want in [
        "name=\"prices.currency\" type=\"text\" value=\"EUR\"",
        "name=\"prices.base_monthly\" type=\"text\" value=\"99.00\"",
        "name=\"prices.cpu_core_hour.unit_price\" type=\"text\" value=\"0.01\"",
        "name=\"prices.cpu_core_hour.included\" type=\"text\" value=\"2000\"",
    ] {
        assert!(page.contains(want), "{want}");
    }
    let before = app.ops().get_plan(&shell(), "standard").unwrap();
    // Saved as shown, with only the name changed: the prices are kept.
    let mut form = inputs(page);
    for f in form.iter_mut() {
        if f.0 == "display_name" {
            f.1 = "Standard+".into();
        }
    }
    let fields: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let r = submit(&app, &mut root, "/admin/plans/standard", &fields).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
    let after = app.ops().get_plan(&shell(), "standard").unwrap();
    assert_eq!(after.display_name, "Standard+");
    assert_eq!(after.prices, before.prices);

    // A new price, and a price with too many decimals shown next to its field.
    let set = |name: &str, value: &str| {
        let mut f = form.clone();
        for x in f.iter_mut() {
            if x.0 == name {
                x.1 = value.into();
            }
        }
        f
    };
    let f = set("prices.node_hour.unit_price", "0.0125");
    let fields: Vec<(&str, &str)> = f.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let r = submit(&app, &mut root, "/admin/plans/standard", &fields).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
    let after = app.ops().get_plan(&shell(), "standard").unwrap();
    assert_eq!(after.prices.node_hour.unit_price_micros, 12_500);
    assert_eq!(after.prices.base_monthly_minor, 9_900);
    for (field, bad) in [
        ("prices.base_monthly", "49.999"),
        ("prices.currency", "euro"),
        ("prices.cpu_core_hour.unit_price", "cheap"),
        ("prices.memory_gib_hour.included", "lots"),
    ] {
        let f = set(field, bad);
        let fields: Vec<(&str, &str)> = f.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let r = submit(&app, &mut root, "/admin/plans/standard", &fields).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{field}");
        assert!(
            html(&r).contains(&format!("id=\"plan-{field}-err\"")),
            "{field}: {}",
            html(&r)
        );
        assert!(html(&r).contains(&format!("value=\"{bad}\"")), "{field}");
    }
}
