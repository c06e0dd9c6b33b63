//! `serve --cluster`: real sidecars correlating together on a Redis server the test starts on
//! a free loopback port. One follows the dispatch logs (the dispatcher's and the Vercel
//! drain's), the other the claims (the go daemon's and the ts worker's), so no session's
//! dispatch and claim meet in one process: summed over both, the counts on `/metrics` must be
//! what `verify` says about the same files. Then the same through a Redis outage: the server
//! SIGKILLed while lines keep coming, restarted on its append-only file; nothing lost, nothing
//! counted twice, and `/readyz` and `claimcheck_cluster_up` say what happened. Every replica
//! answers the same findings, sessions and per-org summaries, and they are verify's.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::redis_cluster::{RedisCluster, RedisServer};
use crate::serve_files::metric_sum;
use crate::support::{
    SETTLED_KEYS, SIMULATED, Server, append, claimcheck, free_port, http_get, http_get_status,
    lines_of, metric, pace, serve_cmd, simulated_with_verify_totals, wait_until,
};

/// The counts compared with verify's, each summed over the replicas' `/metrics`, with the
/// key of verify's totals it equals (`waiting`: pending + unclaimed, as one sum: a session
/// never claimed is pending in serve until the sidecar's clock passes its deadline).
const COUNTS: [(&str, &str, &str); 7] = [
    (
        "matched",
        "claimcheck_outcomes_total",
        r#"outcome="matched""#,
    ),
    ("late", "claimcheck_outcomes_total", r#"outcome="late""#),
    (
        "mismatched",
        "claimcheck_outcomes_total",
        r#"outcome="mismatched""#,
    ),
    ("duplicate_claims", "claimcheck_duplicate_claims_total", ""),
    ("orphan_claims", "claimcheck_orphan_claims_total", ""),
    ("dispatched", "claimcheck_dispatches_total", ""),
    ("waiting", "", ""),
];

/// One replica: its name (`[cluster] instance`) and the files it follows, by their index
/// in `SIMULATED`.
struct Replica {
    name: &'static str,
    files: &'static [usize],
}

/// The dispatch side (dispatcher and drain) and the claims side (go and ts).
const REPLICAS: [Replica; 2] = [
    Replica {
        name: "dispatch",
        files: &[0, 1],
    },
    Replica {
        name: "claims",
        files: &[2, 3],
    },
];

/// verify's count for `key` (`dispatched` summed over runners).
fn want(t: &Value, key: &str) -> f64 {
    let n = |k: &str| t[k].as_u64().unwrap_or(0) as f64;
    match key {
        "dispatched" => t["dispatched"].as_object().map_or(0.0, |o| {
            o.values().filter_map(Value::as_u64).sum::<u64>() as f64
        }),
        "waiting" => n("pending") + n("unclaimed"),
        k => n(k),
    }
}

/// The replicas' `/metrics` summed for `key`; `None` while one does not answer.
fn summed(ports: &[u16], key: &str) -> Option<f64> {
    let mut sum = 0.0;
    for &port in ports {
        let m = http_get(port, "/metrics")?;
        sum += match COUNTS.iter().find(|(k, _, _)| *k == key) {
            Some((_, "", _)) => {
                metric_sum(&m, "claimcheck_pending_sessions", "")
                    + metric_sum(&m, "claimcheck_unclaimed_sessions", "")
            }
            Some((_, name, filter)) => metric_sum(&m, name, filter),
            None => metric_sum(&m, key, ""),
        };
    }
    Some(sum)
}

/// Where replica `port`'s `/api/summary` differs from verify's totals `t` (empty: nowhere);
/// `None` while it does not answer 200.
fn summary_differs(port: u16, t: &Value) -> Option<Vec<String>> {
    let (200, body) = http_get_status(port, "/api/summary")? else {
        return None;
    };
    let v: Value = serde_json::from_str(&body).ok()?;
    let waiting =
        |v: &Value| v["pending"].as_u64().unwrap_or(0) + v["unclaimed"].as_u64().unwrap_or(0);
    Some(
        // `pending + unclaimed` compared as one sum.
        SETTLED_KEYS
            .iter()
            .chain(&["waiting"])
            .filter(|&&k| match k {
                "waiting" => waiting(&v) != waiting(t),
                k => v[k] != t[k],
            })
            .map(|k| format!("{k}: serve {} vs verify {}", v[k], t[k]))
            .collect(),
    )
}

/// Starts replica `r` on `port`, following its files in `dir/w` with its own SQLite store,
/// sharing the state on `redis` (seed nodes or one server), configured by `dir/serve.toml`.
fn start(dir: &Path, r: &Replica, port: u16, redis: &[String]) -> Server {
    start_with(dir, r, port, redis, "serve.toml")
}

/// [`start`], configured by `dir/config`.
fn start_with(dir: &Path, r: &Replica, port: u16, redis: &[String], config: &str) -> Server {
    let store = dir.join(format!("{}.db", r.name));
    let mut serve = serve_cmd(port, &dir.join(config), &store);
    for &i in r.files {
        let (f, rt) = SIMULATED[i];
        let p = dir.join("w").join(f).display().to_string();
        serve
            .arg("--file")
            .arg(rt.map_or(p.clone(), |rt| format!("{rt}={p}")));
    }
    for url in redis {
        serve.arg("--cluster").arg(url);
    }
    serve.env("CLAIMCHECK_CLUSTER_INSTANCE", r.name);
    Server(serve.spawn().unwrap())
}

/// `[cluster] instances`, naming `replicas`: nothing settles before each has started (one
/// slow to start would find claims judged without its evidence).
fn instances(replicas: &[Replica]) -> String {
    let names: Vec<String> = replicas.iter().map(|r| format!("{:?}", r.name)).collect();
    format!("instances = [{}]\n", names.join(", "))
}

/// Orphans are judged on settled evidence; the grace plus the maximum hold, on the sidecar's
/// clock, outlasts reading the files (and the outage). A source goes idle after
/// `idle_after` without news: through an outage, longer than the outage (a loaded machine
/// takes its time to see it), or the sidecar that reaches Redis first judges on the other's
/// sources as idle (README, "Running several sidecars": the known limit).
fn write_config(dir: &Path, idle_after: &str, replicas: &[Replica]) {
    std::fs::write(
        dir.join("serve.toml"),
        format!(
            "[serve]\norphan_grace = \"30s\"\nsource_idle_after = \"{idle_after}\"\n\
             [cluster]\nkey_prefix = \"cc-serve-test\"\n{}",
            instances(replicas)
        ),
    )
    .unwrap();
}

/// Waits until the replicas' summed counts equal verify's and every line was read; then
/// asserts each, so a failure names the count that differs.
fn assert_counts_equal_verify(ports: &[u16], t: &Value, lines: u64, within: Duration, ctx: &str) {
    let all = || {
        let mut got = vec![(
            "lines".to_owned(),
            summed(ports, "claimcheck_ingest_lines_total"),
        )];
        got.extend(
            COUNTS
                .iter()
                .map(|(k, _, _)| ((*k).to_owned(), summed(ports, k))),
        );
        got
    };
    let expected = |k: &str| match k {
        "lines" => lines as f64,
        k => want(t, k),
    };
    let mut seen = Vec::new();
    let mut summaries = Vec::new();
    wait_until(Instant::now() + within, || {
        seen = all();
        summaries = ports.iter().map(|&p| summary_differs(p, t)).collect();
        seen.iter().all(|(k, v)| *v == Some(expected(k)))
            && summaries
                .iter()
                .all(|d| d.as_ref().is_some_and(Vec::is_empty))
    });
    for (k, v) in &seen {
        assert_eq!(
            *v,
            Some(expected(k)),
            "{ctx}: {k}: the replicas' summed /metrics vs verify {t}\n{seen:?}\n/api/summary: {summaries:?}"
        );
    }
    assert_summaries_equal_verify(ports, t, Duration::ZERO, ctx);
}

/// Waits until every replica's `/api/summary` equals verify's totals `t`, then asserts it.
fn assert_summaries_equal_verify(ports: &[u16], t: &Value, within: Duration, ctx: &str) {
    let mut summaries: Vec<Option<Vec<String>>> = Vec::new();
    wait_until(Instant::now() + within, || {
        summaries = ports.iter().map(|&p| summary_differs(p, t)).collect();
        summaries
            .iter()
            .all(|d| d.as_ref().is_some_and(Vec::is_empty))
    });
    for (port, d) in ports.iter().zip(&summaries) {
        assert_eq!(
            d.as_deref(),
            Some(&[][..]),
            "{ctx}: replica on {port}: /api/summary vs verify"
        );
    }
}

/// verify's report on the files in `dir/w`, every finding listed, `extra` added.
fn verify_report(dir: &Path, extra: &[&str]) -> Value {
    let mut args = crate::simulate::VERIFY_WORKLOAD.to_vec();
    args.extend(["--max-findings", "100000000"]);
    args.extend(extra);
    let out = crate::support::run_in(dir, &args, None);
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The sessions of each settled finding kind, as `verify` lists them (`report`) or as a
/// replica's `/api/findings` does (`found`): late, mismatched, claimed twice (either kind of
/// duplicate), and the number of orphan claims.
type Faults = [(String, Vec<String>); 3];

fn faults_verify(report: &Value) -> (Faults, u64) {
    let with = |pred: &dyn Fn(&str) -> bool| -> Vec<String> {
        let mut s: Vec<String> = report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| {
                f["kinds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|k| pred(k.as_str().unwrap()))
            })
            .map(|f| f["session_id"].as_str().unwrap().to_owned())
            .collect();
        s.sort();
        s.dedup();
        s
    };
    (
        [
            ("late".to_owned(), with(&|k| k == "late")),
            ("mismatched".to_owned(), with(&|k| k == "mismatched")),
            (
                "duplicate".to_owned(),
                with(&|k| k.starts_with("duplicate_claim")),
            ),
        ],
        report["totals"]["orphan_claims"].as_u64().unwrap(),
    )
}

fn faults_found(found: &[Value]) -> (Faults, u64) {
    let with = |pred: &dyn Fn(&str) -> bool| -> Vec<String> {
        let mut s: Vec<String> = found
            .iter()
            .filter(|f| pred(f["kind"].as_str().unwrap_or("")))
            .map(|f| f["session_id"].as_str().unwrap_or("").to_owned())
            .collect();
        s.sort();
        s.dedup();
        s
    };
    let orphans = found.iter().filter(|f| f["kind"] == "orphan_claim").count();
    (
        [
            ("late".to_owned(), with(&|k| k == "late")),
            ("mismatched".to_owned(), with(&|k| k == "mismatched")),
            (
                "duplicate".to_owned(),
                with(&|k| k.starts_with("duplicate_claim")),
            ),
        ],
        orphans as u64,
    )
}

/// What every replica must answer alike once the evidence has settled: its findings, every
/// one (sorted: findings one judgement found in the same millisecond may be listed in
/// another order on another replica), and `/api/summary?org=` for `orgs`.
fn views(port: u16, orgs: &[String]) -> Option<(Vec<Value>, Vec<Value>)> {
    let mut found = crate::findings::every_finding(port, "", 1000)?;
    // Each replica lists them oldest first.
    let at = |f: &Value| f["at"].as_str().unwrap_or("").to_owned();
    if found.windows(2).any(|w| at(&w[0]) > at(&w[1])) {
        return None;
    }
    found.sort_by_key(Value::to_string);
    let mut summaries = Vec::new();
    for org in orgs {
        let (200, body) = http_get_status(port, &format!("/api/summary?org={org}"))? else {
            return None;
        };
        summaries.push(serde_json::from_str(&body).ok()?);
    }
    Some((found, summaries))
}

/// Waits until every replica on `ports` lists the same findings and answers the same
/// `/api/summary?org=` for a few orgs, then asserts that those are what `verify` says on the
/// same files (in `dir/w`): the sessions of each settled finding kind, the orphan claims, and
/// each org's totals as `verify --org` counts them.
fn assert_views_equal_verify(
    dir: &Path,
    ports: &[u16],
    restarted: bool,
    within: Duration,
    ctx: &str,
) {
    let report = verify_report(dir, &[]);
    let (faults, orphans) = faults_verify(&report);
    // The first few orgs verify finds something in.
    let mut orgs: Vec<String> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["org"].as_str().map(str::to_owned))
        .filter(|o| !o.is_empty())
        .collect();
    orgs.sort();
    orgs.dedup();
    orgs.truncate(3);
    assert!(!orgs.is_empty(), "{ctx}: verify found nothing: {report}");
    let mut seen: Vec<Option<(Vec<Value>, Vec<Value>)>> = Vec::new();
    let settled = wait_until(Instant::now() + within, || {
        seen = ports.iter().map(|&p| views(p, &orgs)).collect();
        seen.iter().all(|v| {
            v.as_ref()
                .is_some_and(|(found, _)| faults_found(found) == (faults.clone(), orphans))
        }) && seen.windows(2).all(|w| w[0] == w[1])
    });
    for (port, v) in ports.iter().zip(&seen) {
        let (found, _) = v
            .as_ref()
            .unwrap_or_else(|| panic!("{ctx}: {port} did not answer"));
        assert_eq!(
            faults_found(found),
            (faults.clone(), orphans),
            "{ctx}: replica on {port}: /api/findings vs verify's findings"
        );
    }
    assert!(settled, "{ctx}: the replicas answer differently: {seen:?}");
    assert_sessions_equal_verify(&report, ports, restarted, ctx);
    let (_, summaries) = seen[0].as_ref().unwrap();
    let waiting =
        |v: &Value| v["pending"].as_u64().unwrap_or(0) + v["unclaimed"].as_u64().unwrap_or(0);
    for (org, got) in orgs.iter().zip(summaries) {
        let want = &verify_report(dir, &["--org", org])["totals"];
        assert!(want["dispatched"] != Value::Null, "{want}");
        for k in SETTLED_KEYS {
            assert_eq!(
                got[k], want[k],
                "{ctx}: {k} of org {org}: /api/summary?org= {got} vs verify --org {want}"
            );
        }
        assert_eq!(
            waiting(got),
            waiting(want),
            "{ctx}: org {org}: {got} vs {want}"
        );
    }
}

/// A few sessions of each settled finding kind that `verify` lists in `report`: every
/// replica's `/api/sessions/{id}` answers the same, and what verify says of the session — its
/// outcome, org, runner, dispatch time, latency and every event, each citing the same line of
/// the same file (verify names the files relative to the test's directory, the sidecars by
/// their full paths). With `restarted`, a line is only checked to be of the same file: a
/// sidecar restarted numbers the lines it reads again on from the last event line its store
/// holds, not from its checkpoint, so lines read after non-event lines it had checkpointed are
/// cited a few lines early (as on a single `serve` restarted).
fn assert_sessions_equal_verify(report: &Value, ports: &[u16], restarted: bool, ctx: &str) {
    let findings = report["findings"].as_array().unwrap();
    for kind in ["late", "mismatched", "duplicate_claim"] {
        let picked = findings
            .iter()
            .filter(|f| f["kinds"].as_array().unwrap().iter().any(|k| k == kind))
            .take(2);
        for want in picked {
            let id = want["session_id"].as_str().unwrap();
            let views: Vec<Value> = ports
                .iter()
                .map(|&p| {
                    let (status, body) =
                        http_get_status(p, &format!("/api/sessions/{id}")).unwrap();
                    assert_eq!(status, 200, "{ctx}: {id} on {p}: {body}");
                    serde_json::from_str(&body).unwrap()
                })
                .collect();
            for v in &views[1..] {
                assert_eq!(v, &views[0], "{ctx}: {id}: every replica answers the same");
            }
            let got = &views[0];
            for k in [
                "outcome",
                "org",
                "runner",
                "dispatched_at",
                "latency_seconds",
            ] {
                assert_eq!(
                    got[k], want[k],
                    "{ctx}: {id}: {k}: serve {got} vs verify {want}"
                );
            }
            let (got_events, want_events) = (
                got["events"].as_array().unwrap(),
                want["events"].as_array().unwrap(),
            );
            assert_eq!(
                got_events.len(),
                want_events.len(),
                "{ctx}: {id}: {got} vs {want}"
            );
            for (g, w) in got_events.iter().zip(want_events) {
                for k in ["event", "runner", "at", "worker", "detail"] {
                    assert_eq!(g[k], w[k], "{ctx}: {id}: {k}: serve {g} vs verify {w}");
                }
                let (g_src, w_src) = (g["source"].as_str().unwrap(), w["source"].as_str().unwrap());
                let file = |s: &str| s.rsplit_once(':').map(|(f, _)| f.to_owned());
                let same = if restarted {
                    file(g_src)
                        .zip(file(w_src))
                        .is_some_and(|(g, w)| g.ends_with(&format!("/{w}")))
                } else {
                    g_src.ends_with(&format!("/{w_src}"))
                };
                assert!(same, "{ctx}: {id}: serve cites {g_src}, verify {w_src}");
            }
        }
    }
}

/// Two sidecars, one per side of the platform, on one standalone Redis: summed, they count
/// what verify counts on the same files; neither counts anything on its own.
#[test]
fn two_sidecars_on_one_redis_count_what_verify_counts() {
    let dir = tempfile::tempdir().unwrap();
    let t = simulated_with_verify_totals(dir.path(), 11, 3000);
    assert!(want(&t, "mismatched") > 0.0 && want(&t, "duplicate_claims") > 0.0);
    let lines: u64 = SIMULATED
        .iter()
        .map(|(f, _)| lines_of(&dir.path().join("w").join(f)))
        .sum();
    write_config(dir.path(), "5s", &REPLICAS);
    let redis = RedisServer::start();
    let ports = [free_port(), free_port()];
    let _servers: Vec<Server> = REPLICAS
        .iter()
        .zip(ports)
        .map(|(r, port)| start(dir.path(), r, port, &[redis.url()]))
        .collect();
    assert_counts_equal_verify(&ports, &t, lines, Duration::from_secs(90), "two sidecars");
    assert_views_equal_verify(
        dir.path(),
        &ports,
        false,
        Duration::from_secs(30),
        "two sidecars",
    );
    // Each side alone sees half the evidence: the dispatch side judges sessions whose claims
    // it never read, so the counts are the shared state's, not either replica's.
    for port in ports {
        let m = http_get(port, "/metrics").unwrap();
        assert_eq!(
            metric(&m, "claimcheck_cluster_up"),
            Some(1.0),
            "{port}: {m}"
        );
        let (status, body) = http_get_status(port, "/readyz").unwrap();
        assert_eq!(status, 200, "{body}");
        let r: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(r["cluster"]["up"], true, "{body}");
    }
}

/// The Redis server SIGKILLed while lines keep coming: both replicas say the cluster is down
/// (`/readyz` 503, `claimcheck_cluster_up` 0), read nothing more into the counts, and once it
/// is back on its append-only file they catch up to verify's counts exactly: nothing lost,
/// nothing counted twice. The outage lasts longer than `source_idle_after`: the replica
/// back first must not take the other's sources for idle (they were silent only because
/// nobody could reach Redis) and judge its claims orphans before their dispatches come.
#[test]
fn a_redis_outage_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let t = simulated_with_verify_totals(dir.path(), 13, 3000);
    // The complete files are kept aside; the replicas' files get their first halves now and
    // the rest while Redis is down.
    let w = dir.path().join("w");
    let full = dir.path().join("full");
    std::fs::rename(&w, &full).unwrap();
    std::fs::create_dir(&w).unwrap();
    let mut rest = Vec::new();
    let (mut lines, mut first) = (0u64, 0u64);
    for (f, _) in SIMULATED {
        let text = std::fs::read_to_string(full.join(f)).unwrap();
        let all: Vec<&str> = text.split_inclusive('\n').collect();
        let half = all.len() / 2;
        append(&w.join(f), &all[..half].concat());
        rest.push((f, all[half..].concat()));
        lines += all.len() as u64;
        first += half as u64;
    }
    write_config(dir.path(), "5s", &REPLICAS);
    let mut redis = RedisServer::start();
    let ports = [free_port(), free_port()];
    let _servers: Vec<Server> = REPLICAS
        .iter()
        .zip(ports)
        .map(|(r, port)| start(dir.path(), r, port, &[redis.url()]))
        .collect();
    let read = |ports: &[u16]| summed(ports, "claimcheck_ingest_lines_total");
    assert!(
        wait_until(Instant::now() + Duration::from_secs(60), || read(&ports)
            == Some(first as f64)),
        "the first halves were not read: {:?} of {first}",
        read(&ports)
    );

    redis.kill();
    let killed = Instant::now();
    for (f, text) in &rest {
        append(&w.join(f), text);
    }
    let down = |port: u16| {
        http_get(port, "/metrics").is_some_and(|m| metric(&m, "claimcheck_cluster_up") == Some(0.0))
            && http_get_status(port, "/readyz").is_some_and(|(status, body)| {
                status == 503 && body.contains(r#""cluster":{"up":false"#)
            })
    };
    assert!(
        wait_until(Instant::now() + Duration::from_secs(60), || ports
            .iter()
            .all(|&p| down(p))),
        "the replicas did not say the cluster is down: {:?}",
        ports.map(|p| http_get_status(p, "/readyz"))
    );
    // Held back, not dropped: what was read while Redis was away is not counted yet.
    assert_eq!(read(&ports), Some(first as f64));
    // The fault under test is an outage longer than `source_idle_after` (5 s): it is held
    // that long, which is the scenario's length, not a wait for something to happen.
    if let Some(left) = Duration::from_secs(12).checked_sub(killed.elapsed()) {
        pace(left);
    }
    assert_eq!(read(&ports), Some(first as f64));

    redis.restart();
    assert_counts_equal_verify(
        &ports,
        &t,
        lines,
        Duration::from_secs(90),
        "after the outage",
    );
    for port in ports {
        let m = http_get(port, "/metrics").unwrap();
        assert_eq!(metric(&m, "claimcheck_cluster_up"), Some(1.0));
        assert!(
            metric_sum(&m, "claimcheck_cluster_call_failures_total", "") > 0.0,
            "{port}: the outage was met by a call: {m}"
        );
        let (status, body) = http_get_status(port, "/readyz").unwrap();
        assert_eq!(status, 200, "{body}");
    }
}

/// The issue's topology: one sidecar beside the dispatcher (its log and the Vercel drain's),
/// one beside the go daemons, one beside the ts workers.
const TOPOLOGY: [Replica; 3] = [
    Replica {
        name: "dispatch",
        files: &[0, 1],
    },
    Replica {
        name: "go",
        files: &[2],
    },
    Replica {
        name: "ts",
        files: &[3],
    },
];

/// Simulates `sessions` sessions of `seed` into `dir/full` and returns verify's totals on
/// them and each file cut into `parts` parts by line count, to be appended to `dir/w` (where
/// the files are created empty) one part at a time.
fn in_parts(dir: &Path, seed: u64, sessions: u64, parts: usize) -> (Value, Vec<Vec<String>>) {
    let t = simulated_with_verify_totals(dir, seed, sessions);
    let (w, full) = (dir.join("w"), dir.join("full"));
    std::fs::rename(&w, &full).unwrap();
    std::fs::create_dir(&w).unwrap();
    let mut cut = vec![Vec::new(); parts];
    for (f, _) in SIMULATED {
        append(&w.join(f), "");
        let text = std::fs::read_to_string(full.join(f)).unwrap();
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        let each = lines.len().div_ceil(parts);
        for (p, part) in cut.iter_mut().enumerate() {
            let from = (p * each).min(lines.len());
            let to = ((p + 1) * each).min(lines.len());
            part.push(lines[from..to].concat());
        }
    }
    (t, cut)
}

/// Appends part `p` to the followed files; returns its lines.
fn append_part(dir: &Path, parts: &[Vec<String>], p: usize) -> u64 {
    let mut n = 0;
    for ((f, _), text) in SIMULATED.iter().zip(&parts[p]) {
        append(&dir.join("w").join(f), text);
        n += text.matches('\n').count() as u64;
    }
    n
}

/// Waits until the replicas on `ports` have read `lines` lines in all.
fn read_all(ports: &[u16], lines: u64, ctx: &str) {
    let read = || summed(ports, "claimcheck_ingest_lines_total");
    assert!(
        wait_until(Instant::now() + Duration::from_secs(60), || read()
            == Some(lines as f64)),
        "{ctx}: {:?} lines read of {lines}",
        read()
    );
}

/// A batch is acknowledged once a Redis replica has it (`wait_replicas = 1`), so a master
/// SIGKILLed after its replica acknowledged loses nothing; leases are short, so a dead
/// replica's buckets are swept by another within seconds. A source goes idle only after 15 s
/// without news, longer than the outages here: a sidecar that could not reach Redis for
/// longer than `source_idle_after` has its sources taken for idle by the others until it
/// delivers again (README, "Running several sidecars").
fn topology_config(dir: &Path) {
    std::fs::write(
        dir.join("serve.toml"),
        format!(
            "[serve]\norphan_grace = \"30s\"\nsource_idle_after = \"15s\"\n\
             [cluster]\nkey_prefix = \"cc-topology\"\nwait_replicas = 1\nlease = \"3s\"\n\
             connect_timeout = \"1s\"\nresponse_timeout = \"1s\"\nwait_timeout = \"1s\"\n{}",
            instances(&TOPOLOGY)
        ),
    )
    .unwrap();
}

/// The topology on a 3-master + 3-replica Redis Cluster, fed simulate's workload in three
/// parts: the first as it is; the second while a master is SIGKILLed and its replica
/// promoted (the killed node then rejoins as a replica); the third while every node is
/// stopped (the cluster unreachable: every sidecar says so on `/readyz` and
/// `claimcheck_cluster_up`, and counts nothing of the part meanwhile). Then the summed
/// `/metrics` and every replica's `/api/summary` equal verify: nothing lost, nothing doubled.
#[test]
fn the_topology_through_a_master_failover_and_an_unreachable_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let (t, parts) = in_parts(dir.path(), 17, 3000, 3);
    topology_config(dir.path());
    let mut cluster = RedisCluster::start(3, 1);
    let ports = [free_port(), free_port(), free_port()];
    let _servers: Vec<Server> = TOPOLOGY
        .iter()
        .zip(ports)
        .map(|(r, port)| start(dir.path(), r, port, &cluster.urls()))
        .collect();
    let mut lines = append_part(dir.path(), &parts, 0);
    read_all(&ports, lines, "part 1");

    // A master SIGKILLed: its replica is promoted (2 s node timeout), and the killed node,
    // restarted empty, rejoins as the new master's replica (so WAIT finds a replica again).
    let masters = cluster.masters();
    let victim = masters[0];
    cluster.kill(victim);
    lines += append_part(dir.path(), &parts, 1);
    assert!(
        wait_until(Instant::now() + Duration::from_secs(30), || {
            let m = cluster.masters();
            m.len() == 3 && !m.contains(&victim)
        }),
        "no replica was promoted: {:?}",
        cluster.masters()
    );
    cluster.restart(victim);
    assert!(
        wait_until(Instant::now() + Duration::from_secs(30), || cluster
            .whole(3)),
        "the killed master did not rejoin as a replica"
    );
    read_all(&ports, lines, "part 2, through the failover");

    // Every node stopped: the cluster unreachable while the third part is written.
    cluster.freeze(true);
    let third = append_part(dir.path(), &parts, 2);
    let down = |port: u16| {
        http_get(port, "/metrics").is_some_and(|m| metric(&m, "claimcheck_cluster_up") == Some(0.0))
            && http_get_status(port, "/readyz").is_some_and(|(status, _)| status == 503)
    };
    let said = wait_until(Instant::now() + Duration::from_secs(30), || {
        ports.iter().all(|&p| down(p))
    });
    let held = summed(&ports, "claimcheck_ingest_lines_total");
    cluster.freeze(false);
    assert!(said, "the sidecars did not say the cluster is unreachable");
    assert_eq!(
        held,
        Some(lines as f64),
        "nothing counted while unreachable"
    );
    lines += third;
    assert_counts_equal_verify(
        &ports,
        &t,
        lines,
        Duration::from_secs(90),
        "after the failover and the unreachable cluster",
    );
    assert_views_equal_verify(
        dir.path(),
        &ports,
        false,
        Duration::from_secs(30),
        "after the failover and the unreachable cluster",
    );
}

