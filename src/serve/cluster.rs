//! The actor's side of a correlation state that can fail (the shared one, `serve --cluster`):
//! a batch applied again with backoff until the state takes it, and [`ClusterHealth`], THE
//! emitter of the shared state's health. Every call the actor makes to it reports there; the
//! state (up, or down with the last error) drives `claimcheck_cluster_up`, the call latency
//! and failure metrics, `/readyz` and one log line per change of state (never one per retry).
//!
//! The cluster is down from a failed call until a call succeeds. While it is down the actor
//! applies the same batch again: nothing is acknowledged meanwhile (no checkpoint committed,
//! no drain answered), its bounded channels fill and the sources wait — back-pressure, never
//! a drop. Applying a batch again is idempotent (the state drops exact re-deliveries).

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::watch;

use super::actor::Actor;
use crate::backoff::Backoff;
use crate::clock::Clock;
use crate::correlate::live::Change;
use crate::event::Timestamp;
use crate::sinks::self_metrics::ClusterMetrics;
use crate::state::{Applied, CorrelationState, Delivery, FeedCursor, RETRY_MAX, StateError};

/// How often the feed is read whole whatever its version says.
const FEED_FULL_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// First delay between two applications of a batch the state refused (the last is the
/// port's `RETRY_MAX`, which a shared state counts on).
const RETRY_MIN: std::time::Duration = std::time::Duration::from_millis(100);

/// The shared state's state, for `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ClusterState {
    pub up: bool,
    /// This replica's name among those sharing the state.
    pub instance: String,
    /// Since when (the sidecar's clock) it has been in this state.
    pub since: String,
    pub last_error: Option<String>,
    /// Failed calls since the last one that succeeded.
    pub failures: u64,
}

/// Held by the actor's telemetry; the watch is `/readyz`'s.
#[derive(Debug, Clone)]
pub struct ClusterHealth {
    state: Arc<watch::Sender<ClusterState>>,
    metrics: ClusterMetrics,
    clock: Clock,
}

impl ClusterHealth {
    pub fn new(
        instance: String,
        metrics: ClusterMetrics,
        clock: Clock,
    ) -> (ClusterHealth, watch::Receiver<ClusterState>) {
        let (tx, rx) = watch::channel(ClusterState {
            up: true,
            instance,
            since: clock.now().to_rfc3339(),
            last_error: None,
            failures: 0,
        });
        metrics.set_up(true);
        let h = ClusterHealth {
            state: Arc::new(tx),
            metrics,
            clock,
        };
        (h, rx)
    }

    /// One call (`apply` or `tick`): how long it took and how it ended.
    pub fn call(&self, call: &'static str, seconds: f64, result: Result<(), &StateError>) {
        self.metrics.call(call, seconds, result.is_ok());
        let was = self.state.borrow().clone();
        let mut next = ClusterState {
            up: result.is_ok(),
            instance: was.instance.clone(),
            since: was.since.clone(),
            last_error: result
                .err()
                .map(|e| crate::redact::secrets(&e.to_string()).into_owned()),
            failures: if result.is_ok() { 0 } else { was.failures + 1 },
        };
        if next.up != was.up {
            next.since = self.clock.now().to_rfc3339();
            match result {
                Err(e) => tracing::error!(
                    dependency = "cluster",
                    state = "down",
                    call,
                    error = %crate::redact::secrets(&e.to_string()),
                    "shared correlation state down: batches wait and are applied again; nothing is acknowledged meanwhile"
                ),
                Ok(()) => tracing::info!(
                    dependency = "cluster",
                    state = "up",
                    failures = was.failures,
                    "shared correlation state up: batches are applied again"
                ),
            }
            self.metrics.set_up(next.up);
        }
        self.state.send_if_modified(|s| {
            let modified = *s != next;
            *s = next;
            modified
        });
    }

    /// The low watermark this replica last read from the shared state (Unix ms).
    pub fn low_watermark(&self, ms: i64) {
        self.metrics.low_watermark(ms);
    }

    /// `runs` of the feed's entries were trimmed before this replica read them (it was away
    /// longer than the feed is kept): their outcome rows and findings are missing here.
    pub fn feed_gaps(&self, runs: u64) {
        if runs > 0 {
            tracing::warn!(
                dependency = "cluster",
                runs,
                "feed entries trimmed before this replica read them: some other replicas' outcome rows and findings are missing from its store"
            );
        }
    }

    /// The shared state's pending and overdue sessions by runner.
    pub fn shared_sessions(&self, by_runner: &[(crate::event::Runner, u64, u64)]) {
        for (r, pending, overdue) in by_runner {
            self.metrics.shared_sessions(r.as_str(), *pending, *overdue);
        }
    }
}

