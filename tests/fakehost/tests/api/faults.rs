//! Fault controls and request counters: injected 500/429, pause/resume, latency, counts.

use std::time::{Duration, Instant};

use fakehost::{FaultPlan, InjectedError};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

use crate::api::support::{start, status_of};

#[tokio::test]
async fn every_nth_request_fails_with_the_chosen_error() {
    let t = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    t.host.set_fault_plan(Some(FaultPlan::EveryNth {
        n: 2,
        error: InjectedError::Internal,
    }));
    assert!(cms.list(&Default::default()).await.is_ok());
    assert_eq!(status_of(cms.list(&Default::default()).await).0, 500);
    assert!(cms.list(&Default::default()).await.is_ok());

    // kube-rs retries 429 (honouring Retry-After): the list succeeds on the second attempt,
    // and the counter shows both.
    t.host.set_fault_plan(Some(FaultPlan::EveryNth {
        n: 2,
        error: InjectedError::TooManyRequests {
            retry_after_seconds: 0,
        },
    }));
    t.host.reset_request_counts();
    assert!(cms.list(&Default::default()).await.is_ok());
    assert!(
        cms.list(&Default::default()).await.is_ok(),
        "retried after 429"
    );
    assert_eq!(t.host.request_counts().list, 3);

    t.host.set_fault_plan(Some(FaultPlan::EveryNth {
        n: 1,
        error: InjectedError::Internal,
    }));
    let output = t
        .kubectl(&["get", "configmaps", "--request-timeout=5s"])
        .await;
    assert!(!output.status.success(), "kubectl must see the 500");

    t.host.set_fault_plan(None);
    assert!(cms.list(&Default::default()).await.is_ok());
}

#[tokio::test]
async fn pause_holds_requests_until_resumed() {
    let t = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    t.host.pause();
    let pending = tokio::spawn({
        let cms = cms.clone();
        async move { cms.list(&Default::default()).await.map(|l| l.items.len()) }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!pending.is_finished(), "request must hang while paused");
    t.host.resume();
    assert!(pending.await.expect("join").is_ok());

    t.host.set_latency(Duration::from_millis(200));
    let started = Instant::now();
    cms.list(&Default::default()).await.expect("list");
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn requests_are_counted_by_verb() {
    let t = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    t.host.reset_request_counts();
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "counted"}})).expect("cm");
    cms.create(&PostParams::default(), &cm)
        .await
        .expect("create");
    cms.get("counted").await.expect("get");
    cms.list(&Default::default()).await.expect("list");
    cms.delete("counted", &Default::default())
        .await
        .expect("delete");
    let counts = t.host.request_counts();
    assert_eq!(
        (
            counts.create,
            counts.get,
            counts.list,
            counts.delete,
            counts.update
        ),
        (1, 1, 1, 1, 0)
    );
    assert_eq!(counts.total(), 4);
}
