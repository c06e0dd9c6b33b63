//! The live sidecar's one stateful task: an actor that owns the live correlator and the
//! metrics, and `select!`s over ingested batches, a tick and shutdown. No state is shared
//! across tasks: HTTP handlers send batches in and read a published summary out.

use std::time::Duration;

use prometheus::Registry;
use rustc_hash::FxHashMap;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::correlate::Outcome;
use crate::correlate::live::{Change, Live, LiveConfig};
use crate::event::{EventKind, Origin, Runner, SessionId, Timestamp};
use crate::parse::{LineContext, Parsed, Parser};
use crate::platform::{Platform, PlatformEvent, PlatformUpdate};
use crate::report::{Evidence, Totals};
use crate::sinks::alertmanager::{AlertHandle, AlertKind, FindingAlert};
use crate::sinks::metrics::{LineResult, Metrics};
use crate::sources::batch::{Batch, BatchResult};
use crate::store::{Commit, Store, StoreError, StoredLine};

/// Ids seen lately, bounded: the oldest are forgotten first. A drain retries within minutes,
/// not days.
#[derive(Debug, Default)]
struct RecentIds {
    set: rustc_hash::FxHashSet<String>,
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

/// A question for the actor, answered on its own thread from its own state.
#[derive(Debug)]
pub enum Lookup {
    Session(SessionId, oneshot::Sender<Option<SessionView>>),
    /// Recent findings, optionally of one kind and found at or after a time.
    Findings {
        kind: Option<String>,
        since: Option<Timestamp>,
        reply: oneshot::Sender<Vec<LiveFinding>>,
    },
    /// Each org's flag, go share and last flip; `None` without a platform configured.
    Orgs(oneshot::Sender<Option<Vec<crate::platform::OrgView>>>),
}

/// The Redis claim key of an overdue session, read as a second witness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Witness {
    pub holder: Option<String>,
}

/// Everything known about one session (`GET /api/sessions/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionView {
    pub session_id: String,
    /// Judged against the latest event time seen; `null` for a session never dispatched.
    pub outcome: Option<&'static str>,
    pub org: Option<String>,
    pub runner: Option<&'static str>,
    pub dispatched_at: Option<String>,
    pub deadline: Option<String>,
    pub latency_seconds: Option<f64>,
    pub duplicate_claim: bool,
    pub reclaims: u32,
    /// With Redis configured, for a session overdue without a claim line: who holds its
    /// `work:claim:<id>` key (`null` inside: nobody).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_claim_witness: Option<Witness>,
    /// Every event, oldest first, each citing `source:line`.
    pub events: Vec<Evidence>,
}

/// The durable totals behind `/api/summary`: verify's `totals`, kept live. `unclaimed` and
/// `pending` are the sessions overdue or waiting *now*; `redispatches` and `unexpected_runner`
/// stay 0 (live mode has no expectation to break).
pub type Summary = Totals;

/// Counts one change of the live correlator into the totals.
fn count(t: &mut Totals, c: &Change) {
    match c {
        Change::Dispatched { runner, .. } => t.dispatched.bump(*runner),
        Change::Judged {
            outcome,
            skew_clamped,
            ..
        } => {
            match outcome {
                Outcome::Matched => t.matched += 1,
                Outcome::Late => t.late += 1,
                Outcome::Mismatched => t.mismatched += 1,
                Outcome::Unclaimed | Outcome::Pending => {}
            }
            t.skew_clamped += u64::from(*skew_clamped);
        }
        Change::PendingStarted { .. } => t.pending += 1,
        Change::PendingEnded { .. } => t.pending = t.pending.saturating_sub(1),
        Change::Overdue { .. } => t.unclaimed += 1,
        Change::OverdueResolved { .. } | Change::OverdueForgotten { .. } => {
            t.unclaimed = t.unclaimed.saturating_sub(1)
        }
        Change::Duplicate { cross_runtime, .. } => {
            t.duplicate_claims += 1;
            t.duplicate_claims_cross_runtime += u64::from(*cross_runtime);
        }
        Change::Orphan { .. } => t.orphan_claims += 1,
        Change::Reclaimed { .. } => t.reclaims += 1,
        Change::Claimed { .. } | Change::Forgotten { .. } => {}
    }
}

