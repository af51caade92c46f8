//! Everything the stores persist survives dropping and reopening them.

use std::collections::BTreeMap;

use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::{Membership, RaftLogReader, RaftSnapshotBuilder, StoredMembership, Vote};

use crate::common::{blank, log_id, membership, normal, open};

#[tokio::test]
async fn vote_log_committed_purge_and_snapshot_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let entries = vec![
        membership(1, 1, &[1]),
        blank(2, 2),
        normal(2, 3, "a", "1"),
        normal(2, 4, "b", "2"),
        normal(2, 5, "a", "3"),
        normal(2, 6, "c", "4"),
        normal(2, 7, "d", "5"),
        normal(2, 8, "e", "6"),
    ];
    let snapshot = {
        let (mut log, mut sm, _app) = open(dir.path());
        assert!(log.is_fresh().unwrap());
        log.save_vote(&Vote::new_committed(2, 1)).await.unwrap();
        log.blocking_append(entries.clone()).await.unwrap();
        log.save_committed(Some(log_id(2, 7))).await.unwrap();
        sm.apply(entries[..5].to_vec()).await.unwrap();
        let snapshot = sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
        assert_eq!(snapshot.meta.last_log_id, Some(log_id(2, 5)));
        // Applied after the snapshot: only the log (re-applied by openraft) brings these back.
        sm.apply(entries[5..7].to_vec()).await.unwrap();
        log.purge(log_id(2, 3)).await.unwrap();
        snapshot
    };

    let (mut log, mut sm, app) = open(dir.path());
    assert!(!log.is_fresh().unwrap());
    assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new_committed(2, 1)));
    assert_eq!(log.read_committed().await.unwrap(), Some(log_id(2, 7)));
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(2, 3)));
    assert_eq!(state.last_log_id, Some(log_id(2, 8)));
    assert_eq!(log.try_get_log_entries(0..100).await.unwrap(), entries[3..].to_vec());

    let current = sm.get_current_snapshot().await.unwrap().expect("a stored snapshot");
    assert_eq!(current.meta, snapshot.meta);
    assert_eq!(current.snapshot.into_inner(), snapshot.snapshot.into_inner());
    let membership = StoredMembership::new(Some(log_id(1, 1)), Membership::new(vec![[1].into()], None));
    assert_eq!(sm.applied_state().await.unwrap(), (Some(log_id(2, 5)), membership));
    let at_snapshot = BTreeMap::from([("a".to_string(), "3".to_string()), ("b".to_string(), "2".to_string())]);
    assert_eq!(app.kv(), at_snapshot, "the application is restored from the snapshot, nothing later");
}

#[tokio::test]
async fn a_vote_alone_makes_the_dir_not_fresh() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, _sm, _app) = open(dir.path());
        assert!(log.is_fresh().unwrap());
        log.save_vote(&Vote::new(1, 1)).await.unwrap();
    }
    let (log, _sm, _app) = open(dir.path());
    assert!(!log.is_fresh().unwrap());
}

#[tokio::test]
async fn truncate_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, _sm, _app) = open(dir.path());
        log.blocking_append((1..=6).map(|i| blank(1, i))).await.unwrap();
        log.truncate(log_id(1, 4)).await.unwrap();
    }
    let (mut log, _sm, _app) = open(dir.path());
    assert_eq!(log.get_log_state().await.unwrap().last_log_id, Some(log_id(1, 3)));
    assert_eq!(log.try_get_log_entries(..).await.unwrap().len(), 3);
}

/// A crash between purge's durable `last_purged` write and its deletes leaves old entries behind:
/// they must neither count as the log's end nor survive the next open.
#[tokio::test]
async fn entries_left_by_an_interrupted_purge_are_ignored_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let leftovers: Vec<(sled::IVec, sled::IVec)> = {
        let (mut log, _sm, _app) = open(dir.path());
        log.blocking_append((1..=5).map(|i| blank(1, i))).await.unwrap();
        drop(log);
        drop(_sm);
        let db = sled_open(dir.path());
        let saved = db.open_tree("logs").unwrap().iter().map(Result::unwrap).collect();
        drop(db);
        let (mut log, _sm, _app) = open(dir.path());
        log.purge(log_id(1, 5)).await.unwrap();
        saved
    };
    {
        // Put the purged entries back, as if the crash happened before the deletes reached disk.
        let db = sled_open(dir.path());
        let logs = db.open_tree("logs").unwrap();
        for (key, value) in &leftovers {
            logs.insert(key, value.clone()).unwrap();
        }
        db.flush().unwrap();
    }
    let (mut log, _sm, _app) = open(dir.path());
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 5)));
    assert_eq!(state.last_log_id, Some(log_id(1, 5)));
    assert!(log.try_get_log_entries(..).await.unwrap().is_empty(), "leftovers are deleted at open");
    log.blocking_append([blank(1, 6)]).await.unwrap();
    assert_eq!(log.get_log_state().await.unwrap().last_log_id, Some(log_id(1, 6)));
}

/// sled's lock is released a few milliseconds after the last handle is dropped.
pub(crate) fn sled_open(dir: &std::path::Path) -> sled::Db {
    let started = std::time::Instant::now();
    loop {
        match sled::open(dir) {
            Ok(db) => return db,
            Err(e) if started.elapsed() > std::time::Duration::from_secs(5) => panic!("sled open: {e}"),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
        }
    }
}

/// Reads of the newest entries are answered from memory (`recent`): what they answer must be what sled
/// holds, through a truncation that rewrites entries under a new term, a purge, and a reopen.
#[tokio::test]
async fn reads_after_truncate_rewrite_and_purge_match_what_a_reopen_reads() {
    let dir = tempfile::tempdir().unwrap();
    let expected =
        vec![normal(1, 1, "a", "1"), normal(1, 2, "b", "2"), normal(3, 3, "c", "new"), normal(3, 4, "d", "4")];
    {
        let (mut log, _sm, _app) = open(dir.path());
        log.blocking_append(vec![normal(1, 1, "a", "1"), normal(1, 2, "b", "2"), normal(1, 3, "c", "old")])
            .await
            .unwrap();
        assert_eq!(log.try_get_log_entries(3..4).await.unwrap(), vec![normal(1, 3, "c", "old")]);
        log.truncate(log_id(1, 3)).await.unwrap();
        assert!(log.try_get_log_entries(3..4).await.unwrap().is_empty(), "the truncated entry is gone");
        log.blocking_append(expected[2..].to_vec()).await.unwrap();
        assert_eq!(log.try_get_log_entries(1..5).await.unwrap(), expected);
        log.purge(log_id(1, 1)).await.unwrap();
        assert_eq!(log.try_get_log_entries(1..5).await.unwrap(), expected[1..].to_vec());
    }
    let (mut log, _sm, _app) = open(dir.path());
    assert_eq!(log.try_get_log_entries(1..5).await.unwrap(), expected[1..].to_vec());
}
