//! The console's half of `kaas login --device` (RFC 8628): a signed-in person enters (or
//! follows a link carrying) the terminal's user code, sees what asks, and approves or denies
//! it. Approving hands the terminal an API token acting for this person.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error::WebResult;
use super::extract::{Post, SignedIn};
use super::refused;
use super::view::{FormState, Layout};
use crate::ops::shell_login::PendingGrant;
use crate::state::AppState;

#[derive(Template, WebTemplate)]
#[template(path = "device.html")]
pub struct DevicePage {
    pub l: Layout,
    pub form: FormState,
    /// The grant found for the code, to approve or deny.
    pub grant: Option<PendingGrant>,
    /// What was decided, once decided.
    pub done: Option<String>,
}

#[derive(Deserialize)]
pub struct CodeQuery {
    #[serde(default)]
    user_code: String,
}

fn page(
    who: &SignedIn,
    form: FormState,
    grant: Option<PendingGrant>,
    done: Option<String>,
) -> DevicePage {
    DevicePage {
        l: who.layout("Sign in a device", "account"),
        form,
        grant,
        done,
    }
}

pub async fn show(
    State(s): State<AppState>,
    who: SignedIn,
    Query(q): Query<CodeQuery>,
) -> WebResult<Response> {
    let form = FormState::new("").keep("user_code", &q.user_code);
    if q.user_code.trim().is_empty() {
        return Ok(page(&who, form, None, None).into_response());
    }
    match s.ops.pending_device_grant(&who.actor, &q.user_code) {
        Ok(g) => Ok(page(&who, form, Some(g), None).into_response()),
        Err(e) => {
            let (status, form) = refused(e, form)?;
            Ok((status, page(&who, form, None, None)).into_response())
        }
    }
}

#[derive(Deserialize)]
pub struct DecisionForm {
    user_code: String,
    /// `approve` or `deny`; absent: only look the code up.
    #[serde(default)]
    decision: String,
}

pub async fn decide(
    State(s): State<AppState>,
    Post(who, f): Post<DecisionForm>,
) -> WebResult<Response> {
    let form = FormState::new("").keep("user_code", &f.user_code);
    let result = match f.decision.as_str() {
        "approve" => s
            .ops
            .decide_device_grant(&who.actor, &f.user_code, true)
            .map(|()| Some("The device is signed in as you. Return to your terminal.".to_string())),
        "deny" => s
            .ops
            .decide_device_grant(&who.actor, &f.user_code, false)
            .map(|()| Some("The sign-in was denied.".to_string())),
        _ => Ok(None),
    };
    match result {
        Ok(Some(done)) => Ok(page(&who, FormState::new(""), None, Some(done)).into_response()),
        Ok(None) => match s.ops.pending_device_grant(&who.actor, &f.user_code) {
            Ok(g) => Ok(page(&who, form, Some(g), None).into_response()),
            Err(e) => {
                let (status, form) = refused(e, form)?;
                Ok((status, page(&who, form, None, None)).into_response())
            }
        },
        Err(e) => {
            let (status, form) = refused(e, form)?;
            Ok((status, page(&who, form, None, None)).into_response())
        }
    }
}
