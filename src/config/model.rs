//! The settings themselves: one struct per section of the config file, their defaults, and
//! [`Secret`], which never prints what it holds.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{SUPPORTED_VERSION, friendly_duration};

// ---------------------------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub version: u32,
    pub server: ServerConfig,
    pub data: DataConfig,
    pub log: LogConfig,
    pub auth: AuthConfig,
    pub limits: LimitsConfig,
    pub host: HostConfig,
    pub backup: BackupConfig,
    pub billing: BillingConfig,
    pub issuer: IssuerConfig,
    pub mfa: MfaConfig,
    pub isolation: IsolationConfig,
    pub expose: ExposeConfig,
    pub sso: SsoConfig,
}

/// `[sso]`: single sign-on through OpenID Connect identity providers.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SsoConfig {
    /// `[[sso.providers]]`, each a button on the sign-in page.
    pub providers: Vec<SsoProvider>,
}

/// One OpenID Connect provider. Its endpoints and keys come from the issuer's discovery
/// document (`<issuer>/.well-known/openid-configuration`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsoProvider {
    /// In URLs (`/sso/<id>/callback`): lower-case letters, digits and dashes.
    pub id: String,
    /// On the sign-in button: "Sign in with <name>".
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Secret<String>,
    #[serde(default = "default_sso_scopes")]
    pub scopes: Vec<String>,
    /// PEM certificates trusted (instead of the system's) for the provider's HTTPS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub accounts: crate::domain::sso::AccountPolicy,
    /// For `accounts = "domains"`.
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    /// Existing accounts linked on sign-in lose their local password (SSO only).
    #[serde(default)]
    pub sso_only_linked: bool,
    /// The ID token claim that lists the person's groups (e.g. "groups").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_claim: Option<String>,
    #[serde(default)]
    pub groups: Vec<crate::domain::sso::GroupMapping>,
}

fn default_sso_scopes() -> Vec<String> {
    vec!["openid".into(), "email".into(), "profile".into()]
}

/// `[mfa]`: the second factor of local accounts.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MfaConfig {
    /// Who must enrol a second factor (at their next sign-in): "none", "admins", "everyone".
    pub require: crate::domain::mfa::MfaRequirement,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Base URL people use (setup and invitation links). None: derived, see [`Config::public_url`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    pub max_body_bytes: usize,
    #[serde(with = "friendly_duration")]
    pub shutdown_grace: Duration,
    /// Reverse proxies (addresses or CIDR networks) whose `X-Forwarded-For` names the client,
    /// for throttling and the audit log. Empty: the socket peer is the client.
    pub trusted_proxies: Vec<String>,
    /// Bearer token `/metrics` requires when set (see `app::edge`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_token: Option<Secret<String>>,
    /// A separate listener that serves `/metrics` only; the main one then does not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
    /// Host names accepted besides the public URL's host, localhost and IP addresses
    /// (the Host check against DNS rebinding, see `app::edge`).
    pub allowed_hosts: Vec<String>,
    pub tls: TlsConfig,
    pub limits: RequestLimits,
}

/// `[server.limits]`: how much one client may ask of the server, so that no client (signed
/// in or not) can take the box's memory or every connection. The body size is
/// `server.max_body_bytes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RequestLimits {
    /// Open connections at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Open connections at once from one client address.
    pub max_connections_per_address: usize,
    /// Header fields in one request (HTTP/1.1).
    pub max_headers: usize,
    /// Bytes of one request's head (request line and headers).
    pub max_header_bytes: usize,
    /// Nesting of arrays and objects in a JSON body.
    pub max_json_depth: usize,
    /// Time a client has to send a request's head, also while a kept-alive connection waits
    /// for its next request; then the connection is closed (slow clients, idle connections).
    #[serde(with = "friendly_duration")]
    pub header_read_timeout: Duration,
    /// Time one request may take, reading its body included; then 408.
    #[serde(with = "friendly_duration")]
    pub request_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    pub mode: TlsMode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain HTTP on a loopback listener, otherwise a self-signed certificate in `<data>/tls/`.
    #[default]
    Auto,
    /// `server.tls.cert` and `server.tls.key` (PEM) are used.
    Files,
    /// Plain HTTP, explicitly chosen (e.g. behind a TLS-terminating proxy).
    Off,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    pub dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing `EnvFilter` directive; `KAAS_LOG` overrides it at startup.
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable when stderr is a terminal, JSON otherwise (journald, containers).
    #[default]
    Auto,
    Human,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(LogFormat::Auto),
            "human" => Ok(LogFormat::Human),
            "json" => Ok(LogFormat::Json),
            other => Err(format!(
                "unknown log format \"{other}\" (expected auto, human or json)"
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(with = "friendly_duration")]
    pub session_idle_timeout: Duration,
    #[serde(with = "friendly_duration")]
    pub session_absolute_timeout: Duration,
    pub max_sessions_per_user: u32,
    pub password_min_length: usize,
    #[serde(with = "friendly_duration")]
    pub invitation_ttl: Duration,
    #[serde(with = "friendly_duration")]
    pub api_token_max_lifetime: Duration,
    #[serde(with = "friendly_duration")]
    pub setup_link_ttl: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    pub workspaces_per_org: u32,
    pub members_per_org: u32,
    /// Organizations one user may own (platform administrators: no limit); 0 = no limit.
    pub orgs_per_user: u32,
    /// Who may create organizations.
    pub org_creation: OrgCreation,
    /// Workspaces on the whole box, all organizations together; 0 = no limit.
    pub workspaces_total: u32,
}

