//! Following one log file as it grows, is rotated (rename + create) or truncated in place
//! (copytruncate), without trusting filesystem events: each `poll` reads what is new and
//! then compares the path's identity with the open file's.
//!
//! A file is identified by device and inode plus a checksum of its first bytes, so a reused
//! inode or a file truncated and rewritten past its old length is still noticed. A partial
//! last line is held until its newline arrives (or its file has been rotated away, which
//! ends it). Positions are not yet checkpointed: that is the store's job.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Bytes of a file's head that identify it.
const HEAD: usize = 256;

/// Most bytes read per poll, so a large backlog streams instead of landing in memory at once.
const READ_LIMIT: u64 = 4 << 20;

/// What a poll noticed besides lines, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TailEvent {
    Opened,
    /// The path now names another file; the old one was read to its end first.
    Rotated,
    /// The file shrank, or its head changed: it was truncated and read again from the start.
    Truncated,
}

#[derive(Debug, Default)]
pub struct Polled {
    pub lines: Vec<Vec<u8>>,
    pub events: Vec<TailEvent>,
    /// The read limit was reached: poll again at once.
    pub more: bool,
}

#[derive(Debug)]
struct Open {
    file: File,
    dev: u64,
    ino: u64,
    head: Vec<u8>,
    offset: u64,
}

#[derive(Debug)]
pub struct Tailer {
    path: PathBuf,
    open: Option<Open>,
    partial: Vec<u8>,
    max_line: usize,
    /// Where a previous run stopped, applied when the file is first opened.
    resume: Option<Position>,
    /// The read buffer, kept between polls: a fresh 4 MiB one per poll cost more in page
    /// faults than the rest of the tail path together.
    buf: Vec<u8>,
}

/// How far a file has been read, durably storable: the file's identity, the offset after the
/// last byte read, and the unterminated line held back.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Position {
    pub dev: u64,
    pub ino: u64,
    pub head: Vec<u8>,
    pub offset: u64,
    pub partial: Vec<u8>,
}

impl Tailer {
    /// Follows `path` from its start (or from when it appears).
    pub fn new(path: impl Into<PathBuf>, max_line: usize) -> Tailer {
        Tailer {
            path: path.into(),
            open: None,
            partial: Vec::new(),
            max_line,
            resume: None,
            buf: Vec::new(),
        }
    }

    /// Follows `path` from where a previous run stopped, if the file there is still the same
    /// one (same device and inode, at least as long, same head); else from its start.
    pub fn resume(path: impl Into<PathBuf>, max_line: usize, at: Position) -> Tailer {
        Tailer {
            resume: Some(at),
            ..Tailer::new(path, max_line)
        }
    }

    /// Where reading stands now, or `None` before the file was first opened.
    pub fn position(&self) -> Option<Position> {
        let o = self.open.as_ref()?;
        Some(Position {
            dev: o.dev,
            ino: o.ino,
            head: o.head.clone(),
            offset: o.offset,
            partial: self.partial.clone(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads everything new. A missing file is not an error (it may be mid-rotation).
    pub fn poll(&mut self) -> io::Result<Polled> {
        let mut out = Polled::default();
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Mid-rotation: the old file may still be growing under its new name.
                self.drain(&mut out)?;
                return Ok(out);
            }
            Err(e) => return Err(e),
        };
        // Identity is checked before reading: a truncated file must not be read from the
        // old offset.
        let event = match &self.open {
            None => TailEvent::Opened,
            Some(o) if (o.dev, o.ino) != (meta.dev(), meta.ino()) => {
                // The old file is finished: read it to its end; its unterminated last line
                // is a line.
                self.drain(&mut out)?;
                if out.more {
                    return Ok(out);
                }
                self.flush_partial(&mut out);
                TailEvent::Rotated
            }
            Some(o) if meta.len() < o.offset || !self.same_head(o)? => {
                // Bytes after the truncation point are new content; the held partial was cut.
                self.partial.clear();
                TailEvent::Truncated
            }
            Some(_) => {
                self.drain(&mut out)?;
                return Ok(out);
            }
        };
        out.events.push(event);
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.open = None;
                return Ok(out);
            }
            Err(e) => return Err(e),
        };
        let m = file.metadata()?;
        let mut open = Open {
            file,
            dev: m.dev(),
            ino: m.ino(),
            head: Vec::new(),
            offset: 0,
        };
        if let Some(at) = self.resume.take() {
            if (at.dev, at.ino) == (open.dev, open.ino) {
                if m.len() >= at.offset && has_head(&mut open.file, &at.head)? {
                    open.head = at.head;
                    open.offset = at.offset;
                    self.partial = at.partial;
                }
            } else {
                // Rotated while we were down: finish the old file from where we stopped, if
                // it still sits beside the path under a new name.
                self.finish_rotated(at, &mut out)?;
            }
        }
        self.open = Some(open);
        self.drain(&mut out)?;
        Ok(out)
    }

