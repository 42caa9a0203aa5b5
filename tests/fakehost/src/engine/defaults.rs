//! Defaults and admission-time mutations the real control plane applies on create, so
//! clients see the same shapes: namespace finalizers and the metadata.name label, pod
//! defaults plus DefaultTolerationSeconds, service IP/nodePort allocation, workload
//! defaults, CRD status.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::kinds::{ResourceRef, ResourceType, crd};
use crate::store::StoreInner;

fn object_mut<'a>(value: &'a mut Value, key: &str) -> Option<&'a mut Map<String, Value>> {
    object_mut_in(value.as_object_mut()?, key)
}

fn default_field(map: &mut Map<String, Value>, key: &str, value: Value) {
    map.entry(key.to_string()).or_insert(value);
}

/// Applies create-time defaults for built-in kinds.
pub fn on_create(store: &StoreInner, rt: &ResourceType, object: &mut Value, now: &str) {
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    match (rt.group.as_str(), rt.resource.as_str()) {
        ("", "namespaces") => {
            if let Some(labels) = object
                .pointer_mut("/metadata")
                .and_then(|m| object_mut(m, "labels"))
            {
                labels.insert("kubernetes.io/metadata.name".into(), json!(name));
            }
            if let Some(spec) = object_mut(object, "spec") {
                spec.insert("finalizers".into(), json!(["kubernetes"]));
            }
            if let Some(status) = object_mut(object, "status") {
                status.insert("phase".into(), json!("Active"));
            }
        }
        ("", "pods") => pod_defaults(object),
        ("", "services") => service_defaults(store, object),
        ("", "secrets") => {
            if let Some(map) = object.as_object_mut() {
                default_field(map, "type", json!("Opaque"));
            }
        }
        ("", "persistentvolumeclaims") => {
            if let Some(status) = object_mut(object, "status") {
                status.insert("phase".into(), json!("Pending"));
            }
        }
        ("apps", "deployments") => {
            if let Some(spec) = object_mut(object, "spec") {
                default_field(spec, "replicas", json!(1));
                default_field(spec, "revisionHistoryLimit", json!(10));
                default_field(spec, "progressDeadlineSeconds", json!(600));
                default_field(
                    spec,
                    "strategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
                );
            }
        }
        ("apps", "statefulsets") => {
            if let Some(spec) = object_mut(object, "spec") {
                default_field(spec, "replicas", json!(1));
                default_field(spec, "revisionHistoryLimit", json!(10));
                default_field(spec, "podManagementPolicy", json!("OrderedReady"));
                default_field(
                    spec,
                    "updateStrategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
                );
            }
        }
        ("batch", "jobs") => {
            if let Some(spec) = object_mut(object, "spec") {
                if !spec.contains_key("completions") && !spec.contains_key("parallelism") {
                    spec.insert("completions".into(), json!(1));
                }
                default_field(spec, "parallelism", json!(1));
                if !spec.contains_key("backoffLimitPerIndex") {
                    default_field(spec, "backoffLimit", json!(6));
                }
                default_field(spec, "completionMode", json!("NonIndexed"));
                default_field(spec, "suspend", json!(false));
                default_field(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
            }
        }
        ("batch", "cronjobs") => {
            if let Some(spec) = object_mut(object, "spec") {
                default_field(spec, "concurrencyPolicy", json!("Allow"));
                default_field(spec, "suspend", json!(false));
                default_field(spec, "successfulJobsHistoryLimit", json!(3));
                default_field(spec, "failedJobsHistoryLimit", json!(1));
            }
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            let status = crd::accepted_status(object, now);
            if let Some(map) = object.as_object_mut() {
                map.insert("status".into(), status);
            }
            // kube-apiserver holds a CRD until its custom resources are gone.
            if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                let finalizers = metadata.entry("finalizers").or_insert_with(|| json!([]));
                if let Some(list) = finalizers.as_array_mut() {
                    let cleanup = json!(crate::engine::delete::CRD_CLEANUP_FINALIZER);
                    if !list.contains(&cleanup) {
                        list.push(cleanup);
                    }
                }
            }
        }
        _ => {}
    }
}

/// Defaults that need the new object's uid: a Job's generated selector and pod labels
/// (unless `spec.manualSelector`), as the Job strategy's `generateSelector` does.
pub fn with_uid(rt: &ResourceType, object: &mut Value, uid: &str) {
    if (rt.group.as_str(), rt.resource.as_str()) != ("batch", "jobs")
        || object.pointer("/spec/manualSelector") == Some(&json!(true))
    {
        return;
    }
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let Some(spec) = object_mut(object, "spec") else {
        return;
    };
    spec.insert(
        "selector".into(),
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
    );
    let labels = object_mut(
        spec.entry("template").or_insert_with(|| json!({})),
        "metadata",
    )
    .and_then(|metadata| object_mut_in(metadata, "labels"));
    if let Some(labels) = labels {
        for (key, value) in [
            ("batch.kubernetes.io/controller-uid", uid),
            ("batch.kubernetes.io/job-name", name.as_str()),
            ("controller-uid", uid),
            ("job-name", name.as_str()),
        ] {
            labels.insert(key.into(), json!(value));
        }
    }
}

