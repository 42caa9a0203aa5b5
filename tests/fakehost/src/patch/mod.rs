//! Patch formats other than server-side apply: JSON merge patch (RFC 7386), JSON patch
//! (RFC 6902) and strategic merge patch. Server-side apply lives in `apply`.

pub mod lists;
mod strategic;

use serde_json::Value;

use crate::errors::ApiError;
use crate::kinds::ResourceType;

pub use strategic::strategic_merge;

/// The patch types kube-apiserver accepts, by Content-Type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    Merge,
    Json,
    Strategic,
    Apply,
}

impl PatchType {
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let media = content_type.split(';').next().unwrap_or_default().trim();
        match media {
            "application/merge-patch+json" => Some(Self::Merge),
            "application/json-patch+json" => Some(Self::Json),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Some(Self::Apply),
            _ => None,
        }
    }
}

/// Applies a non-apply patch to a copy of `current`.
pub fn apply_patch(
    rt: &ResourceType,
    patch_type: PatchType,
    current: &Value,
    body: &[u8],
) -> Result<Value, ApiError> {
    let mut patched = current.clone();
    match patch_type {
        PatchType::Merge => {
            let patch: Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            json_patch::merge(&mut patched, &patch);
        }
        PatchType::Json => {
            let patch: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            json_patch::patch(&mut patched, &patch).map_err(|e| {
                // kube-apiserver answers a failed test/op on a missing path with 422.
                ApiError::invalid_field(
                    &rt.group,
                    &rt.kind,
                    "",
                    "",
                    &format!("the server rejected our request due to an error in our request: {e}"),
                )
            })?;
        }
        PatchType::Strategic => {
            if !rt.builtin {
                return Err(ApiError::unsupported_media_type(
                    "application/strategic-merge-patch+json",
                    "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
                ));
            }
            let patch: Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            strategic_merge(rt, &mut patched, &patch)?;
        }
        PatchType::Apply => {
            return Err(ApiError::internal(
                "apply patches are handled by server-side apply",
            ));
        }
    }
    Ok(patched)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::{Registry, ResourceRef};
    use serde_json::json;

    fn pods() -> std::sync::Arc<ResourceType> {
        Registry::with_builtins()
            .get(&ResourceRef::core("pods"))
            .expect("pods are built in")
    }

    #[test]
    fn strategic_merges_containers_by_name_and_deletes() {
        let pod = json!({"spec": {"containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
            {"name": "b", "image": "b:1"}
        ], "tolerations": [{"key": "k"}]}});
        let patch = json!({"spec": {"containers": [
            {"name": "a", "env": [{"name": "Y", "value": "2"}]},
            {"name": "b", "$patch": "delete"},
            {"name": "c", "image": "c:1"}
        ], "tolerations": [{"key": "other"}]}});
        let body = serde_json::to_vec(&patch).expect("serialize");
        let patched = apply_patch(&pods(), PatchType::Strategic, &pod, &body).expect("patch");
        assert_eq!(patched["spec"]["containers"][0]["image"], "a:1");
        assert_eq!(
            patched["spec"]["containers"][0]["env"]
                .as_array()
                .map(Vec::len),
            Some(2)
        );
        assert_eq!(patched["spec"]["containers"][1]["name"], "c");
        assert_eq!(
            patched["spec"]["containers"].as_array().map(Vec::len),
            Some(2)
        );
        assert_eq!(patched["spec"]["tolerations"], json!([{"key": "other"}]));
    }
}
