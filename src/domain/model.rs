//! The tenancy records as kaas stores them: users, organizations and their members,
//! invitations, workspaces and projects with their members, API tokens, sessions and the
//! audit log. Secrets are never stored in the clear: password hashes are argon2id PHC
//! strings, and token, session and invitation secrets are kept only as SHA-256 digests.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ids::*;
use super::plan::Quota;
use super::roles::{OrgRole, ProjectRole, WorkspaceRole};

/// A SHA-256 digest of a high-entropy secret (session id, API token, invitation token).
pub type SecretDigest = [u8; 32];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    /// Normalised (lower-case); unique.
    pub email: String,
    pub name: String,
    /// argon2id PHC string.
    pub password_hash: String,
    pub platform_admin: bool,
    pub disabled: bool,
    pub created_at: Timestamp,
    #[serde(default)]
    pub password_changed_at: Option<Timestamp>,
    #[serde(default)]
    pub last_login_at: Option<Timestamp>,
    /// How the account came to be; `None` for accounts made before kaas recorded it.
    #[serde(default)]
    pub created_via: Option<CreatedVia>,
    /// When the last kubeconfig issued to them expires: until then a certificate of theirs
    /// still authenticates (it grants only the roles they hold; see `domain::groups`).
    #[serde(default)]
    pub kubeconfigs_valid_until: Option<Timestamp>,
    /// Set once the account signed in through an identity provider (see `ops::sso`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sso: Option<SsoLink>,
}

/// How an account relates to the identity providers it signed in through.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SsoLink {
    /// The provider (its configured id) of the last single sign-on.
    pub provider: String,
    /// No usable local password: the account signs in through a provider only.
    pub sso_only: bool,
    /// Organizations whose membership the provider's groups decide (re-applied at each
    /// single sign-on; shown as managed by the identity provider).
    #[serde(default)]
    pub managed_orgs: Vec<OrgId>,
}

/// How an account was created. An account made by accepting an invitation was made by
/// whoever held the invitation link, and an organization administrator who invites an
/// unregistered address sees that link: such accounts are flagged for the platform
/// administrator, who alone can tell whether the address's owner made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CreatedVia {
    /// The first administrator, with the setup link.
    Setup,
    /// A platform administrator (API, console or `kaas user create`).
    Admin,
    /// Accepting an organization's invitation.
    Invitation,
    /// The first single sign-on through an identity provider.
    Sso,
}

impl User {
    /// A new, enabled account whose password was just set.
    pub fn new(
        email: String,
        name: &str,
        password_hash: String,
        platform_admin: bool,
        now: Timestamp,
        created_via: CreatedVia,
    ) -> User {
        User {
            id: UserId::generate(),
            email,
            name: name.trim().to_string(),
            password_hash,
            platform_admin,
            disabled: false,
            created_at: now,
            password_changed_at: Some(now),
            last_login_at: None,
            created_via: Some(created_via),
            kubeconfigs_valid_until: None,
            sso: None,
        }
    }
}

/// Per-organization limits set by a platform administrator; `None` = the configured default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrgLimits {
    pub max_workspaces: Option<u32>,
    pub max_members: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Organization {
    pub id: OrgId,
    /// A DNS label, unique across the box.
    pub name: String,
    pub display_name: String,
    pub limits: OrgLimits,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Membership {
    pub org_id: OrgId,
    pub user_id: UserId,
    pub role: OrgRole,
    pub joined_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invitation {
    pub id: InvitationId,
    pub org_id: OrgId,
    /// The only address that may accept it.
    pub email: String,
    pub role: OrgRole,
    pub token_digest: SecretDigest,
    pub invited_by: UserId,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// Where a workspace is in its life. Provisioning itself is the reconciler's; the core only
/// records what it was told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum WorkspaceState {
    Pending,
    Provisioning,
    Ready,
    Updating,
    Error,
    Deleting,
}

impl WorkspaceState {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkspaceState::Pending => "Pending",
            WorkspaceState::Provisioning => "Provisioning",
            WorkspaceState::Ready => "Ready",
            WorkspaceState::Updating => "Updating",
            WorkspaceState::Error => "Error",
            WorkspaceState::Deleting => "Deleting",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Workspace {
    pub id: WorkspaceId,
    pub org_id: OrgId,
    /// A DNS label, unique in its organization.
    pub name: String,
    pub plan_id: String,
    pub state: WorkspaceState,
    /// What the host last reported (e.g. K3K's `status.phase`), if anything yet.
    #[serde(default)]
    pub observed_phase: Option<String>,
    /// The last human-readable status message (errors included).
    #[serde(default)]
    pub message: String,
    /// Bumped whenever the desired state changes, so the reconciler can tell it is behind.
    pub generation: u64,
    /// The generation the host last confirmed (applied and Ready); behind `generation`
    /// while a change rolls out.
    #[serde(default)]
    pub applied_generation: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceMember {
    pub workspace_id: WorkspaceId,
    pub user_id: UserId,
    pub role: WorkspaceRole,
    pub added_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Project {
    pub id: ProjectId,
    pub workspace_id: WorkspaceId,
    pub org_id: OrgId,
    /// A DNS label, unique in its workspace; also the namespace name inside the cluster.
    pub name: String,
    #[serde(default)]
    pub quota: Option<Quota>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectMember {
    pub project_id: ProjectId,
    pub user_id: UserId,
    pub role: ProjectRole,
    pub added_at: Timestamp,
}

/// What an API token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TokenScope {
    /// Only safe methods (GET).
    ReadOnly,
    /// Everything the owner may do.
    ReadWrite,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiToken {
    pub id: TokenId,
    pub user_id: UserId,
    pub name: String,
    pub scope: TokenScope,
    pub digest: SecretDigest,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    #[serde(default)]
    pub last_used_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub id: SessionId,
    pub user_id: UserId,
    pub digest: SecretDigest,
    /// Sent with every state-changing cookie-authenticated request.
    pub csrf_token: String,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    pub source: String,
    #[serde(default)]
    pub user_agent: String,
}

/// How an audited attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Failure,
    Denied,
}

/// One line of the append-only audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEvent {
    pub id: AuditId,
    pub time: Timestamp,
    /// The acting user, if known (a failed login names only the attempted e-mail).
    pub actor: Option<UserId>,
    /// Who acted, in words (e-mail, or `system`).
    pub actor_label: String,
    /// Dotted verb, e.g. `workspace.create`.
    pub action: String,
    /// The object acted on, e.g. `ws_…` or an e-mail.
    pub target: String,
    /// The organization concerned, for filtering.
    pub org_id: Option<OrgId>,
    pub outcome: Outcome,
    pub source: String,
    /// Extra facts (a reason, a certificate serial), short.
    #[serde(default)]
    pub detail: String,
}

/// A host node dedicated to one workspace (platform administrators assign them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NodeAssignment {
    pub node: String,
    pub workspace_id: WorkspaceId,
    pub assigned_at: Timestamp,
    /// The interval this assignment opened, for billing node-hours.
    pub interval_id: AuditId,
}

/// One stretch of time a node was dedicated to a workspace; `until` is open while assigned.
/// Billing charges node-hours from these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NodeInterval {
    pub id: AuditId,
    pub node: String,
    pub workspace_id: WorkspaceId,
    pub org_id: OrgId,
    pub from: Timestamp,
    pub until: Option<Timestamp>,
}
