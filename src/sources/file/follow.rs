//! One configured path or glob: which files to read, and from where.
//!
//! A [`Follower`] is synchronous and takes time as an argument, so a model test can drive it
//! step by step; [`run`] is the task that polls it in `serve`. Each poll scans the pattern
//! (a literal path matches itself, existing or not) and keeps one [`Tailer`] per file
//! identity, then reads every tailer:
//! - a file found under a new name keeps its tailer (and its checkpoint, which is keyed by
//!   identity); a new file at a path gets its own, from its start;
//! - a file no scanned path names any more (renamed away, deleted, replaced by a directory) is
//!   still read through its descriptor: until it has been deleted and read to its end, or has
//!   not grown for `close_inactive`;
//! - a file that lost the bytes its tailer verified was truncated: if a followed file holds a
//!   copy of them (copytruncate with the rotated name in the glob), the copy is read from the
//!   checkpoint on, exactly once; otherwise the loss is counted and logged once;
//! - a new file whose head is a followed file's head is a copy of it (copytruncate's first
//!   step) and waits, unread, until that file is truncated;
//! - after a restart, checkpoints of files that no path names any more are looked up in the
//!   pattern's directory by identity, so a file rotated while `serve` was down is finished.
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

use super::tail::{self, Tailer};
use super::{Checkpoint, FileId, FileMetrics};
use crate::event::Runner;
use crate::sources::batch::Batch;

/// Most bytes read from one file per poll, so a backlog streams and other files get turns.
const READ_LIMIT: u64 = 4 << 20;

#[derive(Debug, Clone)]
pub struct FollowConfig {
    /// The configured path or glob; also the source label of every file it matches.
    pub pattern: String,
    pub max_line: usize,
    /// How long a file no path names any more is still read after it last grew.
    pub close_inactive: Duration,
    pub read_limit: u64,
}

impl FollowConfig {
    pub fn new(pattern: &str, max_line: usize) -> FollowConfig {
        FollowConfig {
            pattern: pattern.to_owned(),
            max_line,
            close_inactive: Duration::from_secs(30),
            read_limit: READ_LIMIT,
        }
    }
}

/// Lines of one file and the checkpoint after them.
#[derive(Debug)]
pub struct FileLines {
    pub lines: Vec<Vec<u8>>,
    pub checkpoint: Checkpoint,
}

#[derive(Debug, Default)]
pub struct Polled {
    pub files: Vec<FileLines>,
    /// Some file has more to read right now: poll again at once.
    pub more: bool,
    /// Bytes known to be lost to truncations in this poll.
    pub truncated_bytes: u64,
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

/// A new file that looks like a copy of a followed one, held unread until that one is
/// truncated (copytruncate copies, then truncates at once).
#[derive(Debug)]
struct Pending {
    path: PathBuf,
    /// The followed file it is a copy of; `None` while it is too short to tell (empty, or a
    /// prefix of a followed file's head: maybe a copy seen while it is being written).
    of: Option<FileId>,
    size: u64,
    file: File,
    since: Duration,
}

/// How long a copy waits for its original's truncation before it is taken for a file of its
/// own (read from its start).
const COPY_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub struct Follower {
    cfg: FollowConfig,
    literal: bool,
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
}

impl Follower {
    /// A follower that resumes from `checkpoints` (all of the store's; those of files this
    /// pattern matches, by identity, are used).
    pub fn new(cfg: FollowConfig, checkpoints: &[Checkpoint]) -> Follower {
        Follower {
            literal: !cfg.pattern.contains(['*', '?', '[']),
            cfg,
            tailers: Vec::new(),
            known: checkpoints.iter().map(|c| (c.id(), c.clone())).collect(),
            copies: FxHashMap::default(),
            states: FxHashMap::default(),
            started: false,
            used: rustc_hash::FxHashSet::default(),
        }
    }

    pub fn source(&self) -> &str {
        &self.cfg.pattern
    }

    /// Files open now.
    pub fn open_files(&self) -> usize {
        self.tailers.len()
    }

    /// Scans, then reads what is new in every file.
    pub fn poll(&mut self, now: Duration) -> Polled {
        let mut out = Polled::default();
        self.scan(now, &mut out);
        let mut i = 0;
        while i < self.tailers.len() {
            if self.read_one(i, now, &mut out) {
                i += 1;
            } else {
                self.tailers.swap_remove(i);
            }
        }
        out
    }

