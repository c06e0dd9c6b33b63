//! `serve` (the real binary) joined to a real platform: a scratch Postgres database with the
//! seed's `organizations` and `agent_sessions` tables, Redis keys under a prefix of its own.
//! Flip an org → one flip, drift for a ts dispatch after the grace, a session that never shows
//! up in the logs, a Redis witness for an overdue session; kill -9 and restart → the flip is
//! neither lost nor repeated.

use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::Connection;

use crate::scratch_db::ScratchDb;
use crate::support::{Server, claimcheck, free_port, http_get_status, serve_cmd, wait_until};

/// The platform's Redis (the shared server) says `worker` holds `session`'s claim key under
/// `prefix` (for ten minutes); the connection, to delete it at the end.
pub(crate) fn claim_key_held(prefix: &str, session: &str, worker: &str) -> redis::Connection {
    let client = redis::Client::open("redis://127.0.0.1:6379/").unwrap();
    let mut r = client.get_connection().unwrap();
    redis::cmd("SET")
        .arg(format!("{prefix}work:claim:{session}"))
        .arg(worker)
        .arg("EX")
        .arg(600)
        .exec(&mut r)
        .unwrap();
    r
}

/// Polls `path` until `ready` holds on its JSON body; a deadline, not a fixed wait.
pub(crate) fn json_when(
    port: u16,
    path: &str,
    what: &str,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    let reached = wait_until(Instant::now() + Duration::from_secs(20), || {
        if let Some((_, body)) = http_get_status(port, path)
            && let Ok(v) = serde_json::from_str::<Value>(&body)
        {
            last = v;
        }
        ready(&last)
    });
    if reached {
        return last;
    }
    panic!("{what}: not reached within 20 s; last {path}: {last}");
}

fn org<'a>(orgs: &'a Value, id: &str) -> Option<&'a Value> {
    orgs.as_array()?.iter().find(|o| o["org"] == id)
}

/// Appends one line (and its newline).
fn append(path: &std::path::Path, line: &str) {
    crate::support::append(path, &format!("{line}\n"));
}

fn rfc3339_in(secs: i64) -> String {
    let ms = claimcheck::clock::Clock::system().now().millis() + secs * 1000;
    claimcheck::event::Timestamp(ms).to_rfc3339()
}

/// A scratch database with the seed's two platform tables and the given `organizations` rows.
pub(crate) fn platform_db(
    rt: &tokio::runtime::Runtime,
    orgs: &str,
) -> (ScratchDb, sqlx::PgConnection) {
    let db = rt.block_on(ScratchDb::new());
    let mut conn = rt.block_on(sqlx::PgConnection::connect(&db.url)).unwrap();
    let schema = format!(
        "CREATE TABLE organizations (id text PRIMARY KEY, slug text, features jsonb, \
           updated_at timestamptz NOT NULL DEFAULT now());
         CREATE TABLE agent_sessions (id text PRIMARY KEY, status text NOT NULL, \
           created_at timestamptz NOT NULL DEFAULT now(), organization_id text);
         INSERT INTO organizations VALUES {orgs};"
    );
    rt.block_on(sqlx::raw_sql(&schema).execute(&mut conn))
        .unwrap();
    (db, conn)
}

/// The organizations the platform tests start from: org_a on ts by default, org_b flagged
/// go, org_c with a malformed flag ("Go").
pub(crate) const THREE_ORGS: &str = "('org_a', 'a', '{}', now()), \
     ('org_b', 'b', '{\"runner_default\":\"go\"}', now()), \
     ('org_c', 'c', '{\"runner_default\":\"Go\"}', now())";

