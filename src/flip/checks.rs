//! Evidence + params → [`FlipReport`]: locate the flip, judge the org's sessions with the §2
//! rules, run each check, decide the verdict. Pure: no I/O, no clock.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{
    Check, FlipError, FlipEvidence, FlipKind, FlipParams, FlipReport, LatencyChange,
    LatencyComparison, RuntimeLatency, SessionCounts, SessionItem, ShareBucket, Span, Status,
};
use crate::correlate::{CorrelateConfig, Correlator, Judgement, Outcome, Record, Session};
use crate::event::{EventKind, Runner, SessionId, Timestamp};
use crate::report::{Evidence, Latency, Verdict};

/// The runbook's minimum Go daemon version: the agent-runner interface ships with it.
const MIN_GO_VERSION: (u64, u64, u64) = (0, 5, 0);
/// Claim latency regresses when p95 after the flip exceeds both `FACTOR × p95 before` and
/// `p95 before + SLACK`: a doubling of a tiny latency is not news, nor is a small absolute rise.
const LATENCY_FACTOR: f64 = 2.0;
const LATENCY_SLACK_S: f64 = 10.0;
/// Runner-share buckets on each side of the flip.
const SHARE_BUCKETS: i64 = 12;
/// Events cited per listed session.
const MAX_EVIDENCE: usize = 20;

mod health;
mod locate;

use locate::{Flip, locate};

/// One judged session of the org.
struct Judged<'a> {
    id: &'a SessionId,
    session: &'a Session,
    j: Judgement,
    dispatched: Record,
}

struct Ctx<'a> {
    c: &'a Correlator,
    ev: &'a FlipEvidence,
    p: &'a FlipParams,
    flip: Flip,
    end: Timestamp,
    baseline_start: Timestamp,
    watermark: Timestamp,
    /// The earliest event time in the evidence: what lies before it is not known.
    start: Timestamp,
}

