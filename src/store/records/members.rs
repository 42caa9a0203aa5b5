//! Who belongs where: one generic set of reads and writes over the three member tables
//! (organization memberships, workspace members, project members). The tables have one
//! shape, `(scope id, user id) → record` with a `(user id, scope id) → ()` index, so a
//! [`Scope`] only has to name its two tables.

use super::*;
use crate::domain::membership::{MemberRecord, Scope};

/// The two tables of a scope's members.
pub trait MemberTables: Scope {
    /// (scope, user) → member record.
    const MEMBERS: TableDefinition<'static, (u128, u128), &'static [u8]>;
    /// (user, scope) → () : the scopes a user belongs to.
    const BY_USER: TableDefinition<'static, (u128, u128), ()>;
}

impl MemberTables for OrgId {
    const MEMBERS: TableDefinition<'static, (u128, u128), &'static [u8]> = MEMBERSHIPS;
    const BY_USER: TableDefinition<'static, (u128, u128), ()> = MEMBERSHIPS_BY_USER;
}

impl MemberTables for WorkspaceId {
    const MEMBERS: TableDefinition<'static, (u128, u128), &'static [u8]> = WORKSPACE_MEMBERS;
    const BY_USER: TableDefinition<'static, (u128, u128), ()> = WORKSPACE_MEMBERS_BY_USER;
}

impl MemberTables for ProjectId {
    const MEMBERS: TableDefinition<'static, (u128, u128), &'static [u8]> = PROJECT_MEMBERS;
    const BY_USER: TableDefinition<'static, (u128, u128), ()> = PROJECT_MEMBERS_BY_USER;
}

pub fn get_member<S: MemberTables>(
    r: &impl Reader,
    scope: S,
    user: UserId,
) -> Res<Option<S::Member>> {
    get_pair(r, S::MEMBERS, scope.raw(), user.0)
}

/// Adds or replaces a member, with its by-user index entry.
pub fn put_member<M>(tx: &WriteTransaction, m: &M) -> Res<()>
where
    M: MemberRecord,
    M::Scope: MemberTables,
{
    let (scope, user) = (m.scope().raw(), m.user().0);
    tx.open_table(<M::Scope as MemberTables>::MEMBERS)?
        .insert((scope, user), encode(m)?.as_slice())?;
    tx.open_table(<M::Scope as MemberTables>::BY_USER)?
        .insert((user, scope), ())?;
    Ok(())
}

pub fn delete_member<S: MemberTables>(tx: &WriteTransaction, scope: S, user: UserId) -> Res<()> {
    tx.open_table(S::MEMBERS)?.remove((scope.raw(), user.0))?;
    tx.open_table(S::BY_USER)?.remove((user.0, scope.raw()))?;
    Ok(())
}

/// A scope's members in user-id order, after `after` when given.
pub fn list_members<S: MemberTables>(
    r: &impl Reader,
    scope: S,
    after: Option<UserId>,
    limit: usize,
) -> Res<Vec<S::Member>> {
    list_pair(r, S::MEMBERS, scope.raw(), after.map(|u| u.0), limit)
}

/// How many members a scope has, without decoding them (listings show the count).
pub fn count_members<S: MemberTables>(r: &impl Reader, scope: S) -> Res<u64> {
    count_prefix(r, S::MEMBERS, scope.raw())
}

/// The scopes of one kind a user belongs to.
pub fn scopes_of_user<S: MemberTables>(r: &impl Reader, user: UserId) -> Res<Vec<S>> {
    Ok(index_seconds(r, S::BY_USER, user.0)?
        .into_iter()
        .map(S::from_raw)
        .collect())
}