#[test]
fn serve_sees_flips_drift_missing_sessions_and_redis_witnesses() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (db, mut conn) = platform_db(&rt, THREE_ORGS);
    let sql = |conn: &mut sqlx::PgConnection, q: &str| {
        rt.block_on(sqlx::raw_sql(q).execute(conn)).unwrap();
    };
    let prefix = format!("cc_test_{}:", std::process::id());
    let mut r = claim_key_held(&prefix, "held-1", "go-worker-9");

    let dir = tempfile::tempdir().unwrap();
    let dispatch = dir.path().join("dispatch.log");
    append(&dispatch, "");
    let config = dir.path().join("claimcheck.toml");
    std::fs::write(
        &config,
        format!(
            "[serve]\nclaim_timeout = [\"120s\", \"go=1s\"]\n\
             [platform]\ndrift_grace = \"2s\"\nbackoff_min = \"100ms\"\n\
             [platform.postgres]\nurl = \"{}\"\n\
             [platform.postgres.organizations]\npoll_interval = \"200ms\"\n\
             [platform.postgres.sessions]\npoll_interval = \"200ms\"\ngrace = \"1s\"\n\
             [platform.redis]\nkey_prefix = \"{prefix}\"\npoll_interval = \"200ms\"\n",
            db.url
        ),
    )
    .unwrap();
    let store = dir.path().join("state.db");
    let start = |port: u16| {
        Server(
            serve_cmd(port, &config, &store)
                .arg("--dispatch")
                .arg(&dispatch)
                .spawn()
                .unwrap(),
        )
    };
    let port = free_port();
    let server = start(port);

    // The first snapshot is a baseline: flags known, no flip, the malformed "Go" reported.
    let orgs = json_when(port, "/api/orgs", "baseline", |o| {
        org(o, "org_c").is_some_and(|c| c["malformed_flag"].is_string())
    });
    assert_eq!(org(&orgs, "org_a").unwrap()["expected_runner"], "ts");
    assert_eq!(org(&orgs, "org_b").unwrap()["expected_runner"], "go");
    assert_eq!(org(&orgs, "org_c").unwrap()["expected_runner"], "ts");
    assert!(org(&orgs, "org_a").unwrap()["last_flip"].is_null());
    json_when(port, "/readyz", "ready", |r| {
        r["postgres"]["up"] == true && r["redis"]["up"] == true
    });
    assert_eq!(http_get_status(port, "/readyz").unwrap().0, 200);
    json_when(
        port,
        "/api/findings?kind=malformed_flag",
        "malformed",
        |f| {
            f["findings"]
                .as_array()
                .is_some_and(|a| a.len() == 1 && a[0]["org"] == "org_c")
        },
    );

    // Flip org_a to go: one flip; a ts dispatch after the grace is drift, one inside it is not.
    sql(
        &mut conn,
        "UPDATE organizations SET features = '{\"runner_default\":\"go\"}', updated_at = now() \
         WHERE id = 'org_a'",
    );
    let orgs = json_when(port, "/api/orgs", "the flip", |o| {
        org(o, "org_a").is_some_and(|a| a["expected_runner"] == "go" && a["last_flip"].is_object())
    });
    // Dispatch times placed by the flip's own time (the 2 s grace runs from it).
    let flip_at = org(&orgs, "org_a").unwrap()["last_flip"]["at"]
        .as_str()
        .and_then(claimcheck::parse::time::parse_rfc3339)
        .unwrap()
        .millis();
    let after_flip = |ms: i64| claimcheck::event::Timestamp(flip_at + ms).to_rfc3339();
    let dispatch_line = |id: &str, runner: &str, org: &str, at: &str| {
        format!(
            r#"{{"event":"dispatch","sessionId":"{id}","organizationId":"{org}","resolvedProfile":{{"runner":"{runner}"}},"time":"{at}"}}"#
        )
    };
    append(
        &dispatch,
        &dispatch_line("inside-grace", "ts", "org_a", &after_flip(500)),
    );
    append(
        &dispatch,
        &dispatch_line("drifted", "ts", "org_a", &after_flip(3000)),
    );
    append(
        &dispatch,
        &dispatch_line("agrees", "go", "org_a", &after_flip(3000)),
    );
    let drift = json_when(port, "/api/findings?kind=flag_drift", "drift", |f| {
        f["findings"].as_array().is_some_and(|a| !a.is_empty())
    });
    let drifted: Vec<&str> = drift["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["session_id"].as_str().unwrap())
        .collect();
    assert_eq!(drifted, ["drifted"]);

    // A session created in the database that never reaches the logs is missing after the
    // grace; the go session whose claim line is lost has a Redis witness.
    sql(
        &mut conn,
        "INSERT INTO agent_sessions VALUES ('lost-1', 'queued', now(), 'org_a')",
    );
    append(
        &dispatch,
        &dispatch_line("held-1", "go", "org_b", &rfc3339_in(0)),
    );
    json_when(
        port,
        "/api/findings?kind=missing_from_logs",
        "missing",
        |f| {
            f["findings"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x["session_id"] == "lost-1"))
        },
    );
    json_when(port, "/api/findings?kind=unclaimed", "witness", |f| {
        f["findings"].as_array().is_some_and(|a| {
            a.iter().any(|x| {
                x["session_id"] == "held-1"
                    && x["detail"]
                        .as_str()
                        .is_some_and(|d| d.contains("go-worker-9"))
            })
        })
    });
    let view = json_when(port, "/api/sessions/held-1", "witness in evidence", |v| {
        v["redis_claim_witness"].is_object()
    });
    assert_eq!(
        view["redis_claim_witness"]["holder"], "go-worker-9",
        "{view}"
    );
    let (_, metrics) = http_get_status(port, "/metrics").unwrap();
    for want in [
        r#"claimcheck_flips_total{to="go"} 1"#,
        r#"claimcheck_flag_drift_total{dispatched="ts",expected="go",org="org_a"} 1"#,
        r#"claimcheck_org_flag_malformed{org="org_c"} 1"#,
        r#"claimcheck_dependency_up{dependency="postgres"} 1"#,
        r#"claimcheck_dependency_up{dependency="redis"} 1"#,
        r#"claimcheck_claims_witnessed_total{source="redis"} 1"#,
    ] {
        assert!(metrics.lines().any(|l| l == want), "{want} in\n{metrics}");
    }

    // kill -9 and restart: the flip survives in the store and is not raised again.
    drop(server);
    let port = free_port();
    let _server = start(port);
    let orgs = json_when(port, "/api/orgs", "orgs after restart", |o| {
        org(o, "org_a").is_some_and(|a| a["last_flip"].is_object())
    });
    assert_eq!(
        org(&orgs, "org_a").unwrap()["last_flip"]["to"],
        "go",
        "{orgs}"
    );
    // A later change proves the snapshots since the restart were all applied (in order).
    sql(
        &mut conn,
        "UPDATE organizations SET features = '{\"runner_default\":42}', updated_at = now() \
         WHERE id = 'org_c'",
    );
    json_when(
        port,
        "/api/findings?kind=malformed_flag",
        "a later snapshot",
        |f| {
            f["findings"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|x| x["detail"].as_str().is_some_and(|d| d.contains("42")))
            })
        },
    );
    // The flip found before the restart is stored, and only it: not raised a second time.
    let (_, flips) = http_get_status(port, "/api/findings?kind=flip").unwrap();
    let flips: Value = serde_json::from_str(&flips).unwrap();
    let flips = flips["findings"].as_array().unwrap();
    assert_eq!(flips.len(), 1, "{flips:?}");
    assert_eq!(flips[0]["org"], "org_a", "{flips:?}");
    let _ = redis::cmd("DEL")
        .arg(format!("{prefix}work:claim:held-1"))
        .exec(&mut r);
}

