//! [`SharedState`]: the correlation-state port on Redis (standalone or Cluster), so several
//! sidecars correlate together and each outcome is counted once.
//!
//! A delivery goes: the source's news merged into the shared watermarks (the low watermark
//! comes back in the same call); what is due by its receive time judged first (as
//! `LocalState` ticks before a batch); its events stored (`events.rs`: re-deliveries told
//! apart by the server, new records left as arrivals); then a cycle (`judge.rs`) takes the
//! arrivals in and settles what the new low watermark allows. A tick takes the sweep leases
//! (`leases.rs`) and runs a cycle over the buckets it holds. Every change returned was
//! committed by this replica's compare-and-set, so summing the replicas' changes counts each
//! once.
//!
//! A record's origin is stored with its source's global id (`inputs.rs`) and read back as
//! this replica's input, or as another replica's source by name.
//!
//! Unlike the local state it has no session cap: memory is the server's, bounded by the
//! retention.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::conn::{Redis, Timeouts};
use super::events;
use super::inputs;
use super::judge::{self, At, Index, Names, Pass, Pending};
use super::keys::{BUCKETS, BadPrefix, Keys, session_bucket};
use super::leases;
use super::memo::Step;
use super::record::Canonical;
use super::watermarks::{self, News, Shared};
use crate::correlate::live::watermark::Watermarks;
use crate::correlate::live::{Change, LiveConfig};
use crate::correlate::{Interner, Record, Session};
use crate::event::{EventKind, Origin, Runner, SessionId, Timestamp};
use crate::state::{
    Applied, CorrelationState, Delivery, Fate, FeedCursor, FeedPage, SessionState, SourceWatermark,
    StateError, StateRecord, StateTotals,
};

/// How often, at most, a shared state asks to be ticked (see [`CorrelationState::next_due`]):
/// the schedule is in Redis, shared with the other replicas, so it is polled.
pub const POLL_MS: i64 = 1000;

/// Where the shared state is and who this replica is.
#[derive(Debug, Clone)]
pub struct SharedConfig {
    /// Seed nodes of a cluster, or one standalone URL.
    pub urls: Vec<String>,
    /// The key prefix: replicas that correlate together share it.
    pub prefix: String,
    /// This replica's name among those sharing the prefix (its sources are `instance/input`).
    pub instance: String,
    /// Every replica sharing the prefix, when known: nothing settles until each has
    /// published its sources once (`[cluster] instances`).
    pub instances: Vec<String>,
    pub timeouts: Timeouts,
    /// How long a sweep lease lasts unless renewed (a dead replica's buckets wait this long).
    pub lease: Duration,
    /// Whether a delivery waits for Redis replicas to have its writes before it returns.
    pub wait: Option<Wait>,
}

/// A delivery returns only once `replicas` Redis replicas of every master acknowledged its
/// writes (`WAIT`), within `timeout`; fewer, and it fails `Unavailable` (applying it again is
/// idempotent, and writes a counter, so the next `WAIT` covers the first attempt's writes too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait {
    pub replicas: u32,
    pub timeout: Duration,
}

/// The shared correlation state of one replica.
#[derive(Debug)]
pub struct SharedState {
    config: LiveConfig,
    redis: Redis,
    keys: Keys,
    instance: String,
    /// The replicas the evidence waits for until each has published its sources.
    instances: Vec<String>,
    lease: Duration,
    wait: Option<Wait>,
    names: Names,
    /// The latest clock reading it was given: the next poll is due after it.
    last_now: Option<Timestamp>,
    /// The buckets whose leases it took, and when (real time: leases expire on Redis's
    /// clock, not on the event or sidecar times it is given).
    leased: Option<(tokio::time::Instant, Vec<u16>)>,
    /// Its sources' global ids (`inputs.rs`), by its own input number.
    globals: BTreeMap<u16, u16>,
    /// The names its sources' lines are cited by, by its own input number.
    cited: BTreeMap<u16, String>,
    /// Since when it has heard from the servers without a break (`behind_after_outage`): a
    /// source's silence counts from then.
    heard: Timestamp,
    /// Its own sources published as behind when it got back in touch after losing the
    /// servers (`behind_after_outage`), each until its next batch says where it is or the
    /// caller says it has nothing waiting (`caught_up`).
    forced: BTreeSet<u16>,
    /// What each of its own sources last said of itself: behind (more to read) or not. A
    /// source published as behind after an outage is set back to it (`caught_up`): a
    /// followed file that starts behind stays so until it has read to the end.
    told: BTreeMap<u16, bool>,
    /// The connections opened (`Redis::opened`) when it last looked for an outage
    /// (`behind_after_outage`).
    looked: u64,
    /// What it committed and has not returned yet, and commits whose answers were lost.
    pending: Pending,
}

