//! One membership for the three scopes people belong to: an organization, a workspace and a
//! project. A [`Scope`] is the scope's id type; it names the role type, the stored record
//! and the words for messages, and carries the scope's rules: whether joining needs
//! organization membership first, which role must never run out (the last-owner rule), and
//! how a member limit is checked. `ops::members` runs the one add / change / remove / list
//! over any scope with these rules.
//!
//! The rules, scope by scope:
//! - organization: roles member/admin/owner; at least one owner always (change and removal
//!   are refused otherwise); at most the organization's `max_members` (platform limits,
//!   default from configuration), counted with pending invitations when inviting and
//!   checked again when an invitation is accepted.
//! - workspace: roles workspace-viewer/workspace-admin; only organization members join; at
//!   most the plan's `max_members`. No last-admin rule: organization admins always manage a
//!   workspace, and a new workspace starts with no members.
//! - project: roles viewer/developer/admin; only organization members join; at most the
//!   workspace plan's `max_members` in each project (a project is part of the workspace,
//!   so it never holds more people than the plan allows the workspace). No last-admin
//!   rule, for the same reason as workspaces.

use std::fmt::{Debug, Display};

use jiff::Timestamp;
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::ToSchema;

use super::ids::{OrgId, ProjectId, UserId, WorkspaceId};
use super::model::{Membership, ProjectMember, WorkspaceMember};
use super::roles::{OrgRole, ProjectRole, WorkspaceRole};

/// Something people are members of, named by its id.
pub trait Scope: Copy + Eq + Debug + Display + 'static {
    type Role: Copy + Eq + Ord + Debug + Serialize + DeserializeOwned + ToSchema + 'static;
    /// The stored record of one member.
    type Member: MemberRecord<Scope = Self>;
    /// The scope in words: `organization`, `workspace`, `project`.
    const NOUN: &'static str;
    /// What a missing member is called in a 404 (the API's wording, kept per scope).
    const MEMBER_NOUN: &'static str;
    /// Whether only members of the scope's organization may join it.
    const WITHIN_ORG: bool;
    /// The role the scope must always keep at least one holder of, if any.
    const KEEPER: Option<Self::Role>;
    /// Every role, lowest first.
    const ROLES: &'static [Self::Role];

    fn raw(self) -> u128;
    fn from_raw(raw: u128) -> Self;
    fn role_str(role: Self::Role) -> &'static str;
}

/// One person's membership of a scope, as stored.
pub trait MemberRecord:
    Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static
{
    type Scope: Scope;
    fn new(
        scope: Self::Scope,
        user: UserId,
        role: <Self::Scope as Scope>::Role,
        since: Timestamp,
    ) -> Self;
    fn scope(&self) -> Self::Scope;
    fn user(&self) -> UserId;
    fn role(&self) -> <Self::Scope as Scope>::Role;
    fn set_role(&mut self, role: <Self::Scope as Scope>::Role);
    /// When they joined (organizations) or were added (workspaces, projects).
    fn since(&self) -> Timestamp;
}

/// A member limit in force and where it comes from, in words for the refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberLimit {
    pub max: u32,
    /// Completes "member limit reached: …", e.g. `plan "starter" allows 10 workspace members`.
    pub source: String,
}

/// Why a membership change is refused (each becomes a 409).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembershipRefusal {
    #[error("member limit reached: {limit}; {in_use} in use")]
    Full { limit: String, in_use: u64 },
    #[error("{article} {noun} needs at least one {role}; make someone else {role} first")]
    LastKeeper {
        article: &'static str,
        noun: &'static str,
        role: &'static str,
    },
}

/// Whether one more member fits when `in_use` already belong.
pub fn check_room(limit: &MemberLimit, in_use: u64) -> Result<(), MembershipRefusal> {
    if in_use >= u64::from(limit.max) {
        return Err(MembershipRefusal::Full {
            limit: limit.source.clone(),
            in_use,
        });
    }
    Ok(())
}

/// The last-keeper rule: `user` leaving their role (for `new_role`, or leaving the scope
/// when `None`) must leave someone else holding the scope's keeper role.
pub fn check_keeper<S: Scope>(
    members: &[S::Member],
    user: UserId,
    new_role: Option<S::Role>,
) -> Result<(), MembershipRefusal> {
    let Some(keeper) = S::KEEPER else {
        return Ok(());
    };
    let holds = members
        .iter()
        .any(|m| m.user() == user && m.role() == keeper);
    if !holds || new_role == Some(keeper) {
        return Ok(());
    }
    if members
        .iter()
        .any(|m| m.user() != user && m.role() == keeper)
    {
        return Ok(());
    }
    let noun = S::NOUN;
    Err(MembershipRefusal::LastKeeper {
        article: if noun.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        },
        noun,
        role: S::role_str(keeper),
    })
}

// ---- the three scopes ---------------------------------------------------------------------

impl Scope for OrgId {
    type Role = OrgRole;
    type Member = Membership;
    const NOUN: &'static str = "organization";
    const MEMBER_NOUN: &'static str = "member";
    const WITHIN_ORG: bool = false;
    const KEEPER: Option<OrgRole> = Some(OrgRole::Owner);
    const ROLES: &'static [OrgRole] = &[OrgRole::Member, OrgRole::Admin, OrgRole::Owner];
    fn raw(self) -> u128 {
        self.0
    }
    fn from_raw(raw: u128) -> Self {
        OrgId(raw)
    }
    fn role_str(role: OrgRole) -> &'static str {
        role.as_str()
    }
}

