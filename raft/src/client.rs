//! The sending side of the Raft network, part 1: its settings and openraft's `RaftNetworkFactory`.
//!
//! Invariants:
//! - One pooled `reqwest::Client` per peer id, built once and reused by every network openraft asks for (one per
//!   replication stream, one per election round), so connections are kept alive across RPCs. A peer whose address
//!   changes gets a fresh client. Entries of removed members stay (a few bytes each; membership changes are rare).
//! - Building a client never panics: if it fails, the networks handed out report it as `Unreachable` on every RPC.
//!
//! The RPCs themselves are in [`crate::network`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::network::RaftNetworkFactory;
use openraft::RaftTypeConfig;

use crate::codec::MAX_MESSAGE_BYTES;
use crate::network::{HttpNetwork, PeerClient};
use crate::node::ClusterNode;

/// Default time allowed to open a TCP connection before the peer counts as unreachable.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Default pause openraft makes before retrying an unreachable peer (openraft's own default).
pub const DEFAULT_UNREACHABLE_BACKOFF: Duration = Duration::from_millis(500);
/// How long an idle keep-alive connection stays in a peer's pool. Heartbeats are far more frequent.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Settings of the network client.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// Cluster token sent as `x-discovery-token`; `None` sends none.
    pub token: Option<Arc<str>>,
    /// Time allowed to open a connection; past it the peer is `Unreachable`.
    pub connect_timeout: Duration,
    /// Pause before retrying a peer that was `Unreachable`.
    pub unreachable_backoff: Duration,
    /// Largest body sent; should equal the peers' limit ([`MAX_MESSAGE_BYTES`]).
    pub max_message_bytes: usize,
    /// Largest snapshot chunk sent (a snapshot of any size goes in chunks of at most this; below
    /// `max_message_bytes`).
    pub snapshot_chunk_bytes: usize,
}

/// Default [`NetworkConfig::snapshot_chunk_bytes`]: 4 MiB, a fraction of a second on any link that carries a
/// cluster, far below the body limit.
pub const DEFAULT_SNAPSHOT_CHUNK_BYTES: usize = 4 * 1024 * 1024;

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            token: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            unreachable_backoff: DEFAULT_UNREACHABLE_BACKOFF,
            max_message_bytes: MAX_MESSAGE_BYTES,
            snapshot_chunk_bytes: DEFAULT_SNAPSHOT_CHUNK_BYTES,
        }
    }
}

/// openraft's `RaftNetworkFactory` over HTTP: hands out [`HttpNetwork`]s that share one pooled client per peer.
pub struct HttpNetworkFactory<C: RaftTypeConfig> {
    config: NetworkConfig,
    /// Per peer id: the address the client was built for, and the client.
    clients: HashMap<C::NodeId, (String, PeerClient)>,
}

impl<C: RaftTypeConfig> HttpNetworkFactory<C> {
    /// A factory with no connections yet; clients are built on first use of each peer.
    pub fn new(config: NetworkConfig) -> Self {
        Self { config, clients: HashMap::new() }
    }

    fn client_for(&mut self, target: C::NodeId, addr: &str) -> PeerClient {
        if let Some((known, client)) = self.clients.get(&target) {
            if known == addr {
                return client.clone();
            }
        }
        let client = build_client(&self.config).map_err(|e| Arc::<str>::from(e.to_string()));
        self.clients.insert(target, (addr.to_owned(), client.clone()));
        client
    }
}

fn build_client(config: &NetworkConfig) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(config.connect_timeout)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        // Raft RPCs are small and latency-bound: do not let Nagle hold them back.
        .tcp_nodelay(true)
        // Peers are addressed directly; an HTTP proxy from the environment must not intercept cluster traffic.
        .no_proxy()
        .build()
}

impl<C> RaftNetworkFactory<C> for HttpNetworkFactory<C>
where
    C: RaftTypeConfig<Node = ClusterNode>,
{
    type Network = HttpNetwork<C>;

    async fn new_client(&mut self, target: C::NodeId, node: &ClusterNode) -> Self::Network {
        let client = self.client_for(target.clone(), &node.addr);
        HttpNetwork::new(target, node.clone(), client, &self.config)
    }
}
