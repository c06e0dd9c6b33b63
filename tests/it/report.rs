//! Post-flip reports on `simulate` workloads. Each test starts from a clean platform (no
//! injected faults), reads the logs into flip evidence, injects exactly one fault near a flip
//! and checks that exactly the check for that fault fails. The CLI tests run the real binary;
//! the HTML test opens a failing report in headless Chromium.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use claimcheck::config::ParseConfig;
use claimcheck::event::{Event, EventKind, Name, Runner, SessionId, Timestamp};
use claimcheck::flip::{self, FlipEvidence, FlipParams, FlipReport, Status, render};
use claimcheck::parse::time::parse_rfc3339;
use claimcheck::report::Verdict;
use claimcheck::simulate::{SimConfig, Truth, generate};
use claimcheck::sources::{Input, Role};

use crate::support::run_in;

const WINDOW_MS: i64 = 2 * 60 * 1000;
const GRACE_MS: i64 = 5_000;

struct Workload {
    dir: tempfile::TempDir,
    truth: Truth,
}

impl Workload {
    fn new(seed: u64) -> Workload {
        let dir = tempfile::tempdir().unwrap();
        let cfg = SimConfig {
            sessions: 10_000,
            seed,
            faults: false,
            ..SimConfig::default()
        };
        let truth = generate(&cfg, dir.path()).unwrap();
        Workload { dir, truth }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn inputs(&self) -> Vec<Input> {
        let p = |n: &str| self.path(n).display().to_string();
        vec![
            Input::parse(&p("dispatch.log"), Role::Dispatch).unwrap(),
            Input::parse(&p("vercel-drain.ndjson"), Role::Dispatch).unwrap(),
            Input::parse(&format!("go={}", p("go-daemon.log")), Role::Claims).unwrap(),
            Input::parse(&format!("ts={}", p("ts-worker.log")), Role::Claims).unwrap(),
        ]
    }

    /// The org that flips once, ts → go (the rollback org flips twice), with its flip time.
    fn flipped(&self) -> (String, Timestamp) {
        let f = self
            .truth
            .flips
            .iter()
            .find(|f| {
                f.to == "go" && self.truth.flips.iter().filter(|g| g.org == f.org).count() == 1
            })
            .expect("a ts → go flip");
        (f.org.clone(), parse_rfc3339(&f.at).unwrap())
    }

    /// The org that went to go and back, with the rollback's time.
    fn rolled_back(&self) -> (String, Timestamp) {
        let f = self
            .truth
            .flips
            .iter()
            .find(|f| f.to == "ts")
            .expect("a go → ts rollback");
        (f.org.clone(), parse_rfc3339(&f.at).unwrap())
    }

    fn evidence(&self, org: &str) -> FlipEvidence {
        flip::logs::read(
            &self.inputs(),
            &ParseConfig::default(),
            org,
            Arc::new(AtomicU64::new(0)),
            &mut || {},
        )
        .unwrap()
    }
}

fn params(org: &str) -> FlipParams {
    let mut p = FlipParams::new(org);
    p.window_ms = WINDOW_MS;
    p.grace_ms = GRACE_MS;
    p
}

fn statuses(r: &FlipReport) -> BTreeMap<String, Status> {
    r.checks.iter().map(|c| (c.id.clone(), c.status)).collect()
}

/// Every check passes, except `failing`, which fails; the verdict follows.
#[track_caller]
fn assert_only(r: &FlipReport, failing: &[&str]) {
    for c in &r.checks {
        let want = if failing.contains(&c.id.as_str()) {
            Status::Fail
        } else {
            Status::Pass
        };
        assert_eq!(
            c.status, want,
            "{}: {} ({:?})\n{}",
            c.id, c.summary, c.notes, r.reason
        );
    }
    let verdict = if failing.is_empty() {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    assert_eq!(r.verdict, verdict, "{}", r.reason);
}

/// The org's sessions dispatched in `[from, to)`, in dispatch order.
fn dispatched(ev: &FlipEvidence, from: Timestamp, to: Timestamp) -> Vec<SessionId> {
    let mut out: Vec<(Timestamp, SessionId)> = ev
        .events
        .iter()
        .filter(|(e, _)| e.kind == EventKind::Dispatch && e.time >= from && e.time < to)
        .filter_map(|(e, _)| e.session.clone().map(|s| (e.time, s)))
        .collect();
    out.sort();
    out.dedup_by(|a, b| a.1 == b.1);
    out.into_iter().map(|(_, s)| s).collect()
}

/// Applies `f` to every event (re-deliveries included) of `kind` of session `id`.
fn edit(ev: &mut FlipEvidence, id: &SessionId, kind: EventKind, f: impl Fn(&mut Event)) {
    let mut n = 0;
    for (e, _) in ev.events.iter_mut() {
        if e.session.as_ref() == Some(id) && e.kind == kind {
            f(e);
            n += 1;
        }
    }
    assert!(n > 0, "{id} has no {kind:?}");
}

fn event_of(ev: &FlipEvidence, id: &SessionId, kind: EventKind) -> Event {
    ev.events
        .iter()
        .find(|(e, _)| e.session.as_ref() == Some(id) && e.kind == kind)
        .map(|(e, _)| e.clone())
        .unwrap_or_else(|| panic!("{id} has no {kind:?}"))
}

fn push(ev: &mut FlipEvidence, e: Event) {
    let origin = ev.events.last().map(|(_, o)| *o).unwrap_or_default();
    ev.events.push((e, origin));
}

/// Serves a session on `runtime` instead: its claims and completions move to a worker there.
fn serve_on(ev: &mut FlipEvidence, id: &SessionId, runtime: Runner) {
    let worker = if runtime == Runner::Go {
        "go-host-1"
    } else {
        "ts-worker-2"
    };
    for kind in [EventKind::Claim, EventKind::Completion] {
        edit(ev, id, kind, |e| {
            e.runner = runtime;
            e.worker = Some(Name::new(worker));
            e.version = None;
        });
    }
}

/// A session of the window's middle (safely after the grace, well before the end).
fn middle(ev: &FlipEvidence, at: Timestamp, n: usize) -> Vec<SessionId> {
    let s = dispatched(
        ev,
        at.saturating_add_ms(30_000),
        at.saturating_add_ms(90_000),
    );
    assert!(
        s.len() >= n,
        "only {} sessions in the window's middle",
        s.len()
    );
    s.into_iter().take(n).collect()
}

/// The clean report, and the evidence and flip time it was built from.
fn clean(seed: u64) -> (Workload, String, FlipEvidence, Timestamp) {
    let w = Workload::new(seed);
    let (org, truth_at) = w.flipped();
    let ev = w.evidence(&org);
    let r = flip::build(&ev, &params(&org)).unwrap();
    let at = parse_rfc3339(&r.flip_at).unwrap();
    // Located at the first dispatch to go, which comes just after the flag changed.
    assert!(
        at >= truth_at && at.millis() - truth_at.millis() < 10_000,
        "located {at}, truth {truth_at}"
    );
    assert_eq!((r.from.as_str(), r.to.as_str()), ("ts", "go"));
    (w, org, ev, at)
}

#[test]
fn a_clean_flip_passes_every_check() {
    for seed in [3, 8] {
        let (_w, org, ev, _) = clean(seed);
        let r = flip::build(&ev, &params(&org)).unwrap();
        assert_only(&r, &[]);
        assert!(r.sessions.window > 20, "{:?}", r.sessions);
        assert!(r.sessions.in_flight > 0);
        assert_eq!(
            r.check("in_flight").unwrap().counts["finished_elsewhere"],
            0
        );
    }
}

#[test]
fn a_dispatch_to_the_old_runner_after_the_grace_fails_new_runner_only() {
    let (_w, org, mut ev, at) = clean(3);
    let id = &middle(&ev, at, 1)[0];
    // The resolver fell back to ts: dispatched to ts, served by ts, in time.
    edit(&mut ev, id, EventKind::Dispatch, |e| e.runner = Runner::Ts);
    serve_on(&mut ev, id, Runner::Ts);
    let r = flip::build(&ev, &params(&org)).unwrap();
    assert_only(&r, &["new_runner"]);
    let c = r.check("new_runner").unwrap();
    assert_eq!(c.counts["to_old_runner"], 1);
    assert_eq!(c.sessions[0].session_id, id.as_str());
    assert!(
        c.sessions[0]
            .events
            .iter()
            .any(|e| e.source.contains(".log:") || e.source.contains(".ndjson:"))
    );
    // The stray dispatch does not move the located flip.
    assert_eq!(parse_rfc3339(&r.flip_at), Some(at));
}

#[test]
fn an_unclaimed_session_fails_claimed_in_time_only() {
    let (_w, org, mut ev, at) = clean(3);
    let id = middle(&ev, at, 1).remove(0);
    ev.events
        .retain(|(e, _)| e.session.as_ref() != Some(&id) || e.kind == EventKind::Dispatch);
    let r = flip::build(&ev, &params(&org)).unwrap();
    assert_only(&r, &["claimed_in_time"]);
    let c = r.check("claimed_in_time").unwrap();
    assert_eq!((c.counts["unclaimed"], c.counts["late"]), (1, 0));
    assert!(c.sessions[0].problem.starts_with("unclaimed"));
}

#[test]
fn a_late_claim_fails_claimed_in_time_only() {
    let (_w, org, mut ev, at) = clean(3);
    let id = middle(&ev, at, 1).remove(0);
    let d = event_of(&ev, &id, EventKind::Dispatch).time;
    // The claim (and its completion) come 30 s past the deadline.
    let late = d.saturating_add_ms(150_000);
    edit(&mut ev, &id, EventKind::Claim, |e| e.time = late);
    edit(&mut ev, &id, EventKind::Completion, |e| {
        e.time = late.saturating_add_ms(1000);
    });
    let r = flip::build(&ev, &params(&org)).unwrap();
    assert_only(&r, &["claimed_in_time"]);
    assert_eq!(r.check("claimed_in_time").unwrap().counts["late"], 1);
}

#[test]
fn a_claim_by_the_other_runtime_fails_no_mismatch_only() {
    let (_w, org, mut ev, at) = clean(8);
    let id = middle(&ev, at, 1).remove(0);
    serve_on(&mut ev, &id, Runner::Ts);
    let r = flip::build(&ev, &params(&org)).unwrap();
    assert_only(&r, &["no_mismatch"]);
    let c = r.check("no_mismatch").unwrap();
    assert_eq!(c.counts["mismatched"], 1);
    assert_eq!(
        c.sessions[0].problem,
        "dispatched to go, claimed by ts (ts-worker-2)"
    );
}

#[test]
fn a_second_claim_without_release_fails_no_duplicate_but_a_reclaim_does_not() {
    let (_w, org, mut ev, at) = clean(3);
    let ids = middle(&ev, at, 2);
    // A re-claim: released a second after the claim, claimed again by another go daemon.
    let claim = event_of(&ev, &ids[1], EventKind::Claim);
    let release = Event {
        kind: EventKind::Release,
        time: claim.time.saturating_add_ms(1000),
        detail: Some(Name::new("nack")),
        version: None,
        ..claim.clone()
    };
    let again = Event {
        time: claim.time.saturating_add_ms(3000),
        worker: Some(Name::new("go-host-2")),
        ..claim.clone()
    };
    push(&mut ev, release);
    push(&mut ev, again);
    let r = flip::build(&ev, &params(&org)).unwrap();
    assert_only(&r, &[]);
    let c = r.check("no_duplicate").unwrap();
    assert_eq!(c.counts["reclaimed"], 1);
    assert_eq!(c.sessions.len(), 1);
    assert!(!c.sessions[0].failing);

    // A double execution: a second go daemon claims with no release between.
    let claim = event_of(&ev, &ids[0], EventKind::Claim);
    push(
        &mut ev,
        Event {
            time: claim.time.saturating_add_ms(2000),
            worker: Some(Name::new("go-host-3")),
            ..claim
        },
    );
    let r = flip::build(&ev, &params(&org)).unwrap();
    assert_only(&r, &["no_duplicate"]);
    let c = r.check("no_duplicate").unwrap();
    assert_eq!(
        (c.counts["duplicate_claims"], c.counts["reclaimed"]),
        (1, 1)
    );
    assert!(c.sessions[0].failing && !c.sessions[1].failing);
}

/// Sessions claimed before the flip and completed after it.
fn in_flight(ev: &FlipEvidence, at: Timestamp) -> Vec<SessionId> {
    let mut out = Vec::new();
    for id in dispatched(ev, at.saturating_add_ms(-WINDOW_MS), at) {
        let claim = event_of(ev, &id, EventKind::Claim);
        let done = ev
            .events
            .iter()
            .find(|(e, _)| e.session.as_ref() == Some(&id) && e.kind == EventKind::Completion);
        if claim.time < at && done.is_some_and(|(e, _)| e.time > at) {
            out.push(id);
        }
    }
    out
}

#[test]
fn an_in_flight_session_completed_elsewhere_fails_in_flight_only() {
    let (_w, org, mut ev, at) = clean(3);
    let held = in_flight(&ev, at);
    assert!(held.len() > 2);
    // One loses its completion: listed as unknown, not failed.
    ev.events
        .retain(|(e, _)| e.session.as_ref() != Some(&held[0]) || e.kind != EventKind::Completion);
    let r = flip::build(&ev, &params(&org)).unwrap();
    assert_only(&r, &[]);
    let c = r.check("in_flight").unwrap();
    assert_eq!(c.counts["no_completion"], 1);
    assert_eq!(c.sessions[0].session_id, held[0].as_str());
    assert!(!c.sessions[0].failing);

    // One claimed by ts before the flip completes on go after it.
    edit(&mut ev, &held[1], EventKind::Completion, |e| {
        e.runner = Runner::Go;
        e.worker = Some(Name::new("go-host-2"));
    });
    let r = flip::build(&ev, &params(&org)).unwrap();
    assert_only(&r, &["in_flight"]);
    let c = r.check("in_flight").unwrap();
    assert_eq!(c.counts["finished_elsewhere"], 1);
    assert!(c.sessions[0].failing);
    assert_eq!(c.sessions[0].session_id, held[1].as_str());
}

#[test]
fn silent_go_daemons_fail_the_daemon_check_only() {
    let (_w, org, mut ev, at) = clean(3);
    // No go heartbeat from 30 s before the flip to 100 s after it: 2 min after the last one,
    // at most 90 s into the window, nothing proves a go daemon alive until the next one.
    let (from, to) = (at.saturating_add_ms(-30_000), at.saturating_add_ms(100_000));
    ev.events.retain(|(e, _)| {
        !(e.kind == EventKind::Heartbeat && e.runner == Runner::Go && e.time >= from && e.time < to)
    });
    let r = flip::build(&ev, &params(&org)).unwrap();
    assert_only(&r, &["daemon"]);
    let c = r.check("daemon").unwrap();
    assert_eq!(c.counts["gaps"], 1);
    assert!(
        c.notes
            .iter()
            .any(|n| n.starts_with("no go daemon at >= 0.5.0")),
        "{:?}",
        c.notes
    );
}

#[test]
fn a_pre_0_5_daemon_claiming_the_orgs_sessions_fails_the_daemon_check_only() {
    let (_w, org, mut ev, _) = clean(3);
    for (e, _) in ev.events.iter_mut() {
        if e.worker.as_deref() == Some("go-host-3") && e.version.is_some() {
            e.version = Some(Name::new("v0.4.9"));
        }
    }
    let r = flip::build(&ev, &params(&org)).unwrap();
    assert_only(&r, &["daemon"]);
    let c = r.check("daemon").unwrap();
    assert_eq!(c.counts["gaps"], 0);
    assert!(c.counts["stale_claims"] > 0);
    assert!(c.sessions[0].problem.contains("go-host-3 at v0.4.9"));
}

#[test]
fn slow_claims_after_the_flip_fail_claim_latency_only() {
    let (_w, org, mut ev, at) = clean(8);
    let window = dispatched(&ev, at, at.saturating_add_ms(WINDOW_MS));
    // A quarter of the window's sessions are claimed 100 s after dispatch: within T, so
    // matched, but p95 triples.
    for id in window.iter().step_by(4) {
        let d = event_of(&ev, id, EventKind::Dispatch).time;
        let c = event_of(&ev, id, EventKind::Claim).time;
        let shift = 100_000 - (c.millis() - d.millis());
        edit(&mut ev, id, EventKind::Claim, |e| {
            e.time = e.time.saturating_add_ms(shift);
        });
        edit(&mut ev, id, EventKind::Completion, |e| {
            e.time = e.time.saturating_add_ms(shift);
        });
    }
    let r = flip::build(&ev, &params(&org)).unwrap();
    assert_only(&r, &["claim_latency"]);
    let l = &r.claim_latency_seconds;
    assert!(l.change.p95.unwrap() > 50.0, "{l:?}");
}

#[test]
fn no_session_in_the_window_is_inconclusive_never_a_pass() {
    let (_w, org, mut ev, at) = clean(3);
    let end = at.saturating_add_ms(WINDOW_MS);
    let gone = dispatched(&ev, at, end);
    ev.events
        .retain(|(e, _)| e.session.as_ref().is_none_or(|s| !gone.contains(s)));
    let mut p = params(&org);
    p.at = Some(at);
    p.to = Some(Runner::Go);
    let r = flip::build(&ev, &p).unwrap();
    assert_eq!(r.verdict, Verdict::Inconclusive, "{}", r.reason);
    assert_eq!(r.sessions.window, 0);
    assert!(r.reason.contains("no session of org"), "{}", r.reason);
    let s = statuses(&r);
    assert_eq!(s["claimed_in_time"], Status::Unknown);
    assert!(!s.values().any(|s| *s == Status::Fail), "{s:?}");
}

#[test]
fn a_rollback_gets_the_mirrored_checks() {
    let w = Workload::new(3);
    let (org, truth_at) = w.rolled_back();
    let mut ev = w.evidence(&org);
    let r = flip::build(&ev, &params(&org)).unwrap();
    assert_eq!(r.kind, flip::FlipKind::Rollback);
    assert_eq!((r.from.as_str(), r.to.as_str()), ("go", "ts"));
    let at = parse_rfc3339(&r.flip_at).unwrap();
    assert!(at >= truth_at && at.millis() - truth_at.millis() < 10_000);
    assert_only(&r, &[]);
    assert!(r.check("daemon").unwrap().title.starts_with("ts workers"));
    assert!(r.sessions.in_flight > 0);

    // A go session in flight at the rollback is finished by a ts worker: lost continuity.
    let held = in_flight(&ev, at);
    let id = held
        .iter()
        .find(|id| event_of(&ev, id, EventKind::Claim).runner == Runner::Go)
        .expect("a go session in flight at the rollback")
        .clone();
    edit(&mut ev, &id, EventKind::Completion, |e| {
        e.runner = Runner::Ts;
        e.worker = Some(Name::new("ts-worker-1"));
    });
    let r = flip::build(&ev, &params(&org)).unwrap();
    assert_only(&r, &["in_flight"]);
    let c = r.check("in_flight").unwrap();
    assert!(
        c.sessions[0].problem.starts_with("claimed by go"),
        "{}",
        c.sessions[0].problem
    );
}

/// `claimcheck report` over the workload's files.
fn cli(dir: &Path, org: &str, extra: &[&str]) -> (i32, serde_json::Value) {
    let mut args = vec![
        "report",
        "--org",
        org,
        "--window",
        "2m",
        "--grace",
        "5s",
        "--dispatch",
        "dispatch.log",
        "--dispatch",
        "vercel-drain.ndjson",
        "--claims",
        "go=go-daemon.log",
        "--claims",
        "ts=ts-worker.log",
        "--format",
        "json",
    ];
    args.extend(extra);
    let out = run_in(dir, &args, None);
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap(), v)
}

#[test]
fn cli_exit_codes_pass_fail_inconclusive_and_errors() {
    let w = Workload::new(3);
    let (org, truth_at) = w.flipped();
    let (code, v) = cli(w.dir.path(), &org, &[]);
    assert_eq!(
        (code, v["verdict"].as_str()),
        (0, Some("pass")),
        "{}",
        v["reason"]
    );
    assert_eq!(v["checks"].as_array().unwrap().len(), 8);
    let at = v["flip_at"].as_str().unwrap().to_owned();

    // A ts worker log that stops at the flip: the report cannot tell, so it does not pass.
    let ts = w.path("ts-worker.log");
    let text = std::fs::read_to_string(&ts).unwrap();
    let parser = claimcheck::parse::Parser::new(ParseConfig::default());
    let ctx = claimcheck::parse::LineContext {
        default_runtime: Some(Runner::Ts),
        received_at: None,
    };
    let kept: String = text
        .lines()
        .take_while(|l| match parser.parse_line(l.as_bytes(), &ctx) {
            claimcheck::parse::Parsed::Event(e) => e.time < truth_at,
            _ => true,
        })
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&ts, kept).unwrap();
    let (code, v) = cli(w.dir.path(), &org, &["--flip-at", &at]);
    assert_eq!(
        (code, v["verdict"].as_str()),
        (3, Some("inconclusive")),
        "{}",
        v["reason"]
    );
    let sources = v["sources"].as_array().unwrap();
    let health: Vec<&str> = sources
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(health, ["ok", "ok", "ok", "silent"]);
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .contains("ts-worker.log delivered no event")
    );

    // Usage errors exit 2.
    let out = run_in(w.dir.path(), &["report", "--org", &org], None);
    assert_eq!(out.status.code(), Some(2));
    let out = run_in(
        w.dir.path(),
        &[
            "report",
            "--org",
            "org_nobody",
            "--dispatch",
            "dispatch.log",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no dispatch of org"));
}

/// A failing report: a mismatched session and a double claim after the flip.
fn failing_report() -> FlipReport {
    let (_w, org, mut ev, at) = clean(3);
    let ids = middle(&ev, at, 2);
    serve_on(&mut ev, &ids[0], Runner::Ts);
    let claim = event_of(&ev, &ids[1], EventKind::Claim);
    push(
        &mut ev,
        Event {
            time: claim.time.saturating_add_ms(2500),
            worker: Some(Name::new("ts-worker-1")),
            runner: Runner::Ts,
            ..claim
        },
    );
    let r = flip::build(&ev, &params(&org)).unwrap();
    assert_only(&r, &["no_mismatch", "no_duplicate"]);
    r
}

fn chromium(args: &[&str], page: &Path, profile: &Path) -> (String, String) {
    let out = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--enable-logging=stderr", "--v=0", "--hide-scrollbars"])
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium (the Debian package) is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Console messages (script errors, invalid SVG attributes) as Chromium logs them.
fn console(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains(":CONSOLE")).collect()
}

/// Pixels of exactly this colour in an RGB(A) PNG.
fn pixels(png_path: &Path, rgb: [u8; 3]) -> usize {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(png_path).unwrap(),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = info.color_type.samples();
    buf[..info.buffer_size()]
        .chunks(step)
        .filter(|p| p[..3] == rgb)
        .count()
}

#[test]
fn the_html_report_renders_in_chromium_with_its_verdict_and_both_charts() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("profile");

    // The console check is live: a page with a bad SVG attribute is caught.
    let bad = dir.path().join("bad.html");
    std::fs::write(
        &bad,
        "<!doctype html><svg width=\"9\" height=\"9\"><rect width=\"5\" height=\"-5\"/></svg>",
    )
    .unwrap();
    let (_, err) = chromium(&["--dump-dom"], &bad, &profile);
    assert_eq!(console(&err).len(), 1, "{err}");

    let r = failing_report();
    let html = render::html(&r);
    // Self-contained: nothing to fetch, nothing to run.
    for external in ["<script", "src=", "href=", "url(", "@import"] {
        assert!(!html.contains(external), "{external}");
    }
    let page = dir.path().join("report.html");
    std::fs::write(&page, &html).unwrap();

    let (dom, err) = chromium(&["--dump-dom"], &page, &profile);
    assert_eq!(console(&err), Vec::<&str>::new());
    assert!(dom.contains(r#"id="verdict" class="verdict v-fail" data-verdict="fail""#));
    let share = &dom[dom.find(r#"<svg id="chart-share""#).expect("share chart")..];
    let share = &share[..share.find("</svg>").unwrap()];
    assert!(share.matches(r#"class="bar-go""#).count() >= 10, "{share}");
    assert!(share.matches(r#"class="bar-ts""#).count() >= 10);
    let latency = &dom[dom
        .find(r#"<svg id="chart-latency""#)
        .expect("latency chart")..];
    let latency = &latency[..latency.find("</svg>").unwrap()];
    assert_eq!(latency.matches(r#"class="bar-before""#).count(), 3);
    assert_eq!(latency.matches(r#"class="bar-after""#).count(), 3);
    // Its unit is on the axis, and which runtime each side is (ts before, go after: labelled
    // as the runtimes' difference, not a regression).
    assert!(latency.contains(">seconds</text>"), "{latency}");
    assert!(latency.contains(">before (ts)</text>") && latency.contains(">after (go)</text>"));
    assert!(latency.contains("cross-runtime"), "{latency}");

    // And it is drawn: the screenshot has the charts' colours (go and ts bars; the latency
    // chart's grey "before" bars), and the verdict's red border.
    let shot = dir.path().join("report.png");
    let (_, err) = chromium(
        &[
            "--window-size=1000,2200",
            &format!("--screenshot={}", shot.display()),
        ],
        &page,
        &profile,
    );
    assert_eq!(console(&err), Vec::<&str>::new());
    assert!(pixels(&shot, [0x0f, 0x76, 0x6e]) > 10_000, "go bars");
    assert!(pixels(&shot, [0xd9, 0x77, 0x06]) > 10_000, "ts bars");
    assert!(pixels(&shot, [0xa1, 0xa1, 0xaa]) > 2_000, "before bars");
    assert!(
        pixels(&shot, [0xdc, 0x26, 0x26]) > 500,
        "the fail verdict's border"
    );
}

#[test]
fn markdown_and_json_carry_the_evidence() {
    let r = failing_report();
    let md = render::markdown(&r);
    assert!(md.contains("**Verdict: FAIL**"));
    let c = r.check("no_mismatch").unwrap();
    let s = &c.sessions[0];
    assert!(md.contains(&format!("- ✗ `{}` {}", s.session_id, s.problem)));
    for e in &s.events {
        assert!(md.contains(&e.source), "{}", e.source);
    }
    let v: serde_json::Value = serde_json::from_str(&render::json(&r)).unwrap();
    assert_eq!(v["verdict"], "fail");
    assert_eq!(v["checks"][2]["id"], "no_mismatch");
    assert_eq!(v["checks"][2]["status"], "fail");
    assert_eq!(v["checks"][2]["sessions_cap"], 50);
    let back: FlipReport = serde_json::from_value(v).unwrap();
    assert_eq!(back.checks.len(), r.checks.len());
}

#[test]
fn the_report_does_not_depend_on_the_order_of_the_evidence() {
    let (_w, org, mut ev, at) = clean(8);
    // Some faults, so the listed sessions and their evidence are compared too.
    let ids = middle(&ev, at, 2);
    serve_on(&mut ev, &ids[0], Runner::Ts);
    ev.events
        .retain(|(e, _)| e.session.as_ref() != Some(&ids[1]) || e.kind == EventKind::Dispatch);
    let want = render::json(&flip::build(&ev, &params(&org)).unwrap());
    ev.events.reverse();
    let n = ev.events.len();
    ev.events.rotate_left(n / 3);
    assert_eq!(
        render::json(&flip::build(&ev, &params(&org)).unwrap()),
        want
    );
}

// ---- The evidence's edges (issue 16): unknown where the evidence does not reach, never fail.

/// The workload's files as logs that begin at `from`: every line stamped before it dropped
/// (a line that carries no event follows the one before it), and the ts worker's completions
/// dropped too when `ts_completions` is false.
fn cut(w: &Workload, from: Timestamp, ts_completions: bool) -> tempfile::TempDir {
    let out = tempfile::tempdir().unwrap();
    let parser = claimcheck::parse::Parser::new(ParseConfig::default());
    for (name, runtime) in [
        ("dispatch.log", None),
        ("vercel-drain.ndjson", None),
        ("go-daemon.log", Some(Runner::Go)),
        ("ts-worker.log", Some(Runner::Ts)),
    ] {
        let ctx = claimcheck::parse::LineContext {
            default_runtime: runtime,
            received_at: None,
        };
        let text = std::fs::read_to_string(w.path(name)).unwrap();
        let mut keep = false;
        let mut kept = String::new();
        for l in text.lines() {
            let mut completion = false;
            if let claimcheck::parse::Parsed::Event(e) = parser.parse_line(l.as_bytes(), &ctx) {
                keep = e.time >= from;
                completion = e.kind == EventKind::Completion;
            }
            if keep && !(completion && !ts_completions && runtime == Some(Runner::Ts)) {
                kept.push_str(l);
                kept.push('\n');
            }
        }
        std::fs::write(out.path().join(name), kept).unwrap();
    }
    out
}

fn evidence_in(dir: &Path, org: &str) -> FlipEvidence {
    let p = |n: &str| dir.join(n).display().to_string();
    let inputs = vec![
        Input::parse(&p("dispatch.log"), Role::Dispatch).unwrap(),
        Input::parse(&p("vercel-drain.ndjson"), Role::Dispatch).unwrap(),
        Input::parse(&format!("go={}", p("go-daemon.log")), Role::Claims).unwrap(),
        Input::parse(&format!("ts={}", p("ts-worker.log")), Role::Claims).unwrap(),
    ];
    flip::logs::read(
        &inputs,
        &ParseConfig::default(),
        org,
        Arc::new(AtomicU64::new(0)),
        &mut || {},
    )
    .unwrap()
}

#[track_caller]
fn assert_statuses(r: &FlipReport, want: &[(&str, Status)]) {
    let got = statuses(r);
    for (id, s) in want {
        assert_eq!(
            got[*id],
            *s,
            "{id}: {} ({:?})\n{}",
            r.check(id).unwrap().summary,
            r.check(id).unwrap().notes,
            r.reason
        );
    }
}

#[test]
fn logs_that_start_at_the_flip_pass_with_unknowns_never_a_fail() {
    let (w, org, _, at) = clean(3);
    let truth = w.flipped().1;
    let pass = Status::Pass;
    let sessions = [
        ("new_runner", pass),
        ("claimed_in_time", pass),
        ("no_mismatch", pass),
        ("no_duplicate", pass),
        ("ingest", pass),
    ];
    // (cut at, the statuses of the checks that need evidence before the flip)
    let cases = [
        // A minute of evidence before the flip: every check can be judged.
        (
            at.saturating_add_ms(-60_000),
            [
                ("in_flight", pass),
                ("daemon", pass),
                ("claim_latency", pass),
            ],
        ),
        // From the flag's change (ts dispatches in the grace, none before), and from the
        // first dispatch to go (no dispatch before the flip at all).
        (
            truth,
            [
                ("in_flight", Status::Unknown),
                ("daemon", Status::Unknown),
                ("claim_latency", Status::Unknown),
            ],
        ),
        (
            at,
            [
                ("in_flight", Status::Unknown),
                ("daemon", Status::Unknown),
                ("claim_latency", Status::Unknown),
            ],
        ),
    ];
    for (from, edge) in cases {
        let dir = cut(&w, from, true);
        let ev = evidence_in(dir.path(), &org);
        for to in [None, Some(Runner::Go)] {
            let mut p = params(&org);
            p.at = Some(at);
            p.to = to;
            let r = flip::build(&ev, &p).unwrap();
            let case = format!("cut at {from}, to {to:?}");
            assert_eq!(r.verdict, Verdict::Pass, "{case}: {}", r.reason);
            assert_eq!((r.from.as_str(), r.to.as_str()), ("ts", "go"), "{case}");
            assert_statuses(&r, &sessions);
            assert_statuses(&r, &edge);
            let d = r.check("daemon").unwrap();
            assert_eq!(d.counts["gaps"], 0, "{case}: {:?}", d.notes);
            if edge[1].1 == Status::Unknown {
                assert!(
                    d.notes.iter().any(|n| n.contains("is not known")),
                    "{:?}",
                    d.notes
                );
                let want = if to.is_some() { "given" } else { "after_flip" };
                if from == at {
                    assert_eq!(r.direction_from, want, "{case}");
                }
            }
        }
        // The real binary, without --to: the same verdict, exit 0.
        if from == at {
            let (code, v) = cli(dir.path(), &org, &["--flip-at", &at.to_rfc3339()]);
            assert_eq!(
                (code, v["verdict"].as_str()),
                (0, Some("pass")),
                "{}",
                v["reason"]
            );
            assert_eq!(v["direction_from"], "after_flip");
        }
    }
}

#[test]
fn an_org_with_no_traffic_is_inconclusive_not_an_error() {
    let w = Workload::new(3);
    let (_, at) = w.flipped();
    let flip_at = at.to_rfc3339();
    for extra in [
        vec!["--flip-at", &flip_at],
        vec!["--flip-at", &flip_at, "--to", "go"],
    ] {
        let (code, v) = cli(w.dir.path(), "org_nobody", &extra);
        assert_eq!(
            (code, v["verdict"].as_str()),
            (3, Some("inconclusive")),
            "{extra:?}: {}",
            v["reason"]
        );
        assert!(
            v["reason"]
                .as_str()
                .unwrap()
                .starts_with("no sessions in the window"),
            "{}",
            v["reason"]
        );
        let statuses: Vec<(&str, &str)> = v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["id"].as_str().unwrap(), c["status"].as_str().unwrap()))
            .collect();
        assert!(!statuses.iter().any(|(_, s)| *s == "fail"), "{statuses:?}");
        for id in [
            "new_runner",
            "claimed_in_time",
            "no_mismatch",
            "no_duplicate",
        ] {
            assert!(statuses.contains(&(id, "unknown")), "{id}: {statuses:?}");
        }
        let daemon = if extra.len() == 2 { "skipped" } else { "pass" };
        assert!(statuses.contains(&("daemon", daemon)), "{statuses:?}");
    }
}

#[test]
fn in_flight_is_bounded_skipped_without_old_completions_and_lists_the_most_recent() {
    let (w, org, ev, at) = clean(3);
    // With the ts worker's completions: every held session finished on its claimer.
    let r = flip::build(&ev, &params(&org)).unwrap();
    let c = r.check("in_flight").unwrap();
    assert_eq!(c.status, Status::Pass, "{}", c.summary);
    let lookback = c.counts["lookback_seconds"];
    assert!((120..3600).contains(&lookback), "{lookback}");
    // Every counted session was claimed within the look-back.
    assert!(c.counts["in_flight"] > 0 && c.counts["in_flight"] == c.counts["finished_on_claimer"]);

    // Three lose their completions: listed (not failing), most recent first.
    let held = in_flight(&ev, at);
    assert!(held.len() >= 3);
    let mut some = ev.clone();
    some.events.retain(|(e, _)| {
        e.kind != EventKind::Completion || e.session.as_ref().is_none_or(|s| !held[..3].contains(s))
    });
    let r = flip::build(&some, &params(&org)).unwrap();
    let c = r.check("in_flight").unwrap();
    assert_eq!(c.status, Status::Pass);
    assert_eq!(c.counts["no_completion"], 3);
    let times: Vec<&str> = c
        .sessions
        .iter()
        .map(|s| s.dispatched_at.as_deref().unwrap())
        .collect();
    let mut newest_first = times.clone();
    newest_first.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, newest_first);

    // The old runtime logs no completions at all: skipped, saying so once, nothing listed.
    let dir = cut(&w, Timestamp(i64::MIN / 2), false);
    let ev = evidence_in(dir.path(), &org);
    let r = flip::build(&ev, &params(&org)).unwrap();
    assert_eq!(r.verdict, Verdict::Pass, "{}", r.reason);
    let c = r.check("in_flight").unwrap();
    assert_eq!(c.status, Status::Skipped, "{}", c.summary);
    assert!(
        c.summary.starts_with("ts logs no completions"),
        "{}",
        c.summary
    );
    assert!(c.sessions.is_empty());
    assert_statuses(
        &r,
        &[
            ("new_runner", Status::Pass),
            ("claimed_in_time", Status::Pass),
            ("daemon", Status::Pass),
            ("claim_latency", Status::Pass),
        ],
    );
}

#[test]
fn latency_is_compared_like_with_like_and_cross_runtime_is_labelled() {
    let (_w, org, mut ev, at) = clean(8);
    let r = flip::build(&ev, &params(&org)).unwrap();
    let l = &r.claim_latency_seconds;
    assert!(l.cross_runtime);
    assert_eq!(
        (l.before_runtime.as_deref(), l.after_runtime.as_deref()),
        (Some("ts"), Some("go"))
    );
    let c = r.check("claim_latency").unwrap();
    assert!(
        c.summary
            .starts_with("cross-runtime: ts before vs go after"),
        "{}",
        c.summary
    );
    let md = render::markdown(&r);
    assert!(
        md.contains("| before (ts) |") && md.contains("| after (go) |"),
        "{md}"
    );
    assert!(md.contains("p95 (s)"));

    // The org already ran part of its sessions on go before the flip: go is compared with go.
    let baseline = dispatched(&ev, at.saturating_add_ms(-WINDOW_MS), at);
    for id in baseline.iter().step_by(3) {
        edit(&mut ev, id, EventKind::Dispatch, |e| e.runner = Runner::Go);
        serve_on(&mut ev, id, Runner::Go);
    }
    let mut p = params(&org);
    p.at = Some(at);
    p.to = Some(Runner::Go);
    let r = flip::build(&ev, &p).unwrap();
    let l = &r.claim_latency_seconds;
    assert!(!l.cross_runtime);
    assert_eq!(
        (l.before_runtime.as_deref(), l.after_runtime.as_deref()),
        (Some("go"), Some("go"))
    );
    let go = l.by_runtime.iter().find(|b| b.runtime == "go").unwrap();
    assert_eq!(l.before.count, go.before.count);
    assert!(go.before.count > 0);
    assert!(
        r.check("claim_latency")
            .unwrap()
            .summary
            .starts_with("go before vs go after")
    );
}
