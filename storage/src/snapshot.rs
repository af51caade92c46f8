//! The latest snapshot on disk, and [`SledSnapshotBuilder`], which builds one.
//!
//! Invariants:
//! - Tree `snapshot` holds at most one snapshot: `meta` (codec `SnapshotMeta`) and `data` (codec byte
//!   string of the application's bytes), always written together in one atomic sled batch and made
//!   durable (flush + `fdatasync`) before a save returns.
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
use crate::layout::{SNAPSHOT_DATA, SNAPSHOT_META};

type StorageResult<T, C> = Result<T, StorageError<<C as RaftTypeConfig>::NodeId>>;
type Meta<C> = SnapshotMeta<<C as RaftTypeConfig>::NodeId, <C as RaftTypeConfig>::Node>;
/// A stored snapshot: its metadata and the application's bytes.
pub(crate) type StoredSnapshot<C> = (Meta<C>, Vec<u8>);

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
    durable: Arc<Durable>,
    /// Serializes check-and-write in [`SnapshotStore::save`]; held only on the blocking pool.
    write_lock: Mutex<()>,
    _config: PhantomData<fn() -> C>,
}

fn read_err<C: RaftTypeConfig>(e: impl std::error::Error + 'static) -> StorageError<C::NodeId> {
    StorageIOError::read_snapshot(None, &e).into()
}

impl<C: RaftTypeConfig> SnapshotStore<C> {
    pub(crate) fn new(tree: sled::Tree, durable: Arc<Durable>) -> Self {
        Self { tree, durable, write_lock: Mutex::new(()), _config: PhantomData }
    }

    /// Metadata of the stored snapshot, if any.
    pub(crate) fn load_meta(&self) -> StorageResult<Option<Meta<C>>, C> {
        match self.tree.get(SNAPSHOT_META).map_err(read_err::<C>)? {
            None => Ok(None),
            Some(bytes) => Ok(Some(codec::decode("snapshot meta", &bytes).map_err(read_err::<C>)?)),
        }
    }

    /// The stored snapshot, if any.
    pub(crate) fn load(&self) -> StorageResult<Option<StoredSnapshot<C>>, C> {
        let Some(meta) = self.load_meta()? else { return Ok(None) };
        let Some(bytes) = self.tree.get(SNAPSHOT_DATA).map_err(read_err::<C>)? else {
            let missing = AnyError::error("snapshot data: missing although snapshot meta is present");
            return Err(StorageIOError::read_snapshot(Some(meta.signature()), missing).into());
        };
        let data = codec::decode_bytes("snapshot data", &bytes)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        Ok(Some((meta, data)))
    }

    /// Store `meta` + `data` durably as the latest snapshot. Returns false if `replace` is
    /// [`Replace::UnlessOlder`] and a newer snapshot was already stored (then nothing is written).
    pub(crate) async fn save(
        self: &Arc<Self>,
        meta: &Meta<C>,
        data: &[u8],
        replace: Replace,
    ) -> StorageResult<bool, C> {
        let write_err = |e: &(dyn std::error::Error + 'static)| {
            StorageIOError::write_snapshot(Some(meta.signature()), AnyError::from_dyn(e, None))
        };
        let meta_bytes = codec::encode("snapshot meta", meta).map_err(|e| write_err(&e))?;
        let data_bytes = codec::encode_bytes("snapshot data", data).map_err(|e| write_err(&e))?;
        let this = Arc::clone(self);
        let last_log_id = meta.last_log_id.clone();
        let saved =
            tokio::task::spawn_blocking(move || this.save_blocking(last_log_id, meta_bytes, data_bytes, replace))
                .await
                .map_err(|e| write_err(&e))?;
        saved.map_err(|e| write_err(&e).into())
    }

    fn save_blocking(
        &self,
        last_log_id: Option<LogId<C::NodeId>>,
        meta_bytes: Vec<u8>,
        data_bytes: Vec<u8>,
        replace: Replace,
    ) -> Result<bool, std::io::Error> {
        let _serialized = self.write_lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if replace == Replace::UnlessOlder {
            let stored = self.load_meta().map_err(std::io::Error::other)?;
            if stored.is_some_and(|stored| stored.last_log_id > last_log_id) {
                return Ok(false);
            }
        }
        let mut batch = sled::Batch::default();
        batch.insert(SNAPSHOT_META, meta_bytes);
        batch.insert(SNAPSHOT_DATA, data_bytes);
        self.tree.apply_batch(batch)?;
        self.durable.sync()?;
        Ok(true)
    }
}

/// Builds a snapshot from a state captured when openraft asked for the builder.
///
/// openraft runs [`RaftSnapshotBuilder::build_snapshot`] on its own task while the state machine keeps
/// applying, so everything the snapshot contains (the application's bytes, last applied id,
/// membership) is captured up front, in the state machine task, where it is consistent.
pub struct SledSnapshotBuilder<C: RaftTypeConfig> {
    store: Arc<SnapshotStore<C>>,
    /// The application's bytes (or why it could not produce them); taken by the one build.
    captured: Option<Result<Vec<u8>, String>>,
    meta: Meta<C>,
}

impl<C: RaftTypeConfig> SledSnapshotBuilder<C> {
    pub(crate) fn new(
        store: Arc<SnapshotStore<C>>,
        captured: Result<Vec<u8>, String>,
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
        let data = match self.captured.take() {
            Some(Ok(data)) => data,
            Some(Err(reason)) => {
                let e = AnyError::error(format!("application snapshot failed: {reason}"));
                return Err(StorageIOError::read_state_machine(e).into());
            }
            None => {
                let e = AnyError::error("snapshot builder already used: each builder builds one snapshot");
                return Err(StorageIOError::write_snapshot(signature, e).into());
            }
        };
        if !self.store.save(&self.meta, &data, Replace::UnlessOlder).await? {
            tracing::info!(snapshot = %self.meta, "built snapshot is older than the stored one; not stored");
        }
        Ok(Snapshot { meta: self.meta.clone(), snapshot: Box::new(Cursor::new(data)) })
    }
}