/// Builds the report for `p.org` from `ev`.
///
/// The flip is `p.at` when given (its direction `p.to`, else away from the runner most of the
/// baseline's dispatches went to). Otherwise it is located in the org's dispatches: the new
/// runner is `p.to` or the runner of the org's latest dispatch, and the flip is the first
/// dispatch to it after one to the other runner — of those changes, the one that best splits
/// the dispatches into "old runner in the window before, new runner in the window after" (the
/// latest on a tie), so a stray dispatch to the old runner after a flip (flag drift) is caught
/// by the report rather than mistaken for the flip.
pub fn build(ev: &FlipEvidence, p: &FlipParams) -> Result<FlipReport, FlipError> {
    if p.window_ms <= p.grace_ms {
        return Err(FlipError::Window {
            window_ms: p.window_ms,
            grace_ms: p.grace_ms,
        });
    }
    let mut c = Correlator::new(CorrelateConfig {
        timeouts: p.timeouts,
        ..CorrelateConfig::default()
    });
    for (e, o) in &ev.events {
        c.on_event(e.clone(), *o);
    }
    let watermark = ev
        .watermark()
        .map_or(c.watermark(), |w| w.max(c.watermark()));
    let mut sessions: Vec<Judged> = c
        .sessions()
        .filter_map(|(id, session)| {
            let j = session.judge(&p.timeouts, watermark);
            j.dispatch.map(|dispatched| Judged {
                id,
                session,
                j,
                dispatched,
            })
        })
        .collect();
    sessions.sort_by(|a, b| (a.dispatched.time, a.id).cmp(&(b.dispatched.time, b.id)));
    let flip = locate(&sessions, p)?;
    let x = Ctx {
        c: &c,
        ev,
        p,
        end: flip.at.saturating_add_ms(p.window_ms),
        baseline_start: flip.at.saturating_add_ms(-p.window_ms),
        flip,
        watermark,
        start: ev.start().unwrap_or(Timestamp::MIN),
    };
    let window: Vec<&Judged> = sessions
        .iter()
        .filter(|s| s.dispatched.time >= x.flip.at && s.dispatched.time < x.end)
        .collect();
    let baseline: Vec<&Judged> = sessions
        .iter()
        .filter(|s| s.dispatched.time >= x.baseline_start && s.dispatched.time < x.flip.at)
        .collect();

    let (in_flight, held) = x.in_flight(&sessions);
    let (latency_check, latency) = x.latency(&baseline, &window);
    let (ingest, sources) = x.ingest();
    let daemon = if x.flip.direction == "unknown" {
        Draft::new(
            "daemon",
            "the new runtime's daemons were heartbeating".into(),
        )
        .finish(
            Status::Skipped,
            "which runtime the org moved to is unknown: no dispatch, and none was given".into(),
            p.max_listed,
        )
    } else {
        x.daemon(&window)
    };
    let checks = vec![
        x.new_runner(&window),
        x.claimed_in_time(&window),
        x.no_mismatch(&window),
        x.no_duplicate(&window),
        in_flight,
        daemon,
        latency_check,
        ingest,
    ];
    let grace = x.flip.at.saturating_add_ms(p.grace_ms);
    let counts = SessionCounts {
        baseline: baseline.len() as u64,
        window: window.len() as u64,
        in_grace: window.iter().filter(|s| s.dispatched.time < grace).count() as u64,
        in_flight: held,
    };
    let (verdict, mut reason) = verdict(&checks, &counts, &p.org);
    if let Some(cause) = rejected_sources(ev) {
        reason = format!("{cause}; {reason}");
    }
    let unknown = x.flip.direction == "unknown";
    Ok(FlipReport {
        org: p.org.clone(),
        kind: if unknown {
            FlipKind::Unknown
        } else if x.flip.to == Runner::Ts {
            FlipKind::Rollback
        } else {
            FlipKind::Flip
        },
        from: if unknown {
            "unknown"
        } else {
            x.flip.from.as_str()
        }
        .into(),
        to: if unknown {
            "unknown"
        } else {
            x.flip.to.as_str()
        }
        .into(),
        flip_at: x.flip.at.to_rfc3339(),
        flip_located: x.flip.located.into(),
        direction_from: x.flip.direction.into(),
        evidence_starts: (x.start != Timestamp::MIN).then(|| x.start.to_rfc3339()),
        verdict,
        reason,
        window: span(x.flip.at, x.end),
        baseline: span(x.baseline_start, x.flip.at),
        grace_seconds: p.grace_ms as f64 / 1000.0,
        claim_timeout_seconds: [Runner::Go, Runner::Ts]
            .iter()
            .map(|&r| (r.as_str().into(), p.timeouts.for_runner(r).as_secs_f64()))
            .collect(),
        evidence_ends: (watermark != Timestamp::MIN).then(|| watermark.to_rfc3339()),
        sessions: counts,
        checks,
        claim_latency_seconds: latency,
        runner_share: x.share(&sessions),
        sources,
    })
}

fn other(r: Runner) -> Runner {
    if r == Runner::Go {
        Runner::Ts
    } else {
        Runner::Go
    }
}

fn span(start: Timestamp, end: Timestamp) -> Span {
    Span {
        start: start.to_rfc3339(),
        end: end.to_rfc3339(),
        seconds: (end.millis() - start.millis()) as f64 / 1000.0,
    }
}

fn duration(ms: i64) -> String {
    let d = Duration::from_millis(u64::try_from(ms.max(0)).unwrap_or(0));
    humantime::format_duration(Duration::from_secs(d.as_secs().max(u64::from(ms > 0)))).to_string()
}

/// A check under construction: its listed sessions are sorted (failing first, then by
/// dispatch time) and capped when it is finished.
struct Draft {
    check: Check,
    items: Vec<((bool, Timestamp, String), SessionItem)>,
    /// List the most recent sessions first (the ones nearest the flip).
    newest_first: bool,
}

impl Draft {
    fn new(id: &str, title: String) -> Draft {
        Draft {
            check: Check {
                id: id.into(),
                title,
                status: Status::Pass,
                summary: String::new(),
                counts: BTreeMap::new(),
                sessions: Vec::new(),
                sessions_total: 0,
                sessions_cap: 0,
                sessions_truncated: false,
                notes: Vec::new(),
                positive: false,
            },
            items: Vec::new(),
            newest_first: false,
        }
    }

