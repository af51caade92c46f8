//! The latest snapshot on disk, and [`SledSnapshotBuilder`], which builds one.
//!
//! Invariants:
//! - The snapshot's bytes are a file in `DATA_DIR/snapshots/`, never a sled value: sled shares its write
//!   path and its flushes with the Raft log, so a 170 MB value (1,000,000 instances) made every log append
//!   wait behind it for over a second. Tree `snapshot` holds only the pointer: `current_file` names the
//!   file and holds its `SnapshotMeta`.
//! - A save writes `<name>.tmp`, fsyncs it, renames it to `<name>`, fsyncs the directory, then points
//!   `current_file` at it and makes that durable: a crash at any point leaves `current_file` naming a
//!   complete file. Files no pointer names (the previous snapshot, a crash's leftovers) are removed by the
//!   next save, `.tmp` files also at open.
//! - Older layouts are read until the next save replaces them: `current` naming a sled data slot
//!   (`data.0`/`data.1`, a codec byte string), and before that `meta` + `data`.
//! - A built snapshot never replaces a newer stored one. openraft builds snapshots on a separate task,
//!   so a build that started before a snapshot was installed from the leader can finish after it; the
//!   check-and-write runs under one lock, so that older build is dropped rather than stored.
//! - An installed snapshot always replaces the stored one (openraft only installs newer ones).

use std::io::Cursor;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use openraft::{
    AnyError, LogId, RaftSnapshotBuilder, RaftTypeConfig, Snapshot, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership,
};

use crate::codec;
use crate::durable::Durable;
use crate::layout::{
    SNAPSHOT_CURRENT, SNAPSHOT_CURRENT_FILE, SNAPSHOT_DATA, SNAPSHOT_DIR, SNAPSHOT_META, SNAPSHOT_SLOTS,
};

type StorageResult<T, C> = Result<T, StorageError<<C as RaftTypeConfig>::NodeId>>;
type Meta<C> = SnapshotMeta<<C as RaftTypeConfig>::NodeId, <C as RaftTypeConfig>::Node>;
/// A stored snapshot: its metadata and the application's bytes.
pub(crate) type StoredSnapshot<C> = (Meta<C>, Vec<u8>);
/// Where the stored snapshot's data is, and its metadata.
type Current<C> = (Location, Meta<C>);

/// Where a stored snapshot's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Location {
    /// A file of the snapshot directory.
    File(String),
    /// A sled data slot (the layout before the files).
    Slot(usize),
    /// The `data` key (the layout before the slots).
    Legacy,
}

/// Whether a save may replace a stored snapshot that is newer than the one being saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replace {
    /// Installed from the leader: replaces whatever is stored.
    Always,
    /// Built locally: kept only if no newer snapshot is stored.
    UnlessOlder,
}

/// The `snapshot` tree of one data dir.
pub(crate) struct SnapshotStore<C: RaftTypeConfig> {
    tree: sled::Tree,
    /// `DATA_DIR/snapshots`.
    dir: std::path::PathBuf,
    durable: Arc<Durable>,
    /// Serializes check-and-write in [`SnapshotStore::save`]; held only on the blocking pool.
    write_lock: Mutex<()>,
    _config: PhantomData<fn() -> C>,
}

fn read_err<C: RaftTypeConfig>(e: impl std::error::Error + 'static) -> StorageError<C::NodeId> {
    StorageIOError::read_snapshot(None, &e).into()
}

