//! The conformance suite of the correlation-state port (`src/state/`): what every
//! implementation must do, whatever it keeps its state in. `conformance!(name, make)` runs
//! every check against the implementation `make(LiveConfig)` builds; the local one is run
//! here, a shared one adds one line.
//!
//! The reference is the batch correlator, as `verify` judges: simulate's workload split into
//! its four files (one source each), delivered batch by batch in several orders, must give
//! each session the outcome, duplicate and re-claims that batch gives it.
//!
//! Run against the local state, the shared state on the shared standalone Redis (a prefix of
//! its own per state) and on a 3-master Redis Cluster the test starts.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use claimcheck::correlate::live::{Change, LiveConfig};
use claimcheck::correlate::{CorrelateConfig, Correlator, Outcome};
use claimcheck::event::{Event, EventKind, Origin, Runner, SessionId, Timestamp};
use claimcheck::parse::{LineContext, Parsed, Parser};
use claimcheck::simulate::{SimConfig, generate};
use claimcheck::state::shared::{SharedConfig, SharedState, Timeouts};
use claimcheck::state::{
    Applied, CorrelationState, Delivery, Fate, LocalState, SessionState, SourceWatermark,
    StateError, StateTotals,
};

use super::redis_cluster::{Prefix, RedisCluster, STANDALONE};

pub const SEC: i64 = 1000;
pub const NOW: Timestamp = Timestamp(1_700_000_000_000);

/// The configuration every check runs with: `serve`'s defaults.
pub fn config() -> LiveConfig {
    LiveConfig {
        allowed_lateness_ms: 3 * SEC,
        idle_after_ms: 5 * SEC,
        max_hold_ms: 60 * SEC,
        ..LiveConfig::default()
    }
}

/// simulate's workload, one list of events per file (= per source), in file order.
pub struct Workload {
    pub sources: Vec<Vec<Event>>,
    pub truth: claimcheck::simulate::Totals,
}

pub fn workload() -> &'static Workload {
    static W: OnceLock<Workload> = OnceLock::new();
    W.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let truth = generate(
            &SimConfig {
                sessions: 2000,
                seed: 23,
                ..SimConfig::default()
            },
            dir.path(),
        )
        .unwrap();
        let parser = Parser::new(Default::default());
        let sources = [
            ("dispatch.log", None),
            ("vercel-drain.ndjson", None),
            ("go-daemon.log", Some(Runner::Go)),
            ("ts-worker.log", Some(Runner::Ts)),
        ]
        .iter()
        .map(|(file, runtime)| {
            let ctx = LineContext {
                default_runtime: *runtime,
                received_at: None,
            };
            std::fs::read(dir.path().join(file))
                .unwrap()
                .split(|&b| b == b'\n')
                .filter_map(|line| match parser.parse_line(line, &ctx) {
                    Parsed::Event(e) => Some(e),
                    _ => None,
                })
                .collect()
        })
        .collect();
        Workload {
            sources,
            truth: truth.totals,
        }
    })
}

/// What batch says of each session: outcome (dispatched sessions), duplicate, cross-runtime,
/// orphan claims. (Re-claims carry no session in a change: their total is compared.)
pub type Said = BTreeMap<String, (Option<Outcome>, bool, bool, u32)>;

/// Fails with the first sessions on which `said` and `want` disagree.
pub fn assert_same(said: &Said, want: &Said, ctx: &str) {
    let differ: Vec<_> = want
        .iter()
        .filter(|(k, v)| said.get(*k) != Some(v))
        .map(|(k, v)| (k, Some(v), said.get(k)))
        .chain(
            said.iter()
                .filter(|(k, _)| !want.contains_key(*k))
                .map(|(k, v)| (k, None, Some(v))),
        )
        .take(5)
        .collect();
    assert!(
        differ.is_empty(),
        "{ctx}: (session, verify, state) {differ:?}"
    );
}

