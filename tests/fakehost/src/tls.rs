//! TLS for the fake host's listener: the rustls server config that asks for (but does not
//! require) a client certificate verified against the host CA, so an anonymous caller gets
//! a 401 from the API layer instead of a handshake failure. Certificates themselves come
//! from `pki` (CN = user, one O per group, as K3s issues them).

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

pub use crate::pki::{ClientIdentity, client_identity};

/// A certificate and its private key, both PEM-encoded.
#[derive(Clone, Debug)]
pub struct CertPair {
    pub cert_pem: String,
    pub key_pem: String,
}

impl From<crate::pki::IssuedCert> for CertPair {
    fn from(issued: crate::pki::IssuedCert) -> Self {
        Self {
            cert_pem: issued.cert_pem,
            key_pem: issued.key_pem,
        }
    }
}

/// Builds the rustls server config: HTTP/2 and HTTP/1.1, client certificates verified against
/// the CA when offered.
pub fn server_config(
    ca_pem: &str,
    serving: &CertPair,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in parse_certs(ca_pem)? {
        roots.add(cert)?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()?;
    let chain = parse_certs(&serving.cert_pem)?;
    let key = parse_key(&serving.key_pem)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn parse_certs(pem: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = rustls_pemfile::certs(&mut pem.as_bytes()).collect::<Result<Vec<_>, _>>()?;
    anyhow::ensure!(!certs.is_empty(), "no certificate in PEM");
    Ok(certs)
}

fn parse_key(pem: &str) -> anyhow::Result<PrivateKeyDer<'static>> {
    rustls_pemfile::private_key(&mut pem.as_bytes())?
        .ok_or_else(|| anyhow::anyhow!("no private key in PEM"))
}
