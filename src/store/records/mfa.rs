//! Second factors: one record per user who has (or is enrolling) one.

use super::*;
use crate::domain::mfa::MfaRecord;

pub fn get_mfa(r: &impl Reader, user: UserId) -> Res<Option<MfaRecord>> {
    let t = r.table(MFA)?;
    match t.get(user.0)? {
        // Not the decoded-record cache: the last step used changes at every sign-in.
        Some(v) => Ok(Some(decode(v.value(), MFA.name(), &user.0)?)),
        None => Ok(None),
    }
}

pub fn put_mfa(tx: &WriteTransaction, m: &MfaRecord) -> Res<()> {
    put_by_id(tx, MFA, m.user_id.0, m)
}

pub fn delete_mfa(tx: &WriteTransaction, user: UserId) -> Res<()> {
    del_by_id(tx, MFA, user.0)
}
