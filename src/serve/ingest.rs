//! Lines in: a batch's lines through drain dedupe, parse and the live correlator, committed
//! with the checkpoint that produced them; and recovery, which replays the stored lines the
//! same way, a page at a time (the pages come from `recovery`).

use std::collections::BTreeMap;
use std::sync::Arc;

use rustc_hash::FxHashSet;

use tokio::sync::watch;

use super::actor::Actor;
use super::committer::{Answer, Job, land};
use super::durable::{FEED_CURSOR, RETIRED_TOTALS, SOURCE_LINES};
use super::recovery::{Progress, Recovery, RecoveryState, same_batch};
use crate::event::{Event, EventKind, Name, Origin, Runner, SessionId, Timestamp};
use crate::parse::{LineContext, Parsed};
use crate::sinks::metrics::{LineCounts, LineResult};
use crate::sinks::self_metrics::RecoveryMetrics;
use crate::sources::batch::{Batch, BatchResult};
use crate::state::{CorrelationState, Delivery, Fate, StateError};
use crate::store::{Commit, NewLine, NewLines, OutcomeWrite, Store, StoreError, StoredLine};

/// Ids seen lately, bounded: the oldest are forgotten first. A drain retries within minutes,
/// not days. Each id is kept once, shared by the set and the order.
#[derive(Debug)]
pub struct RecentIds {
    set: FxHashSet<Arc<str>>,
    order: std::collections::VecDeque<Arc<str>>,
    cap: usize,
}

impl Default for RecentIds {
    fn default() -> RecentIds {
        RecentIds::with_cap(1_000_000)
    }
}

impl RecentIds {
    fn with_cap(cap: usize) -> RecentIds {
        RecentIds {
            set: FxHashSet::default(),
            order: std::collections::VecDeque::new(),
            cap: cap.max(1),
        }
    }

    /// `false` if `id` was seen already (among the latest `cap`).
    fn insert(&mut self, id: &str) -> bool {
        // One hash and one allocation for a new id; a repeated one costs the allocation too,
        // but repeats are a drain's rare retries.
        let id: Arc<str> = Arc::from(id);
        if !self.set.insert(Arc::clone(&id)) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > self.cap
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        true
    }
}

/// Source names by index, and lines read from each: a record's origin cites them.
#[derive(Debug, Default)]
pub struct Sources {
    known: Vec<(String, u32)>,
    /// Lines the store says were read from sources not named again since the restart.
    resumed: BTreeMap<String, u32>,
}

impl Sources {
    /// The index of a source name, registered on first use (numbering its lines on from
    /// where the store left it).
    pub fn index(&mut self, name: &str) -> u16 {
        let i = match self.known.iter().position(|(n, _)| n == name) {
            Some(i) => i,
            None => {
                let read = self.resumed.remove(name).unwrap_or(0);
                self.known.push((name.to_owned(), read));
                self.known.len() - 1
            }
        };
        u16::try_from(i).unwrap_or(u16::MAX)
    }

    pub fn name(&self, input: u16) -> &str {
        self.known
            .get(usize::from(input))
            .map_or("?", |(n, _)| n.as_str())
    }

    /// The origin of the next line of source `input`.
    fn next_line(&mut self, input: u16) -> Origin {
        match self.known.get_mut(usize::from(input)) {
            Some((_, n)) => {
                *n = n.saturating_add(1);
                Origin { input, line: *n }
            }
            None => Origin::default(),
        }
    }

    /// Line `line` of `input` was read (recovery): later lines number on from it.
    fn saw_line(&mut self, input: u16, line: u32) {
        if let Some((_, n)) = self.known.get_mut(usize::from(input)) {
            *n = (*n).max(line);
        }
    }

    /// How many lines each source had handed out when the store last saved it
    /// ([`SOURCE_LINES`]): later lines number on from there.
    fn resume(&mut self, read: BTreeMap<String, u32>) {
        for (name, n) in read {
            match self.known.iter_mut().find(|(k, _)| *k == name) {
                Some((_, m)) => *m = (*m).max(n),
                None => {
                    let m = self.resumed.entry(name).or_default();
                    *m = (*m).max(n);
                }
            }
        }
    }

