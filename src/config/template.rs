//! The default configuration as a documented TOML file (`kaas config default`, packaging).
//! Kept beside the settings table's tests: every key must appear here, and the text must parse
//! back to `Config::default()`.

use super::{Config, format_duration};

/// `[server.limits]`, its own block so its keys sit together.
fn server_limits(l: &super::RequestLimits) -> String {
    let dur = format_duration;
    format!(
        r#"
[server.limits]
# What one client may ask of the server, so that none can take the box's memory or every
# connection, signed in or not. (The body size is server.max_body_bytes.)
# Open connections at once; more are closed when accepted. Behind a reverse proxy every
# connection comes from the proxy's address: raise max_connections_per_address to match.
max_connections = {conns}
max_connections_per_address = {per_address}
# Header fields, and bytes of the request line and headers, in one request (else 431).
max_headers = {headers}
max_header_bytes = {header_bytes}
# Nesting of arrays and objects in a JSON body (else 400).
max_json_depth = {depth}
# Time a client has to send a request's headers, also while a kept-alive connection waits
# for its next request; then the connection is closed (slow and idle clients).
header_read_timeout = "{header_timeout}"
# Time one request may take, reading its body included (else 408).
request_timeout = "{request_timeout}"
"#,
        conns = l.max_connections,
        per_address = l.max_connections_per_address,
        headers = l.max_headers,
        header_bytes = l.max_header_bytes,
        depth = l.max_json_depth,
        header_timeout = dur(l.header_read_timeout),
        request_timeout = dur(l.request_timeout),
    )
}

