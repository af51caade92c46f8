//! The seam between the storage layer and the application it replicates.
//!
//! The application state lives in memory behind this trait. The storage layer calls it only from the
//! state machine task (openraft serializes those calls), so the three methods never race each other
//! from this side; the application still guards its state for its own concurrent readers.

use openraft::{LogId, RaftTypeConfig};

/// A frozen view of the application's state: serializing it (on the blocking pool, while apply goes on)
/// gives the snapshot's bytes, or why they could not be produced.
pub type Frozen = Box<dyn FnOnce() -> Result<Vec<u8>, String> + Send + Sync>;

/// The in-memory application state that the replicated log drives. Implemented by the registry.
pub trait Application<C: RaftTypeConfig>: Send + Sync + 'static {
    /// Apply committed application commands in log order, one response per item. Must be deterministic:
    /// no clock, no randomness.
    fn apply(&self, entries: Vec<(LogId<C::NodeId>, C::D)>) -> Vec<C::R>;
    /// Serialize the whole state (called in the state machine task, so it sees a consistent state).
    fn snapshot(&self) -> Result<Vec<u8>, String>;
    /// Freeze the state for a snapshot (called in the state machine task, which waits for it: it must be
    /// quick); the returned closure serializes it later on the blocking pool while apply goes on. The
    /// default serializes at once (the state machine waits for the whole serialization); an application
    /// with a copy-on-write state returns a cheap clone instead.
    fn freeze(&self) -> Frozen {
        let bytes = self.snapshot();
        Box::new(move || bytes)
    }
    /// Replace the whole state with a snapshot's bytes (also wakes anything waiting on the state).
    fn restore(&self, data: &[u8]) -> Result<(), String>;
    /// Every entry up to `last` is applied: normal, blank and membership entries alike, or a restored
    /// snapshot ending there. Called after each `apply` call and each restore; lets the application keep
    /// an exact "applied index" for read-your-writes waits. Does nothing unless overridden.
    fn applied_up_to(&self, _last: &LogId<C::NodeId>) {}
}
