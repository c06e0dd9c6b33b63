//! THE emitter of `serve`: every correlator [`Change`] and every [`PlatformEvent`] goes through
//! one call here, which turns it into metrics, the summary, findings, alerts and one tracing
//! line. Nothing else in the sidecar counts, logs or alerts on them, so the log, the counter
//! and the alert about one occurrence cannot disagree.

use tokio::sync::{mpsc, watch};

use super::findings::{FindingKind, Findings, Found};
use super::view::Summary;
use crate::correlate::Outcome;
use crate::correlate::live::{Change, Counted};
use crate::event::{Runner, Timestamp};
use crate::parse::Reject;
use crate::platform::{Flip, PlatformEvent};
use crate::sinks::alertmanager::{AlertHandle, AlertKind, FindingAlert};
use crate::sinks::metrics::{IngestCounters, LineCounts, LineResult, Metrics};
use crate::state::StateError;
use crate::store::{FindingWrite, OutcomeRow, OutcomeWrite};

/// Where the sidecar's observations go.
#[derive(Debug)]
pub struct Telemetry {
    metrics: Metrics,
    summary: Summary,
    /// The share of `summary` that belongs to forgotten sessions: their evidence is pruned
    /// from the store in the same commit that saves this, so the durable totals are always
    /// this plus what the stored evidence replays to.
    retired: Summary,
    published: watch::Sender<Summary>,
    findings: Findings,
    /// Per-finding alerts, when an Alertmanager is configured.
    alerts: Option<AlertHandle>,
    /// Detected flips go here, to the reporter that writes their post-flip reports.
    flips_out: Option<mpsc::Sender<Flip>>,
    /// Per-session outcome rows not committed yet: the next commit takes them, so they land
    /// in the same transaction as the evidence that caused them.
    outcomes: Vec<OutcomeWrite>,
    /// The shared correlation state's health, with `serve --cluster`.
    cluster: Option<super::cluster::ClusterHealth>,
    /// With `serve --cluster`: the platform's finding writes not yet published to the shared
    /// state's feed (which carries them to every replica's store), oldest first, bounded.
    outbox: Vec<FindingWrite>,
}

/// Platform finding writes held for the shared state at most (a long outage): past it the
/// oldest are dropped, from the other replicas' stores only (this one wrote them).
const OUTBOX_MAX: usize = 10_000;

impl Telemetry {
    /// The metrics, for settings made after start (`serve.worker_series_ttl`).
    pub fn metrics_mut(&mut self) -> &mut Metrics {
        &mut self.metrics
    }

    pub fn new(metrics: Metrics) -> (Telemetry, watch::Receiver<Summary>) {
        let (published, rx) = watch::channel(Summary::default());
        let t = Telemetry {
            metrics,
            summary: Summary::default(),
            retired: Summary::default(),
            published,
            findings: Findings::default(),
            alerts: None,
            flips_out: None,
            outcomes: Vec::new(),
            cluster: None,
            outbox: Vec::new(),
        };
        (t, rx)
    }

    pub fn alert_to(&mut self, alerts: AlertHandle) {
        self.alerts = Some(alerts);
    }

    pub fn report_cluster_to(&mut self, health: super::cluster::ClusterHealth) {
        self.cluster = Some(health);
    }

    /// Whether the correlation state is a shared one whose health is reported.
    pub fn reports_cluster(&self) -> bool {
        self.cluster.is_some()
    }

    /// One call to the correlation state (`apply` or `tick`) and how it ended: the shared
    /// state's health, its metrics and its one log line per change of state.
    pub fn state_call(&self, call: &'static str, seconds: f64, result: Result<(), &StateError>) {
        match &self.cluster {
            Some(h) => h.call(call, seconds, result),
            None => {
                if let Err(e) = result {
                    tracing::warn!(call, error = %e, "the correlation state refused a call");
                }
            }
        }
    }

    /// `runs` of feed entries trimmed before this replica read them.
    pub fn feed_gaps(&self, runs: u64) {
        if let Some(h) = &self.cluster {
            h.feed_gaps(runs);
        }
    }

    /// The low watermark the shared state judges by, as this replica last read it.
    pub fn low_watermark(&self, ms: i64) {
        if let (Some(h), true) = (&self.cluster, ms > i64::MIN) {
            h.low_watermark(ms);
        }
    }

    pub fn report_flips_to(&mut self, reports: mpsc::Sender<Flip>) {
        self.flips_out = Some(reports);
    }

    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// Starts recovery from the totals of the sessions already forgotten; replaying the
    /// stored evidence adds the rest.
    pub fn restore_retired(&mut self, retired: Summary) {
        self.summary = retired.clone();
        self.retired = retired;
    }

