//! The workspace page: status (polled while it changes), plan and quota use, projects,
//! members (add, change role, remove), plan change and deletion (the name must be typed),
//! the kubeconfig download (a file, never a page) and dedicated nodes (assigned and
//! released by platform administrators). Project pages are in `projects`.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error::{WebError, WebResult};
use super::extract::{AdminPost, NoFields, Post, SignedIn};
use super::flash::Flash;
use super::members::MembersCard;
use super::projects::{QuotaForm, keep_quota, quota_fields};
use super::view::{self, Bar, FormState, Layout};
use super::{redirect, refused};
use crate::domain::plan::{ImmutableChange, cluster_immutable_changes};
use crate::domain::{Plan, UserId, WorkspaceId, WorkspaceRole};
use crate::http::Id;
use crate::ops::OpsError;
use crate::ops::console::WorkspacePage;
use crate::ops::kubeconfig::{KubeconfigKind, KubeconfigRequest};
use crate::ops::nodes::NewAssignment;
use crate::ops::projects::NewProject;
use crate::ops::workspaces::{WorkspacePatch, WorkspaceRoleInput};
use crate::state::AppState;

#[derive(Template, WebTemplate)]
#[template(path = "workspace.html")]
pub struct WorkspaceView {
    pub l: Layout,
    pub p: WorkspacePage,
    pub quota_bars: Vec<Bar>,
    pub limit_bars: Vec<Bar>,
    /// The plans offered in the change-plan form.
    pub plan_choices: Vec<PlanChoice>,
    pub form: FormState,
    pub mc: MembersCard,
}

/// A plan in the change-plan form.
pub struct PlanChoice {
    pub plan: Plan,
    /// The workspace's plan now.
    pub current: bool,
    /// Why the workspace's virtual cluster cannot take this plan (shown, and the option
    /// disabled); `ops` refuses the move anyway.
    pub unavailable: Option<String>,
}

/// Whether the form should explain why some plans are not available.
pub fn any_unavailable(choices: &[PlanChoice]) -> bool {
    choices.iter().any(|c| c.unavailable.is_some())
}

/// Every plan the workspace could be on: those offered, and its own even when retired.
fn plan_choices(p: &WorkspacePage) -> Vec<PlanChoice> {
    let now = &p.ws.plan;
    p.plans
        .iter()
        .filter(|pl| !pl.retired || pl.id == now.id)
        .map(|pl| {
            let labels: Vec<&str> = cluster_immutable_changes(now, pl)
                .iter()
                .map(ImmutableChange::label)
                .collect();
            PlanChoice {
                plan: pl.clone(),
                current: pl.id == now.id,
                unavailable: (!labels.is_empty()).then(|| labels.join(", ")),
            }
        })
        .collect()
}

fn ws_view(who: &SignedIn, mut p: WorkspacePage, form: FormState) -> WorkspaceView {
    view::sort_plans(&mut p.plans);
    let plan = &p.ws.plan;
    let limit_bars = vec![
        view::bar(
            "Projects",
            p.ws.projects,
            u64::from(plan.max_projects),
            view::count,
        ),
        view::bar(
            "Members",
            p.ws.members,
            u64::from(plan.max_members),
            view::count,
        ),
    ];
    let can = p.can_manage_members;
    let mc = MembersCard::new(
        format!("/workspaces/{}", p.ws.workspace.id),
        format!("workspace {}", p.ws.workspace.name),
        &p.members,
        std::mem::take(&mut p.candidates),
        can,
        format!(
            "No workspace members. Organization admins can always manage it{}.",
            if can { "; add people below" } else { "" }
        ),
    );
    WorkspaceView {
        mc,
        l: who.layout(p.ws.workspace.name.clone(), p.ws.workspace.org_id),
        quota_bars: view::quota_bars(&p.projects_quota, &plan.quota),
        limit_bars,
        plan_choices: plan_choices(&p),
        p,
        form,
    }
}

fn ws_again(
    s: &AppState,
    who: &SignedIn,
    id: WorkspaceId,
    e: Option<OpsError>,
    form: FormState,
) -> WebResult<Response> {
    let (status, form) = match e {
        Some(e) => refused(e, form)?,
        None => (axum::http::StatusCode::UNPROCESSABLE_ENTITY, form),
    };
    let p = s.ops.console_workspace(&who.actor, id)?;
    Ok((status, ws_view(who, p, form)).into_response())
}

