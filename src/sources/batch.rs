//! The one contract between live sources and serve's core: a [`Batch`] of raw lines from one
//! source, with what must be committed alongside them (a file checkpoint) and where to answer
//! once they are recorded. Sources never parse; the core never reads files.

use serde::Serialize;
use tokio::sync::oneshot;

use crate::event::Runner;
use crate::sources::file::Checkpoint;
use crate::sources::lines::Piece;

/// An over-long line a reader skipped: counted by the one rule for such lines (`overlong`:
/// `too_long` when relevant, else ignored), never parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skipped {
    /// It came before `lines[before]` (after the last line when `before == lines.len()`).
    pub before: usize,
    pub relevant: bool,
}

/// Lines from one source, and where to say they were recorded.
#[derive(Debug)]
pub struct Batch {
    /// A bounded label: `stdin`, `ndjson`, a configured file name.
    pub source: String,
    pub default_runtime: Option<Runner>,
    pub lines: Vec<Vec<u8>>,
    /// Over-long lines among them, skipped by the reader.
    pub skipped: Vec<Skipped>,
    /// Drain entry ids, one per line when present: a retried delivery is dropped whole.
    pub entry_ids: Vec<Option<String>>,
    /// A followed file's position after these lines, committed with them.
    pub position: Option<Checkpoint>,
    /// Answered once the batch is recorded (durably, when there is a store).
    pub done: Option<oneshot::Sender<Result<BatchResult, String>>>,
    /// The source has more to read right now (a backlog): judgements wait until every source
    /// has caught up, so a replay judges on all the evidence, as `verify` does.
    pub backlog: bool,
}

impl Batch {
    pub fn new(source: &str, default_runtime: Option<Runner>, lines: Vec<Vec<u8>>) -> Batch {
        Batch {
            source: source.to_owned(),
            default_runtime,
            lines,
            skipped: Vec::new(),
            entry_ids: Vec::new(),
            position: None,
            done: None,
            backlog: false,
        }
    }
}

impl Batch {
    /// A batch of the lines and skipped lines a [`crate::sources::lines::Cutter`] cut.
    pub fn of_pieces(source: &str, default_runtime: Option<Runner>, pieces: Vec<Piece>) -> Batch {
        let mut b = Batch::new(source, default_runtime, Vec::with_capacity(pieces.len()));
        for p in pieces {
            match p {
                Piece::Line(l) => b.lines.push(l),
                Piece::Skipped { relevant, .. } => b.skipped.push(Skipped {
                    before: b.lines.len(),
                    relevant,
                }),
            }
        }
        b
    }

    /// No line at all, skipped or not.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty() && self.skipped.is_empty()
    }
}

/// What became of a batch's lines.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BatchResult {
    pub events: u64,
    pub duplicates: u64,
    pub ignored: u64,
    pub rejected: u64,
}
