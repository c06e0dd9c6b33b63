//! The simulated platform: orgs and their runner flips, the worker fleet, the dispatch arrival
//! process, and the plan of what happens to each session (normal, or one injected fault).
//! Pure: no I/O; every random choice comes from the caller's RNG, so a seed fixes everything.

use std::collections::BTreeMap;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::write::Zone;
use crate::event::{EventKind, Runner};

/// `2026-11-23T08:00:00Z`, the first moment of a simulated run unless
/// [`SimConfig::start`](super::SimConfig::start) says otherwise.
pub(super) const START_MS: i64 = 1_795_420_800_000;
/// The evidence ends this long after the last ordinary dispatch's deadline.
pub(super) const TAIL_MS: i64 = 15 * 60 * 1000;
pub(super) const HEARTBEAT_MS: i64 = 30_000;
/// How long past the deadline a late claim may come.
const LATE_MAX_MS: i64 = 90_000;

/// The current Go daemon build.
pub(super) const GO_CURRENT: &str = "0.5.2";

/// A worker process: three Go daemons (one still on a pre-0.5.0 build) and three TS workers.
#[derive(Debug)]
pub(super) struct Worker {
    pub id: &'static str,
    pub runtime: Runner,
    pub version: &'static str,
    /// How its log times end: one Go host prints `+00:00` instead of `Z`.
    pub zone: Zone,
}

pub(super) const WORKERS: [Worker; 6] = [
    Worker {
        id: "go-host-1",
        runtime: Runner::Go,
        version: "0.5.2",
        zone: Zone::Utc,
    },
    Worker {
        id: "go-host-2",
        runtime: Runner::Go,
        version: "0.5.2",
        zone: Zone::Zero,
    },
    Worker {
        id: "go-host-3",
        runtime: Runner::Go,
        version: "0.4.9",
        zone: Zone::Utc,
    },
    Worker {
        id: "ts-worker-1",
        runtime: Runner::Ts,
        version: "2.14.0",
        zone: Zone::Utc,
    },
    Worker {
        id: "ts-worker-2",
        runtime: Runner::Ts,
        version: "2.14.0",
        zone: Zone::Utc,
    },
    Worker {
        id: "ts-worker-3",
        runtime: Runner::Ts,
        version: "2.14.0",
        zone: Zone::Utc,
    },
];

/// The worker whose heartbeat schedule is anchored on the end of the evidence, so one
/// heartbeat lands exactly on it and fixes the watermark.
pub(super) const ANCHOR_WORKER: u8 = 0;

/// A random worker of `runtime` (go or ts).
pub(super) fn pick_worker(rng: &mut ChaCha8Rng, runtime: Runner) -> u8 {
    base(runtime) + rng.gen_range(0..3)
}

/// A random worker of the same runtime as `w`, other than `w`.
fn other_worker(rng: &mut ChaCha8Rng, w: u8) -> u8 {
    let b = base(WORKERS[usize::from(w)].runtime);
    b + (w - b + rng.gen_range(1..3)) % 3
}

fn base(runtime: Runner) -> u8 {
    if runtime == Runner::Go { 0 } else { 3 }
}

fn other_runtime(r: Runner) -> Runner {
    if r == Runner::Go {
        Runner::Ts
    } else {
        Runner::Go
    }
}

/// One customer org. Its runner starts at `initial` and changes at each flip.
#[derive(Debug)]
pub(super) struct Org {
    pub id: String,
    weight: u32,
    /// Dispatches carry no `resolvedProfile.runner` (the pre-opt-in code path): ts.
    pub legacy: bool,
    initial: Runner,
    /// `(at ms, new runner)`, in time order.
    pub flips: Vec<(i64, Runner)>,
    /// From this moment on (a scripted broken migration) most of its sessions go wrong.
    pub broken_from: Option<i64>,
}

impl Org {
    /// The runner the resolver stamps at `t`; a flip applies from its own millisecond on.
    pub fn runner_at(&self, t: i64) -> Runner {
        self.flips
            .iter()
            .take_while(|(at, _)| *at <= t)
            .last()
            .map_or(self.initial, |&(_, r)| r)
    }
}

