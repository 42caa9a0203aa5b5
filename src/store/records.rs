//! Typed reads and writes of every record, over the tables in `tables`. Write helpers keep
//! each record and its indexes in step inside the caller's transaction; uniqueness clashes
//! come back as [`StoreError::Conflict`]. Listings return at most `limit` rows after an
//! exclusive cursor, in key order.

use redb::{ReadableTable, TableDefinition, TableHandle, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::codec::{decode, encode};
use super::tables::*;
use super::{Reader, StoreError};
use crate::domain::*;

type Res<T> = Result<T, StoreError>;

// ---- generic helpers -------------------------------------------------------------------

fn get_by_id<T: DeserializeOwned>(
    r: &impl Reader,
    def: TableDefinition<u128, &[u8]>,
    id: u128,
) -> Res<Option<T>> {
    let t = r.table(def)?;
    match t.get(id)? {
        Some(v) => Ok(Some(decode(v.value(), def.name(), &id)?)),
        None => Ok(None),
    }
}

fn put_by_id<T: Serialize>(
    tx: &WriteTransaction,
    def: TableDefinition<u128, &[u8]>,
    id: u128,
    v: &T,
) -> Res<()> {
    tx.open_table(def)?.insert(id, encode(v)?.as_slice())?;
    Ok(())
}

fn del_by_id(tx: &WriteTransaction, def: TableDefinition<u128, &[u8]>, id: u128) -> Res<()> {
    tx.open_table(def)?.remove(id)?;
    Ok(())
}

fn get_pair<T: DeserializeOwned>(
    r: &impl Reader,
    def: TableDefinition<(u128, u128), &[u8]>,
    a: u128,
    b: u128,
) -> Res<Option<T>> {
    let t = r.table(def)?;
    match t.get((a, b))? {
        Some(v) => Ok(Some(decode(v.value(), def.name(), &format!("{a}/{b}"))?)),
        None => Ok(None),
    }
}

/// Records under `(a, *)`, after `(a, after)` when given.
fn list_pair<T: DeserializeOwned>(
    r: &impl Reader,
    def: TableDefinition<(u128, u128), &[u8]>,
    a: u128,
    after: Option<u128>,
    limit: usize,
) -> Res<Vec<T>> {
    let t = r.table(def)?;
    let mut out = Vec::new();
    let start = match after {
        Some(b) if b == u128::MAX => return Ok(out),
        Some(b) => b + 1,
        None => 0,
    };
    for row in t.range((a, start)..=(a, u128::MAX))? {
        if out.len() >= limit {
            break;
        }
        let (k, v) = row?;
        let (ka, kb) = k.value();
        out.push(decode(v.value(), def.name(), &format!("{ka}/{kb}"))?);
    }
    Ok(out)
}

/// Second halves of the keys `(a, *)` of an index table.
fn index_seconds<V: redb::Value + 'static>(
    r: &impl Reader,
    def: TableDefinition<(u128, u128), V>,
    a: u128,
) -> Res<Vec<u128>> {
    let t = r.table(def)?;
    let mut out = Vec::new();
    for row in t.range((a, 0)..=(a, u128::MAX))? {
        out.push(row?.0.value().1);
    }
    Ok(out)
}

fn count_prefix<V: redb::Value + 'static>(
    r: &impl Reader,
    def: TableDefinition<(u128, u128), V>,
    a: u128,
) -> Res<u64> {
    let t = r.table(def)?;
    let mut n = 0;
    for row in t.range((a, 0)..=(a, u128::MAX))? {
        row?;
        n += 1;
    }
    Ok(n)
}

/// Ids from a `(a, name) → id` index, by name, after `after` (exclusive).
fn list_named(
    r: &impl Reader,
    def: TableDefinition<(u128, &str), u128>,
    a: u128,
    after: Option<&str>,
    limit: usize,
) -> Res<Vec<u128>> {
    let t = r.table(def)?;
    let mut out = Vec::new();
    let rows = match after {
        Some(name) => t.range((a, name)..)?,
        None => t.range((a, "")..)?,
    };
    for row in rows {
        let (k, v) = row?;
        let (ka, name) = k.value();
        if ka != a || out.len() >= limit {
            break;
        }
        if after == Some(name) {
            continue;
        }
        out.push(v.value());
    }
    Ok(out)
}

