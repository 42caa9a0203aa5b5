//! kubectl through kaas's OIDC issuer, end to end on realhost: a real kube-apiserver per
//! virtual cluster, configured from the Cluster's `serverArgs`/`secretMounts` as K3s would be,
//! runs the real JWT authenticator (discovery and JWKS over HTTPS with the configured CA,
//! signature, issuer, audience, expiry, claim mappings) against tokens that the real kubectl
//! gets from the real `kaas credential` exec plugin.
//!
//! kaas is served over HTTPS on loopback here (a self-signed certificate, given to the
//! clusters as the issuer's CA and to the plugin as `ca_file`), and its clock follows the
//! wall clock, which the real authenticator reads.

use std::path::{Path, PathBuf};
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

use crate::realhost::{RealHost, RealHostedApp};
use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_kaas");
/// Short, so that expiry is seen within the test.
const LIFETIME: Duration = Duration::from_secs(20);

/// Serves `router` over HTTPS on `listener` with `cert`/`key` (PEM).
pub(crate) fn serve_https(
    router: axum::Router,
    listener: std::net::TcpListener,
    cert: &str,
    key: &str,
) {
    let certs = rustls_pemfile::certs(&mut cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls_pemfile::private_key(&mut key.as_bytes())
        .unwrap()
        .unwrap();
    let cfg = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let tls = axum_server::tls_rustls::RustlsConfig::from_config(std::sync::Arc::new(cfg));
    listener.set_nonblocking(true).unwrap();
    tokio::spawn(async move {
        axum_server::from_tcp_rustls(listener, tls)
            .unwrap()
            .serve(router.into_make_service())
            .await
    });
}

/// One person at a shell: their own config and cache directories, kubectl and kaas on PATH.
struct Shell {
    dir: PathBuf,
}

impl Shell {
    fn new(root: &Path, name: &str, server: &str, api_token: &str, ca: &Path) -> Shell {
        let dir = root.join(name);
        let conf = dir.join("config/kaas");
        std::fs::create_dir_all(&conf).unwrap();
        std::fs::write(
            conf.join("credentials.toml"),
            format!(
                "current = \"{server}\"\n[servers.\"{server}\"]\ntoken = \"{api_token}\"\n\
                 expires_at = \"2099-01-01T00:00:00Z\"\nuser = \"{name}@example.com\"\n\
                 ca_file = \"{}\"\n",
                ca.display()
            ),
        )
        .unwrap();
        Shell { dir }
    }

    fn cache(&self) -> PathBuf {
        self.dir.join("cache/kaas/tokens")
    }

    fn forget_tokens(&self) {
        let _ = std::fs::remove_dir_all(self.cache());
    }

    fn command(&self, program: &str) -> tokio::process::Command {
        let bin_dir = Path::new(BIN).parent().unwrap();
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut c = tokio::process::Command::new(program);
        c.env_clear()
            .env("PATH", path)
            .env("HOME", &self.dir)
            .env("XDG_CONFIG_HOME", self.dir.join("config"))
            .env("XDG_CACHE_HOME", self.dir.join("cache"))
            .kill_on_drop(true);
        c
    }

    /// kubectl with `kubeconfig`: (success, stdout, stderr).
    async fn kubectl(&self, kubeconfig: &Path, args: &[&str]) -> (bool, String, String) {
        let out = self
            .command("kubectl")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--request-timeout=20s")
            .args(args)
            .output()
            .await
            .expect("kubectl runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// Whether kubectl's stderr says the API server refused its credentials (401).
fn refused(err: &str) -> bool {
    err.contains("Unauthorized") || err.contains("must be logged in to the server")
}

/// A kubeconfig for the cluster of `exec_yaml` whose user is the bearer `token`.
fn token_kubeconfig(exec_yaml: &str, token: &str) -> String {
    let mut v: Value = serde_yaml::from_str(exec_yaml).unwrap();
    v["users"][0]["user"] = json!({ "token": token });
    serde_yaml::to_string(&v).unwrap()
}

/// The claims of a JWT, unverified.
pub(crate) fn claims(jwt: &str) -> Value {
    let body = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).unwrap()).unwrap()
}

/// `jwt` with its claims replaced (the signature kept).
fn with_claims(jwt: &str, claims: &Value) -> String {
    let parts: Vec<&str> = jwt.split('.').collect();
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap());
    format!("{}.{body}.{}", parts[0], parts[2])
}

/// `claims` signed with a key kaas never published, under the current key's id.
fn signed_by_stranger(jwt: &str, claims: &Value) -> String {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &rng,
    )
    .unwrap();
    let header = jsonwebtoken::decode_header(jwt).unwrap();
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref()),
    )
    .unwrap()
}

