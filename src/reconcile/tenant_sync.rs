//! Inside each virtual cluster: kaas connects as `kaas`/`system:masters` with a client
//! certificate minted on demand from the K3K bootstrap Secret (cached in memory for a short
//! while, never stored), and keeps the workspace ClusterRoles and their per-person bindings
//! (so a removed, demoted or disabled person loses their role at the next pass) and every
//! project's namespace, quota, limit range and role bindings as redb says. Namespaces of
//! projects that no longer exist are removed. Like the host pass, it writes only what
//! differs.

use std::collections::BTreeSet;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota, Secret, Service};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding};
use kube::api::{DeleteParams, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config, Resource};

use super::connection::HostConnection;
use super::error::{Error, Result};
use super::kubeapi::{apply_if_changed, apply_missing, delete_if_present};
use crate::domain::WorkspaceId;
use crate::host::credentials::{self, Bootstrap, MintedCert};
use crate::host::expose::{self, ApiAddress, ExposeSettings};
use crate::host::{names, tenant};
use crate::ops::reconcile::WorkspaceSnapshot;

/// How to reach one virtual cluster from here.
#[derive(Clone)]
pub struct VirtualClusterAccess {
    pub bootstrap: Bootstrap,
    /// Where it is reached, as the plan's expose mode says (`host::expose`).
    pub address: ApiAddress,
    pub cluster_name: String,
}

/// Reads the bootstrap Secret K3K made for a workspace and kaas's API Service, whose type and
/// status say where the API server is reached.
pub async fn access(
    host: &Client,
    ws: WorkspaceId,
    external_address: Option<&str>,
    settings: &ExposeSettings,
) -> Result<VirtualClusterAccess> {
    let ns = names::namespace(ws);
    let cluster = names::cluster(ws);
    let secrets: Api<Secret> = Api::namespaced(host.clone(), &ns);
    let secret = secrets
        .get_opt(&names::k3k_bootstrap_secret(&cluster))
        .await
        .map_err(|e| Error::kube("reading the K3K bootstrap secret", e))?
        .ok_or_else(|| Error::NotReady("K3K has not written the bootstrap secret yet".into()))?;
    let raw = secret
        .data
        .as_ref()
        .and_then(|d| d.get(names::K3K_BOOTSTRAP_KEY))
        .map(|ByteString(b)| b.clone())
        .ok_or_else(|| Error::NotReady("the K3K bootstrap secret has no `bootstrap` key".into()))?;
    let bootstrap =
        credentials::parse_bootstrap(&raw).map_err(|e| Error::Internal(e.to_string()))?;
    let services: Api<Service> = Api::namespaced(host.clone(), &ns);
    let svc = services
        .get_opt(names::API_SERVICE)
        .await
        .map_err(|e| Error::kube("reading the API service", e))?
        .ok_or_else(|| {
            Error::NotReady("the virtual cluster's API service does not exist yet".into())
        })?;
    let address =
        expose::api_address(&svc, ws, external_address, settings).map_err(Error::NotReady)?;
    Ok(VirtualClusterAccess {
        bootstrap,
        address,
        cluster_name: cluster,
    })
}

/// A certificate and a kubeconfig for one user of a virtual cluster.
pub fn kubeconfig_for(
    access: &VirtualClusterAccess,
    user: &str,
    groups: &[String],
    now: Timestamp,
    lifetime: Duration,
) -> Result<(String, MintedCert), String> {
    let cert = credentials::mint_client_certificate(&access.bootstrap, user, groups, now, lifetime)
        .map_err(|e| e.to_string())?;
    let yaml = credentials::kubeconfig_yaml(
        &access.cluster_name,
        &access.address.url(),
        &access.bootstrap.server_ca_pem,
        user,
        &cert,
    )
    .map_err(|e| e.to_string())?;
    Ok((yaml, cert))
}

