//! What a file source tells an operator, through the real binary: the bytes a copytruncate
//! lost when the copy is not followed (`claimcheck_source_truncated_bytes_total`, exact, and
//! one log line with the file and byte range), none when the glob covers the copy; a `source`
//! label that is the configured path or glob, never a file (date-stamped files rolling over a
//! glob leave no series behind); and one structured log line per state change of a followed
//! file, none per line.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::support::{
    Server, append, claimcheck, dispatch, dispatched, empty, free_port, http_get, until,
};

/// The value of `name{labels}` in serve's metrics (0 when absent).
fn metric(port: u16, series: &str) -> u64 {
    let m = http_get(port, "/metrics").unwrap_or_default();
    m.lines()
        .find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(0.0) as u64
}

/// serve following `files`, logging JSON at info to `log`, with `env`.
fn serve(port: u16, files: &[String], log: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
    let mut c = claimcheck();
    c.args([
        "--log-format",
        "json",
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
    ]);
    for f in files {
        c.arg("--file").arg(f);
    }
    c.args(extra);
    for (k, v) in env {
        c.env(k, v);
    }
    Server(
        c.stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap(),
    )
}

/// serve's JSON log lines.
fn log_lines(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The file-source state changes logged, as (change, kind or how, file name).
fn changes(log: &Path) -> Vec<(String, String, String)> {
    log_lines(log)
        .iter()
        .filter_map(|v| {
            let change = v["change"].as_str()?.to_owned();
            let detail = v["kind"]
                .as_str()
                .or(v["how"].as_str())
                .or(v["state"].as_str())
                .unwrap_or("")
                .to_owned();
            let name = Path::new(v["path"].as_str()?)
                .file_name()?
                .to_string_lossy()
                .into_owned();
            Some((change, detail, name))
        })
        .collect()
}

fn signal(server: &Server, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &server.0.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig}");
}

/// copytruncate with the copy not followed: the bytes serve had not read are counted exactly
/// and logged once with the file and the byte range, while serve runs and while it is down;
/// with a glob that covers the copy, nothing is lost or counted.
#[test]
fn an_unfollowed_copytruncate_counts_the_bytes_it_lost_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let log = dir.path().join("serve.log");
    let store = dir.path().join("state.db").display().to_string();
    let literal = path.display().to_string();
    let series = format!("claimcheck_source_truncated_bytes_total{{source=\"{literal}\"}}");
    append(&path, &(dispatch("a1") + &dispatch("a2")));
    let port = free_port();
    let extra = ["--store", store.as_str()];
    let mut server = serve(port, std::slice::from_ref(&literal), &log, &extra, &[]);
    until(30, "the first lines", || dispatched(port) == Some(2));
    assert_eq!(metric(port, &series), 0, "the series starts at 0");

    // While running: serve is stopped (SIGSTOP) so it cannot read what comes next.
    signal(&server, "-STOP");
    let lost1 = dispatch("lost1") + &dispatch("lost2");
    append(&path, &lost1);
    let before = std::fs::metadata(&path).unwrap().len();
    copytruncate(&path, &dir.path().join("app.log.1"));
    signal(&server, "-CONT");
    append(&path, &dispatch("b1"));
    until(30, "the line after the truncate", || {
        dispatched(port) == Some(3)
    });
    until(30, "the loss counted", || metric(port, &series) > 0);
    assert_eq!(
        metric(port, &series),
        lost1.len() as u64,
        "the bytes lost, exactly"
    );
    let from = before - lost1.len() as u64;
    let truncated: Vec<Value> = log_lines(&log)
        .into_iter()
        .filter(|v| v["change"] == "truncated")
        .collect();
    assert_eq!(truncated.len(), 1, "logged once: {truncated:?}");
    let t = &truncated[0];
    assert_eq!(t["level"], "WARN");
    assert_eq!(t["path"], literal.as_str());
    assert_eq!(
        (t["from"].as_u64(), t["to"].as_u64()),
        (Some(from), Some(before))
    );
    assert_eq!(t["lost_bytes"].as_u64(), Some(lost1.len() as u64));
    assert!(
        t["unfollowed_copy"]
            .as_str()
            .unwrap()
            .ends_with("app.log.1"),
        "{t}"
    );

    // While down: killed, written and copytruncated, restarted.
    let _ = server.0.kill();
    let _ = server.0.wait();
    let lost2 = dispatch("lost3");
    append(&path, &lost2);
    copytruncate(&path, &dir.path().join("app.log.2"));
    append(&path, &dispatch("c1"));
    let log2 = dir.path().join("serve2.log");
    let port = free_port();
    let _server = serve(port, std::slice::from_ref(&literal), &log2, &extra, &[]);
    until(30, "the line after the truncate", || {
        dispatched(port) == Some(4)
    });
    until(30, "the loss counted", || metric(port, &series) > 0);
    assert_eq!(
        metric(port, &series),
        lost2.len() as u64,
        "the bytes lost, exactly"
    );
    let truncated = changes(&log2)
        .into_iter()
        .filter(|c| c.0 == "truncated")
        .count();
    assert_eq!(truncated, 1, "logged once");

    // The lossless configuration: the glob covers the copy.
    let other = tempfile::tempdir().unwrap();
    let path = other.path().join("app.log");
    let glob = format!("{}*", path.display());
    let series = format!("claimcheck_source_truncated_bytes_total{{source=\"{glob}\"}}");
    append(&path, &dispatch("g1"));
    let port = free_port();
    let server = serve(port, &[glob], &other.path().join("serve.log"), &[], &[]);
    until(30, "the first line", || dispatched(port) == Some(1));
    signal(&server, "-STOP");
    append(&path, &(dispatch("g2") + &dispatch("g3")));
    copytruncate(&path, &other.path().join("app.log.1"));
    signal(&server, "-CONT");
    append(&path, &dispatch("g4"));
    until(30, "every line", || dispatched(port) == Some(4));
    assert_eq!(metric(port, &series), 0, "nothing lost");
}

