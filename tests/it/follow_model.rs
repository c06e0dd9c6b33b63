//! Model-based test of the file follower: random sequences of writes, rotations of every
//! kind, truncations, deletes, a directory swap, restarts and crashes (a suffix of what was
//! handed out is never committed) against a ledger of every line written. Time is an
//! argument: nothing sleeps.
//!
//! The oracle: every line handed out and committed is a whole line that was written, none
//! twice, in the order it was written within its file; and at the end every line is there,
//! except lines a truncation or a delete destroyed before they could be read (counted by the
//! model as it goes; with a glob that covers rotated names, copytruncate destroys nothing).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use claimcheck::sources::file::{Checkpoint, FileId, FollowConfig, Follower, Window};
use proptest::prelude::*;

use crate::support::empty;

/// Every file starts with the same header, longer than the head that identifies a file: a
/// new file at the path looks like the old one until its lines differ.
fn header() -> String {
    format!("# app log {}\n", "h".repeat(300))
}

#[derive(Debug, Clone)]
enum Op {
    /// Append lines to the current file.
    Append(u8),
    /// Append a line in two writes, a poll between them.
    Partial,
    Poll,
    /// Time passes (past `close_inactive` for 40 s).
    Advance(u8),
    /// rename + create, then `late` lines written to the renamed file.
    RenameCreate(u8),
    /// copy to a rotated name, then truncate in place. 1: a poll sees the copy empty while
    /// it is being written, 2: with half its bytes (after a poll that read the file).
    CopyTruncate(u8),
    /// Two copytruncates with `n` lines written between them, no poll in between.
    CopyTruncateTwice(u8),
    /// copy to a rotated name, a poll (which finds the copy beside its original), then the
    /// truncate: a slow copytruncate.
    CopyPollTruncate,
    /// A copy shorter than what is read of its original by the time it is truncated, seen
    /// only after that (made just before a poll's read, truncated just after it): copied
    /// under a name no pattern matches, `n` lines appended, a poll, the truncate, the copy
    /// renamed to a rotated name, a poll. With `true`, the follower restarts before that poll
    /// (the copy is first seen by a new follower, from the checkpoint's kept line ends).
    ShortCopy(u8, bool),
    /// copytruncate after a poll's scan and before its reads (the copy is first seen by the
    /// read that finds the file truncated). With `true`, the copy gets the inode of a file
    /// deleted while the follower was down whose checkpoint is still in the store (inodes are
    /// reused at once on ext4): the follower restarts first, to load that checkpoint.
    CopyTruncateInPoll(bool),
    /// A copy (copytruncate's first step) found by a poll whose judging of it (is it a copy
    /// of the followed file?) the truncate interrupts. With `true`, the poll finds the copy
    /// part written, and copytruncate finishes it before the truncate.
    CopyTruncateWhileJudged(bool),
    /// copytruncate of a followed file with `n` lines not read yet, then more lines written
    /// to it than it held, all between a poll's check of that file (intact) and its read.
    CopyTruncateWhileRead(u8),
    /// The same between a restarted follower's finding that the file holds its checkpoint
    /// and its resuming there.
    CopyTruncateWhileResumed(u8),
    Truncate,
    /// truncate, then the same header and new lines.
    RewriteSameHead,
    Delete,
    /// The path becomes a directory (the file is deleted); the next write puts a file back.
    DirSwap,
    Restart,
    /// Poll, commit only the first `keep` files' batches, then crash and restart.
    Crash(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1u8..5).prop_map(Op::Append),
        2 => Just(Op::Partial),
        6 => Just(Op::Poll),
        1 => (1u8..60).prop_map(Op::Advance),
        2 => (0u8..4).prop_map(Op::RenameCreate),
        2 => (0u8..3).prop_map(Op::CopyTruncate),
        1 => (0u8..3).prop_map(Op::CopyTruncateTwice),
        1 => Just(Op::CopyPollTruncate),
        1 => (1u8..3, any::<bool>()).prop_map(|(n, restart)| Op::ShortCopy(n, restart)),
        1 => any::<bool>().prop_map(Op::CopyTruncateInPoll),
        1 => any::<bool>().prop_map(Op::CopyTruncateWhileJudged),
        1 => (0u8..3).prop_map(Op::CopyTruncateWhileRead),
        1 => (0u8..3).prop_map(Op::CopyTruncateWhileResumed),
        1 => Just(Op::Truncate),
        1 => Just(Op::RewriteSameHead),
        1 => Just(Op::Delete),
        1 => Just(Op::DirSwap),
        1 => Just(Op::Restart),
        2 => (0u8..3).prop_map(Op::Crash),
    ]
}

/// One physical file the writer wrote: its name now and the sequence numbers in it.
#[derive(Debug)]
struct Written {
    path: PathBuf,
    seqs: Vec<u64>,
    /// The follower has it open (polled since it was created and since the last restart).
    open: bool,
    /// Deleted (or never to be read again).
    gone: bool,
}