    fn count(&mut self, key: &str, n: usize) -> &mut Draft {
        self.check.counts.insert(key.into(), n as u64);
        self
    }

    fn finish(mut self, status: Status, summary: String, cap: usize) -> Check {
        let newest_first = self.newest_first;
        self.items.sort_by(|a, b| {
            let ((fa, ta, ia), (fb, tb, ib)) = (&a.0, &b.0);
            let time = if newest_first { tb.cmp(ta) } else { ta.cmp(tb) };
            fa.cmp(fb).then(time).then(ia.cmp(ib))
        });
        self.check.sessions_total = self.items.len() as u64;
        self.check.sessions_cap = cap;
        self.check.sessions_truncated = self.items.len() > cap;
        self.check.sessions = self.items.into_iter().take(cap).map(|(_, i)| i).collect();
        self.check.status = status;
        self.check.summary = summary;
        self.check
    }
}

impl Ctx<'_> {
    fn source(&self, r: &Record) -> String {
        let name = self
            .ev
            .sources
            .get(usize::from(r.input))
            .map_or("?", |s| s.name.as_str());
        format!("{name}:{}", r.line)
    }

    fn list(&self, d: &mut Draft, s: &Judged, problem: String, failing: bool) {
        let item = SessionItem {
            session_id: s.id.to_string(),
            problem,
            failing,
            runner: Some(s.dispatched.runner.as_str().into()),
            dispatched_at: Some(s.dispatched.time.to_rfc3339()),
            events: s
                .session
                .records()
                .iter()
                .take(MAX_EVIDENCE)
                .map(|r| Evidence::of(self.c, r, self.source(r)))
                .collect(),
        };
        d.items
            .push(((!failing, s.dispatched.time, s.id.to_string()), item));
    }

    fn worker(&self, r: &Record) -> &str {
        self.c.worker_name(r.worker).unwrap_or("-")
    }

    fn new_runner(&self, window: &[&Judged]) -> Check {
        let (to, grace) = (self.flip.to, self.p.grace_ms);
        let mut d = Draft::new(
            "new_runner",
            format!(
                "every session dispatched after the flip + {} went to {to}",
                duration(grace)
            ),
        );
        d.check.positive = true;
        let after: Vec<&&Judged> = window
            .iter()
            .filter(|s| s.dispatched.time >= self.flip.at.saturating_add_ms(grace))
            .collect();
        let mut wrong = 0;
        for s in &after {
            if s.dispatched.runner != to {
                wrong += 1;
                let problem = format!("dispatched to {}, not {to}", s.dispatched.runner);
                self.list(&mut d, s, problem, true);
            }
        }
        let on = |r: Runner| after.iter().filter(|s| s.dispatched.runner == r).count();
        d.count("sessions", after.len())
            .count("to_new_runner", on(to))
            .count("to_old_runner", on(other(to)))
            .count("to_other_runner", on(Runner::Other))
            .count("in_grace", window.len() - after.len());
        let (status, summary) = if after.is_empty() {
            (
                Status::Unknown,
                "no session was dispatched after the grace".into(),
            )
        } else if wrong > 0 {
            (
                Status::Fail,
                format!("{wrong} of {} sessions went elsewhere", after.len()),
            )
        } else {
            (
                Status::Pass,
                format!("all {} sessions went to {to}", after.len()),
            )
        };
        d.finish(status, summary, self.p.max_listed)
    }

    fn claimed_in_time(&self, window: &[&Judged]) -> Check {
        let mut d = Draft::new(
            "claimed_in_time",
            "every session was claimed by the runtime it was dispatched to within T \
             (no unclaimed, no late)"
                .into(),
        );
        let mut n: BTreeMap<Outcome, usize> = BTreeMap::new();
        for s in window {
            let Some(o) = s.j.outcome else { continue };
            *n.entry(o).or_default() += 1;
            let t = self.p.timeouts.millis(s.dispatched.runner);
            let problem = match o {
                Outcome::Unclaimed => format!("unclaimed: no claim within {}", duration(t)),
                Outcome::Late => format!(
                    "late: claimed after {:.1} s (T = {})",
                    s.j.latency_ms.unwrap_or(0) as f64 / 1000.0,
                    duration(t)
                ),
                Outcome::Pending => "pending: the evidence ends before its deadline".to_owned(),
                Outcome::Matched | Outcome::Mismatched => continue,
            };
            self.list(&mut d, s, problem, o != Outcome::Pending);
        }
        let get = |o: Outcome| n.get(&o).copied().unwrap_or(0);
        let failing = get(Outcome::Unclaimed) + get(Outcome::Late);
        d.check.positive = get(Outcome::Late) > 0;
        for o in Outcome::ALL {
            d.count(o.as_str(), get(o));
        }
        d.count("sessions", window.len());
        let (status, summary) = if failing > 0 {
            (
                Status::Fail,
                format!(
                    "{} unclaimed, {} late of {} sessions",
                    get(Outcome::Unclaimed),
                    get(Outcome::Late),
                    window.len()
                ),
            )
        } else if window.is_empty() {
            (Status::Unknown, "no session in the window".into())
        } else if get(Outcome::Pending) > 0 {
            (
                Status::Unknown,
                format!(
                    "{} of {} sessions still pending: the evidence ends before their deadline",
                    get(Outcome::Pending),
                    window.len()
                ),
            )
        } else {
            (
                Status::Pass,
                format!(
                    "{} sessions claimed in time (mismatched ones are the next check's)",
                    get(Outcome::Matched)
                ),
            )
        };
        d.finish(status, summary, self.p.max_listed)
    }

    fn no_mismatch(&self, window: &[&Judged]) -> Check {
        let mut d = Draft::new(
            "no_mismatch",
            "no session was first claimed by another runtime".into(),
        );
        d.check.positive = true;
        let mut bad = 0;
        for s in window {
            if s.j.outcome == Some(Outcome::Mismatched)
                && let Some(c) = s.j.first_claim
            {
                bad += 1;
                let problem = format!(
                    "dispatched to {}, claimed by {} ({})",
                    s.dispatched.runner,
                    c.runner,
                    self.worker(&c)
                );
                self.list(&mut d, s, problem, true);
            }
        }
        d.count("sessions", window.len()).count("mismatched", bad);
        let (status, summary) = match (window.len(), bad) {
            (0, _) => (Status::Unknown, "no session in the window".into()),
            (n, 0) => (Status::Pass, format!("none of {n} sessions")),
            (n, b) => (Status::Fail, format!("{b} of {n} sessions")),
        };
        d.finish(status, summary, self.p.max_listed)
    }

    fn no_duplicate(&self, window: &[&Judged]) -> Check {
        let mut d = Draft::new(
            "no_duplicate",
            "no session was claimed twice without a release between (re-claims are listed, \
             not failed)"
                .into(),
        );
        d.check.positive = true;
        let (mut dup, mut cross, mut re) = (0, 0, 0);
        for s in window {
            if s.j.duplicate {
                dup += 1;
                cross += usize::from(s.j.duplicate_cross_runtime);
                let problem = if s.j.duplicate_cross_runtime {
                    "claimed twice, by two runtimes (double execution)"
                } else {
                    "claimed twice with no release between (double execution)"
                };
                self.list(&mut d, s, problem.into(), true);
            } else if s.j.reclaims > 0 {
                re += 1;
                self.list(&mut d, s, "re-claimed after a release".into(), false);
            }
        }
        d.count("sessions", window.len())
            .count("duplicate_claims", dup)
            .count("cross_runtime", cross)
            .count("reclaimed", re);
        let (status, summary) = match (window.len(), dup) {
            (0, _) => (Status::Unknown, "no session in the window".into()),
            (n, 0) => (
                Status::Pass,
                format!("none of {n} sessions ({re} re-claimed after a release)"),
            ),
            (n, b) => (
                Status::Fail,
                format!("{b} of {n} sessions ({cross} across runtimes)"),
            ),
        };
        d.finish(status, summary, self.p.max_listed)
    }

    /// Sessions held at the flip (claimed before it, not released or completed by then) must
    /// finish on the runtime holding them: the flag only affects new dispatches. Only claims
    /// within a look-back before the flip count (the longer claim timeout plus the longest
    /// session observed, claim to completion): older ones are not "in flight" but lost, and
    /// other checks' business. When the old runtime logs no completion at all, nothing can
    /// be told: the check is skipped, saying so once.
    fn in_flight(&self, sessions: &[Judged]) -> (Check, u64) {
        let at = self.flip.at;
        let from = self.flip.from;
        let longest = sessions
            .iter()
            .filter_map(|s| {
                let r = s.session.records();
                let claim = r.iter().find(|r| r.kind == EventKind::Claim)?;
                let done = r
                    .iter()
                    .find(|r| r.kind == EventKind::Completion && r.time >= claim.time)?;
                Some(done.time.millis() - claim.time.millis())
            })
            .max()
            .unwrap_or(0);
        let t_max = [Runner::Go, Runner::Ts]
            .iter()
            .map(|&r| self.p.timeouts.millis(r))
            .max()
            .unwrap_or(0);
        let lookback = t_max.saturating_add(longest);
        let since = at.saturating_add_ms(-lookback);
        let mut d = Draft::new(
            "in_flight",
            format!(
                "sessions in flight at the flip (claimed within {} before it) finished on the \
                 runtime that claimed them",
                duration(lookback)
            ),
        );
        d.check.positive = true;
        d.newest_first = true;
        let old_completes = sessions.iter().any(|s| {
            s.session
                .records()
                .iter()
                .any(|r| r.kind == EventKind::Completion && r.runner == from)
        });
        let (mut held, mut ok, mut bad, mut unknown) = (0, 0, 0, 0);
        for s in sessions.iter().filter(|s| s.dispatched.time < at) {
            let records = s.session.records();
            let mut holder: Option<Record> = None;
            for r in records.iter().take_while(|r| r.time < at) {
                match r.kind {
                    EventKind::Claim => holder = Some(*r),
                    EventKind::Release | EventKind::Completion => holder = None,
                    EventKind::Dispatch | EventKind::Heartbeat => {}
                }
            }
            let Some(h) = holder.filter(|h| h.time >= since) else {
                continue;
            };
            held += 1;
            // The first completion after the flip, or a claim by another runtime after it.
            let next = records.iter().filter(|r| r.time >= at).find(|r| {
                r.kind == EventKind::Completion
                    || (r.kind == EventKind::Claim && r.runner != h.runner)
            });
            match next {
                Some(r) if r.kind == EventKind::Completion && r.runner == h.runner => ok += 1,
                Some(r) => {
                    bad += 1;
                    let verb = if r.kind == EventKind::Claim {
                        "re-claimed"
                    } else {
                        "completed"
                    };
                    let problem = format!(
                        "claimed by {} ({}) before the flip, {verb} by {} ({}) after it",
                        h.runner,
                        self.worker(&h),
                        r.runner,
                        self.worker(r)
                    );
                    self.list(&mut d, s, problem, true);
                }
                None => {
                    unknown += 1;
                    // Not listed when the runtime logs no completions: every one would be.
                    if h.runner != from || old_completes {
                        let problem = format!(
                            "claimed by {} ({}) before the flip; no completion in the evidence",
                            h.runner,
                            self.worker(&h)
                        );
                        self.list(&mut d, s, problem, false);
                    }
                }
            }
        }
        d.count("in_flight", held)
            .count("finished_on_claimer", ok)
            .count("finished_elsewhere", bad)
            .count("no_completion", unknown)
            .count(
                "lookback_seconds",
                usize::try_from(lookback / 1000).unwrap_or(0),
            );
        let reach = if self.start > since {
            Some(format!(
                "the evidence starts at {}, after the look-back began ({}): sessions claimed \
                 before it are not in it",
                self.start, since
            ))
        } else {
            None
        };
        if let Some(r) = &reach {
            d.check.notes.push(r.clone());
        }
        let (status, summary) = if bad > 0 {
            (
                Status::Fail,
                format!("{bad} of {held} finished on another runtime"),
            )
        } else if !old_completes && held > 0 {
            (
                Status::Skipped,
                format!(
                    "{from} logs no completions in the evidence, so where the {held} sessions in \
                     flight at the flip finished cannot be told"
                ),
            )
        } else if held == 0 {
            match reach {
                Some(_) => (
                    Status::Unknown,
                    "no session in flight at the flip in the evidence, which does not reach \
                     back over the look-back"
                        .into(),
                ),
                None => (
                    Status::Skipped,
                    "no session was in flight at the flip".into(),
                ),
            }
        } else if ok == 0 {
            (
                Status::Unknown,
                format!("{held} in flight; no completion of any of them in the evidence"),
            )
        } else {
            (
                Status::Pass,
                if unknown == 0 {
                    format!("all {held} finished on their claimer")
                } else {
                    format!(
                        "{ok} of {held} finished on their claimer; {unknown} with no completion \
                         in the evidence (listed, most recent first)"
                    )
                },
            )
        };
        (d.finish(status, summary, self.p.max_listed), held as u64)
    }

    /// Claim latency compared like with like: the new runtime before and after the flip when
    /// it claimed sessions on both sides (an org already partly on it), else the old runtime's
    /// before against the new one's after, labelled cross-runtime.
    fn latency(&self, baseline: &[&Judged], window: &[&Judged]) -> (Check, LatencyComparison) {
        let of = |ss: &[&Judged], r: Runner| {
            Latency::of(
                ss.iter()
                    .filter(|s| s.dispatched.runner == r)
                    .filter_map(|s| s.j.latency_ms)
                    .collect(),
            )
        };
        let (to, from) = (self.flip.to, self.flip.from);
        let by_runtime: Vec<RuntimeLatency> = [Runner::Go, Runner::Ts]
            .iter()
            .map(|&r| RuntimeLatency {
                runtime: r.as_str().into(),
                before: of(baseline, r),
                after: of(window, r),
            })
            .collect();
        let both = |r: Runner| {
            by_runtime
                .iter()
                .find(|l| l.runtime == r.as_str())
                .is_some_and(|l| l.before.count > 0 && l.after.count > 0)
        };
        // The new runtime is the one on trial: its own latency before, when it had any.
        let (rb, ra) = if both(to) { (to, to) } else { (from, to) };
        let cross = rb != ra;
        let (before, after) = (of(baseline, rb), of(window, ra));
        // Whole milliseconds, as the latencies are: no float noise in the JSON.
        let diff = |a: Option<f64>, b: Option<f64>| {
            a.zip(b).map(|(a, b)| ((a - b) * 1000.0).round() / 1000.0)
        };
        let change = LatencyChange {
            p50: diff(after.p50, before.p50),
            p95: diff(after.p95, before.p95),
            p99: diff(after.p99, before.p99),
        };
        let mut d = Draft::new(
            "claim_latency",
            format!(
                "claim latency p95 after the flip is at most max({LATENCY_FACTOR} × before, \
                 before + {LATENCY_SLACK_S} s), same runtime on both sides where there is one"
            ),
        );
        d.check.positive = true;
        d.count("before", before.count as usize)
            .count("after", after.count as usize);
        let label = if cross {
            format!("cross-runtime: {rb} before vs {ra} after")
        } else {
            format!("{rb} before vs {ra} after")
        };
        if cross {
            d.check.notes.push(format!(
                "no runtime claimed sessions on both sides of the flip, so {rb}'s latency \
                 before is compared with {ra}'s after: a difference is the runtimes', not a \
                 regression of either"
            ));
        }
        let (status, summary) = match (before.p95, after.p95) {
            (Some(b), Some(a)) => {
                let limit = (b * LATENCY_FACTOR).max(b + LATENCY_SLACK_S);
                let text = format!(
                    "{label}: p95 {b:.3} s before, {a:.3} s after ({:+.3} s)",
                    a - b
                );
                if a > limit {
                    (Status::Fail, format!("{text}; limit {limit:.3} s"))
                } else {
                    (Status::Pass, text)
                }
            }
            _ => (
                Status::Unknown,
                if self.start > self.baseline_start && before.count == 0 {
                    format!(
                        "the evidence starts at {}: no baseline to compare with",
                        self.start
                    )
                } else {
                    "no claimed session on one side of the flip to compare".into()
                },
            ),
        };
        let check = d.finish(status, summary, self.p.max_listed);
        (
            check,
            LatencyComparison {
                before,
                after,
                change,
                before_runtime: Some(rb.as_str().into()),
                after_runtime: Some(ra.as_str().into()),
                cross_runtime: cross,
                by_runtime,
            },
        )
    }

    fn share(&self, sessions: &[Judged]) -> Vec<ShareBucket> {
        let size = (self.p.window_ms + SHARE_BUCKETS - 1) / SHARE_BUCKETS;
        let mut buckets: Vec<ShareBucket> = (0..2 * SHARE_BUCKETS)
            .map(|i| ShareBucket {
                start: self.baseline_start.saturating_add_ms(i * size).to_rfc3339(),
                go: 0,
                ts: 0,
                other: 0,
            })
            .collect();
        for s in sessions {
            let off = s.dispatched.time.millis() - self.baseline_start.millis();
            if off < 0 || s.dispatched.time >= self.end {
                continue;
            }
            if let Some(b) = usize::try_from(off / size.max(1))
                .ok()
                .and_then(|i| buckets.get_mut(i))
            {
                match s.dispatched.runner {
                    Runner::Go => b.go += 1,
                    Runner::Ts => b.ts += 1,
                    Runner::Other => b.other += 1,
                }
            }
        }
        buckets
    }
}

