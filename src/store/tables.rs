//! Every redb table kaas has, in one place. Names carry a version suffix: a change to a
//! table's key or value layout gets a new name and a migration, never an in-place
//! reinterpretation. Values are `codec`-encoded records; index tables map a lookup key to
//! a record id (or to `()` where the key already holds everything).

use redb::{Key, TableDefinition, Value};

use super::StoreError;

/// Small facts about the database itself: schema version, setup token.
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta-v1");

pub const USERS: TableDefinition<u128, &[u8]> = TableDefinition::new("users-v1");
/// Normalised e-mail → user id (uniqueness).
pub const USERS_BY_EMAIL: TableDefinition<&str, u128> = TableDefinition::new("users-by-email-v1");

pub const ORGS: TableDefinition<u128, &[u8]> = TableDefinition::new("orgs-v1");
/// Organization name → id (uniqueness, listing by name).
pub const ORGS_BY_NAME: TableDefinition<&str, u128> = TableDefinition::new("orgs-by-name-v1");

/// (org, user) → membership.
pub const MEMBERSHIPS: TableDefinition<(u128, u128), &[u8]> =
    TableDefinition::new("memberships-v1");
/// (user, org) → () : a user's organizations.
pub const MEMBERSHIPS_BY_USER: TableDefinition<(u128, u128), ()> =
    TableDefinition::new("memberships-by-user-v1");

pub const INVITATIONS: TableDefinition<u128, &[u8]> = TableDefinition::new("invitations-v1");
pub const INVITATIONS_BY_DIGEST: TableDefinition<[u8; 32], u128> =
    TableDefinition::new("invitations-by-digest-v1");
/// (org, invitation) → ().
pub const INVITATIONS_BY_ORG: TableDefinition<(u128, u128), ()> =
    TableDefinition::new("invitations-by-org-v1");

pub const WORKSPACES: TableDefinition<u128, &[u8]> = TableDefinition::new("workspaces-v1");
/// (org, workspace name) → workspace id (uniqueness per org, listing by name).
pub const WORKSPACES_BY_ORG_NAME: TableDefinition<(u128, &str), u128> =
    TableDefinition::new("workspaces-by-org-name-v1");

/// (workspace, user) → workspace member.
pub const WORKSPACE_MEMBERS: TableDefinition<(u128, u128), &[u8]> =
    TableDefinition::new("workspace-members-v1");
/// (user, workspace) → ().
pub const WORKSPACE_MEMBERS_BY_USER: TableDefinition<(u128, u128), ()> =
    TableDefinition::new("workspace-members-by-user-v1");

pub const PROJECTS: TableDefinition<u128, &[u8]> = TableDefinition::new("projects-v1");
/// (workspace, project name) → project id.
pub const PROJECTS_BY_WS_NAME: TableDefinition<(u128, &str), u128> =
    TableDefinition::new("projects-by-ws-name-v1");

/// (project, user) → project member.
pub const PROJECT_MEMBERS: TableDefinition<(u128, u128), &[u8]> =
    TableDefinition::new("project-members-v1");
/// (user, project) → ().
pub const PROJECT_MEMBERS_BY_USER: TableDefinition<(u128, u128), ()> =
    TableDefinition::new("project-members-by-user-v1");

/// Plan id → plan.
pub const PLANS: TableDefinition<&str, &[u8]> = TableDefinition::new("plans-v1");

/// Session secret digest → session.
pub const SESSIONS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("sessions-v1");
/// (user, session id) → session secret digest.
pub const SESSIONS_BY_USER: TableDefinition<(u128, u128), [u8; 32]> =
    TableDefinition::new("sessions-by-user-v1");

pub const TOKENS: TableDefinition<u128, &[u8]> = TableDefinition::new("api-tokens-v1");
pub const TOKENS_BY_DIGEST: TableDefinition<[u8; 32], u128> =
    TableDefinition::new("api-tokens-by-digest-v1");
/// (user, token) → ().
pub const TOKENS_BY_USER: TableDefinition<(u128, u128), ()> =
    TableDefinition::new("api-tokens-by-user-v1");

/// Event id (a ULID, so time-ordered) → event. Append-only.
pub const AUDIT: TableDefinition<u128, &[u8]> = TableDefinition::new("audit-v1");
/// (org, event id) → (). Added in schema 2.
pub const AUDIT_BY_ORG: TableDefinition<(u128, u128), ()> = TableDefinition::new("audit-by-org-v1");
/// Chain number (from 1, in commit order) → event id: the order the hash chain follows.
/// Added in schema 5.
pub const AUDIT_CHAIN: TableDefinition<u64, u128> = TableDefinition::new("audit-chain-v1");
/// Event id → (chain number, previous record's hash, this record's hash). Added in schema 5.
pub const AUDIT_LINKS: TableDefinition<u128, (u64, [u8; 32], [u8; 32])> =
    TableDefinition::new("audit-links-v1");

/// Node name → its current dedicated assignment. Added in schema 3.
pub const NODE_ASSIGNMENTS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("node-assignments-v1");
/// Interval id → node-dedication interval (billing). Added in schema 3.
pub const NODE_INTERVALS: TableDefinition<u128, &[u8]> = TableDefinition::new("node-intervals-v1");
/// (workspace, interval id) → (). Added in schema 3.
pub const NODE_INTERVALS_BY_WS: TableDefinition<(u128, u128), ()> =
    TableDefinition::new("node-intervals-by-ws-v1");

