//! The batch pipeline: inputs → chunks → parse (on every core) → one correlator.
//!
//! One reader thread cuts the inputs into chunks of whole lines, a parser thread per core
//! turns chunks into events, and the calling thread owns the [`Correlator`] and feeds it.
//! Chunks reach the correlator in any order; that is safe because its outcomes do not depend
//! on arrival order (a property test holds it to that). Channels are bounded, so memory stays
//! flat however large the inputs are.
//!
//! Read by event time ([`ReadOrder::ByEventTime`]), the reader takes its next chunk from the
//! input whose events are the oldest so far, so every input advances through time together,
//! and after each chunk the observer learns the low watermark: the oldest of the inputs'
//! progress marks (each the latest event time of the chunks it has delivered without a gap;
//! finished inputs excluded). `verify` settles sessions by it (`correlate::settle`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::thread;

use crossbeam_channel::bounded;

use crate::correlate::{Correlator, Evicted};
use crate::event::{Event, Origin, Timestamp};
use crate::parse::{LineContext, Parsed, Parser, Reject};
use crate::sources::{Chunk, ChunkReader, Input, SourceError, Spent};

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
    /// The chunk's place in its input, from 0.
    seq: u64,
    /// The latest event time in the chunk (`Timestamp::MIN` without events).
    latest: Timestamp,
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
    /// Reading by event time: every input still being read has delivered its events up to
    /// `low` (up to its own disorder). Called after each chunk while some input is unread.
    fn settled(&mut self, _correlator: &mut Correlator, _low: Timestamp) {}
    /// Whether to stop reading now (what is left of the input is not wanted).
    fn stop(&self, _correlator: &Correlator) -> bool {
        false
    }
}

/// The order in which the reader takes the inputs' chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadOrder {
    /// One input after the other, in the order given.
    #[default]
    Sequential,
    /// Next from the input whose delivered events are the oldest, so the inputs advance
    /// through event time together and the observer is told the low watermark.
    ByEventTime,
}

/// Each input's progress through event time, shared by the correlator's thread (which
/// writes it) and the reader (which reads it to choose the next input).
#[derive(Debug)]
struct Progress {
    /// Latest event time of the chunks delivered without a gap.
    mark: Vec<AtomicI64>,
    /// The mark after the first chunk with events.
    first: Vec<AtomicI64>,
    /// Chunks delivered without a gap, and how many there were when the first events came.
    correlated: Vec<AtomicU64>,
    first_at: Vec<AtomicU64>,
    /// Set by the reader at the end of an input: its number of chunks + 1 (0: not yet).
    chunks: Vec<AtomicU64>,
}

impl Progress {
    fn new(n: usize) -> Progress {
        let times = || -> Vec<AtomicI64> { (0..n).map(|_| AtomicI64::new(i64::MIN)).collect() };
        let counts = || -> Vec<AtomicU64> { (0..n).map(|_| AtomicU64::new(0)).collect() };
        Progress {
            mark: times(),
            first: times(),
            correlated: counts(),
            first_at: counts(),
            chunks: counts(),
        }
    }

    /// Where input `i` will be in event time once the `sent` chunks the reader has handed
    /// out are correlated: its mark, plus the chunks still in the pipeline at its pace so far.
    /// Choosing by this rather than by the mark alone keeps the reader from running a whole
    /// pipeline's depth ahead on one input before the marks catch up.
    fn projected(&self, i: usize, sent: u64) -> i64 {
        let mark = self.mark[i].load(Ordering::Relaxed);
        let first = self.first[i].load(Ordering::Relaxed);
        let done = self.correlated[i].load(Ordering::Relaxed);
        let first_at = self.first_at[i].load(Ordering::Relaxed);
        if mark == i64::MIN || done <= first_at {
            return mark;
        }
        let pace = mark.saturating_sub(first) / i64::try_from(done - first_at).unwrap_or(i64::MAX);
        let ahead = i64::try_from(sent.saturating_sub(done)).unwrap_or(i64::MAX);
        mark.saturating_add(pace.saturating_mul(ahead))
    }
}

