//! The alert rules, proven by Prometheus' own tool: `promtool check rules` (syntax, templates)
//! and `promtool test rules` (every alert fires on its fault and stays silent on near-misses,
//! see `alerts/claimcheck.test.yml`).

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A Prometheus tool from the Debian packages; missing is a failure, never a skip.
pub fn tool(name: &str, package: &str) -> PathBuf {
    let found = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!("`{name}` is not installed: `apt-get install -y {package}` (scripts/test.sh does)")
    })
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new(tool("promtool", "prometheus"))
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn promtool_checks_the_rules() {
    let text = promtool(&["check", "rules", "alerts/claimcheck.rules.yml"]);
    assert!(text.contains("SUCCESS: 15 rules found"), "{text}");
}

#[test]
fn promtool_unit_tests_pass() {
    let text = promtool(&["test", "rules", "alerts/claimcheck.test.yml"]);
    assert!(text.contains("SUCCESS"), "{text}");
}

/// Every alert has its severity, summary, description and a runbook anchor that exists in the
/// README, and the unit tests make every alert fire at least once.
#[test]
fn every_alert_is_documented_and_tested() {
    let rules: serde_json::Value = yaml(&repo().join("alerts/claimcheck.rules.yml"));
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let tests = std::fs::read_to_string(repo().join("alerts/claimcheck.test.yml")).unwrap();
    let anchors: Vec<String> = readme
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| github_anchor(l.trim_start_matches('#')))
        .collect();
    let mut names = Vec::new();
    for group in rules["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let name = rule["alert"].as_str().unwrap();
            names.push(name.to_owned());
            let sev = rule["labels"]["severity"].as_str().unwrap_or_default();
            assert!(
                ["critical", "warning"].contains(&sev),
                "{name}: severity {sev:?}"
            );
            let a = &rule["annotations"];
            for key in ["summary", "description"] {
                assert!(
                    a[key].as_str().is_some_and(|s| s.len() > 20),
                    "{name}: no {key}"
                );
            }
            assert!(
                a["description"].as_str().unwrap().contains("Check first"),
                "{name}: the description says what to check first"
            );
            let url = a["runbook_url"].as_str().unwrap();
            let anchor = url.rsplit_once('#').unwrap().1;
            assert_eq!(anchor, name.to_lowercase(), "{name}: runbook anchor");
            assert!(
                anchors.iter().any(|a| a == anchor),
                "{name}: README has no section #{anchor}"
            );
            assert!(
                tests.contains(&format!(
                    "alertname: {name}\n        exp_alerts:\n          - exp_labels"
                )),
                "{name}: no unit test where it fires"
            );
        }
    }
    assert_eq!(names.len(), 15);
}

/// GitHub's heading anchor: lowercase, spaces to dashes, punctuation dropped.
fn github_anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// YAML → JSON value through serde (the rules are plain YAML: maps, lists, strings).
pub fn yaml(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