impl<C: RaftTypeConfig> SnapshotStore<C> {
    /// The store of the data dir `data_dir`: creates its snapshot directory, removes `.tmp` leftovers.
    pub(crate) fn new(tree: sled::Tree, durable: Arc<Durable>, data_dir: &std::path::Path) -> std::io::Result<Self> {
        let dir = data_dir.join(SNAPSHOT_DIR);
        std::fs::create_dir_all(&dir)?;
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "tmp") {
                tracing::info!(file = %path.display(), "removing a snapshot file a crash left half written");
                std::fs::remove_file(&path)?;
            }
        }
        Ok(Self { tree, dir, durable, write_lock: Mutex::new(()), _config: PhantomData })
    }

    /// Where the stored snapshot is, and its metadata.
    fn load_current(&self) -> StorageResult<Option<Current<C>>, C> {
        if let Some(bytes) = self.tree.get(SNAPSHOT_CURRENT_FILE).map_err(read_err::<C>)? {
            let (file, meta): (String, Meta<C>) =
                codec::decode("current snapshot file", &bytes).map_err(read_err::<C>)?;
            return Ok(Some((Location::File(file), meta)));
        }
        if let Some(bytes) = self.tree.get(SNAPSHOT_CURRENT).map_err(read_err::<C>)? {
            let (slot, meta): (u8, Meta<C>) = codec::decode("current snapshot", &bytes).map_err(read_err::<C>)?;
            let slot = usize::from(slot);
            if slot >= SNAPSHOT_SLOTS.len() {
                let bad = AnyError::error(format!("current snapshot names data slot {slot}, which does not exist"));
                return Err(StorageIOError::read_snapshot(Some(meta.signature()), bad).into());
            }
            return Ok(Some((Location::Slot(slot), meta)));
        }
        match self.tree.get(SNAPSHOT_META).map_err(read_err::<C>)? {
            None => Ok(None),
            Some(bytes) => Ok(Some((Location::Legacy, codec::decode("snapshot meta", &bytes).map_err(read_err::<C>)?))),
        }
    }

    /// The stored snapshot, if any.
    pub(crate) fn load(&self) -> StorageResult<Option<StoredSnapshot<C>>, C> {
        let Some((location, meta)) = self.load_current()? else { return Ok(None) };
        let key = match location {
            Location::File(name) => {
                let data = std::fs::read(self.dir.join(&name))
                    .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
                return Ok(Some((meta, data)));
            }
            Location::Slot(slot) => SNAPSHOT_SLOTS[slot],
            Location::Legacy => SNAPSHOT_DATA,
        };
        let Some(bytes) = self.tree.get(key).map_err(read_err::<C>)? else {
            let missing = AnyError::error("snapshot data: missing although snapshot meta is present");
            return Err(StorageIOError::read_snapshot(Some(meta.signature()), missing).into());
        };
        let data = codec::decode_bytes("snapshot data", &bytes)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        Ok(Some((meta, data)))
    }

    /// Store `meta` + `data` durably as the latest snapshot. Returns false if `replace` is
    /// [`Replace::UnlessOlder`] and a newer snapshot was already stored (then nothing is written), and
    /// hands `data` back.
    ///
    /// Everything proportional to the snapshot's size (encoding, the sled write, the sync) runs on the
    /// blocking pool: copying a snapshot of a few hundred thousand instances takes tens of milliseconds,
    /// which the caller's runtime thread must not spend.
    pub(crate) async fn save(
        self: &Arc<Self>,
        meta: &Meta<C>,
        data: Vec<u8>,
        replace: Replace,
    ) -> StorageResult<(bool, Vec<u8>), C> {
        let signature = meta.signature();
        let write_err = move |e: &(dyn std::error::Error + 'static)| {
            StorageError::from(StorageIOError::write_snapshot(Some(signature.clone()), AnyError::from_dyn(e, None)))
        };
        let this = Arc::clone(self);
        let meta = meta.clone();
        let err = write_err.clone();
        tokio::task::spawn_blocking(move || {
            let saved = this.save_blocking(&meta, &data, replace).map_err(|e| err(&e))?;
            Ok((saved, data))
        })
        .await
        .map_err(|e| write_err(&e))?
    }

    fn save_blocking(&self, meta: &Meta<C>, data: &[u8], replace: Replace) -> Result<bool, std::io::Error> {
        use std::io::Write;
        let _serialized = self.write_lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let stored = self.load_current().map_err(std::io::Error::other)?;
        if replace == Replace::UnlessOlder && stored.as_ref().is_some_and(|(_, s)| s.last_log_id > meta.last_log_id) {
            return Ok(false);
        }
        let name = file_name::<C>(meta);
        // The data first, complete and durable under its final name before anything points at it.
        let tmp = self.dir.join(format!("{name}.tmp"));
        let mut file = std::fs::File::create(&tmp)?;
        // Made durable piece by piece: a single sync of the whole file left up to hundreds of megabytes dirty
        // at once, and the log's own fdatasync (every acknowledged write waits for one) queued behind their
        // writeback on the same disk.
        for piece in data.chunks(SYNC_EVERY_BYTES) {
            file.write_all(piece)?;
            file.sync_data()?;
        }
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, self.dir.join(&name))?;
        std::fs::File::open(&self.dir)?.sync_all()?;
        let current = codec::encode("current snapshot file", &(name.clone(), meta)).map_err(std::io::Error::other)?;
        self.tree.insert(SNAPSHOT_CURRENT_FILE, current)?;
        self.durable.sync()?;
        // What nothing points at any more: the older layouts' keys, the previous file, a crash's leftovers.
        for unused in [SNAPSHOT_CURRENT, SNAPSHOT_SLOTS[0], SNAPSHOT_SLOTS[1], SNAPSHOT_META, SNAPSHOT_DATA] {
            self.tree.remove(unused)?;
        }
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy() != name {
                std::fs::remove_file(entry.path())?;
            }
        }
        Ok(true)
    }
}

/// How much of a snapshot file is written between two syncs (see `save_blocking`).
const SYNC_EVERY_BYTES: usize = 8 << 20;

