//! The instances of one zone of one app, keyed by hostname: a sorted vector, not a map.
//!
//! Invariants:
//! - Entries are sorted by `instance.hostname`, hostnames are unique. The hostname is stored once, in the
//!   instance: a `BTreeMap<String, Stored>` kept a second copy as its key (a string header in the node and a
//!   heap allocation per instance).
//! - Memory is the entries plus at most a sixteenth of slack (and four slots): a B-tree's nodes are 11 slots
//!   that sorted inserts leave about half full, so a ~190-byte instance cost ~410 bytes of node. Growth is by
//!   a sixteenth (at least four slots), so the amortized cost of an insert stays constant (each entry is
//!   copied about sixteen times over the zone's growth); an insert or removal moves the zone's later entries
//!   (a memmove, a few microseconds for thousands of instances), which apply pays anyway when it copies an
//!   app shared with a snapshot.
//! - Once it holds an instance, it holds the zone's one [`ZoneKey`] (built from the first instance's shared
//!   env, appid and zone), from which it hands out the lease keys of its instances: a lease then costs the
//!   leader a 16-byte key and no allocation. The zone key is derived data: it is not serialized, is rebuilt
//!   on decode, and equality ignores it.
//! - Serialized exactly as the `BTreeMap<String, Stored>` it replaced (a map from hostname to entry, in
//!   hostname order), so snapshot bytes and older snapshots are unchanged. Decoding checks that each key is
//!   its entry's hostname: a snapshot that disagrees with itself is refused, not guessed at.

use std::fmt;
use std::sync::Arc;

use serde::de::{Error as _, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::model::{SharedKey, ZoneKey};
use super::store::Stored;

/// Hostname → stored instance, within one zone.
#[derive(Debug, Clone, Default)]
pub struct Hosts {
    /// Sorted by hostname.
    entries: Vec<Stored>,
    /// The zone's identity with shared strings; `None` only while empty.
    zone: Option<Arc<ZoneKey>>,
}

impl PartialEq for Hosts {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl Eq for Hosts {}

impl Hosts {
    fn from_sorted(entries: Vec<Stored>) -> Self {
        let zone = entries.first().map(zone_key_of);
        Self { entries, zone }
    }

    /// The lease key of `hostname`: the zone's shared key and the stored hostname (no allocation).
    pub fn shared_key(&self, hostname: &str) -> Option<SharedKey> {
        let stored = self.get(hostname)?;
        Some(SharedKey { zone: Arc::clone(self.zone.as_ref()?), hostname: Arc::clone(&stored.instance.hostname) })
    }

    /// `(lease key, revision)` of every instance, in hostname order.
    pub fn shared_keys(&self) -> impl Iterator<Item = (SharedKey, u64)> + '_ {
        self.zone.iter().flat_map(move |zone| {
            self.entries.iter().map(move |stored| {
                let key = SharedKey { zone: Arc::clone(zone), hostname: Arc::clone(&stored.instance.hostname) };
                (key, stored.revision)
            })
        })
    }

    fn position(&self, hostname: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|stored| (*stored.instance.hostname).cmp(hostname))
    }

    /// The instance registered as `hostname`.
    pub fn get(&self, hostname: &str) -> Option<&Stored> {
        self.position(hostname).ok().map(|i| &self.entries[i])
    }

    /// The instance registered as `hostname`, to change anything but its hostname.
    pub(super) fn get_mut(&mut self, hostname: &str) -> Option<&mut Stored> {
        self.position(hostname).ok().map(|i| &mut self.entries[i])
    }

    /// True when `hostname` is registered here.
    pub fn contains_key(&self, hostname: &str) -> bool {
        self.position(hostname).is_ok()
    }

    /// Stores `stored` under its hostname, replacing the entry there; returns the replaced one.
    pub(super) fn insert(&mut self, stored: Stored) -> Option<Stored> {
        match self.position(&stored.instance.hostname) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i], stored)),
            Err(i) => {
                if self.entries.len() == self.entries.capacity() {
                    self.entries.reserve_exact((self.entries.len() / 16).max(4));
                }
                if self.zone.is_none() {
                    self.zone = Some(zone_key_of(&stored));
                }
                self.entries.insert(i, stored);
                None
            }
        }
    }

    /// Removes `hostname`; returns its entry.
    pub(super) fn remove(&mut self, hostname: &str) -> Option<Stored> {
        let removed = self.position(hostname).ok().map(|i| self.entries.remove(i));
        if self.entries.capacity() > 16 && self.entries.len() < self.entries.capacity() / 2 {
            self.entries.shrink_to(self.entries.len() + self.entries.len() / 8);
        }
        removed
    }

    /// Number of instances.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True without instances (a zone never stays so in the registry).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// `(hostname, entry)` in hostname order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Stored)> {
        self.entries.iter().map(|stored| (&*stored.instance.hostname, stored))
    }

    /// The entries in hostname order.
    pub fn values(&self) -> std::slice::Iter<'_, Stored> {
        self.entries.iter()
    }

    /// The entries in hostname order, to change anything but their hostnames.
    pub(super) fn values_mut(&mut self) -> std::slice::IterMut<'_, Stored> {
        self.entries.iter_mut()
    }

    /// Slots allocated (for the memory test).
    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.entries.capacity()
    }
}

