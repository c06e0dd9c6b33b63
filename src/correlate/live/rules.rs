//! The per-session rules of live correlation: pure functions over one session's [`Mark`] and
//! its records ([`Session`]), so the in-process [`super::Live`] and a shared state (issue 13:
//! marks and records in Redis, judged by whichever replica sweeps them) run the same rules.
//!
//! A mark records its own schedule: the keys it wants in each time-ordered set
//! ([`Schedule`]). A caller takes [`Rules::schedule`] before and after a rule and moves the
//! session's entries where they changed; the rules never see the sets. Whoever pops an entry
//! from a set clears the matching key in the mark first ([`Slot::clear`]), so the mark and the
//! sets agree.
//!
//! Nothing here does I/O or reads a clock: `now` is an argument.

use super::super::intern::Interner;
use super::super::session::{Record, Session};
use super::super::{ClaimTimeouts, Judgement};
use super::{Change, Counted, LiveConfig};
use crate::event::{EventKind, Runner, SessionId, Timestamp};

/// What the live side remembers of a session beyond its records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mark {
    pub first_seen: Timestamp,
    pub dispatched: bool,
    /// What the counters hold for it.
    pub counted: Counted,
    pub judged: bool,
    pub pending: Option<Runner>,
    pub overdue: Option<Runner>,
    pub duplicate: bool,
    /// Its outcome row may hold other dispatch columns (org, runner, dispatch time) than its
    /// next judgement's, which must then set them again: a second dispatch arrived, an
    /// earlier copy of its dispatch named another org, or its lines were replayed (an earlier
    /// run wrote the row). Until then every write of the row carried its one dispatch's.
    pub refile: bool,
    pub reclaims: u32,
    /// Claims already reported as orphans; once set, further claims are orphans at once.
    pub orphan_claims: Option<u32>,
    /// Records stamped up to here have been judged.
    pub settled_through: MaybeTime,
    /// Its key in the settle set (event time: judged when the low watermark reaches it).
    pub settle_key: MaybeTime,
    /// Its key in the hold set (sidecar clock: judged then, settled or not).
    pub hold_until: MaybeTime,
    /// Its keys in the orphan settle (event time) and orphan hold (sidecar clock) sets while
    /// it has claims, no dispatch, and is not yet judged an orphan.
    pub orphan_key: MaybeTime,
    pub orphan_hold: MaybeTime,
    /// Its key in the deadline set (sidecar clock: receive time of the dispatch + T), from
    /// its first dispatch with no claim until the deadline is swept.
    pub deadline: MaybeTime,
}

/// An optional time in the 8 bytes of a [`Timestamp`], where `Option<Timestamp>` takes 16: a
/// [`Mark`] holds six, and every live session holds a mark in the correlator's table (a
/// 256-byte entry with them as options, 208 without; 300,000 sessions in flight want a table
/// of 2^19 entries). `Timestamp::MIN` stands for none. No key is ever that time: parsed times
/// stay within chrono's years, the sidecar clock is wall time, and keys are such times plus a
/// bounded delay. Were `settled_through` ever that time (a judgement through the watermark
/// before any source delivered), it would mean what none means there: it is only ever the
/// lower bound of a `max`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct MaybeTime(Timestamp);

impl MaybeTime {
    pub const NONE: MaybeTime = MaybeTime(Timestamp::MIN);

    pub fn get(self) -> Option<Timestamp> {
        (self != MaybeTime::NONE).then_some(self.0)
    }

    pub fn is_none(self) -> bool {
        self == MaybeTime::NONE
    }
}

impl Default for MaybeTime {
    fn default() -> MaybeTime {
        MaybeTime::NONE
    }
}

impl From<Timestamp> for MaybeTime {
    /// `Timestamp::MIN` reads back as none.
    fn from(t: Timestamp) -> MaybeTime {
        MaybeTime(t)
    }
}

impl From<Option<Timestamp>> for MaybeTime {
    fn from(t: Option<Timestamp>) -> MaybeTime {
        t.map_or(MaybeTime::NONE, MaybeTime::from)
    }
}

impl std::fmt::Debug for MaybeTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.get().fmt(f)
    }
}

/// The time-ordered sets a session can be scheduled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Slot {
    /// Event time: its next unsettled record + the allowed lateness.
    Settle,
    /// Event time: its first claim + the orphan grace + the allowed lateness.
    OrphanSettle,
    /// Sidecar clock: first unsettled arrival + the maximum hold.
    Hold,
    /// Sidecar clock: first claim's arrival + the orphan grace + the maximum hold.
    OrphanHold,
    /// Sidecar clock: the dispatch's receive time + T.
    Deadline,
    /// Sidecar clock: first seen + the retention.
    Expiry,
}

impl Slot {
    pub const ALL: [Slot; 6] = [
        Slot::Settle,
        Slot::OrphanSettle,
        Slot::Hold,
        Slot::OrphanHold,
        Slot::Deadline,
        Slot::Expiry,
    ];

