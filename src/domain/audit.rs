//! Rules of the audit log that are not storage: how long a recorded field may be, how the
//! hash chain links one record to the one before, and how repeated failed sign-ins are
//! folded into few records.
//!
//! Invariants:
//! - Every field of a stored event is capped ([`AuditEvent::capped`]), so no input, however
//!   long, grows the log by more than a few kilobytes per record.
//! - Record `n` of the chain (numbered from 1 in the order the records were committed) has
//!   the hash `SHA-256("kaas-audit-chain-v1" ‖ n ‖ id ‖ len ‖ stored bytes ‖ hash of n-1)`,
//!   where record 0's hash is 32 zero bytes. The stored bytes are hashed as they are, never
//!   re-encoded, so a record verifies as long as nobody changed it.
//! - Failed sign-ins are recorded at the 1st, 2nd, 4th, 8th… failure per (account, address)
//!   and hour ([`FailureTally`]); failures for addresses that are no account share one key
//!   per address, so an unauthenticated client adds at most ~log2(n) records an hour.

use std::collections::HashMap;

use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::{AuditEvent, AuditId};

/// The most characters kept of a name, e-mail, action, target or address in the log.
pub const MAX_FIELD_CHARS: usize = 256;
/// The most characters kept of an event's detail.
pub const MAX_DETAIL_CHARS: usize = 1024;
/// What replaces the cut-off end of a capped field.
pub const TRUNCATED: &str = "…[truncated]";

/// `s` cut to at most `max` characters; a cut field ends with [`TRUNCATED`] (counted in
/// `max`), so a reader knows there was more.
pub fn cap(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let keep = max.saturating_sub(TRUNCATED.chars().count());
    let mut out: String = s.chars().take(keep).collect();
    out.push_str(TRUNCATED);
    out
}

impl AuditEvent {
    /// The event with every free-text field capped: what the store writes.
    pub fn capped(&self) -> AuditEvent {
        AuditEvent {
            actor_label: cap(&self.actor_label, MAX_FIELD_CHARS),
            action: cap(&self.action, MAX_FIELD_CHARS),
            target: cap(&self.target, MAX_FIELD_CHARS),
            source: cap(&self.source, MAX_FIELD_CHARS),
            detail: cap(&self.detail, MAX_DETAIL_CHARS),
            ..self.clone()
        }
    }
}

/// A SHA-256 hash in the chain.
pub type ChainHash = [u8; 32];

/// The hash before the first record.
pub const GENESIS: ChainHash = [0; 32];

/// The chain hash of record number `seq` (from 1) with id `id` and stored bytes `value`,
/// following the record whose hash is `prev`.
pub fn chain_hash(seq: u64, id: AuditId, value: &[u8], prev: &ChainHash) -> ChainHash {
    let mut h = Sha256::new();
    h.update(b"kaas-audit-chain-v1");
    h.update(seq.to_be_bytes());
    h.update(id.0.to_be_bytes());
    h.update((value.len() as u64).to_be_bytes());
    h.update(value);
    h.update(prev);
    h.finalize().into()
}

/// Where a record stands in the chain: its number, the previous record's hash and its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainLink {
    pub seq: u64,
    pub prev: ChainHash,
    pub hash: ChainHash,
}

/// An audit event with its place in the chain, as the API and the export show it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AuditEntry {
    #[serde(flatten)]
    pub event: AuditEvent,
    /// The record's number in the chain (1 is the oldest); 0 if it is not in the chain.
    pub seq: u64,
    /// SHA-256 of the record before (hex; zeros for the first).
    pub prev_hash: String,
    /// SHA-256 chaining this record to the one before (hex).
    pub hash: String,
}

impl AuditEntry {
    pub fn new(event: AuditEvent, link: Option<ChainLink>) -> AuditEntry {
        AuditEntry {
            event,
            seq: link.map_or(0, |l| l.seq),
            prev_hash: link.map(|l| hex::encode(l.prev)).unwrap_or_default(),
            hash: link.map(|l| hex::encode(l.hash)).unwrap_or_default(),
        }
    }
}

