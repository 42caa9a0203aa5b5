//! The JSON API under `/api/v1`. [`router`] is the whole route table, grouped by resource;
//! every route is declared with its OpenAPI description next to the handler (utoipa), so the
//! document served at `/api/v1/openapi.json` is generated from the same code and cannot
//! drift. Authentication is per handler: the `Authed` extractor, or none for setup, login
//! and invitation lookups.

pub mod admin;
pub mod auth;
pub mod billing;
mod doc;
pub mod error;
pub mod extract;
pub mod issuer;
pub mod mfa;
pub mod nodes;
pub mod orgs;
pub mod shell;
pub mod sso;
pub mod workspaces;

use axum::Json;
use axum::http::StatusCode;
use axum::routing::get;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;
use error::ApiError;

/// `?cursor=&limit=` on listings.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// From a previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Rows per page: default 50, from 1 to 200.
    #[serde(default, deserialize_with = "page_limit")]
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<usize>,
}

/// The most rows one page may ask for.
pub const MAX_PAGE: usize = 200;

impl ListParams {
    pub fn limit(&self) -> usize {
        self.limit.unwrap_or(50)
    }
}

/// A page size from 1 to [`MAX_PAGE`]; outside that range the query is refused (400, naming
/// `limit`), as the document says, rather than quietly clamped.
pub(crate) fn page_limit<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<usize>, D::Error> {
    let n = usize::deserialize(d)?;
    if (1..=MAX_PAGE).contains(&n) {
        Ok(Some(n))
    } else {
        Err(serde::de::Error::custom(format!(
            "must be from 1 to {MAX_PAGE}, got {n}"
        )))
    }
}

pub(crate) fn bad_cursor(why: String) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_query",
        format!("cursor: {why}"),
    )
    .field("cursor")
}

fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(doc::frame())
        // Open: the token or the password in the body is the credential.
        .routes(routes!(auth::setup))
        .routes(routes!(auth::login))
        .routes(routes!(shell::password_token))
        .routes(routes!(shell::device_authorization))
        .routes(routes!(shell::device_token))
        .routes(routes!(auth::login_code))
        .routes(routes!(orgs::invitation_info))
        .routes(routes!(orgs::accept_invitation))
        // Signed in: the caller's own account.
        .routes(routes!(auth::logout))
        .routes(routes!(auth::me, auth::update_me))
        .routes(routes!(auth::change_password))
        .routes(routes!(auth::list_sessions))
        .routes(routes!(auth::revoke_session))
        .routes(routes!(auth::list_tokens, auth::create_token))
        .routes(routes!(auth::revoke_token))
        .routes(routes!(mfa::status))
        .routes(routes!(mfa::start))
        .routes(routes!(mfa::confirm))
        .routes(routes!(mfa::recovery_codes))
        .routes(routes!(mfa::disable))
        .routes(routes!(mfa::reset))
        // Organizations: membership decides (domain::policy).
        .routes(routes!(orgs::list_orgs, orgs::create_org))
        .routes(routes!(orgs::get_org, orgs::update_org, orgs::delete_org))
        .routes(routes!(orgs::set_limits))
        .routes(routes!(orgs::list_members))
        .routes(routes!(orgs::change_member, orgs::remove_member))
        .routes(routes!(orgs::list_invitations, orgs::invite))
        .routes(routes!(orgs::revoke_invitation))
        // Workspaces and projects: org, workspace and project roles decide.
        .routes(routes!(
            workspaces::list_workspaces,
            workspaces::create_workspace
        ))
        .routes(routes!(
            workspaces::get_workspace,
            workspaces::change_plan,
            workspaces::delete_workspace
        ))
        .routes(routes!(workspaces::issue_kubeconfig))
        .routes(routes!(issuer::issue_token))
        .routes(routes!(workspaces::list_workspace_members))
        .routes(routes!(
            workspaces::put_workspace_member,
            workspaces::remove_workspace_member
        ))
        .routes(routes!(
            workspaces::list_projects,
            workspaces::create_project
        ))
        .routes(routes!(
            workspaces::get_project,
            workspaces::update_project,
            workspaces::delete_project
        ))
        .routes(routes!(workspaces::list_project_members))
        .routes(routes!(
            workspaces::put_project_member,
            workspaces::remove_project_member
        ))
        // Plans: read for everyone signed in, write for platform administrators.
        .routes(routes!(admin::list_plans, admin::create_plan))
        .routes(routes!(
            admin::get_plan,
            admin::update_plan,
            admin::delete_plan
        ))
        // Platform administrators.
        .routes(routes!(admin::list_users, admin::create_user))
        .routes(routes!(admin::get_user, admin::update_user))
        .routes(routes!(admin::reset_password))
        .routes(routes!(admin::list_audit))
        .routes(routes!(admin::export_audit))
        .routes(routes!(admin::verify_audit))
        .routes(routes!(admin::host_status))
        .routes(routes!(sso::list_providers, sso::create_provider))
        .routes(routes!(
            sso::get_provider,
            sso::update_provider,
            sso::delete_provider
        ))
        // Nodes: platform administrators assign; workspace readers see their own.
        .routes(routes!(nodes::list_nodes))
        .routes(routes!(nodes::workspace_nodes, nodes::assign_node))
        .routes(routes!(nodes::release_node))
        // Billing: organization admins read, owners set the account, operators void.
        .routes(routes!(billing::overview))
        .routes(routes!(billing::get_account, billing::put_account))
        .routes(routes!(billing::list_invoices))
        .routes(routes!(billing::draft_invoice))
        .routes(routes!(billing::get_invoice))
        .routes(routes!(billing::void_invoice))
        .routes(routes!(billing::usage))
}

/// The OpenAPI document, as served.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = routes().split_for_parts().1;
    doc::complete(&mut doc);
    doc
}

/// The `/api/v1` router (unprefixed; `app` nests it).
pub fn router() -> axum::Router<AppState> {
    let (router, mut doc) = routes().split_for_parts();
    doc::complete(&mut doc);
    let doc = std::sync::Arc::new(doc);
    router
        .route(
            "/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { Json(doc.as_ref().clone()) }
            }),
        )
        .fallback(error::no_such_route)
        // How the shared extractors (typed path ids) refuse here: the JSON error body.
        .layer(axum::Extension(crate::http::Surface(extract::refusal)))
}
