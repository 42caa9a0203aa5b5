//! The checks of this machine: the external address and its certificate, the data
//! directory's filesystem and free space, and the clock against the host's.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::Client;

use super::{Check, fail, pass, warn};
use crate::config::{Config, TlsMode};

const FREE_FAIL: u64 = 256 * 1024 * 1024;
const FREE_WARN: u64 = 2 * 1024 * 1024 * 1024;
/// Clock difference from the host API server that breaks certificates and tokens.
const SKEW_FAIL: Duration = Duration::from_secs(60);
const SKEW_WARN: Duration = Duration::from_secs(5);

/// SANs (DNS names and IPs, as text) of the first certificate in a PEM file.
fn certificate_names(path: &Path) -> Result<Vec<String>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let der = rustls_pemfile::certs(&mut pem.as_slice())
        .next()
        .ok_or_else(|| format!("{} holds no certificate", path.display()))?
        .map_err(|e| format!("{}: {e}", path.display()))?;
    crate::tls::subject_alt_names(&der).map_err(|e| format!("{}: {e}", path.display()))
}

pub(super) fn external_address(cfg: &Config) -> Check {
    const NAME: &str = "external-address";
    let addrs = &cfg.host.external_addresses;
    if addrs.is_empty() {
        return fail(
            NAME,
            "host.external_addresses is empty: virtual clusters get no reachable TLS name and provisioning cannot finish",
            "set host.external_addresses = [\"<name or IP clients use>\"] in /etc/kaas/config.toml and restart kaas",
        );
    }
    if !cfg.uses_tls() {
        return pass(
            NAME,
            format!(
                "{} (kaas itself serves plain HTTP on {}; no certificate to check)",
                addrs.join(", "),
                cfg.server.listen
            ),
        );
    }
    let cert = match cfg.server.tls.mode {
        TlsMode::Files => cfg.server.tls.cert.clone().unwrap_or_default(),
        TlsMode::Auto | TlsMode::Off => crate::tls::self_signed_paths(&cfg.data.dir).0,
    };
    if cfg.server.tls.mode == TlsMode::Auto && !cert.exists() {
        return pass(
            NAME,
            format!(
                "{} (the self-signed certificate is generated with these names on first start)",
                addrs.join(", ")
            ),
        );
    }
    let names = match certificate_names(&cert) {
        Ok(n) => n,
        Err(e) => {
            return fail(
                NAME,
                e,
                "fix server.tls.cert, or let kaas generate one (server.tls.mode = \"auto\")",
            );
        }
    };
    let mut wanted: Vec<String> = addrs.iter().map(|a| a.to_ascii_lowercase()).collect();
    if let Some(h) = cfg.server.public_url.as_ref().and(cfg.public_host()) {
        wanted.push(h.to_ascii_lowercase());
    }
    let missing: Vec<&String> = wanted
        .iter()
        .filter(|w| !names.iter().any(|n| n == *w || wildcard_covers(n, w)))
        .collect();
    if missing.is_empty() {
        pass(
            NAME,
            format!("{} (all in {})", addrs.join(", "), cert.display()),
        )
    } else {
        let fix = match cfg.server.tls.mode {
            TlsMode::Files => format!("reissue {} with these names", cert.display()),
            _ => "restart kaas: the self-signed certificate is regenerated when names are missing"
                .to_string(),
        };
        fail(
            NAME,
            format!(
                "not in the certificate {}: {}",
                cert.display(),
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            fix,
        )
    }
}

fn wildcard_covers(pattern: &str, name: &str) -> bool {
    match (pattern.strip_prefix("*."), name.split_once('.')) {
        (Some(suffix), Some((_, rest))) => suffix == rest,
        _ => false,
    }
}

/// The filesystem type of the mount holding `path`, from /proc/self/mountinfo.
fn filesystem_type(path: &Path) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut best: Option<(usize, String)> = None;
    for line in info.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let mount_point = fields.get(4)?;
        let sep = fields.iter().position(|f| *f == "-")?;
        let fstype = fields.get(sep + 1)?;
        let mp = mount_point.replace("\\040", " ");
        if path.starts_with(&mp) && best.as_ref().is_none_or(|(len, _)| mp.len() >= *len) {
            best = Some((mp.len(), fstype.to_string()));
        }
    }
    best.map(|(_, t)| t)
}

