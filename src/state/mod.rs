//! state: the correlation-state port — what `serve`'s actor needs from the state that joins
//! dispatches to claims, and nothing about where that state lives.
//!
//! In: batches of parsed events with their origins ([`Delivery`]), the sidecar's clock.
//! Out: the [`Change`]s they cause, returned to the caller so `serve/telemetry` stays the one
//! emitter of metrics, findings, alerts and log lines; answers about one session, totals and
//! source watermarks. It never parses, logs, counts or stores.
//!
//! [`local::LocalState`] keeps the state in this process (`correlate::live::Live`). The port is
//! shaped so that a shared implementation (Redis Cluster, one atomic script per slot per
//! batch) fits behind it too:
//! - one call per batch, never per line ([`CorrelationState::apply`]), and async, so a network
//!   round trip per batch is possible;
//! - applying an exact re-delivery of an event changes nothing and says so
//!   ([`Fate::Redelivered`]): a replica killed before its checkpoint re-sends what it had
//!   applied, and the outcome is counted once;
//! - each session is judged once, whoever sweeps its deadline ([`CorrelationState::tick`]);
//! - every answer is an owned value (no borrow of the state crosses the port).
//!
//! `tests/it/state.rs` is the conformance suite every implementation must pass.

use std::future::Future;

use crate::correlate::live::Change;
use crate::correlate::{Judgement, Outcome};
use crate::event::{Event, EventKind, Origin, Runner, SessionId, Timestamp};
use crate::store::FindingWrite;

pub mod local;
pub mod shared;

pub use local::LocalState;

/// The longest a caller waits between two attempts at a state that failed (the cap of
/// `serve/cluster.rs`'s backoff). A shared state counts on it: a replica back in touch with
/// the servers gives the others this long (and `idle_after`) to get back too before it takes
/// their silent sources for idle (`shared/state.rs`).
pub const RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(5);

/// Why the state could not do what was asked (the local state never fails; a shared one can
/// lose its connection). The caller retries the batch: applying it again is idempotent.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("correlation state unavailable: {0}")]
    Unavailable(String),
    /// The shared state holds something this version cannot read (written by another
    /// version, or damaged): retrying does not help.
    #[error("correlation state unreadable: {0}")]
    Corrupt(String),
}

/// One source's batch of events, received at `now`.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The source (`Origin::input`) that delivered the batch.
    pub input: u16,
    /// When the sidecar received it (its own clock).
    pub now: Timestamp,
    /// Whether the source has more to read right away (a source catching up is never idle);
    /// `None` when unknown: a replay of stored lines, and only then (the local state then
    /// knows an earlier run wrote the sessions' outcome rows: `Live::replayed`).
    pub backlog: Option<bool>,
    /// The batch's events in the order the source delivered them, each with its origin.
    pub events: Vec<(Event, Origin)>,
}

/// What became of one event of a [`Delivery`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// An exact re-delivery of an event already applied: nothing changed.
    Redelivered,
    /// New evidence; `first_dispatch` when it was its session's first dispatch.
    Accepted { first_dispatch: bool },
}

impl Fate {
    pub fn is_fresh(self) -> bool {
        matches!(self, Fate::Accepted { .. })
    }
}

/// What applying a [`Delivery`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// One per event of the delivery, in its order.
    pub fates: Vec<Fate>,
    /// Everything the batch changed, in order.
    pub changes: Vec<Change>,
}

/// One record of a session, with its names resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateRecord {
    pub kind: EventKind,
    /// The dispatch's runner or the claim's runtime.
    pub runner: Runner,
    pub time: Timestamp,
    pub worker: Option<String>,
    /// A claim's daemon version, a release's or an other event's detail.
    pub detail: Option<String>,
    pub origin: Origin,
    /// The name the record's source is cited by when the state knows it (a shared state: the
    /// name its replica gave it, the same on every replica), or `instance/input` for another
    /// replica's source it knows no name of: the origin's line is that source's, its input
    /// may not be one of this replica's.
    pub source: Option<String>,
}

/// Everything the state knows about one session, judged against the latest event time seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionState {
    pub outcome: Option<Outcome>,
    pub org: Option<String>,
    /// The dispatch's runner.
    pub runner: Option<Runner>,
    pub dispatched_at: Option<Timestamp>,
    pub deadline: Option<Timestamp>,
    pub latency_ms: Option<i64>,
    pub duplicate: bool,
    pub reclaims: u32,
    /// Its records, oldest first.
    pub records: Vec<StateRecord>,
}

impl SessionState {
    /// A session's state from its judgement, the name of its dispatch's org (`extra` of the
    /// dispatch record) and its records, oldest first.
    pub fn judged(
        j: &Judgement,
        org_name: impl Fn(u32) -> Option<String>,
        records: Vec<StateRecord>,
    ) -> SessionState {
        SessionState {
            outcome: j.outcome,
            org: j.dispatch.and_then(|d| org_name(d.extra)),
            runner: j.dispatch.map(|d| d.runner),
            dispatched_at: j.dispatch.map(|d| d.time),
            deadline: j.deadline,
            latency_ms: j.latency_ms,
            duplicate: j.duplicate,
            reclaims: j.reclaims,
            records,
        }
    }
}

