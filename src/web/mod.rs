//! The HTML console: server-rendered pages (askama) that work without JavaScript, forms that
//! post and redirect with a flash, and embedded static assets. [`router`] is the whole route
//! table, grouped by what guards each route. Every handler extracts, calls one `ops::`
//! function and maps the result; authorization stays in `ops`, CSRF in the extractors.
//!
//! Headers: a strict Content-Security-Policy (no inline script or style), frame denial and
//! `Referrer-Policy: same-origin` (set for the whole app), so the setup and invitation
//! tokens that arrive in URLs leak to no other site; those pages move them into POSTed
//! fields. (Not `no-referrer`: under it a form post's `Origin` is `null`, which the CSRF
//! check refuses.)

pub mod account;
pub mod admin;
pub mod admin_plans;
pub mod admin_sso;
pub mod assets;
pub mod audit;
pub mod auth;
pub mod billing;
pub mod billing_chart;
pub mod billing_view;
pub mod device;
pub mod error;
pub mod extract;
pub mod flash;
pub mod members;
pub mod mfa;
pub mod orgs;
pub mod plan_form;
pub mod projects;
pub mod sso;
pub mod view;
pub mod workspaces;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::ops::OpsError;
use crate::state::AppState;
use error::WebError;
use flash::Flash;
use view::FormState;

pub const CSP: &str = "default-src 'self'; img-src 'self' data:; form-action 'self'; \
                       frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

/// An embedded asset, or the console's 404 page.
async fn static_file(
    axum::extract::Path((v, file)): axum::extract::Path<(String, String)>,
) -> Result<Response, WebError> {
    assets::response(&v, &file).ok_or(WebError::NotFound)
}

/// The console's route table.
pub fn router() -> Router<AppState> {
    Router::new()
        // Open: assets, and the pages before sign-in (their own secret is the credential).
        .route("/static/{version}/{*file}", get(static_file))
        .route("/setup", get(auth::setup_page).post(auth::setup))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/sso/{provider}/start", get(sso::start))
        .route("/sso/{provider}/callback", get(sso::callback))
        // The second step of a sign-in: the pending token from the first is the credential.
        .route("/login/code", post(mfa::login_code))
        .route("/invite", get(auth::invite_page).post(auth::accept_invite))
        // Signed in (`SignedIn`/`Post`: session cookie; forms carry the CSRF token).
        // What each may see or change is decided by `ops` from their roles.
        .route("/", get(orgs::dashboard))
        .route("/logout", post(auth::logout))
        .route("/status", get(orgs::statuses))
        .route("/orgs", post(orgs::create_org))
        .route("/orgs/{org}", get(orgs::show))
        .route("/orgs/{org}/rename", post(orgs::rename))
        .route("/orgs/{org}/delete", post(orgs::delete))
        .route("/orgs/{org}/audit", get(audit::org))
        .route("/orgs/{org}/audit/export", get(audit::org_export))
        .route("/orgs/{org}/workspaces", post(orgs::create_workspace))
        .route("/orgs/{org}/members/{user}/role", post(orgs::change_role))
        .route(
            "/orgs/{org}/members/{user}/remove",
            post(orgs::remove_member),
        )
        .route("/orgs/{org}/invitations", post(orgs::invite))
        .route(
            "/orgs/{org}/invitations/{id}/revoke",
            post(orgs::revoke_invitation),
        )
        .route("/workspaces/{ws}", get(workspaces::show))
        .route(
            "/workspaces/{ws}/projects",
            post(workspaces::create_project),
        )
        .route("/workspaces/{ws}/members", post(workspaces::put_member))
        .route(
            "/workspaces/{ws}/members/{user}/remove",
            post(workspaces::remove_member),
        )
        .route("/workspaces/{ws}/plan", post(workspaces::change_plan))
        .route("/workspaces/{ws}/delete", post(workspaces::delete))
        .route("/workspaces/{ws}/kubeconfig", post(workspaces::kubeconfig))
        // Platform administrators only (`AdminPost` inside), like the pages below.
        .route("/workspaces/{ws}/nodes", post(workspaces::assign_node))
        .route(
            "/workspaces/{ws}/nodes/{node}/release",
            post(workspaces::release_node),
        )
        .route("/projects/{prj}", get(projects::show))
        .route("/projects/{prj}/quota", post(projects::update_quota))
        .route("/projects/{prj}/delete", post(projects::delete))
        .route("/projects/{prj}/members", post(projects::put_member))
        .route(
            "/projects/{prj}/members/{user}/remove",
            post(projects::remove_member),
        )
        // Billing: organization admins and owners read, owners change the account,
        // platform administrators void (all decided in `ops`).
        .route("/orgs/{org}/billing", get(billing::overview))
        .route(
            "/orgs/{org}/billing/account",
            get(billing::account).post(billing::save_account),
        )
        .route("/orgs/{org}/billing/draft", get(billing::draft))
        .route(
            "/orgs/{org}/billing/draft/download",
            get(billing::draft_download),
        )
        .route("/orgs/{org}/billing/usage", get(billing::usage))
        .route("/invoices/{id}", get(billing::invoice))
        .route("/invoices/{id}/download", get(billing::invoice_download))
        .route("/invoices/{id}/void", post(billing::void))
        .route("/account", get(account::show))
        .route("/account/profile", post(account::profile))
        .route("/account/password", post(account::password))
        .route(
            "/account/sessions/{id}/revoke",
            post(account::revoke_session),
        )
        .route("/account/tokens", post(account::create_token))
        .route("/account/tokens/{id}/revoke", post(account::revoke_token))
        .route("/device", get(device::show).post(device::decide))
        .route("/account/mfa", post(mfa::start))
        .route("/account/mfa/confirm", post(mfa::confirm))
        .route("/account/mfa/recovery-codes", post(mfa::recovery_codes))
        .route("/account/mfa/disable", post(mfa::disable))
        // Platform administrators (`Admin`/`AdminPost`: anyone else gets 404).
        .route("/admin", get(admin::orgs))
        .route("/admin/orgs/{org}/limits", post(admin::set_limits))
        .route("/admin/users", get(admin::users).post(admin::create_user))
        .route("/admin/users/{user}", post(admin::update_user))
        .route("/admin/users/{user}/name", post(admin::rename_user))
        .route("/admin/users/{user}/password", post(admin::reset_password))
        .route("/admin/users/{user}/mfa/reset", post(mfa::admin_reset))
        .route(
            "/admin/plans",
            get(admin_plans::list).post(admin_plans::create),
        )
        .route("/admin/plans/new", get(admin_plans::new_page))
        .route(
            "/admin/plans/{plan}",
            get(admin_plans::edit_page).post(admin_plans::update),
        )
        .route("/admin/plans/{plan}/delete", post(admin_plans::delete))
        .route("/admin/sso", get(admin_sso::list).post(admin_sso::create))
        .route("/admin/sso/new", get(admin_sso::new_page))
        .route(
            "/admin/sso/{provider}",
            get(admin_sso::show).post(admin_sso::update),
        )
        .route("/admin/sso/{provider}/delete", post(admin_sso::delete))
        .route("/admin/audit", get(audit::admin))
        .route("/admin/audit/export", get(audit::admin_export))
        .route("/admin/nodes", get(admin::nodes))
        .route("/admin/host", get(admin::host))
        .fallback(error::not_found)
        .layer(axum::middleware::from_fn(flash::layer))
        // How the shared extractors (typed path ids) refuse here: the HTML error page.
        .layer(axum::Extension(crate::http::Surface(error::refusal)))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ))
}

