//! The platform side of a simulated session: its dispatch line in one of the five shapes,
//! in `dispatch.log` or wrapped in a Vercel drain entry, with the request noise around it and
//! the broken lines (`malformed_json`, `missing_session_id`, `bad_time`) the verifier must
//! reject and count.

use std::io;

use rand::Rng;

use super::Generator;
use super::lines::{self, Dispatch, Envelope, PlatformNoise, Shape, VercelNoise, WorkerEvent};
use super::model::{self, WORKERS};
use super::write::{self, Zone};
use crate::event::{EventKind, Runner};
use crate::parse::Reject;

impl Generator {
    /// Three deployments over the run: the platform ships twice while it runs.
    fn deployment(&self, t: i64) -> [u8; 28] {
        let span = (self.last_dispatch - self.tl.start).max(1);
        let i = ((t - self.tl.start).max(0) * 3 / span).clamp(0, 2) as usize;
        self.deployments[i]
    }

    /// Writes `self.inner` as the message of a Vercel entry stamped `timestamp`.
    fn vercel_entry(
        &mut self,
        timestamp: i64,
        request_id: &[u8],
        redeliver: bool,
    ) -> io::Result<()> {
        let deployment = self.deployment(timestamp);
        // Unique by the sequence number; the time in front makes it look like Vercel's.
        let mut id = [0u8; 23];
        write::decimal(timestamp.max(0) as u64, &mut id[..13]);
        write::decimal(self.vercel_seq, &mut id[13..]);
        self.vercel_seq += 1;
        let env = Envelope {
            id: &id,
            timestamp,
            request_id,
            deployment: &deployment,
            project: &self.project,
            path: "/api/agent-sessions",
        };
        self.line.clear();
        lines::vercel(&mut self.line, &env, &self.inner);
        self.emit_dispatch_file(true, redeliver)
    }

    /// Writes `self.line` to a dispatch file, re-delivered a few lines later if asked.
    fn emit_dispatch_file(&mut self, vercel: bool, redeliver: bool) -> io::Result<()> {
        let after = self.rng.gen_range(1..=6);
        let sink = if vercel {
            &mut self.sinks.vercel
        } else {
            &mut self.sinks.dispatch
        };
        if redeliver {
            sink.line_twice(&self.line, after)
        } else {
            sink.line(&self.line)
        }
    }

    fn pick_shape(&mut self) -> Shape {
        match self.rng.gen_range(0..100) {
            0..30 => Shape::Bare,
            30..50 => Shape::Lambda,
            50..65 => Shape::Info,
            65..80 => Shape::WorkQueue,
            _ => Shape::TsLogger,
        }
    }

    pub(super) fn dispatch_line(
        &mut self,
        sid: &[u8],
        d: i64,
        org: usize,
        org_logged: bool,
        runner: Option<&str>,
        redeliver: bool,
    ) -> io::Result<()> {
        let shape = self.pick_shape();
        let to_vercel = self.rng.gen_ratio(2, 5);
        let key = lines::ORG_KEYS[match self.rng.gen_range(0..10) {
            0 => 1,
            1 => 2,
            _ => 0,
        }];
        let auth_mode = match self.rng.gen_range(0..20) {
            0..12 => "host-session",
            12..17 => "byok",
            _ => "api-key",
        };
        let zone = if self.rng.gen_ratio(3, 10) {
            Zone::Cet
        } else {
            Zone::Utc
        };
        let request_id = self.request_id();
        let org_id = self.orgs[org].id.clone();
        let dispatch = Dispatch {
            session: sid,
            org: org_logged.then_some((key, org_id.as_str())),
            runner,
            auth_mode,
            time: d,
            bad_time: None,
            zone,
            request_id: &request_id,
        };
        if to_vercel {
            self.inner.clear();
            lines::dispatch(&mut self.inner, &dispatch, shape, true);
            // A message with its own time sits in an entry stamped a little later by the
            // drain; one without gets its time from the entry, which must then be exact.
            let stamp = if shape.has_own_time() {
                d + self.rng.gen_range(0..200)
            } else {
                d
            };
            self.vercel_entry(stamp, &request_id, redeliver)?;
            self.tally.event(EventKind::Dispatch);
            if redeliver {
                self.tally.redelivered();
            }
            self.vercel_noise(d, &request_id)?;
        } else {
            if self.rng.gen_ratio(4, 5) {
                let ms = self.rng.gen_range(8..400);
                self.platform_noise(PlatformNoise::Request { ms }, d, &request_id, &org_id)?;
            }
            self.line.clear();
            lines::dispatch(&mut self.line, &dispatch, shape, false);
            self.emit_dispatch_file(false, redeliver)?;
            self.tally.event(EventKind::Dispatch);
            if redeliver {
                self.tally.redelivered();
            }
            if self.rng.gen_ratio(3, 5) {
                self.platform_noise(PlatformNoise::Profile, d, &request_id, &org_id)?;
            }
            if self.rng.gen_ratio(1, 20) {
                self.platform_noise(PlatformNoise::Health, d, &request_id, &org_id)?;
            }
            if self.rng.gen_ratio(1, 20) {
                let depth = self.rng.gen_range(0..40);
                self.platform_noise(PlatformNoise::Poll { depth }, d, &request_id, &org_id)?;
            }
        }
        Ok(())
    }

