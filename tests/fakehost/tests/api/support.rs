//! Test fixtures: a started host with a kube-rs client, the k3k CRDs, and a kubectl runner
//! with its own kubeconfig and discovery cache.

use std::path::PathBuf;
use std::process::Output;

use fakehost::{FakeHost, FakeHostOptions};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

pub const K3K_CRDS: &str = fakehost::K3K_CRDS_DIR;

pub struct TestHost {
    pub host: FakeHost,
    pub client: Client,
    pub dir: tempfile::TempDir,
}

fn install_crypto() {
    // kube is built with ring only; ignore "already installed" from a previous test.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub async fn client_for(kubeconfig_yaml: &str) -> Client {
    install_crypto();
    let kubeconfig = Kubeconfig::from_yaml(kubeconfig_yaml).expect("kubeconfig parses");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("config");
    Client::try_from(config).expect("client")
}

pub async fn start_with(options: FakeHostOptions) -> TestHost {
    install_crypto();
    let host = FakeHost::start(options).await.expect("fake host starts");
    let client = client_for(&host.kubeconfig_yaml()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    host.write_kubeconfig(&dir.path().join("kubeconfig"))
        .expect("kubeconfig written");
    TestHost { host, client, dir }
}

pub async fn start() -> TestHost {
    start_with(FakeHostOptions::default()).await
}

pub async fn start_with_k3k() -> TestHost {
    start_with(FakeHostOptions {
        manifests: vec![PathBuf::from(K3K_CRDS)],
        ..FakeHostOptions::default()
    })
    .await
}

pub fn clusters_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("k3k.io", "v1beta1", "Cluster"),
        "clusters",
    )
}

pub fn clusters(client: &Client, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), namespace, &clusters_resource())
}

pub fn cluster_object(name: &str) -> DynamicObject {
    let mut object = DynamicObject::new(name, &clusters_resource());
    object.data =
        serde_json::json!({"spec": {"mode": "shared", "servers": 1, "version": "v1.33.1-k3s1"}});
    object
}

impl TestHost {
    /// Runs kubectl against this host; returns the raw output.
    pub async fn kubectl(&self, args: &[&str]) -> Output {
        let kubeconfig = self.dir.path().join("kubeconfig");
        let cache = self.dir.path().join("kube-cache");
        tokio::process::Command::new("/usr/bin/kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--cache-dir")
            .arg(&cache)
            .args(args)
            .kill_on_drop(true)
            .output()
            .await
            .expect("kubectl runs")
    }

    /// Runs kubectl, asserts success and returns stdout.
    pub async fn kubectl_ok(&self, args: &[&str]) -> String {
        let output = self.kubectl(args).await;
        assert!(
            output.status.success(),
            "kubectl {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Writes a manifest into the test directory and returns its path.
    pub fn manifest(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("manifest written");
        path.display().to_string()
    }
}

/// The HTTP status code of a kube-rs API error.
pub fn status_of<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> (u16, String) {
    match result {
        Err(kube::Error::Api(status)) => (status.code, status.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}
