//! Where a request came from, for the audit log and login throttling: the socket peer and
//! the user agent. Behind a reverse proxy the peer is the proxy, so the client is taken from
//! `X-Forwarded-For`, but only when the peer is one of the configured trusted proxies
//! (`server.trusted_proxies`, installed on the router as a [`TrustedProxies`] extension):
//! anyone else could write any address there and escape per-address throttling.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;

use crate::domain::netaddr::IpNet;
use crate::ops::Origin;

/// The proxies whose `X-Forwarded-For` is believed. Without this extension on the router
/// (or with an empty list) the socket peer is the client.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Arc<Vec<IpNet>>);

impl TrustedProxies {
    /// From `server.trusted_proxies` entries (addresses or CIDR networks).
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<TrustedProxies, String> {
        let nets = entries
            .iter()
            .map(|e| e.as_ref().parse::<IpNet>())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TrustedProxies(Arc::new(nets)))
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(ip))
    }

    /// The client of a request from `peer`: walking `X-Forwarded-For` from the right (the
    /// hop nearest kaas), the first address that is not a trusted proxy. An entry that is
    /// not an address ends the walk at the last hop believed.
    pub fn client(&self, peer: IpAddr, headers: &axum::http::HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else {
                return client;
            };
            client = ip;
            if !self.trusts(ip) {
                return ip;
            }
        }
        client
    }
}

/// An `X-Forwarded-For` entry: an address, possibly with a port (`[v6]:port`, `v4:port`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
}

/// The client's address and user agent. Without a socket (tests driving the router with
/// `oneshot`) the address is loopback.
pub fn origin(parts: &Parts) -> Origin {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |c| c.0.ip());
    let ip = match parts.extensions.get::<TrustedProxies>() {
        Some(t) => t.client(peer, &parts.headers),
        None => peer,
    };
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
        let t = TrustedProxies::parse(&["10.0.0.0/8", "192.0.2.1"]).unwrap();
        let h = xff(&["203.0.113.9"]);
        assert_eq!(t.client(ip("10.1.2.3"), &h), ip("203.0.113.9"));
        assert_eq!(t.client(ip("198.51.100.4"), &h), ip("198.51.100.4"));
        assert_eq!(
            TrustedProxies::default().client(ip("10.1.2.3"), &h),
            ip("10.1.2.3")
        );
        // No header: the proxy itself.
        assert_eq!(t.client(ip("10.1.2.3"), &HeaderMap::new()), ip("10.1.2.3"));
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let t = TrustedProxies::parse(&["10.0.0.0/8", "192.0.2.1"]).unwrap();
        // A client that writes its own X-Forwarded-For cannot pick its address.
        let h = xff(&["1.1.1.1, 203.0.113.9", "10.0.0.2"]);
        assert_eq!(t.client(ip("192.0.2.1"), &h), ip("203.0.113.9"));
        let h = xff(&["[2001:db8::5]:4711, 203.0.113.9:80"]);
        assert_eq!(t.client(ip("10.0.0.1"), &h), ip("203.0.113.9"));
        let h = xff(&["2001:db8::5, 10.0.0.3"]);
        assert_eq!(t.client(ip("10.0.0.1"), &h), ip("2001:db8::5"));
        // Garbage stops the walk at the last hop believed.
        let h = xff(&["203.0.113.9, unknown"]);
        assert_eq!(t.client(ip("10.0.0.1"), &h), ip("10.0.0.1"));
        // Only proxies: the leftmost.
        let h = xff(&["10.0.0.7, 10.0.0.3"]);
        assert_eq!(t.client(ip("10.0.0.1"), &h), ip("10.0.0.7"));
    }
}
