//! `GET /api/summary?org=&since=&until=` stays bounded on a large store: SQL aggregates over
//! the per-session outcome rows, never a re-judging of the stored lines. The real binary on a
//! store of 150,000 judged sessions answers filtered summaries quickly, and concurrent ones
//! neither grow its memory nor go past the concurrency limit (429 `summary_busy` beyond it).

use std::time::{Duration, Instant};

use claimcheck::correlate::Outcome;
use claimcheck::event::{Runner, Timestamp};
use claimcheck::store::{OutcomeRow, OutcomeWrite, Store};

use crate::support::{Server, claimcheck, commit_outcomes, free_port, http_get_status, rss_kb};

const SESSIONS: i64 = 150_000;
const ORGS: i64 = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_summaries_stay_bounded_on_a_large_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db").display().to_string();
    let store = Store::open(&db).await.unwrap();
    let now = 1_795_428_000_000;
    for chunk in (0..SESSIONS).collect::<Vec<_>>().chunks(10_000) {
        let outcomes = chunk
            .iter()
            .map(|&i| {
                OutcomeWrite::Judged(OutcomeRow {
                    session: format!("s{i:07}"),
                    org: Some(format!("org{}", i % ORGS)),
                    runner: if i % 3 == 0 { Runner::Ts } else { Runner::Go },
                    dispatched_at: Timestamp(now + i * 1000),
                    first_seen: Timestamp(now),
                    outcome: if i % 10 == 0 {
                        Outcome::Late
                    } else {
                        Outcome::Matched
                    },
                    latency_ms: Some(1000),
                    skew_clamped: false,
                })
            })
            .collect();
        commit_outcomes(&store, outcomes).await;
    }
    drop(store);

    let port = free_port();
    let server = Server(
        claimcheck()
            .args(["serve", "--ingest-token", "t", "--store", &db, "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            // the rows are days old on the sidecar's clock: kept for the test
            .env("CLAIMCHECK_SERVE_RETENTION", "3650d")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = server.0.id();
    crate::support::until(60, "/healthz answering 200", || {
        http_get_status(port, "/healthz").is_some_and(|(s, _)| s == 200)
    });
    let since = Timestamp(now + 1000 * 1000).to_rfc3339();
    let path = format!("/api/summary?org=org7&since={since}");
    let (status, body) = http_get_status(port, &path).unwrap();
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    // org7: sessions 7, 57, 107, …; since session 1000.
    let want = (1000..SESSIONS).filter(|i| i % ORGS == 7).count() as u64;
    let got = v["dispatched"]["go"].as_u64().unwrap() + v["dispatched"]["ts"].as_u64().unwrap();
    assert_eq!(got, want, "{v}");
    assert_eq!(
        v["late"].as_u64().unwrap(),
        (1000..SESSIONS)
            .filter(|i| i % ORGS == 7 && i % 10 == 0)
            .count() as u64
    );

    let before = rss_kb(pid);
    assert!(before > 0, "serve (pid {pid}) is gone");
    let mut slowest = Duration::ZERO;
    let mut busy = 0;
    for round in 0..5 {
        let handles: Vec<_> = (0..8)
            .map(|k| {
                let path = format!(
                    "/api/summary?org=org{}&since={since}",
                    (round * 8 + k) % ORGS
                );
                std::thread::spawn(move || {
                    let t = Instant::now();
                    let (status, body) = http_get_status(port, &path).unwrap();
                    (status, body, t.elapsed())
                })
            })
            .collect();
        for h in handles {
            let (status, body, took) = h.join().unwrap();
            assert!(status == 200 || status == 429, "{status} {body}");
            if status == 429 {
                assert!(body.contains("summary_busy"), "{body}");
                busy += 1;
            }
            slowest = slowest.max(took);
        }
    }
    // time-only filters scan the dispatch-time index
    let t = Instant::now();
    let (status, _) = http_get_status(port, &format!("/api/summary?since={since}")).unwrap();
    assert_eq!(status, 200);
    let window = t.elapsed();
    let after = rss_kb(pid);
    assert!(after > 0, "serve (pid {pid}) is gone");
    #[allow(clippy::print_stderr)]
    {
        eprintln!(
            "{SESSIONS} sessions: 40 filtered summaries (8 at once), slowest {slowest:?}, {busy} refused busy; \
             since-only {window:?}; RSS {before} KiB before, {after} KiB after"
        );
    }
    assert!(slowest < Duration::from_secs(5), "slowest {slowest:?}");
    assert!(
        after < before + 64 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
}
