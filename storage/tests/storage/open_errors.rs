//! A data dir that is not ours, not readable, or in use is refused with an error naming the dir.

use std::path::Path;
use std::sync::Arc;

use discovery_storage::{open_storage, OpenError};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::{RaftLogReader, Vote};

use crate::common::{blank, open, KvApp, TestConfig};
use crate::reopen::sled_open;

fn try_open(dir: &Path, node_id: u64) -> Result<(), OpenError> {
    open_storage::<TestConfig, _>(dir, node_id, Arc::new(KvApp::default())).map(|_| ())
}

fn assert_names_dir(err: &OpenError, dir: &Path) {
    let message = err.to_string();
    assert!(message.contains(&dir.display().to_string()), "message does not name the dir: {message}");
}

async fn dir_with_data() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _sm, _app) = open(dir.path());
    log.save_vote(&Vote::new(1, 1)).await.unwrap();
    log.blocking_append((1..=3).map(|i| blank(1, i))).await.unwrap();
    dir
}

#[tokio::test]
async fn another_nodes_dir_is_refused_and_left_untouched() {
    let dir = dir_with_data().await;
    let err = try_open(dir.path(), 2).unwrap_err();
    assert!(matches!(&err, OpenError::WrongNodeId { found, expected, .. } if found == "1" && expected == "2"), "{err}");
    assert_names_dir(&err, dir.path());

    let (mut log, _sm, _app) = open(dir.path());
    assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(1, 1)));
    assert_eq!(log.try_get_log_entries(..).await.unwrap().len(), 3);
}

#[tokio::test]
async fn a_newer_schema_version_is_refused() {
    let dir = dir_with_data().await;
    {
        let db = sled_open(dir.path());
        db.open_tree("meta").unwrap().insert("schema_version", &[2u8]).unwrap();
        db.flush().unwrap();
    }
    let err = try_open(dir.path(), 1).unwrap_err();
    assert!(matches!(err, OpenError::NewerSchema { found: 2, supported: 1, .. }), "{err}");
    assert_names_dir(&err, dir.path());
}

#[tokio::test]
async fn raft_data_without_an_owner_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled_open(dir.path());
        db.open_tree("logs").unwrap().insert(1u64.to_be_bytes(), &[1u8]).unwrap();
        db.flush().unwrap();
    }
    let err = try_open(dir.path(), 1).unwrap_err();
    assert!(matches!(err, OpenError::Corrupt { .. }), "{err}");
    assert_names_dir(&err, dir.path());
}

#[tokio::test]
async fn garbage_sled_files_are_reported_as_corrupt() {
    for file in ["db", "conf"] {
        let dir = dir_with_data().await;
        let path = dir.path().join(file);
        let len = std::fs::metadata(&path).unwrap().len().max(64);
        std::fs::write(&path, vec![0xAB; len as usize]).unwrap();
        let listing: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        let err =
            try_open(dir.path(), 1).err().unwrap_or_else(|| panic!("garbage {file} opened fine; dir has {listing:?}"));
        assert!(matches!(err, OpenError::Corrupt { .. }), "garbage {file}: {err}");
        assert_names_dir(&err, dir.path());
    }
}

#[tokio::test]
async fn a_dir_in_use_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _held = open(dir.path());
    let err = try_open(dir.path(), 1).unwrap_err();
    assert!(matches!(err, OpenError::InUse { .. }), "{err}");
    assert_eq!(err.to_string(), format!("data dir {} is in use by another process", dir.path().display()));
}

#[tokio::test]
async fn corrupt_values_are_errors_naming_what_was_read() {
    let dir = dir_with_data().await;
    {
        let db = sled_open(dir.path());
        let mut entry = db.open_tree("logs").unwrap().get(2u64.to_be_bytes()).unwrap().unwrap().to_vec();
        entry[0] = 9; // a schema version nobody wrote
        db.open_tree("logs").unwrap().insert(2u64.to_be_bytes(), entry).unwrap();
        db.flush().unwrap();
    }
    {
        let (mut log, _sm, _app) = open(dir.path());
        let err = log.try_get_log_entries(1..4).await.unwrap_err().to_string();
        assert!(err.contains("log entry 2") && err.contains("unknown schema version 9"), "{err}");
        assert_eq!(log.try_get_log_entries(3..4).await.unwrap().len(), 1, "other entries still read");
    }
    // The vote is read when the dir is opened (to check it against the durable record): refused there.
    {
        let db = sled_open(dir.path());
        db.open_tree("meta").unwrap().insert("vote", &[1u8, 0xFF]).unwrap();
        db.flush().unwrap();
    }
    let err = try_open(dir.path(), 1).unwrap_err();
    assert!(matches!(&err, OpenError::Corrupt { reason, .. } if reason.contains("vote: corrupt value")), "{err}");
    assert_names_dir(&err, dir.path());
}
