//! Live correlation: every change a sink relies on, with the clock passed in.

use super::*;

const T0: i64 = 1_795_428_000_000;
const SEC: i64 = 1000;
/// The sidecar's clock in these tests runs a day after the events were stamped: deadlines
/// must follow the receive time, not the event time.
const NOW: Timestamp = Timestamp(T0 + 86_400 * SEC);

fn at(s: i64) -> Timestamp {
    Timestamp(NOW.0 + s * SEC)
}

fn ev(kind: EventKind, sid: &str, runner: Runner, event_s: i64, worker: &str) -> Event {
    Event {
        kind,
        session: SessionId::new(sid),
        runner,
        time: Timestamp(T0 + event_s * SEC),
        org: (kind == EventKind::Dispatch).then(|| "org_a".into()),
        worker: Some(worker.into()),
        version: None,
        detail: None,
    }
}

fn live() -> Live {
    Live::new(LiveConfig::default())
}

fn feed(l: &mut Live, e: Event, now: Timestamp) -> Vec<Change> {
    l.on_event(e, Origin::default(), now)
        .expect("not a re-delivery")
}

fn sid(s: &str) -> SessionId {
    SessionId::new(s).unwrap()
}

/// A heartbeat stamped `event_s` from the default source: its watermark moves there, so what
/// it delivered before that time settles (a source may still deliver more stamped at its
/// watermark, so evidence settles only once the watermark has moved past it).
fn pass(l: &mut Live, event_s: i64, now: Timestamp) -> Vec<Change> {
    let beat = Event {
        kind: EventKind::Heartbeat,
        session: None,
        ..ev(Claim, "x", Go, event_s, "hb")
    };
    l.on_event(beat, Origin::default(), now).unwrap_or_default()
}

use EventKind::{Claim, Dispatch, Release};
use Runner::{Go, Ts};

#[test]
fn matched_claim_is_judged_and_ends_pending() {
    let mut l = live();
    let c = feed(&mut l, ev(Dispatch, "s", Go, 0, "-"), at(0));
    assert_eq!(
        c,
        vec![
            Change::Dispatched {
                first_seen: at(0),
                session: sid("s"),
                runner: Go,
                org: Some("org_a".into()),
                at: Timestamp(T0),
            },
            Change::PendingStarted { runner: Go }
        ]
    );
    let c = feed(&mut l, ev(Claim, "s", Go, 3, "g1"), at(1));
    assert_eq!(c, vec![Change::Claimed { runtime: Go }]);
    // Judged once the source has moved past the claim's time: until then another claim
    // stamped the same millisecond could still come from it.
    let c = pass(&mut l, 4, at(1));
    assert_eq!(
        c,
        vec![
            Change::PendingEnded { runner: Go },
            Change::Judged {
                first_seen: at(0),
                org: Some("org_a".into()),
                session: sid("s"),
                runner: Go,
                dispatched_at: Timestamp(T0),
                outcome: Outcome::Matched,
                latency_ms: Some(3 * SEC),
                skew_clamped: false,
                refile: false,
            },
        ]
    );
    // the deadline passes without effect
    assert!(l.on_tick(at(500)).is_empty());
}

#[test]
fn overdue_on_the_sidecar_clock_then_resolved_by_a_late_claim() {
    let mut l = live();
    feed(&mut l, ev(Dispatch, "s", Go, 0, "-"), at(0));
    // a day-old event time does not make it overdue at once: T runs from receipt
    assert!(l.on_tick(at(119)).is_empty());
    assert_eq!(l.next_due(), Some(at(120)));
    assert_eq!(
        l.on_tick(at(120)),
        vec![
            Change::PendingEnded { runner: Go },
            Change::Overdue {
                first_seen: at(0),
                org: Some("org_a".into()),
                session: sid("s"),
                runner: Go,
                dispatched_at: Timestamp(T0),
                refile: false,
            }
        ]
    );
    assert!(l.on_tick(at(121)).is_empty(), "overdue is reported once");
    let c = feed(&mut l, ev(Claim, "s", Go, 200, "g1"), at(200));
    assert_eq!(c, vec![Change::Claimed { runtime: Go }], "not settled yet");
    let c = pass(&mut l, 201, at(200));
    assert!(
        c.contains(&Change::OverdueResolved {
            org: Some("org_a".into()),
            session: sid("s"),
            runner: Go
        }),
        "{c:?}"
    );
    assert!(
        c.iter().any(|x| matches!(
            x,
            Change::Judged {
                outcome: Outcome::Late,
                ..
            }
        )),
        "{c:?}"
    );
}

