//! API errors. Every failure the fake answers is a `metav1.Status` carrying the `reason`,
//! `code` and `details` a real kube-apiserver sends, because clients (kube-rs, kubectl, kaas)
//! branch on them: 409 AlreadyExists vs Conflict, 410 Expired, 422 Invalid with causes.

use serde_json::{Value, json};

/// One field-level cause of an Invalid or Conflict error.
#[derive(Clone, Debug, PartialEq)]
pub struct Cause {
    pub reason: String,
    pub message: String,
    pub field: String,
}

/// What a Status' `details` say: the object concerned, field causes, retry hint.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ErrorDetails {
    pub group: String,
    pub kind: String,
    pub name: String,
    pub causes: Vec<Cause>,
    /// Seconds for `Retry-After` and `details.retryAfterSeconds` (429, some 5xx).
    pub retry_after: Option<u64>,
}

/// An error as the API server reports it. The details are boxed so `Result<_, ApiError>`
/// stays small on the hot path.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Box<ErrorDetails>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

/// "configmaps" or "clusters.k3k.io", as Kubernetes names a resource in messages.
pub fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

impl ApiError {
    fn plain(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: Box::default(),
        }
    }

    fn about(mut self, group: &str, kind: &str, name: &str) -> Self {
        self.details.group = group.to_string();
        self.details.kind = kind.to_string();
        self.details.name = name.to_string();
        self
    }

    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        let message = format!("{} \"{name}\" not found", qualified(group, resource));
        Self::plain(404, "NotFound", message).about(group, resource, name)
    }

    /// A path that names no served resource (wrong group, version, scope or subresource).
    pub fn path_not_found() -> Self {
        Self::plain(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        let message = format!("{} \"{name}\" already exists", qualified(group, resource));
        Self::plain(409, "AlreadyExists", message).about(group, resource, name)
    }

    /// The optimistic-concurrency failure (stale resourceVersion or uid precondition).
    pub fn conflict(group: &str, resource: &str, name: &str, why: &str) -> Self {
        let message = format!(
            "Operation cannot be fulfilled on {} \"{name}\": {why}",
            qualified(group, resource)
        );
        Self::plain(409, "Conflict", message).about(group, resource, name)
    }

    pub fn stale_resource_version(group: &str, resource: &str, name: &str) -> Self {
        Self::conflict(
            group,
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 with one cause per field, message formatted like apimachinery's `NewInvalid`.
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        let parts: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let detail = match parts.len() {
            0 => String::new(),
            1 => format!(": {}", parts[0]),
            _ => format!(": [{}]", parts.join(", ")),
        };
        let message = format!("{kind} \"{name}\" is invalid{detail}");
        let mut error = Self::plain(422, "Invalid", message).about(group, kind, name);
        error.details.causes = causes;
        error
    }

    pub fn invalid_field(group: &str, kind: &str, name: &str, field: &str, message: &str) -> Self {
        Self::invalid(
            group,
            kind,
            name,
            vec![Cause {
                reason: "FieldValueInvalid".into(),
                message: message.to_string(),
                field: field.to_string(),
            }],
        )
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::plain(400, "BadRequest", message)
    }

    pub fn unauthorized() -> Self {
        Self::plain(401, "Unauthorized", "Unauthorized")
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::plain(403, "Forbidden", message)
    }

    /// A namespace being deleted refuses new content, with the reason kube-apiserver uses.
    pub fn namespace_terminating(group: &str, resource: &str, name: &str, namespace: &str) -> Self {
        let message = format!(
            "{} \"{name}\" is forbidden: unable to create new content in namespace {namespace} because it is being terminated",
            qualified(group, resource)
        );
        Self::plain(403, "Forbidden", message).about(group, resource, name)
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::plain(405, "MethodNotAllowed", message)
    }

    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Self::plain(406, "NotAcceptable", message)
    }

    /// 415 for a body format the endpoint does not accept (protobuf, CBOR, or a patch type
    /// the kind does not support); `accepted` lists what would work.
    pub fn unsupported_media_type(content_type: &str, accepted: &str) -> Self {
        Self::plain(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {accepted} (got {content_type})"
            ),
        )
    }

    /// 410: a watch or list asked for history the server no longer keeps.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::plain(410, "Expired", message)
    }

    pub fn too_many_requests(retry_after: u64) -> Self {
        let mut error = Self::plain(
            429,
            "TooManyRequests",
            "Too many requests, please try again later.",
        );
        error.details.retry_after = Some(retry_after);
        error
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::plain(500, "InternalError", message)
    }

    /// An admission plugin's plain error, as kube-apiserver answers it: 500, the plugin's
    /// message alone, no reason (PodTolerationRestriction refuses so, not with a 403).
    pub fn admission(message: impl Into<String>) -> Self {
        Self::plain(500, "", message)
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        Self::plain(504, "Timeout", message)
    }

    /// The `metav1.Status` body.
    pub fn to_status(&self) -> Value {
        let mut rendered = serde_json::Map::new();
        if !self.details.name.is_empty() {
            rendered.insert("name".into(), json!(self.details.name));
        }
        if !self.details.group.is_empty() {
            rendered.insert("group".into(), json!(self.details.group));
        }
        if !self.details.kind.is_empty() {
            rendered.insert("kind".into(), json!(self.details.kind));
        }
        if !self.details.causes.is_empty() {
            let causes: Vec<Value> = self
                .details
                .causes
                .iter()
                .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                .collect();
            rendered.insert("causes".into(), Value::Array(causes));
        }
        if let Some(seconds) = self.details.retry_after {
            rendered.insert("retryAfterSeconds".into(), json!(seconds));
        }
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if self.reason.is_empty() {
            status.as_object_mut().map(|s| s.remove("reason"));
        }
        if !rendered.is_empty() {
            status["details"] = Value::Object(rendered);
        }
        status
    }
}
