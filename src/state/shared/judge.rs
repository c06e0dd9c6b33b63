//! Judging sessions of the shared state with the in-process rules (`correlate::live::rules`):
//! one cycle finds the sessions with work to do (`sweep.lua`: due on the sidecar's clock,
//! settled under the low watermark, or with arrivals), loads their marks, records and
//! arrivals (`load.lua`), runs the rules in Rust, and commits each session by a
//! compare-and-set on its mark's version (`judge.lua`). Each step is one script call per
//! bucket, the calls sent together.
//!
//! Which buckets a cycle sweeps is its caller's choice, helped by the index (`index.lua`):
//! each sweep and commit answers with its bucket's summary (a version moved by every commit,
//! the earliest due and settle keys, the sessions with arrivals), and a cycle writes them in
//! one call, so [`Index::busy`] names the buckets with work to do without asking each one.
//!
//! A session's changes are returned only when its commit won: of two replicas that judged it
//! from the same state, one commits and emits, the other reloads and finds nothing left to
//! say. So each change is emitted once across replicas. A commit whose answer was lost (it
//! may have run) is kept and sent again as it was before the next cycle commits anything
//! (`memo.rs`): answered as the first time, its won changes are the replica's to emit.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use futures_util::future::{join_all, try_join_all};
use redis::Script;

use super::conn::Redis;
use super::events;
use super::keys::Keys;
use super::mark;
use super::memo::{Memo, Step};
use super::record::Canonical;
use crate::correlate::Interner;
use crate::correlate::live::watermark::END_OF_TIME;
use crate::correlate::live::{Arrival, Change, LiveConfig, Mark, Rules, Schedule, Slot};
use crate::correlate::{Record, Session};
use crate::event::{EventKind, SessionId, Timestamp};
use crate::report::Totals;
use crate::state::StateError;

static SWEEP: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("sweep.lua")));
static LOAD: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("load.lua")));
static JUDGE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("judge.lua")));
static INDEX: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("index.lua")));

/// A bucket's work as a sweep or a commit last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Moved by every commit in the bucket: of two summaries the later one wins.
    pub version: u64,
    /// The earliest key on the sidecar's clock and on event time.
    pub due: Option<Timestamp>,
    pub settle: Option<Timestamp>,
    /// Sessions with arrivals not yet taken in.
    pub arriving: u64,
}

impl Summary {
    /// From a script's answer: version, due, settle ('' for none), arriving.
    fn parse(raw: &[String]) -> Result<Summary, StateError> {
        let bad = || StateError::Corrupt(format!("bucket summary {raw:?}"));
        let time = |s: &str| -> Result<Option<Timestamp>, StateError> {
            match s {
                "" => Ok(None),
                // Scores come back as Redis formats doubles; event and clock times are whole
                // milliseconds below 2^53, exact either way.
                s => s
                    .parse::<f64>()
                    .map(|f| Some(Timestamp(f as i64)))
                    .map_err(|_| bad()),
            }
        };
        match raw {
            [v, due, settle, arriving] => Ok(Summary {
                version: v.parse().map_err(|_| bad())?,
                due: time(due)?,
                settle: time(settle)?,
                arriving: arriving.parse().map_err(|_| bad())?,
            }),
            _ => Err(bad()),
        }
    }

    /// Whether a sweep at `now` under `low` would find work (as `sweep.lua` looks).
    fn busy(&self, now: Timestamp, low: Timestamp) -> bool {
        self.arriving > 0
            || self.due.is_some_and(|d| d <= now)
            || self.settle.is_some_and(|s| s <= low)
    }

    fn encode(&self) -> [String; 4] {
        let t = |t: Option<Timestamp>| t.map_or(String::new(), |t| t.millis().to_string());
        [
            self.version.to_string(),
            t(self.due),
            t(self.settle),
            self.arriving.to_string(),
        ]
    }
}

/// Every bucket's summary as the replicas last wrote it (`index.lua`). A hint: a bucket
/// changed by a replica killed before it wrote the summary is found by a full sweep.
#[derive(Debug, Clone, Default)]
pub struct Index(BTreeMap<u16, Summary>);

impl Index {
    pub async fn read(redis: &Redis, keys: &Keys) -> Result<Index, StateError> {
        let key = keys.index();
        let all: Vec<(u16, String)> = redis
            .call("index", |mut conn| async move {
                redis::cmd("HGETALL").arg(key).query_async(&mut conn).await
            })
            .await?;
        let mut index = BTreeMap::new();
        for (b, v) in all {
            let raw: Vec<String> = v.split('|').map(str::to_owned).collect();
            index.insert(b, Summary::parse(&raw)?);
        }
        Ok(Index(index))
    }

