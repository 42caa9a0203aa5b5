//! HTTPS for the server: the rustls server configuration, the self-signed certificate kept in
//! `<data>/tls/`, and a client configuration that trusts one certificate file.
//!
//! Invariants:
//! - Every rustls config is built with the ring provider passed explicitly; nothing depends on
//!   a process-wide default provider being installed.
//! - The self-signed certificate is generated once and reused across restarts (clients pin it).
//!   It is regenerated only when missing, unreadable, not matching its key, expiring within
//!   30 days, or lacking a name now configured; each regeneration is logged with its reason.
//! - The private key is written with mode 0600 inside a 0700 directory, via a temporary file
//!   and a rename, so a crash never leaves a half-written key in place.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::config::{Config, TlsMode};

/// Self-signed certificates are valid this long.
const SELF_SIGNED_VALIDITY_DAYS: i64 = 730;
/// A certificate expiring sooner than this is replaced at startup.
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {}: {source}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no PEM certificate found in {}", .0.display())]
    NoCertificate(PathBuf),
    #[error("no PEM private key found in {}", .0.display())]
    NoKey(PathBuf),
    #[error("TLS certificate {} and key {} cannot be used: {source}", cert.display(), key.display())]
    Unusable {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    #[error("certificate in {} cannot be trusted: {source}", path.display())]
    BadTrustAnchor {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// `<data>/tls/cert.pem` and `<data>/tls/key.pem`.
pub fn self_signed_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    let dir = data_dir.join("tls");
    (dir.join("cert.pem"), dir.join("key.pem"))
}

/// The server's TLS configuration, or `None` when the listener speaks plain HTTP. In `auto`
/// mode on a non-loopback address this creates (or reuses) the self-signed certificate.
/// ALPN offers h2 and http/1.1, so the server must speak both (hyper-util's `auto` builder).
pub fn server_config(cfg: &Config) -> Result<Option<Arc<rustls::ServerConfig>>, TlsError> {
    if !cfg.uses_tls() {
        return Ok(None);
    }
    let config = match cfg.server.tls.mode {
        TlsMode::Files => {
            // Config::validate guarantees both are set in files mode; if a caller skipped it,
            // report the missing one as an unreadable path rather than panic.
            let cert = cfg.server.tls.cert.clone().unwrap_or_default();
            let key = cfg.server.tls.key.clone().unwrap_or_default();
            build_server_config(&cert, &key)?
        }
        TlsMode::Auto | TlsMode::Off => {
            let (cert, key) = self_signed_paths(&cfg.data.dir);
            let names = self_signed_names(cfg);
            ensure_self_signed(&cert, &key, &names)?;
            build_server_config(&cert, &key)?
        }
    };
    Ok(Some(Arc::new(config)))
}

/// A client configuration trusting exactly the certificate(s) in `cert_pem_path` (for
/// `kaas healthcheck` and tests). No ALPN is set; the caller adds what its client speaks.
pub fn client_config_trusting(cert_pem_path: &Path) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let certs = read_certs(cert_pem_path)?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|source| TlsError::BadTrustAnchor {
            path: cert_pem_path.to_owned(),
            source,
        })?;
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::BadTrustAnchor {
            path: cert_pem_path.to_owned(),
            source,
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The subject alternative names of a DER certificate as text: DNS names lower-cased, IP
/// addresses in their usual notation.
pub fn subject_alt_names(der: &[u8]) -> Result<Vec<String>, String> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => names.push(d.to_ascii_lowercase()),
                GeneralName::IPAddress(b) => {
                    if let Ok(a) = <[u8; 4]>::try_from(*b) {
                        names.push(std::net::IpAddr::from(a).to_string());
                    } else if let Ok(a) = <[u8; 16]>::try_from(*b) {
                        names.push(std::net::IpAddr::from(a).to_string());
                    }
                }
                _ => {}
            }
        }
    }
    Ok(names)
}

