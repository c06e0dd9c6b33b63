//! One open file, read as whole lines from a checkpoint on. The file is read through its own
//! descriptor (positioned reads), so a rename, a delete or a new file at its path never
//! changes what this reads; whether the path still names it is the follower's business.
//!
//! Before each read it checks that the bytes it has verified are still there: the size is not
//! below what was read, the head is the same, and the bytes just before the checkpoint are the
//! same. Anything else is a truncation (in place, or truncated and rewritten with the same
//! head), reported to the follower, which decides where the lost bytes might still be.
//!
//! A partial last line is held until its newline; an over-long line is skipped to its
//! newline and judged on the way by the one rule `verify` uses too (`overlong`): it is
//! handed on once as a [`Skipped`] line, never as bytes, so no fragment of it is ever parsed.
//! The checkpoint stays at its start until its end is read, so a restart judges it again from
//! its start, and it is still counted once.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Checkpoint, FileId};
use crate::overlong::LineLimit;
use crate::sources::batch::{LineBuf, Skipped};
use crate::sources::lines::{Cut, Cutter, SkippedLine};

/// Bytes of a file's head that identify it.
pub const HEAD: usize = 256;
/// Bytes before a checkpoint that its checksum covers.
pub const TAIL: usize = 256;

/// What a read found.
#[derive(Debug, Default)]
pub struct Read {
    pub lines: LineBuf,
    /// Over-long lines skipped among them.
    pub skipped: Vec<Skipped>,
    /// Bytes read from the file.
    pub bytes: u64,
    /// The read stopped at the limit, or what it read was not taken (the file was truncated
    /// meanwhile): there is more to do right now.
    pub more: bool,
    /// The file has no name left (deleted); with `!more`, it has been read to its end.
    pub deleted: bool,
}

/// The file no longer holds the bytes this tailer verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncation {
    /// Lines before this were handed out.
    pub committed: u64,
    /// The file's size when last seen intact: bytes `[read, seen)` were never read.
    pub seen: u64,
    /// Bytes read (beyond `committed`: a held partial line).
    pub read: u64,
}

#[derive(Debug)]
pub struct Tailer {
    file: File,
    id: FileId,
    born: u64,
    path: PathBuf,
    head: Vec<u8>,
    /// Bytes read from the file.
    read: u64,
    /// Every line before this was handed out (or, resumed from an older checkpoint, it is
    /// inside an over-long line: `skipping`).
    committed: u64,
    /// The unfinished line after `committed`.
    cutter: Cutter,
    /// Resumed inside an over-long line (a checkpoint taken before over-long lines were judged
    /// whole): its rest is skipped unjudged, it was handed on already.
    skipping: bool,
    /// The last bytes before `committed` (the last `TAIL` of them count; up to twice that is
    /// kept so that trimming is rare).
    recent: Vec<u8>,
    /// Size at the last read: bytes past `read` known to exist.
    seen: u64,
    /// When the file last grew (or was opened).
    pub(super) last_growth: Duration,
    /// Since when no scanned path names this file (renamed away, deleted, replaced).
    pub(super) unnamed_since: Option<Duration>,
    /// The pattern it is followed for (an index into the follower's patterns).
    pub(super) source: usize,
    /// The read buffer, kept between reads.
    buf: Vec<u8>,
    /// CRC-32 of every byte before `committed` (`None` when not known: the file was resumed
    /// past [`REHASH_MAX`], or an over-long line was skipped unseen).
    hash: Option<crc32fast::Hasher>,
    /// `(offset, CRC-32 of the bytes before it)` at the last [`MARKS`] line ends: a copy made
    /// at one of them (before the last read, found only after the truncate) is told from a
    /// new file with the same head.
    marks: std::collections::VecDeque<(u64, u32)>,
}

/// Line ends remembered per file (16 bytes each).
pub const MARKS: usize = 4096;
/// The last line ends a checkpoint keeps (12 bytes each in the store): a copy made up to this
/// many lines before the last read is told after a restart.
pub const KEPT_MARKS: usize = 64;
/// A file resumed past this offset is not reread to rebuild its marks.
pub const REHASH_MAX: u64 = 64 << 20;