/// The correlator's side of [`Progress`]: chunks come back from the parsers in any order.
#[derive(Debug)]
struct Marks<'a> {
    progress: &'a Progress,
    /// Next chunk expected per input, and the latest times of chunks that came early.
    next: Vec<u64>,
    early: Vec<BTreeMap<u64, Timestamp>>,
}

impl Marks<'_> {
    fn new(progress: &Progress) -> Marks<'_> {
        let n = progress.mark.len();
        Marks {
            progress,
            next: vec![0; n],
            early: vec![BTreeMap::new(); n],
        }
    }

    /// Chunk `seq` of `input`, whose latest event is `latest`, has been correlated.
    fn arrived(&mut self, input: usize, seq: u64, latest: Timestamp) {
        let early = &mut self.early[input];
        early.insert(seq, latest);
        let p = self.progress;
        let mut m = p.mark[input].load(Ordering::Relaxed);
        while let Some(t) = early.remove(&self.next[input]) {
            if m == i64::MIN && t != Timestamp::MIN {
                p.first[input].store(t.millis(), Ordering::Relaxed);
                p.first_at[input].store(self.next[input] + 1, Ordering::Relaxed);
            }
            m = m.max(t.millis());
            self.next[input] += 1;
        }
        p.mark[input].store(m, Ordering::Relaxed);
        p.correlated[input].store(self.next[input], Ordering::Relaxed);
    }

    /// The oldest mark of the inputs not finished yet; `None` once all are.
    fn low(&self) -> Option<Timestamp> {
        let p = self.progress;
        (0..self.next.len())
            .filter(|&i| p.chunks[i].load(Ordering::Acquire) != self.next[i] + 1)
            .map(|i| Timestamp(p.mark[i].load(Ordering::Relaxed)))
            .min()
    }
}

