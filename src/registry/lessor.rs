//! The leader's lessor: lease table + self-preservation guard, stepped by the caller with `now`.
//!
//! Lifecycle (driven by the node, which owns the timer and watches leadership):
//! - created inactive; a follower's lessor answers renews with [`Renewal::NotLeader`] and never
//!   proposes anything;
//! - [`Lessor::promote`] once leadership is confirmed, seeded with every instance of the applied state
//!   (under the same lock as apply, so no event is missed or seen twice);
//! - [`Lessor::on_applied`] after every apply; [`Lessor::renew`] for each (forwarded) renew;
//! - [`Lessor::tick`] about once a second: the returned list is proposed as one `Evict` command, locally
//!   (never forwarded: a deposed leader's eviction must fail);
//! - [`Lessor::demote`] at once when leadership is lost.
//!
//! Zones cut off from the leader ([`Lessor::set_cut_zones`]): an expired lease of an instance in such a zone is
//! not evicted (its renews may be stuck behind the cut) but postponed by `retry`, unless it passed the
//! `ceiling`; when the zone comes back every lease of it gets a whole `lease` from that moment, so the
//! instances' next renews reach the leader before anything is evicted (the lease grace covers the heal).
//!
//! Invariants: proposing an eviction postpones that lease by `retry`, so a proposal in flight is not
//! proposed again; if it applies, the `Removed` event drops the lease; if it did not (lost leadership,
//! or a register won the race), the lease either got refreshed by a `Registered` event or comes back
//! after `retry`.

use std::time::Duration;

use serde::Serialize;
use thiserror::Error;

use super::apply::LeaseEvent;
use super::guard::{Guard, GuardConfig, GuardState};
use super::lease::LeaseTable;
use super::model::{InstanceKey, SharedKey};

/// Lease and eviction settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LessorConfig {
    /// An instance not renewed for this long is expired (spec: 90 s).
    pub lease: Duration,
    /// An instance not renewed for this long is evicted even under self-preservation (spec: 3600 s).
    pub ceiling: Duration,
    /// Extra time every lease gets on promotion (≥ 2 × election timeout).
    pub grace: Duration,
    /// Promotion deadlines are spread over `[0, spread)` on top of lease + grace.
    pub spread: Duration,
    /// How long a proposed eviction waits before it may be proposed again.
    pub retry: Duration,
    /// Most evictions in one proposal.
    pub max_batch: usize,
    /// Self-preservation.
    pub guard: GuardConfig,
}

impl Default for LessorConfig {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(90),
            ceiling: Duration::from_secs(3600),
            grace: Duration::from_secs(10),
            spread: Duration::from_secs(30),
            retry: Duration::from_secs(10),
            max_batch: 256,
            guard: GuardConfig::default(),
        }
    }
}

/// A setting out of range.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LessorConfigError {
    /// A duration that must be positive is zero.
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    /// The ceiling is shorter than the lease.
    #[error("the lease must not be longer than the eviction ceiling ({0:?})")]
    CeilingBelowLease(Duration),
    /// A ratio outside `[0, 1]`.
    #[error("{0} must be between 0 and 1")]
    Ratio(&'static str),
}

impl LessorConfig {
    /// Checks every setting once, at start-up.
    pub fn validate(&self) -> Result<(), LessorConfigError> {
        let positive = [("lease", self.lease), ("retry", self.retry), ("renew interval", self.guard.renew_interval)];
        if let Some((name, _)) = positive.iter().find(|(_, d)| d.is_zero()) {
            return Err(LessorConfigError::Zero(name));
        }
        if self.max_batch == 0 {
            return Err(LessorConfigError::Zero("max batch"));
        }
        if self.ceiling < self.lease {
            return Err(LessorConfigError::CeilingBelowLease(self.ceiling));
        }
        if !(0.0..=1.0).contains(&self.guard.ratio) {
            return Err(LessorConfigError::Ratio("ratio"));
        }
        Ok(())
    }
}

/// The verdict on one renew.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// Lease extended: code 0.
    Renewed,
    /// No such instance: code -404 (the client registers again).
    Unknown,
    /// This node is not the leader: code -500, never -404 (which would make every client re-register).
    NotLeader,
}

/// What the lessor is doing, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LessorStatus {
    /// This node runs the lessor (it is the confirmed leader).
    pub active: bool,
    /// Leases held.
    pub leases: usize,
    /// Self-preservation state; `None` while inactive.
    pub guard: Option<GuardState>,
}