impl SharedState {
    /// A state on `shared`; nothing is connected until the first call.
    pub fn new(config: LiveConfig, shared: SharedConfig) -> Result<SharedState, BadPrefix> {
        let pending = Pending::new(&shared.instance);
        Ok(SharedState {
            config,
            redis: Redis::new(shared.urls, shared.timeouts),
            keys: Keys::new(&shared.prefix)?,
            instance: shared.instance,
            instances: shared.instances,
            lease: shared.lease,
            wait: shared.wait,
            names: Names::default(),
            last_now: None,
            leased: None,
            globals: BTreeMap::new(),
            cited: BTreeMap::new(),
            heard: Timestamp::MIN,
            forced: BTreeSet::new(),
            told: BTreeMap::new(),
            looked: 0,
            pending,
        })
    }

    fn source(&self, input: u16) -> String {
        format!("{}/{input}", self.instance)
    }

    /// Gives `inputs` their global ids, if they have none yet.
    async fn register(&mut self, inputs: &[u16]) -> Result<(), StateError> {
        let missing: BTreeSet<u16> = inputs
            .iter()
            .copied()
            .filter(|i| !self.globals.contains_key(i))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let sources: Vec<(String, Option<&str>)> = missing
            .iter()
            .map(|&i| (self.source(i), self.cited.get(&i).map(String::as_str)))
            .collect();
        let ids = inputs::register(&self.redis, &self.keys, &sources).await?;
        self.globals.extend(missing.into_iter().zip(ids));
        Ok(())
    }

    /// `origin` with its source's global id.
    fn global(&self, origin: Origin) -> Origin {
        Origin {
            input: self.globals.get(&origin.input).copied().unwrap_or(u16::MAX),
            line: origin.line,
        }
    }

    /// The shared watermarks as this replica judges by them at `now` (a replica that gave no
    /// sign of life for `max_hold` is dead: its sources said behind hold no judgement back,
    /// each session having waited its own `max_hold` meanwhile), and whether every replica
    /// it waits for has published its sources (until then nothing settles).
    fn rebuilt(&self, shared: &Shared, now: Timestamp) -> (Watermarks, bool) {
        let dead_before = now.saturating_add_ms(-self.config.max_hold_ms);
        (
            shared.rebuild(self.config.idle_after_ms, self.heard, dead_before),
            shared.joined(&self.instances),
        )
    }

    /// What the shared evidence has settled through (`Watermarks::settled`).
    fn low(&self, shared: &Shared, now: Timestamp) -> Timestamp {
        match self.rebuilt(shared, now) {
            (w, true) => w.settled(now),
            (_, false) => Timestamp::MIN,
        }
    }

    /// After a connection lost and opened again (the first is no outage), two things, so
    /// the replica that gets back first does not judge on its own evidence alone (false
    /// orphans, claims judged before their dispatch):
    /// - every source counts as heard `RETRY_MAX` after `now`: after an outage longer than
    ///   `idle_after` every source's last news is old, and the others get the longest wait
    ///   between two of their attempts, then `idle_after`, to be heard;
    /// - every source of its own is published as behind (never idle): its batches queued in
    ///   this process while the servers were away, unseen by the other replicas, and one
    ///   waiting behind another's must not be taken for idle. Each source's next batch
    ///   publishes where it really is; those that send none are set back to what they last
    ///   said when the caller says nothing waits (`caught_up`).
    ///
    /// `told`: a source whose news in this call already said where it is.
    async fn behind_after_outage(
        &mut self,
        now: Timestamp,
        told: Option<u16>,
    ) -> Result<(), StateError> {
        let opened = self.redis.opened();
        // The first connection is no outage: followed files start behind by `announce`.
        if opened <= 1 || opened == self.looked {
            self.looked = opened;
            return Ok(());
        }
        let retry = i64::try_from(crate::state::RETRY_MAX.as_millis()).unwrap_or(i64::MAX);
        self.heard = now.saturating_add_ms(retry);
        let behind: Vec<u16> = self
            .globals
            .keys()
            .copied()
            .filter(|&i| Some(i) != told)
            .collect();
        let news: Vec<News> = behind
            .iter()
            .map(|&i| News {
                source: self.source(i),
                high: None,
                now,
                backlog: Some(true),
            })
            .collect();
        if !news.is_empty() {
            watermarks::merge(&self.redis, &self.keys, &news).await?;
        }
        self.forced.extend(behind);
        self.looked = opened;
        Ok(())
    }

