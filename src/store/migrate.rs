//! Schema versions and forward migrations. Version 1 was the first layout; version 2 added
//! the per-organization audit index, built from the existing log; version 3 the dedicated
//! node tables; version 4 the billing tables; version 5 the audit log's hash chain, built
//! over the existing records in id (time) order, and the login-throttling tables; version 6
//! the OIDC issuer's signing keys; version 7 the second-factor table; version 8 the identity
//! providers added in the console. Each step runs in one
//! write transaction with the version bump, so a crash mid-migration leaves the old schema.

use std::path::{Path, PathBuf};

use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, WriteTransaction};

use super::tables::*;
use super::{StoreError, codec};
use crate::domain::AuditEvent;

/// The schema this binary reads and writes.
pub const SCHEMA_VERSION: u32 = 8;

/// The first schema with the audit log's hash chain.
pub const AUDIT_CHAIN_SCHEMA: u32 = 5;

const VERSION_KEY: &str = "schema_version";

/// Creates every table in a new database and records the schema version.
pub fn initialize(db: &Database) -> Result<(), StoreError> {
    let tx = db.begin_write()?;
    create_tables(&tx)?;
    set_version(&tx, SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(())
}

pub(super) fn create_tables(tx: &WriteTransaction) -> Result<(), StoreError> {
    struct Create<'a>(&'a WriteTransaction);
    impl TableVisitor for Create<'_> {
        fn visit<K: redb::Key + 'static, V: redb::Value + 'static>(
            &mut self,
            def: redb::TableDefinition<K, V>,
        ) -> Result<(), StoreError> {
            self.0.open_table(def)?;
            Ok(())
        }
    }
    visit_tables(&mut Create(tx))
}

fn set_version(tx: &WriteTransaction, v: u32) -> Result<(), StoreError> {
    tx.open_table(META)?
        .insert(VERSION_KEY, v.to_be_bytes().as_slice())?;
    Ok(())
}

pub fn schema_version(db: &Database) -> Result<u32, StoreError> {
    schema_version_in(&db.begin_read()?)
}

pub fn schema_version_in(tx: &ReadTransaction) -> Result<u32, StoreError> {
    let meta = tx.open_table(META).map_err(|e| StoreError::Corrupt {
        table: "meta-v1".into(),
        key: VERSION_KEY.into(),
        why: format!("not a kaas database: {e}"),
    })?;
    let raw = meta.get(VERSION_KEY)?.ok_or_else(|| StoreError::Corrupt {
        table: "meta-v1".into(),
        key: VERSION_KEY.into(),
        why: "no schema version recorded".into(),
    })?;
    let bytes: [u8; 4] = raw.value().try_into().map_err(|_| StoreError::Corrupt {
        table: "meta-v1".into(),
        key: VERSION_KEY.into(),
        why: "schema version is not 4 bytes".into(),
    })?;
    Ok(u32::from_be_bytes(bytes))
}

/// Where the pre-migration copy goes: beside the file, named after the old version.
pub fn backup_path(db_path: &Path, from: u32) -> PathBuf {
    let stamp = jiff::Timestamp::now().as_second();
    let mut name = db_path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".pre-schema-{from}-{stamp}.bak"));
    db_path.with_file_name(name)
}

/// Runs every step from `from` up to [`SCHEMA_VERSION`].
pub fn run(db: &Database, from: u32) -> Result<(), StoreError> {
    let mut v = from;
    while v < SCHEMA_VERSION {
        let tx = db.begin_write()?;
        create_tables(&tx)?;
        match v {
            1 => v1_to_v2(&tx)?,
            // Schemas 3 (node tables) and 4 (billing tables) only add tables, which
            // create_tables made above; plan revisions are filled in when kaas starts.
            2 | 3 => {}
            // NB: the step into AUDIT_CHAIN_SCHEMA; the login-throttling tables of schema 5
            // are among those create_tables made above.
            4 => v4_to_v5(&tx)?,
            // Schemas 6 (the issuer's signing keys), 7 (the second-factor table) and 8 (the
            // console's identity providers) only add tables.
            5..=7 => {}
            other => {
                return Err(StoreError::Internal(format!(
                    "no migration from schema {other}"
                )));
            }
        }
        v += 1;
        set_version(&tx, v)?;
        tx.commit()?;
    }
    Ok(())
}

/// Schema 2 indexes the audit log by organization.
fn v1_to_v2(tx: &WriteTransaction) -> Result<(), StoreError> {
    let audit = tx.open_table(AUDIT)?;
    let mut index = tx.open_table(AUDIT_BY_ORG)?;
    for row in audit.iter()? {
        let (k, v) = row?;
        let id = k.value();
        let ev: AuditEvent = codec::decode(v.value(), "audit-v1", &id)?;
        if let Some(org) = ev.org_id {
            index.insert((org.0, id), ())?;
        }
    }
    Ok(())
}

/// Schema 5 chains the audit log: the existing records, oldest first, become the chain's
/// first links (their stored bytes are hashed as they are, not rewritten).
fn v4_to_v5(tx: &WriteTransaction) -> Result<(), StoreError> {
    let mut rows = Vec::new();
    {
        let audit = tx.open_table(AUDIT)?;
        for row in audit.iter()? {
            let (k, v) = row?;
            rows.push((k.value(), v.value().to_vec()));
        }
    }
    for (id, bytes) in rows {
        super::records::chain_append(tx, crate::domain::AuditId(id), &bytes)?;
    }
    Ok(())
}

#[cfg(test)]
pub(super) fn force_version(db: &Database, v: u32) -> Result<(), StoreError> {
    let tx = db.begin_write()?;
    set_version(&tx, v)?;
    tx.commit()?;
    Ok(())
}
