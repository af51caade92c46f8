//! sled-backed storage for openraft: the Raft log, the Raft metadata and the latest snapshot, plus the
//! host that runs an in-memory application state machine on top of them.
//!
//! The crate is generic over the openraft type configuration `C` and knows nothing of the registry: the
//! application plugs in through the [`Application`] trait.
//!
//! # Layout
//! - [`app`]: the [`Application`] trait the registry implements (apply, snapshot, restore).
//! - [`codec`]: the byte format of every stored value (a schema-version byte, then bincode).
//! - `layout`: sled tree names and keys (crate-private; they are part of the on-disk format).
//! - `durable`: flush + `fdatasync`, the one way anything here is made durable.
//! - `marker`: the file outside sled that witnesses that a data dir was initialized.
//! - `record`: the durable record, the file outside sled that says what the log store made durable
//!   (last log id, last purged, vote); opening a dir checks that the log still reaches it.
//! - `recent`: the newest log entries held in memory, so reading them back skips decoding.
//! - `sled_files`: removal of the broken snapshot files an interrupted sled open leaves behind.
//! - [`log_store`]: [`SledLogStore`], openraft's `RaftLogStorage` (log entries, vote, committed, purged).
//! - [`state_machine`]: [`StateMachineStore`], openraft's `RaftStateMachine` around an [`Application`].
//! - [`snapshot`]: persisting the latest snapshot and the [`SledSnapshotBuilder`].
//! - [`open`]: [`open_storage`], which checks a data dir (owner node, schema, lock, durable record)
//!   before handing out the two stores.
//!
//! # One data dir, one `sled::Db`
//! ```text
//! <dir>/            sled's files (`db` is the data file, `conf`, `blobs/`, `snap.*`)
//! <dir>/DISCOVERY_STORAGE  marker: this dir was initialized (node id, schema version, for people)
//! <dir>/DURABLE     durable record: two checksummed slots, the newer says what was made durable
//!                   (byte layout in `record`; part of the on-disk format)
//!   tree "logs"     big-endian u64 index -> log entry
//!   tree "meta"     vote, committed, last_purged, node_id, schema_version
//!   tree "snapshot" meta, data (the latest snapshot; both keys replaced in one atomic batch)
//! ```
//!
//! # Durability contract
//! An `append` is acknowledged (its `LogFlushed` callback called), a vote saved, a purge recorded and a
//! snapshot stored only after sled's flush **and** an `fdatasync` of sled's data file; see `durable`.
//! After each of the log store's syncs, and before it acknowledges, the durable record is rewritten to
//! say what that sync made durable. sled recovers its log up to the first damaged message and silently
//! drops the rest; at open the log must still reach the record, or the dir is refused
//! ([`OpenError::LostDurableState`]) instead of letting the node forget acknowledged entries or its
//! vote. What sled drops past the last sync (a torn write, never acknowledged) was never recorded, so
//! it costs nothing. The record is written without its own fsync: exact after any process crash, and
//! after a power loss possibly older but never wrong (see `record` for why that is the trade-off).
//! The application state itself lives only in memory and is rebuilt at start from the latest snapshot
//! plus the committed log, which openraft re-applies because `committed` is persisted.

// openraft's `StorageError` (about 190 bytes) is the error type its storage traits require; our helpers
// return it too so that `?` needs no conversion. It only travels on the (fatal) error path.
#![allow(clippy::result_large_err)]

pub mod app;
pub mod codec;
mod durable;
mod layout;
pub mod log_store;
mod marker;
pub mod open;
mod recent;
mod record;
mod sled_files;
pub mod snapshot;
pub mod state_machine;

pub use app::{Application, Frozen};
pub use durable::SyncObserver;
pub use log_store::SledLogStore;
pub use open::{open_storage, OpenError};
pub use snapshot::SledSnapshotBuilder;
pub use state_machine::StateMachineStore;
