//! A sled snapshot file left empty or partial by a crash or a full disk (`snap.<LSN>.generating`) fails
//! every open of sled 0.34.7 on its own; opening through the stores removes it and recovers. A complete
//! one (the crash came after its fsync, before the rename) is sled's to read and stays.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use discovery_storage::OpenError;

use openraft::storage::RaftLogStorageExt;
use openraft::RaftLogReader;

use crate::common::{blank, open, KvApp, TestConfig};

/// A closed data dir holding entries 1..=10 and one sled snapshot file; returns the dir and that file.
async fn dir_with_sled_snapshot() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, _sm, _app) = open(dir.path());
        log.blocking_append((1..=10).map(|i| blank(1, i))).await.unwrap();
    }
    // sled writes its snapshot when it opens a dir whose log moved on since the last one.
    drop(open(dir.path()));
    let snapshots = snap_files(dir.path());
    assert_eq!(snapshots.len(), 1, "{snapshots:?}");
    let snapshot = dir.path().join(&snapshots[0]);
    (dir, snapshot)
}

fn snap_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.starts_with("snap."))
        .collect();
    names.sort();
    names
}

/// Whether sled alone opens a copy of `dir`.
fn sled_alone_opens(dir: &Path) -> bool {
    let copy = tempfile::tempdir().unwrap();
    for file in std::fs::read_dir(dir).unwrap() {
        let file = file.unwrap();
        if file.file_type().unwrap().is_file() {
            std::fs::copy(file.path(), copy.path().join(file.file_name())).unwrap();
        }
    }
    sled::open(copy.path()).is_ok()
}

async fn assert_opens_with_every_entry(dir: &Path) {
    let (mut log, _sm, _app) = open(dir);
    assert_eq!(log.try_get_log_entries(..).await.unwrap().len(), 10);
}

#[tokio::test]
async fn empty_and_partial_generating_files_are_removed() {
    let (dir, snapshot) = dir_with_sled_snapshot().await;
    let complete = std::fs::read(&snapshot).unwrap();
    // Names that sort after the real snapshot, so sled picks them, as it picks a newer one.
    let leftovers: [(&str, &[u8]); 2] = [
        ("snap.FFFFFFFFFFFFFFF0.generating", b""),
        ("snap.FFFFFFFFFFFFFFF1.generating", &complete[..complete.len() - 5]),
    ];
    for (name, bytes) in leftovers {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        assert!(!sled_alone_opens(dir.path()), "sled alone should refuse the dir with {name}");
        assert_opens_with_every_entry(dir.path()).await;
        assert!(!path.exists(), "{name} is still there");
    }
}

#[tokio::test]
async fn a_complete_generating_file_is_kept_for_sled_to_read() {
    let (dir, snapshot) = dir_with_sled_snapshot().await;
    // The crash came after sled's fsync of the file, before its rename.
    let generating = PathBuf::from(format!("{}.generating", snapshot.display()));
    std::fs::rename(&snapshot, &generating).unwrap();
    assert_opens_with_every_entry(dir.path()).await;
    assert!(generating.exists(), "a complete snapshot file was removed: {:?}", snap_files(dir.path()));
}

/// A second process opening a dir in use must not remove the snapshot file the running sled may be
/// writing: the removal runs under sled's own lock.
#[tokio::test]
async fn a_dir_in_use_keeps_its_generating_file() {
    let (dir, _snapshot) = dir_with_sled_snapshot().await;
    let _running = open(dir.path());
    let writing = dir.path().join("snap.FFFFFFFFFFFFFFF0.generating");
    std::fs::write(&writing, b"half").unwrap();
    let err = discovery_storage::open_storage::<TestConfig, _>(dir.path(), 1, Arc::new(KvApp::default())).err();
    assert!(matches!(err, Some(OpenError::InUse { .. })), "{err:?}");
    assert!(writing.exists(), "the file of the running sled was removed");
}
