//! Usage as the meter records it: the time between two observations of a workspace is
//! attributed to what the earlier one saw (state, plan revision, dedicated nodes, quota
//! usage reported by the host), split at hour boundaries and summed into per-hour slices,
//! one per plan revision seen in the hour. Everything is whole seconds and integer
//! unit-seconds, so sums are exact and splitting a span never changes a total.

use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::plan::Quota;

pub const HOUR: i64 = 3_600;
pub const DAY: i64 = 86_400;

/// What the meter saw of a workspace at one instant; holds until the next observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// Ready or Updating: the only states that are billed.
    pub billable: bool,
    pub revision: u32,
    /// Dedicated nodes assigned.
    pub nodes: u32,
    /// The host's ResourceQuota `status.used` for the workspace, when known.
    #[serde(default)]
    pub used: Option<Quota>,
}

/// Where the meter left off with a workspace: when it last observed it, what it saw, and
/// which run of kaas saw it. Time is only counted between two observations by the same
/// run; across a restart the unobserved span becomes a gap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeterState {
    pub run: u128,
    /// Unix seconds of the last observation.
    pub at: i64,
    pub seen: Observation,
}

/// One plan revision's share of one hour of one workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct HourSlice {
    pub revision: u32,
    /// Seconds the meter observed (billable or not). 3600 minus the sum over an hour's
    /// slices is time nobody observed: kaas was not running.
    pub observed_s: u32,
    /// Seconds in Ready or Updating.
    pub billable_s: u32,
    /// Dedicated node-seconds while billable.
    pub node_s: u64,
    /// Seconds for which the host reported quota usage, and the usage integrated over them.
    pub used_s: u32,
    pub used_cpu_milli_s: u64,
    pub used_memory_mib_s: u64,
    pub used_storage_gib_s: u64,
}

impl HourSlice {
    fn add(&mut self, seconds: u32, o: &Observation) {
        let s = u64::from(seconds);
        self.observed_s += seconds;
        if o.billable {
            self.billable_s += seconds;
            self.node_s += s * u64::from(o.nodes);
        }
        if let Some(u) = o.used {
            self.used_s += seconds;
            self.used_cpu_milli_s += s * u.cpu_millis;
            self.used_memory_mib_s += s * u.memory_mib;
            self.used_storage_gib_s += s * u.storage_gib;
        }
    }
}

/// One UTC day of one workspace: up to 24 hours, each with its slices.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DayUsage {
    /// (hour of the day 0–23, slices in the order their revisions first appeared).
    pub hours: Vec<(u8, Vec<HourSlice>)>,
}

impl DayUsage {
    /// Adds another slice of the same hour and revision onto this day.
    pub fn merge(&mut self, hour: u8, s: &HourSlice) {
        let t = self.slice(hour, s.revision);
        t.observed_s += s.observed_s;
        t.billable_s += s.billable_s;
        t.node_s += s.node_s;
        t.used_s += s.used_s;
        t.used_cpu_milli_s += s.used_cpu_milli_s;
        t.used_memory_mib_s += s.used_memory_mib_s;
        t.used_storage_gib_s += s.used_storage_gib_s;
    }

    // Both indexes were just found or made (binary search / insert, position / push).
    #[allow(clippy::indexing_slicing)]
    fn slice(&mut self, hour: u8, revision: u32) -> &mut HourSlice {
        let idx = match self.hours.binary_search_by_key(&hour, |(h, _)| *h) {
            Ok(i) => i,
            Err(i) => {
                self.hours.insert(i, (hour, Vec::new()));
                i
            }
        };
        let slices = &mut self.hours[idx].1;
        let pos = match slices.iter().position(|s| s.revision == revision) {
            Some(p) => p,
            None => {
                slices.push(HourSlice {
                    revision,
                    ..Default::default()
                });
                slices.len() - 1
            }
        };
        &mut slices[pos]
    }
}

/// Days since the Unix epoch of a Unix time in seconds (UTC).
pub fn day_of(unix: i64) -> i32 {
    unix.div_euclid(DAY) as i32
}

/// The pieces of `[from, until)` (Unix seconds) as (day, hour of day, seconds), split at
/// hour boundaries.
pub fn split_hours(from: i64, until: i64) -> Vec<(i32, u8, u32)> {
    let mut out = Vec::new();
    let mut t = from;
    while t < until {
        let hour_end = (t.div_euclid(HOUR) + 1) * HOUR;
        let end = hour_end.min(until);
        out.push((
            day_of(t),
            (t.rem_euclid(DAY) / HOUR) as u8,
            (end - t) as u32,
        ));
        t = end;
    }
    out
}

/// Adds `[from, until)` observed as `o` into a map of day records.
pub fn integrate_into(
    days: &mut std::collections::BTreeMap<i32, DayUsage>,
    from: i64,
    until: i64,
    o: &Observation,
) {
    for (d, h, s) in split_hours(from, until) {
        days.entry(d).or_default().slice(h, o.revision).add(s, o);
    }
}

/// The UTC date of a day number.
pub fn date_of_day(day: i32) -> Date {
    Timestamp::from_second(i64::from(day) * DAY)
        .map(|t| t.to_zoned(jiff::tz::TimeZone::UTC).date())
        .unwrap_or(Date::ZERO)
}

/// One exported usage record: a workspace's use of one meter in one hour.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct UsageRecord {
    pub workspace_id: String,
    pub workspace: String,
    pub hour: Timestamp,
    pub plan_id: String,
    pub plan_revision: u32,
    pub meter: &'static str,
    /// Decimal quantity in `unit` (exact: unit-seconds divided out, 6 places).
    pub quantity: String,
    pub unit: &'static str,
    /// Seconds of the hour the meter observed this workspace.
    pub observed_seconds: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_split_at_hour_boundaries() {
        // 00:59:30 → 02:00:10 on day 0.
        let parts = split_hours(3570, 7210);
        assert_eq!(parts, vec![(0, 0, 30), (0, 1, 3600), (0, 2, 10)]);
        // Across midnight.
        assert_eq!(split_hours(DAY - 5, DAY + 5), vec![(0, 23, 5), (1, 0, 5)]);
        assert!(split_hours(10, 10).is_empty());
    }

    #[test]
    fn slices_keep_revisions_apart_and_sum_exactly() {
        let mut days = std::collections::BTreeMap::new();
        let a = Observation {
            billable: true,
            revision: 1,
            nodes: 2,
            used: Some(Quota {
                cpu_millis: 500,
                memory_mib: 100,
                storage_gib: 1,
                pods: 3,
            }),
        };
        let b = Observation {
            revision: 2,
            used: None,
            ..a
        };
        integrate_into(&mut days, 0, 1800, &a);
        integrate_into(&mut days, 1800, 3600, &b);
        integrate_into(
            &mut days,
            3600,
            3601,
            &Observation {
                billable: false,
                ..b
            },
        );
        let d = &days[&0];
        assert_eq!(d.hours.len(), 2);
        let h0 = &d.hours[0].1;
        assert_eq!(h0[0].revision, 1);
        assert_eq!(
            (h0[0].billable_s, h0[0].node_s, h0[0].used_cpu_milli_s),
            (1800, 3600, 900_000)
        );
        assert_eq!((h0[1].revision, h0[1].used_s), (2, 0));
        let h1 = &d.hours[1].1[0];
        assert_eq!((h1.observed_s, h1.billable_s, h1.node_s), (1, 0, 0));
    }
}
