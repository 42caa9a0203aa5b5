//! kaas as the OpenID Connect issuer its virtual clusters trust: the claims of a cluster
//! token, the discovery document, the public keys (JWKS) and when signing keys are made,
//! retired and dropped. Pure: the signing itself and the keys' storage are `ops::issuer`'s.
//!
//! A cluster token names one workspace as its audience, so the kube-apiserver of another
//! workspace refuses it. Its username claim is the e-mail (the CN of today's client
//! certificates, so the RoleBindings kaas writes keep working) and its groups claim the
//! groups `domain::groups` gives the person in that workspace.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::WorkspaceId;

/// The one signing algorithm: ECDSA P-256 with SHA-256, which every Kubernetes JWT
/// authenticator accepts (EdDSA is not among them).
pub const ALGORITHM: &str = "ES256";

/// Path of the JWKS under the issuer URL (the discovery document points to it).
pub const JWKS_PATH: &str = "/oidc/jwks";
/// Path of the discovery document under the issuer URL (fixed by OpenID Connect Discovery).
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

/// The claim kube-apiservers take the username from, and the one they take groups from.
pub const USERNAME_CLAIM: &str = "email";
pub const GROUPS_CLAIM: &str = "groups";

/// The audience of workspace `ws`'s tokens: only its own kube-apiserver accepts them.
pub fn audience(ws: WorkspaceId) -> String {
    format!("kaas:{ws}")
}

/// What a cluster token says, as signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterClaims {
    pub iss: String,
    /// The user id: stable, unlike the e-mail, for anyone correlating tokens.
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub nbf: i64,
    pub iat: i64,
    /// The token id, as audited.
    pub jti: String,
    pub email: String,
    /// NB: a Kubernetes authenticator whose username claim is `email` refuses a token whose
    /// `email_verified` is false; kaas's e-mails are the accounts' own, so it says true.
    pub email_verified: bool,
    /// Always present, possibly empty (a project-only member has no workspace group): the
    /// authenticators kaas configures refuse a token without it.
    pub groups: Vec<String>,
    /// The workspace, for people reading a token.
    pub workspace: String,
}

/// Who a token is for and in which workspace.
#[derive(Debug, Clone)]
pub struct TokenSubject<'a> {
    pub ws: WorkspaceId,
    pub user_id: String,
    pub email: &'a str,
    pub groups: Vec<String>,
}

/// The claims of a token minted at `now`, valid for `lifetime` from `now`.
pub fn claims(
    issuer: &str,
    who: TokenSubject<'_>,
    jti: String,
    now: Timestamp,
    lifetime: std::time::Duration,
) -> ClusterClaims {
    let iat = now.as_second();
    let secs = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX);
    ClusterClaims {
        iss: issuer.to_string(),
        sub: who.user_id,
        aud: audience(who.ws),
        exp: iat.saturating_add(secs),
        // NB: no allowance for clock skew here; the authenticators allow their own.
        nbf: iat,
        iat,
        jti,
        email: who.email.to_string(),
        email_verified: true,
        groups: who.groups,
        workspace: who.ws.to_string(),
    }
}

/// The OpenID Connect discovery document of `issuer` (no trailing slash).
pub fn discovery(issuer: &str) -> serde_json::Value {
    serde_json::json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}{JWKS_PATH}"),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [ALGORITHM],
        "claims_supported": ["iss", "sub", "aud", "exp", "nbf", "iat", "jti", "email",
            "email_verified", "groups"],
    })
}

/// One public key as JWKS lists it (RFC 7517/7518, EC P-256).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    pub crv: String,
    /// Affine coordinates, base64url without padding.
    pub x: String,
    pub y: String,
    pub kid: String,
    #[serde(rename = "use")]
    pub use_: String,
    pub alg: String,
}

