//! Signing in and proving identity: password login with throttling, server-side sessions
//! (idle and absolute expiry, a per-user cap), API-token authentication, password changes
//! (which end the user's other sessions and revoke their API tokens).
//!
//! At the session cap a new sign-in ends the user's *oldest* session, so a forgotten
//! browser never locks its owner out; the ended session's next request gets 401.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::mfa::SignIn;
use super::secrets::{decoy_hash, digest, hash_password, new_secret, verify_password};
use super::{Actor, AuthVia, Ops, OpsError, OpsResult, Origin, invalid, plus};
use crate::domain::names::MAX_EMAIL_BYTES;
use crate::domain::password::{MAX_PASSWORD_CHARS, check_password};
use crate::domain::throttle::StoredKnown;
use crate::domain::*;
use crate::store::records;

/// Writes of `last_seen_at`/`last_used_at` happen at most this often per session or token,
/// so reads stay reads.
const TOUCH_EVERY: SignedDuration = SignedDuration::from_secs(60);

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginInput {
    pub email: String,
    pub password: String,
}

/// A session as its owner sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionView {
    pub id: SessionId,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    pub expires_at: Timestamp,
    pub source: String,
    pub user_agent: String,
    /// True for the session making this request.
    pub current: bool,
}

/// What a successful sign-in hands back: the cookie secret goes into `Set-Cookie` only.
pub struct LoggedIn {
    pub user: User,
    pub session: Session,
    pub secret: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    pub current_password: String,
    pub new_password: String,
}

/// What a password change or reset ended besides the old password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct PasswordChanged {
    /// Sessions signed out (a change keeps the session making it).
    pub sessions_ended: u32,
    /// API tokens revoked: every one the user had.
    pub tokens_revoked: u32,
}

impl std::fmt::Display for PasswordChanged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plural = |n: u32, one: &str| {
            if n == 1 {
                format!("1 {one}")
            } else {
                format!("{n} {one}s")
            }
        };
        write!(
            f,
            "{} signed out, {} revoked",
            plural(self.sessions_ended, "session"),
            plural(self.tokens_revoked, "API token")
        )
    }
}

/// Ends every session of `user` but `keep`, and revokes all of their API tokens, inside the
/// caller's transaction.
pub(crate) fn end_credentials(
    tx: &redb::WriteTransaction,
    user: UserId,
    keep: Option<SessionId>,
) -> OpsResult<PasswordChanged> {
    let mut done = PasswordChanged {
        sessions_ended: 0,
        tokens_revoked: 0,
    };
    for s in records::list_user_sessions(tx, user)? {
        if Some(s.id) != keep {
            records::delete_session(tx, &s)?;
            done.sessions_ended += 1;
        }
    }
    for t in records::list_user_tokens(tx, user)? {
        records::delete_token(tx, &t)?;
        done.tokens_revoked += 1;
    }
    Ok(done)
}

/// What a right password proves.
pub(crate) enum SignInCheck {
    /// The user, and the account's known sources with this one added.
    Proved(User, StoredKnown),
    /// Nothing yet: the account has a second factor, or must `enrol` one.
    SecondFactor { user: User, enrol: bool },
}

impl Ops {
    fn session_expires_at(&self, s: &Session) -> Timestamp {
        let idle = plus(s.last_seen_at, self.settings.session_idle_timeout);
        let absolute = plus(s.created_at, self.settings.session_absolute_timeout);
        idle.min(absolute)
    }

