//! How a failed HTTP exchange becomes an openraft error, which decides what openraft does next.
//!
//! - [`Unreachable`]: openraft backs off ([`crate::client::NetworkConfig::unreachable_backoff`]) before the next
//!   RPC to that peer. Used when nothing is listening (connection refused, connect timeout), and for failures a
//!   retry cannot fix soon (wrong cluster token, a message the peer can never accept (400, 413), a peer that
//!   refuses this node as not a member (403), an answer with insane terms), so they are not hammered.
//! - [`NetworkError`]: openraft retries on its own schedule. Used for everything transient on an established path:
//!   a request timeout (peer slow or paused), a reset connection, a 5xx, an unreadable answer.
//! - A `RaftError` the peer's `Raft` returned is not a transport error: the client wraps it in `RemoteError`.
//!
//! openraft's own `Timeout` variant is not produced here: it needs the sender's node id, and openraft already
//! wraps every RPC in its own timer, which reports `Timeout` first.

use openraft::error::{NetworkError, RPCError, Unreachable};
use openraft::{Node, NodeId};
use reqwest::StatusCode;

use crate::codec::CodecError;

/// Why an RPC did not produce an answer from the peer's `Raft`.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The per-peer HTTP client could not be built (kept until the next `new_client`).
    #[error("cannot build the HTTP client for {addr}: {message}")]
    ClientBuild {
        /// Peer address.
        addr: String,
        /// reqwest's explanation.
        message: String,
    },
    /// No connection could be opened (refused, unroutable, or the connect timeout elapsed).
    #[error("cannot connect to {url}: {source}")]
    Connect {
        /// Request URL.
        url: String,
        /// The underlying failure.
        source: reqwest::Error,
    },
    /// The request failed after connecting (timeout, reset, truncated body).
    #[error("request to {url} failed: {source}")]
    Request {
        /// Request URL.
        url: String,
        /// The underlying failure.
        source: reqwest::Error,
    },
    /// The peer answered with a status other than 200.
    #[error("{url} answered {status}: {message}")]
    Status {
        /// Request URL.
        url: String,
        /// HTTP status.
        status: StatusCode,
        /// The start of the answer's body, for the log.
        message: String,
    },
    /// The request could not be encoded (including: larger than the limit).
    #[error("cannot encode the request: {0}")]
    Encode(#[source] CodecError),
    /// The answer could not be decoded.
    #[error("cannot decode the answer from {url}: {source}")]
    Decode {
        /// Request URL.
        url: String,
        /// The codec failure.
        source: CodecError,
    },
    /// The peer answered terms or indexes no correct peer sends (see [`crate::sanity`]).
    #[error("refused the answer of {addr}: {reason}")]
    Insane {
        /// Peer address.
        addr: String,
        /// What is wrong with the answer.
        reason: crate::sanity::Insane,
    },
    /// The peer's answer does not fit the request (a snapshot chunk answered as the last one, or the reverse).
    #[error("protocol: {0}")]
    Protocol(String),
    /// This network sends snapshots whole; openraft's chunked API was called anyway.
    #[error("chunked install_snapshot is not supported: snapshots are sent whole by full_snapshot")]
    ChunkedSnapshot,
}

impl TransportError {
    /// Whether openraft should back off before trying this peer again (see the module docs).
    pub fn is_unreachable(&self) -> bool {
        match self {
            Self::ClientBuild { .. }
            | Self::Connect { .. }
            | Self::ChunkedSnapshot
            | Self::Insane { .. }
            | Self::Protocol(_) => true,
            Self::Encode(CodecError::TooLarge { .. }) => true,
            Self::Status { status, .. } => {
                // 400: the peer cannot decode the body (another version) or refuses its terms; retrying at once
                // would only send the same refused message again.
                matches!(
                    *status,
                    StatusCode::BAD_REQUEST
                        | StatusCode::UNAUTHORIZED
                        | StatusCode::FORBIDDEN
                        | StatusCode::PAYLOAD_TOO_LARGE
                )
            }
            Self::Request { .. } | Self::Encode(_) | Self::Decode { .. } => false,
        }
    }

    /// Whether the peer refused the body for its size (its limit, or ours before sending).
    pub fn is_too_large(&self) -> bool {
        match self {
            Self::Encode(CodecError::TooLarge { .. }) => true,
            Self::Status { status, .. } => *status == StatusCode::PAYLOAD_TOO_LARGE,
            _ => false,
        }
    }

    /// The transport-level openraft error for this failure.
    pub fn into_rpc_error<NID: NodeId, N: Node, E: std::error::Error>(self) -> RPCError<NID, N, E> {
        match self.into_openraft() {
            Ok(unreachable) => RPCError::Unreachable(unreachable),
            Err(network) => RPCError::Network(network),
        }
    }

    /// `Ok(Unreachable)` or `Err(NetworkError)`: the two kinds every openraft error enum has a variant for.
    pub(crate) fn into_openraft(self) -> Result<Unreachable, NetworkError> {
        if self.is_unreachable() {
            Ok(Unreachable::new(&self))
        } else {
            Err(NetworkError::new(&self))
        }
    }
}
