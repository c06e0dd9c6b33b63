//! Running the real binary and summarising its JSON report.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A child process killed (SIGKILL) and reaped when dropped, even by a failing test.
pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Appends `s` to the file at `path`, creating it, as a logging process would.
pub fn append(path: &Path, s: &str) {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(s.as_bytes())
        .unwrap();
}

/// Truncates the file at `path` to nothing in place, as a writer's `truncate` (or
/// copytruncate's second step) does.
pub fn empty(path: &Path) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(0)
        .unwrap();
}

/// Polls `cond` until it holds (`true`) or `deadline` passes (`false`). Between polls it
/// pauses 20 ms, which leaves a loaded machine's cores to the process under test: the pause is
/// a poll interval, never what an outcome depends on.
#[allow(clippy::disallowed_methods)]
pub fn wait_until(deadline: Instant, mut cond: impl FnMut() -> bool) -> bool {
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (at most `secs` seconds) until `ready` holds; fails the test with `what` otherwise.
pub fn until(secs: u64, what: &str, ready: impl FnMut() -> bool) {
    let reached = wait_until(Instant::now() + Duration::from_secs(secs), ready);
    assert!(reached, "not reached within {secs} s: {what}");
}

/// The async form of [`until`]: polls `probe` every 50 ms (a tokio timer, so paused time
/// reaches it) until it returns `Some`, for at most `secs` seconds.
pub async fn until_some<T, F, Fut>(secs: u64, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tick.tick().await;
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {secs} s: {what}"
        );
    }
}

/// Lets a process under test run for `d`: pacing at random moments (a kill loop's), never a
/// wait for an outcome, which [`wait_until`] is for.
#[allow(clippy::disallowed_methods)]
pub fn pace(d: Duration) {
    std::thread::sleep(d);
}

/// A process's resident set size in KiB, from `/proc` (0 once it is gone).
pub fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The value of an unlabelled series in a `/metrics` text.
pub fn metric(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} "))?.parse().ok())
}

/// A TCP port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` on 127.0.0.1:`port`: the status and the body, `None` if nothing answers.
pub fn http_get_status(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.get(9..12)?.parse().ok()?;
    out.split_once("\r\n\r\n")
        .map(|(_, body)| (status, body.to_owned()))
}

/// The body of `GET path`.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    http_get_status(port, path).map(|(_, body)| body)
}

pub fn claimcheck() -> Command {
    Command::new(env!("CARGO_BIN_EXE_claimcheck"))
}

