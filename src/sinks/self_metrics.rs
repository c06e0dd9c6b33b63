//! What claimcheck says about itself, beside what it says about the platform: HTTP requests
//! by route and status, store commits, the shared correlation state, and the depth of its internal queues. (`process_*` and
//! `claimcheck_build_info` are registered with the live metrics, `crate::sinks::metrics`.)
//!
//! Labels stay bounded: routes are axum's matched templates (`/api/sessions/{id}`, never an
//! id), anything unmatched is `route="unmatched"`, and queue names are fixed strings.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

/// Request latency buckets, 1 ms to 10 s (seconds).
const HTTP_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Store commit latency buckets, 1 ms to 10 s (seconds).
const COMMIT_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 10.0,
];

/// `claimcheck_http_requests_total{route,method,status}` and
/// `claimcheck_http_request_duration_seconds{route,method}`.
#[derive(Debug, Clone)]
pub struct HttpMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
}

impl HttpMetrics {
    pub fn register(reg: &Registry) -> prometheus::Result<HttpMetrics> {
        let requests = IntCounterVec::new(
            Opts::new(
                "claimcheck_http_requests_total",
                "HTTP requests answered, by route template, method and status code.",
            ),
            &["route", "method", "status"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "claimcheck_http_request_duration_seconds",
                "Time to answer an HTTP request (until its headers), by route template and method.",
            )
            .buckets(HTTP_BUCKETS.to_vec()),
            &["route", "method"],
        )?;
        reg.register(Box::new(requests.clone()))?;
        reg.register(Box::new(duration.clone()))?;
        Ok(HttpMetrics { requests, duration })
    }

    /// One request answered.
    pub fn observe(&self, route: &str, method: &str, status: &str, seconds: f64) {
        self.duration
            .with_label_values(&[route, method])
            .observe(seconds);
        self.requests
            .with_label_values(&[route, method, status])
            .inc();
    }

    /// Wraps every route of `router` (and its fallback) in the counting middleware.
    pub fn layer<S: Clone + Send + Sync + 'static>(
        self,
        router: axum::Router<S>,
    ) -> axum::Router<S> {
        router.layer(axum::middleware::from_fn_with_state(self, track))
    }
}

async fn track(State(m): State<HttpMetrics>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    // Only the methods the API knows get their own value; the rest are `other`.
    let method: &'static str = match req.method().as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "HEAD" => "HEAD",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    };
    let start = tokio::time::Instant::now();
    let resp = next.run(req).await;
    m.observe(
        &route,
        method,
        resp.status().as_str(),
        start.elapsed().as_secs_f64(),
    );
    resp
}

/// `claimcheck_recovering`, `claimcheck_recovery_lines_stored`,
/// `claimcheck_recovery_lines_replayed_total` and `claimcheck_recovery_duration_seconds`. Set
/// only by serve's recovery progress emitter.
#[derive(Debug, Clone)]
pub struct RecoveryMetrics {
    recovering: prometheus::IntGauge,
    stored: prometheus::IntGauge,
    replayed: IntCounter,
    seconds: prometheus::Gauge,
}

impl RecoveryMetrics {
    pub fn register(reg: &Registry) -> prometheus::Result<RecoveryMetrics> {
        let recovering = prometheus::IntGauge::new(
            "claimcheck_recovering",
            "1 while serve replays its store after a start (/readyz answers 503 recovering), then 0.",
        )?;
        let stored = prometheus::IntGauge::new(
            "claimcheck_recovery_lines_stored",
            "Lines the store held when recovery began (progress: replayed / stored).",
        )?;
        let replayed = IntCounter::new(
            "claimcheck_recovery_lines_replayed_total",
            "Stored lines replayed by recovery.",
        )?;
        let seconds = prometheus::Gauge::new(
            "claimcheck_recovery_duration_seconds",
            "How long the last recovery took, from the start of the replay to ready.",
        )?;
        reg.register(Box::new(recovering.clone()))?;
        reg.register(Box::new(stored.clone()))?;
        reg.register(Box::new(replayed.clone()))?;
        reg.register(Box::new(seconds.clone()))?;
        Ok(RecoveryMetrics {
            recovering,
            stored,
            replayed,
            seconds,
        })
    }

    pub fn started(&self, stored: u64) {
        self.recovering.set(1);
        self.stored.set(i64::try_from(stored).unwrap_or(i64::MAX));
    }

    pub fn replayed(&self, lines: u64) {
        self.replayed.inc_by(lines);
    }

