//! kaas as the OIDC issuer of every virtual cluster: the signing keys (kept in redb with the
//! private part sealed under a key-encryption key that lives in a file beside the database,
//! never in it, so a copied database or backup does not carry a usable signing key), their
//! rotation on `domain::oidc::KeySchedule`, the published JWKS, and the use case that mints
//! a cluster token for a workspace member.
//!
//! The current signer and the JWKS are kept in memory and rebuilt after every change of the
//! keys, so a token costs one signature and one audited write.

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::authz::workspace_and_standing;
use super::{Actor, Ops, OpsError, OpsResult};
use crate::domain::oidc::{self, Jwk, JwkSet, KeyChanges, KeySchedule, SigningKeyRecord};
use crate::domain::policy::Action;
use crate::domain::*;
use crate::store::{StoreError, records};

/// Length of the key-encryption key (AES-256).
pub const KEK_LEN: usize = 32;

/// What the issuer needs from configuration.
#[derive(Clone)]
pub struct IssuerSettings {
    /// The issuer URL (`iss`): kaas's public URL, no trailing slash.
    pub url: String,
    pub token_lifetime: Duration,
    pub key_rotation: Duration,
    /// Seals the private keys in the store.
    pub kek: [u8; KEK_LEN],
}

impl std::fmt::Debug for IssuerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerSettings")
            .field("url", &self.url)
            .field("token_lifetime", &self.token_lifetime)
            .field("key_rotation", &self.key_rotation)
            .field("kek", &"[redacted]")
            .finish()
    }
}

/// Slack for clocks and caches before a retired key is dropped.
const KEY_GRACE: Duration = Duration::from_secs(5 * 60);

/// The key that signs now.
struct Signer {
    kid: String,
    key: jsonwebtoken::EncodingKey,
}

/// The issuer's state in memory.
pub struct Issuer {
    settings: IssuerSettings,
    sealer: LessSafeKey,
    signer: RwLock<Option<Arc<Signer>>>,
    jwks: RwLock<Arc<String>>,
}

/// A token for one workspace's kube-apiserver.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ClusterToken {
    /// The bearer token (a signed JWT); kubectl sends it to the virtual cluster.
    pub token: String,
    pub expires_at: Timestamp,
    /// When it was issued (`iat`): with `expires_at`, its lifetime, which tells
    /// `kaas credential` how long before expiry to stop using a cached token.
    pub issued_at: Timestamp,
    /// The token's id (`jti`), as the audit log records it.
    pub token_id: String,
    /// The audience: the one workspace whose cluster accepts it.
    pub audience: String,
    pub issuer: String,
    /// The username the cluster sees.
    pub user: String,
    /// The groups the cluster sees.
    pub groups: Vec<String>,
}

fn internal(why: impl std::fmt::Display) -> OpsError {
    OpsError::Store(StoreError::Internal(format!("issuer: {why}")))
}

impl Issuer {
    fn new(settings: IssuerSettings) -> OpsResult<Issuer> {
        let key = UnboundKey::new(&AES_256_GCM, &settings.kek).map_err(internal)?;
        Ok(Issuer {
            settings,
            sealer: LessSafeKey::new(key),
            signer: RwLock::new(None),
            jwks: RwLock::new(Arc::new(r#"{"keys":[]}"#.to_string())),
        })
    }

    pub fn url(&self) -> &str {
        &self.settings.url
    }

    pub fn token_lifetime(&self) -> Duration {
        self.settings.token_lifetime
    }

    fn schedule(&self) -> KeySchedule {
        KeySchedule {
            rotate_every: self.settings.key_rotation,
            token_lifetime: self.settings.token_lifetime,
            grace: KEY_GRACE,
        }
    }

    /// Nonce || ciphertext, bound to the key id (as associated data) so a sealed key cannot
    /// be passed off under another id.
    fn seal(&self, kid: &str, plain: &[u8]) -> OpsResult<String> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).map_err(internal)?;
        let mut buf = plain.to_vec();
        self.sealer
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(kid.as_bytes()),
                &mut buf,
            )
            .map_err(internal)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    /// The PKCS#8 document of a stored key, or None if it was sealed under another
    /// key-encryption key (or damaged).
    fn unseal(&self, rec: &SigningKeyRecord) -> Option<Vec<u8>> {
        self.open(&rec.kid, &rec.sealed_private)
    }

