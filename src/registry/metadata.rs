//! An instance's metadata: a small string map, stored compactly.
//!
//! Invariants:
//! - Entries are sorted by key, keys are unique: iteration, JSON and bincode see exactly what a
//!   `BTreeMap<String, String>` gave (the same bytes in snapshots: serialized as a map, in key order), so the
//!   change of representation is invisible on the wire and on disk.
//! - One allocation of exactly the entries' size: a `BTreeMap` allocates a node of 11 slots for even one entry
//!   (about 540 bytes for the benchmark's three pairs, against 144 here), and there is one map per instance.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Sorted, unique key–value pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Metadata(Box<[(String, String)]>);

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

    /// As a `BTreeMap` (for callers that want one).
    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.0.iter().cloned().collect()
    }
}

impl From<BTreeMap<String, String>> for Metadata {
    fn from(map: BTreeMap<String, String>) -> Self {
        Self(map.into_iter().collect::<Vec<_>>().into_boxed_slice())
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
}
