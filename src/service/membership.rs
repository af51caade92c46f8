//! Membership changes, in the registry's own terms: add a node (learner first, caught up, then voter),
//! promote a learner, demote a voter, remove a member. The operator routes (`node::cluster_admin`) parse
//! the request, call these, and turn a [`ChangeRefusal`] into an HTTP status; the sequence lives here, once.
//!
//! Invariants:
//! - An add is refused before anything changes unless the id and the address are free and the node at the
//!   address is the id claimed (see [`super::member_checks`]), and on a node with `--api-token` but no cluster
//!   token (its peer routes stay closed, see `node::route_gate`, so a peer could never reach it).
//! - One change at a time per node: a second change while one runs is refused at once
//!   ([`ChangeRefusal::Conflict`]; openraft would also refuse overlapping joint configurations, this gives the
//!   operator a clear message).
//! - Add = learner first, then wait until the leader has replicated to it the entry that added it (by log or
//!   snapshot), then promotion to voter: a new member never weakens the quorum while it is empty or
//!   unreachable. A learner that does not catch up within [`CATCH_UP_TIMEOUT`] is removed again.
//! - An add with `learner: true` stops after the catch-up: the node stays a read replica (an openraft learner:
//!   it receives the log and serves reads, and never counts toward a quorum).
//! - Promote makes a learner a voter only once it has caught up (same wait as an add); demote makes a voter a
//!   learner (openraft `RemoveVoters` keeps it as a learner) and is refused for the last voter.
//! - Remove drops the node from the membership entirely (voter and node), so it stops receiving the log.

use std::collections::BTreeSet;
use std::time::Duration;

use discovery_raft::ClusterNode;
use openraft::error::{ClientWriteError, RaftError};
use openraft::ChangeMembers;

use super::{member_checks, Service};
use crate::node::admin::{status_view, MemberView};

/// How long a new learner may take to replicate the log (or install a snapshot) before the add gives up.
pub(crate) const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(30);

/// A node to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMember {
    /// Its id (as started with `--id`).
    pub id: u64,
    /// Its advertised address.
    pub addr: String,
    /// Its zone.
    pub zone: String,
    /// Stop once it caught up: keep it as a learner (a read replica) instead of making it a voter.
    pub learner: bool,
}

/// Why a membership change was not made, each with the message for the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeRefusal {
    /// The request itself is wrong (an id of 0, an empty address, a node that is not who it is said to be).
    #[error("{0}")]
    Invalid(String),
    /// This node's configuration forbids the change.
    #[error("{0}")]
    Forbidden(String),
    /// The node named is not a member.
    #[error("{0}")]
    NotFound(String),
    /// The change conflicts with the membership or with another change under way.
    #[error("{0}")]
    Conflict(String),
    /// The node to add could not be asked who it is.
    #[error("{0}")]
    Unreachable(String),
    /// This node is not the leader (the message names it when known).
    #[error("{0}")]
    NotLeader(String),
    /// The node did not catch up in time; the message says what was left as it was.
    #[error("{0}")]
    TimedOut(String),
    /// Raft failed the change (storage, shutdown).
    #[error("{0}")]
    Failed(String),
}

impl Service {
    /// Add `new` as a learner, wait until it caught up, then make it a voter (unless `new.learner`).
    /// `Ok` carries what happened, for the operator.
    pub async fn add_member(&self, new: &NewMember) -> Result<String, ChangeRefusal> {
        let state = &self.node;
        if new.id == 0 || new.addr.trim().is_empty() {
            return Err(ChangeRefusal::Invalid("id must be positive and addr non-empty".into()));
        }
        if state.config.api_token.is_some() && state.config.cluster_token.is_none() {
            return Err(ChangeRefusal::Forbidden(format!(
                "node {} has --api-token but no --cluster-token: it cannot have peers (its /raft and /internal routes \
                 would let anyone write without the API token); restart every member with the same --cluster-token, \
                 then add node {}",
                state.config.id, new.id
            )));
        }
        let _change = self.one_change_at_a_time()?;
        member_checks::not_taken(&status_view(state).membership, new)?;
        let token = state.config.cluster_token.as_deref();
        member_checks::is_who_it_claims(new, token, state.config.id, &state.config.addr).await?;
        let node = ClusterNode { addr: new.addr.clone(), zone: new.zone.clone() };
        // Not openraft's blocking add: it deems a learner caught up while its lag is under
        // `replication_lag_threshold` (5000 entries), i.e. at once in a young cluster, even if unreachable.
        let added = state.raft.add_learner(new.id, node, false).await.map_err(|e| change_failed("add learner", e))?;
        if !self.caught_up(new.id, added.log_id.index).await {
            // Take the learner out again so a typo does not leave a node the leader keeps replicating to.
            let ids = BTreeSet::from([new.id]);
            if let Err(err) = state.raft.change_membership(ChangeMembers::RemoveNodes(ids), false).await {
                tracing::warn!(id = new.id, error = %err, "could not remove the learner that did not catch up");
            }
            return Err(ChangeRefusal::TimedOut(format!(
                "node {} at {} did not catch up within {CATCH_UP_TIMEOUT:?} (is it running with --join and reachable?); it was not added",
                new.id, new.addr
            )));
        }
        if new.learner {
            tracing::info!(id = new.id, addr = %new.addr, zone = %new.zone, "membership change: node added as a learner (read replica)");
            return Ok(format!("node {} at {} is a learner (read replica)", new.id, new.addr));
        }
        tracing::info!(id = new.id, addr = %new.addr, "learner caught up; promoting to voter");
        self.make_voter(new.id, &new.addr).await
    }

