//! `serve` stays bounded: past `--max-sessions` the oldest sessions are judged early, counted
//! and dropped — from memory (RSS read from /proc) and from the store, so a restart neither
//! loses them from the totals nor counts them twice.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::serve_files::metric_sum;
use crate::support::{
    Server, claimcheck, free_port, http_get, http_get_status, metric, rss_kb, wait_until,
};

/// Sessions dispatched, never claimed (each stays pending), and the cap.
const SESSIONS: u64 = 120_000;
const CAP: u64 = 10_000;

fn start(port: u16, store: &str, file: &std::path::Path, cap: Option<u64>) -> Server {
    let mut cmd = claimcheck();
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--store"])
        .arg(store)
        .arg("--file")
        .arg(file)
        // Far from every deadline: the sessions stay pending.
        .args(["--claim-timeout", "1h"]);
    if let Some(cap) = cap {
        cmd.args(["--max-sessions", &cap.to_string()]);
    }
    Server(
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Waits (bounded) until `ready` holds for the summary and the metrics (a summary refused
/// while the store is replayed is not one).
fn until(port: u16, what: &str, ready: impl Fn(&Value, &str) -> bool) -> (Value, String) {
    let deadline = Instant::now() + Duration::from_secs(150);
    let mut last = Value::Null;
    let mut got = None;
    let reached = wait_until(deadline, || {
        if let (Some((200, s)), Some(m)) = (
            http_get_status(port, "/api/summary"),
            http_get(port, "/metrics"),
        ) && let Ok(v) = serde_json::from_str::<Value>(&s)
        {
            if ready(&v, &m) {
                got = Some((v, m));
                return true;
            }
            last = v;
        }
        false
    });
    match got {
        Some(got) if reached => got,
        _ => panic!("{what}: not reached within 150 s; last summary {last}"),
    }
}

fn workload(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("dispatch.log");
    let mut text = String::with_capacity(SESSIONS as usize * 110);
    for i in 0..SESSIONS {
        let (s, ms) = (i / 1000, i % 1000);
        let (m, s) = (s / 60, s % 60);
        text.push_str(&format!(
            "{{\"event\":\"dispatch\",\"sessionId\":\"s{i:07}\",\"resolvedProfile\":{{\"runner\":\"go\"}},\"time\":\"2026-11-23T10:{m:02}:{s:02}.{ms:03}Z\"}}\n"
        ));
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// 120,000 pending sessions past a cap of 10,000: the overflow is counted, the pending gauge
/// and RSS stay bounded, every dispatch stays in the totals; SIGKILL and a restart on the same
/// store give the same totals (evicted sessions are neither lost nor counted again).
#[test]
fn max_sessions_bounds_memory_and_a_restart_keeps_the_totals() {
    let dir = tempfile::tempdir().unwrap();
    let file = workload(dir.path());
    let store = dir.path().join("state.db").to_string_lossy().into_owned();
    let port = free_port();
    let server = start(port, &store, &file, Some(CAP));
    let all_read = |s: &Value, m: &str| {
        metric_sum(m, "claimcheck_ingest_lines_total", "") as u64 == SESSIONS
            && s["dispatched"]["go"] == SESSIONS
    };
    let (s, m) = until(port, "all lines read", all_read);
    let evicted = metric(&m, "claimcheck_sessions_evicted_total").unwrap_or(0.0) as u64;
    assert!(
        (SESSIONS - CAP..SESSIONS).contains(&evicted),
        "{evicted} evicted"
    );
    let pending = s["pending"].as_u64().unwrap();
    assert!(pending <= CAP, "pending {pending} over the cap");
    assert_eq!(pending + evicted, SESSIONS, "{s}");
    let rss = rss_kb(server.0.id());
    eprintln!(
        "max-sessions {CAP}, {SESSIONS} pending sessions offered: RSS {rss} kB, {evicted} evicted"
    );
    // Measured on the debug binary (loaded machine): 92–109 MB with the cap, 168 MB without
    // it, 42 MB at rest.
    assert!(rss < 150 * 1024, "RSS {rss} kB with a cap of {CAP}");
    // Freed batch buffers are given back at once; fresh ones must not be faulted in as huge
    // pages the kernel zeroes whole (`cli/serve.rs`).
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.0.id())).unwrap();
    assert!(
        status
            .lines()
            .any(|l| l.split_whitespace().eq(["THP_enabled:", "0"])),
        "serve runs with transparent huge pages on: {status}"
    );

    drop(server);
    let server = start(port, &store, &file, Some(CAP));
    let (s, _) = until(port, "recovered", |s, _| s["dispatched"]["go"] != 0);
    assert_eq!(s["dispatched"]["go"], SESSIONS, "after a restart: {s}");
    assert_eq!(s["pending"].as_u64().unwrap(), pending, "{s}");
    drop(server);
}
