//! The leader's lease table: when each instance's lease runs out, and which revision it refers to.
//!
//! Leader-local and never replicated: renews do not enter the Raft log. Time is a monotonic
//! [`Duration`] since an origin the caller picks (e.g. `tokio::time::Instant` minus the node's start),
//! passed into every call; nothing here reads a clock.
//!
//! Invariants:
//! - `by_deadline` holds exactly one `(deadline, key)` per entry of `leases`, so expiry is found in
//!   deadline order without a scan of the whole table.
//! - A lease is expired when `now > deadline` (strictly, like the original's `now − renew > 90 s`).
//! - The revision is the one of the last register the table heard of; evictions are proposed with it,
//!   so an instance re-registered after the decision survives (compare-and-delete in apply).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::apply::LeaseEvent;
use super::hash::Fnv64;
use super::model::InstanceKey;

/// One instance's lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// The lease runs out after this instant.
    pub deadline: Duration,
    /// Revision of the instance this lease refers to.
    pub revision: u64,
    /// Last proof of life: register, renew, or the promotion that seeded the table.
    pub renewed_at: Duration,
}

/// Deadline per instance, ordered for expiry.
#[derive(Debug, Clone)]
pub struct LeaseTable {
    lease: Duration,
    leases: BTreeMap<InstanceKey, Lease>,
    by_deadline: BTreeSet<(Duration, InstanceKey)>,
}

impl LeaseTable {
    /// An empty table whose leases last `lease` after each renew.
    pub fn new(lease: Duration) -> Self {
        Self { lease, leases: BTreeMap::new(), by_deadline: BTreeSet::new() }
    }

    /// Number of leases.
    pub fn len(&self) -> usize {
        self.leases.len()
    }

    /// True when no lease is held.
    pub fn is_empty(&self) -> bool {
        self.leases.is_empty()
    }

    /// The lease of `key`, if any.
    pub fn get(&self, key: &InstanceKey) -> Option<&Lease> {
        self.leases.get(key)
    }

    /// Extends the lease of a known instance to `now + lease`. False if unknown (-404 on the wire).
    pub fn renew(&mut self, key: &InstanceKey, now: Duration) -> bool {
        let Some(lease) = self.leases.get(key).copied() else {
            return false;
        };
        self.put(key.clone(), Lease { deadline: now + self.lease, renewed_at: now, ..lease });
        true
    }

    /// A register was applied: a fresh lease of `now + lease` on `revision`.
    pub fn registered(&mut self, key: InstanceKey, revision: u64, now: Duration) {
        self.put(key, Lease { deadline: now + self.lease, revision, renewed_at: now });
    }

    /// Forgets a cancelled or evicted instance. Returns whether it was known.
    pub fn remove(&mut self, key: &InstanceKey) -> bool {
        let Some(lease) = self.leases.remove(key) else {
            return false;
        };
        self.by_deadline.remove(&(lease.deadline, key.clone()));
        true
    }

    /// Follows what apply did to the set of instances.
    pub fn on_applied(&mut self, events: &[LeaseEvent], now: Duration) {
        for event in events {
            match event {
                LeaseEvent::Registered { key, revision } => self.registered(key.clone(), *revision, now),
                LeaseEvent::Removed(key) => {
                    self.remove(key);
                }
            }
        }
    }

    /// Reseeds the table on becoming leader: every instance gets `now + lease + grace + offset`, where
    /// the offset in `[0, spread)` comes from a hash of the key, so that instances whose renews went to
    /// the old leader do not all expire in the same instant. The new leader has no renew history, so
    /// nobody may be evicted before a full lease after the grace.
    pub fn promote(
        &mut self,
        now: Duration,
        grace: Duration,
        spread: Duration,
        instances: impl IntoIterator<Item = (InstanceKey, u64)>,
    ) {
        self.clear();
        for (key, revision) in instances {
            let deadline = now + self.lease + grace + spread_offset(&key, spread);
            self.put(key, Lease { deadline, revision, renewed_at: now });
        }
    }

    /// Moves a lease's deadline, keeping everything else (used to retry an eviction that did not apply).
    pub fn postpone(&mut self, key: &InstanceKey, deadline: Duration) {
        if let Some(lease) = self.leases.get(key).copied() {
            self.put(key.clone(), Lease { deadline, ..lease });
        }
    }

    /// Expired leases (`now > deadline`), earliest deadline first.
    pub fn iter_expired(&self, now: Duration) -> impl Iterator<Item = (&InstanceKey, &Lease)> + '_ {
        self.by_deadline
            .iter()
            .take_while(move |(deadline, _)| *deadline < now)
            .filter_map(|(_, key)| self.leases.get_key_value(key))
    }

    /// Up to `max` expired `(key, revision)`, earliest deadline first: an `Evict` batch.
    pub fn expired(&self, now: Duration, max: usize) -> Vec<(InstanceKey, u64)> {
        self.iter_expired(now).take(max).map(|(key, lease)| (key.clone(), lease.revision)).collect()
    }

    /// Drops every lease (on losing leadership, or before reseeding).
    pub fn clear(&mut self) {
        self.leases.clear();
        self.by_deadline.clear();
    }

    /// Inserts or replaces a lease, keeping the deadline index in step.
    fn put(&mut self, key: InstanceKey, lease: Lease) {
        if let Some(old) = self.leases.get(&key) {
            self.by_deadline.remove(&(old.deadline, key.clone()));
        }
        self.by_deadline.insert((lease.deadline, key.clone()));
        self.leases.insert(key, lease);
    }
}

