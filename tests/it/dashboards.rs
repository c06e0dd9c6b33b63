//! The Grafana dashboard's conventions, checked on its JSON: a datasource variable and nothing
//! hard-coded, an org variable, a unit and a description on every panel, `$__rate_interval`
//! (or `$__range`) instead of fixed ranges, and every `claimcheck_*` metric it (or an alert
//! rule) names is one claimcheck exports.

use std::collections::BTreeSet;
use std::path::Path;

use claimcheck::clock::Clock;
use claimcheck::correlate::Outcome;
use claimcheck::correlate::live::Change;
use claimcheck::event::{Runner, SessionId, Timestamp};
use claimcheck::parse::Reject;
use claimcheck::sinks::alertmanager::{AlertPusher, AlertmanagerConfig};
use claimcheck::sinks::metrics::{LineCounts, LineResult, Metrics};
use serde_json::Value;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn dashboard() -> Value {
    let text = std::fs::read_to_string(repo().join("dashboards/claimcheck.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Every panel that shows data (rows are layout only).
pub fn data_panels(d: &Value) -> Vec<&Value> {
    d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] != "row")
        .collect()
}

/// Every PromQL expression: panel targets and annotation queries.
pub fn exprs(d: &Value) -> Vec<String> {
    let mut out: Vec<String> = data_panels(d)
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap())
        .map(|t| t["expr"].as_str().unwrap().to_owned())
        .collect();
    for a in d["annotations"]["list"].as_array().unwrap() {
        if let Some(e) = a["expr"].as_str() {
            out.push(e.to_owned());
        }
    }
    out
}

/// The metric names claimcheck exports, gathered from the code: every family of `Metrics`,
/// each made to hold a series so the registry reports it.
fn exported_by_the_code() -> BTreeSet<String> {
    let reg = prometheus::Registry::new();
    let mut m = Metrics::register(&reg, 10, 10).unwrap();
    let s = SessionId::new("s1").unwrap();
    for c in [
        Change::Dispatched {
            first_seen: claimcheck::event::Timestamp(0),
            session: s.clone(),
            runner: Runner::Go,
            org: Some("org_a".into()),
            at: claimcheck::event::Timestamp(0),
        },
        Change::Claimed {
            runtime: Runner::Go,
        },
        Change::PendingStarted { runner: Runner::Go },
        Change::Judged {
            first_seen: claimcheck::event::Timestamp(0),
            org: None,
            session: s.clone(),
            runner: Runner::Go,
            dispatched_at: claimcheck::event::Timestamp(0),
            outcome: Outcome::Mismatched,
            latency_ms: Some(1000),
            skew_clamped: false,
            refile: false,
        },
        Change::Overdue {
            first_seen: claimcheck::event::Timestamp(0),
            org: None,
            session: s.clone(),
            runner: Runner::Go,
            dispatched_at: claimcheck::event::Timestamp(0),
            refile: false,
        },
        Change::Duplicate {
            first_seen: claimcheck::event::Timestamp(0),
            org: None,
            session: s.clone(),
            runtime: Runner::Go,
            cross_runtime: false,
        },
        Change::Reclaimed {
            first_seen: claimcheck::event::Timestamp(0),
            session: s.clone(),
            runtime: Runner::Go,
            total: 1,
        },
        Change::Orphan {
            session: s,
            runtime: Runner::Go,
            claim: 1,
        },
    ] {
        m.apply(&c);
    }
    let mut counts = LineCounts::default();
    counts.lines("dispatch.log", LineResult::Event, 1);
    counts.rejected("dispatch.log", Reject::BadTime);
    m.ingest_counters().count(&counts);
    m.event_time("dispatch.log", Timestamp(1_795_428_000_000));
    m.daemon(
        Runner::Go,
        "g1",
        Some("0.5.2"),
        Some(Timestamp(1_795_428_000_000)),
    );
    // the Alertmanager pusher registers its own (outside a runtime: nothing is spawned)
    let url = "http://127.0.0.1:9".parse().unwrap();
    let _pusher = AlertPusher::new(AlertmanagerConfig::new(url), &reg, Clock::system()).unwrap();
    // the platform's and the reporter's, registered when Postgres/Redis or a store is configured
    let platform = claimcheck::platform::PlatformMetrics::new(&reg).unwrap();
    platform.dependency_up(claimcheck::platform::Dependency::Postgres, true);
    platform.drift("org_a", Runner::Go, Runner::Ts);
    let mut queue = claimcheck::platform::QueueStats::default();
    queue.by_runner[0].oldest_queued_at = Some(Timestamp(1));
    platform.queue(&queue);
    let mut book = claimcheck::platform::FlagBook::new();
    let features = serde_json::json!({"runner_default": "Go"});
    book.apply(&claimcheck::platform::FlagSnapshot {
        observed_at: Timestamp(1),
        orgs: vec![claimcheck::platform::OrgFlag {
            id: "org_a".into(),
            slug: None,
            flag: claimcheck::platform::flags::resolve(Some(&features), "runner_default"),
            updated_at: None,
        }],
    });
    platform.flags(&book);
    let _reports = claimcheck::flip::auto::register_metrics(&reg).unwrap();
    // claimcheck about itself: HTTP, store commits, internal queues
    use claimcheck::sinks::self_metrics::{HttpMetrics, QueueDepths, StoreMetrics};
    HttpMetrics::register(&reg)
        .unwrap()
        .observe("/metrics", "GET", "200", 0.001);
    StoreMetrics::register(&reg).unwrap().attempt(0.01, false);
    // the shared correlation state's, registered with `serve --cluster`
    let cluster = claimcheck::sinks::self_metrics::ClusterMetrics::register(&reg).unwrap();
    cluster.low_watermark(1_795_428_000_000);
    cluster.shared_sessions("go", 1, 1);
    let (tx, _rx) = tokio::sync::mpsc::channel::<()>(1);
    QueueDepths::register(&reg, vec![("batches", QueueDepths::probe(&tx))]).unwrap();
    reg.gather().iter().map(|f| f.name().to_owned()).collect()
}

