//! The one contract between live sources and serve's core: a [`Batch`] of raw lines from one
//! source, with what must be committed alongside them (a file checkpoint) and where to answer
//! once they are recorded. Sources never parse; the core never reads files.

use serde::Serialize;
use tokio::sync::oneshot;

use crate::event::Runner;
use crate::sources::file::Checkpoint;
use crate::sources::lines::Cut;

/// Lines as one buffer: their bytes one after another, and where each ends. A batch of 20,000
/// lines is a few allocations, not 20,000, and the bytes are copied once, from the read buffer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineBuf {
    bytes: Vec<u8>,
    /// `ends[i]` is where line `i` ends in `bytes` (line `i` starts where line `i - 1` ends).
    ends: Vec<usize>,
}

impl LineBuf {
    pub fn with_capacity(lines: usize, bytes: usize) -> LineBuf {
        LineBuf {
            bytes: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(lines),
        }
    }

    /// Room for `lines` more lines of `bytes` more bytes in all: a reader that knows how much
    /// it will push sizes the buffer once, instead of growing it by doubling (each step a new
    /// allocation, a copy, and fresh pages for the kernel to zero).
    pub fn reserve(&mut self, lines: usize, bytes: usize) {
        self.bytes.reserve(bytes);
        self.ends.reserve(lines);
    }

    pub fn push(&mut self, line: &[u8]) {
        self.bytes.extend_from_slice(line);
        self.ends.push(self.bytes.len());
    }

    /// One line from two pieces (a held start and the rest).
    pub fn push_parts(&mut self, start: &[u8], rest: &[u8]) {
        self.bytes.extend_from_slice(start);
        self.bytes.extend_from_slice(rest);
        self.ends.push(self.bytes.len());
    }

    /// `other`'s lines after these.
    pub fn append(&mut self, other: LineBuf) {
        if self.ends.is_empty() {
            *self = other;
            return;
        }
        let base = self.bytes.len();
        self.bytes.extend_from_slice(&other.bytes);
        self.ends.extend(other.ends.iter().map(|e| e + base));
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Bytes of every line together.
    pub fn bytes_len(&self) -> usize {
        self.bytes.len()
    }

    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let end = *self.ends.get(i)?;
        let start = match i.checked_sub(1) {
            Some(p) => self.ends.get(p).copied().unwrap_or(0),
            None => 0,
        };
        self.bytes.get(start..end)
    }

    pub fn iter(&self) -> LineIter<'_> {
        LineIter {
            buf: self,
            at: 0,
            start: 0,
        }
    }
}

/// The lines of a [`LineBuf`], in order.
#[derive(Debug, Clone)]
pub struct LineIter<'a> {
    buf: &'a LineBuf,
    at: usize,
    start: usize,
}

impl<'a> Iterator for LineIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let end = *self.buf.ends.get(self.at)?;
        let line = self.buf.bytes.get(self.start..end)?;
        self.at += 1;
        self.start = end;
        Some(line)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.buf.ends.len() - self.at;
        (n, Some(n))
    }
}

impl ExactSizeIterator for LineIter<'_> {}

impl<'a> IntoIterator for &'a LineBuf {
    type Item = &'a [u8];
    type IntoIter = LineIter<'a>;

    fn into_iter(self) -> LineIter<'a> {
        self.iter()
    }
}

impl<L: AsRef<[u8]>> FromIterator<L> for LineBuf {
    fn from_iter<I: IntoIterator<Item = L>>(lines: I) -> LineBuf {
        let mut buf = LineBuf::default();
        for l in lines {
            buf.push(l.as_ref());
        }
        buf
    }
}

/// An over-long line a reader skipped: counted by the one rule for such lines (`overlong`:
/// `too_long` when relevant, else ignored), never parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skipped {
    /// It came before `lines[before]` (after the last line when `before == lines.len()`).
    pub before: usize,
    pub relevant: bool,
}

/// Lines from one source, and where to say they were recorded.
#[derive(Debug)]
pub struct Batch {
    /// A bounded label: `stdin`, `ndjson`, a configured file name.
    pub source: String,
    pub default_runtime: Option<Runner>,
    pub lines: LineBuf,
    /// Over-long lines among them, skipped by the reader.
    pub skipped: Vec<Skipped>,
    /// Drain entry ids, one per line when present: a retried delivery is dropped whole.
    pub entry_ids: Vec<Option<String>>,
    /// A followed file's position after these lines, committed with them.
    pub position: Option<Checkpoint>,
    /// Answered once the batch is recorded (durably, when there is a store).
    pub done: Option<oneshot::Sender<Result<BatchResult, String>>>,
    /// The source has more to read right now (a backlog): judgements wait until every source
    /// has caught up, so a replay judges on all the evidence, as `verify` does.
    pub backlog: bool,
}

impl Batch {
    pub fn new(source: &str, default_runtime: Option<Runner>, lines: LineBuf) -> Batch {
        Batch {
            source: source.to_owned(),
            default_runtime,
            lines,
            skipped: Vec::new(),
            entry_ids: Vec::new(),
            position: None,
            done: None,
            backlog: false,
        }
    }
}

impl Batch {
    /// A batch of the lines and skipped lines a [`crate::sources::lines::Cutter`] cut.
    pub fn of_cut(source: &str, default_runtime: Option<Runner>, cut: Cut) -> Batch {
        let mut b = Batch::new(source, default_runtime, cut.lines);
        b.skipped = cut
            .skipped
            .iter()
            .map(|s| Skipped {
                before: s.before,
                relevant: s.relevant,
            })
            .collect();
        b
    }

    /// No line at all, skipped or not.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty() && self.skipped.is_empty()
    }
}

/// What became of a batch's lines.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BatchResult {
    pub events: u64,
    pub duplicates: u64,
    pub ignored: u64,
    pub rejected: u64,
}

#[cfg(test)]
mod tests {
    use super::LineBuf;

    /// Every line comes back as pushed, empty ones and lines from two pieces included, in
    /// order, by index and by iteration, after an append too.
    #[test]
    fn lines_come_back_as_pushed() {
        let mut a = LineBuf::default();
        a.push(b"one\n");
        a.push(b"");
        a.push_parts(b"tw", b"o\n");
        let b: LineBuf = ["", "three", "four\n"].into_iter().collect();
        a.append(b);
        a.append(LineBuf::default());
        let want: [&[u8]; 6] = [b"one\n", b"", b"two\n", b"", b"three", b"four\n"];
        assert_eq!(a.len(), want.len());
        assert_eq!(a.iter().len(), want.len());
        assert_eq!(a.iter().collect::<Vec<_>>(), want);
        for (i, w) in want.iter().enumerate() {
            assert_eq!(a.get(i), Some(*w));
        }
        assert_eq!(a.get(want.len()), None);
        assert_eq!(a.bytes_len(), want.iter().map(|w| w.len()).sum::<usize>());
        let mut empty = LineBuf::default();
        empty.append(a.clone());
        assert_eq!(empty, a);
    }
}
