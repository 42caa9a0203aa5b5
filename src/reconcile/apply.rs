//! The apply pass for one workspace: build the desired host objects (pure, `host::desired`),
//! apply those that differ from the host's copies, decide the state from K3K's status
//! ([`observe`](super::observe::observe)), repair the served certificate, sync dedicated
//! nodes and — once Ready — the inside of the virtual cluster, and record what was seen.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use kube::api::{DeleteParams, DynamicObject};
use kube::{Api, Client};

use super::context::Context;
use super::error::{Error, Result, describe};
use super::kubeapi::{apply_cached, apply_if_changed, cached, delete_if_present, lookup};
use super::observe::{self, Agents, Pending, Seen, Verdict};
use super::{isolation, node_sync, served_cert, tenant_sync};
use crate::domain::{Expose, K3kMode, WorkspaceId, WorkspaceState};
use crate::host::desired::{
    HostSettings, cluster as cluster_object, desired_objects, immutable_changes,
};
use crate::host::expose::{self, ExposeSettings};
use crate::host::k3k::cluster::{ClusterSpec, ClusterStatusPhase};
use crate::host::k3k::{Cluster, VirtualClusterPolicy};
use crate::host::names;
use crate::ops::reconcile::{Observation, WorkspaceSnapshot};

/// How long kaas reuses its in-cluster client (its certificate lives an hour).
const TENANT_CLIENT_TTL: Duration = Duration::from_secs(30 * 60);

