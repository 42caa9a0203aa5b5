//! The project page: its namespace, quota (changed or removed by workspace admins, with
//! the room the plan leaves shown beside the form), members (add, change role, remove) and
//! deletion (the name must be typed, since the namespace goes with everything in it).

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error::WebResult;
use super::extract::{NoFields, Post, SignedIn};
use super::flash::Flash;
use super::members::MembersCard;
use super::view::{FormState, Layout};
use super::{number, redirect, refused};
use crate::domain::{ProjectId, ProjectRole, Quota, UserId};
use crate::http::Id;
use crate::ops::OpsError;
use crate::ops::console::ProjectPage;
use crate::ops::projects::{ProjectPatch, ProjectRoleInput};
use crate::state::AppState;

#[derive(Template, WebTemplate)]
#[template(path = "project.html")]
pub struct ProjectView {
    pub l: Layout,
    pub p: ProjectPage,
    pub form: FormState,
    pub mc: MembersCard,
}

impl ProjectView {
    /// The value of a quota field: as typed after a refusal, else the project's own.
    pub fn quota_value(&self, field: &str) -> String {
        if self.form.is("quota") {
            return self.form.v("quota", field).to_string();
        }
        let Some(q) = &self.p.project.quota else {
            return String::new();
        };
        match field {
            "cpu" => q.cpu_millis,
            "memory" => q.memory_mib,
            "storage" => q.storage_gib,
            _ => q.pods,
        }
        .to_string()
    }

    /// The quota form's inputs: field, label, and the most it may be set to.
    pub fn quota_inputs(&self) -> [(&'static str, &'static str, u64); 4] {
        let room = self.room();
        [
            ("cpu", "CPU (millicores)", room.cpu_millis),
            ("memory", "Memory (MiB)", room.memory_mib),
            ("storage", "Storage (GiB)", room.storage_gib),
            ("pods", "Pods", room.pods),
        ]
    }

    /// What is left of the plan's quota once the other projects' reservations are taken.
    pub fn room(&self) -> Quota {
        let (p, o) = (&self.p.plan_quota, &self.p.reserved_by_others);
        Quota {
            cpu_millis: p.cpu_millis.saturating_sub(o.cpu_millis),
            memory_mib: p.memory_mib.saturating_sub(o.memory_mib),
            storage_gib: p.storage_gib.saturating_sub(o.storage_gib),
            pods: p.pods.saturating_sub(o.pods),
        }
    }
}

fn project_view(who: &SignedIn, mut p: ProjectPage, form: FormState) -> ProjectView {
    let can = p.can_manage_members;
    let mc = MembersCard::new(
        format!("/projects/{}", p.project.id),
        format!("project {}", p.project.name),
        &p.members,
        std::mem::take(&mut p.candidates),
        can,
        format!(
            "No project members yet.{}",
            if can {
                " Add organization members below as viewer, developer or admin."
            } else {
                ""
            }
        ),
    );
    ProjectView {
        l: who.layout(p.project.name.clone(), p.project.org_id),
        p,
        form,
        mc,
    }
}

/// Shows the project page again with a refused form on it (`None`: the form's own checks
/// failed, already noted on it).
fn again(
    s: &AppState,
    who: &SignedIn,
    id: ProjectId,
    e: Option<OpsError>,
    form: FormState,
) -> WebResult<Response> {
    let (status, form) = match e {
        Some(e) => refused(e, form)?,
        None => (StatusCode::UNPROCESSABLE_ENTITY, form),
    };
    let p = s.ops.console_project(&who.actor, id)?;
    Ok((status, project_view(who, p, form)).into_response())
}

pub async fn show(
    State(s): State<AppState>,
    who: SignedIn,
    Id(id): Id<ProjectId>,
) -> WebResult<ProjectView> {
    let p = s.ops.console_project(&who.actor, id)?;
    Ok(project_view(&who, p, FormState::new("")))
}

/// Reads the four quota fields of a form (kept on `form` under their names, plus `quota`
/// for an error about them together). All empty: no quota of its own (`Ok(None)`). A
/// number that is not one, or some fields filled and others not, is an error on the form
/// (`Err`): a half-filled quota would cap the rest at zero.
pub(super) fn quota_fields(
    form: &mut FormState,
    [cpu, memory, storage, pods]: [&str; 4],
) -> Result<Option<Quota>, ()> {
    let dims = [
        number(form, "cpu", cpu),
        number(form, "memory", memory),
        number(form, "storage", storage),
        number(form, "pods", pods),
    ];
    if form.has_errors() {
        return Err(());
    }
    match dims {
        [None, None, None, None] => Ok(None),
        [Some(c), Some(m), Some(st), Some(p)] => Ok(Some(Quota {
            cpu_millis: c,
            memory_mib: m,
            storage_gib: st,
            pods: p,
        })),
        _ => {
            form.error("quota", "Fill in all four quota fields, or none");
            Err(())
        }
    }
}

