//! Where the flip is located, and what evidence is kept, on small hand-made event sets.

use super::*;
use crate::event::Name;

const MIN: i64 = 60_000;

fn at(minutes: f64) -> Timestamp {
    Timestamp(1_795_420_800_000 + (minutes * MIN as f64) as i64)
}

fn ev(kind: EventKind, id: &str, runner: Runner, t: Timestamp) -> Event {
    Event {
        kind,
        session: SessionId::new(id),
        runner,
        time: t,
        org: (kind == EventKind::Dispatch).then(|| Name::new("org_a")),
        worker: None,
        version: None,
        detail: None,
    }
}

/// One dispatch per minute with the given runners (`g`/`t`), each claimed 1 s later by its
/// runner, and a heartbeat of both runtimes every 30 s, all from one source.
fn evidence(runners: &str) -> FlipEvidence {
    let mut b = EvidenceBuilder::new("org_a", vec![SourceEvidence::new("all.log", "dispatch")]);
    let mut line = 0;
    let mut add = |b: &mut EvidenceBuilder, e: Event| {
        line += 1;
        b.event(&e, Origin { input: 0, line });
    };
    for (i, c) in runners.chars().enumerate() {
        let r = if c == 'g' { Runner::Go } else { Runner::Ts };
        let (id, t) = (format!("s{i}"), at(i as f64));
        add(&mut b, ev(EventKind::Dispatch, &id, r, t));
        add(
            &mut b,
            ev(EventKind::Claim, &id, r, t.saturating_add_ms(1000)),
        );
    }
    for k in 0..2 * (runners.len() as i64 + 3) {
        for r in [Runner::Go, Runner::Ts] {
            let mut h = ev(EventKind::Heartbeat, "", r, at(k as f64 / 2.0));
            h.session = None;
            h.worker = Some(Name::new(if r == Runner::Go { "g1" } else { "t1" }));
            h.version = Some(Name::new(if r == Runner::Go { "0.5.1" } else { "2.0.0" }));
            add(&mut b, h);
        }
    }
    b.finish()
}

fn params(window_min: i64) -> FlipParams {
    let mut p = FlipParams::new("org_a");
    p.window_ms = window_min * MIN;
    p.grace_ms = 1000;
    p
}

#[test]
fn the_flip_is_the_change_that_best_splits_the_dispatches() {
    // (runners, to, expected flip minute, new_runner status)
    let cases = [
        ("tttttgggggg", None, 5.0, Status::Pass),
        // A stray ts dispatch after the flip is drift, not the flip.
        ("tttttggtggggg", None, 5.0, Status::Fail),
        // A rollback after a ts stray during the go regime: the rollback, not the stray.
        ("ggggtggggtttttt", None, 9.0, Status::Pass),
        // Asked about the earlier change to go.
        ("tttgggggttttt", Some(Runner::Go), 3.0, Status::Pass),
    ];
    for (runners, to, minute, status) in cases {
        let mut p = params(4);
        p.to = to;
        let r = build(&evidence(runners), &p).unwrap();
        assert_eq!(r.flip_at, at(minute).to_rfc3339(), "{runners}");
        assert_eq!(r.flip_located, "first_dispatch_to_new_runner");
        assert_eq!(r.check("new_runner").unwrap().status, status, "{runners}");
    }
}

#[test]
fn a_given_flip_time_takes_its_direction_from_the_baseline() {
    let mut p = params(3);
    p.at = Some(at(4.5));
    let r = build(&evidence("tttttgggg"), &p).unwrap();
    assert_eq!((r.from.as_str(), r.to.as_str()), ("ts", "go"));
    assert_eq!(r.flip_located, "given");
    // The dispatch at minute 5 is after the grace: on go, as it should be.
    assert_eq!(r.check("new_runner").unwrap().status, Status::Pass);
}

#[test]
fn no_change_or_no_dispatch_is_an_error_not_a_report() {
    assert_eq!(
        build(&evidence("tttt"), &{
            let mut p = params(2);
            p.to = Some(Runner::Go);
            p
        }),
        Err(FlipError::NoFlip {
            org: "org_a".into(),
            to: "go"
        })
    );
    assert_eq!(
        build(&evidence(""), &params(2)),
        Err(FlipError::NoDispatches("org_a".into()))
    );
    // Split evenly after a given flip with no baseline: which way is not told.
    let mut p = params(4);
    p.at = Some(at(-0.5));
    assert_eq!(
        build(&evidence("gt"), &p),
        Err(FlipError::NoDirection("org_a".into()))
    );
}

#[test]
fn no_dispatch_at_all_at_a_given_time_is_inconclusive_not_an_error() {
    let mut p = params(2);
    p.at = Some(at(1.0));
    let r = build(&evidence(""), &p).unwrap();
    assert_eq!(r.verdict, Verdict::Inconclusive);
    assert!(
        r.reason.starts_with("no sessions in the window"),
        "{}",
        r.reason
    );
    assert_eq!((r.kind, r.to.as_str()), (FlipKind::Unknown, "unknown"));
    assert_eq!(r.direction_from, "unknown");
    assert_eq!(r.check("daemon").unwrap().status, Status::Skipped);
    assert!(!r.checks.iter().any(|c| c.status == Status::Fail));
}