    /// Whether the slot's keys are event times (woken by the low watermark) rather than the
    /// sidecar's clock.
    pub fn on_event_time(self) -> bool {
        matches!(self, Slot::Settle | Slot::OrphanSettle)
    }

    /// Forgets `mark`'s key in this slot: its entry was popped from the set. (The expiry
    /// follows from `first_seen`; it is popped only to forget the session.)
    pub fn clear(self, mark: &mut Mark) {
        match self {
            Slot::Settle => mark.settle_key = MaybeTime::NONE,
            Slot::OrphanSettle => mark.orphan_key = MaybeTime::NONE,
            Slot::Hold => mark.hold_until = MaybeTime::NONE,
            Slot::OrphanHold => mark.orphan_hold = MaybeTime::NONE,
            Slot::Deadline => mark.deadline = MaybeTime::NONE,
            Slot::Expiry => {}
        }
    }
}

/// A mark's key in each slot (`None`: not scheduled there), in [`Slot::ALL`]'s order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Schedule(pub [Option<Timestamp>; 6]);

impl Schedule {
    /// The slots whose key changed from `self` to `after`: (slot, old key, new key).
    pub fn moves(
        self,
        after: Schedule,
    ) -> impl Iterator<Item = (Slot, Option<Timestamp>, Option<Timestamp>)> {
        Slot::ALL
            .into_iter()
            .zip(self.0.into_iter().zip(after.0))
            .filter(|(_, (a, b))| a != b)
            .map(|(s, (a, b))| (s, a, b))
    }
}

/// The configuration and names the rules read.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    pub config: &'a LiveConfig,
    /// The org names the records' dispatch ids stand for.
    pub orgs: &'a Interner,
}

/// One fresh event of a session, as [`Rules::on_record`] needs it.
#[derive(Debug, Clone, Copy)]
pub struct Arrival<'a> {
    pub kind: EventKind,
    pub runner: Runner,
    pub time: Timestamp,
    /// The event's own org (a dispatch's), for [`Change::Dispatched`].
    pub org: Option<&'a str>,
}

