//! `kaas credential --server URL --workspace WS`: kubectl's exec credential plugin. It prints
//! a `client.authentication.k8s.io` ExecCredential carrying a cluster token from kaas's OIDC
//! issuer (`POST /api/v1/workspaces/{ws}/token`), and caches the token (0600, in the user's
//! cache directory) until shortly before it expires, because kubectl runs the plugin on every
//! command.
//!
//! It authenticates to kaas with the API credential the shell client (`kaas login`) keeps in
//! `$XDG_CONFIG_HOME/kaas/credentials.toml` (else `~/.config/kaas/credentials.toml`):
//! `current = "<base url>"` and `[servers."<base url>"]` with `token`, `expires_at` (RFC 3339)
//! and `user`; an optional `ca_file` names a PEM file of CAs to trust for that server besides
//! the system's. It never reads standard input (the kubeconfig says `interactiveMode: Never`):
//! when the user must sign in again it prints one line on stderr saying so and exits 1.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use jiff::Timestamp;
use rustls::pki_types::ServerName;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The ExecCredential version kaas writes unless kubectl asks for another it knows.
pub const EXEC_API_V1: &str = "client.authentication.k8s.io/v1";
const EXEC_API_V1BETA1: &str = "client.authentication.k8s.io/v1beta1";

/// A cached token is used while it has at least this much life left (kubectl's request must
/// reach the API server before it expires, clocks differ a little), or a quarter of the
/// lifetime it was issued with if that is less: with short lifetimes a fixed 30 s would leave
/// no time in which the cache is used at all.
const MAX_MARGIN: Duration = Duration::from_secs(30);
/// The whole exchange with kaas, connect included.
const TIMEOUT: Duration = Duration::from_secs(20);
const MAX_BODY: usize = 256 * 1024;

/// Why the plugin gave no token. Every variant is one line for the person at kubectl.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("not signed in to {server}: run `kaas login {server}`")]
    NotSignedIn { server: String },
    #[error("your sign-in to {server} has expired or was revoked: run `kaas login {server}`")]
    SignInExpired { server: String },
    #[error("{0}")]
    Refused(String),
    #[error("cannot reach kaas at {server}: {reason}")]
    Unreachable { server: String, reason: String },
    #[error("{0}")]
    Local(String),
}

/// The shell client's credential file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct CredentialsFile {
    #[serde(default)]
    pub current: Option<String>,
    #[serde(default)]
    pub servers: BTreeMap<String, ServerCredential>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ServerCredential {
    pub token: String,
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// A cached token.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct CachedToken {
    pub token: String,
    pub expires_at: Timestamp,
    /// When it was issued, which with `expires_at` gives its lifetime. Absent in caches
    /// written by older versions: those get the full 30 s margin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<Timestamp>,
}

impl CachedToken {
    /// How much life the token must have left to be handed to kubectl.
    pub fn renewal_margin(&self) -> Duration {
        let lifetime = self.issued_at.map(|i| {
            let secs = self.expires_at.as_second().saturating_sub(i.as_second());
            Duration::from_secs(u64::try_from(secs).unwrap_or(0))
        });
        match lifetime {
            Some(l) => MAX_MARGIN.min(l / 4),
            None => MAX_MARGIN,
        }
    }
}

/// Where things live, from the environment (`XDG_CONFIG_HOME`, `XDG_CACHE_HOME`, `HOME`).
#[derive(Debug, Clone)]
pub struct Paths {
    pub credentials: PathBuf,
    pub cache_dir: PathBuf,
}

impl Paths {
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Paths, CredentialError> {
        let nonempty = |k: &str| get(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        let home = nonempty("HOME");
        let base = |xdg: &str, fallback: &str| {
            nonempty(xdg)
                .or_else(|| home.as_ref().map(|h| h.join(fallback)))
                .ok_or_else(|| CredentialError::Local(format!("neither {xdg} nor HOME is set")))
        };
        Ok(Paths {
            credentials: base("XDG_CONFIG_HOME", ".config")?
                .join("kaas")
                .join("credentials.toml"),
            cache_dir: base("XDG_CACHE_HOME", ".cache")?
                .join("kaas")
                .join("tokens"),
        })
    }

    /// The cache file of one server and workspace.
    pub fn cache_file(&self, server: &str, ws: &str) -> PathBuf {
        let digest = hex::encode(Sha256::digest(format!("{server}\n{ws}").as_bytes()));
        self.cache_dir
            .join(format!("{}.json", digest.get(..32).unwrap_or(&digest)))
    }
}

/// The ExecCredential apiVersion to answer with: the one kubectl announced in
/// `KUBERNETES_EXEC_INFO` if kaas knows it, else v1.
pub fn exec_api_version(exec_info: Option<&str>) -> &'static str {
    let announced = exec_info
        .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
        .and_then(|v| v.get("apiVersion")?.as_str().map(str::to_string));
    match announced.as_deref() {
        Some(EXEC_API_V1BETA1) => EXEC_API_V1BETA1,
        _ => EXEC_API_V1,
    }
}

