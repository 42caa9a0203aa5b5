//! Plans, for platform administrators: the list (retired ones included), a form to create
//! one and the same form to edit one. The form is flat (every number a field); the plan's
//! own rules are `Plan::validate`, applied by `ops`.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error::WebResult;
use super::extract::{Admin, AdminPost, SignedIn};
use super::flash::Flash;
use super::view::{FormState, Layout};
use super::{number, redirect, refused};
use crate::domain::{K3kMode, LimitDefaults, Plan, Quota};
use crate::state::AppState;

#[derive(Template, WebTemplate)]
#[template(path = "admin_plans.html")]
pub struct PlansView {
    pub l: Layout,
    pub plans: Vec<Plan>,
}

pub async fn list(State(s): State<AppState>, Admin(who): Admin) -> WebResult<PlansView> {
    Ok(PlansView {
        l: who.layout("Plans", "admin-plans"),
        plans: s.ops.list_plans(&who.actor)?,
    })
}

#[derive(Template, WebTemplate)]
#[template(path = "admin_plan.html")]
pub struct PlanEdit {
    pub l: Layout,
    /// `None` for a new plan.
    pub editing: Option<String>,
    pub form: FormState,
}

/// Every field of the plan form, as typed.
#[derive(Deserialize)]
pub struct PlanForm {
    #[serde(default)]
    id: String,
    display_name: String,
    #[serde(default)]
    description: String,
    k3k_mode: K3kMode,
    servers: String,
    agents: String,
    storage_gib: String,
    cpu: String,
    memory: String,
    storage: String,
    pods: String,
    #[serde(rename = "limits.default_cpu_millis")]
    default_cpu_millis: String,
    #[serde(rename = "limits.default_memory_mib")]
    default_memory_mib: String,
    #[serde(rename = "limits.default_request_cpu_millis")]
    default_request_cpu_millis: String,
    #[serde(rename = "limits.default_request_memory_mib")]
    default_request_memory_mib: String,
    max_dedicated_nodes: String,
    max_projects: String,
    max_members: String,
    #[serde(default)]
    k3s_version: String,
    #[serde(default)]
    retired: Option<String>,
}

fn mode(m: K3kMode) -> &'static str {
    match m {
        K3kMode::Shared => "shared",
        K3kMode::Virtual => "virtual",
    }
}

fn form_of(p: &Plan) -> FormState {
    let q = &p.quota;
    let l = &p.limits;
    FormState::new("plan")
        .keep("id", &p.id)
        .keep("display_name", &p.display_name)
        .keep("description", &p.description)
        .keep("k3k_mode", mode(p.k3k_mode))
        .keep("servers", p.servers.to_string())
        .keep("agents", p.agents.to_string())
        .keep("storage_gib", p.storage_gib.to_string())
        .keep("quota", "")
        .keep("cpu", q.cpu_millis.to_string())
        .keep("memory", q.memory_mib.to_string())
        .keep("storage", q.storage_gib.to_string())
        .keep("pods", q.pods.to_string())
        .keep("limits", "")
        .keep(
            "limits.default_cpu_millis",
            l.default_cpu_millis.to_string(),
        )
        .keep(
            "limits.default_memory_mib",
            l.default_memory_mib.to_string(),
        )
        .keep(
            "limits.default_request_cpu_millis",
            l.default_request_cpu_millis.to_string(),
        )
        .keep(
            "limits.default_request_memory_mib",
            l.default_request_memory_mib.to_string(),
        )
        .keep("max_dedicated_nodes", p.max_dedicated_nodes.to_string())
        .keep("max_projects", p.max_projects.to_string())
        .keep("max_members", p.max_members.to_string())
        .keep("k3s_version", p.k3s_version.clone().unwrap_or_default())
        .keep("retired", if p.retired { "on" } else { "" })
}

