//! The replicated state: every instance, grouped app → zone → hostname, plus one polling cursor per app.
//!
//! Invariants (all maintained by [`Registry::apply`](super::apply), the only writer):
//! - No empty containers: a zone exists only while it holds an instance, an app only while it holds a
//!   zone (spec §3.4). Removing the last instance of an app removes the app and its cursor.
//! - Every app's `latest_timestamp` (the polling cursor) is ≥ 1 and strictly increases with every change
//!   to that app. It is drawn from the registry-wide high-water mark ([`Registry::high_water`]), so an
//!   app that is removed and registered again still gets a cursor above every cursor it ever had, even if
//!   the leader's clock went backwards meanwhile.
//! - Each stored instance carries its *revision*: the Raft log index of the last `Register` that touched
//!   it. The leader's lease table remembers the same number, and `Evict` deletes only on a match.
//! - Every map is ordered (`imbl::OrdMap` for the apps, `BTreeMap` inside an app), so iteration order (and
//!   thus JSON output, the digest and the snapshot bytes) is the same on every replica.
//! - Copy-on-write: the app map is a persistent map of `Arc<AppEntry>`, so cloning the registry is O(1) and
//!   shares everything; a write to an app shared with a clone copies that one app (`Arc::make_mut`, at most
//!   a few hundred instances) and the map's path to it. A snapshot serializes such a frozen clone while apply
//!   goes on.
//! - Serialized with bincode through serde for snapshots: struct map keys are fine there, JSON is not
//!   used for this type. The bytes are those of the earlier `BTreeMap<AppKey, AppEntry>` layout (a map is a
//!   map, an `Arc` is its value), so older snapshots restore.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::model::{AppKey, Instance, InstanceKey, SharedKey};

/// An instance as stored: the wire-shaped [`Instance`] plus the revision that guards eviction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    /// The instance, exactly as clients see it.
    pub instance: Instance,
    /// Raft log index of the last `Register` of this key (compare-and-delete token for `Evict`).
    pub revision: u64,
}

pub use super::hosts::Hosts;

/// One (env, appid): its zones and its polling cursor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppEntry {
    /// The app's polling cursor (spec §3.5), in leader-stamp nanoseconds; ≥ 1 once the app exists.
    pub latest_timestamp: i64,
    /// Zone → hostname → instance. Never holds an empty zone.
    pub zones: BTreeMap<String, Hosts>,
}

impl AppEntry {
    /// Every instance of the app, zone by zone, hostname by hostname.
    pub fn instances(&self) -> impl Iterator<Item = &Stored> {
        self.zones.values().flat_map(|hosts| hosts.values())
    }
}

