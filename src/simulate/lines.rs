//! The text of every simulated log line: dispatches in each shape of PRODUCT.md §1.2, Vercel
//! drain entries around them, Go `slog` and TS logger worker lines, and the noise that real
//! logs are full of. Each builder appends one line (no newline) to a buffer; randomness stays
//! with the caller.

use crate::event::EventKind;

use super::model::Worker;
use super::write::{Zone, push_go_log_time, push_i64, push_json_escaped, push_time, push_u64};

/// The shapes a dispatch line is logged in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    /// `{"event":"dispatch",…,"time":"<RFC 3339>"}`
    Bare,
    /// `<RFC 3339>\t<request id>\tINFO\t{…}` (AWS Lambda console.log); no time in the object.
    Lambda,
    /// `<RFC 3339> INFO {…}`; no time in the object.
    Info,
    /// `[work-queue] Work queued {…,"ts":<epoch ms>}`
    WorkQueue,
    /// The platform's TS logger: `{"timestamp",…,"context":{"event":"dispatch",…}}`.
    TsLogger,
}

impl Shape {
    pub const ALL: [Shape; 5] = [
        Shape::Bare,
        Shape::Lambda,
        Shape::Info,
        Shape::WorkQueue,
        Shape::TsLogger,
    ];

    /// Whether the JSON object carries its own time (else the prefix or envelope gives it).
    pub fn has_own_time(self) -> bool {
        !matches!(self, Shape::Lambda | Shape::Info)
    }
}

/// Where the org id is logged: three spellings coexist in the platform's code.
pub(super) const ORG_KEYS: [&str; 3] = ["organizationId", "orgId", "organization_id"];

/// The fields of one dispatch line.
#[derive(Debug, Clone, Copy)]
pub(super) struct Dispatch<'a> {
    /// Empty for the `missing_session_id` fault.
    pub session: &'a [u8],
    /// `(key, org id)`; `None` when the line names no org.
    pub org: Option<(&'a str, &'a str)>,
    /// `resolvedProfile.runner`; `None` for the legacy shape without it.
    pub runner: Option<&'a str>,
    pub auth_mode: &'a str,
    pub time: i64,
    /// Written instead of the real time (the `bad_time` fault); only for `Shape::Bare`.
    pub bad_time: Option<&'a str>,
    /// The zone of a text-prefix time.
    pub zone: Zone,
    /// A 36-character request id for the Lambda prefix.
    pub request_id: &'a [u8],
}

/// `"key":"value"`, the value written as given (already escaped).
pub(super) fn str_field(buf: &mut Vec<u8>, key: &str, value: &[u8]) {
    buf.push(b'"');
    buf.extend_from_slice(key.as_bytes());
    buf.extend_from_slice(b"\":\"");
    buf.extend_from_slice(value);
    buf.push(b'"');
}

/// `"key":"<RFC 3339 time>"` in `zone`.
pub(super) fn time_field(buf: &mut Vec<u8>, key: &str, ms: i64, zone: Zone) {
    buf.push(b'"');
    buf.extend_from_slice(key.as_bytes());
    buf.extend_from_slice(b"\":\"");
    push_time(buf, ms, zone);
    buf.push(b'"');
}

/// `{"event":"dispatch","sessionId":…,<org>,"resolvedProfile":{…}<tail>}` without the closing
/// brace, so the caller can add a time field.
fn dispatch_object(buf: &mut Vec<u8>, d: &Dispatch) {
    buf.extend_from_slice(b"{\"event\":\"dispatch\",");
    str_field(buf, "sessionId", d.session);
    if let Some((key, org)) = d.org {
        buf.push(b',');
        str_field(buf, key, org.as_bytes());
    }
    buf.extend_from_slice(b",\"resolvedProfile\":{");
    if let Some(runner) = d.runner {
        str_field(buf, "runner", runner.as_bytes());
        buf.push(b',');
    }
    str_field(buf, "authMode", d.auth_mode.as_bytes());
    buf.extend_from_slice(b",\"model\":\"claude-sonnet-4-5\"},\"priority\":5");
}

