//! Organizations, their invitations, workspaces and projects, with the indexes that keep names unique in their parent.

use super::*;

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
    for m in list_members(tx, o.id, None, usize::MAX)? {
        delete_member(tx, o.id, m.user_id)?;
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
    for m in list_members(tx, w.id, None, usize::MAX)? {
        delete_member(tx, w.id, m.user_id)?;
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

/// How many workspaces the box has, in every organization (the box-wide cap).
pub fn count_all_workspaces(r: &impl Reader) -> Res<u64> {
    use redb::ReadableTableMetadata;
    Ok(r.table(WORKSPACES)?.len()?)
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
    for m in list_members(tx, p.id, None, usize::MAX)? {
        delete_member(tx, p.id, m.user_id)?;
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

/// The ids of a workspace's projects that are `visible`, in name order, after `after`, each
/// with its name when `named` says so for its position among them (0, 1, …); nothing
/// decoded, and nothing allocated for the rows left out.
pub fn workspace_project_ids(
    r: &impl Reader,
    ws: WorkspaceId,
    after: Option<&str>,
    limit: usize,
    visible: impl Fn(ProjectId) -> bool,
    named: impl Fn(usize) -> bool,
) -> Res<Vec<(ProjectId, Option<String>)>> {
    let mut n = 0;
    list_named_as(r, PROJECTS_BY_WS_NAME, ws.0, after, limit, |name, id| {
        let id = ProjectId(id);
        if !visible(id) {
            return None;
        }
        let row = (id, named(n).then(|| name.to_string()));
        n += 1;
        Some(row)
    })
}

pub fn load_projects(r: &impl Reader, ids: &[ProjectId]) -> Res<Vec<Project>> {
    load_all(r, PROJECTS, ids.iter().map(|p| p.0).collect())
}

/// Projects as the API shows them (see [`crate::store::shown`]).
pub fn show_projects(
    r: &impl Reader,
    memo: &ShownMemo,
    ids: &[ProjectId],
) -> Res<ShownList<Project>> {
    show_all(
        r,
        memo,
        PROJECTS,
        &ids.iter().map(|p| p.0).collect::<Vec<_>>(),
    )
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
