//! The configured paths and globs: which files to read, and from where.
//!
//! A [`Follower`] is synchronous and takes time as an argument, so a model test can drive it
//! step by step; [`run`] is the task that polls it in `serve`. Each poll scans every pattern
//! in configuration order (a literal path matches itself, existing or not) and keeps one
//! [`Tailer`] per file identity — a file two patterns match is followed once, for the first,
//! whose label its lines carry — then reads every tailer:
//! - a file found under a new name keeps its tailer (and its checkpoint, which is keyed by
//!   identity); a new file at a path gets its own, from its start;
//! - a file no scanned path names any more (renamed away, deleted, replaced by a directory) is
//!   still read through its descriptor: until it has been deleted and read to its end, or has
//!   not grown for `close_inactive`;
//! - a file that lost the bytes its tailer verified was truncated: if a followed file holds a
//!   copy of them (copytruncate with the rotated name in the glob), the copy is read from the
//!   checkpoint on, exactly once; otherwise the loss is counted and logged once;
//! - a new file whose head is a followed file's head is a copy of it (copytruncate's first
//!   step) and waits, unread, until that file is truncated; so does one found only after the
//!   truncate that holds exactly what the file held at a line end it read (a copy made just
//!   before its last read), which then starts at its end;
//! - after a restart, checkpoints of files that no path names any more are looked up in the
//!   pattern's directory by identity, so a file rotated while `serve` was down is finished;
//! - the checkpoint of a file that is gone (not open, in no directory followed) for
//!   `close_inactive` is dropped.
//!
//! Paths that are not readable regular files (directories, FIFOs, sockets, dangling
//! symlinks, no permission) are never opened; each change of a path's state is logged once.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustc_hash::FxHashMap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::log::{self, Forgotten, Opened, Rotation};
use super::tail::{self, Tailer};
use super::{Checkpoint, FileId, FileMetrics};
use crate::event::Runner;
use crate::overlong::LineLimit;
use crate::sources::batch::{Batch, LineBuf, Skipped};

/// Most bytes read from one file per poll, so a backlog streams and other files get turns;
/// also the most one file's batch holds, which (times the batch channel's bound) bounds the
/// memory a backlog can take while it waits for the actor.
const READ_LIMIT: u64 = 4 << 20;

#[derive(Debug, Clone)]
pub struct FollowConfig {
    /// The configured paths and globs, in configuration order; each is the source label of
    /// the files it matches (a file two of them match is followed once, for the first).
    pub patterns: Vec<String>,
    /// What an over-long line is (`parse.max_line_bytes`, judged as `verify` judges it).
    pub limit: LineLimit,
    /// How long a file no path names any more is still read after it last grew.
    pub close_inactive: Duration,
    pub read_limit: u64,
    /// How long the checkpoint of a file no configured pattern follows any more (a pattern
    /// removed from the configuration) is kept after it was last written (`serve.retention`:
    /// the pattern put back within it resumes where it was).
    pub retention: Duration,
    /// The wall clock (ms since the epoch) when `now` was zero: checkpoints are stamped with
    /// it, and the age of one written before the start told by it.
    pub wall_at_start: i64,
}

impl FollowConfig {
    /// One pattern (add more to `patterns`).
    pub fn new(pattern: &str, limit: LineLimit) -> FollowConfig {
        FollowConfig {
            patterns: vec![pattern.to_owned()],
            limit,
            close_inactive: Duration::from_secs(30),
            read_limit: READ_LIMIT,
            retention: Duration::from_secs(3600),
            wall_at_start: 0,
        }
    }
}

/// Lines of one file and the checkpoint after them.
#[derive(Debug)]
pub struct FileLines {
    /// The pattern the file is followed for (an index into `FollowConfig::patterns`).
    pub source: usize,
    pub lines: LineBuf,
    /// Over-long lines among them.
    pub skipped: Vec<Skipped>,
    pub checkpoint: Checkpoint,
}

#[derive(Debug, Default)]
pub struct Polled {
    pub files: Vec<FileLines>,
    /// Some file has more to read right now: poll again at once.
    pub more: bool,
    /// Bytes known to be lost to truncations in this poll, by pattern.
    pub truncated: Vec<(usize, u64)>,
}

/// What a scanned path is, as far as following it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PathState {
    Missing,
    Regular,
    Directory,
    Fifo,
    Socket,
    Device,
    DanglingSymlink,
    Unreadable(String),
}

impl PathState {
    fn as_str(&self) -> &'static str {
        match self {
            PathState::Missing => "missing",
            PathState::Regular => "regular",
            PathState::Directory => "directory",
            PathState::Fifo => "fifo",
            PathState::Socket => "socket",
            PathState::Device => "device",
            PathState::DanglingSymlink => "dangling_symlink",
            PathState::Unreadable(_) => "unreadable",
        }
    }
}

/// A new file that looks like a copy of a followed one, held unread until that one is
/// truncated (copytruncate copies, then truncates at once).
#[derive(Debug)]
struct Pending {
    path: PathBuf,
    /// The pattern that named it.
    source: usize,
    /// The followed file it is a copy of; `None` while it is too short to tell (empty, or a
    /// prefix of a followed file's head: maybe a copy seen while it is being written).
    of: Option<FileId>,
    /// A copy of what that file holds since a truncation its tailer had not noticed when
    /// the copy was found: that truncation is not the copy's, the next one is.
    of_the_rest: bool,
    size: u64,
    file: File,
    since: Duration,
}

/// A truncation as it was noticed: file `id` at `path` no longer holds what `old` says was
/// read; it was `seen` bytes long; `short`: new files too short to tell from a copy of it
/// that hold what it held at a line end it read; `source`: its pattern.
#[derive(Debug, Clone, Copy)]
struct Noticed<'a> {
    id: FileId,
    path: &'a Path,
    old: &'a Checkpoint,
    seen: u64,
    short: &'a [FileId],
    source: usize,
}

/// How long a copy waits for its original's truncation before it is taken for a file of its
/// own (read from its start).
const COPY_WAIT: Duration = Duration::from_secs(2);

/// How often checkpoints are checked for files that are gone.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// A moment inside a poll, for [`Follower::poll_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Window {
    /// After the directory scan, before the reads.
    #[default]
    AfterScan,
    /// While a new file is judged a copy of a followed one: after that one's bytes at the
    /// copy's end are read, before it is checked.
    JudgingACopy,
    /// Between a followed file's check (it still holds what was read) and its read.
    CheckedNotRead,
    /// After a restart, between finding that a file holds its checkpoint and resuming it.
    Resuming,
}

/// What happens in a window of the current poll (tests only; nothing otherwise).
#[derive(Default)]
struct Meanwhile(Window, std::cell::Cell<Option<Box<dyn FnOnce() + Send>>>);

