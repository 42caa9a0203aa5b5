//! K3K's server side of a Cluster `<n>` (pkg/controller/cluster/server): Service
//! `k3k-<n>-service` (`server.Service`: its type and ports follow `spec.expose`), the headless
//! Service, the K3s config Secrets `k3k-<n>-init-server-config` and `k3k-<n>-server-config`
//! (`tls-san` = `status.tlsSANs`), and StatefulSet `k3k-<n>-server` whose pod template is
//! `podSpec`'s: affinity from `status.policy.serverAffinity` else `spec.serverAffinity`,
//! `spec.nodeSelector`, `spec.priorityClass`, the config volumes, the startup command (which
//! changes with the server count, mode and `serverArgs`), probes, `serverLimit` as container
//! limits unless `serverResources` (pod-level) is set, and the `secretMounts` of servers
//! (role `server` or `all`) as Secret volumes. Addons and custom CAs are not rendered.

use serde_json::{Map, Value, json};

use super::objects::{owner_reference, safe_concat_name, server_name, service_name, text};
use super::quantity;

pub const ETCD_POD_FINALIZER: &str = "etcdpod.k3k.io/finalizer";
pub const K3S_SERVER_PORT: u64 = 6443;
pub const HTTPS_PORT: u64 = 443;
pub const ETCD_PORT: u64 = 2379;

pub fn server_labels(cluster: &str) -> Value {
    json!({"cluster": cluster, "role": "server"})
}

pub fn headless_name(cluster: &str) -> String {
    safe_concat_name(&["k3k", cluster, "service", "headless"])
}

pub fn config_secret_name(cluster: &str, init: bool) -> String {
    if init {
        safe_concat_name(&["k3k", cluster, "init-server-config"])
    } else {
        safe_concat_name(&["k3k", cluster, "server-config"])
    }
}

/// A Go `*int32` field: None when absent (or null).
fn int_field(object: Option<&Value>, key: &str) -> Option<i64> {
    object?.get(key).and_then(Value::as_i64)
}

/// `server.Service`: ClusterIP with both ports unless `expose` says NodePort or LoadBalancer.
pub fn service(cluster: &Value) -> Value {
    let name = text(cluster, "/metadata/name");
    let server_port = json!({"name": "k3s-server-port", "protocol": "TCP", "port": HTTPS_PORT, "targetPort": K3S_SERVER_PORT});
    let etcd_port = json!({"name": "k3s-etcd-port", "protocol": "TCP", "port": ETCD_PORT});
    let expose = cluster.pointer("/spec/expose").filter(|e| e.is_object());
    let load_balancer = expose
        .and_then(|e| e.get("loadBalancer"))
        .filter(|v| v.is_object());
    let node_port = expose
        .and_then(|e| e.get("nodePort"))
        .filter(|v| v.is_object());
    let (service_type, ports) = if let Some(config) = load_balancer {
        // addLoadBalancerPorts: nil keeps the default port, > 0 replaces it, else dropped.
        let mut ports = Vec::new();
        for (key, mut port) in [("serverPort", server_port), ("etcdPort", etcd_port)] {
            match int_field(Some(config), key) {
                None => ports.push(port),
                Some(p) if p > 0 => {
                    port["port"] = json!(p);
                    ports.push(port);
                }
                Some(_) => {}
            }
        }
        ("LoadBalancer", ports)
    } else if let Some(config) = node_port {
        // addNodePortPorts: nil lets Kubernetes pick, 30000–32767 is used, else dropped.
        let mut ports = Vec::new();
        for (key, mut port) in [("serverPort", server_port), ("etcdPort", etcd_port)] {
            match int_field(Some(config), key) {
                None => ports.push(port),
                Some(p) if (30_000..=32_767).contains(&p) => {
                    port["nodePort"] = json!(p);
                    ports.push(port);
                }
                Some(_) => {}
            }
        }
        ("NodePort", ports)
    } else {
        ("ClusterIP", vec![server_port, etcd_port])
    };
    json!({"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": service_name(name), "ownerReferences": [owner_reference(cluster, "Cluster")]},
           "spec": {"type": service_type, "selector": server_labels(name), "ports": ports}})
}

pub fn headless_service(cluster: &Value) -> Value {
    let name = text(cluster, "/metadata/name");
    json!({"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": headless_name(name), "ownerReferences": [owner_reference(cluster, "Cluster")]},
           "spec": {"type": "ClusterIP", "clusterIP": "None", "selector": server_labels(name),
                    "ports": [{"name": "k3s-server-port", "protocol": "TCP", "port": HTTPS_PORT, "targetPort": K3S_SERVER_PORT},
                              {"name": "k3s-etcd-port", "protocol": "TCP", "port": ETCD_PORT}]}})
}

