//! [`StateMachineStore`]: openraft's state machine, hosting an in-memory [`Application`].
//!
//! Invariants:
//! - `last_applied` and `membership` describe exactly the entries the application has seen: they
//!   advance together with `Application::apply`, and are replaced together with `Application::restore`.
//! - The application state is not persisted on apply; only snapshots are. At open the latest snapshot
//!   is restored and `last_applied` set from it, so openraft re-applies the committed log after it
//!   (the log store persists `committed` for this).
//! - Consecutive normal entries reach the application as one `apply` call (it can take its lock once
//!   and notify waiters once); blank and membership entries answer `C::R::default()`.

use std::io::Cursor;
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, Entry, EntryPayload, LogId, OptionalSend, RaftTypeConfig, Snapshot, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};

use crate::app::Application;
use crate::snapshot::{Replace, SledSnapshotBuilder, SnapshotStore};

type StorageResult<T, C> = Result<T, StorageError<<C as RaftTypeConfig>::NodeId>>;

/// The state machine of one node: the application, what it has applied, and the latest snapshot.
pub struct StateMachineStore<C: RaftTypeConfig, A> {
    app: Arc<A>,
    last_applied: Option<LogId<C::NodeId>>,
    membership: StoredMembership<C::NodeId, C::Node>,
    snapshots: Arc<SnapshotStore<C>>,
    /// Distinguishes snapshots built in this process at the same log id (their bytes may differ).
    builds: u64,
}

impl<C, A> StateMachineStore<C, A>
where
    C: RaftTypeConfig<SnapshotData = Cursor<Vec<u8>>, Entry = Entry<C>>,
    C::R: Default,
    A: Application<C>,
{
    /// Restore `app` from the stored snapshot (if any) and start from the state that snapshot records.
    pub(crate) fn open(snapshots: SnapshotStore<C>, app: Arc<A>) -> StorageResult<Self, C> {
        let mut sm = Self {
            app,
            last_applied: None,
            membership: StoredMembership::default(),
            snapshots: Arc::new(snapshots),
            builds: 0,
        };
        if let Some((meta, data)) = sm.snapshots.load()? {
            sm.restore(&meta, &data)?;
            tracing::info!(snapshot = %meta, "restored the application from the stored snapshot");
        }
        Ok(sm)
    }

    /// The application this state machine drives.
    pub fn app(&self) -> &Arc<A> {
        &self.app
    }

    fn restore(&mut self, meta: &SnapshotMeta<C::NodeId, C::Node>, data: &[u8]) -> StorageResult<(), C> {
        let restored = self.app.restore(data);
        self.restored(meta, restored)
    }

    /// Bookkeeping after the application restored (or failed to restore) the snapshot `meta`.
    fn restored(
        &mut self,
        meta: &SnapshotMeta<C::NodeId, C::Node>,
        restored: Result<(), String>,
    ) -> StorageResult<(), C> {
        restored.map_err(|reason| {
            let e = AnyError::error(format!("application could not restore snapshot {}: {reason}", meta.snapshot_id));
            StorageIOError::read_snapshot(Some(meta.signature()), e)
        })?;
        self.last_applied = meta.last_log_id.clone();
        self.membership = meta.last_membership.clone();
        if let Some(last) = &self.last_applied {
            self.app.applied_up_to(last);
        }
        Ok(())
    }

    /// Hand `batch` to the application and append its responses; the batch is left empty.
    fn apply_batch(&mut self, batch: &mut Vec<(LogId<C::NodeId>, C::D)>, out: &mut Vec<C::R>) -> StorageResult<(), C> {
        let Some(last) = batch.last().map(|(id, _)| id.clone()) else { return Ok(()) };
        let expected = batch.len();
        let responses = self.app.apply(std::mem::take(batch));
        if responses.len() != expected {
            let e = format!("application returned {} responses for {expected} commands", responses.len());
            return Err(StorageIOError::apply(last, AnyError::error(e)).into());
        }
        out.extend(responses);
        self.last_applied = Some(last);
        Ok(())
    }
}

impl<C, A> RaftStateMachine<C> for StateMachineStore<C, A>
where
    C: RaftTypeConfig<SnapshotData = Cursor<Vec<u8>>, Entry = Entry<C>>,
    C::R: Default,
    A: Application<C>,
{
    type SnapshotBuilder = SledSnapshotBuilder<C>;

    async fn applied_state(
        &mut self,
    ) -> StorageResult<(Option<LogId<C::NodeId>>, StoredMembership<C::NodeId, C::Node>), C> {
        Ok((self.last_applied.clone(), self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> StorageResult<Vec<C::R>, C>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut out = Vec::new();
        let mut batch = Vec::new();
        for entry in entries {
            match entry.payload {
                EntryPayload::Normal(cmd) => batch.push((entry.log_id, cmd)),
                EntryPayload::Blank => {
                    self.apply_batch(&mut batch, &mut out)?;
                    out.push(C::R::default());
                    self.last_applied = Some(entry.log_id);
                }
                EntryPayload::Membership(membership) => {
                    self.apply_batch(&mut batch, &mut out)?;
                    out.push(C::R::default());
                    self.membership = StoredMembership::new(Some(entry.log_id.clone()), membership);
                    self.last_applied = Some(entry.log_id);
                }
            }
        }
        self.apply_batch(&mut batch, &mut out)?;
        if let Some(last) = &self.last_applied {
            self.app.applied_up_to(last);
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.builds += 1;
        let at = self.last_applied.as_ref().map_or_else(|| "none".to_string(), |id| id.to_string());
        let snapshot_id = format!("{at}-{}", self.builds);
        // Only the freeze runs here, where the state is exactly the state at `last_applied` (no apply runs
        // meanwhile); serializing the frozen view, long with many instances (hundreds of ms per 100 MB), is
        // the builder's, on the blocking pool, while this task goes on applying.
        let captured = self.app.freeze();
        SledSnapshotBuilder::new(
            Arc::clone(&self.snapshots),
            captured,
            self.last_applied.clone(),
            self.membership.clone(),
            snapshot_id,
        )
    }

    async fn begin_receiving_snapshot(&mut self) -> StorageResult<Box<Cursor<Vec<u8>>>, C> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<C::NodeId, C::Node>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StorageResult<(), C> {
        let data = snapshot.into_inner();
        // Restore first: it validates the bytes, so a snapshot the application cannot read is never
        // stored (it would stop this node from ever starting again). Decoding a large snapshot takes long,
        // so it runs on the blocking pool (as building one does, see `get_snapshot_builder`).
        let app = Arc::clone(&self.app);
        let (data, restored) = tokio::task::spawn_blocking(move || {
            let restored = app.restore(&data);
            (data, restored)
        })
        .await
        .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), AnyError::error(e.to_string())))?;
        self.restored(meta, restored)?;
        self.snapshots.save(meta, data, Replace::Always).await?;
        tracing::info!(snapshot = %meta, "installed snapshot");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> StorageResult<Option<Snapshot<C>>, C> {
        // Reading and decoding a large snapshot takes long: on the blocking pool, as saving it does.
        let snapshots = Arc::clone(&self.snapshots);
        let stored = tokio::task::spawn_blocking(move || snapshots.load())
            .await
            .map_err(|e| StorageIOError::read_snapshot(None, AnyError::error(e.to_string())))??;
        Ok(stored.map(|(meta, data)| Snapshot { meta, snapshot: Box::new(Cursor::new(data)) }))
    }
}