/// Who may create organizations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrgCreation {
    /// Every signed-in user (within `orgs_per_user`).
    #[default]
    Anyone,
    /// Platform administrators only.
    Admins,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostConfig {
    /// None: in-cluster config, then `~/.kube/config` / the K3s default (the caller decides).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<PathBuf>,
    /// Bearer token for the host API server, replacing the kubeconfig's credentials.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret<String>>,
    /// Addresses (hostnames or IPs) clients use to reach this box; used as TLS SANs.
    pub external_addresses: Vec<String>,
    pub k3s_version: String,
    #[serde(with = "friendly_duration")]
    pub kubeconfig_lifetime: Duration,
    #[serde(with = "friendly_duration")]
    pub kubeconfig_max_lifetime: Duration,
    #[serde(with = "friendly_duration")]
    pub resync_interval: Duration,
    /// How long a confirmed inside of a virtual cluster is trusted while kaas wants the same.
    #[serde(with = "friendly_duration")]
    pub inside_check_interval: Duration,
}

/// `[expose]`: how plans with `expose = "ingress"` or `"loadbalancer"` reach the virtual
/// clusters (see `host::expose`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExposeConfig {
    /// Workspaces on an ingress plan get the host name `ws-<short>.<ingress_domain>`; its
    /// DNS must send `*.<ingress_domain>` to the host's ingress controller. Empty: ingress
    /// plans cannot be served.
    pub ingress_domain: String,
    /// The port of the ingress controller's TLS entry point (Traefik's `websecure`).
    pub ingress_port: u16,
}

impl Default for ExposeConfig {
    fn default() -> Self {
        ExposeConfig {
            ingress_domain: String::new(),
            ingress_port: 443,
        }
    }
}

/// `[isolation]`: what the NetworkPolicies kaas writes in every workspace namespace deny
/// (see `host::isolation`). The defaults are K3s's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IsolationConfig {
    /// The host's pod network(s) (K3s `--cluster-cidr`).
    pub pod_cidrs: Vec<String>,
    /// The host's Service network(s) (K3s `--service-cidr`).
    pub service_cidrs: Vec<String>,
    /// More networks or addresses no workspace pod may reach, e.g. the host API server's
    /// address when it is not a node address. Node addresses are denied without saying.
    pub denied_egress: Vec<String>,
    /// The namespace K3K's controller runs in.
    pub k3k_namespace: String,
}