pub struct Actor {
    parser: Parser,
    live: Live,
    metrics: Metrics,
    summary: Summary,
    clock: Clock,
    published: watch::Sender<Summary>,
    entries: RecentIds,
    /// Source names by index, and lines read from each: a record's origin cites them.
    sources: Vec<(String, u32)>,
    store: Option<Store>,
    findings: std::collections::VecDeque<LiveFinding>,
    /// Sources with a backlog, and since when judgements are held for them.
    behind: rustc_hash::FxHashSet<String>,
    holding_since: Option<Timestamp>,
    /// Cancelled at shutdown: a commit that keeps failing stops retrying then.
    stop: CancellationToken,
    /// Per-finding alerts, when an Alertmanager is configured.
    alerts: Option<AlertHandle>,
    /// The platform's sources of truth, when configured, and the updates its tasks send.
    platform: Option<Platform>,
    platform_updates: Option<mpsc::Receiver<PlatformUpdate>>,
    /// Detected flips go here, to the reporter that writes their post-flip reports.
    flips_out: Option<mpsc::Sender<crate::platform::Flip>>,
    /// Redis witnesses of overdue sessions, for their evidence (bounded).
    witnesses: FxHashMap<String, Option<String>>,
    /// Set while `recover` replays stored lines: nothing is judged against the platform twice.
    replaying: bool,
}

/// Judgements are never held longer than this, whatever a source's backlog: a huge catch-up
/// judges in rounds rather than all at the end.
const HOLD_LIMIT_MS: i64 = 60_000;

/// A finding as the sidecar saw it happen (`GET /api/findings`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LiveFinding {
    /// `late`, `mismatched`, `unclaimed`, `duplicate_claim`, `duplicate_claim_cross_runtime`,
    /// `orphan_claim`; with the platform: `flip`, `flag_drift`, `malformed_flag`,
    /// `missing_from_logs`.
    pub kind: &'static str,
    pub session_id: String,
    /// The dispatched runner, or the claiming runtime for duplicates and orphans.
    pub runner: &'static str,
    /// When the sidecar found it (its own clock).
    pub at: String,
    #[serde(skip)]
    found_at: Timestamp,
    /// For `unclaimed`: when a late claim arrived.
    pub resolved_at: Option<String>,
    /// The org, when known (always for platform findings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// One sentence of evidence: a flip's direction, a drift's expected runner, who holds an
    /// unclaimed session's Redis claim key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What one line turned out to be.
enum Line {
    Event { session: Option<String> },
    Duplicate,
    Ignored,
    Rejected(crate::parse::Reject),
}

impl std::fmt::Debug for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Actor")
            .field("summary", &self.summary)
            .finish_non_exhaustive()
    }
}

impl Actor {
    pub fn new(
        parser: Parser,
        config: LiveConfig,
        registry: &Registry,
        clock: Clock,
        org_label_cap: usize,
    ) -> prometheus::Result<(Actor, watch::Receiver<Summary>)> {
        let (published, summary_rx) = watch::channel(Summary::default());
        let actor = Actor {
            parser,
            live: Live::new(config),
            metrics: Metrics::register(registry, org_label_cap, 500)?,
            summary: Summary::default(),
            clock,
            published,
            entries: RecentIds::default(),
            sources: Vec::new(),
            store: None,
            findings: std::collections::VecDeque::new(),
            behind: rustc_hash::FxHashSet::default(),
            holding_since: None,
            stop: CancellationToken::new(),
            alerts: None,
            platform: None,
            platform_updates: None,
            flips_out: None,
            witnesses: FxHashMap::default(),
            replaying: false,
        };
        Ok((actor, summary_rx))
    }

