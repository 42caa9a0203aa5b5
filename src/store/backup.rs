//! Backups of the database file, at the redb level: an online snapshot taken by the process
//! that holds the database, an offline copy when no server runs, verification and restore.
//!
//! Invariants:
//! - A backup is a *logical* copy: every table is copied from one read transaction (an MVCC
//!   snapshot) into a fresh redb file. It is consistent by construction, writers are never
//!   blocked, and the result is a cleanly closed, compact file that opens read-only without
//!   repair. (A byte copy of the live file would need a held write transaction and would come
//!   out marked "not shut down cleanly".)
//! - Every table kaas has is listed in [`visit_tables`]; a table in the source that is not
//!   listed makes the backup fail rather than silently drop data (tested against
//!   `migrate::create_tables`).
//! - A backup file appears under its final name only when complete: it is written to a
//!   `.partial` file, synced, then renamed.
//! - Verification never writes to the file it checks (read-only open).
//! - Restore keeps the previous database beside the new one and refuses while the database is
//!   open in another process.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use redb::{
    Database, Key, ReadOnlyDatabase, ReadTransaction, ReadableDatabase, ReadableTable,
    TableDefinition, TableHandle, Value, WriteTransaction,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::tables::{TableVisitor, visit_tables};
use super::{SCHEMA_VERSION, Store, StoreError, migrate};

/// What a backup (or a verified backup file) holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupSummary {
    pub path: PathBuf,
    pub schema_version: u32,
    pub bytes: u64,
    pub tables: usize,
    pub records: u64,
    /// SHA-256 over every table name, key and value, in order: two databases with the same
    /// content have the same digest, whatever their file layout.
    pub content_sha256: String,
    pub took_ms: u64,
}

/// Everything in a database, table by table, as raw key and value bytes (for tests and for
/// comparing a restore with its backup).
pub type Records = BTreeMap<String, Vec<(Vec<u8>, Vec<u8>)>>;

fn known_table_names() -> Vec<String> {
    struct Names(Vec<String>);
    impl TableVisitor for Names {
        fn visit<K: Key + 'static, V: Value + 'static>(
            &mut self,
            def: TableDefinition<K, V>,
        ) -> Result<(), StoreError> {
            self.0.push(def.name().to_string());
            Ok(())
        }
    }
    let mut n = Names(Vec::new());
    // Visiting names cannot fail.
    let _ = visit_tables(&mut n);
    n.0
}

/// Names of the tables present in a snapshot; an unknown one is an error (a newer kaas's
/// file, or a table missing from [`visit_tables`]).
fn present_tables(tx: &ReadTransaction) -> Result<Vec<String>, StoreError> {
    let known = known_table_names();
    let mut present = Vec::new();
    for handle in tx.list_tables()? {
        let name = handle.name().to_string();
        if !known.contains(&name) {
            return Err(StoreError::Internal(format!(
                "table {name} is unknown to this kaas (a file from a newer version?)"
            )));
        }
        present.push(name);
    }
    if tx.list_multimap_tables()?.next().is_some() {
        return Err(StoreError::Internal(
            "the database has multimap tables, which kaas never creates".into(),
        ));
    }
    Ok(present)
}

/// Feeds every record into a content digest and counts, optionally copying it and keeping it.
struct Walker<'a> {
    src: &'a ReadTransaction,
    present: Vec<String>,
    dst: Option<&'a WriteTransaction>,
    keep: Option<Records>,
    hasher: Sha256,
    tables: usize,
    records: u64,
}

impl TableVisitor for Walker<'_> {
    fn visit<K: Key + 'static, V: Value + 'static>(
        &mut self,
        def: TableDefinition<K, V>,
    ) -> Result<(), StoreError> {
        let name = def.name().to_string();
        if !self.present.contains(&name) {
            return Ok(());
        }
        let table = self.src.open_table(def)?;
        let mut out = match self.dst {
            Some(tx) => Some(tx.open_table(def)?),
            None => None,
        };
        let mut kept = Vec::new();
        self.hasher.update((name.len() as u64).to_be_bytes());
        self.hasher.update(name.as_bytes());
        for row in table.iter()? {
            let (k, v) = row?;
            let (key, value) = (k.value(), v.value());
            {
                let (kb, vb) = (K::as_bytes(&key), V::as_bytes(&value));
                let (kb, vb) = (kb.as_ref(), vb.as_ref());
                self.hasher.update((kb.len() as u64).to_be_bytes());
                self.hasher.update(kb);
                self.hasher.update((vb.len() as u64).to_be_bytes());
                self.hasher.update(vb);
                if self.keep.is_some() {
                    kept.push((kb.to_vec(), vb.to_vec()));
                }
            }
            if let Some(out) = out.as_mut() {
                out.insert(&key, &value)?;
            }
            self.records += 1;
        }
        if let Some(keep) = self.keep.as_mut() {
            keep.insert(name, kept);
        }
        self.tables += 1;
        Ok(())
    }
}

