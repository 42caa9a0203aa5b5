//! Workspaces on the host, end to end over real HTTPS against fakehost and its simulated
//! K3K: provisioning to Ready, what lands on the host, zero writes when in sync, plan
//! changes, drift repair, deletion (also with K3K down), faults and an absent host; a
//! project's quota and deletion inside the virtual cluster; a Cluster K3K refuses.

use std::time::{Duration, Instant};

use fakehost::{DeleteOptions, FaultPlan, InjectedError};
use serde_json::{Value, json};

use crate::realhost::RealHostedApp;
use crate::support::*;

pub(crate) fn state(v: Option<&Value>) -> &str {
    v.and_then(|w| w["state"].as_str()).unwrap_or("")
}

pub(crate) async fn org_and_workspace<H: TestHost>(h: &H, plan: &str) -> (Auth, String, String) {
    let (_, t) = h.app().user("ada@example.com", false).await;
    let a = bearer(&t);
    let org = h
        .app()
        .call("POST", "/orgs", &a, Some(json!({"name": "acme"})))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = h
        .app()
        .call(
            "POST",
            &format!("/orgs/{org}/workspaces"),
            &a,
            Some(json!({"name": "prod", "plan": plan})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 201, "{:?}", r.body);
    (a, org, r.body["id"].as_str().unwrap().to_string())
}

pub(crate) fn short(ws: &str) -> String {
    ws.trim_start_matches("ws_").to_string()
}

/// Deletes a workspace through the API and waits until kaas has removed it from the host
/// and the database (the Cluster through K3K's finalizer, then policy and namespace).
pub(crate) async fn delete_workspace<H: TestHost>(h: &H, a: &Auth, ws: &str) {
    let r = h
        .app()
        .call("DELETE", &format!("/workspaces/{ws}"), a, None)
        .await;
    assert_eq!(r.status.as_u16(), 202, "{:?}", r.body);
    h.wait_ws(a, ws, "the workspace gone", |w| w.is_none())
        .await;
}

/// The journey of a workspace, on either host: created → Ready → what lands on the host →
/// a project → a member's kubeconfig → kubectl inside the virtual cluster → deleted cleanly.
async fn workspace_journey<H: TestHost>(h: &H) {
    let (a, _, ws) = org_and_workspace(h, "starter").await;
    let ready = h
        .wait_ws(&a, &ws, "Ready", |w| state(w) == "Ready")
        .await
        .unwrap();
    assert_eq!(ready["observed_phase"], "Ready");
    assert_eq!(ready["applied_generation"], 1);

    // What landed on the host.
    let s = short(&ws);
    let ns_name = format!("kaas-ws-{s}");
    let ns = h
        .get("", "namespaces", None, &ns_name)
        .await
        .expect("namespace");
    assert_eq!(
        ns["metadata"]["labels"]["hexabase.ai/workspace-id"],
        ws.as_str()
    );
    assert_eq!(
        ns["metadata"]["labels"]["policy.k3k.io/policy-name"],
        format!("kaas-ws-{s}").as_str()
    );
    let whitelist =
        ns["metadata"]["annotations"]["scheduler.alpha.kubernetes.io/tolerationsWhitelist"]
            .as_str()
            .unwrap();
    assert!(
        !whitelist.contains("dedicated"),
        "a shared workspace admits no dedicated toleration: {whitelist}"
    );
    let vcp = h
        .get(
            "k3k.io",
            "virtualclusterpolicies",
            None,
            &format!("kaas-ws-{s}"),
        )
        .await
        .expect("policy");
    // The plan's 50 pods for tenants, plus K3K's own: its server, a node agent on every
    // node without a taint (none is dedicated here) and CoreDNS.
    let untainted = h
        .list("", "nodes", None)
        .await
        .iter()
        .filter(|n| n["spec"]["taints"].as_array().is_none_or(|t| t.is_empty()))
        .count();
    let pods = (50 + 1 + untainted + 1).to_string();
    assert_eq!(vcp["spec"]["quota"]["hard"]["pods"], pods.as_str());
    let cluster = h
        .get("k3k.io", "clusters", Some(&ns_name), &format!("ws-{s}"))
        .await
        .expect("cluster");
    assert_eq!(cluster["spec"]["mode"], "shared");
    assert_eq!(cluster["spec"]["version"], "v1.33.1-k3s1");
    assert_eq!(cluster["spec"]["tlsSANs"], json!(["127.0.0.1"]));
    let managers: Vec<&str> = cluster["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert!(managers.contains(&"kaas"), "{managers:?}");
    // The quota the policy carries is applied to the namespace by K3K.
    // Besides kaas's two priority-class quotas (`host::isolation`).
    let quotas: Vec<Value> = h
        .list("", "resourcequotas", Some(&ns_name))
        .await
        .into_iter()
        .filter(|q| {
            !q["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .starts_with("kaas-system-")
        })
        .collect();
    assert_eq!(quotas.len(), 1, "{quotas:?}");
    assert_eq!(
        quotas[0]["spec"]["hard"]["pods"],
        pods.as_str(),
        "{quotas:?}"
    );

    // A project becomes a namespace inside the virtual cluster, with its quota; a member's
    // kubeconfig reaches it with the real kubectl, as the member it names.
    let r = h
        .app()
        .call(
            "POST",
            &format!("/workspaces/{ws}/projects"),
            &a,
            Some(json!({"name": "web", "quota": {"cpu_millis": 1000, "memory_mib": 1024, "storage_gib": 5, "pods": 10}})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 201, "{:?}", r.body);
    let r = h
        .app()
        .call(
            "POST",
            &format!("/workspaces/{ws}/kubeconfig"),
            &a,
            Some(json!({"lifetime_hours": 2})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.body);
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("ada.kubeconfig");
    std::fs::write(&kc, r.body["kubeconfig"].as_str().unwrap()).unwrap();
    let quota_args = [
        "get",
        "resourcequota",
        "-n",
        "web",
        "-o",
        "jsonpath={.items[*].spec.hard.pods}",
    ];
    h.until(
        "the project's quota inside the virtual cluster",
        async || kubectl(&kc, &quota_args).await == (true, "10".to_string()),
    )
    .await;
    let (ok, out) = kubectl(
        &kc,
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    )
    .await;
    assert!(ok && out == "ada@example.com", "{out}");

    // Delete: Cluster, then policy and namespace, then the record.
    delete_workspace(h, &a, &ws).await;
    assert!(
        h.get("", "namespaces", None, &ns_name)
            .await
            .is_none_or(|n| !n["metadata"]["deletionTimestamp"].is_null())
    );
    assert!(
        h.get(
            "k3k.io",
            "virtualclusterpolicies",
            None,
            &format!("kaas-ws-{s}")
        )
        .await
        .is_none()
    );
    assert!(
        h.get("k3k.io", "clusters", Some(&ns_name), &format!("ws-{s}"))
            .await
            .is_none()
    );
    // The certificate outlives the cluster, but nothing answers it any more.
    let (ok, out) = kubectl(&kc, &["get", "namespaces", "--request-timeout=5s"]).await;
    assert!(!ok, "the deleted virtual cluster still answers: {out}");
    let admin = h.app().user("root@example.com", true).await.1;
    let r = h
        .app()
        .call(
            "GET",
            "/audit?action=workspace.deleted",
            &bearer(&admin),
            None,
        )
        .await;
    assert_eq!(r.body["items"][0]["target"], ws.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_becomes_a_ready_virtual_cluster_and_is_deleted_cleanly_on_fakehost() {
    workspace_journey(&HostedApp::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_becomes_a_ready_virtual_cluster_and_is_deleted_cleanly_on_realhost() {
    workspace_journey(&RealHostedApp::start().await).await;
}

#[tokio::test]
async fn a_resync_of_an_in_sync_workspace_writes_nothing() {
    let h = HostedApp::start().await;
    let (a, _, ws) = org_and_workspace(&h, "starter").await;
    h.wait_ws(&a, &ws, "Ready", |w| state(w) == "Ready").await;
    // With the watch caches synced, a full resync reads nothing from the host either.
    h.settle().await;
    h.host.reset_request_counts();
    let passes = h.reconciler.stats().passes;
    h.reconciler.resync();
    tokio::time::sleep(Duration::from_millis(100)).await;
    h.settle().await;
    let counts = h.host.request_counts();
    assert_eq!(counts.writes(), 0, "in-sync resync wrote: {counts:?}");
    assert!(
        h.reconciler.stats().passes > passes,
        "the resync ran a pass"
    );
}

#[tokio::test]
async fn a_plan_change_rolls_out_the_new_quota() {
    let h = HostedApp::start().await;
    let (a, _, ws) = org_and_workspace(&h, "starter").await;
    h.wait_ws(&a, &ws, "Ready", |w| state(w) == "Ready").await;
    // Standard's quota with starter's server storage, which the cluster keeps.
    let mut bigger = h.app.ops().get_plan(&shell(), "standard").unwrap();
    bigger.id = "bigger".into();
    bigger.storage_gib = kaas::domain::plan::DEFAULT_SERVER_STORAGE_GIB;
    h.app.ops().create_plan(&shell(), bigger).unwrap();
    let r = h
        .app
        .call(
            "PATCH",
            &format!("/workspaces/{ws}"),
            &a,
            Some(json!({"plan": "bigger"})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.body);
    let ready = h
        .wait_ws(&a, &ws, "Ready on the new plan", |w| {
            state(w) == "Ready" && w.is_some_and(|w| w["applied_generation"] == 2)
        })
        .await
        .unwrap();
    assert_eq!(ready["plan_id"], "bigger");
    let vcp = h
        .get(
            "k3k.io",
            "virtualclusterpolicies",
            None,
            &format!("kaas-ws-{}", short(&ws)),
        )
        .unwrap();
    // Standard's 200 pods for tenants, plus K3K's own: a server, an agent per untainted
    // node and CoreDNS.
    let untainted = h
        .list("", "nodes", None)
        .await
        .iter()
        .filter(|n| n["spec"]["taints"].as_array().is_none_or(|t| t.is_empty()))
        .count();
    assert_eq!(
        vcp["spec"]["quota"]["hard"]["pods"],
        (200 + 1 + untainted + 1).to_string().as_str()
    );
}

/// What a workspace's Cluster is told to trust: its `serverArgs`, and the CA in the
/// `AuthenticationConfiguration` that the `kaas-oidc` Secret holds under the key they name.
async fn trusted_issuer<H: TestHost>(h: &H, ws: &str) -> (Value, String) {
    use base64::Engine;
    let s = short(ws);
    let ns = format!("kaas-ws-{s}");
    let cluster = h
        .get("k3k.io", "clusters", Some(&ns), &format!("ws-{s}"))
        .await
        .unwrap();
    let args = cluster["spec"]["serverArgs"].clone();
    let arg = args[0].as_str().unwrap_or_default();
    let key = arg
        .strip_prefix("--kube-apiserver-arg=authentication-config=/etc/kaas/oidc/")
        .unwrap_or_else(|| panic!("{args}"));
    let secret = h.get("", "secrets", Some(&ns), "kaas-oidc").await.unwrap();
    let data = secret["data"].as_object().unwrap();
    assert_eq!(data.keys().collect::<Vec<_>>(), vec![key], "{secret}");
    let file = base64::engine::general_purpose::STANDARD
        .decode(data[key].as_str().unwrap())
        .unwrap();
    let config: Value = serde_yaml::from_slice(&file).unwrap();
    let ca = config["jwt"][0]["issuer"]["certificateAuthority"]
        .as_str()
        .unwrap_or_else(|| panic!("{config}"))
        .to_string();
    (args, ca)
}

/// A CA for kaas's issuer: the certificate kaas serves, renewed.
fn issuer_ca() -> String {
    rcgen::generate_simple_self_signed(vec!["kaas.test".into()])
        .unwrap()
        .cert
        .pem()
}

/// The issuer the virtual clusters trust, with `ca`.
fn issuer_with(ca: &str) -> Option<kaas::host::oidc::ClusterIssuer> {
    kaas::host::oidc::ClusterIssuer::usable("https://kaas.test", Some(ca.to_string()))
}

/// Issue 17: the issuer's configuration changes for an existing, Ready workspace (its CA,
/// as when kaas's certificate is renewed; kaas restarts with it, `restart`): the Secret gets
/// the new configuration under a new key, the Cluster's `serverArgs` name it, and the
/// workspace rolls out (Updating) back to Ready, as on a plan change.
async fn an_issuer_change_rolls_out<H: TestHost>(
    h: &mut H,
    first: &str,
    restart: impl FnOnce(&mut H, Option<kaas::host::oidc::ClusterIssuer>),
) {
    let (a, _, ws) = org_and_workspace(&*h, "starter").await;
    h.wait_ws(&a, &ws, "Ready", |w| state(w) == "Ready").await;
    h.settle().await;
    let (args, ca) = trusted_issuer(&*h, &ws).await;
    assert_eq!(ca, first);
    let second = issuer_ca();
    restart(h, issuer_with(&second));
    let h = &*h;
    h.wait_ws(&a, &ws, "the rollout", |w| state(w) == "Updating")
        .await;
    let (new_args, new_ca) = trusted_issuer(h, &ws).await;
    assert_eq!(new_ca, second);
    assert_ne!(new_args, args, "the servers are not restarted");
    let ready = h
        .wait_ws(&a, &ws, "Ready after the rollout", |w| state(w) == "Ready")
        .await
        .unwrap();
    assert_eq!(ready["plan_id"], "starter");
    assert_eq!(ready["applied_generation"], 1);
    h.settle().await;
    assert_eq!(trusted_issuer(h, &ws).await, (new_args, second));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuer_change_rolls_out_to_an_existing_workspace() {
    let first = issuer_ca();
    let mut h = HostedApp::start_with(|s| s.host.issuer = issuer_with(&first)).await;
    an_issuer_change_rolls_out(&mut h, &first, |h, issuer| {
        h.reconciler.stop();
        let mut settings = reconciler_settings();
        settings.host.issuer = issuer;
        let kubeconfig = h._dir.path().join("host.kubeconfig");
        h.reconciler = attach_host(&mut h.app, kubeconfig, settings);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuer_change_rolls_out_to_an_existing_workspace_on_realhost() {
    let first = issuer_ca();
    let host = crate::realhost::RealHost::connect().await;
    let mut h = RealHostedApp::on_with(host, |s| s.host.issuer = issuer_with(&first));
    an_issuer_change_rolls_out(&mut h, &first, |h, issuer| {
        h.reconciler.stop();
        let mut settings = RealHostedApp::settings();
        settings.host.issuer = issuer;
        h.reconciler = attach_host(&mut h.app, h.kaas_kubeconfig.clone(), settings);
    })
    .await;
}

#[tokio::test]
async fn objects_changed_or_deleted_by_hand_are_put_back() {
    let h = HostedApp::start().await;
    let (a, _, ws) = org_and_workspace(&h, "starter").await;
    h.wait_ws(&a, &ws, "Ready", |w| state(w) == "Ready").await;
    h.settle().await;
    let s = short(&ws);
    let vcp_ref = fakehost::ResourceRef::new("k3k.io", "virtualclusterpolicies");
    h.host
        .engine()
        .delete(
            &vcp_ref,
            None,
            &format!("kaas-ws-{s}"),
            &DeleteOptions::default(),
        )
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while h
        .get(
            "k3k.io",
            "virtualclusterpolicies",
            None,
            &format!("kaas-ws-{s}"),
        )
        .is_none()
    {
        assert!(
            Instant::now() < deadline,
            "the deleted policy was not restored"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A field kaas owns edited by hand (through the API, as a person would) is restored.
    let cl_ref = fakehost::ResourceRef::new("k3k.io", "clusters");
    let body = json!({"spec": {"version": "v1.30.0-k3s1"}}).to_string();
    let patch = fakehost::PatchRequest {
        patch_type: fakehost::PatchType::Merge,
        body: body.as_bytes(),
        status_subresource: false,
    };
    h.host
        .engine()
        .patch(
            &cl_ref,
            Some(&format!("kaas-ws-{s}")),
            &format!("ws-{s}"),
            &patch,
            &Default::default(),
        )
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let c = h
            .get(
                "k3k.io",
                "clusters",
                Some(&format!("kaas-ws-{s}")),
                &format!("ws-{s}"),
            )
            .unwrap();
        if c["spec"]["version"] == "v1.33.1-k3s1" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the edited version was not restored"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_deletion_stuck_on_k3k_says_so_and_finishes_when_k3k_is_back() {
    let h = HostedApp::start().await;
    let (a, _, ws) = org_and_workspace(&h, "starter").await;
    h.wait_ws(&a, &ws, "Ready", |w| state(w) == "Ready").await;
    h.k3k.set_down(true);
    h.app
        .call("DELETE", &format!("/workspaces/{ws}"), &a, None)
        .await;
    let stuck = h
        .wait_ws(&a, &ws, "a stuck message", |w| {
            w.is_some_and(|w| w["message"].as_str().unwrap_or("").contains("stuck"))
        })
        .await
        .unwrap();
    assert_eq!(stuck["state"], "Deleting");
    assert!(
        stuck["message"]
            .as_str()
            .unwrap()
            .contains("K3K controller"),
        "{stuck}"
    );
    h.k3k.set_down(false);
    h.wait_ws(&a, &ws, "gone", |w| w.is_none()).await;
}

/// `kaas_reconcile_errors_total{kind}` as `/metrics` shows it.
async fn reconcile_errors(app: &TestApp, kind: &str) -> u64 {
    let r = app
        .raw(
            axum::http::Request::get("/metrics")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    let series = format!("kaas_reconcile_errors_total{{kind=\"{kind}\"}} ");
    let text = r.body.as_str().unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(series.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{series}missing from /metrics: {text}"))
}

#[tokio::test]
async fn errors_from_the_host_and_from_k3k_are_retried_and_shown() {
    let h = HostedApp::start().await;
    let before = reconcile_errors(&h.app, "unavailable").await;
    // A fifth of the requests fail with a 500: provisioning still gets there.
    h.host.set_fault_plan(Some(FaultPlan::Ratio {
        ratio: 0.2,
        seed: 7,
        error: InjectedError::Internal,
    }));
    let (a, org, ws) = org_and_workspace(&h, "starter").await;
    h.wait_ws(&a, &ws, "Ready despite faults", |w| state(w) == "Ready")
        .await;
    h.host.set_fault_plan(None);
    // The failed passes are counted by kind: a 500 is the host being unavailable.
    assert!(
        reconcile_errors(&h.app, "unavailable").await > before,
        "500s from the host counted as kind=\"unavailable\""
    );

    // Throttling (429 with Retry-After) is waited out, not treated as fatal.
    h.host.set_fault_plan(Some(FaultPlan::Ratio {
        ratio: 0.3,
        seed: 11,
        error: InjectedError::TooManyRequests {
            retry_after_seconds: 0,
        },
    }));
    let r = h
        .app
        .call(
            "POST",
            &format!("/orgs/{org}/workspaces"),
            &a,
            Some(json!({"name": "throttled", "plan": "starter"})),
        )
        .await;
    let ws3 = r.body["id"].as_str().unwrap().to_string();
    h.wait_ws(&a, &ws3, "Ready despite 429s", |w| state(w) == "Ready")
        .await;
    h.host.set_fault_plan(None);

    // K3K refusing the spec shows its message; fixing it recovers.
    h.k3k.fail_next_provisions(1);
    let r = h
        .app
        .call(
            "POST",
            &format!("/orgs/{org}/workspaces"),
            &a,
            Some(json!({"name": "second", "plan": "starter"})),
        )
        .await;
    let ws2 = r.body["id"].as_str().unwrap().to_string();
    let err = h
        .wait_ws(&a, &ws2, "Error from K3K", |w| state(w) == "Error")
        .await
        .unwrap();
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("K3K could not provision"),
        "{err}"
    );
    h.k3k.clear_provisioning_faults();
    h.wait_ws(&a, &ws2, "Ready after the fault clears", |w| {
        state(w) == "Ready"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projects_quota_change_and_deletion_reach_the_virtual_cluster() {
    let h = HostedApp::start().await;
    let (a, _, ws) = org_and_workspace(&h, "starter").await;
    h.wait_ws(&a, &ws, "Ready", |w| state(w) == "Ready").await;
    let r = h
        .app
        .call(
            "POST",
            &format!("/workspaces/{ws}/projects"),
            &a,
            Some(json!({"name": "web", "quota": {"cpu_millis": 1000, "memory_mib": 1024, "storage_gib": 5, "pods": 10}})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 201, "{:?}", r.body);
    let project = r.body["id"].as_str().unwrap().to_string();
    let r = h
        .app
        .call(
            "POST",
            &format!("/workspaces/{ws}/kubeconfig"),
            &a,
            Some(json!({"lifetime_hours": 1})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.body);
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("ada.kubeconfig");
    std::fs::write(&kc, r.body["kubeconfig"].as_str().unwrap()).unwrap();
    // What the owner's kubectl shows of the project's ResourceQuota: its pods and CPU.
    let quota = async || {
        kubectl(
            &kc,
            &[
                "get",
                "resourcequota",
                "-n",
                "web",
                "-o",
                "jsonpath={.items[*].spec.hard.pods} {.items[*].spec.hard.requests\\.cpu}",
            ],
        )
        .await
    };
    h.until("the project's quota in the virtual cluster", async || {
        quota().await == (true, "10 1".to_string())
    })
    .await;

    // A smaller quota replaces it; no quota of its own removes it.
    let r = h
        .app
        .call(
            "PATCH",
            &format!("/projects/{project}"),
            &a,
            Some(json!({"quota": {"cpu_millis": 500, "memory_mib": 512, "storage_gib": 1, "pods": 4}})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.body);
    h.until("the new quota in the virtual cluster", async || {
        quota().await == (true, "4 500m".to_string())
    })
    .await;
    let r = h
        .app
        .call(
            "PATCH",
            &format!("/projects/{project}"),
            &a,
            Some(json!({"quota": null})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.body);
    h.until("the project's quota removed", async || {
        quota().await == (true, String::new())
    })
    .await;

    // Deleting the project removes its namespace inside the virtual cluster.
    let r = h
        .app
        .call("DELETE", &format!("/projects/{project}"), &a, None)
        .await;
    assert_eq!(r.status.as_u16(), 204, "{:?}", r.body);
    let s = short(&ws);
    let vc = h
        .k3k
        .vcluster(&format!("kaas-ws-{s}"), &format!("ws-{s}"))
        .expect("the virtual cluster runs");
    h.until("the project's namespace gone", async || {
        vc.engine()
            .get(&fakehost::ResourceRef::core("namespaces"), None, "web")
            .is_err()
    })
    .await;
    // Nothing of it is left to the owner's kubectl (its role binding went with it).
    let (ok, out) = kubectl(&kc, &["get", "resourcequota", "-n", "web"]).await;
    assert!(!ok && out.contains("forbidden"), "{out}");
}

#[tokio::test]
async fn a_cluster_spec_k3k_refuses_shows_error_with_k3ks_reason_until_it_accepts() {
    let h = HostedApp::start().await;
    // K3K is held until it has been told to refuse the workspace's Cluster, whose name kaas
    // derives from the workspace id.
    h.hold_k3k(true).await;
    let (a, _, ws) = org_and_workspace(&h, "starter").await;
    let s = short(&ws);
    let (ns, cluster) = (format!("kaas-ws-{s}"), format!("ws-{s}"));
    h.k3k
        .set_invalid(&ns, &cluster, Some("spec.tlsSANs: not allowed here"));
    h.hold_k3k(false).await;
    let refused = h
        .wait_ws(&a, &ws, "Error from K3K's validation", |w| {
            state(w) == "Error"
        })
        .await
        .unwrap();
    assert_eq!(
        refused["message"],
        "K3K refused the cluster: cluster validation error: spec.tlsSANs: not allowed here",
        "{refused}"
    );
    assert_eq!(refused["observed_phase"], "Pending", "{refused}");
    assert_eq!(refused["applied_generation"], 0, "{refused}");
    // No kubeconfig for a cluster that does not exist.
    let r = h
        .app
        .call(
            "POST",
            &format!("/workspaces/{ws}/kubeconfig"),
            &a,
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 409, "{:?}", r.body);

    // K3K accepts it again (a fixed policy, say): kaas, still watching, sees it Ready.
    h.k3k.set_invalid(&ns, &cluster, None);
    let ready = h
        .wait_ws(&a, &ws, "Ready once K3K accepts", |w| state(w) == "Ready")
        .await
        .unwrap();
    assert_eq!(ready["applied_generation"], 1, "{ready}");
}

#[tokio::test]
async fn a_paused_host_delays_provisioning_which_resumes_by_itself() {
    let h = HostedApp::start().await;
    let (_, t) = h.app.user("ada@example.com", false).await;
    let a = bearer(&t);
    let org = h
        .app
        .call("POST", "/orgs", &a, Some(json!({"name": "acme"})))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Let the first probe connect, then take the host away.
    tokio::time::sleep(Duration::from_millis(300)).await;
    h.host.pause();
    let r = h
        .app
        .call(
            "POST",
            &format!("/orgs/{org}/workspaces"),
            &a,
            Some(json!({"name": "prod", "plan": "starter"})),
        )
        .await;
    let ws = r.body["id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let w = h
        .app
        .call("GET", &format!("/workspaces/{ws}"), &a, None)
        .await
        .body;
    assert_ne!(
        w["state"], "Ready",
        "nothing can be Ready while the host is paused"
    );
    // The API keeps answering while the host is away.
    assert_eq!(
        h.app.call("GET", "/orgs", &a, None).await.status.as_u16(),
        200
    );
    h.host.resume();
    h.wait_ws(&a, &ws, "Ready after the host is back", |w| {
        state(w) == "Ready"
    })
    .await;
}

#[tokio::test]
async fn the_admin_api_reports_the_host_connection_and_readyz_only_its_status() {
    let h = HostedApp::start().await;
    let admin = bearer(&h.app.user("root@example.com", true).await.1);
    let host = admin_host(&h, &admin, "the host connected", |host| {
        host["connected"] == true
    })
    .await;
    assert_eq!(host["k3k_crds"], true);
    assert_eq!(host["version"], "v1.33.1+k3s1");
    // Without credentials: status only, nothing the administrators' view keeps for them.
    let r = h
        .app
        .raw(
            axum::http::Request::get("/readyz")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200);
    assert_eq!(r.body, json!({"status": "ready"}));
    let r = h.app.call("GET", "/host", &Auth::None, None).await;
    assert_eq!(r.status.as_u16(), 401, "{:?}", r.body);
}

/// `/api/v1/host` (platform administrators) once kaas has probed the host.
async fn admin_host<H: TestHost>(
    h: &H,
    admin: &Auth,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    h.until(what, async || {
        last = h.app().call("GET", "/host", admin, None).await.body;
        done(&last)
    })
    .await;
    last
}

#[tokio::test]
async fn the_admin_api_reports_the_host_connection_on_realhost() {
    let h = RealHostedApp::start().await;
    let admin = bearer(&h.app().user("root@example.com", true).await.1);
    let host = admin_host(&h, &admin, "the host connected", |host| {
        host["connected"] == true
    })
    .await;
    assert_eq!(host["k3k_crds"], true, "{host}");
    assert_eq!(host["version"], "v1.35.4", "{host}");
    assert!(host["last_error"].is_null(), "{host}");
}

#[tokio::test]
async fn a_host_enforcing_the_admission_plugin_is_reported_on_realhost() {
    let h = RealHostedApp::start().await;
    let admin = bearer(&h.app().user("root@example.com", true).await.1);
    admin_host(&h, &admin, "the host connected", |host| {
        host["connected"] == true
    })
    .await;
    // realhost runs with --pod-toleration-restriction, as kaas's installer sets K3s up. kaas
    // checks on first contact, and again on every probe (10 s) until it has an answer.
    let deadline = Instant::now() + Duration::from_secs(25);
    let host = loop {
        let host = admin_host(&h, &admin, "the host connected", |host| {
            host["connected"] == true
        })
        .await;
        if !host["pod_toleration_restriction"].is_null() || Instant::now() > deadline {
            break host;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(host["pod_toleration_restriction"], true, "{host}");
    assert_eq!(host["warnings"], json!([]), "{host}");
}
