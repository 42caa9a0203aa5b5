//! Typed reads and writes of every record, over the tables in `tables`. Write helpers keep
//! each record and its indexes in step inside the caller's transaction; uniqueness clashes
//! come back as [`StoreError::Conflict`]. Listings return at most `limit` rows after an
//! exclusive cursor, in key order.

use redb::{ReadableTable, TableDefinition, TableHandle, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::codec::{decode, encode};
use super::kept::decode_kept;
use super::shown::{ShownList, ShownMemo};
use super::tables::*;
use super::{Reader, StoreError};
use crate::domain::*;

type Res<T> = Result<T, StoreError>;

mod audit;
mod members;
mod mfa;
mod nodes;
mod people;
mod plans;
mod signing_keys;
mod sso_providers;
mod tenancy;
mod throttle;

pub use audit::*;
pub use members::*;
pub use mfa::*;
pub use nodes::*;
pub use people::*;
pub use plans::*;
pub use signing_keys::*;
pub use sso_providers::*;
pub use tenancy::*;
pub use throttle::*;

// ---- generic helpers -------------------------------------------------------------------

/// A record every request may read: decoded once per stored version (see
/// [`crate::store::kept`]).
pub(crate) trait Record: DeserializeOwned + Clone + Send + Sync + 'static {}
impl<T: DeserializeOwned + Clone + Send + Sync + 'static> Record for T {}

fn get_by_id<T: Record>(
    r: &impl Reader,
    def: TableDefinition<u128, &[u8]>,
    id: u128,
) -> Res<Option<T>> {
    let t = r.table(def)?;
    match t.get(id)? {
        Some(v) => Ok(Some(decode_kept(v.value(), def.name(), (id, 0), &id)?)),
        None => Ok(None),
    }
}

fn put_by_id<T: Serialize>(
    tx: &WriteTransaction,
    def: TableDefinition<u128, &[u8]>,
    id: u128,
    v: &T,
) -> Res<()> {
    tx.open_table(def)?.insert(id, encode(v)?.as_slice())?;
    Ok(())
}

fn del_by_id(tx: &WriteTransaction, def: TableDefinition<u128, &[u8]>, id: u128) -> Res<()> {
    tx.open_table(def)?.remove(id)?;
    Ok(())
}

fn get_pair<T: Record>(
    r: &impl Reader,
    def: TableDefinition<(u128, u128), &[u8]>,
    a: u128,
    b: u128,
) -> Res<Option<T>> {
    let t = r.table(def)?;
    match t.get((a, b))? {
        Some(v) => Ok(Some(decode_kept(
            v.value(),
            def.name(),
            (a, b),
            &PairKey(a, b),
        )?)),
        None => Ok(None),
    }
}

/// A pair key as error messages show it, formatted only when one is.
struct PairKey(u128, u128);

impl std::fmt::Display for PairKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.0, self.1)
    }
}

/// Records under `(a, *)`, after `(a, after)` when given.
fn list_pair<T: DeserializeOwned>(
    r: &impl Reader,
    def: TableDefinition<(u128, u128), &[u8]>,
    a: u128,
    after: Option<u128>,
    limit: usize,
) -> Res<Vec<T>> {
    let t = r.table(def)?;
    let mut out = Vec::new();
    let start = match after {
        Some(b) if b == u128::MAX => return Ok(out),
        Some(b) => b + 1,
        None => 0,
    };
    for row in t.range((a, start)..=(a, u128::MAX))? {
        if out.len() >= limit {
            break;
        }
        let (k, v) = row?;
        let (ka, kb) = k.value();
        out.push(decode(v.value(), def.name(), &format!("{ka}/{kb}"))?);
    }
    Ok(out)
}

/// Second halves of the keys `(a, *)` of an index table.
fn index_seconds<V: redb::Value + 'static>(
    r: &impl Reader,
    def: TableDefinition<(u128, u128), V>,
    a: u128,
) -> Res<Vec<u128>> {
    let t = r.table(def)?;
    let mut out = Vec::new();
    for row in t.range((a, 0)..=(a, u128::MAX))? {
        out.push(row?.0.value().1);
    }
    Ok(out)
}

