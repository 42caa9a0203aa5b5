//! realhost: the real Kubernetes host kaas is tested against besides fakehost — the real
//! kube-apiserver, controller-manager and scheduler (Kubernetes v1.35), simulated nodes and
//! kubelets, the real K3K controllers, and a real kube-apiserver for every K3K Cluster, all
//! on loopback (`tests/realhost`, a Go program; `bash tests/realhost/build.sh` builds it into
//! `tests/realhost/bin/`, CI does so and puts that directory first on PATH).
//!
//! One realhost process serves every test of this binary: each kube-apiserver costs real CPU
//! and memory. It is started on first use and lives as long as the test process (it exits
//! when its standard input, which only this process holds, closes). kaas instances can share
//! it: workspace ids are unique, and a reconciler ignores host objects of workspaces it does
//! not know (it only ever acts on workspaces in its own store). Nothing tokio is kept across
//! tests: each test makes its own client from the shared kubeconfig.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kaas::reconcile::{ReconcilerHandle, ReconcilerSettings};
use serde_json::Value;

use crate::support::{TestApp, TestHost, attach_host, reconciler_settings};

/// The realhost binary.
pub const BINARY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/realhost/bin/realhost");
/// Nodes of the shared host: `realhost-node-1` (control plane, untainted) to `-3`.
pub const NODES: usize = 3;
/// How long realhost may take to come up (usually 5–30 s).
const START_TIMEOUT: Duration = Duration::from_secs(180);
/// Lines of the components' log shown when something fails.
const TAIL_LINES: usize = 80;

/// The shared realhost process and where it writes.
struct Shared {
    kubeconfig: PathBuf,
    /// Where the Traefik stand-in's TLS entry point listens (`--ingress-addr-out`).
    ingress: PathBuf,
    log: PathBuf,
    stderr: PathBuf,
    /// Held open for the life of the test process: realhost runs `--exit-with-stdin`.
    stdin: Option<ChildStdin>,
    child: Child,
}

