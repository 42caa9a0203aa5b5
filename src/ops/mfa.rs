//! The second factor of local accounts: the sign-in's second step, enrolment (by the user from
//! their account, or forced at sign-in by `[mfa] require`), recovery codes, turning it off,
//! and reset by a platform administrator.
//!
//! A right password for an account with a second factor yields a *pending sign-in*: a random
//! token, held in memory only for [`PENDING_TTL`], that can do nothing but finish the sign-in
//! with a code. Codes are checked under the same throttle as passwords (keyed by the
//! account), each TOTP step is accepted once (the last step used is stored), and each
//! recovery code once (its digest is removed when used).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::LoggedIn;
use super::authz::require_platform_admin;
use super::secrets::{digest, new_secret};
use super::{Actor, AuthVia, Ops, OpsError, OpsResult, Origin, invalid, plus};
use crate::domain::mfa::{self as rules, CodeRefused, MfaRecord};
use crate::domain::*;
use crate::store::records;

/// How long a pending sign-in waits for its code.
pub const PENDING_TTL: Duration = Duration::from_secs(5 * 60);
/// Wrong codes one pending sign-in may take before the password must be entered again.
const PENDING_MAX_WRONG: u32 = 5;
/// Pending sign-ins held at once; beyond it the oldest are dropped, so sign-ins with
/// stolen passwords cannot fill memory.
const PENDING_MAX: usize = 10_000;

/// What a password sign-in leads to.
pub enum SignIn {
    /// Signed in.
    Done(Box<LoggedIn>),
    /// A second factor is needed first.
    SecondFactor(Challenge),
}

/// What the second step asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChallengeStep {
    /// A code from the authenticator app, or a recovery code.
    Code,
    /// Enrolment first: add the secret to an authenticator app, then send its code.
    Enrol,
}

/// A pending sign-in: send `pending_token` and a code to `POST /auth/login/code`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Challenge {
    pub second_factor: ChallengeStep,
    pub pending_token: String,
    pub expires_at: Timestamp,
    /// For `enrol`: the secret to add to an authenticator app.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enrolment: Option<Enrolment>,
}

/// A TOTP secret to add to an authenticator app, typed or as its `otpauth://` URI (the QR
/// code's content).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Enrolment {
    /// Base32, in groups of four.
    pub secret: String,
    pub otpauth_uri: String,
}

impl Enrolment {
    fn of(secret: &[u8], account: &str) -> Enrolment {
        Enrolment {
            secret: rules::secret_for_typing(secret),
            otpauth_uri: rules::otpauth_uri(secret, account),
        }
    }

    /// The QR code of the URI as an SVG document.
    pub fn qr_svg(&self) -> String {
        rules::qr_svg(&self.otpauth_uri).unwrap_or_default()
    }
}

/// The second step of a sign-in.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeInput {
    pub pending_token: String,
    /// Six digits from the authenticator app, or a recovery code.
    pub code: String,
}

/// A finished second step; `recovery_codes` is filled when it was an enrolment.
pub struct SecondFactorDone {
    pub logged_in: LoggedIn,
    pub recovery_codes: Vec<String>,
}

/// New recovery codes, shown once.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RecoveryCodes {
    pub recovery_codes: Vec<String>,
}