/// Runs every input through parse into `correlator`. `read_bytes` counts raw bytes read (before
/// decompression), for a progress bar.
pub fn run(
    inputs: &[Input],
    parser: &Parser,
    correlator: &mut Correlator,
    read_bytes: Arc<AtomicU64>,
    observer: &mut dyn Observer,
    order: ReadOrder,
) -> Result<Ingest, SourceError> {
    // Open everything first, so a typo in the last path fails before any work is done.
    let mut readers = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.iter().enumerate() {
        let index = u16::try_from(i).map_err(|_| SourceError::Open {
            path: input.name(),
            source: std::io::Error::other("too many inputs (65535 at most)"),
        })?;
        readers.push(ChunkReader::new(
            input.open(read_bytes.clone())?,
            index,
            parser.line_limit(),
        ));
    }
    let workers = thread::available_parallelism().map_or(2, |n| n.get());
    let (chunk_tx, chunk_rx) = bounded::<(u64, Chunk)>(workers * 2);
    let (parsed_tx, parsed_rx) = bounded::<ParsedChunk>(workers * 2);
    let (recycle_tx, recycle_rx) = bounded::<Spent>(workers * 4 + 2);
    // The correlator hands each chunk's emptied event list back to the parsers: a fresh one
    // per chunk (about half a MiB) was mapped, faulted in and returned to the OS every time.
    let (spent_tx, spent_rx) = bounded::<Vec<(Event, Origin)>>(workers * 4 + 2);
    let readers: Vec<_> = readers
        .into_iter()
        .map(|r| Some(r.with_recycled(recycle_rx.clone())))
        .collect();
    let mut ingest = Ingest {
        inputs: vec![InputStats::default(); inputs.len()],
        ..Default::default()
    };
    let progress = Progress::new(inputs.len());
    let mut marks = Marks::new(&progress);

    thread::scope(|s| {
        let (progress, chunks) = (&progress, &progress.chunks);
        let reader =
            named("claimcheck-read").spawn_scoped(s, move || -> Result<(), SourceError> {
                let mut readers = readers;
                let mut sent = vec![0u64; readers.len()];
                loop {
                    let open = (0..readers.len()).filter(|&i| readers[i].is_some());
                    let next = match order {
                        ReadOrder::Sequential => open.min(),
                        ReadOrder::ByEventTime => {
                            open.min_by_key(|&i| (progress.projected(i, sent[i]), sent[i]))
                        }
                    };
                    let Some(i) = next else { return Ok(()) };
                    let Some(r) = readers[i].as_mut() else {
                        return Ok(());
                    };
                    match r.next_chunk() {
                        Ok(Some(chunk)) => {
                            if chunk_tx.send((sent[i], chunk)).is_err() {
                                return Ok(());
                            }
                            sent[i] += 1;
                        }
                        Ok(None) => {
                            chunks[i].store(sent[i] + 1, Ordering::Release);
                            readers[i] = None;
                        }
                        Err(source) => {
                            return Err(SourceError::Read {
                                path: inputs[i].name(),
                                source,
                            });
                        }
                    }
                }
            })?;
        for _ in 0..workers {
            let (rx, tx, recycle) = (chunk_rx.clone(), parsed_tx.clone(), recycle_tx.clone());
            let spent = spent_rx.clone();
            named("claimcheck-parse").spawn_scoped(s, move || {
                for (seq, chunk) in rx {
                    let ctx = LineContext {
                        default_runtime: inputs[usize::from(chunk.input)].default_runtime,
                        received_at: None,
                    };
                    let events = spent.try_recv().unwrap_or_default();
                    let parsed = parse_chunk(parser, &chunk, seq, &ctx, events);
                    // A full pool just drops the buffer.
                    let _ = recycle.try_send((chunk.data, chunk.newlines));
                    if tx.send(parsed).is_err() {
                        return;
                    }
                }
            })?;
        }
        drop((chunk_rx, parsed_tx, recycle_tx, spent_rx));
        for mut p in parsed_rx.iter() {
            observer.events(p.input, &p.events);
            for (ev, origin) in p.events.drain(..) {
                correlator.on_event(ev, origin);
            }
            // A full pool just drops the list.
            let _ = spent_tx.try_send(p.events);
            ingest.inputs[usize::from(p.input)].add(&p.stats);
            if !p.samples.is_empty() {
                ingest.keep_samples(p.samples);
            }
            let evicted = correlator.take_evicted();
            if !evicted.is_empty() {
                observer.evicted(correlator, evicted);
            }
            if order == ReadOrder::ByEventTime {
                marks.arrived(usize::from(p.input), p.seq, p.latest);
                if let Some(low) = marks.low() {
                    observer.settled(correlator, low);
                }
            }
            observer.progress();
            if observer.stop(correlator) {
                break;
            }
        }
        // Stopped early: the parsers and the reader stop once their sends fail.
        drop(parsed_rx);
        reader
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })?;
    Ok(ingest)
}

fn named(name: &str) -> thread::Builder {
    thread::Builder::new().name(name.to_owned())
}

/// Parses `chunk` into `events` (empty, kept for its capacity).
fn parse_chunk(
    parser: &Parser,
    chunk: &Chunk,
    seq: u64,
    ctx: &LineContext,
    mut events: Vec<(Event, Origin)>,
) -> ParsedChunk {
    let mut stats = InputStats::default();
    events.clear();
    events.reserve(chunk.data.len() / 256);
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
        match crate::overlong::verdict(o.relevant) {
            Some(r) => reject(&mut stats, r, o.line),
            None => stats.ignored += 1,
        }
    }
    // Only the lines that may be events or rejections are parsed; the rest are ignored
    // unseen (`parse::scan` says why that is exact).
    let mut relevant = 0;
    let mut latest = Timestamp::MIN;
    let lines = parser.candidates(
        &chunk.data,
        &chunk.newlines,
        chunk.first_line,
        |line_no, line| {
            relevant += 1;
            match parser.parse_line(line, ctx) {
                Parsed::Event(ev) => {
                    stats.events[ev.kind as usize] += 1;
                    latest = latest.max(ev.time);
                    events.push((ev, origin(chunk.input, line_no)));
                }
                Parsed::Ignored => stats.ignored += 1,
                Parsed::Rejected(r) => reject(&mut stats, r, line_no),
            }
        },
    );
    stats.lines += lines;
    stats.ignored += lines - relevant;
    stats.bytes = chunk.data.len() as u64;
    ParsedChunk {
        input: chunk.input,
        seq,
        latest,
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
