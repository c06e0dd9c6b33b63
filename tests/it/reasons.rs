//! One rejection reason per line shape, in `verify` and in `serve`, and a headline that names
//! a configuration mistake before the sessions it made fail.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Server, claimcheck, free_port, http_get, run_in, wait_until};

const T: &str = "2026-11-23T10:00:00Z";

/// Hostile lines a dispatcher's log may carry, with the reason both modes must give each.
fn dispatch_lines() -> Vec<(String, &'static str)> {
    vec![
        (
            format!(r#"{{"event":"dispatch","sessionId":"","organizationId":"o","time":"{T}"}}"#),
            "missing_session_id",
        ),
        // No time either: the session id decides, in both modes.
        (
            r#"{"event":"dispatch","sessionId":"","organizationId":"o"}"#.into(),
            "missing_session_id",
        ),
        (
            r#"{"event":"claimed","sessionId":12345}"#.into(),
            "missing_session_id",
        ),
        // A claim in the dispatcher's log: no runtime to give it.
        (
            format!(r#"{{"event":"claimed","sessionId":"c1","time":"{T}"}}"#),
            "missing_runtime",
        ),
        (
            r#"{"event":"dispatch","sessionId":"d1","time":"half past ten"}"#.into(),
            "bad_time",
        ),
        (
            r#"{"event":"dispatch","sessionId":"d2","#.into(),
            "malformed_json",
        ),
    ]
}

/// …and a go daemon's.
fn claim_lines() -> Vec<(String, &'static str)> {
    vec![
        (
            r#"{"event":"claimed","sessionId":12345}"#.into(),
            "missing_session_id",
        ),
        (
            r#"{"event":"claimed","sessionId":""}"#.into(),
            "missing_session_id",
        ),
        (
            r#"{"event":"completed","sessionId":null,"time":1795428000}"#.into(),
            "missing_session_id",
        ),
        (
            r#"{"event":"claimed","sessionId":"c2","time":true}"#.into(),
            "bad_time",
        ),
        (
            r#"{"event":"claimed","sessionId":"c3","#.into(),
            "malformed_json",
        ),
    ]
}

fn expected() -> BTreeMap<String, u64> {
    let mut want = BTreeMap::new();
    for (_, reason) in dispatch_lines().iter().chain(&claim_lines()) {
        *want.entry((*reason).to_owned()).or_default() += 1;
    }
    want
}

fn write(dir: &std::path::Path, name: &str, lines: &[(String, &str)]) {
    let text: String = lines.iter().map(|(l, _)| format!("{l}\n")).collect();
    std::fs::write(dir.join(name), text).unwrap();
}

/// `claimcheck_rejected_lines_total` of this test's files (named uniquely, so a server of
/// another test on a reused port is not mistaken for ours) summed by reason, once serve has
/// read `lines` lines of them.
///
/// A scrape is not a snapshot (it can show a line counted and not yet its rejection), so the
/// counts are read until they equal `want` (verify's); a disagreement that lasts 20 s is
/// returned for the caller to fail on.
fn serve_reasons(port: u16, lines: u64, want: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    let ours = |l: &&str| l.contains("/reasons-");
    let value = |l: &str| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
    let mut read = 0;
    let mut by = BTreeMap::new();
    let mut last = String::new();
    wait_until(Instant::now() + Duration::from_secs(20), || {
        last = http_get(port, "/metrics").unwrap_or_default();
        read = last
            .lines()
            .filter(|l| l.starts_with("claimcheck_ingest_lines_total{"))
            .filter(ours)
            .filter_map(value)
            .sum::<f64>() as u64;
        by.clear();
        for l in last
            .lines()
            .filter(|l| l.starts_with("claimcheck_rejected_lines_total{"))
            .filter(ours)
        {
            let reason = l
                .split("reason=\"")
                .nth(1)
                .and_then(|r| r.split('"').next());
            let n = value(l).unwrap_or(0.0) as u64;
            if let Some(reason) = reason
                && n > 0
            {
                *by.entry(reason.to_owned()).or_default() += n;
            }
        }
        read >= lines && by == *want
    });
    assert!(
        read >= lines,
        "serve did not read {lines} lines within 20 s:\n{last}"
    );
    by
}

#[test]
fn verify_and_serve_give_a_line_the_same_rejection_reason() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "reasons-dispatch.log", &dispatch_lines());
    write(dir.path(), "reasons-daemon.log", &claim_lines());
    let want = expected();

    let out = run_in(
        dir.path(),
        &[
            "verify",
            "--dispatch",
            "reasons-dispatch.log",
            "--claims",
            "go=reasons-daemon.log",
            "--format",
            "json",
        ],
        None,
    );
    let r: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let verify: BTreeMap<String, u64> =
        serde_json::from_value(r["ingest"]["rejected"].clone()).unwrap();
    assert_eq!(verify, want, "verify");

    let port = free_port();
    let _server = Server(
        claimcheck()
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--file")
            .arg(dir.path().join("reasons-dispatch.log"))
            .arg("--file")
            .arg(format!(
                "go={}",
                dir.path().join("reasons-daemon.log").display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let lines = (dispatch_lines().len() + claim_lines().len()) as u64;
    assert_eq!(serve_reasons(port, lines, &verify), verify, "serve");
}

#[test]
fn a_claims_input_rejected_whole_is_named_first_in_the_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let (mut d, mut c) = (String::new(), String::new());
    for i in 0..4 {
        d.push_str(&format!(
            "{{\"event\":\"dispatch\",\"sessionId\":\"s{i}\",\"time\":\"{T}\"}}\n"
        ));
        c.push_str(&format!(
            "{{\"event\":\"claimed\",\"sessionId\":\"s{i}\",\"workerId\":\"w\",\"time\":\"2026-11-23T10:00:01Z\"}}\n"
        ));
    }
    d.push_str(r#"{"event":"dispatch","sessionId":"late","time":"2026-11-23T11:00:00Z"}"#);
    std::fs::write(dir.path().join("dispatch.log"), d).unwrap();
    std::fs::write(dir.path().join("ts-workers.log"), c).unwrap();
    let args = [
        "verify",
        "--dispatch",
        "dispatch.log",
        "--claims",
        "ts-workers.log",
    ];
    let out = run_in(dir.path(), &args, None);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap();
    assert!(
        first.contains(
            "FAIL: ts-workers.log: 4 of 4 claim lines rejected: missing_runtime — pass --claims \
             ts=PATH; 4 of 5 sessions fail: 4 unclaimed"
        ),
        "{text}"
    );
    // Given its runtime, the same input passes, and nothing is headlined.
    let out = run_in(
        dir.path(),
        &[
            "verify",
            "--dispatch",
            "dispatch.log",
            "--claims",
            "ts=ts-workers.log",
            "--format",
            "json",
        ],
        None,
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["verdict"], "pass", "{}", r["reason"]);
    assert!(!r["reason"].as_str().unwrap().contains("rejected"));
}

#[test]
fn a_post_flip_report_names_a_rejected_input_first_too() {
    let dir = tempfile::tempdir().unwrap();
    let (mut d, mut c) = (String::new(), String::new());
    for i in 0..6 {
        d.push_str(&format!(
            "{{\"event\":\"dispatch\",\"sessionId\":\"s{i}\",\"organizationId\":\"o\",\
             \"resolvedProfile\":{{\"runner\":\"go\"}},\"time\":\"2026-11-23T10:0{i}:00Z\"}}\n"
        ));
        c.push_str(&format!(
            "{{\"event\":\"claimed\",\"sessionId\":\"s{i}\",\"workerId\":\"g\",\
             \"time\":\"2026-11-23T10:0{i}:01Z\"}}\n"
        ));
    }
    std::fs::write(dir.path().join("dispatch.log"), d).unwrap();
    std::fs::write(dir.path().join("go-daemon.log"), c).unwrap();
    let out = run_in(
        dir.path(),
        &[
            "report",
            "--org",
            "o",
            "--flip-at",
            "2026-11-23T10:00:00Z",
            "--window",
            "5m",
            "--dispatch",
            "dispatch.log",
            "--claims",
            "go-daemon.log",
            "--format",
            "json",
        ],
        None,
    );
    let r: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let reason = r["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(
            "go-daemon.log: 6 of 6 claim lines rejected: missing_runtime — pass --claims go=PATH; "
        ),
        "{reason}"
    );
    // Every claim rejected: the claims source delivered nothing, so absence of claims proves
    // nothing — inconclusive, not a mass outage.
    assert_eq!(r["verdict"], "inconclusive", "{reason}");
}
