//! The receiving side of the Raft network: axum routes that decode an RPC, hand it to the local `Raft` and
//! encode what it answered (see [`crate::wire`] for the contract).
//!
//! Invariants:
//! - A body larger than [`MAX_MESSAGE_BYTES`] is refused with 413 before it is buffered past the limit, and the
//!   client turns that into a smaller retry or a back-off.
//! - A body that does not decode is answered 400 with the reason, never a panic, and never reaches `Raft`.
//! - Whatever `Raft` answers, including its errors, is sent back as 200 with the encoded `Result`; only failures
//!   of the transport itself use other statuses.
//! - A decoded request whose terms, indexes or shape no correct peer produces ([`crate::sanity`]) is answered 400
//!   with the reason and never reaches `Raft`: nothing a peer sends can overflow openraft's arithmetic.
//! - A request from a node outside this node's membership ([`crate::sender`]) is answered 403 and never reaches
//!   `Raft`; the sending side backs off on it.
//! - The handlers hold no lock and no state besides the `Raft` handle, except the snapshot chunks, which go
//!   through the node's one [`SnapshotReceiver`] (in order, one transfer at a time; see [`crate::receive`]).

use axum::body::Bytes;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRef, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use openraft::error::RaftError;
use openraft::raft::{AppendEntriesRequest, VoteRequest};
use openraft::{Raft, RaftTypeConfig, Snapshot};
use serde::Serialize;
use tokio::io::AsyncWriteExt;

use crate::codec::{self, CodecError, MAX_MESSAGE_BYTES};
use crate::node::ClusterNode;
use crate::receive::{ChunkRefused, SnapshotReceiver};
use crate::sanity::{self, Insane};
use crate::sender;
use crate::wire::{SnapshotChunk, SnapshotRequest, SnapshotResult, APPEND_PATH, CHUNK_PATH, SNAPSHOT_PATH, VOTE_PATH};

/// What the Raft routes share: the `Raft` handle and the snapshot receiver.
struct RouteState<C: RaftTypeConfig> {
    raft: Raft<C>,
    receiver: Arc<SnapshotReceiver>,
}

impl<C: RaftTypeConfig> Clone for RouteState<C> {
    fn clone(&self) -> Self {
        Self { raft: self.raft.clone(), receiver: Arc::clone(&self.receiver) }
    }
}

impl<C: RaftTypeConfig> FromRef<RouteState<C>> for Raft<C> {
    fn from_ref(state: &RouteState<C>) -> Self {
        state.raft.clone()
    }
}

/// The Raft RPC routes (`POST /raft/append`, `/raft/vote`, `/raft/snapshot_chunk`, `/raft/snapshot`) serving
/// `raft`, with snapshot chunks kept in memory while they arrive (see [`raft_routes_with`] for a node's routes).
///
/// The router is stateless towards the caller (`S` is whatever the application router uses), so it can be merged
/// into the node's router; wrap it with [`crate::require_token`] when a cluster token is configured.
pub fn raft_routes<C, S>(raft: Raft<C>) -> Router<S>
where
    C: RaftTypeConfig<Node = ClusterNode>,
    S: Clone + Send + Sync + 'static,
{
    raft_routes_with(raft, Arc::new(SnapshotReceiver::in_memory()))
}

/// [`raft_routes`] with the node's snapshot `receiver` (which writes chunks to its data dir as they arrive).
pub fn raft_routes_with<C, S>(raft: Raft<C>, receiver: Arc<SnapshotReceiver>) -> Router<S>
where
    C: RaftTypeConfig<Node = ClusterNode>,
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route(APPEND_PATH, post(append::<C>))
        .route(VOTE_PATH, post(vote::<C>))
        .route(SNAPSHOT_PATH, post(snapshot::<C>))
        .route(CHUNK_PATH, post(chunk::<C>))
        .layer(DefaultBodyLimit::max(MAX_MESSAGE_BYTES))
        .with_state(RouteState { raft, receiver })
}

