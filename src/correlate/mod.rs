//! correlate: events in, per-session judgements out (PRODUCT.md §2).
//!
//! The [`Correlator`] is a pure state machine. It owns every session's evidence keyed by
//! sessionId, deduplicates exact re-deliveries, tracks daemons from heartbeats and claims, and
//! keeps the watermark (the largest event time seen). Judging is done by [`Session::judge`] with
//! the time passed in, so `verify` judges on event time and `serve` on its own clock with the
//! same rules. Memory is bounded by `max_sessions`: past it, the sessions whose evidence is
//! oldest are evicted, judged on the evidence so far, and counted.
//!
//! correlate never does I/O and never reads a clock.

mod fingerprints;
mod intern;
pub mod live;
mod session;
mod settle;
mod timeouts;

use std::collections::BTreeMap;
use std::collections::hash_map::Entry;

use rustc_hash::FxHashMap;

use crate::event::{Event, EventKind, Name, Origin, Runner, SessionId, Timestamp};
pub use intern::Interner;
pub use session::{Added, Judgement, Outcome, Record, Session};
pub use settle::Settled;
pub use timeouts::{ClaimTimeoutError, ClaimTimeouts};

#[derive(Debug, Clone)]
pub struct CorrelateConfig {
    pub timeouts: ClaimTimeouts,
    /// Sessions held at once; past it the oldest are evicted (judged early, and counted).
    pub max_sessions: usize,
    /// Sessions expected, to size the table once: growing a table of a million sessions
    /// step by step rehashes it and faults fresh pages in many times over.
    pub expected_sessions: usize,
}

impl Default for CorrelateConfig {
    fn default() -> Self {
        CorrelateConfig {
            timeouts: ClaimTimeouts::default(),
            max_sessions: 20_000_000,
            expected_sessions: 0,
        }
    }
}

/// What the daemons said about themselves: the last heartbeat, version and claim count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Daemon {
    pub last_heartbeat: Option<Timestamp>,
    pub last_seen: Timestamp,
    pub version: Option<Name>,
    pub heartbeats: u64,
    pub claims: u64,
    recent_heartbeats: std::collections::VecDeque<Timestamp>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorrelateStats {
    /// Distinct events accepted, by kind (`EventKind as usize`).
    pub events: [u64; 5],
    /// Exact re-deliveries dropped.
    pub duplicates: u64,
    /// Sessions judged early because `max_sessions` was reached.
    pub evicted: u64,
}

/// A session removed by eviction, with the watermark it was judged against.
#[derive(Debug)]
pub struct Evicted<X = ()> {
    pub id: SessionId,
    pub session: Session,
    /// What its holder kept beside it (see [`Correlator`]).
    pub extra: X,
    pub watermark: Timestamp,
}

/// What [`Correlator::accept`] did with an event.
#[derive(Debug)]
pub enum Accepted<'a, X> {
    /// An exact re-delivery: nothing changed.
    Redelivered,
    /// An exact re-delivery of a dispatch from an earlier origin naming another org: nothing
    /// changed but the org of the session's dispatch (see [`Added::OtherOrg`]).
    OtherOrg,
    /// A fresh heartbeat, or an event with no session.
    Unfiled,
    /// A fresh event of a session, filed in it.
    Filed(Filed<'a, X>),
}

/// The session a fresh event was filed in, as it is now, so its holder reads it without
/// looking it up again.
#[derive(Debug)]
pub struct Filed<'a, X> {
    /// The session and its extra; `None` when it was evicted at once (a new session over
    /// the cap, whose evidence is the oldest): it is among [`Correlator::take_evicted`]'s.
    pub held: Option<(&'a Session, &'a mut X)>,
    /// The event made the session.
    pub created: bool,
    /// The org names its dispatch ids stand for.
    pub orgs: &'a Interner,
}

/// Every session's evidence, keyed by sessionId, with an `X` kept beside each in the same
/// table entry (live correlation keeps its per-session mark there: one lookup per event
/// finds both; batch keeps nothing).
#[derive(Debug)]
pub struct Correlator<X = ()> {
    config: CorrelateConfig,
    sessions: FxHashMap<SessionId, (Session, X)>,
    orgs: Interner,
    workers: Interner,
    details: Interner,
    daemons: BTreeMap<(Runner, u32), Daemon>,
    watermark: Timestamp,
    stats: CorrelateStats,
    evicted: Vec<Evicted<X>>,
    /// Batch mode only: sessions judged before the end of the input (`settle.rs`).
    settling: Option<settle::Settling>,
}

