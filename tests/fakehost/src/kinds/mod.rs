//! The kinds the fake serves: built-in resource types plus those registered by
//! CustomResourceDefinitions. A resource is identified version-independently by
//! (group, plural); the registry answers path lookups (group, version, plural) and
//! kind lookups (apiVersion, kind) for discovery, REST routing and in-process callers.

mod builtin;
pub(crate) mod crd;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

/// Version-independent name of a resource: `("", "pods")`, `("k3k.io", "clusters")`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceRef {
    pub group: String,
    pub resource: String,
}

impl ResourceRef {
    pub fn new(group: &str, resource: &str) -> Self {
        Self {
            group: group.to_string(),
            resource: resource.to_string(),
        }
    }

    /// A core (`/api/v1`) resource.
    pub fn core(resource: &str) -> Self {
        Self::new("", resource)
    }
}

pub const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// Everything the server needs to know about one resource type.
#[derive(Clone, Debug)]
pub struct ResourceType {
    pub group: String,
    /// Served versions, preferred first. Objects are stored in whatever version they were
    /// written and re-labelled on read (the fake does no schema conversion).
    pub versions: Vec<String>,
    pub resource: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub verbs: Vec<String>,
    /// Subresources other than status (status is `has_status`): e.g. `eviction` on pods.
    pub extra_subresources: Vec<String>,
    pub has_status: bool,
    /// Whether `metadata.generation` is maintained (workloads, CRDs and custom resources;
    /// not ConfigMaps, Secrets, Namespaces, Services...).
    pub tracks_generation: bool,
    /// Built-in kinds accept strategic-merge patches; custom resources answer 415.
    pub builtin: bool,
    /// openAPIV3Schema per version, for custom resources.
    pub schemas: BTreeMap<String, Value>,
    /// additionalPrinterColumns per version, for custom resources.
    pub printer_columns: BTreeMap<String, Vec<Value>>,
}

impl ResourceType {
    pub fn reference(&self) -> ResourceRef {
        ResourceRef::new(&self.group, &self.resource)
    }

    pub fn preferred_version(&self) -> &str {
        self.versions.first().map(String::as_str).unwrap_or("v1")
    }

    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    pub fn serves_version(&self, version: &str) -> bool {
        self.versions.iter().any(|v| v == version)
    }

    pub fn allows(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }

    pub fn schema(&self, version: &str) -> Option<&Value> {
        self.schemas.get(version)
    }
}

/// All served resource types.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    types: BTreeMap<ResourceRef, Arc<ResourceType>>,
}

impl Registry {
    pub fn with_builtins() -> Self {
        let mut registry = Self::default();
        for rt in builtin::builtin_types() {
            registry.insert(rt);
        }
        registry
    }

    pub fn insert(&mut self, rt: ResourceType) {
        self.types.insert(rt.reference(), Arc::new(rt));
    }

    pub fn remove(&mut self, reference: &ResourceRef) {
        self.types.remove(reference);
    }

    pub fn get(&self, reference: &ResourceRef) -> Option<Arc<ResourceType>> {
        self.types.get(reference).cloned()
    }

    /// The type served at `/apis/<group>/<version>/<resource>`.
    pub fn by_path(&self, group: &str, version: &str, resource: &str) -> Option<Arc<ResourceType>> {
        self.get(&ResourceRef::new(group, resource))
            .filter(|rt| rt.serves_version(version))
    }

    /// The type whose objects carry this apiVersion and kind.
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceType>> {
        let (group, version) = split_api_version(api_version);
        self.types
            .values()
            .find(|rt| rt.group == group && rt.kind == kind && rt.serves_version(version))
            .cloned()
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<ResourceType>> {
        self.types.values()
    }

    /// Groups with their versions, in a stable order (core group first as "").
    pub fn group_versions(&self) -> BTreeMap<String, Vec<String>> {
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for rt in self.types.values() {
            let versions = groups.entry(rt.group.clone()).or_default();
            for version in &rt.versions {
                if !versions.contains(version) {
                    versions.push(version.clone());
                }
            }
        }
        groups
    }
}

/// `"apps/v1"` → `("apps", "v1")`, `"v1"` → `("", "v1")`.
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", api_version),
    }
}
