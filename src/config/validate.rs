//! [`Config::validate`]: the cross-field checks that types alone cannot express.

use std::net::IpAddr;
use std::time::Duration;

use super::layers::{check_public_url, is_hostname, is_k3s_version};
use super::{Config, ConfigError, SUPPORTED_VERSION, TlsMode, format_duration};

impl Config {
    /// Cross-field checks that types alone cannot express. Touches the filesystem only to check
    /// that configured TLS files exist.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid =
            |key: &'static str, problem: String| Err(ConfigError::Invalid { key, problem });

        if self.version != SUPPORTED_VERSION {
            return invalid(
                "version",
                format!(
                    "is {}; this kaas supports version {SUPPORTED_VERSION}",
                    self.version
                ),
            );
        }

        let tls = &self.server.tls;
        match tls.mode {
            TlsMode::Files => {
                for (key, path) in [("server.tls.cert", &tls.cert), ("server.tls.key", &tls.key)] {
                    match path {
                        None => {
                            return invalid(
                                key,
                                "is required when server.tls.mode = \"files\"".into(),
                            );
                        }
                        Some(p) if !p.is_file() => {
                            return invalid(
                                key,
                                format!("names {}, which is not a readable file", p.display()),
                            );
                        }
                        Some(_) => {}
                    }
                }
            }
            // Silently ignoring a configured certificate would serve the wrong one.
            TlsMode::Auto | TlsMode::Off => {
                if tls.cert.is_some() || tls.key.is_some() {
                    let key = if tls.cert.is_some() {
                        "server.tls.cert"
                    } else {
                        "server.tls.key"
                    };
                    return invalid(key, "is set but server.tls.mode is not \"files\"; set mode = \"files\" to use it".into());
                }
            }
        }

        if let Some(url) = &self.server.public_url {
            check_public_url(url).or_else(|p| invalid("server.public_url", p))?;
        }
        if self.server.max_body_bytes == 0 {
            return invalid("server.max_body_bytes", "must be greater than 0".into());
        }
        if let Err(e) = crate::http::TrustedProxies::parse(&self.server.trusted_proxies) {
            return invalid("server.trusted_proxies", e);
        }
        if let Some(t) = &self.server.metrics_token
            && t.expose().chars().count() < 16
        {
            return invalid(
                "server.metrics_token",
                "must be at least 16 characters (e.g. `openssl rand -hex 24`)".into(),
            );
        }
        if self.server.metrics_listen == Some(self.server.listen) {
            return invalid(
                "server.metrics_listen",
                "must differ from server.listen (it is a second listener for /metrics only)".into(),
            );
        }
        for h in &self.server.allowed_hosts {
            if !is_hostname(h) && h.parse::<IpAddr>().is_err() {
                return invalid(
                    "server.allowed_hosts",
                    format!("{h:?} is not a host name (no scheme, port or path)"),
                );
            }
        }
        self.server.limits.validate()?;
        if self.data.dir.as_os_str().is_empty() {
            return invalid("data.dir", "must not be empty".into());
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return invalid("log.level", format!("is not a valid tracing filter ({e})"));
        }

