//! Typed identifiers. Every record id is a ULID (time-ordered, so listings and the audit
//! log sort by creation), stored as `u128` in redb keys and shown to people with a type
//! prefix (`org_…`, `ws_…`) so an id pasted in the wrong place is refused by name.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use ulid::Ulid;

/// Why an id string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a valid {1} id (expected {1}_ followed by 26 base32 characters)")]
pub struct BadId(pub String, pub &'static str);

/// A new ULID, strictly greater than every one this process made before: ULIDs from the
/// same millisecond are otherwise random in order, and "oldest session first" or the audit
/// log's order must not depend on luck.
pub fn monotonic() -> u128 {
    static LAST: std::sync::Mutex<u128> = std::sync::Mutex::new(0);
    let fresh = Ulid::generate().0;
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    let next = if fresh > *last { fresh } else { *last + 1 };
    *last = next;
    next
}

const ULID_LEN: usize = 26;

/// The lower-case Crockford base32 form of a ULID, written into `buf`.
fn lower_ulid(id: u128, buf: &mut [u8; ULID_LEN]) -> &str {
    let s = Ulid(id).array_to_str(buf);
    s.make_ascii_lowercase();
    s
}

/// Reads an id from a borrowed string where the format allows (JSON without escapes), so
/// decoding a record does not allocate per id.
struct IdVisitor<T>(std::marker::PhantomData<T>);

impl<T: FromStr<Err = BadId>> serde::de::Visitor<'_> for IdVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an id string")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
        v.parse().map_err(E::custom)
    }
}

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u128);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A fresh id; ULIDs embed the current time so ids sort by creation — strictly,
            /// also within one millisecond (see [`monotonic`]).
            pub fn generate() -> Self {
                Self(monotonic())
            }

            /// The lower-case 26-character ULID without prefix, usable in Kubernetes names.
            pub fn short(&self) -> String {
                lower_ulid(self.0, &mut [0; ULID_LEN]).to_string()
            }

            /// Milliseconds since the epoch at which the id was generated.
            pub fn timestamp_ms(&self) -> u64 {
                Ulid(self.0).timestamp_ms()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // Encoded on the stack: ids are shown in every API answer, and two
                // allocations per id were a visible part of a list request's cost.
                f.write_str($prefix)?;
                f.write_str("_")?;
                f.write_str(lower_ulid(self.0, &mut [0; ULID_LEN]))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = BadId;
            fn from_str(s: &str) -> Result<Self, BadId> {
                let bad = || BadId(s.to_string(), $prefix);
                let rest = s
                    .strip_prefix($prefix)
                    .and_then(|r| r.strip_prefix('_'))
                    .ok_or_else(bad)?;
                if rest.len() != 26 {
                    return Err(bad());
                }
                // Crockford base32 decoding takes either case.
                Ulid::from_string(rest)
                    .map(|u| Self(u.0))
                    .map_err(|_| bad())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_str(IdVisitor(std::marker::PhantomData::<$name>))
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .description(Some(concat!("Identifier, `", $prefix, "_` followed by a lower-case ULID")))
                    .examples([serde_json::json!(concat!($prefix, "_01jd5zq3m4v8e2k9x7r6t5y4w3"))])
                    .into()
            }
        }
        impl utoipa::ToSchema for $name {}
    };
}

typed_id!(
    /// A person who can sign in.
    UserId, "user");
typed_id!(
    /// A tenant organization.
    OrgId, "org");
typed_id!(
    /// A workspace: one K3K virtual cluster.
    WorkspaceId, "ws");
typed_id!(
    /// A project: one namespace inside a workspace's virtual cluster.
    ProjectId, "prj");
typed_id!(
    /// A pending invitation to an organization.
    InvitationId, "inv");
typed_id!(
    /// An API token (the id is public; the secret is shown once).
    TokenId, "tok");
typed_id!(
    /// A sign-in session (the id is public; the cookie secret is not stored).
    SessionId, "ses");
typed_id!(
    /// One audit log entry.
    AuditId, "evt");
typed_id!(
    /// A finalized invoice.
    InvoiceId, "invc");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_with_their_prefix_only() {
        let id = OrgId::generate();
        let s = id.to_string();
        assert!(s.starts_with("org_"));
        assert_eq!(s.len(), 30);
        assert_eq!(s.parse::<OrgId>().unwrap(), id);
        let err = s.replace("org_", "ws_").parse::<OrgId>().unwrap_err();
        assert!(err.to_string().contains("not a valid org id"));
        assert!("org_short".parse::<OrgId>().is_err());
        assert!("org_!!!!!!!!!!!!!!!!!!!!!!!!!!".parse::<OrgId>().is_err());
    }

    #[test]
    fn short_form_is_a_kubernetes_name_fragment() {
        let id = WorkspaceId::generate();
        let short = id.short();
        assert!(
            short
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
    }
}
