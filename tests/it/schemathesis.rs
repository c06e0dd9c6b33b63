//! The API contract fuzzed: schemathesis (from PyPI, in the venv `scripts/test.sh` makes)
//! runs every operation of the checked-in `docs/openapi.json` against the real binary, with
//! every check it has (`--checks all`): no 5xx, every status, content type, header and body
//! as documented, invalid input refused, auth not ignored, unsupported methods answered 405.
//!
//! `serve` has what each operation needs to get past its 404: a store holding one post-flip
//! report, a platform Postgres (a scratch database) for `/api/orgs`, an ingested session, the
//! ingest and drain secrets and one token for `/metrics` and the API (given as a flag, a
//! variable and `*_FILE` files: each way an operator may pass a secret is used). The hooks
//! (`tests/schemathesis/hooks.py`) sign drain bodies with the drain secret and add the seeded
//! ids as explicit examples, and let an ingest body that is "invalid" by the schema but
//! accepted by the documented rule (a batch keeps its good entries) pass. Afterwards `/metrics` must show that the signed drain bodies were ingested and that
//! the seeded lookups answered 200, so a run that only ever met 403 and 404 fails.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sqlx::Connection;

use crate::scratch_db::ScratchDb;
use crate::support::{Server, free_port, serve_cmd, until_some};

const REPO: &str = env!("CARGO_MANIFEST_DIR");
/// Where `scripts/test.sh` installs schemathesis (pinned there).
const SCHEMATHESIS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/target/schemathesis-venv/bin/schemathesis"
);
const TOKEN: &str = "st-token";
const DRAIN_SECRET: &str = "st-drain-secret";
const SESSION: &str = "ses_st_1";
const ORG: &str = "org_st";
const REPORT: &str = "rep_st_1";
/// Generated cases per operation and phase: the run stays well under a minute.
const MAX_EXAMPLES: &str = "15";
/// Beyond this the run is killed and the test fails.
const DEADLINE: Duration = Duration::from_secs(150);

/// The platform's two tables, with `ORG` on the go runner.
async fn platform_db() -> ScratchDb {
    let db = ScratchDb::new().await;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let schema = format!(
        "CREATE TABLE organizations (id text PRIMARY KEY, slug text, features jsonb, \
           updated_at timestamptz NOT NULL DEFAULT now());
         CREATE TABLE agent_sessions (id text PRIMARY KEY, status text NOT NULL, \
           created_at timestamptz NOT NULL DEFAULT now(), organization_id text);
         INSERT INTO organizations VALUES ('{ORG}', 'st', '{{\"runner_default\":\"go\"}}', now());"
    );
    sqlx::raw_sql(&schema).execute(&mut conn).await.unwrap();
    db
}

/// A store holding one report (of a flip with no evidence: `inconclusive`), as serve's
/// reporter would have written it.
async fn store_with_a_report(path: &Path) {
    use claimcheck::event::{Runner, Timestamp};
    use claimcheck::flip::{FlipEvidence, FlipParams};
    let store = claimcheck::store::Store::open(path.to_str().unwrap())
        .await
        .unwrap();
    let at = claimcheck::clock::Clock::system().now().millis() - 3_600_000;
    let params = FlipParams {
        at: Some(Timestamp(at)),
        to: Some(Runner::Go),
        ..FlipParams::new(ORG)
    };
    let report = claimcheck::flip::build(&FlipEvidence::default(), &params).unwrap();
    store
        .put_report(&claimcheck::store::StoredReport {
            id: REPORT.into(),
            org: ORG.into(),
            flip_at: Timestamp(at),
            verdict: report.verdict.as_str().into(),
            created_at: Timestamp(at + 1_900_000),
            json: claimcheck::flip::render::json(&report),
        })
        .await
        .unwrap();
}

