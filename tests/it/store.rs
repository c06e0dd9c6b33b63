//! One conformance suite for every store backend: SQLite (a file) and Postgres (a scratch
//! database on the real server) must keep exactly the same things.

use claimcheck::correlate::Outcome;
use claimcheck::event::FindingKind;
use claimcheck::event::{Runner, Timestamp};
use claimcheck::report::Totals;
use claimcheck::sources::file::Checkpoint;
use claimcheck::store::{
    Commit, FindingCursor, FindingFilter, FindingWrite, NewFinding, NewLine, NewLines,
    OutcomeFilter, OutcomeRow, OutcomeWrite, Store, StoredFinding, StoredLine,
};

use crate::scratch_db::ScratchDb;
use crate::support::commit_outcomes;

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
        marks: vec![(offset / 2, u32::MAX), (offset, 7)],
        written_at: 1_795_428_000_123 + offset as i64,
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
        first_seen: Timestamp(1_795_428_000_000 + n),
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
            line("a", 1, b"{\"a\":1}").into(),
            line("b", 2, b"{\"b\":2}").into(),
            weird.clone().into(),
            line("evicted", 5, b"{}").into(),
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
                first_seen: Timestamp(1_795_428_000_000 + 2),
                cross_runtime: true,
            },
            // a replayed dispatch never resets a judged row
            OutcomeWrite::Dispatched(row("b", "o1", 2, Outcome::Pending)),
            OutcomeWrite::Dispatched(row("sess\u{0}nul", "o2", 3, Outcome::Pending)),
        ],
        findings: Vec::new(),
        evicted_lines: Vec::new(),
        state: vec![("book", "[0]".into())],
    };
    store.commit(&first).await.unwrap();
    store
        .commit(&Commit {
            lines: vec![line("c", 4, b"{}").into()],
            position: Some(checkpoint(u64::from(u32::MAX) + 7, 21)),
            // Lines received before line 2's are past retention.
            prune_before: Some(Timestamp(1_795_428_000_000 + 2)),
            outcomes: vec![
                OutcomeWrite::Dispatched(row("c", "o2", 4, Outcome::Pending)),
                OutcomeWrite::Judged(row("c", "o2", 4, Outcome::Matched)),
            ],
            // An evicted session's line goes by its origin; other sources' line 5 stay.
            findings: Vec::new(),
            evicted_lines: vec![("dispatch.log".into(), 5), ("drain".into(), 5)],
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
            lines: vec![weird.clone().into()],
            ..Commit::default()
        })
        .await
        .unwrap();
    let last = store.lines().await.unwrap().pop().unwrap();
    assert_eq!(last.raw, weird.raw);
    assert_eq!(last.default_runtime, None);
    assert_eq!(last.source, "drain");

    // Two session ids that differ only where one has NUL are one stored row: judged in one
    // commit, the later judgement wins (Postgres refuses a statement that updates a row twice).
    commit_outcomes(
        &store,
        vec![
            OutcomeWrite::Judged(row("nul\u{0}x", "o_nul", 9, Outcome::Matched)),
            OutcomeWrite::Judged(row("nul\u{FFFD}x", "o_nul", 9, Outcome::Late)),
        ],
    )
    .await;
    let nul = OutcomeFilter {
        org: Some("o_nul".into()),
        ..OutcomeFilter::default()
    };
    let nul = store.summary(&nul).await.unwrap();
    assert_eq!(
        (nul.dispatched.go, nul.late, nul.matched),
        (1, 1, 0),
        "{nul:?}"
    );
}

/// The findings found at 1,795,428,100,000 + `ms`.
fn finding(kind: FindingKind, key: &str, org: Option<&str>, ms: i64) -> NewFinding {
    NewFinding {
        kind,
        key: key.into(),
        session: (kind != FindingKind::Flip).then(|| key.split('#').next().unwrap().to_owned()),
        org: org.map(str::to_owned),
        runner: "go",
        found_at: Timestamp(1_795_428_100_000 + ms),
        detail: Some(format!("evidence of {key}")),
    }
}

/// Every page of `filter` (its limit a page), read one after another while `between` runs
/// after each page; the positions seen, in order.
async fn every_page(
    store: &Store,
    mut filter: FindingFilter,
    mut between: impl AsyncFnMut(usize),
) -> Vec<StoredFinding> {
    let mut seen = Vec::new();
    for n in 0..10_000 {
        let page = store.findings(&filter).await.unwrap();
        assert!(page.findings.len() <= filter.limit as usize);
        seen.extend(page.findings.iter().cloned());
        between(n).await;
        match page.findings.last() {
            Some(last) => filter.after = Some(last.position()),
            None => {
                assert!(!page.more, "an empty page with more after it");
                break;
            }
        }
    }
    seen
}