/// The whole replicated registry. Written only by `apply`; everything else reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registry {
    /// (env, appid) → app. Never holds an app without zones.
    pub(super) apps: imbl::OrdMap<AppKey, Arc<AppEntry>>,
    /// The highest cursor ever given to any app (0 for a fresh registry). Kept after apps are removed.
    pub(super) high_water: i64,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The app entry of (env, appid), if it has any instance.
    pub fn app(&self, env: &str, appid: &str) -> Option<&AppEntry> {
        self.apps.get(&app_key(env, appid)).map(|app| &**app)
    }

    /// Every app, ordered by (env, appid).
    pub fn apps(&self) -> impl Iterator<Item = (&AppKey, &AppEntry)> {
        self.apps.iter().map(|(key, app)| (key, &**app))
    }

    /// The app to change, copied first if a frozen clone (a snapshot being written) shares it.
    pub(super) fn app_mut(&mut self, app: &AppKey) -> Option<&mut AppEntry> {
        self.apps.get_mut(app).map(Arc::make_mut)
    }

    /// The polling cursor of (env, appid), or `None` if the app does not exist.
    pub fn cursor(&self, env: &str, appid: &str) -> Option<i64> {
        self.app(env, appid).map(|app| app.latest_timestamp)
    }

    /// The highest cursor this registry ever handed out (0 if none).
    pub fn high_water(&self) -> i64 {
        self.high_water
    }

    /// The hosts of one zone of one app, if that zone exists.
    pub fn zone(&self, env: &str, appid: &str, zone: &str) -> Option<&Hosts> {
        self.app(env, appid)?.zones.get(zone)
    }

    /// One stored instance with its revision.
    pub fn get(&self, key: &InstanceKey) -> Option<&Stored> {
        self.zone(&key.env, &key.appid, &key.zone)?.get(&key.hostname)
    }

    /// Number of instances (walks the apps; O(apps + zones)).
    pub fn len(&self) -> usize {
        self.apps.values().flat_map(|app| app.zones.values()).map(Hosts::len).sum()
    }

    /// True when no instance is registered.
    pub fn is_empty(&self) -> bool {
        self.apps.is_empty()
    }

    /// Shares equal values (metadata, region, zone, env, appid, version) between neighbouring instances of each
    /// zone, as apply does at register (see `metadata`): a registry decoded from a snapshot holds one copy
    /// per instance until this runs.
    pub fn share_equal_values(&mut self) {
        let keys: Vec<AppKey> = self.apps.keys().cloned().collect();
        for key in keys {
            let Some(app) = self.app_mut(&key) else { continue };
            for hosts in app.zones.values_mut() {
                let mut previous: Option<Instance> = None;
                for stored in hosts.values_mut() {
                    if let Some(previous) = &previous {
                        stored.instance.share_with(previous);
                    }
                    previous = Some(stored.instance.clone());
                }
            }
        }
    }

    /// `(key, revision)` of every instance: what a new leader seeds its lease table with.
    pub fn leases(&self) -> impl Iterator<Item = (SharedKey, u64)> + '_ {
        // Counted, so the lease table is sized once for all of them.
        let all = self.apps.values().flat_map(|app| app.zones.values()).flat_map(Hosts::shared_keys);
        Counted { inner: all, left: self.len() }
    }

    /// Advances the cursor of `app` (if it still exists) to `max(stamp, high_water + 1)`.
    ///
    /// Using the registry-wide high-water mark rather than the app's own previous value gives the same
    /// strict increase per app, and also survives removal and re-creation of the app.
    pub(super) fn bump_cursor(&mut self, app: &AppKey, stamp: i64) -> bool {
        let cursor = stamp.max(self.high_water.saturating_add(1));
        let Some(entry) = self.app_mut(app) else {
            return false;
        };
        entry.latest_timestamp = cursor;
        self.high_water = cursor;
        true
    }

    /// Removes `key` if `may_remove` says the stored copy may go, then prunes an emptied zone and app.
    /// Returns whether something was removed.
    pub(super) fn remove_if(&mut self, key: &InstanceKey, may_remove: impl FnOnce(&Stored) -> bool) -> bool {
        let app = key.app();
        // Decided on the shared copy: a refused removal copies nothing.
        let found = self.apps.get(&app).and_then(|entry| entry.zones.get(&key.zone)?.get(&key.hostname));
        if !found.is_some_and(may_remove) {
            return false;
        }
        let Some(entry) = self.app_mut(&app) else {
            return false;
        };
        let Some(hosts) = entry.zones.get_mut(&key.zone) else {
            return false;
        };
        hosts.remove(&key.hostname);
        if hosts.is_empty() {
            entry.zones.remove(&key.zone);
        }
        if entry.zones.is_empty() {
            self.apps.remove(&app);
        }
        true
    }
}

/// An iterator of a known length (`flat_map` forgets it).
struct Counted<I> {
    inner: I,
    left: usize,
}

impl<I: Iterator> Iterator for Counted<I> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        let item = self.inner.next()?;
        self.left = self.left.saturating_sub(1);
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

