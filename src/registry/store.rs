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
//! - Everything is a `BTreeMap`, so iteration order (and thus JSON output, the digest and the snapshot
//!   bytes) is the same on every replica.
//! - Serialized with bincode through serde for snapshots: struct map keys are fine there, JSON is not
//!   used for this type.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::model::{AppKey, Instance, InstanceKey};

/// An instance as stored: the wire-shaped [`Instance`] plus the revision that guards eviction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    /// The instance, exactly as clients see it.
    pub instance: Instance,
    /// Raft log index of the last `Register` of this key (compare-and-delete token for `Evict`).
    pub revision: u64,
}

/// Hostname → stored instance, within one zone.
pub type Hosts = BTreeMap<String, Stored>;

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
    pub(super) apps: BTreeMap<AppKey, AppEntry>,
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
        self.apps.get(&app_key(env, appid))
    }

    /// Every app, ordered by (env, appid).
    pub fn apps(&self) -> impl Iterator<Item = (&AppKey, &AppEntry)> {
        self.apps.iter()
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
        self.apps.values().flat_map(|app| app.zones.values()).map(BTreeMap::len).sum()
    }

    /// True when no instance is registered.
    pub fn is_empty(&self) -> bool {
        self.apps.is_empty()
    }

    /// `(key, revision)` of every instance: what a new leader seeds its lease table with.
    pub fn leases(&self) -> impl Iterator<Item = (InstanceKey, u64)> + '_ {
        self.apps.values().flat_map(AppEntry::instances).map(|stored| (stored.instance.key(), stored.revision))
    }

    /// Advances the cursor of `app` (if it still exists) to `max(stamp, high_water + 1)`.
    ///
    /// Using the registry-wide high-water mark rather than the app's own previous value gives the same
    /// strict increase per app, and also survives removal and re-creation of the app.
    pub(super) fn bump_cursor(&mut self, app: &AppKey, stamp: i64) -> bool {
        let Some(entry) = self.apps.get_mut(app) else {
            return false;
        };
        let cursor = stamp.max(self.high_water.saturating_add(1));
        entry.latest_timestamp = cursor;
        self.high_water = cursor;
        true
    }

    /// Removes `key` if `may_remove` says the stored copy may go, then prunes an emptied zone and app.
    /// Returns whether something was removed.
    pub(super) fn remove_if(&mut self, key: &InstanceKey, may_remove: impl FnOnce(&Stored) -> bool) -> bool {
        let app = key.app();
        let Some(entry) = self.apps.get_mut(&app) else {
            return false;
        };
        let Some(hosts) = entry.zones.get_mut(&key.zone) else {
            return false;
        };
        if !hosts.get(&key.hostname).is_some_and(may_remove) {
            return false;
        }
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
    fn accessors_see_the_layout() {
        let (a, b) = (key("dev", "demo", "z1", "a"), key("dev", "demo", "z2", "b"));
        let reg = registry_with(&[a.clone(), b.clone()]);
        assert_eq!(reg.len(), 2);
        assert_eq!(reg.apps().count(), 1);
        assert_eq!(reg.app("dev", "demo").map(|app| app.zones.len()), Some(2));
        assert_eq!(reg.leases().collect::<Vec<_>>(), vec![(a, 1), (b, 2)]);
        assert!(reg.zone("dev", "demo", "z3").is_none());
        assert!(reg.app("prod", "demo").is_none());
    }
}
