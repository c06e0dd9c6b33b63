//! The shared correlation state's storage of events (`src/state/shared/`), against the shared
//! standalone Redis (a key prefix of its own) and a 3-master Redis Cluster the test starts:
//! the exact re-delivery test agrees with the in-process correlator's event by event, the
//! earliest origin is kept, two replicas storing one event at once store it once, a
//! bucket's keys share one slot while the buckets cover every master, and the shared
//! watermarks give the low watermark the in-process rules give, and a bucket's sweep lease
//! has one holder and passes on when it expires. Then `SharedState` as two replicas share it
//! (each outcome counted once, whichever replica judges it), and its cost per event.

use claimcheck::correlate::Outcome;
use claimcheck::correlate::live::Change;
use claimcheck::correlate::live::watermark::Watermarks;
use claimcheck::correlate::{CorrelateConfig, Correlator};
use claimcheck::event::{Event, EventKind, Origin, Runner, SessionId, Timestamp};
use claimcheck::state::shared::events::{self, Counts};
use claimcheck::state::shared::feed;
use claimcheck::state::shared::keys::session_bucket;
use claimcheck::state::shared::leases;
use claimcheck::state::shared::memo::Memo;
use claimcheck::state::shared::watermarks::{self, News};
use claimcheck::state::shared::{BUCKETS, Keys, Redis, SharedConfig, SharedState, Timeouts, Wait};
use claimcheck::state::{CorrelationState, Delivery, FeedCursor, FeedPage};

use super::redis_cluster::{Prefix, RedisCluster, STANDALONE};
use super::state::{
    Lcg, NOW, Order, PATIENT, SEC, Said, assert_same, config, fold, reclaims, reference, schedule,
    shared, workload,
};

/// Where a test's state lives; what it started is stopped or cleaned up when dropped.
enum Backend {
    Standalone(Prefix),
    Cluster(RedisCluster),
}

impl Backend {
    fn urls(&self) -> Vec<String> {
        match self {
            Backend::Standalone(_) => vec![STANDALONE.to_owned()],
            Backend::Cluster(c) => c.urls(),
        }
    }

    fn keys(&self) -> Keys {
        match self {
            Backend::Standalone(p) => Keys::new(&p.0).unwrap(),
            Backend::Cluster(_) => Keys::new("cc").unwrap(),
        }
    }

    fn redis(&self) -> Redis {
        Redis::new(self.urls(), PATIENT)
    }
}

fn standalone(name: &str) -> Backend {
    Backend::Standalone(Prefix::new(name))
}

fn cluster() -> Backend {
    Backend::Cluster(RedisCluster::start(3, 0))
}

/// Every batch of simulate's workload stored, then all of it again: each event is told new
/// exactly when the in-process correlator takes it as new, and the counters agree.
async fn agrees_with_the_correlator(backend: Backend) {
    let (conn, keys) = (backend.redis(), backend.keys());
    let is_cluster = conn.conn().await.unwrap().is_cluster();
    assert_eq!(is_cluster, matches!(backend, Backend::Cluster(_)));
    let mut core = Correlator::new(CorrelateConfig::default());
    let deliveries = schedule(workload(), Order::Random(11));
    let mut sent = 0u64;
    for pass in 0..2 {
        for d in &deliveries {
            let fresh = events::store(&conn, &keys, &mut Memo::new("test"), &d.events, d.now)
                .await
                .unwrap();
            assert_eq!(fresh.len(), d.events.len());
            for ((ev, origin), fresh) in d.events.iter().zip(fresh) {
                let want = core.on_event(ev.clone(), *origin);
                // Heartbeats re-sent long after are new again in both (a recent window), but
                // the windows differ (by time here, by arrival in process): heartbeats are
                // compared on the first pass only.
                if pass == 0 || (ev.session.is_some() && ev.kind != EventKind::Heartbeat) {
                    assert_eq!(fresh, want, "pass {pass}, {origin:?}");
                }
            }
            sent += d.events.len() as u64;
        }
        if pass == 0 {
            let counts = events::counts(&conn, &keys).await.unwrap();
            let stats = core.stats();
            assert_eq!(
                counts.events,
                stats.events.iter().sum::<u64>(),
                "{counts:?}"
            );
            assert_eq!(counts.redelivered, stats.duplicates, "{counts:?}");
        }
    }
    let counts = events::counts(&conn, &keys).await.unwrap();
    assert_eq!(counts.events + counts.redelivered, sent, "{counts:?}");
    assert_eq!(counts.sessions, core.session_count() as u64);
}

fn claim(id: &str, time: i64, worker: &str) -> Event {
    Event {
        kind: EventKind::Claim,
        session: SessionId::new(id),
        runner: Runner::Go,
        time: Timestamp(time),
        org: None,
        worker: Some(worker.into()),
        version: Some("v1".into()),
        detail: None,
    }
}

/// A dispatch of session `id` to `runner`, stamped `time`.
fn dispatch(id: &str, runner: Runner, time: i64) -> Event {
    Event {
        kind: EventKind::Dispatch,
        runner,
        worker: None,
        version: None,
        ..claim(id, time, "")
    }
}

/// `events` delivered by source `input` at `now` (its lines numbered from 1), saying whether
/// the source has more to read.
fn delivery(input: u16, now: i64, backlog: bool, events: Vec<Event>) -> Delivery {
    Delivery {
        input,
        now: Timestamp(now),
        backlog: Some(backlog),
        events: events
            .into_iter()
            .zip(1..)
            .map(|(e, line)| (e, Origin { input, line }))
            .collect(),
    }
}

/// What `changes` judged `session`, if they judged it.
fn judged(changes: &[Change], session: &str) -> Option<Outcome> {
    let mut said = Said::new();
    fold(&mut said, changes);
    said.get(session).and_then(|s| s.0)
}

/// A re-delivery from an earlier origin moves the record's origin there (evidence does not
/// depend on arrival order); from a later one it changes nothing.
async fn keeps_the_earliest_origin(backend: Backend) {
    let (conn, keys) = (backend.redis(), backend.keys());
    let ev = claim("s-origin", 1_000, "w1");
    let id = SessionId::new("s-origin").unwrap();
    for (input, line, fresh) in [(1, 50, true), (0, 70, false), (2, 1, false), (0, 7, false)] {
        let got = events::store(
            &conn,
            &keys,
            &mut Memo::new("test"),
            &[(ev.clone(), Origin { input, line })],
            NOW,
        )
        .await
        .unwrap();
        assert_eq!(got, vec![fresh], "({input}, {line})");
    }
    let recs = events::records(&conn, &keys, &id).await.unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].origin, Origin { input: 0, line: 7 });
    assert_eq!(recs[0].worker.as_deref(), Some("w1"));
    assert_eq!(recs[0].name.as_deref(), Some("v1"));
    // Another worker at the same time is another event.
    let other = claim("s-origin", 1_000, "w2");
    let got = events::store(
        &conn,
        &keys,
        &mut Memo::new("test"),
        &[(other, Origin { input: 3, line: 1 })],
        NOW,
    )
    .await
    .unwrap();
    assert_eq!(got, vec![true]);
    let c = events::counts(&conn, &keys).await.unwrap();
    assert_eq!(
        c,
        Counts {
            events: 2,
            redelivered: 3,
            sessions: 1,
            pending: 0,
            overdue: 0,
            cumulative: [0; 11],
            by_runner: [0; 6],
        }
    );
}

/// Four "replicas" (connections of their own) store the same batches at once: every event is
/// new to exactly one of them.
async fn one_replica_stores_each_event(backend: Backend) {
    let keys = backend.keys();
    let batches: Vec<Vec<(Event, Origin)>> = (0..20)
        .map(|b| {
            (0..50)
                .map(|i| {
                    let ev = claim(&format!("s{b}-{i}"), 1_000 + i, "w");
                    (
                        ev,
                        Origin {
                            input: 0,
                            line: i as u32,
                        },
                    )
                })
                .collect()
        })
        .collect();
    let mut replicas = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (conn, keys, batches) = (backend.redis(), keys.clone(), batches.clone());
        replicas.spawn(async move {
            let mut fresh = Vec::new();
            for b in &batches {
                fresh.push(
                    events::store(&conn, &keys, &mut Memo::new("test"), b, NOW)
                        .await
                        .unwrap(),
                );
            }
            fresh
        });
    }
    let all = replicas.join_all().await;
    for (b, batch) in batches.iter().enumerate() {
        for i in 0..batch.len() {
            let winners = all.iter().filter(|r| r[b][i]).count();
            assert_eq!(winners, 1, "batch {b} event {i}");
        }
    }
    let c = events::counts(&backend.redis(), &keys).await.unwrap();
    assert_eq!((c.events, c.redelivered, c.sessions), (1000, 3000, 1000));
}

