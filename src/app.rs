//! Assembles and runs the server: opens the store, builds the router (API, health, metrics,
//! console) with its layers, serves HTTP or HTTPS and the local control socket (backups),
//! runs scheduled backups, tells systemd when it is ready, and shuts down gracefully on
//! SIGTERM/SIGINT, finishing in-flight requests before the database is closed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;
use tower_http::compression::CompressionLayer;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::clock::{Clock, SystemClock};
use crate::config::{Config, RequestLimits};
use crate::host::desired::HostSettings;
use crate::http::limits::{ConnectionSlots, JsonDepth, LimitAcceptor};
use crate::ops::{Ops, Settings};
use crate::reconcile::connection::{HostConnection, locate_kubeconfig};
use crate::reconcile::node_sync::WatchedNodes;
use crate::reconcile::tenant_sync::HostMinter;
use crate::reconcile::usage_sync::WatchedQuotas;
use crate::reconcile::{Reconciler, ReconcilerHandle, ReconcilerSettings};
use crate::state::{AppInner, AppState};
use crate::store::{OpenOutcome, Store};
use crate::telemetry::{self, Metrics};

/// redb's page cache; small, because kaas's working set is small and idle memory matters.
const CACHE_BYTES: usize = 8 * 1024 * 1024;

pub fn settings_from(cfg: &Config) -> Settings {
    Settings {
        session_idle_timeout: cfg.auth.session_idle_timeout,
        session_absolute_timeout: cfg.auth.session_absolute_timeout,
        max_sessions_per_user: cfg.auth.max_sessions_per_user,
        password_min_length: cfg.auth.password_min_length,
        invitation_ttl: cfg.auth.invitation_ttl,
        api_token_max_lifetime: cfg.auth.api_token_max_lifetime,
        setup_link_ttl: cfg.auth.setup_link_ttl,
        default_max_workspaces: cfg.limits.workspaces_per_org,
        default_max_members: cfg.limits.members_per_org,
        max_orgs_per_user: cfg.limits.orgs_per_user,
        org_creation_admins_only: cfg.limits.org_creation == crate::config::OrgCreation::Admins,
        max_workspaces_total: cfg.limits.workspaces_total,
        kubeconfig_lifetime: cfg.host.kubeconfig_lifetime,
        kubeconfig_max_lifetime: cfg.host.kubeconfig_max_lifetime,
        mfa_require: cfg.mfa.require,
        ingress_available: !cfg.expose.ingress_domain.trim().is_empty(),
    }
}

/// Reconciler settings from configuration.
pub fn reconciler_settings(cfg: &Config) -> ReconcilerSettings {
    ReconcilerSettings {
        host: HostSettings {
            external_addresses: cfg.host.external_addresses.clone(),
            k3s_version: cfg.host.k3s_version.clone(),
            issuer: cluster_issuer(cfg),
            isolation: crate::host::isolation::IsolationSettings {
                pod_cidrs: cfg.isolation.pod_cidrs.clone(),
                service_cidrs: cfg.isolation.service_cidrs.clone(),
                denied_egress: cfg.isolation.denied_egress.clone(),
                node_addresses: Vec::new(),
                k3k_namespace: cfg.isolation.k3k_namespace.clone(),
            },
            expose: crate::host::expose::ExposeSettings {
                ingress_domain: cfg.expose.ingress_domain.clone(),
                ingress_port: cfg.expose.ingress_port,
            },
            ..Default::default()
        },
        resync_interval: cfg.host.resync_interval,
        inside_check_interval: cfg.host.inside_check_interval,
        ..Default::default()
    }
}

