//! The single sign-on journeys: the administrator adding a provider; ID tokens the provider
//! sends altered or too late, refused; the provider answering kaas with a real code and a
//! `state` kaas never issued, refused, and then the same sign-in with its own state going
//! through (a first login that creates the account and maps the provider's groups to an
//! organization role); and an existing local account linked by its verified e-mail address.
//! The provider is tests/oidc's (see main.rs for the clients kaas is configured with).

use std::time::{Duration, Instant};

use crate::journeys::{ADMIN_EMAIL, ADMIN_PASSWORD, Journey, MEMBER_EMAIL, MEMBER_NAME};
use crate::webdriver::WAIT;
use crate::world::assert_clean;

/// Signs in at the provider's own one-field form as `account` (after a provider button).
async fn at_provider(s: &crate::webdriver::Session, account: &str) {
    s.fill("input[name=account]", account).await;
    s.submit("Sign in").await;
}

impl Journey<'_> {
    /// Sign-in providers in the administration: the config file's listed read-only; a new
    /// one with an issuer that does not answer is refused next to the field; with the right
    /// issuer it is added and its button is on the sign-in page.
    pub async fn manage_sign_in_providers(&mut self, issuer: &str) {
        let s = &self.admin;
        s.fill("#email", ADMIN_EMAIL).await;
        s.fill("#password", ADMIN_PASSWORD).await;
        s.submit("Sign in").await;
        s.expect_text("h1", "Dashboard").await;
        s.submit("Sign-in providers").await;
        s.expect_text("h1", "Sign-in providers").await;
        s.see("from the config file").await;
        self.shots.take(s, "sso-providers").await;
        s.submit("New provider").await;
        s.expect_text("h1", "New sign-in provider").await;
        s.fill("#provider-id", "web").await;
        s.fill("#provider-name", "Web IdP").await;
        s.fill("#provider-issuer", "http://127.0.0.1:1").await;
        s.fill("#provider-client_id", "kaas").await;
        s.fill("#provider-client_secret", "kaas-secret").await;
        s.fill("#provider-groups_claim", "groups").await;
        s.fill("#provider-groups", "k8s-admins, acme, admin").await;
        s.submit("Add provider").await;
        let err = s.text_of("#provider-issuer-err").await;
        assert!(
            err.contains("discovery document could not be read"),
            "{err}"
        );
        self.shots.take(s, "sso-provider-refused").await;
        s.fill("#provider-issuer", issuer).await;
        s.fill("#provider-client_secret", "kaas-secret").await;
        s.submit("Add provider").await;
        s.see("Provider Web IdP added").await;
        s.see("k8s-admins → acme (admin)").await;
        self.shots.take(s, "sso-provider-added").await;
        s.submit("Edit").await;
        s.see("Leave blank to keep the current secret").await;
        self.shots.take(s, "sso-provider-edit").await;
        s.submit("Sign out").await;
        s.see("Sign in with Web IdP").await;
        assert_clean(
            s,
            "sign-in providers",
            &["/admin/sso - Failed to load resource: the server responded with a status of 422"],
        )
        .await;
    }

    /// ID tokens kaas must not believe, each refused with the reason on the sign-in page
    /// and nobody signed in: one whose e-mail claim was changed after the provider signed
    /// it (to the administrator's address), and one that has expired when it arrives.
    pub async fn refused_id_tokens(&mut self) {
        let s = &self.admin;
        s.expect_text("h1", "Sign in").await;
        s.see("Signing in with an identity provider skips kaas's own second factor")
            .await;
        self.shots.take(s, "sso-sign-in-page").await;
        for (button, why, shot) in [
            (
                "Sign in with Tampered IdP",
                "Tampered IdP sign-in failed: the ID token was refused: Signature verification failed",
                "sso-tampered-token",
            ),
            (
                "Sign in with Slow IdP",
                "Slow IdP sign-in failed: the ID token was refused: Expired: ID token expired at ",
                "sso-expired-token",
            ),
        ] {
            s.submit(button).await;
            at_provider(s, "alice").await;
            s.expect_text("h1", "Sign in").await;
            let msg = s.text_of(".flash-error").await;
            assert!(
                msg.starts_with(why),
                "after {button:?} the page says {msg:?}"
            );
            assert!(
                s.find_all(".who-name").await.is_empty(),
                "nobody is signed in after {button:?}"
            );
            self.shots.take(s, shot).await;
        }
        assert_clean(s, "refused ID tokens", &[]).await;
    }

    /// Alice, in her own browser. First the provider is asked to sign her in with a `state`
    /// kaas never gave it (the link her button led to, with its state replaced, as a forged
    /// link would be): the provider answers kaas with a real code and that state, and kaas
    /// refuses it, signing nobody in. The link with its own state then signs her in: a first
    /// login, creating her account, and her provider group "k8s-admins" makes her an admin
    /// of acme, which the organization page marks as managed by the identity provider.
    pub async fn single_sign_on(&mut self) {
        let a = self.driver.session_recording_requests(1280, 900).await;
        a.goto(&self.kaas.url("/login")).await;
        a.submit("Sign in with Corp IdP").await;
        a.find("input[name=account]").await;
        let authorize = a
            .requests_sent()
            .await
            .into_iter()
            .find(|u| u.contains("/auth?") && u.contains("%2Fsso%2Fcorp%2Fcallback"))
            .expect("the button led to the provider's authorization endpoint");
        let state = query_value(&authorize, "state");
        assert!(!state.is_empty(), "{authorize}");
        let forged = authorize.replace(&format!("state={state}"), "state=not-the-state");
        a.goto(&forged).await;
        at_provider(&a, "alice").await;
        let went = a.requests_sent().await;
        assert!(
            went.iter().any(|u| u.contains("/sso/corp/callback?")
                && u.contains("code=")
                && u.contains("state=not-the-state")),
            "the provider sent the browser back to kaas with a code and the wrong state: {went:?}"
        );
        a.expect_text("h1", "Sign in").await;
        a.expect_text(
            ".flash-error",
            "This sign-in was already used or has expired; start again",
        )
        .await;
        assert!(a.find_all(".who-name").await.is_empty(), "nobody signed in");
        self.shots.take(&a, "sso-wrong-state").await;

        // The same link with its own state, which the refusal did not use up. (Alice has
        // a session at the provider by now, so it may answer at once without its form.)
        a.goto(&authorize).await;
        let hello = "Signed in as alice@example.com.";
        let deadline = Instant::now() + WAIT;
        while !a.page_text().await.contains(hello) {
            if !a.find_all("input[name=account]").await.is_empty() {
                at_provider(&a, "alice").await;
            }
            assert!(Instant::now() < deadline, "Alice was never signed in");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        a.expect_text(".flash", hello).await;
        a.expect_text("h1", "Dashboard").await;
        // A new account, named as the provider names her.
        a.expect_text(".who-name", "Alice").await;
        a.see("acme · you are admin").await;
        self.shots.take(&a, "sso-signed-in").await;
        a.submit("Acme Inc").await;
        a.expect_text("h1", "Acme Inc").await;
        let row_of = |email: &str| {
            format!(
                "return Array.from(document.querySelectorAll('#members tbody tr'))\
                 .map(r => r.innerText).find(t => t.includes('{email}')) || null;"
            )
        };
        let alice = a.exec(&row_of("alice@example.com"), vec![]).await;
        let alice = alice.as_str().unwrap_or_default();
        assert!(
            alice.contains("managed by the identity provider") && alice.contains("admin"),
            "Alice's row: {alice:?}"
        );
        let owner = a.exec(&row_of(ADMIN_EMAIL), vec![]).await;
        let owner = owner.as_str().unwrap_or_default();
        assert!(
            owner.contains("owner") && !owner.contains("managed by the identity provider"),
            "the owner's row: {owner:?}"
        );
        self.shots.take(&a, "sso-groups-org-admin").await;
        a.submit("Sign out").await;
        a.see("You have signed out.").await;
        assert_clean(&a, "single sign-on", &[]).await;
        a.quit().await;
    }

    /// The invited member, in their own browser, signs in with the provider for the first
    /// time: the provider's verified address is theirs, so it is their existing account
    /// (their own name, their organization), not a new one named as the provider names
    /// them ("Bob").
    pub async fn link_an_existing_account(&mut self) {
        let m = self.driver.session(1280, 900).await;
        m.goto(&self.kaas.url("/login")).await;
        m.submit("Sign in with Corp IdP").await;
        at_provider(&m, "bob").await;
        m.expect_text(".flash", &format!("Signed in as {MEMBER_EMAIL}."))
            .await;
        m.expect_text("h1", "Dashboard").await;
        m.expect_text(".who-name", MEMBER_NAME).await;
        m.see("Acme Inc").await;
        m.see("acme · you are member").await;
        self.shots.take(&m, "sso-linked-account").await;
        assert_clean(&m, "link an existing account", &[]).await;
        m.quit().await;
    }
}

/// The value of `key` in `url`'s query (as it appears, not decoded).
fn query_value(url: &str, key: &str) -> String {
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .unwrap_or_default()
        .to_string()
}