pub fn reference(w: &Workload) -> Said {
    let mut c = Correlator::new(CorrelateConfig::default());
    for (i, events) in w.sources.iter().enumerate() {
        for (n, e) in events.iter().enumerate() {
            let origin = Origin {
                input: i as u16,
                line: n as u32 + 1,
            };
            c.on_event(e.clone(), origin);
        }
    }
    let mut said = Said::new();
    for (id, s) in c.sessions() {
        let j = s.judge(c.timeouts(), c.watermark());
        // Live never judges unclaimed or pending: those are overdue on the sidecar's clock.
        let outcome = j
            .outcome
            .filter(|o| !matches!(o, Outcome::Unclaimed | Outcome::Pending));
        let orphans = if j.dispatch.is_none() { j.claims } else { 0 };
        said.insert(
            id.to_string(),
            (outcome, j.duplicate, j.duplicate_cross_runtime, orphans),
        );
    }
    said.retain(|_, v| *v != (None, false, false, 0));
    said
}

/// Folds changes into what they say of each session, failing on a session judged twice or
/// reported duplicate twice.
pub fn fold(said: &mut Said, changes: &[Change]) {
    for c in changes {
        match c {
            Change::Judged {
                session, outcome, ..
            } => {
                let e = said.entry(session.to_string()).or_default();
                assert!(e.0.is_none(), "{session} judged twice");
                e.0 = Some(*outcome);
            }
            Change::Duplicate {
                session,
                cross_runtime,
                ..
            } => {
                let e = said.entry(session.to_string()).or_default();
                assert!(!e.1, "{session} reported duplicate twice");
                e.1 = true;
                e.2 = *cross_runtime;
            }
            Change::DuplicateCrossRuntime { session, .. } => {
                let e = said.entry(session.to_string()).or_default();
                assert!(e.1 && !e.2, "{session}: cross-runtime without a duplicate");
                e.2 = true;
            }
            Change::Orphan { session, .. } => said.entry(session.to_string()).or_default().3 += 1,
            _ => {}
        }
    }
}

pub fn reclaims(changes: &[Change]) -> u32 {
    changes
        .iter()
        .filter(|c| matches!(c, Change::Reclaimed { .. }))
        .count() as u32
}

/// A small deterministic generator (the suite must not depend on a crate's RNG streams).
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n.max(1)
    }
}

/// How the four sources' batches are interleaved.
#[derive(Debug, Clone, Copy)]
pub enum Order {
    /// Each source's whole file, one after another, in this order.
    Sequential([usize; 4]),
    /// Random batch sizes, a random open source each time.
    Random(u64),
    /// As `Sequential`, with 10 s on the sidecar's clock between deliveries: the whole run
    /// takes longer than the orphan grace (5 min), every source still to deliver saying it is
    /// behind (a slow dispatch log, say).
    Slow([usize; 4]),
}

/// Every delivery of a run, in order: (source, events with origins, backlog).
pub fn schedule(w: &Workload, order: Order) -> Vec<Delivery> {
    let mut out = Vec::new();
    let mut pos = vec![0usize; w.sources.len()];
    let mut rng = Lcg(match order {
        Order::Random(seed) => seed,
        Order::Sequential(_) | Order::Slow(_) => 7,
    });
    let step = match order {
        Order::Slow(_) => 10 * SEC,
        _ => 5,
    };
    let mut now = NOW;
    let next_source = |pos: &[usize], rng: &mut Lcg| -> Option<usize> {
        let open: Vec<usize> = (0..w.sources.len())
            .filter(|&i| pos[i] < w.sources[i].len())
            .collect();
        match order {
            Order::Sequential(o) | Order::Slow(o) => o.iter().copied().find(|i| open.contains(i)),
            Order::Random(_) => (!open.is_empty()).then(|| open[rng.next(open.len())]),
        }
    };
    while let Some(i) = next_source(&pos, &mut rng) {
        let size = 1 + rng.next(400);
        let end = (pos[i] + size).min(w.sources[i].len());
        let events = (pos[i]..end)
            .map(|n| {
                (
                    w.sources[i][n].clone(),
                    Origin {
                        input: i as u16,
                        line: n as u32 + 1,
                    },
                )
            })
            .collect();
        pos[i] = end;
        now = now.saturating_add_ms(step);
        out.push(Delivery {
            input: i as u16,
            now,
            backlog: Some(end < w.sources[i].len()),
            events,
        });
    }
    out
}

