//! Removing a deleted workspace from the host, as an ordered list of steps walked from the
//! first on every pass: the K3K Cluster (waiting for K3K's finalizer), the policy, the
//! namespace (waiting for Kubernetes to empty it), the dedicated nodes (released), and last
//! the redb record. Each step is idempotent and tolerates the apply pass never having run
//! (a 404 is success), so a pass that finds a step done moves on to the next.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::DeleteParams;
use kube::{Api, Client, Resource};

use super::context::Context;
use super::error::{Error, Result};
use super::kubeapi::delete_if_present;
use super::node_sync;
use crate::domain::{WorkspaceId, WorkspaceState};
use crate::host::k3k::{Cluster, VirtualClusterPolicy};
use crate::host::names;
use crate::ops::reconcile::Observation;

/// One step of the teardown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Delete the Cluster; done when K3K has removed it (its finalizer cleans up the pods).
    Cluster,
    /// Delete the VirtualClusterPolicy.
    Policy,
    /// Delete the host namespace; done when it is gone.
    Namespace,
    /// Release the workspace's dedicated nodes (evict, unlabel, untaint).
    Nodes,
    /// Remove the workspace's record (and end its node assignments and metering).
    Record,
}

/// The order of the teardown: nothing is removed before what depends on it is gone.
pub const STEPS: [Step; 5] = [
    Step::Cluster,
    Step::Policy,
    Step::Namespace,
    Step::Nodes,
    Step::Record,
];

/// Where a step stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    Done,
    /// Look again after the duration; the message is the workspace's while it waits.
    Waiting(String, Duration),
}

/// One teardown pass: walks [`STEPS`] until one must wait.
pub async fn teardown(ctx: &Context, client: &Client, id: WorkspaceId) -> Result<Option<Duration>> {
    for step in STEPS {
        match run(ctx, client, id, step).await? {
            Progress::Done => {}
            Progress::Waiting(message, after) => {
                let obs = Observation {
                    state: WorkspaceState::Deleting,
                    phase: None,
                    message,
                    applied_generation: None,
                };
                ctx.ops.record_observation(id, &obs)?;
                return Ok(Some(after));
            }
        }
    }
    tracing::info!(workspace = %id, "workspace deleted from the host and the database");
    Ok(None)
}

async fn run(ctx: &Context, client: &Client, id: WorkspaceId, step: Step) -> Result<Progress> {
    let ns_name = names::namespace(id);
    // Deletions run in the background on the server; look again soon.
    let shortly = Duration::from_millis(500).min(ctx.soon());
    match step {
        Step::Cluster => {
            let clusters: Api<Cluster> = Api::namespaced(client.clone(), &ns_name);
            let name = names::cluster(id);
            let found = clusters
                .get_opt(&name)
                .await
                .map_err(|e| Error::kube("reading the K3K cluster", e))?;
            let Some(c) = found else {
                ctx.memory()?.forget(id);
                return Ok(Progress::Done);
            };
            if c.meta().deletion_timestamp.is_none() {
                delete_if_present(&clusters, &name, &DeleteParams::background())
                    .await
                    .map_err(|e| Error::kube("deleting the K3K cluster", e))?;
            }
            let since = *ctx
                .memory()?
                .deleting_since
                .entry(id)
                .or_insert_with(Instant::now);
            let finalizer = c
                .meta()
                .finalizers
                .as_ref()
                .is_some_and(|f| f.iter().any(|x| x == names::K3K_CLUSTER_FINALIZER));
            let message = if finalizer && since.elapsed() >= ctx.settings.stuck_after {
                format!(
                    "deletion is stuck: the K3K cluster still carries the {} finalizer after {} s — is the K3K controller running on the host?",
                    names::K3K_CLUSTER_FINALIZER,
                    since.elapsed().as_secs()
                )
            } else {
                "deleting the virtual cluster (waiting for K3K)".to_string()
            };
            Ok(Progress::Waiting(message, shortly))
        }
        Step::Policy => {
            let policies: Api<VirtualClusterPolicy> = Api::all(client.clone());
            delete_if_present(&policies, &names::policy(id), &DeleteParams::default())
                .await
                .map_err(|e| Error::kube("deleting the virtual cluster policy", e))?;
            Ok(Progress::Done)
        }
        Step::Namespace => {
            let namespaces: Api<Namespace> = Api::all(client.clone());
            let found = namespaces
                .get_opt(&ns_name)
                .await
                .map_err(|e| Error::kube("reading the namespace", e))?;
            let Some(ns) = found else {
                return Ok(Progress::Done);
            };
            if ns.meta().deletion_timestamp.is_none() {
                delete_if_present(&namespaces, &ns_name, &DeleteParams::background())
                    .await
                    .map_err(|e| Error::kube("deleting the namespace", e))?;
            }
            Ok(Progress::Waiting(
                "deleting the host namespace".into(),
                shortly,
            ))
        }
        Step::Nodes => {
            let pass = node_sync::sync(client, &ctx.nodes, id, &[]).await?;
            if pass.releasing.is_empty() {
                Ok(Progress::Done)
            } else {
                Ok(Progress::Waiting(
                    format!("releasing dedicated nodes: {}", pass.releasing.join(", ")),
                    ctx.soon(),
                ))
            }
        }
        Step::Record => {
            ctx.ops.finish_workspace_deletion(id)?;
            Ok(Progress::Done)
        }
    }
}

