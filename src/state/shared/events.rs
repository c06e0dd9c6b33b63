//! Storing a batch of events in the shared state: grouped by bucket, one `apply.lua` call per
//! bucket, the calls sent together; what comes back is, per event, whether it was new.
//!
//! Whether an event is an exact re-delivery is decided by the server, per record, inside a
//! script: two replicas that deliver the same event at the same moment (a replica killed
//! before its checkpoint re-sends what it had stored) store it once and exactly one of them
//! is told it was new.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use futures_util::future::try_join_all;
use redis::Script;

use super::conn::Redis;
use super::keys::{BUCKETS, Keys, daemon_bucket, session_bucket};
use super::memo::{Memo, Step};
use super::record::Canonical;
use crate::event::{Event, EventKind, Origin, Timestamp};
use crate::report::Totals;
use crate::state::StateError;

static APPLY: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("apply.lua")));

/// One bucket's share of a batch: its keys (counters first), its argument groups and the
/// positions in the batch of the events they stand for.
#[derive(Debug, Default)]
struct Call {
    keys: Vec<String>,
    args: Vec<String>,
    positions: Vec<usize>,
}

impl Call {
    fn key_index(&mut self, key: String) -> usize {
        // A bucket's share of a batch touches a handful of keys: a scan beats a map.
        match self.keys.iter().position(|k| *k == key) {
            Some(i) => i + 1,
            None => {
                self.keys.push(key);
                self.keys.len()
            }
        }
    }

    fn push(&mut self, position: usize, op: &str, key: String, field: String, value: String) {
        self.push_arrival(position, op, key, field, value, None);
    }

    /// A session's record, with its arrivals key and id (see `apply.lua`).
    fn push_arrival(
        &mut self,
        position: usize,
        op: &str,
        key: String,
        field: String,
        value: String,
        arrival: Option<(String, &str)>,
    ) {
        let i = self.key_index(key);
        let (a, id) = match arrival {
            Some((key, id)) => (self.key_index(key), id.to_owned()),
            None => (0, String::new()),
        };
        self.args.extend([
            op.to_owned(),
            i.to_string(),
            field,
            value,
            a.to_string(),
            id,
        ]);
        self.positions.push(position);
    }
}

/// Stores `events` received at `now`; returns, for each in order, whether it was new evidence
/// (`false`: an exact re-delivery, nothing changed). A new record of a session is left as an
/// arrival for the rules to take in (`judge.rs`).
pub async fn store(
    redis: &Redis,
    keys: &Keys,
    memo: &mut Memo,
    events: &[(Event, Origin)],
    now: Timestamp,
) -> Result<Vec<bool>, StateError> {
    let mut calls: BTreeMap<u16, Call> = BTreeMap::new();
    for (position, (ev, origin)) in events.iter().enumerate() {
        let rec = Canonical::of(ev, *origin);
        match &ev.session {
            Some(id) if ev.kind != EventKind::Heartbeat => {
                let b = session_bucket(id);
                let call = calls.entry(b).or_insert_with(|| new_call(keys, b));
                call.push_arrival(
                    position,
                    "r",
                    keys.records(b, id),
                    rec.field(),
                    rec.value(),
                    Some((keys.arrivals(b, id), id.as_str())),
                );
            }
            // Events without a session are deduplicated per daemon, as heartbeats.
            _ => {
                let worker = ev.worker.as_deref();
                let b = daemon_bucket(ev.runner, worker);
                let call = calls.entry(b).or_insert_with(|| new_call(keys, b));
                let key = keys.heartbeats(b, ev.runner, worker);
                call.push(
                    position,
                    "h",
                    key,
                    ev.time.millis().to_string(),
                    String::new(),
                );
            }
        }
    }
    // The same events sent again (a retried batch) are the same call: its token is kept
    // until the caller says the whole batch was taken (`Memo::taken`), so a batch stored and
    // then failed at a later step is told, sent again, what it was told the first time.
    let tokens: Vec<String> = calls
        .iter()
        .map(|(&b, call)| memo.token(Step::Apply, b, &call.args))
        .collect();
    let field = memo.field(Step::Apply);
    let field = field.as_str();
    let answers = redis
        .call("apply", |conn| {
            try_join_all(calls.values().zip(&tokens).map(move |(call, token)| {
                let mut conn = conn.clone();
                async move {
                    let mut inv = APPLY.prepare_invoke();
                    for k in &call.keys {
                        inv.key(k);
                    }
                    inv.arg(now.millis()).arg(field).arg(token);
                    for a in &call.args {
                        inv.arg(a);
                    }
                    inv.invoke_async::<Vec<i64>>(&mut conn).await
                }
            }))
        })
        .await?;
    let mut fresh = vec![false; events.len()];
    for (call, answer) in calls.values().zip(answers) {
        if answer.len() != call.positions.len() {
            return Err(StateError::Unavailable(format!(
                "apply: {} answers for {} events",
                answer.len(),
                call.positions.len()
            )));
        }
        for (&p, a) in call.positions.iter().zip(answer) {
            fresh[p] = a == 1;
        }
    }
    Ok(fresh)
}