/// Runs `claimcheck` with `args` in `dir`, feeding `stdin`.
pub fn run_in(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = claimcheck();
    cmd.current_dir(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn claimcheck");
    if let Some(bytes) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(bytes).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

/// A compact, hand-checkable summary of a JSON report: the verdict, the counts and the failing
/// sessions. Golden files hold the expected summary, written by hand from the inputs.
pub fn summary(exit: i32, r: &Value) -> String {
    let t = &r["totals"];
    let n = |v: &Value| v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"));
    let ingest = &r["ingest"];
    let ev = &ingest["events"];
    let rejected: Vec<String> = ingest["rejected"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k}:{}", n(v)))
        .collect();
    let mut s = format!(
        "exit {exit}\nverdict {}\ndispatched go={} ts={} other={}\n\
         outcomes matched={} late={} mismatched={} unclaimed={} pending={}\n\
         counts duplicate_claims={} cross_runtime={} orphan_claims={} reclaims={} skew_clamped={} unexpected_runner={}\n\
         ingest lines={} dispatch={} claim={} completion={} heartbeat={} release={} duplicates={} ignored={} rejected={}\n",
        r["verdict"].as_str().unwrap(),
        n(&t["dispatched"]["go"]),
        n(&t["dispatched"]["ts"]),
        n(&t["dispatched"]["other"]),
        n(&t["matched"]),
        n(&t["late"]),
        n(&t["mismatched"]),
        n(&t["unclaimed"]),
        n(&t["pending"]),
        n(&t["duplicate_claims"]),
        n(&t["duplicate_claims_cross_runtime"]),
        n(&t["orphan_claims"]),
        n(&t["reclaims"]),
        n(&t["skew_clamped"]),
        n(&t["unexpected_runner"]),
        n(&ingest["lines"]),
        n(&ev["dispatch"]),
        n(&ev["claim"]),
        n(&ev["completion"]),
        n(&ev["heartbeat"]),
        n(&ev["release"]),
        n(&ingest["duplicates"]),
        n(&ingest["ignored"]),
        rejected.join(","),
    );
    for f in r["findings"].as_array().unwrap() {
        let kinds: Vec<&str> = f["kinds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap())
            .collect();
        s.push_str(&format!(
            "finding {} {}\n",
            f["session_id"].as_str().unwrap(),
            kinds.join(",")
        ));
    }
    s
}

/// Lines in a file (newlines counted).
pub fn lines_of(path: &Path) -> u64 {
    std::fs::read(path)
        .unwrap()
        .iter()
        .filter(|&&b| b == b'\n')
        .count() as u64
}

/// A go dispatch line of session `id` (with its newline), at 2026-11-23T10:00:00Z.
pub fn dispatch(id: &str) -> String {
    format!(
        "{{\"event\":\"dispatch\",\"sessionId\":\"{id}\",\"resolvedProfile\":{{\"runner\":\"go\"}},\"time\":\"2026-11-23T10:00:00Z\"}}\n"
    )
}

/// The go dispatches serve's `/api/summary` counts (`None` while it does not answer).
pub fn dispatched(port: u16) -> Option<u64> {
    let v: Value = serde_json::from_str(&http_get(port, "/api/summary")?).ok()?;
    v["dispatched"]["go"].as_u64()
}

/// simulate's four files with the runtime their lines default to: the dispatcher's log, the
/// Vercel drain's, the go daemon's and the ts worker's.
pub const SIMULATED: [(&str, Option<&str>); 4] = [
    ("dispatch.log", None),
    ("vercel-drain.ndjson", None),
    ("go-daemon.log", Some("go")),
    ("ts-worker.log", Some("ts")),
];

/// `claimcheck serve` on loopback `port` with `config` and the store `store` (a path or a
/// URL), its output discarded: the start the serve tests share; the caller adds sources.
pub fn serve_cmd(port: u16, config: &Path, store: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = claimcheck();
    c.args([
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--config",
    ])
    .arg(config)
    .arg("--store")
    .arg(store)
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    c
}

/// Has `serve` follow simulate's four files in `dir`, each with its runtime.
pub fn follow_simulated<'c>(serve: &'c mut Command, dir: &Path) -> &'c mut Command {
    for (f, rt) in SIMULATED {
        let p = dir.join(f).display().to_string();
        serve
            .arg("--file")
            .arg(rt.map_or(p.clone(), |rt| format!("{rt}={p}")));
    }
    serve
}

/// Simulates `sessions` sessions of `seed` into `dir/w` and returns `verify`'s totals on them:
/// the reference that the serve tests compare with.
pub fn simulated_with_verify_totals(dir: &Path, seed: u64, sessions: u64) -> Value {
    let out = run_in(
        dir,
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
    let out = run_in(dir, crate::simulate::VERIFY_WORKLOAD, None);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    report["totals"].clone()
}

/// The `/api/summary` keys on which `serve` fed a finished set of files must agree with
/// `verify` exactly once the evidence has settled (`pending` and `unclaimed` differ by design:
/// `serve` judges deadlines on its own clock, `verify` on the latest event time).
pub const SETTLED_KEYS: [&str; 9] = [
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

/// Commits `outcomes` alone to `store`.
pub async fn commit_outcomes(
    store: &claimcheck::store::Store,
    outcomes: Vec<claimcheck::store::OutcomeWrite>,
) {
    store
        .commit(&claimcheck::store::Commit {
            outcomes,
            ..Default::default()
        })
        .await
        .unwrap();
}
