//! A followed file is idle only once its follower says it has read to the end: one that is
//! merely slow (its lines queued behind a slow commit, or not read yet) holds judgements back
//! however long the sidecar's clock runs. Tokio time is paused: the clock is the test's.

use std::time::Duration;

use claimcheck::clock::Clock;
use claimcheck::correlate::live::LiveConfig;
use claimcheck::event::{Runner, Timestamp};
use claimcheck::parse::Parser;
use claimcheck::serve::Actor;
use claimcheck::sources::batch::{Batch, LineBuf};
use tokio_util::sync::CancellationToken;

const DISPATCH: &str = r#"{"event":"dispatch","sessionId":"a","organizationId":"org_a","resolvedProfile":{"runner":"go"},"time":"2026-11-23T10:00:00Z"}"#;
const CLAIM: &str =
    r#"{"event":"claimed","sessionId":"a","workerId":"g1","time":"2026-11-23T10:00:02Z"}"#;

/// Lets the actor run until `ready` holds of the published summary (a bounded number of turns).
async fn settles(
    summary: &mut tokio::sync::watch::Receiver<claimcheck::serve::Summary>,
    ready: impl Fn(u64) -> bool,
) -> bool {
    for _ in 0..200 {
        tokio::task::yield_now().await;
        if ready(summary.borrow_and_update().matched) {
            return true;
        }
    }
    false
}

#[tokio::test(start_paused = true)]
async fn a_followed_file_not_read_yet_is_never_idle_whatever_the_clock() {
    let registry = prometheus::Registry::new();
    let config = LiveConfig {
        idle_after_ms: 2_000,
        max_hold_ms: 3_600_000,
        ..LiveConfig::default()
    };
    let (mut actor, mut summary) = Actor::new(
        Parser::new(Default::default()),
        config,
        &registry,
        Clock::starting_at(Timestamp(1_795_428_000_000)),
        200,
    )
    .unwrap();
    // Two followed files: the claims', and one the follower has not got to yet.
    actor
        .catching_up(["claims.log".to_owned(), "slow.log".to_owned()])
        .await;
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let (_query_tx, query_rx) = tokio::sync::mpsc::channel(16);
    let stop = CancellationToken::new();
    let run = tokio::spawn(actor.run(rx, query_rx, stop.clone()));

    let mut b = Batch::new(
        "claims.log",
        Some(Runner::Go),
        [DISPATCH, CLAIM].into_iter().collect(),
    );
    b.backlog = false;
    tx.send(b).await.unwrap();
    // A minute on the sidecar's clock, thirty times the idle timeout: the slow file still has
    // not said it reached its end, so the session waits for its evidence.
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(
        !settles(&mut summary, |matched| matched > 0).await,
        "judged while a followed file was still to be read"
    );
    // The follower reaches the end of the slow file: it says so, and goes idle 2 s later.
    let mut end = Batch::new("slow.log", None, LineBuf::default());
    end.backlog = false;
    tx.send(end).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(
        !settles(&mut summary, |matched| matched > 0).await,
        "idle before source_idle_after"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        settles(&mut summary, |matched| matched == 1).await,
        "judged once every source settled: {:?}",
        *summary.borrow()
    );
    stop.cancel();
    let _ = run.await;
}
