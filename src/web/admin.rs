//! Platform administration: every organization with its limits, user administration
//! (create, rename, disable or enable, grant or remove the administrator flag, reset a
//! password), the host's node inventory and the host connection's health (with the host's
//! warnings on top). Only platform administrators reach these (`Admin`/`AdminPost`);
//! anyone else gets 404. The audit log is in `audit`, plans in `admin_plans`.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error::{WebError, WebResult};
use super::extract::{Admin, AdminPost, SignedIn};
use super::flash::Flash;
use super::view::{FormState, Layout};
use super::{number, redirect, refused};
use crate::domain::{OrgId, OrgLimits, UserId};
use crate::http::Id;
use crate::ops::console::NodeRow;
use crate::ops::host_status::HostStatus;
use crate::ops::orgs::OrgView;
use crate::ops::users::{NewUser, PasswordReset, UserPatch, UserView};
use crate::ops::{OpsError, Page};
use crate::state::AppState;

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
        warnings: host_warnings(s, who),
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
    Id(org): Id<OrgId>,
    AdminPost(who, f): AdminPost<LimitsForm>,
) -> WebResult<Response> {
    let mut form = FormState::new("limits")
        .keep("org", org.to_string())
        .keep("max_workspaces", &f.max_workspaces)
        .keep("max_members", &f.max_members);
    let limits = OrgLimits {
        max_workspaces: number(&mut form, "max_workspaces", &f.max_workspaces),
        max_members: number(&mut form, "max_members", &f.max_members),
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
    /// Users on this page with two-step sign-in on.
    pub mfa: Vec<UserId>,
}

impl UsersView {
    pub fn has_mfa(&self, id: impl std::borrow::Borrow<UserId>) -> bool {
        self.mfa.contains(id.borrow())
    }
}

fn users_page(s: &AppState, who: &SignedIn, after: &str, form: FormState) -> WebResult<UsersView> {
    let after = after.parse::<UserId>().ok();
    let page = s.ops.list_users(&who.actor, after, ROWS)?;
    let ids: Vec<UserId> = page.items.iter().map(|u| u.id).collect();
    Ok(UsersView {
        l: who.layout("Users", "admin-users"),
        mfa: s.ops.users_with_mfa(&ids)?,
        page,
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

/// One form per button: `disable`, `enable`, `grant_admin`, `remove_admin`, `sso_only`,
/// `allow_password`.
pub async fn update_user(
    State(s): State<AppState>,
    Id(id): Id<UserId>,
    AdminPost(who, f): AdminPost<UserActionForm>,
) -> WebResult<Response> {
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
        "sso_only" => (
            UserPatch {
                sso_only: Some(true),
                ..Default::default()
            },
            "restricted to single sign-on",
        ),
        "allow_password" => (
            UserPatch {
                sso_only: Some(false),
                ..Default::default()
            },
            "allowed to sign in with a password again",
        ),
        _ => return Err(WebError::BadRequest("unknown action".into())),
    };
    match s.ops.update_user(&who.actor, id, patch) {
        Ok(u) => {
            // Disabling says until when the access already issued stays valid.
            let left = u
                .remaining_access
                .map(|r| format!(" {}", r.message))
                .unwrap_or_default();
            Ok(redirect(
                &s,
                "/admin/users",
                Flash::ok(format!("{} is {done}.{left}", u.email)),
            ))
        }
        Err(OpsError::Conflict(m) | OpsError::Invalid { message: m, .. }) => Ok(redirect(
            &s,
            "/admin/users",
            Flash::error(super::error::capitalise(&m)),
        )),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub struct NameForm {
    #[serde(default)]
    name: String,
}

/// Corrects a user's name (as shown to others in member lists and the audit log).
pub async fn rename_user(
    State(s): State<AppState>,
    Id(id): Id<UserId>,
    AdminPost(who, f): AdminPost<NameForm>,
) -> WebResult<Response> {
    let form = FormState::new("rename")
        .keep("user", id.to_string())
        .keep("name", &f.name);
    let patch = UserPatch {
        name: Some(f.name),
        ..Default::default()
    };
    match s.ops.update_user(&who.actor, id, patch) {
        Ok(u) => Ok(redirect(
            &s,
            "/admin/users",
            Flash::ok(format!("{} is now called {}.", u.email, u.name)),
        )),
        Err(e) => users_again(&s, &who, e, form),
    }
}

#[derive(Deserialize)]
pub struct ResetForm {
    password: String,
}

pub async fn reset_password(
    State(s): State<AppState>,
    Id(id): Id<UserId>,
    AdminPost(who, f): AdminPost<ResetForm>,
) -> WebResult<Response> {
    let form = FormState::new("reset")
        .keep("user", id.to_string())
        .secret("password");
    let input = PasswordReset {
        password: f.password,
    };
    match s.ops.reset_password(&who.actor, id, input).await {
        Ok(done) => Ok(redirect(
            &s,
            "/admin/users",
            Flash::ok(format!("Password set: {done}.")),
        )),
        Err(e) => users_again(&s, &who, e, form),
    }
}

/// What the host connection asks an operator to fix (e.g. PodTolerationRestriction not
/// enforced), for the warning banner on the administration pages.
fn host_warnings(s: &AppState, who: &SignedIn) -> Vec<String> {
    s.ops.host_warnings(&who.actor)
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
        warnings: host_warnings(&s, &who),
        rows,
        unavailable,
    })
}

#[derive(Template, WebTemplate)]
#[template(path = "admin_host.html")]
pub struct HostView {
    pub l: Layout,
    /// `None` when this kaas manages no host (it was started without one).
    pub host: Option<HostStatus>,
    pub warnings: Vec<String>,
}

/// The host cluster connection as last checked: credentials, version, K3K, the
/// PodTolerationRestriction check and what to fix.
pub async fn host(State(s): State<AppState>, Admin(who): Admin) -> WebResult<HostView> {
    let host = s.ops.host_status(&who.actor)?;
    Ok(HostView {
        l: who.layout("Host cluster", "admin-host"),
        warnings: host
            .as_ref()
            .map(|h| h.warnings.clone())
            .unwrap_or_default(),
        host,
    })
}
