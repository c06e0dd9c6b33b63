//! Where the flip is: given, or located in the org's dispatches.

use super::{Judged, other};
use crate::event::{Runner, Timestamp};
use crate::flip::{FlipError, FlipParams};

pub(super) struct Flip {
    pub at: Timestamp,
    pub from: Runner,
    pub to: Runner,
    pub located: &'static str,
}

pub(super) fn locate(sessions: &[Judged], p: &FlipParams) -> Result<Flip, FlipError> {
    // The org's go/ts dispatches in time order (an `other` runner is nobody's regime).
    let known: Vec<(Timestamp, Runner)> = sessions
        .iter()
        .map(|s| (s.dispatched.time, s.dispatched.runner))
        .filter(|(_, r)| *r != Runner::Other)
        .collect();
    if let Some(at) = p.at {
        let to = match p.to {
            Some(to) => to,
            None => {
                let before = known
                    .iter()
                    .filter(|(t, _)| *t < at && t.millis() >= at.millis() - p.window_ms);
                let go = before.clone().filter(|(_, r)| *r == Runner::Go).count();
                let ts = before.count() - go;
                match go.cmp(&ts) {
                    std::cmp::Ordering::Greater => Runner::Ts,
                    std::cmp::Ordering::Less => Runner::Go,
                    std::cmp::Ordering::Equal => {
                        return Err(FlipError::NoDirection(p.org.clone()));
                    }
                }
            }
        };
        return Ok(Flip {
            at,
            from: other(to),
            to,
            located: "given",
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
    })
}
