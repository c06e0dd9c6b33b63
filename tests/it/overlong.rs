//! One rule for over-long lines, through the real binary: a 4.5 MiB text-prefixed line whose
//! JSON dispatch sits at its end (and another dispatch just past the first `max_line_bytes`,
//! where a reader that cut the line would start a "next line"), between two ordinary
//! dispatches. `verify`, `serve` following the file (the line written in pieces, so that the
//! follower sees it across many reads), `serve --stdin` and `POST /ingest/ndjson` must all
//! count it `too_long` once, keep both neighbours, and dispatch no ghost.

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{
    Server, append, claimcheck, dispatch, free_port, http_get, run_in, wait_until,
};

const T: &str = "2026-11-23T10:00:00Z";

/// The over-long line: a text prefix, 4.5 MiB of text with a dispatch at byte 1 MiB + 1 (the
/// end of what an older reader kept of it), and a dispatch at its end.
fn ghost_line() -> String {
    let mut l = format!("{T} INFO request body: ");
    l.push_str(&"a".repeat((1 << 20) + 1 - l.len()));
    l.push_str(&dispatch("ghost-inner").replace('\n', " "));
    l.push_str(&"b".repeat((9 << 19) - l.len()));
    l.push_str(&dispatch("ghost"));
    l
}

fn content() -> (String, String, String) {
    (dispatch("before"), ghost_line(), dispatch("after"))
}

/// `dispatched.go`, the lines read and the `too_long` rejections of `source`, once they equal
/// `want` (what `verify` counts) or, failing that, once 60 s have passed: a scrape is not a
/// snapshot (one can show a batch's line counted and not yet its rejection), so the counts
/// are read until they agree, and a disagreement that lasts fails the test.
fn serve_counts(port: u16, source: &str, want: (u64, u64, u64)) -> (u64, u64, u64) {
    let value = |m: &str, prefix: &str| -> u64 {
        m.lines()
            .filter(|l| l.starts_with(prefix) && l.contains(&format!("source=\"{source}\"")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    let mut seen = (0, 0, 0);
    wait_until(Instant::now() + Duration::from_secs(60), || {
        let m = http_get(port, "/metrics").unwrap_or_default();
        let go = http_get(port, "/api/summary")
            .and_then(|s| serde_json::from_str::<Value>(&s).ok())
            .and_then(|s| s["dispatched"]["go"].as_u64())
            .unwrap_or(0);
        seen = (
            go,
            value(&m, "claimcheck_ingest_lines_total{"),
            value(&m, "claimcheck_rejected_lines_total{reason=\"too_long\""),
        );
        seen == want
    });
    seen
}

fn serve(port: u16) -> std::process::Command {
    let mut c = claimcheck();
    c.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

#[test]
fn an_over_long_line_is_too_long_once_and_never_a_dispatch_in_every_reader() {
    let dir = tempfile::tempdir().unwrap();
    let (before, ghost, after) = content();
    let all = format!("{before}{ghost}{after}");
    std::fs::write(dir.path().join("whole.log"), &all).unwrap();

    // verify
    let out = run_in(
        dir.path(),
        &["verify", "--dispatch", "whole.log", "--format", "json"],
        None,
    );
    let r: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let verify = (
        r["totals"]["dispatched"]["go"].as_u64().unwrap(),
        r["ingest"]["lines"].as_u64().unwrap(),
        r["ingest"]["rejected"]["too_long"].as_u64().unwrap_or(0),
    );
    assert_eq!(verify, (2, 3, 1), "verify: {}", r["ingest"]);

    // serve following a file, the line written in pieces across reads
    let path = dir.path().join("pieces.log");
    let port = free_port();
    let _file = Server(serve(port).arg("--file").arg(&path).spawn().unwrap());
    append(&path, &before);
    for piece in ghost.as_bytes().chunks(700_000) {
        append(&path, std::str::from_utf8(piece).unwrap());
    }
    append(&path, &after);
    let source = path.display().to_string();
    assert_eq!(serve_counts(port, &source, verify), verify, "serve --file");

    // serve --stdin
    let port = free_port();
    let mut child = serve(port)
        .args(["--stdin", "dispatch"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdin_server = Server(child);
    stdin.write_all(all.as_bytes()).unwrap();
    stdin.flush().unwrap();
    assert_eq!(serve_counts(port, "stdin", verify), verify, "serve --stdin");
    drop(stdin);
    drop(stdin_server);

    // POST /ingest/ndjson
    let port = free_port();
    let _http = Server(serve(port).args(["--ingest-token", "t"]).spawn().unwrap());
    let answer = post_ndjson(port, &all);
    let want = serde_json::json!({"events": 2, "duplicates": 0, "ignored": 0, "rejected": 1});
    assert_eq!(answer, want, "POST /ingest/ndjson");
    assert_eq!(serve_counts(port, "ndjson", verify), verify, "ndjson");
}

/// Posts `body` once serve answers; its JSON answer.
fn post_ndjson(port: u16, body: &str) -> Value {
    use std::io::Read;
    let mut stream = None;
    let listening = wait_until(Instant::now() + Duration::from_secs(30), || {
        stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok();
        stream.is_some()
    });
    assert!(listening, "serve did not listen within 30 s");
    let mut s = stream.unwrap();
    write!(
        s,
        "POST /ingest/ndjson HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer t\r\n\
         Content-Type: application/x-ndjson\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, json) = out.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{out}");
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {out}"))
}