/// The issuer as virtual clusters are told to trust it: the public URL (if HTTPS) and the CA
/// that verifies kaas's certificate — `issuer.ca_file`, else the certificate kaas serves
/// itself (its own self-signed one is its own CA), else none (the system's CAs).
pub fn cluster_issuer(cfg: &Config) -> Option<crate::host::oidc::ClusterIssuer> {
    let ca_path = cfg
        .issuer
        .ca_file
        .clone()
        .or_else(|| match cfg.server.tls.mode {
            crate::config::TlsMode::Files => cfg.server.tls.cert.clone(),
            crate::config::TlsMode::Auto if cfg.uses_tls() => {
                Some(crate::tls::self_signed_paths(&cfg.data.dir).0)
            }
            _ => None,
        });
    let ca_pem = match ca_path {
        None => None,
        Some(p) => match std::fs::read_to_string(&p) {
            Ok(pem) => Some(pem),
            Err(e) => {
                tracing::warn!(path = %p.display(), error = %e,
                    "cannot read the CA the virtual clusters need to reach the issuer");
                None
            }
        },
    };
    let issuer = crate::host::oidc::ClusterIssuer::usable(&cfg.public_url(), ca_pem);
    if issuer.is_none() {
        tracing::warn!(url = %cfg.public_url(),
            "the public URL is not HTTPS: virtual clusters cannot trust kaas's OIDC issuer, \
             so kubectl uses client certificates only");
    }
    issuer
}

/// Wires `ops` to the host behind `conn` — the one place every port `ops` defines gets its
/// implementation: tenant kubeconfigs (signed with each virtual cluster's CA, server URL on
/// the first external address), the node inventory and quota usage (watch caches the
/// reconciler fills), and the connection status — then starts the reconciler.
pub fn attach_host(
    ops: &Arc<Ops>,
    conn: Arc<HostConnection>,
    settings: ReconcilerSettings,
) -> ReconcilerHandle {
    ops.set_minter(Arc::new(HostMinter::new(
        conn.clone(),
        settings.host.external_addresses.clone(),
        settings.host.expose.clone(),
    )));
    ops.set_exec_kubeconfigs(settings.host.issuer.is_some());
    let nodes = WatchedNodes::new();
    ops.set_node_inventory(nodes.clone());
    let quotas = WatchedQuotas::new();
    ops.set_usage_source(quotas.clone());
    ops.set_host_monitor(conn.clone());
    Reconciler::start(ops.clone(), conn, nodes, quotas, settings)
}

/// Connects to the host (lazily: an absent host is reported, not fatal) and starts the
/// reconciler.
fn start_host(cfg: &Config, ops: &Arc<Ops>) -> ReconcilerHandle {
    let kubeconfig = locate_kubeconfig(
        cfg.host.kubeconfig.clone(),
        std::env::var("KUBECONFIG").ok(),
    );
    match &kubeconfig {
        Some(p) => tracing::info!(kubeconfig = %p.display(), "host cluster credentials"),
        None => tracing::info!("no host kubeconfig found; trying in-cluster credentials"),
    }
    attach_host(
        ops,
        HostConnection::new(kubeconfig),
        reconciler_settings(cfg),
    )
}

