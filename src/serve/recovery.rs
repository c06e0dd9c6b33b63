//! Recovery, streamed: on start `serve` replays the lines its store holds, in bounded pages,
//! while HTTP already answers. A task of its own reads the pages ([`read`]) into a small
//! bounded channel; the actor replays them inside its loop, between queries, and commits the
//! per-session outcome rows each page produced. Until the replay is done, `/readyz` answers
//! 503 with `reason: recovering` and the actor takes no batch and no platform update (sources
//! wait on their bounded channel; HTTP ingest is refused with 503 `recovering` and retried),
//! so live input is never applied before older stored input.
//!
//! [`Progress`] is THE emitter of recovery's progress: `claimcheck_recovering`, the line
//! counts, `/readyz`'s `recovery` and one log line per step (start, every few seconds, a
//! stalled read, done).

use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use crate::sinks::self_metrics::RecoveryMetrics;
use crate::store::{Store, StoredLine};

/// Lines read from the store at a time: memory during recovery is bounded by a few pages
/// (one being replayed, two queued), whatever the store holds.
pub const PAGE_LINES: usize = 4_096;

/// Pages read ahead of the replay.
const FEED_PAGES: usize = 2;

/// How often a long replay logs its progress.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// What the reader hands the actor.
#[derive(Debug)]
pub enum Feed {
    /// The store holds this many lines (read once, before the first page).
    Stored(u64),
    /// Stored lines, oldest first, in whole batches (as they were received).
    Lines(Vec<StoredLine>),
    /// Reading failed (once per stall): it is retried with backoff.
    Stalled(String),
    /// Every line is read; the replay is complete once these are replayed.
    Done,
}

/// Recovery's state, for `/readyz`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RecoveryState {
    /// `true` until every stored line has been replayed.
    pub recovering: bool,
    /// Lines the store held when recovery began (`null` until known).
    pub lines_stored: Option<u64>,
    pub lines_replayed: u64,
    /// How long the replay took, once done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// Why reading the store is stalled, while it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stalled: Option<String>,
}

/// THE emitter of recovery's progress.
#[derive(Debug)]
pub struct Progress {
    state: watch::Sender<RecoveryState>,
    metrics: Option<RecoveryMetrics>,
    started: Instant,
    logged: Instant,
}

impl Progress {
    pub fn new(metrics: Option<RecoveryMetrics>) -> (Progress, watch::Receiver<RecoveryState>) {
        let (state, rx) = watch::channel(RecoveryState {
            recovering: true,
            lines_stored: None,
            lines_replayed: 0,
            seconds: None,
            stalled: None,
        });
        let now = Instant::now();
        let p = Progress {
            state,
            metrics,
            started: now,
            logged: now,
        };
        (p, rx)
    }

    /// The store holds `lines` to replay.
    pub fn stored(&mut self, lines: u64) {
        tracing::info!(lines, "recovering: replaying the store");
        if let Some(m) = &self.metrics {
            m.started(lines);
        }
        self.state.send_modify(|s| s.lines_stored = Some(lines));
    }

    /// `lines` more were replayed.
    pub fn replayed(&mut self, lines: u64) {
        if let Some(m) = &self.metrics {
            m.replayed(lines);
        }
        let mut total = 0;
        self.state.send_modify(|s| {
            s.lines_replayed += lines;
            s.stalled = None;
            total = s.lines_replayed;
        });
        if self.logged.elapsed() >= LOG_EVERY {
            self.logged = Instant::now();
            let stored = self.state.borrow().lines_stored;
            tracing::info!(
                replayed = total,
                stored,
                seconds = self.started.elapsed().as_secs_f64(),
                "recovering"
            );
        }
    }

    /// Reading the store failed; the reader retries.
    pub fn stalled(&mut self, error: String) {
        tracing::warn!(error = %crate::redact::secrets(&error), "recovery stalled: cannot read the store; retrying");
        self.state
            .send_modify(|s| s.stalled = Some(crate::redact::secrets(&error).into_owned()));
    }

