//! Single sign-on through OpenID Connect providers (`[[sso.providers]]`): the authorization
//! code flow with PKCE, `state` and `nonce`, done by the `openidconnect` crate over kaas's
//! own HTTP client (rustls, the provider's CA bundle if configured). The flow's secrets stay
//! in memory for ten minutes and are used once. A verified e-mail address links the person
//! to their account or, as the provider's account policy allows, makes one; the provider's
//! groups then decide their roles in mapped organizations (`ops::sso_groups`); the session
//! is opened exactly as a password sign-in opens one. The second factor of local accounts
//! does not apply: the identity provider does its own.
//!
//! Providers come from the config file (fixed while kaas runs) and from the console or the
//! API (`ops::sso_admin`, stored); the set in use is swapped whole when an administrator
//! changes one, while sign-ins under way keep going.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use base64::Engine;
use jiff::{SignedDuration, Timestamp};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdTokenClaims, CoreJwsSigningAlgorithm,
    CoreProviderMetadata,
};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};

use super::auth::LoggedIn;
use super::sso_http::{discover, http_client, send};
use super::{Ops, OpsError, OpsResult, Origin, records};
use crate::config::SsoProvider;
use crate::domain::sso::refuse_new_account;
use crate::domain::throttle::StoredKnown;
use crate::domain::*;

/// How long a started sign-in may take at the provider.
const FLOW_TTL: SignedDuration = SignedDuration::from_secs(600);
/// Started sign-ins kept at most: each costs a few hundred bytes, and anyone may start one.
const MAX_PENDING: usize = 10_000;
/// Started sign-ins from one client address at most, so one client cannot fill
/// [`MAX_PENDING`] and keep everyone else from signing in.
const MAX_PENDING_PER_ADDRESS: usize = 30;
/// The prefix of the browser secret that ties a sign-in's callback to the browser that
/// started it (kept in a cookie).
const BROWSER_PREFIX: &str = "kaassso_";

/// The ID token signatures accepted: made with a key of the provider's JWKS.
const ASYMMETRIC: [CoreJwsSigningAlgorithm; 10] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EcdsaP521Sha512,
    CoreJwsSigningAlgorithm::EdDsa,
];

/// A provider as the sign-in page shows it.
#[derive(Debug, Clone)]
pub struct ProviderButton {
    pub id: String,
    pub name: String,
}

/// Where a provider is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderSource {
    /// `[[sso.providers]]`: read-only while kaas runs.
    ConfigFile,
    /// Added by a platform administrator in the console or the API (stored).
    Console,
}

/// A provider with its HTTP client and, once read, its discovery document.
pub(crate) struct Provider {
    cfg: SsoProvider,
    source: ProviderSource,
    http: reqwest::Client,
    redirect: RedirectUrl,
    metadata: tokio::sync::Mutex<Option<CoreProviderMetadata>>,
}

/// A sign-in sent to a provider and not yet back. Keyed by its `state`.
struct PendingSso {
    provider: String,
    verifier: String,
    nonce: Nonce,
    next: String,
    expires: Timestamp,
    /// The digest of the starting browser's secret: the callback must come with it, or a
    /// link carrying someone else's code and state could sign a person in as that someone
    /// (login CSRF).
    browser: [u8; 32],
    /// Who asked, for [`MAX_PENDING_PER_ADDRESS`].
    from: std::net::IpAddr,
}

/// A started sign-in: where to send the browser, and the secret it must keep (a cookie)
/// and bring back to the callback.
#[derive(Debug, Clone)]
pub struct SsoStart {
    pub url: String,
    pub browser: String,
}

