//! Cross-site request forgery. A request that changes something with the session cookie
//! must carry the session's CSRF token (the API's `X-CSRF-Token` header, the console's
//! `_csrf` form field), and a console form must come from this site. Bearer tokens are not
//! sent by browsers on their own, so API calls with one need neither. The extractors that
//! authenticate a state-changing request (the API's `Authed`, the console's `Post`,
//! `AdminPost`, `PublicForm` and `InviteForm`) call these checks; no handler does.

use axum::http::header;
use axum::http::request::Parts;

use crate::domain::Session;
use crate::ops::Ops;

/// The header that carries the CSRF token on API calls made with the session cookie.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The console's form field that carries it.
pub const CSRF_FIELD: &str = "_csrf";

/// What was wrong, so the API can say it precisely (the console shows one page for all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsrfFault {
    /// No token was sent.
    Missing,
    /// A token was sent, not this session's.
    Mismatch,
    /// The browser says the request came from another site.
    CrossSite,
}

/// Checks the token a request presented against its session's.
pub fn check_token(session: &Session, presented: &str) -> Result<(), CsrfFault> {
    if presented.is_empty() {
        return Err(CsrfFault::Missing);
    }
    if !Ops::csrf_token_matches(session, presented) {
        return Err(CsrfFault::Mismatch);
    }
    Ok(())
}

/// The token in the `X-CSRF-Token` header, or `""`.
pub fn header_token(parts: &Parts) -> &str {
    parts
        .headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Refuses a state-changing request that a browser says came from another site. Browsers
/// send `Sec-Fetch-Site` on every request, and it decides; older ones send only `Origin`,
/// which must then name this host. `Origin: null` is refused: it is what a sandboxed frame,
/// a `data:` page or a page under `Referrer-Policy: no-referrer` sends, so a login-CSRF
/// page would hide behind it, while kaas's own pages (served with `Referrer-Policy:
/// same-origin`) send their real origin. Tools that send neither header pass: they cannot
/// ride a victim's cookies anyway.
pub fn same_site(parts: &Parts) -> Result<(), CsrfFault> {
    let h = &parts.headers;
    if let Some(site) = h.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return match site {
            "same-origin" | "none" => Ok(()),
            _ => Err(CsrfFault::CrossSite),
        };
    }
    if let Some(o) = h.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = h.get(header::HOST).and_then(|v| v.to_str().ok());
        let o_host = o.split_once("://").map(|(_, rest)| rest);
        if host.is_none() || o_host != host {
            return Err(CsrfFault::CrossSite);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut b = Request::builder().method("POST").uri("/x");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn the_browser_decides_which_site_a_form_came_from() {
        let ok = [
            vec![("sec-fetch-site", "same-origin")],
            vec![("sec-fetch-site", "none")],
            vec![("origin", "http://kaas.test"), ("host", "kaas.test")],
            vec![],
        ];
        for h in ok {
            assert_eq!(same_site(&parts(&h)), Ok(()), "{h:?}");
        }
        let bad = [
            vec![("sec-fetch-site", "cross-site")],
            vec![
                ("sec-fetch-site", "same-site"),
                ("origin", "http://kaas.test"),
            ],
            vec![("origin", "http://evil.test"), ("host", "kaas.test")],
            vec![("origin", "http://kaas.test")],
            vec![("origin", "null"), ("host", "kaas.test")],
        ];
        for h in bad {
            assert_eq!(same_site(&parts(&h)), Err(CsrfFault::CrossSite), "{h:?}");
        }
    }
}
