//! Records decoded once and kept beside the stored bytes they came from, so that the records
//! every request reads (its API token, its user, the workspace and the memberships it is
//! authorized by) are copied rather than parsed again from JSON each time.
//!
//! A kept record is used only when the bytes just read are exactly the bytes it was decoded
//! from (and for the same table, key and type), so it can never be stale: a changed record
//! is decoded afresh. Being keyed by content, it is correct for any database, which is why
//! one process-wide memo serves every store. It is bounded; when full it starts over.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{Arc, LazyLock, Mutex};

use serde::de::DeserializeOwned;

use super::StoreError;
use super::codec::decode;

/// How many records are kept before the memo starts over (each ~0.5 KiB: stored bytes and
/// the decoded value, so at most a few MiB).
const CAPACITY: usize = 4096;

struct Entry {
    type_id: TypeId,
    table: Box<str>,
    key: (u128, u128),
    raw: Box<[u8]>,
    value: Arc<dyn Any + Send + Sync>,
}

struct Memo {
    hasher: RandomState,
    entries: HashMap<u64, Entry>,
}

static MEMO: LazyLock<Mutex<Memo>> = LazyLock::new(|| {
    Mutex::new(Memo {
        hasher: RandomState::new(),
        entries: HashMap::new(),
    })
});

/// `raw` (the stored bytes of the record at `key` in `table`) decoded as a `T`: a copy of
/// the kept value when these bytes were decoded before, else decoded (and kept).
pub fn decode_kept<T>(
    raw: &[u8],
    table: &str,
    key: (u128, u128),
    shown_key: &dyn std::fmt::Display,
) -> Result<T, StoreError>
where
    T: DeserializeOwned + Clone + Send + Sync + 'static,
{
    let type_id = TypeId::of::<T>();
    let slot = {
        let memo = lock();
        let mut h = memo.hasher.build_hasher();
        type_id.hash(&mut h);
        table.hash(&mut h);
        key.hash(&mut h);
        let slot = h.finish();
        if let Some(e) = memo.entries.get(&slot)
            && e.type_id == type_id
            && e.key == key
            && *e.table == *table
            && *e.raw == *raw
            && let Some(value) = e.value.downcast_ref::<T>()
        {
            return Ok(value.clone());
        }
        slot
    };
    // Decoded outside the lock: other requests need not wait on it.
    let value: T = decode(raw, table, shown_key)?;
    let mut memo = lock();
    if memo.entries.len() >= CAPACITY {
        memo.entries.clear();
    }
    memo.entries.insert(
        slot,
        Entry {
            type_id,
            table: table.into(),
            key,
            raw: raw.into(),
            value: Arc::new(value.clone()),
        },
    );
    Ok(value)
}

fn lock() -> std::sync::MutexGuard<'static, Memo> {
    MEMO.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::codec::encode;

    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Rec {
        name: String,
        #[serde(default)]
        size: u32,
    }

    #[derive(Debug, Clone, PartialEq, serde::Deserialize)]
    struct Other {
        name: String,
    }

    #[test]
    fn a_kept_record_is_used_only_for_the_same_bytes_table_key_and_type() {
        let table = "kept-test-recs";
        let a = encode(&Rec {
            name: "a".into(),
            size: 1,
        })
        .unwrap();
        let first: Rec = decode_kept(&a, table, (1, 0), &1).unwrap();
        let again: Rec = decode_kept(&a, table, (1, 0), &1).unwrap();
        assert_eq!(first, again);
        // The record changed: decoded afresh, not the kept value.
        let b = encode(&Rec {
            name: "a".into(),
            size: 2,
        })
        .unwrap();
        let changed: Rec = decode_kept(&b, table, (1, 0), &1).unwrap();
        assert_eq!(changed.size, 2);
        // The same bytes read as another type are that type.
        let other: Other = decode_kept(&b, table, (1, 0), &1).unwrap();
        assert_eq!(other.name, "a");
        let back: Rec = decode_kept(&b, table, (1, 0), &1).unwrap();
        assert_eq!(back.size, 2);
        // Damaged bytes are refused, whatever was kept before.
        assert!(matches!(
            decode_kept::<Rec>(&[1, b'{'], table, (1, 0), &1),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
