//! rbac::escalation: RBAC's privilege-escalation prevention, as kube-apiserver's policy-based
//! RBAC storages do it (pkg/registry/rbac, its `validation` package and component-helpers'
//! `Covers`). A user may create or update a Role/ClusterRole only holding every permission it
//! grants (or with `escalate` on it), and a RoleBinding/ClusterRoleBinding only holding every
//! permission of the referenced role in the binding's scope (or with `bind` on that role);
//! `system:masters` is exempt. Refusals are the 403s kube-apiserver sends, with its message
//! listing the missing permissions.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::{
    RbacObjects, RequestAttributes, RoleRefError, SYSTEM_MASTERS, UserInfo, role_reference_rules,
    str_at, strings, visit_rules_for, with_authenticated_group,
};
use crate::errors::ApiError;

pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// The resources whose writes the check guards (all in `rbac.authorization.k8s.io`).
pub fn guards(group: &str, resource: &str) -> bool {
    group == RBAC_GROUP
        && matches!(
            resource,
            "roles" | "clusterroles" | "rolebindings" | "clusterrolebindings"
        )
}

/// One rbacv1.PolicyRule (absent lists are empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyRule {
    pub verbs: Vec<String>,
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub resource_names: Vec<String>,
    pub non_resource_urls: Vec<String>,
}

impl PolicyRule {
    pub fn from_json(rule: &Value) -> PolicyRule {
        PolicyRule {
            verbs: strings(rule, "verbs"),
            api_groups: strings(rule, "apiGroups"),
            resources: strings(rule, "resources"),
            resource_names: strings(rule, "resourceNames"),
            non_resource_urls: strings(rule, "nonResourceURLs"),
        }
    }
}

fn one(s: &str) -> Vec<String> {
    vec![s.to_string()]
}

/// validation.BreakdownRule: the rule as rules of one verb, one group, one resource and at
/// most one resource name (or one verb and one non-resource URL).
pub fn breakdown_rule(rule: &PolicyRule) -> Vec<PolicyRule> {
    let mut out = Vec::new();
    for group in &rule.api_groups {
        for resource in &rule.resources {
            for verb in &rule.verbs {
                let base = PolicyRule {
                    verbs: one(verb),
                    api_groups: one(group),
                    resources: one(resource),
                    ..PolicyRule::default()
                };
                if rule.resource_names.is_empty() {
                    out.push(base);
                } else {
                    for name in &rule.resource_names {
                        out.push(PolicyRule {
                            resource_names: one(name),
                            ..base.clone()
                        });
                    }
                }
            }
        }
    }
    for url in &rule.non_resource_urls {
        for verb in &rule.verbs {
            out.push(PolicyRule {
                verbs: one(verb),
                non_resource_urls: one(url),
                ..PolicyRule::default()
            });
        }
    }
    out
}

fn has(set: &[String], element: &str) -> bool {
    set.iter().any(|s| s == element)
}

fn has_all(set: &[String], contains: &[String]) -> bool {
    contains.iter().all(|c| has(set, c))
}

/// `*` covers every resource and subresource; `*/sub` covers `sub` of every resource.
fn resource_covers_all(set: &[String], covers: &[String]) -> bool {
    if has(set, "*") || has_all(set, covers) {
        return true;
    }
    covers.iter().all(|path| {
        has(set, path)
            || path
                .split_once('/')
                .is_some_and(|(_, sub)| has(set, &format!("*/{sub}")))
    })
}

/// An exact URL, or a trailing-`*` prefix (Go's `strings.TrimRight(owner, "*")`).
fn non_resource_url_covers(owner: &str, sub: &str) -> bool {
    owner == sub || (owner.ends_with('*') && sub.starts_with(owner.trim_end_matches('*')))
}

fn non_resource_urls_cover_all(set: &[String], covers: &[String]) -> bool {
    covers
        .iter()
        .all(|path| set.iter().any(|owner| non_resource_url_covers(owner, path)))
}

