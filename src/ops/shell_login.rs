//! Signing in from a terminal (`kaas login`): a password exchanged for an API token, or the
//! OAuth 2.0 device authorization grant (RFC 8628), where a person signed in to the console
//! approves the terminal's user code. Either way the terminal gets an ordinary API token
//! (read-write, expiring after [`SHELL_TOKEN_DAYS`] or the configured maximum), listed with
//! the user's other tokens and revoked like them (`kaas logout` does).
//!
//! The password exchange goes through the same throttled check as every sign-in; minting
//! and each device decision are audited. Pending device grants are kept in memory (see
//! `domain::device`).

use std::time::Duration;

use jiff::Timestamp;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{LoginInput, SignInCheck};
use super::secrets::{digest, new_secret};
use super::{Actor, AuthVia, Ops, OpsError, OpsResult, Origin, invalid, plus};
use crate::domain::device::{self, GrantError, Poll};
use crate::domain::names::check_display_name;
use crate::domain::*;
use crate::store::records;

/// Days a terminal's token lasts, unless the configured maximum is shorter.
pub const SHELL_TOKEN_DAYS: u64 = 30;
/// The token's name when the terminal gives none.
const DEFAULT_NAME: &str = "kaas login";
/// How many tokens one user may hold (as for tokens made in the console).
const MAX_TOKENS_PER_USER: usize = 50;

/// A password exchanged for a terminal's API token.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordLogin {
    pub email: String,
    pub password: String,
    /// The token's name in the user's token list, e.g. "kaas login on laptop".
    #[serde(default)]
    pub name: Option<String>,
}

/// A terminal's new API token (RFC 6749 §5.1 shape, plus who and which token it is).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ShellToken {
    /// Send as `Authorization: Bearer …`; shown this once.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until it expires.
    pub expires_in: u64,
    pub expires_at: Timestamp,
    /// The token's id in the user's token list (`DELETE /me/tokens/{id}` revokes it).
    pub token_id: TokenId,
    /// The e-mail address of the user it acts for.
    pub user: String,
}

/// The device authorization response (RFC 8628 §3.2).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeviceAuthorization {
    /// The terminal's secret: poll the token endpoint with it.
    pub device_code: String,
    /// What the person types in the console, e.g. `BCDF-GHJK`.
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: String,
    /// Seconds until the codes expire.
    pub expires_in: u64,
    /// Seconds to wait between polls.
    pub interval: u64,
}

/// A poll's outcome (RFC 8628 §3.5).
#[derive(Debug)]
pub enum DevicePoll {
    Token(ShellToken),
    Pending,
    SlowDown,
    Denied,
    Expired,
}

/// A pending grant as the approver sees it.
#[derive(Debug, Clone)]
pub struct PendingGrant {
    pub user_code: String,
    pub client_name: String,
    pub expires_at: Timestamp,
}

fn token_name(name: Option<String>) -> OpsResult<String> {
    let name = name
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| DEFAULT_NAME.to_string());
    check_display_name(&name).map_err(|p| invalid("name", p.0))?;
    Ok(name)
}

fn grant_refusal(e: GrantError) -> OpsError {
    match e {
        GrantError::Full => OpsError::Unavailable(e.to_string()),
        GrantError::TooManyFromAddress { retry_after } => {
            OpsError::Throttled(retry_after.unsigned_abs())
        }
        GrantError::UnknownCode => invalid("user_code", e.to_string()),
        GrantError::CodeTaken => OpsError::Conflict(e.to_string()),
    }
}

impl Ops {
    fn device_grants(&self) -> std::sync::MutexGuard<'_, device::Grants> {
        // A poisoned lock only means a panic elsewhere while holding it; the map is intact.
        self.device_grants
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Mints the terminal's token for `user` and audits it (`how` says which way).
    fn mint_shell_token(
        &self,
        user: &User,
        name: String,
        how: &str,
        source: &str,
        known: Option<&crate::domain::throttle::StoredKnown>,
    ) -> OpsResult<ShellToken> {
        let max_days = (self.settings.api_token_max_lifetime.as_secs() / 86400).max(1);
        let days = SHELL_TOKEN_DAYS.min(max_days);
        let secret = new_secret("kaas_");
        let now = self.now();
        let token = ApiToken {
            id: TokenId::generate(),
            user_id: user.id,
            name,
            scope: TokenScope::ReadWrite,
            digest: digest(&secret),
            created_at: now,
            expires_at: plus(now, Duration::from_secs(days * 86400)),
            last_used_at: None,
        };
        let tx = self.store.write()?;
        // Read again inside the transaction: disabled since the check means no token.
        let current = records::get_user(&tx, user.id)?
            .filter(|u| !u.disabled)
            .ok_or_else(|| OpsError::Unauthenticated("the account is disabled".into()))?;
        if records::list_user_tokens(&tx, user.id)?.len() >= MAX_TOKENS_PER_USER {
            return Err(OpsError::Conflict(format!(
                "you already have {MAX_TOKENS_PER_USER} API tokens; revoke one in the console \
                 (Account, API tokens) first"
            )));
        }
        records::insert_token(&tx, &token)?;
        if let Some(k) = known {
            records::put_login_known(&tx, k)?;
        }
        let mut updated = current.clone();
        updated.last_login_at = Some(now);
        records::update_user(&tx, &updated)?;
        let actor = Actor {
            user_id: current.id,
            email: current.email.clone(),
            platform_admin: current.platform_admin,
            via: AuthVia::Token(token.id, token.scope),
            source: source.to_string(),
        };
        let mut ev = self.event(&actor, "token.create", token.id, None);
        ev.detail = format!("{:?} {:?}, {how}", token.name, token.scope);
        records::append_audit(&tx, &ev)?;
        self.commit(tx, &[])?;
        Ok(ShellToken {
            access_token: secret,
            token_type: "Bearer".into(),
            expires_in: days * 86400,
            expires_at: token.expires_at,
            token_id: token.id,
            user: current.email,
        })
    }

