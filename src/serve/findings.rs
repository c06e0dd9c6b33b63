//! Findings: what the sidecar found wrong, as it found it (`GET /api/findings`), and the Redis
//! witnesses that explain overdue sessions. Each finding, resolution and piece of evidence is
//! both kept in a bounded in-memory log (what a serve without a store answers from) and
//! handed to the next commit, which writes it to the store's `findings` table with the
//! evidence that caused it.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;
use serde::Serialize;

pub use crate::event::FindingKind;
use crate::event::Timestamp;
use crate::store::{FindingFilter, FindingPage, FindingWrite, NewFinding, StoredFinding};

/// A finding as the API shows it (`GET /api/findings`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LiveFinding {
    pub kind: FindingKind,
    pub session_id: String,
    /// The dispatched runner, or the claiming runtime for duplicates and orphans.
    pub runner: String,
    /// When the sidecar found it (its own clock).
    pub at: String,
    /// For `unclaimed`: when a late claim arrived; for `missing_from_logs`: when the dispatch
    /// was seen after all.
    pub resolved_at: Option<String>,
    /// The org, when known (always for platform findings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// One sentence of evidence: a flip's direction, a drift's expected runner, who holds an
    /// unclaimed session's Redis claim key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl From<StoredFinding> for LiveFinding {
    fn from(f: StoredFinding) -> LiveFinding {
        LiveFinding {
            kind: f.kind,
            session_id: f.session.unwrap_or_default(),
            runner: f.runner,
            at: f.found_at.to_rfc3339(),
            resolved_at: f.resolved_at.map(Timestamp::to_rfc3339),
            org: f.org,
            detail: f.detail,
        }
    }
}

/// One page of findings (`GET /api/findings`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FindingsPage {
    /// Oldest first.
    pub findings: Vec<LiveFinding>,
    /// Pass it back as `cursor` for the findings after this page (those found since too).
    /// The request's own cursor when the page is empty; `null` when nothing was found yet.
    pub next_cursor: Option<String>,
    /// Whether findings past this page are selected already.
    pub more: bool,
}

impl FindingsPage {
    /// The page of `page`, read after `after`.
    pub fn new(page: FindingPage, after: Option<crate::store::FindingCursor>) -> FindingsPage {
        let next = page.findings.last().map(StoredFinding::position).or(after);
        FindingsPage {
            next_cursor: next.map(crate::store::FindingCursor::encode),
            more: page.more,
            findings: page.findings.into_iter().map(LiveFinding::from).collect(),
        }
    }
}

/// A finding as telemetry reports it.
#[derive(Debug, Clone)]
pub struct Found<'a> {
    pub kind: FindingKind,
    /// What tells it from other findings of its kind (see [`NewFinding::key`]).
    pub key: String,
    pub session: Option<&'a str>,
    pub org: Option<&'a str>,
    pub runner: &'static str,
    pub detail: Option<String>,
}

/// The latest findings and the Redis witnesses of overdue sessions, both bounded, and the
/// writes for the next commit.
#[derive(Debug, Default)]
pub struct Findings {
    log: VecDeque<StoredFinding>,
    /// The key of each finding in `log`, in its order, and the kinds and keys it holds: a
    /// finding found again (with `serve --cluster`, the feed brings back the platform
    /// findings this replica wrote itself) is listed once, as the store keeps it once.
    keys: VecDeque<String>,
    listed: rustc_hash::FxHashSet<(FindingKind, String)>,
    /// The id of the last finding kept in memory.
    last_id: i64,
    witnesses: FxHashMap<String, Option<String>>,
    writes: Vec<FindingWrite>,
}

impl Findings {
    /// Findings kept in memory.
    const KEEP: usize = 1000;
    /// Witnesses kept; past it the map starts over (they only annotate evidence).
    const WITNESSES: usize = 100_000;

