//! One test per rule of PRODUCT.md §2, and property tests over interleavings.

use proptest::prelude::*;

use super::*;

const T0: i64 = 1_795_428_000_000;
const SEC: i64 = 1000;

fn ev(kind: EventKind, sid: &str, runner: Runner, at_s: f64, worker: Option<&str>) -> Event {
    Event {
        kind,
        session: SessionId::new(sid),
        runner,
        time: Timestamp(T0 + (at_s * 1000.0) as i64),
        org: None,
        worker: worker.map(Into::into),
        version: None,
        detail: None,
    }
}

fn dispatch(sid: &str, runner: Runner, at: f64) -> Event {
    ev(EventKind::Dispatch, sid, runner, at, None)
}
fn claim(sid: &str, runtime: Runner, at: f64, worker: &str) -> Event {
    ev(EventKind::Claim, sid, runtime, at, Some(worker))
}
fn release(sid: &str, runtime: Runner, at: f64, worker: &str) -> Event {
    ev(EventKind::Release, sid, runtime, at, Some(worker))
}
fn heartbeat(runtime: Runner, at: f64) -> Event {
    let mut e = ev(EventKind::Heartbeat, "", runtime, at, Some("w"));
    e.session = None;
    e
}

/// Feeds `events` and judges `sid` against the final watermark.
fn judge(events: &[Event], sid: &str) -> Judgement {
    let mut c = Correlator::new(CorrelateConfig::default());
    for (i, e) in events.iter().enumerate() {
        c.on_event(
            e.clone(),
            Origin {
                input: 0,
                line: i as u32,
            },
        );
    }
    let id = SessionId::new(sid).unwrap();
    c.session(&id).unwrap().judge(c.timeouts(), c.watermark())
}

use Runner::{Go, Ts};

#[test]
fn matched_at_or_before_the_deadline() {
    let j = judge(&[dispatch("s", Go, 0.0), claim("s", Go, 120.0, "g1")], "s");
    assert_eq!(j.outcome, Some(Outcome::Matched));
    assert_eq!(j.latency_ms, Some(120 * SEC));
}

#[test]
fn late_after_the_deadline() {
    let j = judge(
        &[dispatch("s", Go, 0.0), claim("s", Go, 120.001, "g1")],
        "s",
    );
    assert_eq!(j.outcome, Some(Outcome::Late));
    assert_eq!(j.latency_ms, Some(120 * SEC + 1));
}

#[test]
fn mismatched_when_the_first_claim_is_another_runtime_at_any_time() {
    let j = judge(
        &[
            dispatch("s", Go, 0.0),
            claim("s", Ts, 1.0, "t1"),
            claim("s", Go, 2.0, "g1"),
        ],
        "s",
    );
    assert_eq!(j.outcome, Some(Outcome::Mismatched));
    assert!(j.duplicate && j.duplicate_cross_runtime);
    let j = judge(&[dispatch("s", Ts, 0.0), claim("s", Go, 900.0, "g1")], "s");
    assert_eq!(j.outcome, Some(Outcome::Mismatched));
}

#[test]
fn other_runner_never_matches() {
    let j = judge(
        &[
            dispatch("s", Runner::Other, 0.0),
            claim("s", Runner::Other, 1.0, "x"),
        ],
        "s",
    );
    assert_eq!(j.outcome, Some(Outcome::Mismatched));
}

#[test]
fn unclaimed_once_the_evidence_reaches_the_deadline_else_pending() {
    let j = judge(&[dispatch("s", Go, 0.0), heartbeat(Go, 120.0)], "s");
    assert_eq!(j.outcome, Some(Outcome::Unclaimed));
    let j = judge(&[dispatch("s", Go, 0.0), heartbeat(Go, 119.999)], "s");
    assert_eq!(j.outcome, Some(Outcome::Pending));
}

#[test]
fn claim_before_dispatch_is_skew_clamped_and_matched() {
    let j = judge(&[claim("s", Go, -1.5, "g1"), dispatch("s", Go, 0.0)], "s");
    assert_eq!(j.outcome, Some(Outcome::Matched));
    assert_eq!(j.latency_ms, Some(0));
    assert!(j.skew_clamped);
}

