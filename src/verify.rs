//! Batch verification: the pipeline on event time, then one judgement per session into a report.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use crate::config::ParseConfig;
use crate::correlate::{CorrelateConfig, Correlator, Evicted};
use crate::parse::Parser;
use crate::pipeline::{self, Observer};
use crate::report::{Report, Selection, Tally};
use crate::sources::{Input, SourceError};

#[derive(Debug, Clone)]
pub struct VerifyOptions {
    pub parse: ParseConfig,
    pub correlate: CorrelateConfig,
    pub selection: Selection,
    /// Findings kept in the report (the total is always stated).
    pub max_findings: usize,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            parse: ParseConfig::default(),
            correlate: CorrelateConfig::default(),
            selection: Selection::default(),
            max_findings: 100,
        }
    }
}

struct Judge<'a> {
    tally: Tally,
    progress: &'a mut dyn FnMut(),
}

impl Observer for Judge<'_> {
    fn evicted(&mut self, c: &Correlator, sessions: Vec<Evicted>) {
        for e in sessions {
            self.tally.add(c, &e.id, &e.session, e.watermark);
        }
    }

    fn progress(&mut self) {
        (self.progress)();
    }
}

/// Reads `inputs` to the end and judges every session against the final watermark.
/// `read_bytes` and `progress` drive an optional progress bar.
pub fn verify(
    inputs: &[Input],
    options: &VerifyOptions,
    read_bytes: Arc<AtomicU64>,
    progress: &mut dyn FnMut(),
) -> Result<Report, SourceError> {
    let parser = Parser::new(options.parse.clone());
    // About one session per KiB of logs (simulate writes 1.4 KiB per session); only the
    // table's control bytes are touched until sessions arrive.
    let bytes: u64 = inputs.iter().filter_map(Input::size_on_disk).sum();
    let mut correlate = options.correlate.clone();
    if correlate.expected_sessions == 0 {
        correlate.expected_sessions = usize::try_from(bytes / 1024).unwrap_or(usize::MAX);
    }
    let mut correlator = Correlator::new(correlate);
    let names = inputs.iter().map(Input::name).collect();
    let tally = Tally::new(
        options.selection.clone(),
        options.correlate.timeouts,
        names,
        options.max_findings,
    );
    let mut judge = Judge { tally, progress };
    let ingest = pipeline::run(inputs, &parser, &mut correlator, read_bytes, &mut judge)?;
    let mut tally = judge.tally;
    let watermark = correlator.watermark();
    for (id, session) in correlator.sessions() {
        tally.add(&correlator, id, session, watermark);
    }
    Ok(tally.finish(&correlator, &ingest, inputs))
}
