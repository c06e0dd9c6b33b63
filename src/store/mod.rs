//! store: the sidecar's durable state through sqlx — a SQLite file by default (a path or
//! `sqlite://…` URL), Postgres by URL (`postgres://…`). Each batch is committed in one
//! transaction with the file position that produced it, so a `kill -9` at any moment and a
//! restart neither lose a line nor count one twice: lines after the committed position are
//! read again, lines before it never are.
//!
//! What is stored is the accepted event lines themselves; recovery re-parses and replays them
//! in order, with their receive times, which rebuilds the live state exactly.
//!
//! Both backends run the same SQL (`$N` placeholders, which SQLite reads as numbered
//! parameters), but for the `OR FAIL` of SQLite's multi-row writes (no statement journal:
//! see `INSERT_SQLITE`); each has its own migrations because column types differ.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::correlate::Outcome;
use crate::event::{FindingKind, Name, Runner, Timestamp};
use crate::report::Totals;
use crate::sources::batch::LineBuf;
use crate::sources::file::Checkpoint;

mod checkpointer;
pub use checkpointer::WalCheckpoints;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Db(#[from] sqlx::Error),
    #[error("store migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("store: stored summary is not valid JSON: {0}")]
    Summary(#[from] serde_json::Error),
    /// A stored finding names a kind this build does not know (damage, or a newer build).
    #[error("store: unknown finding kind {0:?}")]
    UnknownFindingKind(String),
    /// The SQLite file at the store's path is not the one that was opened.
    #[error("store file {path}: {fault}")]
    File { path: String, fault: FileFault },
}

/// What became of the SQLite file the store opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FileFault {
    /// Nothing is at its path any more: commits would land in an unlinked file.
    #[error("deleted")]
    Deleted,
    /// Another file (another device and inode) is at its path.
    #[error("replaced by another file")]
    Replaced,
}

impl StoreError {
    /// A short, stable word for why the store failed, for `/readyz` and the logs:
    /// `file_deleted`, `file_replaced`, `disk_full`, `unreachable` or `commit_failed`.
    pub fn reason(&self) -> &'static str {
        match self {
            StoreError::File {
                fault: FileFault::Deleted,
                ..
            } => "file_deleted",
            StoreError::File {
                fault: FileFault::Replaced,
                ..
            } => "file_replaced",
            StoreError::Db(sqlx::Error::Database(e)) => {
                // SQLITE_FULL (13) and Postgres' disk_full (53100).
                let code = e.code();
                if matches!(code.as_deref(), Some("13" | "53100")) {
                    "disk_full"
                } else {
                    "commit_failed"
                }
            }
            StoreError::Db(
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed
                | sqlx::Error::Protocol(_),
            ) => "unreachable",
            _ => "commit_failed",
        }
    }
}

/// One accepted event line, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLine {
    pub received_at: Timestamp,
    pub source: String,
    pub line: u32,
    pub session: Option<String>,
    pub entry_id: Option<String>,
    pub default_runtime: Option<Runner>,
    pub raw: Vec<u8>,
}

/// One batch's event lines and rejected lines, as a commit writes them: the batch's buffer is moved in
/// whole, not copied a line at a time (a `Vec` for the bytes and a `String` for the source name
/// were two allocations and a copy for every stored line).
#[derive(Debug, Default)]
pub struct NewLines {
    pub received_at: Timestamp,
    pub source: String,
    pub default_runtime: Option<Runner>,
    /// The batch's lines as read, ignored and rejected ones too: those `rows` name are stored.
    pub buf: LineBuf,
    pub rows: Vec<NewLine>,
}

/// One line of [`NewLines`] to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLine {
    /// Its index in the batch's buffer.
    pub at: usize,
    pub line: u32,
    /// Inline up to 24 bytes: a `String` was an allocation for every stored line.
    pub session: Option<Name>,
    pub entry_id: Option<String>,
}

impl From<StoredLine> for NewLines {
    /// A batch of that one line.
    fn from(l: StoredLine) -> NewLines {
        NewLines {
            received_at: l.received_at,
            source: l.source,
            default_runtime: l.default_runtime,
            buf: std::iter::once(l.raw).collect(),
            rows: vec![NewLine {
                at: 0,
                line: l.line,
                session: l.session.map(Name::from),
                entry_id: l.entry_id,
            }],
        }
    }
}

impl NewLines {
    /// How many lines are stored.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// A stored post-flip verification report: its index columns and its JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReport {
    pub id: String,
    pub org: String,
    pub flip_at: Timestamp,
    pub verdict: String,
    pub created_at: Timestamp,
    pub json: String,
}

/// A stored report's index columns, without its JSON: what a list of reports shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportListing {
    pub id: String,
    pub org: String,
    pub flip_at: Timestamp,
    pub verdict: String,
    pub created_at: Timestamp,
}

/// One session's row in `outcomes`, as the live correlator reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomeRow {
    pub session: String,
    pub org: Option<String>,
    pub runner: Runner,
    /// The dispatch's event time (what `since`/`until` select on).
    pub dispatched_at: Timestamp,
    /// When the session was first seen (its first line's receive time, the sidecar's clock):
    /// with `session`, the row's key, and what retention prunes on. Sessions come in this
    /// order, so a commit's rows land on the table's last pages, not a random page each.
    pub first_seen: Timestamp,
    pub outcome: Outcome,
    pub latency_ms: Option<i64>,
    pub skew_clamped: bool,
}

/// A change to the per-session outcome rows, committed with the evidence that caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutcomeWrite {
    /// A first dispatch: the row, `pending`; never overwrites a row already there (replay).
    Dispatched(OutcomeRow),
    /// A judgement (or overdue: `unclaimed`): the row's outcome, replacing the last one, and
    /// its dispatch columns (org, runner, dispatch time), set again where they differ.
    Judged(OutcomeRow),
    /// A judgement whose dispatch columns every earlier write of its row carried (its session
    /// had one dispatch, one org, and no earlier run: `Mark::refile` unset): as
    /// [`OutcomeWrite::Judged`], but a row already there keeps its dispatch columns, which
    /// are these — setting them again was a fifth of a tail's commit time, for nothing.
    JudgedAsDispatched(OutcomeRow),
    /// The session was claimed twice (`cross_runtime`: by different runtimes).
    Duplicate {
        session: String,
        first_seen: Timestamp,
        cross_runtime: bool,
    },
    /// The session's `total`-th claim after a release (a replay writes the same total).
    Reclaimed {
        session: String,
        first_seen: Timestamp,
        total: u32,
    },
}

impl OutcomeWrite {
    /// A judgement's write: `refile` when its row may hold other dispatch columns.
    pub fn judged(row: OutcomeRow, refile: bool) -> OutcomeWrite {
        match refile {
            true => OutcomeWrite::Judged(row),
            false => OutcomeWrite::JudgedAsDispatched(row),
        }
    }

    /// The same write, setting a judgement's dispatch columns again whatever it knew.
    pub fn refiled(self) -> OutcomeWrite {
        match self {
            OutcomeWrite::JudgedAsDispatched(row) => OutcomeWrite::Judged(row),
            w => w,
        }
    }
}

/// What a filtered summary selects (dispatch time: `since` inclusive, `until` exclusive).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutcomeFilter {
    pub org: Option<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
}

/// A finding as first written, in the commit of the evidence that caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFinding {
    pub kind: FindingKind,
    /// What tells this finding from others of its kind (the session; an orphan claim's
    /// number; an org and a time): a replay that finds it again writes nothing.
    pub key: String,
    pub session: Option<String>,
    pub org: Option<String>,
    /// The dispatched runner, or the claiming runtime for duplicates and orphans.
    pub runner: &'static str,
    /// The sidecar's clock when it was found.
    pub found_at: Timestamp,
    /// One sentence of evidence.
    pub detail: Option<String>,
}

/// A change to the stored findings, committed with the evidence that caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FindingWrite {
    /// A new finding; one already stored with its kind and key stays as it is.
    Found(NewFinding),
    /// The open finding of `kind` with `key` was resolved at `at` (an overdue session's late
    /// claim); one resolved already keeps its time.
    Resolved {
        kind: FindingKind,
        key: String,
        at: Timestamp,
    },
    /// The evidence sentence of the finding of `kind` with `key` (a Redis witness).
    Annotated {
        kind: FindingKind,
        key: String,
        detail: String,
    },
}

impl FindingWrite {
    /// What the finding is told apart by among its kind.
    pub fn key(&self) -> &str {
        match self {
            FindingWrite::Found(f) => &f.key,
            FindingWrite::Resolved { key, .. } | FindingWrite::Annotated { key, .. } => key,
        }
    }
}

/// One finding as stored (or kept in memory without a store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFinding {
    /// Grows with every finding written: the tie-breaker of the page order.
    pub id: i64,
    pub kind: FindingKind,
    pub session: Option<String>,
    pub org: Option<String>,
    pub runner: String,
    pub found_at: Timestamp,
    pub resolved_at: Option<Timestamp>,
    pub detail: Option<String>,
}

impl StoredFinding {
    /// Where this finding sits in the page order.
    pub fn position(&self) -> FindingCursor {
        FindingCursor {
            found_at: self.found_at,
            id: self.id,
        }
    }
}

/// A position in the order findings are paged in: (found at, id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FindingCursor {
    pub found_at: Timestamp,
    pub id: i64,
}

impl FindingCursor {
    /// The opaque text clients pass back as `cursor`.
    pub fn encode(self) -> String {
        format!("{:x}-{:x}", self.found_at.millis(), self.id)
    }

    /// `None` for text that is no cursor this server gave out.
    pub fn decode(s: &str) -> Option<FindingCursor> {
        let (at, id) = s.split_once('-')?;
        let ok =
            |p: &str| !p.is_empty() && p.len() <= 16 && p.bytes().all(|b| b.is_ascii_hexdigit());
        if !ok(at) || !ok(id) {
            return None;
        }
        let at = u64::from_str_radix(at, 16).ok()?;
        let id = u64::from_str_radix(id, 16).ok()?;
        Some(FindingCursor {
            found_at: Timestamp(i64::try_from(at).ok()?),
            id: i64::try_from(id).ok()?,
        })
    }
}

/// What a page of findings selects: `since` inclusive, `until` exclusive (found at), after
/// `after` in the page order, at most `limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingFilter {
    pub kind: Option<FindingKind>,
    pub org: Option<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    pub after: Option<FindingCursor>,
    pub limit: u32,
    /// Newest first (the status page); oldest first otherwise, so findings that arrive while
    /// a client pages come on later pages, never between pages it has read.
    pub newest_first: bool,
}

impl Default for FindingFilter {
    fn default() -> Self {
        FindingFilter {
            kind: None,
            org: None,
            since: None,
            until: None,
            after: None,
            limit: 100,
            newest_first: false,
        }
    }
}

impl FindingFilter {
    /// Whether `f` is selected (the cursor and limit aside).
    pub fn selects(&self, f: &StoredFinding) -> bool {
        self.kind.is_none_or(|k| k == f.kind)
            && self.org.as_ref().is_none_or(|o| f.org.as_ref() == Some(o))
            && self.since.is_none_or(|t| f.found_at >= t)
            && self.until.is_none_or(|t| f.found_at < t)
            && self.after.is_none_or(|c| {
                if self.newest_first {
                    f.position() < c
                } else {
                    f.position() > c
                }
            })
    }
}

/// One page of findings, in the filter's order; `more` when findings past it are selected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FindingPage {
    pub findings: Vec<StoredFinding>,
    pub more: bool,
}