/// The zone's identity, from the shared strings of one of its instances.
fn zone_key_of(stored: &Stored) -> Arc<ZoneKey> {
    let instance = &stored.instance;
    Arc::new(ZoneKey {
        env: Arc::clone(&instance.env),
        appid: Arc::clone(&instance.appid),
        zone: Arc::clone(&instance.zone),
    })
}

impl<'a> IntoIterator for &'a Hosts {
    type Item = (&'a str, &'a Stored);
    type IntoIter = std::iter::Map<std::slice::Iter<'a, Stored>, fn(&'a Stored) -> (&'a str, &'a Stored)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|stored| (&*stored.instance.hostname, stored))
    }
}

impl Serialize for Hosts {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.entries.len()))?;
        for stored in &self.entries {
            map.serialize_entry(&stored.instance.hostname, stored)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Hosts {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HostsVisitor;

        impl<'de> Visitor<'de> for HostsVisitor {
            type Value = Hosts;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map from hostname to instance")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Hosts, A::Error> {
                // Exact capacity: a restored registry carries no growth slack.
                let mut entries = Vec::with_capacity(access.size_hint().unwrap_or(0).min(1 << 16));
                while let Some((hostname, stored)) = access.next_entry::<String, Stored>()? {
                    if *hostname != *stored.instance.hostname {
                        return Err(A::Error::custom(format!(
                            "instance {:?} stored under hostname {hostname:?}",
                            stored.instance.hostname
                        )));
                    }
                    entries.push(stored);
                }
                // A map's keys arrive sorted and unique from our own encoder; anything else is put in
                // order, a later duplicate winning as it did in a map.
                if !entries.windows(2).all(|w| w[0].instance.hostname < w[1].instance.hostname) {
                    let mut hosts = Hosts::default();
                    for stored in entries {
                        hosts.insert(stored);
                    }
                    return Ok(hosts);
                }
                entries.shrink_to_fit();
                Ok(Hosts::from_sorted(entries))
            }
        }

        deserializer.deserialize_map(HostsVisitor)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::registry::addrs::Addrs;
    use crate::registry::model::Instance;

    fn stored(hostname: &str, revision: u64) -> Stored {
        let instance = Instance {
            region: "".into(),
            zone: "z1".into(),
            env: "dev".into(),
            appid: "demo".into(),
            hostname: hostname.into(),
            addrs: Some(Addrs::from(vec![format!("http://{hostname}:80")])),
            version: "".into(),
            metadata: None,
            status: 1,
            reg_timestamp: 1,
            up_timestamp: 1,
            renew_timestamp: 1,
            dirty_timestamp: 1,
            latest_timestamp: 1,
        };
        Stored { instance, revision }
    }

    #[test]
    fn behaves_like_a_map_keyed_by_hostname() {
        let mut hosts = Hosts::default();
        let mut model = BTreeMap::new();
        // A fixed shuffle of 0..200 with repeats: inserts, replacements and removals in every position.
        for step in 0..600u64 {
            let name = format!("h{}", (step * 7919) % 200);
            if step % 5 == 4 {
                assert_eq!(hosts.remove(&name), model.remove(&name));
            } else {
                assert_eq!(hosts.insert(stored(&name, step)), model.insert(name.clone(), stored(&name, step)));
            }
            assert_eq!(hosts.len(), model.len());
        }
        assert!(hosts.iter().map(|(h, s)| (h.to_string(), s.clone())).eq(model.clone()));
        for name in (0..210).map(|i| format!("h{i}")) {
            assert_eq!(hosts.get(&name), model.get(&name));
            assert_eq!(hosts.contains_key(&name), model.contains_key(&name));
        }
        assert!(hosts.capacity() <= hosts.len() + hosts.len() / 16 + 4, "growth slack stays within a sixteenth");
    }

    #[test]
    fn same_bytes_as_a_btreemap_and_refuses_a_mismatched_key() {
        let model: BTreeMap<String, Stored> = ["b", "a", "c"].iter().map(|h| (h.to_string(), stored(h, 1))).collect();
        let mut hosts = Hosts::default();
        for h in ["c", "a", "b"] {
            hosts.insert(stored(h, 1));
        }
        let config = bincode::config::standard();
        let old = bincode::serde::encode_to_vec(&model, config).unwrap();
        assert_eq!(bincode::serde::encode_to_vec(&hosts, config).unwrap(), old);
        let (back, _): (Hosts, usize) = bincode::serde::decode_from_slice(&old, config).unwrap();
        assert_eq!(back, hosts);

        let mut lying = model.clone();
        let moved = lying.remove("a").unwrap();
        lying.insert("z".to_string(), moved);
        let bytes = bincode::serde::encode_to_vec(&lying, config).unwrap();
        let err = bincode::serde::decode_from_slice::<Hosts, _>(&bytes, config).unwrap_err();
        assert!(format!("{err:?}").contains(r#"stored under hostname \"z\""#), "{err:?}");
    }

    #[test]
    fn unsorted_input_is_put_in_order_with_the_later_duplicate_winning() {
        let json_of = |h: &str, revision: u64| serde_json::to_string(&stored(h, revision)).unwrap();
        let json = format!(r#"{{"b":{},"a":{},"b":{}}}"#, json_of("b", 1), json_of("a", 2), json_of("b", 3));
        let hosts: Hosts = serde_json::from_str(&json).unwrap();
        let order: Vec<(&str, u64)> = hosts.iter().map(|(h, s)| (h, s.revision)).collect();
        assert_eq!(order, [("a", 2), ("b", 3)]);
    }
}
