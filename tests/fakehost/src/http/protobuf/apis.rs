//! The schema table, part two: the kinds of the named API groups kubectl creates (apps,
//! batch, rbac, authorization, authentication, policy) and the lookup from a body's
//! apiVersion and kind to its top-level message. Field numbers are upstream's
//! `k8s.io/api/<group>/<version>/generated.proto`.

use super::schema::Ty::{Bool, Int, IntOrStr, Msg, Skip, Str};
use super::schema::{
    CONFIG_MAP, DELETE_OPTIONS, F, LABEL_SELECTOR, NAMESPACE, POD, POD_TEMPLATE_SPEC,
    RESOURCE_QUOTA, SECRET, SELECTOR_REQUIREMENT, SERVICE, SERVICE_ACCOUNT, metadata, p, r, v,
};

// ---- apps/v1 ------------------------------------------------------------------------------

static DEPLOYMENT: &[F] = &[
    metadata(),
    v(
        2,
        "spec",
        Msg(&[
            p(1, "replicas", Int),
            p(2, "selector", Msg(LABEL_SELECTOR)),
            v(3, "template", Msg(POD_TEMPLATE_SPEC)),
            v(
                4,
                "strategy",
                Msg(&[
                    v(1, "type", Str),
                    p(
                        2,
                        "rollingUpdate",
                        Msg(&[p(1, "maxUnavailable", IntOrStr), p(2, "maxSurge", IntOrStr)]),
                    ),
                ]),
            ),
            v(5, "minReadySeconds", Int),
            p(6, "revisionHistoryLimit", Int),
            v(7, "paused", Bool),
            p(9, "progressDeadlineSeconds", Int),
        ]),
    ),
    v(3, "status", Skip),
];

// ---- batch/v1 -----------------------------------------------------------------------------

static JOB_SPEC: &[F] = &[
    p(1, "parallelism", Int),
    p(2, "completions", Int),
    p(3, "activeDeadlineSeconds", Int),
    p(7, "backoffLimit", Int),
    p(12, "backoffLimitPerIndex", Int),
    p(13, "maxFailedIndexes", Int),
    p(4, "selector", Msg(LABEL_SELECTOR)),
    p(5, "manualSelector", Bool),
    v(6, "template", Msg(POD_TEMPLATE_SPEC)),
    p(8, "ttlSecondsAfterFinished", Int),
    p(9, "completionMode", Str),
    p(10, "suspend", Bool),
    p(14, "podReplacementPolicy", Str),
    p(15, "managedBy", Str),
];

static JOB: &[F] = &[
    metadata(),
    v(2, "spec", Msg(JOB_SPEC)),
    v(3, "status", Skip),
];

static CRON_JOB: &[F] = &[
    metadata(),
    v(
        2,
        "spec",
        Msg(&[
            v(1, "schedule", Str),
            p(8, "timeZone", Str),
            p(2, "startingDeadlineSeconds", Int),
            v(3, "concurrencyPolicy", Str),
            p(4, "suspend", Bool),
            v(
                5,
                "jobTemplate",
                Msg(&[metadata(), v(2, "spec", Msg(JOB_SPEC))]),
            ),
            p(6, "successfulJobsHistoryLimit", Int),
            p(7, "failedJobsHistoryLimit", Int),
        ]),
    ),
    v(3, "status", Skip),
];

// ---- rbac.authorization.k8s.io/v1 ---------------------------------------------------------

static POLICY_RULE: &[F] = &[
    r(1, "verbs", Str),
    r(2, "apiGroups", Str),
    r(3, "resources", Str),
    r(4, "resourceNames", Str),
    r(5, "nonResourceURLs", Str),
];

static ROLE: &[F] = &[metadata(), r(2, "rules", Msg(POLICY_RULE))];

static CLUSTER_ROLE: &[F] = &[
    metadata(),
    r(2, "rules", Msg(POLICY_RULE)),
    p(
        3,
        "aggregationRule",
        Msg(&[r(1, "clusterRoleSelectors", Msg(LABEL_SELECTOR))]),
    ),
];

