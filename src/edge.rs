//! What stands in front of the router when kaas serves: the Host check against DNS
//! rebinding, who may read `/metrics`, and HSTS when serving TLS. Built from configuration
//! by [`EdgeSettings::main`] (the main listener) and [`EdgeSettings::metrics`] (the optional
//! `/metrics`-only listener), applied by [`protect`]; the in-process router (`app::router`,
//! driven with `oneshot` by tests) has none of it.
//!
//! - Host: a web page on `evil.example` whose name is made to resolve to 127.0.0.1 can reach
//!   a loopback kaas from the victim's browser (its requests carry `Host: evil.example`).
//!   When people use a known name (`server.public_url`) or kaas listens on loopback, only
//!   that name, `localhost`, `server.allowed_hosts` and IP addresses are answered (an IP
//!   literal is not a rebinding: the page's origin is then the address itself); others get
//!   421. A request without any host (HTTP/1.0) is served: browsers always send one.
//! - `/metrics`: with `server.metrics_token` a bearer token is required; otherwise only
//!   peers on this machine may read it, and not through a proxy (a request carrying
//!   `X-Forwarded-For`/`Forwarded` came from elsewhere) — except on the separate
//!   `server.metrics_listen` listener, which the operator placed where scrapers are.
//! - HSTS: `Strict-Transport-Security` on every response served over TLS (browsers ignore it
//!   on a certificate they do not trust, so the self-signed `auto` certificate is no trap).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::config::Config;

/// One year, the usual HSTS lifetime; no `includeSubDomains`: other services of the domain
/// are not kaas's to decide for.
const HSTS: &str = "max-age=31536000";

/// The guard of one listener.
#[derive(Clone, Default)]
pub struct EdgeSettings {
    /// Host names answered besides `localhost` and IP literals (lower-case, no trailing
    /// dot); `None`: any Host.
    pub allowed_hosts: Option<Vec<String>>,
    /// Send `Strict-Transport-Security` (the listener serves TLS).
    pub hsts: bool,
    /// The bearer token `/metrics` requires, if any.
    pub metrics_token: Option<String>,
    /// `/metrics` is served by another listener: answer 404 here.
    pub metrics_elsewhere: bool,
    /// Any peer may read `/metrics` here without a token (the separate listener).
    pub metrics_open: bool,
}

fn normalize(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// The names a listener on `listen` answers to, when the Host check applies.
fn allowed_hosts(cfg: &Config, listen: SocketAddr) -> Option<Vec<String>> {
    if cfg.server.public_url.is_none() && !listen.ip().is_loopback() {
        return None;
    }
    let mut names: Vec<String> = cfg
        .server
        .allowed_hosts
        .iter()
        .map(|h| normalize(h))
        .collect();
    if cfg.server.public_url.is_some()
        && let Some(h) = cfg.public_host()
    {
        names.push(normalize(&h));
    }
    Some(names)
}

impl EdgeSettings {
    /// The main listener's guard.
    pub fn main(cfg: &Config) -> EdgeSettings {
        EdgeSettings {
            allowed_hosts: allowed_hosts(cfg, cfg.server.listen),
            hsts: cfg.uses_tls(),
            metrics_token: cfg
                .server
                .metrics_token
                .as_ref()
                .map(|t| t.expose().clone()),
            metrics_elsewhere: cfg.server.metrics_listen.is_some(),
            metrics_open: false,
        }
    }

    /// The guard of the `/metrics`-only listener on `listen` (plain HTTP).
    pub fn metrics(cfg: &Config, listen: SocketAddr) -> EdgeSettings {
        EdgeSettings {
            allowed_hosts: allowed_hosts(cfg, listen),
            hsts: false,
            metrics_token: cfg
                .server
                .metrics_token
                .as_ref()
                .map(|t| t.expose().clone()),
            metrics_elsewhere: false,
            metrics_open: true,
        }
    }
}

/// Puts the guard in front of `router`. The router must be served with
/// `into_make_service_with_connect_info::<SocketAddr>()`: without a peer address, `/metrics`
/// is refused unless a token is configured.
pub fn protect(router: Router, settings: EdgeSettings) -> Router {
    router.layer(axum::middleware::from_fn_with_state(
        Arc::new(settings),
        guard,
    ))
}

fn refusal(status: StatusCode, code: &str, message: String) -> Response {
    let body = json!({"error": {"code": code, "message": message, "field": null}});
    (status, axum::Json(body)).into_response()
}

async fn guard(State(s): State<Arc<EdgeSettings>>, req: Request, next: Next) -> Response {
    if let Some(allowed) = &s.allowed_hosts
        && let Some(host) = request_host(&req)
        && !host_allowed(&host, allowed)
    {
        return refusal(
            StatusCode::MISDIRECTED_REQUEST,
            "misdirected",
            format!(
                "this kaas does not answer to the host name {host:?}; use its public address, \
                 or add the name to server.allowed_hosts"
            ),
        );
    }
    if req.uri().path() == "/metrics"
        && let Some(refused) = metrics_refusal(&s, &req)
    {
        return refused;
    }
    let mut res = next.run(req).await;
    if s.hsts {
        res.headers_mut().insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        );
    }
    res
}

