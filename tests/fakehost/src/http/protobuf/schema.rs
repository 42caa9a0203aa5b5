//! The schema table, part one: how a field is described, and the `meta/v1` and `core/v1`
//! messages the built-in kinds are made of. Field numbers are upstream's
//! (`k8s.io/apimachinery/.../meta/v1/generated.proto`, `k8s.io/api/core/v1/generated.proto`).
//! Fields left out are skipped on decode; kubectl's imperative commands never send them.

/// How a Go field is encoded, which decides what a zero value means in JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mode {
    /// A value field: always on the wire, omitted from JSON when zero (`omitempty`).
    Val,
    /// A pointer field: on the wire only when set, kept even when zero.
    Ptr,
    /// A repeated field (a Go slice).
    Rep,
}

/// The protobuf type of a field and the JSON it becomes.
#[derive(Clone, Copy, Debug)]
pub(super) enum Ty {
    Str,
    /// Any varint integer (int32, int64).
    Int,
    Bool,
    /// `metav1.Time`: an RFC 3339 string.
    Time,
    /// `resource.Quantity` {string(1)}: its string.
    Quantity,
    /// `intstr.IntOrString`: a number or a string.
    IntOrStr,
    /// `runtime.RawExtension` / `FieldsV1` {raw(1)}: embedded JSON.
    Raw,
    /// Read and discarded (e.g. `status` on create, which the server resets anyway).
    Skip,
    MapStr,
    /// map<string, bytes>: base64 values in JSON.
    MapBytes,
    /// `ResourceList`: map<string, Quantity>.
    MapQty,
    Msg(&'static [F]),
    /// An embedded Go struct: its fields appear in the parent JSON object.
    Inline(&'static [F]),
}

#[derive(Debug)]
pub(super) struct F {
    pub n: u32,
    pub name: &'static str,
    pub ty: Ty,
    pub mode: Mode,
}

pub(super) const fn v(n: u32, name: &'static str, ty: Ty) -> F {
    F {
        n,
        name,
        ty,
        mode: Mode::Val,
    }
}

pub(super) const fn p(n: u32, name: &'static str, ty: Ty) -> F {
    F {
        n,
        name,
        ty,
        mode: Mode::Ptr,
    }
}

pub(super) const fn r(n: u32, name: &'static str, ty: Ty) -> F {
    F {
        n,
        name,
        ty,
        mode: Mode::Rep,
    }
}

use Ty::{Bool, Int, IntOrStr, MapBytes, MapQty, MapStr, Msg, Quantity, Raw, Skip, Str};

// ---- meta/v1 ------------------------------------------------------------------------------

pub(super) static OBJECT_META: &[F] = &[
    v(1, "name", Str),
    v(2, "generateName", Str),
    v(3, "namespace", Str),
    v(4, "selfLink", Str),
    v(5, "uid", Str),
    v(6, "resourceVersion", Str),
    v(7, "generation", Int),
    v(8, "creationTimestamp", Ty::Time),
    p(9, "deletionTimestamp", Ty::Time),
    p(10, "deletionGracePeriodSeconds", Int),
    v(11, "labels", MapStr),
    v(12, "annotations", MapStr),
    r(13, "ownerReferences", Msg(OWNER_REFERENCE)),
    r(14, "finalizers", Str),
    r(17, "managedFields", Msg(MANAGED_FIELDS_ENTRY)),
];

static OWNER_REFERENCE: &[F] = &[
    v(5, "apiVersion", Str),
    v(1, "kind", Str),
    v(3, "name", Str),
    v(4, "uid", Str),
    p(6, "controller", Bool),
    p(7, "blockOwnerDeletion", Bool),
];

static MANAGED_FIELDS_ENTRY: &[F] = &[
    v(1, "manager", Str),
    v(2, "operation", Str),
    v(3, "apiVersion", Str),
    p(4, "time", Ty::Time),
    v(6, "fieldsType", Str),
    p(7, "fieldsV1", Raw),
    v(8, "subresource", Str),
];

pub(super) static LABEL_SELECTOR: &[F] = &[
    v(1, "matchLabels", MapStr),
    r(2, "matchExpressions", Msg(SELECTOR_REQUIREMENT)),
];

/// LabelSelectorRequirement, and every {key, operator, values} requirement like it.
pub(super) static SELECTOR_REQUIREMENT: &[F] =
    &[v(1, "key", Str), v(2, "operator", Str), r(3, "values", Str)];

pub(super) static DELETE_OPTIONS: &[F] = &[
    p(1, "gracePeriodSeconds", Int),
    p(
        2,
        "preconditions",
        Msg(&[p(1, "uid", Str), p(2, "resourceVersion", Str)]),
    ),
    p(3, "orphanDependents", Bool),
    p(4, "propagationPolicy", Str),
    r(5, "dryRun", Str),
    p(6, "ignoreStoreReadErrorWithClusterBreakingPotential", Bool),
];

/// The metadata of a list-free kind: {metadata(1), then the rest}.
pub(super) const fn metadata() -> F {
    v(1, "metadata", Msg(OBJECT_META))
}

// ---- core/v1: small kinds -------------------------------------------------------------

pub(super) static NAMESPACE: &[F] = &[
    metadata(),
    v(2, "spec", Msg(&[r(1, "finalizers", Str)])),
    v(3, "status", Skip),
];

pub(super) static CONFIG_MAP: &[F] = &[
    metadata(),
    v(2, "data", MapStr),
    v(3, "binaryData", MapBytes),
    p(4, "immutable", Bool),
];

pub(super) static SECRET: &[F] = &[
    metadata(),
    v(2, "data", MapBytes),
    v(3, "type", Str),
    v(4, "stringData", MapStr),
    p(5, "immutable", Bool),
];

static OBJECT_REFERENCE: &[F] = &[
    v(1, "kind", Str),
    v(2, "namespace", Str),
    v(3, "name", Str),
    v(4, "uid", Str),
    v(5, "apiVersion", Str),
    v(6, "resourceVersion", Str),
    v(7, "fieldPath", Str),
];

static LOCAL_OBJECT_REFERENCE: &[F] = &[v(1, "name", Str)];

pub(super) static SERVICE_ACCOUNT: &[F] = &[
    metadata(),
    r(2, "secrets", Msg(OBJECT_REFERENCE)),
    r(3, "imagePullSecrets", Msg(LOCAL_OBJECT_REFERENCE)),
    p(4, "automountServiceAccountToken", Bool),
];

static SERVICE_PORT: &[F] = &[
    v(1, "name", Str),
    v(2, "protocol", Str),
    p(6, "appProtocol", Str),
    v(3, "port", Int),
    v(4, "targetPort", IntOrStr),
    v(5, "nodePort", Int),
];

static SERVICE_SPEC: &[F] = &[
    r(1, "ports", Msg(SERVICE_PORT)),
    v(2, "selector", MapStr),
    v(3, "clusterIP", Str),
    r(18, "clusterIPs", Str),
    v(4, "type", Str),
    r(5, "externalIPs", Str),
    v(7, "sessionAffinity", Str),
    v(8, "loadBalancerIP", Str),
    r(9, "loadBalancerSourceRanges", Str),
    v(10, "externalName", Str),
    v(11, "externalTrafficPolicy", Str),
    v(12, "healthCheckNodePort", Int),
    v(13, "publishNotReadyAddresses", Bool),
    p(
        14,
        "sessionAffinityConfig",
        Msg(&[p(1, "clientIP", Msg(&[p(1, "timeoutSeconds", Int)]))]),
    ),
    r(19, "ipFamilies", Str),
    p(17, "ipFamilyPolicy", Str),
    p(20, "allocateLoadBalancerNodePorts", Bool),
    p(21, "loadBalancerClass", Str),
    p(22, "internalTrafficPolicy", Str),
    p(23, "trafficDistribution", Str),
];

pub(super) static SERVICE: &[F] = &[
    metadata(),
    v(2, "spec", Msg(SERVICE_SPEC)),
    v(3, "status", Skip),
];

pub(super) static RESOURCE_QUOTA: &[F] = &[
    metadata(),
    v(
        2,
        "spec",
        Msg(&[
            v(1, "hard", MapQty),
            r(2, "scopes", Str),
            p(
                3,
                "scopeSelector",
                Msg(&[r(
                    1,
                    "matchExpressions",
                    Msg(&[
                        v(1, "scopeName", Str),
                        v(2, "operator", Str),
                        r(3, "values", Str),
                    ]),
                )]),
            ),
        ]),
    ),
    v(3, "status", Skip),
];

// ---- core/v1: pods ------------------------------------------------------------------------

static KEY_SELECTOR: &[F] = &[
    v(
        1,
        "localObjectReference",
        Ty::Inline(LOCAL_OBJECT_REFERENCE),
    ),
    v(2, "key", Str),
    p(3, "optional", Bool),
];

static ENV_VAR_SOURCE: &[F] = &[
    p(
        1,
        "fieldRef",
        Msg(&[v(1, "apiVersion", Str), v(2, "fieldPath", Str)]),
    ),
    p(
        2,
        "resourceFieldRef",
        Msg(&[
            v(1, "containerName", Str),
            v(2, "resource", Str),
            v(3, "divisor", Quantity),
        ]),
    ),
    p(3, "configMapKeyRef", Msg(KEY_SELECTOR)),
    p(4, "secretKeyRef", Msg(KEY_SELECTOR)),
];

static ENV_SOURCE: &[F] = &[
    v(
        1,
        "localObjectReference",
        Ty::Inline(LOCAL_OBJECT_REFERENCE),
    ),
    p(2, "optional", Bool),
];

static CONTAINER_PORT: &[F] = &[
    v(1, "name", Str),
    v(2, "hostPort", Int),
    v(3, "containerPort", Int),
    v(4, "protocol", Str),
    v(5, "hostIP", Str),
];

static PROBE_HANDLER: &[F] = &[
    p(1, "exec", Msg(&[r(1, "command", Str)])),
    p(
        2,
        "httpGet",
        Msg(&[
            v(1, "path", Str),
            v(2, "port", IntOrStr),
            v(3, "host", Str),
            v(4, "scheme", Str),
            r(
                5,
                "httpHeaders",
                Msg(&[v(1, "name", Str), v(2, "value", Str)]),
            ),
        ]),
    ),
    p(
        3,
        "tcpSocket",
        Msg(&[v(1, "port", IntOrStr), v(2, "host", Str)]),
    ),
    p(4, "grpc", Msg(&[v(1, "port", Int), p(2, "service", Str)])),
];

static PROBE: &[F] = &[
    v(1, "handler", Ty::Inline(PROBE_HANDLER)),
    v(2, "initialDelaySeconds", Int),
    v(3, "timeoutSeconds", Int),
    v(4, "periodSeconds", Int),
    v(5, "successThreshold", Int),
    v(6, "failureThreshold", Int),
    p(7, "terminationGracePeriodSeconds", Int),
];

static SECCOMP_PROFILE: &[F] = &[v(1, "type", Str), p(2, "localhostProfile", Str)];

static SECURITY_CONTEXT: &[F] = &[
    p(
        1,
        "capabilities",
        Msg(&[r(1, "add", Str), r(2, "drop", Str)]),
    ),
    p(2, "privileged", Bool),
    p(4, "runAsUser", Int),
    p(8, "runAsGroup", Int),
    p(5, "runAsNonRoot", Bool),
    p(6, "readOnlyRootFilesystem", Bool),
    p(7, "allowPrivilegeEscalation", Bool),
    p(9, "procMount", Str),
    p(11, "seccompProfile", Msg(SECCOMP_PROFILE)),
    p(12, "appArmorProfile", Msg(SECCOMP_PROFILE)),
];

static POD_SECURITY_CONTEXT: &[F] = &[
    p(2, "runAsUser", Int),
    p(6, "runAsGroup", Int),
    p(3, "runAsNonRoot", Bool),
    r(4, "supplementalGroups", Int),
    p(5, "fsGroup", Int),
    r(7, "sysctls", Msg(&[v(1, "name", Str), v(2, "value", Str)])),
    p(9, "fsGroupChangePolicy", Str),
    p(10, "seccompProfile", Msg(SECCOMP_PROFILE)),
    p(11, "appArmorProfile", Msg(SECCOMP_PROFILE)),
];

static RESOURCE_REQUIREMENTS: &[F] = &[
    v(1, "limits", MapQty),
    v(2, "requests", MapQty),
    r(3, "claims", Msg(&[v(1, "name", Str), v(2, "request", Str)])),
];

static VOLUME_MOUNT: &[F] = &[
    v(1, "name", Str),
    v(2, "readOnly", Bool),
    p(7, "recursiveReadOnly", Str),
    v(3, "mountPath", Str),
    v(4, "subPath", Str),
    p(5, "mountPropagation", Str),
    v(6, "subPathExpr", Str),
];

static CONTAINER: &[F] = &[
    v(1, "name", Str),
    v(2, "image", Str),
    r(3, "command", Str),
    r(4, "args", Str),
    v(5, "workingDir", Str),
    r(6, "ports", Msg(CONTAINER_PORT)),
    r(
        19,
        "envFrom",
        Msg(&[
            v(1, "prefix", Str),
            p(2, "configMapRef", Msg(ENV_SOURCE)),
            p(3, "secretRef", Msg(ENV_SOURCE)),
        ]),
    ),
    r(
        7,
        "env",
        Msg(&[
            v(1, "name", Str),
            v(2, "value", Str),
            p(3, "valueFrom", Msg(ENV_VAR_SOURCE)),
        ]),
    ),
    v(8, "resources", Msg(RESOURCE_REQUIREMENTS)),
    r(
        23,
        "resizePolicy",
        Msg(&[v(1, "resourceName", Str), v(2, "restartPolicy", Str)]),
    ),
    p(24, "restartPolicy", Str),
    r(9, "volumeMounts", Msg(VOLUME_MOUNT)),
    r(
        21,
        "volumeDevices",
        Msg(&[v(1, "name", Str), v(2, "devicePath", Str)]),
    ),
    p(10, "livenessProbe", Msg(PROBE)),
    p(11, "readinessProbe", Msg(PROBE)),
    p(22, "startupProbe", Msg(PROBE)),
    v(13, "terminationMessagePath", Str),
    v(20, "terminationMessagePolicy", Str),
    v(14, "imagePullPolicy", Str),
    p(15, "securityContext", Msg(SECURITY_CONTEXT)),
    v(16, "stdin", Bool),
    v(17, "stdinOnce", Bool),
    v(18, "tty", Bool),
];

static KEY_TO_PATH: &[F] = &[v(1, "key", Str), v(2, "path", Str), p(3, "mode", Int)];

static VOLUME_SOURCE: &[F] = &[
    p(1, "hostPath", Msg(&[v(1, "path", Str), p(2, "type", Str)])),
    p(
        2,
        "emptyDir",
        Msg(&[v(1, "medium", Str), p(2, "sizeLimit", Quantity)]),
    ),
    p(
        6,
        "secret",
        Msg(&[
            v(1, "secretName", Str),
            r(2, "items", Msg(KEY_TO_PATH)),
            p(3, "defaultMode", Int),
            p(4, "optional", Bool),
        ]),
    ),
    p(
        10,
        "persistentVolumeClaim",
        Msg(&[v(1, "claimName", Str), v(2, "readOnly", Bool)]),
    ),
    p(
        19,
        "configMap",
        Msg(&[
            v(
                1,
                "localObjectReference",
                Ty::Inline(LOCAL_OBJECT_REFERENCE),
            ),
            r(2, "items", Msg(KEY_TO_PATH)),
            p(3, "defaultMode", Int),
            p(4, "optional", Bool),
        ]),
    ),
];

static TOLERATION: &[F] = &[
    v(1, "key", Str),
    v(2, "operator", Str),
    v(3, "value", Str),
    v(4, "effect", Str),
    p(5, "tolerationSeconds", Int),
];

static POD_SPEC: &[F] = &[
    r(
        1,
        "volumes",
        Msg(&[
            v(1, "name", Str),
            v(2, "volumeSource", Ty::Inline(VOLUME_SOURCE)),
        ]),
    ),
    r(20, "initContainers", Msg(CONTAINER)),
    r(2, "containers", Msg(CONTAINER)),
    v(3, "restartPolicy", Str),
    p(4, "terminationGracePeriodSeconds", Int),
    p(5, "activeDeadlineSeconds", Int),
    v(6, "dnsPolicy", Str),
    v(7, "nodeSelector", MapStr),
    v(8, "serviceAccountName", Str),
    v(9, "serviceAccount", Str),
    p(21, "automountServiceAccountToken", Bool),
    v(10, "nodeName", Str),
    v(11, "hostNetwork", Bool),
    v(12, "hostPID", Bool),
    v(13, "hostIPC", Bool),
    p(27, "shareProcessNamespace", Bool),
    p(14, "securityContext", Msg(POD_SECURITY_CONTEXT)),
    r(15, "imagePullSecrets", Msg(LOCAL_OBJECT_REFERENCE)),
    v(16, "hostname", Str),
    v(17, "subdomain", Str),
    v(19, "schedulerName", Str),
    r(22, "tolerations", Msg(TOLERATION)),
    r(
        23,
        "hostAliases",
        Msg(&[v(1, "ip", Str), r(2, "hostnames", Str)]),
    ),
    v(24, "priorityClassName", Str),
    p(25, "priority", Int),
    r(28, "readinessGates", Msg(&[v(1, "conditionType", Str)])),
    p(29, "runtimeClassName", Str),
    p(30, "enableServiceLinks", Bool),
    p(31, "preemptionPolicy", Str),
    v(32, "overhead", MapQty),
    p(35, "setHostnameAsFQDN", Bool),
    p(36, "os", Msg(&[v(1, "name", Str)])),
    p(37, "hostUsers", Bool),
    r(38, "schedulingGates", Msg(&[v(1, "name", Str)])),
];

pub(super) static POD_TEMPLATE_SPEC: &[F] = &[metadata(), v(2, "spec", Msg(POD_SPEC))];

pub(super) static POD: &[F] = &[
    metadata(),
    v(2, "spec", Msg(POD_SPEC)),
    v(3, "status", Skip),
];
