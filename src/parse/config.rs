//! The `[parse]` table in two layers: the raw serde mirror (`deny_unknown_fields`, every key
//! optional) and the validated [`ParseConfig`] the parser runs on. The top-level `config`
//! module assembles it with the other stages' tables; nothing here knows about them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::event::EventKind;

/// Why a `[parse]` table is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseConfigError {
    #[error("invalid field path {path:?}: segments must be non-empty")]
    BadPath { path: String },
    #[error("event name {name:?} is mapped to both {first} and {second}")]
    AmbiguousEventName {
        name: String,
        first: &'static str,
        second: &'static str,
    },
    #[error("{key} must not be empty")]
    Empty { key: &'static str },
    #[error("{key}: {message}")]
    Invalid { key: &'static str, message: String },
}

/// The `[parse]` table: where each field lives in a log object and what the events are called.
/// Every list is tried in order; the first path that holds a value wins ("top level first, then
/// under `context`").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawParseConfig {
    pub event_paths: Vec<String>,
    pub session_id_paths: Vec<String>,
    pub runner_paths: Vec<String>,
    pub runtime_paths: Vec<String>,
    pub org_paths: Vec<String>,
    pub worker_paths: Vec<String>,
    pub version_paths: Vec<String>,
    pub auth_mode_paths: Vec<String>,
    pub status_paths: Vec<String>,
    pub reason_paths: Vec<String>,
    pub time_paths: Vec<String>,
    /// The envelope field that holds a nested log line (Vercel drains put it in `message`).
    pub message_path: String,
    /// The envelope's own time (Vercel: epoch ms), used when the event carries none.
    pub envelope_time_path: String,
    pub events: RawEventNames,
    /// Longer lines are rejected as `too_long` (if they look relevant) without being parsed.
    pub max_line_bytes: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawEventNames {
    pub dispatch: Vec<String>,
    pub claim: Vec<String>,
    pub completion: Vec<String>,
    pub heartbeat: Vec<String>,
    pub release: Vec<String>,
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

impl Default for RawParseConfig {
    fn default() -> Self {
        RawParseConfig {
            event_paths: strings(&["event", "context.event"]),
            session_id_paths: strings(&["sessionId", "session_id", "context.sessionId"]),
            runner_paths: strings(&["resolvedProfile.runner", "context.resolvedProfile.runner"]),
            runtime_paths: strings(&["runtime", "runner", "context.runtime"]),
            org_paths: strings(&[
                "organizationId",
                "orgId",
                "organization_id",
                "context.organizationId",
                "context.orgId",
                "context.organization_id",
            ]),
            worker_paths: strings(&["workerId", "worker_id", "context.workerId"]),
            version_paths: strings(&["version", "context.version"]),
            auth_mode_paths: strings(&[
                "resolvedProfile.authMode",
                "context.resolvedProfile.authMode",
            ]),
            status_paths: strings(&["status", "context.status"]),
            reason_paths: strings(&["reason", "context.reason"]),
            time_paths: strings(&["time", "timestamp", "ts", "@timestamp"]),
            message_path: "message".into(),
            envelope_time_path: "timestamp".into(),
            events: RawEventNames::default(),
            max_line_bytes: 1 << 20,
        }
    }
}

impl Default for RawEventNames {
    fn default() -> Self {
        RawEventNames {
            dispatch: strings(&["dispatch"]),
            claim: strings(&["claimed"]),
            completion: strings(&["completed", "failed"]),
            heartbeat: strings(&["heartbeat"]),
            release: strings(&["nack", "released"]),
        }
    }
}

/// A dotted path into a JSON object, split once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath(pub Vec<String>);

impl FieldPath {
    fn parse(path: &str) -> Result<FieldPath, ParseConfigError> {
        let parts: Vec<String> = path.split('.').map(str::to_owned).collect();
        if parts.iter().any(String::is_empty) {
            return Err(ParseConfigError::BadPath { path: path.into() });
        }
        Ok(FieldPath(parts))
    }

    fn list(key: &'static str, paths: &[String]) -> Result<Vec<FieldPath>, ParseConfigError> {
        if paths.is_empty() {
            return Err(ParseConfigError::Empty { key });
        }
        paths.iter().map(|p| FieldPath::parse(p)).collect()
    }
}

/// Validated parse configuration.
#[derive(Debug, Clone)]
pub struct ParseConfig {
    pub event: Vec<FieldPath>,
    pub session_id: Vec<FieldPath>,
    pub runner: Vec<FieldPath>,
    pub runtime: Vec<FieldPath>,
    pub org: Vec<FieldPath>,
    pub worker: Vec<FieldPath>,
    pub version: Vec<FieldPath>,
    pub auth_mode: Vec<FieldPath>,
    pub status: Vec<FieldPath>,
    pub reason: Vec<FieldPath>,
    pub time: Vec<FieldPath>,
    pub message: FieldPath,
    pub envelope_time: FieldPath,
    /// Event name → kind. A `BTreeMap` keeps lookups deterministic and the set small.
    pub event_names: BTreeMap<String, EventKind>,
    pub max_line_bytes: usize,
}

impl Default for ParseConfig {
    fn default() -> Self {
        // The defaults are valid by construction; a test keeps it that way.
        ParseConfig::new(&RawParseConfig::default()).unwrap_or_else(|e| unreachable!("{e}"))
    }
}

impl ParseConfig {
    pub fn new(raw: &RawParseConfig) -> Result<ParseConfig, ParseConfigError> {
        let mut event_names = BTreeMap::new();
        let groups = [
            (EventKind::Dispatch, &raw.events.dispatch),
            (EventKind::Claim, &raw.events.claim),
            (EventKind::Completion, &raw.events.completion),
            (EventKind::Heartbeat, &raw.events.heartbeat),
            (EventKind::Release, &raw.events.release),
        ];
        for (kind, names) in groups {
            for name in names {
                if let Some(first) = event_names.insert(name.clone(), kind) {
                    return Err(ParseConfigError::AmbiguousEventName {
                        name: name.clone(),
                        first: first.as_str(),
                        second: kind.as_str(),
                    });
                }
            }
        }
        if raw.max_line_bytes < 64 {
            return Err(ParseConfigError::Invalid {
                key: "parse.max_line_bytes",
                message: "must be at least 64".into(),
            });
        }
        Ok(ParseConfig {
            event: FieldPath::list("parse.event_paths", &raw.event_paths)?,
            session_id: FieldPath::list("parse.session_id_paths", &raw.session_id_paths)?,
            runner: FieldPath::list("parse.runner_paths", &raw.runner_paths)?,
            runtime: FieldPath::list("parse.runtime_paths", &raw.runtime_paths)?,
            org: FieldPath::list("parse.org_paths", &raw.org_paths)?,
            worker: FieldPath::list("parse.worker_paths", &raw.worker_paths)?,
            version: FieldPath::list("parse.version_paths", &raw.version_paths)?,
            auth_mode: FieldPath::list("parse.auth_mode_paths", &raw.auth_mode_paths)?,
            status: FieldPath::list("parse.status_paths", &raw.status_paths)?,
            reason: FieldPath::list("parse.reason_paths", &raw.reason_paths)?,
            time: FieldPath::list("parse.time_paths", &raw.time_paths)?,
            message: FieldPath::parse(&raw.message_path)?,
            envelope_time: FieldPath::parse(&raw.envelope_time_path)?,
            event_names,
            max_line_bytes: raw.max_line_bytes,
        })
    }
}
