//! The sidecar's one stateful task: it owns the live correlator and `select!`s over ingested
//! batches, platform updates, queries, a tick and shutdown. What each input does lives beside
//! it (`ingest`, `telemetry`, `durable`, `view`); this file is the loop and its wiring.

use std::time::Duration;

use prometheus::Registry;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::committer::{Committer, GROUP_BATCHES, GROUP_BYTES, GROUP_LINES, Job};
use super::durable::{Durable, FEED_CURSOR, RETIRED_TOTALS};
use super::ingest::{RecentIds, Sources};
use super::recovery::{Feed, Recovery};
use super::telemetry::Telemetry;
use super::view::{self, Lookup, Summary};
use crate::clock::Clock;
use crate::correlate::live::{Change, LiveConfig};
use crate::event::Timestamp;
use crate::parse::Parser;
use crate::platform::{Platform, PlatformUpdate};
use crate::sinks::alertmanager::AlertHandle;
use crate::sinks::metrics::Metrics;
use crate::sources::batch::Batch;
use crate::state::{CorrelationState, LocalState};
use crate::store::Commit;

/// Generic over the correlation state behind the port (`state/`); [`LocalState`] by default.
pub struct Actor<S = LocalState> {
    pub(super) parser: Parser,
    pub(super) state: S,
    pub(super) telemetry: Telemetry,
    pub(super) clock: Clock,
    /// Drain entry ids seen lately: a retried delivery is dropped.
    pub(super) entries: RecentIds,
    pub(super) sources: Sources,
    pub(super) durable: Durable,
    /// The platform's sources of truth, when configured, and the updates its tasks send.
    pub(super) platform: Option<Platform>,
    platform_updates: Option<mpsc::Receiver<PlatformUpdate>>,
    /// Set while `recover` replays stored lines: nothing is judged against the platform twice.
    pub(super) replaying: bool,
    /// Batches (and their event lines) that could not be committed at shutdown: neither
    /// acknowledged nor checkpointed, so senders retry and files are read again.
    pub(super) uncommitted: (u64, u64),
    /// Set when sessions were forgotten: the receive time before which every stored line
    /// belongs to a forgotten session, pruned with the next commit.
    pub(super) prune_due: Option<Timestamp>,
    /// Lines of sessions evicted at the session cap, deleted with the next commit (which
    /// saves their share of the retired totals).
    pub(super) evicted_lines: Vec<(String, u32)>,
    /// The replay of the store, from `recover` until it is done.
    pub(super) recovery: Option<Recovery>,
    /// Sources to announce to the correlation state once the replay is done.
    pub(super) announce: Vec<u16>,
    /// Cancelled at shutdown: a batch the state refuses is not applied again after it.
    pub(super) stop: CancellationToken,
    /// When a shared state's totals were last published (`cluster.rs`).
    pub(super) shared_published: Option<tokio::time::Instant>,
    /// How far the shared state's feed of every replica's judgements has been written to the
    /// store, and when it was last read (`cluster.rs`).
    pub(super) feed: crate::state::FeedCursor,
    pub(super) feed_read: Option<tokio::time::Instant>,
    /// When every bucket of the feed was last read, whatever its version said.
    pub(super) feed_full: Option<tokio::time::Instant>,
    /// Commits ingested batches on a task of its own, from `run` on (`committer.rs`).
    pub(super) committer: Option<Committer>,
    /// What of `uncommitted` the committer reported, as last read.
    landed_uncommitted: (u64, u64),
}

impl<S> std::fmt::Debug for Actor<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Actor")
            .field("summary", self.telemetry.summary())
            .finish_non_exhaustive()
    }
}

impl Actor<LocalState> {
    /// An actor over the local correlation state.
    pub fn new(
        parser: Parser,
        config: LiveConfig,
        registry: &Registry,
        clock: Clock,
        org_label_cap: usize,
    ) -> prometheus::Result<(Actor, watch::Receiver<Summary>)> {
        Actor::with_state(
            parser,
            LocalState::new(config),
            registry,
            clock,
            org_label_cap,
        )
    }
}

impl<S: CorrelationState> Actor<S> {
    /// An actor over any implementation of the correlation-state port.
    pub fn with_state(
        parser: Parser,
        state: S,
        registry: &Registry,
        clock: Clock,
        org_label_cap: usize,
    ) -> prometheus::Result<(Actor<S>, watch::Receiver<Summary>)> {
        let (telemetry, summary_rx) =
            Telemetry::new(Metrics::register(registry, org_label_cap, 500)?);
        let actor = Actor {
            parser,
            state,
            telemetry,
            clock,
            entries: RecentIds::default(),
            sources: Sources::default(),
            durable: Durable::default(),
            platform: None,
            platform_updates: None,
            replaying: false,
            uncommitted: (0, 0),
            prune_due: None,
            evicted_lines: Vec::new(),
            recovery: None,
            announce: Vec::new(),
            stop: CancellationToken::new(),
            shared_published: None,
            feed: crate::state::FeedCursor::default(),
            feed_read: None,
            feed_full: None,
            committer: None,
            landed_uncommitted: (0, 0),
        };
        Ok((actor, summary_rx))
    }