fn copytruncate(path: &Path, to: &PathBuf) {
    std::fs::copy(path, to).unwrap();
    empty(path);
}

/// Date-stamped files rolling over a glob, and a literal path rotated by rename: every series
/// is labelled with the configured glob or path (none with a file), the deleted file's
/// checkpoint goes with it, and each state change of each file is logged once, as fields.
#[test]
fn rolling_files_log_each_change_once_and_leave_no_series_behind() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    let glob = format!("{}/daemon-*.log", dir.path().display());
    let app = dir.path().join("app.log");
    let day1 = dir.path().join("daemon-2026-11-22.log");
    let day2 = dir.path().join("daemon-2026-11-23.log");
    let files = [glob.clone(), app.display().to_string()];
    append(&day1, &dispatch("d1"));
    append(&app, &dispatch("p1"));
    let port = free_port();
    let _server = serve(
        port,
        &files,
        &log,
        &[],
        &[("CLAIMCHECK_SERVE_CLOSE_INACTIVE", "1s")],
    );
    until(30, "the first lines", || dispatched(port) == Some(2));
    // Many lines: none of them is logged at info.
    let mut n = 2;
    for i in 0..200 {
        append(&day1, &dispatch(&format!("x{i}")));
        n += 1;
    }
    until(30, "200 more lines", || dispatched(port) == Some(n));
    // The day rolls over; the old file is deleted once read.
    append(&day2, &dispatch("d2"));
    n += 1;
    until(30, "the new day's line", || dispatched(port) == Some(n));
    std::fs::remove_file(&day1).unwrap();
    // The literal path is rotated by rename; the old file goes idle and is closed.
    std::fs::rename(&app, dir.path().join("app.log.1")).unwrap();
    append(&app, &dispatch("p2"));
    n += 1;
    until(30, "the new file's line", || dispatched(port) == Some(n));
    let want_closed = |c: &Vec<(String, String, String)>| {
        c.iter()
            .any(|x| x.0 == "drained" && x.2 == "daemon-2026-11-22.log")
            && c.iter().any(|x| x.0 == "closed" && x.2 == "app.log")
    };
    until(
        30,
        "the deleted file drained and the rotated one closed",
        || want_closed(&changes(&log)),
    );

    let mut got = changes(&log);
    got.sort();
    let mut want: Vec<(String, String, String)> = [
        ("opened", "new", "daemon-2026-11-22.log"),
        ("opened", "new", "app.log"),
        ("opened", "new", "daemon-2026-11-23.log"),
        ("rotated", "deleted", "daemon-2026-11-22.log"),
        ("drained", "", "daemon-2026-11-22.log"),
        ("rotated", "renamed_away", "app.log"),
        ("opened", "new", "app.log"),
        // closed under the name it was last read by (the literal path does not see app.log.1)
        ("closed", "", "app.log"),
    ]
    .iter()
    .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
    .collect();
    want.sort();
    assert_eq!(got, want, "one line per state change");
    let info = log_lines(&log)
        .iter()
        .filter(|v| v["level"] == "INFO")
        .count();
    assert!(
        info < 30,
        "{info} info lines for {n} lines read: per-line noise"
    );

    // Every series names the glob or the path, never a file.
    let m = http_get(port, "/metrics").unwrap();
    let mut sources: Vec<&str> = m
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split("source=\"").nth(1)?.split('"').next())
        .collect();
    sources.sort_unstable();
    sources.dedup();
    assert_eq!(sources, {
        let mut s = vec![glob.as_str(), files[1].as_str()];
        s.sort_unstable();
        s
    });
}