impl Meanwhile {
    fn run(&self, now: Window) {
        if self.0 == now
            && let Some(f) = self.1.take()
        {
            f();
        }
    }
}

impl std::fmt::Debug for Meanwhile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Meanwhile")
    }
}

#[derive(Debug)]
pub struct Follower {
    cfg: FollowConfig,
    /// Per pattern: a path without glob characters (it matches itself, existing or not).
    literal: Vec<bool>,
    tailers: Vec<Tailer>,
    /// The last checkpoint of every file known, by identity (loaded, then as handed out).
    known: FxHashMap<FileId, Checkpoint>,
    /// New files that are copies of a followed one (by its head): read only once it is
    /// truncated, from where it was read.
    /// With the copy's size when found: a copy that grows is not one.
    copies: FxHashMap<FileId, Pending>,
    /// Each path's last state, so a change is logged once.
    states: FxHashMap<PathBuf, PathState>,
    /// The first scan also looks for checkpointed files by identity in the directory.
    started: bool,
    /// Checkpoints a copy continued from: their own file is not read on from them again.
    used: rustc_hash::FxHashSet<FileId>,
    /// Checkpoints of files not open whose file no directory followed holds: since when.
    gone: FxHashMap<FileId, Duration>,
    last_sweep: Option<Duration>,
    meanwhile: Meanwhile,
}

impl Follower {
    /// A follower that resumes from `checkpoints` (all of the store's; those of files the
    /// patterns match, by identity, are used).
    pub fn new(cfg: FollowConfig, checkpoints: &[Checkpoint]) -> Follower {
        Follower {
            literal: cfg
                .patterns
                .iter()
                .map(|p| !p.contains(['*', '?', '[']))
                .collect(),
            cfg,
            tailers: Vec::new(),
            known: checkpoints.iter().map(|c| (c.id(), c.clone())).collect(),
            copies: FxHashMap::default(),
            states: FxHashMap::default(),
            started: false,
            used: rustc_hash::FxHashSet::default(),
            gone: FxHashMap::default(),
            last_sweep: None,
            meanwhile: Meanwhile::default(),
        }
    }

    /// The first pattern that matches `path`, if any.
    fn matching(&self, path: &Path) -> Option<usize> {
        self.cfg.patterns.iter().enumerate().find_map(|(i, p)| {
            let hit = if self.literal[i] {
                Path::new(p) == path
            } else {
                glob::Pattern::new(p).is_ok_and(|g| g.matches_path(path))
            };
            hit.then_some(i)
        })
    }

    /// The label of pattern `source`.
    pub fn source(&self, source: usize) -> &str {
        self.cfg.patterns.get(source).map_or("", String::as_str)
    }

    /// Files open now.
    pub fn open_files(&self) -> usize {
        self.tailers.len()
    }

    /// Scans, then reads what is new in every file.
    pub fn poll(&mut self, now: Duration) -> Polled {
        self.poll_with(now, Window::AfterScan, || {})
    }

    /// [`Follower::poll`], with `meanwhile` run once in `window` (if the poll gets there):
    /// what the filesystem may do at that moment (a copytruncate made after the scan, say),
    /// so a test can make a race happen every time.
    pub fn poll_with(
        &mut self,
        now: Duration,
        window: Window,
        meanwhile: impl FnOnce() + Send + 'static,
    ) -> Polled {
        let mut out = Polled::default();
        self.meanwhile = Meanwhile(window, std::cell::Cell::new(Some(Box::new(meanwhile))));
        self.scan(now, &mut out);
        self.meanwhile.run(Window::AfterScan);
        let mut i = 0;
        while i < self.tailers.len() {
            if self.read_one(i, now, &mut out) {
                i += 1;
            } else {
                self.tailers.swap_remove(i);
            }
        }
        self.meanwhile = Meanwhile::default();
        self.sweep(now, &mut out);
        let wall = self.wall(now);
        for f in &mut out.files {
            f.checkpoint.written_at = wall;
        }
        out
    }

    /// The wall clock at `now` (ms since the epoch).
    fn wall(&self, now: Duration) -> i64 {
        let ms = i64::try_from(now.as_millis()).unwrap_or(i64::MAX);
        self.cfg.wall_at_start.saturating_add(ms)
    }

    /// Drops the checkpoints of files no configured pattern follows any more, once they were
    /// last written `retention` ago (one written before that was kept counts from the start).
    /// Handed out labelled with the first pattern: the label is not stored with them.
    fn sweep_unfollowed(&mut self, now: Duration, out: &mut Polled) {
        let wall = self.wall(now);
        let retention = i64::try_from(self.cfg.retention.as_millis()).unwrap_or(i64::MAX);
        let expired: Vec<FileId> = self
            .known
            .values()
            .filter(|c| {
                let written = if c.written_at == 0 {
                    self.cfg.wall_at_start
                } else {
                    c.written_at
                };
                !self.cfg.patterns.contains(&c.source) && wall.saturating_sub(written) >= retention
            })
            .map(Checkpoint::id)
            .collect();
        for id in expired {
            let Some(mut cp) = self.known.remove(&id) else {
                continue;
            };
            self.used.remove(&id);
            log::forgotten(&cp.source, &cp.path, cp.offset, Forgotten::Unfollowed);
            cp.forget = true;
            out.files.push(FileLines {
                source: 0,
                lines: LineBuf::default(),
                skipped: Vec::new(),
                checkpoint: cp,
            });
        }
    }