/// The ExecCredential JSON for `token`.
pub fn exec_credential(api_version: &str, token: &CachedToken) -> String {
    serde_json::json!({
        "apiVersion": api_version,
        "kind": "ExecCredential",
        "status": {
            "token": token.token,
            // Seconds only: kubectl parses RFC 3339.
            "expirationTimestamp": token.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        }
    })
    .to_string()
}

fn normalize(server: &str) -> String {
    server.trim_end_matches('/').to_string()
}

/// A cached token still good at `now`, if any.
pub fn read_cache(path: &Path, now: Timestamp) -> Option<CachedToken> {
    let bytes = std::fs::read(path).ok()?;
    let t: CachedToken = serde_json::from_slice(&bytes).ok()?;
    let left = t.expires_at.as_second().saturating_sub(now.as_second());
    let margin = i64::try_from(t.renewal_margin().as_secs()).unwrap_or(i64::MAX);
    // NB: strictly more than the margin, so a zero margin never hands out an expired token.
    (left > margin).then_some(t)
}

/// Writes `contents` to `path` readable by the owner only (directory 0700), atomically.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        crate::store::private::create_dir(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    {
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        let mut f = o.open(&tmp)?;
        f.write_all(contents)?;
    }
    std::fs::rename(&tmp, path)
}

