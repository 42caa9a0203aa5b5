//! The append-only audit log and its filtered listing.

use super::*;
use crate::domain::audit::{ChainBreak, ChainHash, ChainLink, ChainReport, GENESIS, chain_hash};

// ---- audit ------------------------------------------------------------------------------

/// Appends `ev` (its fields capped) and links it into the hash chain, in the caller's
/// transaction: redb has one writer at a time, so the chain follows commit order and cannot
/// fork.
pub fn append_audit(tx: &WriteTransaction, ev: &AuditEvent) -> Res<()> {
    let ev = ev.capped();
    let bytes = encode(&ev)?;
    tx.open_table(AUDIT)?.insert(ev.id.0, bytes.as_slice())?;
    if let Some(org) = ev.org_id {
        tx.open_table(AUDIT_BY_ORG)?.insert((org.0, ev.id.0), ())?;
    }
    chain_append(tx, ev.id, &bytes)
}

const CHAIN_HEAD_KEY: &str = "audit_chain_head";

/// The last record's number and hash (0 and zeros for an empty chain), kept in `meta` so
/// records cut off the end of the log are noticed too.
fn chain_head(r: &impl Reader) -> Res<Option<(u64, ChainHash)>> {
    let meta = r.table(META)?;
    let Some(raw) = meta.get(CHAIN_HEAD_KEY)? else {
        return Ok(None);
    };
    let raw = raw.value();
    let corrupt = || StoreError::Corrupt {
        table: META.name().into(),
        key: CHAIN_HEAD_KEY.into(),
        why: "not 40 bytes".into(),
    };
    let (seq, hash) = raw.split_first_chunk::<8>().ok_or_else(corrupt)?;
    let hash: ChainHash = hash.try_into().map_err(|_| corrupt())?;
    Ok(Some((u64::from_be_bytes(*seq), hash)))
}

/// Links the stored bytes of event `id` after the chain's current head.
pub(crate) fn chain_append(tx: &WriteTransaction, id: AuditId, bytes: &[u8]) -> Res<()> {
    let (last, prev) = chain_head(tx)?.unwrap_or((0, GENESIS));
    let seq = last + 1;
    let hash = chain_hash(seq, id, bytes, &prev);
    tx.open_table(AUDIT_CHAIN)?.insert(seq, id.0)?;
    tx.open_table(AUDIT_LINKS)?
        .insert(id.0, (seq, prev, hash))?;
    let mut head = Vec::with_capacity(40);
    head.extend_from_slice(&seq.to_be_bytes());
    head.extend_from_slice(&hash);
    tx.open_table(META)?
        .insert(CHAIN_HEAD_KEY, head.as_slice())?;
    Ok(())
}

/// Each event's place in the chain (`None` for one that is not in it).
pub fn audit_links(r: &impl Reader, events: &[AuditEvent]) -> Res<Vec<Option<ChainLink>>> {
    let t = r.table(AUDIT_LINKS)?;
    let mut out = Vec::with_capacity(events.len());
    for ev in events {
        out.push(t.get(ev.id.0)?.map(|v| {
            let (seq, prev, hash) = v.value();
            ChainLink { seq, prev, hash }
        }));
    }
    Ok(out)
}

