//! Alerting, proven against the real Prometheus tools (Debian `prometheus` and
//! `prometheus-alertmanager`; a missing one fails the test, it is never skipped):
//! - the rules: `promtool check rules` and `promtool test rules alerts/claimcheck.test.yml`;
//! - the per-finding pusher against a real Alertmanager: fire, re-send, resolve, retry;
//! - end to end: `simulate` → `serve` → Prometheus with the rules → Alertmanager, and every
//!   dashboard query run against that Prometheus.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use claimcheck::clock::Clock;
use claimcheck::event::Runner;
use claimcheck::sinks::alertmanager::{AlertKind, AlertPusher, AlertmanagerConfig, FindingAlert};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::support::{Server, free_port, until_some};

/// The bearer token serve asks of its Prometheus scraper in the end-to-end test.
const METRICS_TOKEN: &str = "scrape-s3cret";

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

/// `scripts/runbook-base.sh` moves every `runbook_url` to another base, keeps each anchor,
/// and the result still passes `promtool check rules`.
#[test]
fn runbook_urls_take_a_configurable_base() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(repo().join("scripts/runbook-base.sh"))
        .arg("https://wiki.example/ops/claimcheck/")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let original = std::fs::read_to_string(repo().join("alerts/claimcheck.rules.yml")).unwrap();
    let urls: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("runbook_url: "))
        .collect();
    assert_eq!(urls.len(), original.matches("runbook_url: ").count());
    for u in &urls {
        let (base, anchor) = u.split_once('#').unwrap();
        assert_eq!(base, "https://wiki.example/ops/claimcheck", "{u}");
        assert!(original.contains(&format!("README.md#{anchor}\n")), "{u}");
    }
    let rewritten = dir.path().join("rules.yml");
    std::fs::write(&rewritten, &text).unwrap();
    promtool(&["check", "rules", rewritten.to_str().unwrap()]);
    let bad = Command::new(repo().join("scripts/runbook-base.sh"))
        .arg("wiki.example")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn promtool_checks_the_rules() {
    let text = promtool(&["check", "rules", "alerts/claimcheck.rules.yml"]);
    assert!(text.contains("SUCCESS: 16 rules found"), "{text}");
}

#[test]
fn promtool_unit_tests_pass() {
    let text = promtool(&["test", "rules", "alerts/claimcheck.test.yml"]);
    assert!(text.contains("SUCCESS"), "{text}");
}

/// The shipped Prometheus and Alertmanager examples are valid for the real tools.
#[test]
fn the_prometheus_and_alertmanager_examples_are_valid() {
    let text = promtool(&["check", "config", "dashboards/prometheus.yml"]);
    assert!(text.contains("SUCCESS: 1 rule files found"), "{text}");
    let out = Command::new(tool("amtool", "prometheus-alertmanager"))
        .args(["check-config", "dashboards/alertmanager.yml"])
        .current_dir(repo())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("SUCCESS"), "{text}");
}