#[test]
fn claim_before_dispatch_is_judged_when_the_dispatch_arrives() {
    let mut l = live();
    assert_eq!(
        feed(&mut l, ev(Claim, "s", Ts, 1, "t1"), at(0)),
        vec![Change::Claimed { runtime: Ts }]
    );
    let c = feed(&mut l, ev(Dispatch, "s", Go, 0, "-"), at(2));
    assert_eq!(
        c,
        vec![Change::Dispatched {
            first_seen: at(0),
            session: sid("s"),
            runner: Go,
            org: Some("org_a".into()),
            at: Timestamp(T0),
        }]
    );
    // The claim (stamped 1 s, the source's watermark) settles once the source moves past it.
    let c = pass(&mut l, 2, at(2));
    assert_eq!(
        c,
        vec![Change::Judged {
            first_seen: at(0),
            org: Some("org_a".into()),
            session: sid("s"),
            runner: Go,
            dispatched_at: Timestamp(T0),
            outcome: Outcome::Mismatched,
            latency_ms: None,
            skew_clamped: false,
            refile: false,
        },]
    );
    // dispatched within the grace: not an orphan
    assert!(
        l.on_tick(at(3600 - 1))
            .iter()
            .all(|c| !matches!(c, Change::Orphan { .. }))
    );
}

#[test]
fn duplicates_once_and_reclaims_after_release() {
    let mut l = live();
    feed(&mut l, ev(Dispatch, "s", Go, 0, "-"), at(0));
    feed(&mut l, ev(Claim, "s", Go, 1, "g1"), at(1));
    feed(&mut l, ev(Release, "s", Go, 2, "g1"), at(2));
    // Each claim settles when the next event moves the source past its time.
    let c = feed(&mut l, ev(Claim, "s", Go, 3, "g2"), at(3));
    assert_eq!(c, vec![Change::Claimed { runtime: Go }]);
    let c = feed(&mut l, ev(Claim, "s", Ts, 4, "t1"), at(4));
    assert_eq!(
        c,
        vec![
            Change::Claimed { runtime: Ts },
            Change::Reclaimed {
                first_seen: at(0),
                session: sid("s"),
                runtime: Go,
                total: 1
            }
        ]
    );
    let c = feed(&mut l, ev(Claim, "s", Go, 5, "g3"), at(5));
    assert_eq!(
        c,
        vec![
            Change::Claimed { runtime: Go },
            Change::Duplicate {
                first_seen: at(0),
                org: Some("org_a".into()),
                session: sid("s"),
                runtime: Ts,
                cross_runtime: true
            }
        ]
    );
    let c = pass(&mut l, 6, at(5));
    assert_eq!(c, vec![], "a duplicate is reported once per session");
}

fn orphans(changes: &[Change]) -> Vec<(Runner, u32)> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::Orphan { runtime, claim, .. } => Some((*runtime, *claim)),
            _ => None,
        })
        .collect()
}

