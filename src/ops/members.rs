//! One membership use case for organizations, workspaces and projects: list, add or change
//! a role, remove, with the scope's rules from `domain::membership` (organization
//! membership first, member limits, the last-owner rule). The per-scope use cases in
//! `orgs`, `workspaces` and `projects` check the capability, pick the limit and write the
//! audit event; everything about the membership itself happens here, inside their
//! transaction.

use std::borrow::Cow;

use jiff::Timestamp;
use serde::ser::{Serialize, SerializeStruct, Serializer};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{Ref, RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use super::{OpsError, OpsResult};
use crate::domain::membership::{
    MemberLimit, MemberRecord, MembershipRefusal, Scope, check_keeper, check_room,
};
use crate::domain::*;
use crate::store::Reader;
use crate::store::records::{self, MemberTables};
use redb::WriteTransaction;

/// What the API and the console say about a scope's member. The JSON keeps each scope's
/// historical shape: organizations say `joined_at`, workspaces and projects `added_at`.
pub trait ScopeView: MemberTables {
    /// The OpenAPI schema's name.
    const VIEW_NAME: &'static str;
    /// The JSON name of [`MemberView::since`].
    const SINCE_FIELD: &'static str;
}

impl ScopeView for OrgId {
    const VIEW_NAME: &'static str = "MemberView";
    const SINCE_FIELD: &'static str = "joined_at";
}

impl ScopeView for WorkspaceId {
    const VIEW_NAME: &'static str = "WorkspaceMemberView";
    const SINCE_FIELD: &'static str = "added_at";
}

impl ScopeView for ProjectId {
    const VIEW_NAME: &'static str = "ProjectMemberView";
    const SINCE_FIELD: &'static str = "added_at";
}

/// A member of a scope with who they are.
#[derive(Debug, Clone)]
pub struct MemberView<S: Scope> {
    pub user_id: UserId,
    pub email: String,
    pub name: String,
    pub role: S::Role,
    /// When they joined (organizations) or were added (workspaces, projects).
    pub since: Timestamp,
}

pub type OrgMemberView = MemberView<OrgId>;
pub type WorkspaceMemberView = MemberView<WorkspaceId>;
pub type ProjectMemberView = MemberView<ProjectId>;

impl<S: Scope> MemberView<S> {
    fn of(u: User, m: &S::Member) -> Self {
        MemberView {
            user_id: u.id,
            email: u.email,
            name: u.name,
            role: m.role(),
            since: m.since(),
        }
    }

    /// The role in the API's words (`owner`, `workspace-admin`, `developer`).
    pub fn role_str(&self) -> &'static str {
        S::role_str(self.role)
    }
}

impl<S: ScopeView> Serialize for MemberView<S> {
    fn serialize<Se: Serializer>(&self, s: Se) -> Result<Se::Ok, Se::Error> {
        let mut st = s.serialize_struct(S::VIEW_NAME, 5)?;
        st.serialize_field("user_id", &self.user_id)?;
        st.serialize_field("email", &self.email)?;
        st.serialize_field("name", &self.name)?;
        st.serialize_field("role", &self.role)?;
        st.serialize_field(S::SINCE_FIELD, &self.since)?;
        st.end()
    }
}

// NB: written out by hand because the field name of `since` depends on the scope; it
// mirrors what `#[derive(ToSchema)]` wrote for the three views before (the tests compare).
impl<S: ScopeView> PartialSchema for MemberView<S> {
    fn schema() -> RefOr<Schema> {
        let string = || ObjectBuilder::new().schema_type(Type::String);
        ObjectBuilder::new()
            .property("user_id", Ref::from_schema_name(UserId::name()))
            .required("user_id")
            .property("email", string())
            .required("email")
            .property("name", string())
            .required("name")
            .property("role", Ref::from_schema_name(S::Role::name()))
            .required("role")
            // utoipa 5 with `jiff_0_2` refers a `Timestamp` field to a `String` component.
            .property(S::SINCE_FIELD, Ref::from_schema_name(String::name()))
            .required(S::SINCE_FIELD)
            .into()
    }
}

impl<S: ScopeView> ToSchema for MemberView<S> {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed(S::VIEW_NAME)
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((UserId::name().into_owned(), UserId::schema()));
        UserId::schemas(schemas);
        schemas.push((S::Role::name().into_owned(), S::Role::schema()));
        S::Role::schemas(schemas);
        schemas.push((String::name().into_owned(), String::schema()));
    }
}

fn refused(r: MembershipRefusal) -> OpsError {
    OpsError::Conflict(r.to_string())
}

/// Views of member records, leaving out users that no longer exist.
pub(super) fn views<S: ScopeView>(
    r: &impl Reader,
    rows: Vec<S::Member>,
) -> OpsResult<Vec<MemberView<S>>> {
    let mut out = Vec::with_capacity(rows.len());
    for m in rows {
        if let Some(u) = records::get_user(r, m.user())? {
            out.push(MemberView::of(u, &m));
        }
    }
    Ok(out)
}

/// Adds `user` to `scope` with `role`, or changes the role of a member. Joining a workspace
/// or project needs membership of `org`; a newcomer must fit in `limit`.
pub(super) fn put<S: ScopeView>(
    tx: &WriteTransaction,
    org: OrgId,
    scope: S,
    user: UserId,
    role: S::Role,
    limit: Option<&MemberLimit>,
    now: Timestamp,
) -> OpsResult<MemberView<S>> {
    // NB: a user outside the organization gets the same 404 as no user at all: naming them
    // (or answering differently) would let anyone probe other tenants' user ids.
    if S::WITHIN_ORG && records::get_member(tx, org, user)?.is_none() {
        return Err(OpsError::NotFound("user"));
    }
    let u = records::get_user(tx, user)?.ok_or(OpsError::NotFound("user"))?;
    let m = match records::get_member(tx, scope, user)? {
        Some(mut m) => {
            keeper_stays(tx, scope, user, Some(role))?;
            m.set_role(role);
            m
        }
        None => {
            if let Some(limit) = limit {
                check_room(limit, records::count_members(tx, scope)?).map_err(refused)?;
            }
            S::Member::new(scope, user, role, now)
        }
    };
    records::put_member(tx, &m)?;
    Ok(MemberView::of(u, &m))
}