    /// The password check of every sign-in (console, API, `kaas login`): input no account
    /// can have refused first, the attempt reserved under the throttle before the hash,
    /// failures counted and audited, disabled accounts refused. A right password either
    /// proves the user (with the account's known sources, to store with whatever the
    /// sign-in creates) or, for an account with a second factor (or one that must enrol
    /// one), proves nothing yet: the attempt then counts neither way.
    pub(crate) async fn check_sign_in(
        &self,
        input: LoginInput,
        origin: &Origin,
    ) -> OpsResult<SignInCheck> {
        // Before anything else (the throttle's maps, the audit log, argon2): input no
        // account can have is refused without being kept or echoed.
        if input.email.trim().len() > MAX_EMAIL_BYTES {
            return Err(invalid(
                "email",
                format!("an e-mail address is at most {MAX_EMAIL_BYTES} characters"),
            ));
        }
        if input.password.chars().count() > MAX_PASSWORD_CHARS {
            return Err(invalid(
                "password",
                format!("a password is at most {MAX_PASSWORD_CHARS} characters"),
            ));
        }
        let account = input.email.trim().to_ascii_lowercase();
        let now = self.now();
        let (user, mfa) = {
            let r = self.store.read()?;
            let user = records::user_by_email(&r, &account)?;
            let mfa = match &user {
                Some(u) => records::get_mfa(&r, u.id)?,
                None => None,
            };
            (user, mfa)
        };
        // An account that signs in through its identity provider has no password to try:
        // said plainly (which tells that the address has an account, as the provider's
        // button would anyway).
        if let Some(why) = user.as_ref().and_then(|u| self.sso_only_refusal(u)) {
            return Err(OpsError::Unauthenticated(why));
        }
        // Counted before the (costly) hash: a throttled attempt costs none, and concurrent
        // guesses cannot all pass the check before any is counted.
        let reservation = self.reserve_attempt(&account, origin.ip)?;
        let phc = user
            .as_ref()
            .map_or_else(|| decoy_hash().to_string(), |u| u.password_hash.clone());
        let ok = match verify_password(input.password, phc).await {
            Ok(ok) => ok && user.is_some(),
            Err(e) => {
                self.attempt_cancelled(reservation);
                return Err(e);
            }
        };
        let user_id = user.as_ref().map(|u| u.id);
        let failed = |reason: &str| {
            self.attempt_failed(&reservation, origin.ip);
            self.audit_login_failure(
                AuditEvent {
                    id: AuditId::generate(),
                    time: now,
                    actor: user_id,
                    actor_label: account.clone(),
                    action: "auth.login".into(),
                    target: account.clone(),
                    org_id: None,
                    outcome: Outcome::Failure,
                    source: origin.ip.to_string(),
                    detail: String::new(),
                },
                reason.to_string(),
            );
            OpsError::Unauthenticated("wrong e-mail address or password".into())
        };
        let Some(user) = user.filter(|_| ok) else {
            return Err(failed("wrong e-mail address or password"));
        };
        if user.disabled {
            return Err(failed("account disabled"));
        }
        let has_factor = mfa.as_ref().is_some_and(|m| m.enabled());
        if has_factor || self.settings.mfa_require.applies_to(user.platform_admin) {
            // The password alone proves nothing yet: the attempt counts neither way, and
            // the source becomes known only once the second factor is right.
            self.attempt_cancelled(reservation);
            return Ok(SignInCheck::SecondFactor {
                user,
                enrol: !has_factor,
            });
        }
        let known = self.attempt_succeeded(reservation);
        Ok(SignInCheck::Proved(user, known))
    }

    /// Why `user` may not use a password (sign-in, `kaas login`, a change or a reset): the
    /// account signs in through its identity provider only. Says which provider to use.
    pub(crate) fn sso_only_refusal(&self, user: &User) -> Option<String> {
        let link = user.sso.as_ref().filter(|l| l.sso_only)?;
        let name = self
            .sso_buttons()
            .into_iter()
            .find(|b| b.id == link.provider)
            .map_or_else(|| link.provider.clone(), |b| b.name);
        Some(format!(
            "this account signs in with single sign-on only: use the \"Sign in with {name}\" \
             button"
        ))
    }

    /// Checks a password; opens a session, or, for an account with a second factor (or one
    /// that must enrol one), hands back the short-lived pending sign-in that
    /// [`Ops::complete_second_factor`] finishes. No session exists before the second factor.
    pub async fn login(&self, input: LoginInput, origin: &Origin) -> OpsResult<SignIn> {
        Ok(match self.check_sign_in(input, origin).await? {
            SignInCheck::Proved(user, known) => {
                SignIn::Done(Box::new(self.open_session(user, origin, known, "")?))
            }
            SignInCheck::SecondFactor { user, enrol } => {
                SignIn::SecondFactor(self.begin_second_factor(&user, enrol))
            }
        })
    }

