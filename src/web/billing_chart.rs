//! The daily usage chart of the billing page, drawn on the server as inline SVG: one bar per
//! day of allocated CPU core-hours with the core-hours pods requested drawn inside it. No
//! script and no style attributes (the CSP forbids both): geometry is SVG attributes,
//! colours are CSS classes. The same numbers are offered as a table for screen readers and
//! for anyone who wants the figures.

use crate::ops::billing::DailyUsage;

/// The SVG's coordinate system; the element scales to the card's width.
pub const WIDTH: f64 = 720.0;
pub const HEIGHT: f64 = 230.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 22.0;
const BOTTOM: f64 = 26.0;

pub struct Chart {
    pub bars: Vec<Bar>,
    pub y_ticks: Vec<Tick>,
    pub x_labels: Vec<Tick>,
    /// The x-axis line: left, right, and its y.
    pub axis: (String, String, String),
    /// A sentence for `<desc>`: totals and the busiest day.
    pub summary: String,
    /// One row per day so far, for the table alternative.
    pub rows: Vec<Row>,
    /// Nothing was used this month yet (the page says so instead of drawing nothing).
    pub empty: bool,
}

pub struct Bar {
    pub x: String,
    pub width: String,
    pub y: String,
    pub height: String,
    pub used_x: String,
    pub used_width: String,
    pub used_y: String,
    pub used_height: String,
    /// The tooltip and accessible name of the day.
    pub title: String,
}

pub struct Tick {
    pub x: String,
    pub y: String,
    pub label: String,
}

pub struct Row {
    pub date: String,
    pub workspace_hours: String,
    pub allocated: String,
    pub used: String,
    pub node_hours: String,
}

fn n(v: f64) -> String {
    format!("{v:.1}")
}

/// A number as a label: no decimals when whole, otherwise as many as it takes to show a
/// small value (a workspace minutes old has a hundredth of a core-hour).
fn label(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        let digits = (-v.abs().log10()).ceil().clamp(1.0, 6.0) as usize + 1;
        format!("{v:.digits$}")
    }
}

/// The smallest round number (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8 × 10^k) at least `v`, so the
/// tallest bar fills most of the plot (1 for nothing).
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let base = 10f64.powf(v.log10().floor());
    [1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
        .into_iter()
        .map(|m| m * base)
        .find(|c| *c >= v - 1e-9)
        .unwrap_or(10.0 * base)
}

/// "2026-11-03" → "Nov 3".
fn short_date(date: &str) -> String {
    date.parse::<jiff::civil::Date>()
        .map(|d| d.strftime("%b %-d").to_string())
        .unwrap_or_else(|_| date.to_string())
}

