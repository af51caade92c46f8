//! Damaged data dirs: sled silently drops everything after a damaged message of its log, and the durable
//! record catches it; a damaged record, a torn tail past the last sync, a truncate and a dir without a
//! record are all told apart from real loss.

use std::path::Path;
use std::sync::Arc;

use discovery_storage::{open_storage, OpenError};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::{RaftLogReader, Vote};

use crate::common::{log_id, normal, open, KvApp, TestConfig};
use crate::reopen::sled_open;

const ENTRIES: u64 = 300;
/// Offsets of the two slots of the record file (its on-disk format).
const RECORD_SLOTS: [u64; 2] = [0, 4096];

fn try_open(dir: &Path) -> Result<(), OpenError> {
    open_storage::<TestConfig, _>(dir, 1, Arc::new(KvApp::default())).map(|_| ())
}

/// A value about the size of a registry command.
fn entry(index: u64) -> openraft::Entry<TestConfig> {
    normal(1, index, &format!("k{index}"), &"x".repeat(200))
}

/// Append entries 1..=`n` durably, one append each (as a node under load does), and close the dir.
async fn dir_with_entries(n: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _sm, _app) = open(dir.path());
    log.save_vote(&Vote::new_committed(1, 1)).await.unwrap();
    for index in 1..=n {
        log.blocking_append([entry(index)]).await.unwrap();
    }
    dir
}

/// Copy the files of data dir `from` (and its `blobs/`) into `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for file in std::fs::read_dir(from).unwrap() {
        let file = file.unwrap();
        if file.file_type().unwrap().is_dir() {
            copy_dir(&file.path(), &to.join(file.file_name()));
        } else {
            std::fs::copy(file.path(), to.join(file.file_name())).unwrap();
        }
    }
}

/// Overwrite the last `len` bytes sled wrote to its data file (the file ends in zeros it has not written).
fn damage_tail(dir: &Path, len: usize) {
    let path = dir.join("db");
    let mut bytes = std::fs::read(&path).unwrap();
    let end = bytes.iter().rposition(|&b| b != 0).unwrap() + 1;
    bytes[end - len..end].fill(0xAB);
    std::fs::write(&path, bytes).unwrap();
}

/// How many log entries sled alone recovers from `dir` (a throwaway copy: sled rewrites what it recovers).
fn entries_sled_recovers(dir: &Path) -> usize {
    let copy = tempfile::tempdir().unwrap();
    copy_dir(dir, copy.path());
    let db = sled_open(copy.path());
    db.open_tree("logs").unwrap().len()
}

fn assert_lost(err: OpenError, dir: &Path, says: &[&str]) {
    let message = err.to_string();
    assert!(matches!(err, OpenError::LostDurableState { .. }), "{err:?}");
    assert!(message.contains(&format!("data dir {} has lost", dir.display())), "{message}");
    assert!(message.contains("cluster remove") && message.contains("fresh data dir"), "no way out: {message}");
    for what in says {
        assert!(message.contains(what), "{what:?} not in: {message}");
    }
}

#[tokio::test]
async fn a_damaged_log_tail_that_loses_acknowledged_entries_is_refused() {
    let dir = dir_with_entries(ENTRIES).await;
    let intact = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), intact.path());

    damage_tail(dir.path(), 200);
    let recovered = entries_sled_recovers(dir.path());
    assert!(recovered < ENTRIES as usize, "the damage must make sled lose entries; it kept {recovered}");

    let err = try_open(dir.path()).unwrap_err();
    assert_lost(err, dir.path(), &[&format!("log entry T1-N1-{ENTRIES} was made durable"), "DURABLE"]);
    // Refused for good: the next start says the same.
    assert!(matches!(try_open(dir.path()), Err(OpenError::LostDurableState { .. })));

    // The same dir undamaged opens with every entry.
    let (mut log, _sm, _app) = open(intact.path());
    assert_eq!(log.try_get_log_entries(..).await.unwrap().len() as u64, ENTRIES);
}

/// sled's files copied back from before a vote (a restored backup, a disk snapshot): the record knows.
#[tokio::test]
async fn a_lost_vote_is_refused() {
    let dir = dir_with_entries(5).await;
    let before_vote = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), before_vote.path());
    {
        let (mut log, _sm, _app) = open(dir.path());
        log.save_vote(&Vote::new(3, 2)).await.unwrap();
    }
    for file in std::fs::read_dir(dir.path()).unwrap() {
        let name = file.unwrap().file_name().into_string().unwrap();
        if name.starts_with("snap.") {
            std::fs::remove_file(dir.path().join(name)).unwrap();
        }
    }
    for file in std::fs::read_dir(before_vote.path()).unwrap() {
        let name = file.unwrap().file_name().into_string().unwrap();
        if name == "db" || name == "conf" || name.starts_with("snap.") {
            std::fs::copy(before_vote.path().join(&name), dir.path().join(&name)).unwrap();
        }
    }
    let err = try_open(dir.path()).unwrap_err();
    assert_lost(err, dir.path(), &["vote T3-N2:uncommitted was made durable", "stored vote is T1-N1:committed"]);
}

