//! [`SledLogStore`]: openraft's log storage (entries, vote, committed, purged) in sled.
//!
//! Invariants:
//! - Tree `logs` maps `index.to_be_bytes()` to the codec-encoded entry at that index; entries present
//!   are consecutive, and every entry's own log id has the index of its key (checked on read).
//! - `append` acknowledges (calls `LogFlushed`) and `save_vote` returns only once the write is durable
//!   (flush + `fdatasync`, see `durable`) **and** recorded in the durable record (see `record`): every
//!   durable sync here is followed by a record of what it made durable (last log id, last purged, vote),
//!   which the next open checks the log against. `committed` is neither synced nor recorded: losing its
//!   latest value only means openraft re-applies a little less at start and learns the rest from the
//!   leader.
//! - `purge` makes the new `last_purged` durable *before* deleting entries, so a crash in between
//!   leaves only entries `<= last_purged`, which [`SledLogStore::get_log_state`] ignores and opening a
//!   data dir deletes. The reverse order could leave a hole below the first entry that openraft would
//!   take for the start of the log.
//! - Reads of the newest entries (replication, apply) are answered from memory (`recent`) when the range
//!   is held whole; what is held equals what sled holds, because `append` adds to it only after each
//!   insert, `truncate` cuts it before removing anything and `purge` trims it before deleting.
//! - `truncate` is made durable before it returns, so no removed entry can reappear after a crash once
//!   openraft has moved on. It first lowers the durable record to the entry before the removed ones, so
//!   the record never claims a removed entry, whenever a crash comes.
//!
//! Blocking: sled inserts, removes and reads work on its in-memory page cache and are done inline;
//! the flush + fsync (milliseconds) and the removal of a purged range (thousands of entries) run on
//! tokio's blocking pool. openraft 0.9 waits for each
//! append's callback before its next log IO, so these syncs never overlap; if they did, callbacks would
//! still be correct, because every sync covers all writes made before it started.

use std::fmt::Debug;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    AnyError, LogId, OptionalSend, RaftLogId, RaftLogReader, RaftTypeConfig, StorageError, StorageIOError, Vote,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_util::task::TaskTracker;

use crate::codec;
use crate::durable::Durable;
use crate::layout::{log_index, log_key, META_COMMITTED, META_LAST_PURGED, META_VOTE};
use crate::recent::{RecentEntries, MAX_BYTES, MAX_ENTRIES};
use crate::record::{Claim, DurableRecord, Held};

type StorageResult<T, C> = Result<T, StorageError<<C as RaftTypeConfig>::NodeId>>;
type IoErrorFn<C> = fn(AnyError) -> StorageIOError<<C as RaftTypeConfig>::NodeId>;

/// The Raft log and Raft metadata of one node, in the `logs` and `meta` trees of its sled db.
///
/// Cheap to clone (sled trees are reference counted); a clone is also the log reader that openraft's
/// replication tasks use concurrently.
pub struct SledLogStore<C: RaftTypeConfig> {
    logs: sled::Tree,
    meta: sled::Tree,
    durable: Arc<Durable>,
    record: Arc<DurableRecord<C::NodeId>>,
    /// The flush of each append, acknowledged to openraft when durable (shared by the clones).
    flushes: TaskTracker,
    /// The newest entries, so that replication and apply read them back without decoding (see
    /// `recent`; shared by the clones).
    recent: Arc<Mutex<RecentEntries<C::Entry>>>,
    _config: PhantomData<fn() -> C>,
}

impl<C: RaftTypeConfig> Clone for SledLogStore<C> {
    fn clone(&self) -> Self {
        Self {
            logs: self.logs.clone(),
            meta: self.meta.clone(),
            durable: Arc::clone(&self.durable),
            record: Arc::clone(&self.record),
            flushes: self.flushes.clone(),
            recent: Arc::clone(&self.recent),
            _config: PhantomData,
        }
    }
}