/// The chart of a month's days; days after `today` (`YYYY-MM-DD`) are left blank.
pub fn chart(days: &[DailyUsage], today: &str) -> Chart {
    let so_far: Vec<&DailyUsage> = days.iter().filter(|d| d.date.as_str() <= today).collect();
    let peak = so_far
        .iter()
        .map(|d| d.allocated_core_hours.max(d.used_core_hours))
        .fold(0.0, f64::max);
    let top = nice_ceiling(peak);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let base = TOP + plot_h;
    let slot = plot_w / days.len().max(1) as f64;
    let y_of = |v: f64| base - (v / top).clamp(0.0, 1.0) * plot_h;
    let bars = so_far
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let x = LEFT + slot * i as f64;
            let (w, uw) = (slot * 0.72, slot * 0.36);
            Bar {
                x: n(x + (slot - w) / 2.0),
                width: n(w),
                y: n(y_of(d.allocated_core_hours)),
                height: n(base - y_of(d.allocated_core_hours)),
                used_x: n(x + (slot - uw) / 2.0),
                used_width: n(uw),
                used_y: n(y_of(d.used_core_hours)),
                used_height: n(base - y_of(d.used_core_hours)),
                title: format!(
                    "{}: {} core-hours allocated, {} requested by pods",
                    short_date(&d.date),
                    n(d.allocated_core_hours),
                    n(d.used_core_hours)
                ),
            }
        })
        .collect();
    let y_ticks = [0.0, top / 2.0, top]
        .into_iter()
        .map(|v| Tick {
            x: n(LEFT - 6.0),
            y: n(y_of(v)),
            label: label(v),
        })
        .collect();
    // Day 1, every fifth day, and the last unless it would crowd the fifth before it.
    let last = days.len();
    let x_labels = (1..=last)
        .filter(|d| *d == 1 || d % 5 == 0 || (*d == last && d % 5 >= 3))
        .map(|d| Tick {
            x: n(LEFT + slot * (d as f64 - 0.5)),
            y: n(base + 17.0),
            label: d.to_string(),
        })
        .collect();
    let total = |f: fn(&DailyUsage) -> f64| so_far.iter().map(|d| f(d)).sum::<f64>();
    let allocated = total(|d| d.allocated_core_hours);
    let used = total(|d| d.used_core_hours);
    let busiest = so_far
        .iter()
        .max_by(|a, b| a.allocated_core_hours.total_cmp(&b.allocated_core_hours))
        .filter(|d| d.allocated_core_hours > 0.0);
    let summary = match busiest {
        Some(b) => format!(
            "So far this month: {} CPU core-hours allocated and {} requested by pods; the busiest day was {} with {} core-hours allocated.",
            n(allocated),
            n(used),
            short_date(&b.date),
            n(b.allocated_core_hours)
        ),
        None => "No CPU core-hours allocated so far this month.".to_string(),
    };
    let rows = so_far
        .iter()
        .map(|d| Row {
            date: d.date.clone(),
            workspace_hours: n(d.workspace_hours),
            allocated: n(d.allocated_core_hours),
            used: n(d.used_core_hours),
            node_hours: n(d.node_hours),
        })
        .collect();
    Chart {
        bars,
        y_ticks,
        x_labels,
        axis: (n(LEFT), n(WIDTH - RIGHT), n(base)),
        summary,
        rows,
        empty: allocated <= 0.0 && used <= 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(date: &str, alloc: f64, used: f64) -> DailyUsage {
        DailyUsage {
            date: date.into(),
            workspace_hours: alloc / 2.0,
            node_hours: 0.0,
            allocated_core_hours: alloc,
            used_core_hours: used,
        }
    }

    #[test]
    fn small_values_keep_enough_decimals_to_differ() {
        assert_eq!(label(125.0), "125");
        assert_eq!(label(2.5), "2.5");
        assert_eq!(label(0.5), "0.50");
        assert_eq!(label(0.015), "0.015");
        assert_eq!(label(0.0075), "0.0075");
        assert_ne!(label(0.004), label(0.008));
    }

    #[test]
    fn nice_ceilings() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(7.0), 8.0);
        assert_eq!(nice_ceiling(48.0), 50.0);
        assert_eq!(nice_ceiling(50.0), 50.0);
        assert_eq!(nice_ceiling(51.0), 60.0);
        assert_eq!(nice_ceiling(245.0), 250.0);
        assert_eq!(nice_ceiling(810.0), 1000.0);
    }

    #[test]
    fn bars_stop_at_today_and_scale_to_the_peak() {
        let days: Vec<DailyUsage> = (1..=30)
            .map(|i| day(&format!("2026-11-{i:02}"), f64::from(i), 1.0))
            .collect();
        let c = chart(&days, "2026-11-10");
        assert_eq!(c.bars.len(), 10);
        assert_eq!(c.rows.len(), 10);
        // The peak (10) is the top of the scale: its bar fills the plot.
        assert_eq!(c.y_ticks[2].label, "10");
        assert_eq!(c.bars[9].y, n(TOP));
        assert!(
            c.bars[0]
                .title
                .starts_with("Nov 1: 1.0 core-hours allocated")
        );
        let labels: Vec<&str> = c.x_labels.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels, ["1", "5", "10", "15", "20", "25", "30"]);
        assert!(c.summary.contains("busiest day was Nov 10"));
        assert!(!c.empty);
        assert!(chart(&days, "2026-10-31").empty);
    }
}