/// Findings: written with their evidence, once per kind and key (a replay writes nothing
/// twice), resolved and annotated by update, paged on (found at, id) with no finding twice
/// and none skipped while others arrive, filtered through indexes, pruned with the lines,
/// kept across a reopen.
async fn findings_conform(url: &str) {
    use FindingKind::*;
    let store = Store::open(url).await.unwrap();
    let first = vec![
        FindingWrite::Found(finding(Unclaimed, "a", Some("o1"), 10)),
        FindingWrite::Found(finding(Late, "b", Some("o1"), 10)),
        FindingWrite::Found(finding(OrphanClaim, "c#1", None, 11)),
        FindingWrite::Found(finding(OrphanClaim, "c#2", None, 11)),
        FindingWrite::Found(finding(Flip, "o\u{0}2\n5", Some("o\u{0}2"), 12)),
        // found again (a replay after a crash): the first one stays, time and all
        FindingWrite::Found(finding(Unclaimed, "a", Some("o1"), 99)),
        FindingWrite::Annotated {
            kind: Unclaimed,
            key: "a".into(),
            detail: "held by w1".into(),
        },
        FindingWrite::Resolved {
            kind: Unclaimed,
            key: "a".into(),
            at: Timestamp(1_795_428_100_020),
        },
    ];
    store
        .commit(&Commit {
            findings: first,
            ..Commit::default()
        })
        .await
        .unwrap();
    store
        .commit(&Commit {
            findings: vec![
                FindingWrite::Found(finding(Unclaimed, "a", Some("o1"), 30)),
                // a second resolution (a replayed late claim) keeps the first one's time
                FindingWrite::Resolved {
                    kind: Unclaimed,
                    key: "a".into(),
                    at: Timestamp(1_795_428_100_031),
                },
                // resolving what was never found changes nothing
                FindingWrite::Resolved {
                    kind: Unclaimed,
                    key: "zz".into(),
                    at: Timestamp(1_795_428_100_031),
                },
            ],
            ..Commit::default()
        })
        .await
        .unwrap();
    drop(store);
    let store = Store::open(url).await.unwrap();
    let all = store.findings(&FindingFilter::default()).await.unwrap();
    assert!(!all.more);
    let got: Vec<(FindingKind, Option<&str>, Option<&str>, i64)> = all
        .findings
        .iter()
        .map(|f| {
            (
                f.kind,
                f.session.as_deref(),
                f.org.as_deref(),
                f.found_at.millis() - 1_795_428_100_000,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (Unclaimed, Some("a"), Some("o1"), 10),
            (Late, Some("b"), Some("o1"), 10),
            (OrphanClaim, Some("c"), None, 11),
            (OrphanClaim, Some("c"), None, 11),
            (Flip, None, Some("o\u{FFFD}2"), 12),
        ],
        "oldest first, once per kind and key, NUL stored as U+FFFD"
    );
    let a = &all.findings[0];
    assert_eq!(
        (a.resolved_at, a.detail.as_deref(), a.runner.as_str()),
        (Some(Timestamp(1_795_428_100_020)), Some("held by w1"), "go")
    );
    assert_eq!(all.findings[1].detail.as_deref(), Some("evidence of b"));
    assert_eq!(all.findings[1].resolved_at, None);

    // Filters: kind, org, both, found-at window (since inclusive, until exclusive).
    let count = async |f: FindingFilter| store.findings(&f).await.unwrap().findings.len();
    let of = |kind: Option<FindingKind>, org: Option<&str>| FindingFilter {
        kind,
        org: org.map(str::to_owned),
        ..FindingFilter::default()
    };
    assert_eq!(count(of(Some(OrphanClaim), None)).await, 2);
    assert_eq!(count(of(None, Some("o1"))).await, 2);
    assert_eq!(count(of(Some(Late), Some("o1"))).await, 1);
    assert_eq!(count(of(Some(Late), Some("o2"))).await, 0);
    assert_eq!(
        count(of(None, Some("o\u{0}2"))).await,
        1,
        "NUL in the filter too"
    );
    let window = FindingFilter {
        since: Some(Timestamp(1_795_428_100_011)),
        until: Some(Timestamp(1_795_428_100_012)),
        ..FindingFilter::default()
    };
    assert_eq!(count(window).await, 2);

    // Paging while findings keep arriving (some in the same millisecond as the page's last
    // one): every finding once, in order, whatever the page size and direction.
    let mut next = 100;
    for limit in [1, 2, 3, 7] {
        let before: Vec<i64> = store
            .findings(&FindingFilter {
                limit: 1000,
                ..FindingFilter::default()
            })
            .await
            .unwrap()
            .findings
            .iter()
            .map(|f| f.id)
            .collect();
        let seen = every_page(
            &store,
            FindingFilter {
                limit,
                ..FindingFilter::default()
            },
            async |n| {
                if n < 6 {
                    let ms = next / 4;
                    let writes = (0..2)
                        .map(|i| {
                            next += 1;
                            FindingWrite::Found(finding(
                                DuplicateClaim,
                                &format!("p{next}"),
                                Some(if i == 0 { "o1" } else { "o3" }),
                                ms,
                            ))
                        })
                        .collect();
                    store
                        .commit(&Commit {
                            findings: writes,
                            ..Commit::default()
                        })
                        .await
                        .unwrap();
                }
            },
        )
        .await;
        let after: Vec<StoredFinding> = store
            .findings(&FindingFilter {
                limit: 1000,
                ..FindingFilter::default()
            })
            .await
            .unwrap()
            .findings;
        let ids: Vec<i64> = seen.iter().map(|f| f.id).collect();
        assert_eq!(
            ids,
            after.iter().map(|f| f.id).collect::<Vec<_>>(),
            "limit {limit}: every finding once, none skipped (12 arrived meanwhile)"
        );
        assert_eq!(after.len(), before.len() + 12);
        let positions: Vec<FindingCursor> = seen.iter().map(StoredFinding::position).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "in page order");
        // Newest first (the status page), the same findings backwards.
        let back = every_page(
            &store,
            FindingFilter {
                limit,
                newest_first: true,
                ..FindingFilter::default()
            },
            async |_| {},
        )
        .await;
        let mut ids_back: Vec<i64> = back.iter().map(|f| f.id).collect();
        ids_back.reverse();
        assert_eq!(ids_back, ids, "limit {limit}, newest first");
        // A filtered walk sees exactly the filter's findings.
        let o3 = every_page(
            &store,
            FindingFilter {
                kind: Some(DuplicateClaim),
                org: Some("o3".into()),
                limit,
                ..FindingFilter::default()
            },
            async |_| {},
        )
        .await;
        let want: Vec<i64> = after
            .iter()
            .filter(|f| f.org.as_deref() == Some("o3"))
            .map(|f| f.id)
            .collect();
        assert_eq!(o3.iter().map(|f| f.id).collect::<Vec<_>>(), want);
    }

    // Pruned with the lines: what was found before the cut goes.
    store
        .commit(&Commit {
            prune_before: Some(Timestamp(1_795_428_100_012)),
            ..Commit::default()
        })
        .await
        .unwrap();
    let left = store.findings(&FindingFilter::default()).await.unwrap();
    assert!(
        left.findings
            .iter()
            .all(|f| f.found_at >= Timestamp(1_795_428_100_012)),
        "{left:?}"
    );
    assert_eq!(left.findings[0].kind, Flip);
}

/// A batch's buffer holds every line read, ignored and rejected ones too; only the lines its
/// rows name are stored, each with its own bytes, number, session and entry id.
#[tokio::test]
async fn a_batch_stores_only_the_lines_its_rows_name() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("state.db").display().to_string())
        .await
        .unwrap();
    let d = line("d", 8, b"{\"d\":8}");
    let batch = NewLines {
        buf: [b"ignored".as_slice(), &d.raw, b"rejected", b"{\"e\":9}"]
            .into_iter()
            .collect(),
        rows: vec![
            NewLine {
                at: 1,
                line: 8,
                session: Some("d".into()),
                entry_id: None,
            },
            NewLine {
                at: 3,
                line: 9,
                session: None,
                entry_id: Some("e9".into()),
            },
        ],
        ..d.clone().into()
    };
    store
        .commit(&Commit {
            lines: vec![batch],
            ..Commit::default()
        })
        .await
        .unwrap();
    let all = store.lines().await.unwrap();
    let e = StoredLine {
        line: 9,
        session: None,
        entry_id: Some("e9".into()),
        raw: b"{\"e\":9}".to_vec(),
        ..d.clone()
    };
    assert_eq!(all, [d, e]);
}