/// Two replicas' sources merged in the one hash give the low watermark, and each source's,
/// that the in-process rules give on the same news: random deliveries (event times, clocks
/// moving, backlogs), compared after each at several later clocks.
async fn watermarks_agree_with_the_in_process_rules(backend: Backend) {
    let (redis, keys) = (backend.redis(), backend.keys());
    let idle = 5_000;
    // Name order is the order the shared sources are rebuilt in.
    let names = ["a/0", "a/1", "b/0", "b/1", "b/2"];
    let mut local = Watermarks::new(idle);
    let mut now = Timestamp(1_000_000);
    let announce: Vec<News> = names
        .iter()
        .map(|n| News {
            source: (*n).to_owned(),
            high: None,
            now,
            backlog: Some(false),
        })
        .collect();
    watermarks::merge(&redis, &keys, &announce).await.unwrap();
    for i in 0..names.len() {
        local.seen(i as u16, now, false);
    }
    let mut rng = Lcg(5);
    for step in 0..300 {
        now = now.saturating_add_ms(rng.next(2_000) as i64);
        let i = rng.next(names.len());
        let high = (rng.next(4) != 0).then(|| Timestamp(1_000_000 + rng.next(100_000) as i64));
        let backlog = [None, Some(true), Some(false)][rng.next(3)];
        if high.is_none() && backlog.is_none() {
            continue;
        }
        let news = News {
            source: names[i].to_owned(),
            high,
            now,
            backlog,
        };
        watermarks::merge(&redis, &keys, &[news]).await.unwrap();
        if let Some(b) = backlog {
            local.seen(i as u16, now, b);
        }
        if let Some(h) = high {
            local.event(i as u16, h, now);
        }
        let shared = watermarks::read(&redis, &keys).await.unwrap().rebuild(
            idle,
            Timestamp::MIN,
            Timestamp::MIN,
        );
        for probe in [
            now,
            now.saturating_add_ms(idle / 2),
            now.saturating_add_ms(2 * idle),
        ] {
            assert_eq!(
                shared.low(probe),
                local.low(probe),
                "step {step} at {probe:?}"
            );
            assert!(
                shared.each(probe).eq(local.each(probe)),
                "step {step} at {probe:?}"
            );
        }
    }
}

/// A bucket's lease has one holder: another instance is refused while it is held, the holder
/// renews it, gives it up to another, and a holder that stops renewing (a replica killed)
/// loses it once it expires.
async fn leases_have_one_holder(backend: Backend) {
    let (redis, keys) = (backend.redis(), backend.keys());
    let long = std::time::Duration::from_secs(30);
    let buckets: Vec<u16> = (0..BUCKETS).collect();
    let a = leases::acquire(&redis, &keys, &buckets, "a", long)
        .await
        .unwrap();
    assert!(a.iter().all(|&h| h));
    let b = leases::acquire(&redis, &keys, &buckets, "b", long)
        .await
        .unwrap();
    assert!(b.iter().all(|&h| !h), "held by a");
    let renewed = leases::acquire(&redis, &keys, &[3, 7], "a", long)
        .await
        .unwrap();
    assert_eq!(renewed, vec![true, true]);
    // b giving up what it does not hold changes nothing.
    leases::release(&redis, &keys, &[3], "b").await.unwrap();
    assert_eq!(
        leases::acquire(&redis, &keys, &[3], "b", long)
            .await
            .unwrap(),
        vec![false]
    );
    leases::release(&redis, &keys, &[3], "a").await.unwrap();
    assert_eq!(
        leases::acquire(&redis, &keys, &[3, 4], "b", long)
            .await
            .unwrap(),
        vec![true, false]
    );
    // b takes bucket 9's lease for a short while, then "dies": a gets it once it expires.
    leases::release(&redis, &keys, &[9], "a").await.unwrap();
    let short = std::time::Duration::from_millis(300);
    assert_eq!(
        leases::acquire(&redis, &keys, &[9], "b", short)
            .await
            .unwrap(),
        vec![true]
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if leases::acquire(&redis, &keys, &[9], "a", long)
            .await
            .unwrap()
            == vec![true]
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "b's lease never expired"
        );
        super::support::pace(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        leases::acquire(&redis, &keys, &[9], "b", long)
            .await
            .unwrap(),
        vec![false]
    );
}

/// Two replicas share one state: the dispatch logs delivered to one, the workers' logs to
/// the other, interleaved at random (`concurrent`: the two replicas' deliveries run at the
/// same time). The two replicas' changes summed equal `verify` on the same events, each
/// outcome counted once (`fold` fails on a session judged or reported duplicate twice), and
/// the shared counts are those of one state.
async fn two_replicas_count_each_outcome_once(backend: Backend, concurrent: bool) {
    let w = workload();
    let prefix = backend.keys().prefix().to_owned();
    let mut a = shared(config(), backend.urls(), &prefix, "a");
    let mut b = shared(config(), backend.urls(), &prefix, "b");
    a.announce(&[0, 1], NOW).await.unwrap();
    b.announce(&[2, 3], NOW).await.unwrap();
    // The feed as read before anything was judged: empty, its version not counted yet.
    let before = a
        .feed(&FeedCursor::default(), false)
        .await
        .unwrap()
        .unwrap();
    assert!(before.entries.is_empty());
    let before = before.cursor;
    let (mut to_a, mut to_b) = (Vec::new(), Vec::new());
    let mut end = NOW;
    for d in schedule(w, Order::Random(21)) {
        end = end.max(d.now);
        if d.input < 2 {
            to_a.push(d);
        } else {
            to_b.push(d);
        }
    }
    async fn feed(
        s: &mut claimcheck::state::shared::SharedState,
        ds: Vec<claimcheck::state::Delivery>,
    ) -> Vec<Change> {
        let mut out = Vec::new();
        for d in ds {
            out.extend(s.apply(d).await.unwrap().changes);
        }
        out
    }
    let mut changes = Vec::new();
    if concurrent {
        let (ca, cb) = tokio::join!(feed(&mut a, to_a), feed(&mut b, to_b));
        changes.extend(ca);
        changes.extend(cb);
    } else {
        // Interleaved in the schedule's order, each delivery to its replica.
        let mut all: Vec<_> = to_a
            .into_iter()
            .map(|d| (true, d))
            .chain(to_b.into_iter().map(|d| (false, d)))
            .collect();
        all.sort_by_key(|(_, d)| d.now);
        for (to_a, d) in all {
            let s = if to_a { &mut a } else { &mut b };
            changes.extend(s.apply(d).await.unwrap().changes);
        }
    }
    let end = end.saturating_add_ms(10 * 60 * SEC);
    changes.extend(b.tick(end).await.unwrap());
    changes.extend(a.tick(end).await.unwrap());
    let mut said = Said::new();
    fold(&mut said, &changes);
    assert_same(&said, &reference(w), "two replicas");
    let t = &w.truth;
    let count = |o: Outcome| said.values().filter(|v| v.0 == Some(o)).count() as u64;
    assert_eq!(count(Outcome::Matched), t.matched);
    assert_eq!(count(Outcome::Late), t.late);
    assert_eq!(count(Outcome::Mismatched), t.mismatched);
    assert_eq!(u64::from(reclaims(&changes)), t.reclaims);
    let n = |f: fn(&Change) -> bool| changes.iter().filter(|c| f(c)).count() as u64;
    let mut dispatched = std::collections::HashSet::new();
    for c in &changes {
        if let Change::Dispatched { session, .. } = c {
            assert!(
                dispatched.insert(session.clone()),
                "{session} dispatched twice"
            );
        }
    }
    assert!(dispatched.len() as u64 >= t.dispatched.go + t.dispatched.ts);
    assert_eq!(
        n(|c| matches!(c, Change::Overdue { .. }))
            - n(|c| matches!(c, Change::OverdueResolved { .. })),
        t.unclaimed + t.pending
    );
    let totals = a.totals().await.unwrap();
    assert_eq!(
        totals,
        b.totals().await.unwrap(),
        "one state, seen from both"
    );
    assert_eq!(totals.overdue, t.unclaimed + t.pending);
    assert_eq!(totals.pending, 0);
    // Every change that writes an outcome row or a finding is in the feed once, whichever
    // replica committed it, and either replica reads all of them.
    let writes = |cs: &[Change]| {
        let mut v: Vec<String> = cs
            .iter()
            .filter(|c| feed::encode(std::slice::from_ref(*c), NOW).is_some())
            .map(|c| format!("{c:?}"))
            .collect();
        v.sort();
        v
    };
    let want = writes(&changes);
    assert!(want.len() as u64 > t.matched, "{}", want.len());
    assert_eq!(
        writes(&feed_of(&a, before, false).await),
        want,
        "replica a's feed, read as the version moved"
    );
    assert_eq!(
        writes(&feed_of(&b, FeedCursor::default(), true).await),
        want,
        "replica b's feed, read whole"
    );
}

