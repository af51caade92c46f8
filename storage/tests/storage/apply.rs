//! The state machine host: batching into the application, responses, applied state, snapshots.

use std::io::Cursor;
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{Membership, RaftSnapshotBuilder, SnapshotMeta, StoredMembership};

use crate::common::{blank, log_id, membership, normal, open, TestResp};

#[tokio::test]
async fn consecutive_commands_reach_the_application_as_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let (_log, mut sm, app) = open(dir.path());
    let responses = sm
        .apply([
            normal(1, 1, "a", "1"),
            normal(1, 2, "a", "2"),
            blank(1, 3),
            normal(1, 4, "b", "1"),
            membership(1, 5, &[1, 2]),
            normal(1, 6, "a", "3"),
            normal(1, 7, "c", "1"),
        ])
        .await
        .unwrap();
    assert_eq!(app.batches(), vec![2, 1, 2]);
    let previous: Vec<Option<&str>> = responses.iter().map(|r| r.previous.as_deref()).collect();
    assert_eq!(previous, [None, Some("1"), None, None, None, Some("2"), None]);
    assert_eq!(responses[2], TestResp::default());
    let membership = StoredMembership::new(Some(log_id(1, 5)), Membership::new(vec![[1, 2].into()], None));
    assert_eq!(sm.applied_state().await.unwrap(), (Some(log_id(1, 7)), membership));
}

#[tokio::test]
async fn a_build_that_finishes_after_an_install_does_not_replace_the_newer_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (_log, mut sm, app) = open(dir.path());
    sm.apply([membership(1, 1, &[1]), normal(1, 2, "a", "old")]).await.unwrap();
    let mut stale_builder = sm.get_snapshot_builder().await;

    let installed = SnapshotMeta {
        last_log_id: Some(log_id(2, 9)),
        last_membership: StoredMembership::new(Some(log_id(1, 1)), Membership::new(vec![[1].into()], None)),
        snapshot_id: "from-leader".to_string(),
    };
    let data = br#"{"a":"new"}"#.to_vec();
    sm.install_snapshot(&installed, Box::new(Cursor::new(data.clone()))).await.unwrap();
    assert_eq!(app.kv().get("a").map(String::as_str), Some("new"));

    let stale = stale_builder.build_snapshot().await.unwrap();
    assert_eq!(stale.meta.last_log_id, Some(log_id(1, 2)));
    let current = sm.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta, installed);
    assert_eq!(current.snapshot.into_inner(), data);
    assert_eq!(sm.applied_state().await.unwrap().0, Some(log_id(2, 9)));
}

#[tokio::test]
async fn a_snapshot_the_application_cannot_read_is_refused_and_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let (_log, mut sm, _app) = open(dir.path());
    let meta = SnapshotMeta {
        last_log_id: Some(log_id(2, 9)),
        last_membership: StoredMembership::default(),
        snapshot_id: "bad".to_string(),
    };
    assert!(sm.install_snapshot(&meta, Box::new(Cursor::new(b"not json".to_vec()))).await.is_err());
    assert!(sm.get_current_snapshot().await.unwrap().is_none());
    assert_eq!(sm.applied_state().await.unwrap().0, None);
}

/// An application that answers fewer responses than commands is a bug in it: an error, not a panic.
#[tokio::test]
async fn a_miscounting_application_is_an_error() {
    struct Miscounting;
    impl discovery_storage::Application<crate::common::TestConfig> for Miscounting {
        fn apply(&self, _: Vec<(openraft::LogId<u64>, crate::common::TestCmd)>) -> Vec<TestResp> {
            Vec::new()
        }
        fn snapshot(&self) -> Result<Vec<u8>, String> {
            Ok(Vec::new())
        }
        fn restore(&self, _: &[u8]) -> Result<(), String> {
            Ok(())
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let (_log, mut sm) =
        discovery_storage::open_storage::<crate::common::TestConfig, _>(dir.path(), 1, Arc::new(Miscounting)).unwrap();
    let err = sm.apply([normal(1, 1, "a", "1")]).await.unwrap_err().to_string();
    assert!(err.contains("0 responses for 1 commands"), "{err}");
}
