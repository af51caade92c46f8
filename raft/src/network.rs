//! The sending side of the Raft network, part 2: openraft's `RaftNetwork`, one HTTP/1 POST per RPC.
//!
//! Invariants:
//! - Every request carries a timeout taken from openraft's `RPCOption::hard_ttl()`: a request never outlives the
//!   deadline openraft gave it, and the connection it occupied is dropped rather than reused half-read.
//! - A body that the peer's limit would refuse is not sent: append entries answer `PayloadTooLarge` so openraft
//!   retries with fewer entries, anything else fails as `Unreachable` (see [`crate::transport_error`]).
//! - The cluster token, when configured, is on every request.
//! - An answer whose terms or indexes no correct peer sends ([`crate::sanity`]) never reaches openraft: it fails
//!   as `Unreachable`, like any other answer that cannot be used.
//! - Snapshots go through `full_snapshot` in order, in chunks of at most `snapshot_chunk_bytes` read one at a
//!   time from the snapshot (see the crate docs); a refused or failed chunk fails the whole send, and openraft
//!   sends the snapshot again from offset 0. `install_snapshot` is never used.

use std::future::Future;
use std::io::SeekFrom;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    Fatal, InstallSnapshotError, PayloadTooLarge, RPCError, RaftError, RemoteError, ReplicationClosed, StreamingError,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, SnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{OptionalSend, RaftTypeConfig, Snapshot, StorageError, StorageIOError, Vote};
use serde::de::DeserializeOwned;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::auth::TOKEN_HEADER;
use crate::client::NetworkConfig;
use crate::codec::{self, MAX_MESSAGE_BYTES};
use crate::node::ClusterNode;
use crate::sanity::{self, Insane};
use crate::transport_error::TransportError;
use crate::wire::{AppendResult, ChunkResult, SnapshotChunk, VoteResult, APPEND_PATH, CHUNK_PATH, VOTE_PATH};

/// How much of an error answer's body is kept for the log.
const MAX_ERROR_MESSAGE: usize = 512;

/// A peer's pooled client, or why it could not be built (reported by every RPC until rebuilt).
pub(crate) type PeerClient = Result<reqwest::Client, Arc<str>>;

/// The connection to one peer that openraft sends RPCs through.
pub struct HttpNetwork<C: RaftTypeConfig> {
    target: C::NodeId,
    node: ClusterNode,
    client: PeerClient,
    token: Option<Arc<str>>,
    unreachable_backoff: Duration,
    max_message_bytes: usize,
    snapshot_chunk_bytes: usize,
}

/// Time allowed for one snapshot chunk to be sent and stored.
const CHUNK_TTL: Duration = Duration::from_secs(30);
/// Time allowed for the last chunk: sent, then the whole snapshot installed (decoded, stored) by the receiver.
const LAST_CHUNK_TTL: Duration = Duration::from_secs(300);

impl<C: RaftTypeConfig<Node = ClusterNode>> HttpNetwork<C> {
    pub(crate) fn new(target: C::NodeId, node: ClusterNode, client: PeerClient, config: &NetworkConfig) -> Self {
        Self {
            target,
            node,
            client,
            token: config.token.clone(),
            unreachable_backoff: config.unreachable_backoff,
            max_message_bytes: config.max_message_bytes,
            snapshot_chunk_bytes: config.snapshot_chunk_bytes,
        }
    }

