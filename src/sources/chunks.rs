//! Cutting a byte stream into chunks of whole lines without ever holding a whole file, or a
//! whole overlong line, in memory.

use std::io::{self, Read};

use crate::newlines::Newlines;
use crate::overlong::{LineLimit, LongLine};

/// Target chunk size: large enough that per-chunk overhead vanishes, small enough that the
/// recycled buffers stay in cache (4 MiB chunks made the reader copy into DRAM: 4× its CPU).
const CHUNK: usize = 1 << 20;

/// A line longer than the chunk buffer, skipped and scanned on the way for what makes it
/// relevant (`overlong`: then it is `too_long`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlong {
    pub line: u64,
    pub relevant: bool,
}

/// Whole lines of one input. `data` ends with `\n`, except for the last chunk of an input
/// whose last line has none.
#[derive(Debug, Default)]
pub struct Chunk {
    pub input: u16,
    /// 1-based number of the first line in `data`.
    pub first_line: u64,
    pub data: Vec<u8>,
    /// Where `data`'s newlines are: found once, here, to number the lines of the chunks
    /// after it, and read again by the scan of this one.
    pub newlines: Newlines,
    /// Lines too long to buffer, which sit before `data`'s first line.
    pub overlong: Vec<Overlong>,
}

/// What a consumed chunk hands back for reuse: its buffer and its newline index.
pub type Spent = (Vec<u8>, Newlines);

#[derive(Debug)]
pub struct ChunkReader<R> {
    inner: R,
    input: u16,
    capacity: usize,
    /// Bytes read but not yet handed out: the start of an unfinished line.
    carry: Vec<u8>,
    next_line: u64,
    /// Inside an overlong line (its number and its scan so far): skip to its newline.
    skipping: Option<(u64, LongLine)>,
    limit: LineLimit,
    overlong: Vec<Overlong>,
    eof: bool,
    /// Buffers of consumed chunks, handed back for reuse: a fresh 4 MiB buffer per chunk
    /// made the kernel zero a new mapping every time (a fifth of verify's CPU time).
    recycled: Option<crossbeam_channel::Receiver<Spent>>,
    /// A consumed chunk's newline index, for the next chunk (filled again, not zeroed).
    spare: Option<Newlines>,
}

impl<R: Read> ChunkReader<R> {
    /// Lines up to `limit`'s must arrive whole; longer ones are judged as they are skipped.
    pub fn new(inner: R, input: u16, limit: &LineLimit) -> ChunkReader<R> {
        ChunkReader {
            inner,
            input,
            capacity: CHUNK.max(limit.hold().saturating_add(1)),
            carry: Vec::new(),
            next_line: 1,
            skipping: None,
            limit: limit.clone(),
            overlong: Vec::new(),
            eof: false,
            recycled: None,
            spare: None,
        }
    }

    /// Takes buffers (and newline indexes) for new chunks from `pool` when it has one.
    pub fn with_recycled(mut self, pool: crossbeam_channel::Receiver<Spent>) -> Self {
        self.recycled = Some(pool);
        self
    }

    /// A buffer for the next chunk, starting with the carried bytes, and how many they are.
    /// A recycled buffer keeps its old bytes after those: they are overwritten by the next
    /// read, where clearing it made `resize` zero the whole chunk again each time (a memset
    /// of every byte read, 4 % of verify's instructions).
    fn buffer(&mut self) -> (Vec<u8>, usize) {
        let mut buf = match self.recycled.as_ref().and_then(|p| p.try_recv().ok()) {
            Some((b, newlines)) => {
                self.spare.get_or_insert(newlines);
                b
            }
            None => Vec::with_capacity(self.capacity),
        };
        let filled = self.carry.len();
        if buf.len() < filled {
            buf.resize(filled, 0);
        }
        buf[..filled].copy_from_slice(&self.carry);
        self.carry.clear();
        (buf, filled)
    }

    /// The next chunk, or `None` at the end of the input.
    pub fn next_chunk(&mut self) -> io::Result<Option<Chunk>> {
        loop {
            if self.eof {
                // An overlong last line without a newline.
                if let Some((line, scan)) = self.skipping.take() {
                    self.overlong.push(Overlong {
                        line,
                        relevant: scan.relevant(),
                    });
                    self.next_line += 1;
                }
                if self.carry.is_empty() && self.overlong.is_empty() {
                    return Ok(None);
                }
                let (mut data, filled) = self.buffer();
                data.truncate(filled);
                return Ok(Some(self.emit(data)));
            }
            let (mut buf, filled) = self.buffer();
            buf.resize(self.capacity, 0);
            let n = read_full(&mut self.inner, &mut buf[filled..])?;
            buf.truncate(filled + n);
            if n == 0 {
                self.eof = true;
                self.carry.extend_from_slice(&buf);
                continue;
            }
            if let Some((line, scan)) = &mut self.skipping {
                match memchr::memchr(b'\n', &buf[filled..]) {
                    Some(i) => {
                        scan.feed(&buf[filled..filled + i + 1]);
                        self.overlong.push(Overlong {
                            line: *line,
                            relevant: scan.relevant(),
                        });
                        self.skipping = None;
                        self.next_line += 1;
                        buf.drain(..filled + i + 1);
                    }
                    None => {
                        scan.feed(&buf[filled..]);
                        buf.clear();
                        continue;
                    }
                }
            }
            match memchr::memrchr(b'\n', &buf) {
                Some(i) => {
                    self.carry.extend_from_slice(&buf[i + 1..]);
                    buf.truncate(i + 1);
                    return Ok(Some(self.emit(buf)));
                }
                None if buf.len() >= self.capacity => {
                    // One line fills the whole buffer: judge it as it is skipped.
                    let mut scan = self.limit.scan();
                    scan.feed(&buf);
                    self.skipping = Some((self.next_line, scan));
                }
                None => self.carry.extend_from_slice(&buf),
            }
        }
    }

