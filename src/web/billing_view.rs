//! What the billing templates show, computed once here: money with its currency, invoice
//! quantities without trailing zeros, periods and dates, tax rates as the percentages people
//! type (and back), status colours, invoice lines grouped per workspace, and whether the
//! navigation offers billing (asked of the policy table, never re-decided).

use jiff::Timestamp;

use crate::domain::billing::{Currency, Invoice, InvoiceStatus, MeterGap};
use crate::domain::policy::{self, Action, Standing};
use crate::domain::{InvoiceId, OrgId, OrgRole};
use crate::ops::billing::InvoiceSummary;
use crate::ops::users::MyOrg;

// ---- Formatting -------------------------------------------------------------------------

/// An amount with its currency code: `97.46 EUR`.
pub fn money(c: &Currency, minor: i64) -> String {
    format!("{} {}", c.format(minor), c.code())
}

/// A quantity as the invoice states it (six places), without trailing zeros: `958`, `0.3333`.
pub fn quantity(q: &str) -> String {
    match q.split_once('.') {
        Some((int, frac)) => {
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() {
                int.to_string()
            } else {
                format!("{int}.{frac}")
            }
        }
        None => q.to_string(),
    }
}

/// `1 December 2026`.
pub fn day(t: &Timestamp) -> String {
    t.strftime("%-d %B %Y").to_string()
}

/// `November 2026`, from an invoice's period start.
pub fn month(t: &Timestamp) -> String {
    t.strftime("%B %Y").to_string()
}

/// `1–30 November 2026`: a period's first and last day.
pub fn period_range(start: &Timestamp, end: &Timestamp) -> String {
    let last = end
        .checked_sub(jiff::SignedDuration::from_secs(1))
        .unwrap_or(*end);
    format!("{}–{}", start.strftime("%-d"), last.strftime("%-d %B %Y"))
}

/// A tax rate in basis points as the percentage people type: 1900 → `19`, 750 → `7.5`.
pub fn percent(bp: &u32) -> String {
    let (int, frac) = (bp / 100, bp % 100);
    match frac {
        0 => int.to_string(),
        f if f % 10 == 0 => format!("{int}.{}", f / 10),
        f => format!("{int}.{f:02}"),
    }
}

/// A percentage typed in a form (`19`, `7.5`, `7,25 %`) as basis points; blank is no tax.
pub fn parse_percent(raw: &str) -> Result<Option<u32>, String> {
    let t = raw.trim().trim_end_matches('%').trim().replace(',', ".");
    if t.is_empty() {
        return Ok(None);
    }
    let bad = || format!("Enter a percentage like 19 or 7.5 (not {:?})", raw.trim());
    let (int, frac) = t.split_once('.').unwrap_or((&t, ""));
    if int.is_empty()
        || int.len() > 3
        || frac.len() > 2
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || (t.contains('.') && frac.is_empty())
    {
        return Err(bad());
    }
    let int: u32 = int.parse().map_err(|_| bad())?;
    let frac: u32 = format!("{frac:0<2}").parse().map_err(|_| bad())?;
    let bp = int * 100 + frac;
    if bp > 10_000 {
        return Err("Enter at most 100 %".into());
    }
    Ok(Some(bp))
}

/// The CSS class of an invoice status: amber for an estimate, green final, grey void.
pub fn status_class(s: &InvoiceStatus) -> &'static str {
    match s {
        InvoiceStatus::Draft => "st-pending",
        InvoiceStatus::Finalized => "st-ready",
        InvoiceStatus::Void => "st-deleting",
    }
}

pub fn status_text(s: &InvoiceStatus) -> &'static str {
    match s {
        InvoiceStatus::Draft => "draft",
        InvoiceStatus::Finalized => "finalized",
        InvoiceStatus::Void => "void",
    }
}

pub fn gap_text(g: &MeterGap) -> String {
    format!(
        "kaas was not running from {} to {}; that time is not billed.",
        super::view::when(&g.from),
        super::view::when(&g.until)
    )
}

