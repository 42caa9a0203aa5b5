//! Records as the API shows them, remembered by their stored bytes: a list request that
//! shows records which have not changed since the last request copies their JSON instead
//! of decoding and encoding each one again (a 50-item list spent most of its time there).
//!
//! The memo is keyed by the exact bytes in the table (and the table), so it can never show a
//! stale record: a changed record has different bytes and is decoded afresh. It is bounded;
//! when full it starts over, which costs one decode per record and nothing else.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

use super::StoreError;
use super::codec::decode;

/// How many records the memo holds before it starts over (about 0.5 KiB each for the
/// stored bytes and the JSON together, so at most a few MiB).
const CAPACITY: usize = 4096;

/// A record already encoded as the API shows it; serializes as its JSON, unchanged.
pub struct Shown<T> {
    json: Arc<RawValue>,
    of: PhantomData<fn() -> T>,
}

impl<T> Clone for Shown<T> {
    fn clone(&self) -> Self {
        Self {
            json: self.json.clone(),
            of: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Shown<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.json.get())
    }
}

impl<T> Serialize for Shown<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.json.serialize(s)
    }
}

impl<T> Shown<T> {
    /// The JSON text.
    pub fn json(&self) -> &str {
        self.json.get()
    }
}

/// A remembered record: its table, its stored bytes and its JSON.
struct Entry {
    table: Box<str>,
    raw: Box<[u8]>,
    json: Arc<RawValue>,
}

/// Stored bytes → the record's JSON as the current types show it, by a hash of the bytes
/// (so a lookup copies nothing); a hit is confirmed by comparing the bytes themselves.
#[derive(Default)]
pub struct ShownMemo {
    entries: Mutex<HashMap<u64, Entry>>,
}

fn hash_of(table: &str, raw: &[u8]) -> u64 {
    use std::hash::{BuildHasher, Hash, Hasher};
    static KEYS: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    let mut h = KEYS.get_or_init(Default::default).build_hasher();
    table.hash(&mut h);
    raw.hash(&mut h);
    h.finish()
}

impl ShownMemo {
    /// `raw` (a record's stored bytes in `table`) shown as the API shows a `T`.
    pub fn show<T: Serialize + DeserializeOwned>(
        &self,
        raw: &[u8],
        table: &str,
        key: &dyn std::fmt::Display,
    ) -> Result<Shown<T>, StoreError> {
        let hash = hash_of(table, raw);
        if let Some(e) = self.lock().get(&hash)
            && *e.table == *table
            && *e.raw == *raw
        {
            return Ok(Shown {
                json: e.json.clone(),
                of: PhantomData,
            });
        }
        // Decoded and encoded outside the lock: other requests need not wait on it.
        let value: T = decode(raw, table, key)?;
        let json: Arc<RawValue> = serde_json::value::to_raw_value(&value)
            .map_err(|e| StoreError::Internal(format!("showing a record of {table}: {e}")))?
            .into();
        let mut entries = self.lock();
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(
            hash,
            Entry {
                table: table.into(),
                raw: raw.into(),
                json: json.clone(),
            },
        );
        Ok(Shown {
            json,
            of: PhantomData,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::codec::encode;

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    struct Rec {
        name: String,
        #[serde(default)]
        size: u32,
    }

    #[test]
    fn a_changed_record_is_shown_changed_and_an_old_one_as_todays_types_show_it() {
        let memo = ShownMemo::default();
        let a = encode(&Rec {
            name: "a".into(),
            size: 1,
        })
        .unwrap();
        let shown: Shown<Rec> = memo.show(&a, "recs", &1).unwrap();
        assert_eq!(shown.json(), r#"{"name":"a","size":1}"#);
        let b = encode(&Rec {
            name: "a".into(),
            size: 2,
        })
        .unwrap();
        let shown: Shown<Rec> = memo.show(&b, "recs", &1).unwrap();
        assert_eq!(shown.json(), r#"{"name":"a","size":2}"#);
        // Written before `size` existed: shown with today's default, not as stored.
        let old = [&[1u8][..], br#"{"name":"old"}"#].concat();
        let shown: Shown<Rec> = memo.show(&old, "recs", &2).unwrap();
        assert_eq!(shown.json(), r#"{"name":"old","size":0}"#);
        // Served from the memo the second time, the same.
        let again: Shown<Rec> = memo.show(&b, "recs", &1).unwrap();
        assert_eq!(again.json(), r#"{"name":"a","size":2}"#);
        let page = serde_json::to_string(&vec![again, shown]).unwrap();
        assert_eq!(page, r#"[{"name":"a","size":2},{"name":"old","size":0}]"#);
    }

    #[test]
    fn damaged_bytes_are_refused_as_corrupt_not_remembered() {
        let memo = ShownMemo::default();
        let bad = [1u8, b'{'];
        assert!(matches!(
            memo.show::<Rec>(&bad, "recs", &3),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(memo.lock().is_empty());
    }
}
