//! The listener: accepts TCP, completes TLS, reads the client certificate into the
//! request's identity and serves HTTP/1.1 or HTTP/2 (kubectl uses h2) with the router.
//! Stops accepting and drops every connection when told to shut down.

use std::sync::Arc;

use axum::Router;
use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::tls::client_identity;

pub(crate) async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, _peer)) = accepted else { continue };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let router = router.clone();
                connections.spawn(async move {
                    // A failed handshake is the client's problem; nothing to report.
                    let Ok(stream) = acceptor.accept(tcp).await else { return };
                    let identity = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .and_then(|cert| client_identity(cert.as_ref()));
                    let service = router.map_request(move |mut request: Request<Incoming>| {
                        if let Some(identity) = &identity {
                            request.extensions_mut().insert(identity.clone());
                        }
                        request
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                        .await;
                });
            }
            // Reap finished connections so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    connections.abort_all();
}
