//! Logs, metrics and request ids: the tracing subscriber, the Prometheus recorder, and the
//! per-request middleware that ties a request id, a span, a log line and metrics together.
//!
//! Invariants:
//! - The subscriber and the metrics recorder are process-global and installed at most once;
//!   later calls are no-ops, so tests and `main` can both call them.
//! - Metric labels are bounded: the route label is axum's matched route *template* (or
//!   "unmatched"), and unusual HTTP methods collapse to "OTHER", so a scanner cannot create
//!   unbounded series.
//! - A request id taken from the client is used only if it is short, printable and free of
//!   separators; otherwise a fresh one is generated, so logs cannot be forged through it.

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderValue;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tower_http::request_id::{MakeRequestId, MakeRequestUuid, RequestId};
use tracing::Instrument;
use tracing_subscriber::EnvFilter;

use crate::config::{ENV_LOG_FILTER, LogConfig, LogFormat};

pub const REQUEST_ID_HEADER: &str = "x-request-id";

const REQUESTS_TOTAL: &str = "kaas_http_requests_total";
const REQUEST_DURATION: &str = "kaas_http_request_duration_seconds";
const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Without a scraper, histogram samples pile up until rendered; drain them this often.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);
/// Routes whose per-request log line is at debug, not info: probes and scrapes would drown
/// everything else.
const QUIET_ROUTES: &[&str] = &["/healthz", "/readyz", "/metrics"];

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid log filter \"{filter}\" from {source_name}: {reason}")]
    BadFilter {
        filter: String,
        source_name: &'static str,
        reason: String,
    },
    #[error("environment variable {ENV_LOG_FILTER} is not valid UTF-8")]
    FilterNotUnicode,
    #[error("cannot install the log subscriber: another one is already installed ({0})")]
    SubscriberTaken(String),
}

static LOGGING: OnceLock<()> = OnceLock::new();

/// Installs the global tracing subscriber, writing to stderr. `KAAS_LOG` (if set) replaces
/// `cfg.level`. `Auto` means human-readable when stderr is a terminal, JSON otherwise. A second
/// call does nothing.
pub fn init_logging(cfg: &LogConfig) -> Result<(), TelemetryError> {
    if LOGGING.get().is_some() {
        return Ok(());
    }
    let from_env = match std::env::var(ENV_LOG_FILTER) {
        Ok(v) if !v.trim().is_empty() => Some(v),
        Ok(_) | Err(std::env::VarError::NotPresent) => None,
        Err(std::env::VarError::NotUnicode(_)) => return Err(TelemetryError::FilterNotUnicode),
    };
    let filter = build_filter(&cfg.level, from_env.as_deref())?;
    let json = match cfg.format {
        LogFormat::Json => true,
        LogFormat::Human => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.with_target(true).try_init()
    };
    match result {
        Ok(()) => {
            let _ = LOGGING.set(());
            Ok(())
        }
        // Two threads racing through the first call: the loser finds ours installed.
        Err(_) if LOGGING.get().is_some() => Ok(()),
        Err(e) => Err(TelemetryError::SubscriberTaken(e.to_string())),
    }
}

fn build_filter(level: &str, from_env: Option<&str>) -> Result<EnvFilter, TelemetryError> {
    let (filter, source_name) = match from_env {
        Some(f) => (f, ENV_LOG_FILTER),
        None => (level, "log.level"),
    };
    EnvFilter::try_new(filter).map_err(|e| TelemetryError::BadFilter {
        filter: filter.to_owned(),
        source_name,
        reason: e.to_string(),
    })
}

/// The process's Prometheus recorder; cloning is cheap (an `Arc`).
#[derive(Clone, Debug)]
pub struct Metrics {
    handle: PrometheusHandle,
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

impl Metrics {
    /// Installs the global recorder on first use and returns a handle to it.
    pub fn global() -> Metrics {
        METRICS.get_or_init(install_recorder).clone()
    }

    /// The current metrics in Prometheus text format.
    pub fn render(&self) -> String {
        self.handle.render()
    }
}

fn install_recorder() -> Metrics {
    let builder = PrometheusBuilder::new();
    let builder = match builder
        .set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.to_owned()), DURATION_BUCKETS)
    {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "request duration buckets rejected; using summaries");
            PrometheusBuilder::new()
        }
    };
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    if let Err(e) = metrics::set_global_recorder(recorder) {
        // Someone else installed a recorder (a test harness, an embedding program): metrics go
        // there, and /metrics renders our empty registry rather than failing.
        tracing::warn!(error = %e, "a metrics recorder was already installed; /metrics will be empty");
    }
    let upkeep = handle.clone();
    let spawned = std::thread::Builder::new()
        .name("kaas-metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                upkeep.run_upkeep();
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the metrics upkeep thread; histograms drain only on scrape");
    }
    Metrics { handle }
}

