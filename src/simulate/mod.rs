//! simulate: a realistic, reproducible platform workload with its ground truth (PRODUCT.md §3).
//!
//! In: a [`SimConfig`] (sessions, seed, claim timeout). Out: four log files in every line
//! shape `parse` accepts — dispatches in `dispatch.log` and a Vercel drain, claims in a Go
//! daemon log and a TS worker log, with heartbeats, releases, noise, re-deliveries, broken
//! lines and the injected faults of §2 — plus `truth.json`, the [`Truth`] a correct verifier
//! must report. The truth is tallied from the *planned* events, never by running the parser.
//!
//! Same seed and size give byte-identical files: one ChaCha8 stream drives every choice, and
//! nothing iterates a hash map. Memory stays flat in N: lines go straight to buffered files;
//! only worker events not yet due (a ten-minute window) wait in a heap.
//!
//! The timeline: dispatches start at `2026-11-23T08:00:00Z`, about ten a second. The evidence
//! ends at E = last ordinary dispatch + T + 15 min, and a heartbeat is stamped exactly E, so
//! the verifier's watermark is E. The last sessions (about 0.1%) are dispatched in the final T
//! before E and never claimed: they are pending, not unclaimed.

mod dispatch;
mod lines;
mod model;
mod noise;
mod truth;
mod workers;
mod write;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::io;
use std::path::Path;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::event::{Runner, Timestamp};
use crate::parse::Reject;
use model::{Fault, Org, Scenario, Step, Timeline, WORKERS};
use workers::Due;
use write::Sink;

pub use noise::NoiseProfile;
pub use truth::{EventCounts, Files, Flip, Ingest, OrgCounts, RunnerCounts, Totals, Truth};

/// The files `generate` writes into its output directory.
pub const DISPATCH_LOG: &str = "dispatch.log";
pub const VERCEL_DRAIN: &str = "vercel-drain.ndjson";
pub const GO_DAEMON_LOG: &str = "go-daemon.log";
pub const TS_WORKER_LOG: &str = "ts-worker.log";
pub const TRUTH_JSON: &str = "truth.json";

/// What to simulate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimConfig {
    /// Dispatched sessions (orphan claims and broken lines come on top).
    pub sessions: u64,
    pub seed: u64,
    /// The claim timeout T the truth is judged with; at least 2 s.
    pub claim_timeout: Duration,
    /// `false` for a clean platform: every session is normal (no late, mismatched, unclaimed
    /// or double claims), no orphan or broken lines, and every Go daemon is on a current
    /// build. Re-deliveries stay (they are not faults). Post-flip report tests start from a
    /// clean run and inject exactly the fault they test.
    pub faults: bool,
    /// The noise around the events; it never changes the truth.
    pub noise: NoiseProfile,
    /// The first dispatch comes just after this moment (default `2026-11-23T08:00:00Z`; the
    /// demo starts its platform a few minutes before the wall clock).
    pub start: Timestamp,
    /// Instead of the random flips (four orgs to go, one there and back), these ts → go
    /// migrations, in order; nothing else flips.
    pub script: Option<Vec<ScriptedFlip>>,
}

/// A migration the caller places: an org moves from ts to go at `at`. A `broken` one goes
/// wrong from that moment: a third of its sessions are claimed by ts workers (mismatched)
/// and a sixth by nobody (unclaimed), on a platform otherwise as clean or faulty as
/// [`SimConfig::faults`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScriptedFlip {
    pub at: Timestamp,
    pub broken: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            sessions: 1000,
            seed: 1,
            claim_timeout: Duration::from_secs(120),
            faults: true,
            noise: NoiseProfile::Classic,
            start: Timestamp(model::START_MS),
            script: None,
        }
    }
}

