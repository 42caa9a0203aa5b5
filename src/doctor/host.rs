//! The checks of the host cluster: the K3s API server's version, the K3K CRDs and
//! controller, the PodTolerationRestriction admission plugin (a dry-run probe) and a
//! default StorageClass.

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::ListParams;
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::{Api, Client};

use super::{Check, fail, one_line, pass, warn};
use crate::host::names::K3K_CLUSTER_FINALIZER;
use crate::reconcile::connection::{
    K3K_CRDS, PROBE_NAMESPACE, ProbeError, enforces_toleration_restriction,
};

const DEFAULT_CLASS_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";
/// How long a Cluster may sit on K3K's finalizer before doctor blames the controller.
const STUCK_DELETING: Duration = Duration::from_secs(5 * 60);

pub(super) fn version_check(git_version: &str, kubeconfig: Option<&Path>) -> Check {
    let from = kubeconfig
        .map(|p| format!(" (credentials from {})", p.display()))
        .unwrap_or_default();
    let minor = git_version
        .trim_start_matches('v')
        .split('.')
        .nth(1)
        .and_then(|m| m.parse::<u32>().ok());
    match minor {
        Some(m) if m >= 30 => pass("host", format!("reachable, Kubernetes {git_version}{from}")),
        Some(_) => warn(
            "host",
            format!("reachable, Kubernetes {git_version}{from}: older than kaas is tested with"),
            "upgrade K3s to v1.30 or newer",
        ),
        None => warn(
            "host",
            format!("reachable, but its version \"{git_version}\" is not understood{from}"),
            "check that host.kubeconfig points at the K3s API server",
        ),
    }
}

pub(super) async fn k3k_crds(client: &Client) -> Check {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut missing = Vec::new();
    for name in K3K_CRDS {
        match api.get_opt(name).await {
            Ok(Some(_)) => {}
            Ok(None) => missing.push(name),
            Err(e) => {
                return warn(
                    "k3k-crds",
                    format!("cannot read CRD {name}: {}", one_line(&e)),
                    "give kaas's host account read access to customresourcedefinitions",
                );
            }
        }
    }
    if missing.is_empty() {
        pass("k3k-crds", format!("installed: {}", K3K_CRDS.join(", ")))
    } else {
        fail(
            "k3k-crds",
            format!("missing: {}", missing.join(", ")),
            "install the K3K chart: install.sh puts it into /var/lib/rancher/k3s/server/manifests/k3k.yaml \
             (check `kubectl -n kube-system get helmchart k3k` and the helm-install-k3k job)",
        )
    }
}

fn cluster_api(client: &Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("k3k.io", "v1beta1", "Cluster");
    Api::all_with(client.clone(), &ApiResource::from_gvk(&gvk))
}

/// What the Clusters on the host say about the controller.
#[derive(Debug, Default, PartialEq, Eq)]
struct ClusterEvidence {
    total: usize,
    with_status: usize,
    stuck_deleting: Vec<String>,
}

fn cluster_evidence(clusters: &[DynamicObject], now: jiff::Timestamp) -> ClusterEvidence {
    let mut ev = ClusterEvidence {
        total: clusters.len(),
        ..Default::default()
    };
    for c in clusters {
        let phase = c.data.pointer("/status/phase").and_then(|p| p.as_str());
        if matches!(phase, Some(p) if !p.is_empty() && p != "Unknown") {
            ev.with_status += 1;
        }
        let finalized = c
            .metadata
            .finalizers
            .as_ref()
            .is_some_and(|f| f.iter().any(|f| f == K3K_CLUSTER_FINALIZER));
        if let Some(ts) = &c.metadata.deletion_timestamp {
            let since = now.duration_since(ts.0);
            if finalized && since.as_secs() >= STUCK_DELETING.as_secs() as i64 {
                ev.stuck_deleting.push(format!(
                    "{}/{}",
                    c.metadata.namespace.as_deref().unwrap_or(""),
                    c.metadata.name.as_deref().unwrap_or("")
                ));
            }
        }
    }
    ev
}

