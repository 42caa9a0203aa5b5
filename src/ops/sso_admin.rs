//! Identity providers managed by platform administrators (console and API): list, add,
//! change, remove. The config file's providers are listed too but are read-only here, and
//! their ids cannot be taken. A provider is saved only once its issuer's discovery document
//! was read (with the provider's CA bundle, if any): a typo in the issuer is refused on the
//! spot, not found at someone's first sign-in. The client secret is sealed under the
//! issuer's key-encryption key (as the signing keys are) and never shown again: a change
//! that leaves it out keeps the stored one. Every change swaps the providers in use at once
//! (`SsoProviders::replace_console`), without a restart.

use jiff::Timestamp;
use openidconnect::core::CoreProviderMetadata;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::authz::require_platform_admin;
use super::sso::{Provider, ProviderSource};
use super::sso_http::{discover, http_client_pem};
use super::{Actor, Ops, OpsError, OpsResult, invalid};
use crate::config::{Secret, SsoProvider};
use crate::domain::sso::{
    AccountPolicy, GroupMapping, ProviderFields, StoredProvider, check_provider,
};
use crate::store::records;

/// The longest client secret kept.
const MAX_SECRET: usize = 1000;
/// The largest CA bundle kept.
const MAX_CA_PEM: usize = 256 * 1024;

/// Where a provider is configured, as shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProviderOrigin {
    /// `[[sso.providers]]` in the config file: read-only in the console and the API.
    ConfigFile,
    /// Added in the console or the API.
    Console,
}

/// An identity provider as the API and the console show it. The client secret is never
/// shown.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SsoProviderView {
    pub id: String,
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    /// The CA bundle (PEM) trusted for the provider's HTTPS, if one was given here.
    pub ca_pem: Option<String>,
    pub accounts: AccountPolicy,
    pub allowed_domains: Vec<String>,
    pub sso_only_linked: bool,
    pub groups_claim: Option<String>,
    pub groups: Vec<GroupMapping>,
    pub source: ProviderOrigin,
    /// When it was last saved (`null` for the config file's).
    pub updated_at: Option<Timestamp>,
}

impl SsoProviderView {
    fn configured(p: &SsoProvider) -> SsoProviderView {
        SsoProviderView {
            id: p.id.clone(),
            name: p.name.clone(),
            issuer: p.issuer.clone(),
            client_id: p.client_id.clone(),
            scopes: p.scopes.clone(),
            ca_pem: None,
            accounts: p.accounts,
            allowed_domains: p.allowed_domains.clone(),
            sso_only_linked: p.sso_only_linked,
            groups_claim: p.groups_claim.clone(),
            groups: p.groups.clone(),
            source: ProviderOrigin::ConfigFile,
            updated_at: None,
        }
    }

    fn stored(p: &StoredProvider) -> SsoProviderView {
        SsoProviderView {
            id: p.id.clone(),
            name: p.name.clone(),
            issuer: p.issuer.clone(),
            client_id: p.client_id.clone(),
            scopes: p.scopes.clone(),
            ca_pem: p.ca_pem.clone(),
            accounts: p.accounts,
            allowed_domains: p.allowed_domains.clone(),
            sso_only_linked: p.sso_only_linked,
            groups_claim: p.groups_claim.clone(),
            groups: p.groups.clone(),
            source: ProviderOrigin::Console,
            updated_at: Some(p.updated_at),
        }
    }

    /// From the config file: not changed here.
    pub fn read_only(&self) -> bool {
        self.source == ProviderOrigin::ConfigFile
    }
}

fn default_scopes() -> Vec<String> {
    vec!["openid".into(), "email".into(), "profile".into()]
}

/// A new identity provider: an id and the settings of [`SsoProviderSettings`], the client
/// secret required. (Written out rather than flattened: serde cannot refuse unknown
/// fields through a flattened struct.)
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSsoProvider {
    /// In URLs (`/sso/<id>/callback`): 1-32 lower-case letters, digits and dashes.
    #[schema(pattern = "^[a-z0-9-]{1,32}$")]
    pub id: String,
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    pub issuer: String,
    #[schema(min_length = 1)]
    pub client_id: String,
    #[schema(write_only, min_length = 1)]
    pub client_secret: String,
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub ca_pem: Option<String>,
    #[serde(default)]
    pub accounts: AccountPolicy,
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    #[serde(default)]
    pub sso_only_linked: bool,
    #[serde(default)]
    pub groups_claim: Option<String>,
    #[serde(default)]
    pub groups: Vec<GroupMapping>,
}

