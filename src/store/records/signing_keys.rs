//! The OIDC issuer's signing keys, by key id (see `domain::oidc`).

use super::*;
use crate::domain::oidc::SigningKeyRecord;

/// Every stored signing key, in key-id order.
pub fn list_signing_keys(r: &impl Reader) -> Res<Vec<SigningKeyRecord>> {
    let t = r.table(SIGNING_KEYS)?;
    let mut out = Vec::new();
    for row in t.iter()? {
        let (k, v) = row?;
        out.push(decode(v.value(), SIGNING_KEYS.name(), &k.value())?);
    }
    Ok(out)
}

pub fn put_signing_key(tx: &WriteTransaction, k: &SigningKeyRecord) -> Res<()> {
    tx.open_table(SIGNING_KEYS)?
        .insert(k.kid.as_str(), encode(k)?.as_slice())?;
    Ok(())
}

pub fn delete_signing_key(tx: &WriteTransaction, kid: &str) -> Res<()> {
    tx.open_table(SIGNING_KEYS)?.remove(kid)?;
    Ok(())
}