/// The host the request names, without port or IPv6 brackets, lower-case: the URI's
/// authority (HTTP/2, absolute-form) or else the Host header. `None` when it names none.
fn request_host(req: &Request) -> Option<String> {
    let raw = match req.uri().authority() {
        Some(a) => a.host().to_string(),
        None => {
            let h = req.headers().get(header::HOST)?;
            // An unreadable Host names nothing we answer to.
            let h = h.to_str().unwrap_or("\u{fffd}");
            match h.strip_prefix('[') {
                Some(rest) => rest.split(']').next().unwrap_or_default().to_string(),
                None => h
                    .rsplit_once(':')
                    .map_or(h, |(host, _port)| host)
                    .to_string(),
            }
        }
    };
    Some(normalize(raw.trim_start_matches('[').trim_end_matches(']')))
}

fn host_allowed(host: &str, allowed: &[String]) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok() || allowed.iter().any(|a| a == host)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Compares digests, so the time taken says nothing about the token.
fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

fn metrics_refusal(s: &EdgeSettings, req: &Request) -> Option<Response> {
    if s.metrics_elsewhere {
        return Some(refusal(
            StatusCode::NOT_FOUND,
            "not_found",
            "/metrics is served on the metrics listener (server.metrics_listen)".into(),
        ));
    }
    if let Some(token) = &s.metrics_token {
        if bearer(req.headers()).is_some_and(|t| same_secret(t, token)) {
            return None;
        }
        let mut res = refusal(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "/metrics needs the bearer token set in server.metrics_token".into(),
        );
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"kaas metrics\""),
        );
        return Some(res);
    }
    if s.metrics_open {
        return None;
    }
    let local = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|ConnectInfo(peer)| peer.ip().to_canonical().is_loopback());
    let proxied = req.headers().contains_key("x-forwarded-for")
        || req.headers().contains_key(header::FORWARDED);
    if local && !proxied {
        return None;
    }
    Some(refusal(
        StatusCode::FORBIDDEN,
        "forbidden",
        "/metrics is answered only to this machine; set server.metrics_token (or \
         server.metrics_listen) to scrape it from elsewhere"
            .into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    fn app(settings: EdgeSettings) -> Router {
        let r = Router::new()
            .route("/metrics", get(|| async { "kaas_up 1" }))
            .route("/readyz", get(|| async { "ok" }));
        protect(r, settings)
    }

    async fn send(
        app: &Router,
        host: &str,
        path: &str,
        peer: &str,
        extra: &[(&str, &str)],
    ) -> Response {
        let mut b = Request::get(path).header(header::HOST, host);
        for (k, v) in extra {
            b = b.header(*k, *v);
        }
        let mut req = b.body(Body::empty()).unwrap();
        let peer: SocketAddr = peer.parse().unwrap();
        req.extensions_mut().insert(ConnectInfo(peer));
        app.clone().oneshot(req).await.unwrap()
    }

    fn cfg(toml: &str) -> Config {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), format!("version = 1\n{toml}")).unwrap();
        Config::load(Some(f.path()), &[], &Default::default()).unwrap()
    }

    #[test]
    fn the_host_check_applies_to_a_known_name_or_a_loopback_listener() {
        let loopback = EdgeSettings::main(&cfg("[server]\nlisten = \"127.0.0.1:8080\"\n"));
        assert_eq!(loopback.allowed_hosts, Some(vec![]));
        let public = EdgeSettings::main(&cfg(
            "[server]\nlisten = \"0.0.0.0:8443\"\npublic_url = \"https://Kaas.Example:8443/\"\nallowed_hosts = [\"box1\"]\n",
        ));
        assert_eq!(
            public.allowed_hosts,
            Some(vec!["box1".to_string(), "kaas.example".to_string()])
        );
        assert!(public.hsts, "auto TLS on a public address");
        let open = EdgeSettings::main(&cfg("[server]\nlisten = \"0.0.0.0:8443\"\n"));
        assert_eq!(open.allowed_hosts, None);
        assert!(!loopback.hsts, "plain HTTP on loopback");
    }

    #[test]
    fn the_settings_are_checked_when_loaded() {
        let err = |toml: &str| {
            let f = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(f.path(), format!("version = 1\n[server]\n{toml}")).unwrap();
            Config::load(Some(f.path()), &[], &Default::default())
                .unwrap_err()
                .to_string()
        };
        assert!(err("metrics_token = \"short\"\n").contains("server.metrics_token"));
        let clash = "listen = \"127.0.0.1:8080\"\nmetrics_listen = \"127.0.0.1:8080\"\n";
        assert!(err(clash).contains("server.metrics_listen"));
        let url = "allowed_hosts = [\"https://kaas.example\"]\n";
        assert!(err(url).contains("server.allowed_hosts"));
        let env = [
            ("KAAS_SERVER_METRICS_LISTEN".to_string(), "".to_string()),
            (
                "KAAS_SERVER_ALLOWED_HOSTS".to_string(),
                "a.example, b.example".to_string(),
            ),
        ];
        let c = Config::load(None, &env, &Default::default()).unwrap();
        assert_eq!(c.server.metrics_listen, None);
        assert_eq!(c.server.allowed_hosts, ["a.example", "b.example"]);
        let token = [(
            "KAAS_SERVER_METRICS_TOKEN".to_string(),
            "0123456789abcdef".to_string(),
        )];
        let c = Config::load(None, &token, &Default::default()).unwrap();
        assert!(
            !format!("{c:?}").contains("0123456789abcdef"),
            "the token is never printed"
        );
    }

    #[tokio::test]
    async fn a_rebound_name_is_refused_and_known_names_and_addresses_are_served() {
        let app = app(EdgeSettings {
            allowed_hosts: Some(vec!["kaas.example".into()]),
            ..EdgeSettings::default()
        });
        for host in [
            "evil.example",
            "evil.example:8080",
            "kaas.example.evil.example",
        ] {
            let r = send(&app, host, "/readyz", "127.0.0.1:5000", &[]).await;
            assert_eq!(r.status(), StatusCode::MISDIRECTED_REQUEST, "{host}");
        }
        for host in [
            "kaas.example",
            "KAAS.example.:8443",
            "localhost:8080",
            "127.0.0.1:8080",
            "[::1]:8080",
            "10.1.2.3",
        ] {
            let r = send(&app, host, "/readyz", "127.0.0.1:5000", &[]).await;
            assert_eq!(r.status(), StatusCode::OK, "{host}");
        }
        let any = self::app(EdgeSettings::default());
        let r = send(&any, "evil.example", "/readyz", "127.0.0.1:5000", &[]).await;
        assert_eq!(r.status(), StatusCode::OK, "no check configured");
    }

    #[tokio::test]
    async fn metrics_without_a_token_are_for_this_machine_only() {
        let app = app(EdgeSettings::default());
        let ok = send(&app, "localhost", "/metrics", "127.0.0.1:5000", &[]).await;
        assert_eq!(ok.status(), StatusCode::OK);
        let ok = send(
            &app,
            "localhost",
            "/metrics",
            "[::ffff:127.0.0.1]:5000",
            &[],
        )
        .await;
        assert_eq!(ok.status(), StatusCode::OK, "v4-mapped loopback");
        let far = send(&app, "10.0.0.1", "/metrics", "10.0.0.9:5000", &[]).await;
        assert_eq!(far.status(), StatusCode::FORBIDDEN);
        let proxied = [("x-forwarded-for", "203.0.113.7")];
        let r = send(&app, "localhost", "/metrics", "127.0.0.1:5000", &proxied).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "through a local proxy");
        // Other routes are not concerned.
        let r = send(&app, "10.0.0.1", "/readyz", "10.0.0.9:5000", &[]).await;
        assert_eq!(r.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn a_metrics_token_is_required_from_everyone_when_set() {
        let token = "0123456789abcdef0123";
        let app = app(EdgeSettings {
            metrics_token: Some(token.into()),
            ..EdgeSettings::default()
        });
        let r = send(&app, "localhost", "/metrics", "127.0.0.1:5000", &[]).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "even locally");
        assert!(r.headers().contains_key(header::WWW_AUTHENTICATE));
        let wrong = [("authorization", "Bearer 0123456789abcdef0124")];
        let r = send(&app, "10.0.0.1", "/metrics", "10.0.0.9:5000", &wrong).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let auth = format!("bearer {token}");
        let right = [("authorization", auth.as_str())];
        let r = send(&app, "10.0.0.1", "/metrics", "10.0.0.9:5000", &right).await;
        assert_eq!(r.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn the_separate_listener_serves_metrics_and_the_main_one_does_not() {
        let c = cfg("[server]\nlisten = \"127.0.0.1:8080\"\nmetrics_listen = \"10.0.0.5:9100\"\n");
        let main = app(EdgeSettings::main(&c));
        let r = send(&main, "localhost", "/metrics", "127.0.0.1:5000", &[]).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let listen = c.server.metrics_listen.unwrap();
        let metrics = app(EdgeSettings::metrics(&c, listen));
        let r = send(&metrics, "10.0.0.5:9100", "/metrics", "10.0.0.9:5000", &[]).await;
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "open to the network it was put on"
        );
    }

    #[tokio::test]
    async fn tls_responses_carry_hsts() {
        let app = app(EdgeSettings {
            hsts: true,
            ..EdgeSettings::default()
        });
        let r = send(&app, "localhost", "/readyz", "127.0.0.1:5000", &[]).await;
        assert_eq!(r.headers()[header::STRICT_TRANSPORT_SECURITY], HSTS);
        let plain = self::app(EdgeSettings::default());
        let r = send(&plain, "localhost", "/readyz", "127.0.0.1:5000", &[]).await;
        assert!(!r.headers().contains_key(header::STRICT_TRANSPORT_SECURITY));
    }
}
