//! Live correlation for `serve`: the same records and rules as batch, plus what a sidecar
//! must say *as it happens* — each change a metric or an alert cares about.
//!
//! Two clocks, as PRODUCT.md §2 says. Whether a claim was matched, late or mismatched is judged
//! on event times (replaying old logs gives the same answer as watching them). When a session
//! with no claim becomes overdue is judged on the sidecar's own clock: receive time of the
//! dispatch + T, so hosts whose clocks disagree, or a replay of last week, raise no false alarm.
//!
//! A session is judged once, on settled evidence: when the low watermark of the sources (see
//! [`watermark`]) has passed its first claim's event time plus an allowed lateness, so a claim
//! stamped earlier that a slower source still has to deliver is not missed. Duplicate and
//! re-claim decisions read only the settled part of a session's records, for the same reason.
//! A maximum hold on the sidecar's clock bounds the wait (a judgement made then is flagged
//! with [`Change::JudgedBeforeSettled`]). Evidence that arrives later still than that does not
//! change an emitted outcome (counters do not go back).
//!
//! An orphan (a claim whose session was never dispatched) is judged on settled evidence too:
//! once the low watermark has passed its first claim's time plus the orphan grace and the
//! allowed lateness (every active source has delivered past the moment the dispatch should
//! have come), or once the grace plus the maximum hold has passed on the sidecar's clock
//! (counted as judged before settled). A dispatch source slower than the worker's is then
//! waited for, not outrun.
//!
//! `now` is always an argument: this module does no I/O and reads no clock.

use std::collections::BTreeSet;

use super::session::Session;
use super::{Accepted, CorrelateConfig, Correlator, Outcome};
use crate::event::{Event, EventKind, Origin, Runner, SessionId, Timestamp};

mod queue;
pub mod rules;
pub mod watermark;
use queue::Queue;
pub use rules::{Arrival, Mark, MaybeTime, Rules, Schedule, Slot};
use watermark::{END_OF_TIME, Watermarks};

#[derive(Debug, Clone)]
pub struct LiveConfig {
    pub correlate: CorrelateConfig,
    /// A claim whose session has no dispatch stamped within this long after the claim is an
    /// orphan, once the evidence settled past it (or the maximum hold expired on top of it).
    pub orphan_grace_ms: i64,
    /// A session is forgotten this long after it was first seen (memory stays bounded).
    pub retention_ms: i64,
    /// Evidence stamped up to this long before the low watermark may still arrive: a session
    /// is judged once the watermark passes its first claim's time plus this.
    pub allowed_lateness_ms: i64,
    /// A source that delivered nothing for this long (sidecar clock) stops holding the
    /// watermark back.
    pub idle_after_ms: i64,
    /// A session with evidence to judge is judged after at most this long (sidecar clock),
    /// settled or not.
    pub max_hold_ms: i64,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            correlate: CorrelateConfig::default(),
            orphan_grace_ms: 5 * 60 * 1000,
            retention_ms: 60 * 60 * 1000,
            // No lateness: with one source in time order, a claim settles as soon as the
            // source moves past its time (or goes idle). `serve` configures a few seconds.
            allowed_lateness_ms: 0,
            idle_after_ms: 5_000,
            max_hold_ms: 60_000,
        }
    }
}