    fn clock(&mut self, now: Timestamp) {
        self.last_now = Some(self.last_now.map_or(now, |t| t.max(now)));
    }

    /// The buckets this replica holds the sweep lease of, and whether it (re)took them just
    /// now. Leases are taken or renewed once a third of their time has passed, not on every
    /// call: a sweep then costs no lease round trip, and a lease still has two thirds of its
    /// time when it is relied on. (That a session is judged once never rests on the lease:
    /// `judge.lua`'s compare-and-set.)
    async fn leased(&mut self) -> Result<(Vec<u16>, bool), StateError> {
        let now = tokio::time::Instant::now();
        if let Some((at, held)) = &self.leased
            && now.duration_since(*at) < self.lease / 3
        {
            return Ok((held.clone(), false));
        }
        let all: Vec<u16> = (0..BUCKETS).collect();
        let held =
            leases::acquire(&self.redis, &self.keys, &all, &self.instance, self.lease).await?;
        let held: Vec<u16> = all
            .into_iter()
            .zip(held)
            .filter_map(|(b, h)| h.then_some(b))
            .collect();
        self.leased = Some((now, held.clone()));
        Ok((held, true))
    }

    /// The buckets a tick sweeps at `now` under `low`: of those it holds, the ones the index
    /// says have work to do — or all of them when it just renewed its leases, the index's
    /// safety net (a bucket changed by a replica killed before it wrote the index waits at
    /// most a third of a lease).
    async fn sweep_due(&mut self, now: Timestamp, low: Timestamp) -> Result<Vec<u16>, StateError> {
        let (held, renewed) = self.leased().await?;
        if renewed {
            return Ok(held);
        }
        Ok(Index::read(&self.redis, &self.keys)
            .await?
            .busy(&held, now, low))
    }