/// Everything one batch changes, written in one transaction.
#[derive(Debug, Default)]
pub struct Commit {
    /// Event lines to store, in order (one batch's, from `serve`).
    pub lines: Vec<NewLines>,
    /// The followed file's checkpoint after the batch's lines (dropped when it says the
    /// file is deleted and read to its end).
    pub position: Option<Checkpoint>,
    /// Lines received before this are deleted: every session they belong to is past its
    /// retention (a session is forgotten `retention` after its first line arrived).
    pub prune_before: Option<Timestamp>,
    /// Per-session outcome rows the batch's changes wrote, in order.
    pub outcomes: Vec<OutcomeWrite>,
    /// Findings the batch's changes found or resolved, in order.
    pub findings: Vec<FindingWrite>,
    /// Lines of sessions evicted at the session cap, by origin (source, line), whose share of
    /// the totals this commit's retired totals hold: never read back from this commit on
    /// (a replay would count them again), and pruned with the lines received when they were.
    pub evicted_lines: Vec<(String, u32)>,
    /// Named JSON state to upsert (e.g. `platform_book`).
    pub state: Vec<(&'static str, String)>,
}

#[derive(Debug, Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to whichever backend the store uses. The body is the same
/// text for both; it type-checks once per backend.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool() {
            Pool::Sqlite($pool) => $body,
            Pool::Postgres($pool) => $body,
        }
    };
}

/// The SQLite file a store opened: its path, how to connect to it again, and its identity
/// (device, inode) when opened, so a file deleted or replaced underneath is noticed.
#[derive(Debug)]
struct SqliteFile {
    path: PathBuf,
    /// Never creates the file: after the first open, a missing file is a fault, not a fresh
    /// empty store.
    opts: SqliteConnectOptions,
    identity: std::sync::Mutex<(u64, u64)>,
}

#[derive(Debug, Clone)]
pub struct Store {
    /// Swapped whole when the store is reopened after a failure.
    pool: Arc<RwLock<Pool>>,
    sqlite: Option<Arc<SqliteFile>>,
    /// One repair at a time (the commit path and the health probe may both try).
    healing: Arc<tokio::sync::Mutex<()>>,
    /// The row count each multi-row write had last time: see [`Chunking`].
    last_rows: Arc<[std::sync::atomic::AtomicUsize; Write::COUNT]>,
    /// The texts of the largest multi-row statements, built once.
    texts: Arc<Texts>,
    /// A SQLite store's WAL checkpoints, run on a task of their own (`checkpointer.rs`).
    checkpointer: Option<Arc<checkpointer::Checkpointer>>,
    /// A SQLite store's connection for commits, held between them. In WAL mode a connection
    /// keeps its page cache from one transaction to the next unless another connection wrote
    /// in between; taken from the pool each time, commits went round its connections (it
    /// hands out the one idle longest), each finding its cache stale and reading back the
    /// pages of `events`' and `outcomes`' B-trees that the last commit had just written.
    writer: Arc<tokio::sync::Mutex<Option<sqlx::pool::PoolConnection<sqlx::Sqlite>>>>,
    /// Each source name's id in `sources`, as committed: a name is looked up (or added) in
    /// the commit of its first line since the store opened, then taken from here.
    source_ids: Arc<std::sync::Mutex<rustc_hash::FxHashMap<String, i64>>>,
}

/// The multi-row writes of a commit, each with its own statements.
#[derive(Debug, Clone, Copy)]
enum Write {
    Events,
    EvictedLines,
    Dispatched,
    Judged,
    Refiled,
    Duplicates,
    Reclaims,
    Findings,
}

impl Write {
    const COUNT: usize = 8;
}

fn identity_of(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)?;
    Ok((m.dev(), m.ino()))
}

async fn sqlite_pool(opts: SqliteConnectOptions) -> Result<SqlitePool, sqlx::Error> {
    SqlitePoolOptions::new()
        // The spill threshold is counted in pages, and the page size is the file's own.
        .after_connect(|conn, _| {
            Box::pin(async move {
                let page: i64 = sqlx::query_scalar("PRAGMA page_size")
                    .fetch_one(&mut *conn)
                    .await?;
                sqlx::query(&format!("PRAGMA cache_spill = {}", spill_pages(page)))
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            })
        })
        .max_connections(4)
        // At least one connection stays open for good: it keeps the opened file reachable
        // after a deletion, so its content can be written back to the path.
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(opts)
        .await
}

/// The page size of a SQLite store created from now on, SQLite's largest but two (the default
/// is 4 KiB). A tail's commit appends thousands of lines of about 200 bytes to `events` and
/// its indexes: on larger pages its B-trees split and rebalance a quarter as often, a WAL
/// frame's header and checksum cover four times the bytes, and there are fewer pages to look
/// up, write and copy back at a checkpoint. SQLite's thread used 15–20 % less CPU in the tail
/// benchmark (docs/speed-history.md); 64 KiB pages were no better than 4 KiB ones.
const PAGE_SIZE: u32 = 16_384;

/// A transaction's dirty pages stay in memory until it commits, up to 16 MiB of them (groups
/// of batches stayed under it in the tail benchmark), instead of being written to the WAL as
/// soon as the 2 MiB cache is full and read back when the transaction touches them again:
/// that spilling was 5 % of a tail run's CPU in `perf` (docs/speed-history.md). A larger
/// transaction (a prune after a long stop) still spills past the threshold, so memory stays
/// bounded; once committed, the pages past `cache_size` are freed.
const SPILL_BYTES: i64 = 16 << 20;

/// `cache_spill` for a file of `page`-byte pages: [`SPILL_BYTES`] of them, less one. Not a
/// multiple of 256: SQLite also reads the number as a boolean, modulo 256, and such a number
/// turns spilling off altogether (4,095 for 4 KiB pages, 1,023 for 16 KiB).
fn spill_pages(page: i64) -> i64 {
    SPILL_BYTES / page.clamp(512, 65_536) - 1
}

/// Text from outside (session and entry ids, source names) may hold NUL, which Postgres text
/// refuses; it is stored as U+FFFD on both backends so they keep the same values. A session id
/// is only a deletion key here, so the rare collision costs nothing.
fn text(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains('\0') {
        std::borrow::Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

fn runtime_str(r: Option<Runner>) -> Option<&'static str> {
    r.map(Runner::as_str)
}

fn runtime_of(s: Option<String>) -> Option<Runner> {
    s.map(|s| Runner::from_value(&s))
}

/// Integers the store keeps are non-negative and fit in an `i64` column; anything else on
/// disk is damage, read as the nearest bound rather than a panic.
/// A checkpoint's line-end marks as stored: 12 bytes each, offset then CRC, little-endian.
fn marks_bytes(marks: &[(u64, u32)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(marks.len() * 12);
    for (offset, crc) in marks {
        out.extend_from_slice(&offset.to_le_bytes());
        out.extend_from_slice(&crc.to_le_bytes());
    }
    out
}

/// The marks of [`marks_bytes`]; a ragged end (never written) is ignored.
fn marks_of(bytes: &[u8]) -> Vec<(u64, u32)> {
    bytes
        .chunks_exact(12)
        .map(|c| {
            let mut offset = [0u8; 8];
            let mut crc = [0u8; 4];
            offset.copy_from_slice(&c[..8]);
            crc.copy_from_slice(&c[8..]);
            (u64::from_le_bytes(offset), u32::from_le_bytes(crc))
        })
        .collect()
}

/// How the rows of one multi-row write are cut into statements. A statement's SQL depends only
/// on its row count, and preparing one costs several times what running it does (2.3 ms for
/// 500 rows, 0.3 ms to run it again): cut at any length, every batch size would be another
/// statement to prepare, and to hold in the connection's statement cache. So the rows go in
/// chunks of a few fixed sizes; but a write of as many rows as the last one of its kind (a
/// drain's 500 entries a body) goes in one statement of exactly that size, prepared once and
/// then reused, rather than in six.
fn chunks<'r, T>(
    rows: &'r [T],
    write: Write,
    last: &[std::sync::atomic::AtomicUsize; Write::COUNT],
) -> impl Iterator<Item = &'r [T]> {
    let again =
        last[write as usize].swap(rows.len(), std::sync::atomic::Ordering::Relaxed) == rows.len();
    let exact = (again && !rows.is_empty() && rows.len() <= MAX_ROWS).then_some(rows);
    exact
        .into_iter()
        .chain(fixed_chunks(if exact.is_some() { &[] } else { rows }))
}

/// `rows` in chunks whose lengths are powers of two, the largest first, at most [`MAX_ROWS`]:
/// ten statements a kind of write at most, whatever the batch sizes.
fn fixed_chunks<T>(mut rows: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if rows.is_empty() {
            return None;
        }
        let n = rows.len().min(MAX_ROWS);
        let (chunk, rest) = rows.split_at(1 << n.ilog2());
        rows = rest;
        Some(chunk)
    })
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// How a multi-row write begins on SQLite: `OR FAIL`, so a failed constraint ends the statement
/// where it is, its rows before the failing one kept, rather than undoing them. A statement
/// that may undo its own rows (`ABORT`, the default) keeps a statement journal: a copy of
/// every page it is the first to change — the last pages of `events`' B-trees, most of the
/// `outcomes` pages a group of judgements reaches — for each of a commit's statements (2.4 %
/// of a tail run's samples; +5 % lines per CPU second without, docs/speed-history.md).
/// What is kept is never committed: a failed statement's error ends `commit_all`, and with it
/// the whole transaction, rolled back (no statement's error is ignored inside a commit).
/// Postgres has no such clause, nor statement journal.
const INSERT_SQLITE: &str = "INSERT OR FAIL ";
const INSERT_POSTGRES: &str = "INSERT ";
/// [`INSERT_SQLITE`] for an update.
const UPDATE_SQLITE: &str = "UPDATE OR FAIL ";
const UPDATE_POSTGRES: &str = "UPDATE ";
/// After [`INSERT_SQLITE`] or [`INSERT_POSTGRES`].
const INSERT_EVENTS: &str =
    "INTO events (received_at, source_id, line, session, entry_id, default_runtime, raw) ";
/// A source name's id, the name added if new (both backends return the row's id either way).
const UPSERT_SOURCE: &str = "INSERT INTO sources (name) VALUES ($1) \
     ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING id";
/// The most rows one multi-row statement writes (or one `IN` list names): at 11 parameters a
/// row, well under SQLite's 32766 and Postgres' 65535 per statement.
const MAX_ROWS: usize = 512;
/// The Postgres advisory lock every commit holds shared and `Store::open` takes exclusively,
/// so a start waits for the commits a killed predecessor left in flight (the number is
/// arbitrary: "claimcheck" in ASCII).
pub const COMMITS_LOCK: i64 = 0x636c_6169_6d63_6865;
const UPSERT_CHECKPOINT: &str = "INSERT INTO checkpoints \
     (dev, ino, born, head, \"offset\", tail_len, tail_crc, skipping, source, path, marks, \
     written_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
     ON CONFLICT (dev, ino) DO UPDATE SET born = excluded.born, head = excluded.head, \"offset\" = excluded.\"offset\", \
     tail_len = excluded.tail_len, tail_crc = excluded.tail_crc, skipping = excluded.skipping, \
     source = excluded.source, path = excluded.path, marks = excluded.marks, \
     written_at = excluded.written_at";
const DELETE_CHECKPOINT: &str = "DELETE FROM checkpoints WHERE dev = $1 AND ino = $2";
const SELECT_CHECKPOINTS: &str = "SELECT dev, ino, born, head, \"offset\", tail_len, tail_crc, \
     skipping, source, path, marks, written_at FROM checkpoints";