/// A stable pseudo-random offset in `[0, spread)` for `key` (0 when `spread` is 0).
fn spread_offset(key: &InstanceKey, spread: Duration) -> Duration {
    let span = u64::try_from(spread.as_nanos()).unwrap_or(u64::MAX);
    if span == 0 {
        return Duration::ZERO;
    }
    let mut h = Fnv64::new();
    for s in [&key.env, &key.appid, &key.zone, &key.hostname] {
        h.str(s);
    }
    Duration::from_nanos(h.finish() % span)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::testutil::key;

    const LEASE: Duration = Duration::from_secs(90);

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn a_lease_expires_strictly_after_the_lease() {
        let a = key("dev", "demo", "z1", "a");
        let mut t = LeaseTable::new(LEASE);
        t.registered(a.clone(), 7, secs(10));
        assert!(t.expired(secs(100), 10).is_empty(), "exactly one lease later: not yet");
        assert_eq!(t.expired(secs(100) + Duration::from_nanos(1), 10), vec![(a, 7)]);
    }

    #[test]
    fn renew_keeps_alive_and_unknown_renew_fails() {
        let a = key("dev", "demo", "z1", "a");
        let mut t = LeaseTable::new(LEASE);
        t.registered(a.clone(), 1, secs(0));
        for now in (30..=300).step_by(30) {
            assert!(t.renew(&a, secs(now)));
            assert!(t.expired(secs(now + 1), 10).is_empty());
        }
        assert_eq!(t.get(&a).map(|l| (l.deadline, l.revision, l.renewed_at)), Some((secs(390), 1, secs(300))));
        assert!(!t.renew(&key("dev", "demo", "z1", "ghost"), secs(1)));
        assert_eq!(t.len(), 1, "an unknown renew adds nothing");
    }

    #[test]
    fn apply_events_add_refresh_and_remove() {
        let (a, b) = (key("dev", "demo", "z1", "a"), key("dev", "demo", "z1", "b"));
        let mut t = LeaseTable::new(LEASE);
        let events = [
            LeaseEvent::Registered { key: a.clone(), revision: 1 },
            LeaseEvent::Registered { key: b.clone(), revision: 2 },
            LeaseEvent::Removed(b.clone()),
        ];
        t.on_applied(&events, secs(0));
        t.on_applied(&[LeaseEvent::Registered { key: a.clone(), revision: 3 }], secs(50));
        assert_eq!(t.len(), 1);
        assert_eq!(t.expired(secs(139), 10), vec![]);
        assert_eq!(t.expired(secs(141), 10), vec![(a.clone(), 3)], "refreshed and carrying the new revision");
        assert!(t.remove(&a));
        assert!(t.is_empty() && t.expired(secs(1000), 10).is_empty());
    }

    #[test]
    fn expired_is_earliest_first_and_bounded() {
        let mut t = LeaseTable::new(LEASE);
        for (i, host) in ["c", "a", "b"].iter().enumerate() {
            t.registered(key("dev", "demo", "z1", host), i as u64, secs(i as u64));
        }
        let got = t.expired(secs(1000), 2);
        assert_eq!(got, vec![(key("dev", "demo", "z1", "c"), 0), (key("dev", "demo", "z1", "a"), 1)]);
    }

    #[test]
    fn promotion_gives_grace_and_spreads_deadlines() {
        let keys: Vec<_> = (0..100).map(|i| key("dev", "demo", "z1", &format!("h{i}"))).collect();
        let mut t = LeaseTable::new(LEASE);
        t.registered(key("dev", "old", "z1", "stale"), 1, secs(0));
        let (now, grace, spread) = (secs(1000), secs(10), secs(30));
        t.promote(now, grace, spread, keys.iter().cloned().map(|k| (k, 4)));
        assert_eq!(t.len(), 100, "promotion reseeds from scratch");
        let earliest = now + LEASE + grace;
        assert!(t.expired(earliest, 1000).is_empty(), "nobody expires before lease + grace");
        let deadlines: BTreeSet<_> = keys.iter().filter_map(|k| t.get(k)).map(|l| l.deadline).collect();
        assert!(deadlines.iter().all(|d| *d >= earliest && *d < earliest + spread));
        assert!(deadlines.len() > 90, "deadlines are spread, not one burst");
        assert_eq!(t.expired(earliest + spread, 1000).len(), 100);
        let mut again = LeaseTable::new(LEASE);
        again.promote(now, grace, spread, keys.iter().cloned().map(|k| (k, 4)));
        assert!(keys.iter().all(|k| again.get(k) == t.get(k)), "the spread is deterministic");
    }

    #[test]
    fn postpone_moves_only_the_deadline() {
        let a = key("dev", "demo", "z1", "a");
        let mut t = LeaseTable::new(LEASE);
        t.registered(a.clone(), 3, secs(0));
        t.postpone(&a, secs(500));
        assert_eq!(t.get(&a).copied(), Some(Lease { deadline: secs(500), revision: 3, renewed_at: secs(0) }));
        assert!(t.expired(secs(499), 10).is_empty());
    }
}
