//! Who belongs where: organization memberships, workspace members and project members.

use super::*;

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
