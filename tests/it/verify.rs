//! `claimcheck verify` end to end: golden cases under `tests/data/verify/<case>/`, each with
//! its inputs, an `args` file and an `expected` summary written by hand.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{run_in, summary};

fn case_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/verify")
        .join(name)
}

/// Runs a case as JSON (its summary must equal `expected`) and, if its args name another
/// format, in that format too (the verdict must come first).
fn check(name: &str) {
    let dir = case_dir(name);
    let args_text = std::fs::read_to_string(dir.join("args")).unwrap();
    let args: Vec<&str> = args_text.split_whitespace().collect();
    let mut json_args: Vec<&str> = Vec::new();
    let mut human_format = None;
    let mut i = 0;
    while i < args.len() {
        if args[i] == "--format" {
            human_format = Some(args[i + 1]);
            i += 2;
        } else {
            json_args.push(args[i]);
            i += 1;
        }
    }
    json_args.extend(["--format", "json"]);
    let out = run_in(&dir, &json_args, None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{name}: not JSON ({e}); stderr: {stderr}"));
    let got = summary(out.status.code().unwrap(), &report);
    let want = std::fs::read_to_string(dir.join("expected")).unwrap();
    assert_eq!(got, want, "case {name}");

    if let Some(fmt) = human_format.filter(|f| *f != "json") {
        let mut a = json_args.clone();
        a.truncate(a.len() - 2);
        a.extend(["--format", fmt]);
        let out = run_in(&dir, &a, None);
        let text = String::from_utf8_lossy(&out.stdout);
        let verdict = report["verdict"].as_str().unwrap().to_uppercase();
        let first = text.lines().next().unwrap_or_default();
        assert!(
            first.contains(&verdict),
            "{name} {fmt}: verdict not first: {first}"
        );
    }
}

#[test]
fn outcomes() {
    check("outcomes");
}

#[test]
fn line_shapes() {
    check("shapes");
}

#[test]
fn org_and_time_filters() {
    check("filters");
}

#[test]
fn time_window_counts_orphans_in_the_window() {
    check("filters_window");
}

#[test]
fn expect_runner() {
    check("expect_runner");
}

#[test]
fn legacy_other_runner_and_rejections() {
    check("legacy_and_other");
}

#[test]
fn nothing_selected_is_inconclusive() {
    check("nothing_selected");
}