    /// Of `buckets`, those with work to do at `now` under `low`, and those without a summary
    /// yet (nothing is known of them).
    pub fn busy(&self, buckets: &[u16], now: Timestamp, low: Timestamp) -> Vec<u16> {
        buckets
            .iter()
            .copied()
            .filter(|b| self.0.get(b).is_none_or(|s| s.busy(now, low)))
            .collect()
    }
}

/// Writes `summaries` into the index, in one call.
async fn write_index(
    redis: &Redis,
    keys: &Keys,
    summaries: &BTreeMap<u16, Summary>,
) -> Result<(), StateError> {
    if summaries.is_empty() {
        return Ok(());
    }
    let mut inv = INDEX.prepare_invoke();
    inv.key(keys.index());
    for (b, s) in summaries {
        inv.arg(b);
        for part in s.encode() {
            inv.arg(part);
        }
    }
    redis
        .call("index", |mut conn| async move {
            inv.invoke_async::<i64>(&mut conn).await
        })
        .await?;
    Ok(())
}

/// How often a session that lost its compare-and-set is reloaded and judged again within one
/// cycle; past it, it waits for the next cycle (its arrivals and schedule stay stored).
const ATTEMPTS: usize = 8;

/// What a cycle does besides taking arrivals in and settling: a tick also sweeps deadlines and
/// expiries (as `Live::on_tick`; `Live::on_event` only settles).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    Settle,
    Tick,
}

/// The names the rules and the records need, interned in this replica (ids are local: only
/// names cross to Redis).
#[derive(Debug, Default)]
pub struct Names {
    pub orgs: Interner,
    pub workers: Interner,
}

/// What a cycle committed (its changes go to the caller's carry: see [`cycle`]).
#[derive(Debug, Default)]
pub struct Judged {
    /// The arrivals whose first dispatch of a session this replica took in:
    /// (session, record identity).
    pub first_dispatches: BTreeSet<(SessionId, String)>,
    /// Sessions still lost after every attempt (left for the next cycle).
    pub lost: usize,
    /// Feed entries its commits appended.
    pub fed: usize,
}

/// What a replica holds between cycles: what it committed but has not returned yet, and the
/// commits whose answers it has not had.
#[derive(Debug)]
pub struct Pending {
    /// Changes this replica committed in a call that then failed (a later step, a `WAIT`):
    /// they are in Redis and counted there, so they are returned with the next call that
    /// succeeds — only this replica can emit them.
    pub carry: Vec<Change>,
    /// First dispatches taken in by commits whose answers came late (with a later cycle):
    /// the batch that held them, sent again, is told of them.
    pub first_dispatches: BTreeSet<(SessionId, String)>,
    /// By bucket, the decisions of a commit whose answer was lost.
    unsure: BTreeMap<u16, Vec<Decision>>,
    pub memo: Memo,
}

impl Pending {
    /// Nothing pending yet, for the replica named `instance`.
    pub fn new(instance: &str) -> Pending {
        Pending {
            carry: Vec::new(),
            first_dispatches: BTreeSet::new(),
            unsure: BTreeMap::new(),
            memo: Memo::new(instance),
        }
    }
}

/// One session as loaded: its mark (with version), records and arrivals.
struct Loaded {
    id: SessionId,
    mark: Option<(u64, Mark)>,
    records: Vec<(String, Canonical)>,
    /// (receive time, position in its batch, identity, its record unless it is gone: its
    /// session was forgotten since, and the arrival is dropped with the commit).
    arrivals: Vec<(Timestamp, u32, String, Option<Canonical>)>,
}

