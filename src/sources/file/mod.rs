//! Following log files in `serve`: paths or globs in, batches of whole lines out, each with the
//! checkpoint that must be committed with it. Never parses, never trusts filesystem events
//! (they only wake a poll early), never seeks past what it has verified.
//!
//! - `tail.rs`: one open file: reading whole lines from a checkpoint, holding a partial line,
//!   skipping over-long lines whole, noticing truncation (size, head, or the bytes just before
//!   the checkpoint changed).
//! - `follow.rs`: one configured path or glob: scanning, one tailer per file identity (device,
//!   inode, head), draining rotated and deleted files, copytruncate copies, hostile paths, and
//!   the task that sends batches to serve's core.
//!
//! A file is known by its identity, never by its path, so a checkpoint follows a file through
//! renames and a path that names a new file starts that file from its beginning.

pub mod follow;
mod log;
pub mod tail;

pub use follow::{FollowConfig, Follower, Polled, Window};
pub use tail::Tailer;

/// A file's identity on this host: device and inode. (A reused inode is told apart by the
/// head and the bytes before the checkpoint, see [`Checkpoint`].)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

/// How far a file has been read, committed in the same transaction as the lines before it.
/// Keyed in the store by [`FileId`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Checkpoint {
    pub dev: u64,
    pub ino: u64,
    /// The file's birth time (ns since the epoch; 0 where the filesystem keeps none): a reused
    /// inode is another file even with the same first bytes.
    pub born: u64,
    /// The file's first bytes (up to [`tail::HEAD`]): a reused inode holds other ones.
    pub head: Vec<u8>,
    /// Every line before this byte was handed out; reading resumes here. Never inside a line,
    /// except inside an over-long line being skipped (`skipping`).
    pub offset: u64,
    /// How many bytes just before `offset` `tail_crc` covers (up to [`tail::TAIL`]).
    pub tail_len: u32,
    /// CRC-32 of the `tail_len` bytes before `offset`: a file truncated and rewritten past the
    /// checkpoint with the same head has other bytes there.
    pub tail_crc: u32,
    /// `offset` is inside an over-long line: skip to its end before reading lines.
    pub skipping: bool,
    /// `(offset, CRC-32 of every byte before it)` at the last line ends read (up to
    /// [`tail::KEPT_MARKS`], oldest first): a copy made at one of them before the last read
    /// and found only after a restart, the file truncated meanwhile, holds exactly what the
    /// file held there, and is told from a new file with the same first bytes.
    pub marks: Vec<(u64, u32)>,
    /// When the follower last handed it out (ms since the epoch; 0: not known, stored before
    /// this was kept): one of a file no configured pattern follows any more is dropped
    /// `FollowConfig::retention` after.
    pub written_at: i64,
    /// The configured path or glob the file was followed for (the source label).
    pub source: String,
    /// The name the file was last read under, for logs and for finding it after a restart.
    pub path: String,
    /// The file was deleted and read to its end: the store drops the checkpoint.
    pub forget: bool,
}

impl Checkpoint {
    pub fn id(&self) -> FileId {
        FileId {
            dev: self.dev,
            ino: self.ino,
        }
    }
}

/// The file-following metrics, registered once into serve's registry and shared by every
/// follower.
#[derive(Debug, Clone)]
pub struct FileMetrics {
    truncated_bytes: prometheus::IntCounterVec,
}

impl FileMetrics {
    pub fn register(registry: &prometheus::Registry) -> prometheus::Result<FileMetrics> {
        let truncated_bytes = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "claimcheck_source_truncated_bytes_total",
                "Bytes of a followed file known to be lost to a truncation (copytruncate \
                 whose rotated copy is not followed, or a plain truncate) before they were read",
            ),
            &["source"],
        )?;
        registry.register(Box::new(truncated_bytes.clone()))?;
        Ok(FileMetrics { truncated_bytes })
    }

    /// Starts `source`'s series at 0, so a rate over it has data before the first loss.
    pub fn init(&self, source: &str) {
        let _ = self.truncated_bytes.with_label_values(&[source]);
    }

    pub fn truncated(&self, source: &str, bytes: u64) {
        self.truncated_bytes
            .with_label_values(&[source])
            .inc_by(bytes);
    }
}
