//! overlong: the one rule for a line longer than `parse.max_line_bytes`, wherever it comes
//! from (a file `verify` reads, a followed file, stdin, an HTTP body): it is never parsed, nor
//! is any part of it; it is rejected `too_long` when it holds, anywhere, an event key and a
//! quoted event name (what makes a broken line relevant, see `Parser::looks_relevant`), else
//! ignored ([`verdict`]). Built by parse (which knows the names); fed by the readers, which
//! only hand it the bytes they skip and pass on whether the line was [`LongLine::relevant`].
//!
//! A reader never holds such a line: it keeps at most [`LineLimit::hold`] bytes of a line
//! before its newline, and past that feeds the rest to a [`LongLine`] as it skips it. So the
//! verdict does not depend on how the line was read (in one piece, across reads, across
//! chunks), and a 4 MiB line with its JSON at the end is judged on its whole content in
//! bounded memory.

use std::sync::Arc;

use memchr::memmem::Finder;

use crate::parse::Reject;

/// `too_long` for a relevant over-long line, `None` (ignored) for another.
pub fn verdict(relevant: bool) -> Option<Reject> {
    relevant.then_some(Reject::TooLong)
}

/// The line-length limit and what an over-long line is judged on; cheap to clone.
#[derive(Debug, Clone)]
pub struct LineLimit {
    max: usize,
    /// The last segment of every event path (`event`).
    keys: Arc<[Finder<'static>]>,
    /// `"name"` and `\"name\"` for every event name.
    names: Arc<[Finder<'static>]>,
    /// Bytes of one piece kept to find a needle split across two pieces.
    overlap: usize,
}

impl LineLimit {
    pub fn new(max: usize, keys: &[Finder<'static>], names: &[Finder<'static>]) -> LineLimit {
        let longest = keys
            .iter()
            .chain(names)
            .map(|f| f.needle().len())
            .max()
            .unwrap_or(0);
        LineLimit {
            max,
            keys: keys.into(),
            names: names.into(),
            overlap: longest.saturating_sub(1),
        }
    }

    /// `parse.max_line_bytes`: a longer line (its end of line not counted) is over-long.
    pub fn max_bytes(&self) -> usize {
        self.max
    }

    /// The most bytes of a line a reader holds before its newline: one more byte (not a `\r`
    /// before the `\n`) makes it over-long whatever follows.
    pub fn hold(&self) -> usize {
        self.max + 1
    }

    /// Whether a line held whole (`line`, with or without its end of line) is over-long.
    pub fn exceeded(&self, line: &[u8]) -> bool {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        line.len() > self.max
    }

    /// A scan of an over-long line, fed its bytes as they are skipped.
    pub fn scan(&self) -> LongLine {
        LongLine {
            limit: self.clone(),
            key: false,
            name: false,
            carry: Vec::new(),
            bytes: 0,
        }
    }

    /// The verdict on a line held whole that is over-long.
    pub fn judge(&self, line: &[u8]) -> Option<Reject> {
        let mut s = self.scan();
        s.feed(line);
        verdict(s.relevant())
    }
}

/// An over-long line seen piece by piece.
#[derive(Debug, Clone)]
pub struct LongLine {
    limit: LineLimit,
    key: bool,
    name: bool,
    /// The last `overlap` bytes fed.
    carry: Vec<u8>,
    bytes: u64,
}

impl LongLine {
    /// The next bytes of the line.
    pub fn feed(&mut self, piece: &[u8]) {
        self.bytes += piece.len() as u64;
        if self.key && self.name {
            return;
        }
        let overlap = self.limit.overlap;
        // A needle that starts in the last piece and ends in this one.
        self.carry
            .extend_from_slice(&piece[..piece.len().min(overlap)]);
        let (key, name) = (
            found(&self.limit.keys, &self.carry),
            found(&self.limit.names, &self.carry),
        );
        self.key |= key || found(&self.limit.keys, piece);
        self.name |= name || found(&self.limit.names, piece);
        if piece.len() >= overlap {
            self.carry.clear();
            self.carry
                .extend_from_slice(&piece[piece.len() - overlap..]);
        } else {
            let excess = self.carry.len().saturating_sub(overlap);
            self.carry.drain(..excess);
        }
    }

    /// Bytes fed so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Whether the line holds an event key and a quoted event name.
    pub fn relevant(&self) -> bool {
        self.key && self.name
    }
}

fn found(needles: &[Finder<'static>], hay: &[u8]) -> bool {
    needles.iter().any(|f| f.find(hay).is_some())
}

#[cfg(test)]
mod tests {
    use crate::parse::ParseConfig;
    use crate::parse::{Parser, Reject};

    /// Whatever the pieces, the verdict is the whole line's.
    #[test]
    fn the_verdict_is_the_whole_lines_whatever_the_pieces() {
        let p = Parser::new(ParseConfig::default());
        let limit = p.line_limit();
        let mut relevant = vec![b'x'; 5000];
        relevant.extend_from_slice(br#"{"event":"dispatch","sessionId":"s"}"#);
        let noise = vec![b'y'; 5000];
        let key_only = [vec![b'z'; 3000], br#"{"event":1}"#.to_vec()].concat();
        for (line, want) in [
            (&relevant, Some(Reject::TooLong)),
            (&noise, None),
            (&key_only, None),
        ] {
            assert_eq!(limit.judge(line), want);
            for size in [1, 2, 3, 7, 64, 4096] {
                let mut s = limit.scan();
                for piece in line.chunks(size) {
                    s.feed(piece);
                }
                assert_eq!(super::verdict(s.relevant()), want, "pieces of {size}");
                assert_eq!(s.bytes(), line.len() as u64);
            }
        }
    }
}
