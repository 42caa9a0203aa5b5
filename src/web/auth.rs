//! Pages before (and at the edge of) a session: first-run setup, sign-in, sign-out, and
//! accepting an invitation. The setup and invitation tokens arrive in the URL (that is how
//! links work); these pages put them in hidden fields at once, so every later request
//! carries them in a POST body, and the app-wide `Referrer-Policy: same-origin` keeps the
//! URL from leaking to other sites through links.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::error::WebResult;
use super::extract::{MaybeSignedIn, NoFields, OpenForm, Post, PublicForm};
use super::flash::Flash;
use super::mfa::after_password;
use super::view::{Bare, FormState};
use super::{redirect, refused};
use crate::http::redirect::is_local_path;
use crate::http::session_clear_cookie;
use crate::ops::OpsError;
use crate::ops::auth::LoginInput;
use crate::ops::invitations::{AcceptInvitation, InvitationInfo};
use crate::ops::mfa::SignIn;
use crate::ops::setup::SetupInput;
use crate::state::AppState;

#[derive(Template, WebTemplate)]
#[template(path = "message.html")]
pub struct MessagePage {
    pub b: Bare,
    pub heading: String,
    pub text: String,
    pub link_href: &'static str,
    pub link_text: &'static str,
}

fn gone(heading: &str, text: &str, link_href: &'static str, link_text: &'static str) -> Response {
    let page = MessagePage {
        b: Bare::new(heading, None),
        heading: heading.into(),
        text: text.into(),
        link_href,
        link_text,
    };
    (StatusCode::GONE, page).into_response()
}

#[derive(Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    token: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "setup.html")]
pub struct SetupPage {
    pub b: Bare,
    pub token: String,
    pub form: FormState,
}

fn setup_form(token: &str, form: FormState) -> SetupPage {
    SetupPage {
        b: Bare::new("Set up kaas", None),
        token: token.into(),
        form,
    }
}

fn setup_gone() -> Response {
    gone(
        "This setup link no longer works",
        "It was used, replaced by a restart of kaas, or has expired. If no administrator \
         exists yet, restart kaas for a new link, or run `kaas user create --admin` on the \
         server. Otherwise, sign in.",
        "/login",
        "Go to sign-in",
    )
}

pub async fn setup_page(
    State(s): State<AppState>,
    Query(q): Query<TokenQuery>,
) -> WebResult<Response> {
    if !s.ops.setup_token_valid(&q.token)? {
        return Ok(setup_gone());
    }
    Ok(setup_form(&q.token, FormState::new("")).into_response())
}

#[derive(Deserialize)]
pub struct SetupForm {
    token: String,
    email: String,
    name: String,
    password: String,
}