impl Tailer {
    /// Follows an open file from its start.
    pub fn open(file: File, path: &Path, limit: &LineLimit, now: Duration) -> io::Result<Tailer> {
        let meta = file.metadata()?;
        let mut t = Tailer {
            file,
            id: FileId {
                dev: meta.dev(),
                ino: meta.ino(),
            },
            born: born(&meta),
            path: path.to_path_buf(),
            head: Vec::new(),
            read: 0,
            committed: 0,
            cutter: Cutter::new(limit.clone()),
            skipping: false,
            recent: Vec::new(),
            seen: meta.len(),
            last_growth: now,
            unnamed_since: None,
            source: 0,
            buf: Vec::new(),
            hash: Some(crc32fast::Hasher::new()),
            marks: std::collections::VecDeque::new(),
        };
        t.head = read_at(
            &t.file,
            0,
            HEAD.min(usize::try_from(meta.len()).unwrap_or(HEAD)),
        )?;
        Ok(t)
    }

    /// Follows an open file from `offset`, trusting that the bytes before it were handed out
    /// (the caller verified it, see [`holds`]); `skipping` if that is inside an over-long line.
    pub fn at(
        file: File,
        path: &Path,
        limit: &LineLimit,
        now: Duration,
        offset: u64,
        skipping: bool,
    ) -> io::Result<Tailer> {
        let mut t = Tailer::open(file, path, limit, now)?;
        let offset = offset.min(t.seen);
        let k = TAIL.min(usize::try_from(offset).unwrap_or(TAIL));
        t.recent = read_at(&t.file, offset - k as u64, k)?;
        t.read = offset;
        t.committed = offset;
        t.skipping = skipping;
        t.rehash(offset)?;
        Ok(t)
    }

    /// Whether this tailer, resumed at `cp`, verified what `cp` says was read: the same head
    /// (as far as both go), offset and bytes before it. Not so when the file was truncated or
    /// rewritten between the check of `cp` against it and the resume: this tailer then took
    /// the new bytes for the ones read, and would read on at the old offset in them.
    pub fn resumed_at(&self, cp: &Checkpoint) -> bool {
        let n = self.head.len().min(cp.head.len());
        let k = cp.tail_len as usize;
        self.committed == cp.offset
            && self.head[..n] == cp.head[..n]
            && self.recent.len() >= k
            && crc32fast::hash(&self.recent[self.recent.len() - k..]) == cp.tail_crc
    }

    /// Rebuilds the hash and the marks of the bytes before `upto` (resumed there).
    fn rehash(&mut self, upto: u64) -> io::Result<()> {
        self.hash = None;
        self.marks.clear();
        if upto > REHASH_MAX {
            return Ok(());
        }
        let mut h = crc32fast::Hasher::new();
        let mut at = 0u64;
        let mut buf = vec![0u8; 1 << 20];
        while at < upto {
            let want = usize::try_from(upto - at)
                .unwrap_or(buf.len())
                .min(buf.len());
            let n = read_full_at(&self.file, at, &mut buf[..want])?;
            if n == 0 {
                return Ok(());
            }
            let mut start = 0;
            for i in memchr::memchr_iter(b'\n', &buf[..n]) {
                h.update(&buf[start..=i]);
                start = i + 1;
                mark(&mut self.marks, at + start as u64, &h);
            }
            h.update(&buf[start..n]);
            at += n as u64;
        }
        self.hash = Some(h);
        Ok(())
    }

    /// Whether `file` (of `size` bytes) holds exactly what this file held when it was `size`
    /// bytes long, at a line end read recently: a copy made then.
    pub fn was_at(&self, file: &File, size: u64) -> bool {
        let Ok(i) = self.marks.binary_search_by_key(&size, |m| m.0) else {
            return false;
        };
        crc_upto(file, size) == Some(self.marks[i].1)
    }

    pub fn id(&self) -> FileId {
        self.id
    }

