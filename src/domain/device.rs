//! The OAuth 2.0 device authorization grant (RFC 8628) as pure state: a terminal asks for a
//! grant and polls with its secret device code; a signed-in person enters the short user
//! code in the console and approves or denies it. Grants live minutes, so they are kept in
//! memory (a restart ends pending sign-ins, which the terminal reports as expired).
//!
//! Invariants: a grant is found by the digest of its device code, never the code itself; a
//! decided, expired or answered grant is removed when its poller learns the outcome, so one
//! approval yields at most one credential; a poll sooner than the interval is answered
//! `slow_down` and the interval grows by five seconds (RFC 8628 §3.5); at most
//! [`MAX_PENDING`] grants exist at once, and at most [`MAX_PENDING_PER_ADDRESS`] of them
//! were asked for from one client address, so one client cannot fill the table and lock
//! everyone else out of `kaas login --device`.

use std::collections::HashMap;
use std::net::IpAddr;

use jiff::{SignedDuration, Timestamp};

use super::UserId;

/// The letters of a user code: consonants only, so no word and no look-alike (0/O, 1/I) can
/// be formed (RFC 8628 §6.1). 20 letters, 8 of them: about 2^34 codes.
pub const USER_CODE_ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
/// Letters in a user code (shown as two groups of four).
pub const USER_CODE_LEN: usize = 8;
/// How long a person has to approve.
pub const GRANT_LIFETIME: SignedDuration = SignedDuration::from_secs(600);
/// The polling interval a terminal is told to keep, in seconds.
pub const POLL_INTERVAL_SECS: u64 = 5;
/// Pending grants held at once; more are refused until some expire.
pub const MAX_PENDING: usize = 1000;
/// Pending grants asked for from one client address. Generous for an office behind one NAT
/// address (each person signs in once), far below [`MAX_PENDING`].
pub const MAX_PENDING_PER_ADDRESS: usize = 10;

/// What the person in the console decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Pending,
    Approved(UserId),
    Denied,
}

/// One grant, as kept between its start and its last poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Normalized (upper case, no separator).
    pub user_code: String,
    /// What the terminal called itself, shown to the approver and given to the API token.
    pub client_name: String,
    pub expires_at: Timestamp,
    pub interval_secs: u64,
    /// The client address that asked for it, for the per-address limit.
    requested_from: IpAddr,
    last_poll: Option<Timestamp>,
    pub decision: Decision,
}

/// The answer to one poll (RFC 8628 §3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll {
    /// Not decided yet.
    Pending,
    /// Polled too soon; wait this many seconds from now on.
    SlowDown(u64),
    /// Approved by this user: mint the credential now (the grant is gone).
    Approved(UserId),
    Denied,
    /// Expired, already answered, or never existed.
    Expired,
}

/// Why a grant could not be started or decided.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    #[error("too many sign-ins are waiting for approval; try again in a few minutes")]
    Full,
    /// This address already has [`MAX_PENDING_PER_ADDRESS`] grants waiting; the oldest
    /// expires after `retry_after`.
    #[error("too many device sign-ins are waiting from this address")]
    TooManyFromAddress { retry_after: SignedDuration },
    #[error("the code is taken")]
    CodeTaken,
    #[error(
        "no sign-in is waiting for this code (it may have expired); start again with kaas login --device"
    )]
    UnknownCode,
}

/// The pending grants, by device-code digest.
#[derive(Debug, Default)]
pub struct Grants {
    by_device: HashMap<[u8; 32], Grant>,
}

