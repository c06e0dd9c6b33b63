//! Per-finding alerts pushed to an Alertmanager (`POST <url>/api/v2/alerts`).
//!
//! In: [`AlertHandle::fire`] / [`AlertHandle::resolve`] calls from the actor, one per finding
//! (a mismatched session, a duplicate claim, an unclaimed go session, a drifted dispatch).
//! Out: HTTP posts of the set of active alerts. It never blocks ingestion: the handle only
//! `try_send`s into a bounded channel and counts what a full channel drops.
//!
//! One task owns the set of alerts, keyed by (alertname, session). It posts the set whenever
//! it changed and re-sends the firing ones every `resend_interval` (Alertmanager forgets an
//! alert whose `endsAt` passed, so firing alerts carry `endsAt` = now + 4 resend intervals,
//! as Prometheus does: if claimcheck dies, they resolve by themselves). Resolving sends the
//! alert once more with `endsAt` = now; once Alertmanager accepted it, it is dropped. A failed
//! post is retried with capped exponential backoff; the set keeps changing meanwhile and the
//! next post carries its latest state.
//!
//! The set logic ([`Alerts`]) is pure and takes the time as an argument; [`AlertPusher`] is
//! the I/O around it, reading a [`Clock`] and tokio's (pausable) timers.

use std::collections::BTreeMap;
use std::time::Duration;

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
/// A `[serve.alertmanager]` setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct AlertmanagerConfigError {
    pub key: &'static str,
    pub message: String,
}
use crate::correlate::Outcome;
use crate::correlate::live::Change;
use crate::event::{Runner, Timestamp};

/// Validated Alertmanager settings.
#[derive(Debug, Clone)]
pub struct AlertmanagerConfig {
    /// Alertmanager's base URL, e.g. `http://127.0.0.1:9093` (the API path is appended).
    pub url: reqwest::Url,
    /// Firing alerts are re-sent this often.
    pub resend_interval: Duration,
    /// Capacity of the channel from the handle to the task; beyond it findings are dropped
    /// (and counted), never waited for.
    pub queue: usize,
    /// First retry delay after a failed post; doubled per failure up to `backoff_max`.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Timeout of one post.
    pub timeout: Duration,
    /// claimcheck's own external URL: each alert links to `<base>/api/sessions/<id>`.
    pub generator_base: Option<String>,
    /// Most alerts held at once; later findings are dropped and counted.
    pub max_alerts: usize,
}

impl AlertmanagerConfig {
    /// The defaults for an Alertmanager at `url`.
    pub fn new(url: reqwest::Url) -> AlertmanagerConfig {
        AlertmanagerConfig {
            url,
            resend_interval: Duration::from_secs(60),
            queue: 4096,
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            generator_base: None,
            max_alerts: 10_000,
        }
    }
}

/// The raw `[serve.alertmanager]` table (TOML, `deny_unknown_fields`): an empty `url` (the
/// default) turns per-finding alerts off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAlertmanagerConfig {
    /// Alertmanager's base URL, e.g. `http://127.0.0.1:9093`.
    pub url: String,
    /// Firing alerts are re-sent this often (`1m`, `30s`).
    pub resend_interval: String,
    /// Alert updates queued for the pusher; beyond it they are dropped and counted.
    pub queue: usize,
    /// claimcheck's URL as people reach it; alerts link to `<external_url>/api/sessions/<id>`.
    pub external_url: String,
}

impl Default for RawAlertmanagerConfig {
    fn default() -> Self {
        RawAlertmanagerConfig {
            url: String::new(),
            resend_interval: "1m".into(),
            queue: 4096,
            external_url: String::new(),
        }
    }
}