    /// Whether this is the file `cp` was taken of (not another on its inode).
    pub fn is(&self, cp: &Checkpoint) -> bool {
        self.id == cp.id() && (self.born == 0 || cp.born == 0 || self.born == cp.born)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn head(&self) -> &[u8] {
        &self.head
    }

    /// The file's first bytes as far as telling a copy of it goes: the head read, or, while
    /// nothing is read yet (opened empty, or emptied and written again since), what the file
    /// holds now, which its first read will hand out (a copy made before that read starts with
    /// them, and read from its start as a new file would repeat every line of it).
    pub fn head_now(&self) -> std::borrow::Cow<'_, [u8]> {
        if self.read > 0 {
            return std::borrow::Cow::Borrowed(&self.head);
        }
        read_at(&self.file, 0, HEAD).map_or(
            std::borrow::Cow::Borrowed(&self.head[..]),
            std::borrow::Cow::Owned,
        )
    }

    /// Lines before this were handed out.
    pub fn committed(&self) -> u64 {
        self.committed
    }

    /// Up to `len` bytes of the file at `offset`, as it is now.
    pub fn bytes_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        read_at(&self.file, offset, len)
    }

    /// The file was found under `path` now.
    pub fn named(&mut self, path: &Path) {
        if self.path != path {
            self.path = path.to_path_buf();
        }
        self.unnamed_since = None;
    }

    /// The file has no name left.
    pub fn deleted(&self) -> bool {
        self.file.metadata().is_ok_and(|m| m.nlink() == 0)
    }

    /// The checkpoint to commit with the lines handed out so far.
    pub fn checkpoint(&self, source: &str) -> Checkpoint {
        let tail = &self.recent[self.recent.len().saturating_sub(TAIL)..];
        Checkpoint {
            dev: self.id.dev,
            ino: self.id.ino,
            born: self.born,
            head: self.head.clone(),
            offset: self.committed,
            tail_len: u32::try_from(tail.len()).unwrap_or(0),
            tail_crc: crc32fast::hash(tail),
            skipping: self.skipping,
            marks: self
                .marks
                .iter()
                .skip(self.marks.len().saturating_sub(KEPT_MARKS))
                .copied()
                .collect(),
            source: source.to_owned(),
            path: self.path.display().to_string(),
            written_at: 0,
            forget: false,
        }
    }

    /// Whether the file still holds what was verified: not shorter than what was read, the
    /// same head, the same bytes before the checkpoint.
    pub fn check(&self) -> io::Result<Result<(), Truncation>> {
        let size = self.file.metadata()?.len();
        let tail = &self.recent[self.recent.len().saturating_sub(TAIL)..];
        // The held partial line too (its last bytes): a rewrite may have replaced it.
        let held = self.cutter.pending_tail();
        let intact = size >= self.read
            && read_at(&self.file, 0, self.head.len())? == self.head
            && read_at(&self.file, self.committed - tail.len() as u64, tail.len())? == tail
            && read_at(&self.file, self.read - held.len() as u64, held.len())? == held;
        Ok(if intact {
            Ok(())
        } else {
            Err(Truncation {
                committed: self.committed,
                seen: self.seen.max(self.read),
                read: self.read,
            })
        })
    }

    /// Starts over from the file's start: what was held is gone with the old content.
    pub fn restart(&mut self, now: Duration) -> io::Result<()> {
        let size = self.file.metadata()?.len();
        self.head = read_at(
            &self.file,
            0,
            HEAD.min(usize::try_from(size).unwrap_or(HEAD)),
        )?;
        self.read = 0;
        self.committed = 0;
        self.cutter.clear();
        self.skipping = false;
        self.recent.clear();
        self.seen = size;
        self.last_growth = now;
        self.hash = Some(crc32fast::Hasher::new());
        self.marks.clear();
        Ok(())
    }

    /// Reads up to `limit` new bytes as lines. Call [`Tailer::check`] first.
    pub fn read(&mut self, limit: u64, now: Duration) -> io::Result<Read> {
        let meta = self.file.metadata()?;
        let mut out = Read {
            deleted: meta.nlink() == 0,
            ..Read::default()
        };
        let seen = std::mem::replace(&mut self.seen, meta.len());
        let avail = meta.len().saturating_sub(self.read).min(limit);
        if avail == 0 {
            return Ok(out);
        }
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        buf.resize(usize::try_from(avail).unwrap_or(0), 0);
        let n = read_full_at(&self.file, self.read, &mut buf)?;
        buf.truncate(n);
        // Truncated and written past `read` again since it was checked (copytruncate, then
        // the application's next lines), the bytes read are of other content: a torn line,
        // and lines read twice once the truncation is seen. Still holding what was verified
        // after the read, they were this file's; otherwise none is taken, and the next check
        // finds the truncation.
        if n > 0 && self.check()?.is_err() {
            // (Its size now is the other content's.)
            self.seen = seen;
            self.buf = buf;
            out.more = true;
            return Ok(out);
        }
        out.bytes = n as u64;
        out.more = n as u64 == limit && meta.len() > self.read + n as u64;
        if n > 0 {
            self.last_growth = now;
        }
        if self.head.len() < HEAD && (self.read as usize) <= self.head.len() {
            let start = usize::try_from(self.read).unwrap_or(HEAD);
            if start == self.head.len() {
                let take = (HEAD - start).min(buf.len());
                self.head.extend_from_slice(&buf[..take]);
            }
        }
        self.read += n as u64;
        self.lines(&buf, &mut out);
        if buf.capacity() > 16 * (buf.len() + 4096) {
            buf.shrink_to(buf.len() + 4096);
        }
        self.buf = buf;
        Ok(out)
    }

    /// Cuts `buf` (the bytes after what was read before) into lines.
    fn lines(&mut self, buf: &[u8], out: &mut Read) {
        let mut rest = buf;
        if self.skipping {
            match memchr::memchr(b'\n', rest) {
                Some(i) => {
                    self.consumed(&rest[..=i]);
                    self.skipping = false;
                    rest = &rest[i + 1..];
                }
                None => {
                    self.consumed(rest);
                    return;
                }
            }
        }
        let mut cut = Cut::default();
        self.cutter.push(rest, &mut cut);
        self.hand_out(cut, out);
    }

    /// Takes what the cutter cut, in file order: each line consumed, each skipped line
    /// accounted for where it came.
    fn hand_out(&mut self, cut: Cut, out: &mut Read) {
        let base = out.lines.len();
        let mut skipped = cut.skipped.into_iter().peekable();
        for (i, line) in cut.lines.iter().enumerate() {
            while let Some(s) = skipped.next_if(|s| s.before <= i) {
                self.skipped(s, base, out);
            }
            self.consumed(line);
        }
        for s in skipped {
            self.skipped(s, base, out);
        }
        out.lines.append(cut.lines);
    }

    fn skipped(&mut self, s: SkippedLine, base: usize, out: &mut Read) {
        // Not seen whole: no hash from here on.
        self.hash = None;
        self.marks.clear();
        self.committed += s.len;
        self.remember(s.len, &s.last);
        out.skipped.push(Skipped {
            before: base + s.before,
            relevant: s.relevant,
        });
    }

    /// The unfinished line becomes a line: the file is finished (deleted or rotated away and
    /// idle), so nothing will complete it.
    pub fn finish(&mut self, out: &mut Read) {
        let mut cut = Cut::default();
        self.cutter.finish(&mut cut);
        self.hand_out(cut, out);
        self.skipping = false;
        if self.committed != self.read {
            self.hash = None;
            self.marks.clear();
        }
        self.committed = self.read;
    }

    /// `bytes` (the next ones after `committed`) are handed out or skipped.
    fn consumed(&mut self, bytes: &[u8]) {
        self.committed += bytes.len() as u64;
        self.remember(bytes.len() as u64, bytes);
        if let Some(h) = &mut self.hash {
            h.update(bytes);
            if bytes.ends_with(b"\n") {
                mark(&mut self.marks, self.committed, h);
            }
        }
    }

    /// `len` bytes ending with `last` (all of them, or at least the last `TAIL`) now sit
    /// before `committed`.
    fn remember(&mut self, len: u64, last: &[u8]) {
        if len >= TAIL as u64 {
            self.recent.clear();
            self.recent
                .extend_from_slice(&last[last.len().saturating_sub(TAIL)..]);
        } else {
            self.recent.extend_from_slice(last);
            if self.recent.len() > 2 * TAIL {
                self.recent.drain(..self.recent.len() - TAIL);
            }
        }
    }
}

