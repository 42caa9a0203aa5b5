//! What a change of someone's roles means inside the virtual clusters: which workspaces must
//! be synced again (their role bindings name people, see `domain::groups`), and what is left
//! of the kubeconfigs already in the person's hands. A certificate cannot be revoked, so it
//! keeps authenticating until it expires; it grants only the roles its CN still holds once
//! the tenant sync has run (within seconds of the commit that announced the change).

use jiff::Timestamp;
use serde::Serialize;
use utoipa::ToSchema;

use super::{Change, OpsResult};
use crate::domain::*;
use crate::store::{Reader, records};

/// Every workspace of `org`: an organization role (owner, admin) reaches into each of them.
pub(super) fn org_workspaces(r: &impl Reader, org: OrgId) -> OpsResult<Vec<Change>> {
    Ok(records::list_org_workspaces(r, org, None, usize::MAX)?
        .into_iter()
        .map(|w| Change::Members(w.id))
        .collect())
}

/// Every workspace on the box: what a platform administrator holds, or everything a person
/// holds when their account is disabled or enabled again.
pub(super) fn all_workspaces(r: &impl Reader) -> OpsResult<Vec<Change>> {
    Ok(records::all_workspaces(r)?
        .into_iter()
        .map(|w| Change::Members(w.id))
        .collect())
}

/// The answer to removing someone from an organization, workspace or project: until when the
/// kubeconfigs already issued to them remain valid as certificates.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RemovedMember {
    pub user_id: UserId,
    pub email: String,
    /// When the last kubeconfig issued to them expires; null when none is still valid.
    /// Until then their certificates still authenticate, but they no longer grant the
    /// removed role: kaas takes it out of the virtual clusters at the next tenant sync.
    pub kubeconfigs_valid_until: Option<Timestamp>,
    /// The same, as a sentence for people.
    pub message: String,
}

impl RemovedMember {
    pub(super) fn of(r: &impl Reader, user: UserId, now: Timestamp) -> OpsResult<RemovedMember> {
        let u = records::get_user(r, user)?;
        let email = u
            .as_ref()
            .map_or_else(|| user.to_string(), |u| u.email.clone());
        let until = u
            .and_then(|u| u.kubeconfigs_valid_until)
            .filter(|t| *t > now);
        let message = match until {
            Some(t) => format!(
                "Kubeconfigs already issued to {email} remain valid certificates until {} UTC, \
                 but no longer grant the removed role: kaas takes it out of the virtual \
                 clusters within seconds.",
                t.strftime("%Y-%m-%d %H:%M")
            ),
            None => format!(
                "{email} holds no kubeconfig that is still valid; the removed role leaves the \
                 virtual clusters within seconds."
            ),
        };
        Ok(RemovedMember {
            user_id: user,
            email,
            kubeconfigs_valid_until: until,
            message,
        })
    }
}
