//! The meter: keeps every workspace's usage record current. Each workspace has a position
//! (when the meter last observed it and what it saw); moving it to "now" adds the elapsed
//! time, as last seen, to the hourly records. A periodic tick moves every workspace (and
//! samples quota usage from the host); use cases that change what is billed (plan change,
//! state change, node assigned or released, deletion) move that workspace first, inside
//! their own transaction, so changes are prorated to the second.
//!
//! Idempotent by construction: a position and the records it produced are written in one
//! transaction, so a crash loses nothing committed and repeats nothing; two ticks at the
//! same second add zero seconds. Time is only counted between two observations by the same
//! run of kaas: across a restart (or crash) the unobserved span is recorded as a gap and not
//! billed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use redb::WriteTransaction;

use super::{Ops, OpsResult};
use crate::domain::billing::usage::{MeterState, Observation, integrate_into};
use crate::domain::billing::{DayUsage, PlanTerms};
use crate::domain::*;
use crate::store::usage::{self as ustore, BilledWorkspace};
use crate::store::{Reader, records};

/// Quota usage the host reports per workspace (its ResourceQuota's `status.used`).
pub trait UsageSource: Send + Sync {
    /// Usage of the given workspaces that the host has reported; absent = unknown.
    fn quota_usage(&self, workspaces: &[WorkspaceId]) -> HashMap<WorkspaceId, Quota>;
}

/// What one tick did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TickReport {
    pub workspaces: usize,
    /// Workspaces whose unobserved span (a restart) became a gap.
    pub gaps: usize,
    pub with_usage: usize,
}

pub(crate) fn billable(state: WorkspaceState) -> bool {
    matches!(state, WorkspaceState::Ready | WorkspaceState::Updating)
}

impl Ops {
    pub fn set_usage_source(&self, source: Arc<dyn UsageSource>) {
        let _ = self.usage.set(source);
    }

    /// Makes sure every plan's billable terms are frozen in a revision (new databases and
    /// databases from before billing).
    pub fn ensure_plan_revisions(&self) -> OpsResult<usize> {
        let tx = self.store.write()?;
        let mut n = 0;
        for mut plan in records::list_plans(&tx)? {
            if self.freeze_terms(&tx, &mut plan)? {
                records::put_plan(&tx, &plan)?;
                n += 1;
            }
        }
        self.commit(tx, &[])?;
        Ok(n)
    }

    /// Gives `plan` a new revision when its billable terms differ from its current one.
    /// Returns whether the plan changed (the caller stores it).
    pub(crate) fn freeze_terms(&self, tx: &WriteTransaction, plan: &mut Plan) -> OpsResult<bool> {
        if plan.revision != 0
            && let Some(t) = ustore::plan_terms(tx, plan.revision)?
            && !t.differs_from(plan)
        {
            return Ok(false);
        }
        let terms = PlanTerms::of(plan, 0, self.now());
        plan.revision = ustore::add_plan_terms(tx, terms)?;
        Ok(true)
    }

    /// What the meter sees of a workspace now (quota usage carried over from `used`).
    fn observe(
        &self,
        r: &impl Reader,
        ws: &Workspace,
        nodes: u32,
        used: Option<Quota>,
    ) -> OpsResult<Observation> {
        let revision = records::get_plan(r, &ws.plan_id)?
            .map(|p| p.revision)
            .unwrap_or(0);
        Ok(Observation {
            billable: billable(ws.state),
            revision,
            nodes,
            used,
        })
    }

    /// Moves one workspace's meter to now with what it is from now on: called by use cases
    /// in their transaction, after they changed the workspace.
    pub(crate) fn meter_workspace(&self, tx: &WriteTransaction, ws: &Workspace) -> OpsResult<()> {
        let nodes = records::all_node_assignments(tx)?
            .iter()
            .filter(|a| a.workspace_id == ws.id)
            .count() as u32;
        let prev_used = ustore::meter_state(tx, ws.id)?.and_then(|s| s.seen.used);
        let seen = self.observe(tx, ws, nodes, prev_used)?;
        ensure_billed(tx, ws)?;
        let mut days = BTreeMap::new();
        let gap = self.advance(tx, ws.id, seen, &mut days)?;
        write_days(tx, ws.id, days)?;
        if let Some((from, until)) = gap {
            ustore::add_gap(tx, from, until)?;
        }
        Ok(())
    }

