//! The ground truth of a simulated run, and the bookkeeping that builds it.
//!
//! The truth is tallied from what the generator *intended* to write (the planned events of each
//! session), never by running `parse` or `correlate` over the files: a test does that and compares.
//! Field names are those of the verifier's JSON report, so the two can be diffed directly.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::correlate::Outcome;
use crate::event::{EventKind, Runner, Timestamp};
use crate::parse::Reject;

/// Everything a correct verifier must report for the generated files.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Truth {
    pub seed: u64,
    pub sessions: u64,
    pub claim_timeout_seconds: u64,
    /// The largest event time in the files (RFC 3339, ms): the batch verifier's watermark.
    pub watermark: String,
    pub files: Files,
    pub totals: Totals,
    /// Per org id as logged on the dispatch line; `unknown` for dispatches that name no org.
    pub orgs: BTreeMap<String, OrgCounts>,
    pub ingest: Ingest,
    /// Every change of an org's runner during the run, in time order.
    pub flips: Vec<Flip>,
}

/// The file names inside the output directory, as `verify` takes them.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Files {
    pub dispatch: Vec<String>,
    /// Runtime → claims file (`--claims go=go-daemon.log`).
    pub claims: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RunnerCounts {
    pub go: u64,
    pub ts: u64,
    pub other: u64,
}

impl RunnerCounts {
    pub fn total(&self) -> u64 {
        self.go + self.ts + self.other
    }

