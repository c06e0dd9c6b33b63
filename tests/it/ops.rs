//! Operating the real binary: log formats, signals, layered config, `check-config`.

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Server, claimcheck, free_port, http_get_status, until, wait_until};

/// Lines of a child's stderr, read on a thread as they come.
struct Lines {
    rx: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Lines {
    fn of(child: &mut Child) -> Lines {
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines {
            rx,
            seen: Vec::new(),
        }
    }

    /// Waits (at most 30 s) for a line that `pred` accepts; panics with what was seen.
    fn wait_for(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no {what} within 30 s; stderr so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Everything until the stream closes (the process exited).
    fn rest(&mut self) -> Vec<String> {
        while let Ok(line) = self.rx.recv_timeout(Duration::from_secs(30)) {
            self.seen.push(line);
        }
        self.seen.clone()
    }
}

fn signal(child: &Child, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig}");
}

fn json(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

fn wait_healthy(port: u16) {
    until(30, "/healthz answering 200", || {
        http_get_status(port, "/healthz").is_some_and(|(s, _)| s == 200)
    });
}

fn serve(dir: &Path, port: u16, config: &str, extra: &[&str]) -> Server {
    let cfg = dir.join("claimcheck.toml");
    std::fs::write(&cfg, config).unwrap();
    Server(
        claimcheck()
            .current_dir(dir)
            .args(["serve", "--ingest-token", "t", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--config")
            .arg(&cfg)
            .args(extra)
            .env_remove("CLAIMCHECK_LOG")
            .env_remove("NO_COLOR")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

/// `--log-format json`: every line is one JSON object with the event's fields at the top;
/// an unreachable Postgres says so once, with the dependency and its state as fields.
#[test]
fn json_logs_parse_and_carry_the_fields() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let dead = free_port();
    let config = format!(
        "[platform]\nbackoff_min = \"50ms\"\nbackoff_max = \"100ms\"\n\
         [platform.postgres]\nurl = \"postgres://claimcheck@127.0.0.1:{dead}/platform\"\ncall_timeout = \"1s\"\n"
    );
    let mut server = serve(dir.path(), port, &config, &["--log-format", "json"]);
    let mut lines = Lines::of(&mut server.0);
    let serving = json(&lines.wait_for("the serving line", |l| l.contains("serving")));
    assert_eq!(serving["level"], "INFO", "{serving}");
    assert_eq!(serving["listen"], format!("127.0.0.1:{port}"), "{serving}");
    assert!(serving["timestamp"].is_string(), "{serving}");
    let down = json(&lines.wait_for("postgres down", |l| l.contains("dependency down")));
    assert_eq!(down["dependency"], "postgres", "{down}");
    assert_eq!(down["state"], "down", "{down}");
    assert_eq!(down["level"], "WARN", "{down}");
    assert!(
        down["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{down}"
    );
    // Retries (every 50-100 ms) are not logged again at info.
    wait_healthy(port);
    signal(&server.0, "TERM");
    let all = lines.rest();
    let downs = all.iter().filter(|l| l.contains("dependency down")).count();
    assert_eq!(downs, 1, "one line per state change:\n{}", all.join("\n"));
    for l in &all {
        let v = json(l);
        assert!(v["level"].is_string() && v["message"].is_string(), "{l}");
    }
    assert!(
        all.iter().any(|l| l.contains("\"stopped\"")),
        "{}",
        all.join("\n")
    );
}

/// Text logs to a pipe carry no colour codes, even without `NO_COLOR`.
#[test]
fn text_logs_to_a_pipe_have_no_colour() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = serve(dir.path(), port, "", &[]);
    let mut lines = Lines::of(&mut server.0);
    let serving = lines.wait_for("the serving line", |l| l.contains("serving"));
    assert!(!serving.contains('\u{1b}'), "{serving:?}");
    assert!(serving.contains("listen=127.0.0.1:"), "{serving}");
}

/// SIGHUP leaves serve running and applies a changed log level from the file.
#[test]
fn sighup_reloads_the_log_level_and_never_kills() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // Quiet but for the reload lines themselves, so each reload can be waited for.
    let quiet = "[log]\nformat = \"json\"\nlevel = \"warn,claimcheck::cli::signals=info\"\n";
    let mut server = serve(dir.path(), port, quiet, &[]);
    let mut lines = Lines::of(&mut server.0);
    wait_healthy(port);
    signal(&server.0, "HUP");
    let first = json(&lines.wait_for("the first reload", |l| l.contains("reloaded")));
    assert_eq!(first["level_changed"], false, "{first}");
    assert!(
        server.0.try_wait().unwrap().is_none(),
        "SIGHUP killed serve"
    );
    // serve's own info lines were filtered out so far
    assert!(
        !lines.seen.iter().any(|l| l.contains("\"serving\"")),
        "{:?}",
        lines.seen
    );
    std::fs::write(
        dir.path().join("claimcheck.toml"),
        "[log]\nformat = \"json\"\nlevel = \"info\"\n",
    )
    .unwrap();
    signal(&server.0, "HUP");
    let reloaded = json(&lines.wait_for("the second reload", |l| {
        l.contains("reloaded") && l.contains("\"level_changed\":true")
    }));
    assert_eq!(reloaded["log_level"], "info", "{reloaded}");
    wait_healthy(port);
    assert!(
        server.0.try_wait().unwrap().is_none(),
        "SIGHUP killed serve"
    );
    signal(&server.0, "TERM");
    let all = lines.rest();
    // info from another module now gets through: the new level is in force
    assert!(all.iter().any(|l| l.contains("shutting down")), "{all:?}");
    assert!(all.iter().any(|l| l.contains("\"stopped\"")), "{all:?}");
    let status = server.0.wait().unwrap();
    assert!(status.success(), "SIGTERM after SIGHUP: {status:?}");
}

/// `[log] file`: SIGHUP reopens it at its path after logrotate moved it away.
#[test]
fn sighup_reopens_the_log_file() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = dir.path().join("claimcheck.log");
    let config = format!("[log]\nfile = {:?}\n", log.display().to_string());
    let mut server = serve(dir.path(), port, &config, &[]);
    wait_healthy(port);
    let rotated = dir.path().join("claimcheck.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    signal(&server.0, "HUP");
    until(30, "the reload line in the reopened file", || {
        std::fs::read_to_string(&log).is_ok_and(|s| s.contains("reloaded on SIGHUP"))
    });
    assert!(
        std::fs::read_to_string(&rotated)
            .unwrap()
            .contains("serving")
    );
    assert!(
        server.0.try_wait().unwrap().is_none(),
        "SIGHUP killed serve"
    );
}

/// `check-config`: the file under the environment, validated, printed as TOML with the
/// password of a URL read from a `*_FILE` secret redacted; an invalid one exits 2 naming
/// its key.
#[test]
fn check_config_prints_the_layered_config_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("claimcheck.toml");
    std::fs::write(
        &cfg,
        "[serve]\nretention = \"2h\"\n[serve.alertmanager]\nexternal_url = \"http://cc.example\"\n",
    )
    .unwrap();
    let secret = dir.path().join("pg-url");
    std::fs::write(&secret, "postgres://ro:hunter2@db.internal/platform\n").unwrap();
    let out = claimcheck()
        .arg("check-config")
        .arg(&cfg)
        .env("CLAIMCHECK_PLATFORM_POSTGRES_URL_FILE", &secret)
        .env("CLAIMCHECK_SERVE_ALERTMANAGER_URL", "http://am:9093")
        .env("CLAIMCHECK_SERVE_LISTN", "typo")
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("hunter2"), "{stdout}");
    assert!(
        stdout.contains("# ignored: CLAIMCHECK_SERVE_LISTN"),
        "{stdout}"
    );
    let v: toml::Table = toml::from_str(&stdout).unwrap();
    assert_eq!(
        v["platform"]["postgres"]["url"].as_str(),
        Some("postgres://ro:REDACTED@db.internal/platform")
    );
    assert_eq!(v["serve"]["retention"].as_str(), Some("2h"));
    assert_eq!(
        v["serve"]["alertmanager"]["url"].as_str(),
        Some("http://am:9093")
    );
    assert_eq!(
        v["serve"]["alertmanager"]["external_url"].as_str(),
        Some("http://cc.example")
    );
    assert_eq!(v["log"]["level"].as_str(), Some("info"));

    let out = claimcheck()
        .arg("check-config")
        .arg(&cfg)
        .env("CLAIMCHECK_SERVE_ORG_LABEL_CAP", "0")
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("serve.org_label_cap: must be at least 1"),
        "{stderr}"
    );
}

/// The refusals an SRE hit, each with its cause said once.
#[test]
fn bad_flags_are_refused_with_their_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (
            &[
                "verify",
                "--dispatch",
                "/dev/null",
                "--since",
                "2026-11-24T00:00:00Z",
                "--until",
                "2026-11-23T00:00:00Z",
            ],
            "is later than --until",
        ),
        (
            &["verify", "--dispatch", "/dev/null", "--claim-timeout", "0s"],
            "must be more than zero",
        ),
        (
            &[
                "verify",
                "--dispatch",
                "/dev/null",
                "--claims",
                "xx=/dev/null",
            ],
            "unknown runtime \"xx\"",
        ),
        (
            &["serve", "--ingest-token", "t", "--claims", "xx=/dev/null"],
            "unknown runtime \"xx\"",
        ),
        (
            &["verify", "--dispatch", "/nonexistent/dispatch.log"],
            "No such file or directory",
        ),
    ];
    for (args, want) in cases {
        let out = claimcheck()
            .current_dir(dir.path())
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.matches(want).count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.matches("(os error").count() <= 1,
            "{args:?}: {stderr}"
        );
    }
}

