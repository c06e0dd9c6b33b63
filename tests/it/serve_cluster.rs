//! `serve --cluster`: real sidecars correlating together on a Redis server the test starts on
//! a free loopback port. One follows the dispatch logs (the dispatcher's and the Vercel
//! drain's), the other the claims (the go daemon's and the ts worker's), so no session's
//! dispatch and claim meet in one process: summed over both, the counts on `/metrics` must be
//! what `verify` says about the same files. Then the same through a Redis outage: the server
//! SIGKILLed while lines keep coming, restarted on its append-only file; nothing lost, nothing
//! counted twice, and `/readyz` and `claimcheck_cluster_up` say what happened.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::redis_cluster::RedisServer;
use crate::serve_files::metric_sum;
use crate::support::{
    SIMULATED, Server, append, free_port, http_get, http_get_status, lines_of, metric, serve_cmd,
    simulated_with_verify_totals, wait_until,
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

/// One replica of the two: the files it follows, by their role.
struct Replica {
    name: &'static str,
    files: [usize; 2],
}

/// The dispatch side (dispatcher and drain) and the claims side (go and ts), as `SIMULATED`
/// lists them.
const REPLICAS: [Replica; 2] = [
    Replica {
        name: "dispatch",
        files: [0, 1],
    },
    Replica {
        name: "claims",
        files: [2, 3],
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

/// Starts replica `r` on `port`, following its files in `w` with its own SQLite store,
/// sharing the state on `redis`.
fn start(dir: &Path, r: &Replica, port: u16, redis: &str) -> Server {
    let store = dir.join(format!("{}.db", r.name));
    let mut serve = serve_cmd(port, &dir.join("serve.toml"), &store);
    for &i in &r.files {
        let (f, rt) = SIMULATED[i];
        let p = dir.join("w").join(f).display().to_string();
        serve
            .arg("--file")
            .arg(rt.map_or(p.clone(), |rt| format!("{rt}={p}")));
    }
    serve
        .arg("--cluster")
        .arg(redis)
        .env("CLAIMCHECK_CLUSTER_INSTANCE", r.name);
    Server(serve.spawn().unwrap())
}

/// Orphans are judged on settled evidence; the grace plus the maximum hold, on the sidecar's
/// clock, outlasts reading the files (and the outage).
fn write_config(dir: &Path) {
    std::fs::write(
        dir.join("serve.toml"),
        "[serve]\norphan_grace = \"30s\"\n[cluster]\nkey_prefix = \"cc-serve-test\"\n",
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
    wait_until(Instant::now() + within, || {
        seen = all();
        seen.iter().all(|(k, v)| *v == Some(expected(k)))
    });
    for (k, v) in &seen {
        assert_eq!(
            *v,
            Some(expected(k)),
            "{ctx}: {k}: the replicas' summed /metrics vs verify {t}\n{seen:?}"
        );
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
    write_config(dir.path());
    let redis = RedisServer::start();
    let ports = [free_port(), free_port()];
    let _servers: Vec<Server> = REPLICAS
        .iter()
        .zip(ports)
        .map(|(r, port)| start(dir.path(), r, port, &redis.url()))
        .collect();
    assert_counts_equal_verify(&ports, &t, lines, Duration::from_secs(90), "two sidecars");
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
/// nothing counted twice.
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
    write_config(dir.path());
    let mut redis = RedisServer::start();
    let ports = [free_port(), free_port()];
    let _servers: Vec<Server> = REPLICAS
        .iter()
        .zip(ports)
        .map(|(r, port)| start(dir.path(), r, port, &redis.url()))
        .collect();
    let read = |ports: &[u16]| summed(ports, "claimcheck_ingest_lines_total");
    assert!(
        wait_until(Instant::now() + Duration::from_secs(60), || read(&ports)
            == Some(first as f64)),
        "the first halves were not read: {:?} of {first}",
        read(&ports)
    );

    redis.kill();
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
