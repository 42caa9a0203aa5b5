//! The platform administrator's console pages: the node inventory, plans with their use,
//! and the audit log search.

use crate::domain::*;
use crate::ops::nodes::NodeView;
use crate::ops::{Actor, Ops, OpsResult};
use crate::store::records;

/// One row of the node inventory, with the owning workspace's names resolved.
pub struct NodeRow {
    pub view: NodeView,
    pub workspace_name: Option<String>,
    pub org_name: Option<String>,
}

/// A plan and how many workspaces are on it.
pub struct PlanUse {
    pub plan: Plan,
    pub workspaces: u64,
}

/// What the audit filter form asks for: the organization (name or id) and the actor
/// (e-mail or id) as typed; action prefix and time range already parsed into `filter`.
pub struct AuditSearch<'a> {
    pub org: &'a str,
    pub actor: &'a str,
    pub filter: crate::ops::audit::AuditFilter,
}

/// One page of audit events, with the organization they were narrowed to.
pub struct AuditPage {
    pub org: Option<Organization>,
    pub page: crate::ops::Page<crate::domain::audit::AuditEntry>,
}

impl Ops {
    /// The node inventory with each owner's workspace and organization names (platform
    /// administrators).
    pub fn console_nodes(&self, actor: &Actor) -> OpsResult<Vec<NodeRow>> {
        let nodes = self.list_nodes(actor)?;
        let r = self.store.read()?;
        let mut rows = Vec::with_capacity(nodes.len());
        for view in nodes {
            let (workspace_name, org_name) = match view.workspace_id {
                Some(ws) => match records::get_workspace(&r, ws)? {
                    Some(w) => {
                        let org = records::get_org(&r, w.org_id)?.map(|o| o.name);
                        (Some(w.name), org)
                    }
                    None => (None, None),
                },
                None => (None, None),
            };
            rows.push(NodeRow {
                view,
                workspace_name,
                org_name,
            });
        }
        Ok(rows)
    }

    /// Every plan with how many workspaces use it (platform administrators), so the list
    /// can say which plans may be deleted and which can only be retired.
    pub fn console_plans(&self, actor: &Actor) -> OpsResult<Vec<PlanUse>> {
        crate::ops::authz::require_platform_admin(actor)?;
        let plans = self.list_plans(actor)?;
        let r = self.store.read()?;
        let mut used: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
        for w in records::all_workspaces(&r)? {
            *used.entry(w.plan_id).or_default() += 1;
        }
        Ok(plans
            .into_iter()
            .map(|plan| PlanUse {
                workspaces: used.get(&plan.id).copied().unwrap_or(0),
                plan,
            })
            .collect())
    }

    /// One plan with its use (platform administrators), for its edit page.
    pub fn console_plan(&self, actor: &Actor, id: &str) -> OpsResult<PlanUse> {
        crate::ops::authz::require_platform_admin(actor)?;
        let plan = self.get_plan(actor, id)?;
        let workspaces = records::all_workspaces(&self.store.read()?)?
            .iter()
            .filter(|w| w.plan_id == plan.id)
            .count() as u64;
        Ok(PlanUse { plan, workspaces })
    }

    /// The audit log for the console's filter forms. `scope` fixes the organization (its
    /// own log, for organization admins); without it the organization is typed, by name or
    /// id. The actor is typed as an e-mail address or a user id. An unknown e-mail address
    /// matches nothing; an unknown organization is an error next to its field.
    fn console_audit_filter(
        &self,
        actor: &Actor,
        scope: Option<OrgId>,
        search: AuditSearch<'_>,
    ) -> OpsResult<(Option<Organization>, Option<crate::ops::audit::AuditFilter>)> {
        let org = match scope {
            Some(id) => Some(self.get_org(actor, id)?.org),
            None => match search.org.trim() {
                "" => None,
                typed => {
                    let r = self.store.read()?;
                    let found = match typed.parse::<OrgId>() {
                        Ok(id) => records::get_org(&r, id)?,
                        Err(_) => records::org_by_name(&r, typed)?,
                    };
                    Some(found.ok_or_else(|| {
                        crate::ops::invalid("org", format!("no organization is called {typed}"))
                    })?)
                }
            },
        };
        let mut filter = search.filter;
        filter.org = org.as_ref().map(|o| o.id);
        let who = search.actor.trim();
        if !who.is_empty() {
            let id = match who.parse::<UserId>() {
                Ok(id) => Some(id),
                Err(_) if who.contains('@') => {
                    let email = crate::domain::names::normalize_email(who)
                        .map_err(|p| crate::ops::invalid("actor", p.0))?;
                    records::user_by_email(&self.store.read()?, &email)?.map(|u| u.id)
                }
                Err(_) => {
                    return Err(crate::ops::invalid(
                        "actor",
                        "enter an e-mail address or a user id (user_…)",
                    ));
                }
            };
            match id {
                Some(id) => filter.actor = Some(id),
                None => return Ok((org, None)),
            }
        }
        Ok((org, Some(filter)))
    }

    /// One page of the log for the console's audit pages (see [`Ops::console_audit_filter`]).
    pub fn console_audit(
        &self,
        actor: &Actor,
        scope: Option<OrgId>,
        search: AuditSearch<'_>,
        before: Option<AuditId>,
        limit: usize,
    ) -> OpsResult<AuditPage> {
        let (org, filter) = self.console_audit_filter(actor, scope, search)?;
        let Some(filter) = filter else {
            return Ok(AuditPage {
                org,
                page: crate::ops::Page {
                    items: Vec::new(),
                    next_cursor: None,
                },
            });
        };
        let page = self.list_audit(actor, filter, before, limit)?;
        Ok(AuditPage { org, page })
    }

    /// The console's filtered log as a download, with the chain's hashes.
    pub fn console_audit_export(
        &self,
        actor: &Actor,
        scope: Option<OrgId>,
        search: AuditSearch<'_>,
        format: crate::ops::audit::ExportFormat,
    ) -> OpsResult<crate::ops::audit::AuditExport> {
        let (org, filter) = self.console_audit_filter(actor, scope, search)?;
        match filter {
            Some(filter) => self.export_audit(actor, filter, format),
            // An unknown actor matches nothing: an empty log of the right shape.
            None => crate::ops::audit::render_export(&[], org.map(|o| o.id), format),
        }
    }
}