struct Walked {
    tables: usize,
    records: u64,
    digest: String,
    records_kept: Option<Records>,
}

fn walk(
    src: &ReadTransaction,
    dst: Option<&WriteTransaction>,
    keep: bool,
) -> Result<Walked, StoreError> {
    let mut w = Walker {
        src,
        present: present_tables(src)?,
        dst,
        keep: keep.then(Records::new),
        hasher: Sha256::new(),
        tables: 0,
        records: 0,
    };
    visit_tables(&mut w)?;
    Ok(Walked {
        tables: w.tables,
        records: w.records,
        digest: hex::encode(w.hasher.finalize()),
        records_kept: w.keep,
    })
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Internal(format!("{what} {}: {e}", path.display()))
}

fn partial_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    dest.with_file_name(name)
}

/// Copies the snapshot `src` into a new database file at `dest` (which must not exist).
fn write_copy(src: &ReadTransaction, dest: &Path) -> Result<BackupSummary, StoreError> {
    let started = Instant::now();
    if dest.exists() {
        return Err(StoreError::Internal(format!(
            "{} already exists; choose another name",
            dest.display()
        )));
    }
    if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
        super::private::create_dir(dir).map_err(|e| io_err("cannot create", dir, e))?;
    }
    let partial = partial_path(dest);
    let _ = std::fs::remove_file(&partial);
    let result = (|| {
        let db = Database::builder()
            .create(&partial)
            .map_err(|e| StoreError::Internal(format!("creating {}: {e}", partial.display())))?;
        let tx = db.begin_write()?;
        let walked = walk(src, Some(&tx), false)?;
        tx.commit()?;
        drop(db);
        // A backup holds what the database holds: kaas's user only, whatever the umask.
        super::private::tighten(&partial, super::private::FILE_MODE)
            .map_err(|e| io_err("cannot make private", &partial, e))?;
        File::open(&partial)
            .and_then(|f| f.sync_all())
            .map_err(|e| io_err("cannot sync", &partial, e))?;
        std::fs::rename(&partial, dest).map_err(|e| io_err("cannot rename to", dest, e))?;
        if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Make the rename durable; failure here only weakens crash safety.
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(walked)
    })();
    let walked = match result {
        Ok(w) => w,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    let bytes = std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0);
    Ok(BackupSummary {
        path: dest.to_path_buf(),
        schema_version: migrate::schema_version_in(src)?,
        bytes,
        tables: walked.tables,
        records: walked.records,
        content_sha256: walked.digest,
        took_ms: started.elapsed().as_millis() as u64,
    })
}

impl Store {
    /// An online backup: a consistent snapshot of the open database written to `dest`.
    /// Writers keep going while it runs. Blocking (file I/O): call from `spawn_blocking`.
    pub fn backup_to(&self, dest: &Path) -> Result<BackupSummary, StoreError> {
        let tx = self.db.begin_read()?;
        write_copy(&tx, dest)
    }
}

fn open_err(path: &Path, e: redb::DatabaseError) -> StoreError {
    StoreError::Open {
        path: path.to_path_buf(),
        why: match e {
            redb::DatabaseError::DatabaseAlreadyOpen => {
                "already open in another process (is kaas running?)".into()
            }
            other => other.to_string(),
        },
    }
}

/// An offline backup of the database file at `db_path` (no server may hold it). The source is
/// neither migrated nor otherwise changed.
pub fn backup_file(db_path: &Path, dest: &Path) -> Result<BackupSummary, StoreError> {
    if !db_path.is_file() {
        return Err(StoreError::Open {
            path: db_path.to_path_buf(),
            why: "no such database file".into(),
        });
    }
    let db = Database::open(db_path).map_err(|e| open_err(db_path, e))?;
    let tx = db.begin_read()?;
    write_copy(&tx, dest)
}