/// A commit whose multi-row write fails partway leaves none of its rows. SQLite's multi-row
/// writes are `OR FAIL` (no statement journal): the rows a failing statement wrote before the
/// row that failed are undone only with the whole transaction, which the failed commit must
/// roll back; the next commit, on another connection or the same, lands only its own rows.
/// (Here triggers refuse one line, then one outcome row, each the third of its statement.)
#[tokio::test]
async fn a_sqlite_write_that_fails_partway_leaves_none_of_its_rows() {
    use sqlx::Connection;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db").display().to_string();
    let store = Store::open(&path).await.unwrap();
    let commit = |lines: std::ops::RangeInclusive<u32>| Commit {
        lines: lines.clone().map(|n| line("s", n, b"{}").into()).collect(),
        outcomes: lines
            .map(|n| {
                OutcomeWrite::Dispatched(row(
                    &format!("s{n}"),
                    "o1",
                    i64::from(n),
                    Outcome::Pending,
                ))
            })
            .collect(),
        ..Commit::default()
    };
    store.commit(&commit(1..=1)).await.unwrap();
    let mut admin = sqlx::SqliteConnection::connect(&format!("sqlite://{path}"))
        .await
        .unwrap();
    for (table, refused, trigger) in [
        ("events", 4, "NEW.line = 4"),
        ("outcomes", 8, "NEW.session = 's8'"),
    ] {
        sqlx::query(&format!(
            "CREATE TRIGGER refuse BEFORE INSERT ON {table} WHEN {trigger} \
             BEGIN SELECT RAISE(FAIL, 'refused'); END"
        ))
        .execute(&mut admin)
        .await
        .unwrap();
        let failed = store.commit(&commit(refused - 2..=refused + 1)).await;
        assert!(failed.is_err(), "{table}: {failed:?}");
        sqlx::query("DROP TRIGGER refuse")
            .execute(&mut admin)
            .await
            .unwrap();
    }
    store.commit(&commit(10..=11)).await.unwrap();
    let lines = stored_lines(&store).await;
    assert_eq!(lines, [1, 10, 11]);
    let totals = store.summary(&OutcomeFilter::default()).await.unwrap();
    assert_eq!(totals.dispatched.go, 3, "{totals:?}");
}

/// A check run against each backend as two tests: `$sqlite` on a SQLite file in a fresh
/// directory, `$postgres` on a fresh Postgres database.
macro_rules! on_both_stores {
    ($sqlite:ident, $postgres:ident, $check:ident) => {
        #[tokio::test]
        async fn $sqlite() {
            let dir = tempfile::tempdir().unwrap();
            $check(&dir.path().join("state.db").display().to_string()).await;
        }

        #[tokio::test]
        async fn $postgres() {
            let db = ScratchDb::new().await;
            $check(&db.url).await;
        }
    };
}

on_both_stores!(
    sqlite_evicted_lines_are_never_read_back_and_go_with_retention,
    postgres_evicted_lines_are_never_read_back_and_go_with_retention,
    evicted_lines_go_with_retention
);

/// Rows of `table` in the store at `url` (a SQLite path or a Postgres URL), read directly.
async fn rows_in(url: &str, table: &str) -> i64 {
    use sqlx::Connection;
    let sql = format!("SELECT COUNT(*) FROM {table}");
    if url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query_scalar(&sql).fetch_one(&mut c).await.unwrap()
    } else {
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{url}"))
            .await
            .unwrap();
        sqlx::query_scalar(&sql).fetch_one(&mut c).await.unwrap()
    }
}

/// An evicted session's lines are listed, not deleted: no read (the lines, their count, a
/// reopened store) shows them again, whichever source they came from; and the listing is
/// pruned with them, not before (a line received at the retention's edge stays listed while it
/// stays stored) and not never (the store does not grow by what was evicted).
async fn evicted_lines_go_with_retention(url: &str) {
    let at = |n: u32, source: &str| StoredLine {
        source: source.into(),
        ..line(&format!("s{n}"), n, b"{}")
    };
    let store = Store::open(url).await.unwrap();
    let commit = |lines: Vec<StoredLine>, evicted: Vec<(&str, u32)>, prune: Option<i64>| Commit {
        lines: lines.into_iter().map(Into::into).collect(),
        evicted_lines: evicted
            .into_iter()
            .map(|(s, l)| (s.to_owned(), l))
            .collect(),
        prune_before: prune.map(|ms| Timestamp(1_795_428_000_000 + ms)),
        ..Commit::default()
    };
    store
        .commit(&commit(
            vec![
                at(1, "dispatch.log"),
                at(2, "dispatch.log"),
                at(3, "claims.log"),
            ],
            vec![],
            None,
        ))
        .await
        .unwrap();
    // Line 1 of each source is listed; dispatch.log's line 3 names no stored line.
    store
        .commit(&commit(
            vec![],
            vec![("dispatch.log", 1), ("claims.log", 3), ("dispatch.log", 3)],
            None,
        ))
        .await
        .unwrap();
    assert_eq!(store.lines().await.unwrap(), [at(2, "dispatch.log")]);
    assert_eq!(store.line_count().await.unwrap(), 1);
    drop(store);
    let store = Store::open(url).await.unwrap();
    assert_eq!(store.lines().await.unwrap(), [at(2, "dispatch.log")]);
    assert_eq!(
        store.lines_after(0, 10).await.unwrap().len(),
        1,
        "recovery's pages leave the listed lines out too"
    );
    // Retention up to line 3's receive time: lines 1 and 2 go; line 3 (received at the
    // edge) stays stored, so its listing stays too.
    store
        .commit(&commit(vec![at(10, "claims.log")], vec![], Some(3)))
        .await
        .unwrap();
    assert_eq!(store.lines().await.unwrap(), [at(10, "claims.log")]);
    assert_eq!(store.line_count().await.unwrap(), 1);
    assert_eq!(rows_in(url, "evicted_lines").await, 3);
    // Past it: line 3 goes, and every listing with it.
    store
        .commit(&commit(vec![], vec![], Some(4)))
        .await
        .unwrap();
    assert_eq!(store.lines().await.unwrap(), [at(10, "claims.log")]);
    assert_eq!(rows_in(url, "evicted_lines").await, 0);
    assert_eq!(rows_in(url, "events").await, 1);
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

/// Read syscalls this process has made so far (every thread's, SQLite's included).
fn reads_so_far() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("syscr: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap()
}

/// A connection that reads keeps the pages it reads again and again (a B-tree's root and
/// interior pages) while the committing connection holds many: each connection has a page
/// cache of its own. With one cache shared by all (SQLite's `ENABLE_MEMORY_MANAGEMENT`), a big
/// commit left the committer holding the whole budget and every other connection freed each
/// page as it let go of it, so a replay after evictions read the listing's root and interior
/// pages from the file again for every stored line it passed: a capped `serve` restart made
/// 1.9 million reads for 17,000 lines (docs/speed-history.md, session 26).
#[tokio::test]
async fn a_reader_keeps_its_pages_while_the_committer_holds_many() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.db").display().to_string())
        .await
        .unwrap();
    // 12 MB of lines in one commit: more pages than all the connections' caches hold.
    const LINES: u32 = 40_000;
    let raw = |n: u32| {
        format!(
            "{{\"event\":\"dispatch\",\"sessionId\":\"s{n}\",\"pad\":\"{}\"}}",
            "x".repeat(250)
        )
    };
    let lines: Vec<NewLines> = (1..=LINES)
        .map(|n| line(&format!("s{n}"), n, raw(n).as_bytes()).into())
        .collect();
    store
        .commit(&Commit {
            lines,
            ..Commit::default()
        })
        .await
        .unwrap();
    // Every line but the last 100 listed as evicted: a replay looks each line up in the list.
    store
        .commit(&Commit {
            evicted_lines: (1..=LINES - 100)
                .map(|n| ("dispatch.log".to_owned(), n))
                .collect(),
            ..Commit::default()
        })
        .await
        .unwrap();
    let before = reads_so_far();
    let read = store.lines_after(0, 1_000).await.unwrap();
    let reads = reads_so_far() - before;
    assert_eq!(read.len(), 100);
    // The lines' and the listing's pages once each: about a thousand reads, not one or two
    // per line passed.
    assert!(
        reads < u64::from(LINES) / 8,
        "{reads} reads to pass {LINES} lines"
    );
}

