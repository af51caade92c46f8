//! The Raft routes: bad bodies are clear 400s, oversized ones 413, good ones reach Raft and its answer is encoded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use discovery_raft::codec::{decode, encode};
use discovery_raft::wire::{AppendResult, VoteResult};
use discovery_raft::{raft_routes, APPEND_PATH, MAX_MESSAGE_BYTES, SNAPSHOT_PATH, VOTE_PATH};
use http_body_util::BodyExt;
use openraft::error::{Fatal, RaftError};
use openraft::raft::VoteRequest;
use openraft::Vote;
use support::cluster::{fast_config, TestNode};
use tower::ServiceExt;

async fn post(router: Router, path: &str, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
    let request = Request::post(path).body(Body::from(body)).unwrap();
    let response = router.oneshot(request).await.unwrap();
    let status = response.status();
    (status, response.into_body().collect().await.unwrap().to_bytes().to_vec())
}

#[tokio::test]
async fn a_body_that_does_not_decode_is_a_400_naming_the_rpc() {
    let mut node = TestNode::start(1, fast_config(), None).await;
    for (path, what) in [(APPEND_PATH, "append-entries"), (VOTE_PATH, "vote"), (SNAPSHOT_PATH, "snapshot")] {
        let (status, body) = post(raft_routes(node.raft.clone()), path, b"\xffgarbage".to_vec()).await;
        let body = String::from_utf8(body).unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert!(body.contains(&format!("bad {what} request body")), "{path}: {body}");
    }
    node.stop().await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413() {
    let mut node = TestNode::start(1, fast_config(), None).await;
    let (status, _) = post(raft_routes(node.raft.clone()), APPEND_PATH, vec![0; MAX_MESSAGE_BYTES + 1]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    node.stop().await;
}

#[tokio::test]
async fn a_vote_reaches_raft_and_its_answer_comes_back_encoded() {
    let mut node = TestNode::start(1, fast_config(), None).await;
    // An uninitialized node grants a vote to a candidate with a higher term.
    // Node ids are u64: an unannotated literal would make this a VoteRequest<i32>, encoded differently.
    let request = VoteRequest::<u64>::new(Vote::new(5, 2), None);
    let (status, body) = post(raft_routes(node.raft.clone()), VOTE_PATH, encode(&request).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let answer: VoteResult<u64> = decode(&body).unwrap();
    let answer = answer.unwrap();
    assert!(answer.vote_granted, "{answer:?}");
    assert_eq!(answer.vote, Vote::new(5, 2));
    node.stop().await;
}

#[tokio::test]
async fn a_stopped_raft_answers_its_fatal_error_with_200() {
    let mut node = TestNode::start(1, fast_config(), None).await;
    node.raft.shutdown().await.unwrap();
    let request = openraft::raft::AppendEntriesRequest::<support::TestConfig> {
        vote: Vote::new_committed(1, 2),
        prev_log_id: None,
        leader_commit: None,
        entries: vec![],
    };
    let (status, body) = post(raft_routes(node.raft.clone()), APPEND_PATH, encode(&request).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let answer: AppendResult<u64> = decode(&body).unwrap();
    assert_eq!(answer, Err(RaftError::Fatal(Fatal::Stopped)));
    node.stop_server().await;
}
