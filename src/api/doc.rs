//! The OpenAPI document's frame (title, tags, security schemes) and what every operation
//! shares: the error answers the API's common machinery gives (authentication, JSON bodies,
//! typed path ids, queries, password hashing, the host) are added here from what each
//! operation declares, so no operation can forget one and the document lists every status a
//! client can get (checked by schemathesis in CI, tests/schemathesis).

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi as _};

use super::error::{ErrorBody, ErrorDetail};

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "kaas API", description = "Kubernetes-as-a-Service appliance: organizations, workspaces (K3K virtual clusters), projects, members, plans.", version = env!("CARGO_PKG_VERSION")),
    servers((url = "/api/v1", description = "this kaas server")),
    modifiers(&Security),
    components(schemas(ErrorBody, ErrorDetail)),
    tags(
        (name = "auth", description = "Setup and signing in"),
        (name = "account", description = "The caller's profile, sessions and API tokens"),
        (name = "organizations", description = "Organizations, members and invitations"),
        (name = "workspaces", description = "Workspaces (one K3K virtual cluster each) and their members"),
        (name = "projects", description = "Projects (namespaces inside a workspace)"),
        (name = "plans", description = "Plans: quotas and limits"),
        (name = "users", description = "User administration (platform administrators)"),
        (name = "audit", description = "The audit log"),
        (name = "nodes", description = "Host nodes and dedicated nodes"),
        (name = "billing", description = "Usage, invoices and billing accounts"),
        (name = "sso", description = "Identity providers for single sign-on (platform administrators)"),
    )
)]
struct ApiDoc;

/// The document before the routes are added.
pub(super) fn frame() -> OpenApi {
    ApiDoc::openapi()
}

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut OpenApi) {
        let c = openapi.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        c.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("kaas_session"))),
        );
        openapi.security = Some(vec![
            SecurityRequirement::new("bearer", Vec::<String>::new()),
            SecurityRequirement::new("session", Vec::<String>::new()),
        ]);
    }
}

/// Operations without credentials: the token or the password in the body is the credential.
const OPEN: &[(&str, &str)] = &[
    ("post", "/setup"),
    ("post", "/auth/login"),
    // The pending sign-in's token, the password, or the device code is the credential.
    ("post", "/auth/login/code"),
    ("post", "/auth/token"),
    ("post", "/auth/device"),
    ("post", "/auth/device/token"),
    ("post", "/invitations/lookup"),
];
/// Operations whose body may be left out (every field of it is optional).
const OPTIONAL_BODY: &[(&str, &str)] = &[("post", "/auth/device")];
/// Operations where credentials are optional (a signed-in invitee, or a new account).
const OPTIONAL_AUTH: &[(&str, &str)] = &[("post", "/invitations/accept")];
/// Operations that hash a password: they wait for a hashing slot and answer 429 when none
/// comes free (`ops::secrets`); sign-in is also throttled per account.
const HASHING: &[(&str, &str)] = &[
    ("post", "/setup"),
    ("post", "/auth/login"),
    ("post", "/auth/token"),
    ("post", "/invitations/accept"),
    ("post", "/me/password"),
    ("post", "/users"),
    ("post", "/users/{user}/password"),
];
/// Operations that need the host cluster: 503 while it cannot be reached.
const NEEDS_HOST: &[(&str, &str)] = &[
    ("get", "/nodes"),
    ("get", "/workspaces/{ws}/nodes"),
    ("post", "/workspaces/{ws}/nodes"),
    ("delete", "/workspaces/{ws}/nodes/{node}"),
    ("post", "/workspaces/{ws}/kubeconfig"),
];

/// Adds to every operation the error answers the shared machinery can give it, and marks the
/// open ones.
pub(super) fn complete(doc: &mut OpenApi) {
    for (path, item) in doc.paths.paths.iter_mut() {
        let ops = [
            ("get", &mut item.get),
            ("put", &mut item.put),
            ("post", &mut item.post),
            ("delete", &mut item.delete),
            ("patch", &mut item.patch),
        ];
        for (method, op) in ops {
            if let Some(op) = op {
                complete_operation(method, path, op);
            }
        }
    }
}

fn complete_operation(method: &str, path: &str, op: &mut Operation) {
    let key = (method, path);
    let is = |list: &[(&str, &str)]| list.contains(&key);
    let params = op.parameters.as_deref().unwrap_or_default();
    let has_path = params
        .iter()
        .any(|p| matches!(p.parameter_in, ParameterIn::Path));
    let has_query = params
        .iter()
        .any(|p| matches!(p.parameter_in, ParameterIn::Query));
    let has_body = op.request_body.is_some();
    let mutates = method != "get";

    let mut add = |status: &str, why: &str| {
        op.responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| error_response(why));
    };
    if is(OPTIONAL_BODY)
        && let Some(body) = op.request_body.as_mut()
    {
        body.required = Some(utoipa::openapi::Required::False);
    }
    if is(OPEN) {
        op.security = Some(Vec::new());
    } else {
        if is(OPTIONAL_AUTH) {
            op.security = Some(vec![
                SecurityRequirement::default(),
                SecurityRequirement::new("bearer", Vec::<String>::new()),
                SecurityRequirement::new("session", Vec::<String>::new()),
            ]);
        }
        add(
            "401",
            "Not signed in, or the credentials are invalid or expired",
        );
        add(
            "403",
            "Not allowed: the caller's role, a read-only token, or a missing CSRF header",
        );
    }
    if has_body {
        add("400", "The body is not well-formed JSON");
        add("413", "The body is larger than server.max_body_bytes");
        add("415", "The body is not sent as application/json");
    }
    if has_query {
        add("400", "A query parameter is invalid");
    }
    if has_body || has_query || mutates {
        add("422", "A value is invalid; `field` names it");
    }
    if has_path {
        add("404", "No such resource, or not visible to the caller");
    }
    if mutates && !is(OPEN) {
        add("409", "The current state does not allow it");
    }
    if is(HASHING) {
        add(
            "429",
            "Too many attempts, or too many passwords being checked at once; see Retry-After",
        );
    }
    if is(NEEDS_HOST) {
        add("503", "The host cluster cannot be reached");
    }
}

fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build(),
    )
}
