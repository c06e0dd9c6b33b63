//! What makes `serve` durable: commits that retry with backoff until they land (or shutdown),
//! and the store's names for the state it keeps beside the lines (the flag book).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::sinks::self_metrics::StoreMetrics;
use crate::store::{Commit, Store};

/// The store's name for the platform flag book.
pub const PLATFORM_BOOK: &str = "platform_book";

/// The store's name for the totals of forgotten sessions, saved in the commit that prunes
/// their lines: the durable totals are these plus what the stored lines replay to, so they
/// cannot drift from the evidence (no separately saved summary that can go stale).
pub const RETIRED_TOTALS: &str = "retired_totals";

/// The store, when there is one, and the token that stops a commit's retries.
#[derive(Debug, Default)]
pub struct Durable {
    store: Option<Store>,
    /// Cancelled at shutdown: a commit that keeps failing stops retrying then.
    stop: CancellationToken,
    /// Commit latency and failures, when registered.
    metrics: Option<StoreMetrics>,
}

impl Durable {
    pub fn attach(&mut self, store: Store) {
        self.store = Some(store);
    }

    pub fn stop_on(&mut self, stop: CancellationToken) {
        self.stop = stop;
    }

    pub fn measure(&mut self, metrics: StoreMetrics) {
        self.metrics = Some(metrics);
    }

    /// Commits `c`, retrying with capped backoff until it lands: the in-memory state already
    /// holds the batch, so giving up would let memory and store disagree (a drain retry of an
    /// accepted batch would then be dropped as a re-delivery and never stored). Ingestion
    /// waits meanwhile — back-pressure, not loss. Only shutdown stops the retries.
    pub async fn commit(&self, c: &Commit) -> Result<(), String> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let mut backoff = Duration::from_millis(50);
        let mut failures = 0u32;
        loop {
            let start = tokio::time::Instant::now();
            let result = store.commit(c).await;
            if let Some(m) = &self.metrics {
                m.attempt(start.elapsed().as_secs_f64(), result.is_ok());
            }
            let err = match result {
                Ok(()) => {
                    if failures > 0 {
                        tracing::info!(
                            dependency = "store",
                            state = "up",
                            after_failures = failures,
                            "store commits again"
                        );
                    }
                    return Ok(());
                }
                Err(e) => e,
            };
            failures += 1;
            if self.stop.is_cancelled() {
                tracing::error!(error = %err, "store commit failed at shutdown; the batch is not recorded");
                return Err(err.to_string());
            }
            // One line when commits start failing; the retries are at debug.
            if failures == 1 {
                tracing::warn!(dependency = "store", state = "down", error = %err, retry_in = ?backoff, "store commit failed; ingestion waits and retries");
            } else {
                tracing::debug!(dependency = "store", error = %err, failures, retry_in = ?backoff, "store commit failed again");
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = self.stop.cancelled() => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// Commits the flag book (flips, last snapshot), so a restart neither loses nor repeats a
    /// flip.
    pub async fn save_book(&self, book: &impl serde::Serialize) {
        match serde_json::to_string(book) {
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
}