impl<S: CorrelationState> Actor<S> {
    /// Applies `d` until the state takes it: an unavailable state is asked again after a
    /// backoff (the same delivery: idempotent), until shutdown, which returns the error (the
    /// batch is then neither committed nor acknowledged, so it is sent or read again). A
    /// state that cannot read what it holds (`Corrupt`) is not asked again.
    pub(super) async fn apply_retrying(&mut self, mut d: Delivery) -> Result<Applied, StateError> {
        // The local state never fails: it takes the delivery itself, uncloned.
        if !self.state.can_fail() {
            return self.apply_timed(d).await;
        }
        let mut backoff = Backoff::new(RETRY_MIN, RETRY_MAX);
        loop {
            let e = match self.apply_timed(d.clone()).await {
                Ok(applied) => return Ok(applied),
                Err(e @ StateError::Corrupt(_)) => return Err(e),
                Err(e) => e,
            };
            tokio::select! {
                () = tokio::time::sleep(backoff.next_delay()) => {}
                () = self.stop.cancelled() => return Err(e),
            }
            if self.stop.is_cancelled() {
                return Err(e);
            }
            // Taken now, not when first tried: the source is heard from now (after a long
            // outage its news would otherwise be as old as the outage, and the other replicas
            // would take it for idle), and its events arrive now, so deadlines on the
            // sidecar's clock do not fall due for the time the state was away.
            d.now = d.now.max(self.clock.now());
        }
    }

    /// One call to apply `d`, reported to the health emitter.
    async fn apply_timed(&mut self, d: Delivery) -> Result<Applied, StateError> {
        let start = tokio::time::Instant::now();
        let result = self.state.apply(d).await;
        self.telemetry.state_call(
            "apply",
            start.elapsed().as_secs_f64(),
            result.as_ref().map(|_| ()),
        );
        result
    }

    /// What is due by `now`, reported to the health emitter (a failed tick is tried again at
    /// the next one: nothing is lost by waiting). With a shared state, the low watermark it
    /// judges by is read for `claimcheck_cluster_low_watermark_seconds`.
    pub(super) async fn tick_checked(&mut self, now: Timestamp) -> Result<Vec<Change>, StateError> {
        let start = tokio::time::Instant::now();
        let result = self.state.tick(now).await;
        self.telemetry.state_call(
            "tick",
            start.elapsed().as_secs_f64(),
            result.as_ref().map(|_| ()),
        );
        if result.is_ok() && self.telemetry.reports_cluster() {
            self.publish_shared(now).await;
        }
        result
    }

    /// Every replica's judgements committed since the feed was last read (once a second at
    /// most, at once again while pages come full), written through the telemetry's outcome
    /// rows and findings; the cursor after them, for the caller to commit with them (and
    /// keep once committed). `None` when nothing was read: the local state has no feed.
    pub(super) async fn read_feed(&mut self) -> Option<FeedCursor> {
        if !self.telemetry.reports_cluster() {
            return None;
        }
        let due = self
            .feed_read
            .is_none_or(|at| at.elapsed() >= std::time::Duration::from_secs(1));
        if !due {
            return None;
        }
        // Every bucket read now and then whatever the version says (a hint a crash can lose),
        // and at once again after a full page.
        let full = self
            .feed_full
            .is_none_or(|at| at.elapsed() >= FEED_FULL_EVERY);
        let start = tokio::time::Instant::now();
        let result = self.state.feed(&self.feed, full).await;
        self.telemetry.state_call(
            "feed",
            start.elapsed().as_secs_f64(),
            result.as_ref().map(|_| ()),
        );
        let page = result.ok().flatten()?;
        // A full page: the next tick reads on, every bucket.
        self.feed_read = (!page.more).then_some(start);
        if full {
            self.feed_full = Some(start);
        }
        if page.more {
            self.feed_full = None;
        }
        self.telemetry.feed_gaps(page.gaps);
        if page.cursor == self.feed {
            return None;
        }
        for (at, changes) in &page.entries {
            for c in changes {
                self.telemetry.recorded(c, *at);
                // Who holds its claim key, asked once its finding is written (`emit`).
                if let (Change::Overdue { session, .. }, Some(p)) = (c, self.platform.as_mut()) {
                    p.on_overdue(session.as_str());
                }
            }
        }
        for f in page.findings {
            self.telemetry.shared_finding(f);
        }
        Some(page.cursor)
    }

    /// The platform's finding writes made here since the last call, published to the shared
    /// state's feed for every replica's store; kept, in order, and sent again at the next
    /// tick when the call fails (sent again after a lost answer, they change nothing: keyed).
    pub(super) async fn publish_findings(&mut self) {
        let n = self.telemetry.outbox().len();
        if n == 0 {
            return;
        }
        let start = tokio::time::Instant::now();
        let result = self.state.publish(self.telemetry.outbox()).await;
        self.telemetry.state_call(
            "publish",
            start.elapsed().as_secs_f64(),
            result.as_ref().copied(),
        );
        if result.is_ok() {
            self.telemetry.published(n);
        }
    }

    /// Once a second at most: the low watermark this replica judges by, and every replica's
    /// totals as the shared state keeps them, published as `/api/summary`'s answer.
    async fn publish_shared(&mut self, now: Timestamp) {
        let due = self
            .shared_published
            .is_none_or(|at| at.elapsed() >= std::time::Duration::from_secs(1));
        if !due {
            return;
        }
        self.shared_published = Some(tokio::time::Instant::now());
        if let Ok((_, low)) = self.state.watermarks(now).await {
            self.telemetry.low_watermark(low.0);
        }
        if let Ok(t) = self.state.totals().await
            && let (Some(shared), Some(by_runner)) = (t.shared, t.shared_by_runner)
        {
            self.telemetry.publish_shared(shared, &by_runner);
        }
    }
}