/// Middleware recording `kaas_http_requests_total{method,route,status}` and
/// `kaas_http_request_duration_seconds{method,route}`.
///
/// NB: add it with `Router::layer` (or `route_layer`), not around the finished router as a
/// service: only inside the router does axum know the matched route.
pub async fn http_metrics(req: Request, next: Next) -> Response {
    let method = method_label(req.method());
    let route = route_label(&req);
    let start = Instant::now();
    let response = next.run(req).await;
    let elapsed = start.elapsed().as_secs_f64();
    let status = response.status().as_u16().to_string();
    metrics::counter!(REQUESTS_TOTAL, "method" => method, "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!(REQUEST_DURATION, "method" => method, "route" => route).record(elapsed);
    response
}

/// Adds request ids, a span per request and one log line per request to `router`.
///
/// The `x-request-id` header is taken from the request if it is a sane value, otherwise a
/// UUID is generated; it is set on the request (for handlers, also as the extension
/// `tower_http::request_id::RequestId`) and echoed on the response.
pub fn with_request_tracing(router: axum::Router) -> axum::Router {
    router.layer(axum::middleware::from_fn(request_tracing))
}

async fn request_tracing(mut req: Request, next: Next) -> Response {
    let id = match req.headers().get(REQUEST_ID_HEADER) {
        Some(v) if acceptable_request_id(v) => v.clone(),
        _ => MakeRequestUuid
            .make_request_id(&req)
            .map(|id| id.header_value().clone())
            .unwrap_or_else(|| HeaderValue::from_static("unknown")),
    };
    req.headers_mut().insert(REQUEST_ID_HEADER, id.clone());
    req.extensions_mut().insert(RequestId::new(id.clone()));

    let method = req.method().clone();
    let route = route_label(&req);
    let quiet = QUIET_ROUTES.contains(&route.as_str());
    let id_text = id.to_str().unwrap_or("unknown").to_owned();
    let span = tracing::info_span!("request", %method, route = %route, request_id = %id_text);

    let start = Instant::now();
    let mut response = next.run(req).instrument(span.clone()).await;
    let latency_ms = start.elapsed().as_secs_f64() * 1000.0;
    let status = response.status().as_u16();
    span.in_scope(|| {
        if quiet {
            tracing::debug!(status, latency_ms, "request finished");
        } else {
            tracing::info!(status, latency_ms, "request finished");
        }
    });
    response.headers_mut().insert(REQUEST_ID_HEADER, id);
    response
}

fn acceptable_request_id(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':'))
}

fn route_label(req: &Request) -> String {
    req.extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned())
}

fn method_label(m: &http::Method) -> &'static str {
    match *m {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::PATCH => "PATCH",
        http::Method::DELETE => "DELETE",
        http::Method::HEAD => "HEAD",
        http::Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    fn app() -> Router {
        let router = Router::new()
            .route("/things/{id}", get(|| async { "thing" }))
            // only the metrics test calls this one: the recorder is shared by parallel tests
            .route("/metered/{id}", get(|| async { "metered" }))
            .route(
                "/echo-id",
                get(|id: axum::Extension<RequestId>| async move {
                    id.0.header_value().to_str().unwrap_or_default().to_owned()
                }),
            )
            .layer(axum::middleware::from_fn(http_metrics));
        with_request_tracing(router)
    }

    #[tokio::test]
    async fn metrics_count_requests_by_route_template() {
        let metrics = Metrics::global();
        for id in ["1", "2"] {
            let req = Request::builder()
                .uri(format!("/metered/{id}"))
                .body(Body::empty())
                .unwrap();
            let resp = app().oneshot(req).await.unwrap();
            assert_eq!(resp.status(), 200);
        }
        let req = Request::builder()
            .uri("/nope/123")
            .body(Body::empty())
            .unwrap();
        assert_eq!(app().oneshot(req).await.unwrap().status(), 404);

        let text = metrics.render();
        assert!(
            text.contains(
                r#"kaas_http_requests_total{method="GET",route="/metered/{id}",status="200"} 2"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"route="unmatched",status="404""#), "{text}");
        assert!(
            text.contains("kaas_http_request_duration_seconds_bucket"),
            "{text}"
        );
        assert!(text.contains(r#"le="0.0005""#), "{text}");
        assert!(
            !text.contains("/metered/1"),
            "raw paths must not become labels"
        );
    }

    #[tokio::test]
    async fn request_id_is_echoed() {
        let req = Request::builder()
            .uri("/echo-id")
            .header(REQUEST_ID_HEADER, "abc-123")
            .body(Body::empty())
            .unwrap();
        let resp = app().oneshot(req).await.unwrap();
        assert_eq!(resp.headers()[REQUEST_ID_HEADER], "abc-123");
        let body = axum::body::to_bytes(resp.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], b"abc-123", "handlers see the same id");
    }

    #[tokio::test]
    async fn request_id_is_generated_when_absent_or_unacceptable() {
        let req = Request::builder()
            .uri("/things/1")
            .body(Body::empty())
            .unwrap();
        let resp = app().oneshot(req).await.unwrap();
        let id = resp.headers()[REQUEST_ID_HEADER]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(id.len(), 36, "a UUID: {id}");

        let req = Request::builder()
            .uri("/things/1")
            .header(REQUEST_ID_HEADER, "x\" injected=1")
            .body(Body::empty())
            .unwrap();
        let resp = app().oneshot(req).await.unwrap();
        let id2 = resp.headers()[REQUEST_ID_HEADER].to_str().unwrap();
        assert_ne!(id2, "x\" injected=1");
        assert_ne!(id2, id);
    }

    #[test]
    fn filter_errors_name_their_source() {
        assert!(build_filter("info", None).is_ok());
        let msg = build_filter("info", Some("kaas=["))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("KAAS_LOG") && msg.contains("kaas=["), "{msg}");
    }

    #[test]
    fn init_logging_twice_is_a_no_op() {
        let cfg = LogConfig {
            format: LogFormat::Human,
            level: "warn".into(),
        };
        init_logging(&cfg).unwrap();
        init_logging(&cfg).unwrap();
    }
}