/// Then `VALUES` of (source id, line), `) `, an insert verb, then [`EVICT_LINES_INSERT`]: the
/// lines of sessions evicted at the session cap are listed, not deleted, so no index of the
/// events by origin is kept for them (its inserts, four sources' line numbers growing side by
/// side in one B-tree, split pages in its middle: a tenth of SQLite's writer in the tail
/// benchmark). Each listing carries the latest receive time stored when it was made, which is
/// no earlier than any of its lines': [`PRUNE_EVICTED`] drops it only with them.
const EVICT_LINES: &str = "WITH v (source_id, line) AS (";
const EVICT_LINES_INSERT: &str = "INTO evicted_lines (source_id, line, evicted_at) \
     SELECT v.source_id, v.line, (SELECT COALESCE(MAX(received_at), 0) FROM events) FROM v \
     WHERE true ON CONFLICT (source_id, line) DO NOTHING";
const PRUNE: &str = "DELETE FROM events WHERE received_at < $1";
/// After [`PRUNE`], with the same time: every line a listing names was received no later than
/// its `evicted_at`, so it is gone too.
const PRUNE_EVICTED: &str = "DELETE FROM evicted_lines WHERE evicted_at < $1";
/// A stored line (`e`) is read back unless a session eviction listed it. The listing is looked
/// up line by line only if it holds anything: the first test runs once a statement (both
/// backends evaluate a subquery that names no outer column once), and with it the lookup of
/// an empty listing per line went (in `serve` that lookup read the listing's page from the file
/// again for every line: a replay of the tail benchmark's store took 8 s instead of 6; the
/// connections then shared one page cache, see `.cargo/config.toml`). A macro, so that each
/// statement reading lines is one literal.
macro_rules! not_evicted {
    () => {
        "(NOT EXISTS (SELECT 1 FROM evicted_lines) OR NOT EXISTS (SELECT 1 FROM evicted_lines v \
         WHERE v.source_id = e.source_id AND v.line = e.line))"
    };
}
/// After [`INSERT_SQLITE`] or [`INSERT_POSTGRES`].
const INSERT_OUTCOMES: &str = "INTO outcomes (first_seen, session, org, runner, dispatched_at, \
     outcome, latency_ms, skew_clamped, duplicate, duplicate_cross, reclaims) ";
const OUTCOME_KEEP: &str = " ON CONFLICT (first_seen, session) DO NOTHING";
/// A judgement replaces the outcome columns; the dispatch's (org, runner, dispatch time), which
/// the indexes hold, are set by [`REFILE_OUTCOMES`] only where they differ: set here, SQLite
/// rewrites both indexes' entries of every judged row, changed or not (half of the upsert's
/// cost).
const OUTCOME_JUDGE: &str = " ON CONFLICT (first_seen, session) DO UPDATE SET \
     outcome = excluded.outcome, latency_ms = excluded.latency_ms, \
     skew_clamped = excluded.skew_clamped";
/// Then `VALUES` of (first seen, session, org, runner, dispatched at), `) `, [`UPDATE_SQLITE`]
/// or [`UPDATE_POSTGRES`], then [`REFILE_OUTCOMES_SET`]: the judged rows whose dispatch
/// columns differ from their judgement's get the judgement's. Each judgement's row is sought
/// by its key: the unary `+` keeps SQLite from indexing the list on its first-seen times
/// instead — from 256 judgements on, it would build a Bloom filter and an automatic index of
/// the list and scan the whole table against them, every commit (the tail benchmark took
/// 169 s instead of 7; `outcome_writes_seek_their_rows_by_key`).
const REFILE_OUTCOMES: &str = "WITH v (first_seen, session, org, runner, dispatched_at) AS (";
const REFILE_OUTCOMES_SET: &str = "outcomes SET org = v.org, runner = v.runner, \
     dispatched_at = v.dispatched_at FROM v \
     WHERE outcomes.first_seen = +v.first_seen AND outcomes.session = v.session \
     AND NOT (outcomes.org IS NOT DISTINCT FROM v.org AND outcomes.runner = v.runner \
     AND outcomes.dispatched_at = v.dispatched_at)";
/// Then `VALUES` of (first seen, session, 1 if across runtimes), `) `, an update verb, then
/// [`MARK_DUPLICATES_SET`]: every session of a commit claimed twice is marked by one statement,
/// not one each (a statement per mark or total was two fifths of a tail run's statements, each
/// a round trip to SQLite's thread). The list holds a key once (`outcome_groups`): a row the join
/// reached twice would take one of its list rows, either one.
const MARK_DUPLICATES: &str = "WITH v (first_seen, session, crossed) AS (";
const MARK_DUPLICATES_SET: &str = "outcomes SET duplicate = 1, duplicate_cross = \
     CASE WHEN v.crossed = 1 THEN 1 ELSE outcomes.duplicate_cross END FROM v \
     WHERE outcomes.first_seen = +v.first_seen AND outcomes.session = v.session";
/// Then `VALUES` of (first seen, session, claims after a release), `) `, an update verb, then
/// [`SET_RECLAIMS_SET`]: a total only ever grows (a replay writes the same totals again).
const SET_RECLAIMS: &str = "WITH v (first_seen, session, total) AS (";
const SET_RECLAIMS_SET: &str = "outcomes SET reclaims = v.total FROM v \
     WHERE outcomes.first_seen = +v.first_seen AND outcomes.session = v.session \
     AND outcomes.reclaims < v.total";
const SELECT_SESSIONS_OF_ORG: &str = "SELECT session FROM outcomes WHERE org = $1";
const PRUNE_OUTCOMES: &str = "DELETE FROM outcomes WHERE first_seen < $1";
/// After [`INSERT_SQLITE`] or [`INSERT_POSTGRES`].
const INSERT_FINDINGS: &str =
    "INTO findings (kind, \"key\", session, org, runner, found_at, detail) ";
const FINDING_KEEP: &str = " ON CONFLICT (kind, \"key\") DO NOTHING";
const RESOLVE_FINDING: &str = "UPDATE findings SET resolved_at = $1 \
     WHERE kind = $2 AND \"key\" = $3 AND resolved_at IS NULL";
const ANNOTATE_FINDING: &str = "UPDATE findings SET detail = $1 WHERE kind = $2 AND \"key\" = $3";
const PRUNE_FINDINGS: &str = "DELETE FROM findings WHERE found_at < $1";
const SELECT_FINDINGS: &str = "SELECT id, kind, session, org, runner, found_at, resolved_at, \
     detail FROM findings WHERE 1 = 1";
/// A line whose source id names no source (damage) is read with an empty source, not dropped.
const SELECT_LINES: &str = concat!(
    "SELECT e.received_at, COALESCE(s.name, ''), e.line, e.session, \
     e.entry_id, e.default_runtime, e.raw \
     FROM events e LEFT JOIN sources s ON s.id = e.source_id WHERE ",
    not_evicted!(),
    " ORDER BY e.seq"
);
const SELECT_LINES_AFTER: &str = concat!(
    "SELECT e.received_at, COALESCE(s.name, ''), e.line, e.session, \
     e.entry_id, e.default_runtime, e.raw, e.seq \
     FROM events e LEFT JOIN sources s ON s.id = e.source_id \
     WHERE e.seq > $1 AND ",
    not_evicted!(),
    " ORDER BY e.seq LIMIT $2"
);
/// With no eviction listed (the usual case) the count of an index, not a scan of every line.
const COUNT_LINES: &str = concat!(
    "SELECT CASE WHEN EXISTS (SELECT 1 FROM evicted_lines) \
     THEN (SELECT COUNT(*) FROM events e WHERE ",
    not_evicted!(),
    ") ELSE (SELECT COUNT(*) FROM events) END"
);
const UPSERT_STATE: &str = "INSERT INTO state (name, json) VALUES ($1, $2) \
     ON CONFLICT (name) DO UPDATE SET json = excluded.json";
const INSERT_REPORT: &str = "INSERT INTO reports (id, org, flip_at, verdict, created_at, json) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING";
/// Newest flip first, at most `$1`: read from the `reports_flip_at` index (migration 0010),
/// the JSON left on disk.
const SELECT_REPORT_LIST: &str = "SELECT id, org, flip_at, verdict, created_at FROM reports \
     ORDER BY flip_at DESC, id LIMIT $1";
const SELECT_REPORT_IDS: &str = "SELECT id FROM reports";
const SELECT_LATEST_REPORT: &str = "SELECT id, org, flip_at, verdict, created_at, json FROM reports \
     WHERE org = $1 ORDER BY flip_at DESC LIMIT 1";
const SELECT_REPORT: &str =
    "SELECT id, org, flip_at, verdict, created_at, json FROM reports WHERE id = $1";
const SELECT_STATE: &str = "SELECT json FROM state WHERE name = $1";

/// Adds what selects, orders and bounds a page of findings to `$q`, a query over `findings`.
macro_rules! finding_page_sql {
    ($q:ident, $filter:expr) => {{
        let filter: &FindingFilter = $filter;
        if let Some(k) = filter.kind {
            $q.push(" AND kind = ").push_bind(k.as_str());
        }
        if let Some(org) = &filter.org {
            $q.push(" AND org = ").push_bind(text(org).into_owned());
        }
        if let Some(t) = filter.since {
            $q.push(" AND found_at >= ").push_bind(t.millis());
        }
        if let Some(t) = filter.until {
            $q.push(" AND found_at < ").push_bind(t.millis());
        }
        let dir = if filter.newest_first { "DESC" } else { "ASC" };
        if let Some(c) = filter.after {
            // The first comparison is the index range; the second only sorts out the
            // findings found in the same millisecond as the cursor.
            let (range, after) = if filter.newest_first {
                ("<=", "<")
            } else {
                (">=", ">")
            };
            $q.push(format_args!(" AND found_at {range} "))
                .push_bind(c.found_at.millis())
                .push(format_args!(" AND (found_at {after} "))
                .push_bind(c.found_at.millis())
                .push(format_args!(" OR id {after} "))
                .push_bind(c.id)
                .push(")");
        }
        $q.push(format_args!(" ORDER BY found_at {dir}, id {dir} LIMIT "))
            .push_bind(i64::from(filter.limit) + 1);
    }};
}

