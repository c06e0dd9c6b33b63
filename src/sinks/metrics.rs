//! The Prometheus metrics of the live sidecar, registered into a registry that is passed in
//! (no global registry: tests and several sidecars in one process stay apart).
//!
//! Label values come from enums or capped sets, never from a sessionId: orgs beyond
//! `org_cap` share `org="other"`, workers beyond `worker_cap` share `worker="other"`.

use std::collections::{BTreeMap, BTreeSet};

use prometheus::{
    GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
};

use crate::correlate::live::Change;
use crate::event::{Runner, Timestamp};
use crate::parse::Reject;

/// The result of one ingested line, for `claimcheck_ingest_lines_total{result}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineResult {
    Event,
    Ignored,
    Rejected,
    Duplicate,
}

impl LineResult {
    pub fn as_str(self) -> &'static str {
        match self {
            LineResult::Event => "event",
            LineResult::Ignored => "ignored",
            LineResult::Rejected => "rejected",
            LineResult::Duplicate => "duplicate",
        }
    }
}

/// Claim latency buckets, 50 ms to 10 min (seconds).
const LATENCY_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// A set of label values that stops growing at `cap`: later values map to `other`.
#[derive(Debug)]
struct Capped {
    cap: usize,
    seen: BTreeSet<String>,
}

impl Capped {
    fn label<'a>(&mut self, value: &'a str) -> &'a str {
        if self.seen.contains(value) {
            return value;
        }
        if self.seen.len() < self.cap {
            self.seen.insert(value.to_owned());
            return value;
        }
        "other"
    }
}

/// Ingest counts held until their lines are committed: how many lines of each source were
/// each result, and rejected lines by reason.
#[derive(Debug, Default)]
pub struct LineCounts {
    lines: Vec<(String, LineResult, u64)>,
    rejected: Vec<(String, Reject, u64)>,
}

impl LineCounts {
    /// `n` lines of `source` were `result`.
    pub fn lines(&mut self, source: &str, result: LineResult, n: u64) {
        if n > 0 {
            add(&mut self.lines, source, result, n);
        }
    }

    /// A line of `source` rejected for `reason`.
    pub fn rejected(&mut self, source: &str, reason: Reject) {
        self.lines(source, LineResult::Rejected, 1);
        add(&mut self.rejected, source, reason, 1);
    }
}

/// Adds `n` to the count of (`source`, `label`) in `counts` (a batch names few of each: a
/// scan beats a map).
fn add<L: PartialEq>(counts: &mut Vec<(String, L, u64)>, source: &str, label: L, n: u64) {
    match counts
        .iter_mut()
        .find(|(s, l, _)| *l == label && s == source)
    {
        Some((_, _, m)) => *m += n,
        None => counts.push((source.to_owned(), label, n)),
    }
}

/// The ingest counters of [`Metrics`] (the same series), moved by [`LineCounts`].
#[derive(Debug, Clone)]
pub struct IngestCounters {
    lines: IntCounterVec,
    rejected: IntCounterVec,
}

impl IngestCounters {
    pub fn count(&self, c: &LineCounts) {
        for (source, result, n) in &c.lines {
            self.lines
                .with_label_values(&[source.as_str(), result.as_str()])
                .inc_by(*n);
        }
        for (source, reason, n) in &c.rejected {
            self.rejected
                .with_label_values(&[source.as_str(), reason.as_str()])
                .inc_by(*n);
        }
    }
}

#[derive(Debug)]
pub struct Metrics {
    dispatches: IntCounterVec,
    claims: IntCounterVec,
    outcomes: IntCounterVec,
    unclaimed: IntGaugeVec,
    deadline_missed: IntCounterVec,
    pending: IntGaugeVec,
    duplicates: IntCounterVec,
    orphans: IntCounterVec,
    reclaims: IntCounterVec,
    judged_early: prometheus::IntCounter,
    evicted: prometheus::IntCounter,
    latency: HistogramVec,
    lines: IntCounterVec,
    rejected: IntCounterVec,
    source_last_event: GaugeVec,
    heartbeat: GaugeVec,
    daemon_info: IntGaugeVec,
    orgs: Capped,
    workers: Capped,
    /// Newest heartbeat time (ms) of each worker, for retiring the series of silent ones.
    worker_seen: BTreeMap<(Runner, String), i64>,
    /// A worker's series go once the newest heartbeat of any worker is this much newer than
    /// its own (event time: a replay retires the same workers as the live run did).
    worker_ttl_ms: i64,
    /// The event time of the last retirement sweep.
    swept_at_ms: i64,
    /// The version each daemon last reported, so a new version replaces the old series.
    versions: BTreeMap<(Runner, String), String>,
}