/// Delivers a schedule to a fresh state (its sources announced first, each behind, as `serve`
/// announces the files it follows), then lets every source go quiet and every deadline pass
/// (not the retention). Returns all changes and the clock.
async fn run<S: CorrelationState>(
    state: &mut S,
    deliveries: Vec<Delivery>,
) -> (Vec<Change>, Timestamp) {
    state.announce(&[0, 1, 2, 3], NOW).await.unwrap();
    let mut changes = Vec::new();
    for input in 0..4 {
        let behind = Delivery {
            input,
            now: NOW,
            backlog: Some(true),
            events: Vec::new(),
        };
        changes.extend(state.apply(behind).await.unwrap().changes);
    }
    let mut now = NOW;
    for d in deliveries {
        now = now.max(d.now);
        let n = d.events.len();
        let applied = state.apply(d).await.unwrap();
        assert_eq!(applied.fates.len(), n, "one fate per event");
        changes.extend(applied.changes);
    }
    let end = now.saturating_add_ms(10 * 60 * SEC);
    changes.extend(state.tick(end).await.unwrap());
    (changes, end)
}

async fn check_outcomes<S: CorrelationState>(make: impl Fn(LiveConfig) -> S, order: Order) {
    let w = workload();
    let config = match order {
        // The maximum hold outlasts the slow run: every judgement waits for settled evidence.
        Order::Slow(_) => LiveConfig {
            max_hold_ms: 3_600 * SEC,
            ..config()
        },
        _ => config(),
    };
    let mut state = make(config);
    let (changes, _) = run(&mut state, schedule(w, order)).await;
    assert!(
        !changes.contains(&Change::JudgedBeforeSettled),
        "{order:?}: judged before settled"
    );
    let mut said = Said::new();
    fold(&mut said, &changes);
    assert_same(&said, &reference(w), &format!("{order:?}"));
    // …and the totals verify reports (simulate's truth is verify's answer).
    let t = &w.truth;
    let count = |o: Outcome| said.values().filter(|v| v.0 == Some(o)).count() as u64;
    assert_eq!(count(Outcome::Matched), t.matched, "{order:?}");
    assert_eq!(count(Outcome::Late), t.late, "{order:?}");
    assert_eq!(count(Outcome::Mismatched), t.mismatched, "{order:?}");
    assert_eq!(
        said.values().filter(|v| v.1).count() as u64,
        t.duplicate_claims
    );
    assert_eq!(u64::from(reclaims(&changes)), t.reclaims, "{order:?}");
    let overdue = changes
        .iter()
        .filter(|c| matches!(c, Change::Overdue { .. }))
        .count() as u64
        - changes
            .iter()
            .filter(|c| matches!(c, Change::OverdueResolved { .. }))
            .count() as u64;
    assert_eq!(overdue, t.unclaimed + t.pending, "{order:?}: overdue");
}

/// Any split in any order: each file a source, delivered one after another (dispatch first,
/// dispatch last) or interleaved at random with random batch sizes.
pub async fn outcomes_equal_verify<S: CorrelationState>(make: impl Fn(LiveConfig) -> S) {
    for order in [
        Order::Sequential([0, 1, 2, 3]),
        Order::Sequential([3, 2, 1, 0]),
        Order::Sequential([2, 0, 3, 1]),
        Order::Random(1),
        Order::Random(2),
        Order::Random(3),
        // Claims first, the dispatch log last and slow: no claim is an orphan for want of it.
        Order::Slow([3, 2, 1, 0]),
    ] {
        check_outcomes(&make, order).await;
    }
}