impl Store {
    /// Opens (creating if needed) the store at `url`: `postgres://…` (or `postgresql://…`),
    /// `sqlite://path`, or a plain path to a SQLite file. Migrations run on open.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url)?.application_name("claimcheck");
            let pool = PgPoolOptions::new()
                .max_connections(4)
                // A commit attempt against a Postgres that does not answer fails within
                // this, is counted, and is retried.
                .acquire_timeout(Duration::from_secs(3))
                .connect_with(opts)
                .await?;
            sqlx::migrate!("migrations/postgres").run(&pool).await?;
            // A serve killed just after sending a COMMIT leaves it to its server session,
            // which may land it after this start has read the checkpoints and before the
            // replay reads the lines: those lines would be replayed and read again from the
            // older checkpoint. Every commit holds COMMITS_LOCK shared from its start, so
            // taking it exclusively waits for any such commit to end either way.
            let mut tx = pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(COMMITS_LOCK)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(Store::with(Pool::Postgres(pool), None));
        }
        let opts = match url.strip_prefix("sqlite:") {
            Some(_) => SqliteConnectOptions::from_str(url)?,
            None => SqliteConnectOptions::new().filename(Path::new(url)),
        }
        // WAL + NORMAL: a committed transaction survives the process being killed.
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        // A multi-row insert keeps a statement journal: in memory, not a temporary file
        // written for every batch. It only undoes a failed statement; durability is the WAL's.
        // (The page cache stays SQLite's 2 MiB, each connection's own (`.cargo/config.toml`):
        // 8 MiB on each of the pool's connections added up to 50 MB of RSS, past
        // `--max-sessions`' memory bound in `serve_bounded`, for a few per cent of commit time.)
        .pragma("temp_store", "memory")
        // A store created from now on has pages of 16 KiB: see [`PAGE_SIZE`]. (Set before the
        // journal mode: in WAL mode the page size of a database with content no longer
        // changes, so a store created with SQLite's 4 KiB keeps them.)
        .page_size(PAGE_SIZE)
        // No checkpoint inside a commit: the checkpointer runs them on a connection of its own,
        // while the next commits go on (`checkpointer.rs`).
        .pragma("wal_autocheckpoint", "0");
        // Created (if need be) by one connection, then opened never creating it again.
        {
            use sqlx::{ConnectOptions, Connection};
            let first = opts.clone().create_if_missing(true).connect().await?;
            first.close().await?;
        }
        let opts = opts.create_if_missing(false);
        let path = opts.get_filename().to_owned();
        let identity = identity_of(&path).map_err(sqlx::Error::Io)?;
        let pool = sqlite_pool(opts.clone()).await?;
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        let page: i64 = sqlx::query_scalar("PRAGMA page_size")
            .fetch_one(&pool)
            .await?;
        let mut store = Store::with(Pool::Sqlite(pool), None);
        store.checkpointer = Some(Arc::new(checkpointer::Checkpointer::start(
            store.pool.clone(),
            path.clone(),
            u32::try_from(page).unwrap_or(PAGE_SIZE),
        )));
        store.sqlite = Some(Arc::new(SqliteFile {
            path,
            opts,
            identity: std::sync::Mutex::new(identity),
        }));
        Ok(store)
    }

    fn with(pool: Pool, sqlite: Option<Arc<SqliteFile>>) -> Store {
        Store {
            pool: Arc::new(RwLock::new(pool)),
            sqlite,
            healing: Arc::new(tokio::sync::Mutex::new(())),
            last_rows: Arc::new(Default::default()),
            texts: Arc::default(),
            checkpointer: None,
            writer: Arc::default(),
            source_ids: Arc::default(),
        }
    }

    /// How many WAL checkpoints a SQLite store's checkpointer ran (none for Postgres).
    pub fn wal_checkpoints(&self) -> WalCheckpoints {
        self.checkpointer
            .as_ref()
            .map(|c| c.counts())
            .unwrap_or_default()
    }

    fn pool(&self) -> Pool {
        match self.pool.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set_pool(&self, pool: Pool) -> Pool {
        match self.pool.write() {
            Ok(mut p) => std::mem::replace(&mut *p, pool),
            Err(poisoned) => std::mem::replace(&mut *poisoned.into_inner(), pool),
        }
    }

    /// For a SQLite store: whether the file at its path is still the one it opened.
    pub fn check_file(&self) -> Result<(), StoreError> {
        let Some(f) = &self.sqlite else {
            return Ok(());
        };
        let opened = *f.identity.lock().unwrap_or_else(|p| p.into_inner());
        let fault = match identity_of(&f.path) {
            Ok(now) if now == opened => return Ok(()),
            Ok(_) => FileFault::Replaced,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => FileFault::Deleted,
            Err(e) => return Err(StoreError::Db(sqlx::Error::Io(e))),
        };
        Err(StoreError::File {
            path: f.path.display().to_string(),
            fault,
        })
    }

    /// A cheap round trip (and, for SQLite, the file's identity): is the store there?
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.check_file()?;
        on_pool!(self, pool => {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    /// After a failure, puts the store back in a state where commits can land: for SQLite,
    /// every connection is closed and opened again (a failed commit, e.g. on a full disk,
    /// can leave a connection holding the write lock: "database is locked" for ever after),
    /// and a file deleted underneath is written back to its path from the still-open
    /// connection first. A replaced file is left alone (`Err`): which one is right is for
    /// the operator to say. Postgres' pool reconnects by itself.
    pub async fn heal(&self) -> Result<(), StoreError> {
        let Some(f) = &self.sqlite else {
            return Ok(());
        };
        let _one = self.healing.lock().await;
        // The held connection belongs to the pool closed below, whose `close` waits for it.
        *self.writer.lock().await = None;
        match self.check_file() {
            Ok(()) => {}
            Err(StoreError::File {
                fault: FileFault::Deleted,
                ..
            }) => self.restore(f).await?,
            Err(e) => return Err(e),
        }
        let pool = sqlite_pool(f.opts.clone()).await?;
        if let Pool::Sqlite(old) = self.set_pool(Pool::Sqlite(pool)) {
            old.close().await;
        }
        Ok(())
    }

    /// Writes the deleted store back to its path: the open connections still reach the
    /// unlinked file, so its committed content is copied (`VACUUM INTO`) beside the path
    /// and renamed onto it; the old connections are closed before the copy takes the path.
    async fn restore(&self, f: &SqliteFile) -> Result<(), StoreError> {
        let Pool::Sqlite(pool) = self.pool() else {
            return Ok(());
        };
        let mut tmp = f.path.clone().into_os_string();
        tmp.push(".restoring");
        let tmp = PathBuf::from(tmp);
        let _ = std::fs::remove_file(&tmp);
        {
            let mut conn = pool.acquire().await?;
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&mut *conn)
                .await?;
            sqlx::query("VACUUM INTO $1")
                .bind(tmp.display().to_string())
                .execute(&mut *conn)
                .await?;
        }
        // The last connection to close removes the old `-wal`/`-shm` files by name: before
        // the copy takes the path, not after.
        pool.close().await;
        std::fs::rename(&tmp, &f.path).map_err(sqlx::Error::Io)?;
        let identity = identity_of(&f.path).map_err(sqlx::Error::Io)?;
        *f.identity.lock().unwrap_or_else(|p| p.into_inner()) = identity;
        Ok(())
    }

    /// Which backend this is, for logs: `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self.pool() {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    /// Commits `c` in one transaction. A SQLite store whose file was deleted or replaced
    /// refuses: the lines would land in a file nobody will read again.
    pub async fn commit(&self, c: &Commit) -> Result<(), StoreError> {
        self.commit_all(std::slice::from_ref(c)).await
    }

    /// Commits each of `cs` in order, all in one transaction: as if committed one after the
    /// other, but all or none lands, for one transaction's fixed cost.
    pub async fn commit_all(&self, cs: &[Commit]) -> Result<(), StoreError> {
        self.check_file()?;
        if let Some(c) = &self.checkpointer {
            c.bound().await;
        }
        let postgres = matches!(self.pool(), Pool::Postgres(_));
        let (insert_verb, update_verb) = if postgres {
            (INSERT_POSTGRES, UPDATE_POSTGRES)
        } else {
            (INSERT_SQLITE, UPDATE_SQLITE)
        };
        let (mut ids, unknown) = self.source_ids_of(cs);
        // The statements of every commit, in `$tx`: a transaction of either backend.
        macro_rules! write_commits {
            ($tx:ident, $db:ty) => {{
                if postgres {
                    // Held until this transaction ends: see `open`.
                    sqlx::query("SELECT pg_advisory_xact_lock_shared($1)")
                        .bind(COMMITS_LOCK)
                        .execute(&mut *$tx)
                        .await?;
                }
                for name in &unknown {
                    let id: i64 = sqlx::query_scalar(UPSERT_SOURCE)
                        .bind(name.as_ref())
                        .fetch_one(&mut *$tx)
                        .await?;
                    ids.insert(name.clone(), id);
                }
                let ids = &ids;
                let id_of = move |name: &str| ids.get(&*text(name)).copied().unwrap_or_default();
                // Statements are built a few ahead of the one the database runs: while SQLite's
                // thread (or Postgres) runs one, this task binds the rows of the next ones
                // instead of waiting (see `BUILT_AHEAD`). They run in the order built.
                let (ahead, mut built) = tokio::sync::mpsc::channel(BUILT_AHEAD);
                let build = async move {
                    // Hands a statement to the runner; stops building once it stopped.
                    macro_rules! run {
                        ($stmt:expr) => {
                            if ahead.send($stmt).await.is_err() {
                                return;
                            }
                        };
                    }
                    for c in cs {
                        // Many rows per statement: one round trip per few hundred lines, not per line.
                        let lines: Vec<(i64, &NewLines, &NewLine)> = c
                            .lines
                            .iter()
                            .flat_map(|b| {
                                let id = id_of(&b.source);
                                b.rows.iter().map(move |r| (id, b, r))
                            })
                            .collect();
                        for rows in chunks(&lines, Write::Events, &self.last_rows) {
                            let sql = self.texts.get(Write::Events, rows.len(), postgres, || {
                                values_text(insert_verb, INSERT_EVENTS, &EVENT_ROW, rows.len(), "", postgres)
                            });
                            let values = (|| {
                                let mut args = <$db as sqlx::Database>::Arguments::default();
                                sqlx::Arguments::reserve(&mut args, rows.len() * EVENT_ROW.len(), 0);
                                for &(source, batch, l) in rows {
                                    sqlx::Arguments::add(&mut args, batch.received_at.millis())?;
                                    sqlx::Arguments::add(&mut args, source)?;
                                    sqlx::Arguments::add(&mut args, i64::from(l.line))?;
                                    sqlx::Arguments::add(&mut args, l.session.as_deref().map(text))?;
                                    sqlx::Arguments::add(&mut args, l.entry_id.as_deref().map(text))?;
                                    sqlx::Arguments::add(&mut args, runtime_str(batch.default_runtime))?;
                                    sqlx::Arguments::add(&mut args, batch.buf.get(l.at).unwrap_or_default())?;
                                }
                                Ok(args)
                            })();
                            run!(Stmt::Texted(sql, values));
                        }
                        if let Some(cp) = &c.position {
                            if cp.forget {
                                run!(Stmt::Plain(sqlx::query(DELETE_CHECKPOINT)
                                    .bind(to_i64(cp.dev))
                                    .bind(to_i64(cp.ino))
                                    ));
                            } else {
                                run!(Stmt::Plain(sqlx::query(UPSERT_CHECKPOINT)
                                    .bind(to_i64(cp.dev))
                                    .bind(to_i64(cp.ino))
                                    .bind(to_i64(cp.born))
                                    .bind(&cp.head)
                                    .bind(to_i64(cp.offset))
                                    .bind(i64::from(cp.tail_len))
                                    .bind(i64::from(cp.tail_crc))
                                    .bind(cp.skipping)
                                    .bind(text(&cp.source).into_owned())
                                    .bind(text(&cp.path).into_owned())
                                    .bind(marks_bytes(&cp.marks))
                                    .bind(cp.written_at)
                                    ));
                            }
                        }
                        let evicted: Vec<(i64, u32)> = c
                            .evicted_lines
                            .iter()
                            .map(|(source, line)| (id_of(source), *line))
                            .collect();
                        for chunk in chunks(&evicted, Write::EvictedLines, &self.last_rows) {
                            let mut insert = sqlx::QueryBuilder::new(EVICT_LINES);
                            insert.push_values(chunk, |mut b, &(source, line)| {
                                b.push("CAST(")
                                    .push_bind_unseparated(source)
                                    .push_unseparated(" AS BIGINT)")
                                    .push("CAST(")
                                    .push_bind_unseparated(i64::from(line))
                                    .push_unseparated(" AS BIGINT)");
                            });
                            insert.push(") ").push(insert_verb).push(EVICT_LINES_INSERT);
                            run!(Stmt::Built(insert));
                        }
                        if let Some(t) = c.prune_before {
                            run!(Stmt::Plain(sqlx::query(PRUNE)
                                .bind(t.millis())
                                ));
                            run!(Stmt::Plain(sqlx::query(PRUNE_EVICTED)
                                .bind(t.millis())
                                ));
                            run!(Stmt::Plain(sqlx::query(PRUNE_OUTCOMES)
                                .bind(t.millis())
                                ));
                            run!(Stmt::Plain(sqlx::query(PRUNE_FINDINGS)
                                .bind(t.millis())
                                ));
                        }
                        // Dispatches first (never overwriting), then judgements (the last per session
                        // wins) and the refiles of those that may move their rows' dispatch columns,
                        // then duplicate marks: the order the changes came in, grouped.
                        let groups = outcome_groups(&c.outcomes);
                        for (rows, write, on_conflict) in [
                            (&groups.dispatched, Write::Dispatched, OUTCOME_KEEP),
                            (&groups.judged, Write::Judged, OUTCOME_JUDGE),
                        ] {
                            for rows in chunks(rows, write, &self.last_rows) {
                                let sql = self.texts.get(write, rows.len(), postgres, || {
                                    values_text(insert_verb, INSERT_OUTCOMES, &OUTCOME_ROW, rows.len(), on_conflict, postgres)
                                });
                                let values = (|| {
                                    let mut args = <$db as sqlx::Database>::Arguments::default();
                                    sqlx::Arguments::reserve(&mut args, rows.len() * OUTCOME_ROW.len(), 0);
                                    for ((_, session), r) in rows {
                                        sqlx::Arguments::add(&mut args, r.first_seen.millis())?;
                                        sqlx::Arguments::add(&mut args, session.clone())?;
                                        sqlx::Arguments::add(&mut args, r.org.as_deref().map(text))?;
                                        sqlx::Arguments::add(&mut args, r.runner.as_str())?;
                                        sqlx::Arguments::add(&mut args, r.dispatched_at.millis())?;
                                        sqlx::Arguments::add(&mut args, r.outcome.as_str())?;
                                        sqlx::Arguments::add(&mut args, r.latency_ms)?;
                                        sqlx::Arguments::add(&mut args, i32::from(r.skew_clamped))?;
                                    }
                                    Ok(args)
                                })();
                                run!(Stmt::Texted(sql, values));
                            }
                        }
                        for rows in chunks(&groups.refiled, Write::Refiled, &self.last_rows) {
                            run!(Stmt::Built(refile(rows, update_verb)));
                        }
                        for (rows, write, head, set) in [
                            (&groups.duplicates, Write::Duplicates, MARK_DUPLICATES, MARK_DUPLICATES_SET),
                            (&groups.reclaims, Write::Reclaims, SET_RECLAIMS, SET_RECLAIMS_SET),
                        ] {
                            for rows in chunks(rows, write, &self.last_rows) {
                                run!(Stmt::Built(update_values(rows, head, update_verb, set)));
                            }
                        }
                        // New findings first (a replay's are already there), then resolutions and
                        // evidence, which only ever concern a finding written before them.
                        let found: Vec<&NewFinding> = c
                            .findings
                            .iter()
                            .filter_map(|w| match w {
                                FindingWrite::Found(f) => Some(f),
                                _ => None,
                            })
                            .collect();
                        for rows in chunks(&found, Write::Findings, &self.last_rows) {
                            let mut insert = sqlx::QueryBuilder::new(insert_verb);
                            insert.push(INSERT_FINDINGS);
                            insert.push_values(rows, |mut b, &f| {
                                b.push_bind(f.kind.as_str())
                                    .push_bind(text(&f.key))
                                    .push_bind(f.session.as_deref().map(text))
                                    .push_bind(f.org.as_deref().map(text))
                                    .push_bind(f.runner)
                                    .push_bind(f.found_at.millis())
                                    .push_bind(f.detail.as_deref().map(text));
                            });
                            insert.push(FINDING_KEEP);
                            run!(Stmt::Built(insert));
                        }
                        for w in &c.findings {
                            match w {
                                FindingWrite::Found(_) => {}
                                FindingWrite::Resolved { kind, key, at } => {
                                    run!(Stmt::Plain(sqlx::query(RESOLVE_FINDING)
                                        .bind(at.millis())
                                        .bind(kind.as_str())
                                        .bind(text(key).into_owned())
                                        ));
                                }
                                FindingWrite::Annotated { kind, key, detail } => {
                                    run!(Stmt::Plain(sqlx::query(ANNOTATE_FINDING)
                                        .bind(text(detail).into_owned())
                                        .bind(kind.as_str())
                                        .bind(text(key).into_owned())
                                        ));
                                }
                            }
                        }
                        for (name, json) in &c.state {
                            run!(Stmt::Plain(sqlx::query(UPSERT_STATE)
                                .bind(*name)
                                .bind(json)
                                ));
                        }
                    }
                };
                let tx = &mut $tx;
                let run = async move {
                    while let Some(stmt) = built.recv().await {
                        let ran = match stmt {
                            Stmt::Built(mut q) => q.build().execute(&mut **tx).await,
                            Stmt::Plain(q) => q.execute(&mut **tx).await,
                            Stmt::Texted(sql, Ok(args)) => {
                                sqlx::query_with(&sql, args).execute(&mut **tx).await
                            }
                            Stmt::Texted(_, Err(e)) => Err(sqlx::Error::Encode(e)),
                        };
                        if let Err(e) = ran {
                            // The statements built after it are never run.
                            built.close();
                            return Err(StoreError::from(e));
                        }
                    }
                    Ok(())
                };
                let ((), ran) = tokio::join!(build, run);
                ran?;
            }};
        }
        match &self.pool() {
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                write_commits!(tx, sqlx::Postgres);
                tx.commit().await?;
            }
            Pool::Sqlite(pool) => {
                // Every commit on the same connection, whose page cache still holds the pages
                // the last commit wrote (see `writer`).
                let mut writer = self.writer.lock().await;
                let mut conn = match writer.take() {
                    Some(conn) => conn,
                    None => pool.acquire().await?,
                };
                let landed: Result<(), StoreError> = async {
                    use sqlx::Connection;
                    let mut tx = conn.begin().await?;
                    write_commits!(tx, sqlx::Sqlite);
                    tx.commit().await?;
                    Ok(())
                }
                .await;
                // A connection whose commit failed goes back to the pool (and `heal` may
                // close it): the next commit takes another.
                landed?;
                *writer = Some(conn);
            }
        }
        if !unknown.is_empty() {
            let mut known = self.source_ids.lock().unwrap_or_else(|p| p.into_inner());
            for name in unknown {
                if let Some(&id) = ids.get(name.as_ref()) {
                    known.insert(name.into_owned(), id);
                }
            }
        }
        if let Some(c) = &self.checkpointer {
            c.nudge();
        }
        Ok(())
    }

    /// The ids of the source names `cs` stores or deletes lines of (as stored: see [`text`])
    /// that this store already knows, and the names it does not know yet.
    fn source_ids_of<'c>(&self, cs: &'c [Commit]) -> (SourceIds<'c>, Vec<Cow<'c, str>>) {
        let names = cs.iter().flat_map(|c| {
            let stored = c.lines.iter().map(|b| b.source.as_str());
            stored.chain(c.evicted_lines.iter().map(|(s, _)| s.as_str()))
        });
        let known = self.source_ids.lock().unwrap_or_else(|p| p.into_inner());
        let mut ids = rustc_hash::FxHashMap::default();
        let mut unknown = Vec::new();
        for name in names {
            let name = text(name);
            if ids.contains_key(&name) || unknown.contains(&name) {
                continue;
            }
            match known.get(name.as_ref()) {
                Some(&id) => {
                    ids.insert(name, id);
                }
                None => unknown.push(name),
            }
        }
        (ids, unknown)
    }

    /// Every stored line an eviction did not list, oldest first.
    pub async fn lines(&self) -> Result<Vec<StoredLine>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(SELECT_LINES).fetch_all(pool).await?;
            rows.into_iter()
                .map(|r| {
                    Ok(StoredLine {
                        received_at: Timestamp(r.try_get(0)?),
                        source: r.try_get(1)?,
                        line: u32::try_from(r.try_get::<i64, _>(2)?).unwrap_or(u32::MAX),
                        session: r.try_get(3)?,
                        entry_id: r.try_get(4)?,
                        default_runtime: runtime_of(r.try_get(5)?),
                        raw: r.try_get(6)?,
                    })
                })
                .collect()
        })
    }

    /// At most `limit` stored lines after position `after` (0: from the first), oldest
    /// first, each with its position: recovery pages through the store with these, so memory
    /// is bounded by the page, not by what the store holds. Lines deleted meanwhile are
    /// skipped; lines committed meanwhile come after the last page.
    pub async fn lines_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, StoredLine)>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(SELECT_LINES_AFTER)
                .bind(after)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(pool)
                .await?;
            rows.into_iter()
                .map(|r| {
                    let line = StoredLine {
                        received_at: Timestamp(r.try_get(0)?),
                        source: r.try_get(1)?,
                        line: u32::try_from(r.try_get::<i64, _>(2)?).unwrap_or(u32::MAX),
                        session: r.try_get(3)?,
                        entry_id: r.try_get(4)?,
                        default_runtime: runtime_of(r.try_get(5)?),
                        raw: r.try_get(6)?,
                    };
                    Ok((r.try_get(7)?, line))
                })
                .collect()
        })
    }

    /// How many lines the store holds that an eviction did not list (those read back).
    pub async fn line_count(&self) -> Result<u64, StoreError> {
        on_pool!(self, pool => {
            let row = sqlx::query(COUNT_LINES).fetch_one(pool).await?;
            Ok(to_u64(row.try_get(0)?))
        })
    }

    /// Every followed file's checkpoint, in no order.
    pub async fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(SELECT_CHECKPOINTS).fetch_all(pool).await?;
            rows.iter()
                .map(|r| {
                    Ok(Checkpoint {
                        dev: to_u64(r.try_get(0)?),
                        ino: to_u64(r.try_get(1)?),
                        born: to_u64(r.try_get(2)?),
                        head: r.try_get(3)?,
                        offset: to_u64(r.try_get(4)?),
                        tail_len: u32::try_from(r.try_get::<i64, _>(5)?).unwrap_or(0),
                        tail_crc: u32::try_from(r.try_get::<i64, _>(6)?).unwrap_or(0),
                        skipping: r.try_get(7)?,
                        source: r.try_get(8)?,
                        path: r.try_get(9)?,
                        marks: marks_of(&r.try_get::<Vec<u8>, _>(10)?),
                        written_at: r.try_get(11)?,
                        forget: false,
                    })
                })
                .collect()
        })
    }

    /// The totals of the dispatched sessions `filter` selects, by SQL aggregates over the
    /// outcome rows (indexed by org and dispatch time): bounded whatever the store holds.
    /// Orphan claims (no dispatch, so no row) and re-dispatches are not in the rows (0 here).
    pub async fn summary(&self, filter: &OutcomeFilter) -> Result<Totals, StoreError> {
        on_pool!(self, pool => {
            let mut q = sqlx::QueryBuilder::new(
                "SELECT runner, outcome, COUNT(*), SUM(skew_clamped), SUM(duplicate), \
                 SUM(duplicate_cross), SUM(reclaims) FROM outcomes WHERE 1 = 1",
            );
            if let Some(org) = &filter.org {
                q.push(" AND org = ").push_bind(text(org).into_owned());
            }
            if let Some(t) = filter.since {
                q.push(" AND dispatched_at >= ").push_bind(t.millis());
            }
            if let Some(t) = filter.until {
                q.push(" AND dispatched_at < ").push_bind(t.millis());
            }
            q.push(" GROUP BY runner, outcome");
            let rows = q.build().fetch_all(pool).await?;
            let mut t = Totals::default();
            for r in &rows {
                let runner: String = r.try_get(0)?;
                let outcome: String = r.try_get(1)?;
                let n = to_u64(r.try_get(2)?);
                let sum = |i: usize| -> Result<u64, sqlx::Error> {
                    Ok(to_u64(r.try_get::<Option<i64>, _>(i)?.unwrap_or(0)))
                };
                match Runner::from_value(&runner) {
                    Runner::Go => t.dispatched.go += n,
                    Runner::Ts => t.dispatched.ts += n,
                    Runner::Other => t.dispatched.other += n,
                }
                match outcome.as_str() {
                    "matched" => t.matched += n,
                    "late" => t.late += n,
                    "mismatched" => t.mismatched += n,
                    "unclaimed" => t.unclaimed += n,
                    _ => t.pending += n,
                }
                t.skew_clamped += sum(3)?;
                t.duplicate_claims += sum(4)?;
                t.duplicate_claims_cross_runtime += sum(5)?;
                t.reclaims += sum(6)?;
            }
            Ok(t)
        })
    }

    /// One page of the stored findings `filter` selects, in its order: a range of one of the
    /// `findings` indexes (by kind, org, both or neither, then found at and id), read no
    /// further than the page, whatever the store holds.
    pub async fn findings(&self, filter: &FindingFilter) -> Result<FindingPage, StoreError> {
        on_pool!(self, pool => {
            let mut q = sqlx::QueryBuilder::new(SELECT_FINDINGS);
            finding_page_sql!(q, filter);
            let rows = q.build().fetch_all(pool).await?;
            let mut findings = rows
                .iter()
                .map(|r| {
                    let kind: String = r.try_get(1)?;
                    let Some(kind) = FindingKind::from_name(&kind) else {
                        return Err(StoreError::UnknownFindingKind(kind));
                    };
                    Ok(StoredFinding {
                        id: r.try_get(0)?,
                        kind,
                        session: r.try_get(2)?,
                        org: r.try_get(3)?,
                        runner: r.try_get(4)?,
                        found_at: Timestamp(r.try_get(5)?),
                        resolved_at: r.try_get::<Option<i64>, _>(6)?.map(Timestamp),
                        detail: r.try_get(7)?,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            let more = findings.len() > filter.limit as usize;
            findings.truncate(filter.limit as usize);
            Ok(FindingPage { findings, more })
        })
    }

    /// How the backend plans the page query of `filter`, one line per step (`EXPLAIN QUERY
    /// PLAN` on SQLite, `EXPLAIN` on Postgres): what shows that a page reads an index.
    pub async fn explain_findings(&self, filter: &FindingFilter) -> Result<String, StoreError> {
        let explain = match self.pool() {
            Pool::Sqlite(_) => "EXPLAIN QUERY PLAN ",
            Pool::Postgres(_) => "EXPLAIN ",
        };
        on_pool!(self, pool => {
            let mut q = sqlx::QueryBuilder::new(format!("{explain}{SELECT_FINDINGS}"));
            finding_page_sql!(q, filter);
            let rows = q.build().fetch_all(pool).await?;
            let mut plan = String::new();
            for r in &rows {
                let step: String = r.try_get(r.len().saturating_sub(1))?;
                plan.push_str(&step);
                plan.push('\n');
            }
            Ok(plan)
        })
    }

    /// Named JSON state, as last committed.
    pub async fn state(&self, name: &str) -> Result<Option<String>, StoreError> {
        on_pool!(self, pool => {
            let row = sqlx::query(SELECT_STATE).bind(name).fetch_optional(pool).await?;
            Ok(row.map(|r| r.try_get(0)).transpose()?)
        })
    }

    /// Stores a report once: a second one with the same id is ignored (a restart that
    /// regenerates it changes nothing).
    pub async fn put_report(&self, r: &StoredReport) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(INSERT_REPORT)
                .bind(&r.id)
                .bind(text(&r.org))
                .bind(r.flip_at.millis())
                .bind(&r.verdict)
                .bind(r.created_at.millis())
                .bind(&r.json)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The `limit` reports of the latest flips, newest first, without their JSON: one
    /// indexed query, whatever the store holds.
    pub async fn report_list(&self, limit: u32) -> Result<Vec<ReportListing>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(SELECT_REPORT_LIST)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(ReportListing {
                        id: r.try_get(0)?,
                        org: r.try_get(1)?,
                        flip_at: Timestamp(r.try_get(2)?),
                        verdict: r.try_get(3)?,
                        created_at: Timestamp(r.try_get(4)?),
                    })
                })
                .collect()
        })
    }

    /// The ids of every stored report.
    pub async fn report_ids(&self) -> Result<Vec<String>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(SELECT_REPORT_IDS).fetch_all(pool).await?;
            rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
        })
    }

    /// The report of `org`'s latest reported flip.
    pub async fn latest_report(&self, org: &str) -> Result<Option<StoredReport>, StoreError> {
        on_pool!(self, pool => {
            let row = sqlx::query(SELECT_LATEST_REPORT)
                .bind(text(org))
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(report_of).transpose()
        })
    }

    /// The sessions of `org` in the outcome rows (with `serve --cluster`, every replica's:
    /// the feed writes them), for a replica's share of a post-flip report's evidence.
    pub async fn sessions_of(&self, org: &str) -> Result<Vec<String>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(SELECT_SESSIONS_OF_ORG)
                .bind(text(org).into_owned())
                .fetch_all(pool)
                .await?;
            rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
        })
    }

    pub async fn report(&self, id: &str) -> Result<Option<StoredReport>, StoreError> {
        on_pool!(self, pool => {
            let row = sqlx::query(SELECT_REPORT).bind(id).fetch_optional(pool).await?;
            row.as_ref().map(report_of).transpose()
        })
    }
}