/// `--listen localhost:PORT` is a valid address.
#[test]
fn listen_accepts_a_host_name() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _server = Server(
        claimcheck()
            .current_dir(dir.path())
            .args(["serve", "--ingest-token", "t", "--listen"])
            .arg(format!("localhost:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_healthy(port);
}

/// `POST body` to 127.0.0.1:`port` with a bearer token; the status.
fn post(port: u16, path: &str, token: &str, body: &str) -> u16 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/x-ndjson\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// The value of the sample `series` (name and labels, exactly as exposed) in `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// `/metrics` with the self-metrics: `process_*`, build info with a revision, HTTP requests
/// by route and status, store commits, queue depths, counters at zero before anything
/// happened; and `promtool check metrics` finds nothing to say about it.
#[test]
fn self_metrics_pass_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let dead = free_port();
    let config = format!(
        "[serve]\nstore = \"state.db\"\nallowed_lateness = \"0s\"\n[serve.alertmanager]\nurl = \"http://127.0.0.1:{dead}\"\n"
    );
    // No allowed lateness: the one source's own claim settles its session at once.
    let mut server = serve(dir.path(), port, &config, &[]);
    let _lines = Lines::of(&mut server.0);
    wait_healthy(port);
    // Ingest answers 503 `recovering` until the (empty) store is replayed.
    let ready = wait_until(Instant::now() + Duration::from_secs(30), || {
        http_get_status(port, "/readyz").is_some_and(|(s, _)| s == 200)
    });
    assert!(ready, "/readyz never answered 200");
    let body = "{\"event\":\"dispatch\",\"sessionId\":\"s1\",\"resolvedProfile\":{\"runner\":\"go\"},\"time\":\"2026-11-23T10:00:00Z\"}\n\
                {\"event\":\"claimed\",\"sessionId\":\"s1\",\"runtime\":\"ts\",\"workerId\":\"w1\",\"time\":\"2026-11-23T10:00:01Z\"}\n";
    assert_eq!(post(port, "/ingest/ndjson?runtime=go", "t", body), 200);
    assert_eq!(post(port, "/ingest/ndjson?runtime=go", "wrong", body), 401);
    let _ = http_get_status(port, "/api/sessions/s1");
    let _ = http_get_status(port, "/no/such/page");
    let text = http_get_status(port, "/metrics").unwrap().1;
    for (series, at_least) in [
        (
            "claimcheck_http_requests_total{method=\"POST\",route=\"/ingest/ndjson\",status=\"200\"}",
            1.0,
        ),
        (
            "claimcheck_http_requests_total{method=\"POST\",route=\"/ingest/ndjson\",status=\"401\"}",
            1.0,
        ),
        (
            "claimcheck_http_requests_total{method=\"GET\",route=\"/api/sessions/{id}\",status=\"200\"}",
            1.0,
        ),
        (
            "claimcheck_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"}",
            1.0,
        ),
        (
            "claimcheck_http_request_duration_seconds_count{method=\"GET\",route=\"/healthz\"}",
            1.0,
        ),
        ("claimcheck_store_commit_duration_seconds_count", 1.0),
        ("claimcheck_store_commit_failures_total", 0.0),
        ("claimcheck_queue_capacity{queue=\"batches\"}", 1.0),
        ("claimcheck_queue_items{queue=\"alerts\"}", 0.0),
        ("claimcheck_orphan_claims_total{runtime=\"go\"}", 0.0),
        // judged only once the evidence settles: the series exists, at 0 or more
        ("claimcheck_claims_total{runtime=\"ts\"}", 1.0),
        (
            "claimcheck_outcomes_total{outcome=\"mismatched\",runner=\"go\"}",
            0.0,
        ),
        ("process_resident_memory_bytes", 1.0),
        ("process_open_fds", 1.0),
    ] {
        let v = sample(&text, series).unwrap_or_else(|| panic!("{series} missing:\n{text}"));
        assert!(v >= at_least, "{series} = {v}");
    }
    let build = text
        .lines()
        .find(|l| l.starts_with("claimcheck_build_info{"))
        .unwrap();
    assert!(
        build.contains("revision=\"") && !build.contains("revision=\"\""),
        "{build}"
    );
    assert!(build.contains("rustc=\"1."), "{build}");
    let mut child = std::process::Command::new(crate::alerting::tool("promtool", "prometheus"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics:\n{said}"
    );
}
