//! Where a walk through a JSON string must stop: quotes, backslashes, control bytes and
//! non-ASCII bytes, one bit per byte, classified 64 bytes at a time.
//!
//! Why: the plain walk spends most of its bytes inside strings. Finding each string's end by
//! a loop over its bytes (or its 8-byte words) costs a branch per step that the CPU cannot
//! predict (strings end anywhere); with the stops of a whole block in one `u64`, a string's
//! end is one shift and one trailing-zeros count, and the block's classification is straight
//! arithmetic. It is simdjson's first stage cut down to the one question the walk asks, done
//! with plain `u64` arithmetic eight bytes at a time (the crate forbids `unsafe`, so no SIMD
//! intrinsics).

const ONES: u64 = 0x0101_0101_0101_0101;
const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Bytes classified at once.
const BLOCK: usize = 64;

/// Bit `k` set when byte `k` of the little-endian `x` is a stop (`"`, `\`, below 0x20 or
/// above 0x7f). Exact for every byte: each byte's low seven bits are compared on their own
/// (no sum carries out of its byte), unlike the borrow trick that may flag a byte above a
/// true match.
#[inline(always)]
fn word_stops(x: u64) -> u64 {
    let low = x & LOW7;
    // In each byte the high bit says: the low seven bits are not `"` / not `\` / at least 0x20.
    let not_quote = (low ^ (ONES * u64::from(b'"'))) + LOW7;
    let not_backslash = (low ^ (ONES * u64::from(b'\\'))) + LOW7;
    let printable = low + ONES * 0x60;
    let stop = (x | !(not_quote & not_backslash & printable)) & HIGH;
    // Gathers the eight high bits into the top byte (the partial products land on distinct
    // bits, so nothing carries), then brings them down.
    (stop >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56
}

/// The stops of the block of `b` at `at`; bytes past the end of `b` count as stops, so a
/// walk that runs off the end stops there.
fn block_stops(b: &[u8], at: usize) -> u64 {
    let mut padded = [0u8; BLOCK];
    let block = match b.get(at..at + BLOCK) {
        Some(full) => full,
        None => {
            let rest = b.get(at..).unwrap_or_default();
            padded[..rest.len()].copy_from_slice(rest);
            &padded[..]
        }
    };
    let mut stops = 0;
    for (k, w) in block.chunks_exact(8).enumerate() {
        let mut word = [0; 8];
        word.copy_from_slice(w);
        stops |= word_stops(u64::from_le_bytes(word)) << (8 * k);
    }
    stops
}

/// A forward cursor over the stops of one document, a block at a time.
#[derive(Debug)]
pub(super) struct Stops<'a> {
    b: &'a [u8],
    /// The block `bits` classifies (a multiple of [`BLOCK`]).
    base: usize,
    bits: u64,
}

impl<'a> Stops<'a> {
    pub(super) fn new(b: &'a [u8]) -> Stops<'a> {
        Stops {
            b,
            base: 0,
            bits: block_stops(b, 0),
        }
    }

    /// The first stop at or after `from`: a position in the document, or one at or past its
    /// end if there is none.
    #[inline(always)]
    pub(super) fn next(&mut self, from: usize) -> usize {
        let off = from.wrapping_sub(self.base);
        if off < BLOCK {
            let rest = self.bits >> off;
            if rest != 0 {
                return from + rest.trailing_zeros() as usize;
            }
        }
        self.next_block(from)
    }

    /// [`Stops::next`] past the current block.
    #[inline(never)]
    fn next_block(&mut self, mut from: usize) -> usize {
        loop {
            let off = from.wrapping_sub(self.base);
            if off < BLOCK {
                let rest = self.bits >> off;
                if rest != 0 {
                    return from + rest.trailing_zeros() as usize;
                }
                from = self.base + BLOCK;
            }
            if from >= self.b.len() {
                return from;
            }
            self.base = from - from % BLOCK;
            self.bits = block_stops(self.b, self.base);
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn is_stop(c: u8) -> bool {
        matches!(c, b'"' | b'\\' | 0..0x20 | 0x80..)
    }

    #[test]
    fn every_byte_value_is_classified_exactly() {
        // each byte value in every lane, beside every kind of neighbour
        for c in 0..=255u8 {
            for n in [0u8, 1, b'"', b'#', b'\\', b']', b' ', 0x7f, 0x80, 0xff] {
                for k in 0..8 {
                    let mut bytes = [n; 8];
                    bytes[k] = c;
                    let want = (0..8).fold(0, |m, j| m | u64::from(is_stop(bytes[j])) << j);
                    assert_eq!(word_stops(u64::from_le_bytes(bytes)), want, "{bytes:?}");
                }
            }
        }
    }

    proptest! {
        /// The cursor finds, from any position, the first stop a byte-by-byte scan finds.
        #[test]
        fn next_is_the_first_stop_from_anywhere(
            doc in proptest::collection::vec(
                prop_oneof![4 => 0x20u8..0x7f, 1 => Just(b'"'), 1 => Just(b'\\'), 1 => any::<u8>()],
                0..300,
            ),
            froms in proptest::collection::vec(0usize..320, 1..20),
        ) {
            let mut stops = Stops::new(&doc);
            let mut froms = froms;
            // forward, as the walk goes, and then once more from the start
            froms.sort_unstable();
            froms.push(0);
            for from in froms {
                let want = (from..doc.len()).find(|&i| is_stop(doc[i]));
                let got = stops.next(from);
                match want {
                    Some(i) => prop_assert_eq!(got, i),
                    None => prop_assert!(got >= doc.len()),
                }
            }
        }
    }
}