    /// Opens a session for a user whose credentials were just proved, ending their oldest
    /// sessions beyond the cap; audited as `auth.login` with `detail` (how they proved it).
    pub(crate) fn open_session(
        &self,
        mut user: User,
        origin: &Origin,
        known: StoredKnown,
        detail: &str,
    ) -> OpsResult<LoggedIn> {
        let now = self.now();
        let secret = new_secret("");
        let session = Session {
            id: SessionId::generate(),
            user_id: user.id,
            digest: digest(&secret),
            csrf_token: new_secret(""),
            created_at: now,
            last_seen_at: now,
            source: origin.ip.to_string(),
            user_agent: origin.user_agent.chars().take(200).collect(),
        };
        let tx = self.store.write()?;
        let existing = records::list_user_sessions(&tx, user.id)?;
        let cap = self.settings.max_sessions_per_user.max(1) as usize;
        let excess = (existing.len() + 1).saturating_sub(cap);
        for old in existing.iter().take(excess) {
            records::delete_session(&tx, old)?;
        }
        records::put_session(&tx, &session)?;
        records::put_login_known(&tx, &known)?;
        user.last_login_at = Some(now);
        records::update_user(&tx, &user)?;
        let actor = Actor {
            user_id: user.id,
            email: user.email.clone(),
            platform_admin: user.platform_admin,
            via: AuthVia::Session(session.id),
            source: origin.ip.to_string(),
        };
        let mut ev = self.event(&actor, "auth.login", &user.email, None);
        let mut notes = Vec::new();
        if !detail.is_empty() {
            notes.push(detail.to_string());
        }
        if excess > 0 {
            notes.push(format!(
                "{excess} oldest session(s) ended: at most {cap} allowed"
            ));
        }
        ev.detail = notes.join("; ");
        records::append_audit(&tx, &ev)?;
        self.commit(tx, &[])?;
        Ok(LoggedIn {
            user,
            session,
            secret,
        })
    }

    /// Resolves a session cookie; expired sessions are deleted and refused.
    pub fn authenticate_session(
        &self,
        secret: &str,
        origin: &Origin,
    ) -> OpsResult<(Actor, Session)> {
        let d = digest(secret);
        let now = self.now();
        let (session, user) = {
            let r = self.store.read()?;
            let s = records::session_by_digest(&r, &d)?
                .ok_or_else(|| OpsError::Unauthenticated("not signed in (session ended)".into()))?;
            let u = records::get_user(&r, s.user_id)?;
            (s, u)
        };
        let expired = now >= self.session_expires_at(&session);
        let user = match user {
            Some(u) if !u.disabled && !expired => u,
            _ => {
                let tx = self.store.write()?;
                records::delete_session(&tx, &session)?;
                self.commit(tx, &[])?;
                return Err(OpsError::Unauthenticated(
                    "your session has expired; sign in again".into(),
                ));
            }
        };
        let mut session = session;
        if now.duration_since(session.last_seen_at) >= TOUCH_EVERY {
            session.last_seen_at = now;
            let tx = self.store.write()?;
            records::put_session(&tx, &session)?;
            self.commit(tx, &[])?;
        }
        Ok((
            Actor {
                user_id: user.id,
                email: user.email,
                platform_admin: user.platform_admin,
                via: AuthVia::Session(session.id),
                source: origin.ip.to_string(),
            },
            session,
        ))
    }

