//! openraft glue for the discovery registry: the node type and the network over HTTP.
//!
//! This crate knows openraft and HTTP, nothing of the registry's meaning: it moves opaque (serde) commands.
//! Everything is generic over `C: RaftTypeConfig<Node = ClusterNode>`; the application declares its type config.
//!
//! # Layout
//!
//! - [`node`]: [`ClusterNode`], the openraft `Node` (advertised `host:port` and zone).
//! - [`codec`]: bincode (serde) encoding of every RPC body, with a decode size limit.
//! - [`wire`]: the HTTP contract shared by both ends: paths, the snapshot body, the response types.
//! - [`client`]: [`NetworkConfig`] and [`HttpNetworkFactory`], openraft's `RaftNetworkFactory`, keeping one pooled
//!   `reqwest` client per peer.
//! - [`network`]: [`HttpNetwork`], openraft's `RaftNetwork`: one POST per RPC, snapshots in chunks.
//! - [`receive`]: [`SnapshotReceiver`], which takes snapshot chunks in order into a file and installs the last.
//! - [`transport_error`]: how an HTTP failure becomes an openraft error (`Unreachable` backs off, `NetworkError`
//!   retries, a remote `RaftError` is a `RemoteError`).
//! - [`server`]: [`raft_routes`], the axum routes that feed those RPCs into a local `openraft::Raft`.
//! - [`sanity`]: the bounds and shape every term and log index from a peer must satisfy before openraft sees it.
//! - [`sender`]: who may send Raft RPCs to a node (its members; anyone while it is in no cluster yet).
//! - [`auth`]: [`require_token`], the cluster-token check the node puts on `/raft/*`, `/internal/*`, `/admin/*`.
//!
//! # Wiring (what the node does)
//!
//! ```ignore
//! let network = HttpNetworkFactory::new(NetworkConfig { token: token.clone(), ..NetworkConfig::default() });
//! let raft = openraft::Raft::new(id, raft_config, network, log_store, state_machine).await?;
//! // Routes first, then the guard: `require_token` covers the routes the router has when it is called.
//! let internal = require_token(raft_routes(raft.clone()).merge(internal_and_admin_routes), token);
//! let app = public_api_routes.merge(internal);
//! ```
//!
//! # Snapshots
//!
//! A snapshot travels in order, in chunks of at most `NetworkConfig::snapshot_chunk_bytes` (4 MiB by default),
//! each one `POST /raft/snapshot_chunk` ([`SnapshotChunk`]), from `RaftNetwork::full_snapshot` on the sending
//! side; the receiver appends them to a file ([`receive`]) and installs the snapshot with
//! `Raft::install_full_snapshot` after the last one. No size bound per snapshot, one per chunk (openraft 0.9's
//! own chunked `install_snapshot` is not used: it needs a seekable `SnapshotData` and says nothing of the total,
//! which progress reports need). `POST /raft/snapshot` (a whole snapshot in one body, from earlier versions) is
//! still received.

pub mod auth;
pub mod client;
pub mod codec;
pub mod network;
pub mod node;
pub mod receive;
pub mod sanity;
pub mod sender;
pub mod server;
pub mod transport_error;
pub mod wire;

pub use auth::{check_token, require_token, TOKEN_HEADER};
pub use client::{HttpNetworkFactory, NetworkConfig};
pub use codec::{CodecError, MAX_MESSAGE_BYTES};
pub use network::HttpNetwork;
pub use node::ClusterNode;
pub use receive::{ReceiveProgress, SnapshotReceiver};
pub use sanity::{MAX_INDEX, MAX_TERM};
pub use server::{raft_routes, raft_routes_with};
pub use transport_error::TransportError;
pub use wire::{SnapshotChunk, SnapshotRequest, APPEND_PATH, CHUNK_PATH, SNAPSHOT_PATH, VOTE_PATH};