    /// The totals of forgotten sessions, as JSON for the store.
    pub fn retired_json(&self) -> Option<String> {
        match serde_json::to_string(&self.retired) {
            Ok(json) => Some(json),
            Err(e) => {
                tracing::error!(error = %e, "cannot serialise the retired totals");
                None
            }
        }
    }

    /// The outcome rows written since the last call, for the commit being made.
    pub fn take_outcomes(&mut self) -> Vec<OutcomeWrite> {
        std::mem::take(&mut self.outcomes)
    }

    /// The finding writes since the last call, for the commit being made: they land in the
    /// same transaction as the evidence that caused them.
    pub fn take_findings(&mut self) -> Vec<FindingWrite> {
        self.findings.take_writes()
    }

    pub fn findings(&self) -> &Findings {
        &self.findings
    }

    /// Makes the current totals what `/api/summary` answers. With a shared state the
    /// replica's own share is not the answer: [`Telemetry::publish_shared`] is.
    pub fn publish(&self) {
        if self.cluster.is_none() {
            self.published.send_replace(self.summary.clone());
        }
    }

    /// Makes every replica's totals, as the shared state keeps them, what `/api/summary`
    /// answers (the same on every replica), and exports its pending and overdue sessions by
    /// runner.
    pub fn publish_shared(&self, totals: Summary, by_runner: &[(crate::event::Runner, u64, u64)]) {
        if let Some(h) = &self.cluster {
            h.shared_sessions(by_runner);
        }
        self.published.send_replace(totals);
    }

    /// A line delivered again (an exact re-delivery, or a drain entry seen before): not
    /// counted twice. A followed file never hands out a line twice, so from a file source
    /// this is a tailing defect (the kill-loop test reads these lines).
    pub fn duplicate(&self, counts: &mut LineCounts, source: &str, session: Option<&str>) {
        tracing::debug!(source, session, "line delivered again: deduplicated");
        counts.lines(source, LineResult::Duplicate, 1);
    }

    pub fn rejected(&self, counts: &mut LineCounts, source: &str, reason: Reject) {
        tracing::trace!(source, reason = reason.as_str(), "line rejected");
        counts.rejected(source, reason);
    }

    /// The ingest counters, for the committer.
    pub fn ingest_counters(&self) -> IngestCounters {
        self.metrics.ingest_counters()
    }

    /// The totals as they stand, to publish once what made them is committed; `None` with a
    /// shared state (see [`Telemetry::publish`]).
    pub fn snapshot(&self) -> Option<Summary> {
        self.cluster.is_none().then(|| self.summary.clone())
    }

    /// Where totals are published, for the committer.
    pub fn publisher(&self) -> watch::Sender<Summary> {
        self.published.clone()
    }

    /// Events accepted from `source`, the latest of them stamped `latest`.
    pub fn events(&mut self, source: &str, latest: Timestamp) {
        self.metrics.event_time(source, latest);
    }

    /// A heartbeat or claim accepted from a daemon, with the version it reported.
    pub fn daemon(
        &mut self,
        runtime: Runner,
        worker: &str,
        version: Option<&str>,
        heartbeat: Option<Timestamp>,
    ) {
        self.metrics.daemon(runtime, worker, version, heartbeat);
    }

