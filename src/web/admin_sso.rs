//! Identity providers, for platform administrators: the list (the config file's marked and
//! read-only), a form to add one, the same form to change one (the client secret blank =
//! keep) and removing one. The form is flat: scopes and allowed domains are typed as words,
//! the group mapping as one `group, organization, role` line each. The provider's own rules
//! and the issuer's discovery are `ops::sso_admin`'s; a refusal comes back next to its field.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error::WebResult;
use super::extract::{Admin, AdminPost, NoFields, SignedIn};
use super::flash::Flash;
use super::view::{FormState, Layout};
use super::{redirect, refused};
use crate::domain::OrgRole;
use crate::domain::sso::{AccountPolicy, GroupMapping};
use crate::http::Id;
use crate::ops::sso_admin::{NewSsoProvider, SsoProviderSettings, SsoProviderView};
use crate::state::AppState;

#[derive(Template, WebTemplate)]
#[template(path = "admin_sso.html")]
pub struct ProvidersView {
    pub l: Layout,
    pub providers: Vec<SsoProviderView>,
}

pub async fn list(State(s): State<AppState>, Admin(who): Admin) -> WebResult<ProvidersView> {
    Ok(ProvidersView {
        l: who.layout("Sign-in providers", "admin-sso"),
        providers: s.ops.list_sso_providers(&who.actor)?,
    })
}

#[derive(Template, WebTemplate)]
#[template(path = "admin_sso_form.html")]
pub struct ProviderEdit {
    pub l: Layout,
    /// `None` for a new provider.
    pub editing: Option<String>,
    /// The sign-in callback URL to register at the provider.
    pub callback: String,
    pub form: FormState,
}

fn edit_page(
    s: &AppState,
    who: &SignedIn,
    editing: Option<String>,
    form: FormState,
) -> ProviderEdit {
    let title = match &editing {
        Some(id) => format!("Provider {id}"),
        None => "New sign-in provider".to_string(),
    };
    let id = editing.clone().unwrap_or_else(|| "<id>".to_string());
    ProviderEdit {
        l: who.layout(title, "admin-sso"),
        callback: format!("{}/sso/{id}/callback", s.public_url.trim_end_matches('/')),
        editing,
        form,
    }
}

/// The form as typed (every field text; the checkbox present when ticked).
#[derive(Deserialize, Default)]
pub struct ProviderForm {
    #[serde(default)]
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    issuer: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    client_secret: String,
    #[serde(default)]
    scopes: String,
    #[serde(default)]
    ca_pem: String,
    #[serde(default)]
    accounts: String,
    #[serde(default)]
    allowed_domains: String,
    #[serde(default)]
    sso_only_linked: Option<String>,
    #[serde(default)]
    groups_claim: String,
    #[serde(default)]
    groups: String,
}

fn words(s: &str) -> Vec<String> {
    s.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// A form showing `p` (the secret never).
fn form_of(p: &SsoProviderView) -> FormState {
    FormState::new("provider")
        .keep("id", &p.id)
        .keep("name", &p.name)
        .keep("issuer", &p.issuer)
        .keep("client_id", &p.client_id)
        .secret("client_secret")
        .keep("scopes", p.scopes.join(" "))
        .keep("ca_pem", p.ca_pem.clone().unwrap_or_default())
        .keep("accounts", p.accounts.as_str())
        .keep("allowed_domains", p.allowed_domains.join(" "))
        .keep("sso_only_linked", if p.sso_only_linked { "on" } else { "" })
        .keep("groups_claim", p.groups_claim.clone().unwrap_or_default())
        .keep(
            "groups",
            p.groups
                .iter()
                .map(|g| format!("{}, {}, {}", g.group, g.org, g.role.as_str()))
                .collect::<Vec<_>>()
                .join("\n"),
        )
}

/// The settings typed, and the form to show again (with errors of what could not be read).
fn parse(f: ProviderForm) -> (String, SsoProviderSettings, FormState) {
    let linked = f.sso_only_linked.is_some();
    let mut form = FormState::new("provider")
        .keep("id", &f.id)
        .keep("name", &f.name)
        .keep("issuer", &f.issuer)
        .keep("client_id", &f.client_id)
        .secret("client_secret")
        .keep("scopes", &f.scopes)
        .keep("ca_pem", &f.ca_pem)
        .keep("accounts", &f.accounts)
        .keep("allowed_domains", &f.allowed_domains)
        .keep("sso_only_linked", if linked { "on" } else { "" })
        .keep("groups_claim", &f.groups_claim)
        .keep("groups", &f.groups);
    let accounts = match f.accounts.as_str() {
        "open" => AccountPolicy::Open,
        "domains" => AccountPolicy::Domains,
        "invited" | "" => AccountPolicy::Invited,
        _ => {
            form.error("accounts", "Choose one of the listed policies");
            AccountPolicy::Invited
        }
    };
    let mut groups = Vec::new();
    for (n, line) in f.groups.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parts: Vec<&str> = line.split(',').map(str::trim).collect();
        let role = match parts.get(2).copied() {
            Some("member") => Some(OrgRole::Member),
            Some("admin") => Some(OrgRole::Admin),
            Some("owner") => Some(OrgRole::Owner),
            _ => None,
        };
        match (parts.first(), parts.get(1), role, parts.len()) {
            (Some(g), Some(o), Some(role), 3) => groups.push(GroupMapping {
                group: g.to_string(),
                org: o.to_string(),
                role,
            }),
            _ => {
                form.error(
                    "groups",
                    format!(
                        "Line {}: write group, organization, role (member, admin or owner)",
                        n + 1
                    ),
                );
                break;
            }
        }
    }
    let settings = SsoProviderSettings {
        name: f.name,
        issuer: f.issuer,
        client_id: f.client_id,
        client_secret: Some(f.client_secret).filter(|c| !c.is_empty()),
        scopes: words(&f.scopes),
        ca_pem: Some(f.ca_pem),
        accounts,
        allowed_domains: words(&f.allowed_domains),
        sso_only_linked: linked,
        groups_claim: Some(f.groups_claim),
        groups,
    };
    (f.id, settings, form)
}