/// The topology with its sidecars SIGKILLed and restarted, one after another, each while it
/// reads a part of the workload: a killed sidecar re-reads what it had not checkpointed and
/// applies it again, which the shared state takes as re-deliveries. Every replica's
/// `/api/summary` (the shared totals, counted with each judgement) equals verify: nothing
/// lost, nothing doubled. (A killed process's own counters start again from zero, as any
/// Prometheus counter does after a restart: `sum(increase(...))` across replicas is the
/// query, not the raw sum.)
#[test]
fn the_topology_with_sidecars_killed_and_restarted() {
    const KILLS: usize = 4;
    let dir = tempfile::tempdir().unwrap();
    let (t, parts) = in_parts(dir.path(), 19, 3000, KILLS);
    topology_config(dir.path());
    let cluster = RedisCluster::start(3, 1);
    let mut ports = [free_port(), free_port(), free_port()];
    let mut servers: Vec<Option<Server>> = TOPOLOGY
        .iter()
        .zip(ports)
        .map(|(r, port)| Some(start(dir.path(), r, port, &cluster.urls())))
        .collect();
    let mut trail = Vec::new();
    for k in 0..KILLS {
        let i = k % TOPOLOGY.len();
        append_part(dir.path(), &parts, k);
        // Killed as soon as it has taken a batch of this part (mid-read, most often).
        let before = summed(&ports[i..=i], "claimcheck_ingest_lines_total").unwrap_or(0.0);
        wait_until(Instant::now() + Duration::from_secs(20), || {
            summed(&ports[i..=i], "claimcheck_ingest_lines_total").is_some_and(|n| n > before)
        });
        let read = summed(&ports[i..=i], "claimcheck_ingest_lines_total");
        servers[i] = None; // SIGKILL
        trail.push(format!(
            "kill {k}: {} after {read:?} lines",
            TOPOLOGY[i].name
        ));
        ports[i] = free_port();
        servers[i] = Some(start(dir.path(), &TOPOLOGY[i], ports[i], &cluster.urls()));
    }
    let ctx = format!("after {KILLS} kills: {}", trail.join("; "));
    assert_summaries_equal_verify(&ports, &t, Duration::from_secs(90), &ctx);
    // A restarted sidecar reads the feed on from where its store says it stopped.
    assert_views_equal_verify(dir.path(), &ports, true, Duration::from_secs(30), &ctx);
}