        let a = &self.auth;
        let h = &self.host;
        let durations: [(&'static str, Duration); 10] = [
            ("server.shutdown_grace", self.server.shutdown_grace),
            ("auth.session_idle_timeout", a.session_idle_timeout),
            ("auth.session_absolute_timeout", a.session_absolute_timeout),
            ("auth.invitation_ttl", a.invitation_ttl),
            ("auth.api_token_max_lifetime", a.api_token_max_lifetime),
            ("auth.setup_link_ttl", a.setup_link_ttl),
            ("host.kubeconfig_lifetime", h.kubeconfig_lifetime),
            ("host.kubeconfig_max_lifetime", h.kubeconfig_max_lifetime),
            ("host.resync_interval", h.resync_interval),
            ("host.inside_check_interval", h.inside_check_interval),
        ];
        for (key, d) in durations {
            if d.is_zero() {
                return invalid(key, "must be longer than 0s".into());
            }
        }
        if a.session_idle_timeout > a.session_absolute_timeout {
            return invalid(
                "auth.session_idle_timeout",
                format!(
                    "({}) must not be longer than auth.session_absolute_timeout ({})",
                    format_duration(a.session_idle_timeout),
                    format_duration(a.session_absolute_timeout)
                ),
            );
        }
        if a.max_sessions_per_user < 1 {
            return invalid("auth.max_sessions_per_user", "must be at least 1".into());
        }
        // 256 is the longest password the password policy accepts.
        if !(8..=256).contains(&a.password_min_length) {
            return invalid(
                "auth.password_min_length",
                format!("is {}; it must be between 8 and 256", a.password_min_length),
            );
        }
        if !self.backup.interval.is_zero() && self.backup.interval < Duration::from_secs(60) {
            return invalid(
                "backup.interval",
                "must be \"0s\" (off) or at least 1m".into(),
            );
        }
        let meter = self.billing.meter_interval;
        if meter < Duration::from_secs(1) || meter > Duration::from_secs(3600) {
            return invalid("billing.meter_interval", "must be between 1s and 1h".into());
        }
        let iss = &self.issuer;
        if iss.token_lifetime < Duration::from_secs(5)
            || iss.token_lifetime > Duration::from_secs(24 * 3600)
        {
            return invalid("issuer.token_lifetime", "must be between 5s and 24h".into());
        }
        if iss.key_rotation < Duration::from_secs(10) {
            return invalid("issuer.key_rotation", "must be at least 10s".into());
        }
        if let Some(p) = &iss.ca_file
            && !p.is_file()
        {
            return invalid(
                "issuer.ca_file",
                format!("names {}, which is not a readable file", p.display()),
            );
        }
        if self.backup.keep < 1 {
            return invalid("backup.keep", "must be at least 1".into());
        }
        if self.limits.members_per_org < 1 {
            return invalid(
                "limits.members_per_org",
                "must be at least 1 (the owner is a member)".into(),
            );
        }
        if h.kubeconfig_lifetime > h.kubeconfig_max_lifetime {
            return invalid(
                "host.kubeconfig_lifetime",
                format!(
                    "({}) must not be longer than host.kubeconfig_max_lifetime ({})",
                    format_duration(h.kubeconfig_lifetime),
                    format_duration(h.kubeconfig_max_lifetime)
                ),
            );
        }
        if !is_k3s_version(&h.k3s_version) {
            return invalid(
                "host.k3s_version",
                format!(
                    "\"{}\" does not look like a K3s version such as \"v1.33.1-k3s1\"",
                    h.k3s_version
                ),
            );
        }
        let iso = &self.isolation;
        for (key, list) in [
            ("isolation.pod_cidrs", &iso.pod_cidrs),
            ("isolation.service_cidrs", &iso.service_cidrs),
            ("isolation.denied_egress", &iso.denied_egress),
        ] {
            for net in list {
                if let Err(e) = net.parse::<crate::domain::netaddr::IpNet>() {
                    return invalid(key, e);
                }
            }
        }
        if !crate::host::names::is_dns1123_label(&iso.k3k_namespace) {
            return invalid(
                "isolation.k3k_namespace",
                format!("{:?} is not a namespace name", iso.k3k_namespace),
            );
        }
        let ex = &self.expose;
        if !ex.ingress_domain.is_empty()
            && (ex.ingress_domain.parse::<IpAddr>().is_ok() || !is_hostname(&ex.ingress_domain))
        {
            return invalid(
                "expose.ingress_domain",
                format!("\"{}\" is not a DNS domain", ex.ingress_domain),
            );
        }
        if ex.ingress_port == 0 {
            return invalid("expose.ingress_port", "must be between 1 and 65535".into());
        }
        for addr in &h.external_addresses {
            if addr.parse::<IpAddr>().is_err() && !is_hostname(addr) {
                return invalid(
                    "host.external_addresses",
                    format!("entry \"{addr}\" is neither an IP address nor a hostname"),
                );
            }
        }
        self.sso.validate()?;
        Ok(())
    }
}

impl super::RequestLimits {
    /// `[server.limits]`: every bound must let a real client through.
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid =
            |key: &'static str, problem: String| Err(ConfigError::Invalid { key, problem });
        let counts = [
            ("server.limits.max_connections", self.max_connections, 1),
            (
                "server.limits.max_connections_per_address",
                self.max_connections_per_address,
                1,
            ),
            ("server.limits.max_headers", self.max_headers, 16),
            // hyper reads a request's head into a buffer of at least 8 KiB.
            (
                "server.limits.max_header_bytes",
                self.max_header_bytes,
                8192,
            ),
            ("server.limits.max_json_depth", self.max_json_depth, 4),
        ];
        for (key, value, least) in counts {
            if value < least {
                return invalid(key, format!("is {value}; it must be at least {least}"));
            }
        }
        for (key, d) in [
            (
                "server.limits.header_read_timeout",
                self.header_read_timeout,
            ),
            ("server.limits.request_timeout", self.request_timeout),
        ] {
            if d < Duration::from_secs(1) {
                return invalid(key, "must be at least 1s".into());
            }
        }
        Ok(())
    }
}

