//! Test fixtures: an in-process app (router driven with `oneshot`, in-memory store, manual
//! clock, cheap password hashing) and helpers to make users, tokens and requests.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use jiff::Timestamp;
use kaas::clock::ManualClock;
use kaas::domain::{TokenScope, UserId};
use kaas::ops::tokens::NewToken;
use kaas::ops::users::NewUser;
use kaas::ops::{Actor, AuthVia, Ops, Settings};
use kaas::reconcile::{ReconcilerHandle, ReconcilerSettings};
use kaas::state::{AppInner, AppState};
use kaas::store::Store;
use serde_json::{Value, json};
use tower::ServiceExt;

pub const PASSWORD: &str = "correct horse battery staple";

pub struct TestApp {
    pub router: Router,
    pub state: AppState,
    pub clock: ManualClock,
}

#[derive(Clone, Debug)]
pub enum Auth {
    None,
    Bearer(String),
    Cookie {
        cookie: String,
        csrf: Option<String>,
    },
}

pub struct Res {
    pub status: StatusCode,
    pub body: Value,
    pub headers: HeaderMap,
}

impl Res {
    /// The error code of an error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
    pub fn field(&self) -> &str {
        self.body["error"]["field"].as_str().unwrap_or("")
    }
}

pub fn shell() -> Actor {
    Actor {
        user_id: UserId(0),
        email: "shell".into(),
        platform_admin: true,
        via: AuthVia::Shell,
        source: "test".into(),
    }
}

impl TestApp {
    pub fn new() -> TestApp {
        Self::with_settings(Settings::default())
    }

    pub fn with_settings(settings: Settings) -> TestApp {
        Self::with_issuer(settings, test_issuer())
    }

    /// A [`TestApp`] whose OIDC issuer is `issuer` (its URL, token lifetime, rotation).
    pub fn with_issuer(settings: Settings, issuer: kaas::ops::issuer::IssuerSettings) -> TestApp {
        let clock = ManualClock::new(Timestamp::from_second(1_790_000_000).expect("valid time"));
        let store = Store::in_memory().expect("in-memory store");
        let ops = Ops::new(Arc::new(store), Arc::new(clock.clone()), settings).with_fast_hashing();
        ops.seed_plans().expect("seed plans");
        ops.set_issuer(issuer).expect("issuer");
        let state = AppState::new(AppInner {
            ops: Arc::new(ops),
            reconciler: None,
            secure_cookies: false,
            public_url: "http://kaas.test".into(),
            started: Instant::now(),
        });
        TestApp {
            router: kaas::app::router(state.clone(), 64 * 1024),
            state,
            clock,
        }
    }

    pub fn ops(&self) -> &Ops {
        &self.state.ops
    }

    pub async fn raw(&self, req: Request<Body>) -> Res {
        let res = self
            .router
            .clone()
            .oneshot(req)
            .await
            .expect("router answers");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.expect("body").to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Res {
            status,
            body,
            headers,
        }
    }

