//! The real `serve` binary following files through a rotation, read back over HTTP.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::scratch_db::ScratchDb;
use crate::support::{
    SIMULATED, Server, append, claimcheck, dispatch, follow_simulated, free_port, http_get,
    serve_cmd, wait_until,
};

/// Polls `/api/summary` until `ready` holds; the deadline is generous, the wait is not fixed.
fn summary_when(port: u16, ready: impl Fn(&Value) -> bool) -> Value {
    summary_at_when(port, "/api/summary", ready)
}

/// Polls `path` (a summary, filtered or not) until `ready` holds.
fn summary_at_when(port: u16, path: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    let reached = wait_until(Instant::now() + Duration::from_secs(20), || {
        if let Some(body) = http_get(port, path)
            && let Ok(v) = serde_json::from_str::<Value>(&body)
        {
            let done = ready(&v);
            last = v;
            return done;
        }
        false
    });
    assert!(
        reached,
        "condition not reached within 20 s; last summary {last}"
    );
    last
}

fn claim(id: &str) -> String {
    format!(
        "{{\"event\":\"claimed\",\"sessionId\":\"{id}\",\"workerId\":\"g1\",\"time\":\"2026-11-23T10:00:01Z\"}}\n"
    )
}

#[test]
fn follows_files_across_rename_rotation_and_copytruncate() {
    let dir = tempfile::tempdir().unwrap();
    let (d, c) = (
        dir.path().join("dispatch.log"),
        dir.path().join("daemon.log"),
    );
    append(&d, &dispatch("s1"));
    let port = free_port();
    let _server = Server(
        claimcheck()
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--file")
            .arg(&d)
            .arg("--file")
            .arg(format!("go={}", c.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    summary_when(port, |s| s["dispatched"]["go"] == 1);

    append(&c, &claim("s1"));
    summary_when(port, |s| s["matched"] == 1);

    // rename + create: the tail of the old file and the new file are both read
    append(&d, &dispatch("s2"));
    std::fs::rename(&d, dir.path().join("dispatch.log.1")).unwrap();
    append(&d, &dispatch("s3"));
    summary_when(port, |s| s["dispatched"]["go"] == 3);

    // copytruncate of the claims file
    std::fs::write(dir.path().join("daemon.log.1"), std::fs::read(&c).unwrap()).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&c)
        .unwrap();
    append(&c, &(claim("s2") + &claim("s3")));
    let s = summary_when(port, |s| s["matched"] == 3);
    assert_eq!(s["dispatched"]["go"], 3, "nothing counted twice: {s}");

    // The source label is the configured path (bounded: one per `--file`), not the file.
    let metrics = http_get(port, "/metrics").unwrap();
    let want = format!(
        r#"claimcheck_ingest_lines_total{{result="event",source="{}"}} 3"#,
        d.display()
    );
    assert!(metrics.lines().any(|l| l == want), "{metrics}");
}

#[test]
fn a_glob_picks_up_files_created_later() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let pattern = format!("go={}/daemon-*.log", dir.path().display());
    let _server = Server(
        claimcheck()
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--file",
                &pattern,
            ])
            .arg("--file")
            .arg(dir.path().join("dispatch.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    append(
        &dir.path().join("dispatch.log"),
        &(dispatch("g1") + &dispatch("g2")),
    );
    summary_when(port, |s| s["dispatched"]["go"] == 2);
    append(&dir.path().join("daemon-a.log"), &claim("g1"));
    summary_when(port, |s| s["matched"] == 1);
    append(&dir.path().join("daemon-b.log"), &claim("g2"));
    append(&dir.path().join("unrelated.log"), &claim("g3"));
    let s = summary_when(port, |s| s["matched"] == 2);
    assert_eq!(s["pending"], 0, "{s}");
}

fn start(port: u16, store: &str, files: &[String]) -> Server {
    let mut cmd = claimcheck();
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--store"])
        .arg(store)
        // Every line here carries the same event time, so only idle sources settle a claim:
        // a short idle timeout keeps twenty kill rounds quick.
        .env("CLAIMCHECK_SERVE_SOURCE_IDLE_AFTER", "1s");
    for f in files {
        cmd.arg("--file").arg(f);
    }
    Server(
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// SIGKILL at arbitrary points while a writer appends and rotates; after each restart the
/// durable totals equal the writer's ledger: nothing lost, nothing counted twice.
#[test]
fn kill_9_and_restart_neither_lose_nor_double_count_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("state.db").display().to_string();
    kill_9_rounds(dir.path(), &store, 20);
}

#[test]
fn kill_9_and_restart_neither_lose_nor_double_count_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(ScratchDb::new());
    kill_9_rounds(dir.path(), &db.url, 8);
}

fn kill_9_rounds(dir: &Path, store: &str, rounds: u64) {
    let (d, c) = (dir.join("dispatch.log"), dir.join("daemon.log"));
    let files = [d.display().to_string(), format!("go={}", c.display())];
    let mut written = 0u64;
    for round in 0..rounds {
        let port = free_port();
        let mut server = start(port, store, &files);
        // write a burst while it runs; rotate the dispatch log every other round
        for i in 0..50 {
            let id = format!("r{round}-{i}");
            append(&d, &dispatch(&id));
            append(&c, &claim(&id));
            written += 1;
            if i == 25 && round % 2 == 1 {
                std::fs::rename(&d, dir.join(format!("dispatch.log.{round}"))).unwrap();
            }
        }
        if round % 3 == 2 {
            // killed before it could read everything: the rest must come after the restart
            let _ = server.0.kill();
            let _ = server.0.wait();
            continue;
        }
        let want = written;
        summary_when(port, |s| {
            s["dispatched"]["go"] == want && s["matched"] == want
        });
        let _ = server.0.kill(); // SIGKILL
        let _ = server.0.wait();
    }
    let port = free_port();
    let _server = start(port, store, &files);
    // Replayed sessions are judged again once the followed files have caught up or gone idle
    // after the restart (a second here).
    let s = summary_when(port, |s| {
        s["dispatched"]["go"] == written && s["matched"] == written
    });
    assert_eq!(s["pending"], 0, "{s}");
    assert_eq!(s["duplicate_claims"], 0, "{s}");
    assert_eq!(s["orphan_claims"], 0, "{s}");
    // A filtered summary sums the store's outcome rows, which every start's replay wrote
    // again: still one row a session, judged.
    let rows = summary_at_when(port, "/api/summary?since=2000-01-01T00:00:00Z", |r| {
        r["matched"] == written
    });
    assert_eq!(rows["dispatched"]["go"], written, "{rows}");
    assert_eq!(rows["pending"], 0, "{rows}");
    // positions were committed with their lines: the last run re-read nothing already stored
    let metrics = http_get(port, "/metrics").unwrap();
    let dups: Vec<&str> = metrics
        .lines()
        .filter(|l| l.contains(r#"result="duplicate""#))
        .collect();
    assert!(dups.is_empty(), "lines read twice: {dups:?}");
}

#[test]
fn a_config_file_sets_everything_and_bad_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let d = dir.path().join("dispatch.log");
    append(&d, &dispatch("c1"));
    let config = dir.path().join("claimcheck.toml");
    std::fs::write(
        &config,
        format!(
            "[serve]\nlisten = \"127.0.0.1:{port}\"\nfiles = [{:?}]\nstore = {:?}\nclaim_timeout = [\"go=90s\"]\n",
            d.display().to_string(),
            dir.path().join("state.db").display().to_string()
        ),
    )
    .unwrap();
    let _server = Server(
        claimcheck()
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    summary_when(port, |s| s["dispatched"]["go"] == 1);
    assert!(dir.path().join("state.db").exists());

    std::fs::write(&config, "[serve]\nretention = \"forever\"\n").unwrap();
    let out = claimcheck()
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("serve.retention"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sum of every series of `name` whose labels include `filter` (e.g. `outcome="late"`).
pub(crate) fn metric_sum(metrics: &str, name: &str, filter: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(filter))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// PRODUCT.md §2: `serve` replaying a finished set of files reaches the same matched / late /
/// mismatched / duplicate / orphan counts as `verify` on those files, read back from /metrics.
/// The files are read concurrently, at different speeds: judgements wait until every file
/// has caught up, so a cross-runtime double claim is judged on both claims.
#[test]
fn serve_replaying_simulated_files_counts_what_verify_counts() {
    let dir = tempfile::tempdir().unwrap();
    let t = &crate::support::simulated_with_verify_totals(dir.path(), 11, 3000);
    let lines: u64 = SIMULATED
        .iter()
        .map(|(f, _)| crate::support::lines_of(&dir.path().join("w").join(f)))
        .sum();

    let config = dir.path().join("serve.toml");
    // Orphans are judged on settled evidence (a claim read before its dispatch is not one); the
    // grace plus the maximum hold, on the sidecar's clock, outlasts reading the files.
    std::fs::write(&config, "[serve]\norphan_grace = \"15s\"\n").unwrap();
    let port = free_port();
    let w = dir.path().join("w");
    let store = dir.path().join("state.db");
    let _server = Server(
        follow_simulated(&mut serve_cmd(port, &config, &store), &w)
            .spawn()
            .unwrap(),
    );
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
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = [0.0; 5];
    let mut read = 0.0;
    wait_until(deadline, || {
        let Some(m) = http_get(port, "/metrics") else {
            return false;
        };
        read = metric_sum(&m, "claimcheck_ingest_lines_total", "");
        seen = [
            metric_sum(&m, "claimcheck_outcomes_total", r#"outcome="matched""#),
            metric_sum(&m, "claimcheck_outcomes_total", r#"outcome="late""#),
            metric_sum(&m, "claimcheck_outcomes_total", r#"outcome="mismatched""#),
            metric_sum(&m, "claimcheck_duplicate_claims_total", ""),
            metric_sum(&m, "claimcheck_orphan_claims_total", ""),
        ];
        read == lines as f64 && seen == expected
    });
    assert_eq!(read, lines as f64, "every line read once");
    assert_eq!(
        seen, expected,
        "matched, late, mismatched, duplicate, orphan: serve vs verify"
    );

    // A filtered summary sums the store's per-session outcome rows for the same org and
    // dispatch window as verify's: the same counts, except that a session still waiting for
    // its claim is `pending` until the sidecar's clock passes its deadline (verify judges
    // against the latest event time), as in the unfiltered totals.
    let truth: Value =
        serde_json::from_slice(&std::fs::read(w.join("truth.json")).unwrap()).unwrap();
    let flip = &truth["flips"][0];
    let (org, since) = (flip["org"].as_str().unwrap(), flip["at"].as_str().unwrap());
    let mut args = crate::simulate::VERIFY_WORKLOAD.to_vec();
    args.extend(["--org", org, "--since", since]);
    let out = crate::support::run_in(dir.path(), &args, None);
    let filtered: Value = serde_json::from_slice(&out.stdout).unwrap();
    let want = &filtered["totals"];
    let got: Value = serde_json::from_str(
        &http_get(port, &format!("/api/summary?org={org}&since={since}")).unwrap(),
    )
    .unwrap();
    assert!(want["dispatched"]["go"].as_u64().unwrap() > 0, "{want}");
    for key in [
        "dispatched",
        "matched",
        "late",
        "mismatched",
        "duplicate_claims",
        "orphan_claims",
        "reclaims",
    ] {
        assert_eq!(got[key], want[key], "{key}: serve {got} vs verify {want}");
    }
    let waiting = |v: &Value| v["unclaimed"].as_u64().unwrap() + v["pending"].as_u64().unwrap();
    assert_eq!(
        waiting(&got),
        waiting(want),
        "unclaimed + pending: serve {got} vs verify {want}"
    );
    assert_ne!(
        got["dispatched"], t["dispatched"],
        "the filter selected a part"
    );
}

/// A glob that also matches rotated names (`dispatch.log*`) reads each file once: the rotated
/// `dispatch.log.1` is the file the live name's follower already read, also after a restart.
#[test]
fn a_glob_matching_rotated_names_reads_each_file_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("state.db").display().to_string();
    let files = [
        format!("{}/dispatch.log*", dir.path().display()),
        format!("go={}", dir.path().join("daemon.log").display()),
    ];
    let d = dir.path().join("dispatch.log");
    let c = dir.path().join("daemon.log");
    let no_duplicates = |port: u16| {
        let m = http_get(port, "/metrics").unwrap();
        let dups: Vec<&str> = m
            .lines()
            .filter(|l| l.contains(r#"result="duplicate""#))
            .collect();
        assert!(dups.is_empty(), "lines read twice: {dups:?}");
    };
    let port = free_port();
    let mut server = start(port, &store, &files);
    for id in ["a1", "a2", "a3"] {
        append(&d, &dispatch(id));
        append(&c, &claim(id));
    }
    summary_when(port, |s| s["matched"] == 3);
    std::fs::rename(&d, dir.path().join("dispatch.log.1")).unwrap();
    append(&d, &dispatch("b1"));
    append(&c, &claim("b1"));
    // A new match is found by a scan that also sees dispatch.log.1.
    append(&dir.path().join("dispatch.log.marker"), &dispatch("m1"));
    summary_when(port, |s| s["dispatched"]["go"] == 5 && s["matched"] == 4);
    no_duplicates(port);

    let _ = server.0.kill();
    let _ = server.0.wait();
    let port = free_port();
    let _server = start(port, &store, &files);
    append(&dir.path().join("dispatch.log.marker2"), &dispatch("m2"));
    // The replayed sessions are judged again once the followed files have caught up or gone
    // idle after the restart (a second here), never counted twice.
    let s = summary_when(port, |s| s["dispatched"]["go"] == 6 && s["matched"] == 4);
    assert_eq!(s["duplicate_claims"], 0, "{s}");
    no_duplicates(port);
    let s = summary_when(port, |s| s["pending"] == 2);
    assert_eq!(
        (s["dispatched"]["go"].clone(), s["matched"].clone()),
        (6.into(), 4.into()),
        "{s}"
    );
}
