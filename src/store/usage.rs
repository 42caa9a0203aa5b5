//! Billing records: plan revisions, the meter's per-workspace position, hourly usage kept as
//! one compact record per workspace and UTC day (a year of hourly usage for 1,000
//! workspaces must stay well under 500 MB), the ledger of billed workspaces per
//! organization, meter gaps, billing accounts and invoices.

use redb::{ReadableTable, TableHandle, WriteTransaction};

use super::codec::{decode, encode};
use super::tables::*;
use super::{Reader, StoreError};
use crate::domain::billing::usage::MeterState;
use crate::domain::billing::{BillingAccount, DayUsage, HourSlice, Invoice, PlanTerms};
use crate::domain::{InvoiceId, OrgId, WorkspaceId};

type Res<T> = Result<T, StoreError>;

// ---- compact day records -------------------------------------------------------------------

const DAY_FORMAT_V1: u8 = 1;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// A format byte, then varints: hours, and per hour its number, slices and their fields.
pub fn encode_day(d: &DayUsage) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + d.hours.len() * 24);
    out.push(DAY_FORMAT_V1);
    put_varint(&mut out, d.hours.len() as u64);
    for (hour, slices) in &d.hours {
        out.push(*hour);
        put_varint(&mut out, slices.len() as u64);
        for s in slices {
            for v in [
                u64::from(s.revision),
                u64::from(s.observed_s),
                u64::from(s.billable_s),
                s.node_s,
                u64::from(s.used_s),
                s.used_cpu_milli_s,
                s.used_memory_mib_s,
                s.used_storage_gib_s,
            ] {
                put_varint(&mut out, v);
            }
        }
    }
    out
}

pub fn decode_day(bytes: &[u8], key: &dyn std::fmt::Display) -> Res<DayUsage> {
    let corrupt = || StoreError::Corrupt {
        table: USAGE_DAYS.name().to_string(),
        key: key.to_string(),
        why: "unreadable usage record".into(),
    };
    if bytes.first() != Some(&DAY_FORMAT_V1) {
        return Err(corrupt());
    }
    let mut pos = 1;
    let mut next = || get_varint(bytes, &mut pos).ok_or_else(corrupt);
    let n = next()?;
    let mut hours = Vec::with_capacity(n.min(24) as usize);
    for _ in 0..n {
        let hour = next()? as u8;
        let m = next()?;
        let mut slices = Vec::with_capacity(m.min(8) as usize);
        for _ in 0..m {
            let small = |v: u64| u32::try_from(v).map_err(|_| corrupt());
            slices.push(HourSlice {
                revision: small(next()?)?,
                observed_s: small(next()?)?,
                billable_s: small(next()?)?,
                node_s: next()?,
                used_s: small(next()?)?,
                used_cpu_milli_s: next()?,
                used_memory_mib_s: next()?,
                used_storage_gib_s: next()?,
            });
        }
        hours.push((hour, slices));
    }
    Ok(DayUsage { hours })
}

pub fn usage_day(r: &impl Reader, ws: WorkspaceId, day: i32) -> Res<Option<DayUsage>> {
    match r.table(USAGE_DAYS)?.get((ws.0, day))? {
        Some(v) => Ok(Some(decode_day(v.value(), &format!("{ws}/{day}"))?)),
        None => Ok(None),
    }
}

pub fn put_usage_day(tx: &WriteTransaction, ws: WorkspaceId, day: i32, d: &DayUsage) -> Res<()> {
    tx.open_table(USAGE_DAYS)?
        .insert((ws.0, day), encode_day(d).as_slice())?;
    Ok(())
}

/// A workspace's day records in `[from_day, until_day)`, in day order.
pub fn usage_days(
    r: &impl Reader,
    ws: WorkspaceId,
    from_day: i32,
    until_day: i32,
) -> Res<Vec<(i32, DayUsage)>> {
    let t = r.table(USAGE_DAYS)?;
    let mut out = Vec::new();
    if from_day >= until_day {
        return Ok(out);
    }
    for row in t.range((ws.0, from_day)..(ws.0, until_day))? {
        let (k, v) = row?;
        let day = k.value().1;
        out.push((day, decode_day(v.value(), &format!("{ws}/{day}"))?));
    }
    Ok(out)
}

// ---- plan revisions ------------------------------------------------------------------------

