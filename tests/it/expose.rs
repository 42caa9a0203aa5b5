//! Exposure per plan (`host::expose`) on realhost: a workspace on each mode — nodeport,
//! loadbalancer (realhost's ServiceLB stand-in publishes the address), ingress (realhost's
//! Traefik stand-in routes TLS by SNI, passed through) — downloads a kubeconfig whose server is
//! the address that mode gives, and the real kubectl works with it as the person it names; a
//! plan's mode change rolls out to its workspaces.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::host::{org_and_workspace, short, state};
use crate::realhost::{RealHost, RealHostedApp};
use crate::support::*;

const INGRESS_DOMAIN: &str = "kaas.test";

/// A kaas on the shared realhost whose ingress domain is [`INGRESS_DOMAIN`], served by
/// realhost's Traefik stand-in. Returns it and the entry point's port.
async fn start() -> (RealHostedApp, u16) {
    let host = RealHost::connect().await;
    let port: u16 = host
        .ingress
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("realhost's ingress address {:?}", host.ingress));
    let h = RealHostedApp::on_with(host, |s| {
        s.host.expose.ingress_domain = INGRESS_DOMAIN.into();
        s.host.expose.ingress_port = port;
    });
    (h, port)
}

/// Creates plan `id`: the starter plan exposed by `mode`.
async fn plan_exposed(h: &RealHostedApp, root: &Auth, id: &str, mode: &str) {
    let mut p = h.app().call("GET", "/plans/starter", root, None).await.body;
    p["id"] = json!(id);
    p["display_name"] = json!(id);
    p["expose"] = json!(mode);
    let r = h.app().call("POST", "/plans", root, Some(p)).await;
    assert_eq!(r.status.as_u16(), 201, "{:?}", r.body);
    assert_eq!(r.body["expose"], mode);
}