fn object_mut_in<'a>(
    map: &'a mut Map<String, Value>,
    key: &str,
) -> Option<&'a mut Map<String, Value>> {
    let entry = map.entry(key.to_string()).or_insert_with(|| json!({}));
    if !entry.is_object() {
        *entry = json!({});
    }
    entry.as_object_mut()
}

fn pod_defaults(object: &mut Value) {
    if let Some(spec) = object_mut(object, "spec") {
        default_field(spec, "restartPolicy", json!("Always"));
        default_field(spec, "dnsPolicy", json!("ClusterFirst"));
        default_field(spec, "schedulerName", json!("default-scheduler"));
        default_field(spec, "terminationGracePeriodSeconds", json!(30));
        default_field(spec, "serviceAccountName", json!("default"));
        if let Some(containers) = spec.get_mut("containers").and_then(Value::as_array_mut) {
            for container in containers.iter_mut().filter_map(Value::as_object_mut) {
                let image = container
                    .get("image")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let latest = !image.contains(':') || image.ends_with(":latest");
                default_field(
                    container,
                    "imagePullPolicy",
                    json!(if latest { "Always" } else { "IfNotPresent" }),
                );
                default_field(
                    container,
                    "terminationMessagePath",
                    json!("/dev/termination-log"),
                );
                default_field(container, "terminationMessagePolicy", json!("File"));
            }
        }
        // DefaultTolerationSeconds runs before PodTolerationRestriction in kube-apiserver, so
        // a toleration whitelist must admit these two.
        let tolerations = spec.entry("tolerations").or_insert_with(|| json!([]));
        if let Some(list) = tolerations.as_array_mut() {
            for key in [
                "node.kubernetes.io/not-ready",
                "node.kubernetes.io/unreachable",
            ] {
                let present = list.iter().any(|t| {
                    t.get("key").and_then(Value::as_str) == Some(key)
                        && t.get("effect")
                            .and_then(Value::as_str)
                            .is_none_or(|e| e == "NoExecute")
                });
                if !present {
                    list.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
                }
            }
        }
    }
    if let Some(status) = object_mut(object, "status") {
        status.insert("phase".into(), json!("Pending"));
        status.insert("qosClass".into(), json!("BestEffort"));
    }
}

fn service_defaults(store: &StoreInner, object: &mut Value) {
    let services = store.list(&ResourceRef::core("services"), None);
    let used_ips: BTreeSet<String> = services
        .iter()
        .filter_map(|s| {
            s.pointer("/spec/clusterIP")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect();
    let mut used_ports: BTreeSet<u64> = services
        .iter()
        .filter_map(|s| s.pointer("/spec/ports").and_then(Value::as_array))
        .flatten()
        .filter_map(|p| p.get("nodePort").and_then(Value::as_u64))
        .collect();
    let Some(spec) = object_mut(object, "spec") else {
        return;
    };
    default_field(spec, "type", json!("ClusterIP"));
    default_field(spec, "sessionAffinity", json!("None"));
    let service_type = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    if service_type != "ExternalName" && !spec.contains_key("clusterIP") {
        // K3s' default service CIDR is 10.43.0.0/16; .0.1 is the kubernetes service.
        let ip = (10u32..65_000)
            .map(|n| format!("10.43.{}.{}", n / 256, n % 256))
            .find(|ip| !used_ips.contains(ip))
            .unwrap_or_else(|| "10.43.255.254".into());
        spec.insert("clusterIP".into(), json!(ip));
        spec.insert("clusterIPs".into(), json!([ip]));
        spec.insert("ipFamilies".into(), json!(["IPv4"]));
        spec.insert("ipFamilyPolicy".into(), json!("SingleStack"));
    }
    let needs_node_port = service_type == "NodePort" || service_type == "LoadBalancer";
    if needs_node_port {
        default_field(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for port in ports.iter_mut().filter_map(Value::as_object_mut) {
            default_field(port, "protocol", json!("TCP"));
            if let Some(number) = port.get("port").cloned() {
                default_field(port, "targetPort", number);
            }
            if needs_node_port && !port.contains_key("nodePort") {
                let free = (30_000u64..=32_767)
                    .find(|p| !used_ports.contains(p))
                    .unwrap_or(32_767);
                used_ports.insert(free);
                port.insert("nodePort".into(), json!(free));
            }
        }
    }
}
