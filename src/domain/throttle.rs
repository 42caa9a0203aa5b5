//! Login throttling: slows password guessing without letting an attacker lock the real user out.
//! Pure and in memory; the clock is passed in.
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
//! Contract for callers: `check` first; only if it passes, verify the password and then call
//! `record_failure` or `record_success`. Refused attempts are not counted, so a waiting user's
//! retries do not lengthen their own wait.
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
        let p = &self.policy;
        let account = normalise(account);
        let source = Source::from(ip);
        let now_ms = now.as_millisecond();
        let state = self.lock();
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

        if let Some(pair) = state.pairs.get(&(account.clone(), source))
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
        if let Some(w) = state.accounts.get(&account)
            && !is_known(&state, &account, source, now_ms, p)
        {
            let n = w.count_since(now_ms.saturating_sub(millis(p.account_window)));
            let delay = exp_delay(count_u32(n), p.account_free_failures, p.account_max_delay);
            consider(w.last().unwrap_or(i64::MIN), delay, ThrottleScope::Account);
        }
        worst.map_or(Ok(()), Err)
    }

    /// Records a wrong password (or unknown account) for `account` from `ip`.
    pub fn record_failure(&self, account: &str, ip: IpAddr, now: Timestamp) {
        let p = &self.policy;
        let account = normalise(account);
        let source = Source::from(ip);
        let now_ms = now.as_millisecond();
        let mut state = self.lock();
        let st = &mut *state;

        let key = (account.clone(), source);
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
        pair.last_failure_ms = now_ms;

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
        if !st.accounts.contains_key(&account) {
            make_room(&mut st.accounts, p.max_entries, window_last, |w| {
                w.last().is_none_or(|t| t <= since)
            });
        }
        let keep = p.account_free_failures as usize + WINDOW_EXTRA;
        st.accounts
            .entry(account)
            .or_default()
            .push(now_ms, since, keep);
    }

    /// Records a successful sign-in: clears the pair's count and remembers the source.
    pub fn record_success(&self, account: &str, ip: IpAddr, now: Timestamp) {
        let p = &self.policy;
        let account = normalise(account);
        let source = Source::from(ip);
        let now_ms = now.as_millisecond();
        let mut state = self.lock();
        let st = &mut *state;

        st.pairs.remove(&(account.clone(), source));

        if !st.known.contains_key(&account) {
            let ttl = millis(p.known_address_ttl);
            make_room(
                &mut st.known,
                p.max_entries,
                |v| known_last(v),
                |v| known_last(v) <= now_ms.saturating_sub(ttl),
            );
        }
        let known = st.known.entry(account).or_default();
        known.retain(|(s, _)| *s != source);
        known.push((source, now_ms));
        if known.len() > MAX_KNOWN_PER_ACCOUNT {
            known.remove(0);
        }
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
