//! Fixtures: a host with the k3k CRDs (schema-validated and defaulted) plus the simulated
//! controller, helpers to create and wait for Clusters, read their Secrets, and run kubectl.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use fakehost::k3k::{K3kController, K3kOptions};
use fakehost::seams::{FieldError, SchemaValidator};
use fakehost::{FakeHost, FakeHostOptions};
use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde_json::{Value, json};

pub const K3K_CRDS: &str = fakehost::K3K_CRDS_DIR;
pub const WAIT: Duration = Duration::from_secs(10);

/// The real apiextensions behaviour: defaults and validation from the CRD schema.
struct CrdSchema;

impl SchemaValidator for CrdSchema {
    fn validate_and_default(
        &self,
        schema: &Value,
        object: &mut Value,
    ) -> Result<(), Vec<FieldError>> {
        fakehost::schema::validate_and_default(schema, object)
            .map(|_| ())
            .map_err(|errors| {
                errors
                    .into_iter()
                    .map(|e| FieldError {
                        path: e.path,
                        message: e.message,
                    })
                    .collect()
            })
    }
}

pub struct K3kHost {
    pub host: FakeHost,
    pub k3k: K3kController,
    pub client: Client,
    pub dir: tempfile::TempDir,
}

pub fn install_crypto() {
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

pub async fn start(delay: Duration) -> K3kHost {
    start_with(delay, FakeHostOptions::default()).await
}

/// A host from `options` (plus the K3K CRDs and their schema) with the controller.
pub async fn start_with(delay: Duration, options: FakeHostOptions) -> K3kHost {
    install_crypto();
    let options = FakeHostOptions {
        manifests: vec![PathBuf::from(K3K_CRDS)],
        validator: Some(Arc::new(CrdSchema)),
        ..options
    };
    let host = FakeHost::start(options).await.expect("fake host starts");
    let k3k = K3kController::for_host(
        &host,
        K3kOptions {
            provision_delay: delay,
            ..K3kOptions::default()
        },
    );
    let client = client_for(&host.kubeconfig_yaml()).await;
    K3kHost {
        host,
        k3k,
        client,
        dir: tempfile::tempdir().expect("tempdir"),
    }
}

pub fn clusters_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("k3k.io", "v1beta1", "Cluster"),
        "clusters",
    )
}

pub fn policies_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("k3k.io", "v1beta1", "VirtualClusterPolicy"),
        "virtualclusterpolicies",
    )
}

