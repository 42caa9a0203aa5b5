//! REST conventions through kube-rs: identity fields, conflicts, status subresource,
//! generation, dry run, validation, finalizers, namespace cascade, GC, selectors, paging.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::api::support::{start, status_of};

fn config_map(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}),
    )
    .expect("configmap")
}

fn deployment(name: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "main", "image": "nginx:1.27"}]}}}
    }))
    .expect("deployment")
}

async fn create_namespace(client: &kube::Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": name}})).expect("namespace");
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace created");
}

#[tokio::test]
async fn create_sets_identity_and_rejects_duplicates_and_stale_updates() {
    let t = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let created = cms
        .create(&PostParams::default(), &config_map("a", json!({})))
        .await
        .expect("create");
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    let first_rv = created.resource_version().expect("resourceVersion");

    let (code, reason) = status_of(
        cms.create(&PostParams::default(), &config_map("a", json!({})))
            .await,
    );
    assert_eq!((code, reason.as_str()), (409, "AlreadyExists"));

    let mut changed = created.clone();
    changed.data = Some([("k".to_string(), "v2".to_string())].into());
    let updated = cms
        .replace("a", &PostParams::default(), &changed)
        .await
        .expect("update");
    assert_ne!(updated.resource_version(), Some(first_rv.clone()));

    // `changed` still carries the first resourceVersion: now stale.
    let (code, reason) = status_of(cms.replace("a", &PostParams::default(), &changed).await);
    assert_eq!((code, reason.as_str()), (409, "Conflict"));

    // A no-op update stores nothing: same resourceVersion.
    let again = cms
        .replace("a", &PostParams::default(), &updated)
        .await
        .expect("no-op update");
    assert_eq!(again.resource_version(), updated.resource_version());
}

#[tokio::test]
async fn validation_missing_namespace_and_dry_run() {
    let t = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let (code, reason) = status_of(
        cms.create(&PostParams::default(), &config_map("Bad_Name", json!({})))
            .await,
    );
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    let (code, _) = status_of(
        cms.create(
            &PostParams::default(),
            &config_map("ok", json!({"bad key!": "x"})),
        )
        .await,
    );
    assert_eq!(code, 422);

    let missing: Api<ConfigMap> = Api::namespaced(t.client.clone(), "nope");
    let (code, reason) = status_of(
        missing
            .create(&PostParams::default(), &config_map("x", json!({})))
            .await,
    );
    assert_eq!((code, reason.as_str()), (404, "NotFound"));

    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let answered = cms
        .create(&dry, &config_map("dry", json!({})))
        .await
        .expect("dry-run create");
    assert_eq!(answered.name_any(), "dry");
    assert_eq!(status_of(cms.get("dry").await).0, 404);

    cms.create(&PostParams::default(), &config_map("keep", json!({})))
        .await
        .expect("create");
    let dry_delete = DeleteParams {
        dry_run: true,
        ..DeleteParams::default()
    };
    cms.delete("keep", &dry_delete)
        .await
        .expect("dry-run delete");
    assert!(
        cms.get("keep").await.is_ok(),
        "dry-run delete must not delete"
    );
}

#[tokio::test]
async fn status_subresource_and_generation() {
    let t = start().await;
    let deployments: Api<Deployment> = Api::namespaced(t.client.clone(), "default");
    let mut with_status = deployment("web");
    with_status.status = Some(serde_json::from_value(json!({"replicas": 9})).expect("status"));
    let created = deployments
        .create(&PostParams::default(), &with_status)
        .await
        .expect("create");
    assert!(
        created.status.as_ref().and_then(|s| s.replicas).is_none(),
        "create must drop status"
    );
    assert_eq!(created.metadata.generation, Some(1));

    // Labels are metadata: no generation bump.
    let labelled = deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .expect("label patch");
    assert_eq!(labelled.metadata.generation, Some(1));

    // Status through the main endpoint is ignored, and does not bump generation.
    let ignored = deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 5}})),
        )
        .await
        .expect("status via main endpoint");
    assert!(ignored.status.as_ref().and_then(|s| s.replicas).is_none());

    // Status through /status is taken; spec changes there are ignored.
    let status = deployments
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 5}, "spec": {"replicas": 7}})),
        )
        .await
        .expect("status patch");
    assert_eq!(status.status.as_ref().and_then(|s| s.replicas), Some(5));
    assert_eq!(status.spec.as_ref().and_then(|s| s.replicas), Some(1));
    assert_eq!(status.metadata.generation, Some(1));

    let scaled = deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .expect("spec patch");
    assert_eq!(scaled.metadata.generation, Some(2));
}

