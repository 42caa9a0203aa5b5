//! Scale check: 2,000 k3k Clusters with live watches. Prints how long creating them takes
//! (in-process and over HTTPS), and how long a kube-rs reflector takes to list and sync them.
//! Run with `cargo bench -p fakehost --bench reflector`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fakehost::{FakeHost, FakeHostOptions, ResourceRef, WriteOptions};
use futures::StreamExt;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client, Config};
use serde_json::json;

const CLUSTERS: usize = 2_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let options = FakeHostOptions {
        manifests: vec![PathBuf::from(fakehost::K3K_CRDS_DIR)],
        ..FakeHostOptions::default()
    };
    let host = FakeHost::start(options).await?;
    let config = Config::from_custom_kubeconfig(
        Kubeconfig::from_yaml(&host.kubeconfig_yaml())?,
        &KubeConfigOptions::default(),
    )
    .await?;
    let client = Client::try_from(config)?;
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("k3k.io", "v1beta1", "Cluster"),
        "clusters",
    );
    let clusters = ResourceRef::new("k3k.io", "clusters");
    let engine = host.engine();
    let namespaces = ResourceRef::core("namespaces");
    let options = WriteOptions {
        field_manager: Some("bench".into()),
        ..Default::default()
    };

    // A watch that stays open during the writes, as kaas' reflectors would be.
    let live: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let live_writer = reflector::store::Writer::new(resource.clone());
    let live_reader = live_writer.as_reader();
    let live_task = tokio::spawn(
        reflector(live_writer, watcher(live, watcher::Config::default()))
            .applied_objects()
            .for_each(|_| async {}),
    );

    let started = Instant::now();
    for index in 0..CLUSTERS / 2 {
        let ns = format!("kaas-ws-{index:04}");
        engine.create(
            &namespaces,
            None,
            json!({"metadata": {"name": ns}}),
            &options,
        )?;
        let cluster = json!({"apiVersion": "k3k.io/v1beta1", "kind": "Cluster", "metadata": {"name": "ws", "labels": {"hexabase.ai/workspace-id": index.to_string()}},
                             "spec": {"mode": "shared", "servers": 1, "version": "v1.33.1-k3s1"}});
        engine.create(&clusters, Some(&ns), cluster, &options)?;
    }
    println!(
        "in-process: created {} namespaces + clusters in {:?}",
        CLUSTERS / 2,
        started.elapsed()
    );

    let started = Instant::now();
    for index in CLUSTERS / 2..CLUSTERS {
        let ns = format!("kaas-ws-{index:04}");
        engine.create(
            &namespaces,
            None,
            json!({"metadata": {"name": ns}}),
            &options,
        )?;
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &resource);
        let mut object = DynamicObject::new("ws", &resource);
        object.data = json!({"spec": {"mode": "shared", "servers": 1, "version": "v1.33.1-k3s1"}});
        api.create(&PostParams::default(), &object).await?;
    }
    println!(
        "https (kube-rs, sequential): created {} clusters in {:?}",
        CLUSTERS / 2,
        started.elapsed()
    );

    let deadline = Instant::now() + Duration::from_secs(30);
    while live_reader.state().len() < CLUSTERS && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "live reflector holds {} clusters",
        live_reader.state().len()
    );

    for round in 1..=3 {
        let started = Instant::now();
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        let writer = reflector::store::Writer::new(resource.clone());
        let reader = writer.as_reader();
        let task = tokio::spawn(
            reflector(writer, watcher(api, watcher::Config::default()))
                .applied_objects()
                .for_each(|_| async {}),
        );
        reader.wait_until_ready().await?;
        println!(
            "round {round}: reflector listed and synced {} clusters in {:?}",
            reader.state().len(),
            started.elapsed()
        );
        task.abort();
    }
    let counts = host.request_counts();
    println!("requests: {counts:?}");
    live_task.abort();
    host.shutdown().await;
    Ok(())
}