/// The first place the chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ChainBreak {
    /// The number of the first record that does not verify.
    pub seq: u64,
    /// Its id, when it is known.
    pub id: Option<AuditId>,
    /// What is wrong, in words.
    pub reason: String,
}

/// The result of walking the whole chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ChainReport {
    /// True when every record verifies and none is missing or added.
    pub intact: bool,
    /// How many records the chain holds.
    pub records: u64,
    /// The first break, when not intact.
    pub broken: Option<ChainBreak>,
}

impl ChainReport {
    /// One line for the command line and the console.
    pub fn describe(&self) -> String {
        match &self.broken {
            None => format!("intact ({} records)", self.records),
            Some(b) => match b.id {
                Some(id) => format!("broken at record #{} ({id}): {}", b.seq, b.reason),
                None => format!("broken at record #{}: {}", b.seq, b.reason),
            },
        }
    }
}

/// How long failed sign-ins are counted together.
pub const FAILURE_WINDOW_SECS: i64 = 3600;
/// Keys remembered at most; beyond it the tally forgets past hours, then starts over.
const MAX_TALLY_KEYS: usize = 10_000;

/// Counts failed sign-ins per (account, address) and hour, to decide which failures get
/// an audit record. In memory: a restart only costs a few extra records.
#[derive(Debug, Default)]
pub struct FailureTally {
    counts: HashMap<(String, String), (i64, u64)>,
}

impl FailureTally {
    /// Counts one failure at `now_secs` (Unix seconds) and returns the count in this hour
    /// when it deserves a record (1, 2, 4, 8, …), else `None`.
    pub fn record(&mut self, account: &str, address: &str, now_secs: i64) -> Option<u64> {
        let window = now_secs.div_euclid(FAILURE_WINDOW_SECS);
        let key = (account.to_string(), address.to_string());
        if !self.counts.contains_key(&key) && self.counts.len() >= MAX_TALLY_KEYS {
            self.counts.retain(|_, (w, _)| *w == window);
            if self.counts.len() >= MAX_TALLY_KEYS {
                self.counts.clear();
            }
        }
        let entry = self.counts.entry(key).or_insert((window, 0));
        if entry.0 != window {
            *entry = (window, 0);
        }
        entry.1 += 1;
        Some(entry.1).filter(|n| n.is_power_of_two())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_fields_are_capped_with_a_marker() {
        assert_eq!(cap("short", 10), "short");
        let long = "é".repeat(1000);
        let c = cap(&long, MAX_FIELD_CHARS);
        assert_eq!(c.chars().count(), MAX_FIELD_CHARS);
        assert!(c.ends_with(TRUNCATED));
    }

    #[test]
    fn a_changed_byte_or_order_changes_the_hash() {
        let id = AuditId(7);
        let a = chain_hash(1, id, b"abc", &GENESIS);
        assert_ne!(a, chain_hash(1, id, b"abd", &GENESIS));
        assert_ne!(a, chain_hash(2, id, b"abc", &GENESIS));
        assert_ne!(a, chain_hash(1, AuditId(8), b"abc", &GENESIS));
        assert_ne!(a, chain_hash(1, id, b"abc", &a));
        assert_eq!(a, chain_hash(1, id, b"abc", &GENESIS));
    }

    #[test]
    fn failures_are_recorded_at_powers_of_two_per_hour() {
        let mut t = FailureTally::default();
        let recorded: Vec<u64> = (0..100)
            .filter_map(|i| t.record("a@x.io", "10.0.0.1", 7200 + i))
            .collect();
        assert_eq!(recorded, [1, 2, 4, 8, 16, 32, 64]);
        // Another address, and the next hour, start again.
        assert_eq!(t.record("a@x.io", "10.0.0.2", 7300), Some(1));
        assert_eq!(t.record("a@x.io", "10.0.0.1", 10_800), Some(1));
    }
}
