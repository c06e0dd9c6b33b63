//! Batch verification: the pipeline on event time, then one judgement per session into a report.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::correlate::{CorrelateConfig, Correlator, Evicted};
use crate::event::Timestamp;
use crate::parse::ParseConfig;
use crate::parse::Parser;
use crate::pipeline::{self, Observer, ReadOrder};
use crate::report::{Report, Selection, Tally};
use crate::sources::{Input, SourceError};

#[derive(Debug, Clone)]
pub struct VerifyOptions {
    pub parse: ParseConfig,
    pub correlate: CorrelateConfig,
    pub selection: Selection,
    /// Findings kept in the report (the total is always stated).
    pub max_findings: usize,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            parse: ParseConfig::default(),
            correlate: CorrelateConfig::default(),
            selection: Selection::default(),
            max_findings: 100,
        }
    }
}

struct Judge<'a> {
    tally: Tally,
    progress: &'a mut dyn FnMut(),
}

impl Observer for Judge<'_> {
    fn evicted(&mut self, c: &Correlator, sessions: Vec<Evicted>) {
        for e in sessions {
            self.tally.add(c, &e.id, &e.session, e.watermark);
        }
    }

    fn progress(&mut self) {
        (self.progress)();
    }

    fn settled(&mut self, c: &mut Correlator, low: Timestamp) {
        let settled = c.settle(low);
        // A settled session's judgement does not depend on the watermark (`correlate::settle`).
        let watermark = c.watermark();
        for s in settled {
            self.tally.add(c, &s.id, &s.session, watermark);
        }
    }

    fn stop(&self, c: &Correlator) -> bool {
        c.late_evidence_so_far()
    }
}

/// Reads `inputs` to the end and judges every session against the final watermark.
/// `read_bytes` and `progress` drive an optional progress bar.
///
/// Inputs that can be read twice (files, not stdin) are read by event time, and sessions are
/// judged and dropped as soon as their evidence has settled, so memory follows the sessions
/// in flight rather than the size of the input. If an input then delivers evidence for a
/// session already judged (a line far out of order), that pass is abandoned and the inputs are
/// read again, holding every session to the end: the report is the same either way.
pub fn verify(
    inputs: &[Input],
    options: &VerifyOptions,
    read_bytes: Arc<AtomicU64>,
    progress: &mut dyn FnMut(),
) -> Result<Report, SourceError> {
    if inputs.iter().all(|i| i.path.is_some()) {
        let streamed = pass(inputs, options, read_bytes.clone(), progress, true)?;
        if !streamed.late {
            return Ok(streamed.report);
        }
        read_bytes.store(0, Ordering::Relaxed);
    }
    Ok(pass(inputs, options, read_bytes, progress, false)?.report)
}

/// One reading of the inputs.
struct Pass {
    report: Report,
    /// Settling met evidence for a session already judged: `report` is not to be used.
    late: bool,
    /// The most sessions held at once while settling.
    #[cfg_attr(not(test), allow(dead_code))]
    held_max: usize,
}

