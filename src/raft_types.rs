//! The openraft type configuration of the registry: what an entry carries (`Batch`), what apply answers
//! (`BatchResult`) and what a member is (`ClusterNode`).

use std::io::Cursor;

use discovery_raft::ClusterNode;

use crate::registry::command::{Batch, BatchResult};

openraft::declare_raft_types!(
    /// Type configuration of the registry's Raft group.
    pub TypeConfig:
        D = Batch,
        R = BatchResult,
        Node = ClusterNode,
);

/// A Raft node of the registry.
pub type Raft = openraft::Raft<TypeConfig>;
/// Node id type.
pub type NodeId = u64;
