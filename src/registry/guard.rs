//! Self-preservation (spec §4.7, `registry/guard.go`), configurable and with the original's flaws fixed.
//!
//! When renews collapse (a network problem between clients and the registry rather than clients dying),
//! evicting everyone would do more harm than keeping stale entries, so the leader stops evicting.
//!
//! Rules:
//! - expected renews per minute = instances × (60 s / renew interval), computed from the *current*
//!   number of leases, so evictions lower it too (the original only counted registers and cancels);
//! - threshold = floor(expected × ratio); protected ⇔ renews in the last full minute < threshold
//!   (strict, as the original and Eureka after its #533 fix); ratio 0 disables protection entirely;
//! - right after promotion there is no full minute of history: protected until the first minute ends;
//! - the eviction cap is tied to the same ratio, as in Eureka (`evictionLimit = size − size × threshold`):
//!   at most `size − floor(size × ratio)` evictions per minute (15 % at 0.85, at least 1 when the registry
//!   is not empty), with the size taken at the start of the minute and raised if the registry grows;
//! - ratio 0 (self-preservation off) lifts the cap as well: every expired lease may go at once, so a burst
//!   of expiries does not linger for minutes. The reported cap is then `evicted so far + current leases`.
//!
//! Time is a monotonic `Duration` passed in; minutes are counted from the promotion instant.

use std::time::Duration;

use serde::Serialize;

/// Length of the renew-counting and eviction-rate window.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Self-preservation settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GuardConfig {
    /// How often a client is expected to renew (bilibili SDKs: 30 s, hence 2 renews per minute).
    pub renew_interval: Duration,
    /// Fraction of expected renews below which eviction stops (0.85; 0 disables protection). Also sets the
    /// eviction cap: `1 − ratio` of the registry per minute, none at 0.
    pub ratio: f64,
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self { renew_interval: Duration::from_secs(30), ratio: 0.85 }
    }
}

/// The guard's state, for metrics and for the lessor's decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GuardState {
    /// Renews expected per minute for the current number of leases.
    pub expected_per_min: u64,
    /// Protection starts below this many renews in the last minute.
    pub threshold: u64,
    /// Renews counted in the last full minute; `None` until a minute has passed since promotion.
    pub renews_last_min: Option<u64>,
    /// Renews counted so far in the current minute.
    pub renews_this_min: u64,
    /// Self-preservation is on: only leases past the ceiling may be evicted.
    pub protected: bool,
    /// Evictions proposed in the current minute.
    pub evicted_this_min: u64,
    /// Maximum evictions in the current minute (with ratio 0: evictions so far + current leases, i.e. no
    /// limit on what can expire).
    pub evict_cap: u64,
}

/// Renew counter and eviction budget of the current leader term.
#[derive(Debug, Clone)]
pub struct Guard {
    cfg: GuardConfig,
    window_start: Duration,
    renews: u64,
    renews_last: Option<u64>,
    evicted: u64,
    cap: u64,
}

impl Guard {
    /// A guard for a leader promoted at `now` with `size` leases: no history yet, so protected.
    pub fn new(cfg: GuardConfig, now: Duration, size: usize) -> Self {
        let cap = evict_cap(size, cfg.ratio);
        Self { cfg, window_start: now, renews: 0, renews_last: None, evicted: 0, cap }
    }

    /// Counts one successful renew.
    pub fn record_renew(&mut self) {
        self.renews = self.renews.saturating_add(1);
    }

    /// Counts proposed evictions against this minute's budget.
    pub fn record_evicted(&mut self, n: usize) {
        self.evicted = self.evicted.saturating_add(n as u64);
    }

    /// Starts a new minute if the current one is over. If more than one minute went by without a
    /// rotation, the counted renews cannot be attributed to the last minute, so it counts as 0 renews
    /// (which protects: the safe direction).
    pub fn rotate(&mut self, now: Duration, size: usize) {
        let Some(elapsed) = now.checked_sub(self.window_start) else { return };
        let windows = elapsed.as_nanos() / WINDOW.as_nanos();
        if windows == 0 {
            return;
        }
        self.renews_last = Some(if windows == 1 { self.renews } else { 0 });
        self.renews = 0;
        self.evicted = 0;
        self.cap = evict_cap(size, self.cfg.ratio);
        // Keep minutes aligned on the promotion instant.
        let step = u32::try_from(windows).map_or(elapsed, |w| WINDOW * w);
        self.window_start += step;
    }