/// The orgs of a run over dispatch times `[start, end]`: one legacy, several ts-only, one
/// that was on go before the run began, four that flip to go during it and one that flips to
/// go and later rolls back.
pub(super) fn orgs(rng: &mut ChaCha8Rng, start: i64, end: i64) -> Vec<Org> {
    let span = (end - start).max(1) as f64;
    let at = |rng: &mut ChaCha8Rng, lo: f64, hi: f64| start + (span * rng.gen_range(lo..hi)) as i64;
    let mut out: Vec<Org> = Vec::with_capacity(12);
    for i in 0..12 {
        let id = loop {
            let mut s = *b"org_00000000";
            base36_random(rng, &mut s[4..]);
            let s = String::from_utf8_lossy(&s).into_owned();
            if out.iter().all(|o| o.id != s) {
                break s;
            }
        };
        let (initial, flips) = match i {
            5 => (Runner::Go, vec![]),
            6..=9 => (Runner::Ts, vec![(at(rng, 0.15, 0.75), Runner::Go)]),
            10 => {
                let on = at(rng, 0.10, 0.35);
                let off = at(rng, 0.50, 0.80).max(on + 1);
                (Runner::Ts, vec![(on, Runner::Go), (off, Runner::Ts)])
            }
            _ => (Runner::Ts, vec![]),
        };
        out.push(Org {
            id,
            weight: if i == 0 { 20 } else { rng.gen_range(2..16) },
            legacy: i == 0,
            initial,
            flips,
            broken_from: None,
        });
    }
    out
}

/// Replaces the random flips by `script`: the `k`-th scripted flip moves org `6 + k` (a ts
/// org) to go, and the other orgs that would have flipped stay on ts. Scripted orgs get a
/// large share of the traffic, so each window holds enough sessions to judge.
pub(super) fn script_flips(orgs: &mut [Org], script: &[super::ScriptedFlip]) {
    for (k, org) in orgs.iter_mut().enumerate().skip(6).take(5) {
        org.initial = Runner::Ts;
        org.flips.clear();
        if let Some(f) = script.get(k - 6) {
            org.flips.push((f.at.millis(), Runner::Go));
            org.weight = 15;
            org.broken_from = f.broken.then_some(f.at.millis());
        }
    }
}

/// What happens to a session of a broken migration: a third are claimed by the old
/// runtime (the flag changed, the old workers still take them), a sixth by nobody.
pub(super) fn broken_scenario(rng: &mut ChaCha8Rng) -> Scenario {
    match rng.gen_range(0..6) {
        0 | 1 => Scenario::Mismatched,
        2 => Scenario::Unclaimed,
        _ => Scenario::Normal,
    }
}

/// Picks an org index in proportion to the weights.
pub(super) fn pick_org(rng: &mut ChaCha8Rng, orgs: &[Org]) -> usize {
    let total: u32 = orgs.iter().map(|o| o.weight).sum();
    let mut x = rng.gen_range(0..total);
    for (i, o) in orgs.iter().enumerate() {
        if x < o.weight {
            return i;
        }
        x -= o.weight;
    }
    orgs.len() - 1
}

fn base36_random(rng: &mut ChaCha8Rng, out: &mut [u8]) {
    const A: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    for b in out {
        *b = A[rng.gen_range(0..36)];
    }
}

/// Dispatch arrivals: random gaps whose mean (60–140 ms, 100 on average) swells and ebbs
/// over a four-hour cycle, so dashboards have a shape. Strictly increasing, whole ms.
///
/// Integer arithmetic only: `ln` and `sin` come from the platform's libm, which need not agree
/// to the last bit across systems, and one flipped rounding would change every later line.
#[derive(Debug)]
pub(super) struct Arrivals {
    rng: ChaCha8Rng,
    start: i64,
    t: i64,
}

impl Arrivals {
    const CYCLE_MS: i64 = 4 * 3600 * 1000;

    pub fn new(rng: ChaCha8Rng, start: i64) -> Arrivals {
        Arrivals {
            rng,
            start,
            t: start,
        }
    }

    pub fn next_time(&mut self) -> i64 {
        // A triangle wave: busiest at the start of each cycle, quietest half-way through.
        let half = Self::CYCLE_MS / 2;
        let x = (self.t - self.start).rem_euclid(Self::CYCLE_MS);
        let mean = 60 + 80 * (half - (x - half).abs()) / half;
        self.t += self.rng.gen_range(1..2 * mean);
        self.t
    }
}

/// What happens to one ordinary session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Scenario {
    Normal,
    /// Claimed by the dispatched runtime after the deadline.
    Late,
    /// Claimed by the other runtime.
    Mismatched,
    /// Never claimed.
    Unclaimed,
    /// Claimed twice by two workers of the dispatched runtime, no release between.
    Duplicate,
    /// Claimed by a go and a ts worker; either may be first.
    DuplicateCrossRuntime,
    /// Claimed, released a second later, claimed again by another worker.
    Reclaim,
    /// The claim is stamped up to 2 s before the dispatch.
    Skew,
    /// Dispatched with `"runner":"rust"` or `"Go"`: nobody claims it.
    UnknownRunner,
}