#[tokio::test]
async fn strategic_merge_patch_merges_containers_by_name() {
    let t = start().await;
    let deployments: Api<Deployment> = Api::namespaced(t.client.clone(), "default");
    deployments
        .create(&PostParams::default(), &deployment("web"))
        .await
        .expect("create");
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "busybox:1"}]}}}});
    let patched = deployments
        .patch("web", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .expect("strategic");
    let names: Vec<String> = patched
        .spec
        .expect("spec")
        .template
        .spec
        .expect("pod spec")
        .containers
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, vec!["main", "sidecar"]);
}

#[tokio::test]
async fn finalizers_hold_deletion_and_refuse_new_ones() {
    let t = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let mut held = config_map("held", json!({}));
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    cms.create(&PostParams::default(), &held)
        .await
        .expect("create");
    cms.delete("held", &DeleteParams::default())
        .await
        .expect("delete");
    let deleting = cms.get("held").await.expect("still there");
    assert!(deleting.metadata.deletion_timestamp.is_some());

    let add =
        Patch::Merge(json!({"metadata": {"finalizers": ["example.com/hold", "example.com/more"]}}));
    let (code, _) = status_of(cms.patch("held", &PatchParams::default(), &add).await);
    assert_eq!(code, 422, "no new finalizers on a deleting object");

    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("remove finalizers");
    assert_eq!(status_of(cms.get("held").await).0, 404);
}

#[tokio::test]
async fn namespace_deletion_cascades_and_waits_for_finalizers() {
    let t = start().await;
    create_namespace(&t.client, "tenant").await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "tenant");
    cms.create(&PostParams::default(), &config_map("plain", json!({})))
        .await
        .expect("create");
    let mut held = config_map("held", json!({}));
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    cms.create(&PostParams::default(), &held)
        .await
        .expect("create held");

    let namespaces: Api<Namespace> = Api::all(t.client.clone());
    namespaces
        .delete("tenant", &DeleteParams::default())
        .await
        .expect("delete namespace");
    let terminating = namespaces
        .get("tenant")
        .await
        .expect("namespace held by content");
    assert_eq!(
        terminating.status.and_then(|s| s.phase).as_deref(),
        Some("Terminating")
    );
    assert_eq!(status_of(cms.get("plain").await).0, 404);
    let (code, _) = status_of(
        cms.create(&PostParams::default(), &config_map("late", json!({})))
            .await,
    );
    assert_eq!(code, 403, "no new content in a terminating namespace");

    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("release");
    assert_eq!(
        status_of(namespaces.get("tenant").await).0,
        404,
        "namespace gone once empty"
    );
}

#[tokio::test]
async fn owner_deletion_garbage_collects_dependents() {
    let t = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let owner = cms
        .create(&PostParams::default(), &config_map("owner", json!({})))
        .await
        .expect("owner");
    let mut dependent = config_map("dependent", json!({}));
    dependent.metadata.owner_references = Some(vec![serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.uid().expect("uid")
    }))
    .expect("owner ref")]);
    cms.create(&PostParams::default(), &dependent)
        .await
        .expect("dependent");
    let mut orphan = config_map("orphan", json!({}));
    orphan.metadata.owner_references = dependent.metadata.owner_references.clone();
    cms.create(&PostParams::default(), &orphan)
        .await
        .expect("orphan");

    cms.delete("owner", &DeleteParams::default())
        .await
        .expect("delete owner");
    assert_eq!(status_of(cms.get("dependent").await).0, 404);
    assert_eq!(status_of(cms.get("orphan").await).0, 404);
}

