//! The domain vocabulary every stage speaks: the five normalised events of PRODUCT.md §1.1 and
//! the small types they are made of. Nothing here does I/O or reads a clock.

use std::fmt;

/// Milliseconds since the Unix epoch, UTC. Event times are compared in this unit everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const MIN: Timestamp = Timestamp(i64::MIN);

    pub fn millis(self) -> i64 {
        self.0
    }

    pub fn saturating_add_ms(self, ms: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(ms))
    }

    /// RFC 3339 in UTC with millisecond precision, the form every report prints.
    pub fn to_rfc3339(self) -> String {
        match chrono::DateTime::from_timestamp_millis(self.0) {
            Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            None => format!("@{}ms", self.0),
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// Which runtime a session was dispatched to, or which runtime claimed it.
///
/// `Other` keeps any value that is neither `go` nor `ts`; such a value is a finding in itself,
/// and `Other` never equals anything when outcomes are judged (see `Runner::serves`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Runner {
    Go,
    Ts,
    Other,
}

impl Runner {
    pub const ALL: [Runner; 3] = [Runner::Go, Runner::Ts, Runner::Other];

    pub fn as_str(self) -> &'static str {
        match self {
            Runner::Go => "go",
            Runner::Ts => "ts",
            Runner::Other => "other",
        }
    }

    /// Exact, case-sensitive, like the platform's resolver: `"Go"` is not `go`.
    pub fn from_value(s: &str) -> Runner {
        match s {
            "go" => Runner::Go,
            "ts" => Runner::Ts,
            _ => Runner::Other,
        }
    }

    /// Whether a claim by `self` satisfies a dispatch to `dispatched`.
    pub fn serves(self, dispatched: Runner) -> bool {
        self == dispatched && self != Runner::Other
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Runner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a finding is about (`GET /api/findings`, the store's `findings` table). Its `as_str`
/// is the `kind` of the JSON API and of the stored row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, utoipa::ToSchema)]
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

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A short string stored inline (up to 24 bytes), so the ids and names of an event cost no
/// allocation: events are made on parser threads and consumed on the correlator's.
pub type Name = compact_str::CompactString;

/// A session id as it appeared in the log: a non-empty string.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(Name);

impl SessionId {
    /// `None` for the empty string: an empty id is a malformed line, not a session.
    pub fn new(s: &str) -> Option<SessionId> {
        (!s.is_empty()).then(|| SessionId(Name::new(s)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id's text, without a copy.
    pub fn into_name(self) -> Name {
        self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventKind {
    Dispatch,
    Claim,
    Completion,
    Heartbeat,
    Release,
}

impl EventKind {
    pub const ALL: [EventKind; 5] = [
        EventKind::Dispatch,
        EventKind::Claim,
        EventKind::Completion,
        EventKind::Heartbeat,
        EventKind::Release,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Dispatch => "dispatch",
            EventKind::Claim => "claim",
            EventKind::Completion => "completion",
            EventKind::Heartbeat => "heartbeat",
            EventKind::Release => "release",
        }
    }
}

/// One normalised input event. Which optional fields are set depends on `kind`:
///
/// | kind | session | runner | org | worker | version | detail |
/// |---|---|---|---|---|---|---|
/// | dispatch | yes | `resolvedProfile.runner` (absent = ts) | maybe | - | - | authMode |
/// | claim | yes | runtime | - | maybe | maybe | - |
/// | completion | yes | runtime | - | maybe | - | status |
/// | heartbeat | - | runtime | - | maybe | maybe | - |
/// | release | yes | runtime | - | maybe | - | reason |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub session: Option<SessionId>,
    pub runner: Runner,
    pub time: Timestamp,
    pub org: Option<Name>,
    pub worker: Option<Name>,
    pub version: Option<Name>,
    pub detail: Option<Name>,
}

/// Where a line came from: which input (an index into the caller's list) and which line of it.
/// Reports cite it as evidence (`dispatch.log:1042`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Origin {
    pub input: u16,
    pub line: u32,
}