fn load_all<T: DeserializeOwned>(
    r: &impl Reader,
    def: TableDefinition<u128, &[u8]>,
    ids: Vec<u128>,
) -> Res<Vec<T>> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        // An index entry without its record is corruption, not "not found".
        let rec = get_by_id(r, def, id)?.ok_or_else(|| StoreError::Corrupt {
            table: def.name().to_string(),
            key: id.to_string(),
            why: "an index points at a missing record".into(),
        })?;
        out.push(rec);
    }
    Ok(out)
}

// ---- meta ---------------------------------------------------------------------------------

pub fn get_meta(r: &impl Reader, key: &str) -> Res<Option<Vec<u8>>> {
    Ok(r.table(META)?.get(key)?.map(|v| v.value().to_vec()))
}

pub fn put_meta(tx: &WriteTransaction, key: &str, value: &[u8]) -> Res<()> {
    tx.open_table(META)?.insert(key, value)?;
    Ok(())
}

pub fn delete_meta(tx: &WriteTransaction, key: &str) -> Res<()> {
    tx.open_table(META)?.remove(key)?;
    Ok(())
}

// ---- users --------------------------------------------------------------------------------

pub fn get_user(r: &impl Reader, id: UserId) -> Res<Option<User>> {
    get_by_id(r, USERS, id.0)
}

pub fn user_by_email(r: &impl Reader, email: &str) -> Res<Option<User>> {
    let id = r.table(USERS_BY_EMAIL)?.get(email)?.map(|v| v.value());
    match id {
        Some(id) => get_user(r, UserId(id)),
        None => Ok(None),
    }
}

pub fn insert_user(tx: &WriteTransaction, u: &User) -> Res<()> {
    let mut idx = tx.open_table(USERS_BY_EMAIL)?;
    if idx.get(u.email.as_str())?.is_some() {
        return Err(StoreError::Conflict(format!(
            "a user with e-mail {}",
            u.email
        )));
    }
    idx.insert(u.email.as_str(), u.id.0)?;
    drop(idx);
    put_by_id(tx, USERS, u.id.0, u)
}

/// Updates a user; the e-mail address is fixed once created.
pub fn update_user(tx: &WriteTransaction, u: &User) -> Res<()> {
    put_by_id(tx, USERS, u.id.0, u)
}

pub fn list_users(r: &impl Reader, after: Option<UserId>, limit: usize) -> Res<Vec<User>> {
    let t = r.table(USERS)?;
    let start = after.map_or(0, |a| a.0.saturating_add(1));
    let mut out = Vec::new();
    for row in t.range(start..)? {
        if out.len() >= limit {
            break;
        }
        let (k, v) = row?;
        out.push(decode(v.value(), USERS.name(), &k.value())?);
    }
    Ok(out)
}

pub fn count_users(r: &impl Reader) -> Res<u64> {
    use redb::ReadableTableMetadata;
    Ok(r.table(USERS)?.len()?)
}

// ---- organizations ----------------------------------------------------------------------

pub fn get_org(r: &impl Reader, id: OrgId) -> Res<Option<Organization>> {
    get_by_id(r, ORGS, id.0)
}

pub fn org_by_name(r: &impl Reader, name: &str) -> Res<Option<Organization>> {
    let id = r.table(ORGS_BY_NAME)?.get(name)?.map(|v| v.value());
    match id {
        Some(id) => get_org(r, OrgId(id)),
        None => Ok(None),
    }
}

pub fn insert_org(tx: &WriteTransaction, o: &Organization) -> Res<()> {
    let mut idx = tx.open_table(ORGS_BY_NAME)?;
    if idx.get(o.name.as_str())?.is_some() {
        return Err(StoreError::Conflict(format!(
            "an organization named {:?}",
            o.name
        )));
    }
    idx.insert(o.name.as_str(), o.id.0)?;
    drop(idx);
    put_by_id(tx, ORGS, o.id.0, o)
}

pub fn update_org(tx: &WriteTransaction, o: &Organization) -> Res<()> {
    put_by_id(tx, ORGS, o.id.0, o)
}

/// Removes an organization with its memberships and invitations. The caller checks that no
/// workspaces remain.
pub fn delete_org(tx: &WriteTransaction, o: &Organization) -> Res<()> {
    for m in list_org_members(tx, o.id, None, usize::MAX)? {
        delete_membership(tx, o.id, m.user_id)?;
    }
    for inv in list_org_invitations(tx, o.id)? {
        delete_invitation(tx, &inv)?;
    }
    tx.open_table(ORGS_BY_NAME)?.remove(o.name.as_str())?;
    del_by_id(tx, ORGS, o.id.0)
}