    /// Joins the platform's view (flags, sessions, queue) to the logs, fed by `updates`.
    /// Attach before [`Actor::recover`], so replayed dispatches count for log coverage.
    pub fn attach_platform(&mut self, platform: Platform, updates: mpsc::Receiver<PlatformUpdate>) {
        self.platform = Some(platform);
        self.platform_updates = Some(updates);
    }

    /// Hands every detected flip to `reports` (the post-flip reporter) from now on.
    pub fn report_flips_to(&mut self, reports: mpsc::Sender<crate::platform::Flip>) {
        self.telemetry.report_flips_to(reports);
    }

    /// Reports every commit attempt to `health`, the store's one emitter.
    pub fn report_store_health(&mut self, health: super::store_health::StoreHealth) {
        self.durable.report_to(health);
    }

    /// At shutdown, commits are tried for at most about `grace` (`serve.shutdown_grace`).
    pub fn shutdown_within(&mut self, grace: Duration) {
        self.durable.shutdown_within(grace);
    }

    /// Removes a worker's series once it has been silent for `ttl` while others heartbeat.
    pub fn retire_workers_after(&mut self, ttl: Duration) {
        self.telemetry.metrics_mut().retire_workers_after(ttl);
    }

    /// Reports every call to the shared correlation state to `health`, its one emitter.
    pub fn report_cluster_to(&mut self, health: super::cluster::ClusterHealth) {
        self.telemetry.report_cluster_to(health);
    }

    /// Sends every finding to Alertmanager through `alerts` from now on.
    pub fn alert_to(&mut self, alerts: AlertHandle) {
        self.telemetry.alert_to(alerts);
    }

    /// Runs until `shutdown` is cancelled or every sender is gone, then drains what was sent.
    /// With a store, it first replays what the store holds, a page at a time between
    /// queries; batches, platform updates and ticks wait until the replay is done (held in
    /// their bounded channels), so nothing live is applied before older stored evidence.
    pub async fn run(
        mut self,
        mut rx: mpsc::Receiver<Batch>,
        mut queries: mpsc::Receiver<Lookup>,
        shutdown: CancellationToken,
    ) {
        self.durable.stop_on(shutdown.clone());
        self.stop = shutdown.clone();
        let (committer, committing) = Committer::start(
            self.durable.clone(),
            self.telemetry.ingest_counters(),
            self.telemetry.publisher(),
        );
        self.committer = Some(committer);
        let mut updates = self.platform_updates.take();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The store's reader, owned here: aborted when the loop ends.
        let mut reader = tokio::task::JoinSet::new();
        let mut feed = self
            .recovery
            .as_ref()
            .map(|r| r.start(&mut reader, shutdown.clone()));
        loop {
            let recovering = feed.is_some();
            tokio::select! {
                _ = shutdown.cancelled() => break,
                f = next_feed(&mut feed), if recovering => match f {
                    Some(Feed::Stored(n)) => self.progress(|p| p.stored(n)),
                    Some(Feed::Stalled(e)) => self.progress(|p| p.stalled(e)),
                    Some(Feed::Lines(lines)) => {
                        if let Err(e) = self.replay(lines).await {
                            tracing::error!(error = %e, "recovery stopped: the correlation state refused a batch");
                            feed = None;
                            self.recovered().await;
                        }
                    }
                    Some(Feed::Done) => {
                        feed = None;
                        self.recovered().await;
                    }
                    // The reader stopped (shutdown): not recovered.
                    None => break,
                },
                batch = rx.recv(), if !recovering => match batch {
                    Some(b) => {
                        let batches = queued(b, &mut rx);
                        self.ingest(batches).await;
                    }
                    None => break,
                },
                Some(q) = queries.recv() => {
                    // What is shown is stored (the kill loops rely on a session shown being
                    // stored with its file's checkpoint).
                    self.landed().await;
                    self.answer(q).await;
                }
                Some(u) = next_update(&mut updates), if !recovering => {
                    self.landed().await;
                    self.on_platform_update(u).await;
                }
                _ = tick.tick(), if !recovering => {
                    // Its commit, and the totals it publishes, come after every batch's: in
                    // the committer's queue behind them, or (platform events and the shared
                    // state's feed, which commit and show at once) once they have landed.
                    if !self.tick_queues() {
                        self.landed().await;
                    }
                    // Between groups of batches: nothing in hand, and nothing queued unless
                    // the channel holds some.
                    if rx.is_empty() {
                        self.caught_up().await;
                    }
                    self.tick().await;
                }
            }
        }
        rx.close();
        if self.recovery.is_some() {
            self.committer = None;
            // Stopped mid-replay: what waits was never taken, so none of it was acknowledged.
            tracing::warn!(
                "stopped before recovery was complete: the next start replays the store again"
            );
            return;
        }
        while let Some(b) = rx.recv().await {
            let batches = queued(b, &mut rx);
            self.ingest(batches).await;
        }
        self.landed().await;
        // Ends the committer, all sent having landed.
        self.committer = None;
        let _ = committing.await;
        // Platform findings written here and not yet published: once more, for the others
        // (briefly: they are in this store already).
        let _ = tokio::time::timeout(Duration::from_secs(2), self.publish_findings()).await;
        let (batches, lines) = self.uncommitted;
        if batches > 0 {
            tracing::error!(
                batches,
                event_lines = lines,
                "stopped with batches not committed to the store: none was acknowledged; senders retry them and followed files are read again from their last committed checkpoint"
            );
        }
    }

