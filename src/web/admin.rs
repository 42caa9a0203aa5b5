//! Platform administration: every organization with its limits, user administration
//! (create, disable or enable, grant or remove the administrator flag, reset a password),
//! the audit log with filters and pages, and the host's node inventory (with the host's
//! warnings on top). Only platform administrators reach these
//! (`Admin`/`AdminPost`); anyone else gets 404.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error::{WebError, WebResult};
use super::extract::{Admin, AdminPost, SignedIn};
use super::flash::Flash;
use super::view::{FormState, Layout};
use super::{number, redirect, refused};
use crate::domain::{AuditEvent, AuditId, OrgId, OrgLimits, UserId};
use crate::ops::console::NodeRow;
use crate::ops::orgs::OrgView;
use crate::ops::users::{NewUser, PasswordReset, UserPatch, UserView};
use crate::ops::{OpsError, Page};
use crate::state::AppState;
use crate::store::records::AuditFilter;

const ROWS: usize = 100;

#[derive(Deserialize, Default)]
pub struct AfterQuery {
    #[serde(default)]
    after: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin_orgs.html")]
pub struct OrgsView {
    pub l: Layout,
    pub warnings: Vec<String>,
    pub page: Page<OrgView>,
    pub form: FormState,
}

fn orgs_page(s: &AppState, who: &SignedIn, after: &str, form: FormState) -> WebResult<OrgsView> {
    let after = Some(after).filter(|a| !a.is_empty());
    Ok(OrgsView {
        l: who.layout("Organizations", "admin-orgs"),
        warnings: host_warnings(s),
        page: s.ops.list_orgs(&who.actor, after, ROWS)?,
        form,
    })
}

pub async fn orgs(
    State(s): State<AppState>,
    Admin(who): Admin,
    Query(q): Query<AfterQuery>,
) -> WebResult<OrgsView> {
    orgs_page(&s, &who, &q.after, FormState::new(""))
}

#[derive(Deserialize)]
pub struct LimitsForm {
    #[serde(default)]
    max_workspaces: String,
    #[serde(default)]
    max_members: String,
}

pub async fn set_limits(
    State(s): State<AppState>,
    Path(org): Path<String>,
    AdminPost(who, f): AdminPost<LimitsForm>,
) -> WebResult<Response> {
    let org = org.parse::<OrgId>().map_err(|_| WebError::NotFound)?;
    let mut form = FormState::new("limits")
        .keep("org", org.to_string())
        .keep("max_workspaces", &f.max_workspaces)
        .keep("max_members", &f.max_members);
    let limits = OrgLimits {
        max_workspaces: number(&mut form, "max_workspaces", &f.max_workspaces)
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        max_members: number(&mut form, "max_members", &f.max_members)
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
    };
    let result = if form.has_errors() {
        Err(None)
    } else {
        s.ops.set_org_limits(&who.actor, org, limits).map_err(Some)
    };
    match result {
        Ok(v) => Ok(redirect(
            &s,
            "/admin",
            Flash::ok(format!("Limits of {} saved.", v.org.name)),
        )),
        Err(e) => {
            let (status, form) = match e {
                Some(e) => refused(e, form)?,
                None => (StatusCode::UNPROCESSABLE_ENTITY, form),
            };
            Ok((status, orgs_page(&s, &who, "", form)?).into_response())
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "admin_users.html")]
pub struct UsersView {
    pub l: Layout,
    pub page: Page<UserView>,
    pub form: FormState,
}

fn users_page(s: &AppState, who: &SignedIn, after: &str, form: FormState) -> WebResult<UsersView> {
    let after = after.parse::<UserId>().ok();
    Ok(UsersView {
        l: who.layout("Users", "admin-users"),
        page: s.ops.list_users(&who.actor, after, ROWS)?,
        form,
    })
}

pub async fn users(
    State(s): State<AppState>,
    Admin(who): Admin,
    Query(q): Query<AfterQuery>,
) -> WebResult<UsersView> {
    users_page(&s, &who, &q.after, FormState::new(""))
}

fn users_again(s: &AppState, who: &SignedIn, e: OpsError, form: FormState) -> WebResult<Response> {
    let (status, form) = refused(e, form)?;
    Ok((status, users_page(s, who, "", form)?).into_response())
}

#[derive(Deserialize)]
pub struct NewUserForm {
    email: String,
    name: String,
    password: String,
    #[serde(default)]
    platform_admin: Option<String>,
}

pub async fn create_user(
    State(s): State<AppState>,
    AdminPost(who, f): AdminPost<NewUserForm>,
) -> WebResult<Response> {
    let admin = f.platform_admin.is_some();
    let form = FormState::new("user")
        .keep("email", &f.email)
        .keep("name", &f.name)
        .secret("password")
        .keep("platform_admin", if admin { "on" } else { "" });
    let input = NewUser {
        email: f.email,
        name: f.name,
        password: f.password,
        platform_admin: admin,
    };
    match s.ops.create_user(&who.actor, input).await {
        Ok(u) => Ok(redirect(
            &s,
            "/admin/users",
            Flash::ok(format!(
                "User {} created. Give them their password through a safe channel.",
                u.email
            )),
        )),
        Err(e) => users_again(&s, &who, e, form),
    }
}

#[derive(Deserialize)]
pub struct UserActionForm {
    action: String,
}

/// One form per button: `disable`, `enable`, `grant_admin`, `remove_admin`.
pub async fn update_user(
    State(s): State<AppState>,
    Path(user): Path<String>,
    AdminPost(who, f): AdminPost<UserActionForm>,
) -> WebResult<Response> {
    let id = user.parse::<UserId>().map_err(|_| WebError::NotFound)?;
    let (patch, done) = match f.action.as_str() {
        "disable" => (
            UserPatch {
                disabled: Some(true),
                ..Default::default()
            },
            "disabled; their sessions were ended",
        ),
        "enable" => (
            UserPatch {
                disabled: Some(false),
                ..Default::default()
            },
            "enabled",
        ),
        "grant_admin" => (
            UserPatch {
                platform_admin: Some(true),
                ..Default::default()
            },
            "now a platform administrator",
        ),
        "remove_admin" => (
            UserPatch {
                platform_admin: Some(false),
                ..Default::default()
            },
            "no longer a platform administrator",
        ),
        _ => return Err(WebError::BadRequest("unknown action".into())),
    };
    match s.ops.update_user(&who.actor, id, patch) {
        Ok(u) => Ok(redirect(
            &s,
            "/admin/users",
            Flash::ok(format!("{} is {done}.", u.email)),
        )),
        Err(OpsError::Conflict(m)) => Ok(redirect(
            &s,
            "/admin/users",
            Flash::error(super::error::capitalise(&m)),
        )),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub struct ResetForm {
    password: String,
}

pub async fn reset_password(
    State(s): State<AppState>,
    Path(user): Path<String>,
    AdminPost(who, f): AdminPost<ResetForm>,
) -> WebResult<Response> {
    let id = user.parse::<UserId>().map_err(|_| WebError::NotFound)?;
    let form = FormState::new("reset")
        .keep("user", id.to_string())
        .secret("password");
    let input = PasswordReset {
        password: f.password,
    };
    match s.ops.reset_password(&who.actor, id, input).await {
        Ok(()) => Ok(redirect(
            &s,
            "/admin/users",
            Flash::ok("Password set; the user's sessions were ended."),
        )),
        Err(e) => users_again(&s, &who, e, form),
    }
}

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
#[template(path = "admin_audit.html")]
pub struct AuditView {
    pub l: Layout,
    pub events: Vec<AuditEvent>,
    /// The query string for the next (older) page, if there is one.
    pub older: Option<String>,
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

pub async fn audit(
    State(s): State<AppState>,
    Admin(who): Admin,
    Query(q): Query<AuditQuery>,
) -> WebResult<Response> {
    let mut form = FormState::new("audit")
        .keep("org", &q.org)
        .keep("actor", &q.actor)
        .keep("action", &q.action)
        .keep("since", &q.since)
        .keep("until", &q.until);
    let org = match q.org.trim() {
        "" => None,
        o => o.parse::<OrgId>().map_or_else(
            |_| {
                form.error("org", "Enter an organization id (org_…)");
                None
            },
            Some,
        ),
    };
    let filter = AuditFilter {
        org,
        actor: None,
        action_prefix: Some(q.action.trim().to_string()).filter(|a| !a.is_empty()),
        since: day(&mut form, "since", &q.since, false),
        until: day(&mut form, "until", &q.until, true),
    };
    let before = q.before.parse::<AuditId>().ok();
    let status = if form.has_errors() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let (events, next) = if form.has_errors() {
        (Vec::new(), None)
    } else {
        match s
            .ops
            .console_audit(&who.actor, filter, q.actor.trim(), before, ROWS)
        {
            Ok(p) => (p.items, p.next_cursor),
            Err(e) => {
                let (status, form) = refused(e, form)?;
                let page = AuditView {
                    l: who.layout("Audit log", "admin-audit"),
                    events: Vec::new(),
                    older: None,
                    form,
                };
                return Ok((status, page).into_response());
            }
        }
    };
    let older = next.map(|cursor| {
        form_urlencoded::Serializer::new(String::new())
            .append_pair("org", &q.org)
            .append_pair("actor", &q.actor)
            .append_pair("action", &q.action)
            .append_pair("since", &q.since)
            .append_pair("until", &q.until)
            .append_pair("before", &cursor)
            .finish()
    });
    let page = AuditView {
        l: who.layout("Audit log", "admin-audit"),
        events,
        older,
        form,
    };
    Ok((status, page).into_response())
}

/// What the host connection asks an operator to fix (e.g. PodTolerationRestriction not
/// enforced), for the warning banner on the administration pages.
fn host_warnings(s: &AppState) -> Vec<String> {
    s.host
        .as_ref()
        .map(|h| h.status().warnings)
        .unwrap_or_default()
}

#[derive(Template, WebTemplate)]
#[template(path = "admin_nodes.html")]
pub struct NodesView {
    pub l: Layout,
    pub warnings: Vec<String>,
    pub rows: Vec<NodeRow>,
    /// Why there is no inventory (the host is not connected), instead of the table.
    pub unavailable: Option<String>,
}

/// The host's node inventory with each node's owner.
pub async fn nodes(State(s): State<AppState>, Admin(who): Admin) -> WebResult<NodesView> {
    let (rows, unavailable) = match s.ops.console_nodes(&who.actor) {
        Ok(rows) => (rows, None),
        Err(OpsError::Unavailable(m)) => (Vec::new(), Some(super::error::capitalise(&m))),
        Err(e) => return Err(e.into()),
    };
    Ok(NodesView {
        l: who.layout("Nodes", "admin-nodes"),
        warnings: host_warnings(&s),
        rows,
        unavailable,
    })
}
