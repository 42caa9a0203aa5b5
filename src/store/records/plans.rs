//! The plan catalogue.

use super::*;

// ---- plans ------------------------------------------------------------------------------

pub fn get_plan(r: &impl Reader, id: &str) -> Res<Option<Plan>> {
    match r.table(PLANS)?.get(id)? {
        Some(v) => Ok(Some(decode(v.value(), PLANS.name(), &id)?)),
        None => Ok(None),
    }
}

pub fn put_plan(tx: &WriteTransaction, p: &Plan) -> Res<()> {
    tx.open_table(PLANS)?
        .insert(p.id.as_str(), encode(p)?.as_slice())?;
    Ok(())
}

pub fn delete_plan(tx: &WriteTransaction, id: &str) -> Res<()> {
    tx.open_table(PLANS)?.remove(id)?;
    Ok(())
}

pub fn list_plans(r: &impl Reader) -> Res<Vec<Plan>> {
    let t = r.table(PLANS)?;
    let mut out = Vec::new();
    for row in t.iter()? {
        let (k, v) = row?;
        out.push(decode(v.value(), PLANS.name(), &k.value())?);
    }
    Ok(out)
}