/// All organizations by name (platform administrators).
pub fn list_orgs(r: &impl Reader, after: Option<&str>, limit: usize) -> Res<Vec<Organization>> {
    let t = r.table(ORGS_BY_NAME)?;
    let mut ids = Vec::new();
    let rows = match after {
        Some(a) => t.range(a..)?,
        None => t.range::<&str>(..)?,
    };
    for row in rows {
        let (k, v) = row?;
        if after == Some(k.value()) {
            continue;
        }
        if ids.len() >= limit {
            break;
        }
        ids.push(v.value());
    }
    load_all(r, ORGS, ids)
}

// ---- memberships ------------------------------------------------------------------------

pub fn get_membership(r: &impl Reader, org: OrgId, user: UserId) -> Res<Option<Membership>> {
    get_pair(r, MEMBERSHIPS, org.0, user.0)
}

pub fn put_membership(tx: &WriteTransaction, m: &Membership) -> Res<()> {
    tx.open_table(MEMBERSHIPS)?
        .insert((m.org_id.0, m.user_id.0), encode(m)?.as_slice())?;
    tx.open_table(MEMBERSHIPS_BY_USER)?
        .insert((m.user_id.0, m.org_id.0), ())?;
    Ok(())
}

pub fn delete_membership(tx: &WriteTransaction, org: OrgId, user: UserId) -> Res<()> {
    tx.open_table(MEMBERSHIPS)?.remove((org.0, user.0))?;
    tx.open_table(MEMBERSHIPS_BY_USER)?
        .remove((user.0, org.0))?;
    Ok(())
}

pub fn list_org_members(
    r: &impl Reader,
    org: OrgId,
    after: Option<UserId>,
    limit: usize,
) -> Res<Vec<Membership>> {
    list_pair(r, MEMBERSHIPS, org.0, after.map(|u| u.0), limit)
}

pub fn count_org_members(r: &impl Reader, org: OrgId) -> Res<u64> {
    count_prefix(r, MEMBERSHIPS, org.0)
}

pub fn user_org_ids(r: &impl Reader, user: UserId) -> Res<Vec<OrgId>> {
    Ok(index_seconds(r, MEMBERSHIPS_BY_USER, user.0)?
        .into_iter()
        .map(OrgId)
        .collect())
}

// ---- invitations ------------------------------------------------------------------------

pub fn insert_invitation(tx: &WriteTransaction, inv: &Invitation) -> Res<()> {
    put_by_id(tx, INVITATIONS, inv.id.0, inv)?;
    tx.open_table(INVITATIONS_BY_DIGEST)?
        .insert(inv.token_digest, inv.id.0)?;
    tx.open_table(INVITATIONS_BY_ORG)?
        .insert((inv.org_id.0, inv.id.0), ())?;
    Ok(())
}

pub fn get_invitation(r: &impl Reader, id: InvitationId) -> Res<Option<Invitation>> {
    get_by_id(r, INVITATIONS, id.0)
}

pub fn invitation_by_digest(r: &impl Reader, digest: &SecretDigest) -> Res<Option<Invitation>> {
    let id = r
        .table(INVITATIONS_BY_DIGEST)?
        .get(*digest)?
        .map(|v| v.value());
    match id {
        Some(id) => get_invitation(r, InvitationId(id)),
        None => Ok(None),
    }
}

pub fn delete_invitation(tx: &WriteTransaction, inv: &Invitation) -> Res<()> {
    tx.open_table(INVITATIONS_BY_DIGEST)?
        .remove(inv.token_digest)?;
    tx.open_table(INVITATIONS_BY_ORG)?
        .remove((inv.org_id.0, inv.id.0))?;
    del_by_id(tx, INVITATIONS, inv.id.0)
}

pub fn list_org_invitations(r: &impl Reader, org: OrgId) -> Res<Vec<Invitation>> {
    let ids = index_seconds(r, INVITATIONS_BY_ORG, org.0)?;
    load_all(r, INVITATIONS, ids)
}

// ---- workspaces -------------------------------------------------------------------------

pub fn get_workspace(r: &impl Reader, id: WorkspaceId) -> Res<Option<Workspace>> {
    get_by_id(r, WORKSPACES, id.0)
}

