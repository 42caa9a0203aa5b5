//! Exports: hourly usage records of an organization for a date range (JSON or CSV) and an
//! invoice as CSV, with spreadsheet formula injection guarded against.

use jiff::Timestamp;

use super::{Terms, ts, workspaces_in};
use crate::domain::billing::usage::{DAY, UsageRecord, day_of};
use crate::domain::billing::*;
use crate::domain::policy::Action;
use crate::domain::*;
use crate::ops::{Actor, Ops, OpsResult, invalid};
use crate::store::usage::{self as ustore, BilledWorkspace};

impl Ops {
    /// Hourly usage records of an organization's workspaces in `[from, until)`.
    pub fn usage_records(
        &self,
        actor: &Actor,
        org: OrgId,
        from: Timestamp,
        until: Timestamp,
    ) -> OpsResult<Vec<UsageRecord>> {
        let (f, u) = (from.as_second(), until.as_second());
        if u <= f {
            return Err(invalid("until", "the period must end after it starts"));
        }
        if u - f > 366 * DAY {
            return Err(invalid("until", "export at most 366 days at a time"));
        }
        let r = self.store.read()?;
        self.billing_org(&r, actor, org, Action::BillingRead)?;
        let terms = Terms::load(&r)?;
        let mut out = Vec::new();
        for b in workspaces_in(&r, org, f, u)? {
            for (day, usage) in ustore::usage_days(&r, b.id, day_of(f), day_of(u - 1) + 1)? {
                for (hour, slices) in &usage.hours {
                    let start = i64::from(day) * DAY + i64::from(*hour) * 3600;
                    if start + 3600 <= f || start >= u {
                        continue;
                    }
                    for s in slices {
                        let t = terms.0.get(&s.revision);
                        out.extend(hour_records(&b, ts(start), s, t));
                    }
                }
            }
        }
        Ok(out)
    }
}

fn six(num: u128, den: u128) -> String {
    let micro = (num * 1_000_000 + den / 2) / den;
    format!("{}.{:06}", micro / 1_000_000, micro % 1_000_000)
}

/// The exported records of one hour slice: one per meter with something to say.
fn hour_records(
    b: &BilledWorkspace,
    hour: Timestamp,
    s: &HourSlice,
    terms: Option<&PlanTerms>,
) -> Vec<UsageRecord> {
    let q = terms.map(|t| t.quota).unwrap_or_default();
    let bill = u128::from(s.billable_s);
    let meters: [(&'static str, u128, u128, &'static str); 8] = [
        ("workspace-hours", bill, 3_600, "hour"),
        ("node-hours", u128::from(s.node_s), 3_600, "node-hour"),
        (
            "cpu-core-hours",
            u128::from(q.cpu_millis) * bill,
            3_600_000,
            "core-hour",
        ),
        (
            "memory-gib-hours",
            u128::from(q.memory_mib) * bill,
            3_686_400,
            "GiB-hour",
        ),
        (
            "storage-gib-hours",
            u128::from(q.storage_gib) * bill,
            3_600,
            "GiB-hour",
        ),
        (
            "used-cpu-core-hours",
            u128::from(s.used_cpu_milli_s),
            3_600_000,
            "core-hour",
        ),
        (
            "used-memory-gib-hours",
            u128::from(s.used_memory_mib_s),
            3_686_400,
            "GiB-hour",
        ),
        (
            "used-storage-gib-hours",
            u128::from(s.used_storage_gib_s),
            3_600,
            "GiB-hour",
        ),
    ];
    meters
        .into_iter()
        .filter(|(name, n, _, _)| *n > 0 || *name == "workspace-hours")
        .map(|(meter, n, den, unit)| UsageRecord {
            workspace_id: b.id.to_string(),
            workspace: b.name.clone(),
            hour,
            plan_id: terms.map(|t| t.plan_id.clone()).unwrap_or_default(),
            plan_revision: s.revision,
            meter,
            quantity: six(n, den),
            unit,
            observed_seconds: s.observed_s,
        })
        .collect()
}

/// An invoice as CSV: a header block, then one row per line item, then the totals.
pub fn invoice_csv(inv: &Invoice) -> String {
    let c = &inv.currency;
    let mut out = String::new();
    out.push_str("invoice,period,status,currency,workspace_id,workspace,plan,meter,description,quantity,unit,unit_price,amount\n");
    let number = inv.number.clone().unwrap_or_else(|| "draft".into());
    let status = match inv.status {
        InvoiceStatus::Draft => "draft",
        InvoiceStatus::Finalized => "finalized",
        InvoiceStatus::Void => "void",
    };
    for l in &inv.lines {
        let row = [
            number.as_str(),
            inv.period.as_str(),
            status,
            c.code(),
            &l.workspace_id.to_string(),
            &l.workspace,
            &l.plan_id,
            l.meter.as_str(),
            &l.description,
            &l.quantity,
            &l.unit,
            &l.unit_price,
            &c.format(l.amount_minor),
        ];
        push_csv_row(&mut out, &row);
    }
    for (label, v) in [
        ("subtotal", inv.subtotal_minor),
        ("tax", inv.tax_minor),
        ("total", inv.total_minor),
    ] {
        let amount = c.format(v);
        let row = [
            number.as_str(),
            inv.period.as_str(),
            status,
            c.code(),
            "",
            "",
            "",
            label,
            label,
            "",
            "",
            "",
            amount.as_str(),
        ];
        push_csv_row(&mut out, &row);
    }
    out
}

/// Usage records as CSV.
pub fn usage_csv(records: &[UsageRecord]) -> String {
    let mut out = String::from(
        "hour,workspace_id,workspace,plan,plan_revision,meter,quantity,unit,observed_seconds\n",
    );
    for r in records {
        let row = [
            r.hour.to_string(),
            r.workspace_id.clone(),
            r.workspace.clone(),
            r.plan_id.clone(),
            r.plan_revision.to_string(),
            r.meter.to_string(),
            r.quantity.clone(),
            r.unit.to_string(),
            r.observed_seconds.to_string(),
        ];
        let refs: Vec<&str> = row.iter().map(String::as_str).collect();
        push_csv_row(&mut out, &refs);
    }
    out
}

/// One CSV row (RFC 4180 quoting). Cells starting with a formula character get a leading
/// apostrophe so a spreadsheet does not run them.
pub(crate) fn push_csv_row(out: &mut String, cells: &[&str]) {
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let guarded;
        let cell = if cell.starts_with(['=', '+', '-', '@']) && cell.parse::<f64>().is_err() {
            guarded = format!("'{cell}");
            guarded.as_str()
        } else {
            cell
        };
        if cell.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&cell.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(cell);
        }
    }
    out.push('\n');
}