    /// Drops the checkpoints of this follower's files that are gone: not open, and held by
    /// no directory it reads (each pattern's, each file's last one) for `close_inactive`.
    /// They are of no use any more, and one could be taken for another file on its reused
    /// inode. Runs at most once a second.
    fn sweep(&mut self, now: Duration, out: &mut Polled) {
        if self
            .last_sweep
            .is_some_and(|t| now.saturating_sub(t) < SWEEP_EVERY)
        {
            return;
        }
        self.last_sweep = Some(now);
        self.sweep_unfollowed(now, out);
        let ours: Vec<(FileId, u64, PathBuf)> = self
            .known
            .values()
            .filter(|c| {
                self.cfg.patterns.contains(&c.source)
                    && !self.copies.contains_key(&c.id())
                    && !self.tailers.iter().any(|t| t.id() == c.id())
            })
            .map(|c| (c.id(), c.born, PathBuf::from(&c.path)))
            .collect();
        if ours.is_empty() {
            self.gone.clear();
            return;
        }
        let mut dirs: std::collections::BTreeSet<PathBuf> = self
            .cfg
            .patterns
            .iter()
            .filter_map(|p| pattern_dir(p))
            .collect();
        for (_, _, path) in &ours {
            match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => dirs.insert(d.to_path_buf()),
                _ => dirs.insert(PathBuf::from(".")),
            };
        }
        // By identity, with birth times: a file on the inode of one deleted is another file.
        let mut present: FxHashMap<FileId, u64> = FxHashMap::default();
        for d in dirs {
            let entries = match std::fs::read_dir(&d) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                // Cannot tell what is there: nothing is taken for gone.
                Err(_) => return,
            };
            for e in entries.flatten() {
                if let Ok(m) = e.metadata() {
                    let id = FileId {
                        dev: m.dev(),
                        ino: m.ino(),
                    };
                    present.insert(id, tail::born(&m));
                }
            }
        }
        let here = |id: &FileId, born: u64| {
            present
                .get(id)
                .is_some_and(|b| *b == 0 || born == 0 || *b == born)
        };
        self.gone
            .retain(|id, _| ours.iter().any(|(o, born, _)| o == id && !here(o, *born)));
        for (id, born, _) in ours {
            if here(&id, born) {
                continue;
            }
            let since = *self.gone.entry(id).or_insert(now);
            if now.saturating_sub(since) < self.cfg.close_inactive {
                continue;
            }
            self.gone.remove(&id);
            self.used.remove(&id);
            let Some(mut cp) = self.known.remove(&id) else {
                continue;
            };
            let Some(source) = self.cfg.patterns.iter().position(|p| *p == cp.source) else {
                continue;
            };
            log::forgotten(&cp.source, &cp.path, cp.offset, Forgotten::Gone);
            cp.forget = true;
            out.files.push(FileLines {
                source,
                lines: LineBuf::default(),
                skipped: Vec::new(),
                checkpoint: cp,
            });
        }
    }

    /// Reads tailer `i`; `false` when it is finished and closed.
    fn read_one(&mut self, i: usize, now: Duration, out: &mut Polled) -> bool {
        let index = self.tailers[i].source;
        let source = self.source(index).to_owned();
        let t = &mut self.tailers[i];
        let cut = match t.check() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(path = %t.path().display(), error = %e, "cannot check a followed file");
                return true;
            }
        };
        if let Err(cut) = cut {
            let id = t.id();
            let old = t.checkpoint(&source);
            let path = t.path().to_path_buf();
            // Files too short to tell from a copy of it when found: those that hold exactly
            // what it held at a line end it read are copies of it (told before it restarts).
            let short: Vec<FileId> = self
                .copies
                .iter()
                .filter(|(_, p)| p.of.is_none() && t.was_at(&p.file, p.size))
                .map(|(c, _)| *c)
                .collect();
            if let Err(e) = t.restart(now) {
                tracing::warn!(path = %path.display(), error = %e, "cannot reread a truncated file");
                return true;
            }
            let noticed = Noticed {
                id,
                path: &path,
                old: &old,
                seen: cut.seen,
                short: &short,
                source: index,
            };
            let lost = self.truncated(&noticed, now, out);
            out.truncated.push((index, lost));
        }
        self.meanwhile.run(Window::CheckedNotRead);
        let t = &mut self.tailers[i];
        let mut read = match t.read(self.cfg.read_limit, now) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(path = %t.path().display(), error = %e, "cannot read a followed file");
                return true;
            }
        };
        out.more |= read.more;
        let idle = now.saturating_sub(t.last_growth) >= self.cfg.close_inactive;
        let finished = !read.more && (read.deleted || (t.unnamed_since.is_some() && idle));
        if finished {
            t.finish(&mut read);
        }
        let (lines, skipped) = (read.lines, read.skipped);
        let mut cp = t.checkpoint(&source);
        cp.forget = finished && read.deleted;
        // (The birth time too: a file on the inode of one deleted replaces its checkpoint
        // even where nothing else differs, an empty file's say.)
        let changed = self.known.get(&cp.id()).is_none_or(|k| {
            (k.born, k.offset, k.skipping, k.tail_crc, &k.head, k.forget)
                != (
                    cp.born,
                    cp.offset,
                    cp.skipping,
                    cp.tail_crc,
                    &cp.head,
                    cp.forget,
                )
        });
        if finished {
            log::closed(&source, &cp.path, read.deleted, cp.offset);
        }
        if !lines.is_empty() || !skipped.is_empty() || changed {
            if cp.forget {
                self.known.remove(&cp.id());
            } else {
                self.known.insert(cp.id(), cp.clone());
            }
            out.files.push(FileLines {
                source: index,
                lines,
                skipped,
                checkpoint: cp,
            });
        }
        !finished
    }

    /// File `id` lost what was read of it (the checkpoint `old`): read a followed copy from
    /// there, or count and log what is lost. Returns the bytes known lost.
    fn truncated(&mut self, n: &Noticed<'_>, now: Duration, out: &mut Polled) -> u64 {
        let Noticed {
            id,
            path,
            old,
            seen,
            short,
            source,
        } = *n;
        // Copies of it found while it was intact: one that holds what was read goes on from
        // there (two such hold the same bytes up to there; each goes on); a shorter one was
        // checked against the file then and holds nothing new: it starts at its end.
        // And files too short to tell then: `short` ones, and those that hold what was read.
        let pending: Vec<(FileId, PathBuf, usize)> = self
            .copies
            .iter()
            .filter(|(c, p)| {
                (p.of == Some(id) && !p.of_the_rest)
                    || short.contains(c)
                    || (p.of.is_none() && is_copy(&p.file, p.size, old))
            })
            .map(|(c, p)| (*c, p.path.clone(), p.source))
            .collect();
        // Copies of what it held since this truncation are now copies of it as it is: theirs
        // is its next truncation, and their wait for it starts now.
        for p in self.copies.values_mut() {
            if p.of == Some(id) && p.of_the_rest {
                p.of_the_rest = false;
                p.since = now;
            }
        }
        let mut continued = false;
        for (cid, cpath, csource) in pending {
            self.copies.remove(&cid);
            let Some((file, len, holds)) = open_copy(&cpath, cid, old) else {
                continue;
            };
            let (start, skipping) = if holds {
                continued = true;
                (old.offset, old.skipping)
            } else if len <= old.offset {
                // A copy made before the last read (its bytes were checked then, or it holds
                // the start of the head): all of it was read.
                (len, false)
            } else {
                // Grew into something else: a file of its own, found again by the next scan.
                continue;
            };
            match Tailer::at(file, &cpath, &self.cfg.limit, now, start, skipping) {
                Ok(mut t) => {
                    t.source = csource;
                    log::rotated(
                        self.source(source),
                        path,
                        Rotation::Copytruncate,
                        Some(&cpath),
                        Some(start),
                    );
                    self.adopt_copy(t, out);
                }
                Err(e) => {
                    tracing::warn!(copy = %cpath.display(), error = %e, "cannot read a rotated copy")
                }
            }
        }
        if continued {
            return 0;
        }
        // A copy beside it: one a pattern matches was made and the file truncated after this
        // poll's scan (so it is not among the copies yet): it goes on from the checkpoint.
        // Otherwise the loss is what is known to have existed past what was read; an
        // unfollowed copy tells exactly.
        let found = find_copy_in_dir(path, old);
        if let Some((cpath, _, _)) = &found
            && let Some(csource) = self.matching(cpath)
            && let Ok(file) = tail::open(cpath)
            && let Ok(m) = file.metadata()
        {
            let cid = FileId {
                dev: m.dev(),
                ino: m.ino(),
            };
            // Followed already, or with a checkpoint of its own (of this very file: a
            // checkpoint left on its inode by a file deleted before is another file's): it
            // went on from this checkpoint before a restart, and is read on from its own.
            // Nothing is lost.
            if self.tailers.iter().any(|t| t.id() == cid)
                || self
                    .known
                    .get(&cid)
                    .is_some_and(|own| tail::same_file(&file, own))
            {
                log::truncated(self.source(source), path, old.offset, old.offset, None);
                return 0;
            }
            // New since the scan: it goes on from the checkpoint.
            if let Ok(mut t) =
                Tailer::at(file, cpath, &self.cfg.limit, now, old.offset, old.skipping)
            {
                self.copies.remove(&t.id());
                t.source = csource;
                log::rotated(
                    self.source(source),
                    path,
                    Rotation::Copytruncate,
                    Some(cpath),
                    Some(old.offset),
                );
                self.adopt_copy(t, out);
                return 0;
            }
        }
        let (lost_to, copy) = match found {
            Some((p, len, _)) => (len, Some(p)),
            None => (seen, None),
        };
        let lost = lost_to.saturating_sub(old.offset);
        log::truncated(
            self.source(source),
            path,
            old.offset,
            lost_to,
            copy.as_deref(),
        );
        lost
    }

    fn scan(&mut self, now: Duration, out: &mut Polled) {
        // Every pattern's paths, in configuration order: a file two patterns name is followed
        // for the first.
        let mut paths: Vec<(PathBuf, usize)> = Vec::new();
        for (source, pattern) in self.cfg.patterns.iter().enumerate() {
            if self.literal[source] {
                paths.push((PathBuf::from(pattern), source));
            } else if let Ok(it) = glob::glob(pattern) {
                paths.extend(it.filter_map(Result::ok).map(|p| (p, source)));
            }
        }
        let mut named: rustc_hash::FxHashSet<FileId> = rustc_hash::FxHashSet::default();
        let mut fresh: Vec<(PathBuf, File, u64, FileId, usize)> = Vec::new();
        for (path, source) in paths {
            let (state, file) = probe(&path);
            self.note_state(&path, &state, source);
            let Some((file, size, id)) = file else {
                continue;
            };
            if !named.insert(id) {
                // The same file under two names (a symlink and its target, or a path two
                // patterns match): followed once.
                continue;
            }
            if let Some(t) = self.tailers.iter_mut().find(|t| t.id() == id) {
                if t.path() != path {
                    let label = self.cfg.patterns.get(t.source).map_or("", String::as_str);
                    log::rotated(label, t.path(), Rotation::Rename, Some(&path), None);
                }
                t.named(&path);
                continue;
            }
            if let Some(p) = self.copies.get_mut(&id) {
                if p.size == size {
                    p.path.clone_from(&path);
                    continue;
                }
                // It grew: not a copy after all (or another file now).
                self.copies.remove(&id);
            }
            fresh.push((path, file, size, id, source));
        }
        // A copy whose original was not truncated soon, or that went away unread, is a file
        // of its own: read from its start (through its descriptor if it has no name). One
        // whose original was truncated since the last poll (no poll for a while: ingestion
        // held back) waits for this poll's read of that file, which finds the truncation and
        // reads the copy on from where the file was read; read from its start, it would
        // repeat all that was.
        let released: Vec<FileId> = self
            .copies
            .iter()
            .filter(|(id, p)| {
                !named.contains(id)
                    || (now.saturating_sub(p.since) >= COPY_WAIT && !self.original_truncated(p))
            })
            .map(|(id, _)| *id)
            .collect();
        for id in released {
            let Some(p) = self.copies.remove(&id) else {
                continue;
            };
            if let Ok(mut t) = Tailer::open(p.file, &p.path, &self.cfg.limit, now) {
                t.source = p.source;
                log::opened(self.source(p.source), &p.path, Opened::New, 0);
                if !named.contains(&id) {
                    t.unnamed_since = Some(now);
                }
                self.tailers.push(t);
            }
        }
        for t in &mut self.tailers {
            if !named.contains(&t.id()) && t.unnamed_since.is_none() {
                // Read on through its descriptor until it is deleted and drained, or idle.
                let kind = if t.deleted() {
                    Rotation::Deleted
                } else {
                    Rotation::RenamedAway
                };
                let label = self.cfg.patterns.get(t.source).map_or("", String::as_str);
                log::rotated(label, t.path(), kind, None, None);
                t.unnamed_since = Some(now);
            }
        }
        // After a restart, files rotated away while we were down are opened first: a new file
        // with the same first bytes is then not taken for their continuation.
        if !self.started {
            self.started = true;
            self.finish_unnamed(&named, now);
        }
        // Files with a checkpoint first: one truncated while down may have its copy among
        // the new ones. The furthest read of them first: files that start alike (a header
        // every file of the application writes) hold each other's shorter checkpoints, so a
        // copy of the one read furthest also holds what was read of a shorter one, and taken
        // for the shorter one's it would be read on from there, repeating what was read.
        // Another file on a checkpointed file's (reused) inode last: its own checkpoint would
        // replace the one a copy among the new files may go on from.
        fresh.sort_by_key(|f| match self.known.get(&f.3) {
            Some(cp) if tail::same_file(&f.1, cp) => (0, std::cmp::Reverse(cp.offset)),
            None => (1, std::cmp::Reverse(0)),
            Some(_) => (2, std::cmp::Reverse(0)),
        });
        let mut taken: rustc_hash::FxHashSet<FileId> = rustc_hash::FxHashSet::default();
        let mut i = 0;
        while i < fresh.len() {
            let (path, file, size, id, source) = &fresh[i];
            // Its size now, not when the directory was read: a copy probed while copytruncate
            // was still writing it may be whole, and its original truncated, by now; judged on
            // the probed size it would hold too little to be a copy and be read from its start.
            let size = file.metadata().map_or(*size, |m| m.len());
            let (path, id, source) = (path.clone(), *id, *source);
            let label = self.source(source).to_owned();
            if taken.contains(&id) {
                i += 1;
                continue;
            }
            let file = match fresh[i].1.try_clone() {
                Ok(f) => f,
                Err(_) => {
                    i += 1;
                    continue;
                }
            };
            let mut how = Opened::New;
            // A checkpoint of another file on the same inode (deleted, the inode reused) is
            // not this file's.
            let known = self
                .known
                .get(&id)
                .filter(|cp| tail::same_file(&file, cp))
                .cloned();
            let resume = match &known {
                Some(cp) => {
                    tail::holds(&file, size, cp).unwrap_or(false)
                        && !self.holds_more_of_another(&file, size, cp)
                }
                None => false,
            };
            if let (Some(cp), false) = (&known, resume) {
                // Truncated (or rewritten) while we were down, or another file on a reused
                // inode: what was read of it may go on in a copy among the new files.
                let others = || {
                    fresh.iter().filter(|(_, f, _, cid, _)| {
                        *cid != id
                            && !self
                                .known
                                .get(cid)
                                .is_some_and(|own| tail::same_file(f, own))
                            && !taken.contains(cid)
                    })
                };
                // One that holds all that was read; else the longest made at a line end read
                // before (a shorter one that matches too is an older copy of the same bytes).
                let whole = others().find(|(_, f, s, _, _)| is_copy(f, *s, cp));
                // None scanned, but one a pattern follows is beside it now: copytruncate ran
                // during this scan. The next scan names the copy and judges this file again;
                // judged now, a line-end match among the scanned files would be taken for
                // its copy, and the real one read from its start.
                if whole.is_none()
                    && let Some((cpath, _, cid)) = find_copy_in_dir(&path, cp)
                    && self.matching(&cpath).is_some()
                    && !fresh.iter().any(|f| f.3 == cid)
                {
                    taken.insert(id);
                    i += 1;
                    continue;
                }
                let found = whole.or_else(|| {
                    others()
                        .filter(|(_, f, s, _, _)| tail::was_at_mark(f, *s, cp))
                        .max_by_key(|(_, _, s, _, _)| *s)
                });
                match found {
                    Some((cpath, cfile, csize, cid, csource)) => {
                        // A copy made at a line end before the last read holds nothing new:
                        // it starts at its end.
                        let start = cp.offset.min(*csize);
                        if let Ok(f) = cfile.try_clone()
                            && let Ok(mut t) = Tailer::at(
                                f,
                                cpath,
                                &self.cfg.limit,
                                now,
                                start,
                                cp.skipping && start == cp.offset,
                            )
                        {
                            t.source = *csource;
                            log::rotated(
                                &label,
                                &path,
                                Rotation::Copytruncate,
                                Some(cpath),
                                Some(start),
                            );
                            taken.insert(*cid);
                            self.adopt_copy(t, out);
                        }
                    }
                    None => {
                        let noticed = Noticed {
                            id,
                            path: &path,
                            old: cp,
                            seen: cp.offset,
                            short: &[],
                            source,
                        };
                        let lost = self.truncated(&noticed, now, out);
                        out.truncated.push((source, lost));
                    }
                }
                // Its old checkpoint continues nowhere else. Dropped now (after the copy's,
                // handed out above): were it kept until the file is read again, which waits
                // while the file is too short to tell from a copy, every later start would
                // find it truncated once more and count its copy's bytes as lost.
                self.used.insert(id);
                self.known.remove(&id);
                out.files.push(FileLines {
                    source,
                    lines: LineBuf::default(),
                    skipped: Vec::new(),
                    checkpoint: Checkpoint {
                        forget: true,
                        ..cp.clone()
                    },
                });
            }
            let started = if let (Some(cp), true) = (&known, resume) {
                how = Opened::Checkpoint;
                self.meanwhile.run(Window::Resuming);
                match Tailer::at(file, &path, &self.cfg.limit, now, cp.offset, cp.skipping) {
                    // Truncated and written again since it was found to hold the checkpoint:
                    // the tailer took the new bytes for those read. The next scan judges it
                    // again (truncated, its copy perhaps among the files).
                    Ok(t) if !t.resumed_at(cp) => {
                        taken.insert(id);
                        i += 1;
                        continue;
                    }
                    started => started,
                }
            } else if let Some((of, size, of_the_rest)) = self.copy_of(&file, size) {
                // A copy of a followed file (copytruncate's first step) waits for it to be
                // truncated.
                tracing::debug!(path = %path.display(), of_the_rest, "a copy of a followed file: read once that file is truncated");
                self.copies.insert(
                    id,
                    Pending {
                        path: path.clone(),
                        source,
                        of: Some(of),
                        of_the_rest,
                        size,
                        file,
                        since: now,
                    },
                );
                i += 1;
                continue;
            } else if self.too_short_to_tell(&file, size) {
                // Empty, or the start of a followed file's head: maybe a copy caught while
                // copytruncate writes it, which read from its start would repeat what was
                // read of its original. Decided once it grows (a new file then differs from
                // every head), or read from its start once it has not grown for a while.
                tracing::debug!(path = %path.display(), "a new file too short to tell from a copy being written: waiting for it to grow");
                self.copies.insert(
                    id,
                    Pending {
                        path: path.clone(),
                        source,
                        of: None,
                        of_the_rest: false,
                        size,
                        file,
                        since: now,
                    },
                );
                i += 1;
                continue;
            } else if let Some(cp) = self.copy_of_checkpoint(&file, size) {
                // A copy of a file read before that is not followed any more (truncated or
                // deleted while we were down): read from where that file was read, or from
                // its end when it was made at a line end before that.
                self.used.insert(cp.id());
                how = Opened::CopyOfCheckpoint;
                let skipping = cp.skipping && size >= cp.offset;
                Tailer::at(file, &path, &self.cfg.limit, now, cp.offset, skipping)
            } else {
                Tailer::open(file, &path, &self.cfg.limit, now)
            };
            match started {
                Ok(mut t) => {
                    t.source = source;
                    log::opened(&label, &path, how, t.committed());
                    if how == Opened::CopyOfCheckpoint {
                        self.adopt_copy(t, out);
                    } else {
                        self.tailers.push(t);
                    }
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot follow a file")
                }
            }
            taken.insert(id);
            i += 1;
        }
    }

    /// Whether the followed file the pending copy `p` was found to be a copy of is truncated
    /// now (no longer holds what was read of it).
    fn original_truncated(&self, p: &Pending) -> bool {
        p.of.and_then(|of| self.tailers.iter().find(|t| t.id() == of))
            .is_some_and(|t| matches!(t.check(), Ok(Err(_))))
    }

    /// The followed file `file` (of `size` bytes) is a copy of, if any, the copy's size it
    /// was judged on, and whether it is a copy of what that file holds since a truncation
    /// not noticed yet: it starts with that file's head and ends with the bytes that file
    /// holds at the same place; or, when that file was just truncated, it holds what was read
    /// of it, or what the file holds now ([`holds_the_rest`]).
    fn copy_of(&self, file: &File, size: u64) -> Option<(FileId, u64, bool)> {
        // The copy's last bytes are what is compared with the followed file's.
        let k = tail::TAIL.min(usize::try_from(size).unwrap_or(tail::TAIL));
        let at = size - k as u64;
        self.tailers.iter().find_map(|t| {
            if !tail::starts_with(file, &t.head_now()).unwrap_or(false) {
                let theirs = t.bytes_at(at, k).ok();
                let rest = matches!(t.check(), Ok(Err(_)))
                    && holds_the_rest(t, file, at, k, theirs.as_deref());
                return rest.then_some((t.id(), size, true));
            }
            let mut judged = size;
            // Its bytes where the copy ends are read before it is checked: read after,
            // they could be of the file truncated since the check (none, or new ones),
            // and the copy taken for a new file, read from its start.
            let theirs = t.bytes_at(at, k).ok();
            self.meanwhile.run(Window::JudgingACopy);
            let (copy, why) = match t.check() {
                Ok(Ok(())) => {
                    let mine = tail::read_at(file, at, k).ok();
                    (mine.is_some() && mine == theirs, "its end differs from the file's")
                }
                // Truncated since: a copy holds what was read.
                // Or one made at a line end it read, shorter than what was read.
                // Judged on its size now: copytruncate truncates once the copy is whole,
                // and the size probed before the check may be of a copy part written.
                Ok(Err(_)) => {
                    judged = file.metadata().map_or(size, |m| m.len());
                    let held = is_copy(file, judged, &t.checkpoint("")) || t.was_at(file, judged);
                    // Truncated and written again with the same head since it was read.
                    if !held && holds_the_rest(t, file, at, k, theirs.as_deref()) {
                        return Some((t.id(), size, true));
                    }
                    (
                        held,
                        "the file was truncated and it does not hold what was read of it",
                    )
                }
                Err(_) => (false, "the file cannot be checked"),
            };
            if !copy {
                // A new file with a followed file's head read from its start repeats what
                // was read of that file if it was a copy after all: say why it was not.
                tracing::debug!(size, of = %t.path().display(), committed = t.committed(), why, "a new file with a followed file's head is not a copy of it");
            }
            copy.then_some((t.id(), judged, false))
        })
    }

    /// Whether `file` (of `size` bytes) is shorter than the head of a followed file (or of a
    /// checkpointed one) and holds its start: a copy being written cannot be told yet.
    fn too_short_to_tell(&self, file: &File, size: u64) -> bool {
        let Ok(size) = usize::try_from(size) else {
            return false;
        };
        if size >= tail::HEAD {
            return false;
        }
        let Ok(start) = tail::read_at(file, 0, size) else {
            return false;
        };
        let prefix = |head: &[u8]| head.len() > start.len() && head.starts_with(&start);
        self.tailers.iter().any(|t| prefix(&t.head_now()))
            || self
                .known
                .values()
                .any(|cp| cp.offset > 0 && prefix(&cp.head))
    }

    /// Follows a copy that continues another file's checkpoint. Its own checkpoint is handed
    /// out at once, before anything that resets the original: a crash in between must not
    /// leave the store with neither.
    fn adopt_copy(&mut self, t: Tailer, out: &mut Polled) {
        let cp = t.checkpoint(self.source(t.source));
        self.known.insert(cp.id(), cp.clone());
        out.files.push(FileLines {
            source: t.source,
            lines: LineBuf::default(),
            skipped: Vec::new(),
            checkpoint: cp,
        });
        self.tailers.push(t);
    }

    /// Whether `file`, which holds its own checkpoint `cp`, also holds more of another file's
    /// (two files with the same first bytes, `cp` of a deleted file whose inode `file` reuses):
    /// then it is a copy of that other file, not the file `cp` was about.
    /// Only where the filesystem keeps no birth times: otherwise those tell a reused inode.
    fn holds_more_of_another(&self, file: &File, size: u64, cp: &Checkpoint) -> bool {
        if cp.born != 0 {
            return false;
        }
        self.known
            .values()
            .any(|o| o.id() != cp.id() && o.offset > cp.offset && is_copy(file, size, o))
    }

    /// The checkpoint of a file not open now that `file` holds a copy of: its head and the
    /// bytes before its offset, or exactly what it held at a line end it kept (a copy made
    /// before its last read).
    /// Of several it holds, the one read furthest: files that start alike hold each other's
    /// shorter checkpoints (and a file taken for another's continuation leaves that one's in
    /// the store too), and read on from a shorter one it would repeat what was read since.
    fn copy_of_checkpoint(&self, file: &File, size: u64) -> Option<Checkpoint> {
        let head = tail::read_at(file, 0, tail::HEAD).ok()?;
        let candidates = || {
            self.known.values().filter(|cp| {
                cp.offset > 0
                    && !cp.head.is_empty()
                    && (head.starts_with(&cp.head) || cp.head.starts_with(&head))
                    && !self.used.contains(&cp.id())
                    && !self.tailers.iter().any(|t| t.is(cp))
            })
        };
        candidates()
            .filter(|cp| tail::holds(file, size, cp).unwrap_or(false))
            .max_by_key(|cp| (cp.offset, cp.id()))
            .or_else(|| {
                candidates()
                    .find(|cp| tail::was_at_mark(file, size, cp) && !held_elsewhere(file, cp))
            })
            .cloned()
    }

    /// After a restart: files of this pattern with a checkpoint that no path names (rotated
    /// while `serve` was down) are found by identity in the pattern's directory and read to
    /// their end.
    fn finish_unnamed(&mut self, named: &rustc_hash::FxHashSet<FileId>, now: Duration) {
        for source in 0..self.cfg.patterns.len() {
            self.finish_unnamed_of(source, named, now);
        }
    }

    fn finish_unnamed_of(
        &mut self,
        source: usize,
        named: &rustc_hash::FxHashSet<FileId>,
        now: Duration,
    ) {
        let pattern = self.source(source).to_owned();
        let wanted: Vec<Checkpoint> = self
            .known
            .values()
            .filter(|c| {
                c.source == pattern
                    && !named.contains(&c.id())
                    && !self.used.contains(&c.id())
                    && !self.tailers.iter().any(|t| t.id() == c.id())
            })
            .cloned()
            .collect();
        if wanted.is_empty() {
            return;
        }
        let Some(dir) = pattern_dir(&pattern) else {
            return;
        };
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let id = FileId {
                dev: meta.dev(),
                ino: meta.ino(),
            };
            let Some(cp) = wanted.iter().find(|c| c.id() == id) else {
                continue;
            };
            let path = entry.path();
            let Ok(file) = tail::open(&path) else {
                continue;
            };
            let cp = cp.clone();
            // Only a file that still holds what was read is finished: one that does not was
            // truncated since, or is another file on a reused inode, and no pattern names it.
            if !tail::same_file(&file, &cp)
                || !tail::holds(&file, meta.len(), &cp).unwrap_or(false)
                || meta.len() == cp.offset
                || self.holds_more_of_another(&file, meta.len(), &cp)
            {
                continue;
            }
            let started = Tailer::at(file, &path, &self.cfg.limit, now, cp.offset, cp.skipping);
            if let Ok(mut t) = started {
                t.source = source;
                log::opened(
                    self.source(source),
                    &path,
                    Opened::RotatedWhileStopped,
                    cp.offset,
                );
                t.unnamed_since = Some(now);
                self.tailers.push(t);
            }
        }
    }

    fn note_state(&mut self, path: &Path, state: &PathState, source: usize) {
        let before = self.states.insert(path.to_path_buf(), state.clone());
        if before.as_ref() == Some(state) {
            return;
        }
        let label = self.source(source);
        match state {
            PathState::Regular => {
                if before.is_some_and(|b| b != PathState::Missing) {
                    log::path_back(label, path);
                }
            }
            PathState::Missing => {
                if before.is_none() {
                    log::path_missing(label, path);
                }
            }
            PathState::Unreadable(e) => {
                log::path_hostile(label, path, "unreadable", Some(e.as_str()))
            }
            other => log::path_hostile(label, path, other.as_str(), None),
        }
    }
}

