//! The group mapping of single sign-on: at each sign-in through a provider, the roles its
//! groups map to are given in the mapped organizations, and those it gave before and no
//! longer maps are taken away. Memberships the provider did not make or change are left
//! alone; the last owner of an organization stays one; and the organization's member limit
//! holds as it does for invitations (pending invitations of others keep their seats): a
//! sign-in that would add someone to a full organization still signs them in, without that
//! role, and the audit log (a failed `org.member.role`) and the log say why.

use super::sso::Provider;
use super::{Change, Ops, OpsResult, cluster_access, members};
use crate::domain::membership::MemberLimit;
use crate::domain::sso::mapped_roles;
use crate::domain::*;
use crate::store::records;

impl Ops {
    /// Applies `p`'s group mapping for `user` holding `groups`, inside the sign-in's
    /// transaction; the changes for the virtual clusters.
    pub(super) fn apply_group_mapping(
        &self,
        tx: &redb::WriteTransaction,
        p: &Provider,
        user: &mut User,
        groups: &[String],
    ) -> OpsResult<Vec<Change>> {
        let cfg = p.settings();
        let wanted = mapped_roles(groups, &cfg.groups);
        let mut link = user.sso.take().unwrap_or_default();
        let mut changes = Vec::new();
        let mut orgs: Vec<&str> = cfg.groups.iter().map(|m| m.org.as_str()).collect();
        orgs.sort_unstable();
        orgs.dedup();
        for name in orgs {
            let Some(org) = records::org_by_name(tx, name)? else {
                tracing::warn!(provider = %cfg.id, org = name, "group mapping names an organization that does not exist");
                continue;
            };
            let current = records::get_member(tx, org.id, user.id)?;
            let managed = link.managed_orgs.contains(&org.id);
            match (wanted.get(name), current) {
                (Some(role), Some(m)) if m.role == *role => {
                    if !managed {
                        link.managed_orgs.push(org.id);
                    }
                }
                (Some(role), current) => {
                    let limit = if current.is_none() {
                        match self.room_for_newcomer(tx, &org, &user.email)? {
                            Ok(limit) => Some(limit),
                            Err(full) => {
                                tracing::warn!(provider = %cfg.id, org = name, user = %user.email, "group mapping not applied: {full}");
                                let mut ev = self.sso_event(user, "org.member.role", Some(org.id));
                                ev.outcome = Outcome::Failure;
                                ev.detail = format!(
                                    "{} not granted (identity provider {}): {full}",
                                    role.as_str(),
                                    cfg.id
                                );
                                records::append_audit(tx, &ev)?;
                                continue;
                            }
                        }
                    } else {
                        None
                    };
                    match members::put(
                        tx,
                        org.id,
                        org.id,
                        user.id,
                        *role,
                        limit.as_ref(),
                        self.now(),
                    ) {
                        Ok(_) => {
                            if !managed {
                                link.managed_orgs.push(org.id);
                            }
                            let mut ev = self.sso_event(user, "org.member.role", Some(org.id));
                            ev.detail = format!("{} (identity provider {})", role.as_str(), cfg.id);
                            records::append_audit(tx, &ev)?;
                            changes.extend(cluster_access::org_workspaces(tx, org.id)?);
                        }
                        Err(e) => {
                            tracing::warn!(org = name, error = %e, "group mapping not applied")
                        }
                    }
                }
                (None, Some(_)) if managed => match members::remove(tx, org.id, user.id) {
                    Ok(_) => {
                        drop_org_roles(tx, org.id, user.id)?;
                        link.managed_orgs.retain(|o| *o != org.id);
                        let mut ev = self.sso_event(user, "org.member.remove", Some(org.id));
                        ev.detail = format!("identity provider {}", cfg.id);
                        records::append_audit(tx, &ev)?;
                        changes.extend(cluster_access::org_workspaces(tx, org.id)?);
                    }
                    Err(e) => tracing::warn!(org = name, error = %e, "group mapping not applied"),
                },
                (None, None) => link.managed_orgs.retain(|o| *o != org.id),
                (None, Some(_)) => {}
            }
        }
        user.sso = Some(link);
        Ok(changes)
    }

    /// Whether `org` has a seat for `email`, counted as an invitation counts it: members
    /// plus others' pending invitations under the limit. The limit to check the add
    /// against, or why there is no room.
    fn room_for_newcomer(
        &self,
        tx: &redb::WriteTransaction,
        org: &Organization,
        email: &str,
    ) -> OpsResult<Result<MemberLimit, String>> {
        let usage = self.org_usage(tx, org)?;
        let now = self.now();
        let pending_others = records::list_org_invitations(tx, org.id)?
            .iter()
            .filter(|i| i.expires_at > now && !i.email.eq_ignore_ascii_case(email))
            .count() as u64;
        if usage.members + pending_others >= u64::from(usage.max_members) {
            return Ok(Err(format!(
                "member limit reached: the organization allows {} members; {} members and {} \
                 pending invitations",
                usage.max_members, usage.members, pending_others
            )));
        }
        Ok(Ok(MemberLimit {
            max: usage.max_members,
            source: format!("the organization allows {} members", usage.max_members),
        }))
    }
}

/// A member leaving an organization leaves its workspaces and projects too.
fn drop_org_roles(tx: &redb::WriteTransaction, org: OrgId, user: UserId) -> OpsResult<()> {
    for ws_id in records::scopes_of_user::<WorkspaceId>(tx, user)? {
        if let Some(ws) = records::get_workspace(tx, ws_id)?
            && ws.org_id == org
        {
            records::delete_member(tx, ws_id, user)?;
        }
    }
    for pid in records::scopes_of_user::<ProjectId>(tx, user)? {
        if let Some(p) = records::get_project(tx, pid)?
            && p.org_id == org
        {
            records::delete_member(tx, pid, user)?;
        }
    }
    Ok(())
}
