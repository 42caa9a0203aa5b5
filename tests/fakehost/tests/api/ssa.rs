//! Server-side apply through kube-rs `Patch::Apply`: create, field ownership, conflicts
//! with force, removal of fields a manager stops applying, status apply.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::api::support::{clusters, start, start_with_k3k, status_of};

fn cm(data: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": data})
}

#[tokio::test]
async fn apply_creates_tracks_owners_and_conflicts() {
    let t = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let kaas = PatchParams::apply("kaas");
    let created = cms
        .patch(
            "applied",
            &kaas,
            &Patch::Apply(cm(json!({"a": "1", "b": "2"}))),
        )
        .await
        .expect("apply create");
    let managers: Vec<String> = created
        .metadata
        .managed_fields
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert_eq!(managers, vec!["kaas"]);

    // Re-applying the same thing writes nothing.
    let again = cms
        .patch(
            "applied",
            &kaas,
            &Patch::Apply(cm(json!({"a": "1", "b": "2"}))),
        )
        .await
        .expect("re-apply");
    assert_eq!(
        again.metadata.resource_version,
        created.metadata.resource_version
    );

    // Another manager setting a field kaas owns to a different value conflicts.
    let other = PatchParams::apply("someone-else");
    let error = cms
        .patch(
            "applied",
            &other,
            &Patch::Apply(cm(json!({"a": "changed"}))),
        )
        .await;
    let kube::Error::Api(status) = error.expect_err("conflict") else {
        panic!("expected API error")
    };
    assert_eq!(status.code, 409);
    assert!(
        status.message.contains("kaas") && status.message.contains(".data.a"),
        "{}",
        status.message
    );

    // Same value: shared ownership, no conflict.
    cms.patch("applied", &other, &Patch::Apply(cm(json!({"a": "1"}))))
        .await
        .expect("shared apply");
    // Force takes the field.
    let forced = cms
        .patch(
            "applied",
            &other.clone().force(),
            &Patch::Apply(cm(json!({"a": "forced"}))),
        )
        .await
        .expect("forced");
    assert_eq!(
        forced
            .data
            .as_ref()
            .and_then(|d| d.get("a"))
            .map(String::as_str),
        Some("forced")
    );

    // kaas stops applying `b` and `a`: b (owned only by kaas) goes, a (now someone-else's) stays.
    let pruned = cms
        .patch("applied", &kaas, &Patch::Apply(cm(json!({}))))
        .await
        .expect("prune");
    let data = pruned.data.unwrap_or_default();
    assert!(
        !data.contains_key("b"),
        "fields a manager stops applying are removed"
    );
    assert_eq!(data.get("a").map(String::as_str), Some("forced"));

    // fieldManager is required for apply.
    let no_manager = PatchParams::default();
    let (code, _) = status_of(
        cms.patch("applied", &no_manager, &Patch::Apply(cm(json!({}))))
            .await,
    );
    assert_eq!(code, 422);
}

#[tokio::test]
async fn apply_merges_list_items_by_key_between_managers() {
    let t = start().await;
    let deployments: Api<Deployment> = Api::namespaced(t.client.clone(), "default");
    let base = |containers: serde_json::Value| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
               "spec": {"selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": containers}}}})
    };
    deployments
        .patch(
            "web",
            &PatchParams::apply("kaas"),
            &Patch::Apply(base(json!([{"name": "main", "image": "nginx:1"}]))),
        )
        .await
        .expect("kaas apply");
    let merged = deployments
        .patch(
            "web",
            &PatchParams::apply("injector"),
            &Patch::Apply(base(json!([{"name": "sidecar", "image": "envoy:1"}]))),
        )
        .await
        .expect("injector apply");
    let names: Vec<String> = merged
        .spec
        .expect("spec")
        .template
        .spec
        .expect("pod")
        .containers
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(
        names,
        vec!["main", "sidecar"],
        "containers are a map keyed by name"
    );
}

#[tokio::test]
async fn apply_to_custom_resource_status() {
    let t = start_with_k3k().await;
    let api = clusters(&t.client, "default");
    let spec = json!({"apiVersion": "k3k.io/v1beta1", "kind": "Cluster", "metadata": {"name": "c1"},
                      "spec": {"mode": "shared", "servers": 1, "version": "v1.33.1-k3s1"}, "status": {"phase": "Ready"}});
    let created = api
        .patch("c1", &PatchParams::apply("kaas"), &Patch::Apply(spec))
        .await
        .expect("apply");
    assert_ne!(
        created.data["status"]["phase"], "Ready",
        "status is ignored on the main endpoint"
    );
    let status = json!({"apiVersion": "k3k.io/v1beta1", "kind": "Cluster", "metadata": {"name": "c1"}, "status": {"phase": "Provisioning"}});
    let updated = api
        .patch_status("c1", &PatchParams::apply("k3k"), &Patch::Apply(status))
        .await
        .expect("status apply");
    assert_eq!(updated.data["status"]["phase"], "Provisioning");
    assert_eq!(updated.data["spec"]["servers"], 1);
    let (code, reason) = status_of(
        api.patch(
            "c1",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"servers": 2}})),
        )
        .await,
    );
    assert_eq!((code, reason.as_str()), (415, "UnsupportedMediaType"));
}
