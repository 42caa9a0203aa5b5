//! The only module that knows redb. Owns the database file: opening, the schema version and
//! forward migrations (the file is copied aside first; a newer schema is refused), and typed
//! access to every record. Write transactions are opened here and committed by `ops::`;
//! nothing here awaits or calls the network.

pub mod backup;
pub mod codec;
pub mod kept;
mod migrate;
pub mod private;
pub mod records;
pub mod shown;
pub mod tables;
pub mod usage;

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction,
};

pub use migrate::SCHEMA_VERSION;

/// Store failures. `Corrupt` and `Internal` are server faults (5xx, logged once);
/// `Conflict` reports a uniqueness clash the caller should have checked for.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database file {path}: {why}")]
    Open { path: PathBuf, why: String },
    #[error(
        "database file {path} has schema version {found}, newer than this kaas understands \
         ({supported}); run a newer kaas or restore a backup"
    )]
    NewerSchema {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("record {key} in table {table} is corrupt: {why}")]
    Corrupt {
        table: String,
        key: String,
        why: String,
    },
    #[error("{0} already exists")]
    Conflict(String),
    #[error("database: {0}")]
    Internal(String),
}

macro_rules! internal_from {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self { StoreError::Internal(e.to_string()) }
        }
    )*};
}
internal_from!(
    redb::Error,
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError,
    redb::DatabaseError
);

/// Something tables can be read from: a read transaction or a write transaction, so the
/// same query helpers serve checks inside a write and plain reads.
pub trait Reader {
    fn table<K: redb::Key + 'static, V: redb::Value + 'static>(
        &self,
        def: TableDefinition<K, V>,
    ) -> Result<impl ReadableTable<K, V> + '_, StoreError>;
}

impl Reader for ReadTransaction {
    fn table<K: redb::Key + 'static, V: redb::Value + 'static>(
        &self,
        def: TableDefinition<K, V>,
    ) -> Result<impl ReadableTable<K, V> + '_, StoreError> {
        Ok(self.open_table(def)?)
    }
}

impl Reader for WriteTransaction {
    fn table<K: redb::Key + 'static, V: redb::Value + 'static>(
        &self,
        def: TableDefinition<K, V>,
    ) -> Result<impl ReadableTable<K, V> + '_, StoreError> {
        Ok(self.open_table(def)?)
    }
}

impl Reader for Writing {
    fn table<K: redb::Key + 'static, V: redb::Value + 'static>(
        &self,
        def: TableDefinition<K, V>,
    ) -> Result<impl ReadableTable<K, V> + '_, StoreError> {
        Ok(self.tx.open_table(def)?)
    }
}

/// A write transaction of the store's: committing it also moves the store's generation on,
/// so that what was computed from an earlier state is known to be old.
pub struct Writing {
    tx: WriteTransaction,
    generation: Arc<AtomicU64>,
}