    /// Reads a rotated file (found by device and inode in the path's directory) from a stored
    /// position to its end; its unterminated last line is a line.
    fn finish_rotated(&mut self, at: Position, out: &mut Polled) -> io::Result<()> {
        let dir = directory_of(&self.path);
        for entry in std::fs::read_dir(dir)?.flatten() {
            let Ok(m) = entry.metadata() else { continue };
            if (m.dev(), m.ino()) != (at.dev, at.ino) || m.len() < at.offset {
                continue;
            }
            let mut file = File::open(entry.path())?;
            if !has_head(&mut file, &at.head)? {
                continue;
            }
            self.partial = at.partial;
            self.open = Some(Open {
                file,
                dev: at.dev,
                ino: at.ino,
                head: at.head,
                offset: at.offset,
            });
            loop {
                out.more = false;
                self.drain(out)?;
                if !out.more {
                    break;
                }
            }
            self.flush_partial(out);
            self.open = None;
            break;
        }
        Ok(())
    }

    fn same_head(&self, o: &Open) -> io::Result<bool> {
        if o.head.is_empty() {
            return Ok(true);
        }
        let mut now = vec![0; o.head.len()];
        let mut f = File::open(&self.path)?;
        let n = read_up_to(&mut f, &mut now)?;
        Ok(n == o.head.len() && now == o.head)
    }

    fn flush_partial(&mut self, out: &mut Polled) {
        if !self.partial.is_empty() {
            out.lines.push(std::mem::take(&mut self.partial));
        }
    }

    /// Reads the open file from its offset to its current end.
    fn drain(&mut self, out: &mut Polled) -> io::Result<()> {
        let Some(o) = self.open.as_mut() else {
            return Ok(());
        };
        o.file.seek(SeekFrom::Start(o.offset))?;
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        // Capacity for the whole read up front, so it never reallocates.
        let avail = o
            .file
            .metadata()?
            .len()
            .saturating_sub(o.offset)
            .min(READ_LIMIT);
        buf.reserve(usize::try_from(avail).unwrap_or(0) + 1);
        (&mut o.file).take(READ_LIMIT).read_to_end(&mut buf)?;
        out.more = buf.len() as u64 == READ_LIMIT;
        if o.head.len() < HEAD && o.offset < HEAD as u64 {
            let start = usize::try_from(o.offset).unwrap_or(HEAD);
            let take = (HEAD - start).min(buf.len());
            if o.head.len() == start {
                o.head.extend_from_slice(&buf[..take]);
            }
        }
        o.offset += buf.len() as u64;
        let mut rest = &buf[..];
        while let Some(i) = memchr::memchr(b'\n', rest) {
            let mut line = std::mem::take(&mut self.partial);
            line.extend_from_slice(&rest[..=i]);
            out.lines.push(line);
            rest = &rest[i + 1..];
        }
        self.partial.extend_from_slice(rest);
        if buf.capacity() > 16 * (buf.len() + 4096) {
            // Caught up: an idle file does not keep a backlog-sized buffer.
            buf.shrink_to(buf.len() + 4096);
        }
        self.buf = buf;
        if self.partial.len() > self.max_line {
            // An unterminated line past the limit is handed on now; parse calls it too long.
            out.lines.push(std::mem::take(&mut self.partial));
        }
        Ok(())
    }
}