    /// What [`Issuer::seal`] sealed under `label`, or None under another key-encryption
    /// key, another label or damaged.
    fn open(&self, label: &str, sealed: &str) -> Option<Vec<u8>> {
        let raw = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        let nonce = raw.get(..NONCE_LEN)?;
        let mut body = raw.get(NONCE_LEN..)?.to_vec();
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let plain = self
            .sealer
            .open_in_place(nonce, Aad::from(label.as_bytes()), &mut body)
            .ok()?;
        Some(plain.to_vec())
    }

    /// Seals another secret kept in the store (an identity provider's client secret) the
    /// way the signing keys are, bound to `label`. Labels never look like key ids (which
    /// are ULIDs), so neither can pass for the other.
    pub(crate) fn seal_secret(&self, label: &str, plain: &[u8]) -> OpsResult<String> {
        self.seal(label, plain)
    }

    /// The secret [`Issuer::seal_secret`] sealed under `label`.
    pub(crate) fn open_secret(&self, label: &str, sealed: &str) -> Option<Vec<u8>> {
        self.open(label, sealed)
    }

    /// A new P-256 key, sealed.
    fn generate(&self, now: Timestamp) -> OpsResult<SigningKeyRecord> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(internal)?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(internal)?;
        let kid = ulid::Ulid(crate::domain::ids::monotonic())
            .to_string()
            .to_ascii_lowercase();
        Ok(SigningKeyRecord {
            sealed_private: self.seal(&kid, pkcs8.as_ref())?,
            public_point: URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
            kid,
            created_at: now,
            retired_at: None,
        })
    }

    /// Rebuilds the signer and the JWKS from the stored keys.
    fn load(&self, keys: &[SigningKeyRecord]) -> OpsResult<()> {
        let mut published = Vec::new();
        for k in keys {
            let point = URL_SAFE_NO_PAD
                .decode(&k.public_point)
                .map_err(|e| internal(format!("key {}: {e}", k.kid)))?;
            if let Some(j) = Jwk::from_p256_point(&k.kid, &point) {
                published.push(j);
            }
        }
        let current = keys
            .iter()
            .filter(|k| k.retired_at.is_none())
            .max_by_key(|k| k.created_at)
            .and_then(|k| Some((k, self.unseal(k)?)));
        let signer = current.map(|(k, pkcs8)| {
            Arc::new(Signer {
                kid: k.kid.clone(),
                key: jsonwebtoken::EncodingKey::from_ec_der(&pkcs8),
            })
        });
        let jwks = serde_json::to_string(&JwkSet { keys: published }).map_err(internal)?;
        *self.signer.write().unwrap_or_else(|p| p.into_inner()) = signer;
        *self.jwks.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(jwks);
        Ok(())
    }

    /// The JWKS document, as served.
    pub fn jwks(&self) -> Arc<String> {
        self.jwks.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Signs `claims` with the current key; returns the token and the key's id.
    /// (Any claims: tests sign tokens that break one rule at a time.)
    pub fn sign<C: Serialize>(&self, claims: &C) -> OpsResult<(String, String)> {
        let signer = self.signer()?;
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(signer.kid.clone());
        let token = jsonwebtoken::encode(&header, claims, &signer.key).map_err(internal)?;
        Ok((token, signer.kid.clone()))
    }

    fn signer(&self) -> OpsResult<Arc<Signer>> {
        self.signer
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| OpsError::Unavailable("the issuer has no signing key yet".into()))
    }
}

