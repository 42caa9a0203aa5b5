//! Billing rules: money and rounding, plan prices and their revisions, how observed time
//! becomes hourly usage, and how a month's usage becomes an invoice. Pure: the meter loop
//! and storage live in `ops::billing` and `store::usage`.

pub mod invoice;
pub mod money;
pub mod prices;
#[cfg(test)]
mod props;
pub mod usage;

pub use invoice::{BillingAccount, Invoice, InvoiceLine, InvoiceStatus, Meter, MeterGap, Period};
pub use money::Currency;
pub use prices::{PlanPrices, PlanTerms, Rate};
pub use usage::{DayUsage, HourSlice, Observation};
