//! Property tests for proration and rounding: integrating a span in pieces equals
//! integrating it whole, prorated amounts stay within half a minor unit of the exact value
//! and never decrease with time, a full month costs exactly the base price, and rounding
//! is half away from zero.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::invoice::{RevisionUse, price_revision};
use super::money::round_div;
use super::prices::{PlanPrices, PlanTerms, Rate};
use super::usage::{DayUsage, Observation, integrate_into};
use crate::domain::WorkspaceId;
use crate::domain::plan::Quota;

fn terms(base: i64, cpu_price: i64, included: u64, node_price: i64) -> PlanTerms {
    PlanTerms {
        revision: 1,
        plan_id: "p".into(),
        display_name: "P".into(),
        quota: Quota {
            cpu_millis: 1_500,
            memory_mib: 2_048,
            storage_gib: 10,
            pods: 10,
        },
        prices: PlanPrices {
            base_monthly_minor: base,
            cpu_core_hour: Rate {
                unit_price_micros: cpu_price,
                included,
            },
            node_hour: Rate {
                unit_price_micros: node_price,
                included: 0,
            },
            ..PlanPrices::default()
        },
        from: jiff::Timestamp::UNIX_EPOCH,
    }
}

fn total(days: &BTreeMap<i32, DayUsage>) -> (u64, u64, u64) {
    let mut t = (0, 0, 0);
    for d in days.values() {
        for (_, slices) in &d.hours {
            for s in slices {
                t.0 += u64::from(s.observed_s);
                t.1 += u64::from(s.billable_s);
                t.2 += s.node_s;
            }
        }
    }
    t
}

proptest! {
    #[test]
    fn integrating_in_pieces_equals_integrating_whole(
        from in 1_700_000_000i64..1_800_000_000,
        len in 0i64..10_000_000,
        cut in 0.0f64..1.0,
        nodes in 0u32..4,
        billable: bool,
    ) {
        let until = from + len;
        let mid = from + (len as f64 * cut) as i64;
        let o = Observation { billable, revision: 7, nodes, used: None };
        let mut whole = BTreeMap::new();
        integrate_into(&mut whole, from, until, &o);
        let mut parts = BTreeMap::new();
        integrate_into(&mut parts, from, mid, &o);
        integrate_into(&mut parts, mid, until, &o);
        prop_assert_eq!(&whole, &parts);
        let (observed, bill, node_s) = total(&whole);
        prop_assert_eq!(observed, len as u64);
        prop_assert_eq!(bill, if billable { len as u64 } else { 0 });
        prop_assert_eq!(node_s, bill * u64::from(nodes));
    }

    #[test]
    fn prorated_base_is_within_half_a_minor_unit_and_monotone(
        base in 0i64..10_000_000,
        month_days in 28i64..=31,
        b in 0u64..=2_678_400,
    ) {
        let month = month_days * 86_400;
        let b = b.min(month as u64);
        let t = terms(base, 0, 0, 0);
        let amount = |b: u64| {
            price_revision(WorkspaceId(1), "w", &t, RevisionUse { billable_s: b, node_s: 0 }, month)
                .first()
                .map_or(0, |l| l.amount_minor)
        };
        let a = amount(b);
        // |a − base·b/month| ≤ 1/2, in integers.
        let exact_num = i128::from(base) * i128::from(b);
        prop_assert!((i128::from(a) * i128::from(month) - exact_num).abs() * 2 <= i128::from(month));
        if b < month as u64 {
            prop_assert!(amount(b + 1) >= a);
        }
        prop_assert_eq!(amount(month as u64), base);
    }

    #[test]
    fn rate_lines_never_go_negative_and_respect_the_included_amount(
        price in 0i64..1_000_000,
        included in 0u64..5_000,
        b in 1u64..2_592_000,
        node_s in 0u64..10_000_000,
    ) {
        let month = 2_592_000;
        let t = terms(1_000, price, included, price);
        let lines = price_revision(WorkspaceId(1), "w", &t, RevisionUse { billable_s: b, node_s }, month);
        for l in &lines {
            prop_assert!(l.amount_minor >= 0);
        }
        // CPU use is 1.5 cores × b; if the prorated inclusion covers it, there is no CPU line.
        let used_milli_s = 1_500u128 * u128::from(b);
        let included_milli_s = u128::from(included) * 3_600_000 * u128::from(b) / month as u128;
        let has_cpu = lines.iter().any(|l| l.meter == super::Meter::CpuCoreHours);
        if included_milli_s >= used_milli_s || price == 0 {
            prop_assert!(!has_cpu);
        }
    }

    #[test]
    fn splitting_usage_into_lines_costs_at_most_half_a_unit_per_line(
        base in 0i64..1_000_000,
        a in 0u64..1_296_000,
        b in 0u64..1_296_000,
    ) {
        let month = 2_592_000;
        let t = terms(base, 0, 0, 0);
        let one = |s: u64| price_revision(WorkspaceId(1), "w", &t, RevisionUse { billable_s: s, node_s: 0 }, month)
            .first().map_or(0, |l| l.amount_minor);
        let split = one(a) + one(b);
        let whole = one(a + b);
        prop_assert!((split - whole).abs() <= 1);
    }

    #[test]
    fn rounding_is_nearest_with_halves_away_from_zero(n in -1_000_000_000i128..1_000_000_000, d in 1i128..100_000) {
        let q = round_div(n, d);
        prop_assert!((q * d - n).abs() * 2 <= d);
        if (n % d).abs() * 2 == d {
            prop_assert_eq!(q.signum(), n.signum());
            prop_assert!(q.abs() * d > n.abs());
        }
    }
}
