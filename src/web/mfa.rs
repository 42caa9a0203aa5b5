//! Two-step sign-in in the console: the code page that follows a right password (with the
//! QR code when the account must enrol), the recovery codes shown once, setting it up,
//! renewing recovery codes and turning it off from the account page, and an administrator's
//! reset. The QR code is drawn by kaas as an SVG image inline (`data:`), never fetched.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;

use super::error::WebResult;
use super::extract::{AdminPost, NoFields, Post, PublicForm, SignedIn};
use super::flash::Flash;
use super::view::{Bare, FormState, Layout};
use super::{redirect, refused};
use crate::domain::UserId;
use crate::http::redirect::is_local_path;
use crate::http::{Id, session_set_cookie};
use crate::ops::OpsError;
use crate::ops::auth::LoggedIn;
use crate::ops::mfa::{CodeInput, ConfirmCode, Enrolment, PasswordConfirm, SignIn};
use crate::state::AppState;

/// The QR code as an `img` source the Content-Security-Policy allows (`img-src data:`).
fn qr_src(e: &Enrolment) -> String {
    format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(e.qr_svg())
    )
}

fn local_or_home(next: &str) -> &str {
    if is_local_path(next) { next } else { "/" }
}

/// Sets the session cookie exactly as the API's sign-in does, and goes on to `to`.
pub fn signed_in_redirect(s: &AppState, done: &LoggedIn, to: &str, flash: Flash) -> Response {
    let mut res = redirect(s, to, flash);
    with_cookie(s, done, &mut res);
    res
}

