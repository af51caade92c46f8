//! The Raft membership as the registry sees it: the members that `infra.discovery` and
//! `/discovery/nodes` report.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::state_machine::RegistryState;
use crate::config::Config;
use crate::raft_types::Raft;
use crate::registry::infra::{Member, Membership, INFRA_APPID};

/// Members of the effective membership, with a cursor that moves on every membership change (the
/// membership entry's log index + 1: strictly increasing on one node, never 0).
pub fn current_membership(raft: &Raft, config: &Config) -> Membership {
    let metrics = raft.metrics();
    let metrics = metrics.borrow();
    let stored = &metrics.membership_config;
    let stamp = stored.log_id().map_or(1, |id| i64::try_from(id.index).unwrap_or(i64::MAX - 1) + 1);
    let members = stored
        .membership()
        .nodes()
        .map(|(id, node)| Member {
            id: *id,
            addr: node.addr.clone(),
            zone: node.zone.clone(),
            // Regions of other members are not replicated; a cluster runs in one region.
            region: config.region.clone(),
        })
        .collect();
    Membership::new(members, stamp)
}

/// Wake `infra.discovery` long polls whenever the membership changes, so SDKs learn the new server list.
pub async fn watch_membership(raft: Raft, registry: Arc<RegistryState>, shutdown: CancellationToken) {
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
            tracing::info!(index, voters, learners, "membership changed");
            registry.hub().notify_appid(INFRA_APPID);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = metrics.changed() => if changed.is_err() { return },
        }
    }
}