    /// The last move of a workspace's meter, when its record goes away.
    pub(crate) fn meter_final(&self, tx: &WriteTransaction, ws: &Workspace) -> OpsResult<()> {
        let mut gone = ws.clone();
        gone.state = WorkspaceState::Deleting;
        self.meter_workspace(tx, &gone)?;
        ustore::delete_meter_state(tx, ws.id)?;
        if let Some(mut b) = ustore::billed_workspace(tx, ws.org_id, ws.id)? {
            b.deleted_at = Some(self.now());
            ustore::put_billed_workspace(tx, &b)?;
        }
        Ok(())
    }

    /// Adds the time since the workspace's last observation (as then seen) to `days` and
    /// records `seen` as its new position. Returns the gap when the last observation was
    /// made by another run of kaas.
    fn advance(
        &self,
        tx: &WriteTransaction,
        ws: WorkspaceId,
        seen: Observation,
        days: &mut BTreeMap<i32, DayUsage>,
    ) -> OpsResult<Option<(i64, i64)>> {
        let now = self.now().as_second();
        let prev = ustore::meter_state(tx, ws)?;
        let mut gap = None;
        let at = match prev {
            Some(p) if p.run != self.meter_run => {
                if now > p.at {
                    gap = Some((p.at, now));
                }
                now.max(p.at)
            }
            Some(p) => {
                if now > p.at {
                    integrate_into(days, p.at, now, &p.seen);
                }
                // A clock that went back: count nothing until it passes the position.
                now.max(p.at)
            }
            None => now,
        };
        ustore::put_meter_state(
            tx,
            ws,
            &MeterState {
                run: self.meter_run,
                at,
                seen,
            },
        )?;
        Ok(gap)
    }

    /// Moves every workspace's meter to now, sampling the host's quota usage.
    pub fn meter_tick(&self) -> OpsResult<TickReport> {
        let tx = self.store.write()?;
        let workspaces = records::all_workspaces(&tx)?;
        let plans: HashMap<String, u32> = records::list_plans(&tx)?
            .into_iter()
            .map(|p| (p.id, p.revision))
            .collect();
        let mut nodes: HashMap<WorkspaceId, u32> = HashMap::new();
        for a in records::all_node_assignments(&tx)? {
            *nodes.entry(a.workspace_id).or_default() += 1;
        }
        let ids: Vec<WorkspaceId> = workspaces.iter().map(|w| w.id).collect();
        let used = self
            .usage
            .get()
            .map(|s| s.quota_usage(&ids))
            .unwrap_or_default();
        let mut report = TickReport {
            workspaces: workspaces.len(),
            with_usage: used.len(),
            ..Default::default()
        };
        let mut widest_gap: Option<(i64, i64)> = None;
        for ws in &workspaces {
            ensure_billed(&tx, ws)?;
            let seen = Observation {
                billable: billable(ws.state),
                revision: plans.get(&ws.plan_id).copied().unwrap_or(0),
                nodes: nodes.get(&ws.id).copied().unwrap_or(0),
                used: used.get(&ws.id).copied(),
            };
            let mut days = BTreeMap::new();
            if let Some((from, until)) = self.advance(&tx, ws.id, seen, &mut days)? {
                report.gaps += 1;
                widest_gap = Some(match widest_gap {
                    Some((f, u)) => (f.min(from), u.max(until)),
                    None => (from, until),
                });
            }
            write_days(&tx, ws.id, days)?;
        }
        if let Some((from, until)) = widest_gap {
            ustore::add_gap(&tx, from, until)?;
        }
        self.commit(tx, &[])?;
        Ok(report)
    }
}

/// Puts the workspace in its organization's ledger of billed workspaces (kept after the
/// workspace is deleted, so invoices can still name it).
fn ensure_billed(tx: &WriteTransaction, ws: &Workspace) -> OpsResult<()> {
    if ustore::billed_workspace(tx, ws.org_id, ws.id)?.is_none() {
        ustore::put_billed_workspace(
            tx,
            &BilledWorkspace {
                id: ws.id,
                org_id: ws.org_id,
                name: ws.name.clone(),
                created_at: ws.created_at,
                deleted_at: None,
            },
        )?;
    }
    Ok(())
}

/// Adds freshly integrated days onto the stored ones.
fn write_days(
    tx: &WriteTransaction,
    ws: WorkspaceId,
    days: BTreeMap<i32, DayUsage>,
) -> OpsResult<()> {
    for (day, add) in days {
        let mut stored = ustore::usage_day(tx, ws, day)?.unwrap_or_default();
        for (hour, slices) in add.hours {
            for s in slices {
                stored.merge(hour, &s);
            }
        }
        ustore::put_usage_day(tx, ws, day, &stored)?;
    }
    Ok(())
}