fn mark(marks: &mut std::collections::VecDeque<(u64, u32)>, at: u64, h: &crc32fast::Hasher) {
    if marks.len() == MARKS {
        marks.pop_front();
    }
    marks.push_back((at, h.clone().finalize()));
}

/// A file's birth time in ns since the epoch, 0 where unknown.
/// Opens `path` for reading without waiting: a FIFO put in a file's place between a look at
/// it and this open would otherwise block the follower until something writes to it.
/// `O_NONBLOCK` changes nothing for a regular file's reads.
pub fn open(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let nonblock = i32::try_from(rustix::fs::OFlags::NONBLOCK.bits()).unwrap_or(0);
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nonblock)
        .open(path)
}

pub fn born(meta: &std::fs::Metadata) -> u64 {
    meta.created()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(0))
}

/// Whether `file` is the very file `cp` was taken of, not another on a reused inode (as far
/// as the filesystem keeps birth times).
pub fn same_file(file: &File, cp: &Checkpoint) -> bool {
    let now = file.metadata().map(|m| born(&m)).unwrap_or(0);
    now == 0 || cp.born == 0 || now == cp.born
}

/// Whether `file` (of `size` bytes) holds what `cp` verified: at least `offset` bytes, the
/// same head (as far as it has bytes: the head may have been read past `offset`, past what
/// a copy made earlier holds), the same bytes just before `offset`.
pub fn holds(file: &File, size: u64, cp: &Checkpoint) -> io::Result<bool> {
    let n = cp
        .head
        .len()
        .min(usize::try_from(size).unwrap_or(usize::MAX));
    if size < cp.offset || read_at(file, 0, n)? != cp.head[..n] {
        return Ok(false);
    }
    let k = cp.tail_len as usize;
    let Some(start) = cp.offset.checked_sub(k as u64) else {
        return Ok(false);
    };
    Ok(crc32fast::hash(&read_at(file, start, k)?) == cp.tail_crc)
}