/// A client acting as kaas inside the virtual cluster.
pub async fn admin_client(access: &VirtualClusterAccess) -> Result<Client> {
    let (user, groups) = credentials::admin_identity();
    let (yaml, _) = kubeconfig_for(
        access,
        user,
        &groups,
        Timestamp::now(),
        Duration::from_secs(3600),
    )
    .map_err(Error::Internal)?;
    let internal = |what: &str, e: &dyn std::fmt::Display| Error::Internal(format!("{what}: {e}"));
    let kc = Kubeconfig::from_yaml(&yaml).map_err(|e| internal("admin kubeconfig", &e))?;
    let mut config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| internal("admin kubeconfig", &e))?;
    // Ingress: kaas dials the ingress controller itself, naming the route's host in TLS
    // (SNI and verification), so it needs no DNS for the workspace's host name.
    if let Some(name) = &access.address.server_name {
        config.cluster_url = access
            .address
            .connect_url()
            .parse()
            .map_err(|e| internal("virtual cluster address", &e))?;
        config.tls_server_name = Some(name.clone());
    }
    Client::try_from(config).map_err(|e| internal("virtual cluster client", &e))
}

fn ctx(what: &'static str) -> impl Fn(kube::Error) -> Error {
    move |e| Error::kube(format!("inside the virtual cluster, {what}"), e)
}

/// What kaas keeps inside one virtual cluster, built from redb (nothing read from the
/// cluster).
pub struct Inside {
    roles: Vec<ClusterRole>,
    bindings: Vec<ClusterRoleBinding>,
    projects: Vec<ProjectInside>,
}

/// One project's namespace and the objects kaas keeps in it.
struct ProjectInside {
    name: String,
    namespace: Namespace,
    quota: Option<ResourceQuota>,
    limits: LimitRange,
    bindings: Vec<RoleBinding>,
}

impl Inside {
    pub fn of(snap: &WorkspaceSnapshot) -> Inside {
        let projects = snap
            .projects
            .iter()
            .map(|p| {
                let project = &p.project;
                ProjectInside {
                    name: project.name.clone(),
                    namespace: tenant::project_namespace(project),
                    quota: tenant::project_quota(project),
                    limits: tenant::project_limit_range(project, &snap.plan.limits),
                    bindings: tenant::project_workspace_role_bindings(project, &snap.access)
                        .into_iter()
                        .chain(tenant::project_role_bindings(project, &p.members))
                        .collect(),
                }
            })
            .collect();
        Inside {
            roles: tenant::cluster_roles(),
            bindings: tenant::cluster_role_bindings(snap.workspace.id, &snap.access),
            projects,
        }
    }

    /// A digest of every object (as kaas would send it): equal digests mean kaas wants the
    /// same inside.
    pub fn fingerprint(&self) -> Result<u64> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for r in &self.roles {
            digest(&mut h, r)?;
        }
        for b in &self.bindings {
            digest(&mut h, b)?;
        }
        for p in &self.projects {
            digest(&mut h, &p.namespace)?;
            digest(&mut h, &p.quota)?;
            digest(&mut h, &p.limits)?;
            for b in &p.bindings {
                digest(&mut h, b)?;
            }
        }
        Ok(std::hash::Hasher::finish(&h))
    }
}

fn digest<T: serde::Serialize>(h: &mut impl std::hash::Hasher, object: &T) -> Result<()> {
    let json = serde_json::to_vec(object).map_err(|e| Error::Internal(e.to_string()))?;
    std::hash::Hash::hash(&json, h);
    Ok(())
}

