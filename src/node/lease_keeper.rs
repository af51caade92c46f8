//! The lease keeper: the node's handle on the domain [`Lessor`], and the task that runs it
//! on the leader only. (One `Lessor`, in the domain; this is what drives it.)
//!
//! Invariants:
//! - Active only between a *confirmed* promotion (a linearizable read succeeded in this term) and the
//!   first sign of lost leadership (role or term changed); followers never evict anything.
//! - On promotion every instance gets `now + lease + grace` (+ a deterministic spread), so a leader
//!   change never evicts instances whose renews went to the old leader during the election.
//! - Evictions are proposed with `client_write` on this node (never forwarded): a deposed leader's
//!   eviction fails. Apply is compare-and-delete on the revision, so a re-registered instance survives.
//! - Renews are judged only under a leader lease: a quorum confirmed this node's leadership less than
//!   0.8 × the minimum election timeout ago (re-confirmed every heartbeat). A leader cut off from the
//!   majority answers "not the leader" (-500) instead of acknowledging renews the real leader never sees.
//! - Time is `tokio::time::Instant` measured from the lessor's origin, so tests can pause and advance it.
//! - One info line per eviction batch and per self-preservation switch (on or off), so an operator can tell
//!   from the log why instances went or stayed.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use openraft::ServerState;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio_util::sync::CancellationToken;

use super::liveness::Liveness;
use super::metrics::ResultLabel;
use super::proposer::now_ns;
use super::registry_state::RegistryState;
use crate::config::Config;
use crate::raft_types::Raft;
use crate::registry::command::{Batch, Command};
use crate::registry::lessor::{Lessor, LessorStatus, Renewal};
use crate::registry::model::InstanceKey;

/// The node's handle on the lease table.
#[derive(Debug)]
pub struct LeaseKeeper {
    inner: Mutex<Lessor>,
    origin: tokio::time::Instant,
    evict_interval: Duration,
    renews: Family<ResultLabel, Counter>,
    /// When (ms since `origin`, + 1; 0 = never) a heartbeat round that a quorum acknowledged was *sent*.
    confirmed_at: AtomicU64,
    /// How long such a confirmation lets this node judge renews: below the election timeout, so no other
    /// leader can have been elected meanwhile (followers only start an election an election timeout
    /// after the last heartbeat they received).
    lease_window: Duration,
    /// How often the leader re-confirms its leadership.
    confirm_every: Duration,
}

/// One lease, relative to now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LeaseFigures {
    /// Milliseconds until the lease runs out (negative: overdue, eviction pending or paused).
    pub remaining_ms: i64,
    /// Milliseconds since the last proof of life (register, renew, or the grant at a leader change).
    pub renewed_ago_ms: i64,
}

impl LeaseKeeper {
    /// An inactive lessor.
    pub fn new(config: &Config) -> Self {
        Self {
            inner: Mutex::new(Lessor::new(config.lessor_config())),
            origin: tokio::time::Instant::now(),
            evict_interval: config.evict_interval,
            renews: Family::default(),
            confirmed_at: AtomicU64::new(0),
            lease_window: config.raft.election_min.mul_f64(0.8),
            confirm_every: config.raft.heartbeat,
        }
    }

    /// Record that leadership was confirmed by a quorum for a round started at `started`.
    fn confirm(&self, started: Duration) {
        let stamp = u64::try_from(started.as_millis()).unwrap_or(u64::MAX - 1) + 1;
        self.confirmed_at.fetch_max(stamp, Ordering::SeqCst);
    }

    /// True while a recent quorum confirmation makes this node certainly the leader. A leader cut off
    /// from the majority stops judging renews within the window: otherwise it would acknowledge renews
    /// the real leader never sees (and evicts for), and answer -404 for instances registered since.
    fn lease_valid(&self) -> bool {
        match self.confirmed_at.load(Ordering::SeqCst) {
            0 => false,
            stamp => self.now().saturating_sub(Duration::from_millis(stamp - 1)) < self.lease_window,
        }
    }