#[tokio::test]
async fn postgres_store_conforms() {
    let db = ScratchDb::new().await;
    conformance(&db.url).await;
}

on_both_stores!(
    sqlite_store_keeps_findings,
    postgres_store_keeps_findings,
    findings_conform
);

#[tokio::test]
async fn unreachable_postgres_is_an_error_not_a_hang() {
    // Nothing listens on port 1.
    let err = Store::open("postgres://postgres@127.0.0.1:1/none")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("store"), "{err}");
}

/// The line numbers of the stored lines, in the order they were stored.
async fn stored_lines(store: &Store) -> Vec<u32> {
    let lines = store.lines().await.unwrap();
    lines.iter().map(|l| l.line).collect()
}

/// The sessions of the stored lines, in the order they were stored.
async fn stored_sessions(store: &Store) -> Vec<String> {
    let lines = store.lines().await.unwrap();
    lines.into_iter().filter_map(|l| l.session).collect()
}

/// serve's actor with its summary, recovered from `store` (empty here).
async fn recovered_actor(
    store: &Store,
) -> (
    claimcheck::serve::Actor,
    tokio::sync::watch::Receiver<claimcheck::serve::Summary>,
) {
    recovered_actor_with(
        store,
        claimcheck::correlate::live::LiveConfig::default(),
        &prometheus::Registry::new(),
    )
    .await
}

/// [`recovered_actor`] with its live configuration, its metrics in `registry`.
async fn recovered_actor_with(
    store: &Store,
    config: claimcheck::correlate::live::LiveConfig,
    registry: &prometheus::Registry,
) -> (
    claimcheck::serve::Actor,
    tokio::sync::watch::Receiver<claimcheck::serve::Summary>,
) {
    let (mut actor, summary) = claimcheck::serve::Actor::new(
        claimcheck::parse::Parser::new(Default::default()),
        config,
        registry,
        claimcheck::clock::Clock::system(),
        200,
    )
    .unwrap();
    actor.recover(store.clone(), None).await.unwrap();
    (actor, summary)
}

/// A batch of one Go dispatch of session `id` from `dispatch.log`, and where its answer comes.
fn dispatch_batch(
    id: &str,
) -> (
    claimcheck::sources::batch::Batch,
    tokio::sync::oneshot::Receiver<Result<claimcheck::sources::batch::BatchResult, String>>,
) {
    let line = format!(
        r#"{{"event":"dispatch","sessionId":"{id}","time":"2026-11-23T10:00:00Z","resolvedProfile":{{"runner":"go"}}}}"#
    );
    let mut b =
        claimcheck::sources::batch::Batch::new("dispatch.log", None, [line].into_iter().collect());
    let (done, answer) = tokio::sync::oneshot::channel();
    b.done = Some(done);
    (b, answer)
}

