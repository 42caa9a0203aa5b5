//! Billing use cases: the organization's billing account, the live draft of the current
//! month, finalizing months into numbered invoices at period close, voiding, and exports
//! of invoices and hourly usage records (JSON and CSV; in [`export`]).

mod export;

pub(crate) use export::push_csv_row;
pub use export::{invoice_csv, usage_csv};

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use redb::WriteTransaction;
use serde::Serialize;
use utoipa::ToSchema;

use super::authz::{org_for, org_standing, require_platform_admin};
use super::{Actor, Ops, OpsError, OpsResult, invalid};
use crate::domain::billing::invoice::{
    RevisionUse, check_account, default_prefix, invoice_number, price_revision, totals,
};
use crate::domain::billing::usage::{DAY, day_of};
use crate::domain::billing::*;
use crate::domain::policy::{self, Action};
use crate::domain::*;
use crate::store::usage::{self as ustore, BilledWorkspace};
use crate::store::{Reader, records};

/// Meta key: the last period (months since year 0) whose invoices are final.
const CLOSED_THROUGH: &str = "billing.closed-through";

/// What an owner may change on the billing account.
#[derive(Debug, Clone, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountInput {
    pub name: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub tax_id: String,
    pub currency: String,
    /// Tax in basis points (1900 = 19 %); omit or null for none.
    #[serde(default)]
    pub tax_rate_bp: Option<u32>,
    pub invoice_prefix: String,
}

/// One day of an organization's usage, for the chart.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DailyUsage {
    /// `YYYY-MM-DD`.
    pub date: String,
    pub workspace_hours: f64,
    pub node_hours: f64,
    /// Allocated CPU (quota) and CPU requested by pods (the host's quota usage).
    pub allocated_core_hours: f64,
    pub used_core_hours: f64,
}

/// The billing page: account, this month so far, a projection, the chart, the invoices.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BillingOverview {
    pub account: BillingAccount,
    /// The current month's draft from the usage recorded so far.
    pub draft: Invoice,
    /// The month's total if every workspace stays as it is now until the month ends.
    pub projected_total_minor: i64,
    pub daily: Vec<DailyUsage>,
    pub invoices: Vec<InvoiceSummary>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InvoiceSummary {
    pub id: InvoiceId,
    pub number: String,
    pub period: String,
    pub status: InvoiceStatus,
    pub issued_at: Option<Timestamp>,
    pub currency: Currency,
    pub total_minor: i64,
}

impl InvoiceSummary {
    fn of(inv: &Invoice) -> Option<InvoiceSummary> {
        Some(InvoiceSummary {
            id: inv.id?,
            number: inv.number.clone()?,
            period: inv.period.clone(),
            status: inv.status,
            issued_at: inv.issued_at,
            currency: inv.currency.clone(),
            total_minor: inv.total_minor,
        })
    }
}

/// The currency plans are priced in (the first offered plan's), for new accounts.
fn platform_currency(r: &impl Reader) -> OpsResult<Currency> {
    let plans = records::list_plans(r)?;
    Ok(plans
        .iter()
        .find(|p| !p.retired)
        .or(plans.first())
        .map(|p| p.prices.currency.clone())
        .unwrap_or_else(Currency::platform_default))
}

/// The stored account, or the one an organization starts with.
fn account_of(r: &impl Reader, org: OrgId) -> OpsResult<BillingAccount> {
    if let Some(a) = ustore::billing_account(r, org)? {
        return Ok(a);
    }
    let (name, prefix) = match records::get_org(r, org)? {
        Some(o) => (o.display_name.clone(), default_prefix(&o.name)),
        None => (org.to_string(), "INV".to_string()),
    };
    Ok(BillingAccount {
        org_id: org,
        name,
        email: String::new(),
        address: String::new(),
        tax_id: String::new(),
        currency: platform_currency(r)?,
        tax_rate_bp: None,
        invoice_prefix: prefix,
        next_number: 1,
    })
}

