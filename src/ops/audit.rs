//! Reading the audit log: platform administrators see everything; organization admins and
//! owners see their organization's events (the `org` filter is then required).

use super::authz::org_for;
use super::{Actor, Ops, OpsError, OpsResult, Page, page};
use crate::domain::policy::Action;
use crate::domain::*;
use crate::store::records;
/// What an audit search asks for (the store reads it as it is).
pub use crate::store::records::AuditFilter;

impl Ops {
    pub fn list_audit(
        &self,
        actor: &Actor,
        filter: AuditFilter,
        before: Option<AuditId>,
        limit: usize,
    ) -> OpsResult<Page<AuditEvent>> {
        let r = self.store.read()?;
        if !actor.platform_admin {
            let org = filter.org.ok_or_else(|| {
                OpsError::Forbidden(
                    "only platform administrators may read the whole log; filter by org".into(),
                )
            })?;
            org_for(&r, actor, org, Action::OrgAuditRead)?;
        }
        let rows = records::list_audit(&r, &filter, before, limit + 1)?;
        Ok(page(rows, limit, |e: &AuditEvent| e.id.to_string()))
    }
}