fn counter(
    reg: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    reg.register(Box::new(c.clone()))?;
    Ok(c)
}

fn gauge(
    reg: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntGaugeVec> {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
    reg.register(Box::new(g.clone()))?;
    Ok(g)
}

fn float_gauge(
    reg: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<GaugeVec> {
    let g = GaugeVec::new(Opts::new(name, help), labels)?;
    reg.register(Box::new(g.clone()))?;
    Ok(g)
}

impl Metrics {
    pub fn register(
        reg: &Registry,
        org_cap: usize,
        worker_cap: usize,
    ) -> prometheus::Result<Metrics> {
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "claimcheck_claim_latency_seconds",
                "Time from dispatch to first claim by the dispatched runner (event times, clamped at 0).",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["runner"],
        )?;
        reg.register(Box::new(latency.clone()))?;
        let judged_early = prometheus::IntCounter::new(
            "claimcheck_judged_before_settled_total",
            "Sessions judged because the maximum hold expired before the low watermark settled their evidence.",
        )?;
        reg.register(Box::new(judged_early.clone()))?;
        let evicted = prometheus::IntCounter::new(
            "claimcheck_sessions_evicted_total",
            "Sessions judged early on the evidence so far and dropped because serve.max_sessions was reached.",
        )?;
        reg.register(Box::new(evicted.clone()))?;
        let m = Metrics {
            judged_early,
            evicted,
            dispatches: counter(
                reg,
                "claimcheck_dispatches_total",
                "Sessions dispatched, by runner and org.",
                &["runner", "org"],
            )?,
            claims: counter(
                reg,
                "claimcheck_claims_total",
                "Distinct claim events, by claiming runtime.",
                &["runtime"],
            )?,
            outcomes: counter(
                reg,
                "claimcheck_outcomes_total",
                "Sessions judged on their first claim: matched, late or mismatched.",
                &["runner", "outcome"],
            )?,
            unclaimed: gauge(
                reg,
                "claimcheck_unclaimed_sessions",
                "Sessions overdue now: no claim by receive time + claim timeout.",
                &["runner"],
            )?,
            deadline_missed: counter(
                reg,
                "claimcheck_claim_deadline_missed_total",
                "Sessions that became overdue (a later claim does not undo it).",
                &["runner"],
            )?,
            pending: gauge(
                reg,
                "claimcheck_pending_sessions",
                "Dispatched sessions waiting for a first claim (or for it to settle), not yet overdue.",
                &["runner"],
            )?,
            duplicates: counter(
                reg,
                "claimcheck_duplicate_claims_total",
                "Sessions claimed twice with no release between (double execution).",
                &["runtime"],
            )?,
            orphans: counter(
                reg,
                "claimcheck_orphan_claims_total",
                "Claims of sessions never dispatched within the grace period.",
                &["runtime"],
            )?,
            reclaims: counter(
                reg,
                "claimcheck_reclaims_total",
                "Claims after a release (NACK or stale-claim sweep).",
                &["runtime"],
            )?,
            latency,
            lines: counter(
                reg,
                "claimcheck_ingest_lines_total",
                "Input lines by source and result.",
                &["source", "result"],
            )?,
            rejected: counter(
                reg,
                "claimcheck_rejected_lines_total",
                "Rejected relevant lines by source and reason.",
                &["source", "reason"],
            )?,
            source_last_event: float_gauge(
                reg,
                "claimcheck_source_last_event_timestamp_seconds",
                "Event time of the newest event from each source.",
                &["source"],
            )?,
            heartbeat: float_gauge(
                reg,
                "claimcheck_daemon_last_heartbeat_timestamp_seconds",
                "Event time of each daemon's last heartbeat.",
                &["runtime", "worker"],
            )?,
            daemon_info: gauge(
                reg,
                "claimcheck_daemon_info",
                "1 for each daemon's last reported version.",
                &["runtime", "worker", "version"],
            )?,
            orgs: Capped {
                cap: org_cap,
                seen: BTreeSet::new(),
            },
            workers: Capped {
                cap: worker_cap,
                seen: BTreeSet::new(),
            },
            versions: BTreeMap::new(),
            worker_seen: BTreeMap::new(),
            worker_ttl_ms: 3_600_000,
            swept_at_ms: i64::MIN,
        };
        for r in [Runner::Go, Runner::Ts, Runner::Other] {
            // Zero series exist from the start, so rate() and alerts see a 0, not "no data".
            m.unclaimed.with_label_values(&[r.as_str()]).set(0);
            m.pending.with_label_values(&[r.as_str()]).set(0);
            m.deadline_missed.with_label_values(&[r.as_str()]);
            m.claims.with_label_values(&[r.as_str()]);
            m.duplicates.with_label_values(&[r.as_str()]);
            m.orphans.with_label_values(&[r.as_str()]);
            m.reclaims.with_label_values(&[r.as_str()]);
            m.latency.with_label_values(&[r.as_str()]);
            for o in ["matched", "late", "mismatched"] {
                m.outcomes.with_label_values(&[r.as_str(), o]);
            }
        }
        gauge(
            reg,
            "claimcheck_build_info",
            "1, labelled with the running claimcheck's version, git revision and rustc version.",
            &["version", "revision", "rustc"],
        )?
        .with_label_values(&[
            env!("CARGO_PKG_VERSION"),
            env!("CLAIMCHECK_REVISION"),
            env!("CLAIMCHECK_RUSTC"),
        ])
        .set(1);
        // `process_*`: CPU, memory, open files, start time (Linux /proc).
        #[cfg(target_os = "linux")]
        reg.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(m)
    }

    /// Applies one change of the live correlator.
    pub fn apply(&mut self, change: &Change) {
        match change {
            Change::Dispatched { runner, org, .. } => {
                let org = self.orgs.label(org.as_deref().unwrap_or("unknown"));
                self.dispatches
                    .with_label_values(&[runner.as_str(), org])
                    .inc();
            }
            Change::Claimed { runtime } => self.claims.with_label_values(&[runtime.as_str()]).inc(),
            Change::PendingStarted { runner } => {
                self.pending.with_label_values(&[runner.as_str()]).inc()
            }
            Change::PendingEnded { runner } => {
                self.pending.with_label_values(&[runner.as_str()]).dec()
            }
            Change::Judged {
                runner,
                outcome,
                latency_ms,
                ..
            } => {
                self.outcomes
                    .with_label_values(&[runner.as_str(), outcome.as_str()])
                    .inc();
                if let Some(ms) = latency_ms {
                    self.latency
                        .with_label_values(&[runner.as_str()])
                        .observe(*ms as f64 / 1000.0);
                }
            }
            Change::Overdue { runner, .. } => {
                self.unclaimed.with_label_values(&[runner.as_str()]).inc();
                self.deadline_missed
                    .with_label_values(&[runner.as_str()])
                    .inc();
            }
            Change::OverdueResolved { runner, .. } | Change::OverdueForgotten { runner, .. } => {
                self.unclaimed.with_label_values(&[runner.as_str()]).dec();
            }
            Change::Duplicate { runtime, .. } => {
                self.duplicates.with_label_values(&[runtime.as_str()]).inc()
            }
            Change::Reclaimed { runtime, .. } => {
                self.reclaims.with_label_values(&[runtime.as_str()]).inc()
            }
            Change::Orphan { runtime, .. } => {
                self.orphans.with_label_values(&[runtime.as_str()]).inc()
            }
            Change::JudgedBeforeSettled => self.judged_early.inc(),
            Change::Evicted { .. } => self.evicted.inc(),
            Change::Retired(_)
            | Change::Forgotten { .. }
            | Change::DuplicateCrossRuntime { .. } => {}
        }
    }

    /// The ingest counters alone, moved once the lines they count are committed (the one way
    /// they move).
    pub fn ingest_counters(&self) -> IngestCounters {
        IngestCounters {
            lines: self.lines.clone(),
            rejected: self.rejected.clone(),
        }
    }

    /// An event from `source` stamped `time`; the gauge only moves forward.
    pub fn event_time(&self, source: &str, time: Timestamp) {
        let g = self.source_last_event.with_label_values(&[source]);
        g.set(g.get().max(time.millis() as f64 / 1000.0));
    }

    /// A heartbeat (or claim) from a daemon, with the version it reported.
    pub fn daemon(
        &mut self,
        runtime: Runner,
        worker: &str,
        version: Option<&str>,
        heartbeat_at: Option<Timestamp>,
    ) {
        let worker = self.workers.label(worker).to_owned();
        if let Some(t) = heartbeat_at {
            let g = self
                .heartbeat
                .with_label_values(&[runtime.as_str(), &worker]);
            g.set(g.get().max(t.millis() as f64 / 1000.0));
            let seen = self
                .worker_seen
                .entry((runtime, worker.clone()))
                .or_insert(i64::MIN);
            *seen = (*seen).max(t.millis());
            self.retire_silent_workers(t.millis());
        }
        if let Some(v) = version {
            let key = (runtime, worker.clone());
            if self.versions.get(&key).map(String::as_str) != Some(v) {
                if let Some(old) = self.versions.insert(key, v.to_owned()) {
                    let _ =
                        self.daemon_info
                            .remove_label_values(&[runtime.as_str(), &worker, &old]);
                }
                self.daemon_info
                    .with_label_values(&[runtime.as_str(), &worker, v])
                    .set(1);
            }
        }
    }
}

impl Metrics {
    /// Per-worker series (`claimcheck_daemon_*`) of a worker silent this long, while others
    /// still heartbeat, are removed: a replaced pod's series do not stay forever. (When every
    /// worker falls silent, nothing is retired: that is what the daemon-silent alert is for.)
    pub fn retire_workers_after(&mut self, ttl: std::time::Duration) {
        self.worker_ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    }

    /// Sweeps at most once a minute of event time.
    fn retire_silent_workers(&mut self, now_ms: i64) {
        if now_ms.saturating_sub(self.swept_at_ms) < 60_000 {
            return;
        }
        self.swept_at_ms = now_ms;
        let horizon = now_ms.saturating_sub(self.worker_ttl_ms);
        let silent: Vec<(Runner, String)> = self
            .worker_seen
            .iter()
            .filter(|(_, last)| **last < horizon)
            .map(|(k, _)| k.clone())
            .collect();
        for (runtime, worker) in silent {
            self.worker_seen.remove(&(runtime, worker.clone()));
            let _ = self
                .heartbeat
                .remove_label_values(&[runtime.as_str(), &worker]);
            if let Some(v) = self.versions.remove(&(runtime, worker.clone())) {
                let _ = self
                    .daemon_info
                    .remove_label_values(&[runtime.as_str(), &worker, &v]);
            }
            let still_used = self.worker_seen.keys().any(|(_, w)| *w == worker);
            if !still_used {
                self.workers.seen.remove(&worker);
            }
            tracing::debug!(runtime = runtime.as_str(), worker = %worker, "retired a silent worker's series");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::correlate::Outcome;
    use crate::event::SessionId;

    fn text(reg: &Registry) -> String {
        let mut buf = String::new();
        prometheus::TextEncoder::new()
            .encode_utf8(&reg.gather(), &mut buf)
            .unwrap();
        buf
    }

    fn has(text: &str, line: &str) -> bool {
        text.lines().any(|l| l == line)
    }

    #[test]
    fn changes_move_the_named_series() {
        let reg = Registry::new();
        let mut m = Metrics::register(&reg, 1, 10).unwrap();
        let s = SessionId::new("s").unwrap();
        for c in [
            Change::Dispatched {
                first_seen: crate::event::Timestamp(0),
                runner: Runner::Go,
                session: s.clone(),
                at: crate::event::Timestamp(0),
                org: Some("org_a".into()),
            },
            Change::Dispatched {
                first_seen: crate::event::Timestamp(0),
                runner: Runner::Go,
                session: s.clone(),
                at: crate::event::Timestamp(0),
                org: Some("org_b".into()),
            },
            Change::PendingStarted { runner: Runner::Go },
            Change::PendingEnded { runner: Runner::Go },
            Change::Overdue {
                first_seen: crate::event::Timestamp(0),
                org: None,
                dispatched_at: crate::event::Timestamp(0),
                session: s.clone(),
                runner: Runner::Go,
                refile: false,
            },
            Change::Judged {
                first_seen: crate::event::Timestamp(0),
                org: None,
                dispatched_at: crate::event::Timestamp(0),
                session: s.clone(),
                runner: Runner::Go,
                outcome: Outcome::Late,
                latency_ms: Some(130_000),
                skew_clamped: false,
                refile: false,
            },
            Change::OverdueResolved {
                org: None,
                session: s.clone(),
                runner: Runner::Go,
            },
            Change::Duplicate {
                first_seen: crate::event::Timestamp(0),
                org: None,
                session: s.clone(),
                runtime: Runner::Ts,
                cross_runtime: true,
            },
        ] {
            m.apply(&c);
        }
        let t = text(&reg);
        assert!(
            has(
                &t,
                r#"claimcheck_dispatches_total{org="org_a",runner="go"} 1"#
            ),
            "{t}"
        );
        assert!(
            has(
                &t,
                r#"claimcheck_dispatches_total{org="other",runner="go"} 1"#
            ),
            "org cap: {t}"
        );
        assert!(has(
            &t,
            r#"claimcheck_outcomes_total{outcome="late",runner="go"} 1"#
        ));
        assert!(has(&t, r#"claimcheck_unclaimed_sessions{runner="go"} 0"#));
        assert!(has(
            &t,
            r#"claimcheck_claim_deadline_missed_total{runner="go"} 1"#
        ));
        assert!(has(&t, r#"claimcheck_pending_sessions{runner="go"} 0"#));
        assert!(has(
            &t,
            r#"claimcheck_duplicate_claims_total{runtime="ts"} 1"#
        ));
        assert!(has(
            &t,
            r#"claimcheck_claim_latency_seconds_bucket{runner="go",le="300"} 1"#
        ));
        assert!(has(
            &t,
            r#"claimcheck_claim_latency_seconds_bucket{runner="go",le="120"} 0"#
        ));
        // zero series exist before anything happens
        assert!(has(&t, r#"claimcheck_claims_total{runtime="ts"} 0"#));
    }

    #[test]
    fn silent_workers_series_are_retired() {
        let reg = Registry::new();
        let mut m = Metrics::register(&reg, 10, 10).unwrap();
        m.retire_workers_after(std::time::Duration::from_secs(3600));
        let t0 = Timestamp(1_700_000_000_000);
        m.daemon(Runner::Go, "old", Some("0.5.0"), Some(t0));
        m.daemon(Runner::Go, "new", Some("0.5.1"), Some(t0));
        let t = text(&reg);
        assert!(t.contains("worker=\"old\""), "{t}");
        // an hour and more later only `new` still heartbeats
        for minutes in [30, 61, 62] {
            m.daemon(
                Runner::Go,
                "new",
                None,
                Some(t0.saturating_add_ms(minutes * 60_000)),
            );
        }
        let t = text(&reg);
        assert!(!t.contains("worker=\"old\""), "{t}");
        assert!(
            t.contains("claimcheck_daemon_info{runtime=\"go\",version=\"0.5.1\",worker=\"new\"} 1"),
            "{t}"
        );
    }

    #[test]
    fn counters_exist_at_zero_before_anything_happens() {
        let reg = Registry::new();
        let _m = Metrics::register(&reg, 10, 10).unwrap();
        let t = text(&reg);
        for line in [
            "claimcheck_orphan_claims_total{runtime=\"go\"} 0",
            "claimcheck_reclaims_total{runtime=\"ts\"} 0",
            "claimcheck_outcomes_total{outcome=\"mismatched\",runner=\"go\"} 0",
            "claimcheck_claim_latency_seconds_count{runner=\"go\"} 0",
        ] {
            assert!(t.contains(line), "{line} missing:\n{t}");
        }
        assert!(t.contains("claimcheck_build_info{revision=\""), "{t}");
        assert!(t.contains("process_resident_memory_bytes"), "{t}");
    }

    #[test]
    fn ingest_and_daemon_series() {
        let reg = Registry::new();
        let mut m = Metrics::register(&reg, 10, 1).unwrap();
        let mut counts = LineCounts::default();
        counts.lines("drain", LineResult::Event, 1);
        counts.rejected("drain", Reject::MalformedJson);
        m.ingest_counters().count(&counts);
        m.event_time("drain", Timestamp(1_795_428_000_500));
        m.event_time("drain", Timestamp(1_795_427_000_000));
        m.daemon(
            Runner::Go,
            "g1",
            Some("0.4.9"),
            Some(Timestamp(1_795_428_000_000)),
        );
        m.daemon(Runner::Go, "g1", Some("0.5.2"), None);
        m.daemon(Runner::Go, "g2", Some("0.5.2"), None);
        let t = text(&reg);
        assert!(
            has(
                &t,
                r#"claimcheck_ingest_lines_total{result="rejected",source="drain"} 1"#
            ),
            "{t}"
        );
        assert!(has(
            &t,
            r#"claimcheck_rejected_lines_total{reason="malformed_json",source="drain"} 1"#
        ));
        assert!(
            has(
                &t,
                r#"claimcheck_source_last_event_timestamp_seconds{source="drain"} 1795428000.5"#
            ),
            "{t}"
        );
        assert!(has(
            &t,
            r#"claimcheck_daemon_info{runtime="go",version="0.5.2",worker="g1"} 1"#
        ));
        assert!(
            !t.contains(r#"version="0.4.9""#),
            "old version series removed: {t}"
        );
        assert!(
            has(
                &t,
                r#"claimcheck_daemon_info{runtime="go",version="0.5.2",worker="other"} 1"#
            ),
            "worker cap: {t}"
        );
        assert!(
            has(
                &t,
                r#"claimcheck_daemon_last_heartbeat_timestamp_seconds{runtime="go",worker="g1"} 1795428000"#
            ),
            "{t}"
        );
    }
}