impl Jwk {
    /// A P-256 key from its uncompressed SEC1 point (`04 || x || y`, 65 bytes).
    pub fn from_p256_point(kid: &str, point: &[u8]) -> Option<Jwk> {
        use base64::Engine;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let (tag, xy) = point.split_first()?;
        if *tag != 4 || xy.len() != 64 {
            return None;
        }
        let (x, y) = xy.split_at(32);
        Some(Jwk {
            kty: "EC".into(),
            crv: "P-256".into(),
            x: URL_SAFE_NO_PAD.encode(x),
            y: URL_SAFE_NO_PAD.encode(y),
            kid: kid.to_string(),
            use_: "sig".into(),
            alg: ALGORITHM.into(),
        })
    }
}

/// The JWKS document: `{"keys": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

/// A signing key as the store keeps it: the public point in the clear, the private key
/// (PKCS#8) sealed with the key-encryption key that lives outside the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub created_at: Timestamp,
    /// When it stopped signing (a newer key took over); None while it is the current one.
    pub retired_at: Option<Timestamp>,
    /// Uncompressed SEC1 point, base64url.
    pub public_point: String,
    /// Nonce followed by the AES-256-GCM ciphertext of the PKCS#8 document, base64url.
    pub sealed_private: String,
}

/// When keys change: a key signs for `rotate_every`, then is retired; a retired key stays
/// published until every token it signed has expired (`token_lifetime` after it retired,
/// plus `grace` for clocks and caches), then is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySchedule {
    pub rotate_every: std::time::Duration,
    pub token_lifetime: std::time::Duration,
    pub grace: std::time::Duration,
}

/// What the schedule asks for now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyChanges {
    /// Make a new current key (and retire the current one, if any).
    pub new_key: bool,
    /// Current keys to retire: the old current one when a new key is made; any extra
    /// unretired key (two current keys can only come from an interrupted rotation).
    pub retire: Vec<String>,
    /// Retired keys no token can still need.
    pub drop: Vec<String>,
}