    /// Waits until every batch taken has landed in the store (or was given up at shutdown),
    /// its senders answered and its totals published.
    pub(super) async fn landed(&mut self) {
        if let Some(c) = self.committer.as_mut() {
            let landed = c.landed().await;
            self.uncommitted.0 += landed.uncommitted.0 - self.landed_uncommitted.0;
            self.uncommitted.1 += landed.uncommitted.1 - self.landed_uncommitted.1;
            self.landed_uncommitted = landed.uncommitted;
        }
    }

    fn progress(&mut self, f: impl FnOnce(&mut super::recovery::Progress)) {
        if let Some(r) = self.recovery.as_mut() {
            f(&mut r.progress);
        }
    }

    async fn answer(&self, q: Lookup) {
        match q {
            Lookup::Session(id, reply) => {
                let state = match self.state.session(&id).await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "session lookup failed");
                        None
                    }
                };
                let name = |i: u16| self.sources.name(i).to_owned();
                let _ = reply
                    .send(state.map(|s| view::session(s, self.telemetry.findings(), name, &id)));
            }
            Lookup::Orgs(reply) => {
                let now = self.clock.now();
                let _ = reply.send(self.platform.as_ref().map(|p| p.orgs(now)));
            }
            Lookup::Findings { filter, reply } => {
                let _ = reply.send(self.telemetry.findings().page(&filter));
            }
        }
    }

    /// Every change through the one emitter; overdue sessions also ask the platform who
    /// holds their Redis claim key (it tells a lost log line from a lost session). Forgotten
    /// sessions make their stored lines due for pruning.
    pub(super) fn emit(&mut self, changes: Vec<Change>, now: Timestamp) {
        if changes
            .iter()
            .any(|c| matches!(c, Change::Forgotten { .. }))
        {
            let before = now.saturating_add_ms(-self.state.retention_ms());
            self.prune_due = Some(self.prune_due.map_or(before, |p| p.max(before)));
        }
        for c in &changes {
            if let Change::Evicted { lines, .. } = c {
                self.evicted_lines.extend(
                    lines
                        .iter()
                        .map(|o| (self.sources.name(o.input).to_owned(), o.line)),
                );
            }
        }
        // With `--cluster` every replica's overdue sessions are asked about as the feed
        // brings them (`read_feed`): the finding is then in the store when the answer
        // comes to annotate it, whichever replica judged the session.
        if let Some(p) = self.platform.as_mut()
            && !self.replaying
            && !self.telemetry.reports_cluster()
        {
            for c in &changes {
                if let Change::Overdue { session, .. } = c {
                    p.on_overdue(session.as_str());
                }
            }
        }
        for c in &changes {
            self.telemetry.change(c, now);
        }
    }

    /// Platform events through the one emitter; their findings are committed, with the flag
    /// book when a flip changed it.
    pub(super) async fn platform_events(
        &mut self,
        events: Vec<crate::platform::PlatformEvent>,
        now: Timestamp,
    ) {
        let mut flipped = false;
        for e in events {
            flipped |= self.telemetry.platform(e, now);
        }
        let book = if flipped {
            self.platform.as_ref().map(Platform::saved_book)
        } else {
            None
        };
        let findings = self.telemetry.take_findings();
        if book.is_some() || !findings.is_empty() {
            self.durable.save(book.as_ref(), findings).await;
        }
    }

    async fn on_platform_update(&mut self, u: PlatformUpdate) {
        let now = self.clock.now();
        let Some(p) = self.platform.as_mut() else {
            return;
        };
        let events = p.on_update(u, now);
        self.platform_events(events, now).await;
    }

    /// Tells the correlation state nothing waits (`CorrelationState::caught_up`: mostly
    /// nothing to do, so only a failure is reported, and it is told again at the next tick).
    async fn caught_up(&mut self) {
        let now = self.clock.now();
        let start = tokio::time::Instant::now();
        if let Err(e) = self.state.caught_up(now).await {
            self.telemetry
                .state_call("caught_up", start.elapsed().as_secs_f64(), Err(&e));
        }
    }

    /// Whether the tick's commit goes to the committer, behind the batches taken before it,
    /// instead of waiting for them to land (which drains the pipeline four times a second
    /// while a backlog is read): without a platform (whose events commit at once) and
    /// without the shared state (whose feed cursor moves only once its commit is stored).
    fn tick_queues(&self) -> bool {
        self.committer.is_some() && self.platform.is_none() && !self.telemetry.reports_cluster()
    }

    async fn tick(&mut self) {
        let now = self.clock.now();
        if let Some(p) = self.platform.as_mut() {
            let events = p.on_tick(now);
            self.platform_events(events, now).await;
        }
        let changed = self.tick_state(now).await;
        self.publish_findings().await;
        let fed = self.read_feed().await;
        if !changed && fed.is_none() {
            return;
        }
        let mut commit = Commit {
            prune_before: self.prune_due.take(),
            evicted_lines: std::mem::take(&mut self.evicted_lines),
            outcomes: self.telemetry.take_outcomes(),
            findings: self.telemetry.take_findings(),
            ..Commit::default()
        };
        commit.state = self.retired_state(&commit);
        let cursor = fed.and_then(|c| Some((serde_json::to_string(&c).ok()?, c)));
        if let Some((json, _)) = &cursor {
            commit.state.push((FEED_CURSOR, json.clone()));
        }
        // Only fails at shutdown; forgotten lines that stay stored are replayed and forgotten
        // again after a restart, and feed entries read again. Published once durable:
        // nothing shown is lost by a crash.
        if cursor.is_none()
            && self.tick_queues()
            && let Some(c) = self.committer.as_mut()
        {
            let job = Job {
                commits: vec![commit],
                summary: self.telemetry.snapshot(),
                ..Job::default()
            };
            c.send(job).await;
            return;
        }
        if self.durable.commit(&commit).await.is_ok()
            && let Some((_, c)) = cursor
        {
            self.feed = c;
        }
        self.telemetry.publish();
    }

    /// The retired totals to save with a commit that prunes or lists (evicts) the lines of retired
    /// sessions (the two go together or not at all).
    pub(super) fn retired_state(&self, c: &Commit) -> Vec<(&'static str, String)> {
        (c.prune_before.is_some() || !c.evicted_lines.is_empty())
            .then(|| self.telemetry.retired_json())
            .flatten()
            .map(|json| vec![(RETIRED_TOTALS, json)])
            .unwrap_or_default()
    }

    /// What is due by `now` in the correlation state, through the emitter. `true` when
    /// something changed.
    pub(super) async fn tick_state(&mut self, now: Timestamp) -> bool {
        // A failed tick was reported (`cluster.rs`) and is tried again at the next one.
        match self.tick_checked(now).await {
            Ok(changes) if changes.is_empty() => false,
            Ok(changes) => {
                self.emit(changes, now);
                true
            }
            Err(_) => false,
        }
    }
}

/// `first` and the batches queued behind it, up to the bounds, without waiting for more.
fn queued(first: Batch, rx: &mut mpsc::Receiver<Batch>) -> Vec<Batch> {
    let mut lines = first.lines.len();
    let mut bytes = first.lines.bytes_len();
    let mut out = vec![first];
    while out.len() < GROUP_BATCHES && lines < GROUP_LINES && bytes < GROUP_BYTES {
        let Ok(b) = rx.try_recv() else {
            break;
        };
        lines += b.lines.len();
        bytes += b.lines.bytes_len();
        out.push(b);
    }
    out
}

/// The next page of the replay; never ready once it is done.
async fn next_feed(rx: &mut Option<mpsc::Receiver<Feed>>) -> Option<Feed> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The next platform update; never ready without a platform.
async fn next_update(rx: &mut Option<mpsc::Receiver<PlatformUpdate>>) -> Option<PlatformUpdate> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
