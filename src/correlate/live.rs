//! Live correlation for `serve`: the same records and rules as batch, plus what a sidecar
//! must say *as it happens* — each change a metric or an alert cares about.
//!
//! Two clocks, as PRODUCT.md §2 says. Whether a claim was matched, late or mismatched is judged
//! on event times (replaying old logs gives the same answer as watching them). When a session
//! with no claim becomes overdue is judged on the sidecar's own clock: receive time of the
//! dispatch + T, so hosts whose clocks disagree, or a replay of last week, raise no false alarm.
//!
//! A session is judged once, when its dispatch and its first claim have both arrived. A claim
//! that arrives later but is stamped earlier does not change the emitted outcome (counters do
//! not go back); in a replay whose inputs are roughly in time order that never happens.
//!
//! `now` is always an argument: this module does no I/O and reads no clock.

use std::collections::BTreeSet;

use rustc_hash::FxHashMap;

use super::{CorrelateConfig, Correlator, Judgement, Outcome};
use crate::event::{Event, EventKind, Origin, Runner, SessionId, Timestamp};

#[derive(Debug, Clone)]
pub struct LiveConfig {
    pub correlate: CorrelateConfig,
    /// A claim whose session has not been dispatched this long after the claim arrived is an
    /// orphan (the dispatch log may simply be slower than the worker's).
    pub orphan_grace_ms: i64,
    /// A session is forgotten this long after it was first seen (memory stays bounded).
    pub retention_ms: i64,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            correlate: CorrelateConfig::default(),
            orphan_grace_ms: 5 * 60 * 1000,
            retention_ms: 60 * 60 * 1000,
        }
    }
}

/// Something a sink (metrics, alerts) must react to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A session's first dispatch arrived.
    Dispatched { runner: Runner, org: Option<String> },
    /// A distinct claim event arrived.
    Claimed { runtime: Runner },
    /// The session now waits for its first claim (pending gauge up).
    PendingStarted { runner: Runner },
    /// It stopped waiting: claimed, overdue or forgotten (pending gauge down).
    PendingEnded { runner: Runner },
    /// Dispatch and first claim are both known: the outcome, judged on event times.
    Judged {
        session: SessionId,
        runner: Runner,
        /// The dispatch's org, so no consumer reaches back into the correlator for it.
        org: Option<String>,
        outcome: Outcome,
        latency_ms: Option<i64>,
        skew_clamped: bool,
    },
    /// No claim by receive time + T (unclaimed gauge up, deadline-missed counter up, alert).
    Overdue {
        session: SessionId,
        runner: Runner,
        org: Option<String>,
    },
    /// An overdue session was claimed after all (unclaimed gauge down, alert resolved).
    OverdueResolved {
        session: SessionId,
        runner: Runner,
        org: Option<String>,
    },
    /// An overdue session was forgotten unclaimed (unclaimed gauge down).
    OverdueForgotten { session: SessionId, runner: Runner },
    /// The session's evidence was dropped (past retention, or the session cap).
    Forgotten { session: SessionId },
    /// Two claims with no release between them, reported once per session.
    Duplicate {
        session: SessionId,
        runtime: Runner,
        cross_runtime: bool,
        /// The dispatch's org, when the session was dispatched.
        org: Option<String>,
    },
    /// A claim after a release.
    Reclaimed { runtime: Runner },
    /// A claim for a session that was not dispatched within the grace period.
    Orphan { session: SessionId, runtime: Runner },
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

/// What the live side remembers of a session beyond its records.
#[derive(Debug, Clone, Default)]
struct Mark {
    first_seen: Timestamp,
    dispatched: bool,
    judged: bool,
    pending: Option<Runner>,
    overdue: Option<Runner>,
    duplicate: bool,
    reclaims: u32,
    /// Claims already reported as orphans; once set, further claims are orphans at once.
    orphan_claims: Option<u32>,
}

#[derive(Debug)]
pub struct Live {
    config: LiveConfig,
    core: Correlator,
    marks: FxHashMap<SessionId, Mark>,
    /// (receive time + T, session) for dispatched sessions with no claim yet.
    deadlines: BTreeSet<(Timestamp, SessionId)>,
    /// (claim receive time + grace, session) for claims with no dispatch yet.
    orphan_checks: BTreeSet<(Timestamp, SessionId)>,
    /// (first seen + retention, session).
    expiries: BTreeSet<(Timestamp, SessionId)>,
    /// While set, sessions ready to be judged wait in `held` (see [`Live::hold`]).
    holding: bool,
    held: Vec<SessionId>,
}

impl Live {
    pub fn new(config: LiveConfig) -> Live {
        Live {
            core: Correlator::new(config.correlate.clone()),
            config,
            marks: FxHashMap::default(),
            deadlines: BTreeSet::new(),
            orphan_checks: BTreeSet::new(),
            expiries: BTreeSet::new(),
            holding: false,
            held: Vec::new(),
        }
    }