/// Entries that reached sled's file but were never synced nor acknowledged (so never recorded), torn by
/// a crash: sled drops them and the dir opens with everything acknowledged.
#[tokio::test]
async fn a_torn_tail_past_the_last_sync_opens() {
    let dir = dir_with_entries(20).await;
    {
        // Written behind the stores' back: sled writes them to its file, the record never hears of them.
        let db = sled_open(dir.path());
        let logs = db.open_tree("logs").unwrap();
        for index in 21..=40u64 {
            logs.insert(index.to_be_bytes(), openraft_entry_bytes(index)).unwrap();
        }
        db.flush().unwrap();
    }
    damage_tail(dir.path(), 200);
    let recovered = entries_sled_recovers(dir.path()) as u64;
    assert!((20..40).contains(&recovered), "the damage must hit only unacknowledged entries: {recovered}");

    let (mut log, _sm, _app) = open(dir.path());
    let state = log.get_log_state().await.unwrap();
    assert!(state.last_log_id.unwrap().index >= 20);
    assert_eq!(log.try_get_log_entries(1..=20).await.unwrap().len(), 20);
}

/// The bytes the log store writes for entry `index` (codec: schema byte + bincode).
fn openraft_entry_bytes(index: u64) -> Vec<u8> {
    discovery_storage::codec::encode("entry", &entry(index)).unwrap()
}

#[tokio::test]
async fn the_record_follows_a_truncate() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, _sm, _app) = open(dir.path());
        log.blocking_append((1..=10).map(entry)).await.unwrap();
        log.truncate(log_id(1, 6)).await.unwrap();
    }
    {
        let (mut log, _sm, _app) = open(dir.path());
        assert_eq!(log.get_log_state().await.unwrap().last_log_id, Some(log_id(1, 5)));
        // The conflicting suffix replaced by a newer term's entries.
        log.blocking_append((6..=8).map(|i| normal(2, i, "k", "v"))).await.unwrap();
    }
    {
        let (mut log, _sm, _app) = open(dir.path());
        assert_eq!(log.get_log_state().await.unwrap().last_log_id, Some(log_id(2, 8)));
        log.truncate(log_id(1, 1)).await.unwrap();
    }
    let (mut log, _sm, _app) = open(dir.path());
    assert_eq!(log.get_log_state().await.unwrap().last_log_id, None);
}

#[tokio::test]
async fn a_purge_past_the_last_entry_opens() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, _sm, _app) = open(dir.path());
        log.blocking_append((1..=10).map(entry)).await.unwrap();
        // As after installing a snapshot from the leader: purged beyond the local log.
        log.purge(log_id(2, 50)).await.unwrap();
    }
    let (mut log, _sm, _app) = open(dir.path());
    let state = log.get_log_state().await.unwrap();
    assert_eq!((state.last_purged_log_id, state.last_log_id), (Some(log_id(2, 50)), Some(log_id(2, 50))));
}

/// Garbage over 64 bytes of the record's slot `slot`.
fn damage_record_slot(dir: &Path, slot: usize) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new().write(true).open(dir.join("DURABLE")).unwrap();
    file.write_all_at(&[0xAB; 64], RECORD_SLOTS[slot] + 20).unwrap();
}

#[tokio::test]
async fn a_torn_record_slot_is_survived_and_both_torn_is_refused() {
    let dir = dir_with_entries(10).await;
    for slot in 0..2 {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(dir.path(), copy.path());
        damage_record_slot(copy.path(), slot);
        {
            let (mut log, _sm, _app) = open(copy.path());
            assert_eq!(log.try_get_log_entries(..).await.unwrap().len(), 10, "slot {slot}");
            log.blocking_append([entry(11)]).await.unwrap();
        }
        // The next write went to a slot, the damaged one or not: the record still works.
        let (mut log, _sm, _app) = open(copy.path());
        assert_eq!(log.get_log_state().await.unwrap().last_log_id, Some(log_id(1, 11)), "slot {slot}");
    }
    damage_record_slot(dir.path(), 0);
    damage_record_slot(dir.path(), 1);
    let err = try_open(dir.path()).unwrap_err();
    assert_lost(err, dir.path(), &["durable record", "DURABLE is damaged", "checksum mismatch"]);
}

/// A dir from before the record existed opens, gets a record, and from then on is checked.
#[tokio::test]
async fn a_dir_without_a_record_gets_one() {
    let dir = dir_with_entries(ENTRIES).await;
    std::fs::remove_file(dir.path().join("DURABLE")).unwrap();
    let more = ENTRIES + 100;
    {
        let (mut log, _sm, _app) = open(dir.path());
        assert_eq!(log.try_get_log_entries(..).await.unwrap().len() as u64, ENTRIES);
        assert!(dir.path().join("DURABLE").exists());
        for index in ENTRIES + 1..=more {
            log.blocking_append([entry(index)]).await.unwrap();
        }
    }
    damage_tail(dir.path(), 200);
    assert!(entries_sled_recovers(dir.path()) < more as usize);
    let err = try_open(dir.path()).unwrap_err();
    assert_lost(err, dir.path(), &[&format!("T1-N1-{more}")]);
}