/// The typed form as a plan, and the form to show again (with errors for numbers that
/// are not numbers).
fn parse(f: PlanForm) -> (Plan, FormState) {
    let mut form = FormState::new("plan")
        .keep("id", &f.id)
        .keep("display_name", &f.display_name)
        .keep("description", &f.description)
        .keep("k3k_mode", mode(f.k3k_mode))
        .keep("servers", &f.servers)
        .keep("agents", &f.agents)
        .keep("storage_gib", &f.storage_gib)
        .keep("quota", "")
        .keep("cpu", &f.cpu)
        .keep("memory", &f.memory)
        .keep("storage", &f.storage)
        .keep("pods", &f.pods)
        .keep("limits", "")
        .keep("limits.default_cpu_millis", &f.default_cpu_millis)
        .keep("limits.default_memory_mib", &f.default_memory_mib)
        .keep(
            "limits.default_request_cpu_millis",
            &f.default_request_cpu_millis,
        )
        .keep(
            "limits.default_request_memory_mib",
            &f.default_request_memory_mib,
        )
        .keep("max_dedicated_nodes", &f.max_dedicated_nodes)
        .keep("max_projects", &f.max_projects)
        .keep("max_members", &f.max_members)
        .keep("k3s_version", &f.k3s_version)
        .keep("retired", if f.retired.is_some() { "on" } else { "" });
    let mut n = |field: &'static str, raw: &str| -> u64 {
        let v = number(&mut form, field, raw);
        if v.is_none() && raw.trim().is_empty() {
            form.error(field, "Required");
        }
        v.unwrap_or(0)
    };
    let small = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    let plan = Plan {
        id: f.id.trim().to_string(),
        display_name: f.display_name.trim().to_string(),
        description: f.description.trim().to_string(),
        k3k_mode: f.k3k_mode,
        servers: small(n("servers", &f.servers)),
        agents: small(n("agents", &f.agents)),
        storage_gib: small(n("storage_gib", &f.storage_gib)),
        quota: Quota {
            cpu_millis: n("cpu", &f.cpu),
            memory_mib: n("memory", &f.memory),
            storage_gib: n("storage", &f.storage),
            pods: n("pods", &f.pods),
        },
        limits: LimitDefaults {
            default_cpu_millis: n("limits.default_cpu_millis", &f.default_cpu_millis),
            default_memory_mib: n("limits.default_memory_mib", &f.default_memory_mib),
            default_request_cpu_millis: n(
                "limits.default_request_cpu_millis",
                &f.default_request_cpu_millis,
            ),
            default_request_memory_mib: n(
                "limits.default_request_memory_mib",
                &f.default_request_memory_mib,
            ),
        },
        max_dedicated_nodes: small(n("max_dedicated_nodes", &f.max_dedicated_nodes)),
        max_projects: small(n("max_projects", &f.max_projects)),
        max_members: small(n("max_members", &f.max_members)),
        k3s_version: Some(f.k3s_version.trim().to_string()).filter(|v| !v.is_empty()),
        retired: f.retired.is_some(),
        // Prices get their own fields with the billing pages.
        prices: Default::default(),
        revision: 0,
    };
    (plan, form)
}

fn plan_page(who: &SignedIn, editing: Option<String>, form: FormState) -> PlanEdit {
    let title = match &editing {
        Some(id) => format!("Plan {id}"),
        None => "New plan".to_string(),
    };
    PlanEdit {
        l: who.layout(title, "admin-plans"),
        editing,
        form,
    }
}

pub async fn new_page(Admin(who): Admin) -> PlanEdit {
    let starter = crate::domain::plan::default_plans().into_iter().next();
    let mut form = starter
        .as_ref()
        .map_or_else(|| FormState::new("plan"), form_of);
    // A template to start from, not a copy: the id and name are the admin's to choose.
    form = form.keep("id", "").keep("display_name", "");
    plan_page(&who, None, form)
}

pub async fn edit_page(
    State(s): State<AppState>,
    Admin(who): Admin,
    Path(id): Path<String>,
) -> WebResult<PlanEdit> {
    let plan = s.ops.get_plan(&who.actor, &id)?;
    Ok(plan_page(&who, Some(plan.id.clone()), form_of(&plan)))
}

pub async fn create(
    State(s): State<AppState>,
    AdminPost(who, f): AdminPost<PlanForm>,
) -> WebResult<Response> {
    let (plan, form) = parse(f);
    if form.has_errors() {
        return Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            plan_page(&who, None, form),
        )
            .into_response());
    }
    match s.ops.create_plan(&who.actor, plan) {
        Ok(p) => Ok(redirect(
            &s,
            "/admin/plans",
            Flash::ok(format!("Plan {} created.", p.display_name)),
        )),
        Err(e) => {
            let (status, form) = refused(e, form)?;
            Ok((status, plan_page(&who, None, form)).into_response())
        }
    }
}

pub async fn update(
    State(s): State<AppState>,
    Path(id): Path<String>,
    AdminPost(who, f): AdminPost<PlanForm>,
) -> WebResult<Response> {
    let (mut plan, form) = parse(f);
    // The id is fixed once created; the form does not offer it.
    plan.id = id.clone();
    let form = form.keep("id", &id);
    if form.has_errors() {
        let page = plan_page(&who, Some(id), form);
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    }
    match s.ops.update_plan(&who.actor, &id, plan) {
        Ok(p) => Ok(redirect(
            &s,
            "/admin/plans",
            Flash::ok(format!(
                "Plan {} saved; its workspaces are being updated.",
                p.display_name
            )),
        )),
        Err(e) => {
            let (status, form) = refused(e, form)?;
            Ok((status, plan_page(&who, Some(id), form)).into_response())
        }
    }
}