    /// How many lines each source handed out, for the store ([`SOURCE_LINES`]).
    fn read_json(&self) -> Option<String> {
        let mut all: BTreeMap<&str, u32> =
            self.resumed.iter().map(|(k, n)| (k.as_str(), *n)).collect();
        all.extend(self.known.iter().map(|(k, n)| (k.as_str(), *n)));
        serde_json::to_string(&all).ok()
    }
}

/// What one line turned out to be.
enum Line {
    Event {
        session: Option<SessionId>,
    },
    /// Delivered before (a drain entry id seen, or an exact re-delivery of an event).
    Duplicate {
        session: Option<SessionId>,
    },
    Ignored,
    Rejected(crate::parse::Reject),
}

/// Most lines of a batch applied to the correlation state in one call. A call's changes are
/// held until it returns — several per event at the session cap (an eviction's judgement,
/// its lines' origins, the org's name), about 1 KB an event with their heap parts — so a
/// 4 MiB read (≈ 38,000 lines) in one call held ≈ 85 MB at once (heaptrack); this bounds it
/// to about 1 MB, and a shared state's script call to a bounded run.
const DELIVERY_LINES: usize = 1024;

/// A batch of `lines` lines cut into the parts applied one call each: each part's range and
/// whether its source has more to read after it. At least one part, empty for an empty
/// batch: it still says whether its source is caught up, which decides when the evidence has
/// settled. Every part but the last is followed by the rest of its batch, so it says its
/// source is behind whatever the batch says (a shared state's other replicas would take a
/// source that said it was caught up for idle once `idle_after` passed, while its last parts
/// wait their turn); `None` (a replay, which says nothing of the source) stays `None`.
fn parts(
    lines: usize,
    backlog: Option<bool>,
) -> impl Iterator<Item = (std::ops::Range<usize>, Option<bool>)> {
    (0..lines.max(1)).step_by(DELIVERY_LINES).map(move |start| {
        let end = lines.min(start + DELIVERY_LINES);
        let more = end < lines;
        (start..end, backlog.map(|b| b || more))
    })
}

/// What the emitter and the platform need of an event once the state has taken it: its
/// strings cloned as they are (inline up to 24 bytes), not made `String`s — four allocations
/// an event that the actor made and freed again.
struct Meta {
    /// Its line's index in the batch.
    at: usize,
    kind: EventKind,
    runtime: Runner,
    time: Timestamp,
    session: Option<SessionId>,
    org: Option<Name>,
    worker: Option<Name>,
    version: Option<Name>,
}

/// One batch of lines of one source, received at `now`.
struct Lines<'a> {
    source: &'a str,
    input: u16,
    now: Timestamp,
    backlog: Option<bool>,
    default_runtime: Option<Runner>,
    /// Each line with its origin and drain entry id.
    lines: Vec<(Origin, &'a [u8], Option<&'a str>)>,
}

impl<S: CorrelationState> Actor<S> {
    /// Makes the actor durable: commits every batch to `store` from now on, and arms the
    /// replay of what it holds (the lines of every retained session, in order, at their
    /// receive times, batch by batch as they were received), which [`Actor::run`] streams in
    /// bounded pages while HTTP answers (`recovery`). The returned state is `/readyz`'s.
    pub async fn recover(
        &mut self,
        store: Store,
        metrics: Option<RecoveryMetrics>,
    ) -> Result<watch::Receiver<RecoveryState>, StoreError> {
        if let Some(json) = store.state(RETIRED_TOTALS).await? {
            self.telemetry.restore_retired(serde_json::from_str(&json)?);
        }
        if let Some(json) = store.state(FEED_CURSOR).await? {
            self.feed = serde_json::from_str(&json)?;
        }
        if let Some(json) = store.state(SOURCE_LINES).await? {
            self.sources.resume(serde_json::from_str(&json)?);
        }
        self.replaying = true;
        self.durable.attach(store.clone());
        let (progress, state) = Progress::new(metrics);
        self.recovery = Some(Recovery {
            store,
            progress,
            started: false,
        });
        Ok(state)
    }