pub async fn new_page(State(s): State<AppState>, Admin(who): Admin) -> ProviderEdit {
    let form = FormState::new("provider")
        .keep("scopes", "openid email profile")
        .keep("accounts", "invited");
    edit_page(&s, &who, None, form)
}

pub async fn show(
    State(s): State<AppState>,
    Admin(who): Admin,
    Id(id): Id<String>,
) -> WebResult<Response> {
    let p = s.ops.get_sso_provider(&who.actor, &id)?;
    if p.read_only() {
        return Ok(redirect(
            &s,
            "/admin/sso",
            Flash::error(format!(
                "The provider {id} is from the config file; change it there."
            )),
        ));
    }
    Ok(edit_page(&s, &who, Some(p.id.clone()), form_of(&p)).into_response())
}

pub async fn create(
    State(s): State<AppState>,
    AdminPost(who, f): AdminPost<ProviderForm>,
) -> WebResult<Response> {
    let (id, settings, form) = parse(f);
    if form.has_errors() {
        let page = edit_page(&s, &who, None, form);
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    }
    let input = NewSsoProvider {
        id,
        name: settings.name,
        issuer: settings.issuer,
        client_id: settings.client_id,
        client_secret: settings.client_secret.unwrap_or_default(),
        scopes: settings.scopes,
        ca_pem: settings.ca_pem,
        accounts: settings.accounts,
        allowed_domains: settings.allowed_domains,
        sso_only_linked: settings.sso_only_linked,
        groups_claim: settings.groups_claim,
        groups: settings.groups,
    };
    match s.ops.create_sso_provider(&who.actor, input).await {
        Ok(p) => Ok(redirect(
            &s,
            "/admin/sso",
            Flash::ok(format!(
                "Provider {} added: its button is on the sign-in page.",
                p.name
            )),
        )),
        Err(e) => {
            let (status, form) = refused(e, form)?;
            Ok((status, edit_page(&s, &who, None, form)).into_response())
        }
    }
}

pub async fn update(
    State(s): State<AppState>,
    Id(id): Id<String>,
    AdminPost(who, f): AdminPost<ProviderForm>,
) -> WebResult<Response> {
    let (_, settings, form) = parse(f);
    let form = form.keep("id", &id);
    if form.has_errors() {
        let page = edit_page(&s, &who, Some(id), form);
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    }
    match s.ops.update_sso_provider(&who.actor, &id, settings).await {
        Ok(p) => Ok(redirect(
            &s,
            "/admin/sso",
            Flash::ok(format!("Provider {} saved.", p.name)),
        )),
        Err(e) => {
            let (status, form) = refused(e, form)?;
            Ok((status, edit_page(&s, &who, Some(id), form)).into_response())
        }
    }
}

pub async fn delete(
    State(s): State<AppState>,
    Id(id): Id<String>,
    AdminPost(who, _): AdminPost<NoFields>,
) -> WebResult<Response> {
    s.ops.delete_sso_provider(&who.actor, &id)?;
    Ok(redirect(
        &s,
        "/admin/sso",
        Flash::ok(format!(
            "Provider {id} removed: its button is gone from the sign-in page."
        )),
    ))
}
