//! One conformance suite for every store backend: SQLite (a file) and Postgres (a scratch
//! database on the real server) must keep exactly the same things.

use claimcheck::correlate::Outcome;
use claimcheck::event::{Runner, Timestamp};
use claimcheck::report::Totals;
use claimcheck::sources::file::Checkpoint;
use claimcheck::store::{Commit, OutcomeFilter, OutcomeRow, OutcomeWrite, Store, StoredLine};

use crate::scratch_db::ScratchDb;

fn line(session: &str, n: u32, raw: &[u8]) -> StoredLine {
    StoredLine {
        received_at: Timestamp(1_795_428_000_000 + i64::from(n)),
        source: "dispatch.log".into(),
        line: n,
        session: Some(session.into()),
        entry_id: None,
        default_runtime: Some(Runner::Go),
        raw: raw.to_vec(),
    }
}

fn checkpoint(ino: u64, offset: u64) -> Checkpoint {
    Checkpoint {
        dev: 66_306,
        ino,
        born: 1_795_428_000_123_456_789,
        head: b"{\"time\":\x00\xff".to_vec(),
        offset,
        tail_len: 256,
        tail_crc: u32::MAX - 3,
        skipping: offset % 2 == 1,
        source: "/var/log/daemon-*.log".into(),
        path: "/var/log/daemon-2026-11-22.log\u{0}".into(),
        forget: false,
    }
}

/// Checkpoints as read back: sorted, NUL in text as U+FFFD.
async fn checkpoints(store: &Store) -> Vec<Checkpoint> {
    let mut all = store.checkpoints().await.unwrap();
    all.sort_by_key(|c| (c.dev, c.ino));
    all
}

fn stored(mut c: Checkpoint) -> Checkpoint {
    c.path = c.path.replace('\0', "\u{FFFD}");
    c
}

/// An outcome row of session `id`, dispatched at event time 10,000 + `n` ms and received
/// when line `n` was.
fn row(id: &str, org: &str, n: i64, outcome: Outcome) -> OutcomeRow {
    OutcomeRow {
        session: id.into(),
        org: Some(org.into()),
        runner: Runner::Go,
        dispatched_at: Timestamp(10_000 + n),
        seen_at: Timestamp(1_795_428_000_000 + n),
        outcome,
        latency_ms: None,
        skew_clamped: false,
    }
}

