//! Where the flip is: given, or located in the org's dispatches.

use super::{Judged, other};
use crate::event::{Runner, Timestamp};
use crate::flip::{FlipError, FlipParams};

pub(super) struct Flip {
    pub at: Timestamp,
    pub from: Runner,
    pub to: Runner,
    pub located: &'static str,
    /// How the direction was found: `given`, `baseline` (away from the runner most of the
    /// baseline went to), `after_flip` (to the runner most dispatches after the grace went
    /// to), `dispatches` (located in them), or `unknown` (no dispatch on either side).
    pub direction: &'static str,
}

pub(super) fn locate(sessions: &[Judged], p: &FlipParams) -> Result<Flip, FlipError> {
    // The org's go/ts dispatches in time order (an `other` runner is nobody's regime).
    let known: Vec<(Timestamp, Runner)> = sessions
        .iter()
        .map(|s| (s.dispatched.time, s.dispatched.runner))
        .filter(|(_, r)| *r != Runner::Other)
        .collect();
    if let Some(at) = p.at {
        // (go, ts) dispatches in [from, to).
        let count = |from: i64, to: i64| {
            let side = known
                .iter()
                .filter(|(t, _)| t.millis() >= from && t.millis() < to);
            let go = side.clone().filter(|(_, r)| *r == Runner::Go).count();
            (go, side.count() - go)
        };
        let (to, direction) = match p.to {
            Some(to) => (to, "given"),
            None => {
                let (go, ts) = count(at.millis() - p.window_ms, at.millis());
                match go.cmp(&ts) {
                    std::cmp::Ordering::Greater => (Runner::Ts, "baseline"),
                    std::cmp::Ordering::Less => (Runner::Go, "baseline"),
                    std::cmp::Ordering::Equal => {
                        // No baseline to move away from: where the dispatches went once the
                        // flag reached every dispatcher.
                        let (go, ts) = count(at.millis() + p.grace_ms, at.millis() + p.window_ms);
                        match go.cmp(&ts) {
                            std::cmp::Ordering::Greater => (Runner::Go, "after_flip"),
                            std::cmp::Ordering::Less => (Runner::Ts, "after_flip"),
                            std::cmp::Ordering::Equal if go == 0 => {
                                let (go, ts) = count(at.millis(), at.millis() + p.window_ms);
                                if go + ts > 0 {
                                    return Err(FlipError::NoDirection(p.org.clone()));
                                }
                                // Nothing dispatched on either side: the report says
                                // `inconclusive` (no sessions in the window), not an error.
                                (Runner::Go, "unknown")
                            }
                            std::cmp::Ordering::Equal => {
                                return Err(FlipError::NoDirection(p.org.clone()));
                            }
                        }
                    }
                }
            }
        };
        return Ok(Flip {
            at,
            from: other(to),
            to,
            located: "given",
            direction,
        });
    }
    let Some(&(_, last)) = known.last() else {
        return Err(FlipError::NoDispatches(p.org.clone()));
    };
    let to = p.to.unwrap_or(last);
    let old = other(to);
    // Prefix counts of dispatches to the new runner, for window counts by binary search.
    let mut to_before = Vec::with_capacity(known.len() + 1);
    to_before.push(0usize);
    for (_, r) in &known {
        to_before.push(to_before[to_before.len() - 1] + usize::from(*r == to));
    }
    let index = |t: Timestamp| known.partition_point(|(k, _)| *k < t);
    let mut best: Option<(usize, Timestamp)> = None;
    for (i, pair) in known.windows(2).enumerate() {
        let ((_, prev), (t, r)) = (pair[0], pair[1]);
        if prev != old || r != to {
            continue;
        }
        let (lo, at, hi) = (
            index(t.saturating_add_ms(-p.window_ms)),
            i + 1,
            index(t.saturating_add_ms(p.window_ms)),
        );
        let new_before = to_before[at] - to_before[lo];
        let old_after = (hi - at) - (to_before[hi] - to_before[at]);
        let cost = new_before + old_after;
        if best.is_none_or(|(c, _)| cost <= c) {
            best = Some((cost, t));
        }
    }
    let (_, at) = best.ok_or(FlipError::NoFlip {
        org: p.org.clone(),
        to: to.as_str(),
    })?;
    Ok(Flip {
        at,
        from: old,
        to,
        located: "first_dispatch_to_new_runner",
        direction: if p.to.is_some() {
            "given"
        } else {
            "dispatches"
        },
    })
}