/// Whether `file` is a copy of what followed file `t` holds since a truncation its tailer has
/// not noticed yet (two copytruncates within one poll's interval): it starts as that file does
/// now, and holds at `at` the `k` bytes that file holds there (`theirs`). The tailer reads that
/// file again from its start once it notices: read from its start too, the copy would repeat
/// its lines.
fn holds_the_rest(t: &Tailer, file: &File, at: u64, k: usize, theirs: Option<&[u8]>) -> bool {
    let Ok(head) = t.bytes_at(0, tail::HEAD) else {
        return false;
    };
    tail::starts_with(file, &head).unwrap_or(false)
        && theirs.is_some()
        && tail::read_at(file, at, k).ok().as_deref() == theirs
}

/// What `path` is, and the open file if it is a readable regular file (symlinks followed:
/// the file is its target's).
fn probe(path: &Path) -> (PathState, Option<(File, u64, FileId)>) {
    probe_with(path, tail::open)
}

/// [`probe`], opening a regular file with `open` (tests put a change of the path between the
/// look at it and the open).
fn probe_with(
    path: &Path,
    open: impl FnOnce(&Path) -> io::Result<File>,
) -> (PathState, Option<(File, u64, FileId)>) {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return (gone(path), None),
        Err(e) => return (PathState::Unreadable(e.kind().to_string()), None),
    };
    let state = kind(&meta);
    if state != PathState::Regular {
        return (state, None);
    }
    let file = match open(path) {
        Ok(f) => f,
        // Gone since the look at it (deleted, or a symlink's target): not unreadable.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return (gone(path), None),
        Err(e) => return (PathState::Unreadable(e.kind().to_string()), None),
    };
    // The file opened is the one to follow (the path may have changed since the stat).
    match file.metadata() {
        Ok(m) if m.is_file() => {
            let id = FileId {
                dev: m.dev(),
                ino: m.ino(),
            };
            (PathState::Regular, Some((file, m.len(), id)))
        }
        Ok(m) => (kind(&m), None),
        Err(e) => (PathState::Unreadable(e.kind().to_string()), None),
    }
}