/// Opens the database and seeds what a new one needs.
pub fn open_ops(cfg: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Ops> {
    let (store, outcome) = Store::open(&cfg.db_path(), CACHE_BYTES)?;
    match &outcome {
        OpenOutcome::Created => {
            tracing::info!(path = %cfg.db_path().display(), "created a new database")
        }
        OpenOutcome::Opened => {
            tracing::info!(path = %cfg.db_path().display(), "opened the database")
        }
        OpenOutcome::Migrated { from, to, backup } => tracing::warn!(
            from, to, backup = %backup.display(), "migrated the database schema; the old file was copied aside"
        ),
    }
    let ops = Ops::new(Arc::new(store), clock, settings_from(cfg));
    let seeded = ops.seed_plans()?;
    if seeded > 0 {
        tracing::info!(plans = seeded, "seeded the default plans");
    }
    let counted = ops.restore_throttle()?;
    if counted > 0 {
        tracing::info!(
            failures = counted,
            "login throttling resumed with the failed attempts of the last day"
        );
    }
    let frozen = ops.ensure_plan_revisions()?;
    if frozen > 0 {
        tracing::info!(plans = frozen, "recorded plan prices for billing");
    }
    Ok(ops)
}

/// Where the issuer's key-encryption key lives: beside the database, never in it (nor in
/// its backups).
pub fn issuer_kek_path(cfg: &Config) -> std::path::PathBuf {
    cfg.data.dir.join("issuer").join("signing-keys.kek")
}

/// Starts the OIDC issuer (issuer URL = the public URL) with its keys on schedule.
fn start_issuer(cfg: &Config, ops: &Ops) -> anyhow::Result<()> {
    let path = issuer_kek_path(cfg);
    let kek = crate::ops::issuer::load_or_create_kek(&path)
        .map_err(|e| anyhow::anyhow!("the issuer's key file {}: {e}", path.display()))?;
    let changes = ops.set_issuer(crate::ops::issuer::IssuerSettings {
        url: cfg.public_url(),
        token_lifetime: cfg.issuer.token_lifetime,
        key_rotation: cfg.issuer.key_rotation,
        kek,
    })?;
    if !changes.retire.is_empty() {
        tracing::info!(
            keys = changes.retire.len(),
            "retired signing keys (due, or sealed under another key file)"
        );
    }
    Ok(())
}

/// How often the key schedule is checked: often enough that a rotation is never late by
/// more than a tenth of its period, and at most every minute.
fn rotation_check_interval(cfg: &Config) -> Duration {
    (cfg.issuer.key_rotation / 10).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// The meter: every `interval`, observes every workspace and finalizes any month that
/// ended (see `ops::meter` and `ops::billing`).
async fn run_meter(ops: Arc<Ops>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let o = ops.clone();
        match tokio::task::spawn_blocking(move || o.close_periods()).await {
            Ok(Ok(made)) if !made.is_empty() => {
                tracing::info!(
                    invoices = made.len(),
                    "finalized the invoices of the month that ended"
                )
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "meter tick failed; retrying next interval"),
            Err(e) => tracing::error!(error = %e, "meter task failed"),
        }
    }
}

async fn healthz() -> impl IntoResponse {
    axum::Json(json!({"status": "ok"}))
}

/// Status only: no credentials are needed, so nothing an administrator sees on
/// `/api/v1/host` (versions, paths, warnings) or the setup state is shown here.
async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    // The host is not required: kaas serves its API while the host is away.
    if s.ops.store.ping() {
        (StatusCode::OK, axum::Json(json!({"status": "ready"})))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "not ready"})),
        )
    }
}

async fn metrics() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        Metrics::global().render(),
    )
}

/// Serves `app` on `addr` in plain HTTP within `[server.limits]`: `slots` bound the
/// connections, slow heads are cut off, and hyper is tuned to the header limits.
async fn serve_plain(
    addr: SocketAddr,
    app: axum::extract::connect_info::IntoMakeServiceWithConnectInfo<Router, SocketAddr>,
    slots: std::sync::Arc<ConnectionSlots>,
    limits: RequestLimits,
    handle: axum_server::Handle<SocketAddr>,
) -> std::io::Result<()> {
    let acceptor = LimitAcceptor::new(
        slots,
        axum_server::accept::DefaultAcceptor::new(),
        limits.header_read_timeout,
    );
    let mut server = axum_server::bind(addr).acceptor(acceptor);
    crate::http::limits::tune(server.http_builder(), &limits);
    server.handle(handle).serve(app).await
}

/// Serves `/metrics` alone on `addr` (plain HTTP; `server.metrics_listen`), guarded by
/// `edge::EdgeSettings::metrics`, with `[server.limits]`'s connection, header and time
/// bounds (slots of its own, so scrapers and clients never crowd each other out). Returns
/// once bound, with what stops it.
async fn serve_metrics(
    cfg: &Config,
    addr: SocketAddr,
) -> anyhow::Result<(
    axum_server::Handle<SocketAddr>,
    tokio::task::JoinHandle<std::io::Result<()>>,
)> {
    let app = crate::edge::protect(
        Router::new().route("/metrics", get(metrics)),
        crate::edge::EdgeSettings::metrics(cfg, addr),
    )
    .into_make_service_with_connect_info::<SocketAddr>();
    let limits = cfg.server.limits.clone();
    let slots = ConnectionSlots::new(limits.max_connections, limits.max_connections_per_address);
    let handle = axum_server::Handle::<SocketAddr>::new();
    let h = handle.clone();
    let task = tokio::spawn(serve_plain(addr, app, slots, limits, h));
    match handle.listening().await {
        Some(bound) => {
            tracing::info!(address = %bound, "serving /metrics on the metrics listener");
            Ok((handle, task))
        }
        None => {
            let err = match task.await {
                Ok(Err(e)) => e.to_string(),
                _ => "the metrics listener stopped before listening".into(),
            };
            anyhow::bail!("cannot listen on {addr} (server.metrics_listen): {err}")
        }
    }
}