#[cfg(test)]
mod tests {
    use http::Method;

    use super::*;
    use crate::reconcile::apply::tests::workspace;
    use crate::reconcile::fixtures::{Objects, mock_client};

    #[test]
    fn the_cluster_goes_first_and_the_record_last() {
        assert_eq!(STEPS.first(), Some(&Step::Cluster));
        assert_eq!(STEPS.last(), Some(&Step::Record));
        let at = |s| STEPS.iter().position(|x| *x == s);
        assert!(at(Step::Policy) < at(Step::Namespace));
        assert!(at(Step::Namespace) < at(Step::Nodes));
    }

    #[tokio::test]
    async fn a_workspace_the_host_never_saw_is_torn_down_in_one_pass() {
        let (ctx, snap) = workspace(WorkspaceState::Deleting);
        let id = snap.workspace.id;
        let (client, verifier) = mock_client();
        let (seen, _server) = verifier.serve(Objects::default());

        let requeue = teardown(&ctx, &client, id).await.unwrap();

        assert_eq!(requeue, None);
        assert!(
            ctx.ops.reconcile_snapshot(id).unwrap().is_none(),
            "record removed"
        );
        // Every step tolerated a 404: the policy delete was the only write tried.
        let writes = seen.writes();
        assert_eq!(writes.len(), 1, "{writes:?}");
        assert_eq!(writes[0].0, Method::DELETE);
        assert!(writes[0].1.ends_with(&names::policy(id)), "{writes:?}");
    }

    #[tokio::test]
    async fn a_cluster_still_there_is_deleted_and_waited_for() {
        let (ctx, snap) = workspace(WorkspaceState::Deleting);
        let id = snap.workspace.id;
        let (ns, name) = (names::namespace(id), names::cluster(id));
        let cluster = serde_json::json!({"apiVersion": "k3k.io/v1beta1", "kind": "Cluster",
            "metadata": {"name": name, "namespace": ns}, "spec": {}});
        let (client, verifier) = mock_client();
        let (seen, _server) = verifier.serve(Objects::default().with(
            format!("/apis/k3k.io/v1beta1/namespaces/{ns}/clusters/{name}"),
            &cluster,
        ));

        let requeue = teardown(&ctx, &client, id).await.unwrap();

        assert!(requeue.is_some(), "looks again while K3K finalizes");
        let ws = ctx.ops.reconcile_snapshot(id).unwrap().unwrap().workspace;
        assert_eq!(ws.message, "deleting the virtual cluster (waiting for K3K)");
        let writes = seen.writes();
        assert_eq!(
            writes.len(),
            1,
            "nothing after the Cluster is touched: {writes:?}"
        );
        assert_eq!(writes[0].0, Method::DELETE);
    }
}