/// Lease table and guard of the current leader term.
#[derive(Debug, Clone)]
pub struct Lessor {
    cfg: LessorConfig,
    table: LeaseTable,
    /// `Some` while this node is the confirmed leader.
    guard: Option<Guard>,
    /// Zones none of whose registry nodes the leader reaches (see [`Lessor::set_cut_zones`]).
    cut_zones: std::collections::BTreeSet<String>,
}

impl Lessor {
    /// An inactive lessor (a follower's).
    pub fn new(cfg: LessorConfig) -> Self {
        Self { table: LeaseTable::new(cfg.lease), cfg, guard: None, cut_zones: Default::default() }
    }

    /// True between [`promote`](Self::promote) and [`demote`](Self::demote).
    pub fn is_active(&self) -> bool {
        self.guard.is_some()
    }

    /// Becomes the lease keeper, seeded with every `(key, revision)` of the applied state.
    pub fn promote(&mut self, now: Duration, instances: impl IntoIterator<Item = (impl Into<SharedKey>, u64)>) {
        self.table.promote(now, self.cfg.grace, self.cfg.spread, instances);
        self.guard = Some(Guard::new(self.cfg.guard, now, self.table.len()));
    }

    /// Stops at once: forgets every lease and proposes nothing more.
    pub fn demote(&mut self) {
        self.table.clear();
        self.guard = None;
        self.cut_zones.clear();
    }

    /// The zones last set by [`Lessor::set_cut_zones`].
    pub fn cut_zones(&self) -> &std::collections::BTreeSet<String> {
        &self.cut_zones
    }

    /// The zones the leader cannot reach now. A zone that was cut and is no longer gives each of its
    /// leases at least a whole lease from `now`. Returns the zones that healed.
    pub fn set_cut_zones(&mut self, now: Duration, zones: std::collections::BTreeSet<String>) -> Vec<String> {
        let healed: Vec<String> = self.cut_zones.difference(&zones).cloned().collect();
        for zone in &healed {
            self.table.extend_zone(zone, now + self.cfg.lease);
        }
        self.cut_zones = zones;
        healed
    }

    /// Extends the lease of `key`.
    pub fn renew(&mut self, key: &InstanceKey, now: Duration) -> Renewal {
        let Some(guard) = self.guard.as_mut() else {
            return Renewal::NotLeader;
        };
        if !self.table.renew(key, now) {
            return Renewal::Unknown;
        }
        guard.record_renew();
        Renewal::Renewed
    }

    /// Follows an apply's lease events (ignored while inactive).
    pub fn on_applied(&mut self, events: &[LeaseEvent], now: Duration) {
        if self.is_active() {
            self.table.on_applied(events, now);
        }
    }

    /// One scan: the `(key, revision)` list to propose as one `Evict` (empty while inactive). Respects
    /// self-preservation (only leases not renewed for `ceiling` go while protected), the per-minute
    /// cap and `max_batch`; earliest deadline first.
    pub fn tick(&mut self, now: Duration) -> Vec<(InstanceKey, u64)> {
        let Some(guard) = self.guard.as_mut() else {
            return Vec::new();
        };
        guard.rotate(now, self.table.len());
        guard.observe_size(self.table.len());
        let protected = guard.state(self.table.len()).protected;
        let budget = usize::try_from(guard.budget()).unwrap_or(usize::MAX).min(self.cfg.max_batch);
        let ceiling = self.cfg.ceiling;
        let cut = &self.cut_zones;
        let past_ceiling = |lease: super::lease::Lease| now.saturating_sub(lease.renewed_at) > ceiling;
        // Expired leases of cut zones are held (postponed below), not evicted; the scan of them is bounded
        // per tick so a long cut of a big zone costs little per second.
        let mut held = Vec::new();
        let mut victims = Vec::new();
        for (key, lease) in self.table.iter_expired(now) {
            if victims.len() >= budget || held.len() >= self.cfg.max_batch * 4 {
                break;
            }
            if protected && !past_ceiling(lease) {
                continue;
            }
            if cut.contains(&*key.zone.zone) && !past_ceiling(lease) {
                held.push(key.clone());
            } else {
                victims.push((key.to_key(), lease.revision));
            }
        }
        for key in &held {
            self.table.postpone(key, now + self.cfg.retry);
        }
        guard.record_evicted(victims.len());
        for (key, _) in &victims {
            self.table.postpone(key, now + self.cfg.retry);
        }
        victims
    }

    /// The lessor's state, for metrics.
    pub fn status(&self) -> LessorStatus {
        LessorStatus {
            active: self.is_active(),
            leases: self.table.len(),
            guard: self.guard.as_ref().map(|g| g.state(self.table.len())),
        }
    }

