//! Secrets never printed: every error path that can quote a URL, run through the real binary
//! with a password in the URL, shows `REDACTED` in its place.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{Server, claimcheck, free_port};

const PASSWORD: &str = "S3cretPassw0rd";

/// A Postgres URL with a password on a port that refuses connections.
fn refused_pg() -> String {
    format!(
        "postgres://claimcheck:{PASSWORD}@127.0.0.1:{}/cc",
        free_port()
    )
}

fn assert_redacted(what: &str, out: &str) {
    assert!(
        !out.contains(PASSWORD),
        "{what} printed the password:\n{out}"
    );
    assert!(
        out.contains("REDACTED"),
        "{what} printed no redacted URL:\n{out}"
    );
}

#[test]
fn store_errors_in_serve_and_report() {
    let url = refused_pg();
    let out = claimcheck()
        .args(["serve", "--ingest-token", "t", "--listen"])
        .arg(format!("127.0.0.1:{}", free_port()))
        .args(["--store", &url])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot open the store"), "{stderr}");
    assert_redacted("serve --store", &stderr);

    let out = claimcheck()
        .args(["report", "--org", "o", "--format", "json"])
        .env("CLAIMCHECK_STORE", &url)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_redacted(
        "report with CLAIMCHECK_STORE",
        &String::from_utf8_lossy(&out.stderr),
    );
}

#[test]
fn config_errors_and_the_printed_config() {
    let out = claimcheck()
        .args(["serve", "--ingest-token", "t"])
        .args(["--alertmanager", &format!("ftp://am:{PASSWORD}@host/")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_redacted(
        "a bad alertmanager URL",
        &String::from_utf8_lossy(&out.stderr),
    );

    let out = claimcheck()
        .arg("check-config")
        .env("CLAIMCHECK_SERVE_STORE", refused_pg())
        .env(
            "CLAIMCHECK_SERVE_ALERTMANAGER_URL",
            format!("http://am:{PASSWORD}@127.0.0.1:9093"),
        )
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_redacted("check-config", &all);
}

/// A platform Postgres that refuses: serve keeps running and logs the dependency down, without
/// the password; so does the Alertmanager pusher's target.
#[test]
fn dependency_logs() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[platform.postgres]\nurl = \"{}\"\n[serve.alertmanager]\nurl = \"http://am:{PASSWORD}@127.0.0.1:{}\"\n",
            refused_pg(),
            free_port()
        ),
    )
    .unwrap();
    let mut child = Server(
        claimcheck()
            .args(["serve", "--ingest-token", "t", "--listen"])
            .arg(format!("127.0.0.1:{}", free_port()))
            .arg("--config")
            .arg(&config)
            .env("CLAIMCHECK_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = child.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = String::new();
    let (mut down, mut alertmanager) = (false, false);
    while !(down && alertmanager) {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            panic!("no dependency-down and alertmanager lines within 30 s:\n{seen}");
        };
        down |= line.contains("dependency down");
        alertmanager |= line.contains("Alertmanager") && line.contains("REDACTED");
        seen.push_str(&line);
        seen.push('\n');
    }
    assert!(!seen.contains(PASSWORD), "{seen}");
}