/// Something a sink (metrics, alerts) must react to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A session's first dispatch arrived.
    Dispatched {
        session: SessionId,
        /// When the session was first seen (the receive time of its first line, on the
        /// sidecar's clock): with the session, what names its outcome row (a session id that
        /// lives again after it was forgotten is another row).
        first_seen: Timestamp,
        runner: Runner,
        org: Option<String>,
        /// The dispatch's event time.
        at: Timestamp,
    },
    /// A distinct claim event arrived.
    Claimed { runtime: Runner },
    /// The session now waits for its first claim (pending gauge up).
    PendingStarted { runner: Runner },
    /// It stopped waiting: claimed, overdue or forgotten (pending gauge down).
    PendingEnded { runner: Runner },
    /// The next `Judged` (or `Orphan`s) was made because the maximum hold expired, before
    /// the evidence settled (an earlier claim or the dispatch may still come from a slow
    /// source).
    JudgedBeforeSettled,
    /// Dispatch and first claim are both known and settled: the outcome, on event times.
    Judged {
        session: SessionId,
        /// As in [`Change::Dispatched`].
        first_seen: Timestamp,
        runner: Runner,
        /// The dispatch's org, so no consumer reaches back into the correlator for it.
        org: Option<String>,
        /// The dispatch's event time.
        dispatched_at: Timestamp,
        outcome: Outcome,
        latency_ms: Option<i64>,
        skew_clamped: bool,
        /// The session's outcome row may hold other dispatch columns than these (see
        /// [`Mark::refile`]): its write sets them again. Otherwise every write of the row
        /// carried these.
        refile: bool,
    },
    /// No claim by receive time + T (unclaimed gauge up, deadline-missed counter up, alert).
    Overdue {
        session: SessionId,
        /// As in [`Change::Dispatched`].
        first_seen: Timestamp,
        runner: Runner,
        org: Option<String>,
        /// The dispatch's event time.
        dispatched_at: Timestamp,
        /// As in [`Change::Judged`].
        refile: bool,
    },
    /// An overdue session was claimed after all (unclaimed gauge down, alert resolved).
    OverdueResolved {
        session: SessionId,
        runner: Runner,
        org: Option<String>,
    },
    /// An overdue session was forgotten unclaimed (unclaimed gauge down).
    OverdueForgotten { session: SessionId, runner: Runner },
    /// What the counters hold for a session about to be forgotten: its share of the
    /// cumulative totals, which outlives its evidence (`serve` keeps it durable).
    Retired(Counted),
    /// The session's evidence was dropped (past retention, or the session cap).
    Forgotten { session: SessionId },
    /// The session cap was reached: this session, among those whose latest evidence is
    /// oldest, was judged on the evidence so far and dropped (its `Retired` and `Forgotten`
    /// follow). `lines` are the origins of its records, so a store can drop them too.
    Evicted {
        session: SessionId,
        lines: Vec<Origin>,
    },
    /// Two claims with no release between them, reported once per session.
    Duplicate {
        session: SessionId,
        /// As in [`Change::Dispatched`].
        first_seen: Timestamp,
        runtime: Runner,
        cross_runtime: bool,
        /// The dispatch's org, when the session was dispatched.
        org: Option<String>,
    },
    /// A session already reported duplicate turned out to be claimed twice across runtimes
    /// too (a later-settled claim from the other runtime).
    DuplicateCrossRuntime {
        session: SessionId,
        /// As in [`Change::Dispatched`].
        first_seen: Timestamp,
        org: Option<String>,
    },
    /// A claim after a release: the session's `total`-th.
    Reclaimed {
        session: SessionId,
        /// As in [`Change::Dispatched`].
        first_seen: Timestamp,
        runtime: Runner,
        total: u32,
    },
    /// A claim for a session that was not dispatched within the grace period; `claim` is its
    /// number among the session's orphan claims (1 for the first).
    Orphan {
        session: SessionId,
        runtime: Runner,
        claim: u32,
    },
}

impl Change {
    /// The org of the session a change is about, when it carries one.
    pub fn org(&self) -> Option<&str> {
        match self {
            Change::Dispatched { org, .. }
            | Change::Judged { org, .. }
            | Change::Overdue { org, .. }
            | Change::OverdueResolved { org, .. }
            | Change::Duplicate { org, .. } => org.as_deref(),
            _ => None,
        }
    }
}

/// One session's share of the cumulative counters: dispatched (by runner), its outcome,
/// duplicate, re-claims and orphan claims as they were emitted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counted {
    pub dispatched: Option<Runner>,
    pub outcome: Option<Outcome>,
    pub skew_clamped: bool,
    pub duplicate: bool,
    pub duplicate_cross_runtime: bool,
    pub reclaims: u32,
    pub orphan_claims: u32,
}

/// The time-ordered sets of every session's schedule, one per [`Slot`], as
/// `(key, session)`: a `BTreeSet` for the keys on event time and the holds (which move on
/// most events), a lazily pruned [`Queue`] for the expiries and deadlines (the sidecar's
/// clock plus a constant, every session held in each, rarely taken out before they are due).
#[derive(Debug)]
struct Sets([Due; 6]);

#[derive(Debug)]
enum Due {
    Tree(BTreeSet<(Timestamp, SessionId)>),
    Queue(Queue),
}

