//! RBAC's escalation check over HTTPS: a user may write a Role or binding only granting what
//! they hold (or with `escalate`/`bind`), by create, update, patch or server-side apply, while
//! `system:masters` may write anything — the 403s and messages of kube-apiserver.

use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::api::support::{TestHost, client_for, start};

const RBAC: &str = "rbac.authorization.k8s.io";

fn api(client: &Client, kind: &str, namespace: Option<&str>) -> Api<DynamicObject> {
    let plural = format!("{}s", kind.to_lowercase());
    let resource = kube::api::ApiResource {
        group: RBAC.into(),
        version: "v1".into(),
        api_version: format!("{RBAC}/v1"),
        kind: kind.into(),
        plural,
    };
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

fn object(kind: &str, body: Value) -> DynamicObject {
    let mut body = body;
    body["apiVersion"] = json!(format!("{RBAC}/v1"));
    body["kind"] = json!(kind);
    serde_json::from_value(body).expect("object")
}

fn binding(kind: &str, name: &str, role_kind: &str, role: &str, user: &str) -> DynamicObject {
    object(
        kind,
        json!({"metadata": {"name": name},
            "roleRef": {"apiGroup": RBAC, "kind": role_kind, "name": role},
            "subjects": [{"apiGroup": RBAC, "kind": "User", "name": user}]}),
    )
}

fn role(kind: &str, name: &str, rules: Value) -> DynamicObject {
    object(kind, json!({"metadata": {"name": name}, "rules": rules}))
}

async fn create(
    client: &Client,
    kind: &str,
    namespace: Option<&str>,
    obj: &DynamicObject,
) -> Result<DynamicObject, kube::Error> {
    api(client, kind, namespace)
        .create(&PostParams::default(), obj)
        .await
}

/// The 403 of a refused write: its message.
fn forbidden<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> String {
    match result {
        Err(kube::Error::Api(status)) => {
            assert_eq!(
                (status.code, status.reason.as_str()),
                (403, "Forbidden"),
                "{status:?}"
            );
            status.message
        }
        other => panic!("expected a 403, got {other:?}"),
    }
}

/// A host with namespace `team` and `ann` bound to `admin` there.
async fn world() -> (TestHost, Client) {
    let t = start().await;
    t.host
        .load_manifests(
            r#"
apiVersion: v1
kind: Namespace
metadata: {name: team}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: ann-admin, namespace: team}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: admin}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: ann}]
"#,
        )
        .expect("setup");
    let ann = client_for(
        &t.host
            .kubeconfig_for("ann", &["team-admins".to_string()])
            .expect("kubeconfig"),
    )
    .await;
    (t, ann)
}