    fn emit(&mut self, data: Vec<u8>) -> Chunk {
        let mut newlines = self.spare.take().unwrap_or_default();
        let lines = newlines.index(&data) + u64::from(!data.is_empty() && !data.ends_with(b"\n"));
        let chunk = Chunk {
            input: self.input,
            first_line: self.next_line,
            data,
            newlines,
            overlong: std::mem::take(&mut self.overlong),
        };
        self.next_line += lines;
        chunk
    }
}

/// Reads until `buf` is full or the stream ends (a pipe or a decoder returns short reads).
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads everything back as (line number, line) pairs plus overlong line numbers.
    fn lines(input: &[u8], capacity: usize) -> (Vec<(u64, String)>, Vec<u64>) {
        let limit = crate::overlong::LineLimit::new(1 << 20, &[], &[]);
        let mut r = ChunkReader::new(input, 0, &limit);
        r.capacity = capacity;
        let (mut out, mut long) = (Vec::new(), Vec::new());
        while let Some(c) = r.next_chunk().unwrap() {
            long.extend(c.overlong.iter().map(|o| o.line));
            for (n, line) in (c.first_line..).zip(c.data.split_inclusive(|&b| b == b'\n')) {
                out.push((n, String::from_utf8_lossy(line).into_owned()));
            }
        }
        (out, long)
    }

    #[test]
    fn whole_lines_with_numbers_across_chunk_boundaries() {
        let text = b"a\nbb\nccc\ndddd\ne";
        for cap in [8, 9, 16, 64] {
            let (got, long) = lines(text, cap);
            let want: Vec<(u64, String)> = vec![
                (1, "a\n".into()),
                (2, "bb\n".into()),
                (3, "ccc\n".into()),
                (4, "dddd\n".into()),
                (5, "e".into()),
            ];
            assert_eq!(got, want, "capacity {cap}");
            assert!(long.is_empty());
        }
    }

    #[test]
    fn overlong_lines_are_skipped_and_numbered() {
        let mut text = b"ok\n".to_vec();
        text.extend(vec![b'x'; 100]);
        text.extend(b"\nafter\n");
        text.extend(vec![b'y'; 50]);
        let (got, long) = lines(&text, 16);
        assert_eq!(got, vec![(1, "ok\n".into()), (3, "after\n".into())]);
        assert_eq!(long, vec![2, 4]);
    }

    /// Recycled buffers keep stale bytes past their data: none of them may reach a chunk,
    /// which must be the chunk a fresh buffer gives.
    #[test]
    fn recycled_buffers_give_the_same_chunks() {
        let mut text = Vec::new();
        for i in 0..40 {
            text.extend(format!("line {i} {}\n", "x".repeat(i % 13)).as_bytes());
        }
        text.extend(b"no newline at the end");
        let limit = crate::overlong::LineLimit::new(1 << 20, &[], &[]);
        let read = |cap: usize, recycle: bool| {
            let (tx, rx) = crossbeam_channel::bounded(4);
            let mut r = ChunkReader::new(&text[..], 0, &limit);
            if recycle {
                for n in [200, 20, 8] {
                    let junk = vec![b'#'; n];
                    let newlines = Newlines::of(b"\n\n\n\n");
                    tx.send((junk, newlines)).unwrap();
                }
                r = r.with_recycled(rx);
            }
            r.capacity = cap;
            let mut got = Vec::new();
            while let Some(c) = r.next_chunk().unwrap() {
                assert_eq!(c.newlines, Newlines::of(&c.data));
                got.push((c.first_line, c.data.clone(), c.overlong.clone()));
                // The buffer comes back with junk after its data, as a longer chunk leaves,
                // and its index with the newlines of that data.
                let mut back = c.data;
                back.extend_from_slice(b"JUNK\nJUNK");
                let newlines = Newlines::of(&back);
                let _ = tx.try_send((back, newlines));
            }
            got
        };
        for cap in [16, 24, 64] {
            assert_eq!(read(cap, true), read(cap, false), "capacity {cap}");
        }
    }

    #[test]
    fn empty_input() {
        assert_eq!(lines(b"", 16), (vec![], vec![]));
    }
}
