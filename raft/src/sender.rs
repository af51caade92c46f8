//! Who may send Raft RPCs to this node: members of its cluster, or anyone while it belongs to none yet.
//!
//! The sender of an RPC is the node id in the request's vote (the candidate of a vote request, the leader of an
//! append or a snapshot). A node answers an RPC only if that id is a node (voter or learner) of its **effective**
//! membership (openraft's: the latest membership entry in its log, committed or not) or of its **committed** one.
//!
//! Why this never breaks a legitimate change:
//! - A node that is in no cluster yet (`--join`, or a `--peers` member waiting for the lowest id to initialize)
//!   has an empty membership and accepts every sender: the leader that is adding it is not known to it until
//!   the first append (or snapshot) brings the membership entry.
//! - A leader is always a member of the configuration it replicates, and the entry that adds a node reaches it
//!   before anything else the new member sends; a new voter's vote request may reach a follower that has not
//!   seen that entry yet and is then refused, which Raft tolerates like a lost message.
//! - The committed membership is accepted too: a follower whose log ends in an uncommitted membership entry the
//!   current leader is not part of (a change that the old leader did not finish, and the new leader will
//!   truncate) still takes that leader's appends.
//! - A removed node is refused by the members that applied its removal, so a removed voter that never learnt it
//!   was removed cannot disrupt the cluster with elections.
//!
//! A refusal is an HTTP 403, which the sending side's transport treats as `Unreachable` (openraft backs off; see
//! [`crate::transport_error`]).

use openraft::{Raft, RaftTypeConfig};

/// Why an RPC was refused: the sender is not a member of this node's cluster.
#[derive(Debug, Clone, thiserror::Error)]
#[error("node {sender} is not a member of the cluster of node {me} (members: {members}); its Raft RPCs are refused")]
pub struct NotAMember {
    /// The sender's id.
    pub sender: String,
    /// This node's id.
    pub me: String,
    /// The ids this node knows, comma separated.
    pub members: String,
}

/// Whether `sender` may send Raft RPCs to `raft` (see the module docs).
///
/// Fast path: the effective membership from openraft's metrics (no round trip to the Raft core). Only a sender
/// missing from it costs a look at the core's state, which also covers metrics that lag the log by a moment.
pub async fn check<C: RaftTypeConfig>(raft: &Raft<C>, sender: &C::NodeId) -> Result<(), NotAMember> {
    {
        let metrics = raft.metrics();
        let metrics = metrics.borrow();
        let membership = metrics.membership_config.membership();
        if membership.get_node(sender).is_some() || membership.nodes().next().is_none() {
            return Ok(());
        }
    }
    let sender_copy = sender.clone();
    let looked = raft
        .with_raft_state(move |state| {
            let effective = state.membership_state.effective();
            let committed = state.membership_state.committed();
            let known = effective.get_node(&sender_copy).is_some() || committed.get_node(&sender_copy).is_some();
            let empty = effective.nodes().next().is_none() && committed.nodes().next().is_none();
            let members: Vec<String> = effective.nodes().map(|(id, _)| id.to_string()).collect();
            (known || empty, members.join(","))
        })
        .await;
    match looked {
        Ok((true, _)) => Ok(()),
        Ok((false, members)) => Err(NotAMember { sender: sender.to_string(), me: raft_id(raft), members }),
        // The core is gone: let the RPC through, `Raft` answers it with its fatal error.
        Err(_) => Ok(()),
    }
}

fn raft_id<C: RaftTypeConfig>(raft: &Raft<C>) -> String {
    raft.metrics().borrow().id.to_string()
}