impl<C: RaftTypeConfig> SledLogStore<C>
where
    C::Entry: Clone,
{
    /// Report the duration of every later durable sync (appends, votes, purges, snapshots) to
    /// `observer`, e.g. for metrics. Only the first call takes effect.
    pub fn set_sync_observer(&self, observer: Arc<dyn crate::SyncObserver>) {
        self.durable.set_observer(observer);
    }

    /// The flushes of appends still in flight. The owner closes and waits on it after the Raft core
    /// stopped: a flush outlives the append call that started it (openraft learns of it by callback).
    pub fn flushes(&self) -> TaskTracker {
        self.flushes.clone()
    }

    pub(crate) fn new(
        logs: sled::Tree,
        meta: sled::Tree,
        durable: Arc<Durable>,
        record: Arc<DurableRecord<C::NodeId>>,
    ) -> Self {
        let recent = Arc::new(Mutex::new(RecentEntries::new(MAX_ENTRIES, MAX_BYTES)));
        Self { logs, meta, durable, record, flushes: TaskTracker::new(), recent, _config: PhantomData }
    }

    /// True if this node has never taken part in a cluster: no vote, no log entry, nothing purged.
    /// The node uses it (or openraft's `is_initialized`) to decide whether to initialize a cluster.
    pub fn is_fresh(&self) -> StorageResult<bool, C> {
        let vote: Option<Vote<C::NodeId>> = self.read_meta(META_VOTE, "vote", StorageIOError::read_vote)?;
        let purged: Option<LogId<C::NodeId>> =
            self.read_meta(META_LAST_PURGED, "last purged log id", StorageIOError::read_logs)?;
        Ok(vote.is_none() && purged.is_none() && self.logs.is_empty())
    }

    /// Delete entries left at or below `last_purged` by a crash in the middle of a purge. Called when
    /// the data dir is opened. Not synced: a leftover that comes back is ignored again.
    pub(crate) fn remove_purged_leftovers(&self) -> StorageResult<(), C> {
        let purged: Option<LogId<C::NodeId>> =
            self.read_meta(META_LAST_PURGED, "last purged log id", StorageIOError::read_logs)?;
        if let Some(purged) = purged {
            self.remove_range(..=log_key(purged.index))?;
        }
        Ok(())
    }

    /// What the log holds, for checking it against the durable record's `claim` when the dir is opened.
    pub(crate) fn held(&self, claim: &Claim<C::NodeId>) -> StorageResult<Held<C::NodeId>, C> {
        let last_purged: Option<LogId<C::NodeId>> =
            self.read_meta(META_LAST_PURGED, "last purged log id", StorageIOError::read_logs)?;
        let purged_index = last_purged.as_ref().map(|id| id.index);
        let above_purged = |id: LogId<C::NodeId>| Some(id).filter(|id| Some(id.index) > purged_index);
        let last_entry = self.last_entry_id()?.and_then(above_purged);
        let at_recorded = match &claim.last_log_id {
            Some(last) => match self.logs.get(log_key(last.index)).map_err(|e| StorageIOError::read_logs(&e))? {
                Some(value) => above_purged(self.decode_entry(&log_key(last.index), &value)?.get_log_id().clone()),
                None => None,
            },
            None => None,
        };
        let vote = self.read_meta(META_VOTE, "vote", StorageIOError::read_vote)?;
        Ok(Held { last_entry, last_purged, vote, at_recorded })
    }

    /// Make the durable record say what the log holds now, once that is durable (a data dir that had no
    /// record). Blocking.
    pub(crate) fn record_current_state(&self) -> StorageResult<(), C> {
        let held = self.held(&Claim::default())?;
        let claim = Claim { last_log_id: held.last_entry, last_purged: held.last_purged, vote: held.vote };
        self.record.update(|recorded| *recorded = claim);
        sync_and_record(&self.durable, &self.record).map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }

    fn read_meta<T: DeserializeOwned>(&self, key: &[u8], what: &str, err: IoErrorFn<C>) -> StorageResult<Option<T>, C> {
        let Some(bytes) = self.meta.get(key).map_err(|e| err(AnyError::new(&e)))? else {
            return Ok(None);
        };
        let value = codec::decode(what, &bytes).map_err(|e| err(AnyError::new(&e)))?;
        Ok(Some(value))
    }

    fn write_meta<T: Serialize>(&self, key: &[u8], what: &str, value: &T, err: IoErrorFn<C>) -> StorageResult<(), C> {
        let bytes = codec::encode(what, value).map_err(|e| err(AnyError::new(&e)))?;
        self.meta.insert(key, bytes).map_err(|e| err(AnyError::new(&e)))?;
        Ok(())
    }

    /// Flush + fdatasync, then record what that made durable, on the blocking pool; io errors are
    /// reported through `err`.
    async fn sync(&self, err: IoErrorFn<C>) -> StorageResult<(), C> {
        let (durable, record) = (Arc::clone(&self.durable), Arc::clone(&self.record));
        tokio::task::spawn_blocking(move || sync_and_record(&durable, &record))
            .await
            .map_err(|e| err(AnyError::error(format!("durable sync task failed: {e}"))))?
            .map_err(|e| err(AnyError::new(&e)))?;
        Ok(())
    }

    fn remove_range<R: RangeBounds<[u8; 8]>>(&self, range: R) -> StorageResult<(), C> {
        let mut batch = sled::Batch::default();
        for key in self.logs.range(range).keys() {
            batch.remove(key.map_err(|e| StorageIOError::write_logs(&e))?);
        }
        self.logs.apply_batch(batch).map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }

    /// The recent entries. A panic elsewhere while holding the lock cannot leave them half-changed in a
    /// way that matters (each change is one push or pop), so a poisoned lock is taken as is.
    fn recent(&self) -> MutexGuard<'_, RecentEntries<C::Entry>> {
        self.recent.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn decode_entry(&self, key: &[u8], value: &[u8]) -> StorageResult<C::Entry, C> {
        let Some(index) = log_index(key) else {
            let bad = AnyError::error(format!("log key {key:?} is not 8 bytes"));
            return Err(StorageIOError::read_logs(bad).into());
        };
        let entry: C::Entry = codec::decode(format_args!("log entry {index}"), value)
            .map_err(|e| StorageIOError::read_log_at_index(index, &e))?;
        if entry.get_log_id().index != index {
            let bad = format!("log entry {index}: stored under index {index} but holds {}", entry.get_log_id());
            return Err(StorageIOError::read_log_at_index(index, AnyError::error(bad)).into());
        }
        Ok(entry)
    }

    fn last_entry_id(&self) -> StorageResult<Option<LogId<C::NodeId>>, C> {
        match self.logs.last().map_err(|e| StorageIOError::read_logs(&e))? {
            None => Ok(None),
            Some((key, value)) => Ok(Some(self.decode_entry(&key, &value)?.get_log_id().clone())),
        }
    }
}

