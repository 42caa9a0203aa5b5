//! The terminal's credentials: `$XDG_CONFIG_HOME/kaas/credentials.toml` (else
//! `~/.config/kaas/credentials.toml`), one entry per server base URL and which one is
//! current. `kubectl`'s credential plugin (`kaas credential`) reads the same file, so its
//! shape is fixed: `current = "<base url>"` and `[servers."<base url>"]` with `token`,
//! `expires_at` (RFC 3339) and `user`; `token_id` (for revoking) and `ca_file` (a private
//! CA remembered per server) may be added.
//!
//! The file holds secrets: it is written 0600 in a 0700 directory, through a temporary file
//! and a rename, so no reader ever sees half of it.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Every server this terminal is signed in to.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Credentials {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    #[serde(default)]
    pub servers: BTreeMap<String, ServerCredential>,
}

/// One server's credential.
#[derive(Clone, Serialize, Deserialize)]
pub struct ServerCredential {
    pub token: String,
    pub expires_at: Timestamp,
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for ServerCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCredential")
            .field("token", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .field("user", &self.user)
            .field("token_id", &self.token_id)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// Where the file is, from the environment given (`XDG_CONFIG_HOME`, `HOME`).
pub fn path_from(xdg_config_home: Option<String>, home: Option<String>) -> anyhow::Result<PathBuf> {
    // XDG: a relative XDG_CONFIG_HOME is invalid and ignored.
    if let Some(x) = xdg_config_home.filter(|x| Path::new(x).is_absolute()) {
        return Ok(Path::new(&x).join("kaas").join("credentials.toml"));
    }
    match home.filter(|h| !h.is_empty()) {
        Some(h) => Ok(Path::new(&h).join(".config/kaas/credentials.toml")),
        None => bail!("neither XDG_CONFIG_HOME nor HOME is set; cannot find the credentials file"),
    }
}

/// The credentials file of this user.
pub fn path() -> anyhow::Result<PathBuf> {
    path_from(
        std::env::var("XDG_CONFIG_HOME").ok(),
        std::env::var("HOME").ok(),
    )
}

/// Reads the file; a missing file is no credentials.
pub fn load(path: &Path) -> anyhow::Result<Credentials> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Credentials::default()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    toml::from_str(&text)
        .with_context(|| format!("{} is not a valid credentials file", path.display()))
}

/// Writes the file (0600, directory 0700), replacing it whole.
pub fn save(path: &Path, creds: &Credentials) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .context("the credentials file has no directory")?;
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    // An existing directory is tightened too: the file's secrets must not be listable.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot restrict {}", dir.display()))?;
    let text = toml::to_string(creds).context("rendering the credentials")?;
    write_private(path, text.as_bytes())
}

/// Writes `bytes` to `path` with mode 0600 via a temporary file and a rename.
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_found_under_xdg_config_home_else_home() {
        assert_eq!(
            path_from(Some("/x".into()), Some("/h".into())).unwrap(),
            PathBuf::from("/x/kaas/credentials.toml")
        );
        assert_eq!(
            path_from(Some("relative".into()), Some("/h".into())).unwrap(),
            PathBuf::from("/h/.config/kaas/credentials.toml")
        );
        assert!(path_from(None, None).is_err());
    }

    #[test]
    fn the_agreed_format_round_trips_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cfg/kaas/credentials.toml");
        let mut c = Credentials {
            current: Some("https://k.example:8443".into()),
            ..Default::default()
        };
        c.servers.insert(
            "https://k.example:8443".into(),
            ServerCredential {
                token: "kaas_x".into(),
                expires_at: "2030-01-02T03:04:05Z".parse().unwrap(),
                user: "a@example.com".into(),
                token_id: None,
                ca_file: None,
            },
        );
        save(&path, &c).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("current = \"https://k.example:8443\""),
            "{text}"
        );
        assert!(
            text.contains("[servers.\"https://k.example:8443\"]"),
            "{text}"
        );
        assert!(
            text.contains("expires_at = \"2030-01-02T03:04:05Z\""),
            "{text}"
        );
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        let back = load(&path).unwrap();
        assert_eq!(back.servers["https://k.example:8443"].user, "a@example.com");
        assert!(load(&dir.path().join("none")).unwrap().servers.is_empty());
    }
}