/// What a path found naming nothing is: a dangling symlink if a symlink is there whose
/// target is still missing, else missing — also when something was put there since the look
/// (a file created at once after a deletion, as a rotation does), which the next poll sees.
fn gone(path: &Path) -> PathState {
    match std::fs::symlink_metadata(path) {
        Ok(m)
            if m.file_type().is_symlink()
                && std::fs::metadata(path).is_err_and(|e| e.kind() == io::ErrorKind::NotFound) =>
        {
            PathState::DanglingSymlink
        }
        _ => PathState::Missing,
    }
}

/// What kind of file `meta` is about.
fn kind(meta: &std::fs::Metadata) -> PathState {
    let ft = meta.file_type();
    if ft.is_dir() {
        PathState::Directory
    } else if ft.is_fifo() {
        PathState::Fifo
    } else if ft.is_socket() {
        PathState::Socket
    } else if ft.is_char_device() || ft.is_block_device() {
        PathState::Device
    } else {
        PathState::Regular
    }
}

/// Whether `file` (of `size` bytes, some) holds a copy of what `cp` says was read: the same
/// (non-empty) head as far as it goes, and the same bytes before `cp.offset`; and it was not
/// born before `cp`'s file (where the filesystem keeps birth times). An older file that starts
/// alike (every file of the application may begin with the same header) is another file, even
/// when little or nothing was read: taken for the copy, its bytes were counted lost.
fn is_copy(file: &File, size: u64, cp: &Checkpoint) -> bool {
    let born = file.metadata().map(|m| tail::born(&m)).unwrap_or(0);
    !cp.head.is_empty()
        && size > 0
        && (born == 0 || cp.born == 0 || born >= cp.born)
        && tail::holds(file, size, cp).unwrap_or(false)
}

