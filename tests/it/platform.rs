//! The platform integrations against real servers: a fake platform schema in a database each
//! test creates (and drops), Redis keys under a prefix of each test's own, and throwaway
//! servers (`servers.rs`) killed and restarted mid-run for the outage tests (`outages.rs`).
//!
//! `Sidecar` plays the serve actor: it `select!`s on the platform updates and feeds them to the
//! pure `Platform`, as `serve`'s actor does. Waits are on conditions with a deadline, never fixed.

mod outages;
pub(crate) mod servers;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use claimcheck::clock::Clock;
use claimcheck::event::{Runner, Timestamp};
use claimcheck::platform::config::{RawPostgres, RawRedis, RawSessions};
use claimcheck::platform::flags::FlipCause;
use claimcheck::platform::{
    self, Platform, PlatformConfig, PlatformEvent, PlatformHandle, PlatformMetrics, PlatformUpdate,
    QueueStats, RawPlatformConfig, SavedBook,
};
use prometheus::Registry;
use servers::RedisServer;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

const SCHEMA: &str = "
CREATE TABLE organizations (
    id text PRIMARY KEY,
    slug text UNIQUE,
    features jsonb,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE agent_sessions (
    id text PRIMARY KEY,
    status text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    organization_id text
);
CREATE INDEX ON agent_sessions (created_at);
";

/// A name no other test (or run) uses.
fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::UNIX_EPOCH
        .elapsed()
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn now_ms() -> i64 {
    Clock::system().now().millis()
}

/// A database of the test's own on the shared server, with a read-only role as the README
/// tells users to create: claimcheck runs as that role, so a write could not succeed.
struct TestDb {
    name: String,
    role: String,
    admin: sqlx::PgPool,
    pool: sqlx::PgPool,
    dropped: bool,
}

/// A test that panicked before `drop()` still removes its database and role.
impl Drop for TestDb {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        for sql in [
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            format!("DROP ROLE IF EXISTS {}", self.role),
        ] {
            let _ = std::process::Command::new("psql")
                .args([ADMIN_URL, "-qc", &sql])
                .output();
        }
    }
}

const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

impl TestDb {
    async fn create() -> TestDb {
        let admin = sqlx::PgPool::connect(ADMIN_URL).await.unwrap();
        let name = unique("cc_platform");
        let role = format!("{name}_ro");
        sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .unwrap();
        let pool = sqlx::PgPool::connect(&format!("postgres://postgres@127.0.0.1:5432/{name}"))
            .await
            .unwrap();
        sqlx::raw_sql(SCHEMA).execute(&pool).await.unwrap();
        sqlx::raw_sql(&format!(
            "CREATE ROLE {role} LOGIN;
             GRANT CONNECT ON DATABASE {name} TO {role};
             GRANT USAGE ON SCHEMA public TO {role};
             GRANT SELECT ON organizations, agent_sessions TO {role};"
        ))
        .execute(&pool)
        .await
        .unwrap();
        TestDb {
            name,
            role,
            admin,
            pool,
            dropped: false,
        }
    }

    fn readonly_url(&self) -> String {
        format!("postgres://{}@127.0.0.1:5432/{}", self.role, self.name)
    }

    async fn drop(mut self) {
        self.dropped = true;
        self.pool.close().await;
        // one statement per call: DROP DATABASE refuses to run in a transaction block
        for sql in [
            format!("DROP DATABASE {} WITH (FORCE)", self.name),
            format!("DROP ROLE {}", self.role),
        ] {
            sqlx::raw_sql(&sql).execute(&self.admin).await.unwrap();
        }
    }
}

async fn exec(pool: &sqlx::PgPool, sql: &str) {
    sqlx::raw_sql(sql).execute(pool).await.unwrap();
}

/// `to_timestamp` of epoch ms, for SQL text.
fn at(ms: i64) -> String {
    format!("to_timestamp({ms}::float8 / 1000)")
}