/// Every change in the feed after `cursor`, read page after page as `serve` reads it: every
/// bucket only when the feed's version moved (`full` aside) or the last page was full. Then
/// nothing more is read, with or without the version.
async fn feed_of(s: &SharedState, mut cursor: FeedCursor, full: bool) -> Vec<Change> {
    let mut out = Vec::new();
    let mut more = false;
    loop {
        let page = s.feed(&cursor, full || more).await.unwrap().unwrap();
        assert_eq!(page.gaps, 0);
        out.extend(page.entries.into_iter().flat_map(|(_, cs)| cs));
        cursor = page.cursor;
        more = page.more;
        if !more {
            break;
        }
    }
    for full in [false, true] {
        let page = s.feed(&cursor, full).await.unwrap().unwrap();
        assert!(page.entries.is_empty(), "{full}: {page:?}");
    }
    out
}

/// Platform findings published beside the judgements (`feed::publish`): another replica
/// reads them from the feed, a session's in the session's bucket, numbered after the
/// judgement entry there by the same counter (no gap, nothing numbered twice). Published
/// twice — the call sent again after its answer was lost — and again later with other times
/// (a replica that found them again), they are in the feed each time, and a store that writes
/// every entry read holds each finding once, with the fields it was first published with.
async fn platform_findings_published_twice_are_stored_once(backend: Backend) {
    use claimcheck::event::FindingKind;
    use claimcheck::state::Delivery;
    use claimcheck::state::shared::keys::finding_bucket;
    use claimcheck::store::{Commit, FindingFilter, FindingWrite, NewFinding, Store};
    let prefix = backend.keys().prefix().to_owned();
    let mut a = shared(config(), backend.urls(), &prefix, "a");
    let b = shared(config(), backend.urls(), &prefix, "b");
    a.announce(&[0], NOW).await.unwrap();
    let t = NOW.millis();
    let dispatch = Event {
        kind: EventKind::Dispatch,
        worker: None,
        version: None,
        ..claim("s-drift", t, "")
    };
    let applied = a
        .apply(Delivery {
            input: 0,
            now: NOW,
            backlog: Some(false),
            events: vec![(dispatch, Origin { input: 0, line: 1 })],
        })
        .await
        .unwrap();
    assert!(
        applied
            .changes
            .iter()
            .any(|c| matches!(c, Change::Dispatched { .. })),
        "{applied:?}"
    );
    let drift = |at: i64| {
        FindingWrite::Found(NewFinding {
            kind: FindingKind::FlagDrift,
            key: "s-drift".into(),
            session: Some("s-drift".into()),
            org: Some("org_a".into()),
            runner: "ts",
            found_at: Timestamp(at),
            detail: Some(format!("found at {at}")),
        })
    };
    let missing = |at: i64| {
        FindingWrite::Found(NewFinding {
            kind: FindingKind::MissingFromLogs,
            key: "lost-1".into(),
            session: Some("lost-1".into()),
            org: Some("org_a".into()),
            runner: "unknown",
            found_at: Timestamp(at),
            detail: None,
        })
    };
    let resolved = |at: i64| FindingWrite::Resolved {
        kind: FindingKind::MissingFromLogs,
        key: "lost-1".into(),
        at: Timestamp(at),
    };
    let malformed = FindingWrite::Found(NewFinding {
        kind: FindingKind::MalformedFlag,
        key: format!("org_c\nGo\n{t}"),
        session: None,
        org: Some("org_c".into()),
        runner: "ts",
        found_at: Timestamp(t),
        detail: Some("runner_default = Go (read as ts)".into()),
    });
    let first = vec![
        drift(t + 5),
        missing(t + 1),
        malformed.clone(),
        resolved(t + 9),
    ];
    a.publish(&first).await.unwrap();
    a.publish(&first).await.unwrap();
    let later = vec![drift(t + 500), missing(t + 501), resolved(t + 600)];
    a.publish(&later).await.unwrap();

    // Read by the other replica as serve reads it, page after page.
    let mut cursor = FeedCursor::default();
    let mut read = Vec::new();
    let mut changes = Vec::new();
    loop {
        let page = b.feed(&cursor, true).await.unwrap().unwrap();
        assert_eq!(page.gaps, 0);
        read.extend(page.findings);
        changes.extend(page.entries.into_iter().flat_map(|(_, cs)| cs));
        cursor = page.cursor;
        if !page.more {
            break;
        }
    }
    assert!(
        changes.iter().any(
            |c| matches!(c, Change::Dispatched { session, .. } if session.as_str() == "s-drift")
        ),
        "{changes:?}"
    );
    let of = |key: &str| -> Vec<FindingWrite> {
        read.iter().filter(|f| f.key() == key).cloned().collect()
    };
    assert_eq!(of("s-drift"), [drift(t + 5), drift(t + 5), drift(t + 500)]);
    assert_eq!(
        of("lost-1"),
        [
            missing(t + 1),
            resolved(t + 9),
            missing(t + 1),
            resolved(t + 9),
            missing(t + 501),
            resolved(t + 600)
        ],
        "in the order published"
    );
    assert_eq!(of(malformed.key()), [malformed.clone(), malformed.clone()]);
    assert_eq!(read.len(), 11);
    // The drift is numbered after the dispatch's judgement in the session's bucket.
    let b_drift = finding_bucket("s-drift");
    let mut conn = backend.redis().conn().await.unwrap();
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(backend.keys().feed(b_drift))
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    let numbers: Vec<(String, String)> = entries
        .iter()
        .map(|(_, fields)| {
            let n = fields.iter().find(|(f, _)| f == "n").unwrap().1.clone();
            let what = if fields.iter().any(|(f, _)| f == "p") {
                "finding"
            } else {
                "judgement"
            };
            (n, what.to_owned())
        })
        .collect();
    let want: Vec<(String, String)> = ["judgement", "finding", "finding", "finding"]
        .iter()
        .zip(1..)
        .map(|(w, n)| (n.to_string(), (*w).to_owned()))
        .collect();
    assert_eq!(numbers, want, "bucket {b_drift}");

    // Every entry read written to a store, in order: each finding once, as first published.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s.db").to_str().unwrap())
        .await
        .unwrap();
    let writes = read.clone();
    store
        .commit(&Commit {
            findings: writes,
            ..Commit::default()
        })
        .await
        .unwrap();
    let stored = store.findings(&FindingFilter::default()).await.unwrap();
    let got: Vec<_> = stored
        .findings
        .iter()
        .map(|f| {
            (
                f.kind,
                f.session.clone(),
                f.org.clone(),
                f.runner.clone(),
                f.found_at,
                f.resolved_at,
                f.detail.clone(),
            )
        })
        .collect();
    let o = |s: &str| Some(s.to_owned());
    assert_eq!(
        got,
        [
            (
                FindingKind::MalformedFlag,
                None,
                o("org_c"),
                "ts".to_owned(),
                Timestamp(t),
                None,
                o("runner_default = Go (read as ts)")
            ),
            (
                FindingKind::MissingFromLogs,
                o("lost-1"),
                o("org_a"),
                "unknown".to_owned(),
                Timestamp(t + 1),
                Some(Timestamp(t + 9)),
                None
            ),
            (
                FindingKind::FlagDrift,
                o("s-drift"),
                o("org_a"),
                "ts".to_owned(),
                Timestamp(t + 5),
                None,
                Some(format!("found at {}", t + 5))
            ),
        ]
    );
}