/// One apply pass. `Ok(Some(d))` asks to look again after `d`.
pub async fn apply(
    ctx: &Context,
    client: &Client,
    snap: &WorkspaceSnapshot,
) -> Result<Option<Duration>> {
    let ws = &snap.workspace;
    // The quota counts one node agent per node that runs one: wait for the node list
    // rather than apply a quota that the next pass changes again.
    let Some(agent_nodes) = ctx.nodes.shared_agent_nodes() else {
        return Ok(Some(Duration::from_millis(200)));
    };
    let mut host_settings = HostSettings {
        dedicated_nodes: snap.dedicated_nodes.clone(),
        all_dedicated_pools: snap.all_pools.clone(),
        agent_nodes,
        ..ctx.settings.host.clone()
    };
    // The node list is there (agent_nodes above needs it): every node address is denied.
    host_settings.isolation.node_addresses = ctx.nodes.addresses().unwrap_or_default();
    let mut desired = desired_objects(ws, &snap.plan, &host_settings);
    let ns_name = names::namespace(ws.id);
    let cluster_name = names::cluster(ws.id);
    let applying = |what: &str| format!("applying the {what}");

    let caches = ctx.caches.get();
    let policy_name = names::policy(ws.id);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let have = caches.and_then(|c| cached(&c.namespaces, &ns_name, None));
    apply_cached(&namespaces, &ns_name, &desired.namespace, have)
        .await
        .map_err(|e| Error::kube(applying("namespace"), e))?;
    isolation::apply(
        client,
        caches,
        &ns_name,
        &desired.network_policies,
        &desired.priority_quotas,
    )
    .await?;
    let policies: Api<VirtualClusterPolicy> = Api::all(client.clone());
    let have = caches.and_then(|c| cached(&c.policies, &policy_name, None));
    apply_cached(&policies, &policy_name, &desired.policy, have)
        .await
        .map_err(|e| Error::kube(applying("virtual cluster policy"), e))?;
    // Before the Cluster, which mounts it.
    if let Some(secret) = &desired.oidc_secret {
        apply_issuer_secret(ctx, client, ws.id, &ns_name, secret).await?;
    }
    // The API Service before the Cluster: in loadbalancer mode the address its load
    // balancer published belongs in the Cluster's tlsSANs.
    let services: Api<Service> = Api::namespaced(client.clone(), &ns_name);
    let have = caches.and_then(|c| cached(&c.services, names::API_SERVICE, Some(&ns_name)));
    let (api_service, service_changed) =
        apply_cached(&services, names::API_SERVICE, &desired.api_service, have)
            .await
            .map_err(|e| Error::kube(applying("API service"), e))?;
    if service_changed {
        // An expose mode change moves the API server: kaas's client of the old address goes.
        ctx.memory()?.tenant_clients.remove(&ws.id);
    }
    sync_ingress_route(ctx, client, ws.id, snap.plan.expose, &host_settings.expose).await?;
    if snap.plan.expose == Expose::LoadBalancer {
        host_settings.load_balancer_addresses = expose::load_balancer_addresses(&api_service);
        desired.cluster = cluster_object(ws, &snap.plan, &host_settings);
    }
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), &ns_name);
    let have = caches.and_then(|c| cached(&c.clusters, &cluster_name, Some(&ns_name)));
    // A field the API server refuses to change would make every apply fail (422): keep
    // the cluster's value, apply the rest, and say what cannot be done.
    let stuck = have
        .as_ref()
        .map(|c| keep_immutable_fields(&c.spec, &mut desired.cluster.spec))
        .filter(|fields| !fields.is_empty());
    let (cluster, changed) = apply_cached(&clusters, &cluster_name, &desired.cluster, have)
        .await
        .map_err(|e| Error::kube(applying("K3K cluster"), e))?;

    let status = cluster.status.as_ref();
    let phase_ready = observe::phase(status) == Some(&ClusterStatusPhase::Ready);
    let reacted = {
        let mut mem = ctx.memory()?;
        let now = Instant::now();
        if changed && ws.applied_generation > 0 {
            mem.pending_change.insert(ws.id, Pending::Since(now));
        }
        let pending = mem.pending_change.get(&ws.id).copied();
        let (reacted, still) =
            observe::reacted(pending, phase_ready, now, ctx.settings.change_grace);
        match still {
            Some(p) => mem.pending_change.insert(ws.id, p),
            None => mem.pending_change.remove(&ws.id),
        };
        reacted
    };
    // The StatefulSet is read only while a change may be rolling out; an in-sync,
    // confirmed workspace was rolled out when it was recorded Ready.
    let settled = !changed
        && reacted
        && ws.applied_generation == ws.generation
        && ws.state == WorkspaceState::Ready;
    let rolled_out = settled || server_rolled_out(client, &ns_name, &cluster_name).await;
    // K3K's Ready ignores its node agents; without one there is no node to run a pod on.
    let agents = if snap.plan.k3k_mode == K3kMode::Shared {
        let name = names::k3k_kubelet_daemonset(&cluster_name);
        match caches.and_then(|c| lookup(&c.agent_sets, &name, Some(&ns_name))) {
            Some(seen) => agents_from(&name, seen.as_deref()),
            None => shared_agents(client, &ns_name, &name).await,
        }
    } else {
        Agents::Ready
    };
    let daemonset = names::k3k_kubelet_daemonset(&cluster_name);
    let mut verdict = observe::observe(&Seen {
        status,
        changed,
        reacted,
        rolled_out,
        agents: &agents,
        first: ws.applied_generation == 0,
        generation: ws.generation,
        agent_daemonset: &daemonset,
    });
    if verdict.state == WorkspaceState::Ready {
        let external = ctx.settings.host.external_addresses.first();
        match expose::api_address(
            &api_service,
            ws.id,
            external.map(String::as_str),
            &host_settings.expose,
        ) {
            Ok(address) => {
                let wanted = desired.cluster.spec.tls_sa_ns.clone().unwrap_or_default();
                if let Some(rolling) =
                    served_cert::check_served_names(ctx, client, ws.id, &address, &wanted).await?
                {
                    verdict = rolling;
                }
            }
            // Tenants cannot connect before the load balancer (or ingress) gives an address.
            Err(why) if snap.plan.expose != Expose::NodePort => {
                verdict = Verdict {
                    state: WorkspaceState::Updating,
                    message: why,
                    applied: None,
                };
            }
            Err(_) => {}
        }
    }
    let node_pass = node_sync::sync(client, &ctx.nodes, ws.id, &snap.dedicated_nodes).await?;
    if verdict.state == WorkspaceState::Ready && !node_pass.problems.is_empty() {
        verdict.state = WorkspaceState::Error;
        verdict.message = format!("degraded: {}", node_pass.problems.join("; "));
    }
    if verdict.state == WorkspaceState::Ready {
        // Ready means tenants can use it: roles, projects and bindings are in place.
        sync_inside(ctx, client, snap).await?;
    } else {
        // A cluster that was not Ready may come back empty (a new datastore): look inside
        // again when it is.
        ctx.memory()?.inside_confirmed.remove(&ws.id);
    }
    // A plan the existing cluster cannot take outranks everything else: it will not
    // resolve itself, and the operator must choose what to do.
    if let Some(fields) = stuck {
        verdict = Verdict {
            state: WorkspaceState::Error,
            message: immutable_message(&fields, &snap.plan.id),
            applied: None,
        };
    }
    let busy = verdict.state != WorkspaceState::Ready || !node_pass.releasing.is_empty();
    let obs = Observation {
        state: verdict.state,
        phase: observe::phase(status).map(|p| observe::phase_name(p).to_string()),
        message: verdict.message,
        applied_generation: verdict.applied,
    };
    ctx.ops.record_observation(ws.id, &obs)?;
    Ok(busy.then_some(ctx.soon()))
}

