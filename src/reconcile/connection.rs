//! The connection to the host cluster: where its kubeconfig comes from, the client, and a
//! status (connected, version, K3K CRDs present, last error) that `/readyz`, the API and the
//! logs report. kaas starts and serves without a reachable host; the status is refreshed by
//! [`HostConnection::probe`] and work waits until the host answers.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

use super::error::describe;
use super::kubeapi::apply_if_changed;
use crate::host::isolation::{
    Enforcement, K3S_NODE_ARGS_ANNOTATION, NETWORK_POLICY_FIX, network_policy_enforcement,
};
use crate::host::names;
use crate::host::tolerations::{system_tolerations, tolerations_json};
use crate::ops::host_status::{HostMonitor, HostStatus};

/// Where the host kubeconfig is looked for, in order, when none is configured.
pub const K3S_KUBECONFIG: &str = "/etc/rancher/k3s/k3s.yaml";

/// The K3K CRDs kaas needs on the host.
pub const K3K_CRDS: [&str; 2] = ["clusters.k3k.io", "virtualclusterpolicies.k3k.io"];

/// What to tell an operator whose host does not enforce toleration whitelists.
pub const TOLERATION_RESTRICTION_FIX: &str = "the host does not enforce PodTolerationRestriction, so a tenant could schedule onto another workspace's dedicated nodes: add `kube-apiserver-arg: [\"enable-admission-plugins=NodeRestriction,PodTolerationRestriction\"]` to /etc/rancher/k3s/config.yaml.d/kaas.yaml and restart K3s";

/// Whether an API error is PodTolerationRestriction refusing a pod for its whitelist.
/// NB: kube-apiserver answers the plugin's refusal with a 500 carrying only its message (the
/// plugin returns a plain error, not a Forbidden); a 403 is accepted too.
pub fn is_toleration_refusal(status: &kube::core::Status) -> bool {
    (status.code == 403 || status.code == 500)
        && status
            .message
            .contains("conflict with its namespace whitelist")
}

/// The namespace the PodTolerationRestriction probe uses, for the server and `kaas doctor`
/// alike: made by the installer's RBAC manifest, which lets kaas's account create pods there
/// and nowhere else (only dry runs are ever sent), or here when missing.
pub const PROBE_NAMESPACE: &str = "kaas-doctor";
/// The toleration the probe pod carries and the probe namespace's whitelist forbids.
const PROBE_TOLERATION_KEY: &str = "kaas.io/doctor-probe";

/// Why the PodTolerationRestriction probe got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeError {
    /// The probe namespace could not be prepared.
    Namespace(String),
    /// The dry-run pod was refused for another reason than its toleration.
    Pod(String),
}

/// Asks the host whether it rejects a pod whose toleration its namespace's whitelist does
/// not admit (a dry run: nothing is stored). The namespace admits only the tolerations
/// Kubernetes adds itself and enforces the `restricted` Pod Security level, so the probe pod
/// is one that level admits.
pub async fn enforces_toleration_restriction(client: &Client) -> Result<bool, ProbeError> {
    use k8s_openapi::api::core::v1::{Namespace, Pod};
    use kube::api::PostParams;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": PROBE_NAMESPACE,
            "labels": {names::MANAGED_BY_LABEL: names::MANAGED_BY_VALUE},
            "annotations": {
                names::TOLERATIONS_WHITELIST_ANNOTATION: tolerations_json(&system_tolerations()),
            },
        }
    }))
    .map_err(|e| ProbeError::Namespace(e.to_string()))?;
    apply_if_changed(&namespaces, PROBE_NAMESPACE, &ns)
        .await
        .map_err(|e| ProbeError::Namespace(describe(&e)))?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), PROBE_NAMESPACE);
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "toleration-probe"},
        "spec": {
            "containers": [{
                "name": "probe",
                "image": "registry.invalid/kaas-doctor-probe:never-pulled",
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "runAsNonRoot": true,
                    "runAsUser": 65534,
                    "capabilities": { "drop": ["ALL"] },
                    "seccompProfile": { "type": "RuntimeDefault" },
                },
            }],
            "tolerations": [{"key": PROBE_TOLERATION_KEY, "operator": "Exists", "effect": "NoSchedule"}]
        }
    }))
    .map_err(|e| ProbeError::Pod(e.to_string()))?;
    let params = PostParams {
        dry_run: true,
        ..Default::default()
    };
    match pods.create(&params, &pod).await {
        Ok(_) => Ok(false),
        Err(kube::Error::Api(s)) if is_toleration_refusal(&s) => Ok(true),
        Err(e) => Err(ProbeError::Pod(describe(&e))),
    }
}

/// Picks the kubeconfig: configured path, then `$KUBECONFIG`, then K3s's own file, then the
/// in-cluster service account.
pub fn locate_kubeconfig(
    configured: Option<PathBuf>,
    env_kubeconfig: Option<String>,
) -> Option<PathBuf> {
    if let Some(p) = configured {
        return Some(p);
    }
    if let Some(first) = env_kubeconfig
        .as_deref()
        .and_then(|v| v.split(':').find(|s| !s.is_empty()))
    {
        return Some(PathBuf::from(first));
    }
    let k3s = PathBuf::from(K3S_KUBECONFIG);
    k3s.exists().then_some(k3s)
}

pub struct HostConnection {
    kubeconfig: Option<PathBuf>,
    client: RwLock<Option<Client>>,
    status: RwLock<HostStatus>,
}