/// `Server.Config`: the K3s config file K3K writes once (created, never updated).
pub fn config_secret(
    cluster: &Value,
    init: bool,
    service_ip: &str,
    token: &str,
    sans: &[String],
) -> Value {
    let name = text(cluster, "/metadata/name");
    let mut config = String::from("cluster-init: true\n");
    if !init {
        config.push_str(&format!("server: https://{service_ip}\n"));
    }
    config.push_str(&format!("token: {token}\n"));
    for (key, pointer) in [
        ("cluster-cidr", "/status/clusterCIDR"),
        ("service-cidr", "/status/serviceCIDR"),
        ("cluster-dns", "/spec/clusterDNS"),
    ] {
        let value = text(cluster, pointer);
        if !value.is_empty() {
            config.push_str(&format!("{key}: {value}\n"));
        }
    }
    if !sans.is_empty() {
        config.push_str("tls-san:\n");
        for san in sans {
            config.push_str(&format!("- {san}\n"));
        }
    }
    if text(cluster, "/spec/mode") != "virtual" {
        config.push_str("disable-agent: true\negress-selector-mode: disabled\ndisable:\n- servicelb\n- traefik\n- metrics-server\n- local-storage\n");
    }
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(config);
    json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
           "metadata": {"name": config_secret_name(name, init), "ownerReferences": [owner_reference(cluster, "Cluster")]},
           "data": {"config.yaml": encoded}})
}

/// A ResourceList as K3K writes it back after reading it into Go quantities.
/// K3K's `<x>Limit` (container limits) and `<x>Resources` (pod-level resources, which take
/// precedence and leave the container without any), as server.go and agent/shared.go set them.
pub fn apply_resources(
    cluster: &Value,
    limit_field: &str,
    resources_field: &str,
    container: &mut Value,
    spec: &mut Value,
) {
    if let Some(limit) = cluster
        .pointer(&format!("/spec/{limit_field}"))
        .filter(|v| v.is_object())
    {
        container["resources"] = json!({"limits": canonical_resources(limit)});
    }
    if let Some(resources) = cluster
        .pointer(&format!("/spec/{resources_field}"))
        .filter(|v| v.is_object())
    {
        container["resources"] = json!({});
        let mut pod_level = resources.clone();
        for key in ["limits", "requests"] {
            if let Some(list) = resources.get(key) {
                pod_level[key] = canonical_resources(list);
            }
        }
        spec["resources"] = pod_level;
    }
}

pub fn canonical_resources(list: &Value) -> Value {
    let Some(map) = list.as_object() else {
        return list.clone();
    };
    let canonical: Map<String, Value> = map
        .iter()
        .map(|(k, v)| {
            let raw = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), json!(quantity::canonical(&raw)))
        })
        .collect();
    Value::Object(canonical)
}

/// The policy's value for `field` when the policy sets one, else the Cluster's own `spec`.
pub fn from_policy_or_spec(cluster: &Value, policy_field: &str, spec_field: &str) -> Option<Value> {
    cluster
        .pointer(&format!("/status/policy/{policy_field}"))
        .filter(|v| !v.is_null())
        .or_else(|| cluster.pointer(&format!("/spec/{spec_field}")))
        .filter(|v| !v.is_null())
        .cloned()
}

fn secret_volume(name: &str, secret: &str) -> Value {
    json!({"name": name, "secret": {"secretName": secret, "items": [{"key": "config.yaml", "path": "config.yaml"}]}})
}

/// K3K's `StartupCommand` template, reduced to its inputs: it changes exactly when theirs do.
fn startup_command(cluster: &Value, servers: i64) -> String {
    let args: Vec<&str> = cluster
        .pointer("/spec/serverArgs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    format!(
        "# K3K's startup script (fakehost stand-in)\nCLUSTER_MODE={} K3K_MODE={} RUNTIME_CLASS={} \
         exec /bin/k3s server --config /opt/rancher/k3s/init/config.yaml {}\n",
        if servers > 1 { "ha" } else { "single" },
        text(cluster, "/spec/mode"),
        text(cluster, "/spec/runtimeClassName"),
        args.join(" ")
    )
}