#[test]
fn duplicate_is_two_claims_without_a_release_between() {
    let j = judge(
        &[
            dispatch("s", Go, 0.0),
            claim("s", Go, 1.0, "g1"),
            claim("s", Go, 2.0, "g2"),
        ],
        "s",
    );
    assert!(j.duplicate && !j.duplicate_cross_runtime);
    assert_eq!((j.claims, j.reclaims), (2, 0));
}

#[test]
fn reclaim_after_release_is_not_a_duplicate() {
    let events = [
        dispatch("s", Go, 0.0),
        claim("s", Go, 1.0, "g1"),
        release("s", Go, 2.0, "g1"),
        claim("s", Go, 5.0, "g2"),
        release("s", Go, 6.0, "g2"),
        claim("s", Go, 9.0, "g3"),
    ];
    let j = judge(&events, "s");
    assert!(!j.duplicate);
    assert_eq!((j.claims, j.reclaims), (3, 2));
    assert_eq!(j.outcome, Some(Outcome::Matched));
    assert_eq!(j.latency_ms, Some(SEC));
}

#[test]
fn exact_redeliveries_are_deduplicated() {
    let mut c = Correlator::new(CorrelateConfig::default());
    let o = Origin::default();
    assert!(c.on_event(dispatch("s", Go, 0.0), o));
    assert!(!c.on_event(dispatch("s", Go, 0.0), o));
    assert!(c.on_event(claim("s", Go, 1.0, "g1"), o));
    assert!(!c.on_event(claim("s", Go, 1.0, "g1"), o));
    // same worker, other time: a distinct event, hence a duplicate claim
    assert!(c.on_event(claim("s", Go, 1.5, "g1"), o));
    assert_eq!(c.stats().duplicates, 2);
    assert_eq!(c.stats().events[EventKind::Claim as usize], 2);
    let j = c
        .session(&SessionId::new("s").unwrap())
        .unwrap()
        .judge(c.timeouts(), c.watermark());
    assert!(j.duplicate);
}

#[test]
fn orphan_claims_have_no_outcome() {
    let j = judge(&[claim("s", Go, 1.0, "g1"), claim("s", Go, 2.0, "g2")], "s");
    assert_eq!(j.outcome, None);
    assert_eq!(j.claims, 2);
}

#[test]
fn timeout_per_runner() {
    let mut cfg = CorrelateConfig::default();
    cfg.timeouts.apply("go=10s").unwrap();
    let mut c = Correlator::new(cfg);
    c.on_event(dispatch("a", Go, 0.0), Origin::default());
    c.on_event(claim("a", Go, 11.0, "g"), Origin::default());
    c.on_event(dispatch("b", Ts, 0.0), Origin::default());
    c.on_event(claim("b", Ts, 11.0, "t"), Origin::default());
    let get = |s: &str| {
        c.session(&SessionId::new(s).unwrap())
            .unwrap()
            .judge(c.timeouts(), c.watermark())
    };
    assert_eq!(get("a").outcome, Some(Outcome::Late));
    assert_eq!(get("b").outcome, Some(Outcome::Matched));
}

#[test]
fn eviction_is_bounded_and_counted() {
    let cfg = CorrelateConfig {
        max_sessions: 100,
        ..Default::default()
    };
    let mut c = Correlator::new(cfg);
    for i in 0..1000 {
        c.on_event(dispatch(&format!("s{i}"), Go, i as f64), Origin::default());
    }
    assert!(c.sessions().count() <= 100);
    let evicted = c.take_evicted();
    assert_eq!(evicted.len() as u64, c.stats().evicted);
    assert_eq!(evicted.len() + c.sessions().count(), 1000);
    // the oldest go first
    assert!(evicted.iter().any(|e| e.id.as_str() == "s0"));
    assert!(c.session(&SessionId::new("s999").unwrap()).is_some());
}

#[test]
fn daemons_from_heartbeats_and_claims() {
    let mut c = Correlator::new(CorrelateConfig::default());
    let mut hb = heartbeat(Go, 10.0);
    hb.version = Some("0.5.1".into());
    c.on_event(hb, Origin::default());
    c.on_event(claim("s", Go, 5.0, "w"), Origin::default());
    let (r, w, d) = c.daemons().next().unwrap();
    assert_eq!((r, w), (Go, "w"));
    assert_eq!(d.version.as_deref(), Some("0.5.1"));
    assert_eq!((d.heartbeats, d.claims), (1, 1));
    assert_eq!(d.last_heartbeat, Some(Timestamp(T0 + 10 * SEC)));
}

