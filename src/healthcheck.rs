//! `kaas healthcheck`: asks the local kaas for `/readyz` over HTTP or HTTPS, as configured.
//!
//! Invariants:
//! - It connects to the configured listen address (an unspecified address means loopback), so
//!   it checks this box's kaas, never whatever `public_url` points at.
//! - Over TLS it trusts only the configured certificate file, or the self-signed one in the
//!   data directory; it never disables verification. The name verified is `public_url`'s host
//!   when one is configured (a real certificate is issued for that), else the loopback IP (on
//!   every self-signed certificate).
//! - Everything, connect included, runs under one timeout; the response body is capped.
//! - A non-200 answer is a report, not an error: the caller decides the exit code.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use crate::config::{Config, TlsMode};
use crate::tls::{TlsError, client_config_trusting, self_signed_paths};

const READY_PATH: &str = "/readyz";
const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct ReadyReport {
    pub status: u16,
    /// The JSON body, or the body text as a JSON string if it was not JSON.
    pub body: serde_json::Value,
}

impl ReadyReport {
    pub fn is_ready(&self) -> bool {
        self.status == 200
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HealthcheckError {
    #[error("no kaas answering at {addr}: {reason}")]
    Connect { addr: SocketAddr, reason: String },
    #[error("kaas at {addr} did not answer {READY_PATH} within {}", crate::config::format_duration(*timeout))]
    Timeout { addr: SocketAddr, timeout: Duration },
    #[error("cannot trust kaas's TLS certificate {}: {source}", path.display())]
    Trust { path: PathBuf, source: TlsError },
    #[error("TLS handshake with kaas at {addr} failed: {reason}")]
    Tls { addr: SocketAddr, reason: String },
    #[error("HTTP request to kaas at {addr} failed: {reason}")]
    Http { addr: SocketAddr, reason: String },
}

/// GETs `/readyz` from the local kaas described by `cfg`, giving up after `timeout`.
pub async fn probe_ready(cfg: &Config, timeout: Duration) -> Result<ReadyReport, HealthcheckError> {
    let addr = local_addr(cfg.server.listen);
    match tokio::time::timeout(timeout, probe(cfg, addr)).await {
        Ok(result) => result,
        Err(_) => Err(HealthcheckError::Timeout { addr, timeout }),
    }
}

/// The address to dial for a listener bound to `listen`.
fn local_addr(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

async fn probe(cfg: &Config, addr: SocketAddr) -> Result<ReadyReport, HealthcheckError> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| HealthcheckError::Connect {
            addr,
            reason: io_reason(&e),
        })?;
    let host = cfg
        .public_host()
        .filter(|_| cfg.server.public_url.is_some());
    let authority = match &host {
        Some(h) if h.contains(':') => format!("[{h}]:{}", addr.port()),
        Some(h) => format!("{h}:{}", addr.port()),
        None => addr.to_string(),
    };

    if !cfg.uses_tls() {
        return request(TokioIo::new(tcp), addr, &authority).await;
    }

    let cert_path = match cfg.server.tls.mode {
        TlsMode::Files => cfg.server.tls.cert.clone().unwrap_or_default(),
        TlsMode::Auto | TlsMode::Off => self_signed_paths(&cfg.data.dir).0,
    };
    let client = client_config_trusting(&cert_path).map_err(|source| HealthcheckError::Trust {
        path: cert_path.clone(),
        source,
    })?;
    let mut client = (*client).clone();
    // We speak HTTP/1.1 only; offering h2 would let the server pick a protocol we can't use.
    client.alpn_protocols = vec![b"http/1.1".to_vec()];
    let server_name = match host.as_deref().map(ServerName::try_from) {
        Some(Ok(name)) => name.to_owned(),
        _ => ServerName::IpAddress(addr.ip().into()),
    };
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(client))
        .connect(server_name, tcp)
        .await
        .map_err(|e| HealthcheckError::Tls {
            addr,
            reason: e.to_string(),
        })?;
    request(TokioIo::new(tls), addr, &authority).await
}

async fn request<S>(
    io: TokioIo<S>,
    addr: SocketAddr,
    authority: &str,
) -> Result<ReadyReport, HealthcheckError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let http_err = |e: &dyn std::fmt::Display| HealthcheckError::Http {
        addr,
        reason: e.to_string(),
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(io)
        .await
        .map_err(|e| http_err(&e))?;
    // The connection task ends when the response is read and `sender` is dropped.
    let conn_task = tokio::spawn(conn);

    let req = http::Request::get(READY_PATH)
        .header(http::header::HOST, authority)
        .header(http::header::ACCEPT, "application/json")
        .header(
            http::header::USER_AGENT,
            concat!("kaas-healthcheck/", env!("CARGO_PKG_VERSION")),
        )
        .body(Empty::<Bytes>::new())
        .map_err(|e| http_err(&e))?;
    let response = sender.send_request(req).await.map_err(|e| http_err(&e))?;
    let status = response.status().as_u16();
    let bytes = Limited::new(response.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
        .map_err(|e| http_err(&e))?
        .to_bytes();
    drop(sender);
    conn_task.abort();

    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
    });
    Ok(ReadyReport { status, body })
}