/// Make every write so far durable, then record the claim taken before the sync began. Blocking.
/// Longest a durable sync may take before it counts as failed. sled 0.34 can wait forever for an IO buffer
/// that a failed write (seen with `ENOSPC` on a full disk) will never make stable: without a deadline the
/// node hung, writes pending and `/healthz` unanswered, instead of stopping with the cause. A healthy
/// disk syncs in milliseconds; an overloaded one in well under this.
pub const SYNC_DEADLINE: Duration = Duration::from_secs(20);

/// Run the blocking `sync` on tokio's blocking pool; an error if it fails or does not finish in `deadline`
/// (the blocked thread is left behind: the storage error stops the node, which exits).
async fn within_deadline(
    deadline: Duration,
    sync: impl FnOnce() -> std::io::Result<()> + Send + 'static,
) -> std::io::Result<()> {
    match tokio::time::timeout(deadline, tokio::task::spawn_blocking(sync)).await {
        Ok(Ok(done)) => done,
        Ok(Err(join)) => Err(std::io::Error::other(format!("durable sync task failed: {join}"))),
        Err(_) => Err(std::io::Error::other(format!(
            "a durable sync (sled flush + fdatasync) did not finish within {deadline:?}: the disk is full, failing \
             or hung"
        ))),
    }
}