pub async fn show(
    State(s): State<AppState>,
    who: SignedIn,
    Id(id): Id<WorkspaceId>,
) -> WebResult<WorkspaceView> {
    let p = s.ops.console_workspace(&who.actor, id)?;
    Ok(ws_view(&who, p, FormState::new("")))
}

#[derive(Deserialize)]
pub struct ProjectForm {
    name: String,
    #[serde(flatten)]
    quota: QuotaForm,
}

pub async fn create_project(
    State(s): State<AppState>,
    Id(id): Id<WorkspaceId>,
    Post(who, f): Post<ProjectForm>,
) -> WebResult<Response> {
    let typed = f.quota.typed();
    let mut form = keep_quota(FormState::new("project").keep("name", &f.name), typed);
    let Ok(quota) = quota_fields(&mut form, typed) else {
        return ws_again(&s, &who, id, None, form);
    };
    let input = NewProject {
        name: f.name.trim().to_string(),
        quota,
    };
    match s.ops.create_project(&who.actor, id, input) {
        Ok(p) => Ok(redirect(
            &s,
            &format!("/projects/{}", p.id),
            Flash::ok(format!("Project {} created.", p.name)),
        )),
        Err(e) => ws_again(&s, &who, id, Some(e), form),
    }
}

#[derive(Deserialize)]
pub struct MemberForm {
    #[serde(default)]
    user: String,
    role: WorkspaceRole,
}

/// Adds a workspace member, or changes one's role (the same use case).
pub async fn put_member(
    State(s): State<AppState>,
    Id(id): Id<WorkspaceId>,
    Post(who, f): Post<MemberForm>,
) -> WebResult<Response> {
    let mut form = FormState::new("member").keep("user_id", &f.user);
    let Ok(user) = f.user.parse::<UserId>() else {
        form.error("user_id", "Choose a member of the organization");
        return ws_again(&s, &who, id, None, form);
    };
    match s
        .ops
        .put_workspace_member(&who.actor, id, user, WorkspaceRoleInput { role: f.role })
    {
        Ok(m) => Ok(redirect(
            &s,
            &format!("/workspaces/{id}#members"),
            Flash::ok(format!("{} is now {}.", m.email, m.role.as_str())),
        )),
        Err(e) => ws_again(&s, &who, id, Some(e), form),
    }
}

pub async fn remove_member(
    State(s): State<AppState>,
    Id((id, user)): Id<(WorkspaceId, UserId)>,
    Post(who, _): Post<NoFields>,
) -> WebResult<Response> {
    let removed = s.ops.remove_workspace_member(&who.actor, id, user)?;
    Ok(redirect(
        &s,
        &format!("/workspaces/{id}#members"),
        Flash::ok(format!(
            "The member was removed from the workspace. {}",
            removed.message
        )),
    ))
}

#[derive(Deserialize)]
pub struct PlanForm {
    plan: String,
}

pub async fn change_plan(
    State(s): State<AppState>,
    Id(id): Id<WorkspaceId>,
    Post(who, f): Post<PlanForm>,
) -> WebResult<Response> {
    let form = FormState::new("plan").keep("plan", &f.plan);
    match s
        .ops
        .change_plan(&who.actor, id, WorkspacePatch { plan: f.plan })
    {
        Ok(v) => Ok(redirect(
            &s,
            &format!("/workspaces/{id}"),
            Flash::ok(format!(
                "Workspace {} moves to plan {}.",
                v.workspace.name, v.plan.display_name
            )),
        )),
        Err(e) => ws_again(&s, &who, id, Some(e), form),
    }
}

/// Deleting asks for the workspace's name, typed: a form that can be checked without JS.
pub async fn delete(
    State(s): State<AppState>,
    Id(id): Id<WorkspaceId>,
    Post(who, f): Post<super::extract::DeleteForm>,
) -> WebResult<Response> {
    let form = FormState::new("delete").keep("confirm", &f.confirm);
    match s
        .ops
        .console_delete_workspace(&who.actor, id, f.confirm.trim())
    {
        Ok(v) => Ok(redirect(
            &s,
            &format!("/orgs/{}", v.workspace.org_id),
            Flash::ok(format!(
                "Workspace {} is being deleted with everything in it.",
                v.workspace.name
            )),
        )),
        Err(e) => ws_again(&s, &who, id, Some(e), form),
    }
}

