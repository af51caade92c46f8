//! The HTTP contract between [`crate::client`] and [`crate::server`]: paths, request and response bodies.
//!
//! Every body is one [`crate::codec`] value. A request is openraft's own request type, except the snapshot,
//! which openraft 0.9 has no single-message type for ([`SnapshotRequest`]). A response is always HTTP 200 with
//! the local `Raft` call's `Result` encoded, so a Raft-level error (for example `Fatal::Stopped`) reaches the
//! sender as a `RemoteError`; any other HTTP status means the RPC itself failed (bad body, token, size, bug).
//!
//! Changing a type here changes the protocol: both ends of a cluster must run the same version.

use std::fmt;

use openraft::error::{Fatal, RaftError};
use openraft::raft::{AppendEntriesResponse, SnapshotResponse, VoteResponse};
use openraft::{Node, NodeId, SnapshotMeta, Vote};
use serde::{Deserialize, Serialize};

/// `POST`: body `AppendEntriesRequest<C>`, answer [`AppendResult`].
pub const APPEND_PATH: &str = "/raft/append";
/// `POST`: body `VoteRequest<C::NodeId>`, answer [`VoteResult`].
pub const VOTE_PATH: &str = "/raft/vote";
/// `POST`: body [`SnapshotRequest`], answer [`SnapshotResult`]. A whole snapshot in one body: still received
/// (from senders of earlier versions), no longer sent.
pub const SNAPSHOT_PATH: &str = "/raft/snapshot";
/// `POST`: body [`SnapshotChunk`], answer [`ChunkResult`]. How snapshots are sent: in order, in bounded chunks.
pub const CHUNK_PATH: &str = "/raft/snapshot_chunk";

/// Answer to [`APPEND_PATH`]: what `Raft::append_entries` returned on the receiver.
pub type AppendResult<NID> = Result<AppendEntriesResponse<NID>, RaftError<NID>>;
/// Answer to [`VOTE_PATH`]: what `Raft::vote` returned on the receiver.
pub type VoteResult<NID> = Result<VoteResponse<NID>, RaftError<NID>>;
/// Answer to [`SNAPSHOT_PATH`]: what `Raft::install_full_snapshot` returned on the receiver.
pub type SnapshotResult<NID> = Result<SnapshotResponse<NID>, Fatal<NID>>;

/// Answer to [`CHUNK_PATH`]: `Ok(None)` the chunk is stored, `Ok(Some(_))` the last chunk installed the
/// snapshot (what `Raft::install_full_snapshot` answered), `Err` the receiver's Raft is stopped.
pub type ChunkResult<NID> = Result<Option<SnapshotResponse<NID>>, Fatal<NID>>;

/// One chunk of a snapshot: the bytes at `offset` of a `total`-byte snapshot, the leader's vote and the
/// snapshot's metadata (on every chunk, so a receiver can tell transfers apart and check the last one).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct SnapshotChunk<NID: NodeId, N: Node> {
    /// Vote of the sending leader.
    pub vote: Vote<NID>,
    /// Which log prefix and membership the snapshot covers.
    pub meta: SnapshotMeta<NID, N>,
    /// Where these bytes go in the snapshot.
    pub offset: u64,
    /// Size of the whole snapshot.
    pub total: u64,
    /// The bytes.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
    /// This is the last chunk: install the snapshot.
    pub done: bool,
}

impl<NID: NodeId, N: Node> fmt::Debug for SnapshotChunk<NID, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotChunk")
            .field("vote", &self.vote)
            .field("meta", &self.meta)
            .field("offset", &self.offset)
            .field("total", &self.total)
            .field("data_len", &self.data.len())
            .field("done", &self.done)
            .finish()
    }
}

/// A whole snapshot, sent in one request: the leader's vote (so a stale leader's snapshot is refused), the
/// snapshot's metadata and its bytes.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct SnapshotRequest<NID: NodeId, N: Node> {
    /// Vote of the sending leader.
    pub vote: Vote<NID>,
    /// Which log prefix and membership the snapshot covers.
    pub meta: SnapshotMeta<NID, N>,
    /// The snapshot data, as the state machine's `SnapshotData` produced it.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

// By hand, so that logging a request prints the size of the data rather than megabytes of it.
impl<NID: NodeId, N: Node> fmt::Debug for SnapshotRequest<NID, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotRequest")
            .field("vote", &self.vote)
            .field("meta", &self.meta)
            .field("data_len", &self.data.len())
            .finish()
    }
}
