//! The objects kaas keeps *inside* each virtual cluster: the `workspace-admin` and
//! `workspace-viewer` ClusterRoles and their bindings, and per project a namespace, an
//! optional ResourceQuota, a LimitRange and the RoleBindings of its members. Pure builders;
//! the reconciler applies them with the virtual cluster's admin kubeconfig under the `kaas`
//! field manager.
//!
//! Identity: kaas mints client certificates with CN = the user's e-mail and O = the groups
//! from `domain::groups::groups_for`. Every role is bound to the user (CN) — workspace roles
//! to the people `domain::groups::ClusterAccess` lists, project roles to the project's
//! members — never to a group: a group lives in the certificate until it expires, whereas a
//! binding's subjects change at the next reconcile, so removing, demoting or disabling
//! someone takes effect then. Disabled users are left out by the snapshot
//! (`ops::reconcile`). NB: a certificate still authenticates until it expires; it just
//! grants nothing once its CN is no longer a subject.
//!
//! NB: `workspace-admin` and `workspace-viewer` are bound by a RoleBinding in each project
//! namespace ([`project_workspace_role_bindings`]), not by a ClusterRoleBinding. A cluster-wide
//! binding of namespaced rules also covers `kube-system`, where creating a pod with a
//! privileged service account, minting its token (`serviceaccounts/token`) or impersonating
//! it makes a workspace admin cluster-admin of the virtual cluster — and then able to create
//! ClusterRoles and CRDs after all. Cluster-scoped reads (namespaces, nodes, storage
//! classes) come from the separate `workspace-cluster-viewer` ClusterRole, which is bound
//! cluster-wide ([`cluster_role_bindings`]) because it grants nothing namespaced.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    LimitRange, LimitRangeItem, LimitRangeSpec, Namespace, ResourceQuota, ResourceQuotaSpec,
};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::desired::{limit_default_requests, limit_defaults, quota_quantities};
use super::names;
use crate::domain::groups::ClusterAccess;
use crate::domain::{LimitDefaults, Project, ProjectRole, WorkspaceId, WorkspaceRole};

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
const READ: &[&str] = &["get", "list", "watch"];
const ALL: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];

/// The ClusterRole of cluster-scoped reads every workspace member gets.
pub const CLUSTER_VIEWER_ROLE: &str = "workspace-cluster-viewer";

/// Name of kaas's ResourceQuota in a project namespace.
pub const PROJECT_QUOTA_NAME: &str = "kaas-project-quota";
/// Name of kaas's LimitRange in a project namespace.
pub const PROJECT_LIMITS_NAME: &str = "kaas-project-limits";

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    let owned = |xs: &[&str]| xs.iter().map(|x| (*x).to_string()).collect::<Vec<_>>();
    PolicyRule {
        api_groups: Some(owned(groups)),
        resources: Some(owned(resources)),
        verbs: owned(verbs),
        resource_names: None,
        non_resource_urls: None,
    }
}

fn meta(name: &str, namespace: Option<&str>, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        labels: Some(labels),
        ..ObjectMeta::default()
    }
}

fn managed_by() -> BTreeMap<String, String> {
    BTreeMap::from([(
        names::MANAGED_BY_LABEL.into(),
        names::MANAGED_BY_VALUE.into(),
    )])
}