/// Brings the virtual cluster in line with the workspace's members and projects.
pub async fn sync(client: &Client, ws: WorkspaceId, inside: Inside) -> Result<()> {
    // One list per kind instead of a read per object: an in-sync pass is cheap.
    let managed = ListParams::default().labels(&format!(
        "{}={}",
        names::MANAGED_BY_LABEL,
        names::MANAGED_BY_VALUE
    ));
    let roles: Api<ClusterRole> = Api::all(client.clone());
    let have = roles
        .list(&managed)
        .await
        .map_err(ctx("listing cluster roles"))?
        .items;
    apply_missing(&roles, inside.roles, &have)
        .await
        .map_err(ctx("cluster roles"))?;
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    let have = bindings
        .list(&managed)
        .await
        .map_err(ctx("listing cluster role bindings"))?
        .items;
    apply_missing(&bindings, inside.bindings, &have)
        .await
        .map_err(ctx("cluster role bindings"))?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut wanted = BTreeSet::new();
    for p in inside.projects {
        apply_if_changed(&namespaces, &p.name, &p.namespace)
            .await
            .map_err(ctx("project namespaces"))?;
        let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), &p.name);
        match &p.quota {
            Some(q) => {
                apply_if_changed(&quotas, tenant::PROJECT_QUOTA_NAME, q)
                    .await
                    .map_err(ctx("project quotas"))?;
            }
            None => {
                delete_if_present(
                    &quotas,
                    tenant::PROJECT_QUOTA_NAME,
                    &DeleteParams::default(),
                )
                .await
                .map_err(ctx("project quotas"))?;
            }
        }
        let limits: Api<LimitRange> = Api::namespaced(client.clone(), &p.name);
        apply_if_changed(&limits, tenant::PROJECT_LIMITS_NAME, &p.limits)
            .await
            .map_err(ctx("project limit ranges"))?;
        let rbs: Api<RoleBinding> = Api::namespaced(client.clone(), &p.name);
        for rb in &p.bindings {
            let name = rb.meta().name.clone().unwrap_or_default();
            apply_if_changed(&rbs, &name, rb)
                .await
                .map_err(ctx("project role bindings"))?;
        }
        wanted.insert(p.name);
    }
    // Projects deleted in kaas: their namespaces go too (only those kaas made).
    let managed = namespaces
        .list(&ListParams::default().labels(names::PROJECT_ID_LABEL))
        .await
        .map_err(ctx("listing project namespaces"))?;
    for ns in managed {
        let name = ns.meta().name.clone().unwrap_or_default();
        if !wanted.contains(&name) && ns.meta().deletion_timestamp.is_none() {
            let removed = delete_if_present(&namespaces, &name, &DeleteParams::background())
                .await
                .map_err(ctx("removing a deleted project's namespace"))?;
            if removed {
                tracing::info!(workspace = %ws, namespace = %name, "removed the namespace of a deleted project");
            }
        }
    }
    Ok(())
}

/// Signs tenant kubeconfigs for `ops` with each workspace's client CA.
pub struct HostMinter {
    conn: std::sync::Arc<HostConnection>,
    external_addresses: Vec<String>,
    expose: ExposeSettings,
}

impl HostMinter {
    pub fn new(
        conn: std::sync::Arc<HostConnection>,
        external_addresses: Vec<String>,
        expose: ExposeSettings,
    ) -> HostMinter {
        HostMinter {
            conn,
            external_addresses,
            expose,
        }
    }
}

impl HostMinter {
    /// How to reach the workspace's virtual cluster, as its plan exposes it.
    async fn access(&self, ws: WorkspaceId) -> Result<VirtualClusterAccess, String> {
        let host = self
            .conn
            .client()
            .ok_or("the host cluster is not connected")?;
        let address = self.external_addresses.first().map(String::as_str);
        access(&host, ws, address, &self.expose)
            .await
            .map_err(|e| e.to_string())
    }
}

impl crate::ops::kubeconfig::KubeconfigMinter for HostMinter {
    fn mint<'a>(
        &'a self,
        ws: WorkspaceId,
        user: &'a str,
        groups: Vec<String>,
        lifetime: Duration,
    ) -> futures::future::BoxFuture<'a, Result<crate::ops::kubeconfig::MintedKubeconfig, String>>
    {
        Box::pin(async move {
            let access = self.access(ws).await?;
            let (yaml, cert) = kubeconfig_for(&access, user, &groups, Timestamp::now(), lifetime)?;
            Ok(crate::ops::kubeconfig::MintedKubeconfig {
                yaml,
                server: access.address.url(),
                serial: cert.serial_hex,
                expires_at: cert.not_after,
            })
        })
    }

    fn exec<'a>(
        &'a self,
        ws: WorkspaceId,
        user: &'a str,
        plugin: crate::ops::kubeconfig::ExecPlugin,
    ) -> futures::future::BoxFuture<'a, Result<crate::ops::kubeconfig::MintedKubeconfig, String>>
    {
        Box::pin(async move {
            let access = self.access(ws).await?;
            let server = access.address.url();
            let yaml = credentials::exec_kubeconfig_yaml(
                &access.cluster_name,
                &server,
                &access.bootstrap.server_ca_pem,
                user,
                &plugin.kaas_url,
                &plugin.workspace.to_string(),
            )
            .map_err(|e| e.to_string())?;
            Ok(crate::ops::kubeconfig::MintedKubeconfig {
                yaml,
                server,
                serial: String::new(),
                expires_at: Timestamp::now(),
            })
        })
    }
}
