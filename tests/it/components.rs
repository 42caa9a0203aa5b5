//! Proof that realhost's components are the real ones, each doing what a lenient fake could
//! get wrong: the kube-apiserver's PodTolerationRestriction (and DefaultTolerationSeconds)
//! admission, the controller-manager's DaemonSet controller with the scheduler's taint
//! filtering, the K3K controller building a kaas workspace's Cluster, and RBAC's escalation
//! check inside a virtual cluster. Against realhost (the escalation journey also against
//! fakehost, which does not pass it yet).

use serde_json::{Value, json};

use crate::host::{org_and_workspace, short, state};
use crate::realhost::{RealHost, RealHostedApp, describe, unique};
use crate::support::*;

const WHITELIST: &str = "scheduler.alpha.kubernetes.io/tolerationsWhitelist";
const DEFAULTS: &str = "scheduler.alpha.kubernetes.io/defaultTolerations";
/// The refusal of the PodTolerationRestriction plugin (plugin/pkg/admission/podtolerationrestriction).
const CONFLICT: &str = "pod tolerations (possibly merged with namespace default tolerations) conflict with its namespace whitelist";
/// The plugin refuses with a plain Go error, not an API status, so the API server answers
/// 500 (reason Unknown) with the bare message: not 403, and no `pods "x" is forbidden:`
/// prefix. Whoever tells a whitelist refusal from other errors must go by the message.
const REFUSED_WITH: u16 = 500;

fn pod(name: &str, tolerations: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}], "tolerations": tolerations}})
}

async fn namespace(host: &RealHost, name: &str, annotations: Value) {
    host.create(
        "",
        "namespaces",
        None,
        &json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": name, "annotations": annotations}}),
    )
    .await
    .unwrap_or_else(|e| panic!("namespace {name}: {}", describe(&e)));
}

fn refusal(result: Result<Value, kube::Error>) -> (u16, String) {
    match result {
        Err(kube::Error::Api(s)) => (s.code, s.message.clone()),
        Err(e) => panic!("not an API refusal: {e}"),
        Ok(v) => panic!("admitted: {v}"),
    }
}