/// Rules of `workspace-admin`: near-full administration of namespaced resources, granted
/// in each project namespace.
///
/// It includes every namespaced rule of the built-in `admin` ClusterRole, because RBAC lets
/// a subject create a RoleBinding only to a role whose permissions it holds (or may `bind`):
/// workspace admins must be able to bind `admin`/`edit`/`view` in their projects.
/// Deliberately absent: writes to namespaces, ClusterRoles, ClusterRoleBindings,
/// CustomResourceDefinitions, ResourceQuotas and LimitRanges (kaas owns project quotas), and
/// writes to Endpoints/EndpointSlices (CVE-2021-25740: they can point Services anywhere).
fn workspace_admin_rules() -> Vec<PolicyRule> {
    vec![
        // Workloads, configuration and their interactive subresources (exec, attach,
        // port-forward, proxy, debug containers), as `admin`/`edit` grant them.
        rule(
            &[""],
            &[
                "pods",
                "pods/attach",
                "pods/exec",
                "pods/portforward",
                "pods/proxy",
                "pods/ephemeralcontainers",
                "pods/resize",
                "configmaps",
                "secrets",
                "services",
                "services/proxy",
                "persistentvolumeclaims",
                "serviceaccounts",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "events",
            ],
            ALL,
        ),
        // Read-only views: logs, statuses, endpoints, and the quota objects kaas manages.
        rule(
            &[""],
            &[
                "pods/log",
                "pods/status",
                "services/status",
                "endpoints",
                "persistentvolumeclaims/status",
                "replicationcontrollers/status",
                "limitranges",
                "resourcequotas",
                "resourcequotas/status",
                "bindings",
                "namespaces/status",
            ],
            READ,
        ),
        // Evictions (drain-like tooling) and short-lived service account tokens.
        rule(
            &[""],
            &["pods/eviction", "serviceaccounts/token"],
            &["create"],
        ),
        // `edit` lets its holders act as the namespace's service accounts; kept so that
        // workspace admins hold all of `admin` (see above).
        rule(&[""], &["serviceaccounts"], &["impersonate"]),
        // Controllers of workloads.
        rule(
            &["apps"],
            &[
                "deployments",
                "deployments/scale",
                "deployments/rollback",
                "statefulsets",
                "statefulsets/scale",
                "daemonsets",
                "replicasets",
                "replicasets/scale",
            ],
            ALL,
        ),
        rule(
            &["apps"],
            &[
                "controllerrevisions",
                "deployments/status",
                "statefulsets/status",
                "daemonsets/status",
                "replicasets/status",
            ],
            READ,
        ),
        // The legacy `extensions` group is still named in `admin`/`edit`/`view`; without
        // it binding `admin` would fail the escalation check.
        rule(
            &["extensions"],
            &[
                "daemonsets",
                "deployments",
                "deployments/rollback",
                "deployments/scale",
                "ingresses",
                "networkpolicies",
                "replicasets",
                "replicasets/scale",
                "replicationcontrollers/scale",
            ],
            ALL,
        ),
        rule(
            &["extensions"],
            &[
                "daemonsets/status",
                "deployments/status",
                "ingresses/status",
                "replicasets/status",
            ],
            READ,
        ),
        // Jobs and CronJobs.
        rule(&["batch"], &["jobs", "cronjobs"], ALL),
        rule(&["batch"], &["jobs/status", "cronjobs/status"], READ),
        // Horizontal pod autoscalers.
        rule(&["autoscaling"], &["horizontalpodautoscalers"], ALL),
        rule(&["autoscaling"], &["horizontalpodautoscalers/status"], READ),
        // PodDisruptionBudgets.
        rule(&["policy"], &["poddisruptionbudgets"], ALL),
        rule(&["policy"], &["poddisruptionbudgets/status"], READ),
        // Ingresses and NetworkPolicies.
        rule(
            &["networking.k8s.io"],
            &["ingresses", "networkpolicies"],
            ALL,
        ),
        rule(
            &["networking.k8s.io"],
            &["ingresses/status", "networkpolicies/status"],
            READ,
        ),
        // Roles and RoleBindings in any namespace: tenants delegate inside their projects.
        // Creating them is still bounded by RBAC's escalation check.
        rule(&[RBAC_GROUP], &["roles", "rolebindings"], ALL),
        // Binding (not editing) the built-in namespace roles and workspace-viewer, so that a
        // RoleBinding to them never trips the escalation check. `bind` does not allow a
        // ClusterRoleBinding here: workspace-admin cannot create those at all.
        PolicyRule {
            resource_names: Some(
                ["admin", "edit", "view", WorkspaceRole::Viewer.as_str()]
                    .map(String::from)
                    .to_vec(),
            ),
            ..rule(&[RBAC_GROUP], &["clusterroles"], &["bind"])
        },
        // "Can user X do Y in this namespace?" — `admin` has it.
        rule(
            &["authorization.k8s.io"],
            &["localsubjectaccessreviews"],
            &["create"],
        ),
        // Leader election of tenant controllers.
        rule(&["coordination.k8s.io"], &["leases"], ALL),
        // Service discovery and events, read-only.
        rule(&["discovery.k8s.io"], &["endpointslices"], READ),
        rule(&["events.k8s.io"], &["events"], READ),
        // `kubectl top pods`.
        rule(&["metrics.k8s.io"], &["pods"], READ),
        // `admin` names namespaces too; through a RoleBinding this reads the project's own
        // namespace (cluster-wide reads come from `workspace-cluster-viewer`).
        rule(&[""], &["namespaces"], READ),
    ]
}