/// What the rules decided for one session.
#[derive(Debug)]
struct Decision {
    id: SessionId,
    version: Option<u64>,
    /// `None`: forget the session.
    mark: Option<Mark>,
    due: Option<Timestamp>,
    settle: Option<Timestamp>,
    /// The bucket's counters moved by its changes: the pending and overdue gauges, and the
    /// cumulative totals of every replica (`Totals::count`).
    counts: Vec<(&'static str, i64)>,
    taken: Vec<String>,
    changes: Vec<Change>,
    /// Its feed entry (`feed.rs`), appended with the commit.
    feed: Option<String>,
    first_dispatches: Vec<String>,
}

impl Decision {
    /// Its commit won: its changes are this replica's to return (`carry`), and its first
    /// dispatches are told to the batch that held them (`first`).
    fn won(self, carry: &mut Vec<Change>, first: &mut BTreeSet<(SessionId, String)>) {
        carry.extend(self.changes);
        let id = self.id;
        first.extend(self.first_dispatches.into_iter().map(|f| (id.clone(), f)));
    }
}

/// When a cycle runs: the sidecar's clock, the low watermark, and what it sweeps.
#[derive(Debug, Clone, Copy)]
pub struct At {
    pub now: Timestamp,
    pub low: Timestamp,
    pub pass: Pass,
}

/// One cycle over `buckets`.
pub async fn cycle(
    redis: &Redis,
    keys: &Keys,
    config: &LiveConfig,
    names: &mut Names,
    buckets: &[u16],
    at: At,
    pending: &mut Pending,
) -> Result<Judged, StateError> {
    let At { now, low, pass } = at;
    let keep = config.retention_ms;
    if !pending.unsure.is_empty() {
        // Answered now as they were then, or run now: their sessions' states are as they
        // left them, or changed since (and lost, to be swept again).
        let unsure = std::mem::take(&mut pending.unsure);
        let answers = commit(redis, keys, &mut pending.memo, &unsure, keep).await;
        let mut failed = None;
        for ((b, ds), answer) in unsure.into_iter().zip(answers) {
            match answer {
                Ok((won, _)) => {
                    for (d, won) in ds.into_iter().zip(won) {
                        if won {
                            d.won(&mut pending.carry, &mut pending.first_dispatches);
                        }
                    }
                }
                Err(e) => {
                    failed.get_or_insert(e);
                    pending.unsure.insert(b, ds);
                }
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
    }
    let (mut todo, mut summaries) = sweep(redis, keys, buckets, now, low).await?;
    let mut judged = Judged::default();
    for _ in 0..ATTEMPTS {
        if todo.is_empty() {
            break;
        }
        let loaded = load(redis, keys, &todo).await?;
        let mut decisions: BTreeMap<u16, Vec<Decision>> = BTreeMap::new();
        for (b, sessions) in loaded {
            let d = sessions
                .into_iter()
                .map(|l| decide(config, names, l, now, low, pass))
                .collect();
            decisions.insert(b, d);
        }
        // The feed is kept as long as a session is: what a replica away longer misses is
        // reported as a gap.
        let won = commit(redis, keys, &mut pending.memo, &decisions, keep).await;
        todo = BTreeMap::new();
        let mut failed = None;
        for ((b, ds), won) in decisions.into_iter().zip(won) {
            let won = match won {
                Ok((won, summary)) => {
                    summaries.insert(b, summary);
                    won
                }
                Err(e) => {
                    // It may have run: sent again before anything else (above).
                    failed.get_or_insert(e);
                    pending.unsure.insert(b, ds);
                    continue;
                }
            };
            for (d, won) in ds.into_iter().zip(won) {
                if won {
                    judged.fed += usize::from(d.feed.is_some());
                    d.won(&mut pending.carry, &mut judged.first_dispatches);
                } else {
                    todo.entry(b).or_insert_with(Vec::new).push(d.id);
                }
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
    }
    judged.lost = todo.values().map(Vec::len).sum();
    write_index(redis, keys, &summaries).await?;
    Ok(judged)
}

/// A sweep's answer: each bucket's sessions with work to do, and each bucket's summary.
type Swept = (BTreeMap<u16, Vec<SessionId>>, BTreeMap<u16, Summary>);

/// Each bucket's sessions with work to do.
async fn sweep(
    redis: &Redis,
    keys: &Keys,
    buckets: &[u16],
    now: Timestamp,
    low: Timestamp,
) -> Result<Swept, StateError> {
    let found = redis
        .call("sweep", |conn| {
            try_join_all(buckets.iter().map(move |&b| {
                let mut conn = conn.clone();
                async move {
                    SWEEP
                        .key(keys.due(b))
                        .key(keys.settle(b))
                        .key(keys.arriving(b))
                        .key(keys.counts(b))
                        .arg(now.millis())
                        .arg(low.millis())
                        .invoke_async::<(Vec<String>, Vec<String>, Vec<String>, Vec<String>)>(
                            &mut conn,
                        )
                        .await
                }
            }))
        })
        .await?;
    let (mut todo, mut summaries) = (BTreeMap::new(), BTreeMap::new());
    for (&b, (due, settle, arriving, summary)) in buckets.iter().zip(found) {
        summaries.insert(b, Summary::parse(&summary)?);
        let ids: BTreeSet<String> = due.into_iter().chain(settle).chain(arriving).collect();
        let ids: Vec<SessionId> = ids.iter().filter_map(|s| SessionId::new(s)).collect();
        if !ids.is_empty() {
            todo.insert(b, ids);
        }
    }
    Ok((todo, summaries))
}

type Raw = (String, Vec<(String, String)>, Vec<(String, String)>);

/// The marks, records and arrivals of `todo`'s sessions.
async fn load(
    redis: &Redis,
    keys: &Keys,
    todo: &BTreeMap<u16, Vec<SessionId>>,
) -> Result<Vec<(u16, Vec<Loaded>)>, StateError> {
    let raw = redis
        .call("load", |conn| {
            try_join_all(todo.iter().map(move |(&b, ids)| {
                let mut conn = conn.clone();
                async move {
                    let mut inv = LOAD.prepare_invoke();
                    inv.key(keys.marks(b));
                    for id in ids {
                        inv.key(keys.records(b, id)).key(keys.arrivals(b, id));
                        inv.arg(id.as_str());
                    }
                    inv.invoke_async::<Vec<Raw>>(&mut conn).await
                }
            }))
        })
        .await?;
    let corrupt = |e: &dyn std::fmt::Display| StateError::Corrupt(e.to_string());
    let mut out = Vec::with_capacity(todo.len());
    for ((&b, ids), raw) in todo.iter().zip(raw) {
        if raw.len() != ids.len() {
            return Err(StateError::Unavailable(format!(
                "load: {} answers for {} sessions",
                raw.len(),
                ids.len()
            )));
        }
        let mut sessions = Vec::with_capacity(ids.len());
        for (id, (m, records, arrivals)) in ids.iter().zip(raw) {
            let mark = match m.as_str() {
                "" => None,
                m => Some(mark::decode(m).map_err(|e| corrupt(&e))?),
            };
            let records = records
                .into_iter()
                .map(|(f, v)| {
                    let c = Canonical::parse(&f, &v).map_err(|e| corrupt(&e))?;
                    Ok((f, c))
                })
                .collect::<Result<Vec<_>, StateError>>()?;
            let mut taken = Vec::with_capacity(arrivals.len());
            for (f, v) in arrivals {
                let bad = || StateError::Corrupt(format!("arrival {f:?} = {v:?}"));
                let (at, pos) = v.split_once(':').ok_or_else(bad)?;
                let at = Timestamp(at.parse().map_err(|_| bad())?);
                let pos: u32 = pos.parse().map_err(|_| bad())?;
                let c = records
                    .iter()
                    .find(|(rf, _)| *rf == f)
                    .map(|(_, c)| c.clone());
                taken.push((at, pos, f, c));
            }
            taken.sort_by(|a, b| (a.0, a.1, &a.2).cmp(&(b.0, b.1, &b.2)));
            sessions.push(Loaded {
                id: id.clone(),
                mark,
                records,
                arrivals: taken,
            });
        }
        out.push((b, sessions));
    }
    Ok(out)
}

fn record(names: &mut Names, c: &Canonical) -> Record {
    let worker = names.workers.intern(c.worker.as_deref());
    let extra = match c.kind {
        EventKind::Dispatch => names.orgs.intern(c.name.as_deref()),
        // The rules read only a dispatch's name (its org).
        _ => 0,
    };
    Record::new(c.kind, c.runner, c.time, worker, extra, c.origin)
}

/// Runs the rules on one loaded session, as `Live` runs them on one of its own: its
/// arrivals taken in one by one (in the order they were received), then what has settled
/// by `low` and is due by `now`.
fn decide(
    config: &LiveConfig,
    names: &mut Names,
    l: Loaded,
    now: Timestamp,
    low: Timestamp,
    pass: Pass,
) -> Decision {
    let arriving: BTreeSet<&str> = l.arrivals.iter().map(|a| a.2.as_str()).collect();
    let base: Vec<Record> = l
        .records
        .iter()
        .filter(|(f, _)| !arriving.contains(f.as_str()))
        .map(|(_, c)| record(names, c))
        .collect();
    // (receive time, identity, its record interned and as stored, unless gone).
    type Taken = (Timestamp, String, Option<(Record, Canonical)>);
    let arrivals: Vec<Taken> = l
        .arrivals
        .into_iter()
        .map(|(at, _, f, c)| (at, f, c.map(|c| (record(names, &c), c))))
        .collect();
    let rules = Rules {
        config,
        orgs: &names.orgs,
    };
    let mut session = Session::default();
    for r in base {
        session.insert(r);
    }
    let version = l.mark.as_ref().map(|(v, _)| *v);
    // The shared marks do not keep which dispatch the rows were written with: every
    // judgement made here sets a row's dispatch columns again, as the feed's do.
    let mut mark = l.mark.map(|(_, m)| Mark { refile: true, ..m });
    let mut out = Vec::new();
    let mut first_dispatches = Vec::new();
    let mut taken = Vec::with_capacity(arrivals.len());
    for (at, field, r) in arrivals {
        taken.push(field.clone());
        let Some((rec, c)) = r else { continue };
        session.insert(rec);
        let m = mark.get_or_insert_with(|| Mark {
            refile: true,
            ..rules.new_mark(at)
        });
        let before = out.len();
        let org = (c.kind == EventKind::Dispatch)
            .then_some(c.name.as_deref())
            .flatten();
        let arrival = Arrival {
            kind: c.kind,
            runner: c.runner,
            time: c.time,
            org,
        };
        rules.on_record(m, &l.id, &session, arrival, at, &mut out);
        if out[before..]
            .iter()
            .any(|c| matches!(c, Change::Dispatched { .. }))
        {
            first_dispatches.push(field);
        }
    }
    let mut forget = mark.is_none();
    if let Some(m) = mark.as_mut() {
        let through = low.saturating_add_ms(-config.allowed_lateness_ms);
        let s = rules.schedule(m);
        let due = |slot: Slot, at: Timestamp| s.0[slot as usize].is_some_and(|k| k <= at);
        // In `Live::settle`'s order: settle, hold, orphan settle, orphan hold.
        if due(Slot::Settle, low) {
            Slot::Settle.clear(m);
            rules.evaluate(m, &l.id, &session, through, false, &mut out);
        }
        if rules.schedule(m).0[Slot::Hold as usize].is_some_and(|k| k <= now) {
            Slot::Hold.clear(m);
            rules.evaluate(m, &l.id, &session, END_OF_TIME, true, &mut out);
        }
        if due(Slot::OrphanSettle, low) {
            Slot::OrphanSettle.clear(m);
            rules.orphan(m, &l.id, &session, false, &mut out);
        }
        if rules.schedule(m).0[Slot::OrphanHold as usize].is_some_and(|k| k <= now) {
            Slot::OrphanHold.clear(m);
            rules.orphan(m, &l.id, &session, true, &mut out);
        }
        if pass == Pass::Tick {
            if due(Slot::Deadline, now) {
                Slot::Deadline.clear(m);
                rules.deadline(m, &l.id, &session, &mut out);
            }
            if due(Slot::Expiry, now) {
                rules.forget(m, &l.id, &mut out);
                out.push(Change::Forgotten {
                    session: l.id.clone(),
                });
                forget = true;
            }
        }
    }
    let counts = counts(&out);
    let feed = super::feed::encode(&out, now);
    let schedule = mark.as_ref().map(|m| rules.schedule(m)).unwrap_or_default();
    Decision {
        id: l.id,
        version,
        mark: if forget { None } else { mark },
        due: earliest(schedule, false),
        settle: earliest(schedule, true),
        counts,
        taken,
        changes: out,
        feed,
        first_dispatches,
    }
}

/// The earliest key of the slots on event time (`true`) or on the sidecar's clock.
fn earliest(s: Schedule, event_time: bool) -> Option<Timestamp> {
    Slot::ALL
        .into_iter()
        .filter(|slot| slot.on_event_time() == event_time)
        .filter_map(|slot| s.0[slot as usize])
        .min()
}

/// The counters `changes` move, those that do not stay as they were: the pending and overdue
/// gauges, and the cumulative totals counted as `serve`'s telemetry counts them.
fn counts(changes: &[Change]) -> Vec<(&'static str, i64)> {
    // pending, overdue, then each by runner (`events::RUNNER_GAUGES`' order)
    let mut gauges = [0i64; 8];
    let mut totals = Totals::default();
    for c in changes {
        totals.count(c);
        let (gauge, runner, delta) = match c {
            Change::PendingStarted { runner } => (0, runner, 1),
            Change::PendingEnded { runner } => (0, runner, -1),
            Change::Overdue { runner, .. } => (1, runner, 1),
            Change::OverdueResolved { runner, .. } | Change::OverdueForgotten { runner, .. } => {
                (1, runner, -1)
            }
            _ => continue,
        };
        gauges[gauge] += delta;
        gauges[2 + 3 * gauge + events::runner_index(*runner)] += delta;
    }
    let cumulative = Totals::CUMULATIVE
        .into_iter()
        .zip(totals.cumulative())
        .map(|(name, n)| (name, i64::try_from(n).unwrap_or(i64::MAX)));
    ["pending", "overdue"]
        .into_iter()
        .chain(events::RUNNER_GAUGES)
        .zip(gauges)
        .chain(cumulative)
        .filter(|(_, n)| *n != 0)
        .collect()
}

/// Commits every decision; per bucket (in order), per session, whether it won, and the
/// bucket's summary after — or why the bucket's call failed. A bucket's answer stands
/// whatever became of the others: its judgements are committed, and only the replica
/// holding their changes can emit them.
async fn commit(
    redis: &Redis,
    keys: &Keys,
    memo: &mut Memo,
    decisions: &BTreeMap<u16, Vec<Decision>>,
    keep_ms: i64,
) -> Vec<Result<(Vec<bool>, Summary), StateError>> {
    let field = memo.field(Step::Judge);
    let calls: Vec<(u16, Vec<String>, Vec<String>, String)> = decisions
        .iter()
        .map(|(&b, ds)| {
            let (keys, args) = call(keys, b, ds);
            let token = memo.token(Step::Judge, b, &args);
            (b, keys, args, token)
        })
        .collect();
    let conn = match redis.conn().await {
        Ok(c) => c,
        Err(e) => {
            return decisions
                .keys()
                .map(|_| Err(StateError::Unavailable(e.to_string())))
                .collect();
        }
    };
    let answers = join_all(calls.iter().map(|(_, call_keys, args, token)| {
        let mut conn = conn.clone();
        let field = field.as_str();
        async move {
            let mut inv = JUDGE.prepare_invoke();
            for k in call_keys {
                inv.key(k);
            }
            inv.arg(keep_ms).arg(field).arg(token);
            for a in args {
                inv.arg(a);
            }
            inv.invoke_async::<(Vec<i64>, Vec<String>)>(&mut conn).await
        }
    }))
    .await;
    if answers.iter().any(Result::is_err) {
        // The next call opens a fresh connection (`conn.rs`).
        redis.forget();
    }
    calls
        .iter()
        .zip(decisions.values())
        .zip(answers)
        .map(|(((b, ..), ds), a)| {
            let a = a.map_err(|e| StateError::Unavailable(format!("judge: {e}")))?;
            memo.answered(Step::Judge, *b);
            match a {
                (a, _) if a.len() != ds.len() => Err(StateError::Unavailable(format!(
                    "judge: {} answers for {} sessions",
                    a.len(),
                    ds.len()
                ))),
                (a, summary) => Ok((
                    a.into_iter().map(|x| x == 1).collect(),
                    Summary::parse(&summary)?,
                )),
            }
        })
        .collect()
}

/// One bucket's commit: its keys, and its arguments after the memo's (see `judge.lua`).
fn call(keys: &Keys, b: u16, ds: &[Decision]) -> (Vec<String>, Vec<String>) {
    let mut k = vec![
        keys.marks(b),
        keys.due(b),
        keys.settle(b),
        keys.counts(b),
        keys.arriving(b),
        keys.feed(b),
        keys.memo(b),
    ];
    let mut args = Vec::new();
    let score = |t: Option<Timestamp>| t.map_or(String::new(), |t| t.millis().to_string());
    for d in ds {
        k.push(keys.records(b, &d.id));
        k.push(keys.arrivals(b, &d.id));
        let next = d.version.map_or(0, |v| v + 1);
        args.extend([
            d.id.as_str().to_owned(),
            d.version.map_or(String::new(), |v| v.to_string()),
            d.mark
                .as_ref()
                .map_or(String::new(), |m| mark::encode(next, m)),
            score(d.due),
            score(d.settle),
            d.feed.clone().unwrap_or_default(),
            d.counts.len().to_string(),
        ]);
        for (name, delta) in &d.counts {
            args.extend([(*name).to_owned(), delta.to_string()]);
        }
        args.push(d.taken.len().to_string());
        args.extend(d.taken.iter().cloned());
    }
    (k, args)
}