#[test]
fn orphans_once_the_watermark_passes_the_grace_then_at_once() {
    // Two sources: the claims come on 0, the dispatch log is 1. Each keeps delivering (a
    // heartbeat a second), so neither goes idle; the sidecar's clock runs far past the grace.
    let mut l = live();
    l.source_seen(1, at(0), false);
    let on = |input| Origin { input, line: 0 };
    l.on_event(ev(Claim, "o", Go, 0, "g1"), on(0), at(0));
    l.on_event(ev(Claim, "o", Go, 1, "g2"), on(0), at(1));
    // One worker per source, so the two sources' heartbeats are distinct events.
    let beat = |s, input: u16| Event {
        kind: EventKind::Heartbeat,
        session: None,
        ..ev(Claim, "x", Go, s, &format!("w{input}"))
    };
    // The claims' source is past claim + grace; the dispatch log only at 100 s: it may still
    // hold the dispatch, whatever the sidecar's clock says.
    let mut seen = Vec::new();
    for s in 2..=300 {
        seen.extend(l.on_event(beat(s, 0), on(0), at(s)).unwrap_or_default());
        if s <= 100 {
            seen.extend(l.on_event(beat(s, 1), on(1), at(s)).unwrap_or_default());
        } else {
            l.source_seen(1, at(s), true);
        }
        seen.extend(l.on_tick(at(s)));
    }
    assert_eq!(orphans(&seen), vec![], "the dispatch log is behind");
    // The dispatch log delivers past the first claim's time + grace: settled, orphans.
    let c = l.on_event(beat(299, 1), on(1), at(301)).unwrap_or_default();
    assert_eq!(orphans(&c), vec![], "one second short of the grace");
    let c = l.on_event(beat(300, 1), on(1), at(302)).unwrap_or_default();
    assert_eq!(
        orphans(&c),
        vec![],
        "at the grace: it may still deliver that millisecond"
    );
    let c = l.on_event(beat(301, 0), on(0), at(302)).unwrap_or_default();
    assert_eq!(
        orphans(&c),
        vec![],
        "the dispatch log has not moved past it"
    );
    let c = l.on_event(beat(301, 1), on(1), at(302)).unwrap_or_default();
    assert_eq!(orphans(&c), vec![(Go, 1), (Go, 2)]);
    assert!(!c.contains(&Change::JudgedBeforeSettled), "{c:?}");
    // Then each further claim is an orphan as it arrives.
    let c = feed(&mut l, ev(Claim, "o", Ts, 2, "t1"), at(303));
    assert_eq!(orphans(&c), vec![(Ts, 3)], "{c:?}");
}

#[test]
fn a_claim_read_before_its_slower_dispatch_source_is_no_orphan() {
    // The dispatch log is catching up (a backlog) far behind the claims: however long the
    // sidecar waits below grace + max hold, the claim waits for it.
    let mut l = live();
    l.source_seen(1, at(0), true);
    let on = |input| Origin { input, line: 0 };
    l.on_event(ev(Claim, "s", Go, 0, "g1"), on(0), at(0));
    l.on_event(ev(Claim, "z", Go, 10, "g1"), on(0), at(0));
    l.on_event(ev(Claim, "s", Go, 3_600, "g1"), on(0), at(0));
    let c = l.on_tick(at(300 + 60 - 1));
    assert_eq!(orphans(&c), vec![], "{c:?}");
    let c = l.on_event(ev(Dispatch, "s", Go, 0, "-"), on(1), at(300 + 60 - 1));
    assert_eq!(
        orphans(&c.unwrap_or_default()),
        vec![],
        "dispatched: no orphan"
    );
    // "z" is never dispatched: the maximum hold on top of the grace ends the wait, counted.
    let c = l.on_tick(at(300 + 60));
    assert_eq!(orphans(&c), vec![(Go, 1)], "{c:?}");
    assert_eq!(
        c.iter()
            .filter(|c| **c == Change::JudgedBeforeSettled)
            .count(),
        1,
        "{c:?}"
    );
    assert_eq!(l.next_due().map(|t| t > at(360)), Some(true));
}

#[test]
fn redeliveries_change_nothing() {
    let mut l = live();
    feed(&mut l, ev(Dispatch, "s", Go, 0, "-"), at(0));
    assert_eq!(
        l.on_event(ev(Dispatch, "s", Go, 0, "-"), Origin::default(), at(1)),
        None
    );
    feed(&mut l, ev(Claim, "s", Go, 1, "g1"), at(1));
    assert_eq!(
        l.on_event(ev(Claim, "s", Go, 1, "g1"), Origin::default(), at(2)),
        None
    );
}

