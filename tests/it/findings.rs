//! Durable findings through the real binary and the store: every finding survives a SIGKILL
//! and a restart exactly (the replay of the stored lines finds nothing twice), and a page of
//! `GET /api/findings` stays fast on a large store.

use std::path::Path;
use std::time::{Duration, Instant};

use claimcheck::event::{FindingKind, Timestamp};
use claimcheck::store::{Commit, FindingFilter, FindingWrite, NewFinding, Store};
use serde_json::Value;

use crate::scratch_db::ScratchDb;
use crate::support::{
    Server, follow_simulated, free_port, http_get, serve_cmd, simulated_with_verify_totals,
    wait_until,
};

fn start(port: u16, store: &str, config: &Path, w: &Path) -> Server {
    Server(
        follow_simulated(&mut serve_cmd(port, config, store), w)
            .spawn()
            .unwrap(),
    )
}

/// Every finding `query` selects, page after page (`limit` a page).
pub fn every_finding(port: u16, query: &str, limit: u32) -> Option<Vec<Value>> {
    let mut all = Vec::new();
    let mut cursor = String::new();
    for _ in 0..10_000 {
        let body = http_get(
            port,
            &format!("/api/findings?limit={limit}&{query}{cursor}"),
        )?;
        let page: Value = serde_json::from_str(&body).ok()?;
        let found = page["findings"].as_array()?;
        if found.is_empty() {
            return Some(all);
        }
        all.extend(found.iter().cloned());
        cursor = format!("&cursor={}", page["next_cursor"].as_str()?);
    }
    panic!("more than 10,000 pages");
}

fn of_kind<'a>(all: &'a [Value], kind: &str) -> Vec<&'a Value> {
    all.iter().filter(|f| f["kind"] == kind).collect()
}

const KEYS: [&str; 5] = [
    "matched",
    "late",
    "mismatched",
    "duplicate_claims",
    "orphan_claims",
];

/// Serve over simulate's files until its totals and findings are verify's, SIGKILL, restart:
/// the same findings, field for field, page after page.
fn findings_survive_kill_9(store: &str) {
    let dir = tempfile::tempdir().unwrap();
    let t = simulated_with_verify_totals(dir.path(), 11, 1000);
    let want = |k: &str| t[k].as_u64().unwrap();
    assert!(
        want("late") > 0 && want("mismatched") > 0 && want("duplicate_claims") > 0,
        "the workload has faults: {t}"
    );
    let config = dir.path().join("serve.toml");
    // Orphan claims are judged on settled evidence: with an hour's grace, only once every file
    // is read to its end and idle (a claim read before its dispatch is never one), whatever
    // the load; the maximum hold on top of it outlasts the test.
    std::fs::write(&config, "[serve]\norphan_grace = \"1h\"\n").unwrap();
    let w = dir.path().join("w");
    let settled = |port: u16| -> Option<Vec<Value>> {
        let s: Value = serde_json::from_str(&http_get(port, "/api/summary")?).ok()?;
        if KEYS.iter().any(|k| s[*k] != t[*k]) {
            return None;
        }
        let all = every_finding(port, "", 37)?;
        let counted = [
            ("late", "late"),
            ("mismatched", "mismatched"),
            ("orphan_claim", "orphan_claims"),
        ];
        counted
            .iter()
            .all(|(kind, key)| of_kind(&all, kind).len() as u64 == want(key))
            .then_some(all)
    };
    let wait = |port: u16| {
        let mut all = None;
        if wait_until(Instant::now() + Duration::from_secs(90), || {
            all = settled(port);
            all.is_some()
        }) && let Some(all) = all
        {
            return all;
        }
        panic!(
            "not settled within 90 s: verify {t}, summary {:?}",
            http_get(port, "/api/summary")
        );
    };

    let port = free_port();
    let mut server = start(port, store, &config, &w);
    let before = wait(port);
    let duplicates = of_kind(&before, "duplicate_claim").len()
        + of_kind(&before, "duplicate_claim_cross_runtime").len();
    assert!(duplicates as u64 >= want("duplicate_claims"), "{before:?}");
    let _ = server.0.kill(); // SIGKILL
    let _ = server.0.wait();

    let port = free_port();
    let _server = start(port, store, &config, &w);
    let after = wait(port);
    assert_eq!(after.len(), before.len());
    assert_eq!(
        after, before,
        "the same findings after a SIGKILL and a restart"
    );
    // Filters through the binary: a kind and an org select exactly their findings.
    let late = of_kind(&before, "late");
    let org = late[0]["org"].as_str().unwrap();
    let picked = every_finding(port, &format!("kind=late&org={org}"), 5).unwrap();
    let expected: Vec<Value> = late
        .iter()
        .filter(|f| f["org"] == org)
        .map(|f| (*f).clone())
        .collect();
    assert_eq!(picked, expected);
}

#[test]
fn findings_survive_kill_9_and_restart_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    findings_survive_kill_9(&dir.path().join("state.db").display().to_string());
}

#[test]
fn findings_survive_kill_9_and_restart_on_postgres() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(ScratchDb::new());
    findings_survive_kill_9(&db.url);
}

