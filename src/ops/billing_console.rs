//! Read models for the console's billing pages. Each page asks for what it shows in one call;
//! everything is fetched through the checked billing use cases first (so a page is refused
//! exactly as the API would refuse it), and the `can_*` flags only decide which controls
//! are shown — the write use cases check again.

use jiff::Timestamp;

use super::authz::org_standing;
use super::billing::BillingOverview;
use super::{Actor, Ops, OpsResult};
use crate::domain::billing::{BillingAccount, Invoice, InvoiceStatus, Period};
use crate::domain::policy::{self, Action};
use crate::domain::{InvoiceId, OrgId};
use crate::store::{Reader, records};

/// The organization a billing page belongs to. Invoices outlive their organization, so a
/// platform administrator may see one whose organization is gone (`exists` false).
#[derive(Debug, Clone)]
pub struct BillingOrg {
    pub id: OrgId,
    pub display_name: String,
    pub exists: bool,
}

pub struct BillingPage {
    pub org: BillingOrg,
    pub overview: BillingOverview,
    /// Whether the caller may change the billing account (owners).
    pub can_manage_account: bool,
    /// The time the page was made (the current month runs until `overview.draft`'s end).
    pub now: Timestamp,
}

pub struct AccountPage {
    pub org: BillingOrg,
    pub account: BillingAccount,
    pub can_manage: bool,
}

pub struct InvoicePage {
    pub org: BillingOrg,
    pub invoice: Invoice,
    /// Whether the caller may void it: platform administrators, while it is finalized.
    pub can_void: bool,
}

fn billing_org(r: &impl Reader, org: OrgId, fallback: &str) -> OpsResult<BillingOrg> {
    Ok(match records::get_org(r, org)? {
        Some(o) => BillingOrg {
            id: org,
            display_name: o.display_name,
            exists: true,
        },
        None => BillingOrg {
            id: org,
            display_name: fallback.to_string(),
            exists: false,
        },
    })
}

impl Ops {
    fn allowed_on_org(&self, actor: &Actor, org: OrgId, action: Action) -> OpsResult<bool> {
        let r = self.store.read()?;
        Ok(policy::allows(&org_standing(&r, actor, org)?, action))
    }

    /// The billing overview page: this month so far, the projection, the daily chart and
    /// the invoices.
    pub fn console_billing(&self, actor: &Actor, org: OrgId) -> OpsResult<BillingPage> {
        let overview = self.billing_overview(actor, org)?;
        let billing_org = billing_org(&self.store.read()?, org, &overview.account.name)?;
        Ok(BillingPage {
            org: billing_org,
            can_manage_account: self.allowed_on_org(actor, org, Action::BillingManage)?,
            now: self.now(),
            overview,
        })
    }

    /// The billing account page (read-only for those who may not change it).
    pub fn console_billing_account(&self, actor: &Actor, org: OrgId) -> OpsResult<AccountPage> {
        let account = self.billing_account(actor, org)?;
        Ok(AccountPage {
            org: billing_org(&self.store.read()?, org, &account.name)?,
            can_manage: self.allowed_on_org(actor, org, Action::BillingManage)?,
            account,
        })
    }

    /// One finalized or void invoice.
    pub fn console_invoice(&self, actor: &Actor, id: InvoiceId) -> OpsResult<InvoicePage> {
        let invoice = self.get_invoice(actor, id)?;
        let org = billing_org(&self.store.read()?, invoice.org_id, &invoice.bill_to.name)?;
        let can_void = invoice.status == InvoiceStatus::Finalized
            && self.allowed_on_org(actor, invoice.org_id, Action::InvoiceVoid)?;
        Ok(InvoicePage {
            org,
            invoice,
            can_void,
        })
    }

    /// The current month's draft, laid out like an invoice.
    pub fn console_draft(&self, actor: &Actor, org: OrgId) -> OpsResult<InvoicePage> {
        let invoice = self.draft_invoice(actor, org, Period::containing(self.now()))?;
        Ok(InvoicePage {
            org: billing_org(&self.store.read()?, org, &invoice.bill_to.name)?,
            invoice,
            can_void: false,
        })
    }
}
