//! The Postgres task: the organizations table every `organizations.poll_interval`, new
//! session rows every `sessions.poll_interval`, and org lookups gathered into batches.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{
    DepState, ORG_BATCH, ORG_BATCH_WAIT, PlatformUpdate, REQUESTS, SESSION_PAGE,
    SESSION_PAGES_PER_POLL, connect_postgres, deadline, send,
};
use crate::clock::Clock;
use crate::event::Timestamp;
use crate::platform::PlatformError;
use crate::platform::config::PostgresConfig;
use crate::platform::flags::{FlagSnapshot, poll_flags};
use crate::platform::sessions::{CreatedSession, IdKind, OrgCache, created_since, id_kind, org_of};

/// The client-side deadline of a Postgres call: a connection may take up to `call_timeout`
/// to acquire, and the server cancels a statement at `call_timeout` (`statement_timeout`), so
/// the server's clean cancellation comes first and this only catches a server that is silent.
fn pg_deadline(cfg: &PostgresConfig) -> Duration {
    cfg.call_timeout * 2 + Duration::from_millis(250)
}

pub(super) struct PgTask {
    pub(super) cfg: PostgresConfig,
    pub(super) dep: DepState,
    pub(super) tx: mpsc::Sender<PlatformUpdate>,
    pub(super) clock: Clock,
    /// The newest `created_at` read; each poll reads from `cursor - lookback`.
    pub(super) cursor: Timestamp,
    pub(super) cache: OrgCache,
    pub(super) pending: BTreeSet<String>,
    pub(super) id_kind: Option<IdKind>,
    pub(super) next_flags: Instant,
    pub(super) next_sessions: Instant,
    /// When the gathered org lookups go out.
    pub(super) batch_due: Option<Instant>,
}

