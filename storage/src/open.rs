//! Opening a node's data dir: [`open_storage`] and its [`OpenError`].
//!
//! Invariants:
//! - A data dir belongs to one node: the first open records the node id and the schema version
//!   (durably) and every later open checks them before touching anything, so a dir copied or mounted
//!   under the wrong node, or written by a newer build, is refused rather than silently reused.
//! - An initialized dir is never mistaken for a fresh one: sled reads a destroyed data file as an
//!   empty database, so a marker file outside sled (see `marker`) witnesses the initialization.
//! - One process at a time: sled takes an exclusive `flock` on `<dir>/db`. A held lock is reported as
//!   [`OpenError::InUse`] after a short wait, because sled releases the lock a few milliseconds after
//!   the last handle is dropped (its background threads finish first) and an in-process restart must
//!   not fail on that.
//! - Nothing here panics on a bad dir: sled's errors map to [`OpenError`], and a panic inside sled's
//!   recovery code (it has internal asserts) is caught and reported as corruption.
//! - Broken leftovers of sled's own snapshot writes are removed before sled opens the dir (see
//!   `sled_files`), so a crash or a full disk while sled wrote one does not fail every later open.
//! - The log must reach what the durable record (see `record`) says was made durable, or the dir is
//!   refused with [`OpenError::LostDurableState`]: sled silently drops everything after a damaged
//!   message, and a node that forgot acknowledged entries or its vote must not rejoin its cluster as if
//!   nothing happened. A record with both slots damaged is refused the same way. A dir without a record
//!   (initialized before records existed) is accepted and given one, with a warning.

use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::{Entry, RaftTypeConfig};

use crate::app::Application;
use crate::codec::{self, SCHEMA_VERSION};
use crate::durable::Durable;
use crate::layout::{LOGS_TREE, META_NODE_ID, META_SCHEMA_VERSION, META_TREE, SNAPSHOT_TREE};
use crate::log_store::SledLogStore;
use crate::marker;
use crate::record::{self, Claim, DurableRecord, Loaded, RECORD_FILE};
use crate::sled_files;
use crate::snapshot::SnapshotStore;
use crate::state_machine::StateMachineStore;

/// How long to wait for sled's lock on the data dir before reporting it in use.
const LOCK_WAIT: Duration = Duration::from_secs(2);
const LOCK_RETRY_EVERY: Duration = Duration::from_millis(10);