pub fn workspace_by_name(r: &impl Reader, org: OrgId, name: &str) -> Res<Option<Workspace>> {
    let id = r
        .table(WORKSPACES_BY_ORG_NAME)?
        .get((org.0, name))?
        .map(|v| v.value());
    match id {
        Some(id) => get_workspace(r, WorkspaceId(id)),
        None => Ok(None),
    }
}

pub fn insert_workspace(tx: &WriteTransaction, w: &Workspace) -> Res<()> {
    let mut idx = tx.open_table(WORKSPACES_BY_ORG_NAME)?;
    if idx.get((w.org_id.0, w.name.as_str()))?.is_some() {
        return Err(StoreError::Conflict(format!(
            "a workspace named {:?} in this organization",
            w.name
        )));
    }
    idx.insert((w.org_id.0, w.name.as_str()), w.id.0)?;
    drop(idx);
    put_by_id(tx, WORKSPACES, w.id.0, w)
}

/// Updates a workspace; its name and organization are fixed once created.
pub fn update_workspace(tx: &WriteTransaction, w: &Workspace) -> Res<()> {
    put_by_id(tx, WORKSPACES, w.id.0, w)
}

/// Removes a workspace record with its members, projects and their members.
pub fn delete_workspace(tx: &WriteTransaction, w: &Workspace) -> Res<()> {
    for p in list_workspace_projects(tx, w.id, None, usize::MAX)? {
        delete_project(tx, &p)?;
    }
    for m in list_workspace_members(tx, w.id)? {
        delete_workspace_member(tx, w.id, m.user_id)?;
    }
    tx.open_table(WORKSPACES_BY_ORG_NAME)?
        .remove((w.org_id.0, w.name.as_str()))?;
    del_by_id(tx, WORKSPACES, w.id.0)
}

pub fn list_org_workspaces(
    r: &impl Reader,
    org: OrgId,
    after: Option<&str>,
    limit: usize,
) -> Res<Vec<Workspace>> {
    let ids = list_named(r, WORKSPACES_BY_ORG_NAME, org.0, after, limit)?;
    load_all(r, WORKSPACES, ids)
}

pub fn count_org_workspaces(r: &impl Reader, org: OrgId) -> Res<u64> {
    Ok(list_named(r, WORKSPACES_BY_ORG_NAME, org.0, None, usize::MAX)?.len() as u64)
}

/// Every workspace, in id order (the reconciler's resync).
pub fn all_workspaces(r: &impl Reader) -> Res<Vec<Workspace>> {
    let t = r.table(WORKSPACES)?;
    let mut out = Vec::new();
    for row in t.iter()? {
        let (k, v) = row?;
        out.push(decode(v.value(), WORKSPACES.name(), &k.value())?);
    }
    Ok(out)
}

// ---- workspace members ------------------------------------------------------------------

pub fn get_workspace_member(
    r: &impl Reader,
    ws: WorkspaceId,
    user: UserId,
) -> Res<Option<WorkspaceMember>> {
    get_pair(r, WORKSPACE_MEMBERS, ws.0, user.0)
}

pub fn put_workspace_member(tx: &WriteTransaction, m: &WorkspaceMember) -> Res<()> {
    tx.open_table(WORKSPACE_MEMBERS)?
        .insert((m.workspace_id.0, m.user_id.0), encode(m)?.as_slice())?;
    tx.open_table(WORKSPACE_MEMBERS_BY_USER)?
        .insert((m.user_id.0, m.workspace_id.0), ())?;
    Ok(())
}

pub fn delete_workspace_member(tx: &WriteTransaction, ws: WorkspaceId, user: UserId) -> Res<()> {
    tx.open_table(WORKSPACE_MEMBERS)?.remove((ws.0, user.0))?;
    tx.open_table(WORKSPACE_MEMBERS_BY_USER)?
        .remove((user.0, ws.0))?;
    Ok(())
}

pub fn list_workspace_members(r: &impl Reader, ws: WorkspaceId) -> Res<Vec<WorkspaceMember>> {
    list_pair(r, WORKSPACE_MEMBERS, ws.0, None, usize::MAX)
}

/// How many members a workspace has, without decoding them (listings show the count).
pub fn count_workspace_members(r: &impl Reader, ws: WorkspaceId) -> Res<u64> {
    count_prefix(r, WORKSPACE_MEMBERS, ws.0)
}

