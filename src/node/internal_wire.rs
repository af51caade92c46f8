//! The contract of the internal routes between members (`/internal/*`): paths and bincode bodies.
//!
//! Variants are only appended (bincode encodes the variant index), so members of different versions in a
//! rolling upgrade keep understanding each other.

use serde::{Deserialize, Serialize};

use crate::registry::command::{Command, Outcome};
use crate::registry::model::{Instance, InstanceKey};

/// Path of a forwarded write.
pub const WRITE_PATH: &str = "/internal/write";
/// Path of a batch of forwarded renews.
pub const RENEW_PATH: &str = "/internal/renew";
/// Path of a batch of forwarded writes (answered with one [`WriteReply`] per command, in order).
pub const WRITES_PATH: &str = "/internal/writes";
/// Path of a read-index request.
pub const READ_INDEX_PATH: &str = "/internal/read_index";

/// A forwarded write: the command to propose on the leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WriteRequest {
    /// The command.
    pub command: Command,
    /// Id of the forwarding node: the leader refuses writes forwarded by a node it removed (that node may
    /// never learn of its removal, since it no longer receives the log).
    pub from: u64,
}

/// Forwarded writes, proposed on the leader in this order (usually in one entry).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WritesRequest {
    /// The commands.
    pub commands: Vec<Command>,
    /// Id of the forwarding node (see [`WriteRequest::from`]).
    pub from: u64,
}

/// The leader's answer to a forwarded write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WriteReply {
    /// Applied on the leader at this log index.
    Committed {
        /// Apply's outcome.
        outcome: Outcome,
        /// Log index of the entry (the forwarding node waits until it applied it).
        index: u64,
    },
    /// The receiver is not the leader (any more); the sender retries with this hint.
    NotLeader {
        /// Leader address, if the receiver knows it.
        leader: Option<String>,
    },
    /// Too many pending writes on the leader.
    Overloaded,
    /// The write failed or its outcome is unknown.
    Failed(String),
    /// The forwarding node is not a member of the leader's membership.
    NotMember,
}

/// A batch of forwarded renews.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RenewRequest {
    /// The instances to renew, in order.
    pub keys: Vec<InstanceKey>,
}

/// The leader's verdict on one renew.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RenewReply {
    /// Lease extended; the instance as stored.
    Renewed(Box<Instance>),
    /// No such instance; `zone_known` tells whether (env, appid, zone) exists (spec §2.2 data shape).
    Unknown {
        /// The app has instances in that zone.
        zone_known: bool,
    },
    /// The receiver is not the leader.
    NotLeader,
}

/// The leader's answer to a read-index request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ReadIndexReply {
    /// Everything acknowledged before the request is at or below this index.
    Index(u64),
    /// The receiver is not the leader.
    NotLeader,
}