    /// A new finding, found at `now`. One of a kind and key listed already stays as it is
    /// (it is written all the same: the store keeps the first).
    pub fn found(&mut self, f: Found<'_>, now: Timestamp) {
        let listed = (f.kind, f.key.clone());
        if !self.listed.contains(&listed) {
            if self.log.len() == Self::KEEP
                && let (Some(old), Some(key)) = (self.log.pop_front(), self.keys.pop_front())
            {
                self.listed.remove(&(old.kind, key));
            }
            self.last_id += 1;
            self.log.push_back(StoredFinding {
                id: self.last_id,
                kind: f.kind,
                session: f.session.map(str::to_owned),
                org: f.org.map(str::to_owned),
                runner: f.runner.to_owned(),
                found_at: now,
                resolved_at: None,
                detail: f.detail.clone(),
            });
            self.keys.push_back(listed.1.clone());
            self.listed.insert(listed);
        }
        self.writes.push(FindingWrite::Found(NewFinding {
            kind: f.kind,
            key: f.key,
            session: f.session.map(str::to_owned),
            org: f.org.map(str::to_owned),
            runner: f.runner,
            found_at: now,
            detail: f.detail,
        }));
    }

    fn latest_mut(&mut self, kind: FindingKind, session: &str) -> Option<&mut StoredFinding> {
        self.log
            .iter_mut()
            .rev()
            .find(|f| f.kind == kind && f.session.as_deref() == Some(session))
    }

    /// Marks the finding of `kind` about `session` (its key) resolved at `now`.
    pub fn resolve(&mut self, kind: FindingKind, session: &str, now: Timestamp) {
        if let Some(f) = self.latest_mut(kind, session)
            && f.resolved_at.is_none()
        {
            f.resolved_at = Some(now);
        }
        self.writes.push(FindingWrite::Resolved {
            kind,
            key: session.to_owned(),
            at: now,
        });
    }

    /// Sets the evidence sentence of the finding of `kind` about `session` (its key).
    pub fn annotate(&mut self, kind: FindingKind, session: &str, detail: String) {
        if let Some(f) = self.latest_mut(kind, session) {
            f.detail = Some(detail.clone());
        }
        self.writes.push(FindingWrite::Annotated {
            kind,
            key: session.to_owned(),
            detail,
        });
    }

    /// The finding writes since the last call, for the commit being made.
    pub fn take_writes(&mut self) -> Vec<FindingWrite> {
        std::mem::take(&mut self.writes)
    }

    /// How many finding writes wait for the next commit (a mark for [`Findings::writes_since`]).
    pub fn written(&self) -> usize {
        self.writes.len()
    }

