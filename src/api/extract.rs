//! Request extractors with the API's error shape: JSON bodies (content type checked, size
//! limited, unknown fields and type errors named by field), queries, path ids, the caller's
//! identity, and the client address.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::ApiError;
use crate::domain::TokenScope;
use crate::ops::{Actor, AuthVia, Ops, Origin};

/// A JSON body: `application/json` only; errors name the offending field.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "payload_too_large",
                        "the request body is too large",
                    )
                } else {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "bad_request",
                        format!("could not read the body: {e}"),
                    )
                }
            })?;
        parse_json(&bytes).map(Body)
    }
}

/// Parses JSON, naming the field at fault in the error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let inner = e.inner();
        let msg = inner.to_string();
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        // serde reports an unknown field as "unknown field `x`, expected …".
        let unknown = msg
            .strip_prefix("unknown field `")
            .and_then(|r| r.split_once('`'))
            .map(|(f, _)| f.to_string());
        let (code, field) = match (inner.classify(), unknown) {
            // The path already ends with the unknown field's name.
            (_, Some(f)) => (
                "unknown_field",
                if path.is_empty() { f } else { path.clone() },
            ),
            (serde_json::error::Category::Syntax | serde_json::error::Category::Eof, _) => {
                ("malformed_json", String::new())
            }
            _ => ("invalid", path.clone()),
        };
        // serde appends the position; the field name says more to an API user.
        let msg = match msg.rfind(" at line ") {
            Some(i) if code != "malformed_json" => msg[..i].to_string(),
            _ => msg,
        };
        let status = if code == "malformed_json" {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        let message = if field.is_empty() {
            msg
        } else {
            format!("{field}: {msg}")
        };
        let err = ApiError::new(status, code, message);
        if field.is_empty() {
            err
        } else {
            err.field(field)
        }
    })
}

/// A query string; errors name the parameter.
pub struct Q<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Q<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(q.as_bytes()));
        serde_path_to_error::deserialize(de).map(Q).map_err(|e| {
            let field = e.path().to_string();
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                format!("{field}: {}", e.inner()),
            )
            .field(field)
        })
    }
}

/// Path parameters; a malformed id is simply not found.
pub struct P<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for P<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| P(v))
            .map_err(|e| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!("not found ({})", e.body_text()),
                )
            })
    }
}

/// The client's address (the socket peer; kaas is not meant to sit behind a proxy).
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

pub struct ClientOrigin(pub Origin);

impl<S: Send + Sync> FromRequestParts<S> for ClientOrigin {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(ClientOrigin(origin(parts)))
    }
}

/// Reads the session cookie's value.
pub fn session_cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub const CSRF_HEADER: &str = "x-csrf-token";

fn is_safe(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Authenticates a request: `Authorization: Bearer <API token>`, or the session cookie
/// with the CSRF header on state-changing methods. Read-only tokens may only read.
pub fn authenticate(ops: &Ops, parts: &Parts, cookie_name: &str) -> Result<Actor, ApiError> {
    let origin = origin(parts);
    if let Some(auth) = parts.headers.get(header::AUTHORIZATION) {
        let token = auth
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    "use Authorization: Bearer <API token>",
                )
            })?;
        let actor = ops.authenticate_token(token, &origin)?;
        if matches!(actor.via, AuthVia::Token(_, TokenScope::ReadOnly)) && !is_safe(&parts.method) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this API token is read-only",
            ));
        }
        return Ok(actor);
    }
    let secret = session_cookie(parts, cookie_name).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "sign in first, or send an API token as Authorization: Bearer",
        )
    })?;
    let (actor, session) = ops.authenticate_session(secret, &origin)?;
    if !is_safe(&parts.method) {
        let presented = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if presented.is_empty() {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf",
                "missing X-CSRF-Token header",
            ));
        }
        if !Ops::csrf_token_matches(&session, presented) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf",
                "the X-CSRF-Token header does not match this session",
            ));
        }
    }
    Ok(actor)
}

/// The authenticated caller.
pub struct Authed(pub Actor);

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        authenticate(&state.ops, parts, state.cookie_name()).map(Authed)
    }
}

/// The caller if they sent credentials; `None` when they sent none (bad ones still fail).
pub struct MaybeAuthed(pub Option<Actor>);

impl FromRequestParts<AppState> for MaybeAuthed {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let has_credentials = parts.headers.contains_key(header::AUTHORIZATION)
            || session_cookie(parts, state.cookie_name()).is_some();
        if !has_credentials {
            return Ok(MaybeAuthed(None));
        }
        authenticate(&state.ops, parts, state.cookie_name()).map(|a| MaybeAuthed(Some(a)))
    }
}
