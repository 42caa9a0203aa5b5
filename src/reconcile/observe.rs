//! What a workspace's state is, decided from what the pass saw: K3K's typed Cluster status
//! (`status.phase`, condition `Ready`), whether kaas just changed the Cluster and K3K has
//! visibly reacted, whether the servers are rolled out, and K3K's node agents. Pure, so
//! every combination is a plain test.

use std::time::{Duration, Instant};

use crate::domain::WorkspaceState;
use crate::host::k3k::ClusterStatus;
use crate::host::k3k::cluster::ClusterStatusPhase;

/// What K3K's shared-mode node agents (DaemonSet `k3k-<n>-kubelet`) look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Agents {
    /// At least one is ready (or the mode has none).
    Ready,
    /// The DaemonSet controller finds no node for them.
    Nowhere,
    /// Not yet; why, in words.
    Waiting(String),
}

/// What the pass saw of one workspace's Cluster.
#[derive(Debug, Clone)]
pub struct Seen<'a> {
    pub status: Option<&'a ClusterStatus>,
    /// This pass wrote a change to the Cluster.
    pub changed: bool,
    /// K3K has reacted to kaas's last change (see [`reacted`]).
    pub reacted: bool,
    /// The server StatefulSet has no rollout in progress.
    pub rolled_out: bool,
    pub agents: &'a Agents,
    /// No generation was ever confirmed: the cluster is being made, not changed.
    pub first: bool,
    /// The workspace generation this pass applied.
    pub generation: u64,
    /// The node agents' DaemonSet, named in the message when they can run nowhere.
    pub agent_daemonset: &'a str,
}

/// The state to record, in words, and the generation the host confirmed (if it did).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub state: WorkspaceState,
    pub message: String,
    pub applied: Option<u64>,
}

impl Verdict {
    fn new(state: WorkspaceState, message: impl Into<String>) -> Verdict {
        Verdict {
            state,
            message: message.into(),
            applied: None,
        }
    }
}

/// The phase as K3K writes it (and as kaas records it).
pub fn phase_name(phase: &ClusterStatusPhase) -> &'static str {
    match phase {
        ClusterStatusPhase::Pending => "Pending",
        ClusterStatusPhase::Provisioning => "Provisioning",
        ClusterStatusPhase::Ready => "Ready",
        ClusterStatusPhase::Failed => "Failed",
        ClusterStatusPhase::Terminating => "Terminating",
        ClusterStatusPhase::Unknown => "Unknown",
    }
}

pub fn phase(status: Option<&ClusterStatus>) -> Option<&ClusterStatusPhase> {
    status.and_then(|s| s.phase.as_ref())
}

/// Condition `Ready`: whether it is `True`, and its message when it has one.
fn ready_condition(status: Option<&ClusterStatus>) -> (bool, Option<String>) {
    let cond = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"));
    (
        cond.is_some_and(|c| c.status == "True"),
        cond.map(|c| c.message.clone()).filter(|m| !m.is_empty()),
    )
}

