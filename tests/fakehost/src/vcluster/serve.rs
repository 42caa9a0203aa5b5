//! The HTTPS listener of one K3s server of a virtual cluster (its certificate is fixed for
//! the server's life, as K3s reads `tls-san` only at start). Like kube-apiserver (and unlike
//! the host's listener, which lets rustls verify chains), the TLS layer accepts any client
//! certificate and the authenticator decides afterwards: a certificate the cluster's client CA did not
//! sign, or an expired one, is answered 401 Unauthorized rather than a handshake failure.
//! Without a valid client certificate, a bearer token goes to the server's JWT
//! authenticator (`jwt`), if its configuration has one; a refused token is a 401 as well.

use std::sync::Arc;

use axum::Router;
use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::jwt::JwtAuthenticator;
use crate::pki;

/// Asks for a client certificate, checks only the handshake signature (proof of key
/// possession) and leaves chain, validity and usage checks to `pki::authenticate_client_cert`.
#[derive(Debug)]
struct DeferToAuthenticator {
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for DeferToAuthenticator {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // No hints: Go clients (kubectl, kaas) then send their only certificate.
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A rustls server config serving `cert_pem` (HTTP/2 and HTTP/1.1, as kube-apiserver).
pub(super) fn server_config(
    cert_pem: &str,
    key_pem: &str,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = rustls_pemfile::certs(&mut cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>()?;
    anyhow::ensure!(!chain.is_empty(), "no certificate in the serving PEM");
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_bytes())?
        .ok_or_else(|| anyhow::anyhow!("no private key in PEM"))?;
    let verifier = Arc::new(DeferToAuthenticator {
        provider: provider.clone(),
    });
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

pub(super) async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    client_ca_pem: Arc<str>,
    jwt: Option<Arc<JwtAuthenticator>>,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, _peer)) = accepted else { continue };
                let _ = tcp.set_nodelay(true);
                let acceptor = TlsAcceptor::from(tls.clone());
                let router = router.clone();
                let client_ca_pem = client_ca_pem.clone();
                let jwt = jwt.clone();
                connections.spawn(async move {
                    let Ok(stream) = acceptor.accept(tcp).await else { return };
                    let identity = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .and_then(|cert| pki::authenticate_client_cert(cert.as_ref(), &client_ca_pem, jiff::Timestamp::now()).ok());
                    // As kube-apiserver's union authenticator: the certificate first, then
                    // the bearer token.
                    let service = tower::service_fn(move |mut request: Request<Incoming>| {
                        let router = router.clone();
                        let identity = identity.clone();
                        let jwt = jwt.clone();
                        async move {
                            let who = match (identity, jwt, bearer(&request)) {
                                (Some(identity), _, _) => Some(identity),
                                (None, Some(jwt), Some(token)) => jwt.authenticate(&token).await.ok(),
                                _ => None,
                            };
                            if let Some(who) = who {
                                request.extensions_mut().insert(who);
                            }
                            router.oneshot(request).await
                        }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    connections.abort_all();
}

/// The bearer token of a request, if it carries one.
fn bearer<B>(request: &Request<B>) -> Option<String> {
    let value = request
        .headers()
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
        .then(|| token.trim().to_string())
}