impl AlertmanagerConfig {
    /// Validates the raw table: `None` when no `url` is set.
    pub fn from_raw(
        raw: &RawAlertmanagerConfig,
    ) -> Result<Option<AlertmanagerConfig>, AlertmanagerConfigError> {
        if raw.url.is_empty() {
            return Ok(None);
        }
        let invalid = |key, message: String| AlertmanagerConfigError { key, message };
        let url: reqwest::Url = raw.url.parse().map_err(|e| {
            invalid(
                "serve.alertmanager.url",
                format!("{:?}: {e}", crate::redact::secrets(&raw.url)),
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid(
                "serve.alertmanager.url",
                format!("{:?}: not an http(s) URL", crate::redact::secrets(&raw.url)),
            ));
        }
        let resend_interval = humantime::parse_duration(&raw.resend_interval).map_err(|e| {
            invalid(
                "serve.alertmanager.resend_interval",
                format!("{:?}: {e}", raw.resend_interval),
            )
        })?;
        if resend_interval < Duration::from_secs(1) || raw.queue == 0 {
            return Err(invalid(
                "serve.alertmanager",
                "resend_interval must be at least 1s and queue at least 1".into(),
            ));
        }
        let mut c = AlertmanagerConfig::new(url);
        c.resend_interval = resend_interval;
        c.queue = raw.queue;
        c.generator_base = (!raw.external_url.is_empty()).then(|| raw.external_url.clone());
        Ok(Some(c))
    }
}

/// The findings that become alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlertKind {
    RunnerMismatch,
    DuplicateClaim,
    UnclaimedGoSession,
    FlagDrift,
    /// A post-flip report that did not pass; `session` holds the report id.
    FlipVerification,
}

impl AlertKind {
    pub fn alertname(self) -> &'static str {
        match self {
            AlertKind::RunnerMismatch => "ClaimcheckRunnerMismatch",
            AlertKind::DuplicateClaim => "ClaimcheckDuplicateClaim",
            AlertKind::UnclaimedGoSession => "ClaimcheckUnclaimedGoSession",
            AlertKind::FlagDrift => "ClaimcheckFlagDrift",
            AlertKind::FlipVerification => "ClaimcheckFlipReportFailed",
        }
    }

    pub fn severity(self) -> &'static str {
        match self {
            AlertKind::FlagDrift => "warning",
            _ => "critical",
        }
    }

    fn summary(self) -> &'static str {
        match self {
            AlertKind::RunnerMismatch => {
                "session claimed by a runtime other than its dispatched runner"
            }
            AlertKind::DuplicateClaim => {
                "session claimed twice with no release between (double execution)"
            }
            AlertKind::UnclaimedGoSession => "go session not claimed within the claim timeout",
            AlertKind::FlagDrift => "session dispatched to a runner its org's flag does not select",
            AlertKind::FlipVerification => "post-flip verification report did not pass",
        }
    }
}

/// One finding, as the actor knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingAlert {
    pub kind: AlertKind,
    pub session: String,
    /// `unknown` when absent.
    pub org: Option<String>,
    /// The runner the session was dispatched to.
    pub runner: Option<Runner>,
    /// The runtime that claimed it (mismatch, duplicate).
    pub runtime: Option<Runner>,
    /// The runner the org's flag expected (drift).
    pub expected: Option<Runner>,
    /// One sentence of evidence for the description (times, workers).
    pub detail: Option<String>,
}

/// An alert in Alertmanager's API v2 shape (`postableAlert`).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PostableAlert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: String,
    pub ends_at: String,
    #[serde(rename = "generatorURL", skip_serializing_if = "Option::is_none")]
    pub generator_url: Option<String>,
}

#[derive(Debug, Clone)]
struct Held {
    alert: FindingAlert,
    starts_at: Timestamp,
    /// Set when resolved: sent once more with this `endsAt`, then dropped.
    resolved_at: Option<Timestamp>,
}

/// The set of alerts, keyed by (kind, session); pure, time comes in as an argument.
#[derive(Debug, Default)]
pub struct Alerts {
    held: BTreeMap<(AlertKind, String), Held>,
    /// Changed since the last successful post.
    dirty: bool,
}

