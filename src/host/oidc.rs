//! How a workspace's K3K Cluster comes to trust kaas's OIDC issuer, for that workspace only:
//! a Secret `kaas-oidc` in the workspace namespace holds a Kubernetes
//! `AuthenticationConfiguration` (one JWT authenticator: kaas's issuer URL, the
//! workspace's audience, the CA to reach kaas over HTTPS, username from `email`, groups from
//! `groups`); the Cluster mounts it into its server pods (`secretMounts`) and points the
//! kube-apiserver at it (`serverArgs`: `--kube-apiserver-arg=authentication-config=…`).
//!
//! The file's key carries a digest of its content, so any change to it changes the
//! Cluster's `serverArgs` too and rolls out like a plan change (K3K restarts the servers);
//! the Secret's name stays the same. Pure, like `host::desired`.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::k3k::cluster::{ClusterSecretMounts, ClusterSecretMountsRole};
use super::names;
use crate::domain::WorkspaceId;
use crate::domain::oidc;

/// The issuer as the virtual clusters reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterIssuer {
    /// Must be `https://…`: Kubernetes refuses any other issuer.
    pub url: String,
    /// PEM of the CA(s) that verify kaas's serving certificate; None: the system's CAs.
    pub ca_pem: Option<String>,
}

impl ClusterIssuer {
    /// An issuer the virtual clusters can be told to trust: None unless the URL is HTTPS
    /// (a kube-apiserver given an `http://` issuer does not start at all).
    pub fn usable(url: &str, ca_pem: Option<String>) -> Option<ClusterIssuer> {
        url.starts_with("https://").then(|| ClusterIssuer {
            url: url.trim_end_matches('/').to_string(),
            ca_pem,
        })
    }
}

/// The Secret's name in the workspace namespace.
pub const SECRET_NAME: &str = "kaas-oidc";
/// Where the server pods see the Secret's keys.
pub const MOUNT_PATH: &str = "/etc/kaas/oidc";
/// The `authentication-config` version the pinned Kubernetes (1.33) reads.
pub const API_VERSION: &str = "apiserver.config.k8s.io/v1beta1";

/// The `AuthenticationConfiguration` of workspace `ws` (YAML).
pub fn authentication_config(issuer: &ClusterIssuer, ws: WorkspaceId) -> String {
    let mut iss = json!({
        "url": issuer.url,
        "audiences": [oidc::audience(ws)],
    });
    if let (Some(ca), Some(obj)) = (&issuer.ca_pem, iss.as_object_mut()) {
        obj.insert("certificateAuthority".into(), json!(ca));
    }
    let doc = json!({
        "apiVersion": API_VERSION,
        "kind": "AuthenticationConfiguration",
        "jwt": [{
            "issuer": iss,
            // NB: a token without the groups claim is refused, not read as "no groups":
            // every token kaas signs carries it (possibly empty).
            "claimValidationRules": [{
                "expression": format!("has(claims.{})", oidc::GROUPS_CLAIM),
                "message": "the token has no groups claim",
            }],
            "claimMappings": {
                "username": {"claim": oidc::USERNAME_CLAIM, "prefix": ""},
                "groups": {"claim": oidc::GROUPS_CLAIM, "prefix": ""},
            },
        }],
    });
    serde_yaml::to_string(&doc).unwrap_or_default()
}

/// The Secret key of a configuration: `authentication-config-<digest>.yaml`.
pub fn config_key(config: &str) -> String {
    let digest = hex::encode(Sha256::digest(config.as_bytes()));
    format!(
        "authentication-config-{}.yaml",
        digest.get(..12).unwrap_or(&digest)
    )
}

/// The Secret holding workspace `ws`'s configuration, and the key it is under.
pub fn secret(ws: WorkspaceId, issuer: &ClusterIssuer) -> (Secret, String) {
    let config = authentication_config(issuer, ws);
    let key = config_key(&config);
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(SECRET_NAME.to_string()),
            namespace: Some(names::namespace(ws)),
            labels: Some(names::workspace_labels(ws)),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            key.clone(),
            ByteString(config.into_bytes()),
        )])),
        ..Secret::default()
    };
    (secret, key)
}

/// The k3s flag that hands the file to the kube-apiserver.
pub fn server_args(key: &str) -> Vec<String> {
    vec![format!(
        "--kube-apiserver-arg=authentication-config={MOUNT_PATH}/{key}"
    )]
}

/// The Secret mounted into the server pods only (agents have no kube-apiserver).
pub fn secret_mount() -> ClusterSecretMounts {
    ClusterSecretMounts {
        secret_name: Some(SECRET_NAME.to_string()),
        mount_path: Some(MOUNT_PATH.to_string()),
        role: Some(ClusterSecretMountsRole::Server),
        ..ClusterSecretMounts::default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn issuer(ca: Option<&str>) -> ClusterIssuer {
        ClusterIssuer::usable("https://kaas.example:8443/", ca.map(str::to_string)).unwrap()
    }

    #[test]
    fn only_an_https_issuer_is_given_to_clusters() {
        assert!(ClusterIssuer::usable("http://127.0.0.1:8080", None).is_none());
        assert_eq!(issuer(None).url, "https://kaas.example:8443");
    }

    #[test]
    fn the_configuration_trusts_the_issuer_for_one_workspace() {
        let ws = WorkspaceId(42);
        let doc: serde_json::Value =
            serde_yaml::from_str(&authentication_config(&issuer(Some("PEM")), ws)).unwrap();
        assert_eq!(doc["apiVersion"], API_VERSION);
        assert_eq!(doc["kind"], "AuthenticationConfiguration");
        let jwt = &doc["jwt"][0];
        assert_eq!(jwt["issuer"]["url"], "https://kaas.example:8443");
        assert_eq!(jwt["issuer"]["audiences"], json!([oidc::audience(ws)]));
        assert_eq!(jwt["issuer"]["certificateAuthority"], "PEM");
        assert_eq!(jwt["claimMappings"]["username"]["claim"], "email");
        assert_eq!(jwt["claimMappings"]["username"]["prefix"], "");
        assert_eq!(jwt["claimMappings"]["groups"]["claim"], "groups");
        assert_eq!(
            jwt["claimValidationRules"][0]["expression"],
            "has(claims.groups)"
        );
        let no_ca: serde_json::Value =
            serde_yaml::from_str(&authentication_config(&issuer(None), ws)).unwrap();
        assert!(
            no_ca["jwt"][0]["issuer"]
                .get("certificateAuthority")
                .is_none()
        );
    }

    #[test]
    fn a_changed_configuration_changes_the_key_and_so_the_server_args() {
        let ws = WorkspaceId(42);
        let (s1, k1) = secret(ws, &issuer(Some("A")));
        let (_, k2) = secret(ws, &issuer(Some("B")));
        let (_, k3) = secret(WorkspaceId(43), &issuer(Some("A")));
        assert_ne!(k1, k2);
        assert_ne!(k1, k3);
        assert_eq!(secret(ws, &issuer(Some("A"))).1, k1);
        assert!(s1.data.unwrap().contains_key(&k1));
        assert_eq!(
            server_args(&k1),
            vec![format!(
                "--kube-apiserver-arg=authentication-config=/etc/kaas/oidc/{k1}"
            )]
        );
        assert_eq!(s1.metadata.name.as_deref(), Some(SECRET_NAME));
        assert_eq!(s1.metadata.namespace, Some(names::namespace(ws)));
    }
}