    /// The writes made since [`Findings::written`] answered `from`.
    pub fn writes_since(&self, from: usize) -> &[FindingWrite] {
        self.writes.get(from..).unwrap_or_default()
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

    /// One page of the findings kept in memory (a serve without a store), as the store would
    /// answer it.
    pub fn page(&self, filter: &FindingFilter) -> FindingPage {
        let limit = filter.limit as usize;
        let selected = |f: &&StoredFinding| filter.selects(f);
        let mut findings: Vec<StoredFinding> = if filter.newest_first {
            self.log
                .iter()
                .rev()
                .filter(selected)
                .take(limit + 1)
                .cloned()
                .collect()
        } else {
            self.log
                .iter()
                .filter(selected)
                .take(limit + 1)
                .cloned()
                .collect()
        };
        let more = findings.len() > limit;
        findings.truncate(limit);
        FindingPage { findings, more }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::FindingCursor;

    fn found(kind: FindingKind, session: &str) -> Found<'_> {
        Found {
            kind,
            key: session.to_owned(),
            session: Some(session),
            org: Some("o"),
            runner: "go",
            detail: None,
        }
    }

    #[test]
    fn pages_walk_every_finding_once_in_either_order() {
        let mut log = Findings::default();
        for i in 0..25 {
            let kind = if i % 3 == 0 {
                FindingKind::Late
            } else {
                FindingKind::Unclaimed
            };
            // several in the same millisecond: the id breaks the tie
            log.found(found(kind, &format!("s{i}")), Timestamp(1_000 + i / 4));
        }
        for newest_first in [false, true] {
            let mut filter = FindingFilter {
                limit: 4,
                newest_first,
                ..FindingFilter::default()
            };
            let mut seen = Vec::new();
            loop {
                let page = log.page(&filter);
                seen.extend(page.findings.iter().map(|f| f.id));
                if !page.more {
                    break;
                }
                filter.after = page.findings.last().map(StoredFinding::position);
            }
            let mut want: Vec<i64> = (1..=25).collect();
            if newest_first {
                want.reverse();
            }
            assert_eq!(seen, want);
        }
        let late = log.page(&FindingFilter {
            kind: Some(FindingKind::Late),
            since: Some(Timestamp(1_002)),
            until: Some(Timestamp(1_005)),
            ..FindingFilter::default()
        });
        let ids: Vec<i64> = late.findings.iter().map(|f| f.id).collect();
        assert_eq!(ids, [10, 13, 16, 19], "found 1002..1005, late only");
    }

    #[test]
    fn resolution_and_evidence_are_kept_and_written() {
        let mut log = Findings::default();
        log.found(found(FindingKind::Unclaimed, "a"), Timestamp(5));
        log.annotate(FindingKind::Unclaimed, "a", "held by w1".into());
        log.resolve(FindingKind::Unclaimed, "a", Timestamp(9));
        log.resolve(FindingKind::Unclaimed, "a", Timestamp(12));
        let f = &log.page(&FindingFilter::default()).findings[0];
        assert_eq!(
            (f.resolved_at, f.detail.as_deref()),
            (Some(Timestamp(9)), Some("held by w1")),
            "the first resolution stays"
        );
        let writes = log.take_writes();
        assert_eq!(writes.len(), 4);
        assert!(log.take_writes().is_empty());
    }

    #[test]
    fn a_finding_found_again_is_listed_once_as_first_found_and_written_each_time() {
        let mut log = Findings::default();
        log.found(found(FindingKind::FlagDrift, "a"), Timestamp(5));
        log.found(found(FindingKind::Unclaimed, "a"), Timestamp(6));
        // The feed brings back what this replica wrote, at its own found time or later.
        log.found(found(FindingKind::FlagDrift, "a"), Timestamp(5));
        log.found(found(FindingKind::FlagDrift, "a"), Timestamp(9));
        let listed: Vec<(FindingKind, Timestamp)> = log
            .page(&FindingFilter::default())
            .findings
            .iter()
            .map(|f| (f.kind, f.found_at))
            .collect();
        assert_eq!(
            listed,
            [
                (FindingKind::FlagDrift, Timestamp(5)),
                (FindingKind::Unclaimed, Timestamp(6))
            ]
        );
        assert_eq!(log.take_writes().len(), 4, "the store keeps the first");
        // Once it has left the bounded log, it may be listed again.
        for i in 0..Findings::KEEP {
            log.found(found(FindingKind::Late, &format!("s{i}")), Timestamp(10));
        }
        log.found(found(FindingKind::FlagDrift, "a"), Timestamp(11));
        let page = log.page(&FindingFilter {
            kind: Some(FindingKind::FlagDrift),
            ..FindingFilter::default()
        });
        assert_eq!(page.findings.len(), 1);
        assert_eq!(page.findings[0].found_at, Timestamp(11));
        assert_eq!(log.listed.len(), Findings::KEEP);
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let c = FindingCursor {
            found_at: Timestamp(1_795_428_000_123),
            id: 42,
        };
        assert_eq!(FindingCursor::decode(&c.encode()), Some(c));
        for bad in [
            "",
            "-",
            "12",
            "x-1",
            "1-",
            "-1",
            "1-2-3",
            "+1-2",
            "ffffffffffffffff-1",
            "1-g",
        ] {
            assert_eq!(FindingCursor::decode(bad), None, "{bad:?}");
        }
    }
}