/// Reads the key-encryption key at `path`, making it (0600, in a 0700 directory) on first
/// use. A key of the wrong length is an error: silently replacing it would orphan every
/// stored signing key.
pub fn load_or_create_kek(path: &Path) -> std::io::Result<[u8; KEK_LEN]> {
    match std::fs::read(path) {
        Ok(bytes) => bytes.as_slice().try_into().map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} is not a {KEK_LEN}-byte key", path.display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                crate::store::private::create_dir(dir)?;
            }
            let mut kek = [0u8; KEK_LEN];
            SystemRandom::new()
                .fill(&mut kek)
                .map_err(|_| std::io::Error::other("no randomness"))?;
            let tmp = path.with_extension("partial");
            {
                use std::io::Write;
                let mut o = std::fs::OpenOptions::new();
                o.write(true).create(true).truncate(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
                let mut f = o.open(&tmp)?;
                f.write_all(&kek)?;
                f.sync_all()?;
            }
            std::fs::rename(&tmp, path)?;
            Ok(kek)
        }
        Err(e) => Err(e),
    }
}

impl Ops {
    /// Starts the issuer: loads the stored keys and makes or rotates what the schedule asks.
    pub fn set_issuer(&self, settings: IssuerSettings) -> OpsResult<KeyChanges> {
        let issuer = Arc::new(Issuer::new(settings)?);
        if self.issuer.set(issuer).is_err() {
            return Err(internal("started twice"));
        }
        self.rotate_signing_keys()
    }

    pub fn issuer(&self) -> OpsResult<&Arc<Issuer>> {
        self.issuer
            .get()
            .ok_or_else(|| OpsError::Unavailable("the OIDC issuer is not running".into()))
    }

    /// Makes, retires and drops signing keys as the schedule asks at this moment; cheap when
    /// nothing is due (one read), so it can run every few seconds.
    pub fn rotate_signing_keys(&self) -> OpsResult<KeyChanges> {
        let iss = self.issuer()?;
        let now = self.now();
        let sched = iss.schedule();
        let keys = records::list_signing_keys(&self.store.read()?)?;
        let usable = |ks: &[SigningKeyRecord]| -> Vec<(SigningKeyRecord, bool)> {
            ks.iter()
                .map(|k| (k.clone(), iss.unseal(k).is_some()))
                .collect()
        };
        let plan = sched.plan(&usable(&keys), now);
        if plan == KeyChanges::default() {
            if iss
                .signer
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .is_none()
            {
                iss.load(&keys)?;
            }
            return Ok(plan);
        }
        let tx = self.store.write()?;
        // Decided again inside the write, in case another caller rotated meanwhile.
        let keys = records::list_signing_keys(&tx)?;
        let plan = sched.plan(&usable(&keys), now);
        for k in &keys {
            if plan.retire.contains(&k.kid) {
                let mut k = k.clone();
                k.retired_at = Some(now);
                records::put_signing_key(&tx, &k)?;
            }
            if plan.drop.contains(&k.kid) {
                records::delete_signing_key(&tx, &k.kid)?;
            }
        }
        if plan.new_key {
            let k = iss.generate(now)?;
            tracing::info!(kid = %k.kid, "the OIDC issuer has a new signing key");
            records::put_signing_key(&tx, &k)?;
        }
        let keys = records::list_signing_keys(&tx)?;
        self.commit(tx, &[])?;
        iss.load(&keys)?;
        Ok(plan)
    }

    /// How long the cluster tokens kaas issues live; None when it issues none.
    pub(super) fn cluster_token_lifetime(&self) -> Option<Duration> {
        self.issuer().ok().map(|i| i.token_lifetime())
    }