/// How many statements of a commit are built ahead of the one running (bounded: each holds its
/// rows' bound values, up to [`MAX_ROWS`] rows). Built one at a time, each after the last one
/// ran, a commit's statements took turns with SQLite's thread: the database waited while this
/// task bound the next statement's rows (a quarter of the transaction's time in the tail
/// benchmark), and this task waited while the database ran it.
const BUILT_AHEAD: usize = 4;

/// One statement of a commit, built and waiting for its turn to run.
enum Stmt<'q, DB: sqlx::Database> {
    Built(sqlx::QueryBuilder<'q, DB>),
    Plain(sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>),
    /// A text from [`Texts`] and its rows' values (or the error binding one of them gave).
    Texted(
        Arc<str>,
        Result<<DB as sqlx::Database>::Arguments<'q>, sqlx::error::BoxDynError>,
    ),
}

/// The texts of a commit's largest multi-row writes (events, outcome inserts), by write, row
/// count and backend, each built once. Built through `QueryBuilder` for every statement, each
/// of a 512-row insert's thousands of placeholders and separators went through `write!`
/// (`core::fmt::write` was 2 % of a tail run's samples), for a text the connection's statement
/// cache then looked up to find the statement it had prepared for the same text before.
#[derive(Debug, Default)]
struct Texts(std::sync::Mutex<rustc_hash::FxHashMap<(usize, usize, bool), Arc<str>>>);

