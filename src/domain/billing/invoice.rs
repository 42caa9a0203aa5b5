//! Invoices: the billing account they are addressed to, calendar-month periods (UTC), and
//! the pricing of a month's usage into line items per workspace, plan revision and meter.
//! Every amount goes through `money::round_div` once; see `money` for the rounding rule.

use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::money::{Currency, round_div};
use super::prices::{PlanTerms, Rate};
use crate::domain::ids::{InvoiceId, OrgId, UserId, WorkspaceId};

/// A calendar month in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Period {
    pub year: i16,
    pub month: i8,
}

impl Period {
    pub fn containing(t: Timestamp) -> Period {
        let d = t.to_zoned(jiff::tz::TimeZone::UTC).date();
        Period {
            year: d.year(),
            month: d.month(),
        }
    }

    pub fn parse(text: &str) -> Result<Period, String> {
        let bad = || format!("{text:?} is not a month like 2026-11");
        let (y, m) = text.split_once('-').ok_or_else(bad)?;
        let year: i16 = y.parse().map_err(|_| bad())?;
        let month: i8 = m.parse().map_err(|_| bad())?;
        if !(1970..=9998).contains(&year) || !(1..=12).contains(&month) || m.len() != 2 {
            return Err(bad());
        }
        Ok(Period { year, month })
    }

    // A Period is a month of 1970..=9998 (checked by `parse` and kept by `next`), so its
    // first day exists.
    #[allow(clippy::expect_used)]
    pub fn first_day(self) -> Date {
        Date::new(self.year, self.month, 1).expect("valid month")
    }

    pub fn next(self) -> Period {
        if self.month == 12 {
            Period {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Period {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    pub fn prev(self) -> Period {
        if self.month == 1 {
            Period {
                year: self.year - 1,
                month: 12,
            }
        } else {
            Period {
                year: self.year,
                month: self.month - 1,
            }
        }
    }

    /// Start as Unix seconds.
    // Midnight UTC of a day in 1970..=9998 is always a representable instant.
    #[allow(clippy::expect_used)]
    pub fn start(self) -> i64 {
        self.first_day()
            .to_zoned(jiff::tz::TimeZone::UTC)
            .expect("in range")
            .timestamp()
            .as_second()
    }

    /// End (exclusive) as Unix seconds.
    pub fn end(self) -> i64 {
        self.next().start()
    }

    pub fn seconds(self) -> i64 {
        self.end() - self.start()
    }

    /// A sortable integer key (months since year 0).
    pub fn key(self) -> i32 {
        i32::from(self.year) * 12 + i32::from(self.month) - 1
    }

    pub fn from_key(key: i32) -> Period {
        Period {
            year: key.div_euclid(12) as i16,
            month: (key.rem_euclid(12) + 1) as i8,
        }
    }
}

impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// Who an organization's invoices are addressed to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BillingAccount {
    pub org_id: OrgId,
    pub name: String,
    pub email: String,
    pub address: String,
    pub tax_id: String,
    pub currency: Currency,
    /// Tax in basis points (1900 = 19 %); none = no tax line.
    pub tax_rate_bp: Option<u32>,
    /// Invoice numbers are `<prefix>-<sequence>`, the sequence counting per organization.
    pub invoice_prefix: String,
    /// The sequence number the next finalized invoice gets.
    pub next_number: u32,
}

/// Rules for a billing account's fields; the error names the field.
pub fn check_account(a: &BillingAccount) -> Result<(), (&'static str, String)> {
    if a.name.trim().is_empty() || a.name.chars().count() > 200 {
        return Err(("name", "must be 1 to 200 characters".into()));
    }
    if !a.email.is_empty() && crate::domain::names::normalize_email(&a.email).is_err() {
        return Err(("email", format!("{:?} is not an e-mail address", a.email)));
    }
    if a.address.chars().count() > 1000 {
        return Err(("address", "must be at most 1000 characters".into()));
    }
    if a.tax_id.chars().count() > 64 {
        return Err(("tax_id", "must be at most 64 characters".into()));
    }
    use crate::domain::names::check_text;
    check_text(&a.name, false).map_err(|p| ("name", p.0))?;
    check_text(&a.email, false).map_err(|p| ("email", p.0))?;
    check_text(&a.address, true).map_err(|p| ("address", p.0))?;
    check_text(&a.tax_id, false).map_err(|p| ("tax_id", p.0))?;
    if let Some(bp) = a.tax_rate_bp
        && bp > 10_000
    {
        return Err(("tax_rate_bp", "must be between 0 and 10000 (100 %)".into()));
    }
    let p = &a.invoice_prefix;
    if p.is_empty()
        || p.len() > 20
        || !p
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err((
            "invoice_prefix",
            "1 to 20 characters of A-Z, 0-9 and -".into(),
        ));
    }
    Ok(())
}

/// The default invoice prefix for an organization name: its letters and digits, upper case.
pub fn default_prefix(org_name: &str) -> String {
    let p: String = org_name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(12)
        .collect::<String>()
        .to_ascii_uppercase();
    if p.is_empty() { "INV".into() } else { p }
}

/// What a line charges for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Meter {
    Workspace,
    CpuCoreHours,
    MemoryGibHours,
    StorageGibHours,
    NodeHours,
}

impl Meter {
    pub fn as_str(self) -> &'static str {
        match self {
            Meter::Workspace => "workspace",
            Meter::CpuCoreHours => "cpu-core-hours",
            Meter::MemoryGibHours => "memory-gib-hours",
            Meter::StorageGibHours => "storage-gib-hours",
            Meter::NodeHours => "node-hours",
        }
    }

