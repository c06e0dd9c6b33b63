//! Where a walk through a JSON string must stop: quotes, backslashes, control bytes and
//! non-ASCII bytes, one bit per byte, classified 64 bytes at a time.
//!
//! Why: the plain walk spends most of its bytes inside strings. Finding each string's end by
//! a loop over its bytes (or its 8-byte words) costs a branch per step that the CPU cannot
//! predict (strings end anywhere); with the stops of a whole block in one `u64`, a string's
//! end is one shift and one trailing-zeros count, and the block's classification is straight
//! vector arithmetic: three compares and a move-mask per 16 bytes. It is simdjson's first
//! stage cut down to the one question the walk asks. The crate denies `unsafe`, so the
//! vectors are `wide`'s (SSE2 on x86-64, NEON or plain arrays elsewhere).

use wide::{CmpEq, CmpLt, i8x16};

/// Bytes classified at once.
const BLOCK: usize = 64;

/// Bit `k` set when byte `k` of `lanes` (16 bytes) is a stop: `"`, `\`, or below 0x20 as a
/// signed byte, which is every control byte and every byte above 0x7f.
#[inline(always)]
fn lane_stops(lanes: &[u8]) -> u64 {
    let mut v = [0i8; 16];
    for (d, s) in v.iter_mut().zip(lanes) {
        *d = i8::from_ne_bytes([*s]);
    }
    let v = i8x16::new(v);
    let stop = v.cmp_eq(i8x16::splat(b'"' as i8))
        | v.cmp_eq(i8x16::splat(b'\\' as i8))
        | v.cmp_lt(i8x16::splat(0x20));
    u64::from(stop.move_mask() as u16)
}

/// The stops of the block of `b` at `at`; bytes past the end of `b` count as stops, so a
/// walk that runs off the end stops there.
#[inline(always)]
fn block_stops(b: &[u8], at: usize) -> u64 {
    if let Some(full) = b.get(at..at + BLOCK) {
        return classify(full);
    }
    let rest = b.len().saturating_sub(at);
    if rest > 0 && b.len() >= BLOCK {
        // The last block of a line: the document's last 64 bytes, classified in place and
        // shifted so that bit 0 is byte `at` (no copy into a zeroed block: every line ends
        // in one, and the copy was a call to `memcpy`).
        let last = classify(&b[b.len() - BLOCK..]);
        return last >> (BLOCK - rest) | u64::MAX << rest;
    }
    let mut padded = [0u8; BLOCK];
    let rest = b.get(at..).unwrap_or_default();
    padded[..rest.len()].copy_from_slice(rest);
    classify(&padded)
}

/// The stops of 64 bytes.
#[inline(always)]
fn classify(block: &[u8]) -> u64 {
    let mut stops = 0;
    for (k, lanes) in block.chunks_exact(16).enumerate() {
        stops |= lane_stops(lanes) << (16 * k);
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
                for k in 0..16 {
                    let mut bytes = [n; 16];
                    bytes[k] = c;
                    let want = (0..16).fold(0, |m, j| m | u64::from(is_stop(bytes[j])) << j);
                    assert_eq!(lane_stops(&bytes), want, "{bytes:?}");
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