/// Bytes available to an unprivileged writer on the filesystem holding `path`.
fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: `c` is a valid NUL-terminated path and `st` a properly sized out-parameter.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    (rc == 0).then(|| (st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

const REMOTE_FS: [&str; 12] = [
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "9p",
    "fuse.sshfs",
    "glusterfs",
    "ceph",
    "afs",
    "davfs",
    "fuse.s3fs",
];

pub(super) fn data_dir(dir: &Path) -> Check {
    const NAME: &str = "data-directory";
    let abs = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|c| c.join(dir))
            .unwrap_or_else(|_| dir.to_path_buf())
    };
    // The directory may not exist yet (first start creates it): look at its nearest ancestor.
    let existing: PathBuf = abs
        .ancestors()
        .find(|a| a.exists())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    let existing = existing.canonicalize().unwrap_or(existing);
    let fstype = filesystem_type(&existing).unwrap_or_else(|| "unknown".into());
    if REMOTE_FS.contains(&fstype.as_str()) {
        return fail(
            NAME,
            format!(
                "{} is on a network filesystem ({fstype}); the database needs reliable locks and fsync",
                abs.display()
            ),
            "set data.dir to a local disk (the default /var/lib/kaas)",
        );
    }
    let free = match free_bytes(&existing) {
        Some(f) => f,
        None => {
            return warn(
                NAME,
                format!("{} ({fstype}): cannot read free space", abs.display()),
                "check the directory exists and is readable",
            );
        }
    };
    let gib = free as f64 / (1024.0 * 1024.0 * 1024.0);
    let what = format!("{} on {fstype}, {gib:.1} GiB free", abs.display());
    if free < FREE_FAIL {
        fail(
            NAME,
            what,
            "free disk space: the database and its backups need room",
        )
    } else if fstype == "tmpfs" || fstype == "ramfs" {
        warn(
            NAME,
            format!("{what}: in memory, lost on reboot"),
            "set data.dir to a disk (the default /var/lib/kaas)",
        )
    } else if free < FREE_WARN {
        warn(NAME, what, "free disk space: less than 2 GiB left")
    } else {
        pass(NAME, what)
    }
}

/// Whether the kernel clock is disciplined by NTP/PTP (None: cannot tell).
fn kernel_clock_synchronized() -> Option<bool> {
    // SAFETY: modes = 0 only reads the kernel's time state into a zeroed struct.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    let state = unsafe { libc::adjtimex(&mut tx) };
    if state < 0 {
        return None;
    }
    Some(state != libc::TIME_ERROR && tx.status & libc::STA_UNSYNC == 0)
}

/// The host API server's clock, from the `Date` header of `/version`.
async fn host_time(client: &Client) -> Option<jiff::Timestamp> {
    let req = http::Request::get("/version").body(Vec::new()).ok()?;
    let res = client.send(req.map(Into::into)).await.ok()?;
    let date = res.headers().get(http::header::DATE)?.to_str().ok()?;
    jiff::fmt::rfc2822::parse(date).ok().map(|z| z.timestamp())
}

pub(super) async fn clock(client: Option<&Client>) -> Check {
    const NAME: &str = "clock";
    let now = jiff::Timestamp::now();
    let synced = kernel_clock_synchronized();
    let skew = match client {
        Some(c) => host_time(c).await.map(|t| {
            let d = now.duration_since(t);
            Duration::from_secs(d.as_secs().unsigned_abs())
        }),
        None => None,
    };
    let skew_text = match skew {
        Some(s) => format!(", {}s from the host API server", s.as_secs()),
        None => String::new(),
    };
    let fix_sync = "synchronize the clock: point chrony or systemd-timesyncd at an NTP server \
                    reachable from this box (air-gapped: a local one)";
    if let Some(s) = skew {
        // The Date header has one-second resolution; the request itself takes a moment.
        if s > SKEW_FAIL {
            return fail(
                NAME,
                format!("{now}{skew_text}: certificates and tokens will be refused"),
                fix_sync,
            );
        }
        if s > SKEW_WARN {
            return warn(NAME, format!("{now}{skew_text}"), fix_sync);
        }
    }
    match synced {
        Some(true) => pass(NAME, format!("{now}, synchronized{skew_text}")),
        Some(false) => warn(
            NAME,
            format!("{now}, not synchronized by NTP{skew_text}"),
            fix_sync,
        ),
        None => pass(
            NAME,
            format!("{now}{skew_text} (synchronization state unknown)"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    #[test]
    fn wildcards_cover_one_label() {
        assert!(wildcard_covers("*.example.com", "kaas.example.com"));
        assert!(!wildcard_covers("*.example.com", "a.b.example.com"));
        assert!(!wildcard_covers("kaas.example.com", "kaas.example.com"));
    }

    #[test]
    fn the_data_directory_check_reads_the_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        let c = data_dir(&dir.path().join("not-yet"));
        assert_ne!(c.status, Status::Fail, "{c:?}");
        assert!(c.detail.contains("GiB free"), "{c:?}");
    }
}
