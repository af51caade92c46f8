//! A real single-node openraft node on these stores: write, snapshot, write more, stop, restart.
//! After the restart the application must hold every acknowledged write: restored from the snapshot,
//! then the committed log after it re-applied by openraft.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use discovery_storage::open_storage;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::{BasicNode, Config, Raft};

use crate::common::{KvApp, TestCmd, TestConfig};

/// A one-node cluster never sends an RPC; if it did, the peer is unreachable.
struct NoPeers;

fn no_peer<E: std::error::Error>() -> RPCError<u64, BasicNode, E> {
    RPCError::Network(NetworkError::new(&std::io::Error::other("single-node test has no peers")))
}

impl RaftNetwork<TestConfig> for NoPeers {
    async fn append_entries(
        &mut self,
        _: AppendEntriesRequest<TestConfig>,
        _: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        Err(no_peer())
    }

    async fn install_snapshot(
        &mut self,
        _: InstallSnapshotRequest<TestConfig>,
        _: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>> {
        Err(no_peer())
    }

    async fn vote(
        &mut self,
        _: VoteRequest<u64>,
        _: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        Err(no_peer())
    }
}

impl RaftNetworkFactory<TestConfig> for NoPeers {
    type Network = NoPeers;

    async fn new_client(&mut self, _: u64, _: &BasicNode) -> NoPeers {
        NoPeers
    }
}

async fn start(dir: &std::path::Path) -> (Raft<TestConfig>, Arc<KvApp>) {
    let app = Arc::new(KvApp::default());
    let (log, sm) = open_storage::<TestConfig, _>(dir, 1, Arc::clone(&app)).unwrap();
    let config =
        Config { heartbeat_interval: 50, election_timeout_min: 150, election_timeout_max: 300, ..Default::default() };
    let raft = Raft::new(1, Arc::new(config.validate().unwrap()), NoPeers, log, sm).await.unwrap();
    (raft, app)
}

async fn write(raft: &Raft<TestConfig>, key: &str, value: &str) -> u64 {
    let cmd = TestCmd { key: key.to_string(), value: value.to_string() };
    raft.client_write(cmd).await.unwrap().log_id.index
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_rebuilds_its_state_from_snapshot_and_committed_log() {
    let dir = tempfile::tempdir().unwrap();
    let timeout = Some(Duration::from_secs(10));
    let (expected, last_index, snapshot_index) = {
        let (raft, app) = start(dir.path()).await;
        raft.initialize(BTreeMap::from([(1, BasicNode::default())])).await.unwrap();
        raft.wait(timeout).current_leader(1, "leader").await.unwrap();
        for i in 0..10 {
            write(&raft, &format!("k{i}"), "before").await;
        }
        raft.trigger().snapshot().await.unwrap();
        let metrics = raft.wait(timeout).metrics(|m| m.snapshot.is_some(), "snapshot built").await.unwrap();
        let snapshot_index = metrics.snapshot.unwrap().index;
        let mut last_index = 0;
        for i in 5..15 {
            last_index = write(&raft, &format!("k{i}"), "after").await;
        }
        let expected = app.kv();
        raft.shutdown().await.unwrap();
        (expected, last_index, snapshot_index)
    };
    assert!(snapshot_index < last_index);

    let (raft, app) = start(dir.path()).await;
    raft.wait(timeout).applied_index_at_least(Some(last_index), "re-applied").await.unwrap();
    assert_eq!(app.kv(), expected);
    assert_eq!(app.kv().len(), 15);
    // Restored from the snapshot first: the first apply batch after restart starts after it.
    assert!(app.batches().iter().sum::<usize>() <= (last_index - snapshot_index) as usize);
    raft.shutdown().await.unwrap();
}