impl HostConnection {
    pub fn new(kubeconfig: Option<PathBuf>) -> Arc<HostConnection> {
        let source = kubeconfig
            .as_ref()
            .map(|p| p.display().to_string())
            .or_else(|| {
                std::env::var("KUBERNETES_SERVICE_HOST")
                    .ok()
                    .map(|_| "in-cluster".to_string())
            });
        Arc::new(HostConnection {
            kubeconfig,
            client: RwLock::new(None),
            status: RwLock::new(HostStatus {
                source,
                ..Default::default()
            }),
        })
    }

    pub fn status(&self) -> HostStatus {
        self.status.read().map(|s| s.clone()).unwrap_or_default()
    }

    /// The client, once the host has answered at least once.
    pub fn client(&self) -> Option<Client> {
        self.client.read().ok().and_then(|c| c.clone())
    }

    /// A client from the configured credentials (no request is made).
    pub(crate) async fn build_client(&self) -> Result<Client, String> {
        let config = match &self.kubeconfig {
            Some(path) => {
                let kc = Kubeconfig::read_from(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
                Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                    .await
                    .map_err(|e| format!("kubeconfig {}: {e}", path.display()))?
            }
            None => Config::incluster().map_err(|_| {
                format!(
                    "no host kubeconfig: set host.kubeconfig (KAAS_HOST_KUBECONFIG) or KUBECONFIG, or install K3s ({K3S_KUBECONFIG})"
                )
            })?,
        };
        Client::try_from(config).map_err(|e| format!("building the host client: {e}"))
    }

    /// Checks the host: version and K3K CRDs. Returns whether it is usable.
    pub async fn probe(&self) -> bool {
        let mut status = self.status();
        status.checked_at = Some(Timestamp::now());
        let client = match self.client() {
            Some(c) => Ok(c),
            None => self.build_client().await,
        };
        let result = match client {
            Ok(client) => match client.apiserver_version().await {
                Ok(info) => {
                    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
                    let mut all = true;
                    for name in K3K_CRDS {
                        match crds.get_opt(name).await {
                            Ok(Some(_)) => {}
                            Ok(None) => all = false,
                            Err(e) => {
                                all = false;
                                tracing::debug!(error = %e, crd = name, "could not read a K3K CRD");
                            }
                        }
                    }
                    if let Ok(mut c) = self.client.write() {
                        *c = Some(client);
                    }
                    Ok((info.git_version, all))
                }
                Err(e) => Err(format!("host API server not answering: {e}")),
            },
            Err(e) => Err(e),
        };
        // The admission check writes (a dry run and, once, kaas-system): do it on first
        // contact and then now and then, not on every probe.
        let due = status.pod_toleration_restriction.is_none()
            || status.checked_at.is_some_and(|t| t.as_second() % 300 < 10);
        let restriction = match (&result, self.client()) {
            (Ok(_), Some(c)) if due => match enforces_toleration_restriction(&c).await {
                Ok(v) => Some(v),
                Err(e) => {
                    tracing::debug!(error = ?e, "could not check PodTolerationRestriction");
                    status.pod_toleration_restriction
                }
            },
            _ => status.pod_toleration_restriction,
        };
        status.pod_toleration_restriction = restriction;
        status.warnings = match restriction {
            Some(false) => vec![TOLERATION_RESTRICTION_FIX.to_string()],
            _ => Vec::new(),
        };
        if due && restriction == Some(false) {
            tracing::warn!("{TOLERATION_RESTRICTION_FIX}");
        }
        if let (Ok(_), Some(c)) = (&result, self.client()) {
            let before = status.network_policy;
            status.network_policy = match network_policy_enforced(&c).await {
                Ok(v) => v,
                Err(e) => {
                    tracing::debug!(error = %e, "could not read the nodes for NetworkPolicy enforcement");
                    before
                }
            };
            if status.network_policy == Some(false) {
                status.warnings.push(NETWORK_POLICY_FIX.to_string());
                if before != Some(false) {
                    tracing::warn!("{NETWORK_POLICY_FIX}");
                }
            }
        }
        match result {
            Ok((version, crds)) => {
                if !status.connected {
                    tracing::info!(version = %version, k3k_crds = crds, "connected to the host cluster");
                }
                status.connected = true;
                status.version = Some(version);
                status.k3k_crds = crds;
                status.last_error = (!crds).then(|| {
                    "the K3K CRDs (clusters.k3k.io, virtualclusterpolicies.k3k.io) are not installed on the host; install the k3k chart".to_string()
                });
            }
            Err(e) => {
                if status.connected || status.last_error.as_deref() != Some(e.as_str()) {
                    tracing::warn!(error = %e, "host cluster unavailable");
                }
                status.connected = false;
                status.last_error = Some(e);
            }
        }
        let usable = status.connected && status.k3k_crds;
        if let Ok(mut s) = self.status.write() {
            *s = status;
        }
        usable
    }

    /// Records an error seen while working (e.g. the host stopped answering mid-reconcile).
    pub fn report_error(&self, error: &str) {
        if let Ok(mut s) = self.status.write() {
            s.last_error = Some(error.to_string());
        }
    }
}

/// Whether the host enforces NetworkPolicy, from its nodes (`host::isolation`).
async fn network_policy_enforced(client: &Client) -> Result<Option<bool>, kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let list = nodes.list_metadata(&Default::default()).await?;
    let seen = network_policy_enforcement(list.items.iter().map(|n| {
        (
            n.metadata.name.as_deref().unwrap_or_default(),
            n.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(K3S_NODE_ARGS_ANNOTATION))
                .map(String::as_str),
        )
    }));
    Ok(match seen {
        Enforcement::Enforced => Some(true),
        Enforcement::Disabled(_) => Some(false),
        Enforcement::Unknown => None,
    })
}

impl HostMonitor for HostConnection {
    fn status(&self) -> HostStatus {
        HostConnection::status(self)
    }
}