#[derive(Deserialize)]
pub struct KubeconfigForm {
    #[serde(default)]
    lifetime_hours: String,
    /// `certificate` from the second button; empty: the default kind.
    #[serde(default)]
    kind: String,
}

/// Sends a kubeconfig as a file download (never shown on a page); a refusal comes back as
/// a flash on the workspace page.
pub async fn kubeconfig(
    State(s): State<AppState>,
    Id(id): Id<WorkspaceId>,
    Post(who, f): Post<KubeconfigForm>,
) -> WebResult<Response> {
    let back = format!("/workspaces/{id}#kubeconfig");
    let kind = match f.kind.trim() {
        "certificate" => Some(KubeconfigKind::Certificate),
        "exec" => Some(KubeconfigKind::Exec),
        _ => None,
    };
    let lifetime_hours = match f.lifetime_hours.trim() {
        "" => None,
        h => match h.parse::<u32>() {
            Ok(h) => Some(h),
            Err(_) => {
                return Ok(redirect(
                    &s,
                    &back,
                    Flash::error("Choose a certificate lifetime from the list."),
                ));
            }
        },
    };
    match s
        .ops
        .console_kubeconfig(
            &who.actor,
            id,
            KubeconfigRequest {
                lifetime_hours,
                kind,
            },
        )
        .await
    {
        Ok(d) => {
            let name = view::kubeconfig_file(&d.org_name, &d.workspace_name);
            let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
                .map_err(|e| WebError::Internal(e.to_string()))?;
            Ok((
                [
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/yaml"),
                    ),
                    (header::CONTENT_DISPOSITION, disposition),
                    (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                ],
                d.issued.kubeconfig,
            )
                .into_response())
        }
        Err(e @ (OpsError::NotFound(_) | OpsError::Unauthenticated(_) | OpsError::Store(_))) => {
            Err(e.into())
        }
        // The only field of the form: ops's message completes its name, as in the API's
        // `lifetime_hours: must be …`.
        Err(OpsError::Invalid {
            field: "lifetime_hours",
            message,
        }) => Ok(redirect(
            &s,
            &back,
            Flash::error(format!("Certificate lifetime {message}.")),
        )),
        Err(e) => Ok(redirect(
            &s,
            &back,
            Flash::error(super::error::capitalise(&WebError::from(e).to_string())),
        )),
    }
}

#[derive(Deserialize)]
pub struct AssignForm {
    #[serde(default)]
    node: String,
}

/// Dedicates a host node to the workspace (platform administrators).
pub async fn assign_node(
    State(s): State<AppState>,
    Id(id): Id<WorkspaceId>,
    AdminPost(who, f): AdminPost<AssignForm>,
) -> WebResult<Response> {
    let form = FormState::new("nodes").keep("node", &f.node);
    match s.ops.assign_node(
        &who.actor,
        id,
        NewAssignment {
            node: f.node.clone(),
        },
    ) {
        Ok(a) => Ok(redirect(
            &s,
            &format!("/workspaces/{id}#nodes"),
            Flash::ok(format!(
                "Node {} is now dedicated to this workspace.",
                a.node
            )),
        )),
        Err(e) => ws_again(&s, &who, id, Some(e), form),
    }
}

/// Ends a node's dedication; the reconciler evicts the workspace's pods from it.
pub async fn release_node(
    State(s): State<AppState>,
    Id((id, node)): Id<(WorkspaceId, String)>,
    AdminPost(who, _): AdminPost<NoFields>,
) -> WebResult<Response> {
    s.ops.release_node(&who.actor, id, &node)?;
    Ok(redirect(
        &s,
        &format!("/workspaces/{id}#nodes"),
        Flash::ok(format!(
            "Node {node} is released: the workspace's pods are evicted from it and it returns to the shared pool."
        )),
    ))
}