/// "connection refused" rather than "Connection refused (os error 111)".
fn io_reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        k @ (K::ConnectionRefused
        | K::ConnectionReset
        | K::TimedOut
        | K::AddrNotAvailable
        | K::PermissionDenied) => k.to_string(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::get;
    use hyper_util::rt::TokioExecutor;
    use hyper_util::server::conn::auto;
    use hyper_util::service::TowerToHyperService;

    fn app() -> Router {
        Router::new().route(
            "/readyz",
            get(|| async {
                axum::Json(serde_json::json!({"status": "ready", "checks": {"db": "ok"}}))
            }),
        )
    }

    async fn listener() -> (tokio::net::TcpListener, SocketAddr) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        (l, addr)
    }

    #[tokio::test]
    async fn plain_http() {
        let (l, addr) = listener().await;
        tokio::spawn(async move { axum::serve(l, app()).await });
        let mut cfg = Config::default();
        cfg.server.listen = addr;
        let report = probe_ready(&cfg, Duration::from_secs(5)).await.unwrap();
        assert!(report.is_ready());
        assert_eq!(report.body["status"], "ready");
    }

    #[tokio::test]
    async fn non_ready_status_is_reported_not_an_error() {
        let (l, addr) = listener().await;
        let app = Router::new().route(
            "/readyz",
            get(|| async { (http::StatusCode::SERVICE_UNAVAILABLE, "db closed") }),
        );
        tokio::spawn(async move { axum::serve(l, app).await });
        let mut cfg = Config::default();
        cfg.server.listen = addr;
        let report = probe_ready(&cfg, Duration::from_secs(5)).await.unwrap();
        assert_eq!(report.status, 503);
        assert_eq!(report.body, serde_json::json!("db closed"));
    }

    #[tokio::test]
    async fn tls_with_the_self_signed_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let (l, addr) = listener().await;
        // Files mode pointing at a generated self-signed pair: TLS on a loopback listener.
        let (cert, key) = self_signed_paths(dir.path());
        crate::tls::ensure_self_signed(&cert, &key, &["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        let mut cfg = Config::default();
        cfg.server.listen = addr;
        cfg.data.dir = dir.path().to_owned();
        cfg.server.tls.mode = TlsMode::Files;
        cfg.server.tls.cert = Some(cert);
        cfg.server.tls.key = Some(key);
        let server_cfg = crate::tls::server_config(&cfg).unwrap().unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(server_cfg);
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = l.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = TowerToHyperService::new(app());
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });

        let report = probe_ready(&cfg, Duration::from_secs(5)).await.unwrap();
        assert!(report.is_ready(), "{report:?}");
        assert_eq!(report.body["checks"]["db"], "ok");

        // With a public_url naming a host the certificate lacks, verification fails loudly.
        cfg.server.public_url = Some(format!("https://kaas.example:{}", addr.port()));
        let msg = probe_ready(&cfg, Duration::from_secs(5))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with(&format!("TLS handshake with kaas at {addr} failed")),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn refused_connection_names_the_address() {
        let (l, addr) = listener().await;
        drop(l);
        let mut cfg = Config::default();
        cfg.server.listen = addr;
        let msg = probe_ready(&cfg, Duration::from_secs(5))
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(
            msg,
            format!("no kaas answering at {addr}: connection refused")
        );
    }

    #[tokio::test]
    async fn silent_server_times_out() {
        let (l, addr) = listener().await;
        // Accepts but never answers.
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        });
        let mut cfg = Config::default();
        cfg.server.listen = addr;
        let msg = probe_ready(&cfg, Duration::from_millis(300))
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(
            msg,
            format!("kaas at {addr} did not answer /readyz within 300ms")
        );
    }

    #[test]
    fn unspecified_listen_dials_loopback() {
        assert_eq!(
            local_addr("0.0.0.0:8443".parse().unwrap()),
            "127.0.0.1:8443".parse().unwrap()
        );
        assert_eq!(
            local_addr("[::]:8443".parse().unwrap()),
            "[::1]:8443".parse().unwrap()
        );
        assert_eq!(
            local_addr("10.0.0.1:8443".parse().unwrap()),
            "10.0.0.1:8443".parse().unwrap()
        );
    }
}