async fn conformance(url: &str) {
    let store = Store::open(url).await.unwrap();
    // Empty.
    assert_eq!(store.lines().await.unwrap(), vec![]);
    assert_eq!(store.checkpoints().await.unwrap(), vec![]);
    assert_eq!(
        store.summary(&OutcomeFilter::default()).await.unwrap(),
        Totals::default()
    );

    // Lines keep their order and their bytes, NUL and invalid UTF-8 included; ids from outside
    // may hold anything, even NUL, which Postgres text refuses.
    let weird = StoredLine {
        source: "drain".into(),
        session: Some("sess\u{0}nul".into()),
        entry_id: Some("id\u{0}1".into()),
        default_runtime: None,
        ..line("x", 3, b"\x00\xff\xfe{}")
    };
    let first = Commit {
        lines: vec![
            line("a", 1, b"{\"a\":1}"),
            line("b", 2, b"{\"b\":2}"),
            weird.clone(),
            line("evicted", 5, b"{}"),
        ],
        position: Some(checkpoint(u64::from(u32::MAX) + 7, 10)),
        prune_before: None,
        outcomes: vec![
            OutcomeWrite::Dispatched(row("a", "o1", 1, Outcome::Pending)),
            OutcomeWrite::Dispatched(row("b", "o1", 2, Outcome::Pending)),
            OutcomeWrite::Judged(row("b", "o1", 2, Outcome::Unclaimed)),
            // the last judgement of a session wins, even in one commit
            OutcomeWrite::Judged(row("b", "o1", 2, Outcome::Late)),
            OutcomeWrite::Duplicate {
                session: "b".into(),
                cross_runtime: true,
            },
            // a replayed dispatch never resets a judged row
            OutcomeWrite::Dispatched(row("b", "o1", 2, Outcome::Pending)),
            OutcomeWrite::Dispatched(row("sess\u{0}nul", "o2", 3, Outcome::Pending)),
        ],
        delete_lines: Vec::new(),
        state: vec![("book", "[0]".into())],
    };
    store.commit(&first).await.unwrap();
    store
        .commit(&Commit {
            lines: vec![line("c", 4, b"{}")],
            position: Some(checkpoint(u64::from(u32::MAX) + 7, 21)),
            // Lines received before line 2's are past retention.
            prune_before: Some(Timestamp(1_795_428_000_000 + 2)),
            outcomes: vec![
                OutcomeWrite::Dispatched(row("c", "o2", 4, Outcome::Pending)),
                OutcomeWrite::Judged(row("c", "o2", 4, Outcome::Matched)),
            ],
            // An evicted session's line goes by its origin; other sources' line 5 stay.
            delete_lines: vec![("dispatch.log".into(), 5), ("drain".into(), 5)],
            state: vec![("book", "[1]".into()), ("book", "[2]".into())],
        })
        .await
        .unwrap();
    drop(store);

    let store = Store::open(url).await.unwrap();
    let lines = store.lines().await.unwrap();
    let sessions: Vec<_> = lines.iter().map(|l| l.session.clone().unwrap()).collect();
    assert_eq!(
        sessions,
        ["b", "sess\u{FFFD}nul", "c"],
        "lines past retention and deleted by origin are gone, order kept, NUL stored as U+FFFD"
    );
    assert_eq!(lines[0], line("b", 2, b"{\"b\":2}"));
    // One checkpoint per file identity, the last one committed, every field kept.
    assert_eq!(
        checkpoints(&store).await,
        [stored(checkpoint(u64::from(u32::MAX) + 7, 21))]
    );
    let other = Checkpoint {
        dev: u64::from(u32::MAX) * 4,
        ..checkpoint(3, 0)
    };
    store
        .commit(&Commit {
            position: Some(other.clone()),
            ..Commit::default()
        })
        .await
        .unwrap();
    assert_eq!(
        checkpoints(&store).await,
        [
            stored(checkpoint(u64::from(u32::MAX) + 7, 21)),
            stored(other.clone())
        ]
    );
    // A file deleted and read to its end: its checkpoint goes (with the batch's lines).
    store
        .commit(&Commit {
            position: Some(Checkpoint {
                forget: true,
                ..checkpoint(u64::from(u32::MAX) + 7, 30)
            }),
            ..Commit::default()
        })
        .await
        .unwrap();
    assert_eq!(checkpoints(&store).await, [stored(other)]);
    // Outcome rows: pruned with the lines, summed by SQL per filter.
    let all = store.summary(&OutcomeFilter::default()).await.unwrap();
    assert_eq!(
        (all.dispatched.go, all.late, all.matched, all.pending),
        (3, 1, 1, 1),
        "{all:?}"
    );
    assert_eq!(
        (all.duplicate_claims, all.duplicate_claims_cross_runtime),
        (1, 1)
    );
    let o1 = OutcomeFilter {
        org: Some("o1".into()),
        ..OutcomeFilter::default()
    };
    let o1 = store.summary(&o1).await.unwrap();
    assert_eq!((o1.dispatched.go, o1.late), (1, 1), "{o1:?}");
    let window = OutcomeFilter {
        org: None,
        since: Some(Timestamp(10_003)),
        until: Some(Timestamp(10_004)),
    };
    let window = store.summary(&window).await.unwrap();
    assert_eq!(
        (window.dispatched.go, window.pending),
        (1, 1),
        "since inclusive, until exclusive: {window:?}"
    );

    assert_eq!(store.state("book").await.unwrap().as_deref(), Some("[2]"));
    assert_eq!(store.state("other").await.unwrap(), None);

    // Reports: stored once, listed newest flip first, the latest per org.
    let report = |id: &str, org: &str, at: i64| claimcheck::store::StoredReport {
        id: id.into(),
        org: org.into(),
        flip_at: Timestamp(at),
        verdict: "pass".into(),
        created_at: Timestamp(at + 1),
        json: format!("{{\"id\":\"{id}\"}}"),
    };
    store.put_report(&report("r1", "org_a", 10)).await.unwrap();
    store.put_report(&report("r2", "org_a", 20)).await.unwrap();
    store.put_report(&report("r3", "org_b", 15)).await.unwrap();
    let again = claimcheck::store::StoredReport {
        verdict: "fail".into(),
        ..report("r1", "org_a", 10)
    };
    store.put_report(&again).await.unwrap();
    let ids = |limit| {
        let store = &store;
        async move {
            store
                .report_list(limit)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.id)
                .collect::<Vec<String>>()
        }
    };
    assert_eq!(ids(10).await, ["r2", "r3", "r1"]);
    assert_eq!(
        ids(2).await,
        ["r2", "r3"],
        "bounded, the latest flips first"
    );
    let listed = &store.report_list(1).await.unwrap()[0];
    assert_eq!(
        (
            listed.org.as_str(),
            listed.flip_at,
            listed.verdict.as_str(),
            listed.created_at
        ),
        ("org_a", Timestamp(20), "pass", Timestamp(21))
    );
    assert_eq!(store.report_ids().await.unwrap().len(), 3);
    assert_eq!(
        store.report("r1").await.unwrap(),
        Some(report("r1", "org_a", 10))
    );
    assert_eq!(store.report("nope").await.unwrap(), None);
    assert_eq!(
        store.latest_report("org_a").await.unwrap().map(|r| r.id),
        Some("r2".into())
    );
    assert_eq!(store.latest_report("org_c").await.unwrap(), None);

    // Bytes survive exactly when not forgotten.
    store
        .commit(&Commit {
            lines: vec![weird.clone()],
            ..Commit::default()
        })
        .await
        .unwrap();
    let last = store.lines().await.unwrap().pop().unwrap();
    assert_eq!(last.raw, weird.raw);
    assert_eq!(last.default_runtime, None);
    assert_eq!(last.source, "drain");
}