/// validation.ruleCovers: whether `owner` covers `sub`, a rule from `breakdown_rule`.
fn rule_covers(owner: &PolicyRule, sub: &PolicyRule) -> bool {
    let verbs = has(&owner.verbs, "*") || has_all(&owner.verbs, &sub.verbs);
    let groups = has(&owner.api_groups, "*") || has_all(&owner.api_groups, &sub.api_groups);
    let resources = resource_covers_all(&owner.resources, &sub.resources);
    let urls = non_resource_urls_cover_all(&owner.non_resource_urls, &sub.non_resource_urls);
    let names = if sub.resource_names.is_empty() {
        owner.resource_names.is_empty()
    } else {
        owner.resource_names.is_empty() || has_all(&owner.resource_names, &sub.resource_names)
    };
    verbs && groups && resources && names && urls
}

/// validation.Covers: whether `owner` covers every permission of `servant`, and if not the
/// broken-down permissions it misses.
pub fn covers(owner: &[PolicyRule], servant: &[PolicyRule]) -> (bool, Vec<PolicyRule>) {
    let uncovered: Vec<PolicyRule> = servant
        .iter()
        .flat_map(breakdown_rule)
        .filter(|sub| !owner.iter().any(|o| rule_covers(o, sub)))
        .collect();
    (uncovered.is_empty(), uncovered)
}

/// validation.CompactRules: rules of one group, one resource and at most one resource name
/// that differ only in verbs are merged (verbs appended in order, as upstream does).
pub fn compact_rules(rules: Vec<PolicyRule>) -> Vec<PolicyRule> {
    let mut compacted = Vec::new();
    let mut simple: Vec<PolicyRule> = Vec::new();
    for rule in rules {
        let is_simple = rule.resource_names.len() <= 1
            && rule.non_resource_urls.is_empty()
            && rule.api_groups.len() == 1
            && rule.resources.len() == 1;
        if !is_simple {
            compacted.push(rule);
            continue;
        }
        match simple.iter_mut().find(|s| {
            s.api_groups == rule.api_groups
                && s.resources == rule.resources
                && s.resource_names == rule.resource_names
        }) {
            Some(existing) => existing.verbs.extend(rule.verbs),
            None => simple.push(rule),
        }
    }
    compacted.extend(simple);
    compacted
}

/// Go's `%q` of a string (strconv.Quote) for the characters names and rules contain.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%q` of a `[]string`: `["a" "b"]`.
fn go_quote_list(list: &[String]) -> String {
    let quoted: Vec<String> = list.iter().map(|s| go_quote(s)).collect();
    format!("[{}]", quoted.join(" "))
}

/// rbacv1helpers.CompactString: `{APIGroups:["apps"], Resources:["deployments"], Verbs:["get"]}`.
pub fn compact_string(rule: &PolicyRule) -> String {
    let fields = [
        ("APIGroups", &rule.api_groups),
        ("Resources", &rule.resources),
        ("NonResourceURLs", &rule.non_resource_urls),
        ("ResourceNames", &rule.resource_names),
        ("Verbs", &rule.verbs),
    ];
    let parts: Vec<String> = fields
        .iter()
        .filter(|(_, values)| !values.is_empty())
        .map(|(label, values)| format!("{label}:{}", go_quote_list(values)))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// utilerrors.Aggregate's text inside `%v` of a one-element `[]error`: `[e]`, or `[[e1, e2]]`.
fn resolution_errors(errors: &[RoleRefError]) -> String {
    let mut seen: Vec<String> = Vec::new();
    for message in errors.iter().map(RoleRefError::registry_message) {
        if !seen.contains(&message) {
            seen.push(message);
        }
    }
    match seen.as_slice() {
        [only] => format!("[{only}]"),
        many => format!("[[{}]]", many.join(", ")),
    }
}

/// validation.ConfirmNoEscalation: `Ok` if the rules the user holds in `namespace` (cluster
/// bindings only when empty) cover `rules`, else the message naming what they lack.
pub fn confirm_no_escalation(
    objs: &RbacObjects,
    user: &UserInfo,
    namespace: &str,
    rules: &[Value],
) -> Result<(), String> {
    let user = with_authenticated_group(user);
    let mut owner = Vec::new();
    let mut errors = Vec::new();
    let ns = Some(namespace).filter(|n| !n.is_empty());
    visit_rules_for(objs, &user, ns, &mut errors, &mut |_, rule| {
        owner.push(PolicyRule::from_json(rule));
        true
    });
    let servant: Vec<PolicyRule> = rules.iter().map(PolicyRule::from_json).collect();
    let (covered, missing) = covers(&owner, &servant);
    if covered {
        return Ok(());
    }
    let descriptions: BTreeSet<String> =
        compact_rules(missing).iter().map(compact_string).collect();
    let mut message = format!(
        "user {} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
        go_quote(&user.name),
        go_quote_list(&user.groups),
        descriptions.into_iter().collect::<Vec<_>>().join("\n")
    );
    if !errors.is_empty() {
        message.push_str(&format!(
            "; resolution errors: {}",
            resolution_errors(&errors)
        ));
    }
    Err(message)
}

/// `*` on everything: what setting an aggregationRule takes, as it can gather anything.
fn full_authority() -> Vec<Value> {
    vec![
        json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}),
        json!({"nonResourceURLs": ["*"], "verbs": ["*"]}),
    ]
}