/// The stored sign-in for `server`.
pub fn read_credentials(path: &Path, server: &str) -> Result<ServerCredential, CredentialError> {
    let not_signed_in = || CredentialError::NotSignedIn {
        server: server.to_string(),
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_signed_in()),
        Err(e) => {
            return Err(CredentialError::Local(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    let file: CredentialsFile = toml::from_str(&text).map_err(|e| {
        CredentialError::Local(format!(
            "{} is not a valid credentials file: {}",
            path.display(),
            e.message()
        ))
    })?;
    file.servers
        .into_iter()
        .find(|(k, _)| normalize(k) == server)
        .map(|(_, v)| v)
        .ok_or_else(not_signed_in)
}

/// What `kaas credential` prints, or why it cannot.
pub async fn run(
    server: &str,
    ws: &str,
    paths: &Paths,
    exec_info: Option<&str>,
) -> Result<String, CredentialError> {
    let server = normalize(server);
    let api = exec_api_version(exec_info);
    let now = Timestamp::now();
    let cache = paths.cache_file(&server, ws);
    if let Some(t) = read_cache(&cache, now) {
        return Ok(exec_credential(api, &t));
    }
    let cred = read_credentials(&paths.credentials, &server)?;
    if cred.expires_at.is_some_and(|t| t <= now) {
        return Err(CredentialError::SignInExpired { server });
    }
    let fresh = fetch(&server, ws, &cred).await?;
    // A cache that cannot be written costs a request per kubectl command, nothing more.
    if let Ok(bytes) = serde_json::to_vec(&fresh) {
        let _ = write_private(&cache, &bytes);
    }
    Ok(exec_credential(api, &fresh))
}

#[derive(Deserialize)]
struct TokenAnswer {
    token: String,
    expires_at: Timestamp,
    /// Older servers do not say: then the time it arrived stands in.
    #[serde(default)]
    issued_at: Option<Timestamp>,
}

/// `POST {server}/api/v1/workspaces/{ws}/token` with the stored API credential.
async fn fetch(
    server: &str,
    ws: &str,
    cred: &ServerCredential,
) -> Result<CachedToken, CredentialError> {
    let unreachable = |reason: String| CredentialError::Unreachable {
        server: server.to_string(),
        reason,
    };
    let url = url::Url::parse(server).map_err(|e| unreachable(format!("not a URL: {e}")))?;
    let host = url
        .host_str()
        .ok_or_else(|| unreachable("the URL has no host".into()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = url
        .port_or_known_default()
        .ok_or_else(|| unreachable("the URL has no port".into()))?;
    let path = format!(
        "{}/api/v1/workspaces/{ws}/token",
        url.path().trim_end_matches('/')
    );
    let req = hyper::Request::post(path)
        .header(hyper::header::HOST, url.authority())
        .header(
            hyper::header::AUTHORIZATION,
            format!("Bearer {}", cred.token),
        )
        .header(hyper::header::ACCEPT, "application/json")
        .body(Full::new(Bytes::new()))
        .map_err(|e| unreachable(e.to_string()))?;
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        match url.scheme() {
            "http" => send(TokioIo::new(tcp), req).await,
            "https" => {
                let tls = client_tls(cred.ca_file.as_deref())?;
                let name = ServerName::try_from(host.clone())
                    .map_err(|e| unreachable(format!("bad host name: {e}")))?;
                let stream = tokio_rustls::TlsConnector::from(tls)
                    .connect(name, tcp)
                    .await
                    .map_err(|e| unreachable(format!("TLS: {e}")))?;
                send(TokioIo::new(stream), req).await
            }
            other => Err(unreachable(format!("unsupported scheme {other}"))),
        }
        .map_err(|e| match e {
            CredentialError::Local(reason) => unreachable(reason),
            e => e,
        })
    };
    let (status, body) = tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| unreachable(format!("no answer within {} s", TIMEOUT.as_secs())))??;
    let message = || {
        serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error")?.get("message")?.as_str().map(str::to_string))
            .unwrap_or_else(|| format!("HTTP {status}"))
    };
    match status {
        200 => {
            let a: TokenAnswer = serde_json::from_slice(&body)
                .map_err(|e| unreachable(format!("unexpected answer: {e}")))?;
            Ok(CachedToken {
                token: a.token,
                expires_at: a.expires_at,
                issued_at: Some(a.issued_at.unwrap_or_else(Timestamp::now)),
            })
        }
        401 => Err(CredentialError::SignInExpired {
            server: server.to_string(),
        }),
        403 | 404 => Err(CredentialError::Refused(format!(
            "no access to workspace {ws} on {server}: {}",
            message()
        ))),
        _ => Err(CredentialError::Refused(format!(
            "kaas at {server} refused a token: {}",
            message()
        ))),
    }
}

async fn send<S>(
    io: TokioIo<S>,
    req: hyper::Request<Full<Bytes>>,
) -> Result<(u16, Bytes), CredentialError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let local = |e: &dyn std::fmt::Display| CredentialError::Local(e.to_string());
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| local(&e))?;
    tokio::spawn(conn);
    let res = sender.send_request(req).await.map_err(|e| local(&e))?;
    let status = res.status().as_u16();
    let body = Limited::new(res.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| local(&e))?
        .to_bytes();
    Ok((status, body))
}

/// The system's CAs, plus `ca_file`'s.
fn client_tls(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, CredentialError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|e| {
            CredentialError::Local(format!("cannot read CA file {}: {e}", path.display()))
        })?;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()).flatten() {
            roots
                .add(cert)
                .map_err(|e| CredentialError::Local(format!("CA file {}: {e}", path.display())))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| CredentialError::Local(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn paths(dir: &Path) -> Paths {
        let d = dir.to_string_lossy().to_string();
        Paths::from_env(|k| (k == "HOME").then(|| d.clone())).unwrap()
    }

    #[test]
    fn paths_follow_xdg_then_home() {
        let p = Paths::from_env(|k| match k {
            "XDG_CONFIG_HOME" => Some("/x/conf".into()),
            "XDG_CACHE_HOME" => Some("/x/cache".into()),
            "HOME" => Some("/home/a".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(p.credentials, Path::new("/x/conf/kaas/credentials.toml"));
        assert_eq!(p.cache_dir, Path::new("/x/cache/kaas/tokens"));
        let p = Paths::from_env(|k| (k == "HOME").then(|| "/home/a".into())).unwrap();
        assert_eq!(
            p.credentials,
            Path::new("/home/a/.config/kaas/credentials.toml")
        );
        assert!(Paths::from_env(|_| None).is_err());
        assert_ne!(
            p.cache_file("https://a", "ws_1"),
            p.cache_file("https://a", "ws_2")
        );
    }

    #[test]
    fn the_answer_follows_the_version_kubectl_announced() {
        assert_eq!(exec_api_version(None), EXEC_API_V1);
        let info = r#"{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","spec":{"interactive":false}}"#;
        assert_eq!(exec_api_version(Some(info)), EXEC_API_V1BETA1);
        assert_eq!(exec_api_version(Some("not json")), EXEC_API_V1);
        let t = CachedToken {
            token: "abc".into(),
            expires_at: "2030-01-02T03:04:05.678Z".parse().unwrap(),
            issued_at: None,
        };
        let v: serde_json::Value = serde_json::from_str(&exec_credential(EXEC_API_V1, &t)).unwrap();
        assert_eq!(v["kind"], "ExecCredential");
        assert_eq!(v["status"]["token"], "abc");
        assert_eq!(v["status"]["expirationTimestamp"], "2030-01-02T03:04:05Z");
    }

    #[test]
    fn the_cache_is_private_and_used_only_while_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path());
        let file = p.cache_file("https://k", "ws_1");
        let at = |s: i64| Timestamp::from_second(1_000_000 + s).unwrap();
        let t = CachedToken {
            token: "t".into(),
            expires_at: at(600),
            issued_at: Some(at(0)),
        };
        write_private(&file, &serde_json::to_vec(&t).unwrap()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        assert_eq!(read_cache(&file, at(0)), Some(t.clone()));
        // A 10-minute token: used while more than 30 s are left.
        assert_eq!(read_cache(&file, at(569)), Some(t));
        assert_eq!(read_cache(&file, at(570)), None);
    }

    #[test]
    fn a_short_lived_token_is_renewed_a_quarter_of_its_lifetime_before_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let file = paths(dir.path()).cache_file("https://k", "ws_1");
        let at = |s: i64| Timestamp::from_second(1_000_000 + s).unwrap();
        let token = |lifetime: i64| CachedToken {
            token: "t".into(),
            expires_at: at(lifetime),
            issued_at: Some(at(0)),
        };
        assert_eq!(token(600).renewal_margin(), Duration::from_secs(30));
        assert_eq!(token(120).renewal_margin(), Duration::from_secs(30));
        assert_eq!(token(100).renewal_margin(), Duration::from_secs(25));
        assert_eq!(token(20).renewal_margin(), Duration::from_secs(5));
        assert_eq!(token(0).renewal_margin(), Duration::ZERO);
        // A 20 s token is served from the cache for its first 15 s.
        let t = token(20);
        write_private(&file, &serde_json::to_vec(&t).unwrap()).unwrap();
        assert_eq!(read_cache(&file, at(0)), Some(t.clone()));
        assert_eq!(read_cache(&file, at(14)), Some(t));
        assert_eq!(read_cache(&file, at(15)), None);
        // Never once expired, whatever the margin.
        let t = token(0);
        write_private(&file, &serde_json::to_vec(&t).unwrap()).unwrap();
        assert_eq!(read_cache(&file, at(0)), None);
    }

    #[test]
    fn a_cache_written_without_the_issue_time_keeps_the_30_s_margin() {
        let dir = tempfile::tempdir().unwrap();
        let file = paths(dir.path()).cache_file("https://k", "ws_1");
        let at = |s: i64| Timestamp::from_second(1_000_000 + s).unwrap();
        // What versions before the issue time was kept wrote.
        let old = serde_json::json!({"token": "t", "expires_at": at(100).to_string()});
        write_private(&file, &serde_json::to_vec(&old).unwrap()).unwrap();
        let t = read_cache(&file, at(0)).unwrap();
        assert_eq!((t.token.as_str(), t.issued_at), ("t", None));
        assert!(read_cache(&file, at(69)).is_some());
        assert_eq!(read_cache(&file, at(70)), None);
    }

    #[test]
    fn credentials_are_found_by_server_or_the_user_is_told_to_sign_in() {
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path());
        let err = read_credentials(&p.credentials, "https://k").unwrap_err();
        assert_eq!(
            err.to_string(),
            "not signed in to https://k: run `kaas login https://k`"
        );
        write_private(
            &p.credentials,
            br#"current = "https://k/"
[servers."https://k/"]
token = "kaas_x"
expires_at = "2030-01-01T00:00:00Z"
user = "ann@example.com"
"#,
        )
        .unwrap();
        let c = read_credentials(&p.credentials, "https://k").unwrap();
        assert_eq!(c.token, "kaas_x");
        assert!(read_credentials(&p.credentials, "https://other").is_err());
    }
}
