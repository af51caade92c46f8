//! The console's charts: one sample every [`SAMPLE_EVERY`] of this node's activity, the last hour kept in
//! memory ([`SAMPLES`] samples, a few tens of kilobytes), and the leader changes this node saw.
//!
//! Invariants:
//! - Per node and never replicated: a restarted node starts an empty hour.
//! - Rates are differences of monotonic totals divided by the time between the two samples, so a late
//!   sample (a busy runtime) gives the right rate over a longer interval, never a spike.
//! - [`Activity`] is written on request paths with relaxed atomics only (no lock, no allocation); the
//!   sampler takes and resets the per-interval figures (write count, sum and max) with `swap`.
//! - [`ChartRing`] and [`LeaderHistory`] take `now` as a parameter and read no clock.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::registry_state::RegistryState;

/// Time between two samples.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// Samples kept: one hour.
pub const SAMPLES: usize = 360;
/// Leader changes kept.
pub const LEADER_CHANGES: usize = 64;

/// What request paths of this node count for the charts.
#[derive(Debug, Default)]
pub struct Activity {
    renews: AtomicU64,
    writes: AtomicU64,
    write_sum_us: AtomicU64,
    write_max_us: AtomicU64,
}

impl Activity {
    /// A renew this node answered (judged here or forwarded to the leader).
    pub fn renew(&self) {
        self.renews.fetch_add(1, Ordering::Relaxed);
    }

    /// A client write (register, cancel, set) this node answered after `took`.
    pub fn write(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.write_sum_us.fetch_add(us, Ordering::Relaxed);
        self.write_max_us.fetch_max(us, Ordering::Relaxed);
    }

    /// Renews counted since start, and the writes of the interval since the last call (count, sum, max in
    /// microseconds), which are reset.
    fn take(&self) -> (u64, u64, u64, u64) {
        (
            self.renews.load(Ordering::Relaxed),
            self.writes.swap(0, Ordering::Relaxed),
            self.write_sum_us.swap(0, Ordering::Relaxed),
            self.write_max_us.swap(0, Ordering::Relaxed),
        )
    }
}

/// The monotonic totals and gauges read at one sample.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reading {
    /// Registers applied since start (every replica applies all of them: the cluster's rate).
    pub registers: u64,
    /// Renews this node answered since start.
    pub renews: u64,
    /// Instances evicted since start (applied).
    pub evictions: u64,
    /// Instances registered now.
    pub instances: u64,
    /// Long polls waiting now.
    pub waiters: u64,
    /// Client writes this node answered during the interval.
    pub writes: u64,
    /// Their summed latency, microseconds.
    pub write_sum_us: u64,
    /// Their worst latency, microseconds.
    pub write_max_us: u64,
}

/// One point of the charts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sample {
    /// Unix milliseconds.
    pub at_ms: u64,
    /// Registers applied per second.
    pub registers_per_s: f64,
    /// Renews answered by this node per second.
    pub renews_per_s: f64,
    /// Evictions per minute.
    pub evictions_per_min: f64,
    /// Instances registered.
    pub instances: u64,
    /// Long polls waiting.
    pub waiters: u64,
    /// Mean latency of this node's client writes in the interval, milliseconds (0: none).
    pub write_mean_ms: f64,
    /// Worst latency of this node's client writes in the interval, milliseconds (0: none).
    pub write_max_ms: f64,
}

/// The last hour of samples.
#[derive(Debug, Default)]
pub struct ChartRing {
    last: Option<(u64, Reading)>,
    samples: VecDeque<Sample>,
}

impl ChartRing {
    /// Record `reading` taken at `at_ms`. The first reading only sets the base of the rates.
    pub fn record(&mut self, at_ms: u64, reading: Reading) {
        let Some((last_ms, last)) = self.last.replace((at_ms, reading)) else {
            return;
        };
        let secs = at_ms.saturating_sub(last_ms) as f64 / 1000.0;
        if secs <= 0.0 {
            return;
        }
        let rate = |now: u64, before: u64| now.saturating_sub(before) as f64 / secs;
        let ms = |us: u64| us as f64 / 1000.0;
        let sample = Sample {
            at_ms,
            registers_per_s: rate(reading.registers, last.registers),
            renews_per_s: rate(reading.renews, last.renews),
            evictions_per_min: rate(reading.evictions, last.evictions) * 60.0,
            instances: reading.instances,
            waiters: reading.waiters,
            write_mean_ms: if reading.writes == 0 { 0.0 } else { ms(reading.write_sum_us) / reading.writes as f64 },
            write_max_ms: ms(reading.write_max_us),
        };
        if self.samples.len() == SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }

    /// The samples, oldest first.
    pub fn samples(&self) -> Vec<Sample> {
        self.samples.iter().copied().collect()
    }
}

/// A leader change as this node saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LeaderChange {
    /// Unix milliseconds.
    pub at_ms: u64,
    /// The term.
    pub term: u64,
    /// The new leader.
    pub leader: u64,
}