impl Config {
    /// The default configuration as a documented TOML file: every key with a comment. It parses
    /// back to `Config::default()` (tested).
    pub fn to_toml_commented() -> String {
        let d = Config::default();
        let dur = format_duration;
        format!(
            r#"# kaas configuration.
#
# Precedence: built-in defaults < this file < KAAS_* environment variables < command-line flags.
# Each key maps to an environment variable KAAS_<SECTION>_<KEY>, upper-cased, e.g.
# server.listen -> KAAS_SERVER_LISTEN, server.tls.mode -> KAAS_SERVER_TLS_MODE; lists are
# comma-separated. Unknown keys and unknown KAAS_* variables are errors.
# Durations are written like "30s", "15m", "12h", "7d" or "1h30m".

# Format version of this file. Only version {version} is supported.
version = {version}

[server]
# Address and port the HTTP(S) listener binds to.
listen = "{listen}"
# Base URL people use to reach kaas, used in setup and invitation links.
# Default: derived from `listen` and TLS, e.g. "https://<hostname>:<port>".
# public_url = "https://kaas.example:8443"
# Largest request body accepted, in bytes.
max_body_bytes = {max_body}
# How long in-flight requests may take to finish on shutdown.
shutdown_grace = "{grace}"
# Reverse proxies whose X-Forwarded-For header names the client (for login throttling
# and the audit log): IP addresses or CIDR networks, e.g. ["10.0.0.0/8", "192.0.2.1"].
# Empty: the connecting address is the client and X-Forwarded-For is ignored.
trusted_proxies = []
# Who may read /metrics. With neither setting, only clients on this machine (loopback,
# not through a proxy that adds X-Forwarded-For/Forwarded) may; others get 403.
# A bearer token scrapers must send (Authorization: Bearer ...), at least 16 characters;
# required on every listener when set. Never logged.
# metrics_token = "..."
# A second listener serving /metrics only, e.g. on an internal interface; the main
# listener then answers /metrics with 404.
# metrics_listen = "10.0.0.5:9100"
# Host names (besides the public URL's host, localhost and IP addresses) that requests
# may name in their Host header. The check guards against DNS rebinding and applies when
# public_url is set or `listen` is a loopback address; other names get 421.
allowed_hosts = []

[server.tls]
# "auto":  plain HTTP when `listen` is a loopback address, otherwise a self-signed
#          certificate generated once into <data.dir>/tls/.
# "files": use `cert` and `key` below (PEM files, both required).
# "off":   plain HTTP on any address (e.g. behind a TLS-terminating proxy).
mode = "{tls_mode}"
# Certificate chain (PEM), required when mode = "files".
# cert = "/etc/kaas/tls/cert.pem"
# Private key (PEM), required when mode = "files".
# key = "/etc/kaas/tls/key.pem"
{server_limits}
[data]
# Directory holding the database (kaas.redb) and the generated TLS certificate.
dir = "{data_dir}"

[log]
# "auto" (human-readable on a terminal, JSON otherwise), "human" or "json".
format = "{log_format}"
# Tracing filter, e.g. "info" or "kaas=debug,tower_http=info". KAAS_LOG overrides it.
level = "{log_level}"

[auth]
# A session ends after this long without use.
session_idle_timeout = "{idle}"
# A session ends this long after sign-in, however active.
session_absolute_timeout = "{absolute}"
# Signed-in sessions one user may hold at once; the oldest is ended beyond this.
max_sessions_per_user = {max_sessions}
# Shortest password accepted (characters, at least 8).
password_min_length = {pw_min}
# How long an invitation link stays valid.
invitation_ttl = "{invitation}"
# Longest lifetime an API token may be given.
api_token_max_lifetime = "{token_life}"
# How long the first-run setup link stays valid.
setup_link_ttl = "{setup}"

[limits]
# Defaults for new organizations; the platform administrator can change them per organization.
# Workspaces one organization may have.
workspaces_per_org = {ws_per_org}
# Members one organization may have.
members_per_org = {members_per_org}
# Organizations one user may own (platform administrators are not limited); 0 = no limit.
orgs_per_user = {orgs_per_user}
# Who may create organizations: "anyone" signed in, or "admins" (platform administrators).
org_creation = "anyone"
# Workspaces (virtual clusters) on the whole box, all organizations together; 0 = no limit.
workspaces_total = {workspaces_total}

[host]
# Kubeconfig for the host K3s cluster. Default: in-cluster config, then the K3s default.
# kubeconfig = "/etc/rancher/k3s/k3s.yaml"
# Bearer token for the host API server, replacing the kubeconfig's credentials. Never logged.
# token = "..."
# Hostnames or IP addresses clients use to reach this box (virtual cluster and TLS SANs).
external_addresses = []
# K3s version pinned for virtual clusters (air-gapped boxes have no "latest").
k3s_version = "{k3s}"
# Default lifetime of a tenant kubeconfig.
kubeconfig_lifetime = "{kc_life}"
# Longest lifetime a tenant kubeconfig may be given.
kubeconfig_max_lifetime = "{kc_max}"
# How often every workspace is reconciled even without changes.
resync_interval = "{resync}"
# How long kaas trusts what it last found inside a virtual cluster (roles, bindings, project
# namespaces) while it wants the same there: a resync then sends nothing into virtual
# clusters, and what a tenant changes by hand there is put back within this.
inside_check_interval = "{inside_check}"

[backup]
# Directory for backups (scheduled ones and `kaas backup` without --output).
# Default: <data.dir>/backups.
# dir = "/var/lib/kaas/backups"
# How often the running server takes a backup; "0s" turns scheduled backups off.
interval = "{backup_interval}"
# How many scheduled backups to keep; older ones are deleted.
keep = {backup_keep}

[billing]
# How often the meter samples every workspace (state, plan, dedicated nodes and the
# host's quota usage) into hourly usage records. Changes made through kaas (plan
# changes, deletions, node assignments) are recorded to the second regardless.
meter_interval = "{meter}"

[issuer]
# kaas is the OpenID Connect issuer (at the public URL) that every virtual cluster's
# kube-apiserver trusts: kubectl gets short-lived tokens through `kaas credential`.
# How long one token is valid: the longest a removed member or a disabled user keeps
# kubectl access.
token_lifetime = "{issuer_token}"
# How long one signing key signs before a new one takes over (the old one stays
# published until every token it signed has expired).
key_rotation = "{issuer_rotation}"
# PEM file of the CA the kube-apiservers use to reach kaas over HTTPS. Unset: the
# certificate kaas serves itself; behind a TLS-terminating proxy, the system's CAs.
# ca_file = "/etc/kaas/issuer-ca.pem"

[mfa]
# Who must use a second factor (an authenticator app's six-digit codes) to sign in with a
# password: "none" (each user may turn it on from their account page), "admins" (platform
# administrators) or "everyone". Those without one enrol at their next sign-in.
require = "none"

[isolation]
# kaas's NetworkPolicies in each workspace namespace let its pods reach the internet, cluster
# DNS and their own namespace, and deny these (plus every host node's address, found by
# itself): the host's pod network(s) (K3s --cluster-cidr) and Service network(s)
# (--service-cidr).
pod_cidrs = ["10.42.0.0/16"]
service_cidrs = ["10.43.0.0/16"]
# More networks or addresses to deny, e.g. the host API server's VIP if it is not a node's.
denied_egress = []
# The namespace K3K runs in (its controller may reach etcd on the k3s servers).
k3k_namespace = "k3k-system"

[expose]
# Plans choose how tenants reach their API server: "nodeport" (a port on every node, at the
# first host.external_addresses entry), "loadbalancer" (K3s ServiceLB; the address it
# gives) or "ingress": the host name ws-<short>.<ingress_domain> on the host's Traefik,
# TLS passed through to the virtual cluster (an IngressRouteTCP). DNS must send
# *.<ingress_domain> to the host. Empty: ingress plans cannot be served.
ingress_domain = ""
# The port of Traefik's TLS entry point ("websecure").
ingress_port = 443

# Single sign-on through OpenID Connect identity providers (Keycloak, Dex, Authentik,
# Entra ID, Google Workspace, ...): one [[sso.providers]] table each, one button each on
# the sign-in page. Register kaas at the provider with the redirect URI
# <public URL>/sso/<id>/callback. Endpoints and keys are read from the issuer's discovery
# document at the first sign-in. Sign-ins through a provider skip kaas's second factor
# (the provider does its own). Platform administrators can also add providers in the
# console (Administration -> Sign-in providers); those here are read-only there.
[sso]
# providers = []                 # none by default; one [[sso.providers]] table each:
# [[sso.providers]]
# id = "corp"                      # in URLs: lower-case letters, digits, dashes
# name = "Corp SSO"                # the button says "Sign in with Corp SSO"
# issuer = "https://idp.example.com/realms/corp"
# client_id = "kaas"
# client_secret = "..."            # never shown back nor logged
# scopes = ["openid", "email", "profile"]
# ca_file = "/etc/kaas/idp-ca.pem" # trusted instead of the system's CAs for this provider
# # Who gets an account at their first sign-in (a verified e-mail address that already has
# # one is always linked to it): "open" (anyone), "invited" (an address with a pending
# # invitation) or "domains" (addresses in allowed_domains).
# accounts = "invited"
# allowed_domains = ["example.com"]
# sso_only_linked = false          # true: a linked account's local password stops working
# # Organization roles from the provider's groups, re-applied at each sign-in and shown as
# # managed by the identity provider. Roles: "member", "admin", "owner".
# groups_claim = "groups"
# groups = [{{ group = "k8s-admins", org = "acme", role = "admin" }}]
"#,
            version = d.version,
            listen = d.server.listen,
            max_body = d.server.max_body_bytes,
            grace = dur(d.server.shutdown_grace),
            server_limits = server_limits(&d.server.limits),
            tls_mode = "auto",
            data_dir = d.data.dir.display(),
            log_format = "auto",
            log_level = d.log.level,
            idle = dur(d.auth.session_idle_timeout),
            absolute = dur(d.auth.session_absolute_timeout),
            max_sessions = d.auth.max_sessions_per_user,
            pw_min = d.auth.password_min_length,
            invitation = dur(d.auth.invitation_ttl),
            token_life = dur(d.auth.api_token_max_lifetime),
            setup = dur(d.auth.setup_link_ttl),
            ws_per_org = d.limits.workspaces_per_org,
            members_per_org = d.limits.members_per_org,
            orgs_per_user = d.limits.orgs_per_user,
            workspaces_total = d.limits.workspaces_total,
            k3s = d.host.k3s_version,
            kc_life = dur(d.host.kubeconfig_lifetime),
            kc_max = dur(d.host.kubeconfig_max_lifetime),
            resync = dur(d.host.resync_interval),
            inside_check = dur(d.host.inside_check_interval),
            backup_interval = dur(d.backup.interval),
            backup_keep = d.backup.keep,
            meter = dur(d.billing.meter_interval),
            issuer_token = dur(d.issuer.token_lifetime),
            issuer_rotation = dur(d.issuer.key_rotation),
        )
    }
}
