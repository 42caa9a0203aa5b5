//! VirtualClusterPolicy: quota and limit land in every bound namespace as `k3k-<policy>`
//! objects, follow policy edits, go away when the namespace is unbound, and the quota's
//! `status.used` reflects the pods in the namespace; the policy's defaults are copied into
//! `status.policy` of the namespace's Clusters, where K3K's pods take their affinity from.

use std::time::Duration;

use k8s_openapi::api::core::v1::{LimitRange, Namespace, Pod, ResourceQuota};
use kube::Api;
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::k3k::support::{eventually, policies_resource, start};

#[tokio::test]
async fn policy_quota_and_limits_follow_the_policy() {
    let t = start(Duration::from_millis(20)).await;
    let policies = Api::<DynamicObject>::all_with(t.client.clone(), &policies_resource());
    let policy: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "k3k.io/v1beta1", "kind": "VirtualClusterPolicy", "metadata": {"name": "plan-small"},
        "spec": {"quota": {"hard": {"pods": "10", "requests.cpu": "2", "requests.memory": "4Gi"}},
                 "limit": {"limits": [{"type": "Container", "default": {"cpu": "500m"}, "defaultRequest": {"cpu": "100m"}}]}},
    }))
    .expect("policy");
    policies
        .create(&PostParams::default(), &policy)
        .await
        .expect("policy created");
    t.namespace("ws-p", json!({"policy.k3k.io/policy-name": "plan-small"}))
        .await;

    let quotas = Api::<ResourceQuota>::namespaced(t.client.clone(), "ws-p");
    let limits = Api::<LimitRange>::namespaced(t.client.clone(), "ws-p");
    let quota = eventually("the quota", async || {
        quotas.get_opt("k3k-plan-small").await.expect("get")
    })
    .await;
    let labels = quota.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("k3k-policy-controller")
    );
    assert_eq!(
        labels.get("policy.k3k.io/policy-name").map(String::as_str),
        Some("plan-small")
    );
    let owner = quota.metadata.owner_references.unwrap_or_default();
    assert_eq!(
        owner.first().map(|o| o.kind.as_str()),
        Some("VirtualClusterPolicy")
    );
    eventually("the limit range", async || {
        limits.get_opt("k3k-plan-small").await.expect("get")
    })
    .await;

    // Usage: the quota controller sums the pods' requests.
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "app"}, "spec": {"containers": [
        {"name": "a", "image": "nginx", "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}}},
        {"name": "b", "image": "nginx", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}},
    ]}}))
    .expect("pod");
    Api::<Pod>::namespaced(t.client.clone(), "ws-p")
        .create(&PostParams::default(), &pod)
        .await
        .expect("pod created");
    let used = eventually("quota usage", async || {
        let status = quotas.get("k3k-plan-small").await.expect("get").status?;
        let used = status.used?;
        (used.get("pods").map(|q| q.0.as_str()) == Some("1")).then_some(used)
    })
    .await;
    assert_eq!(
        used.get("requests.cpu").map(|q| q.0.as_str()),
        Some("1250m")
    );
    assert_eq!(
        used.get("requests.memory").map(|q| q.0.as_str()),
        Some("1280Mi")
    );

    // Edits follow: a dropped key disappears, no limit removes the LimitRange.
    let edit = json!({"spec": {"quota": {"hard": {"pods": "20", "requests.cpu": "2", "requests.memory": null}}, "limit": null}});
    policies
        .patch("plan-small", &PatchParams::default(), &Patch::Merge(&edit))
        .await
        .expect("policy edited");
    eventually("the edited quota", async || {
        let hard = quotas
            .get("k3k-plan-small")
            .await
            .expect("get")
            .spec?
            .hard?;
        (hard.get("pods").map(|q| q.0.as_str()) == Some("20")
            && !hard.contains_key("requests.memory"))
        .then_some(())
    })
    .await;
    eventually("the limit range removal", async || {
        limits
            .get_opt("k3k-plan-small")
            .await
            .expect("get")
            .is_none()
            .then_some(())
    })
    .await;

    // Unbinding the namespace removes the policy's objects.
    let unlabel = json!({"metadata": {"labels": {"policy.k3k.io/policy-name": null}}});
    Api::<Namespace>::all(t.client.clone())
        .patch("ws-p", &PatchParams::default(), &Patch::Merge(&unlabel))
        .await
        .expect("unlabelled");
    eventually("the quota removal", async || {
        quotas
            .get_opt("k3k-plan-small")
            .await
            .expect("get")
            .is_none()
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn clusters_carry_the_policy_in_their_status() {
    let t = start(Duration::from_millis(20)).await;
    let policies = Api::<DynamicObject>::all_with(t.client.clone(), &policies_resource());
    let server_affinity = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]}]}}});
    let agent_affinity = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}]}}});
    let policy: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "k3k.io/v1beta1", "kind": "VirtualClusterPolicy", "metadata": {"name": "plan-pinned"},
        "spec": {"defaultNodeSelector": {"pool": "tenant"}, "defaultPriorityClass": "tenant-low",
                 "defaultServerAffinity": server_affinity, "defaultAgentAffinity": agent_affinity},
    }))
    .expect("policy");
    policies
        .create(&PostParams::default(), &policy)
        .await
        .expect("policy created");
    let bare: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "k3k.io/v1beta1", "kind": "VirtualClusterPolicy", "metadata": {"name": "plan-bare"}, "spec": {}}))
    .expect("policy");
    policies
        .create(&PostParams::default(), &bare)
        .await
        .expect("policy created");
    t.namespace("ws-pp", json!({"policy.k3k.io/policy-name": "plan-pinned"}))
        .await;
    let own = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "Exists"}]}]}}});
    t.cluster(
        "ws-pp",
        "c",
        json!({"mode": "shared", "serverAffinity": own, "agentAffinity": own}),
    )
    .await;
    let cluster = t
        .wait_cluster("ws-pp", "c", "given the policy", |c| {
            c.pointer("/status/policy").is_some()
        })
        .await;
    // The policy's sync (defaulted by its CRD) is copied as it is stored.
    let stored = policies.get("plan-pinned").await.expect("policy");
    let mut applied = cluster["status"]["policy"].clone();
    assert_eq!(applied["sync"], stored.data["spec"]["sync"]);
    applied.as_object_mut().expect("object").remove("sync");
    assert_eq!(
        applied,
        json!({"name": "plan-pinned", "priorityClass": "tenant-low", "nodeSelector": {"pool": "tenant"},
               "serverAffinity": server_affinity, "agentAffinity": agent_affinity})
    );
    t.wait_phase("ws-pp", "c", "Ready").await;
    // The policy's affinities win over the Cluster's own; its nodeSelector is for tenant
    // pods only, not K3K's.
    let pod = eventually("the server pod", async || {
        Api::<Pod>::namespaced(t.client.clone(), "ws-pp")
            .get_opt("k3k-c-server-0")
            .await
            .expect("get")
    })
    .await;
    let pod = serde_json::to_value(pod).expect("json");
    assert_eq!(pod["spec"]["affinity"], server_affinity);
    assert!(pod["spec"].get("nodeSelector").is_none());
    let ds = eventually("the agent DaemonSet", async || {
        Api::<k8s_openapi::api::apps::v1::DaemonSet>::namespaced(t.client.clone(), "ws-pp")
            .get_opt("k3k-c-kubelet")
            .await
            .expect("get")
    })
    .await;
    let ds = serde_json::to_value(ds).expect("json");
    assert_eq!(ds["spec"]["template"]["spec"]["affinity"], agent_affinity);

    // Another policy: its (empty) defaults, priorityClass written as "".
    let namespaces = Api::<Namespace>::all(t.client.clone());
    let rebind = json!({"metadata": {"labels": {"policy.k3k.io/policy-name": "plan-bare"}}});
    namespaces
        .patch("ws-pp", &PatchParams::default(), &Patch::Merge(&rebind))
        .await
        .expect("rebound");
    let cluster = t
        .wait_cluster("ws-pp", "c", "given the other policy", |c| {
            c.pointer("/status/policy/name") == Some(&json!("plan-bare"))
        })
        .await;
    let mut applied = cluster["status"]["policy"].clone();
    applied.as_object_mut().expect("object").remove("sync");
    assert_eq!(applied, json!({"name": "plan-bare", "priorityClass": ""}));
    // Unbound: no policy in the status any more.
    let unbind = json!({"metadata": {"labels": {"policy.k3k.io/policy-name": null}}});
    namespaces
        .patch("ws-pp", &PatchParams::default(), &Patch::Merge(&unbind))
        .await
        .expect("unbound");
    let cluster: Value = t
        .wait_cluster("ws-pp", "c", "without a policy", |c| {
            c.pointer("/status/policy").is_none()
        })
        .await;
    assert!(cluster.pointer("/status/policyName").is_none());
}
