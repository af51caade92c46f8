//! An instance's addresses, stored in one allocation.
//!
//! Invariants:
//! - The list is kept as one string of netstring-like entries, `<byte length>:<address>` one after the
//!   other, so an instance's addresses cost one small allocation instead of a vector buffer plus one string
//!   per address (for the benchmark's two addresses: 48 bytes instead of 128, and 16 bytes inline instead
//!   of 24). Any address round-trips exactly, whatever characters it holds: lengths, not separators, delimit.
//! - The encoding is private: only [`Addrs::from`] builds one, so every value decodes; a malformed one (which
//!   cannot be built) would end the iteration early rather than panic.
//! - On the wire and in snapshots it is exactly the `Vec<String>` it replaced: a sequence of strings (JSON
//!   array; the same bincode bytes).

use std::fmt;

use serde::de::{SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An ordered list of addresses (`scheme://host:port`), duplicates and empty strings kept as given.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Addrs(Box<str>);

impl Addrs {
    /// The addresses, in order.
    pub fn iter(&self) -> AddrsIter<'_> {
        AddrsIter { rest: &self.0 }
    }

    /// Number of addresses.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// True without addresses.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The first address.
    pub fn first(&self) -> Option<&str> {
        self.iter().next()
    }

    /// As owned strings.
    pub fn to_vec(&self) -> Vec<String> {
        self.iter().map(str::to_owned).collect()
    }
}

impl<S: AsRef<str>> FromIterator<S> for Addrs {
    fn from_iter<I: IntoIterator<Item = S>>(addrs: I) -> Self {
        let mut encoded = String::new();
        for addr in addrs {
            push_entry(&mut encoded, addr.as_ref());
        }
        Self(encoded.into_boxed_str())
    }
}

/// Appends one `<byte length>:<address>` entry: the encoding's only writer.
fn push_entry(encoded: &mut String, addr: &str) {
    encoded.push_str(&addr.len().to_string());
    encoded.push(':');
    encoded.push_str(addr);
}

impl From<Vec<String>> for Addrs {
    fn from(addrs: Vec<String>) -> Self {
        addrs.iter().collect()
    }
}

impl From<&[String]> for Addrs {
    fn from(addrs: &[String]) -> Self {
        addrs.iter().collect()
    }
}

/// Iterator over [`Addrs`].
#[derive(Debug, Clone)]
pub struct AddrsIter<'a> {
    rest: &'a str,
}

impl<'a> Iterator for AddrsIter<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let (len, tail) = self.rest.split_once(':')?;
        let len: usize = len.parse().ok()?;
        let addr = tail.get(..len)?;
        self.rest = tail.get(len..)?;
        Some(addr)
    }
}

impl<'a> IntoIterator for &'a Addrs {
    type Item = &'a str;
    type IntoIter = AddrsIter<'a>;

    fn into_iter(self) -> AddrsIter<'a> {
        self.iter()
    }
}

impl fmt::Debug for Addrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for Addrs {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.len()))?;
        for addr in self.iter() {
            seq.serialize_element(addr)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Addrs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SeqVisitor;

        impl<'de> Visitor<'de> for SeqVisitor {
            type Value = Addrs;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of addresses")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Addrs, A::Error> {
                let mut encoded = String::new();
                while let Some(addr) = access.next_element::<std::borrow::Cow<'de, str>>()? {
                    push_entry(&mut encoded, &addr);
                }
                Ok(Addrs(encoded.into_boxed_str()))
            }
        }

        deserializer.deserialize_seq(SeqVisitor)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn strings(addrs: &[&str]) -> Vec<String> {
        addrs.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn any_list_round_trips_exactly() {
        let lists: [&[&str]; 6] = [
            &[],
            &[""],
            &["grpc://10.0.0.1:9000", "http://10.0.0.1:8000"],
            &["12:odd", "", "a:b:c", "12:odd"],
            &["ünïcödé://ħøst:1", "new\nline", "nul\0byte"],
            &["x"; 12],
        ];
        for list in lists {
            let addrs = Addrs::from(strings(list));
            assert_eq!(addrs.iter().collect::<Vec<_>>(), list, "{list:?}");
            assert_eq!(
                (addrs.len(), addrs.is_empty(), addrs.first()),
                (list.len(), list.is_empty(), list.first().copied())
            );
            assert_eq!(addrs.to_vec(), strings(list));
        }
    }

    #[test]
    fn same_bytes_and_json_as_a_vec_of_strings() {
        let list = strings(&["grpc://10.0.0.1:9000", "3:x", ""]);
        let addrs = Some(Addrs::from(list.clone()));
        let config = bincode::config::standard();
        let old = bincode::serde::encode_to_vec(Some(&list), config).unwrap();
        assert_eq!(bincode::serde::encode_to_vec(&addrs, config).unwrap(), old);
        let (back, _): (Option<Addrs>, usize) = bincode::serde::decode_from_slice(&old, config).unwrap();
        assert_eq!(back, addrs);
        let json = serde_json::to_string(&list).unwrap();
        assert_eq!(serde_json::to_string(&addrs).unwrap(), json);
        assert_eq!(serde_json::from_str::<Option<Addrs>>(&json).unwrap(), addrs);
        assert_eq!(format!("{:?}", Addrs::from(list.clone())), format!("{list:?}"));
    }
}