#[test]
fn retention_forgets_and_releases_gauges() {
    let mut l = live();
    feed(&mut l, ev(Dispatch, "s", Go, 0, "-"), at(0));
    l.on_tick(at(120));
    let c = l.on_tick(at(3600));
    assert_eq!(
        c,
        vec![
            Change::Retired(Counted {
                dispatched: Some(Go),
                ..Counted::default()
            }),
            Change::OverdueForgotten {
                session: sid("s"),
                runner: Go
            },
            Change::Forgotten { session: sid("s") }
        ]
    );
    assert!(l.core().session(&sid("s")).is_none());
    assert_eq!(l.next_due(), None);
}

#[test]
fn a_session_evicted_as_it_is_made_is_dropped_unjudged_and_nothing_of_it_stays_scheduled() {
    let mut l = Live::new(LiveConfig {
        correlate: CorrelateConfig {
            max_sessions: 2,
            ..CorrelateConfig::default()
        },
        ..LiveConfig::default()
    });
    feed(&mut l, ev(Dispatch, "a", Go, 10, "-"), at(0));
    feed(&mut l, ev(Dispatch, "b", Go, 20, "-"), at(0));
    let due = l.next_due();
    // Over the cap, and its evidence is the oldest: evicted before its record is read.
    let c = feed(&mut l, ev(Dispatch, "c", Go, 0, "-"), at(1));
    assert_eq!(
        c,
        vec![
            Change::Evicted {
                session: sid("c"),
                lines: vec![Origin::default()],
            },
            Change::Retired(Counted::default()),
            Change::Forgotten { session: sid("c") },
        ]
    );
    assert!(l.core().session(&sid("c")).is_none());
    assert_eq!(l.next_due(), due);
    let forgotten: Vec<Change> = l
        .on_tick(at(3601))
        .into_iter()
        .filter(|c| matches!(c, Change::Forgotten { .. }))
        .collect();
    assert_eq!(
        forgotten,
        vec![
            Change::Forgotten { session: sid("a") },
            Change::Forgotten { session: sid("b") },
        ]
    );
    assert_eq!(l.next_due(), None);
}

/// The sessions of `changes` that went overdue, and those forgotten, in order.
fn overdue_and_forgotten(changes: &[Change]) -> (Vec<String>, Vec<String>) {
    let overdue = changes.iter().filter_map(|c| match c {
        Change::Overdue { session, .. } => Some(session.to_string()),
        _ => None,
    });
    let forgotten = changes.iter().filter_map(|c| match c {
        Change::Forgotten { session } => Some(session.to_string()),
        _ => None,
    });
    (overdue.collect(), forgotten.collect())
}