    /// POSTs `body` to `path` on the peer and decodes the answer as `T`.
    async fn post<T: DeserializeOwned>(&self, path: &str, body: Vec<u8>, ttl: Duration) -> Result<T, TransportError> {
        let url = format!("http://{}{}", self.node.addr, path);
        let client = self.client.as_ref().map_err(|message| TransportError::ClientBuild {
            addr: self.node.addr.clone(),
            message: message.to_string(),
        })?;
        if body.len() > self.max_message_bytes {
            return Err(TransportError::Encode(codec::CodecError::TooLarge {
                len: body.len(),
                limit: self.max_message_bytes,
            }));
        }
        let mut request =
            client.post(&url).timeout(ttl).header(reqwest::header::CONTENT_TYPE, "application/octet-stream").body(body);
        if let Some(token) = &self.token {
            request = request.header(TOKEN_HEADER, token.as_ref());
        }
        let response = request.send().await.map_err(|source| send_error(url.clone(), source))?;
        let status = response.status();
        // Do not buffer an answer that could never decode (no Raft answer comes near the limit).
        if let Some(len) = response.content_length().filter(|&len| len > MAX_MESSAGE_BYTES as u64) {
            let source = codec::CodecError::TooLarge {
                len: usize::try_from(len).unwrap_or(usize::MAX),
                limit: MAX_MESSAGE_BYTES,
            };
            return Err(TransportError::Decode { url, source });
        }
        let bytes = response.bytes().await.map_err(|source| send_error(url.clone(), source))?;
        if status != reqwest::StatusCode::OK {
            let message = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_ERROR_MESSAGE)]).into_owned();
            return Err(TransportError::Status { url, status, message });
        }
        codec::decode(&bytes).map_err(|source| TransportError::Decode { url, source })
    }

    /// `answer` as it came, unless the peer's `Raft` answered something [`crate::sanity`] refuses.
    fn sane<T, E>(
        &self,
        answer: Result<T, E>,
        check: impl Fn(&T) -> Result<(), Insane>,
    ) -> Result<Result<T, E>, TransportError> {
        if let Ok(value) = &answer {
            check(value).map_err(|reason| TransportError::Insane { addr: self.node.addr.clone(), reason })?;
        }
        Ok(answer)
    }

    fn remote<E: std::error::Error>(&self, error: E) -> RemoteError<C::NodeId, ClusterNode, E> {
        RemoteError::new_with_node(self.target.clone(), self.node.clone(), error)
    }
}

fn send_error(url: String, source: reqwest::Error) -> TransportError {
    if source.is_connect() {
        TransportError::Connect { url, source }
    } else {
        TransportError::Request { url, source }
    }
}

type RpcResult<C, T, E = openraft::error::Infallible> =
    Result<T, RPCError<<C as RaftTypeConfig>::NodeId, ClusterNode, RaftError<<C as RaftTypeConfig>::NodeId, E>>>;

impl<C: RaftTypeConfig<Node = ClusterNode>> RaftNetwork<C> for HttpNetwork<C> {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> RpcResult<C, AppendEntriesResponse<C::NodeId>> {
        let entries = rpc.entries.len() as u64;
        let result = match codec::encode(&rpc) {
            Ok(body) => self.post::<AppendResult<C::NodeId>>(APPEND_PATH, body, option.hard_ttl()).await,
            Err(e) => Err(TransportError::Encode(e)),
        };
        let result = result.and_then(|answer| self.sane(answer, sanity::append_response));
        match result {
            Ok(answer) => answer.map_err(|e| RPCError::RemoteError(self.remote(e))),
            // Too many entries for one message: openraft resends with at most half as many.
            Err(e) if e.is_too_large() && entries > 1 => {
                tracing::warn!(target = %self.target, entries, error = %e, "append-entries too large, splitting");
                Err(RPCError::PayloadTooLarge(PayloadTooLarge::new_entries_hint(entries / 2)))
            }
            Err(e) => {
                tracing::debug!(target = %self.target, error = %e, "append-entries failed");
                Err(e.into_rpc_error())
            }
        }
    }

    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<C>,
        _option: RPCOption,
    ) -> RpcResult<C, InstallSnapshotResponse<C::NodeId>, InstallSnapshotError> {
        // Unreachable in practice: openraft calls `install_snapshot` only from the default `full_snapshot`,
        // which this type overrides.
        Err(TransportError::ChunkedSnapshot.into_rpc_error())
    }

    async fn vote(&mut self, rpc: VoteRequest<C::NodeId>, option: RPCOption) -> RpcResult<C, VoteResponse<C::NodeId>> {
        let result = match codec::encode(&rpc) {
            Ok(body) => self.post::<VoteResult<C::NodeId>>(VOTE_PATH, body, option.hard_ttl()).await,
            Err(e) => Err(TransportError::Encode(e)),
        };
        let result = result.and_then(|answer| self.sane(answer, sanity::vote_response));
        match result {
            Ok(answer) => answer.map_err(|e| RPCError::RemoteError(self.remote(e))),
            Err(e) => {
                tracing::debug!(target = %self.target, error = %e, "vote failed");
                Err(e.into_rpc_error())
            }
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote<C::NodeId>,
        snapshot: Snapshot<C>,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<C::NodeId>, StreamingError<C, Fatal<C::NodeId>>> {
        let send = self.send_chunks(vote, snapshot, option);
        // openraft cancels when the replication stream ends (leadership lost, member removed): stop at once
        // rather than finish sending a snapshot nobody waits for.
        let result = tokio::select! {
            closed = cancel => return Err(StreamingError::Closed(closed)),
            result = send => result,
        };
        match result {
            Ok(answer) => answer.map_err(|e| StreamingError::RemoteError(self.remote(e))),
            Err(SendError::Storage(e)) => Err(StorageError::from(e).into()),
            Err(SendError::Transport(e)) => {
                tracing::warn!(target = %self.target, error = %e, "sending snapshot failed");
                Err(match e.into_openraft() {
                    Ok(unreachable) => StreamingError::Unreachable(unreachable),
                    Err(network) => StreamingError::Network(network),
                })
            }
        }
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(self.unreachable_backoff))
    }
}