/// Plan revision → the plan's billable terms then (quota, prices). Added in schema 4.
pub const PLAN_TERMS: TableDefinition<u32, &[u8]> = TableDefinition::new("plan-terms-v1");
/// Workspace → where the meter left off with it. Added in schema 4.
pub const METER_STATES: TableDefinition<u128, &[u8]> = TableDefinition::new("meter-states-v1");
/// (workspace, UTC day number) → the day's hourly usage, compact. Added in schema 4.
pub const USAGE_DAYS: TableDefinition<(u128, i32), &[u8]> = TableDefinition::new("usage-days-v1");
/// (org, workspace) → what invoices need of the workspace, kept after deletion. Schema 4.
pub const BILLED_WORKSPACES: TableDefinition<(u128, u128), &[u8]> =
    TableDefinition::new("billed-workspaces-v1");
/// Unix second a meter gap starts → Unix second it ends. Added in schema 4.
pub const METER_GAPS: TableDefinition<i64, i64> = TableDefinition::new("meter-gaps-v1");
/// Org → billing account. Added in schema 4.
pub const BILLING_ACCOUNTS: TableDefinition<u128, &[u8]> =
    TableDefinition::new("billing-accounts-v1");
/// Invoice id → finalized (or voided) invoice. Added in schema 4.
pub const INVOICES: TableDefinition<u128, &[u8]> = TableDefinition::new("invoices-v1");
/// (org, period as months since year 0) → invoice id. Added in schema 4.
pub const INVOICES_BY_ORG: TableDefinition<(u128, i32), u128> =
    TableDefinition::new("invoices-by-org-v1");

/// (Unix milliseconds, sequence) → a failed password attempt, so login throttling survives
/// a restart; pruned past the throttle's horizon. Added in schema 5.
pub const LOGIN_FAILURES: TableDefinition<(i64, u64), &[u8]> =
    TableDefinition::new("login-failures-v1");
/// Account (normalised e-mail) → the sources it recently signed in from. Added in schema 5.
pub const LOGIN_KNOWN: TableDefinition<&str, &[u8]> = TableDefinition::new("login-known-v1");

/// Key id → the OIDC issuer's signing key (private part sealed). Added in schema 6.
pub const SIGNING_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("signing-keys-v1");
/// User → their second factor (TOTP secret, last step used, recovery code digests). Added
/// in schema 7.
pub const MFA: TableDefinition<u128, &[u8]> = TableDefinition::new("mfa-v1");
/// Provider id → an identity provider added in the console or the API (client secret
/// sealed). Added in schema 8.
pub const SSO_PROVIDERS: TableDefinition<&str, &[u8]> = TableDefinition::new("sso-providers-v1");

/// Visits every table definition kaas has: the one list that creating a database, migrating
/// and backing up all walk, so a new table cannot be forgotten by any of them.
pub trait TableVisitor {
    fn visit<K: Key + 'static, V: Value + 'static>(
        &mut self,
        def: TableDefinition<K, V>,
    ) -> Result<(), StoreError>;
}

pub fn visit_tables<T: TableVisitor>(v: &mut T) -> Result<(), StoreError> {
    v.visit(META)?;
    v.visit(USERS)?;
    v.visit(USERS_BY_EMAIL)?;
    v.visit(ORGS)?;
    v.visit(ORGS_BY_NAME)?;
    v.visit(MEMBERSHIPS)?;
    v.visit(MEMBERSHIPS_BY_USER)?;
    v.visit(INVITATIONS)?;
    v.visit(INVITATIONS_BY_DIGEST)?;
    v.visit(INVITATIONS_BY_ORG)?;
    v.visit(WORKSPACES)?;
    v.visit(WORKSPACES_BY_ORG_NAME)?;
    v.visit(WORKSPACE_MEMBERS)?;
    v.visit(WORKSPACE_MEMBERS_BY_USER)?;
    v.visit(PROJECTS)?;
    v.visit(PROJECTS_BY_WS_NAME)?;
    v.visit(PROJECT_MEMBERS)?;
    v.visit(PROJECT_MEMBERS_BY_USER)?;
    v.visit(PLANS)?;
    v.visit(SESSIONS)?;
    v.visit(SESSIONS_BY_USER)?;
    v.visit(TOKENS)?;
    v.visit(TOKENS_BY_DIGEST)?;
    v.visit(TOKENS_BY_USER)?;
    v.visit(AUDIT)?;
    v.visit(AUDIT_BY_ORG)?;
    v.visit(AUDIT_CHAIN)?;
    v.visit(AUDIT_LINKS)?;
    v.visit(NODE_ASSIGNMENTS)?;
    v.visit(NODE_INTERVALS)?;
    v.visit(NODE_INTERVALS_BY_WS)?;
    v.visit(PLAN_TERMS)?;
    v.visit(METER_STATES)?;
    v.visit(USAGE_DAYS)?;
    v.visit(BILLED_WORKSPACES)?;
    v.visit(METER_GAPS)?;
    v.visit(BILLING_ACCOUNTS)?;
    v.visit(INVOICES)?;
    v.visit(INVOICES_BY_ORG)?;
    v.visit(LOGIN_FAILURES)?;
    v.visit(LOGIN_KNOWN)?;
    v.visit(SIGNING_KEYS)?;
    v.visit(MFA)?;
    v.visit(SSO_PROVIDERS)?;
    Ok(())
}
