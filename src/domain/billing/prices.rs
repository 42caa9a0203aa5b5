//! What a plan costs: a monthly base price per workspace and per-unit rates for dedicated
//! node-hours and allocated quota, each with an amount included per workspace-month.
//! A plan's billable terms (prices and quota) are frozen into numbered revisions, so usage
//! is always priced with the terms in force when it happened.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::money::{Currency, MAX_AMOUNT};
use crate::domain::plan::{Plan, Quota};

/// A per-unit price with an included amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    /// Price of one unit in millionths of the currency's major unit (12500 = 0.0125 EUR).
    pub unit_price_micros: i64,
    /// Units included per workspace-month before the rate applies. Prorated by how much of
    /// the month the workspace was billable on the plan.
    #[serde(default)]
    pub included: u64,
}

/// A plan's prices. Money is in integer minor units (base) or millionths (rates).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanPrices {
    pub currency: Currency,
    /// Monthly price of one workspace in minor units (4900 = 49.00), prorated to the second
    /// over the calendar month.
    pub base_monthly_minor: i64,
    /// Per CPU core-hour of allocated quota.
    #[serde(default)]
    pub cpu_core_hour: Rate,
    /// Per GiB-hour of allocated memory quota.
    #[serde(default)]
    pub memory_gib_hour: Rate,
    /// Per GiB-hour of allocated storage quota.
    #[serde(default)]
    pub storage_gib_hour: Rate,
    /// Per dedicated node-hour.
    #[serde(default)]
    pub node_hour: Rate,
}

impl Default for PlanPrices {
    fn default() -> Self {
        PlanPrices {
            currency: Currency::platform_default(),
            base_monthly_minor: 0,
            cpu_core_hour: Rate::default(),
            memory_gib_hour: Rate::default(),
            storage_gib_hour: Rate::default(),
            node_hour: Rate::default(),
        }
    }
}

/// The currency of the seeded plans and of new billing accounts.
pub const DEFAULT_CURRENCY: &str = "EUR";

impl PlanPrices {
    /// The rule a price list must satisfy; the error names the field.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(0..=MAX_AMOUNT).contains(&self.base_monthly_minor) {
            return Err((
                "prices.base_monthly_minor",
                format!("must be between 0 and {MAX_AMOUNT}"),
            ));
        }
        for (field, r) in [
            ("prices.cpu_core_hour", self.cpu_core_hour),
            ("prices.memory_gib_hour", self.memory_gib_hour),
            ("prices.storage_gib_hour", self.storage_gib_hour),
            ("prices.node_hour", self.node_hour),
        ] {
            if !(0..=MAX_AMOUNT).contains(&r.unit_price_micros) {
                return Err((
                    field,
                    format!("unit_price_micros must be between 0 and {MAX_AMOUNT}"),
                ));
            }
            if r.included > 1_000_000_000 {
                return Err((field, "included must be at most 1000000000".into()));
            }
        }
        Ok(())
    }
}

/// A frozen copy of a plan's billable terms. Usage records point at one by number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PlanTerms {
    pub revision: u32,
    pub plan_id: String,
    pub display_name: String,
    pub quota: Quota,
    pub prices: PlanPrices,
    pub from: Timestamp,
}

impl PlanTerms {
    pub fn of(plan: &Plan, revision: u32, from: Timestamp) -> PlanTerms {
        PlanTerms {
            revision,
            plan_id: plan.id.clone(),
            display_name: plan.display_name.clone(),
            quota: plan.quota,
            prices: plan.prices.clone(),
            from,
        }
    }

    /// Whether `plan` bills differently from these terms (so it needs a new revision).
    pub fn differs_from(&self, plan: &Plan) -> bool {
        self.quota != plan.quota
            || self.prices != plan.prices
            || self.display_name != plan.display_name
    }
}

/// Prices for the seeded plans (EUR): base per month, then rates above what is included.
pub fn default_prices(plan_id: &str) -> PlanPrices {
    let rate = |micros, included| Rate {
        unit_price_micros: micros,
        included,
    };
    let base = PlanPrices::default();
    match plan_id {
        "starter" => PlanPrices {
            base_monthly_minor: 1_900,
            ..base
        },
        "standard" => PlanPrices {
            base_monthly_minor: 9_900,
            cpu_core_hour: rate(10_000, 2_000),
            memory_gib_hour: rate(2_000, 4_000),
            storage_gib_hour: rate(100, 0),
            ..base
        },
        _ => PlanPrices {
            base_monthly_minor: 49_900,
            cpu_core_hour: rate(8_000, 8_000),
            memory_gib_hour: rate(1_500, 16_000),
            storage_gib_hour: rate(80, 0),
            node_hour: rate(250_000, 0),
            ..base
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_are_validated_by_field() {
        let mut p = default_prices("standard");
        assert!(p.validate().is_ok());
        p.node_hour.unit_price_micros = -1;
        assert_eq!(p.validate().unwrap_err().0, "prices.node_hour");
        let mut p = default_prices("standard");
        p.base_monthly_minor = MAX_AMOUNT + 1;
        assert_eq!(p.validate().unwrap_err().0, "prices.base_monthly_minor");
    }
}
