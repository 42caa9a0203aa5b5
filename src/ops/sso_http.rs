//! kaas's HTTP client for identity providers: redirects not followed (the protocol forbids
//! it for these endpoints), a 15-second timeout, and the provider's own CA bundle trusted
//! instead of the system's when it has one; and the discovery document read through it.

use std::path::Path;
use std::time::Duration;

use openidconnect::core::CoreProviderMetadata;
use openidconnect::{HttpRequest, HttpResponse, IssuerUrl};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

/// One request to the provider through reqwest (redirects are not followed: the protocol
/// forbids it for these endpoints).
pub(super) async fn send(
    client: reqwest::Client,
    req: HttpRequest,
) -> Result<HttpResponse, HttpError> {
    let req = reqwest::Request::try_from(req).map_err(|e| HttpError(e.to_string()))?;
    let res = client.execute(req).await.map_err(|e| {
        // The innermost cause says what happened ("Connection refused", a certificate
        // problem); the outer ones repeat the URL.
        let mut why = e.to_string();
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            why = c.to_string();
            cause = c.source();
        }
        HttpError(why)
    })?;
    let mut out = http::Response::builder().status(res.status());
    for (k, v) in res.headers() {
        out = out.header(k, v);
    }
    let body = res
        .bytes()
        .await
        .map_err(|e| HttpError(e.to_string()))?
        .to_vec();
    out.body(body).map_err(|e| HttpError(e.to_string()))
}

pub(super) fn http_client(ca_file: Option<&Path>) -> anyhow::Result<reqwest::Client> {
    let pem = match ca_file {
        Some(path) => Some(
            std::fs::read(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?,
        ),
        None => None,
    };
    http_client_pem(pem.as_deref())
        .map_err(|e| anyhow::anyhow!("{}: {e}", ca_file.unwrap_or(Path::new("")).display()))
}

/// The HTTP client of a provider: its own CA bundle (PEM) trusted instead of the system's
/// when given. An error says what is wrong with the bundle.
pub(crate) fn http_client_pem(ca_pem: Option<&[u8]>) -> Result<reqwest::Client, String> {
    // Installed once per process; an earlier installation (tests) is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(15));
    if let Some(pem) = ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| e.to_string())?;
        if certs.is_empty() {
            return Err("no PEM certificate found".into());
        }
        b = b.tls_certs_only(certs);
    }
    b.build().map_err(|e| e.to_string())
}

/// Reads `issuer`'s discovery document (and checks that it names the same issuer); the
/// reason in words, with its causes, when that fails.
pub(crate) async fn discover(
    issuer: &str,
    http: &reqwest::Client,
) -> Result<CoreProviderMetadata, String> {
    let url = IssuerUrl::new(issuer.to_string()).map_err(|e| format!("issuer URL: {e}"))?;
    CoreProviderMetadata::discover_async(url, &|r| send(http.clone(), r))
        .await
        .map_err(|e| {
            let mut why = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                let c_text = c.to_string();
                if !why.contains(&c_text) {
                    why = format!("{why}: {c_text}");
                }
                cause = c.source();
            }
            why
        })
}