    fn add(&mut self, r: Runner) {
        match r {
            Runner::Go => self.go += 1,
            Runner::Ts => self.ts += 1,
            Runner::Other => self.other += 1,
        }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    pub dispatched: RunnerCounts,
    pub matched: u64,
    pub late: u64,
    pub mismatched: u64,
    pub unclaimed: u64,
    pub pending: u64,
    /// Sessions with two claims and no release between them.
    pub duplicate_claims: u64,
    /// Distinct claim events of sessions that were never dispatched.
    pub orphan_claims: u64,
    /// Claims that follow a release.
    pub reclaims: u64,
    /// Sessions whose first claim is stamped before their dispatch.
    pub skew_clamped: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OrgCounts {
    pub dispatched: RunnerCounts,
    pub matched: u64,
    pub late: u64,
    pub mismatched: u64,
    pub unclaimed: u64,
    pub pending: u64,
    pub duplicate_claims: u64,
}

impl OrgCounts {
    /// The sum of the outcomes; equals `dispatched.total()` by construction.
    pub fn outcomes(&self) -> u64 {
        self.matched + self.late + self.mismatched + self.unclaimed + self.pending
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct Ingest {
    pub events: EventCounts,
    /// Re-delivered lines (each extra copy counts one).
    pub duplicates: u64,
    /// Rejected relevant lines by reason (`Reject::as_str`).
    pub rejected: BTreeMap<String, u64>,
}

/// Distinct events by kind, re-deliveries excluded.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EventCounts {
    pub dispatch: u64,
    pub claim: u64,
    pub completion: u64,
    pub heartbeat: u64,
    pub release: u64,
}

impl EventCounts {
    fn add(&mut self, kind: EventKind) {
        match kind {
            EventKind::Dispatch => self.dispatch += 1,
            EventKind::Claim => self.claim += 1,
            EventKind::Completion => self.completion += 1,
            EventKind::Heartbeat => self.heartbeat += 1,
            EventKind::Release => self.release += 1,
        }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Flip {
    pub org: String,
    pub from: String,
    pub to: String,
    pub at: String,
}

/// The rejection reasons the simulator injects, in the order `Ingest::rejected` lists them.
pub(super) const INJECTED_REJECTS: [Reject; 3] = [
    Reject::MalformedJson,
    Reject::MissingSessionId,
    Reject::BadTime,
];

/// One planned worker-side event of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Act {
    pub time: i64,
    pub kind: EventKind,
    pub runtime: Runner,
}

/// What the rules of `correlate::session` say about one planned session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Verdict {
    pub outcome: Outcome,
    pub duplicate: bool,
    pub reclaims: u64,
    pub skew_clamped: bool,
}

/// PRODUCT.md §2 applied to one planned session, mirroring `Session::judge`. `acts` must be
/// sorted by `(time, kind)`; the generator never plans two acts of a session at the same time.
pub(super) fn judge(
    dispatch_time: i64,
    runner: Runner,
    acts: &[Act],
    timeout_ms: i64,
    watermark: i64,
) -> Verdict {
    let (mut held, mut claims, mut reclaims, mut duplicate) = (false, 0u64, 0u64, false);
    for a in acts {
        match a.kind {
            EventKind::Claim => {
                if held {
                    duplicate = true;
                } else if claims > 0 {
                    reclaims += 1;
                }
                held = true;
                claims += 1;
            }
            EventKind::Release => held = false,
            _ => {}
        }
    }
    let first = acts.iter().find(|a| a.kind == EventKind::Claim);
    let mut skew_clamped = false;
    let outcome = match first {
        Some(c) if !c.runtime.serves(runner) => Outcome::Mismatched,
        Some(c) => {
            let raw = c.time - dispatch_time;
            skew_clamped = raw < 0;
            if raw.max(0) <= timeout_ms {
                Outcome::Matched
            } else {
                Outcome::Late
            }
        }
        None if watermark >= dispatch_time + timeout_ms => Outcome::Unclaimed,
        None => Outcome::Pending,
    };
    Verdict {
        outcome,
        duplicate,
        reclaims,
        skew_clamped,
    }
}

/// Running counts while the files are written. Orgs are indices into the model's org list;
/// the last index is `unknown`.
#[derive(Debug)]
pub(super) struct Tally {
    totals: Totals,
    orgs: Vec<OrgCounts>,
    events: EventCounts,
    duplicates: u64,
    rejected: [u64; INJECTED_REJECTS.len()],
}

impl Tally {
    pub fn new(org_slots: usize) -> Tally {
        Tally {
            totals: Totals::default(),
            orgs: vec![OrgCounts::default(); org_slots],
            events: EventCounts::default(),
            duplicates: 0,
            rejected: [0; INJECTED_REJECTS.len()],
        }
    }

    /// One dispatched session (its dispatch event is counted by `event`).
    pub fn session(&mut self, org: usize, runner: Runner, v: &Verdict) {
        let t = &mut self.totals;
        let o = &mut self.orgs[org];
        t.dispatched.add(runner);
        o.dispatched.add(runner);
        let (tc, oc) = match v.outcome {
            Outcome::Matched => (&mut t.matched, &mut o.matched),
            Outcome::Late => (&mut t.late, &mut o.late),
            Outcome::Mismatched => (&mut t.mismatched, &mut o.mismatched),
            Outcome::Unclaimed => (&mut t.unclaimed, &mut o.unclaimed),
            Outcome::Pending => (&mut t.pending, &mut o.pending),
        };
        *tc += 1;
        *oc += 1;
        if v.duplicate {
            t.duplicate_claims += 1;
            o.duplicate_claims += 1;
        }
        t.reclaims += v.reclaims;
        t.skew_clamped += u64::from(v.skew_clamped);
    }

    pub fn orphan_claim(&mut self) {
        self.totals.orphan_claims += 1;
    }

    /// A line holding one distinct event was written.
    pub fn event(&mut self, kind: EventKind) {
        self.events.add(kind);
    }

    /// An exact copy of an event line was written.
    pub fn redelivered(&mut self) {
        self.duplicates += 1;
    }

    pub fn rejected(&mut self, reason: Reject) {
        if let Some(i) = INJECTED_REJECTS.iter().position(|&r| r == reason) {
            self.rejected[i] += 1;
        }
    }

    pub fn into_truth(self, header: Header, org_names: &[String]) -> Truth {
        let orgs = org_names
            .iter()
            .zip(self.orgs)
            .filter(|(_, c)| c.dispatched.total() > 0)
            .map(|(name, c)| (name.clone(), c))
            .collect();
        let rejected = INJECTED_REJECTS
            .iter()
            .zip(self.rejected)
            .map(|(r, n)| (r.as_str().to_owned(), n))
            .collect();
        Truth {
            seed: header.seed,
            sessions: header.sessions,
            claim_timeout_seconds: header.claim_timeout_seconds,
            watermark: Timestamp(header.watermark).to_rfc3339(),
            files: header.files,
            totals: self.totals,
            orgs,
            ingest: Ingest {
                events: self.events,
                duplicates: self.duplicates,
                rejected,
            },
            flips: header.flips,
        }
    }
}

/// The parts of the truth fixed by the configuration and the model, not by counting.
#[derive(Debug)]
pub(super) struct Header {
    pub seed: u64,
    pub sessions: u64,
    pub claim_timeout_seconds: u64,
    pub watermark: i64,
    pub files: Files,
    pub flips: Vec<Flip>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn act(time: i64, kind: EventKind, runtime: Runner) -> Act {
        Act {
            time,
            kind,
            runtime,
        }
    }

    #[test]
    fn judge_follows_the_session_rules() {
        use EventKind::{Claim, Release};
        use Runner::{Go, Ts};
        let j = |acts: &[Act], runner| judge(1000, runner, acts, 120_000, 10_000_000);
        assert_eq!(j(&[act(2000, Claim, Go)], Go).outcome, Outcome::Matched);
        assert_eq!(j(&[act(121_000, Claim, Go)], Go).outcome, Outcome::Matched);
        assert_eq!(j(&[act(121_001, Claim, Go)], Go).outcome, Outcome::Late);
        assert_eq!(j(&[act(2000, Claim, Ts)], Go).outcome, Outcome::Mismatched);
        assert_eq!(j(&[], Go).outcome, Outcome::Unclaimed);
        assert_eq!(
            judge(1000, Go, &[], 120_000, 120_999).outcome,
            Outcome::Pending
        );
        let skew = j(&[act(500, Claim, Go)], Go);
        assert!(skew.skew_clamped && skew.outcome == Outcome::Matched);
        let dup = j(&[act(2000, Claim, Go), act(3000, Claim, Ts)], Go);
        assert!(dup.duplicate && dup.outcome == Outcome::Matched);
        let re = j(
            &[
                act(2000, Claim, Go),
                act(3000, Release, Go),
                act(5000, Claim, Go),
            ],
            Go,
        );
        assert!(!re.duplicate && re.reclaims == 1);
    }
}