async fn insert_org(pool: &sqlx::PgPool, id: &str, features: &str, updated_ms: i64) {
    exec(
        pool,
        &format!(
            "INSERT INTO organizations VALUES ('{id}', '{id}-slug', '{features}'::jsonb, {})",
            at(updated_ms)
        ),
    )
    .await;
}

async fn insert_session(pool: &sqlx::PgPool, id: &str, status: &str, org: &str, created_ms: i64) {
    exec(
        pool,
        &format!(
            "INSERT INTO agent_sessions VALUES ('{id}', '{status}', {}, '{org}')",
            at(created_ms)
        ),
    )
    .await;
}

/// Test timings: polls every 100 ms, quick deadlines and backoff.
fn config(pg_url: Option<String>, redis: Option<(String, String)>) -> PlatformConfig {
    let mut raw = RawPlatformConfig {
        backoff_min: "50ms".into(),
        backoff_max: "400ms".into(),
        ..RawPlatformConfig::default()
    };
    if let Some(url) = pg_url {
        let mut p = RawPostgres {
            url,
            call_timeout: "1s".into(),
            sessions: RawSessions {
                poll_interval: "100ms".into(),
                grace: "1500ms".into(),
                exclude_statuses: vec!["cancelled".into()],
                ..RawSessions::default()
            },
            ..RawPostgres::default()
        };
        p.organizations.poll_interval = "100ms".into();
        raw.postgres = Some(p);
    }
    if let Some((url, prefix)) = redis {
        raw.redis = Some(RawRedis {
            url,
            key_prefix: prefix,
            poll_interval: "100ms".into(),
            call_timeout: "500ms".into(),
            ..RawRedis::default()
        });
    }
    PlatformConfig::new(&raw).unwrap()
}

/// Plays the serve actor around the platform tasks.
struct Sidecar {
    platform: Platform,
    handle: PlatformHandle,
    clock: Clock,
    registry: Registry,
    events: Vec<PlatformEvent>,
    snapshots: usize,
    queue: Option<QueueStats>,
    /// Every published up/down state per dependency, in order (deduplicated runs).
    up_history: BTreeMap<&'static str, Vec<bool>>,
    tasks: JoinSet<()>,
    stop: CancellationToken,
}

impl Sidecar {
    fn start(cfg: &PlatformConfig, saved: Option<SavedBook>, horizon: i64) -> Sidecar {
        let registry = Registry::new();
        let metrics = PlatformMetrics::new(&registry).unwrap();
        let clock = Clock::system();
        let mut tasks = JoinSet::new();
        let stop = CancellationToken::new();
        let horizon = Timestamp(horizon);
        let handle = platform::spawn(
            cfg,
            metrics.clone(),
            clock,
            horizon,
            &mut tasks,
            stop.clone(),
        );
        let platform = Platform::new(cfg, metrics, handle.requests.clone(), saved, horizon);
        Sidecar {
            platform,
            handle,
            clock,
            registry,
            events: Vec::new(),
            snapshots: 0,
            queue: None,
            up_history: BTreeMap::new(),
            tasks,
            stop,
        }
    }

    fn note_readiness(&mut self) {
        let r = self.handle.readiness.borrow_and_update().clone();
        for (name, state) in [("postgres", &r.postgres), ("redis", &r.redis)] {
            if let Some(s) = state {
                let h = self.up_history.entry(name).or_default();
                if h.last() != Some(&s.up) {
                    h.push(s.up);
                }
            }
        }
    }

    fn up(&self, dep: &str) -> Option<bool> {
        self.up_history.get(dep).and_then(|h| h.last().copied())
    }