fn names(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

/// One batch's sessions (the same receive time) dispatched in reverse id order, two claim
/// timeouts interleaved, the last few received a second earlier (the clock stepped back):
/// they go overdue and are forgotten in (due time, id) order, as the shared state's sorted
/// sets order them; `next_due` is each next time exactly, and the deadlines of sessions
/// forgotten before them (retention shorter than the timeout) arm nothing.
#[test]
fn deadlines_and_expiries_fall_due_in_id_order_and_forgotten_ones_arm_nothing() {
    let mut config = LiveConfig {
        retention_ms: 200 * SEC,
        ..LiveConfig::default()
    };
    config.correlate.timeouts.go = std::time::Duration::from_secs(90);
    config.correlate.timeouts.ts = std::time::Duration::from_secs(300);
    let mut l = Live::new(config);
    for n in (0..12).rev() {
        let runner = if n % 2 == 0 { Go } else { Ts };
        let now = if n < 3 { at(-1) } else { at(0) };
        feed(
            &mut l,
            ev(Dispatch, &format!("s{n:02}"), runner, 0, "-"),
            now,
        );
    }
    // Settled: nothing held.
    pass(&mut l, 1, at(0));
    assert_eq!(l.next_due(), Some(at(89)));
    let (overdue, _) = overdue_and_forgotten(&l.on_tick(at(89)));
    assert_eq!(overdue, names(&["s00", "s02"]));
    assert_eq!(l.next_due(), Some(at(90)));
    let (overdue, _) = overdue_and_forgotten(&l.on_tick(at(90)));
    assert_eq!(overdue, names(&["s04", "s06", "s08", "s10"]));
    assert_eq!(l.next_due(), Some(at(199)));
    let (_, forgotten) = overdue_and_forgotten(&l.on_tick(at(199)));
    assert_eq!(forgotten, names(&["s00", "s01", "s02"]));
    assert_eq!(l.next_due(), Some(at(200)));
    let (_, forgotten) = overdue_and_forgotten(&l.on_tick(at(200)));
    let rest: Vec<String> = (3..12).map(|n| format!("s{n:02}")).collect();
    assert_eq!(forgotten, rest);
    // The Ts deadlines (299 s, 300 s) went with their sessions.
    assert_eq!(l.next_due(), None);
}

/// A session evicted and dispatched again leaves its first deadline behind, stale, among
/// live ones due at the same time: that one is passed over (the session goes overdue at its
/// new deadline, not at the old one), and so is the deadline of a session evicted for good.
#[test]
fn a_deadline_left_by_an_evicted_session_is_passed_over() {
    let mut config = LiveConfig::default();
    config.correlate.max_sessions = 3;
    config.correlate.timeouts =
        crate::correlate::ClaimTimeouts::uniform(std::time::Duration::from_secs(90));
    let mut l = Live::new(config);
    // Latest evidence: b newest, then d; a oldest (evicted first), then c.
    feed(&mut l, ev(Dispatch, "b", Go, 60, "-"), at(0));
    feed(&mut l, ev(Dispatch, "a", Go, 10, "-"), at(0));
    feed(&mut l, ev(Dispatch, "d", Go, 50, "-"), at(0));
    let c = feed(&mut l, ev(Dispatch, "c", Go, 30, "-"), at(0));
    assert!(
        c.contains(&Change::Forgotten { session: sid("a") }),
        "{c:?}"
    );
    let c = feed(&mut l, ev(Dispatch, "a", Go, 40, "-"), at(1));
    assert!(
        c.contains(&Change::Forgotten { session: sid("c") }),
        "{c:?}"
    );
    let (overdue, _) = overdue_and_forgotten(&l.on_tick(at(90)));
    assert_eq!(overdue, names(&["b", "d"]));
    assert_eq!(l.next_due(), Some(at(91)));
    let (overdue, _) = overdue_and_forgotten(&l.on_tick(at(91)));
    assert_eq!(overdue, names(&["a"]));
}

fn outcomes(changes: &[Change]) -> Vec<Outcome> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::Judged { outcome, .. } => Some(*outcome),
            _ => None,
        })
        .collect()
}

#[test]
fn held_judgements_wait_for_earlier_claims_from_a_slower_source() {
    // A go claim at 5 s arrives first; the ts claim stamped 2 s arrives after it (its file was
    // read later). By event time the first claim is ts's: mismatched.
    let mut l = live();
    l.hold(true);
    feed(&mut l, ev(Dispatch, "s", Go, 0, "-"), at(0));
    let c = feed(&mut l, ev(Claim, "s", Go, 5, "g1"), at(0));
    assert_eq!(outcomes(&c), vec![], "held, not judged");
    feed(&mut l, ev(Claim, "s", Ts, 2, "t1"), at(0));
    l.hold(false);
    let c = l.release();
    assert_eq!(outcomes(&c), vec![Outcome::Mismatched]);
    assert!(c.contains(&Change::PendingEnded { runner: Go }), "{c:?}");
    assert_eq!(outcomes(&l.release()), vec![], "judged once");

    // Not holding, the same arrival order judges on the evidence at hand, once.
    let mut l = live();
    feed(&mut l, ev(Dispatch, "s", Go, 0, "-"), at(0));
    let c = feed(&mut l, ev(Claim, "s", Go, 5, "g1"), at(0));
    assert_eq!(
        outcomes(&c),
        vec![],
        "the source may deliver more stamped 5 s"
    );
    let c = pass(&mut l, 6, at(0));
    assert_eq!(outcomes(&c), vec![Outcome::Matched]);
    let c = feed(&mut l, ev(Claim, "s", Ts, 2, "t1"), at(0));
    assert_eq!(outcomes(&c), vec![]);
}

