//! Tenant isolation on a shared host (`host::isolation`): what kaas's NetworkPolicies let a
//! workspace's pods reach, in shared mode (tenant pods, the node agent, the servers) and in
//! virtual mode (the servers and the k3s agent pods) — judged by realhost's referee
//! (`realhost reach`, cyclonus's policy engine) from the policies on the real API server;
//! realhost runs no k3s agent in a virtual-mode agent pod, but the pod itself is K3K's, with
//! its labels and an address — and what the host quota refuses
//! (NodePorts over the plan's count, system priority classes), refused by the real
//! kube-apiserver's ResourceQuota admission.

use std::time::Duration;

use serde_json::{Value, json};

use crate::host::{org_and_workspace, short, state};
use kaas::host::oidc::ClusterIssuer;

use crate::realhost::{RealHost, RealHostedApp, unique};
use crate::support::*;

/// The referee's verdict for a connection from pod `from` (`<ns>/<name>`) to `to`.
async fn reach(h: &RealHostedApp, from: &str, to: &str, port: u16, protocol: &str) -> Value {
    let out = tokio::process::Command::new(crate::realhost::BINARY)
        .arg("reach")
        .arg("--kubeconfig")
        .arg(&h.host.kubeconfig)
        .args(["--from", from, "--to", to, "--port", &port.to_string()])
        .args(["--protocol", protocol])
        .output()
        .await
        .expect("realhost reach runs");
    assert!(
        out.status.success(),
        "realhost reach failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("realhost reach prints JSON")
}

fn allowed(v: &Value) -> bool {
    v["allowed"] == true
}

/// A pod on the host as K3K's virtual kubelet makes one for a tenant (shared mode): the
/// tenant's labels plus `k3k.io/clusterName`, waited for until the simulated kubelet gave it
/// an IP. Returns that IP.
async fn tenant_pod(h: &RealHostedApp, ns: &str, cluster: &str, name: &str) -> String {
    tenant_pod_labelled(h, ns, cluster, name, json!({"app": "web"}), None).await
}

/// [`tenant_pod`] with the tenant's own `labels`; `owner`, a controller reference to put on
/// it (see [`spoofed_agent_pod`]).
async fn tenant_pod_labelled(
    h: &RealHostedApp,
    ns: &str,
    cluster: &str,
    name: &str,
    labels: Value,
    owner: Option<Value>,
) -> String {
    let mut labels = labels;
    labels["k3k.io/clusterName"] = json!(cluster);
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "web", "image": "registry.example/web:1",
            "ports": [{"containerPort": 8080, "name": "http"}]}]}
    });
    if let Some(owner) = owner {
        pod["metadata"]["ownerReferences"] = json!([owner]);
    }
    h.create("", "pods", Some(ns), pod)
        .await
        .unwrap_or_else(|e| panic!("tenant pod {ns}/{name}: {e}"));
    let mut ip = String::new();
    h.until(&format!("an IP for {ns}/{name}"), async || {
        ip = h
            .get("", "pods", Some(ns), name)
            .await
            .and_then(|p| p["status"]["podIP"].as_str().map(str::to_string))
            .unwrap_or_default();
        !ip.is_empty()
    })
    .await;
    ip
}

/// A tenant pod labelled like K3K's shared-mode node agent (`cluster=<n>, type=agent,
/// mode=shared`), as the virtual kubelet copies it to the host. The host pods K3K makes carry
/// no owner; this one gets a controller reference (to a ConfigMap) only so that the node
/// agent's DaemonSet controller, whose selector it matches, does not adopt it and delete it as
/// a surplus daemon pod while the referee is asked.
async fn spoofed_agent_pod(h: &RealHostedApp, ns: &str, cluster: &str, name: &str) -> String {
    let cm = h
        .create(
            "",
            "configmaps",
            Some(ns),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}),
        )
        .await
        .unwrap();
    let owner = json!({"apiVersion": "v1", "kind": "ConfigMap", "name": name,
        "uid": cm["metadata"]["uid"], "controller": true});
    let labels = json!({"cluster": cluster, "type": "agent", "mode": "shared"});
    tenant_pod_labelled(h, ns, cluster, name, labels, Some(owner)).await
}