/// The workspace's state from what the pass saw. Ready needs all of: phase `Ready`,
/// condition `Ready=True`, K3K's reaction to the last change, servers rolled out, nothing
/// changed in this pass, and a node agent (shared mode: K3K's Ready ignores them, and
/// without one there is no node to run a pod on). `Pending` is K3K refusing the spec;
/// `Failed` is not terminal (K3K retries).
pub fn observe(seen: &Seen<'_>) -> Verdict {
    let busy = if seen.first {
        WorkspaceState::Provisioning
    } else {
        WorkspaceState::Updating
    };
    let (cond_ready, cond_message) = ready_condition(seen.status);
    match phase(seen.status) {
        Some(ClusterStatusPhase::Ready)
            if cond_ready && seen.reacted && seen.rolled_out && !seen.changed =>
        {
            match seen.agents {
                Agents::Ready => Verdict {
                    applied: Some(seen.generation),
                    ..Verdict::new(WorkspaceState::Ready, "the virtual cluster is ready")
                },
                Agents::Nowhere => Verdict::new(
                    WorkspaceState::Error,
                    format!(
                        "no host node can run K3K's node agent (DaemonSet {}): every node carries a taint it does not tolerate, such as a dedicated node's; keep at least one node shared",
                        seen.agent_daemonset
                    ),
                ),
                Agents::Waiting(why) => Verdict::new(busy, why.clone()),
            }
        }
        Some(ClusterStatusPhase::Pending) => Verdict::new(
            WorkspaceState::Error,
            format!(
                "K3K refused the cluster: {}",
                cond_message.unwrap_or_else(|| "validation failed".into())
            ),
        ),
        Some(ClusterStatusPhase::Failed) => Verdict::new(
            WorkspaceState::Error,
            format!(
                "K3K could not provision the cluster (retrying): {}",
                cond_message.unwrap_or_else(|| "provisioning failed".into())
            ),
        ),
        _ if seen.first => Verdict::new(busy, "K3K is provisioning the virtual cluster"),
        _ => Verdict::new(busy, "K3K is rolling out a change"),
    }
}

/// A Cluster change kaas applied and has not yet seen K3K finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    /// Applied at this time; K3K has not left Ready since.
    Since(Instant),
    /// K3K left Ready after the change: the next Ready is the changed cluster.
    LeftReady,
}