// ---- judged on settled evidence ---------------------------------------------------------

mod settled {
    use proptest::prelude::*;

    use super::*;
    use crate::correlate::{CorrelateConfig, Correlator};

    /// What a run says about each session: outcome, duplicate (cross-runtime), orphan claims,
    /// and the total of re-claims.
    type Said = (
        std::collections::BTreeMap<String, (Option<Outcome>, bool, bool, u32)>,
        u32,
    );

    fn arb_event() -> impl Strategy<Value = Event> {
        let kind = prop_oneof![
            3 => Just(Dispatch),
            4 => Just(Claim),
            2 => Just(Release),
        ];
        let runner = prop_oneof![Just(Go), Just(Ts), Just(Runner::Other)];
        (kind, 0..6u8, runner, 0..300i64, 0..3u8).prop_map(|(kind, s, runner, at, w)| {
            ev(kind, &format!("s{s}"), runner, at, &format!("w{w}"))
        })
    }

    /// `verify`'s view: every event at once.
    fn batch(events: &[Event]) -> Said {
        let mut c = Correlator::new(CorrelateConfig::default());
        for e in events {
            c.on_event(e.clone(), Origin::default());
        }
        let mut out = std::collections::BTreeMap::new();
        let mut reclaims = 0;
        for (id, s) in c.sessions() {
            let j = s.judge(c.timeouts(), Timestamp::MIN);
            let outcome = j.first_claim.and(j.outcome);
            reclaims += j.reclaims;
            // As the report counts them: every claim of a session never dispatched.
            let orphans = if j.dispatch.is_none() { j.claims } else { 0 };
            if outcome.is_some() || j.duplicate || orphans > 0 {
                out.insert(
                    id.to_string(),
                    (outcome, j.duplicate, j.duplicate_cross_runtime, orphans),
                );
            }
        }
        (out, reclaims)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// Any split of the same events into sources (each delivering in its own time order),
        /// merged in any order with any pauses shorter than the idle timeout, judges every
        /// session as `verify` judges the whole set, orphans included, and never before it
        /// settled. The sidecar's clock may run past the orphan grace (300 s, as long as the
        /// events span) many times over while a dispatch is still to come from a slow source.
        #[test]
        fn any_split_and_delivery_order_judges_as_verify(
            events in proptest::collection::vec(arb_event(), 0..40),
            split in proptest::collection::vec(0u16..4, 40),
            picks in proptest::collection::vec(0usize..8, 1..60),
            pauses in proptest::collection::vec(0i64..29_000, 60),
            ticks in proptest::collection::vec(any::<bool>(), 60),
            lateness_s in 0i64..5,
            declare in any::<bool>(),
        ) {
            let sources = 4;
            let mut per: Vec<Vec<Event>> = vec![Vec::new(); sources];
            for (e, s) in events.iter().zip(&split) {
                per[usize::from(*s)].push(e.clone());
            }
            for p in &mut per {
                p.sort_by_key(|e| e.time);
            }
            let mut l = Live::new(LiveConfig {
                allowed_lateness_ms: lateness_s * SEC,
                idle_after_ms: 30 * SEC,
                max_hold_ms: 3_600 * SEC,
                orphan_grace_ms: 300 * SEC,
                retention_ms: 86_400 * SEC,
                ..LiveConfig::default()
            });
            let mut now = NOW;
            // Sources that say they have more to read (as a file follower short of the end
            // of its file does) are never idle, so the pauses may be long: the sidecar's clock
            // then runs past the orphan grace while a dispatch is still to come. Sources that
            // say nothing pause less than the idle timeout in all.
            let scale = if declare { 1 } else { 50 };
            for (s, events) in per.iter().enumerate() {
                l.source_seen(s as u16, now, declare && !events.is_empty());
            }
            let mut changes = Vec::new();
            let mut pos = vec![0; sources];
            let mut pick = picks.iter().cycle();
            let mut step = 0;
            while pos.iter().zip(&per).any(|(p, v)| *p < v.len()) {
                let open: Vec<usize> = (0..sources).filter(|&i| pos[i] < per[i].len()).collect();
                let i = open[pick.next().copied().unwrap_or(0) % open.len()];
                let e = per[i][pos[i]].clone();
                pos[i] += 1;
                now = Timestamp(now.0 + pauses[step % pauses.len()] / scale);
                if ticks[step % ticks.len()] {
                    changes.extend(l.on_tick(now));
                }
                let origin = Origin { input: i as u16, line: pos[i] as u32 };
                changes.extend(l.on_event(e, origin, now).unwrap_or_default());
                if declare {
                    l.source_seen(i as u16, now, pos[i] < per[i].len());
                }
                step += 1;
            }
            // Every source goes quiet: what is left settles.
            changes.extend(l.on_tick(Timestamp(now.0 + 31 * SEC)));

            prop_assert!(!changes.contains(&Change::JudgedBeforeSettled), "{changes:?}");
            let mut said = std::collections::BTreeMap::new();
            let mut reclaims = 0;
            for c in &changes {
                match c {
                    Change::Judged { session, outcome, .. } => {
                        let e = said.entry(session.to_string()).or_insert((None, false, false, 0));
                        prop_assert!(e.0.is_none(), "{session} judged twice");
                        e.0 = Some(*outcome);
                    }
                    Change::Duplicate { session, cross_runtime, .. } => {
                        let e = said.entry(session.to_string()).or_insert((None, false, false, 0));
                        prop_assert!(!e.1, "{session}: duplicate twice");
                        e.1 = true;
                        e.2 = *cross_runtime;
                    }
                    Change::DuplicateCrossRuntime { session, .. } => {
                        let e = said.entry(session.to_string()).or_insert((None, false, false, 0));
                        prop_assert!(e.1 && !e.2, "{session}: cross-runtime without a duplicate");
                        e.2 = true;
                    }
                    Change::Orphan { session, claim, .. } => {
                        let e = said.entry(session.to_string()).or_insert((None, false, false, 0));
                        e.3 += 1;
                        prop_assert_eq!(e.3, *claim, "{} orphan claims out of order", session);
                    }
                    Change::Reclaimed { .. } => reclaims += 1,
                    _ => {}
                }
            }
            let (want, want_reclaims) = batch(&events);
            prop_assert_eq!(said, want);
            prop_assert_eq!(reclaims, want_reclaims);
        }
    }
}

