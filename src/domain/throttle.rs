//! Login throttling: slows password guessing without letting an attacker lock the real user out.
//! Pure and in memory; the clock is passed in. The same counters guard every place a password
//! is checked for a signed-in account (password change, token creation).
//!
//! The rules (numbers are [`ThrottlePolicy::default`]):
//! - **Per (account, source)**: after 5 consecutive failures, each further attempt must wait
//!   2^(n-5) seconds after the last failure (n = consecutive failures), capped at 15 minutes.
//!   The count is forgotten 24 hours after the last failure. Scope `AccountFromAddress`.
//! - **Per source (all accounts)**: after 30 failures within 15 minutes, the same exponential
//!   rule applies to n = failures in the window, capped at 15 minutes. This slows credential
//!   stuffing across many accounts. Scope `Address`.
//! - **Per account (all sources)**: after 20 failures within 15 minutes, the same rule, capped
//!   at 5 minutes, EXCEPT for a source that signed in to this account successfully within the
//!   last 30 days (a "known address"), so a distributed attack cannot keep the real user out.
//!   Scope `Account`.
//! - A success clears the (account, source) count and records the source as known. It does NOT
//!   clear the per-source or per-account windows: otherwise an attacker could reset their
//!   per-source budget by signing in to an account of their own.
//!
//! A "source" is an IPv4 address or an IPv6 /64 (one subscriber's usual allocation, so rotating
//! addresses inside it does not escape the per-source limit); IPv4-mapped IPv6 counts as IPv4.
//! Account keys are trimmed and lower-cased.
//!
//! Contract for callers: [`LoginThrottle::reserve`] before verifying a password. It checks
//! and, in the same critical section, counts the attempt as a failure, so concurrent guesses
//! cannot all pass one check before any is counted; on a right password the caller hands the
//! [`Reservation`] to [`LoginThrottle::succeeded`], which takes the failure back. Refused
//! attempts are not counted, so a waiting user's retries do not lengthen their own wait.
//!
//! Persistence is the caller's: failures and known sources are plain values
//! ([`Reservation::at`], [`LoginThrottle::known_sources`]) to store, and replaying them in time
//! order through `record_failure`/`record_success` rebuilds the state after a restart.
//!
//! Memory is bounded: each map holds at most `max_entries` keys (the oldest tenth is evicted
//! when full, after dropping expired entries), each window keeps only the most recent
//! failures that can still change the delay, and each account remembers at most
//! `MAX_KNOWN_PER_ACCOUNT` known sources.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Known sources remembered per account; the least recently used is forgotten beyond this.
const MAX_KNOWN_PER_ACCOUNT: usize = 8;
/// Failures kept beyond the free allowance: 2^20 s exceeds any sensible cap, so older
/// failures could not change the delay.
const WINDOW_EXTRA: usize = 20;

/// Which limit refused the attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleScope {
    /// Too many failures for this account from all sources.
    Account,
    /// Too many failures from this source across all accounts.
    Address,
    /// Too many consecutive failures for this account from this source.
    AccountFromAddress,
}

/// An attempt refused for now; `retry_after` is exact (the HTTP `Retry-After` header wants
/// [`Throttled::retry_after_secs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many failed sign-in attempts; try again in {} seconds", self.retry_after_secs())]
pub struct Throttled {
    pub retry_after: Duration,
    pub scope: ThrottleScope,
}

impl Throttled {
    /// `retry_after` rounded up to whole seconds (at least 1).
    pub fn retry_after_secs(&self) -> u64 {
        let secs = self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0);
        secs.max(1)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottlePolicy {
    pub pair_free_failures: u32,
    pub pair_max_delay: Duration,
    /// A pair with no failure for this long starts again from zero.
    pub pair_forget_after: Duration,
    pub address_free_failures: u32,
    pub address_window: Duration,
    pub address_max_delay: Duration,
    pub account_free_failures: u32,
    pub account_window: Duration,
    pub account_max_delay: Duration,
    pub known_address_ttl: Duration,
    /// Upper bound on keys in each map.
    pub max_entries: usize,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        const MIN: u64 = 60;
        ThrottlePolicy {
            pair_free_failures: 5,
            pair_max_delay: Duration::from_secs(15 * MIN),
            pair_forget_after: Duration::from_secs(24 * 60 * MIN),
            address_free_failures: 30,
            address_window: Duration::from_secs(15 * MIN),
            address_max_delay: Duration::from_secs(15 * MIN),
            account_free_failures: 20,
            account_window: Duration::from_secs(15 * MIN),
            account_max_delay: Duration::from_secs(5 * MIN),
            known_address_ttl: Duration::from_secs(30 * 24 * 60 * MIN),
            max_entries: 100_000,
        }
    }
}

