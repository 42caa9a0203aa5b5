//! What the browser talks to: fakehost (fake K3s API + simulated K3K controller, in this
//! process) and the real `kaas` binary pointed at it through a kubeconfig, exactly as on a
//! box; plus the screenshot directory and the console-error check shared by every step.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::webdriver::Session;

const BIN: &str = env!("CARGO_BIN_EXE_kaas");

/// The fake host and its K3K controller; both stop when dropped with the runtime.
pub struct Host {
    pub host: fakehost::FakeHost,
    pub k3k: fakehost::k3k::K3kController,
    pub kubeconfig: PathBuf,
}

impl Host {
    pub async fn start(dir: &Path) -> Host {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let host = fakehost::FakeHost::start(fakehost::FakeHostOptions {
            manifests: vec![PathBuf::from(fakehost::K3K_CRDS_DIR)],
            // As the installer sets up a real box (else every admin page warns about it).
            pod_toleration_restriction: true,
            ..Default::default()
        })
        .await
        .expect("fakehost starts");
        // Slow enough that the page shows Provisioning before Ready, so "it turns Ready
        // without a reload" is something the test really watches happen.
        let k3k = fakehost::k3k::K3kController::for_host(
            &host,
            fakehost::k3k::K3kOptions {
                provision_delay: Duration::from_millis(2500),
                ..Default::default()
            },
        );
        let kubeconfig = dir.join("host.kubeconfig");
        host.write_kubeconfig(&kubeconfig).expect("host kubeconfig");
        Host {
            host,
            k3k,
            kubeconfig,
        }
    }

    /// Every NodePort the host's Services expose (the virtual clusters' API servers).
    pub fn node_ports(&self) -> Vec<u64> {
        let list = self
            .host
            .engine()
            .list(
                &fakehost::ResourceRef::core("services"),
                None,
                &Default::default(),
            )
            .expect("services");
        list.items
            .iter()
            .flat_map(|s| {
                s["spec"]["ports"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|p| p["nodePort"].as_u64())
            })
            .collect()
    }
}

/// `kaas serve` on a fixed free port (so the links it prints and shows are the real ones),
/// its log in `log`; killed on drop.
pub struct Kaas {
    child: Child,
    pub base: String,
    pub setup_link: String,
    pub log: PathBuf,
}

/// The OpenID Connect provider of tests/oidc (node-oidc-provider; `npm ci` there first),
/// accepting `redirect`; killed on drop.
pub struct Idp {
    child: Child,
    pub issuer: String,
}

impl Idp {
    pub fn start(redirect: &str) -> Idp {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc");
        assert!(
            dir.join("node_modules/oidc-provider").is_dir(),
            "the test provider is not installed: run `npm ci` in tests/oidc (.ci/run does)"
        );
        let mut child = Command::new("node")
            .arg("provider.js")
            .current_dir(&dir)
            .env("REDIRECT_URIS", redirect)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node runs (install nodejs)");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        // Owned by the guard at once: a provider that does not start is killed on the panic.
        let mut idp = Idp {
            child,
            issuer: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(100))
                && let Some(port) = line.strip_prefix("listening on ")
            {
                idp.issuer = format!("http://127.0.0.1:{}", port.trim());
                return idp;
            }
        }
        panic!("the OpenID Connect provider did not start");
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Kaas {
    /// On `port`, with the settings of `config` (a file) besides the environment's.
    pub fn start(
        port: u16,
        data: &Path,
        host_kubeconfig: &Path,
        log: PathBuf,
        config: &Path,
    ) -> Kaas {
        let mut child = Command::new(BIN)
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(data)
            .env("KAAS_CONFIG", config)
            .env_remove("KUBECONFIG")
            .env("KAAS_HOST_KUBECONFIG", host_kubeconfig)
            .env("KAAS_HOST_EXTERNAL_ADDRESSES", "127.0.0.1")
            .env("KAAS_BACKUP_INTERVAL", "0s")
            // A fast meter, so the billing page has something to show within the test.
            .env("KAAS_BILLING_METER_INTERVAL", "1s")
            .env("KAAS_LOG_FORMAT", "human")
            .env("KAAS_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("kaas log file"))
            .spawn()
            .expect("kaas starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let (mut base, mut setup_link) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(20);
        while setup_link.is_none() && Instant::now() < deadline {
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
                if let Some(a) = line.strip_prefix("kaas listening on ") {
                    base = Some(a.trim().to_string());
                }
                setup_link = line
                    .strip_prefix("First run: create the platform administrator at ")
                    .map(|l| l.trim().to_string());
            }
        }
        Kaas {
            child,
            base: base.unwrap_or_else(|| panic!("kaas never said where it listens; see {log:?}")),
            setup_link: setup_link.expect("a first start prints the setup link"),
            log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Kaas {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Numbered screenshots in `target/browser-shots/` (deterministic, emptied on each run).
pub struct Shots {
    pub dir: PathBuf,
    n: AtomicU32,
}

impl Shots {
    pub fn new() -> Shots {
        // CARGO_TARGET_TMPDIR is <target>/tmp: the shots sit beside it, under target/.
        let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("target dir")
            .to_path_buf();
        let dir = target.join("browser-shots");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("shots dir");
        println!("browser screenshots: {}", dir.display());
        Shots {
            dir,
            n: AtomicU32::new(1),
        }
    }

    pub async fn take(&self, s: &Session, name: &str) {
        let n = self.n.fetch_add(1, Ordering::SeqCst);
        s.screenshot(&self.dir.join(format!("{n:02}-{name}.png")))
            .await;
    }
}

/// Fails the test on any SEVERE browser log entry (a failed request, a CSP violation, a
/// script error) since the last check, except those `expected`: substrings of entries the
/// step causes on purpose (a form refused with 422, a wrong password's 401). Each expected
/// entry must show up, which proves on every run that the log is really being read.
pub async fn assert_clean(s: &Session, step: &str, expected: &[&str]) {
    let severe: Vec<String> = s
        .browser_log()
        .await
        .into_iter()
        .filter(|e| e.level == "SEVERE")
        .map(|e| e.message)
        .collect();
    let bad: Vec<&String> = severe
        .iter()
        .filter(|m| !expected.iter().any(|x| m.contains(x)))
        .collect();
    assert!(
        bad.is_empty(),
        "browser console errors during {step:?}:\n  {}",
        bad.iter()
            .map(|m| m.as_str())
            .collect::<Vec<_>>()
            .join("\n  ")
    );
    for x in expected {
        assert!(
            severe.iter().any(|m| m.contains(x)),
            "during {step:?} the browser log should show {x:?}, but it has {severe:?}"
        );
    }
}