    /// Holds judgements back while some source is still catching up on a backlog: its older
    /// claims may still come, and the first claim by event time decides the outcome. Without
    /// this, a replay that reads the go daemon's file before the ts workers' would judge a
    /// cross-runtime double claim by whichever file came first. Live, with every source
    /// caught up, nothing is held.
    pub fn hold(&mut self, on: bool) {
        self.holding = on;
    }

    /// Judges every held session on all the evidence now known.
    pub fn release(&mut self) -> Vec<Change> {
        let mut out = Vec::new();
        for id in std::mem::take(&mut self.held) {
            let Some(session) = self.core.session(&id) else {
                continue;
            };
            let j = session.judge(self.core.timeouts(), Timestamp::MIN);
            let org = j.dispatch.and_then(|d| self.core.org_name(d.extra));
            if let Some(mark) = self.marks.get_mut(&id) {
                judged(mark, &id, &j, org, &mut out);
            }
        }
        out
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
        let (kind, runner, org) = (ev.kind, ev.runner, ev.org.as_ref().map(|o| o.to_string()));
        let id = match (&ev.session, kind) {
            (Some(id), k) if k != EventKind::Heartbeat => Some(id.clone()),
            _ => None,
        };
        if !self.core.on_event(ev, origin) {
            return None;
        }
        let mut out = Vec::new();
        let Some(id) = id else { return Some(out) };
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
                out.push(Change::Orphan {
                    session: id.clone(),
                    runtime: runner,
                });
            }
        }
        if kind == EventKind::Dispatch && !mark.dispatched {
            mark.dispatched = true;
            let runner = j.dispatch.map_or(runner, |d| d.runner);
            out.push(Change::Dispatched { runner, org });
            if j.first_claim.is_none() {
                mark.pending = Some(runner);
                let t = self.config.correlate.timeouts.millis(runner);
                self.deadlines
                    .insert((now.saturating_add_ms(t), id.clone()));
                out.push(Change::PendingStarted { runner });
            }
        }
        if !mark.dispatched && j.claims > 0 && mark.orphan_claims.is_none() {
            self.orphan_checks.insert((
                mark.first_seen
                    .saturating_add_ms(self.config.orphan_grace_ms),
                id.clone(),
            ));
        }
        if self.holding {
            if j.outcome.is_some() && j.first_claim.is_some() && !mark.judged {
                self.held.push(id.clone());
            }
        } else {
            let org = j.dispatch.and_then(|d| self.core.org_name(d.extra));
            judged(mark, &id, &j, org, &mut out);
        }
        if j.duplicate && !mark.duplicate {
            mark.duplicate = true;
            out.push(Change::Duplicate {
                session: id.clone(),
                runtime: runner,
                cross_runtime: j.duplicate_cross_runtime,
                org: j
                    .dispatch
                    .and_then(|d| self.core.org_name(d.extra).map(str::to_owned)),
            });
        }
        for _ in mark.reclaims..j.reclaims {
            out.push(Change::Reclaimed { runtime: runner });
        }
        mark.reclaims = mark.reclaims.max(j.reclaims);
        Some(out)
    }

    /// Everything whose time has come by `now`: overdue sessions, orphans, forgotten sessions.
    pub fn on_tick(&mut self, now: Timestamp) -> Vec<Change> {
        let mut out = Vec::new();
        while let Some((_, id)) = pop_due(&mut self.deadlines, now) {
            if let Some(mark) = self.marks.get_mut(&id)
                && let Some(runner) = mark.pending.take()
            {
                mark.overdue = Some(runner);
                out.push(Change::PendingEnded { runner });
                out.push(Change::Overdue {
                    org: org_of(&self.core, &id),
                    session: id,
                    runner,
                });
            }
        }
        while let Some((_, id)) = pop_due(&mut self.orphan_checks, now) {
            let claims = self.core.session(&id).map_or(Vec::new(), |s| {
                s.records()
                    .iter()
                    .filter(|r| r.kind == EventKind::Claim)
                    .map(|r| r.runner)
                    .collect()
            });
            if let Some(mark) = self.marks.get_mut(&id)
                && !mark.dispatched
                && mark.orphan_claims.is_none()
            {
                mark.orphan_claims = Some(claims.len() as u32);
                out.extend(claims.into_iter().map(|runtime| Change::Orphan {
                    session: id.clone(),
                    runtime,
                }));
            }
        }
        let mut forget: Vec<SessionId> = Vec::new();
        while let Some((_, id)) = pop_due(&mut self.expiries, now) {
            forget.push(id);
        }
        // The session cap of the core applies too: evicted sessions are forgotten early.
        forget.extend(self.core.take_evicted().into_iter().map(|e| e.id));
        for id in forget {
            if let Some(mark) = self.marks.remove(&id) {
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
        out
    }

    /// When the next tick has work to do, if ever.
    pub fn next_due(&self) -> Option<Timestamp> {
        [&self.deadlines, &self.orphan_checks, &self.expiries]
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
        outcome,
        latency_ms: j.latency_ms,
        skew_clamped: j.skew_clamped,
    });
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
