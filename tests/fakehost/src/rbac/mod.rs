//! rbac: the Kubernetes RBAC authorizer (plugin/pkg/auth/authorizer/rbac) over stored RBAC
//! objects, the `system:masters` superuser bypass and ClusterRole aggregation; `escalation`
//! holds the RBAC registry's privilege-escalation check on writes of roles and bindings, and
//! `bootstrap` the bootstrap ClusterRoles/ClusterRoleBindings of a fresh v1.33 cluster.
//!
//! Objects are taken exactly as the API server stores them (JSON). Everything here is pure:
//! the engine passes a snapshot of Roles/ClusterRoles/(Cluster)RoleBindings per request.

mod bootstrap;
pub mod escalation;

use std::collections::HashSet;

use serde_json::{Value, json};

pub use bootstrap::{default_cluster_role_bindings, default_cluster_roles};

/// kube-apiserver's superuser group (`user.SystemPrivilegedGroup`), allowed everything by the
/// privileged-groups authorizer that runs before RBAC.
pub const SYSTEM_MASTERS: &str = "system:masters";
pub const ALL_AUTHENTICATED: &str = "system:authenticated";
pub const ALL_UNAUTHENTICATED: &str = "system:unauthenticated";

/// Snapshot of the RBAC objects in the cluster.
#[derive(Debug, Clone, Default)]
pub struct RbacObjects {
    pub roles: Vec<Value>,
    pub cluster_roles: Vec<Value>,
    pub role_bindings: Vec<Value>,
    pub cluster_role_bindings: Vec<Value>,
}

/// The authenticated user, as the authenticator produced it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub groups: Vec<String>,
}