/// The caller's second factor.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MfaStatus {
    pub enabled: bool,
    /// Whether `[mfa] require` applies to the caller (then it cannot be turned off).
    pub required: bool,
    pub enabled_at: Option<Timestamp>,
    pub recovery_codes_left: usize,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordConfirm {
    pub current_password: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmCode {
    pub code: String,
}

struct Pending {
    user_id: UserId,
    /// Set when the user must enrol: the secret shown to them.
    enrol_secret: Option<Vec<u8>>,
    created_at: Timestamp,
    wrong: u32,
}

/// Sign-ins waiting for their second factor, by token digest.
#[derive(Default)]
pub struct PendingLogins(Mutex<HashMap<SecretDigest, Pending>>);

impl PendingLogins {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SecretDigest, Pending>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn source_ip(actor: &Actor) -> IpAddr {
    actor
        .source
        .parse()
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

fn unix(t: Timestamp) -> u64 {
    u64::try_from(t.as_second()).unwrap_or(0)
}

fn refusal(r: CodeRefused) -> OpsError {
    match r {
        CodeRefused::Malformed => invalid(
            "code",
            "enter the six digits your authenticator app shows, or a recovery code",
        ),
        CodeRefused::Wrong => invalid("code", "wrong code"),
        CodeRefused::Replayed => {
            invalid("code", "this code was already used; wait for the next one")
        }
    }
}

impl Ops {
    /// The pending sign-in for a user whose password was right.
    pub(crate) fn begin_second_factor(&self, user: &User, enrol: bool) -> Challenge {
        let now = self.now();
        let token = new_secret("");
        let enrol_secret = enrol.then(rules::new_secret);
        let enrolment = enrol_secret
            .as_deref()
            .map(|s| Enrolment::of(s, &user.email));
        let mut pending = self.pending_logins.lock();
        let horizon = now
            .checked_sub(jiff::SignedDuration::try_from(PENDING_TTL).unwrap_or_default())
            .unwrap_or(now);
        pending.retain(|_, p| p.created_at > horizon);
        while pending.len() >= PENDING_MAX {
            let oldest = pending
                .iter()
                .min_by_key(|(_, p)| p.created_at)
                .map(|(k, _)| *k);
            match oldest {
                Some(k) => pending.remove(&k),
                None => break,
            };
        }
        pending.insert(
            digest(&token),
            Pending {
                user_id: user.id,
                enrol_secret,
                created_at: now,
                wrong: 0,
            },
        );
        Challenge {
            second_factor: if enrol {
                ChallengeStep::Enrol
            } else {
                ChallengeStep::Code
            },
            pending_token: token,
            expires_at: plus(now, PENDING_TTL),
            enrolment,
        }
    }

    /// The enrolment a pending sign-in shows (for the console to draw it again after a
    /// wrong code); `None` when the token is unknown or asks for a code.
    pub fn pending_enrolment(&self, token: &str) -> OpsResult<Option<Enrolment>> {
        let (user_id, secret) = {
            let pending = self.pending_logins.lock();
            match pending.get(&digest(token)) {
                Some(Pending {
                    user_id,
                    enrol_secret: Some(s),
                    ..
                }) => (*user_id, s.clone()),
                _ => return Ok(None),
            }
        };
        let user = records::get_user(&self.store.read()?, user_id)?;
        Ok(user.map(|u| Enrolment::of(&secret, &u.email)))
    }

    /// Finishes a pending sign-in with a TOTP code or a recovery code (or, for an
    /// enrolment, the first code of the new secret), and opens the session.
    pub async fn complete_second_factor(
        &self,
        input: CodeInput,
        origin: &Origin,
    ) -> OpsResult<SecondFactorDone> {
        let now = self.now();
        let key = digest(&input.pending_token);
        let expired = || {
            OpsError::Unauthenticated(
                "this sign-in has expired; enter your e-mail address and password again".into(),
            )
        };
        let (user_id, enrol_secret) = {
            let mut pending = self.pending_logins.lock();
            match pending.get(&key) {
                Some(p) if now < plus(p.created_at, PENDING_TTL) => {
                    (p.user_id, p.enrol_secret.clone())
                }
                Some(_) => {
                    pending.remove(&key);
                    return Err(expired());
                }
                None => return Err(expired()),
            }
        };
        let user = {
            let r = self.store.read()?;
            records::get_user(&r, user_id)?
                .filter(|u| !u.disabled)
                .ok_or_else(expired)?
        };
        let reservation = self.reserve_attempt(&user.email, origin.ip)?;
        let checked = self.check_factor(&user, enrol_secret.as_deref(), &input.code, origin);
        let (detail, recovery_codes) = match checked {
            Ok(done) => done,
            Err(e) => {
                if matches!(e, OpsError::Invalid { .. }) {
                    self.attempt_failed(&reservation, origin.ip);
                    let mut pending = self.pending_logins.lock();
                    if let Some(p) = pending.get_mut(&key) {
                        p.wrong += 1;
                        if p.wrong >= PENDING_MAX_WRONG {
                            pending.remove(&key);
                        }
                    }
                    drop(pending);
                    self.audit_login_failure(
                        AuditEvent {
                            id: AuditId::generate(),
                            time: now,
                            actor: Some(user.id),
                            actor_label: user.email.clone(),
                            action: "auth.login".into(),
                            target: user.email.clone(),
                            org_id: None,
                            outcome: Outcome::Failure,
                            source: origin.ip.to_string(),
                            detail: String::new(),
                        },
                        format!("second factor refused: {e}"),
                    );
                } else {
                    self.attempt_cancelled(reservation);
                }
                return Err(e);
            }
        };
        self.pending_logins.lock().remove(&key);
        let known = self.attempt_succeeded(reservation);
        let logged_in = self.open_session(user, origin, known, detail)?;
        Ok(SecondFactorDone {
            logged_in,
            recovery_codes,
        })
    }

    /// Checks and uses up a code in one transaction: the step or recovery code it matched
    /// cannot be used again, even by a concurrent request. What the audit record says, and
    /// the recovery codes of a new enrolment.
    fn check_factor(
        &self,
        user: &User,
        enrol_secret: Option<&[u8]>,
        code: &str,
        origin: &Origin,
    ) -> OpsResult<(&'static str, Vec<String>)> {
        let now = self.now();
        let tx = self.store.write()?;
        let stored = records::get_mfa(&tx, user.id)?;
        let out = if let Some(secret) = enrol_secret {
            if stored.as_ref().is_some_and(MfaRecord::enabled) {
                return Err(OpsError::Conflict(
                    "a second factor was set up meanwhile; sign in again".into(),
                ));
            }
            let step = rules::check_code(secret, code, unix(now), 0).map_err(refusal)?;
            let (codes, digests) = rules::new_recovery_codes();
            let mut m = MfaRecord::new(user.id);
            m.secret = Some(secret.to_vec());
            m.last_step = step;
            m.enabled_at = Some(now);
            m.recovery = digests;
            records::put_mfa(&tx, &m)?;
            let mut ev = self.user_event(user, "user.mfa.enable", now);
            ev.source = origin.ip.to_string();
            ev.detail = "set up at sign-in".into();
            records::append_audit(&tx, &ev)?;
            ("second factor enrolled", codes)
        } else {
            let mut m = stored
                .filter(MfaRecord::enabled)
                .ok_or_else(|| OpsError::Unauthenticated("sign in again".into()))?;
            let detail = if rules::is_recovery_code(code) {
                let d = rules::recovery_digest(code);
                let before = m.recovery.len();
                m.recovery.retain(|x| *x != d);
                if m.recovery.len() == before {
                    return Err(invalid("code", "wrong or already used recovery code"));
                }
                "recovery code"
            } else {
                let secret = m.secret.clone().unwrap_or_default();
                m.last_step =
                    rules::check_code(&secret, code, unix(now), m.last_step).map_err(refusal)?;
                "authenticator code"
            };
            records::put_mfa(&tx, &m)?;
            (detail, Vec::new())
        };
        self.commit(tx, &[])?;
        Ok(out)
    }

    fn user_event(&self, user: &User, action: &str, now: Timestamp) -> AuditEvent {
        AuditEvent {
            id: AuditId::generate(),
            time: now,
            actor: Some(user.id),
            actor_label: user.email.clone(),
            action: action.into(),
            target: user.email.clone(),
            org_id: None,
            outcome: Outcome::Success,
            source: String::new(),
            detail: String::new(),
        }
    }

    /// The caller's second factor.
    pub fn mfa_status(&self, actor: &Actor) -> OpsResult<MfaStatus> {
        let r = self.store.read()?;
        let m = records::get_mfa(&r, actor.user_id)?.filter(MfaRecord::enabled);
        Ok(MfaStatus {
            enabled: m.is_some(),
            required: self.settings.mfa_require.applies_to(actor.platform_admin),
            enabled_at: m.as_ref().and_then(|m| m.enabled_at),
            recovery_codes_left: m.map_or(0, |m| m.recovery.len()),
        })
    }

    /// Changes to the second factor need a session and the password: neither an API token
    /// nor a browser left open may change how its owner signs in.
    async fn confirm_owner(&self, actor: &Actor, password: String) -> OpsResult<User> {
        if !matches!(actor.via, AuthVia::Session(_)) {
            return Err(OpsError::Forbidden(
                "sign in with your password to change your second factor".into(),
            ));
        }
        let user = {
            let r = self.store.read()?;
            records::get_user(&r, actor.user_id)?.ok_or(OpsError::NotFound("user"))?
        };
        self.reauthenticate(actor, &user, password, "current_password")
            .await?;
        Ok(user)
    }

    /// Starts enrolment from the account page: a new secret, active once a code of it is
    /// confirmed.
    pub async fn start_mfa_enrolment(
        &self,
        actor: &Actor,
        input: PasswordConfirm,
    ) -> OpsResult<Enrolment> {
        let user = self.confirm_owner(actor, input.current_password).await?;
        let tx = self.store.write()?;
        let mut m = records::get_mfa(&tx, user.id)?.unwrap_or_else(|| MfaRecord::new(user.id));
        if m.enabled() {
            return Err(OpsError::Conflict(
                "a second factor is already set up; turn it off first to set up another".into(),
            ));
        }
        let secret = rules::new_secret();
        let shown = Enrolment::of(&secret, &user.email);
        m.pending_secret = Some(secret);
        records::put_mfa(&tx, &m)?;
        self.commit(tx, &[])?;
        Ok(shown)
    }

    /// The enrolment started from the account page and not yet confirmed, if any.
    pub fn mfa_enrolment_in_progress(&self, actor: &Actor) -> OpsResult<Option<Enrolment>> {
        let r = self.store.read()?;
        Ok(records::get_mfa(&r, actor.user_id)?
            .filter(|m| !m.enabled())
            .and_then(|m| m.pending_secret)
            .map(|s| Enrolment::of(&s, &actor.email)))
    }

    /// Confirms enrolment with a code of the new secret; the recovery codes, shown once.
    pub fn confirm_mfa_enrolment(
        &self,
        actor: &Actor,
        input: ConfirmCode,
    ) -> OpsResult<RecoveryCodes> {
        if !matches!(actor.via, AuthVia::Session(_)) {
            return Err(OpsError::Forbidden(
                "sign in with your password to change your second factor".into(),
            ));
        }
        let now = self.now();
        let ip = source_ip(actor);
        let reservation = self.reserve_attempt(&actor.email, ip)?;
        let tx = self.store.write()?;
        let mut m = match records::get_mfa(&tx, actor.user_id)? {
            Some(m) if !m.enabled() && m.pending_secret.is_some() => m,
            _ => {
                self.attempt_cancelled(reservation);
                return Err(OpsError::Conflict(
                    "no set-up in progress; start again from your account page".into(),
                ));
            }
        };
        let secret = m.pending_secret.take().unwrap_or_default();
        let step = match rules::check_code(&secret, &input.code, unix(now), 0) {
            Ok(s) => s,
            Err(r) => {
                drop(tx);
                self.attempt_failed(&reservation, ip);
                return Err(refusal(r));
            }
        };
        let (codes, digests) = rules::new_recovery_codes();
        m.secret = Some(secret);
        m.last_step = step;
        m.enabled_at = Some(now);
        m.recovery = digests;
        records::put_mfa(&tx, &m)?;
        records::append_audit(
            &tx,
            &self.event(actor, "user.mfa.enable", &actor.email, None),
        )?;
        self.commit(tx, &[])?;
        self.attempt_succeeded(reservation);
        Ok(RecoveryCodes {
            recovery_codes: codes,
        })
    }

    /// Replaces the caller's recovery codes (the old ones stop working).
    pub async fn regenerate_recovery_codes(
        &self,
        actor: &Actor,
        input: PasswordConfirm,
    ) -> OpsResult<RecoveryCodes> {
        let user = self.confirm_owner(actor, input.current_password).await?;
        let tx = self.store.write()?;
        let mut m = records::get_mfa(&tx, user.id)?
            .filter(MfaRecord::enabled)
            .ok_or_else(|| OpsError::Conflict("no second factor is set up".into()))?;
        let (codes, digests) = rules::new_recovery_codes();
        m.recovery = digests;
        records::put_mfa(&tx, &m)?;
        records::append_audit(
            &tx,
            &self.event(actor, "user.mfa.recovery_codes", &user.email, None),
        )?;
        self.commit(tx, &[])?;
        Ok(RecoveryCodes {
            recovery_codes: codes,
        })
    }

    /// Turns the caller's second factor off, unless `[mfa] require` applies to them.
    pub async fn disable_mfa(&self, actor: &Actor, input: PasswordConfirm) -> OpsResult<()> {
        let user = self.confirm_owner(actor, input.current_password).await?;
        if self.settings.mfa_require.applies_to(user.platform_admin) {
            return Err(OpsError::Conflict(
                "a second factor is required for your account; it cannot be turned off".into(),
            ));
        }
        let tx = self.store.write()?;
        if records::get_mfa(&tx, user.id)?.is_none() {
            return Err(OpsError::Conflict("no second factor is set up".into()));
        }
        records::delete_mfa(&tx, user.id)?;
        records::append_audit(
            &tx,
            &self.event(actor, "user.mfa.disable", &user.email, None),
        )?;
        self.commit(tx, &[])
    }

    /// Removes someone's second factor (platform administrators), for a lost phone: they
    /// sign in with their password, and enrol again if one is required.
    pub fn reset_mfa(&self, actor: &Actor, id: UserId) -> OpsResult<()> {
        require_platform_admin(actor)?;
        let tx = self.store.write()?;
        let u = records::get_user(&tx, id)?.ok_or(OpsError::NotFound("user"))?;
        if records::get_mfa(&tx, id)?.is_none_or(|m| !m.enabled()) {
            return Err(OpsError::Conflict(format!(
                "{} has no second factor set up",
                u.email
            )));
        }
        records::delete_mfa(&tx, id)?;
        records::append_audit(&tx, &self.event(actor, "user.mfa.reset", &u.email, None))?;
        self.commit(tx, &[])
    }

    /// Which of `ids` have a second factor (the administrators' user list shows it).
    pub fn users_with_mfa(&self, ids: &[UserId]) -> OpsResult<Vec<UserId>> {
        let r = self.store.read()?;
        let mut out = Vec::new();
        for id in ids {
            if records::get_mfa(&r, *id)?.is_some_and(|m| m.enabled()) {
                out.push(*id);
            }
        }
        Ok(out)
    }
}
