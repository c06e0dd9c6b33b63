//! The verification report: what `verify` concludes, as a serde model whose JSON field names are
//! a contract (PRODUCT.md §3), and the [`Tally`] that builds it from judged sessions.
//!
//! The tally sees each session once, when it is final (at the end of input, or when evicted),
//! so memory here is bounded by the findings cap, not by the number of sessions.

pub mod render;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::correlate::ClaimTimeouts;
use crate::correlate::{Correlator, Judgement, Outcome, Record, Session};
use crate::event::{EventKind, Origin, Runner, SessionId, Timestamp};
use crate::parse::Reject;
use crate::pipeline::Ingest;
use crate::sources::Input;

/// Which sessions a verification is about. Claims from the whole input remain evidence.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    pub orgs: BTreeSet<String>,
    /// Inclusive, on dispatch time.
    pub since: Option<Timestamp>,
    /// Exclusive, on dispatch time.
    pub until: Option<Timestamp>,
    pub expect_runner: Option<Runner>,
}

impl Selection {
    fn in_window(&self, at: Timestamp) -> bool {
        self.since.is_none_or(|s| at >= s) && self.until.is_none_or(|u| at < u)
    }

    fn selects(&self, org: &str, dispatched_at: Timestamp) -> bool {
        (self.orgs.is_empty() || self.orgs.contains(org)) && self.in_window(dispatched_at)
    }

    /// Orphan claims belong to no org; they are counted only when no org is selected.
    fn selects_orphan(&self, claimed_at: Timestamp) -> bool {
        self.orgs.is_empty() && self.in_window(claimed_at)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    Inconclusive,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ByRunner {
    pub go: u64,
    pub ts: u64,
    pub other: u64,
}

impl ByRunner {
    pub fn bump(&mut self, r: Runner) {
        match r {
            Runner::Go => self.go += 1,
            Runner::Ts => self.ts += 1,
            Runner::Other => self.other += 1,
        }
    }

    pub fn sum(&self) -> u64 {
        self.go + self.ts + self.other
    }
}

/// Session counts. `orgs` uses the same shape; orphan claims are never attributed to an org.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Totals {
    pub dispatched: ByRunner,
    pub matched: u64,
    pub late: u64,
    pub mismatched: u64,
    pub unclaimed: u64,
    pub pending: u64,
    /// Sessions with two claims and no release between them.
    pub duplicate_claims: u64,
    /// …of which the two claims came from different runtimes (double execution across runtimes).
    pub duplicate_claims_cross_runtime: u64,
    /// Distinct claim events for sessions never dispatched in the evidence.
    pub orphan_claims: u64,
    /// Claims after a release (legitimate, not failures).
    pub reclaims: u64,
    /// Claims stamped before their dispatch (latency clamped to 0, still judged).
    pub skew_clamped: u64,
    /// Extra dispatch events for an already dispatched session.
    pub redispatches: u64,
    /// Selected dispatches to a runner other than `--expect-runner`.
    pub unexpected_runner: u64,
}

impl Totals {
    fn add(&mut self, j: &Judgement, expect: Option<Runner>) {
        let (Some(d), Some(outcome)) = (j.dispatch, j.outcome) else {
            return;
        };
        self.dispatched.bump(d.runner);
        match outcome {
            Outcome::Matched => self.matched += 1,
            Outcome::Late => self.late += 1,
            Outcome::Mismatched => self.mismatched += 1,
            Outcome::Unclaimed => self.unclaimed += 1,
            Outcome::Pending => self.pending += 1,
        }
        self.duplicate_claims += u64::from(j.duplicate);
        self.duplicate_claims_cross_runtime += u64::from(j.duplicate_cross_runtime);
        self.reclaims += u64::from(j.reclaims);
        self.skew_clamped += u64::from(j.skew_clamped);
        self.redispatches += u64::from(j.redispatches);
        self.unexpected_runner += u64::from(expect.is_some_and(|e| e != d.runner));
    }