/// Exact re-deliveries change nothing: batches re-sent at random later points, and the whole
/// workload re-sent at the end, leave every outcome as it was and are each reported as such.
pub async fn redeliveries_are_dropped<S: CorrelationState>(make: impl Fn(LiveConfig) -> S) {
    let w = workload();
    let mut rng = Lcg(99);
    let mut deliveries = Vec::new();
    let mut again: Vec<Delivery> = Vec::new();
    for d in schedule(w, Order::Random(4)) {
        let now = d.now;
        if rng.next(4) == 0 {
            again.push(d.clone());
        }
        deliveries.push(d);
        if rng.next(3) == 0
            && let Some(mut r) = again.pop()
        {
            r.now = now;
            r.backlog = Some(true);
            deliveries.push(r);
        }
    }
    // Re-sent batches are stamped with a fresh receive time; their events with a session must
    // all be dropped.
    let mut state = make(config());
    state.announce(&[0, 1, 2, 3], NOW).await.unwrap();
    let mut changes = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut now = NOW;
    for d in deliveries {
        now = now.max(d.now);
        let keys: Vec<_> = d
            .events
            .iter()
            .map(|(e, o)| (e.session.is_some(), *o))
            .collect();
        let applied = state.apply(d).await.unwrap();
        for ((has_session, origin), fate) in keys.into_iter().zip(&applied.fates) {
            let first = seen.insert(origin);
            assert!(
                first || !has_session || !fate.is_fresh(),
                "{origin:?}: a re-delivery was accepted"
            );
        }
        changes.extend(applied.changes);
    }
    let end = now.saturating_add_ms(10 * 60 * SEC);
    changes.extend(state.tick(end).await.unwrap());
    let before = state.totals().await.unwrap();
    // Everything once more, after the fact.
    for mut d in schedule(w, Order::Sequential([0, 1, 2, 3])) {
        d.now = end;
        let has_session: Vec<bool> = d.events.iter().map(|(e, _)| e.session.is_some()).collect();
        let applied = state.apply(d).await.unwrap();
        for (s, f) in has_session.into_iter().zip(&applied.fates) {
            assert!(!s || !f.is_fresh(), "a re-delivered event was accepted");
        }
        changes.extend(applied.changes);
    }
    let mut said = Said::new();
    fold(&mut said, &changes);
    assert_same(&said, &reference(w), "re-delivered");
    assert_eq!(u64::from(reclaims(&changes)), w.truth.reclaims);
    let after = state.totals().await.unwrap();
    assert_eq!(after.events, before.events, "no event counted twice");
    assert!(after.redelivered > before.redelivered);
}

/// The state's counts: distinct events, re-deliveries, sessions held, pending and overdue
/// agree with what the changes said; after the retention everything is forgotten.
pub async fn totals_agree_with_the_changes<S: CorrelationState>(make: impl Fn(LiveConfig) -> S) {
    let w = workload();
    let mut state = make(config());
    let deliveries = schedule(w, Order::Random(5));
    let delivered: u64 = deliveries.iter().map(|d| d.events.len() as u64).sum();
    let (changes, end) = run(&mut state, deliveries).await;
    let t = state.totals().await.unwrap();
    let count = |f: fn(&Change) -> bool| changes.iter().filter(|c| f(c)).count() as u64;
    assert_eq!(t.events + t.redelivered, delivered, "{t:?}");
    assert_eq!(
        t.pending,
        count(|c| matches!(c, Change::PendingStarted { .. }))
            - count(|c| matches!(c, Change::PendingEnded { .. }))
    );
    assert_eq!(
        t.overdue,
        count(|c| matches!(c, Change::Overdue { .. }))
            - count(|c| matches!(c, Change::OverdueResolved { .. }))
    );
    assert_eq!(t.overdue, w.truth.unclaimed + w.truth.pending);
    assert_eq!(t.pending, 0, "every deadline passed");
    assert!(t.sessions >= w.truth.dispatched.go + w.truth.dispatched.ts);
    assert_eq!(t.evicted, 0);
    // Past the retention every session is forgotten, its share of the totals handed over.
    let later = state
        .tick(end.saturating_add_ms(2 * 3600 * SEC))
        .await
        .unwrap();
    let t = state.totals().await.unwrap();
    assert_eq!((t.sessions, t.pending, t.overdue), (0, 0, 0), "{t:?}");
    let retired = later
        .iter()
        .filter(|c| matches!(c, Change::Retired(_)))
        .count();
    let forgotten = later
        .iter()
        .filter(|c| matches!(c, Change::Forgotten { .. }))
        .count();
    assert_eq!(retired, forgotten);
    assert!(forgotten > 0);
}

