//! The audit log: reading it (platform administrators see everything; organization admins
//! and owners see their organization's events, the `org` filter is then required), its
//! export with each record's place in the hash chain, verifying the chain (platform
//! administrators), and folding repeated failed sign-ins into few records.

use super::authz::{org_for, require_platform_admin};
use super::{Actor, Ops, OpsError, OpsResult, Page, invalid, page};
use crate::domain::audit::{AuditEntry, ChainReport};
use crate::domain::policy::Action;
use crate::domain::*;
/// What an audit search asks for (the store reads it as it is).
pub use crate::store::records::AuditFilter;
use crate::store::{StoreError, records};

/// The most events one export holds; a wider one is refused with a hint to narrow it.
pub const MAX_EXPORT_EVENTS: usize = 100_000;

/// How an export is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Json,
    Csv,
}

/// An export ready to download.
#[derive(Debug, Clone)]
pub struct AuditExport {
    pub body: String,
    pub content_type: &'static str,
    pub filename: String,
}

/// The columns of the CSV export, in order.
const CSV_HEADER: [&str; 13] = [
    "seq",
    "id",
    "time",
    "actor",
    "actor_label",
    "action",
    "target",
    "org_id",
    "outcome",
    "source",
    "detail",
    "prev_hash",
    "hash",
];

fn csv(entries: &[AuditEntry]) -> String {
    let mut out = String::new();
    super::billing::push_csv_row(&mut out, &CSV_HEADER);
    for e in entries {
        let ev = &e.event;
        let outcome = match ev.outcome {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
        };
        let row = [
            e.seq.to_string(),
            ev.id.to_string(),
            ev.time.to_string(),
            ev.actor.map(|a| a.to_string()).unwrap_or_default(),
            ev.actor_label.clone(),
            ev.action.clone(),
            ev.target.clone(),
            ev.org_id.map(|o| o.to_string()).unwrap_or_default(),
            outcome.to_string(),
            ev.source.clone(),
            ev.detail.clone(),
            e.prev_hash.clone(),
            e.hash.clone(),
        ];
        let refs: Vec<&str> = row.iter().map(String::as_str).collect();
        super::billing::push_csv_row(&mut out, &refs);
    }
    out
}

/// The export file for `rows`.
pub fn render_export(
    rows: &[AuditEntry],
    org: Option<OrgId>,
    format: ExportFormat,
) -> OpsResult<AuditExport> {
    let stem = match org {
        Some(org) => format!("audit-{org}"),
        None => "audit".to_string(),
    };
    Ok(match format {
        ExportFormat::Json => AuditExport {
            body: serde_json::to_string(rows)
                .map_err(|e| StoreError::Internal(format!("encoding the export: {e}")))?,
            content_type: "application/json",
            filename: format!("{stem}.json"),
        },
        ExportFormat::Csv => AuditExport {
            body: csv(rows),
            content_type: "text/csv; charset=utf-8",
            filename: format!("{stem}.csv"),
        },
    })
}

impl Ops {
    /// Checks the caller may read what `filter` asks for.
    fn audit_read(&self, actor: &Actor, filter: &AuditFilter) -> OpsResult<()> {
        if !actor.platform_admin {
            let org = filter.org.ok_or_else(|| {
                OpsError::Forbidden(
                    "only platform administrators may read the whole log; filter by org".into(),
                )
            })?;
            org_for(&self.store.read()?, actor, org, Action::OrgAuditRead)?;
        }
        Ok(())
    }

    fn audit_entries(
        &self,
        filter: &AuditFilter,
        before: Option<AuditId>,
        limit: usize,
    ) -> OpsResult<Vec<AuditEntry>> {
        let r = self.store.read()?;
        let rows = records::list_audit(&r, filter, before, limit)?;
        let links = records::audit_links(&r, &rows)?;
        Ok(rows
            .into_iter()
            .zip(links)
            .map(|(ev, link)| AuditEntry::new(ev, link))
            .collect())
    }

    /// A page of the log, newest first, each event with its place in the chain.
    pub fn list_audit(
        &self,
        actor: &Actor,
        filter: AuditFilter,
        before: Option<AuditId>,
        limit: usize,
    ) -> OpsResult<Page<AuditEntry>> {
        self.audit_read(actor, &filter)?;
        let rows = self.audit_entries(&filter, before, limit + 1)?;
        Ok(page(rows, limit, |e: &AuditEntry| e.event.id.to_string()))
    }

    /// Every event the filter matches (newest first), with the chain's hashes, as JSON or
    /// CSV. The same readers as [`Ops::list_audit`].
    pub fn export_audit(
        &self,
        actor: &Actor,
        filter: AuditFilter,
        format: ExportFormat,
    ) -> OpsResult<AuditExport> {
        self.audit_read(actor, &filter)?;
        let rows = self.audit_entries(&filter, None, MAX_EXPORT_EVENTS + 1)?;
        if rows.len() > MAX_EXPORT_EVENTS {
            return Err(invalid(
                "since",
                format!("more than {MAX_EXPORT_EVENTS} events match; export a shorter time range"),
            ));
        }
        render_export(&rows, filter.org, format)
    }

    /// Walks the whole hash chain (platform administrators): intact, or where it breaks.
    pub fn verify_audit(&self, actor: &Actor) -> OpsResult<ChainReport> {
        require_platform_admin(actor)?;
        Ok(records::verify_audit_chain(&self.store.read()?)?)
    }

    /// Records a failed sign-in, folded: the 1st, 2nd, 4th, 8th… failure for the same
    /// account (or, for addresses that are no account, any unknown account) from the same
    /// address within the hour gets a record saying how many there were; the others are
    /// only counted. So an unauthenticated client cannot grow the log by more than a few
    /// capped records an hour.
    pub(crate) fn audit_login_failure(&self, ev: AuditEvent, reason: String) {
        let key = if ev.actor.is_some() {
            ev.target.as_str()
        } else {
            ""
        };
        let count = self
            .login_failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .record(key, &ev.source, ev.time.as_second());
        let Some(count) = count else {
            return;
        };
        let detail = match (count, ev.actor) {
            (1, _) => reason,
            (n, Some(_)) => format!("{reason}; {n} failed attempts from this address this hour"),
            (n, None) => format!(
                "{reason}; {n} failed attempts for unknown accounts from this address this hour \
                 (the latest shown)"
            ),
        };
        self.audit_failure(ev, Outcome::Failure, detail);
    }
}