    /// Raises this minute's eviction cap to what `size` leases allow, if that is more. The cap is taken at
    /// the start of the minute, but a leader promoted with an empty table (a fresh node) or a registry that
    /// grew since would otherwise have a cap of 0 (or too small) until the minute ends, and nothing that
    /// registered meanwhile could expire before then. With ratio 0 there is no cap: every current lease may
    /// still go this minute, whatever was evicted already.
    pub fn observe_size(&mut self, size: usize) {
        let allowed =
            if self.uncapped() { self.evicted.saturating_add(size as u64) } else { evict_cap(size, self.cfg.ratio) };
        self.cap = self.cap.max(allowed);
    }

    /// Self-preservation is off, and the eviction cap with it.
    fn uncapped(&self) -> bool {
        self.cfg.ratio <= 0.0
    }

    /// Evictions still allowed in the current minute.
    pub fn budget(&self) -> u64 {
        self.cap.saturating_sub(self.evicted)
    }

    /// The state for `size` current leases.
    pub fn state(&self, size: usize) -> GuardState {
        let expected = expected_per_min(size, self.cfg.renew_interval);
        let threshold = floor_mul(expected, self.cfg.ratio);
        let protected = self.cfg.ratio > 0.0 && self.renews_last.is_none_or(|last| last < threshold);
        GuardState {
            expected_per_min: expected,
            threshold,
            renews_last_min: self.renews_last,
            renews_this_min: self.renews,
            protected,
            evicted_this_min: self.evicted,
            evict_cap: self.cap,
        }
    }
}

/// `size × 60 s / renew_interval`, in whole renews (a zero interval counts as 1 ms).
fn expected_per_min(size: usize, renew_interval: Duration) -> u64 {
    let interval = renew_interval.as_millis().max(1);
    let expected = (size as u128).saturating_mul(WINDOW.as_millis()) / interval;
    u64::try_from(expected).unwrap_or(u64::MAX)
}

/// `floor(n × ratio)`, computed in f64 like the original (`int64(float64(n) * 0.85)`).
fn floor_mul(n: u64, ratio: f64) -> u64 {
    // `as` saturates for out-of-range floats and maps NaN to 0, which is what we want here.
    (n as f64 * ratio).floor() as u64
}