#[tokio::test]
async fn a_namespace_admin_binds_edit_and_view_but_not_cluster_admin() {
    let (t, ann) = world().await;
    let rb = |name: &str, role: &str| binding("RoleBinding", name, "ClusterRole", role, "bob");

    let message = forbidden(
        create(
            &ann,
            "RoleBinding",
            Some("team"),
            &rb("root", "cluster-admin"),
        )
        .await,
    );
    assert_eq!(
        message,
        "rolebindings.rbac.authorization.k8s.io \"root\" is forbidden: user \"ann\" \
         (groups=[\"team-admins\" \"system:authenticated\"]) is attempting to grant RBAC \
         permissions not currently held:\n\
         {APIGroups:[\"*\"], Resources:[\"*\"], Verbs:[\"*\"]}\n\
         {NonResourceURLs:[\"*\"], Verbs:[\"*\"]}"
    );
    for role in ["admin", "edit", "view"] {
        create(&ann, "RoleBinding", Some("team"), &rb(role, role))
            .await
            .unwrap_or_else(|e| panic!("binding {role}: {e}"));
    }
    // kubectl shows the same refusal.
    let out = t
        .kubectl(&[
            "--kubeconfig",
            &t.manifest(
                "ann.kubeconfig",
                &t.host
                    .kubeconfig_for("ann", &["team-admins".to_string()])
                    .expect("kubeconfig"),
            ),
            "create",
            "rolebinding",
            "kubectl-root",
            "-n",
            "team",
            "--clusterrole=cluster-admin",
            "--user=ann",
        ])
        .await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is attempting to grant RBAC permissions not currently held"),
        "{stderr}"
    );

    // Server-side apply and patches are checked on their result.
    let apply = PatchParams::apply("ann");
    let applied = api(&ann, "RoleBinding", Some("team"))
        .patch(
            "applied",
            &apply,
            &Patch::Apply(rb("applied", "cluster-admin")),
        )
        .await;
    assert!(forbidden(applied).contains("not currently held"));
    let roles = api(&ann, "Role", Some("team"));
    roles
        .create(
            &PostParams::default(),
            &role(
                "Role",
                "deployer",
                json!([{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "update"]}]),
            ),
        )
        .await
        .expect("a role of held verbs");
    let grow = json!({"rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["delete"]}]});
    let message = forbidden(
        roles
            .patch("deployer", &PatchParams::default(), &Patch::Merge(&grow))
            .await,
    );
    assert!(
        message.ends_with(
            "not currently held:\n{APIGroups:[\"\"], Resources:[\"nodes\"], Verbs:[\"delete\"]}"
        ),
        "{message}"
    );
    // A PUT is checked too.
    let mut current = roles.get("deployer").await.expect("role");
    current.data["rules"] = grow["rules"].clone();
    forbidden(
        roles
            .replace("deployer", &PostParams::default(), &current)
            .await,
    );
    let stored = roles.get("deployer").await.expect("role");
    assert_eq!(
        stored.data["rules"][0]["resources"],
        json!(["deployments"]),
        "nothing stored"
    );
}

#[tokio::test]
async fn roles_need_the_verbs_they_grant_or_escalate() {
    let (t, ann) = world().await;
    let quota_writer = role(
        "Role",
        "quota-writer",
        json!([{"apiGroups": [""], "resources": ["resourcequotas"], "verbs": ["get", "update"]}]),
    );
    let message = forbidden(create(&ann, "Role", Some("team"), &quota_writer).await);
    assert!(
        message.starts_with(
            "roles.rbac.authorization.k8s.io \"quota-writer\" is forbidden: user \"ann\""
        ),
        "{message}"
    );
    assert!(
        message.ends_with("{APIGroups:[\"\"], Resources:[\"resourcequotas\"], Verbs:[\"update\"]}"),
        "only the missing verb is named: {message}"
    );
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    forbidden(
        api(&ann, "Role", Some("team"))
            .create(&dry, &quota_writer)
            .await,
    );

    // The admin creates it; ann may still touch what the garbage collector touches.
    create(&t.client, "Role", Some("team"), &quota_writer)
        .await
        .expect("system:masters creates it");
    let finalizer = json!({"metadata": {"finalizers": ["example.com/hold"]}});
    api(&ann, "Role", Some("team"))
        .patch(
            "quota-writer",
            &PatchParams::default(),
            &Patch::Merge(&finalizer),
        )
        .await
        .expect("a GC-fields-only change needs no escalation check");
    let relabel = json!({"metadata": {"labels": {"x": "y"}}});
    forbidden(
        api(&ann, "Role", Some("team"))
            .patch(
                "quota-writer",
                &PatchParams::default(),
                &Patch::Merge(&relabel),
            )
            .await,
    );

    // `escalate` on roles lifts the check.
    t.host
        .load_manifests(
            r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: escalate, namespace: team}
rules: [{apiGroups: [rbac.authorization.k8s.io], resources: [roles], verbs: [escalate]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: ann-escalate, namespace: team}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: escalate}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: ann}]
"#,
        )
        .expect("escalate");
    let mut other = quota_writer.clone();
    other.metadata.name = Some("quota-writer-2".into());
    create(&ann, "Role", Some("team"), &other)
        .await
        .expect("escalate allows it");
}