static ROLE_BINDING: &[F] = &[
    metadata(),
    r(
        2,
        "subjects",
        Msg(&[
            v(1, "kind", Str),
            v(2, "apiGroup", Str),
            v(3, "name", Str),
            v(4, "namespace", Str),
        ]),
    ),
    v(
        3,
        "roleRef",
        Msg(&[v(1, "apiGroup", Str), v(2, "kind", Str), v(3, "name", Str)]),
    ),
];

// ---- authorization.k8s.io/v1, authentication.k8s.io/v1 ---------------------------------

static SELECTOR_ATTRIBUTES: &[F] = &[
    v(1, "rawSelector", Str),
    r(2, "requirements", Msg(SELECTOR_REQUIREMENT)),
];

static SELF_SUBJECT_ACCESS_REVIEW: &[F] = &[
    metadata(),
    v(
        2,
        "spec",
        Msg(&[
            p(
                1,
                "resourceAttributes",
                Msg(&[
                    v(1, "namespace", Str),
                    v(2, "verb", Str),
                    v(3, "group", Str),
                    v(4, "version", Str),
                    v(5, "resource", Str),
                    v(6, "subresource", Str),
                    v(7, "name", Str),
                    p(8, "fieldSelector", Msg(SELECTOR_ATTRIBUTES)),
                    p(9, "labelSelector", Msg(SELECTOR_ATTRIBUTES)),
                ]),
            ),
            p(
                2,
                "nonResourceAttributes",
                Msg(&[v(1, "path", Str), v(2, "verb", Str)]),
            ),
        ]),
    ),
    v(3, "status", Skip),
];

static SELF_SUBJECT_RULES_REVIEW: &[F] = &[
    metadata(),
    v(2, "spec", Msg(&[v(1, "namespace", Str)])),
    v(3, "status", Skip),
];

static SELF_SUBJECT_REVIEW: &[F] = &[metadata(), v(2, "status", Skip)];

// ---- policy/v1 ----------------------------------------------------------------------------

static EVICTION: &[F] = &[metadata(), p(2, "deleteOptions", Msg(DELETE_OPTIONS))];

static POD_DISRUPTION_BUDGET: &[F] = &[
    metadata(),
    v(
        2,
        "spec",
        Msg(&[
            p(1, "minAvailable", IntOrStr),
            p(2, "selector", Msg(LABEL_SELECTOR)),
            p(3, "maxUnavailable", IntOrStr),
            p(4, "unhealthyPodEvictionPolicy", Str),
        ]),
    ),
    v(3, "status", Skip),
];

/// The top-level message of a built-in kind, or None (custom resources never have one:
/// kube-apiserver only speaks JSON and YAML for them).
pub(super) fn kind_schema(api_version: &str, kind: &str) -> Option<&'static [F]> {
    // Option kinds are registered in every group version.
    if kind == "DeleteOptions" {
        return Some(DELETE_OPTIONS);
    }
    Some(match (api_version, kind) {
        ("v1", "Namespace") => NAMESPACE,
        ("v1", "ConfigMap") => CONFIG_MAP,
        ("v1", "Secret") => SECRET,
        ("v1", "ServiceAccount") => SERVICE_ACCOUNT,
        ("v1", "Service") => SERVICE,
        ("v1", "ResourceQuota") => RESOURCE_QUOTA,
        ("v1", "Pod") => POD,
        ("apps/v1", "Deployment") => DEPLOYMENT,
        ("batch/v1", "Job") => JOB,
        ("batch/v1", "CronJob") => CRON_JOB,
        ("rbac.authorization.k8s.io/v1", "Role") => ROLE,
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => CLUSTER_ROLE,
        ("rbac.authorization.k8s.io/v1", "RoleBinding" | "ClusterRoleBinding") => ROLE_BINDING,
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview") => SELF_SUBJECT_ACCESS_REVIEW,
        ("authorization.k8s.io/v1", "SelfSubjectRulesReview") => SELF_SUBJECT_RULES_REVIEW,
        ("authentication.k8s.io/v1", "SelfSubjectReview") => SELF_SUBJECT_REVIEW,
        ("policy/v1", "Eviction") => EVICTION,
        ("policy/v1", "PodDisruptionBudget") => POD_DISRUPTION_BUDGET,
        _ => return None,
    })
}
