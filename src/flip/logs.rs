//! Flip evidence from log files: the batch pipeline (the same readers and parser as `verify`)
//! with an observer that hands every parsed event to an [`EvidenceBuilder`].

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use super::{EvidenceBuilder, FlipEvidence, SourceEvidence};
use crate::correlate::{CorrelateConfig, Correlator, Evicted};
use crate::event::{Event, Origin};
use crate::parse::ParseConfig;
use crate::parse::Parser;
use crate::pipeline::{self, Observer};
use crate::sources::{Input, SourceError};

struct Keep<'a> {
    builder: EvidenceBuilder,
    progress: &'a mut dyn FnMut(),
}

impl Observer for Keep<'_> {
    // The pipeline's own correlator is only a sink here (see `read`); what it evicts is not
    // needed.
    fn evicted(&mut self, _: &Correlator, _: Vec<Evicted>) {}

    fn progress(&mut self) {
        (self.progress)();
    }

    fn events(&mut self, _input: u16, events: &[(Event, Origin)]) {
        for (ev, origin) in events {
            self.builder.event(ev, *origin);
        }
    }
}

/// Reads `inputs` to the end and keeps the evidence about `org`. `read_bytes` and `progress`
/// drive an optional progress bar.
pub fn read(
    inputs: &[Input],
    parse: &ParseConfig,
    org: &str,
    read_bytes: Arc<AtomicU64>,
    progress: &mut dyn FnMut(),
) -> Result<FlipEvidence, SourceError> {
    let parser = Parser::new(parse.clone());
    let sources = inputs
        .iter()
        .map(|i| SourceEvidence {
            default_runtime: i.default_runtime,
            ..SourceEvidence::new(i.name(), i.role.as_str())
        })
        .collect();
    let mut keep = Keep {
        builder: EvidenceBuilder::new(org, sources),
        progress,
    };
    // The pipeline feeds a correlator; the report correlates its own evidence afterwards, so
    // this one is kept small: past a thousand sessions it drops the oldest.
    let mut sink = Correlator::new(CorrelateConfig {
        max_sessions: 1024,
        ..CorrelateConfig::default()
    });
    let ingest = pipeline::run(
        inputs,
        &parser,
        &mut sink,
        read_bytes,
        &mut keep,
        pipeline::ReadOrder::Sequential,
    )?;
    let mut builder = keep.builder;
    for (i, stats) in ingest.inputs.iter().enumerate() {
        if let Some(s) = u16::try_from(i).ok().and_then(|i| builder.source_mut(i)) {
            s.lines = stats.lines;
            s.rejected = stats.rejected_total();
            s.rejected_by = crate::parse::Reject::ALL
                .iter()
                .map(|&r| (r.as_str().to_owned(), stats.rejected[r as usize]))
                .filter(|(_, n)| *n > 0)
                .collect();
        }
    }
    Ok(builder.finish())
}