/// Why a data dir could not be opened. Every message names the dir.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Another process (or another open in this process) holds the data dir.
    #[error("data dir {} is in use by another process", dir.display())]
    InUse {
        /// The data dir.
        dir: PathBuf,
    },
    /// The data dir was written by a different node.
    #[error("data dir {} belongs to node {found}, not to node {expected}; refusing to use it", dir.display())]
    WrongNodeId {
        /// The data dir.
        dir: PathBuf,
        /// The node id recorded in the dir.
        found: String,
        /// The node id this process runs as.
        expected: String,
    },
    /// The data dir was written by a newer build with a storage format this build cannot read.
    #[error(
        "data dir {} has storage schema version {found}, newer than version {supported} that this build \
         supports; run a newer build",
        dir.display()
    )]
    NewerSchema {
        /// The data dir.
        dir: PathBuf,
        /// The schema version recorded in the dir.
        found: u8,
        /// The newest schema version this build reads.
        supported: u8,
    },
    /// The data dir's files cannot be read as a valid data dir.
    #[error("data dir {} is unreadable or corrupt: {reason}", dir.display())]
    Corrupt {
        /// The data dir.
        dir: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The log no longer holds what the durable record says was made durable (acknowledged entries, a
    /// purge or a vote were lost, typically to damage in sled's data file), or the record itself is
    /// damaged. Starting would let the node forget what it acknowledged, so it is refused.
    #[error(
        "data dir {} has lost acknowledged Raft state: {reason}. Refusing to start: a node that forgot \
         acknowledged log entries or its vote can break its cluster's consistency. To recover, in a cluster: \
         remove this node (`discovery cluster remove --node <its address> --server <another member>`), wipe \
         the data dir, start the node again with `--join` and add it back (`discovery cluster add`); it then \
         copies the state from the leader. In dev mode: start with a fresh data dir (the data in this one \
         cannot be trusted)",
        dir.display()
    )]
    LostDurableState {
        /// The data dir.
        dir: PathBuf,
        /// What the durable record says and what the log holds.
        reason: String,
    },
    /// An I/O error other than corruption (permissions, disk full, ...).
    #[error("data dir {}: {source}", dir.display())]
    Io {
        /// The data dir.
        dir: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Open (or create) the data dir `dir` of node `node_id` and return its log store and its state
/// machine, with `app` restored from the stored snapshot.
///
/// Blocking (file I/O, and up to a couple of seconds of waiting for a lock a previous owner is
/// releasing): call it from a blocking context. Use [`SledLogStore::is_fresh`] to tell whether the node
/// has never been part of a cluster.
pub fn open_storage<C, A>(
    dir: &Path,
    node_id: C::NodeId,
    app: Arc<A>,
) -> Result<(SledLogStore<C>, StateMachineStore<C, A>), OpenError>
where
    C: RaftTypeConfig<SnapshotData = Cursor<Vec<u8>>, Entry = Entry<C>>,
    C::R: Default,
    C::D: Clone,
    A: Application<C>,
{
    let corrupt = |reason: String| OpenError::Corrupt { dir: dir.to_path_buf(), reason };
    let io = |source: std::io::Error| OpenError::Io { dir: dir.to_path_buf(), source };

    std::fs::create_dir_all(dir).map_err(io)?;
    remove_sled_leftovers(dir)?;
    let db = open_db(dir)?;
    let tree = |name: &str| db.open_tree(name).map_err(|e| sled_error(dir, e));
    let (logs, meta, snapshot) = (tree(LOGS_TREE)?, tree(META_TREE)?, tree(SNAPSHOT_TREE)?);
    let durable = Arc::new(Durable::new(db.clone(), dir).map_err(io)?);

    let identity = Identity { dir, meta: &meta };
    let marked = marker::exists(dir).map_err(io)?;
    let mut loaded = record::read::<C::NodeId>(dir).map_err(io)?;
    match identity.check::<C>(&node_id)? {
        Recorded::Yes if marked => {}
        // Initialized, but the crash came before the marker was written: finish the job.
        Recorded::Yes => marker::write(dir, &node_id, SCHEMA_VERSION).map_err(io)?,
        Recorded::No if marked || !matches!(loaded, Loaded::Missing) => {
            let witness = if marked { marker::MARKER_FILE } else { RECORD_FILE };
            let reason = format!("{witness} says it was initialized, but sled holds no node id");
            return Err(corrupt(reason));
        }
        Recorded::No if !(logs.is_empty() && snapshot.is_empty() && meta.is_empty()) => {
            // Raft data without an owner: not something we wrote (we record the owner first).
            return Err(corrupt("it holds raft data but no node id".to_string()));
        }
        Recorded::No => {
            identity.record::<C>(&node_id)?;
            durable.sync().map_err(io)?;
            durable.sync_dir_entries().map_err(io)?;
            let seq = record::create::<C::NodeId>(dir, &Claim::default()).map_err(io)?;
            marker::write(dir, &node_id, SCHEMA_VERSION).map_err(io)?;
            loaded = Loaded::Valid { seq, claim: Claim::default() };
            tracing::info!(dir = %dir.display(), node_id = %node_id, "initialized a new data dir");
        }
    }

    let log_store = open_log_store::<C>(dir, logs, meta, Arc::clone(&durable), loaded, marked)?;
    log_store.remove_purged_leftovers().map_err(|e| corrupt(e.to_string()))?;
    let state_machine = StateMachineStore::open(SnapshotStore::new(snapshot, durable, dir).map_err(io)?, app)
        .map_err(|e| corrupt(e.to_string()))?;
    Ok((log_store, state_machine))
}

/// The log store of an initialized dir, once its log is checked against the durable record (`loaded`).
/// A dir without a record gets one saying what its log holds; with a warning if it was `marked` as
/// initialized (a dir from before records existed), since nothing can check that log.
fn open_log_store<C: RaftTypeConfig>(
    dir: &Path,
    logs: sled::Tree,
    meta: sled::Tree,
    durable: Arc<Durable>,
    loaded: Loaded<C::NodeId>,
    marked: bool,
) -> Result<SledLogStore<C>, OpenError>
where
    C::Entry: Clone,
{
    let lost = |reason: String| OpenError::LostDurableState { dir: dir.to_path_buf(), reason };
    let io = |source: std::io::Error| OpenError::Io { dir: dir.to_path_buf(), source };
    let (seq, claim, check) = match loaded {
        Loaded::Valid { seq, claim } => (seq, claim, true),
        Loaded::Unreadable { why } => {
            let path = dir.join(RECORD_FILE);
            return Err(lost(format!("its durable record {} is damaged ({why})", path.display())));
        }
        Loaded::Missing => (record::create::<C::NodeId>(dir, &Claim::default()).map_err(io)?, Claim::default(), false),
    };
    let record = Arc::new(DurableRecord::open(dir, seq, claim.clone()).map_err(io)?);
    let log_store = SledLogStore::new(logs, meta, durable, Arc::clone(&record));
    if check {
        let held =
            log_store.held(&claim).map_err(|e| OpenError::Corrupt { dir: dir.to_path_buf(), reason: e.to_string() })?;
        record::check(&claim, &held).map_err(|problem| {
            let path = record.path().display();
            lost(format!("{problem} (the durable record {path} says: {claim}; the log holds: {held})"))
        })?;
    } else {
        log_store.record_current_state().map_err(|e| io(std::io::Error::other(e.to_string())))?;
        if marked {
            tracing::warn!(
                dir = %dir.display(),
                "data dir had no durable record ({RECORD_FILE}, written by builds since it was added); created one \
                 from what the log holds now, which could not be checked"
            );
        }
    }
    Ok(log_store)
}

/// Remove sled's broken snapshot files (see `sled_files`) while holding sled's own lock (an exclusive
/// `flock` of `<dir>/db`, waited for as long as [`open_db`] waits), so that opening a dir in use can
/// never remove the file the running sled is writing. The lock is released before sled takes it.
fn remove_sled_leftovers(dir: &Path) -> Result<(), OpenError> {
    let io = |source: std::io::Error| OpenError::Io { dir: dir.to_path_buf(), source };
    // Created if missing, with the options sled itself uses: sled would create it next anyway.
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    let file = options.open(dir.join("db")).map_err(io)?;
    let started = Instant::now();
    while let Err(e) = fs2::FileExt::try_lock_exclusive(&file) {
        if e.kind() != fs2::lock_contended_error().kind() {
            return Err(io(e));
        }
        if started.elapsed() >= LOCK_WAIT {
            return Err(OpenError::InUse { dir: dir.to_path_buf() });
        }
        std::thread::sleep(LOCK_RETRY_EVERY);
    }
    sled_files::remove_broken_snapshots(dir).map_err(io)?;
    // Closing the file releases the lock.
    drop(file);
    Ok(())
}

/// sled's page cache. Its default (1 GiB) let a node at 1,000,000 instances keep hundreds of MB of log and
/// snapshot pages resident. Snapshots are files now, and what the node reads back from sled is the recent
/// log (replication, a few MB behind the tip) and a few metadata keys, so 32 MiB serves it; 64 MiB was the
/// last ~30 MB of a leader's 512 MB at 1,000,000 instances (issue 12).
pub const SLED_CACHE_BYTES: u64 = 32 * 1024 * 1024;

/// Open sled in `dir`, waiting up to [`LOCK_WAIT`] for its lock.
fn open_db(dir: &Path) -> Result<sled::Db, OpenError> {
    let started = Instant::now();
    loop {
        let config = sled::Config::new().path(dir).cache_capacity(SLED_CACHE_BYTES);
        let opened = catch_unwind(AssertUnwindSafe(|| config.open())).map_err(|panic| OpenError::Corrupt {
            dir: dir.to_path_buf(),
            reason: format!("sled panicked while recovering it: {}", panic_message(&*panic)),
        })?;
        match opened {
            Ok(db) => return Ok(db),
            Err(e) if is_lock_error(&e) && started.elapsed() < LOCK_WAIT => std::thread::sleep(LOCK_RETRY_EVERY),
            Err(e) => return Err(sled_error(dir, e)),
        }
    }
}

/// sled 0.34.7 reports a held lock as `Io(Other)` with this text (`Config::try_lock`).
fn is_lock_error(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.kind() == std::io::ErrorKind::Other
        && io.to_string().contains("could not acquire lock"))
}