pub fn plan_terms(r: &impl Reader, revision: u32) -> Res<Option<PlanTerms>> {
    match r.table(PLAN_TERMS)?.get(revision)? {
        Some(v) => Ok(Some(decode(v.value(), PLAN_TERMS.name(), &revision)?)),
        None => Ok(None),
    }
}

pub fn all_plan_terms(r: &impl Reader) -> Res<Vec<PlanTerms>> {
    let t = r.table(PLAN_TERMS)?;
    let mut out = Vec::new();
    for row in t.iter()? {
        let (k, v) = row?;
        out.push(decode(v.value(), PLAN_TERMS.name(), &k.value())?);
    }
    Ok(out)
}

/// Stores new terms under the next free revision number and returns it.
pub fn add_plan_terms(tx: &WriteTransaction, mut terms: PlanTerms) -> Res<u32> {
    let mut t = tx.open_table(PLAN_TERMS)?;
    let next = match t.last()? {
        Some((k, _)) => k.value() + 1,
        None => 1,
    };
    terms.revision = next;
    t.insert(next, encode(&terms)?.as_slice())?;
    Ok(next)
}

// ---- meter position ------------------------------------------------------------------------

pub fn meter_state(r: &impl Reader, ws: WorkspaceId) -> Res<Option<MeterState>> {
    match r.table(METER_STATES)?.get(ws.0)? {
        Some(v) => Ok(Some(decode(v.value(), METER_STATES.name(), &ws)?)),
        None => Ok(None),
    }
}

pub fn put_meter_state(tx: &WriteTransaction, ws: WorkspaceId, s: &MeterState) -> Res<()> {
    tx.open_table(METER_STATES)?
        .insert(ws.0, encode(s)?.as_slice())?;
    Ok(())
}

pub fn delete_meter_state(tx: &WriteTransaction, ws: WorkspaceId) -> Res<()> {
    tx.open_table(METER_STATES)?.remove(ws.0)?;
    Ok(())
}

pub fn all_meter_states(r: &impl Reader) -> Res<Vec<(WorkspaceId, MeterState)>> {
    let t = r.table(METER_STATES)?;
    let mut out = Vec::new();
    for row in t.iter()? {
        let (k, v) = row?;
        let ws = WorkspaceId(k.value());
        out.push((ws, decode(v.value(), METER_STATES.name(), &ws)?));
    }
    Ok(out)
}

// ---- ledger of billed workspaces -----------------------------------------------------------

/// What invoices need of a workspace, kept after the workspace itself is deleted.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BilledWorkspace {
    pub id: WorkspaceId,
    pub org_id: OrgId,
    pub name: String,
    pub created_at: jiff::Timestamp,
    #[serde(default)]
    pub deleted_at: Option<jiff::Timestamp>,
}

pub fn put_billed_workspace(tx: &WriteTransaction, b: &BilledWorkspace) -> Res<()> {
    tx.open_table(BILLED_WORKSPACES)?
        .insert((b.org_id.0, b.id.0), encode(b)?.as_slice())?;
    Ok(())
}

pub fn billed_workspace(
    r: &impl Reader,
    org: OrgId,
    ws: WorkspaceId,
) -> Res<Option<BilledWorkspace>> {
    match r.table(BILLED_WORKSPACES)?.get((org.0, ws.0))? {
        Some(v) => Ok(Some(decode(v.value(), BILLED_WORKSPACES.name(), &ws)?)),
        None => Ok(None),
    }
}

pub fn billed_workspaces(r: &impl Reader, org: OrgId) -> Res<Vec<BilledWorkspace>> {
    let t = r.table(BILLED_WORKSPACES)?;
    let mut out = Vec::new();
    for row in t.range((org.0, 0)..=(org.0, u128::MAX))? {
        let (k, v) = row?;
        out.push(decode(v.value(), BILLED_WORKSPACES.name(), &k.value().1)?);
    }
    Ok(out)
}

/// Every organization that has ever had a billed workspace.
pub fn billed_orgs(r: &impl Reader) -> Res<Vec<OrgId>> {
    let t = r.table(BILLED_WORKSPACES)?;
    let mut out: Vec<OrgId> = Vec::new();
    for row in t.iter()? {
        let org = OrgId(row?.0.value().0);
        if out.last() != Some(&org) {
            out.push(org);
        }
    }
    Ok(out)
}

// ---- gaps ----------------------------------------------------------------------------------