/// One session's answer: its records (with origins), outcome, org and runner; an unknown
/// session is `None`.
pub async fn session_lookup<S: CorrelationState>(make: impl Fn(LiveConfig) -> S) {
    let w = workload();
    let mut state = make(config());
    let (changes, _) = run(&mut state, schedule(w, Order::Random(6))).await;
    let mut checked = 0;
    for c in &changes {
        let Change::Judged {
            session,
            runner,
            org,
            outcome,
            ..
        } = c
        else {
            continue;
        };
        let s = state.session(session).await.unwrap().expect("held");
        assert_eq!(s.outcome, Some(*outcome), "{session}");
        assert_eq!(s.runner, Some(*runner));
        assert_eq!(&s.org, org);
        assert!(s.records.iter().any(|r| r.kind == EventKind::Dispatch));
        assert!(s.records.iter().any(|r| r.kind == EventKind::Claim));
        assert!(s.records.windows(2).all(|p| p[0].time <= p[1].time));
        for r in &s.records {
            let e = &w.sources[usize::from(r.origin.input)][r.origin.line as usize - 1];
            assert_eq!((e.kind, e.time), (r.kind, r.time), "origin cites the event");
        }
        checked += 1;
        if checked == 200 {
            break;
        }
    }
    assert_eq!(checked, 200);
    let none = SessionId::new("no-such-session").unwrap();
    assert_eq!(state.session(&none).await.unwrap(), None);
}

fn event(kind: EventKind, id: &str, runner: Runner, time: Timestamp) -> Event {
    Event {
        kind,
        session: SessionId::new(id),
        runner,
        time,
        org: None,
        worker: None,
        version: None,
        detail: None,
    }
}

fn one(input: u16, now: Timestamp, e: Event, line: u32) -> Delivery {
    Delivery {
        input,
        now,
        backlog: Some(false),
        events: vec![(e, Origin { input, line })],
    }
}