fn toleration_keys(pod: &Value) -> Vec<String> {
    pod["spec"]["tolerations"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .map(|t| {
                    format!(
                        "{}:{}",
                        t["key"].as_str().unwrap_or(""),
                        t["effect"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn pod_toleration_restriction_refuses_tolerations_outside_the_whitelist() {
    let host = RealHost::connect().await;
    let dedicated = json!({"operator": "Exists", "effect": "NoSchedule", "key": "dedicated"});
    let mine = json!([{"key": "dedicated", "operator": "Equal", "value": "pool-a", "effect": "NoSchedule"}]);

    // The whitelist is a JSON array of tolerations. One that admits only `dedicated` also
    // refuses the pod asking for just that: DefaultTolerationSeconds (which runs first) has
    // added `not-ready` and `unreachable` NoExecute tolerations the whitelist does not cover.
    let strict = format!("rh-tol-strict-{}", unique());
    namespace(
        &host,
        &strict,
        json!({WHITELIST: json!([dedicated]).to_string()}),
    )
    .await;
    let (code, message) = refusal(
        host.create("", "pods", Some(&strict), &pod("mine", mine.clone()))
            .await,
    );
    assert_eq!((code, message.as_str()), (REFUSED_WITH, CONFLICT));

    // A whitelist that admits what Kubernetes adds itself: `dedicated` is admitted (and the
    // namespace's default toleration merged in), any other key refused with the plugin's
    // message.
    let ns = format!("rh-tol-{}", unique());
    let whitelist = json!([
        dedicated,
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    ]);
    let defaults = json!([{"key": "dedicated", "operator": "Equal", "value": "pool-a", "effect": "NoSchedule"}]);
    namespace(
        &host,
        &ns,
        json!({WHITELIST: whitelist.to_string(), DEFAULTS: defaults.to_string()}),
    )
    .await;
    let admitted = host
        .create("", "pods", Some(&ns), &pod("mine", mine))
        .await
        .unwrap_or_else(|e| panic!("the whitelisted toleration was refused: {}", describe(&e)));
    let keys = toleration_keys(&admitted);
    assert!(
        keys.contains(&"dedicated:NoSchedule".to_string())
            && keys.contains(&"node.kubernetes.io/not-ready:NoExecute".to_string()),
        "{keys:?}"
    );
    let defaulted = host
        .create("", "pods", Some(&ns), &pod("plain", json!([])))
        .await
        .unwrap_or_else(|e| panic!("a pod without tolerations was refused: {}", describe(&e)));
    assert!(
        defaulted["spec"]["tolerations"]
            .as_array()
            .is_some_and(|ts| ts.iter().any(|t| t["value"] == "pool-a")),
        "the namespace's default toleration was merged: {}",
        defaulted["spec"]["tolerations"]
    );
    let (code, message) = refusal(
        host.create(
            "",
            "pods",
            Some(&ns),
            &pod(
                "thief",
                json!([{"key": "other", "operator": "Exists", "effect": "NoSchedule"}]),
            ),
        )
        .await,
    );
    assert_eq!((code, message.as_str()), (REFUSED_WITH, CONFLICT));
    assert!(
        host.get("", "pods", Some(&ns), "thief").await.is_none(),
        "the refused pod was not stored"
    );
    for n in [&strict, &ns] {
        host.delete("", "namespaces", None, n).await;
    }
}

fn taints(node: &Value) -> Vec<Value> {
    node["spec"]["taints"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn a_daemonset_lands_only_on_labelled_untainted_nodes() {
    let host = RealHost::connect().await;
    let suffix = unique();
    let label = format!("realhost.test/ds-{suffix}");
    let (chosen, tainted) = ("realhost-node-2", "realhost-node-3");
    for node in [chosen, tainted] {
        host.merge_patch(
            "",
            "nodes",
            None,
            node,
            &json!({"metadata": {"labels": {label.as_str(): "yes"}}}),
        )
        .await
        .unwrap_or_else(|e| panic!("labelling {node}: {}", describe(&e)));
    }
    let node3 = host.get("", "nodes", None, tainted).await.expect("node 3");
    let mut with_taint = taints(&node3);
    with_taint.push(json!({"key": label, "value": "yes", "effect": "NoSchedule"}));
    host.merge_patch(
        "",
        "nodes",
        None,
        tainted,
        &json!({"spec": {"taints": with_taint}}),
    )
    .await
    .unwrap_or_else(|e| panic!("tainting {tainted}: {}", describe(&e)));

    let ns = format!("rh-ds-{suffix}");
    namespace(&host, &ns, json!({})).await;
    let ds = json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}},
                "spec": {"nodeSelector": {label.as_str(): "yes"},
                    "containers": [{"name": "agent", "image": "busybox:1.36"}]}}}
    });
    host.create("apps", "daemonsets", Some(&ns), &ds)
        .await
        .unwrap_or_else(|e| panic!("daemonset: {}", describe(&e)));

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let (pods, status) = loop {
        let pods = host.list("", "pods", Some(&ns)).await;
        let status = host
            .get("apps", "daemonsets", Some(&ns), "agent")
            .await
            .map(|d| d["status"].clone())
            .unwrap_or_default();
        let running = pods.iter().any(|p| p["status"]["phase"] == "Running");
        if running && status["numberReady"] == 1 {
            break (pods, status);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no Running daemon pod: status {status}, pods {pods:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    // The controller counted one node: the tainted one is not a candidate at all.
    assert_eq!(status["desiredNumberScheduled"], 1, "{status}");
    assert_eq!(status["currentNumberScheduled"], 1, "{status}");
    assert_eq!(pods.len(), 1, "{pods:?}");
    assert_eq!(pods[0]["spec"]["nodeName"], chosen, "{}", pods[0]);
    assert_eq!(pods[0]["status"]["phase"], "Running");
    // The controller's own tolerations (node.kubernetes.io/…) do not include ours.
    let keys = toleration_keys(&pods[0]);
    assert!(
        keys.iter()
            .any(|k| k.starts_with("node.kubernetes.io/unschedulable")),
        "the real DaemonSet controller adds its tolerations: {keys:?}"
    );
    assert!(!keys.iter().any(|k| k.starts_with(&label)), "{keys:?}");

    host.delete("", "namespaces", None, &ns).await;
    let node3 = host.get("", "nodes", None, tainted).await.expect("node 3");
    let without: Vec<Value> = taints(&node3)
        .into_iter()
        .filter(|t| t["key"] != label.as_str())
        .collect();
    let _ = host
        .merge_patch(
            "",
            "nodes",
            None,
            tainted,
            &json!({"spec": {"taints": without}}),
        )
        .await;
    for node in [chosen, tainted] {
        let _ = host
            .merge_patch(
                "",
                "nodes",
                None,
                node,
                &json!({"metadata": {"labels": {label.as_str(): null}}}),
            )
            .await;
    }
}

/// Whether `obj` is controlled by the K3K Cluster `cluster` and was written by someone else
/// than kaas.
fn made_by_k3k(obj: &Value, cluster: &str) -> Result<(), String> {
    let owned = obj["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| {
            refs.iter().any(|r| {
                r["kind"] == "Cluster"
                    && r["name"] == cluster
                    && r["apiVersion"]
                        .as_str()
                        .is_some_and(|v| v.starts_with("k3k.io/"))
            })
        });
    let managers: Vec<&str> = obj["metadata"]["managedFields"]
        .as_array()
        .map(|m| m.iter().filter_map(|e| e["manager"].as_str()).collect())
        .unwrap_or_default();
    if !owned {
        return Err(format!(
            "not owned by Cluster {cluster}: {}",
            obj["metadata"]["ownerReferences"]
        ));
    }
    if managers.is_empty() || managers.contains(&"kaas") {
        return Err(format!("managers {managers:?}"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_k3k_controller_builds_a_workspace_cluster() {
    let h = RealHostedApp::start().await;
    let (a, _, ws) = org_and_workspace(&h, "starter").await;
    h.wait_ws(&a, &ws, "Ready", |w| state(w) == "Ready").await;
    let s = short(&ws);
    let ns = format!("kaas-ws-{s}");
    let name = format!("ws-{s}");

    let cluster = h
        .host
        .get("k3k.io", "clusters", Some(&ns), &name)
        .await
        .expect("cluster");
    assert_eq!(cluster["spec"]["mode"], "shared");
    assert_eq!(cluster["status"]["phase"], "Ready", "{}", cluster["status"]);
    let ready = cluster["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(ready["status"], "True", "{}", cluster["status"]);
    // K3K copies the host's version: the real kube-apiserver's.
    assert!(
        cluster["status"]["hostVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("v1.35")),
        "{}",
        cluster["status"]
    );
    // The status was written through the status subresource by K3K, not by kaas.
    let status_writers: Vec<&str> = cluster["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields")
        .iter()
        .filter(|m| m["subresource"] == "status")
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert!(
        !status_writers.is_empty() && !status_writers.contains(&"kaas"),
        "status writers: {status_writers:?}"
    );

    for (group, resource, object) in [
        ("", "services", format!("k3k-{name}-service")),
        ("apps", "statefulsets", format!("k3k-{name}-server")),
        ("apps", "daemonsets", format!("k3k-{name}-kubelet")),
    ] {
        let obj = h
            .host
            .get(group, resource, Some(&ns), &object)
            .await
            .unwrap_or_else(|| panic!("K3K made no {resource}/{object}"));
        if let Err(why) = made_by_k3k(&obj, &name) {
            panic!("{resource}/{object}: {why}");
        }
    }
    let service = h
        .host
        .get("", "services", Some(&ns), &format!("k3k-{name}-service"))
        .await
        .expect("service");
    // No `expose`: K3K's Service stays inside the host, with etcd's port for its own use;
    // kaas's own NodePort Service exposes the API server.
    assert_eq!(service["spec"]["type"], "ClusterIP", "{}", service["spec"]);
    let api = h
        .host
        .get("", "services", Some(&ns), "kaas-api")
        .await
        .expect("kaas's API service");
    assert_eq!(api["spec"]["type"], "NodePort", "{}", api["spec"]);
    let sts = h
        .host
        .get(
            "apps",
            "statefulsets",
            Some(&ns),
            &format!("k3k-{name}-server"),
        )
        .await
        .expect("statefulset");
    assert_eq!(sts["status"]["readyReplicas"], 1, "{}", sts["status"]);
    assert!(
        h.host
            .get("", "secrets", Some(&ns), &format!("k3k-{name}-bootstrap"))
            .await
            .is_some(),
        "K3K read the bootstrap data from the running server"
    );

    crate::host::delete_workspace(&h, &a, &ws).await;
}

/// A workspace admin binds what they hold, never cluster-admin, in their virtual cluster.
async fn escalation_journey<H: TestHost>(h: &H) {
    let (a, _, ws) = org_and_workspace(h, "starter").await;
    let (wanda_id, wanda) = h.app().user("wanda@example.com", false).await;
    // Wanda joins the organization as a member and is made workspace-admin.
    {
        let org: kaas::domain::OrgId = h
            .app()
            .call("GET", &format!("/workspaces/{ws}"), &a, None)
            .await
            .body["org_id"]
            .as_str()
            .expect("org_id")
            .parse()
            .expect("org id");
        let now = h.app().ops().now();
        let tx = h.app().ops().store.write().expect("write");
        kaas::store::records::put_member(
            &tx,
            &kaas::domain::Membership {
                org_id: org,
                user_id: wanda_id,
                role: kaas::domain::OrgRole::Member,
                joined_at: now,
            },
        )
        .expect("membership");
        tx.commit().expect("commit");
    }
    let r = h
        .app()
        .call(
            "PUT",
            &format!("/workspaces/{ws}/members/{wanda_id}"),
            &a,
            Some(json!({"role": "workspace-admin"})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.body);
    let r = h
        .app()
        .call(
            "POST",
            &format!("/workspaces/{ws}/projects"),
            &a,
            Some(json!({"name": "web"})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 201, "{:?}", r.body);
    h.wait_ws(&a, &ws, "Ready", |w| state(w) == "Ready").await;
    h.settle().await;
    let r = h
        .app()
        .call(
            "POST",
            &format!("/workspaces/{ws}/kubeconfig"),
            &bearer(&wanda),
            Some(json!({"lifetime_hours": 1})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.body);
    let dir = tempfile::tempdir().expect("tempdir");
    let kc = dir.path().join("wanda.kubeconfig");
    std::fs::write(&kc, r.body["kubeconfig"].as_str().expect("kubeconfig")).expect("write");

    // What a workspace admin may do: bind roles whose permissions they hold.
    h.until("wanda's workspace-admin binding in web", async || {
        kubectl(
            &kc,
            &[
                "create",
                "rolebinding",
                "readers",
                "-n",
                "web",
                "--clusterrole=view",
                "--user=reader@example.com",
            ],
        )
        .await
        .0
    })
    .await;
    // Not cluster-admin: a ClusterRoleBinding is refused outright …
    let (ok, out) = kubectl(
        &kc,
        &[
            "create",
            "clusterrolebinding",
            "wanda-root",
            "--clusterrole=cluster-admin",
            "--user=wanda@example.com",
        ],
    )
    .await;
    assert!(!ok && out.contains("forbidden"), "{out}");
    // … and a RoleBinding to cluster-admin in her own project is refused by RBAC's
    // escalation check: she does not hold every permission of cluster-admin.
    let (ok, out) = kubectl(
        &kc,
        &[
            "create",
            "rolebinding",
            "wanda-root",
            "-n",
            "web",
            "--clusterrole=cluster-admin",
            "--user=wanda@example.com",
        ],
    )
    .await;
    assert!(
        !ok && out.contains("forbidden")
            && out.contains("is attempting to grant RBAC permissions not currently held"),
        "{out}"
    );
    let (_, out) = kubectl(&kc, &["auth", "can-i", "create", "clusterroles"]).await;
    assert!(out.lines().any(|l| l.trim() == "no"), "{out}");

    crate::host::delete_workspace(h, &a, &ws).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_admin_cannot_escalate_to_cluster_admin_on_realhost() {
    escalation_journey(&RealHostedApp::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_admin_cannot_escalate_to_cluster_admin_on_fakehost() {
    escalation_journey(&HostedApp::start().await).await;
}