impl Texts {
    /// Texts kept at most (each a few to 25 kB): past it, all are dropped and built again.
    /// The chunking makes a few row counts per write (`chunks`), so this is never reached
    /// in a steady run.
    const CAP: usize = 64;

    /// The text of `write` for `rows` rows, made by `make` if it is not kept yet.
    fn get(
        &self,
        write: Write,
        rows: usize,
        postgres: bool,
        make: impl FnOnce() -> String,
    ) -> Arc<str> {
        let key = (write as usize, rows, postgres);
        let mut texts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = texts.get(&key) {
            return Arc::clone(t);
        }
        if texts.len() >= Self::CAP {
            texts.clear();
        }
        let t: Arc<str> = make().into();
        texts.insert(key, Arc::clone(&t));
        t
    }
}

/// The values of one `events` row (see [`values_text`]).
const EVENT_ROW: [&str; 7] = ["?"; 7];

/// The values of one `outcomes` row: duplicate, duplicate_cross and reclaims are `0` as
/// literals (no row is inserted marked: marks and totals are updates), not three binds a row.
const OUTCOME_ROW: [&str; 11] = ["?", "?", "?", "?", "?", "?", "?", "?", "0", "0", "0"];

/// `verb`, `into`, then `VALUES` and `rows` tuples of `row`, then `tail` — the text
/// `QueryBuilder::push_values` writes: in `row`, `?` is a bind (`$1`, `$2`… on Postgres),
/// anything else is written as it is.
fn values_text(
    verb: &str,
    into: &str,
    row: &[&str],
    rows: usize,
    tail: &str,
    postgres: bool,
) -> String {
    use std::fmt::Write as _;
    let mut sql = String::with_capacity(
        verb.len() + into.len() + tail.len() + 8 + rows * (row.len() * 8 + 4),
    );
    sql.push_str(verb);
    sql.push_str(into);
    sql.push_str("VALUES ");
    let mut bound = 0;
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for (i, col) in row.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            if *col == "?" && postgres {
                bound += 1;
                let _ = write!(sql, "${bound}");
            } else {
                sql.push_str(col);
            }
        }
        sql.push(')');
    }
    sql.push_str(tail);
    sql
}

/// Source names as stored, and their ids in `sources`.
type SourceIds<'c> = rustc_hash::FxHashMap<Cow<'c, str>, i64>;

/// The statement that refiles the judged `rows` (see [`REFILE_OUTCOMES`]), `update_verb`
/// being [`UPDATE_SQLITE`] or [`UPDATE_POSTGRES`].
fn refile<'q, DB: sqlx::Database>(
    rows: &[Keyed<'q>],
    update_verb: &str,
) -> sqlx::QueryBuilder<'q, DB>
where
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Cow<'q, str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<Cow<'q, str>>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    update_by_key(
        REFILE_OUTCOMES,
        rows,
        update_verb,
        REFILE_OUTCOMES_SET,
        |b, r: &&'q OutcomeRow| {
            b.push_bind(r.org.as_deref().map(text))
                .push_bind(r.runner.as_str())
                .push("CAST(")
                .push_bind_unseparated(r.dispatched_at.millis())
                .push_unseparated(" AS BIGINT)");
        },
    )
}

/// The statement that sets one value of each of the `rows` keyed by (first seen, session):
/// `head` ([`MARK_DUPLICATES`] or [`SET_RECLAIMS`]), their `VALUES`, `update_verb` and `set`.
fn update_values<'q, DB: sqlx::Database>(
    rows: &[KeyedValue<'q>],
    head: &str,
    update_verb: &str,
    set: &str,
) -> sqlx::QueryBuilder<'q, DB>
where
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i32: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Cow<'q, str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    update_by_key(head, rows, update_verb, set, |b, value: &i32| {
        b.push("CAST(")
            .push_bind_unseparated(*value)
            .push_unseparated(" AS INTEGER)");
    })
}

/// `head` (a `WITH v (first_seen, session, …) AS (`), the `VALUES` of the `rows` — each its
/// key, then what `rest` binds of its value —, `) `, `update_verb` and `set`: an update of
/// `outcomes` joined to the list by key (the refile, the duplicate marks, the reclaim totals).
fn update_by_key<'q, DB: sqlx::Database, T>(
    head: &str,
    rows: &[((Timestamp, Cow<'q, str>), T)],
    update_verb: &str,
    set: &str,
    mut rest: impl FnMut(&mut sqlx::query_builder::Separated<'_, 'q, DB, &'static str>, &T),
) -> sqlx::QueryBuilder<'q, DB>
where
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Cow<'q, str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let mut update = sqlx::QueryBuilder::new(head);
    update.push_values(rows, |mut b, ((first_seen, session), value)| {
        b.push("CAST(")
            .push_bind_unseparated(first_seen.millis())
            .push_unseparated(" AS BIGINT)")
            .push_bind(session.clone());
        rest(&mut b, value);
    });
    update.push(") ").push(update_verb).push(set);
    update
}

/// A row's key as stored (first seen, session), and the row.
type Keyed<'a> = ((Timestamp, std::borrow::Cow<'a, str>), &'a OutcomeRow);

/// A row's key as stored, and a value to set on it.
type KeyedValue<'a> = ((Timestamp, std::borrow::Cow<'a, str>), i32);

