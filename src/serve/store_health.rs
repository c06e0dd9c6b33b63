//! The store's health is the sidecar's health: THE emitter of the store's state. Every commit
//! attempt and every probe reports here; the state (up, the reason when down) drives
//! `claimcheck_store_up`, `claimcheck_store_commit_failures_total`, `/readyz` and one log line
//! per change of state (never one per retry).
//!
//! The store is down while the last commit failed (until a retry lands) or while the probe
//! finds it unreachable or its SQLite file deleted or replaced. A commit that lands proves
//! both fine; a probe that passes clears only what a probe found (a full disk still answers
//! `SELECT 1`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::sinks::self_metrics::StoreMetrics;
use crate::store::{Store, StoreError};

/// The store's state, for `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct StoreState {
    pub up: bool,
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// Why it is down: `file_deleted`, `file_replaced`, `disk_full`, `unreachable`,
    /// `commit_failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// Since when (the sidecar's clock) it has been in this state.
    pub since: String,
    pub last_error: Option<String>,
    /// Failed commit attempts since the last one that landed.
    pub failures: u64,
}

#[derive(Debug, Default)]
struct Faults {
    /// The last commit attempt failed (cleared when one lands).
    commit: Option<(&'static str, String)>,
    /// The last probe failed (cleared by a probe or a commit that passes).
    probe: Option<(&'static str, String)>,
    failures: u64,
}

impl Faults {
    fn current(&self) -> Option<&(&'static str, String)> {
        self.probe.as_ref().or(self.commit.as_ref())
    }
}

/// Shared by the actor's commits and the probe task; cheap to clone.
#[derive(Debug, Clone)]
pub struct StoreHealth {
    faults: Arc<Mutex<Faults>>,
    state: Arc<watch::Sender<StoreState>>,
    metrics: Option<StoreMetrics>,
    clock: Clock,
}

impl StoreHealth {
    pub fn new(
        backend: &'static str,
        metrics: Option<StoreMetrics>,
        clock: Clock,
    ) -> (StoreHealth, watch::Receiver<StoreState>) {
        let (tx, rx) = watch::channel(StoreState {
            up: true,
            backend,
            reason: None,
            since: clock.now().to_rfc3339(),
            last_error: None,
            failures: 0,
        });
        if let Some(m) = &metrics {
            m.set_up(true);
        }
        let h = StoreHealth {
            faults: Arc::new(Mutex::new(Faults::default())),
            state: Arc::new(tx),
            metrics,
            clock,
        };
        (h, rx)
    }

    pub fn is_up(&self) -> bool {
        self.state.borrow().up
    }

    /// One commit attempt: how long it took and whether it landed.
    pub fn commit(&self, seconds: f64, result: &Result<(), StoreError>) {
        if let Some(m) = &self.metrics {
            m.attempt(seconds, result.is_ok());
        }
        self.update(|f| match result {
            Ok(()) => {
                f.commit = None;
                f.probe = None;
                f.failures = 0;
            }
            Err(e) => {
                f.commit = Some((e.reason(), e.to_string()));
                f.failures += 1;
            }
        });
    }

    /// One probe (a round trip and the file's identity).
    pub fn probe(&self, result: &Result<(), StoreError>) {
        self.update(|f| f.probe = result.as_ref().err().map(|e| (e.reason(), e.to_string())));
    }

    fn update(&self, change: impl FnOnce(&mut Faults)) {
        let mut f = self.faults.lock().unwrap_or_else(|p| p.into_inner());
        change(&mut f);
        let fault = f.current().cloned();
        let failures = f.failures;
        let was = self.state.borrow().clone();
        let reason = fault.as_ref().map(|(r, _)| *r);
        let changed = was.up != fault.is_none() || was.reason != reason;
        let mut next = StoreState {
            up: fault.is_none(),
            backend: was.backend,
            reason,
            since: was.since.clone(),
            last_error: fault
                .as_ref()
                .map(|(_, e)| crate::redact::secrets(e).into_owned()),
            failures,
        };
        if changed {
            next.since = self.clock.now().to_rfc3339();
            match &fault {
                Some((reason, error)) => tracing::error!(
                    dependency = "store",
                    state = "down",
                    reason,
                    error = %crate::redact::secrets(error),
                    "store down: commits wait and retry; nothing is acknowledged until it lands"
                ),
                None => tracing::info!(
                    dependency = "store",
                    state = "up",
                    was = was.reason.unwrap_or(""),
                    "store up: commits land again"
                ),
            }
            if let Some(m) = &self.metrics {
                m.set_up(next.up);
            }
        }
        // Dropped while no one reads it (no HTTP yet): nothing to do.
        self.state.send_if_modified(|s| {
            let modified = *s != next;
            *s = next;
            modified
        });
    }
}

/// Every `every`, checks the store (a round trip, and the SQLite file's identity), so a fault
/// shows while no commit is running; a deleted SQLite file is written back to its path.
pub async fn probe(store: Store, health: StoreHealth, every: Duration, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let result =
            match tokio::time::timeout(every.max(Duration::from_secs(1)), store.ping()).await {
                Ok(r) => r,
                Err(_) => Err(StoreError::Db(sqlx::Error::PoolTimedOut)),
            };
        let deleted = matches!(
            result,
            Err(StoreError::File {
                fault: crate::store::FileFault::Deleted,
                ..
            })
        );
        health.probe(&result);
        if deleted {
            match store.heal().await {
                Ok(()) => {
                    tracing::warn!(
                        dependency = "store",
                        "the deleted store file was written back to its path from the open database"
                    );
                    health.probe(&store.ping().await);
                }
                Err(e) => tracing::debug!(error = %e, "cannot write the store file back yet"),
            }
        }
    }
}