struct World {
    dir: PathBuf,
    /// Rotated names are followed (a glob, or a literal path and a glob both matching it).
    glob: bool,
    cfg: FollowConfig,
    follower: Follower,
    store: BTreeMap<FileId, Checkpoint>,
    now: Duration,
    files: Vec<Written>,
    /// Index of the file at `app.log`, if one is there.
    current: Option<usize>,
    next_seq: u64,
    rotations: u32,
    /// Lines committed, in order.
    delivered: Vec<u64>,
    /// Lines a destructive operation may have destroyed before they were read.
    lossable: BTreeSet<u64>,
    /// Per line: the file it was written to first (its copies hold it too).
    lineage: BTreeMap<u64, usize>,
    polled_since_restart: bool,
    /// Bytes the follower said were lost to truncations.
    said_lost: u64,
    /// What it may say: the bytes of lines a destructive operation may have destroyed, and a
    /// header per such operation (a file's header may be lost with it, and is no line).
    may_say_lost: u64,
}

fn line(seq: u64) -> String {
    // Lengths vary, so reads end at every kind of boundary.
    format!("L{seq:08} {}\n", "x".repeat((seq * 7 % 23) as usize))
}

fn write(path: &Path, s: &str) {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(s.as_bytes())
        .unwrap();
}

impl World {
    /// `patterns`: 0 the literal path, 1 a glob over it and its rotated names, 2 both (the
    /// path is matched twice and must be followed once).
    fn new(dir: &Path, patterns: u8, read_limit: u64) -> World {
        let live = dir.join("app.log");
        let glob = patterns > 0;
        let pattern = if patterns == 1 {
            format!("{}*", live.display())
        } else {
            live.display().to_string()
        };
        let parse = claimcheck::config::ParseConfig {
            max_line_bytes: 1 << 16,
            ..claimcheck::config::ParseConfig::default()
        };
        let limit = claimcheck::parse::Parser::new(parse).line_limit().clone();
        let mut cfg = FollowConfig::new(&pattern, limit);
        if patterns == 2 {
            cfg.patterns.push(format!("{}*", live.display()));
        }
        cfg.read_limit = read_limit;
        cfg.close_inactive = Duration::from_secs(30);
        World {
            dir: dir.to_path_buf(),
            glob,
            follower: Follower::new(cfg.clone(), &[]),
            cfg,
            store: BTreeMap::new(),
            now: Duration::ZERO,
            files: Vec::new(),
            current: None,
            next_seq: 0,
            rotations: 0,
            delivered: Vec::new(),
            lossable: BTreeSet::new(),
            lineage: BTreeMap::new(),
            polled_since_restart: false,
            said_lost: 0,
            may_say_lost: 0,
        }
    }

    fn live(&self) -> PathBuf {
        self.dir.join("app.log")
    }

    /// The current file, created (with its header) if there is none.
    fn current(&mut self) -> usize {
        if let Some(i) = self.current {
            return i;
        }
        let live = self.live();
        if live.is_dir() {
            std::fs::remove_dir(&live).unwrap();
        }
        write(&live, &header());
        self.files.push(Written {
            path: live,
            seqs: Vec::new(),
            open: false,
            gone: false,
        });
        self.current = Some(self.files.len() - 1);
        self.files.len() - 1
    }

    fn append(&mut self, n: u8) {
        let i = self.current();
        for _ in 0..n {
            let seq = self.next_seq;
            self.next_seq += 1;
            write(&self.files[i].path.clone(), &line(seq));
            self.files[i].seqs.push(seq);
            self.lineage.insert(seq, i);
        }
    }

    /// Polls once and commits what was handed out (up to `keep` files' batches); whether
    /// there is more to read right now.
    fn poll(&mut self, keep: Option<usize>) -> bool {
        self.poll_with(keep, Window::AfterScan, || {})
    }

    /// [`World::poll`], with `meanwhile` done in `window` of the follower's poll.
    fn poll_with(
        &mut self,
        keep: Option<usize>,
        window: Window,
        meanwhile: impl FnOnce() + Send + 'static,
    ) -> bool {
        let polled = self.follower.poll_with(self.now, window, meanwhile);
        let more = polled.more;
        self.said_lost += polled.truncated.iter().map(|(_, n)| n).sum::<u64>();
        for (n, f) in polled.files.into_iter().enumerate() {
            if keep.is_some_and(|k| n >= k) {
                break;
            }
            #[allow(clippy::print_stderr)]
            if std::env::var_os("MODEL_DEBUG").is_some() {
                eprintln!(
                    "{} lines {:?} -> {:?}",
                    f.checkpoint.path,
                    f.lines
                        .iter()
                        .map(|l| String::from_utf8_lossy(&l[..l.len().min(9)]).into_owned())
                        .collect::<Vec<_>>(),
                    (f.checkpoint.offset, f.checkpoint.forget)
                );
            }
            for l in &f.lines {
                let text = String::from_utf8(l.to_vec()).unwrap();
                if text.starts_with('#') {
                    continue;
                }
                let seq: u64 = text[1..9]
                    .parse()
                    .unwrap_or_else(|_| panic!("a fragment: {text:?}"));
                let want = line(seq);
                assert!(
                    text == want || format!("{text}\n") == want,
                    "a torn line: {text:?}"
                );
                self.delivered.push(seq);
            }
            let cp = f.checkpoint;
            if cp.forget {
                self.store.remove(&cp.id());
            } else {
                self.store.insert(cp.id(), cp);
            }
        }
        for f in &mut self.files {
            if !f.gone {
                f.open = true;
            }
        }
        self.polled_since_restart = true;
        more
    }

