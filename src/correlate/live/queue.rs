//! One schedule slot's `(key, session)` entries as a lazily pruned queue, for the slots whose
//! keys are the sidecar's clock plus a constant (expiry, deadline): they come in nondecreasing
//! order, so adding one is an append rather than a descent through a `BTreeSet` of every
//! session held, and taking one out is left for later.
//!
//! The session's mark is the truth and the queue holds hints. An entry whose session no
//! longer has that key in the slot (it was moved, cleared or forgotten) is *stale*: it stays
//! where it is, and the caller's `live(key, id)` — a look at the mark — tells it apart when it
//! matters. What the queue keeps true:
//! - entries come out in `(key, id)` order, exactly as from a `BTreeSet`: a run of equal keys
//!   (one batch's sessions share its receive time) is sorted by id when it comes to the front
//!   (the shared state's sorted sets order ties by member; judging order must not differ);
//! - the first entry of each lane is live, so [`Queue::first_key`] is the earliest live key
//!   (the timer is armed neither early nor late);
//! - stale entries are dropped once they outnumber the live ones, so memory follows the
//!   sessions scheduled, not the events seen.
//!
//! A key smaller than a lane's last (the clock stepped back: batches from two sources handed
//! over out of order, or another runner's shorter claim timeout) goes to another lane, up to
//! [`LANES`], then to a `BTreeSet` kept exact.

use std::collections::{BTreeSet, VecDeque};

use crate::event::{SessionId, Timestamp};

type Entry = (Timestamp, SessionId);

/// Lanes of nondecreasing keys kept before keys out of order go to the overflow set.
const LANES: usize = 4;

/// Stale entries tolerated before they are counted against the live ones.
const COMPACT_AFTER: usize = 1024;

#[derive(Debug, Default)]
pub struct Queue {
    lanes: Vec<Lane>,
    /// Entries no lane could take, kept exact (removed when they go stale).
    overflow: BTreeSet<Entry>,
    /// About how many lane entries are stale.
    stale: usize,
}

/// Entries in nondecreasing key order.
#[derive(Debug, Default)]
struct Lane {
    entries: VecDeque<Entry>,
    /// The first `sorted` entries are in `(key, id)` order, and every later key is larger
    /// than theirs (0: the run of the first key is not sorted yet).
    sorted: usize,
}

impl Lane {
    fn first_key(&self) -> Option<Timestamp> {
        self.entries.front().map(|e| e.0)
    }

    fn last_key(&self) -> Option<Timestamp> {
        self.entries.back().map(|e| e.0)
    }

    /// Appends `(key, id)`; `key` is not below the last key.
    fn push(&mut self, key: Timestamp, id: SessionId) {
        if self.sorted > 0 && self.sorted == self.entries.len() && self.last_key() == Some(key) {
            // The sorted run reaches the back: the entry takes its place in it.
            let at = self.entries.partition_point(|(k, i)| (*k, i) < (key, &id));
            self.entries.insert(at, (key, id));
            self.sorted += 1;
        } else {
            self.entries.push_back((key, id));
        }
    }

    /// Sorts the run of the first key by id if it is not yet: the first entry is then the
    /// least.
    fn sort_first_run(&mut self) {
        let Some(key) = self.first_key().filter(|_| self.sorted == 0) else {
            return;
        };
        let end = self.entries.partition_point(|e| e.0 <= key);
        let front = self.entries.as_mut_slices().0;
        let run = if end <= front.len() {
            &mut front[..end]
        } else {
            &mut self.entries.make_contiguous()[..end]
        };
        run.sort_unstable_by(|a, b| a.1.cmp(&b.1));
        self.sorted = end;
    }

    fn pop_first(&mut self) -> Option<Entry> {
        let e = self.entries.pop_front()?;
        self.sorted = self.sorted.saturating_sub(1);
        if self.entries.is_empty() && self.entries.capacity() > COMPACT_AFTER {
            self.entries = VecDeque::new();
        }
        Some(e)
    }

    /// Drops stale entries from the front until the first is live; how many were dropped.
    fn prune(&mut self, live: &impl Fn(Timestamp, &SessionId) -> bool) -> usize {
        let mut n = 0;
        while self.entries.front().is_some_and(|(k, id)| !live(*k, id)) {
            self.pop_first();
            n += 1;
        }
        n
    }