/// Names the self-signed certificate must cover: loopback names, the machine's hostname, the
/// listen IP (if specific), the public URL's host, and every `host.external_addresses` entry.
pub fn self_signed_names(cfg: &Config) -> Vec<String> {
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    if let Some(h) = crate::config::machine_hostname() {
        names.push(h);
    }
    let ip = cfg.server.listen.ip();
    if !ip.is_unspecified() {
        names.push(ip.to_string());
    }
    if let Some(h) = cfg.server.public_url.as_ref().and(cfg.public_host()) {
        names.push(h);
    }
    names.extend(cfg.host.external_addresses.iter().cloned());
    let mut out: Vec<String> = Vec::new();
    for n in names {
        let n = n.trim().trim_end_matches('.').to_ascii_lowercase();
        // Only names a client could verify against; anything else would make rcgen or the
        // SAN check fail for no benefit.
        if !n.is_empty() && ServerName::try_from(n.as_str()).is_ok() && !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

/// Makes sure `cert`/`key` hold a usable self-signed certificate covering `names`, generating
/// one if needed. Returns true if a new certificate was written.
pub fn ensure_self_signed(cert: &Path, key: &Path, names: &[String]) -> Result<bool, TlsError> {
    match existing_problem(cert, key, names) {
        None => return Ok(false),
        Some(reason) => {
            tracing::info!(cert = %cert.display(), %reason, "generating a self-signed TLS certificate")
        }
    }
    let (cert_pem, key_pem) = generate_self_signed(names)?;
    if let Some(dir) = cert.parent() {
        create_private_dir(dir)?;
    }
    if let Some(dir) = key.parent() {
        create_private_dir(dir)?;
    }
    // Key first: if we die between the two writes, the next start sees a mismatch and
    // regenerates, instead of serving a new certificate with an old key.
    write_atomic(key, key_pem.as_bytes(), 0o600)?;
    write_atomic(cert, cert_pem.as_bytes(), 0o644)?;
    Ok(true)
}

/// Why the existing self-signed certificate cannot be kept, or None if it can.
fn existing_problem(cert: &Path, key: &Path, names: &[String]) -> Option<String> {
    if !cert.exists() && !key.exists() {
        return Some("none exists yet".into());
    }
    let certs = match read_certs(cert) {
        Ok(c) => c,
        Err(e) => return Some(format!("the existing one is unusable ({e})")),
    };
    if let Err(e) = build_server_config(cert, key) {
        return Some(format!("the existing one is unusable ({e})"));
    }
    let Some(leaf) = certs.into_iter().next() else {
        return Some("the existing certificate file is empty".into());
    };
    // Verify the certificate against itself as the only trust anchor, once per required name
    // and at a time RENEW_BEFORE from now: this checks SANs and expiry with webpki, without
    // an X.509 parser of our own.
    let mut roots = rustls::RootCertStore::empty();
    if let Err(e) = roots.add(leaf.clone()) {
        return Some(format!("the existing certificate cannot be parsed ({e})"));
    }
    let verifier = match rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        provider(),
    )
    .build()
    {
        Ok(v) => v,
        Err(e) => return Some(format!("the existing certificate cannot be checked ({e})")),
    };
    let later = UnixTime::since_unix_epoch(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_add(RENEW_BEFORE),
    );
    for name in names {
        let Ok(server_name) = ServerName::try_from(name.as_str()) else {
            continue;
        };
        if let Err(e) = verifier.verify_server_cert(&leaf, &[], &server_name, &[], later) {
            return Some(match e {
                rustls::Error::InvalidCertificate(rustls::CertificateError::Expired)
                | rustls::Error::InvalidCertificate(rustls::CertificateError::ExpiredContext {
                    ..
                }) => "the existing one expires within 30 days".into(),
                rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName)
                | rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForNameContext { .. },
                ) => {
                    format!("the existing one does not cover \"{name}\"")
                }
                other => format!("the existing one fails verification for \"{name}\" ({other})"),
            });
        }
    }
    None
}