/// The whole HTTP surface, ready to serve or to drive with `oneshot` in tests, with the
/// default `[server.limits]`.
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    router_with_limits(state, max_body_bytes, &RequestLimits::default())
}

/// [`router`] with the request limits of the configuration: the time a request may take
/// and the nesting of JSON bodies (the connection limits are the listener's, see [`serve`]).
pub fn router_with_limits(
    state: AppState,
    max_body_bytes: usize,
    limits: &RequestLimits,
) -> Router {
    // Install the recorder before the first request, so nothing goes uncounted.
    Metrics::global();
    crate::reconcile::error::register_metrics();
    let routes = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(
            crate::domain::oidc::DISCOVERY_PATH,
            get(crate::api::issuer::discovery),
        )
        .route(
            crate::domain::oidc::JWKS_PATH,
            get(crate::api::issuer::jwks),
        )
        .nest("/api/v1", crate::api::router())
        .merge(crate::web::router())
        .layer(axum::middleware::from_fn(telemetry::http_metrics))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::Extension(JsonDepth(limits.max_json_depth)))
        .layer(axum::middleware::from_fn_with_state(
            limits.request_timeout,
            crate::http::limits::request_timeout,
        ))
        .with_state(state);
    telemetry::with_request_tracing(routes)
        .layer(CompressionLayer::new())
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        // NB: `same-origin`, not `no-referrer`: URLs (with setup and invitation tokens)
        // still leak to no other site, and the browser's form posts carry their real
        // `Origin`, which the CSRF check needs (it refuses `Origin: null`).
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
}

