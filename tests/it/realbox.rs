//! What a real K3s + K3K box does with kaas's workspaces, proven on realhost, where the real
//! K3K controllers, the real DaemonSet, StatefulSet and scheduler controllers and the real
//! admission plugins decide: tenant and system pods admitted and placed on dedicated nodes,
//! K3K's node agents running, HA server pods deleted through K3K's etcd finalizer, the
//! plans' quotas admitting K3K's own pods, and a changed address reaching the served
//! certificate.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::host::{delete_workspace, org_and_workspace, short, state};
use crate::realhost::RealHostedApp;
use crate::support::*;

/// A host pod as K3K's virtual kubelet builds it from a tenant's pod (k3k-kubelet
/// provider.go createPod): the tenant's tolerations and priority class as written, the
/// Cluster's (or policy's) node selector, a preference for the kubelet's own node, and the
/// `k3k.io/clusterName` label.
fn synced_pod(
    name: &str,
    cluster: &Value,
    tolerations: Value,
    priority_class: Option<&str>,
    resources: Value,
) -> Value {
    let cluster_name = cluster["metadata"]["name"].as_str().unwrap();
    let selector = cluster["status"]["policy"]["nodeSelector"].clone();
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"k3k.io/clusterName": cluster_name},
            "annotations": {"k3k.io/name": name, "k3k.io/namespace": "default"}},
        "spec": {
            "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10", "resources": resources}],
            "tolerations": tolerations,
            "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                "weight": 100,
                "preference": {"matchExpressions": [{"key": "kubernetes.io/hostname",
                    "operator": "In", "values": ["realhost-node-1"]}]}}]}},
        },
    });
    if selector.is_object() {
        pod["spec"]["nodeSelector"] = selector;
    }
    if let Some(pc) = priority_class {
        pod["spec"]["priorityClassName"] = pc.into();
    }
    pod
}