impl Default for Sets {
    fn default() -> Self {
        Sets(Slot::ALL.map(|slot| match slot {
            Slot::Deadline | Slot::Expiry => Due::Queue(Queue::default()),
            _ => Due::Tree(BTreeSet::new()),
        }))
    }
}

impl Sets {
    /// Moves `id`'s entries from where `before` had them to where `after` has them; `live`
    /// says whether a session is scheduled at a key in a slot (its mark, `after` for `id`).
    fn sync(
        &mut self,
        id: &SessionId,
        before: Schedule,
        after: Schedule,
        live: &impl Fn(Slot, Timestamp, &SessionId) -> bool,
    ) {
        for (slot, old, new) in before.moves(after) {
            match &mut self.0[slot as usize] {
                Due::Tree(set) => {
                    if let Some(k) = old {
                        set.remove(&(k, id.clone()));
                    }
                    if let Some(k) = new {
                        set.insert((k, id.clone()));
                    }
                }
                Due::Queue(q) => {
                    if let Some(k) = new {
                        q.push(k, id.clone());
                    }
                    if let Some(k) = old {
                        q.remove(k, id, &|k, id| live(slot, k, id));
                    }
                }
            }
        }
    }

    /// The first entry of `slot` due by `at`, taken out.
    fn pop_due(
        &mut self,
        slot: Slot,
        at: Timestamp,
        live: &impl Fn(Slot, Timestamp, &SessionId) -> bool,
    ) -> Option<SessionId> {
        match &mut self.0[slot as usize] {
            Due::Tree(set) => {
                if set.first().is_some_and(|(t, _)| *t <= at) {
                    set.pop_first().map(|(_, id)| id)
                } else {
                    None
                }
            }
            Due::Queue(q) => q.pop_due(at, &|k, id| live(slot, k, id)),
        }
    }

    /// The earliest key in `slot`.
    fn first_key(&self, slot: Slot) -> Option<Timestamp> {
        match &self.0[slot as usize] {
            Due::Tree(set) => set.first().map(|(t, _)| *t),
            Due::Queue(q) => q.first_key(),
        }
    }
}

/// Whether `id` is scheduled at `key` in `slot`: its mark says so.
fn scheduled(
    core: &Correlator<Mark>,
    config: &LiveConfig,
    slot: Slot,
    key: Timestamp,
    id: &SessionId,
) -> bool {
    core.extra(id).is_some_and(|mark| {
        let rules = Rules {
            config,
            orgs: core.orgs(),
        };
        rules.schedule(mark).0[slot as usize] == Some(key)
    })
}

#[derive(Debug)]
pub struct Live {
    config: LiveConfig,
    /// Every session's records, with its mark in the same table entry.
    core: Correlator<Mark>,
    /// Every session's schedule (see [`Slot`]): settle and orphan settle on event time, woken
    /// by the low watermark; holds, orphan holds, deadlines and expiries on the sidecar's
    /// clock.
    sets: Sets,
    /// Each source's largest event time, and which sources are active.
    watermarks: Watermarks,
    /// While set, nothing settles (see [`Live::hold`]).
    holding: bool,
}

impl Live {
    pub fn new(config: LiveConfig) -> Live {
        Live {
            core: Correlator::with_extras(config.correlate.clone()),
            sets: Sets::default(),
            watermarks: Watermarks::new(config.idle_after_ms),
            holding: false,
            config,
        }
    }

    /// Suspends settling altogether while `on` (tests, and whoever must judge on all the
    /// evidence at once); [`Live::release`] then judges everything waiting.
    pub fn hold(&mut self, on: bool) {
        self.holding = on;
    }

    /// Judges every session waiting to settle on all the evidence now known.
    pub fn release(&mut self) -> Vec<Change> {
        let mut out = Vec::new();
        while let Some(id) = self.pop_due(Slot::Settle, END_OF_TIME) {
            self.run(&id, Some(Slot::Settle), &mut out, |r, m, id, s, out| {
                r.evaluate(m, id, s, END_OF_TIME, false, out)
            });
        }
        out
    }

