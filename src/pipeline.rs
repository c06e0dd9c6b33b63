//! The batch pipeline: inputs → chunks → parse (on every core) → one correlator.
//!
//! One reader thread cuts the inputs into chunks of whole lines, a parser thread per core
//! turns chunks into events, and the calling thread owns the [`Correlator`] and feeds it.
//! Chunks reach the correlator in any order; that is safe because its outcomes do not depend
//! on arrival order (a property test holds it to that). Channels are bounded, so memory stays
//! flat however large the inputs are.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::thread;

use crossbeam_channel::bounded;

use crate::correlate::{Correlator, Evicted};
use crate::event::{Event, Origin};
use crate::parse::{LineContext, Parsed, Parser, Reject};
use crate::sources::{Chunk, ChunkReader, Input, SourceError};

/// Rejected lines kept as examples per reason.
const SAMPLES_PER_REASON: usize = 5;

/// What one input delivered, line by line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InputStats {
    pub lines: u64,
    pub bytes: u64,
    /// Parsed events by kind, re-deliveries included.
    pub events: [u64; 5],
    pub ignored: u64,
    pub rejected: [u64; 6],
}

impl InputStats {
    fn add(&mut self, other: &InputStats) {
        self.lines += other.lines;
        self.bytes += other.bytes;
        self.ignored += other.ignored;
        for (a, b) in self.events.iter_mut().zip(other.events) {
            *a += b;
        }
        for (a, b) in self.rejected.iter_mut().zip(other.rejected) {
            *a += b;
        }
    }

    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().sum()
    }
}

/// A rejected line, as evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RejectSample {
    pub reason: Reject,
    pub origin: Origin,
}

#[derive(Debug, Default)]
pub struct Ingest {
    /// Per input, in the order given.
    pub inputs: Vec<InputStats>,
    /// The first rejected lines per reason, by position.
    pub samples: Vec<RejectSample>,
}

impl Ingest {
    pub fn total(&self) -> InputStats {
        let mut t = InputStats::default();
        for i in &self.inputs {
            t.add(i);
        }
        t
    }

    fn keep_samples(&mut self, more: Vec<RejectSample>) {
        self.samples.extend(more);
        self.samples.sort();
        let mut per_reason = [0usize; 6];
        self.samples.retain(|s| {
            per_reason[s.reason as usize] += 1;
            per_reason[s.reason as usize] <= SAMPLES_PER_REASON
        });
    }
}

struct ParsedChunk {
    input: u16,
    events: Vec<(Event, Origin)>,
    stats: InputStats,
    samples: Vec<RejectSample>,
}

/// Callbacks of [`run`], called on the correlator's thread.
pub trait Observer {
    /// Sessions evicted by the session cap, to be judged and counted now.
    fn evicted(&mut self, correlator: &Correlator, sessions: Vec<Evicted>);
    /// A chunk was consumed; `read_bytes` has moved on.
    fn progress(&mut self) {}
    /// The events of one parsed chunk of input `input`, before the correlator takes them, for
    /// callers that keep evidence of their own (`report`). Called once per chunk.
    fn events(&mut self, _input: u16, _events: &[(Event, Origin)]) {}
}

