//! The API fuzzed against its own OpenAPI document: the real `kaas` binary with fakehost
//! behind it, a platform administrator and an ordinary organization owner with real
//! organizations, workspaces and projects, and schemathesis (PyPI; `.ci/run` installs it
//! into `target/schemathesis`) generating requests from `/api/v1/openapi.json` as each of
//! them. It fails on any 5xx, any status or content type the document does not list, any
//! response that does not match its schema, and any schema-violating request accepted.
//!
//! Not checked: `positive_data_acceptance` (every schema-valid request accepted). Some
//! refusals are about state, not shape, and no schema can say them: a plan that does not
//! exist, a wrong current password, a name already taken.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_kaas");
const PASSWORD: &str = "a long enough passphrase";

/// The schemathesis command: `SCHEMATHESIS_COMMAND`, else the virtualenv `.ci/run` makes.
fn schemathesis() -> PathBuf {
    if let Some(p) = std::env::var_os("SCHEMATHESIS_COMMAND") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/schemathesis/bin/schemathesis");
    assert!(
        venv.exists(),
        "schemathesis is not installed: run `bash .ci/run`, or `python3 -m venv target/schemathesis && \
         target/schemathesis/bin/pip install schemathesis`, or set SCHEMATHESIS_COMMAND"
    );
    venv
}

/// `kaas serve` on a free port against the fake host; killed on drop.
struct Kaas {
    child: Child,
    base: String,
    setup_token: String,
}