/// `size − floor(size × ratio)` (Eureka's `evictionLimit`), at least 1 for a non-empty registry: the whole
/// registry at ratio 0.
fn evict_cap(size: usize, ratio: f64) -> u64 {
    let size = size as u64;
    let keep = floor_mul(size, ratio).min(size);
    let cap = size - keep;
    if size > 0 {
        cap.max(1)
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn the_eviction_cap_is_about_fifteen_percent() {
        let caps: Vec<u64> = [0, 1, 6, 7, 20, 100].iter().map(|&n| evict_cap(n, 0.85)).collect();
        assert_eq!(caps, vec![0, 1, 1, 2, 3, 15]);
    }

    #[test]
    fn the_eviction_cap_follows_the_threshold() {
        // Eureka: size − size × threshold. Half the registry at 0.5, all of it at 0, one at (almost) 1.
        let caps = |ratio: f64| -> Vec<u64> { [0, 1, 10, 60].iter().map(|&n| evict_cap(n, ratio)).collect() };
        assert_eq!(caps(0.5), vec![0, 1, 5, 30]);
        assert_eq!(caps(0.0), vec![0, 1, 10, 60]);
        assert_eq!(caps(0.99), vec![0, 1, 1, 1]);
        let g = Guard::new(GuardConfig { ratio: 0.5, ..GuardConfig::default() }, secs(0), 60);
        assert_eq!(g.budget(), 30);
    }

    #[test]
    fn threshold_zero_lifts_the_cap() {
        // 60 instances, 50 expire at once: all 50 may go in the same minute (0.85 would allow 9).
        let off = GuardConfig { ratio: 0.0, ..GuardConfig::default() };
        let mut g = Guard::new(off, secs(0), 60);
        g.rotate(secs(61), 60);
        g.observe_size(60);
        assert!(g.budget() >= 50, "budget {}", g.budget());
        g.record_evicted(50);
        // Churn within the minute: 40 new instances register (50 leases) and expire too; still no cap.
        g.observe_size(50);
        assert_eq!(g.budget(), 50, "every current lease may still go");
        g.record_evicted(50);
        g.observe_size(0);
        assert_eq!(g.budget(), 0, "nothing left to evict");
        let s = g.state(0);
        assert_eq!((s.evicted_this_min, s.evict_cap, s.protected), (100, 100, false));

        let mut on = Guard::new(GuardConfig::default(), secs(0), 60);
        on.rotate(secs(61), 60);
        on.observe_size(60);
        assert_eq!(on.budget(), 9, "60 − floor(60 × 0.85) = 9 at the default threshold");
    }

    #[test]
    fn protected_until_a_full_minute_of_history() {
        let mut g = Guard::new(GuardConfig::default(), secs(100), 10);
        for _ in 0..1000 {
            g.record_renew();
        }
        assert!(g.state(10).protected, "no full minute yet");
        g.rotate(secs(159), 10);
        assert!(g.state(10).protected);
        g.rotate(secs(160), 10);
        let s = g.state(10);
        assert_eq!((s.renews_last_min, s.protected), (Some(1000), false));
    }

    #[test]
    fn protection_follows_the_threshold_strictly() {
        // 10 instances, one renew per 30 s each: expected 20, threshold floor(17.0) = 17.
        let cfg = GuardConfig::default();
        let minute = |renews: u64| {
            let mut g = Guard::new(cfg, secs(0), 10);
            (0..renews).for_each(|_| g.record_renew());
            g.rotate(secs(60), 10);
            g.state(10)
        };
        let s = minute(17);
        assert_eq!((s.expected_per_min, s.threshold, s.protected), (20, 17, false));
        assert!(minute(16).protected, "renews collapsed");
        // Configurable interval: renewing every 10 s means 6 per instance per minute.
        let g = Guard::new(GuardConfig { renew_interval: secs(10), ..cfg }, secs(0), 10);
        assert_eq!(g.state(10).expected_per_min, 60);
    }

    #[test]
    fn a_zero_ratio_disables_protection() {
        let g = Guard::new(GuardConfig { ratio: 0.0, ..GuardConfig::default() }, secs(0), 10);
        assert!(!g.state(10).protected, "not even before a minute of history");
    }

    #[test]
    fn eviction_lowers_the_expected_count() {
        let mut g = Guard::new(GuardConfig::default(), secs(0), 10);
        (0..10).for_each(|_| g.record_renew());
        g.rotate(secs(60), 10);
        assert!(g.state(10).protected, "10 renews for 10 instances: 10 < 17");
        // Half the instances were evicted: 5 instances expect 10 renews, threshold 8.
        let s = g.state(5);
        assert_eq!((s.expected_per_min, s.threshold, s.protected), (10, 8, false));
    }

    #[test]
    fn issue_3_the_cap_grows_with_the_registry_within_a_minute() {
        // A fresh leader is promoted with no lease at all: its first-minute cap must not stay 0.
        let mut g = Guard::new(GuardConfig::default(), secs(0), 0);
        assert_eq!(g.budget(), 0);
        g.observe_size(1);
        assert_eq!(g.budget(), 1, "one registered instance may expire in the first minute");
        g.observe_size(20);
        assert_eq!(g.budget(), 3);
        g.record_evicted(3);
        g.observe_size(17);
        assert_eq!(g.budget(), 0, "evictions shrinking the registry do not refill the budget");
    }

    #[test]
    fn budget_resets_every_minute_and_skipped_minutes_count_as_silence() {
        let mut g = Guard::new(GuardConfig::default(), secs(0), 20);
        assert_eq!(g.budget(), 3);
        g.record_evicted(3);
        assert_eq!(g.budget(), 0);
        g.rotate(secs(59), 20);
        assert_eq!(g.budget(), 0);
        (0..100).for_each(|_| g.record_renew());
        g.rotate(secs(60), 17);
        assert_eq!((g.budget(), g.state(17).renews_last_min), (3, Some(100)));
        (0..100).for_each(|_| g.record_renew());
        g.rotate(secs(60 * 4 + 1), 17);
        assert_eq!(g.state(17).renews_last_min, Some(0), "renews of several minutes are not one minute's");
        (0..5).for_each(|_| g.record_renew());
        g.rotate(secs(60 * 5 - 1), 17);
        assert_eq!(g.state(17).renews_this_min, 5, "minute 240..300 still running");
        g.rotate(secs(60 * 5), 17);
        assert_eq!(g.state(17).renews_last_min, Some(5), "minutes stay aligned on the promotion");
    }
}