    /// One change of the live correlator, everywhere it matters. With a shared state, its
    /// outcome row and finding are written from the feed instead ([`Telemetry::recorded`]),
    /// as every replica's are, so each replica's store holds every replica's.
    pub fn change(&mut self, c: &Change, now: Timestamp) {
        self.metrics.apply(c);
        if let Some(alerts) = &self.alerts {
            alerts.on_change(c, c.org());
        }
        let t = &mut self.summary;
        t.count(c);
        match c {
            Change::Dispatched { runner, org, .. } => {
                tracing::trace!(runner = runner.as_str(), org, "dispatched");
            }
            Change::Claimed { runtime } => {
                tracing::trace!(runtime = runtime.as_str(), "claimed");
            }
            Change::PendingStarted { .. } => t.pending += 1,
            Change::PendingEnded { .. } => t.pending = t.pending.saturating_sub(1),
            Change::Judged {
                session,
                runner,
                org,
                outcome,
                ..
            } => {
                tracing::debug!(
                    session = session.as_str(),
                    runner = runner.as_str(),
                    org,
                    outcome = outcome.as_str(),
                    "judged"
                );
            }
            Change::Overdue {
                session,
                runner,
                org,
                ..
            } => {
                tracing::debug!(
                    session = session.as_str(),
                    runner = runner.as_str(),
                    org,
                    "overdue: no claim within the claim timeout"
                );
                t.unclaimed += 1;
            }
            Change::OverdueResolved { session, .. } => {
                tracing::debug!(
                    session = session.as_str(),
                    "overdue session claimed after all"
                );
                t.unclaimed = t.unclaimed.saturating_sub(1);
            }
            Change::OverdueForgotten { .. } => t.unclaimed = t.unclaimed.saturating_sub(1),
            Change::Duplicate {
                session,
                runtime,
                cross_runtime,
                ..
            } => {
                tracing::debug!(
                    session = session.as_str(),
                    runtime = runtime.as_str(),
                    cross_runtime,
                    "duplicate claim"
                );
            }
            Change::DuplicateCrossRuntime { session, .. } => {
                tracing::debug!(
                    session = session.as_str(),
                    "duplicate claim, across runtimes after all"
                );
            }
            Change::Orphan {
                session, runtime, ..
            } => {
                tracing::debug!(
                    session = session.as_str(),
                    runtime = runtime.as_str(),
                    "orphan claim"
                );
            }
            Change::Reclaimed { runtime, .. } => {
                tracing::trace!(runtime = runtime.as_str(), "re-claimed after a release");
            }
            Change::JudgedBeforeSettled => {
                tracing::debug!("judged before its evidence settled: the maximum hold expired");
            }
            Change::Retired(counted) => retire(&mut self.retired, counted),
            Change::Evicted { session, .. } => {
                tracing::debug!(
                    session = session.as_str(),
                    "evicted: the session cap was reached; judged on the evidence so far"
                );
            }
            Change::Forgotten { session } => {
                tracing::trace!(session = session.as_str(), "forgotten");
            }
        }
        if self.cluster.is_none() {
            self.recorded(c, now);
        }
    }

    /// The outcome row and the finding a change writes, found at `now` (the clock of the
    /// replica that judged it). Writing one twice changes nothing: rows are keyed by when
    /// their session was first seen and its id, findings by session.
    pub fn recorded(&mut self, c: &Change, now: Timestamp) {
        let row = |session: &crate::event::SessionId,
                   first_seen: Timestamp,
                   org: &Option<String>,
                   runner: Runner,
                   dispatched_at: Timestamp,
                   outcome: Outcome| OutcomeRow {
            session: session.to_string(),
            org: org.clone(),
            runner,
            dispatched_at,
            first_seen,
            outcome,
            latency_ms: None,
            skew_clamped: false,
        };
        let found = match c {
            Change::Dispatched {
                session,
                first_seen,
                runner,
                org,
                at,
            } => {
                let r = row(session, *first_seen, org, *runner, *at, Outcome::Pending);
                self.outcomes.push(OutcomeWrite::Dispatched(r));
                None
            }
            Change::Judged {
                session,
                first_seen,
                runner,
                org,
                dispatched_at,
                outcome,
                latency_ms,
                skew_clamped,
                refile,
            } => {
                let r = OutcomeRow {
                    latency_ms: *latency_ms,
                    skew_clamped: *skew_clamped,
                    ..row(session, *first_seen, org, *runner, *dispatched_at, *outcome)
                };
                self.outcomes.push(OutcomeWrite::judged(r, *refile));
                let kind = match outcome {
                    Outcome::Matched => None,
                    Outcome::Late => Some(FindingKind::Late),
                    Outcome::Mismatched => Some(FindingKind::Mismatched),
                    Outcome::Unclaimed | Outcome::Pending => None,
                };
                kind.map(|kind| {
                    let claim = match latency_ms {
                        Some(ms) => format!("first claim {:.3} s after it", *ms as f64 / 1000.0),
                        None => "first claim".to_owned(),
                    };
                    let by = if kind == FindingKind::Mismatched {
                        " by another runtime"
                    } else {
                        ""
                    };
                    let detail = format!(
                        "dispatched to {} at {}; {claim}{by}",
                        runner.as_str(),
                        dispatched_at.to_rfc3339()
                    );
                    (
                        kind,
                        session.as_str().to_owned(),
                        session,
                        *runner,
                        org,
                        detail,
                    )
                })
            }
            Change::Overdue {
                session,
                first_seen,
                runner,
                org,
                dispatched_at,
                refile,
            } => {
                let r = row(
                    session,
                    *first_seen,
                    org,
                    *runner,
                    *dispatched_at,
                    Outcome::Unclaimed,
                );
                self.outcomes.push(OutcomeWrite::judged(r, *refile));
                let detail = format!(
                    "dispatched to {} at {}; no claim within the claim timeout",
                    runner.as_str(),
                    dispatched_at.to_rfc3339()
                );
                Some((
                    FindingKind::Unclaimed,
                    session.as_str().to_owned(),
                    session,
                    *runner,
                    org,
                    detail,
                ))
            }
            Change::OverdueResolved { session, .. } => {
                self.findings
                    .resolve(FindingKind::Unclaimed, session.as_str(), now);
                None
            }
            Change::Duplicate {
                session,
                first_seen,
                runtime,
                cross_runtime,
                org,
            } => {
                self.outcomes.push(OutcomeWrite::Duplicate {
                    session: session.to_string(),
                    first_seen: *first_seen,
                    cross_runtime: *cross_runtime,
                });
                let kind = if *cross_runtime {
                    FindingKind::DuplicateClaimCrossRuntime
                } else {
                    FindingKind::DuplicateClaim
                };
                let detail = format!(
                    "claimed again by {} with no release between",
                    runtime.as_str()
                );
                Some((
                    kind,
                    session.as_str().to_owned(),
                    session,
                    *runtime,
                    org,
                    detail,
                ))
            }
            Change::DuplicateCrossRuntime {
                session,
                first_seen,
                org,
            } => {
                self.outcomes.push(OutcomeWrite::Duplicate {
                    session: session.to_string(),
                    first_seen: *first_seen,
                    cross_runtime: true,
                });
                Some((
                    FindingKind::DuplicateClaimCrossRuntime,
                    session.as_str().to_owned(),
                    session,
                    Runner::Other,
                    org,
                    "claimed by both runtimes with no release between".to_owned(),
                ))
            }
            Change::Orphan {
                session,
                runtime,
                claim,
            } => {
                let detail = format!(
                    "claim by {} of a session never dispatched in the evidence",
                    runtime.as_str()
                );
                Some((
                    FindingKind::OrphanClaim,
                    format!("{}#{claim}", session.as_str()),
                    session,
                    *runtime,
                    &None,
                    detail,
                ))
            }
            Change::Reclaimed {
                session,
                first_seen,
                total,
                ..
            } => {
                self.outcomes.push(OutcomeWrite::Reclaimed {
                    session: session.to_string(),
                    first_seen: *first_seen,
                    total: *total,
                });
                None
            }
            _ => None,
        };
        if let Some((kind, key, session, runner, org, detail)) = found {
            self.findings.found(
                Found {
                    kind,
                    key,
                    session: Some(session.as_str()),
                    org: org.as_deref(),
                    runner: runner.as_str(),
                    detail: Some(detail),
                },
                now,
            );
        }
    }