/// Metrics `serve` exports only with the platform (Postgres/Redis) or a store configured (the
/// alerting e2e configures both, so their panels have data there too).
pub const PLATFORM_ONLY: &[&str] = &[
    "claimcheck_org_expected_runner",
    "claimcheck_org_flag_malformed",
    "claimcheck_flips_total",
    "claimcheck_flag_drift_total",
    "claimcheck_sessions_missing_from_logs_total",
    "claimcheck_queue_depth",
    "claimcheck_queue_oldest_age_seconds",
    "claimcheck_claims_witnessed_total",
    "claimcheck_dependency_up",
    "claimcheck_flip_verifications_total",
];
/// `claimcheck_…` and `process_…` names in a text; histogram series map to their family.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = prefixed_names(text, "claimcheck_");
    out.extend(prefixed_names(text, "process_"));
    out
}

fn prefixed_names(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find(prefix) {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        // `job="claimcheck"` and prose are not metric names; `claimcheck_` at a word start is.
        let at_word_start = i == 0
            || !rest[..i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '/' || c == '#');
        if at_word_start {
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            out.insert(family.to_owned());
        }
        rest = &tail[end..];
    }
    out
}

#[test]
fn the_platform_only_names_are_exported_by_the_code() {
    let exported = exported_by_the_code();
    assert!(
        exported.contains("claimcheck_claim_latency_seconds"),
        "{exported:?}"
    );
    for name in PLATFORM_ONLY {
        assert!(exported.contains(*name), "{name} is not exported");
    }
}

#[test]
fn every_metric_named_in_the_dashboard_and_the_rules_is_exported() {
    let known = exported_by_the_code();
    let rules = std::fs::read_to_string(repo().join("alerts/claimcheck.rules.yml")).unwrap();
    let rule_names = metric_names(&rules);
    let dash_names: BTreeSet<String> = exprs(&dashboard())
        .iter()
        .flat_map(|e| metric_names(e))
        .collect();
    for (what, names) in [("rules", &rule_names), ("dashboard", &dash_names)] {
        let unknown: Vec<&String> = names.difference(&known).collect();
        assert!(
            unknown.is_empty(),
            "{what} name metrics claimcheck does not export: {unknown:?}"
        );
    }
    // and the dashboard shows every metric claimcheck exports
    let unshown: Vec<&String> = known.difference(&dash_names).collect();
    assert!(unshown.is_empty(), "no panel shows {unshown:?}");
}

#[test]
fn datasource_and_org_are_variables() {
    let d = dashboard();
    let vars = d["templating"]["list"].as_array().unwrap();
    let ds = vars.iter().find(|v| v["name"] == "datasource").unwrap();
    assert_eq!(ds["type"], "datasource");
    assert_eq!(ds["query"], "prometheus");
    let org = vars.iter().find(|v| v["name"] == "org").unwrap();
    assert_eq!(org["type"], "query");
    assert_eq!(org["datasource"]["uid"], "${datasource}");
    assert_eq!(org["includeAll"], true);
    assert!(d["schemaVersion"].as_u64().unwrap() >= 39);
    assert!(d["id"].is_null(), "an importable dashboard has no id");
    // the org variable is used by the per-org panels
    assert!(exprs(&d).iter().any(|e| e.contains("org=~\"$org\"")));
}

