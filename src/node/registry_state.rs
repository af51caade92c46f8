//! The registry as the storage layer's `Application`: apply committed batches to the in-memory
//! [`Registry`], build and restore snapshots, and wake long polls.
//!
//! Invariants:
//! - The registry is behind a std `RwLock` held only for short, synchronous sections (never across an
//!   `.await`): apply takes the write lock once per group of entries, readers take the read lock to build
//!   an answer and release it before any I/O.
//! - Pollers are woken after the write lock is released, only for apps whose cursor moved; a snapshot
//!   install wakes every poller.
//! - Lease events are collected only while this node's lessor asks for them (it is the leader).
//! - Every replica counts the commands it applies ([`ApplyCounters`], for metrics) and the snapshots it
//!   restored, so the node can tell a snapshot it built from one it installed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use openraft::LogId;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::{watch, Notify};

use super::change_hub::ChangeHub;
use super::membership::InfraCursor;
use crate::raft_types::{NodeId, TypeConfig};
use crate::registry::apply::LeaseEvent;
use crate::registry::changes::{self, Change, ChangeLog};
use crate::registry::command::{Batch, BatchResult, Command, Outcome};
use crate::registry::model::InstanceKey;
use crate::registry::store::Registry;

/// The applied registry of one node, shared by apply, the HTTP handlers and the lessor.
#[derive(Debug)]
pub struct RegistryState {
    registry: RwLock<Registry>,
    hub: Arc<ChangeHub>,
    applied: watch::Sender<u64>,
    collect_leases: AtomicBool,
    lease_events: Mutex<Vec<LeaseEvent>>,
    /// Signalled when lease events were collected (a stored permit if nobody waits: none is lost).
    lease_events_ready: Notify,
    counters: ApplyCounters,
    restores: AtomicU64,
    /// The `infra.discovery` cursor (not replicated: stamped by this node's clock).
    infra_cursor: InfraCursor,
    /// Recent changes per app, for the console (see `registry::changes`).
    changes: Mutex<ChangeLog>,
}

/// What this replica applied, by command (metrics; counted from process start, replays included).
#[derive(Debug, Clone, Default)]
pub struct ApplyCounters {
    /// Register commands applied.
    pub registers: Counter,
    /// Cancel commands that removed an instance.
    pub cancels: Counter,
    /// Set commands applied.
    pub sets: Counter,
    /// Instances removed by `Evict` commands.
    pub evictions: Counter,
}

impl ApplyCounters {
    fn count(&self, batch: &Batch, result: &BatchResult) {
        for (command, outcome) in batch.commands.iter().zip(&result.outcomes) {
            match (command, outcome) {
                (Command::Register(_), Outcome::Ok) => self.registers.inc(),
                (Command::Cancel(_), Outcome::Ok) => self.cancels.inc(),
                (Command::Set(_), Outcome::Ok) => self.sets.inc(),
                (Command::Evict(_), Outcome::Evicted(n)) => self.evictions.inc_by(u64::from(*n)),
                _ => 0,
            };
        }
    }
}

impl Default for RegistryState {
    fn default() -> Self {
        Self {
            registry: RwLock::default(),
            hub: Arc::default(),
            applied: watch::channel(0).0,
            collect_leases: AtomicBool::new(false),
            lease_events: Mutex::default(),
            lease_events_ready: Notify::new(),
            counters: ApplyCounters::default(),
            restores: AtomicU64::new(0),
            infra_cursor: InfraCursor::default(),
            changes: Mutex::default(),
        }
    }
}