    /// One platform event: its finding, alert and log line. `true` if a flip changed the
    /// flag book (which the caller then commits). With a shared state, its finding writes
    /// are also held for [`Telemetry::outbox`]: written here at once, in the commit of what
    /// caused them, and in every other replica's store from the feed, with the same fields
    /// (written here again from the feed, they change nothing: findings are keyed).
    pub fn platform(&mut self, e: PlatformEvent, now: Timestamp) -> bool {
        let from = self.findings.written();
        let flipped = self.platform_finding(e, now);
        if self.cluster.is_some() {
            let writes = self.findings.writes_since(from).iter().cloned();
            self.outbox.extend(writes);
            if self.outbox.len() > OUTBOX_MAX {
                let dropped = self.outbox.len() - OUTBOX_MAX;
                self.outbox.drain(..dropped);
                tracing::warn!(
                    dependency = "cluster",
                    dropped,
                    "platform findings not published for too long: the oldest are dropped; the other replicas will not list them"
                );
            }
        }
        flipped
    }

    /// The platform's finding writes waiting to be published to the shared state, oldest
    /// first.
    pub fn outbox(&self) -> &[FindingWrite] {
        &self.outbox
    }

    /// The first `n` of [`Telemetry::outbox`] were published.
    pub fn published(&mut self, n: usize) {
        self.outbox.drain(..n.min(self.outbox.len()));
    }

    /// A platform finding write another replica (or this one) published to the shared
    /// state's feed, written into this replica's findings as it was made.
    pub fn shared_finding(&mut self, f: FindingWrite) {
        match f {
            FindingWrite::Found(f) => self.findings.found(
                Found {
                    kind: f.kind,
                    key: f.key,
                    session: f.session.as_deref(),
                    org: f.org.as_deref(),
                    runner: f.runner,
                    detail: f.detail,
                },
                f.found_at,
            ),
            FindingWrite::Resolved { kind, key, at } => self.findings.resolve(kind, &key, at),
            FindingWrite::Annotated { kind, key, detail } => {
                self.findings.annotate(kind, &key, detail);
            }
        }
    }