    /// The cumulative totals (every one but the `pending` and `unclaimed` gauges, which move
    /// both ways) by name, in [`Totals::CUMULATIVE`]'s order.
    pub const CUMULATIVE: [&'static str; 11] = [
        "dispatched_go",
        "dispatched_ts",
        "dispatched_other",
        "matched",
        "late",
        "mismatched",
        "duplicate_claims",
        "duplicate_claims_cross_runtime",
        "orphan_claims",
        "reclaims",
        "skew_clamped",
    ];

    /// Counts one live change into the cumulative totals. `serve`'s telemetry and the shared
    /// state's judge (which keeps every replica's totals in Redis) both count with this one
    /// function, so a replica's totals and the cluster's cannot count differently.
    pub fn count(&mut self, c: &crate::correlate::live::Change) {
        use crate::correlate::live::Change;
        match c {
            Change::Dispatched { runner, .. } => self.dispatched.bump(*runner),
            Change::Judged {
                outcome,
                skew_clamped,
                ..
            } => {
                self.skew_clamped += u64::from(*skew_clamped);
                match outcome {
                    Outcome::Matched => self.matched += 1,
                    Outcome::Late => self.late += 1,
                    Outcome::Mismatched => self.mismatched += 1,
                    Outcome::Unclaimed | Outcome::Pending => {}
                }
            }
            Change::Duplicate { cross_runtime, .. } => {
                self.duplicate_claims += 1;
                self.duplicate_claims_cross_runtime += u64::from(*cross_runtime);
            }
            Change::DuplicateCrossRuntime { .. } => self.duplicate_claims_cross_runtime += 1,
            Change::Orphan { .. } => self.orphan_claims += 1,
            Change::Reclaimed { .. } => self.reclaims += 1,
            _ => {}
        }
    }

    /// The cumulative totals, in [`Totals::CUMULATIVE`]'s order.
    pub fn cumulative(&self) -> [u64; 11] {
        let d = &self.dispatched;
        [
            d.go,
            d.ts,
            d.other,
            self.matched,
            self.late,
            self.mismatched,
            self.duplicate_claims,
            self.duplicate_claims_cross_runtime,
            self.orphan_claims,
            self.reclaims,
            self.skew_clamped,
        ]
    }

    /// Totals with the cumulative values `v` (in [`Totals::CUMULATIVE`]'s order), `pending`
    /// and `unclaimed`.
    pub fn from_cumulative(v: [u64; 11], pending: u64, unclaimed: u64) -> Totals {
        let [
            go,
            ts,
            other,
            matched,
            late,
            mismatched,
            dup,
            cross,
            orphan,
            reclaims,
            skew,
        ] = v;
        Totals {
            dispatched: ByRunner { go, ts, other },
            matched,
            late,
            mismatched,
            unclaimed,
            pending,
            duplicate_claims: dup,
            duplicate_claims_cross_runtime: cross,
            orphan_claims: orphan,
            reclaims,
            skew_clamped: skew,
            redispatches: 0,
            unexpected_runner: 0,
        }
    }

    fn sessions(&self) -> u64 {
        self.dispatched.sum()
    }