impl UserInfo {
    pub fn new(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo {
            name: name.to_string(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    /// The user a ServiceAccount token authenticates as (serviceaccount.UserInfo).
    pub fn service_account(namespace: &str, name: &str) -> UserInfo {
        UserInfo {
            name: format!("system:serviceaccount:{namespace}:{name}"),
            groups: vec![
                "system:serviceaccounts".to_string(),
                format!("system:serviceaccounts:{namespace}"),
            ],
        }
    }
}

/// authorizer.Attributes. A request is a non-resource request iff `non_resource_path` is set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestAttributes {
    pub verb: String,
    pub api_group: String,
    pub resource: String,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub non_resource_path: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Why it was allowed (which binding), or on denial the RBAC errors met on the way (e.g.
    /// a binding to a missing role); upstream leaves a plain denial's reason empty.
    pub reason: String,
}

/// Authorizes one request as kube-apiserver's `Node,RBAC` chain does for non-node users:
/// `system:masters` is allowed outright, then RBAC's VisitRulesFor/RuleAllows.
pub fn authorize(objs: &RbacObjects, user: &UserInfo, attrs: &RequestAttributes) -> Decision {
    let user = with_authenticated_group(user);
    if user.groups.iter().any(|g| g == SYSTEM_MASTERS) {
        return Decision {
            allowed: true,
            reason: format!("{SYSTEM_MASTERS} is a privileged group"),
        };
    }
    let mut errors = Vec::new();
    let mut allowed_by = None;
    visit_rules_for(
        objs,
        &user,
        attrs.namespace.as_deref(),
        &mut errors,
        &mut |source, rule| {
            if rule_allows(attrs, rule) {
                allowed_by = Some(source.to_string());
                return false; // stop visiting
            }
            true
        },
    );
    match allowed_by {
        Some(source) => Decision {
            allowed: true,
            reason: format!("RBAC: allowed by {source}"),
        },
        None if errors.is_empty() => Decision {
            allowed: false,
            reason: String::new(),
        },
        None => Decision {
            allowed: false,
            reason: format!("RBAC: {}", lister_messages(&errors)),
        },
    }
}

/// The text of kube-apiserver's 403 Status message (responsewriters.forbiddenMessage plus
/// NewForbidden's "<resource> \"<name>\" is forbidden: " prefix).
pub fn forbidden_message(user: &UserInfo, attrs: &RequestAttributes, reason: &str) -> String {
    let mut msg = if let Some(path) = &attrs.non_resource_path {
        format!(
            "forbidden: User {:?} cannot {} path {:?}",
            user.name, attrs.verb, path
        )
    } else {
        let mut resource = attrs.resource.clone();
        if let Some(sub) = attrs.subresource.as_deref().filter(|s| !s.is_empty()) {
            resource = format!("{resource}/{sub}");
        }
        let scope = match attrs.namespace.as_deref().filter(|n| !n.is_empty()) {
            Some(ns) => format!("in the namespace {ns:?}"),
            None => "at the cluster scope".to_string(),
        };
        let detail = format!(
            "User {:?} cannot {} resource {:?} in API group {:?} {scope}",
            user.name, attrs.verb, resource, attrs.api_group
        );
        let qualified = if attrs.api_group.is_empty() {
            attrs.resource.clone()
        } else {
            format!("{}.{}", attrs.resource, attrs.api_group)
        };
        match attrs.name.as_deref().filter(|n| !n.is_empty()) {
            Some(name) => format!("{qualified} {name:?} is forbidden: {detail}"),
            None => format!("{qualified} is forbidden: {detail}"),
        }
    };
    if !reason.is_empty() {
        msg.push_str(": ");
        msg.push_str(reason);
    }
    msg
}

/// SelfSubjectRulesReview `status` for `user` in `namespace` (what `kubectl auth can-i --list`
/// shows): every rule from ClusterRoleBindings and the namespace's RoleBindings.
pub fn self_subject_rules_review(objs: &RbacObjects, user: &UserInfo, namespace: &str) -> Value {
    let user = with_authenticated_group(user);
    let mut resource_rules = Vec::new();
    let mut non_resource_rules = Vec::new();
    let mut errors = Vec::new();
    let ns = Some(namespace).filter(|n| !n.is_empty());
    visit_rules_for(objs, &user, ns, &mut errors, &mut |_, rule| {
        let has = |k: &str| {
            rule.get(k)
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty())
        };
        let pick = |keys: &[&str]| {
            let mut out = serde_json::Map::new();
            for k in keys {
                if let Some(v) = rule
                    .get(*k)
                    .filter(|v| v.as_array().is_some_and(|a| !a.is_empty()))
                {
                    out.insert((*k).to_string(), v.clone());
                }
            }
            Value::Object(out)
        };
        if has("nonResourceURLs") {
            non_resource_rules.push(pick(&["verbs", "nonResourceURLs"]));
        } else {
            resource_rules.push(pick(&["verbs", "apiGroups", "resources", "resourceNames"]));
        }
        true
    });
    let mut status = json!({
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": !errors.is_empty(),
    });
    if !errors.is_empty() {
        status["evaluationError"] = Value::String(lister_messages(&errors));
    }
    status
}

/// group.AuthenticatedGroupAdder: every authenticated user is in `system:authenticated`
/// unless the authenticator already put it in the authenticated or unauthenticated group.
fn with_authenticated_group(user: &UserInfo) -> UserInfo {
    let mut user = user.clone();
    if !user
        .groups
        .iter()
        .any(|g| g == ALL_AUTHENTICATED || g == ALL_UNAUTHENTICATED)
    {
        user.groups.push(ALL_AUTHENTICATED.to_string());
    }
    user
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(next) => cur = next,
            None => return "",
        }
    }
    cur.as_str().unwrap_or("")
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// rbac/validation.DefaultRuleResolver.VisitRulesFor: ClusterRoleBindings first, then (for a
/// namespaced request) the RoleBindings of that namespace. The visitor returns false to stop.
fn visit_rules_for(
    objs: &RbacObjects,
    user: &UserInfo,
    namespace: Option<&str>,
    errors: &mut Vec<RoleRefError>,
    visit: &mut dyn FnMut(&str, &Value) -> bool,
) {
    for crb in &objs.cluster_role_bindings {
        let Some(subject) = applies_to(user, crb, "") else {
            continue;
        };
        match role_reference_rules(objs, crb, "") {
            Ok((kind, rules)) => {
                let source = format!(
                    "ClusterRoleBinding {:?} of {kind} {:?} to {subject}",
                    str_at(crb, &["metadata", "name"]),
                    str_at(crb, &["roleRef", "name"])
                );
                for rule in &rules {
                    if !visit(&source, rule) {
                        return;
                    }
                }
            }
            Err(e) => errors.push(e),
        }
    }
    let Some(ns) = namespace.filter(|n| !n.is_empty()) else {
        return;
    };
    for rb in &objs.role_bindings {
        if str_at(rb, &["metadata", "namespace"]) != ns {
            continue;
        }
        let Some(subject) = applies_to(user, rb, ns) else {
            continue;
        };
        match role_reference_rules(objs, rb, ns) {
            Ok((kind, rules)) => {
                let source = format!(
                    "RoleBinding {:?} of {kind} {:?} to {subject}",
                    format!("{}/{ns}", str_at(rb, &["metadata", "name"])),
                    str_at(rb, &["roleRef", "name"])
                );
                for rule in &rules {
                    if !visit(&source, rule) {
                        return;
                    }
                }
            }
            Err(e) => errors.push(e),
        }
    }
}

/// rbac/validation.appliesTo: the first subject of the binding that matches the user,
/// described as upstream does in its allow reason (e.g. `User "alice"`).
fn applies_to(user: &UserInfo, binding: &Value, namespace: &str) -> Option<String> {
    let subjects = binding.get("subjects").and_then(Value::as_array)?;
    subjects.iter().find_map(|s| {
        let kind = str_at(s, &["kind"]);
        let name = str_at(s, &["name"]);
        let hit = match kind {
            "User" => user.name == name,
            "Group" => user.groups.iter().any(|g| g == name),
            "ServiceAccount" => {
                // An SA subject without a namespace means the binding's own namespace;
                // ClusterRoleBindings (namespace "") must name it.
                let sa_ns = match str_at(s, &["namespace"]) {
                    "" => namespace,
                    n => n,
                };
                !sa_ns.is_empty() && user.name == format!("system:serviceaccount:{sa_ns}:{name}")
            }
            _ => false,
        };
        hit.then(|| match kind {
            "ServiceAccount" => format!("ServiceAccount \"{name}/{}\"", str_at(s, &["namespace"])),
            _ => format!("{kind} {name:?}"),
        })
    })
}

/// Why a binding's roleRef yields no rules.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RoleRefError {
    /// No such Role in the binding's namespace (`resource` "role"), or no such ClusterRole.
    NotFound {
        resource: &'static str,
        name: String,
    },
    /// A kind other than Role/ClusterRole, or a Role named outside a namespace.
    Unsupported(String),
}