/// Rules of `workspace-viewer`: read-only on what workspace-admin manages, except Secrets
/// (their contents are credentials) and the interactive pod subresources (exec, attach,
/// port-forward, proxy), which are not reads at all.
fn workspace_viewer_rules() -> Vec<PolicyRule> {
    vec![
        // Workloads, configuration (no Secrets) and their statuses and logs.
        rule(
            &[""],
            &[
                "pods",
                "pods/log",
                "pods/status",
                "configmaps",
                "services",
                "services/status",
                "endpoints",
                "persistentvolumeclaims",
                "persistentvolumeclaims/status",
                "serviceaccounts",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "replicationcontrollers/status",
                "events",
                "limitranges",
                "resourcequotas",
                "resourcequotas/status",
                "namespaces/status",
            ],
            READ,
        ),
        // Controllers of workloads.
        rule(
            &["apps"],
            &[
                "deployments",
                "deployments/scale",
                "deployments/status",
                "statefulsets",
                "statefulsets/scale",
                "statefulsets/status",
                "daemonsets",
                "daemonsets/status",
                "replicasets",
                "replicasets/scale",
                "replicasets/status",
                "controllerrevisions",
            ],
            READ,
        ),
        // Jobs, autoscalers, disruption budgets, ingresses and network policies.
        rule(
            &["batch"],
            &["jobs", "jobs/status", "cronjobs", "cronjobs/status"],
            READ,
        ),
        rule(
            &["autoscaling"],
            &[
                "horizontalpodautoscalers",
                "horizontalpodautoscalers/status",
            ],
            READ,
        ),
        rule(
            &["policy"],
            &["poddisruptionbudgets", "poddisruptionbudgets/status"],
            READ,
        ),
        rule(
            &["networking.k8s.io"],
            &["ingresses", "ingresses/status", "networkpolicies"],
            READ,
        ),
        // Who may do what in a project (no secrets in these).
        rule(&[RBAC_GROUP], &["roles", "rolebindings"], READ),
        // Leases, endpoint slices, events, metrics.
        rule(&["coordination.k8s.io"], &["leases"], READ),
        rule(&["discovery.k8s.io"], &["endpointslices"], READ),
        rule(&["events.k8s.io"], &["events"], READ),
        rule(&["metrics.k8s.io"], &["pods"], READ),
        rule(&[""], &["namespaces"], READ),
    ]
}

/// Rules of `workspace-cluster-viewer`: the cluster-scoped context workloads refer to —
/// namespaces, the (virtual) nodes and their metrics, volumes and classes — read-only.
fn workspace_cluster_viewer_rules() -> Vec<PolicyRule> {
    vec![
        rule(&[""], &["namespaces", "nodes", "persistentvolumes"], READ),
        rule(&["metrics.k8s.io"], &["nodes"], READ),
        rule(&["storage.k8s.io"], &["storageclasses"], READ),
        rule(&["networking.k8s.io"], &["ingressclasses"], READ),
    ]
}

/// The predefined ClusterRoles of every virtual cluster: `workspace-admin`,
/// `workspace-viewer` and `workspace-cluster-viewer`.
pub fn cluster_roles() -> Vec<ClusterRole> {
    [
        (WorkspaceRole::Admin.as_str(), workspace_admin_rules()),
        (WorkspaceRole::Viewer.as_str(), workspace_viewer_rules()),
        (CLUSTER_VIEWER_ROLE, workspace_cluster_viewer_rules()),
    ]
    .into_iter()
    .map(|(name, rules)| ClusterRole {
        metadata: meta(name, None, managed_by()),
        rules: Some(rules),
        aggregation_rule: None,
    })
    .collect()
}

/// `User` subjects for e-mails (certificate CNs), in the order given.
fn user_subjects<'a>(emails: impl IntoIterator<Item = &'a str>) -> Vec<Subject> {
    emails
        .into_iter()
        .map(|e| Subject {
            api_group: Some(RBAC_GROUP.into()),
            kind: "User".into(),
            name: e.to_string(),
            namespace: None,
        })
        .collect()
}

/// Binds `workspace-cluster-viewer` cluster-wide to everyone with a workspace role, as
/// `User` subjects (sorted). The namespaced roles are bound per project by
/// [`project_workspace_role_bindings`].
pub fn cluster_role_bindings(ws: WorkspaceId, access: &ClusterAccess) -> Vec<ClusterRoleBinding> {
    let mut labels = names::workspace_labels(ws);
    labels.extend(managed_by());
    vec![ClusterRoleBinding {
        metadata: meta(&format!("kaas-{CLUSTER_VIEWER_ROLE}"), None, labels),
        role_ref: RoleRef {
            api_group: RBAC_GROUP.into(),
            kind: "ClusterRole".into(),
            name: CLUSTER_VIEWER_ROLE.into(),
        },
        // NB: always a list, even an empty one: a binding whose subjects were left out
        // would look in sync with one that still names a removed person.
        subjects: Some(user_subjects(access.everyone())),
    }]
}