impl Writing {
    /// Commits (durably) and then counts the commit.
    pub fn commit(self) -> Result<(), redb::CommitError> {
        self.tx.commit()?;
        self.generation.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

impl Deref for Writing {
    type Target = WriteTransaction;
    fn deref(&self) -> &WriteTransaction {
        &self.tx
    }
}

impl DerefMut for Writing {
    fn deref_mut(&mut self) -> &mut WriteTransaction {
        &mut self.tx
    }
}

/// The open database.
pub struct Store {
    db: Database,
    path: PathBuf,
    shown: shown::ShownMemo,
    pages: shown::PageMemo,
    /// Commits since the store was opened (see [`Store::generation`]).
    generation: Arc<AtomicU64>,
}

/// What happened when the store was opened, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenOutcome {
    Created,
    Opened,
    Migrated { from: u32, to: u32, backup: PathBuf },
}

impl Store {
    /// Opens (or creates) the database at `path`, migrating an older schema after copying
    /// the file aside. `cache_bytes` bounds redb's page cache (memory stays small at idle).
    pub fn open(path: &Path, cache_bytes: usize) -> Result<(Store, OpenOutcome), StoreError> {
        let open_err = |why: String| StoreError::Open {
            path: path.to_path_buf(),
            why,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            private::create_dir(dir)
                .map_err(|e| open_err(format!("cannot create directory {}: {e}", dir.display())))?;
        }
        let existed = path.exists();
        let db = Self::open_db(path, cache_bytes)?;
        if !existed {
            // redb created the file with the umask's mode; the database is for kaas's user.
            private::tighten(path, private::FILE_MODE)
                .map_err(|e| open_err(format!("cannot make it private (mode 0600): {e}")))?;
        }
        let store = Store {
            db,
            path: path.to_path_buf(),
            shown: Default::default(),
            pages: Default::default(),
            generation: Default::default(),
        };
        if !existed {
            migrate::initialize(&store.db)?;
            return Ok((store, OpenOutcome::Created));
        }
        let found = migrate::schema_version(&store.db)?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                path: path.to_path_buf(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        if found == SCHEMA_VERSION {
            return Ok((store, OpenOutcome::Opened));
        }
        // NB: copy while no transaction is open, after closing our handle, so the copy is a
        // consistent file another kaas could open.
        drop(store);
        let backup = migrate::backup_path(path, found);
        std::fs::copy(path, &backup).map_err(|e| {
            open_err(format!(
                "cannot copy to {} before migrating: {e}",
                backup.display()
            ))
        })?;
        let db = Self::open_db(path, cache_bytes)?;
        migrate::run(&db, found)?;
        Ok((
            Store {
                db,
                path: path.to_path_buf(),
                shown: Default::default(),
                pages: Default::default(),
                generation: Default::default(),
            },
            OpenOutcome::Migrated {
                from: found,
                to: SCHEMA_VERSION,
                backup,
            },
        ))
    }

    /// A database that lives in memory only, for tests and benchmarks.
    pub fn in_memory() -> Result<Store, StoreError> {
        let db = Database::builder().create_with_backend(redb::backends::InMemoryBackend::new())?;
        migrate::initialize(&db)?;
        Ok(Store {
            db,
            path: PathBuf::from(":memory:"),
            shown: Default::default(),
            pages: Default::default(),
            generation: Default::default(),
        })
    }

    fn open_db(path: &Path, cache_bytes: usize) -> Result<Database, StoreError> {
        Database::builder()
            .set_cache_size(cache_bytes)
            .create(path)
            .map_err(|e| StoreError::Open {
                path: path.to_path_buf(),
                why: match e {
                    redb::DatabaseError::DatabaseAlreadyOpen => {
                        "already open in another process (is kaas running?)".into()
                    }
                    other => other.to_string(),
                },
            })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn read(&self) -> Result<ReadTransaction, StoreError> {
        Ok(self.db.begin_read()?)
    }

    /// Records as the API shows them, remembered by their stored bytes.
    pub fn shown(&self) -> &shown::ShownMemo {
        &self.shown
    }

    /// A write transaction; durable (fsync) on commit, so an answered request survives a crash.
    pub fn write(&self) -> Result<Writing, StoreError> {
        Ok(Writing {
            tx: self.db.begin_write()?,
            generation: self.generation.clone(),
        })
    }

    /// How many writes this store has committed. Read it before opening the read
    /// transaction a result is computed in: while it is unchanged, nothing was committed
    /// since, and the result still holds.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Whole pages of records as the API shows them, each valid for one generation.
    pub fn pages(&self) -> &shown::PageMemo {
        &self.pages
    }

    /// Whether the database answers a read, for `/readyz`.
    pub fn ping(&self) -> bool {
        self.read()
            .and_then(|tx| migrate::schema_version_in(&tx))
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::*;
    use jiff::Timestamp;

    fn user(email: &str) -> User {
        User {
            id: UserId::generate(),
            email: email.into(),
            name: "A".into(),
            password_hash: "x".into(),
            platform_admin: false,
            disabled: false,
            created_at: Timestamp::UNIX_EPOCH,
            password_changed_at: None,
            last_login_at: None,
            created_via: None,
            kubeconfigs_valid_until: None,
            sso: None,
        }
    }

    fn org_event(org: OrgId) -> AuditEvent {
        AuditEvent {
            id: AuditId::generate(),
            time: Timestamp::now(),
            actor: None,
            actor_label: "t".into(),
            action: "org.create".into(),
            target: org.to_string(),
            org_id: Some(org),
            outcome: Outcome::Success,
            source: "test".into(),
            detail: String::new(),
        }
    }

    #[test]
    fn records_survive_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kaas.redb");
        let u = user("a@example.com");
        {
            let (s, outcome) = Store::open(&path, 1 << 20).unwrap();
            assert_eq!(outcome, OpenOutcome::Created);
            let tx = s.write().unwrap();
            records::insert_user(&tx, &u).unwrap();
            tx.commit().unwrap();
        }
        let (s, outcome) = Store::open(&path, 1 << 20).unwrap();
        assert_eq!(outcome, OpenOutcome::Opened);
        let r = s.read().unwrap();
        assert_eq!(
            records::user_by_email(&r, "a@example.com").unwrap(),
            Some(u)
        );
    }

    #[test]
    fn uniqueness_is_enforced_by_the_indexes() {
        let s = Store::in_memory().unwrap();
        let tx = s.write().unwrap();
        records::insert_user(&tx, &user("a@example.com")).unwrap();
        let err = records::insert_user(&tx, &user("a@example.com")).unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    }

    #[test]
    fn a_corrupt_value_is_an_error_naming_it_not_a_panic() {
        let s = Store::in_memory().unwrap();
        let u = user("a@example.com");
        let tx = s.write().unwrap();
        records::insert_user(&tx, &u).unwrap();
        tx.open_table(tables::USERS)
            .unwrap()
            .insert(u.id.0, b"\x01{not json".as_slice())
            .unwrap();
        tx.commit().unwrap();
        let err = records::get_user(&s.read().unwrap(), u.id).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("users-v1") && msg.contains("corrupt"), "{msg}");
        let tx = s.write().unwrap();
        tx.open_table(tables::USERS)
            .unwrap()
            .insert(u.id.0, b"\x09{}".as_slice())
            .unwrap();
        tx.commit().unwrap();
        let msg = records::get_user(&s.read().unwrap(), u.id)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("unknown record format 9"), "{msg}");
    }

