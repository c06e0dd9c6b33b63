//! The correlation state in this process: [`Live`] behind the port, plus the counts the port
//! promises (pending, overdue), kept from the changes it returns.

use super::{
    Applied, CorrelationState, Delivery, Fate, SessionState, SourceWatermark, StateError,
    StateRecord, StateTotals,
};
use crate::correlate::live::{Change, Live, LiveConfig};
use crate::event::{EventKind, SessionId, Timestamp};

/// The local correlation state: one process, memory only (the store keeps the lines that
/// rebuild it).
#[derive(Debug)]
pub struct LocalState {
    live: Live,
    pending: u64,
    overdue: u64,
}

impl LocalState {
    pub fn new(config: LiveConfig) -> LocalState {
        LocalState {
            live: Live::new(config),
            pending: 0,
            overdue: 0,
        }
    }

    /// The live correlator underneath (tests, and `hold`/`release`).
    pub fn live_mut(&mut self) -> &mut Live {
        &mut self.live
    }

    pub fn live(&self) -> &Live {
        &self.live
    }

    fn count(&mut self, changes: &[Change]) {
        for c in changes {
            match c {
                Change::PendingStarted { .. } => self.pending += 1,
                Change::PendingEnded { .. } => self.pending = self.pending.saturating_sub(1),
                Change::Overdue { .. } => self.overdue += 1,
                Change::OverdueResolved { .. } | Change::OverdueForgotten { .. } => {
                    self.overdue = self.overdue.saturating_sub(1);
                }
                _ => {}
            }
        }
    }

    /// The synchronous core of [`CorrelationState::apply`].
    pub fn apply_now(&mut self, d: Delivery) -> Applied {
        if let Some(backlog) = d.backlog {
            self.live.source_seen(d.input, d.now, backlog);
        }
        let mut changes = self.live.on_tick(d.now);
        let mut fates = Vec::with_capacity(d.events.len());
        let replayed = d.backlog.is_none();
        for (ev, origin) in d.events {
            let id = replayed.then(|| ev.session.clone()).flatten();
            match self.live.on_event(ev, origin, d.now) {
                None => fates.push(Fate::Redelivered),
                Some(c) => {
                    let first_dispatch = c.iter().any(|c| matches!(c, Change::Dispatched { .. }));
                    fates.push(Fate::Accepted { first_dispatch });
                    changes.extend(c);
                }
            }
            if let Some(id) = id {
                self.live.replayed(&id);
            }
        }
        self.count(&changes);
        Applied { fates, changes }
    }

    /// The synchronous core of [`CorrelationState::tick`].
    pub fn tick_now(&mut self, now: Timestamp) -> Vec<Change> {
        let changes = self.live.on_tick(now);
        self.count(&changes);
        changes
    }

    /// The synchronous core of [`CorrelationState::session`].
    pub fn session_now(&self, id: &SessionId) -> Option<SessionState> {
        let c = self.live.core();
        let s = c.session(id)?;
        let j = s.judge(c.timeouts(), c.watermark());
        let org_name = |extra| c.org_name(extra).map(str::to_owned);
        Some(SessionState::judged(
            &j,
            org_name,
            s.records()
                .iter()
                .map(|r| StateRecord {
                    kind: r.kind,
                    runner: r.runner,
                    time: r.time,
                    worker: c.worker_name(r.worker).map(str::to_owned),
                    detail: match r.kind {
                        EventKind::Dispatch => None,
                        _ => c.detail_name(r.extra).map(str::to_owned),
                    },
                    origin: r.origin(),
                    source: None,
                })
                .collect(),
        ))
    }

    /// The synchronous core of [`CorrelationState::totals`].
    pub fn totals_now(&self) -> StateTotals {
        let stats = self.live.core().stats();
        StateTotals {
            sessions: self.live.core().session_count() as u64,
            pending: self.pending,
            overdue: self.overdue,
            events: stats.events.iter().sum(),
            redelivered: stats.duplicates,
            evicted: stats.evicted,
            shared: None,
            shared_by_runner: None,
        }
    }
}

impl CorrelationState for LocalState {
    async fn announce(&mut self, inputs: &[u16], now: Timestamp) -> Result<(), StateError> {
        for &input in inputs {
            self.live.source_seen(input, now, false);
        }
        Ok(())
    }

    async fn apply(&mut self, delivery: Delivery) -> Result<Applied, StateError> {
        Ok(self.apply_now(delivery))
    }

    async fn tick(&mut self, now: Timestamp) -> Result<Vec<Change>, StateError> {
        Ok(self.tick_now(now))
    }

    async fn session(&self, id: &SessionId) -> Result<Option<SessionState>, StateError> {
        Ok(self.session_now(id))
    }

    async fn totals(&self) -> Result<StateTotals, StateError> {
        Ok(self.totals_now())
    }

    async fn watermarks(
        &self,
        now: Timestamp,
    ) -> Result<(Vec<SourceWatermark>, Timestamp), StateError> {
        let each = self
            .live
            .watermarks()
            .each(now)
            .map(|(input, high, active)| SourceWatermark {
                input,
                high,
                active,
            })
            .collect();
        Ok((each, self.live.low_watermark(now)))
    }

    fn next_due(&self) -> Option<Timestamp> {
        self.live.next_due()
    }

    fn retention_ms(&self) -> i64 {
        self.live.retention_ms()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, Origin, Runner};

    fn event(kind: EventKind, runner: Runner, s: i64) -> Event {
        Event {
            kind,
            session: SessionId::new("s"),
            runner,
            time: Timestamp(1_795_428_000_000 + s * 1000),
            org: (kind == EventKind::Dispatch).then(|| "org_a".into()),
            worker: Some("w".into()),
            version: None,
            detail: None,
        }
    }

    /// Whether the judgement of a session whose dispatch came `replayed` (a delivery of
    /// stored lines: no backlog) or live, and whose claim came live after it, refiles.
    fn refiles(replayed: bool) -> Option<bool> {
        let mut state = LocalState::new(LiveConfig::default());
        let now = Timestamp(1_795_428_000_000);
        let delivery = |backlog, e, line| Delivery {
            input: 0,
            now,
            backlog,
            events: vec![(e, Origin { input: 0, line })],
        };
        let d = event(EventKind::Dispatch, Runner::Go, 0);
        state.apply_now(delivery((!replayed).then_some(false), d, 1));
        let c = event(EventKind::Claim, Runner::Go, 1);
        state.apply_now(delivery(Some(false), c, 2));
        let later = Timestamp(now.0 + 30_000);
        state.tick_now(later).into_iter().find_map(|c| match c {
            Change::Judged { refile, .. } => Some(refile),
            _ => None,
        })
    }

    /// A session whose lines were replayed from the store had its outcome row written by an
    /// earlier run, which may have judged it on other evidence: its judgement sets the row's
    /// dispatch columns again, even one made after the replay. One that came live does not.
    #[test]
    fn a_replayed_session_s_judgement_refiles() {
        assert_eq!(refiles(true), Some(true));
        assert_eq!(refiles(false), Some(false));
    }
}