/// One dispatch line in `shape`. A Lambda line inside a Vercel message ends in `\n`, as
/// Lambda's console does; pass `trailing_newline` for that.
pub(super) fn dispatch(buf: &mut Vec<u8>, d: &Dispatch, shape: Shape, trailing_newline: bool) {
    match shape {
        Shape::Bare => {
            dispatch_object(buf, d);
            buf.push(b',');
            match d.bad_time {
                Some(bad) => str_field(buf, "time", bad.as_bytes()),
                None => time_field(buf, "time", d.time, Zone::Utc),
            }
            buf.push(b'}');
        }
        Shape::Lambda => {
            push_time(buf, d.time, Zone::Utc);
            buf.push(b'\t');
            buf.extend_from_slice(d.request_id);
            buf.extend_from_slice(b"\tINFO\t");
            dispatch_object(buf, d);
            buf.push(b'}');
            if trailing_newline {
                buf.push(b'\n');
            }
        }
        Shape::Info => {
            push_time(buf, d.time, d.zone);
            buf.extend_from_slice(b" INFO ");
            dispatch_object(buf, d);
            buf.push(b'}');
        }
        Shape::WorkQueue => {
            buf.extend_from_slice(b"[work-queue] Work queued ");
            dispatch_object(buf, d);
            buf.extend_from_slice(b",\"ts\":");
            push_i64(buf, d.time);
            buf.push(b'}');
        }
        Shape::TsLogger => {
            buf.push(b'{');
            time_field(buf, "timestamp", d.time, Zone::Utc);
            buf.extend_from_slice(
                b",\"level\":\"info\",\"message\":\"dispatched\",\"service\":\"platform\",\"context\":",
            );
            dispatch_object(buf, d);
            buf.extend_from_slice(b"}}");
        }
    }
}

/// The fields of a Vercel log-drain entry other than its message.
#[derive(Debug, Clone, Copy)]
pub(super) struct Envelope<'a> {
    /// Unique per entry; a re-delivery repeats it.
    pub id: &'a [u8],
    pub timestamp: i64,
    pub request_id: &'a [u8],
    pub deployment: &'a [u8],
    pub project: &'a [u8],
    pub path: &'a str,
}

/// `{"id":…,"message":"<message, escaped>","timestamp":…,"source":"lambda",…}`
pub(super) fn vercel(buf: &mut Vec<u8>, env: &Envelope, message: &[u8]) {
    buf.extend_from_slice(b"{\"id\":\"");
    buf.extend_from_slice(env.id);
    buf.extend_from_slice(b"\",\"message\":\"");
    push_json_escaped(buf, message);
    buf.extend_from_slice(b"\",\"timestamp\":");
    push_i64(buf, env.timestamp);
    buf.extend_from_slice(b",\"source\":\"lambda\",");
    str_field(buf, "requestId", env.request_id);
    buf.push(b',');
    str_field(buf, "deploymentId", env.deployment);
    buf.push(b',');
    str_field(buf, "projectId", env.project);
    buf.extend_from_slice(b",\"host\":\"platform.rensei.dev\",");
    str_field(buf, "path", env.path.as_bytes());
    buf.extend_from_slice(b",\"level\":\"info\"}");
}

/// One worker-side event as a worker logs it.
#[derive(Debug, Clone, Copy)]
pub(super) struct WorkerEvent<'a> {
    pub time: i64,
    /// Claim, completion, release or heartbeat; workers never log a dispatch, and the
    /// builders write one as a heartbeat rather than panic.
    pub kind: EventKind,
    pub worker: &'a Worker,
    pub zone: Zone,
    /// Unused for heartbeats.
    pub session: &'a [u8],
    /// Name the runtime on the line instead of relying on the source default.
    pub explicit_runtime: bool,
    /// Completion: run time in ms. Release: reason index. Heartbeat: sessions in flight.
    pub extra: u32,
    pub failed: bool,
}

const GO_NACK_REASONS: [&str; 3] = ["capacity", "shutting down", "workspace busy"];
const TS_RELEASE_REASONS: [&str; 3] = ["stale-claim", "worker shutdown", "capacity"];

