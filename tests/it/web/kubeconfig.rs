//! The console's kubeconfig download where the virtual clusters trust kaas's OIDC issuer:
//! the default button gives the exec-plugin kubeconfig (kubectl runs `kaas credential`), the
//! second one a client-certificate kubeconfig for machines without kaas.

use kaas::host::oidc::ClusterIssuer;
use serde_json::{Value, json};

use super::*;

/// The downloaded file, checked to be one (YAML, an attachment, not cached), parsed.
fn downloaded(r: &Res) -> Value {
    serde_yaml::from_str(kubeconfig_download(r, "acme-prod.kubeconfig")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_downloads_the_exec_plugin_kubeconfig_by_default_and_a_certificate_on_request()
{
    let h = HostedApp::start_with(|s| {
        s.host.issuer = ClusterIssuer::usable("https://kaas.test", None);
    })
    .await;
    let app = &h.app;
    let (_, ws) = org_with_workspace(app, "ada@example.com", "acme").await;
    let mut ada = sign_in(app, "ada@example.com").await;
    let (_, api_token) = app.user("root@example.com", true).await;
    h.wait_ws(&bearer(&api_token), &ws.to_string(), "Ready", |w| {
        w.is_some_and(|w| w["state"] == "Ready")
    })
    .await;

    // Two buttons: the default one (exec) first, then the certificate for other machines.
    let page = get(app, &mut ada, &format!("/workspaces/{ws}")).await;
    let body = html(&page);
    assert!(body.contains("<code>kaas credential</code>"), "{body}");
    assert!(body.contains("run <code>kaas login</code> once"), "{body}");
    let exec = body
        .find("name=\"kind\" value=\"exec\"")
        .expect("the exec form");
    let cert = body
        .find("name=\"kind\" value=\"certificate\"")
        .expect("the certificate form");
    assert!(exec < cert);
    assert!(body[exec..cert].contains(">Download kubeconfig</button>"));
    assert!(body[cert..].contains(">Download with a client certificate</button>"));
    assert!(body.contains("For a machine without kaas"));

    // The default button: kubectl runs `kaas credential` against this kaas for this workspace;
    // no certificate in the file.
    let kc = format!("/workspaces/{ws}/kubeconfig");
    let ws_id = ws.to_string();
    for fields in [&[("kind", "exec")][..], &[]] {
        let yaml = downloaded(&submit(app, &mut ada, &kc, fields).await);
        let user = &yaml["users"][0]["user"];
        assert_eq!(user["exec"]["command"], "kaas", "{yaml:?}");
        assert_eq!(
            user["exec"]["args"],
            json!([
                "credential",
                "--server",
                "http://kaas.test",
                "--workspace",
                ws_id
            ])
        );
        assert_eq!(
            user["exec"]["apiVersion"],
            "client.authentication.k8s.io/v1"
        );
        assert_eq!(user["exec"]["interactiveMode"], "Never");
        assert!(user.get("client-certificate-data").is_none(), "{yaml:?}");
        assert!(yaml["clusters"][0]["cluster"]["server"].is_string());
    }

    // The fallback: a client certificate with the chosen lifetime, no plugin.
    let yaml = downloaded(
        &submit(
            app,
            &mut ada,
            &kc,
            &[("kind", "certificate"), ("lifetime_hours", "1")],
        )
        .await,
    );
    let user = &yaml["users"][0]["user"];
    assert!(user["client-certificate-data"].is_string(), "{yaml:?}");
    assert!(user["client-key-data"].is_string(), "{yaml:?}");
    assert!(user.get("exec").is_none(), "{yaml:?}");

    // Both are in the audit log, the exec one by its kind.
    let log = app
        .call(
            "GET",
            "/audit?action=kubeconfig.issue",
            &bearer(&api_token),
            None,
        )
        .await;
    let details: Vec<&str> = log.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["detail"].as_str().unwrap())
        .collect();
    assert_eq!(details.len(), 3, "{details:?}");
    assert_eq!(details.iter().filter(|d| **d == "kind=exec").count(), 2);
    assert!(details[0].starts_with("serial="), "{details:?}");
}
