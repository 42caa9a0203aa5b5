//! Configuration: a versioned TOML file, overlaid by `KAAS_*` environment variables, overlaid by
//! command-line flags (the caller passes those as [`Overrides`]).
//!
//! Invariants:
//! - Every setting is listed once in `layers::SETTINGS`; the file walker, the environment mapping and
//!   the tests all read that table, so a key cannot be accepted in one layer and not another.
//! - Unknown keys (in the file, with their full dotted path) and unknown `KAAS_*` variables are
//!   errors, never silently ignored: a typo must not quietly fall back to a default.
//! - A [`Config`] returned by [`Config::load`] has passed [`Config::validate`].
//! - Durations are written as friendly strings (`"30s"`, `"12h"`, `"1h30m"`, `"7d"`) and are
//!   serialized back the same way.
//! - Secrets are wrapped in [`Secret`], whose `Debug`, `Display` and `Serialize` all print
//!   `[redacted]`, so neither logs nor `config show` can leak them.
//!
//! Submodules: `model` (the settings and their defaults), `validate` (cross-field checks),
//! `layers` (settings table, file walk, env mapping), `duration` (friendly durations),
//! `template` (`Config::to_toml_commented`).

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The only config file format version this build understands.
pub const SUPPORTED_VERSION: u32 = 1;

/// Environment variable naming the config file (resolved by the caller, not a setting).
pub const ENV_CONFIG_FILE: &str = "KAAS_CONFIG";
/// Environment variable holding a tracing filter (read by `telemetry::init_logging`).
pub const ENV_LOG_FILTER: &str = "KAAS_LOG";

const ENV_PREFIX: &str = "KAAS_";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {} does not exist", .0.display())]
    FileNotFound(PathBuf),
    #[error("cannot read config file {}: {source}", path.display())]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid TOML in {} at line {line}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("unknown key \"{key}\" in {}{}", path.display(), suggestion(.hint))]
    UnknownKey {
        key: String,
        path: PathBuf,
        hint: Option<&'static str>,
    },
    #[error("invalid value for \"{key}\" in {}: {problem}", path.display())]
    InvalidFileValue {
        key: String,
        path: PathBuf,
        problem: String,
    },
    #[error("unknown environment variable {name}{}", suggestion(.hint))]
    UnknownEnv { name: String, hint: Option<String> },
    #[error("invalid value in environment variable {name}: {problem}")]
    InvalidEnv { name: String, problem: String },
    #[error(
        "config version {found} in {} is not supported; this kaas supports version {SUPPORTED_VERSION}",
        path.display()
    )]
    UnsupportedVersion { found: i64, path: PathBuf },
    #[error("invalid configuration: {key} {problem}")]
    Invalid { key: &'static str, problem: String },
}

fn suggestion<T: fmt::Display>(hint: &Option<T>) -> String {
    match hint {
        Some(h) => format!(" (did you mean {h}?)"),
        None => String::new(),
    }
}

mod duration;
mod layers;
mod model;
mod template;
mod validate;

pub use model::{
    AuthConfig, BackupConfig, BillingConfig, Config, DataConfig, HostConfig, IssuerConfig,
    LimitsConfig, LogConfig, LogFormat, MfaConfig, OrgCreation, Overrides, Secret, ServerConfig,
    TlsConfig, TlsMode,
};

pub use model::RequestLimits;
pub use model::{SsoConfig, SsoProvider};

pub use duration::{format_duration, friendly_duration, parse_duration};
use layers::{apply_env, is_hostname, one_line, read_file, url_host};

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

impl Config {
    /// Builds the effective configuration: defaults, then `file` (if given; it must exist),
    /// then `KAAS_*` variables from `env`, then `overrides`; then [`Config::validate`]s it.
    ///
    /// `env` is passed in (normally `std::env::vars().collect()`) so tests need no process
    /// state. `KAAS_CONFIG` and `KAAS_LOG` are skipped here: the caller resolves the first and
    /// `telemetry::init_logging` reads the second.
    pub fn load(
        file: Option<&Path>,
        env: &[(String, String)],
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        let mut table = match file {
            Some(path) => read_file(path)?,
            None => toml::Table::new(),
        };
        apply_env(&mut table, env)?;

        // Every value was checked against its kind above, so this only fails on a bug in the
        // settings table; still report it rather than panic.
        let mut cfg: Config =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Invalid {
                    key: "config",
                    problem: one_line(e.message()),
                })?;