/// PRODUCT.md §6 in serve: flipping an org in the database produces, once the window has
/// passed, a stored report reachable over HTTP; meanwhile the org's verification is pending.
#[test]
fn a_detected_flip_gets_its_report_after_the_window() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (db, mut conn) = platform_db(&rt, "('org_a', 'a', '{}', now())");
    let sql = |conn: &mut sqlx::PgConnection, q: &str| {
        rt.block_on(sqlx::raw_sql(q).execute(conn)).unwrap();
    };
    let dir = tempfile::tempdir().unwrap();
    let (dispatch, go, ts) = (
        dir.path().join("dispatch.log"),
        dir.path().join("go-daemon.log"),
        dir.path().join("ts-worker.log"),
    );
    for f in [&dispatch, &go, &ts] {
        append(f, "");
    }
    let config = dir.path().join("claimcheck.toml");
    std::fs::write(
        &config,
        format!(
            "[serve]\nclaim_timeout = [\"1s\"]\nreport_window = \"5s\"\n\
             [platform]\ndrift_grace = \"1s\"\n\
             [platform.postgres]\nurl = \"{}\"\n\
             [platform.postgres.organizations]\npoll_interval = \"200ms\"\n",
            db.url
        ),
    )
    .unwrap();
    let port = free_port();
    let _server = Server(
        serve_cmd(port, &config, dir.path().join("state.db"))
            .arg("--dispatch")
            .arg(&dispatch)
            .arg("--claims")
            .arg(format!("go={}", go.display()))
            .arg("--claims")
            .arg(format!("ts={}", ts.display()))
            .spawn()
            .unwrap(),
    );
    json_when(port, "/api/orgs", "baseline", |o| {
        org(o, "org_a").is_some_and(|a| a["expected_runner"] == "ts")
    });
    // Event times are absolute (epoch ms): the window is placed by the flip's `updated_at`.
    let stamp = |ms: i64| claimcheck::event::Timestamp(ms).to_rfc3339();
    let now = || claimcheck::clock::Clock::system().now().millis();
    let session = |id: &str, runner: &str, at: i64| {
        append(
            &dispatch,
            &format!(
                r#"{{"event":"dispatch","sessionId":"{id}","organizationId":"org_a","resolvedProfile":{{"runner":"{runner}"}},"time":"{}"}}"#,
                stamp(at)
            ),
        );
        let (file, worker) = if runner == "go" {
            (&go, "g1")
        } else {
            (&ts, "t1")
        };
        append(
            file,
            &format!(
                r#"{{"event":"claimed","sessionId":"{id}","workerId":"{worker}","time":"{}"}}"#,
                stamp(at)
            ),
        );
    };
    let heartbeats = |at: i64| {
        append(
            &go,
            &format!(
                r#"{{"event":"heartbeat","workerId":"g1","version":"0.5.2","time":"{}"}}"#,
                stamp(at)
            ),
        );
        append(
            &ts,
            &format!(
                r#"{{"event":"heartbeat","workerId":"t1","version":"1.0.0","time":"{}"}}"#,
                stamp(at)
            ),
        );
    };
    // The baseline: ts sessions before the flip.
    let start = now();
    for i in 0..5 {
        session(&format!("before-{i}"), "ts", start - 4000 + i * 800);
    }
    heartbeats(start);
    sql(
        &mut conn,
        "UPDATE organizations SET features = '{\"runner_default\":\"go\"}', updated_at = now() \
         WHERE id = 'org_a'",
    );
    let pending = json_when(port, "/api/orgs/org_a/verification", "pending", |v| {
        v["verdict"] == "pending"
    });
    assert!(pending["due"].is_string(), "{pending}");
    // After the grace every session goes to go and is claimed at once.
    let flip_at = claimcheck::parse::time::parse_rfc3339(pending["flip_at"].as_str().unwrap())
        .unwrap()
        .millis();
    for i in 0..5 {
        session(&format!("after-{i}"), "go", flip_at + 1500 + i * 500);
        heartbeats(flip_at + 1500 + i * 500);
    }
    let v = json_when(port, "/api/orgs/org_a/verification", "the report", |v| {
        v["verdict"] != "pending" && v["verdict"].is_string()
    });
    assert_eq!(v["verdict"], "pass", "{v}");
    let list = json_when(port, "/api/reports", "listed", |l| {
        l.as_array().is_some_and(|a| a.len() == 1)
    });
    let entry = &list[0];
    assert_eq!(entry["org"], "org_a");
    let (status, html) = http_get_status(port, entry["html"].as_str().unwrap()).unwrap();
    assert_eq!(status, 200);
    assert!(
        html.contains("<svg") && html.to_lowercase().contains("pass"),
        "{html}"
    );
    let (status, json) = http_get_status(port, entry["json"].as_str().unwrap()).unwrap();
    assert_eq!(status, 200);
    let report: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["to"], "go");
    assert_eq!(report["sessions"]["window"], 5, "{report}");
    let (_, metrics) = http_get_status(port, "/metrics").unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l == r#"claimcheck_flip_verifications_total{verdict="pass"} 1"#),
        "{metrics}"
    );

    // `claimcheck report --store` reads the same store and finds the flip serve detected.
    let out = claimcheck()
        .args([
            "report", "--org", "org_a", "--window", "5s", "--grace", "1s",
        ])
        .args(["--claim-timeout", "1s", "--format", "json", "--store"])
        .arg(dir.path().join("state.db"))
        .output()
        .unwrap();
    let cli: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.code(), Some(0), "{cli}");
    assert_eq!(cli["verdict"], "pass");
    assert_eq!(cli["flip_at"], report["flip_at"]);
    assert_eq!(cli["sessions"], report["sessions"]);
}