/// A mark keeps its six scheduled times in 8 bytes each (`MaybeTime`), so a live session's
/// entry in the correlator's table is 208 bytes, not the 256 they took as options: a fifth
/// of the memory of every session in flight, and of what the table copies as it grows.
#[test]
fn a_live_session_s_table_entry_stays_at_208_bytes() {
    use crate::correlate::session::Session;
    assert_eq!(std::mem::size_of::<MaybeTime>(), 8);
    assert!(
        std::mem::size_of::<(SessionId, (Session, Mark))>() <= 208,
        "{} bytes",
        std::mem::size_of::<(SessionId, (Session, Mark))>()
    );
    let t = Timestamp(1_795_428_000_000);
    assert_eq!(MaybeTime::from(t).get(), Some(t));
    assert_eq!(MaybeTime::from(Some(t)).get(), Some(t));
    assert_eq!(MaybeTime::from(None).get(), None);
    assert!(MaybeTime::default().is_none() && !MaybeTime::from(t).is_none());
}

/// The judgement of session "s" after `events` (each with its origin), once everything has
/// settled: its dispatch columns and whether its write sets them again (`refile`).
fn judged_dispatch(
    events: Vec<(Event, Origin)>,
) -> Option<(Option<String>, Runner, Timestamp, bool)> {
    let mut l = live();
    for (e, o) in events {
        l.on_event(e, o, at(0));
    }
    // Every source idle: all the evidence settles; no deadline has passed yet.
    l.on_tick(at(30)).into_iter().find_map(|c| match c {
        Change::Judged {
            org,
            runner,
            dispatched_at,
            refile,
            ..
        } => Some((org, runner, dispatched_at, refile)),
        _ => None,
    })
}