/// A user's write of an RBAC object, as the policy-based storage sees it.
#[derive(Debug, Clone, Copy)]
pub struct RbacWrite<'a> {
    /// `roles`, `clusterroles`, `rolebindings` or `clusterrolebindings`.
    pub resource: &'a str,
    /// The request's (the URL's) namespace.
    pub namespace: Option<&'a str>,
    /// The name in the URL; none on create.
    pub request_name: Option<&'a str>,
    /// The object as it would be stored.
    pub object: &'a Value,
    /// The stored object an update or patch replaces; none on create (or an apply creating).
    pub old: Option<&'a Value>,
}

fn forbidden(resource: &str, name: &str, why: &str) -> ApiError {
    let qualified = format!("{resource}.{RBAC_GROUP}");
    let message = if name.is_empty() {
        format!("{qualified} is forbidden: {why}")
    } else {
        format!("{qualified} {} is forbidden: {why}", go_quote(name))
    };
    let mut error = ApiError::forbidden(message);
    error.details.group = RBAC_GROUP.to_string();
    error.details.kind = resource.to_string();
    error.details.name = name.to_string();
    error
}

/// Go's semantic equality on JSON: null, "", [] and {} are the same as absent.
fn semantic(value: &Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::Array(items) => {
            let items: Vec<Value> = items
                .iter()
                .map(|v| semantic(v).unwrap_or(Value::Null))
                .collect();
            (!items.is_empty()).then_some(Value::Array(items))
        }
        Value::Object(map) => {
            let map: serde_json::Map<String, Value> = map
                .iter()
                .filter_map(|(k, v)| semantic(v).map(|v| (k.clone(), v)))
                .collect();
            (!map.is_empty()).then_some(Value::Object(map))
        }
        other => Some(other.clone()),
    }
}

/// rbacregistry.IsOnlyMutatingGCFields: the update changes nothing but ownerReferences,
/// finalizers (and selfLink, managedFields), so the garbage collector may always make it.
fn only_gc_fields_change(object: &Value, old: Option<&Value>) -> bool {
    let Some(old) = old else {
        return false;
    };
    let mut copied = object.clone();
    let Some(map) = copied.as_object_mut() else {
        return false;
    };
    for key in ["apiVersion", "kind"] {
        map.remove(key);
    }
    let metadata = map
        .entry("metadata")
        .or_insert_with(|| json!({}))
        .as_object_mut();
    let Some(metadata) = metadata else {
        return false;
    };
    for key in ["ownerReferences", "finalizers", "selfLink", "managedFields"] {
        match old.get("metadata").and_then(|m| m.get(key)) {
            Some(value) => {
                metadata.insert(key.to_string(), value.clone());
            }
            None => {
                metadata.remove(key);
            }
        }
    }
    let mut old = old.clone();
    if let Some(map) = old.as_object_mut() {
        for key in ["apiVersion", "kind"] {
            map.remove(key);
        }
    }
    semantic(&copied) == semantic(&old)
}

fn has_aggregation_rule(role: &Value) -> bool {
    role.pointer("/aggregationRule/clusterRoleSelectors")
        .and_then(Value::as_array)
        .is_some_and(|s| !s.is_empty())
}