    /// The lease table (read-only), e.g. for diagnostics.
    pub fn table(&self) -> &LeaseTable {
        &self.table
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::testutil::key;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn keys(n: usize) -> Vec<InstanceKey> {
        (0..n).map(|i| key("dev", "demo", "z1", &format!("h{i:02}"))).collect()
    }

    fn cfg() -> LessorConfig {
        LessorConfig { grace: secs(10), spread: Duration::ZERO, ..LessorConfig::default() }
    }

    /// Promoted at t=0 with `n` instances at revision 1.
    fn promoted(cfg: LessorConfig, n: usize) -> (Lessor, Vec<InstanceKey>) {
        let ks = keys(n);
        let mut l = Lessor::new(cfg);
        l.promote(secs(0), ks.iter().cloned().map(|k| (k, 1)));
        (l, ks)
    }

    /// Applies the evictions as Raft would, so the lessor sees the `Removed` events.
    fn apply(l: &mut Lessor, victims: &[(InstanceKey, u64)], now: Duration) {
        let events: Vec<_> = victims.iter().map(|(k, _)| LeaseEvent::Removed(k.clone())).collect();
        l.on_applied(&events, now);
    }

    #[test]
    fn a_cut_zone_is_not_evicted_and_gets_a_whole_lease_when_it_heals() {
        // Self-preservation off, so only the zone rule can keep an expired instance.
        let cfg = LessorConfig { guard: GuardConfig { ratio: 0.0, ..GuardConfig::default() }, ..cfg() };
        let mut l = Lessor::new(cfg);
        let a = key("dev", "demo", "zone-a", "a");
        let b = key("dev", "demo", "zone-b", "b");
        l.promote(secs(0), [(a.clone(), 1), (b.clone(), 1)]);
        l.set_cut_zones(secs(30), ["zone-b".to_string()].into());
        // Both stop renewing at t=0; lease 90 s + grace 10 s: both expire at t=100.
        let mut evicted = Vec::new();
        for t in (101..=400).step_by(1) {
            let victims = l.tick(secs(t));
            apply(&mut l, &victims, secs(t));
            evicted.extend(victims.into_iter().map(|(k, _)| (k.zone, t)));
        }
        assert_eq!(evicted, vec![("zone-a".to_string(), 101)], "zone-b is held while cut");
        assert_eq!(l.status().leases, 1);
        // The cut heals at t=400: b gets a whole lease (until t=490) before it can go.
        assert_eq!(l.set_cut_zones(secs(400), Default::default()), vec!["zone-b".to_string()]);
        for t in 401..=489 {
            assert!(l.tick(secs(t)).is_empty(), "evicted at {t}, within the lease after the heal");
        }
        assert_eq!(l.renew(&b, secs(450)), Renewal::Renewed, "its renew after the heal keeps it");
        assert!(l.tick(secs(500)).is_empty());
        let mut late = Vec::new();
        for t in 541..=560 {
            let victims = l.tick(secs(t));
            apply(&mut l, &victims, secs(t));
            late.extend(victims);
        }
        assert_eq!(late.len(), 1, "not renewed again after the heal: evicted a lease after its renew");
    }

    #[test]
    fn a_cut_zone_past_the_ceiling_is_evicted() {
        let cfg = LessorConfig { guard: GuardConfig { ratio: 0.0, ..GuardConfig::default() }, ..cfg() };
        let mut l = Lessor::new(cfg);
        let b = key("dev", "demo", "zone-b", "b");
        l.promote(secs(0), [(b, 1)]);
        l.set_cut_zones(secs(1), ["zone-b".to_string()].into());
        let mut evicted = Vec::new();
        for t in 3_590..3_620 {
            let victims = l.tick(secs(t));
            apply(&mut l, &victims, secs(t));
            evicted.extend(victims);
        }
        assert_eq!(evicted.len(), 1, "the one-hour ceiling applies to cut zones too");
    }

    #[test]
    fn a_follower_neither_renews_nor_evicts() {
        let mut l = Lessor::new(cfg());
        let a = key("dev", "demo", "z1", "a");
        l.on_applied(&[LeaseEvent::Registered { key: a.clone().into(), revision: 1 }], secs(0));
        assert_eq!(l.renew(&a, secs(1)), Renewal::NotLeader);
        assert!(l.tick(secs(10_000)).is_empty());
        assert_eq!(l.status().leases, 0);
        assert!(l.status().guard.is_none());
    }

    #[test]
    fn renew_verdicts_on_the_leader() {
        let (mut l, ks) = promoted(cfg(), 1);
        assert_eq!(l.renew(&ks[0], secs(1)), Renewal::Renewed);
        assert_eq!(l.renew(&key("dev", "demo", "z1", "ghost"), secs(1)), Renewal::Unknown);
        assert_eq!(l.status().guard.map(|g| g.renews_this_min), Some(1));
        l.demote();
        assert_eq!(l.renew(&ks[0], secs(2)), Renewal::NotLeader);
        assert_eq!(l.status().leases, 0);
    }

    #[test]
    fn an_instance_that_stops_renewing_is_evicted_after_the_lease_and_the_others_stay() {
        // 20 instances renewing every 30 s; h00 stops after t=0.
        let (mut l, ks) = promoted(cfg(), 20);
        let mut evicted = Vec::new();
        for now in 1..=400u64 {
            if now % 30 == 0 {
                ks[1..].iter().for_each(|k| assert_eq!(l.renew(k, secs(now)), Renewal::Renewed));
            }
            let victims = l.tick(secs(now));
            apply(&mut l, &victims, secs(now));
            evicted.extend(victims.into_iter().map(|(k, rev)| (now, k, rev)));
        }
        // Promotion gives 90 + 10 s; the guard needs its first minute (ends at 60 s): evicted at 101 s.
        assert_eq!(evicted, vec![(101, ks[0].clone(), 1)]);
        assert_eq!(l.status().leases, 19);
        assert_eq!(l.status().guard.map(|g| g.protected), Some(false));
    }

    #[test]
    fn nothing_is_evicted_within_the_promotion_grace() {
        let (mut l, _) =
            promoted(LessorConfig { guard: GuardConfig { ratio: 0.0, ..GuardConfig::default() }, ..cfg() }, 5);
        assert!(l.tick(secs(100)).is_empty(), "lease + grace = 100 s");
        assert_eq!(l.tick(secs(101)).len(), 5, "then all of them: threshold 0 means no per-minute cap");
    }

    #[test]
    fn self_preservation_stops_eviction_when_renews_collapse() {
        let (mut l, ks) = promoted(cfg(), 20);
        for now in 1..=1800u64 {
            // Only 5 of 20 keep renewing: 10 renews per minute, far below 34.
            if now % 30 == 0 {
                ks[..5].iter().for_each(|k| {
                    l.renew(k, secs(now));
                });
            }
            assert!(l.tick(secs(now)).is_empty(), "protected at {now}");
        }
        let status = l.status().guard.expect("active");
        assert!(status.protected);
        assert_eq!((status.expected_per_min, status.threshold, status.renews_last_min), (40, 34, Some(10)));
    }

    #[test]
    fn the_ceiling_evicts_even_when_protected() {
        let (mut l, ks) = promoted(cfg(), 20);
        let mut evicted = Vec::new();
        for now in 1..=3700u64 {
            if now % 30 == 0 {
                ks[..5].iter().for_each(|k| {
                    l.renew(k, secs(now));
                });
            }
            let victims = l.tick(secs(now));
            apply(&mut l, &victims, secs(now));
            evicted.extend(victims.into_iter().map(|(k, _)| (now, k)));
        }
        assert!(l.status().guard.is_some_and(|g| g.protected));
        // The 15 silent instances were last seen at promotion (t=0): evictable after 3600 s, 3 per minute.
        let times: Vec<u64> = evicted.iter().map(|(t, _)| *t).collect();
        assert_eq!(times, vec![3601, 3601, 3601, 3660, 3660, 3660], "capped at 3 per minute");
        assert!(evicted.iter().all(|(_, k)| !ks[..5].contains(k)), "renewing instances stay");
    }

    #[test]
    fn at_most_fifteen_percent_per_minute_at_the_default_threshold() {
        // 20 instances; h10..h19 renew every 10 s (60 renews a minute, above the threshold of 34 for 20
        // instances, so no self-preservation); h00..h09 are silent and expire at 100 s.
        let (mut l, ks) = promoted(cfg(), 20);
        let mut per_minute = [0usize; 4];
        for now in 1..=299u64 {
            if now % 10 == 0 {
                ks[10..].iter().for_each(|k| assert_eq!(l.renew(k, secs(now)), Renewal::Renewed));
            }
            let victims = l.tick(secs(now));
            assert!(victims.iter().all(|(k, _)| !ks[10..].contains(k)), "renewing instances stay");
            apply(&mut l, &victims, secs(now));
            if now >= 60 {
                per_minute[(now / 60) as usize - 1] += victims.len();
            }
        }
        // size − floor(size × 0.85): [60,120) 3 of 20; [120,180) 3 of 17; [180,240) 3 of 14; [240,300) the last.
        assert_eq!(per_minute, [3, 3, 3, 1]);
    }

    #[test]
    fn threshold_zero_evicts_a_burst_of_expiries_at_once() {
        // Self-preservation off: 50 of 60 instances stop renewing and all 50 go in the first scan after
        // their lease, not 15 % a minute.
        let off = GuardConfig { ratio: 0.0, ..GuardConfig::default() };
        let (mut l, ks) = promoted(LessorConfig { guard: off, ..cfg() }, 60);
        let mut evicted = Vec::new();
        for now in 1..=200u64 {
            if now % 30 == 0 {
                ks[50..].iter().for_each(|k| assert_eq!(l.renew(k, secs(now)), Renewal::Renewed));
            }
            let victims = l.tick(secs(now));
            apply(&mut l, &victims, secs(now));
            evicted.extend(victims.into_iter().map(|(k, _)| (now, k)));
        }
        let times: Vec<u64> = evicted.iter().map(|(t, _)| *t).collect();
        assert_eq!(times, vec![101; 50], "all 50 at lease + grace");
        let mut gone: Vec<InstanceKey> = evicted.into_iter().map(|(_, k)| k).collect();
        gone.sort();
        assert_eq!(gone, ks[..50].to_vec());
        assert_eq!(l.status().leases, 10);
    }

    #[test]
    fn a_proposed_eviction_is_not_proposed_again_until_retry() {
        let unlimited = GuardConfig { ratio: 0.0, ..GuardConfig::default() };
        let (mut l, ks) = promoted(LessorConfig { guard: unlimited, ..cfg() }, 2);
        l.on_applied(&[LeaseEvent::Registered { key: ks[1].clone().into(), revision: 2 }], secs(50));
        assert_eq!(l.tick(secs(101)), vec![(ks[0].clone(), 1)]);
        // The proposal was lost (e.g. a leadership wobble): nothing applied, budget left, but no repeat yet.
        assert!(l.tick(secs(105)).is_empty());
        assert_eq!(l.tick(secs(112)), vec![(ks[0].clone(), 1)], "retried after `retry`");
        assert_eq!(l.status().guard.map(|g| g.evicted_this_min), Some(2));
        assert!(l.tick(secs(119)).is_empty(), "postponed again until 122 s");
        assert_eq!(l.tick(secs(123)), vec![(ks[0].clone(), 1)], "no cap at threshold 0: a third try, same minute");
    }

    #[test]
    fn a_reregistration_refreshes_the_lease_with_its_new_revision() {
        let no_guard = GuardConfig { ratio: 0.0, ..GuardConfig::default() };
        let (mut l, ks) = promoted(LessorConfig { guard: no_guard, ..cfg() }, 1);
        l.on_applied(&[LeaseEvent::Registered { key: ks[0].clone().into(), revision: 9 }], secs(50));
        assert!(l.tick(secs(140)).is_empty());
        assert_eq!(l.tick(secs(141)), vec![(ks[0].clone(), 9)]);
    }

    #[test]
    fn issue_3_a_leader_promoted_with_no_instance_evicts_in_its_first_minute() {
        let no_guard = GuardConfig { ratio: 0.0, ..GuardConfig::default() };
        let mut l = Lessor::new(LessorConfig { lease: secs(1), guard: no_guard, ..cfg() });
        l.promote(secs(0), Vec::<(InstanceKey, u64)>::new());
        let a = key("dev", "demo", "z1", "a");
        l.on_applied(&[LeaseEvent::Registered { key: a.clone().into(), revision: 2 }], secs(1));
        assert!(l.tick(secs(2)).is_empty(), "lease not over yet");
        assert_eq!(l.tick(secs(3)), vec![(a, 2)], "expired 1 s after its register, not after the first minute");
    }

    #[test]
    fn config_validation() {
        assert_eq!(LessorConfig::default().validate(), Ok(()));
        let bad = |f: fn(&mut LessorConfig)| {
            let mut c = LessorConfig::default();
            f(&mut c);
            c.validate()
        };
        assert_eq!(bad(|c| c.lease = Duration::ZERO), Err(LessorConfigError::Zero("lease")));
        assert_eq!(bad(|c| c.ceiling = secs(10)), Err(LessorConfigError::CeilingBelowLease(secs(10))));
        assert_eq!(bad(|c| c.guard.ratio = 1.5), Err(LessorConfigError::Ratio("ratio")));
        assert_eq!(bad(|c| c.guard.ratio = f64::NAN), Err(LessorConfigError::Ratio("ratio")));
        assert_eq!(bad(|c| c.max_batch = 0), Err(LessorConfigError::Zero("max batch")));
    }
}
