//! The shell client (`kaas login`, `kaas ws …`): the same binary used from a user's terminal
//! against a kaas server over HTTPS. It talks only to the JSON API, never to a store; its
//! credential is an ordinary API token kept in the credentials file (see [`creds`]).
//! Every failure is one line on stderr and a non-zero exit; the API's error message is
//! shown as it is.

pub mod commands;
pub mod creds;
pub mod http;
pub mod kubeconfig;
pub mod output;

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use clap::{Args, Subcommand};

pub use commands::run;
use creds::{Credentials, ServerCredential};
use http::{Api, normalize_base};
use output::Format;

/// The client's subcommands, flattened into `kaas`'s own.
#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Sign in to a kaas server from this terminal (password, or --device to approve in the
    /// console); keeps a revocable API token in ~/.config/kaas/credentials.toml.
    Login(LoginArgs),
    /// Revoke this terminal's credential on the server and forget it.
    Logout {
        #[command(flatten)]
        server: ServerArg,
    },
    /// Organizations you belong to.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Workspaces (virtual clusters).
    #[command(subcommand, name = "ws", alias = "workspace")]
    Ws(WsCommand),
    /// Projects (namespaces inside a workspace).
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Download a kubeconfig for a workspace (to stdout, a file, or merged into ~/.kube/config).
    Kubeconfig(KubeconfigArgs),
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// The server's address, e.g. https://kaas.example.com:8443.
    pub url: String,
    /// Sign in by approving a code in the console (in a browser where you are signed in).
    #[arg(long)]
    pub device: bool,
    /// Your e-mail address (asked for on a terminal if not given).
    #[arg(long, conflicts_with = "device")]
    pub email: Option<String>,
    /// Read the password from standard input (one line) instead of prompting.
    #[arg(long, conflicts_with = "device")]
    pub password_stdin: bool,
    /// PEM file of the CA (or the self-signed certificate) the server's certificate is
    /// signed with; remembered for this server.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// The credential's name in your API token list. Default: "kaas login on HOSTNAME".
    #[arg(long)]
    pub name: Option<String>,
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

/// Which signed-in server to use.
#[derive(Args, Debug, Clone)]
pub struct ServerArg {
    /// A server you are logged in to (its address); default: the last one you logged in to.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
}

/// Options every listing and object command takes.
#[derive(Args, Debug, Clone)]
pub struct Common {
    #[command(flatten)]
    pub server: ServerArg,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

/// The organization to look workspaces up in.
#[derive(Args, Debug, Clone)]
pub struct OrgArg {
    /// Organization name or id; default: your only organization.
    #[arg(long)]
    pub org: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum OrgCommand {
    /// List your organizations.
    List {
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand, Debug)]
pub enum WsCommand {
    /// List the workspaces of an organization.
    List {
        #[command(flatten)]
        org: OrgArg,
        #[command(flatten)]
        common: Common,
    },
    /// Create a workspace; with --wait, follow its state until Ready.
    Create {
        name: String,
        /// The plan, e.g. starter.
        #[arg(long)]
        plan: String,
        #[command(flatten)]
        org: OrgArg,
        /// Wait until the workspace is Ready, printing each state change on stderr; fail with
        /// the reason if it fails (an error kaas retries only once it lasts two minutes).
        #[arg(long)]
        wait: bool,
        /// How long --wait waits, in seconds.
        #[arg(long, default_value_t = 600, value_name = "SECONDS")]
        timeout: u64,
        #[command(flatten)]
        common: Common,
    },
    /// Show a workspace.
    Get {
        /// Workspace name or id.
        ws: String,
        #[command(flatten)]
        org: OrgArg,
        #[command(flatten)]
        common: Common,
    },
    /// Delete a workspace (its virtual cluster and everything in it).
    Delete {
        /// Workspace name or id.
        ws: String,
        #[command(flatten)]
        org: OrgArg,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand, Debug)]
pub enum ProjectCommand {
    /// List the projects of a workspace.
    List {
        /// Workspace name or id.
        ws: String,
        #[command(flatten)]
        org: OrgArg,
        #[command(flatten)]
        common: Common,
    },
    /// Create a project (a namespace in the workspace's virtual cluster).
    Create {
        /// Workspace name or id.
        ws: String,
        /// Project name (becomes the namespace name).
        name: String,
        #[command(flatten)]
        org: OrgArg,
        #[command(flatten)]
        common: Common,
    },
    /// Delete a project and its namespace.
    Delete {
        /// Workspace name or id.
        ws: String,
        /// Project name or id.
        project: String,
        #[command(flatten)]
        org: OrgArg,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Args, Debug)]
pub struct KubeconfigArgs {
    /// Workspace name or id.
    pub ws: String,
    #[command(flatten)]
    pub org: OrgArg,
    /// Write the kubeconfig to FILE (mode 0600) instead of standard output.
    #[arg(long, value_name = "FILE", conflicts_with = "merge")]
    pub out: Option<PathBuf>,
    /// Add (or replace) a cluster, user and context named after the workspace in
    /// ~/.kube/config (or $KUBECONFIG's first file).
    #[arg(long)]
    pub merge: bool,
    #[command(flatten)]
    pub common: Common,
}

/// A signed-in server: its client and its stored credential.
pub struct Session {
    pub api: Api,
    pub cred: ServerCredential,
}

/// The credentials file and its contents.
pub fn load_creds() -> anyhow::Result<(PathBuf, Credentials)> {
    let path = creds::path()?;
    let c = creds::load(&path)?;
    Ok((path, c))
}

/// The server to use: `--server`, else the current one.
fn chosen(creds: &Credentials, server: &ServerArg) -> anyhow::Result<String> {
    match &server.server {
        Some(s) => normalize_base(s),
        None => creds
            .current
            .clone()
            .ok_or_else(|| anyhow!("not logged in; run `kaas login URL` first")),
    }
}

/// The session for the chosen server; refused with how to log in when there is no valid
/// credential for it.
pub fn session(server: &ServerArg, now: jiff::Timestamp) -> anyhow::Result<Session> {
    let (_, creds) = load_creds()?;
    let base = chosen(&creds, server)?;
    let cred = creds
        .servers
        .get(&base)
        .cloned()
        .ok_or_else(|| anyhow!("not logged in to {base}; run `kaas login {base}` first"))?;
    if now >= cred.expires_at {
        bail!(
            "your credential for {base} expired at {}; run `kaas login {base}` to sign in again",
            cred.expires_at
        );
    }
    let api = Api::new(&base, cred.ca_file.as_deref(), Some(cred.token.clone()))?;
    Ok(Session { api, cred })
}

/// The host's name, for naming the credential in the user's token list.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "this machine".into())
}

/// An absolute path for a CA file given on the command line (it is remembered).
fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    std::fs::canonicalize(p).with_context(|| format!("cannot read the CA file {}", p.display()))
}