    fn platform_finding(&mut self, e: PlatformEvent, now: Timestamp) -> bool {
        let (kind, key, session, runner, org, detail) = match e {
            PlatformEvent::Flip(f) => {
                if let Some(out) = &self.flips_out {
                    // Flips are rare; a full queue is caught up from the stored book.
                    let _ = out.try_send(f.clone());
                }
                tracing::info!(org = %f.org, from = f.from.as_str(), to = f.to.as_str(), at = %f.at.to_rfc3339(), "flip");
                let detail = format!(
                    "{} → {} at {}",
                    f.from.as_str(),
                    f.to.as_str(),
                    f.at.to_rfc3339()
                );
                self.findings.found(
                    Found {
                        kind: FindingKind::Flip,
                        key: format!("{}\n{}", f.org, f.at.millis()),
                        session: None,
                        org: Some(&f.org),
                        runner: f.to.as_str(),
                        detail: Some(detail),
                    },
                    now,
                );
                return true;
            }
            PlatformEvent::MalformedFlag(m) => {
                tracing::warn!(org = %m.org, raw = %m.raw, "malformed runner_default: the org stays on ts");
                let detail = format!("runner_default = {} (read as ts)", m.raw);
                (
                    FindingKind::MalformedFlag,
                    format!("{}\n{}\n{}", m.org, m.raw, now.millis()),
                    None,
                    "ts",
                    m.org,
                    detail,
                )
            }
            PlatformEvent::Drift(d) => {
                tracing::info!(session = %d.session, org = %d.org, dispatched = d.dispatched.as_str(), expected = d.expected.as_str(), "flag drift");
                if let Some(alerts) = &self.alerts {
                    alerts.fire(FindingAlert {
                        kind: AlertKind::FlagDrift,
                        session: d.session.clone(),
                        org: Some(d.org.clone()),
                        runner: Some(d.dispatched),
                        runtime: None,
                        expected: Some(d.expected),
                        detail: None,
                    });
                }
                let detail = format!(
                    "dispatched to {} at {}; the org's flag said {}",
                    d.dispatched.as_str(),
                    d.dispatched_at.to_rfc3339(),
                    d.expected.as_str()
                );
                (
                    FindingKind::FlagDrift,
                    d.session.clone(),
                    Some(d.session),
                    d.dispatched.as_str(),
                    d.org,
                    detail,
                )
            }
            PlatformEvent::MissingFromLogs(c) => {
                tracing::info!(session = %c.id, "in agent_sessions, never seen as a dispatch");
                let detail = format!(
                    "created {} in agent_sessions, never seen as a dispatch",
                    c.created_at.to_rfc3339()
                );
                let org = c.org.unwrap_or_else(|| "unknown".into());
                (
                    FindingKind::MissingFromLogs,
                    c.id.clone(),
                    Some(c.id),
                    "unknown",
                    org,
                    detail,
                )
            }
            PlatformEvent::MissingResolved { session } => {
                self.findings
                    .resolve(FindingKind::MissingFromLogs, &session, now);
                return false;
            }
            PlatformEvent::Witness { session, worker } => {
                let detail = match &worker {
                    Some(w) => format!(
                        "Redis claim key held by {w}: the session was claimed, its claim line is missing"
                    ),
                    None => "no Redis claim key: nobody holds the session".to_owned(),
                };
                tracing::debug!(session = %session, holder = worker.as_deref(), "redis claim witness");
                self.findings.note_witness(&session, worker);
                self.findings
                    .annotate(FindingKind::Unclaimed, &session, detail);
                return false;
            }
            PlatformEvent::SessionOrg { .. } => return false,
        };
        self.findings.found(
            Found {
                kind,
                key,
                session: session.as_deref(),
                org: Some(&org),
                runner,
                detail: Some(detail),
            },
            now,
        );
        false
    }
}

/// Adds a forgotten session's share of the cumulative counters to `t`.
fn retire(t: &mut Summary, c: &Counted) {
    if let Some(r) = c.dispatched {
        t.dispatched.bump(r);
    }
    match c.outcome {
        Some(Outcome::Matched) => t.matched += 1,
        Some(Outcome::Late) => t.late += 1,
        Some(Outcome::Mismatched) => t.mismatched += 1,
        _ => {}
    }
    t.skew_clamped += u64::from(c.skew_clamped);
    t.duplicate_claims += u64::from(c.duplicate);
    t.duplicate_claims_cross_runtime += u64::from(c.duplicate_cross_runtime);
    t.reclaims += u64::from(c.reclaims);
    t.orphan_claims += u64::from(c.orphan_claims);
}
