//! Routes for billing: an organization's overview (this month so far, projection, daily
//! usage, invoices), its billing account, invoices (JSON or CSV, voiding) and the hourly
//! usage records export (JSON or CSV).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Authed, Body, Q};
use crate::domain::billing::usage::UsageRecord;
use crate::domain::billing::{BillingAccount, Invoice, Period};
use crate::domain::{InvoiceId, OrgId};
use crate::http::Id;
use crate::ops::billing::{AccountInput, BillingOverview, InvoiceSummary, invoice_csv, usage_csv};
use crate::state::AppState;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Json,
    Csv,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FormatParams {
    /// `json` (default) or `csv`.
    #[param(inline)]
    pub format: Option<Format>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DraftParams {
    /// The month, e.g. `2026-11`; default the current one.
    #[param(pattern = r"^\+?[0-9]+-[0-9]{2}$")]
    pub period: Option<String>,
    /// `json` (default) or `csv`.
    #[param(inline)]
    pub format: Option<Format>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageParams {
    /// Start (RFC 3339), inclusive; hours that overlap are included.
    pub from: Timestamp,
    /// End (RFC 3339), exclusive; at most 366 days after `from`.
    pub until: Timestamp,
    /// `json` (default) or `csv`.
    #[param(inline)]
    pub format: Option<Format>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoidInput {
    /// Why the invoice is void (kept on the invoice and in the audit log).
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageExport {
    pub records: Vec<UsageRecord>,
}

fn csv_download(body: String, filename: &str) -> Response {
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    res
}

fn invoice_response(inv: Invoice, format: Option<Format>) -> Response {
    match format.unwrap_or_default() {
        Format::Json => Json(inv).into_response(),
        Format::Csv => {
            let name = format!(
                "{}.csv",
                inv.number
                    .clone()
                    .unwrap_or_else(|| format!("draft-{}", inv.period))
            );
            csv_download(invoice_csv(&inv), &name)
        }
    }
}

/// The organization's billing: this month so far and projected, daily usage, invoices.
#[utoipa::path(get, path = "/orgs/{org}/billing", tag = "billing", params(("org" = String, Path, description = "organization id")),
    responses((status = 200, body = BillingOverview), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn overview(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id(org): Id<OrgId>,
) -> ApiResult<Json<BillingOverview>> {
    Ok(Json(s.ops.billing_overview(&a, org)?))
}

/// Who invoices are addressed to, the currency, tax and invoice number prefix.
#[utoipa::path(get, path = "/orgs/{org}/billing/account", tag = "billing", params(("org" = String, Path, description = "organization id")),
    responses((status = 200, body = BillingAccount), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_account(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id(org): Id<OrgId>,
) -> ApiResult<Json<BillingAccount>> {
    Ok(Json(s.ops.billing_account(&a, org)?))
}

/// Changes the billing account (organization owners).
#[utoipa::path(put, path = "/orgs/{org}/billing/account", tag = "billing", request_body = AccountInput,
    params(("org" = String, Path, description = "organization id")),
    responses((status = 200, body = BillingAccount), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_account(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id(org): Id<OrgId>,
    Body(input): Body<AccountInput>,
) -> ApiResult<Json<BillingAccount>> {
    Ok(Json(s.ops.update_billing_account(&a, org, input)?))
}

/// Finalized and void invoices, newest first.
#[utoipa::path(get, path = "/orgs/{org}/invoices", tag = "billing", params(("org" = String, Path, description = "organization id")),
    responses((status = 200, body = [InvoiceSummary]), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_invoices(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id(org): Id<OrgId>,
) -> ApiResult<Json<Vec<InvoiceSummary>>> {
    Ok(Json(s.ops.list_invoices(&a, org)?))
}

/// A month's invoice as it stands from the usage recorded so far (not numbered, not final).
#[utoipa::path(get, path = "/orgs/{org}/invoices/draft", tag = "billing", params(("org" = String, Path, description = "organization id"), DraftParams),
    responses((status = 200, content((Invoice = "application/json"), (String = "text/csv"))), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn draft_invoice(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id(org): Id<OrgId>,
    Q(q): Q<DraftParams>,
) -> ApiResult<Response> {
    let period = match q.period {
        Some(p) => Period::parse(&p).map_err(|m| {
            ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "invalid_query",
                format!("period: {m}"),
            )
            .field("period")
        })?,
        None => Period::containing(s.ops.now()),
    };
    Ok(invoice_response(
        s.ops.draft_invoice(&a, org, period)?,
        q.format,
    ))
}

/// One invoice, as JSON or CSV (`?format=csv`).
#[utoipa::path(get, path = "/invoices/{id}", tag = "billing", params(("id" = String, Path, description = "invoice id"), FormatParams),
    responses((status = 200, content((Invoice = "application/json"), (String = "text/csv"))), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_invoice(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id(id): Id<InvoiceId>,
    Q(q): Q<FormatParams>,
) -> ApiResult<Response> {
    Ok(invoice_response(s.ops.get_invoice(&a, id)?, q.format))
}

/// Voids a finalized invoice with a reason (platform administrators; audited). Its number
/// is not reused.
#[utoipa::path(post, path = "/invoices/{id}/void", tag = "billing", request_body = VoidInput,
    params(("id" = String, Path, description = "invoice id")),
    responses((status = 200, body = Invoice), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn void_invoice(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id(id): Id<InvoiceId>,
    Body(input): Body<VoidInput>,
) -> ApiResult<Json<Invoice>> {
    Ok(Json(s.ops.void_invoice(&a, id, &input.reason)?))
}

/// Hourly usage records per workspace and meter in a time range, as JSON or CSV.
#[utoipa::path(get, path = "/orgs/{org}/usage", tag = "billing", params(("org" = String, Path, description = "organization id"), UsageParams),
    responses((status = 200, content((UsageExport = "application/json"), (String = "text/csv"))), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn usage(
    State(s): State<AppState>,
    Authed(a): Authed,
    Id(org): Id<OrgId>,
    Q(q): Q<UsageParams>,
) -> ApiResult<Response> {
    let records = s.ops.usage_records(&a, org, q.from, q.until)?;
    Ok(match q.format.unwrap_or_default() {
        Format::Json => Json(UsageExport { records }).into_response(),
        Format::Csv => csv_download(usage_csv(&records), &format!("usage-{org}.csv")),
    })
}