fn sled_error(dir: &Path, e: sled::Error) -> OpenError {
    let dir = dir.to_path_buf();
    match e {
        e if is_lock_error(&e) => OpenError::InUse { dir },
        sled::Error::Io(source) => OpenError::Io { dir, source },
        other => OpenError::Corrupt { dir, reason: other.to_string() },
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(s), _) => (*s).to_string(),
        (_, Some(s)) => s.clone(),
        _ => "unknown panic".to_string(),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Recorded {
    Yes,
    No,
}

/// The owner node id and schema version recorded in the `meta` tree.
struct Identity<'a> {
    dir: &'a Path,
    meta: &'a sled::Tree,
}

impl Identity<'_> {
    /// Check the recorded identity against ours, without writing anything. `Recorded::No` means none
    /// is recorded yet.
    fn check<C: RaftTypeConfig>(&self, node_id: &C::NodeId) -> Result<Recorded, OpenError> {
        let dir = self.dir.to_path_buf();
        let get = |key: &[u8]| self.meta.get(key).map_err(|e| sled_error(self.dir, e));
        let (version, owner) = (get(META_SCHEMA_VERSION)?, get(META_NODE_ID)?);
        // The version first: it says how to decode the node id.
        match version.as_deref() {
            None if owner.is_none() => return Ok(Recorded::No),
            None => return Err(OpenError::Corrupt { dir, reason: "it has a node id but no schema version".into() }),
            Some(&[found]) if found > SCHEMA_VERSION => {
                return Err(OpenError::NewerSchema { dir, found, supported: SCHEMA_VERSION })
            }
            Some(&[SCHEMA_VERSION]) => {}
            Some(other) => return Err(OpenError::Corrupt { dir, reason: format!("unknown schema version {other:?}") }),
        }
        let Some(owner) = owner else {
            return Err(OpenError::Corrupt { dir, reason: "it has a schema version but no node id".into() });
        };
        let found: C::NodeId = codec::decode("node id", &owner)
            .map_err(|e| OpenError::Corrupt { dir: dir.clone(), reason: e.to_string() })?;
        if &found != node_id {
            return Err(OpenError::WrongNodeId { dir, found: found.to_string(), expected: node_id.to_string() });
        }
        Ok(Recorded::Yes)
    }

    /// Record `node_id` and our schema version (not yet durable: the caller syncs).
    fn record<C: RaftTypeConfig>(&self, node_id: &C::NodeId) -> Result<(), OpenError> {
        let dir = self.dir.to_path_buf();
        let owner = codec::encode("node id", node_id).map_err(|e| OpenError::Corrupt { dir, reason: e.to_string() })?;
        let mut batch = sled::Batch::default();
        batch.insert(META_SCHEMA_VERSION, &[SCHEMA_VERSION]);
        batch.insert(META_NODE_ID, owner);
        self.meta.apply_batch(batch).map_err(|e| sled_error(self.dir, e))
    }
}