impl RegistryState {
    /// Read access to the applied registry. Do not hold it across an `.await`.
    pub fn read(&self) -> RwLockReadGuard<'_, Registry> {
        // Poisoning means a panic while applying; the data is still the last consistent batch boundary
        // at worst, and refusing every read forever would be worse.
        self.registry.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Registry> {
        self.registry.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The long-poll change channels.
    pub fn hub(&self) -> &Arc<ChangeHub> {
        &self.hub
    }

    /// The cursor of the synthesized `infra.discovery` app (see `node::membership`).
    pub fn infra_cursor(&self) -> &InfraCursor {
        &self.infra_cursor
    }

    /// Index of the last applied entry (any kind, or the end of a restored snapshot), observable: for
    /// read-your-writes waits, far cheaper than watching openraft's whole metrics.
    pub fn applied_index(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }

    /// The apply counters (registered in the node's metrics).
    pub fn counters(&self) -> &ApplyCounters {
        &self.counters
    }

    /// The recent changes of one app, newest first (what this replica applied since it started).
    pub fn changes_of(&self, env: &str, appid: &str) -> Vec<Change> {
        self.changes.lock().unwrap_or_else(|p| p.into_inner()).of(env, appid)
    }

    /// How many snapshots were restored into this registry (at open, or installed from the leader).
    pub fn restores(&self) -> u64 {
        self.restores.load(Ordering::SeqCst)
    }

    /// Start or stop collecting lease events (the lessor does this on promotion and demotion).
    pub fn collect_leases(&self, on: bool) {
        self.collect_leases.store(on, Ordering::SeqCst);
        if !on {
            self.lease_events().clear();
        }
    }

    /// Resolves once lease events were collected since the last wake-up (they may have been drained since).
    pub async fn lease_events_collected(&self) {
        self.lease_events_ready.notified().await;
    }

    /// Take the lease events collected since the last call.
    pub fn drain_lease_events(&self) -> Vec<LeaseEvent> {
        std::mem::take(&mut *self.lease_events())
    }

    fn lease_events(&self) -> std::sync::MutexGuard<'_, Vec<LeaseEvent>> {
        self.lease_events.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The keys an `Evict` of `batch` may remove: present with the revision the eviction names.
fn evictable(registry: &Registry, batch: &Batch) -> Vec<InstanceKey> {
    batch
        .commands
        .iter()
        .filter_map(|c| match c {
            Command::Evict(keys) => Some(keys),
            _ => None,
        })
        .flatten()
        .filter(|(key, revision)| registry.get(key).is_some_and(|s| s.revision == *revision))
        .map(|(key, _)| key.clone())
        .collect()
}

fn encode_registry(registry: &Registry) -> Result<Vec<u8>, String> {
    bincode::serde::encode_to_vec(registry, bincode::config::standard()).map_err(|e| e.to_string())
}

impl discovery_storage::Application<TypeConfig> for RegistryState {
    fn apply(&self, entries: Vec<(LogId<NodeId>, Batch)>) -> Vec<BatchResult> {
        if entries.is_empty() {
            return Vec::new();
        }
        let mut results = Vec::with_capacity(entries.len());
        let mut changed = std::collections::BTreeSet::new();
        let mut leases = Vec::new();
        {
            let mut registry = self.write();
            let mut change_log = self.changes.lock().unwrap_or_else(|p| p.into_inner());
            for (log_id, batch) in &entries {
                // Which evictions can remove something (compare-and-delete), told before apply runs.
                let evictable = evictable(&registry, batch);
                let applied = registry.apply(log_id.index, batch);
                let observed = changes::observe(&batch.commands, &applied.result.outcomes, |key| {
                    evictable.contains(key) && registry.get(key).is_none()
                });
                if !observed.is_empty() {
                    change_log.record(batch.stamp_ns, log_id.leader_id.node_id, observed);
                }
                self.counters.count(batch, &applied.result);
                results.push(applied.result);
                changed.extend(applied.changed);
                leases.extend(applied.leases);
            }
        }
        if self.collect_leases.load(Ordering::SeqCst) && !leases.is_empty() {
            self.lease_events().extend(leases);
            self.lease_events_ready.notify_one();
        }
        self.hub.notify(&changed);
        results
    }

    fn applied_up_to(&self, last: &LogId<NodeId>) {
        self.applied.send_replace(last.index);
    }

    fn snapshot(&self) -> Result<Vec<u8>, String> {
        encode_registry(&self.read())
    }

    /// An O(1) clone of the copy-on-write registry (see `registry::store`): the read lock is held for the
    /// clone only, and apply goes on while the clone is serialized.
    fn freeze(&self) -> discovery_storage::Frozen {
        let frozen = self.read().clone();
        Box::new(move || encode_registry(&frozen))
    }

    fn restore(&self, data: &[u8]) -> Result<(), String> {
        let (mut registry, _): (Registry, usize) =
            bincode::serde::decode_from_slice(data, bincode::config::standard()).map_err(|e| e.to_string())?;
        registry.share_equal_values();
        let instances = registry.len();
        *self.write() = registry;
        self.restores.fetch_add(1, Ordering::SeqCst);
        tracing::debug!(instances, bytes = data.len(), "registry restored from a snapshot");
        // The lessor rebuilds from the registry on its next tick; stale events would only extend leases.
        self.hub.notify_all();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use discovery_storage::Application;
    use openraft::{CommittedLeaderId, LogId};

    use super::*;
    use crate::registry::testutil::{batch, key, register};

    fn log_id(index: u64) -> LogId<NodeId> {
        LogId::new(CommittedLeaderId::new(1, 1), index)
    }

    #[test]
    fn apply_goes_on_while_a_frozen_snapshot_waits_to_be_serialized() {
        let state = Arc::new(RegistryState::default());
        let keys: Vec<_> = (0..2000).map(|i| key("dev", &format!("app{}", i / 100), "z1", &format!("h{i}"))).collect();
        let entries = keys.iter().enumerate().map(|(i, k)| (log_id(i as u64 + 1), batch(1000, vec![register(k)])));
        state.apply(entries.collect());
        let frozen = state.freeze();
        // If freezing kept the registry locked until the serialization, this apply would wait for it (here:
        // forever, the serialization runs after it); on another thread so that a regression fails, not hangs.
        let (done, applied) = std::sync::mpsc::channel();
        let applier = Arc::clone(&state);
        std::thread::spawn(move || {
            let late = key("dev", "app0", "z1", "late");
            let _ = done.send(applier.apply(vec![(log_id(5000), batch(2000, vec![register(&late)]))]));
        });
        let results = applied.recv_timeout(Duration::from_secs(10)).expect("apply did not wait for the snapshot");
        assert_eq!(results.len(), 1);
        assert_eq!(state.read().len(), 2001);
        let bytes = frozen().expect("serialize");
        let (snapshot, _): (Registry, usize) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).expect("decode");
        assert_eq!(snapshot.len(), 2000, "the snapshot is the state when it was frozen");
    }

    #[test]
    fn apply_files_each_change_under_its_app_with_the_accepting_leader() {
        let state = RegistryState::default();
        let (a, b) = (key("dev", "demo", "z1", "a"), key("dev", "demo", "z1", "b"));
        let by_leader_3 = |index| LogId::new(CommittedLeaderId::new(2, 3), index);
        state.apply(vec![(log_id(1), batch(1_000, vec![register(&a), register(&b)]))]);
        let revision_of_b = state.read().get(&b).map(|s| s.revision).expect("b");
        // The eviction of `a` names a stale revision (re-registered since): compare-and-delete keeps it, and
        // no eviction of `a` may be recorded; `b` goes.
        state.apply(vec![
            (by_leader_3(2), batch(2_000, vec![register(&a)])),
            (by_leader_3(3), batch(3_000, vec![Command::Evict(vec![(a.clone(), 1), (b.clone(), revision_of_b)])])),
        ]);
        let changes: Vec<(changes::ChangeKind, String, u64, i64)> =
            state.changes_of("dev", "demo").into_iter().map(|c| (c.kind, c.hostname, c.node, c.at_ns)).collect();
        use changes::ChangeKind::{Evict, Register};
        assert_eq!(
            changes,
            vec![
                (Evict, "b".to_string(), 3, 3_000),
                (Register, "a".to_string(), 3, 2_000),
                (Register, "b".to_string(), 1, 1_000),
                (Register, "a".to_string(), 1, 1_000),
            ]
        );
        assert!(state.read().get(&a).is_some());
    }
}
