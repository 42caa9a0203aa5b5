//! The certificate a virtual cluster's API server really serves. K3K passes `spec.tlsSANs`
//! to k3s through a config Secret that k3s reads only when it starts, so "the Cluster says
//! so" proves nothing: the reconciler reads the served certificate's names to decide whether
//! the servers must be restarted, and to confirm that they now cover every address.

use std::sync::Arc;
use std::time::Duration;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;

/// How long one look at the served certificate may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The subject alternative names (DNS names lower-cased, IPs as text) of the certificate
/// served at `host:port`. Nothing is sent after the handshake.
pub async fn served_names(host: &str, port: u16) -> Result<Vec<String>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptToRead(provider)))
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from(host.trim_matches(['[', ']']).to_string())
        .map_err(|e| format!("{host} is no TLS server name: {e}"))?;
    let look = async {
        let tcp = TcpStream::connect((host.trim_matches(['[', ']']), port))
            .await
            .map_err(|e| format!("connecting to {host}:{port}: {e}"))?;
        let tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake with {host}:{port}: {e}"))?;
        let leaf = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .ok_or_else(|| format!("{host}:{port} presented no certificate"))?
            .clone();
        crate::tls::subject_alt_names(&leaf)
    };
    tokio::time::timeout(TIMEOUT, look)
        .await
        .map_err(|_| format!("{host}:{port} did not complete a TLS handshake in time"))?
}

/// The names of `wanted` that `served` does not cover (exact, case-insensitive: kaas puts
/// plain names and IPs in `tlsSANs`, no wildcards).
pub fn missing<'a>(served: &[String], wanted: &'a [String]) -> Vec<&'a str> {
    wanted
        .iter()
        .map(|w| w.trim())
        .filter(|w| !w.is_empty())
        .filter(|w| !served.iter().any(|s| s.eq_ignore_ascii_case(w)))
        .collect()
}

/// The `tls-san` entries of a k3s `config.yaml` as K3K writes it (a YAML list under
/// `tls-san:`); an unreadable file lists nothing, so it counts as stale.
pub fn config_tls_sans(config_yaml: &str) -> Vec<String> {
    serde_yaml::from_str::<serde_yaml::Value>(config_yaml)
        .ok()
        .and_then(|v| v.get("tls-san").cloned())
        .and_then(|v| match v {
            serde_yaml::Value::Sequence(items) => Some(
                items
                    .iter()
                    .filter_map(|i| i.as_str().map(|s| s.to_ascii_lowercase()))
                    .collect(),
            ),
            serde_yaml::Value::String(one) => Some(vec![one.to_ascii_lowercase()]),
            _ => None,
        })
        .unwrap_or_default()
}

/// Accepts whatever certificate the server presents, so that its names can be read; the
/// handshake signatures are still checked. NB: only for reading names — nothing is sent
/// over such a connection.
#[derive(Debug)]
struct AcceptToRead(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptToRead {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::{config_tls_sans, missing};

    #[test]
    fn the_names_k3s_is_told_to_serve_are_read_from_its_config() {
        let config = "cluster-init: true\ntls-san:\n- 127.0.0.1\n- Kaas.Example\ntoken: x\n";
        assert_eq!(config_tls_sans(config), ["127.0.0.1", "kaas.example"]);
        assert!(config_tls_sans("token: x").is_empty());
        assert!(config_tls_sans(": not yaml [").is_empty());
    }

    #[test]
    fn missing_names_are_compared_without_case_and_blanks_are_ignored() {
        let served = vec!["kaas.example.com".to_string(), "10.0.0.5".to_string()];
        let wanted = vec![
            "KAAS.example.com".to_string(),
            " ".to_string(),
            "10.0.0.5".to_string(),
            "new.example.com".to_string(),
        ];
        assert_eq!(missing(&served, &wanted), ["new.example.com"]);
    }
}