/// A replica killed after storing its batches and before judging them loses nothing: its
/// records wait as arrivals, and another replica's tick takes them in, each once, with the
/// receive times they were stored with; the outcomes are `verify`'s.
async fn a_dead_replicas_arrivals_are_taken_in(backend: Backend) {
    let w = workload();
    let (redis, keys) = (backend.redis(), backend.keys());
    let mut end = NOW;
    // The dead replica: stored every batch, judged none.
    for d in schedule(w, Order::Random(31)) {
        end = end.max(d.now);
        events::store(&redis, &keys, &mut Memo::new("test"), &d.events, d.now)
            .await
            .unwrap();
    }
    let mut b = shared(config(), backend.urls(), keys.prefix(), "b");
    let end = end.saturating_add_ms(10 * 60 * SEC);
    let changes = b.tick(end).await.unwrap();
    let mut said = Said::new();
    fold(&mut said, &changes);
    assert_same(&said, &reference(w), "taken over");
    assert_eq!(u64::from(reclaims(&changes)), w.truth.reclaims);
    let t = b.totals().await.unwrap();
    assert_eq!(t.overdue, w.truth.unclaimed + w.truth.pending, "{t:?}");
    assert_eq!(t.pending, 0, "{t:?}");
    assert_eq!(b.tick(end).await.unwrap(), Vec::new(), "each taken in once");
}

/// Origins across replicas: each replica numbers its own sources from 0 (a's dispatch logs and
/// b's workers' logs are each its inputs 0 and 1). A session's records, read on either
/// replica, cite the file and line each came from: this replica's input, or the other's
/// source by name.
async fn origins_read_back_on_every_replica(backend: Backend) {
    let w = workload();
    let prefix = backend.keys().prefix().to_owned();
    let mut a = shared(config(), backend.urls(), &prefix, "a");
    let mut b = shared(config(), backend.urls(), &prefix, "b");
    a.announce(&[0, 1], NOW).await.unwrap();
    b.announce(&[0, 1], NOW).await.unwrap();
    let mut changes = Vec::new();
    let mut end = NOW;
    for mut d in schedule(w, Order::Random(41)) {
        end = end.max(d.now);
        // Workload file i is a's input i (0, 1) or b's input i - 2 (2, 3).
        let (s, base) = if d.input < 2 {
            (&mut a, 0)
        } else {
            (&mut b, 2)
        };
        d.input -= base;
        for (_, o) in &mut d.events {
            o.input -= base;
        }
        changes.extend(s.apply(d).await.unwrap().changes);
    }
    let end = end.saturating_add_ms(10 * 60 * SEC);
    changes.extend(a.tick(end).await.unwrap());
    changes.extend(b.tick(end).await.unwrap());
    let judged: Vec<SessionId> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Judged { session, .. } => Some(session.clone()),
            _ => None,
        })
        .take(100)
        .collect();
    assert_eq!(judged.len(), 100);
    let mut remote = [0, 0];
    for id in &judged {
        for (n, (me, s)) in [("a", &a), ("b", &b)].into_iter().enumerate() {
            let st = s.session(id).await.unwrap().expect("held");
            for r in &st.records {
                let (who, input) = match &r.source {
                    None => (me, r.origin.input),
                    Some(name) => {
                        remote[n] += 1;
                        let (who, input) = name.split_once('/').unwrap();
                        (who, input.parse::<u16>().unwrap())
                    }
                };
                let file = usize::from(input) + if who == "a" { 0 } else { 2 };
                let e = &w.sources[file][r.origin.line as usize - 1];
                assert_eq!(
                    (e.kind, e.time),
                    (r.kind, r.time),
                    "{id} on {me}: {r:?} cites another event"
                );
            }
        }
    }
    assert!(remote.iter().all(|&n| n > 0), "{remote:?}");
}

/// Post-flip reports shared by the replicas (`reports.rs`): a flip added twice is there once,
/// as first added; each replica's share is read back by instance; the replicas that named
/// sources and gave no share are told with their sources' names (one not heard from within
/// the retention is not waited for); of two replicas storing a
/// report at once, exactly one's stands and both read it back.
async fn reports_are_stored_once(backend: Backend) {
    use claimcheck::state::shared::inputs;
    use claimcheck::state::shared::reports::{self, SharedReports};
    let keys = backend.keys();
    let replica = |instance: &str| {
        let config = SharedConfig {
            instances: Vec::new(),
            urls: backend.urls(),
            prefix: keys.prefix().to_owned(),
            instance: instance.to_owned(),
            timeouts: PATIENT,
            lease: std::time::Duration::from_secs(10),
            wait: None,
        };
        SharedReports::new(&config, 60_000).unwrap()
    };
    let (a, b) = (replica("a"), replica("b"));
    a.add_flip("1-x", "first").await.unwrap();
    b.add_flip("1-x", "second").await.unwrap();
    let flips = b.flips().await.unwrap();
    assert_eq!(
        flips.into_iter().collect::<Vec<_>>(),
        [("1-x".into(), "first".into())]
    );

    let redis = backend.redis();
    let ids = inputs::register(
        &redis,
        &keys,
        &[
            ("a/0".into(), Some("dispatch.log")),
            ("b/0".into(), Some("go.log")),
            ("b/1".into(), None),
        ],
    )
    .await
    .unwrap();
    // Heard from now, except a replica gone for longer than the retention (60 s here).
    let now = claimcheck::clock::Clock::system().now();
    let heard = |source: &str, at: Timestamp| News {
        source: source.to_owned(),
        high: None,
        now: at,
        backlog: Some(false),
    };
    let gone = inputs::register(&redis, &keys, &[("c/0".into(), Some("old.log"))])
        .await
        .unwrap();
    assert_eq!(gone.len(), 1);
    watermarks::merge(
        &redis,
        &keys,
        &[
            heard("a/0", now),
            heard("b/0", now),
            heard("b/1", now),
            heard("c/0", now.saturating_add_ms(-61_000)),
        ],
    )
    .await
    .unwrap();
    a.share("1-x", "a's share").await.unwrap();
    let shares = b.shares("1-x").await.unwrap();
    assert_eq!(
        shares.iter().collect::<Vec<_>>(),
        [(&"a".to_owned(), &"a's share".to_owned())]
    );
    let sources = b.sources(now).await.unwrap();
    let gave: std::collections::BTreeSet<String> = shares.into_keys().collect();
    let (missing, names) = reports::absent(&sources, &gave);
    assert_eq!(missing.into_iter().collect::<Vec<_>>(), ["b"]);
    assert_eq!(names, ["go.log".to_owned(), format!("b/{}", ids[2])]);
    b.share("1-x", "b's share").await.unwrap();
    let gave: std::collections::BTreeSet<String> =
        a.shares("1-x").await.unwrap().into_keys().collect();
    assert!(reports::absent(&sources, &gave).0.is_empty());

    assert_eq!(a.report("1-x").await.unwrap(), None);
    let (ra, rb) = tokio::join!(
        a.settle("1-x", Timestamp(5), "{\"by\":\"a\"}"),
        b.settle("1-x", Timestamp(6), "{\"by\":\"b\"}")
    );
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert!(ra.0 != rb.0, "exactly one stored it: {ra:?} {rb:?}");
    assert_eq!(ra.1, rb.1, "both read the one that stands");
    assert_eq!(b.report("1-x").await.unwrap(), Some(ra.1));
    a.drop_flips(&["1-x".to_owned()]).await.unwrap();
    assert!(b.flips().await.unwrap().is_empty());
}