    /// One page of the replay: each stored batch through parse and the correlation state as
    /// when it was received, then the outcome rows and findings the page produced, committed
    /// (a judgement or finding whose commit a crash prevented lands now; the rest is written
    /// again unchanged, a stored finding keeping its time). Retired totals, prunes and evictions wait for the end of the replay.
    pub(super) async fn replay(&mut self, stored: Vec<StoredLine>) -> Result<(), StateError> {
        let mut rest = stored.as_slice();
        while let Some(first) = rest.first() {
            let n = rest.iter().take_while(|l| same_batch(l, first)).count();
            let (group, tail) = rest.split_at(n);
            rest = tail;
            self.replay_starts(first.received_at).await;
            let input = self.source_index(&first.source);
            for l in group {
                self.sources.saw_line(input, l.line);
            }
            let lines = Lines {
                source: &first.source,
                input,
                now: first.received_at,
                backlog: None,
                default_runtime: first.default_runtime,
                lines: group
                    .iter()
                    .map(|l| {
                        (
                            Origin {
                                input,
                                line: l.line,
                            },
                            l.raw.as_slice(),
                            l.entry_id.as_deref(),
                        )
                    })
                    .collect(),
            };
            self.deliver(lines).await?;
        }
        // An earlier run wrote these sessions' rows: whatever a replayed session's mark says,
        // its judgements set the dispatch columns again.
        let outcomes: Vec<OutcomeWrite> = self
            .telemetry
            .take_outcomes()
            .into_iter()
            .map(OutcomeWrite::refiled)
            .collect();
        let findings = self.telemetry.take_findings();
        if !outcomes.is_empty() || !findings.is_empty() {
            let commit = Commit {
                outcomes,
                findings,
                ..Commit::default()
            };
            let _ = self.durable.commit(&commit).await;
        }
        if let Some(r) = self.recovery.as_mut() {
            r.progress.replayed(stored.len() as u64);
        }
        Ok(())
    }

    /// Before a stored batch received at `at`: the starts of the sidecar the store saw are
    /// replayed as they happened, so the replay never settles a session on the evidence of
    /// sources that were merely stopped. The followed files are announced at the first batch
    /// (as at the first start); a stretch in which every known source went idle — the
    /// sidecar was down, or nothing arrived — is replayed as the restart it most likely was:
    /// every known source is announced again (a quiet stretch then judges later, on at
    /// least the same evidence, never earlier).
    async fn replay_starts(&mut self, at: Timestamp) {
        let first = self
            .recovery
            .as_mut()
            .is_some_and(|r| !std::mem::replace(&mut r.started, true));
        let inputs: Vec<u16> = if first {
            self.announce.clone()
        } else {
            match self.state.watermarks(at).await {
                Ok((each, _)) if !each.is_empty() && each.iter().all(|w| !w.active) => {
                    each.iter().map(|w| w.input).collect()
                }
                _ => return,
            }
        };
        if inputs.is_empty() {
            return;
        }
        if let Err(e) = self.state.announce(&inputs, at).await {
            tracing::warn!(error = %e, "cannot announce the replayed sources to the correlation state");
        }
    }

    /// The replay is complete: the followed files are announced (each holds judgements back
    /// until it has delivered past them or gone idle, so a restart during catch-up judges
    /// nothing on half the evidence), then what is due now is swept, the replay's prunes and
    /// evictions are committed with the retired totals, and the totals are published.
    pub(super) async fn recovered(&mut self) {
        self.replaying = false;
        let now = self.clock.now();
        self.announce_sources(now).await;
        // Sources that have been quiet since stop (and are not followed any more) hold
        // judgements back no longer.
        self.tick_state(now).await;
        let mut commit = Commit {
            prune_before: self.prune_due.take(),
            evicted_lines: std::mem::take(&mut self.evicted_lines),
            outcomes: self.telemetry.take_outcomes(),
            findings: self.telemetry.take_findings(),
            ..Commit::default()
        };
        commit.state = self.retired_state(&commit);
        let _ = self.durable.commit(&commit).await;
        self.telemetry.publish();
        let sessions = match self.state.totals().await {
            Ok(t) => t.sessions,
            Err(_) => 0,
        };
        if let Some(mut r) = self.recovery.take() {
            r.progress.done(sessions);
        }
    }

    /// The input number of the source `name`, named to the state too (a shared state cites
    /// its lines by that name on every replica).
    fn source_index(&mut self, name: &str) -> u16 {
        let input = self.sources.index(name);
        self.state.name_source(input, name);
        input
    }