/// Deadlines run on the sidecar's clock: a dispatch with no claim is overdue once, at receive
/// time + T and not before, `next_due` says when; a late claim resolves it, judged once.
pub async fn deadlines<S: CorrelationState>(make: impl Fn(LiveConfig) -> S) {
    let cfg = config();
    let t = cfg.correlate.timeouts.millis(Runner::Go);
    let mut state = make(cfg);
    let d = event(EventKind::Dispatch, "s1", Runner::Go, NOW);
    let applied = state.apply(one(0, NOW, d, 1)).await.unwrap();
    assert_eq!(
        applied.fates,
        vec![Fate::Accepted {
            first_dispatch: true
        }]
    );
    assert!(
        state
            .next_due()
            .is_some_and(|due| due <= NOW.saturating_add_ms(t)),
        "the deadline is due by receive time + T"
    );
    let overdue = |c: &[Change]| {
        c.iter()
            .filter(|c| matches!(c, Change::Overdue { .. }))
            .count()
    };
    let early = state.tick(NOW.saturating_add_ms(t - 1)).await.unwrap();
    assert_eq!(overdue(&early), 0, "not before receive time + T");
    let due = state.tick(NOW.saturating_add_ms(t)).await.unwrap();
    assert_eq!(overdue(&due), 1, "{due:?}");
    let again = state.tick(NOW.saturating_add_ms(t + 1)).await.unwrap();
    assert_eq!(overdue(&again), 0, "overdue once");
    assert_eq!(state.totals().await.unwrap().overdue, 1);
    // The claim comes after all (stamped within T: matched on event times).
    let now = NOW.saturating_add_ms(t + 2);
    let c = event(
        EventKind::Claim,
        "s1",
        Runner::Go,
        NOW.saturating_add_ms(10),
    );
    let mut changes = state.apply(one(1, now, c, 1)).await.unwrap().changes;
    changes.extend(
        state
            .tick(now.saturating_add_ms(10 * 60 * SEC))
            .await
            .unwrap(),
    );
    assert!(
        changes
            .iter()
            .any(|c| matches!(c, Change::OverdueResolved { .. })),
        "{changes:?}"
    );
    let judged: Vec<_> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Judged { outcome, .. } => Some(*outcome),
            _ => None,
        })
        .collect();
    assert_eq!(judged, vec![Outcome::Matched]);
    assert_eq!(state.totals().await.unwrap().overdue, 0);
}

