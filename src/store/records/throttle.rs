//! Login throttling's memory across restarts: failed password attempts (time-ordered, pruned
//! past the horizon and capped in number) and each account's recently known sources.

use redb::ReadableTableMetadata;

use super::*;
use crate::domain::throttle::{StoredFailure, StoredKnown};

/// Stores a failed attempt, then drops stored failures older than `horizon` and the oldest
/// beyond `cap`, so the table stays bounded whatever an attacker sends.
pub fn append_login_failure(
    tx: &WriteTransaction,
    f: &StoredFailure,
    horizon: jiff::Timestamp,
    cap: usize,
) -> Res<()> {
    let mut t = tx.open_table(LOGIN_FAILURES)?;
    let ms = f.at.as_millisecond();
    // Several failures in one millisecond get consecutive sequence numbers.
    let seq = match t.range((ms, 0)..=(ms, u64::MAX))?.next_back() {
        Some(row) => row?.0.value().1.saturating_add(1),
        None => 0,
    };
    t.insert((ms, seq), encode(f)?.as_slice())?;
    let horizon_ms = horizon.as_millisecond();
    let cap = u64::try_from(cap.max(1)).unwrap_or(u64::MAX);
    loop {
        let too_old = match t.first()? {
            Some((k, _)) => k.value().0 < horizon_ms,
            None => break,
        };
        if !too_old && t.len()? <= cap {
            break;
        }
        t.pop_first()?;
    }
    Ok(())
}

/// Every stored failure at or after `since`, oldest first.
pub fn list_login_failures(r: &impl Reader, since: jiff::Timestamp) -> Res<Vec<StoredFailure>> {
    let t = r.table(LOGIN_FAILURES)?;
    let mut out = Vec::new();
    for row in t.range((since.as_millisecond(), 0)..)? {
        let (k, v) = row?;
        let (ms, seq) = k.value();
        out.push(decode(
            v.value(),
            LOGIN_FAILURES.name(),
            &format!("{ms}/{seq}"),
        )?);
    }
    Ok(out)
}

/// Drops stored failures older than `horizon`; how many went.
pub fn prune_login_failures(tx: &WriteTransaction, horizon: jiff::Timestamp) -> Res<usize> {
    let mut t = tx.open_table(LOGIN_FAILURES)?;
    let mut n = 0;
    loop {
        let too_old = match t.first()? {
            Some((k, _)) => k.value().0 < horizon.as_millisecond(),
            None => false,
        };
        if !too_old {
            return Ok(n);
        }
        t.pop_first()?;
        n += 1;
    }
}

/// Replaces an account's known sources (none: the row goes).
pub fn put_login_known(tx: &WriteTransaction, k: &StoredKnown) -> Res<()> {
    let mut t = tx.open_table(LOGIN_KNOWN)?;
    if k.sources.is_empty() {
        t.remove(k.account.as_str())?;
    } else {
        t.insert(k.account.as_str(), encode(k)?.as_slice())?;
    }
    Ok(())
}

/// Every account's known sources.
pub fn list_login_known(r: &impl Reader) -> Res<Vec<StoredKnown>> {
    let t = r.table(LOGIN_KNOWN)?;
    let mut out = Vec::new();
    for row in t.iter()? {
        let (k, v) = row?;
        out.push(decode(v.value(), LOGIN_KNOWN.name(), &k.value())?);
    }
    Ok(out)
}
