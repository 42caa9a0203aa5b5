//! One table of bearer tokens, run against realhost's virtual clusters (the real
//! kube-apiserver's JWT authenticator, the referee) and against fakehost's (`vcluster::jwt`),
//! both configured from the same Cluster spec kaas writes (`serverArgs` + `secretMounts`, an
//! `AuthenticationConfiguration`), with kaas serving its issuer over HTTPS on loopback. Both
//! must reach the outcome in [`CASES`] for every token: fakehost may never accept what the
//! real one refuses, nor refuse what it accepts.
//!
//! What the real authenticator (Kubernetes 1.35 on realhost) showed:
//! - `exp` has no leeway: a token one minute past it is refused;
//! - `nbf` has five minutes' leeway (go-oidc's): a token valid from one minute ahead is
//!   accepted, one valid from ten minutes ahead is refused;
//! - a token without the groups claim is refused by the claim validation rule kaas adds
//!   (`has(claims.groups)`); without it the token would be read as "no groups";
//! - with the username taken from `email`, `email_verified: false` is refused;
//! - a token whose `kid` is not in the JWKS it fetched makes it fetch the JWKS again: a token
//!   of a key published after the server started is accepted at once;
//! - a removed member's token still authenticates until it expires, and RBAC then denies
//!   (403, not 401) once kaas has removed the member's bindings in the cluster.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use kaas::domain::{Membership, OrgId, OrgRole};
use kaas::host::oidc::ClusterIssuer;
use kaas::ops::Settings;
use kaas::ops::issuer::{IssuerSettings, KEK_LEN};
use kaas::reconcile::ReconcilerSettings;
use kaas::store::records;
use serde_json::{Value, json};

use crate::kubectl_tokens::serve_https;
use crate::realhost::{RealHost, RealHostedApp};
use crate::support::*;

/// What a virtual cluster made of a request with a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Authenticated and allowed (`kubectl get ns` works).
    Allowed,
    /// Authenticated, denied by RBAC (403).
    Forbidden,
    /// Not authenticated (401).
    Refused,
}
use Outcome::*;

/// Every case, with the real authenticator's verdict.
const CASES: &[(&str, Outcome)] = &[
    ("valid", Allowed),
    ("expired a minute ago", Refused),
    ("valid from in one minute (nbf leeway)", Allowed),
    ("valid from in ten minutes", Refused),
    ("another workspace's audience", Refused),
    ("another issuer", Refused),
    ("signed by a stranger key under kaas's kid", Refused),
    ("tampered payload", Refused),
    ("unsigned (alg none)", Refused),
    ("no groups claim", Refused),
    ("no email claim", Refused),
    ("email_verified false", Refused),
    ("a key published after the server started", Allowed),
    ("a removed member's unexpired token", Forbidden),
];

/// Where kaas serves its issuer: `https://127.0.0.1:<port>` with a self-signed certificate.
struct Issuing {
    url: String,
    cert_pem: String,
    key_pem: String,
    listener: std::net::TcpListener,
    ticking: tokio::task::JoinHandle<()>,
}

/// kaas with its issuer (its clock the wall clock), and where it will serve it.
fn issuing() -> (TestApp, Issuing) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let app = TestApp::with_issuer(
        Settings::default(),
        IssuerSettings {
            url: url.clone(),
            token_lifetime: Duration::from_secs(600),
            key_rotation: Duration::from_secs(1),
            kek: [7; KEK_LEN],
        },
    );
    // The authenticators read the wall clock.
    let clock = app.clock.clone();
    clock.set(Timestamp::now());
    let ticking = tokio::spawn(async move {
        loop {
            clock.set(Timestamp::now());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let issuing = Issuing {
        url,
        cert_pem: cert.cert.pem(),
        key_pem: cert.signing_key.serialize_pem(),
        listener,
        ticking,
    };
    (app, issuing)
}

impl Issuing {
    fn settings(&self, mut settings: ReconcilerSettings) -> ReconcilerSettings {
        settings.host.issuer =
            Some(ClusterIssuer::usable(&self.url, Some(self.cert_pem.clone())).unwrap());
        settings
    }

    /// Serves the (host-attached) app's router over HTTPS.
    fn serve(self, app: &TestApp) -> (String, tokio::task::JoinHandle<()>) {
        serve_https(
            app.router.clone(),
            self.listener,
            &self.cert_pem,
            &self.key_pem,
        );
        (self.url, self.ticking)
    }
}

/// `jwt` with its claims replaced (the signature kept).
fn with_claims(jwt: &str, claims: &Value) -> String {
    let parts: Vec<&str> = jwt.split('.').collect();
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap());
    format!("{}.{body}.{}", parts[0], parts[2])
}

fn claims(jwt: &str) -> Value {
    let body = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).unwrap()).unwrap()
}

