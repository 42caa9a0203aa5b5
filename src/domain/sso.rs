//! Rules of single sign-on that need no I/O: who may get an account on first sign-in
//! through an identity provider, and which organization roles the provider's groups give.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::roles::OrgRole;

/// Who gets a new account on their first sign-in through a provider. Someone whose verified
/// e-mail address already has an account is always linked to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupMapping {
    pub group: String,
    /// The organization's name.
    pub org: String,
    pub role: OrgRole,
}

impl AccountPolicy {
    pub fn as_str(&self) -> &'static str {
        match self {
            AccountPolicy::Open => "open",
            AccountPolicy::Invited => "invited",
            AccountPolicy::Domains => "domains",
        }
    }
}

/// An identity provider a platform administrator added in the console or the API (those of
/// the config file are not stored). The client secret is kept sealed under the issuer's
/// key-encryption key (see `ops::sso_admin`), never in the clear.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredProvider {
    pub id: String,
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    /// Nonce || AES-256-GCM ciphertext of the client secret, base64url; bound to the id.
    pub sealed_secret: String,
    pub scopes: Vec<String>,
    /// PEM certificates trusted (instead of the system's) for the provider's HTTPS.
    #[serde(default)]
    pub ca_pem: Option<String>,
    pub accounts: AccountPolicy,
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    #[serde(default)]
    pub sso_only_linked: bool,
    #[serde(default)]
    pub groups_claim: Option<String>,
    #[serde(default)]
    pub groups: Vec<GroupMapping>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// What a provider's settings must be, before its issuer is asked: the field at fault and
/// why. (The same rules as `[[sso.providers]]` in the config file.)
#[derive(Clone, Copy)]
pub struct ProviderFields<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub scopes: &'a [String],
    pub accounts: AccountPolicy,
    pub allowed_domains: &'a [String],
    pub groups_claim: Option<&'a str>,
    pub groups: &'a [GroupMapping],
}

/// Checks a provider's settings; the first problem as (field, message).
pub fn check_provider(p: &ProviderFields<'_>) -> Result<(), (&'static str, String)> {
    let id_ok = !p.id.is_empty()
        && p.id.len() <= 32
        && p.id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !id_ok {
        return Err((
            "id",
            "must be 1-32 lower-case letters, digits or dashes".into(),
        ));
    }
    if p.name.trim().is_empty() || p.name.chars().count() > 100 {
        return Err(("name", "must be 1-100 characters".into()));
    }
    let issuer_ok = url::Url::parse(p.issuer).is_ok_and(|u| {
        let loopback = match u.host() {
            Some(url::Host::Ipv4(a)) => a.is_loopback(),
            Some(url::Host::Ipv6(a)) => a.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        };
        u.scheme() == "https" || (u.scheme() == "http" && loopback)
    });
    if !issuer_ok || p.issuer.len() > 2000 {
        return Err((
            "issuer",
            "must be an https:// URL (http:// only on loopback)".into(),
        ));
    }
    if p.client_id.trim().is_empty() || p.client_id.len() > 500 {
        return Err(("client_id", "must be 1-500 characters".into()));
    }
    if !p.scopes.iter().any(|s| s == "openid") {
        return Err(("scopes", "must include \"openid\"".into()));
    }
    if p.scopes
        .iter()
        .any(|s| s.is_empty() || s.len() > 100 || s.contains(char::is_whitespace))
    {
        return Err((
            "scopes",
            "each scope is one word of at most 100 characters".into(),
        ));
    }
    if p.accounts == AccountPolicy::Domains && p.allowed_domains.is_empty() {
        return Err((
            "allowed_domains",
            "accounts = \"domains\" needs at least one allowed domain".into(),
        ));
    }
    if p.allowed_domains.iter().any(|d| {
        d.is_empty() || d.len() > 253 || d.contains(|c: char| c.is_whitespace() || c == '@')
    }) {
        return Err((
            "allowed_domains",
            "each entry is a domain name such as example.com".into(),
        ));
    }
    if p.groups_claim
        .is_some_and(|c| c.trim().is_empty() || c.len() > 100)
    {
        return Err(("groups_claim", "must be 1-100 characters".into()));
    }
    if !p.groups.is_empty() && p.groups_claim.is_none() {
        return Err((
            "groups_claim",
            "a group mapping needs the claim that lists groups".into(),
        ));
    }
    if p.groups
        .iter()
        .any(|g| g.group.trim().is_empty() || g.org.trim().is_empty())
    {
        return Err((
            "groups",
            "each mapping names a group and an organization".into(),
        ));
    }
    Ok(())
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
    fn provider_fields_are_checked_one_field_at_a_time() {
        let scopes = vec!["openid".to_string()];
        let ok = ProviderFields {
            id: "corp",
            name: "Corp",
            issuer: "https://idp.example.com",
            client_id: "kaas",
            scopes: &scopes,
            accounts: AccountPolicy::Invited,
            allowed_domains: &[],
            groups_claim: None,
            groups: &[],
        };
        assert!(check_provider(&ok).is_ok());
        let field = |p: ProviderFields<'_>| check_provider(&p).err().map(|e| e.0);
        assert_eq!(field(ProviderFields { id: "Corp!", ..ok }), Some("id"));
        assert_eq!(
            field(ProviderFields {
                issuer: "http://idp.example.com",
                ..ok
            }),
            Some("issuer")
        );
        assert_eq!(
            field(ProviderFields {
                issuer: "http://127.0.0.1:9",
                ..ok
            }),
            None
        );
        assert_eq!(field(ProviderFields { scopes: &[], ..ok }), Some("scopes"));
        assert_eq!(
            field(ProviderFields {
                accounts: AccountPolicy::Domains,
                ..ok
            }),
            Some("allowed_domains")
        );
        let mapping = [map("devs", "acme", OrgRole::Member)];
        assert_eq!(
            field(ProviderFields {
                groups: &mapping,
                ..ok
            }),
            Some("groups_claim")
        );
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
