//! The console shows the organization limit's refusal on the form that asked.

use axum::http::StatusCode;
use kaas::ops::Settings;

use super::*;

#[tokio::test]
async fn the_organization_limit_is_explained_on_the_dashboard_form() {
    let app = TestApp::with_settings(Settings {
        max_orgs_per_user: 1,
        ..Settings::default()
    });
    app.user("ada@example.com", false).await;
    let mut b = sign_in(&app, "ada@example.com").await;
    let r = submit(&app, &mut b, "/orgs", &[("name", "one")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
    let r = submit(&app, &mut b, "/orgs", &[("name", "two")]).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(
        html(&r).contains("Organization limit reached: you own 1 of the 1"),
        "{}",
        html(&r)
    );
    // The name typed is kept for another try.
    assert!(html(&r).contains("value=\"two\""), "{}", html(&r));
}