/// Several sidecars (`serve --cluster`, README "Running several sidecars") are one job of
/// several instances: `job` and `instance` are variables, and every metric every panel reads is
/// scoped by both (or joined on them), so the dashboard shows one replica or the sum of all.
#[test]
fn job_and_instance_are_variables_on_every_query() {
    let d = dashboard();
    let vars = d["templating"]["list"].as_array().unwrap();
    for name in ["job", "instance"] {
        let v = vars.iter().find(|v| v["name"] == name).unwrap();
        assert_eq!(v["type"], "query", "{name}");
        assert_eq!(v["datasource"]["uid"], "${datasource}", "{name}");
        assert_eq!(
            (&v["includeAll"], &v["multi"]),
            (&Value::Bool(true), &Value::Bool(true))
        );
    }
    for e in exprs(&d) {
        let selectors = e.matches("claimcheck_").count() + e.matches("process_").count();
        let scoped = e.matches("job=~\"$job\", instance=~\"$instance\"").count();
        assert!(scoped >= 1, "{e} is not scoped by $job and $instance");
        let joined =
            e.contains("and on (job, instance)") || e.contains("unless on (job, instance)");
        assert!(
            joined || scoped >= selectors,
            "{e}: {scoped} of {selectors} selectors scoped"
        );
    }
}

/// Every `datasource` object anywhere in the JSON is the variable (or Grafana's own, for the
/// built-in annotations): no uid of someone's Prometheus is baked in.
#[test]
fn no_hard_coded_datasource() {
    fn walk(v: &Value, path: &str, bad: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    let p = format!("{path}.{k}");
                    if k == "datasource" && !v.is_null() {
                        let ok = v["uid"] == "${datasource}"
                            || (v["type"] == "grafana" && v["uid"] == "-- Grafana --");
                        if !ok {
                            bad.push(format!("{p} = {v}"));
                        }
                    }
                    walk(v, &p, bad);
                }
            }
            Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    walk(v, &format!("{path}[{i}]"), bad);
                }
            }
            _ => {}
        }
    }
    let d = dashboard();
    let mut bad = Vec::new();
    walk(&d, "", &mut bad);
    assert!(bad.is_empty(), "hard-coded datasources: {bad:#?}");
    for p in data_panels(&d) {
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        for t in p["targets"].as_array().unwrap() {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        }
    }
}

#[test]
fn every_panel_has_a_unit_a_description_and_no_fixed_range() {
    let d = dashboard();
    let panels = data_panels(&d);
    assert!(panels.len() >= 20, "{} panels", panels.len());
    let mut ids = BTreeSet::new();
    for p in &panels {
        let title = p["title"].as_str().unwrap();
        assert!(
            ids.insert(p["id"].as_u64().unwrap()),
            "{title}: duplicate id"
        );
        assert!(
            p["fieldConfig"]["defaults"]["unit"]
                .as_str()
                .is_some_and(|u| !u.is_empty()),
            "{title}: no unit"
        );
        assert!(
            p["description"].as_str().is_some_and(|s| s.len() > 30),
            "{title}: no description"
        );
        assert!(
            !p["targets"].as_array().unwrap().is_empty(),
            "{title}: no query"
        );
        for g in ["h", "w", "x", "y"] {
            assert!(p["gridPos"][g].is_u64(), "{title}: gridPos.{g}");
        }
    }
    // no two panels overlap on the grid (rows included)
    let all = d["panels"].as_array().unwrap();
    let rect = |p: &Value| {
        let g = &p["gridPos"];
        let n = |k: &str| g[k].as_u64().unwrap();
        (n("x"), n("y"), n("x") + n("w"), n("y") + n("h"))
    };
    for (i, a) in all.iter().enumerate() {
        let (ax0, ay0, ax1, ay1) = rect(a);
        assert!(ax1 <= 24, "{}: wider than the grid", a["title"]);
        for b in &all[i + 1..] {
            let (bx0, by0, bx1, by1) = rect(b);
            let overlap = ax0 < bx1 && bx0 < ax1 && ay0 < by1 && by0 < ay1;
            assert!(!overlap, "{} overlaps {}", a["title"], b["title"]);
        }
    }
    for e in exprs(&d) {
        // a range is `[$__rate_interval]` or `[$__range]`; `[5m]` would be wrong at some zoom
        for range in ranges(&e) {
            assert!(
                range == "$__rate_interval" || range == "$__range",
                "fixed range [{range}] in {e}"
            );
        }
    }
}