/// A Go daemon `slog` JSON line.
pub(super) fn go_event(buf: &mut Vec<u8>, e: &WorkerEvent) {
    buf.push(b'{');
    time_field(buf, "time", e.time, e.zone);
    let head: &[u8] = match e.kind {
        EventKind::Claim => b",\"level\":\"INFO\",\"msg\":\"claimed\",\"event\":\"claimed\"",
        EventKind::Completion if e.failed => {
            b",\"level\":\"ERROR\",\"msg\":\"session failed\",\"event\":\"failed\""
        }
        EventKind::Completion => {
            b",\"level\":\"INFO\",\"msg\":\"session completed\",\"event\":\"completed\""
        }
        EventKind::Release => {
            b",\"level\":\"WARN\",\"msg\":\"nacked work item\",\"event\":\"nack\""
        }
        EventKind::Heartbeat | EventKind::Dispatch => {
            b",\"level\":\"INFO\",\"msg\":\"heartbeat\",\"event\":\"heartbeat\""
        }
    };
    buf.extend_from_slice(head);
    if e.kind != EventKind::Heartbeat {
        buf.push(b',');
        str_field(buf, "sessionId", e.session);
    }
    if e.explicit_runtime {
        buf.extend_from_slice(b",\"runtime\":\"go\"");
    }
    buf.push(b',');
    str_field(buf, "workerId", e.worker.id.as_bytes());
    match e.kind {
        EventKind::Claim => {
            buf.push(b',');
            str_field(buf, "version", e.worker.version.as_bytes());
        }
        EventKind::Completion => {
            let status: &[u8] = if e.failed { b"error" } else { b"succeeded" };
            buf.push(b',');
            str_field(buf, "status", status);
            buf.extend_from_slice(b",\"durationMs\":");
            push_u64(buf, u64::from(e.extra));
            if e.failed {
                buf.extend_from_slice(b",\"error\":\"runner exited with status 1\"");
            }
        }
        EventKind::Release => {
            buf.push(b',');
            str_field(
                buf,
                "reason",
                GO_NACK_REASONS[e.extra as usize % 3].as_bytes(),
            );
        }
        EventKind::Heartbeat | EventKind::Dispatch => {
            buf.push(b',');
            str_field(buf, "version", e.worker.version.as_bytes());
            buf.extend_from_slice(b",\"inflight\":");
            push_u64(buf, u64::from(e.extra));
        }
    }
    buf.push(b'}');
}

/// A TS worker logger line: ids nested under `context`.
pub(super) fn ts_event(buf: &mut Vec<u8>, e: &WorkerEvent) {
    buf.push(b'{');
    time_field(buf, "timestamp", e.time, Zone::Utc);
    let head: &[u8] = match e.kind {
        EventKind::Claim => b",\"level\":\"info\",\"message\":\"Work claimed\"",
        EventKind::Completion if e.failed => b",\"level\":\"error\",\"message\":\"Work failed\"",
        EventKind::Completion => b",\"level\":\"info\",\"message\":\"Work completed\"",
        EventKind::Release => b",\"level\":\"warn\",\"message\":\"Claim released\"",
        EventKind::Heartbeat | EventKind::Dispatch => {
            b",\"level\":\"info\",\"message\":\"Heartbeat\""
        }
    };
    buf.extend_from_slice(head);
    buf.extend_from_slice(b",\"service\":\"donmai-worker\",\"context\":{\"event\":\"");
    buf.extend_from_slice(match e.kind {
        EventKind::Claim => b"claimed",
        EventKind::Completion if e.failed => b"failed",
        EventKind::Completion => b"completed",
        EventKind::Release => b"released",
        EventKind::Heartbeat | EventKind::Dispatch => b"heartbeat",
    });
    buf.push(b'"');
    if e.kind != EventKind::Heartbeat {
        buf.push(b',');
        str_field(buf, "sessionId", e.session);
    }
    if e.explicit_runtime {
        buf.extend_from_slice(b",\"runtime\":\"ts\"");
    }
    buf.push(b',');
    str_field(buf, "workerId", e.worker.id.as_bytes());
    match e.kind {
        EventKind::Claim => {}
        EventKind::Completion => {
            let status: &[u8] = if e.failed { b"error" } else { b"succeeded" };
            buf.push(b',');
            str_field(buf, "status", status);
            buf.extend_from_slice(b",\"durationMs\":");
            push_u64(buf, u64::from(e.extra));
        }
        EventKind::Release => {
            buf.push(b',');
            str_field(
                buf,
                "reason",
                TS_RELEASE_REASONS[e.extra as usize % 3].as_bytes(),
            );
        }
        EventKind::Heartbeat | EventKind::Dispatch => {
            buf.push(b',');
            str_field(buf, "version", e.worker.version.as_bytes());
            buf.extend_from_slice(b",\"activeSessions\":");
            push_u64(buf, u64::from(e.extra));
        }
    }
    buf.extend_from_slice(b"}}");
}