    /// Reads tailer `i`; `false` when it is finished and closed.
    fn read_one(&mut self, i: usize, now: Duration, out: &mut Polled) -> bool {
        let source = self.cfg.pattern.clone();
        let t = &mut self.tailers[i];
        let cut = match t.check() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(path = %t.path().display(), error = %e, "cannot check a followed file");
                return true;
            }
        };
        let mut lines = Vec::new();
        if let Err(cut) = cut {
            let id = t.id();
            let old = t.checkpoint(&source);
            let path = t.path().to_path_buf();
            if let Err(e) = t.restart(now) {
                tracing::warn!(path = %path.display(), error = %e, "cannot reread a truncated file");
                return true;
            }
            out.truncated_bytes += self.truncated(id, &path, &old, cut.seen, now, out);
        }
        let t = &mut self.tailers[i];
        let read = match t.read(self.cfg.read_limit, now) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(path = %t.path().display(), error = %e, "cannot read a followed file");
                return true;
            }
        };
        lines.extend(read.lines);
        out.more |= read.more;
        let idle = now.saturating_sub(t.last_growth) >= self.cfg.close_inactive;
        let finished = !read.more && (read.deleted || (t.unnamed_since.is_some() && idle));
        if finished {
            t.finish(&mut lines);
        }
        let mut cp = t.checkpoint(&source);
        cp.forget = finished && read.deleted;
        let changed = self.known.get(&cp.id()).is_none_or(|k| {
            (k.offset, k.skipping, k.tail_crc, &k.head, k.forget)
                != (cp.offset, cp.skipping, cp.tail_crc, &cp.head, cp.forget)
        });
        if finished {
            tracing::info!(path = %cp.path, deleted = read.deleted, read_to = cp.offset, "closed a followed file");
        }
        if !lines.is_empty() || changed {
            if cp.forget {
                self.known.remove(&cp.id());
            } else {
                self.known.insert(cp.id(), cp.clone());
            }
            out.files.push(FileLines {
                lines,
                checkpoint: cp,
            });
        }
        !finished
    }

    /// File `id` lost what was read of it (the checkpoint `old`): read a followed copy from
    /// there, or count and log what is lost. Returns the bytes known lost.
    fn truncated(
        &mut self,
        id: FileId,
        path: &Path,
        old: &Checkpoint,
        seen: u64,
        now: Duration,
        out: &mut Polled,
    ) -> u64 {
        // Copies of it found while it was intact: one that holds what was read goes on from
        // there (two such hold the same bytes up to there; each goes on); a shorter one was
        // checked against the file then and holds nothing new: it starts at its end.
        let pending: Vec<(FileId, PathBuf)> = self
            .copies
            .iter()
            .filter(|(_, p)| p.of == Some(id))
            .map(|(c, p)| (*c, p.path.clone()))
            .collect();
        let mut continued = false;
        for (cid, cpath) in pending {
            self.copies.remove(&cid);
            let Some((file, len, holds)) = open_copy(&cpath, cid, old) else {
                continue;
            };
            let (start, skipping) = if holds {
                continued = true;
                (old.offset, old.skipping)
            } else if len < old.offset {
                (len, false)
            } else {
                // Grew into something else: a file of its own, found again by the next scan.
                continue;
            };
            match Tailer::at(file, &cpath, self.cfg.max_line, now, start, skipping) {
                Ok(t) => {
                    tracing::info!(path = %path.display(), copy = %cpath.display(), from = start,
                        "file truncated (copytruncate): reading its rotated copy from where it was read");
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
        // Not followed: the loss is what is known to have existed past what was read; a copy
        // in the same directory tells exactly.
        let (lost_to, copy) = match find_copy_in_dir(path, old) {
            Some((p, len)) => (len, Some(p)),
            None => (seen, None),
        };
        let lost = lost_to.saturating_sub(old.offset);
        tracing::warn!(
            path = %path.display(),
            from = old.offset,
            to = lost_to,
            lost_bytes = lost,
            unfollowed_copy = copy.as_ref().map(|p| p.display().to_string()),
            "file truncated: bytes after what was read are lost unless its rotated copy is followed (add it to the glob)"
        );
        lost
    }

    fn scan(&mut self, now: Duration, out: &mut Polled) {
        let paths: Vec<PathBuf> = if self.literal {
            vec![PathBuf::from(&self.cfg.pattern)]
        } else {
            match glob::glob(&self.cfg.pattern) {
                Ok(it) => it.filter_map(Result::ok).collect(),
                Err(_) => Vec::new(),
            }
        };
        let mut named: rustc_hash::FxHashSet<FileId> = rustc_hash::FxHashSet::default();
        let mut fresh: Vec<(PathBuf, File, u64, FileId)> = Vec::new();
        for path in paths {
            let (state, file) = probe(&path);
            self.note_state(&path, &state);
            let Some((file, size, id)) = file else {
                continue;
            };
            if !named.insert(id) {
                continue; // the same file under two names (a symlink and its target)
            }
            if let Some(t) = self.tailers.iter_mut().find(|t| t.id() == id) {
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
            fresh.push((path, file, size, id));
        }
        // A copy whose original was not truncated soon, or that went away unread, is a file
        // of its own: read from its start (through its descriptor if it has no name).
        let released: Vec<FileId> = self
            .copies
            .iter()
            .filter(|(id, p)| !named.contains(id) || now.saturating_sub(p.since) >= COPY_WAIT)
            .map(|(id, _)| *id)
            .collect();
        for id in released {
            let Some(p) = self.copies.remove(&id) else {
                continue;
            };
            if let Ok(mut t) = Tailer::open(p.file, &p.path, self.cfg.max_line, now) {
                if !named.contains(&id) {
                    t.unnamed_since = Some(now);
                }
                self.tailers.push(t);
            }
        }
        for t in &mut self.tailers {
            if !named.contains(&t.id()) && t.unnamed_since.is_none() {
                tracing::info!(path = %t.path().display(), "followed file no longer named by the pattern: reading it until it is deleted or idle");
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
        // the new ones.
        fresh.sort_by_key(|f| !self.known.contains_key(&f.3));
        let mut taken: rustc_hash::FxHashSet<FileId> = rustc_hash::FxHashSet::default();
        let mut i = 0;
        while i < fresh.len() {
            let (path, _, size, id) = &fresh[i];
            let (path, size, id) = (path.clone(), *size, *id);
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
            let mut copy = false;
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
                let found = fresh.iter().find(|(_, f, s, cid)| {
                    *cid != id
                        && !self
                            .known
                            .get(cid)
                            .is_some_and(|own| tail::same_file(f, own))
                        && !taken.contains(cid)
                        && is_copy(f, *s, cp)
                });
                match found {
                    Some((cpath, cfile, csize, cid)) => {
                        let start = cp.offset.min(*csize);
                        if let Ok(f) = cfile.try_clone()
                            && let Ok(t) = Tailer::at(
                                f,
                                cpath,
                                self.cfg.max_line,
                                now,
                                start,
                                cp.skipping && start == cp.offset,
                            )
                        {
                            tracing::info!(path = %path.display(), copy = %cpath.display(), from = start,
                                "file truncated while stopped (copytruncate): reading its rotated copy from where it was read");
                            taken.insert(*cid);
                            self.adopt_copy(t, out);
                        }
                    }
                    None => {
                        out.truncated_bytes += self.truncated(id, &path, cp, cp.offset, now, out);
                    }
                }
                // Its old checkpoint continues nowhere else (it still tells copies of it).
                self.used.insert(id);
            }
            let started = if let (Some(cp), true) = (&known, resume) {
                Tailer::at(file, &path, self.cfg.max_line, now, cp.offset, cp.skipping)
            } else if let Some(of) = self.copy_of(&file, size) {
                // A copy of a followed file (copytruncate's first step) waits for it to be
                // truncated.
                tracing::debug!(path = %path.display(), "a copy of a followed file: read once that file is truncated");
                self.copies.insert(
                    id,
                    Pending {
                        path: path.clone(),
                        of: Some(of),
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
                        of: None,
                        size,
                        file,
                        since: now,
                    },
                );
                i += 1;
                continue;
            } else if let Some(cp) = self.copy_of_checkpoint(&file, size) {
                // A copy of a file read before that is not followed any more (truncated or
                // deleted while we were down): read from where that file was read.
                tracing::info!(path = %path.display(), of = %cp.path, from = cp.offset,
                    "a copy of a file read before: reading it from where that file was read");
                self.used.insert(cp.id());
                copy = true;
                Tailer::at(file, &path, self.cfg.max_line, now, cp.offset, cp.skipping)
            } else {
                Tailer::open(file, &path, self.cfg.max_line, now)
            };
            match started {
                Ok(t) if copy => self.adopt_copy(t, out),
                Ok(t) => self.tailers.push(t),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot follow a file")
                }
            }
            taken.insert(id);
            i += 1;
        }
    }

    /// The followed file `file` (of `size` bytes) is a copy of, if any: it starts with that
    /// file's head and ends with the bytes that file holds at the same place; or, when that
    /// file was just truncated, it holds what was read of it.
    fn copy_of(&self, file: &File, size: u64) -> Option<FileId> {
        self.tailers
            .iter()
            .find(|t| {
                if !tail::starts_with(file, t.head()).unwrap_or(false) {
                    return false;
                }
                match t.check() {
                    Ok(Ok(())) => {
                        let k = tail::TAIL.min(usize::try_from(size).unwrap_or(tail::TAIL));
                        let at = size - k as u64;
                        let mine = tail::read_at(file, at, k).ok();
                        mine.is_some_and(|m| t.bytes_at(at, k).ok() == Some(m))
                    }
                    // Truncated since: a copy holds what was read. (One shorter than that, made
                    // before the last read and truncated after it, cannot be told from a new
                    // file with the same head: it is read as new, which doubles its lines.)
                    Ok(Err(_)) => is_copy(file, size, &t.checkpoint("")),
                    Err(_) => false,
                }
            })
            .map(Tailer::id)
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
        self.tailers.iter().any(|t| prefix(t.head()))
            || self
                .known
                .values()
                .any(|cp| cp.offset > 0 && prefix(&cp.head))
    }

    /// Follows a copy that continues another file's checkpoint. Its own checkpoint is handed
    /// out at once, before anything that resets the original: a crash in between must not
    /// leave the store with neither.
    fn adopt_copy(&mut self, t: Tailer, out: &mut Polled) {
        let cp = t.checkpoint(&self.cfg.pattern);
        self.known.insert(cp.id(), cp.clone());
        out.files.push(FileLines {
            lines: Vec::new(),
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

    /// The checkpoint of a file not open now that `file` holds a copy of (its head and the
    /// bytes before its offset).
    fn copy_of_checkpoint(&self, file: &File, size: u64) -> Option<Checkpoint> {
        let head = tail::read_at(file, 0, tail::HEAD).ok()?;
        self.known
            .values()
            .filter(|cp| {
                cp.offset > 0
                    && !cp.head.is_empty()
                    && head.starts_with(&cp.head)
                    && !self.used.contains(&cp.id())
                    && !self.tailers.iter().any(|t| t.is(cp))
            })
            .find(|cp| tail::holds(file, size, cp).unwrap_or(false))
            .cloned()
    }

    /// After a restart: files of this pattern with a checkpoint that no path names (rotated
    /// while `serve` was down) are found by identity in the pattern's directory and read to
    /// their end.
    fn finish_unnamed(&mut self, named: &rustc_hash::FxHashSet<FileId>, now: Duration) {
        let wanted: Vec<Checkpoint> = self
            .known
            .values()
            .filter(|c| {
                c.source == self.cfg.pattern
                    && !named.contains(&c.id())
                    && !self.used.contains(&c.id())
            })
            .cloned()
            .collect();
        if wanted.is_empty() {
            return;
        }
        let Some(dir) = pattern_dir(&self.cfg.pattern) else {
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
            let Ok(file) = File::open(&path) else {
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
            let started = Tailer::at(file, &path, self.cfg.max_line, now, cp.offset, cp.skipping);
            if let Ok(mut t) = started {
                tracing::info!(path = %path.display(), from = cp.offset, "finishing a file rotated while stopped");
                t.unnamed_since = Some(now);
                self.tailers.push(t);
            }
        }
    }

    fn note_state(&mut self, path: &Path, state: &PathState) {
        let before = self.states.insert(path.to_path_buf(), state.clone());
        if before.as_ref() == Some(state) {
            return;
        }
        match state {
            PathState::Regular => {
                if before.is_some_and(|b| b != PathState::Missing) {
                    tracing::info!(path = %path.display(), "followed path is a readable file again");
                }
            }
            PathState::Missing => {
                if before.is_none() {
                    tracing::info!(path = %path.display(), "followed path does not exist yet");
                }
            }
            other => {
                tracing::warn!(path = %path.display(), state = ?other, "followed path is not a readable regular file: waiting for one");
            }
        }
    }
}

/// What `path` is, and the open file if it is a readable regular file (symlinks followed:
/// the file is its target's).
fn probe(path: &Path) -> (PathState, Option<(File, u64, FileId)>) {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let dangling = std::fs::symlink_metadata(path).is_ok();
            let state = if dangling {
                PathState::DanglingSymlink
            } else {
                PathState::Missing
            };
            return (state, None);
        }
        Err(e) => return (PathState::Unreadable(e.kind().to_string()), None),
    };
    let ft = meta.file_type();
    let state = if ft.is_dir() {
        PathState::Directory
    } else if ft.is_fifo() {
        PathState::Fifo
    } else if ft.is_socket() {
        PathState::Socket
    } else if ft.is_char_device() || ft.is_block_device() {
        PathState::Device
    } else {
        PathState::Regular
    };
    if state != PathState::Regular {
        return (state, None);
    }
    let file = match File::open(path) {
        Ok(f) => f,
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
        Ok(_) => (PathState::Missing, None),
        Err(e) => (PathState::Unreadable(e.kind().to_string()), None),
    }
}

/// Whether `file` (of `size` bytes) holds a copy of what `cp` says was read: the same
/// (non-empty) head and the same bytes before `cp.offset`.
fn is_copy(file: &File, size: u64, cp: &Checkpoint) -> bool {
    tail::starts_with(file, &cp.head).unwrap_or(false)
        && tail::holds(file, size, cp).unwrap_or(false)
}

/// Opens the copy `cid` at `path` (found a copy while its original was intact): the file,
/// its size, and whether it holds what `old` says was read of the original.
fn open_copy(path: &Path, cid: FileId, old: &Checkpoint) -> Option<(File, u64, bool)> {
    let file = File::open(path).ok()?;
    let m = file.metadata().ok()?;
    if (m.dev(), m.ino()) != (cid.dev, cid.ino) {
        return None;
    }
    let holds = is_copy(&file, m.len(), old);
    Some((file, m.len(), holds))
}

/// A copy of the truncated file `old` beside `path` that no pattern follows, and its size.
fn find_copy_in_dir(path: &Path, old: &Checkpoint) -> Option<(PathBuf, u64)> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() || (meta.dev(), meta.ino()) == (old.dev, old.ino) {
            continue;
        }
        let Ok(file) = File::open(entry.path()) else {
            continue;
        };
        if meta.len() >= old.offset && is_copy(&file, meta.len(), old) {
            return Some((entry.path(), meta.len()));
        }
    }
    None
}

/// The directory a pattern's files sit in, when it has no glob characters itself.
pub fn pattern_dir(pattern: &str) -> Option<PathBuf> {
    let dir = match Path::new(pattern).parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    (!dir.to_string_lossy().contains(['*', '?', '['])).then_some(dir)
}

/// Follows `cfg.pattern` until `shutdown`: polls every 250 ms, and at once when the
/// directory changes or a backlog remains, and sends each file's lines with its checkpoint.
/// File reads run on the blocking pool.
pub async fn run(
    cfg: FollowConfig,
    checkpoints: Vec<Checkpoint>,
    runtime: Option<Runner>,
    metrics: FileMetrics,
    tx: mpsc::Sender<Batch>,
    shutdown: CancellationToken,
) {
    let source = cfg.pattern.clone();
    metrics.init(&source);
    let (wake_tx, mut wake) = mpsc::channel::<()>(1);
    let _watcher = pattern_dir(&cfg.pattern).and_then(|d| watch_dir(&d, wake_tx));
    let mut follower = Follower::new(cfg, &checkpoints);
    drop(checkpoints);
    let start = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    // The core was told every file source starts behind; the first poll says where it is.
    let mut behind = true;
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
            if polled.truncated_bytes > 0 {
                metrics.truncated(&source, polled.truncated_bytes);
            }
            let more = polled.more;
            let sent_any = !polled.files.is_empty();
            for f in polled.files {
                let mut batch = Batch::new(&source, runtime, f.lines);
                batch.backlog = more;
                batch.position = Some(f.checkpoint);
                if tx.send(batch).await.is_err() {
                    return;
                }
            }
            if !sent_any && behind != more {
                let mut batch = Batch::new(&source, runtime, Vec::new());
                batch.backlog = more;
                if tx.send(batch).await.is_err() {
                    return;
                }
            }
            behind = more;
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
