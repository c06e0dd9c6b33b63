//! `verify` on `simulate`'s output must reproduce its truth.json exactly, for several seeds and
//! sizes: every total, every org, every ingest count and the watermark.

use serde_json::Value;

use crate::support::run_in;

/// `verify` on the workload `simulate --out w` wrote, as JSON.
pub const VERIFY_WORKLOAD: &[&str] = &[
    "verify",
    "--dispatch",
    "w/dispatch.log",
    "--dispatch",
    "w/vercel-drain.ndjson",
    "--claims",
    "go=w/go-daemon.log",
    "--claims",
    "ts=w/ts-worker.log",
    "--format",
    "json",
];

fn check(seed: u64, sessions: u64, extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let out = run_in(
        dir.path(),
        &[
            "simulate",
            "--out",
            "w",
            "--sessions",
            &sessions.to_string(),
            "--seed",
            &seed.to_string(),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let truth: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("w/truth.json")).unwrap())
            .unwrap();

    let mut args = VERIFY_WORKLOAD.to_vec();
    args.extend(extra);
    let out = run_in(dir.path(), &args, None);
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let ctx = format!("seed {seed}, {sessions} sessions");

    for (key, want) in truth["totals"].as_object().unwrap() {
        assert_eq!(&report["totals"][key], want, "{ctx}: totals.{key}");
    }
    let orgs = truth["orgs"].as_object().unwrap();
    assert_eq!(
        report["orgs"].as_object().unwrap().len(),
        orgs.len(),
        "{ctx}: org count"
    );
    for (org, counts) in orgs {
        for (key, want) in counts.as_object().unwrap() {
            assert_eq!(&report["orgs"][org][key], want, "{ctx}: orgs.{org}.{key}");
        }
    }
    assert_eq!(
        report["ingest"]["events"], truth["ingest"]["events"],
        "{ctx}: ingest.events"
    );
    assert_eq!(
        report["ingest"]["duplicates"], truth["ingest"]["duplicates"],
        "{ctx}: ingest.duplicates"
    );
    assert_eq!(
        report["ingest"]["rejected"], truth["ingest"]["rejected"],
        "{ctx}: ingest.rejected"
    );
    assert_eq!(report["watermark"], truth["watermark"], "{ctx}: watermark");

    // Injected faults fail the verification, and every failing session is a finding.
    assert_eq!(report["verdict"], "fail", "{ctx}");
    assert_eq!(out.status.code(), Some(1), "{ctx}");
    let t = &truth["totals"];
    let n = |k: &str| t[k].as_u64().unwrap();
    assert!(
        report["findings_total"].as_u64().unwrap() >= n("late") + n("mismatched") + n("unclaimed"),
        "{ctx}"
    );
}

#[test]
fn verify_matches_truth_seed_1() {
    check(1, 3_000, &[]);
}

#[test]
fn verify_matches_truth_seed_7() {
    check(7, 12_000, &[]);
}

#[test]
fn verify_matches_truth_seed_42_larger() {
    check(42, 60_000, &[]);
}

/// Past the session cap, sessions are judged early: memory stays bounded, and the report says
/// so instead of passing on split evidence.
#[test]
fn a_session_cap_bounds_memory_and_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    run_in(
        dir.path(),
        &[
            "simulate",
            "--out",
            "w",
            "--sessions",
            "5000",
            "--seed",
            "9",
        ],
        None,
    );
    let mut args = VERIFY_WORKLOAD.to_vec();
    args.extend(["--max-sessions", "1000", "--org", "nobody-selects-this"]);
    let out = run_in(dir.path(), &args, None);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["ingest"]["evicted_sessions"].as_u64().unwrap() >= 4000,
        "{}",
        report["ingest"]
    );
    assert_eq!(report["verdict"], "inconclusive");
    assert!(
        report["reason"].as_str().unwrap().contains("session cap"),
        "{}",
        report["reason"]
    );
    // without the cap the same input is judged in full
    let out = run_in(dir.path(), VERIFY_WORKLOAD, None);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ingest"]["evicted_sessions"], 0);
}