    pub async fn call(&self, method: &str, path: &str, auth: &Auth, body: Option<Value>) -> Res {
        let mut b = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).expect("method"))
            .uri(format!("/api/v1{path}"));
        match auth {
            Auth::None => {}
            Auth::Bearer(t) => b = b.header(header::AUTHORIZATION, format!("Bearer {t}")),
            Auth::Cookie { cookie, csrf } => {
                b = b.header(header::COOKIE, cookie.clone());
                if let Some(c) = csrf {
                    b = b.header("x-csrf-token", c.clone());
                }
            }
        }
        let req = match body {
            Some(v) => b
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(v.to_string())),
            None => b.body(Body::empty()),
        }
        .expect("request");
        self.raw(req).await
    }

    /// Creates a user directly and returns it with a read-write API token.
    pub async fn user(&self, email: &str, admin: bool) -> (UserId, String) {
        let u = self
            .ops()
            .create_user(
                &shell(),
                NewUser {
                    email: email.into(),
                    name: email.split('@').next().unwrap_or("x").into(),
                    password: PASSWORD.into(),
                    platform_admin: admin,
                },
            )
            .await
            .expect("create user");
        let actor = Actor {
            user_id: u.id,
            email: u.email.clone(),
            platform_admin: admin,
            via: AuthVia::Shell,
            source: "test".into(),
        };
        let t = self
            .ops()
            .create_token(
                &actor,
                NewToken {
                    name: "test".into(),
                    scope: TokenScope::ReadWrite,
                    expires_in_days: Some(30),
                    current_password: PASSWORD.into(),
                },
            )
            .await
            .expect("token");
        (u.id, t.secret)
    }

    /// Signs in with the password and returns the cookie and CSRF token.
    /// Creates an organization as `auth` through the API; its id.
    pub async fn create_org(&self, auth: &Auth, name: &str) -> String {
        let r = self
            .call("POST", "/orgs", auth, Some(json!({"name": name})))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.body["id"].as_str().unwrap().to_string()
    }

    /// Creates a workspace on `plan` in `org` as `auth` through the API; its id.
    pub async fn create_workspace(&self, auth: &Auth, org: &str, name: &str, plan: &str) -> String {
        let r = self
            .call(
                "POST",
                &format!("/orgs/{org}/workspaces"),
                auth,
                Some(json!({"name": name, "plan": plan})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.body["id"].as_str().unwrap().to_string()
    }

    pub async fn login(&self, email: &str) -> Auth {
        let r = self
            .call(
                "POST",
                "/auth/login",
                &Auth::None,
                Some(serde_json::json!({"email": email, "password": PASSWORD})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "login failed: {:?}", r.body);
        let set = r
            .headers
            .get(header::SET_COOKIE)
            .expect("cookie set")
            .to_str()
            .expect("ascii");
        let cookie = set.split(';').next().expect("pair").to_string();
        Auth::Cookie {
            cookie,
            csrf: r.body["csrf_token"].as_str().map(str::to_string),
        }
    }
}

/// The OIDC issuer of [`TestApp`]: at its public URL, 10-minute tokens, daily keys.
pub fn test_issuer() -> kaas::ops::issuer::IssuerSettings {
    kaas::ops::issuer::IssuerSettings {
        url: "http://kaas.test".into(),
        token_lifetime: Duration::from_secs(600),
        key_rotation: Duration::from_secs(86_400),
        kek: [7; kaas::ops::issuer::KEK_LEN],
    }
}

/// A timestamp from RFC 3339 text.
pub fn at(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

/// What the reconciler records when the host reports a workspace Ready.
pub fn ready() -> kaas::ops::reconcile::Observation {
    kaas::ops::reconcile::Observation {
        state: kaas::domain::WorkspaceState::Ready,
        phase: Some("Ready".into()),
        message: "ready".into(),
        applied_generation: None,
    }
}

pub fn bearer(t: &str) -> Auth {
    Auth::Bearer(t.to_string())
}

/// A fake host (K3s API + simulated K3K) and a kaas whose reconciler drives it.
pub struct HostedApp {
    pub app: TestApp,
    pub host: fakehost::FakeHost,
    pub k3k: fakehost::k3k::K3kController,
    pub reconciler: kaas::reconcile::ReconcilerHandle,
    pub _dir: tempfile::TempDir,
}

impl HostedApp {
    pub async fn start() -> HostedApp {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(
        tweak: impl FnOnce(&mut kaas::reconcile::ReconcilerSettings),
    ) -> HostedApp {
        Self::start_full(false, 1, tweak).await
    }

    /// A host with `nodes` nodes (the first is the control plane) and, if asked, the
    /// PodTolerationRestriction admission plugin.
    pub async fn start_with_nodes(toleration_restriction: bool, nodes: usize) -> HostedApp {
        Self::start_full(toleration_restriction, nodes, |_| {}).await
    }

    async fn start_full(
        toleration_restriction: bool,
        nodes: usize,
        tweak: impl FnOnce(&mut kaas::reconcile::ReconcilerSettings),
    ) -> HostedApp {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let host = fakehost::FakeHost::start(fakehost::FakeHostOptions {
            manifests: vec![std::path::PathBuf::from(fakehost::K3K_CRDS_DIR)],
            pod_toleration_restriction: toleration_restriction,
            nodes: fakehost::NodeSeed {
                count: nodes,
                ..Default::default()
            },
            ..Default::default()
        })
        .await
        .expect("fakehost starts");
        let k3k = fakehost::k3k::K3kController::for_host(
            &host,
            fakehost::k3k::K3kOptions {
                provision_delay: std::time::Duration::from_millis(150),
                poll_interval: std::time::Duration::from_millis(50),
                ..Default::default()
            },
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let kubeconfig = dir.path().join("host.kubeconfig");
        host.write_kubeconfig(&kubeconfig).expect("kubeconfig");
        let mut app = TestApp::new();
        let mut settings = reconciler_settings();
        tweak(&mut settings);
        let reconciler = attach_host(&mut app, kubeconfig, settings);
        HostedApp {
            app,
            host,
            k3k,
            reconciler,
            _dir: dir,
        }
    }

    pub fn get(&self, group: &str, resource: &str, ns: Option<&str>, name: &str) -> Option<Value> {
        self.host
            .engine()
            .get(&resource_ref(group, resource), ns, name)
            .ok()
    }
}

/// The reconciler settings of a test kaas: short waits, no periodic resync (tests ask).
pub fn reconciler_settings() -> ReconcilerSettings {
    ReconcilerSettings {
        host: kaas::host::desired::HostSettings {
            external_addresses: vec!["127.0.0.1".into()],
            k3s_version: "v1.33.1-k3s1".into(),
            ..Default::default()
        },
        resync_interval: Duration::from_secs(3600),
        stuck_after: Duration::from_millis(500),
        poll_while_busy: Duration::from_millis(100),
        max_backoff: Duration::from_millis(500),
        // A simulated or loopback K3K reacts within milliseconds.
        change_grace: Duration::from_secs(3),
        // Tests of drift inside a virtual cluster wait this long for it to be repaired.
        inside_check_interval: Duration::from_millis(500),
        ..Default::default()
    }
}

/// Wires `app` to the host behind `kubeconfig` as `kaas serve` does (`app::attach_host`): a
/// host connection, every port `ops` defines, and a running reconciler.
pub fn attach_host(
    app: &mut TestApp,
    kubeconfig: PathBuf,
    settings: ReconcilerSettings,
) -> ReconcilerHandle {
    let conn = kaas::reconcile::connection::HostConnection::new(Some(kubeconfig));
    let reconciler = kaas::app::attach_host(&app.state.ops, conn, settings);
    let state = AppState::new(AppInner {
        ops: app.state.ops.clone(),
        reconciler: Some(reconciler.clone()),
        secure_cookies: false,
        public_url: "http://kaas.test".into(),
        started: Instant::now(),
    });
    app.router = kaas::app::router(state.clone(), 64 * 1024);
    app.state = state;
    reconciler
}

/// What a journey needs of a host, fake or real: the kaas driving it and the host's API.
/// Journeys are written once against this trait and run as one test per host.
pub trait TestHost {
    /// `fakehost` or `realhost`, for messages.
    const NAME: &'static str;
    /// How long one wait on this host may take (real K3K starts a real API server for every
    /// Cluster, fakehost simulates one in-process).
    const PATIENCE: Duration;

    fn app(&self) -> &TestApp;
    fn reconciler(&self) -> &ReconcilerHandle;
    /// What to show when something on this host times out or fails (realhost: its log).
    fn diagnostics(&self) -> String {
        String::new()
    }

    /// An object read through the host's API (`group` "" is the core group); `None` if absent.
    async fn get(&self, group: &str, resource: &str, ns: Option<&str>, name: &str)
    -> Option<Value>;
    /// The objects of one kind, in `ns` or cluster-wide.
    async fn list(&self, group: &str, resource: &str, ns: Option<&str>) -> Vec<Value>;
    /// Creates an object through the host's API; the error is the server's answer.
    async fn create(
        &self,
        group: &str,
        resource: &str,
        ns: Option<&str>,
        object: Value,
    ) -> Result<Value, String>;
    /// Deletes an object (absent is fine).
    async fn delete(&self, group: &str, resource: &str, ns: Option<&str>, name: &str);

    /// Holds K3K back (nothing is provisioned; what was asked waits) or lets it go on, so a
    /// test sees a workspace before it is Ready however fast the host is. Realhost cannot
    /// hold its K3K: there a Cluster's own API server needs seconds to start, far longer
    /// than the few requests a test holds K3K for.
    async fn hold_k3k(&self, _hold: bool) {}

    /// Waits until `f` holds, for at most [`TestHost::PATIENCE`].
    async fn until(&self, what: &str, mut f: impl AsyncFnMut() -> bool) {
        let deadline = Instant::now() + Self::PATIENCE;
        while !f().await {
            assert!(
                Instant::now() < deadline,
                "timed out on {} waiting for {what}{}",
                Self::NAME,
                self.diagnostics()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls a workspace until `pred` holds for its JSON (or a 404 when `None`).
    async fn wait_ws(
        &self,
        auth: &Auth,
        ws: &str,
        what: &str,
        pred: impl Fn(Option<&Value>) -> bool,
    ) -> Option<Value> {
        let deadline = Instant::now() + Self::PATIENCE;
        loop {
            let r = self
                .app()
                .call("GET", &format!("/workspaces/{ws}"), auth, None)
                .await;
            let body = (r.status == StatusCode::OK).then_some(r.body);
            if pred(body.as_ref()) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "timed out on {} waiting for {what}; last: {body:?}{}",
                Self::NAME,
                self.diagnostics()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the reconciler has nothing queued or running.
    async fn settle(&self) {
        let deadline = Instant::now() + Self::PATIENCE;
        while !self.reconciler().idle() {
            assert!(
                Instant::now() < deadline,
                "the reconciler never went idle on {}{}",
                Self::NAME,
                self.diagnostics()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn resource_ref(group: &str, resource: &str) -> fakehost::ResourceRef {
    if group.is_empty() {
        fakehost::ResourceRef::core(resource)
    } else {
        fakehost::ResourceRef::new(group, resource)
    }
}

impl TestHost for HostedApp {
    const NAME: &'static str = "fakehost";
    const PATIENCE: Duration = Duration::from_secs(20);

    fn app(&self) -> &TestApp {
        &self.app
    }
    fn reconciler(&self) -> &ReconcilerHandle {
        &self.reconciler
    }
    async fn get(
        &self,
        group: &str,
        resource: &str,
        ns: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        HostedApp::get(self, group, resource, ns, name)
    }
    async fn hold_k3k(&self, hold: bool) {
        self.k3k.set_down(hold);
    }
    async fn list(&self, group: &str, resource: &str, ns: Option<&str>) -> Vec<Value> {
        self.host
            .engine()
            .list(&resource_ref(group, resource), ns, &Default::default())
            .map(|l| l.items.iter().map(|o| (**o).clone()).collect())
            .unwrap_or_default()
    }
    async fn create(
        &self,
        group: &str,
        resource: &str,
        ns: Option<&str>,
        object: Value,
    ) -> Result<Value, String> {
        self.host
            .engine()
            .create(
                &resource_ref(group, resource),
                ns,
                object,
                &Default::default(),
            )
            .map_err(|e| format!("HTTP {} ({}): {}", e.code, e.reason, e.message))
    }
    async fn delete(&self, group: &str, resource: &str, ns: Option<&str>, name: &str) {
        let _ = self.host.engine().delete(
            &resource_ref(group, resource),
            ns,
            name,
            &fakehost::DeleteOptions::default(),
        );
    }
}

/// Runs the real `kubectl` from PATH (CI puts realhost's, of the host's Kubernetes version,
/// first) without blocking the runtime (fakehost's virtual clusters answer in-process). Its
/// discovery cache sits next to the kubeconfig: nothing is shared between tests or runs.
pub async fn kubectl_output(kubeconfig: &std::path::Path, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(kubeconfig.with_extension("cache"))
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .expect("kubectl runs (is it on PATH?)")
}

/// `kubectl`'s success and its stdout and stderr together, trimmed.
pub async fn kubectl(kubeconfig: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = kubectl_output(kubeconfig, args).await;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text.trim().to_string())
}