/// Opens the copy `cid` at `path` (found a copy while its original was intact): the file,
/// its size, and whether it holds what `old` says was read of the original.
fn open_copy(path: &Path, cid: FileId, old: &Checkpoint) -> Option<(File, u64, bool)> {
    let file = tail::open(path).ok()?;
    let m = file.metadata().ok()?;
    if (m.dev(), m.ino()) != (cid.dev, cid.ino) {
        return None;
    }
    let holds = is_copy(&file, m.len(), old);
    Some((file, m.len(), holds))
}

/// A copy of the truncated file `old` beside `path`: its name, size and identity.
fn find_copy_in_dir(path: &Path, old: &Checkpoint) -> Option<(PathBuf, u64, FileId)> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() || (meta.dev(), meta.ino()) == (old.dev, old.ino) {
            continue;
        }
        let Ok(file) = tail::open(&entry.path()) else {
            continue;
        };
        if meta.len() >= old.offset && is_copy(&file, meta.len(), old) {
            let id = FileId {
                dev: meta.dev(),
                ino: meta.ino(),
            };
            return Some((entry.path(), meta.len(), id));
        }
    }
    None
}

/// Whether another regular file in the directory of `cp`'s pattern holds `cp` whole (its head
/// and the bytes before its offset): that file is its copy. A file that only equals what `cp`'s
/// file held at an earlier line end may be a short copy, or a new file that starts as every
/// file of the application does (the same header line); taking it for the copy handed the
/// checkpoint away from the real one, which was then read from its start.
fn held_elsewhere(file: &File, cp: &Checkpoint) -> bool {
    let Ok(me) = file.metadata() else {
        return false;
    };
    let Some(dir) = pattern_dir(&cp.source) else {
        return false;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|entry| {
        let Ok(meta) = entry.metadata() else {
            return false;
        };
        if !meta.is_file() || (meta.dev(), meta.ino()) == (me.dev(), me.ino()) {
            return false;
        }
        tail::open(&entry.path())
            .and_then(|f| tail::holds(&f, meta.len(), cp))
            .unwrap_or(false)
    })
}