/// A replica whose answers are lost — the connection cut after the server ran its batch's
/// store or its commit, before the answer got back (`lossy_link.rs`) — sends the call again
/// as `serve` does, and loses and doubles nothing: its batches' events are told new as the
/// first time (not re-delivered to themselves), and the changes of commits it never heard of
/// are still its own to return, so the two replicas' changes summed are `verify`'s and the
/// shared counts those of one state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_lost_after_the_server_ran_the_call_lose_and_double_nothing() {
    let p = Prefix::new("lossy");
    let link =
        super::lossy_link::LossyLink::start("127.0.0.1:6379", &["cutme:a", "cutme:j"], 100, 60);
    let w = workload();
    let mut a = shared(config(), vec![link.url()], &p.0, "cutme");
    let mut b = shared(config(), vec![STANDALONE.to_owned()], &p.0, "b");
    // Sent again until it is answered, as serve's actor does (bounded: a cut is rare).
    macro_rules! again {
        ($call:expr) => {{
            let mut tries = 0;
            loop {
                tries += 1;
                assert!(tries <= 20, "still failing after 20 tries");
                match $call.await {
                    Ok(t) => break t,
                    Err(e) => eprintln!("try {tries}: {e}"),
                }
            }
        }};
    }
    again!(a.announce(&[0, 1], NOW));
    b.announce(&[2, 3], NOW).await.unwrap();
    let mut all: Vec<Delivery> = schedule(w, Order::Random(21));
    all.sort_by_key(|d| d.now);
    let (mut changes, mut fresh, mut sent) = (Vec::new(), 0u64, 0u64);
    let mut end = NOW;
    let mut core = Correlator::new(CorrelateConfig::default());
    for d in all {
        end = end.max(d.now);
        sent += d.events.len() as u64;
        for (e, origin) in &d.events {
            core.on_event(e.clone(), *origin);
        }
        let applied = if d.input < 2 {
            again!(a.apply(d.clone()))
        } else {
            b.apply(d).await.unwrap()
        };
        fresh += applied.fates.iter().filter(|f| f.is_fresh()).count() as u64;
        changes.extend(applied.changes);
    }
    let end = end.saturating_add_ms(10 * 60 * SEC);
    changes.extend(b.tick(end).await.unwrap());
    changes.extend(again!(a.tick(end)));
    eprintln!("{} of {} calls cut", link.cuts(), link.seen());
    assert!(link.cuts() >= 10, "only {} answers lost", link.cuts());
    let mut said = Said::new();
    fold(&mut said, &changes);
    assert_same(&said, &reference(w), "answers lost");
    let redis = Redis::new(vec![STANDALONE.to_owned()], PATIENT);
    let counts = events::counts(&redis, &Keys::new(&p.0).unwrap())
        .await
        .unwrap();
    assert_eq!(counts.events + counts.redelivered, sent, "{counts:?}");
    assert_eq!(
        counts.events, fresh,
        "events told new, against those stored"
    );
    let stats = core.stats();
    assert_eq!(counts.events, stats.events.iter().sum::<u64>());
    assert_eq!(counts.redelivered, stats.duplicates);
}

/// A source whose events are on their way is not idle, though its replica said it has read
/// to the end: replica c's store call for its go log's last batch is held (a starved
/// sidecar, a slow call) for longer than `idle_after`, and replica d, which sweeps every
/// bucket meanwhile, must not judge without those events. The held batch holds the go claim
/// that makes the session matched; c's ts log, still reading, already gave a ts claim of it
/// stamped later, and a later event that moves its watermark on: judged without the go
/// claim, the session is mismatched. Each part of a batch cut into several says behind but
/// the last (`serve/ingest.rs`), so this covers a batch's last parts too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_is_not_idle_while_its_events_are_on_their_way() {
    let p = Prefix::new("held");
    let link = super::lossy_link::LossyLink::holding("127.0.0.1:6379", "c:a");
    let mut c = shared(config(), vec![link.url()], &p.0, "c");
    let mut d = shared(config(), vec![STANDALONE.to_owned()], &p.0, "d");
    let on = |runner: Runner, e: Event| Event { runner, ..e };
    let t0 = NOW.millis();
    // c: the go daemon's log (input 0) and the ts worker's (input 1); d: the dispatcher's.
    c.announce(&[0, 1], NOW).await.unwrap();
    d.announce(&[0], NOW).await.unwrap();
    // d sweeps every bucket (it takes the leases first).
    let mut changes = d.tick(NOW).await.unwrap();
    let dispatched = d.apply(delivery(
        0,
        t0 + SEC,
        false,
        vec![dispatch("s-x", Runner::Go, t0)],
    ));
    changes.extend(dispatched.await.unwrap().changes);
    let ts = vec![
        on(Runner::Ts, claim("s-x", t0 + 2 * SEC, "ts-1")),
        on(Runner::Ts, claim("s-later", t0 + 100 * SEC, "ts-2")),
    ];
    changes.extend(
        c.apply(delivery(1, t0 + SEC, true, ts))
            .await
            .unwrap()
            .changes,
    );
    // The go log's last batch: read to the end, its store held.
    link.hold_next();
    let go = delivery(0, t0 + 2 * SEC, false, vec![claim("s-x", t0 + SEC, "go-1")]);
    let held = tokio::spawn(async move {
        let applied = c.apply(go).await;
        (c, applied)
    });
    assert!(
        tokio::task::block_in_place(|| link.held(std::time::Duration::from_secs(30))),
        "c's store call never came"
    );
    changes.extend(d.tick(Timestamp(t0 + 10 * SEC)).await.unwrap());
    assert_eq!(
        judged(&changes, "s-x"),
        None,
        "judged while c's go claim was on its way"
    );
    link.release();
    let (mut c, applied) = held.await.unwrap();
    changes.extend(applied.unwrap().changes);
    // The ts log read to the end too: everything settles.
    let caught_up = c.apply(delivery(1, t0 + 11 * SEC, false, Vec::new()));
    changes.extend(caught_up.await.unwrap().changes);
    changes.extend(d.tick(Timestamp(t0 + 20 * SEC)).await.unwrap());
    changes.extend(c.tick(Timestamp(t0 + 20 * SEC)).await.unwrap());
    assert_eq!(
        judged(&changes, "s-x"),
        Some(Outcome::Matched),
        "{changes:#?}"
    );
}

/// With the replicas named (`[cluster] instances`), one that joins late finds nothing
/// judged without its evidence: replica a (the dispatcher's log and the go daemon's) has
/// read everything and gone idle before b (the ts worker's) first starts. b's ts claim
/// makes the session matched; judged on a's evidence alone, a go claim stamped later makes
/// it mismatched. Unnamed, a judges it as soon as its sources are idle (the known limit the
/// setting is for).
#[tokio::test]
async fn a_named_replica_that_joins_late_is_waited_for() {
    let p = Prefix::new("late");
    let replica = |instance: &str| {
        SharedState::new(
            config(),
            SharedConfig {
                instances: vec!["a".to_owned(), "b".to_owned()],
                urls: vec![STANDALONE.to_owned()],
                prefix: p.0.clone(),
                instance: instance.to_owned(),
                timeouts: PATIENT,
                lease: std::time::Duration::from_secs(10),
                wait: None,
            },
        )
        .unwrap()
    };
    let (mut a, mut b) = (replica("a"), replica("b"));
    let t0 = NOW.millis();
    a.announce(&[0, 1], NOW).await.unwrap();
    let mut changes = a.tick(NOW).await.unwrap();
    let go = vec![
        claim("s-x", t0 + 2 * SEC, "go-1"),
        claim("s-far", t0 + 100 * SEC, "go-2"),
    ];
    for d in [
        delivery(0, t0 + SEC, false, vec![dispatch("s-x", Runner::Ts, t0)]),
        delivery(1, t0 + SEC, false, go),
    ] {
        changes.extend(a.apply(d).await.unwrap().changes);
    }
    changes.extend(a.tick(Timestamp(t0 + 10 * SEC)).await.unwrap());
    assert_eq!(judged(&changes, "s-x"), None, "judged before b joined");
    b.announce(&[0], Timestamp(t0 + 11 * SEC)).await.unwrap();
    let ts = Event {
        runner: Runner::Ts,
        ..claim("s-x", t0 + SEC, "ts-1")
    };
    let joined = b.apply(delivery(0, t0 + 11 * SEC, false, vec![ts]));
    changes.extend(joined.await.unwrap().changes);
    changes.extend(a.tick(Timestamp(t0 + 20 * SEC)).await.unwrap());
    changes.extend(b.tick(Timestamp(t0 + 20 * SEC)).await.unwrap());
    assert_eq!(
        judged(&changes, "s-x"),
        Some(Outcome::Matched),
        "{changes:#?}"
    );
}