impl Default for IsolationConfig {
    fn default() -> Self {
        IsolationConfig {
            pod_cidrs: vec!["10.42.0.0/16".to_owned()],
            service_cidrs: vec!["10.43.0.0/16".to_owned()],
            denied_egress: Vec::new(),
            k3k_namespace: "k3k-system".to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackupConfig {
    /// Where backups go. None: `<data.dir>/backups` (see [`Config::backup_dir`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// How often the server takes a scheduled backup; zero turns scheduled backups off.
    #[serde(with = "friendly_duration")]
    pub interval: Duration,
    /// How many scheduled backups are kept (older ones are deleted).
    pub keep: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BillingConfig {
    /// How often the meter samples every workspace (state, plan, nodes, quota usage).
    #[serde(with = "friendly_duration")]
    pub meter_interval: Duration,
}

impl Default for BillingConfig {
    fn default() -> Self {
        BillingConfig {
            meter_interval: Duration::from_secs(60),
        }
    }
}

/// `[issuer]`: kaas as the OpenID Connect issuer that every virtual cluster's kube-apiserver
/// trusts for kubectl tokens (see `domain::oidc`). The issuer URL is the public URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IssuerConfig {
    /// How long a cluster token is valid: the longest a removed member keeps kubectl access.
    #[serde(with = "friendly_duration")]
    pub token_lifetime: Duration,
    /// How long one signing key signs before a new one takes over.
    #[serde(with = "friendly_duration")]
    pub key_rotation: Duration,
    /// PEM file of the CA kube-apiservers trust to reach the issuer over HTTPS. None: the
    /// certificate kaas serves (its own self-signed one, or `server.tls.cert`); behind a
    /// TLS-terminating proxy without kaas's own TLS, the system's trust store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

impl Default for IssuerConfig {
    fn default() -> Self {
        IssuerConfig {
            token_lifetime: Duration::from_secs(10 * 60),
            key_rotation: Duration::from_secs(DAY),
            ca_file: None,
        }
    }
}

/// Values given on the command line; they win over the file and the environment.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub log_format: Option<LogFormat>,
}

/// A value that must never be printed. `Debug`, `Display` and `Serialize` all give `[redacted]`;
/// read it with [`Secret::expose`] at the one place that needs it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Secret(value)
    }
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T> Serialize for Secret<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // NB: serializing a Config is for showing it; the real value must not reach the output.
        s.serialize_str("[redacted]")
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(Secret)
    }
}

// ---------------------------------------------------------------------------------------------
// Defaults
// ---------------------------------------------------------------------------------------------

const HOUR: u64 = 3600;
pub(super) const DAY: u64 = 24 * HOUR;

impl Default for Config {
    fn default() -> Self {
        Config {
            version: SUPPORTED_VERSION,
            server: ServerConfig::default(),
            data: DataConfig::default(),
            log: LogConfig::default(),
            auth: AuthConfig::default(),
            limits: LimitsConfig::default(),
            host: HostConfig::default(),
            backup: BackupConfig::default(),
            billing: BillingConfig::default(),
            issuer: IssuerConfig::default(),
            mfa: MfaConfig::default(),
            isolation: IsolationConfig::default(),
            expose: ExposeConfig::default(),
            sso: SsoConfig::default(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080),
            public_url: None,
            max_body_bytes: 1024 * 1024,
            shutdown_grace: Duration::from_secs(30),
            trusted_proxies: Vec::new(),
            metrics_token: None,
            metrics_listen: None,
            allowed_hosts: Vec::new(),
            tls: TlsConfig::default(),
            limits: RequestLimits::default(),
        }
    }
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits {
            max_connections: 1024,
            max_connections_per_address: 128,
            max_headers: 64,
            max_header_bytes: 16 * 1024,
            max_json_depth: 32,
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
        }
    }
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            mode: TlsMode::Auto,
            cert: None,
            key: None,
        }
    }
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            dir: PathBuf::from("./kaas-data"),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Auto,
            level: "info".to_owned(),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            session_idle_timeout: Duration::from_secs(12 * HOUR),
            session_absolute_timeout: Duration::from_secs(7 * DAY),
            max_sessions_per_user: 3,
            password_min_length: 12,
            invitation_ttl: Duration::from_secs(7 * DAY),
            api_token_max_lifetime: Duration::from_secs(365 * DAY),
            setup_link_ttl: Duration::from_secs(24 * HOUR),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            workspaces_per_org: 10,
            members_per_org: 50,
            orgs_per_user: 3,
            org_creation: OrgCreation::Anyone,
            workspaces_total: 100,
        }
    }
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            kubeconfig: None,
            token: None,
            external_addresses: Vec::new(),
            k3s_version: "v1.33.1-k3s1".to_owned(),
            kubeconfig_lifetime: Duration::from_secs(8 * HOUR),
            kubeconfig_max_lifetime: Duration::from_secs(7 * DAY),
            resync_interval: Duration::from_secs(5 * 60),
            inside_check_interval: Duration::from_secs(15 * 60),
        }
    }
}

impl Default for BackupConfig {
    fn default() -> Self {
        BackupConfig {
            dir: None,
            interval: Duration::from_secs(DAY),
            keep: 7,
        }
    }
}
