//! How the layers of configuration are read: the table of every setting, the file walker
//! that names unknown keys with their full dotted path, and the `KAAS_*` environment mapping.
//! Every value is checked against its setting's kind here, so the final deserialization into
//! `Config` cannot fail on a value the user gave.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use super::duration::parse_duration;
use super::{ConfigError, ENV_CONFIG_FILE, ENV_LOG_FILTER, ENV_PREFIX, SUPPORTED_VERSION};

/// What a setting's value must look like; used to check file values and to parse env values
/// with an error that names where the bad value came from.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    Str,
    OptStr,
    OptSecret,
    U32,
    Usize,
    Duration,
    Path,
    OptPath,
    SocketAddr,
    OptSocketAddr,
    StrList,
    /// A list of tables whose fields serde checks (`[[sso.providers]]`).
    TableList,
    Enum(&'static [&'static str]),
}

/// Every leaf setting, by dotted path. Sections are the dotted prefixes.
pub(super) const SETTINGS: &[(&str, Kind)] = &[
    ("server.listen", Kind::SocketAddr),
    ("server.public_url", Kind::OptStr),
    ("server.max_body_bytes", Kind::Usize),
    ("server.shutdown_grace", Kind::Duration),
    ("server.trusted_proxies", Kind::StrList),
    ("server.metrics_token", Kind::OptSecret),
    ("server.metrics_listen", Kind::OptSocketAddr),
    ("server.allowed_hosts", Kind::StrList),
    ("server.tls.mode", Kind::Enum(&["auto", "files", "off"])),
    ("server.tls.cert", Kind::OptPath),
    ("server.tls.key", Kind::OptPath),
    ("server.limits.max_connections", Kind::Usize),
    ("server.limits.max_connections_per_address", Kind::Usize),
    ("server.limits.max_headers", Kind::Usize),
    ("server.limits.max_header_bytes", Kind::Usize),
    ("server.limits.max_json_depth", Kind::Usize),
    ("server.limits.header_read_timeout", Kind::Duration),
    ("server.limits.request_timeout", Kind::Duration),
    ("data.dir", Kind::Path),
    ("log.format", Kind::Enum(&["auto", "human", "json"])),
    ("log.level", Kind::Str),
    ("auth.session_idle_timeout", Kind::Duration),
    ("auth.session_absolute_timeout", Kind::Duration),
    ("auth.max_sessions_per_user", Kind::U32),
    ("auth.password_min_length", Kind::Usize),
    ("auth.invitation_ttl", Kind::Duration),
    ("auth.api_token_max_lifetime", Kind::Duration),
    ("auth.setup_link_ttl", Kind::Duration),
    ("limits.workspaces_per_org", Kind::U32),
    ("limits.members_per_org", Kind::U32),
    ("limits.orgs_per_user", Kind::U32),
    ("limits.org_creation", Kind::Enum(&["anyone", "admins"])),
    ("limits.workspaces_total", Kind::U32),
    ("mfa.require", Kind::Enum(&["none", "admins", "everyone"])),
    ("host.kubeconfig", Kind::OptPath),
    ("host.token", Kind::OptSecret),
    ("host.external_addresses", Kind::StrList),
    ("host.k3s_version", Kind::Str),
    ("host.kubeconfig_lifetime", Kind::Duration),
    ("host.kubeconfig_max_lifetime", Kind::Duration),
    ("host.resync_interval", Kind::Duration),
    ("host.inside_check_interval", Kind::Duration),
    ("backup.dir", Kind::OptPath),
    ("backup.interval", Kind::Duration),
    ("backup.keep", Kind::U32),
    ("billing.meter_interval", Kind::Duration),
    ("issuer.token_lifetime", Kind::Duration),
    ("issuer.key_rotation", Kind::Duration),
    ("issuer.ca_file", Kind::OptPath),
    ("isolation.pod_cidrs", Kind::StrList),
    ("isolation.service_cidrs", Kind::StrList),
    ("isolation.denied_egress", Kind::StrList),
    ("isolation.k3k_namespace", Kind::Str),
    ("expose.ingress_domain", Kind::Str),
    ("expose.ingress_port", Kind::U32),
    ("sso.providers", Kind::TableList),
];

fn setting_kind(key: &str) -> Option<Kind> {
    SETTINGS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, kind)| *kind)
}

fn is_section(key: &str) -> bool {
    SETTINGS
        .iter()
        .any(|(k, _)| k.starts_with(key) && k.as_bytes().get(key.len()) == Some(&b'.'))
}

pub(super) fn env_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.replace('.', "_").to_ascii_uppercase())
}