/// Writes the workload and `truth.json` into `out` (created if missing; files overwritten)
/// and returns the truth.
///
/// # Errors
/// `InvalidInput` for a claim timeout outside 2 s – 24 h; otherwise any I/O error of creating
/// or writing the files.
pub fn generate(cfg: &SimConfig, out: &Path) -> io::Result<Truth> {
    let timeout_ms = i64::try_from(cfg.claim_timeout.as_millis()).unwrap_or(i64::MAX);
    if !(2000..=86_400_000).contains(&timeout_ms) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "claim timeout must be between 2s and 24h",
        ));
    }
    std::fs::create_dir_all(out)?;
    let pending = match cfg.sessions {
        0 | 1 => 0,
        n => (n / 1000).max(1),
    };
    let ordinary = cfg.sessions - pending;

    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    // The arrival times have their own stream, walked twice: once to learn the last ordinary
    // dispatch (hence the end of the evidence, which heartbeats and flips need up front), once
    // to generate.
    let arrivals_seed: u64 = rng.r#gen();
    let start = cfg.start.millis();
    let mut arrivals = model::Arrivals::new(ChaCha8Rng::seed_from_u64(arrivals_seed), start);
    let mut last = start;
    for _ in 0..ordinary {
        last = arrivals.next_time();
    }
    let tl = Timeline {
        start,
        timeout_ms,
        end: last + timeout_ms + model::TAIL_MS,
    };
    let mut orgs = model::orgs(&mut rng, start, last);
    if let Some(script) = &cfg.script {
        model::script_flips(&mut orgs, script);
    }
    let forced = if cfg.faults {
        model::forced(&mut rng, ordinary)
    } else {
        BTreeMap::new()
    };

    let mut g = Generator::new(rng, tl, orgs, forced, cfg.sessions, last, out)?;
    g.faults = cfg.faults;
    if cfg.noise == NoiseProfile::Realistic {
        // Its own stream, so the events (and the truth) are those of the classic profile.
        let rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x6e6f_6973_655f_7265);
        g.realistic = Some(noise::Realistic::new(rng));
    }
    let mut arrivals = model::Arrivals::new(ChaCha8Rng::seed_from_u64(arrivals_seed), start);
    for i in 0..ordinary {
        let d = arrivals.next_time();
        g.session(i, d, false)?;
    }
    let mut tail: Vec<i64> = (0..pending)
        .map(|_| g.rng.gen_range(tl.end - timeout_ms + 1..=tl.end - 1000))
        .collect();
    tail.sort_unstable();
    for (k, d) in (ordinary..).zip(tail) {
        g.session(k, d, true)?;
    }
    g.drain_until(tl.end)?;

    let flips = g.flips();
    let mut names: Vec<String> = g.orgs.iter().map(|o| o.id.clone()).collect();
    names.push("unknown".into());
    let tally = g.finish()?;
    let header = truth::Header {
        seed: cfg.seed,
        sessions: cfg.sessions,
        claim_timeout_seconds: cfg.claim_timeout.as_secs(),
        watermark: tl.end,
        files: Files {
            dispatch: vec![DISPATCH_LOG.into(), VERCEL_DRAIN.into()],
            claims: BTreeMap::from([
                ("go".to_owned(), GO_DAEMON_LOG.to_owned()),
                ("ts".to_owned(), TS_WORKER_LOG.to_owned()),
            ]),
        },
        flips,
    };
    let truth = tally.into_truth(header, &names);
    let mut json = serde_json::to_vec_pretty(&truth).map_err(io::Error::other)?;
    json.push(b'\n');
    std::fs::write(out.join(TRUTH_JSON), json)?;
    Ok(truth)
}

type SessionBytes = [u8; 20];

#[derive(Debug)]
struct Sinks {
    dispatch: Sink,
    vercel: Sink,
    go: Sink,
    ts: Sink,
}