/// `<ns>/<name>` of the first pod of `ns` whose labels include `labels`.
async fn pod_ref(h: &RealHostedApp, ns: &str, labels: &[(&str, &str)]) -> String {
    let mut found = String::new();
    h.until(&format!("a pod {labels:?} in {ns}"), async || {
        found = h
            .list("", "pods", Some(ns))
            .await
            .into_iter()
            .find(|p| {
                labels.iter().all(|(k, v)| p["metadata"]["labels"][k] == *v)
                    && p["status"]["podIP"].is_string()
            })
            .map(|p| {
                format!(
                    "{ns}/{}",
                    p["metadata"]["name"].as_str().unwrap_or_default()
                )
            })
            .unwrap_or_default();
        !found.is_empty()
    })
    .await;
    found
}

/// Where kaas's issuer listens in [`a_tenant_pod_reaches_dns_and_the_outside_but_not_other_workspaces_or_the_host_on_realhost`].
const ISSUER_PORT: u16 = 8443;

/// A node's InternalIP.
fn internal_ip(node: &Value) -> String {
    node["status"]["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["type"] == "InternalIP")
        .unwrap()["address"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn second_workspace(h: &RealHostedApp, a: &Auth, org: &str) -> String {
    let r = h
        .app()
        .call(
            "POST",
            &format!("/orgs/{org}/workspaces"),
            a,
            Some(json!({"name": "stage", "plan": "starter"})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 201, "{:?}", r.body);
    r.body["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_pod_reaches_dns_and_the_outside_but_not_other_workspaces_or_the_host_on_realhost()
{
    // kaas offers the virtual clusters its OIDC issuer at its public URL, which on a single
    // box is a node's address.
    let host = RealHost::connect().await;
    let node = internal_ip(&host.list("", "nodes", None).await[0]);
    let issuer = format!("https://{node}:{ISSUER_PORT}");
    let h = RealHostedApp::on_with(host, |s| {
        s.host.issuer = ClusterIssuer::usable(&issuer, None);
    });
    let (a, org, ws_a) = org_and_workspace(&h, "starter").await;
    let ws_b = second_workspace(&h, &a, &org).await;
    for ws in [&ws_a, &ws_b] {
        h.wait_ws(&a, ws, "Ready", |w| state(w) == "Ready").await;
    }
    let (ns_a, ns_b) = (
        format!("kaas-ws-{}", short(&ws_a)),
        format!("kaas-ws-{}", short(&ws_b)),
    );
    // K3K's own policy (which allows the host API server and the nodes) is not there: kaas
    // disabled it and owns the namespace's policies.
    let policies: Vec<String> = h
        .list("networking.k8s.io", "networkpolicies", Some(&ns_a))
        .await
        .iter()
        .map(|p| {
            p["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(
        policies,
        vec![
            "kaas-api-server",
            "kaas-isolation",
            "kaas-node-agent",
            "kaas-tenant-ingress"
        ],
        "exactly kaas's policies"
    );

    let pod_a = tenant_pod(&h, &ns_a, &format!("ws-{}", short(&ws_a)), "web").await;
    let pod_b = tenant_pod(&h, &ns_b, &format!("ws-{}", short(&ws_b)), "web").await;
    assert_ne!(pod_a, pod_b);
    let dns = cluster_dns(&h).await;
    let from = format!("{ns_a}/web");

    // Another workspace's pod, by name and by IP, on any port.
    for to in [format!("{ns_b}/web"), pod_b.clone()] {
        let v = reach(&h, &from, &to, 8080, "TCP").await;
        assert!(!allowed(&v), "A reaches B's pod {to}: {v}");
    }
    // And B cannot come in to A either.
    let v = reach(&h, &format!("{ns_b}/web"), &from, 8080, "TCP").await;
    assert!(!allowed(&v), "B reaches A's pod: {v}");
    // The host API server: through the `kubernetes` Service (kube-proxy's DNAT takes it to
    // the API server's own address), and on a node's address.
    let (cluster_ip, api_ip, api_port) = host_api(&h).await;
    let v = reach(&h, &from, &cluster_ip, 443, "TCP").await;
    assert!(!allowed(&v), "A reaches the host API server's Service: {v}");
    let v = reach(&h, &from, &api_ip, api_port, "TCP").await;
    assert!(
        !allowed(&v),
        "A reaches the host API server at {api_ip}:{api_port}: {v}"
    );
    for port in [6443, 10250, 30080] {
        let v = reach(&h, &from, &node, port, "TCP").await;
        assert!(!allowed(&v), "A reaches node {node}:{port}: {v}");
    }
    // DNS, the outside world, and its own namespace are open.
    for protocol in ["UDP", "TCP"] {
        let v = reach(&h, &from, &format!("kube-system/{dns}"), 53, protocol).await;
        assert!(allowed(&v), "A cannot resolve names over {protocol}: {v}");
    }
    let v = reach(&h, &from, "203.0.113.10", 443, "TCP").await;
    assert!(allowed(&v), "A cannot reach the internet: {v}");
    let v = reach(&h, &from, &pod_a, 8080, "TCP").await;
    assert!(allowed(&v), "A cannot reach its own pod: {v}");
    // Clients from outside reach the workspace's API server (its k3s server pod's 6443).
    let server_ref = pod_ref(&h, &ns_a, &[("role", "server")]).await;
    // ... from a client outside, or a node (kube-proxy's source NAT for a NodePort).
    for client in ["203.0.113.7", node.as_str()] {
        let v = reach(&h, client, &server_ref, 6443, "TCP").await;
        assert!(allowed(&v), "{client} cannot reach the API server: {v}");
        let v = reach(&h, client, &server_ref, 2379, "TCP").await;
        assert!(!allowed(&v), "{client} reaches etcd: {v}");
        // A tenant's own NodePort Services take outside clients to its pods.
        let v = reach(&h, client, &from, 8080, "TCP").await;
        assert!(allowed(&v), "{client} cannot reach A's pod: {v}");
    }
    // Another workspace's pods reach neither the API server nor etcd of A's.
    for port in [6443, 2379] {
        let v = reach(&h, &format!("{ns_b}/web"), &server_ref, port, "TCP").await;
        assert!(!allowed(&v), "B reaches A's server on {port}: {v}");
    }

    // Only K3K's own pods get the node agent's and the server's openings, not a tenant pod
    // labelled like them (the virtual kubelet copies a tenant's labels to the host).
    let cluster_a = format!("ws-{}", short(&ws_a));
    let agent = pod_ref(&h, &ns_a, &[("type", "agent"), ("mode", "shared")]).await;
    let v = reach(&h, &agent, &node, 6443, "TCP").await;
    assert!(
        allowed(&v),
        "the node agent cannot reach the host API server: {v}"
    );
    spoofed_agent_pod(&h, &ns_a, &cluster_a, "like-agent").await;
    let like_agent = format!("{ns_a}/like-agent");
    for (to, port) in [
        (node.as_str(), 6443),
        ("127.0.0.1", 443),
        ("127.0.0.1", 6443),
    ] {
        let v = reach(&h, &like_agent, to, port, "TCP").await;
        assert!(
            !allowed(&v),
            "a tenant pod labelled like the agent reaches {to}:{port}: {v}"
        );
    }
    let labels = json!({"cluster": cluster_a, "role": "server"});
    tenant_pod_labelled(&h, &ns_a, &cluster_a, "like-server", labels, None).await;
    let like_server = format!("{ns_a}/like-server");
    // The ingress controller (Traefik, in kube-system, under no policy) reaches the server's
    // 6443; of a tenant pod labelled like one, nothing from the pod network but its namespace.
    let traefik = format!("traefik-{}", unique());
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": traefik, "labels": {"app.kubernetes.io/name": "traefik", "test": traefik}},
        "spec": {"containers": [{"name": "traefik", "image": "rancher/mirrored-library-traefik:3.3.6"}]}
    });
    h.create("", "pods", Some("kube-system"), pod)
        .await
        .unwrap();
    let traefik = pod_ref(&h, "kube-system", &[("test", &traefik)]).await;
    let v = reach(&h, &traefik, &server_ref, 6443, "TCP").await;
    assert!(
        allowed(&v),
        "the ingress controller cannot reach the API server: {v}"
    );
    for port in [6443, 2379] {
        let v = reach(&h, &traefik, &like_server, port, "TCP").await;
        assert!(
            !allowed(&v),
            "a tenant pod labelled like the server is open on {port}: {v}"
        );
    }

    // The k3s servers reach kaas's issuer (discovery and JWKS) on that node address and
    // port; nothing else in the namespace does, and the servers get no other node port.
    let v = reach(&h, &server_ref, &node, ISSUER_PORT, "TCP").await;
    assert!(
        allowed(&v),
        "the API server cannot reach the issuer {issuer}: {v}"
    );
    for pod in [&from, &agent, &like_server, &like_agent] {
        let v = reach(&h, pod, &node, ISSUER_PORT, "TCP").await;
        assert!(!allowed(&v), "{pod} reaches the issuer {issuer}: {v}");
    }
    for port in [6443, 10250, 30080] {
        let v = reach(&h, &server_ref, &node, port, "TCP").await;
        assert!(
            !allowed(&v),
            "the API server reaches node {node}:{port}: {v}"
        );
    }
}

/// A plan like starter in K3K's virtual mode with one agent, made by an administrator.
async fn virtual_plan(h: &RealHostedApp) -> &'static str {
    let root = bearer(&h.app().user("root@example.com", true).await.1);
    let mut p = h
        .app()
        .call("GET", "/plans/starter", &root, None)
        .await
        .body;
    p["id"] = json!("starter-vm");
    p["display_name"] = json!("Starter (virtual)");
    p["k3k_mode"] = json!("virtual");
    p["agents"] = json!(1);
    let r = h.app().call("POST", "/plans", &root, Some(p)).await;
    assert_eq!(r.status.as_u16(), 201, "{:?}", r.body);
    "starter-vm"
}

/// Virtual mode: K3K runs the k3s servers (StatefulSet) and the k3s agents (Deployment
/// `k3k-<n>-agent`, `cluster=<n>, type=agent, mode=virtual`) as host pods, and the tenants'
/// pods run inside the agents, so those two kinds are all the host sees of the workspace.
/// realhost's simulated kubelets run the agent pods as they run any pod (an address, Running)
/// though no k3s agent runs in them; the referee judges by their labels and addresses, which
/// are K3K's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_mode_servers_and_agents_reach_dns_and_the_outside_but_not_other_workspaces_or_the_host_on_realhost()
 {
    let h = RealHostedApp::start().await;
    let plan = virtual_plan(&h).await;
    let (a, org, ws_a) = org_and_workspace(&h, plan).await;
    let ws_b = second_workspace(&h, &a, &org).await;
    for ws in [&ws_a, &ws_b] {
        h.wait_ws(&a, ws, "Ready", |w| state(w) == "Ready").await;
    }
    let (ns_a, ns_b) = (
        format!("kaas-ws-{}", short(&ws_a)),
        format!("kaas-ws-{}", short(&ws_b)),
    );
    let cluster_a = format!("ws-{}", short(&ws_a));
    let vcp = h
        .get("k3k.io", "virtualclusterpolicies", None, &ns_a)
        .await
        .unwrap();
    assert_eq!(vcp["spec"]["allowedMode"], "virtual", "{vcp}");
    let server = pod_ref(&h, &ns_a, &[("cluster", &cluster_a), ("role", "server")]).await;
    let agent = pod_ref(
        &h,
        &ns_a,
        &[
            ("cluster", &cluster_a),
            ("type", "agent"),
            ("mode", "virtual"),
        ],
    )
    .await;
    let pod_b = tenant_pod(&h, &ns_b, &format!("ws-{}", short(&ws_b)), "web").await;
    let server_b = pod_ref(&h, &ns_b, &[("role", "server")]).await;
    let dns = cluster_dns(&h).await;
    let nodes: Vec<String> = h
        .list("", "nodes", None)
        .await
        .iter()
        .map(internal_ip)
        .collect();
    let (cluster_ip, api_ip, api_port) = host_api(&h).await;

    for from in [&server, &agent] {
        // Another workspace's pods, by name and by address.
        for to in [format!("{ns_b}/web"), pod_b.clone(), server_b.clone()] {
            for port in [8080, 6443] {
                let v = reach(&h, from, &to, port, "TCP").await;
                assert!(!allowed(&v), "{from} reaches {to}:{port}: {v}");
            }
        }
        // The host API server (its Service and its own address), and every node's API
        // server, kubelet and NodePorts.
        for (to, port) in [(cluster_ip.as_str(), 443), (api_ip.as_str(), api_port)] {
            let v = reach(&h, from, to, port, "TCP").await;
            assert!(
                !allowed(&v),
                "{from} reaches the host API server at {to}:{port}: {v}"
            );
        }
        for node in &nodes {
            for port in [6443, 10250, 30080] {
                let v = reach(&h, from, node, port, "TCP").await;
                assert!(!allowed(&v), "{from} reaches node {node}:{port}: {v}");
            }
        }
        // DNS and the outside world.
        for protocol in ["UDP", "TCP"] {
            let v = reach(&h, from, &format!("kube-system/{dns}"), 53, protocol).await;
            assert!(
                allowed(&v),
                "{from} cannot resolve names over {protocol}: {v}"
            );
        }
        let v = reach(&h, from, "203.0.113.10", 443, "TCP").await;
        assert!(allowed(&v), "{from} cannot reach the internet: {v}");
        // Nor does another workspace come in.
        let v = reach(&h, &format!("{ns_b}/web"), from, 6443, "TCP").await;
        assert!(!allowed(&v), "B reaches {from}: {v}");
    }
    // The agents join their servers; clients reach the API server from outside.
    let v = reach(&h, &agent, &server, 6443, "TCP").await;
    assert!(allowed(&v), "the agent cannot reach its server: {v}");
    let v = reach(&h, "203.0.113.7", &server, 6443, "TCP").await;
    assert!(allowed(&v), "clients cannot reach the API server: {v}");
    // Virtual-mode agents are not shared-mode tenant pods: no ingress from outside.
    let v = reach(&h, "203.0.113.7", &agent, 10250, "TCP").await;
    assert!(!allowed(&v), "the outside reaches the agent's kubelet: {v}");
}

/// The host's ResourceQuota of `ns` once K3K wrote it with the Service counts and the quota
/// controller has counted what is there.
async fn wait_quota<H: TestHost>(h: &H, ns: &str) {
    h.until("the host quota counting Services", async || {
        h.list("", "resourcequotas", Some(ns))
            .await
            .iter()
            .any(|q| {
                q["status"]["hard"]["services.nodeports"].is_string()
                    && q["status"]["used"]["services.nodeports"].is_string()
            })
            && h.get("", "resourcequotas", Some(ns), "kaas-system-node-critical")
                .await
                .is_some_and(|q| q["status"]["used"]["pods"].is_string())
    })
    .await;
}

/// NodePorts over the plan and a tenant pod asking for `system-node-critical`, refused by the
/// host (realhost: the real ResourceQuota admission; fakehost must refuse the same).
/// The host API server's addresses: the `kubernetes` Service's ClusterIP (kube-proxy's DNAT
/// takes it to the API server) and the API server's own address and port.
async fn host_api(h: &RealHostedApp) -> (String, String, u16) {
    let kubernetes = h
        .get("", "services", Some("default"), "kubernetes")
        .await
        .unwrap();
    let cluster_ip = kubernetes["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_string();
    let kubeconfig = std::fs::read_to_string(&h.host.kubeconfig).unwrap();
    let api = kubeconfig
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: https://"))
        .expect("the host API server's URL");
    let (ip, port) = api.rsplit_once(':').unwrap();
    (cluster_ip, ip.to_string(), port.parse().unwrap())
}

/// Cluster DNS, as K3s runs it: a CoreDNS pod in kube-system, labelled k8s-app=kube-dns.
/// Its name.
async fn cluster_dns(h: &RealHostedApp) -> String {
    let dns = format!("coredns-{}", unique());
    let coredns = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": dns, "labels": {"k8s-app": "kube-dns"}},
        "spec": {"containers": [{"name": "coredns", "image": "rancher/mirrored-coredns-coredns:1.12.1"}]}
    });
    h.create("", "pods", Some("kube-system"), coredns)
        .await
        .unwrap();
    dns
}

/// Creates `object` (called `name`) in `ns` until the host refuses it, as it must once its
/// quota controller has counted what came before; the refusal.
async fn refused_over_quota<H: TestHost>(
    h: &H,
    ns: &str,
    resource: &str,
    name: &str,
    object: Value,
) -> String {
    let mut refused = String::new();
    h.until(&format!("{resource} {name} refused"), async || {
        match h.create("", resource, Some(ns), object.clone()).await {
            Err(e) => {
                refused = e;
                true
            }
            Ok(_) => {
                // The quota controller had not counted the others yet: try again.
                h.delete("", resource, Some(ns), name).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
                false
            }
        }
    })
    .await;
    refused
}

async fn quota_journey<H: TestHost>(h: &H) {
    let (a, _, ws) = org_and_workspace(h, "starter").await;
    h.wait_ws(&a, &ws, "Ready", |w| state(w) == "Ready").await;
    let ns = format!("kaas-ws-{}", short(&ws));
    wait_quota(h, &ns).await;

    // Starter allows tenants 2 NodePort Services, besides kaas's own API Service.
    let service = |name: &str| {
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name},
            "spec": {"type": "NodePort", "selector": {"app": "web"},
                "ports": [{"port": 80, "targetPort": 8080}]}})
    };
    for name in ["web-1", "web-2"] {
        h.create("", "services", Some(&ns), service(name))
            .await
            .unwrap_or_else(|e| panic!("NodePort {name} within the plan refused: {e}"));
    }
    let refused = refused_over_quota(h, &ns, "services", "web-3", service("web-3")).await;
    assert!(
        refused.contains("exceeded quota") && refused.contains("services.nodeports"),
        "{refused}"
    );
    // A LoadBalancer: starter allows none.
    let lb = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "lb"},
        "spec": {"type": "LoadBalancer", "selector": {"app": "web"},
            "ports": [{"port": 80, "targetPort": 8080}]}});
    let e = h.create("", "services", Some(&ns), lb).await.unwrap_err();
    assert!(e.contains("exceeded quota"), "{e}");

    // A tenant pod asking for system-node-critical (the virtual kubelet copies it through).
    let critical = |class: &str, name: &str| {
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"k3k.io/clusterName": format!("ws-{}", short(&ws))}},
            "spec": {"priorityClassName": class,
                "containers": [{"name": "c", "image": "registry.example/c:1"}]}})
    };
    let e = h
        .create(
            "",
            "pods",
            Some(&ns),
            critical("system-node-critical", "preempt"),
        )
        .await
        .unwrap_err();
    assert!(
        e.contains("exceeded quota") && e.contains("kaas-system-node-critical"),
        "{e}"
    );
    // system-cluster-critical: one pod, the virtual cluster's own CoreDNS in shared mode;
    // a second is refused.
    h.create(
        "",
        "pods",
        Some(&ns),
        critical("system-cluster-critical", "coredns"),
    )
    .await
    .unwrap_or_else(|e| panic!("the one system-cluster-critical pod refused: {e}"));
    let second = critical("system-cluster-critical", "preempt-2");
    let refused = refused_over_quota(h, &ns, "pods", "preempt-2", second).await;
    assert!(
        refused.contains("exceeded quota") && refused.contains("kaas-system-cluster-critical"),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_ports_over_the_plan_and_system_priority_pods_are_refused_on_realhost() {
    quota_journey(&RealHostedApp::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_ports_over_the_plan_and_system_priority_pods_are_refused_on_fakehost() {
    quota_journey(&HostedApp::start().await).await;
}

#[tokio::test]
async fn a_plans_service_quota_is_checked_and_reaches_the_host_quota() {
    let h = HostedApp::start().await;
    let (_, admin) = h.app.user("root@example.com", true).await;
    let admin = bearer(&admin);
    let r = h.app.call("GET", "/plans/starter", &admin, None).await;
    assert_eq!(
        r.body["services"],
        json!({"node_ports": 2, "load_balancers": 0})
    );
    let mut p = r.body.clone();
    p["id"] = json!("edge");
    p["display_name"] = json!("Edge");
    // Every LoadBalancer Service also takes a node port.
    p["services"] = json!({"node_ports": 1, "load_balancers": 2});
    let r = h.app.call("POST", "/plans", &admin, Some(p.clone())).await;
    assert_eq!(r.status.as_u16(), 422, "{:?}", r.body);
    assert_eq!(r.field(), "services.load_balancers", "{:?}", r.body);
    p["services"] = json!({"node_ports": 4, "load_balancers": 1});
    let r = h.app.call("POST", "/plans", &admin, Some(p)).await;
    assert_eq!(r.status.as_u16(), 201, "{:?}", r.body);

    let (a, _, ws) = org_and_workspace(&h, "edge").await;
    h.wait_ws(&a, &ws, "Ready", |w| state(w) == "Ready").await;
    let vcp = h
        .get(
            "k3k.io",
            "virtualclusterpolicies",
            None,
            &format!("kaas-ws-{}", short(&ws)),
        )
        .unwrap();
    let hard = &vcp["spec"]["quota"]["hard"];
    assert_eq!(hard["services.nodeports"], "5", "4 and kaas's own: {vcp}");
    assert_eq!(hard["services.loadbalancers"], "1", "{vcp}");
    assert_eq!(vcp["spec"]["disableNetworkPolicy"], true, "{vcp}");
}

/// `kaas doctor`'s NetworkPolicy check against the host behind `kubeconfig`.
async fn doctor_network_check(kubeconfig: &std::path::Path) -> kaas::doctor::Check {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = kaas::config::Config::default();
    cfg.host.kubeconfig = Some(kubeconfig.to_path_buf());
    cfg.data.dir = dir.path().join("data");
    let report = kaas::doctor::run(&cfg).await;
    report
        .get("network-policy")
        .cloned()
        .unwrap_or_else(|| panic!("no network-policy check:\n{}", report.render()))
}

/// `/api/v1/host` once kaas has read the nodes.
async fn host_view(h: &RealHostedApp, admin: &Auth) -> Value {
    let mut last = Value::Null;
    h.until("the host checked", async || {
        last = h.app().call("GET", "/host", admin, None).await.body;
        last["connected"] == true && !last["network_policy"].is_null()
    })
    .await;
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_and_the_host_api_report_a_host_without_network_policy_enforcement_on_realhost() {
    use kaas::doctor::Status;
    // A K3s as it starts by default: its network policy controller runs.
    let shared = crate::realhost::RealHost::connect().await;
    let check = doctor_network_check(&shared.kubeconfig).await;
    assert_eq!(check.status, Status::Pass, "{check:?}");
    let h = RealHostedApp::on(shared);
    let admin = bearer(&h.app().user("root@example.com", true).await.1);
    let host = host_view(&h, &admin).await;
    assert_eq!(host["network_policy"], true, "{host}");
    drop(h);

    // A K3s started with --disable-network-policy (as its node annotation shows).
    crate::realhost::PrivateRealHost::with_flags(1, &["--disable-network-policy"], async |host| {
        let check = doctor_network_check(&host.kubeconfig).await;
        assert_eq!(check.status, Status::Fail, "{check:?}");
        assert!(check.detail.contains("realhost-node-1"), "{check:?}");
        assert!(
            check
                .fix
                .as_deref()
                .is_some_and(|f| f.contains("disable-network-policy")),
            "{check:?}"
        );
        let h = RealHostedApp::on(host);
        let admin = bearer(&h.app().user("root@example.com", true).await.1);
        let host = host_view(&h, &admin).await;
        assert_eq!(host["network_policy"], false, "{host}");
        let warnings = host["warnings"].to_string();
        assert!(
            warnings.contains("does not enforce NetworkPolicy"),
            "{host}"
        );
    })
    .await;
}