    /// How an invoice line names the meter.
    pub fn label(self) -> &'static str {
        match self {
            Meter::Workspace => "Workspace",
            Meter::CpuCoreHours => "CPU core-hours",
            Meter::MemoryGibHours => "Memory GiB-hours",
            Meter::StorageGibHours => "Storage GiB-hours",
            Meter::NodeHours => "Dedicated node-hours",
        }
    }

    pub fn unit(self) -> &'static str {
        match self {
            Meter::Workspace => "month",
            Meter::CpuCoreHours => "core-hour",
            Meter::MemoryGibHours | Meter::StorageGibHours => "GiB-hour",
            Meter::NodeHours => "node-hour",
        }
    }

    /// Fine unit-seconds per billed unit: quantities are recorded in millicore-, MiB-,
    /// GiB- and node-seconds.
    pub fn fine_per_unit(self) -> i128 {
        match self {
            Meter::Workspace => 1,
            Meter::CpuCoreHours => 1_000 * 3_600,
            Meter::MemoryGibHours => 1_024 * 3_600,
            Meter::StorageGibHours | Meter::NodeHours => 3_600,
        }
    }
}

/// One workspace's use of one plan revision in a month: the input to pricing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RevisionUse {
    pub billable_s: u64,
    pub node_s: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InvoiceLine {
    pub workspace_id: WorkspaceId,
    pub workspace: String,
    pub plan_id: String,
    pub plan: String,
    pub plan_revision: u32,
    pub meter: Meter,
    pub description: String,
    /// Exact quantity billed, as a decimal with 6 places (display only; the amount is
    /// computed from the exact fraction).
    pub quantity: String,
    pub unit: String,
    /// Unit price as a decimal in the major unit.
    pub unit_price: String,
    pub amount_minor: i64,
    /// Seconds of the month the workspace was billable on this revision.
    pub billable_seconds: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum InvoiceStatus {
    Draft,
    Finalized,
    Void,
}

/// A time the meter did not observe (kaas was not running), shown on invoices and in
/// the billing overview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MeterGap {
    pub from: Timestamp,
    pub until: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Invoice {
    pub id: Option<InvoiceId>,
    pub org_id: OrgId,
    /// `<prefix>-<sequence>`; none on a draft.
    pub number: Option<String>,
    /// The month, e.g. `2026-11`.
    pub period: String,
    pub period_start: Timestamp,
    pub period_end: Timestamp,
    pub status: InvoiceStatus,
    pub issued_at: Option<Timestamp>,
    pub bill_to: BillingAccount,
    pub currency: Currency,
    pub lines: Vec<InvoiceLine>,
    pub subtotal_minor: i64,
    pub tax_rate_bp: Option<u32>,
    pub tax_minor: i64,
    pub total_minor: i64,
    /// Times in the period the meter was not running; nothing is billed for them.
    pub gaps: Vec<MeterGap>,
    pub void_reason: Option<String>,
    pub voided_at: Option<Timestamp>,
    pub voided_by: Option<UserId>,
}

fn decimal6(num: i128, den: i128) -> String {
    let micro = round_div(num * 1_000_000, den);
    format!("{}.{:06}", micro / 1_000_000, micro % 1_000_000)
}

/// Prices one metered quantity: `fine_s` unit-seconds at `rate`, minus the included amount
/// prorated by `billable_s / month_s`. Returns (quantity text, amount in minor units).
fn price_rate(
    meter: Meter,
    fine_s: i128,
    rate: Rate,
    billable_s: i128,
    month_s: i128,
    currency: &Currency,
) -> (String, i64) {
    let f = meter.fine_per_unit();
    // Chargeable fine-unit-seconds, as a fraction over month_s.
    let num = (fine_s * month_s - i128::from(rate.included) * f * billable_s).max(0);
    let den = month_s * f;
    let amount = round_div(
        i128::from(rate.unit_price_micros) * num,
        den * currency.micros_per_minor(),
    );
    (decimal6(num, den), amount as i64)
}

/// The lines for one workspace's use of one plan revision in a month of `month_s` seconds.
/// The base line is always there when the workspace was billable; rate lines only when
/// the plan charges for that meter and something is left after the included amount.
pub fn price_revision(
    workspace_id: WorkspaceId,
    workspace: &str,
    terms: &PlanTerms,
    usage: RevisionUse,
    month_s: i64,
) -> Vec<InvoiceLine> {
    let p = &terms.prices;
    let c = &p.currency;
    let b = i128::from(usage.billable_s);
    let m = i128::from(month_s);
    let line = |meter: Meter, quantity: String, unit_price: String, amount: i64| InvoiceLine {
        workspace_id,
        workspace: workspace.to_string(),
        plan_id: terms.plan_id.clone(),
        plan: terms.display_name.clone(),
        plan_revision: terms.revision,
        meter,
        description: match meter {
            Meter::Workspace => format!("{workspace} — {} plan", terms.display_name),
            _ => format!("{workspace} — {}", meter.label()),
        },
        quantity,
        unit: meter.unit().to_string(),
        unit_price,
        amount_minor: amount,
        billable_seconds: usage.billable_s,
    };
    let mut lines = Vec::new();
    if usage.billable_s > 0 {
        let amount = round_div(i128::from(p.base_monthly_minor) * b, m) as i64;
        lines.push(line(
            Meter::Workspace,
            decimal6(b, m),
            c.format(p.base_monthly_minor),
            amount,
        ));
    }
    let q = &terms.quota;
    let metered = [
        (
            Meter::CpuCoreHours,
            i128::from(q.cpu_millis) * b,
            p.cpu_core_hour,
        ),
        (
            Meter::MemoryGibHours,
            i128::from(q.memory_mib) * b,
            p.memory_gib_hour,
        ),
        (
            Meter::StorageGibHours,
            i128::from(q.storage_gib) * b,
            p.storage_gib_hour,
        ),
        (Meter::NodeHours, i128::from(usage.node_s), p.node_hour),
    ];
    for (meter, fine_s, rate) in metered {
        if rate.unit_price_micros == 0 || fine_s == 0 {
            continue;
        }
        let (quantity, amount) = price_rate(meter, fine_s, rate, b, m, c);
        if quantity == "0.000000" {
            continue;
        }
        lines.push(line(
            meter,
            quantity,
            c.format_unit_price(rate.unit_price_micros),
            amount,
        ));
    }
    lines
}

/// Subtotal, tax and total of a set of lines.
pub fn totals(lines: &[InvoiceLine], tax_rate_bp: Option<u32>) -> (i64, i64, i64) {
    let subtotal: i64 = lines.iter().map(|l| l.amount_minor).sum();
    let tax = tax_rate_bp
        .map(|bp| round_div(i128::from(subtotal) * i128::from(bp), 10_000) as i64)
        .unwrap_or(0);
    (subtotal, tax, subtotal + tax)
}

pub fn invoice_number(prefix: &str, seq: u32) -> String {
    format!("{prefix}-{seq:05}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::billing::prices::PlanPrices;
    use crate::domain::plan::Quota;

    fn terms(prices: PlanPrices) -> PlanTerms {
        PlanTerms {
            revision: 1,
            plan_id: "standard".into(),
            display_name: "Standard".into(),
            quota: Quota {
                cpu_millis: 2_000,
                memory_mib: 4_096,
                storage_gib: 10,
                pods: 10,
            },
            prices,
            from: Timestamp::UNIX_EPOCH,
        }
    }

    #[test]
    fn periods() {
        let p = Period::parse("2026-02").unwrap();
        assert_eq!(p.seconds(), 28 * 86_400);
        assert_eq!(Period::parse("2026-11").unwrap().seconds(), 30 * 86_400);
        assert_eq!(
            Period::parse("2026-12").unwrap().next(),
            Period::parse("2027-01").unwrap()
        );
        assert_eq!(Period::from_key(p.key()), p);
        assert!(Period::parse("2026-13").is_err());
        assert!(Period::parse("2026-1").is_err());
        assert_eq!(p.to_string(), "2026-02");
    }

    #[test]
    fn a_full_month_costs_exactly_the_base_price() {
        let t = terms(PlanPrices {
            base_monthly_minor: 9_900,
            ..Default::default()
        });
        let month = Period::parse("2026-11").unwrap().seconds();
        let lines = price_revision(
            WorkspaceId::generate(),
            "prod",
            &t,
            RevisionUse {
                billable_s: month as u64,
                node_s: 0,
            },
            month,
        );
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].amount_minor, 9_900);
        assert_eq!(lines[0].quantity, "1.000000");
    }

    #[test]
    fn rates_apply_after_the_prorated_included_amount() {
        // 10 days of a 30-day month: 2 cores × 240 h = 480 core-hours, of which
        // 300 × 1/3 = 100 are included → 380 core-hours at 0.01 = 3.80.
        let t = terms(PlanPrices {
            base_monthly_minor: 3_000,
            cpu_core_hour: Rate {
                unit_price_micros: 10_000,
                included: 300,
            },
            ..Default::default()
        });
        let month = 30 * 86_400;
        let lines = price_revision(
            WorkspaceId::generate(),
            "prod",
            &t,
            RevisionUse {
                billable_s: 10 * 86_400,
                node_s: 0,
            },
            month,
        );
        assert_eq!(lines[0].amount_minor, 1_000);
        assert_eq!(lines[1].meter, Meter::CpuCoreHours);
        assert_eq!(lines[1].quantity, "380.000000");
        assert_eq!(lines[1].amount_minor, 380);
        let (sub, tax, total) = totals(&lines, Some(1_900));
        assert_eq!((sub, tax, total), (1_380, 262, 1_642));
    }

    #[test]
    fn account_rules_name_the_field() {
        let mut a = BillingAccount {
            org_id: OrgId::generate(),
            name: "Acme".into(),
            email: "billing@acme.test".into(),
            address: String::new(),
            tax_id: String::new(),
            currency: Currency::parse("EUR").unwrap(),
            tax_rate_bp: Some(1900),
            invoice_prefix: "ACME".into(),
            next_number: 1,
        };
        assert!(check_account(&a).is_ok());
        a.invoice_prefix = "acme".into();
        assert_eq!(check_account(&a).unwrap_err().0, "invoice_prefix");
        a.invoice_prefix = "ACME".into();
        a.tax_rate_bp = Some(10_001);
        assert_eq!(check_account(&a).unwrap_err().0, "tax_rate_bp");
        assert_eq!(default_prefix("acme-labs"), "ACMELABS");
        assert_eq!(invoice_number("ACME", 7), "ACME-00007");
    }
}
