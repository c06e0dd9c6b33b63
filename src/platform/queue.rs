//! The platform's Redis queue, read-only: depth and age of the oldest item by runner from
//! `work:queue` (sorted set, score = priority·1e13 + queuedAt ms) and `work:items` (hash
//! sessionId → QueuedWork JSON), and `work:claim:<sessionId>` (the worker holding a session)
//! as a second witness of a claim.
//!
//! Only read commands are ever sent (`TIME`, `ZCARD`, `ZRANGE`, `HMGET`, `GET`); the
//! platform's keys are never written, and a test proves it with `MONITOR`. [`tally`] is pure.

use redis::aio::MultiplexedConnection;
use serde_json::Value;

use super::PlatformError;
use super::config::RedisConfig;
use crate::event::{Runner, Timestamp};

/// Queued work for one runner.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunnerQueue {
    pub depth: u64,
    pub oldest_queued_at: Option<Timestamp>,
}

/// The queue at one moment (Redis server time, so the platform's and the sidecar's clocks
/// do not enter the age).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub at: Timestamp,
    /// Members of the sorted set (exact).
    pub total: u64,
    /// Members read (the oldest `max_scan`); by-runner figures cover these.
    pub scanned: u64,
    /// Members with no item in the hash (taken between the two reads, or a platform bug).
    pub without_item: u64,
    /// Indexed by `Runner::index()`: go, ts, other. An item with no `resolvedProfile.runner`
    /// is legacy ts; an item that is not JSON counts as other.
    pub by_runner: [RunnerQueue; 3],
}

impl QueueStats {
    pub fn runner(&self, r: Runner) -> RunnerQueue {
        self.by_runner[r.index()]
    }

    /// Seconds the oldest item for `r` has waited (0 when there is none; clamped at 0).
    pub fn oldest_age_seconds(&self, r: Runner) -> f64 {
        self.runner(r).oldest_queued_at.map_or(0.0, |q| {
            (self.at.millis() - q.millis()).max(0) as f64 / 1000.0
        })
    }
}

/// `queuedAt` as epoch ms (a number, a numeric string, or RFC 3339).
fn queued_at(v: &Value) -> Option<Timestamp> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.parse::<i64>().ok().or_else(|| {
            chrono::DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|t| t.timestamp_millis())
        }),
        _ => None,
    }
    .map(Timestamp)
}

/// The score's queuedAt part (score = priority·1e13 + queuedAt ms).
fn score_time(score: f64) -> Timestamp {
    Timestamp((score.rem_euclid(1e13)) as i64)
}

/// Figures from what was read: `members` (id, score) in score order and their items.
pub fn tally(
    at: Timestamp,
    total: u64,
    members: &[(String, f64)],
    items: &[Option<String>],
) -> QueueStats {
    let mut s = QueueStats {
        at,
        total,
        scanned: members.len() as u64,
        ..QueueStats::default()
    };
    for (i, (_, score)) in members.iter().enumerate() {
        let Some(Some(raw)) = items.get(i) else {
            s.without_item += 1;
            continue;
        };
        let (runner, queued) = match serde_json::from_str::<Value>(raw) {
            Ok(item) => {
                let runner = match item.pointer("/resolvedProfile/runner") {
                    None | Some(Value::Null) => Runner::Ts,
                    Some(Value::String(r)) => Runner::from_value(r),
                    Some(_) => Runner::Other,
                };
                (runner, item.get("queuedAt").and_then(queued_at))
            }
            Err(_) => (Runner::Other, None),
        };
        let queued = queued.unwrap_or_else(|| score_time(*score));
        let q = &mut s.by_runner[runner.index()];
        q.depth += 1;
        q.oldest_queued_at = Some(q.oldest_queued_at.map_or(queued, |o| o.min(queued)));
    }
    s
}

/// Reads the queue: `TIME`, `ZCARD`, `ZRANGE 0 max_scan-1 WITHSCORES`, then `HMGET` in chunks.
pub async fn queue_stats(
    con: &mut MultiplexedConnection,
    cfg: &RedisConfig,
) -> Result<QueueStats, PlatformError> {
    let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(con).await?;
    let at = Timestamp(secs * 1000 + micros / 1000);
    let total: u64 = redis::cmd("ZCARD").arg(&cfg.queue).query_async(con).await?;
    let last = i64::try_from(cfg.max_scan).unwrap_or(i64::MAX) - 1;
    let members: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg(&cfg.queue)
        .arg(0)
        .arg(last)
        .arg("WITHSCORES")
        .query_async(con)
        .await?;
    let mut items: Vec<Option<String>> = Vec::with_capacity(members.len());
    for chunk in members.chunks(500) {
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(&cfg.items);
        for (id, _) in chunk {
            cmd.arg(id);
        }
        let got: Vec<Option<String>> = cmd.query_async(con).await?;
        items.extend(got);
    }
    Ok(tally(at, total, &members, &items))
}

/// The worker holding `session`'s claim key, if any (`GET work:claim:<id>`).
pub async fn claim_witness(
    con: &mut MultiplexedConnection,
    cfg: &RedisConfig,
    session: &str,
) -> Result<Option<String>, PlatformError> {
    Ok(redis::cmd("GET")
        .arg(cfg.claim_key(session))
        .query_async(con)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_795_428_000_000;

    fn member(id: &str, priority: f64, queued: i64) -> (String, f64) {
        (id.into(), priority * 1e13 + queued as f64)
    }

    #[test]
    fn depth_and_oldest_age_by_runner() {
        let members = vec![
            member("g1", 0.0, T0 - 200_000),
            member("g2", 0.0, T0 - 10_000),
            member("t1", 0.0, T0 - 5_000),
            member("legacy", 0.0, T0 - 7_000),
            member("gone", 0.0, T0 - 1_000),
            member("junk", 1.0, T0 - 3_000),
            member("hi", 5.0, T0 - 60_000),
        ];
        let items = vec![
            Some(format!(
                r#"{{"sessionId":"g1","resolvedProfile":{{"runner":"go"}},"queuedAt":{}}}"#,
                T0 - 200_000
            )),
            Some(r#"{"sessionId":"g2","resolvedProfile":{"runner":"go"}}"#.to_owned()),
            Some(format!(
                r#"{{"resolvedProfile":{{"runner":"ts"}},"queuedAt":"{}"}}"#,
                Timestamp(T0 - 5_000).to_rfc3339()
            )),
            Some(r#"{"resolvedProfile":{}}"#.to_owned()),
            None,
            Some("not json".to_owned()),
            Some(r#"{"resolvedProfile":{"runner":"go"}}"#.to_owned()),
        ];
        let s = tally(Timestamp(T0), 9, &members, &items);
        assert_eq!((s.total, s.scanned, s.without_item), (9, 7, 1));
        assert_eq!(s.runner(Runner::Go).depth, 3);
        assert_eq!(s.oldest_age_seconds(Runner::Go), 200.0);
        assert_eq!(s.runner(Runner::Ts).depth, 2, "no runner = legacy ts");
        assert_eq!(s.oldest_age_seconds(Runner::Ts), 7.0);
        assert_eq!(s.runner(Runner::Other).depth, 1);
        assert_eq!(
            s.oldest_age_seconds(Runner::Other),
            3.0,
            "age from the score"
        );
    }

    #[test]
    fn an_empty_queue_has_no_age() {
        let s = tally(Timestamp(T0), 0, &[], &[]);
        assert_eq!(s.oldest_age_seconds(Runner::Go), 0.0);
        assert_eq!(s.runner(Runner::Go).depth, 0);
    }
}
