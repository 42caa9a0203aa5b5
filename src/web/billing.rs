//! The billing pages of the console: an organization's overview (this month so far, the
//! projection, the daily chart, meter gaps, invoices, the usage export), its billing
//! account, one invoice (printable; CSV and JSON downloads; voiding for platform
//! administrators) and the current month's draft in the same layout. Who may see or change
//! what is decided by `ops` (a member of another organization gets 404, a member without
//! billing rights 403); money is formatted with the invoice's currency, never re-computed.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use jiff::civil::Date;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::billing_chart::{self, Chart};
use super::billing_view::{
    InvoiceRow, LineGroup, day, groups, invoice_row, money, month, parse_percent, percent, section,
};
use super::error::{WebError, WebResult};
use super::extract::{Post, SignedIn};
use super::flash::Flash;
use super::view::{FormState, Layout};
use super::{redirect, refused, refused_as};
use crate::domain::billing::invoice::invoice_number;
use crate::domain::billing::{Invoice, InvoiceStatus};
use crate::domain::{InvoiceId, OrgId};
use crate::http::Id;
use crate::ops::OpsError;
use crate::ops::billing::{AccountInput, invoice_csv, usage_csv};
use crate::ops::billing_console::{AccountPage, BillingPage, InvoicePage};
use crate::state::AppState;

fn query<T: DeserializeOwned>(q: Option<String>) -> WebResult<T> {
    serde_urlencoded::from_str(q.as_deref().unwrap_or(""))
        .map_err(|e| WebError::BadRequest(format!("the address is incomplete: {e}")))
}

/// A download: the body with its type and a file name (ours, so safe in the header).
fn download(body: String, content_type: &'static str, filename: &str) -> Response {
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    res
}

#[derive(Deserialize)]
pub struct FormatQuery {
    #[serde(default)]
    format: String,
}

fn export_invoice(inv: &Invoice, format: &str) -> WebResult<Response> {
    let name = inv
        .number
        .clone()
        .unwrap_or_else(|| format!("draft-{}", inv.period));
    match format {
        "csv" => Ok(download(
            invoice_csv(inv),
            "text/csv; charset=utf-8",
            &format!("{name}.csv"),
        )),
        "json" => {
            let body = serde_json::to_string_pretty(inv)
                .map_err(|e| WebError::Internal(format!("invoice as JSON: {e}")))?;
            Ok(download(body, "application/json", &format!("{name}.json")))
        }
        _ => Err(WebError::BadRequest("format: choose csv or json".into())),
    }
}

// ---- The overview -------------------------------------------------------------------------

#[derive(Template, WebTemplate)]
#[template(path = "billing.html")]
pub struct BillingView {
    pub l: Layout,
    pub p: BillingPage,
    pub groups: Vec<LineGroup>,
    pub chart: Chart,
    pub invoices: Vec<InvoiceRow>,
    pub form: FormState,
    pub month: String,
    pub closes_on: String,
    pub draft_total: String,
    pub projected: String,
}

impl BillingView {
    pub fn money(&self, minor: &i64) -> String {
        money(&self.p.overview.draft.currency, *minor)
    }
}

/// The usage export form with this month so far filled in.
fn usage_defaults(now: Timestamp) -> FormState {
    let today = now.to_zoned(jiff::tz::TimeZone::UTC).date();
    FormState::new("usage")
        .keep("from", today.first_of_month().to_string())
        .keep("to", today.to_string())
        .keep("format", "csv")
}

fn billing_view(who: &SignedIn, p: BillingPage, form: FormState) -> BillingView {
    let d = &p.overview.draft;
    let today = p.now.to_zoned(jiff::tz::TimeZone::UTC).date().to_string();
    BillingView {
        l: who.layout(
            format!("Billing · {}", p.org.display_name),
            section(p.org.id),
        ),
        groups: groups(d),
        chart: billing_chart::chart(&p.overview.daily, &today),
        invoices: p.overview.invoices.iter().map(invoice_row).collect(),
        form,
        month: month(&d.period_start),
        closes_on: day(&d.period_end),
        draft_total: money(&d.currency, d.total_minor),
        projected: money(&d.currency, p.overview.projected_total_minor),
        p,
    }
}

pub async fn overview(
    State(s): State<AppState>,
    who: SignedIn,
    Id(org): Id<OrgId>,
) -> WebResult<BillingView> {
    let p = s.ops.console_billing(&who.actor, org)?;
    let form = usage_defaults(p.now);
    Ok(billing_view(&who, p, form))
}

#[derive(Deserialize)]
pub struct UsageQuery {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    format: String,
}

fn date_field(form: &mut FormState, field: &'static str, raw: &str) -> Option<Date> {
    match raw.trim().parse::<Date>() {
        Ok(d) => Some(d),
        Err(_) if raw.trim().is_empty() => {
            form.error(field, "Required");
            None
        }
        Err(_) => {
            form.error(field, "Enter a date like 2026-11-01");
            None
        }
    }
}