/// A tick that judges a session overdue while the batch that brought its dispatch is still
/// being committed (here: failing, the table gone for a while) shows nothing of it before
/// that batch lands: the tick's commit and the totals it publishes queue behind the batch's
/// (committed at once on a store pool, they would show the dispatch unstored).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_shows_nothing_before_the_batches_taken_before_it_land() {
    use claimcheck::correlate::ClaimTimeouts;
    use sqlx::Connection;

    let db = ScratchDb::new().await;
    let store = Store::open(&db.url).await.unwrap();
    let registry = prometheus::Registry::new();
    let mut config = claimcheck::correlate::live::LiveConfig::default();
    config.correlate.timeouts = ClaimTimeouts::uniform(std::time::Duration::from_millis(200));
    let (actor, summary) = recovered_actor_with(&store, config, &registry).await;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let (_qtx, qrx) = tokio::sync::mpsc::channel(4);
    let stop = tokio_util::sync::CancellationToken::new();
    let actor = tokio::spawn(actor.run(rx, qrx, stop.clone()));
    let missed = || {
        let mut text = String::new();
        prometheus::TextEncoder::new()
            .encode_utf8(&registry.gather(), &mut text)
            .unwrap();
        text.lines()
            .filter(|l| l.starts_with("claimcheck_claim_deadline_missed_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };

    // Answered once recovered and stored; then overdue, and that shown once stored.
    let (b, answer) = dispatch_batch("before");
    tx.send(b).await.unwrap();
    assert_eq!(answer.await.unwrap().unwrap().events, 1);
    crate::support::until_some(20, "the first session shown overdue", || async {
        (summary.borrow().unclaimed == 1).then_some(())
    })
    .await;

    let mut admin = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("ALTER TABLE events RENAME TO events_away")
        .execute(&mut admin)
        .await
        .unwrap();
    let (b, answer) = dispatch_batch("late");
    tx.send(b).await.unwrap();
    // A tick finds it overdue (200 ms after it arrived) while its batch cannot be stored.
    crate::support::until_some(20, "the second session judged overdue", || async {
        (missed() >= 2.0).then_some(())
    })
    .await;
    // Published by the tick, its totals would come a moment after its judging (its own
    // commit needs no table that is gone): none come while the batch is not stored.
    let mut watch = summary.clone();
    watch.borrow_and_update();
    let early = tokio::time::timeout(std::time::Duration::from_millis(1500), watch.changed()).await;
    let published = summary.borrow().clone();
    assert!(
        early.is_err() && (published.dispatched.go, published.unclaimed) == (1, 1),
        "shown before stored: {published:?}"
    );
    sqlx::query("ALTER TABLE events_away RENAME TO events")
        .execute(&mut admin)
        .await
        .unwrap();
    assert_eq!(answer.await.unwrap().unwrap().events, 1);
    crate::support::until_some(20, "the totals once stored", || async {
        let s = summary.borrow();
        (s.dispatched.go == 2 && s.unclaimed == 2).then_some(())
    })
    .await;
    assert_eq!(stored_sessions(&store).await, ["before", "late"]);
    stop.cancel();
    actor.await.unwrap();
}

/// A commit that fails (here: the table is gone for a while) is retried until it lands, and
/// the batch is answered only then: memory and store never disagree, and nothing is lost or
/// recorded twice.
#[tokio::test]
async fn a_failing_commit_holds_the_batch_until_the_store_is_back() {
    use sqlx::Connection;

    let db = ScratchDb::new().await;
    let store = Store::open(&db.url).await.unwrap();
    let (actor, summary) = recovered_actor(&store).await;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let (_qtx, qrx) = tokio::sync::mpsc::channel(4);
    let stop = tokio_util::sync::CancellationToken::new();
    let actor = tokio::spawn(actor.run(rx, qrx, stop.clone()));

    let (b, answer) = dispatch_batch("before");
    tx.send(b).await.unwrap();
    assert_eq!(answer.await.unwrap().unwrap().events, 1);

    let mut admin = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("ALTER TABLE events RENAME TO events_away")
        .execute(&mut admin)
        .await
        .unwrap();
    let (b, mut answer) = dispatch_batch("during");
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

    assert_eq!(stored_sessions(&store).await, ["before", "during"]);
    assert_eq!(summary.borrow().dispatched.go, 2);
    stop.cancel();
    actor.await.unwrap();
}

/// Batches that queued while the actor was busy are committed together, in one transaction:
/// a file's checkpoint that cannot be written (here: its table is gone for a while) holds
/// back the lines of the batch queued before it too, and neither sender is answered before
/// both land. Committed one at a time, the first would land and be answered alone.
#[tokio::test]
async fn batches_committed_together_land_together_or_not_at_all() {
    use claimcheck::sources::batch::Batch;
    use sqlx::Connection;

    let db = ScratchDb::new().await;
    let store = Store::open(&db.url).await.unwrap();
    let (actor, summary) = recovered_actor(&store).await;
    let mut admin = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("ALTER TABLE checkpoints RENAME TO checkpoints_away")
        .execute(&mut admin)
        .await
        .unwrap();
    let send = |source: &str, id: &str, position: Option<Checkpoint>| {
        let line = format!(
            r#"{{"event":"dispatch","sessionId":"{id}","time":"2026-11-23T10:00:00Z","resolvedProfile":{{"runner":"go"}}}}"#
        );
        let mut b = Batch::new(source, None, [line].into_iter().collect());
        b.position = position;
        let (done, answer) = tokio::sync::oneshot::channel();
        b.done = Some(done);
        (b, answer)
    };
    // Both queued before the actor runs: it takes them together.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let (first, mut first_answer) = send("drain", "first", None);
    let (second, mut second_answer) = send("dispatch.log", "second", Some(checkpoint(7, 400)));
    tx.send(first).await.unwrap();
    tx.send(second).await.unwrap();
    let (_qtx, qrx) = tokio::sync::mpsc::channel(4);
    let stop = tokio_util::sync::CancellationToken::new();
    let actor = tokio::spawn(actor.run(rx, qrx, stop.clone()));

    let early =
        tokio::time::timeout(std::time::Duration::from_millis(400), &mut first_answer).await;
    assert!(
        early.is_err(),
        "answered before its commit landed: {early:?}"
    );
    assert!(
        second_answer.try_recv().is_err(),
        "answered before its commit landed"
    );
    assert!(
        store.lines().await.unwrap().is_empty(),
        "a part of the transaction landed"
    );
    sqlx::query("ALTER TABLE checkpoints_away RENAME TO checkpoints")
        .execute(&mut admin)
        .await
        .unwrap();
    assert_eq!(first_answer.await.unwrap().unwrap().events, 1);
    assert_eq!(second_answer.await.unwrap().unwrap().events, 1);

    assert_eq!(stored_sessions(&store).await, ["first", "second"]);
    assert_eq!(checkpoints(&store).await, [stored(checkpoint(7, 400))]);
    assert_eq!(summary.borrow().dispatched.go, 2);
    stop.cancel();
    actor.await.unwrap();
}

/// A serve killed just after sending a COMMIT leaves its Postgres session to land it, maybe
/// after the next start has read the checkpoints and before it replays the lines: those lines
/// would be replayed, then read again from the older checkpoint (the glob kill loop's read
/// twice, Postgres only). A start waits for such a commit: here a dead serve's session holds
/// the commit lock, as every commit does from its start, with a line written; the store
/// opened meanwhile waits for it, and then reads that line.
#[tokio::test]
async fn a_start_waits_for_the_commit_a_killed_serve_left_in_flight() {
    use claimcheck::store::COMMITS_LOCK;
    use sqlx::Connection;

    let db = ScratchDb::new().await;
    Store::open(&db.url).await.unwrap();
    let mut dead = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let mut tx = dead.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock_shared($1)")
        .bind(COMMITS_LOCK)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO events (received_at, source_id, line, session, entry_id, default_runtime, raw) \
         VALUES (0, 1, 1, NULL, NULL, NULL, '\\x7b7d'::bytea)",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    let url = db.url.clone();
    let opening = tokio::spawn(async move { Store::open(&url).await });
    let admin = sqlx::PgPool::connect(&db.url).await.unwrap();
    crate::support::until_some(30, "the start waits for the commit in flight", || {
        let admin = admin.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
            )
            .fetch_one(&admin)
            .await
            .ok()
            .filter(|n| *n > 0)
        }
    })
    .await;
    assert!(
        !opening.is_finished(),
        "the start returned before the commit ended"
    );
    tx.commit().await.unwrap();
    let store = opening.await.unwrap().unwrap();
    assert_eq!(
        store.line_count().await.unwrap(),
        1,
        "the commit's line is read"
    );
}

