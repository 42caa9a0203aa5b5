//! The dashboard and organization pages: the caller's organizations with their workspaces,
//! creating an organization, and per organization its workspaces (create on a plan),
//! members (role, removal), invitations (invite: the link is shown once; revoke), the
//! limits in use, renaming (the display name) and deletion (the name must be typed). Also
//! the small JSON endpoint the status poller reads.

use askama::Template;
use askama_web::WebTemplate;
use axum::Json;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::error::WebResult;
use super::extract::{NoFields, Post, SignedIn};
use super::flash::Flash;
use super::view::{self, Bar, FormState, Layout};
use super::{redirect, refused};
use crate::domain::{InvitationId, OrgId, OrgRole, UserId, WorkspaceId};
use crate::http::Id;
use crate::ops::console::{Dashboard, OrgPage};
use crate::ops::invitations::{CreatedInvitation, NewInvitation};
use crate::ops::orgs::{NewOrg, OrgPatch, RoleChange};
use crate::ops::workspaces::NewWorkspace;
use crate::state::AppState;

#[derive(Template, WebTemplate)]
#[template(path = "dashboard.html")]
pub struct DashboardPage {
    pub l: Layout,
    pub d: Dashboard,
    pub form: FormState,
}

pub async fn dashboard(State(s): State<AppState>, who: SignedIn) -> WebResult<DashboardPage> {
    Ok(DashboardPage {
        l: who.layout("Dashboard", "dashboard"),
        d: s.ops.console_dashboard(&who.actor)?,
        form: FormState::new("org"),
    })
}

#[derive(Deserialize)]
pub struct OrgForm {
    name: String,
    #[serde(default)]
    display_name: String,
}