fn open_read_only(path: &Path) -> Result<ReadOnlyDatabase, StoreError> {
    if !path.is_file() {
        return Err(StoreError::Open {
            path: path.to_path_buf(),
            why: "no such file".into(),
        });
    }
    ReadOnlyDatabase::open(path).map_err(|e| StoreError::Open {
        path: path.to_path_buf(),
        why: match e {
            redb::DatabaseError::RepairAborted => {
                "not a cleanly closed database (a live file copied while in use?)".into()
            }
            other => format!("not a readable kaas database: {other}"),
        },
    })
}

/// Checks a backup file without changing it: it opens read-only as redb, it is a kaas database
/// of a schema this binary can read, and every record of every table can be read.
pub fn verify(path: &Path) -> Result<BackupSummary, StoreError> {
    let started = Instant::now();
    let db = open_read_only(path)?;
    let tx = db.begin_read()?;
    let schema_version = migrate::schema_version_in(&tx)?;
    if schema_version > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found: schema_version,
            supported: SCHEMA_VERSION,
        });
    }
    let walked = walk(&tx, None, false)?;
    Ok(BackupSummary {
        path: path.to_path_buf(),
        schema_version,
        bytes: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
        tables: walked.tables,
        records: walked.records,
        content_sha256: walked.digest,
        took_ms: started.elapsed().as_millis() as u64,
    })
}

/// Walks the audit log's hash chain in a database file without changing it: a copy, a
/// backup, or the database of a stopped server.
pub fn verify_audit_file(path: &Path) -> Result<crate::domain::audit::ChainReport, StoreError> {
    let db = open_read_only(path)?;
    let tx = db.begin_read()?;
    let found = migrate::schema_version_in(&tx)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found < migrate::AUDIT_CHAIN_SCHEMA {
        return Err(StoreError::Open {
            path: path.to_path_buf(),
            why: format!(
                "schema {found} predates the audit log's hash chain; start kaas on it once \
                 to migrate"
            ),
        });
    }
    super::records::verify_audit_chain(&tx)
}