/// Whether `file` (of `size` bytes) holds exactly what the file `cp` was taken of held at one
/// of its line ends `cp.marks` keeps: a copy made there.
pub fn was_at_mark(file: &File, size: u64, cp: &Checkpoint) -> bool {
    let Ok(i) = cp.marks.binary_search_by_key(&size, |m| m.0) else {
        return false;
    };
    crc_upto(file, size) == Some(cp.marks[i].1)
}

/// CRC-32 of `file`'s first `size` bytes; `None` if it has fewer or cannot be read.
fn crc_upto(file: &File, size: u64) -> Option<u32> {
    let mut h = crc32fast::Hasher::new();
    let mut at = 0u64;
    let mut buf = vec![0u8; (1 << 20).min(usize::try_from(size).unwrap_or(1 << 20))];
    while at < size {
        let want = usize::try_from(size - at)
            .unwrap_or(buf.len())
            .min(buf.len());
        match read_full_at(file, at, &mut buf[..want]) {
            Ok(0) | Err(_) => return None,
            Ok(n) => {
                h.update(&buf[..n]);
                at += n as u64;
            }
        }
    }
    Some(h.finalize())
}

/// Whether `file` starts with `head` (a non-empty one).
pub fn starts_with(file: &File, head: &[u8]) -> io::Result<bool> {
    Ok(!head.is_empty() && read_at(file, 0, head.len())? == head)
}