    pub fn done(&self, seconds: f64) {
        self.recovering.set(0);
        self.seconds.set(seconds);
    }
}

/// `claimcheck_store_up`, `claimcheck_store_commit_duration_seconds` and
/// `claimcheck_store_commit_failures_total`. Set only by serve's store health emitter.
#[derive(Debug, Clone)]
pub struct StoreMetrics {
    up: prometheus::IntGauge,
    duration: prometheus::Histogram,
    failures: IntCounter,
}

impl StoreMetrics {
    pub fn register(reg: &Registry) -> prometheus::Result<StoreMetrics> {
        let duration = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "claimcheck_store_commit_duration_seconds",
                "Time of one store commit attempt (a batch's lines, positions and totals in one transaction).",
            )
            .buckets(COMMIT_BUCKETS.to_vec()),
        )?;
        let failures = IntCounter::new(
            "claimcheck_store_commit_failures_total",
            "Store commit attempts that failed (each is retried with backoff; ingestion waits).",
        )?;
        let up = prometheus::IntGauge::new(
            "claimcheck_store_up",
            "1 while the store takes commits and its file is the one opened; 0 while commits fail, the SQLite file is deleted or replaced, or Postgres does not answer.",
        )?;
        up.set(1);
        reg.register(Box::new(up.clone()))?;
        reg.register(Box::new(duration.clone()))?;
        reg.register(Box::new(failures.clone()))?;
        Ok(StoreMetrics {
            up,
            duration,
            failures,
        })
    }

    pub fn set_up(&self, up: bool) {
        self.up.set(i64::from(up));
    }

    /// One attempt took `seconds`; `ok` says whether it landed.
    pub fn attempt(&self, seconds: f64, ok: bool) {
        self.duration.observe(seconds);
        if !ok {
            self.failures.inc();
        }
    }
}

/// What one replica says about the shared correlation state (`serve --cluster`):
/// `claimcheck_cluster_up`, the latency and failures of its calls to it, and the low watermark
/// it judges by. Per replica: across replicas, `min`/`max without (instance)` and
/// `sum without (instance)` are the queries (README, "Running several sidecars").
#[derive(Debug, Clone)]
pub struct ClusterMetrics {
    up: prometheus::IntGauge,
    duration: HistogramVec,
    failures: IntCounterVec,
    low_watermark: prometheus::Gauge,
    pending: IntGaugeVec,
    unclaimed: IntGaugeVec,
}

impl ClusterMetrics {
    pub fn register(reg: &Registry) -> prometheus::Result<ClusterMetrics> {
        let up = prometheus::IntGauge::new(
            "claimcheck_cluster_up",
            "1 while this replica's calls to the shared correlation state (Redis) succeed; 0 while they fail (batches wait and are applied again; sources are held back, never dropped).",
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "claimcheck_cluster_call_duration_seconds",
                "Time of one call to the shared correlation state: a batch's script calls (apply), a sweep's (tick) or a read of every replica's judgements (feed), pipelined.",
            )
            .buckets(COMMIT_BUCKETS.to_vec()),
            &["call"],
        )?;
        let failures = IntCounterVec::new(
            Opts::new(
                "claimcheck_cluster_call_failures_total",
                "Calls to the shared correlation state that failed (each batch is applied again with backoff).",
            ),
            &["call"],
        )?;
        let low_watermark = prometheus::Gauge::new(
            "claimcheck_cluster_low_watermark_seconds",
            "The low watermark of the shared sources (Unix seconds) as this replica last read it: sessions are judged once it passes their first claim plus the allowed lateness.",
        )?;
        let pending = IntGaugeVec::new(
            Opts::new(
                "claimcheck_cluster_pending_sessions",
                "Dispatched sessions waiting for a first claim, not overdue, over every replica (the shared state's count; every replica exports the same value: max without (instance)).",
            ),
            &["runner"],
        )?;
        let unclaimed = IntGaugeVec::new(
            Opts::new(
                "claimcheck_cluster_unclaimed_sessions",
                "Dispatched sessions overdue with no claim, over every replica (the shared state's count; every replica exports the same value: max without (instance)).",
            ),
            &["runner"],
        )?;
        up.set(1);
        for call in ["apply", "tick", "feed"] {
            duration.with_label_values(&[call]);
            failures.with_label_values(&[call]);
        }
        reg.register(Box::new(up.clone()))?;
        reg.register(Box::new(duration.clone()))?;
        reg.register(Box::new(failures.clone()))?;
        reg.register(Box::new(low_watermark.clone()))?;
        reg.register(Box::new(pending.clone()))?;
        reg.register(Box::new(unclaimed.clone()))?;
        Ok(ClusterMetrics {
            up,
            duration,
            failures,
            low_watermark,
            pending,
            unclaimed,
        })
    }

    pub fn set_up(&self, up: bool) {
        self.up.set(i64::from(up));
    }

    /// One `call` (`apply` or `tick`) took `seconds`; `ok` says whether it succeeded.
    pub fn call(&self, call: &'static str, seconds: f64, ok: bool) {
        self.duration.with_label_values(&[call]).observe(seconds);
        if !ok {
            self.failures.with_label_values(&[call]).inc();
        }
    }

    /// The shared state's pending and overdue sessions of `runner`.
    pub fn shared_sessions(&self, runner: &str, pending: u64, overdue: u64) {
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.pending.with_label_values(&[runner]).set(n(pending));
        self.unclaimed.with_label_values(&[runner]).set(n(overdue));
    }

    /// The low watermark, in Unix milliseconds.
    pub fn low_watermark(&self, ms: i64) {
        self.low_watermark.set(ms as f64 / 1000.0);
    }
}