/// A replica that died while its source was behind (in the middle of a batch, or catching
/// up) holds the others' judgements back only until it has given no sign of life for
/// `max_hold`: its ticks are signs of life, and a session first seen after it died is then
/// judged on settled evidence, not held until its own `max_hold` runs out.
#[tokio::test]
async fn a_dead_replicas_behind_source_holds_nothing_back_after_max_hold() {
    let p = Prefix::new("dead");
    let mut c = shared(config(), vec![STANDALONE.to_owned()], &p.0, "c");
    let mut d = shared(config(), vec![STANDALONE.to_owned()], &p.0, "d");
    let t0 = NOW.millis();
    d.announce(&[0, 1], NOW).await.unwrap();
    let mut changes = d.tick(NOW).await.unwrap();
    c.announce(&[0], NOW).await.unwrap();
    // c's source says it has more to read; c delivers nothing more, ticks once, and dies.
    let behind = c.apply(delivery(
        0,
        t0 + SEC,
        true,
        vec![claim("s-c", t0 + SEC, "go-c")],
    ));
    changes.extend(behind.await.unwrap().changes);
    changes.extend(c.tick(Timestamp(t0 + 40 * SEC)).await.unwrap());
    drop(c);
    // d: a session dispatched and claimed at 50 s, and both of its sources far on.
    let dispatches = vec![
        dispatch("s-y", Runner::Go, t0 + 50 * SEC),
        dispatch("s-z", Runner::Go, t0 + 200 * SEC),
    ];
    let claims = vec![
        claim("s-y", t0 + 51 * SEC, "go-d"),
        claim("s-z", t0 + 201 * SEC, "go-d"),
    ];
    for d_ in [
        delivery(0, t0 + 50 * SEC, false, dispatches),
        delivery(1, t0 + 50 * SEC, false, claims),
    ] {
        changes.extend(d.apply(d_).await.unwrap().changes);
    }
    // c's last sign of life was 22 s ago: its source still holds the watermark.
    changes.extend(d.tick(Timestamp(t0 + 62 * SEC)).await.unwrap());
    assert_eq!(
        judged(&changes, "s-y"),
        None,
        "judged while c could be alive"
    );
    // 61 s: c is dead, s-y (seen 51 s ago, within its own hold) is judged as settled.
    let late = d.tick(Timestamp(t0 + 101 * SEC)).await.unwrap();
    assert!(
        !late
            .iter()
            .any(|c| matches!(c, Change::JudgedBeforeSettled)),
        "{late:#?}"
    );
    changes.extend(late);
    assert_eq!(
        judged(&changes, "s-y"),
        Some(Outcome::Matched),
        "{changes:#?}"
    );
}

mod standalone {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reports_are_stored_once() {
        super::reports_are_stored_once(standalone("reports")).await;
    }

    #[tokio::test]
    async fn platform_findings_published_twice_are_stored_once() {
        super::platform_findings_published_twice_are_stored_once(standalone("platform")).await;
    }

    #[tokio::test]
    async fn origins_read_back_on_every_replica() {
        super::origins_read_back_on_every_replica(standalone("origins")).await;
    }

    #[tokio::test]
    async fn a_dead_replicas_arrivals_are_taken_in() {
        super::a_dead_replicas_arrivals_are_taken_in(standalone("dead")).await;
    }

