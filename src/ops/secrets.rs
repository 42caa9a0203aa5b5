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
use std::sync::LazyLock;
use std::time::Duration;
use tokio::sync::{Semaphore, SemaphorePermit};

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

/// At most this many argon2 computations run at once, one per core: each holds about
/// 19 MiB, and without a bound a burst of bogus sign-ins takes the box's memory.
static HASH_SLOTS: LazyLock<Semaphore> = LazyLock::new(|| {
    Semaphore::new(std::thread::available_parallelism().map_or(2, std::num::NonZero::get))
});
/// How long a request waits for a hashing slot before it is refused (429, retry soon).
const HASH_WAIT: Duration = Duration::from_secs(5);

/// A turn at hashing, or `Throttled` when none comes free within `wait`.
async fn hashing_slot(
    slots: &'static Semaphore,
    wait: Duration,
) -> OpsResult<SemaphorePermit<'static>> {
    match tokio::time::timeout(wait, slots.acquire()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(OpsError::Throttled(Duration::from_secs(1))),
    }
}

/// Hashes a password on the blocking pool (argon2id, m=19 MiB, t=2, p=1 by default).
pub async fn hash_password(password: String, fast: bool) -> OpsResult<String> {
    let _turn = hashing_slot(&HASH_SLOTS, HASH_WAIT).await?;
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
/// stored hash verifies as false (and is logged), never as true. Like hashing, it waits for
/// a free slot and is `Throttled` when none comes.
pub async fn verify_password(password: String, phc: String) -> OpsResult<bool> {
    let _turn = hashing_slot(&HASH_SLOTS, HASH_WAIT).await?;
    Ok(
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
        .unwrap_or(false),
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashing_waits_for_a_free_slot_and_is_refused_when_none_comes() {
        static ONE: Semaphore = Semaphore::const_new(1);
        let held = hashing_slot(&ONE, Duration::from_millis(10)).await.unwrap();
        let refused = hashing_slot(&ONE, Duration::from_millis(50)).await;
        assert!(
            matches!(refused, Err(OpsError::Throttled(_))),
            "{:?}",
            refused.err()
        );
        drop(held);
        assert!(hashing_slot(&ONE, Duration::from_millis(50)).await.is_ok());
    }
}
