//! TLS material for the fake API server: a self-signed CA, the serving certificate, client
//! certificates (CN = user, O = groups, as K3s issues them) and the rustls server config that
//! asks for (but does not require) a client certificate, so an anonymous caller gets a 401 from
//! the API layer instead of a TLS handshake failure.
//!
//! NB: this is a stand-in until the shared `pki` module lands; it deliberately mirrors its
//! planned interface (`issue_server_cert`, `issue_client_cert`, `client_identity`).

use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

/// A certificate and its private key, both PEM-encoded.
#[derive(Clone, Debug)]
pub struct CertPair {
    pub cert_pem: String,
    pub key_pem: String,
}

/// The fake cluster's certificate authority; it signs both the serving and client certificates
/// (K3s uses separate server and client CAs; one is enough for a test host).
pub struct CertificateAuthority {
    cert_pem: String,
    key_pem: String,
    params: CertificateParams,
}

impl CertificateAuthority {
    pub fn new(common_name: &str) -> anyhow::Result<Self> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            params,
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    fn sign(&self, params: &CertificateParams) -> anyhow::Result<CertPair> {
        let ca_key = KeyPair::from_pem(&self.key_pem)?;
        let issuer = Issuer::from_params(&self.params, &ca_key);
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        Ok(CertPair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A serving certificate valid for every name and address in `sans`.
    pub fn issue_server_cert(&self, sans: &[String]) -> anyhow::Result<CertPair> {
        let mut params = CertificateParams::new(sans.to_vec())?;
        params.distinguished_name.push(DnType::CommonName, "k3s");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(&params)
    }

    /// A client certificate: Kubernetes reads the user from CN and the groups from O.
    pub fn issue_client_cert(
        &self,
        user: &str,
        groups: &[String],
        validity: Duration,
    ) -> anyhow::Result<CertPair> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, user);
        for group in groups {
            dn.push(DnType::OrganizationName, group.as_str());
        }
        params.distinguished_name = dn;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let now = std::time::SystemTime::now();
        // Backdate a little so clocks that disagree by a few seconds still accept it.
        params.not_before = (now - Duration::from_secs(60)).into();
        params.not_after = (now + validity).into();
        self.sign(&params)
    }
}

/// The authenticated caller, read from a verified client certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientIdentity {
    pub user: String,
    pub groups: Vec<String>,
}

/// Reads CN (user) and every O (groups) from a DER certificate.
pub fn client_identity(der: &[u8]) -> Option<ClientIdentity> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let user = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    Some(ClientIdentity { user, groups })
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
