//! Cookies, read and written in one place. kaas sets only its own cookies (the session and
//! the console's flash), all `HttpOnly; SameSite=Lax; Path=/`, with `Secure` when served
//! over TLS; so the name of each job is here: [`read_cookie`] reads one,
//! [`session_set_cookie`] and [`session_clear_cookie`] write the session's, [`set_cookie`]
//! any other.

use axum::http::{HeaderMap, HeaderValue, header};

use crate::state::AppState;

/// The value of the request's cookie called `name` (the first, if sent twice).
pub fn read_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value for one of kaas's cookies; `max_age` 0 deletes it. `None` when the
/// value cannot be a header (it never comes from a client).
pub fn set_cookie(name: &str, value: &str, max_age: u64, secure: bool) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    ))
    .ok()
}

/// The `Set-Cookie` that signs this browser in with the session secret, for `max_age`
/// seconds (the same for the API's login and the console's).
pub fn session_set_cookie(state: &AppState, secret: &str, max_age: u64) -> Option<HeaderValue> {
    set_cookie(state.cookie_name(), secret, max_age, state.secure_cookies)
}

/// The `Set-Cookie` that removes the session cookie (sign-out).
pub fn session_clear_cookie(state: &AppState) -> Option<HeaderValue> {
    set_cookie(state.cookie_name(), "", 0, state.secure_cookies)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_named_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; kaas_session=s3"),
        );
        h.append(
            header::COOKIE,
            HeaderValue::from_static("kaas_session=later"),
        );
        assert_eq!(read_cookie(&h, "kaas_session"), Some("s3"));
        assert_eq!(read_cookie(&h, "a"), Some("1"));
        assert_eq!(read_cookie(&h, "kaas"), None);
    }

    #[test]
    fn cookies_are_http_only_and_secure_over_tls() {
        let c = set_cookie("n", "v", 60, true).unwrap();
        assert_eq!(
            c.to_str().unwrap(),
            "n=v; Path=/; HttpOnly; SameSite=Lax; Max-Age=60; Secure"
        );
        let c = set_cookie("n", "", 0, false).unwrap();
        assert_eq!(
            c.to_str().unwrap(),
            "n=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"
        );
    }
}
