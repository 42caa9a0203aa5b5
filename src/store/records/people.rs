//! Users, their sessions and their API tokens.

use super::*;

// ---- users --------------------------------------------------------------------------------

pub fn get_user(r: &impl Reader, id: UserId) -> Res<Option<User>> {
    get_by_id(r, USERS, id.0)
}

pub fn user_by_email(r: &impl Reader, email: &str) -> Res<Option<User>> {
    let id = r.table(USERS_BY_EMAIL)?.get(email)?.map(|v| v.value());
    match id {
        Some(id) => get_user(r, UserId(id)),
        None => Ok(None),
    }
}

pub fn insert_user(tx: &WriteTransaction, u: &User) -> Res<()> {
    let mut idx = tx.open_table(USERS_BY_EMAIL)?;
    if idx.get(u.email.as_str())?.is_some() {
        return Err(StoreError::Conflict(format!(
            "a user with e-mail {}",
            u.email
        )));
    }
    idx.insert(u.email.as_str(), u.id.0)?;
    drop(idx);
    put_by_id(tx, USERS, u.id.0, u)
}

/// Updates a user; the e-mail address is fixed once created.
pub fn update_user(tx: &WriteTransaction, u: &User) -> Res<()> {
    put_by_id(tx, USERS, u.id.0, u)
}

pub fn list_users(r: &impl Reader, after: Option<UserId>, limit: usize) -> Res<Vec<User>> {
    let t = r.table(USERS)?;
    let start = after.map_or(0, |a| a.0.saturating_add(1));
    let mut out = Vec::new();
    for row in t.range(start..)? {
        if out.len() >= limit {
            break;
        }
        let (k, v) = row?;
        out.push(decode(v.value(), USERS.name(), &k.value())?);
    }
    Ok(out)
}

pub fn count_users(r: &impl Reader) -> Res<u64> {
    use redb::ReadableTableMetadata;
    Ok(r.table(USERS)?.len()?)
}

// ---- sessions ---------------------------------------------------------------------------

pub fn session_by_digest(r: &impl Reader, digest: &SecretDigest) -> Res<Option<Session>> {
    match r.table(SESSIONS)?.get(*digest)? {
        Some(v) => Ok(Some(decode(v.value(), SESSIONS.name(), &"(session)")?)),
        None => Ok(None),
    }
}

pub fn put_session(tx: &WriteTransaction, s: &Session) -> Res<()> {
    tx.open_table(SESSIONS)?
        .insert(s.digest, encode(s)?.as_slice())?;
    tx.open_table(SESSIONS_BY_USER)?
        .insert((s.user_id.0, s.id.0), s.digest)?;
    Ok(())
}

pub fn delete_session(tx: &WriteTransaction, s: &Session) -> Res<()> {
    tx.open_table(SESSIONS)?.remove(s.digest)?;
    tx.open_table(SESSIONS_BY_USER)?
        .remove((s.user_id.0, s.id.0))?;
    Ok(())
}

/// A user's sessions, oldest first.
pub fn list_user_sessions(r: &impl Reader, user: UserId) -> Res<Vec<Session>> {
    let idx = r.table(SESSIONS_BY_USER)?;
    let mut digests = Vec::new();
    for row in idx.range((user.0, 0)..=(user.0, u128::MAX))? {
        digests.push(row?.1.value());
    }
    drop(idx);
    let mut out = Vec::new();
    for d in digests {
        if let Some(s) = session_by_digest(r, &d)? {
            out.push(s);
        }
    }
    Ok(out)
}

// ---- API tokens -------------------------------------------------------------------------

pub fn get_token(r: &impl Reader, id: TokenId) -> Res<Option<ApiToken>> {
    get_by_id(r, TOKENS, id.0)
}

pub fn token_by_digest(r: &impl Reader, digest: &SecretDigest) -> Res<Option<ApiToken>> {
    let id = r.table(TOKENS_BY_DIGEST)?.get(*digest)?.map(|v| v.value());
    match id {
        Some(id) => get_token(r, TokenId(id)),
        None => Ok(None),
    }
}

pub fn insert_token(tx: &WriteTransaction, t: &ApiToken) -> Res<()> {
    put_by_id(tx, TOKENS, t.id.0, t)?;
    tx.open_table(TOKENS_BY_DIGEST)?.insert(t.digest, t.id.0)?;
    tx.open_table(TOKENS_BY_USER)?
        .insert((t.user_id.0, t.id.0), ())?;
    Ok(())
}

pub fn update_token(tx: &WriteTransaction, t: &ApiToken) -> Res<()> {
    put_by_id(tx, TOKENS, t.id.0, t)
}

pub fn delete_token(tx: &WriteTransaction, t: &ApiToken) -> Res<()> {
    tx.open_table(TOKENS_BY_DIGEST)?.remove(t.digest)?;
    tx.open_table(TOKENS_BY_USER)?
        .remove((t.user_id.0, t.id.0))?;
    del_by_id(tx, TOKENS, t.id.0)
}

pub fn list_user_tokens(r: &impl Reader, user: UserId) -> Res<Vec<ApiToken>> {
    let ids = index_seconds(r, TOKENS_BY_USER, user.0)?;
    load_all(r, TOKENS, ids)
}