    /// Whether the next first scan finds file `i` (no longer at the path) by its checkpoint.
    fn found_at_restart(&self, i: usize) -> bool {
        if self.polled_since_restart {
            return false;
        }
        self.holds_checkpoint(i)
    }

    fn restart(&mut self) {
        // A deleted file is read only through a descriptor, gone with the process.
        for i in 0..self.files.len() {
            if self.files[i].gone {
                self.may_lose(i);
            }
        }
        // A literal path's renamed files are found again only by their checkpoint.
        if !self.glob {
            for i in 0..self.files.len() {
                if Some(i) != self.current && !self.files[i].gone && !self.found_at_restart_now(i) {
                    self.may_lose(i);
                }
            }
        }
        let cps: Vec<Checkpoint> = self.store.values().cloned().collect();
        self.follower = Follower::new(self.cfg.clone(), &cps);
        for f in &mut self.files {
            f.open = false;
        }
        self.polled_since_restart = false;
    }

    fn found_at_restart_now(&self, i: usize) -> bool {
        self.holds_checkpoint(i)
    }

    /// Whether file `i` still holds what its committed checkpoint says was read of it (a
    /// renamed file is finished after a restart only then).
    fn holds_checkpoint(&self, i: usize) -> bool {
        use std::os::unix::fs::MetadataExt;
        let Ok(f) = std::fs::File::open(&self.files[i].path) else {
            return false;
        };
        let m = f.metadata().unwrap();
        self.store
            .get(&FileId {
                dev: m.dev(),
                ino: m.ino(),
            })
            .is_some_and(|cp| {
                claimcheck::sources::file::tail::same_file(&f, cp)
                    && claimcheck::sources::file::tail::holds(&f, m.len(), cp).unwrap()
            })
    }

    /// A copy of a file's lines `seqs` is now at `to`: their order is the copy's, and the
    /// copy is read (a glob names it) or gone (a literal path does not).
    /// File `i` is copied to `to` and truncated: its lines now sit in the copy (and, with no
    /// glob to follow the copy, those not delivered yet may be lost).
    fn truncated_into(&mut self, i: usize, to: PathBuf) {
        if !self.glob {
            self.may_lose(i);
        }
        let seqs = std::mem::take(&mut self.files[i].seqs);
        self.copied_to(to, seqs);
    }

    fn copied_to(&mut self, to: PathBuf, seqs: Vec<u64>) {
        for s in &seqs {
            self.lineage.insert(*s, self.files.len());
        }
        self.files.push(Written {
            path: to,
            seqs,
            open: false,
            gone: !self.glob,
        });
    }

    /// Lines of file `i` not delivered yet may be destroyed now.
    fn may_lose(&mut self, i: usize) {
        let done: BTreeSet<u64> = self.delivered.iter().copied().collect();
        let seqs = self.files[i].seqs.clone();
        self.lose_undelivered(&seqs, &done);
    }

    /// `seqs` not in `done` may be destroyed now.
    fn lose_undelivered(&mut self, seqs: &[u64], done: &BTreeSet<u64>) {
        self.may_say_lost += header().len() as u64;
        for s in seqs {
            if !done.contains(s) && self.lossable.insert(*s) {
                self.may_say_lost += line(*s).len() as u64;
            }
        }
    }