impl super::SsoConfig {
    /// `[[sso.providers]]`: each provider usable as configured (the issuer itself is only
    /// reached at the first sign-in, so an unreachable one does not stop kaas).
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |problem: String| {
            Err(ConfigError::Invalid {
                key: "sso.providers",
                problem,
            })
        };
        let mut seen = std::collections::BTreeSet::new();
        for p in &self.providers {
            let id_ok = !p.id.is_empty()
                && p.id.len() <= 32
                && p.id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !id_ok {
                return invalid(format!(
                    "id \"{}\" must be 1-32 lower-case letters, digits or dashes",
                    p.id
                ));
            }
            if !seen.insert(p.id.as_str()) {
                return invalid(format!("id \"{}\" is used twice", p.id));
            }
            let issuer_ok = url::Url::parse(&p.issuer).is_ok_and(|u| {
                let loopback = match u.host() {
                    Some(url::Host::Ipv4(a)) => a.is_loopback(),
                    Some(url::Host::Ipv6(a)) => a.is_loopback(),
                    Some(url::Host::Domain(d)) => d == "localhost",
                    None => false,
                };
                u.scheme() == "https" || (u.scheme() == "http" && loopback)
            });
            if !issuer_ok {
                return invalid(format!(
                    "{}: issuer \"{}\" must be an https:// URL (http:// only on loopback)",
                    p.id, p.issuer
                ));
            }
            if p.name.trim().is_empty() || p.client_id.trim().is_empty() {
                return invalid(format!("{}: name and client_id must not be empty", p.id));
            }
            if !p.scopes.iter().any(|s| s == "openid") {
                return invalid(format!("{}: scopes must include \"openid\"", p.id));
            }
            if p.accounts == crate::domain::sso::AccountPolicy::Domains
                && p.allowed_domains.is_empty()
            {
                return invalid(format!(
                    "{}: accounts = \"domains\" needs allowed_domains",
                    p.id
                ));
            }
            if !p.groups.is_empty() && p.groups_claim.is_none() {
                return invalid(format!("{}: groups needs groups_claim", p.id));
            }
            if let Some(ca) = &p.ca_file
                && !ca.is_file()
            {
                return invalid(format!(
                    "{}: ca_file {} is not a readable file",
                    p.id,
                    ca.display()
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod request_limit_tests {
    use super::super::{Config, Overrides};

    fn load(pairs: &[(&str, &str)]) -> Result<Config, String> {
        let env: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load(None, &env, &Overrides::default()).map_err(|e| e.to_string())
    }

    #[test]
    fn request_limits_come_from_the_environment_and_are_checked() {
        let cfg = load(&[
            ("KAAS_SERVER_LIMITS_MAX_CONNECTIONS", "50"),
            ("KAAS_SERVER_LIMITS_HEADER_READ_TIMEOUT", "3s"),
        ])
        .unwrap();
        assert_eq!(cfg.server.limits.max_connections, 50);
        assert_eq!(cfg.server.limits.header_read_timeout.as_secs(), 3);
        for (key, value, says) in [
            (
                "KAAS_SERVER_LIMITS_MAX_HEADER_BYTES",
                "4096",
                "at least 8192",
            ),
            ("KAAS_SERVER_LIMITS_MAX_CONNECTIONS", "0", "at least 1"),
            (
                "KAAS_SERVER_LIMITS_MAX_CONNECTIONS_PER_ADDRESS",
                "0",
                "at least 1",
            ),
            ("KAAS_SERVER_LIMITS_REQUEST_TIMEOUT", "0s", "at least 1s"),
            ("KAAS_SERVER_LIMITS_MAX_JSON_DEPTH", "1", "at least 4"),
        ] {
            let e = load(&[(key, value)]).unwrap_err();
            assert!(
                e.contains("server.limits.") && e.contains(says),
                "{key}={value}: {e}"
            );
        }
        assert!(Config::to_toml_commented().contains("[server.limits]"));
    }
}
