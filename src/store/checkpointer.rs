//! A SQLite store's WAL checkpoints, off the commit path. The connections that commit run none
//! (`wal_autocheckpoint = 0`): SQLite's own runs inside the `COMMIT` that crosses 1,000 pages,
//! with an `fsync`, and the committer waited for it (7 % of a tail run,
//! `docs/speed-history.md`). Instead each commit nudges this task, which reads how far the WAL
//! has grown from the WAL index (the `-shm` file) and, past [`CHECKPOINT_BYTES`] of frames not
//! yet copied into the database, runs a `PASSIVE` checkpoint on a connection of its own while
//! the next commits go on.
//!
//! A passive checkpoint never blocks a writer, so under sustained writes it may never catch up
//! with the WAL's end: SQLite only starts the WAL over from its beginning when a write begins
//! with every frame copied, and commits that follow each other faster than a checkpoint copies
//! pages outrun it. So the WAL is bounded on the commit path, as a last resort: a commit that
//! finds [`RESTART_BYTES`] of frames in the WAL first waits for the checkpoint under way, then runs a
//! `RESTART` checkpoint itself (everything copied, and no reader left in the WAL, so the next
//! write starts it over). The WAL file then never holds much more than that bound (by one
//! commit's pages); in the tail benchmark the passive checkpoints keep it under.
//!
//! The WAL index is read through a file opened once and never closed ([`Shm`]): a process's
//! POSIX locks on a file all go with *any* close of it (<https://sqlite.org/howtocorrupt.html>,
//! 2.2), and SQLite's connections hold theirs on this one. Opened and closed at each read,
//! it left `serve` holding none, so the next process to open the store (an operator's
//! `sqlite3`, a report) took it for unused and reset the index under `serve`, which died of
//! `SIGBUS` touching it.

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::mpsc;

use super::Pool;

/// Bytes of WAL frames not yet copied into the database past which a passive checkpoint runs:
/// about SQLite's own default for `wal_autocheckpoint` (1,000 pages of 4 KiB).
pub(super) const CHECKPOINT_BYTES: u32 = 4 << 20;
/// Bytes of WAL frames past which a commit first makes the WAL start over (32 MiB: a few of
/// the tail's commit groups).
pub(super) const RESTART_BYTES: u32 = 32 << 20;

/// The WAL's bounds in frames (pages) of a database's page size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Frames {
    /// Past this many frames not yet copied, a passive checkpoint runs.
    pub(super) checkpoint: u32,
    /// Past this many frames, a commit first makes the WAL start over.
    pub(super) restart: u32,
}

impl Frames {
    pub(super) fn of_page(page: u32) -> Frames {
        let page = page.max(512);
        Frames {
            checkpoint: CHECKPOINT_BYTES / page,
            restart: RESTART_BYTES / page,
        }
    }
}

/// How many checkpoints the checkpointer ran, of each kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WalCheckpoints {
    pub passive: u64,
    pub restart: u64,
}

#[derive(Debug, Default)]
struct Counts {
    passive: AtomicU64,
    restart: AtomicU64,
}