impl K3kHost {
    pub fn clusters(&self, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), namespace, &clusters_resource())
    }

    pub async fn namespace(&self, name: &str, labels: Value) {
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}}))
                .expect("namespace");
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("namespace created");
    }

    pub async fn cluster(&self, namespace: &str, name: &str, spec: Value) -> DynamicObject {
        let mut object = DynamicObject::new(name, &clusters_resource());
        object.data = json!({"spec": spec});
        self.clusters(namespace)
            .create(&PostParams::default(), &object)
            .await
            .expect("cluster created")
    }

    /// Polls the Cluster until `done` holds; panics with the last state after `WAIT`.
    pub async fn wait_cluster(
        &self,
        namespace: &str,
        name: &str,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let api = self.clusters(namespace);
        let deadline = Instant::now() + WAIT;
        loop {
            let current = api
                .get_opt(name)
                .await
                .expect("get cluster")
                .map(|o| serde_json::to_value(o).expect("json"));
            if let Some(current) = &current
                && done(current)
            {
                return current.clone();
            }
            assert!(
                Instant::now() < deadline,
                "cluster {namespace}/{name} never became {what}: {current:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn wait_phase(&self, namespace: &str, name: &str, phase: &str) -> Value {
        self.wait_cluster(namespace, name, phase, |c| {
            c.pointer("/status/phase").and_then(Value::as_str) == Some(phase)
        })
        .await
    }

    pub async fn secret(&self, namespace: &str, name: &str) -> Option<Secret> {
        Api::<Secret>::namespaced(self.client.clone(), namespace)
            .get_opt(name)
            .await
            .expect("get secret")
    }

    pub async fn service(&self, namespace: &str, name: &str) -> Option<Service> {
        Api::<Service>::namespaced(self.client.clone(), namespace)
            .get_opt(name)
            .await
            .expect("get service")
    }

    /// The nodePort of the Cluster's API server port (443).
    pub async fn node_port(&self, namespace: &str, cluster: &str) -> u16 {
        let service = self
            .service(namespace, &format!("k3k-{cluster}-service"))
            .await
            .expect("service exists");
        let port = service
            .spec
            .and_then(|s| s.ports)
            .unwrap_or_default()
            .into_iter()
            .find(|p| p.port == 443)
            .expect("port 443");
        u16::try_from(port.node_port.expect("nodePort allocated")).expect("port fits")
    }

    /// The decoded `bootstrap` JSON of `k3k-<cluster>-bootstrap`.
    pub async fn bootstrap(&self, namespace: &str, cluster: &str) -> Value {
        let secret = self
            .secret(namespace, &format!("k3k-{cluster}-bootstrap"))
            .await
            .expect("bootstrap secret");
        let data = secret.data.expect("data");
        serde_json::from_slice(&data.get("bootstrap").expect("bootstrap key").0)
            .expect("bootstrap is JSON")
    }

    /// A kubeconfig for `user`/`groups` reaching the Cluster at `https://127.0.0.1:<nodePort>`,
    /// built only from what kaas can read on the host (Service + bootstrap Secret).
    pub async fn tenant_kubeconfig(
        &self,
        namespace: &str,
        cluster: &str,
        user: &str,
        groups: &[&str],
    ) -> PathBuf {
        let port = self.node_port(namespace, cluster).await;
        self.tenant_kubeconfig_at(namespace, cluster, port, user, groups)
            .await
    }

    /// `tenant_kubeconfig` for `https://127.0.0.1:<port>`.
    pub async fn tenant_kubeconfig_at(
        &self,
        namespace: &str,
        cluster: &str,
        port: u16,
        user: &str,
        groups: &[&str],
    ) -> PathBuf {
        let bootstrap = self.bootstrap(namespace, cluster).await;
        let content = |key: &str| {
            bootstrap
                .pointer(&format!("/{key}/Content"))
                .and_then(Value::as_str)
                .expect("CA content")
                .to_string()
        };
        let client_ca = fakehost::pki::Ca::from_pem(&content("clientCA"), &content("clientCAKey"))
            .expect("clientCA loads");
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        let cert = client_ca
            .issue_client_cert(user, &groups, Duration::from_secs(3600))
            .expect("client cert");
        let yaml = fakehost::vcluster::kubeconfig_yaml(
            &format!("https://127.0.0.1:{port}"),
            &content("serverCA"),
            &cert.cert_pem,
            &cert.key_pem,
            user,
        );
        let path = self.dir.path().join(format!(
            "{cluster}-{port}-{}.kubeconfig",
            user.replace(':', "-")
        ));
        std::fs::write(&path, yaml).expect("kubeconfig written");
        path
    }
}

/// Polls `probe` until it yields something; panics after `WAIT` naming `what`.
pub async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether a TLS client trusting only `ca_pem` accepts the certificate served on
/// `127.0.0.1:<port>` for the name `name` (what a client verifying the server sees).
pub async fn serves_name(port: u16, ca_pem: &str, name: &str) -> Result<(), String> {
    install_crypto();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots
            .add(cert.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let server_name =
        rustls::pki_types::ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?;
    connector
        .connect(server_name, tcp)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// A Service of someone else's (as kaas makes `kaas-api`): NodePort, selecting the Cluster's
/// server pods, 443 → 6443. Returns its allocated nodePort.
pub async fn api_service(t: &K3kHost, namespace: &str, name: &str, cluster: &str) -> u16 {
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"type": "NodePort", "selector": {"cluster": cluster, "role": "server"},
                 "ports": [{"name": "https", "port": 443, "targetPort": 6443}]},
    }))
    .expect("service");
    let created = Api::<Service>::namespaced(t.client.clone(), namespace)
        .create(&PostParams::default(), &service)
        .await
        .expect("service created");
    let port = created.spec.and_then(|s| s.ports).unwrap_or_default()[0]
        .node_port
        .expect("nodePort allocated");
    u16::try_from(port).expect("port fits")
}

/// Whether the virtual cluster answers an admin request on `127.0.0.1:<port>`.
pub async fn answers(t: &K3kHost, namespace: &str, cluster: &str, port: u16) -> bool {
    let path = t
        .tenant_kubeconfig_at(namespace, cluster, port, "admin", &["system:masters"])
        .await;
    let yaml = std::fs::read_to_string(path).expect("kubeconfig");
    let client = client_for(&yaml).await;
    let api = Api::<Namespace>::all(client);
    let params = kube::api::ListParams::default();
    let request = api.list(&params);
    matches!(
        tokio::time::timeout(Duration::from_secs(3), request).await,
        Ok(Ok(_))
    )
}

pub fn decode(secret: &Secret, key: &str) -> String {
    let data = secret.data.clone().expect("data");
    String::from_utf8(data.get(key).expect("key present").0.clone()).expect("utf-8")
}

pub fn b64(text: &str) -> Vec<u8> {
    STANDARD.decode(text).expect("base64")
}

pub fn condition<'a>(cluster: &'a Value, field: &str) -> &'a str {
    cluster
        .pointer(&format!("/status/conditions/0/{field}"))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

pub async fn kubectl(kubeconfig: &Path, args: &[&str]) -> Output {
    let cache = kubeconfig.with_extension("cache");
    tokio::process::Command::new("/usr/bin/kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(&cache)
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .expect("kubectl runs")
}

pub async fn kubectl_ok(kubeconfig: &Path, args: &[&str]) -> String {
    let output = kubectl(kubeconfig, args).await;
    assert!(
        output.status.success(),
        "kubectl {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
