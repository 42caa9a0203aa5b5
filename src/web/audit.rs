//! The audit log, newest first, with filters (organization, actor, action prefix, days)
//! and older pages: everything for platform administrators (`/admin/audit`, where the
//! organization is typed by name or id), one organization's events for its admins
//! (`/orgs/{org}/audit`). The filter form is a GET, so a filtered view is a link to share.
//! The administrators' page says whether the hash chain is intact and where it breaks;
//! both pages offer the filtered log as CSV or JSON with each record's hashes
//! (`…/audit/export`).

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error::{WebError, WebResult};
use super::extract::{Admin, SignedIn};
use super::refused;
use super::view::{FormState, Layout};
use crate::domain::audit::{AuditEntry, ChainReport};
use crate::domain::{AuditId, OrgId, Organization};
use crate::http::Id;
use crate::ops::audit::{AuditFilter, ExportFormat};
use crate::ops::console::AuditSearch;
use crate::state::AppState;

/// Events per page.
const ROWS: usize = 100;

#[derive(Deserialize, Default)]
pub struct AuditQuery {
    #[serde(default)]
    org: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    before: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "audit.html")]
pub struct AuditView {
    pub l: Layout,
    /// The organization the log is fixed to (its own log), if any.
    pub scope: Option<Organization>,
    /// Where the filter form and the pager point.
    pub path: String,
    pub events: Vec<AuditEntry>,
    /// The query string for the next (older) page, if there is one.
    pub older: Option<String>,
    /// The current filters as a query string, for the export links.
    pub filters: String,
    /// The hash chain's state (the administrators' page only).
    pub chain: Option<ChainReport>,
    pub form: FormState,
}

/// A day typed as `YYYY-MM-DD`, as the UTC instant it starts (`end`: the next day's).
fn day(form: &mut FormState, field: &'static str, raw: &str, end: bool) -> Option<jiff::Timestamp> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    let parsed = raw
        .parse::<jiff::civil::Date>()
        .ok()
        .and_then(|d| if end { d.tomorrow().ok() } else { Some(d) })
        .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok());
    match parsed {
        Some(z) => Some(z.timestamp()),
        None => {
            form.error(field, "Enter a date as YYYY-MM-DD");
            None
        }
    }
}

/// Filters, fetches and renders one page of the log.
fn render(
    s: &AppState,
    who: &SignedIn,
    scope: Option<OrgId>,
    q: &AuditQuery,
) -> WebResult<Response> {
    let mut form = FormState::new("audit")
        .keep("org", &q.org)
        .keep("actor", &q.actor)
        .keep("action", &q.action)
        .keep("since", &q.since)
        .keep("until", &q.until);
    let filter = AuditFilter {
        org: None,
        actor: None,
        action_prefix: Some(q.action.trim().to_string()).filter(|a| !a.is_empty()),
        since: day(&mut form, "since", &q.since, false),
        until: day(&mut form, "until", &q.until, true),
    };
    let (path, section) = match scope {
        Some(org) => (format!("/orgs/{org}/audit"), org.to_string()),
        None => ("/admin/audit".to_string(), "admin-audit".to_string()),
    };
    let filters = {
        let mut qs = form_urlencoded::Serializer::new(String::new());
        if scope.is_none() {
            qs.append_pair("org", &q.org);
        }
        qs.append_pair("actor", &q.actor)
            .append_pair("action", &q.action)
            .append_pair("since", &q.since)
            .append_pair("until", &q.until)
            .finish()
    };
    // The whole chain is walked on the log's first page only, not again for each older page.
    let chain = match scope {
        None if q.before.is_empty() => Some(s.ops.verify_audit(&who.actor)?),
        _ => None,
    };
    let page = |scope: Option<Organization>, events, older, form| {
        let title = match &scope {
            Some(o) => format!("Audit log · {}", o.display_name),
            None => "Audit log".to_string(),
        };
        AuditView {
            l: who.layout(title, &section),
            scope,
            path: path.clone(),
            events,
            older,
            filters: filters.clone(),
            chain: chain.clone(),
            form,
        }
    };
    // A refused filter still shows the organization in the heading of its own log.
    let scope_org = || -> WebResult<Option<Organization>> {
        match scope {
            Some(id) => Ok(Some(s.ops.get_org(&who.actor, id)?.org)),
            None => Ok(None),
        }
    };
    if form.has_errors() {
        let page = page(scope_org()?, Vec::new(), None, form);
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    }
    let search = AuditSearch {
        org: &q.org,
        actor: &q.actor,
        filter,
    };
    let before = q.before.parse::<AuditId>().ok();
    match s.ops.console_audit(&who.actor, scope, search, before, ROWS) {
        Ok(found) => {
            let older = found.page.next_cursor.map(|cursor| {
                let mut qs = form_urlencoded::Serializer::new(String::new());
                if scope.is_none() {
                    qs.append_pair("org", &q.org);
                }
                qs.append_pair("actor", &q.actor)
                    .append_pair("action", &q.action)
                    .append_pair("since", &q.since)
                    .append_pair("until", &q.until)
                    .append_pair("before", &cursor)
                    .finish()
            });
            let org = if scope.is_some() { found.org } else { None };
            Ok(page(org, found.page.items, older, form).into_response())
        }
        // Not the caller's organization, or not theirs to audit: an error page, not a form.
        Err(e @ (crate::ops::OpsError::NotFound(_) | crate::ops::OpsError::Forbidden(_))) => {
            Err(WebError::from(e))
        }
        Err(e) => {
            let (status, form) = refused(e, form)?;
            Ok((status, page(scope_org()?, Vec::new(), None, form)).into_response())
        }
    }
}