/// Noise of the dispatch side: lines that parse as nothing.
#[derive(Debug, Clone, Copy)]
pub(super) enum PlatformNoise {
    /// `<time>\t<req>\tINFO\tPOST /api/agent-sessions 201 in 43ms`
    Request { ms: u32 },
    /// `GET /api/health 200`
    Health,
    /// A JSON log object with no `event` field.
    Profile,
    /// `{"event":"poll",…}`: an event name that is none of ours.
    Poll { depth: u32 },
}

pub(super) fn platform_noise(
    buf: &mut Vec<u8>,
    noise: PlatformNoise,
    time: i64,
    request_id: &[u8],
    org: &str,
) {
    match noise {
        PlatformNoise::Request { ms } => {
            push_time(buf, time, Zone::Utc);
            buf.push(b'\t');
            buf.extend_from_slice(request_id);
            buf.extend_from_slice(b"\tINFO\tPOST /api/agent-sessions 201 in ");
            push_u64(buf, u64::from(ms));
            buf.extend_from_slice(b"ms");
        }
        PlatformNoise::Health => buf.extend_from_slice(b"GET /api/health 200"),
        PlatformNoise::Profile => {
            buf.extend_from_slice(b"{\"level\":\"info\",\"msg\":\"resolved model profile\",");
            str_field(buf, "orgId", org.as_bytes());
            buf.extend_from_slice(b",\"model\":\"claude-sonnet-4-5\",\"cacheHit\":true,");
            time_field(buf, "time", time, Zone::Utc);
            buf.push(b'}');
        }
        PlatformNoise::Poll { depth } => {
            buf.extend_from_slice(b"{\"event\":\"poll\",\"queue\":\"work:queue\",\"depth\":");
            push_u64(buf, u64::from(depth));
            buf.push(b',');
            time_field(buf, "time", time, Zone::Utc);
            buf.push(b'}');
        }
    }
}

/// Noise of the Go daemon: Go's standard `log` printf lines and `slog` lines that are no event.
#[derive(Debug, Clone, Copy)]
pub(super) enum GoNoise {
    /// `2026/11/23 08:00:00 daemon poll: 2 work item(s) received`
    Poll { items: u32 },
    /// `{"time":…,"msg":"runner started","sessionId":…}`
    RunnerStarted { pid: u32 },
    /// `{"time":…,"msg":"runner exited","sessionId":…}`
    RunnerExited,
    /// `{"time":…,"msg":"poll","event":"poll",…}`
    IdlePoll,
}

pub(super) fn go_noise(buf: &mut Vec<u8>, noise: GoNoise, e: &WorkerEvent) {
    match noise {
        GoNoise::Poll { items } => {
            push_go_log_time(buf, e.time);
            buf.extend_from_slice(b" daemon poll: ");
            push_u64(buf, u64::from(items));
            buf.extend_from_slice(b" work item(s) received");
        }
        GoNoise::RunnerStarted { pid } => {
            buf.push(b'{');
            time_field(buf, "time", e.time, e.zone);
            buf.extend_from_slice(b",\"level\":\"INFO\",\"msg\":\"runner started\",");
            str_field(buf, "sessionId", e.session);
            buf.push(b',');
            str_field(buf, "workerId", e.worker.id.as_bytes());
            buf.extend_from_slice(b",\"pid\":");
            push_u64(buf, u64::from(pid));
            buf.extend_from_slice(b",\"workdir\":\"/var/lib/rensei/work/");
            buf.extend_from_slice(e.session);
            buf.extend_from_slice(b"\"}");
        }
        GoNoise::RunnerExited => {
            buf.push(b'{');
            time_field(buf, "time", e.time, e.zone);
            buf.extend_from_slice(b",\"level\":\"DEBUG\",\"msg\":\"runner exited\",");
            str_field(buf, "sessionId", e.session);
            buf.extend_from_slice(b",\"exitCode\":");
            buf.push(if e.failed { b'1' } else { b'0' });
            buf.push(b'}');
        }
        GoNoise::IdlePoll => {
            buf.push(b'{');
            time_field(buf, "time", e.time, e.zone);
            buf.extend_from_slice(b",\"level\":\"DEBUG\",\"msg\":\"poll\",\"event\":\"poll\",");
            str_field(buf, "workerId", e.worker.id.as_bytes());
            buf.extend_from_slice(b",\"items\":0}");
        }
    }
}