    /// Drops every stale entry.
    fn compact(&mut self, live: &impl Fn(Timestamp, &SessionId) -> bool) {
        let (mut at, mut sorted) = (0, 0);
        let was = self.sorted;
        self.entries.retain(|(k, id)| {
            let keep = live(*k, id);
            sorted += usize::from(keep && at < was);
            at += 1;
            keep
        });
        self.sorted = sorted;
        if self.entries.capacity() > 2 * self.entries.len() + COMPACT_AFTER {
            self.entries
                .shrink_to(self.entries.len() + self.entries.len() / 2);
        }
    }
}

impl Queue {
    /// Schedules `id` at `key`.
    pub fn push(&mut self, key: Timestamp, id: SessionId) {
        // The lane whose last key is the largest not above `key` (an empty lane the last
        // choice), so interleaved sequences (one per claim timeout) keep a lane each.
        let mut best: Option<(usize, Option<Timestamp>)> = None;
        for (i, lane) in self.lanes.iter().enumerate() {
            let last = lane.last_key();
            if last.is_none_or(|l| l <= key) && best.is_none_or(|(_, b)| last > b) {
                best = Some((i, last));
            }
        }
        match best {
            Some((i, _)) => self.lanes[i].push(key, id),
            None if self.lanes.len() < LANES => {
                let mut lane = Lane::default();
                lane.push(key, id);
                self.lanes.push(lane);
            }
            None => {
                self.overflow.insert((key, id));
            }
        }
    }

    /// `id` is no longer scheduled at `key` (`live` already says so).
    pub fn remove(
        &mut self,
        key: Timestamp,
        id: &SessionId,
        live: &impl Fn(Timestamp, &SessionId) -> bool,
    ) {
        let exact = !self.overflow.is_empty() && self.overflow.remove(&(key, id.clone()));
        if !exact {
            self.stale += 1;
        }
        // Only a lane whose first key is this one can have lost its live first entry.
        for lane in &mut self.lanes {
            if lane.first_key() == Some(key) {
                let n = lane.prune(live);
                self.stale = self.stale.saturating_sub(n);
            }
        }
        let len: usize = self.lanes.iter().map(|l| l.entries.len()).sum();
        if self.stale > COMPACT_AFTER && self.stale * 2 > len {
            for lane in &mut self.lanes {
                lane.compact(live);
            }
            self.stale = 0;
        }
    }

    /// The earliest key scheduled.
    pub fn first_key(&self) -> Option<Timestamp> {
        let lanes = self.lanes.iter().filter_map(Lane::first_key);
        lanes.chain(self.overflow.first().map(|e| e.0)).min()
    }

    /// The least live entry with a key up to `at`, taken out.
    pub fn pop_due(
        &mut self,
        at: Timestamp,
        live: &impl Fn(Timestamp, &SessionId) -> bool,
    ) -> Option<SessionId> {
        loop {
            let mut best: Option<usize> = None;
            for i in 0..self.lanes.len() {
                if self.lanes[i].first_key().is_some_and(|k| k <= at) {
                    self.lanes[i].sort_first_run();
                    let e = self.lanes[i].entries.front();
                    if best.is_none_or(|b| e < self.lanes[b].entries.front()) {
                        best = Some(i);
                    }
                }
            }
            let lane_first = best.and_then(|b| self.lanes[b].entries.front());
            let from_overflow = self
                .overflow
                .first()
                .is_some_and(|e| e.0 <= at && lane_first.is_none_or(|l| e < l));
            let (key, id) = match (from_overflow, best) {
                (true, _) => self.overflow.pop_first()?,
                (false, Some(b)) => self.lanes[b].pop_first()?,
                (false, None) => return None,
            };
            if !live(key, &id) {
                self.stale = self.stale.saturating_sub(1);
                continue;
            }
            // Other copies of the entry (the session scheduled at the same key again, the
            // first copy stale in between) go with it; then every lane's first entry is live
            // again. The overflow's copy, if any, goes too.
            for (i, lane) in self.lanes.iter_mut().enumerate() {
                if lane.first_key() == Some(key) || Some(i) == best {
                    lane.sort_first_run();
                    while lane
                        .entries
                        .front()
                        .is_some_and(|e| e.0 == key && e.1 == id)
                    {
                        lane.pop_first();
                    }
                    let n = lane.prune(live);
                    self.stale = self.stale.saturating_sub(n);
                }
            }
            if !self.overflow.is_empty() {
                self.overflow.remove(&(key, id.clone()));
            }
            return Some(id);
        }
    }

    /// Entries held, stale ones included.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lanes.iter().map(|l| l.entries.len()).sum::<usize>() + self.overflow.len()
    }
}

#[cfg(test)]
mod tests;