    /// Mints a token for the caller's own access to workspace `id`'s cluster: only for a
    /// person with a current role there (organization, workspace or project) whose account
    /// is enabled; audited with the token id and expiry.
    pub fn issue_cluster_token(&self, actor: &Actor, id: WorkspaceId) -> OpsResult<ClusterToken> {
        let iss = self.issuer()?;
        let tx = self.store.write()?;
        let (ws, standing) = workspace_and_standing(&tx, actor, id, Action::KubeconfigIssue)?;
        // NB: checked again here, not only when the credential was accepted: a session or
        // API token made before the account was disabled must not mint a fresh token.
        match records::get_user(&tx, actor.user_id)? {
            Some(u) if !u.disabled => {}
            _ => {
                return Err(OpsError::Unauthenticated("the account is disabled".into()));
            }
        }
        if ws.state == WorkspaceState::Deleting {
            return Err(OpsError::Conflict("the workspace is being deleted".into()));
        }
        let now = self.now();
        let groups = crate::domain::groups::groups_for(ws.id, &standing);
        let jti = ulid::Ulid(crate::domain::ids::monotonic())
            .to_string()
            .to_ascii_lowercase();
        let claims = oidc::claims(
            iss.url(),
            oidc::TokenSubject {
                ws: ws.id,
                user_id: actor.user_id.to_string(),
                email: &actor.email,
                groups: groups.clone(),
            },
            jti.clone(),
            now,
            iss.token_lifetime(),
        );
        let (token, kid) = iss.sign(&claims)?;
        let expires_at = Timestamp::from_second(claims.exp).map_err(internal)?;
        let issued_at = Timestamp::from_second(claims.iat).map_err(internal)?;
        let mut ev = self.event(actor, "cluster_token.issue", ws.id, Some(ws.org_id));
        ev.detail = format!(
            "token_id={jti} expires={expires_at} kid={} groups={}",
            kid,
            groups.join(",")
        );
        records::append_audit(&tx, &ev)?;
        self.commit(tx, &[])?;
        Ok(ClusterToken {
            token,
            expires_at,
            issued_at,
            token_id: jti,
            audience: claims.aud,
            issuer: claims.iss,
            user: claims.email,
            groups,
        })
    }
}

