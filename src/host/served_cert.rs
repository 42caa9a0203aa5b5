//! Which addresses a virtual cluster's certificate must cover, compared by name. K3K passes
//! `spec.tlsSANs` to k3s through a config Secret that k3s reads only when it starts, so "the
//! Cluster says so" proves nothing: the reconciler (`reconcile::served_cert`) reads the
//! served certificate's names and the config Secrets' `tls-san`, and these pure functions
//! say what is missing.

/// The names of `wanted` that `served` does not cover (exact, case-insensitive: kaas puts
/// plain names and IPs in `tlsSANs`, no wildcards).
pub fn missing<'a>(served: &[String], wanted: &'a [String]) -> Vec<&'a str> {
    wanted
        .iter()
        .map(|w| w.trim())
        .filter(|w| !w.is_empty())
        .filter(|w| !served.iter().any(|s| s.eq_ignore_ascii_case(w)))
        .collect()
}

/// The `tls-san` entries of a k3s `config.yaml` as K3K writes it (a YAML list under
/// `tls-san:`); an unreadable file lists nothing, so it counts as stale.
pub fn config_tls_sans(config_yaml: &str) -> Vec<String> {
    serde_yaml::from_str::<serde_yaml::Value>(config_yaml)
        .ok()
        .and_then(|v| v.get("tls-san").cloned())
        .and_then(|v| match v {
            serde_yaml::Value::Sequence(items) => Some(
                items
                    .iter()
                    .filter_map(|i| i.as_str().map(|s| s.to_ascii_lowercase()))
                    .collect(),
            ),
            serde_yaml::Value::String(one) => Some(vec![one.to_ascii_lowercase()]),
            _ => None,
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::{config_tls_sans, missing};

    #[test]
    fn the_names_k3s_is_told_to_serve_are_read_from_its_config() {
        let config = "cluster-init: true\ntls-san:\n- 127.0.0.1\n- Kaas.Example\ntoken: x\n";
        assert_eq!(config_tls_sans(config), ["127.0.0.1", "kaas.example"]);
        assert!(config_tls_sans("token: x").is_empty());
        assert!(config_tls_sans(": not yaml [").is_empty());
    }

    #[test]
    fn missing_names_are_compared_without_case_and_blanks_are_ignored() {
        let served = vec!["kaas.example.com".to_string(), "10.0.0.5".to_string()];
        let wanted = vec![
            "KAAS.example.com".to_string(),
            " ".to_string(),
            "10.0.0.5".to_string(),
            "new.example.com".to_string(),
        ];
        assert_eq!(missing(&served, &wanted), ["new.example.com"]);
    }
}
