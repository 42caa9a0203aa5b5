//! schema: what apiextensions-apiserver does to a custom resource on write, against its CRD
//! version's structural `openAPIV3Schema` — structural defaulting, pruning of unknown fields,
//! and OpenAPI validation with Kubernetes-shaped field errors.
//!
//! Order mirrors the real server: defaults (after dropping non-nullable nulls), pruning, then
//! validation (apiextensions-apiserver/pkg/apiserver/schema/{defaulting,pruning} and
//! pkg/apiserver/validation). Root `apiVersion`/`kind`/`metadata` are left to the server.
//! CEL (`x-kubernetes-validations`) cannot be evaluated here; the few rule shapes kubebuilder
//! CRDs use most (`self >= 1`, `size(self) <= n`, `self == oldSelf`, and the
//! `[has(self.a), …].filter(x, x).size() <= n` exclusivity idiom) are interpreted and any
//! other rule is skipped.

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted field path, `[i]` for list indexes, e.g. `spec.persistence.type`.
    pub path: String,
    /// The field.Error body, e.g. `Required value` or `Unsupported value: "foo": supported
    /// values: "shared", "virtual", "hcp"`.
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// The `openAPIV3Schema` of `version` in a CustomResourceDefinition object.
pub fn crd_version_schema<'a>(crd: &'a Value, version: &str) -> Option<&'a Value> {
    crd.get("spec")?
        .get("versions")?
        .as_array()?
        .iter()
        .find(|v| v.get("name").and_then(Value::as_str) == Some(version))?
        .get("schema")?
        .get("openAPIV3Schema")
}

/// Create: default, prune and validate `obj` in place. Ok carries the pruned field paths
/// (the real server drops them silently, or warns `unknown field "spec.foo"`).
pub fn validate_and_default(
    schema: &Value,
    obj: &mut Value,
) -> Result<Vec<String>, Vec<FieldError>> {
    run(schema, obj, None)
}

/// Update: as [`validate_and_default`], and transition rules (`self == oldSelf`) are checked
/// against `old` wherever the field exists in both.
pub fn validate_and_default_update(
    schema: &Value,
    obj: &mut Value,
    old: &Value,
) -> Result<Vec<String>, Vec<FieldError>> {
    run(schema, obj, Some(old))
}

fn run(
    schema: &Value,
    obj: &mut Value,
    old: Option<&Value>,
) -> Result<Vec<String>, Vec<FieldError>> {
    apply_defaults(obj, schema);
    let mut pruned = Vec::new();
    prune(obj, schema, true, "", &mut pruned);
    let mut errors = Vec::new();
    validate(obj, schema, "", old, true, &mut errors);
    // Deterministic order whatever serde_json's map order (preserve_order may be enabled).
    pruned.sort();
    errors.sort_by(|a, b| a.path.cmp(&b.path));
    if errors.is_empty() {
        Ok(pruned)
    } else {
        Err(errors)
    }
}

