//! platform: the platform's own sources of truth, read-only (PRODUCT.md §5). Postgres says
//! which runner each org *should* be on (`organizations.features.runner_default`) and which
//! sessions exist (`agent_sessions`); Redis shows the queue and who holds each claim.
//!
//! ```text
//! supervise (tasks: poll, deadlines, backoff) ──PlatformUpdate──▶ actor ──▶ Platform (pure)
//!      ▲                                                            │        FlagBook · Coverage
//!      └──────────────── PlatformRequests (org_of, witness) ◀───────┘        ──▶ PlatformEvent
//! ```
//!
//! What comes in: snapshots and rows read by [`supervise::spawn`]'s tasks, and the dispatches
//! and overdue sessions the actor sees. What goes out: [`PlatformEvent`]s (flips, drift,
//! sessions missing from the logs, claim witnesses) and the `claimcheck_*` series of
//! [`PlatformMetrics`]. What it never does: write a platform table or key, or guess a flag it
//! does not know (a drift check with an unknown flag waits for the next snapshot).

pub mod config;
pub mod flags;
pub mod metrics;
pub mod orgs;
pub mod queue;
pub mod sessions;
pub mod supervise;

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

pub use config::{PlatformConfig, PlatformConfigError, RawPlatformConfig};
pub use flags::{DriftVerdict, FlagBook, FlagSnapshot, Flip, MalformedFlag, OrgFlag, SavedBook};
pub use metrics::{Dependency, PlatformMetrics};
pub use orgs::OrgView;
pub use queue::QueueStats;
pub use sessions::{Coverage, CreatedSession};
pub use supervise::{PlatformHandle, PlatformRequests, PlatformUpdate, Readiness, spawn};

use crate::event::{Runner, Timestamp};

#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("postgres: {0}")]
    Postgres(#[from] sqlx::Error),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("{0}: no answer within {1:?}")]
    Timeout(&'static str, Duration),
    #[error("the actor stopped listening")]
    Closed,
}

/// A dispatch to another runner than its org's flag expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    pub session: String,
    pub org: String,
    pub expected: Runner,
    pub dispatched: Runner,
    pub dispatched_at: Timestamp,
}

/// What the actor learns from the platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlatformEvent {
    /// An org's expected runner changed. Persist `Platform::saved_book()` with it.
    Flip(Flip),
    MalformedFlag(MalformedFlag),
    Drift(Drift),
    /// A session created in Postgres that never appeared as a dispatch within the grace.
    MissingFromLogs(CreatedSession),
    /// The dispatch line of a session reported missing arrived after all.
    MissingResolved {
        session: String,
    },
    /// The org of a dispatch whose line named none, from `agent_sessions`.
    SessionOrg {
        session: String,
        org: Option<String>,
    },
    /// An overdue session's claim key: `Some(worker)` holds it (the claim line was lost, the
    /// session was not), `None` nobody does.
    Witness {
        session: String,
        worker: Option<String>,
    },
}

/// A dispatch whose drift check waits: for a snapshot newer than it, or for its org.
#[derive(Debug, Clone)]
struct Waiting {
    session: String,
    org: Option<String>,
    runner: Runner,
    time: Timestamp,
    since: Timestamp,
}

/// The platform state the actor owns: the flag book, the log-coverage tracker and the drift
/// checks waiting for a snapshot. Pure: time comes in as `now`, requests leave through
/// [`PlatformRequests`] (a non-blocking send).
#[derive(Debug)]
pub struct Platform {
    book: FlagBook,
    /// Only with Postgres configured: nothing else feeds it rows.
    coverage: Option<Coverage>,
    share: orgs::DispatchShare,
    /// Drift is only judged with a flag source (Postgres) configured.
    judge_drift: bool,
    grace: Duration,
    metrics: PlatformMetrics,
    requests: PlatformRequests,
    waiting: VecDeque<Waiting>,
    /// Dispatches without an org, waiting for `SessionOrgs`.
    need_org: HashMap<String, Waiting>,
    unverifiable: u64,
    last_queue: Option<QueueStats>,
}

impl Platform {
    /// At most this many drift checks wait; older ones are dropped as unverifiable.
    const WAITING_CAP: usize = 100_000;
    /// A drift check that waited this long is given up as unverifiable.
    const WAITING_MAX_MS: i64 = 3600 * 1000;

    /// `saved`: the book as last persisted (or `None` on first start). `horizon`: the oldest
    /// dispatch evidence the actor will feed (see [`Coverage::new`]).
    pub fn new(
        config: &PlatformConfig,
        metrics: PlatformMetrics,
        requests: PlatformRequests,
        saved: Option<SavedBook>,
        horizon: Timestamp,
    ) -> Platform {
        let book = saved.map_or_else(FlagBook::new, FlagBook::from_saved);
        metrics.flags(&book);
        let coverage = config
            .postgres
            .as_ref()
            .map(|p| Coverage::new(p.sessions.grace, horizon));
        Platform {
            book,
            coverage,
            share: orgs::DispatchShare::new(10_000),
            judge_drift: config.postgres.is_some(),
            grace: config.drift_grace,
            metrics,
            requests,
            waiting: VecDeque::new(),
            need_org: HashMap::new(),
            unverifiable: 0,
            last_queue: None,
        }
    }

    pub fn book(&self) -> &FlagBook {
        &self.book
    }

    pub fn coverage(&self) -> Option<&Coverage> {
        self.coverage.as_ref()
    }

    /// Each org's flag, go share dispatched over the last hour and last flip (`GET /api/orgs`).
    pub fn orgs(&self, now: Timestamp) -> Vec<OrgView> {
        orgs::org_views(&self.book, &self.share, now)
    }