#[derive(Deserialize, Default)]
pub struct ExportQuery {
    #[serde(flatten)]
    filters: AuditQuery,
    #[serde(default)]
    format: String,
}

/// The filtered log as a download; a filter that does not parse is a 400 (the page's own
/// links only carry filters it accepted).
fn export(
    s: &AppState,
    who: &SignedIn,
    scope: Option<OrgId>,
    q: &ExportQuery,
) -> WebResult<Response> {
    let format = match q.format.as_str() {
        "csv" => ExportFormat::Csv,
        "json" => ExportFormat::Json,
        _ => return Err(WebError::BadRequest("format: choose csv or json".into())),
    };
    let f = &q.filters;
    let mut form = FormState::new("audit");
    let filter = AuditFilter {
        org: None,
        actor: None,
        action_prefix: Some(f.action.trim().to_string()).filter(|a| !a.is_empty()),
        since: day(&mut form, "since", &f.since, false),
        until: day(&mut form, "until", &f.until, true),
    };
    if form.has_errors() {
        return Err(WebError::BadRequest(
            "since/until: enter dates as YYYY-MM-DD".into(),
        ));
    }
    let search = AuditSearch {
        org: &f.org,
        actor: &f.actor,
        filter,
    };
    let out = s
        .ops
        .console_audit_export(&who.actor, scope, search, format)?;
    let mut res = out.body.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(out.content_type),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{}\"", out.filename)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

/// The whole log as CSV or JSON (platform administrators).
pub async fn admin_export(
    State(s): State<AppState>,
    Admin(who): Admin,
    Query(q): Query<ExportQuery>,
) -> WebResult<Response> {
    export(&s, &who, None, &q)
}

/// One organization's log as CSV or JSON (its admins and owners).
pub async fn org_export(
    State(s): State<AppState>,
    who: SignedIn,
    Id(org): Id<OrgId>,
    Query(q): Query<ExportQuery>,
) -> WebResult<Response> {
    export(&s, &who, Some(org), &q)
}

/// The whole log (platform administrators).
pub async fn admin(
    State(s): State<AppState>,
    Admin(who): Admin,
    Query(q): Query<AuditQuery>,
) -> WebResult<Response> {
    render(&s, &who, None, &q)
}

/// One organization's log (its admins and owners).
pub async fn org(
    State(s): State<AppState>,
    who: SignedIn,
    Id(org): Id<OrgId>,
    Query(q): Query<AuditQuery>,
) -> WebResult<Response> {
    render(&s, &who, Some(org), &q)
}