/// The last [`LEADER_CHANGES`] leader changes.
#[derive(Debug, Default)]
pub struct LeaderHistory {
    changes: VecDeque<LeaderChange>,
}

impl LeaderHistory {
    /// Note a change.
    pub fn push(&mut self, change: LeaderChange) {
        if self.changes.len() == LEADER_CHANGES {
            self.changes.pop_front();
        }
        self.changes.push_back(change);
    }

    /// The changes, newest first.
    pub fn newest_first(&self) -> Vec<LeaderChange> {
        self.changes.iter().rev().copied().collect()
    }
}

/// The console's history of one node: the chart ring, the leader changes and the activity counters.
#[derive(Debug, Default)]
pub struct History {
    /// Counted on request paths.
    pub activity: Activity,
    ring: std::sync::Mutex<ChartRing>,
    leaders: std::sync::Mutex<LeaderHistory>,
}

impl History {
    /// The chart samples, oldest first.
    pub fn samples(&self) -> Vec<Sample> {
        self.ring.lock().unwrap_or_else(|p| p.into_inner()).samples()
    }

    /// The leader changes, newest first.
    pub fn leader_changes(&self) -> Vec<LeaderChange> {
        self.leaders.lock().unwrap_or_else(|p| p.into_inner()).newest_first()
    }

    /// Note a leader change seen now.
    pub fn leader_changed(&self, term: u64, leader: u64) {
        let change = LeaderChange { at_ms: unix_ms(), term, leader };
        self.leaders.lock().unwrap_or_else(|p| p.into_inner()).push(change);
    }

    fn sample(&self, registry: &RegistryState) {
        let (renews, writes, write_sum_us, write_max_us) = self.activity.take();
        let counters = registry.counters();
        let reading = Reading {
            registers: counters.registers.get(),
            renews,
            evictions: counters.evictions.get(),
            instances: registry.read().len() as u64,
            waiters: registry.hub().waiters() as u64,
            writes,
            write_sum_us,
            write_max_us,
        };
        self.ring.lock().unwrap_or_else(|p| p.into_inner()).record(unix_ms(), reading);
    }
}

/// Wall-clock Unix milliseconds (0 before 1970).
pub fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Sample every [`SAMPLE_EVERY`] until `shutdown`.
pub async fn run(history: Arc<History>, registry: Arc<RegistryState>, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(SAMPLE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => history.sample(&registry),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn reading(registers: u64, renews: u64, evictions: u64) -> Reading {
        Reading { registers, renews, evictions, instances: registers - evictions, ..Reading::default() }
    }

    #[test]
    fn rates_are_differences_over_the_real_interval() {
        let mut ring = ChartRing::default();
        ring.record(10_000, reading(100, 1_000, 0));
        assert!(ring.samples().is_empty(), "the first reading is only a base");
        ring.record(20_000, Reading { writes: 4, write_sum_us: 10_000, write_max_us: 7_000, ..reading(600, 3_000, 2) });
        // A late sample: 20 s instead of 10 s.
        ring.record(40_000, reading(800, 3_000, 2));
        let s = ring.samples();
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].registers_per_s, s[0].renews_per_s, s[0].evictions_per_min), (50.0, 200.0, 12.0));
        assert_eq!((s[0].write_mean_ms, s[0].write_max_ms, s[0].instances), (2.5, 7.0, 598));
        assert_eq!((s[1].registers_per_s, s[1].renews_per_s, s[1].write_mean_ms), (10.0, 0.0, 0.0));
    }

    #[test]
    fn the_ring_keeps_the_last_hour() {
        let mut ring = ChartRing::default();
        for i in 0..(SAMPLES as u64 + 11) {
            ring.record(i * 10_000, reading(i, 0, 0));
        }
        let s = ring.samples();
        assert_eq!(s.len(), SAMPLES);
        assert_eq!(s.last().map(|x| x.at_ms), Some((SAMPLES as u64 + 10) * 10_000));
        assert_eq!(s[0].at_ms, 11 * 10_000, "oldest first, older ones dropped");
    }

    #[test]
    fn activity_resets_the_interval_but_not_the_renew_total() {
        let activity = Activity::default();
        activity.renew();
        activity.write(Duration::from_millis(3));
        activity.write(Duration::from_millis(1));
        assert_eq!(activity.take(), (1, 2, 4_000, 3_000));
        activity.renew();
        assert_eq!(activity.take(), (2, 0, 0, 0));
    }

    #[test]
    fn leader_history_is_bounded_newest_first() {
        let mut history = LeaderHistory::default();
        for term in 0..(LEADER_CHANGES as u64 + 3) {
            history.push(LeaderChange { at_ms: term, term, leader: term % 3 });
        }
        let changes = history.newest_first();
        assert_eq!(changes.len(), LEADER_CHANGES);
        assert_eq!(changes[0].term, LEADER_CHANGES as u64 + 2);
    }
}
