//! The connection to the shared state: one standalone Redis or a Redis Cluster, told apart by
//! asking the server, behind one `ConnectionLike` so the scripts do not care which.
//!
//! Both connections are multiplexed: calls made concurrently are written back to back on one
//! socket (per node) and their answers read in order, so the per-bucket script calls of a
//! batch are pipelined without a pipeline object (a cluster pipeline must stay in one slot).
//! A call made while a server is away fails with `StateError::Unavailable` and the caller
//! retries (applying is idempotent). [`Redis`] then opens a new connection on the next call:
//! the cluster client's own connection to a master that was killed and restarted kept timing
//! out after the cluster was whole again (redis 0.32; tests/it/state_shared.rs
//! `a_master_lost_is_an_error_then_stores_resume`), while a fresh one worked at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

use crate::state::StateError;

/// How long to wait for the servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing a connection.
    pub connect: Duration,
    /// One command's answer.
    pub response: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(2),
            response: Duration::from_secs(2),
        }
    }
}

/// A connection to standalone Redis or to a Redis Cluster.
#[derive(Clone)]
pub enum Conn {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Conn::Standalone(_) => "Conn::Standalone",
            Conn::Cluster(_) => "Conn::Cluster",
        })
    }
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> StateError {
    StateError::Unavailable(format!("{what}: {e}"))
}

impl Conn {
    /// Connects to `urls`: several are seed nodes of a cluster; one is a cluster's seed node
    /// when the server says it runs in cluster mode, else a standalone server.
    pub async fn connect(urls: &[String], t: Timeouts) -> Result<Conn, StateError> {
        let [first, ..] = urls else {
            return Err(StateError::Unavailable("no Redis URL given".into()));
        };
        let cluster = urls.len() > 1 || {
            let client = redis::Client::open(first.as_str()).map_err(|e| unavailable(first, e))?;
            let config = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(t.connect)
                .set_response_timeout(t.response);
            let mut c = client
                .get_multiplexed_async_connection_with_config(&config)
                .await
                .map_err(|e| unavailable(first, e))?;
            let info: String = redis::cmd("INFO")
                .arg("cluster")
                .query_async(&mut c)
                .await
                .map_err(|e| unavailable(first, e))?;
            info.lines().any(|l| l.trim() == "cluster_enabled:1")
        };
        if cluster {
            // The client's own retries would wait minutes for a master that is gone (16, up
            // to 655 s apart); a few quick ones ride out a failover's redirections, and the
            // caller retries the batch after that.
            let client = ClusterClientBuilder::new(urls.to_vec())
                .connection_timeout(t.connect)
                .response_timeout(t.response)
                .retries(3)
                .min_retry_wait(100)
                .max_retry_wait(1000)
                .build()
                .map_err(|e| unavailable("cluster", e))?;
            let c = client
                .get_async_connection()
                .await
                .map_err(|e| unavailable("cluster", e))?;
            Ok(Conn::Cluster(c))
        } else {
            let client = redis::Client::open(first.as_str()).map_err(|e| unavailable(first, e))?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(t.connect)
                .set_response_timeout(t.response)
                .set_number_of_retries(2);
            let c = ConnectionManager::new_with_config(client, config)
                .await
                .map_err(|e| unavailable(first, e))?;
            Ok(Conn::Standalone(c))
        }
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, Conn::Cluster(_))
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Standalone(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Standalone(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Standalone(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// The handle the shared state keeps: where the servers are, and the connection to them,
/// opened on first use and dropped after a failed call so the next one starts afresh.
#[derive(Debug)]
pub struct Redis {
    urls: Vec<String>,
    timeouts: Timeouts,
    current: ArcSwapOption<Conn>,
    /// Connections opened so far: a new one follows a failed call (or is the first), so a
    /// change tells the shared state it was cut off from the servers until now.
    opened: AtomicU64,
}

impl Redis {
    /// A handle on `urls` (see [`Conn::connect`]); nothing is connected yet.
    pub fn new(urls: Vec<String>, timeouts: Timeouts) -> Redis {
        Redis {
            urls,
            timeouts,
            current: ArcSwapOption::empty(),
            opened: AtomicU64::new(0),
        }
    }

    /// How many connections were opened so far.
    pub fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// The connection, opened if there is none.
    pub async fn conn(&self) -> Result<Conn, StateError> {
        if let Some(c) = self.current.load_full() {
            return Ok((*c).clone());
        }
        let c = Conn::connect(&self.urls, self.timeouts).await?;
        self.opened.fetch_add(1, Ordering::Relaxed);
        self.current.store(Some(Arc::new(c.clone())));
        Ok(c)
    }

    /// Drops the connection: the next call opens another (after a call that failed outside
    /// [`Redis::call`]).
    pub fn forget(&self) {
        self.current.store(None);
    }

    /// Runs `call` on the connection; when it fails, the connection is dropped (the next call
    /// opens another) and the error is `Unavailable`, prefixed by `what`.
    pub async fn call<T, F>(
        &self,
        what: &str,
        call: impl FnOnce(Conn) -> F,
    ) -> Result<T, StateError>
    where
        F: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let conn = self.conn().await?;
        match call(conn).await {
            Ok(t) => Ok(t),
            Err(e) => {
                self.current.store(None);
                Err(unavailable(what, e))
            }
        }
    }
}
