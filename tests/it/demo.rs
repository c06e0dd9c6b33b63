//! `claimcheck demo`, the real binary: a live simulated platform on the wall clock whose two
//! migrations get their post-flip reports from serve's own reporter — one passes, one fails —
//! and the status page shows them, read back over HTTP and rendered by headless Chromium.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::serve_files::metric_sum;
use crate::support::{Server, claimcheck, free_port, http_get, http_get_status};

/// Polls `f` until it returns `Some`, for at most `secs` seconds.
fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "not within {secs} s: {what}");
        // A poll interval, not a wait for something to happen.
        std::thread::sleep(Duration::from_millis(200));
    }
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
    let _server = Server(
        claimcheck()
            .args([
                "demo",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--seconds",
                "60",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The platform's history is read at once: results before any flip.
    let summary: Value = wait_for(60, "dispatches in the summary", || {
        let v: Value = serde_json::from_str(&http_get(port, "/api/summary")?).ok()?;
        (v["matched"].as_u64()? > 500).then_some(v)
    });
    assert!(
        summary["dispatched"]["ts"].as_u64().unwrap() > 500,
        "{summary}"
    );

    // Flips at 15 s and 25 s, each report 40 s later: generous for a loaded machine.
    let reports: Vec<Value> = wait_for(300, "a pass and a fail in /api/reports", || {
        let list: Value = serde_json::from_str(&http_get(port, "/api/reports")?).ok()?;
        let list = list.as_array()?.clone();
        let has = |v: &str| list.iter().any(|r| r["verdict"] == v);
        (has("pass") && has("fail")).then_some(list)
    });
    assert_eq!(reports.len(), 2, "{reports:?}");
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

    // Near the wall clock: the flips happened seconds ago, not days.
    let now = chrono::Utc::now();
    for r in &reports {
        let at = chrono::DateTime::parse_from_rfc3339(r["flip_at"].as_str().unwrap()).unwrap();
        let ago = now.signed_duration_since(at);
        assert!(
            ago > chrono::TimeDelta::zero() && ago < chrono::TimeDelta::minutes(10),
            "{r}"
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
    for r in &reports {
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