/// The browser secret a cookie carries, when it looks like one kaas made.
fn browser_secret(cookie: Option<&str>) -> Option<&str> {
    cookie.filter(|c| {
        c.strip_prefix(BROWSER_PREFIX).is_some_and(|rest| {
            (32..=64).contains(&rest.len())
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
    })
}

/// The providers in use and the sign-ins under way.
pub struct SsoProviders {
    public_url: String,
    /// The config file's, kept across swaps (with their discovery documents).
    configured: Vec<Arc<Provider>>,
    /// The config file's, then the console's: what the sign-in page offers.
    current: RwLock<Arc<Vec<Arc<Provider>>>>,
    pending: Mutex<HashMap<String, PendingSso>>,
}

impl Provider {
    pub(crate) fn new(
        cfg: SsoProvider,
        source: ProviderSource,
        http: reqwest::Client,
        public_url: &str,
    ) -> anyhow::Result<Provider> {
        let redirect = RedirectUrl::new(format!(
            "{}/sso/{}/callback",
            public_url.trim_end_matches('/'),
            cfg.id
        ))?;
        Ok(Provider {
            cfg,
            source,
            http,
            redirect,
            metadata: tokio::sync::Mutex::new(None),
        })
    }

    /// With its discovery document already read (when it was saved).
    pub(crate) fn with_metadata(self, m: CoreProviderMetadata) -> Provider {
        Provider {
            metadata: tokio::sync::Mutex::new(Some(m)),
            ..self
        }
    }

    pub(crate) fn settings(&self) -> &SsoProvider {
        &self.cfg
    }

    pub(crate) fn source(&self) -> ProviderSource {
        self.source
    }
}

impl SsoProviders {
    /// Checks and prepares `providers`; `public_url` is where the provider sends people back.
    pub fn new(providers: &[SsoProvider], public_url: &str) -> anyhow::Result<SsoProviders> {
        let mut out = Vec::new();
        for cfg in providers {
            let http = http_client(cfg.ca_file.as_deref())?;
            out.push(Arc::new(Provider::new(
                cfg.clone(),
                ProviderSource::ConfigFile,
                http,
                public_url,
            )?));
        }
        Ok(SsoProviders {
            public_url: public_url.to_string(),
            current: RwLock::new(Arc::new(out.clone())),
            configured: out,
            pending: Mutex::new(HashMap::new()),
        })
    }

    pub(crate) fn public_url(&self) -> &str {
        &self.public_url
    }

    /// The providers in use now: the config file's first.
    pub(crate) fn current(&self) -> Arc<Vec<Arc<Provider>>> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Whether the config file has a provider with this id.
    pub(crate) fn configured(&self, id: &str) -> bool {
        self.configured.iter().any(|p| p.cfg.id == id)
    }

    /// Puts `console` (the stored providers, ready) in use beside the config file's.
    pub(crate) fn replace_console(&self, console: Vec<Provider>) {
        let mut all = self.configured.clone();
        all.extend(console.into_iter().map(Arc::new));
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(all);
    }

    fn provider(&self, id: &str) -> OpsResult<Arc<Provider>> {
        self.current()
            .iter()
            .find(|p| p.cfg.id == id)
            .cloned()
            .ok_or(OpsError::NotFound("identity provider"))
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, PendingSso>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Provider {
    /// The discovery document, read at the first sign-in and kept; a failed read is
    /// retried at the next one.
    async fn metadata(&self) -> OpsResult<CoreProviderMetadata> {
        let mut cached = self.metadata.lock().await;
        if let Some(m) = cached.as_ref() {
            return Ok(m.clone());
        }
        let m = discover(&self.cfg.issuer, &self.http).await.map_err(|e| {
            tracing::warn!(provider = %self.cfg.id, error = %e, "OpenID Connect discovery failed");
            OpsError::Unavailable(format!(
                "{} cannot be reached right now; try again later",
                self.cfg.name
            ))
        })?;
        *cached = Some(m.clone());
        Ok(m)
    }
}

/// The claims kaas uses, from a verified ID token.
struct Verified {
    email: String,
    name: String,
    groups: Vec<String>,
}

/// The groups claim, read from the (already verified) token's payload: the crate's claim
/// types drop claims they do not know.
fn groups_of(jwt: &str, claim: &str) -> Vec<String> {
    let payload = jwt
        .split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    match payload.as_ref().and_then(|v| v.get(claim)) {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|g| g.as_str().map(str::to_string))
            .collect(),
        Some(serde_json::Value::String(g)) => vec![g.clone()],
        _ => Vec::new(),
    }
}

impl Ops {
    /// Uses `providers` for single sign-on; set once when serving.
    pub fn set_sso(&self, providers: SsoProviders) {
        let _ = self.sso.set(Arc::new(providers));
    }

    pub(crate) fn sso(&self) -> OpsResult<&Arc<SsoProviders>> {
        self.sso
            .get()
            .ok_or(OpsError::NotFound("identity provider"))
    }

    /// The providers to offer on the sign-in page.
    pub fn sso_buttons(&self) -> Vec<ProviderButton> {
        self.sso
            .get()
            .map(|s| {
                s.current()
                    .iter()
                    .map(|p| ProviderButton {
                        id: p.cfg.id.clone(),
                        name: p.cfg.name.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Starts a sign-in through `provider`: the URL to send the browser to, and the secret
    /// the browser keeps for the callback (the one it already has, `browser`, if any: two
    /// tabs may sign in at once). `next` is where the person lands once signed in (a local
    /// path).
    pub async fn sso_start(
        &self,
        provider: &str,
        next: &str,
        browser: Option<&str>,
        origin: &Origin,
    ) -> OpsResult<SsoStart> {
        let sso = self.sso()?;
        let p = sso.provider(provider)?;
        let meta = p.metadata().await?;
        let client = CoreClient::from_provider_metadata(
            meta,
            ClientId::new(p.cfg.client_id.clone()),
            Some(ClientSecret::new(p.cfg.client_secret.expose().clone())),
        )
        .set_redirect_uri(p.redirect.clone());
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut req = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for s in p.cfg.scopes.iter().filter(|s| *s != "openid") {
            req = req.add_scope(Scope::new(s.clone()));
        }
        let (url, state, nonce) = req.set_pkce_challenge(challenge).url();
        let now = self.now();
        let browser = browser_secret(browser)
            .map(str::to_string)
            .unwrap_or_else(|| super::secrets::new_secret(BROWSER_PREFIX));
        let mut pending = sso.pending();
        pending.retain(|_, f| f.expires > now);
        let from_here = || pending.values().filter(|f| f.from == origin.ip);
        if from_here().count() >= MAX_PENDING_PER_ADDRESS {
            let oldest = from_here().map(|f| f.expires).min().unwrap_or(now);
            return Err(OpsError::Throttled(
                oldest.duration_since(now).unsigned_abs(),
            ));
        }
        if pending.len() >= MAX_PENDING {
            return Err(OpsError::Unavailable(
                "too many sign-ins under way; try again in a few minutes".into(),
            ));
        }
        pending.insert(
            state.secret().clone(),
            PendingSso {
                provider: provider.to_string(),
                verifier: verifier.secret().clone(),
                nonce,
                next: next.to_string(),
                expires: now.saturating_add(FLOW_TTL).unwrap_or(now),
                browser: super::secrets::digest(&browser),
                from: origin.ip,
            },
        );
        Ok(SsoStart {
            url: url.to_string(),
            browser,
        })
    }

    /// Finishes a sign-in the provider sent back with `code` and `state`: checks the
    /// state, exchanges the code, verifies the ID token, links or creates the account,
    /// applies the group mapping and opens a session. Returns it with where to go next.
    pub async fn sso_finish(
        &self,
        provider: &str,
        code: &str,
        state: &str,
        browser: Option<&str>,
        origin: &Origin,
    ) -> OpsResult<(LoggedIn, String)> {
        let sso = self.sso()?;
        let p = sso.provider(provider)?;
        let now = self.now();
        let flow = {
            let mut pending = sso.pending();
            // Another browser's callback (a link someone was sent) leaves the sign-in to
            // the browser that started it.
            let theirs = pending.get(state).is_some_and(|f| {
                browser_secret(browser).is_none_or(|b| super::secrets::digest(b) != f.browser)
            });
            if theirs {
                drop(pending);
                self.sso_refused(provider, "", origin, "state from another browser");
                return Err(OpsError::Unauthenticated(
                    "This sign-in was started in another browser (or this browser's cookies were cleared); start again here".into(),
                ));
            }
            // Taken out at once: a state is good for one try, right or wrong.
            pending
                .remove(state)
                .filter(|f| f.provider == provider && f.expires > now)
        };
        let Some(flow) = flow else {
            self.sso_refused(provider, "", origin, "unknown, used or expired state");
            return Err(OpsError::Unauthenticated(
                "This sign-in was already used or has expired; start again".into(),
            ));
        };
        let verified = match self.sso_verify(&p, code, &flow).await {
            Ok(v) => v,
            Err(why) => {
                self.sso_refused(provider, "", origin, &why);
                return Err(OpsError::Unauthenticated(format!(
                    "{} sign-in failed: {why}",
                    p.cfg.name
                )));
            }
        };
        let user = match self.sso_account(&p, &verified) {
            Ok(u) => u,
            Err(e) => {
                self.sso_refused(provider, &verified.email, origin, &e.to_string());
                return Err(e);
            }
        };
        let known = StoredKnown {
            sources: self.throttle_known(&user.email),
            account: user.email.clone(),
        };
        let done = self.open_session(user, origin, known, &format!("via=sso ({provider})"))?;
        Ok((done, flow.next))
    }

    /// The code exchange and the ID token's checks; the reason in words when refused.
    async fn sso_verify(
        &self,
        p: &Provider,
        code: &str,
        flow: &PendingSso,
    ) -> Result<Verified, String> {
        let meta = p.metadata().await.map_err(|e| e.to_string())?;
        let client = CoreClient::from_provider_metadata(
            meta,
            ClientId::new(p.cfg.client_id.clone()),
            Some(ClientSecret::new(p.cfg.client_secret.expose().clone())),
        )
        .set_redirect_uri(p.redirect.clone());
        let http = p.http.clone();
        let token = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| format!("the provider has no token endpoint: {e}"))?
            .set_pkce_verifier(PkceCodeVerifier::new(flow.verifier.clone()))
            .request_async(&|r| send(http.clone(), r))
            .await
            .map_err(|e| format!("the code was refused: {e}"))?;
        let id_token = token
            .id_token()
            .ok_or_else(|| "the provider sent no ID token".to_string())?;
        // Signature (keys from the provider's JWKS), iss, aud, azp, exp and nonce. Only
        // the provider's own keys sign: an HMAC signature would be made with the client
        // secret, which kaas holds too, so whoever learned it could mint ID tokens.
        let verifier = client.id_token_verifier().set_allowed_algs(ASYMMETRIC);
        let claims: &CoreIdTokenClaims = id_token
            .claims(&verifier, &flow.nonce)
            .map_err(|e| format!("the ID token was refused: {e}"))?;
        // The crate leaves azp alone (OpenID Connect Core 3.1.3.7, step 5): a token another
        // client asked for is not kaas's, even when it names kaas as its audience.
        if let Some(azp) = claims.authorized_party()
            && azp.as_str() != p.cfg.client_id
        {
            return Err(format!(
                "the ID token was refused: Invalid authorized party: must be `{}` (found `{}`)",
                p.cfg.client_id,
                azp.as_str()
            ));
        }
        let email = claims
            .email()
            .map(|e| e.as_str().trim().to_ascii_lowercase())
            .ok_or_else(|| "the ID token has no e-mail address".to_string())?;
        if claims.email_verified() != Some(true) {
            return Err(format!("the provider has not verified the address {email}"));
        }
        let name = claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.as_str().to_string())
            .unwrap_or_else(|| email.split('@').next().unwrap_or_default().to_string());
        let groups = match &p.cfg.groups_claim {
            Some(claim) => {
                let jwt = serde_json::to_value(id_token)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                groups_of(&jwt, claim)
            }
            None => Vec::new(),
        };
        Ok(Verified {
            email,
            name,
            groups,
        })
    }

    /// Links or creates the account and applies the group mapping, in one transaction.
    fn sso_account(&self, p: &Provider, v: &Verified) -> OpsResult<User> {
        let now = self.now();
        let tx = self.store.write()?;
        let mut user = match records::user_by_email(&tx, &v.email)? {
            Some(u) if u.disabled => {
                return Err(OpsError::Forbidden("this account is disabled".into()));
            }
            Some(mut u) => {
                let mut link = u.sso.take().unwrap_or_default();
                link.provider = p.cfg.id.clone();
                if p.cfg.sso_only_linked && !link.sso_only {
                    link.sso_only = true;
                    // The old password stops working: an unknown one replaces it.
                    u.password_hash = super::secrets::decoy_hash().to_string();
                }
                u.sso = Some(link);
                records::update_user(&tx, &u)?;
                u
            }
            None => {
                let invited = has_pending_invitation(&tx, &v.email, now)?;
                if let Some(why) =
                    refuse_new_account(p.cfg.accounts, &v.email, &p.cfg.allowed_domains, invited)
                {
                    return Err(OpsError::Forbidden(why));
                }
                if v.email.len() > crate::domain::names::MAX_EMAIL_BYTES || !v.email.contains('@') {
                    return Err(invalid_email(&v.email));
                }
                let name: String = v.name.chars().take(100).collect();
                let mut u = User::new(
                    v.email.clone(),
                    &name,
                    super::secrets::decoy_hash().to_string(),
                    false,
                    now,
                    CreatedVia::Sso,
                );
                u.sso = Some(SsoLink {
                    provider: p.cfg.id.clone(),
                    sso_only: true,
                    managed_orgs: Vec::new(),
                });
                records::insert_user(&tx, &u)?;
                let mut ev = self.sso_event(&u, "user.create", None);
                ev.detail = format!("via=sso ({})", p.cfg.id);
                records::append_audit(&tx, &ev)?;
                u
            }
        };
        let changes = self.apply_group_mapping(&tx, p, &mut user, &v.groups)?;
        records::update_user(&tx, &user)?;
        self.commit(tx, &changes)?;
        Ok(user)
    }

    pub(super) fn sso_event(&self, user: &User, action: &str, org: Option<OrgId>) -> AuditEvent {
        AuditEvent {
            id: AuditId::generate(),
            time: self.now(),
            actor: Some(user.id),
            actor_label: user.email.clone(),
            action: action.into(),
            target: user.email.clone(),
            org_id: org,
            outcome: Outcome::Success,
            source: String::new(),
            detail: String::new(),
        }
    }

    /// A refused single sign-on, audited as a failed `auth.login`.
    fn sso_refused(&self, provider: &str, email: &str, origin: &Origin, why: &str) {
        let ev = AuditEvent {
            id: AuditId::generate(),
            time: self.now(),
            actor: None,
            actor_label: email.to_string(),
            action: "auth.login".into(),
            target: email.to_string(),
            org_id: None,
            outcome: Outcome::Failure,
            source: origin.ip.to_string(),
            detail: String::new(),
        };
        self.audit_failure(ev, Outcome::Failure, format!("via=sso ({provider}): {why}"));
    }
}

fn invalid_email(email: &str) -> OpsError {
    OpsError::Forbidden(format!(
        "the identity provider's address \"{email}\" cannot be a kaas account"
    ))
}

/// Whether an unexpired invitation to any organization names `email`.
fn has_pending_invitation(
    r: &impl crate::store::Reader,
    email: &str,
    now: Timestamp,
) -> OpsResult<bool> {
    for org in records::list_orgs(r, None, usize::MAX)? {
        for inv in records::list_org_invitations(r, org.id)? {
            if inv.email.eq_ignore_ascii_case(email) && inv.expires_at > now {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_read_from_the_token_payload() {
        let enc = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let jwt = format!(
            "{}.{}.sig",
            enc(serde_json::json!({"alg": "RS256"})),
            enc(serde_json::json!({"groups": ["a", "b", 3], "role": "x"}))
        );
        assert_eq!(groups_of(&jwt, "groups"), vec!["a", "b"]);
        assert_eq!(groups_of(&jwt, "role"), vec!["x"]);
        assert!(groups_of(&jwt, "missing").is_empty());
        assert!(groups_of("garbage", "groups").is_empty());
    }
}
