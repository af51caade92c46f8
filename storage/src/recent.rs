//! [`RecentEntries`]: the last log entries appended, kept in memory so that reading them back does not
//! decode them from sled again.
//!
//! Why: every entry is read back soon after its append, the leader's once per follower (replication)
//! and once more to apply it, a follower's once to apply it. Decoding a batch of commands from bytes each
//! time was about a tenth of a leader's CPU under a write load. An entry's payload is reference counted
//! (a clone is a count, not a copy), so handing out a clone here is cheap.
//!
//! Invariants:
//! - The entries held are consecutive, in index order, and are the log's newest: each one is exactly
//!   what sled holds under its index. The store keeps that true by calling [`RecentEntries::push`] after
//!   each successful insert, [`RecentEntries::remove_from`] before a truncation and
//!   [`RecentEntries::remove_upto`] before a purge. A push that would leave a gap (after a snapshot
//!   install, or a failed insert) first forgets everything held.
//! - Bounded by count and by encoded bytes: whatever falls out is still read, decoded, from sled.
//! - [`RecentEntries::get`] answers only a range it holds whole; anything else is sled's to answer.

use std::collections::VecDeque;

/// Most entries held. Replication and apply read within a few entries of the newest; a follower
/// further behind is served from sled. Held entries cost their decoded size (a register command is ~300
/// bytes encoded, several times that decoded), which counts against a node's memory target: 64 batches of
/// the scale benchmark, ~58 registers each, are a few MB.
pub const MAX_ENTRIES: usize = 64;
/// Most encoded bytes held (the sum of the entries' sizes in sled).
pub const MAX_BYTES: usize = 4 << 20;

/// The newest log entries, by index.
#[derive(Debug)]
pub struct RecentEntries<E> {
    entries: VecDeque<(u64, E, usize)>,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
}

impl<E: Clone> RecentEntries<E> {
    /// Empty, holding at most `max_entries` entries and `max_bytes` encoded bytes.
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        Self { entries: VecDeque::new(), bytes: 0, max_entries, max_bytes }
    }

    /// Hold `entry`, just stored in sled under `index` as `bytes` bytes.
    pub fn push(&mut self, index: u64, entry: E, bytes: usize) {
        if self.next_index() != Some(index) {
            self.clear();
        }
        self.entries.push_back((index, entry, bytes));
        self.bytes += bytes;
        while self.entries.len() > self.max_entries || (self.bytes > self.max_bytes && self.entries.len() > 1) {
            self.pop_front();
        }
    }

    /// The entries of `[start, end)`, if every one of them is held.
    pub fn get(&self, start: u64, end: u64) -> Option<Vec<E>> {
        let (first, _, _) = self.entries.front()?;
        let next = self.next_index()?;
        if start < *first || end > next || start >= end {
            return None;
        }
        let skip = usize::try_from(start - first).ok()?;
        let take = usize::try_from(end - start).ok()?;
        Some(self.entries.iter().skip(skip).take(take).map(|(_, entry, _)| entry.clone()).collect())
    }

    /// Forget the entries at `index` and above (they are about to be truncated).
    pub fn remove_from(&mut self, index: u64) {
        while self.entries.back().is_some_and(|(i, _, _)| *i >= index) {
            if let Some((_, _, bytes)) = self.entries.pop_back() {
                self.bytes -= bytes;
            }
        }
    }

    /// Forget the entries at `index` and below (they are about to be purged).
    pub fn remove_upto(&mut self, index: u64) {
        while self.entries.front().is_some_and(|(i, _, _)| *i <= index) {
            self.pop_front();
        }
    }

    fn next_index(&self) -> Option<u64> {
        self.entries.back().map(|(index, _, _)| index + 1)
    }

    fn pop_front(&mut self) {
        if let Some((_, _, bytes)) = self.entries.pop_front() {
            self.bytes -= bytes;
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl<E> RecentEntries<E> {
        fn len(&self) -> usize {
            self.entries.len()
        }

        fn is_empty(&self) -> bool {
            self.entries.is_empty()
        }
    }

    fn filled(range: std::ops::Range<u64>) -> RecentEntries<u64> {
        let mut recent = RecentEntries::new(4, 1000);
        for i in range {
            recent.push(i, i * 10, 10);
        }
        recent
    }

    #[test]
    fn answers_only_ranges_it_holds_whole() {
        let recent = filled(5..9);
        assert_eq!(recent.get(5, 9), Some(vec![50, 60, 70, 80]));
        assert_eq!(recent.get(6, 8), Some(vec![60, 70]));
        assert_eq!(recent.get(4, 6), None, "starts below the oldest held");
        assert_eq!(recent.get(8, 10), None, "reaches past the newest held");
        assert_eq!(recent.get(7, 7), None, "empty");
    }

    #[test]
    fn keeps_the_newest_within_both_bounds() {
        let recent = filled(1..11);
        assert_eq!(recent.len(), 4);
        assert_eq!(recent.get(7, 11), Some(vec![70, 80, 90, 100]));

        let mut by_bytes = RecentEntries::new(100, 25);
        for i in 1..=5 {
            by_bytes.push(i, i, 10);
        }
        assert_eq!(by_bytes.len(), 2);
        assert_eq!(by_bytes.get(4, 6), Some(vec![4, 5]));
        let mut huge = RecentEntries::new(100, 25);
        huge.push(1, 1, 1000);
        assert_eq!(huge.get(1, 2), Some(vec![1]), "the newest stays even when larger than the bound");
    }

    #[test]
    fn a_gap_forgets_everything_held() {
        let mut recent = filled(5..9);
        recent.push(20, 200, 10);
        assert_eq!(recent.get(5, 9), None);
        assert_eq!(recent.get(20, 21), Some(vec![200]));
    }

    #[test]
    fn truncation_and_purge_forget_their_ranges() {
        let mut recent = filled(5..9);
        recent.remove_from(7);
        assert_eq!(recent.get(5, 7), Some(vec![50, 60]));
        assert_eq!(recent.get(7, 8), None);
        recent.push(7, 71, 10);
        assert_eq!(recent.get(6, 8), Some(vec![60, 71]), "the rewritten entry, not the truncated one");
        recent.remove_upto(6);
        assert_eq!(recent.get(6, 7), None);
        assert_eq!(recent.get(7, 8), Some(vec![71]));
        recent.remove_upto(100);
        assert!(recent.is_empty());
    }
}