    /// Resolves an `Authorization: Bearer` API token.
    pub fn authenticate_token(&self, secret: &str, origin: &Origin) -> OpsResult<Actor> {
        let d = digest(secret);
        let now = self.now();
        let r = self.store.read()?;
        let mut token = records::token_by_digest(&r, &d)?
            .ok_or_else(|| OpsError::Unauthenticated("unknown or revoked API token".into()))?;
        if now >= token.expires_at {
            return Err(OpsError::Unauthenticated(format!(
                "API token {:?} expired at {}",
                token.name, token.expires_at
            )));
        }
        let user = records::get_user(&r, token.user_id)?
            .filter(|u| !u.disabled)
            .ok_or_else(|| OpsError::Unauthenticated("the token's user is disabled".into()))?;
        drop(r);
        if token
            .last_used_at
            .is_none_or(|t| now.duration_since(t) >= TOUCH_EVERY)
        {
            token.last_used_at = Some(now);
            let tx = self.store.write()?;
            records::update_token(&tx, &token)?;
            self.commit(tx, &[])?;
        }
        Ok(Actor {
            user_id: user.id,
            email: user.email,
            platform_admin: user.platform_admin,
            via: AuthVia::Token(token.id, token.scope),
            source: origin.ip.to_string(),
        })
    }

    /// Ends the caller's current session.
    /// Ends the session the request was made with. A request made with an API token has no
    /// session to end: it succeeds and the token stays valid (revoking it is
    /// `DELETE /me/tokens/{id}`), so a client may always call logout.
    pub fn logout(&self, actor: &Actor) -> OpsResult<()> {
        match actor.via {
            AuthVia::Session(sid) => self.revoke_session(actor, sid),
            _ => Ok(()),
        }
    }

    pub fn list_sessions(&self, actor: &Actor) -> OpsResult<Vec<SessionView>> {
        let r = self.store.read()?;
        let current = match actor.via {
            AuthVia::Session(s) => Some(s),
            _ => None,
        };
        Ok(records::list_user_sessions(&r, actor.user_id)?
            .into_iter()
            .map(|s| SessionView {
                id: s.id,
                created_at: s.created_at,
                last_seen_at: s.last_seen_at,
                expires_at: self.session_expires_at(&s),
                source: s.source.clone(),
                user_agent: s.user_agent.clone(),
                current: Some(s.id) == current,
            })
            .collect())
    }

    pub fn revoke_session(&self, actor: &Actor, id: SessionId) -> OpsResult<()> {
        let tx = self.store.write()?;
        let s = records::list_user_sessions(&tx, actor.user_id)?
            .into_iter()
            .find(|s| s.id == id)
            .ok_or(OpsError::NotFound("session"))?;
        records::delete_session(&tx, &s)?;
        records::append_audit(&tx, &self.event(actor, "auth.session.revoke", id, None))?;
        self.commit(tx, &[])
    }

    /// Changes the caller's password, ends their other sessions and revokes their API
    /// tokens (a token stolen with the old password must not outlive it). The current
    /// password is checked under the sign-in throttle.
    pub async fn change_password(
        &self,
        actor: &Actor,
        input: PasswordChange,
    ) -> OpsResult<PasswordChanged> {
        let user = {
            let r = self.store.read()?;
            records::get_user(&r, actor.user_id)?.ok_or(OpsError::NotFound("user"))?
        };
        if let Some(why) = self.sso_only_refusal(&user) {
            return Err(invalid("new_password", why));
        }
        self.reauthenticate(actor, &user, input.current_password, "current_password")
            .await?;
        check_password(
            &input.new_password,
            &user.email,
            self.settings.password_min_length,
        )
        .map_err(|p| invalid("new_password", p.to_string()))?;
        let hash = hash_password(input.new_password, self.fast_hashing).await?;
        let tx = self.store.write()?;
        let mut user = records::get_user(&tx, actor.user_id)?.ok_or(OpsError::NotFound("user"))?;
        user.password_hash = hash;
        user.password_changed_at = Some(self.now());
        records::update_user(&tx, &user)?;
        let keep = match actor.via {
            AuthVia::Session(s) => Some(s),
            _ => None,
        };
        let done = end_credentials(&tx, user.id, keep)?;
        let mut ev = self.event(actor, "user.password.change", &user.email, None);
        ev.detail = done.to_string();
        records::append_audit(&tx, &ev)?;
        self.commit(tx, &[])?;
        Ok(done)
    }

    /// The CSRF token bound to a session, for forms and the `X-CSRF-Token` header.
    pub fn csrf_token_matches(session: &Session, presented: &str) -> bool {
        let a = session.csrf_token.as_bytes();
        let b = presented.as_bytes();
        // Constant-time compare: the token is a secret.
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}