/// Resolves on SIGTERM or SIGINT. NB: the handlers are registered when this is called, not
/// when it is first polled, so a stop that arrives right after READY is never lost (without
/// a handler, SIGTERM would kill the process before the graceful shutdown and STOPPING=1).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let (term, int) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! { _ = wait(term) => {}, _ = wait(int) => {} }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// A line on standard output for the operator (and for scripts reading the address). A
/// closed stdout must not take the server down, so write errors are ignored.
fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// `kaas serve`.
pub async fn serve(cfg: Config) -> anyhow::Result<()> {
    let started = Instant::now();
    // Before anything listens, so that no stop request can find the process without a handler.
    let stop = shutdown_signal();
    if cfg.plain_http_on_public_address() {
        tracing::warn!(listen = %cfg.server.listen, "serving plain HTTP on a non-loopback address (server.tls.mode = \"off\")");
    }
    // kube and rustls are built with ring only; make it the process default explicitly.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // A data directory made by an older kaas, or by hand, under umask 022: others could read
    // password hashes and billing details. Logged for each path changed.
    crate::store::private::tighten_existing(&cfg.data.dir, &cfg.backup_dir());
    let tls = crate::tls::server_config(&cfg)?;
    let ops = Arc::new(open_ops(&cfg, Arc::new(SystemClock))?);
    start_issuer(&cfg, &ops)?;
    let setup_token = ops.prepare_setup()?;
    // Bound before READY, so `kaas backup` works as soon as systemd reports the service up.
    let control = match crate::backup::control::start(
        crate::backup::control::socket_path(&cfg.data.dir),
        ops.store.clone(),
        cfg.backup_dir(),
    ) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(error = %e, "no control socket: `kaas backup` cannot reach this server");
            None
        }
    };
    let scheduled_backups = (!cfg.backup.interval.is_zero()).then(|| {
        tokio::spawn(crate::backup::schedule(
            ops.store.clone(),
            cfg.backup_dir(),
            cfg.backup.interval,
            cfg.backup.keep,
        ))
    });
    // Always: platform administrators may add providers in the console at any time.
    ops.set_sso(crate::ops::sso::SsoProviders::new(
        &cfg.sso.providers,
        &cfg.public_url(),
    )?);
    ops.reload_sso(None)?;
    let reconciler = start_host(&cfg, &ops);
    let meter = tokio::spawn(run_meter(ops.clone(), cfg.billing.meter_interval));
    let rotation = tokio::spawn(crate::ops::issuer::run_rotation(
        ops.clone(),
        rotation_check_interval(&cfg),
    ));
    let state = AppState::new(AppInner {
        ops,
        reconciler: Some(reconciler.clone()),
        secure_cookies: tls.is_some(),
        public_url: cfg.public_url(),
        started,
    });
    let trusted = crate::http::TrustedProxies::parse(&cfg.server.trusted_proxies)
        .map_err(|e| anyhow::anyhow!("server.trusted_proxies: {e}"))?;
    let limits = cfg.server.limits.clone();
    let app = crate::edge::protect(
        router_with_limits(state.clone(), cfg.server.max_body_bytes, &limits)
            .layer(axum::Extension(trusted)),
        crate::edge::EdgeSettings::main(&cfg),
    )
    .into_make_service_with_connect_info::<SocketAddr>();
    let metrics_server = match cfg.server.metrics_listen {
        Some(addr) => Some(serve_metrics(&cfg, addr).await?),
        None => None,
    };
    let slots = ConnectionSlots::new(limits.max_connections, limits.max_connections_per_address);

    let handle = axum_server::Handle::<SocketAddr>::new();
    let server_handle = handle.clone();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let listen = cfg.server.listen;
    let server = tokio::spawn(async move {
        match tls {
            Some(tls) => {
                let rustls = axum_server::tls_rustls::RustlsConfig::from_config(tls);
                let acceptor = LimitAcceptor::new(
                    slots,
                    axum_server::tls_rustls::RustlsAcceptor::new(rustls),
                    limits.header_read_timeout,
                );
                let mut server = axum_server::bind(listen).acceptor(acceptor);
                crate::http::limits::tune(server.http_builder(), &limits);
                server.handle(server_handle).serve(app).await
            }
            None => serve_plain(listen, app, slots, limits, server_handle).await,
        }
    });
    let Some(bound) = handle.listening().await else {
        let err = match server.await {
            Ok(Err(e)) => e.to_string(),
            _ => "the server stopped before listening".into(),
        };
        anyhow::bail!("cannot listen on {listen}: {err}");
    };
    // NB: the exact line tests and scripts read to find the port when listening on :0.
    say(&format!("kaas listening on {scheme}://{bound}"));
    tracing::info!(address = %bound, elapsed_ms = started.elapsed().as_millis() as u64, "ready");
    if let Some(token) = setup_token {
        let base = if cfg.server.listen.port() == 0 {
            format!("{scheme}://{bound}")
        } else {
            state.public_url.clone()
        };
        say(&format!(
            "First run: create the platform administrator at {base}/setup?token={token}"
        ));
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);

    stop.await;
    tracing::info!("shutting down: finishing requests in flight");
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    handle.graceful_shutdown(Some(cfg.server.shutdown_grace));
    if let Some((h, task)) = metrics_server {
        h.shutdown();
        let _ = task.await;
    }
    match tokio::time::timeout(cfg.server.shutdown_grace + Duration::from_secs(1), server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::error!(error = %e, "server error while stopping"),
        Ok(Err(e)) => tracing::error!(error = %e, "server task failed"),
        Err(_) => tracing::warn!("requests still running after the grace period were cut off"),
    }
    // Both hold the store: stop them before it is closed.
    if let Some(task) = scheduled_backups {
        task.abort();
        let _ = task.await;
    }
    if let Some(control) = control {
        control.stop().await;
    }
    reconciler.stop();
    meter.abort();
    let _ = meter.await;
    rotation.abort();
    let _ = rotation.await;
    // The last observation, so that the time up to the stop is billed; the time until the
    // next start is a gap.
    let ops = state.ops.clone();
    match tokio::task::spawn_blocking(move || ops.meter_tick()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "final meter reading failed"),
        Err(e) => tracing::error!(error = %e, "final meter reading failed"),
    }
    drop(state);
    tracing::info!("stopped; database closed");
    Ok(())
}