/// The lines a store made by the schema before `sources` (migration 0013) holds: source, line,
/// session.
const OLD_LINES: [(&str, u32, &str); 4] = [
    ("dispatch.log", 1, "s1"),
    ("claims.log", 1, "s1"),
    ("dispatch.log", 2, "s2"),
    ("claims.log", 2, "s9"),
];

/// A migrator of every migration of `backend` before 0013, from a copy of those files in `dir`.
async fn migrator_before_sources(backend: &str, dir: &std::path::Path) -> sqlx::migrate::Migrator {
    let from = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    for e in std::fs::read_dir(&from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        if name.as_str() < "0013" {
            std::fs::copy(e.path(), dir.join(&name)).unwrap();
        }
    }
    sqlx::migrate::Migrator::new(dir).await.unwrap()
}

/// Writes [`OLD_LINES`] and the outcome rows of s1 (matched) and s2 (pending) into `$pool`, a
/// store of the schema before 0013, as that schema's code wrote them.
macro_rules! fill_old_store {
    ($pool:expr) => {{
        let pool = $pool;
        for (i, (source, line, session)) in OLD_LINES.iter().enumerate() {
            sqlx::query(
                "INSERT INTO events (received_at, source, line, session, entry_id, \
                 default_runtime, raw) VALUES ($1, $2, $3, $4, NULL, 'go', $5)",
            )
            .bind(1_795_428_000_000 + i as i64)
            .bind(*source)
            .bind(i64::from(*line))
            .bind(*session)
            .bind(format!("{{\"n\":{i}}}").into_bytes())
            .execute(&pool)
            .await
            .unwrap();
        }
        for (session, outcome) in [("s1", "matched"), ("s2", "pending")] {
            sqlx::query(
                "INSERT INTO outcomes (session, org, runner, dispatched_at, seen_at, outcome, \
                 latency_ms, skew_clamped, duplicate, duplicate_cross, reclaims) \
                 VALUES ($1, 'org_a', 'go', 10000, 1795428000000, $2, NULL, 0, 0, 0, 0)",
            )
            .bind(session)
            .bind(outcome)
            .execute(&pool)
            .await
            .unwrap();
        }
        pool.close().await;
    }};
}

/// A store made by the old schema opens: its lines keep their sources, order and bytes, its
/// totals stay, lines are deleted by origin and added under old and new sources alike, and a
/// second open (which knows no source ids yet) reads and writes the same.
async fn old_store_migrates(url: &str) {
    let store = Store::open(url).await.unwrap();
    let old = |i: usize| {
        let (source, line, session) = OLD_LINES[i];
        StoredLine {
            received_at: Timestamp(1_795_428_000_000 + i as i64),
            source: source.into(),
            line,
            session: Some(session.into()),
            entry_id: None,
            default_runtime: Some(Runner::Go),
            raw: format!("{{\"n\":{i}}}").into_bytes(),
        }
    };
    assert_eq!(
        store.lines().await.unwrap(),
        (0..4).map(old).collect::<Vec<_>>()
    );
    let totals = store.summary(&OutcomeFilter::default()).await.unwrap();
    assert_eq!(
        (totals.dispatched.go, totals.matched, totals.pending),
        (2, 1, 1)
    );
    // Each old row is keyed by its session's earliest stored line (s2's is line 2's), as a
    // replay finds it: a judgement written then lands on the row rather than beside it.
    store
        .commit(&Commit {
            outcomes: vec![OutcomeWrite::Judged(OutcomeRow {
                first_seen: Timestamp(1_795_428_000_000 + 2),
                ..row("s2", "org_a", 0, Outcome::Matched)
            })],
            ..Commit::default()
        })
        .await
        .unwrap();
    let totals = store.summary(&OutcomeFilter::default()).await.unwrap();
    assert_eq!(
        (totals.dispatched.go, totals.matched, totals.pending),
        (2, 2, 0)
    );
    let new = |source: &str, n: u32| StoredLine {
        source: source.into(),
        ..line("s3", n, b"{}")
    };
    store
        .commit(&Commit {
            lines: vec![new("claims.log", 3).into(), new("ts.log", 1).into()],
            evicted_lines: vec![("dispatch.log".into(), 1), ("claims.log".into(), 2)],
            ..Commit::default()
        })
        .await
        .unwrap();
    let expected = vec![old(1), old(2), new("claims.log", 3), new("ts.log", 1)];
    assert_eq!(store.lines().await.unwrap(), expected);
    drop(store);
    let again = Store::open(url).await.unwrap();
    assert_eq!(again.lines().await.unwrap(), expected);
    again
        .commit(&Commit {
            lines: vec![new("ts.log", 2).into()],
            evicted_lines: vec![("claims.log".into(), 1)],
            ..Commit::default()
        })
        .await
        .unwrap();
    assert_eq!(
        again.lines().await.unwrap(),
        [
            old(2),
            new("claims.log", 3),
            new("ts.log", 1),
            new("ts.log", 2)
        ]
    );
}

#[tokio::test]
async fn a_sqlite_store_of_the_old_schema_migrates() {
    let dir = tempfile::tempdir().unwrap();
    let migrations = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
    migrator_before_sources("sqlite", migrations.path())
        .await
        .run(&pool)
        .await
        .unwrap();
    fill_old_store!(pool);
    old_store_migrates(&path.display().to_string()).await;
}

#[tokio::test]
async fn a_postgres_store_of_the_old_schema_migrates() {
    let db = ScratchDb::new().await;
    let migrations = tempfile::tempdir().unwrap();
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    migrator_before_sources("postgres", migrations.path())
        .await
        .run(&pool)
        .await
        .unwrap();
    fill_old_store!(pool);
    old_store_migrates(&db.url).await;
}

