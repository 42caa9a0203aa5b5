//! Identity providers added in the console or the API, by id (see `domain::sso`).

use super::*;
use crate::domain::sso::StoredProvider;

/// Every stored provider, in id order.
pub fn list_sso_providers(r: &impl Reader) -> Res<Vec<StoredProvider>> {
    let t = r.table(SSO_PROVIDERS)?;
    let mut out = Vec::new();
    for row in t.iter()? {
        let (k, v) = row?;
        out.push(decode(v.value(), SSO_PROVIDERS.name(), &k.value())?);
    }
    Ok(out)
}

pub fn get_sso_provider(r: &impl Reader, id: &str) -> Res<Option<StoredProvider>> {
    let t = r.table(SSO_PROVIDERS)?;
    match t.get(id)? {
        Some(v) => Ok(Some(decode(v.value(), SSO_PROVIDERS.name(), &id)?)),
        None => Ok(None),
    }
}

pub fn put_sso_provider(tx: &WriteTransaction, p: &StoredProvider) -> Res<()> {
    tx.open_table(SSO_PROVIDERS)?
        .insert(p.id.as_str(), encode(p)?.as_slice())?;
    Ok(())
}

/// Whether there was one to delete.
pub fn delete_sso_provider(tx: &WriteTransaction, id: &str) -> Res<bool> {
    Ok(tx.open_table(SSO_PROVIDERS)?.remove(id)?.is_some())
}
