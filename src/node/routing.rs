//! Any node, any call: writes, renews and consistent reads go to the leader, locally when this node is
//! the leader, over the internal routes otherwise.
//!
//! Invariants:
//! - A write forwarded to the leader is answered only after *this* node applied its entry, so a client
//!   reads its own writes on the node that acknowledged them.
//! - A node that is not (or no longer) a member of the cluster refuses writes instead of forwarding them.
//! - Every operation ends within its budget (2 × the election timeout to find and use a leader); an
//!   operation whose request reached a leader but got no answer is reported as of unknown outcome.

use std::time::Duration;

use tokio::time::Instant;

use super::forward::{with_leader, Attempt, ForwardError, LeaderHint};
use super::internal_wire::{ReadIndexReply, WriteReply};
use super::proposer::ProposeError;
use super::AppState;
use crate::registry::command::{Command, Outcome};

/// Extra time a forwarding node waits to apply the entry of its own acknowledged write.
pub const APPLY_WAIT: Duration = Duration::from_secs(5);

/// Why an operation could not be done.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RouteError {
    /// No leader could be found or reached in time.
    #[error("no reachable leader: {0}")]
    NoLeader(String),
    /// The request reached a leader but its outcome is unknown.
    #[error("outcome unknown: {0}")]
    Unknown(String),
    /// Too many pending writes.
    #[error("overloaded")]
    Overloaded,
    /// This node is not a member of the cluster.
    #[error("this node is not a member of the cluster")]
    NotMember,
    /// Raft failed.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The disk is (nearly) full: writes are refused until space is back (see `disk_guard`).
    #[error("{0}")]
    DiskLow(String),
    /// This node has been out of contact with the leader for a while (its zone is cut off): refused at once
    /// instead of waiting for a leader that cannot be reached.
    #[error("{0}")]
    CutOff(String),
}

impl From<ForwardError> for RouteError {
    fn from(err: ForwardError) -> Self {
        match err {
            ForwardError::Timeout(_) => RouteError::Unknown(err.to_string()),
            ForwardError::BadReply(_) => RouteError::Unavailable(err.to_string()),
            ForwardError::NoLeader | ForwardError::Unreachable(_) => RouteError::NoLeader(err.to_string()),
        }
    }
}

impl AppState {
    /// Time allowed to find and use a leader.
    pub fn leader_budget(&self) -> Duration {
        self.config.election_timeout() * 2
    }

    fn is_member(&self) -> bool {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        metrics.membership_config.membership().get_node(&metrics.id).is_some()
    }

    /// Why this node refuses calls that need the leader at once: the last liveness round found it out of
    /// contact with the leader, which takes the leader (or a majority of the voters) not answering a whole
    /// window of probes (see `liveness::WINDOW`), so a single slow probe never refuses a write.
    pub fn cut_off(&self) -> Option<String> {
        let away = self.liveness.out_of_contact_for()?;
        Some(format!(
            "node {} (zone {}) has been cut off from the leader for {:.1} s (it cannot reach a majority of the voters, \
             or the leader); writes and renews need the leader: retry on a node of another zone. Reads here answer \
             from its last state",
            self.config.id,
            self.config.zone,
            away.as_secs_f64()
        ))
    }

    /// Apply `command` through the leader and return its outcome.
    pub async fn write(&self, command: Command) -> Result<Outcome, RouteError> {
        if !self.is_member() {
            return Err(RouteError::NotMember);
        }
        if let Some(why) = self.cut_off() {
            return Err(RouteError::CutOff(why));
        }
        self.disk.check_write().map_err(RouteError::DiskLow)?;
        let deadline = Instant::now() + self.leader_budget();
        let command = &command;
        with_leader(&self.raft, deadline, |hint| async move {
            match hint {
                LeaderHint::Me => match tokio::time::timeout_at(deadline, self.proposer.propose(command.clone())).await
                {
                    Err(_) => Attempt::Done(Err(RouteError::Unknown("the write did not commit in time".into()))),
                    Ok(Ok(committed)) => Attempt::Done(Ok(committed.outcome)),
                    Ok(Err(ProposeError::NotLeader { .. })) => Attempt::NextLeader,
                    Ok(Err(ProposeError::Overloaded)) => Attempt::Done(Err(RouteError::Overloaded)),
                    Ok(Err(err @ ProposeError::Timeout(_))) => Attempt::Done(Err(RouteError::Unknown(err.to_string()))),
                    Ok(Err(err @ ProposeError::Unavailable(_))) => {
                        Attempt::Done(Err(RouteError::Unavailable(err.to_string())))
                    }
                },
                LeaderHint::Other(addr) => match self.writes.forward(&addr, command.clone(), deadline).await {
                    Ok(WriteReply::Committed { outcome, index }) => {
                        self.wait_applied(index).await;
                        Attempt::Done(Ok(outcome))
                    }
                    Ok(WriteReply::NotLeader { .. }) | Err(ForwardError::Unreachable(_)) => Attempt::NextLeader,
                    Ok(WriteReply::Overloaded) => Attempt::Done(Err(RouteError::Overloaded)),
                    Ok(WriteReply::NotMember) => Attempt::Done(Err(RouteError::NotMember)),
                    Ok(WriteReply::Failed(reason)) => Attempt::Done(Err(RouteError::Unavailable(reason))),
                    Err(err) => Attempt::Done(Err(err.into())),
                },
            }
        })
        .await
    }

    /// Wait until everything acknowledged before this call is applied here (read index from the leader).
    pub async fn linearize(&self) -> Result<(), RouteError> {
        if let Some(why) = self.cut_off() {
            return Err(RouteError::CutOff(why));
        }
        let deadline = Instant::now() + self.leader_budget();
        with_leader(&self.raft, deadline, |hint| async move {
            match hint {
                LeaderHint::Me => match tokio::time::timeout_at(deadline, self.raft.ensure_linearizable()).await {
                    Err(_) => {
                        Attempt::Done(Err(RouteError::NoLeader("leadership could not be confirmed in time".into())))
                    }
                    Ok(Ok(_)) => Attempt::Done(Ok(())),
                    Ok(Err(openraft::error::RaftError::APIError(_))) => Attempt::NextLeader,
                    Ok(Err(err)) => Attempt::Done(Err(RouteError::Unavailable(err.to_string()))),
                },
                LeaderHint::Other(addr) => match self.read_indexes.read_index(&addr, deadline).await {
                    Ok(ReadIndexReply::Index(index)) => {
                        Attempt::Done(if self.wait_applied_until(index, deadline + APPLY_WAIT).await {
                            Ok(())
                        } else {
                            Err(RouteError::Unavailable("this node could not catch up in time".into()))
                        })
                    }
                    Ok(ReadIndexReply::NotLeader) | Err(ForwardError::Unreachable(_)) => Attempt::NextLeader,
                    Err(err) => Attempt::Done(Err(err.into())),
                },
            }
        })
        .await
    }

    /// Wait (bounded) until this node applied `index`. A write acknowledged by the leader is answered
    /// even if this node is slow to apply it; it then only misses read-your-writes, never the write.
    async fn wait_applied(&self, index: u64) {
        if !self.wait_applied_until(index, Instant::now() + APPLY_WAIT).await {
            tracing::warn!(index, "acknowledged a forwarded write before applying it locally");
        }
    }

    async fn wait_applied_until(&self, index: u64, deadline: Instant) -> bool {
        let mut applied = self.registry.applied_index();
        let reached = tokio::time::timeout_at(deadline, applied.wait_for(|at| *at >= index)).await;
        matches!(reached, Ok(Ok(_)))
    }
}