/// Builds the owned map key for a lookup.
pub(super) fn app_key(env: &str, appid: &str) -> AppKey {
    AppKey { env: env.to_owned(), appid: appid.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::command::{Command, RegisterArgs};
    use crate::registry::testutil::*;

    #[test]
    fn equal_values_of_a_zone_are_one_copy_after_apply_and_after_a_restore() {
        let mut reg = Registry::new();
        let keys: Vec<InstanceKey> = (0..4).map(|i| key("dev", "demo", "z1", &format!("h{i}"))).collect();
        for (i, k) in keys.iter().enumerate() {
            let weight = if i == 3 { "20" } else { "10" };
            let args =
                RegisterArgs { metadata: Some(map(&[("weight", weight), ("cluster", "c1")])), ..register_args(k) };
            reg.apply(i as u64 + 1, &batch(100 + i as i64, vec![Command::Register(args)]));
        }
        let metadata =
            |reg: &Registry, i: usize| reg.get(&keys[i]).and_then(|s| s.instance.metadata.clone()).expect("metadata");
        let shared = |reg: &Registry| {
            (
                metadata(reg, 1).is_shared_with(&metadata(reg, 0)),
                metadata(reg, 2).is_shared_with(&metadata(reg, 0)),
                metadata(reg, 3).is_shared_with(&metadata(reg, 0)),
            )
        };
        assert_eq!(shared(&reg), (true, true, false), "equal pairs share, different ones do not");
        assert_eq!(metadata(&reg, 3).get("weight"), Some("20"));

        let bytes = bincode::serde::encode_to_vec(&reg, bincode::config::standard()).expect("encode");
        let (mut back, _): (Registry, usize) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).expect("decode");
        assert_eq!(shared(&back), (false, false, false), "decoding makes one copy each");
        back.share_equal_values();
        assert_eq!(shared(&back), (true, true, false));
        assert_eq!(back, reg);
        // The strings every instance of a zone repeats are one copy too, after apply and after a restore.
        for registry in [&reg, &back] {
            let instance = |i: usize| registry.get(&keys[i]).map(|s| s.instance.clone()).expect("instance");
            let (first, last) = (instance(0), instance(3));
            for (a, b) in [(&first.zone, &last.zone), (&first.appid, &last.appid), (&first.version, &last.version)] {
                assert!(Arc::ptr_eq(a, b), "{a} is shared");
            }
        }
    }

    #[test]
    fn snapshot_round_trips_through_bincode() {
        let a = key("dev", "demo", "z1", "a");
        let mut reg = registry_with(&[a.clone(), key("prod", "demo", "z2", "b"), key("dev", "x", "z1", "c")]);
        let args = RegisterArgs { metadata: Some(map(&[("k", "v")])), ..register_args(&a) };
        reg.apply(9, &batch(50, vec![Command::Register(args), Command::Cancel(key("dev", "x", "z1", "c"))]));
        let bytes = bincode::serde::encode_to_vec(&reg, bincode::config::standard()).expect("encode");
        let (back, read): (Registry, usize) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).expect("decode");
        assert_eq!(read, bytes.len());
        assert_eq!(back, reg);
        assert_eq!(back.digest(), reg.digest());
        assert_eq!(back.high_water(), reg.high_water(), "the high-water mark survives a snapshot");
    }

    #[test]
    fn a_clone_is_frozen_while_the_original_changes() {
        let (a, b) = (key("dev", "demo", "z1", "a"), key("dev", "other", "z1", "b"));
        let mut reg = registry_with(&[a.clone(), b.clone()]);
        let frozen = reg.clone();
        let before = bincode::serde::encode_to_vec(&frozen, bincode::config::standard()).expect("encode");
        reg.apply(10, &batch(99_000, vec![register(&key("dev", "demo", "z1", "new")), Command::Cancel(b)]));
        assert_eq!(reg.len(), 2);
        assert_eq!(frozen.len(), 2);
        assert!(frozen.zone("dev", "demo", "z1").is_some_and(|hosts| !hosts.contains_key("new")));
        assert!(frozen.app("dev", "other").is_some(), "the cancel did not reach the clone");
        let after = bincode::serde::encode_to_vec(&frozen, bincode::config::standard()).expect("encode");
        assert_eq!(before, after, "the clone's bytes did not move");
        assert_ne!(frozen.digest(), reg.digest());
    }

    /// The layout before copy-on-write: snapshots written by it must still restore.
    #[derive(serde::Serialize)]
    struct BeforeCopyOnWrite {
        apps: BTreeMap<AppKey, AppEntry>,
        high_water: i64,
    }

    #[test]
    fn snapshots_of_the_earlier_layout_restore() {
        let reg = registry_with(&[key("dev", "demo", "z1", "a"), key("prod", "x", "z2", "b")]);
        let old = BeforeCopyOnWrite {
            apps: reg.apps().map(|(k, app)| (k.clone(), app.clone())).collect(),
            high_water: reg.high_water(),
        };
        let bytes = bincode::serde::encode_to_vec(&old, bincode::config::standard()).expect("encode");
        let (back, _): (Registry, usize) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).expect("decode the old layout");
        assert_eq!(back, reg);
        assert_eq!(back.digest(), reg.digest());
    }

    #[test]
    fn accessors_see_the_layout() {
        let (a, b) = (key("dev", "demo", "z1", "a"), key("dev", "demo", "z2", "b"));
        let reg = registry_with(&[a.clone(), b.clone()]);
        assert_eq!(reg.len(), 2);
        assert_eq!(reg.apps().count(), 1);
        assert_eq!(reg.app("dev", "demo").map(|app| app.zones.len()), Some(2));
        assert_eq!(reg.leases().collect::<Vec<_>>(), vec![(a.into(), 1), (b.into(), 2)]);
        assert!(reg.zone("dev", "demo", "z3").is_none());
        assert!(reg.app("prod", "demo").is_none());
    }
}
