//! Secrets kaas hands out (session cookies, API tokens, invitation and setup tokens) and
//! password hashing. Handed-out secrets are 256 random bits; only their SHA-256 digest is
//! stored, which is enough for secrets that cannot be guessed. Passwords, which can be
//! guessed, are hashed with argon2id off the async runtime.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::{OpsError, OpsResult};
use crate::domain::SecretDigest;

/// A new random secret, URL-safe, with an optional recognisable prefix (`kaas_` for API
/// tokens, so secret scanners and people can tell what leaked).
pub fn new_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

pub fn digest(secret: &str) -> SecretDigest {
    Sha256::digest(secret.as_bytes()).into()
}

fn argon2(fast: bool) -> Argon2<'static> {
    if fast {
        // Tests only: the smallest cost argon2 allows.
        let params = Params::new(Params::MIN_M_COST, 1, 1, None).unwrap_or_default();
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    } else {
        Argon2::default()
    }
}

/// Hashes a password on the blocking pool (argon2id, m=19 MiB, t=2, p=1 by default).
pub async fn hash_password(password: String, fast: bool) -> OpsResult<String> {
    tokio::task::spawn_blocking(move || {
        argon2(fast)
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| {
                OpsError::Store(crate::store::StoreError::Internal(format!("hashing: {e}")))
            })
    })
    .await
    .map_err(|e| {
        OpsError::Store(crate::store::StoreError::Internal(format!(
            "hashing task: {e}"
        )))
    })?
}

/// Verifies a password against a stored PHC string on the blocking pool. A malformed
/// stored hash verifies as false (and is logged), never as true.
pub async fn verify_password(password: String, phc: String) -> bool {
    tokio::task::spawn_blocking(move || match PasswordHash::new(&phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(e) => {
            tracing::error!(error = %e, "a stored password hash is malformed");
            false
        }
    })
    .await
    .unwrap_or(false)
}

/// A hash of a random password, verified against when the account does not exist so that
/// a failed login takes as long for unknown and known accounts.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        argon2(false)
            .hash_password(new_secret("").as_bytes())
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}