        if let Some(listen) = overrides.listen {
            cfg.server.listen = listen;
        }
        if let Some(dir) = &overrides.data_dir {
            cfg.data.dir = dir.clone();
        }
        if let Some(format) = overrides.log_format {
            cfg.log.format = format;
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// `<data.dir>/kaas.redb`.
    pub fn db_path(&self) -> PathBuf {
        self.data.dir.join("kaas.redb")
    }

    /// `backup.dir`, else `<data.dir>/backups`.
    pub fn backup_dir(&self) -> PathBuf {
        self.backup
            .dir
            .clone()
            .unwrap_or_else(|| self.data.dir.join("backups"))
    }

    /// Whether the listener speaks HTTPS. `Auto` uses TLS unless the listener is loopback-only.
    pub fn uses_tls(&self) -> bool {
        match self.server.tls.mode {
            TlsMode::Files => true,
            TlsMode::Off => false,
            TlsMode::Auto => !self.server.listen.ip().is_loopback(),
        }
    }

    /// True when plain HTTP is served on a non-loopback address; the caller logs a warning.
    pub fn plain_http_on_public_address(&self) -> bool {
        !self.uses_tls() && !self.server.listen.ip().is_loopback()
    }

    /// The base URL people use, without a trailing slash: `server.public_url` if set, otherwise
    /// derived from the listener (an unspecified address becomes the machine's hostname, or
    /// 127.0.0.1 if that is unknown).
    pub fn public_url(&self) -> String {
        if let Some(url) = &self.server.public_url {
            return url.trim_end_matches('/').to_owned();
        }
        let scheme = if self.uses_tls() { "https" } else { "http" };
        let listen = self.server.listen;
        let host = match listen.ip() {
            ip if ip.is_unspecified() => {
                machine_hostname().unwrap_or_else(|| "127.0.0.1".to_owned())
            }
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        };
        format!("{scheme}://{host}:{}", listen.port())
    }

    /// The host part of [`Config::public_url`] (no brackets around IPv6), if it has one.
    pub fn public_host(&self) -> Option<String> {
        url_host(&self.public_url())
    }
}

/// The machine's hostname from the kernel, if it is a valid hostname.
pub fn machine_hostname() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_owned())
        .find(|h| is_hostname(h) && h != "localhost")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::layers::{SETTINGS, env_name};
    use super::model::DAY;
    use super::*;
    use std::io::Write;
    use std::time::Duration;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    fn err(r: Result<Config, ConfigError>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn no_file_gives_defaults() {
        let cfg = Config::load(None, &[], &Overrides::default()).unwrap();
        assert_eq!(cfg, Config::default());
        assert_eq!(cfg.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(
            cfg.auth.session_idle_timeout,
            Duration::from_secs(12 * 3600)
        );
        assert_eq!(cfg.db_path(), PathBuf::from("./kaas-data/kaas.redb"));
        assert!(!cfg.uses_tls());
        assert_eq!(cfg.public_url(), "http://127.0.0.1:8080");
    }

    #[test]
    fn file_overrides_defaults() {
        let f = file(
            "version = 1\n[server]\nlisten = \"127.0.0.1:9000\"\n[auth]\nsession_idle_timeout = \"1h30m\"\n[host]\nexternal_addresses = [\"kaas.example\", \"10.0.0.5\"]\n",
        );
        let cfg = Config::load(Some(f.path()), &[], &Overrides::default()).unwrap();
        assert_eq!(cfg.server.listen.port(), 9000);
        assert_eq!(cfg.auth.session_idle_timeout, Duration::from_secs(5400));
        assert_eq!(
            cfg.host.external_addresses,
            vec!["kaas.example", "10.0.0.5"]
        );
        assert_eq!(
            cfg.auth.max_sessions_per_user, 3,
            "untouched keys keep defaults"
        );
    }

    #[test]
    fn env_overrides_file_and_flags_override_env() {
        let f = file("[server]\nlisten = \"127.0.0.1:9000\"\n[data]\ndir = \"/from/file\"\n");
        let vars = env(&[
            ("KAAS_SERVER_LISTEN", "127.0.0.1:9100"),
            ("KAAS_DATA_DIR", "/from/env"),
            ("KAAS_AUTH_MAX_SESSIONS_PER_USER", "7"),
            ("KAAS_HOST_EXTERNAL_ADDRESSES", "a.example, 10.1.2.3"),
            ("KAAS_SERVER_TLS_MODE", "off"),
            ("KAAS_HOST_KUBECONFIG", "/etc/rancher/k3s/k3s.yaml"),
            ("KAAS_CONFIG", "/ignored"),
            ("KAAS_LOG", "debug"),
            ("PATH", "/usr/bin"),
        ]);
        let cfg = Config::load(Some(f.path()), &vars, &Overrides::default()).unwrap();
        assert_eq!(cfg.server.listen.port(), 9100);
        assert_eq!(cfg.data.dir, PathBuf::from("/from/env"));
        assert_eq!(cfg.auth.max_sessions_per_user, 7);
        assert_eq!(cfg.host.external_addresses, vec!["a.example", "10.1.2.3"]);
        assert_eq!(cfg.server.tls.mode, TlsMode::Off);
        assert_eq!(
            cfg.host.kubeconfig,
            Some(PathBuf::from("/etc/rancher/k3s/k3s.yaml"))
        );

        let flags = Overrides {
            listen: Some("127.0.0.1:9200".parse().unwrap()),
            data_dir: Some("/from/flag".into()),
            log_format: Some(LogFormat::Json),
        };
        let cfg = Config::load(Some(f.path()), &vars, &flags).unwrap();
        assert_eq!(cfg.server.listen.port(), 9200);
        assert_eq!(cfg.data.dir, PathBuf::from("/from/flag"));
        assert_eq!(cfg.log.format, LogFormat::Json);
    }

    #[test]
    fn unknown_file_key_is_named_with_its_section() {
        let f = file("[server]\nlisen = \"127.0.0.1:9000\"\n");
        let msg = err(Config::load(Some(f.path()), &[], &Overrides::default()));
        let expected = format!("unknown key \"server.lisen\" in {}", f.path().display());
        assert!(msg.starts_with(&expected), "{msg}");
        assert!(msg.contains("did you mean server.listen?"), "{msg}");

        let f = file("[server.tls]\nmod = \"off\"\n");
        let msg = err(Config::load(Some(f.path()), &[], &Overrides::default()));
        assert!(msg.contains("\"server.tls.mod\""), "{msg}");

        let f = file("[sever]\nlisten = \"127.0.0.1:9000\"\n");
        let msg = err(Config::load(Some(f.path()), &[], &Overrides::default()));
        assert!(msg.contains("unknown key \"sever\""), "{msg}");
    }

    #[test]
    fn bad_file_value_is_named() {
        let f = file("[auth]\nmax_sessions_per_user = \"three\"\n");
        let msg = err(Config::load(Some(f.path()), &[], &Overrides::default()));
        assert!(
            msg.starts_with("invalid value for \"auth.max_sessions_per_user\" in "),
            "{msg}"
        );
        let f = file("[server]\nshutdown_grace = 30\n");
        let msg = err(Config::load(Some(f.path()), &[], &Overrides::default()));
        assert!(
            msg.contains("\"server.shutdown_grace\"") && msg.contains("\"30s\""),
            "{msg}"
        );
    }

    #[test]
    fn who_must_use_a_second_factor_is_read_from_the_file_and_the_environment() {
        use crate::domain::mfa::MfaRequirement;
        let f = file("[mfa]\nrequire = \"admins\"\n");
        let cfg = Config::load(Some(f.path()), &[], &Overrides::default()).unwrap();
        assert_eq!(cfg.mfa.require, MfaRequirement::Admins);
        let env = vec![("KAAS_MFA_REQUIRE".to_string(), "everyone".to_string())];
        let cfg = Config::load(Some(f.path()), &env, &Overrides::default()).unwrap();
        assert_eq!(cfg.mfa.require, MfaRequirement::Everyone);
        let f = file("[mfa]\nrequire = \"sometimes\"\n");
        let msg = err(Config::load(Some(f.path()), &[], &Overrides::default()));
        assert!(msg.contains("\"mfa.require\""), "{msg}");
        assert_eq!(Config::default().mfa.require, MfaRequirement::None);
    }

    #[test]
    fn syntax_error_is_one_line_with_position() {
        let f = file("[server]\nlisten = \n");
        let msg = err(Config::load(Some(f.path()), &[], &Overrides::default()));
        assert!(
            msg.starts_with("invalid TOML in ") && msg.contains("line 2"),
            "{msg}"
        );
        assert!(!msg.contains('\n'), "{msg}");
    }

    #[test]
    fn missing_named_file_is_an_error() {
        let msg = err(Config::load(
            Some(Path::new("/nonexistent/kaas.toml")),
            &[],
            &Overrides::default(),
        ));
        assert_eq!(msg, "config file /nonexistent/kaas.toml does not exist");
    }

    #[test]
    fn unknown_env_var_is_named() {
        let msg = err(Config::load(
            None,
            &env(&[("KAAS_SERVER_LISEN", "x")]),
            &Overrides::default(),
        ));
        assert_eq!(
            msg,
            "unknown environment variable KAAS_SERVER_LISEN (did you mean KAAS_SERVER_LISTEN?)"
        );
        let msg = err(Config::load(
            None,
            &env(&[("KAAS_FOO", "x")]),
            &Overrides::default(),
        ));
        assert_eq!(msg, "unknown environment variable KAAS_FOO");
    }

    #[test]
    fn bad_env_value_is_named() {
        let msg = err(Config::load(
            None,
            &env(&[("KAAS_SERVER_LISTEN", "localhost")]),
            &Overrides::default(),
        ));
        assert!(
            msg.starts_with("invalid value in environment variable KAAS_SERVER_LISTEN: "),
            "{msg}"
        );
        let msg = err(Config::load(
            None,
            &env(&[("KAAS_AUTH_MAX_SESSIONS_PER_USER", "-1")]),
            &Overrides::default(),
        ));
        assert!(msg.contains("KAAS_AUTH_MAX_SESSIONS_PER_USER"), "{msg}");
        let msg = err(Config::load(
            None,
            &env(&[("KAAS_AUTH_INVITATION_TTL", "7 days")]),
            &Overrides::default(),
        ));
        assert!(
            msg.contains("KAAS_AUTH_INVITATION_TTL") && msg.contains("\"7 days\""),
            "{msg}"
        );
        let msg = err(Config::load(
            None,
            &env(&[("KAAS_LOG_FORMAT", "xml")]),
            &Overrides::default(),
        ));
        assert!(
            msg.contains("KAAS_LOG_FORMAT") && msg.contains("\"json\""),
            "{msg}"
        );
    }

    #[test]
    fn empty_env_unsets_optional_values() {
        let f = file("[host]\nkubeconfig = \"/x\"\n");
        let cfg = Config::load(
            Some(f.path()),
            &env(&[("KAAS_HOST_KUBECONFIG", "")]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(cfg.host.kubeconfig, None);
    }

    #[test]
    fn version_2_is_refused() {
        let f = file("version = 2\n");
        let msg = err(Config::load(Some(f.path()), &[], &Overrides::default()));
        assert_eq!(
            msg,
            format!(
                "config version 2 in {} is not supported; this kaas supports version 1",
                f.path().display()
            )
        );
    }

    #[test]
    fn tls_files_mode_needs_both_paths() {
        let f = file("[server.tls]\nmode = \"files\"\n");
        let msg = err(Config::load(Some(f.path()), &[], &Overrides::default()));
        assert_eq!(
            msg,
            "invalid configuration: server.tls.cert is required when server.tls.mode = \"files\""
        );

        let cert = file("cert");
        let f = file(&format!(
            "[server.tls]\nmode = \"files\"\ncert = \"{}\"\n",
            cert.path().display()
        ));
        let msg = err(Config::load(Some(f.path()), &[], &Overrides::default()));
        assert_eq!(
            msg,
            "invalid configuration: server.tls.key is required when server.tls.mode = \"files\""
        );

        let f = file(&format!(
            "[server.tls]\nmode = \"files\"\ncert = \"{}\"\nkey = \"/nonexistent/key.pem\"\n",
            cert.path().display()
        ));
        let msg = err(Config::load(Some(f.path()), &[], &Overrides::default()));
        assert!(
            msg.contains("server.tls.key names /nonexistent/key.pem"),
            "{msg}"
        );
    }

    #[test]
    fn cross_field_checks() {
        let check = |f: &dyn Fn(&mut Config)| {
            let mut c = Config::default();
            f(&mut c);
            c.validate().unwrap_err().to_string()
        };
        assert!(
            check(&|c| c.auth.session_idle_timeout = Duration::from_secs(8 * DAY))
                .contains("auth.session_idle_timeout (8d)")
        );
        assert!(
            check(&|c| c.auth.max_sessions_per_user = 0).contains("auth.max_sessions_per_user")
        );
        assert!(
            check(&|c| c.auth.password_min_length = 6).contains("auth.password_min_length is 6")
        );
        assert!(
            check(&|c| c.host.resync_interval = Duration::ZERO)
                .contains("host.resync_interval must be longer than 0s")
        );
        assert!(
            check(&|c| c.host.kubeconfig_lifetime = Duration::from_secs(30 * DAY))
                .contains("host.kubeconfig_lifetime")
        );
        assert!(check(&|c| c.host.k3s_version = "1.33".into()).contains("host.k3s_version"));
        assert!(
            check(&|c| c.host.external_addresses = vec!["bad host!".into()])
                .contains("\"bad host!\"")
        );
        assert!(
            check(&|c| c.server.public_url = Some("kaas.example".into()))
                .contains("server.public_url")
        );
        assert!(check(&|c| c.log.level = "info,=[".into()).contains("log.level"));
        assert!(
            check(&|c| c.server.tls.cert = Some("/x".into())).contains("server.tls.cert is set")
        );
    }

    #[test]
    fn secret_never_prints() {
        let f = file("[host]\ntoken = \"hunter2-very-secret\"\n");
        let cfg = Config::load(Some(f.path()), &[], &Overrides::default()).unwrap();
        let token = cfg.host.token.clone().unwrap();
        assert_eq!(token.expose(), "hunter2-very-secret");
        assert_eq!(format!("{token:?}"), "[redacted]");
        assert_eq!(format!("{token}"), "[redacted]");
        assert!(!format!("{cfg:?}").contains("hunter2"));
        assert!(!toml::to_string(&cfg).unwrap().contains("hunter2"));
        assert!(!serde_json::to_string(&cfg).unwrap().contains("hunter2"));
    }

    #[test]
    fn sso_providers_are_read_checked_and_keep_their_secret() {
        let provider = |extra: &str| {
            format!(
                "[[sso.providers]]\nid = \"corp\"\nname = \"Corp\"\n\
                 issuer = \"https://idp.example.com\"\nclient_id = \"kaas\"\n\
                 client_secret = \"s3cret-value\"\n{extra}"
            )
        };
        let f = file(&provider(
            "accounts = \"domains\"\nallowed_domains = [\"example.com\"]\n\
             groups_claim = \"groups\"\n\
             groups = [{ group = \"ops\", org = \"acme\", role = \"admin\" }]\n",
        ));
        let cfg = Config::load(Some(f.path()), &[], &Overrides::default()).unwrap();
        let p = &cfg.sso.providers[0];
        assert_eq!(p.client_secret.expose(), "s3cret-value");
        assert_eq!(p.scopes, ["openid", "email", "profile"]);
        assert_eq!(p.groups[0].role, crate::domain::OrgRole::Admin);
        assert!(!format!("{cfg:?}").contains("s3cret"));
        assert!(!toml::to_string(&cfg).unwrap().contains("s3cret"));
        for (extra, needle) in [
            ("accounts = \"domains\"\n", "allowed_domains"),
            (
                "groups = [{ group = \"a\", org = \"b\", role = \"member\" }]\n",
                "groups_claim",
            ),
            ("scopes = [\"email\"]\n", "openid"),
            ("ca_file = \"/nonexistent/ca.pem\"\n", "ca_file"),
        ] {
            let f = file(&provider(extra));
            let msg = Config::load(Some(f.path()), &[], &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(msg.contains(needle), "{extra}: {msg}");
        }
        let f = file(&provider("").replace("https://idp.example.com", "http://idp.example.com"));
        let msg = Config::load(Some(f.path()), &[], &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("https://"), "{msg}");
        let f = file(&provider("").replace("\"corp\"", "\"Corp IdP\""));
        assert!(Config::load(Some(f.path()), &[], &Overrides::default()).is_err());
    }

    #[test]
    fn commented_default_parses_back_to_defaults() {
        let text = Config::to_toml_commented();
        let f = file(&text);
        let cfg = Config::load(Some(f.path()), &[], &Overrides::default()).unwrap();
        assert_eq!(cfg, Config::default());
        for (key, _) in SETTINGS {
            let leaf = key.rsplit('.').next().unwrap();
            assert!(
                text.contains(&format!("\n{leaf} = ")) || text.contains(&format!("\n# {leaf} = ")),
                "{key} is not documented in to_toml_commented()"
            );
        }
        // and the serialized form of a Config also loads back
        let f = file(&toml::to_string(&Config::default()).unwrap());
        assert_eq!(
            Config::load(Some(f.path()), &[], &Overrides::default()).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn every_setting_has_an_env_var() {
        for (key, _) in SETTINGS {
            let name = env_name(key);
            let r = Config::load(None, &env(&[(&name, "")]), &Overrides::default());
            assert!(!matches!(r, Err(ConfigError::UnknownEnv { .. })), "{name}");
        }
    }

    #[test]
    fn durations_round_trip() {
        for (text, secs) in [
            ("30s", 30),
            ("12h", 43_200),
            ("7d", 604_800),
            ("1h30m", 5400),
            ("365d", 31_536_000),
        ] {
            assert_eq!(parse_duration(text).unwrap(), Duration::from_secs(secs));
            assert_eq!(format_duration(Duration::from_secs(secs)), text);
        }
        assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(format_duration(Duration::from_millis(1500)), "1s500ms");
        for bad in ["", "30", "h", "1x", "-1s", "1.5h", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn derived_public_url() {
        let mut c = Config::default();
        c.server.listen = "10.0.0.7:8443".parse().unwrap();
        assert!(c.uses_tls());
        assert_eq!(c.public_url(), "https://10.0.0.7:8443");
        c.server.tls.mode = TlsMode::Off;
        assert!(c.plain_http_on_public_address());
        assert_eq!(c.public_url(), "http://10.0.0.7:8443");
        c.server.listen = "[::1]:8080".parse().unwrap();
        assert_eq!(c.public_url(), "http://[::1]:8080");
        assert_eq!(c.public_host().as_deref(), Some("::1"));
        c.server.listen = "0.0.0.0:8080".parse().unwrap();
        let url = c.public_url();
        assert!(
            url.starts_with("http://") && url.ends_with(":8080") && !url.contains("0.0.0.0"),
            "{url}"
        );
        c.server.public_url = Some("https://kaas.example:8443/".into());
        assert_eq!(c.public_url(), "https://kaas.example:8443");
        assert_eq!(c.public_host().as_deref(), Some("kaas.example"));
    }
}