impl RoleRefError {
    /// As the authorizer's informer listers word it: `role.rbac.authorization.k8s.io "x" not
    /// found` (singular resource).
    fn lister_message(&self) -> String {
        match self {
            RoleRefError::NotFound { resource, name } => {
                format!("{resource}.rbac.authorization.k8s.io {name:?} not found")
            }
            RoleRefError::Unsupported(kind) => format!("unsupported role reference kind: {kind:?}"),
        }
    }

    /// As the RBAC registry's rule resolver (used by the escalation check) words it:
    /// `roles.rbac.authorization.k8s.io "x" not found` (the storage's plural resource).
    fn registry_message(&self) -> String {
        match self {
            RoleRefError::NotFound { resource, name } => {
                format!("{resource}s.rbac.authorization.k8s.io {name:?} not found")
            }
            RoleRefError::Unsupported(_) => self.lister_message(),
        }
    }
}

fn lister_messages(errors: &[RoleRefError]) -> String {
    let messages: Vec<String> = errors.iter().map(RoleRefError::lister_message).collect();
    messages.join(", ")
}

/// GetRoleReferenceRules: a RoleBinding may reference a Role of its own namespace or a
/// ClusterRole; a ClusterRoleBinding only a ClusterRole.
fn role_reference_rules(
    objs: &RbacObjects,
    binding: &Value,
    namespace: &str,
) -> Result<(&'static str, Vec<Value>), RoleRefError> {
    let kind = str_at(binding, &["roleRef", "kind"]);
    let name = str_at(binding, &["roleRef", "name"]);
    match kind {
        "Role" if !namespace.is_empty() => objs
            .roles
            .iter()
            .find(|r| {
                str_at(r, &["metadata", "name"]) == name
                    && str_at(r, &["metadata", "namespace"]) == namespace
            })
            .map(|r| ("Role", rules_of(r)))
            .ok_or_else(|| RoleRefError::NotFound {
                resource: "role",
                name: name.to_string(),
            }),
        "ClusterRole" => find_cluster_role(objs, name)
            .map(|cr| {
                (
                    "ClusterRole",
                    effective_cluster_role_rules(objs, cr, &mut HashSet::new()),
                )
            })
            .ok_or_else(|| RoleRefError::NotFound {
                resource: "clusterrole",
                name: name.to_string(),
            }),
        other => Err(RoleRefError::Unsupported(other.to_string())),
    }
}

fn find_cluster_role<'a>(objs: &'a RbacObjects, name: &str) -> Option<&'a Value> {
    objs.cluster_roles
        .iter()
        .find(|cr| str_at(cr, &["metadata", "name"]) == name)
}

