//! Login throttling wired to the store: every password check (sign-in, and a signed-in
//! user's current password when changing it or creating an API token) reserves its attempt
//! first, so a throttled attempt costs no password hash and concurrent guesses cannot all
//! pass one check; failures are stored (pruned past the throttle's horizon), so a restart
//! does not hand an attacker a fresh allowance.

use std::net::{IpAddr, Ipv4Addr};

use super::secrets::verify_password;
use super::{Actor, Ops, OpsError, OpsResult, invalid};
use crate::domain::password::MAX_PASSWORD_CHARS;
use crate::domain::throttle::{Reservation, StoredFailure, StoredKnown};
use crate::domain::*;
use crate::store::records;

impl Ops {
    /// Rebuilds login throttling from the store, pruning what can no longer count; run once
    /// at start-up. Returns how many stored failures still count.
    pub fn restore_throttle(&self) -> OpsResult<usize> {
        let now = self.now();
        let failure_horizon = self.throttle.failure_horizon(now);
        let known_horizon = self.throttle.known_horizon(now);
        let tx = self.store.write()?;
        records::prune_login_failures(&tx, failure_horizon)?;
        let failures = records::list_login_failures(&tx, failure_horizon)?;
        let mut known = records::list_login_known(&tx)?;
        for k in &mut known {
            let before = k.sources.len();
            k.sources.retain(|(_, at)| *at > known_horizon);
            if k.sources.len() != before {
                records::put_login_known(&tx, k)?;
            }
        }
        self.commit(tx, &[])?;
        self.throttle.restore(&failures, &known);
        Ok(failures.len())
    }

    /// Counts a password attempt for `account` from `ip` before the password is checked;
    /// refused (429) without hashing while throttled.
    pub(crate) fn reserve_attempt(&self, account: &str, ip: IpAddr) -> OpsResult<Reservation> {
        self.throttle
            .reserve(account, ip, self.now())
            .map_err(|t| OpsError::Throttled(t.retry_after))
    }

    /// The reserved attempt had a wrong password: it stays counted, and is stored so that
    /// it still counts after a restart. NB: a store error is logged, not returned: the
    /// attempt is counted in memory either way, and "wrong password" must not become a
    /// server error.
    pub(crate) fn attempt_failed(&self, r: &Reservation, ip: IpAddr) {
        let f = StoredFailure {
            at: r.at(),
            account: r.account().to_string(),
            ip,
        };
        let horizon = self.throttle.failure_horizon(self.now());
        let stored = self.store.write().map_err(OpsError::from).and_then(|tx| {
            records::append_login_failure(&tx, &f, horizon, self.throttle.max_entries())?;
            self.commit(tx, &[])
        });
        if let Err(e) = stored {
            tracing::warn!(error = %e, "could not store a failed password attempt; it counts until kaas restarts");
        }
    }

    /// The reserved attempt had the right password; the account's known sources to store.
    pub(crate) fn attempt_succeeded(&self, r: Reservation) -> StoredKnown {
        let account = r.account().to_string();
        self.throttle.succeeded(r);
        StoredKnown {
            sources: self.throttle.known_sources(&account),
            account,
        }
    }

    /// The sources `account` recently signed in from (a sign-in without a password adds
    /// none, but the stored list is rewritten with the session).
    pub(crate) fn throttle_known(&self, account: &str) -> Vec<(IpAddr, jiff::Timestamp)> {
        self.throttle.known_sources(account)
    }

    /// The reserved attempt was never decided (hashing failed): it counts for nothing.
    pub(crate) fn attempt_cancelled(&self, r: Reservation) {
        self.throttle.cancel(r);
    }

    /// Checks a signed-in user's password again (changing it, creating an API token), with
    /// the sign-in throttle of their account: a stolen session cannot guess it quickly
    /// either. A wrong password is a 422 naming `field`; too many, a 429.
    pub(crate) async fn reauthenticate(
        &self,
        actor: &Actor,
        user: &User,
        password: String,
        field: &'static str,
    ) -> OpsResult<()> {
        if password.is_empty() {
            return Err(invalid(field, "enter your current password"));
        }
        if password.chars().count() > MAX_PASSWORD_CHARS {
            return Err(invalid(field, "is not your current password"));
        }
        // A session's or token's source is the client address; the shell's is not an
        // address and counts as this machine.
        let ip = actor
            .source
            .parse()
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let r = self.reserve_attempt(&user.email, ip)?;
        match verify_password(password, user.password_hash.clone()).await {
            Ok(true) => {
                self.attempt_succeeded(r);
                Ok(())
            }
            Ok(false) => {
                self.attempt_failed(&r, ip);
                Err(invalid(field, "is not your current password"))
            }
            Err(e) => {
                self.attempt_cancelled(r);
                Err(e)
            }
        }
    }
}