pub fn user_workspace_ids(r: &impl Reader, user: UserId) -> Res<Vec<WorkspaceId>> {
    Ok(index_seconds(r, WORKSPACE_MEMBERS_BY_USER, user.0)?
        .into_iter()
        .map(WorkspaceId)
        .collect())
}

// ---- projects ---------------------------------------------------------------------------

pub fn get_project(r: &impl Reader, id: ProjectId) -> Res<Option<Project>> {
    get_by_id(r, PROJECTS, id.0)
}

pub fn insert_project(tx: &WriteTransaction, p: &Project) -> Res<()> {
    let mut idx = tx.open_table(PROJECTS_BY_WS_NAME)?;
    if idx.get((p.workspace_id.0, p.name.as_str()))?.is_some() {
        return Err(StoreError::Conflict(format!(
            "a project named {:?} in this workspace",
            p.name
        )));
    }
    idx.insert((p.workspace_id.0, p.name.as_str()), p.id.0)?;
    drop(idx);
    put_by_id(tx, PROJECTS, p.id.0, p)
}

pub fn update_project(tx: &WriteTransaction, p: &Project) -> Res<()> {
    put_by_id(tx, PROJECTS, p.id.0, p)
}

pub fn delete_project(tx: &WriteTransaction, p: &Project) -> Res<()> {
    for m in list_project_members(tx, p.id)? {
        delete_project_member(tx, p.id, m.user_id)?;
    }
    tx.open_table(PROJECTS_BY_WS_NAME)?
        .remove((p.workspace_id.0, p.name.as_str()))?;
    del_by_id(tx, PROJECTS, p.id.0)
}

pub fn list_workspace_projects(
    r: &impl Reader,
    ws: WorkspaceId,
    after: Option<&str>,
    limit: usize,
) -> Res<Vec<Project>> {
    let ids = list_named(r, PROJECTS_BY_WS_NAME, ws.0, after, limit)?;
    load_all(r, PROJECTS, ids)
}

/// How many projects a workspace holds, counted in the name index (nothing decoded).
pub fn count_workspace_projects(r: &impl Reader, ws: WorkspaceId) -> Res<u64> {
    let t = r.table(PROJECTS_BY_WS_NAME)?;
    let mut n = 0;
    for row in t.range((ws.0, "")..)? {
        if row?.0.value().0 != ws.0 {
            break;
        }
        n += 1;
    }
    Ok(n)
}

// ---- project members --------------------------------------------------------------------

pub fn get_project_member(
    r: &impl Reader,
    p: ProjectId,
    user: UserId,
) -> Res<Option<ProjectMember>> {
    get_pair(r, PROJECT_MEMBERS, p.0, user.0)
}

pub fn put_project_member(tx: &WriteTransaction, m: &ProjectMember) -> Res<()> {
    tx.open_table(PROJECT_MEMBERS)?
        .insert((m.project_id.0, m.user_id.0), encode(m)?.as_slice())?;
    tx.open_table(PROJECT_MEMBERS_BY_USER)?
        .insert((m.user_id.0, m.project_id.0), ())?;
    Ok(())
}

pub fn delete_project_member(tx: &WriteTransaction, p: ProjectId, user: UserId) -> Res<()> {
    tx.open_table(PROJECT_MEMBERS)?.remove((p.0, user.0))?;
    tx.open_table(PROJECT_MEMBERS_BY_USER)?
        .remove((user.0, p.0))?;
    Ok(())
}

pub fn list_project_members(r: &impl Reader, p: ProjectId) -> Res<Vec<ProjectMember>> {
    list_pair(r, PROJECT_MEMBERS, p.0, None, usize::MAX)
}

pub fn user_project_ids(r: &impl Reader, user: UserId) -> Res<Vec<ProjectId>> {
    Ok(index_seconds(r, PROJECT_MEMBERS_BY_USER, user.0)?
        .into_iter()
        .map(ProjectId)
        .collect())
}

// ---- plans ------------------------------------------------------------------------------

pub fn get_plan(r: &impl Reader, id: &str) -> Res<Option<Plan>> {
    match r.table(PLANS)?.get(id)? {
        Some(v) => Ok(Some(decode(v.value(), PLANS.name(), &id)?)),
        None => Ok(None),
    }
}

pub fn put_plan(tx: &WriteTransaction, p: &Plan) -> Res<()> {
    tx.open_table(PLANS)?
        .insert(p.id.as_str(), encode(p)?.as_slice())?;
    Ok(())
}