impl NewSsoProvider {
    fn split(self) -> (String, SsoProviderSettings) {
        (
            self.id,
            SsoProviderSettings {
                name: self.name,
                issuer: self.issuer,
                client_id: self.client_id,
                client_secret: Some(self.client_secret),
                scopes: self.scopes,
                ca_pem: self.ca_pem,
                accounts: self.accounts,
                allowed_domains: self.allowed_domains,
                sso_only_linked: self.sso_only_linked,
                groups_claim: self.groups_claim,
                groups: self.groups,
            },
        )
    }
}

/// A provider's settings. `client_secret` is write-only: required for a new provider, and
/// left out (or empty) on a change to keep the stored one.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SsoProviderSettings {
    /// On the sign-in button: "Sign in with <name>".
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// The issuer URL; its discovery document is read when saving.
    pub issuer: String,
    #[schema(min_length = 1)]
    pub client_id: String,
    #[serde(default)]
    #[schema(write_only)]
    pub client_secret: Option<String>,
    /// Default: openid, email, profile.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// PEM certificates trusted (instead of the system's) for the provider's HTTPS.
    #[serde(default)]
    pub ca_pem: Option<String>,
    #[serde(default)]
    pub accounts: AccountPolicy,
    /// For `accounts = "domains"`.
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    /// Existing accounts linked on sign-in lose their local password (SSO only).
    #[serde(default)]
    pub sso_only_linked: bool,
    /// The ID token claim that lists the person's groups (e.g. "groups").
    #[serde(default)]
    pub groups_claim: Option<String>,
    #[serde(default)]
    pub groups: Vec<GroupMapping>,
}

/// The settings, trimmed and checked; the field at fault otherwise.
fn normalized(id: &str, mut s: SsoProviderSettings) -> OpsResult<SsoProviderSettings> {
    s.name = s.name.trim().to_string();
    s.issuer = s.issuer.trim().to_string();
    s.client_id = s.client_id.trim().to_string();
    s.scopes = s
        .scopes
        .iter()
        .map(|x| x.trim().to_string())
        .filter(|x| !x.is_empty())
        .collect();
    s.allowed_domains = s
        .allowed_domains
        .iter()
        .map(|d| d.trim().to_ascii_lowercase())
        .filter(|d| !d.is_empty())
        .collect();
    s.groups_claim = s
        .groups_claim
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty());
    s.ca_pem = s
        .ca_pem
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty());
    s.client_secret = s.client_secret.filter(|c| !c.is_empty());
    for g in &mut s.groups {
        g.group = g.group.trim().to_string();
        g.org = g.org.trim().to_string();
    }
    check_provider(&ProviderFields {
        id,
        name: &s.name,
        issuer: &s.issuer,
        client_id: &s.client_id,
        scopes: &s.scopes,
        accounts: s.accounts,
        allowed_domains: &s.allowed_domains,
        groups_claim: s.groups_claim.as_deref(),
        groups: &s.groups,
    })
    .map_err(|(field, message)| invalid(field, message))?;
    if s.client_secret
        .as_ref()
        .is_some_and(|c| c.len() > MAX_SECRET)
    {
        return Err(invalid(
            "client_secret",
            format!("must be at most {MAX_SECRET} characters"),
        ));
    }
    if s.ca_pem.as_ref().is_some_and(|p| p.len() > MAX_CA_PEM) {
        return Err(invalid("ca_pem", "must be at most 256 KiB"));
    }
    Ok(s)
}

/// What the sealed secret is bound to: the provider's id (never a signing key's id).
fn secret_label(id: &str) -> String {
    format!("sso-provider:{id}")
}

impl Ops {
    /// Every provider: the config file's first, then those added here, by id.
    pub fn list_sso_providers(&self, actor: &Actor) -> OpsResult<Vec<SsoProviderView>> {
        require_platform_admin(actor)?;
        let mut out: Vec<SsoProviderView> = match self.sso.get() {
            Some(sso) => sso
                .current()
                .iter()
                .filter(|p| p.source() == ProviderSource::ConfigFile)
                .map(|p| SsoProviderView::configured(p.settings()))
                .collect(),
            None => Vec::new(),
        };
        let stored = records::list_sso_providers(&self.store.read()?)?;
        out.extend(
            stored
                .iter()
                .filter(|p| !out.iter().any(|c| c.id == p.id))
                .map(SsoProviderView::stored)
                .collect::<Vec<_>>(),
        );
        Ok(out)
    }