#[tokio::test]
async fn sqlite_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    conformance(&dir.path().join("state.db").display().to_string()).await;
    // The URL form opens the same file.
    let url = format!("sqlite://{}", dir.path().join("state.db").display());
    assert_eq!(
        Store::open(&url)
            .await
            .unwrap()
            .lines()
            .await
            .unwrap()
            .len(),
        4
    );
}

#[tokio::test]
async fn postgres_store_conforms() {
    let db = ScratchDb::new().await;
    conformance(&db.url).await;
}

#[tokio::test]
async fn unreachable_postgres_is_an_error_not_a_hang() {
    // Nothing listens on port 1.
    let err = Store::open("postgres://postgres@127.0.0.1:1/none")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("store"), "{err}");
}

/// A commit that fails (here: the table is gone for a while) is retried until it lands, and
/// the batch is answered only then: memory and store never disagree, and nothing is lost or
/// recorded twice.
#[tokio::test]
async fn a_failing_commit_holds_the_batch_until_the_store_is_back() {
    use claimcheck::clock::Clock;
    use claimcheck::correlate::live::LiveConfig;
    use claimcheck::parse::Parser;
    use claimcheck::serve::Actor;
    use claimcheck::sources::batch::Batch;
    use sqlx::Connection;

    let db = ScratchDb::new().await;
    let store = Store::open(&db.url).await.unwrap();
    let registry = prometheus::Registry::new();
    let (mut actor, summary) = Actor::new(
        Parser::new(Default::default()),
        LiveConfig::default(),
        &registry,
        Clock::system(),
        200,
    )
    .unwrap();
    actor.recover(store.clone(), None).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let (_qtx, qrx) = tokio::sync::mpsc::channel(4);
    let stop = tokio_util::sync::CancellationToken::new();
    let actor = tokio::spawn(actor.run(rx, qrx, stop.clone()));

    let send = |id: &str| {
        let line = format!(
            r#"{{"event":"dispatch","sessionId":"{id}","time":"2026-11-23T10:00:00Z","resolvedProfile":{{"runner":"go"}}}}"#
        );
        let mut b = Batch::new("dispatch.log", None, vec![line.into_bytes()]);
        let (done, answer) = tokio::sync::oneshot::channel();
        b.done = Some(done);
        (b, answer)
    };
    let (b, answer) = send("before");
    tx.send(b).await.unwrap();
    assert_eq!(answer.await.unwrap().unwrap().events, 1);

    let mut admin = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("ALTER TABLE events RENAME TO events_away")
        .execute(&mut admin)
        .await
        .unwrap();
    let (b, mut answer) = send("during");
    tx.send(b).await.unwrap();
    // Still unanswered while the store refuses it: not acknowledged, not dropped.
    let early = tokio::time::timeout(std::time::Duration::from_millis(400), &mut answer).await;
    assert!(
        early.is_err(),
        "answered while the store was failing: {early:?}"
    );
    sqlx::query("ALTER TABLE events_away RENAME TO events")
        .execute(&mut admin)
        .await
        .unwrap();
    assert_eq!(answer.await.unwrap().unwrap().events, 1);

    let sessions: Vec<String> = store
        .lines()
        .await
        .unwrap()
        .into_iter()
        .filter_map(|l| l.session)
        .collect();
    assert_eq!(sessions, ["before", "during"]);
    assert_eq!(summary.borrow().dispatched.go, 2);
    stop.cancel();
    actor.await.unwrap();
}