    /// Every stored line was replayed: ready.
    pub fn done(&mut self, sessions: u64) {
        let seconds = self.started.elapsed().as_secs_f64();
        if let Some(m) = &self.metrics {
            m.done(seconds);
        }
        self.state.send_modify(|s| {
            s.recovering = false;
            s.seconds = Some(seconds);
            s.stalled = None;
        });
        let replayed = self.state.borrow().lines_replayed;
        tracing::info!(lines = replayed, sessions, seconds, "recovered: ready");
    }
}

/// Reads every stored line, page by page, into `feed`, ending with [`Feed::Done`]. A page's
/// trailing batch is held until the next page shows where it ends, so the actor replays each
/// batch whole, as it was received. A failed read is retried with backoff (said once per
/// stall) until `stop`; the channel closes without `Done` if stopped.
pub async fn read(store: Store, feed: mpsc::Sender<Feed>, stop: CancellationToken) {
    let Some(stored) = retry(&feed, &stop, || store.line_count()).await else {
        return;
    };
    if feed.send(Feed::Stored(stored)).await.is_err() {
        return;
    }
    let mut after = 0i64;
    let mut carry: Vec<StoredLine> = Vec::new();
    loop {
        let Some(page) = retry(&feed, &stop, || store.lines_after(after, PAGE_LINES)).await else {
            return;
        };
        let last = page.len() < PAGE_LINES;
        if let Some((seq, _)) = page.last() {
            after = *seq;
        }
        carry.extend(page.into_iter().map(|(_, l)| l));
        let whole = if last {
            carry.len()
        } else {
            last_batch_start(&carry)
        };
        let rest = carry.split_off(whole);
        if !carry.is_empty() && feed.send(Feed::Lines(carry)).await.is_err() {
            return;
        }
        carry = rest;
        if last {
            let _ = feed.send(Feed::Done).await;
            return;
        }
    }
}

/// Where the last batch of `lines` starts (lines of one batch share source, receive time and
/// default runtime).
fn last_batch_start(lines: &[StoredLine]) -> usize {
    let Some(last) = lines.last() else {
        return 0;
    };
    lines.len()
        - lines
            .iter()
            .rev()
            .take_while(|l| same_batch(l, last))
            .count()
}

/// Whether two stored lines were received in one batch.
pub fn same_batch(a: &StoredLine, b: &StoredLine) -> bool {
    a.source == b.source && a.received_at == b.received_at && a.default_runtime == b.default_runtime
}

/// `op` until it succeeds, with capped backoff; `None` once `stop` is cancelled or the actor
/// is gone. The first failure of a stall is sent as [`Feed::Stalled`].
async fn retry<T, F, Fut>(feed: &mpsc::Sender<Feed>, stop: &CancellationToken, op: F) -> Option<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, crate::store::StoreError>>,
{
    let mut backoff = Duration::from_millis(100);
    let mut stalled = false;
    loop {
        let result = tokio::select! {
            () = stop.cancelled() => return None,
            r = op() => r,
        };
        match result {
            Ok(v) => return Some(v),
            Err(e) => {
                if !stalled {
                    stalled = true;
                    if feed.send(Feed::Stalled(e.to_string())).await.is_err() {
                        return None;
                    }
                }
                tokio::select! {
                    () = stop.cancelled() => return None,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// A replay armed by `Actor::recover`, driven by the actor's loop.
#[derive(Debug)]
pub struct Recovery {
    pub store: Store,
    pub progress: Progress,
    /// Set once the first stored batch was replayed.
    pub started: bool,
}

impl Recovery {
    /// Starts the reader on `tasks`; the actor receives its pages.
    pub fn start(
        &self,
        tasks: &mut tokio::task::JoinSet<()>,
        stop: CancellationToken,
    ) -> mpsc::Receiver<Feed> {
        let (tx, rx) = mpsc::channel(FEED_PAGES);
        tasks.spawn(read(self.store.clone(), tx, stop));
        rx
    }
}