    #[tokio::test]
    async fn two_replicas_count_each_outcome_once() {
        super::two_replicas_count_each_outcome_once(standalone("two"), false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_replicas_at_once_count_each_outcome_once() {
        super::two_replicas_count_each_outcome_once(standalone("two-at-once"), true).await;
    }

    #[tokio::test]
    async fn fates_agree_with_the_correlator() {
        agrees_with_the_correlator(standalone("agree")).await;
    }

    #[tokio::test]
    async fn the_earliest_origin_is_kept() {
        keeps_the_earliest_origin(standalone("origin")).await;
    }

    #[tokio::test]
    async fn one_replica_stores_each_event_once() {
        one_replica_stores_each_event(standalone("race")).await;
    }

    #[tokio::test]
    async fn watermarks_agree_with_the_in_process_rules() {
        super::watermarks_agree_with_the_in_process_rules(standalone("wm")).await;
    }

    #[tokio::test]
    async fn leases_have_one_holder() {
        super::leases_have_one_holder(standalone("lease")).await;
    }

    /// A reader of the feed whose last entry read was taken back by a failover (`XDEL` here,
    /// and the next entry numbered as the one taken back) reads again from the last entry
    /// left, and entries trimmed before it read them are told as a gap; what is left is read
    /// either way.
    #[tokio::test]
    async fn the_feed_is_read_again_after_a_failover_and_gaps_are_told() {
        let p = Prefix::new("feed");
        let keys = Keys::new(&p.0).unwrap();
        let redis = Redis::new(vec![STANDALONE.to_owned()], PATIENT);
        let mut conn = redis.conn().await.unwrap();
        let b = 7;
        // Entry `total` (its change's), numbered `n` in the bucket as judge.lua numbers them.
        let mut add = async |total: u32, n: u32| -> String {
            let c = Change::Reclaimed {
                first_seen: Timestamp(0),
                session: SessionId::new("s").unwrap(),
                runtime: Runner::Go,
                total,
            };
            let e = feed::encode(&[c], Timestamp(i64::from(total))).unwrap();
            redis::cmd("XADD")
                .arg(keys.feed(b))
                .arg("*")
                .arg("n")
                .arg(n)
                .arg("e")
                .arg(e)
                .query_async(&mut conn)
                .await
                .unwrap()
        };
        let totals = |page: &FeedPage| -> Vec<u32> {
            page.entries
                .iter()
                .flat_map(|(_, cs)| cs)
                .map(|c| match c {
                    Change::Reclaimed { total, .. } => *total,
                    _ => 0,
                })
                .collect()
        };
        let mut ids = Vec::new();
        for n in 1..=3 {
            ids.push(add(n, n).await);
        }
        let first = feed::read(&redis, &keys, &FeedCursor::default(), true)
            .await
            .unwrap();
        assert_eq!((totals(&first), first.gaps), (vec![1, 2, 3], 0));
        assert_eq!(first.cursor.buckets.get(&b), Some(&format!("{} 3", ids[2])));

        let mut conn = redis.conn().await.unwrap();
        let _: i64 = redis::cmd("XDEL")
            .arg(keys.feed(b))
            .arg(&ids[2])
            .query_async(&mut conn)
            .await
            .unwrap();
        ids.push(add(4, 3).await);
        let again = feed::read(&redis, &keys, &first.cursor, true)
            .await
            .unwrap();
        assert_eq!(
            (totals(&again), again.gaps),
            (vec![4], 0),
            "after entry 2, the last left"
        );

        add(5, 4).await;
        let six = add(6, 5).await;
        let _: i64 = redis::cmd("XTRIM")
            .arg(keys.feed(b))
            .arg("MINID")
            .arg(&six)
            .query_async(&mut conn)
            .await
            .unwrap();
        let gap = feed::read(&redis, &keys, &again.cursor, true)
            .await
            .unwrap();
        assert_eq!(
            (totals(&gap), gap.gaps),
            (vec![6], 1),
            "entry 5 trimmed unread"
        );
        assert_eq!(gap.cursor.buckets.get(&b), Some(&format!("{six} 5")));
    }

    /// With `wait_replicas`, a delivery returns only once that many Redis replicas have its
    /// writes (`WAIT`): the shared server has none, so it fails `Unavailable` (and `serve`
    /// applies it again, acknowledging nothing meanwhile); without it, the same delivery is
    /// taken (as a re-delivery: the first attempt's writes are there).
    #[tokio::test]
    async fn wait_replicas_refuses_a_batch_no_replica_has() {
        let p = Prefix::new("wait");
        let make = |wait| {
            SharedState::new(
                config(),
                SharedConfig {
                    instances: Vec::new(),
                    urls: vec![STANDALONE.to_owned()],
                    prefix: p.0.clone(),
                    instance: "a".into(),
                    timeouts: PATIENT,
                    lease: std::time::Duration::from_secs(10),
                    wait,
                },
            )
            .unwrap()
        };
        let d = schedule(workload(), Order::Random(3)).remove(0);
        let mut waiting = make(Some(Wait {
            replicas: 1,
            timeout: std::time::Duration::from_millis(100),
        }));
        let refused = waiting.apply(d.clone()).await;
        assert!(
            matches!(&refused, Err(claimcheck::state::StateError::Unavailable(m)) if m.contains("0 of 1 Redis replicas")),
            "{refused:?}"
        );
        let applied = make(None).apply(d.clone()).await.unwrap();
        assert_eq!(applied.fates.len(), d.events.len());
        assert!(applied.fates.iter().all(|f| !f.is_fresh()), "{applied:?}");
    }
}

/// A Redis outage longer than `idle_after`: afterwards every source's last news is old,
/// because nobody could give any, and a replica applies what queued meanwhile one batch after
/// another. The replica back first must not take the other's sources for idle and judge on
/// its own evidence alone: here b's claim, whose dispatch waits in a's queue behind a batch
/// of a's other source, is matched once a applies it, never judged an orphan. Without the
/// grace after a reconnection b judges it an orphan as soon as it is back; without a's
/// sources published as behind until a has nothing waiting, once the grace has passed.
#[tokio::test]
async fn a_long_outage_judges_no_claim_before_the_other_replica_is_back() {
    let mut server = super::redis_cluster::RedisServer::start();
    let urls = vec![server.url()];
    let (mut a, mut b) = (
        shared(config(), urls.clone(), "outage", "a"),
        shared(config(), urls, "outage", "b"),
    );
    let delivery = |input: u16, now: i64, events: Vec<Event>| delivery(input, now, false, events);
    let dispatch = |id: &str, time: i64| dispatch(id, Runner::Go, time);
    let t0 = NOW.millis();
    let far = t0 + 10 * 60 * SEC;
    // a: the dispatcher's log (input 0) and the drain (input 1); b: the go daemon's log.
    a.announce(&[0, 1], NOW).await.unwrap();
    b.announce(&[0], NOW).await.unwrap();
    // b sweeps every bucket (it takes the leases first): its ticks judge what a holds back.
    let mut changes = b.tick(NOW).await.unwrap();
    for input in [0, 1] {
        let d = delivery(
            input,
            t0 + SEC,
            vec![dispatch(&format!("s-early{input}"), t0)],
        );
        changes.extend(a.apply(d).await.unwrap().changes);
    }
    server.kill();
    // Queued in a meanwhile: the dispatcher's batch (far on in event time), then the
    // drain's, which holds the dispatch of b's claim.
    let first = delivery(0, t0 + 2 * SEC, vec![dispatch("s-x", far)]);
    let second = delivery(1, t0 + 2 * SEC, vec![dispatch("s-late", t0 + 500)]);
    assert!(a.apply(first.clone()).await.is_err(), "a's batch waits");
    assert!(b.tick(Timestamp(t0 + 3 * SEC)).await.is_err());
    server.restart();
    // A minute later b is back first, with a claim of the session a holds and one far on
    // in event time (b's watermark moves past the first claim's orphan grace).
    let back = t0 + 60 * SEC;
    let claims = vec![claim("s-late", t0 + SEC, "w1"), claim("s-far", far, "w2")];
    changes.extend(b.apply(delivery(0, back, claims)).await.unwrap().changes);
    changes.extend(b.tick(Timestamp(back + SEC)).await.unwrap());
    let orphan = |changes: &[Change]| {
        changes
            .iter()
            .any(|c| matches!(c, Change::Orphan { session, .. } if session.as_str() == "s-late"))
    };
    assert!(!orphan(&changes), "judged before a was back: {changes:#?}");
    // a gets back within the retry cap, its first batch stamped when it is taken; the
    // drain's waits behind it for longer than the grace and `idle_after` together.
    let mut again = first;
    again.now = Timestamp(back + 4 * SEC);
    changes.extend(a.apply(again).await.unwrap().changes);
    changes.extend(b.tick(Timestamp(back + 30 * SEC)).await.unwrap());
    assert!(
        !orphan(&changes),
        "judged while a's queue held its dispatch: {changes:#?}"
    );
    let mut second = second;
    second.now = Timestamp(back + 31 * SEC);
    changes.extend(a.apply(second).await.unwrap().changes);
    a.caught_up(Timestamp(back + 32 * SEC)).await.unwrap();
    let end = Timestamp(back + 20 * 60 * SEC);
    changes.extend(b.tick(end).await.unwrap());
    changes.extend(a.tick(end).await.unwrap());
    assert!(!orphan(&changes), "{changes:#?}");
    let mut said = Said::new();
    fold(&mut said, &changes);
    assert_eq!(
        said.get("s-late").map(|s| s.0),
        Some(Some(Outcome::Matched)),
        "{said:?}"
    );
    assert_eq!(
        said.get("s-far").map(|s| s.3),
        Some(1),
        "a true orphan still is one"
    );
}

/// The index that spares a tick the buckets with nothing to do is a hint: a bucket changed
/// without its summary written (a replica killed between storing its batch and judging it,
/// here) is not swept while the index says it is idle, and is swept — everything in it
/// judged as verify judges it — at the replica's next lease renewal (a third of the lease).
#[tokio::test]
async fn a_stale_index_waits_only_until_the_lease_renewal() {
    let w = workload();
    let p = Prefix::new("index");
    let keys = Keys::new(&p.0).unwrap();
    let lease = std::time::Duration::from_millis(600);
    let mut b = SharedState::new(
        config(),
        SharedConfig {
            instances: Vec::new(),
            urls: vec![STANDALONE.to_owned()],
            prefix: p.0.clone(),
            instance: "b".into(),
            timeouts: PATIENT,
            lease,
            wait: None,
        },
    )
    .unwrap();
    // b takes its leases and sweeps every bucket: the index says each is idle.
    assert_eq!(b.tick(NOW).await.unwrap(), Vec::new());
    let redis = Redis::new(vec![STANDALONE.to_owned()], PATIENT);
    let mut end = NOW;
    for d in schedule(w, Order::Random(51)) {
        end = end.max(d.now);
        events::store(&redis, &keys, &mut Memo::new("test"), &d.events, d.now)
            .await
            .unwrap();
    }
    let end = end.saturating_add_ms(10 * 60 * SEC);
    let renewed = std::time::Instant::now() + lease / 3;
    let mut changes = b.tick(end).await.unwrap();
    if std::time::Instant::now() < renewed {
        assert_eq!(changes, Vec::new(), "swept although the index says idle");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while changes.is_empty() && std::time::Instant::now() < deadline {
        super::support::pace(lease / 10);
        changes = b.tick(end).await.unwrap();
    }
    let mut said = Said::new();
    fold(&mut said, &changes);
    assert_same(&said, &reference(w), "swept at the renewal");
    assert_eq!(b.tick(end).await.unwrap(), Vec::new(), "each taken in once");
}

mod cluster {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reports_are_stored_once() {
        super::reports_are_stored_once(cluster()).await;
    }

    #[tokio::test]
    async fn platform_findings_published_twice_are_stored_once() {
        super::platform_findings_published_twice_are_stored_once(cluster()).await;
    }

    #[tokio::test]
    async fn origins_read_back_on_every_replica() {
        super::origins_read_back_on_every_replica(cluster()).await;
    }

    #[tokio::test]
    async fn a_dead_replicas_arrivals_are_taken_in() {
        super::a_dead_replicas_arrivals_are_taken_in(cluster()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_replicas_at_once_count_each_outcome_once() {
        super::two_replicas_count_each_outcome_once(cluster(), true).await;
    }

    #[tokio::test]
    async fn fates_agree_with_the_correlator() {
        agrees_with_the_correlator(cluster()).await;
    }

    #[tokio::test]
    async fn the_earliest_origin_is_kept() {
        keeps_the_earliest_origin(cluster()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_replica_stores_each_event_once() {
        one_replica_stores_each_event(cluster()).await;
    }

    #[tokio::test]
    async fn watermarks_agree_with_the_in_process_rules() {
        super::watermarks_agree_with_the_in_process_rules(cluster()).await;
    }

    #[tokio::test]
    async fn leases_have_one_holder() {
        super::leases_have_one_holder(cluster()).await;
    }

    /// All of a bucket's keys hash to one slot (a script may touch them all), and the 256
    /// buckets fall on every master.
    #[test]
    fn buckets_are_slots_spread_over_every_master() {
        let c = RedisCluster::start(3, 0);
        let keys = Keys::new("cc").unwrap();
        let client = redis::Client::open(c.urls()[0].as_str()).unwrap();
        let mut conn = client.get_connection().unwrap();
        let mut slot = |key: &str| -> u16 {
            redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(key)
                .query(&mut conn)
                .unwrap()
        };
        let id = SessionId::new("sess-{x}-1").unwrap();
        let b = session_bucket(&id);
        let s = slot(&keys.counts(b));
        assert_eq!(slot(&keys.records(b, &id)), s);
        assert_eq!(slot(&keys.heartbeats(b, Runner::Ts, Some("w{1}"))), s);
        let mut per_master = std::collections::BTreeMap::new();
        for b in 0..BUCKETS {
            *per_master
                .entry(c.owner(&keys.counts(b)).unwrap())
                .or_insert(0) += 1;
        }
        assert_eq!(per_master.len(), 3, "{per_master:?}");
        assert!(per_master.values().all(|&n| n >= 50), "{per_master:?}");
    }

    /// A master SIGKILLed (no replica to take over): storing fails with `Unavailable`, within
    /// the timeouts, never a hang or a panic; restarted, it serves again — empty, as a master
    /// without persistence or replicas comes back (what `wait_replicas` and replicas are for).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_master_lost_is_an_error_then_stores_resume() {
        let mut c = RedisCluster::start(3, 0);
        let keys = Keys::new("cc").unwrap();
        let timeouts = Timeouts {
            connect: std::time::Duration::from_millis(500),
            response: std::time::Duration::from_millis(500),
        };
        let conn = Redis::new(c.urls(), timeouts);
        let batch: Vec<(Event, Origin)> = (0..300)
            .map(|i| {
                (
                    claim(&format!("s{i}"), 1_000, "w"),
                    Origin { input: 0, line: i },
                )
            })
            .collect();
        let fresh = events::store(&conn, &keys, &mut Memo::new("test"), &batch, NOW)
            .await
            .unwrap();
        assert!(fresh.iter().all(|&f| f));
        let on_first: Vec<bool> = batch
            .iter()
            .map(|(e, _)| {
                let id = e.session.as_ref().unwrap();
                c.owner(&keys.records(session_bucket(id), id)) == Some(0)
            })
            .collect();
        assert!(on_first.iter().any(|&x| x) && !on_first.iter().all(|&x| x));
        c.kill(0);
        // From here the batch is retried as serve retries it: with one memo, so a call that
        // was stored before its attempt failed (another bucket's call failing, on a connection
        // not yet remade after the restart) is told again what it was told the first time.
        let mut memo = Memo::new("test");
        let started = std::time::Instant::now();
        let down = events::store(&conn, &keys, &mut memo, &batch, NOW).await;
        assert!(
            matches!(down, Err(claimcheck::state::StateError::Unavailable(_))),
            "{down:?}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
        c.restart(0);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let again = loop {
            match events::store(&conn, &keys, &mut memo, &batch, NOW).await {
                Ok(f) => break f,
                Err(e) => assert!(std::time::Instant::now() < deadline, "{e}"),
            }
            super::super::support::pace(std::time::Duration::from_millis(100));
        };
        assert_eq!(
            again, on_first,
            "only the restarted master's events are new again"
        );
    }
}

/// Commands the cluster's nodes ran since they started: (script calls, every command
/// including those scripts ran), leaving out the cluster's own and this count's.
pub(crate) fn commands(c: &RedisCluster) -> (u64, u64) {
    let (mut scripts, mut all) = (0, 0);
    for i in 0..c.urls().len() {
        let info = c.query(i, &["INFO", "commandstats"]).unwrap_or_default();
        for line in info.lines() {
            let Some((name, rest)) = line
                .strip_prefix("cmdstat_")
                .and_then(|l| l.split_once(":calls="))
            else {
                continue;
            };
            let calls: u64 = rest
                .split(',')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            if name.starts_with("cluster") || ["info", "ping", "hello", "client"].contains(&name) {
                continue;
            }
            if name.starts_with("eval") {
                scripts += calls;
            }
            all += calls;
        }
    }
    (scripts, all)
}

/// Applies simulate's workload (random batches, ≈ 200 events each) through `s`, then ticks
/// past every deadline; returns (events, batches, events/s of the applies).
async fn apply_workload(s: &mut claimcheck::state::shared::SharedState) -> (usize, usize, f64) {
    s.announce(&[0, 1, 2, 3], NOW).await.unwrap();
    let deliveries = schedule(workload(), Order::Random(5));
    let events: usize = deliveries.iter().map(|d| d.events.len()).sum();
    let batches = deliveries.len();
    let start = std::time::Instant::now();
    let mut end = NOW;
    for d in deliveries {
        end = end.max(d.now);
        s.apply(d).await.unwrap();
    }
    let rate = events as f64 / start.elapsed().as_secs_f64();
    s.tick(end.saturating_add_ms(10 * 60 * SEC)).await.unwrap();
    (events, batches, rate)
}

/// The cost of the shared state (issue 13's figures): simulate's workload applied through one
/// `SharedState` on the shared standalone server and on a 3-master cluster of its own.
/// Printed (run with `--no-capture`): events/s, and on the cluster (whose nodes serve only
/// this test) script calls and Redis commands per event. Bounded, so a change that multiplies
/// the round trips fails.
#[tokio::test]
async fn cost_per_event() {
    let p = Prefix::new("cost");
    let mut s = shared(config(), vec![STANDALONE.to_owned()], &p.0, "a");
    let (events, batches, rate) = apply_workload(&mut s).await;
    eprintln!(
        "shared state on standalone Redis: {events} events in {batches} batches, {rate:.0} events/s"
    );
    let c = RedisCluster::start(3, 0);
    let mut s = shared(config(), c.urls(), "cost", "a");
    let used = || -> u64 {
        (0..3)
            .filter_map(|i| c.query(i, &["INFO", "memory"]))
            .filter_map(|info| {
                info.lines()
                    .find_map(|l| l.strip_prefix("used_memory:"))
                    .and_then(|n| n.trim().parse::<u64>().ok())
            })
            .sum()
    };
    let (scripts0, all0) = commands(&c);
    let used0 = used();
    let (events, batches, rate) = apply_workload(&mut s).await;
    let (scripts, all) = commands(&c);
    let per = |n: u64| n as f64 / events as f64;
    let (scripts, all) = (per(scripts - scripts0), per(all - all0));
    eprintln!(
        "shared state on a 3-master cluster: {events} events in {batches} batches, {rate:.0} \
         events/s; per event {scripts:.1} script calls, {all:.1} Redis commands (the scripts' \
         own included)"
    );
    assert!(scripts < 10.0, "{scripts} script calls per event");
    // Redis memory once every session is judged (kept for the retention): in all, and the
    // feed's streams and the memo hashes among it.
    let keys = Keys::new("cost").unwrap();
    let usage = |key: String| -> u64 {
        c.owner(&key)
            .and_then(|i| c.query(i, &["MEMORY", "USAGE", &key, "SAMPLES", "0"]))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    };
    let grown = used().saturating_sub(used0);
    let feed: u64 = (0..BUCKETS).map(|b| usage(keys.feed(b))).sum();
    let memo: u64 = (0..BUCKETS).map(|b| usage(keys.memo(b))).sum();
    let sessions = s.totals().await.unwrap().sessions.max(1);
    eprintln!(
        "Redis memory for {sessions} sessions: {grown} bytes ({} per session), of which the \
         feed {feed} ({} per session) and the memo {memo}",
        grown / sessions,
        feed / sessions
    );
    assert!(feed > 0 && memo > 0, "feed {feed}, memo {memo}");
}
