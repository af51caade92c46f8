//! What a peer's Raft message must satisfy before it reaches openraft, in both directions (requests received by
//! [`crate::server`], answers received by [`crate::network`]).
//!
//! openraft trusts its peers: it computes `term + 1` and `index + 1` without overflow checks, and it assumes that
//! the entries of an append follow `prev_log_id` one index at a time (a `debug_assert`, then silent corruption).
//! A single forged vote at term `u64::MAX` is granted and persisted; the next election then overflows inside
//! openraft, on every restart too, which bricks the data dir. So every term and log index a peer sends is
//! checked here against [`MAX_TERM`] / [`MAX_INDEX`], and an append's entries against the shape a real leader
//! produces.
//!
//! Invariants:
//! - Every check is a pure function of the message: no state, no I/O, never a panic.
//! - Nothing a correct openraft peer sends is refused: the bounds are 2^62 (a cluster electing a leader every
//!   millisecond reaches them in 146 million years), and the shape checks are properties of any Raft log
//!   (indexes consecutive from `prev_log_id`, terms never decreasing and never above the sender's term).
//! - A refusal says which field and which value, for the log of both ends.

use std::fmt;

use openraft::entry::RaftPayload;
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};
use openraft::{LogId, Membership, Node, NodeId, RaftLogId, RaftTypeConfig, Vote};

use crate::wire::SnapshotRequest;

/// Largest term accepted from a peer: far below `u64::MAX`, so openraft's `term + 1` can never overflow.
pub const MAX_TERM: u64 = 1 << 62;
/// Largest log index accepted from a peer: far below `u64::MAX`, so openraft's `index + 1` can never overflow.
pub const MAX_INDEX: u64 = 1 << 62;

/// Why a message was refused: the field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Insane(String);

impl Insane {
    fn new(what: impl fmt::Display) -> Self {
        Self(what.to_string())
    }
}

type Checked = Result<(), Insane>;

/// A vote request: the candidate's term and its last log id.
pub fn vote_request<NID: NodeId>(rpc: &VoteRequest<NID>) -> Checked {
    vote("vote", &rpc.vote)?;
    log_id_within("last_log_id", rpc.last_log_id.as_ref(), &rpc.vote)
}

/// An append-entries request: the leader's term, `prev_log_id`, `leader_commit`, and every entry's log id and
/// membership, in the shape a leader produces (consecutive indexes from `prev_log_id`, non-decreasing terms).
pub fn append_request<C: RaftTypeConfig>(rpc: &AppendEntriesRequest<C>) -> Checked {
    vote("vote", &rpc.vote)?;
    log_id_within("prev_log_id", rpc.prev_log_id.as_ref(), &rpc.vote)?;
    log_id_within("leader_commit", rpc.leader_commit.as_ref(), &rpc.vote)?;
    let mut expected_index = rpc.prev_log_id.as_ref().map_or(0, |prev| prev.index + 1);
    let mut min_term = rpc.prev_log_id.as_ref().map_or(0, term_of);
    for (i, entry) in rpc.entries.iter().enumerate() {
        let log_id = entry.get_log_id();
        log_id_within(format_args!("entries[{i}].log_id"), Some(log_id), &rpc.vote)?;
        if log_id.index != expected_index {
            return Err(Insane::new(format_args!(
                "entries[{i}] has index {}, expected {expected_index} (entries must follow prev_log_id one by one)",
                log_id.index
            )));
        }
        if term_of(log_id) < min_term {
            return Err(Insane::new(format_args!(
                "entries[{i}] has term {}, below the term {min_term} of the entry before it",
                term_of(log_id)
            )));
        }
        if let Some(membership) = entry.get_membership() {
            membership_shape(format_args!("entries[{i}] membership"), membership)?;
        }
        expected_index = log_id.index + 1;
        min_term = term_of(log_id);
    }
    Ok(())
}

/// A whole snapshot: the leader's term and the snapshot's last log id and membership.
pub fn snapshot_request<NID: NodeId, N: Node>(request: &SnapshotRequest<NID, N>) -> Checked {
    snapshot_meta(&request.vote, &request.meta)
}