impl Drop for Shared {
    /// Only private hosts are dropped: closing stdin makes realhost stop and clean up.
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

static SHARED: OnceLock<Result<Shared, String>> = OnceLock::new();

/// The last `lines` lines of a (possibly large) log file.
fn tail(path: &Path, lines: usize) -> String {
    let Ok(mut f) = std::fs::File::open(path) else {
        return format!("({} not readable)", path.display());
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(256 * 1024)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn report(log: &Path, stderr: &Path) -> String {
    format!(
        "\n--- realhost log {} (last {TAIL_LINES} lines) ---\n{}\n--- realhost stderr {} ---\n{}\n---",
        log.display(),
        tail(log, TAIL_LINES),
        stderr.display(),
        tail(stderr, 20)
    )
}

/// Removes the directories of earlier test processes that are gone.
fn remove_stale_dirs(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(pid) = name.strip_prefix("realhost-")
            && pid.parse::<u32>().is_ok()
            && !Path::new("/proc").join(pid).exists()
        {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn start_shared() -> Result<Shared, String> {
    start_process(
        &format!("realhost-{}", std::process::id()),
        NODES,
        &["--node-port-range", SHARED_NODE_PORTS],
    )
}

/// The shared host's NodePorts; each private host takes a slot of [`PRIVATE_SLOTS`], with
/// NodePorts and a ClusterIP range of its own, so no two hosts listen on the same loopback
/// address and port.
const SHARED_NODE_PORTS: &str = "30000-31499";
/// (NodePort range, ClusterIP range) of each private host running at the same time.
const PRIVATE_SLOTS: [(&str, &str); 3] = [
    ("31500-31899", "127.44.0.0/18"),
    ("31900-32299", "127.44.64.0/18"),
    ("32300-32767", "127.44.128.0/18"),
];

/// Starts realhost with `nodes` nodes; `dir_name` under the test target's temp directory.
fn start_process(dir_name: &str, nodes: usize, extra: &[&str]) -> Result<Shared, String> {
    let binary = Path::new(BINARY);
    if !binary.exists() {
        return Err(format!(
            "{BINARY} is missing: build it with `bash tests/realhost/build.sh` (CI does)"
        ));
    }
    let parent = Path::new(env!("CARGO_TARGET_TMPDIR"));
    remove_stale_dirs(parent);
    let dir = parent.join(dir_name);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let kubeconfig = dir.join("admin.kubeconfig");
    let ingress = dir.join("ingress.addr");
    let log = dir.join("components.log");
    let stderr = dir.join("stderr.log");
    let stderr_file =
        std::fs::File::create(&stderr).map_err(|e| format!("{}: {e}", stderr.display()))?;
    let mut child = Command::new(binary)
        .arg("--kubeconfig-out")
        .arg(&kubeconfig)
        .arg("--nodes")
        .arg(nodes.to_string())
        .args(extra)
        // Simulated nodes: large enough that the tests' workspaces (each with its servers'
        // and node agents' reserved resources) never wait for room.
        .args(["--node-cpu", "32", "--node-memory", "128Gi"])
        .args(["--listen", "127.0.0.1:0"])
        .arg("--pod-toleration-restriction")
        .arg("--ingress-addr-out")
        .arg(&ingress)
        .arg("--exit-with-stdin")
        .arg("--log-file")
        .arg(&log)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr_file)
        .spawn()
        .map_err(|e| format!("{BINARY} does not start: {e}"))?;
    let (stdin, stdout) = match (child.stdin.take(), child.stdout.take()) {
        (Some(i), Some(o)) => (i, o),
        _ => {
            let _ = child.kill();
            return Err("realhost's stdin/stdout were not piped".into());
        }
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let _ = tx.send(lines.next());
        // Keep draining, so realhost never blocks on a full pipe.
        for _ in lines {}
    });
    let started = Instant::now();
    let why = match rx.recv_timeout(START_TIMEOUT) {
        Ok(Some(Ok(line))) if line.trim().starts_with("https://") && kubeconfig.exists() => {
            eprintln!(
                "realhost up at {} in {:.1} s (logs: {})",
                line.trim(),
                started.elapsed().as_secs_f64(),
                dir.display()
            );
            return Ok(Shared {
                kubeconfig,
                ingress,
                log,
                stderr,
                stdin: Some(stdin),
                child,
            });
        }
        Ok(Some(Ok(line))) => format!("it printed {line:?} instead of its URL"),
        Ok(_) => format!(
            "it exited ({:?}) before printing its URL",
            child.try_wait().ok().flatten()
        ),
        Err(_) => format!("no URL within {} s", START_TIMEOUT.as_secs()),
    };
    let _ = child.kill();
    let _ = child.wait();
    Err(format!(
        "realhost did not start: {why}{}",
        report(&log, &stderr)
    ))
}

fn shared() -> Result<&'static Shared, &'static String> {
    SHARED.get_or_init(start_shared).as_ref()
}

/// The API path of a resource: `group` "" is the core group; versions are the ones kaas uses.
fn api_path(group: &str, resource: &str, ns: Option<&str>, name: Option<&str>) -> String {
    let version = match group {
        "" => "v1",
        "k3k.io" => "v1beta1",
        "traefik.io" => "v1alpha1",
        "apps"
        | "rbac.authorization.k8s.io"
        | "policy"
        | "storage.k8s.io"
        | "coordination.k8s.io"
        | "networking.k8s.io"
        | "apiextensions.k8s.io" => "v1",
        other => panic!("realhost test helper: no version known for API group {other:?}"),
    };
    let mut p = if group.is_empty() {
        "/api/v1".to_string()
    } else {
        format!("/apis/{group}/{version}")
    };
    if let Some(ns) = ns {
        p.push_str(&format!("/namespaces/{ns}"));
    }
    p.push('/');
    p.push_str(resource);
    if let Some(name) = name {
        p.push('/');
        p.push_str(name);
    }
    p
}

/// An API error as the server put it.
pub fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("HTTP {} ({}): {}", s.code, s.reason, s.message),
        other => other.to_string(),
    }
}

/// This test's connection to the shared realhost. When the test fails (the owner is dropped
/// while panicking), the tail of realhost's log is printed with the failure.
pub struct RealHost {
    pub client: kube::Client,
    /// The admin (system:masters) kubeconfig realhost wrote.
    pub kubeconfig: PathBuf,
    /// `127.0.0.1:<port>` of the Traefik stand-in's TLS entry point.
    pub ingress: String,
    log: PathBuf,
    stderr: PathBuf,
}

impl Drop for RealHost {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", report(&self.log, &self.stderr));
        }
    }
}