impl Scenario {
    pub const FAULTS: [Scenario; 8] = [
        Scenario::Late,
        Scenario::Mismatched,
        Scenario::Unclaimed,
        Scenario::Duplicate,
        Scenario::DuplicateCrossRuntime,
        Scenario::Reclaim,
        Scenario::Skew,
        Scenario::UnknownRunner,
    ];

    /// Per 100 000 sessions.
    fn rate(self) -> u32 {
        match self {
            Scenario::Normal => 0,
            Scenario::Late => 400,
            Scenario::Mismatched => 500,
            Scenario::Unclaimed => 400,
            Scenario::Duplicate => 300,
            Scenario::DuplicateCrossRuntime => 200,
            Scenario::Reclaim => 800,
            Scenario::Skew => 600,
            Scenario::UnknownRunner => 300,
        }
    }

    pub fn pick(rng: &mut ChaCha8Rng) -> Scenario {
        let mut x = rng.gen_range(0..100_000u32);
        for s in Scenario::FAULTS {
            if x < s.rate() {
                return s;
            }
            x -= s.rate();
        }
        Scenario::Normal
    }
}

/// An injected fault, for forcing each kind at least once into a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Fault {
    Scenario(Scenario),
    /// A claim line for a session that was never dispatched.
    Orphan,
    /// This session's dispatch line is re-delivered.
    Redelivery,
    /// A truncated copy of a dispatch or claim line.
    MalformedJson,
    /// A dispatch line with `"sessionId":""`.
    MissingSessionId,
    /// A dispatch line with `"time":"yesterday"`.
    BadTime,
}

/// Per 100 000 sessions, for the faults that are extra lines rather than a scenario.
pub(super) const ORPHAN_RATE: u32 = 300;
pub(super) const MALFORMED_RATE: u32 = 60;
pub(super) const MISSING_SESSION_RATE: u32 = 30;
pub(super) const BAD_TIME_RATE: u32 = 30;
/// Per 1000 event lines.
pub(super) const REDELIVERY_PER_MILLE: u32 = 10;

/// Runs of at least this many ordinary sessions get every fault at least once.
pub(super) const FORCE_FROM: u64 = 100;

/// Which ordinary sessions carry a forced fault: one distinct, random index per fault kind.
pub(super) fn forced(rng: &mut ChaCha8Rng, ordinary: u64) -> BTreeMap<u64, Fault> {
    let mut faults: Vec<Fault> = Scenario::FAULTS
        .iter()
        .map(|&s| Fault::Scenario(s))
        .collect();
    faults.extend([
        Fault::Orphan,
        Fault::Redelivery,
        Fault::MalformedJson,
        Fault::MissingSessionId,
        Fault::BadTime,
    ]);
    let mut out = BTreeMap::new();
    if ordinary < FORCE_FROM {
        return out;
    }
    for f in faults {
        loop {
            let i = rng.gen_range(ordinary / 20..ordinary);
            if let std::collections::btree_map::Entry::Vacant(e) = out.entry(i) {
                e.insert(f);
                break;
            }
        }
    }
    out
}

/// The fixed times of a run.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timeline {
    /// The first moment of the run.
    pub start: i64,
    pub timeout_ms: i64,
    /// The end of the evidence: last ordinary dispatch + T + 15 min. Nothing is later; the
    /// anchor worker's last heartbeat is exactly this.
    pub end: i64,
}

/// One planned worker-side event of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Step {
    pub time: i64,
    pub kind: EventKind,
    pub worker: u8,
    /// Completion: the run time in ms. Release: an index into the reasons.
    pub extra: u32,
    /// Completion: `failed` rather than `completed`.
    pub failed: bool,
}

impl Step {
    fn new(time: i64, kind: EventKind, worker: u8) -> Step {
        Step {
            time,
            kind,
            worker,
            extra: 0,
            failed: false,
        }
    }
}

/// Claim latency of a healthy session: 50 ms – 30 s (at most half the claim timeout), mostly
/// short; never past the deadline.
fn latency(rng: &mut ChaCha8Rng, tl: &Timeline) -> i64 {
    let u: f64 = rng.r#gen();
    let span = (tl.timeout_ms / 2).clamp(100, 30_000) - 50;
    (50 + (span as f64 * u * u * u) as i64).min(tl.timeout_ms)
}