fn flag(s: &Value, key: &str) -> bool {
    s.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn properties(s: &Value) -> Option<&Map<String, Value>> {
    s.get("properties").and_then(Value::as_object)
}

/// additionalProperties when it is a schema (not a bool).
fn additional_schema(s: &Value) -> Option<&Value> {
    s.get("additionalProperties").filter(|a| a.is_object())
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

// --- defaulting --------------------------------------------------------------------------

/// structuraldefaulting.Default (+ PruneNonNullableNullsWithoutDefaults): a property that is
/// absent, or null while not nullable, gets its default; a non-nullable null without default
/// is dropped. Defaults apply only where the parent object exists, then recurse into it.
fn apply_defaults(x: &mut Value, s: &Value) {
    match x {
        Value::Object(map) => {
            if let Some(props) = properties(s) {
                for (k, prop) in props {
                    let is_bad_null =
                        map.get(k).is_some_and(|v| v.is_null()) && !flag(prop, "nullable");
                    if map.contains_key(k) && !is_bad_null {
                        continue;
                    }
                    match prop.get("default") {
                        Some(d) => {
                            map.insert(k.clone(), d.clone());
                        }
                        None if is_bad_null => {
                            map.remove(k);
                        }
                        None => {}
                    }
                }
            }
            let extra = additional_schema(s);
            for (k, v) in map.iter_mut() {
                if let Some(prop) = properties(s).and_then(|p| p.get(k)) {
                    apply_defaults(v, prop);
                } else if let Some(ap) = extra {
                    apply_defaults(v, ap);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = s.get("items") {
                for v in items {
                    apply_defaults(v, item_schema);
                }
            }
        }
        _ => {}
    }
}

// --- pruning -----------------------------------------------------------------------------

/// structuralpruning.Prune: drop object fields the schema does not specify, unless the node
/// has `x-kubernetes-preserve-unknown-fields` (or `additionalProperties: true`). At the
/// resource root and in `x-kubernetes-embedded-resource` objects, apiVersion/kind/metadata
/// are kept (ObjectMeta is the server's business).
fn prune(x: &mut Value, s: &Value, is_resource_root: bool, path: &str, pruned: &mut Vec<String>) {
    match x {
        Value::Object(map) => {
            let embedded = is_resource_root || flag(s, "x-kubernetes-embedded-resource");
            let preserve = flag(s, "x-kubernetes-preserve-unknown-fields")
                || s.get("additionalProperties") == Some(&Value::Bool(true));
            let props = properties(s);
            let extra = additional_schema(s);
            let mut drop = Vec::new();
            for (k, v) in map.iter_mut() {
                if embedded && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                if let Some(prop) = props.and_then(|p| p.get(k)) {
                    prune(v, prop, false, &child(path, k), pruned);
                } else if let Some(ap) = extra {
                    prune(v, ap, false, &child(path, k), pruned);
                } else if !preserve {
                    drop.push(k.clone());
                }
            }
            for k in drop {
                map.remove(&k);
                pruned.push(child(path, &k));
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = s.get("items") {
                for (i, v) in items.iter_mut().enumerate() {
                    prune(v, item_schema, false, &format!("{path}[{i}]"), pruned);
                }
            }
        }
        _ => {}
    }
}

// --- validation --------------------------------------------------------------------------

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_matches(want: &str, v: &Value) -> bool {
    match (want, v) {
        ("integer", Value::Number(n)) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        ("number", Value::Number(_)) => true,
        _ => want == json_type(v),
    }
}

/// How field.Error prints a value: strings quoted, numbers and bools bare.
fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Null => "null".into(),
        Value::Bool(_) | Value::Number(_) => v.to_string(),
        other => format!("{:?}", json_type(other)),
    }
}

fn num(v: &Value) -> String {
    // Go prints float64 bounds with %v: 1 not 1.0.
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        Some(f) => f.to_string(),
        None => v.to_string(),
    }
}

struct Ctx<'e> {
    errors: &'e mut Vec<FieldError>,
}

impl Ctx<'_> {
    fn push(&mut self, path: &str, message: String) {
        let path = if path.is_empty() {
            "<root>".to_string()
        } else {
            path.to_string()
        };
        self.errors.push(FieldError { path, message });
    }
    fn invalid(&mut self, path: &str, value: &Value, detail: &str) {
        self.push(path, format!("Invalid value: {}: {detail}", show(value)));
    }
}

fn validate(
    x: &Value,
    s: &Value,
    path: &str,
    old: Option<&Value>,
    root: bool,
    errors: &mut Vec<FieldError>,
) {
    let mut ctx = Ctx { errors };
    validate_node(x, s, path, old, root, &mut ctx);
}