impl Rules<'_> {
    fn timeouts(&self) -> &ClaimTimeouts {
        &self.config.correlate.timeouts
    }

    /// A session first seen at `now`.
    pub fn new_mark(&self, now: Timestamp) -> Mark {
        Mark {
            first_seen: now,
            ..Mark::default()
        }
    }

    /// Where `mark` is scheduled.
    pub fn schedule(&self, mark: &Mark) -> Schedule {
        Schedule([
            mark.settle_key.get(),
            mark.orphan_key.get(),
            mark.hold_until.get(),
            mark.orphan_hold.get(),
            mark.deadline.get(),
            Some(mark.first_seen.saturating_add_ms(self.config.retention_ms)),
        ])
    }

    /// A fresh event of session `id` received at `now` (already in `session`): the changes
    /// it causes at once, and what it schedules.
    pub fn on_record(
        &self,
        mark: &mut Mark,
        id: &SessionId,
        session: &Session,
        ev: Arrival<'_>,
        now: Timestamp,
        out: &mut Vec<Change>,
    ) {
        let Arrival {
            kind,
            runner,
            time,
            org,
        } = ev;
        let j = session.judge(self.timeouts(), Timestamp::MIN);
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
        if kind == EventKind::Dispatch && mark.dispatched {
            mark.refile = true;
        }
        if kind == EventKind::Dispatch && !mark.dispatched {
            mark.dispatched = true;
            // Dispatched: none of its claims is an orphan (unless already judged so).
            mark.orphan_key = MaybeTime::NONE;
            mark.orphan_hold = MaybeTime::NONE;
            let runner = j.dispatch.map_or(runner, |d| d.runner);
            mark.counted.dispatched = Some(runner);
            out.push(Change::Dispatched {
                session: id.clone(),
                first_seen: mark.first_seen,
                runner,
                org: org.map(str::to_owned),
                at: j.dispatch.map_or(Timestamp::MIN, |d| d.time),
            });
            if j.first_claim.is_none() {
                mark.pending = Some(runner);
                mark.deadline =
                    MaybeTime::from(now.saturating_add_ms(self.timeouts().millis(runner)));
                out.push(Change::PendingStarted { runner });
            }
        }
        if kind == EventKind::Claim && !mark.dispatched && mark.orphan_claims.is_none() {
            let key = time
                .saturating_add_ms(self.config.orphan_grace_ms)
                .saturating_add_ms(self.config.allowed_lateness_ms);
            if mark.orphan_key.get().is_none_or(|k| key < k) {
                mark.orphan_key = MaybeTime::from(key);
            }
            if mark.orphan_hold.is_none() {
                mark.orphan_hold = MaybeTime::from(
                    now.saturating_add_ms(self.config.orphan_grace_ms)
                        .saturating_add_ms(self.config.max_hold_ms),
                );
            }
        }
        if matches!(
            kind,
            EventKind::Dispatch | EventKind::Claim | EventKind::Release
        ) {
            let key = time.saturating_add_ms(self.config.allowed_lateness_ms);
            if mark.settle_key.get().is_none_or(|k| key < k) {
                mark.settle_key = MaybeTime::from(key);
            }
            if mark.hold_until.is_none() {
                mark.hold_until = MaybeTime::from(now.saturating_add_ms(self.config.max_hold_ms));
            }
        }
    }

    /// Judges `id`'s claims orphans (its dispatch never came), once: every claim so far, and
    /// from then on each further claim as it arrives.
    pub fn orphan(
        &self,
        mark: &mut Mark,
        id: &SessionId,
        session: &Session,
        early: bool,
        out: &mut Vec<Change>,
    ) {
        mark.orphan_key = MaybeTime::NONE;
        mark.orphan_hold = MaybeTime::NONE;
        if mark.dispatched || mark.orphan_claims.is_some() {
            return;
        }
        let claims: Vec<Runner> = session
            .records()
            .iter()
            .filter(|r| r.kind == EventKind::Claim)
            .map(|r| r.runner)
            .collect();
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
    pub fn evaluate(
        &self,
        mark: &mut Mark,
        id: &SessionId,
        session: &Session,
        through: Timestamp,
        early: bool,
        out: &mut Vec<Change>,
    ) {
        let records = session.records();
        let through = mark
            .settled_through
            .get()
            .map_or(through, |t| t.max(through));
        let last = records.last().map_or(Timestamp::MIN, |r| r.time);
        let j = if last <= through {
            session.judge(self.timeouts(), Timestamp::MIN)
        } else {
            let mut prefix = Session::default();
            for r in records.iter().take_while(|r| r.time <= through) {
                prefix.insert(*r);
            }
            prefix.judge(self.timeouts(), Timestamp::MIN)
        };
        let org = j.dispatch.and_then(|d| self.orgs.name(d.extra));
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
                first_seen: mark.first_seen,
                runtime: first_duplicate_runtime(settled),
                cross_runtime: j.duplicate_cross_runtime,
                org: org.map(str::to_owned),
            });
        }
        if j.duplicate_cross_runtime && mark.duplicate && !mark.counted.duplicate_cross_runtime {
            mark.counted.duplicate_cross_runtime = true;
            out.push(Change::DuplicateCrossRuntime {
                session: id.clone(),
                first_seen: mark.first_seen,
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
                first_seen: mark.first_seen,
                runtime,
                total: n + 1,
            });
        }
        mark.reclaims = mark.reclaims.max(j.reclaims);
        mark.counted.reclaims = mark.reclaims;
        // What was judged is settled for good; a record stamped before it that arrives later
        // still is late evidence, judged as it comes.
        let through = through.min(last);
        mark.settled_through = MaybeTime::from(through);
        // The next record to settle, if one is stamped later.
        match records.iter().find(|r| r.time > through).map(|r| r.time) {
            Some(t) => {
                mark.settle_key =
                    MaybeTime::from(t.saturating_add_ms(self.config.allowed_lateness_ms))
            }
            None => {
                mark.settle_key = MaybeTime::NONE;
                mark.hold_until = MaybeTime::NONE;
            }
        }
    }

    /// `id`'s deadline was swept: overdue if it is still pending and no claim arrived (a
    /// claim that has not settled yet counts as claimed).
    pub fn deadline(
        &self,
        mark: &mut Mark,
        id: &SessionId,
        session: &Session,
        out: &mut Vec<Change>,
    ) {
        let claimed = session.records().iter().any(|r| r.kind == EventKind::Claim);
        if claimed {
            return;
        }
        let Some(runner) = mark.pending.take() else {
            return;
        };
        mark.overdue = Some(runner);
        let dispatch = session.judge(self.timeouts(), Timestamp::MIN).dispatch;
        out.push(Change::PendingEnded { runner });
        out.push(Change::Overdue {
            session: id.clone(),
            first_seen: mark.first_seen,
            runner,
            org: dispatch
                .and_then(|d| self.orgs.name(d.extra))
                .map(str::to_owned),
            dispatched_at: dispatch.map_or(Timestamp::MIN, |d| d.time),
            refile: mark.refile,
        });
    }

    /// `id` is being forgotten: its share of the totals handed over, its gauges released,
    /// nothing scheduled any more. ([`Change::Forgotten`] is the caller's, once the records
    /// are gone too.)
    pub fn forget(&self, mark: &mut Mark, id: &SessionId, out: &mut Vec<Change>) {
        out.push(Change::Retired(mark.counted));
        if let Some(runner) = mark.pending.take() {
            out.push(Change::PendingEnded { runner });
        }
        if let Some(runner) = mark.overdue.take() {
            out.push(Change::OverdueForgotten {
                session: id.clone(),
                runner,
            });
        }
        for slot in Slot::ALL {
            slot.clear(mark);
        }
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
        first_seen: mark.first_seen,
        runner: d.runner,
        org: org.map(str::to_owned),
        dispatched_at: d.time,
        outcome,
        latency_ms: j.latency_ms,
        skew_clamped: j.skew_clamped,
        refile: mark.refile,
    });
}

/// The runtime of the claim that first followed another with no release between.
fn first_duplicate_runtime(records: &[Record]) -> Runner {
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
