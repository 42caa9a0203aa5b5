//! The journeys a person takes through the console, one method each, in the order a new
//! installation lives them. Every step goes through the page (typing, clicking, submitting)
//! and asserts what a person would see: headings, flash messages, status badges. After each
//! step the browser log must be clean (see [`assert_clean`]).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::webdriver::{Driver, Session};
use crate::world::{Host, Kaas, Shots, assert_clean};

pub const ADMIN_EMAIL: &str = "root@example.com";
pub const ADMIN_PASSWORD: &str = "correct horse battery staple";
/// Also an account of the identity provider (its "bob", tests/oidc/provider.js): signing in
/// there later links to this account by the verified address.
pub const MEMBER_EMAIL: &str = "bob@example.com";
pub const MEMBER_NAME: &str = "Dev Eloper";
pub const MEMBER_PASSWORD: &str = "a member's own passphrase";

pub struct Journey<'a> {
    pub kaas: &'a Kaas,
    pub host: &'a Host,
    pub shots: &'a Shots,
    pub driver: &'a Driver,
    /// The platform administrator's browser.
    pub admin: Session,
    pub ws_url: String,
    pub org_url: String,
}

impl Journey<'_> {
    /// The printed one-time link → the setup form → signed in on the dashboard.
    pub async fn first_run_setup(&mut self) {
        let s = &self.admin;
        s.goto(&self.kaas.setup_link).await;
        s.expect_text("h1", "Set up kaas").await;
        self.shots.take(s, "setup").await;
        s.fill("#email", ADMIN_EMAIL).await;
        s.fill("#name", "Root Admin").await;
        s.fill("#password", ADMIN_PASSWORD).await;
        s.submit("Create administrator and sign in").await;
        s.see("You are the platform administrator").await;
        s.expect_text("h1", "Dashboard").await;
        s.see("Create your first organization").await;
        self.shots.take(s, "dashboard-empty").await;
        assert_clean(s, "first-run setup", &[]).await;
    }

    /// Sign out (back to the sign-in page, saying so) and sign in again with the password.
    pub async fn sign_out_and_in(&mut self) {
        let s = &self.admin;
        s.submit("Sign out").await;
        s.see("You have signed out.").await;
        s.expect_text("h1", "Sign in").await;
        self.shots.take(s, "login").await;
        s.fill("#email", ADMIN_EMAIL).await;
        s.fill("#password", ADMIN_PASSWORD).await;
        s.submit("Sign in").await;
        s.see(&format!("Signed in as {ADMIN_EMAIL}.")).await;
        s.expect_text("h1", "Dashboard").await;
        assert_clean(s, "sign out and in", &[]).await;
    }

    pub async fn create_organization(&mut self) {
        let s = &self.admin;
        s.fill("#org-name", "acme").await;
        s.fill("#org-display_name", "Acme Inc").await;
        s.submit("Create organization").await;
        s.see("Organization Acme Inc created.").await;
        s.expect_text("h1", "Acme Inc").await;
        s.see("you are owner").await;
        let url = s.url().await;
        assert!(url.contains("/orgs/org_"), "{url}");
        self.org_url = url;
        self.shots.take(s, "organization").await;
        assert_clean(s, "create organization", &[]).await;
    }

    /// The admin invites an address; the link is shown once; a second browser (its own
    /// profile, no cookies shared) opens it, creates the account and lands in the org.
    pub async fn invite_and_accept_a_member(&mut self) {
        let s = &self.admin;
        s.fill("#invite-email", MEMBER_EMAIL).await;
        let role = s.find("#invite-role option[value='member']").await;
        s.click(&role).await;
        s.submit("Create invitation link").await;
        s.expect_text("h1", "Invitation created").await;
        s.see("This is the only time the link is shown.").await;
        let field = s.find("#secret-value").await;
        let link = s.property(&field, "value").await;
        let link = link.as_str().expect("link text").to_string();
        assert!(
            link.starts_with(&self.kaas.url("/invite?token=")),
            "the link points at this kaas: {link}"
        );
        // The copy button is JavaScript's: shown only when the script ran.
        let copy = s.button("Copy").await;
        s.click(&copy).await;
        self.shots.take(s, "invitation-created").await;
        s.submit("Done").await;
        s.see(MEMBER_EMAIL).await;
        assert_clean(s, "invite", &[]).await;

        let m = self.driver.session(1280, 900).await;
        m.goto(&link).await;
        m.expect_text("h1", "Join Acme Inc").await;
        m.see("Create your account").await;
        self.shots.take(&m, "invitation-accept").await;
        m.fill("#name", MEMBER_NAME).await;
        m.fill("#password", MEMBER_PASSWORD).await;
        m.submit("Create account and join").await;
        m.expect_text(".flash", "Welcome! You have joined the organization.")
            .await;
        m.expect_text("h1", "Acme Inc").await;
        m.see("you are member").await;
        // The member's dashboard lists the organization too.
        m.submit("Dashboard").await;
        m.expect_text("h1", "Dashboard").await;
        m.see("Acme Inc").await;
        m.see("No workspaces you can see yet.").await;
        self.shots.take(&m, "member-dashboard").await;
        assert_clean(&m, "accept invitation", &[]).await;
        // The invitation link works once.
        m.delete_cookies().await;
        m.goto(&link).await;
        m.see("This invitation link no longer works").await;
        assert_clean(
            &m,
            "a used invitation link",
            &["Failed to load resource: the server responded with a status of 410 (Gone)"],
        )
        .await;
        m.quit().await;

        // The admin sees the new member; the pending invitation is gone.
        s.reload().await;
        s.see(MEMBER_NAME).await;
        s.see("No pending invitations.").await;
        assert_clean(s, "member joined", &[]).await;
    }

    /// Creates a workspace and watches its badge go to Ready through the page's own
    /// polling: a marker set in the page must survive, proving no reload happened.
    pub async fn create_workspace_and_watch_it_turn_ready(&mut self) {
        let s = &self.admin;
        s.fill("#ws-name", "prod").await;
        s.submit("Create workspace").await;
        s.expect_text(
            ".flash",
            "Workspace prod is being created; its status updates below.",
        )
        .await;
        s.expect_text("h1", "prod").await;
        self.ws_url = s.url().await;
        let badge = ".status-card .badge";
        let first = s.text_of(badge).await;
        assert_ne!(first, "Ready", "too early to be Ready");
        s.see("this updates by itself").await;
        let download_disabled =
            "return document.querySelector('#kubeconfig button[type=submit]').disabled;";
        assert_eq!(
            s.exec(download_disabled, vec![]).await,
            json!(true),
            "no kubeconfig before Ready"
        );
        self.shots.take(s, "workspace-provisioning").await;
        s.exec("window.__kaasMarker = 'no reload';", vec![]).await;

        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = vec![first];
        loop {
            let now = s.text_of(badge).await;
            if seen.last() != Some(&now) {
                seen.push(now.clone());
            }
            if now == "Ready" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the badge never showed Ready; it showed {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let marker = s.exec("return window.__kaasMarker || null;", vec![]).await;
        assert_eq!(marker, json!("no reload"), "the page reloaded");
        let class = s
            .property(&s.find(badge).await, "className")
            .await
            .to_string();
        assert!(
            class.contains("st-ready"),
            "the badge turned green: {class}"
        );
        println!("workspace badge went {seen:?} without a reload");
        // What Ready allows is offered without a reload too: the kubeconfig download.
        let offered = s
            .exec(
                "const b = document.querySelector('#kubeconfig button[type=submit]');\
                 const why = document.getElementById('kubeconfig-why');\
                 return !b.disabled && (!why || why.hidden);",
                vec![],
            )
            .await;
        assert_eq!(
            offered,
            json!(true),
            "the kubeconfig download is still disabled on the Ready page"
        );
        self.shots.take(s, "workspace-ready").await;
        assert_clean(s, "workspace turns Ready", &[]).await;

        // The same page at phone width.
        s.reload().await;
        s.set_window(390, 844).await;
        self.shots.take(s, "workspace-phone").await;
        s.goto(&self.kaas.url("/")).await;
        s.see("prod").await;
        self.shots.take(s, "dashboard-phone").await;
        s.set_window(1280, 900).await;
        s.goto(&self.kaas.url("/")).await;
        s.see("Ready").await;
        self.shots.take(s, "dashboard").await;
        assert_clean(s, "phone width", &[]).await;
    }

    pub async fn create_project(&mut self) {
        let s = &self.admin;
        s.goto(&self.ws_url).await;
        s.fill("#project-name", "web").await;
        s.submit("Create project").await;
        s.expect_text(".flash", "Project web created.").await;
        s.expect_text("h1", "web").await;
        s.see("Namespace web in workspace prod").await;
        self.shots.take(s, "project").await;
        s.submit("prod").await;
        s.expect_text("h1", "prod").await;
        s.see("web").await;
        assert_clean(s, "create project", &[]).await;
    }

    /// The organization's billing page: the Ready workspace is on this month's estimate
    /// (the meter ticks every second in this test), with the daily chart drawn as SVG.
    pub async fn see_billing(&mut self) {
        let s = &self.admin;
        s.goto(&format!("{}/billing", self.org_url)).await;
        s.expect_text("h1", "Billing").await;
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if s.page_text().await.contains("Workspace prod") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the Ready workspace never showed on the estimate"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
            s.reload().await;
        }
        s.see("Starter plan").await;
        s.see("No invoices yet").await;
        self.shots.take(s, "billing").await;
        assert_clean(s, "billing overview", &[]).await;
    }

    /// Downloads a kubeconfig through the form and uses it: the server is the virtual
    /// cluster's address, and kubectl reaches the cluster with it.
    pub async fn download_kubeconfig(&mut self) {
        let s = &self.admin;
        s.goto(&format!("{}#kubeconfig", self.ws_url)).await;
        self.shots.take(s, "workspace-kubeconfig").await;
        s.click(&s.button("Download kubeconfig").await).await;
        let file = wait_for_download(&s.downloads, "acme-prod.kubeconfig").await;
        let text = std::fs::read_to_string(&file).expect("kubeconfig readable");
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("kubeconfig is YAML");
        assert_eq!(doc["kind"].as_str(), Some("Config"), "{text}");
        let server = doc["clusters"][0]["cluster"]["server"]
            .as_str()
            .unwrap_or_else(|| panic!("a cluster with a server: {text}"))
            .to_string();
        let port: u64 = server
            .strip_prefix("https://127.0.0.1:")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the server is the external address: {server}"));
        assert!(
            self.host.node_ports().contains(&port),
            "the server is the virtual cluster's NodePort: {server}"
        );
        // The page stays where it was; downloading is not navigating.
        s.expect_text("h1", "prod").await;
        assert_clean(s, "download kubeconfig", &[]).await;

        // kubectl with it, as the page suggests. The project's namespace shows up once the
        // reconciler has created it inside the virtual cluster.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = tokio::process::Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(&file)
                .args(["get", "ns", "-o", "name", "--request-timeout=5s"])
                .output()
                .await
                .expect("kubectl runs");
            let stdout = String::from_utf8_lossy(&out.stdout);
            if out.status.success() && stdout.lines().any(|l| l == "namespace/web") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "kubectl get ns with the downloaded kubeconfig: {}{}",
                stdout,
                String::from_utf8_lossy(&out.stderr)
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// The confirmation wants the workspace's name typed: a wrong one is refused next to the
    /// field, the right one deletes; the organization page shows it Deleting, then not at all.
    pub async fn delete_workspace(&mut self) {
        let s = &self.admin;
        s.goto(&self.ws_url).await;
        s.click(&s.button("Delete workspace…").await).await;
        s.fill("#delete-confirm", "prd").await;
        s.submit("Delete prod permanently").await;
        let err = s.text_of("#delete-confirm-err").await;
        assert!(err.contains("Type prod exactly to confirm"), "{err}");
        // The page comes back at the top; the refused field, far below, is brought into
        // view and focused so the person sees why.
        let focused = s
            .exec(
                "return document.activeElement && document.activeElement.id;",
                vec![],
            )
            .await;
        assert_eq!(
            focused,
            json!("delete-confirm"),
            "the refused field has focus"
        );
        self.shots.take(s, "delete-refused").await;
        assert_clean(
            s,
            "delete with a wrong name",
            &["/delete - Failed to load resource: the server responded with a status of 422"],
        )
        .await;

        // K3K is held until the page has shown the workspace Deleting (its Cluster keeps
        // K3K's finalizer meanwhile), so the row cannot be gone before it is looked at.
        self.host.k3k.set_down(true);
        s.fill("#delete-confirm", "prod").await;
        s.submit("Delete prod permanently").await;
        s.expect_text(
            ".flash",
            "Workspace prod is being deleted with everything in it.",
        )
        .await;
        s.expect_text("h1", "Acme Inc").await;
        let row = "#workspaces tbody .badge";
        let badges = s.find_all(row).await;
        let state = match badges.first() {
            Some(b) => s.text(b).await,
            None => "no row".to_string(),
        };
        assert_eq!(state, "Deleting", "the organization page after the delete");
        self.shots.take(s, "workspace-deleting").await;
        self.host.k3k.set_down(false);
        // Without a reload the row says when it is gone.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let b = s.find_all(row).await;
            let state = match b.first() {
                Some(b) => s.text(b).await,
                None => "no row".to_string(),
            };
            if state == "Deleted" {
                break;
            }
            assert!(
                state == "Deleting" && Instant::now() < deadline,
                "the row should stay Deleting until it says Deleted, but it shows {state}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        // After a reload the row is gone.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !s.find_all(row).await.is_empty() {
            assert!(Instant::now() < deadline, "the workspace never went away");
            tokio::time::sleep(Duration::from_millis(500)).await;
            s.reload().await;
        }
        s.see("No workspaces yet.").await;
        self.shots.take(s, "workspace-deleted").await;
        assert_clean(s, "delete workspace", &[]).await;
    }

    /// Wrong passwords until the sign-in page says to wait, in words.
    pub async fn login_throttling(&mut self) {
        let s = &self.admin;
        s.submit("Sign out").await;
        s.see("You have signed out.").await;
        let mut throttled = None;
        for attempt in 1..=8 {
            s.fill("#email", MEMBER_EMAIL).await;
            s.fill("#password", "not the password at all").await;
            s.submit("Sign in").await;
            let msg = s.text_of(".form-error").await;
            if msg.starts_with("Too many attempts") {
                throttled = Some((attempt, msg));
                break;
            }
            assert_eq!(msg, "Wrong e-mail address or password");
        }
        let (attempt, msg) = throttled.expect("throttled within 8 attempts");
        assert!(
            msg == "Too many attempts — try again in 1 second."
                || (msg.starts_with("Too many attempts — try again in ")
                    && msg.ends_with(" seconds.")),
            "{msg}"
        );
        println!("sign-in throttled at attempt {attempt}: {msg}");
        self.shots.take(s, "login-throttled").await;
        assert_clean(
            s,
            "login throttling",
            &[
                "/login - Failed to load resource: the server responded with a status of 401",
                "/login - Failed to load resource: the server responded with a status of 429",
            ],
        )
        .await;
    }
}

/// The code an authenticator app with the key shown on the page would show now, and its
/// step.
fn code_now(secret: &[u8]) -> (String, u64) {
    use kaas::domain::mfa::{code_at_step, step_of};
    let now = u64::try_from(jiff::Timestamp::now().as_second()).unwrap_or(0);
    let step = step_of(now);
    (code_at_step(secret, step).expect("a code"), step)
}

impl Journey<'_> {
    /// Two-step sign-in: set up from the account page with the QR code (the key read off the
    /// page, the code computed as an authenticator app would), the recovery codes shown once;
    /// then signing in asks for a code: a recovery code works once, an authenticator code
    /// of a later step signs in, and that same code typed again is refused.
    pub async fn two_step_sign_in(&mut self) {
        let s = &self.admin;
        s.fill("#email", ADMIN_EMAIL).await;
        s.fill("#password", ADMIN_PASSWORD).await;
        s.submit("Sign in").await;
        s.expect_text("h1", "Dashboard").await;
        s.goto(&format!("{}/account", self.kaas.base)).await;
        s.fill("#mfa-current_password", ADMIN_PASSWORD).await;
        s.submit("Set up").await;
        s.expect_text("h1", "Set up two-step sign-in").await;
        let qr = s.find(".qr img").await;
        let natural = s.property(&qr, "naturalWidth").await;
        assert!(natural.as_u64().unwrap_or(0) > 0, "the QR code is drawn");
        self.shots.take(s, "mfa-enrol").await;
        let typed = s.text_of("#totp-secret").await;
        let secret = kaas::domain::mfa::secret_from_typed(&typed).expect("a base32 key");
        let (code, enrolled_at) = code_now(&secret);
        s.fill("#mfa-code", &code).await;
        s.submit("Turn on").await;
        s.expect_text("h1", "Your recovery codes").await;
        s.see("Two-step sign-in is on.").await;
        let codes = s.find_all("#recovery-codes li").await;
        assert_eq!(codes.len(), 10);
        let recovery = s.text(&codes[0]).await;
        self.shots.take(s, "mfa-recovery-codes").await;
        s.submit("Continue").await;
        s.expect_text("h1", "Account").await;

        // The password alone no longer signs in; a recovery code does, once.
        for (attempt, expect_ok) in [(1, true), (2, false)] {
            s.submit("Sign out").await;
            s.fill("#email", ADMIN_EMAIL).await;
            s.fill("#password", ADMIN_PASSWORD).await;
            s.submit("Sign in").await;
            s.expect_text("h1", "Two-step sign-in").await;
            s.fill("#code", &recovery).await;
            s.submit("Sign in").await;
            if expect_ok {
                s.see(&format!("Signed in as {ADMIN_EMAIL}.")).await;
            } else {
                let msg = s.text_of(".field-error").await;
                assert_eq!(
                    msg, "Wrong or already used recovery code",
                    "attempt {attempt}"
                );
            }
        }
        // An authenticator code of a later step than the one that set it up.
        let code = loop {
            let (code, step) = code_now(&secret);
            if step > enrolled_at {
                break code;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        };
        s.fill("#code", &code).await;
        s.submit("Sign in").await;
        s.see(&format!("Signed in as {ADMIN_EMAIL}.")).await;
        s.expect_text("h1", "Dashboard").await;

        // The code that just signed in, typed again (as by someone who saw it over a
        // shoulder) while it is still within its time window: refused next to the field.
        s.submit("Sign out").await;
        s.fill("#email", ADMIN_EMAIL).await;
        s.fill("#password", ADMIN_PASSWORD).await;
        s.submit("Sign in").await;
        s.expect_text("h1", "Two-step sign-in").await;
        s.fill("#code", &code).await;
        s.submit("Sign in").await;
        s.expect_text("h1", "Two-step sign-in").await;
        let msg = s.text_of("#code-err").await;
        assert_eq!(msg, "This code was already used; wait for the next one");
        let invalid = s.property(&s.find("#code").await, "ariaInvalid").await;
        assert_eq!(invalid, json!("true"), "the field is marked as refused");
        self.shots.take(s, "mfa-code-replayed").await;
        s.submit("Start again").await;
        s.expect_text("h1", "Sign in").await;
        assert_clean(
            s,
            "two-step sign-in",
            &["/login/code - Failed to load resource: the server responded with a status of 422"],
        )
        .await;
    }
}

/// Waits for Chromium to finish writing `name` into `dir`.
async fn wait_for_download(dir: &std::path::Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let partial = std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .any(|e| e.file_name().to_string_lossy().ends_with(".crdownload"))
            })
            .unwrap_or(false);
        if path.exists() && !partial {
            return path;
        }
        let listing: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            Instant::now() < deadline,
            "no download {name} in {}: {listing:?}",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