fn validate_node(x: &Value, s: &Value, path: &str, old: Option<&Value>, root: bool, ctx: &mut Ctx) {
    let body = if path.is_empty() {
        "body".to_string()
    } else {
        format!("{path} in body")
    };
    let type_error = |ctx: &mut Ctx, want: &str| {
        let got = json_type(x);
        ctx.push(
            path,
            format!("Invalid value: \"{got}\": {body} must be of type {want}: \"{got}\""),
        );
    };
    if x.is_null() {
        if !flag(s, "nullable")
            && let Some(t) = s.get("type").and_then(Value::as_str)
        {
            type_error(ctx, t);
        }
        return;
    }
    if flag(s, "x-kubernetes-int-or-string") {
        if !matches!(json_type(x), "integer" | "string") {
            type_error(ctx, "integer,string");
            return;
        }
    } else if let Some(t) = s.get("type").and_then(Value::as_str)
        && !type_matches(t, x)
    {
        type_error(ctx, t);
        return;
    }

    if let Some(allowed) = s.get("enum").and_then(Value::as_array)
        && !allowed.contains(x)
    {
        let list: Vec<String> = allowed.iter().map(show).collect();
        let (v, list) = (show(x), list.join(", "));
        ctx.push(
            path,
            format!("Unsupported value: {v}: supported values: {list}"),
        );
    }

    match x {
        Value::Number(n) => {
            let f = n.as_f64().unwrap_or(0.0);
            let bound = |k: &str| s.get(k).filter(|b| b.is_number());
            if let Some(min) = bound("minimum") {
                let excl = flag(s, "exclusiveMinimum");
                let lo = min.as_f64().unwrap_or(f64::MIN);
                if f < lo || (excl && f == lo) {
                    let rel = if excl {
                        "greater than"
                    } else {
                        "greater than or equal to"
                    };
                    ctx.invalid(path, x, &format!("{body} should be {rel} {}", num(min)));
                }
            }
            if let Some(max) = bound("maximum") {
                let excl = flag(s, "exclusiveMaximum");
                let hi = max.as_f64().unwrap_or(f64::MAX);
                if f > hi || (excl && f == hi) {
                    let rel = if excl {
                        "less than"
                    } else {
                        "less than or equal to"
                    };
                    ctx.invalid(path, x, &format!("{body} should be {rel} {}", num(max)));
                }
            }
            if let Some(m) = s.get("multipleOf").and_then(Value::as_f64)
                && m > 0.0
                && (f / m).fract() != 0.0
            {
                let m = num(&Value::from(m));
                ctx.invalid(path, x, &format!("{body} should be a multiple of {m}"));
            }
        }
        Value::String(text) => validate_string(text, x, s, path, &body, ctx),
        Value::Array(items) => {
            let len = items.len() as u64;
            if let Some(min) = s
                .get("minItems")
                .and_then(Value::as_u64)
                .filter(|m| len < *m)
            {
                ctx.invalid(path, x, &format!("{body} should have at least {min} items"));
            }
            if let Some(max) = s
                .get("maxItems")
                .and_then(Value::as_u64)
                .filter(|m| len > *m)
            {
                ctx.push(
                    path,
                    format!("Too many: {len}: must have at most {max} items"),
                );
            }
            if let Some(item_schema) = s.get("items") {
                for (i, v) in items.iter().enumerate() {
                    validate_node(v, item_schema, &format!("{path}[{i}]"), None, false, ctx);
                }
            }
        }
        Value::Object(map) => {
            let len = map.len() as u64;
            if let Some(min) = s
                .get("minProperties")
                .and_then(Value::as_u64)
                .filter(|m| len < *m)
            {
                ctx.invalid(
                    path,
                    x,
                    &format!("{body} should have at least {min} properties"),
                );
            }
            if let Some(max) = s
                .get("maxProperties")
                .and_then(Value::as_u64)
                .filter(|m| len > *m)
            {
                ctx.push(
                    path,
                    format!("Too many: {len}: must have at most {max} items"),
                );
            }
            if let Some(required) = s.get("required").and_then(Value::as_array) {
                for r in required.iter().filter_map(Value::as_str) {
                    if root && matches!(r, "apiVersion" | "kind" | "metadata") {
                        continue;
                    }
                    if !map.contains_key(r) {
                        ctx.push(&child(path, r), "Required value".into());
                    }
                }
            }
            if flag(s, "x-kubernetes-embedded-resource") {
                for k in ["apiVersion", "kind"] {
                    if map.get(k).and_then(Value::as_str).is_none_or(str::is_empty) {
                        ctx.push(&child(path, k), "Required value: must not be empty".into());
                    }
                }
            }
            for (k, v) in map {
                if (root || flag(s, "x-kubernetes-embedded-resource"))
                    && matches!(k.as_str(), "apiVersion" | "kind" | "metadata")
                {
                    continue;
                }
                let old_v = old.and_then(|o| o.get(k));
                if let Some(prop) = properties(s).and_then(|p| p.get(k)) {
                    validate_node(v, prop, &child(path, k), old_v, false, ctx);
                } else if let Some(ap) = additional_schema(s) {
                    validate_node(v, ap, &child(path, k), old_v, false, ctx);
                }
            }
        }
        Value::Bool(_) | Value::Null => {}
    }

    validate_combinators(x, s, path, &body, ctx);
    if let Some(rules) = s.get("x-kubernetes-validations").and_then(Value::as_array) {
        for rule in rules {
            check_cel_rule(rule, x, old, path, ctx);
        }
    }
}

