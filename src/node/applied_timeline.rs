//! When this node applied what: a bounded ring of (applied index, time) samples, so `/admin/status` can say
//! how far behind another member is in time, not only in entries.
//!
//! A member that has applied up to `a` is missing the entries after `a`; the oldest of them was applied here
//! at the time of the first sample above `a`. Its lag in time is how long ago that was (0 when it has
//! applied everything this node has).
//!
//! Invariants:
//! - Samples are strictly increasing in index and non-decreasing in time; at most [`CAPACITY`] are kept
//!   (the oldest go first), and a new sample is taken at most every [`RESOLUTION`], so the ring spans at
//!   least `CAPACITY × RESOLUTION` (about 160 s) under any write load. A lag beyond the ring's span is
//!   reported as the span (a lower bound), never as zero.
//! - Pure: time is a parameter ([`AppliedTimeline::record`], [`AppliedTimeline::lag_behind`]).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Samples kept.
pub const CAPACITY: usize = 16_384;
/// Minimum time between two samples.
pub const RESOLUTION: Duration = Duration::from_millis(10);

/// The ring (behind a mutex held only for a few instructions).
#[derive(Debug, Default)]
pub struct AppliedTimeline {
    samples: Mutex<VecDeque<(u64, Instant)>>,
}

impl AppliedTimeline {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(u64, Instant)>> {
        self.samples.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Note that `index` was applied at `now`.
    pub fn record(&self, index: u64, now: Instant) {
        let mut samples = self.lock();
        match samples.back_mut() {
            Some((last, _)) if *last >= index => return,
            // Within the resolution the newest sample is moved up (keeping its time, the earlier one).
            Some((last, at)) if now.saturating_duration_since(*at) < RESOLUTION => {
                *last = index;
                return;
            }
            _ => {}
        }
        if samples.len() == CAPACITY {
            samples.pop_front();
        }
        samples.push_back((index, now));
    }

    /// How long ago this node applied the first entry after `applied` (zero if it applied none).
    pub fn lag_behind(&self, applied: Option<u64>, now: Instant) -> Duration {
        let samples = self.lock();
        let applied = applied.unwrap_or(0);
        // The first sample above `applied`: an entry after `applied` was applied at that sample's time at
        // the latest (a sample covers every index since the previous one).
        let first_missing = samples.iter().find(|(index, _)| *index > applied);
        match first_missing {
            None => Duration::ZERO,
            Some((_, at)) => now.saturating_duration_since(*at),
        }
    }
}

/// Record every change of the applied index until `shutdown`.
pub async fn run(
    timeline: std::sync::Arc<AppliedTimeline>,
    mut applied: watch::Receiver<u64>,
    shutdown: CancellationToken,
) {
    loop {
        let index = *applied.borrow_and_update();
        timeline.record(index, Instant::now());
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = applied.changed() => if changed.is_err() { return },
        }
        // Changes within the resolution are folded into one sample anyway: wait instead of waking per entry.
        tokio::select! {
            _ = shutdown.cancelled() => return,
            () = tokio::time::sleep(RESOLUTION / 4) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    #[test]
    fn a_member_that_applied_everything_has_no_lag() {
        let timeline = AppliedTimeline::default();
        let base = Instant::now();
        timeline.record(10, at(base, 0));
        timeline.record(20, at(base, 500));
        assert_eq!(timeline.lag_behind(Some(20), at(base, 9_000)), Duration::ZERO);
        assert_eq!(timeline.lag_behind(Some(25), at(base, 9_000)), Duration::ZERO);
    }

    #[test]
    fn lag_is_the_age_of_the_oldest_missing_entry() {
        let timeline = AppliedTimeline::default();
        let base = Instant::now();
        timeline.record(10, at(base, 0));
        timeline.record(20, at(base, 1_000));
        timeline.record(30, at(base, 2_000));
        // Has 15: missing 16..=30, the first of them applied here by the sample at 1 s.
        assert_eq!(timeline.lag_behind(Some(15), at(base, 3_000)), Duration::from_millis(2_000));
        assert_eq!(timeline.lag_behind(Some(20), at(base, 3_000)), Duration::from_millis(1_000));
        assert_eq!(timeline.lag_behind(None, at(base, 3_000)), Duration::from_millis(3_000));
    }

    #[test]
    fn samples_within_the_resolution_are_folded_keeping_the_earlier_time() {
        let timeline = AppliedTimeline::default();
        let base = Instant::now();
        timeline.record(10, at(base, 0));
        timeline.record(11, at(base, 3));
        timeline.record(12, at(base, 6));
        assert_eq!(timeline.lock().len(), 1);
        assert_eq!(timeline.lag_behind(Some(9), at(base, 1_000)), Duration::from_millis(1_000));
    }

    #[test]
    fn the_ring_is_bounded_and_an_old_lag_is_never_reported_as_zero() {
        let timeline = AppliedTimeline::default();
        let base = Instant::now();
        for i in 0..(CAPACITY as u64 + 100) {
            timeline.record(i + 1, at(base, i * 200));
        }
        assert_eq!(timeline.lock().len(), CAPACITY);
        let now = at(base, (CAPACITY as u64 + 100) * 200);
        let lag = timeline.lag_behind(Some(0), now);
        assert!(lag > Duration::from_secs(60), "a member missing everything lags by at least the span: {lag:?}");
    }

    #[test]
    fn indexes_never_go_back() {
        let timeline = AppliedTimeline::default();
        let base = Instant::now();
        timeline.record(10, at(base, 0));
        timeline.record(5, at(base, 1_000));
        assert_eq!(timeline.lock().back().map(|s| s.0), Some(10));
    }
}