pub fn add_gap(tx: &WriteTransaction, from: i64, until: i64) -> Res<()> {
    let mut t = tx.open_table(METER_GAPS)?;
    // One restart gives one gap, whichever workspace noticed it first; a later workspace
    // (or a slower tick) may only widen it.
    let existing = t.get(from)?.map(|v| v.value());
    t.insert(from, existing.map_or(until, |u| u.max(until)))?;
    Ok(())
}

/// Gaps overlapping `[from, until)`, as (from, until) Unix seconds.
pub fn gaps_between(r: &impl Reader, from: i64, until: i64) -> Res<Vec<(i64, i64)>> {
    let t = r.table(METER_GAPS)?;
    let mut out = Vec::new();
    for row in t.range(..until)? {
        let (k, v) = row?;
        let (f, u) = (k.value(), v.value());
        if u > from {
            out.push((f, u));
        }
    }
    Ok(out)
}

// ---- accounts and invoices -----------------------------------------------------------------

pub fn billing_account(r: &impl Reader, org: OrgId) -> Res<Option<BillingAccount>> {
    match r.table(BILLING_ACCOUNTS)?.get(org.0)? {
        Some(v) => Ok(Some(decode(v.value(), BILLING_ACCOUNTS.name(), &org)?)),
        None => Ok(None),
    }
}

pub fn put_billing_account(tx: &WriteTransaction, a: &BillingAccount) -> Res<()> {
    tx.open_table(BILLING_ACCOUNTS)?
        .insert(a.org_id.0, encode(a)?.as_slice())?;
    Ok(())
}

pub fn get_invoice(r: &impl Reader, id: InvoiceId) -> Res<Option<Invoice>> {
    match r.table(INVOICES)?.get(id.0)? {
        Some(v) => Ok(Some(decode(v.value(), INVOICES.name(), &id)?)),
        None => Ok(None),
    }
}

/// Stores a new invoice; one per organization and period.
pub fn insert_invoice(
    tx: &WriteTransaction,
    id: InvoiceId,
    period_key: i32,
    inv: &Invoice,
) -> Res<()> {
    let mut idx = tx.open_table(INVOICES_BY_ORG)?;
    if idx.get((inv.org_id.0, period_key))?.is_some() {
        return Err(StoreError::Conflict(format!(
            "an invoice for {} already exists",
            inv.period
        )));
    }
    idx.insert((inv.org_id.0, period_key), id.0)?;
    tx.open_table(INVOICES)?
        .insert(id.0, encode(inv)?.as_slice())?;
    Ok(())
}

/// Replaces an invoice's record (only voiding does this).
pub fn update_invoice(tx: &WriteTransaction, id: InvoiceId, inv: &Invoice) -> Res<()> {
    tx.open_table(INVOICES)?
        .insert(id.0, encode(inv)?.as_slice())?;
    Ok(())
}

pub fn invoice_for(r: &impl Reader, org: OrgId, period_key: i32) -> Res<Option<InvoiceId>> {
    Ok(r.table(INVOICES_BY_ORG)?
        .get((org.0, period_key))?
        .map(|v| InvoiceId(v.value())))
}

/// An organization's invoices, newest period first.
pub fn org_invoices(r: &impl Reader, org: OrgId) -> Res<Vec<Invoice>> {
    let t = r.table(INVOICES_BY_ORG)?;
    let mut ids = Vec::new();
    for row in t.range((org.0, i32::MIN)..=(org.0, i32::MAX))? {
        ids.push(InvoiceId(row?.1.value()));
    }
    let mut out = Vec::with_capacity(ids.len());
    for id in ids.into_iter().rev() {
        if let Some(inv) = get_invoice(r, id)? {
            out.push(inv);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_records_round_trip_and_stay_small() {
        let mut d = DayUsage::default();
        for h in 0..24u8 {
            d.hours.push((
                h,
                vec![HourSlice {
                    revision: 3,
                    observed_s: 3600,
                    billable_s: 3600,
                    node_s: 7200,
                    used_s: 3600,
                    used_cpu_milli_s: 1_800_000,
                    used_memory_mib_s: 3_686_400,
                    used_storage_gib_s: 36_000,
                }],
            ));
        }
        let bytes = encode_day(&d);
        assert_eq!(decode_day(&bytes, &"t").unwrap(), d);
        // 24 hours in well under 24 × 57 bytes (500 MB / 8.76 M hourly records).
        assert!(bytes.len() < 24 * 30, "{} bytes", bytes.len());
        assert!(decode_day(&bytes[..bytes.len() - 1], &"t").is_err());
        assert!(decode_day(&[9], &"t").is_err());
    }
}