/// Whether K3K has reacted to kaas's last Cluster change, and what to remember for the next
/// pass. K3K gives no observedGeneration, and real K3K stays Ready while it rolls servers one
/// at a time: after a change, wait until it visibly left Ready, or until `grace` passed
/// with nothing to roll out.
pub fn reacted(
    pending: Option<Pending>,
    ready: bool,
    now: Instant,
    grace: Duration,
) -> (bool, Option<Pending>) {
    match pending {
        Some(Pending::Since(at)) if ready && now.saturating_duration_since(at) < grace => {
            (false, pending)
        }
        Some(_) if !ready => (false, Some(Pending::LeftReady)),
        _ => (true, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    fn status(phase: ClusterStatusPhase, ready: &str, message: &str) -> ClusterStatus {
        ClusterStatus {
            phase: Some(phase),
            conditions: Some(vec![Condition {
                type_: "Ready".into(),
                status: ready.into(),
                message: message.into(),
                reason: "R".into(),
                last_transition_time: Time(jiff::Timestamp::UNIX_EPOCH),
                observed_generation: None,
            }]),
            ..Default::default()
        }
    }

    fn seen<'a>(status: Option<&'a ClusterStatus>, agents: &'a Agents) -> Seen<'a> {
        Seen {
            status,
            changed: false,
            reacted: true,
            rolled_out: true,
            agents,
            first: false,
            generation: 4,
            agent_daemonset: "k3k-c-kubelet",
        }
    }

    #[test]
    fn ready_needs_phase_condition_reaction_rollout_and_an_agent() {
        let ready = status(ClusterStatusPhase::Ready, "True", "");
        let agents = Agents::Ready;
        let v = observe(&seen(Some(&ready), &agents));
        assert_eq!(v.state, WorkspaceState::Ready);
        assert_eq!(v.message, "the virtual cluster is ready");
        assert_eq!(v.applied, Some(4));

        let not_yet: [fn(&mut Seen<'_>); 3] = [
            |s| s.changed = true,
            |s| s.reacted = false,
            |s| s.rolled_out = false,
        ];
        for tweak in not_yet {
            let mut s = seen(Some(&ready), &agents);
            tweak(&mut s);
            let v = observe(&s);
            assert_eq!(v.state, WorkspaceState::Updating);
            assert_eq!(v.message, "K3K is rolling out a change");
            assert_eq!(v.applied, None);
        }
        let cond_false = status(ClusterStatusPhase::Ready, "False", "servers starting");
        let mut s = seen(Some(&cond_false), &agents);
        s.first = true;
        let v = observe(&s);
        assert_eq!(v.state, WorkspaceState::Provisioning);
        assert_eq!(v.message, "K3K is provisioning the virtual cluster");
    }

    #[test]
    fn node_agents_decide_a_ready_cluster() {
        let ready = status(ClusterStatusPhase::Ready, "True", "");
        let nowhere = Agents::Nowhere;
        let v = observe(&seen(Some(&ready), &nowhere));
        assert_eq!(v.state, WorkspaceState::Error);
        assert!(
            v.message.contains("DaemonSet k3k-c-kubelet"),
            "{}",
            v.message
        );
        let waiting = Agents::Waiting("waiting for K3K's node agents (x: 0 of 1 ready)".into());
        let v = observe(&seen(Some(&ready), &waiting));
        assert_eq!(
            (v.state, v.message.as_str()),
            (
                WorkspaceState::Updating,
                "waiting for K3K's node agents (x: 0 of 1 ready)"
            )
        );
        let mut s = seen(Some(&ready), &waiting);
        s.first = true;
        assert_eq!(observe(&s).state, WorkspaceState::Provisioning);
    }

    #[test]
    fn pending_is_a_refusal_and_failed_is_retried_both_with_k3ks_words() {
        let agents = Agents::Ready;
        let refused = status(ClusterStatusPhase::Pending, "False", "spec.mode is invalid");
        let v = observe(&seen(Some(&refused), &agents));
        assert_eq!(v.state, WorkspaceState::Error);
        assert_eq!(v.message, "K3K refused the cluster: spec.mode is invalid");
        let silent = status(ClusterStatusPhase::Pending, "False", "");
        assert_eq!(
            observe(&seen(Some(&silent), &agents)).message,
            "K3K refused the cluster: validation failed"
        );
        let failed = status(ClusterStatusPhase::Failed, "False", "no storage");
        let v = observe(&seen(Some(&failed), &agents));
        assert_eq!(v.state, WorkspaceState::Error);
        assert_eq!(
            v.message,
            "K3K could not provision the cluster (retrying): no storage"
        );
        let failed = status(ClusterStatusPhase::Failed, "False", "");
        assert!(
            observe(&seen(Some(&failed), &agents))
                .message
                .ends_with("provisioning failed")
        );
    }

    #[test]
    fn other_phases_and_no_status_are_provisioning_first_then_updating() {
        let agents = Agents::Ready;
        for phase in [
            ClusterStatusPhase::Provisioning,
            ClusterStatusPhase::Terminating,
            ClusterStatusPhase::Unknown,
        ] {
            let st = status(phase, "False", "");
            let mut s = seen(Some(&st), &agents);
            assert_eq!(observe(&s).state, WorkspaceState::Updating);
            s.first = true;
            assert_eq!(observe(&s).state, WorkspaceState::Provisioning);
        }
        let mut s = seen(None, &agents);
        s.first = true;
        let v = observe(&s);
        assert_eq!(
            (v.state, v.message.as_str()),
            (
                WorkspaceState::Provisioning,
                "K3K is provisioning the virtual cluster"
            )
        );
    }

    #[test]
    fn a_change_counts_as_seen_once_k3k_left_ready_or_the_grace_passed() {
        let t0 = Instant::now();
        let grace = Duration::from_secs(30);
        let at = Some(Pending::Since(t0));
        // Still Ready within the grace: K3K may not have started yet.
        assert_eq!(
            reacted(at, true, t0 + Duration::from_secs(5), grace),
            (false, at)
        );
        // Left Ready: remembered, not yet done.
        let left = reacted(at, false, t0 + Duration::from_secs(5), grace);
        assert_eq!(left, (false, Some(Pending::LeftReady)));
        // Back to Ready after leaving it: done at once.
        assert_eq!(
            reacted(left.1, true, t0 + Duration::from_secs(6), grace),
            (true, None)
        );
        // Ready all along, grace passed: nothing to roll out.
        assert_eq!(reacted(at, true, t0 + grace, grace), (true, None));
        // Nothing pending: reacted.
        assert_eq!(reacted(None, false, t0, grace), (true, None));
    }
}