/// A realhost of a test's own (another node count than the shared one's), stopped when
/// dropped. Up to three run at once, each in a slot of [`PRIVATE_SLOTS`].
pub struct PrivateRealHost;

static PRIVATE_SLOT_LOCKS: [tokio::sync::Mutex<()>; PRIVATE_SLOTS.len()] =
    [const { tokio::sync::Mutex::const_new(()) }; PRIVATE_SLOTS.len()];

/// A free slot, held until the guard is dropped.
async fn private_slot() -> (usize, tokio::sync::MutexGuard<'static, ()>) {
    loop {
        for (i, lock) in PRIVATE_SLOT_LOCKS.iter().enumerate() {
            if let Ok(guard) = lock.try_lock() {
                return (i, guard);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

impl PrivateRealHost {
    /// Starts a realhost with `nodes` nodes and runs `f` against it.
    pub async fn with<T>(nodes: usize, f: impl AsyncFnOnce(RealHost) -> T) -> T {
        PrivateRealHost::with_flags(nodes, &[], f).await
    }

    /// Like [`PrivateRealHost::with`], with more realhost flags.
    pub async fn with_flags<T>(
        nodes: usize,
        flags: &'static [&'static str],
        f: impl AsyncFnOnce(RealHost) -> T,
    ) -> T {
        let (slot, _held) = private_slot().await;
        let (node_ports, service_cidr) = PRIVATE_SLOTS[slot];
        let dir = format!("realhost-{}-private-{slot}-{nodes}", std::process::id());
        let process = tokio::task::spawn_blocking(move || {
            let mut args = vec![
                "--node-port-range",
                node_ports,
                "--service-cidr",
                service_cidr,
                "--node-cpu",
                "32",
                "--node-memory",
                "128Gi",
            ];
            args.extend_from_slice(flags);
            start_process(&dir, nodes, &args)
        })
        .await
        .expect("realhost start-up thread")
        .unwrap_or_else(|e| panic!("{e}"));
        let host = RealHost::of(&process).await;
        let out = f(host).await;
        drop(process);
        out
    }
}

impl RealHost {
    /// Connects to the shared realhost, starting it on first use.
    pub async fn connect() -> RealHost {
        let shared = match tokio::task::spawn_blocking(shared)
            .await
            .expect("realhost start-up thread")
        {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        RealHost::of(shared).await
    }

    async fn of(shared: &Shared) -> RealHost {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let kc = kube::config::Kubeconfig::read_from(&shared.kubeconfig)
            .expect("realhost's admin kubeconfig reads");
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .expect("realhost's admin kubeconfig is usable");
        RealHost {
            client: kube::Client::try_from(config).expect("client for realhost"),
            kubeconfig: shared.kubeconfig.clone(),
            ingress: std::fs::read_to_string(&shared.ingress)
                .map(|a| a.trim().to_string())
                .unwrap_or_default(),
            log: shared.log.clone(),
            stderr: shared.stderr.clone(),
        }
    }

    async fn send(
        &self,
        method: &str,
        path: String,
        content_type: &str,
        body: Option<&Value>,
    ) -> Result<Value, kube::Error> {
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::CONTENT_TYPE, content_type)
            .body(body.map(|b| b.to_string().into_bytes()).unwrap_or_default())
            .expect("request builds");
        self.client.request::<Value>(req).await
    }

    pub async fn get(
        &self,
        group: &str,
        resource: &str,
        ns: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let path = api_path(group, resource, ns, Some(name));
        match self
            .send("GET", path.clone(), "application/json", None)
            .await
        {
            Ok(v) => Some(v),
            Err(kube::Error::Api(s)) if s.code == 404 => None,
            Err(e) => panic!("GET {path}: {}", describe(&e)),
        }
    }

    pub async fn list(&self, group: &str, resource: &str, ns: Option<&str>) -> Vec<Value> {
        let path = api_path(group, resource, ns, None);
        match self
            .send("GET", path.clone(), "application/json", None)
            .await
        {
            Ok(v) => v["items"].as_array().cloned().unwrap_or_default(),
            Err(e) => panic!("GET {path}: {}", describe(&e)),
        }
    }

    pub async fn create(
        &self,
        group: &str,
        resource: &str,
        ns: Option<&str>,
        object: &Value,
    ) -> Result<Value, kube::Error> {
        let path = api_path(group, resource, ns, None);
        self.send("POST", path, "application/json", Some(object))
            .await
    }

    /// A JSON merge patch (what `kubectl patch --type merge` sends).
    pub async fn merge_patch(
        &self,
        group: &str,
        resource: &str,
        ns: Option<&str>,
        name: &str,
        patch: &Value,
    ) -> Result<Value, kube::Error> {
        let path = api_path(group, resource, ns, Some(name));
        self.send("PATCH", path, "application/merge-patch+json", Some(patch))
            .await
    }

    /// Deletes an object; absent is fine.
    pub async fn delete(&self, group: &str, resource: &str, ns: Option<&str>, name: &str) {
        let path = api_path(group, resource, ns, Some(name));
        match self
            .send("DELETE", path.clone(), "application/json", None)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => panic!("DELETE {path}: {}", describe(&e)),
        }
    }

    /// This host as an installed kaas sees it: packaging/k3s/kaas-rbac.yaml is applied (with
    /// the administrator's credentials, as K3s's auto-deploy would; once per host) and the
    /// kubeconfig kaas is given authenticates as its ServiceAccount, with a token the real
    /// TokenRequest API issues. So whatever kaas does that the packaged ClusterRole does not
    /// grant is refused by the real RBAC authorizer, in every realhost test. The client tests
    /// inspect and arrange the host with stays the administrator's. Returns that kubeconfig.
    pub fn packaged_service_account_kubeconfig(&self) -> PathBuf {
        // By the admin kubeconfig's text: private hosts reuse their directories, not their
        // servers and CAs.
        static APPLIED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
        let admin = self.kubeconfig.clone();
        let kubectl = |args: &[&str]| {
            let out = Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(&admin)
                .args(args)
                .output()
                .expect("kubectl runs");
            assert!(
                out.status.success(),
                "kubectl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        {
            // Concurrent applies of the same new objects would race to create them.
            let host = std::fs::read_to_string(&admin).expect("admin kubeconfig");
            let mut applied = APPLIED.lock().unwrap_or_else(|e| e.into_inner());
            if !applied.contains(&host) {
                let rbac = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/k3s/kaas-rbac.yaml");
                kubectl(&["apply", "-f", rbac]);
                applied.push(host);
            }
        }
        let token = kubectl(&[
            "create",
            "token",
            "kaas",
            "-n",
            "kube-system",
            "--duration",
            "6h",
        ]);
        let mut config: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(&admin).expect("admin kubeconfig"))
                .expect("admin kubeconfig is YAML");
        for user in config["users"].as_sequence_mut().expect("users") {
            user["user"] =
                serde_yaml::to_value(serde_json::json!({ "token": token })).expect("token as YAML");
        }
        static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = admin.with_file_name(format!("kaas-sa-{n}.kubeconfig"));
        std::fs::write(&path, serde_yaml::to_string(&config).expect("YAML"))
            .expect("kubeconfig written");
        path
    }

    /// Where to look when something went wrong.
    pub fn diagnostics(&self) -> String {
        format!(" (realhost log: {})", self.log.display())
    }
}

/// A kaas whose reconciler drives the shared realhost: the realhost twin of
/// [`crate::support::HostedApp`].
pub struct RealHostedApp {
    pub app: TestApp,
    pub host: RealHost,
    /// What kaas is given: the packaged ServiceAccount's kubeconfig (see
    /// [`RealHost::packaged_service_account_kubeconfig`]).
    pub kaas_kubeconfig: PathBuf,
    pub reconciler: ReconcilerHandle,
}

impl RealHostedApp {
    /// The reconciler settings of a kaas on realhost (before any test's tweak).
    pub fn settings() -> ReconcilerSettings {
        let mut settings = ReconcilerSettings {
            // A real API server per Cluster: poll less eagerly than on fakehost.
            poll_while_busy: Duration::from_millis(500),
            max_backoff: Duration::from_secs(2),
            stuck_after: Duration::from_secs(30),
            ..reconciler_settings()
        };
        // realhost's Service network is on loopback, and its API server listens on
        // 127.0.0.1, which is no node's address: deny it as an operator would a VIP.
        settings.host.isolation.service_cidrs = vec!["127.43.0.0/16".into()];
        settings.host.isolation.denied_egress = vec!["127.0.0.1/32".into()];
        settings
    }

    pub async fn start() -> RealHostedApp {
        RealHostedApp::on(RealHost::connect().await)
    }

    /// A kaas driving `host` (a [`PrivateRealHost`]'s, say).
    pub fn on(host: RealHost) -> RealHostedApp {
        RealHostedApp::on_with(host, |_| {})
    }

    /// Like [`RealHostedApp::on`], with `tweak` applied to the reconciler's settings.
    pub fn on_with(host: RealHost, tweak: impl FnOnce(&mut ReconcilerSettings)) -> RealHostedApp {
        let mut app = TestApp::new();
        let mut settings = RealHostedApp::settings();
        tweak(&mut settings);
        let kaas_kubeconfig = host.packaged_service_account_kubeconfig();
        let reconciler = attach_host(&mut app, kaas_kubeconfig.clone(), settings);
        RealHostedApp {
            app,
            host,
            kaas_kubeconfig,
            reconciler,
        }
    }
}

impl Drop for RealHostedApp {
    fn drop(&mut self) {
        self.reconciler.stop();
    }
}

impl TestHost for RealHostedApp {
    const NAME: &'static str = "realhost";
    const PATIENCE: Duration = Duration::from_secs(120);

    fn app(&self) -> &TestApp {
        &self.app
    }
    fn reconciler(&self) -> &ReconcilerHandle {
        &self.reconciler
    }
    fn diagnostics(&self) -> String {
        self.host.diagnostics()
    }
    async fn get(
        &self,
        group: &str,
        resource: &str,
        ns: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        self.host.get(group, resource, ns, name).await
    }
    async fn list(&self, group: &str, resource: &str, ns: Option<&str>) -> Vec<Value> {
        self.host.list(group, resource, ns).await
    }
    async fn create(
        &self,
        group: &str,
        resource: &str,
        ns: Option<&str>,
        object: Value,
    ) -> Result<Value, String> {
        self.host
            .create(group, resource, ns, &object)
            .await
            .map_err(|e| describe(&e))
    }
    async fn delete(&self, group: &str, resource: &str, ns: Option<&str>, name: &str) {
        self.host.delete(group, resource, ns, name).await;
    }
}

/// A short random suffix for names on the shared host.
pub fn unique() -> String {
    let id = ulid::Ulid::generate().to_string().to_lowercase();
    id[id.len() - 10..].to_string()
}
