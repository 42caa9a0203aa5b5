//! The append-only audit log and its filtered listing.

use super::*;

// ---- audit ------------------------------------------------------------------------------

pub fn append_audit(tx: &WriteTransaction, ev: &AuditEvent) -> Res<()> {
    put_by_id(tx, AUDIT, ev.id.0, ev)?;
    if let Some(org) = ev.org_id {
        tx.open_table(AUDIT_BY_ORG)?.insert((org.0, ev.id.0), ())?;
    }
    Ok(())
}

/// Which audit events to list; all filters combine with AND.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub org: Option<OrgId>,
    pub actor: Option<UserId>,
    pub action_prefix: Option<String>,
    pub since: Option<jiff::Timestamp>,
    pub until: Option<jiff::Timestamp>,
}

impl AuditFilter {
    fn matches(&self, ev: &AuditEvent) -> bool {
        self.actor.is_none_or(|a| ev.actor == Some(a))
            && self
                .action_prefix
                .as_deref()
                .is_none_or(|p| ev.action.starts_with(p))
            && self.since.is_none_or(|s| ev.time >= s)
            && self.until.is_none_or(|u| ev.time < u)
            && self.org.is_none_or(|o| ev.org_id == Some(o))
    }
}

/// Newest first, strictly before the cursor event id when given.
pub fn list_audit(
    r: &impl Reader,
    filter: &AuditFilter,
    before: Option<AuditId>,
    limit: usize,
) -> Res<Vec<AuditEvent>> {
    let upper = before.map_or(u128::MAX, |b| b.0.saturating_sub(1));
    // ULIDs start with the millisecond time, so a time window is also an id window.
    let lower = filter
        .since
        .map_or(0, |s| (s.as_millisecond().max(0) as u128) << 80);
    let mut out = Vec::new();
    if lower > upper {
        return Ok(out);
    }
    if let Some(org) = filter.org {
        // Walk the index and the events together and stop at `limit`: a page of an old
        // organization's log costs the page, not the whole history.
        let idx = r.table(AUDIT_BY_ORG)?;
        let events = r.table(AUDIT)?;
        for row in idx.range((org.0, lower)..=(org.0, upper))?.rev() {
            if out.len() >= limit {
                break;
            }
            let id = row?.0.value().1;
            if let Some(v) = events.get(id)? {
                let ev: AuditEvent = decode(v.value(), AUDIT.name(), &id)?;
                if filter.matches(&ev) {
                    out.push(ev);
                }
            }
        }
        return Ok(out);
    }
    let t = r.table(AUDIT)?;
    for row in t.range(lower..=upper)?.rev() {
        if out.len() >= limit {
            break;
        }
        let (k, v) = row?;
        let ev: AuditEvent = decode(v.value(), AUDIT.name(), &k.value())?;
        if filter.matches(&ev) {
            out.push(ev);
        }
    }
    Ok(out)
}