/// In a project namespace, binds `workspace-admin` and `workspace-viewer` to the people who
/// hold them (`User` subjects, sorted): RoleBindings `kaas-workspace-admin` and
/// `kaas-workspace-viewer`.
pub fn project_workspace_role_bindings(
    project: &Project,
    access: &ClusterAccess,
) -> Vec<RoleBinding> {
    [WorkspaceRole::Admin, WorkspaceRole::Viewer]
        .into_iter()
        .map(|role| RoleBinding {
            metadata: meta(
                &format!("kaas-{}", role.as_str()),
                Some(&project.name),
                project_labels(project),
            ),
            role_ref: RoleRef {
                api_group: RBAC_GROUP.into(),
                kind: "ClusterRole".into(),
                name: role.as_str().into(),
            },
            subjects: Some(user_subjects(access.holders(role))),
        })
        .collect()
}

fn project_labels(project: &Project) -> BTreeMap<String, String> {
    let mut labels = names::workspace_labels(project.workspace_id);
    labels.insert(
        names::PROJECT_ID_LABEL.into(),
        names::project_label_value(project.id),
    );
    labels
}

/// The project's namespace inside the virtual cluster (named as the project).
///
/// It enforces Pod Security `baseline`: in virtual mode tenant pods run inside privileged
/// k3s agents, so a privileged tenant pod would be root on the host; in shared mode the host
/// namespace enforces the same level anyway, so a pod refused there is refused here first,
/// with a clearer error. Workspace admins cannot relabel namespaces.
pub fn project_namespace(project: &Project) -> Namespace {
    let mut labels = project_labels(project);
    labels.insert(names::PSA_ENFORCE.into(), "baseline".into());
    labels.insert(names::PSA_ENFORCE_VERSION.into(), "latest".into());
    Namespace {
        metadata: meta(&project.name, None, labels),
        ..Namespace::default()
    }
}

fn quantities(m: BTreeMap<String, String>) -> BTreeMap<String, Quantity> {
    m.into_iter().map(|(k, v)| (k, Quantity(v))).collect()
}

/// The project's ResourceQuota, if the project has a quota (same keys as the workspace's).
pub fn project_quota(project: &Project) -> Option<ResourceQuota> {
    let q = project.quota.as_ref()?;
    Some(ResourceQuota {
        metadata: meta(
            PROJECT_QUOTA_NAME,
            Some(&project.name),
            project_labels(project),
        ),
        spec: Some(ResourceQuotaSpec {
            hard: Some(quantities(quota_quantities(q))),
            ..ResourceQuotaSpec::default()
        }),
        status: None,
    })
}

/// The project's LimitRange: the plan's container defaults, so pods that name no resources
/// still pass a quota on `requests.*`/`limits.*` (which refuses pods without them).
pub fn project_limit_range(project: &Project, defaults: &LimitDefaults) -> LimitRange {
    LimitRange {
        metadata: meta(
            PROJECT_LIMITS_NAME,
            Some(&project.name),
            project_labels(project),
        ),
        spec: Some(LimitRangeSpec {
            limits: vec![LimitRangeItem {
                type_: "Container".into(),
                default: Some(quantities(limit_defaults(defaults))),
                default_request: Some(quantities(limit_default_requests(defaults))),
                ..LimitRangeItem::default()
            }],
        }),
    }
}