    /// Makes the actor durable: replays what `store` holds (the lines of every retained
    /// session, in order, at their receive times) and commits every batch from now on.
    pub async fn recover(&mut self, store: Store) -> Result<(), StoreError> {
        self.replaying = true;
        for l in store.lines().await? {
            let changes = self.live.on_tick(l.received_at);
            self.apply(changes, l.received_at);
            let input = self.source_index(&l.source);
            if let Some((_, n)) = self.sources.get_mut(usize::from(input)) {
                *n = (*n).max(l.line);
            }
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
        if let Some(json) = store.summary_json().await? {
            self.summary = serde_json::from_str(&json)?;
        }
        self.store = Some(store);
        self.published.send_replace(self.summary.clone());
        Ok(())
    }

    /// Joins the platform's view (flags, sessions, queue) to the logs, fed by `updates`.
    /// Attach before [`Actor::recover`], so replayed dispatches count for log coverage.
    pub fn attach_platform(&mut self, platform: Platform, updates: mpsc::Receiver<PlatformUpdate>) {
        self.platform = Some(platform);
        self.platform_updates = Some(updates);
    }

    /// Hands every detected flip to `reports` (the post-flip reporter) from now on.
    pub fn report_flips_to(&mut self, reports: mpsc::Sender<crate::platform::Flip>) {
        self.flips_out = Some(reports);
    }

    /// Sends every finding to Alertmanager through `alerts` from now on.
    pub fn alert_to(&mut self, alerts: AlertHandle) {
        self.alerts = Some(alerts);
    }

    /// Names sources that have a backlog before they start sending (files that exist when
    /// `serve` starts): until each has caught up, judgements wait for all the evidence.
    pub fn catching_up(&mut self, sources: impl IntoIterator<Item = String>) {
        self.behind.extend(sources);
        let _ = self.sync_hold(self.clock.now());
    }

    /// Holds or releases judgements to match the set of sources behind; `true` if it judged
    /// held sessions.
    fn sync_hold(&mut self, now: Timestamp) -> bool {
        let expired = self
            .holding_since
            .is_some_and(|t| now.millis() - t.millis() >= HOLD_LIMIT_MS);
        if expired {
            self.behind.clear();
        }
        let hold = !self.behind.is_empty();
        match (hold, self.holding_since) {
            (true, None) => {
                self.holding_since = Some(now);
                self.live.hold(true);
            }
            (false, Some(_)) => {
                self.holding_since = None;
                self.live.hold(false);
                let changes = self.live.release();
                let released = !changes.is_empty();
                self.apply(changes, now);
                return released;
            }
            _ => {}
        }
        false
    }

    /// Runs until `shutdown` is cancelled or every sender is gone, then drains what was sent.
    pub async fn run(
        mut self,
        mut rx: mpsc::Receiver<Batch>,
        mut queries: mpsc::Receiver<Lookup>,
        shutdown: CancellationToken,
    ) {
        self.stop = shutdown.clone();
        let mut updates = self.platform_updates.take();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                batch = rx.recv() => match batch {
                    Some(b) => self.ingest(b).await,
                    None => break,
                },
                Some(q) = queries.recv() => self.answer(q),
                Some(u) = next_update(&mut updates) => self.on_platform_update(u).await,
                _ = tick.tick() => self.tick().await,
            }
        }
        rx.close();
        while let Some(b) = rx.recv().await {
            self.ingest(b).await;
        }
    }

    fn answer(&self, q: Lookup) {
        match q {
            Lookup::Session(id, reply) => {
                let _ = reply.send(self.view(&id));
            }
            Lookup::Orgs(reply) => {
                let now = self.clock.now();
                let _ = reply.send(self.platform.as_ref().map(|p| p.orgs(now)));
            }
            Lookup::Findings { kind, since, reply } => {
                let found = self
                    .findings
                    .iter()
                    .filter(|f| kind.as_deref().is_none_or(|k| k == f.kind))
                    .filter(|f| since.is_none_or(|t| f.found_at >= t))
                    .cloned()
                    .collect();
                let _ = reply.send(found);
            }
        }
    }

    fn view(&self, id: &SessionId) -> Option<SessionView> {
        let c = self.live.core();
        let s = c.session(id)?;
        let j = s.judge(c.timeouts(), c.watermark());
        let source = |o: Origin| {
            let name = self
                .sources
                .get(usize::from(o.input))
                .map_or("?", |(n, _)| n.as_str());
            format!("{name}:{}", o.line)
        };
        Some(SessionView {
            session_id: id.to_string(),
            outcome: j.outcome.map(Outcome::as_str),
            org: j
                .dispatch
                .and_then(|d| c.org_name(d.extra))
                .map(str::to_owned),
            runner: j.dispatch.map(|d| d.runner.as_str()),
            dispatched_at: j.dispatch.map(|d| d.time.to_rfc3339()),
            deadline: j.deadline.map(Timestamp::to_rfc3339),
            latency_seconds: j.latency_ms.map(|ms| ms as f64 / 1000.0),
            duplicate_claim: j.duplicate,
            reclaims: j.reclaims,
            redis_claim_witness: self
                .witnesses
                .get(id.as_str())
                .map(|w| Witness { holder: w.clone() }),
            events: s
                .records()
                .iter()
                .map(|r| Evidence::of(c, r, source(r.origin())))
                .collect(),
        })
    }

    /// The index of a source name, registered on first use.
    fn source_index(&mut self, name: &str) -> u16 {
        let i = match self.sources.iter().position(|(n, _)| n == name) {
            Some(i) => i,
            None => {
                self.sources.push((name.to_owned(), 0));
                self.sources.len() - 1
            }
        };
        u16::try_from(i).unwrap_or(u16::MAX)
    }

    fn apply(&mut self, changes: Vec<Change>, now: Timestamp) {
        if let Some(p) = self.platform.as_mut()
            && !self.replaying
        {
            for c in &changes {
                if let Change::Overdue { session, .. } = c {
                    // Who holds its Redis claim key tells a lost log line from a lost session.
                    p.on_overdue(session.as_str());
                }
            }
        }
        if let Some(alerts) = &self.alerts {
            for c in &changes {
                alerts.on_change(c, self.org_of(c).as_deref());
            }
        }
        for c in &changes {
            self.metrics.apply(c);
            count(&mut self.summary, c);
            self.note_finding(c, now);
        }
    }

    async fn on_platform_update(&mut self, u: PlatformUpdate) {
        let now = self.clock.now();
        let Some(p) = self.platform.as_mut() else {
            return;
        };
        let events = p.on_update(u, now);
        if self.platform_events(events, now) {
            self.persist_book().await;
        }
    }

    /// The flag book (flips, last snapshot), committed so a restart neither loses nor
    /// repeats a flip.
    async fn persist_book(&mut self) {
        let Some(book) = self.platform.as_ref().map(Platform::saved_book) else {
            return;
        };
        match serde_json::to_string(&book) {
            Ok(json) => {
                let commit = Commit {
                    state: vec![(PLATFORM_BOOK, json)],
                    ..Commit::default()
                };
                let _ = self.commit(&commit).await;
            }
            Err(e) => tracing::error!(error = %e, "cannot serialise the flag book"),
        }
    }

    /// Findings, alerts and logs for what the platform reported; `true` if a flip changed
    /// the flag book.
    fn platform_events(&mut self, events: Vec<PlatformEvent>, now: Timestamp) -> bool {
        let mut flipped = false;
        for e in events {
            let (kind, session, runner, org, detail) = match e {
                PlatformEvent::Flip(f) => {
                    flipped = true;
                    if let Some(out) = &self.flips_out {
                        // Flips are rare; a full queue is caught up from the stored book.
                        let _ = out.try_send(f.clone());
                    }
                    tracing::info!(org = %f.org, from = f.from.as_str(), to = f.to.as_str(), at = %f.at.to_rfc3339(), "flip");
                    let detail = format!(
                        "{} → {} at {}",
                        f.from.as_str(),
                        f.to.as_str(),
                        f.at.to_rfc3339()
                    );
                    ("flip", String::new(), f.to.as_str(), f.org, detail)
                }
                PlatformEvent::MalformedFlag(m) => {
                    tracing::warn!(org = %m.org, raw = %m.raw, "malformed runner_default: the org stays on ts");
                    let detail = format!("runner_default = {} (read as ts)", m.raw);
                    ("malformed_flag", String::new(), "ts", m.org, detail)
                }
                PlatformEvent::Drift(d) => {
                    if let Some(alerts) = &self.alerts {
                        alerts.fire(FindingAlert {
                            kind: AlertKind::FlagDrift,
                            session: d.session.clone(),
                            org: Some(d.org.clone()),
                            runner: Some(d.dispatched),
                            runtime: None,
                            expected: Some(d.expected),
                            detail: None,
                        });
                    }
                    let detail = format!(
                        "dispatched to {} at {}; the org's flag said {}",
                        d.dispatched.as_str(),
                        d.dispatched_at.to_rfc3339(),
                        d.expected.as_str()
                    );
                    (
                        "flag_drift",
                        d.session,
                        d.dispatched.as_str(),
                        d.org,
                        detail,
                    )
                }
                PlatformEvent::MissingFromLogs(c) => {
                    let detail = format!(
                        "created {} in agent_sessions, never seen as a dispatch",
                        c.created_at.to_rfc3339()
                    );
                    let org = c.org.unwrap_or_else(|| "unknown".into());
                    ("missing_from_logs", c.id, "unknown", org, detail)
                }
                PlatformEvent::MissingResolved { session } => {
                    self.resolve_finding("missing_from_logs", &session, now, None);
                    continue;
                }
                PlatformEvent::Witness { session, worker } => {
                    if self.witnesses.len() >= 100_000 {
                        self.witnesses.clear();
                    }
                    self.witnesses.insert(session.clone(), worker.clone());
                    let detail = match worker {
                        Some(w) => format!(
                            "Redis claim key held by {w}: the session was claimed, its claim line is missing"
                        ),
                        None => "no Redis claim key: nobody holds the session".to_owned(),
                    };
                    self.annotate_finding("unclaimed", &session, detail);
                    continue;
                }
                PlatformEvent::SessionOrg { .. } => continue,
            };
            self.push_finding(LiveFinding {
                kind,
                session_id: session,
                runner,
                at: now.to_rfc3339(),
                found_at: now,
                resolved_at: None,
                org: Some(org),
                detail: Some(detail),
            });
        }
        flipped
    }

    fn push_finding(&mut self, f: LiveFinding) {
        const KEEP: usize = 1000;
        if self.findings.len() == KEEP {
            self.findings.pop_front();
        }
        self.findings.push_back(f);
    }

    fn resolve_finding(
        &mut self,
        kind: &str,
        session: &str,
        now: Timestamp,
        detail: Option<String>,
    ) {
        if let Some(f) = self
            .findings
            .iter_mut()
            .rev()
            .find(|f| f.kind == kind && f.session_id == session)
        {
            f.resolved_at = Some(now.to_rfc3339());
            if detail.is_some() {
                f.detail = detail;
            }
        }
    }

    fn annotate_finding(&mut self, kind: &str, session: &str, detail: String) {
        if let Some(f) = self
            .findings
            .iter_mut()
            .rev()
            .find(|f| f.kind == kind && f.session_id == session)
        {
            f.detail = Some(detail);
        }
    }

    /// When sessions were forgotten, the receive time before which every stored line belongs
    /// to a forgotten session.
    fn prune_before(&self, changes: &[Change], now: Timestamp) -> Option<Timestamp> {
        changes
            .iter()
            .any(|c| matches!(c, Change::Forgotten { .. }))
            .then(|| now.saturating_add_ms(-self.live.retention_ms()))
    }

    /// The org a change's session was dispatched for, when known.
    fn org_of(&self, c: &Change) -> Option<String> {
        let session = match c {
            Change::Judged { session, .. }
            | Change::Overdue { session, .. }
            | Change::OverdueResolved { session, .. }
            | Change::Duplicate { session, .. } => session,
            _ => return None,
        };
        let core = self.live.core();
        let s = core.session(session)?;
        let d = s.judge(core.timeouts(), core.watermark()).dispatch?;
        core.org_name(d.extra).map(str::to_owned)
    }

    /// Keeps the recent findings for `/api/findings`, newest last, bounded.
    fn note_finding(&mut self, c: &Change, now: Timestamp) {
        let (kind, session, runner) = match c {
            Change::Judged {
                outcome: o @ (Outcome::Late | Outcome::Mismatched),
                session,
                runner,
                ..
            } => (o.as_str(), session, *runner),
            Change::Overdue { session, runner } => ("unclaimed", session, *runner),
            Change::Duplicate {
                session,
                runtime,
                cross_runtime,
            } => {
                let kind = if *cross_runtime {
                    "duplicate_claim_cross_runtime"
                } else {
                    "duplicate_claim"
                };
                (kind, session, *runtime)
            }
            Change::Orphan { session, runtime } => ("orphan_claim", session, *runtime),
            Change::OverdueResolved { session, .. } => {
                self.resolve_finding("unclaimed", session.as_str(), now, None);
                return;
            }
            _ => return,
        };
        self.push_finding(LiveFinding {
            kind,
            session_id: session.to_string(),
            runner: runner.as_str(),
            found_at: now,
            at: now.to_rfc3339(),
            resolved_at: None,
            org: None,
            detail: None,
        });
    }

    async fn tick(&mut self) {
        let now = self.clock.now();
        let released = self.sync_hold(now);
        if let Some(p) = self.platform.as_mut() {
            let events = p.on_tick(now);
            if self.platform_events(events, now) {
                self.persist_book().await;
            }
        }
        let changes = self.live.on_tick(now);
        if changes.is_empty() && !released {
            return;
        }
        let prune_before = self.prune_before(&changes, now);
        self.apply(changes, now);
        self.published.send_replace(self.summary.clone());
        let commit = Commit {
            prune_before,
            summary_json: self.summary_json(),
            ..Commit::default()
        };
        // Only fails at shutdown; forgotten lines that stay stored are replayed and forgotten
        // again after a restart.
        let _ = self.commit(&commit).await;
    }

    fn summary_json(&self) -> Option<String> {
        serde_json::to_string(&self.summary).ok()
    }

    /// Commits `c`, retrying with capped backoff until it lands: the in-memory state already
    /// holds the batch, so giving up would let memory and store disagree (a drain retry of an
    /// accepted batch would then be dropped as a re-delivery and never stored). Ingestion
    /// waits meanwhile — back-pressure, not loss. Only shutdown stops the retries.
    async fn commit(&self, c: &Commit) -> Result<(), String> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let mut backoff = Duration::from_millis(50);
        loop {
            let err = match store.commit(c).await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if self.stop.is_cancelled() {
                tracing::error!(error = %err, "store commit failed at shutdown; the batch is not recorded");
                return Err(err.to_string());
            }
            tracing::warn!(error = %err, retry_in = ?backoff, "store commit failed; ingestion waits and retries");
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = self.stop.cancelled() => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
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
        self.metrics.event_time(source, time);
        if let Some((Some(worker), version)) = daemon {
            let hb = (kind == EventKind::Heartbeat).then_some(time);
            self.metrics
                .daemon(runtime, &worker, version.as_deref(), hb);
        }
        let first_dispatch = changes
            .iter()
            .any(|c| matches!(c, Change::Dispatched { .. }));
        self.apply(changes, now);
        if first_dispatch && let (Some(p), Some(id)) = (self.platform.as_mut(), session.as_deref())
        {
            if self.replaying {
                p.on_replayed_dispatch(id, now);
            } else {
                let events = p.on_dispatch(id, org.as_deref(), runtime, time, now);
                // A dispatch only yields drift findings; the flag book is unchanged.
                let _ = self.platform_events(events, now);
            }
        }
        Line::Event { session }
    }

    async fn ingest(&mut self, batch: Batch) {
        let now = self.clock.now();
        let mut result = BatchResult::default();
        let input = self.source_index(&batch.source);
        let mut commit = Commit {
            // Sized once: grown by doubling, a 20,000-line batch reallocated megabytes a dozen
            // times.
            lines: Vec::with_capacity(batch.lines.len()),
            position: batch.position,
            ..Commit::default()
        };
        // Expired sessions go first, as a replay would meet them.
        let changes = self.live.on_tick(now);
        commit.prune_before = self.prune_before(&changes, now);
        self.apply(changes, now);
        for (i, line) in batch.lines.iter().enumerate() {
            let origin = match self.sources.get_mut(usize::from(input)) {
                Some((_, n)) => {
                    *n = n.saturating_add(1);
                    Origin { input, line: *n }
                }
                None => Origin::default(),
            };
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
                    self.metrics.line(source, LineResult::Event);
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
                    self.metrics.line(source, LineResult::Duplicate);
                }
                Line::Ignored => {
                    result.ignored += 1;
                    self.metrics.line(source, LineResult::Ignored);
                }
                Line::Rejected(reason) => {
                    result.rejected += 1;
                    self.metrics.rejected(source, reason);
                }
            }
        }
        if batch.backlog {
            self.behind.insert(batch.source);
        } else {
            self.behind.remove(&batch.source);
        }
        let _ = self.sync_hold(now);
        commit.summary_json = self.summary_json();
        let stored = self.commit(&commit).await.map(|()| result);
        self.published.send_replace(self.summary.clone());
        if let Some(done) = batch.done {
            // The sender may have given up waiting; the lines are recorded all the same.
            let _ = done.send(stored);
        }
    }
}

/// The next platform update; never ready without a platform.
async fn next_update(rx: &mut Option<mpsc::Receiver<PlatformUpdate>>) -> Option<PlatformUpdate> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The store's name for the platform flag book.
pub const PLATFORM_BOOK: &str = "platform_book";