    pub fn get_sso_provider(&self, actor: &Actor, id: &str) -> OpsResult<SsoProviderView> {
        self.list_sso_providers(actor)?
            .into_iter()
            .find(|p| p.id == id)
            .ok_or(OpsError::NotFound("identity provider"))
    }

    /// Adds a provider once its issuer answered discovery; in use at once.
    pub async fn create_sso_provider(
        &self,
        actor: &Actor,
        input: NewSsoProvider,
    ) -> OpsResult<SsoProviderView> {
        require_platform_admin(actor)?;
        let (id, settings) = input.split();
        let id = id.trim().to_string();
        let s = normalized(&id, settings)?;
        let Some(secret) = s.client_secret.clone() else {
            return Err(invalid("client_secret", "is required"));
        };
        self.refuse_clash(&id)?;
        let meta = self.check_discovery(&s).await?;
        let sealed = self
            .issuer()?
            .seal_secret(&secret_label(&id), secret.as_bytes())?;
        let now = self.now();
        let rec = record(&id, s, sealed, now, now);
        let tx = self.store.write()?;
        // Again inside the transaction: someone may have added it while discovery ran.
        self.refuse_clash_in(&tx, &id)?;
        records::put_sso_provider(&tx, &rec)?;
        let mut ev = self.event(actor, "sso.provider.create", &id, None);
        ev.detail = format!("issuer {}", rec.issuer);
        records::append_audit(&tx, &ev)?;
        self.commit(tx, &[])?;
        self.reload_sso(Some((&id, meta)))?;
        Ok(SsoProviderView::stored(&rec))
    }

    /// Changes a provider added here (its issuer is asked again); a blank secret keeps
    /// the stored one.
    pub async fn update_sso_provider(
        &self,
        actor: &Actor,
        id: &str,
        input: SsoProviderSettings,
    ) -> OpsResult<SsoProviderView> {
        require_platform_admin(actor)?;
        self.refuse_configured(id)?;
        if records::get_sso_provider(&self.store.read()?, id)?.is_none() {
            return Err(OpsError::NotFound("identity provider"));
        }
        let s = normalized(id, input)?;
        let meta = self.check_discovery(&s).await?;
        let new_secret = match &s.client_secret {
            Some(c) => Some(
                self.issuer()?
                    .seal_secret(&secret_label(id), c.as_bytes())?,
            ),
            None => None,
        };
        let tx = self.store.write()?;
        let old =
            records::get_sso_provider(&tx, id)?.ok_or(OpsError::NotFound("identity provider"))?;
        let sealed = new_secret.unwrap_or_else(|| old.sealed_secret.clone());
        let secret_changed = s.client_secret.is_some();
        let rec = record(id, s, sealed, old.created_at, self.now());
        records::put_sso_provider(&tx, &rec)?;
        let mut ev = self.event(actor, "sso.provider.update", id, None);
        ev.detail = format!(
            "issuer {}{}",
            rec.issuer,
            if secret_changed {
                ", new client secret"
            } else {
                ""
            }
        );
        records::append_audit(&tx, &ev)?;
        self.commit(tx, &[])?;
        self.reload_sso(Some((id, meta)))?;
        Ok(SsoProviderView::stored(&rec))
    }

    /// Removes a provider added here: its button goes at once. Accounts it made stay (an
    /// administrator may clear their "SSO only" flag and set a password).
    pub fn delete_sso_provider(&self, actor: &Actor, id: &str) -> OpsResult<()> {
        require_platform_admin(actor)?;
        self.refuse_configured(id)?;
        let tx = self.store.write()?;
        if !records::delete_sso_provider(&tx, id)? {
            return Err(OpsError::NotFound("identity provider"));
        }
        records::append_audit(&tx, &self.event(actor, "sso.provider.delete", id, None))?;
        self.commit(tx, &[])?;
        self.reload_sso(None)
    }

