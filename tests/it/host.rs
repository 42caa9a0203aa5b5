//! Workspaces on the host, end to end over real HTTPS against fakehost and its simulated
//! K3K: provisioning to Ready, what lands on the host, zero writes when in sync, plan
//! changes, drift repair, deletion (also with K3K down), faults and an absent host.

use std::time::{Duration, Instant};

use fakehost::{DeleteOptions, FaultPlan, InjectedError};
use serde_json::{Value, json};

use crate::support::*;

pub(crate) fn state(v: Option<&Value>) -> &str {
    v.and_then(|w| w["state"].as_str()).unwrap_or("")
}

pub(crate) async fn org_and_workspace(h: &HostedApp, plan: &str) -> (Auth, String, String) {
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
    let r = h
        .app
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

fn short(ws: &str) -> String {
    ws.trim_start_matches("ws_").to_string()
}

#[tokio::test]
async fn a_workspace_becomes_a_ready_virtual_cluster_and_is_deleted_cleanly() {
    let h = HostedApp::start().await;
    let (a, _, ws) = org_and_workspace(&h, "starter").await;
    let ready = h
        .wait_ws(&a, &ws, "Ready", |w| state(w) == "Ready")
        .await
        .unwrap();
    assert_eq!(ready["observed_phase"], "Ready");
    assert_eq!(ready["applied_generation"], 1);

    // What landed on the host.
    let s = short(&ws);
    let ns_name = format!("kaas-ws-{s}");
    let ns = h.get("", "namespaces", None, &ns_name).expect("namespace");
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
        .expect("policy");
    assert_eq!(vcp["spec"]["quota"]["hard"]["pods"], "50");
    let cluster = h
        .get("k3k.io", "clusters", Some(&ns_name), &format!("ws-{s}"))
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
    let quotas = h
        .host
        .engine()
        .list(
            &fakehost::ResourceRef::core("resourcequotas"),
            Some(&ns_name),
            &Default::default(),
        )
        .unwrap();
    assert_eq!(quotas.items.len(), 1);

    // A full resync of an in-sync workspace writes nothing (and, with the watch caches
    // synced, reads nothing from the host either).
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

    // Delete: Cluster, then policy and namespace, then the record.
    let r = h
        .app
        .call("DELETE", &format!("/workspaces/{ws}"), &a, None)
        .await;
    assert_eq!(r.status.as_u16(), 202);
    h.wait_ws(&a, &ws, "gone", |w| w.is_none()).await;
    assert!(
        h.get("", "namespaces", None, &ns_name)
            .is_none_or(|n| !n["metadata"]["deletionTimestamp"].is_null())
    );
    assert!(
        h.get(
            "k3k.io",
            "virtualclusterpolicies",
            None,
            &format!("kaas-ws-{s}")
        )
        .is_none()
    );
    assert!(
        h.get("k3k.io", "clusters", Some(&ns_name), &format!("ws-{s}"))
            .is_none()
    );
    let admin = h.app.user("root@example.com", true).await.1;
    let r = h
        .app
        .call(
            "GET",
            "/audit?action=workspace.deleted",
            &bearer(&admin),
            None,
        )
        .await;
    assert_eq!(r.body["items"][0]["target"], ws.as_str());
}

#[tokio::test]
async fn a_plan_change_rolls_out_the_new_quota() {
    let h = HostedApp::start().await;
    let (a, _, ws) = org_and_workspace(&h, "starter").await;
    h.wait_ws(&a, &ws, "Ready", |w| state(w) == "Ready").await;
    let r = h
        .app
        .call(
            "PATCH",
            &format!("/workspaces/{ws}"),
            &a,
            Some(json!({"plan": "standard"})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200);
    let ready = h
        .wait_ws(&a, &ws, "Ready on the new plan", |w| {
            state(w) == "Ready" && w.is_some_and(|w| w["applied_generation"] == 2)
        })
        .await
        .unwrap();
    assert_eq!(ready["plan_id"], "standard");
    let vcp = h
        .get(
            "k3k.io",
            "virtualclusterpolicies",
            None,
            &format!("kaas-ws-{}", short(&ws)),
        )
        .unwrap();
    assert_eq!(vcp["spec"]["quota"]["hard"]["pods"], "200");
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

#[tokio::test]
async fn errors_from_the_host_and_from_k3k_are_retried_and_shown() {
    let h = HostedApp::start().await;
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
async fn readyz_reports_the_host_connection() {
    let h = HostedApp::start().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = h
            .app
            .raw(
                axum::http::Request::get("/readyz")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await;
        if r.body["host"]["connected"] == true {
            let admin = h.app.user("root@example.com", true).await.1;
            let api = h.app.call("GET", "/host", &bearer(&admin), None).await;
            assert_eq!(
                api.body["connected"], true,
                "the API reports the host too: {:?}",
                api.body
            );
            assert_eq!(r.body["host"]["k3k_crds"], true);
            assert_eq!(r.body["host"]["version"], "v1.33.1+k3s1");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "host never reported connected: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
