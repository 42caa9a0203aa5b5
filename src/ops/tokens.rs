//! API tokens for the JSON API: created by their owner, shown once, stored as a digest,
//! with an expiry no later than the configured maximum and a read-only or read-write scope.
//! Creating one needs the owner's current password (a stolen session cannot mint a
//! long-lived credential), and a token cannot create tokens. A password change or reset
//! revokes them all (see `ops::auth::end_credentials`).

use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::secrets::{digest, new_secret};
use super::{Actor, AuthVia, Ops, OpsError, OpsResult, invalid, plus};
use crate::domain::names::check_display_name;
use crate::domain::*;
use crate::store::records;

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// What the token is for, e.g. "ci pipeline".
    #[schema(min_length = 1, pattern = r"\S")]
    pub name: String,
    pub scope: TokenScope,
    /// Days until it stops working; default 90, at most the configured maximum.
    #[serde(default)]
    pub expires_in_days: Option<u32>,
    /// The caller's password, asked again: a token outlives the session creating it.
    pub current_password: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TokenView {
    pub id: TokenId,
    pub name: String,
    pub scope: TokenScope,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
}

/// A new token: `secret` is shown this once and never again.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub token: TokenView,
    pub secret: String,
}

impl From<&ApiToken> for TokenView {
    fn from(t: &ApiToken) -> Self {
        TokenView {
            id: t.id,
            name: t.name.clone(),
            scope: t.scope,
            created_at: t.created_at,
            expires_at: t.expires_at,
            last_used_at: t.last_used_at,
        }
    }
}

/// How many tokens one user may hold, so a script in a loop cannot fill the database.
const MAX_TOKENS_PER_USER: usize = 50;

impl Ops {
    pub async fn create_token(&self, actor: &Actor, input: NewToken) -> OpsResult<CreatedToken> {
        if matches!(actor.via, AuthVia::Token(..)) {
            return Err(OpsError::Forbidden(
                "an API token cannot create API tokens; sign in with your password to create one"
                    .into(),
            ));
        }
        check_display_name(&input.name).map_err(|p| invalid("name", p.0))?;
        let max_days = (self.settings.api_token_max_lifetime.as_secs() / 86400).max(1);
        let days = u64::from(input.expires_in_days.unwrap_or(90));
        if days == 0 || days > max_days {
            return Err(invalid(
                "expires_in_days",
                format!("must be between 1 and {max_days}"),
            ));
        }
        let user = {
            let r = self.store.read()?;
            records::get_user(&r, actor.user_id)?.ok_or(OpsError::NotFound("user"))?
        };
        self.reauthenticate(actor, &user, input.current_password, "current_password")
            .await?;
        let secret = new_secret("kaas_");
        let now = self.now();
        let token = ApiToken {
            id: TokenId::generate(),
            user_id: actor.user_id,
            name: input.name.trim().to_string(),
            scope: input.scope,
            digest: digest(&secret),
            created_at: now,
            expires_at: plus(now, Duration::from_secs(days * 86400)),
            last_used_at: None,
        };
        let tx = self.store.write()?;
        if records::list_user_tokens(&tx, actor.user_id)?.len() >= MAX_TOKENS_PER_USER {
            return Err(OpsError::Conflict(format!(
                "you already have {MAX_TOKENS_PER_USER} API tokens; revoke one first"
            )));
        }
        records::insert_token(&tx, &token)?;
        let mut ev = self.event(actor, "token.create", token.id, None);
        ev.detail = format!("{:?} {:?}", token.name, token.scope);
        records::append_audit(&tx, &ev)?;
        self.commit(tx, &[])?;
        Ok(CreatedToken {
            token: TokenView::from(&token),
            secret,
        })
    }

    pub fn list_tokens(&self, actor: &Actor) -> OpsResult<Vec<TokenView>> {
        let r = self.store.read()?;
        Ok(records::list_user_tokens(&r, actor.user_id)?
            .iter()
            .map(TokenView::from)
            .collect())
    }

    pub fn revoke_token(&self, actor: &Actor, id: TokenId) -> OpsResult<()> {
        let tx = self.store.write()?;
        let t = records::get_token(&tx, id)?
            .filter(|t| t.user_id == actor.user_id)
            .ok_or(OpsError::NotFound("API token"))?;
        records::delete_token(&tx, &t)?;
        records::append_audit(&tx, &self.event(actor, "token.revoke", id, None))?;
        self.commit(tx, &[])
    }
}