fn span(d: std::time::Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

impl KeySchedule {
    /// Decides what to change among `keys` at `now`. A key the server cannot open
    /// (`usable` false: sealed under another key-encryption key, e.g. a restored backup) is
    /// retired at once; it stays published while tokens it signed may still be in use.
    pub fn plan(&self, keys: &[(SigningKeyRecord, bool)], now: Timestamp) -> KeyChanges {
        let mut out = KeyChanges::default();
        let keep_after_retired = span(self.token_lifetime).saturating_add(span(self.grace));
        let mut current: Vec<&SigningKeyRecord> = Vec::new();
        for (k, usable) in keys {
            match k.retired_at {
                Some(at) => {
                    if now.as_duration() > at.as_duration().saturating_add(keep_after_retired) {
                        out.drop.push(k.kid.clone());
                    }
                }
                None if !usable => out.retire.push(k.kid.clone()),
                None => current.push(k),
            }
        }
        // The newest usable one signs; any other unretired key is retired.
        current.sort_by_key(|k| k.created_at);
        let newest = current.pop();
        out.retire.extend(current.iter().map(|k| k.kid.clone()));
        match newest {
            None => out.new_key = true,
            Some(k) => {
                let due = k
                    .created_at
                    .as_duration()
                    .saturating_add(span(self.rotate_every));
                if now.as_duration() >= due {
                    out.new_key = true;
                    out.retire.push(k.kid.clone());
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn key(kid: &str, created: i64, retired: Option<i64>) -> SigningKeyRecord {
        SigningKeyRecord {
            kid: kid.into(),
            created_at: ts(created),
            retired_at: retired.map(ts),
            public_point: String::new(),
            sealed_private: String::new(),
        }
    }

    const SCHEDULE: KeySchedule = KeySchedule {
        rotate_every: Duration::from_secs(1000),
        token_lifetime: Duration::from_secs(600),
        grace: Duration::from_secs(60),
    };

    #[test]
    fn claims_name_the_workspace_audience_the_email_and_the_groups() {
        let ws = WorkspaceId(7);
        let c = claims(
            "https://kaas.example:8443",
            TokenSubject {
                ws,
                user_id: "user_x".into(),
                email: "ann@example.com",
                groups: vec!["kaas:ws:g".into()],
            },
            "jti1".into(),
            ts(1_000_000),
            Duration::from_secs(600),
        );
        assert_eq!(c.iss, "https://kaas.example:8443");
        assert_eq!(c.aud, audience(ws));
        assert_ne!(c.aud, audience(WorkspaceId(8)));
        assert_eq!((c.iat, c.nbf, c.exp), (1_000_000, 1_000_000, 1_000_600));
        assert_eq!(c.email, "ann@example.com");
        assert!(c.email_verified);
        assert_eq!(c.groups, vec!["kaas:ws:g".to_string()]);
        // An empty group list is still a claim (the authenticators require its presence).
        let v = serde_json::to_value(claims(
            "i",
            TokenSubject {
                ws,
                user_id: "u".into(),
                email: "e",
                groups: vec![],
            },
            "j".into(),
            ts(0),
            Duration::from_secs(1),
        ))
        .unwrap();
        assert_eq!(v["groups"], serde_json::json!([]));
    }

    #[test]
    fn discovery_points_to_the_jwks_under_the_issuer() {
        let d = discovery("https://k.example");
        assert_eq!(d["issuer"], "https://k.example");
        assert_eq!(d["jwks_uri"], "https://k.example/oidc/jwks");
        assert_eq!(d["id_token_signing_alg_values_supported"][0], "ES256");
    }

    #[test]
    fn a_jwk_is_made_only_of_an_uncompressed_p256_point() {
        let mut point = vec![4u8];
        point.extend([1u8; 32]);
        point.extend([2u8; 32]);
        let j = Jwk::from_p256_point("k1", &point).unwrap();
        assert_eq!((j.kty.as_str(), j.crv.as_str()), ("EC", "P-256"));
        assert_eq!(j.x, "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE");
        assert_eq!(j.alg, "ES256");
        let v = serde_json::to_value(&j).unwrap();
        assert_eq!(v["use"], "sig");
        assert!(Jwk::from_p256_point("k", &point[1..]).is_none());
        point[0] = 2;
        assert!(Jwk::from_p256_point("k", &point).is_none());
    }

    #[test]
    fn the_schedule_makes_the_first_key_and_rotates_when_due() {
        assert!(SCHEDULE.plan(&[], ts(0)).new_key);
        let k = key("a", 100, None);
        assert_eq!(
            SCHEDULE.plan(&[(k.clone(), true)], ts(1099)),
            KeyChanges::default()
        );
        let due = SCHEDULE.plan(&[(k, true)], ts(1100));
        assert!(due.new_key);
        assert_eq!(due.retire, vec!["a".to_string()]);
        assert!(due.drop.is_empty());
    }

    #[test]
    fn a_retired_key_stays_published_until_its_tokens_expired() {
        let keys = [
            (key("old", 0, Some(1000)), true),
            (key("new", 1000, None), true),
        ];
        // Retired at 1000; tokens last 600 s; 60 s of grace: kept through 1660.
        assert!(SCHEDULE.plan(&keys, ts(1660)).drop.is_empty());
        assert_eq!(SCHEDULE.plan(&keys, ts(1661)).drop, vec!["old".to_string()]);
        assert!(!SCHEDULE.plan(&keys, ts(1661)).new_key);
    }

    #[test]
    fn an_unusable_or_extra_current_key_is_retired() {
        let keys = [
            (key("sealed-elsewhere", 500, None), false),
            (key("older", 10, None), true),
            (key("newest", 20, None), true),
        ];
        let p = SCHEDULE.plan(&keys, ts(30));
        assert!(!p.new_key);
        assert_eq!(
            p.retire,
            vec!["sealed-elsewhere".to_string(), "older".to_string()]
        );
        // Nothing usable: a new key is made.
        let p = SCHEDULE.plan(&keys[..1], ts(30));
        assert!(p.new_key);
    }
}
