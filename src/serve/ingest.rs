//! Lines in: a batch's lines through drain dedupe, parse and the live correlator, committed
//! with the checkpoint that produced them; and recovery, which replays the stored lines the
//! same way.

use rustc_hash::FxHashSet;

use super::actor::Actor;
use super::durable::RETIRED_TOTALS;
use crate::correlate::live::Change;
use crate::event::{EventKind, Origin, Runner, Timestamp};
use crate::parse::{LineContext, Parsed};
use crate::sinks::metrics::LineResult;
use crate::sources::batch::{Batch, BatchResult};
use crate::store::{Commit, Store, StoreError, StoredLine};

/// Ids seen lately, bounded: the oldest are forgotten first. A drain retries within minutes,
/// not days.
#[derive(Debug, Default)]
pub struct RecentIds {
    set: FxHashSet<String>,
    order: std::collections::VecDeque<String>,
}

impl RecentIds {
    const CAP: usize = 1_000_000;

    /// `false` if `id` was seen already.
    fn insert(&mut self, id: &str) -> bool {
        if self.set.contains(id) {
            return false;
        }
        if self.order.len() == Self::CAP
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        self.set.insert(id.to_owned());
        self.order.push_back(id.to_owned());
        true
    }
}

/// Source names by index, and lines read from each: a record's origin cites them.
#[derive(Debug, Default)]
pub struct Sources(Vec<(String, u32)>);

impl Sources {
    /// The index of a source name, registered on first use.
    pub fn index(&mut self, name: &str) -> u16 {
        let i = match self.0.iter().position(|(n, _)| n == name) {
            Some(i) => i,
            None => {
                self.0.push((name.to_owned(), 0));
                self.0.len() - 1
            }
        };
        u16::try_from(i).unwrap_or(u16::MAX)
    }

    pub fn name(&self, input: u16) -> &str {
        self.0
            .get(usize::from(input))
            .map_or("?", |(n, _)| n.as_str())
    }

    /// The origin of the next line of source `input`.
    fn next_line(&mut self, input: u16) -> Origin {
        match self.0.get_mut(usize::from(input)) {
            Some((_, n)) => {
                *n = n.saturating_add(1);
                Origin { input, line: *n }
            }
            None => Origin::default(),
        }
    }

    /// Line `line` of `input` was read (recovery): later lines number on from it.
    fn saw_line(&mut self, input: u16, line: u32) {
        if let Some((_, n)) = self.0.get_mut(usize::from(input)) {
            *n = (*n).max(line);
        }
    }
}

/// What one line turned out to be.
enum Line {
    Event { session: Option<String> },
    Duplicate,
    Ignored,
    Rejected(crate::parse::Reject),
}

impl Actor {
    /// Makes the actor durable: replays what `store` holds (the lines of every retained
    /// session, in order, at their receive times) and commits every batch from now on.
    pub async fn recover(&mut self, store: Store) -> Result<(), StoreError> {
        if let Some(json) = store.state(RETIRED_TOTALS).await? {
            self.telemetry.restore_retired(serde_json::from_str(&json)?);
        }
        self.replaying = true;
        for l in store.lines().await? {
            let changes = self.live.on_tick(l.received_at);
            self.apply(changes, l.received_at);
            let input = self.sources.index(&l.source);
            self.sources.saw_line(input, l.line);
            let origin = Origin {
                input,
                line: l.line,
            };
            self.process(
                &l.source,
                origin,
                &l.raw,
                l.entry_id.as_deref(),
                l.default_runtime,
                l.received_at,
            );
        }
        self.replaying = false;
        // Sources that have been quiet since stop holding judgements back now.
        let now = self.clock.now();
        let changes = self.live.on_tick(now);
        self.apply(changes, now);
        self.durable.attach(store);
        self.telemetry.publish();
        Ok(())
    }

    /// Names sources known before they send (files that exist when `serve` starts): each
    /// holds judgements back until it has delivered past them or gone idle.
    pub fn catching_up(&mut self, sources: impl IntoIterator<Item = String>) {
        let now = self.clock.now();
        for name in sources {
            let input = self.sources.index(&name);
            self.live.source_seen(input, now, false);
        }
    }

