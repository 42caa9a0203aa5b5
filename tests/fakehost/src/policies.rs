//! The real policy modules behind the engine's seams: RBAC (`rbac`) as the authorizer,
//! PodTolerationRestriction (`admission`) as pod admission and the CRD structural-schema
//! validator (`schema`). `FakeHost` uses these by default, so the fake is as strict as a
//! K3s host with `--authorization-mode=Node,RBAC` and the plugin enabled.

use serde_json::Value;

use crate::seams::{
    Authorizer, Decision, FieldError, PodAdmission, RbacObjects, RequestAttributes,
    SchemaValidator, UserInfo,
};
use crate::{admission, rbac, schema};

/// `rbac::authorize` over the store's Roles, ClusterRoles and bindings: the authorizer of
/// the host and of every virtual cluster.
pub struct RbacAuthorizer;

pub(crate) fn to_rbac_objects(objects: &RbacObjects) -> rbac::RbacObjects {
    rbac::RbacObjects {
        roles: objects.roles.clone(),
        cluster_roles: objects.cluster_roles.clone(),
        role_bindings: objects.role_bindings.clone(),
        cluster_role_bindings: objects.cluster_role_bindings.clone(),
    }
}

pub(crate) fn to_rbac_user(user: &UserInfo) -> rbac::UserInfo {
    rbac::UserInfo {
        name: user.name.clone(),
        groups: user.groups.clone(),
    }
}

fn to_rbac_attributes(attrs: &RequestAttributes) -> rbac::RequestAttributes {
    rbac::RequestAttributes {
        verb: attrs.verb.clone(),
        api_group: attrs.api_group.clone(),
        resource: attrs.resource.clone(),
        subresource: Some(attrs.subresource.clone()).filter(|s| !s.is_empty()),
        namespace: attrs.namespace.clone(),
        name: attrs.name.clone(),
        non_resource_path: attrs.non_resource_path.clone(),
    }
}

impl Authorizer for RbacAuthorizer {
    fn authorize(
        &self,
        objects: &RbacObjects,
        user: &UserInfo,
        attrs: &RequestAttributes,
    ) -> Decision {
        let decision = rbac::authorize(
            &to_rbac_objects(objects),
            &to_rbac_user(user),
            &to_rbac_attributes(attrs),
        );
        Decision {
            allowed: decision.allowed,
            reason: decision.reason,
        }
    }
}

/// PodTolerationRestriction with no cluster-wide defaults or whitelist (only the namespace
/// annotations count), as the kaas installer configures K3s.
pub struct PodTolerationRestriction;

impl PodAdmission for PodTolerationRestriction {
    fn admit_pod(&self, namespace: &Value, pod: &mut Value) -> Result<(), String> {
        admission::pod_toleration_restriction(namespace, pod, &[], None)
    }
}

/// The CRD openAPIV3Schema validator (defaulting, pruning, validation).
pub struct StructuralSchema;

impl SchemaValidator for StructuralSchema {
    fn validate_and_default(
        &self,
        schema: &Value,
        object: &mut Value,
    ) -> Result<(), Vec<FieldError>> {
        schema::validate_and_default(schema, object)
            .map(|_pruned| ())
            .map_err(|errors| {
                errors
                    .into_iter()
                    .map(|e| FieldError {
                        path: e.path,
                        message: e.message,
                    })
                    .collect()
            })
    }
}
