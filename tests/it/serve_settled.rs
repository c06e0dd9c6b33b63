//! `serve` judged on settled evidence: simulate's four files appended one after another, each
//! only once serve has read the one before (as sources with very different delivery delays
//! would deliver them), must be judged exactly as `verify` judges the finished files.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::serve_files::metric_sum;
use crate::support::{
    Server, claimcheck, free_port, http_get, lines_of, simulated_with_verify_totals,
};

const FILES: [(&str, Option<&str>); 4] = [
    ("dispatch.log", None),
    ("vercel-drain.ndjson", None),
    ("go-daemon.log", Some("go")),
    ("ts-worker.log", Some("ts")),
];

/// Appends the files in `order` (indexes into `FILES`), each once serve has read the one
/// before, then compares `/metrics` and `/api/summary` with `verify`.
fn appended_one_after_another(order: [usize; 4]) {
    let dir = tempfile::tempdir().unwrap();
    let t = simulated_with_verify_totals(dir.path(), 11, 3000);

    // The files exist (empty) when serve starts: each is a known source from the start and
    // holds judgements back until it has delivered past them or gone idle.
    let live = dir.path().join("live");
    std::fs::create_dir(&live).unwrap();
    for (f, _) in FILES {
        std::fs::write(live.join(f), b"").unwrap();
    }
    let config = dir.path().join("serve.toml");
    // Idle after 10 s: longer than serve takes to read one file (the gap between two
    // sources here); the orphan grace is longer than the whole replay.
    std::fs::write(
        &config,
        "[serve]\nsource_idle_after = \"10s\"\nmax_hold = \"5m\"\norphan_grace = \"20s\"\n",
    )
    .unwrap();
    let port = free_port();
    let mut cmd = claimcheck();
    cmd.args([
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--config",
    ])
    .arg(&config)
    .arg("--store")
    .arg(dir.path().join("state.db"));
    for (f, rt) in FILES {
        let p = live.join(f).display().to_string();
        cmd.arg("--file")
            .arg(rt.map_or(p.clone(), |rt| format!("{rt}={p}")));
    }
    let _server = Server(
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(50);
    while http_get(port, "/api/summary").is_none() {
        assert!(Instant::now() < deadline, "serve did not start");
    }

    for i in order {
        let (f, _) = FILES[i];
        let from = dir.path().join("w").join(f);
        std::fs::write(live.join(f), std::fs::read(&from).unwrap()).unwrap();
        let want = lines_of(&from) as f64;
        // The source label is the configured path: match its file name.
        let filter = format!("/{f}\"");
        loop {
            let read = http_get(port, "/metrics").map_or(0.0, |m| {
                metric_sum(&m, "claimcheck_ingest_lines_total", &filter)
            });
            if read == want {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{f}: read {read} of {want} lines"
            );
        }
    }

    let want = |key: &str| t[key].as_u64().unwrap() as f64;
    let expected = [
        want("matched"),
        want("late"),
        want("mismatched"),
        want("duplicate_claims"),
        want("orphan_claims"),
    ];
    assert!(
        expected[2] > 0.0 && expected[3] > 0.0,
        "the workload has faults: {t}"
    );
    let mut seen = [0.0; 5];
    while Instant::now() < deadline {
        let Some(m) = http_get(port, "/metrics") else {
            continue;
        };
        seen = [
            metric_sum(&m, "claimcheck_outcomes_total", r#"outcome="matched""#),
            metric_sum(&m, "claimcheck_outcomes_total", r#"outcome="late""#),
            metric_sum(&m, "claimcheck_outcomes_total", r#"outcome="mismatched""#),
            metric_sum(&m, "claimcheck_duplicate_claims_total", ""),
            metric_sum(&m, "claimcheck_orphan_claims_total", ""),
        ];
        if seen == expected {
            assert_eq!(
                metric_sum(&m, "claimcheck_judged_before_settled_total", ""),
                0.0,
                "nothing judged before it settled"
            );
            break;
        }
    }
    assert_eq!(
        seen, expected,
        "matched, late, mismatched, duplicate, orphan: serve /metrics vs verify"
    );
    // The summary is published once its commit lands, a moment after the metrics move: wait
    // for it (bounded), then compare every key.
    let keys = [
        "dispatched",
        "matched",
        "late",
        "mismatched",
        "duplicate_claims",
        "duplicate_claims_cross_runtime",
        "orphan_claims",
        "reclaims",
        "skew_clamped",
    ];
    let mut got = Value::Null;
    while Instant::now() < deadline {
        if let Some(body) = http_get(port, "/api/summary") {
            got = serde_json::from_str(&body).unwrap();
            if keys.iter().all(|k| got[k] == t[k]) {
                break;
            }
        }
    }
    for key in keys {
        assert_eq!(
            got[key], t[key],
            "{key}: serve /api/summary {got} vs verify {t}"
        );
    }
}

#[test]
fn four_files_appended_one_after_another_are_judged_as_verify_judges_them() {
    appended_one_after_another([0, 1, 2, 3]);
}

#[test]
fn claims_before_dispatches_are_judged_as_verify_judges_them() {
    appended_one_after_another([2, 3, 1, 0]);
}