/// The directory a file sits in, where rotation renames and creates it (`.` for a bare name).
pub fn directory_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Whether `f` starts with `head` (reads from the current position, which must be 0).
fn has_head(f: &mut File, head: &[u8]) -> io::Result<bool> {
    let mut now = vec![0; head.len()];
    let n = read_up_to(f, &mut now)?;
    Ok(n == head.len() && now == head)
}

fn read_up_to(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn append(path: &Path, s: &str) {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap()
            .write_all(s.as_bytes())
            .unwrap();
    }

    fn lines(p: &Polled) -> Vec<String> {
        p.lines
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect()
    }

    #[test]
    fn follows_growth_and_holds_a_partial_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let mut t = Tailer::new(&path, 1 << 20);
        assert!(t.poll().unwrap().lines.is_empty(), "missing file is fine");
        append(&path, "one\ntw");
        let p = t.poll().unwrap();
        assert_eq!(
            (lines(&p), p.events),
            (vec!["one\n".to_string()], vec![TailEvent::Opened])
        );
        assert!(t.poll().unwrap().lines.is_empty(), "partial line held");
        append(&path, "o\nthree\n");
        assert_eq!(lines(&t.poll().unwrap()), vec!["two\n", "three\n"]);
    }

    #[test]
    fn rename_and_create_rotation_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let mut t = Tailer::new(&path, 1 << 20);
        append(&path, "1\n");
        t.poll().unwrap();
        append(&path, "2\n3-unterminated");
        std::fs::rename(&path, dir.path().join("a.log.1")).unwrap();
        // between rename and create, the old file is still read to its end
        let p = t.poll().unwrap();
        assert_eq!(lines(&p), vec!["2\n"]);
        append(&path, "4\n");
        let p = t.poll().unwrap();
        assert_eq!(lines(&p), vec!["3-unterminated", "4\n"]);
        assert_eq!(p.events, vec![TailEvent::Rotated]);
    }

    #[test]
    fn resumes_where_it_stopped_only_in_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let mut t = Tailer::new(&path, 1 << 20);
        append(&path, "1\n2\n3-part");
        t.poll().unwrap();
        let pos = t.position().unwrap();
        append(&path, "ial\n4\n");
        let mut again = Tailer::resume(&path, 1 << 20, pos.clone());
        assert_eq!(lines(&again.poll().unwrap()), vec!["3-partial\n", "4\n"]);
        // rotated while down: the old file is finished from the stored position, then the
        // new one is read from the top
        std::fs::rename(&path, dir.path().join("a.log.1")).unwrap();
        append(&path, "new\n");
        let mut other = Tailer::resume(&path, 1 << 20, pos.clone());
        assert_eq!(
            lines(&other.poll().unwrap()),
            vec!["3-partial\n", "4\n", "new\n"]
        );
        // rotated away entirely: only the new file
        std::fs::remove_file(dir.path().join("a.log.1")).unwrap();
        let mut gone = Tailer::resume(&path, 1 << 20, pos);
        assert_eq!(lines(&gone.poll().unwrap()), vec!["new\n"]);
    }

    #[test]
    fn copytruncate_restarts_from_the_top() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let mut t = Tailer::new(&path, 1 << 20);
        append(&path, "first line\nsecond line\n");
        t.poll().unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        append(&path, "new\n");
        let p = t.poll().unwrap();
        assert_eq!(
            (lines(&p), p.events),
            (vec!["new\n".to_string()], vec![TailEvent::Truncated])
        );
    }

    #[test]
    fn truncated_and_rewritten_longer_is_noticed_by_its_head() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let mut t = Tailer::new(&path, 1 << 20);
        append(&path, "aaaa\n");
        t.poll().unwrap();
        // truncated while we were not looking, then written past the old offset
        std::fs::write(&path, "bbbbbbbbbb\ncccc\n").unwrap();
        let p = t.poll().unwrap();
        assert_eq!(p.events, vec![TailEvent::Truncated]);
        assert_eq!(lines(&p), vec!["bbbbbbbbbb\n", "cccc\n"]);
    }
}
