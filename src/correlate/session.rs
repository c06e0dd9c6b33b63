//! One session's evidence and the rules of PRODUCT.md §2 that judge it.
//!
//! A session keeps its records sorted by `(time, kind, runner, worker)`, so the judgement is a
//! function of the *set* of events, whatever order they arrived in.

use smallvec::SmallVec;

use super::ClaimTimeouts;
use crate::event::{EventKind, Origin, Runner, Timestamp};

/// One event of one session, compacted: names are interned ids (0 = absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Record {
    pub time: Timestamp,
    pub kind: EventKind,
    /// The dispatch's runner, or the claiming/completing/releasing runtime.
    pub runner: Runner,
    pub worker: u32,
    /// Dispatch: org id. Completion: status id. Release: reason id. Claim: version id.
    pub extra: u32,
    /// `Origin`, flattened: it keeps a record at 24 bytes, three of which fit inline in a
    /// session (dispatch, claim, completion) without a heap allocation.
    pub input: u16,
    pub line: u32,
}

impl Record {
    pub fn new(
        kind: EventKind,
        runner: Runner,
        time: Timestamp,
        worker: u32,
        extra: u32,
        origin: Origin,
    ) -> Record {
        Record {
            time,
            kind,
            runner,
            worker,
            extra,
            input: origin.input,
            line: origin.line,
        }
    }

    pub fn origin(&self) -> Origin {
        Origin {
            input: self.input,
            line: self.line,
        }
    }
    /// Two records are the same event re-delivered when these agree (PRODUCT.md §1.2).
    fn identity(&self) -> (Timestamp, EventKind, Runner, u32) {
        (self.time, self.kind, self.runner, self.worker)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    Matched,
    Late,
    Mismatched,
    Unclaimed,
    Pending,
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [
        Outcome::Matched,
        Outcome::Late,
        Outcome::Mismatched,
        Outcome::Unclaimed,
        Outcome::Pending,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Matched => "matched",
            Outcome::Late => "late",
            Outcome::Mismatched => "mismatched",
            Outcome::Unclaimed => "unclaimed",
            Outcome::Pending => "pending",
        }
    }

    /// Outcomes that fail a verification. Pending is never a failure.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Outcome::Late | Outcome::Mismatched | Outcome::Unclaimed
        )
    }
}

/// Everything the rules say about one session, cheap to compute and `Copy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Judgement {
    /// The earliest dispatch; `None` means every claim of this session is an orphan.
    pub dispatch: Option<Record>,
    /// `None` exactly when there is no dispatch.
    pub outcome: Option<Outcome>,
    pub first_claim: Option<Record>,
    /// Claim latency in ms, clamped at 0; set for matched and late.
    pub latency_ms: Option<i64>,
    /// The first claim was stamped before its dispatch (clock skew between hosts).
    pub skew_clamped: bool,
    /// Two claims with no release between them.
    pub duplicate: bool,
    /// …and the two claims came from different runtimes.
    pub duplicate_cross_runtime: bool,
    /// Claims that followed a release: legitimate re-claims, not duplicates.
    pub reclaims: u32,
    /// Distinct claim events.
    pub claims: u32,
    /// Distinct dispatch events beyond the first.
    pub redispatches: u32,
    /// The deadline: dispatch + T.
    pub deadline: Option<Timestamp>,
}

/// What [`Session::add`] did with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// New evidence.
    Fresh,
    /// An exact re-delivery: nothing the rules read changed (an earlier copy's origin may
    /// have replaced the held one's).
    Again,
    /// An exact re-delivery of a dispatch from an earlier origin, naming another org: the
    /// session's dispatch is that copy's now, org and all.
    OtherOrg,
}

#[derive(Debug, Clone, Default)]
pub struct Session {
    records: SmallVec<[Record; 3]>,
}

impl Session {
    /// Adds a record; returns `false` if it is an exact re-delivery of one already held (the
    /// earlier origin is kept, so evidence does not depend on arrival order).
    pub fn insert(&mut self, rec: Record) -> bool {
        self.add(rec) == Added::Fresh
    }

    /// Adds a record, as [`Session::insert`], saying what changed.
    pub fn add(&mut self, rec: Record) -> Added {
        let id = rec.identity();
        let at = self.records.partition_point(|r| r.identity() < id);
        if let Some(existing) = self.records.get_mut(at)
            && existing.identity() == id
        {
            if rec.origin() >= existing.origin() {
                return Added::Again;
            }
            let extra = std::mem::replace(&mut existing.extra, rec.extra);
            (existing.input, existing.line) = (rec.input, rec.line);
            return match rec.kind == EventKind::Dispatch && extra != rec.extra {
                true => Added::OtherOrg,
                false => Added::Again,
            };
        }
        self.records.insert(at, rec);
        Added::Fresh
    }

    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// The time of the latest record, used to pick eviction victims.
    pub fn last_time(&self) -> Timestamp {
        self.records.last().map_or(Timestamp::MIN, |r| r.time)
    }

    /// Applies §2 with the evidence ending at `watermark`.
    pub fn judge(&self, timeouts: &ClaimTimeouts, watermark: Timestamp) -> Judgement {
        let dispatch = self
            .records
            .iter()
            .find(|r| r.kind == EventKind::Dispatch)
            .copied();
        let first_claim = self
            .records
            .iter()
            .find(|r| r.kind == EventKind::Claim)
            .copied();
        let redispatches = self
            .records
            .iter()
            .filter(|r| r.kind == EventKind::Dispatch)
            .count()
            .saturating_sub(1);

        let (mut held, mut claims, mut reclaims) = (None::<Runner>, 0u32, 0u32);
        let (mut duplicate, mut cross) = (false, false);
        for r in &self.records {
            match r.kind {
                EventKind::Claim => {
                    match held {
                        Some(holder) => {
                            duplicate = true;
                            cross |= holder != r.runner;
                        }
                        None if claims > 0 => reclaims += 1,
                        None => {}
                    }
                    held = Some(r.runner);
                    claims += 1;
                }
                EventKind::Release => held = None,
                _ => {}
            }
        }

        let mut j = Judgement {
            dispatch,
            outcome: None,
            first_claim,
            latency_ms: None,
            skew_clamped: false,
            duplicate,
            duplicate_cross_runtime: cross,
            reclaims,
            claims,
            redispatches: u32::try_from(redispatches).unwrap_or(u32::MAX),
            deadline: None,
        };
        let Some(d) = dispatch else { return j };
        let deadline = d.time.saturating_add_ms(timeouts.millis(d.runner));
        j.deadline = Some(deadline);
        j.outcome = Some(match first_claim {
            Some(c) if !c.runner.serves(d.runner) => Outcome::Mismatched,
            Some(c) => {
                let raw = c.time.millis() - d.time.millis();
                j.skew_clamped = raw < 0;
                let latency = raw.max(0);
                j.latency_ms = Some(latency);
                if latency <= timeouts.millis(d.runner) {
                    Outcome::Matched
                } else {
                    Outcome::Late
                }
            }
            None if watermark >= deadline => Outcome::Unclaimed,
            None => Outcome::Pending,
        });
        j
    }
}
