//! The supervising tasks: one per dependency (Postgres, Redis), each polling on its intervals
//! with a deadline on every call, reconnecting with capped exponential backoff (with jitter),
//! keeping `claimcheck_dependency_up` and a [`Readiness`] watch current, and sending what it
//! read to the actor as [`PlatformUpdate`]s over a bounded channel.
//!
//! The tasks hold no correlation state, only caches and cursors: a restart loses nothing the
//! actor has not already been told. While a dependency is down, requests wait (bounded) and
//! are answered when it returns; the actor keeps ingesting and correlating regardless.

use std::collections::BTreeSet;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use serde::Serialize;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::PlatformError;
use super::config::{PlatformConfig, PostgresConfig, RedisConfig};
use super::flags::FlagSnapshot;
use super::metrics::{Dependency, PlatformMetrics};
use super::queue::QueueStats;
use super::sessions::{CreatedSession, OrgCache};
use crate::backoff::Backoff;
use crate::clock::Clock;
use crate::event::Timestamp;

mod postgres;
mod redis_task;

use postgres::PgTask;
use redis_task::RedisTask;

/// What the tasks tell the actor.
#[derive(Debug, Clone, PartialEq)]
pub enum PlatformUpdate {
    /// The whole organizations table, resolved.
    Flags(FlagSnapshot),
    /// Session rows created since the last poll (re-reads possible: the poll looks back).
    SessionsCreated(Vec<CreatedSession>),
    /// Answers to `PlatformRequests::org_of`: `None` = no row, or no org on it.
    SessionOrgs(Vec<(String, Option<String>)>),
    Queue(QueueStats),
    /// Answer to `PlatformRequests::witness`: the worker holding the claim key, if any.
    ClaimWitness {
        session: String,
        worker: Option<String>,
    },
}

/// One dependency's state, for `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DependencyState {
    pub up: bool,
    /// Since when (the sidecar's clock) it has been in this state.
    pub since: String,
    pub last_error: Option<String>,
    /// Failed calls since the last success.
    pub failures: u64,
}

/// The configured dependencies' states; `None` = not configured.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    pub postgres: Option<DependencyState>,
    pub redis: Option<DependencyState>,
}

impl Readiness {
    /// Every configured dependency is up.
    pub fn ready(&self) -> bool {
        [&self.postgres, &self.redis]
            .into_iter()
            .flatten()
            .all(|d| d.up)
    }

    pub fn get(&self, d: Dependency) -> Option<&DependencyState> {
        match d {
            Dependency::Postgres => self.postgres.as_ref(),
            Dependency::Redis => self.redis.as_ref(),
        }
    }

    fn slot(&mut self, d: Dependency) -> &mut Option<DependencyState> {
        match d {
            Dependency::Postgres => &mut self.postgres,
            Dependency::Redis => &mut self.redis,
        }
    }
}

/// Asks the tasks for what the actor cannot know alone. Cheap to clone; never blocks: a
/// request that does not fit (a dependency down for long) is dropped and counted.
#[derive(Debug, Clone, Default)]
pub struct PlatformRequests {
    orgs: Option<mpsc::Sender<String>>,
    witness: Option<mpsc::Sender<String>>,
    dropped: Arc<AtomicU64>,
}

impl PlatformRequests {
    /// Requests sent straight to these channels (for a caller that answers them itself).
    pub fn from_senders(
        orgs: Option<mpsc::Sender<String>>,
        witness: Option<mpsc::Sender<String>>,
    ) -> PlatformRequests {
        PlatformRequests {
            orgs,
            witness,
            dropped: Arc::default(),
        }
    }

