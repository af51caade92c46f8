//! The openraft `Node` type: where a member listens and which zone it is in.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A cluster member as stored in the Raft membership: its advertised `host:port` (one listener serves the
/// API, the Raft RPCs and the internal routes) and its zone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterNode {
    /// Advertised address, `host:port`.
    pub addr: String,
    /// Availability zone of the node.
    pub zone: String,
}

impl fmt::Display for ClusterNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.addr, self.zone)
    }
}
