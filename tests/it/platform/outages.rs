//! Outages: throwaway servers killed, paused and restarted mid-run, a slow query, a misnamed
//! table. Each checks `dependency_up` and readiness move, that nothing false is raised while a
//! dependency is down, and that the figures catch up when it is back.

use std::time::Duration;

use claimcheck::event::{Runner, Timestamp};

use super::servers::{self, PgCluster, RedisServer};
use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_reads_down_then_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = RedisServer::start_in(dir.path());
    let mut con = redis_con(&server.url()).await;
    let t0 = now_ms();
    enqueue(&mut con, "", &[("g1", "go", t0 - 1000), ("g2", "go", t0)]).await;
    claim(&mut con, "", "s_held", "go-worker-9").await;
    // saved now, so the restarted server has it (automatic saves are off)
    let _: () = redis::cmd("SAVE").query_async(&mut con).await.unwrap();
    drop(con);

    let cfg = config(None, Some((server.url(), String::new())));
    let mut sc = Sidecar::start(&cfg, None, t0);
    sc.until("the queue", |s| {
        s.up("redis") == Some(true)
            && s.queue
                .as_ref()
                .is_some_and(|q| q.runner(Runner::Go).depth == 2)
    })
    .await;
    assert_eq!(
        sc.metric(r#"claimcheck_dependency_up{dependency="redis"}"#),
        Some(1.0)
    );

    let killed = std::time::Instant::now();
    server.kill();
    sc.until("redis down", |s| s.up("redis") == Some(false))
        .await;
    eprintln!("redis killed: down {:?} after the kill", killed.elapsed());
    assert_eq!(
        sc.metric(r#"claimcheck_dependency_up{dependency="redis"}"#),
        Some(0.0)
    );
    assert!(!sc.handle.readiness.borrow().ready());
    let err = sc
        .handle
        .readiness
        .borrow()
        .redis
        .clone()
        .unwrap()
        .last_error;
    assert!(err.is_some(), "the cause is shown");
    // asked while down: not answered with a false "nobody holds it", but held until Redis is back
    assert!(sc.platform.on_overdue("s_held"));
    let queue_polls = sc.queue.clone();
    sc.until("a few failed reconnects", |s| {
        s.handle
            .readiness
            .borrow()
            .redis
            .as_ref()
            .is_some_and(|r| r.failures >= 3)
    })
    .await;
    assert!(sc.witnesses().is_empty());
    assert_eq!(sc.queue, queue_polls, "no figures invented while down");

    let back = std::time::Instant::now();
    server.restart();
    sc.until("redis back and the witness answered", |s| {
        s.up("redis") == Some(true) && s.witnesses().len() == 1
    })
    .await;
    eprintln!(
        "redis restarted: up and the held witness answered {:?} after the start",
        back.elapsed()
    );
    assert_eq!(sc.witnesses(), [("s_held", Some("go-worker-9"))]);
    let mut con = redis_con(&server.url()).await;
    enqueue(&mut con, "", &[("g3", "go", now_ms())]).await;
    sc.until("the queue figures catching up", |s| {
        s.queue
            .as_ref()
            .is_some_and(|q| q.runner(Runner::Go).depth == 3)
    })
    .await;
    // (a first `false` is "not connected yet", if the test looked before the first poll)
    assert!(
        sc.up_history["redis"].ends_with(&[true, false, true]),
        "{:?}",
        sc.up_history
    );
    assert_eq!(
        sc.metric(r#"claimcheck_dependency_up{dependency="redis"}"#),
        Some(1.0)
    );
    assert!(sc.handle.readiness.borrow().ready());
    sc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_defers_drift_and_catches_up() {
    let pg = PgCluster::start();
    let admin = sqlx::PgPool::connect(&pg.url("postgres")).await.unwrap();
    exec(&admin, SCHEMA).await;
    let t0 = now_ms();
    insert_org(&admin, "o1", r#"{"runner_default": "go"}"#, t0 - 3_600_000).await;
    admin.close().await;

    let cfg = config(Some(pg.url("postgres")), None);
    let mut sc = Sidecar::start(&cfg, None, t0 - 1000);
    sc.until("the baseline", |s| {
        s.snapshots >= 1 && s.up("postgres") == Some(true)
    })
    .await;

    let killed = std::time::Instant::now();
    pg.kill();
    sc.until("postgres down", |s| s.up("postgres") == Some(false))
        .await;
    eprintln!(
        "postgres killed: down {:?} after `pg_ctl stop -m immediate` began",
        killed.elapsed()
    );
    assert_eq!(
        sc.metric(r#"claimcheck_dependency_up{dependency="postgres"}"#),
        Some(0.0)
    );
    // dispatched while the flag cannot be read: deferred, not judged on the stale "go"
    let d = now_ms();
    sc.dispatch("a_ts", Some("o1"), Runner::Ts, d);
    sc.dispatch("b_go", Some("o1"), Runner::Go, d);
    sc.until("a few failed reconnects", |s| {
        s.handle
            .readiness
            .borrow()
            .postgres
            .as_ref()
            .is_some_and(|r| r.failures >= 3)
    })
    .await;
    assert!(sc.drifts().is_empty(), "nothing raised while down");
    assert_eq!(sc.platform.waiting_checks(), 2);

    // meanwhile the org was rolled back to ts a minute before those dispatches, and a session
    // was created that no log line will ever show (done on a side port the sidecar cannot see)
    let side = servers::free_port();
    pg.restart_on(side);
    let side_pool =
        sqlx::PgPool::connect(&format!("postgres://postgres@127.0.0.1:{side}/postgres"))
            .await
            .unwrap();
    exec(
        &side_pool,
        &format!(
            "UPDATE organizations SET features = jsonb_set(features, '{{runner_default}}', '\"ts\"', true), \
             updated_at = {} WHERE id = 'o1'",
            at(d - 60_000)
        ),
    )
    .await;
    insert_session(&side_pool, "a_ts", "running", "o1", d - 500).await;
    insert_session(&side_pool, "lost", "queued", "o1", d - 500).await;
    side_pool.close().await;
    pg.kill_on(side);
    let back = std::time::Instant::now();
    pg.restart();
    sc.until("postgres back, the flip and the checks", |s| {
        s.up("postgres") == Some(true) && !s.flips().is_empty() && s.platform.waiting_checks() == 0
    })
    .await;
    eprintln!(
        "postgres restarted: up, flip found, deferred drift judged {:?} after `pg_ctl start` began",
        back.elapsed()
    );
    assert_eq!(
        (sc.flips()[0].to, sc.flips()[0].at),
        (Runner::Ts, Timestamp(d - 60_000))
    );
    assert_eq!(
        sc.drifts(),
        [("b_go", Runner::Ts, Runner::Go)],
        "only the dispatch that really disagreed with the flag at its time"
    );
    sc.until("the missing session", |s| !s.missing().is_empty())
        .await;
    assert_eq!(sc.missing(), ["lost"]);
    assert!(
        sc.up_history["postgres"].ends_with(&[true, false, true]),
        "{:?}",
        sc.up_history
    );
    assert_eq!(
        sc.metric(r#"claimcheck_dependency_up{dependency="postgres"}"#),
        Some(1.0)
    );
    sc.stop().await;
}

/// A blackholed Redis (SIGSTOP: connected, silent) fails calls at the deadline instead of
/// hanging the task; when it answers again, so does claimcheck.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_redis_fails_at_the_deadline_and_recovers() {
    let server = RedisServer::start();
    let mut con = redis_con(&server.url()).await;
    let t0 = now_ms();
    enqueue(&mut con, "", &[("g1", "go", t0)]).await;
    claim(&mut con, "", "s_held", "go-worker-3").await;
    drop(con);
    let cfg = config(None, Some((server.url(), String::new())));
    let mut sc = Sidecar::start(&cfg, None, t0);
    sc.until("redis up", |s| {
        s.up("redis") == Some(true) && s.queue.is_some()
    })
    .await;
    server.pause();
    let paused = std::time::Instant::now();
    sc.until("redis down", |s| s.up("redis") == Some(false))
        .await;
    let took = paused.elapsed();
    eprintln!("redis paused: down after {took:?}");
    // one poll interval plus the 2 s queue deadline (4 x call_timeout), with room for a slow CI
    assert!(took < Duration::from_secs(6), "detected after {took:?}");
    let err = sc
        .handle
        .readiness
        .borrow()
        .redis
        .clone()
        .unwrap()
        .last_error
        .unwrap();
    assert!(
        err.contains("no answer within") || err.contains("timed out"),
        "{err}"
    );
    assert!(sc.platform.on_overdue("s_held"));
    server.resume();
    sc.until("redis back and the witness", |s| {
        s.up("redis") == Some(true) && !s.witnesses().is_empty()
    })
    .await;
    assert_eq!(sc.witnesses(), [("s_held", Some("go-worker-3"))]);
    sc.stop().await;
}

/// A query slower than the call timeout is cancelled by the server (`statement_timeout`), and
/// counts as the dependency being down: no snapshot, so nothing judged on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_flag_query_is_cancelled_by_the_statement_timeout() {
    let db = TestDb::create().await;
    insert_org(&db.pool, "o1", r#"{"runner_default": "go"}"#, now_ms()).await;
    let slow = format!(
        "CREATE VIEW slow_orgs AS SELECT o.* FROM organizations o, pg_sleep(3);
         GRANT SELECT ON slow_orgs TO {};",
        db.role
    );
    exec(&db.pool, &slow).await;
    let mut cfg = config(Some(db.readonly_url()), None);
    if let Some(pg) = cfg.postgres.as_mut() {
        pg.organizations.table =
            claimcheck::platform::config::Ident::new("table", "slow_orgs").unwrap();
    }
    let mut sc = Sidecar::start(&cfg, None, now_ms());
    sc.until("the first failure", |s| {
        s.handle
            .readiness
            .borrow()
            .postgres
            .as_ref()
            .is_some_and(|p| p.failures >= 1)
    })
    .await;
    let err = sc
        .handle
        .readiness
        .borrow()
        .postgres
        .clone()
        .unwrap()
        .last_error
        .unwrap();
    assert!(err.contains("statement timeout"), "{err}");
    assert_eq!(sc.snapshots, 0);
    assert_eq!(
        sc.metric(r#"claimcheck_dependency_up{dependency="postgres"}"#),
        Some(0.0)
    );
    sc.stop().await;
    db.drop().await;
}

/// A half-working integration (the sessions table is misnamed) is down, with the cause, and
/// does not flap: the flags that can be read still arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misnamed_table_keeps_the_dependency_down_with_its_cause() {
    let db = TestDb::create().await;
    insert_org(&db.pool, "o1", "{}", now_ms()).await;
    let mut cfg = config(Some(db.readonly_url()), None);
    if let Some(pg) = cfg.postgres.as_mut() {
        pg.sessions.table =
            claimcheck::platform::config::Ident::new("table", "agent_session").unwrap();
    }
    let mut sc = Sidecar::start(&cfg, None, now_ms());
    sc.until("three snapshots", |s| s.snapshots >= 3).await;
    assert_eq!(
        sc.up_history["postgres"],
        [false],
        "never up, never flapping"
    );
    let err = sc
        .handle
        .readiness
        .borrow()
        .postgres
        .clone()
        .unwrap()
        .last_error
        .unwrap();
    assert!(err.contains("agent_session"), "{err}");
    sc.stop().await;
    db.drop().await;
}