    fn send(&self, tx: Option<&mpsc::Sender<String>>, session: &str) -> bool {
        let Some(tx) = tx else { return false };
        let sent = tx.try_send(session.to_owned()).is_ok();
        if !sent {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        sent
    }

    /// Looks up `session`'s org in Postgres; answered by `PlatformUpdate::SessionOrgs`.
    /// `false` if Postgres is not configured or the request was dropped.
    pub fn org_of(&self, session: &str) -> bool {
        self.send(self.orgs.as_ref(), session)
    }

    /// Reads `session`'s claim key in Redis; answered by `PlatformUpdate::ClaimWitness`.
    pub fn witness(&self, session: &str) -> bool {
        self.send(self.witness.as_ref(), session)
    }

    /// Requests dropped because their queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// What `spawn` hands back: the actor `select!`s on `updates`, `/readyz` reads `readiness`.
#[derive(Debug)]
pub struct PlatformHandle {
    pub updates: mpsc::Receiver<PlatformUpdate>,
    pub readiness: watch::Receiver<Readiness>,
    pub requests: PlatformRequests,
}

/// How many updates may wait for the actor, and requests for a dependency.
const UPDATES: usize = 64;
const REQUESTS: usize = 10_000;
/// Org lookups are gathered this long (or up to `ORG_BATCH` ids) into one query.
const ORG_BATCH_WAIT: Duration = Duration::from_millis(100);
const ORG_BATCH: usize = 500;
const SESSION_PAGE: i64 = 1000;
const SESSION_PAGES_PER_POLL: usize = 20;

/// Starts one task per configured dependency into `tasks`. `sessions_since`: the first
/// sessions poll reads rows created from here (use the coverage horizon).
pub fn spawn(
    config: &PlatformConfig,
    metrics: PlatformMetrics,
    clock: Clock,
    sessions_since: Timestamp,
    tasks: &mut JoinSet<()>,
    shutdown: CancellationToken,
) -> PlatformHandle {
    let (tx, updates) = mpsc::channel(UPDATES);
    let (ready_tx, readiness) = watch::channel(Readiness::default());
    let ready_tx = Arc::new(ready_tx);
    let mut requests = PlatformRequests::default();
    let dep = |which| {
        DepState::new(
            which,
            metrics.clone(),
            ready_tx.clone(),
            clock,
            Backoff::new(config.backoff_min, config.backoff_max),
        )
    };
    if let Some(pg) = &config.postgres {
        let (org_tx, org_rx) = mpsc::channel(REQUESTS);
        requests.orgs = Some(org_tx);
        let task = PgTask {
            cfg: pg.clone(),
            dep: dep(Dependency::Postgres),
            tx: tx.clone(),
            clock,
            cursor: sessions_since,
            cache: OrgCache::new(100_000),
            pending: BTreeSet::new(),
            id_kind: None,
            next_flags: Instant::now(),
            next_sessions: Instant::now(),
            batch_due: None,
        };
        tasks.spawn(task.run(org_rx, shutdown.clone()));
    }
    if let Some(r) = &config.redis {
        let (w_tx, w_rx) = mpsc::channel(REQUESTS);
        requests.witness = Some(w_tx);
        let task = RedisTask {
            cfg: r.clone(),
            dep: dep(Dependency::Redis),
            tx,
            con: None,
            pending: Vec::new(),
        };
        tasks.spawn(task.run(w_rx, shutdown));
    }
    PlatformHandle {
        updates,
        readiness,
        requests,
    }
}

/// A pool that connects lazily (the sidecar starts while Postgres is down), with a short
/// acquire timeout, and whose sessions are read-only with a server-side statement timeout.
pub fn connect_postgres(cfg: &PostgresConfig) -> Result<PgPool, PlatformError> {
    let ms = cfg.call_timeout.as_millis().to_string();
    let opts = PgConnectOptions::from_str(&cfg.url)?
        .application_name("claimcheck")
        .options([
            ("statement_timeout", ms.as_str()),
            ("TimeZone", "UTC"),
            // belt and braces: even a bug here cannot write to the platform's database
            ("default_transaction_read_only", "on"),
        ]);
    Ok(PgPoolOptions::new()
        .max_connections(2)
        .min_connections(0)
        .acquire_timeout(cfg.call_timeout)
        .test_before_acquire(true)
        .connect_lazy_with(opts))
}

/// Opens a Redis connection with connect and response deadlines (redis-rs sets none).
pub async fn connect_redis(cfg: &RedisConfig) -> Result<MultiplexedConnection, PlatformError> {
    let client = redis::Client::open(cfg.url.as_str())?;
    let conf = AsyncConnectionConfig::new()
        .set_connection_timeout(cfg.call_timeout)
        .set_response_timeout(cfg.call_timeout);
    deadline(
        "redis connect",
        cfg.call_timeout,
        client.get_multiplexed_async_connection_with_config(&conf),
    )
    .await
}

/// `fut` with a deadline: a blackholed server fails the call instead of hanging the task.
async fn deadline<T, E: Into<PlatformError>>(
    what: &'static str,
    limit: Duration,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, PlatformError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r.map_err(Into::into),
        Err(_) => Err(PlatformError::Timeout(what, limit)),
    }
}

/// One dependency's up/down state, mirrored into the metric and the readiness watch.
#[derive(Debug)]
struct DepState {
    which: Dependency,
    metrics: PlatformMetrics,
    ready: Arc<watch::Sender<Readiness>>,
    clock: Clock,
    backoff: Backoff,
    up: bool,
    failures: u64,
    retry_at: Option<Instant>,
}

impl DepState {
    fn new(
        which: Dependency,
        metrics: PlatformMetrics,
        ready: Arc<watch::Sender<Readiness>>,
        clock: Clock,
        backoff: Backoff,
    ) -> DepState {
        metrics.dependency_up(which, false);
        let s = DepState {
            which,
            metrics,
            ready,
            clock,
            backoff,
            up: false,
            failures: 0,
            retry_at: None,
        };
        s.publish(Some("not connected yet".into()));
        s
    }

