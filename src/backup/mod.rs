//! Backups as the operator sees them: `kaas backup` (through the running server's control
//! socket, or directly from the file when no server runs), `kaas backup verify`,
//! `kaas restore`, and the server's scheduled backups with their retention. The redb-level
//! work is in `store::backup`.
//!
//! Invariants:
//! - Scheduled backups are named `scheduled-<UTC time>.redb` and only those are pruned;
//!   backups an operator asked for (`kaas-<UTC time>.redb` or any name given) are never
//!   deleted by kaas.
//! - The schedule survives restarts: the next backup is due `interval` after the newest
//!   scheduled one on disk, not after the server started.
//! - Restore never runs beside a server (the database lock refuses it) and keeps the database
//!   it replaces.
//!
//! [`control`] is the local socket through which the CLI asks a running server for a backup.

pub mod control;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;

use crate::config::Config;
use crate::store::backup::{BackupSummary, RestoreOutcome};
use crate::store::{Store, StoreError};

const SCHEDULED_PREFIX: &str = "scheduled-";
const MANUAL_PREFIX: &str = "kaas-";
const SUFFIX: &str = ".redb";

/// How `kaas backup` got its snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    RunningServer,
    DatabaseFile,
}

/// A free file name `<prefix><UTC time>.redb` in `dir`.
fn new_name(dir: &Path, prefix: &str) -> PathBuf {
    let stamp = jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string();
    let mut path = dir.join(format!("{prefix}{stamp}{SUFFIX}"));
    let mut n = 1;
    while path.exists() || path.with_extension("redb.partial").exists() {
        path = dir.join(format!("{prefix}{stamp}-{n}{SUFFIX}"));
        n += 1;
    }
    path
}

/// Takes an online backup of `store` into `dest`, or a new timestamped file in `dir`.
/// Blocking; called by the control socket.
pub fn take_online(
    store: &Store,
    dir: &Path,
    dest: Option<&Path>,
) -> Result<BackupSummary, StoreError> {
    let dest = match dest {
        Some(d) => d.to_path_buf(),
        None => {
            crate::store::private::create_dir(dir).map_err(|e| {
                StoreError::Internal(format!("cannot create {}: {e}", dir.display()))
            })?;
            new_name(dir, MANUAL_PREFIX)
        }
    };
    store.backup_to(&dest)
}

fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    if p.is_absolute() {
        return Ok(p.to_path_buf());
    }
    Ok(std::env::current_dir()
        .context("finding the current directory")?
        .join(p))
}

/// `kaas backup`: asks the running server, or copies the database file when none runs.
pub async fn take(cfg: &Config, output: Option<&Path>) -> anyhow::Result<(BackupSummary, Via)> {
    let output = output.map(absolute).transpose()?;
    let socket = control::socket_path(&cfg.data.dir);
    if let Some(summary) =
        control::request_backup(&socket, output.as_deref(), Duration::from_secs(600)).await?
    {
        return Ok((summary, Via::RunningServer));
    }
    let db = cfg.db_path();
    let dir = cfg.backup_dir();
    let summary = tokio::task::spawn_blocking(move || {
        let dest = match output {
            Some(d) => d,
            None => {
                crate::store::private::create_dir(&dir).map_err(|e| {
                    StoreError::Internal(format!("cannot create {}: {e}", dir.display()))
                })?;
                new_name(&dir, MANUAL_PREFIX)
            }
        };
        crate::store::backup::backup_file(&db, &dest)
    })
    .await
    .context("the backup task failed")?
    .map_err(|e| match e {
        StoreError::Open { why, path } if why.contains("already open") => anyhow::anyhow!(
            "the database {} is held by a running kaas, but its control socket {} does not answer; is the server still starting?",
            path.display(),
            socket.display()
        ),
        other => other.into(),
    })?;
    Ok((summary, Via::DatabaseFile))
}

/// `kaas backup verify FILE`.
pub fn verify(file: &Path) -> anyhow::Result<BackupSummary> {
    Ok(crate::store::backup::verify(file)?)
}

/// `kaas restore FILE`: refuses while a server runs; keeps the replaced database.
pub fn restore(cfg: &Config, file: &Path) -> anyhow::Result<RestoreOutcome> {
    crate::store::backup::restore(file, &cfg.db_path()).map_err(|e| match e {
        StoreError::Open { path, why } if why.contains("already open") => anyhow::anyhow!(
            "kaas is running and holds {}; stop it first (systemctl stop kaas), restore, then start it",
            path.display()
        ),
        other => other.into(),
    })
}