impl Kaas {
    fn start(data: &Path, kubeconfig: &Path, log: &Path) -> Kaas {
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .env_remove("KAAS_CONFIG")
            .env_remove("KUBECONFIG")
            .env("KAAS_HOST_KUBECONFIG", kubeconfig)
            .env("KAAS_HOST_EXTERNAL_ADDRESSES", "127.0.0.1")
            .env("KAAS_BACKUP_INTERVAL", "0s")
            .env("KAAS_LOG_FORMAT", "human")
            .env("KAAS_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).expect("log file"))
            .spawn()
            .expect("kaas starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let (mut base, mut token) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(20);
        while token.is_none() && Instant::now() < deadline {
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
                if let Some(a) = line.strip_prefix("kaas listening on ") {
                    base = Some(a.trim().to_string());
                }
                token = line.split("token=").nth(1).map(|t| t.trim().to_string());
            }
        }
        Kaas {
            child,
            base: base.expect("kaas printed its address"),
            setup_token: token.expect("a first start prints the setup link"),
        }
    }

    fn api(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }
}

impl Drop for Kaas {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn call(c: &reqwest::Client, method: &str, url: String, token: &str, body: Value) -> Value {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let res = c
        .request(method, &url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{url}: {status} {body}");
    body
}

/// Signs in and makes a read-write API token; its secret.
async fn token_for(kaas: &Kaas, email: &str) -> String {
    let c = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .expect("client");
    let login: Value = c
        .post(kaas.api("/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("login body");
    let csrf = login["csrf_token"].as_str().expect("csrf token");
    let tok: Value = c
        .post(kaas.api("/me/tokens"))
        .header("x-csrf-token", csrf)
        .json(&json!({"name": "schemathesis", "scope": "read-write", "current_password": PASSWORD}))
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("token body");
    tok["secret"].as_str().expect("secret").to_string()
}

/// An organization with a workspace and a project, made by `token`; their ids.
async fn tenant(kaas: &Kaas, token: &str, name: &str) -> (String, String, String) {
    let c = reqwest::Client::new();
    let org = call(&c, "POST", kaas.api("/orgs"), token, json!({"name": name})).await;
    let org = org["id"].as_str().expect("org id").to_string();
    let ws = call(
        &c,
        "POST",
        kaas.api(&format!("/orgs/{org}/workspaces")),
        token,
        json!({"name": "prod", "plan": "standard"}),
    )
    .await;
    let ws = ws["id"].as_str().expect("workspace id").to_string();
    let p = call(
        &c,
        "POST",
        kaas.api(&format!("/workspaces/{ws}/projects")),
        token,
        json!({"name": "web"}),
    )
    .await;
    let p = p["id"].as_str().expect("project id").to_string();
    (org, ws, p)
}

/// Runs schemathesis as `who` with `token`; panics with the end of its report on failure.
fn fuzz(tool: &Path, kaas: &Kaas, who: &str, token: &str, config: &Path, out: &Path) {
    let log = out.join(format!("schemathesis-{who}.log"));
    let started = Instant::now();
    let status = Command::new(tool)
        // Its cache (.schemathesis/) goes beside the reports, not into the source tree.
        .current_dir(out)
        .arg("--config-file")
        .arg(config)
        .arg("run")
        .arg(kaas.api("/openapi.json"))
        .args(["--url", &kaas.api("")])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args([
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
        ])
        .args(["--phases", "examples,coverage,fuzzing"])
        // One worker: with two, hypothesis parses lambda sources with `ast` from two threads at
        // once, and CPython 3.11's AST constructor keeps its recursion depth per interpreter,
        // so the threads race and raise "AST constructor recursion depth mismatch" at random
        // (python/cpython#106905); CI failed on it once.
        .args(["--max-examples", "25", "--workers", "1", "--seed", "16"])
        .args(["--request-timeout", "20", "--suppress-health-check", "all"])
        .args(["--output-truncate", "false"])
        .env("NO_COLOR", "1")
        .stdout(std::fs::File::create(&log).expect("log"))
        .stderr(Stdio::inherit())
        .status()
        .expect("schemathesis runs");
    let report = std::fs::read_to_string(&log).unwrap_or_default();
    println!(
        "schemathesis as {who}: {status} in {:.0?}; report {}",
        started.elapsed(),
        log.display()
    );
    assert!(
        status.success(),
        "schemathesis as {who} found problems ({}):\n{report}",
        log.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_as_its_openapi_document_says() {
    let tool = schemathesis();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("temp dir");
    let host = fakehost::FakeHost::start(fakehost::FakeHostOptions {
        manifests: vec![PathBuf::from(fakehost::K3K_CRDS_DIR)],
        pod_toleration_restriction: true,
        ..Default::default()
    })
    .await
    .expect("fakehost starts");
    let _k3k = fakehost::k3k::K3kController::for_host(
        &host,
        fakehost::k3k::K3kOptions {
            provision_delay: Duration::from_millis(100),
            ..Default::default()
        },
    );
    let kubeconfig = dir.path().join("host.kubeconfig");
    host.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    // Reports beside the build output, kept after the run for reading.
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("schemathesis");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).expect("report dir");
    let kaas = Kaas::start(&dir.path().join("data"), &kubeconfig, &out.join("kaas.log"));

    // The platform administrator, then an ordinary user who owns two organizations: one
    // whose resources every operation is pointed at, one that the DELETE operations get
    // (so a successful delete does not leave the rest of the run with only 404s).
    let c = reqwest::Client::new();
    let res = c
        .post(kaas.api("/setup"))
        .json(&json!({"token": kaas.setup_token, "email": "root@example.com", "name": "Root", "password": PASSWORD}))
        .send()
        .await
        .expect("setup");
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    let admin = token_for(&kaas, "root@example.com").await;
    let member = call(
        &c,
        "POST",
        kaas.api("/users"),
        &admin,
        json!({"email": "ada@example.com", "name": "Ada", "password": PASSWORD}),
    )
    .await;
    let member_id = member["id"].as_str().expect("user id").to_string();
    let member = token_for(&kaas, "ada@example.com").await;
    let (org, ws, project) = tenant(&kaas, &member, "acme").await;
    let (org_d, ws_d, project_d) = tenant(&kaas, &member, "doomed").await;

    let config = out.join("schemathesis.toml");
    std::fs::write(
        &config,
        format!(
            r#"[parameters]
org = "{org}"
ws = "{ws}"
project = "{project}"
user = "{member_id}"

[[operations]]
include-method = "DELETE"
parameters = {{ org = "{org_d}", ws = "{ws_d}", project = "{project_d}", user = "{member_id}" }}
"#
        ),
    )
    .expect("config");

    // The member first: the administrator's run may disable them or reset their password.
    // Blocking here keeps fakehost serving on the runtime's other worker.
    tokio::task::block_in_place(|| {
        fuzz(&tool, &kaas, "member", &member, &config, &out);
        fuzz(&tool, &kaas, "admin", &admin, &config, &out);
    });
}
