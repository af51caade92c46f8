//! The snapshot store's two data slots: saves alternate between them, an interrupted save leaves the
//! previous snapshot in force, and data dirs written before the slots are read and converted.

use openraft::storage::{RaftLogStorageExt, RaftStateMachine};
use openraft::RaftSnapshotBuilder;

use crate::common::{membership, normal, open};
use crate::reopen::sled_open;

const SLOTS: [&str; 2] = ["data.0", "data.1"];

/// Which keys the `snapshot` tree holds, in key order.
fn snapshot_keys(dir: &std::path::Path) -> Vec<String> {
    let db = sled_open(dir);
    let tree = db.open_tree("snapshot").unwrap();
    tree.iter().keys().map(|k| String::from_utf8_lossy(&k.unwrap()).into_owned()).collect()
}

/// Open `dir`, apply entries 1..=`upto` (membership, then one key each) and build a snapshot.
async fn snapshot_after(dir: &std::path::Path, upto: u64) -> Vec<u8> {
    let (mut log, mut sm, _app) = open(dir);
    let mut entries = vec![membership(1, 1, &[1])];
    entries.extend((2..=upto).map(|i| normal(1, i, &format!("k{i}"), &format!("v{i}"))));
    log.blocking_append(entries.clone()).await.unwrap();
    sm.apply(entries).await.unwrap();
    sm.get_snapshot_builder().await.build_snapshot().await.unwrap().snapshot.into_inner()
}

async fn current_snapshot(dir: &std::path::Path) -> (Option<u64>, Vec<u8>) {
    let (_log, mut sm, _app) = open(dir);
    let current = sm.get_current_snapshot().await.unwrap().expect("a stored snapshot");
    (current.meta.last_log_id.map(|id| id.index), current.snapshot.into_inner())
}

#[tokio::test]
async fn saves_alternate_between_the_slots_and_the_latest_counts() {
    let dir = tempfile::tempdir().unwrap();
    let first = snapshot_after(dir.path(), 3).await;
    assert_eq!(snapshot_keys(dir.path()), ["current", SLOTS[0]]);
    let second = snapshot_after(dir.path(), 5).await;
    assert_eq!(snapshot_keys(dir.path()), ["current", SLOTS[1]], "the slot given up is removed");
    assert_ne!(first, second);
    assert_eq!(current_snapshot(dir.path()).await, (Some(5), second));
    let third = snapshot_after(dir.path(), 6).await;
    assert_eq!(snapshot_keys(dir.path()), ["current", SLOTS[0]]);
    assert_eq!(current_snapshot(dir.path()).await, (Some(6), third));
}

#[tokio::test]
async fn a_save_cut_off_before_the_pointer_leaves_the_previous_snapshot_in_force() {
    let dir = tempfile::tempdir().unwrap();
    let first = snapshot_after(dir.path(), 3).await;
    {
        // What a crash right after writing the other slot leaves: data nothing points at.
        let db = sled_open(dir.path());
        db.open_tree("snapshot").unwrap().insert(SLOTS[1], &b"half a snapshot"[..]).unwrap();
        db.flush().unwrap();
    }
    assert_eq!(current_snapshot(dir.path()).await, (Some(3), first));
    // The next save writes over the stray slot and points at it.
    let second = snapshot_after(dir.path(), 4).await;
    assert_eq!(current_snapshot(dir.path()).await, (Some(4), second));
    assert_eq!(snapshot_keys(dir.path()), ["current", SLOTS[1]]);
}

#[tokio::test]
async fn a_data_dir_written_before_the_slots_is_read_then_converted_by_the_next_save() {
    let dir = tempfile::tempdir().unwrap();
    let first = snapshot_after(dir.path(), 3).await;
    {
        // Rewrite it in the old layout: `meta` (schema byte + meta) and `data`, no `current`.
        let db = sled_open(dir.path());
        let tree = db.open_tree("snapshot").unwrap();
        let current = tree.remove("current").unwrap().unwrap();
        // `current` is schema byte, the slot (one byte), then the meta.
        let meta: Vec<u8> = std::iter::once(current[0]).chain(current[2..].iter().copied()).collect();
        tree.insert("meta", meta).unwrap();
        tree.insert("data", tree.remove(SLOTS[0]).unwrap().unwrap()).unwrap();
        db.flush().unwrap();
    }
    assert_eq!(snapshot_keys(dir.path()), ["data", "meta"]);
    assert_eq!(current_snapshot(dir.path()).await, (Some(3), first));
    let second = snapshot_after(dir.path(), 4).await;
    assert_eq!(snapshot_keys(dir.path()), ["current", SLOTS[0]], "the old keys are gone");
    assert_eq!(current_snapshot(dir.path()).await, (Some(4), second));
}