impl Correlator {
    pub fn new(config: CorrelateConfig) -> Correlator {
        Correlator::with_extras(config)
    }
}

impl<X: Default> Correlator<X> {
    /// A correlator keeping an `X` beside each session.
    pub fn with_extras(config: CorrelateConfig) -> Correlator<X> {
        let capacity = config.expected_sessions.min(config.max_sessions);
        Correlator {
            config,
            sessions: FxHashMap::with_capacity_and_hasher(capacity, Default::default()),
            orgs: Interner::default(),
            workers: Interner::default(),
            details: Interner::default(),
            daemons: BTreeMap::new(),
            watermark: Timestamp::MIN,
            stats: CorrelateStats::default(),
            evicted: Vec::new(),
            settling: None,
        }
    }

    pub fn timeouts(&self) -> &ClaimTimeouts {
        &self.config.timeouts
    }

    /// Takes one event. Returns `false` if it was an exact re-delivery (and changed nothing).
    pub fn on_event(&mut self, ev: Event, origin: Origin) -> bool {
        !matches!(
            self.accept(ev, origin),
            Accepted::Redelivered | Accepted::OtherOrg
        )
    }

    /// Takes one event, as [`Correlator::on_event`], and hands back the session it was
    /// filed in (a new session's extra is `X::default()`).
    pub fn accept(&mut self, ev: Event, origin: Origin) -> Accepted<'_, X> {
        let worker = self.workers.intern(ev.worker.as_deref());
        let extra = match ev.kind {
            EventKind::Dispatch => self.orgs.intern(ev.org.as_deref()),
            EventKind::Claim => self.details.intern(ev.version.as_deref()),
            _ => self.details.intern(ev.detail.as_deref()),
        };
        let rec = Record::new(ev.kind, ev.runner, ev.time, worker, extra, origin);
        let (kind, time, version) = (ev.kind, ev.time, ev.version);
        let Some(id) = ev.session.filter(|_| kind != EventKind::Heartbeat) else {
            if !self.fresh_heartbeat(&rec) {
                self.stats.duplicates += 1;
                return Accepted::Redelivered;
            }
            self.counted(&rec, version);
            return Accepted::Unfiled;
        };
        let (held, created) = if self.sessions.len() < self.config.max_sessions {
            let (held, created) = file(&mut self.sessions, self.settling.as_mut(), id, time);
            match held.0.add(rec) {
                Added::Fresh => {}
                again => return redelivered(&mut self.stats, again),
            }
            (Some(held), created)
        } else {
            // A new session takes the table over the cap: filed, then looked up again after
            // the eviction (rare: only with the table full). The filing repeats the branch
            // above: one filing for both, its borrow returned from one arm, is refused by
            // today's borrow checker (the conditional-return case NLL does not accept).
            let key = id.clone();
            let (held, created) = file(&mut self.sessions, self.settling.as_mut(), id, time);
            match held.0.add(rec) {
                Added::Fresh => {}
                again => return redelivered(&mut self.stats, again),
            }
            if self.sessions.len() > self.config.max_sessions {
                self.evict();
            }
            (self.sessions.get_mut(&key), created)
        };
        self.stats.events[kind as usize] += 1;
        self.watermark = self.watermark.max(time);
        if kind == EventKind::Claim {
            note_daemon(&mut self.daemons, &rec, version);
        }
        Accepted::Filed(Filed {
            held: held.map(|(s, x)| (&*s, x)),
            created,
            orgs: &self.orgs,
        })
    }

    /// A fresh heartbeat or unfiled event counted.
    fn counted(&mut self, rec: &Record, version: Option<Name>) {
        self.stats.events[rec.kind as usize] += 1;
        self.watermark = self.watermark.max(rec.time);
        if matches!(rec.kind, EventKind::Heartbeat | EventKind::Claim) {
            note_daemon(&mut self.daemons, rec, version);
        }
    }

    /// Heartbeats have no session to dedupe them against; each daemon remembers its recent
    /// heartbeat times instead (a shipper re-delivers a recent batch, not last week's).
    fn fresh_heartbeat(&mut self, rec: &Record) -> bool {
        const RECENT: usize = 64;
        let d = self.daemons.entry((rec.runner, rec.worker)).or_default();
        if d.recent_heartbeats.contains(&rec.time) {
            return false;
        }
        if d.recent_heartbeats.len() == RECENT {
            d.recent_heartbeats.pop_front();
        }
        d.recent_heartbeats.push_back(rec.time);
        true
    }

    /// Evicts the tenth of sessions whose latest evidence is oldest. O(n), but it runs once
    /// per n/10 new sessions, so the amortised cost per event is constant.
    fn evict(&mut self) {
        let n = (self.sessions.len() / 10).max(1);
        let mut by_age: Vec<(Timestamp, SessionId)> = self
            .sessions
            .iter()
            .map(|(k, (s, _))| (s.last_time(), k.clone()))
            .collect();
        by_age.select_nth_unstable(n - 1);
        for (_, id) in by_age.into_iter().take(n) {
            if let Some((session, extra)) = self.sessions.remove(&id) {
                self.evicted.push(Evicted {
                    id,
                    session,
                    extra,
                    watermark: self.watermark,
                });
            }
        }
        self.stats.evicted += n as u64;
    }

    /// Drops a session's evidence (live mode, past retention), handing back its extra.
    pub fn forget(&mut self, id: &SessionId) -> Option<X> {
        self.sessions.remove(id).map(|(_, x)| x)
    }

    /// Puts an evicted session back for its caller to judge (live mode judges it with the
    /// same code as any other, then forgets it); the cap is not checked.
    pub fn restore(&mut self, id: SessionId, session: Session, extra: X) {
        self.sessions.insert(id, (session, extra));
    }

    /// Sessions evicted since the last call; the caller judges and tallies them.
    pub fn take_evicted(&mut self) -> Vec<Evicted<X>> {
        std::mem::take(&mut self.evicted)
    }

    pub fn watermark(&self) -> Timestamp {
        self.watermark
    }

    pub fn stats(&self) -> &CorrelateStats {
        &self.stats
    }

    pub fn sessions(&self) -> impl Iterator<Item = (&SessionId, &Session)> {
        self.sessions.iter().map(|(k, (s, _))| (k, s))
    }

    /// Sessions held now.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    pub fn session(&self, id: &SessionId) -> Option<&Session> {
        self.sessions.get(id).map(|(s, _)| s)
    }

    /// A session's extra.
    pub fn extra(&self, id: &SessionId) -> Option<&X> {
        self.sessions.get(id).map(|(_, x)| x)
    }

    /// A session with its extra, and the org names (one lookup).
    pub fn held_mut(&mut self, id: &SessionId) -> Option<(&Session, &mut X, &Interner)> {
        let (s, x) = self.sessions.get_mut(id)?;
        Some((&*s, x, &self.orgs))
    }

    pub fn daemons(&self) -> impl Iterator<Item = (Runner, &str, &Daemon)> {
        self.daemons
            .iter()
            .map(|(&(r, w), d)| (r, self.workers.name(w).unwrap_or("-"), d))
    }

    /// The org names dispatch records' ids stand for.
    pub fn orgs(&self) -> &Interner {
        &self.orgs
    }

    pub fn org_name(&self, id: u32) -> Option<&str> {
        self.orgs.name(id)
    }

    pub fn worker_name(&self, id: u32) -> Option<&str> {
        self.workers.name(id)
    }

    pub fn detail_name(&self, id: u32) -> Option<&str> {
        self.details.name(id)
    }
}

