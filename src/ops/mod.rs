//! Use cases: one function per thing a user can ask for. Each opens at most one short write
//! transaction, checks the caller's standing against `domain::policy`, changes records,
//! appends the audit event in the same transaction, commits, and only then runs side
//! effects (waking the reconciler). Handlers call exactly one of these.

pub mod audit;
pub mod auth;
pub mod authz;
pub mod billing;
pub mod billing_console;
pub mod cluster_access;
pub mod console;
pub mod host_status;
pub mod invitations;
pub mod issuer;
pub mod kubeconfig;
pub mod members;
pub mod meter;
pub mod mfa;
pub mod nodes;
pub mod orgs;
pub mod plans;
pub mod projects;
pub mod reconcile;
pub mod secrets;
pub mod setup;
pub mod shell_login;
pub mod sso;
pub mod sso_admin;
mod sso_groups;
mod sso_http;
pub mod throttling;
pub mod tokens;
pub mod users;
pub mod workspaces;

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;
use utoipa::ToSchema;

use crate::clock::Clock;
use crate::domain::throttle::{LoginThrottle, ThrottlePolicy};
use crate::domain::*;
use crate::store::{Store, StoreError, Writing, records};

/// Records as the API shows them (see [`crate::store::shown`]).
pub use crate::store::shown::ShownList;

/// Why a use case did not happen. Each variant maps to one HTTP status in `api::error`.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// No such object, or the caller may not know it exists (404).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The caller sees the object but may not do this (403).
    #[error("{0}")]
    Forbidden(String),
    /// Credentials missing, wrong or expired (401).
    #[error("{0}")]
    Unauthenticated(String),
    /// Input breaks a rule; `field` names the input field (422).
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// Clashes with what exists: a duplicate name, a limit reached, a state that forbids
    /// it (409).
    #[error("{0}")]
    Conflict(String),
    /// Too many attempts; try again after the given time (429).
    #[error("too many attempts; try again in {} seconds", .0.as_secs().max(1))]
    Throttled(Duration),
    /// A dependency (the host cluster) cannot serve this now (503).
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub type OpsResult<T> = Result<T, OpsError>;

pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> OpsError {
    OpsError::Invalid {
        field,
        message: message.into(),
    }
}

/// How the caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthVia {
    Session(SessionId),
    Token(TokenId, TokenScope),
    /// The local shell (`kaas user …`), trusted as the machine's operator.
    Shell,
}

/// An authenticated caller. Only `ops::auth` makes these.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user_id: UserId,
    pub email: String,
    pub platform_admin: bool,
    pub via: AuthVia,
    pub source: String,
}

impl Actor {
    /// The standing the caller has before looking at any object.
    pub fn base_standing(&self) -> policy::Standing {
        policy::Standing {
            platform_admin: self.platform_admin,
            ..Default::default()
        }
    }
}

/// Where a request came from, for audit and throttling.
#[derive(Debug, Clone)]
pub struct Origin {
    pub ip: std::net::IpAddr,
    pub user_agent: String,
}

impl Origin {
    pub fn local() -> Origin {
        Origin {
            ip: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            user_agent: "kaas-cli".into(),
        }
    }
}

/// A page of a listing: `next_cursor` is passed back to get the following page.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// A page of records as the API shows them (see [`crate::store::shown`]).
#[derive(Debug)]
pub struct ShownPage<T> {
    pub items: ShownList<T>,
    pub next_cursor: Option<String>,
}

impl<T> ShownPage<T> {
    /// The page as JSON, exactly as a [`Page`] of the same records serializes: the records'
    /// JSON copied in once, into a buffer of the right size.
    pub fn to_json(&self) -> Vec<u8> {
        let items = self.items.json();
        let cursor = match &self.next_cursor {
            // A string serializes infallibly; "null" keeps the shape if it ever did not.
            Some(c) => serde_json::to_string(c).unwrap_or_else(|_| "null".into()),
            None => "null".into(),
        };
        let mut out = Vec::with_capacity(items.len() + cursor.len() + 26);
        out.extend_from_slice(b"{\"items\":");
        out.extend_from_slice(items.as_bytes());
        out.extend_from_slice(b",\"next_cursor\":");
        out.extend_from_slice(cursor.as_bytes());
        out.push(b'}');
        out
    }
}

