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
//! - Snapshots go whole through `full_snapshot` (see the crate docs); `install_snapshot` is never used.

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
use crate::wire::{AppendResult, SnapshotRequest, SnapshotResult, VoteResult, APPEND_PATH, SNAPSHOT_PATH, VOTE_PATH};

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
}

impl<C: RaftTypeConfig<Node = ClusterNode>> HttpNetwork<C> {
    pub(crate) fn new(target: C::NodeId, node: ClusterNode, client: PeerClient, config: &NetworkConfig) -> Self {
        Self {
            target,
            node,
            client,
            token: config.token.clone(),
            unreachable_backoff: config.unreachable_backoff,
            max_message_bytes: config.max_message_bytes,
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
        let meta = snapshot.meta.clone();
        let data = read_snapshot_data::<C>(snapshot).await?;
        let request = SnapshotRequest { vote, meta, data };
        let send = async {
            let body = codec::encode(&request).map_err(TransportError::Encode)?;
            let answer = self.post::<SnapshotResult<C::NodeId>>(SNAPSHOT_PATH, body, option.hard_ttl()).await?;
            self.sane(answer, sanity::snapshot_response)
        };
        // openraft cancels when the replication stream ends (leadership lost, member removed): stop at once
        // rather than finish sending a snapshot nobody waits for.
        let result = tokio::select! {
            closed = cancel => return Err(StreamingError::Closed(closed)),
            result = send => result,
        };
        match result {
            Ok(answer) => answer.map_err(|e| StreamingError::RemoteError(self.remote(e))),
            Err(e) => {
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

/// Reads the whole snapshot from the start, whatever position the state machine left it at.
async fn read_snapshot_data<C: RaftTypeConfig>(
    mut snapshot: Snapshot<C>,
) -> Result<Vec<u8>, StreamingError<C, Fatal<C::NodeId>>> {
    let signature = snapshot.meta.signature();
    let mut data = Vec::new();
    let read = async {
        snapshot.snapshot.seek(SeekFrom::Start(0)).await?;
        snapshot.snapshot.read_to_end(&mut data).await
    };
    match read.await {
        Ok(_) => Ok(data),
        Err(e) => Err(StorageError::from(StorageIOError::read_snapshot(Some(signature), &e)).into()),
    }
}
