//! parse: one raw line in, at most one [`Event`] out (PRODUCT.md §1).
//!
//! Every line shape is detected per line: a bare JSON object, a text prefix followed by a JSON
//! object (Lambda tab prefix, `<RFC 3339> INFO {…}`, `[work-queue] Work queued {…}`), and a
//! Vercel drain entry whose `message` string holds one of those. A line is *ignored* when it is
//! not one of our events, and *rejected* with a [`Reject`] reason when it is one but is broken.
//!
//! parse never does I/O, never reads a clock (a live caller passes the receive time in
//! [`LineContext`]) and never panics on input: a fuzz-style property test feeds it arbitrary bytes.

pub mod config;
pub mod drain;
mod extract;
pub mod scan;
pub mod time;

use memchr::memmem;

pub use self::config::{FieldPath, ParseConfig, ParseConfigError, RawEventNames, RawParseConfig};
use crate::event::{Event, EventKind, Name, Runner, SessionId, Timestamp};
use crate::newlines::Newlines;
use extract::{Extractor, Scalar, Slots};
use scan::Prefilter;

use crate::overlong::LineLimit;

/// Why a relevant line was rejected. A fixed set: these are metric labels and report keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reject {
    /// Looks like one of our events but is not a well-formed JSON object (truncated, invalid
    /// UTF-8, control bytes…).
    MalformedJson,
    /// No non-empty string at any sessionId path.
    MissingSessionId,
    /// A claim/completion/heartbeat/release that names no runtime, read from a source with no
    /// default runtime.
    MissingRuntime,
    /// No usable time in the event, its envelope or its text prefix (batch mode only).
    MissingTime,
    /// A time field that is present but not RFC 3339 or an epoch number.
    BadTime,
    /// Longer than `max_line_bytes`; not parsed.
    TooLong,
}

impl Reject {
    pub const ALL: [Reject; 6] = [
        Reject::MalformedJson,
        Reject::MissingSessionId,
        Reject::MissingRuntime,
        Reject::MissingTime,
        Reject::BadTime,
        Reject::TooLong,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reject::MalformedJson => "malformed_json",
            Reject::MissingSessionId => "missing_session_id",
            Reject::MissingRuntime => "missing_runtime",
            Reject::MissingTime => "missing_time",
            Reject::BadTime => "bad_time",
            Reject::TooLong => "too_long",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Event(Event),
    Ignored,
    Rejected(Reject),
}

/// What the caller knows about a line that the line itself may not say.
#[derive(Debug, Clone, Copy, Default)]
pub struct LineContext {
    /// The runtime of claims/completions/heartbeats/releases that do not name one
    /// (`--claims go=PATH`).
    pub default_runtime: Option<Runner>,
    /// Live mode: the receive time, used when the event has no time. Batch mode: `None`, and
    /// such an event is rejected as `missing_time`.
    pub received_at: Option<Timestamp>,
}

/// Slot numbers of each configured path group, in priority order.
#[derive(Debug)]
struct Groups {
    event: Vec<usize>,
    session_id: Vec<usize>,
    runner: Vec<usize>,
    runtime: Vec<usize>,
    org: Vec<usize>,
    worker: Vec<usize>,
    version: Vec<usize>,
    auth_mode: Vec<usize>,
    status: Vec<usize>,
    reason: Vec<usize>,
    time: Vec<usize>,
    message: usize,
    envelope_time: usize,
}

/// A compiled [`ParseConfig`]; cheap to share between threads by reference.
#[derive(Debug)]
pub struct Parser {
    config: ParseConfig,
    extractor: Extractor,
    groups: Groups,
    /// `"name"` and `\"name\"` for every event name: a broken line that contains one is
    /// relevant (rejected), one that does not is noise (ignored).
    relevance: Vec<memmem::Finder<'static>>,
    /// The last segment of every event path (`event`): a line that does not contain one cannot
    /// be an event, so it is ignored without being parsed. Most noise never reaches serde_json.
    /// (One memmem per key; a multi-pattern automaton over the event names measured twice as
    /// slow on short lines.)
    event_keys: Vec<memmem::Finder<'static>>,
    /// The configured event names as bytes (a handful: a list beats the map's string
    /// compares, and a line's name need not be made text first).
    event_names: Vec<(Box<[u8]>, EventKind)>,
    /// The lines worth parsing at all, found over a whole chunk (`scan`).
    prefilter: Prefilter,
    /// What an over-long line is (`overlong`).
    limit: LineLimit,
}

impl Parser {
    pub fn new(config: ParseConfig) -> Parser {
        let mut ex = Extractor::new();
        let mut group =
            |paths: &[FieldPath]| -> Vec<usize> { paths.iter().map(|p| ex.slot(p)).collect() };
        let groups = Groups {
            event: group(&config.event),
            session_id: group(&config.session_id),
            runner: group(&config.runner),
            runtime: group(&config.runtime),
            org: group(&config.org),
            worker: group(&config.worker),
            version: group(&config.version),
            auth_mode: group(&config.auth_mode),
            status: group(&config.status),
            reason: group(&config.reason),
            time: group(&config.time),
            message: group(std::slice::from_ref(&config.message))[0],
            envelope_time: group(std::slice::from_ref(&config.envelope_time))[0],
        };
        let relevance: Vec<memmem::Finder<'static>> = config
            .event_names
            .keys()
            .flat_map(|n| [format!("\"{n}\""), format!("\\\"{n}\\\"")])
            .map(|p| memmem::Finder::new(p.as_bytes()).into_owned())
            .collect();
        let mut keys: Vec<&str> = config
            .event
            .iter()
            .filter_map(|p| p.0.last())
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let event_keys: Vec<memmem::Finder<'static>> = keys
            .iter()
            .map(|k| memmem::Finder::new(k.as_bytes()).into_owned())
            .collect();
        let prefilter = Prefilter::new(config.event_names.keys().map(String::as_str));
        // A line whose first event path holds another name is ignored, whatever else it holds
        // (`first` below takes that value): past it, the fast path only checks the line.
        if let Some(&slot) = groups.event.first() {
            let names = config
                .event_names
                .keys()
                .map(|n| n.as_bytes().into())
                .collect();
            ex.decide_on(slot, names);
        }
        let limit = LineLimit::new(config.max_line_bytes, &event_keys, &relevance);
        let event_names = config
            .event_names
            .iter()
            .map(|(n, &kind)| (n.as_bytes().into(), kind))
            .collect();
        Parser {
            event_names,
            limit,
            config,
            prefilter,
            extractor: ex,
            groups,
            relevance,
            event_keys,
        }
    }