impl PgTask {
    pub(super) async fn run(
        mut self,
        mut requests: mpsc::Receiver<String>,
        shutdown: CancellationToken,
    ) {
        let pool = match connect_postgres(&self.cfg) {
            Ok(p) => p,
            Err(e) => {
                // a URL that does not parse never gets better: report it and stay down
                self.dep.failed(&e);
                return;
            }
        };
        let mut open = true;
        loop {
            let mut wake = self.next_flags.min(self.next_sessions);
            if let Some(b) = self.batch_due {
                wake = wake.min(b);
            }
            if let Some(r) = self.dep.retry_at {
                wake = wake.max(r);
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep_until(wake) => {}
                req = requests.recv(), if open && self.pending.len() < REQUESTS => match req {
                    Some(id) => {
                        self.pending.insert(id);
                        let due = Instant::now() + ORG_BATCH_WAIT;
                        self.batch_due = Some(self.batch_due.map_or(due, |b| b.min(due)));
                        if self.pending.len() < ORG_BATCH {
                            continue;
                        }
                    }
                    // every requester is gone: polling goes on
                    None => open = false,
                },
            }
            let now = Instant::now();
            if self.dep.waiting(now) {
                continue;
            }
            // a call in flight does not hold up shutdown
            let result = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = self.cycle(&pool, now) => r,
            };
            match result {
                // up only when everything due succeeded: a half-working integration is down
                Ok(()) => self.dep.ok(),
                Err(PlatformError::Closed) => break,
                Err(e) => self.dep.failed(&e),
            }
        }
        pool.close().await;
    }

    /// Whatever is due: the flags, the new sessions, the gathered org lookups.
    async fn cycle(&mut self, pool: &PgPool, now: Instant) -> Result<(), PlatformError> {
        if now >= self.next_flags {
            self.flags(pool).await?;
            self.next_flags = now + self.cfg.organizations.poll_interval;
        }
        if now >= self.next_sessions {
            self.sessions(pool).await?;
            self.next_sessions = now + self.cfg.sessions.poll_interval;
        }
        if self
            .batch_due
            .is_some_and(|b| now >= b || self.pending.len() >= ORG_BATCH)
        {
            self.orgs(pool).await?;
            self.batch_due = (!self.pending.is_empty()).then_some(now);
        }
        Ok(())
    }

    async fn flags(&mut self, pool: &PgPool) -> Result<(), PlatformError> {
        let limit = pg_deadline(&self.cfg);
        let orgs = deadline(
            "postgres flags",
            limit,
            poll_flags(pool, &self.cfg.organizations),
        )
        .await?;
        let snap = FlagSnapshot {
            observed_at: self.clock.now(),
            orgs,
        };
        send(&self.tx, PlatformUpdate::Flags(snap)).await
    }

    async fn sessions(&mut self, pool: &PgPool) -> Result<(), PlatformError> {
        let cfg = &self.cfg.sessions;
        let lookback = i64::try_from(cfg.lookback.as_millis()).unwrap_or(i64::MAX);
        let mut since = self.cursor.saturating_add_ms(-lookback);
        let mut seen = HashSet::new();
        for _ in 0..SESSION_PAGES_PER_POLL {
            let page = deadline(
                "postgres sessions",
                pg_deadline(&self.cfg),
                created_since(pool, cfg, since, SESSION_PAGE),
            )
            .await?;
            let full = page.len() as i64 == SESSION_PAGE;
            let Some(last) = page.last().map(|s| s.created_at) else {
                break;
            };
            self.cursor = self.cursor.max(last);
            let rows: Vec<CreatedSession> = page
                .into_iter()
                .filter(|s| seen.insert(s.id.clone()))
                .filter(|s| {
                    s.status
                        .as_ref()
                        .is_none_or(|st| !cfg.exclude_statuses.contains(st))
                })
                .collect();
            if !rows.is_empty() {
                send(&self.tx, PlatformUpdate::SessionsCreated(rows)).await?;
            }
            // a full page of one instant cannot advance; the next poll goes on from the cursor
            if !full || last == since {
                break;
            }
            since = last;
        }
        Ok(())
    }

    async fn orgs(&mut self, pool: &PgPool) -> Result<(), PlatformError> {
        let batch: Vec<String> = std::iter::from_fn(|| self.pending.pop_first())
            .take(ORG_BATCH)
            .collect();
        let mut answers = Vec::with_capacity(batch.len());
        let mut ask = Vec::new();
        for id in batch {
            match self.cache.get(&id) {
                Some(org) => answers.push((id.clone(), org.map(str::to_owned))),
                None => ask.push(id),
            }
        }
        if !ask.is_empty() {
            let found = self.lookup(pool, &ask).await;
            let found = match found {
                Ok(f) => f,
                Err(e) => {
                    // keep the questions for when Postgres answers again
                    self.pending.extend(ask);
                    if !answers.is_empty() {
                        send(&self.tx, PlatformUpdate::SessionOrgs(answers)).await?;
                    }
                    return Err(e);
                }
            };
            let found: std::collections::HashMap<String, Option<String>> =
                found.into_iter().collect();
            for id in ask {
                let org = found.get(&id).cloned().flatten();
                self.cache.insert(id.clone(), org.clone());
                answers.push((id, org));
            }
        }
        send(&self.tx, PlatformUpdate::SessionOrgs(answers)).await
    }

    async fn lookup(
        &mut self,
        pool: &PgPool,
        ids: &[String],
    ) -> Result<Vec<(String, Option<String>)>, PlatformError> {
        let limit = pg_deadline(&self.cfg);
        let kind = match self.id_kind {
            Some(k) => k,
            None => {
                let k =
                    deadline("postgres id type", limit, id_kind(pool, &self.cfg.sessions)).await?;
                self.id_kind = Some(k);
                k
            }
        };
        deadline(
            "postgres session orgs",
            limit,
            org_of(pool, &self.cfg.sessions, kind, ids),
        )
        .await
    }
}
