//! The low watermark of a set of sources, the event-time point up to which `serve` takes the
//! evidence as settled (the watermark model of Flink and Beam).
//!
//! Each source's watermark is the largest event time it delivered. The low watermark is the
//! smallest of them over the *active* sources: a source that delivered nothing for `idle_after`
//! on the sidecar's clock (and says it has no backlog) no longer holds it back, or one quiet
//! log would stop every judgement. With no active source at all, everything delivered is
//! settled. A source known but not heard from yet holds it at the start of time until it
//! delivers or goes idle.

use crate::event::Timestamp;

/// The largest event time, for "no active source holds anything back".
pub const END_OF_TIME: Timestamp = Timestamp(i64::MAX);

#[derive(Debug, Clone, Copy)]
struct Source {
    high: Option<Timestamp>,
    last_seen: Timestamp,
    backlog: bool,
}

/// Per-source watermarks, indexed by `Origin::input`.
#[derive(Debug, Clone, Default)]
pub struct Watermarks {
    sources: Vec<Source>,
    idle_after_ms: i64,
}

impl Watermarks {
    pub fn new(idle_after_ms: i64) -> Watermarks {
        Watermarks {
            sources: Vec::new(),
            idle_after_ms,
        }
    }

    fn source(&mut self, input: u16, now: Timestamp) -> &mut Source {
        let i = usize::from(input);
        if self.sources.len() <= i {
            self.sources.resize(
                i + 1,
                Source {
                    high: None,
                    last_seen: now,
                    backlog: false,
                },
            );
        }
        &mut self.sources[i]
    }

    /// Source `input` delivered (or announced itself) at `now`; `backlog` when it has more to
    /// read right away (a source catching up is never idle).
    pub fn seen(&mut self, input: u16, now: Timestamp, backlog: bool) {
        let s = self.source(input, now);
        s.last_seen = s.last_seen.max(now);
        s.backlog = backlog;
    }

    /// Source `input` delivered an event stamped `time` at `now`.
    pub fn event(&mut self, input: u16, time: Timestamp, now: Timestamp) {
        let s = self.source(input, now);
        s.last_seen = s.last_seen.max(now);
        s.high = Some(s.high.map_or(time, |h| h.max(time)));
    }

    /// What the evidence has settled through at `now`: everything stamped before the low
    /// watermark. A source delivers in time order but may still deliver more stamped at its
    /// own watermark (two lines of the same millisecond, read in two batches), so the low
    /// watermark's own millisecond settles only once it has moved on, or every source is idle.
    pub fn settled(&self, now: Timestamp) -> Timestamp {
        match self.low(now) {
            END_OF_TIME => END_OF_TIME,
            low => low.saturating_add_ms(-1),
        }
    }

    /// The smallest watermark of the sources active at `now`.
    pub fn low(&self, now: Timestamp) -> Timestamp {
        self.sources
            .iter()
            .filter(|s| self.active(s, now))
            .map(|s| s.high.unwrap_or(Timestamp::MIN))
            .min()
            .unwrap_or(END_OF_TIME)
    }

    /// Each source: its index, its watermark and whether it is active at `now`.
    pub fn each(
        &self,
        now: Timestamp,
    ) -> impl Iterator<Item = (u16, Option<Timestamp>, bool)> + '_ {
        self.sources.iter().enumerate().map(move |(i, s)| {
            (
                u16::try_from(i).unwrap_or(u16::MAX),
                s.high,
                self.active(s, now),
            )
        })
    }

    fn active(&self, s: &Source, now: Timestamp) -> bool {
        s.backlog || now.millis().saturating_sub(s.last_seen.millis()) < self.idle_after_ms
    }

    /// When the next source goes idle after `now`, if one can: the low watermark may move
    /// then without any event.
    pub fn next_idle(&self, now: Timestamp) -> Option<Timestamp> {
        self.sources
            .iter()
            .filter(|s| !s.backlog)
            .map(|s| s.last_seen.saturating_add_ms(self.idle_after_ms))
            .filter(|t| *t > now)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slowest_active_source_holds_the_watermark() {
        let mut w = Watermarks::new(5_000);
        assert_eq!(
            w.low(Timestamp(0)),
            END_OF_TIME,
            "no source: nothing to wait for"
        );
        w.seen(1, Timestamp(0), false);
        assert_eq!(
            w.low(Timestamp(0)),
            Timestamp::MIN,
            "known, not heard from yet"
        );
        w.event(0, Timestamp(100), Timestamp(0));
        w.event(1, Timestamp(40), Timestamp(1_000));
        assert_eq!(w.low(Timestamp(1_000)), Timestamp(40));
        // source 0 went quiet at 0: idle from 5 s on, source 1 alone holds it
        w.event(1, Timestamp(50), Timestamp(5_500));
        assert_eq!(w.low(Timestamp(5_500)), Timestamp(50));
        // a backlog keeps a quiet source active
        w.seen(1, Timestamp(5_500), true);
        assert_eq!(w.low(Timestamp(60_000)), Timestamp(50));
        w.seen(1, Timestamp(60_000), false);
        assert_eq!(w.low(Timestamp(65_000)), END_OF_TIME);
    }
}