/// One RoleBinding per project role, named `kaas-<role>` (`kaas-admin`, `kaas-developer`,
/// `kaas-viewer`), binding the built-in ClusterRole (`admin`, `edit`, `view`) to the members
/// with that role as `User` subjects named by e-mail (the certificate CN). All three always
/// exist, possibly with no subjects, so membership changes are in-place updates and a
/// removed role needs no delete. Subjects are sorted and deduplicated: stable for SSA.
pub fn project_role_bindings(
    project: &Project,
    members: &[(String, ProjectRole)],
) -> Vec<RoleBinding> {
    [
        ProjectRole::Admin,
        ProjectRole::Developer,
        ProjectRole::Viewer,
    ]
    .into_iter()
    .map(|role| {
        let mut emails: Vec<&str> = members
            .iter()
            .filter(|(_, r)| *r == role)
            .map(|(e, _)| e.as_str())
            .collect();
        emails.sort_unstable();
        emails.dedup();
        RoleBinding {
            metadata: meta(
                &format!("kaas-{}", role.as_str()),
                Some(&project.name),
                project_labels(project),
            ),
            role_ref: RoleRef {
                api_group: RBAC_GROUP.into(),
                kind: "ClusterRole".into(),
                name: role.cluster_role().into(),
            },
            subjects: Some(user_subjects(emails)),
        }
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ProjectId;
    use crate::domain::plan::default_plans;
    use crate::domain::{OrgId, Quota};
    use jiff::Timestamp;

    fn ws() -> WorkspaceId {
        "ws_01hzy3v8k2m4n6p8q0r2s4t6v8".parse().unwrap()
    }

    fn project(quota: Option<Quota>) -> Project {
        Project {
            id: ProjectId::generate(),
            workspace_id: ws(),
            org_id: OrgId::generate(),
            name: "payments".into(),
            quota,
            created_at: Timestamp::UNIX_EPOCH,
            updated_at: Timestamp::UNIX_EPOCH,
        }
    }

    fn role_named(name: &str) -> ClusterRole {
        cluster_roles()
            .into_iter()
            .find(|r| r.metadata.name.as_deref() == Some(name))
            .unwrap()
    }

    /// Whether `rules` allow `verb` on `group`/`resource` (any resource name).
    fn allows(rules: &[PolicyRule], group: &str, resource: &str, verb: &str) -> bool {
        let has = |xs: &Option<Vec<String>>, x: &str| {
            xs.as_ref()
                .is_some_and(|v| v.iter().any(|s| s == x || s == "*"))
        };
        rules.iter().any(|r| {
            has(&r.api_groups, group)
                && has(&r.resources, resource)
                && r.verbs.iter().any(|v| v == verb || v == "*")
                && r.resource_names.is_none()
        })
    }

    fn rules(r: WorkspaceRole) -> Vec<PolicyRule> {
        role_named(r.as_str()).rules.unwrap()
    }

    #[test]
    fn no_wildcards_anywhere() {
        for r in cluster_roles() {
            for rule in r.rules.unwrap() {
                let all = [rule.api_groups, rule.resources, Some(rule.verbs)];
                assert!(!all.iter().flatten().flatten().any(|s| s.contains('*')));
            }
        }
    }

    #[test]
    fn workspace_viewer_reads_only_and_never_secrets_or_pod_sessions() {
        let v = rules(WorkspaceRole::Viewer);
        for rule in &v {
            assert!(
                rule.verbs.iter().all(|verb| READ.contains(&verb.as_str())),
                "{rule:?}"
            );
        }
        for res in [
            "secrets",
            "pods/exec",
            "pods/attach",
            "pods/portforward",
            "pods/proxy",
            "services/proxy",
            "serviceaccounts/token",
        ] {
            for verb in ALL.iter().chain(&["impersonate"]) {
                assert!(!allows(&v, "", res, verb), "viewer may {verb} {res}");
            }
        }
        assert!(allows(&v, "apps", "deployments", "list"));
        assert!(allows(&v, "", "pods/log", "get"));
    }

    #[test]
    fn workspace_admin_cannot_touch_cluster_wide_rbac_crds_or_namespaces() {
        let a = rules(WorkspaceRole::Admin);
        let forbidden = [
            (RBAC_GROUP, "clusterroles"),
            (RBAC_GROUP, "clusterrolebindings"),
            ("apiextensions.k8s.io", "customresourcedefinitions"),
            ("", "namespaces"),
            ("", "resourcequotas"),
            ("", "limitranges"),
            ("", "endpoints"),
            ("discovery.k8s.io", "endpointslices"),
        ];
        for (group, res) in forbidden {
            for verb in [
                "create",
                "update",
                "patch",
                "delete",
                "deletecollection",
                "escalate",
            ] {
                assert!(
                    !allows(&a, group, res, verb),
                    "admin may {verb} {group}/{res}"
                );
            }
        }
        // `bind` only on the namespace roles it may hand out.
        let bind = a.iter().find(|r| r.verbs == ["bind"]).unwrap();
        assert_eq!(
            bind.resource_names.as_deref().unwrap(),
            ["admin", "edit", "view", "workspace-viewer"]
        );
        assert!(allows(&a, RBAC_GROUP, "rolebindings", "create"));
        assert!(allows(&a, RBAC_GROUP, "roles", "create"));
    }

    /// The namespaced rules of Kubernetes' built-in `admin` ClusterRole (its own plus the
    /// aggregated `edit` and `view`), from the bootstrap policy.
    fn builtin_admin() -> Vec<(
        &'static str,
        &'static [&'static str],
        &'static [&'static str],
    )> {
        const W: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
        vec![
            (
                "",
                &[
                    "pods",
                    "pods/attach",
                    "pods/exec",
                    "pods/portforward",
                    "pods/proxy",
                ],
                W,
            ),
            (
                "",
                &[
                    "pods/attach",
                    "pods/exec",
                    "pods/portforward",
                    "pods/proxy",
                    "secrets",
                    "services/proxy",
                ],
                READ,
            ),
            ("", &["serviceaccounts"], &["impersonate"]),
            ("", &["pods/eviction", "serviceaccounts/token"], &["create"]),
            (
                "",
                &[
                    "configmaps",
                    "events",
                    "persistentvolumeclaims",
                    "replicationcontrollers",
                    "replicationcontrollers/scale",
                    "secrets",
                    "serviceaccounts",
                    "services",
                    "services/proxy",
                ],
                W,
            ),
            (
                "",
                &[
                    "pods",
                    "replicationcontrollers",
                    "replicationcontrollers/scale",
                    "serviceaccounts",
                    "services",
                    "services/status",
                    "endpoints",
                    "persistentvolumeclaims",
                    "persistentvolumeclaims/status",
                    "configmaps",
                ],
                READ,
            ),
            (
                "",
                &[
                    "limitranges",
                    "resourcequotas",
                    "bindings",
                    "events",
                    "pods/status",
                    "resourcequotas/status",
                    "namespaces/status",
                    "replicationcontrollers/status",
                    "pods/log",
                ],
                READ,
            ),
            ("", &["namespaces"], READ),
            ("discovery.k8s.io", &["endpointslices"], READ),
            (
                "apps",
                &[
                    "statefulsets",
                    "statefulsets/scale",
                    "daemonsets",
                    "deployments",
                    "deployments/scale",
                    "deployments/rollback",
                    "replicasets",
                    "replicasets/scale",
                ],
                W,
            ),
            (
                "apps",
                &[
                    "controllerrevisions",
                    "statefulsets",
                    "statefulsets/scale",
                    "statefulsets/status",
                    "daemonsets",
                    "daemonsets/status",
                    "deployments",
                    "deployments/scale",
                    "deployments/status",
                    "replicasets",
                    "replicasets/scale",
                    "replicasets/status",
                ],
                READ,
            ),
            ("autoscaling", &["horizontalpodautoscalers"], W),
            (
                "autoscaling",
                &[
                    "horizontalpodautoscalers",
                    "horizontalpodautoscalers/status",
                ],
                READ,
            ),
            ("batch", &["cronjobs", "jobs"], W),
            (
                "batch",
                &["cronjobs", "cronjobs/status", "jobs", "jobs/status"],
                READ,
            ),
            (
                "extensions",
                &[
                    "daemonsets",
                    "deployments",
                    "deployments/scale",
                    "deployments/rollback",
                    "ingresses",
                    "networkpolicies",
                    "replicasets",
                    "replicasets/scale",
                    "replicationcontrollers/scale",
                ],
                W,
            ),
            (
                "extensions",
                &[
                    "daemonsets",
                    "daemonsets/status",
                    "deployments",
                    "deployments/scale",
                    "deployments/status",
                    "ingresses",
                    "ingresses/status",
                    "networkpolicies",
                    "replicasets",
                    "replicasets/scale",
                    "replicasets/status",
                    "replicationcontrollers/scale",
                ],
                READ,
            ),
            ("policy", &["poddisruptionbudgets"], W),
            (
                "policy",
                &["poddisruptionbudgets", "poddisruptionbudgets/status"],
                READ,
            ),
            ("networking.k8s.io", &["ingresses", "networkpolicies"], W),
            (
                "networking.k8s.io",
                &["ingresses", "ingresses/status", "networkpolicies"],
                READ,
            ),
            (
                "authorization.k8s.io",
                &["localsubjectaccessreviews"],
                &["create"],
            ),
            (
                RBAC_GROUP,
                &["rolebindings", "roles"],
                &[
                    "create",
                    "delete",
                    "deletecollection",
                    "get",
                    "list",
                    "patch",
                    "update",
                    "watch",
                ],
            ),
        ]
    }

    #[test]
    fn workspace_admin_holds_everything_the_builtin_admin_role_grants() {
        let a = rules(WorkspaceRole::Admin);
        for (group, resources, verbs) in builtin_admin() {
            for res in resources {
                for verb in verbs {
                    assert!(
                        allows(&a, group, res, verb),
                        "admin lacks {verb} {group}/{res}"
                    );
                }
            }
        }
    }

    #[test]
    fn workspace_admin_holds_everything_workspace_viewer_has() {
        let a = rules(WorkspaceRole::Admin);
        for rule in rules(WorkspaceRole::Viewer) {
            for g in rule.api_groups.iter().flatten() {
                for res in rule.resources.iter().flatten() {
                    for verb in &rule.verbs {
                        assert!(allows(&a, g, res, verb), "admin lacks {verb} {g}/{res}");
                    }
                }
            }
        }
    }

    fn access() -> ClusterAccess {
        use crate::domain::OrgRole;
        use crate::domain::policy::Standing;
        let mut a = ClusterAccess::default();
        let org = |r| Standing {
            org: Some(r),
            ..Standing::default()
        };
        let ws = |r| Standing {
            workspace: Some(r),
            ..Standing::default()
        };
        a.grant("owner@example.com", &org(OrgRole::Owner));
        a.grant("wsadmin@example.com", &ws(WorkspaceRole::Admin));
        a.grant("vic@example.com", &ws(WorkspaceRole::Viewer));
        a.grant("member@example.com", &org(OrgRole::Member));
        a
    }

    fn subjects(s: &Option<Vec<Subject>>) -> Vec<(String, String)> {
        let s = s.iter().flatten();
        s.map(|s| (s.kind.clone(), s.name.clone())).collect()
    }

    fn users(emails: &[&str]) -> Vec<(String, String)> {
        emails
            .iter()
            .map(|e| ("User".to_string(), e.to_string()))
            .collect()
    }

    #[test]
    fn namespaced_roles_are_bound_per_project_and_only_reads_cluster_wide() {
        let crb = cluster_role_bindings(ws(), &access());
        assert_eq!(crb.len(), 1);
        assert_eq!(crb[0].role_ref.name, CLUSTER_VIEWER_ROLE);
        assert_eq!(
            subjects(&crb[0].subjects),
            users(&[
                "owner@example.com",
                "vic@example.com",
                "wsadmin@example.com"
            ])
        );
        // What is bound cluster-wide grants nothing namespaced.
        let cluster_viewer = role_named(CLUSTER_VIEWER_ROLE).rules.unwrap();
        for rule in &cluster_viewer {
            assert!(rule.verbs.iter().all(|v| READ.contains(&v.as_str())));
        }
        assert!(!allows(&cluster_viewer, "", "pods", "get"));
        assert!(!allows(&cluster_viewer, "", "secrets", "get"));

        let p = project(None);
        let rbs = project_workspace_role_bindings(&p, &access());
        let want = [
            users(&["owner@example.com", "wsadmin@example.com"]),
            users(&["vic@example.com"]),
        ];
        for ((rb, r), want) in rbs
            .iter()
            .zip([WorkspaceRole::Admin, WorkspaceRole::Viewer])
            .zip(want)
        {
            assert_eq!(
                rb.metadata.name.as_deref(),
                Some(format!("kaas-{}", r.as_str()).as_str())
            );
            assert_eq!(rb.role_ref.name, r.as_str());
            assert_eq!(subjects(&rb.subjects), want);
        }
        let members = project_role_bindings(&p, &[]);
        let mut all: Vec<_> = rbs.iter().chain(&members).collect();
        for rb in &all {
            assert_eq!(rb.metadata.namespace.as_deref(), Some("payments"));
            assert!(names::is_dns1123_label(
                rb.metadata.name.as_deref().unwrap()
            ));
        }
        // Distinct names: project member bindings never overwrite workspace role bindings.
        all.sort_by_key(|rb| rb.metadata.name.clone());
        all.dedup_by_key(|rb| rb.metadata.name.clone());
        assert_eq!(all.len(), 5);
    }

    #[test]
    fn workspace_roles_are_granted_to_people_never_to_certificate_groups() {
        // A certificate keeps its groups until it expires: a binding to a group would keep
        // granting a removed or demoted person their role. Every subject is a `User`.
        let p = project(None);
        let crbs = cluster_role_bindings(ws(), &access());
        let rbs = project_workspace_role_bindings(&p, &access());
        let all = crbs
            .iter()
            .map(|b| &b.subjects)
            .chain(rbs.iter().map(|b| &b.subjects));
        for s in all {
            for (kind, name) in subjects(s) {
                assert_eq!(kind, "User", "{name}");
                assert!(!name.starts_with("kaas:ws:"), "{name}");
            }
        }
        // Nobody left: the bindings stay, with an explicit empty list of subjects (an
        // omitted list would compare as in sync with one still naming the last person).
        let none = ClusterAccess::default();
        let crb = serde_json::to_value(&cluster_role_bindings(ws(), &none)[0]).unwrap();
        assert_eq!(crb["subjects"], serde_json::json!([]));
        for rb in project_workspace_role_bindings(&p, &none) {
            assert_eq!(rb.subjects, Some(vec![]));
        }
        // Removing the workspace admin removes them from the bindings.
        let mut fewer = ClusterAccess::default();
        fewer.grant(
            "owner@example.com",
            &crate::domain::policy::Standing {
                org: Some(crate::domain::OrgRole::Owner),
                ..Default::default()
            },
        );
        let rbs = project_workspace_role_bindings(&p, &fewer);
        assert_eq!(subjects(&rbs[0].subjects), users(&["owner@example.com"]));
        assert_eq!(subjects(&rbs[1].subjects), users(&[]));
    }

    #[test]
    fn project_objects_are_labelled_and_named_stably() {
        let p = project(Some(Quota {
            cpu_millis: 1500,
            memory_mib: 2048,
            storage_gib: 5,
            pods: 20,
        }));
        let ns = project_namespace(&p);
        let labels = ns.metadata.labels.as_ref().unwrap();
        assert_eq!(ns.metadata.name.as_deref(), Some("payments"));
        assert_eq!(labels[names::PROJECT_ID_LABEL], p.id.to_string());
        assert_eq!(labels[names::WORKSPACE_ID_LABEL], ws().to_string());
        assert_eq!(labels[names::MANAGED_BY_LABEL], "kaas");
        assert_eq!(labels[names::PSA_ENFORCE], "baseline");

        let q = serde_json::to_value(project_quota(&p).unwrap()).unwrap();
        assert_eq!(q["metadata"]["namespace"], "payments");
        assert_eq!(q["spec"]["hard"]["requests.cpu"], "1500m");
        assert_eq!(
            q["spec"]["hard"]["limits.memory"], "2Gi",
            "canonical, as a server stores it"
        );
        assert_eq!(q["spec"]["hard"]["requests.storage"], "5Gi");
        assert!(q.get("status").is_none());
        assert!(project_quota(&project(None)).is_none());

        let limits = default_plans()[0].limits;
        let lr = serde_json::to_value(project_limit_range(&p, &limits)).unwrap();
        assert_eq!(lr["spec"]["limits"][0]["type"], "Container");
        assert_eq!(lr["spec"]["limits"][0]["default"]["memory"], "512Mi");
        assert_eq!(lr["spec"]["limits"][0]["defaultRequest"]["cpu"], "125m");
    }

    #[test]
    fn project_role_bindings_are_one_per_role_with_sorted_user_subjects() {
        let p = project(None);
        let members = vec![
            ("zoe@example.com".to_string(), ProjectRole::Developer),
            ("ada@example.com".to_string(), ProjectRole::Developer),
            ("ada@example.com".to_string(), ProjectRole::Developer),
            ("bob@example.com".to_string(), ProjectRole::Admin),
        ];
        let rbs = project_role_bindings(&p, &members);
        let summary: Vec<(String, String, Vec<String>)> = rbs
            .iter()
            .map(|rb| {
                (
                    rb.metadata.name.clone().unwrap(),
                    rb.role_ref.name.clone(),
                    rb.subjects
                        .iter()
                        .flatten()
                        .map(|s| s.name.clone())
                        .collect(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    "kaas-admin".into(),
                    "admin".into(),
                    vec!["bob@example.com".into()]
                ),
                (
                    "kaas-developer".into(),
                    "edit".into(),
                    vec!["ada@example.com".into(), "zoe@example.com".into()]
                ),
                ("kaas-viewer".into(), "view".into(), vec![]),
            ]
        );
        for rb in &rbs {
            assert_eq!(rb.metadata.namespace.as_deref(), Some("payments"));
            for s in rb.subjects.iter().flatten() {
                assert_eq!(
                    (s.kind.as_str(), s.api_group.as_deref()),
                    ("User", Some(RBAC_GROUP))
                );
            }
        }
    }

    #[test]
    fn cluster_roles_are_apply_ready() {
        for r in cluster_roles() {
            let v = serde_json::to_value(&r).unwrap();
            assert_eq!(v["apiVersion"], "rbac.authorization.k8s.io/v1");
            assert_eq!(v["kind"], "ClusterRole");
            assert_eq!(v["metadata"]["labels"][names::MANAGED_BY_LABEL], "kaas");
            assert!(v.get("aggregationRule").is_none());
        }
    }
}