    pub fn max_line_bytes(&self) -> usize {
        self.config.max_line_bytes
    }

    /// The rule for over-long lines, for the readers that skip them.
    pub fn line_limit(&self) -> &LineLimit {
        &self.limit
    }

    /// Calls `each(line_number, line)` for every line of `data` (whole lines numbered from
    /// `first_line`; `newlines` their index) that may parse as something other than
    /// [`Parsed::Ignored`], and returns the number of lines in `data`. Every line it skips,
    /// `parse_line` would ignore.
    pub fn candidates(
        &self,
        data: &[u8],
        newlines: &Newlines,
        first_line: u64,
        each: impl FnMut(u64, &[u8]),
    ) -> u64 {
        self.prefilter.candidates(data, newlines, first_line, each)
    }

    /// Whether `line` is one [`Parser::candidates`] would hand out.
    pub fn is_candidate(&self, line: &[u8]) -> bool {
        self.prefilter.is_candidate(line)
    }

    /// Whether a line that could not be parsed looks like one of our events: it holds an
    /// event key (`event`) and a quoted event name (`"claimed"`, or `\"claimed\"` inside a
    /// drain entry). A line cut before its event key cannot be told from noise and is ignored.
    pub fn looks_relevant(&self, line: &[u8]) -> bool {
        self.has_event_key(line) && self.relevance.iter().any(|f| f.find(line).is_some())
    }

    /// The kind of the event called `name`, if it is one of ours.
    fn event_kind(&self, name: &[u8]) -> Option<EventKind> {
        self.event_names
            .iter()
            .find(|(n, _)| **n == *name)
            .map(|&(_, kind)| kind)
    }

    fn has_event_key(&self, bytes: &[u8]) -> bool {
        self.event_keys.iter().any(|k| k.find(bytes).is_some())
    }

    /// Parses one line (with or without its `\n` / `\r\n`).
    pub fn parse_line(&self, line: &[u8], ctx: &LineContext) -> Parsed {
        if self.limit.exceeded(line) {
            return self
                .limit
                .judge(line)
                .map_or(Parsed::Ignored, Parsed::Rejected);
        }
        let line = trim_eol(line);
        self.parse_shape(line, ctx, None, true)
    }

