//! Hostile input end to end: nothing a file can contain stops ingestion or loses a good line.

use std::io::Write;

use serde_json::Value;

use crate::support::run_in;

const GOOD_DISPATCH: &str = r#"{"event":"dispatch","sessionId":"ok1","resolvedProfile":{"runner":"go"},"time":"2026-11-23T10:00:00Z"}"#;
const GOOD_CLAIM: &str =
    r#"{"event":"claimed","sessionId":"ok1","workerId":"g1","time":"2026-11-23T10:00:01Z"}"#;

#[test]
fn nul_bytes_invalid_utf8_huge_and_truncated_lines() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = std::fs::File::create(dir.path().join("evil.log")).unwrap();
    let mut huge_relevant = br#"{"event":"claimed","sessionId":"big","pad":""#.to_vec();
    huge_relevant.resize(3 << 20, b'a');
    huge_relevant.extend_from_slice(b"\"}\n");
    let lines: Vec<Vec<u8>> = vec![
        b"\0\0\0\0\n".to_vec(),
        b"{\"event\":\"claimed\",\"sessionId\":\"n\0l\",\"time\":1795428001}\n".to_vec(),
        b"\xff\xfe\xfd garbage \xc3\x28\n".to_vec(),
        b"{\"event\":\"claimed\",\"sessionId\":\"\xff\xfe\",\"time\":1795428001}\n".to_vec(),
        huge_relevant,
        vec![b'z'; 2 << 20],
        b"\n".to_vec(),
        b"{\"event\":\"claimed\",\"sessionId\":\"trunc".to_vec(),
        b"\n".to_vec(),
        b"\r\n\r\n".to_vec(),
        format!("{GOOD_CLAIM}\r\n").into_bytes(),
        b"{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{\"event\":\"claimed\"\n".to_vec(),
        "[".repeat(100_000).into_bytes(),
        b"\n".to_vec(),
        // the last line has no newline and is still read
        GOOD_CLAIM.replace("ok1", "ok2").into_bytes(),
    ];
    for l in &lines {
        f.write_all(l).unwrap();
    }
    drop(f);
    std::fs::write(
        dir.path().join("d.log"),
        format!("{GOOD_DISPATCH}\n{}\n", GOOD_DISPATCH.replace("ok1", "ok2")),
    )
    .unwrap();

    let out = run_in(
        dir.path(),
        &[
            "verify",
            "--dispatch",
            "d.log",
            "--claims",
            "go=evil.log",
            "--format",
            "json",
        ],
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["verdict"], "pass");
    assert_eq!(r["totals"]["matched"], 2);
    let rej = &r["ingest"]["rejected"];
    assert_eq!(rej["malformed_json"], 4, "{rej}");
    assert_eq!(rej["too_long"], 1, "{rej}");
    assert_eq!(r["ingest"]["events"]["claim"], 2);
    // every line is accounted for: events + ignored + rejected = lines
    let i = &r["ingest"];
    let events: u64 = i["events"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    let rejected: u64 = rej
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(
        events + i["ignored"].as_u64().unwrap() + rejected,
        i["lines"].as_u64().unwrap()
    );
    let examples = i["rejected_examples"].as_array().unwrap();
    assert!(
        examples
            .iter()
            .any(|e| e["source"] == "evil.log:5" && e["reason"] == "too_long"),
        "{examples:?}"
    );
}

#[test]
fn stdin_and_gzip_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let gz_path = dir.path().join("claims.log.gz");
    let mut gz =
        flate2::write::GzEncoder::new(std::fs::File::create(&gz_path).unwrap(), Default::default());
    writeln!(gz, "{GOOD_CLAIM}").unwrap();
    gz.finish().unwrap();
    let stdin = format!("{GOOD_DISPATCH}\n");
    let out = run_in(
        dir.path(),
        &[
            "verify",
            "--dispatch",
            "-",
            "--claims",
            "go=claims.log.gz",
            "--format",
            "json",
        ],
        Some(stdin.as_bytes()),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["totals"]["matched"], 1);
    assert_eq!(r["ingest"]["inputs"][0]["path"], "<stdin>");
}

#[test]
fn usage_and_io_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[&[&str]] = &[
        &["verify"],
        &["verify", "--dispatch", "missing.log"],
        &["verify", "--dispatch", "-", "--claims", "-"],
        &["verify", "--dispatch", "-", "--claim-timeout", "soon"],
        &["verify", "--dispatch", "-", "--since", "yesterday"],
        &["verify", "--dispatch", "-", "--format", "yaml"],
        &["nonsense"],
    ];
    for args in cases {
        let out = run_in(dir.path(), args, Some(b""));
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.stderr.is_empty(), "{args:?} printed no error");
    }
}

#[test]
fn output_file_and_formats() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("d.log"), format!("{GOOD_DISPATCH}\n")).unwrap();
    std::fs::write(dir.path().join("c.log"), format!("{GOOD_CLAIM}\n")).unwrap();
    for (fmt, first) in [
        ("text", "claimcheck verify: PASS"),
        ("markdown", "## claimcheck verify: **PASS"),
        ("html", "<!doctype html>"),
    ] {
        let out = run_in(
            dir.path(),
            &[
                "verify",
                "--dispatch",
                "d.log",
                "--claims",
                "go=c.log",
                "--format",
                fmt,
                "--output",
                "r.out",
            ],
            None,
        );
        assert_eq!(out.status.code(), Some(0));
        assert!(out.stdout.is_empty());
        let written = std::fs::read_to_string(dir.path().join("r.out")).unwrap();
        assert!(
            written.starts_with(first),
            "{fmt}: {}",
            &written[..80.min(written.len())]
        );
    }
}