/// 303 See Other to `to`, carrying a flash for the next page.
pub fn redirect(s: &AppState, to: &str, flash: Flash) -> Response {
    let mut res = axum::response::Redirect::to(to).into_response();
    if let Some(c) = flash.cookie(s.secure_cookies) {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    res
}

/// Turns a refusal of a submitted form into the form shown again with the error next to its
/// field (or on top of the form) and the status that says why. Failures that are not about
/// the form (not found, a server fault) become error pages.
pub fn refused(e: OpsError, form: FormState) -> Result<(StatusCode, FormState), WebError> {
    refused_as(e, form, &[])
}

/// [`refused`] for a form whose fields are not named as the use case's input: `fields` maps
/// an input field to the form field that stands for it (`tax_rate_bp` is typed as the
/// percentage `tax_rate`). The error is shown as `ops` said it, by its kind and field.
pub fn refused_as(
    e: OpsError,
    mut form: FormState,
    fields: &[(&str, &'static str)],
) -> Result<(StatusCode, FormState), WebError> {
    let status = match e {
        OpsError::Invalid { field, message } => {
            let field = fields
                .iter()
                .find(|(input, _)| *input == field)
                .map_or(field, |(_, shown)| shown);
            form.error(field, error::capitalise(&message));
            StatusCode::UNPROCESSABLE_ENTITY
        }
        OpsError::Conflict(m) => {
            form = form.fail(error::capitalise(&m));
            StatusCode::CONFLICT
        }
        OpsError::Forbidden(m) => {
            form = form.fail(error::capitalise(&m));
            StatusCode::FORBIDDEN
        }
        OpsError::Unauthenticated(m) => {
            form = form.fail(error::capitalise(&m));
            StatusCode::UNAUTHORIZED
        }
        OpsError::Throttled(d) => {
            form = form.fail(error::try_again_in(d.as_secs()));
            StatusCode::TOO_MANY_REQUESTS
        }
        other => return Err(other.into()),
    };
    Ok((status, form))
}

/// A whole-number type a form field fills (`u32` counts, `u64` quantities).
pub trait Whole: std::str::FromStr<Err = std::num::ParseIntError> + std::fmt::Display {
    const MAX: Self;
}

impl Whole for u32 {
    const MAX: u32 = u32::MAX;
}

impl Whole for u64 {
    const MAX: u64 = u64::MAX;
}

/// Parses an optional whole number typed in a form. Something that is not one, or one too
/// large for what the field counts, is an error next to the field (never clamped: a number
/// the user did not type must not be stored).
pub fn number<N: Whole>(form: &mut FormState, field: &'static str, raw: &str) -> Option<N> {
    let t = raw.trim();
    if t.is_empty() {
        return None;
    }
    match t.replace('_', "").parse::<N>() {
        Ok(n) => Some(n),
        Err(e) if *e.kind() == std::num::IntErrorKind::PosOverflow => {
            form.error(field, format!("Enter a whole number up to {}", N::MAX));
            None
        }
        Err(_) => {
            form.error(field, "Enter a whole number");
            None
        }
    }
}

/// [`number`] for a field that must be filled: blank is an error next to it too. The value
/// returned with an error is never used (the form is shown again).
pub fn required<N: Whole + Default>(form: &mut FormState, field: &'static str, raw: &str) -> N {
    let v = number(form, field, raw);
    if v.is_none() && raw.trim().is_empty() {
        form.error(field, "Required");
    }
    v.unwrap_or_default()
}