/// The directory a pattern's files sit in, when it has no glob characters itself.
pub fn pattern_dir(pattern: &str) -> Option<PathBuf> {
    let dir = match Path::new(pattern).parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    (!dir.to_string_lossy().contains(['*', '?', '['])).then_some(dir)
}

/// Follows `cfg.patterns` until `shutdown`: polls every 250 ms, and at once when a
/// pattern's directory changes or a backlog remains, and sends each file's lines with its
/// checkpoint, labelled with its pattern and given that pattern's default runtime
/// (`runtimes`, one per pattern). File reads run on the blocking pool.
pub async fn run(
    mut cfg: FollowConfig,
    runtimes: Vec<Option<Runner>>,
    checkpoints: Vec<Checkpoint>,
    metrics: FileMetrics,
    tx: mpsc::Sender<Batch>,
    shutdown: CancellationToken,
) {
    let sources = cfg.patterns.clone();
    for s in &sources {
        metrics.init(s);
    }
    let (wake_tx, mut wake) = mpsc::channel::<()>(1);
    let mut dirs: Vec<PathBuf> = sources.iter().filter_map(|p| pattern_dir(p)).collect();
    dirs.sort();
    dirs.dedup();
    let _watchers: Vec<_> = dirs
        .iter()
        .filter_map(|d| watch_dir(d, wake_tx.clone()))
        .collect();
    let start = tokio::time::Instant::now();
    cfg.wall_at_start = crate::clock::Clock::system().now().millis();
    let mut follower = Follower::new(cfg, &checkpoints);
    drop(checkpoints);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    // The core was told every file source starts behind; the first poll says where each is.
    let mut behind: Vec<bool> = vec![true; sources.len()];
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
            Some(()) = wake.recv() => {}
        }
        loop {
            let now = start.elapsed();
            let Ok((back, polled)) = tokio::task::spawn_blocking(move || {
                let p = follower.poll(now);
                (follower, p)
            })
            .await
            else {
                return;
            };
            follower = back;
            for (source, lost) in &polled.truncated {
                if *lost > 0 {
                    metrics.truncated(&sources[*source], *lost);
                }
            }
            let more = polled.more;
            let mut sent = vec![false; sources.len()];
            for f in polled.files {
                let Some(label) = sources.get(f.source) else {
                    continue;
                };
                let mut batch =
                    Batch::new(label, runtimes.get(f.source).copied().flatten(), f.lines);
                batch.skipped = f.skipped;
                batch.backlog = more;
                batch.position = Some(f.checkpoint);
                sent[f.source] = true;
                if tx.send(batch).await.is_err() {
                    return;
                }
            }
            for (i, label) in sources.iter().enumerate() {
                if !sent[i] && behind[i] != more {
                    let mut batch = Batch::new(
                        label,
                        runtimes.get(i).copied().flatten(),
                        LineBuf::default(),
                    );
                    batch.backlog = more;
                    if tx.send(batch).await.is_err() {
                        return;
                    }
                }
                behind[i] = more;
            }
            if !more {
                break;
            }
        }
    }
}

