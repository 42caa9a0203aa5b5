//! The RBAC authorizer seam for a virtual cluster: adapts the engine's `seams::Authorizer`
//! to the shared `rbac` module, so every request to a simulated K3K server is decided by
//! the same rules a real kube-apiserver (`--authorization-mode=Node,RBAC`) applies.

use crate::rbac;
use crate::seams::{Authorizer, Decision, RbacObjects, RequestAttributes, UserInfo};

/// Decides requests with `rbac::authorize` over the engine's Roles, ClusterRoles and bindings.
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