/// Walks the whole chain in order and reports the first record that does not verify: one
/// changed, deleted, inserted or cut off the end.
pub fn verify_audit_chain(r: &impl Reader) -> Res<ChainReport> {
    use redb::ReadableTableMetadata;
    let chain = r.table(AUDIT_CHAIN)?;
    let links = r.table(AUDIT_LINKS)?;
    let events = r.table(AUDIT)?;
    let broken = |seq: u64, id: Option<u128>, reason: String| ChainReport {
        intact: false,
        records: seq.saturating_sub(1),
        broken: Some(ChainBreak {
            seq,
            id: id.map(AuditId),
            reason,
        }),
    };
    let mut prev = GENESIS;
    let mut expected = 1u64;
    for row in chain.iter()? {
        let (k, v) = row?;
        let (seq, id) = (k.value(), v.value());
        if seq != expected {
            return Ok(broken(
                expected,
                None,
                "the record is missing from the chain (deleted)".into(),
            ));
        }
        let Some(value) = events.get(id)? else {
            return Ok(broken(seq, Some(id), "the record was deleted".into()));
        };
        let Some(link) = links.get(id)?.map(|l| l.value()) else {
            return Ok(broken(
                seq,
                Some(id),
                "the record's chain link is missing".into(),
            ));
        };
        let (link_seq, link_prev, link_hash) = link;
        if link_seq != seq || link_prev != prev {
            return Ok(broken(
                seq,
                Some(id),
                "the record's link does not follow the record before".into(),
            ));
        }
        let hash = chain_hash(seq, AuditId(id), value.value(), &prev);
        if hash != link_hash {
            return Ok(broken(
                seq,
                Some(id),
                "the record was changed after it was written".into(),
            ));
        }
        prev = hash;
        expected += 1;
    }
    let records = expected - 1;
    let (head_seq, head_hash) = chain_head(r)?.unwrap_or((0, GENESIS));
    if head_seq != records || head_hash != prev {
        return Ok(broken(
            records + 1,
            None,
            format!(
                "the chain ends at record #{records} but {head_seq} were written \
                 (records removed from the end)"
            ),
        ));
    }
    if events.len()? != records {
        // A record that is not in the chain was added afterwards: name the first.
        for row in events.iter()? {
            let id = row?.0.value();
            if links.get(id)?.is_none() {
                return Ok(broken(
                    records + 1,
                    Some(id),
                    "the record is not in the chain (added afterwards)".into(),
                ));
            }
        }
    }
    Ok(ChainReport {
        intact: true,
        records,
        broken: None,
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn event(n: u32) -> AuditEvent {
        AuditEvent {
            id: AuditId::generate(),
            time: jiff::Timestamp::from_second(1_790_000_000 + i64::from(n)).unwrap(),
            actor: None,
            actor_label: "ada@example.com".into(),
            action: "org.create".into(),
            target: format!("org-{n}"),
            org_id: None,
            outcome: Outcome::Success,
            source: "127.0.0.1".into(),
            detail: String::new(),
        }
    }

    fn store_with(n: u32) -> (Store, Vec<AuditEvent>) {
        let s = Store::in_memory().unwrap();
        let mut evs = Vec::new();
        for i in 0..n {
            let ev = event(i);
            let tx = s.write().unwrap();
            append_audit(&tx, &ev).unwrap();
            tx.commit().unwrap();
            evs.push(ev);
        }
        (s, evs)
    }

    fn verify(s: &Store) -> ChainReport {
        verify_audit_chain(&s.read().unwrap()).unwrap()
    }

    #[test]
    fn appended_events_form_an_intact_chain_in_commit_order() {
        let (s, evs) = store_with(5);
        assert_eq!(verify(&s).describe(), "intact (5 records)");
        let links = audit_links(&s.read().unwrap(), &evs).unwrap();
        assert_eq!(links[0].unwrap().prev, GENESIS);
        for pair in links.windows(2) {
            let (a, b) = (pair[0].unwrap(), pair[1].unwrap());
            assert_eq!(b.seq, a.seq + 1);
            assert_eq!(b.prev, a.hash);
        }
        // An id older than the newest record still goes to the end of the chain.
        let mut late = event(99);
        late.id = AuditId(1);
        let tx = s.write().unwrap();
        append_audit(&tx, &late).unwrap();
        tx.commit().unwrap();
        assert_eq!(verify(&s).describe(), "intact (6 records)");
    }

    #[test]
    fn long_fields_are_stored_capped() {
        let s = Store::in_memory().unwrap();
        let mut ev = event(1);
        ev.target = "x".repeat(100_000);
        ev.detail = "y".repeat(100_000);
        let tx = s.write().unwrap();
        append_audit(&tx, &ev).unwrap();
        tx.commit().unwrap();
        let got = list_audit(&s.read().unwrap(), &AuditFilter::default(), None, 10).unwrap();
        assert_eq!(got[0].target.chars().count(), 256);
        assert_eq!(got[0].detail.chars().count(), 1024);
    }

    #[test]
    fn an_edited_record_is_named() {
        let (s, evs) = store_with(4);
        let mut edited = evs[2].clone();
        edited.detail = "nothing to see".into();
        let tx = s.write().unwrap();
        tx.open_table(AUDIT)
            .unwrap()
            .insert(edited.id.0, encode(&edited).unwrap().as_slice())
            .unwrap();
        tx.commit().unwrap();
        let r = verify(&s);
        assert!(!r.intact);
        let b = r.broken.unwrap();
        assert_eq!((b.seq, b.id), (3, Some(evs[2].id)));
        assert!(b.reason.contains("changed"), "{}", b.reason);
    }

    #[test]
    fn deleted_added_and_cut_off_records_are_noticed() {
        // Deleted from the middle, with its chain entries.
        let (s, evs) = store_with(4);
        let tx = s.write().unwrap();
        tx.open_table(AUDIT).unwrap().remove(evs[1].id.0).unwrap();
        tx.open_table(AUDIT_CHAIN).unwrap().remove(2).unwrap();
        tx.open_table(AUDIT_LINKS)
            .unwrap()
            .remove(evs[1].id.0)
            .unwrap();
        tx.commit().unwrap();
        assert_eq!(verify(&s).broken.unwrap().seq, 2);

        // Only the record deleted.
        let (s, evs) = store_with(3);
        let tx = s.write().unwrap();
        tx.open_table(AUDIT).unwrap().remove(evs[0].id.0).unwrap();
        tx.commit().unwrap();
        assert!(verify(&s).broken.unwrap().reason.contains("deleted"));

        // Cut off the end.
        let (s, evs) = store_with(3);
        let tx = s.write().unwrap();
        tx.open_table(AUDIT).unwrap().remove(evs[2].id.0).unwrap();
        tx.open_table(AUDIT_CHAIN).unwrap().remove(3).unwrap();
        tx.open_table(AUDIT_LINKS)
            .unwrap()
            .remove(evs[2].id.0)
            .unwrap();
        tx.commit().unwrap();
        let b = verify(&s).broken.unwrap();
        assert_eq!(b.seq, 3);
        assert!(b.reason.contains("removed from the end"), "{}", b.reason);

        // Added outside the chain.
        let (s, _) = store_with(2);
        let extra = event(7);
        let tx = s.write().unwrap();
        tx.open_table(AUDIT)
            .unwrap()
            .insert(extra.id.0, encode(&extra).unwrap().as_slice())
            .unwrap();
        tx.commit().unwrap();
        let b = verify(&s).broken.unwrap();
        assert_eq!(b.id, Some(extra.id));
        assert!(b.reason.contains("added"), "{}", b.reason);
    }
}
