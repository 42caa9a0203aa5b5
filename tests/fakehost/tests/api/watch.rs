//! Watches through kube-rs: event order and types, selector transitions, replay from a
//! resourceVersion, 410 Expired, bookmarks, and reflectors recovering from cut watches.

use std::time::Duration;

use fakehost::{FakeHostOptions, ResourceRef, WatchOptions, WriteOptions};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::api::support::{start, start_with};

fn cm(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}}))
        .expect("configmap")
}

#[tokio::test]
async fn watch_reports_changes_with_selector_transitions() {
    let t = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let version = cms
        .list(&Default::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    let mut stream = cms
        .watch(
            &WatchParams::default().labels("watched=yes").timeout(10),
            &version,
        )
        .await
        .expect("watch")
        .boxed();
    cms.create(&PostParams::default(), &cm("a", json!({"watched": "yes"})))
        .await
        .expect("create");
    cms.create(&PostParams::default(), &cm("ignored", json!({})))
        .await
        .expect("create other");
    cms.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"watched": "no"}}})),
    )
    .await
    .expect("unlabel");
    cms.patch(
        "ignored",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"watched": "yes"}}})),
    )
    .await
    .expect("label");
    cms.delete("ignored", &DeleteParams::default())
        .await
        .expect("delete");
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let event = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
            .await
            .expect("event in time")
            .expect("ok")
            .expect("open");
        match event {
            WatchEvent::Added(o) => seen.push(format!("ADDED {}", o.name_any())),
            WatchEvent::Modified(o) => seen.push(format!("MODIFIED {}", o.name_any())),
            WatchEvent::Deleted(o) => seen.push(format!("DELETED {}", o.name_any())),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("watch error {e:?}"),
        }
    }
    assert_eq!(
        seen,
        vec!["ADDED a", "DELETED a", "ADDED ignored", "DELETED ignored"]
    );
}

#[tokio::test]
async fn too_old_resource_version_is_expired() {
    let t = start_with(FakeHostOptions {
        watch_history: 16,
        ..FakeHostOptions::default()
    })
    .await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let old = cms
        .list(&Default::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    for index in 0..40 {
        cms.create(&PostParams::default(), &cm(&format!("c{index}"), json!({})))
            .await
            .expect("create");
    }
    let mut stream = cms
        .watch(&WatchParams::default().timeout(5), &old)
        .await
        .expect("watch")
        .boxed();
    let event = stream.try_next().await.expect("ok").expect("an event");
    match event {
        WatchEvent::Error(status) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"))
        }
        other => panic!("expected 410 Expired, got {other:?}"),
    }
}

#[tokio::test]
async fn bookmarks_arrive_when_allowed() {
    let t = start_with(FakeHostOptions {
        bookmark_interval: Duration::from_millis(200),
        ..FakeHostOptions::default()
    })
    .await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let version = cms
        .list(&Default::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    let mut stream = cms
        .watch(&WatchParams::default().timeout(5), &version)
        .await
        .expect("watch")
        .boxed();
    let event = tokio::time::timeout(Duration::from_secs(3), stream.try_next())
        .await
        .expect("in time")
        .expect("ok")
        .expect("event");
    assert!(
        matches!(event, WatchEvent::Bookmark(_)),
        "expected a bookmark, got {event:?}"
    );
}

#[tokio::test]
async fn reflector_resyncs_after_watches_are_cut() {
    let t = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let (reader, writer) = reflector::store::<ConfigMap>();
    let stream =
        reflector(writer, watcher(cms.clone(), watcher::Config::default())).applied_objects();
    let task = tokio::spawn(async move { stream.for_each(|_| async {}).await });
    reader.wait_until_ready().await.expect("ready");
    cms.create(&PostParams::default(), &cm("before", json!({})))
        .await
        .expect("create");
    t.host.cut_watches();
    cms.create(&PostParams::default(), &cm("after", json!({})))
        .await
        .expect("create");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while reader
        .state()
        .iter()
        .filter(|c| c.name_any() == "after" || c.name_any() == "before")
        .count()
        < 2
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "reflector did not catch up after the cut"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    task.abort();
}

#[tokio::test]
async fn in_process_watch_sees_http_writes() {
    let t = start().await;
    let engine = t.host.engine();
    let mut watcher = engine
        .watch(
            &ResourceRef::core("configmaps"),
            Some("default"),
            &WatchOptions {
                resource_version: Some(engine.resource_version().to_string()),
                ..Default::default()
            },
        )
        .expect("in-process watch");
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    cms.create(&PostParams::default(), &cm("from-http", json!({})))
        .await
        .expect("create");
    let event = tokio::time::timeout(Duration::from_secs(2), watcher.next())
        .await
        .expect("in time")
        .expect("event");
    assert_eq!(
        (event.event_type, event.object["metadata"]["name"].as_str()),
        ("ADDED", Some("from-http"))
    );
    // And in-process writes follow the same rules as HTTP ones.
    let object = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "from-http", "resourceVersion": "1"}});
    let stale = engine.update(
        &ResourceRef::core("configmaps"),
        Some("default"),
        object,
        &WriteOptions::default(),
    );
    assert_eq!(stale.map_err(|e| e.code), Err(409));
}