/// Runs every input through parse into `correlator`. `read_bytes` counts raw bytes read (before
/// decompression), for a progress bar.
pub fn run(
    inputs: &[Input],
    parser: &Parser,
    correlator: &mut Correlator,
    read_bytes: Arc<AtomicU64>,
    observer: &mut dyn Observer,
) -> Result<Ingest, SourceError> {
    // Open everything first, so a typo in the last path fails before any work is done.
    let mut readers = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.iter().enumerate() {
        let index = u16::try_from(i).map_err(|_| SourceError::Open {
            path: input.name(),
            source: std::io::Error::other("too many inputs (65535 at most)"),
        })?;
        let max_line = parser.max_line_bytes();
        readers.push(ChunkReader::new(
            input.open(read_bytes.clone())?,
            index,
            max_line,
        ));
    }
    let workers = thread::available_parallelism().map_or(2, |n| n.get());
    let (chunk_tx, chunk_rx) = bounded::<Chunk>(workers * 2);
    let (parsed_tx, parsed_rx) = bounded::<ParsedChunk>(workers * 2);
    let (recycle_tx, recycle_rx) = bounded::<Vec<u8>>(workers * 4 + 2);
    let readers: Vec<_> = readers
        .into_iter()
        .map(|r| r.with_recycled(recycle_rx.clone()))
        .collect();
    let mut ingest = Ingest {
        inputs: vec![InputStats::default(); inputs.len()],
        ..Default::default()
    };

    thread::scope(|s| {
        let reader =
            named("claimcheck-read").spawn_scoped(s, move || -> Result<(), SourceError> {
                for (mut r, input) in readers.into_iter().zip(inputs) {
                    loop {
                        match r.next_chunk() {
                            Ok(Some(chunk)) => {
                                if chunk_tx.send(chunk).is_err() {
                                    return Ok(());
                                }
                            }
                            Ok(None) => break,
                            Err(source) => {
                                return Err(SourceError::Read {
                                    path: input.name(),
                                    source,
                                });
                            }
                        }
                    }
                }
                Ok(())
            })?;
        for _ in 0..workers {
            let (rx, tx, recycle) = (chunk_rx.clone(), parsed_tx.clone(), recycle_tx.clone());
            named("claimcheck-parse").spawn_scoped(s, move || {
                for chunk in rx {
                    let ctx = LineContext {
                        default_runtime: inputs[usize::from(chunk.input)].default_runtime,
                        received_at: None,
                    };
                    let parsed = parse_chunk(parser, &chunk, &ctx);
                    // A full pool just drops the buffer.
                    let _ = recycle.try_send(chunk.data);
                    if tx.send(parsed).is_err() {
                        return;
                    }
                }
            })?;
        }
        drop((chunk_rx, parsed_tx, recycle_tx));
        for p in parsed_rx {
            observer.events(p.input, &p.events);
            for (ev, origin) in p.events {
                correlator.on_event(ev, origin);
            }
            ingest.inputs[usize::from(p.input)].add(&p.stats);
            if !p.samples.is_empty() {
                ingest.keep_samples(p.samples);
            }
            let evicted = correlator.take_evicted();
            if !evicted.is_empty() {
                observer.evicted(correlator, evicted);
            }
            observer.progress();
        }
        reader
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })?;
    Ok(ingest)
}

fn named(name: &str) -> thread::Builder {
    thread::Builder::new().name(name.to_owned())
}

fn parse_chunk(parser: &Parser, chunk: &Chunk, ctx: &LineContext) -> ParsedChunk {
    let mut stats = InputStats::default();
    let mut events = Vec::with_capacity(chunk.data.len() / 256);
    let mut samples = Vec::new();
    let mut reject = |stats: &mut InputStats, reason: Reject, line: u64| {
        stats.rejected[reason as usize] += 1;
        if stats.rejected[reason as usize] <= SAMPLES_PER_REASON as u64 {
            samples.push(RejectSample {
                reason,
                origin: origin(chunk.input, line),
            });
        }
    };
    for o in &chunk.overlong {
        stats.lines += 1;
        match parser.overlong(&o.head) {
            Parsed::Rejected(r) => reject(&mut stats, r, o.line),
            _ => stats.ignored += 1,
        }
    }
    // Only the lines that may be events or rejections are parsed; the rest are ignored
    // unseen (`parse::scan` says why that is exact).
    let mut relevant = 0;
    let lines = parser.candidates(&chunk.data, chunk.first_line, |line_no, line| {
        relevant += 1;
        match parser.parse_line(line, ctx) {
            Parsed::Event(ev) => {
                stats.events[ev.kind as usize] += 1;
                events.push((ev, origin(chunk.input, line_no)));
            }
            Parsed::Ignored => stats.ignored += 1,
            Parsed::Rejected(r) => reject(&mut stats, r, line_no),
        }
    });
    stats.lines += lines;
    stats.ignored += lines - relevant;
    stats.bytes = chunk.data.len() as u64;
    ParsedChunk {
        input: chunk.input,
        events,
        stats,
        samples,
    }
}

fn origin(input: u16, line: u64) -> Origin {
    Origin {
        input,
        line: u32::try_from(line).unwrap_or(u32::MAX),
    }
}