/// A user code as typed: upper case, separators and spaces dropped.
pub fn normalize_user_code(typed: &str) -> String {
    typed
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// A user code as shown: `BCDF-GHJK`.
pub fn display_user_code(code: &str) -> String {
    let code = normalize_user_code(code);
    match (code.get(..4), code.get(4..)) {
        (Some(a), Some(b)) if !b.is_empty() => format!("{a}-{b}"),
        _ => code,
    }
}

/// A user code from `USER_CODE_LEN` random numbers (any range; each is reduced modulo the
/// alphabet).
pub fn user_code_from(random: &[u8; USER_CODE_LEN]) -> String {
    random
        .iter()
        .filter_map(|r| {
            USER_CODE_ALPHABET
                .get(usize::from(*r) % USER_CODE_ALPHABET.len())
                .map(|b| char::from(*b))
        })
        .collect()
}

impl Grants {
    fn prune(&mut self, now: Timestamp) {
        self.by_device.retain(|_, g| now < g.expires_at);
    }

    /// Records a new grant; the caller generated both codes.
    pub fn start(
        &mut self,
        device_digest: [u8; 32],
        user_code: &str,
        client_name: String,
        requested_from: IpAddr,
        now: Timestamp,
    ) -> Result<&Grant, GrantError> {
        self.prune(now);
        let from_here = || {
            self.by_device
                .values()
                .filter(|g| g.requested_from == requested_from)
        };
        if from_here().count() >= MAX_PENDING_PER_ADDRESS {
            let oldest = from_here().map(|g| g.expires_at).min().unwrap_or(now);
            return Err(GrantError::TooManyFromAddress {
                retry_after: oldest.duration_since(now),
            });
        }
        if self.by_device.len() >= MAX_PENDING {
            return Err(GrantError::Full);
        }
        let user_code = normalize_user_code(user_code);
        if self.by_device.values().any(|g| g.user_code == user_code) {
            return Err(GrantError::CodeTaken);
        }
        let grant = Grant {
            user_code,
            client_name,
            expires_at: now.saturating_add(GRANT_LIFETIME).unwrap_or(now),
            interval_secs: POLL_INTERVAL_SECS,
            requested_from,
            last_poll: None,
            decision: Decision::Pending,
        };
        Ok(self.by_device.entry(device_digest).or_insert(grant))
    }

    /// The pending, undecided grant a typed user code names.
    pub fn pending(&self, typed: &str, now: Timestamp) -> Option<&Grant> {
        let code = normalize_user_code(typed);
        self.by_device
            .values()
            .find(|g| g.user_code == code && now < g.expires_at && g.decision == Decision::Pending)
    }

    /// Approves (for `user`) or denies the pending grant a typed user code names; returns
    /// the client's name. A grant is decided once.
    pub fn decide(
        &mut self,
        typed: &str,
        approve: Option<UserId>,
        now: Timestamp,
    ) -> Result<String, GrantError> {
        let code = normalize_user_code(typed);
        let grant = self
            .by_device
            .values_mut()
            .find(|g| g.user_code == code && now < g.expires_at && g.decision == Decision::Pending)
            .ok_or(GrantError::UnknownCode)?;
        grant.decision = approve.map_or(Decision::Denied, Decision::Approved);
        Ok(grant.client_name.clone())
    }

    /// One poll by the terminal holding the device code whose digest is given.
    pub fn poll(&mut self, device_digest: &[u8; 32], now: Timestamp) -> (Poll, Option<Grant>) {
        let Some(grant) = self.by_device.get_mut(device_digest) else {
            return (Poll::Expired, None);
        };
        if now >= grant.expires_at {
            self.by_device.remove(device_digest);
            return (Poll::Expired, None);
        }
        let too_soon = grant.last_poll.is_some_and(|last| {
            now.duration_since(last) < SignedDuration::from_secs(grant.interval_secs as i64)
        });
        grant.last_poll = Some(now);
        match grant.decision {
            Decision::Pending if too_soon => {
                grant.interval_secs += 5;
                (Poll::SlowDown(grant.interval_secs), None)
            }
            Decision::Pending => (Poll::Pending, None),
            Decision::Approved(user) => {
                (Poll::Approved(user), self.by_device.remove(device_digest))
            }
            Decision::Denied => (Poll::Denied, self.by_device.remove(device_digest)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn here() -> IpAddr {
        "192.0.2.1".parse().unwrap()
    }

    #[test]
    fn user_codes_are_typed_loosely_and_shown_in_two_groups() {
        assert_eq!(normalize_user_code("bcdf-ghjk "), "BCDFGHJK");
        assert_eq!(display_user_code("bcdfghjk"), "BCDF-GHJK");
        let code = user_code_from(&[0, 1, 2, 3, 19, 20, 255, 7]);
        assert_eq!(code.len(), USER_CODE_LEN);
        assert!(code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)));
    }

    #[test]
    fn an_approved_grant_answers_its_poller_once() {
        let mut g = Grants::default();
        g.start([1; 32], "BCDF-GHJK", "laptop".into(), here(), t(0))
            .unwrap();
        assert_eq!(g.poll(&[1; 32], t(0)).0, Poll::Pending);
        assert_eq!(g.pending("bcdfghjk", t(1)).unwrap().client_name, "laptop");
        assert_eq!(
            g.decide("bcdf ghjk", Some(UserId(7)), t(2)).unwrap(),
            "laptop"
        );
        // Decided once: a second approval finds nothing pending.
        assert_eq!(
            g.decide("BCDFGHJK", None, t(3)),
            Err(GrantError::UnknownCode)
        );
        assert_eq!(g.poll(&[1; 32], t(6)).0, Poll::Approved(UserId(7)));
        assert_eq!(g.poll(&[1; 32], t(12)).0, Poll::Expired);
    }

    #[test]
    fn polling_too_fast_slows_the_poller_down_and_denial_and_expiry_end_the_grant() {
        let mut g = Grants::default();
        g.start([2; 32], "BBBBBBBB", "x".into(), here(), t(0))
            .unwrap();
        assert_eq!(g.poll(&[2; 32], t(1)).0, Poll::Pending);
        assert_eq!(g.poll(&[2; 32], t(2)).0, Poll::SlowDown(10));
        assert_eq!(g.poll(&[2; 32], t(8)).0, Poll::SlowDown(15));
        assert_eq!(g.poll(&[2; 32], t(30)).0, Poll::Pending);
        g.decide("BBBBBBBB", None, t(31)).unwrap();
        assert_eq!(g.poll(&[2; 32], t(50)).0, Poll::Denied);
        assert_eq!(g.poll(&[2; 32], t(60)).0, Poll::Expired);

        g.start([3; 32], "CCCCCCCC", "y".into(), here(), t(0))
            .unwrap();
        assert!(g.pending("CCCCCCCC", t(599)).is_some());
        assert!(g.pending("CCCCCCCC", t(600)).is_none());
        assert_eq!(g.poll(&[3; 32], t(600)).0, Poll::Expired);
        // A taken user code is refused; an unknown device code is expired.
        g.start([4; 32], "DDDDDDDD", "z".into(), here(), t(0))
            .unwrap();
        assert_eq!(
            g.start([5; 32], "DDDD-DDDD", "z".into(), here(), t(1))
                .err(),
            Some(GrantError::CodeTaken)
        );
        assert_eq!(g.poll(&[9; 32], t(1)).0, Poll::Expired);
    }

    #[test]
    fn one_address_cannot_fill_the_table_for_everyone_else() {
        let mut g = Grants::default();
        let code = |i: usize| user_code_from(&[i as u8, (i / 20) as u8, 0, 0, 0, 0, 0, 1]);
        for i in 0..MAX_PENDING_PER_ADDRESS {
            g.start([i as u8; 32], &code(i), "x".into(), here(), t(i as i64))
                .unwrap();
        }
        // The next one from the same address waits until its oldest grant expires.
        assert_eq!(
            g.start([99; 32], &code(99), "x".into(), here(), t(100))
                .err(),
            Some(GrantError::TooManyFromAddress {
                retry_after: SignedDuration::from_secs(500)
            })
        );
        // Another address is served, and the first one again once its oldest expired.
        let elsewhere: IpAddr = "2001:db8::7".parse().unwrap();
        g.start([98; 32], &code(98), "y".into(), elsewhere, t(100))
            .unwrap();
        g.start([99; 32], &code(99), "x".into(), here(), t(600))
            .unwrap();
    }
}