/// Reads one queue's (depth, capacity) at scrape time; `None` once the queue is gone.
pub type DepthProbe = Box<dyn Fn() -> Option<(usize, usize)> + Send + Sync>;

/// `claimcheck_queue_items{queue}` and `claimcheck_queue_capacity{queue}`, read from the
/// channels themselves when Prometheus scrapes (nothing to keep current between scrapes).
#[derive(Clone)]
pub struct QueueDepths {
    probes: Arc<Vec<(&'static str, DepthProbe)>>,
    items: IntGaugeVec,
    capacity: IntGaugeVec,
}

impl std::fmt::Debug for QueueDepths {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.probes.iter().map(|(n, _)| *n).collect();
        f.debug_struct("QueueDepths")
            .field("queues", &names)
            .finish()
    }
}

impl QueueDepths {
    /// Registers one collector for `probes` (queue name → probe).
    pub fn register(
        reg: &Registry,
        probes: Vec<(&'static str, DepthProbe)>,
    ) -> prometheus::Result<()> {
        let items = IntGaugeVec::new(
            Opts::new(
                "claimcheck_queue_items",
                "Items waiting in one of claimcheck's internal queues (batches to the core, queries, alerts).",
            ),
            &["queue"],
        )?;
        let capacity = IntGaugeVec::new(
            Opts::new(
                "claimcheck_queue_capacity",
                "Capacity of each internal queue; items near it mean back-pressure.",
            ),
            &["queue"],
        )?;
        reg.register(Box::new(QueueDepths {
            probes: Arc::new(probes),
            items,
            capacity,
        }))
    }

    /// The (depth, capacity) of a tokio channel, through a weak sender: the collector never
    /// keeps a channel open.
    pub fn probe<T: Send + 'static>(tx: &tokio::sync::mpsc::Sender<T>) -> DepthProbe {
        let weak = tx.downgrade();
        Box::new(move || {
            let tx = weak.upgrade()?;
            Some((tx.max_capacity() - tx.capacity(), tx.max_capacity()))
        })
    }
}

impl Collector for QueueDepths {
    fn desc(&self) -> Vec<&Desc> {
        let mut d = self.items.desc();
        d.extend(self.capacity.desc());
        d
    }

    fn collect(&self) -> Vec<MetricFamily> {
        for (name, probe) in self.probes.iter() {
            let (depth, cap) = probe().unwrap_or((0, 0));
            self.items
                .with_label_values(&[name])
                .set(i64::try_from(depth).unwrap_or(i64::MAX));
            self.capacity
                .with_label_values(&[name])
                .set(i64::try_from(cap).unwrap_or(i64::MAX));
        }
        let mut out = self.items.collect();
        out.extend(self.capacity.collect());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn queue_depth_is_read_at_scrape_time() {
        let reg = Registry::new();
        let (tx, _rx) = tokio::sync::mpsc::channel::<u8>(8);
        QueueDepths::register(&reg, vec![("batches", QueueDepths::probe(&tx))]).unwrap();
        tx.send(1).await.unwrap();
        tx.send(2).await.unwrap();
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&reg.gather())
            .unwrap();
        assert!(
            text.contains("claimcheck_queue_items{queue=\"batches\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("claimcheck_queue_capacity{queue=\"batches\"} 8"),
            "{text}"
        );
    }
}