/// Checks a value already in TOML form against its kind; the message completes
/// "invalid value for X: ...".
fn check_value(kind: Kind, value: &toml::Value) -> Result<(), String> {
    use toml::Value as V;
    let got = || describe(value);
    match (kind, value) {
        (Kind::Str | Kind::OptStr | Kind::OptSecret | Kind::Path | Kind::OptPath, V::String(_)) => {
            Ok(())
        }
        (Kind::Str | Kind::OptStr | Kind::OptSecret, _) => {
            Err(format!("expected a string, got {}", got()))
        }
        (Kind::Path | Kind::OptPath, _) => Err(format!("expected a path string, got {}", got())),
        (Kind::U32, V::Integer(i)) if u32::try_from(*i).is_ok() => Ok(()),
        (Kind::U32, _) => Err(format!(
            "expected a whole number from 0 to {}, got {}",
            u32::MAX,
            got()
        )),
        (Kind::Usize, V::Integer(i)) if usize::try_from(*i).is_ok() => Ok(()),
        (Kind::Usize, _) => Err(format!(
            "expected a non-negative whole number, got {}",
            got()
        )),
        (Kind::Duration, V::String(s)) => parse_duration(s).map(|_| ()),
        (Kind::Duration, _) => Err(format!(
            "expected a duration string like \"30s\", \"12h\" or \"1h30m\", got {}",
            got()
        )),
        (Kind::SocketAddr | Kind::OptSocketAddr, V::String(s))
            if s.parse::<SocketAddr>().is_ok() =>
        {
            Ok(())
        }
        (Kind::SocketAddr | Kind::OptSocketAddr, _) => Err(format!(
            "expected an address with port like \"127.0.0.1:8080\" or \"[::]:8443\", got {}",
            got()
        )),
        (Kind::StrList, V::Array(items)) if items.iter().all(|v| v.is_str()) => Ok(()),
        (Kind::StrList, _) => Err(format!("expected a list of strings, got {}", got())),
        (Kind::TableList, V::Array(items)) if items.iter().all(|v| v.is_table()) => Ok(()),
        (Kind::TableList, _) => Err(format!("expected [[tables]], got {}", got())),
        (Kind::Enum(allowed), V::String(s)) if allowed.contains(&s.as_str()) => Ok(()),
        (Kind::Enum(allowed), _) => Err(format!(
            "expected one of {}, got {}",
            allowed
                .iter()
                .map(|a| format!("\"{a}\""))
                .collect::<Vec<_>>()
                .join(", "),
            got()
        )),
    }
}

fn describe(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => format!("\"{s}\""),
        toml::Value::Table(_) => "a table".to_owned(),
        toml::Value::Array(_) => "a list".to_owned(),
        other => other.to_string(),
    }
}

/// Turns an environment variable's text into the TOML value the file would have held.
/// `Ok(None)` means "unset this optional setting" (an empty value for an optional key).
fn env_value(kind: Kind, raw: &str) -> Result<Option<toml::Value>, String> {
    let text = raw.trim();
    let value = match kind {
        Kind::OptStr | Kind::OptPath | Kind::OptSecret | Kind::OptSocketAddr if text.is_empty() => {
            return Ok(None);
        }
        Kind::StrList => toml::Value::Array(
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_owned()))
                .collect(),
        ),
        Kind::U32 | Kind::Usize => match text.parse::<i64>() {
            Ok(i) => toml::Value::Integer(i),
            Err(_) => return Err(format!("expected a whole number, got \"{raw}\"")),
        },
        // Secrets keep surrounding whitespace out of the value but are otherwise taken verbatim.
        _ => toml::Value::String(text.to_owned()),
    };
    check_value(kind, &value).map(|()| Some(value))
}

pub(super) fn read_file(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ConfigError::FileNotFound(path.to_owned()));
        }
        Err(source) => {
            return Err(ConfigError::ReadFile {
                path: path.to_owned(),
                source,
            });
        }
    };
    let table: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Syntax {
        path: path.to_owned(),
        line: e.span().map_or(1, |s| line_of(&text, s.start)),
        message: one_line(e.message()),
    })?;

    // Checked first so a newer file is refused as such, not as a list of unknown keys.
    match table.get("version") {
        None => {} // a file without a version is taken as the current version
        Some(toml::Value::Integer(v)) if *v == i64::from(SUPPORTED_VERSION) => {}
        Some(toml::Value::Integer(v)) => {
            return Err(ConfigError::UnsupportedVersion {
                found: *v,
                path: path.to_owned(),
            });
        }
        Some(other) => {
            return Err(ConfigError::InvalidFileValue {
                key: "version".into(),
                path: path.to_owned(),
                problem: format!(
                    "expected the number {SUPPORTED_VERSION}, got {}",
                    describe(other)
                ),
            });
        }
    }
    check_table(&table, "", path)?;
    Ok(table)
}