fn pod_spec(cluster: &Value, image: &str, servers: i64, persistent: bool) -> Value {
    let name = text(cluster, "/metadata/name");
    let container_name = server_name(name);
    let mut volumes = vec![
        secret_volume("initconfig", &config_secret_name(name, true)),
        secret_volume("config", &config_secret_name(name, false)),
    ];
    for empty in ["run", "varrun", "varlibcni", "varlog", "varlibkubelet"] {
        volumes.push(json!({"name": empty, "emptyDir": {}}));
    }
    if !persistent {
        volumes.push(json!({"name": "varlibrancherk3s", "emptyDir": {}}));
    }
    let mounts: Vec<Value> = [
        ("config", "/opt/rancher/k3s/server"),
        ("initconfig", "/opt/rancher/k3s/init"),
        ("run", "/run"),
        ("varrun", "/var/run"),
        ("varlibcni", "/var/lib/cni"),
        ("varlibkubelet", "/var/lib/kubelet"),
        ("varlibrancherk3s", "/var/lib/rancher/k3s"),
        ("varlog", "/var/log"),
    ]
    .iter()
    .map(|(n, p)| json!({"name": n, "mountPath": p}))
    .collect();
    // The Cluster's secretMounts for servers (role `server` or `all`), as K3K mounts them.
    let mut mounts = mounts;
    for mount in cluster
        .pointer("/spec/secretMounts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let secret = text(mount, "/secretName");
        if secret.is_empty() || !matches!(text(mount, "/role"), "" | "all" | "server") {
            continue;
        }
        let mut source = json!({"secretName": secret});
        for field in ["items", "defaultMode", "optional"] {
            if let Some(v) = mount.get(field) {
                source[field] = v.clone();
            }
        }
        volumes.push(json!({"name": secret, "secret": source}));
        let mut volume_mount =
            json!({"name": secret, "mountPath": text(mount, "/mountPath"), "readOnly": true});
        if !text(mount, "/subPath").is_empty() {
            volume_mount["subPath"] = json!(text(mount, "/subPath"));
        }
        mounts.push(volume_mount);
    }
    let mut env = vec![
        json!({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}),
        json!({"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}),
    ];
    env.extend(
        cluster
            .pointer("/spec/serverEnvs")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
    );
    let mut container = json!({
        "name": container_name, "image": image, "env": env, "volumeMounts": mounts,
        "command": ["/bin/sh", "-c", startup_command(cluster, servers)],
        "readinessProbe": {"initialDelaySeconds": 60, "failureThreshold": 5, "timeoutSeconds": 10, "tcpSocket": {"port": K3S_SERVER_PORT}},
        "livenessProbe": {"initialDelaySeconds": 10, "failureThreshold": 3, "periodSeconds": 3,
                          "exec": {"command": ["sh", "-c", "grep -q \"rejoin the cluster\" /var/log/k3s.log && exit 1 || exit 0"]}},
    });
    if text(cluster, "/spec/mode") == "virtual" {
        container["securityContext"] = json!({"privileged": true});
    }
    if let Some(context) = from_policy_or_spec(cluster, "securityContext", "securityContext") {
        container["securityContext"] = context;
    }
    let mut spec = json!({"volumes": volumes});
    apply_resources(
        cluster,
        "serverLimit",
        "serverResources",
        &mut container,
        &mut spec,
    );
    spec["containers"] = json!([container]);
    if let Some(affinity) = from_policy_or_spec(cluster, "serverAffinity", "serverAffinity") {
        spec["affinity"] = affinity;
    }
    if let Some(selector) = cluster
        .pointer("/spec/nodeSelector")
        .and_then(Value::as_object)
        .filter(|s| !s.is_empty())
    {
        spec["nodeSelector"] = json!(selector);
    }
    let priority = text(cluster, "/spec/priorityClass");
    if !priority.is_empty() {
        spec["priorityClassName"] = json!(priority);
    }
    if let Some(class) = from_policy_or_spec(cluster, "runtimeClassName", "runtimeClassName") {
        spec["runtimeClassName"] = class;
    }
    if let Some(host_users) = from_policy_or_spec(cluster, "hostUsers", "hostUsers") {
        spec["hostUsers"] = host_users;
    }
    spec
}

/// `Server.StatefulServer`, with the etcd-pod finalizer K3K puts on it when it creates it.
pub fn stateful_set(cluster: &Value, image: &str) -> Value {
    let name = text(cluster, "/metadata/name");
    let servers = cluster
        .pointer("/spec/servers")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let persistence = text(cluster, "/spec/persistence/type");
    let persistent = persistence.is_empty() || persistence == "dynamic";
    let mut spec = json!({
        "replicas": servers, "serviceName": headless_name(name),
        "selector": {"matchLabels": server_labels(name)},
        "template": {"metadata": {"labels": server_labels(name)}, "spec": pod_spec(cluster, image, servers, persistent)},
    });
    if persistent {
        let size = cluster
            .pointer("/spec/persistence/storageRequestSize")
            .map(|v| match v {
                Value::String(s) => quantity::canonical(s),
                other => quantity::canonical(&other.to_string()),
            })
            .unwrap_or_else(|| "2G".into());
        let mut claim_spec =
            json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}});
        let class = text(cluster, "/spec/persistence/storageClassName");
        if !class.is_empty() {
            claim_spec["storageClassName"] = json!(class);
        }
        spec["volumeClaimTemplates"] = json!([{"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "varlibrancherk3s", "ownerReferences": [owner_reference(cluster, "Cluster")]},
            "spec": claim_spec}]);
    }
    json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
           "metadata": {"name": server_name(name), "labels": server_labels(name), "finalizers": [ETCD_POD_FINALIZER],
                        "ownerReferences": [owner_reference(cluster, "Cluster")]},
           "spec": spec})
}
