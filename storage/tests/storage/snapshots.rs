//! The snapshot store: a snapshot's bytes are a file of `DATA_DIR/snapshots/` that a small sled pointer
//! names; an interrupted save leaves the previous snapshot in force; data dirs written in the sled layouts
//! (two data slots; before that `meta` + `data`) are read and converted by the next save.

use openraft::storage::{RaftLogStorageExt, RaftStateMachine};
use openraft::RaftSnapshotBuilder;

use crate::common::{membership, normal, open};
use crate::reopen::sled_open;

const SLOTS: [&str; 2] = ["data.0", "data.1"];

/// The files of the snapshot directory, sorted.
fn snapshot_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

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
async fn a_snapshot_is_a_file_and_the_latest_counts() {
    let dir = tempfile::tempdir().unwrap();
    let first = snapshot_after(dir.path(), 3).await;
    assert_eq!(snapshot_keys(dir.path()), ["current_file"], "sled holds the pointer only");
    let files = snapshot_files(dir.path());
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(std::fs::read(dir.path().join("snapshots").join(&files[0])).unwrap(), first);
    let second = snapshot_after(dir.path(), 5).await;
    assert_ne!(first, second);
    let now = snapshot_files(dir.path());
    assert_eq!(now.len(), 1, "the previous file is removed: {now:?}");
    assert_ne!(now, files);
    assert_eq!(current_snapshot(dir.path()).await, (Some(5), second));
}

#[tokio::test]
async fn a_save_cut_off_before_the_pointer_leaves_the_previous_snapshot_in_force() {
    let dir = tempfile::tempdir().unwrap();
    let first = snapshot_after(dir.path(), 3).await;
    // What crashes leave: a half-written file, and a complete one nothing points at yet.
    let snapshots = dir.path().join("snapshots");
    std::fs::write(snapshots.join("snapshot-next.bin.tmp"), b"half a snapshot").unwrap();
    std::fs::write(snapshots.join("snapshot-stray.bin"), b"a whole other snapshot").unwrap();
    assert_eq!(current_snapshot(dir.path()).await, (Some(3), first));
    assert!(!snapshot_files(dir.path()).iter().any(|f| f.ends_with(".tmp")), "a .tmp file is removed at open");
    let second = snapshot_after(dir.path(), 4).await;
    assert_eq!(current_snapshot(dir.path()).await, (Some(4), second));
    assert_eq!(snapshot_files(dir.path()).len(), 1, "the next save removes the stray file");
}

/// Rewrite the snapshot of `dir` in the sled slot layout (`current` = schema byte, slot, meta; `data.0`).
fn to_slot_layout(dir: &std::path::Path) {
    let file = snapshot_files(dir).pop().unwrap();
    let data = std::fs::read(dir.join("snapshots").join(&file)).unwrap();
    std::fs::remove_file(dir.join("snapshots").join(&file)).unwrap();
    let db = sled_open(dir);
    let tree = db.open_tree("snapshot").unwrap();
    let pointer = tree.remove("current_file").unwrap().unwrap();
    // `current_file` is the schema byte, the file name (one length byte: names are short), then the meta.
    let meta = &pointer[2 + usize::from(pointer[1])..];
    let current: Vec<u8> = [pointer[0], 0].iter().chain(meta).copied().collect();
    tree.insert("current", current).unwrap();
    tree.insert(SLOTS[0], discovery_storage::codec::encode_bytes("data", &data).unwrap()).unwrap();
    db.flush().unwrap();
}

#[tokio::test]
async fn a_data_dir_of_the_slot_layout_is_read_then_converted_by_the_next_save() {
    let dir = tempfile::tempdir().unwrap();
    let first = snapshot_after(dir.path(), 3).await;
    to_slot_layout(dir.path());
    assert_eq!(snapshot_keys(dir.path()), ["current", SLOTS[0]]);
    assert_eq!(current_snapshot(dir.path()).await, (Some(3), first));
    let second = snapshot_after(dir.path(), 4).await;
    assert_eq!(snapshot_keys(dir.path()), ["current_file"], "the slot keys are gone");
    assert_eq!(current_snapshot(dir.path()).await, (Some(4), second));
}

#[tokio::test]
async fn a_data_dir_written_before_the_slots_is_read_then_converted_by_the_next_save() {
    let dir = tempfile::tempdir().unwrap();
    let first = snapshot_after(dir.path(), 3).await;
    to_slot_layout(dir.path());
    {
        // Then in the layout before the slots: `meta` (schema byte + meta) and `data`, no `current`.
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
    assert_eq!(snapshot_keys(dir.path()), ["current_file"], "the old keys are gone");
    assert_eq!(current_snapshot(dir.path()).await, (Some(4), second));
}