impl Alerts {
    /// A finding fires (again). A re-fire of an active alert changes nothing; a re-fire of one
    /// resolved but not yet sent starts it anew. False when `max` alerts are held already.
    pub fn fire(&mut self, alert: FindingAlert, now: Timestamp, max: usize) -> bool {
        let key = (alert.kind, alert.session.clone());
        if let Some(h) = self.held.get_mut(&key) {
            if h.resolved_at.take().is_some() {
                h.starts_at = now;
                self.dirty = true;
            }
            h.alert = alert;
            return true;
        }
        if self.held.len() >= max {
            return false;
        }
        self.held.insert(
            key,
            Held {
                alert,
                starts_at: now,
                resolved_at: None,
            },
        );
        self.dirty = true;
        true
    }

    /// The finding is over (e.g. the late claim of an unclaimed session arrived).
    pub fn resolve(&mut self, kind: AlertKind, session: &str, now: Timestamp) {
        if let Some(h) = self.held.get_mut(&(kind, session.to_owned()))
            && h.resolved_at.is_none()
        {
            h.resolved_at = Some(now);
            self.dirty = true;
        }
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// What to post now: every held alert, firing ones valid until `now + valid_for`.
    pub fn batch(
        &self,
        now: Timestamp,
        valid_for: Duration,
        generator_base: Option<&str>,
    ) -> Vec<PostableAlert> {
        let valid_ms = i64::try_from(valid_for.as_millis()).unwrap_or(i64::MAX);
        self.held
            .values()
            .map(|h| {
                let ends = h.resolved_at.unwrap_or(now.saturating_add_ms(valid_ms));
                postable(&h.alert, h.starts_at, ends, generator_base)
            })
            .collect()
    }

    /// A post of `batch(..)` was accepted: resolved alerts are delivered and dropped.
    pub fn sent(&mut self) {
        self.held.retain(|_, h| h.resolved_at.is_none());
        self.dirty = false;
    }
}

fn postable(
    a: &FindingAlert,
    starts_at: Timestamp,
    ends_at: Timestamp,
    generator_base: Option<&str>,
) -> PostableAlert {
    let mut labels = BTreeMap::new();
    let mut put = |k: &str, v: &str| {
        labels.insert(k.to_owned(), v.to_owned());
    };
    put("alertname", a.kind.alertname());
    put("severity", a.kind.severity());
    put("session", &a.session);
    put("org", a.org.as_deref().unwrap_or("unknown"));
    if let Some(r) = a.runner {
        put("runner", r.as_str());
    }
    if let Some(r) = a.runtime {
        put("runtime", r.as_str());
    }
    if let Some(r) = a.expected {
        put("expected", r.as_str());
    }
    let report = a.kind == AlertKind::FlipVerification;
    let mut description = if report {
        format!(
            "the flip of org {} to {}",
            a.org.as_deref().unwrap_or("unknown"),
            a.runner.map_or("?", Runner::as_str)
        )
    } else {
        format!(
            "session {} (org {}, dispatched to {})",
            a.session,
            a.org.as_deref().unwrap_or("unknown"),
            a.runner.map_or("?", Runner::as_str)
        )
    };
    if let Some(d) = &a.detail {
        description.push_str(": ");
        description.push_str(d);
    }
    let path = if report {
        format!("/api/reports/{}.html", a.session)
    } else {
        format!("/api/sessions/{}", a.session)
    };
    description.push_str(". Check first its evidence: GET ");
    description.push_str(&path);
    description.push_str(" on claimcheck.");
    let mut annotations = BTreeMap::new();
    annotations.insert("summary".to_owned(), a.kind.summary().to_owned());
    annotations.insert("description".to_owned(), description);
    PostableAlert {
        labels,
        annotations,
        starts_at: starts_at.to_rfc3339(),
        ends_at: ends_at.to_rfc3339(),
        generator_url: generator_base.map(|b| format!("{}{path}", b.trim_end_matches('/'))),
    }
}

#[derive(Debug)]
enum Command {
    Fire(FindingAlert),
    Resolve(AlertKind, String),
}

/// The cheap, cloneable side the actor holds: never blocks, never fails loudly.
#[derive(Debug, Clone)]
pub struct AlertHandle {
    tx: mpsc::Sender<Command>,
    dropped: IntCounter,
}

impl AlertHandle {
    /// Queues a firing finding; false (and counted) when the queue is full.
    /// The queue's depth for `claimcheck_queue_items{queue="alerts"}`.
    pub fn depth_probe(&self) -> crate::sinks::self_metrics::DepthProbe {
        crate::sinks::self_metrics::QueueDepths::probe(&self.tx)
    }