/// A judgement of `id` matched, as dispatched by `org` to `runner` at 10,000 + `n` ms, its row
/// keyed as the dispatch's of [`row`]`(…, seen, …)`.
fn judged(id: &str, org: &str, runner: Runner, n: i64, seen: i64) -> OutcomeRow {
    OutcomeRow {
        runner,
        first_seen: row(id, org, seen, Outcome::Matched).first_seen,
        ..row(id, org, n, Outcome::Matched)
    }
}

/// The go and ts dispatches, matched and pending of `org`'s rows dispatched from 10,000 +
/// `since` ms until 10,000 + `until`.
async fn org_totals(store: &Store, org: &str, since: i64, until: i64) -> (u64, u64, u64, u64) {
    let t = store
        .summary(&OutcomeFilter {
            org: Some(org.into()),
            since: Some(Timestamp(10_000 + since)),
            until: Some(Timestamp(10_000 + until)),
        })
        .await
        .unwrap();
    (t.dispatched.go, t.dispatched.ts, t.matched, t.pending)
}

/// A judgement's dispatch columns (org, runner, dispatch time) replace the row's where they
/// differ, in a later commit or the same one as the dispatch, and filtered summaries follow
/// them; a judgement that agrees changes only the outcome.
async fn judgements_refile_their_rows(url: &str) {
    let store = Store::open(url).await.unwrap();
    commit_outcomes(
        &store,
        vec![
            OutcomeWrite::Dispatched(row("moved", "o1", 1, Outcome::Pending)),
            OutcomeWrite::Dispatched(row("kept", "o1", 2, Outcome::Pending)),
        ],
    )
    .await;
    commit_outcomes(
        &store,
        vec![
            OutcomeWrite::Judged(judged("moved", "o2", Runner::Ts, 50, 1)),
            OutcomeWrite::Judged(judged("kept", "o1", Runner::Go, 2, 2)),
            OutcomeWrite::Dispatched(row("same", "o1", 3, Outcome::Pending)),
            OutcomeWrite::Judged(judged("same", "o3", Runner::Go, 3, 3)),
        ],
    )
    .await;
    assert_eq!(org_totals(&store, "o1", 0, 100).await, (1, 0, 1, 0));
    assert_eq!(org_totals(&store, "o2", 50, 51).await, (0, 1, 1, 0));
    assert_eq!(org_totals(&store, "o2", 0, 50).await, (0, 0, 0, 0));
    assert_eq!(org_totals(&store, "o3", 3, 4).await, (1, 0, 1, 0));
}

/// A judgement that knows its row's dispatch columns are its own (`JudgedAsDispatched`)
/// writes only the outcome over a row already there — whatever dispatch columns it carries
/// — and a whole row where there is none; within one commit, a key any refiling judgement
/// wrote is refiled, whichever of its judgements came last.
async fn judgements_as_dispatched_write_the_outcome_only(url: &str) {
    let store = Store::open(url).await.unwrap();
    commit_outcomes(
        &store,
        vec![
            OutcomeWrite::Dispatched(row("kept", "o1", 1, Outcome::Pending)),
            OutcomeWrite::Dispatched(row("last", "o1", 2, Outcome::Pending)),
            OutcomeWrite::Dispatched(row("first", "o1", 3, Outcome::Pending)),
        ],
    )
    .await;
    commit_outcomes(
        &store,
        vec![
            OutcomeWrite::JudgedAsDispatched(judged("kept", "o2", Runner::Ts, 50, 1)),
            OutcomeWrite::JudgedAsDispatched(judged("new", "o3", Runner::Ts, 60, 4)),
            OutcomeWrite::JudgedAsDispatched(judged("last", "o2", Runner::Ts, 70, 2)),
            OutcomeWrite::Judged(judged("last", "o2", Runner::Ts, 70, 2)),
            OutcomeWrite::Judged(judged("first", "o2", Runner::Ts, 80, 3)),
            OutcomeWrite::JudgedAsDispatched(judged("first", "o2", Runner::Ts, 80, 3)),
        ],
    )
    .await;
    // "kept": judged, still o1's go dispatch at 1.
    assert_eq!(org_totals(&store, "o1", 0, 100).await, (1, 0, 1, 0));
    // "new": inserted whole.
    assert_eq!(org_totals(&store, "o3", 60, 61).await, (0, 1, 1, 0));
    // "last" and "first": refiled, whichever judgement of theirs came last.
    assert_eq!(org_totals(&store, "o2", 70, 81).await, (0, 2, 2, 0));
    assert_eq!(org_totals(&store, "o2", 0, 70).await, (0, 0, 0, 0));
}

on_both_stores!(
    sqlite_judgements_as_dispatched_write_the_outcome_only,
    postgres_judgements_as_dispatched_write_the_outcome_only,
    judgements_as_dispatched_write_the_outcome_only
);

on_both_stores!(
    sqlite_judgements_refile_their_rows,
    postgres_judgements_refile_their_rows,
    judgements_refile_their_rows
);

/// An outcome row is keyed by when its session was first seen and its id: a session id that
/// lives again after it was forgotten (first seen again, later) is a row of its own, each
/// write reaches only the row of its own life, a write for a life with no row changes
/// nothing, and retention prunes a life's row by when it was first seen.
async fn outcome_rows_are_one_per_life(url: &str) {
    let store = Store::open(url).await.unwrap();
    let life = |seen: i64, outcome: Outcome| OutcomeRow {
        first_seen: Timestamp(seen),
        ..row("s", "o1", 1, outcome)
    };
    let (first, second, none) = (1_000, 7_000, 5_000);
    let duplicate = |seen: i64, cross_runtime: bool| OutcomeWrite::Duplicate {
        session: "s".into(),
        first_seen: Timestamp(seen),
        cross_runtime,
    };
    let reclaimed = |seen: i64, total: u32| OutcomeWrite::Reclaimed {
        session: "s".into(),
        first_seen: Timestamp(seen),
        total,
    };
    commit_outcomes(
        &store,
        vec![
            OutcomeWrite::Dispatched(life(first, Outcome::Pending)),
            OutcomeWrite::Judged(life(first, Outcome::Late)),
            duplicate(first, false),
            reclaimed(first, 2),
        ],
    )
    .await;
    commit_outcomes(
        &store,
        vec![
            OutcomeWrite::Dispatched(life(second, Outcome::Pending)),
            // a replay of the first life's dispatch changes nothing
            OutcomeWrite::Dispatched(life(first, Outcome::Pending)),
            duplicate(second, true),
            duplicate(none, true),
            reclaimed(none, 9),
        ],
    )
    .await;
    let totals = |t: Totals| {
        (
            t.dispatched.go,
            t.late,
            t.pending,
            t.duplicate_claims,
            t.duplicate_claims_cross_runtime,
            t.reclaims,
        )
    };
    let everything = OutcomeFilter::default();
    let all = || store.summary(&everything);
    assert_eq!(totals(all().await.unwrap()), (2, 1, 1, 2, 1, 2));
    store
        .commit(&Commit {
            prune_before: Some(Timestamp(none)),
            ..Commit::default()
        })
        .await
        .unwrap();
    assert_eq!(
        totals(all().await.unwrap()),
        (1, 0, 1, 1, 1, 0),
        "the first life's row is past retention"
    );
}