/// Asks for one more row than wanted to tell whether another page exists.
pub(crate) fn page<T>(mut rows: Vec<T>, limit: usize, cursor_of: impl Fn(&T) -> String) -> Page<T> {
    let next_cursor = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(cursor_of)
    } else {
        None
    };
    Page {
        items: rows,
        next_cursor,
    }
}

/// Numbers the use cases need from configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub session_idle_timeout: Duration,
    pub session_absolute_timeout: Duration,
    pub max_sessions_per_user: u32,
    pub password_min_length: usize,
    pub invitation_ttl: Duration,
    pub api_token_max_lifetime: Duration,
    pub setup_link_ttl: Duration,
    pub default_max_workspaces: u32,
    pub default_max_members: u32,
    /// Organizations one user may own when creating another; 0 = no limit. Platform
    /// administrators are not limited.
    pub max_orgs_per_user: u32,
    /// Only platform administrators may create organizations.
    pub org_creation_admins_only: bool,
    /// Workspaces on the box, all organizations together; 0 = no limit.
    pub max_workspaces_total: u32,
    pub kubeconfig_lifetime: Duration,
    pub kubeconfig_max_lifetime: Duration,
    /// Who must sign in with a second factor.
    pub mfa_require: crate::domain::mfa::MfaRequirement,
    /// Whether `expose.ingress_domain` is configured: without it a plan cannot expose its
    /// API servers by ingress.
    pub ingress_available: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            session_idle_timeout: Duration::from_secs(12 * 3600),
            session_absolute_timeout: Duration::from_secs(7 * 86400),
            max_sessions_per_user: 3,
            password_min_length: 12,
            invitation_ttl: Duration::from_secs(7 * 86400),
            api_token_max_lifetime: Duration::from_secs(365 * 86400),
            setup_link_ttl: Duration::from_secs(86400),
            default_max_workspaces: 10,
            default_max_members: 50,
            max_orgs_per_user: 3,
            org_creation_admins_only: false,
            max_workspaces_total: 100,
            kubeconfig_lifetime: Duration::from_secs(8 * 3600),
            kubeconfig_max_lifetime: Duration::from_secs(7 * 86400),
            mfa_require: crate::domain::mfa::MfaRequirement::None,
            ingress_available: true,
        }
    }
}

/// Something that happened that another part of the process may react to after commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Workspace(WorkspaceId),
    Project(WorkspaceId, ProjectId),
    Members(WorkspaceId),
}

/// The use-case layer's state: the store, the clock, the settings and in-memory guards.
pub struct Ops {
    pub store: Arc<Store>,
    pub clock: Arc<dyn Clock>,
    pub settings: Settings,
    throttle: LoginThrottle,
    /// Failed sign-ins counted per account and address, so few of them are audited.
    login_failures: std::sync::Mutex<crate::domain::audit::FailureTally>,
    changes: tokio::sync::broadcast::Sender<Change>,
    /// Signs tenant certificates; set once a host is configured.
    minter: std::sync::OnceLock<Arc<dyn kubeconfig::KubeconfigMinter>>,
    /// The host's node list; set once a host is configured.
    nodes: std::sync::OnceLock<Arc<dyn nodes::NodeInventory>>,
    /// Quota usage reported by the host; set once a host is configured.
    usage: std::sync::OnceLock<Arc<dyn meter::UsageSource>>,
    /// The host connection's status; set once a host is configured.
    host: std::sync::OnceLock<Arc<dyn host_status::HostMonitor>>,
    /// The OIDC issuer of the virtual clusters; set when the server starts.
    issuer: std::sync::OnceLock<Arc<issuer::Issuer>>,
    /// Whether the virtual clusters trust the issuer (exec kubeconfigs are the default).
    exec_kubeconfigs: std::sync::OnceLock<bool>,
    /// This run of kaas, as the meter knows it: time is only billed between two
    /// observations made by the same run.
    meter_run: u128,
    /// Cheaper password hashing for tests; production always uses argon2's defaults.
    fast_hashing: bool,
    /// Device grants of `kaas login --device` waiting for approval (minutes long; memory only).
    device_grants: std::sync::Mutex<crate::domain::device::Grants>,
    /// Sign-ins waiting for their second factor (see `ops::mfa`).
    pending_logins: mfa::PendingLogins,
    /// Identity providers for single sign-on (config file and console); set when serving.
    sso: std::sync::OnceLock<Arc<sso::SsoProviders>>,
}

