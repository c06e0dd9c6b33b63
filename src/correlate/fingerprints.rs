//! The fingerprints settling leaves behind, and the one question asked of them: was a session
//! created again after a session of the same fingerprint had settled (late evidence)?
//!
//! Why not a hash set: asking it at every creation and adding to it at every settle were two
//! cache misses per session (a set of a million fingerprints is 18 MiB, and the reader streams
//! the input through the caches), 6 % of `verify`'s samples in `perf`. Here both are appends,
//! and the question is answered for a batch at once: the creations since the last answer are
//! sorted and merged against the settled fingerprints, which are kept sorted (8 bytes each,
//! read in order). A batch is answered once it holds a quarter as many creations as there are
//! settled fingerprints, so each fingerprint is merged a bounded number of times, and whenever
//! the caller asks ([`Fingerprints::late`]).

/// The fewest creations a batch waits for (a smaller one would sort and merge too often while
/// few sessions have settled).
const MIN_BATCH: usize = 1 << 14;

#[derive(Debug)]
pub(super) struct Fingerprints {
    /// Every fingerprint settled before the last answered batch, sorted.
    old: Vec<u64>,
    /// The fingerprints settled since, in the order they settled.
    recent: Vec<u64>,
    /// The creations since: a fingerprint and how many of `recent` had settled before it.
    created: Vec<(u64, u32)>,
    /// A creation followed a settle of its fingerprint.
    late: bool,
    min_batch: usize,
}

impl Default for Fingerprints {
    fn default() -> Fingerprints {
        Fingerprints::with_batch(MIN_BATCH)
    }
}

impl Fingerprints {
    fn with_batch(min_batch: usize) -> Fingerprints {
        Fingerprints {
            old: Vec::new(),
            recent: Vec::new(),
            created: Vec::new(),
            late: false,
            min_batch,
        }
    }

    /// A session of fingerprint `fp` settled.
    pub(super) fn settled(&mut self, fp: u64) {
        if self.late {
            return;
        }
        self.recent.push(fp);
        if self.recent.len() >= self.batch() {
            self.answer();
        }
    }

    /// A session of fingerprint `fp` was created.
    pub(super) fn created(&mut self, fp: u64) {
        if self.late {
            return;
        }
        // `recent` is answered before it could outgrow a `u32`.
        let before = u32::try_from(self.recent.len()).unwrap_or(u32::MAX);
        self.created.push((fp, before));
        if self.created.len() >= self.batch() {
            self.answer();
        }
    }

    /// Whether a session was created after a session of its fingerprint settled, up to now.
    pub(super) fn late(&mut self) -> bool {
        self.answer();
        self.late
    }

    /// [`Fingerprints::late`] as of the last answered batch: may be `false` while the answer
    /// is `true`, never the other way.
    pub(super) fn late_so_far(&self) -> bool {
        self.late
    }

    fn batch(&self) -> usize {
        self.min_batch.max(self.old.len() / 4)
    }

    /// Answers the creations since the last batch, and merges the fingerprints settled since
    /// into `old`.
    fn answer(&mut self) {
        if self.late {
            return;
        }
        let mut recent: Vec<(u64, u32)> =
            (0u32..).zip(&self.recent).map(|(i, &f)| (f, i)).collect();
        // By fingerprint, then by when it settled: the first of a fingerprint is its earliest.
        recent.sort_unstable();
        if !self.created.is_empty() {
            self.created.sort_unstable_by_key(|&(f, _)| f);
            let (mut o, mut r) = (0, 0);
            for &(f, before) in &self.created {
                while self.old.get(o).is_some_and(|&x| x < f) {
                    o += 1;
                }
                while recent.get(r).is_some_and(|&(x, _)| x < f) {
                    r += 1;
                }
                let settled_old = self.old.get(o) == Some(&f);
                let settled_recent = recent.get(r).is_some_and(|&(x, i)| x == f && i < before);
                if settled_old || settled_recent {
                    self.late = true;
                    break;
                }
            }
            self.created.clear();
        }
        self.recent.clear();
        if self.late {
            // Nothing more can change the answer.
            self.old = Vec::new();
            return;
        }
        // Merge from the back, in place.
        let (n, m) = (self.old.len(), recent.len());
        self.old.resize(n + m, 0);
        let (mut i, mut j) = (n, m);
        while j > 0 {
            let k = i + j - 1;
            if i > 0 && self.old[i - 1] > recent[j - 1].0 {
                self.old[k] = self.old[i - 1];
                i -= 1;
            } else {
                self.old[k] = recent[j - 1].0;
                j -= 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::Fingerprints;

    /// The rule, by a set of everything settled so far asked at every creation.
    #[derive(Default)]
    struct Model {
        settled: HashSet<u64>,
        late: bool,
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whatever the order of settles and creations and wherever the batches fall, the
        /// answer is the set's: late exactly when a creation followed a settle of its
        /// fingerprint, and never reported early.
        #[test]
        fn answers_as_a_set_asked_at_every_creation(
            ops in proptest::collection::vec((any::<bool>(), 0u64..24), 0..200),
            min_batch in 1usize..9,
            ask_every in 1usize..40,
        ) {
            let mut f = Fingerprints::with_batch(min_batch);
            let mut model = Model::default();
            for (n, (settle, fp)) in ops.into_iter().enumerate() {
                if settle {
                    f.settled(fp);
                    model.settled.insert(fp);
                } else {
                    f.created(fp);
                    model.late |= model.settled.contains(&fp);
                }
                prop_assert!(!f.late_so_far() || model.late);
                if n % ask_every == 0 {
                    prop_assert_eq!(f.late(), model.late);
                }
            }
            prop_assert_eq!(f.late(), model.late);
        }
    }

    #[test]
    fn a_creation_before_the_settle_is_not_late() {
        let mut f = Fingerprints::with_batch(4);
        // created, then settled: the session's own life
        for fp in [1, 2, 3] {
            f.created(fp);
        }
        for fp in [3, 1, 2] {
            f.settled(fp);
        }
        f.created(4);
        assert!(!f.late());
        f.settled(4);
        // 4 settled since the last answer, then created again
        f.created(5);
        f.created(4);
        assert!(f.late());
        let mut f = Fingerprints::with_batch(4);
        f.settled(2);
        assert!(!f.late());
        f.created(2);
        assert!(f.late());
    }
}
