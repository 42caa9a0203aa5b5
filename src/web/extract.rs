//! Extractors that guard console routes. [`SignedIn`] is the session user (or a redirect to
//! `/login?next=`); [`Admin`] is a platform administrator (anyone else gets 404, so the
//! pages' existence is not advertised); [`Post`] and [`AdminPost`] are the only way to get a
//! form body together with the caller, and both refuse a form without this session's CSRF
//! token; [`PublicForm`] is a form sent before sign-in (setup, login, invitation), checked
//! to come from this site; [`OpenForm`] is a form anyone may send (accepting an invitation),
//! with the CSRF token required when the sender is signed in. Only the session cookie signs
//! in to the console: API tokens are for the API. The CSRF checks themselves, cookies and
//! the client's origin are the shared ones in `crate::http`.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{Method, header};
use serde::de::DeserializeOwned;

use super::error::WebError;
use super::flash::Flash;
use super::view::Layout;
use crate::domain::Session;
use crate::http::{csrf, origin, read_cookie};
use crate::ops::users::MeView;
use crate::ops::{Actor, OpsError, Origin};
use crate::state::AppState;

/// The signed-in user of a console request.
pub struct SignedIn {
    pub actor: Actor,
    pub session: Session,
    pub me: MeView,
    pub flash: Option<Flash>,
}

impl SignedIn {
    /// The page frame; `section` marks the current navigation entry.
    pub fn layout(&self, title: impl Into<String>, section: impl ToString) -> Layout {
        Layout {
            title: title.into(),
            name: self.me.user.name.clone(),
            email: self.me.user.email.clone(),
            platform_admin: self.actor.platform_admin,
            orgs: self.me.organizations.clone(),
            csrf: self.session.csrf_token.clone(),
            flash: self.flash.clone(),
            section: section.to_string(),
            v: super::assets::version(),
        }
    }
}

fn signed_in(parts: &Parts, state: &AppState) -> Result<SignedIn, WebError> {
    let next = (parts.method == Method::GET)
        .then(|| parts.uri.path_and_query().map(|p| p.as_str().to_string()))
        .flatten();
    let secret = read_cookie(&parts.headers, state.cookie_name())
        .ok_or(WebError::SignIn { next: next.clone() })?;
    let (actor, session) = match state.ops.authenticate_session(secret, &origin(parts)) {
        Ok(v) => v,
        Err(OpsError::Unauthenticated(_)) => return Err(WebError::SignIn { next }),
        Err(e) => return Err(e.into()),
    };
    let me = state.ops.me(&actor)?;
    Ok(SignedIn {
        actor,
        session,
        me,
        flash: parts.extensions.get::<Flash>().cloned(),
    })
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = WebError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        signed_in(parts, state)
    }
}

/// The session user if there is one (a stale cookie counts as none).
pub struct MaybeSignedIn(pub Option<SignedIn>);

impl FromRequestParts<AppState> for MaybeSignedIn {
    type Rejection = WebError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        match signed_in(parts, state) {
            Ok(s) => Ok(MaybeSignedIn(Some(s))),
            Err(WebError::SignIn { .. }) => Ok(MaybeSignedIn(None)),
            Err(e) => Err(e),
        }
    }
}

/// A signed-in platform administrator; everyone else is told the page does not exist.
pub struct Admin(pub SignedIn);

impl FromRequestParts<AppState> for Admin {
    type Rejection = WebError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        let s = signed_in(parts, state)?;
        if !s.actor.platform_admin {
            return Err(WebError::NotFound);
        }
        Ok(Admin(s))
    }
}

/// A form must come from this site (see `http::csrf::same_site`).
fn same_site(parts: &Parts) -> Result<(), WebError> {
    csrf::same_site(parts).map_err(|_| WebError::Csrf)
}

async fn form_body<T: DeserializeOwned>(
    req: Request,
    state: &AppState,
) -> Result<(T, String), WebError> {
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(WebError::BadRequest("expected a form submission".into()));
    }
    let bytes = axum::body::Bytes::from_request(req, state)
        .await
        .map_err(|e| WebError::BadRequest(format!("could not read the form: {e}")))?;
    let token = form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == csrf::CSRF_FIELD)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let value = serde_urlencoded::from_bytes(&bytes)
        .map_err(|e| WebError::BadRequest(format!("the form is incomplete: {e}")))?;
    Ok((value, token))
}

/// A form posted by the signed-in user, with this session's CSRF token in `_csrf`.
pub struct Post<T>(pub SignedIn, pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for Post<T> {
    type Rejection = WebError;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, WebError> {
        let (parts, body) = req.into_parts();
        same_site(&parts)?;
        let who = signed_in(&parts, state)?;
        let (value, token) = form_body(Request::from_parts(parts, body), state).await?;
        csrf::check_token(&who.session, &token).map_err(|_| WebError::Csrf)?;
        Ok(Post(who, value))
    }
}

/// [`Post`] by a platform administrator (404 for everyone else).
pub struct AdminPost<T>(pub SignedIn, pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for AdminPost<T> {
    type Rejection = WebError;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, WebError> {
        let Post(who, value) = Post::<T>::from_request(req, state).await?;
        if !who.actor.platform_admin {
            return Err(WebError::NotFound);
        }
        Ok(AdminPost(who, value))
    }
}

/// A form sent before sign-in; its own secret (setup or invitation token, or the password)
/// is the credential, and it must come from this site.
pub struct PublicForm<T>(pub Origin, pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for PublicForm<T> {
    type Rejection = WebError;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, WebError> {
        let (parts, body) = req.into_parts();
        same_site(&parts)?;
        let o = origin(&parts);
        let (value, _) = form_body(Request::from_parts(parts, body), state).await?;
        Ok(PublicForm(o, value))
    }
}

/// A form anyone may send: from a visitor, a [`PublicForm`]; from a signed-in user (a stale
/// cookie counts as none), also a session form like any [`Post`], so it needs the CSRF token.
pub struct OpenForm<T>(pub Option<SignedIn>, pub Origin, pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for OpenForm<T> {
    type Rejection = WebError;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, WebError> {
        let (parts, body) = req.into_parts();
        let who = match signed_in(&parts, state) {
            Ok(s) => Some(s),
            Err(WebError::SignIn { .. }) => None,
            Err(e) => return Err(e),
        };
        same_site(&parts)?;
        let o = origin(&parts);
        let (value, token) = form_body(Request::from_parts(parts, body), state).await?;
        if let Some(w) = &who {
            csrf::check_token(&w.session, &token).map_err(|_| WebError::Csrf)?;
        }
        Ok(OpenForm(who, o, value))
    }
}

/// A form with no fields but the CSRF token (revoke, remove, sign out).
#[derive(serde::Deserialize)]
pub struct NoFields {}

/// A deletion's confirmation: the object's name, typed by the user (checked without JS).
#[derive(serde::Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    pub confirm: String,
}