async fn workspace(h: &RealHostedApp, a: &Auth, org: &str, name: &str, plan: &str) -> String {
    let r = h
        .app()
        .call(
            "POST",
            &format!("/orgs/{org}/workspaces"),
            a,
            Some(json!({"name": name, "plan": plan})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 201, "{:?}", r.body);
    r.body["id"].as_str().unwrap().to_string()
}

/// A fresh kubeconfig for `ws` (written under `dir`) and the server URL kaas says it names.
async fn kubeconfig(
    h: &RealHostedApp,
    a: &Auth,
    ws: &str,
    dir: &std::path::Path,
    name: &str,
) -> (PathBuf, String) {
    let r = h
        .app()
        .call(
            "POST",
            &format!("/workspaces/{ws}/kubeconfig"),
            a,
            Some(json!({"lifetime_hours": 1})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.body);
    let yaml = r.body["kubeconfig"].as_str().unwrap();
    let server = r.body["server"].as_str().unwrap_or_default().to_string();
    assert!(
        !server.is_empty() && yaml.contains(&server),
        "the kubeconfig names {server}: {yaml}"
    );
    let kc = dir.join(format!("{name}.kubeconfig"));
    std::fs::write(&kc, yaml).unwrap();
    (kc, server)
}

/// Who kubectl is inside the virtual cluster, with `extra` flags; what it said when it fails.
async fn whoami(kc: &std::path::Path, extra: &[&str]) -> Result<String, String> {
    let mut args = vec![
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username}",
        "--request-timeout=10s",
    ];
    args.extend_from_slice(extra);
    let (ok, out) = kubectl(kc, &args).await;
    if ok { Ok(out) } else { Err(out) }
}

async fn ready(h: &RealHostedApp, a: &Auth, ws: &str) {
    h.wait_ws(a, ws, "Ready", |w| state(w) == "Ready")
        .await
        .unwrap();
}

/// The address realhost's ServiceLB stand-in published for `ws`'s API Service.
async fn load_balancer_ip(h: &RealHostedApp, ws: &str) -> Option<String> {
    let svc = h
        .get(
            "",
            "services",
            Some(&format!("kaas-ws-{}", short(ws))),
            "kaas-api",
        )
        .await?;
    svc["status"]["loadBalancer"]["ingress"][0]["ip"]
        .as_str()
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_on_each_expose_mode_gets_a_kubeconfig_kubectl_uses_at_that_address_on_realhost()
 {
    let (h, ingress_port) = start().await;
    let root = bearer(&h.app().user("root@example.com", true).await.1);
    plan_exposed(&h, &root, "lb", "loadbalancer").await;
    plan_exposed(&h, &root, "ingress", "ingress").await;
    let (a, org, by_node_port) = org_and_workspace(&h, "starter").await;
    let by_lb = workspace(&h, &a, &org, "lb", "lb").await;
    let by_ingress = workspace(&h, &a, &org, "ingress", "ingress").await;
    for ws in [&by_node_port, &by_lb, &by_ingress] {
        ready(&h, &a, ws).await;
    }
    let dir = tempfile::tempdir().unwrap();

    // nodeport: the external address and the node port Kubernetes allocated.
    let svc = h
        .get(
            "",
            "services",
            Some(&format!("kaas-ws-{}", short(&by_node_port))),
            "kaas-api",
        )
        .await
        .unwrap();
    assert_eq!(svc["spec"]["type"], "NodePort");
    let node_port = svc["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
    let (kc, server) = kubeconfig(&h, &a, &by_node_port, dir.path(), "np").await;
    assert_eq!(server, format!("https://127.0.0.1:{node_port}"));
    assert_eq!(whoami(&kc, &[]).await.as_deref(), Ok("ada@example.com"));

    // loadbalancer: the address ServiceLB published, on 443, which the API server's
    // certificate names (tlsSANs).
    let ip = load_balancer_ip(&h, &by_lb)
        .await
        .expect("the API Service of a loadbalancer plan has a load balancer address");
    let (kc, server) = kubeconfig(&h, &a, &by_lb, dir.path(), "lb").await;
    assert_eq!(server, format!("https://{ip}:443"));
    let cluster = h
        .get(
            "k3k.io",
            "clusters",
            Some(&format!("kaas-ws-{}", short(&by_lb))),
            &format!("ws-{}", short(&by_lb)),
        )
        .await
        .unwrap();
    assert!(
        cluster["spec"]["tlsSANs"]
            .as_array()
            .unwrap()
            .contains(&json!(ip)),
        "{:?}",
        cluster["spec"]["tlsSANs"]
    );
    assert_eq!(whoami(&kc, &[]).await.as_deref(), Ok("ada@example.com"));

    // ingress: ws-<short>.<domain> on the ingress controller's port. No DNS here: kubectl
    // dials the controller's address and names the host in TLS, as a resolver would make it.
    let host = format!("ws-{}.{INGRESS_DOMAIN}", short(&by_ingress));
    let (kc, server) = kubeconfig(&h, &a, &by_ingress, dir.path(), "ing").await;
    assert_eq!(server, format!("https://{host}:{ingress_port}"));
    let ns = format!("kaas-ws-{}", short(&by_ingress));
    let route = h
        .get("traefik.io", "ingressroutetcps", Some(&ns), "kaas-api")
        .await
        .expect("the IngressRouteTCP of an ingress plan");
    assert_eq!(route["spec"]["tls"]["passthrough"], true);
    assert_eq!(
        route["spec"]["routes"][0]["match"],
        format!("HostSNI(`{host}`)")
    );
    let entry = format!("https://127.0.0.1:{ingress_port}");
    assert_eq!(
        whoami(&kc, &["--server", &entry, "--tls-server-name", &host])
            .await
            .as_deref(),
        Ok("ada@example.com"),
        "TLS passed through: the virtual cluster's API server saw kaas's client certificate"
    );
    // Another name is routed nowhere: the controller closes the connection.
    let other = format!("ws-nothere.{INGRESS_DOMAIN}");
    assert!(
        whoami(&kc, &["--server", &entry, "--tls-server-name", &other])
            .await
            .is_err()
    );
    // Only the ingress plan's workspace has a route.
    assert!(
        h.get(
            "traefik.io",
            "ingressroutetcps",
            Some(&format!("kaas-ws-{}", short(&by_lb))),
            "kaas-api"
        )
        .await
        .is_none()
    );

    // A plan's mode change rolls out: the loadbalancer workspace moves to the ingress.
    let mut plan = h.app().call("GET", "/plans/lb", &root, None).await.body;
    plan["expose"] = json!("ingress");
    let r = h.app().call("PUT", "/plans/lb", &root, Some(plan)).await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.body);
    let moved = format!("ws-{}.{INGRESS_DOMAIN}", short(&by_lb));
    let lb_ns = format!("kaas-ws-{}", short(&by_lb));
    let mut last: Value = Value::Null;
    let mut states: Vec<String> = Vec::new();
    h.until(
        "the loadbalancer workspace served by the ingress",
        async || {
            let r = h
                .app()
                .call(
                    "POST",
                    &format!("/workspaces/{by_lb}/kubeconfig"),
                    &a,
                    Some(json!({})),
                )
                .await;
            let w = h
                .app()
                .call("GET", &format!("/workspaces/{by_lb}"), &a, None)
                .await
                .body;
            let seen = format!("{}: {}", w["state"], w["message"]);
            if !states.contains(&seen) {
                states.push(seen);
            }
            let svc = h.get("", "services", Some(&lb_ns), "kaas-api").await;
            let server = r.body["server"].as_str().unwrap_or_default().to_string();
            last = json!({"status": r.status.as_u16(), "server": server,
            "service": svc.map(|s| s["spec"]["type"].clone())});
            let kc = dir.path().join("moved.kubeconfig");
            std::fs::write(&kc, r.body["kubeconfig"].as_str().unwrap_or_default()).unwrap();
            server == format!("https://{moved}:{ingress_port}")
                && whoami(&kc, &["--server", &entry, "--tls-server-name", &moved])
                    .await
                    .as_deref()
                    == Ok("ada@example.com")
        },
    )
    .await;
    assert_eq!(last["service"], "ClusterIP", "{last}");
    // What the workspace went through (K3K may report a transient StatefulSet conflict
    // while its servers restart for the new name; that is K3K's, not the mode change's).
    eprintln!("states during the mode change: {states:?}");
    ready(&h, &a, &by_lb).await;
    // The load balancer address is released.
    assert_eq!(load_balancer_ip(&h, &by_lb).await, None);
}

/// What both hosts refuse of a Traefik route, by the same CRD schema: one without routes or
/// whose service has no port. What they take: the route kaas writes.
async fn routes_are_checked_alike<H: TestHost>(h: &H, name: &str) {
    let route = |spec: Value| {
        json!({"apiVersion": "traefik.io/v1alpha1", "kind": "IngressRouteTCP",
            "metadata": {"name": name}, "spec": spec})
    };
    for (spec, says) in [
        (json!({"entryPoints": ["websecure"]}), "routes"),
        (
            json!({"routes": [{"match": "HostSNI(`a.kaas.test`)", "services": [{"name": "kaas-api"}]}]}),
            "port",
        ),
    ] {
        let err = h
            .create(
                "traefik.io",
                "ingressroutetcps",
                Some("default"),
                route(spec),
            )
            .await
            .expect_err("refused");
        assert!(
            err.contains("422") && err.contains(says),
            "{}: {err}",
            H::NAME
        );
    }
    let good = json!({"entryPoints": ["websecure"], "tls": {"passthrough": true},
        "routes": [{"match": "HostSNI(`a.kaas.test`)", "services": [{"name": "kaas-api", "port": 443}]}]});
    h.create(
        "traefik.io",
        "ingressroutetcps",
        Some("default"),
        route(good),
    )
    .await
    .unwrap_or_else(|e| panic!("{}: {e}", H::NAME));
    h.delete("traefik.io", "ingressroutetcps", Some("default"), name)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_routes_are_refused_alike_on_realhost() {
    let h = RealHostedApp::start().await;
    routes_are_checked_alike(&h, &format!("route-{}", crate::realhost::unique())).await;
}

#[tokio::test]
async fn ingress_routes_are_refused_alike_on_fakehost() {
    let h = HostedApp::start().await;
    routes_are_checked_alike(&h, "route").await;
}

#[tokio::test]
async fn a_plan_shows_its_expose_mode_and_refuses_an_unknown_one() {
    let app = TestApp::new();
    let root = bearer(&app.user("root@example.com", true).await.1);
    let p = app.call("GET", "/plans/starter", &root, None).await.body;
    assert_eq!(p["expose"], "nodeport");
    let mut bad = p.clone();
    bad["id"] = json!("hostport");
    bad["expose"] = json!("hostport");
    let r = app.call("POST", "/plans", &root, Some(bad)).await;
    assert!(r.status.is_client_error(), "{:?}", r.body);
    let said = r.body["error"].to_string();
    assert!(
        said.contains("expose") || said.contains("hostport"),
        "{said}"
    );
    assert_eq!(
        app.call("GET", "/plans/hostport", &root, None)
            .await
            .status
            .as_u16(),
        404
    );
}

#[tokio::test]
async fn an_ingress_plan_needs_an_ingress_domain_and_nothing_changes_without_one() {
    let app = TestApp::with_settings(kaas::ops::Settings {
        ingress_available: false,
        ..Default::default()
    });
    let root = bearer(&app.user("root@example.com", true).await.1);
    let starter = app.call("GET", "/plans/starter", &root, None).await.body;
    let mut ingress = starter.clone();
    ingress["id"] = json!("edge");
    ingress["expose"] = json!("ingress");
    let r = app.call("POST", "/plans", &root, Some(ingress)).await;
    assert_eq!(r.status.as_u16(), 422, "{:?}", r.body);
    assert!(
        r.body["error"]
            .to_string()
            .contains("expose.ingress_domain"),
        "{:?}",
        r.body
    );
    let mut moved = starter.clone();
    moved["expose"] = json!("ingress");
    let r = app.call("PUT", "/plans/starter", &root, Some(moved)).await;
    assert_eq!(r.status.as_u16(), 422, "{:?}", r.body);
    assert_eq!(
        app.call("GET", "/plans/starter", &root, None).await.body["expose"],
        "nodeport",
        "the stored plan is unchanged"
    );
    assert_eq!(
        app.call("GET", "/plans/edge", &root, None)
            .await
            .status
            .as_u16(),
        404
    );
}