/// Judgements wait for settled evidence: an announced source that has not delivered holds a
/// claim's judgement back (its earlier claim may still come) until it delivers or goes idle;
/// the watermarks say so.
pub async fn waits_for_settled_evidence<S: CorrelationState>(make: impl Fn(LiveConfig) -> S) {
    let cfg = config();
    let idle = cfg.idle_after_ms;
    let mut state = make(cfg);
    state.announce(&[0, 1, 2], NOW).await.unwrap();
    let judged = |c: &[Change]| {
        c.iter()
            .filter_map(|c| match c {
                Change::Judged { outcome, .. } => Some(*outcome),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    let d = event(EventKind::Dispatch, "s2", Runner::Go, NOW);
    let late = event(
        EventKind::Claim,
        "s2",
        Runner::Go,
        NOW.saturating_add_ms(31 * 60 * SEC),
    );
    let mut changes = state.apply(one(0, NOW, d, 1)).await.unwrap().changes;
    changes.extend(state.apply(one(1, NOW, late, 1)).await.unwrap().changes);
    assert!(judged(&changes).is_empty(), "source 2 has not delivered");
    let (marks, low) = state.watermarks(NOW).await.unwrap();
    assert_eq!(low, Timestamp::MIN, "{marks:?}");
    assert!(
        marks
            .iter()
            .any(|m| m.input == 2 && m.high.is_none() && m.active)
    );
    // Source 2 delivers the real first claim, stamped earlier: the session is matched.
    let first = event(
        EventKind::Claim,
        "s2",
        Runner::Ts,
        NOW.saturating_add_ms(SEC),
    );
    changes.extend(state.apply(one(2, NOW, first, 1)).await.unwrap().changes);
    changes.extend(state.tick(NOW.saturating_add_ms(idle + SEC)).await.unwrap());
    assert_eq!(judged(&changes), vec![Outcome::Mismatched], "{changes:?}");
    let (_, low) = state
        .watermarks(NOW.saturating_add_ms(idle + SEC))
        .await
        .unwrap();
    assert_eq!(
        low,
        claimcheck::correlate::live::watermark::END_OF_TIME,
        "all idle"
    );
}

/// Runs every check of the suite against one implementation.
macro_rules! conformance {
    ($name:ident, $make:expr) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn outcomes_equal_verify_in_any_split_and_order() {
                super::outcomes_equal_verify($make).await;
            }

            #[tokio::test]
            async fn exact_redeliveries_are_dropped() {
                super::redeliveries_are_dropped($make).await;
            }

            #[tokio::test]
            async fn totals_agree_with_the_changes() {
                super::totals_agree_with_the_changes($make).await;
            }

            #[tokio::test]
            async fn session_lookup() {
                super::session_lookup($make).await;
            }

            #[tokio::test]
            async fn deadlines_on_the_sidecars_clock() {
                super::deadlines($make).await;
            }

            #[tokio::test]
            async fn waits_for_settled_evidence() {
                super::waits_for_settled_evidence($make).await;
            }
        }
    };
}

conformance!(local, LocalState::new);

/// A shared state with what it stands on: its key prefix on the shared server (deleted when
/// dropped) or the cluster the test started (killed when the last state is dropped).
pub struct Owned<G: Send + Sync>(pub SharedState, pub G);

impl<G: Send + Sync> CorrelationState for Owned<G> {
    async fn announce(&mut self, inputs: &[u16], now: Timestamp) -> Result<(), StateError> {
        self.0.announce(inputs, now).await
    }

    async fn apply(&mut self, delivery: Delivery) -> Result<Applied, StateError> {
        self.0.apply(delivery).await
    }

    async fn tick(&mut self, now: Timestamp) -> Result<Vec<Change>, StateError> {
        self.0.tick(now).await
    }

    async fn session(&self, id: &SessionId) -> Result<Option<SessionState>, StateError> {
        self.0.session(id).await
    }

    async fn totals(&self) -> Result<StateTotals, StateError> {
        self.0.totals().await
    }

    async fn watermarks(
        &self,
        now: Timestamp,
    ) -> Result<(Vec<SourceWatermark>, Timestamp), StateError> {
        self.0.watermarks(now).await
    }

    fn next_due(&self) -> Option<Timestamp> {
        self.0.next_due()
    }

    fn retention_ms(&self) -> i64 {
        self.0.retention_ms()
    }
}

/// The timeouts of the tests' shared states. These tests check what the shared state computes,
/// not how fast it answers: on a 2-core machine running the whole suite, a debug build's batch
/// of 256 pipelined script calls once took longer than the production default of 2 s (and the
/// test failed on the `Unavailable`). How a timeout is met is tested on its own, with short
/// timeouts, in `state_shared`'s lost-master test.
pub const PATIENT: Timeouts = Timeouts {
    connect: Duration::from_secs(10),
    response: Duration::from_secs(30),
};

/// A replica's shared state on `urls` under `prefix`.
pub fn shared(config: LiveConfig, urls: Vec<String>, prefix: &str, instance: &str) -> SharedState {
    SharedState::new(
        config,
        SharedConfig {
            instances: Vec::new(),
            urls,
            prefix: prefix.to_owned(),
            instance: instance.to_owned(),
            timeouts: PATIENT,
            lease: Duration::from_secs(10),
            wait: None,
        },
    )
    .unwrap()
}

/// A fresh shared state on the shared standalone server, under a prefix of its own.
pub fn shared_standalone(config: LiveConfig) -> Owned<Prefix> {
    let p = Prefix::new("conformance");
    Owned(shared(config, vec![STANDALONE.to_owned()], &p.0, "a"), p)
}

/// A maker of fresh shared states on a 3-master cluster of its own (a prefix per state).
pub fn shared_cluster() -> impl Fn(LiveConfig) -> Owned<Arc<RedisCluster>> {
    let cluster = Arc::new(RedisCluster::start(3, 0));
    let n = AtomicU32::new(0);
    move |config| {
        let prefix = format!("cc{}", n.fetch_add(1, Ordering::Relaxed));
        Owned(
            shared(config, cluster.urls(), &prefix, "a"),
            Arc::clone(&cluster),
        )
    }
}

conformance!(shared_on_standalone, shared_standalone);
conformance!(shared_on_cluster, shared_cluster());