/// Adds up a workspace's usage in `[from, until)` (whole days) per plan revision.
fn revision_use(
    r: &impl Reader,
    ws: WorkspaceId,
    from: i64,
    until: i64,
) -> OpsResult<BTreeMap<u32, RevisionUse>> {
    let mut out: BTreeMap<u32, RevisionUse> = BTreeMap::new();
    for (_, day) in ustore::usage_days(r, ws, day_of(from), day_of(until - 1) + 1)? {
        for (_, slices) in &day.hours {
            for s in slices {
                let u = out.entry(s.revision).or_default();
                u.billable_s += u64::from(s.billable_s);
                u.node_s += s.node_s;
            }
        }
    }
    Ok(out)
}

/// Overlapping gaps merged and clipped to `[from, until)`.
fn merged_gaps(r: &impl Reader, from: i64, until: i64) -> OpsResult<Vec<MeterGap>> {
    let mut spans: Vec<(i64, i64)> = ustore::gaps_between(r, from, until)?
        .into_iter()
        .map(|(f, u)| (f.max(from), u.min(until)))
        .collect();
    spans.sort();
    let mut merged: Vec<(i64, i64)> = Vec::new();
    for (f, u) in spans {
        match merged.last_mut() {
            Some(last) if f <= last.1 => last.1 = last.1.max(u),
            _ => merged.push((f, u)),
        }
    }
    Ok(merged
        .into_iter()
        .map(|(f, u)| MeterGap {
            from: ts(f),
            until: ts(u),
        })
        .collect())
}

fn ts(unix: i64) -> Timestamp {
    Timestamp::from_second(unix).unwrap_or(Timestamp::UNIX_EPOCH)
}

struct Terms(HashMap<u32, PlanTerms>);

impl Terms {
    fn load(r: &impl Reader) -> OpsResult<Terms> {
        Ok(Terms(
            ustore::all_plan_terms(r)?
                .into_iter()
                .map(|t| (t.revision, t))
                .collect(),
        ))
    }
}

/// The workspaces billed to `org` that existed at some point of `[from, until)`.
fn workspaces_in(
    r: &impl Reader,
    org: OrgId,
    from: i64,
    until: i64,
) -> OpsResult<Vec<BilledWorkspace>> {
    let mut v: Vec<BilledWorkspace> = ustore::billed_workspaces(r, org)?
        .into_iter()
        .filter(|b| {
            b.created_at.as_second() < until && b.deleted_at.is_none_or(|d| d.as_second() >= from)
        })
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    Ok(v)
}

/// Prices an organization's usage in `period` (optionally with extra, projected use).
fn price_period(
    r: &impl Reader,
    terms: &Terms,
    account: &BillingAccount,
    period: Period,
    extra: &HashMap<(WorkspaceId, u32), RevisionUse>,
) -> OpsResult<Invoice> {
    let (from, until) = (period.start(), period.end());
    let mut lines = Vec::new();
    for b in workspaces_in(r, account.org_id, from, until)? {
        let mut uses = revision_use(r, b.id, from, until)?;
        for ((ws, rev), add) in extra {
            if *ws == b.id {
                let u = uses.entry(*rev).or_default();
                u.billable_s += add.billable_s;
                u.node_s += add.node_s;
            }
        }
        for (rev, u) in uses {
            let Some(t) = terms.0.get(&rev) else {
                tracing::warn!(workspace = %b.id, revision = rev, "usage on unknown plan terms is not billed");
                continue;
            };
            lines.extend(price_revision(b.id, &b.name, t, u, period.seconds()));
        }
    }
    let (subtotal, tax, total) = totals(&lines, account.tax_rate_bp);
    Ok(Invoice {
        id: None,
        org_id: account.org_id,
        number: None,
        period: period.to_string(),
        period_start: ts(from),
        period_end: ts(until),
        status: InvoiceStatus::Draft,
        issued_at: None,
        bill_to: account.clone(),
        currency: account.currency.clone(),
        lines,
        subtotal_minor: subtotal,
        tax_rate_bp: account.tax_rate_bp,
        tax_minor: tax,
        total_minor: total,
        gaps: merged_gaps(r, from, until)?,
        void_reason: None,
        voided_at: None,
        voided_by: None,
    })
}

