//! The wire codec: real openraft messages survive a round trip, and bad or oversized bodies are refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};

use discovery_raft::codec::{decode, encode, CodecError, MAX_MESSAGE_BYTES};
use discovery_raft::wire::{AppendResult, SnapshotResult, VoteResult};
use discovery_raft::{ClusterNode, SnapshotRequest};
use openraft::error::{Fatal, RaftError};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Membership, SnapshotMeta, StoredMembership, Vote};
use support::TestConfig;

fn log_id(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn members() -> BTreeMap<u64, ClusterNode> {
    (1..=3)
        .map(|id| {
            let node = ClusterNode { addr: format!("10.0.0.{id}:7171"), zone: "sh001".into() };
            (id, node)
        })
        .collect()
}

fn membership() -> Membership<u64, ClusterNode> {
    Membership::new(vec![BTreeSet::from([1, 2, 3])], members())
}

#[test]
fn append_entries_request_with_every_payload_kind_round_trips() {
    let entries = vec![
        Entry::<TestConfig> { log_id: log_id(2, 5), payload: EntryPayload::Blank },
        Entry { log_id: log_id(2, 6), payload: EntryPayload::Normal("register app=demo.service".to_string()) },
        Entry { log_id: log_id(2, 7), payload: EntryPayload::Membership(membership()) },
    ];
    let request = AppendEntriesRequest::<TestConfig> {
        vote: Vote::new_committed(2, 1),
        prev_log_id: Some(log_id(1, 4)),
        leader_commit: Some(log_id(2, 6)),
        entries: entries.clone(),
    };

    let decoded: AppendEntriesRequest<TestConfig> = decode(&encode(&request).unwrap()).unwrap();

    assert_eq!(decoded.vote, request.vote);
    assert_eq!(decoded.prev_log_id, request.prev_log_id);
    assert_eq!(decoded.leader_commit, request.leader_commit);
    assert_eq!(decoded.entries, entries);
}

#[test]
fn vote_request_and_answers_round_trip() {
    let request = VoteRequest::new(Vote::new(7, 3), Some(log_id(6, 42)));
    let decoded: VoteRequest<u64> = decode(&encode(&request).unwrap()).unwrap();
    assert_eq!(decoded, request);

    let granted: VoteResult<u64> = Ok(VoteResponse::new(Vote::new(7, 3), Some(log_id(6, 42)), true));
    assert_eq!(decode::<VoteResult<u64>>(&encode(&granted).unwrap()).unwrap(), granted);

    // A remote Raft error must survive too: the client turns it into `RemoteError`.
    let stopped: AppendResult<u64> = Err(RaftError::Fatal(Fatal::Stopped));
    assert_eq!(decode::<AppendResult<u64>>(&encode(&stopped).unwrap()).unwrap(), stopped);
    let higher: AppendResult<u64> = Ok(AppendEntriesResponse::HigherVote(Vote::new(9, 2)));
    assert_eq!(decode::<AppendResult<u64>>(&encode(&higher).unwrap()).unwrap(), higher);
}

#[test]
fn snapshot_request_and_answer_round_trip() {
    let request = SnapshotRequest::<u64, ClusterNode> {
        vote: Vote::new_committed(3, 1),
        meta: SnapshotMeta {
            last_log_id: Some(log_id(3, 100)),
            last_membership: StoredMembership::new(Some(log_id(1, 1)), membership()),
            snapshot_id: "100-1".to_string(),
        },
        data: (0..=255u8).cycle().take(100_000).collect(),
    };
    let bytes = encode(&request).unwrap();
    // The data travels as one byte string, not as 100 000 separately encoded integers (values >= 251 would
    // take 3 bytes each as varints).
    assert!(bytes.len() < request.data.len() + 1_000, "encoded size {}", bytes.len());
    assert_eq!(decode::<SnapshotRequest<u64, ClusterNode>>(&bytes).unwrap(), request);

    let answer: SnapshotResult<u64> = Ok(SnapshotResponse::new(Vote::new_committed(3, 1)));
    assert_eq!(decode::<SnapshotResult<u64>>(&encode(&answer).unwrap()).unwrap(), answer);
}

#[test]
fn garbage_is_a_decode_error() {
    let err = decode::<AppendEntriesRequest<TestConfig>>(b"\xff\xff\xff not bincode").unwrap_err();
    assert!(matches!(err, CodecError::Decode(_)), "{err:?}");
    let err = decode::<VoteRequest<u64>>(&[]).unwrap_err();
    assert!(matches!(err, CodecError::Decode(_)), "{err:?}");
}

#[test]
fn trailing_bytes_are_refused() {
    let mut bytes = encode(&VoteRequest::<u64>::new(Vote::new(1, 1), None)).unwrap();
    bytes.push(0);
    let err = decode::<VoteRequest<u64>>(&bytes).unwrap_err();
    assert!(matches!(err, CodecError::TrailingBytes { extra: 1 }), "{err:?}");
}

#[test]
fn a_body_over_the_limit_is_refused_before_decoding() {
    let body = vec![0u8; MAX_MESSAGE_BYTES + 1];
    let err = decode::<Vec<u8>>(&body).unwrap_err();
    assert!(
        matches!(err, CodecError::TooLarge { len, limit } if len == MAX_MESSAGE_BYTES + 1 && limit == MAX_MESSAGE_BYTES),
        "{err:?}"
    );
}

#[test]
fn a_forged_length_does_not_allocate() {
    // varint 0xFD = "u64 follows": a vector claiming 2^40 elements, in a body of 9 bytes.
    let mut body = vec![0xFD];
    body.extend_from_slice(&(1u64 << 40).to_le_bytes());
    let err = decode::<Vec<u64>>(&body).unwrap_err();
    assert!(matches!(err, CodecError::Decode(_)), "{err:?}");
    let err = decode::<SnapshotRequest<u64, ClusterNode>>(&body).unwrap_err();
    assert!(matches!(err, CodecError::Decode(_)), "{err:?}");
}

#[test]
fn encoding_refuses_a_value_over_the_limit() {
    let big = vec![1u8; MAX_MESSAGE_BYTES + 1];
    let err = encode(&serde_bytes::ByteBuf::from(big)).unwrap_err();
    assert!(matches!(err, CodecError::TooLarge { .. }), "{err:?}");
}