    pub fn fire(&self, alert: FindingAlert) -> bool {
        self.send(Command::Fire(alert))
    }

    /// Queues the resolution of (kind, session); false (and counted) when the queue is full.
    pub fn resolve(&self, kind: AlertKind, session: &str) -> bool {
        self.send(Command::Resolve(kind, session.to_owned()))
    }

    /// The alerts one change of the live correlator raises or resolves, so wiring the pusher
    /// into the actor is one call per change (`org` is the session's org, when known):
    /// - overdue go session → fire `ClaimcheckUnclaimedGoSession`; its late claim → resolve;
    /// - judged mismatched → fire `ClaimcheckRunnerMismatch`;
    /// - duplicate claim → fire `ClaimcheckDuplicateClaim` (cross-runtime said in the text);
    /// - the session forgotten (retention) → resolve all of its alerts.
    ///
    /// Flag drift comes from the platform side: call [`AlertHandle::fire`] with
    /// [`AlertKind::FlagDrift`] there.
    pub fn on_change(&self, change: &Change, org: Option<&str>) {
        let alert =
            |kind, session: &crate::event::SessionId, runner, runtime, detail| FindingAlert {
                kind,
                session: session.as_str().to_owned(),
                org: org.map(str::to_owned),
                runner,
                runtime,
                expected: None,
                detail,
            };
        match change {
            Change::Overdue {
                session, runner, ..
            } if *runner == Runner::Go => {
                self.fire(alert(
                    AlertKind::UnclaimedGoSession,
                    session,
                    Some(Runner::Go),
                    None,
                    Some("no claim within the claim timeout of its arrival".into()),
                ));
            }
            Change::OverdueResolved { session, .. } => {
                self.resolve(AlertKind::UnclaimedGoSession, session.as_str());
            }
            Change::Judged {
                session,
                runner,
                outcome: Outcome::Mismatched,
                ..
            } => {
                self.fire(alert(
                    AlertKind::RunnerMismatch,
                    session,
                    Some(*runner),
                    None,
                    Some(format!(
                        "first claimed by a runtime other than {}",
                        runner.as_str()
                    )),
                ));
            }
            Change::Duplicate {
                session,
                runtime,
                cross_runtime,
                ..
            } => {
                let detail = if *cross_runtime {
                    "claimed again by another runtime, with no release between"
                } else {
                    "claimed again with no release between"
                };
                self.fire(alert(
                    AlertKind::DuplicateClaim,
                    session,
                    None,
                    Some(*runtime),
                    Some(detail.into()),
                ));
            }
            Change::OverdueForgotten { session, .. } | Change::Forgotten { session } => {
                for kind in [
                    AlertKind::UnclaimedGoSession,
                    AlertKind::RunnerMismatch,
                    AlertKind::DuplicateClaim,
                ] {
                    self.resolve(kind, session.as_str());
                }
            }
            _ => {}
        }
    }