/// Brings the inside of the virtual cluster in line, with kaas's cached client there (made
/// anew when absent, old, or after a failure: the cluster may have new CAs). What kaas found
/// or made in place there is trusted for `inside_check_interval` while it wants the same:
/// an in-sync resync then sends nothing into the virtual cluster.
async fn sync_inside(ctx: &Context, host: &Client, snap: &WorkspaceSnapshot) -> Result<()> {
    let id = snap.workspace.id;
    let inside = tenant_sync::Inside::of(snap);
    let fingerprint = inside.fingerprint()?;
    let (reuse, confirmed) = {
        let mem = ctx.memory()?;
        let reuse = mem
            .tenant_clients
            .get(&id)
            .and_then(|(c, at)| (at.elapsed() < TENANT_CLIENT_TTL).then(|| c.clone()));
        let confirmed = mem.inside_confirmed.get(&id).is_some_and(|(f, at)| {
            *f == fingerprint && at.elapsed() < ctx.settings.inside_check_interval
        });
        (reuse, confirmed)
    };
    if confirmed && reuse.is_some() {
        return Ok(());
    }
    let client = match reuse {
        Some(c) => c,
        None => {
            let address = ctx.settings.host.external_addresses.first().ok_or_else(|| {
                Error::Misconfigured("no external address configured (host.external_addresses): kaas cannot reach the virtual cluster".into())
            })?;
            let access =
                tenant_sync::access(host, id, Some(address), &ctx.settings.host.expose).await?;
            let c = tenant_sync::admin_client(&access).await?;
            ctx.memory()?
                .tenant_clients
                .insert(id, (c.clone(), Instant::now()));
            c
        }
    };
    let result = tenant_sync::sync(&client, id, inside).await;
    let mut mem = ctx.memory()?;
    match &result {
        Ok(()) => {
            mem.inside_confirmed
                .insert(id, (fingerprint, Instant::now()));
        }
        Err(_) => {
            mem.tenant_clients.remove(&id);
            mem.inside_confirmed.remove(&id);
        }
    }
    result
}

/// Applies the issuer's configuration Secret. kaas may not list or watch Secrets, so what
/// it last found or made in place is remembered (by digest) and read again only after
/// `inside_check_interval` or when it changes: an in-sync pass reads nothing.
async fn apply_issuer_secret(
    ctx: &Context,
    client: &Client,
    id: WorkspaceId,
    ns: &str,
    secret: &Secret,
) -> Result<()> {
    let digest = digest_of(secret)?;
    if confirmed(ctx, id, "issuer-secret", digest)? {
        return Ok(());
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    apply_if_changed(&secrets, crate::host::oidc::SECRET_NAME, secret)
        .await
        .map_err(|e| Error::kube("applying the issuer configuration", e))?;
    confirm(ctx, id, "issuer-secret", digest)
}

/// A digest of what kaas would send for `object`.
fn digest_of<T: serde::Serialize>(object: &T) -> Result<u64> {
    use std::hash::{Hash, Hasher};
    let json = serde_json::to_vec(object).map_err(|e| Error::Internal(e.to_string()))?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    json.hash(&mut h);
    Ok(h.finish())
}

/// Whether `what` (with this digest) was found or made in place less than
/// `inside_check_interval` ago.
fn confirmed(ctx: &Context, id: WorkspaceId, what: &'static str, digest: u64) -> Result<bool> {
    Ok(ctx
        .memory()?
        .confirmed_objects
        .get(&(id, what))
        .is_some_and(|(d, at)| *d == digest && at.elapsed() < ctx.settings.inside_check_interval))
}

fn confirm(ctx: &Context, id: WorkspaceId, what: &'static str, digest: u64) -> Result<()> {
    ctx.memory()?
        .confirmed_objects
        .insert((id, what), (digest, Instant::now()));
    Ok(())
}

/// Keeps Traefik's `IngressRouteTCP` for the API server while the plan says `ingress`, and
/// removes it otherwise (looked up first: a pass that finds nothing to remove writes nothing,
/// and a host without Traefik's CRDs answers 404).
async fn sync_ingress_route(
    ctx: &Context,
    client: &Client,
    ws: WorkspaceId,
    mode: Expose,
    settings: &ExposeSettings,
) -> Result<()> {
    let routes: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &names::namespace(ws),
        &expose::ingress_route_resource(),
    );
    if mode == Expose::Ingress {
        let host = expose::ingress_host(ws, settings).ok_or_else(|| {
            Error::Misconfigured(
                "the plan exposes the API server by ingress, but expose.ingress_domain is not configured"
                    .into(),
            )
        })?;
        let route = expose::ingress_route(ws, &host);
        let digest = digest_of(&route)?;
        if confirmed(ctx, ws, "ingress-route", digest)? {
            return Ok(());
        }
        apply_if_changed(&routes, names::API_SERVICE, &route)
            .await
            .map_err(|e| Error::kube("applying the ingress route (Traefik IngressRouteTCP)", e))?;
        confirm(ctx, ws, "ingress-route", digest)
    } else {
        // Digest 0 stands for "no route".
        if confirmed(ctx, ws, "ingress-route", 0)? {
            return Ok(());
        }
        if routes
            .get_opt(names::API_SERVICE)
            .await
            .ok()
            .flatten()
            .is_some()
        {
            delete_if_present(&routes, names::API_SERVICE, &DeleteParams::default())
                .await
                .map_err(|e| Error::kube("removing the ingress route", e))?;
        }
        confirm(ctx, ws, "ingress-route", 0)
    }
}

