//! Plug points for the policy modules written separately (`rbac`, `admission`, `schema`):
//! authorization, admission and custom-resource schema validation. The engine only talks to
//! these traits; `FakeHostOptions` picks the implementations. Until the real modules are
//! wired in, the stand-ins here allow everything, admit unchanged and validate nothing.

use std::sync::Arc;

use serde_json::Value;

/// The authenticated user of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub groups: Vec<String>,
}

impl UserInfo {
    pub fn is_master(&self) -> bool {
        self.groups.iter().any(|g| g == "system:masters")
    }
}

/// What a request does, in the terms RBAC rules use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestAttributes {
    pub verb: String,
    pub api_group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// Set for non-resource URLs such as `/version` or `/healthz`.
    pub non_resource_path: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: String,
}

/// The RBAC objects in the store at the time of the request.
#[derive(Clone, Debug, Default)]
pub struct RbacObjects {
    pub roles: Vec<Value>,
    pub cluster_roles: Vec<Value>,
    pub role_bindings: Vec<Value>,
    pub cluster_role_bindings: Vec<Value>,
}

/// Decides whether a (non-`system:masters`) user may make a request.
pub trait Authorizer: Send + Sync {
    fn authorize(&self, rbac: &RbacObjects, user: &UserInfo, attrs: &RequestAttributes)
    -> Decision;
}

/// Stand-in until `rbac` lands: everyone may do everything.
pub struct AllowAll;

impl Authorizer for AllowAll {
    fn authorize(&self, _: &RbacObjects, _: &UserInfo, _: &RequestAttributes) -> Decision {
        Decision {
            allowed: true,
            reason: "fakehost: no authorizer configured".into(),
        }
    }
}

/// A mutating/validating admission step for pods, given the pod's namespace object.
/// Returns the message of a 403 Forbidden when the pod is rejected.
pub trait PodAdmission: Send + Sync {
    fn admit_pod(&self, namespace: &Value, pod: &mut Value) -> Result<(), String>;
}

/// One field-level schema violation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path, e.g. `spec.servers`.
    pub path: String,
    pub message: String,
}

/// Validates (and defaults) a custom resource against its CRD's openAPIV3Schema.
pub trait SchemaValidator: Send + Sync {
    fn validate_and_default(
        &self,
        schema: &Value,
        object: &mut Value,
    ) -> Result<(), Vec<FieldError>>;
}

/// Stand-in until `schema` lands: accepts everything unchanged.
pub struct AcceptAll;

impl SchemaValidator for AcceptAll {
    fn validate_and_default(&self, _: &Value, _: &mut Value) -> Result<(), Vec<FieldError>> {
        Ok(())
    }
}

/// The policy implementations one fake host uses.
#[derive(Clone)]
pub struct Policies {
    pub authorizer: Arc<dyn Authorizer>,
    /// PodTolerationRestriction, when enabled.
    pub pod_admission: Option<Arc<dyn PodAdmission>>,
    pub validator: Arc<dyn SchemaValidator>,
}

impl Default for Policies {
    fn default() -> Self {
        Self {
            authorizer: Arc::new(AllowAll),
            pod_admission: None,
            validator: Arc::new(AcceptAll),
        }
    }
}
