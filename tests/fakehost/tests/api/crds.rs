//! CRDs: the k3k fixtures load and serve `clusters.k3k.io` (namespaced) and
//! `virtualclusterpolicies.k3k.io` (cluster-scoped) with status subresources; scope is
//! enforced; custom resources are validated through the schema seam; deleting a CRD
//! removes its resources.

use std::sync::Arc;

use fakehost::seams::{FieldError, SchemaValidator};
use fakehost::{FakeHostOptions, ResourceRef};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::discovery::{Scope, pinned_kind};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use crate::api::support::{
    K3K_CRDS, cluster_object, clusters, start_with, start_with_k3k, status_of,
};

#[tokio::test]
async fn k3k_crds_are_established_and_discoverable() {
    let t = start_with_k3k().await;
    let crds: Api<CustomResourceDefinition> = Api::all(t.client.clone());
    let crd = crds.get("clusters.k3k.io").await.expect("crd");
    let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
    assert!(
        conditions
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
    );
    assert!(
        conditions
            .iter()
            .any(|c| c.type_ == "NamesAccepted" && c.status == "True")
    );

    let (resource, caps) = pinned_kind(
        &t.client,
        &GroupVersionKind::gvk("k3k.io", "v1beta1", "Cluster"),
    )
    .await
    .expect("clusters discovered");
    assert_eq!(resource.plural, "clusters");
    assert_eq!(caps.scope, Scope::Namespaced);
    assert!(
        caps.subresources
            .iter()
            .any(|(sub, _)| sub.plural == "status"),
        "clusters/status listed"
    );
    let (_, caps) = pinned_kind(
        &t.client,
        &GroupVersionKind::gvk("k3k.io", "v1beta1", "VirtualClusterPolicy"),
    )
    .await
    .expect("vcp discovered");
    assert_eq!(caps.scope, Scope::Cluster);
}

#[tokio::test]
async fn cluster_lifecycle_scope_and_unconditional_update() {
    let t = start_with_k3k().await;
    let api = clusters(&t.client, "default");
    let created = api
        .create(&PostParams::default(), &cluster_object("c1"))
        .await
        .expect("create cluster");
    assert_eq!(created.metadata.generation, Some(1));

    let status = api
        .patch_status(
            "c1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Ready"}})),
        )
        .await
        .expect("status");
    assert_eq!(status.data["status"]["phase"], "Ready");
    assert_eq!(
        status.metadata.generation,
        Some(1),
        "status writes do not bump generation"
    );

    let mut unconditional = status.clone();
    unconditional.metadata.resource_version = None;
    let (code, _) = status_of(
        api.replace("c1", &PostParams::default(), &unconditional)
            .await,
    );
    assert_eq!(
        code, 422,
        "custom resources need a resourceVersion on update"
    );

    // Wrong scope: clusters without a namespace, policies inside one.
    let request = http::Request::get("/apis/k3k.io/v1beta1/clusters/c1")
        .body(Vec::new())
        .expect("request");
    let (code, _) = status_of(t.client.request::<Value>(request).await);
    assert_eq!(code, 404);
    let request =
        http::Request::get("/apis/k3k.io/v1beta1/namespaces/default/virtualclusterpolicies")
            .body(Vec::new())
            .expect("request");
    assert_eq!(status_of(t.client.request::<Value>(request).await).0, 404);
    let request = http::Request::get("/apis/k3k.io/v1alpha1/namespaces/default/clusters")
        .body(Vec::new())
        .expect("request");
    assert_eq!(
        status_of(t.client.request::<Value>(request).await).0,
        404,
        "unserved version"
    );
}

/// A validator like the schema module will be: rejects `spec.servers < 1`.
struct ServersAtLeastOne;

impl SchemaValidator for ServersAtLeastOne {
    fn validate_and_default(
        &self,
        schema: &Value,
        object: &mut Value,
    ) -> Result<(), Vec<FieldError>> {
        assert!(
            schema.pointer("/properties/spec").is_some(),
            "the CRD's openAPIV3Schema is passed"
        );
        match object.pointer("/spec/servers").and_then(Value::as_i64) {
            Some(n) if n < 1 => Err(vec![FieldError {
                path: "spec.servers".into(),
                message: format!(
                    "Invalid value: {n}: spec.servers in body should be greater than or equal to 1"
                ),
            }]),
            _ => Ok(()),
        }
    }
}

#[tokio::test]
async fn custom_resources_are_validated_through_the_schema_seam() {
    let options = FakeHostOptions {
        manifests: vec![K3K_CRDS.into()],
        validator: Some(Arc::new(ServersAtLeastOne)),
        ..FakeHostOptions::default()
    };
    let t = start_with(options).await;
    let api = clusters(&t.client, "default");
    let mut bad = cluster_object("bad");
    bad.data["spec"]["servers"] = json!(0);
    let error = api
        .create(&PostParams::default(), &bad)
        .await
        .expect_err("rejected");
    let kube::Error::Api(status) = error else {
        panic!("expected API error")
    };
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert!(
        status.message.contains("spec.servers"),
        "{}",
        status.message
    );
    let causes = status.details.map(|d| d.causes).unwrap_or_default();
    assert_eq!(
        causes.first().map(|c| c.field.as_str()),
        Some("spec.servers")
    );
}

#[tokio::test]
async fn deleting_a_crd_removes_its_resources_and_endpoint() {
    let t = start_with_k3k().await;
    let api = clusters(&t.client, "default");
    api.create(&PostParams::default(), &cluster_object("c1"))
        .await
        .expect("create");
    let crds: Api<CustomResourceDefinition> = Api::all(t.client.clone());
    crds.delete("clusters.k3k.io", &DeleteParams::default())
        .await
        .expect("delete crd");
    assert_eq!(status_of(crds.get("clusters.k3k.io").await).0, 404);
    assert_eq!(
        status_of(api.list(&Default::default()).await).0,
        404,
        "endpoint gone"
    );
    assert!(
        t.host
            .engine()
            .resource_type(&ResourceRef::new("k3k.io", "clusters"))
            .is_none()
    );
}

#[tokio::test]
async fn crd_created_over_http_serves_at_once() {
    let t = start_with(FakeHostOptions::default()).await;
    let text = std::fs::read_to_string(format!("{K3K_CRDS}/k3k.io_virtualclusterpolicies.yaml"))
        .expect("fixture");
    let crd: CustomResourceDefinition = serde_yaml::from_str(&text).expect("crd yaml");
    let crds: Api<CustomResourceDefinition> = Api::all(t.client.clone());
    crds.create(&PostParams::default(), &crd)
        .await
        .expect("create crd");
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("k3k.io", "v1beta1", "VirtualClusterPolicy"),
        "virtualclusterpolicies",
    );
    let policies: Api<DynamicObject> = Api::all_with(t.client.clone(), &resource);
    let mut policy = DynamicObject::new("ws-1", &resource);
    policy.data = json!({"spec": {"allowedMode": "shared"}});
    let created = policies
        .create(&PostParams::default(), &policy)
        .await
        .expect("create policy");
    assert_eq!(created.name_any(), "ws-1");
}