pub fn delete_plan(tx: &WriteTransaction, id: &str) -> Res<()> {
    tx.open_table(PLANS)?.remove(id)?;
    Ok(())
}

pub fn list_plans(r: &impl Reader) -> Res<Vec<Plan>> {
    let t = r.table(PLANS)?;
    let mut out = Vec::new();
    for row in t.iter()? {
        let (k, v) = row?;
        out.push(decode(v.value(), PLANS.name(), &k.value())?);
    }
    Ok(out)
}

// ---- sessions ---------------------------------------------------------------------------

pub fn session_by_digest(r: &impl Reader, digest: &SecretDigest) -> Res<Option<Session>> {
    match r.table(SESSIONS)?.get(*digest)? {
        Some(v) => Ok(Some(decode(v.value(), SESSIONS.name(), &"(session)")?)),
        None => Ok(None),
    }
}

pub fn put_session(tx: &WriteTransaction, s: &Session) -> Res<()> {
    tx.open_table(SESSIONS)?
        .insert(s.digest, encode(s)?.as_slice())?;
    tx.open_table(SESSIONS_BY_USER)?
        .insert((s.user_id.0, s.id.0), s.digest)?;
    Ok(())
}

pub fn delete_session(tx: &WriteTransaction, s: &Session) -> Res<()> {
    tx.open_table(SESSIONS)?.remove(s.digest)?;
    tx.open_table(SESSIONS_BY_USER)?
        .remove((s.user_id.0, s.id.0))?;
    Ok(())
}

/// A user's sessions, oldest first.
pub fn list_user_sessions(r: &impl Reader, user: UserId) -> Res<Vec<Session>> {
    let idx = r.table(SESSIONS_BY_USER)?;
    let mut digests = Vec::new();
    for row in idx.range((user.0, 0)..=(user.0, u128::MAX))? {
        digests.push(row?.1.value());
    }
    drop(idx);
    let mut out = Vec::new();
    for d in digests {
        if let Some(s) = session_by_digest(r, &d)? {
            out.push(s);
        }
    }
    Ok(out)
}

// ---- API tokens -------------------------------------------------------------------------

pub fn get_token(r: &impl Reader, id: TokenId) -> Res<Option<ApiToken>> {
    get_by_id(r, TOKENS, id.0)
}

pub fn token_by_digest(r: &impl Reader, digest: &SecretDigest) -> Res<Option<ApiToken>> {
    let id = r.table(TOKENS_BY_DIGEST)?.get(*digest)?.map(|v| v.value());
    match id {
        Some(id) => get_token(r, TokenId(id)),
        None => Ok(None),
    }
}

pub fn insert_token(tx: &WriteTransaction, t: &ApiToken) -> Res<()> {
    put_by_id(tx, TOKENS, t.id.0, t)?;
    tx.open_table(TOKENS_BY_DIGEST)?.insert(t.digest, t.id.0)?;
    tx.open_table(TOKENS_BY_USER)?
        .insert((t.user_id.0, t.id.0), ())?;
    Ok(())
}

pub fn update_token(tx: &WriteTransaction, t: &ApiToken) -> Res<()> {
    put_by_id(tx, TOKENS, t.id.0, t)
}

pub fn delete_token(tx: &WriteTransaction, t: &ApiToken) -> Res<()> {
    tx.open_table(TOKENS_BY_DIGEST)?.remove(t.digest)?;
    tx.open_table(TOKENS_BY_USER)?
        .remove((t.user_id.0, t.id.0))?;
    del_by_id(tx, TOKENS, t.id.0)
}

pub fn list_user_tokens(r: &impl Reader, user: UserId) -> Res<Vec<ApiToken>> {
    let ids = index_seconds(r, TOKENS_BY_USER, user.0)?;
    load_all(r, TOKENS, ids)
}

// ---- audit ------------------------------------------------------------------------------

pub fn append_audit(tx: &WriteTransaction, ev: &AuditEvent) -> Res<()> {
    put_by_id(tx, AUDIT, ev.id.0, ev)?;
    if let Some(org) = ev.org_id {
        tx.open_table(AUDIT_BY_ORG)?.insert((org.0, ev.id.0), ())?;
    }
    Ok(())
}

/// Which audit events to list; all filters combine with AND.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub org: Option<OrgId>,
    pub actor: Option<UserId>,
    pub action_prefix: Option<String>,
    pub since: Option<jiff::Timestamp>,
    pub until: Option<jiff::Timestamp>,
}