/// The quota form's fields registered on `form` (values kept, errors placed).
pub(super) fn keep_quota(form: FormState, [cpu, memory, storage, pods]: [&str; 4]) -> FormState {
    form.keep("cpu", cpu)
        .keep("memory", memory)
        .keep("storage", storage)
        .keep("pods", pods)
        .keep("quota", "")
}

/// The four quota fields, as typed (also part of the new-project form).
#[derive(Deserialize)]
pub struct QuotaForm {
    #[serde(default)]
    cpu: String,
    #[serde(default)]
    memory: String,
    #[serde(default)]
    storage: String,
    #[serde(default)]
    pods: String,
}

impl QuotaForm {
    pub(super) fn typed(&self) -> [&str; 4] {
        [
            self.cpu.as_str(),
            self.memory.as_str(),
            self.storage.as_str(),
            self.pods.as_str(),
        ]
    }
}

/// Sets the project's quota, or removes it when all four fields are left empty.
pub async fn update_quota(
    State(s): State<AppState>,
    Id(id): Id<ProjectId>,
    Post(who, f): Post<QuotaForm>,
) -> WebResult<Response> {
    let typed = f.typed();
    let mut form = keep_quota(FormState::new("quota"), typed);
    let Ok(quota) = quota_fields(&mut form, typed) else {
        return again(&s, &who, id, None, form);
    };
    match s.ops.update_project(&who.actor, id, ProjectPatch { quota }) {
        Ok(p) => Ok(redirect(
            &s,
            &format!("/projects/{id}"),
            Flash::ok(match p.quota {
                Some(q) => format!(
                    "Quota of {} set to {}.",
                    p.name,
                    super::view::quota_line(&q)
                ),
                None => format!(
                    "{} has no quota of its own now: it shares the workspace's.",
                    p.name
                ),
            }),
        )),
        Err(e) => again(&s, &who, id, Some(e), form),
    }
}

/// Deletes the project (its namespace and what runs in it); the name must be typed.
pub async fn delete(
    State(s): State<AppState>,
    Id(id): Id<ProjectId>,
    Post(who, f): Post<super::extract::DeleteForm>,
) -> WebResult<Response> {
    let form = FormState::new("delete").keep("confirm", &f.confirm);
    match s
        .ops
        .console_delete_project(&who.actor, id, f.confirm.trim())
    {
        Ok(p) => Ok(redirect(
            &s,
            &format!("/workspaces/{}#projects", p.workspace_id),
            Flash::ok(format!(
                "Project {} was deleted; its namespace is being removed with everything in it.",
                p.name
            )),
        )),
        Err(e) => again(&s, &who, id, Some(e), form),
    }
}

#[derive(Deserialize)]
pub struct MemberForm {
    #[serde(default)]
    user: String,
    role: ProjectRole,
}

/// Adds a project member, or changes one's role (the same use case).
pub async fn put_member(
    State(s): State<AppState>,
    Id(id): Id<ProjectId>,
    Post(who, f): Post<MemberForm>,
) -> WebResult<Response> {
    let form = FormState::new("member").keep("user_id", &f.user);
    let result = match f.user.parse() {
        Ok(user) => {
            s.ops
                .put_project_member(&who.actor, id, user, ProjectRoleInput { role: f.role })
        }
        Err(_) => Err(OpsError::Invalid {
            field: "user_id",
            message: "choose a member of the organization".into(),
        }),
    };
    match result {
        Ok(m) => Ok(redirect(
            &s,
            &format!("/projects/{id}#members"),
            Flash::ok(format!(
                "{} is now {} of the project.",
                m.email,
                m.role.as_str()
            )),
        )),
        Err(e) => again(&s, &who, id, Some(e), form),
    }
}

pub async fn remove_member(
    State(s): State<AppState>,
    Id((id, user)): Id<(ProjectId, UserId)>,
    Post(who, _): Post<NoFields>,
) -> WebResult<Response> {
    let removed = s.ops.remove_project_member(&who.actor, id, user)?;
    Ok(redirect(
        &s,
        &format!("/projects/{id}#members"),
        Flash::ok(format!(
            "The member was removed from the project. {}",
            removed.message
        )),
    ))
}