/// The `[…]` range selectors of a PromQL expression (brackets inside strings are not).
fn ranges(e: &str) -> Vec<String> {
    let (mut out, mut in_str, mut escaped, mut open) = (Vec::new(), false, false, None);
    for (i, c) in e.char_indices() {
        match (in_str, c) {
            (true, '\\') if !escaped => escaped = true,
            (true, '"') if !escaped => in_str = false,
            (true, _) => escaped = false,
            (false, '"') => in_str = true,
            (false, '[') => open = Some(i + 1),
            (false, ']') => {
                if let Some(o) = open.take() {
                    out.push(e[o..i].to_owned());
                }
            }
            _ => {}
        }
    }
    out
}

/// Flips are an annotation query on claimcheck_flips_total increases.
#[test]
fn flips_are_annotations() {
    let d = dashboard();
    let flips = d["annotations"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "Flips")
        .unwrap();
    assert!(
        flips["expr"]
            .as_str()
            .unwrap()
            .contains("increase(claimcheck_flips_total")
    );
    assert_eq!(flips["datasource"]["uid"], "${datasource}");
    assert_eq!(flips["enable"], true);
}

/// The panels the issue asks for are there, found by the metric each one needs.
#[test]
fn the_required_panels_exist() {
    let d = dashboard();
    let has = |needle: &str| {
        data_panels(&d).iter().any(|p| {
            p["targets"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["expr"].as_str().unwrap().contains(needle))
        })
    };
    for needle in [
        "claimcheck_dispatches_total{runner=\"go\"", // go share overall
        "sum by (runner) (rate(claimcheck_dispatches_total", // stacked over time
        "sum by (org) (increase(claimcheck_dispatches_total", // per org
        "histogram_quantile(0.5,",
        "histogram_quantile(0.95,",
        "histogram_quantile(0.99,",
        "claimcheck_unclaimed_sessions",
        "claimcheck_pending_sessions",
        "outcome=\"mismatched\"",
        "claimcheck_duplicate_claims_total",
        "claimcheck_orphan_claims_total",
        "claimcheck_reclaims_total",
        "claimcheck_flag_drift_total",
        "claimcheck_org_flag_malformed",
        "claimcheck_queue_depth",
        "claimcheck_queue_oldest_age_seconds",
        "claimcheck_daemon_last_heartbeat_timestamp_seconds",
        "claimcheck_daemon_info",
        "claimcheck_ingest_lines_total",
        "claimcheck_rejected_lines_total",
        "claimcheck_source_last_event_timestamp_seconds",
        "claimcheck_dependency_up",
        // claimcheck itself
        "sum by (route, status) (rate(claimcheck_http_requests_total",
        "claimcheck_http_request_duration_seconds_bucket",
        "claimcheck_store_commit_duration_seconds_bucket",
        "claimcheck_store_commit_failures_total",
        "claimcheck_queue_items / claimcheck_queue_capacity",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "max by (version, revision, rustc) (claimcheck_build_info",
        // several sidecars sharing their state (`serve --cluster`)
        "claimcheck_cluster_unclaimed_sessions",
        "claimcheck_cluster_pending_sessions",
        "claimcheck_cluster_up",
        "claimcheck_cluster_call_duration_seconds_bucket",
        "claimcheck_cluster_call_failures_total",
        "claimcheck_cluster_low_watermark_seconds",
    ] {
        assert!(has(needle), "no panel queries {needle}");
    }
}

/// A single-number panel (stat, gauge, bar gauge, table) over a counter means "in this
/// window": `increase(…[$__range])`. A raw counter would show "since claimcheck started" and
/// stay red until a restart.
#[test]
fn counters_in_single_number_panels_count_the_window() {
    let d = dashboard();
    for p in data_panels(&d) {
        let kind = p["type"].as_str().unwrap();
        if !matches!(kind, "stat" | "gauge" | "bargauge" | "table") {
            continue;
        }
        for t in p["targets"].as_array().unwrap() {
            let e = t["expr"].as_str().unwrap();
            for name in metric_names(e).iter().filter(|n| n.ends_with("_total")) {
                let mut rest = e;
                while let Some(i) = rest.find(name.as_str()) {
                    let before = &rest[..i];
                    assert!(
                        before.ends_with("increase(") || before.ends_with("rate("),
                        "{}: {name} is not inside increase()/rate() in {e}",
                        p["title"]
                    );
                    rest = &rest[i + name.len()..];
                    let range = ranges(rest).into_iter().next().unwrap_or_default();
                    assert_eq!(range, "$__range", "{}: {e}", p["title"]);
                }
            }
        }
    }
}
