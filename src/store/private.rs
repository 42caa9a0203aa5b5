//! File modes for what kaas keeps on disk: the database holds password hashes, token
//! digests and billing details, so its directory and the backup directory are 0700 and
//! the database and backup files 0600, whatever the umask. Directories kaas creates are
//! made 0700 from the start. The configured data and backup directories and the database
//! files in them that already exist lose any access by others when the server starts (and
//! that is logged); access by the group is left as it is, since a group given on purpose
//! (the packaged unit's `StateDirectoryMode=0750`, group `kaas`) is the operator's choice.

use std::path::{Path, PathBuf};

#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};

/// Mode of directories holding the database or backups.
pub const DIR_MODE: u32 = 0o700;
/// Mode of the database and backup files.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` (and missing parents) readable by the owner only; an existing directory
/// is left as it is.
pub fn create_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    b.mode(DIR_MODE);
    b.create(dir)
}

/// Sets `path`'s mode to `mode` if others or the group may access it; true if it changed.
/// For files kaas itself just wrote.
pub fn tighten(path: &Path, mode: u32) -> std::io::Result<bool> {
    #[cfg(unix)]
    {
        let meta = std::fs::metadata(path)?;
        if meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
            return Ok(true);
        }
    }
    let _ = (path, mode);
    Ok(false)
}

/// Takes away any access by others (not the owner's or the group's); true if it changed.
pub fn deny_others(path: &Path) -> std::io::Result<bool> {
    #[cfg(unix)]
    {
        let mode = std::fs::metadata(path)?.permissions().mode() & 0o7777;
        if mode & 0o007 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & !0o007))?;
            return Ok(true);
        }
    }
    let _ = path;
    Ok(false)
}

/// Whether a file in the data or backup directory is a database or a copy of one: the
/// database, its pre-migration and pre-restore copies, backups and partial backups.
fn is_database_file(name: &str) -> bool {
    name.ends_with(".redb")
        || name.ends_with(".redb.partial")
        || name.contains(".redb.pre-schema-")
        || name.contains(".redb.before-restore-")
}

/// Takes others' access away from the data directory, the backup directory and the
/// database files in them (made before kaas set modes, or by hand, under umask 022).
/// Returns what it changed, each also logged; a directory that does not exist yet is
/// skipped.
pub fn tighten_existing(data_dir: &Path, backup_dir: &Path) -> Vec<PathBuf> {
    let mut changed = Vec::new();
    for dir in [data_dir, backup_dir] {
        if !dir.is_dir() {
            continue;
        }
        let mut paths = vec![dir.to_path_buf()];
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if e.file_type().is_ok_and(|t| t.is_file()) && is_database_file(&name) {
                    paths.push(e.path());
                }
            }
        }
        for path in paths {
            match deny_others(&path) {
                Ok(true) => {
                    tracing::warn!(path = %path.display(),
                        "others could read this; took their access away");
                    changed.push(path);
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e,
                        "others may read this and its mode could not be changed");
                }
            }
        }
    }
    changed
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn loose_modes_are_tightened_and_new_directories_are_private() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("a/b/data");
        create_dir(&data).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        let db = data.join("kaas.redb");
        let other = data.join("notes.txt");
        for f in [&db, &other] {
            std::fs::write(f, b"x").unwrap();
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        let changed = tighten_existing(&data, &data.join("backups"));
        assert_eq!(changed, vec![data.clone(), db.clone()]);
        assert_eq!(mode(&data), 0o750);
        assert_eq!(mode(&db), 0o640);
        assert_eq!(
            mode(&other),
            0o644,
            "files that are not databases are left alone"
        );
        assert!(tighten_existing(&data, &data.join("backups")).is_empty());
    }
}