/// Every record of a (closed, cleanly shut down) database file, for comparisons.
pub fn records(path: &Path) -> Result<Records, StoreError> {
    let db = open_read_only(path)?;
    let tx = db.begin_read()?;
    Ok(walk(&tx, None, true)?.records_kept.unwrap_or_default())
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreOutcome {
    pub restored: BackupSummary,
    /// Where the database that was replaced now is (None when there was none).
    pub previous: Option<PathBuf>,
}

/// Replaces the database at `db_path` with the backup `from`, after verifying the backup. The
/// previous file is kept as `<db>.before-restore-<unix seconds>`. Refuses while the database
/// is open in another process (a running server).
pub fn restore(from: &Path, db_path: &Path) -> Result<RestoreOutcome, StoreError> {
    let summary = verify(from)?;
    // Hold the current database open (and so locked) while it is moved aside: a server that
    // starts meanwhile fails to open it instead of racing the swap.
    let current = if db_path.exists() {
        Some(Database::open(db_path).map_err(|e| open_err(db_path, e))?)
    } else {
        None
    };
    #[cfg(unix)]
    let owner = std::fs::metadata(db_path)
        .ok()
        .or_else(|| db_path.parent().and_then(|d| std::fs::metadata(d).ok()))
        .map(|m| {
            use std::os::unix::fs::MetadataExt;
            (m.uid(), m.gid())
        });
    let staged = partial_path(db_path);
    // Restoring onto a new box: the data directory may not exist yet.
    if let Some(dir) = db_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        super::private::create_dir(dir).map_err(|e| io_err("cannot create", dir, e))?;
    }
    std::fs::copy(from, &staged).map_err(|e| io_err("cannot copy the backup to", &staged, e))?;
    super::private::tighten(&staged, super::private::FILE_MODE)
        .map_err(|e| io_err("cannot make private", &staged, e))?;
    File::open(&staged)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_err("cannot sync", &staged, e))?;
    #[cfg(unix)]
    if let Some((uid, gid)) = owner {
        // The service runs as its own user: a restore done as root must stay readable by it.
        // Not being allowed to chown (not root) leaves the file ours, which is then right.
        let _ = std::os::unix::fs::chown(&staged, Some(uid), Some(gid));
    }
    let previous = match current {
        Some(db) => {
            let mut name = db_path.file_name().unwrap_or_default().to_os_string();
            name.push(format!(
                ".before-restore-{}",
                jiff::Timestamp::now().as_second()
            ));
            let aside = db_path.with_file_name(name);
            std::fs::rename(db_path, &aside)
                .map_err(|e| io_err("cannot move the current database to", &aside, e))?;
            drop(db);
            Some(aside)
        }
        None => None,
    };
    std::fs::rename(&staged, db_path).map_err(|e| io_err("cannot rename to", db_path, e))?;
    Ok(RestoreOutcome {
        restored: BackupSummary {
            path: db_path.to_path_buf(),
            ..summary
        },
        previous,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::*;

    fn user(email: &str) -> User {
        User {
            id: UserId::generate(),
            email: email.into(),
            name: "A".into(),
            password_hash: "x".into(),
            platform_admin: false,
            disabled: false,
            created_at: jiff::Timestamp::UNIX_EPOCH,
            password_changed_at: None,
            last_login_at: None,
            created_via: None,
            kubeconfigs_valid_until: None,
            sso: None,
        }
    }

    #[test]
    fn every_table_created_is_backed_up() {
        let s = Store::in_memory().unwrap();
        let tx = s.read().unwrap();
        let mut created: Vec<String> = tx
            .list_tables()
            .unwrap()
            .map(|t| t.name().to_string())
            .collect();
        let mut known = known_table_names();
        created.sort();
        known.sort();
        assert_eq!(created, known, "visit_tables must list every table");
    }

    #[test]
    fn an_online_backup_is_a_consistent_copy_that_verifies_and_restores() {
        let dir = tempfile::tempdir().unwrap();
        let db_path = dir.path().join("kaas.redb");
        let (s, _) = Store::open(&db_path, 1 << 20).unwrap();
        let tx = s.write().unwrap();
        super::super::records::insert_user(&tx, &user("a@example.com")).unwrap();
        tx.commit().unwrap();

        let dest = dir.path().join("b").join("backup.redb");
        let taken = s.backup_to(&dest).unwrap();
        assert_eq!(taken.schema_version, SCHEMA_VERSION);
        assert!(!partial_path(&dest).exists());
        // Writes after the snapshot are not in it.
        let tx = s.write().unwrap();
        super::super::records::insert_user(&tx, &user("b@example.com")).unwrap();
        tx.commit().unwrap();

        let checked = verify(&dest).unwrap();
        assert_eq!(checked.content_sha256, taken.content_sha256);
        assert_eq!(checked.records, taken.records);
        let err = s.backup_to(&dest).unwrap_err().to_string();
        assert!(err.contains("already exists"), "{err}");

        // The server holds the file: restore refuses.
        let err = restore(&dest, &db_path).unwrap_err().to_string();
        assert!(err.contains("already open"), "{err}");
        drop(s);
        let out = restore(&dest, &db_path).unwrap();
        let previous = out.previous.expect("the old database is kept");
        assert_eq!(records(&db_path).unwrap(), records(&dest).unwrap());
        let (s, _) = Store::open(&db_path, 1 << 20).unwrap();
        let r = s.read().unwrap();
        assert!(
            super::super::records::user_by_email(&r, "a@example.com")
                .unwrap()
                .is_some()
        );
        assert!(
            super::super::records::user_by_email(&r, "b@example.com")
                .unwrap()
                .is_none()
        );
        drop(r);
        drop(s);
        // The kept file still has the later write.
        let (old, _) = Store::open(&previous, 1 << 20).unwrap();
        assert!(
            super::super::records::user_by_email(&old.read().unwrap(), "b@example.com")
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn an_offline_backup_does_not_migrate_its_source() {
        let dir = tempfile::tempdir().unwrap();
        let db_path = dir.path().join("kaas.redb");
        {
            let (s, _) = Store::open(&db_path, 1 << 20).unwrap();
            migrate::force_version(&s.db, 2).unwrap();
        }
        let dest = dir.path().join("offline.redb");
        let b = backup_file(&db_path, &dest).unwrap();
        assert_eq!(b.schema_version, 2);
        assert_eq!(verify(&dest).unwrap().schema_version, 2);
    }

    #[test]
    fn garbage_and_missing_files_fail_verification_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.redb");
        std::fs::write(&bad, b"not a database at all").unwrap();
        let err = verify(&bad).unwrap_err().to_string();
        assert!(err.contains("bad.redb"), "{err}");
        let err = verify(&dir.path().join("nope.redb"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no such file"), "{err}");
    }
}