impl<C: RaftTypeConfig<Node = ClusterNode>> HttpNetwork<C> {
    /// Sends `snapshot` in order, one chunk at a time (read from the snapshot as it goes, never the whole of it
    /// into a second buffer), and returns the receiver's answer to the last chunk.
    async fn send_chunks(
        &self,
        vote: Vote<C::NodeId>,
        mut snapshot: Snapshot<C>,
        option: RPCOption,
    ) -> Result<crate::wire::SnapshotResult<C::NodeId>, SendError<C>> {
        let meta = snapshot.meta.clone();
        let signature = meta.signature();
        let storage =
            |e: std::io::Error| SendError::Storage(StorageIOError::read_snapshot(Some(signature.clone()), &e));
        let total = snapshot.snapshot.seek(SeekFrom::End(0)).await.map_err(storage)?;
        snapshot.snapshot.seek(SeekFrom::Start(0)).await.map_err(storage)?;
        let chunk_bytes = self.snapshot_chunk_bytes.clamp(1, self.max_message_bytes / 2);
        let mut offset = 0u64;
        loop {
            let want = usize::try_from(total - offset).unwrap_or(usize::MAX).min(chunk_bytes);
            let mut data = vec![0u8; want];
            snapshot.snapshot.read_exact(&mut data).await.map_err(storage)?;
            let done = offset + want as u64 == total;
            let chunk = SnapshotChunk { vote: vote.clone(), meta: meta.clone(), offset, total, data, done };
            let body = codec::encode(&chunk).map_err(|e| SendError::Transport(TransportError::Encode(e)))?;
            let ttl = option.hard_ttl().max(if done { LAST_CHUNK_TTL } else { CHUNK_TTL });
            let answer =
                self.post::<ChunkResult<C::NodeId>>(CHUNK_PATH, body, ttl).await.map_err(SendError::Transport)?;
            match answer {
                Err(fatal) => return Ok(Err(fatal)),
                Ok(Some(response)) if done => {
                    return self
                        .sane(Ok::<_, openraft::error::Fatal<C::NodeId>>(response), sanity::snapshot_response)
                        .map_err(SendError::Transport);
                }
                Ok(None) if !done => {}
                Ok(_) => {
                    let message = format!("answer to the chunk at {offset} (done: {done}) does not fit it");
                    return Err(SendError::Transport(TransportError::Protocol(message)));
                }
            }
            offset += want as u64;
            if offset % (64 * 1024 * 1024) < chunk_bytes as u64 {
                tracing::info!(target = %self.target, sent = offset, total, "sending a snapshot");
            }
        }
    }
}

/// Why sending a snapshot failed.
enum SendError<C: RaftTypeConfig> {
    /// The snapshot could not be read here.
    Storage(StorageIOError<C::NodeId>),
    /// A chunk could not be delivered or was refused.
    Transport(TransportError),
}