    fn rotated_name(&mut self) -> PathBuf {
        self.rotations += 1;
        self.dir.join(format!("app.log.{}", self.rotations))
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Append(n) => self.append(*n),
            Op::Partial => {
                let i = self.current();
                let seq = self.next_seq;
                self.next_seq += 1;
                let l = line(seq);
                let path = self.files[i].path.clone();
                write(&path, &l[..5]);
                self.poll(None);
                write(&path, &l[5..]);
                self.files[i].seqs.push(seq);
                self.lineage.insert(seq, i);
            }
            Op::Poll => {
                self.poll(None);
            }
            Op::Advance(s) => self.now += Duration::from_secs(u64::from(*s)),
            Op::RenameCreate(late) => {
                let Some(i) = self.current else { return };
                let to = self.rotated_name();
                std::fs::rename(&self.files[i].path, &to).unwrap();
                self.files[i].path = to;
                // Literal path: a renamed file the follower never opened is found again only
                // by a restart's first scan, by its checkpoint.
                let lost = !self.glob && !self.files[i].open && !self.found_at_restart(i);
                self.current = None;
                self.current();
                for _ in 0..*late {
                    let seq = self.next_seq;
                    self.next_seq += 1;
                    write(&self.files[i].path.clone(), &line(seq));
                    self.files[i].seqs.push(seq);
                    self.lineage.insert(seq, i);
                }
                if lost {
                    self.may_lose(i);
                }
            }
            Op::CopyTruncate(mid) => {
                let Some(i) = self.current else { return };
                let to = self.rotated_name();
                if *mid == 0 {
                    std::fs::copy(&self.files[i].path, &to).unwrap();
                } else {
                    // Seen by a poll while it is being written.
                    self.poll(None);
                    let bytes = std::fs::read(&self.files[i].path).unwrap();
                    let cut = if *mid == 1 { 0 } else { bytes.len() / 2 };
                    std::fs::write(&to, &bytes[..cut]).unwrap();
                    self.poll(None);
                    write(&to, std::str::from_utf8(&bytes[cut..]).unwrap());
                }
                // Their order is now the copy's.
                self.truncated_into(i, to);
                empty(&self.files[i].path);
            }
            Op::CopyPollTruncate => {
                let Some(i) = self.current else { return };
                let to = self.rotated_name();
                std::fs::copy(&self.files[i].path, &to).unwrap();
                self.poll(None);
                self.truncated_into(i, to);
                empty(&self.files[i].path);
            }
            Op::CopyTruncateTwice(n) => {
                self.apply(&Op::CopyTruncate(0));
                self.append(*n);
                self.apply(&Op::CopyTruncate(0));
            }
            Op::ShortCopy(n, restart) => {
                let Some(i) = self.current else { return };
                let hidden = self.dir.join("copying.tmp");
                std::fs::copy(&self.files[i].path, &hidden).unwrap();
                let copied = self.files[i].seqs.clone();
                self.append(*n);
                self.poll(None);
                let to = self.rotated_name();
                if !self.glob {
                    self.may_lose(i);
                }
                // The copy holds what the file held when copied; the lines after are lost
                // with the truncate unless read (the poll read them).
                let after: Vec<u64> = self.files[i].seqs[copied.len()..].to_vec();
                let done: BTreeSet<u64> = self.delivered.iter().copied().collect();
                self.lose_undelivered(&after, &done);
                self.files[i].seqs.clear();
                empty(&self.files[i].path);
                std::fs::rename(&hidden, &to).unwrap();
                self.copied_to(to, copied);
                // The next poll sees it, or a restarted follower's first.
                if *restart {
                    self.restart();
                }
                self.poll(None);
            }
            Op::CopyTruncateInPoll(reused) => {
                let Some(i) = self.current else { return };
                let hidden = self.dir.join("copying.tmp");
                if *reused && !self.reuse_inode_of_a_gone_file(&hidden) {
                    return;
                }
                // Read once, so the file is followed and the copy holds what was read.
                self.poll(None);
                let to = self.rotated_name();
                let live = self.files[i].path.clone();
                self.truncated_into(i, to.clone());
                self.poll_with(None, Window::AfterScan, move || {
                    // Into the file at `hidden` (its inode) when there is one.
                    std::fs::write(&hidden, std::fs::read(&live).unwrap()).unwrap();
                    std::fs::rename(&hidden, &to).unwrap();
                    empty(&live);
                });
            }
            Op::CopyTruncateWhileJudged(part) => {
                let Some(i) = self.current else { return };
                // Read once, so the file is followed.
                self.poll(None);
                let to = self.rotated_name();
                let live = self.files[i].path.clone();
                let bytes = std::fs::read(&live).unwrap();
                // Part written: more than the head that tells a copy (the header alone is
                // longer), less than all.
                let found = if *part && bytes.len() > 300 {
                    (bytes.len() / 2).max(300)
                } else {
                    bytes.len()
                };
                std::fs::write(&to, &bytes[..found]).unwrap();
                self.truncated_into(i, to.clone());
                self.poll_with(None, Window::JudgingACopy, move || {
                    write(&to, std::str::from_utf8(&bytes[found..]).unwrap());
                    empty(&live);
                });
            }
            Op::CopyTruncateWhileRead(n) | Op::CopyTruncateWhileResumed(n) => {
                let Some(i) = self.current else { return };
                // Read once, so the file is followed; then lines it has not read.
                self.poll(None);
                self.append(*n);
                let window = if matches!(op, Op::CopyTruncateWhileRead(_)) {
                    Window::CheckedNotRead
                } else {
                    self.restart();
                    Window::Resuming
                };
                let to = self.rotated_name();
                let live = self.files[i].path.clone();
                self.truncated_into(i, to.clone());
                // The file starts over with more bytes than it held: a read at the old offset
                // would find some.
                let held = std::fs::metadata(&live).unwrap().len();
                let mut again = String::new();
                while again.len() as u64 <= held {
                    let seq = self.next_seq;
                    self.next_seq += 1;
                    again.push_str(&line(seq));
                    self.files[i].seqs.push(seq);
                    self.lineage.insert(seq, i);
                }
                let act = std::sync::Arc::new(std::sync::Mutex::new(Some(move || {
                    std::fs::copy(&live, &to).unwrap();
                    empty(&live);
                    write(&live, &again);
                })));
                let during = act.clone();
                self.poll_with(None, window, move || {
                    if let Some(f) = during.lock().unwrap().take() {
                        f();
                    }
                });
                // The poll never got there (no file read, or none resumed): right after it.
                if let Some(f) = act.lock().unwrap().take() {
                    f();
                }
            }
            Op::Truncate | Op::RewriteSameHead => {
                let Some(i) = self.current else { return };
                self.may_lose(i);
                self.files[i].seqs.clear();
                empty(&self.files[i].path);
                if matches!(op, Op::RewriteSameHead) {
                    write(&self.files[i].path.clone(), &header());
                    self.append(2);
                }
            }
            Op::Delete | Op::DirSwap => {
                let Some(i) = self.current else { return };
                if !self.files[i].open {
                    self.may_lose(i);
                }
                std::fs::remove_file(&self.files[i].path).unwrap();
                self.files[i].gone = true;
                self.current = None;
                if matches!(op, Op::DirSwap) {
                    std::fs::create_dir(self.live()).unwrap();
                }
            }
            Op::Restart => self.restart(),
            Op::Crash(keep) => {
                self.poll(Some(usize::from(*keep)));
                self.restart();
            }
        }
    }

    /// Leaves an empty file at `hidden` (a name no pattern matches) and, in the store, the
    /// checkpoint of another file that had its inode (deleted while the follower was down:
    /// another birth time, another head), then restarts the follower, which loads it. Not
    /// where the filesystem keeps no birth times (a reused inode is told by content there).
    /// Nor where the store holds a checkpoint of that inode already (of a file of this run
    /// deleted since): the store keeps one per inode, and a stored one was the last of the
    /// files that had it; replacing it would make the follower forget a file it read, which no
    /// sequence of writes can do.
    fn reuse_inode_of_a_gone_file(&mut self, hidden: &Path) -> bool {
        use std::os::unix::fs::MetadataExt;
        std::fs::write(hidden, "").unwrap();
        let m = std::fs::metadata(hidden).unwrap();
        let born = claimcheck::sources::file::tail::born(&m);
        let held = self.store.contains_key(&FileId {
            dev: m.dev(),
            ino: m.ino(),
        });
        if born == 0 || held {
            std::fs::remove_file(hidden).unwrap();
            return false;
        }
        let head = format!("# gone {}\n", "g".repeat(300)).into_bytes();
        let tail = &head[head.len() - 256..];
        let gone = Checkpoint {
            dev: m.dev(),
            ino: m.ino(),
            born: born - 1,
            head: head[..256].to_vec(),
            offset: head.len() as u64,
            tail_len: 256,
            tail_crc: crc32fast::hash(tail),
            skipping: false,
            marks: Vec::new(),
            written_at: 0,
            source: self.cfg.patterns[0].clone(),
            path: self.dir.join("app.log.0").display().to_string(),
            forget: false,
        };
        self.store.insert(gone.id(), gone);
        self.restart();
        true
    }

    /// Runs until everything readable was read: polls, time past `close_inactive`, polls,
    /// then a clean restart (which must read nothing again) and polls.
    fn settle(&mut self) {
        for round in 0..4 {
            if round == 2 {
                self.restart();
            }
            for _ in 0..10_000 {
                if !self.poll(None) {
                    break;
                }
            }
            self.now += Duration::from_secs(31);
        }
    }

    fn check(&self) {
        let mut seen = BTreeSet::new();
        for s in &self.delivered {
            assert!(
                seen.insert(*s),
                "line {s} delivered twice: {:?}",
                self.delivered
            );
        }
        // In order within each file they were written to.
        let mut last: BTreeMap<usize, u64> = BTreeMap::new();
        for s in &self.delivered {
            let f = self.lineage[s];
            if let Some(prev) = last.insert(f, *s) {
                assert!(
                    prev < *s,
                    "line {s} after {prev} of the same file: {:?}",
                    self.delivered
                );
            }
        }
        // No checkpoint outlives its file for long (settle let time pass), also when another
        // file has its inode now.
        use std::os::unix::fs::MetadataExt;
        let present: BTreeMap<(u64, u64), u64> = std::fs::read_dir(&self.dir)
            .unwrap()
            .flatten()
            .filter_map(|e| e.metadata().ok())
            .map(|m| {
                (
                    (m.dev(), m.ino()),
                    claimcheck::sources::file::tail::born(&m),
                )
            })
            .collect();
        for cp in self.store.values() {
            assert!(
                present
                    .get(&(cp.dev, cp.ino))
                    .is_some_and(|b| *b == 0 || cp.born == 0 || *b == cp.born),
                "the checkpoint of a file long gone is kept: {cp:?}"
            );
        }
        assert!(
            self.said_lost <= self.may_say_lost,
            "{} bytes said lost, at most {} may be",
            self.said_lost,
            self.may_say_lost
        );
        let missing: Vec<u64> = (0..self.next_seq)
            .filter(|s| !seen.contains(s) && !self.lossable.contains(s))
            .collect();
        assert!(
            missing.is_empty(),
            "lines lost: {missing:?}; delivered {:?}; lossable {:?}",
            self.delivered,
            self.lossable
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_follower_delivers_every_line_once_in_order(
        patterns in 0u8..3,
        read_limit in prop_oneof![Just(64u64), Just(1000u64), Just(1u64 << 20)],
        ops in proptest::collection::vec(op(), 1..40),
    ) {
        #[allow(clippy::print_stderr)]
        if std::env::var_os("MODEL_DEBUG").is_some() {
            let _ = tracing_subscriber::fmt().with_max_level(tracing::Level::DEBUG).with_test_writer().try_init();
            eprintln!("======== patterns {patterns} limit {read_limit}");
        }
        let dir = tempfile::tempdir().unwrap();
        let mut w = World::new(dir.path(), patterns, read_limit);
        #[allow(clippy::print_stderr)]
        for op in &ops {
            if std::env::var_os("MODEL_DEBUG").is_some() {
                eprintln!("== {op:?}");
            }
            w.apply(op);
        }
        w.settle();
        w.check();
    }
}

/// Sequences the property test once found failing, replayed every run.
#[test]
fn sequences_that_failed_once() {
    let mut cases: Vec<(u8, u64, Vec<Op>)> = vec![
        // found by the kill loop (seed 10095649939275267030): a copy found beside a followed
        // file of which nothing was read yet (emptied, then written again), before its
        // truncate: it was taken for a new file, and both were read from their start
        (
            1,
            1000,
            vec![
                Op::Append(1),
                Op::Poll,
                Op::Truncate,
                Op::Poll,
                Op::Append(2),
                Op::CopyPollTruncate,
            ],
        ),
        // the same after the file was emptied and written again with the same header: the
        // copy starts with the head that was read, but holds none of what was read
        (
            1,
            1000,
            vec![
                Op::Append(1),
                Op::Partial,
                Op::RewriteSameHead,
                Op::CopyPollTruncate,
            ],
        ),
        // the same at the first poll: the file and its copy found by one scan, and no poll
        // again before the copy's wait ran out (the truncate unnoticed by then: it was read
        // from its start as a file of its own)
        (
            1,
            1000,
            vec![Op::Append(1), Op::CopyPollTruncate, Op::Advance(2)],
        ),
        // a second copytruncate within one poll's interval of the first: the second copy
        // was judged while the first truncation was not noticed yet, against what was read
        // before it, and read from its start as a new file; the file, read again from its
        // start once the truncation was noticed, repeated its lines
        (
            1,
            64,
            vec![
                Op::Partial,
                Op::CopyTruncate(0),
                Op::Append(1),
                Op::CopyPollTruncate,
            ],
        ),
        // found by the random test in a clean-clone CI run: a partial line, copytruncate,
        // the copy deleted, the file renamed and created again, a restart
        (
            1,
            1000,
            vec![
                Op::Append(1),
                Op::Partial,
                Op::CopyTruncate(0),
                Op::Delete,
                Op::Append(1),
                Op::RenameCreate(0),
                Op::Restart,
                Op::Poll,
            ],
        ),
        // a short copy found after the truncate, right after two copytruncates
        (
            1,
            64,
            vec![
                Op::CopyTruncateTwice(0),
                Op::Append(1),
                Op::ShortCopy(1, false),
            ],
        ),
        // the same, the copy as long as what was read but shorter than the head read
        (
            1,
            64,
            vec![
                Op::CopyTruncateTwice(0),
                Op::Append(3),
                Op::ShortCopy(1, false),
            ],
        ),
        (
            1,
            64,
            vec![
                Op::Append(1),
                Op::CopyTruncate(0),
                Op::Append(3),
                Op::ShortCopy(1, false),
            ],
        ),
        // a copy too short to tell when found, longer than what was read
        (
            1,
            64,
            vec![
                Op::CopyTruncateTwice(0),
                Op::Append(4),
                Op::ShortCopy(1, false),
            ],
        ),
        (
            1,
            64,
            vec![
                Op::Append(1),
                Op::RenameCreate(0),
                Op::CopyTruncate(1),
                Op::CopyTruncate(1),
                Op::Append(3),
                Op::Partial,
                Op::Restart,
                Op::CopyTruncateTwice(0),
                Op::Delete,
                Op::Append(1),
            ],
        ),
        // a new file holding only the start of a line that begins like the truncated
        // file's head is no copy of it
        (
            0,
            64,
            vec![
                Op::CopyTruncateTwice(0),
                Op::Append(1),
                Op::Partial,
                Op::Truncate,
                Op::Delete,
                Op::Append(1),
                Op::Truncate,
                Op::Partial,
                Op::Append(1),
            ],
        ),
        // a copytruncate between a poll's scan and its read, the copy on the inode of a
        // file deleted while the follower was down (its checkpoint still stored): the copy
        // was taken for that file's, not followed on, and read from its start
        (
            1,
            1 << 20,
            vec![Op::Append(3), Op::CopyTruncateInPoll(true)],
        ),
        // the same copy not followed (a literal path): the other file's checkpoint was kept
        // for ever, its inode being in the directory
        (
            0,
            1 << 20,
            vec![Op::Append(3), Op::CopyTruncateInPoll(true)],
        ),
        // a copy shorter than what was read, found only by a restarted follower (the
        // original truncated meanwhile): read from its start, its lines twice
        (1, 1 << 20, vec![Op::Append(3), Op::ShortCopy(2, true)]),
        (1, 64, vec![Op::Append(1), Op::Poll, Op::ShortCopy(1, true)]),
        // a file deleted while down, another (empty) on its inode: the deleted one's
        // checkpoint was kept, nothing in it differing from the new file's
        (
            0,
            64,
            vec![
                Op::Append(1),
                Op::ShortCopy(1, false),
                Op::Restart,
                Op::Delete,
                Op::CopyTruncateTwice(0),
            ],
        ),
        // the original truncated while a poll judged its (complete) copy, between reading its
        // bytes where the copy ends and checking it: the copy was taken for a new file and
        // read from its start (the glob kill loop's doubled lines, run 14, seed
        // 1456242928787433040)
        (
            1,
            1 << 20,
            vec![Op::Append(3), Op::CopyTruncateWhileJudged(false)],
        ),
        (
            1,
            64,
            vec![Op::Append(2), Op::Poll, Op::CopyTruncateWhileJudged(false)],
        ),
        // the same with the copy found part written, copytruncate finishing it before the
        // truncate: judged on the size probed before the check, the copy held less than was
        // read and was read from its start (the glob kill loop's doubled lines on Postgres in
        // CI, session 14: seed 5608604582842455893, run 7)
        (
            1,
            1 << 20,
            vec![Op::Append(3), Op::CopyTruncateWhileJudged(true)],
        ),
        // copytruncate while down, the truncated file then too short to tell from a copy
        // (empty): its old checkpoint stayed, and every later start counted what the copy
        // had read on from it as lost
        (
            1,
            1 << 20,
            vec![
                Op::Append(3),
                Op::Poll,
                Op::Append(2),
                Op::Restart,
                Op::CopyTruncate(0),
                Op::Poll,
                Op::Restart,
                Op::Poll,
            ],
        ),
        // copytruncate, and the file written past where it was read, between a poll's check
        // of it and its read: the read went on at the old offset in the new bytes (a torn
        // line, and the lines after it read twice once the truncation was seen), and the
        // copy's unread tail was counted lost; the likely cause of the kill loops' rare glob
        // failure (seed 3834715807235907741: a rotated file's checkpoint no longer held at a
        // restart, 991 bytes said lost)
        (
            1,
            1 << 20,
            vec![Op::Append(3), Op::CopyTruncateWhileRead(2)],
        ),
        (
            0,
            1 << 20,
            vec![Op::Append(3), Op::CopyTruncateWhileRead(0)],
        ),
        // the same between a restart's finding that the file holds its checkpoint and its
        // resuming there
        (
            1,
            1 << 20,
            vec![Op::Append(3), Op::CopyTruncateWhileResumed(2)],
        ),
        // found by the random test (session 12): a copytruncate while a poll read, a rename,
        // a crash, then two copytruncates with no poll between them: a line read before the
        // crash delivered again from a copy after the restart
        (
            1,
            1000,
            vec![
                Op::Append(1),
                Op::CopyTruncateWhileRead(0),
                Op::RenameCreate(0),
                Op::Crash(1),
                Op::CopyTruncateTwice(0),
            ],
        ),
        // a copytruncate while a restarted follower judged its files (the copy made after
        // the scan): the truncated file took a line-end match among the scanned files for
        // its copy, and the real copy, found by the next scan, was read from its start
        (
            1,
            1000,
            vec![
                Op::Append(1),
                Op::RenameCreate(2),
                Op::RenameCreate(0),
                Op::RewriteSameHead,
                Op::CopyTruncateWhileResumed(0),
            ],
        ),
        (
            1,
            1000,
            vec![
                Op::Append(1),
                Op::RenameCreate(1),
                Op::CopyTruncateInPoll(false),
                Op::RenameCreate(2),
                Op::Partial,
                Op::CopyTruncateWhileResumed(0),
            ],
        ),
        // a literal path: the file renamed away (still read through its descriptor) and a
        // new one created, nothing read of it yet, then truncated: the older file, which
        // starts alike, was taken for its unfollowed copy and all its bytes counted lost
        (
            0,
            64,
            vec![
                Op::Append(3),
                Op::Partial,
                Op::RenameCreate(0),
                Op::Append(1),
                Op::Partial,
                Op::Truncate,
            ],
        ),
    ];
    // A new file taken for a deleted one's continuation (its header read), then copied twice
    // and deleted after a crash: the copy held both checkpoints, the deleted one's and its
    // own, and went on from the shorter one when the follower met that one first, its line
    // read again. Which it meets first depends on the inode numbers: replayed eight times,
    // each on others (before each case as many files are made elsewhere as cases ran before).
    let many_checkpoints = (
        1,
        1000,
        vec![
            Op::Partial,
            Op::Delete,
            Op::Append(1),
            Op::Restart,
            Op::Crash(2),
            Op::CopyTruncateTwice(1),
            Op::Delete,
        ],
    );
    cases.extend(std::iter::repeat_n(many_checkpoints, 8));
    for (n, (patterns, read_limit, ops)) in cases.into_iter().enumerate() {
        #[allow(clippy::print_stderr)]
        if std::env::var_os("MODEL_DEBUG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::DEBUG)
                .with_test_writer()
                .try_init();
            eprintln!("======== patterns {patterns} limit {read_limit}");
        }
        let pad = tempfile::tempdir().unwrap();
        for k in 0..n {
            std::fs::write(pad.path().join(k.to_string()), "").unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let mut w = World::new(dir.path(), patterns, read_limit);
        for op in &ops {
            #[allow(clippy::print_stderr)]
            if std::env::var_os("MODEL_DEBUG").is_some() {
                eprintln!("== {op:?}");
            }
            w.apply(op);
        }
        w.settle();
        w.check();
    }
}

/// The checkpoint of a file no configured pattern follows any more (its pattern removed from
/// the configuration) is kept for `retention` after it was last written, so the pattern put
/// back resumes where it was, and is dropped then; one stored before checkpoints had a write
/// time counts from the start. A configured pattern's checkpoints stay.
#[test]
fn checkpoints_of_a_removed_pattern_are_dropped_after_the_retention() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    write(&a, &line(1));
    write(&b, &line(2));
    let parse = claimcheck::config::ParseConfig::default();
    let limit = claimcheck::parse::Parser::new(parse).line_limit().clone();
    let mut cfg = FollowConfig::new(&a.display().to_string(), limit);
    cfg.patterns.push(b.display().to_string());
    cfg.retention = Duration::from_secs(60);
    cfg.wall_at_start = 1_000_000;
    let mut first = Follower::new(cfg.clone(), &[]);
    let mut store: BTreeMap<FileId, Checkpoint> = BTreeMap::new();
    for f in first.poll(Duration::ZERO).files {
        assert_eq!(
            f.checkpoint.written_at, 1_000_000,
            "stamped when handed out"
        );
        store.insert(f.checkpoint.id(), f.checkpoint);
    }
    assert_eq!(store.len(), 2);
    // Started again 30 s later without a.log's pattern.
    cfg.patterns.remove(0);
    cfg.wall_at_start = 1_030_000;
    let cps: Vec<Checkpoint> = store.values().cloned().collect();
    let mut second = Follower::new(cfg.clone(), &cps);
    let forgotten = |polled: claimcheck::sources::file::Polled| -> Vec<String> {
        polled
            .files
            .into_iter()
            .filter(|f| f.checkpoint.forget)
            .map(|f| f.checkpoint.path)
            .collect()
    };
    assert!(
        forgotten(second.poll(Duration::from_secs(29))).is_empty(),
        "59 s old: kept"
    );
    assert_eq!(
        forgotten(second.poll(Duration::from_secs(30))),
        [a.display().to_string()],
        "60 s old: dropped, b.log's kept"
    );
    assert!(
        forgotten(second.poll(Duration::from_secs(300))).is_empty(),
        "once"
    );
    // A checkpoint stored before write times were kept: a retention from the start.
    let old: Vec<Checkpoint> = store
        .values()
        .map(|c| Checkpoint {
            written_at: 0,
            ..c.clone()
        })
        .collect();
    let mut third = Follower::new(cfg, &old);
    assert!(forgotten(third.poll(Duration::from_secs(59))).is_empty());
    assert_eq!(
        forgotten(third.poll(Duration::from_secs(60))),
        [a.display().to_string()]
    );
}

/// Commits what a poll handed out: its lines (headers left out) and its checkpoints.
fn commit(
    polled: claimcheck::sources::file::Polled,
    store: &mut BTreeMap<FileId, Checkpoint>,
    delivered: &mut Vec<String>,
) {
    for f in polled.files {
        delivered.extend(
            f.lines
                .iter()
                .map(|l| String::from_utf8_lossy(l).into_owned())
                .filter(|l| !l.starts_with('#')),
        );
        if f.checkpoint.forget {
            store.remove(&f.checkpoint.id());
        } else {
            store.insert(f.checkpoint.id(), f.checkpoint);
        }
    }
}

/// Two followed files that start alike (the same header), one read further than the other,
/// both copytruncated while the follower is down: the copy of the one read further holds what
/// was read of the other too, and goes on from its own original's checkpoint, not from the
/// shorter one's (which would read its line again). Both copies are made after both files,
/// so their birth times cannot tell them apart.
#[test]
fn copies_made_while_down_go_on_from_the_file_read_furthest() {
    let dir = tempfile::tempdir().unwrap();
    // Scanned in this order: the shorter first.
    let (short, long) = (dir.path().join("app.log"), dir.path().join("app.log.1"));
    write(&long, &header());
    write(&long, &line(0));
    write(&short, &header());
    let parse = claimcheck::config::ParseConfig::default();
    let limit = claimcheck::parse::Parser::new(parse).line_limit().clone();
    let cfg = FollowConfig::new(&format!("{}*", short.display()), limit);
    let mut store: BTreeMap<FileId, Checkpoint> = BTreeMap::new();
    let mut delivered: Vec<String> = Vec::new();
    let mut first = Follower::new(cfg.clone(), &[]);
    commit(first.poll(Duration::ZERO), &mut store, &mut delivered);
    drop(first);
    // Copied (the longer one's copy scanned first) and truncated while down.
    for (from, to) in [(&long, "app.log.2"), (&short, "app.log.3")] {
        std::fs::copy(from, dir.path().join(to)).unwrap();
        empty(from);
    }
    let cps: Vec<Checkpoint> = store.values().cloned().collect();
    let mut second = Follower::new(cfg, &cps);
    for s in 0..4 {
        commit(
            second.poll(Duration::from_secs(s * 31)),
            &mut store,
            &mut delivered,
        );
    }
    assert_eq!(delivered, [line(0)], "its line once");
}
