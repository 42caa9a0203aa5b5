//! The real policy modules behind the seams: RBAC for non-admin users (and
//! SelfSubjectAccessReview), PodTolerationRestriction, CRD schema validation.

use k8s_openapi::api::authorization::v1::SelfSubjectAccessReview;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

use crate::api::support::{
    client_for, cluster_object, clusters, start, start_with, start_with_k3k, status_of,
};

#[tokio::test]
async fn rbac_decides_for_non_admin_users() {
    let t = start().await;
    let alice = client_for(
        &t.host
            .kubeconfig_for("alice", &["tenants".to_string()])
            .expect("kubeconfig"),
    )
    .await;
    let as_alice: Api<ConfigMap> = Api::namespaced(alice.clone(), "default");
    let (code, reason) = status_of(as_alice.list(&Default::default()).await);
    assert_eq!((code, reason.as_str()), (403, "Forbidden"));

    let review = |verb: &str| -> SelfSubjectAccessReview {
        serde_json::from_value(json!({"spec": {"resourceAttributes": {"verb": verb, "resource": "configmaps", "namespace": "default"}}})).expect("review")
    };
    let reviews: Api<SelfSubjectAccessReview> = Api::all(alice.clone());
    let answer = reviews
        .create(&PostParams::default(), &review("list"))
        .await
        .expect("review");
    assert!(!answer.status.expect("status").allowed);

    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "alice-view"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}]
    }))
    .expect("binding");
    Api::<RoleBinding>::namespaced(t.client.clone(), "default")
        .create(&PostParams::default(), &binding)
        .await
        .expect("bind");
    assert!(
        as_alice.list(&Default::default()).await.is_ok(),
        "view allows list"
    );
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "x"}})).expect("cm");
    assert_eq!(
        status_of(as_alice.create(&PostParams::default(), &cm).await).0,
        403,
        "view does not allow create"
    );
    let answer = reviews
        .create(&PostParams::default(), &review("list"))
        .await
        .expect("review");
    assert!(answer.status.expect("status").allowed);
}

#[tokio::test]
async fn pod_toleration_restriction_uses_namespace_annotations() {
    let t = start_with(fakehost::FakeHostOptions {
        pod_toleration_restriction: true,
        ..Default::default()
    })
    .await;
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": "ws-1", "annotations": {
        "scheduler.alpha.kubernetes.io/defaultTolerations": r#"[{"key":"dedicated","operator":"Equal","value":"ws-1","effect":"NoSchedule"}]"#,
        "scheduler.alpha.kubernetes.io/tolerationsWhitelist": r#"[{"key":"dedicated","operator":"Equal","value":"ws-1","effect":"NoSchedule"},{"key":"node.kubernetes.io/not-ready","operator":"Exists","effect":"NoExecute"},{"key":"node.kubernetes.io/unreachable","operator":"Exists","effect":"NoExecute"}]"#
    }}}))
    .expect("namespace");
    Api::<Namespace>::all(t.client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .expect("namespace");
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "ws-1");
    let pod = |name: &str, tolerations: serde_json::Value| -> Pod {
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "busybox:1"}], "tolerations": tolerations}})).expect("pod")
    };
    let admitted = pods
        .create(&PostParams::default(), &pod("ok", json!([])))
        .await
        .expect("admitted");
    let tolerations = admitted
        .spec
        .and_then(|s| s.tolerations)
        .unwrap_or_default();
    assert!(
        tolerations
            .iter()
            .any(|t| t.key.as_deref() == Some("dedicated")),
        "default toleration merged"
    );
    let foreign =
        json!([{"key": "dedicated", "operator": "Equal", "value": "ws-2", "effect": "NoSchedule"}]);
    let (code, reason) = status_of(
        pods.create(&PostParams::default(), &pod("sneaky", foreign))
            .await,
    );
    // As kube-apiserver answers it (checked on realhost): a 500 with the plugin's message
    // and no reason, not a 403.
    assert_eq!(
        (code, reason.as_str()),
        (500, ""),
        "tolerations outside the whitelist are refused"
    );
}

#[tokio::test]
async fn k3k_schema_rejects_bad_clusters() {
    let t = start_with_k3k().await;
    let api = clusters(&t.client, "default");
    let mut bad = cluster_object("bad");
    bad.data["spec"]["mode"] = json!("bogus");
    let error = api
        .create(&PostParams::default(), &bad)
        .await
        .expect_err("rejected");
    let kube::Error::Api(status) = error else {
        panic!("expected API error")
    };
    assert_eq!(status.code, 422);
    assert!(status.message.contains("spec.mode"), "{}", status.message);
    let created = api
        .create(&PostParams::default(), &cluster_object("good"))
        .await
        .expect("valid cluster");
    let mut no_mode = cluster_object("defaulted");
    no_mode.data["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("mode");
    let defaulted = api
        .create(&PostParams::default(), &no_mode)
        .await
        .expect("defaulted");
    assert_eq!(
        defaulted.data["spec"]["mode"], "shared",
        "schema defaults applied"
    );
    assert_eq!(created.data["spec"]["mode"], "shared");
}

/// A host certificate carries one O per group (`pki::Ca::issue_client_cert`); RBAC must see
/// every one of them, not only the last.
#[tokio::test]
async fn a_certificate_with_two_groups_authorizes_via_either() {
    let t = start().await;
    let kubeconfig = t
        .host
        .kubeconfig_for("dana", &["readers".to_string(), "writers".to_string()])
        .expect("kubeconfig");
    let dana = client_for(&kubeconfig).await;
    for (name, role, group) in [("r", "view", "readers"), ("w", "edit", "writers")] {
        let binding: RoleBinding = serde_json::from_value(json!({
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}]
        }))
        .expect("binding");
        Api::<RoleBinding>::namespaced(t.client.clone(), "default")
            .create(&PostParams::default(), &binding)
            .await
            .expect("bind");
        // After the first binding only the first O grants anything: a certificate that
        // kept only its last group would be refused here.
        let as_dana: Api<ConfigMap> = Api::namespaced(dana.clone(), "default");
        assert!(as_dana.list(&Default::default()).await.is_ok(), "{group}");
        if group == "readers" {
            let cm: ConfigMap =
                serde_json::from_value(json!({"metadata": {"name": "x"}})).expect("cm");
            assert_eq!(
                status_of(as_dana.create(&PostParams::default(), &cm).await).0,
                403
            );
        }
    }
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "x"}})).expect("cm");
    Api::<ConfigMap>::namespaced(dana, "default")
        .create(&PostParams::default(), &cm)
        .await
        .expect("writers may create");
}