/// Noise of the TS worker: its own queue echo, pretty-printed text, and logger lines that are
/// no event.
#[derive(Debug, Clone, Copy)]
pub(super) enum TsNoise {
    /// `[work-queue] Work queued {"sessionId":…,"priority":5,"queuedAt":…}` (no `event`)
    WorkQueued,
    /// `<time> info  [donmai-worker] ts-worker-1 starting session ses_… in /tmp/donmai/ses_…`
    Starting,
    /// `{"timestamp":…,"message":"Uploading transcript","context":{…}}`
    Upload { bytes: u32 },
    /// `{"timestamp":…,"message":"Polling for work","context":{…}}`
    Polling { capacity: u32 },
}

pub(super) fn ts_noise(buf: &mut Vec<u8>, noise: TsNoise, e: &WorkerEvent) {
    match noise {
        TsNoise::WorkQueued => {
            buf.extend_from_slice(b"[work-queue] Work queued {");
            str_field(buf, "sessionId", e.session);
            buf.extend_from_slice(b",\"priority\":5,\"queuedAt\":");
            push_i64(buf, e.time);
            buf.push(b'}');
        }
        TsNoise::Starting => {
            push_time(buf, e.time, Zone::Utc);
            buf.extend_from_slice(b" info  [donmai-worker] ");
            buf.extend_from_slice(e.worker.id.as_bytes());
            buf.extend_from_slice(b" starting session ");
            buf.extend_from_slice(e.session);
            buf.extend_from_slice(b" in /tmp/donmai/");
            buf.extend_from_slice(e.session);
        }
        TsNoise::Upload { bytes } => {
            buf.push(b'{');
            time_field(buf, "timestamp", e.time, Zone::Utc);
            buf.extend_from_slice(
                b",\"level\":\"debug\",\"message\":\"Uploading transcript\",\"service\":\"donmai-worker\",\"context\":{",
            );
            str_field(buf, "sessionId", e.session);
            buf.push(b',');
            str_field(buf, "workerId", e.worker.id.as_bytes());
            buf.extend_from_slice(b",\"bytes\":");
            push_u64(buf, u64::from(bytes));
            buf.extend_from_slice(b"}}");
        }
        TsNoise::Polling { capacity } => {
            buf.push(b'{');
            time_field(buf, "timestamp", e.time, Zone::Utc);
            buf.extend_from_slice(
                b",\"level\":\"debug\",\"message\":\"Polling for work\",\"service\":\"donmai-worker\",\"context\":{",
            );
            str_field(buf, "workerId", e.worker.id.as_bytes());
            buf.extend_from_slice(b",\"capacity\":");
            push_u64(buf, u64::from(capacity));
            buf.extend_from_slice(b"}}");
        }
    }
}

/// The message of a Vercel entry that is no event.
#[derive(Debug, Clone, Copy)]
pub(super) enum VercelNoise {
    Empty,
    /// Plain text, as the runtime itself logs requests.
    Text,
    /// A Lambda-style line holding a JSON object with no `event`.
    Json,
}

pub(super) fn vercel_noise_message(
    buf: &mut Vec<u8>,
    noise: VercelNoise,
    time: i64,
    request_id: &[u8],
) {
    match noise {
        VercelNoise::Empty => {}
        VercelNoise::Text => buf.extend_from_slice(b"POST /api/agent-sessions 201"),
        VercelNoise::Json => {
            push_time(buf, time, Zone::Utc);
            buf.push(b'\t');
            buf.extend_from_slice(request_id);
            buf.extend_from_slice(
                b"\tINFO\t{\"msg\":\"resolved model profile\",\"model\":\"claude-sonnet-4-5\",\"latencyMs\":12}\n",
            );
        }
    }
}

/// Cuts `buf` somewhere after the first `needle` and before its end: a truncated write that
/// still names its event (pass the whole `"event":"<name>"`, so the cut line holds both the
/// key and the name). `pick(n)` chooses one of the `n` allowed cut points.
pub(super) fn truncate_after(buf: &mut Vec<u8>, needle: &[u8], pick: impl FnOnce(usize) -> usize) {
    let from = memchr::memmem::find(buf, needle).map_or(1, |p| p + needle.len());
    let room = buf.len().saturating_sub(from + 1).max(1);
    buf.truncate((from + pick(room)).min(buf.len().saturating_sub(1)));
}