on_both_stores!(
    sqlite_outcome_rows_are_one_per_life,
    postgres_outcome_rows_are_one_per_life,
    outcome_rows_are_one_per_life
);

/// A commit's duplicate marks and reclaim totals are written a statement per kind, however
/// many there are and in whatever order they came: a session marked twice, once across
/// runtimes, is a duplicate across runtimes; a session's totals keep the largest, within a
/// commit and across commits (a replay writes smaller ones again); a mark for a session
/// without a row changes nothing; and more sessions than one statement writes are all marked.
async fn duplicate_marks_and_reclaims_keep_the_most(url: &str) {
    let store = Store::open(url).await.unwrap();
    let n = 600; // above the rows one statement writes (512)
    let id = |i: i64| format!("s{i:04}");
    let duplicate = |i: i64, cross_runtime: bool| OutcomeWrite::Duplicate {
        session: id(i),
        first_seen: row(&id(i), "o1", i, Outcome::Pending).first_seen,
        cross_runtime,
    };
    let reclaimed = |i: i64, total: u32| OutcomeWrite::Reclaimed {
        session: id(i),
        first_seen: row(&id(i), "o1", i, Outcome::Pending).first_seen,
        total,
    };
    let mut outcomes: Vec<OutcomeWrite> = (0..n)
        .map(|i| OutcomeWrite::Dispatched(row(&id(i), "o1", i, Outcome::Pending)))
        .collect();
    // every session claimed twice; session 0 across runtimes between two marks that are not
    outcomes.extend((0..n).map(|i| duplicate(i, false)));
    outcomes.extend([duplicate(0, true), duplicate(0, false)]);
    // across runtimes first, then not
    outcomes.extend([duplicate(1, true), duplicate(1, false)]);
    // session 2: 3, then a smaller total
    outcomes.extend([reclaimed(2, 3), reclaimed(2, 2)]);
    // no row of its own
    outcomes.extend([duplicate(n + 1, true), reclaimed(n + 1, 7)]);
    store
        .commit(&Commit {
            outcomes,
            ..Commit::default()
        })
        .await
        .unwrap();
    let totals = |t: Totals| {
        (
            t.duplicate_claims,
            t.duplicate_claims_cross_runtime,
            t.reclaims,
        )
    };
    let everything = OutcomeFilter::default();
    let all = || store.summary(&everything);
    assert_eq!(totals(all().await.unwrap()), (600, 2, 3));
    // A replay's smaller total, then a larger one for another session.
    store
        .commit(&Commit {
            outcomes: vec![reclaimed(2, 1), reclaimed(3, 4), duplicate(3, false)],
            ..Commit::default()
        })
        .await
        .unwrap();
    assert_eq!(totals(all().await.unwrap()), (600, 2, 7));
}

on_both_stores!(
    sqlite_duplicate_marks_and_reclaims_keep_the_most,
    postgres_duplicate_marks_and_reclaims_keep_the_most,
    duplicate_marks_and_reclaims_keep_the_most
);

/// The commits of one `commit_all`, each making statements of its own (lines, checkpoint,
/// named state) and far more of them than are built ahead of the one running: they run in
/// the order their commits came in, so the last checkpoint of the file and the last value of
/// a name win and the lines keep their order.
fn numbered_commits(n: u32) -> Vec<Commit> {
    (1..=n)
        .map(|i| Commit {
            lines: vec![line("s", i, b"{}").into()],
            position: Some(checkpoint(7, u64::from(i))),
            state: vec![("probe", i.to_string())],
            ..Commit::default()
        })
        .collect()
}

async fn statements_run_in_their_commits_order(url: &str) {
    let store = Store::open(url).await.unwrap();
    store.commit_all(&numbered_commits(40)).await.unwrap();
    let lines = stored_lines(&store).await;
    assert_eq!(lines, (1..=40).collect::<Vec<_>>());
    assert_eq!(store.state("probe").await.unwrap().as_deref(), Some("40"));
    assert_eq!(checkpoints(&store).await, [stored(checkpoint(7, 40))]);
}

on_both_stores!(
    sqlite_statements_run_in_their_commits_order,
    postgres_statements_run_in_their_commits_order,
    statements_run_in_their_commits_order
);

/// A statement that fails after many have run, and while the next ones are built, ends the
/// commit with its error: none of its commits lands, and the store takes the next commit.
#[tokio::test]
async fn a_statement_failing_among_many_leaves_none_of_them() {
    use sqlx::Connection;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db").display().to_string();
    let store = Store::open(&path).await.unwrap();
    let mut admin = sqlx::SqliteConnection::connect(&format!("sqlite://{path}"))
        .await
        .unwrap();
    sqlx::query(
        "CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.line = 30 \
         BEGIN SELECT RAISE(FAIL, 'refused'); END",
    )
    .execute(&mut admin)
    .await
    .unwrap();
    let failed = store.commit_all(&numbered_commits(40)).await;
    assert!(failed.is_err(), "{failed:?}");
    assert_eq!(store.line_count().await.unwrap(), 0);
    assert_eq!(store.state("probe").await.unwrap(), None);
    assert_eq!(checkpoints(&store).await, []);
    sqlx::query("DROP TRIGGER refuse")
        .execute(&mut admin)
        .await
        .unwrap();
    store.commit_all(&numbered_commits(2)).await.unwrap();
    assert_eq!(store.line_count().await.unwrap(), 2);
    assert_eq!(store.state("probe").await.unwrap().as_deref(), Some("2"));
}