impl Ops {
    fn billing_org(
        &self,
        r: &impl Reader,
        actor: &Actor,
        org: OrgId,
        action: Action,
    ) -> OpsResult<()> {
        if actor.platform_admin && records::get_org(r, org)?.is_none() {
            // Invoices outlive their organization; the operator can still reach them.
            return if ustore::billing_account(r, org)?.is_some() {
                Ok(())
            } else {
                Err(OpsError::NotFound("organization"))
            };
        }
        org_for(r, actor, org, action).map(|_| ())
    }

    pub fn billing_account(&self, actor: &Actor, org: OrgId) -> OpsResult<BillingAccount> {
        let r = self.store.read()?;
        self.billing_org(&r, actor, org, Action::BillingRead)?;
        account_of(&r, org)
    }

    pub fn update_billing_account(
        &self,
        actor: &Actor,
        org: OrgId,
        input: AccountInput,
    ) -> OpsResult<BillingAccount> {
        let currency = Currency::parse(&input.currency).map_err(|m| invalid("currency", m))?;
        let tx = self.store.write()?;
        org_for(&tx, actor, org, Action::BillingManage)?;
        let old = account_of(&tx, org)?;
        let account = BillingAccount {
            org_id: org,
            name: input.name.trim().to_string(),
            email: input.email.trim().to_string(),
            address: input.address.trim().to_string(),
            tax_id: input.tax_id.trim().to_string(),
            currency,
            tax_rate_bp: input.tax_rate_bp,
            invoice_prefix: input.invoice_prefix.trim().to_string(),
            next_number: old.next_number,
        };
        check_account(&account).map_err(|(f, m)| invalid(f, m))?;
        if account.currency != old.currency {
            self.check_currency_change(&tx, org, &account.currency)?;
        }
        ustore::put_billing_account(&tx, &account)?;
        let mut ev = self.event(actor, "billing.account.update", org, Some(org));
        ev.detail = format!(
            "currency={} prefix={}",
            account.currency.code(),
            account.invoice_prefix
        );
        records::append_audit(&tx, &ev)?;
        self.commit(tx, &[])?;
        Ok(account)
    }

    /// An account's currency may change only while nothing is billed in the old one this
    /// month: an invoice has one currency.
    fn check_currency_change(
        &self,
        tx: &WriteTransaction,
        org: OrgId,
        to: &Currency,
    ) -> OpsResult<()> {
        let live = records::list_org_workspaces(tx, org, None, usize::MAX)?;
        let plans: HashMap<String, Plan> = records::list_plans(tx)?
            .into_iter()
            .map(|p| (p.id.clone(), p))
            .collect();
        if let Some((ws, priced_in)) = live.iter().find_map(|w| {
            plans
                .get(&w.plan_id)
                .filter(|p| &p.prices.currency != to)
                .map(|p| (w, p.prices.currency.code()))
        }) {
            return Err(invalid(
                "currency",
                format!(
                    "workspace {} is on a plan priced in {priced_in}; the billing currency must match its plans",
                    ws.name,
                ),
            ));
        }
        let period = Period::containing(self.now());
        let billed = workspaces_in(tx, org, period.start(), period.end())?;
        for b in billed {
            if !revision_use(tx, b.id, period.start(), period.end())?.is_empty()
                && live.iter().all(|w| w.id != b.id)
            {
                return Err(invalid(
                    "currency",
                    "this month already has usage in the old currency; change it after the month closes",
                ));
            }
        }
        Ok(())
    }

    /// A workspace may only be on a plan priced in its organization's billing currency.
    pub(crate) fn check_plan_currency(
        &self,
        r: &impl Reader,
        org: OrgId,
        plan: &Plan,
    ) -> OpsResult<()> {
        let account = account_of(r, org)?;
        if plan.prices.currency != account.currency {
            return Err(invalid(
                "plan",
                format!(
                    "plan {:?} is priced in {} but this organization is billed in {}",
                    plan.id,
                    plan.prices.currency.code(),
                    account.currency.code()
                ),
            ));
        }
        Ok(())
    }