/// Whether someone with this organization role sees the billing link (the policy decides,
/// the same table `ops` checks).
pub fn shows_billing(role: Option<&OrgRole>, platform_admin: bool) -> bool {
    policy::allows(
        &Standing {
            platform_admin,
            org: role.copied(),
            workspace: None,
            project: None,
        },
        Action::BillingRead,
    )
}

/// The navigation's billing entry under an organization: shown while that organization
/// is open, for those who may see its billing.
pub fn nav_billing(section: &str, o: &MyOrg) -> bool {
    (section == o.id.to_string() || is_billing_section(section, o))
        && shows_billing(Some(&o.role), false)
}

/// The navigation section of an organization's billing pages.
pub fn section(org: OrgId) -> String {
    format!("{org}:billing")
}

pub fn is_billing_section(section: &str, o: &MyOrg) -> bool {
    section == self::section(o.id)
}

// ---- View models ------------------------------------------------------------------------

pub struct LineRow {
    pub description: String,
    pub quantity: String,
    pub unit: String,
    pub unit_price: String,
    pub amount: String,
}

/// An invoice's lines of one workspace, with their sum.
pub struct LineGroup {
    pub workspace: String,
    pub lines: Vec<LineRow>,
    pub subtotal: String,
}

pub fn groups(inv: &Invoice) -> Vec<LineGroup> {
    let c = &inv.currency;
    let mut out: Vec<(crate::domain::WorkspaceId, LineGroup, i64)> = Vec::new();
    for l in &inv.lines {
        // The group names the workspace; its lines need not repeat it.
        let prefix = format!("{} — ", l.workspace);
        let row = LineRow {
            description: l
                .description
                .strip_prefix(&prefix)
                .unwrap_or(&l.description)
                .to_string(),
            quantity: quantity(&l.quantity),
            unit: l.unit.clone(),
            unit_price: l.unit_price.clone(),
            amount: c.format(l.amount_minor),
        };
        match out.iter_mut().find(|(id, _, _)| *id == l.workspace_id) {
            Some((_, g, sum)) => {
                g.lines.push(row);
                *sum += l.amount_minor;
            }
            None => out.push((
                l.workspace_id,
                LineGroup {
                    workspace: l.workspace.clone(),
                    lines: vec![row],
                    subtotal: String::new(),
                },
                l.amount_minor,
            )),
        }
    }
    out.into_iter()
        .map(|(_, mut g, sum)| {
            g.subtotal = c.format(sum);
            g
        })
        .collect()
}

pub struct InvoiceRow {
    pub id: InvoiceId,
    pub number: String,
    pub period: String,
    pub status: InvoiceStatus,
    pub issued: String,
    pub total: String,
}

pub fn invoice_row(i: &InvoiceSummary) -> InvoiceRow {
    let period = crate::domain::billing::Period::parse(&i.period)
        .map(|p| p.first_day().strftime("%B %Y").to_string())
        .unwrap_or_else(|_| i.period.clone());
    InvoiceRow {
        id: i.id,
        number: i.number.clone(),
        period,
        status: i.status,
        issued: i.issued_at.as_ref().map_or_else(String::new, day),
        total: money(&i.currency, i.total_minor),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_become_basis_points_and_back() {
        assert_eq!(parse_percent("19"), Ok(Some(1900)));
        assert_eq!(parse_percent("7.5"), Ok(Some(750)));
        assert_eq!(parse_percent(" 7,25 % "), Ok(Some(725)));
        assert_eq!(parse_percent("0"), Ok(Some(0)));
        assert_eq!(parse_percent(""), Ok(None));
        assert_eq!(parse_percent("100"), Ok(Some(10_000)));
        for bad in ["abc", "7.", ".5", "7.125", "-1", "101", "1e2", "19 5"] {
            assert!(parse_percent(bad).is_err(), "{bad}");
        }
        assert_eq!(percent(&1900), "19");
        assert_eq!(percent(&750), "7.5");
        assert_eq!(percent(&725), "7.25");
        assert_eq!(percent(&5), "0.05");
    }

    #[test]
    fn quantities_lose_trailing_zeros() {
        assert_eq!(quantity("958.000000"), "958");
        assert_eq!(quantity("0.333333"), "0.333333");
        assert_eq!(quantity("24.500000"), "24.5");
    }
}