/// Walks the file's tables so an unknown key is reported with its full dotted path.
fn check_table(table: &toml::Table, prefix: &str, path: &Path) -> Result<(), ConfigError> {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        if key == "version" {
            continue;
        }
        if let Some(kind) = setting_kind(&key) {
            check_value(kind, v).map_err(|problem| ConfigError::InvalidFileValue {
                key: key.clone(),
                path: path.to_owned(),
                problem,
            })?;
        } else if is_section(&key) {
            match v {
                toml::Value::Table(sub) => check_table(sub, &key, path)?,
                other => {
                    return Err(ConfigError::InvalidFileValue {
                        problem: format!("expected a [{key}] section, got {}", describe(other)),
                        key,
                        path: path.to_owned(),
                    });
                }
            }
        } else {
            let hint = closest(&key, SETTINGS.iter().map(|(k, _)| *k));
            return Err(ConfigError::UnknownKey {
                key,
                path: path.to_owned(),
                hint,
            });
        }
    }
    Ok(())
}

pub(super) fn apply_env(
    table: &mut toml::Table,
    env: &[(String, String)],
) -> Result<(), ConfigError> {
    // Sorted so that, with several bad variables, the same one is reported every time.
    let vars: BTreeMap<&str, &str> = env
        .iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    for (name, raw) in vars {
        if name == ENV_CONFIG_FILE || name == ENV_LOG_FILTER {
            continue;
        }
        let Some((key, kind)) = SETTINGS.iter().find(|(k, _)| env_name(k) == name) else {
            let hint = closest(name, SETTINGS.iter().map(|(k, _)| *k))
                .map(env_name)
                .filter(|h| h != name);
            return Err(ConfigError::UnknownEnv {
                name: name.to_owned(),
                hint,
            });
        };
        let value = env_value(*kind, raw).map_err(|problem| ConfigError::InvalidEnv {
            name: name.to_owned(),
            problem,
        })?;
        set_path(table, key, value);
    }
    Ok(())
}

/// Sets (or, with `None`, removes) a dotted key, creating sections as needed. Sections in the
/// table were checked to be tables, so the non-table branch only happens with a fresh table.
fn set_path(table: &mut toml::Table, key: &str, value: Option<toml::Value>) {
    let mut parts: Vec<&str> = key.split('.').collect();
    let Some(leaf) = parts.pop() else { return };
    let mut cur = table;
    for part in parts {
        let entry = cur
            .entry(part.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        let toml::Value::Table(next) = entry else {
            return;
        };
        cur = next;
    }
    match value {
        Some(v) => {
            cur.insert(leaf.to_owned(), v);
        }
        None => {
            cur.remove(leaf);
        }
    }
}

/// The known name nearest to `given` (case-insensitively), if it is plausibly a typo of it.
fn closest<'a>(given: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let norm = |s: &str| s.to_ascii_lowercase().replace('_', ".");
    let given = norm(given.strip_prefix(ENV_PREFIX).unwrap_or(given));
    candidates
        .map(|c| (edit_distance(&given, &norm(c)), c))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

// Every index is below the rows' length `b.len() + 1` by construction (Wagner-Fischer).
#[allow(clippy::indexing_slicing)]
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(1, |t| t.matches('\n').count() + 1)
}

pub(super) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub(super) fn is_k3s_version(v: &str) -> bool {
    let Some(rest) = v.strip_prefix('v') else {
        return false;
    };
    let Some((semver, k3s)) = rest.split_once("-k3s") else {
        return false;
    };
    let nums: Vec<&str> = semver.split('.').collect();
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    nums.len() == 3 && nums.iter().all(|n| digits(n)) && digits(k3s)
}

/// RFC 1123 hostname: dot-separated labels of letters, digits and inner hyphens.
pub(super) fn is_hostname(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

pub(super) fn check_public_url(url: &str) -> Result<(), String> {
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return Err(format!("\"{url}\" must start with http:// or https://"));
    };
    if rest.is_empty() || rest.starts_with('/') || url.chars().any(char::is_whitespace) {
        return Err(format!(
            "\"{url}\" is not a URL with a host, like \"https://kaas.example:8443\""
        ));
    }
    if rest.contains(['?', '#']) {
        return Err(format!("\"{url}\" must not contain a query or fragment"));
    }
    Ok(())
}

pub(super) fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_owned())
}
