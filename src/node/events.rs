//! Raft events worth one log line and a counter each: leader changes and snapshots.
//!
//! Watches `raft.metrics()`: a different leader id, or a new term with a known leader, is a leader change; a
//! new snapshot index is a snapshot, `installed` when the registry was restored from a snapshot since the last
//! look (it came from the leader), `built` otherwise. Membership changes are logged by `membership`,
//! evictions and self-preservation switches by `lessor`.

use std::sync::Arc;

use openraft::ServerState;
use tokio_util::sync::CancellationToken;

use super::charts::History;
use super::metrics::{NodeMetrics, ResultLabel};
use super::registry_state::RegistryState;
use crate::raft_types::Raft;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    leader: Option<u64>,
    term: u64,
    snapshot: Option<u64>,
    restores: u64,
}

fn look(raft: &Raft, registry: &RegistryState) -> (Seen, ServerState, Option<u64>) {
    // Borrowed, not cloned: this runs on every metrics change (several per committed entry).
    let metrics = raft.metrics();
    let m = metrics.borrow();
    let seen = Seen {
        leader: m.current_leader,
        term: m.current_term,
        snapshot: m.snapshot.map(|l| l.index),
        restores: registry.restores(),
    };
    (seen, m.state, m.last_applied.as_ref().map(|l| l.index))
}

/// Log and count leader changes and snapshots until `shutdown`.
pub async fn watch_raft_events(
    raft: Raft,
    registry: Arc<RegistryState>,
    metrics: Arc<NodeMetrics>,
    history: Arc<History>,
    shutdown: CancellationToken,
) {
    let mut changes = raft.metrics();
    // Snapshots are compared with what the node started with; the leader is reported from the first look
    // (it may have been elected before this task started).
    let (mut seen, _, _) = look(&raft, &registry);
    let mut last_leader: Option<(u64, u64)> = None;
    let mut first = true;
    loop {
        if !std::mem::take(&mut first) {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = changes.changed() => if changed.is_err() { return },
            }
        }
        let (now, role, applied) = look(&raft, &registry);
        // A leader known again in the same term (after a moment without one) is not a change.
        if let Some(leader) = now.leader {
            if last_leader != Some((leader, now.term)) {
                last_leader = Some((leader, now.term));
                metrics.leader_changes.inc();
                history.leader_changed(now.term, leader);
                tracing::info!(leader, term = now.term, role = ?role, "leader changed");
            }
        }
        if now.snapshot != seen.snapshot && now.snapshot.is_some() {
            let kind = if now.restores != seen.restores { "installed" } else { "built" };
            metrics.snapshots.get_or_create(&ResultLabel::new(kind)).inc();
            tracing::info!(index = ?now.snapshot, last_applied = ?applied, kind, "snapshot {kind}");
        }
        seen = now;
    }
}