fn sync_and_record<NID: openraft::NodeId>(durable: &Durable, record: &DurableRecord<NID>) -> std::io::Result<()> {
    let ticket = record.before_sync();
    durable.sync()?;
    record.after_sync(ticket)
}

/// `[start, end)` of a range of indexes, or `None` if it is empty.
fn index_span<RB: RangeBounds<u64>>(range: &RB) -> Option<(u64, Option<u64>)> {
    let start = match range.start_bound() {
        Bound::Included(&i) => i,
        Bound::Excluded(&i) => i.checked_add(1)?,
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&i) => i.checked_add(1),
        Bound::Excluded(&i) => Some(i),
        Bound::Unbounded => None,
    };
    match end {
        Some(end) if end <= start => None,
        _ => Some((start, end)),
    }
}

impl<C: RaftTypeConfig> RaftLogReader<C> for SledLogStore<C>
where
    C::Entry: Clone,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<C::Entry>, C> {
        let Some((start, end)) = index_span(&range) else { return Ok(Vec::new()) };
        if let Some(entries) = end.and_then(|end| self.recent().get(start, end)) {
            return Ok(entries);
        }
        let iter = match end {
            Some(end) => self.logs.range(log_key(start)..log_key(end)),
            None => self.logs.range(log_key(start)..),
        };
        let mut entries = Vec::new();
        for item in iter {
            let (key, value) = item.map_err(|e| StorageIOError::read_logs(&e))?;
            entries.push(self.decode_entry(&key, &value)?);
        }
        Ok(entries)
    }
}

