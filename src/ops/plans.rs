//! Plans: everyone signed in may read them (to choose one); platform administrators create,
//! edit, retire and delete them. A plan in use cannot be deleted (retire it instead); an
//! edit that current workspaces' projects would not fit in is refused, and so is one their
//! virtual clusters cannot take (the K3K mode, ever; the server storage, while in use).

use super::authz::require_platform_admin;
use super::{Actor, Ops, OpsError, OpsResult, invalid};
use crate::domain::plan::{check_projects_fit_in, default_plans, plan_edit_refusal};
use crate::domain::*;
use crate::store::records;

impl Ops {
    /// Writes the default plans into an empty database.
    pub fn seed_plans(&self) -> OpsResult<usize> {
        let tx = self.store.write()?;
        if !records::list_plans(&tx)?.is_empty() {
            return Ok(0);
        }
        let mut plans = default_plans();
        for p in &mut plans {
            self.freeze_terms(&tx, p)?;
            records::put_plan(&tx, p)?;
        }
        self.commit(tx, &[])?;
        Ok(plans.len())
    }

    pub fn list_plans(&self, actor: &Actor) -> OpsResult<Vec<Plan>> {
        let r = self.store.read()?;
        Ok(records::list_plans(&r)?
            .into_iter()
            .filter(|p| actor.platform_admin || !p.retired)
            .collect())
    }

    pub fn get_plan(&self, _actor: &Actor, id: &str) -> OpsResult<Plan> {
        records::get_plan(&self.store.read()?, id)?.ok_or(OpsError::NotFound("plan"))
    }

    /// An ingress plan on a box without an ingress domain could never be served: refused
    /// when it is written rather than found at the first reconcile.
    fn check_expose_available(&self, plan: &Plan) -> OpsResult<()> {
        if plan.expose == crate::domain::Expose::Ingress && !self.settings.ingress_available {
            return Err(invalid(
                "expose",
                "ingress needs expose.ingress_domain in kaas's configuration (the host names of the workspaces' API servers are made under it); set it, or choose nodeport or loadbalancer",
            ));
        }
        Ok(())
    }

    pub fn create_plan(&self, actor: &Actor, mut plan: Plan) -> OpsResult<Plan> {
        require_platform_admin(actor)?;
        plan.validate().map_err(|p| invalid(p.field, p.message))?;
        self.check_expose_available(&plan)?;
        let tx = self.store.write()?;
        if records::get_plan(&tx, &plan.id)?.is_some() {
            return Err(OpsError::Conflict(format!(
                "a plan {:?} already exists",
                plan.id
            )));
        }
        plan.revision = 0;
        self.freeze_terms(&tx, &mut plan)?;
        records::put_plan(&tx, &plan)?;
        records::append_audit(&tx, &self.event(actor, "plan.create", &plan.id, None))?;
        self.commit(tx, &[])?;
        Ok(plan)
    }

    /// Replaces a plan; workspaces on it are re-reconciled with the new values.
    pub fn update_plan(&self, actor: &Actor, id: &str, mut plan: Plan) -> OpsResult<Plan> {
        require_platform_admin(actor)?;
        if plan.id != id {
            return Err(invalid("id", "a plan's id cannot change"));
        }
        plan.validate().map_err(|p| invalid(p.field, p.message))?;
        self.check_expose_available(&plan)?;
        let tx = self.store.write()?;
        let old = records::get_plan(&tx, id)?.ok_or(OpsError::NotFound("plan"))?;
        let on_plan: Vec<Workspace> = records::all_workspaces(&tx)?
            .into_iter()
            .filter(|w| w.plan_id == id)
            .collect();
        // 422 on the field, like the currency below: the value asked for cannot be had.
        if let Some(p) = plan_edit_refusal(&old, &plan, on_plan.len()) {
            return Err(invalid(p.field, p.message));
        }
        if !on_plan.is_empty() && old.prices.currency != plan.prices.currency {
            return Err(invalid(
                "prices.currency",
                format!(
                    "{} workspace(s) are billed in {} on this plan; a plan's currency can change only while no workspace uses it",
                    on_plan.len(),
                    old.prices.currency.code()
                ),
            ));
        }
        let mut changes = Vec::new();
        for ws in &on_plan {
            let projects = records::list_workspace_projects(&tx, ws.id, None, usize::MAX)?;
            let quotas: Vec<Quota> = projects.iter().filter_map(|p| p.quota).collect();
            check_projects_fit_in(&plan.quota, quotas).map_err(|e| {
                OpsError::Conflict(format!(
                    "the projects of workspace {} would not fit in the new quota ({e})",
                    ws.id
                ))
            })?;
            changes.push(super::Change::Workspace(ws.id));
        }
        // Usage up to now is priced with the old terms, from now on with the new ones.
        plan.revision = old.revision;
        self.freeze_terms(&tx, &mut plan)?;
        records::put_plan(&tx, &plan)?;
        for ws in &on_plan {
            self.meter_workspace(&tx, ws)?;
        }
        records::append_audit(&tx, &self.event(actor, "plan.update", id, None))?;
        self.commit(tx, &changes)?;
        Ok(plan)
    }

    pub fn delete_plan(&self, actor: &Actor, id: &str) -> OpsResult<()> {
        require_platform_admin(actor)?;
        let tx = self.store.write()?;
        records::get_plan(&tx, id)?.ok_or(OpsError::NotFound("plan"))?;
        let used = records::all_workspaces(&tx)?
            .iter()
            .filter(|w| w.plan_id == id)
            .count();
        if used > 0 {
            return Err(OpsError::Conflict(format!(
                "plan {id:?} is used by {used} workspace(s); retire it instead"
            )));
        }
        records::delete_plan(&tx, id)?;
        records::append_audit(&tx, &self.event(actor, "plan.delete", id, None))?;
        self.commit(tx, &[])
    }
}