    /// Names sources known before they send (files that exist when `serve` starts): each
    /// holds judgements back until it has delivered past them or gone idle. Announced once
    /// the store is replayed (at once without a store).
    pub async fn catching_up(&mut self, sources: impl IntoIterator<Item = String>) {
        let inputs: Vec<u16> = sources
            .into_iter()
            .map(|name| self.source_index(&name))
            .collect();
        self.announce.extend(inputs);
        if self.recovery.is_none() {
            let now = self.clock.now();
            self.announce_sources(now).await;
        }
    }

    async fn announce_sources(&mut self, now: Timestamp) {
        let inputs = std::mem::take(&mut self.announce);
        if inputs.is_empty() {
            return;
        }
        if let Err(e) = self.state.announce(&inputs, now).await {
            tracing::warn!(error = %e, "cannot announce the followed files to the correlation state");
        }
        // A followed file starts behind: it is never idle, whatever the clock says, until its
        // follower says it has read to the end (a batch with no backlog). Only a source that
        // says so goes idle, `source_idle_after` later; one that is merely slow (its batches
        // queued behind a slow commit) goes on holding judgements back.
        for input in inputs {
            let behind = Delivery {
                input,
                now,
                backlog: Some(true),
                events: Vec::new(),
            };
            match self.state.apply(behind).await {
                Ok(applied) => self.emit(applied.changes, now),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot tell the correlation state a followed file starts behind");
                }
            }
        }
    }

    /// One line through drain dedupe and parse: the event, or what else the line was.
    fn parse(
        &mut self,
        line: &[u8],
        entry_id: Option<&str>,
        default_runtime: Option<Runner>,
        now: Timestamp,
    ) -> Result<Event, Line> {
        if let Some(id) = entry_id
            && !self.entries.insert(id)
        {
            return Err(Line::Duplicate { session: None });
        }
        let ctx = LineContext {
            default_runtime,
            received_at: Some(now),
        };
        match self.parser.parse_line(line, &ctx) {
            Parsed::Ignored => Err(Line::Ignored),
            Parsed::Rejected(reason) => Err(Line::Rejected(reason)),
            Parsed::Event(ev) => Ok(ev),
        }
    }

    /// A batch's lines through parse and the correlation state, [`DELIVERY_LINES`] at a time
    /// (one call to the state each); the changes through the emitter. Returns what each line
    /// was, in order.
    async fn deliver(&mut self, b: Lines<'_>) -> Result<Vec<Line>, StateError> {
        let mut out: Vec<Line> = Vec::with_capacity(b.lines.len());
        for (range, backlog) in parts(b.lines.len(), b.backlog) {
            self.deliver_part(&b, &b.lines[range], backlog, &mut out)
                .await?;
        }
        Ok(out)
    }

    /// One part of a batch's lines (`b.lines` is the whole batch), appending what each was
    /// to `out`.
    async fn deliver_part(
        &mut self,
        b: &Lines<'_>,
        part: &[(Origin, &[u8], Option<&str>)],
        backlog: Option<bool>,
        out: &mut Vec<Line>,
    ) -> Result<(), StateError> {
        let base = out.len();
        let mut events = Vec::new();
        let mut metas = Vec::new();
        for (i, (origin, raw, entry_id)) in part.iter().enumerate() {
            let i = base + i;
            match self.parse(raw, *entry_id, b.default_runtime, b.now) {
                Err(line) => out.push(line),
                Ok(ev) => {
                    // Until the state says which (below).
                    out.push(Line::Duplicate { session: None });
                    metas.push(Meta {
                        at: i,
                        kind: ev.kind,
                        runtime: ev.runner,
                        time: ev.time,
                        session: ev.session.clone(),
                        org: ev.org.clone(),
                        worker: ev.worker.clone(),
                        version: ev.version.clone(),
                    });
                    events.push((ev, *origin));
                }
            }
        }
        let applied = self
            .apply_retrying(Delivery {
                input: b.input,
                now: b.now,
                backlog,
                events,
            })
            .await?;
        let now = b.now;
        let mut latest = None;
        for (m, fate) in metas.iter().zip(&applied.fates) {
            if !fate.is_fresh() {
                continue;
            }
            latest = latest.max(Some(m.time));
            if let (Some(worker), EventKind::Heartbeat | EventKind::Claim) = (&m.worker, m.kind) {
                self.telemetry.daemon(
                    m.runtime,
                    worker,
                    m.version.as_deref(),
                    (m.kind == EventKind::Heartbeat).then_some(m.time),
                );
            }
        }
        if let Some(t) = latest {
            self.telemetry.events(b.source, t);
        }
        self.emit(applied.changes, now);
        for (m, fate) in metas.into_iter().zip(applied.fates) {
            let Fate::Accepted { first_dispatch } = fate else {
                if let Some(slot) = out.get_mut(m.at) {
                    *slot = Line::Duplicate { session: m.session };
                }
                continue;
            };
            if first_dispatch
                && let (Some(p), Some(id)) = (
                    self.platform.as_mut(),
                    m.session.as_ref().map(SessionId::as_str),
                )
            {
                if self.replaying {
                    p.on_replayed_dispatch(id, now);
                } else {
                    // A dispatch only yields drift findings; the flag book is unchanged.
                    for e in p.on_dispatch(id, m.org.as_deref(), m.runtime, m.time, now) {
                        let _ = self.telemetry.platform(e, now);
                    }
                }
            }
            if let Some(slot) = out.get_mut(m.at) {
                *slot = Line::Event { session: m.session };
            }
        }
        Ok(())
    }

    /// Batches taken together, in order: each through parse and the correlation state, then
    /// handed to the committer (`committer.rs`), which commits all their lines, checkpoints
    /// and changes in one transaction (with the batches taken after them while it waited),
    /// and only then answers each sender, counts their lines and publishes the totals. The
    /// actor goes on with the next batches meanwhile.
    pub(super) async fn ingest(&mut self, batches: Vec<Batch>) {
        let mut job = Job::default();
        for b in batches {
            let (lines, bytes) = (b.lines.len(), b.lines.bytes_len());
            if let Some((commit, done, result)) = self.take(b, &mut job.counts).await {
                job.commits.push(commit);
                job.answers.push((done, result));
                job.lines += lines;
                job.bytes += bytes;
            }
        }
        if job.commits.is_empty() {
            // Refused batches' counts move at once: nothing of them waits for a commit.
            self.telemetry.ingest_counters().count(&job.counts);
            return;
        }
        job.summary = self.telemetry.snapshot();
        match self.committer.as_mut() {
            Some(c) => c.send(job).await,
            // Not running (a test driving the actor by hand): committed here.
            None => {
                let (batches, lines) = land(
                    &self.durable,
                    &self.telemetry.ingest_counters(),
                    &self.telemetry.publisher(),
                    vec![(job, None)],
                )
                .await;
                self.uncommitted.0 += batches;
                self.uncommitted.1 += lines;
            }
        }
    }

    /// A batch through parse and the correlation state: the commit it makes, where to answer,
    /// and what became of its lines. `None` (the sender answered) when the state refused it.
    async fn take(
        &mut self,
        mut batch: Batch,
        counts: &mut LineCounts,
    ) -> Option<(Commit, Option<Answer>, BatchResult)> {
        let now = self.clock.now();
        let mut result = BatchResult::default();
        let input = self.source_index(&batch.source);
        // Skipped over-long lines take their line numbers too.
        let mut skipped = batch.skipped.iter().peekable();
        let mut origins: Vec<Origin> = Vec::with_capacity(batch.lines.len());
        for i in 0..batch.lines.len() {
            while skipped.next_if(|s| s.before <= i).is_some() {
                self.sources.next_line(input);
            }
            origins.push(self.sources.next_line(input));
        }
        for _ in skipped {
            self.sources.next_line(input);
        }
        let lines = Lines {
            source: &batch.source,
            input,
            now,
            backlog: Some(batch.backlog),
            default_runtime: batch.default_runtime,
            lines: batch
                .lines
                .iter()
                .zip(&origins)
                .enumerate()
                .map(|(i, (raw, origin))| {
                    (
                        *origin,
                        raw,
                        batch.entry_ids.get(i).and_then(Option::as_deref),
                    )
                })
                .collect(),
        };
        let outcomes = match self.deliver(lines).await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(source = %batch.source, error = %e, "batch not applied: the correlation state refused it");
                self.uncommitted.0 += 1;
                self.uncommitted.1 += batch.lines.len() as u64;
                if let Some(done) = batch.done {
                    let _ = done.send(Err(e.to_string()));
                }
                return None;
            }
        };
        let mut stored = Vec::with_capacity(batch.lines.len());
        let source = batch.source.as_str();
        // Scanned by the reader that skipped them, never parsed (`overlong`).
        for s in &batch.skipped {
            match crate::overlong::verdict(s.relevant) {
                Some(reason) => {
                    result.rejected += 1;
                    self.telemetry.rejected(counts, source, reason);
                }
                None => result.ignored += 1,
            }
        }
        let mut store_line = |i: usize, session: Option<SessionId>| {
            stored.push(NewLine {
                at: i,
                line: origins.get(i).map_or(0, |o| o.line),
                session: session.map(SessionId::into_name),
                entry_id: batch.entry_ids.get_mut(i).and_then(Option::take),
            });
        };
        for (i, outcome) in outcomes.into_iter().enumerate() {
            match outcome {
                Line::Event { session } => {
                    result.events += 1;
                    store_line(i, session);
                }
                Line::Duplicate { session } => {
                    result.duplicates += 1;
                    let session = session.as_ref().map(SessionId::as_str);
                    self.telemetry.duplicate(counts, source, session);
                }
                Line::Ignored => result.ignored += 1,
                Line::Rejected(reason) => {
                    result.rejected += 1;
                    self.telemetry.rejected(counts, source, reason);
                    // Stored too, as evidence: a report built from the store counts a
                    // source's rejected lines, by reason, as one built from the files does.
                    store_line(i, None);
                }
            }
        }
        // Counted once a batch: a label lookup per line cost more than the line's parse. The
        // counters move once the lines are committed (`committer.rs`).
        counts.lines(source, LineResult::Event, result.events);
        counts.lines(source, LineResult::Ignored, result.ignored);
        let lines = (!stored.is_empty()).then(|| NewLines {
            received_at: now,
            source: std::mem::take(&mut batch.source),
            default_runtime: batch.default_runtime,
            // The batch's bytes, moved: the stored lines are not copied one by one.
            buf: std::mem::take(&mut batch.lines),
            rows: stored,
        });
        let mut commit = Commit {
            lines: lines.into_iter().collect(),
            position: batch.position.take(),
            prune_before: self.prune_due.take(),
            evicted_lines: std::mem::take(&mut self.evicted_lines),
            ..Commit::default()
        };
        commit.state = self.retired_state(&commit);
        commit
            .state
            .extend(self.sources.read_json().map(|json| (SOURCE_LINES, json)));
        commit.outcomes = self.telemetry.take_outcomes();
        commit.findings = self.telemetry.take_findings();
        Some((commit, batch.done.take(), result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_ids_answer_a_repeat_until_it_is_among_the_oldest_past_the_cap() {
        let mut ids = RecentIds::with_cap(3);
        assert!(ids.insert("a") && ids.insert("b") && ids.insert("c"));
        // repeats, the oldest included, are told while held
        assert!(!ids.insert("a") && !ids.insert("c"));
        // a fourth id forgets the oldest, and only it
        assert!(ids.insert("d"));
        assert!(!ids.insert("b") && !ids.insert("c") && !ids.insert("d"));
        assert!(ids.insert("a"));
        // memory: as many ids as the cap, each once
        assert_eq!((ids.set.len(), ids.order.len()), (3, 3));
        assert!(!ids.insert("d") && ids.insert("b"));
    }

    #[test]
    fn every_part_but_the_last_says_its_source_is_behind() {
        let n = 2 * DELIVERY_LINES + 5;
        for (backlog, last) in [(Some(false), Some(false)), (Some(true), Some(true))] {
            let p: Vec<_> = parts(n, backlog).collect();
            assert_eq!(
                p,
                vec![
                    (0..DELIVERY_LINES, Some(true)),
                    (DELIVERY_LINES..2 * DELIVERY_LINES, Some(true)),
                    (2 * DELIVERY_LINES..n, last),
                ]
            );
        }
        // a replay says nothing of its source
        assert!(parts(n, None).all(|(_, b)| b.is_none()));
        // an empty batch still says where its source is; a whole part is the last
        assert_eq!(
            parts(0, Some(false)).collect::<Vec<_>>(),
            vec![(0..0, Some(false))]
        );
        assert_eq!(
            parts(DELIVERY_LINES, Some(false)).collect::<Vec<_>>(),
            vec![(0..DELIVERY_LINES, Some(false))]
        );
    }
}