#[tokio::test]
async fn bind_on_a_named_clusterrole_allows_binding_only_that_role() {
    let t = start().await;
    t.host
        .load_manifests(
            r#"
apiVersion: v1
kind: Namespace
metadata: {name: team}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: root-binder}
rules:
- {apiGroups: [rbac.authorization.k8s.io], resources: [clusterroles], verbs: [bind], resourceNames: [cluster-admin]}
- {apiGroups: [rbac.authorization.k8s.io], resources: [rolebindings, clusterrolebindings], verbs: [create]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: binder}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: root-binder}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: binder}]
"#,
        )
        .expect("setup");
    let binder = client_for(&t.host.kubeconfig_for("binder", &[]).expect("kubeconfig")).await;
    create(
        &binder,
        "ClusterRoleBinding",
        None,
        &binding(
            "ClusterRoleBinding",
            "root",
            "ClusterRole",
            "cluster-admin",
            "x",
        ),
    )
    .await
    .expect("bind allows a ClusterRoleBinding to cluster-admin");
    create(
        &binder,
        "RoleBinding",
        Some("team"),
        &binding("RoleBinding", "root", "ClusterRole", "cluster-admin", "x"),
    )
    .await
    .expect("and a RoleBinding");
    let message = forbidden(
        create(
            &binder,
            "ClusterRoleBinding",
            None,
            &binding("ClusterRoleBinding", "view", "ClusterRole", "view", "x"),
        )
        .await,
    );
    assert!(
        message.starts_with("clusterrolebindings.rbac.authorization.k8s.io \"view\" is forbidden: user \"binder\" (groups=[\"system:authenticated\"])"),
        "resourceNames is honoured: {message}"
    );
}

#[tokio::test]
async fn system_masters_write_any_role_and_binding() {
    let t = start().await;
    let master = &t.client;
    create(
        master,
        "ClusterRoleBinding",
        None,
        &binding(
            "ClusterRoleBinding",
            "root",
            "ClusterRole",
            "cluster-admin",
            "x",
        ),
    )
    .await
    .expect("clusterrolebinding");
    create(
        master,
        "ClusterRole",
        None,
        &object(
            "ClusterRole",
            json!({"metadata": {"name": "gather"}, "rules": [],
                "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"x": "y"}}]}}),
        ),
    )
    .await
    .expect("aggregated clusterrole");
    let all = role(
        "ClusterRole",
        "everything",
        json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]),
    );
    api(master, "ClusterRole", None)
        .patch(
            "everything",
            &PatchParams::apply("test"),
            &Patch::Apply(&all),
        )
        .await
        .expect("applied");

    // A user who may do nearly everything, but not `*` (nor `escalate`), may not set an
    // aggregationRule: that takes `*` on every resource and URL.
    t.host
        .load_manifests(
            r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: almost}
rules:
- {apiGroups: ["*"], resources: ["*"], verbs: [get, list, watch, create, update, patch, delete]}
- {nonResourceURLs: ["*"], verbs: [get]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: almost}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: almost}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: almost}]
"#,
        )
        .expect("binding");
    let almost = client_for(&t.host.kubeconfig_for("almost", &[]).expect("kubeconfig")).await;
    let message = forbidden(
        create(
            &almost,
            "ClusterRole",
            None,
            &object(
                "ClusterRole",
                json!({"metadata": {"name": "gather-2"},
                    "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"x": "y"}}]}}),
            ),
        )
        .await,
    );
    assert_eq!(
        message,
        "clusterroles.rbac.authorization.k8s.io \"gather-2\" is forbidden: must have cluster-admin privileges to use the aggregationRule"
    );
    let held = role(
        "ClusterRole",
        "writer",
        json!([{"apiGroups": ["apps"], "resources": ["*"], "verbs": ["get", "create"]}]),
    );
    create(&almost, "ClusterRole", None, &held)
        .await
        .expect("rules it holds");
    let message = forbidden(create(&almost, "ClusterRole", None, &all).await);
    assert!(
        message.ends_with(
            "not currently held:\n{APIGroups:[\"*\"], Resources:[\"*\"], Verbs:[\"*\"]}"
        ),
        "{message}"
    );
}