#[tokio::test]
async fn selectors_and_consistent_paging() {
    let t = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    for index in 0..7 {
        let tier = if index % 2 == 0 { "even" } else { "odd" };
        cms.create(
            &PostParams::default(),
            &config_map(
                &format!("cm-{index}"),
                json!({"tier": tier, "n": index.to_string()}),
            ),
        )
        .await
        .expect("create");
    }
    let count = |lp: ListParams| {
        let cms = cms.clone();
        async move { cms.list(&lp).await.expect("list").items.len() }
    };
    assert_eq!(count(ListParams::default().labels("tier=even")).await, 4);
    assert_eq!(count(ListParams::default().labels("tier!=even")).await, 3);
    assert_eq!(
        count(ListParams::default().labels("n in (1,2,3),tier=odd")).await,
        2
    );
    assert_eq!(
        count(ListParams::default().labels("n notin (1,2,3),tier")).await,
        4
    );
    assert_eq!(count(ListParams::default().labels("!tier")).await, 0);
    assert_eq!(
        count(ListParams::default().fields("metadata.name=cm-3")).await,
        1
    );
    let (code, _) = status_of(
        cms.list(&ListParams::default().fields("spec.nodeName=x"))
            .await,
    );
    assert_eq!(code, 400, "configmaps have no spec.nodeName field selector");
    let pods: Api<Pod> = Api::all(t.client.clone());
    assert!(
        pods.list(&ListParams::default().fields("spec.nodeName=n1,status.phase=Running"))
            .await
            .is_ok()
    );

    let first = cms
        .list(&ListParams::default().limit(3))
        .await
        .expect("page 1");
    assert_eq!(first.items.len(), 3);
    let token = first.metadata.continue_.clone().expect("continue token");
    assert_eq!(first.metadata.remaining_item_count, Some(4));
    // Changes after the first page must not show up in later pages.
    cms.delete("cm-6", &DeleteParams::default())
        .await
        .expect("delete");
    cms.create(&PostParams::default(), &config_map("cm-9", json!({})))
        .await
        .expect("create");
    let mut names: Vec<String> = first.items.iter().map(|c| c.name_any()).collect();
    let mut next = Some(token);
    while let Some(token) = next {
        let page = cms
            .list(&ListParams::default().limit(3).continue_token(&token))
            .await
            .expect("page");
        names.extend(page.items.iter().map(|c| c.name_any()));
        next = page.metadata.continue_.filter(|c| !c.is_empty());
    }
    let expected: Vec<String> = (0..7).map(|i| format!("cm-{i}")).collect();
    let mut actual = names.clone();
    actual.retain(|n| n.starts_with("cm-"));
    assert_eq!(actual, expected, "pages reflect the first page's snapshot");
}

#[tokio::test]
async fn eviction_deletes_the_pod() {
    let t = start().await;
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}})).expect("pod");
    let created = pods
        .create(&PostParams::default(), &pod)
        .await
        .expect("pod created");
    let tolerations = created.spec.and_then(|s| s.tolerations).unwrap_or_default();
    assert!(
        tolerations
            .iter()
            .any(|t| t.key.as_deref() == Some("node.kubernetes.io/not-ready")),
        "DefaultTolerationSeconds"
    );
    let invalid: Pod =
        serde_json::from_value(json!({"metadata": {"name": "q"}, "spec": {"containers": []}}))
            .expect("pod");
    assert_eq!(
        status_of(pods.create(&PostParams::default(), &invalid).await).0,
        422
    );
    pods.evict("p", &Default::default()).await.expect("evict");
    assert_eq!(status_of(pods.get("p").await).0, 404);
}
