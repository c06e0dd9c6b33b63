//! The one contract between live sources and serve's core: a [`Batch`] of raw lines from one
//! source, with what must be committed alongside them (a file checkpoint) and where to answer
//! once they are recorded. Sources never parse; the core never reads files.

use serde::Serialize;
use tokio::sync::oneshot;

use crate::event::Runner;
use crate::sources::file::Checkpoint;

/// Lines from one source, and where to say they were recorded.
#[derive(Debug)]
pub struct Batch {
    /// A bounded label: `stdin`, `ndjson`, a configured file name.
    pub source: String,
    pub default_runtime: Option<Runner>,
    pub lines: Vec<Vec<u8>>,
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
            entry_ids: Vec::new(),
            position: None,
            done: None,
            backlog: false,
        }
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