    /// Feeds updates (and ticks) to the platform until `done` holds; a generous 60 s at most.
    async fn until(&mut self, what: &str, done: impl Fn(&Sidecar) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        self.note_readiness();
        while !done(self) {
            let update = tokio::select! {
                u = self.handle.updates.recv() => u,
                _ = self.handle.readiness.changed() => None,
                _ = tokio::time::sleep_until(deadline) => {
                    panic!("timed out waiting for {what}; events so far: {:#?}", self.events)
                }
            };
            let now = self.clock.now();
            if let Some(u) = update {
                match &u {
                    PlatformUpdate::Flags(_) => self.snapshots += 1,
                    PlatformUpdate::Queue(q) => self.queue = Some(q.clone()),
                    _ => {}
                }
                let ev = self.platform.on_update(u, now);
                self.events.extend(ev);
            }
            let ev = self.platform.on_tick(now);
            self.events.extend(ev);
            self.note_readiness();
        }
    }

    /// Lets `n` more flag snapshots arrive (figures that should not move have had the chance).
    async fn more_snapshots(&mut self, n: usize) {
        let want = self.snapshots + n;
        self.until("more snapshots", |s| s.snapshots >= want).await;
    }

    fn dispatch(&mut self, session: &str, org: Option<&str>, runner: Runner, time: i64) {
        let now = self.clock.now();
        let ev = self
            .platform
            .on_dispatch(session, org, runner, Timestamp(time), now);
        self.events.extend(ev);
    }

    fn flips(&self) -> Vec<&claimcheck::platform::Flip> {
        self.events
            .iter()
            .filter_map(|e| match e {
                PlatformEvent::Flip(f) => Some(f),
                _ => None,
            })
            .collect()
    }