    /// The current month so far, its projection, the daily chart and past invoices.
    pub fn billing_overview(&self, actor: &Actor, org: OrgId) -> OpsResult<BillingOverview> {
        let r = self.store.read()?;
        self.billing_org(&r, actor, org, Action::BillingRead)?;
        let account = account_of(&r, org)?;
        let terms = Terms::load(&r)?;
        let period = Period::containing(self.now());
        let draft = price_period(&r, &terms, &account, period, &HashMap::new())?;
        // Projection: every workspace keeps what the meter last saw until the month ends.
        let mut extra = HashMap::new();
        for ws in records::list_org_workspaces(&r, org, None, usize::MAX)? {
            if let Some(s) = ustore::meter_state(&r, ws.id)?
                && s.seen.billable
            {
                let rest = (period.end() - s.at.max(period.start())).max(0) as u64;
                extra.insert(
                    (ws.id, s.seen.revision),
                    RevisionUse {
                        billable_s: rest,
                        node_s: rest * u64::from(s.seen.nodes),
                    },
                );
            }
        }
        let projected = price_period(&r, &terms, &account, period, &extra)?.total_minor;
        let daily = daily_usage(&r, &terms, org, period)?;
        let invoices = ustore::org_invoices(&r, org)?
            .iter()
            .filter_map(InvoiceSummary::of)
            .collect();
        Ok(BillingOverview {
            account,
            draft,
            projected_total_minor: projected,
            daily,
            invoices,
        })
    }

    /// The draft of a month (the current one, or a past one not yet closed).
    pub fn draft_invoice(&self, actor: &Actor, org: OrgId, period: Period) -> OpsResult<Invoice> {
        let r = self.store.read()?;
        self.billing_org(&r, actor, org, Action::BillingRead)?;
        let account = account_of(&r, org)?;
        price_period(&r, &Terms::load(&r)?, &account, period, &HashMap::new())
    }

    pub fn list_invoices(&self, actor: &Actor, org: OrgId) -> OpsResult<Vec<InvoiceSummary>> {
        let r = self.store.read()?;
        self.billing_org(&r, actor, org, Action::BillingRead)?;
        Ok(ustore::org_invoices(&r, org)?
            .iter()
            .filter_map(InvoiceSummary::of)
            .collect())
    }

    pub fn get_invoice(&self, actor: &Actor, id: InvoiceId) -> OpsResult<Invoice> {
        let r = self.store.read()?;
        let inv = ustore::get_invoice(&r, id)?.ok_or(OpsError::NotFound("invoice"))?;
        let standing = org_standing(&r, actor, inv.org_id)?;
        if !policy::visible(&standing, Action::BillingRead) {
            return Err(OpsError::NotFound("invoice"));
        }
        if !policy::allows(&standing, Action::BillingRead) {
            return Err(OpsError::Forbidden(
                "your role does not allow you to see billing".into(),
            ));
        }
        Ok(inv)
    }

    /// Voids a finalized invoice; it keeps its number (numbers are never reused).
    pub fn void_invoice(&self, actor: &Actor, id: InvoiceId, reason: &str) -> OpsResult<Invoice> {
        require_platform_admin(actor)?;
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > 500 {
            return Err(invalid("reason", "say why, in 1 to 500 characters"));
        }
        let tx = self.store.write()?;
        let mut inv = ustore::get_invoice(&tx, id)?.ok_or(OpsError::NotFound("invoice"))?;
        if inv.status == InvoiceStatus::Void {
            return Err(OpsError::Conflict(format!(
                "invoice {} is already void",
                inv.number.as_deref().unwrap_or("")
            )));
        }
        inv.status = InvoiceStatus::Void;
        inv.void_reason = Some(reason.to_string());
        inv.voided_at = Some(self.now());
        inv.voided_by = Some(actor.user_id);
        ustore::update_invoice(&tx, id, &inv)?;
        let mut ev = self.event(
            actor,
            "invoice.void",
            inv.number.as_deref().unwrap_or(""),
            Some(inv.org_id),
        );
        ev.detail = reason.to_string();
        records::append_audit(&tx, &ev)?;
        self.commit(tx, &[])?;
        Ok(inv)
    }