/// All four files in one sidecar.
const ONE: [Replica; 1] = [Replica {
    name: "all",
    files: &[0, 1, 2, 3],
}];

/// The throughput figure of the README: simulate's workload read whole by 1, 2 and 3 sidecars
/// (one for all four files; the dispatch side and the claims side; the topology) on a
/// 3-master Redis Cluster of its own each time: events per second until every line is applied,
/// and the Redis commands per event (script calls, and every command including those the
/// scripts ran, from the nodes' `INFO commandstats`). Each run must also end on verify's
/// totals. The figures go to stderr (`--no-capture`); the bound is loose (a debug build on a
/// shared machine): fewer than 12 script calls per event.
#[test]
#[allow(clippy::print_stderr)]
fn throughput_with_one_two_and_three_sidecars() {
    let dir = tempfile::tempdir().unwrap();
    let t = simulated_with_verify_totals(dir.path(), 23, 3000);
    let lines: u64 = SIMULATED
        .iter()
        .map(|(f, _)| lines_of(&dir.path().join("w").join(f)))
        .sum();
    let runs: [&[Replica]; 3] = [&ONE, &REPLICAS, &TOPOLOGY];
    for replicas in runs {
        let n = replicas.len();
        let run = dir.path().join(format!("n{n}"));
        std::fs::create_dir_all(run.join("w")).unwrap();
        for (f, _) in SIMULATED {
            std::fs::copy(dir.path().join("w").join(f), run.join("w").join(f)).unwrap();
        }
        std::fs::write(
            run.join("serve.toml"),
            format!(
                "[serve]\norphan_grace = \"30s\"\n[cluster]\nkey_prefix = \"cc-throughput\"\n{}",
                instances(replicas)
            ),
        )
        .unwrap();
        let cluster = RedisCluster::start(3, 0);
        let (scripts0, all0) = crate::state_shared::commands(&cluster);
        let ports: Vec<u16> = replicas.iter().map(|_| free_port()).collect();
        let started = Instant::now();
        let _servers: Vec<Server> = replicas
            .iter()
            .zip(&ports)
            .map(|(r, &port)| start(&run, r, port, &cluster.urls()))
            .collect();
        read_all(&ports, lines, &format!("{n} sidecars"));
        let secs = started.elapsed().as_secs_f64();
        let (scripts1, all1) = crate::state_shared::commands(&cluster);
        let events: f64 = ports
            .iter()
            .filter_map(|&p| http_get(p, "/metrics"))
            .map(|m| metric_sum(&m, "claimcheck_ingest_lines_total", r#"result="event""#))
            .sum();
        let per = |x: u64, y: u64| (y - x) as f64 / events;
        eprintln!(
            "throughput: {n} sidecar(s): {events} events ({lines} lines) applied in {secs:.1} s: \
             {:.0} events/s; {:.2} script calls and {:.1} Redis commands per event",
            events / secs,
            per(scripts0, scripts1),
            per(all0, all1)
        );
        assert!(per(scripts0, scripts1) < 12.0);
        assert_summaries_equal_verify(
            &ports,
            &t,
            Duration::from_secs(90),
            &format!("{n} sidecars"),
        );
    }
}

/// One replica per log: the dispatcher's, the go daemon's, the ts worker's.
const PER_LOG: [Replica; 3] = [
    Replica {
        name: "dispatch",
        files: &[0],
    },
    Replica {
        name: "go",
        files: &[2],
    },
    Replica {
        name: "ts",
        files: &[3],
    },
];

/// One replica per log (`PER_LOG`) on a 3-master Redis Cluster it starts, configured by
/// `common` and `[cluster]` under `prefix`; the dispatch side alone watches the platform's
/// Postgres at `db` (its organizations, and `platform` added to `[platform.postgres]`).
fn start_per_log(
    dir: &Path,
    common: &str,
    platform: &str,
    prefix: &str,
    db: &str,
) -> (RedisCluster, [u16; 3], Vec<Server>) {
    let cluster = format!(
        "[cluster]\nkey_prefix = \"{prefix}\"\n{}",
        instances(&PER_LOG)
    );
    std::fs::write(dir.join("serve.toml"), format!("{common}{cluster}")).unwrap();
    std::fs::write(
        dir.join("platform.toml"),
        format!(
            "{common}[platform.postgres]\nurl = \"{db}\"\n\
             [platform.postgres.organizations]\npoll_interval = \"200ms\"\n{platform}{cluster}"
        ),
    )
    .unwrap();
    let redis = RedisCluster::start(3, 0);
    let ports = [free_port(), free_port(), free_port()];
    let servers = PER_LOG
        .iter()
        .zip(ports)
        .map(|(r, port)| {
            let config = if r.name == "dispatch" {
                "platform.toml"
            } else {
                "serve.toml"
            };
            start_with(dir, r, port, &redis.urls(), config)
        })
        .collect();
    (redis, ports, servers)
}

/// The platform's findings across replicas: only the dispatch side watches the platform's
/// Postgres, and every replica lists what it found — a malformed flag, a flip, flag drift, a
/// session missing from the logs and then its resolution — with the same fields (found time
/// on the finding replica's clock), through the shared state's feed.
#[test]
fn every_sidecar_lists_the_platform_findings_of_the_one_that_watches_it() {
    use crate::serve_platform::{THREE_ORGS, json_when, platform_db};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (db, mut conn) = platform_db(&rt, THREE_ORGS);
    let sql = |conn: &mut sqlx::PgConnection, q: &str| {
        rt.block_on(sqlx::raw_sql(q).execute(conn)).unwrap();
    };
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path().join("w");
    std::fs::create_dir(&w).unwrap();
    let dispatch = w.join(SIMULATED[0].0);
    for i in [0, 2, 3] {
        append(&w.join(SIMULATED[i].0), "");
    }
    let common = "[serve]\nclaim_timeout = [\"120s\"]\nsource_idle_after = \"5s\"\n\
                  [platform]\ndrift_grace = \"1s\"\n";
    let sessions = "[platform.postgres.sessions]\npoll_interval = \"200ms\"\ngrace = \"1s\"\n";
    let (_redis, ports, _servers) =
        start_per_log(dir.path(), common, sessions, "cc-platform", &db.url);
    let dispatch_line = |id: &str, org: &str, runner: &str| {
        let at = claimcheck::clock::Clock::system().now().to_rfc3339();
        let line = format!(
            r#"{{"event":"dispatch","sessionId":"{id}","organizationId":"{org}","resolvedProfile":{{"runner":"{runner}"}},"time":"{at}"}}"#
        );
        append(&dispatch, &format!("{line}\n"));
    };
    // Every replica lists the findings of `kind` the platform replica lists, field for field,
    // once that list holds what `ready` wants.
    let same_everywhere = |kind: &str, ready: &dyn Fn(&[Value]) -> bool| -> Vec<Value> {
        let path = format!("/api/findings?kind={kind}");
        let mut lists = Vec::new();
        for port in ports {
            let page = json_when(port, &path, kind, |p| {
                p["findings"].as_array().is_some_and(|a| ready(a))
            });
            lists.push(page["findings"].clone());
        }
        for (list, port) in lists.iter().zip(ports) {
            assert_eq!(*list, lists[0], "{kind} on the replica on {port}");
        }
        lists[0].as_array().unwrap().clone()
    };

    // The baseline snapshot: org_c's "Go" is malformed.
    let malformed = same_everywhere("malformed_flag", &|a| a.len() == 1);
    assert_eq!(malformed[0]["org"], "org_c", "{malformed:?}");
    assert!(
        malformed[0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("Go"))
    );

    // A flip of org_a, and a ts dispatch of org_b, whose flag has said go all along: drift.
    sql(
        &mut conn,
        "UPDATE organizations SET features = '{\"runner_default\":\"go\"}', \
         updated_at = now() WHERE id = 'org_a'",
    );
    let flips = same_everywhere("flip", &|a| a.len() == 1);
    assert_eq!(flips[0]["org"], "org_a", "{flips:?}");
    dispatch_line("drifted", "org_b", "ts");
    let drift = same_everywhere("flag_drift", &|a| a.len() == 1);
    assert_eq!(
        (
            &drift[0]["session_id"],
            &drift[0]["org"],
            &drift[0]["runner"]
        ),
        (
            &Value::from("drifted"),
            &Value::from("org_b"),
            &Value::from("ts")
        ),
        "{drift:?}"
    );

    // A session created in the database and missing from the logs after the grace; then its
    // dispatch line arrives after all: resolved, on every replica.
    sql(
        &mut conn,
        "INSERT INTO agent_sessions VALUES ('lost-1', 'queued', now(), 'org_a')",
    );
    let missing = same_everywhere("missing_from_logs", &|a| a.len() == 1);
    assert_eq!(missing[0]["session_id"], "lost-1", "{missing:?}");
    assert!(missing[0]["resolved_at"].is_null(), "{missing:?}");
    dispatch_line("lost-1", "org_a", "go");
    let resolved = same_everywhere("missing_from_logs", &|a| {
        a.len() == 1 && a[0]["resolved_at"].is_string()
    });
    assert_eq!(resolved[0]["at"], missing[0]["at"], "found time unchanged");
}

/// The post-flip report across replicas: one replica per log on a 3-master Redis Cluster,
/// only the dispatch side watching the platform's Postgres. An org flipped in the database:
/// every replica says its verification is pending (the flip is shared), then every replica
/// answers the same report, the one `claimcheck report` gives on all three files — though
/// each replica holds a third of the evidence: the dispatches, or the go claims and
/// heartbeats, or the ts ones — and the same verification; the verdict is counted once
/// across the replicas.
#[test]
fn every_sidecar_answers_the_post_flip_report_of_all_the_files() {
    use crate::serve_platform::{json_when, platform_db};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (db, mut conn) = platform_db(&rt, "('org_a', 'a', '{}', now())");
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path().join("w");
    std::fs::create_dir(&w).unwrap();
    let file = |i: usize| w.join(SIMULATED[i].0);
    let (dispatch, go, ts) = (file(0), file(2), file(3));
    for f in [&dispatch, &go, &ts] {
        append(f, "");
    }
    let common = "[serve]\nclaim_timeout = [\"1s\"]\nreport_window = \"5s\"\n\
                  source_idle_after = \"5s\"\n[platform]\ndrift_grace = \"1s\"\n";
    let (_redis, ports, _servers) = start_per_log(dir.path(), common, "", "cc-flip", &db.url);

    let line = |f: &Path, l: String| append(f, &format!("{l}\n"));
    let stamp = |ms: i64| claimcheck::event::Timestamp(ms).to_rfc3339();
    let now = || claimcheck::clock::Clock::system().now().millis();
    let claim = |id: &str, runner: &str, at: i64| {
        let (f, worker) = if runner == "go" {
            (&go, "g1")
        } else {
            (&ts, "t1")
        };
        line(
            f,
            format!(
                r#"{{"event":"claimed","sessionId":"{id}","workerId":"{worker}","time":"{}"}}"#,
                stamp(at)
            ),
        );
    };
    let session = |id: &str, org: &str, runner: &str, at: i64| {
        line(
            &dispatch,
            format!(
                r#"{{"event":"dispatch","sessionId":"{id}","organizationId":"{org}","resolvedProfile":{{"runner":"{runner}"}},"time":"{}"}}"#,
                stamp(at)
            ),
        );
        claim(id, runner, at + 200);
    };
    let heartbeats = |at: i64| {
        line(
            &go,
            format!(
                r#"{{"event":"heartbeat","workerId":"g1","version":"0.5.2","time":"{}"}}"#,
                stamp(at)
            ),
        );
        line(
            &ts,
            format!(
                r#"{{"event":"heartbeat","workerId":"t1","version":"1.0.0","time":"{}"}}"#,
                stamp(at)
            ),
        );
    };
    json_when(ports[0], "/api/orgs", "baseline", |o| {
        o.as_array()
            .is_some_and(|a| a.iter().any(|x| x["org"] == "org_a"))
    });
    // The baseline: ts sessions, and one of another org.
    let start = now();
    heartbeats(start - 4500);
    for i in 0..5 {
        session(
            &format!("before-{i}"),
            "org_a",
            "ts",
            start - 4000 + i * 800,
        );
    }
    session("other-0", "org_b", "go", start - 3000);
    heartbeats(start);
    // Rejected lines (cut short), counted by reason in each source's health as the files'
    // report counts them: a store-built report holds them too.
    line(
        &dispatch,
        r#"{"event":"dispatch","sessionId":"cut-0","organizationId":"org_a""#.to_owned(),
    );
    line(&go, r#"{"event":"claimed","sessionId":"cut-0","#.to_owned());
    sql_flip(&rt, &mut conn);
    // Every replica knows the flip, the two without a platform too.
    let mut flip_at = String::new();
    for port in ports {
        let v = json_when(port, "/api/orgs/org_a/verification", "pending", |v| {
            v["verdict"] == "pending"
        });
        flip_at = v["flip_at"].as_str().unwrap().to_owned();
    }
    let at = claimcheck::parse::time::parse_rfc3339(&flip_at)
        .unwrap()
        .millis();
    // After the grace: go sessions, one also claimed by a ts worker, another org's.
    for i in 0..5 {
        session(&format!("after-{i}"), "org_a", "go", at + 1500 + i * 500);
        heartbeats(at + 1500 + i * 500);
    }
    claim("after-4", "ts", at + 4000);
    session("other-1", "org_b", "ts", at + 2000);

    // Due about 11 s after the flip (window, claim timeout, slack), then the shares.
    let answered = |port: u16| {
        http_get_status(port, "/api/orgs/org_a/verification").is_some_and(|(status, body)| {
            status == 200
                && serde_json::from_str::<Value>(&body)
                    .is_ok_and(|v| v["verdict"].is_string() && v["verdict"] != "pending")
        })
    };
    assert!(
        wait_until(Instant::now() + Duration::from_secs(60), || ports
            .iter()
            .all(|&p| answered(p))),
        "not every replica has the report"
    );
    let out = claimcheck()
        .args([
            "report",
            "--org",
            "org_a",
            "--flip-at",
            &flip_at,
            "--to",
            "go",
        ])
        .args(["--window", "5s", "--grace", "1s", "--claim-timeout", "1s"])
        .args(["--format", "json", "--dispatch"])
        .arg(&dispatch)
        .arg("--claims")
        .arg(format!("go={}", go.display()))
        .arg("--claims")
        .arg(format!("ts={}", ts.display()))
        .output()
        .unwrap();
    let batch: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(batch["verdict"], "fail", "{batch}");
    assert_eq!(batch["sessions"]["window"], 5, "{batch}");
    let rejected: Vec<Value> = batch["sources"]
        .as_array()
        .map(|s| s.iter().map(|s| s["rejected"].clone()).collect())
        .unwrap_or_default();
    assert_eq!(rejected, [1, 1, 0], "dispatch, go, ts: {batch}");
    let mut lists = Vec::new();
    for port in ports {
        let (_, body) = http_get_status(port, "/api/orgs/org_a/verification").unwrap();
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (&v["verdict"], &v["reason"], &v["flip_at"]),
            (&batch["verdict"], &batch["reason"], &batch["flip_at"]),
            "{port}: {v}"
        );
        let (status, body) = http_get_status(port, v["report"].as_str().unwrap()).unwrap();
        assert_eq!(status, 200, "{body}");
        let report: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(report, batch, "replica on {port}");
        let (_, list) = http_get_status(port, "/api/reports").unwrap();
        lists.push(serde_json::from_str::<Value>(&list).unwrap());
    }
    assert!(lists.iter().all(|l| *l == lists[0]), "{lists:?}");
    assert_eq!(lists[0].as_array().map(Vec::len), Some(1), "{lists:?}");
    // Counted by the replica whose report stood, once it stored it (another may take it first).
    let counted = || -> f64 {
        ports
            .iter()
            .filter_map(|&p| http_get(p, "/metrics"))
            .map(|m| metric_sum(&m, "claimcheck_flip_verifications_total", ""))
            .sum()
    };
    wait_until(Instant::now() + Duration::from_secs(10), || {
        counted() >= 1.0
    });
    assert_eq!(counted(), 1.0, "the verdict counted once across replicas");
}

/// The Redis witness of an overdue session across sidecars: the sidecar watching the
/// platform's Redis (here the go daemon's, which never sees the dispatch) asks who holds the
/// claim key of every sidecar's overdue sessions as the feed brings them, once their finding
/// is in its store, so the finding carries the witness whichever sidecar judged the session;
/// the note then reaches the other sidecar's store through the feed.
/// (Asked when its own judgement was emitted, the answer came before the feed wrote the
/// finding, and the note was lost; another sidecar's judgement was never asked about.)
#[test]
fn the_platform_sidecar_witnesses_every_sidecars_overdue_sessions() {
    use crate::serve_platform::{claim_key_held, json_when};
    let prefix = format!("cc_witness_{}:", std::process::id());
    let mut r = claim_key_held(&prefix, "held-1", "go-worker-9");
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path().join("w");
    std::fs::create_dir(&w).unwrap();
    let replicas = &PER_LOG[..2];
    for &i in replicas.iter().flat_map(|r| r.files) {
        append(&w.join(SIMULATED[i].0), "");
    }
    let common = format!(
        "[serve]\nclaim_timeout = [\"120s\", \"go=1s\"]\n\
         [cluster]\nkey_prefix = \"cc-witness\"\n{}",
        instances(replicas)
    );
    std::fs::write(dir.path().join("serve.toml"), &common).unwrap();
    std::fs::write(
        dir.path().join("platform.toml"),
        format!(
            "{common}[platform]\nbackoff_min = \"100ms\"\n\
             [platform.redis]\nkey_prefix = \"{prefix}\"\npoll_interval = \"200ms\"\n"
        ),
    )
    .unwrap();
    let redis = RedisServer::start();
    let ports = [free_port(), free_port()];
    // The dispatch sidecar first, until it holds the sweep leases: it judges the session,
    // never the sidecar that asks Redis.
    let first = start_with(
        dir.path(),
        &replicas[0],
        ports[0],
        &[redis.url()],
        "serve.toml",
    );
    let lease = claimcheck::state::shared::Keys::new("cc-witness")
        .unwrap()
        .lease(0);
    let mut state = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    assert!(
        wait_until(Instant::now() + Duration::from_secs(30), || {
            redis::cmd("GET")
                .arg(&lease)
                .query::<Option<String>>(&mut state)
                .ok()
                .flatten()
                .as_deref()
                == Some("dispatch")
        }),
        "the dispatch sidecar took no lease"
    );
    let _servers = [
        first,
        start_with(
            dir.path(),
            &replicas[1],
            ports[1],
            &[redis.url()],
            "platform.toml",
        ),
    ];
    let now = claimcheck::clock::Clock::system().now().to_rfc3339();
    append(
        &w.join(SIMULATED[0].0),
        &format!(
            "{{\"event\":\"dispatch\",\"sessionId\":\"held-1\",\"organizationId\":\"org_b\",\
             \"resolvedProfile\":{{\"runner\":\"go\"}},\"time\":\"{now}\"}}\n"
        ),
    );
    let witnessed = |f: &Value| {
        f["findings"].as_array().is_some_and(|a| {
            a.iter().any(|x| {
                x["session_id"] == "held-1"
                    && x["detail"]
                        .as_str()
                        .is_some_and(|d| d.contains("go-worker-9"))
            })
        })
    };
    let asked = json_when(
        ports[1],
        "/api/findings?kind=unclaimed",
        "witness",
        witnessed,
    );
    // Its note reaches the other sidecar's store through the feed, after the finding.
    let elsewhere = json_when(
        ports[0],
        "/api/findings?kind=unclaimed",
        "the witness's note on the other sidecar",
        witnessed,
    );
    assert_eq!(elsewhere["findings"], asked["findings"]);
    let view = json_when(ports[1], "/api/sessions/held-1", "witness", |v| {
        v["redis_claim_witness"].is_object()
    });
    assert_eq!(
        view["redis_claim_witness"]["holder"], "go-worker-9",
        "{view}"
    );
    let _ = redis::cmd("DEL")
        .arg(format!("{prefix}work:claim:held-1"))
        .exec(&mut r);
}

/// Flips org_a to go in the database (its `updated_at` dates the flip).
fn sql_flip(rt: &tokio::runtime::Runtime, conn: &mut sqlx::PgConnection) {
    rt.block_on(
        sqlx::raw_sql(
            "UPDATE organizations SET features = '{\"runner_default\":\"go\"}', \
             updated_at = now() WHERE id = 'org_a'",
        )
        .execute(conn),
    )
    .unwrap();
}
