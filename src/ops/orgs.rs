//! Organizations and their members: create (the creator becomes owner), read, rename,
//! delete when empty, limits (platform administrators), member roles and removal. An
//! organization always keeps at least one owner.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::authz::{org_for, require_platform_admin};
use super::cluster_access::{self, RemovedMember};
use super::members::{self, OrgMemberView};
use super::users::conflict_as_409;
use super::{Actor, Ops, OpsError, OpsResult, Page, invalid, page};
use crate::domain::membership::MemberRecord;
use crate::domain::names::{check_display_name, check_resource_name};
use crate::domain::policy::Action;
use crate::domain::*;
use crate::store::{Reader, records};

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrg {
    /// DNS label, unique on this box, e.g. `acme`.
    #[schema(pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length = 40)]
    pub name: String,
    #[serde(default)]
    #[schema(min_length = 1, pattern = r"\S")]
    pub display_name: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrgPatch {
    #[schema(min_length = 1, pattern = r"\S")]
    pub display_name: String,
}

/// Limits in force and how much of them is used.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrgUsage {
    pub workspaces: u64,
    pub max_workspaces: u32,
    pub members: u64,
    pub max_members: u32,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrgView {
    #[serde(flatten)]
    pub org: Organization,
    /// The caller's role; absent for platform administrators who are not members.
    pub my_role: Option<OrgRole>,
    pub usage: OrgUsage,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleChange {
    pub role: OrgRole,
}

impl Ops {
    pub(crate) fn org_usage(&self, r: &impl Reader, org: &Organization) -> OpsResult<OrgUsage> {
        Ok(OrgUsage {
            workspaces: records::count_org_workspaces(r, org.id)?,
            max_workspaces: org
                .limits
                .max_workspaces
                .unwrap_or(self.settings.default_max_workspaces),
            members: records::count_members(r, org.id)?,
            max_members: org
                .limits
                .max_members
                .unwrap_or(self.settings.default_max_members),
        })
    }

    fn org_view(&self, r: &impl Reader, actor: &Actor, org: Organization) -> OpsResult<OrgView> {
        let my_role = records::get_member(r, org.id, actor.user_id)?.map(|m| m.role);
        let usage = self.org_usage(r, &org)?;
        Ok(OrgView {
            org,
            my_role,
            usage,
        })
    }

    /// Whether `actor` may create another organization: configuration may keep creation to
    /// platform administrators, and limits how many organizations one user owns (so one
    /// account cannot claim the box's capacity through endless organizations).
    fn check_org_creation(&self, r: &impl Reader, actor: &Actor) -> OpsResult<()> {
        if actor.platform_admin {
            return Ok(());
        }
        if self.settings.org_creation_admins_only {
            return Err(OpsError::Forbidden(
                "only platform administrators may create organizations on this box; ask one".into(),
            ));
        }
        let max = self.settings.max_orgs_per_user;
        if max == 0 {
            return Ok(());
        }
        let mut owned = 0u32;
        for org in records::scopes_of_user::<OrgId>(r, actor.user_id)? {
            if records::get_member(r, org, actor.user_id)?.is_some_and(|m| m.role == OrgRole::Owner)
            {
                owned += 1;
            }
        }
        if owned >= max {
            return Err(OpsError::Conflict(format!(
                "organization limit reached: you own {owned} of the {max} organizations one \
                 user may own; delete one or ask a platform administrator"
            )));
        }
        Ok(())
    }

    pub fn create_org(&self, actor: &Actor, input: NewOrg) -> OpsResult<OrgView> {
        check_resource_name(&input.name).map_err(|p| invalid("name", p.0))?;
        let display = input.display_name.unwrap_or_else(|| input.name.clone());
        check_display_name(&display).map_err(|p| invalid("display_name", p.0))?;
        let now = self.now();
        let org = Organization {
            id: OrgId::generate(),
            name: input.name,
            display_name: display.trim().to_string(),
            limits: OrgLimits::default(),
            created_at: now,
            updated_at: now,
        };
        let tx = self.store.write()?;
        self.check_org_creation(&tx, actor)?;
        records::insert_org(&tx, &org).map_err(conflict_as_409)?;
        records::put_member(
            &tx,
            &Membership::new(org.id, actor.user_id, OrgRole::Owner, now),
        )?;
        records::append_audit(&tx, &self.event(actor, "org.create", org.id, Some(org.id)))?;
        let view = self.org_view(&tx, actor, org)?;
        self.commit(tx, &[])?;
        Ok(view)
    }

    /// The caller's organizations by name (all of them for platform administrators).
    pub fn list_orgs(
        &self,
        actor: &Actor,
        after: Option<&str>,
        limit: usize,
    ) -> OpsResult<Page<OrgView>> {
        let r = self.store.read()?;
        let orgs = if actor.platform_admin {
            records::list_orgs(&r, after, limit + 1)?
        } else {
            let mut mine = Vec::new();
            for id in records::scopes_of_user::<OrgId>(&r, actor.user_id)? {
                if let Some(o) = records::get_org(&r, id)? {
                    mine.push(o);
                }
            }
            mine.sort_by(|a, b| a.name.cmp(&b.name));
            mine.into_iter()
                .filter(|o| after.is_none_or(|a| o.name.as_str() > a))
                .take(limit + 1)
                .collect()
        };
        let mut views = Vec::with_capacity(orgs.len());
        for o in orgs {
            views.push(self.org_view(&r, actor, o)?);
        }
        Ok(page(views, limit, |v: &OrgView| v.org.name.clone()))
    }

    pub fn get_org(&self, actor: &Actor, id: OrgId) -> OpsResult<OrgView> {
        let r = self.store.read()?;
        let org = org_for(&r, actor, id, Action::OrgRead)?;
        self.org_view(&r, actor, org)
    }

    pub fn update_org(&self, actor: &Actor, id: OrgId, patch: OrgPatch) -> OpsResult<OrgView> {
        check_display_name(&patch.display_name).map_err(|p| invalid("display_name", p.0))?;
        let tx = self.store.write()?;
        let mut org = org_for(&tx, actor, id, Action::OrgUpdate)?;
        org.display_name = patch.display_name.trim().to_string();
        org.updated_at = self.now();
        records::update_org(&tx, &org)?;
        records::append_audit(&tx, &self.event(actor, "org.update", org.id, Some(org.id)))?;
        let view = self.org_view(&tx, actor, org)?;
        self.commit(tx, &[])?;
        Ok(view)
    }

    /// Deletes an organization that has no workspaces left.
    pub fn delete_org(&self, actor: &Actor, id: OrgId) -> OpsResult<()> {
        let tx = self.store.write()?;
        let org = org_for(&tx, actor, id, Action::OrgDelete)?;
        let n = records::count_org_workspaces(&tx, org.id)?;
        if n > 0 {
            return Err(OpsError::Conflict(format!(
                "the organization still has {n} workspace(s); delete them first"
            )));
        }
        records::delete_org(&tx, &org)?;
        records::append_audit(
            &tx,
            &self.event(actor, "org.delete", &org.name, Some(org.id)),
        )?;
        self.commit(tx, &[])
    }

    /// Platform administrators set an organization's limits (`None` = configured default).
    pub fn set_org_limits(
        &self,
        actor: &Actor,
        id: OrgId,
        limits: OrgLimits,
    ) -> OpsResult<OrgView> {
        require_platform_admin(actor)?;
        if limits.max_workspaces == Some(0) || limits.max_members == Some(0) {
            return Err(invalid(
                "max_members",
                "limits must be at least 1 (or null for the default)",
            ));
        }
        let tx = self.store.write()?;
        let mut org = records::get_org(&tx, id)?.ok_or(OpsError::NotFound("organization"))?;
        org.limits = limits;
        org.updated_at = self.now();
        records::update_org(&tx, &org)?;
        let mut ev = self.event(actor, "org.limits.set", org.id, Some(org.id));
        ev.detail = format!("{limits:?}");
        records::append_audit(&tx, &ev)?;
        let view = self.org_view(&tx, actor, org)?;
        self.commit(tx, &[])?;
        Ok(view)
    }

    pub fn list_members(
        &self,
        actor: &Actor,
        org: OrgId,
        after: Option<UserId>,
        limit: usize,
    ) -> OpsResult<Page<OrgMemberView>> {
        let r = self.store.read()?;
        org_for(&r, actor, org, Action::OrgMembersRead)?;
        let rows = records::list_members(&r, org, after, limit + 1)?;
        let views = members::views(&r, rows)?;
        Ok(page(views, limit, |v: &OrgMemberView| {
            v.user_id.to_string()
        }))
    }

    /// Changes a member's role; only owners make or unmake owners, and the last owner
    /// stays one.
    pub fn change_member_role(
        &self,
        actor: &Actor,
        org: OrgId,
        user: UserId,
        change: RoleChange,
    ) -> OpsResult<OrgMemberView> {
        let tx = self.store.write()?;
        org_for(&tx, actor, org, Action::OrgMembersManage)?;
        let m = records::get_member(&tx, org, user)?.ok_or(OpsError::NotFound("member"))?;
        if m.role == OrgRole::Owner || change.role == OrgRole::Owner {
            org_for(&tx, actor, org, Action::OrgOwnersManage)?;
        }
        let view = members::change(&tx, org, user, change.role)?;
        let mut ev = self.event(actor, "org.member.role", &view.email, Some(org));
        ev.detail = change.role.as_str().into();
        records::append_audit(&tx, &ev)?;
        // Owners and admins are workspace admins in every workspace of the organization.
        let changes = cluster_access::org_workspaces(&tx, org)?;
        self.commit(tx, &changes)?;
        Ok(view)
    }

    /// Removes a member (or lets a member leave), with their workspace and project roles in
    /// this organization; says until when the kubeconfigs issued to them remain valid.
    pub fn remove_member(
        &self,
        actor: &Actor,
        org: OrgId,
        user: UserId,
    ) -> OpsResult<RemovedMember> {
        let tx = self.store.write()?;
        if user != actor.user_id {
            org_for(&tx, actor, org, Action::OrgMembersManage)?;
        } else {
            org_for(&tx, actor, org, Action::OrgRead)?;
        }
        let m = records::get_member(&tx, org, user)?.ok_or(OpsError::NotFound("member"))?;
        if m.role == OrgRole::Owner && user != actor.user_id {
            org_for(&tx, actor, org, Action::OrgOwnersManage)?;
        }
        members::remove(&tx, org, user)?;
        for ws_id in records::scopes_of_user::<WorkspaceId>(&tx, user)? {
            if let Some(ws) = records::get_workspace(&tx, ws_id)?
                && ws.org_id == org
            {
                records::delete_member(&tx, ws_id, user)?;
            }
        }
        for pid in records::scopes_of_user::<ProjectId>(&tx, user)? {
            if let Some(p) = records::get_project(&tx, pid)?
                && p.org_id == org
            {
                records::delete_member(&tx, pid, user)?;
            }
        }
        let removed = RemovedMember::of(&tx, user, self.now(), self.cluster_token_lifetime())?;
        records::append_audit(
            &tx,
            &self.event(actor, "org.member.remove", &removed.email, Some(org)),
        )?;
        // Every workspace of the organization: an owner or admin held a role in each.
        let changes = cluster_access::org_workspaces(&tx, org)?;
        self.commit(tx, &changes)?;
        Ok(removed)
    }
}