    /// Renew verdicts of this node as leader, by result (`renewed`, `unknown`); registered in the metrics.
    pub fn renew_counter(&self) -> &Family<ResultLabel, Counter> {
        &self.renews
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn lock(&self) -> MutexGuard<'_, Lessor> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Renew `key`'s lease: the leader's verdict (renews never enter the Raft log).
    pub fn renew(&self, registry: &RegistryState, key: &InstanceKey) -> Renewal {
        if !self.lease_valid() {
            return Renewal::NotLeader;
        }
        let now = self.now();
        let mut lessor = self.lock();
        // Registers applied since the last scan must be known before the renew is judged.
        lessor.on_applied(&registry.drain_lease_events(), now);
        let verdict = lessor.renew(key, now);
        drop(lessor);
        let result = match verdict {
            Renewal::Renewed => "renewed",
            Renewal::Unknown => "unknown",
            Renewal::NotLeader => return verdict,
        };
        self.renews.get_or_create(&ResultLabel::new(result)).inc();
        verdict
    }

    /// Each key's lease as the console shows it, or `None` while this node does not keep the leases (it is
    /// not the confirmed leader).
    pub fn lease_figures(&self, registry: &RegistryState, keys: &[InstanceKey]) -> Option<Vec<Option<LeaseFigures>>> {
        let now = self.now();
        let mut lessor = self.lock();
        if !lessor.is_active() {
            return None;
        }
        lessor.on_applied(&registry.drain_lease_events(), now);
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Some(
            keys.iter()
                .map(|key| {
                    lessor.table().get(key).map(|lease| LeaseFigures {
                        remaining_ms: ms(lease.deadline) - ms(now),
                        renewed_ago_ms: ms(now.saturating_sub(lease.renewed_at)),
                    })
                })
                .collect(),
        )
    }

    /// The lessor's state, for status and metrics.
    pub fn status(&self) -> LessorStatus {
        self.lock().status()
    }

    fn promote(&self, registry: &RegistryState) {
        registry.collect_leases(true);
        let now = self.now();
        let applied = registry.read();
        let mut lessor = self.lock();
        lessor.promote(now, applied.leases());
        drop(applied);
        // Events collected before the scan are already in it; replaying them only refreshes leases.
        lessor.on_applied(&registry.drain_lease_events(), now);
    }

    fn demote(&self, registry: &RegistryState) {
        registry.collect_leases(false);
        self.lock().demote();
    }

    fn tick(&self, registry: &RegistryState, cut_zones: BTreeSet<String>) -> Vec<(InstanceKey, u64)> {
        let now = self.now();
        let mut lessor = self.lock();
        lessor.on_applied(&registry.drain_lease_events(), now);
        let newly_cut: Vec<&String> = cut_zones.difference(lessor.cut_zones()).collect();
        if !newly_cut.is_empty() {
            tracing::warn!(zones = ?newly_cut, "zones cut off from the leader: their expired leases are held, not evicted");
        }
        let healed = lessor.set_cut_zones(now, cut_zones);
        if !healed.is_empty() {
            tracing::info!(zones = ?healed, "zones reachable again: their leases run a whole lease from now");
        }
        lessor.tick(now)
    }

    /// Take in the lease events applied since the last look. Drained under the lessor's lock, as `renew`
    /// does, so a renew never finds an applied register drained but not yet in the table.
    fn absorb(&self, registry: &RegistryState) {
        let now = self.now();
        let mut lessor = self.lock();
        lessor.on_applied(&registry.drain_lease_events(), now);
    }
}

/// Run until `shutdown`: idle while follower, keep leases while leader.
pub async fn run(
    lessor: Arc<LeaseKeeper>,
    raft: Raft,
    registry: Arc<RegistryState>,
    liveness: Arc<Liveness>,
    shutdown: CancellationToken,
) {
    let mut metrics = raft.metrics();
    loop {
        // Wait to become leader.
        let term = loop {
            let (state, term) = {
                let m = metrics.borrow_and_update();
                (m.state, m.current_term)
            };
            if state == ServerState::Leader {
                break term;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = metrics.changed() => if changed.is_err() { return },
            }
        };
        // Confirm leadership before trusting it: a stale leader must not start evicting.
        let started = lessor.now();
        if raft.ensure_linearizable().await.is_err() {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = metrics.changed() => continue,
            }
        }
        lessor.promote(&registry);
        lessor.confirm(started);
        tracing::info!(term, "lessor active: leader confirmed, leases granted the post-election grace");
        let stopped = tokio::select! {
            stopped = serve_term(&lessor, &raft, &registry, &liveness, term, &mut metrics, &shutdown) => stopped,
            never = keep_leadership_confirmed(&lessor, &raft) => match never {},
        };
        lessor.confirmed_at.store(0, Ordering::SeqCst);
        lessor.demote(&registry);
        tracing::info!(term, "lessor stopped");
        if stopped {
            return;
        }
    }
}