/// Up to `len` bytes at `offset` (fewer at the end of the file).
pub fn read_at(file: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; len];
    let n = read_full_at(file, offset, &mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

fn read_full_at(file: &File, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], offset + n as u64) {
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
    use std::io::Write;

    use super::*;

    fn append(path: &Path, s: &[u8]) {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap()
            .write_all(s)
            .unwrap();
    }

    fn text(lines: &LineBuf) -> Vec<String> {
        lines
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect()
    }

    const T0: Duration = Duration::ZERO;

    /// The default event key and one name.
    fn limit(max: usize) -> LineLimit {
        let f = |n: &str| memchr::memmem::Finder::new(n.as_bytes()).into_owned();
        LineLimit::new(max, &[f("event")], &[f("\"dispatch\"")])
    }

    #[test]
    fn holds_a_partial_line_and_resumes_at_a_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        append(&path, b"one\ntw");
        let mut t = Tailer::open(File::open(&path).unwrap(), &path, &limit(100), T0).unwrap();
        assert_eq!(text(&t.read(1 << 20, T0).unwrap().lines), ["one\n"]);
        let cp = t.checkpoint("a");
        assert_eq!((cp.offset, cp.tail_len), (4, 4));
        append(&path, b"o\nthree\n");
        assert_eq!(
            text(&t.read(1 << 20, T0).unwrap().lines),
            ["two\n", "three\n"]
        );
        // a restart at the checkpoint reads the partial line again, whole
        let f = File::open(&path).unwrap();
        assert!(holds(&f, 14, &cp).unwrap());
        let mut again = Tailer::at(f, &path, &limit(100), T0, cp.offset, false).unwrap();
        assert_eq!(
            text(&again.read(1 << 20, T0).unwrap().lines),
            ["two\n", "three\n"]
        );
    }

    /// An over-long line is never handed on as bytes: it is skipped whole and reported once
    /// with its verdict, judged on all of it (the event at its end makes it `too_long`); the
    /// checkpoint stays at its start until its end is read, so a restart reports it once too.
    #[test]
    fn an_over_long_line_is_skipped_whole_and_reported_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        append(&path, b"ok\n");
        append(&path, &[b'x'; 150]);
        let lim = limit(64);
        let mut t = Tailer::open(File::open(&path).unwrap(), &path, &lim, T0).unwrap();
        let r = t.read(100, T0).unwrap();
        assert_eq!(text(&r.lines), ["ok\n"]);
        assert!(r.more && r.skipped.is_empty());
        let r = t.read(1 << 20, T0).unwrap();
        assert!(r.lines.is_empty() && r.skipped.is_empty());
        let cp = t.checkpoint("a");
        assert_eq!((cp.offset, cp.skipping), (3, false), "not inside the line");
        append(
            &path,
            b"{\"event\":\"dispatch\",\"sessionId\":\"ghost\"}\nnext\n",
        );
        let want = vec![Skipped {
            before: 0,
            relevant: true,
        }];
        let r = t.read(1 << 20, T0).unwrap();
        assert_eq!(
            (text(&r.lines), r.skipped),
            (vec!["next\n".to_owned()], want.clone())
        );
        // resumed from the checkpoint: the same, once
        let f = File::open(&path).unwrap();
        let mut again = Tailer::at(f, &path, &lim, T0, cp.offset, cp.skipping).unwrap();
        let r = again.read(1 << 20, T0).unwrap();
        assert_eq!(
            (text(&r.lines), r.skipped),
            (vec!["next\n".to_owned()], want)
        );
        // an older checkpoint inside an over-long line skips its rest unjudged
        let mut old = Tailer::at(File::open(&path).unwrap(), &path, &lim, T0, 50, true).unwrap();
        let r = old.read(1 << 20, T0).unwrap();
        assert_eq!(
            (text(&r.lines), r.skipped),
            (vec!["next\n".to_owned()], vec![])
        );
    }

    #[test]
    fn truncation_and_a_rewrite_with_the_same_head_are_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let header = "# header line that every rewrite repeats\n";
        append(&path, format!("{header}1\n2\n").as_bytes());
        let mut t = Tailer::open(File::open(&path).unwrap(), &path, &limit(100), T0).unwrap();
        assert_eq!(t.read(1 << 20, T0).unwrap().lines.len(), 3);
        assert_eq!(t.check().unwrap(), Ok(()));
        // rewritten past the old size with the same head
        std::fs::write(&path, format!("{header}3333\n4\n")).unwrap();
        assert!(t.check().unwrap().is_err());
        let cp = t.checkpoint("a");
        assert!(!holds(&File::open(&path).unwrap(), 100, &cp).unwrap());
        t.restart(T0).unwrap();
        assert_eq!(
            text(&t.read(1 << 20, T0).unwrap().lines)[1..],
            ["3333\n", "4\n"]
        );
        // truncated in place
        std::fs::write(&path, "5\n").unwrap();
        let cut = t.check().unwrap().unwrap_err();
        assert_eq!(
            (cut.committed, cut.read),
            (header.len() as u64 + 7, header.len() as u64 + 7)
        );
    }
}
