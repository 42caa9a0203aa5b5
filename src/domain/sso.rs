//! Rules of single sign-on that need no I/O: who may get an account on first sign-in
//! through an identity provider, and which organization roles the provider's groups give.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::roles::OrgRole;

/// Who gets a new account on their first sign-in through a provider. Someone whose verified
/// e-mail address already has an account is always linked to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountPolicy {
    /// Anyone the provider vouches for.
    Open,
    /// Only an address with a pending invitation to an organization.
    #[default]
    Invited,
    /// Only addresses in one of the provider's allowed domains.
    Domains,
}

/// One line of a provider's group mapping: members of `group` get `role` in `org`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupMapping {
    pub group: String,
    /// The organization's name.
    pub org: String,
    pub role: OrgRole,
}

/// Why a new account is refused, in words for the person signing in.
pub fn refuse_new_account(
    policy: AccountPolicy,
    email: &str,
    allowed_domains: &[String],
    invited: bool,
) -> Option<String> {
    match policy {
        AccountPolicy::Open => None,
        AccountPolicy::Invited if invited => None,
        AccountPolicy::Invited => Some(format!(
            "{email} has no kaas account and no pending invitation; ask an organization \
             administrator to invite you"
        )),
        AccountPolicy::Domains => {
            let domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
            if allowed_domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(domain))
            {
                None
            } else {
                Some(format!(
                    "accounts for {email} are not created through this provider (domain not allowed)"
                ))
            }
        }
    }
}

/// The role each mapped organization (by name) gets from `groups`: the highest role any of
/// the person's groups maps to. Organizations absent from the result get no role.
pub fn mapped_roles(groups: &[String], mapping: &[GroupMapping]) -> BTreeMap<String, OrgRole> {
    let mut out: BTreeMap<String, OrgRole> = BTreeMap::new();
    for m in mapping.iter().filter(|m| groups.contains(&m.group)) {
        let role = out.entry(m.org.clone()).or_insert(m.role);
        *role = (*role).max(m.role);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(group: &str, org: &str, role: OrgRole) -> GroupMapping {
        GroupMapping {
            group: group.into(),
            org: org.into(),
            role,
        }
    }

    #[test]
    fn the_highest_mapped_role_wins_and_unmatched_groups_give_nothing() {
        let mapping = [
            map("devs", "acme", OrgRole::Member),
            map("leads", "acme", OrgRole::Admin),
            map("ops", "infra", OrgRole::Owner),
        ];
        let got = mapped_roles(&["leads".into(), "devs".into()], &mapping);
        assert_eq!(got.len(), 1);
        assert_eq!(got.get("acme"), Some(&OrgRole::Admin));
        assert!(mapped_roles(&["other".into()], &mapping).is_empty());
    }

    #[test]
    fn account_policies() {
        let domains = vec!["example.com".to_string()];
        assert!(refuse_new_account(AccountPolicy::Open, "a@x.org", &[], false).is_none());
        assert!(refuse_new_account(AccountPolicy::Invited, "a@x.org", &[], false).is_some());
        assert!(refuse_new_account(AccountPolicy::Invited, "a@x.org", &[], true).is_none());
        assert!(
            refuse_new_account(AccountPolicy::Domains, "a@Example.com", &domains, false).is_none()
        );
        assert!(
            refuse_new_account(
                AccountPolicy::Domains,
                "a@evil.example.com",
                &domains,
                false
            )
            .is_some()
        );
    }
}
