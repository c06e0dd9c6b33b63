//! Cutting a live byte stream (a followed file, stdin) into lines in bounded memory: at most
//! [`LineLimit::hold`] bytes of an unfinished line are held; a longer line is skipped to its
//! newline and scanned on the way for what makes it relevant (the one rule for over-long
//! lines, `overlong`), so no fragment of it is ever handed on.

use crate::overlong::{LineLimit, LongLine};
use crate::sources::batch::LineBuf;

/// Bytes of a skipped line's end kept for the caller (a tailer checksums the bytes before its
/// checkpoint).
pub const KEEP: usize = 256;

/// What a stretch of bytes held: its whole lines, each with its newline (none at the end of a
/// finished input), in one buffer, and the over-long lines skipped among them.
#[derive(Debug, Default)]
pub struct Cut {
    pub lines: LineBuf,
    pub skipped: Vec<SkippedLine>,
}

/// An over-long line, skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedLine {
    /// It came before `lines[before]` (after the last line when `before == lines.len()`).
    pub before: usize,
    /// Its length, newline included.
    pub len: u64,
    /// Whether it is relevant (then `too_long`).
    pub relevant: bool,
    /// Its last bytes (up to [`KEEP`]).
    pub last: Vec<u8>,
}

#[derive(Debug)]
pub struct Cutter {
    limit: LineLimit,
    /// The start of an unfinished line (at most `limit.hold()` bytes).
    partial: Vec<u8>,
    /// Inside an over-long line: its scan so far and its last bytes.
    long: Option<(LongLine, Vec<u8>)>,
}

impl Cutter {
    pub fn new(limit: LineLimit) -> Cutter {
        Cutter {
            limit,
            partial: Vec::new(),
            long: None,
        }
    }

    /// Cuts the next bytes of the stream.
    pub fn push(&mut self, mut buf: &[u8], out: &mut Cut) {
        // At most the held start and these bytes become lines (a followed file's read is up
        // to 4 MiB: sized once, not grown by doubling).
        out.lines.reserve(0, self.partial.len() + buf.len());
        while !buf.is_empty() {
            let nl = memchr::memchr(b'\n', buf);
            let end = nl.map_or(buf.len(), |i| i + 1);
            let (now, rest) = buf.split_at(end);
            buf = rest;
            if let Some((scan, last)) = &mut self.long {
                scan.feed(now);
                keep_last(last, now);
                if nl.is_some() {
                    self.end_long(out);
                }
                continue;
            }
            if nl.is_some() && self.partial.len() + now.len() <= self.limit.hold() + 1 {
                out.lines.push_parts(&self.partial, now);
                self.release_partial();
                continue;
            }
            if nl.is_none() && self.partial.len() + now.len() <= self.limit.hold() {
                self.partial.extend_from_slice(now);
                continue;
            }
            // Over-long whatever follows: judged from here on, never held.
            let mut scan = self.limit.scan();
            let mut last = Vec::new();
            let held = std::mem::take(&mut self.partial);
            scan.feed(&held);
            keep_last(&mut last, &held);
            scan.feed(now);
            keep_last(&mut last, now);
            self.long = Some((scan, last));
            if nl.is_some() {
                self.end_long(out);
            }
        }
    }

    /// Empties the held start; a large one's memory goes back (a long line is rare, and
    /// every followed file has a cutter).
    fn release_partial(&mut self) {
        if self.partial.capacity() > 64 << 10 {
            self.partial = Vec::new();
        } else {
            self.partial.clear();
        }
    }

    fn end_long(&mut self, out: &mut Cut) {
        if let Some((scan, last)) = self.long.take() {
            out.skipped.push(SkippedLine {
                before: out.lines.len(),
                len: scan.bytes(),
                relevant: scan.relevant(),
                last,
            });
        }
    }

    /// The stream is over (or the file finished): an unfinished line is a line.
    pub fn finish(&mut self, out: &mut Cut) {
        if self.long.is_some() {
            self.end_long(out);
        } else if !self.partial.is_empty() {
            out.lines.push(&self.partial);
            self.release_partial();
        }
    }

    /// Bytes of the unfinished line read so far.
    pub fn pending(&self) -> u64 {
        match &self.long {
            Some((scan, _)) => scan.bytes(),
            None => self.partial.len() as u64,
        }
    }

    /// The last bytes of the unfinished line (up to [`KEEP`]).
    pub fn pending_tail(&self) -> &[u8] {
        match &self.long {
            Some((_, last)) => last,
            None => &self.partial[self.partial.len().saturating_sub(KEEP)..],
        }
    }

    /// Forgets the unfinished line (the bytes it came from are gone).
    pub fn clear(&mut self) {
        self.partial.clear();
        self.long = None;
    }
}

fn keep_last(last: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.len() >= KEEP {
        last.clear();
        last.extend_from_slice(&bytes[bytes.len() - KEEP..]);
    } else {
        last.extend_from_slice(bytes);
        let excess = last.len().saturating_sub(KEEP);
        last.drain(..excess);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    /// The default event key and one name.
    fn limit(max: usize) -> LineLimit {
        let f = |n: &str| memchr::memmem::Finder::new(n.as_bytes()).into_owned();
        LineLimit::new(max, &[f("event")], &[f("\"dispatch\"")])
    }

    /// Over-long lines are skipped whole and judged on their whole content, in any pieces;
    /// lines at the limit (with `\n` or `\r\n`) are handed on whole.
    #[test]
    fn over_long_lines_are_skipped_whole_in_any_pieces() {
        let l = limit(64);
        let at_limit = format!("{}\r\n", "a".repeat(64));
        let long_relevant = format!(
            "{} {{\"event\":\"dispatch\",\"sessionId\":\"ghost\"}}\n",
            "t".repeat(300)
        );
        let long_noise = format!("{}\n", "n".repeat(70));
        let text = format!("one\n{at_limit}{long_relevant}two\n{long_noise}three");
        for size in [1, 5, 64, 65, 66, 200, 10_000] {
            let mut c = Cutter::new(l.clone());
            let mut out = Cut::default();
            for piece in text.as_bytes().chunks(size) {
                c.push(piece, &mut out);
            }
            c.finish(&mut out);
            let mut got: Vec<String> = Vec::new();
            let mut skipped = out.skipped.iter().peekable();
            for (i, l) in out.lines.iter().enumerate() {
                while let Some(s) = skipped.next_if(|s| s.before <= i) {
                    got.push(format!("skipped {} {}", s.len, s.relevant));
                }
                got.push(String::from_utf8_lossy(l).into_owned());
            }
            for s in skipped {
                got.push(format!("skipped {} {}", s.len, s.relevant));
            }
            assert_eq!(
                got,
                [
                    "one\n".to_owned(),
                    at_limit.clone(),
                    format!("skipped {} true", long_relevant.len()),
                    "two\n".to_owned(),
                    format!("skipped {} false", long_noise.len()),
                    "three".to_owned(),
                ],
                "pieces of {size}"
            );
        }
    }
}