/// The sources rejected whole or mostly (more rejected lines than events), named with their
/// main reason and, for a claims input without a runtime, the fix: a configuration mistake
/// is said before the sessions it made fail (as `verify` does).
fn rejected_sources(ev: &FlipEvidence) -> Option<String> {
    let causes: Vec<String> = ev
        .sources
        .iter()
        .filter(|s| s.rejected > 0 && s.rejected > s.events)
        .map(|s| {
            let top = s
                .rejected_by
                .iter()
                .max_by_key(|(_, n)| **n)
                .map_or("rejected", |(r, _)| r.as_str());
            let hint = if top == "missing_runtime" && s.default_runtime.is_none() {
                format!(" — pass --claims {}", crate::report::runtime_hint(&s.name))
            } else {
                String::new()
            };
            let role = if s.role == "dispatch" {
                "dispatch"
            } else {
                "claim"
            };
            format!(
                "{}: {} of {} {role} lines rejected: {top}{hint}",
                s.name,
                s.rejected,
                s.rejected + s.events
            )
        })
        .collect();
    (!causes.is_empty()).then(|| causes.join("; "))
}

fn verdict(checks: &[Check], counts: &SessionCounts, org: &str) -> (Verdict, String) {
    let failed: Vec<&Check> = checks.iter().filter(|c| c.status == Status::Fail).collect();
    let describe = |cs: &[&Check]| {
        cs.iter()
            .map(|c| format!("{} ({})", c.id, c.summary))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let ingest = checks.iter().find(|c| c.id == "ingest");
    if let Some(i) = ingest.filter(|i| i.status != Status::Pass) {
        let positive: Vec<&Check> = failed.iter().copied().filter(|c| c.positive).collect();
        let sources = i.notes.join("; ");
        if !positive.is_empty() {
            return (
                Verdict::Fail,
                format!(
                    "failed: {}; and the evidence is incomplete ({sources})",
                    describe(&positive)
                ),
            );
        }
        return (Verdict::Inconclusive, format!("{}: {sources}", i.summary));
    }
    if !failed.is_empty() {
        return (Verdict::Fail, format!("failed: {}", describe(&failed)));
    }
    if counts.window == 0 {
        return (
            Verdict::Inconclusive,
            format!("no sessions in the window: no session of org {org} was dispatched in it"),
        );
    }
    let undecided: Vec<&Check> = checks
        .iter()
        .filter(|c| {
            c.status == Status::Unknown
                && matches!(
                    c.id.as_str(),
                    "new_runner" | "claimed_in_time" | "no_mismatch" | "no_duplicate"
                )
        })
        .collect();
    if !undecided.is_empty() {
        return (
            Verdict::Inconclusive,
            format!("undecided: {}", describe(&undecided)),
        );
    }
    (
        Verdict::Pass,
        format!(
            "{} sessions dispatched in the window, every check passed or had nothing to check",
            counts.window
        ),
    )
}