/// Every alert has its severity, summary, description and a runbook anchor that exists in the
/// README, and the unit tests make every alert fire at least once.
#[test]
fn every_alert_is_documented_and_tested() {
    let rules: Value = yaml(&repo().join("alerts/claimcheck.rules.yml"));
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
    assert_eq!(names.len(), 16);
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
pub fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

// --- the Alertmanager pusher against a real Alertmanager --------------------------------------

/// A real Alertmanager on `port` with its own storage in `dir`, clustering off.
pub fn start_alertmanager(dir: &Path, port: u16) -> Server {
    let config = dir.join("alertmanager.yml");
    std::fs::write(
        &config,
        "route:\n  receiver: blackhole\n  group_wait: 1s\nreceivers:\n  - name: blackhole\n",
    )
    .unwrap();
    let data = dir.join(format!("am-data-{port}"));
    std::fs::create_dir_all(&data).unwrap();
    Server(
        Command::new(tool("prometheus-alertmanager", "prometheus-alertmanager"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

pub async fn get_json(url: &str) -> Option<Value> {
    let r = reqwest::get(url).await.ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
}

/// The alerts Alertmanager holds (active, not resolved) for `session`.
async fn held(port: u16, session: &str) -> Option<Vec<Value>> {
    let url = format!("http://127.0.0.1:{port}/api/v2/alerts?filter=session%3D%22{session}%22");
    get_json(&url).await?.as_array().cloned()
}

fn counter(reg: &prometheus::Registry, line_prefix: &str) -> f64 {
    let mut text = String::new();
    prometheus::TextEncoder::new()
        .encode_utf8(&reg.gather(), &mut text)
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(line_prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

fn finding(kind: AlertKind, session: &str) -> FindingAlert {
    FindingAlert {
        kind,
        session: session.to_owned(),
        org: Some("org_acme".into()),
        runner: Some(Runner::Go),
        runtime: (kind == AlertKind::RunnerMismatch).then_some(Runner::Ts),
        expected: None,
        detail: Some("no claim by dispatch + 120s".into()),
    }
}

fn config(port: u16) -> AlertmanagerConfig {
    let mut c = AlertmanagerConfig::new(format!("http://127.0.0.1:{port}").parse().unwrap());
    c.backoff_min = Duration::from_millis(50);
    c.backoff_max = Duration::from_millis(400);
    c.resend_interval = Duration::from_secs(1);
    c.timeout = Duration::from_secs(2);
    c.generator_base = Some("http://claimcheck.test:9464".into());
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_holds_fired_alerts_and_drops_resolved_ones() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _am = start_alertmanager(dir.path(), port);
    until_some(20, "alertmanager ready", || async {
        reqwest::get(format!("http://127.0.0.1:{port}/-/ready"))
            .await
            .ok()
            .filter(|r| r.status().is_success())
    })
    .await;

    let reg = prometheus::Registry::new();
    let stop = CancellationToken::new();
    let (handle, task) =
        AlertPusher::spawn(config(port), &reg, Clock::system(), stop.clone()).unwrap();
    assert!(handle.fire(finding(AlertKind::UnclaimedGoSession, "ses_late1")));
    assert!(handle.fire(finding(AlertKind::RunnerMismatch, "ses_mism1")));

    let alerts = until_some(20, "the unclaimed alert in alertmanager", || async {
        held(port, "ses_late1").await.filter(|a| a.len() == 1)
    })
    .await;
    let a = &alerts[0];
    assert_eq!(a["labels"]["alertname"], "ClaimcheckUnclaimedGoSession");
    assert_eq!(a["labels"]["org"], "org_acme");
    assert_eq!(a["labels"]["runner"], "go");
    assert_eq!(a["labels"]["severity"], "critical");
    assert_eq!(a["status"]["state"], "active");
    assert_eq!(
        a["generatorURL"],
        "http://claimcheck.test:9464/api/sessions/ses_late1"
    );
    assert!(
        a["annotations"]["description"]
            .as_str()
            .unwrap()
            .contains("no claim by dispatch + 120s")
    );
    let mism = until_some(20, "the mismatch alert", || async {
        held(port, "ses_mism1").await.filter(|a| a.len() == 1)
    })
    .await;
    assert_eq!(mism[0]["labels"]["runtime"], "ts");

    // re-sent while active: Alertmanager's endsAt moves forward
    let first_end = a["endsAt"].as_str().unwrap().to_owned();
    until_some(20, "a re-send refreshing endsAt", || async {
        let a = held(port, "ses_late1").await?;
        (a.first()?["endsAt"].as_str()? > first_end.as_str()).then_some(())
    })
    .await;

    // its late claim arrives: resolved, gone from Alertmanager; the mismatch stays
    assert!(handle.resolve(AlertKind::UnclaimedGoSession, "ses_late1"));
    until_some(20, "the unclaimed alert resolved", || async {
        held(port, "ses_late1").await.filter(|a| a.is_empty())
    })
    .await;
    assert_eq!(held(port, "ses_mism1").await.unwrap().len(), 1);
    until_some(20, "the resolved alert dropped by the pusher", || async {
        (counter(&reg, "claimcheck_alertmanager_alerts ") == 1.0).then_some(())
    })
    .await;
    assert!(counter(&reg, "claimcheck_alertmanager_posts_total{result=\"ok\"} ") >= 3.0);
    assert_eq!(
        counter(
            &reg,
            "claimcheck_alertmanager_posts_total{result=\"error\"} "
        ),
        0.0
    );
    stop.cancel();
    task.await.unwrap();
    // stopped: every post was timed beside its count, by the same result
    let ok_posts = counter(&reg, "claimcheck_alertmanager_posts_total{result=\"ok\"} ");
    assert_eq!(
        counter(
            &reg,
            "claimcheck_alertmanager_push_duration_seconds_count{result=\"ok\"} "
        ),
        ok_posts
    );
    assert!(
        counter(
            &reg,
            "claimcheck_alertmanager_push_duration_seconds_sum{result=\"ok\"} "
        ) > 0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alertmanager_down_at_first_gets_the_alert_after_retries() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let reg = prometheus::Registry::new();
    let stop = CancellationToken::new();
    let (handle, task) =
        AlertPusher::spawn(config(port), &reg, Clock::system(), stop.clone()).unwrap();
    assert!(handle.fire(finding(AlertKind::DuplicateClaim, "ses_dup1")));
    // nobody listens: the pusher fails and backs off (50, 100, 200 ms…)
    until_some(20, "two failed posts", || async {
        (counter(
            &reg,
            "claimcheck_alertmanager_posts_total{result=\"error\"} ",
        ) >= 2.0)
            .then_some(())
    })
    .await;
    let _am = start_alertmanager(dir.path(), port);
    let alerts = until_some(
        30,
        "the alert delivered once alertmanager is up",
        || async { held(port, "ses_dup1").await.filter(|a| a.len() == 1) },
    )
    .await;
    assert_eq!(alerts[0]["labels"]["alertname"], "ClaimcheckDuplicateClaim");
    // Counted once Alertmanager's answer is read, which comes after it holds the alert: the
    // alert can be seen there a moment before the count moves (a clean-clone CI run, session
    // 15, looked in between).
    until_some(20, "the delivering post counted ok", || async {
        (counter(&reg, "claimcheck_alertmanager_posts_total{result=\"ok\"} ") >= 1.0).then_some(())
    })
    .await;
    stop.cancel();
    task.await.unwrap();
    // stopped: one latency sample per post, failed ones too
    for result in ["ok", "error"] {
        let posts = counter(
            &reg,
            &format!("claimcheck_alertmanager_posts_total{{result=\"{result}\"}} "),
        );
        let timed = counter(
            &reg,
            &format!("claimcheck_alertmanager_push_duration_seconds_count{{result=\"{result}\"}} "),
        );
        assert_eq!(timed, posts, "{result}: one latency sample per post");
    }
}

// --- end to end: simulate → serve → Prometheus (rules) → Alertmanager ---------------------------

/// A Prometheus query through the HTTP API: `Err` when it does not parse or evaluate,
/// else the result vector.
async fn prom_query(port: u16, q: &str) -> Result<Vec<Value>, String> {
    let r = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/api/v1/query"))
        .query(&[("query", q)])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let v: Value = r.json().await.map_err(|e| e.to_string())?;
    if v["status"] != "success" {
        return Err(format!("{}: {}", v["errorType"], v["error"]));
    }
    Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
}

async fn prom_scalar(port: u16, q: &str) -> Option<f64> {
    let r = prom_query(port, q).await.ok()?;
    r.first()?["value"][1].as_str()?.parse().ok()
}

/// Alert names Prometheus reports in `state` ("firing" or "pending").
async fn prom_alerts(port: u16, state: &str) -> Option<BTreeSet<String>> {
    let v = get_json(&format!("http://127.0.0.1:{port}/api/v1/alerts")).await?;
    Some(
        v["data"]["alerts"]
            .as_array()?
            .iter()
            .filter(|a| a["state"] == state)
            .filter_map(|a| a["labels"]["alertname"].as_str().map(str::to_owned))
            .collect(),
    )
}

/// Grafana's variables, as the e2e test substitutes them: all orgs, a rate interval of four
/// 1 s scrapes rounded up, the last hour.
fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "30s")
        .replace("$__range", "1h")
        .replace("$org", ".*")
        .replace("$job", ".*")
        .replace("$instance", ".*")
}

/// Metrics that only have series once something happened (none here), or only with
/// `serve --cluster` (this serve keeps its state in the process: `serve_cluster.rs` runs them).
const NOT_SERVED_YET: &[&str] = &[
    "claimcheck_alertmanager_dropped_total",
    "claimcheck_cluster_",
];

/// The rules with every `for:` cut to 5 s, so faults fire within the test; the `for:`
/// semantics themselves are proven by the promtool unit tests.
fn rules_with_short_for() -> String {
    let text = std::fs::read_to_string(repo().join("alerts/claimcheck.rules.yml")).unwrap();
    text.lines()
        .map(|l| match l.trim_start().strip_prefix("for: ") {
            Some(_) => format!("{}for: 5s", &l[..l.len() - l.trim_start().len()]),
            None => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_faults_fire_their_alerts_and_every_panel_query_answers() {
    let dir = tempfile::tempdir().unwrap();
    let (platform, live) = (dir.path().join("platform"), dir.path().join("live"));
    std::fs::create_dir_all(&live).unwrap();
    let out = crate::support::claimcheck()
        .args(["simulate", "--sessions", "3000", "--seed", "7", "--out"])
        .arg(&platform)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // claimcheck serve follows the (still empty) live files; T = 3 s so unclaimed go
    // sessions become overdue during the test, and
    let (cc, prom, am) = (free_port(), free_port(), free_port());
    let files = [
        ("dispatch.log", ""),
        ("vercel-drain.ndjson", ""),
        ("go-daemon.log", "go="),
        ("ts-worker.log", "ts="),
    ];
    // The platform: a scratch Postgres with the seed's tables (org_e2e on ts, org_bad with a
    // malformed flag) and Redis keys under a prefix of this test's own; `e2e-late`'s claim key
    // is held, so its witness is counted.
    let db = crate::scratch_db::ScratchDb::new().await;
    let mut pg = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
        .await
        .unwrap();
    sqlx::raw_sql(
        "CREATE TABLE organizations (id text PRIMARY KEY, slug text, features jsonb, \
           updated_at timestamptz NOT NULL DEFAULT now());
         CREATE TABLE agent_sessions (id text PRIMARY KEY, status text NOT NULL, \
           created_at timestamptz NOT NULL DEFAULT now(), organization_id text);
         INSERT INTO organizations VALUES ('org_e2e', 'e2e', '{}', now()), \
           ('org_bad', 'bad', '{\"runner_default\":\"Go\"}', now());",
    )
    .execute(&mut pg)
    .await
    .unwrap();
    let prefix = format!("cc_e2e_{}:", std::process::id());
    let mut redis = redis::Client::open("redis://127.0.0.1:6379/")
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    redis::cmd("SET")
        .arg(format!("{prefix}work:claim:e2e-late"))
        .arg("go-worker-9")
        .arg("EX")
        .arg(600)
        .exec_async(&mut redis)
        .await
        .unwrap();
    // orphan claims are counted after a 2 s grace instead of 5 min, so their panel has data;
    // alerts are re-sent every 2 s, so the push latency panel has posts in its window
    let config = dir.path().join("claimcheck.toml");
    std::fs::write(
        &config,
        format!(
            "[serve]\nclaim_timeout = [\"3s\"]\norphan_grace = \"2s\"\n\
             [serve.alertmanager]\nresend_interval = \"2s\"\n\
             [platform]\ndrift_grace = \"1s\"\n\
             [platform.postgres]\nurl = \"{}\"\n\
             [platform.postgres.organizations]\npoll_interval = \"500ms\"\n\
             [platform.postgres.sessions]\npoll_interval = \"500ms\"\n\
             [platform.redis]\nkey_prefix = \"{prefix}\"\npoll_interval = \"500ms\"\n",
            db.url
        ),
    )
    .unwrap();
    let mut serve = crate::support::claimcheck();
    serve.args(["serve", "--listen", &format!("127.0.0.1:{cc}"), "--config"]);
    // /metrics behind a bearer token, scraped with Prometheus's `authorization` config
    serve.env("CLAIMCHECK_METRICS_TOKEN", METRICS_TOKEN);
    serve.arg(&config);
    serve.arg("--store").arg(dir.path().join("state.db"));
    serve
        .arg("--alertmanager")
        .arg(format!("http://127.0.0.1:{am}"));
    for (f, rt) in files {
        serve
            .arg("--file")
            .arg(format!("{rt}{}", live.join(f).display()));
    }
    let _serve = Server(
        serve
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let _am = start_alertmanager(dir.path(), am);

    // a real Prometheus scraping claimcheck every second, with the rules loaded
    std::fs::write(dir.path().join("rules.yml"), rules_with_short_for()).unwrap();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files: [rules.yml]\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{am}']\n\
             scrape_configs:\n  - job_name: claimcheck\n    authorization:\n      credentials: {METRICS_TOKEN}\n\
             \x20   static_configs:\n      - targets: ['127.0.0.1:{cc}']\n"
        ),
    )
    .unwrap();
    let _prom = Server(
        Command::new(tool("prometheus", "prometheus"))
            .current_dir(dir.path())
            .arg("--config.file=prometheus.yml")
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    until_some(30, "claimcheck scraped", || async {
        (prom_scalar(prom, "up{job=\"claimcheck\"}").await? == 1.0).then_some(())
    })
    .await;
    // what Prometheus reached, nobody reaches without the token
    assert_eq!(
        crate::support::http_get_status(cc, "/metrics").map(|(s, _)| s),
        Some(401)
    );

    // The platform writes its logs in 15 rounds; each round waits until Prometheus has
    // scraped every line of it, so rates and changes see a live workload.
    let contents: Vec<Vec<String>> = files
        .iter()
        .map(|(f, _)| {
            let text = std::fs::read_to_string(platform.join(f)).unwrap();
            text.split_inclusive('\n').map(str::to_owned).collect()
        })
        .collect();
    let rounds = 15;
    let mut written = 0usize;
    for round in 0..rounds {
        for ((f, _), lines) in files.iter().zip(&contents) {
            let per = lines.len().div_ceil(rounds);
            let chunk = lines.iter().skip(round * per).take(per);
            let text: String = chunk.map(String::as_str).collect();
            written += text.matches('\n').count();
            use std::io::Write;
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(live.join(f))
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        let want = written as f64;
        until_some(
            30,
            &format!("round {round} scraped ({want} lines)"),
            || async {
                (prom_scalar(prom, "sum(claimcheck_ingest_lines_total)").await? >= want)
                    .then_some(())
            },
        )
        .await;
    }

    // Platform faults: org_e2e is flipped to go, then a ts dispatch of it after the grace is
    // drift; a go session left unclaimed past T has a Redis witness.
    let append = |f: &str, line: String| {
        use std::io::Write;
        std::fs::OpenOptions::new()
            .append(true)
            .open(live.join(f))
            .unwrap()
            .write_all(line.as_bytes())
            .unwrap();
    };
    sqlx::raw_sql(
        "UPDATE organizations SET features = '{\"runner_default\":\"go\"}', updated_at = now() \
         WHERE id = 'org_e2e'",
    )
    .execute(&mut pg)
    .await
    .unwrap();
    until_some(30, "the flip seen", || async {
        (prom_scalar(prom, "sum(claimcheck_flips_total)").await? >= 1.0).then_some(())
    })
    .await;
    let soon = Clock::system().now().saturating_add_ms(2000).to_rfc3339();
    append(
        "dispatch.log",
        format!(
            r#"{{"event":"dispatch","sessionId":"e2e-drift","organizationId":"org_e2e","resolvedProfile":{{"runner":"ts"}},"time":"{soon}"}}"#
        ) + "\n",
    );
    append(
        "dispatch.log",
        r#"{"event":"dispatch","sessionId":"e2e-late","organizationId":"org_e2e","resolvedProfile":{"runner":"go"},"time":"2026-11-24T10:00:00Z"}"#.to_owned() + "\n",
    );
    until_some(30, "the drift and the witness scraped", || async {
        let drift = prom_scalar(prom, "sum(claimcheck_flag_drift_total)").await?;
        let seen = prom_scalar(prom, "sum(claimcheck_claims_witnessed_total)").await?;
        (drift >= 1.0 && seen >= 1.0).then_some(())
    })
    .await;

    // The faults simulate injects fire, and the platform faults above; nothing else does. The
    // replayed logs are a day old, so the lag alert rightly fires too (events arrive, the
    // newest is 18 hours behind).
    let expected: BTreeSet<String> = [
        "ClaimcheckUnclaimedGoSessions",
        "ClaimcheckRunnerMismatch",
        "ClaimcheckDuplicateClaim",
        "ClaimcheckGoDaemonOutdated",
        "ClaimcheckSourceLagging",
        "ClaimcheckFlagDrift",
        "ClaimcheckMalformedOrgFlag",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    let firing = until_some(60, "the expected alerts firing", || async {
        let f = prom_alerts(prom, "firing").await?;
        expected.is_subset(&f).then_some(f)
    })
    .await;
    assert_eq!(firing, expected, "firing alerts");
    eprintln!("e2e: firing alerts {firing:?}");

    // every rule loaded and evaluates without error
    let rules = get_json(&format!("http://127.0.0.1:{prom}/api/v1/rules"))
        .await
        .unwrap();
    let mut rule_count = 0;
    for g in rules["data"]["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            rule_count += 1;
            assert_eq!(r["health"], "ok", "{}: {}", r["name"], r["lastError"]);
        }
    }
    assert_eq!(rule_count, 16);

    // every dashboard query parses, evaluates and returns data, but for a counter of
    // something that did not happen here (a full Alertmanager queue)
    let dash = crate::dashboards::dashboard();
    let (mut with_data, mut empty, mut nan_only) = (0, Vec::new(), Vec::new());
    let exprs = crate::dashboards::exprs(&dash);
    for e in &exprs {
        let q = substitute(e);
        let result = prom_query(prom, &q)
            .await
            .unwrap_or_else(|err| panic!("dashboard query does not run: {q}: {err}"));
        if result.is_empty() {
            assert!(
                NOT_SERVED_YET.iter().any(|m| e.contains(m)),
                "no data for a query on exported metrics: {q}"
            );
            empty.push(e.clone());
        } else {
            with_data += 1;
            // a number somewhere, not only NaN (e.g. a quantile of an empty histogram)
            let numbers = result
                .iter()
                .filter_map(|r| r["value"][1].as_str()?.parse::<f64>().ok())
                .filter(|v| !v.is_nan())
                .count();
            if numbers == 0 {
                nan_only.push(q.clone());
            }
        }
    }
    eprintln!(
        "e2e: {with_data} of {} dashboard queries returned data; empty: {empty:#?}",
        exprs.len()
    );
    assert!(with_data >= 38, "{with_data} queries with data");
    assert!(
        nan_only.is_empty(),
        "queries answering only NaN: {nan_only:#?}"
    );
    // the org variable's values
    let orgs = get_json(&format!(
        "http://127.0.0.1:{prom}/api/v1/label/org/values?match[]=claimcheck_dispatches_total"
    ))
    .await
    .unwrap();
    assert!(orgs["data"].as_array().unwrap().len() > 1, "{orgs}");

    // Prometheus delivered the firing rule alerts to Alertmanager
    let rule_alerts = until_some(30, "rule alerts in alertmanager", || async {
        let v = get_json(&format!("http://127.0.0.1:{am}/api/v2/alerts")).await?;
        let names: BTreeSet<String> = v
            .as_array()?
            .iter()
            .filter_map(|a| a["labels"]["alertname"].as_str().map(str::to_owned))
            .collect();
        expected.is_subset(&names).then_some(names)
    })
    .await;
    eprintln!("e2e: alertmanager holds {rule_alerts:?}");

    // serve pushed per-finding alerts, one per session, with session and org labels
    let pushed = until_some(30, "per-finding alerts in alertmanager", || async {
        let v = get_json(&format!("http://127.0.0.1:{am}/api/v2/alerts")).await?;
        let mut by_name: std::collections::BTreeMap<String, usize> = Default::default();
        for a in v.as_array()? {
            if a["labels"]["session"].is_string() && a["labels"]["org"].is_string() {
                let name = a["labels"]["alertname"].as_str()?.to_owned();
                *by_name.entry(name).or_default() += 1;
            }
        }
        let want = [
            "ClaimcheckRunnerMismatch",
            "ClaimcheckDuplicateClaim",
            "ClaimcheckUnclaimedGoSession",
        ];
        want.iter()
            .all(|n| by_name.contains_key(*n))
            .then_some(by_name)
    })
    .await;
    eprintln!("e2e: per-finding alerts pushed by serve {pushed:?}");

    // the go session left unclaimed past T raised its alert; its late claim resolves it
    let raised = until_some(30, "the unclaimed alert for e2e-late", || async {
        let alerts = held(am, "e2e-late").await?;
        alerts
            .iter()
            .any(|a| a["labels"]["alertname"] == "ClaimcheckUnclaimedGoSession")
            .then_some(alerts)
    })
    .await;
    assert_eq!(raised[0]["labels"]["org"], "org_e2e", "{raised:?}");
    append(
        "go-daemon.log",
        r#"{"event":"claimed","sessionId":"e2e-late","workerId":"g1","time":"2026-11-24T10:00:09Z"}"#.to_owned() + "\n",
    );
    until_some(30, "the unclaimed alert for e2e-late resolved", || async {
        held(am, "e2e-late").await?.is_empty().then_some(())
    })
    .await;
}