fn midnight(d: Date) -> Option<Timestamp> {
    d.to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp())
}

/// The billing page again, with the usage export form refused.
fn usage_again(
    s: &AppState,
    who: &SignedIn,
    org: OrgId,
    status: StatusCode,
    form: FormState,
) -> WebResult<Response> {
    let p = s.ops.console_billing(&who.actor, org)?;
    Ok((status, billing_view(who, p, form)).into_response())
}

/// `GET /orgs/{org}/billing/usage?from=&to=&format=`: the hourly usage records of whole
/// days (`to` included) as a download; a bad field shows the billing page with the error.
pub async fn usage(
    State(s): State<AppState>,
    who: SignedIn,
    Id(org): Id<OrgId>,
    RawQuery(q): RawQuery,
) -> WebResult<Response> {
    let q: UsageQuery = query(q)?;
    let mut form = FormState::new("usage")
        .keep("from", &q.from)
        .keep("to", &q.to)
        .keep("format", &q.format);
    let from = date_field(&mut form, "from", &q.from).and_then(midnight);
    // The export's end is exclusive: midnight after the last day asked for.
    let until = date_field(&mut form, "to", &q.to)
        .and_then(|d| d.tomorrow().ok())
        .and_then(midnight);
    if !matches!(q.format.as_str(), "csv" | "json") {
        form.error("format", "Choose CSV or JSON");
    }
    let (Some(from), Some(until)) = (from, until) else {
        return usage_again(&s, &who, org, StatusCode::UNPROCESSABLE_ENTITY, form);
    };
    if form.has_errors() {
        return usage_again(&s, &who, org, StatusCode::UNPROCESSABLE_ENTITY, form);
    }
    let records = match s.ops.usage_records(&who.actor, org, from, until) {
        Ok(r) => r,
        Err(e @ OpsError::Invalid { .. }) => {
            // The export's `until` is the day after `to`: the end of the period asked for.
            let (status, form) = refused_as(e, form, &[("until", "to")])?;
            return usage_again(&s, &who, org, status, form);
        }
        Err(e) => return Err(e.into()),
    };
    let name = format!("usage-{}-{}", q.from.trim(), q.to.trim());
    if q.format == "json" {
        let body = serde_json::to_string_pretty(&serde_json::json!({ "records": records }))
            .map_err(|e| WebError::Internal(format!("usage as JSON: {e}")))?;
        Ok(download(body, "application/json", &format!("{name}.json")))
    } else {
        Ok(download(
            usage_csv(&records),
            "text/csv; charset=utf-8",
            &format!("{name}.csv"),
        ))
    }
}

// ---- Invoices and the draft -----------------------------------------------------------------

#[derive(Template, WebTemplate)]
#[template(path = "invoice.html")]
pub struct InvoiceView {
    pub l: Layout,
    pub p: InvoicePage,
    pub groups: Vec<LineGroup>,
    pub form: FormState,
    /// Where the downloads are (`…/download?format=`).
    pub download: String,
    pub draft: bool,
}

impl InvoiceView {
    pub fn money(&self, minor: &i64) -> String {
        money(&self.p.invoice.currency, *minor)
    }
}

fn invoice_view(who: &SignedIn, p: InvoicePage, form: FormState) -> InvoiceView {
    let inv = &p.invoice;
    let draft = inv.status == InvoiceStatus::Draft;
    let (title, download) = match (&inv.id, &inv.number) {
        (Some(id), Some(n)) if !draft => {
            (format!("Invoice {n}"), format!("/invoices/{id}/download"))
        }
        _ => (
            format!("Draft for {}", month(&inv.period_start)),
            format!("/orgs/{}/billing/draft/download", p.org.id),
        ),
    };
    InvoiceView {
        l: who.layout(title, section(p.org.id)),
        groups: groups(inv),
        form,
        download,
        draft,
        p,
    }
}

pub async fn invoice(
    State(s): State<AppState>,
    who: SignedIn,
    Id(id): Id<InvoiceId>,
) -> WebResult<InvoiceView> {
    let p = s.ops.console_invoice(&who.actor, id)?;
    Ok(invoice_view(
        &who,
        p,
        FormState::new("void").keep("reason", ""),
    ))
}

pub async fn invoice_download(
    State(s): State<AppState>,
    who: SignedIn,
    Id(id): Id<InvoiceId>,
    RawQuery(q): RawQuery,
) -> WebResult<Response> {
    let q: FormatQuery = query(q)?;
    let inv = s.ops.get_invoice(&who.actor, id)?;
    export_invoice(&inv, &q.format)
}

pub async fn draft(
    State(s): State<AppState>,
    who: SignedIn,
    Id(org): Id<OrgId>,
) -> WebResult<InvoiceView> {
    let p = s.ops.console_draft(&who.actor, org)?;
    Ok(invoice_view(&who, p, FormState::new("")))
}