/// The session `id` names in `sessions`, made if new (`true`).
fn file<'a, X: Default>(
    sessions: &'a mut FxHashMap<SessionId, (Session, X)>,
    settling: Option<&mut settle::Settling>,
    id: SessionId,
    time: Timestamp,
) -> (&'a mut (Session, X), bool) {
    match sessions.entry(id) {
        Entry::Occupied(e) => (e.into_mut(), false),
        Entry::Vacant(e) => {
            if let Some(st) = settling {
                st.created(e.key(), time);
            }
            (e.insert((Session::default(), X::default())), true)
        }
    }
}

/// An exact re-delivery counted: what [`Correlator::accept`] says of it.
fn redelivered<'a, X>(stats: &mut CorrelateStats, added: Added) -> Accepted<'a, X> {
    stats.duplicates += 1;
    match added {
        Added::OtherOrg => Accepted::OtherOrg,
        Added::Fresh | Added::Again => Accepted::Redelivered,
    }
}

/// What a heartbeat or claim says of its daemon.
fn note_daemon(daemons: &mut BTreeMap<(Runner, u32), Daemon>, rec: &Record, version: Option<Name>) {
    let d = daemons.entry((rec.runner, rec.worker)).or_default();
    if rec.time >= d.last_seen {
        d.last_seen = rec.time;
        if version.is_some() {
            d.version = version;
        }
    }
    if rec.kind == EventKind::Heartbeat {
        d.heartbeats += 1;
        d.last_heartbeat = d.last_heartbeat.max(Some(rec.time));
    } else {
        d.claims += 1;
    }
}

#[cfg(test)]
mod tests;