    fn send(&self, c: Command) -> bool {
        let ok = self.tx.try_send(c).is_ok();
        if !ok {
            self.dropped.inc();
        }
        ok
    }
}

#[derive(Debug, Clone)]
struct PushMetrics {
    posts: IntCounterVec,
    /// How long each post took (all its chunks), by the same result as `posts`.
    duration: HistogramVec,
    active: IntGauge,
}

/// Seconds: a local Alertmanager answers in milliseconds; the top bucket is the default
/// request timeout.
const PUSH_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The task that owns the alert set and talks to Alertmanager.
#[derive(Debug)]
pub struct AlertPusher {
    config: AlertmanagerConfig,
    endpoint: reqwest::Url,
    client: reqwest::Client,
    rx: mpsc::Receiver<Command>,
    clock: Clock,
    alerts: Alerts,
    dropped: IntCounter,
    metrics: PushMetrics,
    /// The last post failed (its line was logged; the next success logs one too).
    failing: bool,
}

/// Why the pusher could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PusherError {
    #[error("cannot register alertmanager metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("bad alertmanager url: {0}")]
    Url(String),
    #[error("cannot build the http client: {0}")]
    Client(#[from] reqwest::Error),
}

impl AlertPusher {
    /// Builds the pusher and its handle; metrics go into `registry`:
    /// `claimcheck_alertmanager_posts_total{result}` and
    /// `claimcheck_alertmanager_push_duration_seconds{result}`, `claimcheck_alertmanager_alerts`
    /// (held now) and `claimcheck_alertmanager_dropped_total` (full queue or alert cap).
    pub fn new(
        config: AlertmanagerConfig,
        registry: &Registry,
        clock: Clock,
    ) -> Result<(AlertPusher, AlertHandle), PusherError> {
        let posts = IntCounterVec::new(
            Opts::new(
                "claimcheck_alertmanager_posts_total",
                "Posts of per-finding alerts to Alertmanager, by result (ok, error).",
            ),
            &["result"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "claimcheck_alertmanager_push_duration_seconds",
                "How long each post of per-finding alerts to Alertmanager took, by result (ok, error).",
            )
            .buckets(PUSH_BUCKETS.to_vec()),
            &["result"],
        )?;
        let active = IntGauge::new(
            "claimcheck_alertmanager_alerts",
            "Per-finding alerts held for Alertmanager now (firing, or resolved and not yet sent).",
        )?;
        let dropped = IntCounter::new(
            "claimcheck_alertmanager_dropped_total",
            "Per-finding alert updates dropped: the queue to the pusher was full or the alert cap reached.",
        )?;
        registry.register(Box::new(posts.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(active.clone()))?;
        registry.register(Box::new(dropped.clone()))?;
        for r in ["ok", "error"] {
            posts.with_label_values(&[r]);
            duration.with_label_values(&[r]);
        }
        // `join` replaces the last path segment unless the base ends in a slash.
        let mut base = config.url.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let endpoint = base
            .join("api/v2/alerts")
            .map_err(|e| PusherError::Url(e.to_string()))?;
        let client = reqwest::Client::builder().timeout(config.timeout).build()?;
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        let handle = AlertHandle {
            tx,
            dropped: dropped.clone(),
        };
        let pusher = AlertPusher {
            config,
            endpoint,
            client,
            rx,
            clock,
            alerts: Alerts::default(),
            dropped,
            metrics: PushMetrics {
                posts,
                duration,
                active,
            },
            failing: false,
        };
        Ok((pusher, handle))
    }

    /// `new` and spawn `run` on the current runtime; the caller owns the join handle and the
    /// token that stops it.
    pub fn spawn(
        config: AlertmanagerConfig,
        registry: &Registry,
        clock: Clock,
        shutdown: CancellationToken,
    ) -> Result<(AlertHandle, tokio::task::JoinHandle<()>), PusherError> {
        let (pusher, handle) = AlertPusher::new(config, registry, clock)?;
        Ok((handle, tokio::spawn(pusher.run(shutdown))))
    }

    /// Runs until `shutdown`, or until every handle is dropped and the last state was posted
    /// (or failed to be).
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut backoff = self.config.backoff_min;
        // When to post next: soon after a change, on the resend interval, or after a backoff.
        let mut next_post: Option<Instant> = None;
        let mut resend_at = Instant::now() + self.config.resend_interval;
        let mut open = true;
        loop {
            let wake = match next_post {
                Some(t) => t,
                None if self.alerts.is_empty() => Instant::now() + self.config.resend_interval,
                None => resend_at,
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                cmd = self.rx.recv(), if open => match cmd {
                    Some(c) => {
                        self.apply(c);
                        // take whatever else is queued, so one post carries the burst
                        while let Ok(c) = self.rx.try_recv() {
                            self.apply(c);
                        }
                        if self.alerts.is_dirty() && next_post.is_none() {
                            next_post = Some(Instant::now());
                        }
                    }
                    None => {
                        open = false;
                        if !self.alerts.is_dirty() {
                            return;
                        }
                        next_post.get_or_insert_with(Instant::now);
                    }
                },
                _ = tokio::time::sleep_until(wake) => {
                    if self.alerts.is_empty() && !self.alerts.is_dirty() {
                        next_post = None;
                        resend_at = Instant::now() + self.config.resend_interval;
                        continue;
                    }
                    // a post in flight (up to `timeout`) does not hold up shutdown
                    let posted = tokio::select! {
                        _ = shutdown.cancelled() => return,
                        ok = self.post() => ok,
                    };
                    if posted {
                        backoff = self.config.backoff_min;
                        next_post = None;
                        resend_at = Instant::now() + self.config.resend_interval;
                        if !open && !self.alerts.is_dirty() {
                            return;
                        }
                    } else {
                        next_post = Some(Instant::now() + backoff);
                        backoff = (backoff * 2).min(self.config.backoff_max);
                    }
                }
            }
        }
    }

