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

use rustc_hash::FxHashMap;

use super::session::Session;
use super::{CorrelateConfig, Correlator, Judgement, Outcome};
use crate::event::{Event, EventKind, Origin, Runner, SessionId, Timestamp};

pub mod watermark;
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
            // No lateness: with one source in time order, a claim settles as it arrives.
            // `serve` configures a few seconds.
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
        runner: Runner,
        /// The dispatch's org, so no consumer reaches back into the correlator for it.
        org: Option<String>,
        /// The dispatch's event time.
        dispatched_at: Timestamp,
        outcome: Outcome,
        latency_ms: Option<i64>,
        skew_clamped: bool,
    },
    /// No claim by receive time + T (unclaimed gauge up, deadline-missed counter up, alert).
    Overdue {
        session: SessionId,
        runner: Runner,
        org: Option<String>,
        /// The dispatch's event time.
        dispatched_at: Timestamp,
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
        runtime: Runner,
        cross_runtime: bool,
        /// The dispatch's org, when the session was dispatched.
        org: Option<String>,
    },
    /// A session already reported duplicate turned out to be claimed twice across runtimes
    /// too (a later-settled claim from the other runtime).
    DuplicateCrossRuntime {
        session: SessionId,
        org: Option<String>,
    },
    /// A claim after a release: the session's `total`-th.
    Reclaimed {
        session: SessionId,
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

/// What the live side remembers of a session beyond its records.
#[derive(Debug, Clone, Default)]
struct Mark {
    first_seen: Timestamp,
    dispatched: bool,
    /// What the counters hold for it.
    counted: Counted,
    judged: bool,
    pending: Option<Runner>,
    overdue: Option<Runner>,
    duplicate: bool,
    reclaims: u32,
    /// Claims already reported as orphans; once set, further claims are orphans at once.
    orphan_claims: Option<u32>,
    /// Records stamped up to here have been judged; its key in `Live::settle`, if any.
    settled_through: Option<Timestamp>,
    settle_key: Option<Timestamp>,
    /// Its key in `Live::holds`, if any.
    hold_until: Option<Timestamp>,
    /// Its keys in `Live::orphan_settle` (event time) and `Live::orphan_holds` (sidecar
    /// clock) while it has claims, no dispatch, and is not yet judged an orphan.
    orphan_key: Option<Timestamp>,
    orphan_hold: Option<Timestamp>,
}

#[derive(Debug)]
pub struct Live {
    config: LiveConfig,
    core: Correlator,
    marks: FxHashMap<SessionId, Mark>,
    /// (receive time + T, session) for dispatched sessions with no claim yet.
    deadlines: BTreeSet<(Timestamp, SessionId)>,
    /// (first claim's time + grace + allowed lateness, session) for claims with no dispatch
    /// yet: judged orphans when the low watermark reaches it.
    orphan_settle: BTreeSet<(Timestamp, SessionId)>,
    /// (first claim's arrival + grace + max hold, session), on the sidecar's clock.
    orphan_holds: BTreeSet<(Timestamp, SessionId)>,
    /// (first seen + retention, session).
    expiries: BTreeSet<(Timestamp, SessionId)>,
    /// Each source's largest event time, and which sources are active.
    watermarks: Watermarks,
    /// (earliest unsettled record's time + allowed lateness, session): judged when the low
    /// watermark reaches it.
    settle: BTreeSet<(Timestamp, SessionId)>,
    /// (first unsettled arrival + max hold, session), on the sidecar's clock.
    holds: BTreeSet<(Timestamp, SessionId)>,
    /// While set, nothing settles (see [`Live::hold`]).
    holding: bool,
}

impl Live {
    pub fn new(config: LiveConfig) -> Live {
        Live {
            core: Correlator::new(config.correlate.clone()),
            marks: FxHashMap::default(),
            deadlines: BTreeSet::new(),
            orphan_settle: BTreeSet::new(),
            orphan_holds: BTreeSet::new(),
            expiries: BTreeSet::new(),
            watermarks: Watermarks::new(config.idle_after_ms),
            settle: BTreeSet::new(),
            holds: BTreeSet::new(),
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
        while let Some((_, id)) = self.settle.pop_first() {
            if let Some(mark) = self.marks.get_mut(&id) {
                mark.settle_key = None;
            }
            self.evaluate(&id, END_OF_TIME, false, &mut out);
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
    pub fn core(&self) -> &Correlator {
        &self.core
    }

    /// Takes one event received at `now`. Returns `None` for an exact re-delivery.
    pub fn on_event(&mut self, ev: Event, origin: Origin, now: Timestamp) -> Option<Vec<Change>> {
        let (kind, runner, time) = (ev.kind, ev.runner, ev.time);
        let org = ev.org.as_ref().map(|o| o.to_string());
        let id = match (&ev.session, kind) {
            (Some(id), k) if k != EventKind::Heartbeat => Some(id.clone()),
            _ => None,
        };
        if !self.core.on_event(ev, origin) {
            return None;
        }
        self.watermarks.event(origin.input, time, now);
        let mut out = Vec::new();
        let Some(id) = id else {
            self.settle(now, &mut out);
            return Some(out);
        };
        if !self.marks.contains_key(&id) {
            self.expiries
                .insert((now.saturating_add_ms(self.config.retention_ms), id.clone()));
        }
        let mark = self.marks.entry(id.clone()).or_insert_with(|| Mark {
            first_seen: now,
            ..Mark::default()
        });
        let Some(session) = self.core.session(&id) else {
            return Some(out);
        };
        let j = session.judge(self.core.timeouts(), Timestamp::MIN);

        if kind == EventKind::Claim {
            out.push(Change::Claimed { runtime: runner });
            if let Some(n) = mark.orphan_claims.as_mut() {
                *n += 1;
                mark.counted.orphan_claims += 1;
                out.push(Change::Orphan {
                    session: id.clone(),
                    runtime: runner,
                    claim: *n,
                });
            }
        }
        if kind == EventKind::Dispatch && !mark.dispatched {
            mark.dispatched = true;
            // Dispatched: none of its claims is an orphan (unless already judged so).
            unschedule_orphan(&mut self.orphan_settle, &mut self.orphan_holds, mark, &id);
            let runner = j.dispatch.map_or(runner, |d| d.runner);
            mark.counted.dispatched = Some(runner);
            out.push(Change::Dispatched {
                session: id.clone(),
                runner,
                org,
                at: j.dispatch.map_or(Timestamp::MIN, |d| d.time),
            });
            if j.first_claim.is_none() {
                mark.pending = Some(runner);
                let t = self.config.correlate.timeouts.millis(runner);
                self.deadlines
                    .insert((now.saturating_add_ms(t), id.clone()));
                out.push(Change::PendingStarted { runner });
            }
        }
        if kind == EventKind::Claim && !mark.dispatched && mark.orphan_claims.is_none() {
            let key = time
                .saturating_add_ms(self.config.orphan_grace_ms)
                .saturating_add_ms(self.config.allowed_lateness_ms);
            if mark.orphan_key.is_none_or(|k| key < k) {
                if let Some(k) = mark.orphan_key.replace(key) {
                    self.orphan_settle.remove(&(k, id.clone()));
                }
                self.orphan_settle.insert((key, id.clone()));
            }
            if mark.orphan_hold.is_none() {
                let until = now
                    .saturating_add_ms(self.config.orphan_grace_ms)
                    .saturating_add_ms(self.config.max_hold_ms);
                mark.orphan_hold = Some(until);
                self.orphan_holds.insert((until, id.clone()));
            }
        }
        if matches!(
            kind,
            EventKind::Dispatch | EventKind::Claim | EventKind::Release
        ) {
            let key = time.saturating_add_ms(self.config.allowed_lateness_ms);
            if mark.settle_key.is_none_or(|k| key < k) {
                if let Some(k) = mark.settle_key.replace(key) {
                    self.settle.remove(&(k, id.clone()));
                }
                self.settle.insert((key, id.clone()));
            }
            if mark.hold_until.is_none() {
                let until = now.saturating_add_ms(self.config.max_hold_ms);
                mark.hold_until = Some(until);
                self.holds.insert((until, id.clone()));
            }
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
            self.core.restore(e.id.clone(), e.session);
            self.evaluate(&e.id, END_OF_TIME, false, out);
            out.push(Change::Evicted {
                session: e.id.clone(),
                lines,
            });
            self.drop_session(e.id, out);
        }
    }

    /// Forgets `id`: its share of the totals handed over, its gauges released.
    fn drop_session(&mut self, id: SessionId, out: &mut Vec<Change>) {
        if let Some(mut mark) = self.marks.remove(&id) {
            out.push(Change::Retired(mark.counted));
            if let Some(k) = mark.settle_key {
                self.settle.remove(&(k, id.clone()));
            }
            if let Some(t) = mark.hold_until {
                self.holds.remove(&(t, id.clone()));
            }
            unschedule_orphan(
                &mut self.orphan_settle,
                &mut self.orphan_holds,
                &mut mark,
                &id,
            );
            self.expiries.remove(&(
                mark.first_seen.saturating_add_ms(self.config.retention_ms),
                id.clone(),
            ));
            if let Some(runner) = mark.pending {
                out.push(Change::PendingEnded { runner });
            }
            if let Some(runner) = mark.overdue {
                out.push(Change::OverdueForgotten {
                    session: id.clone(),
                    runner,
                });
            }
        }
        self.core.forget(&id);
        out.push(Change::Forgotten { session: id });
    }

    /// Judges what has settled by `now`: sessions whose next records the low watermark has
    /// passed (plus the allowed lateness), then those held for the maximum hold.
    fn settle(&mut self, now: Timestamp, out: &mut Vec<Change>) {
        if self.holding {
            return;
        }
        let low = self.watermarks.low(now);
        let through = low.saturating_add_ms(-self.config.allowed_lateness_ms);
        while let Some((_, id)) = pop_due(&mut self.settle, low) {
            if let Some(mark) = self.marks.get_mut(&id) {
                mark.settle_key = None;
            }
            self.evaluate(&id, through, false, out);
        }
        while let Some((_, id)) = pop_due(&mut self.holds, now) {
            if let Some(mark) = self.marks.get_mut(&id) {
                mark.hold_until = None;
            }
            self.evaluate(&id, END_OF_TIME, true, out);
        }
        while let Some((_, id)) = pop_due(&mut self.orphan_settle, low) {
            self.orphan(&id, false, out);
        }
        while let Some((_, id)) = pop_due(&mut self.orphan_holds, now) {
            self.orphan(&id, true, out);
        }
    }

    /// Judges `id`'s claims orphans (its dispatch never came), once: every claim so far, and
    /// from then on each further claim as it arrives.
    fn orphan(&mut self, id: &SessionId, early: bool, out: &mut Vec<Change>) {
        let Some(mark) = self.marks.get_mut(id) else {
            return;
        };
        unschedule_orphan(&mut self.orphan_settle, &mut self.orphan_holds, mark, id);
        if mark.dispatched || mark.orphan_claims.is_some() {
            return;
        }
        let claims: Vec<Runner> = self.core.session(id).map_or(Vec::new(), |s| {
            s.records()
                .iter()
                .filter(|r| r.kind == EventKind::Claim)
                .map(|r| r.runner)
                .collect()
        });
        let n = u32::try_from(claims.len()).unwrap_or(u32::MAX);
        mark.orphan_claims = Some(n);
        mark.counted.orphan_claims = mark.counted.orphan_claims.saturating_add(n);
        if early && n > 0 {
            out.push(Change::JudgedBeforeSettled);
        }
        out.extend((1..).zip(claims).map(|(claim, runtime)| Change::Orphan {
            session: id.clone(),
            runtime,
            claim,
        }));
    }

    /// Judges `id` on its records stamped up to `through` (all of them when `early`): the
    /// outcome once dispatch and first claim are in, duplicates and re-claims as they show.
    fn evaluate(&mut self, id: &SessionId, through: Timestamp, early: bool, out: &mut Vec<Change>) {
        let (Some(mark), Some(session)) = (self.marks.get_mut(id), self.core.session(id)) else {
            return;
        };
        let records = session.records();
        let through = mark.settled_through.map_or(through, |t| t.max(through));
        let last = records.last().map_or(Timestamp::MIN, |r| r.time);
        let j = if last <= through {
            session.judge(self.core.timeouts(), Timestamp::MIN)
        } else {
            let mut prefix = Session::default();
            for r in records.iter().take_while(|r| r.time <= through) {
                prefix.insert(*r);
            }
            prefix.judge(self.core.timeouts(), Timestamp::MIN)
        };
        let org = j.dispatch.and_then(|d| self.core.org_name(d.extra));
        let settled = &records[..records.partition_point(|r| r.time <= through)];
        if early && j.dispatch.is_some() && j.first_claim.is_some() && !mark.judged {
            out.push(Change::JudgedBeforeSettled);
        }
        judged(mark, id, &j, org, out);
        if j.duplicate && !mark.duplicate {
            mark.duplicate = true;
            mark.counted.duplicate = true;
            mark.counted.duplicate_cross_runtime = j.duplicate_cross_runtime;
            out.push(Change::Duplicate {
                session: id.clone(),
                runtime: first_duplicate_runtime(settled),
                cross_runtime: j.duplicate_cross_runtime,
                org: org.map(str::to_owned),
            });
        }
        if j.duplicate_cross_runtime && mark.duplicate && !mark.counted.duplicate_cross_runtime {
            mark.counted.duplicate_cross_runtime = true;
            out.push(Change::DuplicateCrossRuntime {
                session: id.clone(),
                org: org.map(str::to_owned),
            });
        }
        let runtime = settled
            .iter()
            .rev()
            .find(|r| r.kind == EventKind::Claim)
            .map_or(Runner::Other, |r| r.runner);
        for n in mark.reclaims..j.reclaims {
            out.push(Change::Reclaimed {
                session: id.clone(),
                runtime,
                total: n + 1,
            });
        }
        mark.reclaims = mark.reclaims.max(j.reclaims);
        mark.counted.reclaims = mark.reclaims;
        // What was judged is settled for good; a record stamped before it that arrives later
        // still is late evidence, judged as it comes.
        let through = through.min(last);
        mark.settled_through = Some(through);
        // The next record to settle, if one is stamped later.
        let next = records.iter().find(|r| r.time > through).map(|r| r.time);
        match next {
            Some(t) => {
                let key = t.saturating_add_ms(self.config.allowed_lateness_ms);
                if let Some(k) = mark.settle_key.replace(key) {
                    self.settle.remove(&(k, id.clone()));
                }
                self.settle.insert((key, id.clone()));
            }
            None => {
                if let Some(k) = mark.settle_key.take() {
                    self.settle.remove(&(k, id.clone()));
                }
                if let Some(t) = mark.hold_until.take() {
                    self.holds.remove(&(t, id.clone()));
                }
            }
        }
    }

    /// Everything whose time has come by `now`: settled and held-too-long sessions and
    /// orphans, overdue sessions, forgotten sessions.
    pub fn on_tick(&mut self, now: Timestamp) -> Vec<Change> {
        let mut out = Vec::new();
        // Sources go idle and holds expire with the sidecar's clock alone.
        self.settle(now, &mut out);
        while let Some((_, id)) = pop_due(&mut self.deadlines, now) {
            // A claim that arrived but has not settled yet: claimed, not overdue.
            let claimed = self
                .core
                .session(&id)
                .is_some_and(|s| s.records().iter().any(|r| r.kind == EventKind::Claim));
            if let Some(mark) = self.marks.get_mut(&id)
                && !claimed
                && let Some(runner) = mark.pending.take()
            {
                mark.overdue = Some(runner);
                out.push(Change::PendingEnded { runner });
                out.push(Change::Overdue {
                    org: org_of(&self.core, &id),
                    dispatched_at: dispatched_at(&self.core, &id),
                    session: id,
                    runner,
                });
            }
        }
        while let Some((_, id)) = pop_due(&mut self.expiries, now) {
            self.drop_session(id, &mut out);
        }
        out
    }

    /// When the next tick has work to do, if ever.
    pub fn next_due(&self) -> Option<Timestamp> {
        [
            &self.deadlines,
            &self.orphan_holds,
            &self.expiries,
            &self.holds,
        ]
        .iter()
        .filter_map(|s| s.first().map(|(t, _)| *t))
        .min()
    }
}

/// The changes of judging `id`, once: its dispatch and first claim are both known.
fn judged(
    mark: &mut Mark,
    id: &SessionId,
    j: &Judgement,
    org: Option<&str>,
    out: &mut Vec<Change>,
) {
    let (Some(d), Some(_), Some(outcome), false) =
        (j.dispatch, j.first_claim, j.outcome, mark.judged)
    else {
        return;
    };
    mark.judged = true;
    mark.counted.outcome = Some(outcome);
    mark.counted.skew_clamped = j.skew_clamped;
    if let Some(r) = mark.pending.take() {
        out.push(Change::PendingEnded { runner: r });
    }
    if let Some(r) = mark.overdue.take() {
        out.push(Change::OverdueResolved {
            session: id.clone(),
            runner: r,
            org: org.map(str::to_owned),
        });
    }
    out.push(Change::Judged {
        session: id.clone(),
        runner: d.runner,
        org: org.map(str::to_owned),
        dispatched_at: d.time,
        outcome,
        latency_ms: j.latency_ms,
        skew_clamped: j.skew_clamped,
    });
}

/// The runtime of the claim that first followed another with no release between.
fn first_duplicate_runtime(records: &[super::session::Record]) -> Runner {
    let mut held = false;
    for r in records {
        match r.kind {
            EventKind::Claim if held => return r.runner,
            EventKind::Claim => held = true,
            EventKind::Release => held = false,
            _ => {}
        }
    }
    Runner::Other
}

/// When `id` was dispatched (event time).
fn dispatched_at(core: &Correlator, id: &SessionId) -> Timestamp {
    core.session(id)
        .and_then(|s| s.judge(core.timeouts(), Timestamp::MIN).dispatch)
        .map_or(Timestamp::MIN, |d| d.time)
}

/// Takes `mark`'s orphan schedule out of both sets: it was dispatched, judged an orphan, or
/// forgotten.
fn unschedule_orphan(
    settle: &mut BTreeSet<(Timestamp, SessionId)>,
    holds: &mut BTreeSet<(Timestamp, SessionId)>,
    mark: &mut Mark,
    id: &SessionId,
) {
    if let Some(k) = mark.orphan_key.take() {
        settle.remove(&(k, id.clone()));
    }
    if let Some(t) = mark.orphan_hold.take() {
        holds.remove(&(t, id.clone()));
    }
}

/// The org `id` was dispatched for, when known.
fn org_of(core: &Correlator, id: &SessionId) -> Option<String> {
    let d = core
        .session(id)?
        .judge(core.timeouts(), Timestamp::MIN)
        .dispatch?;
    core.org_name(d.extra).map(str::to_owned)
}

fn pop_due(
    set: &mut BTreeSet<(Timestamp, SessionId)>,
    now: Timestamp,
) -> Option<(Timestamp, SessionId)> {
    if set.first().is_some_and(|(t, _)| *t <= now) {
        set.pop_first()
    } else {
        None
    }
}

#[cfg(test)]
mod tests;