impl AuditFilter {
    fn matches(&self, ev: &AuditEvent) -> bool {
        self.actor.is_none_or(|a| ev.actor == Some(a))
            && self
                .action_prefix
                .as_deref()
                .is_none_or(|p| ev.action.starts_with(p))
            && self.since.is_none_or(|s| ev.time >= s)
            && self.until.is_none_or(|u| ev.time < u)
            && self.org.is_none_or(|o| ev.org_id == Some(o))
    }
}

/// Newest first, strictly before the cursor event id when given.
pub fn list_audit(
    r: &impl Reader,
    filter: &AuditFilter,
    before: Option<AuditId>,
    limit: usize,
) -> Res<Vec<AuditEvent>> {
    let upper = before.map_or(u128::MAX, |b| b.0.saturating_sub(1));
    // ULIDs start with the millisecond time, so a time window is also an id window.
    let lower = filter
        .since
        .map_or(0, |s| (s.as_millisecond().max(0) as u128) << 80);
    let mut out = Vec::new();
    if lower > upper {
        return Ok(out);
    }
    if let Some(org) = filter.org {
        // Walk the index and the events together and stop at `limit`: a page of an old
        // organization's log costs the page, not the whole history.
        let idx = r.table(AUDIT_BY_ORG)?;
        let events = r.table(AUDIT)?;
        for row in idx.range((org.0, lower)..=(org.0, upper))?.rev() {
            if out.len() >= limit {
                break;
            }
            let id = row?.0.value().1;
            if let Some(v) = events.get(id)? {
                let ev: AuditEvent = decode(v.value(), AUDIT.name(), &id)?;
                if filter.matches(&ev) {
                    out.push(ev);
                }
            }
        }
        return Ok(out);
    }
    let t = r.table(AUDIT)?;
    for row in t.range(lower..=upper)?.rev() {
        if out.len() >= limit {
            break;
        }
        let (k, v) = row?;
        let ev: AuditEvent = decode(v.value(), AUDIT.name(), &k.value())?;
        if filter.matches(&ev) {
            out.push(ev);
        }
    }
    Ok(out)
}

// ---- dedicated nodes ----------------------------------------------------------------------

pub fn node_assignment(r: &impl Reader, node: &str) -> Res<Option<NodeAssignment>> {
    match r.table(NODE_ASSIGNMENTS)?.get(node)? {
        Some(v) => Ok(Some(decode(v.value(), NODE_ASSIGNMENTS.name(), &node)?)),
        None => Ok(None),
    }
}

pub fn all_node_assignments(r: &impl Reader) -> Res<Vec<NodeAssignment>> {
    let t = r.table(NODE_ASSIGNMENTS)?;
    let mut out = Vec::new();
    for row in t.iter()? {
        let (k, v) = row?;
        out.push(decode(v.value(), NODE_ASSIGNMENTS.name(), &k.value())?);
    }
    Ok(out)
}

/// Records an assignment and opens its billing interval.
pub fn put_node_assignment(
    tx: &WriteTransaction,
    a: &NodeAssignment,
    interval: &NodeInterval,
) -> Res<()> {
    tx.open_table(NODE_ASSIGNMENTS)?
        .insert(a.node.as_str(), encode(a)?.as_slice())?;
    put_by_id(tx, NODE_INTERVALS, interval.id.0, interval)?;
    tx.open_table(NODE_INTERVALS_BY_WS)?
        .insert((interval.workspace_id.0, interval.id.0), ())?;
    Ok(())
}

/// Ends an assignment and closes its billing interval at `until`.
pub fn end_node_assignment(
    tx: &WriteTransaction,
    a: &NodeAssignment,
    until: jiff::Timestamp,
) -> Res<()> {
    tx.open_table(NODE_ASSIGNMENTS)?.remove(a.node.as_str())?;
    if let Some(mut i) = get_by_id::<NodeInterval>(tx, NODE_INTERVALS, a.interval_id.0)? {
        i.until = Some(until);
        put_by_id(tx, NODE_INTERVALS, i.id.0, &i)?;
    }
    Ok(())
}

/// A workspace's node intervals, oldest first.
pub fn node_intervals(r: &impl Reader, ws: WorkspaceId) -> Res<Vec<NodeInterval>> {
    let ids = index_seconds(r, NODE_INTERVALS_BY_WS, ws.0)?;
    load_all(r, NODE_INTERVALS, ids)
}
