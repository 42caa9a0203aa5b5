//! Where a request came from, for the audit log and login throttling: the socket peer
//! (kaas is not meant to sit behind a proxy) and the user agent.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;

use crate::ops::Origin;

/// The client's address and user agent. Without a socket (tests driving the router with
/// `oneshot`) the address is loopback.
pub fn origin(parts: &Parts) -> Origin {
    let ip = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |c| c.0.ip());
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    Origin { ip, user_agent }
}

/// [`origin`] as an extractor.
pub struct ClientOrigin(pub Origin);

impl<S: Send + Sync> FromRequestParts<S> for ClientOrigin {
    type Rejection = Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(ClientOrigin(origin(parts)))
    }
}