// ---- interleavings ----------------------------------------------------------------------

fn arb_event() -> impl Strategy<Value = Event> {
    let kind = prop_oneof![
        3 => Just(EventKind::Dispatch),
        4 => Just(EventKind::Claim),
        2 => Just(EventKind::Release),
        1 => Just(EventKind::Completion),
        1 => Just(EventKind::Heartbeat),
    ];
    let runner = prop_oneof![Just(Go), Just(Ts), Just(Runner::Other)];
    (kind, 0..6u8, runner, 0..300i64, 0..3u8).prop_map(|(kind, s, runner, at, w)| {
        let mut e = ev(
            kind,
            &format!("s{s}"),
            runner,
            at as f64,
            Some(&format!("w{w}")),
        );
        if kind == EventKind::Heartbeat {
            e.session = None;
        }
        e
    })
}

/// Splits events into "sources" and merges them back in a random order that keeps each
/// source's own order, as concurrent readers would.
fn interleave(sources: &[Vec<Event>], picks: &[usize]) -> Vec<Event> {
    let mut pos = vec![0; sources.len()];
    let mut out = Vec::new();
    let mut p = picks.iter().cycle();
    while out.len() < sources.iter().map(Vec::len).sum() {
        let live: Vec<usize> = (0..sources.len())
            .filter(|&i| pos[i] < sources[i].len())
            .collect();
        let i = live[p.next().copied().unwrap_or(0) % live.len()];
        out.push(sources[i][pos[i]].clone());
        pos[i] += 1;
    }
    out
}

/// The judgement without interned ids and origins, which depend on arrival order by design.
type Seen = (
    Option<Outcome>,
    Option<i64>,
    bool,
    bool,
    bool,
    u32,
    u32,
    u32,
    Option<(Timestamp, Runner)>,
    Option<(Timestamp, Runner)>,
);

fn project(j: Judgement) -> Seen {
    (
        j.outcome,
        j.latency_ms,
        j.skew_clamped,
        j.duplicate,
        j.duplicate_cross_runtime,
        j.reclaims,
        j.claims,
        j.redispatches,
        j.dispatch.map(|d| (d.time, d.runner)),
        j.first_claim.map(|c| (c.time, c.runner)),
    )
}

fn outcomes(events: &[Event]) -> (Vec<(String, Seen)>, CorrelateStats) {
    let mut c = Correlator::new(CorrelateConfig::default());
    for e in events {
        // origins are left equal: they are evidence, not part of the judgement
        c.on_event(e.clone(), Origin::default());
    }
    let mut v: Vec<_> = c
        .sessions()
        .map(|(k, s)| (k.to_string(), project(s.judge(c.timeouts(), c.watermark()))))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    (v, c.stats().clone())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Any interleaving of the same per-source event sequences gives the same outcomes.
    #[test]
    fn any_interleaving_gives_the_same_outcomes(
        sources in proptest::collection::vec(proptest::collection::vec(arb_event(), 0..20), 1..4),
        picks in proptest::collection::vec(0usize..8, 1..50),
    ) {
        let in_order: Vec<Event> = sources.iter().flatten().cloned().collect();
        let mixed = interleave(&sources, &picks);
        prop_assert_eq!(outcomes(&in_order), outcomes(&mixed));
    }

    /// Even a full shuffle (sources themselves out of order) does not change them: the rules
    /// read event times, never arrival order.
    #[test]
    fn any_permutation_gives_the_same_outcomes(
        events in proptest::collection::vec(arb_event(), 0..40),
        seed in any::<u64>(),
    ) {
        use rand::{SeedableRng, seq::SliceRandom};
        let mut shuffled = events.clone();
        shuffled.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
        prop_assert_eq!(outcomes(&events), outcomes(&shuffled));
    }

    /// Re-delivering any subset of events changes nothing but the duplicate count.
    #[test]
    fn redeliveries_change_nothing(
        events in proptest::collection::vec(arb_event(), 0..30),
        again in proptest::collection::vec(any::<bool>(), 30),
    ) {
        let mut doubled = events.clone();
        doubled.extend(events.iter().zip(&again).filter(|(_, a)| **a).map(|(e, _)| e.clone()));
        let (a, sa) = outcomes(&events);
        let (b, sb) = outcomes(&doubled);
        prop_assert_eq!(a, b);
        prop_assert_eq!(sa.events, sb.events);
    }
}
