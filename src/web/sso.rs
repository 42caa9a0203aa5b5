//! Single sign-on pages: `/sso/{provider}/start` sends the browser to the identity provider,
//! `/sso/{provider}/callback` is where it comes back (see `ops::sso`). Both are GETs, as the
//! protocol's redirects are. The callback's `state` (single use, kept server-side) names
//! the sign-in, and the `kaas_sso` cookie set at the start ties it to the browser that
//! started it, so a link carrying someone else's code and state signs nobody in.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::error::WebResult;
use super::flash::Flash;
use super::mfa::signed_in_redirect;
use super::redirect;
use crate::http::cookie::{read_cookie, set_cookie};
use crate::http::origin::ClientOrigin;
use crate::http::redirect::is_local_path;
use crate::ops::OpsError;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct StartQuery {
    #[serde(default)]
    next: String,
}

/// The cookie carrying the browser's single sign-on secret.
const BROWSER_COOKIE: &str = "kaas_sso";
/// How long it is kept: as long as a started sign-in may take at the provider.
const BROWSER_COOKIE_MAX_AGE: u64 = 600;

pub async fn start(
    State(s): State<AppState>,
    ClientOrigin(o): ClientOrigin,
    Path(provider): Path<String>,
    Query(q): Query<StartQuery>,
    headers: HeaderMap,
) -> WebResult<Response> {
    let next = if is_local_path(&q.next) {
        q.next
    } else {
        "/".into()
    };
    let browser = read_cookie(&headers, BROWSER_COOKIE);
    match s.ops.sso_start(&provider, &next, browser, &o).await {
        Ok(started) => {
            let mut res = Redirect::to(&started.url).into_response();
            // SameSite=Lax: sent on the provider's top-level redirect back to the callback.
            if let Some(c) = set_cookie(
                BROWSER_COOKIE,
                &started.browser,
                BROWSER_COOKIE_MAX_AGE,
                s.secure_cookies,
            ) {
                res.headers_mut().append(header::SET_COOKIE, c);
            }
            Ok(res)
        }
        Err(OpsError::Unavailable(msg)) => Ok(redirect(&s, "/login", Flash::error(msg))),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    #[serde(default)]
    code: String,
    #[serde(default)]
    state: String,
    /// Set instead of `code` when the provider refused (the person cancelled, say).
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

pub async fn callback(
    State(s): State<AppState>,
    ClientOrigin(o): ClientOrigin,
    Path(provider): Path<String>,
    Query(q): Query<CallbackQuery>,
    headers: HeaderMap,
) -> WebResult<Response> {
    if !q.error.is_empty() || q.code.is_empty() {
        let why = if q.error_description.is_empty() {
            q.error
        } else {
            q.error_description
        };
        let why: String = why.chars().take(200).collect();
        return Ok(redirect(
            &s,
            "/login",
            Flash::error(format!(
                "The identity provider did not sign you in ({why})."
            )),
        ));
    }
    let browser = read_cookie(&headers, BROWSER_COOKIE);
    match s
        .ops
        .sso_finish(&provider, &q.code, &q.state, browser, &o)
        .await
    {
        Ok((done, next)) => {
            let to = if is_local_path(&next) {
                next
            } else {
                "/".into()
            };
            let hello = Flash::ok(format!("Signed in as {}.", done.user.email));
            Ok(signed_in_redirect(&s, &done, &to, hello))
        }
        Err(
            OpsError::Unauthenticated(msg) | OpsError::Forbidden(msg) | OpsError::Unavailable(msg),
        ) => Ok(redirect(&s, "/login", Flash::error(msg))),
        Err(e) => Err(e.into()),
    }
}
