//! The platform integrations' Prometheus series, registered into a registry passed in.
//! Cloning shares the series: the supervising tasks keep `dependency_up` current, the actor
//! moves the rest through [`super::Platform`].
//!
//! Org labels are capped like `sinks::metrics`: past `org_cap` distinct orgs, the per-org
//! gauges are not exported for new orgs and drift counts under `org="other"`.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use prometheus::{
    GaugeVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry, core::Collector,
};

use super::flags::{FlagBook, Flip};
use super::queue::QueueStats;
use crate::event::Runner;

/// A dependency whose state `claimcheck_dependency_up` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dependency {
    Postgres,
    Redis,
}

impl Dependency {
    pub fn as_str(self) -> &'static str {
        match self {
            Dependency::Postgres => "postgres",
            Dependency::Redis => "redis",
        }
    }
}

#[derive(Debug, Clone)]
pub struct PlatformMetrics {
    expected: IntGaugeVec,
    malformed: IntGaugeVec,
    flips: IntCounterVec,
    drift: IntCounterVec,
    missing: IntCounter,
    queue_depth: IntGaugeVec,
    queue_age: GaugeVec,
    witnessed: IntCounterVec,
    dependency_up: IntGaugeVec,
    /// Orgs given their own series. A std Mutex: held for a set lookup, never across an await.
    orgs: Arc<Mutex<BTreeSet<String>>>,
    org_cap: usize,
}

fn reg<C: Collector + Clone + 'static>(r: &Registry, c: C) -> prometheus::Result<C> {
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

impl PlatformMetrics {
    pub const DEFAULT_ORG_CAP: usize = 1000;

    pub fn new(registry: &Registry) -> prometheus::Result<PlatformMetrics> {
        PlatformMetrics::with_org_cap(registry, PlatformMetrics::DEFAULT_ORG_CAP)
    }

    pub fn with_org_cap(
        registry: &Registry,
        org_cap: usize,
    ) -> prometheus::Result<PlatformMetrics> {
        let m = PlatformMetrics {
            expected: reg(
                registry,
                IntGaugeVec::new(
                    Opts::new(
                        "claimcheck_org_expected_runner",
                        "1 on the runner each org's flag expects (Postgres organizations, as the resolver reads it), 0 on the other.",
                    ),
                    &["org", "runner"],
                )?,
            )?,
            malformed: reg(
                registry,
                IntGaugeVec::new(
                    Opts::new(
                        "claimcheck_org_flag_malformed",
                        "1 while an org's runner_default is present but neither \"go\" nor \"ts\" (read as ts).",
                    ),
                    &["org"],
                )?,
            )?,
            flips: reg(
                registry,
                IntCounterVec::new(
                    Opts::new(
                        "claimcheck_flips_total",
                        "Changes of an org's expected runner, by the runner flipped to.",
                    ),
                    &["to"],
                )?,
            )?,
            drift: reg(
                registry,
                IntCounterVec::new(
                    Opts::new(
                        "claimcheck_flag_drift_total",
                        "Dispatches to another runner than their org's flag expected at dispatch time (past the propagation grace).",
                    ),
                    &["org", "expected", "dispatched"],
                )?,
            )?,
            missing: reg(
                registry,
                IntCounter::new(
                    "claimcheck_sessions_missing_from_logs_total",
                    "Sessions created in Postgres that never appeared as a dispatch in the logs within the grace.",
                )?,
            )?,
            queue_depth: reg(
                registry,
                IntGaugeVec::new(
                    Opts::new(
                        "claimcheck_queue_depth",
                        "Sessions waiting in the platform's Redis queue, by runner.",
                    ),
                    &["runner"],
                )?,
            )?,
            queue_age: reg(
                registry,
                GaugeVec::new(
                    Opts::new(
                        "claimcheck_queue_oldest_age_seconds",
                        "Age of the oldest queued session, by runner (Redis server time; 0 when none).",
                    ),
                    &["runner"],
                )?,
            )?,
            witnessed: reg(
                registry,
                IntCounterVec::new(
                    Opts::new(
                        "claimcheck_claims_witnessed_total",
                        "Overdue sessions with no claim line whose claim another source witnessed (redis: work:claim:<id>).",
                    ),
                    &["source"],
                )?,
            )?,
            dependency_up: reg(
                registry,
                IntGaugeVec::new(
                    Opts::new(
                        "claimcheck_dependency_up",
                        "1 while the last call to the dependency succeeded, 0 while it fails.",
                    ),
                    &["dependency"],
                )?,
            )?,
            orgs: Arc::new(Mutex::new(BTreeSet::new())),
            org_cap,
        };
        for r in [Runner::Go, Runner::Ts] {
            m.flips.with_label_values(&[r.as_str()]);
        }
        m.witnessed.with_label_values(&["redis"]);
        Ok(m)
    }

    /// The `claimcheck_dependency_up` family, for other dependencies (e.g. alertmanager) to
    /// share rather than register a second time.
    pub fn dependency_up_vec(&self) -> &IntGaugeVec {
        &self.dependency_up
    }

    pub fn dependency_up(&self, d: Dependency, up: bool) {
        self.dependency_up
            .with_label_values(&[d.as_str()])
            .set(i64::from(up));
    }

    /// `Some(label)` for an org with its own series, `None` past the cap.
    fn org_label(&self, org: &str) -> Option<String> {
        let mut orgs = match self.orgs.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if orgs.contains(org) {
            return Some(org.to_owned());
        }
        if orgs.len() < self.org_cap {
            orgs.insert(org.to_owned());
            return Some(org.to_owned());
        }
        None
    }

    /// Sets the per-org gauges from the book's current state.
    pub fn flags(&self, book: &FlagBook) {
        for e in book.orgs() {
            let Some(org) = self.org_label(&e.id) else {
                continue;
            };
            for r in [Runner::Go, Runner::Ts] {
                self.expected
                    .with_label_values(&[&org, r.as_str()])
                    .set(i64::from(e.flag.expected == r));
            }
            self.malformed
                .with_label_values(&[&org])
                .set(i64::from(e.flag.malformed.is_some()));
        }
    }

    pub fn flip(&self, f: &Flip) {
        self.flips.with_label_values(&[f.to.as_str()]).inc();
    }

    pub fn drift(&self, org: &str, expected: Runner, dispatched: Runner) {
        let org = self.org_label(org).unwrap_or_else(|| "other".into());
        self.drift
            .with_label_values(&[&org, expected.as_str(), dispatched.as_str()])
            .inc();
    }

    pub fn missing(&self, n: u64) {
        self.missing.inc_by(n);
    }

    pub fn witnessed(&self, source: &str) {
        self.witnessed.with_label_values(&[source]).inc();
    }

    pub fn queue(&self, s: &QueueStats) {
        for r in Runner::ALL {
            self.queue_depth
                .with_label_values(&[r.as_str()])
                .set(i64::try_from(s.runner(r).depth).unwrap_or(i64::MAX));
            self.queue_age
                .with_label_values(&[r.as_str()])
                .set(s.oldest_age_seconds(r));
        }
    }
}