impl<C: RaftTypeConfig> RaftLogStorage<C> for SledLogStore<C>
where
    C::Entry: Clone,
{
    type LogReader = Self;

    async fn get_log_state(&mut self) -> StorageResult<LogState<C>, C> {
        let last_purged_log_id: Option<LogId<C::NodeId>> =
            self.read_meta(META_LAST_PURGED, "last purged log id", StorageIOError::read_logs)?;
        let last_entry = self.last_entry_id()?;
        // Entries at or below last_purged are leftovers of an interrupted purge: they do not count.
        let last_log_id = match (&last_entry, &last_purged_log_id) {
            (Some(entry), Some(purged)) if entry.index <= purged.index => last_purged_log_id.clone(),
            (None, _) => last_purged_log_id.clone(),
            _ => last_entry,
        };
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<C::NodeId>) -> StorageResult<(), C> {
        self.write_meta(META_VOTE, "vote", vote, StorageIOError::write_vote)?;
        self.record.update(|claim| claim.vote = Some(vote.clone()));
        self.sync(StorageIOError::write_vote).await
    }

    async fn read_vote(&mut self) -> StorageResult<Option<Vote<C::NodeId>>, C> {
        self.read_meta(META_VOTE, "vote", StorageIOError::read_vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId<C::NodeId>>) -> StorageResult<(), C> {
        match committed {
            Some(id) => self.write_meta(META_COMMITTED, "committed log id", &id, StorageIOError::write_logs),
            None => {
                self.meta.remove(META_COMMITTED).map_err(|e| StorageIOError::write_logs(&e))?;
                Ok(())
            }
        }
    }

    async fn read_committed(&mut self) -> StorageResult<Option<LogId<C::NodeId>>, C> {
        self.read_meta(META_COMMITTED, "committed log id", StorageIOError::read_logs)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<C>) -> StorageResult<(), C>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // Plain inserts in index order, not a `sled::Batch`: sled 0.34 makes every batch atomic by sealing
        // and writing its IO buffer twice before the batch even starts (`pin_log`), which doubled the
        // IO of each append. Atomicity is not needed: openraft reads only entries it knows are appended,
        // and a crash before the sync below leaves a prefix of these entries (sled recovers its log in
        // order), none of them acknowledged.
        let mut last = None;
        for entry in entries {
            let log_id = entry.get_log_id().clone();
            let bytes = codec::encode(format_args!("log entry {}", log_id.index), &entry)
                .map_err(|e| StorageIOError::write_log_entry(log_id.clone(), &e))?;
            let size = bytes.len();
            self.logs.insert(log_key(log_id.index), bytes).map_err(|e| StorageIOError::write_logs(&e))?;
            self.recent().push(log_id.index, entry, size);
            last = Some(log_id);
        }
        if let Some(last) = last {
            self.record.update(|claim| claim.last_log_id = Some(last));
        }

        // The entries are readable now; acknowledge them once durable and recorded, without blocking
        // this task.
        let (durable, record) = (Arc::clone(&self.durable), Arc::clone(&self.record));
        self.flushes.spawn(async move {
            callback.log_io_completed(within_deadline(SYNC_DEADLINE, move || sync_and_record(&durable, &record)).await)
        });
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<C::NodeId>) -> StorageResult<(), C> {
        tracing::debug!(since = %log_id, "truncate log");
        // The record must not claim what is about to be removed: lower it (durably) first.
        let before = self.logs.range(..log_key(log_id.index)).next_back();
        let new_last = match before.transpose().map_err(|e| StorageIOError::write_logs(&e))? {
            Some((key, value)) => Some(self.decode_entry(&key, &value)?.get_log_id().clone()),
            None => None,
        };
        self.recent().remove_from(log_id.index);
        let (record, since) = (Arc::clone(&self.record), log_id.index);
        tokio::task::spawn_blocking(move || record.lower_last_log_id(since, new_last))
            .await
            .map_err(|e| StorageIOError::write_logs(AnyError::error(format!("durable record task failed: {e}"))))?
            .map_err(|e| StorageIOError::write_logs(&e))?;
        self.remove_range(log_key(log_id.index)..)?;
        self.sync(StorageIOError::write_logs).await
    }

    async fn purge(&mut self, log_id: LogId<C::NodeId>) -> StorageResult<(), C> {
        tracing::debug!(upto = %log_id, "purge log");
        // Record the purge durably first, then delete: see the module docs for why this order.
        self.write_meta(META_LAST_PURGED, "last purged log id", &log_id, StorageIOError::write_logs)?;
        self.record.update(|claim| claim.last_purged = Some(log_id.clone()));
        self.sync(StorageIOError::write_logs).await?;
        self.recent().remove_upto(log_id.index);
        // Thousands of entries after each snapshot: removed one by one on the blocking pool, not in one
        // sled batch (which would exclude every other sled operation meanwhile, appends included).
        // Nothing needs them gone together: whatever a crash leaves is at or below `last_purged`.
        let logs = self.logs.clone();
        let upto = log_key(log_id.index);
        tokio::task::spawn_blocking(move || -> Result<(), sled::Error> {
            for key in logs.range(..=upto).keys() {
                logs.remove(key?)?;
            }
            Ok(())
        })
        .await
        .map_err(|e| StorageIOError::write_logs(AnyError::error(e.to_string())))?
        .map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_sync_that_never_finishes_is_an_error_naming_the_deadline() {
        let hung = within_deadline(Duration::from_millis(50), || {
            std::thread::sleep(Duration::from_secs(2));
            Ok(())
        });
        let err = hung.await.expect_err("past the deadline");
        assert!(err.to_string().contains("did not finish within 50ms"), "{err}");
        assert!(within_deadline(Duration::from_secs(5), || Ok(())).await.is_ok());
        let failed = within_deadline(Duration::from_secs(5), || Err(std::io::Error::other("ENOSPC"))).await;
        assert_eq!(failed.expect_err("fails").to_string(), "ENOSPC");
    }
}