#[derive(Debug)]
struct Generator {
    rng: ChaCha8Rng,
    tl: Timeline,
    orgs: Vec<Org>,
    forced: BTreeMap<u64, Fault>,
    /// See [`SimConfig::faults`].
    faults: bool,
    /// The realistic noise profile's stream, when it is on.
    realistic: Option<noise::Realistic>,
    /// Session ids are `ses_` + 3 random chars + the 13 base-36 digits of `mix(index + key)`:
    /// random-looking and unique by construction. Never-dispatched ids use indices ≥ N.
    id_key: u64,
    next_fresh: u64,
    last_dispatch: i64,
    sinks: Sinks,
    due: BinaryHeap<Reverse<Due>>,
    seq: u64,
    tally: truth::Tally,
    vercel_seq: u64,
    project: [u8; 28],
    deployments: [[u8; 28]; 3],
    /// Scratch buffers, reused for every line.
    line: Vec<u8>,
    inner: Vec<u8>,
    steps: Vec<Step>,
    acts: Vec<truth::Act>,
}

impl Generator {
    fn new(
        mut rng: ChaCha8Rng,
        tl: Timeline,
        orgs: Vec<Org>,
        forced: BTreeMap<u64, Fault>,
        sessions: u64,
        last_dispatch: i64,
        out: &Path,
    ) -> io::Result<Generator> {
        let sinks = Sinks {
            dispatch: Sink::create(&out.join(DISPATCH_LOG))?,
            vercel: Sink::create(&out.join(VERCEL_DRAIN))?,
            go: Sink::create(&out.join(GO_DAEMON_LOG))?,
            ts: Sink::create(&out.join(TS_WORKER_LOG))?,
        };
        fn vercel_id(rng: &mut ChaCha8Rng, prefix: &[u8; 4]) -> [u8; 28] {
            let mut id = [0u8; 28];
            id[..4].copy_from_slice(prefix);
            write::base36(rng.r#gen(), &mut id[4..16]);
            write::base36(rng.r#gen(), &mut id[16..28]);
            id
        }
        let project = vercel_id(&mut rng, b"prj_");
        let deployments = [(); 3].map(|_| vercel_id(&mut rng, b"dpl_"));
        let org_slots = orgs.len() + 1;
        let mut g = Generator {
            id_key: rng.r#gen(),
            rng,
            tl,
            orgs,
            forced,
            faults: true,
            realistic: None,
            next_fresh: sessions,
            last_dispatch,
            sinks,
            due: BinaryHeap::new(),
            seq: 0,
            tally: truth::Tally::new(org_slots),
            vercel_seq: 0,
            project,
            deployments,
            line: Vec::with_capacity(1024),
            inner: Vec::with_capacity(1024),
            steps: Vec::with_capacity(8),
            acts: Vec::with_capacity(8),
        };
        g.schedule_heartbeats();
        Ok(g)
    }

    fn session_id(&mut self, index: u64) -> SessionBytes {
        let mut s = *b"ses_0000000000000000";
        write::base36(self.rng.gen_range(0..36 * 36 * 36), &mut s[4..7]);
        write::base36(write::mix(index.wrapping_add(self.id_key)), &mut s[7..]);
        s
    }

    fn fresh_session_id(&mut self) -> SessionBytes {
        let i = self.next_fresh;
        self.next_fresh += 1;
        self.session_id(i)
    }

    fn request_id(&mut self) -> [u8; 36] {
        let mut id = *b"00000000-0000-4000-8000-000000000000";
        let (a, b): (u64, u64) = (self.rng.r#gen(), self.rng.r#gen());
        write::hex(a >> 32, &mut id[0..8]);
        write::hex(a >> 16, &mut id[9..13]);
        write::hex(a, &mut id[15..18]);
        write::hex(b >> 48, &mut id[20..23]);
        write::hex(b, &mut id[24..36]);
        id
    }

    /// One dispatched session: its dispatch line, its planned worker events, its faults.
    fn session(&mut self, index: u64, d: i64, pending: bool) -> io::Result<()> {
        self.drain_until(d)?;
        let fault = self.forced.get(&index).copied();
        let org = model::pick_org(&mut self.rng, &self.orgs);
        let org_logged = !self.rng.gen_ratio(1, 50);
        let broken = self.orgs[org].broken_from.is_some_and(|from| d >= from);
        let scenario = match fault {
            _ if pending => Scenario::Normal,
            _ if broken => model::broken_scenario(&mut self.rng),
            _ if !self.faults => Scenario::Normal,
            Some(Fault::Scenario(s)) => s,
            _ => Scenario::pick(&mut self.rng),
        };
        let runner_value: Option<&'static str> = if scenario == Scenario::UnknownRunner {
            Some(if self.rng.gen_bool(0.5) { "rust" } else { "Go" })
        } else if self.orgs[org].legacy {
            None
        } else {
            Some(self.orgs[org].runner_at(d).as_str())
        };
        let runner = runner_value.map_or(Runner::Ts, Runner::from_value);
        let sid = self.session_id(index);

        let redeliver = fault == Some(Fault::Redelivery) || self.redelivery();
        self.dispatch_line(&sid, d, org, org_logged, runner_value, redeliver)?;
        if let Some(r) = &mut self.realistic {
            r.dispatcher_session(&mut self.sinks.dispatch, &sid, d, &self.orgs[org].id)?;
        }

        if pending {
            self.steps.clear();
        } else {
            model::plan(
                &mut self.rng,
                &self.tl,
                scenario,
                d,
                runner,
                &mut self.steps,
            );
        }
        self.acts.clear();
        self.acts.extend(self.steps.iter().map(|s| truth::Act {
            time: s.time,
            kind: s.kind,
            runtime: WORKERS[usize::from(s.worker)].runtime,
        }));
        let verdict = truth::judge(d, runner, &self.acts, self.tl.timeout_ms, self.tl.end);
        let slot = if org_logged { org } else { self.orgs.len() };
        self.tally.session(slot, runner, &verdict);
        for i in 0..self.steps.len() {
            let s = self.steps[i];
            self.push(s.time, s.kind, s.worker, sid, s.extra, s.failed);
        }

        if pending || !self.faults {
            return Ok(());
        }
        if fault == Some(Fault::Orphan) || self.per_100k(model::ORPHAN_RATE) {
            self.orphan(d);
        }
        if fault == Some(Fault::MalformedJson) || self.per_100k(model::MALFORMED_RATE) {
            self.malformed(&sid, d)?;
        }
        if fault == Some(Fault::MissingSessionId) || self.per_100k(model::MISSING_SESSION_RATE) {
            self.broken_dispatch(d, Reject::MissingSessionId)?;
        }
        if fault == Some(Fault::BadTime) || self.per_100k(model::BAD_TIME_RATE) {
            self.broken_dispatch(d, Reject::BadTime)?;
        }
        Ok(())
    }

    fn per_100k(&mut self, rate: u32) -> bool {
        self.rng.gen_range(0..100_000) < rate
    }

    fn redelivery(&mut self) -> bool {
        self.rng.gen_range(0..1000) < model::REDELIVERY_PER_MILLE
    }

    /// The truth's flips: every scheduled change of an org's runner, in time order.
    fn flips(&self) -> Vec<Flip> {
        let mut flips: Vec<(i64, Flip)> = Vec::new();
        for org in &self.orgs {
            let mut from = org.runner_at(i64::MIN);
            for &(at, to) in &org.flips {
                flips.push((
                    at,
                    Flip {
                        org: org.id.clone(),
                        from: from.as_str().into(),
                        to: to.as_str().into(),
                        at: Timestamp(at).to_rfc3339(),
                    },
                ));
                from = to;
            }
        }
        flips.sort_by(|a, b| (a.0, &a.1.org).cmp(&(b.0, &b.1.org)));
        flips.into_iter().map(|(_, f)| f).collect()
    }

    fn finish(self) -> io::Result<truth::Tally> {
        debug_assert!(self.due.is_empty());
        let Sinks {
            dispatch,
            vercel,
            go,
            ts,
        } = self.sinks;
        for sink in [dispatch, vercel, go, ts] {
            sink.finish()?;
        }
        Ok(self.tally)
    }
}

#[cfg(test)]
mod tests;
