//! flip: the post-flip (or rollback) verification report of PRODUCT.md §6.
//!
//! In: [`FlipEvidence`] — the events that bear on one org (its dispatches, the claims,
//! completions and releases of its sessions, every heartbeat) with their origins, and what each
//! source delivered over time — plus [`FlipParams`]. Out: a [`FlipReport`], whose JSON field
//! names are a contract. [`build`] is a pure function of the two: it reads no file and no
//! clock, so the same code builds a report from log files ([`logs`]) and, later, from serve's
//! store (which keeps accepted raw lines and re-parses them into the same evidence).
//!
//! The §2 rules are not restated here: sessions are judged by [`crate::correlate`]
//! (`Correlator`, `Session::judge`); this module only decides which sessions each check is
//! about and what their judgements mean for the flip.

pub mod auto;
mod checks;
pub mod logs;
pub mod render;
pub mod slice;
pub mod stored;
mod svg;

use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::FxHashSet;
use serde::{Deserialize, Serialize};

use crate::correlate::ClaimTimeouts;
use crate::event::{Event, EventKind, Origin, Runner, SessionId, Timestamp};
use crate::report::{Evidence, Latency, Verdict};

pub use checks::build;

/// What a report is asked about. Durations are in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlipParams {
    /// The org, as its dispatches name it (`organizationId`).
    pub org: String,
    /// The flip's moment; `None` locates it in the dispatches (see [`build`]).
    pub at: Option<Timestamp>,
    /// The runner the org moved to; `None` infers it.
    pub to: Option<Runner>,
    /// The window after the flip; the baseline is the same length before it.
    pub window_ms: i64,
    /// How long after the flip a dispatch may still go to the old runner (the flag reaching
    /// every dispatcher).
    pub grace_ms: i64,
    pub timeouts: ClaimTimeouts,
    /// Sessions listed per check (the total is always stated).
    pub max_listed: usize,
    /// A daemon counts as alive this long after its last heartbeat.
    pub heartbeat_max_age_ms: i64,
    /// A source whose events stop, or pause, longer than this inside the window is lagging.
    pub lag_tolerance_ms: i64,
}

impl FlipParams {
    pub const DEFAULT_WINDOW_MS: i64 = 30 * 60 * 1000;
    pub const DEFAULT_GRACE_MS: i64 = 30 * 1000;

    pub fn new(org: impl Into<String>) -> FlipParams {
        FlipParams {
            org: org.into(),
            at: None,
            to: None,
            window_ms: Self::DEFAULT_WINDOW_MS,
            grace_ms: Self::DEFAULT_GRACE_MS,
            timeouts: ClaimTimeouts::default(),
            max_listed: 50,
            heartbeat_max_age_ms: 2 * 60 * 1000,
            lag_tolerance_ms: 2 * 60 * 1000,
        }
    }
}

/// What one source (an input file, or a store's stream) delivered: every event it carried
/// counts here, whether or not it is kept as evidence, so a silent source is told apart from
/// one that only had nothing to say about this org.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceEvidence {
    /// As cited in evidence: `dispatch.log` in `dispatch.log:1042`.
    pub name: String,
    /// `dispatch` or `claims`.
    pub role: String,
    pub default_runtime: Option<Runner>,
    pub lines: u64,
    pub events: u64,
    pub rejected: u64,
    /// Rejected lines by reason (`missing_runtime` …).
    pub rejected_by: BTreeMap<String, u64>,
    pub first_event: Option<Timestamp>,
    pub last_event: Option<Timestamp>,
    /// Events by the minute they are stamped in (epoch minutes).
    pub per_minute: BTreeMap<i64, u64>,
}

impl SourceEvidence {
    pub fn new(name: impl Into<String>, role: impl Into<String>) -> SourceEvidence {
        SourceEvidence {
            name: name.into(),
            role: role.into(),
            ..SourceEvidence::default()
        }
    }

    /// Counts one event stamped `t`.
    pub fn saw(&mut self, t: Timestamp) {
        self.events += 1;
        self.first_event = Some(self.first_event.map_or(t, |f| f.min(t)));
        self.last_event = Some(self.last_event.map_or(t, |l| l.max(t)));
        *self
            .per_minute
            .entry(t.millis().div_euclid(60_000))
            .or_default() += 1;
    }
}