/// An IPv4 address or an IPv6 /64 prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Source {
    V4(u32),
    V6Prefix(u64),
}

impl From<IpAddr> for Source {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Source::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source::V4(u32::from(v4)),
                None => Source::V6Prefix((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

impl Source {
    /// An address inside this source (the /64's first address for IPv6), for storing:
    /// `Source::from(s.representative()) == s`.
    fn representative(self) -> IpAddr {
        match self {
            Source::V4(v) => IpAddr::V4(std::net::Ipv4Addr::from(v)),
            Source::V6Prefix(p) => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(p) << 64)),
        }
    }
}

/// A failed password attempt as stored, so that throttling survives a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFailure {
    pub at: Timestamp,
    pub account: String,
    pub ip: IpAddr,
}

/// The sources an account recently signed in from, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredKnown {
    pub account: String,
    pub sources: Vec<(IpAddr, Timestamp)>,
}

/// An attempt that passed [`LoginThrottle::reserve`]: it already counts as a failure at
/// [`Reservation::at`] until handed to [`LoginThrottle::succeeded`].
#[derive(Debug)]
#[must_use = "a reservation counts as a failure unless handed to `succeeded`"]
pub struct Reservation {
    account: String,
    source: Source,
    at_ms: i64,
}

impl Reservation {
    /// The normalised account key.
    pub fn account(&self) -> &str {
        &self.account
    }
    /// When the attempt was counted (for storing the failure).
    pub fn at(&self) -> Timestamp {
        Timestamp::from_millisecond(self.at_ms).unwrap_or(Timestamp::UNIX_EPOCH)
    }
}

#[derive(Debug)]
struct Pair {
    failures: u32,
    last_failure_ms: i64,
}

/// Timestamps (ms) of the most recent failures, oldest first.
#[derive(Debug, Default)]
struct Window(VecDeque<i64>);

impl Window {
    fn count_since(&self, since_ms: i64) -> usize {
        self.0.iter().filter(|t| **t > since_ms).count()
    }
    fn last(&self) -> Option<i64> {
        self.0.iter().copied().max()
    }
    /// Takes back one failure recorded at `at_ms` (a reservation that succeeded).
    fn remove_one(&mut self, at_ms: i64) {
        if let Some(i) = self.0.iter().rposition(|t| *t == at_ms) {
            self.0.remove(i);
        }
    }
    fn push(&mut self, now_ms: i64, since_ms: i64, keep: usize) {
        self.0.retain(|t| *t > since_ms);
        self.0.push_back(now_ms);
        while self.0.len() > keep {
            self.0.pop_front();
        }
    }
}

#[derive(Debug, Default)]
struct State {
    pairs: HashMap<(String, Source), Pair>,
    sources: HashMap<Source, Window>,
    accounts: HashMap<String, Window>,
    /// account → (source, last success ms), most recent last.
    known: HashMap<String, Vec<(Source, i64)>>,
}

pub struct LoginThrottle {
    policy: ThrottlePolicy,
    state: Mutex<State>,
}

impl LoginThrottle {
    pub fn new(policy: ThrottlePolicy) -> Self {
        LoginThrottle {
            policy,
            state: Mutex::new(State::default()),
        }
    }

    /// Whether an attempt for `account` from `ip` may proceed now. When several limits apply,
    /// the longest wait is reported.
    pub fn check(&self, account: &str, ip: IpAddr, now: Timestamp) -> Result<(), Throttled> {
        let account = normalise(account);
        let state = self.lock();
        check_locked(
            &self.policy,
            &state,
            &account,
            Source::from(ip),
            now.as_millisecond(),
        )
    }

