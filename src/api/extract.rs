//! Request extractors with the API's error shape: JSON bodies (content type checked, size and
//! nesting limited, objects only, unknown fields and type errors named by field), queries
//! and the caller's identity (with the CSRF header on cookie calls that change something);
//! and how the shared extractors' refusals look in the API. Cookies, the client's origin,
//! typed path ids and the CSRF checks come from `crate::http`.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::ApiError;
use crate::domain::TokenScope;
use crate::http::csrf::{self, CsrfFault};
use crate::http::limits::{JsonDepth, json_depth_within};
use crate::http::{Refusal, origin, read_cookie};
use crate::ops::{Actor, AuthVia, Ops};

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
        let depth = req
            .extensions()
            .get::<JsonDepth>()
            .copied()
            .unwrap_or(JsonDepth::DEFAULT);
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
        if !json_depth_within(&bytes, depth.0) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "too_deep",
                format!(
                    "the body nests arrays and objects more than {} deep",
                    depth.0
                ),
            ));
        }
        parse_json(&bytes).map(Body)
    }
}

/// Every request body of the API is a JSON object. serde would also fill a struct from an
/// array of its fields in order (`[null, null]`), which no client means and the document
/// does not allow.
fn require_object(bytes: &[u8]) -> Result<(), ApiError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'{') || serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_err() {
        // An object, or not JSON at all (which parsing reports).
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid",
        "the body must be a JSON object",
    ))
}

/// Parses JSON, naming the field at fault in the error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    require_object(bytes)?;
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
            .and_then(bearer_credentials)
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
    let secret = read_cookie(&parts.headers, cookie_name).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "sign in first, or send an API token as Authorization: Bearer",
        )
    })?;
    let (actor, session) = ops.authenticate_session(secret, &origin)?;
    if !is_safe(&parts.method) {
        csrf::check_token(&session, csrf::header_token(parts)).map_err(csrf_refused)?;
    }
    Ok(actor)
}

/// The token in an `Authorization: Bearer <token>` value. The scheme name is
/// case-insensitive (RFC 7235 §2.1), so `bearer` and `BEARER` work too.
fn bearer_credentials(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim_start().split_once(' ')?;
    let token = rest.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
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
            || read_cookie(&parts.headers, state.cookie_name()).is_some();
        if !has_credentials {
            return Ok(MaybeAuthed(None));
        }
        authenticate(&state.ops, parts, state.cookie_name()).map(|a| MaybeAuthed(Some(a)))
    }
}

/// A CSRF fault as the API says it.
fn csrf_refused(f: CsrfFault) -> ApiError {
    let message = match f {
        CsrfFault::Missing => "missing X-CSRF-Token header",
        CsrfFault::Mismatch => "the X-CSRF-Token header does not match this session",
        CsrfFault::CrossSite => "the request was sent from another site",
    };
    ApiError::new(StatusCode::FORBIDDEN, "csrf", message)
}

/// How the API shows the shared extractors' refusals (its [`crate::http::Surface`]).
pub fn refusal(r: Refusal) -> axum::response::Response {
    use axum::response::IntoResponse;
    match r {
        // A malformed id is simply not found.
        Refusal::NotFound(detail) => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("not found ({detail})"),
        ),
    }
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::bearer_credentials;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for v in ["Bearer abc", "bearer abc", "BEARER  abc ", "bEaReR abc"] {
            assert_eq!(bearer_credentials(v), Some("abc"), "{v}");
        }
        for v in ["Basic abc", "Bearer", "Bearer ", "Bearerabc", "Token abc"] {
            assert_eq!(bearer_credentials(v), None, "{v}");
        }
    }
}