/// Keeps the keys on schedule: checks every `every` (cheap when nothing is due).
pub async fn run_rotation(ops: Arc<Ops>, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let o = ops.clone();
        match tokio::task::spawn_blocking(move || o.rotate_signing_keys()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "signing key rotation failed; retrying"),
            Err(e) => tracing::error!(error = %e, "signing key rotation task failed"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::ops::Settings;
    use crate::store::Store;
    use jiff::SignedDuration;

    fn settings(kek: u8) -> IssuerSettings {
        IssuerSettings {
            url: "https://kaas.test:8443".into(),
            token_lifetime: Duration::from_secs(600),
            key_rotation: Duration::from_secs(3600),
            kek: [kek; KEK_LEN],
        }
    }

    fn ops(store: Arc<Store>, clock: &ManualClock, kek: u8) -> Ops {
        let o = Ops::new(store, Arc::new(clock.clone()), Settings::default());
        o.set_issuer(settings(kek)).unwrap();
        o
    }

    fn claims(o: &Ops, ws: WorkspaceId) -> oidc::ClusterClaims {
        oidc::claims(
            "https://kaas.test:8443",
            oidc::TokenSubject {
                ws,
                user_id: "user_1".into(),
                email: "ann@example.com",
                groups: vec!["kaas:ws:x:workspace-admin".into()],
            },
            "t1".into(),
            o.now(),
            Duration::from_secs(600),
        )
    }

    fn jwks(o: &Ops) -> JwkSet {
        serde_json::from_str(&o.issuer().unwrap().jwks()).unwrap()
    }

    /// Verifies `token` the way an authenticator does: key by `kid` from the JWKS, ES256,
    /// issuer, audience, expiry.
    fn verify(set: &JwkSet, token: &str, aud: &str) -> Result<oidc::ClusterClaims, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
        let jwk = set
            .keys
            .iter()
            .find(|k| Some(&k.kid) == header.kid.as_ref())
            .ok_or("no such key")?;
        let key = jsonwebtoken::DecodingKey::from_ec_components(&jwk.x, &jwk.y)
            .map_err(|e| e.to_string())?;
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        v.set_audience(&[aud]);
        v.set_issuer(&["https://kaas.test:8443"]);
        // NB: the test clock is not the wall clock.
        v.validate_exp = false;
        jsonwebtoken::decode::<oidc::ClusterClaims>(token, &key, &v)
            .map(|d| d.claims)
            .map_err(|e| e.to_string())
    }

    fn start() -> ManualClock {
        ManualClock::new(Timestamp::now())
    }

    #[test]
    fn a_token_verifies_against_the_jwks_for_its_own_workspace_only() {
        let clock = start();
        let o = ops(Arc::new(Store::in_memory().unwrap()), &clock, 1);
        let ws = WorkspaceId::generate();
        let c = claims(&o, ws);
        let (token, kid) = o.issuer().unwrap().sign(&c).unwrap();
        let set = jwks(&o);
        assert_eq!(set.keys.len(), 1);
        assert_eq!(set.keys[0].kid, kid);
        assert_eq!(verify(&set, &token, &oidc::audience(ws)).unwrap(), c);
        assert!(verify(&set, &token, &oidc::audience(WorkspaceId::generate())).is_err());
        // A changed payload no longer matches the signature.
        let parts: Vec<&str> = token.split('.').collect();
        let mut forged = c.clone();
        forged.groups = vec!["system:masters".into()];
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        let tampered = format!("{}.{body}.{}", parts[0], parts[2]);
        assert!(verify(&set, &tampered, &oidc::audience(ws)).is_err());
    }

    #[test]
    fn rotation_keeps_the_old_key_published_until_its_tokens_expired() {
        let clock = start();
        let o = ops(Arc::new(Store::in_memory().unwrap()), &clock, 1);
        let ws = WorkspaceId::generate();
        let (old_token, old_kid) = o.issuer().unwrap().sign(&claims(&o, ws)).unwrap();
        assert_eq!(o.rotate_signing_keys().unwrap(), KeyChanges::default());
        clock.advance(SignedDuration::from_secs(3600));
        let p = o.rotate_signing_keys().unwrap();
        assert!(p.new_key && p.retire == vec![old_kid.clone()]);
        let (new_token, new_kid) = o.issuer().unwrap().sign(&claims(&o, ws)).unwrap();
        assert_ne!(new_kid, old_kid);
        let set = jwks(&o);
        assert_eq!(set.keys.len(), 2);
        verify(&set, &old_token, &oidc::audience(ws)).unwrap();
        verify(&set, &new_token, &oidc::audience(ws)).unwrap();
        // Token lifetime (600 s) and grace (300 s) after retirement, the old key goes.
        clock.advance(SignedDuration::from_secs(900));
        assert!(o.rotate_signing_keys().unwrap().drop.is_empty());
        clock.advance(SignedDuration::from_secs(1));
        assert_eq!(o.rotate_signing_keys().unwrap().drop, vec![old_kid]);
        let set = jwks(&o);
        assert_eq!(set.keys.len(), 1);
        assert!(verify(&set, &old_token, &oidc::audience(ws)).is_err());
        verify(&set, &new_token, &oidc::audience(ws)).unwrap();
    }

    #[test]
    fn private_keys_are_sealed_and_useless_under_another_kek() {
        let clock = start();
        let store = Arc::new(Store::in_memory().unwrap());
        let first = ops(store.clone(), &clock, 1);
        let stored = records::list_signing_keys(&store.read().unwrap()).unwrap();
        assert_eq!(stored.len(), 1);
        // Neither the record nor its encoding holds the PKCS#8 document in the clear.
        let pkcs8 = first.issuer().unwrap().unseal(&stored[0]).unwrap();
        let encoded = crate::store::codec::encode(&stored[0]).unwrap();
        assert!(!encoded.windows(pkcs8.len()).any(|w| w == pkcs8.as_slice()));
        assert!(
            !encoded
                .windows(16)
                .any(|w| pkcs8.windows(16).any(|p| p == w))
        );
        // The same database opened with another key-encryption key (a restored backup on
        // another box): the old key is retired, still published, and a new one signs.
        let second = ops(store.clone(), &clock, 2);
        let set = jwks(&second);
        assert_eq!(set.keys.len(), 2);
        let (_, kid) = second
            .issuer()
            .unwrap()
            .sign(&claims(&second, WorkspaceId(1)))
            .unwrap();
        assert_ne!(kid, stored[0].kid);
    }

    #[test]
    fn the_kek_file_is_made_once_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("issuer/kek");
        let a = load_or_create_kek(&path).unwrap();
        assert_eq!(load_or_create_kek(&path).unwrap(), a);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        std::fs::write(&path, b"short").unwrap();
        assert!(load_or_create_kek(&path).is_err());
    }
}