/// One commit's outcome writes, by the statement that writes them.
#[derive(Debug, Default)]
struct OutcomeGroups<'a> {
    /// The first dispatch per key.
    dispatched: Vec<Keyed<'a>>,
    /// The last judgement per key.
    judged: Vec<Keyed<'a>>,
    /// Of those, the ones whose keys a refiling judgement wrote ([`OutcomeWrite::Judged`]).
    refiled: Vec<Keyed<'a>>,
    /// Sessions claimed twice: 1 if by two runtimes once at least, else 0.
    duplicates: Vec<KeyedValue<'a>>,
    /// The largest total of claims after a release per key.
    reclaims: Vec<KeyedValue<'a>>,
}

/// The outcome writes of a commit grouped by statement, by the row's key as stored (two ids
/// that differ only where one has NUL are one session), each group in key order and holding a
/// key once: written in key order, a group reaches each page of the key's index once, in order
/// — and since sessions are first seen in time order, those are the index's last pages.
fn outcome_groups(writes: &[OutcomeWrite]) -> OutcomeGroups<'_> {
    let mut g = OutcomeGroups::default();
    let mut seen_d = rustc_hash::FxHashSet::default();
    let mut last_j = rustc_hash::FxHashMap::default();
    let mut duplicates = std::collections::BTreeMap::new();
    let mut reclaims = std::collections::BTreeMap::new();
    for w in writes {
        match w {
            OutcomeWrite::Dispatched(r) => {
                let key = (r.first_seen, text(&r.session));
                if seen_d.insert(key.clone()) {
                    g.dispatched.push((key, r));
                }
            }
            OutcomeWrite::Judged(r) | OutcomeWrite::JudgedAsDispatched(r) => {
                let key = (r.first_seen, text(&r.session));
                let refile = matches!(w, OutcomeWrite::Judged(_));
                match last_j.get_mut(&key) {
                    Some((i, refiled)) => {
                        g.judged[*i] = (key, r);
                        *refiled |= refile;
                    }
                    None => {
                        last_j.insert(key.clone(), (g.judged.len(), refile));
                        g.judged.push((key, r));
                    }
                }
            }
            // Marks and totals only ever grow: the largest of a key's wins, in any order.
            OutcomeWrite::Duplicate {
                session,
                first_seen,
                cross_runtime,
            } => {
                let crossed = duplicates.entry((*first_seen, text(session))).or_insert(0);
                *crossed = (*crossed).max(i32::from(*cross_runtime));
            }
            OutcomeWrite::Reclaimed {
                session,
                first_seen,
                total,
            } => {
                let most = reclaims.entry((*first_seen, text(session))).or_insert(0);
                *most = (*most).max(i32::try_from(*total).unwrap_or(i32::MAX));
            }
        }
    }
    // The keys a refiling judgement wrote, by their index among the judgements (rarely any).
    g.refiled = last_j
        .into_values()
        .filter(|&(_, refile)| refile)
        .map(|(i, _)| g.judged[i].clone())
        .collect();
    // Keys are unique in each group: no order among equals to keep.
    g.dispatched.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    g.judged.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    g.refiled.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    g.duplicates = duplicates.into_iter().collect();
    g.reclaims = reclaims.into_iter().collect();
    g
}