/// Everything a report is built from. `Origin::input` indexes `sources`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlipEvidence {
    pub events: Vec<(Event, Origin)>,
    pub sources: Vec<SourceEvidence>,
}

impl FlipEvidence {
    /// The end of the evidence: the latest event time any source delivered.
    pub fn watermark(&self) -> Option<Timestamp> {
        self.sources.iter().filter_map(|s| s.last_event).max()
    }

    /// Where the evidence starts: the latest of the sources' first event times, the moment
    /// from which every source that delivered anything covers (or, with no source counted,
    /// the earliest kept event). Before it, absence proves nothing.
    pub fn start(&self) -> Option<Timestamp> {
        self.sources
            .iter()
            .filter_map(|s| s.first_event)
            .max()
            .or_else(|| self.events.iter().map(|(e, _)| e.time).min())
    }

    /// Where the evidence of `runtime`'s workers starts: the earliest first event of the
    /// claims sources that carry it (`runtime=PATH`, or no default runtime); the earliest
    /// kept heartbeat of it when no source is counted.
    pub fn start_of(&self, runtime: Runner) -> Option<Timestamp> {
        let of_sources = self
            .sources
            .iter()
            .filter(|s| s.role == "claims" && s.default_runtime.is_none_or(|r| r == runtime))
            .filter_map(|s| s.first_event)
            .min();
        of_sources.or_else(|| {
            self.events
                .iter()
                .filter(|(e, _)| e.kind == EventKind::Heartbeat && e.runner == runtime)
                .map(|(e, _)| e.time)
                .min()
        })
    }
}

/// Builds [`FlipEvidence`] for one org from a stream of events in any order: keeps the org's
/// dispatches, every heartbeat (they name no org), and the claims, completions and releases
/// whose session turns out to be the org's (they name no org either; they join by sessionId,
/// whichever arrives first).
#[derive(Debug)]
pub struct EvidenceBuilder {
    org: String,
    sources: Vec<SourceEvidence>,
    kept: Vec<(Event, Origin)>,
    sessions: BTreeSet<SessionId>,
    /// Sessions dispatched for other orgs: their later events are dropped at once, so memory
    /// holds one id per foreign session instead of all its events (dispatch logs are usually
    /// read first).
    foreign: FxHashSet<SessionId>,
}

impl EvidenceBuilder {
    pub fn new(org: impl Into<String>, sources: Vec<SourceEvidence>) -> EvidenceBuilder {
        EvidenceBuilder {
            org: org.into(),
            sources,
            kept: Vec::new(),
            sessions: BTreeSet::new(),
            foreign: FxHashSet::default(),
        }
    }

    /// A builder that knows some of the org's sessions beforehand (from a shared state's
    /// outcome rows, with `serve --cluster`): their claims, completions and releases are
    /// kept though no dispatch among the events names them — the dispatch was another
    /// replica's line.
    pub fn knowing(
        org: impl Into<String>,
        sources: Vec<SourceEvidence>,
        sessions: impl IntoIterator<Item = SessionId>,
    ) -> EvidenceBuilder {
        EvidenceBuilder {
            sessions: sessions.into_iter().collect(),
            ..EvidenceBuilder::new(org, sources)
        }
    }

    /// Adds the next source (its index is the number of sources before it).
    pub fn add_source(&mut self, source: SourceEvidence) {
        self.sources.push(source);
    }

    pub fn source_mut(&mut self, input: u16) -> Option<&mut SourceEvidence> {
        self.sources.get_mut(usize::from(input))
    }