pub async fn setup(
    State(s): State<AppState>,
    PublicForm(o, f): PublicForm<SetupForm>,
) -> WebResult<Response> {
    let form = FormState::new("")
        .keep("email", &f.email)
        .keep("name", &f.name)
        .secret("password");
    let input = SetupInput {
        token: f.token.clone(),
        email: f.email,
        name: f.name,
        password: f.password,
    };
    match s.ops.setup_and_sign_in(input, &o).await {
        Ok(step) => {
            let name = match &step {
                SignIn::Done(done) => done.user.name.clone(),
                SignIn::SecondFactor(_) => String::new(),
            };
            let welcome = Flash::ok(format!(
                "Welcome, {name}. You are the platform administrator; create an organization to begin."
            ));
            Ok(after_password(&s, step, "/", welcome))
        }
        Err(OpsError::Unauthenticated(_) | OpsError::Conflict(_)) => Ok(setup_gone()),
        Err(e) => {
            let (status, form) = refused(e, form)?;
            Ok((status, setup_form(&f.token, form)).into_response())
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub b: Bare,
    pub next: String,
    pub form: FormState,
    /// Identity providers, one button each (`[[sso.providers]]`).
    pub providers: Vec<crate::ops::sso::ProviderButton>,
}

#[derive(Deserialize)]
pub struct NextQuery {
    #[serde(default)]
    next: String,
}

fn local_or_home(next: &str) -> &str {
    if is_local_path(next) { next } else { "/" }
}

pub async fn login_page(
    State(s): State<AppState>,
    MaybeSignedIn(who): MaybeSignedIn,
    super::flash::Incoming(flash): super::flash::Incoming,
    Query(q): Query<NextQuery>,
) -> Response {
    if who.is_some() {
        return Redirect::to(local_or_home(&q.next)).into_response();
    }
    LoginPage {
        b: Bare::new("Sign in", flash),
        next: if is_local_path(&q.next) {
            q.next
        } else {
            String::new()
        },
        form: FormState::new(""),
        providers: s.ops.sso_buttons(),
    }
    .into_response()
}

#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
    #[serde(default)]
    next: String,
}

pub async fn login(
    State(s): State<AppState>,
    PublicForm(o, f): PublicForm<LoginForm>,
) -> WebResult<Response> {
    let form = FormState::new("")
        .keep("email", &f.email)
        .secret("password");
    let input = LoginInput {
        email: f.email,
        password: f.password,
    };
    match s.ops.login(input, &o).await {
        Ok(step) => {
            let to = local_or_home(&f.next);
            let hello = match &step {
                SignIn::Done(done) => Flash::ok(format!("Signed in as {}.", done.user.email)),
                SignIn::SecondFactor(_) => Flash::ok(""),
            };
            Ok(after_password(&s, step, to, hello))
        }
        Err(e) => {
            let (status, form) = refused(e, form)?;
            let page = LoginPage {
                b: Bare::new("Sign in", None),
                next: if is_local_path(&f.next) {
                    f.next
                } else {
                    String::new()
                },
                form,
                providers: s.ops.sso_buttons(),
            };
            Ok((status, page).into_response())
        }
    }
}

pub async fn logout(
    State(s): State<AppState>,
    Post(who, _): Post<NoFields>,
) -> WebResult<Response> {
    s.ops.logout(&who.actor)?;
    let mut res = redirect(&s, "/login", Flash::ok("You have signed out."));
    if let Some(c) = session_clear_cookie(&s) {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(res)
}

#[derive(Template, WebTemplate)]
#[template(path = "invite.html")]
pub struct InvitePage {
    pub b: Bare,
    pub token: String,
    pub info: InvitationInfo,
    /// The signed-in user's e-mail and CSRF token, if any.
    pub signed_in_as: Option<(String, String)>,
    pub form: FormState,
}

fn invite_gone() -> Response {
    gone(
        "This invitation link no longer works",
        "It was already used, revoked, or has expired. Ask the person who invited you for a \
         new one.",
        "/",
        "Go to kaas",
    )
}

fn invite_view(
    token: String,
    info: InvitationInfo,
    who: Option<&super::extract::SignedIn>,
    form: FormState,
) -> InvitePage {
    InvitePage {
        b: Bare::new(format!("Join {}", info.org_display_name), None),
        token,
        info,
        signed_in_as: who.map(|w| (w.actor.email.clone(), w.session.csrf_token.clone())),
        form,
    }
}

pub async fn invite_page(
    State(s): State<AppState>,
    MaybeSignedIn(who): MaybeSignedIn,
    Query(q): Query<TokenQuery>,
) -> WebResult<Response> {
    match s.ops.invitation_info(&q.token) {
        Ok(info) => {
            Ok(invite_view(q.token, info, who.as_ref(), FormState::new("")).into_response())
        }
        Err(OpsError::NotFound(_)) => Ok(invite_gone()),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub struct InviteForm {
    token: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

pub async fn accept_invite(
    State(s): State<AppState>,
    OpenForm(who, o, f): OpenForm<InviteForm>,
) -> WebResult<Response> {
    if let Some(w) = &who {
        return match s
            .ops
            .accept_invitation_signed_in(&w.actor, &f.token, &o)
            .await
        {
            Ok(org) => Ok(redirect(
                &s,
                &format!("/orgs/{org}"),
                Flash::ok("You have joined the organization."),
            )),
            Err(OpsError::NotFound(_)) => Ok(invite_gone()),
            Err(e) => Err(e.into()),
        };
    }
    let form = FormState::new("")
        .keep("name", f.name.clone().unwrap_or_default())
        .secret("password");
    let input = AcceptInvitation {
        token: f.token.clone(),
        name: f.name,
        password: f.password,
    };
    match s.ops.accept_invitation_and_sign_in(input, &o).await {
        Ok((org, step)) => Ok(after_password(
            &s,
            step,
            &format!("/orgs/{org}"),
            Flash::ok("Welcome! You have joined the organization."),
        )),
        Err(OpsError::NotFound(_)) => Ok(invite_gone()),
        Err(e) => {
            let (status, form) = refused(e, form)?;
            // The form is shown again with the invitation it belongs to.
            let info = match s.ops.invitation_info(&f.token) {
                Ok(i) => i,
                Err(OpsError::NotFound(_)) => return Ok(invite_gone()),
                Err(e) => return Err(e.into()),
            };
            Ok((status, invite_view(f.token, info, None, form)).into_response())
        }
    }
}