/// K3s's CoreDNS (v1.33) as its host pod: tolerations, priority class and resources copied.
fn coredns_pod(cluster: &Value) -> Value {
    synced_pod(
        "coredns-x-kube-system",
        cluster,
        json!([
            {"key": "CriticalAddonsOnly", "operator": "Exists"},
            {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"},
            {"key": "node-role.kubernetes.io/master", "operator": "Exists", "effect": "NoSchedule"}
        ]),
        Some("system-cluster-critical"),
        json!({"requests": {"cpu": "100m", "memory": "70Mi"}, "limits": {"memory": "170Mi"}}),
    )
}

fn small() -> Value {
    json!({"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}})
}

async fn cluster_of(h: &RealHostedApp, ws: &str) -> Value {
    let s = short(ws);
    h.get(
        "k3k.io",
        "clusters",
        Some(&format!("kaas-ws-{s}")),
        &format!("ws-{s}"),
    )
    .await
    .expect("the workspace's Cluster")
}

/// Waits until a pod is bound and Running; returns it.
async fn running(h: &RealHostedApp, ns: &str, name: &str) -> Value {
    let mut last = Value::Null;
    h.until(&format!("pod {ns}/{name} Running"), async || {
        last = h.get("", "pods", Some(ns), name).await.unwrap_or_default();
        last["status"]["phase"] == "Running"
    })
    .await;
    last
}

async fn create_workspace(
    h: &RealHostedApp,
    a: &Auth,
    org: &str,
    name: &str,
    plan: &str,
) -> String {
    let r = h
        .app
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

fn taint_values(node: &Value) -> Vec<String> {
    node["spec"]["taints"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            format!(
                "{}={}",
                t["key"].as_str().unwrap_or(""),
                t["value"].as_str().unwrap_or("")
            )
        })
        .collect()
}

/// Points 1 and 2: a premium workspace in shared mode with a dedicated node. Its K3K-made
/// node agents run (on shared nodes), its tenant pods and its CoreDNS land on its node, a
/// pod of another workspace asking for its toleration is refused, and releasing the node
/// ends with the node clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dedicated_shared_workspace_gets_node_agents_and_its_pods_on_its_node_on_realhost() {
    let h = RealHostedApp::start().await;
    let (_, admin) = h.app.user("root@example.com", true).await;
    let root = bearer(&admin);
    let (a, org, prem) = org_and_workspace(&h, "premium").await;
    let other = create_workspace(&h, &a, &org, "other", "starter").await;
    for ws in [&prem, &other] {
        h.wait_ws(&a, ws, "Ready", |w| state(w) == "Ready").await;
    }
    let (ps, os) = (short(&prem), short(&other));
    let (prem_ns, other_ns) = (format!("kaas-ws-{ps}"), format!("kaas-ws-{os}"));
    let pool = format!("ws-{ps}");
    let node = "realhost-node-3";

    // The node inventory comes from the host's watch: wait for it before assigning.
    h.until("the node inventory", async || {
        h.app.call("GET", "/nodes", &root, None).await.status == StatusCode::OK
    })
    .await;
    let r = h
        .app
        .call(
            "POST",
            &format!("/workspaces/{prem}/nodes"),
            &root,
            Some(json!({"node": node})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 201, "{:?}", r.body);
    h.until("the node labelled and tainted", async || {
        let n = h.get("", "nodes", None, node).await.unwrap();
        n["metadata"]["labels"]["hexabase.ai/node-pool"] == pool.as_str()
            && taint_values(&n).contains(&format!("dedicated={pool}"))
    })
    .await;

    // K3K copies the policy's defaultNodeSelector into the Cluster's status; the virtual
    // kubelet uses it for every host pod.
    let mut cluster = Value::Null;
    h.until("K3K applying the policy's node selector", async || {
        cluster = cluster_of(&h, &prem).await;
        cluster["status"]["policy"]["nodeSelector"]["hexabase.ai/node-pool"] == pool.as_str()
    })
    .await;
    assert!(
        cluster["spec"].get("nodeSelector").is_none(),
        "the Cluster itself selects no node, or K3K's node agents could not run"
    );

    // K3K's node agents (the real DaemonSet controller places them) run, on shared nodes.
    let mut ds = Value::Null;
    // The agent that ran there before the node was dedicated was moved off (a NoSchedule
    // taint alone leaves it), in this workspace and in the other one.
    for ns in [&prem_ns, &other_ns] {
        let ds_name = format!("k3k-ws-{}-kubelet", &ns["kaas-ws-".len()..]);
        h.until("K3K's node agents on the shared nodes only", async || {
            ds = h
                .get("apps", "daemonsets", Some(ns), &ds_name)
                .await
                .unwrap_or_default();
            let agents_there = h.list("", "pods", Some(ns)).await.iter().any(|p| {
                p["metadata"]["labels"]["type"] == "agent" && p["spec"]["nodeName"] == node
            });
            ds["status"]["numberReady"] == 2
                && ds["status"]["desiredNumberScheduled"] == 2
                && !agents_there
        })
        .await;
    }
    h.wait_ws(&a, &prem, "Ready with its node", |w| state(w) == "Ready")
        .await;

    // A tenant pod and CoreDNS, as the virtual kubelet builds them: admitted, defaulted with
    // the workspace's toleration, scheduled on the dedicated node.
    let tenant = synced_pod("web-0-default", &cluster, json!([]), None, small());
    h.host
        .create("", "pods", Some(&prem_ns), &tenant)
        .await
        .expect("the tenant pod is admitted");
    let pod = running(&h, &prem_ns, "web-0-default").await;
    assert_eq!(pod["spec"]["nodeName"], node, "{pod}");
    assert!(
        pod["spec"]["tolerations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["key"] == "dedicated" && t["value"] == pool.as_str()),
        "the namespace's default toleration: {pod}"
    );
    h.host
        .create("", "pods", Some(&prem_ns), &coredns_pod(&cluster))
        .await
        .expect("CoreDNS's host pod is admitted in a dedicated workspace");
    let dns = running(&h, &prem_ns, "coredns-x-kube-system").await;
    assert_eq!(dns["spec"]["nodeName"], node);

    // In the shared workspace CoreDNS is admitted and runs too, on any shared node.
    let other_cluster = cluster_of(&h, &other).await;
    h.host
        .create("", "pods", Some(&other_ns), &coredns_pod(&other_cluster))
        .await
        .expect("CoreDNS's host pod is admitted in a shared workspace");
    let dns = running(&h, &other_ns, "coredns-x-kube-system").await;
    assert_ne!(dns["spec"]["nodeName"], node);

    // Another workspace's pod that asks for the dedicated node's toleration is refused.
    let sneaky = synced_pod(
        "sneaky",
        &other_cluster,
        json!([{"key": "dedicated", "operator": "Equal", "value": pool, "effect": "NoSchedule"}]),
        None,
        small(),
    );
    let refused = h
        .host
        .create("", "pods", Some(&other_ns), &sneaky)
        .await
        .expect_err("PodTolerationRestriction refuses a foreign pool's toleration");
    let text = crate::realhost::describe(&refused);
    assert!(text.contains("toleration"), "{text}");

    // Release: the tenant pods leave the node, the label and taint go, the node is
    // schedulable again, and the workspace stays Ready.
    let r = h
        .app
        .call(
            "DELETE",
            &format!("/workspaces/{prem}/nodes/{node}"),
            &root,
            None,
        )
        .await;
    assert_eq!(r.status.as_u16(), 204, "{:?}", r.body);
    h.until("the node released and clean", async || {
        let n = h.get("", "nodes", None, node).await.unwrap();
        n["metadata"]["labels"]
            .get("hexabase.ai/node-pool")
            .is_none()
            && !taint_values(&n).iter().any(|t| t.starts_with("dedicated="))
            && n["spec"]["unschedulable"] != true
    })
    .await;
    assert!(
        h.get("", "pods", Some(&prem_ns), "web-0-default")
            .await
            .is_none_or(|p| p["spec"]["nodeName"] != node),
        "the tenant pod was evicted from the released node"
    );
    h.wait_ws(&a, &prem, "Ready after the release", |w| {
        state(w) == "Ready"
    })
    .await;
    for ws in [&prem, &other] {
        delete_workspace(&h, &a, ws).await;
    }
}

/// Point 3: a three-server workspace. K3K's Service carries etcd's 2379 (ClusterIP only),
/// kaas's NodePort Service carries only the API, and deleting a server pod completes:
/// K3K's etcd-member finalizer reaches etcd through that Service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ha_workspace_deletes_server_pods_through_k3ks_etcd_finalizer_on_realhost() {
    let h = RealHostedApp::start().await;
    let (a, _, ws) = org_and_workspace(&h, "premium").await;
    h.wait_ws(&a, &ws, "Ready", |w| state(w) == "Ready").await;
    let s = short(&ws);
    let ns = format!("kaas-ws-{s}");
    let k3k_svc = h
        .get("", "services", Some(&ns), &format!("k3k-ws-{s}-service"))
        .await
        .expect("K3K's service");
    assert_eq!(k3k_svc["spec"]["type"], "ClusterIP", "{k3k_svc}");
    let ports: Vec<i64> = k3k_svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["port"].as_i64().unwrap())
        .collect();
    assert!(ports.contains(&2379), "etcd's port: {ports:?}");
    let api = h
        .get("", "services", Some(&ns), "kaas-api")
        .await
        .expect("kaas's API service");
    assert_eq!(api["spec"]["type"], "NodePort");
    let api_ports = api["spec"]["ports"].as_array().unwrap();
    assert_eq!(api_ports.len(), 1, "only the API is on the nodes: {api}");
    assert_eq!(api_ports[0]["targetPort"], 6443);

    let victim = format!("k3k-ws-{s}-server-1");
    let before = running(&h, &ns, &victim).await;
    assert!(
        before["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x == "etcdpod.k3k.io/finalizer")),
        "K3K guards its HA server pods with the etcd finalizer: {before}"
    );
    let uid = before["metadata"]["uid"].clone();
    h.host.delete("", "pods", Some(&ns), &victim).await;
    h.until("the server pod deleted and recreated", async || {
        h.get("", "pods", Some(&ns), &victim)
            .await
            .is_some_and(|p| p["metadata"]["uid"] != uid && p["status"]["phase"] == "Running")
    })
    .await;
    h.wait_ws(&a, &ws, "Ready", |w| state(w) == "Ready").await;
    delete_workspace(&h, &a, &ws).await;
}

/// Point 6: a new external address reaches the certificate the API server serves, not
/// just the Cluster's `tlsSANs`: kaas restarts the servers, reads the certificate, and only
/// then says Ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_external_address_reaches_the_served_certificate_on_realhost() {
    let mut h = RealHostedApp::start().await;
    let (a, _, ws) = org_and_workspace(&h, "starter").await;
    h.wait_ws(&a, &ws, "Ready", |w| state(w) == "Ready").await;
    let s = short(&ws);
    let ns = format!("kaas-ws-{s}");
    let api = h.get("", "services", Some(&ns), "kaas-api").await.unwrap();
    let port = api["spec"]["ports"][0]["nodePort"].as_u64().unwrap() as u16;
    let served = kaas::reconcile::served_cert::served_names("127.0.0.1", port)
        .await
        .unwrap();
    assert!(served.contains(&"127.0.0.1".to_string()), "{served:?}");
    assert!(!served.contains(&"kaas-new.example".to_string()));
    let server = format!("k3k-ws-{s}-server-0");
    let old_uid = running(&h, &ns, &server).await["metadata"]["uid"].clone();

    // The operator adds an address and restarts kaas.
    h.reconciler.stop();
    let mut settings = reconciler_settings();
    settings.poll_while_busy = Duration::from_millis(500);
    settings.host.external_addresses = vec!["127.0.0.1".into(), "kaas-new.example".into()];
    h.reconciler = attach_host(&mut h.app, h.kaas_kubeconfig.clone(), settings);
    h.until("the Cluster's tlsSANs changed", async || {
        cluster_of(&h, &ws).await["spec"]["tlsSANs"] == json!(["127.0.0.1", "kaas-new.example"])
    })
    .await;
    h.until(
        "the served certificate covering the new address",
        async || {
            kaas::reconcile::served_cert::served_names("127.0.0.1", port)
                .await
                .is_ok_and(|names| names.contains(&"kaas-new.example".to_string()))
        },
    )
    .await;
    let now = h.get("", "pods", Some(&ns), &server).await.unwrap();
    assert_ne!(now["metadata"]["uid"], old_uid, "kaas restarted the server");
    h.wait_ws(&a, &ws, "Ready", |w| state(w) == "Ready").await;
    delete_workspace(&h, &a, &ws).await;
}

/// A quantity as a number of base units (cores, bytes, pods).
fn amount(v: &Value) -> f64 {
    kaas::host::quantity::parse_quantity(v.as_str().unwrap_or("0")).unwrap_or(0.0)
}

// Point 4: on hosts of 1, 3 and 10 nodes, a workspace on each default plan becomes Ready
// with all of K3K's own pods running (its servers, a node agent per node) and CoreDNS's
// host pod admitted, and the quota still leaves the tenants everything the plan promises.
// One test per host size, so that the three hosts (the longest tests of the suite) run
// beside other tests rather than one after another.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_plans_admit_k3ks_own_pods_on_a_10_node_host_on_realhost() {
    default_plans_admit_k3ks_own_pods(10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_plans_admit_k3ks_own_pods_on_a_1_node_host_on_realhost() {
    default_plans_admit_k3ks_own_pods(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_plans_admit_k3ks_own_pods_on_a_3_node_host_on_realhost() {
    default_plans_admit_k3ks_own_pods(3).await;
}

async fn default_plans_admit_k3ks_own_pods(nodes: usize) {
    crate::realhost::PrivateRealHost::with(nodes, async |host| {
        let h = RealHostedApp::on(host);
        let (a, org, starter) = org_and_workspace(&h, "starter").await;
        let standard = create_workspace(&h, &a, &org, "std", "standard").await;
        let premium = create_workspace(&h, &a, &org, "prem", "premium").await;
        let plans = kaas::domain::plan::default_plans();
        for (ws, plan) in [(&starter, "starter"), (&standard, "standard"), (&premium, "premium")] {
            let plan = plans.iter().find(|p| p.id == plan).unwrap();
            h.wait_ws(&a, ws, "Ready", |w| state(w) == "Ready").await;
            let ns = format!("kaas-ws-{}", short(ws));
            let cluster = cluster_of(&h, ws).await;
            h.host
                .create("", "pods", Some(&ns), &coredns_pod(&cluster))
                .await
                .unwrap_or_else(|e| {
                    panic!("{nodes} nodes, {}: CoreDNS refused: {}", plan.id, crate::realhost::describe(&e))
                });
            running(&h, &ns, "coredns-x-kube-system").await;
            let mut pods = Vec::new();
            h.until("K3K's servers and one agent per node running", async || {
                pods = h.list("", "pods", Some(&ns)).await;
                let running = |role: &str, value: &str| {
                    pods.iter()
                        .filter(|p| p["metadata"]["labels"][role] == value && p["status"]["phase"] == "Running")
                        .count()
                };
                running("role", "server") == plan.servers as usize && running("type", "agent") == nodes
            })
            .await;
            let quota = &h.list("", "resourcequotas", Some(&ns)).await[0];
            let (hard, used) = (&quota["spec"]["hard"], &quota["status"]["used"]);
            let q = &plan.quota;
            for (key, promised) in [
                ("pods", q.pods as f64),
                ("requests.cpu", q.cpu_millis as f64 / 1000.0),
                ("limits.cpu", q.cpu_millis as f64 / 1000.0),
                ("requests.memory", q.memory_mib as f64 * 1_048_576.0),
                ("limits.memory", q.memory_mib as f64 * 1_048_576.0),
            ] {
                let left = amount(&hard[key]) - amount(&used[key]);
                assert!(
                    left + 1e-9 >= promised,
                    "{nodes} nodes, {}: {key}: {left} left for tenants, {promised} promised: {quota}",
                    plan.id
                );
            }
        }
        // The meter records tenant usage: K3K's servers and agents are left out, so
        // CoreDNS (100m, 70 MiB, one pod) is all the tenants of each workspace use.
        for ws in [&starter, &standard, &premium] {
            let id: kaas::domain::WorkspaceId = ws.parse().unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            loop {
                h.app.ops().meter_tick().unwrap();
                let seen = kaas::store::usage::meter_state(&h.app.ops().store.read().unwrap(), id)
                    .unwrap()
                    .and_then(|st| st.seen.used);
                if seen.is_some_and(|u| (u.cpu_millis, u.memory_mib, u.pods) == (100, 70, 1)) {
                    break;
                }
                if std::time::Instant::now() > deadline {
                    let ns = format!("kaas-ws-{}", short(ws));
                    let quota = h.list("", "resourcequotas", Some(&ns)).await;
                    let pods: Vec<String> = h.list("", "pods", Some(&ns)).await.iter().map(|p| format!("{} {} {}", p["metadata"]["name"], p["status"]["phase"], p["spec"]["containers"][0]["resources"])).collect();
                    panic!("{nodes} nodes: the meter saw {seen:?}; quota {:?}; pods {pods:#?}", quota[0]["status"]);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        for ws in [&starter, &standard, &premium] {
            delete_workspace(&h, &a, ws).await;
        }
    })
    .await;
}