/// The value of the sample `series` (name and labels exactly as exposed), 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn schemathesis_finds_every_operation_as_documented() {
    assert!(
        Path::new(SCHEMATHESIS).exists(),
        "schemathesis is not installed at {SCHEMATHESIS}: run scripts/test.sh, which creates \
         that venv (python3 -m venv target/schemathesis-venv, then pip install \
         schemathesis==4.32.5)"
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(platform_db());
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("state.db");
    rt.block_on(store_with_a_report(&store));
    let config = dir.path().join("claimcheck.toml");
    std::fs::write(
        &config,
        format!(
            "[serve]\nallowed_lateness = \"0s\"\n\
             [platform.postgres]\nurl = \"{}\"\n\
             [platform.postgres.organizations]\npoll_interval = \"500ms\"\n\
             [platform.postgres.sessions]\npoll_interval = \"500ms\"\n",
            db.url
        ),
    )
    .unwrap();
    let port = free_port();
    let log = dir.path().join("serve.log");
    // Each secret the way an operator may give it: a flag, a variable, a mounted file (its
    // trailing newline dropped).
    let metrics_token = dir.path().join("metrics-token");
    std::fs::write(&metrics_token, format!("{TOKEN}\n")).unwrap();
    let drain_secret = dir.path().join("drain-secret");
    std::fs::write(&drain_secret, format!("{DRAIN_SECRET}\n")).unwrap();
    let _serve = Server(
        serve_cmd(port, &config, &store)
            .args(["--ingest-token", TOKEN])
            .env("CLAIMCHECK_API_TOKEN", TOKEN)
            .env("CLAIMCHECK_METRICS_TOKEN_FILE", &metrics_token)
            .env("CLAIMCHECK_VERCEL_SECRET_FILE", &drain_secret)
            .args(["--vercel-verify-code", "st-verify"])
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let get = |path: &str| {
        let req = client.get(format!("{base}{path}")).bearer_auth(TOKEN);
        async move {
            let r = req.send().await.ok()?;
            Some((r.status().as_u16(), r.text().await.ok()?))
        }
    };
    rt.block_on(async {
        until_some(30, "serve ready", || async {
            get("/readyz").await.filter(|(s, _)| *s == 200)
        })
        .await;
        // one session of ORG, dispatched and claimed
        let body = format!(
            "{{\"event\":\"dispatch\",\"sessionId\":\"{SESSION}\",\"organizationId\":\"{ORG}\",\
               \"resolvedProfile\":{{\"runner\":\"go\"}},\"time\":\"2026-11-23T10:00:00Z\"}}\n\
             {{\"event\":\"claimed\",\"sessionId\":\"{SESSION}\",\"runtime\":\"go\",\
               \"workerId\":\"w1\",\"time\":\"2026-11-23T10:00:01Z\"}}\n"
        );
        let posted = client
            .post(format!("{base}/ingest/ndjson"))
            .bearer_auth(TOKEN)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(posted.status(), 200);
        until_some(30, "the session served", || async {
            get(&format!("/api/sessions/{SESSION}"))
                .await
                .filter(|(s, _)| *s == 200)
        })
        .await;
        until_some(30, "the org listed", || async {
            get("/api/orgs")
                .await
                .filter(|(s, b)| *s == 200 && b.contains(ORG))
        })
        .await;
    });

    let started = Instant::now();
    let mut run = Command::new(SCHEMATHESIS);
    // in the scratch directory: schemathesis keeps a cache where it runs
    run.current_dir(dir.path())
        .arg("--no-color")
        .args(["run", &format!("{REPO}/docs/openapi.json"), "--url", &base])
        .args([
            "--checks",
            "all",
            "--max-examples",
            MAX_EXAMPLES,
            "--workers",
            "1",
        ])
        .args(["-H", &format!("Authorization: Bearer {TOKEN}")])
        .env(
            "SCHEMATHESIS_HOOKS",
            format!("{REPO}/tests/schemathesis/hooks.py"),
        )
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("CLAIMCHECK_TEST_DRAIN_SECRET", DRAIN_SECRET)
        .env("CLAIMCHECK_TEST_SESSION", SESSION)
        .env("CLAIMCHECK_TEST_REPORT", REPORT)
        .env("CLAIMCHECK_TEST_ORG", ORG)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Ok(seed) = std::env::var("CLAIMCHECK_SCHEMATHESIS_SEED") {
        run.args(["--seed", &seed]);
    }
    let child = run.spawn().unwrap();
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let Ok(out) = rx.recv_timeout(DEADLINE) else {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        panic!("schemathesis did not finish within {DEADLINE:?}");
    };
    let out = out.unwrap();
    let took = started.elapsed();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("schemathesis ran in {took:.1?}:\n{said}");
    assert!(
        out.status.success(),
        "schemathesis found problems (replay with CLAIMCHECK_SCHEMATHESIS_SEED=<the seed \
         above>); serve's log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    // It met the real thing, not only refusals: signed drain bodies were recorded, and the
    // seeded lookups answered 200.
    let metrics = rt.block_on(get("/metrics")).unwrap().1;
    let vercel_lines: f64 = ["event", "ignored", "rejected", "duplicate"]
        .iter()
        .map(|r| {
            sample(
                &metrics,
                &format!("claimcheck_ingest_lines_total{{result=\"{r}\",source=\"vercel\"}}"),
            )
        })
        .sum();
    assert!(
        vercel_lines > 0.0,
        "no signed drain body was ingested:\n{metrics}"
    );
    for route in [
        "/api/sessions/{id}",
        "/api/reports/{id}",
        "/api/orgs/{org}/verification",
        "/api/orgs",
        "/api/reports",
        "/ingest/vercel",
        "/ingest/ndjson",
    ] {
        let method = if route.starts_with("/ingest") {
            "POST"
        } else {
            "GET"
        };
        let ok = sample(
            &metrics,
            &format!(
                "claimcheck_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"200\"}}"
            ),
        );
        assert!(ok >= 1.0, "{method} {route} never answered 200");
    }
}