    fn decided(&self) -> u64 {
        self.sessions() - self.pending
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub count: u64,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

impl Latency {
    /// Nearest-rank percentiles of exact values, in seconds.
    pub fn of(mut ms: Vec<i64>) -> Latency {
        ms.sort_unstable();
        let rank = |q: f64| -> Option<f64> {
            let n = ms.len();
            let i = ((q * n as f64).ceil() as usize).clamp(1, n.max(1)) - 1;
            ms.get(i).map(|&v| v as f64 / 1000.0)
        };
        Latency {
            count: ms.len() as u64,
            p50: rank(0.50),
            p95: rank(0.95),
            p99: rank(0.99),
            max: ms.last().map(|&v| v as f64 / 1000.0),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyByRunner {
    pub go: Latency,
    pub ts: Latency,
}

/// One event of a finding's evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Evidence {
    pub event: String,
    /// The dispatch's runner or the event's runtime.
    pub runner: String,
    pub at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// `file:line` of the first line that carried it.
    pub source: String,
}

impl Evidence {
    /// One record of a session, with names looked up and its origin as `source`.
    pub fn of(c: &Correlator, r: &Record, source: String) -> Evidence {
        Evidence::new(
            r.kind,
            r.runner,
            r.time,
            c.worker_name(r.worker).map(str::to_owned),
            c.detail_name(r.extra),
            source,
        )
    }

    /// One event from its parts; `detail` is a claim's version, a release's reason or an
    /// other event's detail (a dispatch has none).
    pub fn new(
        kind: EventKind,
        runner: crate::event::Runner,
        time: crate::event::Timestamp,
        worker: Option<String>,
        detail: Option<&str>,
        source: String,
    ) -> Evidence {
        Evidence {
            event: kind.as_str().to_owned(),
            runner: runner.as_str().to_owned(),
            at: time.to_rfc3339(),
            worker,
            detail: match kind {
                EventKind::Dispatch => None,
                EventKind::Claim => detail.map(|v| format!("version {v}")),
                _ => detail.map(str::to_owned),
            },
            source,
        }
    }
}

/// A failing session with everything known about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub session_id: String,
    /// Why it fails: `mismatched`, `late`, `unclaimed`, `duplicate_claim`,
    /// `duplicate_claim_cross_runtime`, `unknown_runner`, `unexpected_runner`.
    pub kinds: Vec<String>,
    pub org: String,
    pub runner: String,
    pub outcome: String,
    pub dispatched_at: String,
    pub deadline: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_seconds: Option<f64>,
    pub events: Vec<Evidence>,
    #[serde(skip)]
    order: (Timestamp, String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonReport {
    pub runtime: String,
    pub worker: String,
    pub version: Option<String>,
    pub last_heartbeat: Option<String>,
    pub heartbeats: u64,
    pub claims: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputReport {
    pub path: String,
    pub role: String,
    pub default_runtime: Option<String>,
    pub lines: u64,
    pub events: u64,
    pub ignored: u64,
    pub rejected: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedLine {
    pub reason: String,
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestReport {
    pub lines: u64,
    pub bytes: u64,
    /// Distinct events by kind (re-deliveries excluded).
    pub events: BTreeMap<String, u64>,
    /// Exact re-deliveries dropped.
    pub duplicates: u64,
    pub ignored: u64,
    pub rejected: BTreeMap<String, u64>,
    pub rejected_examples: Vec<RejectedLine>,
    /// Sessions judged early because the session cap was reached (0 unless the cap is hit).
    pub evicted_sessions: u64,
    pub inputs: Vec<InputReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub verdict: Verdict,
    pub reason: String,
    pub claim_timeout_seconds: BTreeMap<String, f64>,
    pub selection: serde_json::Value,
    /// The watermark: the latest event time in the inputs. Unclaimed means "no claim by
    /// dispatch + T, and the evidence reaches dispatch + T".
    pub watermark: Option<String>,
    pub totals: Totals,
    pub claim_latency_seconds: LatencyByRunner,
    /// The `totals` shape per dispatched runner (`go`, `ts`, `other`): the migration's two
    /// sides compared.
    pub runners: BTreeMap<String, Totals>,
    pub orgs: BTreeMap<String, Totals>,
    pub daemons: Vec<DaemonReport>,
    pub ingest: IngestReport,
    pub findings: Vec<Finding>,
    pub findings_total: u64,
    pub findings_cap: usize,
    pub findings_truncated: bool,
}

/// Accumulates judged sessions into a [`Report`].
#[derive(Debug)]
pub struct Tally {
    selection: Selection,
    timeouts: ClaimTimeouts,
    totals: Totals,
    runners: BTreeMap<String, Totals>,
    orgs: BTreeMap<String, Totals>,
    latencies: [Vec<i64>; 2],
    findings: Vec<Finding>,
    findings_total: u64,
    cap: usize,
    names: Vec<String>,
    /// The order of the last of `cap` findings kept at the last trim (`None` while fewer
    /// were kept).
    last_kept: Option<(Timestamp, String)>,
}

impl Tally {
    /// `input_names` turn origins into `file:line`; `cap` bounds the findings kept.
    pub fn new(
        selection: Selection,
        timeouts: ClaimTimeouts,
        input_names: Vec<String>,
        cap: usize,
    ) -> Tally {
        Tally {
            selection,
            timeouts,
            totals: Totals::default(),
            runners: BTreeMap::new(),
            orgs: BTreeMap::new(),
            latencies: [Vec::new(), Vec::new()],
            findings: Vec::new(),
            findings_total: 0,
            cap,
            names: input_names,
            last_kept: None,
        }
    }

    /// Judges one final session against `watermark` and counts it.
    /// The totals so far.
    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    pub fn add(&mut self, c: &Correlator, id: &SessionId, s: &Session, watermark: Timestamp) {
        let j = s.judge(&self.timeouts, watermark);
        let Some(d) = j.dispatch else {
            if let Some(first) = j.first_claim
                && self.selection.selects_orphan(first.time)
            {
                self.totals.orphan_claims += u64::from(j.claims);
            }
            return;
        };
        let org = c.org_name(d.extra).unwrap_or("unknown");
        if !self.selection.selects(org, d.time) {
            return;
        }
        let expect = self.selection.expect_runner;
        self.totals.add(&j, expect);
        // Looked up before inserting: a session's org and runner are almost always counted
        // already, and an owned key per session was an allocation and a free each.
        for (map, key) in [
            (&mut self.orgs, org),
            (&mut self.runners, d.runner.as_str()),
        ] {
            match map.get_mut(key) {
                Some(t) => t.add(&j, expect),
                None => map.entry(key.to_owned()).or_default().add(&j, expect),
            }
        }
        if let Some(ms) = j.latency_ms {
            match d.runner {
                Runner::Go => self.latencies[0].push(ms),
                Runner::Ts => self.latencies[1].push(ms),
                Runner::Other => {}
            }
        }
        let kinds = failure_kinds(&j, expect);
        if !kinds.is_empty() {
            self.findings_total += 1;
            // Only the first `cap` findings by order are reported: one that orders after
            // `cap` kept ones already is counted but never built (its evidence is a string
            // per record; inputs read by event time make that most of them).
            if self.beyond_cap(d.time, id) {
                return;
            }
            self.findings.push(self.finding(c, id, s, &j, kinds, org));
            if self.findings.len() >= self.cap.saturating_mul(2).max(64) {
                self.trim_findings();
            }
        }
    }

    fn trim_findings(&mut self) {
        self.findings.sort_by(|a, b| a.order.cmp(&b.order));
        self.findings.truncate(self.cap);
        self.last_kept = if self.findings.len() == self.cap {
            self.findings.last().map(|f| f.order.clone())
        } else {
            None
        };
    }

    /// Whether a finding ordered `(time, id)` orders after `cap` findings already kept, so
    /// that it cannot be among the first `cap` at the end.
    fn beyond_cap(&self, time: Timestamp, id: &SessionId) -> bool {
        self.last_kept
            .as_ref()
            .is_some_and(|(t, last)| (time, id.as_str()) > (*t, last.as_str()))
    }

    fn source(&self, o: Origin) -> String {
        let name = self
            .names
            .get(usize::from(o.input))
            .map_or("?", String::as_str);
        format!("{name}:{}", o.line)
    }

    fn finding(
        &self,
        c: &Correlator,
        id: &SessionId,
        s: &Session,
        j: &Judgement,
        kinds: Vec<String>,
        org: &str,
    ) -> Finding {
        const MAX_EVIDENCE: usize = 20;
        let d = j
            .dispatch
            .unwrap_or_else(|| unreachable!("findings are for dispatched sessions"));
        let events = s
            .records()
            .iter()
            .take(MAX_EVIDENCE)
            .map(|r| Evidence::of(c, r, self.source(r.origin())))
            .collect();
        Finding {
            session_id: id.to_string(),
            kinds,
            org: org.to_owned(),
            runner: d.runner.as_str().to_owned(),
            outcome: j.outcome.map_or("", Outcome::as_str).to_owned(),
            dispatched_at: d.time.to_rfc3339(),
            deadline: j.deadline.map(Timestamp::to_rfc3339).unwrap_or_default(),
            latency_seconds: j.latency_ms.map(|ms| ms as f64 / 1000.0),
            events,
            order: (d.time, id.to_string()),
        }
    }

    pub fn finish(mut self, c: &Correlator, ingest: &Ingest, inputs: &[Input]) -> Report {
        self.trim_findings();
        let [go, ts] = std::mem::take(&mut self.latencies);
        let t = &self.totals;
        let (verdict, mut reason) = verdict(t, self.findings_total, c.stats().evicted);
        if let Some(cause) = rejected_inputs(ingest, inputs) {
            reason = format!("{cause}; {reason}");
        }
        let watermark = c.watermark();
        let stats = c.stats();
        let total = ingest.total();
        let mut daemons: Vec<DaemonReport> = c
            .daemons()
            .map(|(runtime, worker, d)| DaemonReport {
                runtime: runtime.as_str().into(),
                worker: worker.into(),
                version: d.version.as_deref().map(Into::into),
                last_heartbeat: d.last_heartbeat.map(Timestamp::to_rfc3339),
                heartbeats: d.heartbeats,
                claims: d.claims,
            })
            .collect();
        daemons.sort_by(|a, b| (&a.runtime, &a.worker).cmp(&(&b.runtime, &b.worker)));
        let rejected_examples = ingest
            .samples
            .iter()
            .map(|s| RejectedLine {
                reason: s.reason.as_str().into(),
                source: self.source(s.origin),
            })
            .collect();
        let selection = serde_json::json!({
            "orgs": self.selection.orgs,
            "since": self.selection.since.map(Timestamp::to_rfc3339),
            "until": self.selection.until.map(Timestamp::to_rfc3339),
            "expect_runner": self.selection.expect_runner.map(Runner::as_str),
        });
        Report {
            verdict,
            reason,
            claim_timeout_seconds: [Runner::Go, Runner::Ts]
                .iter()
                .map(|&r| {
                    (
                        r.as_str().to_owned(),
                        self.timeouts.for_runner(r).as_secs_f64(),
                    )
                })
                .collect(),
            selection,
            watermark: (watermark != Timestamp::MIN).then(|| watermark.to_rfc3339()),
            totals: self.totals.clone(),
            claim_latency_seconds: LatencyByRunner {
                go: Latency::of(go),
                ts: Latency::of(ts),
            },
            runners: self.runners,
            orgs: self.orgs,
            daemons,
            ingest: IngestReport {
                lines: total.lines,
                bytes: total.bytes,
                events: EventKind::ALL
                    .iter()
                    .map(|&k| (k.as_str().to_owned(), stats.events[k as usize]))
                    .collect(),
                duplicates: stats.duplicates,
                ignored: total.ignored,
                rejected: Reject::ALL
                    .iter()
                    .map(|&r| (r.as_str().to_owned(), total.rejected[r as usize]))
                    .filter(|(_, n)| *n > 0)
                    .collect(),
                rejected_examples,
                evicted_sessions: stats.evicted,
                inputs: inputs
                    .iter()
                    .zip(&ingest.inputs)
                    .map(|(i, s)| InputReport {
                        path: i.name(),
                        role: i.role.as_str().into(),
                        default_runtime: i.default_runtime.map(|r| r.as_str().into()),
                        lines: s.lines,
                        events: s.events.iter().sum(),
                        ignored: s.ignored,
                        rejected: s.rejected_total(),
                    })
                    .collect(),
            },
            findings_truncated: self.findings_total > self.findings.len() as u64,
            findings: self.findings,
            findings_total: self.findings_total,
            findings_cap: self.cap,
        }
    }
}

/// The inputs rejected whole or mostly (more rejected lines than events), each with its main
/// reason and, for a claims input without a runtime, the fix: a configuration mistake is named
/// before the sessions it made fail.
fn rejected_inputs(ingest: &Ingest, inputs: &[Input]) -> Option<String> {
    let causes: Vec<String> = inputs
        .iter()
        .zip(&ingest.inputs)
        .filter_map(|(i, s)| {
            let (rejected, events) = (s.rejected_total(), s.events.iter().sum::<u64>());
            if rejected == 0 || rejected <= events {
                return None;
            }
            let (top, _) = Reject::ALL
                .iter()
                .map(|&r| (r, s.rejected[r as usize]))
                .max_by_key(|&(r, n)| (n, std::cmp::Reverse(r as usize)))?;
            let name = i.name();
            let hint = if top == Reject::MissingRuntime && i.default_runtime.is_none() {
                format!(" — pass --claims {}", runtime_hint(&name))
            } else {
                String::new()
            };
            Some(format!(
                "{name}: {rejected} of {} {} lines rejected: {}{hint}",
                rejected + events,
                if i.role == crate::sources::Role::Dispatch {
                    "dispatch"
                } else {
                    "claim"
                },
                top.as_str()
            ))
        })
        .collect();
    (!causes.is_empty()).then(|| causes.join("; "))
}

/// The `--claims RUNTIME=PATH` to suggest for an input named `name` whose lines name no
/// runtime: the runtime its file name says (`ts-workers.log`), else both.
pub fn runtime_hint(name: &str) -> &'static str {
    let file = name.rsplit('/').next().unwrap_or(name);
    match (file.contains("ts"), file.contains("go")) {
        (true, false) => "ts=PATH",
        (false, true) => "go=PATH",
        _ => "go=PATH or ts=PATH",
    }
}

fn failure_kinds(j: &Judgement, expect: Option<Runner>) -> Vec<String> {
    let mut kinds = Vec::new();
    if let Some(o) = j.outcome.filter(|o| o.is_failure()) {
        kinds.push(o.as_str().to_owned());
    }
    if j.duplicate {
        kinds.push(
            if j.duplicate_cross_runtime {
                "duplicate_claim_cross_runtime"
            } else {
                "duplicate_claim"
            }
            .into(),
        );
    }
    if let Some(d) = j.dispatch {
        if d.runner == Runner::Other {
            kinds.push("unknown_runner".into());
        }
        if expect.is_some_and(|e| e != d.runner) {
            kinds.push("unexpected_runner".into());
        }
    }
    kinds
}

/// `fail` on any mismatched, unclaimed, late or duplicate-claimed session or a broken
/// expectation; `inconclusive` when nothing was selected, nothing could be judged yet, or the
/// session cap forced early judgements (which can split a session's evidence in two).
fn verdict(t: &Totals, failing: u64, evicted: u64) -> (Verdict, String) {
    let (v, reason) = verdict_on_counts(t, failing);
    if evicted == 0 {
        return (v, reason);
    }
    let note = format!(
        "{evicted} sessions were judged before all their evidence was read because the session \
         cap was reached; counts may be off, raise --max-sessions"
    );
    match v {
        Verdict::Pass => (Verdict::Inconclusive, note),
        _ => (v, format!("{reason}; {note}")),
    }
}

fn verdict_on_counts(t: &Totals, failing: u64) -> (Verdict, String) {
    let failures: Vec<String> = [
        (t.mismatched, "mismatched"),
        (t.unclaimed, "unclaimed"),
        (t.late, "late"),
        (t.duplicate_claims, "duplicate-claimed"),
        (t.unexpected_runner, "dispatched to the unexpected runner"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    if t.sessions() == 0 {
        (
            Verdict::Inconclusive,
            "no dispatched session matched the selection".into(),
        )
    } else if !failures.is_empty() {
        (
            Verdict::Fail,
            format!(
                "{failing} of {} sessions fail: {}",
                t.sessions(),
                failures.join(", ")
            ),
        )
    } else if t.decided() == 0 {
        (
            Verdict::Inconclusive,
            format!("all {} selected sessions are still pending", t.sessions()),
        )
    } else {
        let pending = if t.pending > 0 {
            format!(" ({} still pending)", t.pending)
        } else {
            String::new()
        };
        (
            Verdict::Pass,
            format!(
                "{} sessions claimed by their runner in time{pending}",
                t.matched
            ),
        )
    }
}