    #[test]
    fn an_older_schema_is_migrated_after_a_copy_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kaas.redb");
        let org = OrgId::generate();
        {
            // Build a schema-1 file: the audit log without its per-organization index.
            let (s, _) = Store::open(&path, 1 << 20).unwrap();
            let ev = org_event(org);
            let tx = s.write().unwrap();
            tx.open_table(tables::AUDIT)
                .unwrap()
                .insert(ev.id.0, codec::encode(&ev).unwrap().as_slice())
                .unwrap();
            tx.commit().unwrap();
            migrate::force_version(&s.db, 1).unwrap();
            let filter = records::AuditFilter {
                org: Some(org),
                ..Default::default()
            };
            assert!(
                records::list_audit(&s.read().unwrap(), &filter, None, 10)
                    .unwrap()
                    .is_empty()
            );
        }
        let (s, outcome) = Store::open(&path, 1 << 20).unwrap();
        let OpenOutcome::Migrated {
            from: 1,
            to,
            backup,
        } = outcome
        else {
            panic!("expected a migration, got {outcome:?}");
        };
        assert_eq!(to, SCHEMA_VERSION);
        assert!(backup.exists(), "the pre-migration copy is kept");
        let filter = records::AuditFilter {
            org: Some(org),
            ..Default::default()
        };
        assert_eq!(
            records::list_audit(&s.read().unwrap(), &filter, None, 10)
                .unwrap()
                .len(),
            1
        );
        // Schema 5 chained the records that were there.
        let report = records::verify_audit_chain(&s.read().unwrap()).unwrap();
        assert_eq!(report.describe(), "intact (1 records)");
        drop(s);
        // The copy is the old schema, untouched.
        let (old, _) = Store::open(&backup, 1 << 20).unwrap();
        drop(old);
    }

    #[test]
    fn a_newer_schema_is_refused_with_a_clear_message() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kaas.redb");
        {
            let (s, _) = Store::open(&path, 1 << 20).unwrap();
            migrate::force_version(&s.db, SCHEMA_VERSION + 5).unwrap();
        }
        let err = Store::open(&path, 1 << 20).err().expect("refused");
        let msg = err.to_string();
        assert!(msg.contains("newer than this kaas understands"), "{msg}");
    }

    #[test]
    fn a_file_that_is_not_a_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kaas.redb");
        std::fs::write(&path, b"this is not redb").unwrap();
        let err = Store::open(&path, 1 << 20).err().expect("refused");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }
}