    /// Takes one event (counted for its source whether kept or not).
    pub fn event(&mut self, ev: &Event, origin: Origin) {
        if let Some(s) = self.sources.get_mut(usize::from(origin.input)) {
            s.saw(ev.time);
        }
        match ev.kind {
            EventKind::Dispatch => {
                let Some(id) = &ev.session else { return };
                if ev.org.as_deref() != Some(self.org.as_str()) {
                    self.foreign.insert(id.clone());
                    return;
                }
                self.sessions.insert(id.clone());
            }
            EventKind::Heartbeat => {}
            // Kept until the end unless known to be another org's: their dispatch may come
            // later, from another source.
            EventKind::Claim | EventKind::Completion | EventKind::Release => match &ev.session {
                Some(id) if !self.foreign.contains(id) => {}
                _ => return,
            },
        }
        self.kept.push((ev.clone(), origin));
    }

    pub fn finish(self) -> FlipEvidence {
        let sessions = self.sessions;
        let mut events = self.kept;
        events.retain(|(ev, _)| match (&ev.session, ev.kind) {
            (_, EventKind::Heartbeat) => true,
            (Some(id), _) => sessions.contains(id),
            (None, _) => false,
        });
        FlipEvidence {
            events,
            sources: self.sources,
        }
    }
}

/// Why a report could not be built at all (as opposed to a report that says `inconclusive`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlipError {
    #[error("no dispatch of org {0:?} in the evidence, so no flip to locate; give the flip time")]
    NoDispatches(String),
    #[error(
        "the dispatches of org {org:?} never change to {to}; give the flip time if it was a flip \
         that did not take effect"
    )]
    NoFlip { org: String, to: &'static str },
    #[error(
        "cannot tell which way org {0:?} was flipped (no go or ts dispatch before the flip \
         time, and those after it do not say); give the runner it moved to"
    )]
    NoDirection(String),
    #[error("the window must be longer than the grace ({window_ms} ms <= {grace_ms} ms)")]
    Window { window_ms: i64, grace_ms: i64 },
}

/// `flip` when the org moved to go, `rollback` when it moved back to ts, `unknown` when no
/// dispatch says which (and none was given): such a report is `inconclusive`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlipKind {
    Flip,
    Rollback,
    Unknown,
}

/// One check's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    /// The evidence cannot decide (a session still pending, no completion logged, a silent
    /// source).
    Unknown,
    /// Nothing to check (no session was in flight; ts workers log no heartbeats).
    Skipped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Unknown => "unknown",
            Status::Skipped => "skipped",
        }
    }
}

/// A moment range, `[start, end)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Span {
    pub start: String,
    pub end: String,
    pub seconds: f64,
}

/// A session a check lists: failing, or listed for information (a re-claim, an in-flight
/// session whose completion is not in the evidence).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionItem {
    pub session_id: String,
    pub problem: String,
    /// Whether this session fails the check (`false`: listed for information).
    pub failing: bool,
    pub runner: Option<String>,
    pub dispatched_at: Option<String>,
    /// The session's events, each with the `file:line` that carried it.
    pub events: Vec<Evidence>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// Stable: `new_runner`, `claimed_in_time`, `no_mismatch`, `no_duplicate`, `in_flight`,
    /// `daemon`, `claim_latency`, `ingest`.
    pub id: String,
    pub title: String,
    pub status: Status,
    pub summary: String,
    pub counts: BTreeMap<String, u64>,
    /// Failing sessions first, then the ones listed for information; at most `sessions_cap`.
    pub sessions: Vec<SessionItem>,
    pub sessions_total: u64,
    pub sessions_cap: usize,
    pub sessions_truncated: bool,
    /// Evidence that is not a session: heartbeat gaps, stale daemons, silent sources.
    pub notes: Vec<String>,
    /// The failure rests on events that are there (a claim by the wrong runtime), not on
    /// events that are missing (no claim): it stands even when a source was silent.
    #[serde(skip)]
    pub positive: bool,
}

/// Claim latency per runtime on each side of the flip, and which pair the check compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuntimeLatency {
    pub runtime: String,
    /// Sessions of this runtime dispatched in the baseline.
    pub before: Latency,
    /// Sessions of this runtime dispatched in the window.
    pub after: Latency,
}

