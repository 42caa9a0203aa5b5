//! Plans, for platform administrators: the list (retired ones included, with how many
//! workspaces use each), a form to create one, the same form to edit one, and deleting a
//! plan no workspace uses (a used one can only be retired). The form is flat (every number
//! a field, prices as decimals in the currency's major unit); the plan's own rules are
//! `Plan::validate`, applied by `ops`.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::error::WebResult;
use super::extract::{Admin, AdminPost, NoFields, SignedIn};
use super::flash::Flash;
use super::plan_form::{PlanForm, RATES, RateField, form_of, parse};
use super::view::{FormState, Layout};
use super::{redirect, refused};
use crate::domain::Plan;
use crate::domain::billing::PlanPrices;
use crate::http::Id;
use crate::ops::OpsError;
use crate::ops::console::PlanUse;
use crate::state::AppState;

#[derive(Template, WebTemplate)]
#[template(path = "admin_plans.html")]
pub struct PlansView {
    pub l: Layout,
    pub plans: Vec<PlanUse>,
}

pub async fn list(State(s): State<AppState>, Admin(who): Admin) -> WebResult<PlansView> {
    let mut plans = s.ops.console_plans(&who.actor)?;
    plans.sort_by(|a, b| {
        let key = |p: &Plan| {
            (
                p.retired,
                p.quota.cpu_millis,
                p.quota.memory_mib,
                p.id.clone(),
            )
        };
        key(&a.plan).cmp(&key(&b.plan))
    });
    Ok(PlansView {
        l: who.layout("Plans", "admin-plans"),
        plans,
    })
}

#[derive(Template, WebTemplate)]
#[template(path = "admin_plan.html")]
pub struct PlanEdit {
    pub l: Layout,
    /// `None` for a new plan.
    pub editing: Option<String>,
    /// How many workspaces use the plan being edited (it may be deleted at 0).
    pub in_use: u64,
    /// Said under the server storage field: fixed while workspaces use the plan.
    pub storage_hint: &'static str,
    pub form: FormState,
    pub rates: &'static [RateField; 4],
}

/// A plan's prices in one line for the list: `99.00 EUR/month · CPU 0.01/core-hour above 2000`.
pub fn price_line(p: &PlanPrices) -> String {
    let c = &p.currency;
    let mut parts = vec![format!(
        "{} {}/month",
        c.format(p.base_monthly_minor),
        c.code()
    )];
    for (name, unit, r) in [
        ("CPU", "core-hour", p.cpu_core_hour),
        ("memory", "GiB-hour", p.memory_gib_hour),
        ("storage", "GiB-hour", p.storage_gib_hour),
        ("node", "node-hour", p.node_hour),
    ] {
        if r.unit_price_micros > 0 {
            let above = if r.included > 0 {
                format!(" above {}", r.included)
            } else {
                String::new()
            };
            parts.push(format!(
                "{name} {}/{unit}{above}",
                c.format_unit_price(r.unit_price_micros)
            ));
        }
    }
    parts.join(" · ")
}

fn plan_page(who: &SignedIn, editing: Option<String>, in_use: u64, form: FormState) -> PlanEdit {
    let title = match &editing {
        Some(id) => format!("Plan {id}"),
        None => "New plan".to_string(),
    };
    PlanEdit {
        l: who.layout(title, "admin-plans"),
        storage_hint: if in_use > 0 {
            "Fixed while workspaces use this plan: Kubernetes cannot resize their servers' volumes."
        } else {
            ""
        },
        editing,
        in_use,
        form,
        rates: &RATES,
    }
}

/// The edit page again after a refusal, with the plan's current use.
fn edit_again(s: &AppState, who: &SignedIn, id: String, form: FormState) -> WebResult<PlanEdit> {
    let in_use = s.ops.console_plan(&who.actor, &id)?.workspaces;
    Ok(plan_page(who, Some(id), in_use, form))
}

pub async fn new_page(Admin(who): Admin) -> PlanEdit {
    let starter = crate::domain::plan::default_plans().into_iter().next();
    let mut form = starter
        .as_ref()
        .map_or_else(|| FormState::new("plan"), form_of);
    // A template to start from, not a copy: the id and name are the admin's to choose.
    form = form.keep("id", "").keep("display_name", "");
    plan_page(&who, None, 0, form)
}

pub async fn edit_page(
    State(s): State<AppState>,
    Admin(who): Admin,
    Id(id): Id<String>,
) -> WebResult<PlanEdit> {
    let u = s.ops.console_plan(&who.actor, &id)?;
    Ok(plan_page(
        &who,
        Some(u.plan.id.clone()),
        u.workspaces,
        form_of(&u.plan),
    ))
}

pub async fn create(
    State(s): State<AppState>,
    AdminPost(who, f): AdminPost<PlanForm>,
) -> WebResult<Response> {
    let (plan, form) = parse(f);
    if form.has_errors() {
        return Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            plan_page(&who, None, 0, form),
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
            Ok((status, plan_page(&who, None, 0, form)).into_response())
        }
    }
}

pub async fn update(
    State(s): State<AppState>,
    Id(id): Id<String>,
    AdminPost(who, f): AdminPost<PlanForm>,
) -> WebResult<Response> {
    let (mut plan, form) = parse(f);
    // The id is fixed once created; the form does not offer it.
    plan.id = id.clone();
    let form = form.keep("id", &id);
    if form.has_errors() {
        let page = edit_again(&s, &who, id, form)?;
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
            Ok((status, edit_again(&s, &who, id, form)?).into_response())
        }
    }
}

/// Deletes a plan that no workspace uses; a used one comes back to its page with the
/// reason (retiring is the way out for those).
pub async fn delete(
    State(s): State<AppState>,
    Id(id): Id<String>,
    AdminPost(who, _): AdminPost<NoFields>,
) -> WebResult<Response> {
    match s.ops.delete_plan(&who.actor, &id) {
        Ok(()) => Ok(redirect(
            &s,
            "/admin/plans",
            Flash::ok(format!("Plan {id} was deleted.")),
        )),
        Err(OpsError::Conflict(m)) => Ok(redirect(
            &s,
            // NB: only an existing plan is in use, and plan ids are DNS labels.
            &format!("/admin/plans/{id}"),
            Flash::error(super::error::capitalise(&m)),
        )),
        Err(e) => Err(e.into()),
    }
}