pub async fn draft_download(
    State(s): State<AppState>,
    who: SignedIn,
    Id(org): Id<OrgId>,
    RawQuery(q): RawQuery,
) -> WebResult<Response> {
    let q: FormatQuery = query(q)?;
    let p = s.ops.console_draft(&who.actor, org)?;
    export_invoice(&p.invoice, &q.format)
}

#[derive(Deserialize)]
pub struct VoidForm {
    #[serde(default)]
    reason: String,
}

pub async fn void(
    State(s): State<AppState>,
    Id(id): Id<InvoiceId>,
    Post(who, f): Post<VoidForm>,
) -> WebResult<Response> {
    let form = FormState::new("void").keep("reason", &f.reason);
    match s.ops.void_invoice(&who.actor, id, &f.reason) {
        Ok(inv) => Ok(redirect(
            &s,
            &format!("/invoices/{id}"),
            Flash::ok(format!(
                "Invoice {} is void. Its number is not used again.",
                inv.number.as_deref().unwrap_or("")
            )),
        )),
        Err(e @ (OpsError::Invalid { .. } | OpsError::Conflict(_))) => {
            let (status, form) = refused(e, form)?;
            let p = s.ops.console_invoice(&who.actor, id)?;
            Ok((status, invoice_view(&who, p, form)).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

// ---- The billing account ------------------------------------------------------------------

#[derive(Template, WebTemplate)]
#[template(path = "billing_account.html")]
pub struct AccountView {
    pub l: Layout,
    pub p: AccountPage,
    pub form: FormState,
    pub next_number: String,
    pub prefix_hint: String,
}

fn account_form(p: &AccountPage) -> FormState {
    let a = &p.account;
    FormState::new("account")
        .keep("name", &a.name)
        .keep("email", &a.email)
        .keep("address", &a.address)
        .keep("tax_id", &a.tax_id)
        .keep("currency", a.currency.code())
        .keep(
            "tax_rate",
            a.tax_rate_bp.as_ref().map(percent).unwrap_or_default(),
        )
        .keep("invoice_prefix", &a.invoice_prefix)
}

fn account_view(who: &SignedIn, p: AccountPage, form: FormState) -> AccountView {
    AccountView {
        l: who.layout(
            format!("Billing account · {}", p.org.display_name),
            section(p.org.id),
        ),
        next_number: invoice_number(&p.account.invoice_prefix, p.account.next_number),
        prefix_hint: format!(
            "A-Z, 0-9 and -; the next invoice is {}",
            invoice_number(&p.account.invoice_prefix, p.account.next_number)
        ),
        form,
        p,
    }
}

pub async fn account(
    State(s): State<AppState>,
    who: SignedIn,
    Id(org): Id<OrgId>,
) -> WebResult<AccountView> {
    let p = s.ops.console_billing_account(&who.actor, org)?;
    let form = account_form(&p);
    Ok(account_view(&who, p, form))
}

#[derive(Deserialize)]
pub struct AccountForm {
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    tax_id: String,
    #[serde(default)]
    currency: String,
    #[serde(default)]
    tax_rate: String,
    #[serde(default)]
    invoice_prefix: String,
}

pub async fn save_account(
    State(s): State<AppState>,
    Id(org): Id<OrgId>,
    Post(who, f): Post<AccountForm>,
) -> WebResult<Response> {
    let mut form = FormState::new("account")
        .keep("name", &f.name)
        .keep("email", &f.email)
        .keep("address", &f.address)
        .keep("tax_id", &f.tax_id)
        .keep("currency", &f.currency)
        .keep("tax_rate", &f.tax_rate)
        .keep("invoice_prefix", &f.invoice_prefix);
    let tax_rate_bp = match parse_percent(&f.tax_rate) {
        Ok(bp) => bp,
        Err(m) => {
            form.error("tax_rate", m);
            let p = s.ops.console_billing_account(&who.actor, org)?;
            let page = account_view(&who, p, form);
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
    };
    let input = AccountInput {
        name: f.name,
        email: f.email,
        address: f.address,
        tax_id: f.tax_id,
        currency: f.currency,
        tax_rate_bp,
        invoice_prefix: f.invoice_prefix,
    };
    match s.ops.update_billing_account(&who.actor, org, input) {
        Ok(_) => Ok(redirect(
            &s,
            &format!("/orgs/{org}/billing"),
            Flash::ok("Billing account saved. Invoices made from now on use it."),
        )),
        Err(e) => {
            // The percentage field stands for `tax_rate_bp`.
            let (status, form) = refused_as(e, form, &[("tax_rate_bp", "tax_rate")])?;
            let p = s.ops.console_billing_account(&who.actor, org)?;
            Ok((status, account_view(&who, p, form)).into_response())
        }
    }
}