    /// `WAIT`s until `w.replicas` replicas have this connection's writes: on a cluster the
    /// client sends it to every master and answers the least count.
    async fn replicated(&self, w: Wait) -> Result<(), StateError> {
        let ms = u64::try_from(w.timeout.as_millis()).unwrap_or(u64::MAX);
        let acked: i64 = self
            .redis
            .call("wait", |mut c| async move {
                redis::cmd("WAIT")
                    .arg(w.replicas)
                    .arg(ms)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        if acked < i64::from(w.replicas) {
            return Err(StateError::Unavailable(format!(
                "only {acked} of {} Redis replicas acknowledged the batch within {:?}",
                w.replicas, w.timeout
            )));
        }
        Ok(())
    }

    async fn cycle(
        &mut self,
        buckets: &[u16],
        now: Timestamp,
        low: Timestamp,
        pass: Pass,
    ) -> Result<judge::Judged, StateError> {
        let at = At { now, low, pass };
        let judged = judge::cycle(
            &self.redis,
            &self.keys,
            &self.config,
            &mut self.names,
            buckets,
            at,
            &mut self.pending,
        )
        .await?;
        if judged.fed > 0 {
            super::feed::appended(&self.redis, &self.keys).await?;
        }
        Ok(judged)
    }
}

impl CorrelationState for SharedState {
    async fn announce(&mut self, inputs: &[u16], now: Timestamp) -> Result<(), StateError> {
        self.clock(now);
        self.register(inputs).await?;
        let news: Vec<News> = inputs
            .iter()
            .map(|&i| News {
                source: self.source(i),
                high: None,
                now,
                backlog: Some(false),
            })
            .collect();
        watermarks::merge(&self.redis, &self.keys, &news).await?;
        Ok(())
    }

    async fn apply(&mut self, mut d: Delivery) -> Result<Applied, StateError> {
        self.clock(d.now);
        let mut own: Vec<u16> = d.events.iter().map(|(_, o)| o.input).collect();
        own.push(d.input);
        self.register(&own).await?;
        // Stored with global ids (`inputs.rs`); the caller's origins are its own.
        for (_, o) in &mut d.events {
            *o = self.global(*o);
        }
        // A source with events on their way is behind until they are stored: said caught up
        // before (the batch's own `backlog`, published only with its events below), another
        // replica could take it for idle while its store waits — the sidecar starved, the
        // call slow — and judge without its events.
        let delivering = !d.events.is_empty();
        let shared = match d.backlog {
            Some(backlog) => {
                let news = News {
                    source: self.source(d.input),
                    high: None,
                    now: d.now,
                    backlog: Some(backlog || delivering),
                };
                watermarks::merge(&self.redis, &self.keys, &[news]).await?
            }
            None => watermarks::read(&self.redis, &self.keys).await?,
        };
        // In touch again (the call above opened a connection if it had to).
        // Its own news (above) said where it is.
        let told = d.backlog.map(|_| d.input);
        self.behind_after_outage(d.now, told).await?;
        if let Some(backlog) = d.backlog {
            self.forced.remove(&d.input);
            self.told.insert(d.input, backlog);
        }
        let low = self.low(&shared, d.now);
        let due = self.sweep_due(d.now, low).await?;
        self.cycle(&due, d.now, low, Pass::Tick).await?;
        let fresh = events::store(
            &self.redis,
            &self.keys,
            &mut self.pending.memo,
            &d.events,
            d.now,
        )
        .await?;
        let high = d
            .events
            .iter()
            .zip(&fresh)
            .filter(|(_, f)| **f)
            .map(|((e, _), _)| e.time)
            .max();
        // Its events stored: where the source is now, and whether it is still behind.
        let caught_up = delivering && d.backlog == Some(false);
        let low = if high.is_some() || caught_up {
            let news = News {
                source: self.source(d.input),
                high,
                now: d.now,
                backlog: caught_up.then_some(false),
            };
            let shared = watermarks::merge(&self.redis, &self.keys, &[news]).await?;
            self.low(&shared, d.now)
        } else {
            low
        };
        let mut buckets = self.sweep_due(d.now, low).await?;
        for ((e, _), _) in d.events.iter().zip(&fresh).filter(|(_, f)| **f) {
            if let (Some(id), false) = (&e.session, e.kind == EventKind::Heartbeat) {
                buckets.push(session_bucket(id));
            }
        }
        buckets.sort_unstable();
        buckets.dedup();
        let mut judged = self.cycle(&buckets, d.now, low, Pass::Settle).await?;
        // Taken in by a commit of an earlier try of this batch whose answer came late.
        judged
            .first_dispatches
            .append(&mut self.pending.first_dispatches);
        let fates = d
            .events
            .iter()
            .zip(fresh)
            .map(|((e, origin), fresh)| {
                if !fresh {
                    return Fate::Redelivered;
                }
                let first_dispatch = e.kind == EventKind::Dispatch
                    && e.session.as_ref().is_some_and(|id| {
                        let field = Canonical::of(e, *origin).field();
                        judged.first_dispatches.contains(&(id.clone(), field))
                    });
                Fate::Accepted { first_dispatch }
            })
            .collect();
        if let Some(w) = self.wait {
            self.replicated(w).await?;
        }
        self.pending.memo.taken(Step::Apply);
        let changes = std::mem::take(&mut self.pending.carry);
        Ok(Applied { fates, changes })
    }

    async fn tick(&mut self, now: Timestamp) -> Result<Vec<Change>, StateError> {
        self.clock(now);
        let alive = News::alive(&self.instance, now);
        let shared = watermarks::merge(&self.redis, &self.keys, &[alive]).await?;
        self.behind_after_outage(now, None).await?;
        let low = self.low(&shared, now);
        let due = self.sweep_due(now, low).await?;
        self.cycle(&due, now, low, Pass::Tick).await?;
        // As a delivery: what it judged is returned (and emitted) once a replica has it, so a
        // failover cannot take back a judgement already counted.
        if let Some(w) = self.wait
            && !self.pending.carry.is_empty()
        {
            self.replicated(w).await?;
        }
        Ok(std::mem::take(&mut self.pending.carry))
    }

    async fn session(&self, id: &SessionId) -> Result<Option<SessionState>, StateError> {
        let mut records = events::records(&self.redis, &self.keys, id).await?;
        if records.is_empty() {
            return Ok(None);
        }
        records.sort_by(|a, b| {
            (a.time, a.kind, a.runner, &a.worker).cmp(&(b.time, b.kind, b.runner, &b.worker))
        });
        // Judged against the latest event time any source delivered, as the local state
        // judges against its correlator's.
        let shared = watermarks::read(&self.redis, &self.keys).await?;
        let sources = inputs::read(&self.redis, &self.keys).await?;
        let cited = inputs::names(&self.redis, &self.keys).await?;
        let own = format!("{}/", self.instance);
        // A stored origin's global id back to the name its replica cites the source by (the
        // same on every replica), else to this replica's input, or to another replica's
        // source as `instance/input`.
        let origin = |o: Origin| -> (Origin, Option<String>) {
            let name = sources.get(&o.input);
            if let Some(c) = cited.get(&o.input) {
                return (o, Some(c.clone()));
            }
            match name.and_then(|n| n.strip_prefix(&own)?.parse().ok()) {
                Some(input) => (
                    Origin {
                        input,
                        line: o.line,
                    },
                    None,
                ),
                None => (
                    o,
                    Some(name.cloned().unwrap_or_else(|| format!("#{}", o.input))),
                ),
            }
        };
        let latest = shared
            .sources
            .iter()
            .filter_map(|s| s.1)
            .max()
            .unwrap_or(Timestamp::MIN);
        let mut session = Session::default();
        let (mut orgs, mut workers) = (Interner::default(), Interner::default());
        for c in &records {
            let extra = match c.kind {
                EventKind::Dispatch => orgs.intern(c.name.as_deref()),
                _ => 0,
            };
            let worker = workers.intern(c.worker.as_deref());
            session.insert(Record::new(
                c.kind, c.runner, c.time, worker, extra, c.origin,
            ));
        }
        let timeouts = &self.config.correlate.timeouts;
        let j = session.judge(timeouts, latest);
        let org_name = |extra| orgs.name(extra).map(str::to_owned);
        Ok(Some(SessionState::judged(
            &j,
            org_name,
            records
                .into_iter()
                .map(|c| {
                    let (origin, source) = origin(c.origin);
                    StateRecord {
                        kind: c.kind,
                        runner: c.runner,
                        time: c.time,
                        worker: c.worker,
                        detail: match c.kind {
                            EventKind::Dispatch => None,
                            _ => c.name,
                        },
                        origin,
                        source,
                    }
                })
                .collect(),
        )))
    }

    async fn totals(&self) -> Result<StateTotals, StateError> {
        let c = events::counts(&self.redis, &self.keys).await?;
        Ok(StateTotals {
            sessions: c.sessions,
            pending: c.pending,
            overdue: c.overdue,
            events: c.events,
            redelivered: c.redelivered,
            evicted: 0,
            shared: Some(crate::report::Totals::from_cumulative(
                c.cumulative,
                c.pending,
                c.overdue,
            )),
            shared_by_runner: Some([Runner::Go, Runner::Ts, Runner::Other].map(|r| {
                let i = events::runner_index(r);
                (r, c.by_runner[i], c.by_runner[3 + i])
            })),
        })
    }

    async fn watermarks(
        &self,
        now: Timestamp,
    ) -> Result<(Vec<SourceWatermark>, Timestamp), StateError> {
        let shared = watermarks::read(&self.redis, &self.keys).await?;
        let (w, joined) = self.rebuilt(&shared, now);
        let low = if joined { w.low(now) } else { Timestamp::MIN };
        let own = format!("{}/", self.instance);
        // This replica's sources by their own input numbers; another replica's (issue 13:
        // origins across replicas) numbered down from the top, out of the way.
        let each = w
            .each(now)
            .map(|(i, high, active)| {
                let name = shared
                    .sources
                    .get(usize::from(i))
                    .map_or("", |s| s.0.as_str());
                let input = name
                    .strip_prefix(&own)
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(u16::MAX - i);
                SourceWatermark {
                    input,
                    high,
                    active,
                }
            })
            .collect();
        Ok((each, low))
    }

    async fn caught_up(&mut self, now: Timestamp) -> Result<(), StateError> {
        if self.forced.is_empty() {
            return Ok(());
        }
        let news: Vec<News> = self
            .forced
            .iter()
            .map(|&i| News {
                source: self.source(i),
                high: None,
                now,
                backlog: Some(self.told.get(&i).copied().unwrap_or(false)),
            })
            .collect();
        watermarks::merge(&self.redis, &self.keys, &news).await?;
        self.forced.clear();
        Ok(())
    }

    fn next_due(&self) -> Option<Timestamp> {
        self.last_now.map(|t| t.saturating_add_ms(POLL_MS))
    }

    fn retention_ms(&self) -> i64 {
        self.config.retention_ms
    }

    fn can_fail(&self) -> bool {
        true
    }

    fn name_source(&mut self, input: u16, name: &str) {
        self.cited.entry(input).or_insert_with(|| name.to_owned());
    }

    async fn feed(&self, cursor: &FeedCursor, full: bool) -> Result<Option<FeedPage>, StateError> {
        super::feed::read(&self.redis, &self.keys, cursor, full)
            .await
            .map(Some)
    }

    async fn publish(&self, findings: &[crate::store::FindingWrite]) -> Result<(), StateError> {
        super::feed::publish(&self.redis, &self.keys, self.config.retention_ms, findings).await
    }
}