    /// Source `input` delivered a batch (or announced itself, before its first line) at
    /// `now`; `backlog` when it has more to read at once. A known source holds the watermark
    /// until it delivers or goes idle.
    pub fn source_seen(&mut self, input: u16, now: Timestamp, backlog: bool) {
        self.watermarks.seen(input, now, backlog);
    }

    /// The event time up to which evidence counts as settled at `now`.
    pub fn low_watermark(&self, now: Timestamp) -> Timestamp {
        self.watermarks.low(now)
    }

    /// Each source's watermark.
    pub fn watermarks(&self) -> &Watermarks {
        &self.watermarks
    }

    /// How long a session is kept after it was first seen.
    pub fn retention_ms(&self) -> i64 {
        self.config.retention_ms
    }

    /// The batch correlator underneath: records, daemons, stats, watermark.
    pub fn core(&self) -> &Correlator<Mark> {
        &self.core
    }

    /// Runs one rule on `id`'s mark and records, `popped` being the slot whose entry was
    /// just taken out of its set, and moves the session's entries where the rule
    /// rescheduled it. Nothing happens for a session no longer held.
    fn run(
        &mut self,
        id: &SessionId,
        popped: Option<Slot>,
        out: &mut Vec<Change>,
        rule: impl FnOnce(&Rules<'_>, &mut Mark, &SessionId, &Session, &mut Vec<Change>),
    ) {
        let Some((session, mark, orgs)) = self.core.held_mut(id) else {
            return;
        };
        if let Some(slot) = popped {
            slot.clear(mark);
        }
        let rules = Rules {
            config: &self.config,
            orgs,
        };
        let before = rules.schedule(mark);
        rule(&rules, mark, id, session, out);
        let after = rules.schedule(mark);
        self.sync(id, before, after);
    }

    /// Moves `id`'s entries in the sets from `before` to `after` (its mark's schedule now).
    fn sync(&mut self, id: &SessionId, before: Schedule, after: Schedule) {
        let (core, config) = (&self.core, &self.config);
        self.sets.sync(id, before, after, &|s, k, id| {
            scheduled(core, config, s, k, id)
        });
    }

    /// The first live entry of `slot` due by `at`, taken out.
    fn pop_due(&mut self, slot: Slot, at: Timestamp) -> Option<SessionId> {
        let (core, config) = (&self.core, &self.config);
        self.sets
            .pop_due(slot, at, &|s, k, id| scheduled(core, config, s, k, id))
    }

    /// `id`'s line was replayed from a store an earlier run wrote: its outcome row may hold
    /// what that run judged, so its judgements set the dispatch columns again
    /// ([`Mark::refile`]).
    pub fn replayed(&mut self, id: &SessionId) {
        if let Some((_, mark, _)) = self.core.held_mut(id) {
            mark.refile = true;
        }
    }

    /// Takes one event received at `now`. Returns `None` for an exact re-delivery.
    pub fn on_event(&mut self, ev: Event, origin: Origin, now: Timestamp) -> Option<Vec<Change>> {
        let (kind, runner, time) = (ev.kind, ev.runner, ev.time);
        let org = ev.org.as_ref().map(|o| o.to_string());
        let id = match (&ev.session, kind) {
            (Some(id), k) if k != EventKind::Heartbeat => Some(id.clone()),
            _ => None,
        };
        let filed = match self.core.accept(ev, origin) {
            Accepted::Redelivered => return None,
            Accepted::OtherOrg => {
                if let Some((_, mark, _)) = id.as_ref().and_then(|id| self.core.held_mut(id)) {
                    mark.refile = true;
                }
                return None;
            }
            Accepted::Unfiled => None,
            Accepted::Filed(f) => Some(f),
        };
        self.watermarks.event(origin.input, time, now);
        let mut out = Vec::new();
        let (Some(id), Some(filed)) = (id, filed) else {
            self.settle(now, &mut out);
            return Some(out);
        };
        // A session evicted as soon as it was made has no mark yet: it is judged on a fresh
        // one with the rest of the evicted (the expiry a mark made now would have scheduled
        // is dropped with it).
        if let Some((session, mark)) = filed.held {
            let rules = Rules {
                config: &self.config,
                orgs: filed.orgs,
            };
            // A new session is scheduled in one move, from nowhere to where its first
            // record puts it.
            if filed.created {
                *mark = rules.new_mark(now);
            }
            let before = match filed.created {
                true => Schedule::default(),
                false => rules.schedule(mark),
            };
            let arrival = Arrival {
                kind,
                runner,
                time,
                org: org.as_deref(),
            };
            rules.on_record(mark, &id, session, arrival, now, &mut out);
            let after = rules.schedule(mark);
            self.sync(&id, before, after);
        }
        self.settle(now, &mut out);
        self.evict(&mut out);
        Some(out)
    }

    /// Sessions the core evicted at its cap: each judged now on all its evidence so far (as
    /// `verify` judges an evicted session), then forgotten.
    fn evict(&mut self, out: &mut Vec<Change>) {
        for e in self.core.take_evicted() {
            let lines = e.session.records().iter().map(|r| r.origin()).collect();
            // Judged as the core held it (one over the cap for this instant), then dropped.
            self.core.restore(e.id.clone(), e.session, e.extra);
            self.run(&e.id, None, out, |r, m, id, s, out| {
                r.evaluate(m, id, s, END_OF_TIME, false, out)
            });
            out.push(Change::Evicted {
                session: e.id.clone(),
                lines,
            });
            self.drop_session(e.id, false, out);
        }
    }

    /// Forgets `id` (`expired`: its expiry entry was just popped): its share of the totals
    /// handed over, its gauges released.
    fn drop_session(&mut self, id: SessionId, expired: bool, out: &mut Vec<Change>) {
        if let Some(mut mark) = self.core.forget(&id) {
            let rules = Rules {
                config: &self.config,
                orgs: self.core.orgs(),
            };
            let mut before = rules.schedule(&mark);
            if expired {
                before.0[Slot::Expiry as usize] = None;
            }
            rules.forget(&mut mark, &id, out);
            // Gone from every set, the expiry (which the mark cannot drop) included.
            self.sync(&id, before, Schedule::default());
        }
        out.push(Change::Forgotten { session: id });
    }

    /// Judges what has settled by `now`: sessions whose next records the low watermark has
    /// passed (plus the allowed lateness), then those held for the maximum hold.
    fn settle(&mut self, now: Timestamp, out: &mut Vec<Change>) {
        if self.holding {
            return;
        }
        let low = self.watermarks.settled(now);
        let through = low.saturating_add_ms(-self.config.allowed_lateness_ms);
        while let Some(id) = self.pop_due(Slot::Settle, low) {
            self.run(&id, Some(Slot::Settle), out, |r, m, id, s, out| {
                r.evaluate(m, id, s, through, false, out)
            });
        }
        while let Some(id) = self.pop_due(Slot::Hold, now) {
            self.run(&id, Some(Slot::Hold), out, |r, m, id, s, out| {
                r.evaluate(m, id, s, END_OF_TIME, true, out)
            });
        }
        while let Some(id) = self.pop_due(Slot::OrphanSettle, low) {
            self.run(&id, Some(Slot::OrphanSettle), out, |r, m, id, s, out| {
                r.orphan(m, id, s, false, out)
            });
        }
        while let Some(id) = self.pop_due(Slot::OrphanHold, now) {
            self.run(&id, Some(Slot::OrphanHold), out, |r, m, id, s, out| {
                r.orphan(m, id, s, true, out)
            });
        }
    }

    /// Everything whose time has come by `now`: settled and held-too-long sessions and
    /// orphans, overdue sessions, forgotten sessions.
    pub fn on_tick(&mut self, now: Timestamp) -> Vec<Change> {
        let mut out = Vec::new();
        // Sources go idle and holds expire with the sidecar's clock alone.
        self.settle(now, &mut out);
        while let Some(id) = self.pop_due(Slot::Deadline, now) {
            self.run(&id, Some(Slot::Deadline), &mut out, |r, m, id, s, out| {
                r.deadline(m, id, s, out)
            });
        }
        while let Some(id) = self.pop_due(Slot::Expiry, now) {
            self.drop_session(id, true, &mut out);
        }
        out
    }

    /// When the next tick has work to do, if ever.
    pub fn next_due(&self) -> Option<Timestamp> {
        [Slot::Deadline, Slot::OrphanHold, Slot::Expiry, Slot::Hold]
            .iter()
            .filter_map(|&s| self.sets.first_key(s))
            .min()
    }
}

#[cfg(test)]
mod tests;
