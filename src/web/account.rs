//! The caller's own account: profile name, password, sessions (the current one marked) and
//! API tokens (a new token's secret is shown on the creating response only).

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error::WebResult;
use super::extract::{NoFields, Post, SignedIn};
use super::flash::Flash;
use super::view::{FormState, Layout};
use super::{redirect, refused};
use crate::domain::{SessionId, TokenId, TokenScope};
use crate::http::Id;
use crate::ops::OpsError;
use crate::ops::auth::PasswordChange;
use crate::ops::console::AccountPage;
use crate::ops::tokens::{CreatedToken, NewToken};
use crate::ops::users::ProfilePatch;
use crate::state::AppState;

#[derive(Template, WebTemplate)]
#[template(path = "account.html")]
pub struct AccountView {
    pub l: Layout,
    pub p: AccountPage,
    pub form: FormState,
}

pub async fn show(State(s): State<AppState>, who: SignedIn) -> WebResult<AccountView> {
    Ok(AccountView {
        l: who.layout("Account", "account"),
        p: s.ops.console_account(&who.actor)?,
        form: FormState::new(""),
    })
}

fn again(s: &AppState, who: &SignedIn, e: OpsError, form: FormState) -> WebResult<Response> {
    let (status, form) = refused(e, form)?;
    render(s, who, status, form)
}

fn render(
    s: &AppState,
    who: &SignedIn,
    status: StatusCode,
    form: FormState,
) -> WebResult<Response> {
    let page = AccountView {
        l: who.layout("Account", "account"),
        p: s.ops.console_account(&who.actor)?,
        form,
    };
    Ok((status, page).into_response())
}

#[derive(Deserialize)]
pub struct ProfileForm {
    name: String,
}

pub async fn profile(
    State(s): State<AppState>,
    Post(who, f): Post<ProfileForm>,
) -> WebResult<Response> {
    let form = FormState::new("profile").keep("name", &f.name);
    match s
        .ops
        .update_profile(&who.actor, ProfilePatch { name: f.name })
    {
        Ok(_) => Ok(redirect(&s, "/account", Flash::ok("Your name was saved."))),
        Err(e) => again(&s, &who, e, form),
    }
}

#[derive(Deserialize)]
pub struct PasswordForm {
    current_password: String,
    new_password: String,
}

pub async fn password(
    State(s): State<AppState>,
    Post(who, f): Post<PasswordForm>,
) -> WebResult<Response> {
    let form = FormState::new("password")
        .secret("current_password")
        .secret("new_password");
    let input = PasswordChange {
        current_password: f.current_password,
        new_password: f.new_password,
    };
    match s.ops.change_password(&who.actor, input).await {
        Ok(done) => Ok(redirect(
            &s,
            "/account",
            Flash::ok(format!("Password changed: {done}.")),
        )),
        Err(e) => again(&s, &who, e, form),
    }
}

pub async fn revoke_session(
    State(s): State<AppState>,
    Id(id): Id<SessionId>,
    Post(who, _): Post<NoFields>,
) -> WebResult<Response> {
    s.ops.revoke_session(&who.actor, id)?;
    if crate::ops::AuthVia::Session(id) == who.actor.via {
        return Ok(redirect(&s, "/login", Flash::ok("You have signed out.")));
    }
    Ok(redirect(
        &s,
        "/account#sessions",
        Flash::ok("The session was signed out."),
    ))
}

#[derive(Template, WebTemplate)]
#[template(path = "token_created.html")]
pub struct TokenCreated {
    pub l: Layout,
    pub t: CreatedToken,
}

#[derive(Deserialize)]
pub struct TokenForm {
    name: String,
    scope: TokenScope,
    #[serde(default)]
    days: String,
    #[serde(default)]
    current_password: String,
}

pub async fn create_token(
    State(s): State<AppState>,
    Post(who, f): Post<TokenForm>,
) -> WebResult<Response> {
    let scope = match f.scope {
        TokenScope::ReadOnly => "read-only",
        TokenScope::ReadWrite => "read-write",
    };
    let mut form = FormState::new("token")
        .keep("name", &f.name)
        .keep("scope", scope)
        .keep("expires_in_days", &f.days)
        .secret("current_password");
    let days = super::number(&mut form, "expires_in_days", &f.days);
    if form.has_errors() {
        return render(&s, &who, StatusCode::UNPROCESSABLE_ENTITY, form);
    }
    let input = NewToken {
        name: f.name,
        scope: f.scope,
        expires_in_days: days,
        current_password: f.current_password,
    };
    match s.ops.create_token(&who.actor, input).await {
        Ok(t) => Ok(TokenCreated {
            l: who.layout("API token created", "account"),
            t,
        }
        .into_response()),
        Err(e) => again(&s, &who, e, form),
    }
}

pub async fn revoke_token(
    State(s): State<AppState>,
    Id(id): Id<TokenId>,
    Post(who, _): Post<NoFields>,
) -> WebResult<Response> {
    s.ops.revoke_token(&who.actor, id)?;
    Ok(redirect(
        &s,
        "/account#tokens",
        Flash::ok("The API token was revoked."),
    ))
}