    /// Puts the stored providers in use beside the config file's (at start and after each
    /// change). `fresh` is a provider whose discovery document was just read. A stored
    /// provider that cannot be used (its id now taken by the config file, its secret sealed
    /// under another key file, its CA bundle unreadable) is left out and logged.
    pub(crate) fn reload_sso(&self, fresh: Option<(&str, CoreProviderMetadata)>) -> OpsResult<()> {
        let Some(sso) = self.sso.get() else {
            return Ok(());
        };
        let stored = records::list_sso_providers(&self.store.read()?)?;
        let mut fresh = fresh;
        let mut ready = Vec::new();
        for rec in stored {
            if sso.configured(&rec.id) {
                tracing::warn!(provider = %rec.id, "a provider added in the console has the id of one in the config file; the config file's is used");
                continue;
            }
            let secret = self
                .issuer()
                .ok()
                .and_then(|iss| iss.open_secret(&secret_label(&rec.id), &rec.sealed_secret))
                .and_then(|b| String::from_utf8(b).ok());
            let Some(secret) = secret else {
                tracing::warn!(provider = %rec.id, "the provider's client secret cannot be unsealed (another key file?); it is not offered");
                continue;
            };
            let http = match http_client_pem(rec.ca_pem.as_deref().map(str::as_bytes)) {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!(provider = %rec.id, error = %e, "the provider's CA bundle is not usable; it is not offered");
                    continue;
                }
            };
            let id = rec.id.clone();
            let p = match Provider::new(
                settings_of(rec, secret),
                ProviderSource::Console,
                http,
                sso.public_url(),
            ) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(provider = %id, error = %e, "the provider is not usable; it is not offered");
                    continue;
                }
            };
            let p = match fresh.take_if(|(f, _)| *f == id) {
                Some((_, meta)) => p.with_metadata(meta),
                None => p,
            };
            ready.push(p);
        }
        sso.replace_console(ready);
        Ok(())
    }

    fn refuse_configured(&self, id: &str) -> OpsResult<()> {
        if self.sso.get().is_some_and(|s| s.configured(id)) {
            return Err(OpsError::Conflict(format!(
                "the identity provider \"{id}\" is from the config file; change it there"
            )));
        }
        Ok(())
    }

    fn refuse_clash(&self, id: &str) -> OpsResult<()> {
        self.refuse_clash_in(&self.store.read()?, id)
    }

    fn refuse_clash_in(&self, r: &impl crate::store::Reader, id: &str) -> OpsResult<()> {
        self.refuse_configured(id)?;
        if records::get_sso_provider(r, id)?.is_some() {
            return Err(OpsError::Conflict(format!(
                "an identity provider with id \"{id}\" already exists"
            )));
        }
        Ok(())
    }

    /// The issuer's discovery document, read as sign-ins will read it; refused on the
    /// field at fault.
    async fn check_discovery(&self, s: &SsoProviderSettings) -> OpsResult<CoreProviderMetadata> {
        if self.sso.get().is_none() {
            return Err(OpsError::Unavailable(
                "single sign-on is not running on this server".into(),
            ));
        }
        let http = http_client_pem(s.ca_pem.as_deref().map(str::as_bytes))
            .map_err(|e| invalid("ca_pem", format!("not a usable PEM bundle: {e}")))?;
        discover(&s.issuer, &http).await.map_err(|e| {
            invalid(
                "issuer",
                format!(
                    "the discovery document could not be read from {}/.well-known/openid-configuration ({e})",
                    s.issuer.trim_end_matches('/')
                ),
            )
        })
    }
}

fn record(
    id: &str,
    s: SsoProviderSettings,
    sealed_secret: String,
    created_at: Timestamp,
    updated_at: Timestamp,
) -> StoredProvider {
    StoredProvider {
        id: id.to_string(),
        name: s.name,
        issuer: s.issuer,
        client_id: s.client_id,
        sealed_secret,
        scopes: s.scopes,
        ca_pem: s.ca_pem,
        accounts: s.accounts,
        allowed_domains: s.allowed_domains,
        sso_only_linked: s.sso_only_linked,
        groups_claim: s.groups_claim,
        groups: s.groups,
        created_at,
        updated_at,
    }
}

/// A stored provider as sign-in uses it (its secret unsealed).
fn settings_of(rec: StoredProvider, secret: String) -> SsoProvider {
    SsoProvider {
        id: rec.id,
        name: rec.name,
        issuer: rec.issuer,
        client_id: rec.client_id,
        client_secret: Secret::new(secret),
        scopes: rec.scopes,
        ca_file: None,
        accounts: rec.accounts,
        allowed_domains: rec.allowed_domains,
        sso_only_linked: rec.sso_only_linked,
        groups_claim: rec.groups_claim,
        groups: rec.groups,
    }
}
