//! The run's seeded randomness: the nemesis schedule and every workload choice derive from `--seed`, so a
//! failing schedule can be replayed exactly.
//!
//! Invariants:
//! - A stream is ChaCha8 (`rand_chacha`): portable and fixed for a given seed across platforms and
//!   `rand` releases, unlike `StdRng`, whose algorithm may change.
//! - [`Rng::fork`] does not advance its parent: forks taken in any order for the same labels are the same
//!   streams, and forks of forks differ from forks of the root (`fork(1).fork(2) != fork(2).fork(1)`).

use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng as _, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A seeded random stream.
#[derive(Debug, Clone)]
pub struct Rng(ChaCha8Rng);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(ChaCha8Rng::seed_from_u64(seed))
    }

    /// An independent stream for `label` (e.g. one per workload task), still determined by the seed: the
    /// seed of the new stream is the first word of this stream's ChaCha stream number `label`.
    pub fn fork(&self, label: u64) -> Self {
        let mut side = self.0.clone();
        side.set_stream(label);
        Self::new(side.next_u64())
    }

    /// The next 64 random bits.
    #[cfg(test)]
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `[lo, hi]` (inclusive); `lo` when `hi < lo`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        self.0.random_range(lo..=hi)
    }

    /// True with probability `p` (clamped to 0.0 ..= 1.0).
    pub fn chance(&mut self, p: f64) -> bool {
        self.0.random_bool(if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) })
    }

    /// A uniformly chosen element; `None` for an empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        items.choose(&mut self.0)
    }

    /// Shuffle in place.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        items.shuffle(&mut self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_forks_differ() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let xs: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..5).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        let root = Rng::new(7);
        let (mut f1, mut f2) = (root.fork(1), root.fork(2));
        assert_ne!(f1.next_u64(), f2.next_u64());
        assert_eq!(root.fork(1).next_u64(), Rng::new(7).fork(1).next_u64(), "a fork does not advance its parent");
        assert_ne!(root.fork(1).fork(2).next_u64(), root.fork(2).fork(1).next_u64());
        assert_ne!(root.fork(1).fork(2).next_u64(), root.fork(2).next_u64());
        assert_ne!(Rng::new(8).fork(1).next_u64(), root.fork(1).next_u64(), "forks follow the seed");
    }

    #[test]
    fn bounded_helpers_stay_in_range() {
        let mut r = Rng::new(1);
        for _ in 0..1000 {
            let x = r.range(5, 9);
            assert!((5..=9).contains(&x));
        }
        assert_eq!(r.range(4, 2), 4);
        assert!(r.pick::<u8>(&[]).is_none());
        assert!(!r.chance(0.0) && r.chance(1.0) && !r.chance(f64::NAN) && r.chance(7.0));
    }
}