/// Whether the K3K server StatefulSet has no rollout in progress (absent counts as done:
/// not every K3K version or fake creates one).
async fn server_rolled_out(client: &Client, ns: &str, cluster: &str) -> bool {
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    match sts.get_opt(&names::k3k_server_statefulset(cluster)).await {
        Ok(Some(s)) => {
            let spec_replicas = s.spec.as_ref().and_then(|sp| sp.replicas).unwrap_or(1);
            let Some(st) = s.status else { return false };
            let revisions_match = match (&st.current_revision, &st.update_revision) {
                (Some(c), Some(u)) => c == u,
                _ => true,
            };
            let generation_seen =
                st.observed_generation.unwrap_or(0) >= s.metadata.generation.unwrap_or(0);
            revisions_match && generation_seen && st.ready_replicas.unwrap_or(0) >= spec_replicas
        }
        Ok(None) => true,
        Err(_) => false,
    }
}

/// The shared-mode node agents, read from the host (before the watch cache has synced).
async fn shared_agents(client: &Client, ns: &str, name: &str) -> Agents {
    let sets: Api<DaemonSet> = Api::namespaced(client.clone(), ns);
    match sets.get_opt(name).await {
        Ok(found) => agents_from(name, found.as_ref()),
        Err(e) => Agents::Waiting(format!("reading {name}: {}", describe(&e))),
    }
}

/// Whether K3K's node agent DaemonSet `name` has a ready agent, none to run, or not yet.
fn agents_from(name: &str, found: Option<&DaemonSet>) -> Agents {
    let Some(ds) = found else {
        return Agents::Waiting("waiting for K3K to start its node agents".into());
    };
    let st = ds.status.clone().unwrap_or_default();
    let observed = st.observed_generation.unwrap_or(0) >= ds.metadata.generation.unwrap_or(0);
    if observed && st.desired_number_scheduled == 0 {
        Agents::Nowhere
    } else if st.number_ready >= 1 {
        Agents::Ready
    } else {
        Agents::Waiting(format!(
            "waiting for K3K's node agents ({name}: {} of {} ready)",
            st.number_ready, st.desired_number_scheduled
        ))
    }
}

/// Puts the observed values of the fields the API server will not change into `desired`;
/// returns the names of those that differed.
fn keep_immutable_fields(observed: &ClusterSpec, desired: &mut ClusterSpec) -> Vec<&'static str> {
    let fields = immutable_changes(observed, desired);
    for f in &fields {
        match *f {
            "spec.mode" => desired.mode = observed.mode.clone(),
            _ => {
                if let (Some(d), Some(o)) =
                    (desired.persistence.as_mut(), observed.persistence.as_ref())
                {
                    d.storage_request_size = o.storage_request_size.clone();
                }
            }
        }
    }
    fields
}