/// Scan and evict while leader of `term`. Returns true when the node is shutting down.
async fn serve_term(
    lessor: &LeaseKeeper,
    raft: &Raft,
    registry: &RegistryState,
    liveness: &Liveness,
    term: u64,
    metrics: &mut tokio::sync::watch::Receiver<openraft::RaftMetrics<u64, discovery_raft::ClusterNode>>,
    shutdown: &CancellationToken,
) -> bool {
    let mut ticker = tokio::time::interval(lessor.evict_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A new leader starts protected (no renew history yet); log each switch from there.
    let mut protected = true;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return true,
            changed = metrics.changed() => {
                let m = metrics.borrow_and_update();
                if changed.is_err() || m.state != ServerState::Leader || m.current_term != term {
                    return changed.is_err();
                }
            }
            // Taken in as they are applied, a few entries' worth at a time: left for the next scan, a second
            // of registers (tens of thousands under load) was absorbed in one go and stalled the node for
            // up to 130 ms, renews included.
            _ = registry.lease_events_collected() => lessor.absorb(registry),
            _ = ticker.tick() => {
                let victims = lessor.tick(registry, cut_zones(raft, liveness));
                log_protection_switch(lessor, &mut protected);
                if victims.is_empty() {
                    continue;
                }
                let count = victims.len();
                let batch = Batch { stamp_ns: now_ns(), commands: Arc::from([Command::Evict(victims)]) };
                match raft.client_write(batch).await {
                    Ok(resp) => tracing::info!(count, index = resp.log_id.index, "evicted expired instances"),
                    // Not leader any more (or shutting down): the metrics watch ends this term.
                    Err(err) => tracing::warn!(count, error = %err, "eviction not committed"),
                }
            }
        }
    }
}

/// Zones whose every member this leader finds unreachable: their instances' renews may be stuck behind the cut.
fn cut_zones(raft: &Raft, liveness: &Liveness) -> BTreeSet<String> {
    let metrics = raft.metrics().borrow().clone();
    let membership = metrics.membership_config.membership();
    let my_zone = membership.get_node(&metrics.id).map(|n| n.zone.as_str()).unwrap_or_default();
    let others = membership.nodes().filter(|(id, _)| **id != metrics.id).map(|(id, n)| (*id, n.zone.as_str()));
    liveness.unreachable_zones(my_zone, others)
}

/// While leader: confirm leadership with a quorum every heartbeat, so renews are judged only under a fresh
/// confirmation (see `LeaseKeeper::lease_valid`). Runs until the caller drops it.
async fn keep_leadership_confirmed(lessor: &LeaseKeeper, raft: &Raft) -> std::convert::Infallible {
    let mut ticker = tokio::time::interval(lessor.confirm_every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let started = lessor.now();
        if let Ok(Ok(_)) = tokio::time::timeout(lessor.lease_window, raft.ensure_linearizable()).await {
            lessor.confirm(started);
        }
    }
}

/// One info line when self-preservation switches on or off.
fn log_protection_switch(lessor: &LeaseKeeper, protected: &mut bool) {
    let Some(guard) = lessor.status().guard else { return };
    if guard.protected == *protected {
        return;
    }
    *protected = guard.protected;
    let (renews, threshold, expected) = (guard.renews_last_min, guard.threshold, guard.expected_per_min);
    if guard.protected {
        tracing::info!(
            renews_last_minute = ?renews,
            threshold,
            expected,
            "self-preservation on: renews fell below the threshold, only leases past the ceiling are evicted"
        );
    } else {
        tracing::info!(
            renews_last_minute = ?renews,
            threshold,
            expected,
            "self-preservation off: evicting expired leases"
        );
    }
}