    /// Make the learner `id` a voter once it has caught up with this leader's log.
    pub async fn promote_member(&self, id: u64) -> Result<String, ChangeRefusal> {
        let _change = self.one_change_at_a_time()?;
        let member = self.member(id)?;
        if member.voter {
            return Ok(format!("node {id} at {} is already a voter", member.addr));
        }
        let target = self.node.raft.metrics().borrow().last_log_index.unwrap_or(0);
        if !self.caught_up(id, target).await {
            return Err(ChangeRefusal::TimedOut(format!(
                "node {id} at {} did not catch up to index {target} within {CATCH_UP_TIMEOUT:?}; it stays a learner",
                member.addr
            )));
        }
        self.make_voter(id, &member.addr).await
    }

    /// Make the voter `id` a learner (it keeps replicating and serving reads, and stops voting).
    pub async fn demote_member(&self, id: u64) -> Result<String, ChangeRefusal> {
        let _change = self.one_change_at_a_time()?;
        let member = self.member(id)?;
        if !member.voter {
            return Ok(format!("node {id} at {} is already a learner", member.addr));
        }
        if status_view(&self.node).membership.iter().filter(|m| m.voter).count() == 1 {
            return Err(ChangeRefusal::Conflict(format!("node {id} is the last voter; promote another member first")));
        }
        // openraft's RemoveVoters keeps the removed voters as learners (`retain`).
        let change = ChangeMembers::RemoveVoters(BTreeSet::from([id]));
        let done = self.node.raft.change_membership(change, true).await.map_err(|e| change_failed("demote", e))?;
        tracing::info!(id, index = done.log_id.index, "membership change: node demoted to learner");
        Ok(format!("node {id} at {} is a learner (read replica)", member.addr))
    }

    /// Take `id` out of the membership (voter or learner): it stops receiving the log.
    pub async fn remove_member(&self, id: u64) -> Result<String, ChangeRefusal> {
        let _change = self.one_change_at_a_time()?;
        let member = self.member(id)?;
        let ids = BTreeSet::from([id]);
        let change = if member.voter { ChangeMembers::RemoveVoters(ids) } else { ChangeMembers::RemoveNodes(ids) };
        let done = self.node.raft.change_membership(change, false).await.map_err(|e| change_failed("remove", e))?;
        tracing::info!(id, index = done.log_id.index, "membership change: node removed");
        Ok(format!("node {id} removed"))
    }

    fn one_change_at_a_time(&self) -> Result<tokio::sync::OwnedMutexGuard<()>, ChangeRefusal> {
        self.node.membership_change.clone().try_lock_owned().map_err(|_| {
            ChangeRefusal::Conflict("another membership change is in progress; retry when it is done".into())
        })
    }

    fn member(&self, id: u64) -> Result<MemberView, ChangeRefusal> {
        status_view(&self.node)
            .membership
            .into_iter()
            .find(|m| m.id == id)
            .ok_or_else(|| ChangeRefusal::NotFound(format!("node {id} is not a member")))
    }

    async fn make_voter(&self, id: u64, addr: &str) -> Result<String, ChangeRefusal> {
        let change = ChangeMembers::AddVoterIds(BTreeSet::from([id]));
        let done =
            self.node.raft.change_membership(change, false).await.map_err(|e| change_failed("promote to voter", e))?;
        tracing::info!(id, index = done.log_id.index, "membership change: node made a voter");
        Ok(format!("node {id} at {addr} is a voter"))
    }

    /// Wait until the leader has replicated to `id` at least up to `index` (the entry that added it).
    async fn caught_up(&self, id: u64, index: u64) -> bool {
        self.node
            .raft
            .wait(Some(CATCH_UP_TIMEOUT))
            .metrics(
                |m| {
                    m.replication
                        .as_ref()
                        .and_then(|r| r.get(&id))
                        .is_some_and(|matched| matched.is_some_and(|log_id| log_id.index >= index))
                },
                "learner caught up",
            )
            .await
            .is_ok()
    }
}

fn change_failed(what: &str, err: RaftError<u64, ClientWriteError<u64, ClusterNode>>) -> ChangeRefusal {
    match err {
        RaftError::APIError(ClientWriteError::ForwardToLeader(fwd)) => {
            let leader = fwd.leader_node.map_or_else(|| "unknown".to_string(), |n| n.addr);
            ChangeRefusal::NotLeader(format!("not the leader; send the change to the leader at {leader}"))
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            ChangeRefusal::Conflict(format!("{what} refused: {e}"))
        }
        other => {
            tracing::warn!(error = %other, "{what} failed");
            ChangeRefusal::Failed(format!("{what} failed: {other}"))
        }
    }
}