    fn apply(&mut self, c: Command) {
        let now = self.clock.now();
        match c {
            Command::Fire(a) => {
                if !self.alerts.fire(a, now, self.config.max_alerts) {
                    self.dropped.inc();
                }
            }
            Command::Resolve(kind, session) => self.alerts.resolve(kind, &session, now),
        }
        self.metrics.active.set(self.alerts.len() as i64);
    }

    /// Posts the whole set; true when Alertmanager accepted it.
    async fn post(&mut self) -> bool {
        let batch = self.alerts.batch(
            self.clock.now(),
            self.config.resend_interval * 4,
            self.config.generator_base.as_deref(),
        );
        let started = Instant::now();
        let mut failure = None;
        // Alertmanager takes any number per post; chunks keep one body small.
        for chunk in batch.chunks(1000) {
            let res = self
                .client
                .post(self.endpoint.clone())
                .json(chunk)
                .send()
                .await;
            // A refusal or a transport error: counted below, retried with backoff.
            match res {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => {
                    failure = Some(format!("answered {}", r.status()));
                    break;
                }
                Err(e) => {
                    // the URL is in `target` once, without its credentials
                    failure = Some(e.without_url().to_string());
                    break;
                }
            }
        }
        let ok = failure.is_none();
        self.pushed(failure, batch.len(), started.elapsed());
        if ok {
            self.alerts.sent();
            self.metrics.active.set(self.alerts.len() as i64);
        }
        ok
    }

    /// THE emitter of a post's outcome: its counter, its latency and — once per change of the
    /// push target's state, never per retry — its log line.
    fn pushed(&mut self, failure: Option<String>, alerts: usize, took: Duration) {
        let result = if failure.is_none() { "ok" } else { "error" };
        match (&failure, self.failing) {
            (Some(error), false) => tracing::warn!(
                target_url = %crate::redact::secrets(self.endpoint.as_str()),
                state = "failing",
                error = %error,
                alerts,
                "alertmanager push failing"
            ),
            (None, true) => tracing::info!(
                target_url = %crate::redact::secrets(self.endpoint.as_str()),
                state = "ok",
                alerts,
                "alertmanager push recovered"
            ),
            _ => {}
        }
        self.failing = failure.is_some();
        self.metrics.posts.with_label_values(&[result]).inc();
        self.metrics
            .duration
            .with_label_values(&[result])
            .observe(took.as_secs_f64());
    }
}

#[cfg(test)]
mod tests;