fn validate_string(text: &str, x: &Value, s: &Value, path: &str, body: &str, ctx: &mut Ctx) {
    let chars = text.chars().count() as u64;
    if let Some(min) = s
        .get("minLength")
        .and_then(Value::as_u64)
        .filter(|m| chars < *m)
    {
        ctx.invalid(
            path,
            x,
            &format!("{body} should be at least {min} chars long"),
        );
    }
    if let Some(max) = s
        .get("maxLength")
        .and_then(Value::as_u64)
        .filter(|m| chars > *m)
    {
        ctx.push(path, format!("Too long: may not be more than {max} bytes"));
    }
    if let Some(p) = s.get("pattern").and_then(Value::as_str) {
        // A pattern that does not compile would have been rejected with the CRD; skip it.
        if regex::Regex::new(p).is_ok_and(|re| !re.is_match(text)) {
            ctx.invalid(path, x, &format!("{body} should match '{p}'"));
        }
    }
    if s.get("format").and_then(Value::as_str) == Some("date-time")
        && text.parse::<jiff::Timestamp>().is_err()
    {
        ctx.invalid(
            path,
            x,
            &format!("{body} must be of type date-time: {}", show(x)),
        );
    }
}

/// anyOf/allOf/oneOf/not: in structural schemas they only add value validations, so each
/// branch is checked against the same value and its errors kept private.
fn validate_combinators(x: &Value, s: &Value, path: &str, body: &str, ctx: &mut Ctx) {
    let branch_ok = |b: &Value| {
        let mut errs = Vec::new();
        validate_node(x, b, path, None, false, &mut Ctx { errors: &mut errs });
        errs.is_empty()
    };
    let branches = |k: &str| {
        s.get(k)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let any_of = branches("anyOf");
    if !any_of.is_empty() && !any_of.iter().any(branch_ok) {
        ctx.invalid(
            path,
            x,
            &format!("{body} must validate at least one schema (anyOf)"),
        );
    }
    let one_of = branches("oneOf");
    if !one_of.is_empty() && one_of.iter().filter(|b| branch_ok(b)).count() != 1 {
        ctx.invalid(
            path,
            x,
            &format!("{body} must validate one and only one schema (oneOf)"),
        );
    }
    for b in branches("allOf") {
        validate_node(x, &b, path, None, false, ctx);
    }
    if let Some(not) = s.get("not").filter(|n| n.is_object())
        && branch_ok(not)
    {
        ctx.invalid(
            path,
            x,
            &format!("{body} must not validate the schema (not)"),
        );
    }
}

// --- a sliver of CEL ---------------------------------------------------------------------

fn check_cel_rule(rule: &Value, x: &Value, old: Option<&Value>, path: &str, ctx: &mut Ctx) {
    let text = rule.get("rule").and_then(Value::as_str).unwrap_or("");
    // Rules outside the supported subset are skipped (treated as passing).
    if eval_cel(text.trim(), x, old).unwrap_or(true) {
        return;
    }
    let message = rule
        .get("message")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| format!("failed rule: {text}"));
    let shown = format!("{:?}", json_type(x));
    let body = match rule.get("reason").and_then(Value::as_str) {
        Some("FieldValueForbidden") => format!("Forbidden: {message}"),
        Some("FieldValueRequired") => format!("Required value: {message}"),
        Some("FieldValueDuplicate") => format!("Duplicate value: {shown}"),
        _ => format!("Invalid value: {shown}: {message}"),
    };
    ctx.push(path, body);
}