    fn drifts(&self) -> Vec<(&str, Runner, Runner)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                PlatformEvent::Drift(d) => Some((d.session.as_str(), d.expected, d.dispatched)),
                _ => None,
            })
            .collect()
    }

    fn missing(&self) -> Vec<&str> {
        self.events
            .iter()
            .filter_map(|e| match e {
                PlatformEvent::MissingFromLogs(s) => Some(s.id.as_str()),
                _ => None,
            })
            .collect()
    }

    fn witnesses(&self) -> Vec<(&str, Option<&str>)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                PlatformEvent::Witness { session, worker } => {
                    Some((session.as_str(), worker.as_deref()))
                }
                _ => None,
            })
            .collect()
    }

    /// The value of one exposition line, e.g. `claimcheck_queue_depth{runner="go"}`.
    fn metric(&self, series: &str) -> Option<f64> {
        let mut buf = String::new();
        prometheus::TextEncoder::new()
            .encode_utf8(&self.registry.gather(), &mut buf)
            .unwrap();
        buf.lines().find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
                .map(|v| v.parse().unwrap())
        })
    }

    async fn stop(mut self) -> SavedBook {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
        self.platform.saved_book()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flip_malformed_rollback_deleted_row_and_restart() {
    let db = TestDb::create().await;
    let hour_ago = now_ms() - 3_600_000;
    insert_org(&db.pool, "o_flip", "{}", hour_ago).await;
    insert_org(&db.pool, "o_bad", r#"{"plan": "pro"}"#, hour_ago).await;
    insert_org(&db.pool, "o_del", r#"{"runner_default": "go"}"#, hour_ago).await;
    // the role claimcheck runs as cannot write (README: the read-only role)
    let ro = sqlx::PgPool::connect(&db.readonly_url()).await.unwrap();
    let refused = sqlx::raw_sql("UPDATE organizations SET features = '{}'")
        .execute(&ro)
        .await;
    assert!(refused.is_err(), "the read-only role refuses writes");
    ro.close().await;
    let cfg = config(Some(db.readonly_url()), None);
    let mut sc = Sidecar::start(&cfg, None, hour_ago);
    sc.until("the baseline", |s| {
        s.snapshots >= 1 && s.up("postgres") == Some(true)
    })
    .await;
    assert!(sc.flips().is_empty(), "the first poll is a baseline");
    assert_eq!(
        sc.metric(r#"claimcheck_org_expected_runner{org="o_del",runner="go"}"#),
        Some(1.0)
    );

    // the migration guide's opt-in SQL, dated two minutes ago
    let flip = now_ms() - 120_000;
    exec(
        &db.pool,
        &format!(
            "UPDATE organizations SET features = jsonb_set(COALESCE(features, '{{}}'::jsonb), \
             '{{runner_default}}', '\"go\"', true), updated_at = {} WHERE id = 'o_flip'",
            at(flip)
        ),
    )
    .await;
    sc.until("the flip", |s| !s.flips().is_empty()).await;
    let f = sc.flips()[0].clone();
    assert_eq!(
        (f.org.as_str(), f.from, f.to, f.at),
        ("o_flip", Runner::Ts, Runner::Go, Timestamp(flip))
    );
    // dispatches around the flip: ts before it and within the 30 s grace agree, ts after drifts
    sc.dispatch("before", Some("o_flip"), Runner::Ts, flip - 10_000);
    sc.dispatch("in_grace", Some("o_flip"), Runner::Ts, flip + 10_000);
    sc.dispatch("after_grace", Some("o_flip"), Runner::Ts, flip + 40_000);
    sc.dispatch("go_after", Some("o_flip"), Runner::Go, flip + 50_000);
    assert_eq!(sc.drifts(), [("after_grace", Runner::Go, Runner::Ts)]);
    let orgs = sc.platform.orgs(sc.clock.now());
    let o = orgs.iter().find(|o| o.org == "o_flip").unwrap();
    assert_eq!(o.expected_runner, Some("go"));
    assert_eq!(o.go_share_last_hour, Some(0.25));
    assert_eq!(o.last_flip.as_ref().map(|f| f.to), Some("go"));
    sc.more_snapshots(3).await;
    assert_eq!(sc.flips().len(), 1, "a flip is found once");

    // a malformed opt-in: ts, and a finding
    exec(
        &db.pool,
        "UPDATE organizations SET features = features || '{\"runner_default\": \"Go\"}', \
         updated_at = now() WHERE id = 'o_bad'",
    )
    .await;
    sc.until("the malformed flag", |s| {
        s.events.iter().any(
            |e| matches!(e, PlatformEvent::MalformedFlag(m) if m.org == "o_bad" && m.raw == "\"Go\""),
        )
    })
    .await;
    assert_eq!(
        sc.metric(r#"claimcheck_org_flag_malformed{org="o_bad"}"#),
        Some(1.0)
    );
    assert_eq!(
        sc.metric(r#"claimcheck_org_expected_runner{org="o_bad",runner="ts"}"#),
        Some(1.0)
    );
    assert_eq!(sc.flips().len(), 1, "malformed is ts: no flip");

    // rollback (option A of the guide), then a deleted row
    exec(
        &db.pool,
        "UPDATE organizations SET features = features - 'runner_default', updated_at = now() \
         WHERE id = 'o_flip'",
    )
    .await;
    sc.until("the rollback", |s| s.flips().len() == 2).await;
    assert_eq!(
        (sc.flips()[1].from, sc.flips()[1].to),
        (Runner::Go, Runner::Ts)
    );
    exec(&db.pool, "DELETE FROM organizations WHERE id = 'o_del'").await;
    sc.until("the deleted row", |s| s.flips().len() == 3).await;
    let del = sc.flips()[2].clone();
    assert_eq!(
        (del.org.as_str(), del.to, del.cause),
        ("o_del", Runner::Ts, FlipCause::RowDeleted)
    );
    sc.more_snapshots(2).await;
    assert_eq!(sc.flips().len(), 3);
    assert_eq!(sc.metric(r#"claimcheck_flips_total{to="go"}"#), Some(1.0));
    assert_eq!(sc.metric(r#"claimcheck_flips_total{to="ts"}"#), Some(2.0));
    assert_eq!(
        sc.metric(r#"claimcheck_flag_drift_total{dispatched="ts",expected="go",org="o_flip"}"#),
        Some(1.0)
    );

    // restart from the saved book; o_flip is flipped again while the sidecar is away
    let saved = sc.stop().await;
    let saved: SavedBook = serde_json::from_str(&serde_json::to_string(&saved).unwrap()).unwrap();
    exec(
        &db.pool,
        "UPDATE organizations SET features = '{\"runner_default\": \"go\"}', updated_at = now() \
         WHERE id = 'o_flip'",
    )
    .await;
    let mut sc = Sidecar::start(&cfg, Some(saved), hour_ago);
    sc.until("the first polls after the restart", |s| s.snapshots >= 3)
        .await;
    let flips: Vec<_> = sc.flips().iter().map(|f| (f.org.clone(), f.to)).collect();
    assert_eq!(
        flips,
        [("o_flip".to_owned(), Runner::Go)],
        "the flip made while away is found, none is repeated"
    );
    assert_eq!(sc.platform.book().flips_of("o_flip").len(), 3);
    sc.stop().await;
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_missing_from_logs_and_orgs_of_unnamed_dispatches() {
    let db = TestDb::create().await;
    let t0 = now_ms();
    insert_org(
        &db.pool,
        "o1",
        r#"{"runner_default": "go"}"#,
        t0 - 3_600_000,
    )
    .await;
    let cfg = config(Some(db.readonly_url()), None);
    let mut sc = Sidecar::start(&cfg, None, t0 - 1000);
    for (id, status) in [
        ("s_logged", "running"),
        ("s_unnamed", "running"),
        ("s_lost", "queued"),
        ("s_cancelled", "cancelled"),
    ] {
        insert_session(&db.pool, id, status, "o1", t0).await;
    }
    sc.dispatch("s_logged", Some("o1"), Runner::Go, t0 + 100);
    // a ts dispatch whose line names no org: Postgres names it, and the flag says go
    sc.dispatch("s_unnamed", None, Runner::Ts, t0 + 100);
    sc.dispatch("s_nobody", None, Runner::Go, t0 + 100);
    sc.until("the org lookups", |s| {
        s.events
            .iter()
            .filter(|e| matches!(e, PlatformEvent::SessionOrg { .. }))
            .count()
            == 2
    })
    .await;
    assert!(sc.events.contains(&PlatformEvent::SessionOrg {
        session: "s_unnamed".into(),
        org: Some("o1".into())
    }));
    assert!(sc.events.contains(&PlatformEvent::SessionOrg {
        session: "s_nobody".into(),
        org: None
    }));
    sc.until("the drift check", |s| !s.drifts().is_empty())
        .await;
    assert_eq!(sc.drifts(), [("s_unnamed", Runner::Go, Runner::Ts)]);

    sc.until("the missing session", |s| !s.missing().is_empty())
        .await;
    let waited = sc.clock.now().millis() - t0;
    assert!(waited >= 1500, "not before the grace: {waited} ms");
    sc.more_snapshots(5).await;
    assert_eq!(
        sc.missing(),
        ["s_lost"],
        "once, and cancelled is not expected"
    );
    assert_eq!(
        sc.metric("claimcheck_sessions_missing_from_logs_total"),
        Some(1.0)
    );
    // its line turns up late: resolved, still counted once
    sc.dispatch("s_lost", Some("o1"), Runner::Go, t0 + 2000);
    assert!(sc.events.contains(&PlatformEvent::MissingResolved {
        session: "s_lost".into()
    }));
    sc.stop().await;
    db.drop().await;
}

/// Every key under `prefix` with its type, value and whether it expires.
async fn redis_keys(con: &mut redis::aio::MultiplexedConnection, prefix: &str) -> Vec<String> {
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(con)
        .await
        .unwrap();
    keys.sort();
    let mut out = Vec::new();
    for k in keys {
        let t: String = redis::cmd("TYPE").arg(&k).query_async(con).await.unwrap();
        let v: Vec<String> = match t.as_str() {
            "zset" => redis::cmd("ZRANGE")
                .arg(&k)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query_async(con)
                .await
                .unwrap(),
            "hash" => redis::cmd("HGETALL")
                .arg(&k)
                .query_async(con)
                .await
                .unwrap(),
            _ => vec![redis::cmd("GET").arg(&k).query_async(con).await.unwrap()],
        };
        let ttl: i64 = redis::cmd("PTTL").arg(&k).query_async(con).await.unwrap();
        out.push(format!("{k} {t} {v:?} expires={}", ttl > 0));
    }
    out
}

/// Queues `items` (id, runner, queuedAt ms) the way the platform's queue code does.
async fn enqueue(
    con: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
    items: &[(&str, &str, i64)],
) {
    for (id, runner, queued) in items {
        let json = format!(
            r#"{{"sessionId":"{id}","organizationId":"o1","resolvedProfile":{{"runner":"{runner}","authMode":"host-session"}},"queuedAt":{queued}}}"#
        );
        let _: () = redis::cmd("HSET")
            .arg(format!("{prefix}work:items"))
            .arg(id)
            .arg(json)
            .query_async(con)
            .await
            .unwrap();
        let _: () = redis::cmd("ZADD")
            .arg(format!("{prefix}work:queue"))
            .arg(*queued as f64)
            .arg(id)
            .query_async(con)
            .await
            .unwrap();
    }
}

async fn claim(con: &mut redis::aio::MultiplexedConnection, prefix: &str, id: &str, worker: &str) {
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}work:claim:{id}"))
        .arg(worker)
        .arg("NX")
        .arg("EX")
        .arg(3600)
        .query_async(con)
        .await
        .unwrap();
}

async fn redis_con(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unclaimed_go_work_in_the_queue_and_claim_witnesses_change_no_key() {
    let url = "redis://127.0.0.1:6379/";
    let prefix = format!("{}:", unique("cc_queue"));
    let mut con = redis_con(url).await;
    let t0 = now_ms();
    enqueue(
        &mut con,
        &prefix,
        &[
            ("g1", "go", t0 - 200_000),
            ("g2", "go", t0 - 100_000),
            ("g3", "go", t0 - 5_000),
            ("t1", "ts", t0 - 1_000),
        ],
    )
    .await;
    claim(&mut con, &prefix, "s_claimed", "go-worker-7").await;
    let before = redis_keys(&mut con, &prefix).await;
    assert_eq!(before.len(), 3);

    let cfg = config(None, Some((url.into(), prefix.clone())));
    let mut sc = Sidecar::start(&cfg, None, t0);
    sc.until("queue figures", |s| {
        s.queue.is_some() && s.up("redis") == Some(true)
    })
    .await;
    let q = sc.queue.clone().unwrap();
    assert_eq!(
        (
            q.total,
            q.runner(Runner::Go).depth,
            q.runner(Runner::Ts).depth
        ),
        (4, 3, 1)
    );
    let age = q.oldest_age_seconds(Runner::Go);
    assert!(
        (200.0..230.0).contains(&age),
        "go work waiting ~200 s: {age}"
    );
    assert_eq!(
        sc.metric(r#"claimcheck_queue_depth{runner="go"}"#),
        Some(3.0)
    );
    assert!(
        sc.metric(r#"claimcheck_queue_oldest_age_seconds{runner="go"}"#)
            .unwrap()
            >= 200.0
    );
    assert_eq!(sc.up("redis"), Some(true));

    // two overdue sessions: one whose claim line was lost, one nobody holds
    assert!(sc.platform.on_overdue("s_claimed"));
    assert!(sc.platform.on_overdue("s_lost"));
    sc.until("both witnesses", |s| s.witnesses().len() == 2)
        .await;
    let mut w = sc.witnesses();
    w.sort();
    assert_eq!(w, [("s_claimed", Some("go-worker-7")), ("s_lost", None)]);
    assert_eq!(
        sc.metric(r#"claimcheck_claims_witnessed_total{source="redis"}"#),
        Some(1.0)
    );
    sc.stop().await;

    assert_eq!(
        redis_keys(&mut con, &prefix).await,
        before,
        "no platform key changed"
    );
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut con)
        .await
        .unwrap();
    let _: () = redis::cmd("DEL")
        .arg(keys)
        .query_async(&mut con)
        .await
        .unwrap();
}

/// The Redis ACL rules the README gives (after `ACL SETUSER claimcheck on >password`).
const README_ACL: &str = "~work:* resetchannels -@all +time +zcard +zrange +hmget +get +ping";

/// `MONITOR` on a server of the test's own: every command claimcheck sends is a read, and it
/// runs as a user that may not send anything else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_read_commands_reach_redis() {
    let server = RedisServer::start();
    let mut con = redis_con(&server.url()).await;
    let t0 = now_ms();
    enqueue(&mut con, "", &[("g1", "go", t0 - 1000), ("t1", "ts", t0)]).await;
    claim(&mut con, "", "g0", "w1").await;
    // the README's ACL: read commands on the queue keys, nothing else
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("claimcheck")
        .arg("reset")
        .arg("on")
        .arg(">s3cret")
        .arg(README_ACL.split_whitespace().collect::<Vec<_>>())
        .query_async(&mut con)
        .await
        .unwrap();
    drop(con);

    let url = format!("redis://claimcheck:s3cret@127.0.0.1:{}/", server.port);
    let mut as_claimcheck = redis_con(&url).await;
    let refused: redis::RedisResult<()> = redis::cmd("SET")
        .arg("work:queue")
        .arg("x")
        .query_async(&mut as_claimcheck)
        .await;
    assert!(refused.is_err(), "the ACL refuses writes");
    drop(as_claimcheck);

    let mut monitor = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    monitor.write_all(b"MONITOR\r\n").unwrap();
    let mut lines = BufReader::new(monitor.try_clone().unwrap());
    let mut first = String::new();
    lines.read_line(&mut first).unwrap();
    assert_eq!(first.trim_end(), "+OK");
    let reader =
        std::thread::spawn(move || lines.lines().map_while(Result::ok).collect::<Vec<String>>());

    let cfg = config(None, Some((url, String::new())));
    let mut sc = Sidecar::start(&cfg, None, t0);
    sc.platform.on_overdue("g0");
    sc.until("the witness and the queue", |s| {
        s.witnesses().len() == 1 && s.queue.as_ref().is_some_and(|q| q.total == 2)
    })
    .await;
    sc.stop().await;
    monitor.shutdown(std::net::Shutdown::Both).unwrap();
    let seen = reader.join().unwrap();

    let allowed = [
        "AUTH",
        "TIME",
        "ZCARD",
        "ZRANGE",
        "HMGET",
        "GET",
        "PING",
        "CLIENT SETINFO",
    ];
    let mut commands = std::collections::BTreeSet::new();
    for line in &seen {
        // +1700000000.123456 [0 127.0.0.1:5555] "ZRANGE" "work:queue" "0" ...
        let Some((_, args)) = line.split_once("] ") else {
            continue;
        };
        let words: Vec<&str> = args.split('"').filter(|w| !w.trim().is_empty()).collect();
        let cmd = words.first().unwrap().to_ascii_uppercase();
        let cmd = if cmd == "CLIENT" {
            format!("CLIENT {}", words.get(1).unwrap().to_ascii_uppercase())
        } else {
            cmd
        };
        assert!(allowed.contains(&cmd.as_str()), "{cmd} sent: {line}");
        commands.insert(cmd);
    }
    for read in ["TIME", "ZCARD", "ZRANGE", "HMGET", "GET"] {
        assert!(commands.contains(read), "{read} not seen in {commands:?}");
    }
}