/// Watches `dir` (rotation creates and renames files there) and sends a wake-up on any
/// change; `None` if the platform offers no watcher.
fn watch_dir(dir: &Path, wake: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let mut w = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Reading a file (ours included) raises access events: waking on them would make
        // every poll wake the follower again, a loop.
        if let Ok(e) = &event
            && matches!(e.kind, notify::EventKind::Access(_))
        {
            return;
        }
        // A full channel already holds a wake-up.
        let _ = wake.try_send(());
    })
    .ok()?;
    w.watch(dir, notify::RecursiveMode::NonRecursive).ok()?;
    Some(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_gone_between_the_look_and_the_open_is_missing_not_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        std::fs::write(&path, "a line\n").unwrap();
        let (state, file) = probe_with(&path, |p| {
            std::fs::remove_file(p)?;
            tail::open(p)
        });
        assert_eq!(state, PathState::Missing);
        assert!(file.is_none());
        // Through a symlink whose target goes: a dangling symlink.
        let target = dir.path().join("target.log");
        std::fs::write(&target, "a line\n").unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let (state, _) = probe_with(&path, |p| {
            std::fs::remove_file(&target)?;
            tail::open(p)
        });
        assert_eq!(state, PathState::DanglingSymlink);
    }

    /// A regular file made again at the path between the failed open and the look at what
    /// is there (the test in `hostile_paths` once saw this): missing for that poll, never a
    /// dangling symlink, which would warn of a state the path was never in.
    #[test]
    fn a_file_made_again_right_after_it_went_is_missing_not_a_dangling_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        std::fs::write(&path, "a line\n").unwrap();
        let (state, file) = probe_with(&path, |p| {
            std::fs::remove_file(p)?;
            let opened = tail::open(p);
            std::fs::write(p, "a line\n")?;
            opened
        });
        assert_eq!(state, PathState::Missing);
        assert!(file.is_none());
        assert_eq!(gone(&path), PathState::Missing);
        // A symlink made in its place whose target exists is no dangling symlink either.
        std::fs::remove_file(&path).unwrap();
        let target = dir.path().join("target.log");
        std::fs::write(&target, "a line\n").unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        assert_eq!(gone(&path), PathState::Missing);
        std::fs::remove_file(&target).unwrap();
        assert_eq!(gone(&path), PathState::DanglingSymlink);
    }

    #[test]
    fn a_fifo_put_in_a_files_place_before_the_open_neither_blocks_nor_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        std::fs::write(&path, "a line\n").unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let probed = path.clone();
        // A thread of its own: a blocking open would wait for a writer that never comes.
        std::thread::spawn(move || {
            let (state, file) = probe_with(&probed, |p| {
                std::fs::remove_file(p)?;
                let made = std::process::Command::new("mkfifo").arg(p).status()?;
                assert!(made.success(), "mkfifo");
                tail::open(p)
            });
            let _ = tx.send((state, file.is_some()));
        });
        let (state, followed) = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the probe returns (a blocking open of the FIFO never does)");
        assert_eq!(state, PathState::Fifo);
        assert!(!followed);
    }
}
