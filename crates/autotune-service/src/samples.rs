//! The sample numbers of one prompt in one phase that have an outcome, as sorted disjoint
//! half-open ranges. Trainers number samples from their lease's `sample_base`, so a prompt's
//! samples are nearly always one range: the set stays a few numbers however many outcomes it
//! holds, which is what lets the store keep it instead of every outcome row.

use serde::{Deserialize, Serialize};

/// A set of `u32` as sorted, disjoint, non-adjacent ranges `[start, end)` (ends in `u64`, so
/// that `u32::MAX` is a member like any other).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SampleSet(Vec<(u64, u64)>);

impl SampleSet {
    /// Adds `x`; false when it was already there.
    pub fn insert(&mut self, x: u32) -> bool {
        let x = u64::from(x);
        // The first range that ends after x (end > x), if any, is the only one that can hold x.
        let i = self.0.partition_point(|&(_, end)| end <= x);
        if i < self.0.len() && self.0[i].0 <= x {
            return false;
        }
        let joins_left = i > 0 && self.0[i - 1].1 == x;
        let joins_right = i < self.0.len() && x + 1 == self.0[i].0;
        match (joins_left, joins_right) {
            (true, true) => {
                self.0[i - 1].1 = self.0[i].1;
                self.0.remove(i);
            }
            (true, false) => self.0[i - 1].1 = x + 1,
            (false, true) => self.0[i].0 = x,
            (false, false) => self.0.insert(i, (x, x + 1)),
        }
        true
    }

    /// How many members lie in `[lo, hi)`.
    pub fn count_in(&self, lo: u32, hi: u32) -> u64 {
        let (lo, hi) = (u64::from(lo), u64::from(hi));
        self.0
            .iter()
            .map(|&(s, e)| e.min(hi).saturating_sub(s.max(lo)))
            .sum()
    }

    /// One past the largest member (0 when empty), at most `u32::MAX`.
    pub fn end(&self) -> u32 {
        self.0
            .last()
            .map_or(0, |&(_, e)| u32::try_from(e).unwrap_or(u32::MAX))
    }

    /// Members.
    pub fn len(&self) -> u64 {
        self.0.iter().map(|&(s, e)| e - s).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the ranges are sorted, disjoint, non-adjacent and non-empty (a stored set is
    /// checked before it is trusted).
    pub fn is_valid(&self) -> bool {
        self.0.iter().all(|&(s, e)| s < e && e <= 1 << 32)
            && self.0.windows(2).all(|w| w[0].1 < w[1].0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    proptest! {
        /// The ranges hold exactly what a set of the same inserts holds.
        #[test]
        fn behaves_as_a_set(xs in prop::collection::vec(0u32..64, 0..200), lo in 0u32..70, hi in 0u32..70) {
            let mut s = SampleSet::default();
            let mut model = BTreeSet::new();
            for x in xs {
                prop_assert_eq!(s.insert(x), model.insert(x));
                prop_assert!(s.is_valid());
            }
            prop_assert_eq!(s.len(), model.len() as u64);
            prop_assert_eq!(s.end(), model.iter().next_back().map_or(0, |x| x + 1));
            prop_assert_eq!(s.count_in(lo, hi), model.iter().filter(|&&x| x >= lo && x < hi).count() as u64);
        }
    }

    #[test]
    fn consecutive_samples_are_one_range_and_the_edges_hold() {
        let mut s = SampleSet::default();
        for x in (0..1000).rev() {
            assert!(s.insert(x));
        }
        assert_eq!(s.0, vec![(0, 1000)]);
        assert!(s.insert(u32::MAX - 1));
        assert!(s.insert(u32::MAX));
        assert!(!s.insert(u32::MAX));
        assert!(s.is_valid());
        let bad: SampleSet = serde_json::from_str("[[3,5],[5,7]]").unwrap();
        assert!(!bad.is_valid());
    }
}