fn rules_of(role: &Value) -> Vec<Value> {
    role.get("rules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// The rules a ClusterRole grants. For an aggregated ClusterRole this is what the
/// clusterrole-aggregation controller would have written into it: the union of the rules of
/// every *other* ClusterRole matched by any of its selectors, computed transitively (the
/// controller converges to the same fixed point). Computed per request, so no controller lag.
fn effective_cluster_role_rules(
    objs: &RbacObjects,
    cr: &Value,
    visiting: &mut HashSet<String>,
) -> Vec<Value> {
    let name = str_at(cr, &["metadata", "name"]).to_string();
    let Some(selectors) = cr
        .get("aggregationRule")
        .and_then(|a| a.get("clusterRoleSelectors"))
        .and_then(Value::as_array)
    else {
        return rules_of(cr);
    };
    if !visiting.insert(name.clone()) {
        return Vec::new(); // aggregation cycle: contributes nothing more
    }
    let mut out: Vec<Value> = Vec::new();
    let mut matched: Vec<&Value> = objs
        .cluster_roles
        .iter()
        .filter(|other| str_at(other, &["metadata", "name"]) != name)
        .filter(|other| {
            let labels = other.get("metadata").and_then(|m| m.get("labels"));
            selectors
                .iter()
                .any(|sel| label_selector_matches(sel, labels))
        })
        .collect();
    matched.sort_by_key(|c| str_at(c, &["metadata", "name"]).to_string());
    for other in matched {
        for rule in effective_cluster_role_rules(objs, other, visiting) {
            if !out.contains(&rule) {
                out.push(rule);
            }
        }
    }
    visiting.remove(&name);
    out
}

/// metav1.LabelSelectorAsSelector semantics: matchLabels AND every matchExpression;
/// an empty selector matches everything.
pub fn label_selector_matches(selector: &Value, labels: Option<&Value>) -> bool {
    let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    if let Some(ml) = selector.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in ml {
            if label(k) != v.as_str() {
                return false;
            }
        }
    }
    if let Some(exprs) = selector.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let key = str_at(e, &["key"]);
            let values = strings(e, "values");
            let ok = match str_at(e, &["operator"]) {
                "In" => label(key).is_some_and(|v| values.iter().any(|x| x == v)),
                "NotIn" => label(key).is_none_or(|v| !values.iter().any(|x| x == v)),
                "Exists" => label(key).is_some(),
                "DoesNotExist" => label(key).is_none(),
                _ => false, // invalid selector matches nothing
            };
            if !ok {
                return false;
            }
        }
    }
    true
}