impl Scope for WorkspaceId {
    type Role = WorkspaceRole;
    type Member = WorkspaceMember;
    const NOUN: &'static str = "workspace";
    const MEMBER_NOUN: &'static str = "workspace member";
    const WITHIN_ORG: bool = true;
    const KEEPER: Option<WorkspaceRole> = None;
    const ROLES: &'static [WorkspaceRole] = &[WorkspaceRole::Viewer, WorkspaceRole::Admin];
    fn raw(self) -> u128 {
        self.0
    }
    fn from_raw(raw: u128) -> Self {
        WorkspaceId(raw)
    }
    fn role_str(role: WorkspaceRole) -> &'static str {
        role.as_str()
    }
}

impl Scope for ProjectId {
    type Role = ProjectRole;
    type Member = ProjectMember;
    const NOUN: &'static str = "project";
    const MEMBER_NOUN: &'static str = "project member";
    const WITHIN_ORG: bool = true;
    const KEEPER: Option<ProjectRole> = None;
    const ROLES: &'static [ProjectRole] = &[
        ProjectRole::Viewer,
        ProjectRole::Developer,
        ProjectRole::Admin,
    ];
    fn raw(self) -> u128 {
        self.0
    }
    fn from_raw(raw: u128) -> Self {
        ProjectId(raw)
    }
    fn role_str(role: ProjectRole) -> &'static str {
        role.as_str()
    }
}

/// The three records differ only in their field names (kept: they are the stored JSON).
macro_rules! member_record {
    ($record:ty, $scope:ty, $scope_field:ident, $since_field:ident) => {
        impl MemberRecord for $record {
            type Scope = $scope;
            fn new(
                scope: $scope,
                user: UserId,
                role: <$scope as Scope>::Role,
                since: Timestamp,
            ) -> Self {
                Self {
                    $scope_field: scope,
                    user_id: user,
                    role,
                    $since_field: since,
                }
            }
            fn scope(&self) -> $scope {
                self.$scope_field
            }
            fn user(&self) -> UserId {
                self.user_id
            }
            fn role(&self) -> <$scope as Scope>::Role {
                self.role
            }
            fn set_role(&mut self, role: <$scope as Scope>::Role) {
                self.role = role;
            }
            fn since(&self) -> Timestamp {
                self.$since_field
            }
        }
    };
}

member_record!(Membership, OrgId, org_id, joined_at);
member_record!(WorkspaceMember, WorkspaceId, workspace_id, added_at);
member_record!(ProjectMember, ProjectId, project_id, added_at);

#[cfg(test)]
mod tests {
    use super::*;

    fn org_member(org: OrgId, role: OrgRole) -> Membership {
        Membership::new(org, UserId::generate(), role, Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn the_last_owner_may_neither_step_down_nor_leave() {
        let org = OrgId::generate();
        let owner = org_member(org, OrgRole::Owner);
        let admin = org_member(org, OrgRole::Admin);
        let both = [owner.clone(), admin.clone()];
        let refusal = check_keeper::<OrgId>(&both, owner.user_id, Some(OrgRole::Admin));
        assert_eq!(
            refusal.unwrap_err().to_string(),
            "an organization needs at least one owner; make someone else owner first"
        );
        assert!(check_keeper::<OrgId>(&both, owner.user_id, None).is_err());
        // Staying owner, or anyone else changing, is fine.
        assert!(check_keeper::<OrgId>(&both, owner.user_id, Some(OrgRole::Owner)).is_ok());
        assert!(check_keeper::<OrgId>(&both, admin.user_id, None).is_ok());
        // With a second owner, the first may go.
        let second = org_member(org, OrgRole::Owner);
        let three = [owner.clone(), admin, second];
        assert!(check_keeper::<OrgId>(&three, owner.user_id, None).is_ok());
    }

    #[test]
    fn workspaces_and_projects_have_no_keeper_role() {
        let ws = WorkspaceId::generate();
        let admin = WorkspaceMember::new(
            ws,
            UserId::generate(),
            WorkspaceRole::Admin,
            Timestamp::UNIX_EPOCH,
        );
        let only = [admin.clone()];
        assert!(check_keeper::<WorkspaceId>(&only, admin.user_id, None).is_ok());
        let p = ProjectId::generate();
        let padmin = ProjectMember::new(
            p,
            UserId::generate(),
            ProjectRole::Admin,
            Timestamp::UNIX_EPOCH,
        );
        let only = [padmin.clone()];
        assert!(
            check_keeper::<ProjectId>(&only, padmin.user_id, Some(ProjectRole::Viewer)).is_ok()
        );
    }

    #[test]
    fn a_full_scope_refuses_one_more() {
        let limit = MemberLimit {
            max: 2,
            source: "plan \"starter\" allows 2 workspace members".into(),
        };
        assert!(check_room(&limit, 0).is_ok());
        assert!(check_room(&limit, 1).is_ok());
        assert_eq!(
            check_room(&limit, 2).unwrap_err().to_string(),
            "member limit reached: plan \"starter\" allows 2 workspace members; 2 in use"
        );
    }

    #[test]
    fn records_keep_their_stored_field_names() {
        let org = OrgId::generate();
        let m = org_member(org, OrgRole::Member);
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["org_id"], serde_json::to_value(org).unwrap());
        assert!(json.get("joined_at").is_some());
        let p = ProjectMember::new(
            ProjectId::generate(),
            m.user_id,
            ProjectRole::Developer,
            Timestamp::UNIX_EPOCH,
        );
        let json = serde_json::to_value(&p).unwrap();
        assert!(json.get("project_id").is_some() && json.get("added_at").is_some());
        assert_eq!(p.scope(), p.project_id);
        assert_eq!(p.since(), Timestamp::UNIX_EPOCH);
    }
}