    /// [`LoginThrottle::check`] and, if it passes, counts the attempt as a failure, both under
    /// one lock: of many concurrent attempts only as many pass as the free allowance.
    pub fn reserve(
        &self,
        account: &str,
        ip: IpAddr,
        now: Timestamp,
    ) -> Result<Reservation, Throttled> {
        let account = normalise(account);
        let source = Source::from(ip);
        let now_ms = now.as_millisecond();
        let mut state = self.lock();
        check_locked(&self.policy, &state, &account, source, now_ms)?;
        fail_locked(&self.policy, &mut state, &account, source, now_ms);
        Ok(Reservation {
            account,
            source,
            at_ms: now_ms,
        })
    }

    /// The reserved attempt had the right password: its failure is taken back, the pair's
    /// count cleared and the source remembered as known (see [`LoginThrottle::record_success`]).
    pub fn succeeded(&self, r: Reservation) {
        let mut state = self.lock();
        let st = &mut *state;
        if let Some(w) = st.sources.get_mut(&r.source) {
            w.remove_one(r.at_ms);
        }
        if let Some(w) = st.accounts.get_mut(&r.account) {
            w.remove_one(r.at_ms);
        }
        success_locked(&self.policy, st, &r.account, r.source, r.at_ms);
    }

    /// The reserved attempt could not be decided (the password was never checked): it is
    /// taken back as if it had not been made.
    pub fn cancel(&self, r: Reservation) {
        let mut state = self.lock();
        let st = &mut *state;
        if let Some(w) = st.sources.get_mut(&r.source) {
            w.remove_one(r.at_ms);
        }
        if let Some(w) = st.accounts.get_mut(&r.account) {
            w.remove_one(r.at_ms);
        }
        let key = (r.account, r.source);
        if let Some(pair) = st.pairs.get_mut(&key) {
            pair.failures = pair.failures.saturating_sub(1);
            if pair.failures == 0 {
                st.pairs.remove(&key);
            }
        }
    }