/// A claim at `claim` by `w` and its completion 10 s – 10 min later (cut at the evidence end).
fn claim_and_finish(rng: &mut ChaCha8Rng, tl: &Timeline, w: u8, claim: i64, out: &mut Vec<Step>) {
    out.push(Step::new(claim, EventKind::Claim, w));
    let u: f64 = rng.r#gen();
    let done = (claim + 10_000 + (590_000.0 * u * u) as i64).min(tl.end);
    if done > claim {
        out.push(Step {
            time: done,
            kind: EventKind::Completion,
            worker: w,
            extra: u32::try_from(done - claim).unwrap_or(u32::MAX),
            failed: rng.gen_ratio(1, 25),
        });
    }
}

/// The worker-side steps of a session dispatched to `runner` (go or ts) at `d`, sorted by
/// `(time, kind)`. No two steps of a session share a millisecond.
pub(super) fn plan(
    rng: &mut ChaCha8Rng,
    tl: &Timeline,
    scenario: Scenario,
    d: i64,
    runner: Runner,
    out: &mut Vec<Step>,
) {
    out.clear();
    match scenario {
        Scenario::Unclaimed | Scenario::UnknownRunner => {}
        Scenario::Normal => {
            let w = pick_worker(rng, runner);
            let c = d + latency(rng, tl);
            claim_and_finish(rng, tl, w, c, out);
        }
        Scenario::Late => {
            let w = pick_worker(rng, runner);
            let c = d + tl.timeout_ms + rng.gen_range(1..=LATE_MAX_MS);
            claim_and_finish(rng, tl, w, c, out);
        }
        Scenario::Mismatched => {
            let w = pick_worker(rng, other_runtime(runner));
            let c = d + latency(rng, tl);
            claim_and_finish(rng, tl, w, c, out);
        }
        Scenario::Skew => {
            let w = pick_worker(rng, runner);
            let c = d - rng.gen_range(1..=2000);
            claim_and_finish(rng, tl, w, c, out);
        }
        Scenario::Duplicate | Scenario::DuplicateCrossRuntime => {
            let (w1, w2) = if scenario == Scenario::Duplicate {
                let w1 = pick_worker(rng, runner);
                (w1, other_worker(rng, w1))
            } else {
                let first = if rng.gen_bool(0.5) {
                    runner
                } else {
                    other_runtime(runner)
                };
                (
                    pick_worker(rng, first),
                    pick_worker(rng, other_runtime(first)),
                )
            };
            let c1 = d + latency(rng, tl);
            // Before the first worker can possibly finish (10 s): a real double execution.
            let c2 = c1 + rng.gen_range(1000..=9000);
            claim_and_finish(rng, tl, w1, c1, out);
            claim_and_finish(rng, tl, w2, c2, out);
        }
        Scenario::Reclaim => {
            let w1 = pick_worker(rng, runner);
            let w2 = other_worker(rng, w1);
            let c1 = d + latency(rng, tl);
            let released = c1 + rng.gen_range(500..=2000);
            out.push(Step::new(c1, EventKind::Claim, w1));
            out.push(Step {
                extra: rng.gen_range(0..3),
                ..Step::new(released, EventKind::Release, w1)
            });
            let c2 = released + rng.gen_range(2000..=10_000);
            claim_and_finish(rng, tl, w2, c2, out);
        }
    }
    out.sort_by_key(|s| (s.time, s.kind));
    // Two completions (of a double execution) may meet on a millisecond; keep times distinct
    // so the evidence order never depends on worker names.
    for i in 1..out.len() {
        if out[i].time <= out[i - 1].time {
            out[i].time = out[i - 1].time + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn flips_apply_from_their_millisecond() {
        let org = Org {
            id: "org_x".into(),
            weight: 1,
            legacy: false,
            initial: Runner::Ts,
            flips: vec![(100, Runner::Go), (200, Runner::Ts)],
            broken_from: None,
        };
        assert_eq!(org.runner_at(99), Runner::Ts);
        assert_eq!(org.runner_at(100), Runner::Go);
        assert_eq!(org.runner_at(199), Runner::Go);
        assert_eq!(org.runner_at(200), Runner::Ts);
    }

    #[test]
    fn plans_stay_inside_the_evidence_and_never_share_a_millisecond() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let tl = Timeline {
            start: START_MS,
            timeout_ms: 120_000,
            end: START_MS + 120_000 + TAIL_MS,
        };
        let mut steps = Vec::new();
        for s in Scenario::FAULTS.into_iter().chain([Scenario::Normal]) {
            for _ in 0..2000 {
                plan(&mut rng, &tl, s, START_MS, Runner::Go, &mut steps);
                assert!(steps.iter().all(|st| st.time <= tl.end));
                assert!(steps.windows(2).all(|w| w[0].time < w[1].time), "{s:?}");
            }
        }
    }
}
