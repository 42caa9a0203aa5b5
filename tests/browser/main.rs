//! Browser tests: the real `kaas` binary against fakehost, driven through the admin console
//! in headless Chromium (Debian's `chromium` + `chromium-driver`) over WebDriver. One run
//! walks the journeys in order, each through the UI only, failing on any browser console
//! error or failed request, and leaves screenshots in `target/browser-shots/`.

mod journeys;
mod sso;
mod webdriver;
mod world;

use std::time::Instant;

use journeys::Journey;
use webdriver::Driver;
use world::{Host, Idp, Kaas, Shots};

// NB: one test, not one per journey: they build on each other (the member needs the
// organization, the kubeconfig needs the workspace), and one Chromium at a time is what two
// shared cores can afford.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_journeys_in_a_real_browser() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("temp dir");
    let shots = Shots::new();
    let host = Host::start(dir.path()).await;
    // kaas's port is chosen first: the identity provider must know its redirect URI.
    let port = webdriver::free_port();
    let idp = Idp::start(
        &["corp", "web", "tamper", "expired"]
            .map(|p| format!("http://127.0.0.1:{port}/sso/{p}/callback"))
            .join(","),
    );
    let config = dir.path().join("kaas.toml");
    std::fs::write(
        &config,
        format!(
            r#"[[sso.providers]]
id = "corp"
name = "Corp IdP"
issuer = "{issuer}"
client_id = "kaas"
client_secret = "kaas-secret"
accounts = "open"
scopes = ["openid", "email", "profile", "groups"]
groups_claim = "groups"
groups = [{{ group = "k8s-admins", org = "acme", role = "admin" }}]

# The provider alters this client's ID tokens after signing them (see tests/oidc).
[[sso.providers]]
id = "tamper"
name = "Tampered IdP"
issuer = "{issuer}"
client_id = "kaas-tamper"
client_secret = "kaas-tamper-secret"
accounts = "open"

# The provider's ID tokens for this client have expired when they arrive.
[[sso.providers]]
id = "expired"
name = "Slow IdP"
issuer = "{issuer}"
client_id = "kaas-expired"
client_secret = "kaas-expired-secret"
accounts = "open"
"#,
            issuer = idp.issuer
        ),
    )
    .expect("kaas config");
    let kaas = Kaas::start(
        port,
        &dir.path().join("data"),
        &host.kubeconfig,
        shots.dir.join("kaas.log"),
        &config,
    );
    println!("kaas at {} (log: {})", kaas.base, kaas.log.display());
    let driver = Driver::start().await;
    let admin = driver.session(1280, 900).await;
    let mut j = Journey {
        kaas: &kaas,
        host: &host,
        shots: &shots,
        driver: &driver,
        admin,
        ws_url: String::new(),
        org_url: String::new(),
    };

    j.first_run_setup().await;
    j.sign_out_and_in().await;
    j.create_organization().await;
    j.invite_and_accept_a_member().await;
    j.create_workspace_and_watch_it_turn_ready().await;
    j.create_project().await;
    j.download_kubeconfig().await;
    j.see_billing().await;
    j.delete_workspace().await;
    j.login_throttling().await;
    j.manage_sign_in_providers(&idp.issuer).await;
    j.two_step_sign_in().await;
    j.refused_id_tokens().await;
    j.single_sign_on().await;
    j.link_an_existing_account().await;

    j.admin.quit().await;
    println!("browser journeys took {:.1?}", started.elapsed());
}
