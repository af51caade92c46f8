//! Raft nodes served over real HTTP on ephemeral ports, and waits on their metrics (never sleeps).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use discovery_raft::{raft_routes, require_token, ClusterNode, HttpNetworkFactory, NetworkConfig};
use openraft::{Raft, ServerState};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::store::{LogStore, StateMachine};
use super::TestConfig;

/// Upper bound on any wait in these tests; generous so a loaded CI machine does not fail them.
pub const WAIT: Duration = Duration::from_secs(20);

/// Fast timings so elections and replication happen within milliseconds.
pub fn fast_config() -> openraft::Config {
    openraft::Config {
        heartbeat_interval: 100,
        election_timeout_min: 400,
        election_timeout_max: 800,
        install_snapshot_timeout: 5_000,
        ..Default::default()
    }
}

/// One Raft node and the HTTP server feeding it.
pub struct TestNode {
    pub id: u64,
    pub addr: String,
    pub raft: Raft<TestConfig>,
    pub sm: StateMachine,
    server: Option<(oneshot::Sender<()>, JoinHandle<std::io::Result<()>>)>,
}

impl TestNode {
    /// Binds `127.0.0.1:0` first, so the advertised address carries the real port, then starts Raft and HTTP.
    pub async fn start(id: u64, config: openraft::Config, token: Option<Arc<str>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let config = Arc::new(config.validate().unwrap());
        let network = HttpNetworkFactory::new(NetworkConfig { token: token.clone(), ..NetworkConfig::default() });
        let sm = StateMachine::default();
        let raft = Raft::new(id, config, network, LogStore::default(), sm.clone()).await.unwrap();
        let app = require_token(raft_routes(raft.clone()), token);
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop_rx.await;
                })
                .await
        });
        Self { id, addr, raft, sm, server: Some((stop_tx, server)) }
    }

    pub fn node(&self) -> ClusterNode {
        ClusterNode { addr: self.addr.clone(), zone: format!("zone-{}", self.id) }
    }

    /// Stops accepting connections and waits for the server to finish (idle keep-alive connections are closed).
    pub async fn stop_server(&mut self) {
        if let Some((stop, server)) = self.server.take() {
            let _ = stop.send(());
            tokio::time::timeout(WAIT, server).await.expect("server did not stop").unwrap().unwrap();
        }
    }

    /// Shuts Raft down, then the HTTP server: the node is gone from the cluster's point of view.
    pub async fn stop(&mut self) {
        self.raft.shutdown().await.unwrap();
        self.stop_server().await;
    }

    /// Waits until this node knows a leader other than `not`, and returns it.
    pub async fn wait_for_leader(&self, not: Option<u64>) -> u64 {
        let metrics = self
            .raft
            .wait(Some(WAIT))
            .metrics(
                |m| m.current_leader.is_some() && m.current_leader != not,
                format!("node {} sees a leader other than {not:?}", self.id),
            )
            .await
            .unwrap();
        metrics.current_leader.unwrap()
    }

    /// Waits until this node is the leader.
    pub async fn wait_until_leader(&self) {
        self.raft.wait(Some(WAIT)).state(ServerState::Leader, format!("node {} is leader", self.id)).await.unwrap();
    }

    /// Waits until this node has applied the log up to `index`.
    pub async fn wait_applied(&self, index: u64) {
        self.raft
            .wait(Some(WAIT))
            .applied_index_at_least(Some(index), format!("node {} applied {index}", self.id))
            .await
            .unwrap();
    }
}

/// Starts `n` nodes (ids 1..=n) and initializes node 1 with all of them as voters.
pub async fn start_cluster(n: u64, config: openraft::Config, token: Option<Arc<str>>) -> Vec<TestNode> {
    let mut nodes = Vec::new();
    for id in 1..=n {
        nodes.push(TestNode::start(id, config.clone(), token.clone()).await);
    }
    let members: BTreeMap<u64, ClusterNode> = nodes.iter().map(|node| (node.id, node.node())).collect();
    nodes[0].raft.initialize(members).await.unwrap();
    nodes
}

/// The node with `id`.
pub fn by_id(nodes: &[TestNode], id: u64) -> &TestNode {
    nodes.iter().find(|node| node.id == id).unwrap()
}