/// The store's handle on its checkpointer task: nudged after each commit; the task ends when
/// the last clone of the store drops this.
#[derive(Debug)]
pub(super) struct Checkpointer {
    nudge: mpsc::Sender<()>,
    shm: Arc<Shm>,
    /// Held by whoever runs a checkpoint: one at a time (a second would find SQLite's
    /// checkpoint lock taken, and do nothing).
    running: Arc<tokio::sync::Mutex<()>>,
    pool: Arc<RwLock<Pool>>,
    counts: Arc<Counts>,
    frames: Frames,
    task: tokio::task::AbortHandle,
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Checkpointer {
    /// Starts the task for the database at `db` (its WAL index is `db` + `-shm`), of pages of
    /// `page` bytes, checkpointing through whichever pool the store holds at the time (`heal`
    /// swaps it).
    pub(super) fn start(pool: Arc<RwLock<Pool>>, db: PathBuf, page: u32) -> Checkpointer {
        let frames = Frames::of_page(page);
        // One nudge pending is enough: the task reads the WAL's state when it wakes.
        let (nudge, mut rx) = mpsc::channel(1);
        let counts = Arc::new(Counts::default());
        let running = Arc::new(tokio::sync::Mutex::new(()));
        let shm = Arc::new(Shm::of(db));
        let task = tokio::spawn({
            let counts = counts.clone();
            let running = running.clone();
            let pool = pool.clone();
            let shm = shm.clone();
            async move {
                while rx.recv().await.is_some() {
                    let due = shm
                        .read()
                        .is_some_and(|w| w.frames.saturating_sub(w.copied) >= frames.checkpoint);
                    if !due {
                        continue;
                    }
                    let _one = running.lock().await;
                    if checkpoint(&pool, Mode::Passive).await {
                        counts.passive.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
        .abort_handle();
        Checkpointer {
            nudge,
            shm,
            running,
            pool,
            counts,
            frames,
            task,
        }
    }

    /// Before a commit: past [`RESTART_BYTES`] of frames, the WAL is made to start over before the
    /// commit goes on (the bound on its size when passive checkpoints fall behind).
    pub(super) async fn bound(&self) {
        let over = || {
            self.shm
                .read()
                .is_some_and(|w| w.frames >= self.frames.restart)
        };
        if !over() {
            return;
        }
        let _one = self.running.lock().await;
        // The passive checkpoint waited for may have let the WAL start over.
        if over() && checkpoint(&self.pool, Mode::Restart).await {
            self.counts.restart.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// After a commit landed: the WAL may have grown.
    pub(super) fn nudge(&self) {
        // Full: a nudge is already pending.
        let _ = self.nudge.try_send(());
    }

    #[cfg(test)]
    pub(super) fn frames(&self) -> Frames {
        self.frames
    }

    pub(super) fn counts(&self) -> WalCheckpoints {
        WalCheckpoints {
            passive: self.counts.passive.load(Ordering::Relaxed),
            restart: self.counts.restart.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Passive,
    Restart,
}

/// Runs a checkpoint through whichever pool the store holds now (`heal` swaps it): `true`
/// when it completed (every frame copied that no reader still needs; for `RESTART`, the WAL
/// left to start over). Busy (a reader held it back) or failed (the pool closed by `heal`, a
/// full disk), it is the next commit's to try again: commits go on either way.
async fn checkpoint(pool: &RwLock<Pool>, mode: Mode) -> bool {
    let pool = match pool.read() {
        Ok(p) => p.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    let Pool::Sqlite(pool) = pool else {
        return false;
    };
    let sql = match mode {
        Mode::Passive => "PRAGMA wal_checkpoint(PASSIVE)",
        Mode::Restart => "PRAGMA wal_checkpoint(RESTART)",
    };
    match sqlx::query_as::<_, (i64, i64, i64)>(sql)
        .fetch_one(&pool)
        .await
    {
        Ok((busy, _, _)) => busy == 0,
        Err(e) => {
            tracing::debug!(error = %e, "WAL checkpoint failed");
            false
        }
    }
}

/// What the WAL index says of the WAL (<https://sqlite.org/walformat.html>, "the WAL-index
/// header"): its frames, and how many of them a checkpoint has copied into the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WalIndex {
    frames: u32,
    copied: u32,
}

/// A database's WAL index file (its path + `-shm`), read through files that stay open as long
/// as the process runs: closing one would drop every lock this process's SQLite connections
/// hold on the index (see the module's head). A store written back after its deletion has an
/// index of its own, another file: each file is opened once, by identity.
#[derive(Debug)]
struct Shm {
    path: PathBuf,
    /// Each index file opened, with its device and inode.
    files: Mutex<Vec<((u64, u64), File)>>,
}

impl Shm {
    fn of(db: PathBuf) -> Shm {
        let mut path = db.into_os_string();
        path.push("-shm");
        Shm {
            path: PathBuf::from(path),
            files: Mutex::new(Vec::new()),
        }
    }

    /// The index's header, read without SQLite's locks, so it may be torn mid-update: SQLite
    /// writes the header twice for that, and a read whose two copies differ is skipped (the
    /// next nudge reads it again). `None` too when there is no index (not WAL mode, or the
    /// file is gone).
    fn read(&self) -> Option<WalIndex> {
        // A look at the path (no file opened) says which file it names now.
        let meta = std::fs::metadata(&self.path).ok()?;
        let id = (meta.dev(), meta.ino());
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        let at = match files.iter().position(|(i, _)| *i == id) {
            Some(at) => at,
            None => {
                let file = File::open(&self.path).ok()?;
                let m = file.metadata().ok()?;
                // Kept even if the path changed in between: it is never closed either way.
                files.push(((m.dev(), m.ino()), file));
                files.iter().position(|(i, _)| *i == id)?
            }
        };
        let (_, file) = &files[at];
        let mut head = [0u8; 100];
        file.read_exact_at(&mut head, 0).ok()?;
        WalIndex::parse(&head)
    }
}

impl Drop for Shm {
    /// The files stay open: the store's connections may outlive this (a pool closes them in
    /// the background), and a close now would drop their locks while they still use the index.
    /// One descriptor per index file a store opened, until the process exits.
    fn drop(&mut self) {
        let files = self.files.get_mut().unwrap_or_else(|p| p.into_inner());
        for (_, file) in files.drain(..) {
            std::mem::forget(file);
        }
    }
}

impl WalIndex {
    /// The header is two identical 48-byte copies (native byte order): `isInit` at 12,
    /// `mxFrame` (the frames in the WAL) at 16; then the checkpoint information, whose
    /// `nBackfill` (the frames copied) is at 96.
    fn parse(head: &[u8; 100]) -> Option<WalIndex> {
        let u32_at = |at: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&head[at..at + 4]);
            u32::from_ne_bytes(b)
        };
        if head[..48] != head[48..96] || head[12] != 1 {
            return None;
        }
        Some(WalIndex {
            frames: u32_at(16),
            copied: u32_at(96),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(frames: u32, copied: u32, init: u8) -> [u8; 100] {
        let mut h = [0u8; 100];
        h[12] = init;
        h[16..20].copy_from_slice(&frames.to_ne_bytes());
        let (a, b) = h.split_at_mut(48);
        b[..48].copy_from_slice(&a[..48]);
        h[96..100].copy_from_slice(&copied.to_ne_bytes());
        h
    }

    #[test]
    fn the_wal_index_header_is_read_only_when_both_copies_agree() {
        assert_eq!(
            WalIndex::parse(&head(1_234, 1_000, 1)),
            Some(WalIndex {
                frames: 1_234,
                copied: 1_000
            })
        );
        assert_eq!(WalIndex::parse(&head(1_234, 1_000, 0)), None);
        let mut torn = head(1_234, 1_000, 1);
        torn[16] ^= 1;
        assert_eq!(WalIndex::parse(&torn), None);
    }
}