/// Some(result) for the supported rule shapes, None otherwise. A transition rule
/// (`self == oldSelf`) only applies when there is an old value.
fn eval_cel(rule: &str, x: &Value, old: Option<&Value>) -> Option<bool> {
    if rule == "self == oldSelf" || rule == "oldSelf == self" {
        return Some(old.is_none_or(|o| o == x));
    }
    // [has(self.a), has(self.b), ...].filter(x, x).size() <= n
    if let Some(rest) = rule.strip_prefix('[')
        && let Some((list, tail)) = rest.split_once(']')
    {
        let tail: String = tail.chars().filter(|c| !c.is_whitespace()).collect();
        let cmp = tail.strip_prefix(".filter(x,x).size()")?;
        let mut count = 0;
        for item in list.split(',') {
            let field = item.trim().strip_prefix("has(self.")?.strip_suffix(')')?;
            count += i32::from(x.get(field).is_some());
        }
        return compare(f64::from(count), cmp);
    }
    let compact: String = rule.chars().filter(|c| !c.is_whitespace()).collect();
    if let Some(cmp) = compact.strip_prefix("size(self)") {
        let size = match x {
            Value::String(s) => s.chars().count(),
            Value::Array(a) => a.len(),
            Value::Object(o) => o.len(),
            _ => return None,
        };
        return compare(size as f64, cmp);
    }
    compare(x.as_f64()?, compact.strip_prefix("self")?)
}

/// `<op><number>` with op one of >= <= == != > <.
type Op = fn(f64, f64) -> bool;