/// Writes `n` findings across 10 kinds and 100 orgs (one org a hundred times rarer), 1,000 a
/// commit, found 1 ms apart.
async fn fill(store: &Store, n: i64) {
    let kinds = FindingKind::ALL;
    for chunk in 0..n / 1000 {
        let findings = (chunk * 1000..(chunk + 1) * 1000)
            .map(|i| {
                let org = if i % 10_000 == 7 {
                    "rare".to_owned()
                } else {
                    format!("org_{}", i % 100)
                };
                FindingWrite::Found(NewFinding {
                    kind: kinds[(i % 10) as usize],
                    key: format!("s{i}"),
                    session: Some(format!("s{i}")),
                    org: Some(org),
                    runner: "go",
                    found_at: Timestamp(1_795_428_000_000 + i),
                    detail: Some("dispatched to go; first claim 130 s after it".into()),
                })
            })
            .collect();
        store
            .commit(&Commit {
                findings,
                ..Commit::default()
            })
            .await
            .unwrap();
    }
}

/// Pages of 100 from the first, the middle and the end of a 100,000-finding store, with every
/// filter shape (none, kind, org, kind and org, a rare org, a window), in both orders: each
/// planned as a range of one index (never a scan of the table), and the slowest under a
/// second.
#[allow(clippy::print_stdout)] // the figures the README cites
async fn pages_stay_fast(url: &str) {
    let store = Store::open(url).await.unwrap();
    let n = 100_000;
    let filled = Instant::now();
    fill(&store, n).await;
    let filled = filled.elapsed();
    if url.starts_with("postgres") {
        // Postgres plans from statistics; autovacuum would take them in its own time.
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query("ANALYZE findings")
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let at = |i: i64| Some(Timestamp(1_795_428_000_000 + i));
    let shapes: Vec<(&str, FindingFilter)> = vec![
        ("all", FindingFilter::default()),
        (
            "kind",
            FindingFilter {
                kind: Some(FindingKind::Flip),
                ..FindingFilter::default()
            },
        ),
        (
            "org",
            FindingFilter {
                org: Some("org_42".into()),
                ..FindingFilter::default()
            },
        ),
        (
            "kind+org",
            FindingFilter {
                kind: Some(FindingKind::Late),
                org: Some("org_50".into()),
                ..FindingFilter::default()
            },
        ),
        (
            "rare org",
            FindingFilter {
                org: Some("rare".into()),
                kind: Some(FindingKind::MalformedFlag),
                ..FindingFilter::default()
            },
        ),
        (
            "window",
            FindingFilter {
                since: at(60_000),
                until: at(61_000),
                ..FindingFilter::default()
            },
        ),
    ];
    let mut slowest = (Duration::ZERO, "");
    let mut pages = 0;
    for (name, filter) in &shapes {
        for start in [None, at(n / 2), at(n - 150)] {
            for newest_first in [false, true] {
                let mut f = filter.clone();
                f.newest_first = newest_first;
                f.after = start.map(|t| claimcheck::store::FindingCursor {
                    found_at: t,
                    id: if newest_first { i64::MAX } else { 0 },
                });
                // A range of one of the findings indexes, never a scan of the table. SQLite
                // reads the index in the page's order (no sort); Postgres may sort the rows
                // of a range it expects to be small (a cursor near the end).
                let plan = store.explain_findings(&f).await.unwrap();
                let indexed = ["INDEX findings_", " on findings_", "using findings_"]
                    .iter()
                    .any(|w| plan.contains(w));
                let scanned = plan.contains("Seq Scan")
                    || plan
                        .lines()
                        .any(|l| l.contains("SCAN findings") && !l.contains("INDEX"));
                let sqlite_sorts = plan.contains("TEMP B-TREE");
                assert!(
                    indexed && !scanned && !sqlite_sorts,
                    "{name}: {f:?}\n{plan}"
                );
                // Three pages on from there, each after the last.
                for _ in 0..3 {
                    let t0 = Instant::now();
                    let page = store.findings(&f).await.unwrap();
                    let took = t0.elapsed();
                    pages += 1;
                    if took > slowest.0 {
                        slowest = (took, name);
                    }
                    match page.findings.last() {
                        Some(l) => f.after = Some(l.position()),
                        None => break,
                    }
                }
            }
        }
    }
    let rare = store
        .findings(&FindingFilter {
            org: Some("rare".into()),
            ..FindingFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(rare.findings.len(), 10, "one in 10,000 is the rare org's");
    println!(
        "{} findings written in {filled:?}; {pages} pages of 100, slowest {:?} ({})",
        n, slowest.0, slowest.1
    );
    assert!(
        slowest.0 < Duration::from_secs(1),
        "slowest page {:?} ({})",
        slowest.0,
        slowest.1
    );
}

#[tokio::test]
async fn finding_pages_stay_fast_on_a_large_sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    pages_stay_fast(&dir.path().join("state.db").display().to_string()).await;
}

#[tokio::test]
async fn finding_pages_stay_fast_on_a_large_postgres_store() {
    let db = ScratchDb::new().await;
    pages_stay_fast(&db.url).await;
}
