//! The member card that workspace and project pages share (`templates/members.html`): the
//! members with a role form and a confirmed removal each, and the form that adds an
//! organization member. The organization page has its own card (owners, invitations,
//! leaving).

use crate::domain::membership::Scope;
use crate::ops::members::{MemberView, OrgMemberView};

pub struct MembersCard {
    /// Where the forms post, e.g. `/workspaces/ws_…` (`/members` is appended).
    pub base: String,
    /// The scope in words for the removal question, e.g. `workspace dev`.
    pub scope: String,
    /// Every role of the scope, lowest first, in the API's words.
    pub roles: Vec<&'static str>,
    pub rows: Vec<MemberRow>,
    /// Organization members who are not members yet.
    pub candidates: Vec<OrgMemberView>,
    pub can_manage: bool,
    /// Shown when there are no members.
    pub empty: String,
}

pub struct MemberRow {
    pub user_id: String,
    pub name: String,
    pub email: String,
    pub role: &'static str,
}

impl MembersCard {
    pub fn new<S: Scope>(
        base: String,
        scope: String,
        members: &[MemberView<S>],
        candidates: Vec<OrgMemberView>,
        can_manage: bool,
        empty: String,
    ) -> MembersCard {
        MembersCard {
            base,
            scope,
            roles: S::ROLES.iter().map(|r| S::role_str(*r)).collect(),
            rows: members
                .iter()
                .map(|m| MemberRow {
                    user_id: m.user_id.to_string(),
                    name: m.name.clone(),
                    email: m.email.clone(),
                    role: m.role_str(),
                })
                .collect(),
            candidates,
            can_manage,
            empty,
        }
    }
}
