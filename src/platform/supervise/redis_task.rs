//! The Redis task: the queue every `poll_interval`, and claim keys as they are asked for.

use redis::aio::MultiplexedConnection;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{DepState, PlatformUpdate, REQUESTS, connect_redis, deadline, send};
use crate::platform::PlatformError;
use crate::platform::config::RedisConfig;
use crate::platform::queue::{claim_witness, queue_stats};

pub(super) struct RedisTask {
    pub(super) cfg: RedisConfig,
    pub(super) dep: DepState,
    pub(super) tx: mpsc::Sender<PlatformUpdate>,
    /// Dropped on any error and re-opened on the backoff schedule: the connection's state is
    /// then always known, unlike a manager reconnecting behind the caller's back.
    pub(super) con: Option<MultiplexedConnection>,
    pub(super) pending: Vec<String>,
}

impl RedisTask {
    pub(super) async fn run(
        mut self,
        mut requests: mpsc::Receiver<String>,
        shutdown: CancellationToken,
    ) {
        let every = self.cfg.poll_interval;
        let mut next_poll = Instant::now();
        let mut open = true;
        loop {
            let mut wake = next_poll;
            if !self.pending.is_empty() {
                wake = Instant::now();
            }
            if let Some(r) = self.dep.retry_at {
                wake = wake.max(r);
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep_until(wake) => {}
                req = requests.recv(), if open && self.pending.len() < REQUESTS => match req {
                    Some(id) => self.pending.push(id),
                    // every requester is gone: polling goes on
                    None => open = false,
                },
            }
            let now = Instant::now();
            if self.dep.waiting(now) {
                continue;
            }
            let poll = now >= next_poll;
            let result = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = self.round(poll) => r,
            };
            match result {
                Ok(()) => {
                    if poll {
                        next_poll = now + every;
                    }
                    self.dep.ok();
                }
                Err(PlatformError::Closed) => break,
                Err(e) => {
                    self.con = None;
                    self.dep.failed(&e);
                }
            }
        }
    }

    async fn round(&mut self, poll: bool) -> Result<(), PlatformError> {
        let limit = self.cfg.call_timeout;
        let con = match &mut self.con {
            Some(c) => c,
            None => self.con.insert(connect_redis(&self.cfg).await?),
        };
        if poll {
            let stats = deadline("redis queue", limit * 4, queue_stats(con, &self.cfg)).await?;
            send(&self.tx, PlatformUpdate::Queue(stats)).await?;
        }
        while let Some(session) = self.pending.last().cloned() {
            let worker = deadline(
                "redis claim",
                limit,
                claim_witness(con, &self.cfg, &session),
            )
            .await?;
            self.pending.pop();
            send(&self.tx, PlatformUpdate::ClaimWitness { session, worker }).await?;
        }
        Ok(())
    }
}