    fn platform_noise(
        &mut self,
        noise: PlatformNoise,
        t: i64,
        request_id: &[u8],
        org: &str,
    ) -> io::Result<()> {
        self.line.clear();
        lines::platform_noise(&mut self.line, noise, t, request_id, org);
        self.sinks.dispatch.line(&self.line)
    }

    fn vercel_noise(&mut self, d: i64, request_id: &[u8]) -> io::Result<()> {
        for (per_10, noise) in [
            (5, VercelNoise::Text),
            (4, VercelNoise::Json),
            (1, VercelNoise::Empty),
        ] {
            if self.rng.gen_range(0..10) < per_10 {
                let t = d + self.rng.gen_range(1..300);
                self.inner.clear();
                lines::vercel_noise_message(&mut self.inner, noise, t, request_id);
                self.vercel_entry(t, request_id, false)?;
            }
        }
        Ok(())
    }

    /// A truncated copy of a relevant line (a partial write before the shipper's retry).
    pub(super) fn malformed(&mut self, sid: &[u8], d: i64) -> io::Result<()> {
        let request_id = self.request_id();
        let variant = self.rng.gen_range(0..4);
        let shape = Shape::ALL[self.rng.gen_range(0..Shape::ALL.len())];
        let dispatch = Dispatch {
            session: sid,
            org: None,
            runner: Some("go"),
            auth_mode: "host-session",
            time: d,
            bad_time: None,
            zone: Zone::Utc,
            request_id: &request_id,
        };
        let rng = &mut self.rng;
        match variant {
            0 => {
                self.line.clear();
                lines::dispatch(&mut self.line, &dispatch, shape, false);
                lines::truncate_after(&mut self.line, b"\"event\":\"dispatch\"", |n| {
                    rng.gen_range(0..n)
                });
                self.sinks.dispatch.line(&self.line)?;
            }
            1 => {
                self.inner.clear();
                lines::dispatch(&mut self.inner, &dispatch, shape, false);
                lines::truncate_after(&mut self.inner, b"\"event\":\"dispatch\"", |n| {
                    rng.gen_range(0..n)
                });
                self.vercel_entry(d, &request_id, false)?;
            }
            _ => {
                let runtime = if variant == 2 { Runner::Go } else { Runner::Ts };
                let worker = &WORKERS[usize::from(model::pick_worker(rng, runtime))];
                let ev = WorkerEvent {
                    time: d + rng.gen_range(50..5000),
                    kind: EventKind::Claim,
                    worker,
                    zone: worker.zone,
                    session: sid,
                    explicit_runtime: false,
                    extra: 0,
                    failed: false,
                };
                self.line.clear();
                let sink = if runtime == Runner::Go {
                    lines::go_event(&mut self.line, &ev);
                    &mut self.sinks.go
                } else {
                    lines::ts_event(&mut self.line, &ev);
                    &mut self.sinks.ts
                };
                lines::truncate_after(&mut self.line, b"\"event\":\"claimed\"", |n| {
                    rng.gen_range(0..n)
                });
                sink.line(&self.line)?;
            }
        }
        self.tally.rejected(Reject::MalformedJson);
        Ok(())
    }

    /// A dispatch line with an empty sessionId or an unreadable time, for a session that
    /// otherwise never appears.
    pub(super) fn broken_dispatch(&mut self, d: i64, reason: Reject) -> io::Result<()> {
        let sid = self.fresh_session_id();
        let request_id = self.request_id();
        let missing = reason == Reject::MissingSessionId;
        let shape = if missing {
            self.pick_shape()
        } else {
            Shape::Bare
        };
        let dispatch = Dispatch {
            session: if missing { b"" } else { &sid },
            org: None,
            runner: Some("ts"),
            auth_mode: "host-session",
            time: d,
            bad_time: (!missing).then_some("yesterday"),
            zone: Zone::Utc,
            request_id: &request_id,
        };
        if self.rng.gen_bool(0.5) {
            self.inner.clear();
            lines::dispatch(&mut self.inner, &dispatch, shape, true);
            self.vercel_entry(d, &request_id, false)?;
        } else {
            self.line.clear();
            lines::dispatch(&mut self.line, &dispatch, shape, false);
            self.sinks.dispatch.line(&self.line)?;
        }
        self.tally.rejected(reason);
        Ok(())
    }
}