/// The state's own counts (the cumulative outcome totals are the emitter's: it sees every
/// change).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateTotals {
    /// Sessions whose evidence is held now.
    pub sessions: u64,
    /// Dispatched sessions waiting for a first claim, not overdue.
    pub pending: u64,
    /// Dispatched sessions overdue and still unclaimed.
    pub overdue: u64,
    /// Distinct events applied.
    pub events: u64,
    /// Exact re-deliveries dropped.
    pub redelivered: u64,
    /// Sessions judged early and dropped because the session cap was reached.
    pub evicted: u64,
    /// A shared state's totals of every replica's changes, each counted once with the
    /// judgement that made it (the local state's are the emitter's own): what `/api/summary`
    /// answers on every replica.
    pub shared: Option<crate::report::Totals>,
    /// A shared state's pending and overdue sessions by runner, over every replica.
    pub shared_by_runner: Option<[(Runner, u64, u64); 3]>,
}

/// One source's watermark: the largest event time it delivered, and whether it holds the low
/// watermark back now (idle sources do not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceWatermark {
    pub input: u16,
    pub high: Option<Timestamp>,
    pub active: bool,
}

/// The correlation-state port. Every method is a future, so an implementation may answer over
/// the network; the local one answers at once.
pub trait CorrelationState: Send + Sync {
    /// Names sources known before they deliver (files that exist at start): each holds
    /// judgements back until it has delivered past them or gone idle.
    fn announce(
        &mut self,
        inputs: &[u16],
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StateError>> + Send;

    /// Applies one batch: what is due by `delivery.now` first (as a replay would meet it),
    /// then each event. Exact re-deliveries change nothing.
    fn apply(
        &mut self,
        delivery: Delivery,
    ) -> impl Future<Output = Result<Applied, StateError>> + Send;

    /// Everything whose time has come by `now`: settled and held-too-long sessions, overdue
    /// sessions, orphans, forgotten and evicted sessions.
    fn tick(
        &mut self,
        now: Timestamp,
    ) -> impl Future<Output = Result<Vec<Change>, StateError>> + Send;

    /// One session, if its evidence is held.
    fn session(
        &self,
        id: &SessionId,
    ) -> impl Future<Output = Result<Option<SessionState>, StateError>> + Send;

    /// The state's counts now.
    fn totals(&self) -> impl Future<Output = Result<StateTotals, StateError>> + Send;

    /// Each known source's watermark at `now`, and the low watermark over the active ones.
    fn watermarks(
        &self,
        now: Timestamp,
    ) -> impl Future<Output = Result<(Vec<SourceWatermark>, Timestamp), StateError>> + Send;

    /// The caller has no batch waiting at `now` (none queued, none in hand): a source the
    /// state holds as behind only because it could not tell — a shared state, after losing
    /// its servers, holds all of its own so — is back to what it last said of itself. The
    /// local state holds none so.
    fn caught_up(&mut self, now: Timestamp) -> impl Future<Output = Result<(), StateError>> + Send {
        let _ = now;
        async { Ok(()) }
    }

    /// When [`CorrelationState::tick`] next has work to do, if ever (a shared state may
    /// answer a bound: its sweeps are leased).
    fn next_due(&self) -> Option<Timestamp>;

    /// How long a session is kept after it was first seen: the store prunes its lines then.
    fn retention_ms(&self) -> i64;

    /// Whether a call can fail `Unavailable` (a state across the network): the caller then
    /// keeps a copy of each delivery to apply it again. The local state never fails.
    fn can_fail(&self) -> bool {
        false
    }

    /// Tells the state how this replica names its source `input` (a followed file's path,
    /// `stdin`, the drain), so a shared state cites the source's lines by that name on every
    /// replica. The local state knows no other replica: it has nothing to do.
    fn name_source(&mut self, input: u16, name: &str) {
        let _ = (input, name);
    }

    /// The changes every replica committed, after `cursor`, at most a bounded page: what a
    /// replica's own store is written from, so its outcome rows and findings are every
    /// replica's. `None` for a state whose changes are all its caller's (the local state).
    /// Unless `full`, a page is read only when something was committed since the cursor's
    /// reading (a hint, which a crash can lose: read `full` now and then).
    fn feed(
        &self,
        cursor: &FeedCursor,
        full: bool,
    ) -> impl Future<Output = Result<Option<FeedPage>, StateError>> + Send {
        let _ = (cursor, full);
        std::future::ready(Ok(None))
    }

    /// Publishes finding writes this replica made beside the correlation state (the
    /// platform's: flips, flag drift, malformed flags, sessions missing from the logs, Redis
    /// witnesses), in order, so that [`CorrelationState::feed`] carries them to every
    /// replica's store as they were written here, found time and all. They are keyed (kind
    /// and key), so publishing them again — a call whose answer was lost — changes no store.
    /// The local state has no other replica to tell: nothing to do.
    fn publish(
        &self,
        findings: &[FindingWrite],
    ) -> impl Future<Output = Result<(), StateError>> + Send {
        let _ = findings;
        std::future::ready(Ok(()))
    }
}

/// How far a replica has read the shared state's feed of committed changes: per bucket, the
/// id and number of the last entry read, and the feed's version when it read them. Saved in
/// the replica's store with what it wrote from them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FeedCursor {
    pub buckets: std::collections::BTreeMap<u16, String>,
    pub version: Option<i64>,
}

/// One page of the feed: each entry's changes with the clock of the replica that committed
/// them, in each bucket's order, and the cursor after them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedPage {
    pub entries: Vec<(Timestamp, Vec<Change>)>,
    /// The finding writes published beside them ([`CorrelationState::publish`]), in each
    /// bucket's order: written after the page's changes (a witness's note after the
    /// unclaimed finding it annotates).
    pub findings: Vec<FindingWrite>,
    pub cursor: FeedCursor,
    /// Runs of entries trimmed before they were read (the replica was away longer than the
    /// feed is kept).
    pub gaps: u64,
    /// Buckets that had more than the page took: read again at once.
    pub more: bool,
}
