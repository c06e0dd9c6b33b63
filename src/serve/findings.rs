//! Findings: what the sidecar found wrong, as it found it (`GET /api/findings`), and the Redis
//! witnesses that explain overdue sessions. Kept newest last and bounded.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::event::Timestamp;

/// What a finding is about. Its `as_str` is the `kind` of the JSON API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    Late,
    Mismatched,
    Unclaimed,
    DuplicateClaim,
    DuplicateClaimCrossRuntime,
    OrphanClaim,
    /// The platform's runner flag of an org changed.
    Flip,
    FlagDrift,
    MalformedFlag,
    MissingFromLogs,
}

impl FindingKind {
    pub const ALL: [FindingKind; 10] = [
        FindingKind::Late,
        FindingKind::Mismatched,
        FindingKind::Unclaimed,
        FindingKind::DuplicateClaim,
        FindingKind::DuplicateClaimCrossRuntime,
        FindingKind::OrphanClaim,
        FindingKind::Flip,
        FindingKind::FlagDrift,
        FindingKind::MalformedFlag,
        FindingKind::MissingFromLogs,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::Late => "late",
            FindingKind::Mismatched => "mismatched",
            FindingKind::Unclaimed => "unclaimed",
            FindingKind::DuplicateClaim => "duplicate_claim",
            FindingKind::DuplicateClaimCrossRuntime => "duplicate_claim_cross_runtime",
            FindingKind::OrphanClaim => "orphan_claim",
            FindingKind::Flip => "flip",
            FindingKind::FlagDrift => "flag_drift",
            FindingKind::MalformedFlag => "malformed_flag",
            FindingKind::MissingFromLogs => "missing_from_logs",
        }
    }

    /// The kind an API name stands for; `None` for a name that is no kind.
    pub fn from_name(name: &str) -> Option<FindingKind> {
        FindingKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for FindingKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A finding as the sidecar saw it happen (`GET /api/findings`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LiveFinding {
    pub kind: FindingKind,
    pub session_id: String,
    /// The dispatched runner, or the claiming runtime for duplicates and orphans.
    pub runner: &'static str,
    /// When the sidecar found it (its own clock).
    pub at: String,
    #[serde(skip)]
    pub found_at: Timestamp,
    /// For `unclaimed`: when a late claim arrived.
    pub resolved_at: Option<String>,
    /// The org, when known (always for platform findings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// One sentence of evidence: a flip's direction, a drift's expected runner, who holds an
    /// unclaimed session's Redis claim key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl LiveFinding {
    pub fn new(
        kind: FindingKind,
        session: &str,
        runner: &'static str,
        org: Option<String>,
        now: Timestamp,
    ) -> LiveFinding {
        LiveFinding {
            kind,
            session_id: session.to_owned(),
            runner,
            at: now.to_rfc3339(),
            found_at: now,
            resolved_at: None,
            org,
            detail: None,
        }
    }
}

/// The latest findings and the Redis witnesses of overdue sessions, both bounded.
#[derive(Debug, Default)]
pub struct Findings {
    log: VecDeque<LiveFinding>,
    witnesses: FxHashMap<String, Option<String>>,
}

impl Findings {
    /// Findings kept in memory.
    const KEEP: usize = 1000;
    /// Witnesses kept; past it the map starts over (they only annotate evidence).
    const WITNESSES: usize = 100_000;

    pub fn push(&mut self, f: LiveFinding) {
        if self.log.len() == Self::KEEP {
            self.log.pop_front();
        }
        self.log.push_back(f);
    }

    fn latest_mut(&mut self, kind: FindingKind, session: &str) -> Option<&mut LiveFinding> {
        self.log
            .iter_mut()
            .rev()
            .find(|f| f.kind == kind && f.session_id == session)
    }

    /// Marks the latest finding of `kind` about `session` resolved at `now`.
    pub fn resolve(&mut self, kind: FindingKind, session: &str, now: Timestamp) {
        if let Some(f) = self.latest_mut(kind, session) {
            f.resolved_at = Some(now.to_rfc3339());
        }
    }

    /// Sets the evidence sentence of the latest finding of `kind` about `session`.
    pub fn annotate(&mut self, kind: FindingKind, session: &str, detail: String) {
        if let Some(f) = self.latest_mut(kind, session) {
            f.detail = Some(detail);
        }
    }

    /// Who holds `session`'s Redis claim key (`None` inside: nobody).
    pub fn note_witness(&mut self, session: &str, worker: Option<String>) {
        if self.witnesses.len() >= Self::WITNESSES {
            self.witnesses.clear();
        }
        self.witnesses.insert(session.to_owned(), worker);
    }

    pub fn witness(&self, session: &str) -> Option<&Option<String>> {
        self.witnesses.get(session)
    }

    /// The findings of one kind (by API name) found at or after `since`, oldest first.
    pub fn query(&self, kind: Option<&str>, since: Option<Timestamp>) -> Vec<LiveFinding> {
        self.log
            .iter()
            .filter(|f| kind.is_none_or(|k| k == f.kind.as_str()))
            .filter(|f| since.is_none_or(|t| f.found_at >= t))
            .cloned()
            .collect()
    }
}
