//! One-shot messages after a redirect ("Workspace web is being created"). The message rides
//! in a short-lived cookie (HttpOnly, SameSite=Lax, 60 s) signed with HMAC-SHA256 under a
//! key made at process start, so nothing else can plant text on a kaas page; a restart just
//! drops a flash in flight. [`layer`] reads it into the request and clears it once a page
//! has shown it. Chosen over the session because flashes also follow sign-out and sign-in
//! failures, where there is no session, and because it needs no store writes.

use std::sync::OnceLock;

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use sha2::{Digest, Sha256};

use crate::http::cookie::{read_cookie, set_cookie};

const NAME: &str = "kaas_flash";
const SECURE_NAME: &str = "__Host-kaas_flash";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ok,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    pub kind: Kind,
    pub message: String,
}

impl Flash {
    pub fn ok(message: impl Into<String>) -> Flash {
        Flash {
            kind: Kind::Ok,
            message: message.into(),
        }
    }

    pub fn error(message: impl Into<String>) -> Flash {
        Flash {
            kind: Kind::Error,
            message: message.into(),
        }
    }

    pub fn is_error(&self) -> bool {
        self.kind == Kind::Error
    }

    /// The `Set-Cookie` value that carries this flash to the next page.
    pub fn cookie(&self, secure: bool) -> Option<HeaderValue> {
        let kind = match self.kind {
            Kind::Ok => "ok",
            Kind::Error => "error",
        };
        let payload = format!("{kind}.{}", B64.encode(self.message.as_bytes()));
        let value = format!("{payload}.{}", B64.encode(mac(payload.as_bytes())));
        let name = if secure { SECURE_NAME } else { NAME };
        set_cookie(name, &value, 60, secure)
    }

    fn parse(value: &str) -> Option<Flash> {
        let (payload, sig) = value.rsplit_once('.')?;
        let sig = B64.decode(sig).ok()?;
        if !constant_eq(&sig, &mac(payload.as_bytes())) {
            return None;
        }
        let (kind, msg) = payload.split_once('.')?;
        let kind = match kind {
            "ok" => Kind::Ok,
            "error" => Kind::Error,
            _ => return None,
        };
        let message = String::from_utf8(B64.decode(msg).ok()?).ok()?;
        Some(Flash { kind, message })
    }
}

/// The flash that came with this request, if any (put there by [`layer`]).
pub struct Incoming(pub Option<Flash>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Incoming {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Incoming(parts.extensions.get::<Flash>().cloned()))
    }
}

fn key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(rand::random)
}

/// HMAC-SHA256 (RFC 2104) over the payload with the process key.
fn mac(msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    k[..32].copy_from_slice(key());
    let pad = |b: u8| k.map(|x| x ^ b);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Middleware: moves a valid flash cookie into the request's extensions, and clears the
/// cookie once an HTML page (not a redirect) has been answered.
pub async fn layer(mut req: Request, next: Next) -> Response {
    let found = [(SECURE_NAME, true), (NAME, false)]
        .into_iter()
        .find_map(|(n, secure)| read_cookie(req.headers(), n).map(|v| (n, secure, v)))
        .map(|(n, secure, v)| (n, secure, Flash::parse(v)));
    if let Some((_, _, Some(f))) = &found {
        req.extensions_mut().insert(f.clone());
    }
    let mut res = next.run(req).await;
    let shown = !res.status().is_redirection()
        && res
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/html"));
    if let Some((name, secure, _)) = found
        && shown
        && let Some(v) = set_cookie(name, "", 0, secure)
    {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flash_round_trips_and_a_forged_one_is_ignored() {
        let f = Flash::ok("Workspace “web” <created>");
        let c = f.cookie(false).unwrap();
        let v = c.to_str().unwrap();
        let value = v.split(';').next().unwrap().split_once('=').unwrap().1;
        assert_eq!(Flash::parse(value), Some(f));
        let forged = format!("ok.{}.{}", B64.encode("hi"), B64.encode([0u8; 32]));
        assert_eq!(Flash::parse(&forged), None);
        assert_eq!(Flash::parse("garbage"), None);
    }
}