fn report_of<R: Row>(r: &R) -> Result<StoredReport, StoreError>
where
    usize: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Ok(StoredReport {
        id: r.try_get(0)?,
        org: r.try_get(1)?,
        flip_at: Timestamp(r.try_get(2)?),
        verdict: r.try_get(3)?,
        created_at: Timestamp(r.try_get(4)?),
        json: r.try_get(5)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chunks cover the rows in order, each a power of two of at most `MAX_ROWS` rows, the
    /// largest first: a few statements, whatever the length.
    #[test]
    fn fixed_chunks_cover_the_rows_in_order_in_few_sizes() {
        for n in 0..3 * MAX_ROWS + 7 {
            let rows: Vec<usize> = (0..n).collect();
            let chunks: Vec<&[usize]> = fixed_chunks(&rows).collect();
            assert_eq!(chunks.concat(), rows, "{n} rows");
            for c in &chunks {
                assert!(
                    c.len().is_power_of_two() && c.len() <= MAX_ROWS,
                    "{n}: {}",
                    c.len()
                );
            }
            assert!(
                chunks
                    .windows(2)
                    .all(|w| w[0].len() > w[1].len() || w[0].len() == MAX_ROWS)
            );
            assert!(
                chunks.len() <= n / MAX_ROWS + MAX_ROWS.ilog2() as usize,
                "{n}"
            );
        }
    }

    /// Per stored key (first seen, session), the first dispatch and the last judgement, each
    /// group in key order: first seen, then session.
    #[test]
    fn outcome_groups_keep_first_dispatch_last_judgement_in_key_order() {
        let row = |session: &str, first_seen: i64, ms: i64| OutcomeRow {
            session: session.into(),
            org: None,
            runner: Runner::Go,
            dispatched_at: Timestamp(ms),
            first_seen: Timestamp(first_seen),
            outcome: Outcome::Pending,
            latency_ms: None,
            skew_clamped: false,
        };
        let writes = [
            OutcomeWrite::Dispatched(row("s9", 1, 1)),
            OutcomeWrite::Judged(row("s5", 1, 2)),
            OutcomeWrite::Dispatched(row("s1", 1, 3)),
            OutcomeWrite::Dispatched(row("s9", 1, 4)),
            OutcomeWrite::Dispatched(row("s0", 2, 5)),
            OutcomeWrite::Judged(row("s5", 1, 5)),
            OutcomeWrite::Judged(row("s\u{0}", 1, 6)),
            OutcomeWrite::Judged(row("s\u{FFFD}", 1, 7)),
            OutcomeWrite::Judged(row("s0", 1, 8)),
            // The same id in another life (first seen again later): another row.
            OutcomeWrite::Judged(row("s5", 3, 9)),
            OutcomeWrite::Judged(row("a", 2, 10)),
        ];
        let OutcomeGroups {
            dispatched: d,
            judged: j,
            ..
        } = outcome_groups(&writes);
        let keyed = |g: &[Keyed<'_>]| -> Vec<(i64, String, i64)> {
            g.iter()
                .map(|((seen, k), r)| (seen.millis(), k.to_string(), r.dispatched_at.millis()))
                .collect()
        };
        assert_eq!(
            keyed(&d),
            [
                (1, "s1".into(), 3),
                (1, "s9".into(), 1),
                (2, "s0".into(), 5)
            ]
        );
        assert_eq!(
            keyed(&j),
            [
                (1, "s0".into(), 8),
                (1, "s5".into(), 5),
                (1, "s\u{FFFD}".into(), 7),
                (2, "a".into(), 10),
                (3, "s5".into(), 9)
            ]
        );
    }

    /// A write of as many rows as the last one of its kind is one statement of that size; one
    /// of another size is cut into the fixed sizes.
    #[test]
    fn a_repeated_row_count_is_one_statement() {
        let last: [std::sync::atomic::AtomicUsize; Write::COUNT] = Default::default();
        let rows: Vec<u32> = (0..600).collect();
        let lens = |n: usize, w: Write| -> Vec<usize> {
            chunks(&rows[..n], w, &last).map(<[u32]>::len).collect()
        };
        assert_eq!(lens(500, Write::Events), [256, 128, 64, 32, 16, 4]);
        assert_eq!(lens(500, Write::Events), [500]);
        assert_eq!(lens(500, Write::Events), [500]);
        assert_eq!(
            lens(500, Write::Judged),
            [256, 128, 64, 32, 16, 4],
            "another kind"
        );
        assert_eq!(lens(3, Write::Events), [2, 1]);
        assert_eq!(lens(500, Write::Events), [256, 128, 64, 32, 16, 4]);
        assert_eq!(lens(600, Write::Events), [512, 64, 16, 8]);
        assert_eq!(
            lens(600, Write::Events),
            [512, 64, 16, 8],
            "above the largest statement"
        );
        assert_eq!(lens(0, Write::Events), Vec::<usize>::new());
        assert_eq!(lens(0, Write::Events), Vec::<usize>::new());
    }

    /// A kept text is the one `QueryBuilder::push_values` writes for the same rows, on either
    /// backend (Postgres numbers its binds on across rows; literals take no number).
    #[test]
    fn values_texts_are_what_the_query_builder_writes() {
        fn built<DB: sqlx::Database>(row: &[&str], rows: usize, tail: &str) -> String
        where
            i64: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        {
            let mut q = sqlx::QueryBuilder::<DB>::new(INSERT_SQLITE);
            q.push(INSERT_OUTCOMES);
            q.push_values(0..rows, |mut b, _| {
                for col in row {
                    match *col {
                        "?" => b.push_bind(7i64),
                        literal => b.push(literal),
                    };
                }
            });
            q.push(tail);
            q.sql().to_owned()
        }
        for (row, tail) in [
            (&EVENT_ROW[..], ""),
            (&OUTCOME_ROW[..], OUTCOME_KEEP),
            (&OUTCOME_ROW[..], OUTCOME_JUDGE),
        ] {
            for rows in [1, 2, 3, 512] {
                let text = |pg| values_text(INSERT_SQLITE, INSERT_OUTCOMES, row, rows, tail, pg);
                assert_eq!(text(false), built::<sqlx::Sqlite>(row, rows, tail));
                assert_eq!(text(true), built::<sqlx::Postgres>(row, rows, tail));
            }
        }
        assert!(values_text("", "", &OUTCOME_ROW, 2, "", true).ends_with("$15, $16, 0, 0, 0)"));
    }

    /// The kept texts stay few: past [`Texts::CAP`] they are dropped, and each is still the
    /// text of its write, row count and backend.
    #[test]
    fn kept_texts_are_bounded_and_keyed() {
        let texts = Texts::default();
        let make = |rows: usize, pg: bool| move || values_text("", "", &EVENT_ROW, rows, "", pg);
        let first = texts.get(Write::Events, 3, false, make(3, false));
        let again = texts.get(Write::Events, 3, false, || unreachable!("kept"));
        assert!(Arc::ptr_eq(&first, &again));
        assert_ne!(texts.get(Write::Events, 3, true, make(3, true)), first);
        assert_ne!(texts.get(Write::Judged, 3, false, String::new), first);
        for rows in 0..200 {
            let t = texts.get(Write::Dispatched, rows, false, make(rows, false));
            assert_eq!(*t, *values_text("", "", &EVENT_ROW, rows, "", false));
        }
        let kept = texts.0.lock().map(|t| t.len()).unwrap_or(usize::MAX);
        assert!(kept <= Texts::CAP, "{kept} texts kept");
    }

    /// Each statement that writes a row of `outcomes` by its key finds the row by the key's
    /// index, on a store from the current migrations: none scans the table. (SQLite may plan
    /// the refile's join of a full list of judgements as a scan of `outcomes` against an
    /// automatic index of the list — a full scan per commit.)
    #[tokio::test]
    async fn outcome_writes_seek_their_rows_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db").display().to_string())
            .await
            .unwrap();
        // As many judgements as one statement refiles: the plan SQLite picks depends on it.
        let judged: Vec<OutcomeRow> = (0..MAX_ROWS)
            .map(|i| OutcomeRow {
                session: format!("s{i}"),
                org: None,
                runner: Runner::Go,
                dispatched_at: Timestamp(1),
                first_seen: Timestamp(1),
                outcome: Outcome::Matched,
                latency_ms: None,
                skew_clamped: false,
            })
            .collect();
        let rows: Vec<Keyed<'_>> = judged
            .iter()
            .map(|r| ((r.first_seen, text(&r.session)), r))
            .collect();
        let refile = refile::<sqlx::Sqlite>(&rows, UPDATE_SQLITE).into_sql();
        let marks: Vec<KeyedValue<'_>> = rows.iter().map(|(key, _)| (key.clone(), 1)).collect();
        let [duplicates, reclaims] = [
            (MARK_DUPLICATES, MARK_DUPLICATES_SET),
            (SET_RECLAIMS, SET_RECLAIMS_SET),
        ]
        .map(|(head, set)| {
            update_values::<sqlx::Sqlite>(&marks, head, UPDATE_SQLITE, set).into_sql()
        });
        let upsert = format!(
            "{INSERT_SQLITE}{INSERT_OUTCOMES}VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?){OUTCOME_JUDGE}"
        );
        let Pool::Sqlite(pool) = store.pool() else {
            unreachable!("a path opens SQLite")
        };
        // The key is the table's own (`WITHOUT ROWID`, migration 0015): no index beside it,
        // and no rowid to look up after it. The upsert finds its row by its conflict target.
        let by_key = Some("SEARCH outcomes USING PRIMARY KEY (first_seen=? AND session=?)");
        for (sql, seek) in [
            (refile.as_str(), by_key),
            (&upsert, None),
            (&duplicates, by_key),
            (&reclaims, by_key),
            (
                PRUNE_OUTCOMES,
                Some("SEARCH outcomes USING PRIMARY KEY (first_seen<?)"),
            ),
        ] {
            let rows = sqlx::query(&format!("EXPLAIN QUERY PLAN {sql}"))
                .fetch_all(&pool)
                .await
                .unwrap();
            let plan: Vec<String> = rows.iter().map(|r| r.get::<String, _>(3)).collect();
            assert!(
                !plan.iter().any(|step| step.starts_with("SCAN outcomes")),
                "{sql}: {plan:?}"
            );
            if let Some(seek) = seek {
                assert!(plan.iter().any(|step| step == seek), "{sql}: {plan:?}");
            }
        }
    }

    /// Batches of every size from 1 to 300 lines, each with as many outcome rows and findings,
    /// leave each connection holding a few prepared statements, not one per batch size (a
    /// connection caches up to 100, the largest of several hundred KiB each).
    #[tokio::test]
    async fn batch_sizes_reuse_a_few_prepared_statements() {
        use sqlx::Connection;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db").display().to_string())
            .await
            .unwrap();
        for n in 1..=300u32 {
            let rows = (0..n).map(|i| {
                let at = Timestamp(i64::from(n * 1000 + i));
                (format!("s{n}-{i}"), at)
            });
            let rows: Vec<(String, Timestamp)> = rows.collect();
            let commit = Commit {
                lines: rows
                    .iter()
                    .map(|(session, at)| StoredLine {
                        received_at: *at,
                        source: "dispatch.log".into(),
                        line: u32::try_from(at.millis()).unwrap(),
                        session: Some(session.clone()),
                        entry_id: None,
                        default_runtime: None,
                        raw: b"{}".to_vec(),
                    })
                    .map(NewLines::from)
                    .collect(),
                outcomes: rows
                    .iter()
                    .map(|(session, at)| {
                        OutcomeWrite::Dispatched(OutcomeRow {
                            session: session.clone(),
                            org: None,
                            runner: Runner::Go,
                            dispatched_at: *at,
                            first_seen: *at,
                            outcome: Outcome::Pending,
                            latency_ms: None,
                            skew_clamped: false,
                        })
                    })
                    .collect(),
                findings: rows
                    .iter()
                    .map(|(session, at)| {
                        FindingWrite::Found(NewFinding {
                            kind: FindingKind::Unclaimed,
                            key: session.clone(),
                            session: Some(session.clone()),
                            org: None,
                            runner: "go",
                            found_at: *at,
                            detail: None,
                        })
                    })
                    .collect(),
                ..Commit::default()
            };
            store.commit(&commit).await.unwrap();
        }
        assert_eq!(store.line_count().await.unwrap(), 300 * 301 / 2);
        let Pool::Sqlite(pool) = store.pool() else {
            panic!("not SQLite");
        };
        let mut held = Vec::new();
        for _ in 0..pool.size() {
            held.push(pool.acquire().await.unwrap());
        }
        // The commits ran on the connection the store holds for them.
        let writer = store.writer.lock().await;
        let cached: Vec<usize> = held
            .iter()
            .chain(writer.as_ref())
            .map(|c| c.cached_statements_size())
            .collect();
        // 9 row counts (1 to 256) for each of the three inserts, and a few of the store's own
        // (the migrations' bookkeeping, the count): not one per batch size, up to the cap of 100.
        assert!(cached.iter().all(|&n| n <= 40), "{cached:?}");
        assert!(cached.iter().any(|&n| n >= 9), "{cached:?}");
    }

    /// Every SQLite connection keeps its statement journal in memory and SQLite's default
    /// page cache (2 MiB: a larger one, on every connection, broke the memory bound), spills
    /// a transaction's dirty pages only past 1,023 of them (16 MiB of a new store's 16 KiB
    /// pages; spilling on, not off), and still commits through the WAL with
    /// `synchronous=NORMAL`.
    #[tokio::test]
    async fn sqlite_connections_are_tuned_for_batches_and_stay_durable() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db").display().to_string())
            .await
            .unwrap();
        let Pool::Sqlite(pool) = store.pool() else {
            panic!("not SQLite");
        };
        for _ in 0..3 {
            let mut conn = pool.acquire().await.unwrap();
            let get = |sql: &'static str| sqlx::query_scalar::<_, String>(sql);
            let temp: i64 = sqlx::query_scalar("PRAGMA temp_store")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            let cache: i64 = sqlx::query_scalar("PRAGMA cache_size")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            let journal = get("PRAGMA journal_mode")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            let spill: i64 = sqlx::query_scalar("PRAGMA cache_spill")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            let page: i64 = sqlx::query_scalar("PRAGMA page_size")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            // 2: memory; 1: NORMAL; 16 MiB of 16 KiB pages, less one.
            assert_eq!(
                (temp, cache, sync, journal.as_str(), spill, page),
                (2, -2000, 1, "wal", 1023, 16_384)
            );
        }
        // The WAL's bounds, 4 MiB and 32 MiB, in those pages.
        assert_eq!(
            store.checkpointer.as_ref().unwrap().frames(),
            checkpointer::Frames {
                checkpoint: 256,
                restart: 2_048
            }
        );
    }

    /// A store created with SQLite's default 4 KiB pages (before [`PAGE_SIZE`]) keeps them: its
    /// connections spill past 16 MiB of them, and its checkpointer counts the WAL's bounds in
    /// them.
    #[tokio::test]
    async fn a_store_of_4_kib_pages_keeps_them_and_its_byte_bounds() {
        use sqlx::{ConnectOptions, Connection};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let mut old = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .connect()
            .await
            .unwrap();
        sqlx::query("CREATE TABLE made_before (x INTEGER)")
            .execute(&mut old)
            .await
            .unwrap();
        old.close().await.unwrap();
        let store = Store::open(&path.display().to_string()).await.unwrap();
        let Pool::Sqlite(pool) = store.pool() else {
            panic!("not SQLite");
        };
        for _ in 0..3 {
            let mut conn = pool.acquire().await.unwrap();
            let page: i64 = sqlx::query_scalar("PRAGMA page_size")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            let spill: i64 = sqlx::query_scalar("PRAGMA cache_spill")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            assert_eq!((page, spill), (4_096, 4_095));
        }
        assert_eq!(
            store.checkpointer.as_ref().unwrap().frames(),
            checkpointer::Frames {
                checkpoint: 1_024,
                restart: 8_192
            }
        );
    }

    /// The `c`-th commit of `n` lines of `raw` from `dispatch.log`: lines `c * n` on, each
    /// of a session of its own.
    fn lines_commit(c: u32, n: u32, raw: &[u8]) -> Commit {
        let lines = (0..n)
            .map(|i| {
                NewLines::from(StoredLine {
                    received_at: Timestamp(1_795_428_000_000),
                    source: "dispatch.log".into(),
                    line: c * n + i,
                    session: Some(format!("s{c}-{i}")),
                    entry_id: None,
                    default_runtime: None,
                    raw: raw.to_vec(),
                })
            })
            .collect();
        Commit {
            lines,
            ..Commit::default()
        }
    }

    /// A SQLite store's commits run on one connection, held between them (its page cache
    /// stays warm): `total_changes()` counts the rows its connection changed, so it counts
    /// every commit's after the first.
    #[tokio::test]
    async fn sqlite_commits_run_on_one_held_connection() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db").display().to_string())
            .await
            .unwrap();
        let mut after_first = 0;
        for c in 0..3u32 {
            store.commit(&lines_commit(c, 10, b"{}")).await.unwrap();
            let mut writer = store.writer.lock().await;
            let conn = writer.as_mut().expect("no connection held");
            let changed: i64 = sqlx::query_scalar("SELECT total_changes()")
                .fetch_one(&mut **conn)
                .await
                .unwrap();
            if c == 0 {
                after_first = changed;
            }
            // The later commits' 10 lines each, on the same connection.
            assert_eq!(changed - after_first, i64::from(c) * 10);
        }
    }

    /// The bundled SQLite is built with `.cargo/config.toml`'s options: no memory statistics
    /// (a global mutex taken on every allocation), and a page cache per connection.
    #[tokio::test]
    async fn sqlite_is_compiled_with_the_configured_options() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db").display().to_string())
            .await
            .unwrap();
        let Pool::Sqlite(pool) = store.pool() else {
            panic!("not SQLite");
        };
        let options: Vec<String> = sqlx::query_scalar("PRAGMA compile_options")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert!(
            options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
            "{options:?}"
        );
        // And a page cache per connection (`.cargo/config.toml`).
        assert!(
            !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
            "{options:?}"
        );
    }

    /// The committing connections run no WAL checkpoint (`wal_autocheckpoint = 0`); the
    /// checkpointer does, after commits, and the WAL file stays bounded however many commits
    /// land, even when they come faster than passive checkpoints copy pages (as here): without
    /// the bound, this test's writes grow the WAL to several times it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_checkpointer_keeps_the_wal_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.db");
        let store = Store::open(&db.display().to_string()).await.unwrap();
        let Pool::Sqlite(pool) = store.pool() else {
            panic!("not SQLite");
        };
        let auto: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(auto, 0);
        let page: i64 = sqlx::query_scalar("PRAGMA page_size")
            .fetch_one(&pool)
            .await
            .unwrap();
        let frames = checkpointer::Frames::of_page(u32::try_from(page).unwrap());
        let frame = u64::try_from(page).unwrap() + 24;
        // The bound, plus a commit's pages (4 MiB is ten commits).
        let bound = 32 + (u64::from(frames.restart) + (4 << 20) / frame) * frame;
        let wal = dir.path().join("s.db-wal");
        // Each commit: 100 lines of 4,000 bytes, about a page each. 400 commits write some
        // 46,000 pages, 5 times the bound.
        let raw = vec![b'x'; 4_000];
        let mut largest = 0;
        for c in 0..400u32 {
            store.commit(&lines_commit(c, 100, &raw)).await.unwrap();
            largest = largest.max(std::fs::metadata(&wal).unwrap().len());
            assert!(
                largest <= bound,
                "commit {c}: the WAL is {largest} bytes, past {bound}"
            );
        }
        assert_eq!(store.line_count().await.unwrap(), 40_000);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        // The passive checkpoints ran on the checkpointer's task, not only the commits' last
        // resort.
        while store.wal_checkpoints().passive == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no passive checkpoint ran"
            );
            tokio::task::yield_now().await;
        }
    }
}