/// Scheduled backups in `dir`, oldest first.
fn scheduled(dir: &Path) -> Vec<(SystemTime, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with(SCHEDULED_PREFIX) && name.ends_with(SUFFIX)
        })
        .filter_map(|e| {
            let modified = e.metadata().ok()?.modified().ok()?;
            Some((modified, e.path()))
        })
        .collect();
    found.sort();
    found
}

/// Deletes all but the newest `keep` scheduled backups (and leftover partial files); returns
/// what was deleted.
pub fn prune(dir: &Path, keep: u32) -> Vec<PathBuf> {
    let mut deleted = Vec::new();
    let all = scheduled(dir);
    let excess = all.len().saturating_sub(keep as usize);
    for (_, path) in all.into_iter().take(excess) {
        if std::fs::remove_file(&path).is_ok() {
            deleted.push(path);
        }
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.filter_map(Result::ok) {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(SCHEDULED_PREFIX)
                && name.ends_with(".partial")
                && std::fs::remove_file(e.path()).is_ok()
            {
                deleted.push(e.path());
            }
        }
    }
    deleted
}

/// When the next scheduled backup is due, from the newest one on disk.
fn next_due(dir: &Path, interval: Duration, now: SystemTime) -> Duration {
    match scheduled(dir).last() {
        Some((newest, _)) => (*newest + interval)
            .duration_since(now)
            .unwrap_or(Duration::ZERO),
        None => Duration::ZERO,
    }
}

/// Takes one scheduled backup now and prunes.
pub fn scheduled_once(store: &Store, dir: &Path, keep: u32) -> Result<BackupSummary, StoreError> {
    crate::store::private::create_dir(dir)
        .map_err(|e| StoreError::Internal(format!("cannot create {}: {e}", dir.display())))?;
    let summary = store.backup_to(&new_name(dir, SCHEDULED_PREFIX))?;
    prune(dir, keep);
    Ok(summary)
}

/// The server's backup schedule; runs until aborted. `interval` must not be zero.
pub async fn schedule(store: Arc<Store>, dir: PathBuf, interval: Duration, keep: u32) {
    // Retry a failed backup sooner than a whole interval, but not in a tight loop.
    let retry = interval.min(Duration::from_secs(15 * 60));
    loop {
        let wait = next_due(&dir, interval, SystemTime::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
            continue;
        }
        let (s, d) = (store.clone(), dir.clone());
        match tokio::task::spawn_blocking(move || scheduled_once(&s, &d, keep)).await {
            Ok(Ok(b)) => {
                tracing::info!(path = %b.path.display(), records = b.records, took_ms = b.took_ms, "scheduled backup taken")
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, dir = %dir.display(), "scheduled backup failed");
                tokio::time::sleep(retry).await;
            }
            Err(e) => {
                tracing::error!(error = %e, "scheduled backup task failed");
                tokio::time::sleep(retry).await;
            }
        }
    }
}

/// One line describing a backup, for the CLI.
pub fn describe(b: &BackupSummary) -> String {
    format!(
        "{} — schema {}, {} records in {} tables, {} bytes, content sha256 {}",
        b.path.display(),
        b.schema_version,
        b.records,
        b.tables,
        b.bytes,
        b.content_sha256
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_keeps_the_newest_scheduled_backups_and_never_manual_ones() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(&dir.path().join("kaas.redb"), 1 << 20).unwrap();
        let backups = dir.path().join("backups");
        let manual = take_online(&store, &backups, None).unwrap();
        let mut taken = Vec::new();
        for _ in 0..4 {
            taken.push(scheduled_once(&store, &backups, 2).unwrap().path);
            // Distinct modification times, whatever the filesystem's resolution.
            std::thread::sleep(Duration::from_millis(20));
        }
        let left: Vec<PathBuf> = scheduled(&backups).into_iter().map(|(_, p)| p).collect();
        assert_eq!(left, taken[2..].to_vec());
        assert!(manual.path.exists(), "manual backups are never pruned");
        // Just taken: the next one is a whole interval away.
        let wait = next_due(&backups, Duration::from_secs(3600), SystemTime::now());
        assert!(wait > Duration::from_secs(3500), "{wait:?}");
        let empty = dir.path().join("none");
        assert_eq!(
            next_due(&empty, Duration::from_secs(3600), SystemTime::now()),
            Duration::ZERO
        );
    }
}
