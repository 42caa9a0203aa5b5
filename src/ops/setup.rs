//! First run: while no user exists, `serve` prints a one-time link whose token lets one
//! person create the first platform administrator. The token is stored only as a digest
//! with an expiry, replaced at every start, and deleted once used.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::secrets::{digest, hash_password, new_secret};
use super::{Actor, AuthVia, Ops, OpsError, OpsResult, Origin, invalid, plus};
use crate::domain::names::{check_display_name, normalize_email};
use crate::domain::password::check_password;
use crate::domain::*;
use crate::store::records;

const SETUP_KEY: &str = "setup_token";

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetupInput {
    /// The token from the setup link printed by `kaas serve`.
    pub token: String,
    #[schema(pattern = r"^\s*[^@\s]+@[^@\s]+\s*$")]
    pub email: String,
    #[schema(min_length = 1, pattern = r"\S")]
    pub name: String,
    pub password: String,
}

#[derive(Serialize, Deserialize)]
struct StoredSetup {
    digest: SecretDigest,
    expires_at: Timestamp,
}

impl Ops {
    /// Whether the first administrator still has to be created.
    pub fn needs_setup(&self) -> OpsResult<bool> {
        Ok(records::count_users(&self.store.read()?)? == 0)
    }

    /// At start: a fresh setup token when no user exists yet (the previous one stops
    /// working), nothing otherwise.
    pub fn prepare_setup(&self) -> OpsResult<Option<String>> {
        let tx = self.store.write()?;
        if records::count_users(&tx)? > 0 {
            records::delete_meta(&tx, SETUP_KEY)?;
            self.commit(tx, &[])?;
            return Ok(None);
        }
        let token = new_secret("");
        let stored = StoredSetup {
            digest: digest(&token),
            expires_at: plus(self.now(), self.settings.setup_link_ttl),
        };
        let bytes = serde_json::to_vec(&stored)
            .map_err(|e| crate::store::StoreError::Internal(e.to_string()))?;
        records::put_meta(&tx, SETUP_KEY, &bytes)?;
        self.commit(tx, &[])?;
        Ok(Some(token))
    }

    /// Whether a setup token is the current, unexpired one (the setup page checks first).
    pub fn setup_token_valid(&self, token: &str) -> OpsResult<bool> {
        let r = self.store.read()?;
        let Some(raw) = records::get_meta(&r, SETUP_KEY)? else {
            return Ok(false);
        };
        let stored: StoredSetup =
            serde_json::from_slice(&raw).map_err(|e| crate::store::StoreError::Corrupt {
                table: "meta-v1".into(),
                key: SETUP_KEY.into(),
                why: e.to_string(),
            })?;
        Ok(stored.digest == digest(token) && self.now() < stored.expires_at)
    }

    /// Creates the first platform administrator with the one-time token.
    pub async fn complete_setup(&self, input: SetupInput, origin: &Origin) -> OpsResult<User> {
        if !self.setup_token_valid(&input.token)? {
            return Err(OpsError::Unauthenticated(
                "this setup link is not valid: it was used, replaced by a restart, or expired; \
                 restart kaas for a new one"
                    .into(),
            ));
        }
        let email = normalize_email(&input.email).map_err(|p| invalid("email", p.0))?;
        check_display_name(&input.name).map_err(|p| invalid("name", p.0))?;
        check_password(&input.password, &email, self.settings.password_min_length)
            .map_err(|p| invalid("password", p.to_string()))?;
        let hash = hash_password(input.password, self.fast_hashing).await?;
        let tx = self.store.write()?;
        // Checked again inside the write: two people racing the same link get one admin.
        if records::count_users(&tx)? > 0 {
            return Err(OpsError::Conflict(
                "setup has already been completed".into(),
            ));
        }
        let now = self.now();
        let user = User::new(email, &input.name, hash, true, now, CreatedVia::Setup);
        records::insert_user(&tx, &user)?;
        records::delete_meta(&tx, SETUP_KEY)?;
        let actor = Actor {
            user_id: user.id,
            email: user.email.clone(),
            platform_admin: true,
            via: AuthVia::Shell,
            source: origin.ip.to_string(),
        };
        records::append_audit(&tx, &self.event(&actor, "setup.complete", user.id, None))?;
        self.commit(tx, &[])?;
        Ok(user)
    }
}
