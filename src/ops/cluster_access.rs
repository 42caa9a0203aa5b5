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

/// What is left of the cluster access already in someone's hands once they lose a role or
/// their account: cluster tokens (kubectl's exec plugin) and kubeconfig certificates go on
/// authenticating until they expire, but grant nothing they lost once the tenant sync has
/// run. A new cluster token is refused at once.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RemainingAccess {
    /// When the last kubeconfig certificate issued to them expires; null when none is
    /// still valid.
    pub kubeconfigs_valid_until: Option<Timestamp>,
    /// When the last cluster token issued to them expires at the latest (now plus the
    /// configured token lifetime); null when kaas issues no cluster tokens.
    pub cluster_tokens_valid_until: Option<Timestamp>,
    /// The same, as one sentence for people.
    pub message: String,
}

/// What was lost, for the sentence: a removed role, or every role of a disabled account.
#[derive(Debug, Clone, Copy)]
pub enum Lost {
    Role,
    Account,
}

impl RemainingAccess {
    /// For `user` (shown as `email`) at `now`, when kaas's cluster tokens live
    /// `token_lifetime` (None: it issues none).
    pub(super) fn of(
        email: &str,
        user: Option<&User>,
        now: Timestamp,
        token_lifetime: Option<std::time::Duration>,
        lost: Lost,
    ) -> RemainingAccess {
        let certs = user
            .and_then(|u| u.kubeconfigs_valid_until)
            .filter(|t| *t > now);
        let tokens = token_lifetime.and_then(|l| now.checked_add(l).ok());
        let (grant, leaves) = match lost {
            Lost::Role => ("the removed role: kaas takes it", "the removed role leaves"),
            Lost::Account => ("any role: kaas takes their roles", "their roles leave"),
        };
        let cert_time = |t: Timestamp| t.strftime("%Y-%m-%d %H:%M").to_string();
        let token_time = |t: Timestamp| t.strftime("%Y-%m-%d %H:%M:%S").to_string();
        let message = match (certs, tokens) {
            (Some(c), Some(t)) => format!(
                "Kubeconfigs already issued to {email} remain valid certificates until {} UTC \
                 and their cluster tokens until {} UTC at the latest, but no longer grant \
                 {grant} out of the virtual clusters within seconds.",
                cert_time(c),
                token_time(t)
            ),
            (Some(c), None) => format!(
                "Kubeconfigs already issued to {email} remain valid certificates until {} UTC, \
                 but no longer grant {grant} out of the virtual clusters within seconds.",
                cert_time(c)
            ),
            (None, Some(t)) => format!(
                "Cluster tokens already issued to {email} remain valid until {} UTC at the \
                 latest (no kubeconfig certificate of theirs is still valid), but no longer \
                 grant {grant} out of the virtual clusters within seconds.",
                token_time(t)
            ),
            (None, None) => format!(
                "{email} holds no kubeconfig that is still valid; {leaves} the virtual \
                 clusters within seconds."
            ),
        };
        RemainingAccess {
            kubeconfigs_valid_until: certs,
            cluster_tokens_valid_until: tokens,
            message,
        }
    }
}

/// The answer to removing someone from an organization, workspace or project: until when
/// the access already issued to them remains valid.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RemovedMember {
    pub user_id: UserId,
    pub email: String,
    /// When the last kubeconfig issued to them expires; null when none is still valid.
    /// Until then their certificates still authenticate, but they no longer grant the
    /// removed role: kaas takes it out of the virtual clusters at the next tenant sync.
    pub kubeconfigs_valid_until: Option<Timestamp>,
    /// When the cluster tokens already issued to them expire at the latest; null when kaas
    /// issues none. Likewise they authenticate until then but grant nothing removed.
    pub cluster_tokens_valid_until: Option<Timestamp>,
    /// The same, as one sentence for people.
    pub message: String,
}

impl RemovedMember {
    pub(super) fn of(
        r: &impl Reader,
        user: UserId,
        now: Timestamp,
        token_lifetime: Option<std::time::Duration>,
    ) -> OpsResult<RemovedMember> {
        let u = records::get_user(r, user)?;
        let email = u
            .as_ref()
            .map_or_else(|| user.to_string(), |u| u.email.clone());
        let left = RemainingAccess::of(&email, u.as_ref(), now, token_lifetime, Lost::Role);
        Ok(RemovedMember {
            user_id: user,
            email,
            kubeconfigs_valid_until: left.kubeconfigs_valid_until,
            cluster_tokens_valid_until: left.cluster_tokens_valid_until,
            message: left.message,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_sentence_names_what_is_still_valid_and_nothing_else() {
        let now = Timestamp::from_second(1_790_000_000).unwrap();
        let ten_minutes = Some(std::time::Duration::from_secs(600));
        let none = RemainingAccess::of("a@example.com", None, now, None, Lost::Role);
        assert_eq!(none.kubeconfigs_valid_until, None);
        assert_eq!(none.cluster_tokens_valid_until, None);
        assert_eq!(
            none.message,
            "a@example.com holds no kubeconfig that is still valid; the removed role leaves \
             the virtual clusters within seconds."
        );
        let disabled = RemainingAccess::of("a@example.com", None, now, None, Lost::Account);
        assert!(disabled.message.contains("their roles leave"));
        let tokens = RemainingAccess::of("a@example.com", None, now, ten_minutes, Lost::Role);
        assert_eq!(
            tokens.cluster_tokens_valid_until,
            Some(now + jiff::SignedDuration::from_secs(600))
        );
        assert!(
            tokens
                .message
                .starts_with("Cluster tokens already issued to a@example.com remain valid until")
        );
        // One sentence.
        assert!(tokens.message.ends_with("within seconds."));
        assert!(!tokens.message.contains(". "), "{}", tokens.message);
    }
}