fn rules_of(object: &Value) -> Vec<Value> {
    object
        .get("rules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// The policy-based storages' decision on one write. `authorize` asks the server's
/// authorizer about the `escalate` and `bind` verbs (RoleEscalationAuthorized,
/// BindingAuthorized); owned permissions come from RBAC's rule resolver over `objs`.
/// The rules of an aggregated ClusterRole being written are checked as given; a bound
/// aggregated ClusterRole grants what the authorizer resolves for it.
pub fn check_write(
    objs: &RbacObjects,
    user: &UserInfo,
    write: &RbacWrite<'_>,
    authorize: &mut dyn FnMut(&RequestAttributes) -> bool,
) -> Result<(), ApiError> {
    // EscalationAllowed: the superuser group (also the API server's own loopback identity).
    if user.groups.iter().any(|g| g == SYSTEM_MASTERS) {
        return Ok(());
    }
    let name = str_at(write.object, &["metadata", "name"]);
    let namespace = write.namespace.unwrap_or_default();
    match write.resource {
        "roles" | "clusterroles" => {
            let escalate = RequestAttributes {
                verb: "escalate".into(),
                api_group: RBAC_GROUP.into(),
                resource: write.resource.into(),
                namespace: write.namespace.map(str::to_string),
                name: write.request_name.map(str::to_string),
                ..RequestAttributes::default()
            };
            if authorize(&escalate) || only_gc_fields_change(write.object, write.old) {
                return Ok(());
            }
            confirm_no_escalation(objs, user, namespace, &rules_of(write.object))
                .map_err(|why| forbidden(write.resource, name, &why))?;
            let aggregates =
                has_aggregation_rule(write.object) || write.old.is_some_and(has_aggregation_rule);
            if write.resource == "clusterroles" && aggregates {
                confirm_no_escalation(objs, user, "", &full_authority()).map_err(|_| {
                    forbidden(
                        write.resource,
                        name,
                        "must have cluster-admin privileges to use the aggregationRule",
                    )
                })?;
            }
            Ok(())
        }
        "rolebindings" | "clusterrolebindings" => {
            if only_gc_fields_change(write.object, write.old) {
                return Ok(());
            }
            let kind = str_at(write.object, &["roleRef", "kind"]);
            let role = str_at(write.object, &["roleRef", "name"]);
            let role_resource = match kind {
                "ClusterRole" => Some("clusterroles"),
                "Role" => Some("roles"),
                _ => None,
            };
            if let Some(role_resource) = role_resource {
                let bind = RequestAttributes {
                    verb: "bind".into(),
                    api_group: str_at(write.object, &["roleRef", "apiGroup"]).into(),
                    resource: role_resource.into(),
                    namespace: Some(namespace.to_string()).filter(|n| !n.is_empty()),
                    name: Some(role.to_string()),
                    ..RequestAttributes::default()
                };
                if authorize(&bind) {
                    return Ok(());
                }
            }
            let rules = match role_reference_rules(objs, write.object, namespace) {
                Ok((_, rules)) => rules,
                // GetRoleReferenceRules' errors are returned as they are: the role getter's
                // NotFound, its BadRequest for a Role outside a namespace, or (not a Status)
                // a 500 for an unknown kind.
                Err(RoleRefError::NotFound { resource, name }) => {
                    return Err(ApiError::not_found(
                        RBAC_GROUP,
                        &format!("{resource}s"),
                        &name,
                    ));
                }
                Err(RoleRefError::Unsupported(_)) if kind == "Role" => {
                    return Err(ApiError::bad_request("Namespace parameter required."));
                }
                Err(e) => return Err(ApiError::internal(e.registry_message())),
            };
            confirm_no_escalation(objs, user, namespace, &rules)
                .map_err(|why| forbidden(write.resource, name, &why))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rbac::{authorize, default_cluster_role_bindings, default_cluster_roles};

    fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
        json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
    }

    fn parsed(rules: &[Value]) -> Vec<PolicyRule> {
        rules.iter().map(PolicyRule::from_json).collect()
    }

    fn subject(name: &str) -> Value {
        json!([{"apiGroup": RBAC_GROUP, "kind": "User", "name": name}])
    }

    fn rb(ns: &str, name: &str, kind: &str, role: &str, subjects: Value) -> Value {
        json!({"metadata": {"name": name, "namespace": ns},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": kind, "name": role}, "subjects": subjects})
    }

    fn crb(name: &str, role: &str, subjects: Value) -> Value {
        json!({"metadata": {"name": name},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role}, "subjects": subjects})
    }

    /// Bootstrap policy; ann is `admin` in team-a; binder may bind cluster-admin; esc may
    /// escalate roles in team-a.
    fn world() -> RbacObjects {
        let mut cluster_roles = default_cluster_roles();
        cluster_roles.push(json!({"metadata": {"name": "binder"}, "rules": [
            {"apiGroups": [RBAC_GROUP], "resources": ["clusterroles"], "verbs": ["bind"], "resourceNames": ["cluster-admin"]},
            {"apiGroups": [RBAC_GROUP], "resources": ["rolebindings", "clusterrolebindings"], "verbs": ["create"]},
        ]}));
        cluster_roles.push(json!({"metadata": {"name": "escalator"}, "rules": [
            {"apiGroups": [RBAC_GROUP], "resources": ["roles"], "verbs": ["create", "escalate"]},
        ]}));
        RbacObjects {
            cluster_roles,
            cluster_role_bindings: {
                let mut b = default_cluster_role_bindings();
                b.push(crb("binder", "binder", subject("binder")));
                b
            },
            role_bindings: vec![
                rb(
                    "team-a",
                    "ann-admin",
                    "ClusterRole",
                    "admin",
                    subject("ann"),
                ),
                rb("team-a", "esc", "ClusterRole", "escalator", subject("esc")),
                rb("team-a", "dangling", "ClusterRole", "gone", subject("ann")),
            ],
            ..RbacObjects::default()
        }
    }

    fn check(user: &UserInfo, write: RbacWrite<'_>) -> Result<(), ApiError> {
        let objs = world();
        let mut ask = |attrs: &RequestAttributes| authorize(&objs, user, attrs).allowed;
        check_write(&objs, user, &write, &mut ask)
    }

    fn create<'a>(resource: &'a str, ns: Option<&'a str>, object: &'a Value) -> RbacWrite<'a> {
        RbacWrite {
            resource,
            namespace: ns,
            request_name: None,
            object,
            old: None,
        }
    }

    #[test]
    fn covers_wildcards_subresources_names_and_urls() {
        let owner = parsed(&[
            rule(&["apps"], &["deployments", "*/scale"], &["get", "update"]),
            rule(&["*"], &["pods"], &["*"]),
            json!({"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": ["a", "b"]}),
            json!({"nonResourceURLs": ["/logs/*", "/metrics"], "verbs": ["get"]}),
        ]);
        let ok = |servant: Value| covers(&owner, &parsed(&[servant])).0;
        assert!(ok(rule(&["apps"], &["deployments"], &["get", "update"])));
        assert!(ok(rule(&["apps"], &["statefulsets/scale"], &["update"])));
        assert!(!ok(rule(&["apps"], &["statefulsets"], &["update"])));
        assert!(!ok(rule(&["apps"], &["deployments"], &["delete"])));
        assert!(ok(rule(&["", "batch"], &["pods"], &["delete", "get"])));
        assert!(
            !ok(rule(&[""], &["pods/exec"], &["create"])),
            "pods ≠ pods/exec"
        );
        assert!(
            ok(rule(&["*"], &["pods"], &["get"])),
            "`*` covers the literal `*`"
        );
        assert!(
            !ok(rule(&["*"], &["deployments"], &["get"])),
            "apps is not every group"
        );
        assert!(ok(
            json!({"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": ["b"]})
        ));
        assert!(
            !ok(rule(&[""], &["configmaps"], &["get"])),
            "all names ⊄ some"
        );
        assert!(ok(
            json!({"nonResourceURLs": ["/logs/kube", "/metrics"], "verbs": ["get"]})
        ));
        assert!(!ok(
            json!({"nonResourceURLs": ["/metricsx"], "verbs": ["get"]})
        ));
        assert!(!ok(
            json!({"nonResourceURLs": ["/metrics"], "verbs": ["post"]})
        ));
        let star = parsed(&[rule(&["*"], &["*"], &["*"])]);
        assert!(covers(&star, &parsed(&[rule(&["x"], &["y/z"], &["w"])])).0);
        assert!(
            !covers(
                &star,
                &parsed(&[json!({"nonResourceURLs": ["/x"], "verbs": ["get"]})])
            )
            .0,
            "resource `*` does not cover URLs"
        );
    }

    #[test]
    fn missing_rights_are_compacted_and_quoted_like_upstream() {
        let (ok, missing) = covers(
            &[],
            &parsed(&[
                rule(&["apps"], &["deployments"], &["get", "list"]),
                json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["a", "b"]}),
                json!({"nonResourceURLs": ["/healthz"], "verbs": ["get"]}),
            ]),
        );
        assert!(!ok);
        let mut shown: Vec<String> = compact_rules(missing).iter().map(compact_string).collect();
        shown.sort();
        assert_eq!(
            shown,
            [
                r#"{APIGroups:[""], Resources:["secrets"], ResourceNames:["a"], Verbs:["get"]}"#,
                r#"{APIGroups:[""], Resources:["secrets"], ResourceNames:["b"], Verbs:["get"]}"#,
                r#"{APIGroups:["apps"], Resources:["deployments"], Verbs:["get" "list"]}"#,
                r#"{NonResourceURLs:["/healthz"], Verbs:["get"]}"#,
            ]
        );
    }

    #[test]
    fn a_namespace_admin_cannot_bind_cluster_admin_but_can_bind_edit_and_view() {
        let ann = UserInfo::new("ann", &["team-a-admins"]);
        let to_root = rb(
            "team-a",
            "root",
            "ClusterRole",
            "cluster-admin",
            subject("ann"),
        );
        let error = check(&ann, create("rolebindings", Some("team-a"), &to_root)).unwrap_err();
        assert_eq!((error.code, error.reason), (403, "Forbidden"));
        assert_eq!(
            error.message,
            "rolebindings.rbac.authorization.k8s.io \"root\" is forbidden: user \"ann\" \
             (groups=[\"team-a-admins\" \"system:authenticated\"]) is attempting to grant RBAC \
             permissions not currently held:\n\
             {APIGroups:[\"*\"], Resources:[\"*\"], Verbs:[\"*\"]}\n\
             {NonResourceURLs:[\"*\"], Verbs:[\"*\"]}; resolution errors: \
             [clusterroles.rbac.authorization.k8s.io \"gone\" not found]"
        );
        assert_eq!(error.details.kind, "rolebindings");
        assert_eq!(error.details.name, "root");
        for role in ["admin", "edit", "view"] {
            let binding = rb("team-a", "ok", "ClusterRole", role, subject("bob"));
            assert_eq!(
                check(&ann, create("rolebindings", Some("team-a"), &binding)),
                Ok(()),
                "{role}"
            );
        }
        // Not in another namespace, and not cluster-wide.
        let elsewhere = rb("team-b", "v", "ClusterRole", "view", subject("bob"));
        assert_eq!(
            check(&ann, create("rolebindings", Some("team-b"), &elsewhere))
                .unwrap_err()
                .code,
            403
        );
        let cluster_view = crb("v", "view", subject("bob"));
        assert_eq!(
            check(&ann, create("clusterrolebindings", None, &cluster_view))
                .unwrap_err()
                .code,
            403
        );
        // A role that does not exist: the role getter's NotFound.
        let missing = rb("team-a", "m", "ClusterRole", "nope", subject("bob"));
        let error = check(&ann, create("rolebindings", Some("team-a"), &missing)).unwrap_err();
        assert_eq!(error.code, 404);
        assert_eq!(
            error.message,
            "clusterroles.rbac.authorization.k8s.io \"nope\" not found"
        );
    }

    #[test]
    fn bind_on_a_named_clusterrole_allows_binding_it_only() {
        let binder = UserInfo::new("binder", &[]);
        let root_rb = rb("team-a", "r", "ClusterRole", "cluster-admin", subject("x"));
        let root_crb = crb("r", "cluster-admin", subject("x"));
        assert_eq!(
            check(&binder, create("rolebindings", Some("team-a"), &root_rb)),
            Ok(())
        );
        assert_eq!(
            check(&binder, create("clusterrolebindings", None, &root_crb)),
            Ok(())
        );
        let admin = crb("a", "admin", subject("x"));
        assert_eq!(
            check(&binder, create("clusterrolebindings", None, &admin))
                .unwrap_err()
                .code,
            403,
            "resourceNames is honoured"
        );
    }

    #[test]
    fn roles_need_held_verbs_or_escalate_and_aggregation_needs_everything() {
        let ann = UserInfo::new("ann", &[]);
        let held = json!({"metadata": {"name": "r", "namespace": "team-a"},
            "rules": [rule(&["apps"], &["deployments"], &["get", "update"])]});
        assert_eq!(check(&ann, create("roles", Some("team-a"), &held)), Ok(()));
        let quota = json!({"metadata": {"name": "q", "namespace": "team-a"},
            "rules": [rule(&[""], &["resourcequotas"], &["get", "update", "delete"])]});
        let error = check(&ann, create("roles", Some("team-a"), &quota)).unwrap_err();
        assert_eq!(error.code, 403);
        assert!(
            error
                .message
                .starts_with("roles.rbac.authorization.k8s.io \"q\" is forbidden: user \"ann\""),
            "{}",
            error.message
        );
        assert!(
            error
                .message
                .contains("\n{APIGroups:[\"\"], Resources:[\"resourcequotas\"], Verbs:[\"update\" \"delete\"]}"),
            "{}",
            error.message
        );
        // `escalate` lifts the check for Roles in that namespace.
        let esc = UserInfo::new("esc", &[]);
        assert_eq!(check(&esc, create("roles", Some("team-a"), &quota)), Ok(()));
        // An update touching only GC fields of a role ann could not write is allowed.
        let mut gc_only = quota.clone();
        gc_only["metadata"]["finalizers"] = json!(["example.com/keep"]);
        let update = RbacWrite {
            resource: "roles",
            namespace: Some("team-a"),
            request_name: Some("q"),
            object: &gc_only,
            old: Some(&quota),
        };
        assert_eq!(check(&ann, update), Ok(()));
        // Setting an aggregationRule takes `*` on everything, whatever the rules.
        let cluster_admin = UserInfo::new("boss", &[]);
        let mut objs = world();
        objs.cluster_role_bindings
            .push(crb("boss", "admin", subject("boss")));
        let aggregated = json!({"metadata": {"name": "agg"}, "rules": [],
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"a": "b"}}]}});
        let write = create("clusterroles", None, &aggregated);
        let mut ask = |attrs: &RequestAttributes| authorize(&objs, &cluster_admin, attrs).allowed;
        let error = check_write(&objs, &cluster_admin, &write, &mut ask).unwrap_err();
        assert_eq!(
            error.message,
            "clusterroles.rbac.authorization.k8s.io \"agg\" is forbidden: must have cluster-admin privileges to use the aggregationRule"
        );
    }

    #[test]
    fn system_masters_may_write_anything() {
        let root = UserInfo::new("root", &[SYSTEM_MASTERS]);
        let binding = crb("r", "cluster-admin", subject("x"));
        assert_eq!(
            check(&root, create("clusterrolebindings", None, &binding)),
            Ok(())
        );
        let role = json!({"metadata": {"name": "all"}, "rules": [rule(&["*"], &["*"], &["*"])],
            "aggregationRule": {"clusterRoleSelectors": [{}]}});
        assert_eq!(check(&root, create("clusterroles", None, &role)), Ok(()));
        let missing = rb("team-a", "m", "ClusterRole", "nope", subject("bob"));
        assert_eq!(
            check(&root, create("rolebindings", Some("team-a"), &missing)),
            Ok(())
        );
    }

    #[test]
    fn go_quoting() {
        assert_eq!(go_quote("a\"b\\c\n\u{1}"), r#""a\"b\\c\n\x01""#);
        assert_eq!(go_quote_list(&[]), "[]");
        assert_eq!(go_quote_list(&one("x")), r#"["x"]"#);
    }
}