    /// One line through parse and the live correlator. Metrics and the summary follow.
    fn process(
        &mut self,
        source: &str,
        origin: Origin,
        line: &[u8],
        entry_id: Option<&str>,
        default_runtime: Option<Runner>,
        now: Timestamp,
    ) -> Line {
        if let Some(id) = entry_id
            && !self.entries.insert(id)
        {
            return Line::Duplicate;
        }
        let ctx = LineContext {
            default_runtime,
            received_at: Some(now),
        };
        let ev = match self.parser.parse_line(line, &ctx) {
            Parsed::Ignored => return Line::Ignored,
            Parsed::Rejected(reason) => return Line::Rejected(reason),
            Parsed::Event(ev) => ev,
        };
        let (kind, runtime, time) = (ev.kind, ev.runner, ev.time);
        let org = ev.org.as_ref().map(|o| o.to_string());
        let session = ev.session.as_ref().map(|s| s.to_string());
        let daemon = matches!(kind, EventKind::Heartbeat | EventKind::Claim)
            .then(|| (ev.worker.clone(), ev.version.clone()));
        let Some(changes) = self.live.on_event(ev, origin, now) else {
            return Line::Duplicate;
        };
        let daemon = match &daemon {
            Some((Some(worker), version)) => Some((
                runtime,
                worker.as_str(),
                version.as_deref(),
                (kind == EventKind::Heartbeat).then_some(time),
            )),
            _ => None,
        };
        self.telemetry.event(source, time, daemon);
        let first_dispatch = changes
            .iter()
            .any(|c| matches!(c, Change::Dispatched { .. }));
        self.apply(changes, now);
        if first_dispatch && let (Some(p), Some(id)) = (self.platform.as_mut(), session.as_deref())
        {
            if self.replaying {
                p.on_replayed_dispatch(id, now);
            } else {
                // A dispatch only yields drift findings; the flag book is unchanged.
                for e in p.on_dispatch(id, org.as_deref(), runtime, time, now) {
                    let _ = self.telemetry.platform(e, now);
                }
            }
        }
        Line::Event { session }
    }

    pub(super) async fn ingest(&mut self, batch: Batch) {
        let now = self.clock.now();
        let mut result = BatchResult::default();
        let input = self.sources.index(&batch.source);
        let mut commit = Commit {
            // Sized once: grown by doubling, a 20,000-line batch reallocated megabytes a dozen
            // times.
            lines: Vec::with_capacity(batch.lines.len()),
            position: batch.position,
            ..Commit::default()
        };
        self.live.source_seen(input, now, batch.backlog);
        // Expired sessions go first, as a replay would meet them.
        let changes = self.live.on_tick(now);
        commit.prune_before = self.prune_before(&changes, now);
        self.apply(changes, now);
        for (i, line) in batch.lines.iter().enumerate() {
            let origin = self.sources.next_line(input);
            let entry_id = batch.entry_ids.get(i).and_then(Option::as_deref);
            let outcome = self.process(
                &batch.source,
                origin,
                line,
                entry_id,
                batch.default_runtime,
                now,
            );
            let source = batch.source.as_str();
            match outcome {
                Line::Event { session } => {
                    result.events += 1;
                    self.telemetry.line(source, LineResult::Event);
                    commit.lines.push(StoredLine {
                        received_at: now,
                        source: batch.source.clone(),
                        line: origin.line,
                        session,
                        entry_id: entry_id.map(str::to_owned),
                        default_runtime: batch.default_runtime,
                        raw: line.clone(),
                    });
                }
                Line::Duplicate => {
                    result.duplicates += 1;
                    self.telemetry.line(source, LineResult::Duplicate);
                }
                Line::Ignored => {
                    result.ignored += 1;
                    self.telemetry.line(source, LineResult::Ignored);
                }
                Line::Rejected(reason) => {
                    result.rejected += 1;
                    self.telemetry.rejected(source, reason);
                }
            }
        }
        commit.state = self.retired_state(commit.prune_before);
        let stored = match self.durable.commit(&commit).await {
            Ok(()) => Ok(result),
            Err(e) => {
                self.uncommitted.0 += 1;
                self.uncommitted.1 += commit.lines.len() as u64;
                Err(e.to_string())
            }
        };
        self.telemetry.publish();
        if let Some(done) = batch.done {
            // The sender may have given up waiting; the lines are recorded all the same.
            let _ = done.send(stored);
        }
    }
}