fn generate_self_signed(names: &[String]) -> Result<(String, String), TlsError> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = rcgen::CertificateParams::new(names.to_vec())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "kaas self-signed");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    // Backdated a day so a client whose clock is slightly behind still accepts it.
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let start = today.yesterday().unwrap_or(today);
    let end = today
        .checked_add(jiff::Span::new().days(SELF_SIGNED_VALIDITY_DAYS))
        .unwrap_or(today);
    let ymd = |d: jiff::civil::Date| {
        rcgen::date_time_ymd(
            i32::from(d.year()),
            d.month().unsigned_abs(),
            d.day().unsigned_abs(),
        )
    };
    params.not_before = ymd(start);
    params.not_after = ymd(end);
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn build_server_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, TlsError> {
    let certs = read_certs(cert)?;
    let private_key = read_key(key)?;
    let unusable = |source| TlsError::Unusable {
        cert: cert.to_owned(),
        key: key.to_owned(),
        source,
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(unusable)?
        .with_no_client_auth()
        .with_single_cert(certs, private_key)
        .map_err(unusable)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = std::fs::read(path).map_err(|source| TlsError::Read {
        what: "TLS certificate",
        path: path.to_owned(),
        source,
    })?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Read {
            what: "TLS certificate",
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_owned()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = std::fs::read(path).map_err(|source| TlsError::Read {
        what: "TLS private key",
        path: path.to_owned(),
        source,
    })?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|source| TlsError::Read {
            what: "TLS private key",
            path: path.to_owned(),
            source,
        })?
        .ok_or_else(|| TlsError::NoKey(path.to_owned()))
}

fn create_private_dir(dir: &Path) -> Result<(), TlsError> {
    let write_err = |source| TlsError::Write {
        path: dir.to_owned(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(write_err)?;
    // An existing directory keeps its mode under create(); tighten it explicitly.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(write_err)
}

fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    let write_err = |source| TlsError::Write {
        path: path.to_owned(),
        source,
    };
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(write_err)?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(write_err)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(write_err)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::config::Config;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn public_cfg(dir: &Path) -> Config {
        let mut c = Config::default();
        c.server.listen = "10.9.8.7:8443".parse().unwrap();
        c.data.dir = dir.to_owned();
        c.host.external_addresses = vec!["kaas.example".into()];
        c
    }

    #[test]
    fn loopback_auto_is_plain_http() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Config::default();
        c.data.dir = dir.path().to_owned();
        assert!(server_config(&c).unwrap().is_none());
        assert!(!dir.path().join("tls").exists());
    }

    #[test]
    fn generates_once_and_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let c = public_cfg(dir.path());
        let sc = server_config(&c).unwrap().unwrap();
        assert_eq!(
            sc.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        let (cert, key) = self_signed_paths(dir.path());
        let first = std::fs::read(&cert).unwrap();
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::metadata(dir.path().join("tls"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );

        server_config(&c).unwrap().unwrap();
        assert_eq!(
            std::fs::read(&cert).unwrap(),
            first,
            "second start reuses the certificate"
        );

        // A newly configured name forces a new certificate.
        let mut c2 = c.clone();
        c2.host.external_addresses.push("other.example".into());
        server_config(&c2).unwrap().unwrap();
        assert_ne!(std::fs::read(&cert).unwrap(), first);
    }

    #[test]
    fn corrupt_key_is_regenerated() {
        let dir = tempfile::tempdir().unwrap();
        let c = public_cfg(dir.path());
        server_config(&c).unwrap();
        let (cert, key) = self_signed_paths(dir.path());
        let first = std::fs::read(&cert).unwrap();
        std::fs::write(&key, "garbage").unwrap();
        server_config(&c).unwrap().unwrap();
        assert_ne!(std::fs::read(&cert).unwrap(), first);
    }

    #[test]
    fn files_mode_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("c.pem");
        std::fs::write(&cert, "not pem").unwrap();
        let mut c = Config::default();
        c.server.tls.mode = TlsMode::Files;
        c.server.tls.cert = Some(cert.clone());
        c.server.tls.key = Some(dir.path().join("k.pem"));
        let msg = server_config(&c).unwrap_err().to_string();
        assert_eq!(
            msg,
            format!("no PEM certificate found in {}", cert.display())
        );
    }

    #[tokio::test]
    async fn client_trusting_the_cert_completes_a_handshake() {
        let dir = tempfile::tempdir().unwrap();
        let c = public_cfg(dir.path());
        let server = server_config(&c).unwrap().unwrap();
        let (cert, _) = self_signed_paths(dir.path());
        let client = client_config_trusting(&cert).unwrap();

        for name in ["localhost", "kaas.example", "10.9.8.7", "::1"] {
            let (a, b) = tokio::io::duplex(64 * 1024);
            let acceptor = tokio_rustls::TlsAcceptor::from(server.clone());
            let connector = tokio_rustls::TlsConnector::from(client.clone());
            let server_task = tokio::spawn(async move {
                let mut s = acceptor.accept(a).await.unwrap();
                let mut buf = [0u8; 4];
                s.read_exact(&mut buf).await.unwrap();
                s.write_all(b"pong").await.unwrap();
                s.shutdown().await.unwrap();
                buf
            });
            let sn = ServerName::try_from(name.to_owned()).unwrap();
            let mut s = connector.connect(sn, b).await.unwrap();
            s.write_all(b"ping").await.unwrap();
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"pong");
            assert_eq!(&server_task.await.unwrap(), b"ping");
        }

        // A name not on the certificate is refused.
        let (a, b) = tokio::io::duplex(64 * 1024);
        let acceptor = tokio_rustls::TlsAcceptor::from(server.clone());
        tokio::spawn(async move { acceptor.accept(a).await.map(|_| ()) });
        let connector = tokio_rustls::TlsConnector::from(client.clone());
        let sn = ServerName::try_from("evil.example").unwrap();
        assert!(connector.connect(sn, b).await.is_err());
    }
}
