//! The network client's error mapping: what openraft sees when a peer is down, slow, stopped or refuses us.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use discovery_raft::{ClusterNode, HttpNetwork, HttpNetworkFactory, NetworkConfig};
use openraft::error::{Fatal, RPCError, RaftError, StreamingError};
use openraft::network::RPCOption;
use openraft::raft::{AppendEntriesRequest, VoteRequest};
use openraft::{
    CommittedLeaderId, Entry, EntryPayload, LogId, RaftNetwork, RaftNetworkFactory, Snapshot, SnapshotMeta, Vote,
};
use support::cluster::{fast_config, TestNode};
use support::TestConfig;

/// Generous: a refused connection must fail far sooner than this.
const LONG_TTL: Duration = Duration::from_secs(10);

/// An address on which nothing listens: bind an ephemeral port, then free it.
async fn dead_addr() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().to_string()
}

async fn network_to(addr: String, config: NetworkConfig) -> HttpNetwork<TestConfig> {
    let mut factory = HttpNetworkFactory::<TestConfig>::new(config);
    factory.new_client(9, &ClusterNode { addr, zone: "z".into() }).await
}

fn vote_request() -> VoteRequest<u64> {
    VoteRequest::new(Vote::new(3, 1), None)
}

fn append_request(sizes: &[usize]) -> AppendEntriesRequest<TestConfig> {
    let entries = sizes
        .iter()
        .zip(1..)
        .map(|(size, index)| Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal("x".repeat(*size)),
        })
        .collect();
    AppendEntriesRequest { vote: Vote::new_committed(1, 1), prev_log_id: None, leader_commit: None, entries }
}

#[tokio::test]
async fn a_refused_connection_is_unreachable_at_once() {
    let mut network = network_to(dead_addr().await, NetworkConfig::default()).await;

    let started = Instant::now();
    let err = network.vote(vote_request(), RPCOption::new(LONG_TTL)).await.unwrap_err();
    assert!(matches!(err, RPCError::Unreachable(_)), "{err:?}");
    let err = network.append_entries(append_request(&[10]), RPCOption::new(LONG_TTL)).await.unwrap_err();
    assert!(matches!(err, RPCError::Unreachable(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn a_snapshot_to_a_refused_connection_is_unreachable() {
    let mut network = network_to(dead_addr().await, NetworkConfig::default()).await;
    let snapshot = Snapshot::<TestConfig> {
        meta: SnapshotMeta::default(),
        snapshot: Box::new(std::io::Cursor::new(vec![1, 2, 3])),
    };
    let err = network
        .full_snapshot(Vote::new_committed(1, 1), snapshot, std::future::pending(), RPCOption::new(LONG_TTL))
        .await
        .unwrap_err();
    assert!(matches!(err, StreamingError::Unreachable(_)), "{err:?}");
}

#[tokio::test]
async fn a_peer_that_never_answers_is_a_network_error_after_the_ttl() {
    // Bound but never accepting: the kernel completes the handshake, the request just hangs.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut network = network_to(silent.local_addr().unwrap().to_string(), NetworkConfig::default()).await;

    let ttl = Duration::from_millis(300);
    let started = Instant::now();
    let err = network.vote(vote_request(), RPCOption::new(ttl)).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(matches!(err, RPCError::Network(_)), "{err:?}");
    assert!(elapsed >= ttl && elapsed < Duration::from_secs(5), "took {elapsed:?}");
    drop(silent);
}

#[tokio::test]
async fn too_many_entries_for_one_message_ask_openraft_for_fewer() {
    let config = NetworkConfig { max_message_bytes: 1_000, ..NetworkConfig::default() };
    let mut network = network_to(dead_addr().await, config).await;

    let err =
        network.append_entries(append_request(&[400, 400, 400, 400]), RPCOption::new(LONG_TTL)).await.unwrap_err();
    match err {
        RPCError::PayloadTooLarge(too_large) => assert_eq!(too_large.entries_hint(), 2),
        other => panic!("expected PayloadTooLarge, got {other:?}"),
    }

    // One entry cannot be split: back off instead of retrying it in a loop.
    let err = network.append_entries(append_request(&[2_000]), RPCOption::new(LONG_TTL)).await.unwrap_err();
    assert!(matches!(err, RPCError::Unreachable(_)), "{err:?}");
}

#[tokio::test]
async fn a_stopped_peer_raft_is_a_remote_fatal_error() {
    let mut node = TestNode::start(1, fast_config(), None).await;
    node.raft.shutdown().await.unwrap();
    let mut network = network_to(node.addr.clone(), NetworkConfig::default()).await;

    let err = network.vote(vote_request(), RPCOption::new(LONG_TTL)).await.unwrap_err();
    match err {
        RPCError::RemoteError(remote) => {
            assert_eq!(remote.target, 9);
            assert_eq!(remote.target_node.unwrap().addr, node.addr);
            assert_eq!(remote.source, RaftError::Fatal(Fatal::Stopped));
        }
        other => panic!("expected RemoteError, got {other:?}"),
    }
    node.stop_server().await;
}

#[tokio::test]
async fn the_cluster_token_is_sent_and_a_missing_one_backs_off() {
    let token: Arc<str> = Arc::from("s3cret");
    let mut node = TestNode::start(1, fast_config(), Some(token.clone())).await;

    let mut without = network_to(node.addr.clone(), NetworkConfig::default()).await;
    let err = without.vote(vote_request(), RPCOption::new(LONG_TTL)).await.unwrap_err();
    assert!(matches!(err, RPCError::Unreachable(_)), "{err:?}");
    assert!(err.to_string().contains("401"), "{err}");

    let config = NetworkConfig { token: Some(token), ..NetworkConfig::default() };
    let mut with = network_to(node.addr.clone(), config).await;
    let answer = with.vote(vote_request(), RPCOption::new(LONG_TTL)).await.unwrap();
    assert!(answer.vote_granted, "{answer:?}");

    node.stop().await;
}