fn compare(lhs: f64, cmp: &str) -> Option<bool> {
    let ops: [(&str, Op); 6] = [
        (">=", |a, b| a >= b),
        ("<=", |a, b| a <= b),
        ("==", |a, b| a == b),
        ("!=", |a, b| a != b),
        (">", |a, b| a > b),
        ("<", |a, b| a < b),
    ];
    for (op, f) in ops {
        if let Some(n) = cmp.strip_prefix(op) {
            return n.parse::<f64>().ok().map(|rhs| f(lhs, rhs));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The k3k CRDs kept in this crate (`crds/`).
    fn crd(file: &str) -> Value {
        let path = format!("{}/{file}", crate::K3K_CRDS_DIR);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_yaml::from_str(&text).unwrap()
    }

    fn cluster_schema() -> Value {
        crd_version_schema(&crd("k3k.io_clusters.yaml"), "v1beta1")
            .unwrap()
            .clone()
    }

    fn policy_schema() -> Value {
        crd_version_schema(&crd("k3k.io_virtualclusterpolicies.yaml"), "v1beta1")
            .unwrap()
            .clone()
    }

    fn cluster(spec: Value) -> Value {
        json!({"apiVersion": "k3k.io/v1beta1", "kind": "Cluster",
               "metadata": {"name": "ws", "namespace": "kaas-ws-1", "labels": {"a": "b"}},
               "spec": spec})
    }

    fn errors_of(schema: &Value, mut obj: Value) -> Vec<String> {
        validate_and_default(schema, &mut obj)
            .unwrap_err()
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn valid_cluster_gets_defaults() {
        let s = cluster_schema();
        let mut c = cluster(json!({"version": "v1.33.1-k3s1"}));
        assert_eq!(validate_and_default(&s, &mut c), Ok(vec![]));
        let spec = &c["spec"];
        assert_eq!(spec["mode"], "shared");
        assert_eq!(spec["servers"], 1);
        assert_eq!(spec["agents"], 0);
        assert_eq!(spec["sync"]["configMaps"]["enabled"], true);
        assert!(
            spec.get("persistence").is_none(),
            "no default on persistence itself"
        );
        assert_eq!(
            c["status"]["phase"], "Unknown",
            "root status defaults to {{}}"
        );
        assert_eq!(c["metadata"]["labels"]["a"], "b", "metadata untouched");

        // Defaults land inside a persistence object that exists.
        let mut c = cluster(json!({"persistence": {}}));
        validate_and_default(&s, &mut c).unwrap();
        assert_eq!(
            c["spec"]["persistence"],
            json!({"type": "dynamic", "storageRequestSize": "2G"})
        );
        // No spec at all: spec defaults to {} and is then filled in.
        let mut c =
            json!({"apiVersion": "k3k.io/v1beta1", "kind": "Cluster", "metadata": {"name": "x"}});
        validate_and_default(&s, &mut c).unwrap();
        assert_eq!(c["spec"]["mode"], "shared");
        // Defaulting is idempotent (the real server also defaults on every read).
        let again = {
            let mut d = c.clone();
            validate_and_default(&s, &mut d).unwrap();
            d
        };
        assert_eq!(again, c);
    }

    #[test]
    fn kaas_desired_cluster_is_valid_and_kept() {
        let s = cluster_schema();
        let spec = json!({
            "mode": "shared", "servers": 1, "version": "v1.33.1-k3s1",
            "tlsSANs": ["203.0.113.7", "kaas.example.com"],
            "expose": {"nodePort": {"serverPort": 31443}},
            "persistence": {"type": "dynamic", "storageRequestSize": "10Gi"},
            "nodeSelector": {"hexabase.ai/node-pool": "ws-1"},
            "serverArgs": ["--kube-apiserver-arg=oidc-issuer-url=https://id.example.com"],
            "serverLimit": {"cpu": "2", "memory": 4294967296u64},
        });
        let mut c = cluster(spec.clone());
        assert_eq!(validate_and_default(&s, &mut c), Ok(vec![]));
        for (k, v) in spec.as_object().unwrap() {
            assert_eq!(&c["spec"][k], v, "{k} preserved");
        }
    }

    #[test]
    fn bad_mode_and_servers_rejected() {
        let s = cluster_schema();
        assert_eq!(
            errors_of(&s, cluster(json!({"mode": "foo"}))),
            vec![
                r#"spec.mode: Unsupported value: "foo": supported values: "shared", "virtual", "hcp""#
            ]
        );
        assert_eq!(
            errors_of(&s, cluster(json!({"servers": "x"}))),
            vec![
                r#"spec.servers: Invalid value: "string": spec.servers in body must be of type integer: "string""#
            ]
        );
        assert_eq!(
            errors_of(&s, cluster(json!({"servers": 0}))),
            vec![
                r#"spec.servers: Invalid value: "integer": cluster must have at least one server"#
            ]
        );
        assert_eq!(
            errors_of(&s, cluster(json!({"servers": 1.5}))),
            vec![
                r#"spec.servers: Invalid value: "number": spec.servers in body must be of type integer: "number""#
            ]
        );
        let errs = errors_of(
            &s,
            cluster(json!({"mode": "foo", "servers": "x", "tlsSANs": "a"})),
        );
        assert_eq!(errs.len(), 3, "all errors reported: {errs:?}");
    }

    #[test]
    fn unknown_fields_are_pruned_and_reported() {
        let s = cluster_schema();
        let mut c = cluster(
            json!({"bogus": 1, "expose": {"nodePort": {"serverPort": 1, "x": true}},
                                   "tlsSANs": ["a"], "nodeSelector": {"any": "label"}}),
        );
        c["extraRoot"] = json!("x");
        let pruned = validate_and_default(&s, &mut c).unwrap();
        assert_eq!(
            pruned,
            vec!["extraRoot", "spec.bogus", "spec.expose.nodePort.x"]
        );
        assert!(c.get("extraRoot").is_none() && c["spec"].get("bogus").is_none());
        assert_eq!(c["spec"]["expose"]["nodePort"], json!({"serverPort": 1}));
        assert_eq!(
            c["spec"]["nodeSelector"],
            json!({"any": "label"}),
            "additionalProperties kept"
        );
        assert_eq!(c["apiVersion"], "k3k.io/v1beta1");
    }

    #[test]
    fn cel_subset_exclusive_expose_and_immutable_mode() {
        let s = cluster_schema();
        assert_eq!(
            errors_of(
                &s,
                cluster(json!({"expose": {"nodePort": {}, "ingress": {}}}))
            ),
            vec![
                r#"spec.expose: Invalid value: "object": ingress, loadbalancer and nodePort are mutually exclusive; only one can be set"#
            ]
        );
        let mut old = cluster(json!({"mode": "shared"}));
        validate_and_default(&s, &mut old).unwrap();
        let mut new = cluster(json!({"mode": "virtual"}));
        let errs = validate_and_default_update(&s, &mut new, &old).unwrap_err();
        assert_eq!(
            errs,
            vec![FieldError {
                path: "spec.mode".into(),
                message: r#"Invalid value: "string": mode is immutable"#.into()
            }]
        );
        let mut same = cluster(json!({"mode": "shared", "servers": 3}));
        assert!(validate_and_default_update(&s, &mut same, &old).is_ok());
    }

    #[test]
    fn int_or_string_quantities_and_nested_required() {
        let s = cluster_schema();
        let mut ok = cluster(json!({"persistence": {"storageRequestSize": 5}}));
        validate_and_default(&s, &mut ok).unwrap();
        let errs = errors_of(
            &s,
            cluster(json!({"persistence": {"storageRequestSize": "lots"}})),
        );
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with(r#"spec.persistence.storageRequestSize: Invalid value: "lots": spec.persistence.storageRequestSize in body should match '^(\+|-)?"#), "{errs:?}");
        let errs = errors_of(
            &s,
            cluster(json!({"persistence": {"storageRequestSize": true}})),
        );
        assert!(
            errs[0].contains("must be of type integer,string"),
            "{errs:?}"
        );
        let mut c = cluster(json!({}));
        c["status"] = json!({"conditions": [{"type": "Ready", "status": "Maybe", "lastTransitionTime": "yesterday"}]});
        let errs = errors_of(&s, c);
        assert!(
            errs.contains(&"status.conditions[0].message: Required value".to_string()),
            "{errs:?}"
        );
        assert!(
            errs.contains(&"status.conditions[0].reason: Required value".to_string()),
            "{errs:?}"
        );
        assert!(errs.contains(&r#"status.conditions[0].status: Unsupported value: "Maybe": supported values: "True", "False", "Unknown""#.to_string()), "{errs:?}");
        assert!(
            errs.iter().any(|e| e.contains("must be of type date-time")),
            "{errs:?}"
        );
    }

    #[test]
    fn virtual_cluster_policy_with_quota_and_limit() {
        let s = policy_schema();
        let mut p = json!({"apiVersion": "k3k.io/v1beta1", "kind": "VirtualClusterPolicy",
        "metadata": {"name": "ws-1"},
        "spec": {
            "quota": {"hard": {"cpu": "4", "memory": "8Gi", "pods": 50, "requests.storage": "100Gi"}},
            "limit": {"limits": [{"type": "Container",
                "default": {"cpu": "500m", "memory": "512Mi"},
                "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
                "max": {"cpu": "2"}}]},
            "defaultNodeSelector": {"hexabase.ai/node-pool": "ws-1"},
            "podSecurityAdmissionLevel": "baseline",
        }});
        assert_eq!(validate_and_default(&s, &mut p), Ok(vec![]));
        assert_eq!(p["spec"]["allowedMode"], "shared");
        assert_eq!(p["spec"]["quota"]["hard"]["pods"], 50);
        assert_eq!(p["spec"]["limit"]["limits"][0]["default"]["cpu"], "500m");

        let errs = errors_of(
            &s,
            json!({"spec": {"limit": {}, "podSecurityAdmissionLevel": "open",
            "quota": {"hard": {"cpu": "four"}}}}),
        );
        assert!(
            errs.contains(&"spec.limit.limits: Required value".to_string()),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e
                    .starts_with(r#"spec.podSecurityAdmissionLevel: Unsupported value: "open""#)),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with(r#"spec.quota.hard.cpu: Invalid value: "four""#)),
            "{errs:?}"
        );
    }

    #[test]
    fn synthetic_keywords() {
        let s = json!({"type": "object", "properties": {
            "n": {"type": "integer", "minimum": 1, "maximum": 10, "exclusiveMaximum": true},
            "s": {"type": "string", "minLength": 2, "maxLength": 3, "pattern": "^[a-z]+$"},
            "l": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "string"}},
            "nul": {"type": "string", "nullable": true},
            "d": {"type": "string", "default": "dflt"},
            "gone": {"type": "string"},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                     "properties": {"known": {"type": "object", "properties": {"k": {"type": "string"}}}}},
            "parent": {"type": "object", "properties": {"child": {"type": "integer", "default": 7}}},
            "emb": {"type": "object", "x-kubernetes-embedded-resource": true,
                    "properties": {"spec": {"type": "object"}}},
        }});
        let mut ok = json!({"n": 9, "s": "ab", "l": ["x"], "nul": null, "d": null, "gone": null,
            "free": {"anything": {"deep": 1}, "known": {"k": "v", "drop": 1}},
            "emb": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "m"}, "spec": {}, "x": 1}});
        let pruned = validate_and_default(&s, &mut ok).unwrap();
        assert_eq!(pruned, vec!["emb.x", "free.known.drop"]);
        assert_eq!(ok["nul"], Value::Null, "nullable null kept");
        assert_eq!(ok["d"], "dflt", "non-nullable null gets its default");
        assert!(
            ok.get("gone").is_none(),
            "non-nullable null without default dropped"
        );
        assert!(ok.get("parent").is_none(), "no defaults without the parent");
        assert_eq!(ok["free"]["anything"], json!({"deep": 1}));
        assert_eq!(ok["emb"]["metadata"], json!({"name": "m"}));
        let mut with_parent = json!({"parent": {}});
        validate_and_default(&s, &mut with_parent).unwrap();
        assert_eq!(with_parent["parent"]["child"], 7);

        let errs = errors_of(
            &s,
            json!({"n": 10, "s": "ABCD", "l": [], "emb": {"kind": "X"}}),
        );
        assert_eq!(
            errs,
            vec![
                "emb.apiVersion: Required value: must not be empty",
                "l: Invalid value: \"array\": l in body should have at least 1 items",
                "n: Invalid value: 10: n in body should be less than 10",
                "s: Too long: may not be more than 3 bytes",
                "s: Invalid value: \"ABCD\": s in body should match '^[a-z]+$'",
            ]
        );
        let errs = errors_of(
            &s,
            json!({"n": 0, "s": "a", "l": ["a", "b", "c"], "free": 3}),
        );
        assert_eq!(
            errs,
            vec![
                "free: Invalid value: \"integer\": free in body must be of type object: \"integer\"",
                "l: Too many: 3: must have at most 2 items",
                "n: Invalid value: 0: n in body should be greater than or equal to 1",
                "s: Invalid value: \"a\": s in body should be at least 2 chars long",
            ]
        );
    }

    #[test]
    fn unsupported_cel_is_ignored_and_size_rules_work() {
        let s = json!({"type": "object", "properties": {
            "a": {"type": "string", "x-kubernetes-validations": [
                {"rule": "self.startsWith('x')", "message": "never evaluated"},
                {"rule": "size(self) <= 3", "message": "too big", "reason": "FieldValueForbidden"}]}}});
        let mut ok = json!({"a": "abc"});
        validate_and_default(&s, &mut ok).unwrap();
        assert_eq!(
            errors_of(&s, json!({"a": "abcd"})),
            vec!["a: Forbidden: too big"]
        );
    }
}