#[test]
fn with_no_baseline_the_direction_comes_from_the_dispatches_after_the_grace() {
    // Evidence from minute 0; the flip given at minute 0 (logs start at the flip).
    for (runners, to) in [("gggg", "go"), ("tttt", "ts"), ("tggg", "go")] {
        let mut p = params(3);
        p.at = Some(at(0.0));
        let r = build(&evidence(runners), &p).unwrap();
        assert_eq!(r.to, to, "{runners}");
        assert_eq!(r.direction_from, "after_flip", "{runners}");
    }
    // With a baseline, from the baseline.
    let mut p = params(3);
    p.at = Some(at(2.5));
    let r = build(&evidence("tttggg"), &p).unwrap();
    assert_eq!(
        (r.to.as_str(), r.direction_from.as_str()),
        ("go", "baseline")
    );
    // Given wins.
    p.to = Some(Runner::Ts);
    let r = build(&evidence("tttggg"), &p).unwrap();
    assert_eq!((r.to.as_str(), r.direction_from.as_str()), ("ts", "given"));
}

/// The evidence with every event before `from` dropped, and its source's counts made again
/// (as if the logs began there).
fn cut(ev: &FlipEvidence, from: Timestamp) -> FlipEvidence {
    let mut src = SourceEvidence::new("all.log", "claims");
    let events: Vec<(Event, Origin)> = ev
        .events
        .iter()
        .filter(|(e, _)| e.time >= from)
        .cloned()
        .collect();
    for (e, _) in &events {
        src.saw(e.time);
    }
    FlipEvidence {
        events,
        sources: vec![src],
    }
}

#[test]
fn a_heartbeat_gap_is_between_observations_never_before_the_first() {
    // Heartbeats every 30 s from minute 0; go from minute 5.
    let full = evidence("tttttgggggg");
    let mut p = params(4);
    p.at = Some(at(5.0));
    p.to = Some(Runner::Go);
    assert_eq!(
        build(&full, &p).unwrap().check("daemon").unwrap().status,
        Status::Pass
    );

    // Logs starting 10 s after the flip: the first 10 s are not reached — unknown, not fail.
    let late = cut(&full, at(5.0).saturating_add_ms(10_000));
    let r = build(&late, &p).unwrap();
    let d = r.check("daemon").unwrap();
    assert_eq!(d.status, Status::Unknown, "{} {:?}", d.summary, d.notes);
    assert_eq!(d.counts["gaps"], 0);
    assert!(
        d.notes.iter().any(|n| n.contains("is not known")),
        "{:?}",
        d.notes
    );

    // A real gap (go heartbeats stop for 3 min inside the window) still fails, even in
    // evidence that starts at the flip.
    let mut gap = cut(&full, at(5.0));
    gap.events.retain(|(e, _)| {
        !(e.kind == EventKind::Heartbeat
            && e.runner == Runner::Go
            && e.time > at(5.5)
            && e.time < at(8.5))
    });
    let d = build(&gap, &p).unwrap().check("daemon").unwrap().clone();
    assert_eq!(d.status, Status::Fail, "{} {:?}", d.summary, d.notes);
    assert_eq!(d.counts["gaps"], 1);

    // Heartbeats that stop before the window ends: a gap from the last one to the end.
    let mut stop = full.clone();
    stop.events.retain(|(e, _)| {
        !(e.kind == EventKind::Heartbeat && e.runner == Runner::Go && e.time > at(6.0))
    });
    let d = build(&stop, &p).unwrap().check("daemon").unwrap().clone();
    assert_eq!(d.status, Status::Fail, "{} {:?}", d.summary, d.notes);
}

#[test]
fn worker_events_join_by_session_whichever_comes_first() {
    let mut b = EvidenceBuilder::new("org_a", vec![SourceEvidence::new("x", "claims")]);
    let o = Origin::default();
    let claim = |id| ev(EventKind::Claim, id, Runner::Go, at(1.0));
    // Ours: claim first, dispatch later. Theirs: claim before and after their dispatch.
    b.event(&claim("ours"), o);
    b.event(&claim("theirs"), o);
    b.event(&ev(EventKind::Dispatch, "ours", Runner::Go, at(0.5)), o);
    let mut foreign = ev(EventKind::Dispatch, "theirs", Runner::Go, at(0.5));
    foreign.org = Some(Name::new("org_b"));
    b.event(&foreign, o);
    b.event(&claim("theirs"), o);
    let e = b.finish();
    let kept: Vec<(EventKind, &str)> = e
        .events
        .iter()
        .map(|(e, _)| (e.kind, e.session.as_ref().map_or("", SessionId::as_str)))
        .collect();
    assert_eq!(
        kept,
        [(EventKind::Claim, "ours"), (EventKind::Dispatch, "ours")]
    );
    // Every event counts for its source, kept or not.
    assert_eq!(e.sources[0].events, 5);
    assert_eq!(e.watermark(), Some(at(1.0)));
}

#[test]
fn versions_compare_like_the_runbook() {
    let min = (0, 5, 0);
    for (v, ok) in [
        ("0.5.0", true),
        ("0.5.2", true),
        ("v0.5.0", true),
        ("1.0", true),
        ("0.4.9", false),
        ("v0.4.9", false),
        ("0.5.0-rc.1", false),
        ("0.5.0+build7", true),
        ("0.5.1-rc.1", true),
        ("", false),
        ("dev", false),
        ("0.x.1", false),
    ] {
        assert_eq!(version_at_least(v, min), ok, "{v}");
    }
}
