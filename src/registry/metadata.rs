//! An instance's metadata: a small string map, stored compactly.
//!
//! Invariants:
//! - Entries are sorted by key, keys are unique: iteration, JSON and bincode see exactly what a
//!   `BTreeMap<String, String>` gave (the same bytes in snapshots: serialized as a map, in key order), so the
//!   change of representation is invisible on the wire and on disk.
//! - One allocation of exactly the entries' size: a `BTreeMap` allocates a node of 11 slots for even one entry
//!   (about 540 bytes for the benchmark's three pairs, against 144 here), and there is one map per instance.
//! - Immutable and shared: a clone is a reference count. Instances of one zone that carry equal metadata
//!   (the common case: one deployment, one config) share one copy; apply shares it at register
//!   ([`Metadata::share_from`]) and a restored registry is compacted the same way. Sharing is invisible:
//!   equality and serialization look at the pairs only.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Sorted, unique key–value pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Metadata(Arc<[(String, String)]>);

impl Metadata {
    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(key)).ok().map(|i| self.0[i].1.as_str())
    }

    /// The pairs, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True without pairs.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// These pairs with `changes` merged in (a changed key takes the new value).
    pub fn merged(&self, changes: &BTreeMap<String, String>) -> Self {
        let mut all: BTreeMap<String, String> = self.0.iter().cloned().collect();
        all.extend(changes.iter().map(|(k, v)| (k.clone(), v.clone())));
        Self::from(all)
    }

    /// `other`'s copy when it holds the same pairs, so the two share one allocation; else `self`.
    pub fn share_from(self, other: Option<&Metadata>) -> Self {
        match other {
            Some(other) if *other == self => other.clone(),
            _ => self,
        }
    }

    /// True when both are the same copy (not only equal).
    pub fn is_shared_with(&self, other: &Metadata) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// As a `BTreeMap` (for callers that want one).
    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.0.iter().cloned().collect()
    }
}

impl From<BTreeMap<String, String>> for Metadata {
    fn from(map: BTreeMap<String, String>) -> Self {
        Self(map.into_iter().collect::<Vec<_>>().into())
    }
}

impl Serialize for Metadata {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0.iter() {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor;

        impl<'de> Visitor<'de> for MapVisitor {
            type Value = Metadata;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of strings")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Metadata, A::Error> {
                // Through a BTreeMap: sorted and unique whatever the input's order (a later duplicate wins,
                // as it did when this field was a BTreeMap).
                let mut map = BTreeMap::new();
                while let Some((k, v)) = access.next_entry::<String, String>()? {
                    map.insert(k, v);
                }
                Ok(Metadata::from(map))
            }
        }

        deserializer.deserialize_map(MapVisitor)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn same_bytes_as_a_btreemap_in_bincode_and_json() {
        let pairs = map(&[("weight", "10"), ("cluster", "c1"), ("color", "blue")]);
        let compact = Some(Metadata::from(pairs.clone()));
        let config = bincode::config::standard();
        let old = bincode::serde::encode_to_vec(Some(&pairs), config).unwrap();
        assert_eq!(bincode::serde::encode_to_vec(&compact, config).unwrap(), old);
        let (back, _): (Option<Metadata>, usize) = bincode::serde::decode_from_slice(&old, config).unwrap();
        assert_eq!(back, compact);
        assert_eq!(serde_json::to_string(&compact).unwrap(), serde_json::to_string(&pairs).unwrap());
        let unsorted: Metadata = serde_json::from_str(r#"{"b":"1","a":"2","b":"3"}"#).unwrap();
        assert_eq!(unsorted.iter().collect::<Vec<_>>(), [("a", "2"), ("b", "3")]);
    }

    #[test]
    fn lookups_and_merges_keep_the_order() {
        let m = Metadata::from(map(&[("a", "1"), ("c", "3")]));
        assert_eq!((m.get("a"), m.get("b"), m.get("c")), (Some("1"), None, Some("3")));
        let merged = m.merged(&map(&[("b", "2"), ("c", "4")]));
        assert_eq!(merged.iter().collect::<Vec<_>>(), [("a", "1"), ("b", "2"), ("c", "4")]);
        assert_eq!(merged.len(), 3);
        assert_eq!(merged.to_map(), map(&[("a", "1"), ("b", "2"), ("c", "4")]));
    }

    #[test]
    fn equal_metadata_is_shared_and_different_is_not() {
        let first = Metadata::from(map(&[("a", "1")]));
        let same = Metadata::from(map(&[("a", "1")])).share_from(Some(&first));
        assert!(same.is_shared_with(&first));
        let other = Metadata::from(map(&[("a", "2")])).share_from(Some(&first));
        assert!(!other.is_shared_with(&first));
        assert_eq!(other.get("a"), Some("2"));
    }
}
