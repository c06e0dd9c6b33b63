//! What queries answer: the published totals, one session's evidence, the findings, the orgs.
//! Answers are built from the actor's state on its own task; nothing here changes state.

use serde::Serialize;
use tokio::sync::oneshot;

use super::findings::Findings;
use crate::correlate::Outcome;
use crate::event::{Origin, SessionId, Timestamp};
use crate::report::{Evidence, Totals};
use crate::state::SessionState;
use crate::store::{FindingFilter, FindingPage};

/// The durable totals behind `/api/summary`: verify's `totals`, kept live. `unclaimed` and
/// `pending` are the sessions overdue or waiting *now*; `redispatches` and `unexpected_runner`
/// stay 0 (live mode has no expectation to break).
pub type Summary = Totals;

/// A question for the actor, answered on its own thread from its own state.
#[derive(Debug)]
pub enum Lookup {
    Session(SessionId, oneshot::Sender<Option<SessionView>>),
    /// A page of the findings kept in memory (a serve without a store; with one, the store
    /// answers).
    Findings {
        filter: FindingFilter,
        reply: oneshot::Sender<FindingPage>,
    },
    /// Each org's flag, go share and last flip; `None` without a platform configured.
    Orgs(oneshot::Sender<Option<Vec<crate::platform::OrgView>>>),
}

/// The Redis claim key of an overdue session, read as a second witness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Witness {
    pub holder: Option<String>,
}

/// Everything known about one session (`GET /api/sessions/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SessionView {
    pub session_id: String,
    /// Judged against the latest event time seen; `null` for a session never dispatched.
    pub outcome: Option<&'static str>,
    pub org: Option<String>,
    pub runner: Option<&'static str>,
    pub dispatched_at: Option<String>,
    pub deadline: Option<String>,
    pub latency_seconds: Option<f64>,
    pub duplicate_claim: bool,
    pub reclaims: u32,
    /// With Redis configured, for a session overdue without a claim line: who holds its
    /// `work:claim:<id>` key (`null` inside: nobody).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_claim_witness: Option<Witness>,
    /// Every event, oldest first, each citing `source:line`.
    pub events: Vec<Evidence>,
}

/// One session as the correlation state holds it; `source_name` names an origin's input.
pub fn session(
    s: SessionState,
    findings: &Findings,
    source_name: impl Fn(u16) -> String,
    id: &SessionId,
) -> SessionView {
    let source = |o: Origin| format!("{}:{}", source_name(o.input), o.line);
    SessionView {
        session_id: id.to_string(),
        outcome: s.outcome.map(Outcome::as_str),
        org: s.org,
        runner: s.runner.map(|r| r.as_str()),
        dispatched_at: s.dispatched_at.map(Timestamp::to_rfc3339),
        deadline: s.deadline.map(Timestamp::to_rfc3339),
        latency_seconds: s.latency_ms.map(|ms| ms as f64 / 1000.0),
        duplicate_claim: s.duplicate,
        reclaims: s.reclaims,
        redis_claim_witness: findings
            .witness(id.as_str())
            .map(|w| Witness { holder: w.clone() }),
        events: s
            .records
            .into_iter()
            .map(|r| {
                Evidence::new(
                    r.kind,
                    r.runner,
                    r.time,
                    r.worker,
                    r.detail.as_deref(),
                    match &r.source {
                        // Named by the state: the same on every replica.
                        Some(name) => format!("{name}:{}", r.origin.line),
                        None => source(r.origin),
                    },
                )
            })
            .collect(),
    }
}