/// Changes the role of an existing member.
pub(super) fn change<S: ScopeView>(
    tx: &WriteTransaction,
    scope: S,
    user: UserId,
    role: S::Role,
) -> OpsResult<MemberView<S>> {
    let mut m = records::get_member(tx, scope, user)?.ok_or(OpsError::NotFound(S::MEMBER_NOUN))?;
    keeper_stays(tx, scope, user, Some(role))?;
    m.set_role(role);
    records::put_member(tx, &m)?;
    let u = records::get_user(tx, user)?.ok_or(OpsError::NotFound(S::MEMBER_NOUN))?;
    Ok(MemberView::of(u, &m))
}

/// Removes a member; returns the record removed.
pub(super) fn remove<S: ScopeView>(
    tx: &WriteTransaction,
    scope: S,
    user: UserId,
) -> OpsResult<S::Member> {
    let m = records::get_member(tx, scope, user)?.ok_or(OpsError::NotFound(S::MEMBER_NOUN))?;
    keeper_stays(tx, scope, user, None)?;
    records::delete_member(tx, scope, user)?;
    Ok(m)
}

fn keeper_stays<S: ScopeView>(
    r: &impl Reader,
    scope: S,
    user: UserId,
    new_role: Option<S::Role>,
) -> OpsResult<()> {
    if S::KEEPER.is_none() {
        return Ok(());
    }
    let members = records::list_members(r, scope, None, usize::MAX)?;
    check_keeper::<S>(&members, user, new_role).map_err(refused)
}

#[cfg(test)]
mod tests {
    use serde::Serialize;
    use serde_json::{Value, json};

    use super::*;

    // The three views as they were written before there was one membership: the generic
    // view must keep each one's JSON and OpenAPI schema, which API clients rely on.
    #[derive(Serialize, ToSchema)]
    struct MemberViewBefore {
        user_id: UserId,
        email: String,
        name: String,
        role: OrgRole,
        joined_at: Timestamp,
    }

    #[derive(Serialize, ToSchema)]
    struct WorkspaceMemberViewBefore {
        user_id: UserId,
        email: String,
        name: String,
        role: WorkspaceRole,
        added_at: Timestamp,
    }

    #[derive(Serialize, ToSchema)]
    struct ProjectMemberViewBefore {
        user_id: UserId,
        email: String,
        name: String,
        role: ProjectRole,
        added_at: Timestamp,
    }

    fn schema<T: PartialSchema>() -> Value {
        serde_json::to_value(T::schema()).unwrap()
    }

    fn view<S: Scope>(role: S::Role) -> MemberView<S> {
        MemberView {
            user_id: UserId(7),
            email: "ada@example.com".into(),
            name: "Ada".into(),
            role,
            since: Timestamp::from_second(1_700_000_000).unwrap(),
        }
    }

    #[test]
    fn each_scope_keeps_its_json_and_schema() {
        assert_eq!(schema::<OrgMemberView>(), schema::<MemberViewBefore>());
        assert_eq!(
            schema::<WorkspaceMemberView>(),
            schema::<WorkspaceMemberViewBefore>()
        );
        assert_eq!(
            schema::<ProjectMemberView>(),
            schema::<ProjectMemberViewBefore>()
        );
        assert_eq!(OrgMemberView::name(), "MemberView");
        assert_eq!(WorkspaceMemberView::name(), "WorkspaceMemberView");
        assert_eq!(ProjectMemberView::name(), "ProjectMemberView");

        let v = view::<OrgId>(OrgRole::Owner);
        let before = MemberViewBefore {
            user_id: v.user_id,
            email: v.email.clone(),
            name: v.name.clone(),
            role: v.role,
            joined_at: v.since,
        };
        assert_eq!(json!(v), json!(before));
        let v = view::<WorkspaceId>(WorkspaceRole::Admin);
        assert_eq!(json!(v)["role"], "workspace-admin");
        assert_eq!(json!(v)["added_at"], "2023-11-14T22:13:20Z");
        let v = view::<ProjectId>(ProjectRole::Developer);
        let before = ProjectMemberViewBefore {
            user_id: v.user_id,
            email: v.email.clone(),
            name: v.name.clone(),
            role: v.role,
            added_at: v.since,
        };
        assert_eq!(json!(v), json!(before));
    }

    /// The schemas each view refers to, as the document's components get them.
    fn components<T: ToSchema>() -> Vec<(String, Value)> {
        let mut v = Vec::new();
        T::schemas(&mut v);
        let mut v: Vec<(String, Value)> = v
            .into_iter()
            .map(|(n, s)| (n, serde_json::to_value(s).unwrap()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v.dedup();
        v
    }

    #[test]
    fn each_scope_brings_the_same_components() {
        assert_eq!(
            components::<OrgMemberView>(),
            components::<MemberViewBefore>()
        );
        assert_eq!(
            components::<WorkspaceMemberView>(),
            components::<WorkspaceMemberViewBefore>()
        );
        assert_eq!(
            components::<ProjectMemberView>(),
            components::<ProjectMemberViewBefore>()
        );
    }
}