/// The file name of a snapshot: its id (log id and build count, or the leader's id for one installed),
/// with anything but letters, digits, `-` and `.` replaced.
fn file_name<C: RaftTypeConfig>(meta: &Meta<C>) -> String {
    let id: String = meta
        .snapshot_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' })
        .take(120)
        .collect();
    format!("snapshot-{id}.bin")
}

/// Builds a snapshot from a state captured when openraft asked for the builder.
///
/// openraft runs [`RaftSnapshotBuilder::build_snapshot`] on its own task while the state machine keeps
/// applying, so everything the snapshot contains (the application's frozen state, last applied id,
/// membership) is captured up front, in the state machine task, where it is consistent; the frozen state
/// is serialized by the build, on the blocking pool.
pub struct SledSnapshotBuilder<C: RaftTypeConfig> {
    store: Arc<SnapshotStore<C>>,
    /// The application's frozen state; taken (and serialized) by the one build.
    captured: Option<crate::app::Frozen>,
    meta: Meta<C>,
}

impl<C: RaftTypeConfig> SledSnapshotBuilder<C> {
    pub(crate) fn new(
        store: Arc<SnapshotStore<C>>,
        captured: crate::app::Frozen,
        last_applied: Option<LogId<C::NodeId>>,
        membership: StoredMembership<C::NodeId, C::Node>,
        snapshot_id: String,
    ) -> Self {
        let meta = SnapshotMeta { last_log_id: last_applied, last_membership: membership, snapshot_id };
        Self { store, captured: Some(captured), meta }
    }
}

impl<C> RaftSnapshotBuilder<C> for SledSnapshotBuilder<C>
where
    C: RaftTypeConfig<SnapshotData = Cursor<Vec<u8>>>,
{
    async fn build_snapshot(&mut self) -> StorageResult<Snapshot<C>, C> {
        let signature = Some(self.meta.signature());
        let serialized = match self.captured.take() {
            Some(frozen) => on_a_low_priority_thread(frozen)
                .await
                .unwrap_or_else(|e| Err(format!("snapshot serialization thread failed: {e}"))),
            None => {
                let e = AnyError::error("snapshot builder already used: each builder builds one snapshot");
                return Err(StorageIOError::write_snapshot(signature, e).into());
            }
        };
        let data = match serialized {
            Ok(data) => data,
            Err(reason) => {
                let e = AnyError::error(format!("application snapshot failed: {reason}"));
                return Err(StorageIOError::read_state_machine(e).into());
            }
        };
        let (saved, data) = self.store.save(&self.meta, data, Replace::UnlessOlder).await?;
        if !saved {
            tracing::info!(snapshot = %self.meta, "built snapshot is older than the stored one; not stored");
        }
        Ok(Snapshot { meta: self.meta.clone(), snapshot: Box::new(Cursor::new(data)) })
    }
}

/// How much lower than the node's other threads a snapshot is serialized (Linux nice value; threads start at
/// 0). Serializing 1,000,000 instances takes ~1.5 s of a core; at the same priority it takes that core from
/// the writes it runs beside (on two shared cores their p99.9 went from ~40 ms to 46-91 ms while a snapshot
/// was built). At nice 10 the scheduler runs apply, the log's appends and the HTTP tasks first and the
/// build with what is left: the build takes longer when the machine is busy, nothing else does.
pub const SERIALIZE_NICENESS: i32 = 10;

/// Runs `job` on a thread of its own whose priority is lowered to [`SERIALIZE_NICENESS`] (a thread of tokio's
/// blocking pool would keep the lowered priority for whatever it runs next, and cannot be raised again
/// without privileges).
async fn on_a_low_priority_thread<T: Send + 'static>(job: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("snapshot-serialize".into())
        .spawn(move || {
            // Best effort: the same priority as the rest is what it was before.
            if let Err(err) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), SERIALIZE_NICENESS) {
                tracing::debug!(%err, "could not lower the priority of the snapshot serialization");
            }
            let _ = done.send(job());
        })
        .map_err(|e| format!("cannot start a thread: {e}"))?;
    result.await.map_err(|_| "the thread ended without an answer (it panicked)".to_string())
}

#[cfg(test)]
mod priority_tests {
    use super::*;

    #[tokio::test]
    async fn serialization_runs_at_a_lower_priority_and_returns_its_result() {
        let seen = on_a_low_priority_thread(|| rustix::process::getpriority_process(Some(rustix::thread::gettid())))
            .await
            .expect("the thread answers")
            .expect("getpriority");
        // At least as low as asked (a process already started lower stays lower).
        assert!(seen >= SERIALIZE_NICENESS, "niceness {seen}");
        let failed = on_a_low_priority_thread(|| -> u8 { panic!("serialization bug") }).await;
        assert!(failed.is_err_and(|e| e.contains("panicked")));
    }
}