    /// Splits a line into text prefix and JSON object and parses the object. `envelope` is the
    /// time of an enclosing drain entry; `outer` allows one level of `message` nesting.
    fn parse_shape(
        &self,
        line: &[u8],
        ctx: &LineContext,
        envelope: Option<Timestamp>,
        outer: bool,
    ) -> Parsed {
        // Most lines are bare objects: no search for them.
        let start = if line.first() == Some(&b'{') {
            0
        } else {
            match memchr::memchr(b'{', line) {
                Some(start) => start,
                None => return Parsed::Ignored,
            }
        };
        let (prefix, json) = line.split_at(start);
        let g = &self.groups;
        let mut slots = Slots::default();
        let plain = self.extractor.extract_plain(json, &mut slots);
        if plain && slots.decided() {
            // Well-formed, and its first event path holds another name (a decoy: most
            // candidate lines): ignored without a look at its slots.
            return Parsed::Ignored;
        }
        // A line without an event key is noise, whatever it holds. The fast path found a
        // value at an event path only if the key is written plainly in the line, so the
        // search is needed only when it did not.
        let event_found = plain && g.event.iter().any(|&s| slots.get(s).is_some());
        if outer && !event_found && !self.has_event_key(json) {
            return Parsed::Ignored;
        }
        if !plain && self.extractor.extract_serde(json, &mut slots).is_err() {
            return if self.looks_relevant(line) {
                Parsed::Rejected(Reject::MalformedJson)
            } else {
                Parsed::Ignored
            };
        }
        let kind = match first(&slots, &g.event) {
            // Most lines are ignored here, on their event name: their strings are never
            // made text.
            Some(name @ (Scalar::Str(_) | Scalar::Owned { .. } | Scalar::Ascii { .. })) => {
                match slots.bytes(name).and_then(|n| self.event_kind(n)) {
                    Some(kind) => kind,
                    None => return Parsed::Ignored,
                }
            }
            Some(_) => return Parsed::Ignored,
            None => {
                slots.resolve();
                // Not an event itself: maybe a drain envelope around one.
                let message = slots.get(g.message).and_then(|v| slots.text(v));
                return match (message, outer) {
                    (Some(msg), true) => {
                        let env_time = match slots.get(g.envelope_time) {
                            Some(Scalar::Num(n)) => time::from_epoch_number(*n),
                            Some(v) => slots.text(v).and_then(time::parse_rfc3339),
                            None => None,
                        };
                        self.parse_shape(trim_eol(msg.as_bytes()), ctx, env_time, false)
                    }
                    _ => Parsed::Ignored,
                };
            }
        };
        slots.resolve();
        match self.build(kind, &slots, prefix, envelope, ctx) {
            Ok(ev) => Parsed::Event(ev),
            Err(r) => Parsed::Rejected(r),
        }
    }

    fn build(
        &self,
        kind: EventKind,
        slots: &Slots,
        prefix: &[u8],
        envelope: Option<Timestamp>,
        ctx: &LineContext,
    ) -> Result<Event, Reject> {
        let g = &self.groups;
        // One reason per line shape, whatever the mode: what the line itself lacks (its
        // session id) is decided before what the context may supply (a receive time in
        // `serve`, a default runtime from `--claims go=PATH`), so `verify` and `serve` give a
        // line the same reason.
        let session = match kind {
            EventKind::Heartbeat => first_str(slots, &g.session_id).and_then(SessionId::new),
            _ => Some(
                first_str(slots, &g.session_id)
                    .and_then(SessionId::new)
                    .ok_or(Reject::MissingSessionId)?,
            ),
        };
        let time = match first(slots, &g.time) {
            Some(Scalar::Num(n)) => time::from_epoch_number(*n).ok_or(Reject::BadTime)?,
            Some(v) => slots
                .text(v)
                .and_then(time::parse_rfc3339)
                .ok_or(Reject::BadTime)?,
            None => envelope
                .or_else(|| time::leading_rfc3339(prefix))
                .or(ctx.received_at)
                .ok_or(Reject::MissingTime)?,
        };
        let runner = match kind {
            // No `runner` (or null): the legacy dispatchWork route, which is ts.
            EventKind::Dispatch => match first(slots, &g.runner) {
                None => Runner::Ts,
                Some(v) => slots.text(v).map_or(Runner::Other, Runner::from_value),
            },
            _ => match first(slots, &g.runtime).and_then(|v| slots.text(v)) {
                Some(s) if !s.is_empty() => Runner::from_value(s),
                _ => ctx.default_runtime.ok_or(Reject::MissingRuntime)?,
            },
        };
        let detail = match kind {
            EventKind::Dispatch => text(slots, &g.auth_mode),
            EventKind::Completion => {
                text(slots, &g.status).or_else(|| first_str(slots, &g.event).map(Name::new))
            }
            EventKind::Release => text(slots, &g.reason),
            EventKind::Claim | EventKind::Heartbeat => None,
        };
        let worker_event = kind != EventKind::Dispatch;
        Ok(Event {
            kind,
            session,
            runner,
            time,
            org: if worker_event {
                None
            } else {
                text(slots, &g.org)
            },
            worker: if worker_event {
                text(slots, &g.worker)
            } else {
                None
            },
            version: if worker_event {
                text(slots, &g.version)
            } else {
                None
            },
            detail,
        })
    }
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The first present, non-null value among `group`'s slots.
fn first<'s, 'a>(slots: &'s Slots<'a>, group: &[usize]) -> Option<&'s Scalar<'a>> {
    group
        .iter()
        .filter_map(|&i| slots.get(i))
        .find(|v| !matches!(v, Scalar::Null))
}

fn first_str<'s>(slots: &'s Slots, group: &[usize]) -> Option<&'s str> {
    slots.text(first(slots, group)?)
}

/// A label-like field: a non-empty string, or a number written as JSON wrote it.
fn text(slots: &Slots, group: &[usize]) -> Option<Name> {
    match first(slots, group)? {
        Scalar::Num(n) => Some(compact_str::format_compact!("{n}")),
        v => slots.text(v).filter(|s| !s.is_empty()).map(Name::new),
    }
}

#[cfg(test)]
mod tests;
