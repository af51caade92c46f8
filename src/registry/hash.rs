//! FNV-1a (64 bit): a seedless, platform-independent hash.
//!
//! Used where a hash must be identical on every node and across restarts (state digests, the spreading
//! of lease deadlines), which rules out std's randomly seeded `RandomState`. Not collision resistant
//! against an adversary; it only has to tell replicas apart and scatter keys.

/// Incremental FNV-1a hasher with length-prefixed strings, so that `("ab", "c")` and `("a", "bc")` differ.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fnv64(u64);

impl Fnv64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    /// A hasher in its initial state.
    pub(crate) fn new() -> Self {
        Self(Self::OFFSET)
    }

    /// Feeds raw bytes.
    pub(crate) fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    /// Feeds an integer in little-endian order.
    pub(crate) fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }

    /// Feeds a signed integer in little-endian order.
    pub(crate) fn i64(&mut self, v: i64) {
        self.bytes(&v.to_le_bytes());
    }

    /// Feeds a collection length or count.
    pub(crate) fn len(&mut self, n: usize) {
        self.u64(n as u64);
    }

    /// Feeds a string, prefixed by its length.
    pub(crate) fn str(&mut self, s: &str) {
        self.len(s.len());
        self.bytes(s.as_bytes());
    }

    /// The hash of everything fed so far.
    pub(crate) fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_reference_vectors() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(Fnv64::new().finish(), 0xcbf2_9ce4_8422_2325);
        let mut h = Fnv64::new();
        h.bytes(b"a");
        assert_eq!(h.finish(), 0xaf63_dc4c_8601_ec8c);
        let mut h = Fnv64::new();
        h.bytes(b"foobar");
        assert_eq!(h.finish(), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn strings_are_length_prefixed() {
        let (mut a, mut b) = (Fnv64::new(), Fnv64::new());
        a.str("ab");
        a.str("c");
        b.str("a");
        b.str("bc");
        assert_ne!(a.finish(), b.finish());
    }
}
