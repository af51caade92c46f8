//! Forged and insane Raft RPCs: a sender outside the membership is refused (403), a term or index no correct
//! peer sends is refused (400) in requests and in answers, and neither refusal breaks a legitimate cluster.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::post;
use axum::Router;
use discovery_raft::codec::encode;
use discovery_raft::wire::{AppendResult, VoteResult};
use discovery_raft::{
    raft_routes, ClusterNode, HttpNetworkFactory, NetworkConfig, SnapshotRequest, APPEND_PATH, MAX_TERM, SNAPSHOT_PATH,
    VOTE_PATH,
};
use http_body_util::BodyExt;
use openraft::error::RPCError;
use openraft::network::RPCOption;
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, VoteRequest, VoteResponse};
use openraft::{
    CommittedLeaderId, Entry, EntryPayload, LogId, Membership, RaftNetwork, RaftNetworkFactory, SnapshotMeta,
    StoredMembership, Vote,
};
use support::cluster::{by_id, fast_config, start_cluster, TestNode, WAIT};
use support::TestConfig;
use tower::ServiceExt;

const TTL: Duration = Duration::from_secs(5);

async fn post_to(node: &TestNode, path: &str, body: Vec<u8>) -> (StatusCode, String) {
    let request = Request::post(path).body(Body::from(body)).unwrap();
    let response = raft_routes::<TestConfig, ()>(node.raft.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn log_id(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn vote_body(vote: Vote<u64>, last_log_id: Option<LogId<u64>>) -> Vec<u8> {
    encode(&VoteRequest::new(vote, last_log_id)).unwrap()
}

fn append_body(
    vote: Vote<u64>,
    prev_log_id: Option<LogId<u64>>,
    leader_commit: Option<LogId<u64>>,
    entries: &[LogId<u64>],
) -> Vec<u8> {
    let entries = entries.iter().map(|id| Entry::<TestConfig> { log_id: *id, payload: EntryPayload::Blank }).collect();
    encode(&AppendEntriesRequest::<TestConfig> { vote, prev_log_id, leader_commit, entries }).unwrap()
}

fn snapshot_body(vote: Vote<u64>, last_log_id: Option<LogId<u64>>) -> Vec<u8> {
    let members = BTreeMap::from([(vote.leader_id().node_id, ClusterNode::default())]);
    let membership = Membership::new(vec![BTreeSet::from([vote.leader_id().node_id])], members);
    let meta = SnapshotMeta {
        last_log_id,
        last_membership: StoredMembership::new(Some(log_id(1, 0)), membership),
        snapshot_id: "forged".into(),
    };
    encode(&SnapshotRequest { vote, meta, data: Vec::new() }).unwrap()
}

fn term_of(node: &TestNode) -> u64 {
    node.raft.metrics().borrow().current_term
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rpcs_from_a_node_outside_the_membership_are_refused() {
    let mut nodes = start_cluster(3, fast_config(), None).await;
    let leader = nodes[0].wait_for_leader(None).await;
    let follower = nodes.iter().find(|n| n.id != leader).unwrap();
    follower.wait_for_leader(None).await;
    let term = term_of(follower);

    // Node 99 is no member. Each of these, from a member, would reach Raft (the append would even make 99 the
    // follower's leader at once: a committed vote of a higher term is adopted unconditionally).
    let stranger = Vote::new_committed(term + 10, 99);
    let forged = [
        (VOTE_PATH, vote_body(Vote::new(term + 10, 99), Some(log_id(term, 1_000)))),
        (APPEND_PATH, append_body(stranger, None, None, &[])),
        (SNAPSHOT_PATH, snapshot_body(stranger, Some(log_id(term, 1_000)))),
    ];
    for (path, body) in forged {
        let (status, answer) = post_to(follower, path, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {answer}");
        assert!(answer.contains("node 99 is not a member"), "{path}: {answer}");
    }
    let metrics = follower.raft.metrics().borrow().clone();
    assert_eq!(metrics.current_term, term, "the refused RPCs did not touch the vote");
    assert_eq!(metrics.current_leader, Some(leader));
    assert_eq!(follower.sm.snapshots_installed(), 0);

    // Through the real client, the refusal is a clean `Unreachable` (openraft backs off on it).
    let mut network =
        HttpNetworkFactory::<TestConfig>::new(NetworkConfig::default()).new_client(follower.id, &follower.node()).await;
    let err = network.vote(VoteRequest::new(Vote::new(term + 10, 99), None), RPCOption::new(TTL)).await.unwrap_err();
    assert!(matches!(err, RPCError::Unreachable(_)) && err.to_string().contains("403"), "{err:?}");

    // A member still gets through (here: a vote the follower refuses on its merits, answered 200).
    let member = nodes.iter().find(|n| n.id != leader && n.id != follower.id).unwrap().id;
    let (status, answer) = post_to(follower, VOTE_PATH, vote_body(Vote::new(term, member), None)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    for node in &mut nodes {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn terms_and_indexes_out_of_bounds_are_refused_and_the_cluster_keeps_working() {
    let mut nodes = start_cluster(3, fast_config(), None).await;
    let leader = nodes[0].wait_for_leader(None).await;
    let follower = nodes.iter().find(|n| n.id != leader).unwrap();
    let other = nodes.iter().find(|n| n.id != leader && n.id != follower.id).unwrap().id;
    follower.wait_for_leader(None).await;
    let term = term_of(follower);
    let huge = u64::MAX;
    let max = discovery_raft::MAX_INDEX;
    let current = Vote::new_committed(term, leader);

    // Every one of these comes from a member. Without the bounds the first would be adopted (a leader's higher
    // committed vote), the real leader would step down to term 2^64-1, and the next election would overflow
    // `term + 1` inside openraft.
    let forged: Vec<(&str, Vec<u8>, &str)> = vec![
        (APPEND_PATH, append_body(Vote::new_committed(huge, leader), None, None, &[]), "vote term"),
        (VOTE_PATH, vote_body(Vote::new(huge, other), None), "vote term"),
        (VOTE_PATH, vote_body(Vote::new(term + 1, other), Some(log_id(term, huge))), "last_log_id index"),
        (APPEND_PATH, append_body(current, Some(log_id(term, huge)), None, &[]), "prev_log_id index"),
        (APPEND_PATH, append_body(current, None, Some(log_id(term, huge)), &[]), "leader_commit index"),
        (
            APPEND_PATH,
            append_body(current, Some(log_id(term, max)), None, &[log_id(term, max + 1)]),
            "entries[0].log_id index",
        ),
        (APPEND_PATH, append_body(current, None, None, &[log_id(term, 0), log_id(term, 5)]), "expected 1"),
        (APPEND_PATH, append_body(current, None, None, &[log_id(term + 1, 0)]), "above the sender's term"),
        (SNAPSHOT_PATH, snapshot_body(current, Some(log_id(term, huge))), "last_log_id index"),
        (SNAPSHOT_PATH, snapshot_body(Vote::new_committed(MAX_TERM + 1, leader), None), "vote term"),
    ];
    for (path, body, reason) in forged {
        let (status, answer) = post_to(follower, path, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} ({reason}): {answer}");
        assert!(answer.contains(reason), "{path}: {answer} should name {reason:?}");
    }
    assert_eq!(term_of(follower), term, "nothing reached the follower's Raft");

    // The cluster still elects and commits: stop the leader, the two others take over.
    let old = nodes.iter().position(|n| n.id == leader).unwrap();
    let mut old_leader = nodes.remove(old);
    old_leader.stop().await;
    let new_leader = nodes[0].wait_for_leader(Some(leader)).await;
    let new_leader = by_id(&nodes, new_leader);
    new_leader.wait_until_leader().await;
    let index = new_leader.raft.client_write("after".to_string()).await.unwrap().log_id.index;
    for node in &nodes {
        node.wait_applied(index).await;
        assert!(term_of(node) < 100, "node {} at term {}", node.id, term_of(node));
    }
    for node in &mut nodes {
        node.stop().await;
    }
}

/// A stub peer on a real port that answers every Raft path with `answer()`, counting the requests.
async fn stub_peer(
    answer: impl Fn(&str) -> (StatusCode, Vec<u8>) + Clone + Send + Sync + 'static,
) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let mut router = Router::new();
    for path in [APPEND_PATH, VOTE_PATH, SNAPSHOT_PATH] {
        let (answer, hits) = (answer.clone(), hits.clone());
        router = router.route(
            path,
            post(move || async move {
                hits.fetch_add(1, Ordering::SeqCst);
                answer(path)
            }),
        );
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (addr, hits)
}

#[tokio::test]
async fn an_answer_with_an_out_of_bounds_term_is_refused_by_the_sender() {
    let (addr, _) = stub_peer(|path| {
        let body = if path == VOTE_PATH {
            let answer: VoteResult<u64> = Ok(VoteResponse::new(Vote::new(u64::MAX, 9), None, true));
            encode(&answer).unwrap()
        } else {
            let answer: AppendResult<u64> = Ok(AppendEntriesResponse::HigherVote(Vote::new(u64::MAX, 9)));
            encode(&answer).unwrap()
        };
        (StatusCode::OK, body)
    })
    .await;
    let mut network = HttpNetworkFactory::<TestConfig>::new(NetworkConfig::default())
        .new_client(9, &ClusterNode { addr, zone: "z".into() })
        .await;

    let err = network.vote(VoteRequest::new(Vote::new(3, 1), None), RPCOption::new(TTL)).await.unwrap_err();
    assert!(matches!(err, RPCError::Unreachable(_)) && err.to_string().contains("term"), "{err:?}");
    let append = AppendEntriesRequest::<TestConfig> {
        vote: Vote::new_committed(3, 1),
        prev_log_id: None,
        leader_commit: None,
        entries: vec![],
    };
    let err = network.append_entries(append, RPCOption::new(TTL)).await.unwrap_err();
    assert!(matches!(err, RPCError::Unreachable(_)) && err.to_string().contains("term"), "{err:?}");
}

#[tokio::test]
async fn a_peer_refusing_the_message_itself_is_unreachable() {
    let (addr, _) = stub_peer(|_| (StatusCode::BAD_REQUEST, b"vote request refused: term too large".to_vec())).await;
    let mut network = HttpNetworkFactory::<TestConfig>::new(NetworkConfig::default())
        .new_client(9, &ClusterNode { addr, zone: "z".into() })
        .await;
    let err = network.vote(VoteRequest::new(Vote::new(3, 1), None), RPCOption::new(TTL)).await.unwrap_err();
    assert!(matches!(err, RPCError::Unreachable(_)) && err.to_string().contains("400"), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_refused_by_a_peer_backs_off_instead_of_spinning() {
    let (addr, hits) = stub_peer(|_| (StatusCode::FORBIDDEN, b"append-entries refused: not a member".to_vec())).await;
    let mut nodes = start_cluster(1, fast_config(), None).await;
    let leader = &nodes[0];
    leader.wait_until_leader().await;
    leader.raft.add_learner(2, ClusterNode { addr, zone: "z".into() }, false).await.unwrap();

    let deadline = Instant::now() + WAIT;
    while hits.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the leader never tried the learner");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A rate needs a window: 2 s at one retry per back-off (500 ms) is a handful; a hot loop would be thousands.
    let before = hits.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = hits.load(Ordering::SeqCst) - before;
    assert!(during <= 12, "{during} requests in 2 s to a peer that refuses them");
    // And the leader is fine: it still commits on its own.
    leader.raft.client_write("still here".to_string()).await.unwrap();
    nodes[0].stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_in_no_cluster_accepts_the_leader_adding_it_and_is_refused_once_removed() {
    let first = TestNode::start(1, fast_config(), None).await;
    first.raft.initialize(BTreeMap::from([(1, first.node())])).await.unwrap();
    first.wait_until_leader().await;
    first.raft.client_write("before".to_string()).await.unwrap();

    // Node 2 has an empty membership: it must take appends from node 1, which it knows nothing about yet.
    let mut second = TestNode::start(2, fast_config(), None).await;
    first.raft.add_learner(2, second.node(), true).await.unwrap();
    first.raft.change_membership([1, 2], false).await.unwrap();
    let index = first.raft.client_write("after".to_string()).await.unwrap().log_id.index;
    second.wait_applied(index).await;
    assert_eq!(second.sm.values(), ["before", "after"]);

    // Removed, node 2 is a stranger to node 1: its vote requests are refused before they reach Raft.
    first.raft.change_membership([1], false).await.unwrap();
    let term = term_of(&first);
    let (status, answer) =
        post_to(&first, VOTE_PATH, vote_body(Vote::new(term + 1, 2), Some(log_id(term, index + 10)))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert!(answer.contains("node 2 is not a member"), "{answer}");
    assert_eq!(term_of(&first), term);

    second.stop().await;
    let mut first = first;
    first.stop().await;
}