/// rbac.RuleAllows with the rbacv1helpers matchers.
fn rule_allows(attrs: &RequestAttributes, rule: &Value) -> bool {
    let verbs = strings(rule, "verbs");
    if !verbs.iter().any(|v| v == "*" || *v == attrs.verb) {
        return false;
    }
    if let Some(path) = &attrs.non_resource_path {
        // NonResourceURLMatches: exact, "*", or a trailing-"*" prefix.
        return strings(rule, "nonResourceURLs").iter().any(|u| {
            u == "*" || u == path || u.strip_suffix('*').is_some_and(|p| path.starts_with(p))
        });
    }
    if !strings(rule, "apiGroups")
        .iter()
        .any(|g| g == "*" || *g == attrs.api_group)
    {
        return false;
    }
    let sub = attrs.subresource.as_deref().unwrap_or("");
    let combined = if sub.is_empty() {
        attrs.resource.clone()
    } else {
        format!("{}/{sub}", attrs.resource)
    };
    // ResourceMatches: "*" (which also covers subresources), exact "res" or "res/sub",
    // or "*/sub" for any resource's subresource.
    let resource_ok = strings(rule, "resources").iter().any(|r| {
        r == "*"
            || *r == combined
            || (!sub.is_empty() && r.strip_prefix("*/").is_some_and(|s| s == sub))
    });
    if !resource_ok {
        return false;
    }
    // ResourceNameMatches: an empty list allows any name; otherwise the request must name
    // one of them, so list/watch/create (no name) never match a resourceNames rule.
    let names = strings(rule, "resourceNames");
    names.is_empty()
        || attrs
            .name
            .as_deref()
            .is_some_and(|n| !n.is_empty() && names.iter().any(|x| x == n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crb(name: &str, role: &str, subjects: Value) -> Value {
        json!({"metadata": {"name": name}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole", "name": role}, "subjects": subjects})
    }

    fn rb(ns: &str, name: &str, kind: &str, role: &str, subjects: Value) -> Value {
        json!({"metadata": {"name": name, "namespace": ns}, "roleRef": {"apiGroup":
            "rbac.authorization.k8s.io", "kind": kind, "name": role}, "subjects": subjects})
    }

    fn user(name: &str) -> Value {
        json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": name}])
    }

    fn req(verb: &str, group: &str, resource: &str, ns: Option<&str>) -> RequestAttributes {
        RequestAttributes {
            verb: verb.into(),
            api_group: group.into(),
            resource: resource.into(),
            namespace: ns.map(str::to_string),
            ..Default::default()
        }
    }

    fn with_sub(mut r: RequestAttributes, sub: &str) -> RequestAttributes {
        r.subresource = Some(sub.into());
        r
    }

    fn with_name(mut r: RequestAttributes, name: &str) -> RequestAttributes {
        r.name = Some(name.into());
        r
    }

    fn path(verb: &str, p: &str) -> RequestAttributes {
        RequestAttributes {
            verb: verb.into(),
            non_resource_path: Some(p.into()),
            ..Default::default()
        }
    }

    /// A small cluster: bootstrap policy plus tenant bindings.
    fn world() -> RbacObjects {
        let mut cluster_roles = default_cluster_roles();
        // Stale stored rules on an aggregated role must be ignored (recomputed).
        for cr in cluster_roles.iter_mut() {
            if str_at(cr, &["metadata", "name"]) == "view" {
                cr["rules"] = json!([]);
            }
        }
        cluster_roles.push(json!({"metadata": {"name": "crd-viewer",
            "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
            "rules": [{"apiGroups": ["k3k.io"], "resources": ["clusters"], "verbs": ["get", "list"]}]}));
        cluster_roles.push(json!({"metadata": {"name": "secret-reader"},
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]}));
        cluster_roles.push(json!({"metadata": {"name": "metrics"},
            "rules": [{"nonResourceURLs": ["/metrics", "/logs/*"], "verbs": ["get"]}]}));
        cluster_roles.push(json!({"metadata": {"name": "scaler"},
            "rules": [{"apiGroups": ["apps"], "resources": ["*/scale"], "verbs": ["update"]}]}));
        let mut crbs = default_cluster_role_bindings();
        crbs.push(crb("metrics", "metrics", user("prom")));
        crbs.push(crb(
            "sa-view",
            "view",
            json!([{"kind": "ServiceAccount", "name": "bot", "namespace": "tools"}]),
        ));
        RbacObjects {
            roles: vec![
                json!({"metadata": {"name": "cm-one", "namespace": "team-a"}, "rules": [
                    {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["settings"],
                     "verbs": ["get", "update", "list"]}]}),
                json!({"metadata": {"name": "log-reader", "namespace": "team-a"}, "rules": [
                    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}]}),
                json!({"metadata": {"name": "log-reader", "namespace": "team-b"}, "rules": [
                    {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}),
            ],
            cluster_roles,
            role_bindings: vec![
                rb("team-a", "viewer", "ClusterRole", "view", user("vera")),
                rb("team-a", "editor", "ClusterRole", "edit", user("eddie")),
                rb(
                    "team-a",
                    "admins",
                    "ClusterRole",
                    "admin",
                    json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "team-a-admins"}]),
                ),
                rb("team-a", "cm", "Role", "cm-one", user("carl")),
                rb("team-a", "logs", "Role", "log-reader", user("lou")),
                rb(
                    "team-a",
                    "ns-sa",
                    "ClusterRole",
                    "secret-reader",
                    json!([{"kind": "ServiceAccount", "name": "default"}]),
                ),
                rb("team-a", "dangling", "Role", "does-not-exist", user("dan")),
                // A RoleBinding naming a ClusterRole with nonResourceURLs grants no paths.
                rb(
                    "team-a",
                    "ns-metrics",
                    "ClusterRole",
                    "metrics",
                    user("nora"),
                ),
            ],
            cluster_role_bindings: crbs,
        }
    }

    #[test]
    fn decision_table() {
        let w = world();
        let u = |n: &str| UserInfo::new(n, &[]);
        let a = Some("team-a");
        let b = Some("team-b");
        let cases: Vec<(&str, UserInfo, RequestAttributes, bool)> = vec![
            (
                "viewer gets pods",
                u("vera"),
                req("get", "", "pods", a),
                true,
            ),
            (
                "viewer lists deployments",
                u("vera"),
                req("list", "apps", "deployments", a),
                true,
            ),
            (
                "viewer cannot read secrets",
                u("vera"),
                req("get", "", "secrets", a),
                false,
            ),
            (
                "viewer cannot list secrets",
                u("vera"),
                req("list", "", "secrets", a),
                false,
            ),
            (
                "viewer cannot create pods",
                u("vera"),
                req("create", "", "pods", a),
                false,
            ),
            (
                "viewer reads pods/log",
                u("vera"),
                with_sub(req("get", "", "pods", a), "log"),
                true,
            ),
            (
                "viewer cannot exec",
                u("vera"),
                with_sub(req("create", "", "pods", a), "exec"),
                false,
            ),
            (
                "viewer scoped to its namespace",
                u("vera"),
                req("get", "", "pods", b),
                false,
            ),
            (
                "viewer has nothing cluster-wide",
                u("vera"),
                req("list", "", "pods", None),
                false,
            ),
            (
                "viewer gets aggregated CRD",
                u("vera"),
                req("get", "k3k.io", "clusters", a),
                true,
            ),
            (
                "aggregated rule verbs kept",
                u("vera"),
                req("delete", "k3k.io", "clusters", a),
                false,
            ),
            (
                "edit creates deployments",
                u("eddie"),
                req("create", "apps", "deployments", a),
                true,
            ),
            (
                "edit only in its namespace",
                u("eddie"),
                req("create", "apps", "deployments", b),
                false,
            ),
            (
                "edit reads secrets",
                u("eddie"),
                req("get", "", "secrets", a),
                true,
            ),
            (
                "edit writes secrets",
                u("eddie"),
                req("update", "", "secrets", a),
                true,
            ),
            (
                "edit gets pods via view",
                u("eddie"),
                req("get", "", "pods", a),
                true,
            ),
            (
                "edit scales",
                u("eddie"),
                with_sub(req("patch", "apps", "deployments", a), "scale"),
                true,
            ),
            (
                "edit no status write",
                u("eddie"),
                with_sub(req("update", "apps", "deployments", a), "status"),
                false,
            ),
            (
                "edit cannot create roles",
                u("eddie"),
                req("create", "rbac.authorization.k8s.io", "roles", a),
                false,
            ),
            (
                "edit cannot bind",
                u("eddie"),
                req("create", "rbac.authorization.k8s.io", "rolebindings", a),
                false,
            ),
            (
                "edit no quota write",
                u("eddie"),
                req("update", "", "resourcequotas", a),
                false,
            ),
            (
                "edit inherits aggregated CRD read",
                u("eddie"),
                req("list", "k3k.io", "clusters", a),
                true,
            ),
            (
                "admin (group) creates rolebindings",
                UserInfo::new("ann", &["team-a-admins"]),
                req("create", "rbac.authorization.k8s.io", "rolebindings", a),
                true,
            ),
            (
                "admin creates deployments",
                UserInfo::new("ann", &["team-a-admins"]),
                req("create", "apps", "deployments", a),
                true,
            ),
            (
                "admin not in other ns",
                UserInfo::new("ann", &["team-a-admins"]),
                req("create", "rbac.authorization.k8s.io", "roles", b),
                false,
            ),
            (
                "admin cannot create clusterroles",
                UserInfo::new("ann", &["team-a-admins"]),
                req("create", "rbac.authorization.k8s.io", "clusterroles", None),
                false,
            ),
            (
                "admin cannot touch namespaces",
                UserInfo::new("ann", &["team-a-admins"]),
                req("delete", "", "namespaces", None),
                false,
            ),
            (
                "group name is not a user name",
                u("team-a-admins"),
                req("get", "", "pods", a),
                false,
            ),
            (
                "resourceNames: named get",
                u("carl"),
                with_name(req("get", "", "configmaps", a), "settings"),
                true,
            ),
            (
                "resourceNames: other name",
                u("carl"),
                with_name(req("get", "", "configmaps", a), "other"),
                false,
            ),
            (
                "resourceNames: list has no name",
                u("carl"),
                req("list", "", "configmaps", a),
                false,
            ),
            (
                "resourceNames: create has no name",
                u("carl"),
                req("create", "", "configmaps", a),
                false,
            ),
            (
                "subresource rule: pods/log",
                u("lou"),
                with_sub(with_name(req("get", "", "pods", a), "p"), "log"),
                true,
            ),
            (
                "subresource rule does not grant pod",
                u("lou"),
                with_name(req("get", "", "pods", a), "p"),
                false,
            ),
            (
                "role from other namespace unused",
                u("lou"),
                req("delete", "", "pods", a),
                false,
            ),
            (
                "unbound user gets nothing",
                u("sc"),
                req("get", "", "pods", a),
                false,
            ),
            (
                "nonResourceURL exact",
                u("prom"),
                path("get", "/metrics"),
                true,
            ),
            (
                "nonResourceURL prefix *",
                u("prom"),
                path("get", "/logs/kube.log"),
                true,
            ),
            (
                "nonResourceURL verb",
                u("prom"),
                path("post", "/metrics"),
                false,
            ),
            (
                "nonResourceURL other path",
                u("prom"),
                path("get", "/metricsx"),
                false,
            ),
            (
                "nonResourceURL not via RoleBinding",
                u("nora"),
                path("get", "/metrics"),
                false,
            ),
            (
                "authenticated: discovery",
                u("nobody"),
                path("get", "/apis/apps"),
                true,
            ),
            (
                "authenticated: SSAR",
                u("nobody"),
                req(
                    "create",
                    "authorization.k8s.io",
                    "selfsubjectaccessreviews",
                    None,
                ),
                true,
            ),
            (
                "authenticated: SSRR",
                u("nobody"),
                req(
                    "create",
                    "authorization.k8s.io",
                    "selfsubjectrulesreviews",
                    None,
                ),
                true,
            ),
            (
                "authenticated: not SAR",
                u("nobody"),
                req(
                    "create",
                    "authorization.k8s.io",
                    "subjectaccessreviews",
                    None,
                ),
                false,
            ),
            (
                "unauthenticated: no SSAR",
                UserInfo::new("system:anonymous", &["system:unauthenticated"]),
                req(
                    "create",
                    "authorization.k8s.io",
                    "selfsubjectaccessreviews",
                    None,
                ),
                false,
            ),
            (
                "unauthenticated: healthz",
                UserInfo::new("system:anonymous", &["system:unauthenticated"]),
                path("get", "/healthz"),
                true,
            ),
            (
                "masters: anything",
                UserInfo::new("root", &["system:masters"]),
                req("delete", "", "nodes", None),
                true,
            ),
            (
                "masters: paths",
                UserInfo::new("root", &["system:masters"]),
                path("put", "/anything"),
                true,
            ),
            (
                "dangling role denies",
                u("dan"),
                req("get", "", "pods", a),
                false,
            ),
            (
                "SA via CRB",
                UserInfo::service_account("tools", "bot"),
                req("list", "", "pods", b),
                true,
            ),
            (
                "SA wrong ns via CRB",
                UserInfo::service_account("other", "bot"),
                req("list", "", "pods", b),
                false,
            ),
            (
                "SA defaulted to RB ns",
                UserInfo::service_account("team-a", "default"),
                req("get", "", "secrets", a),
                true,
            ),
            (
                "SA of other ns",
                UserInfo::service_account("team-b", "default"),
                req("get", "", "secrets", a),
                false,
            ),
        ];
        let mut failures = Vec::new();
        for (label, who, attrs, want) in cases {
            let d = authorize(&w, &who, &attrs);
            if d.allowed != want {
                failures.push(format!("{label}: want {want}, got {d:?}"));
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
    }

    #[test]
    fn wildcard_subresource_and_star() {
        let mut w = world();
        w.cluster_role_bindings
            .push(crb("scale", "scaler", user("sc")));
        w.cluster_role_bindings
            .push(crb("all", "cluster-admin", user("boss")));
        let sc = UserInfo::new("sc", &[]);
        let scale = |res: &str| with_sub(req("update", "apps", res, Some("x")), "scale");
        assert!(authorize(&w, &sc, &scale("deployments")).allowed);
        assert!(authorize(&w, &sc, &scale("statefulsets")).allowed);
        assert!(!authorize(&w, &sc, &req("update", "apps", "deployments", Some("x"))).allowed);
        assert!(
            !authorize(
                &w,
                &sc,
                &with_sub(req("update", "apps", "deployments", Some("x")), "status")
            )
            .allowed
        );
        // "*" resources cover subresources and non-resource "*" covers every path.
        let boss = UserInfo::new("boss", &[]);
        assert!(
            authorize(
                &w,
                &boss,
                &with_sub(req("create", "", "pods", Some("x")), "exec")
            )
            .allowed
        );
        assert!(authorize(&w, &boss, &path("get", "/debug/pprof")).allowed);
    }

    #[test]
    fn reasons_and_forbidden_message() {
        let w = world();
        let vera = UserInfo::new("vera", &[]);
        let ok = authorize(&w, &vera, &req("get", "", "pods", Some("team-a")));
        assert!(
            ok.reason
                .contains("RoleBinding \"viewer/team-a\" of ClusterRole \"view\" to User \"vera\""),
            "{}",
            ok.reason
        );
        let denied = authorize(
            &w,
            &vera,
            &with_name(req("get", "", "secrets", Some("team-a")), "db"),
        );
        assert_eq!(denied.reason, "");
        assert_eq!(
            forbidden_message(
                &vera,
                &with_name(req("get", "", "secrets", Some("team-a")), "db"),
                &denied.reason
            ),
            "secrets \"db\" is forbidden: User \"vera\" cannot get resource \"secrets\" in API group \"\" in the namespace \"team-a\""
        );
        assert_eq!(
            forbidden_message(&vera, &req("list", "apps", "deployments", None), ""),
            "deployments.apps is forbidden: User \"vera\" cannot list resource \"deployments\" in API group \"apps\" at the cluster scope"
        );
        let dan = authorize(
            &w,
            &UserInfo::new("dan", &[]),
            &req("get", "", "pods", Some("team-a")),
        );
        assert!(dan.reason.contains("not found"), "{}", dan.reason);
    }

    #[test]
    fn aggregation_is_transitive_and_cycle_safe() {
        let roles = default_cluster_roles();
        let get = |n: &str| {
            roles
                .iter()
                .find(|r| str_at(r, &["metadata", "name"]) == n)
                .unwrap()
        };
        let has = |role: &str, group: &str, res: &str, verb: &str| {
            rules_of(get(role))
                .iter()
                .any(|r| rule_allows(&req(verb, group, res, Some("n")), r))
        };
        assert!(has("admin", "", "pods", "get"), "admin ⊇ edit ⊇ view");
        assert!(has("admin", "rbac.authorization.k8s.io", "roles", "create"));
        assert!(!has("edit", "rbac.authorization.k8s.io", "roles", "create"));
        assert!(!has("view", "", "secrets", "get"));
        let cyc = RbacObjects {
            cluster_roles: vec![
                json!({"metadata": {"name": "a", "labels": {"x": "a"}},
                    "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"x": "b"}}]}}),
                json!({"metadata": {"name": "b", "labels": {"x": "b"}},
                    "aggregationRule": {"clusterRoleSelectors": [{"matchExpressions":
                        [{"key": "x", "operator": "In", "values": ["a", "c"]}]}]}}),
                json!({"metadata": {"name": "c", "labels": {"x": "c"}},
                    "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}),
            ],
            cluster_role_bindings: vec![crb("a", "a", user("u"))],
            ..Default::default()
        };
        assert!(
            authorize(
                &cyc,
                &UserInfo::new("u", &[]),
                &req("get", "", "pods", Some("n"))
            )
            .allowed
        );
    }

    #[test]
    fn label_selectors() {
        let labels = json!({"tier": "web", "env": "prod"});
        let m = |s: Value| label_selector_matches(&s, Some(&labels));
        assert!(m(json!({})));
        assert!(m(json!({"matchLabels": {"tier": "web"}})));
        assert!(!m(json!({"matchLabels": {"tier": "db"}})));
        assert!(m(
            json!({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["dev"]}]})
        ));
        assert!(m(
            json!({"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]})
        ));
        assert!(!m(
            json!({"matchExpressions": [{"key": "zone", "operator": "Exists"}]})
        ));
        assert!(!m(
            json!({"matchExpressions": [{"key": "env", "operator": "Bogus"}]})
        ));
    }

    #[test]
    fn rules_review_lists_namespace_and_cluster_rules() {
        let w = world();
        let st = self_subject_rules_review(&w, &UserInfo::new("carl", &[]), "team-a");
        let rr = st["resourceRules"].as_array().unwrap();
        assert!(rr.iter().any(|r| r["resourceNames"] == json!(["settings"])));
        assert!(
            rr.iter().any(|r| r["resources"]
                == json!(["selfsubjectaccessreviews", "selfsubjectrulesreviews"]))
        );
        assert!(!st["nonResourceRules"].as_array().unwrap().is_empty());
        assert_eq!(st["incomplete"], json!(false));
        let st_b = self_subject_rules_review(&w, &UserInfo::new("carl", &[]), "team-b");
        assert!(
            !st_b["resourceRules"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["resourceNames"] == json!(["settings"]))
        );
    }
}
