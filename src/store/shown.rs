//! Records as the API shows them, remembered with the stored bytes they were made from: a
//! list request that shows records which have not changed since they were last shown copies
//! their JSON instead of decoding and encoding each one again (a 50-item list spent most of
//! its time there).
//!
//! An entry is used only when the record's stored bytes are exactly those it was made from,
//! so the memo can never show a stale record: a changed record is decoded afresh. It is
//! bounded; when full it starts over, which costs one decode per record and nothing else.
//!
//! [`PageMemo`] goes one step further for lists: the whole response body of a page, as
//! everyone allowed to read it sees it whole or as one user sees it filtered, valid for as
//! long as the store commits nothing.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Mutex;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StoreError;
use super::codec::decode;

/// How many records the memo holds before it starts over (about 0.5 KiB each for the
/// stored bytes and the JSON together, so at most a few MiB).
const CAPACITY: usize = 4096;

/// Records already encoded as the API shows them: the text of a JSON array, made only by
/// `serde_json` from the records (so it needs no checking when it is written out).
pub struct ShownList<T> {
    json: String,
    len: usize,
    of: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for ShownList<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.json)
    }
}

impl<T> ShownList<T> {
    /// The JSON array.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// How many records it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A remembered record: the stored bytes it was made from and its JSON.
struct Entry {
    raw: Box<[u8]>,
    json: Box<str>,
}

/// Table → record id → the record's JSON as the current types show it.
#[derive(Default)]
pub struct ShownMemo {
    inner: Mutex<Tables>,
}

#[derive(Default)]
struct Tables {
    by_table: HashMap<Box<str>, HashMap<u128, Entry>>,
    entries: usize,
}

impl ShownMemo {
    /// The records `rows` (id and stored bytes, in `table`) as a JSON array of `T`s, in order.
    pub fn show<T: Serialize + DeserializeOwned>(
        &self,
        table: &str,
        rows: &[(u128, &[u8])],
    ) -> Result<ShownList<T>, StoreError> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.entries + rows.len() > CAPACITY {
            inner.by_table.clear();
            inner.entries = 0;
        }
        let Tables { by_table, entries } = &mut *inner;
        if !by_table.contains_key(table) {
            by_table.insert(table.into(), HashMap::new());
        }
        let Some(memo) = by_table.get_mut(table) else {
            return Err(StoreError::Internal("the memo lost a table".into()));
        };
        // One lock and one allocation for the whole list: the hits are copies.
        let mut out = String::with_capacity(2 + rows.len() * 320);
        out.push('[');
        for (i, &(id, raw)) in rows.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            match memo.get(&id) {
                Some(e) if *e.raw == *raw => out.push_str(&e.json),
                _ => {
                    let value: T = decode(raw, table, &id)?;
                    let json = serde_json::to_string(&value).map_err(|e| {
                        StoreError::Internal(format!("showing a record of {table}: {e}"))
                    })?;
                    out.push_str(&json);
                    let fresh = Entry {
                        raw: raw.into(),
                        json: json.into(),
                    };
                    if memo.insert(id, fresh).is_none() {
                        *entries += 1;
                    }
                }
            }
        }
        out.push(']');
        Ok(ShownList {
            json: out,
            len: rows.len(),
            of: PhantomData,
        })
    }
}

/// Which page of which list: the table, whose records (a workspace's, say), where the page
/// starts, how long it is, and whose view of it (everyone's whole list, or one user's
/// filtered one).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PageKey {
    pub table: &'static str,
    pub scope: u128,
    pub after: Option<Box<str>>,
    pub limit: usize,
    /// `None` for the page everyone allowed to read the list sees whole; the user's id for
    /// the page filtered to what that user may see (their memberships are in the store, so
    /// the generation covers them too).
    pub viewer: Option<u128>,
}

/// How many pages are kept before the memo starts over.
const PAGES: usize = 1024;

/// Response bodies of list pages, each with the store generation it was read at: a page is
/// served from here only while the store has committed nothing since, so it is exactly what
/// reading the store again would give.
#[derive(Default)]
pub struct PageMemo {
    inner: Mutex<HashMap<PageKey, (u64, bytes::Bytes)>>,
}

impl PageMemo {
    /// The page under `key` if it was read at `generation`.
    pub fn get(&self, key: &PageKey, generation: u64) -> Option<bytes::Bytes> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner
            .get(key)
            .filter(|(at, _)| *at == generation)
            .map(|(_, body)| body.clone())
    }

    /// Remembers `body`, read at `generation`.
    pub fn put(&self, key: PageKey, generation: u64, body: bytes::Bytes) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.len() >= PAGES && !inner.contains_key(&key) {
            inner.clear();
        }
        inner.insert(key, (generation, body));
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

    fn rec(name: &str, size: u32) -> Vec<u8> {
        encode(&Rec {
            name: name.into(),
            size,
        })
        .unwrap()
    }

    #[test]
    fn a_changed_record_is_shown_changed_and_an_old_one_as_todays_types_show_it() {
        let memo = ShownMemo::default();
        let (a, b) = (rec("a", 1), rec("b", 1));
        let shown: ShownList<Rec> = memo.show("recs", &[(1, &a), (2, &b)]).unwrap();
        assert_eq!(
            shown.json(),
            r#"[{"name":"a","size":1},{"name":"b","size":1}]"#
        );
        assert_eq!(shown.len(), 2);
        // Record 1 changed: shown as it is now, not as remembered.
        let a2 = rec("a", 2);
        let shown: ShownList<Rec> = memo.show("recs", &[(1, &a2), (2, &b)]).unwrap();
        assert_eq!(
            shown.json(),
            r#"[{"name":"a","size":2},{"name":"b","size":1}]"#
        );
        // Written before `size` existed: shown with today's default, not as stored.
        let old = [&[1u8][..], br#"{"name":"old"}"#].concat();
        let shown: ShownList<Rec> = memo.show("recs", &[(3, &old)]).unwrap();
        assert_eq!(shown.json(), r#"[{"name":"old","size":0}]"#);
        // The same id in another table is another record.
        let shown: ShownList<Rec> = memo.show("others", &[(1, &b)]).unwrap();
        assert_eq!(shown.json(), r#"[{"name":"b","size":1}]"#);
        let empty: ShownList<Rec> = memo.show("recs", &[]).unwrap();
        assert_eq!(empty.json(), "[]");
        assert!(empty.is_empty());
    }

    #[test]
    fn damaged_bytes_are_refused_as_corrupt_not_remembered() {
        let memo = ShownMemo::default();
        let bad = [1u8, b'{'];
        assert!(matches!(
            memo.show::<Rec>("recs", &[(3, &bad)]),
            Err(StoreError::Corrupt { .. })
        ));
        let good = rec("c", 3);
        let shown: ShownList<Rec> = memo.show("recs", &[(3, &good)]).unwrap();
        assert_eq!(shown.json(), r#"[{"name":"c","size":3}]"#);
    }

    #[test]
    fn a_full_memo_starts_over_and_still_shows_every_record() {
        let memo = ShownMemo::default();
        let rows: Vec<Vec<u8>> = (0..CAPACITY + 10).map(|i| rec("r", i as u32)).collect();
        for (i, raw) in rows.iter().enumerate() {
            let shown: ShownList<Rec> = memo.show("recs", &[(i as u128, raw)]).unwrap();
            assert_eq!(shown.json(), format!(r#"[{{"name":"r","size":{i}}}]"#));
        }
        assert!(memo.inner.lock().unwrap().entries <= CAPACITY);
    }
}