    /// Exchanges an e-mail address and password for a terminal's API token.
    pub async fn password_login_token(
        &self,
        input: PasswordLogin,
        origin: &Origin,
    ) -> OpsResult<ShellToken> {
        let name = token_name(input.name)?;
        let (user, known) = match self
            .check_sign_in(
                LoginInput {
                    email: input.email,
                    password: input.password,
                },
                origin,
            )
            .await?
        {
            SignInCheck::Proved(user, known) => (user, known),
            // A password alone must not open what the console guards with a second factor.
            SignInCheck::SecondFactor { .. } => {
                return Err(OpsError::Forbidden(
                    "this account signs in with a second factor: use `kaas login URL --device` and approve the sign-in in the console".into(),
                ));
            }
        };
        self.mint_shell_token(
            &user,
            name,
            "kaas login with a password",
            &origin.ip.to_string(),
            Some(&known),
        )
    }

    /// Starts a device grant; `base` is the console's public URL.
    pub fn start_device_grant(
        &self,
        name: Option<String>,
        base: &str,
        origin: &Origin,
    ) -> OpsResult<DeviceAuthorization> {
        let name = token_name(name)?;
        let device_code = new_secret("kaasdev_");
        let now = self.now();
        let mut grants = self.device_grants();
        // A clash of user codes is rare (2^34 codes); a few tries make it vanishing.
        for _ in 0..8 {
            let mut random = [0u8; device::USER_CODE_LEN];
            rand::rng().fill_bytes(&mut random);
            let code = device::user_code_from(&random);
            match grants.start(digest(&device_code), &code, name.clone(), origin.ip, now) {
                Ok(g) => {
                    let shown = device::display_user_code(&g.user_code);
                    let base = base.trim_end_matches('/');
                    return Ok(DeviceAuthorization {
                        device_code,
                        verification_uri: format!("{base}/device"),
                        verification_uri_complete: format!("{base}/device?user_code={shown}"),
                        user_code: shown,
                        expires_in: device::GRANT_LIFETIME.as_secs().unsigned_abs(),
                        interval: g.interval_secs,
                    });
                }
                Err(GrantError::CodeTaken) => continue,
                Err(e) => return Err(grant_refusal(e)),
            }
        }
        Err(OpsError::Unavailable(
            "could not pick a free user code; try again".into(),
        ))
    }

    /// The pending grant a typed user code names, for the approval page.
    pub fn pending_device_grant(&self, actor: &Actor, typed: &str) -> OpsResult<PendingGrant> {
        if !matches!(actor.via, AuthVia::Session(_)) {
            return Err(OpsError::Forbidden(
                "sign in to the console to approve a device".into(),
            ));
        }
        let grants = self.device_grants();
        let g = grants
            .pending(typed, self.now())
            .ok_or_else(|| grant_refusal(GrantError::UnknownCode))?;
        Ok(PendingGrant {
            user_code: device::display_user_code(&g.user_code),
            client_name: g.client_name.clone(),
            expires_at: g.expires_at,
        })
    }

    /// Approves (the terminal then acts as `actor`) or denies a pending grant; audited. Only
    /// a console session may decide: an API token must not hand out further tokens.
    pub fn decide_device_grant(&self, actor: &Actor, typed: &str, approve: bool) -> OpsResult<()> {
        if !matches!(actor.via, AuthVia::Session(_)) {
            return Err(OpsError::Forbidden(
                "sign in to the console to approve a device".into(),
            ));
        }
        let name = self
            .device_grants()
            .decide(typed, approve.then_some(actor.user_id), self.now())
            .map_err(grant_refusal)?;
        let action = if approve {
            "auth.device.approve"
        } else {
            "auth.device.deny"
        };
        let tx = self.store.write()?;
        let mut ev = self.event(
            actor,
            action,
            device::display_user_code(&device::normalize_user_code(typed)),
            None,
        );
        ev.detail = format!("{name:?}");
        records::append_audit(&tx, &ev)?;
        self.commit(tx, &[])
    }

    /// One poll of the token endpoint with a device code.
    pub fn poll_device_grant(&self, device_code: &str, origin: &Origin) -> OpsResult<DevicePoll> {
        let (poll, grant) = self.device_grants().poll(&digest(device_code), self.now());
        Ok(match poll {
            Poll::Pending => DevicePoll::Pending,
            Poll::SlowDown(_) => DevicePoll::SlowDown,
            Poll::Denied => DevicePoll::Denied,
            Poll::Expired => DevicePoll::Expired,
            Poll::Approved(user_id) => {
                let user = {
                    let r = self.store.read()?;
                    records::get_user(&r, user_id)?
                }
                .ok_or_else(|| OpsError::Unauthenticated("the approving user is gone".into()))?;
                let name = grant.map_or_else(|| DEFAULT_NAME.to_string(), |g| g.client_name);
                DevicePoll::Token(self.mint_shell_token(
                    &user,
                    name,
                    "kaas login with a device code approved in the console",
                    &origin.ip.to_string(),
                    None,
                )?)
            }
        })
    }
}