fn new_call(keys: &Keys, b: u16) -> Call {
    Call {
        keys: vec![keys.counts(b), keys.arriving(b), keys.memo(b)],
        ..Call::default()
    }
}

/// The shared counters summed over every bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Distinct events stored.
    pub events: u64,
    /// Exact re-deliveries dropped.
    pub redelivered: u64,
    /// Sessions whose records are held.
    pub sessions: u64,
    /// Dispatched sessions waiting for a first claim, not overdue.
    pub pending: u64,
    /// Dispatched sessions overdue and still unclaimed.
    pub overdue: u64,
    /// The cumulative totals of every replica's judgements, in `Totals::CUMULATIVE`'s order.
    pub cumulative: [u64; 11],
    /// Pending then overdue sessions by runner, in [`RUNNER_GAUGES`]' order.
    pub by_runner: [u64; 6],
}

/// The pending and overdue gauges kept per runner beside their sums (the cluster-wide
/// `claimcheck_cluster_{pending,unclaimed}_sessions{runner}`), in [`runner_index`] order.
pub const RUNNER_GAUGES: [&str; 6] = [
    "pending_go",
    "pending_ts",
    "pending_other",
    "overdue_go",
    "overdue_ts",
    "overdue_other",
];

/// A runner's place in [`RUNNER_GAUGES`]' groups of three.
pub fn runner_index(r: crate::event::Runner) -> usize {
    match r {
        crate::event::Runner::Go => 0,
        crate::event::Runner::Ts => 1,
        crate::event::Runner::Other => 2,
    }
}

/// Reads and sums every bucket's counters (one `HMGET` per bucket, sent together).
pub async fn counts(redis: &Redis, keys: &Keys) -> Result<Counts, StateError> {
    let each = redis
        .call("counts", |conn| {
            try_join_all((0..BUCKETS).map(move |b| {
                let mut conn = conn.clone();
                let key = keys.counts(b);
                async move {
                    redis::cmd("HMGET")
                        .arg(key)
                        .arg(&["events", "redelivered", "sessions", "pending", "overdue"])
                        .arg(&Totals::CUMULATIVE)
                        .arg(&RUNNER_GAUGES)
                        .query_async::<[Option<i64>; 22]>(&mut conn)
                        .await
                }
            }))
        })
        .await?;
    // Gauges are kept as deltas from several replicas: a negative bucket is a bucket whose
    // increments another bucket holds, so only the sum is clamped.
    let sum = |i: usize| -> u64 {
        let s: i64 = each.iter().map(|c| c[i].unwrap_or(0)).sum();
        u64::try_from(s).unwrap_or(0)
    };
    Ok(Counts {
        events: sum(0),
        redelivered: sum(1),
        sessions: sum(2),
        pending: sum(3),
        overdue: sum(4),
        cumulative: std::array::from_fn(|i| sum(5 + i)),
        by_runner: std::array::from_fn(|i| sum(16 + i)),
    })
}

/// A session's stored records, as written (unordered).
pub async fn records(
    redis: &Redis,
    keys: &Keys,
    id: &crate::event::SessionId,
) -> Result<Vec<Canonical>, StateError> {
    let key = keys.records(session_bucket(id), id);
    let map: Vec<(String, String)> = redis
        .call("records", |mut conn| async move {
            redis::cmd("HGETALL").arg(key).query_async(&mut conn).await
        })
        .await?;
    map.iter()
        .map(|(f, v)| Canonical::parse(f, v).map_err(|e| StateError::Corrupt(e.to_string())))
        .collect()
}
