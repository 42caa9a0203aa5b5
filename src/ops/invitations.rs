//! Invitations: an organization admin invites an e-mail address with a role; the link's
//! token is single-use, expires, and can be accepted only by that address — by signing in
//! with it, or by creating the account with it when none exists.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::authz::org_for;
use super::members;
use super::secrets::{digest, hash_password, new_secret};
use super::users::conflict_as_409;
use super::{Actor, AuthVia, Ops, OpsError, OpsResult, Origin, invalid, plus};
use crate::domain::membership::MemberLimit;
use crate::domain::names::{check_display_name, normalize_email};
use crate::domain::password::check_password;
use crate::domain::policy::Action;
use crate::domain::*;
use crate::store::records;

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInvitation {
    #[schema(pattern = r"^\s*[^@\s]+@[^@\s]+\s*$")]
    pub email: String,
    pub role: OrgRole,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InvitationView {
    pub id: InvitationId,
    pub org_id: OrgId,
    pub email: String,
    pub role: OrgRole,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// A new invitation: `token` is shown once; `accept_url` is the link to send.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedInvitation {
    #[serde(flatten)]
    pub invitation: InvitationView,
    pub token: String,
}

/// What an invitation link shows before it is accepted.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InvitationInfo {
    pub org_name: String,
    pub org_display_name: String,
    pub email: String,
    pub role: OrgRole,
    pub expires_at: Timestamp,
    /// Whether an account with this e-mail exists (then: sign in to accept).
    pub account_exists: bool,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvitation {
    pub token: String,
    /// For a new account only.
    #[serde(default)]
    pub name: Option<String>,
    /// For a new account only.
    #[serde(default)]
    pub password: Option<String>,
}

impl From<&Invitation> for InvitationView {
    fn from(i: &Invitation) -> Self {
        InvitationView {
            id: i.id,
            org_id: i.org_id,
            email: i.email.clone(),
            role: i.role,
            created_at: i.created_at,
            expires_at: i.expires_at,
        }
    }
}

impl Ops {
    pub fn invite(
        &self,
        actor: &Actor,
        org: OrgId,
        input: NewInvitation,
    ) -> OpsResult<CreatedInvitation> {
        let email = normalize_email(&input.email).map_err(|p| invalid("email", p.0))?;
        let tx = self.store.write()?;
        let o = org_for(&tx, actor, org, Action::OrgMembersManage)?;
        if input.role == OrgRole::Owner {
            org_for(&tx, actor, org, Action::OrgOwnersManage)?;
        }
        if let Some(u) = records::user_by_email(&tx, &email)?
            && records::get_member(&tx, org, u.id)?.is_some()
        {
            return Err(OpsError::Conflict(format!("{email} is already a member")));
        }
        let now = self.now();
        let pending: Vec<Invitation> = records::list_org_invitations(&tx, org)?
            .into_iter()
            .filter(|i| i.expires_at > now)
            .collect();
        // Re-inviting an address replaces its earlier invitation.
        for old in pending.iter().filter(|i| i.email == email) {
            records::delete_invitation(&tx, old)?;
        }
        let usage = self.org_usage(&tx, &o)?;
        let pending_others = pending.iter().filter(|i| i.email != email).count() as u64;
        if usage.members + pending_others >= u64::from(usage.max_members) {
            return Err(OpsError::Conflict(format!(
                "member limit reached: {} members and {} pending invitations of {} allowed",
                usage.members, pending_others, usage.max_members
            )));
        }
        let token = new_secret("");
        let inv = Invitation {
            id: InvitationId::generate(),
            org_id: org,
            email: email.clone(),
            role: input.role,
            token_digest: digest(&token),
            invited_by: actor.user_id,
            created_at: now,
            expires_at: plus(now, self.settings.invitation_ttl),
        };
        records::insert_invitation(&tx, &inv)?;
        let mut ev = self.event(actor, "org.invitation.create", &email, Some(org));
        ev.detail = input.role.as_str().into();
        records::append_audit(&tx, &ev)?;
        self.commit(tx, &[])?;
        Ok(CreatedInvitation {
            invitation: InvitationView::from(&inv),
            token,
        })
    }

    pub fn list_invitations(&self, actor: &Actor, org: OrgId) -> OpsResult<Vec<InvitationView>> {
        let r = self.store.read()?;
        org_for(&r, actor, org, Action::OrgMembersManage)?;
        let now = self.now();
        Ok(records::list_org_invitations(&r, org)?
            .iter()
            .filter(|i| i.expires_at > now)
            .map(InvitationView::from)
            .collect())
    }

    pub fn revoke_invitation(&self, actor: &Actor, org: OrgId, id: InvitationId) -> OpsResult<()> {
        let tx = self.store.write()?;
        org_for(&tx, actor, org, Action::OrgMembersManage)?;
        let inv = records::get_invitation(&tx, id)?
            .filter(|i| i.org_id == org)
            .ok_or(OpsError::NotFound("invitation"))?;
        records::delete_invitation(&tx, &inv)?;
        records::append_audit(
            &tx,
            &self.event(actor, "org.invitation.revoke", &inv.email, Some(org)),
        )?;
        self.commit(tx, &[])
    }

    fn live_invitation(&self, token: &str) -> OpsResult<Invitation> {
        let r = self.store.read()?;
        records::invitation_by_digest(&r, &digest(token))?
            .filter(|i| i.expires_at > self.now())
            .ok_or(OpsError::NotFound(
                "invitation (the link was used, revoked or has expired)",
            ))
    }

    pub fn invitation_info(&self, token: &str) -> OpsResult<InvitationInfo> {
        let inv = self.live_invitation(token)?;
        let r = self.store.read()?;
        let org = records::get_org(&r, inv.org_id)?.ok_or(OpsError::NotFound("invitation"))?;
        Ok(InvitationInfo {
            org_name: org.name,
            org_display_name: org.display_name,
            email: inv.email.clone(),
            role: inv.role,
            expires_at: inv.expires_at,
            account_exists: records::user_by_email(&r, &inv.email)?.is_some(),
        })
    }

    /// Accepts an invitation. Signed in: the account's e-mail must be the invited one.
    /// Not signed in: creates the account (name and password required) unless one exists.
    /// Returns the member's user.
    pub async fn accept_invitation(
        &self,
        actor: Option<&Actor>,
        input: AcceptInvitation,
        origin: &Origin,
    ) -> OpsResult<User> {
        let inv = self.live_invitation(&input.token)?;
        let existing = records::user_by_email(&self.store.read()?, &inv.email)?;
        let new_user = match (actor, &existing) {
            (Some(a), _) if a.email != inv.email => {
                return Err(OpsError::Forbidden(format!(
                    "this invitation is for {}; you are signed in as {}",
                    inv.email, a.email
                )));
            }
            (Some(_), _) => None,
            (None, Some(_)) => {
                return Err(OpsError::Unauthenticated(format!(
                    "an account for {} exists: sign in, then accept the invitation",
                    inv.email
                )));
            }
            (None, None) => {
                let name = input.name.as_deref().unwrap_or("").trim().to_string();
                check_display_name(&name).map_err(|p| invalid("name", p.0))?;
                let password = input
                    .password
                    .ok_or_else(|| invalid("password", "is required to create your account"))?;
                check_password(&password, &inv.email, self.settings.password_min_length)
                    .map_err(|p| invalid("password", p.to_string()))?;
                let hash = hash_password(password, self.fast_hashing).await?;
                Some(User::new(
                    inv.email.clone(),
                    &name,
                    hash,
                    false,
                    self.now(),
                    CreatedVia::Invitation,
                ))
            }
        };
        let tx = self.store.write()?;
        // Re-read inside the write: the token is single-use even under a race.
        let inv = records::invitation_by_digest(&tx, &digest(&input.token))?
            .filter(|i| i.expires_at > self.now())
            .ok_or(OpsError::NotFound(
                "invitation (the link was used, revoked or has expired)",
            ))?;
        let user = match new_user {
            Some(u) => {
                records::insert_user(&tx, &u).map_err(conflict_as_409)?;
                u
            }
            None => records::user_by_email(&tx, &inv.email)?.ok_or(OpsError::NotFound("user"))?,
        };
        if records::get_member(&tx, inv.org_id, user.id)?.is_none() {
            // The limit was checked when inviting, with pending invitations counted; it is
            // checked again in case a platform administrator lowered it since.
            let org =
                records::get_org(&tx, inv.org_id)?.ok_or(OpsError::NotFound("organization"))?;
            let usage = self.org_usage(&tx, &org)?;
            let limit = MemberLimit {
                max: usage.max_members,
                source: format!("the organization allows {} members", usage.max_members),
            };
            members::put(
                &tx,
                inv.org_id,
                inv.org_id,
                user.id,
                inv.role,
                Some(&limit),
                self.now(),
            )?;
        }
        records::delete_invitation(&tx, &inv)?;
        let actor = Actor {
            user_id: user.id,
            email: user.email.clone(),
            platform_admin: user.platform_admin,
            via: actor.map_or(AuthVia::Shell, |a| a.via),
            source: origin.ip.to_string(),
        };
        records::append_audit(
            &tx,
            &self.event(
                &actor,
                "org.invitation.accept",
                &user.email,
                Some(inv.org_id),
            ),
        )?;
        // An owner or admin holds workspace-admin in every workspace of the organization.
        let changes = if matches!(inv.role, OrgRole::Owner | OrgRole::Admin) {
            super::cluster_access::org_workspaces(&tx, inv.org_id)?
        } else {
            Vec::new()
        };
        self.commit(tx, &changes)?;
        Ok(user)
    }
}