fn count_prefix<V: redb::Value + 'static>(
    r: &impl Reader,
    def: TableDefinition<(u128, u128), V>,
    a: u128,
) -> Res<u64> {
    let t = r.table(def)?;
    let mut n = 0;
    for row in t.range((a, 0)..=(a, u128::MAX))? {
        row?;
        n += 1;
    }
    Ok(n)
}

/// Ids from a `(a, name) → id` index, by name, after `after` (exclusive).
fn list_named(
    r: &impl Reader,
    def: TableDefinition<(u128, &str), u128>,
    a: u128,
    after: Option<&str>,
    limit: usize,
) -> Res<Vec<u128>> {
    list_named_as(r, def, a, after, limit, |_, id| Some(id))
}

/// Like [`list_named`], each row made by `row` from its name and id.
fn list_named_as<R>(
    r: &impl Reader,
    def: TableDefinition<(u128, &str), u128>,
    a: u128,
    after: Option<&str>,
    limit: usize,
    mut row: impl FnMut(&str, u128) -> Option<R>,
) -> Res<Vec<R>> {
    let t = r.table(def)?;
    let mut out = Vec::new();
    let rows = match after {
        Some(name) => t.range((a, name)..)?,
        None => t.range((a, "")..)?,
    };
    for entry in rows {
        let (k, v) = entry?;
        let (ka, name) = k.value();
        if ka != a || out.len() >= limit {
            break;
        }
        if after == Some(name) {
            continue;
        }
        // A row the caller skips costs no allocation and does not count to the limit.
        if let Some(r) = row(name, v.value()) {
            out.push(r);
        }
    }
    Ok(out)
}

/// The records of `ids` as the API shows them, through the store's memo.
fn show_all<T: Serialize + DeserializeOwned>(
    r: &impl Reader,
    memo: &ShownMemo,
    def: TableDefinition<u128, &[u8]>,
    ids: &[u128],
) -> Res<ShownList<T>> {
    let t = r.table(def)?;
    let mut guards = Vec::with_capacity(ids.len());
    for &id in ids {
        guards.push((id, t.get(id)?.ok_or_else(|| missing_record(def, id))?));
    }
    let rows: Vec<(u128, &[u8])> = guards.iter().map(|(id, g)| (*id, g.value())).collect();
    memo.show(def.name(), &rows)
}

/// An index entry without its record is corruption, not "not found".
fn missing_record(def: TableDefinition<u128, &[u8]>, id: u128) -> StoreError {
    StoreError::Corrupt {
        table: def.name().to_string(),
        key: id.to_string(),
        why: "an index points at a missing record".into(),
    }
}

fn load_all<T: DeserializeOwned>(
    r: &impl Reader,
    def: TableDefinition<u128, &[u8]>,
    ids: Vec<u128>,
) -> Res<Vec<T>> {
    // One table open for the whole list: opening a table walks the table tree and
    // allocates, which was a visible part of a list request's cost.
    let t = r.table(def)?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let v = t.get(id)?.ok_or_else(|| missing_record(def, id))?;
        out.push(decode(v.value(), def.name(), &id)?);
    }
    Ok(out)
}

// ---- meta ---------------------------------------------------------------------------------

pub fn get_meta(r: &impl Reader, key: &str) -> Res<Option<Vec<u8>>> {
    Ok(r.table(META)?.get(key)?.map(|v| v.value().to_vec()))
}

pub fn put_meta(tx: &WriteTransaction, key: &str, value: &[u8]) -> Res<()> {
    tx.open_table(META)?.insert(key, value)?;
    Ok(())
}

pub fn delete_meta(tx: &WriteTransaction, key: &str) -> Res<()> {
    tx.open_table(META)?.remove(key)?;
    Ok(())
}