fn with_cookie(s: &AppState, done: &LoggedIn, res: &mut Response) {
    let max_age = s.ops.settings.session_absolute_timeout.as_secs();
    if let Some(c) = session_set_cookie(s, &done.secret, max_age) {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
}

/// Where a right password leads: signed in and on to `to`, or the second step.
pub fn after_password(s: &AppState, step: SignIn, to: &str, flash: Flash) -> Response {
    match step {
        SignIn::Done(done) => signed_in_redirect(s, &done, to, flash),
        SignIn::SecondFactor(c) => code_page(
            c.pending_token,
            to.to_string(),
            c.enrolment,
            FormState::new(""),
        )
        .into_response(),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "login_code.html")]
pub struct CodePage {
    pub b: Bare,
    pub pending_token: String,
    pub next: String,
    pub enrolment: Option<Enrolment>,
    pub qr: String,
    pub form: FormState,
}

fn code_page(
    pending_token: String,
    next: String,
    enrolment: Option<Enrolment>,
    form: FormState,
) -> CodePage {
    CodePage {
        b: Bare::new("Two-step sign-in", None),
        pending_token,
        next: if is_local_path(&next) {
            next
        } else {
            String::new()
        },
        qr: enrolment.as_ref().map(qr_src).unwrap_or_default(),
        enrolment,
        form,
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "mfa_recovery.html")]
pub struct RecoveryPage {
    pub b: Bare,
    pub codes: Vec<String>,
    pub next: String,
}

#[derive(Deserialize)]
pub struct CodeForm {
    pending_token: String,
    code: String,
    #[serde(default)]
    next: String,
}

pub async fn login_code(
    State(s): State<AppState>,
    PublicForm(o, f): PublicForm<CodeForm>,
) -> WebResult<Response> {
    let to = local_or_home(&f.next).to_string();
    let input = CodeInput {
        pending_token: f.pending_token.clone(),
        code: f.code,
    };
    match s.ops.complete_second_factor(input, &o).await {
        Ok(done) if done.recovery_codes.is_empty() => {
            let hello = Flash::ok(format!("Signed in as {}.", done.logged_in.user.email));
            Ok(signed_in_redirect(&s, &done.logged_in, &to, hello))
        }
        Ok(done) => {
            let mut res = RecoveryPage {
                b: Bare::new(
                    "Recovery codes",
                    Some(Flash::ok("Two-step sign-in is on. You are signed in.")),
                ),
                codes: done.recovery_codes,
                next: to,
            }
            .into_response();
            with_cookie(&s, &done.logged_in, &mut res);
            Ok(res)
        }
        Err(OpsError::Unauthenticated(m)) => Ok(redirect(&s, "/login", Flash::error(m))),
        Err(e) => {
            let (status, form) = refused(e, FormState::new("").secret("code"))?;
            let enrolment = s.ops.pending_enrolment(&f.pending_token)?;
            Ok((status, code_page(f.pending_token, to, enrolment, form)).into_response())
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "mfa_enrol.html")]
pub struct EnrolView {
    pub l: Layout,
    pub e: Enrolment,
    pub qr: String,
    pub form: FormState,
}

fn enrol_view(who: &SignedIn, e: Enrolment, form: FormState) -> EnrolView {
    EnrolView {
        l: who.layout("Set up two-step sign-in", "account"),
        qr: qr_src(&e),
        e,
        form,
    }
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current_password: String,
}

fn account_again(s: &AppState, who: &SignedIn, e: OpsError) -> WebResult<Response> {
    let (status, form) = refused(e, FormState::new("mfa").secret("current_password"))?;
    let page = super::account::AccountView {
        l: who.layout("Account", "account"),
        p: s.ops.console_account(&who.actor)?,
        form,
    };
    Ok((status, page).into_response())
}

pub async fn start(
    State(s): State<AppState>,
    Post(who, f): Post<PasswordForm>,
) -> WebResult<Response> {
    let input = PasswordConfirm {
        current_password: f.current_password,
    };
    match s.ops.start_mfa_enrolment(&who.actor, input).await {
        Ok(e) => Ok(enrol_view(&who, e, FormState::new("mfa")).into_response()),
        Err(e) => account_again(&s, &who, e),
    }
}

#[derive(Deserialize)]
pub struct ConfirmForm {
    code: String,
}

pub async fn confirm(
    State(s): State<AppState>,
    Post(who, f): Post<ConfirmForm>,
) -> WebResult<Response> {
    match s
        .ops
        .confirm_mfa_enrolment(&who.actor, ConfirmCode { code: f.code })
    {
        Ok(r) => Ok(RecoveryPage {
            b: Bare::new("Recovery codes", Some(Flash::ok("Two-step sign-in is on."))),
            codes: r.recovery_codes,
            next: "/account".into(),
        }
        .into_response()),
        Err(e @ OpsError::Invalid { .. }) | Err(e @ OpsError::Throttled(_)) => {
            let (status, form) = refused(e, FormState::new("mfa").secret("code"))?;
            match s.ops.mfa_enrolment_in_progress(&who.actor)? {
                Some(en) => Ok((status, enrol_view(&who, en, form)).into_response()),
                None => Ok(redirect(&s, "/account#mfa", Flash::error("Start again."))),
            }
        }
        Err(e) => account_again(&s, &who, e),
    }
}

pub async fn recovery_codes(
    State(s): State<AppState>,
    Post(who, f): Post<PasswordForm>,
) -> WebResult<Response> {
    let input = PasswordConfirm {
        current_password: f.current_password,
    };
    match s.ops.regenerate_recovery_codes(&who.actor, input).await {
        Ok(r) => Ok(RecoveryPage {
            b: Bare::new(
                "Recovery codes",
                Some(Flash::ok(
                    "New recovery codes: the old ones no longer work.",
                )),
            ),
            codes: r.recovery_codes,
            next: "/account".into(),
        }
        .into_response()),
        Err(e) => account_again(&s, &who, e),
    }
}

pub async fn disable(
    State(s): State<AppState>,
    Post(who, f): Post<PasswordForm>,
) -> WebResult<Response> {
    let input = PasswordConfirm {
        current_password: f.current_password,
    };
    match s.ops.disable_mfa(&who.actor, input).await {
        Ok(()) => Ok(redirect(
            &s,
            "/account#mfa",
            Flash::ok("Two-step sign-in is off."),
        )),
        Err(e) => account_again(&s, &who, e),
    }
}

pub async fn admin_reset(
    State(s): State<AppState>,
    Id(id): Id<UserId>,
    AdminPost(who, _): AdminPost<NoFields>,
) -> WebResult<Response> {
    match s.ops.reset_mfa(&who.actor, id) {
        Ok(()) => Ok(redirect(
            &s,
            "/admin/users",
            Flash::ok("Two-step sign-in was reset: they sign in with their password alone now."),
        )),
        Err(OpsError::Conflict(m)) => Ok(redirect(&s, "/admin/users", Flash::error(m))),
        Err(e) => Err(e.into()),
    }
}