/// The outcome of `kubectl get ns` with `token` against the cluster of `exec_yaml`.
async fn outcome(dir: &std::path::Path, exec_yaml: &str, token: &str, name: &str) -> Outcome {
    let mut v: Value = serde_yaml::from_str(exec_yaml).unwrap();
    v["users"][0]["user"] = json!({ "token": token });
    let path = dir.join(format!(
        "{}.kubeconfig",
        name.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
    ));
    std::fs::write(&path, serde_yaml::to_string(&v).unwrap()).unwrap();
    let out = kubectl_output(&path, &["--request-timeout=20s", "get", "ns"]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        Allowed
    } else if err.contains("Unauthorized") || err.contains("must be logged in to the server") {
        Refused
    } else if err.contains("Forbidden") || err.contains("forbidden") {
        Forbidden
    } else {
        panic!("{name}: neither allowed, forbidden nor refused: {err}")
    }
}

/// Runs [`CASES`] on `h`'s host and returns the outcomes, in order.
async fn run_table<H: TestHost>(h: &H, url: &str) -> Vec<(&'static str, Outcome)> {
    let app = h.app();
    let dir = tempfile::tempdir().unwrap();
    let (_, ada_token) = app.user("ada@example.com", false).await;
    let (mem_id, mem_token) = app.user("mem@example.com", false).await;
    let ada = bearer(&ada_token);
    let org = app.create_org(&ada, "acme").await;
    {
        let tx = app.ops().store.write().unwrap();
        let m = Membership {
            org_id: org.parse::<OrgId>().unwrap(),
            user_id: mem_id,
            role: OrgRole::Member,
            joined_at: app.ops().now(),
        };
        records::put_member(&tx, &m).unwrap();
        tx.commit().unwrap();
    }
    let a = app.create_workspace(&ada, &org, "alpha", "starter").await;
    let b = app.create_workspace(&ada, &org, "beta", "starter").await;
    let r = app
        .call(
            "PUT",
            &format!("/workspaces/{a}/members/{mem_id}"),
            &ada,
            Some(json!({"role": "workspace-admin"})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.body);
    for ws in [&a, &b] {
        h.wait_ws(&ada, ws, "Ready", |w| {
            w.is_some_and(|w| w["state"] == "Ready")
        })
        .await;
    }
    let exec_yaml = async |ws: &str| {
        let r = app
            .call(
                "POST",
                &format!("/workspaces/{ws}/kubeconfig"),
                &ada,
                Some(json!({})),
            )
            .await;
        assert_eq!(r.status.as_u16(), 200, "{:?}", r.body);
        r.body["kubeconfig"].as_str().unwrap().to_string()
    };
    let (at_a, at_b) = (exec_yaml(&a).await, exec_yaml(&b).await);
    let mint = async || {
        let r = app
            .call(
                "POST",
                &format!("/workspaces/{a}/token"),
                &bearer(&mem_token),
                None,
            )
            .await;
        assert_eq!(r.status.as_u16(), 200, "{:?}", r.body);
        r.body["token"].as_str().unwrap().to_string()
    };
    let token = mint().await;
    let good = claims(&token);
    let issuer = app.ops().issuer().unwrap().clone();
    let sign = |c: &Value| issuer.sign(c).unwrap().0;

    // The new API server fetches the issuer's discovery document first; until then (and
    // until kaas's RBAC reaches the cluster) the valid token may not work yet.
    let deadline = Instant::now() + H::PATIENCE;
    while outcome(dir.path(), &at_a, &token, "warm-up").await != Allowed {
        assert!(
            Instant::now() < deadline,
            "the valid token never worked on {}{}",
            H::NAME,
            h.diagnostics()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let now = Timestamp::now().as_second();
    let changed = |edit: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut c = good.clone();
        edit(c.as_object_mut().unwrap());
        c
    };
    let stranger = {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &rng,
        )
        .unwrap();
        jsonwebtoken::encode(
            &jsonwebtoken::decode_header(&token).unwrap(),
            &good,
            &jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref()),
        )
        .unwrap()
    };
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(
            json!({"alg": "none", "kid": jsonwebtoken::decode_header(&token).unwrap().kid})
                .to_string()
        ),
        URL_SAFE_NO_PAD.encode(good.to_string())
    );
    let tokens: Vec<(&str, String, &String)> = vec![
        ("valid", token.clone(), &at_a),
        (
            "expired a minute ago",
            sign(&changed(&|c| {
                c.insert("iat".into(), json!(now - 180));
                c.insert("nbf".into(), json!(now - 180));
                c.insert("exp".into(), json!(now - 60));
            })),
            &at_a,
        ),
        (
            "valid from in one minute (nbf leeway)",
            sign(&changed(&|c| {
                c.insert("nbf".into(), json!(now + 60));
            })),
            &at_a,
        ),
        (
            "valid from in ten minutes",
            sign(&changed(&|c| {
                c.insert("nbf".into(), json!(now + 600));
                c.insert("exp".into(), json!(now + 900));
            })),
            &at_a,
        ),
        ("another workspace's audience", token.clone(), &at_b),
        (
            "another issuer",
            sign(&changed(&|c| {
                c.insert("iss".into(), json!(format!("{url}/other")));
            })),
            &at_a,
        ),
        ("signed by a stranger key under kaas's kid", stranger, &at_a),
        (
            "tampered payload",
            with_claims(
                &token,
                &changed(&|c| {
                    c.insert("groups".into(), json!(["system:masters"]));
                }),
            ),
            &at_a,
        ),
        ("unsigned (alg none)", unsigned, &at_a),
        (
            "no groups claim",
            sign(&changed(&|c| {
                c.remove("groups");
            })),
            &at_a,
        ),
        (
            "no email claim",
            sign(&changed(&|c| {
                c.remove("email");
            })),
            &at_a,
        ),
        (
            "email_verified false",
            sign(&changed(&|c| {
                c.insert("email_verified".into(), json!(false));
            })),
            &at_a,
        ),
    ];
    let mut outcomes = Vec::new();
    for (name, token, at) in &tokens {
        outcomes.push((*name, outcome(dir.path(), at, token, name).await));
    }
    let name_of = |n: &str| CASES.iter().find(|(c, _)| *c == n).unwrap().0;

    // A new signing key, published after the server fetched the JWKS.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(app.ops().rotate_signing_keys().unwrap().new_key);
    let rotated = mint().await;
    let kid = |t: &str| jsonwebtoken::decode_header(t).unwrap().kid.unwrap();
    assert_ne!(kid(&rotated), kid(&token));
    let name = name_of("a key published after the server started");
    outcomes.push((name, outcome(dir.path(), &at_a, &rotated, name).await));

    // The member removed: once kaas's bindings are gone from the cluster, the token still
    // held authenticates but is denied.
    let r = app
        .call(
            "DELETE",
            &format!("/workspaces/{a}/members/{mem_id}"),
            &ada,
            None,
        )
        .await;
    assert!(r.status.is_success(), "{:?}", r.body);
    let name = name_of("a removed member's unexpired token");
    let deadline = Instant::now() + H::PATIENCE;
    let last = loop {
        let o = outcome(dir.path(), &at_a, &rotated, name).await;
        if o != Allowed || Instant::now() > deadline {
            break o;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    outcomes.push((name, last));
    outcomes
}

fn assert_table(host: &str, outcomes: &[(&str, Outcome)]) {
    let wrong: Vec<String> = CASES
        .iter()
        .zip(outcomes)
        .filter(|((_, want), (_, got))| want != got)
        .map(|((name, want), (_, got))| format!("{name}: expected {want:?}, {host} said {got:?}"))
        .collect();
    assert_eq!(outcomes.len(), CASES.len(), "{outcomes:?}");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test]
async fn the_real_authenticator_decides_the_token_table_on_realhost() {
    let (mut app, issuer) = issuing();
    let host = RealHost::connect().await;
    let settings = issuer.settings(ReconcilerSettings {
        poll_while_busy: Duration::from_millis(500),
        max_backoff: Duration::from_secs(2),
        stuck_after: Duration::from_secs(30),
        ..reconciler_settings()
    });
    let kaas_kubeconfig = host.packaged_service_account_kubeconfig();
    let reconciler = attach_host(&mut app, kaas_kubeconfig.clone(), settings);
    let (url, ticking) = issuer.serve(&app);
    let h = RealHostedApp {
        app,
        host,
        kaas_kubeconfig,
        reconciler,
    };
    let outcomes = run_table(&h, &url).await;
    ticking.abort();
    assert_table("realhost", &outcomes);
}

// Multi-threaded: fakehost's virtual clusters answer kubectl in-process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fakehost_agrees_with_the_real_authenticator_on_the_token_table() {
    let (mut app, issuer) = issuing();
    let host = fakehost::FakeHost::start(fakehost::FakeHostOptions {
        manifests: vec![std::path::PathBuf::from(fakehost::K3K_CRDS_DIR)],
        ..Default::default()
    })
    .await
    .expect("fakehost starts");
    let k3k = fakehost::k3k::K3kController::for_host(
        &host,
        fakehost::k3k::K3kOptions {
            provision_delay: Duration::from_millis(150),
            poll_interval: Duration::from_millis(50),
            ..Default::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("host.kubeconfig");
    host.write_kubeconfig(&kubeconfig).unwrap();
    let reconciler = attach_host(&mut app, kubeconfig, issuer.settings(reconciler_settings()));
    let (url, ticking) = issuer.serve(&app);
    let h = HostedApp {
        app,
        host,
        k3k,
        reconciler,
        _dir: dir,
    };
    let outcomes = run_table(&h, &url).await;
    ticking.abort();
    assert_table("fakehost", &outcomes);
}