/// A snapshot chunk: the vote and metadata as for [`snapshot_request`], and an offset inside the total.
pub fn snapshot_chunk<NID: NodeId, N: Node>(chunk: &crate::wire::SnapshotChunk<NID, N>) -> Checked {
    snapshot_meta(&chunk.vote, &chunk.meta)?;
    if chunk.offset > chunk.total {
        return Err(Insane::new("snapshot chunk offset is past the snapshot's total size"));
    }
    Ok(())
}

fn snapshot_meta<NID: NodeId, N: Node>(request_vote: &Vote<NID>, meta: &openraft::SnapshotMeta<NID, N>) -> Checked {
    vote("vote", request_vote)?;
    log_id_within("snapshot last_log_id", meta.last_log_id.as_ref(), request_vote)?;
    let membership_log_id = meta.last_membership.log_id().as_ref();
    log_id_within("snapshot membership log_id", membership_log_id, request_vote)?;
    if membership_log_id > meta.last_log_id.as_ref() {
        return Err(Insane::new("snapshot membership log_id is past the snapshot's last_log_id"));
    }
    if membership_log_id.is_some() {
        membership_shape("snapshot membership", meta.last_membership.membership())?;
    }
    Ok(())
}

/// A peer's answer to a vote request.
pub fn vote_response<NID: NodeId>(answer: &VoteResponse<NID>) -> Checked {
    vote("answered vote", &answer.vote)?;
    log_id_bounds("answered last_log_id", answer.last_log_id.as_ref())
}

/// A peer's answer to an append-entries request.
pub fn append_response<NID: NodeId>(answer: &AppendEntriesResponse<NID>) -> Checked {
    match answer {
        AppendEntriesResponse::HigherVote(higher) => vote("answered higher vote", higher),
        AppendEntriesResponse::PartialSuccess(matched) => log_id_bounds("answered matching log id", matched.as_ref()),
        AppendEntriesResponse::Success | AppendEntriesResponse::Conflict => Ok(()),
    }
}

/// A peer's answer to a snapshot.
pub fn snapshot_response<NID: NodeId>(answer: &SnapshotResponse<NID>) -> Checked {
    vote("answered vote", &answer.vote)
}

fn term_of<NID: NodeId>(log_id: &LogId<NID>) -> u64 {
    log_id.committed_leader_id().term
}

fn vote<NID: NodeId>(what: &str, vote: &Vote<NID>) -> Checked {
    let term = vote.leader_id().term;
    if term > MAX_TERM {
        return Err(Insane::new(format_args!("{what} term {term} is above the largest accepted term {MAX_TERM}")));
    }
    Ok(())
}

fn log_id_bounds<NID: NodeId>(what: impl fmt::Display, log_id: Option<&LogId<NID>>) -> Checked {
    let Some(log_id) = log_id else { return Ok(()) };
    if term_of(log_id) > MAX_TERM {
        let term = term_of(log_id);
        return Err(Insane::new(format_args!("{what} term {term} is above the largest accepted term {MAX_TERM}")));
    }
    if log_id.index > MAX_INDEX {
        let index = log_id.index;
        return Err(Insane::new(format_args!("{what} index {index} is above the largest accepted index {MAX_INDEX}")));
    }
    Ok(())
}

/// Within the bounds, and not from a term later than the sender's own (no Raft log holds such an entry).
fn log_id_within<NID: NodeId>(what: impl fmt::Display, log_id: Option<&LogId<NID>>, sender: &Vote<NID>) -> Checked {
    log_id_bounds(&what, log_id)?;
    match log_id {
        Some(log_id) if term_of(log_id) > sender.leader_id().term => Err(Insane::new(format_args!(
            "{what} term {} is above the sender's term {}",
            term_of(log_id),
            sender.leader_id().term
        ))),
        _ => Ok(()),
    }
}

/// One or two (joint) non-empty voter sets, every voter with a node: what openraft itself ever writes.
fn membership_shape<NID: NodeId, N: Node>(what: impl fmt::Display, membership: &Membership<NID, N>) -> Checked {
    let configs = membership.get_joint_config();
    if configs.is_empty() || configs.len() > 2 || configs.iter().any(|voters| voters.is_empty()) {
        return Err(Insane::new(format_args!("{what} has {} voter sets, or an empty one", configs.len())));
    }
    if let Some(id) = membership.voter_ids().find(|id| membership.get_node(id).is_none()) {
        return Err(Insane::new(format_args!("{what} lists voter {id} without its node")));
    }
    Ok(())
}
