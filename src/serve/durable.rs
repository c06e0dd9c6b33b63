//! What makes `serve` durable: commits that retry with backoff until they land (or shutdown),
//! and the store's names for the state it keeps beside the lines (the flag book, retired
//! totals, the feed cursor, each source's line count).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::store_health::StoreHealth;
use crate::backoff::Backoff;
use crate::store::{Commit, FindingWrite, Store};

/// The store's name for the platform flag book.
pub const PLATFORM_BOOK: &str = "platform_book";

/// The store's name for the totals of forgotten sessions, saved in the commit that prunes
/// their lines: the durable totals are these plus what the stored lines replay to, so they
/// cannot drift from the evidence (no separately saved summary that can go stale).
pub const RETIRED_TOTALS: &str = "retired_totals";

/// The store's name for how far a replica has read every replica's judgements from the shared
/// state's feed (`serve --cluster`), saved in the commit of what it wrote from them.
pub const FEED_CURSOR: &str = "cluster_feed";

/// The store's name for how many lines each source has handed out, saved in every batch's
/// commit with its checkpoint: after a restart lines are numbered on from there, so evidence
/// cites the line an event is on (the stored lines alone end at the last event line; the
/// ignored and rejected lines after it are not stored).
pub const SOURCE_LINES: &str = "source_lines";

/// The store, when there is one, its health, and the token that stops a commit's retries.
/// Clones share all of it (the committer's commits and the actor's give up together).
#[derive(Debug, Default, Clone)]
pub struct Durable {
    store: Option<Store>,
    /// Cancelled at shutdown: from then on commits are tried only until the grace runs out.
    stop: CancellationToken,
    /// How long shutdown may take (`serve.shutdown_grace`); commits stop trying a little
    /// before it runs out.
    grace: Duration,
    /// When shutdown began, commits give up at this instant.
    give_up_at: std::sync::Arc<std::sync::OnceLock<tokio::time::Instant>>,
    /// The one emitter of the store's state (up, reason, commit failures).
    health: Option<StoreHealth>,
}

/// Why a commit did not land.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotCommitted(pub String);

impl Durable {
    pub fn attach(&mut self, store: Store) {
        self.store = Some(store);
    }

    pub fn stop_on(&mut self, stop: CancellationToken) {
        self.stop = stop;
    }

    pub fn shutdown_within(&mut self, grace: Duration) {
        self.grace = grace;
    }

    pub fn report_to(&mut self, health: StoreHealth) {
        self.health = Some(health);
    }

    /// The instant commits stop trying, once shutdown has begun: most of the grace, so the
    /// actor can still say what was not committed before the process exits.
    fn deadline(&self) -> Option<tokio::time::Instant> {
        if !self.stop.is_cancelled() {
            return None;
        }
        let at = self.give_up_at.get_or_init(|| {
            let spare = (self.grace / 5).min(Duration::from_secs(2));
            tokio::time::Instant::now() + self.grace.saturating_sub(spare)
        });
        Some(*at)
    }

    /// Commits `c`, retrying with capped backoff until it lands: the in-memory state already
    /// holds the batch, so giving up would let memory and store disagree (a drain retry of an
    /// accepted batch would then be dropped as a re-delivery and never stored). Ingestion
    /// waits meanwhile — back-pressure, not loss; nothing is acknowledged before it lands.
    /// After each failure the store is healed (reopened, a deleted SQLite file written
    /// back). Only shutdown stops the retries, at the end of its grace.
    pub async fn commit(&self, c: &Commit) -> Result<(), NotCommitted> {
        self.commit_all(std::slice::from_ref(c)).await
    }

    /// Commits every one of `cs`, in order, in one transaction, as [`Durable::commit`] does
    /// one: all land or none does.
    pub async fn commit_all(&self, cs: &[Commit]) -> Result<(), NotCommitted> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(5));
        loop {
            let start = tokio::time::Instant::now();
            let result = match self.deadline() {
                None => tokio::select! {
                    r = store.commit_all(cs) => r,
                    // Shutdown began during the attempt: try again within the grace.
                    () = self.stop.cancelled() => continue,
                },
                Some(at) => match tokio::time::timeout_at(at, store.commit_all(cs)).await {
                    Ok(r) => r,
                    Err(_) => {
                        return Err(NotCommitted(
                            "the shutdown grace ran out before the store answered".into(),
                        ));
                    }
                },
            };
            if let Some(h) = &self.health {
                h.commit(start.elapsed().as_secs_f64(), &result);
            }
            let err = match result {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            // A failed commit can leave a connection holding the write lock; a deleted file
            // is written back. Failing that, the next attempt fails the same way.
            let healed = store.heal();
            match self.deadline() {
                None => tokio::select! {
                    r = healed => if let Err(e) = r {
                        tracing::debug!(error = %e, "cannot heal the store yet");
                    },
                    () = self.stop.cancelled() => {}
                },
                Some(at) => {
                    let _ = tokio::time::timeout_at(at, healed).await;
                }
            }
            let mut delay = backoff.next_delay();
            if self.deadline().is_some() {
                // Shutting down: tries come often until the grace runs out.
                delay = delay.min(Duration::from_millis(200));
            }
            let wake = tokio::time::Instant::now() + delay;
            match self.deadline() {
                None => tokio::select! {
                    () = tokio::time::sleep_until(wake) => {}
                    () = self.stop.cancelled() => {}
                },
                Some(at) if at <= wake => {
                    return Err(NotCommitted(format!(
                        "the shutdown grace ran out with the store failing: {err}"
                    )));
                }
                Some(_) => tokio::time::sleep_until(wake).await,
            }
        }
    }

    /// Commits the platform's findings with the flag book (flips, last snapshot) when it
    /// changed, so a restart neither loses nor repeats a flip.
    pub async fn save(&self, book: Option<&impl serde::Serialize>, findings: Vec<FindingWrite>) {
        let mut commit = Commit {
            findings,
            ..Commit::default()
        };
        if let Some(book) = book {
            match serde_json::to_string(book) {
                Ok(json) => commit.state.push((PLATFORM_BOOK, json)),
                Err(e) => tracing::error!(error = %e, "cannot serialise the flag book"),
            }
        }
        let _ = self.commit(&commit).await;
    }
}
