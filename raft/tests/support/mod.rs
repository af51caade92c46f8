//! Shared test fixtures: a type config, a minimal in-memory store, and nodes served over real HTTP.
//!
//! Each integration-test binary uses only part of this, hence the `dead_code` allowance.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod cluster;
pub mod store;

// The macro names `Cursor` unqualified for its default `SnapshotData`.
use std::io::Cursor;

use discovery_raft::ClusterNode;

openraft::declare_raft_types!(
    /// Test type config: commands are strings, apply answers the applied string.
    pub TestConfig:
        D = String,
        R = String,
        Node = ClusterNode,
);
