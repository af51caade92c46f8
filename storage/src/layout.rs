//! Names of the sled trees and keys. These are part of the on-disk format: renaming one makes every
//! existing data dir look empty, so they only ever gain new entries.

/// Log entries, keyed by [`log_key`].
pub(crate) const LOGS_TREE: &str = "logs";
/// Raft metadata and the data dir's identity, keyed by the `META_*` keys.
pub(crate) const META_TREE: &str = "meta";
/// The latest snapshot, keyed by the `SNAPSHOT_*` keys.
pub(crate) const SNAPSHOT_TREE: &str = "snapshot";

/// The last saved vote (`Vote`).
pub(crate) const META_VOTE: &[u8] = b"vote";
/// The last saved committed log id (`LogId`); absent means none.
pub(crate) const META_COMMITTED: &[u8] = b"committed";
/// The last purged log id (`LogId`); absent means nothing purged.
pub(crate) const META_LAST_PURGED: &[u8] = b"last_purged";
/// The node id that owns this data dir (`C::NodeId`).
pub(crate) const META_NODE_ID: &[u8] = b"node_id";
/// The schema version of this data dir: one raw byte, not codec-encoded, because it says how to
/// decode everything else.
pub(crate) const META_SCHEMA_VERSION: &[u8] = b"schema_version";

/// The snapshot that counts, as a file: its name in [`SNAPSHOT_DIR`] and its metadata
/// (`(String, SnapshotMeta)`). When present it wins over the sled layouts below, which it replaced.
pub(crate) const SNAPSHOT_CURRENT_FILE: &[u8] = b"current_file";
/// The directory (inside the data dir) of snapshot files.
pub(crate) const SNAPSHOT_DIR: &str = "snapshots";
/// The snapshot that counts in data dirs written before the files: which data slot holds it, and its
/// metadata (`(u8, SnapshotMeta)`); read while `current_file` is absent, removed by the next save.
pub(crate) const SNAPSHOT_CURRENT: &[u8] = b"current";
/// The two data slots (the application's bytes); `current` names the one in use.
pub(crate) const SNAPSHOT_SLOTS: [&[u8]; 2] = [b"data.0", b"data.1"];
/// Metadata of the latest snapshot in data dirs written before the slots (`SnapshotMeta`); read while
/// `current` is absent, removed by the next save.
pub(crate) const SNAPSHOT_META: &[u8] = b"meta";
/// Data of the latest snapshot in data dirs written before the slots; read and removed with `meta`.
pub(crate) const SNAPSHOT_DATA: &[u8] = b"data";

/// Key of the log entry at `index`: big-endian, so sled's byte order is log order.
pub(crate) fn log_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// The index a log key stands for, or `None` if the key is not 8 bytes (a corrupt tree).
pub(crate) fn log_index(key: &[u8]) -> Option<u64> {
    key.try_into().ok().map(u64::from_be_bytes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_in_index_order() {
        assert!(log_key(255) < log_key(256));
        assert!(log_key(1) < log_key(u64::MAX));
        assert_eq!(log_index(&log_key(42)), Some(42));
        assert_eq!(log_index(b"short"), None);
    }
}
