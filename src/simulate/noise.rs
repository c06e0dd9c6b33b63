//! The `realistic` noise profile: the JSON lines the real services print besides the events
//! claimcheck reads, added around every session on a random stream of their own.
//!
//! Real dispatcher and worker logs are pure JSON, and almost every line has an `event` key
//! with some other event name. Many of them also hold our event names as *values* of other
//! keys (`"queue":"dispatch"`, `"state":"claimed"`, `"status":"completed"`) or as prefixes of
//! longer names (`"service":"dispatcher"`, `claimedTotal`), so a verifier that looks for an
//! event name or the `event` key alone must still parse and ignore them. None of these lines
//! is an event and none is broken, so the truth is the same as with the classic profile for
//! the same seed: the profile draws from its own stream, never from the events' one.

use std::io;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::lines::{WorkerEvent, str_field, time_field};
use super::write::{Sink, Zone, push_i64, push_u64};
use crate::event::EventKind;

/// Which noise the simulated services print around their events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NoiseProfile {
    /// The mixed text and JSON noise of the original simulator (the golden tests' workload).
    #[default]
    Classic,
    /// Classic noise plus the services' own JSON event lines (this module), about ten lines
    /// per session in all: the comparison workload.
    Realistic,
}

impl NoiseProfile {
    pub fn as_str(self) -> &'static str {
        match self {
            NoiseProfile::Classic => "classic",
            NoiseProfile::Realistic => "realistic",
        }
    }
}

/// The realistic profile's random stream and scratch line.
#[derive(Debug)]
pub(super) struct Realistic {
    rng: ChaCha8Rng,
    line: Vec<u8>,
    /// Per worker: claims seen, printed by its periodic stats line.
    claimed_total: [u64; 8],
}

const DISPATCHER: &[u8] = b",\"service\":\"dispatcher\",\"queue\":\"dispatch\",\"event\":\"";

impl Realistic {
    pub fn new(rng: ChaCha8Rng) -> Realistic {
        Realistic {
            rng,
            line: Vec::with_capacity(512),
            claimed_total: [0; 8],
        }
    }

    /// A dispatcher line: `{"time",…,"service":"dispatcher","queue":"dispatch","event":<event>,…`
    /// left open for the caller's fields.
    fn dispatcher(&mut self, t: i64, level: &str, event: &str, sid: &[u8]) {
        let b = &mut self.line;
        b.clear();
        b.push(b'{');
        time_field(b, "time", t, Zone::Utc);
        b.extend_from_slice(b",\"level\":\"");
        b.extend_from_slice(level.as_bytes());
        b.push(b'"');
        b.extend_from_slice(DISPATCHER);
        b.extend_from_slice(event.as_bytes());
        b.extend_from_slice(b"\",");
        str_field(b, "sessionId", sid);
    }

    /// The dispatcher's own lines about one session: enqueued, the leases it renews while a
    /// worker holds it (`"state":"claimed"`), and how it ended.
    pub fn dispatcher_session(
        &mut self,
        sink: &mut Sink,
        sid: &[u8],
        d: i64,
        org: &str,
    ) -> io::Result<()> {
        self.dispatcher(d, "info", "enqueued", sid);
        self.line.push(b',');
        str_field(&mut self.line, "organizationId", org.as_bytes());
        self.line.extend_from_slice(b",\"priority\":5,\"depth\":");
        let depth = self.rng.gen_range(0..40u64);
        push_u64(&mut self.line, depth);
        self.line.push(b'}');
        sink.line(&self.line)?;

        let renewals = self.rng.gen_range(1..=3);
        let mut t = d;
        for _ in 0..renewals {
            t += self.rng.gen_range(20_000..40_000);
            self.dispatcher(t, "debug", "lease_renewed", sid);
            self.line
                .extend_from_slice(b",\"state\":\"claimed\",\"leaseMs\":30000,\"attempt\":1}");
            sink.line(&self.line)?;
        }
        let (event, state): (&str, &[u8]) = match self.rng.gen_range(0..10) {
            0 => ("session_failed", b"failed"),
            1 => ("session_requeued", b"released"),
            _ => ("session_finished", b"completed"),
        };
        self.dispatcher(t + 1, "info", event, sid);
        self.line.push(b',');
        str_field(&mut self.line, "state", state);
        self.line.extend_from_slice(b",\"durationMs\":");
        push_i64(&mut self.line, t + 1 - d);
        self.line.push(b'}');
        sink.line(&self.line)
    }

    /// A worker's lines after one of its events: lease renewals while it runs a session, and a
    /// stats line with its running `claimedTotal` after each heartbeat.
    pub fn worker(&mut self, sink: &mut Sink, e: &WorkerEvent, worker: usize) -> io::Result<()> {
        let go = e.worker.runtime == crate::event::Runner::Go;
        let slot = worker % self.claimed_total.len();
        match e.kind {
            EventKind::Claim => {
                self.claimed_total[slot] += 1;
                for _ in 0..self.rng.gen_range(1..=2) {
                    self.worker_line(e, go, "lease_renewed", true);
                    self.line
                        .extend_from_slice(b",\"state\":\"claimed\",\"leaseMs\":30000");
                    self.close(go);
                    sink.line(&self.line)?;
                }
            }
            EventKind::Heartbeat => {
                self.worker_line(e, go, "worker_stats", false);
                self.line.extend_from_slice(b",\"claimedTotal\":");
                push_u64(&mut self.line, self.claimed_total[slot]);
                self.line
                    .extend_from_slice(b",\"heartbeatIntervalMs\":30000,\"state\":\"");
                self.line.extend_from_slice(if self.rng.gen_bool(0.5) {
                    b"heartbeat"
                } else {
                    b"idle"
                });
                self.line.push(b'"');
                self.close(go);
                sink.line(&self.line)?;
            }
            EventKind::Completion | EventKind::Release | EventKind::Dispatch => {
                self.worker_line(e, go, "workspace_cleaned", true);
                self.line.extend_from_slice(b",\"freedBytes\":");
                let freed = self.rng.gen_range(10_000..9_000_000u64);
                push_u64(&mut self.line, freed);
                self.close(go);
                sink.line(&self.line)?;
            }
        }
        Ok(())
    }

    /// Opens a worker line in the worker's own format (Go `slog` flat, TS logger nested under
    /// `context`), with its `event` and ids; `close` ends it.
    fn worker_line(&mut self, e: &WorkerEvent, go: bool, event: &str, session: bool) {
        let b = &mut self.line;
        b.clear();
        b.push(b'{');
        if go {
            time_field(b, "time", e.time, e.zone);
            b.extend_from_slice(b",\"level\":\"DEBUG\",\"msg\":\"");
            b.extend_from_slice(event.as_bytes());
            b.extend_from_slice(b"\",\"event\":\"");
        } else {
            time_field(b, "timestamp", e.time, Zone::Utc);
            b.extend_from_slice(b",\"level\":\"debug\",\"message\":\"");
            b.extend_from_slice(event.as_bytes());
            b.extend_from_slice(b"\",\"service\":\"donmai-worker\",\"context\":{\"event\":\"");
        }
        b.extend_from_slice(event.as_bytes());
        b.push(b'"');
        if session {
            b.push(b',');
            str_field(b, "sessionId", e.session);
        }
        b.push(b',');
        str_field(b, "workerId", e.worker.id.as_bytes());
    }

    fn close(&mut self, go: bool) {
        self.line
            .extend_from_slice(if go { &b"}"[..] } else { &b"}}"[..] });
    }
}