impl Ops {
    pub fn new(store: Arc<Store>, clock: Arc<dyn Clock>, settings: Settings) -> Ops {
        let (changes, _) = tokio::sync::broadcast::channel(1024);
        Ops {
            store,
            clock,
            settings,
            throttle: LoginThrottle::new(ThrottlePolicy::default()),
            login_failures: Default::default(),
            changes,
            minter: std::sync::OnceLock::new(),
            nodes: std::sync::OnceLock::new(),
            usage: std::sync::OnceLock::new(),
            host: std::sync::OnceLock::new(),
            issuer: std::sync::OnceLock::new(),
            exec_kubeconfigs: std::sync::OnceLock::new(),
            meter_run: crate::domain::ids::monotonic(),
            fast_hashing: false,
            device_grants: Default::default(),
            pending_logins: Default::default(),
            sso: std::sync::OnceLock::new(),
        }
    }

    /// Lower argon2 cost, for test suites that create many users. Never used by `serve`.
    pub fn with_fast_hashing(mut self) -> Ops {
        self.fast_hashing = true;
        self
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Subscribe to changes committed from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// Commits, then announces the changes: listeners never see uncommitted state.
    pub(crate) fn commit(&self, tx: Writing, changes: &[Change]) -> OpsResult<()> {
        tx.commit().map_err(StoreError::from)?;
        for c in changes {
            // Nobody listening is fine: the reconciler's resync catches up.
            let _ = self.changes.send(c.clone());
        }
        Ok(())
    }

    /// Builds an audit event for `actor`; the caller appends it inside its transaction.
    pub(crate) fn event(
        &self,
        actor: &Actor,
        action: &str,
        target: impl ToString,
        org: Option<OrgId>,
    ) -> AuditEvent {
        AuditEvent {
            id: AuditId::generate(),
            time: self.now(),
            actor: Some(actor.user_id),
            actor_label: actor.email.clone(),
            action: action.to_string(),
            target: target.to_string(),
            org_id: org,
            outcome: Outcome::Success,
            source: actor.source.clone(),
            detail: String::new(),
        }
    }

    /// Records an attempt that did not go through (a failed login, a denied action) in a
    /// transaction of its own.
    pub(crate) fn audit_failure(&self, mut ev: AuditEvent, outcome: Outcome, detail: String) {
        ev.outcome = outcome;
        ev.detail = detail;
        let res = self.store.write().and_then(|tx| {
            records::append_audit(&tx, &ev)?;
            tx.commit().map_err(StoreError::from)
        });
        if let Err(e) = res {
            tracing::error!(error = %e, action = %ev.action, "could not record an audit event");
        }
    }
}

/// Lets a duration from settings be added to a timestamp.
pub(crate) fn plus(t: Timestamp, d: Duration) -> Timestamp {
    let sd = jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX);
    t.saturating_add(sd).unwrap_or(Timestamp::MAX)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::codec::encode;
    use crate::store::shown::ShownMemo;

    #[test]
    fn a_shown_page_is_the_json_of_the_page_it_stands_for() {
        let memo = ShownMemo::default();
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let projects: Vec<Project> = ["a", "b\"quoted\""]
            .into_iter()
            .map(|name| Project {
                id: ProjectId::generate(),
                workspace_id: WorkspaceId::generate(),
                org_id: OrgId::generate(),
                name: name.into(),
                quota: None,
                created_at: now,
                updated_at: now,
            })
            .collect();
        let raw: Vec<Vec<u8>> = projects.iter().map(|p| encode(p).unwrap()).collect();
        let rows: Vec<(u128, &[u8])> = projects
            .iter()
            .zip(&raw)
            .map(|(p, r)| (p.id.0, r.as_slice()))
            .collect();
        for cursor in [None, Some("b\"quoted\"".to_string())] {
            let shown = ShownPage {
                items: memo.show::<Project>("projects", &rows).unwrap(),
                next_cursor: cursor.clone(),
            };
            let page = Page {
                items: projects.clone(),
                next_cursor: cursor,
            };
            assert_eq!(
                String::from_utf8(shown.to_json()).unwrap(),
                serde_json::to_string(&page).unwrap()
            );
        }
    }
}
