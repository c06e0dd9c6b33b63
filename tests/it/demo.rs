//! `claimcheck demo`, the real binary: a live simulated platform on the wall clock whose two
//! migrations get their post-flip reports from serve's own reporter — one passes, one fails —
//! and the status page shows them, read back over HTTP and rendered by headless Chromium.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::serve_files::metric_sum;
use crate::support::{Server, claimcheck, free_port, http_get, http_get_status};

/// Reads the demo's log lines until `done` says the ones it waits for have all come, for at
/// most `secs` seconds; returns the lines read.
fn log_until(
    lines: &mpsc::Receiver<String>,
    secs: u64,
    mut done: impl FnMut(&[String]) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut seen = Vec::new();
    while !done(&seen) {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(l) => seen.push(l),
            Err(e) => panic!(
                "{e:?} within {secs} s; the log so far:\n{}",
                seen.join("\n")
            ),
        }
    }
    seen
}

/// The log line's own time (text format: it starts with it).
fn logged_at(line: &str) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(line.split_whitespace().next().unwrap()).unwrap()
}

fn chromium(args: &[&str], url: &str, profile: &Path) -> String {
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .expect("chromium (the Debian package) is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Pixels of exactly this colour in an RGB(A) PNG.
fn pixels(png_path: &Path, rgb: [u8; 3]) -> usize {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(png_path).unwrap(),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = info.color_type.samples();
    buf[..info.buffer_size()]
        .chunks(step)
        .filter(|p| p[..3] == rgb)
        .count()
}

/// The demo's healthy migration gets a passing report and its broken one a failing report,
/// both written by serve's reporter (so `claimcheck_flip_verifications_total` counts them);
/// the status page lists them with their verdict colours and links to their HTML, puts the
/// broken org in the findings' org column, reloads itself, and links no `/api/orgs` (the
/// demo has no platform, and it answers 404 there). Event times are the wall clock's.
#[test]
fn demo_reports_a_passing_and_a_failing_migration_on_its_status_page() {
    let port = free_port();
    let mut child = claimcheck()
        .args([
            "demo",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--seconds",
            "60",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let _server = Server(child);
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                return;
            }
        }
    });
    // Flips at 15 s and 25 s, each report 40 s later: generous for a loaded machine.
    let log = log_until(&lines, 300, |seen| {
        seen.iter()
            .any(|l| l.contains("post-flip verification passed"))
            && seen
                .iter()
                .any(|l| l.contains("post-flip verification did not pass"))
    });
    let reports: Value = serde_json::from_str(&http_get(port, "/api/reports").unwrap()).unwrap();
    let reports = reports.as_array().unwrap();
    let verdicts: Vec<&str> = reports
        .iter()
        .map(|r| r["verdict"].as_str().unwrap())
        .collect();
    assert_eq!(verdicts, ["fail", "pass"], "{reports:?}");
    let metrics = http_get(port, "/metrics").unwrap();
    let verifications = |v: &str| {
        metric_sum(
            &metrics,
            "claimcheck_flip_verifications_total",
            &format!("verdict=\"{v}\""),
        )
    };
    assert_eq!(verifications("pass"), 1.0, "{metrics}");
    assert_eq!(verifications("fail"), 1.0);
    // The platform's history was read too: thousands of sessions, nearly all matched.
    let summary: Value = serde_json::from_str(&http_get(port, "/api/summary").unwrap()).unwrap();
    assert!(summary["matched"].as_u64().unwrap() > 1000, "{summary}");

    // Event times are the wall clock's: each flip is stamped when the demo logged it.
    for r in reports {
        let org = r["org"].as_str().unwrap();
        let flipped = log
            .iter()
            .find(|l| l.contains("org flipped") && l.contains(org))
            .unwrap_or_else(|| panic!("no flip of {org} logged: {log:?}"));
        let at = chrono::DateTime::parse_from_rfc3339(r["flip_at"].as_str().unwrap()).unwrap();
        let skew = logged_at(flipped).signed_duration_since(at);
        assert!(
            skew >= chrono::TimeDelta::zero() && skew < chrono::TimeDelta::seconds(5),
            "{r} vs {flipped}"
        );
        let html = http_get(port, r["html"].as_str().unwrap()).unwrap();
        assert!(html.contains("<svg"), "{html}");
    }
    let broken = reports.iter().find(|r| r["verdict"] == "fail").unwrap();
    let broken_org = broken["org"].as_str().unwrap();

    let page = http_get(port, "/").unwrap();
    for want in [
        "<meta http-equiv=\"refresh\"",
        "<th>org</th>",
        "verdict-pass",
        "verdict-fail",
        &format!("<td>{broken_org}</td>"),
    ] {
        assert!(page.contains(want), "{want} not in {page}");
    }
    for r in reports {
        let link = format!("href=\"{}\"", r["html"].as_str().unwrap());
        assert!(page.contains(&link), "{link} not in {page}");
    }
    assert!(!page.contains("/api/orgs"), "{page}");
    assert_eq!(http_get_status(port, "/api/orgs").unwrap().0, 404);

    // As a browser renders it: the same content in the DOM, the verdict badges in colour.
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("profile");
    let url = format!("http://127.0.0.1:{port}/");
    let dom = chromium(&["--dump-dom"], &url, &profile);
    for want in [
        "<th>org</th>",
        "class=\"verdict verdict-pass\"",
        "class=\"verdict verdict-fail\"",
        ".html\">report</a>",
    ] {
        assert!(dom.contains(want), "{want} not in {dom}");
    }
    let shot = dir.path().join("page.png");
    chromium(
        &[
            "--window-size=1100,1400",
            &format!("--screenshot={}", shot.display()),
        ],
        &url,
        &profile,
    );
    assert!(pixels(&shot, [0xda, 0xfb, 0xe1]) > 200, "the pass badge");
    assert!(pixels(&shot, [0xff, 0xeb, 0xe9]) > 200, "the fail badge");
}