/// Sessions by where their dispatch falls.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionCounts {
    pub baseline: u64,
    /// Dispatched in `[flip, flip + window)`.
    pub window: u64,
    /// …of which within the grace after the flip.
    pub in_grace: u64,
    /// Claimed before the flip and still held at it.
    pub in_flight: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyChange {
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyComparison {
    /// The compared sessions dispatched in the baseline (of `before_runtime`).
    pub before: Latency,
    /// The compared sessions dispatched in the window (of `after_runtime`).
    pub after: Latency,
    /// `after − before`, in seconds.
    pub change: LatencyChange,
    /// The runtime of `before` and of `after`: the new runtime on both sides when it claimed
    /// sessions on both (like with like), else the old runtime's before against the new
    /// one's after.
    pub before_runtime: Option<String>,
    pub after_runtime: Option<String>,
    /// `before` and `after` are different runtimes: the change is the runtimes' difference,
    /// not a regression of either.
    pub cross_runtime: bool,
    /// Every runtime's latencies on both sides.
    pub by_runtime: Vec<RuntimeLatency>,
}

/// The org's dispatches in one slice of `[baseline.start, window.end)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareBucket {
    pub start: String,
    pub go: u64,
    pub ts: u64,
    pub other: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceHealth {
    pub name: String,
    pub role: String,
    pub default_runtime: Option<String>,
    pub lines: u64,
    pub events: u64,
    pub rejected: u64,
    pub first_event: Option<String>,
    pub last_event: Option<String>,
    /// Events stamped in the minutes the window touches (0 when none falls inside it).
    pub events_in_window: u64,
    /// The longest stretch of whole minutes inside the window with no event from it.
    pub longest_silence_seconds: f64,
    /// `ok`, `silent` (nothing in the window), `lagging` (stopped or paused too long).
    pub status: String,
}

/// The report. Its JSON field names are a contract (documented in the README).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlipReport {
    pub org: String,
    pub kind: FlipKind,
    pub from: String,
    pub to: String,
    pub flip_at: String,
    /// `given`, or `first_dispatch_to_new_runner` when located in the dispatches.
    pub flip_located: String,
    /// How the direction (`to`) was found: `given` (`--to`, or the store's detected flip),
    /// `baseline` (away from the runner most of the baseline went to), `after_flip` (to the
    /// runner most dispatches after the grace went to), `dispatches` (the runner of the org's
    /// latest dispatch, where the flip was located), `unknown` (no dispatch at all).
    pub direction_from: String,
    /// Where the evidence starts (every source delivering): checks that need evidence before
    /// the flip (baseline, in-flight sessions; heartbeats from the runtime's own logs) say
    /// `unknown`, never `fail`, for what lies before it.
    pub evidence_starts: Option<String>,
    pub verdict: Verdict,
    pub reason: String,
    pub window: Span,
    pub baseline: Span,
    pub grace_seconds: f64,
    pub claim_timeout_seconds: BTreeMap<String, f64>,
    /// The latest event time in the evidence.
    pub evidence_ends: Option<String>,
    pub sessions: SessionCounts,
    pub checks: Vec<Check>,
    pub claim_latency_seconds: LatencyComparison,
    pub runner_share: Vec<ShareBucket>,
    pub sources: Vec<SourceHealth>,
}

impl FlipReport {
    pub fn check(&self, id: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.id == id)
    }
}

/// A daemon version as logged (`0.5.2`, `v0.4.9`, `0.5.0-rc.1`) compared with a minimum.
/// A pre-release is below its release, as in semver; an unreadable version is below anything.
pub fn version_at_least(version: &str, min: (u64, u64, u64)) -> bool {
    let v = version.trim().trim_start_matches(['v', 'V']);
    let (core, pre) = match v.split_once(['-', '+']) {
        Some((c, rest)) => (c, v[c.len()..].starts_with('-') && !rest.is_empty()),
        None => (v, false),
    };
    let mut parts = core.split('.').map(str::parse::<u64>);
    let (Some(Ok(major)), minor, patch) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let (Ok(minor), Ok(patch)) = (minor.unwrap_or(Ok(0)), patch.unwrap_or(Ok(0))) else {
        return false;
    };
    let got = (major, minor, patch);
    got > min || (got == min && !pre)
}

#[cfg(test)]
mod tests;
