//! A chunk's newlines, one bit per byte: found once, by the reader that cuts the chunk, which
//! counts them to number the next chunk's lines; the scan then starts, ends and numbers each
//! candidate line from the same bits (`parse::scan`).
//!
//! Why here and not in either stage: each of them counted the lines itself (the reader with a
//! vectorised count to number the chunks, the scan with its own bitmap), a second pass over
//! every byte. The index's storage comes back with the chunk's buffer and is filled again
//! without being zeroed first.

use wide::u8x16;

/// Where the newlines of one chunk are: bit `j` of word `k` is byte `64 k + j`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Newlines {
    words: Vec<u64>,
    /// Newlines before word `k` (counted once, as the words are summed for the total), so
    /// a line's number is one lookup and one popcount, not a popcount of every word since
    /// the previous candidate (the target has no `popcnt` instruction: each is a dozen).
    before: Vec<u64>,
    total: u64,
}

impl Newlines {
    /// The index of `data`.
    pub fn of(data: &[u8]) -> Newlines {
        let mut n = Newlines::default();
        n.index(data);
        n
    }

    /// Indexes `data` in place of whatever this held (its storage is reused), and returns
    /// how many newlines it has.
    pub fn index(&mut self, data: &[u8]) -> u64 {
        self.words.clear();
        let mut blocks = data.chunks_exact(64);
        self.words.extend((&mut blocks).map(newline_bits));
        let rest = blocks.remainder();
        if !rest.is_empty() {
            let mut padded = [0u8; 64];
            padded[..rest.len()].copy_from_slice(rest);
            self.words.push(newline_bits(&padded));
        }
        let mut total = 0;
        self.before.clear();
        self.before.extend(self.words.iter().map(|w| {
            let before = total;
            total += u64::from(w.count_ones());
            before
        }));
        self.total = total;
        total
    }

    /// Whether this is the index of `len` bytes.
    pub fn covers(&self, len: usize) -> bool {
        self.words.len() == len.div_ceil(64)
    }

    /// Newlines in `data[from..to]`.
    pub fn newlines_in(&self, from: usize, to: usize) -> u64 {
        if from >= to {
            return 0;
        }
        self.upto(to) - self.upto(from)
    }

    /// Newlines in `data[..at]`.
    fn upto(&self, at: usize) -> u64 {
        let k = at / 64;
        match (self.words.get(k), self.before.get(k)) {
            (Some(w), Some(before)) => {
                before + u64::from((w & ((1u64 << (at % 64)) - 1)).count_ones())
            }
            _ => self.total,
        }
    }

    /// The first newline at or after `from`.
    pub fn next_newline(&self, from: usize) -> Option<usize> {
        let words = &self.words;
        let mut k = from / 64;
        let mut word = words.get(k)? & (u64::MAX << (from % 64));
        loop {
            if word != 0 {
                return Some(k * 64 + word.trailing_zeros() as usize);
            }
            k += 1;
            word = *words.get(k)?;
        }
    }

    /// The last newline in `data[from..to]`.
    pub fn last_newline(&self, from: usize, to: usize) -> Option<usize> {
        if from >= to {
            return None;
        }
        let w = &self.words;
        let a = from / 64;
        let mut k = (to - 1) / 64;
        let mut word = w[k] & (u64::MAX >> (63 - (to - 1) % 64));
        loop {
            if k == a {
                word &= u64::MAX << (from % 64);
            }
            if word != 0 {
                return Some(k * 64 + 63 - word.leading_zeros() as usize);
            }
            if k == a {
                return None;
            }
            k -= 1;
            word = w[k];
        }
    }
}

/// The newlines of a 64-byte block, by vector compares (`wide`: SSE2 on x86-64).
#[inline(always)]
fn newline_bits(block: &[u8]) -> u64 {
    let mut n = 0u64;
    for (k, lanes) in block.chunks_exact(16).enumerate() {
        let mut v = [0u8; 16];
        v.copy_from_slice(lanes);
        let eq = u8x16::new(v).cmp_eq(u8x16::splat(b'\n'));
        n |= u64::from(eq.move_mask() as u16) << (16 * k);
    }
    n
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::Newlines;

    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![3 => Just(b'x'), 1 => Just(b'\n'), 1 => any::<u8>()],
            0..400,
        )
    }

    proptest! {
        /// The bit counts agree with a walk over the bytes, across word boundaries, and an
        /// index filled again over a longer chunk's storage is the index a fresh one gives.
        #[test]
        fn newline_bits_agree_with_the_bytes(
            data in bytes(),
            before in bytes(),
            spans in proptest::collection::vec((0usize..420, 0usize..420), 1..12),
        ) {
            let mut bits = Newlines::of(&before);
            let count = bits.index(&data);
            let is_nl = |i: &usize| data[*i] == b'\n';
            prop_assert_eq!(count, (0..data.len()).filter(is_nl).count() as u64);
            prop_assert!(bits.covers(data.len()));
            prop_assert_eq!(&bits, &Newlines::of(&data));
            for (a, b) in spans {
                let (a, b) = (a.min(data.len()), b.min(data.len()));
                let naive = (a..b).filter(is_nl).count() as u64;
                prop_assert_eq!(bits.newlines_in(a, b), naive, "{}..{}", a, b);
                prop_assert_eq!(bits.last_newline(a, b), (a..b).rev().find(is_nl));
                prop_assert_eq!(bits.next_newline(a), (a..data.len()).find(is_nl));
            }
        }
    }
}