    /// What to persist so a restart neither loses nor repeats a flip.
    pub fn saved_book(&self) -> SavedBook {
        self.book.saved()
    }

    pub fn last_queue(&self) -> Option<&QueueStats> {
        self.last_queue.as_ref()
    }

    /// Drift checks waiting for a snapshot or an org.
    pub fn waiting_checks(&self) -> usize {
        self.waiting.len() + self.need_org.len()
    }

    /// Dispatches whose flag could never be known (older than the book, or waited too long).
    pub fn unverifiable(&self) -> u64 {
        self.unverifiable
    }

    /// A dispatch seen in the logs. `org`: from the line; `None` asks Postgres.
    pub fn on_dispatch(
        &mut self,
        session: &str,
        org: Option<&str>,
        runner: Runner,
        time: Timestamp,
        now: Timestamp,
    ) -> Vec<PlatformEvent> {
        let mut out = Vec::new();
        if self
            .coverage
            .as_mut()
            .is_some_and(|c| c.on_dispatch(session, now))
        {
            out.push(PlatformEvent::MissingResolved {
                session: session.to_owned(),
            });
        }
        if let Some(org) = org {
            self.share.add(org, runner, now);
        }
        if !self.judge_drift {
            return out;
        }
        let w = Waiting {
            session: session.to_owned(),
            org: org.map(str::to_owned),
            runner,
            time,
            since: now,
        };
        if w.org.is_none() {
            if self.need_org.len() < Platform::WAITING_CAP && self.requests.org_of(session) {
                self.need_org.insert(w.session.clone(), w);
            } else {
                self.unverifiable += 1;
            }
            return out;
        }
        self.check(w, &mut out);
        out
    }

    /// A dispatch replayed from the store at start (`received_at` as `now`): it counts for log
    /// coverage, but its drift was judged before the restart, so it is not judged again.
    pub fn on_replayed_dispatch(&mut self, session: &str, received_at: Timestamp) {
        if let Some(c) = self.coverage.as_mut() {
            c.on_dispatch(session, received_at);
        }
    }

    /// A session became overdue with no claim line: ask Redis who holds its claim key.
    pub fn on_overdue(&mut self, session: &str) -> bool {
        self.requests.witness(session)
    }

    /// One update from the tasks.
    pub fn on_update(&mut self, u: PlatformUpdate, _now: Timestamp) -> Vec<PlatformEvent> {
        let mut out = Vec::new();
        match u {
            PlatformUpdate::Flags(snap) => {
                let changes = self.book.apply(&snap);
                self.metrics.flags(&self.book);
                for f in changes.flips {
                    self.metrics.flip(&f);
                    out.push(PlatformEvent::Flip(f));
                }
                out.extend(
                    changes
                        .malformed
                        .into_iter()
                        .map(PlatformEvent::MalformedFlag),
                );
                for w in std::mem::take(&mut self.waiting) {
                    self.check(w, &mut out);
                }
            }
            PlatformUpdate::SessionsCreated(rows) => {
                if let Some(c) = self.coverage.as_mut() {
                    c.on_created(&rows);
                }
            }
            PlatformUpdate::SessionOrgs(answers) => {
                for (session, org) in answers {
                    if let Some(mut w) = self.need_org.remove(&session) {
                        match &org {
                            Some(o) => {
                                self.share.add(o, w.runner, w.since);
                                w.org = Some(o.clone());
                                self.check(w, &mut out);
                            }
                            None => self.unverifiable += 1,
                        }
                    }
                    out.push(PlatformEvent::SessionOrg { session, org });
                }
            }
            PlatformUpdate::Queue(stats) => {
                self.metrics.queue(&stats);
                self.last_queue = Some(stats);
            }
            PlatformUpdate::ClaimWitness { session, worker } => {
                if worker.is_some() {
                    self.metrics.witnessed("redis");
                }
                out.push(PlatformEvent::Witness { session, worker });
            }
        }
        out
    }

    /// Sessions whose log grace ended, and drift checks that waited too long.
    pub fn on_tick(&mut self, now: Timestamp) -> Vec<PlatformEvent> {
        let missing = self
            .coverage
            .as_mut()
            .map(|c| c.on_tick(now))
            .unwrap_or_default();
        self.metrics.missing(missing.len() as u64);
        let cutoff = now.saturating_add_ms(-Platform::WAITING_MAX_MS);
        while self.waiting.front().is_some_and(|w| w.since < cutoff) {
            self.waiting.pop_front();
            self.unverifiable += 1;
        }
        let before = self.need_org.len();
        self.need_org.retain(|_, w| w.since >= cutoff);
        self.unverifiable += (before - self.need_org.len()) as u64;
        missing
            .into_iter()
            .map(PlatformEvent::MissingFromLogs)
            .collect()
    }

    fn check(&mut self, w: Waiting, out: &mut Vec<PlatformEvent>) {
        let Some(org) = w.org.as_deref() else { return };
        match self.book.drift(org, w.runner, w.time, self.grace) {
            DriftVerdict::Agree => {}
            DriftVerdict::Drift { expected } => {
                self.metrics.drift(org, expected, w.runner);
                out.push(PlatformEvent::Drift(Drift {
                    session: w.session,
                    org: org.to_owned(),
                    expected,
                    dispatched: w.runner,
                    dispatched_at: w.time,
                }));
            }
            DriftVerdict::Unknown { retry: true } => {
                if self.waiting.len() == Platform::WAITING_CAP {
                    self.waiting.pop_front();
                    self.unverifiable += 1;
                }
                self.waiting.push_back(w);
            }
            DriftVerdict::Unknown { retry: false } => self.unverifiable += 1,
        }
    }
}

#[cfg(test)]
mod tests;