    /// The sources `account` signed in from recently, with when (for storing).
    pub fn known_sources(&self, account: &str) -> Vec<(IpAddr, Timestamp)> {
        let state = self.lock();
        state
            .known
            .get(&normalise(account))
            .map(|list| {
                list.iter()
                    .filter_map(|(s, ms)| {
                        Some((s.representative(), Timestamp::from_millisecond(*ms).ok()?))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Failures older than this cannot change any delay any more: stored ones may be pruned.
    pub fn failure_horizon(&self, now: Timestamp) -> Timestamp {
        let p = &self.policy;
        let keep = p
            .pair_forget_after
            .max(p.address_window)
            .max(p.account_window);
        now.checked_sub(keep).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    /// Known sources older than this no longer count: stored ones may be pruned.
    pub fn known_horizon(&self, now: Timestamp) -> Timestamp {
        now.checked_sub(self.policy.known_address_ttl)
            .unwrap_or(Timestamp::UNIX_EPOCH)
    }

    /// At most this many stored failures are worth keeping (the maps hold no more keys).
    pub fn max_entries(&self) -> usize {
        self.policy.max_entries
    }

    /// Rebuilds the state from what was stored: every event replayed in time order.
    pub fn restore(&self, failures: &[StoredFailure], known: &[StoredKnown]) {
        let mut events: Vec<(Timestamp, bool, &str, IpAddr)> = failures
            .iter()
            .map(|f| (f.at, false, f.account.as_str(), f.ip))
            .chain(known.iter().flat_map(|k| {
                k.sources
                    .iter()
                    .map(|(ip, at)| (*at, true, k.account.as_str(), *ip))
            }))
            .collect();
        // A success and a failure at the same instant: the failure came first (it was
        // reserved before the password was checked).
        events.sort_by_key(|e| (e.0, e.1));
        for (at, success, account, ip) in events {
            if success {
                self.record_success(account, ip, at);
            } else {
                self.record_failure(account, ip, at);
            }
        }
    }

    /// Records a wrong password (or unknown account) for `account` from `ip`.
    pub fn record_failure(&self, account: &str, ip: IpAddr, now: Timestamp) {
        let account = normalise(account);
        let mut state = self.lock();
        fail_locked(
            &self.policy,
            &mut state,
            &account,
            Source::from(ip),
            now.as_millisecond(),
        );
    }

    /// Records a successful sign-in: clears the pair's count and remembers the source.
    pub fn record_success(&self, account: &str, ip: IpAddr, now: Timestamp) {
        let account = normalise(account);
        let mut state = self.lock();
        success_locked(
            &self.policy,
            &mut state,
            &account,
            Source::from(ip),
            now.as_millisecond(),
        );
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps inconsistent in a way that
        // matters more than refusing every login would.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(test)]
    fn sizes(&self) -> [usize; 4] {
        let s = self.lock();
        [
            s.pairs.len(),
            s.sources.len(),
            s.accounts.len(),
            s.known.len(),
        ]
    }
}

fn normalise(account: &str) -> String {
    account.trim().to_lowercase()
}

fn check_locked(
    p: &ThrottlePolicy,
    state: &State,
    account: &str,
    source: Source,
    now_ms: i64,
) -> Result<(), Throttled> {
    let mut worst: Option<Throttled> = None;
    let mut consider = |last_ms: i64, delay: Option<Duration>, scope| {
        let Some(delay) = delay else { return };
        let until = last_ms.saturating_add(millis(delay));
        if now_ms < until {
            let retry_after =
                Duration::from_millis(u64::try_from(until.saturating_sub(now_ms)).unwrap_or(0));
            if worst.is_none_or(|w| retry_after > w.retry_after) {
                worst = Some(Throttled { retry_after, scope });
            }
        }
    };

    if let Some(pair) = state.pairs.get(&(account.to_string(), source))
        && now_ms.saturating_sub(pair.last_failure_ms) < millis(p.pair_forget_after)
    {
        let delay = exp_delay(pair.failures, p.pair_free_failures, p.pair_max_delay);
        consider(
            pair.last_failure_ms,
            delay,
            ThrottleScope::AccountFromAddress,
        );
    }
    if let Some(w) = state.sources.get(&source) {
        let n = w.count_since(now_ms.saturating_sub(millis(p.address_window)));
        let delay = exp_delay(count_u32(n), p.address_free_failures, p.address_max_delay);
        consider(w.last().unwrap_or(i64::MIN), delay, ThrottleScope::Address);
    }
    if let Some(w) = state.accounts.get(account)
        && !is_known(state, account, source, now_ms, p)
    {
        let n = w.count_since(now_ms.saturating_sub(millis(p.account_window)));
        let delay = exp_delay(count_u32(n), p.account_free_failures, p.account_max_delay);
        consider(w.last().unwrap_or(i64::MIN), delay, ThrottleScope::Account);
    }
    worst.map_or(Ok(()), Err)
}

fn fail_locked(p: &ThrottlePolicy, st: &mut State, account: &str, source: Source, now_ms: i64) {
    let key = (account.to_string(), source);
    if !st.pairs.contains_key(&key) {
        let forget = millis(p.pair_forget_after);
        make_room(
            &mut st.pairs,
            p.max_entries,
            |v| v.last_failure_ms,
            |v| now_ms.saturating_sub(v.last_failure_ms) >= forget,
        );
    }
    let pair = st.pairs.entry(key).or_insert(Pair {
        failures: 0,
        last_failure_ms: now_ms,
    });
    if now_ms.saturating_sub(pair.last_failure_ms) >= millis(p.pair_forget_after) {
        pair.failures = 0;
    }
    pair.failures = pair.failures.saturating_add(1);
    pair.last_failure_ms = pair.last_failure_ms.max(now_ms);

    let since = now_ms.saturating_sub(millis(p.address_window));
    if !st.sources.contains_key(&source) {
        make_room(&mut st.sources, p.max_entries, window_last, |w| {
            w.last().is_none_or(|t| t <= since)
        });
    }
    let keep = p.address_free_failures as usize + WINDOW_EXTRA;
    st.sources
        .entry(source)
        .or_default()
        .push(now_ms, since, keep);

    let since = now_ms.saturating_sub(millis(p.account_window));
    if !st.accounts.contains_key(account) {
        make_room(&mut st.accounts, p.max_entries, window_last, |w| {
            w.last().is_none_or(|t| t <= since)
        });
    }
    let keep = p.account_free_failures as usize + WINDOW_EXTRA;
    st.accounts
        .entry(account.to_string())
        .or_default()
        .push(now_ms, since, keep);
}

fn success_locked(p: &ThrottlePolicy, st: &mut State, account: &str, source: Source, now_ms: i64) {
    st.pairs.remove(&(account.to_string(), source));

    if !st.known.contains_key(account) {
        let ttl = millis(p.known_address_ttl);
        make_room(
            &mut st.known,
            p.max_entries,
            |v| known_last(v),
            |v| known_last(v) <= now_ms.saturating_sub(ttl),
        );
    }
    let known = st.known.entry(account.to_string()).or_default();
    known.retain(|(s, _)| *s != source);
    known.push((source, now_ms));
    if known.len() > MAX_KNOWN_PER_ACCOUNT {
        known.remove(0);
    }
}

fn is_known(state: &State, account: &str, source: Source, now_ms: i64, p: &ThrottlePolicy) -> bool {
    state.known.get(account).is_some_and(|list| {
        list.iter()
            .any(|(s, t)| *s == source && now_ms.saturating_sub(*t) < millis(p.known_address_ttl))
    })
}

/// 2^(n - free) seconds once n reaches `free`, capped.
fn exp_delay(n: u32, free: u32, cap: Duration) -> Option<Duration> {
    let exponent = n.checked_sub(free)?;
    let secs = 1u64.checked_shl(exponent).unwrap_or(u64::MAX);
    Some(Duration::from_secs(secs).min(cap))
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn count_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn window_last(w: &Window) -> i64 {
    w.last().unwrap_or(i64::MIN)
}

fn known_last(v: &[(Source, i64)]) -> i64 {
    v.iter().map(|(_, t)| *t).max().unwrap_or(i64::MIN)
}

/// Called before inserting a new key: if the map is full, drop expired entries, and if it is
/// still full, evict the least recently active tenth (amortising the O(n) scan).
fn make_room<K: Clone + Eq + Hash, V>(
    map: &mut HashMap<K, V>,
    cap: usize,
    last_active: impl Fn(&V) -> i64,
    expired: impl Fn(&V) -> bool,
) {
    if map.len() < cap {
        return;
    }
    map.retain(|_, v| !expired(v));
    if map.len() < cap {
        return;
    }
    let evict = (cap / 10).max(1).min(map.len());
    let mut ages: Vec<(i64, K)> = map
        .iter()
        .map(|(k, v)| (last_active(v), k.clone()))
        .collect();
    ages.select_nth_unstable_by_key(evict - 1, |(t, _)| *t);
    for (_, k) in ages.iter().take(evict) {
        map.remove(k);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const ALICE: &str = "alice@example.com";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn t0() -> Timestamp {
        "2026-11-01T00:00:00Z".parse().unwrap()
    }

    fn at(secs: i64) -> Timestamp {
        t0() + jiff::SignedDuration::from_secs(secs)
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn five_failures_then_exponential_wait() {
        let t = LoginThrottle::new(ThrottlePolicy::default());
        let a = ip("192.0.2.1");
        for i in 0..4 {
            t.record_failure(ALICE, a, at(i));
            assert_eq!(
                t.check(ALICE, a, at(i)),
                Ok(()),
                "failure {} is free",
                i + 1
            );
        }
        t.record_failure(ALICE, a, at(10));
        let err = t.check(ALICE, a, at(10)).unwrap_err();
        assert_eq!(
            err,
            Throttled {
                retry_after: secs(1),
                scope: ThrottleScope::AccountFromAddress
            }
        );
        assert_eq!(t.check(ALICE, a, at(11)), Ok(()));

        t.record_failure(ALICE, a, at(11));
        assert_eq!(t.check(ALICE, a, at(11)).unwrap_err().retry_after, secs(2));
        let half = at(11) + jiff::SignedDuration::from_millis(500);
        assert_eq!(
            t.check(ALICE, a, half).unwrap_err().retry_after,
            Duration::from_millis(1500)
        );
        assert_eq!(t.check(ALICE, a, half).unwrap_err().retry_after_secs(), 2);
        t.record_failure(ALICE, a, at(13));
        assert_eq!(t.check(ALICE, a, at(13)).unwrap_err().retry_after, secs(4));

        // Another source is not affected by this pair's count.
        assert_eq!(t.check(ALICE, ip("192.0.2.2"), at(13)), Ok(()));
        // Nor is another account from this source.
        assert_eq!(t.check("bob@example.com", a, at(13)), Ok(()));
    }

    #[test]
    fn pair_delay_is_capped_at_15_minutes() {
        let t = LoginThrottle::new(ThrottlePolicy::default());
        let a = ip("192.0.2.1");
        // Failures spread out so that only the pair rule is in play.
        let mut now = 0;
        for _ in 0..25 {
            t.record_failure(ALICE, a, at(now));
            now += 3600;
        }
        let last = now - 3600;
        let err = t.check(ALICE, a, at(last)).unwrap_err();
        assert_eq!(
            err,
            Throttled {
                retry_after: secs(900),
                scope: ThrottleScope::AccountFromAddress
            }
        );
        assert_eq!(t.check(ALICE, a, at(last + 900)), Ok(()));
    }

    #[test]
    fn pair_count_is_forgotten_after_a_day() {
        let t = LoginThrottle::new(ThrottlePolicy::default());
        let a = ip("192.0.2.1");
        for i in 0..8 {
            t.record_failure(ALICE, a, at(i * 1000));
        }
        let later = 7000 + 24 * 3600;
        assert_eq!(t.check(ALICE, a, at(later)), Ok(()));
        t.record_failure(ALICE, a, at(later));
        assert_eq!(
            t.check(ALICE, a, at(later)),
            Ok(()),
            "count started again at 1"
        );
    }

    #[test]
    fn success_resets_the_pair() {
        let t = LoginThrottle::new(ThrottlePolicy::default());
        let a = ip("192.0.2.1");
        for i in 0..6 {
            t.record_failure(ALICE, a, at(i * 100));
        }
        assert!(t.check(ALICE, a, at(500)).is_err());
        t.record_success(ALICE, a, at(600));
        assert_eq!(t.check(ALICE, a, at(600)), Ok(()));
        t.record_failure(ALICE, a, at(601));
        assert_eq!(
            t.check(ALICE, a, at(601)),
            Ok(()),
            "one failure after a success is free"
        );
    }

    #[test]
    fn account_keys_are_normalised() {
        let t = LoginThrottle::new(ThrottlePolicy::default());
        let a = ip("192.0.2.1");
        for i in 0..5 {
            t.record_failure("  Alice@Example.COM ", a, at(i));
        }
        assert!(t.check(ALICE, a, at(4)).is_err());
    }

    #[test]
    fn address_limit_spans_accounts() {
        let t = LoginThrottle::new(ThrottlePolicy::default());
        let a = ip("198.51.100.7");
        for i in 0..29 {
            t.record_failure(&format!("user{i}@example.com"), a, at(i));
        }
        assert_eq!(t.check("fresh@example.com", a, at(29)), Ok(()));
        t.record_failure("user29@example.com", a, at(29));
        let err = t.check("fresh@example.com", a, at(29)).unwrap_err();
        assert_eq!(
            err,
            Throttled {
                retry_after: secs(1),
                scope: ThrottleScope::Address
            }
        );
        // Growing exponentially, capped at 15 minutes.
        for i in 30..60 {
            t.record_failure(&format!("user{i}@example.com"), a, at(30));
        }
        assert_eq!(
            t.check("fresh@example.com", a, at(30))
                .unwrap_err()
                .retry_after,
            secs(900)
        );
        // Other sources are unaffected; the window empties after 15 minutes.
        assert_eq!(
            t.check("fresh@example.com", ip("198.51.100.8"), at(30)),
            Ok(())
        );
        assert_eq!(t.check("fresh@example.com", a, at(30 + 900)), Ok(()));
    }

    #[test]
    fn ipv6_sources_are_grouped_by_64() {
        let t = LoginThrottle::new(ThrottlePolicy::default());
        for i in 0..30 {
            let addr = ip(&format!("2001:db8:1:2::{:x}", i + 1));
            t.record_failure(&format!("u{i}"), addr, at(0));
        }
        let err = t.check("x", ip("2001:db8:1:2:ffff::1"), at(0)).unwrap_err();
        assert_eq!(err.scope, ThrottleScope::Address);
        assert_eq!(t.check("x", ip("2001:db8:1:3::1"), at(0)), Ok(()));
        // IPv4-mapped IPv6 is the IPv4 address.
        for _ in 0..5 {
            t.record_failure(ALICE, ip("::ffff:192.0.2.9"), at(0));
        }
        assert!(t.check(ALICE, ip("192.0.2.9"), at(0)).is_err());
    }

    #[test]
    fn distributed_attack_does_not_block_a_known_address() {
        let t = LoginThrottle::new(ThrottlePolicy::default());
        let home = ip("203.0.113.10");
        t.record_success(ALICE, home, at(0));

        // 25 bots, one guess each, within a few minutes.
        let start = 24 * 3600;
        for i in 0..25 {
            t.record_failure(
                ALICE,
                ip(&format!("10.0.{}.{}", i / 200, i % 200 + 1)),
                at(start + i),
            );
        }
        let now = at(start + 25);
        let err = t.check(ALICE, ip("10.9.9.9"), now).unwrap_err();
        assert_eq!(err.scope, ThrottleScope::Account);
        assert!(err.retry_after <= secs(300));
        // The real user from their usual address gets through.
        assert_eq!(t.check(ALICE, home, now), Ok(()));
        // A success does not clear the account window for everyone else.
        t.record_success(ALICE, home, now);
        assert!(t.check(ALICE, ip("10.9.9.9"), now).is_err());
    }

    #[test]
    fn account_delay_is_capped_at_5_minutes_and_window_expires() {
        let t = LoginThrottle::new(ThrottlePolicy::default());
        for i in 0..60 {
            t.record_failure(ALICE, ip(&format!("10.1.0.{}", i + 1)), at(0));
        }
        let err = t.check(ALICE, ip("10.2.0.1"), at(0)).unwrap_err();
        assert_eq!(
            err,
            Throttled {
                retry_after: secs(300),
                scope: ThrottleScope::Account
            }
        );
        assert_eq!(t.check(ALICE, ip("10.2.0.1"), at(900)), Ok(()));
    }

    #[test]
    fn known_address_expires_after_30_days() {
        let t = LoginThrottle::new(ThrottlePolicy::default());
        let home = ip("203.0.113.10");
        t.record_success(ALICE, home, at(0));
        let later = 31 * 24 * 3600;
        for i in 0..25 {
            t.record_failure(ALICE, ip(&format!("10.0.0.{}", i + 1)), at(later));
        }
        assert_eq!(
            t.check(ALICE, home, at(later)).unwrap_err().scope,
            ThrottleScope::Account
        );
    }

    #[test]
    fn memory_is_bounded() {
        let policy = ThrottlePolicy {
            max_entries: 100,
            ..ThrottlePolicy::default()
        };
        let t = LoginThrottle::new(policy);
        for i in 0..5000u32 {
            let addr = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            let account = format!("user{i}@example.com");
            t.record_failure(&account, addr, at(i64::from(i)));
            t.record_success(&account, addr, at(i64::from(i)));
        }
        for n in t.sizes() {
            assert!(n <= 100, "{:?}", t.sizes());
        }
        // The newest entries survive eviction.
        let newest = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + 4999u32));
        for _ in 0..5 {
            t.record_failure("user4999@example.com", newest, at(5000));
        }
        assert!(t.check("user4999@example.com", newest, at(5000)).is_err());
        let [pairs, ..] = t.sizes();
        assert!(pairs <= 100);
    }

    #[test]
    fn concurrent_attempts_cannot_pass_one_check_together() {
        let t = std::sync::Arc::new(LoginThrottle::new(ThrottlePolicy::default()));
        let a = ip("192.0.2.1");
        let threads: Vec<_> = (0..60)
            .map(|_| {
                let t = t.clone();
                std::thread::spawn(move || t.reserve(ALICE, a, at(0)).is_ok())
            })
            .collect();
        let passed = threads
            .into_iter()
            .map(|h| h.join())
            .filter(|r| matches!(r, Ok(true)))
            .count();
        assert_eq!(passed, 5, "only the free allowance passes");
        assert!(t.check(ALICE, a, at(0)).is_err());
    }

    #[test]
    fn a_success_takes_its_reserved_failure_back() {
        let t = LoginThrottle::new(ThrottlePolicy {
            address_free_failures: 2,
            ..ThrottlePolicy::default()
        });
        let a = ip("192.0.2.1");
        for i in 0..10 {
            let r = t
                .reserve(&format!("user{i}@example.com"), a, at(i))
                .unwrap();
            t.succeeded(r);
        }
        assert_eq!(t.check("fresh@example.com", a, at(10)), Ok(()));
        assert_eq!(t.known_sources("USER0@example.com"), vec![(a, at(0))]);
        // A reservation never handed back stays a failure.
        for i in 0..2 {
            let r = t.reserve(&format!("x{i}"), a, at(20));
            assert!(r.is_ok());
        }
        assert_eq!(
            t.check("fresh@example.com", a, at(20)).unwrap_err().scope,
            ThrottleScope::Address
        );
    }

    #[test]
    fn a_cancelled_reservation_counts_for_nothing() {
        let t = LoginThrottle::new(ThrottlePolicy::default());
        let a = ip("192.0.2.1");
        for i in 0..10 {
            let r = t.reserve(ALICE, a, at(i)).unwrap();
            t.cancel(r);
        }
        assert_eq!(t.sizes(), [0, 1, 1, 0]);
        assert_eq!(t.check(ALICE, a, at(10)), Ok(()));
    }

    #[test]
    fn replaying_stored_failures_and_successes_rebuilds_the_state() {
        let live = LoginThrottle::new(ThrottlePolicy::default());
        let home = ip("203.0.113.10");
        let bot = ip("2001:db8:1:2::7");
        let mut failures = Vec::new();
        let r = live.reserve(ALICE, home, at(0)).unwrap();
        live.succeeded(r);
        for i in 1..7 {
            if let Ok(r) = live.reserve(ALICE, bot, at(i)) {
                failures.push((r.at(), bot));
            }
        }
        let stored_known = vec![StoredKnown {
            account: ALICE.into(),
            sources: live.known_sources(ALICE),
        }];
        let stored: Vec<StoredFailure> = failures
            .iter()
            .map(|(at, ip)| StoredFailure {
                at: *at,
                account: ALICE.into(),
                ip: *ip,
            })
            .collect();
        let replayed = LoginThrottle::new(ThrottlePolicy::default());
        replayed.restore(&stored, &stored_known);
        for probe in [at(7), at(8), at(100)] {
            assert_eq!(
                replayed.check(ALICE, bot, probe),
                live.check(ALICE, bot, probe)
            );
            assert_eq!(
                replayed.check(ALICE, home, probe),
                live.check(ALICE, home, probe)
            );
        }
        assert!(replayed.check(ALICE, ip("2001:db8:1:2::8"), at(7)).is_err());
    }

    #[test]
    fn throttled_message_is_readable() {
        let e = Throttled {
            retry_after: Duration::from_millis(1200),
            scope: ThrottleScope::Account,
        };
        assert_eq!(
            e.to_string(),
            "too many failed sign-in attempts; try again in 2 seconds"
        );
    }

    #[test]
    fn is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<LoginThrottle>();
    }
}