fn pass(
    inputs: &[Input],
    options: &VerifyOptions,
    read_bytes: Arc<AtomicU64>,
    progress: &mut dyn FnMut(),
    settle: bool,
) -> Result<Pass, SourceError> {
    let parser = Parser::new(options.parse.clone());
    let mut correlate = options.correlate.clone();
    if correlate.expected_sessions == 0 && !settle {
        // About one session per KiB of logs (simulate writes 1.4 KiB per session); only the
        // table's control bytes are touched until sessions arrive. (Settling holds only the
        // sessions in flight: the table grows as it needs.)
        let bytes: u64 = inputs.iter().filter_map(Input::size_on_disk).sum();
        correlate.expected_sessions = usize::try_from(bytes / 1024).unwrap_or(usize::MAX);
    }
    let mut correlator = Correlator::new(correlate);
    let order = if settle {
        correlator.enable_settling();
        ReadOrder::ByEventTime
    } else {
        ReadOrder::Sequential
    };
    let names = inputs.iter().map(Input::name).collect();
    let tally = Tally::new(
        options.selection.clone(),
        options.correlate.timeouts,
        names,
        options.max_findings,
    );
    let mut judge = Judge { tally, progress };
    let ingest = pipeline::run(
        inputs,
        &parser,
        &mut correlator,
        read_bytes,
        &mut judge,
        order,
    )?;
    let mut tally = judge.tally;
    let watermark = correlator.watermark();
    tracing::debug!(
        held_max = correlator.held_max(),
        left = correlator.session_count(),
        settle,
        "sessions held at most while reading"
    );
    for (id, session) in correlator.sessions() {
        tally.add(&correlator, id, session, watermark);
    }
    Ok(Pass {
        report: tally.finish(&correlator, &ingest, inputs),
        late: correlator.late_evidence(),
        held_max: correlator.held_max().max(correlator.session_count()),
    })
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;
    use std::path::Path;

    use super::*;
    use crate::simulate::{self, NoiseProfile, SimConfig};
    use crate::sources::Role;

    fn inputs(dir: &Path, dispatch: &[&str], claims: &[&str]) -> Vec<Input> {
        let path = |f: &str| dir.join(f).display().to_string();
        let mut v: Vec<Input> = dispatch
            .iter()
            .map(|f| Input::parse(&path(f), Role::Dispatch).unwrap())
            .collect();
        for c in claims {
            let (rt, f) = c.split_once('=').unwrap();
            v.push(Input::parse(&format!("{rt}={}", path(f)), Role::Claims).unwrap());
        }
        v
    }

    fn both(inputs: &[Input], options: &VerifyOptions) -> (Pass, Pass) {
        let run = |settle| {
            pass(inputs, options, Arc::default(), &mut || {}, settle)
                .unwrap_or_else(|e| panic!("{e}"))
        };
        (run(true), run(false))
    }

    /// Settled early or held to the end, simulate's workloads (faults, re-deliveries, broken
    /// lines, both noise profiles) get the same report.
    #[test]
    fn settling_gives_the_report_of_holding_every_session() {
        for (seed, noise) in [(3, NoiseProfile::Classic), (5, NoiseProfile::Realistic)] {
            let dir = tempfile::tempdir().unwrap();
            let cfg = SimConfig {
                sessions: 4000,
                seed,
                noise,
                ..SimConfig::default()
            };
            simulate::generate(&cfg, dir.path()).unwrap();
            let inputs = inputs(
                dir.path(),
                &[simulate::DISPATCH_LOG, simulate::VERCEL_DRAIN],
                &["go=go-daemon.log", "ts=ts-worker.log"],
            );
            let (streamed, exact) = both(&inputs, &VerifyOptions::default());
            assert!(!streamed.late, "seed {seed}: no evidence is out of order");
            assert!(exact.report.findings_total > 0);
            assert_eq!(streamed.report, exact.report, "seed {seed} {noise:?}");
        }
    }

    /// One session every 36 s, in two files padded with noise (so a 1 MiB chunk holds a
    /// couple of hours): every 10th unclaimed, every 11th claimed late, every 13th by the other
    /// runtime, the rest claimed and completed.
    fn spread_out(dir: &Path, sessions: usize, late_claim: bool) -> Vec<Input> {
        let t0 = 1_795_420_800_000i64; // 2026-11-23T08:00:00Z
        let at = |ms: i64| Timestamp(ms).to_rfc3339();
        let pad = format!(
            r#"{{"level":"info","msg":"GET /api/health 200","pad":"{}"}}"#,
            "x".repeat(560)
        );
        let (mut d, mut c) = (String::new(), String::new());
        for i in 0..sessions {
            let t = t0 + i as i64 * 36_000;
            let runner = if i % 3 == 0 { "go" } else { "ts" };
            let _ = writeln!(
                d,
                r#"{{"event":"dispatch","sessionId":"s{i}","time":"{}","organizationId":"o{}","resolvedProfile":{{"runner":"{runner}"}}}}"#,
                at(t),
                i % 7
            );
            for _ in 0..8 {
                let _ = writeln!(d, "{pad}");
            }
            for _ in 0..4 {
                let _ = writeln!(c, "{pad}");
            }
            if i % 10 == 0 {
                continue;
            }
            let claim = t + if i % 11 == 0 { 150_000 } else { 2_000 };
            let rt = if i % 13 == 0 { "ts" } else { runner };
            let _ = writeln!(
                c,
                r#"{{"event":"claimed","sessionId":"s{i}","time":"{}","runtime":"{rt}","workerId":"w{}"}}"#,
                at(claim),
                i % 4
            );
            let _ = writeln!(
                c,
                r#"{{"event":"completed","sessionId":"s{i}","time":"{}","runtime":"{rt}","workerId":"w{}","status":"ok"}}"#,
                at(claim + 300_000),
                i % 4
            );
        }
        if late_claim {
            // a claim for the first session, a day late, at the end of its file
            let _ = writeln!(
                c,
                r#"{{"event":"claimed","sessionId":"s0","time":"{}","runtime":"go","workerId":"w9"}}"#,
                at(t0 + 86_400_000)
            );
        }
        std::fs::write(dir.join("dispatch.log"), d).unwrap();
        std::fs::write(dir.join("claims.log"), c).unwrap();
        inputs(dir, &["dispatch.log"], &["go=claims.log"])
    }

    #[test]
    fn settling_holds_only_the_sessions_in_flight() {
        let dir = tempfile::tempdir().unwrap();
        let inputs = spread_out(dir.path(), 10_000, false);
        let (streamed, exact) = both(&inputs, &VerifyOptions::default());
        assert!(!streamed.late);
        assert_eq!(streamed.report, exact.report);
        let t = &exact.report.totals;
        assert_eq!(t.dispatched.sum(), 10_000);
        assert_eq!(t.unclaimed, 1000);
        assert!(t.late > 0 && t.mismatched > 0 && t.matched > 5000);
        // A dispatch chunk holds about 200 sessions and the settling window about 40; however
        // the threads are scheduled, the reader runs at most the pipeline's depth (10 chunks
        // on 2 cores) ahead of the marks.
        assert!(streamed.held_max < 3000, "held {}", streamed.held_max);
        assert_eq!(exact.held_max, 10_000);
    }

    /// A line far out of order reaches a session already judged: the settled pass is abandoned
    /// and the inputs are judged again holding every session, with the same report.
    #[test]
    fn evidence_for_a_settled_session_reads_the_inputs_again() {
        let dir = tempfile::tempdir().unwrap();
        let inputs = spread_out(dir.path(), 1500, true);
        let (streamed, exact) = both(&inputs, &VerifyOptions::default());
        assert!(streamed.late);
        let report = verify(
            &inputs,
            &VerifyOptions::default(),
            Arc::default(),
            &mut || {},
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(report, exact.report);
        assert_eq!(report.totals.orphan_claims, 0, "s0's late claim is its own");
        let first = &report.findings[0];
        assert_eq!((&*first.session_id, &*first.outcome), ("s0", "late"));
    }
}