    fn publish(&self, error: Option<String>) {
        let state = DependencyState {
            up: self.up,
            since: self.clock.now().to_rfc3339(),
            last_error: error,
            failures: self.failures,
        };
        self.ready.send_modify(|r| {
            let slot = r.slot(self.which);
            let since = match slot {
                Some(old) if old.up == state.up => old.since.clone(),
                _ => state.since.clone(),
            };
            *slot = Some(DependencyState { since, ..state });
        });
    }

    /// `true` while backing off after a failure.
    fn waiting(&self, now: Instant) -> bool {
        self.retry_at.is_some_and(|t| now < t)
    }

    fn ok(&mut self) {
        self.retry_at = None;
        self.backoff.reset();
        if !self.up || self.failures > 0 {
            if !self.up {
                tracing::info!(
                    dependency = self.which.as_str(),
                    state = "up",
                    after_failures = self.failures,
                    "dependency up"
                );
            }
            self.up = true;
            self.failures = 0;
            self.metrics.dependency_up(self.which, true);
            self.publish(None);
        }
    }

    fn failed(&mut self, e: &PlatformError) {
        let delay = self.backoff.next_delay();
        // One line when it goes down (or fails to come up at all); retries log at debug.
        if self.up || self.failures == 0 {
            tracing::warn!(
                dependency = self.which.as_str(),
                state = "down",
                error = %e,
                retry_in = ?delay,
                "dependency down"
            );
        } else {
            tracing::debug!(dependency = self.which.as_str(), error = %e, failures = self.failures + 1, retry_in = ?delay, "dependency still down");
        }
        self.up = false;
        self.failures += 1;
        self.retry_at = Some(Instant::now() + delay);
        self.metrics.dependency_up(self.which, false);
        self.publish(Some(e.to_string()));
    }
}

async fn send(tx: &mpsc::Sender<PlatformUpdate>, u: PlatformUpdate) -> Result<(), PlatformError> {
    tx.send(u).await.map_err(|_| PlatformError::Closed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_needs_every_configured_dependency() {
        let up = |up| {
            Some(DependencyState {
                up,
                since: String::new(),
                last_error: None,
                failures: 0,
            })
        };
        assert!(Readiness::default().ready());
        let r = Readiness {
            postgres: up(true),
            redis: up(false),
        };
        assert!(!r.ready());
        let r = Readiness {
            postgres: up(true),
            redis: None,
        };
        assert!(r.ready());
    }

    #[test]
    fn requests_without_a_dependency_are_refused() {
        let r = PlatformRequests::default();
        assert!(!r.org_of("s") && !r.witness("s"));
    }
}
