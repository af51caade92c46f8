//! The Raft membership as the registry sees it: the members that `infra.discovery` and
//! `/discovery/nodes` report, and the `infra.discovery` cursor.
//!
//! Invariants:
//! - Only members that can serve are listed, as this node's liveness prober judged them (`liveness`);
//!   every member until the first verdict.
//! - The cursor is a Unix time in nanoseconds (clients log and compare it as one), taken from this node's
//!   clock when it first sees a (membership, listed members) state and strictly increasing with every
//!   state it sees after that (see [`ChangeStamp`]). It is per node, not replicated: clients reset their
//!   cursor when they switch nodes (spec §3.5). Reading the state and stamping it happen under one lock,
//!   so no answer pairs an older list with a newer stamp.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use discovery_raft::ClusterNode;
use openraft::{LogId, StoredMembership};
use tokio_util::sync::CancellationToken;

use super::liveness::Liveness;
use super::proposer::now_ns;
use super::registry_state::RegistryState;
use crate::config::Config;
use crate::raft_types::{NodeId, Raft};
use crate::registry::infra::{ChangeStamp, Member, Membership, INFRA_APPID};

/// What the `infra.discovery` cursor is stamped on: the effective membership's log id (an uncommitted
/// membership that a new leader truncates away, and the one that replaces it, are different states) and
/// the members listed (`None`: every member, before the first liveness verdict).
type InfraState = (Option<LogId<NodeId>>, Option<BTreeSet<u64>>);

/// This node's `infra.discovery` cursor: the stamp of each `InfraState` it has seen.
#[derive(Debug, Default)]
pub struct InfraCursor(Mutex<ChangeStamp<InfraState>>);

impl InfraCursor {
    /// Read the effective membership and the listed members with `read` and stamp them, all under the
    /// cursor's lock.
    pub fn stamped<T>(
        &self,
        raft: &Raft,
        liveness: &Liveness,
        read: impl FnOnce(&StoredMembership<NodeId, ClusterNode>, Option<&BTreeSet<u64>>) -> T,
    ) -> (T, i64) {
        let mut stamps = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let listed = liveness.listed();
        let metrics = raft.metrics();
        let metrics = metrics.borrow();
        let stored = &metrics.membership_config;
        let answer = read(stored, listed.as_ref());
        let stamp = stamps.observe((*stored.log_id(), listed), now_ns());
        (answer, stamp)
    }
}

/// The members that can serve, with the `infra.discovery` cursor of this node (see the module doc).
pub fn current_membership(raft: &Raft, config: &Config, cursor: &InfraCursor, liveness: &Liveness) -> Membership {
    let (members, stamp) = cursor.stamped(raft, liveness, |stored, listed| {
        stored
            .membership()
            .nodes()
            .filter(|(id, _)| listed.is_none_or(|ids| ids.contains(id)))
            .map(|(id, node)| Member {
                id: *id,
                addr: node.addr.clone(),
                zone: node.zone.clone(),
                // Regions of other members are not replicated; a cluster runs in one region.
                region: config.region.clone(),
            })
            .collect()
    });
    Membership::new(members, stamp)
}

/// Wake `infra.discovery` long polls whenever the membership changes, so SDKs learn the new server list.
/// The new membership is stamped before the pollers are woken, so the stamp is the time this node saw it.
pub async fn watch_membership(
    raft: Raft,
    registry: Arc<RegistryState>,
    liveness: Arc<Liveness>,
    shutdown: CancellationToken,
) {
    let mut metrics = raft.metrics();
    // Nothing seen yet: the membership this node starts with is logged too (a new cluster's first membership
    // may be committed before this task runs).
    let mut seen = None;
    loop {
        let current = {
            let m = metrics.borrow_and_update();
            let membership = m.membership_config.membership();
            let (voters, members) = (membership.voter_ids().count(), membership.nodes().count());
            m.membership_config.log_id().map(|id| (id.index, voters, members.saturating_sub(voters)))
        };
        if let Some((index, voters, learners)) = current.filter(|c| Some(c.0) != seen) {
            seen = Some(index);
            let ((), stamp) = registry.infra_cursor().stamped(&raft, &liveness, |_, _| ());
            tracing::info!(index, voters, learners, cursor = stamp, "membership changed");
            registry.hub().notify_appid(INFRA_APPID);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = metrics.changed() => if changed.is_err() { return },
        }
    }
}