    /// Finalizes every month that has ended and is not final yet: moves the meter to now
    /// first (so the month's usage is complete), then gives each organization with usage
    /// its numbered invoice. Safe to call any number of times.
    pub fn close_periods(&self) -> OpsResult<Vec<InvoiceId>> {
        self.meter_tick()?;
        let current = Period::containing(self.now());
        let tx = self.store.write()?;
        let closed = match records::get_meta(&tx, CLOSED_THROUGH)? {
            Some(b) => Period::from_key(i32::from_be_bytes(
                b.as_slice().try_into().unwrap_or([0; 4]),
            )),
            None => {
                // A new database bills from now on; nothing before it is invoiced.
                records::put_meta(&tx, CLOSED_THROUGH, &current.prev().key().to_be_bytes())?;
                self.commit(tx, &[])?;
                return Ok(Vec::new());
            }
        };
        let mut made = Vec::new();
        let terms = Terms::load(&tx)?;
        let mut p = closed.next();
        while p < current {
            for org in ustore::billed_orgs(&tx)? {
                if ustore::invoice_for(&tx, org, p.key())?.is_some() {
                    continue;
                }
                let mut account = account_of(&tx, org)?;
                let mut inv = price_period(&tx, &terms, &account, p, &HashMap::new())?;
                if inv.lines.is_empty() {
                    continue;
                }
                let id = InvoiceId::generate();
                inv.id = Some(id);
                inv.number = Some(invoice_number(&account.invoice_prefix, account.next_number));
                inv.status = InvoiceStatus::Finalized;
                inv.issued_at = Some(self.now());
                account.next_number += 1;
                inv.bill_to = account.clone();
                ustore::put_billing_account(&tx, &account)?;
                ustore::insert_invoice(&tx, id, p.key(), &inv)?;
                let ev = AuditEvent {
                    id: AuditId::generate(),
                    time: self.now(),
                    actor: None,
                    actor_label: "system".into(),
                    action: "invoice.finalize".into(),
                    target: inv.number.clone().unwrap_or_default(),
                    org_id: Some(org),
                    outcome: Outcome::Success,
                    source: "billing".into(),
                    detail: format!(
                        "{} total {}",
                        inv.period,
                        inv.currency.format(inv.total_minor)
                    ),
                };
                records::append_audit(&tx, &ev)?;
                made.push(id);
            }
            records::put_meta(&tx, CLOSED_THROUGH, &p.key().to_be_bytes())?;
            p = p.next();
        }
        self.commit(tx, &[])?;
        Ok(made)
    }
}

/// Per day of `period`: workspace-hours, node-hours, allocated and used core-hours.
fn daily_usage(
    r: &impl Reader,
    terms: &Terms,
    org: OrgId,
    period: Period,
) -> OpsResult<Vec<DailyUsage>> {
    let (from, until) = (period.start(), period.end());
    let first = day_of(from);
    let n = ((until - from) / DAY) as usize;
    let mut days = vec![[0f64; 4]; n];
    for b in workspaces_in(r, org, from, until)? {
        for (day, usage) in ustore::usage_days(r, b.id, first, day_of(until - 1) + 1)? {
            let Some(slot) = days.get_mut((day - first) as usize) else {
                continue;
            };
            for (_, slices) in &usage.hours {
                for s in slices {
                    let cpu = terms.0.get(&s.revision).map_or(0, |t| t.quota.cpu_millis);
                    slot[0] += f64::from(s.billable_s) / 3600.0;
                    slot[1] += s.node_s as f64 / 3600.0;
                    slot[2] += (cpu as f64) * f64::from(s.billable_s) / 3_600_000.0;
                    slot[3] += s.used_cpu_milli_s as f64 / 3_600_000.0;
                }
            }
        }
    }
    Ok(days
        .into_iter()
        .enumerate()
        .map(|(i, v)| DailyUsage {
            date: crate::domain::billing::usage::date_of_day(first + i as i32).to_string(),
            workspace_hours: v[0],
            node_hours: v[1],
            allocated_core_hours: v[2],
            used_core_hours: v[3],
        })
        .collect())
}
