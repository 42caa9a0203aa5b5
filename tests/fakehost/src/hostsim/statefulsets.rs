//! The StatefulSet controller (kube-controller-manager): pods `<sts>-<ordinal>` from the
//! template, labelled with the revision (`controller-revision-hash`), the pod name and index,
//! controlled by the StatefulSet, with a volume per claim template (the claims themselves
//! are not made). `OrderedReady`: one pod at a time, each only once the lower ordinals are
//! Running and Ready; a deleted pod is made again once it is gone (not while it
//! terminates); scale-down removes the highest ordinal first; a template change rolls the
//! pods from the highest ordinal down, one at a time. Status as `updateStatus` counts it.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{
    controller_ref, controller_uid, deleting, list, running_and_ready, selector_matches,
    template_hash, text, write_options,
};
use crate::engine::{DeleteOptions, Engine};
use crate::kinds::ResourceRef;

const MANAGER: &str = "kube-controller-manager";
pub const REVISION_LABEL: &str = "controller-revision-hash";

fn statefulsets() -> ResourceRef {
    ResourceRef::new("apps", "statefulsets")
}

/// The revision name of the StatefulSet's current template.
pub fn update_revision(sts: &Value) -> String {
    let template = sts
        .pointer("/spec/template")
        .cloned()
        .unwrap_or_else(|| json!({}));
    format!(
        "{}-{}",
        text(sts, "/metadata/name"),
        template_hash(&template)
    )
}

fn new_pod(sts: &Value, ordinal: usize, revision: &str) -> Value {
    let name = format!("{}-{ordinal}", text(sts, "/metadata/name"));
    let mut pod = sts
        .pointer("/spec/template")
        .cloned()
        .unwrap_or_else(|| json!({}));
    pod["apiVersion"] = json!("v1");
    pod["kind"] = json!("Pod");
    let metadata = &mut pod["metadata"];
    metadata["name"] = json!(name);
    metadata["ownerReferences"] = json!([controller_ref(sts, "apps/v1", "StatefulSet")]);
    for (key, value) in [
        (REVISION_LABEL, revision.to_string()),
        ("statefulset.kubernetes.io/pod-name", name.clone()),
        ("apps.kubernetes.io/pod-index", ordinal.to_string()),
    ] {
        metadata["labels"][key] = json!(value);
    }
    pod["spec"]["hostname"] = json!(name);
    if let Some(service) = sts.pointer("/spec/serviceName").and_then(Value::as_str) {
        pod["spec"]["subdomain"] = json!(service);
    }
    let claims = sts
        .pointer("/spec/volumeClaimTemplates")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for claim in claims {
        let volume = text(&claim, "/metadata/name").to_string();
        let volumes = pod["spec"]["volumes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if volumes.iter().any(|v| text(v, "/name") == volume) {
            continue;
        }
        let mut with_claim = volumes;
        with_claim.push(json!({"name": volume, "persistentVolumeClaim": {"claimName": format!("{volume}-{name}")}}));
        pod["spec"]["volumes"] = json!(with_claim);
    }
    pod
}

fn ordinal_of(sts_name: &str, pod: &Value) -> Option<usize> {
    text(pod, "/metadata/name")
        .strip_prefix(sts_name)?
        .strip_prefix('-')?
        .parse()
        .ok()
}

pub(super) fn reconcile(engine: &Engine) {
    let pods_ref = ResourceRef::core("pods");
    for sts in list(engine, &statefulsets(), None) {
        let ns = text(&sts, "/metadata/namespace").to_string();
        let name = text(&sts, "/metadata/name").to_string();
        let uid = text(&sts, "/metadata/uid").to_string();
        let selector = sts
            .pointer("/spec/selector")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let pods: BTreeMap<usize, Value> = list(engine, &pods_ref, Some(&ns))
            .into_iter()
            .filter(|p| controller_uid(p) == Some(uid.as_str()) && selector_matches(&selector, p))
            .filter_map(|p| ordinal_of(&name, &p).map(|o| (o, p)))
            .collect();
        let replicas = sts
            .pointer("/spec/replicas")
            .and_then(Value::as_u64)
            .unwrap_or(1) as usize;
        let revision = update_revision(&sts);
        if !deleting(&sts) {
            step(engine, &sts, &pods, replicas, &revision);
        }
        status(engine, &sts, &pods, replicas, &revision);
    }
}

/// One move of `OrderedReady` management (create, remove or replace one pod), if any is due.
fn step(
    engine: &Engine,
    sts: &Value,
    pods: &BTreeMap<usize, Value>,
    replicas: usize,
    revision: &str,
) {
    let ns = text(sts, "/metadata/namespace");
    let pods_ref = ResourceRef::core("pods");
    let options = write_options(MANAGER);
    for ordinal in 0..replicas {
        match pods.get(&ordinal) {
            None => {
                if let Err(error) = engine.create(
                    &pods_ref,
                    Some(ns),
                    new_pod(sts, ordinal, revision),
                    &options,
                ) {
                    tracing::debug!(%error, "statefulset pod creation");
                }
                return;
            }
            Some(pod) if deleting(pod) || !running_and_ready(pod) => return,
            Some(_) => {}
        }
    }
    if pods.values().any(deleting) {
        return;
    }
    let delete = |pod: &Value| {
        let _ = engine.delete(
            &pods_ref,
            Some(ns),
            text(pod, "/metadata/name"),
            &DeleteOptions::default(),
        );
    };
    if let Some((_, condemned)) = pods.range(replicas..).next_back() {
        delete(condemned);
        return;
    }
    let outdated = pods
        .values()
        .rev()
        .find(|p| text(p, &format!("/metadata/labels/{REVISION_LABEL}")) != revision);
    if let Some(outdated) = outdated {
        delete(outdated);
    }
}

fn status(
    engine: &Engine,
    sts: &Value,
    pods: &BTreeMap<usize, Value>,
    replicas: usize,
    revision: &str,
) {
    let revision_of =
        |p: &Value| text(p, &format!("/metadata/labels/{REVISION_LABEL}")).to_string();
    let previous = sts.get("status").cloned().unwrap_or_else(|| json!({}));
    let mut current_revision = Some(text(&previous, "/currentRevision").to_string())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| revision.to_string());
    let created = pods.len();
    let ready = pods.values().filter(|p| running_and_ready(p)).count();
    let live: Vec<&Value> = pods.values().filter(|p| !deleting(p)).collect();
    let updated = live.iter().filter(|p| revision_of(p) == revision).count();
    let mut current = live
        .iter()
        .filter(|p| revision_of(p) == current_revision)
        .count();
    // completeRollingUpdate: every replica updated and ready makes the update current.
    if updated == replicas && ready == replicas && created == replicas {
        current_revision = revision.to_string();
        current = updated;
    }
    let status = json!({
        "observedGeneration": sts.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
        "replicas": created, "readyReplicas": ready, "availableReplicas": ready,
        "currentReplicas": current, "updatedReplicas": updated,
        "currentRevision": current_revision, "updateRevision": revision,
        "collisionCount": previous.get("collisionCount").cloned().unwrap_or(json!(0)),
    });
    if sts.get("status") == Some(&status) {
        return;
    }
    let mut updated_sts = sts.clone();
    updated_sts["status"] = status;
    if let Err(error) = engine.update_status(
        &statefulsets(),
        Some(text(sts, "/metadata/namespace")),
        updated_sts,
        &write_options(MANAGER),
    ) {
        tracing::debug!(%error, "statefulset status");
    }
}