fn immutable_message(fields: &[&str], plan: &str) -> String {
    let what: Vec<&str> = fields
        .iter()
        .map(|f| match *f {
            "spec.mode" => "its K3K mode",
            _ => "its servers' storage size",
        })
        .collect();
    format!(
        "plan {plan:?} changes {} of the existing virtual cluster, which Kubernetes cannot change; everything else is applied. Move the workspace to a plan with the cluster's current values, or create a new workspace on {plan:?} and move the workloads",
        what.join(" and ")
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use http::{Method, StatusCode};
    use k8s_openapi::api::core::v1::Node;
    use serde_json::json;

    use super::*;
    use crate::clock::SystemClock;
    use crate::domain::{OrgId, Workspace, WorkspaceId};
    use crate::host::tenant;
    use crate::ops::{Ops, Settings};
    use crate::reconcile::context::ReconcilerSettings;
    use crate::reconcile::fixtures::{Objects, mock_client};
    use crate::reconcile::node_sync::WatchedNodes;
    use crate::store::{Store, records};

    /// A workspace in `state`, confirmed at its generation, and the context of a pass over it
    /// (one shared node, which runs K3K's node agent).
    pub(crate) fn workspace(state: WorkspaceState) -> (Context, WorkspaceSnapshot) {
        let ops = Ops::new(
            Arc::new(Store::in_memory().unwrap()),
            Arc::new(SystemClock),
            Settings::default(),
        );
        ops.seed_plans().unwrap();
        let now = ops.now();
        let ws = Workspace {
            id: WorkspaceId::generate(),
            org_id: OrgId::generate(),
            name: "payments".into(),
            plan_id: "starter".into(),
            state,
            observed_phase: Some("Ready".into()),
            message: "the virtual cluster is ready".into(),
            generation: 2,
            applied_generation: 2,
            created_at: now,
            updated_at: now,
        };
        let tx = ops.store.write().unwrap();
        records::insert_workspace(&tx, &ws).unwrap();
        tx.commit().unwrap();
        let snap = ops.reconcile_snapshot(ws.id).unwrap().unwrap();
        let settings = ReconcilerSettings {
            host: HostSettings {
                external_addresses: vec!["127.0.0.1".into()],
                k3s_version: "v1.33.1-k3s1".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        let node: Node = serde_json::from_value(json!({"metadata": {"name": "node-1"}})).unwrap();
        let ctx = Context::new(Arc::new(ops), WatchedNodes::listed(vec![node]), settings);
        (ctx, snap)
    }

    /// The host and the virtual cluster exactly as kaas made them, K3K Ready.
    fn in_sync(ctx: &Context, snap: &WorkspaceSnapshot) -> Objects {
        let settings = HostSettings {
            agent_nodes: 1,
            ..ctx.settings.host.clone()
        };
        let d = desired_objects(&snap.workspace, &snap.plan, &settings);
        let id = snap.workspace.id;
        let (ns, cluster) = (names::namespace(id), names::cluster(id));
        let mut ready = d.cluster.clone();
        ready.status = Some(
            serde_json::from_value(json!({"phase": "Ready", "conditions": [{"type": "Ready",
                "status": "True", "reason": "Ready", "message": "",
                "lastTransitionTime": "2026-01-01T00:00:00Z"}]}))
            .unwrap(),
        );
        let agents = json!({"metadata": {"name": names::k3k_kubelet_daemonset(&cluster), "generation": 1},
            "status": {"observedGeneration": 1, "desiredNumberScheduled": 1, "numberReady": 1,
                "currentNumberScheduled": 1, "numberMisscheduled": 0}});
        let rbac = "/apis/rbac.authorization.k8s.io/v1";
        let mut objects = Objects::default();
        for p in &d.network_policies {
            let name = p.metadata.name.clone().unwrap();
            objects = objects.with(
                format!("/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies/{name}"),
                p,
            );
        }
        for q in &d.priority_quotas {
            let name = q.metadata.name.clone().unwrap();
            objects = objects.with(format!("/api/v1/namespaces/{ns}/resourcequotas/{name}"), q);
        }
        objects
            .with(format!("/api/v1/namespaces/{ns}"), &d.namespace)
            .with(
                format!(
                    "/apis/k3k.io/v1beta1/virtualclusterpolicies/{}",
                    names::policy(id)
                ),
                &d.policy,
            )
            .with(
                format!("/apis/k3k.io/v1beta1/namespaces/{ns}/clusters/{cluster}"),
                &ready,
            )
            .with(
                format!("/api/v1/namespaces/{ns}/services/{}", names::API_SERVICE),
                &d.api_service,
            )
            .with(
                format!(
                    "/apis/apps/v1/namespaces/{ns}/daemonsets/{}",
                    names::k3k_kubelet_daemonset(&cluster)
                ),
                &agents,
            )
            .with_list(
                &format!("{rbac}/clusterroles"),
                "ClusterRoleList",
                &tenant::cluster_roles(),
            )
            .with_list(
                &format!("{rbac}/clusterrolebindings"),
                "ClusterRoleBindingList",
                &tenant::cluster_role_bindings(id, &snap.access),
            )
            .with_list(
                "/api/v1/namespaces",
                "NamespaceList",
                &Vec::<Namespace>::new(),
            )
    }

    #[tokio::test]
    async fn a_pass_over_a_workspace_in_sync_writes_nothing() {
        let (ctx, snap) = workspace(WorkspaceState::Ready);
        let (client, verifier) = mock_client();
        let (seen, _server) = verifier.serve(in_sync(&ctx, &snap));
        let id = snap.workspace.id;
        {
            // Earlier passes checked the served certificate and connected inside (the
            // virtual cluster answers on the same mock).
            let mut mem = ctx.memory().unwrap();
            let sans = vec!["127.0.0.1".to_string()];
            mem.verified_sans.insert(id, sans);
            mem.tenant_clients
                .insert(id, (client.clone(), Instant::now()));
        }
        let before = ctx.ops.reconcile_snapshot(id).unwrap().unwrap().workspace;

        let requeue = apply(&ctx, &client, &snap).await.unwrap();

        assert_eq!(seen.writes(), vec![], "an in-sync pass writes nothing");
        assert!(seen.all().len() >= 8, "it did look: {:?}", seen.all());
        assert_eq!(requeue, None, "a Ready workspace waits for the next event");
        let after = ctx.ops.reconcile_snapshot(id).unwrap().unwrap().workspace;
        assert_eq!(after, before, "nor does it write to redb");
    }

    #[tokio::test]
    async fn a_resync_trusts_a_confirmed_inside_until_kaas_wants_something_else() {
        let (ctx, mut snap) = workspace(WorkspaceState::Ready);
        let (client, verifier) = mock_client();
        let (seen, _server) = verifier.serve(in_sync(&ctx, &snap));
        let id = snap.workspace.id;
        {
            let mut mem = ctx.memory().unwrap();
            mem.verified_sans.insert(id, vec!["127.0.0.1".to_string()]);
            mem.tenant_clients
                .insert(id, (client.clone(), Instant::now()));
        }
        let inside = |all: Vec<(Method, String)>| -> Vec<String> {
            all.into_iter()
                .map(|(_, path)| path)
                .filter(|p| p.contains("/clusterrole") || p == "/api/v1/namespaces")
                .collect()
        };
        apply(&ctx, &client, &snap).await.unwrap();
        let first = inside(seen.all());
        assert_eq!(first.len(), 3, "the first pass lists inside: {first:?}");

        apply(&ctx, &client, &snap).await.unwrap();
        assert_eq!(
            inside(seen.all()),
            first,
            "a second pass wanting the same sends nothing inside"
        );

        // A new workspace admin changes what kaas wants inside: it looks again at once.
        snap.access.grant(
            "new-admin@example.com",
            &crate::domain::policy::Standing {
                platform_admin: false,
                org: Some(crate::domain::OrgRole::Owner),
                workspace: None,
                project: None,
            },
        );
        let _ = apply(&ctx, &client, &snap).await;
        assert!(
            inside(seen.all()).len() > first.len(),
            "a changed want is checked inside: {:?}",
            seen.all()
        );
    }

    #[tokio::test]
    async fn a_pass_the_host_forbids_fails_as_a_misconfiguration() {
        let (ctx, snap) = workspace(WorkspaceState::Ready);
        let (client, verifier) = mock_client();
        let (seen, _server) = verifier.refuse(
            StatusCode::FORBIDDEN,
            "namespaces is forbidden: User \"kaas\" cannot get resource \"namespaces\"",
        );

        let err = apply(&ctx, &client, &snap).await.unwrap_err();

        assert_eq!(err.metric_label(), "forbidden");
        assert_eq!(
            err.to_string(),
            "applying the namespace: HTTP 403: namespaces is forbidden: User \"kaas\" cannot get resource \"namespaces\""
        );
        let max = ctx.settings.max_backoff;
        assert_eq!(
            err.backoff(1, max),
            max,
            "a person must fix it: no quick retries"
        );
        assert_eq!(seen.all().len(), 1, "the pass stops at the first refusal");
        assert_eq!(seen.all()[0].0, Method::GET);
    }
}