async fn chunk<C: RaftTypeConfig<Node = ClusterNode>>(State(state): State<RouteState<C>>, body: Bytes) -> Response {
    let chunk = match codec::decode::<SnapshotChunk<C::NodeId, ClusterNode>>(&body) {
        Ok(chunk) => chunk,
        Err(e) => return bad_request("snapshot chunk", &e),
    };
    if let Err(e) = sanity::snapshot_chunk(&chunk) {
        return insane("snapshot chunk", &e);
    }
    if let Err(response) = admit(&state.raft, &chunk.vote.leader_id().node_id, "snapshot chunk").await {
        return response;
    }
    match state.receiver.receive(&state.raft, chunk).await {
        Ok(answer) => encoded(&answer),
        Err(e @ ChunkRefused::OutOfOrder { .. }) => {
            tracing::info!(error = %e, "snapshot chunk refused; the sender starts over");
            (StatusCode::CONFLICT, e.to_string()).into_response()
        }
        Err(e @ ChunkRefused::Bad(_)) => {
            tracing::warn!(error = %e, "snapshot chunk refused");
            (StatusCode::BAD_REQUEST, e.to_string()).into_response()
        }
        Err(e @ ChunkRefused::Io(_)) => {
            tracing::error!(error = %e, "cannot store a received snapshot chunk");
            (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
        }
    }
}

async fn append<C: RaftTypeConfig<Node = ClusterNode>>(State(raft): State<Raft<C>>, body: Bytes) -> Response {
    let rpc = match codec::decode::<AppendEntriesRequest<C>>(&body) {
        Ok(rpc) => rpc,
        Err(e) => return bad_request("append-entries", &e),
    };
    if let Err(e) = sanity::append_request(&rpc) {
        return insane("append-entries", &e);
    }
    if let Err(response) = admit(&raft, &rpc.vote.leader_id().node_id, "append-entries").await {
        return response;
    }
    encoded(&raft.append_entries(rpc).await)
}

async fn vote<C: RaftTypeConfig<Node = ClusterNode>>(State(raft): State<Raft<C>>, body: Bytes) -> Response {
    let rpc = match codec::decode::<VoteRequest<C::NodeId>>(&body) {
        Ok(rpc) => rpc,
        Err(e) => return bad_request("vote", &e),
    };
    if let Err(e) = sanity::vote_request(&rpc) {
        return insane("vote", &e);
    }
    if let Err(response) = admit(&raft, &rpc.vote.leader_id().node_id, "vote").await {
        return response;
    }
    encoded(&raft.vote(rpc).await)
}

async fn snapshot<C: RaftTypeConfig<Node = ClusterNode>>(State(raft): State<Raft<C>>, body: Bytes) -> Response {
    let request = match codec::decode::<SnapshotRequest<C::NodeId, ClusterNode>>(&body) {
        Ok(request) => request,
        Err(e) => return bad_request("snapshot", &e),
    };
    if let Err(e) = sanity::snapshot_request(&request) {
        return insane("snapshot", &e);
    }
    if let Err(response) = admit(&raft, &request.vote.leader_id().node_id, "snapshot").await {
        return response;
    }
    match install_snapshot(&raft, request).await {
        Ok(answer) => encoded(&answer),
        Err(e) => {
            tracing::error!(error = %e, "cannot store a received snapshot");
            (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot store the snapshot: {e}")).into_response()
        }
    }
}

/// `Ok` if `sender` may send RPCs here, else the 403 answer (logged: a refused leader or candidate is worth
/// knowing about, whether it is an attack or a node that was removed and still runs).
async fn admit<C: RaftTypeConfig>(raft: &Raft<C>, sender: &C::NodeId, what: &str) -> Result<(), Response> {
    sender::check(raft, sender).await.map_err(|e| {
        tracing::warn!(error = %e, "refused a {what} request");
        (StatusCode::FORBIDDEN, format!("{what} refused: {e}")).into_response()
    })
}

/// Writes the received bytes into a fresh `SnapshotData` from the state machine and installs it.
///
/// The data is left as openraft's own chunked receiver leaves it (written, then shut down), so the state
/// machine sees the same thing whichever transport delivered it. The vote is checked by `Raft` itself: a
/// snapshot from a stale leader is not installed and the answer carries the newer vote.
async fn install_snapshot<C: RaftTypeConfig<Node = ClusterNode>>(
    raft: &Raft<C>,
    request: SnapshotRequest<C::NodeId, ClusterNode>,
) -> Result<SnapshotResult<C::NodeId>, std::io::Error> {
    let mut data = match raft.begin_receiving_snapshot().await {
        Ok(data) => data,
        Err(RaftError::Fatal(fatal)) => return Ok(Err(fatal)),
        Err(RaftError::APIError(never)) => match never {},
    };
    data.write_all(&request.data).await?;
    data.shutdown().await?;
    let snapshot = Snapshot { meta: request.meta, snapshot: data };
    Ok(raft.install_full_snapshot(request.vote, snapshot).await)
}

/// The 400 answer to a body that does not decode as the `what` request.
fn bad_request(what: &str, e: &CodecError) -> Response {
    tracing::warn!(error = %e, "bad {what} request body");
    (StatusCode::BAD_REQUEST, format!("bad {what} request body: {e}")).into_response()
}

/// The 400 answer to a request that decodes but that no correct peer sends (see [`crate::sanity`]).
fn insane(what: &str, e: &Insane) -> Response {
    tracing::warn!(error = %e, "refused a {what} request");
    (StatusCode::BAD_REQUEST, format!("{what} request refused: {e}")).into_response()
}

/// 200 with the encoded answer; 500 if it cannot be encoded (a bug, but not a reason to panic).
fn encoded<T: Serialize>(answer: &T) -> Response {
    match codec::encode(answer) {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode a Raft answer");
            (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode the answer: {e}")).into_response()
        }
    }
}