/// A judgement's write sets the row's dispatch columns again (`refile`) only when they may
/// differ from what earlier writes of the row carried: a second dispatch arrived, or an
/// earlier copy of the dispatch (a re-delivery from an earlier origin) named another org.
/// Otherwise every write of the row carried the one dispatch's columns.
#[test]
fn a_judgement_refiles_only_when_its_dispatch_may_have_changed() {
    let o = |input, line| Origin { input, line };
    let org_b = |e: Event| Event {
        org: Some("org_b".into()),
        ..e
    };
    let go = |s| ev(Dispatch, "s", Go, s, "-");
    let claim = || (ev(Claim, "s", Go, 3, "g1"), o(0, 9));
    let t = |s: i64| Timestamp(T0 + s * SEC);
    let (org_a, org_b_) = (Some("org_a".to_owned()), Some("org_b".to_owned()));
    let cases = [
        // One dispatch: the columns it was written with.
        (
            vec![(go(0), o(0, 1)), claim()],
            (org_a.clone(), Go, t(0), false),
        ),
        // A second, earlier dispatch: judged on it, so the row's columns move.
        (
            vec![
                (go(1), o(0, 1)),
                (org_b(ev(Dispatch, "s", Ts, 0, "-")), o(0, 2)),
                (ev(Claim, "s", Ts, 3, "t1"), o(0, 9)),
            ],
            (org_b_.clone(), Ts, t(0), true),
        ),
        // A second, later dispatch: judged on the first, but the dispatch was not alone.
        (
            vec![(go(0), o(0, 1)), (go(1), o(0, 2)), claim()],
            (org_a.clone(), Go, t(0), true),
        ),
        // The same dispatch again from an earlier origin naming another org: its org now.
        (
            vec![(go(0), o(1, 1)), (org_b(go(0)), o(0, 1)), claim()],
            (org_b_, Go, t(0), true),
        ),
        // ... from an earlier origin naming the same org, or from a later one naming another:
        // nothing the row holds changed.
        (
            vec![(go(0), o(1, 1)), (go(0), o(0, 1)), claim()],
            (org_a.clone(), Go, t(0), false),
        ),
        (
            vec![(go(0), o(0, 1)), (org_b(go(0)), o(1, 1)), claim()],
            (org_a, Go, t(0), false),
        ),
    ];
    for (i, (events, want)) in cases.into_iter().enumerate() {
        assert_eq!(judged_dispatch(events), Some(want), "case {i}");
    }
}

/// An overdue session's write says the same: `refile` once a second dispatch came.
#[test]
fn an_overdue_write_refiles_only_when_its_dispatch_may_have_changed() {
    let overdue = |dispatches: &[i64]| {
        let mut l = live();
        for (line, s) in (1..).zip(dispatches) {
            let o = Origin { input: 0, line };
            l.on_event(ev(Dispatch, "s", Go, *s, "-"), o, at(0));
        }
        l.on_tick(at(200)).into_iter().find_map(|c| match c {
            Change::Overdue { refile, .. } => Some(refile),
            _ => None,
        })
    };
    assert_eq!(overdue(&[0]), Some(false));
    assert_eq!(overdue(&[0, 1]), Some(true));
}