pub(super) async fn k3k_controller(client: &Client) -> Check {
    const NAME: &str = "k3k-controller";
    let clusters = match cluster_api(client).list(&ListParams::default()).await {
        Ok(l) => l.items,
        Err(e) => {
            return warn(
                NAME,
                format!("cannot list K3K Clusters: {}", one_line(&e)),
                "give kaas's host account read access to clusters.k3k.io",
            );
        }
    };
    let ev = cluster_evidence(&clusters, jiff::Timestamp::now());
    if !ev.stuck_deleting.is_empty() {
        return fail(
            NAME,
            format!(
                "Clusters stuck on K3K's finalizer for over {} min: {}; the controller is not running",
                STUCK_DELETING.as_secs() / 60,
                ev.stuck_deleting.join(", ")
            ),
            "check the k3k Deployment (kubectl -n k3k-system get deploy,pods) and its logs",
        );
    }
    let deployments: Api<Deployment> = Api::all(client.clone());
    let found = deployments
        .list(&ListParams::default().labels("app.kubernetes.io/name=k3k"))
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    if let Some(d) = found.iter().find(|d| {
        d.status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0)
            > 0
    }) {
        return pass(
            NAME,
            format!(
                "Deployment {}/{} is available",
                d.metadata.namespace.as_deref().unwrap_or(""),
                d.metadata.name.as_deref().unwrap_or("")
            ),
        );
    }
    if ev.with_status > 0 {
        return pass(
            NAME,
            format!(
                "{} of {} Clusters carry a status set by the controller and none is stuck deleting",
                ev.with_status, ev.total
            ),
        );
    }
    let detail = if found.is_empty() {
        "no k3k Deployment found and no Cluster with a status yet: cannot confirm the controller runs"
            .to_string()
    } else {
        "the k3k Deployment has no available replica".to_string()
    };
    warn(
        NAME,
        detail,
        "check `kubectl -n k3k-system get deploy,pods`; the controller comes with the K3K chart",
    )
}

pub(super) async fn pod_toleration_restriction(client: &Client) -> Check {
    const NAME: &str = "pod-toleration-restriction";
    let fix = "enable it in K3s: /etc/rancher/k3s/config.yaml.d/50-kaas.yaml with \
               `kube-apiserver-arg+: [enable-admission-plugins=NodeRestriction,PodTolerationRestriction]` \
               (install.sh writes it), then restart K3s (systemctl restart k3s)";
    match enforces_toleration_restriction(client).await {
        Ok(false) => fail(
            NAME,
            "not enabled: a pod with a toleration its namespace's whitelist forbids was admitted (dry run)",
            fix,
        ),
        Ok(true) => pass(
            NAME,
            "enabled: a forbidden toleration was refused by admission (dry run)",
        ),
        Err(ProbeError::Namespace(e)) => warn(
            NAME,
            format!("cannot prepare the probe namespace {PROBE_NAMESPACE}: {e}"),
            "give kaas's host account the installer's ClusterRole (namespaces: patch)",
        ),
        Err(ProbeError::Pod(e)) => warn(
            NAME,
            format!("the probe pod (dry run) failed for another reason: {e}"),
            "give kaas's host account pods: create in the kaas-doctor namespace, then re-run",
        ),
    }
}

pub(super) async fn default_storage_class(client: &Client) -> Check {
    const NAME: &str = "default-storage-class";
    let api: Api<StorageClass> = Api::all(client.clone());
    let classes = match api.list(&ListParams::default()).await {
        Ok(l) => l.items,
        Err(e) => {
            return warn(
                NAME,
                format!("cannot list StorageClasses: {}", one_line(&e)),
                "give kaas's host account read access to storageclasses",
            );
        }
    };
    let defaults: Vec<String> = classes
        .iter()
        .filter(|c| {
            c.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
                .is_some_and(|v| v == "true")
        })
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    let fix_default = "mark one default: kubectl patch storageclass local-path -p \
        '{\"metadata\":{\"annotations\":{\"storageclass.kubernetes.io/is-default-class\":\"true\"}}}'";
    match defaults.len() {
        1 => pass(NAME, format!("{} is the default", defaults.join(""))),
        0 if classes.is_empty() => fail(
            NAME,
            "no StorageClass at all: virtual clusters use dynamic persistence and would stay Pending",
            "keep K3s's local-path provisioner enabled (do not pass --disable local-storage), or install one",
        ),
        0 => fail(
            NAME,
            "no default StorageClass: virtual clusters use dynamic persistence and would stay Pending",
            fix_default,
        ),
        _ => warn(
            NAME,
            format!("several defaults: {}", defaults.join(", ")),
            "keep exactly one StorageClass annotated as the default",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_stuck_on_the_finalizer_is_evidence_against_the_controller() {
        let now = jiff::Timestamp::now();
        let old = now - jiff::SignedDuration::from_secs(600);
        let mk = |phase: Option<&str>, deleting: Option<jiff::Timestamp>| {
            let mut o = DynamicObject::new(
                "c",
                &ApiResource::from_gvk(&GroupVersionKind::gvk("k3k.io", "v1beta1", "Cluster")),
            )
            .within("ns");
            if let Some(p) = phase {
                o.data = serde_json::json!({"status": {"phase": p}});
            }
            o.metadata.finalizers = Some(vec![K3K_CLUSTER_FINALIZER.into()]);
            o.metadata.deletion_timestamp =
                deleting.map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time);
            o
        };
        let ev = cluster_evidence(
            &[
                mk(Some("Ready"), None),
                mk(Some("Unknown"), None),
                mk(None, Some(old)),
                mk(None, Some(now)),
            ],
            now,
        );
        assert_eq!(ev.total, 4);
        assert_eq!(ev.with_status, 1);
        assert_eq!(ev.stuck_deleting, vec!["ns/c".to_string()]);
    }
}