pub async fn create_org(
    State(s): State<AppState>,
    Post(who, f): Post<OrgForm>,
) -> WebResult<Response> {
    let form = FormState::new("org")
        .keep("name", &f.name)
        .keep("display_name", &f.display_name);
    let display = Some(f.display_name.trim().to_string()).filter(|d| !d.is_empty());
    let input = NewOrg {
        name: f.name.trim().to_string(),
        display_name: display,
    };
    match s.ops.create_org(&who.actor, input) {
        Ok(v) => Ok(redirect(
            &s,
            &format!("/orgs/{}", v.org.id),
            Flash::ok(format!(
                "Organization {} created. Next: create its first workspace.",
                v.org.display_name
            )),
        )),
        Err(e) => {
            let (status, form) = refused(e, form)?;
            let page = DashboardPage {
                l: who.layout("Dashboard", "dashboard"),
                d: s.ops.console_dashboard(&who.actor)?,
                form,
            };
            Ok((status, page).into_response())
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "org.html")]
pub struct OrgView {
    pub l: Layout,
    pub p: OrgPage,
    pub bars: Vec<Bar>,
    pub form: FormState,
    pub roles: [OrgRole; 3],
}

fn org_view(who: &SignedIn, mut p: OrgPage, form: FormState) -> OrgView {
    // Smallest first, so the preselected plan is the modest one.
    view::sort_plans(&mut p.plans);
    let u = &p.org.usage;
    let bars = vec![
        view::bar(
            "Workspaces",
            u.workspaces,
            u64::from(u.max_workspaces),
            view::count,
        ),
        view::bar("Members", u.members, u64::from(u.max_members), view::count),
    ];
    OrgView {
        l: who.layout(p.org.org.display_name.clone(), p.org.org.id),
        p,
        bars,
        form,
        roles: [OrgRole::Member, OrgRole::Admin, OrgRole::Owner],
    }
}

/// Shows the organization page again with a refused form on it.
fn org_again(
    s: &AppState,
    who: &SignedIn,
    org: OrgId,
    e: crate::ops::OpsError,
    form: FormState,
) -> WebResult<Response> {
    let (status, form) = refused(e, form)?;
    let p = s.ops.console_org(&who.actor, org)?;
    Ok((status, org_view(who, p, form)).into_response())
}

pub async fn show(
    State(s): State<AppState>,
    who: SignedIn,
    Id(org): Id<OrgId>,
) -> WebResult<OrgView> {
    let p = s.ops.console_org(&who.actor, org)?;
    Ok(org_view(&who, p, FormState::new("")))
}

#[derive(Deserialize)]
pub struct WorkspaceForm {
    name: String,
    #[serde(default)]
    plan: String,
}

pub async fn create_workspace(
    State(s): State<AppState>,
    Id(org): Id<OrgId>,
    Post(who, f): Post<WorkspaceForm>,
) -> WebResult<Response> {
    let form = FormState::new("ws")
        .keep("name", &f.name)
        .keep("plan", &f.plan);
    let input = NewWorkspace {
        name: f.name.trim().to_string(),
        plan: f.plan,
    };
    match s.ops.create_workspace(&who.actor, org, input) {
        Ok(v) => Ok(redirect(
            &s,
            &format!("/workspaces/{}", v.workspace.id),
            Flash::ok(format!(
                "Workspace {} is being created; its status updates below.",
                v.workspace.name
            )),
        )),
        Err(e) => org_again(&s, &who, org, e, form),
    }
}

#[derive(Deserialize)]
pub struct RoleForm {
    role: OrgRole,
}

pub async fn change_role(
    State(s): State<AppState>,
    Id((org, user)): Id<(OrgId, UserId)>,
    Post(who, f): Post<RoleForm>,
) -> WebResult<Response> {
    match s
        .ops
        .change_member_role(&who.actor, org, user, RoleChange { role: f.role })
    {
        Ok(m) => Ok(redirect(
            &s,
            &format!("/orgs/{org}#members"),
            Flash::ok(format!("{} is now {}.", m.email, m.role.as_str())),
        )),
        Err(e) => org_again(&s, &who, org, e, FormState::new("members")),
    }
}

pub async fn remove_member(
    State(s): State<AppState>,
    Id((org, user)): Id<(OrgId, UserId)>,
    Post(who, _): Post<NoFields>,
) -> WebResult<Response> {
    let leaving = user == who.actor.user_id;
    match s.ops.remove_member(&who.actor, org, user) {
        Ok(_) if leaving => Ok(redirect(&s, "/", Flash::ok("You left the organization."))),
        Ok(removed) => Ok(redirect(
            &s,
            &format!("/orgs/{org}#members"),
            Flash::ok(format!(
                "The member was removed, with their workspace and project roles. {}",
                removed.message
            )),
        )),
        Err(e) => org_again(&s, &who, org, e, FormState::new("members")),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "invitation_created.html")]
pub struct InvitationCreated {
    pub l: Layout,
    pub org: OrgId,
    pub inv: CreatedInvitation,
    pub link: String,
}

#[derive(Deserialize)]
pub struct InviteForm {
    email: String,
    role: OrgRole,
}

/// Creates an invitation and shows its link on this response only: the token is never
/// stored in the clear, put in a URL of ours, or carried in a cookie. (The one exception
/// to post-redirect-get; reloading asks before re-sending, and would make a new link.)
pub async fn invite(
    State(s): State<AppState>,
    Id(org): Id<OrgId>,
    Post(who, f): Post<InviteForm>,
) -> WebResult<Response> {
    let form = FormState::new("invite")
        .keep("email", &f.email)
        .keep("role", f.role.as_str());
    let input = NewInvitation {
        email: f.email,
        role: f.role,
    };
    match s.ops.invite(&who.actor, org, input) {
        Ok(inv) => {
            let link = format!(
                "{}/invite?token={}",
                s.public_url.trim_end_matches('/'),
                inv.token
            );
            let page = InvitationCreated {
                l: who.layout("Invitation created", org),
                org,
                inv,
                link,
            };
            Ok(page.into_response())
        }
        Err(e) => org_again(&s, &who, org, e, form),
    }
}

pub async fn revoke_invitation(
    State(s): State<AppState>,
    Id((org, id)): Id<(OrgId, InvitationId)>,
    Post(who, _): Post<NoFields>,
) -> WebResult<Response> {
    s.ops.revoke_invitation(&who.actor, org, id)?;
    Ok(redirect(
        &s,
        &format!("/orgs/{org}#invitations"),
        Flash::ok("The invitation was revoked; its link no longer works."),
    ))
}

#[derive(Deserialize)]
pub struct RenameForm {
    #[serde(default)]
    display_name: String,
}

/// Changes the organization's display name (its name, used in URLs of kubeconfigs and
/// the audit log, stays).
pub async fn rename(
    State(s): State<AppState>,
    Id(org): Id<OrgId>,
    Post(who, f): Post<RenameForm>,
) -> WebResult<Response> {
    let form = FormState::new("rename").keep("display_name", &f.display_name);
    let patch = OrgPatch {
        display_name: f.display_name,
    };
    match s.ops.update_org(&who.actor, org, patch) {
        Ok(v) => Ok(redirect(
            &s,
            &format!("/orgs/{org}"),
            Flash::ok(format!(
                "The organization is now called {}.",
                v.org.display_name
            )),
        )),
        Err(e) => org_again(&s, &who, org, e, form),
    }
}

/// Deletes an organization that holds no workspaces; its name must be typed.
pub async fn delete(
    State(s): State<AppState>,
    Id(org): Id<OrgId>,
    Post(who, f): Post<super::extract::DeleteForm>,
) -> WebResult<Response> {
    let form = FormState::new("delete").keep("confirm", &f.confirm);
    match s.ops.console_delete_org(&who.actor, org, f.confirm.trim()) {
        Ok(()) => Ok(redirect(
            &s,
            "/",
            Flash::ok(format!(
                "Organization {} was deleted, with its members and invitations.",
                f.confirm.trim()
            )),
        )),
        Err(e) => org_again(&s, &who, org, e, form),
    }
}

#[derive(Serialize)]
pub struct StatusRow {
    id: String,
    state: &'static str,
    class: &'static str,
    message: String,
}

/// `GET /status?ws=ws_…&ws=ws_…`: the states the poller shows (unknown ids left out).
pub async fn statuses(
    State(s): State<AppState>,
    who: SignedIn,
    RawQuery(q): RawQuery,
) -> WebResult<Json<Vec<StatusRow>>> {
    let ids: Vec<WorkspaceId> = form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .filter(|(k, _)| k == "ws")
        .filter_map(|(_, v)| v.parse().ok())
        .collect();
    let rows = s.ops.console_statuses(&who.actor, &ids)?;
    Ok(Json(
        rows.into_iter()
            .map(|r| StatusRow {
                id: r.id.to_string(),
                state: r.state.as_str(),
                class: view::state_class(&r.state),
                message: r.message,
            })
            .collect(),
    ))
}