#[tokio::test]
async fn kubectl_uses_kaas_tokens_and_loses_access_with_the_role_on_realhost() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tmp = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let (cert_pem, key_pem) = (cert.cert.pem(), cert.signing_key.serialize_pem());
    let ca = tmp.path().join("kaas-ca.pem");
    std::fs::write(&ca, &cert_pem).unwrap();

    let mut app = TestApp::with_issuer(
        Settings::default(),
        IssuerSettings {
            url: url.clone(),
            token_lifetime: LIFETIME,
            key_rotation: Duration::from_secs(15),
            kek: [9; KEK_LEN],
        },
    );
    // The real authenticator checks exp and nbf against the wall clock.
    let clock = app.clock.clone();
    clock.set(Timestamp::now());
    let ticking = tokio::spawn(async move {
        loop {
            clock.set(Timestamp::now());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let host = RealHost::connect().await;
    let mut settings = ReconcilerSettings {
        poll_while_busy: Duration::from_millis(500),
        max_backoff: Duration::from_secs(2),
        stuck_after: Duration::from_secs(30),
        ..reconciler_settings()
    };
    settings.host.issuer = Some(ClusterIssuer::usable(&url, Some(cert_pem.clone())).unwrap());
    let kaas_kubeconfig = host.packaged_service_account_kubeconfig();
    let reconciler = attach_host(&mut app, kaas_kubeconfig.clone(), settings);
    serve_https(app.router.clone(), listener, &cert_pem, &key_pem);
    let h = RealHostedApp {
        app,
        host,
        kaas_kubeconfig,
        reconciler,
    };
    let app = &h.app;

    let (_, root) = app.user("root@example.com", true).await;
    let (_, ada_token) = app.user("ada@example.com", false).await;
    let (wan_id, wan_token) = app.user("wan@example.com", false).await;
    let (dis_id, dis_token) = app.user("dis@example.com", false).await;
    let ada = bearer(&ada_token);
    let org = app.create_org(&ada, "acme").await;
    {
        let tx = app.ops().store.write().unwrap();
        for id in [wan_id, dis_id] {
            let m = Membership {
                org_id: org.parse::<OrgId>().unwrap(),
                user_id: id,
                role: OrgRole::Member,
                joined_at: app.ops().now(),
            };
            records::put_member(&tx, &m).unwrap();
        }
        tx.commit().unwrap();
    }
    let a = app.create_workspace(&ada, &org, "alpha", "starter").await;
    let b = app.create_workspace(&ada, &org, "beta", "starter").await;
    for id in [wan_id, dis_id] {
        let r = app
            .call(
                "PUT",
                &format!("/workspaces/{a}/members/{id}"),
                &ada,
                Some(json!({"role": "workspace-admin"})),
            )
            .await;
        assert_eq!(r.status.as_u16(), 200, "{:?}", r.body);
    }
    for ws in [&a, &b] {
        h.wait_ws(&ada, ws, "Ready", |w| {
            w.is_some_and(|w| w["state"] == "Ready")
        })
        .await;
    }

    // The Cluster trusts the issuer through its mounted AuthenticationConfiguration.
    let ns = format!("kaas-ws-{}", a.trim_start_matches("ws_"));
    let cluster = h
        .host
        .list("k3k.io", "clusters", Some(&ns))
        .await
        .pop()
        .unwrap();
    let args = cluster["spec"]["serverArgs"][0].as_str().unwrap();
    assert!(
        args.starts_with("--kube-apiserver-arg=authentication-config=/etc/kaas/oidc/"),
        "{args}"
    );

    // The default kubeconfig runs the plugin.
    let kubeconfig = |who: String, ws: String| {
        let dir = tmp.path().to_path_buf();
        async move {
            let r = app
                .call(
                    "POST",
                    &format!("/workspaces/{ws}/kubeconfig"),
                    &bearer(&who),
                    Some(json!({})),
                )
                .await;
            assert_eq!(r.status.as_u16(), 200, "{:?}", r.body);
            assert_eq!(r.body["kind"], "exec");
            let yaml = r.body["kubeconfig"].as_str().unwrap().to_string();
            let path = dir.join(format!("{}-{ws}.kubeconfig", &who[..12]));
            std::fs::write(&path, &yaml).unwrap();
            (path, yaml)
        }
    };
    let wan = Shell::new(tmp.path(), "wan", &url, &wan_token, &ca);
    let dis = Shell::new(tmp.path(), "dis", &url, &dis_token, &ca);
    let (wan_a, wan_a_yaml) = kubeconfig(wan_token.clone(), a.clone()).await;
    let (_, wan_b_yaml) = kubeconfig(ada_token.clone(), b.clone()).await;
    let (dis_a, _) = kubeconfig(dis_token.clone(), a.clone()).await;

    // kubectl runs `kaas credential`, parses its ExecCredential and is let in as wan, with
    // the workspace's group (the real authenticator read the token's claims).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (ok, out, err) = wan.kubectl(&wan_a, &["auth", "whoami", "-o", "json"]).await;
        if ok {
            let me: Value = serde_json::from_str(&out).unwrap();
            assert_eq!(me["status"]["userInfo"]["username"], "wan@example.com");
            let groups = me["status"]["userInfo"]["groups"].to_string();
            assert!(
                groups.contains(&format!("kaas:ws:{a}:workspace-admin")),
                "{groups}"
            );
            break;
        }
        // The new API server may still be fetching the issuer's discovery document.
        assert!(
            Instant::now() < deadline,
            "kubectl refused: {err}{}",
            h.host.diagnostics()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (ok, _, err) = wan.kubectl(&wan_a, &["get", "ns"]).await;
    assert!(ok, "{err}");
    // The fallback for machines without kaas: a client certificate.
    let r = app
        .call(
            "POST",
            &format!("/workspaces/{a}/kubeconfig"),
            &bearer(&wan_token),
            Some(json!({"kind": "certificate", "lifetime_hours": 1})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.body);
    assert_eq!(r.body["kind"], "certificate");
    assert!(r.body["serial"].is_string());
    let cert_kc = tmp.path().join("wan-cert.kubeconfig");
    std::fs::write(&cert_kc, r.body["kubeconfig"].as_str().unwrap()).unwrap();
    let (ok, _, err) = wan.kubectl(&cert_kc, &["get", "ns"]).await;
    assert!(ok, "{err}");
    // A lifetime means nothing to an exec kubeconfig: refused by name.
    let r = app
        .call(
            "POST",
            &format!("/workspaces/{a}/kubeconfig"),
            &bearer(&wan_token),
            Some(json!({"lifetime_hours": 1})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 422, "{:?}", r.body);
    assert_eq!(r.field(), "lifetime_hours");
    // The token is cached, privately, for the next kubectl command.
    let cached: Vec<_> = std::fs::read_dir(wan.cache()).unwrap().flatten().collect();
    assert_eq!(cached.len(), 1);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = cached[0].metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let token: Value = serde_json::from_slice(&std::fs::read(cached[0].path()).unwrap()).unwrap();
    let token = token["token"].as_str().unwrap().to_string();
    let good = claims(&token);

    // A's token at B: refused (wrong audience).
    let at = |yaml: &str, token: &str, name: &str| {
        let path = tmp.path().join(name);
        std::fs::write(&path, token_kubeconfig(yaml, token)).unwrap();
        path
    };
    let (ok, _, err) = wan
        .kubectl(&at(&wan_b_yaml, &token, "a-at-b"), &["get", "ns"])
        .await;
    assert!(!ok && refused(&err), "{err}");
    // The same token works at A as a bearer token; tampered or signed by another key, not.
    let (ok, _, err) = wan
        .kubectl(&at(&wan_a_yaml, &token, "a-at-a"), &["get", "ns"])
        .await;
    assert!(ok, "{err}");
    let mut forged = good.clone();
    forged["groups"] = json!(["system:masters"]);
    for (name, bad) in [
        ("tampered", with_claims(&token, &forged)),
        ("stranger", signed_by_stranger(&token, &good)),
    ] {
        let (ok, _, err) = wan
            .kubectl(&at(&wan_a_yaml, &bad, name), &["get", "ns"])
            .await;
        assert!(!ok && refused(&err), "{name}: {err}");
    }
    // Signed by kaas but without the groups claim: refused by the claim validation rule.
    let mut no_groups = good.clone();
    no_groups.as_object_mut().unwrap().remove("groups");
    let (bare, _) = app.ops().issuer().unwrap().sign(&no_groups).unwrap();
    let (ok, _, err) = wan
        .kubectl(&at(&wan_a_yaml, &bare, "no-groups"), &["get", "ns"])
        .await;
    assert!(!ok && refused(&err), "no groups: {err}");
    // An expired one: refused.
    let mut expired = good.clone();
    let now = Timestamp::now().as_second();
    expired["iat"] = json!(now - 120);
    expired["nbf"] = json!(now - 120);
    expired["exp"] = json!(now - 60);
    let (old, _) = app.ops().issuer().unwrap().sign(&expired).unwrap();
    let (ok, _, err) = wan
        .kubectl(&at(&wan_a_yaml, &old, "expired"), &["get", "ns"])
        .await;
    assert!(!ok && refused(&err), "expired: {err}");

    // Key rotation keeps a running kubectl working. The current key is due (rotation every
    // 15 s); the plugin gets a token it signed and caches it. (Run by hand, not by kubectl:
    // the API server caches a token it accepted for 10 s, and this one must first meet it
    // after the rotation.)
    tokio::time::sleep(Duration::from_secs(15)).await;
    let cache_file = || {
        let cached: Vec<_> = std::fs::read_dir(wan.cache()).unwrap().flatten().collect();
        assert_eq!(cached.len(), 1, "{cached:?}");
        std::fs::read(cached[0].path()).unwrap()
    };
    let token_in = |file: &[u8]| {
        serde_json::from_slice::<Value>(file).unwrap()["token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    wan.forget_tokens();
    let out = wan
        .command(BIN)
        .args(["credential", "--server", &url, "--workspace", &a])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let before = cache_file();
    let old_key_token = token_in(&before);
    let kid = |t: &str| jsonwebtoken::decode_header(t).unwrap().kid.unwrap();
    let old_kid = kid(&old_key_token);
    let changes = app.ops().rotate_signing_keys().unwrap();
    assert!(changes.new_key, "{changes:?}");
    assert_eq!(changes.retire, vec![old_kid.clone()]);
    // A token of the new key, through a kubeconfig of its own: the API server meets a key id
    // it does not know and fetches the JWKS again.
    let r = app
        .call(
            "POST",
            &format!("/workspaces/{a}/token"),
            &bearer(&wan_token),
            None,
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.body);
    let new_key_token = r.body["token"].as_str().unwrap().to_string();
    assert_ne!(kid(&new_key_token), old_kid);
    let (ok, _, err) = wan
        .kubectl(&at(&wan_a_yaml, &new_key_token, "new-key"), &["get", "ns"])
        .await;
    assert!(ok, "a token of the new key: {err}");
    // The running kubectl goes on with the old key's token from the plugin's cache: accepted
    // after that fetch, the retired key being published until its tokens have expired.
    let (ok, _, err) = wan.kubectl(&wan_a, &["get", "ns"]).await;
    assert!(ok, "the old key's token after rotation: {err}");
    assert_eq!(cache_file(), before, "not the cached token of the old key");
    // Its next token, once that one is renewed, is the new key's, and works as well.
    wan.forget_tokens();
    let (ok, _, err) = wan.kubectl(&wan_a, &["get", "ns"]).await;
    assert!(ok, "after rotation: {err}");
    let rotated = token_in(&cache_file());
    assert_ne!(kid(&rotated), old_kid);

    // Removed from the workspace: a new token is refused at once, with one line that says so.
    let (ok, _, err) = dis.kubectl(&dis_a, &["get", "ns"]).await;
    assert!(ok, "{err}");
    let r = app
        .call(
            "DELETE",
            &format!("/workspaces/{a}/members/{dis_id}"),
            &ada,
            None,
        )
        .await;
    assert!(r.status.is_success(), "{:?}", r.body);
    let started = Instant::now();
    // The cached token goes on authenticating until it expires, but grants nothing once the
    // role is gone; after expiry the plugin cannot get another.
    loop {
        let (ok, _, err) = dis.kubectl(&dis_a, &["get", "ns"]).await;
        if !ok {
            break;
        }
        assert!(
            started.elapsed() < LIFETIME + Duration::from_secs(15),
            "still let in: {err}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    dis.forget_tokens();
    let out = dis
        .command(BIN)
        .args(["credential", "--server", &url, "--workspace", &a])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no access to workspace"), "{err}");

    // A disabled user: a new token is refused at once (their API credential no longer
    // works), and kubectl tells them to sign in again.
    let r = app
        .call(
            "PATCH",
            &format!("/users/{wan_id}"),
            &bearer(&root),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.body);
    wan.forget_tokens();
    let (ok, _, err) = wan.kubectl(&wan_a, &["get", "ns"]).await;
    assert!(!ok, "a disabled user got in");
    assert!(err.contains("run `kaas login"), "{err}");
    // The token they still hold stops authenticating when it expires.
    let started = Instant::now();
    loop {
        let (ok, _, err) = wan
            .kubectl(&at(&wan_a_yaml, &rotated, "held"), &["get", "ns"])
            .await;
        if !ok {
            assert!(refused(&err) || err.contains("Forbidden"), "{err}");
            break;
        }
        assert!(started.elapsed() < LIFETIME + Duration::from_secs(15));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    ticking.abort();
}
