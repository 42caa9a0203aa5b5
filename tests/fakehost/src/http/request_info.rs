//! Turns a request path and method into what kube-apiserver's RequestInfoFactory would:
//! API group and version, namespace, resource, name, subresource and RBAC verb, or one of
//! the discovery documents.

use http::Method;

/// What a path under `/api` or `/apis` addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiPath {
    /// `/api`: APIVersions.
    CoreVersions,
    /// `/apis`: APIGroupList.
    GroupList,
    /// `/apis/<group>`: APIGroup.
    Group(String),
    /// `/api/v1`, `/apis/<group>/<version>`: APIResourceList.
    ResourceList {
        group: String,
        version: String,
    },
    Resource(ResourceRequest),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceRequest {
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub resource: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// The legacy `/watch/` prefix was used.
    pub legacy_watch: bool,
}

/// Subresources of a namespace that look like namespaced paths but are not.
const NAMESPACE_SUBRESOURCES: &[&str] = &["status", "finalize"];

pub fn parse(path: &str) -> Option<ApiPath> {
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api"] => return Some(ApiPath::CoreVersions),
        ["apis"] => return Some(ApiPath::GroupList),
        ["apis", group] => return Some(ApiPath::Group(group.to_string())),
        ["api", version, rest @ ..] => (String::new(), version.to_string(), rest),
        ["apis", group, version, rest @ ..] => (group.to_string(), version.to_string(), rest),
        _ => return None,
    };
    if rest.is_empty() {
        return Some(ApiPath::ResourceList { group, version });
    }
    let mut parts: Vec<&str> = rest.to_vec();
    let legacy_watch = parts.first() == Some(&"watch");
    if legacy_watch {
        parts.remove(0);
    }
    let mut namespace = None;
    if parts.first() == Some(&"namespaces") && parts.len() > 1 {
        namespace = Some(parts[1].to_string());
        if parts.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&parts[2]) {
            parts.drain(0..2);
        } else {
            // `/namespaces/<name>[/status]` addresses the namespace object itself.
            namespace = None;
        }
    }
    let (resource, name, subresource) = match parts.as_slice() {
        [resource] => (resource.to_string(), None, None),
        [resource, name] => (resource.to_string(), Some(name.to_string()), None),
        [resource, name, sub] => (
            resource.to_string(),
            Some(name.to_string()),
            Some(sub.to_string()),
        ),
        _ => return None,
    };
    Some(ApiPath::Resource(ResourceRequest {
        group,
        version,
        namespace,
        resource,
        name,
        subresource,
        legacy_watch,
    }))
}

/// The RBAC verb of a resource request.
pub fn verb(method: &Method, request: &ResourceRequest, watch_param: bool) -> &'static str {
    match *method {
        Method::GET | Method::HEAD => {
            if request.legacy_watch || watch_param {
                "watch"
            } else if request.name.is_some() {
                "get"
            } else {
                "list"
            }
        }
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => {
            if request.name.is_some() {
                "delete"
            } else {
                "deletecollection"
            }
        }
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaced_and_namespace_paths() {
        let Some(ApiPath::Resource(pods)) = parse("/api/v1/namespaces/ns1/pods/p/eviction") else {
            panic!("expected a resource path");
        };
        assert_eq!(pods.namespace.as_deref(), Some("ns1"));
        assert_eq!(pods.subresource.as_deref(), Some("eviction"));
        let Some(ApiPath::Resource(ns)) = parse("/api/v1/namespaces/ns1/status") else {
            panic!("expected a resource path");
        };
        assert_eq!(
            (ns.resource.as_str(), ns.name.as_deref(), ns.namespace),
            ("namespaces", Some("ns1"), None)
        );
        assert_eq!(
            parse("/apis/k3k.io/v1beta1"),
            Some(ApiPath::ResourceList {
                group: "k3k.io".into(),
                version: "v1beta1".into()
            })
        );
    }
}
