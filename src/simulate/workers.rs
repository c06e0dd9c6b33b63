//! The worker side: claims, completions, releases and heartbeats wait in a time-ordered heap
//! until the dispatch clock passes them, then go to the Go daemon or TS worker log with the
//! noise those processes print around them.

use std::cmp::Reverse;
use std::io;

use rand::Rng;

use super::lines::{self, GoNoise, TsNoise, WorkerEvent};
use super::model::{self, WORKERS};
use super::{Generator, SessionBytes};
use crate::event::{EventKind, Runner};

/// A worker-side line waiting for its time, so worker logs come out in time order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Due {
    time: i64,
    /// Insertion order: ties are written first-planned first.
    seq: u64,
    kind: EventKind,
    worker: u8,
    session: SessionBytes,
    extra: u32,
    failed: bool,
    explicit_runtime: bool,
}

impl Generator {
    /// Every worker heartbeats each 30 s, each on its own phase; the anchor worker's phase
    /// puts its last heartbeat exactly on the end of the evidence.
    pub(super) fn schedule_heartbeats(&mut self) {
        for w in 0..WORKERS.len() as u8 {
            let phase = if w == model::ANCHOR_WORKER {
                0
            } else {
                self.rng.gen_range(1..model::HEARTBEAT_MS)
            };
            let first = self.tl.start
                + (self.tl.end - phase - self.tl.start).rem_euclid(model::HEARTBEAT_MS);
            self.push(first, EventKind::Heartbeat, w, [0; 20], 0, false);
        }
    }

    pub(super) fn push(
        &mut self,
        time: i64,
        kind: EventKind,
        worker: u8,
        session: SessionBytes,
        extra: u32,
        failed: bool,
    ) {
        debug_assert!(time <= self.tl.end, "planned past the end of the evidence");
        let explicit_runtime = kind != EventKind::Heartbeat && self.rng.gen_ratio(1, 20);
        self.due.push(Reverse(Due {
            time,
            seq: self.seq,
            kind,
            worker,
            session,
            extra,
            failed,
            explicit_runtime,
        }));
        self.seq += 1;
    }

    /// A claim (and maybe a completion) of a session that is never dispatched.
    pub(super) fn orphan(&mut self, d: i64) {
        let sid = self.fresh_session_id();
        let runtime = if self.rng.gen_bool(0.5) {
            Runner::Go
        } else {
            Runner::Ts
        };
        let w = model::pick_worker(&mut self.rng, runtime);
        let claim = d + self.rng.gen_range(0..60_000);
        self.push(claim, EventKind::Claim, w, sid, 0, false);
        self.tally.orphan_claim();
        if self.rng.gen_bool(0.5) {
            let run = self.rng.gen_range(10_000..120_000);
            self.push(
                claim + i64::from(run),
                EventKind::Completion,
                w,
                sid,
                run,
                false,
            );
        }
    }

    /// Writes every worker line due at or before `t`.
    pub(super) fn drain_until(&mut self, t: i64) -> io::Result<()> {
        while let Some(Reverse(top)) = self.due.peek() {
            if top.time > t {
                break;
            }
            let due = *top;
            self.due.pop();
            self.worker_line(&due)?;
        }
        Ok(())
    }

    fn worker_line(&mut self, due: &Due) -> io::Result<()> {
        let mut worker = &WORKERS[usize::from(due.worker)];
        // A clean platform has no daemon left on a pre-0.5.0 build.
        let upgraded;
        if !self.faults && worker.runtime == Runner::Go && worker.version != model::GO_CURRENT {
            upgraded = model::Worker {
                version: model::GO_CURRENT,
                ..*worker
            };
            worker = &upgraded;
        }
        let go = worker.runtime == Runner::Go;
        let extra = if due.kind == EventKind::Heartbeat {
            self.rng.gen_range(0..4)
        } else {
            due.extra
        };
        let ev = WorkerEvent {
            time: due.time,
            kind: due.kind,
            worker,
            zone: worker.zone,
            session: &due.session,
            explicit_runtime: due.explicit_runtime,
            extra,
            failed: due.failed,
        };
        let before = match (go, due.kind) {
            (true, EventKind::Claim) if self.rng.gen_ratio(7, 10) => {
                Some(Noise::Go(GoNoise::Poll {
                    items: self.rng.gen_range(1..4),
                }))
            }
            (true, EventKind::Completion) if self.rng.gen_ratio(4, 5) => {
                Some(Noise::Go(GoNoise::RunnerExited))
            }
            (false, EventKind::Claim) if self.rng.gen_ratio(3, 5) => {
                Some(Noise::Ts(TsNoise::WorkQueued))
            }
            (false, EventKind::Completion) if self.rng.gen_ratio(4, 5) => {
                Some(Noise::Ts(TsNoise::Upload {
                    bytes: self.rng.gen_range(2_000..900_000),
                }))
            }
            _ => None,
        };
        let after = match (go, due.kind) {
            (true, EventKind::Claim) if self.rng.gen_ratio(9, 10) => {
                Some(Noise::Go(GoNoise::RunnerStarted {
                    pid: self.rng.gen_range(1000..60_000),
                }))
            }
            (true, EventKind::Heartbeat) if self.rng.gen_bool(0.5) => {
                Some(Noise::Go(GoNoise::IdlePoll))
            }
            (false, EventKind::Claim) if self.rng.gen_ratio(9, 10) => {
                Some(Noise::Ts(TsNoise::Starting))
            }
            (false, EventKind::Heartbeat) if self.rng.gen_bool(0.5) => {
                Some(Noise::Ts(TsNoise::Polling {
                    capacity: self.rng.gen_range(0..5),
                }))
            }
            _ => None,
        };
        let redeliver = if due.kind == EventKind::Heartbeat {
            self.rng.gen_range(0..1000) < model::REDELIVERY_PER_MILLE / 2
        } else {
            self.redelivery()
        };
        let delay = self.rng.gen_range(1..=6);

        let sink = if go {
            &mut self.sinks.go
        } else {
            &mut self.sinks.ts
        };
        if let Some(n) = before {
            self.line.clear();
            n.write(&mut self.line, &ev);
            sink.line(&self.line)?;
        }
        self.line.clear();
        if go {
            lines::go_event(&mut self.line, &ev);
        } else {
            lines::ts_event(&mut self.line, &ev);
        }
        if redeliver {
            sink.line_twice(&self.line, delay)?;
            self.tally.redelivered();
        } else {
            sink.line(&self.line)?;
        }
        self.tally.event(due.kind);
        if let Some(n) = after {
            self.line.clear();
            n.write(&mut self.line, &ev);
            sink.line(&self.line)?;
        }
        if let Some(r) = &mut self.realistic {
            r.worker(sink, &ev, usize::from(due.worker))?;
        }

        if due.kind == EventKind::Heartbeat && due.time + model::HEARTBEAT_MS <= self.tl.end {
            self.push(
                due.time + model::HEARTBEAT_MS,
                EventKind::Heartbeat,
                due.worker,
                [0; 20],
                0,
                false,
            );
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
enum Noise {
    Go(GoNoise),
    Ts(TsNoise),
}

impl Noise {
    fn write(self, buf: &mut Vec<u8>, ev: &WorkerEvent) {
        match self {
            Noise::Go(n) => lines::go_noise(buf, n, ev),
            Noise::Ts(n) => lines::ts_noise(buf, n, ev),
        }
    }
}
