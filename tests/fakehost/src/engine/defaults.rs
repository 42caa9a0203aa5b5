//! Defaults and admission-time mutations the real control plane applies, so clients see the
//! same shapes: on create namespace finalizers and the metadata.name label, pod defaults plus
//! DefaultTolerationSeconds, service IP/nodePort allocation (`services`), CRD status; on
//! every write the workload defaults and a Service's allocated values.

use serde_json::{Map, Value, json};

use super::services;
use crate::kinds::{ResourceType, crd};
use crate::store::StoreInner;

pub(super) fn object_mut<'a>(
    value: &'a mut Value,
    key: &str,
) -> Option<&'a mut Map<String, Value>> {
    object_mut_in(value.as_object_mut()?, key)
}

pub(super) fn default_field(map: &mut Map<String, Value>, key: &str, value: Value) {
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
        ("", "services") => services::on_create(store, object),
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
        ("apps" | "batch", _) => workload_defaults(rt, object),
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

/// Field defaults of the workload kinds (applied on every write, as the API server's
/// defaulting runs on every decode).
fn workload_defaults(rt: &ResourceType, object: &mut Value) {
    match (rt.group.as_str(), rt.resource.as_str()) {
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
        ("apps", "daemonsets") => {
            if let Some(spec) = object_mut(object, "spec") {
                default_field(spec, "revisionHistoryLimit", json!(10));
                default_field(
                    spec,
                    "updateStrategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
                );
            }
        }
        _ => {}
    }
}

/// Defaults kube-apiserver applies when an object is replaced or patched (`current` is the
/// stored one): the workload field defaults again, and a Service's allocated values.
pub fn on_update(store: &StoreInner, rt: &ResourceType, current: &Value, next: &mut Value) {
    match (rt.group.as_str(), rt.resource.as_str()) {
        ("", "services") => services::on_update(store, current, next),
        ("apps" | "batch", _) => workload_defaults(rt, next),
        _ => {}
    }
}

/// Checks that need the store (a Service's nodePorts, the namespace's quotas), after
/// defaulting, on create (`current` None) and update.
pub fn check(
    store: &StoreInner,
    rt: &ResourceType,
    current: Option<&Value>,
    object: &Value,
) -> Result<(), crate::errors::ApiError> {
    match (rt.group.as_str(), rt.resource.as_str()) {
        ("", "services") => {
            services::check_node_ports(store, current, object)?;
            super::quota::check(store, "services", current, object)
        }
        ("", "pods") => super::quota::check(store, "pods", current, object),
        _ => Ok(()),
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
                // As the API server's pod defaulting: a resource with a limit and no request
                // is requested at its limit (what quota and schedulers then count).
                if let Some(resources) = container
                    .get_mut("resources")
                    .and_then(Value::as_object_mut)
                    && let Some(limits) =
                        resources.get("limits").and_then(Value::as_object).cloned()
                {
                    let requests = resources.entry("requests").or_insert_with(|| json!({}));
                    if let Some(requests) = requests.as_object_mut() {
                        for (name, value) in limits {
                            requests.entry(name).or_insert(value);
                        }
                    }
                }
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
