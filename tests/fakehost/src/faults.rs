//! Fault injection and request accounting: answer 500/429 for a deterministic share of
//! resource requests, pause the server, add latency, cut open watches, and count requests by
//! verb (kaas benchmarks report API requests per operation).

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::errors::ApiError;

/// The error an injected fault answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InjectedError {
    /// 500 InternalError.
    Internal,
    /// 429 TooManyRequests with `Retry-After`.
    TooManyRequests { retry_after_seconds: u64 },
}

impl InjectedError {
    fn to_api_error(self) -> ApiError {
        match self {
            InjectedError::Internal => ApiError::internal("fakehost: injected fault"),
            InjectedError::TooManyRequests {
                retry_after_seconds,
            } => ApiError::too_many_requests(retry_after_seconds),
        }
    }
}

/// Which resource requests fail.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FaultPlan {
    /// Every Nth resource request (the Nth, 2Nth, ...), counted from when the plan is set.
    EveryNth { n: u64, error: InjectedError },
    /// A seeded pseudo-random share (0.0–1.0) of resource requests.
    Ratio {
        ratio: f64,
        seed: u64,
        error: InjectedError,
    },
}

/// Requests served, by verb.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestCounts {
    pub get: u64,
    pub list: u64,
    pub watch: u64,
    pub create: u64,
    pub update: u64,
    pub patch: u64,
    pub delete: u64,
    pub deletecollection: u64,
}

impl std::ops::Add for RequestCounts {
    type Output = Self;

    fn add(self, o: Self) -> Self {
        Self {
            get: self.get + o.get,
            list: self.list + o.list,
            watch: self.watch + o.watch,
            create: self.create + o.create,
            update: self.update + o.update,
            patch: self.patch + o.patch,
            delete: self.delete + o.delete,
            deletecollection: self.deletecollection + o.deletecollection,
        }
    }
}

impl RequestCounts {
    pub fn total(&self) -> u64 {
        self.get
            + self.list
            + self.watch
            + self.create
            + self.update
            + self.patch
            + self.delete
            + self.deletecollection
    }

    /// Writes only (create, update, patch, delete, deletecollection).
    pub fn writes(&self) -> u64 {
        self.create + self.update + self.patch + self.delete + self.deletecollection
    }
}

#[derive(Default)]
struct Counters {
    by_verb: [AtomicU64; 8],
}

const VERBS: [&str; 8] = [
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];

/// Shared fault and counter state of one fake host. Cheap to clone.
#[derive(Clone)]
pub struct Faults {
    inner: Arc<FaultsInner>,
}

struct FaultsInner {
    plan: Mutex<Option<FaultPlan>>,
    seen: AtomicU64,
    latency_ms: AtomicU64,
    paused: tokio::sync::watch::Sender<bool>,
    cut: tokio::sync::watch::Sender<u64>,
    counters: Counters,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            inner: Arc::new(FaultsInner {
                plan: Mutex::new(None),
                seen: AtomicU64::new(0),
                latency_ms: AtomicU64::new(0),
                paused: tokio::sync::watch::channel(false).0,
                cut: tokio::sync::watch::channel(0).0,
                counters: Counters::default(),
            }),
        }
    }
}

/// splitmix64: a tiny deterministic generator so a seeded plan fails the same requests.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl Faults {
    pub fn set_plan(&self, plan: Option<FaultPlan>) {
        *self.inner.plan.lock().unwrap_or_else(|p| p.into_inner()) = plan;
        self.inner.seen.store(0, Ordering::SeqCst);
    }

    pub fn set_latency(&self, latency: Duration) {
        self.inner
            .latency_ms
            .store(latency.as_millis() as u64, Ordering::SeqCst);
    }

    pub fn pause(&self) {
        self.inner.paused.send_replace(true);
    }

    pub fn resume(&self) {
        self.inner.paused.send_replace(false);
    }

    /// Ends every open watch now (clients see the stream close and re-watch).
    pub fn cut_watches(&self) {
        self.inner.cut.send_modify(|generation| *generation += 1);
    }

    pub(crate) fn cut_signal(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.cut.subscribe()
    }

    /// Waits while paused, then sleeps the configured latency.
    pub(crate) async fn gate(&self) {
        let mut paused = self.inner.paused.subscribe();
        // An error means the sender is gone (shutting down): stop waiting.
        let _ = paused.wait_for(|p| !*p).await;
        let latency = self.inner.latency_ms.load(Ordering::SeqCst);
        if latency > 0 {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }
    }

    /// The injected error for this resource request, if the plan says it fails.
    pub(crate) fn injected(&self) -> Option<ApiError> {
        let plan = *self.inner.plan.lock().unwrap_or_else(|p| p.into_inner());
        let plan = plan?;
        let index = self.inner.seen.fetch_add(1, Ordering::SeqCst) + 1;
        match plan {
            FaultPlan::EveryNth { n, error } => {
                (n > 0 && index.is_multiple_of(n)).then(|| error.to_api_error())
            }
            FaultPlan::Ratio { ratio, seed, error } => {
                let draw = (mix(seed ^ index) >> 11) as f64 / (1u64 << 53) as f64;
                (draw < ratio).then(|| error.to_api_error())
            }
        }
    }

    pub(crate) fn count(&self, verb: &str) {
        if let Some(index) = VERBS.iter().position(|v| *v == verb) {
            self.inner.counters.by_verb[index].fetch_add(1, Ordering::SeqCst);
        }
    }

    pub fn counts(&self) -> RequestCounts {
        let c = |i: usize| self.inner.counters.by_verb[i].load(Ordering::SeqCst);
        RequestCounts {
            get: c(0),
            list: c(1),
            watch: c(2),
            create: c(3),
            update: c(4),
            patch: c(5),
            delete: c(6),
            deletecollection: c(7),
        }
    }

    pub fn reset_counts(&self) {
        for counter in &self.inner.counters.by_verb {
            counter.store(0, Ordering::SeqCst);
        }
    }
}
