//! Settling: judging sessions before the end of a batch, so `verify` holds only the sessions
//! whose evidence may still grow, not every session of the input.
//!
//! The caller passes a low watermark: no input still being read has delivered anything older
//! than it (up to the disorder within one input). A session is settled once that watermark
//! passes its horizon — its latest record, or its deadline (dispatch + T) if later, plus a
//! slack for the disorder — and none of its claims is still open (a claim not yet followed by
//! a completion or release, whose completion is still to come). An open claim holds the
//! session for [`OPEN_CLAIM_MS`] past its latest record instead.
//!
//! A settled session is handed back to be judged and tallied, and dropped. Its judgement is
//! final: with no claim, the low watermark (never above the final one) has passed its
//! deadline, so it is `unclaimed` under either. What is *not* guaranteed is that no more
//! evidence for it comes: an input may hold one line far out of order. So every settled
//! session leaves an 8-byte fingerprint behind, and an event that would start a session
//! whose fingerprint is known raises [`Correlator::late_evidence`] (`fingerprints.rs`, which
//! answers that for a batch of creations at once): the caller must then
//! judge the inputs again without settling (a fingerprint collision only costs that re-run,
//! never a wrong count; two sessions are never merged).

use std::collections::BTreeMap;
use std::collections::hash_map::Entry;
use std::hash::Hasher;

use super::ClaimTimeouts;
use super::fingerprints::Fingerprints;
use super::{Correlator, Session};
use crate::event::{EventKind, SessionId, Timestamp};

/// The disorder allowed within one input, and the margin past a deadline, before a session is
/// judged: ten minutes (late claims, re-deliveries a few lines later, a drain's stamp).
pub const SLACK_MS: i64 = 10 * 60 * 1000;

/// How long a session with an open claim is held past its latest record: its completion is
/// expected (agent sessions run for minutes).
pub const OPEN_CLAIM_MS: i64 = 60 * 60 * 1000;

/// A settled session, judged by the caller against the correlator's watermark.
#[derive(Debug)]
pub struct Settled {
    pub id: SessionId,
    pub session: Session,
}

/// Sessions by the earliest moment they may settle, in buckets of [`BUCKET_SHIFT`] bits of
/// milliseconds (about four seconds). A binary heap of them missed the cache at every level
/// of every sift-down (a tenth of `verify`'s CPU time in `perf`); a bucket is appended to
/// and drained in order. Which sessions a call settles does not depend on the order within
/// a bucket: every entry due by the watermark is taken.
#[derive(Debug, Default)]
struct Queue {
    buckets: BTreeMap<i64, Vec<(Timestamp, SessionId)>>,
}

const BUCKET_SHIFT: u32 = 12;

fn bucket(at: Timestamp) -> i64 {
    at.millis() >> BUCKET_SHIFT
}

impl Queue {
    fn push(&mut self, at: Timestamp, id: SessionId) {
        self.buckets.entry(bucket(at)).or_default().push((at, id));
    }

    /// Takes out the earliest bucket if it may hold entries due at `low` (it is the only
    /// one that may hold some that are not: those are for the caller to push back).
    fn take_due(&mut self, low: Timestamp) -> Option<(i64, Vec<(Timestamp, SessionId)>)> {
        let first = self.buckets.first_entry()?;
        if *first.key() > bucket(low) {
            return None;
        }
        let key = *first.key();
        Some((key, first.remove()))
    }
}

/// The state settling adds to a [`Correlator`].
#[derive(Debug, Default)]
pub(super) struct Settling {
    /// Sessions by the earliest moment they may settle (re-checked when taken).
    queue: Queue,
    /// Fingerprints of the sessions already settled, and of those created since.
    fingerprints: Fingerprints,
    held_max: usize,
}

impl Settling {
    /// A session was just created from `time`'s event: queue it, and notice late evidence.
    pub(super) fn created(&mut self, id: &SessionId, time: Timestamp) {
        self.fingerprints.created(fingerprint(id));
        self.queue
            .push(time.saturating_add_ms(SLACK_MS), id.clone());
    }
}

/// The moment `session` may settle.
fn horizon(session: &Session, timeouts: &ClaimTimeouts) -> Timestamp {
    let records = session.records();
    let mut open = 0i64;
    for r in records {
        match r.kind {
            EventKind::Claim => open += 1,
            EventKind::Completion | EventKind::Release => open -= 1,
            EventKind::Dispatch | EventKind::Heartbeat => {}
        }
    }
    let last = session.last_time();
    let deadline = records
        .iter()
        .find(|r| r.kind == EventKind::Dispatch)
        .map_or(last, |d| {
            d.time.saturating_add_ms(timeouts.millis(d.runner))
        });
    last.max(deadline)
        .saturating_add_ms(if open > 0 { OPEN_CLAIM_MS } else { SLACK_MS })
}

/// A 64-bit fingerprint of a session id, the same in every run (FxHash: a few multiplies per
/// id instead of SipHash's rounds, twice per session; its spread is ample for fingerprints,
/// and a collision only costs the re-run).
fn fingerprint(id: &SessionId) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    h.write(id.as_str().as_bytes());
    h.finish()
}

impl Correlator {
    /// Starts settling (batch mode): from now on [`Correlator::settle`] may hand sessions back
    /// before the end of the input.
    pub fn enable_settling(&mut self) {
        self.settling = Some(Settling::default());
    }

    /// Removes and returns every session settled at `low` (see the module docs), leaving its
    /// fingerprint behind.
    pub fn settle(&mut self, low: Timestamp) -> Vec<Settled> {
        let mut out = Vec::new();
        let Some(st) = self.settling.as_mut() else {
            return out;
        };
        st.held_max = st.held_max.max(self.sessions.len());
        while let Some((key, due)) = st.queue.take_due(low) {
            for (at, id) in due {
                if at > low {
                    // In the watermark's own bucket, not due yet.
                    st.queue.push(at, id);
                    continue;
                }
                // Gone already (vacant): evicted by the session cap, or settled through an
                // older entry. One lookup either way (a lookup and a removal were two hashes
                // and probes).
                let Entry::Occupied(session) = self.sessions.entry(id) else {
                    continue;
                };
                let at = horizon(&session.get().0, &self.config.timeouts);
                if at > low {
                    st.queue.push(at, session.key().clone());
                    continue;
                }
                let (id, (session, ())) = session.remove_entry();
                st.fingerprints.settled(fingerprint(&id));
                out.push(Settled { id, session });
            }
            // Whatever is in the watermark's bucket now was pushed back: not due.
            if key == bucket(low) {
                break;
            }
        }
        out
    }

    /// An event arrived for a session that had already settled: the settled judgements may
    /// be wrong, and the input must be judged again without settling.
    pub fn late_evidence(&mut self) -> bool {
        self.settling
            .as_mut()
            .is_some_and(|s| s.fingerprints.late())
    }

    /// [`Correlator::late_evidence`] as far as it is known without answering the creations
    /// not yet answered (they are answered in batches): cheap enough to ask after every
    /// chunk, to stop reading early.
    pub fn late_evidence_so_far(&self) -> bool {
        self.settling
            .as_ref()
            .is_some_and(|s| s.fingerprints.late_so_far())
    }

    /// The most sessions held at once, seen at the calls of [`Correlator::settle`].
    pub fn held_max(&self) -> usize {
        self.settling.as_ref().map_or(0, |s| s.held_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::correlate::CorrelateConfig;
    use crate::event::{Event, Origin, Runner};

    const MIN: i64 = 60_000;

    fn ev(kind: EventKind, session: &str, min: i64, runner: Runner) -> Event {
        Event {
            kind,
            session: SessionId::new(session),
            runner,
            time: Timestamp(min * MIN),
            org: None,
            worker: Some("w1".into()),
            version: None,
            detail: None,
        }
    }

    fn at(line: u32) -> Origin {
        Origin { input: 0, line }
    }

    fn ids(v: &[Settled]) -> Vec<&str> {
        let mut ids: Vec<&str> = v.iter().map(|s| s.id.as_str()).collect();
        ids.sort_unstable();
        ids
    }

    #[test]
    fn sessions_settle_past_their_horizon_and_open_claims_wait() {
        let mut c = Correlator::new(CorrelateConfig::default());
        c.enable_settling();
        // done: dispatched, claimed and completed; unclaimed: dispatched only (T = 2 min);
        // running: claimed, no completion yet.
        c.on_event(ev(EventKind::Dispatch, "done", 0, Runner::Go), at(1));
        c.on_event(ev(EventKind::Claim, "done", 1, Runner::Go), at(2));
        c.on_event(ev(EventKind::Completion, "done", 5, Runner::Go), at(3));
        c.on_event(ev(EventKind::Dispatch, "unclaimed", 0, Runner::Ts), at(4));
        c.on_event(ev(EventKind::Dispatch, "running", 0, Runner::Go), at(5));
        c.on_event(ev(EventKind::Claim, "running", 1, Runner::Go), at(6));

        // unclaimed: deadline 2 + 10 slack = 12; done: completion 5 + 10 = 15.
        assert!(c.settle(Timestamp(11 * MIN)).is_empty());
        assert_eq!(ids(&c.settle(Timestamp(12 * MIN))), ["unclaimed"]);
        assert!(c.settle(Timestamp(14 * MIN)).is_empty());
        assert_eq!(ids(&c.settle(Timestamp(15 * MIN))), ["done"]);
        assert_eq!(c.session_count(), 1);
        // running holds for an hour past its deadline (2), its claim being open
        assert!(c.settle(Timestamp(61 * MIN)).is_empty());
        assert_eq!(ids(&c.settle(Timestamp(62 * MIN))), ["running"]);
        assert!(!c.late_evidence());
        assert_eq!(c.held_max(), 3);
    }

    #[test]
    fn new_evidence_pushes_the_horizon() {
        let mut c = Correlator::new(CorrelateConfig::default());
        c.enable_settling();
        c.on_event(ev(EventKind::Dispatch, "s", 0, Runner::Go), at(1));
        c.on_event(ev(EventKind::Claim, "s", 1, Runner::Go), at(2));
        c.on_event(ev(EventKind::Completion, "s", 3, Runner::Go), at(3));
        // a duplicate claim by another worker, still before the first horizon (13)
        let mut dup = ev(EventKind::Claim, "s", 12, Runner::Go);
        dup.worker = Some("w2".into());
        c.on_event(dup, at(4));
        assert!(c.settle(Timestamp(13 * MIN)).is_empty());
        assert_eq!(ids(&c.settle(Timestamp(72 * MIN))), ["s"]);
    }

    #[test]
    fn an_event_for_a_settled_session_is_late_evidence() {
        let mut c = Correlator::new(CorrelateConfig::default());
        c.enable_settling();
        c.on_event(ev(EventKind::Dispatch, "s", 0, Runner::Go), at(1));
        c.on_event(ev(EventKind::Dispatch, "t", 0, Runner::Go), at(2));
        assert_eq!(c.settle(Timestamp(20 * MIN)).len(), 2);
        assert!(!c.late_evidence());
        c.on_event(ev(EventKind::Dispatch, "u", 30, Runner::Go), at(3));
        assert!(!c.late_evidence(), "a new session is not late");
        c.on_event(ev(EventKind::Claim, "s", 200, Runner::Go), at(4));
        assert!(c.late_evidence());
    }

    /// One step of [`settles_what_each_session_s_own_due_time_says`]: an event (kind, session,
    /// minute, seconds) or a settle call at a minute.
    #[derive(Debug, Clone)]
    enum Step {
        Event(u8, u8, i64, i64),
        Settle(i64),
        /// A settle call a few seconds either side of some session's due moment (the
        /// `n`th of them), so calls fall in a due moment's own bucket.
        Near(usize, i64),
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            4 => (0u8..4, 0u8..12, 0i64..150, 0i64..60).prop_map(|(k, s, m, sec)| Step::Event(k, s, m, sec)),
            1 => (-5i64..500).prop_map(Step::Settle),
            2 => (0usize..64, -5000i64..5000).prop_map(|(n, ms)| Step::Near(n, ms)),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]

        /// Each session is due at one moment (its creation + the slack, then its horizon
        /// whenever it was found not settled yet), and a call settles exactly the sessions
        /// due by the watermark whose horizon the watermark has passed, whatever the order
        /// of the events and the calls, and whichever bucket a moment falls in (seconds
        /// spread the moments over the queue's four-second buckets).
        #[test]
        fn settles_what_each_session_s_own_due_time_says(
            steps in proptest::collection::vec(step(), 0..120),
        ) {
            let mut c = Correlator::new(CorrelateConfig::default());
            c.enable_settling();
            let mut due: std::collections::BTreeMap<String, Timestamp> = Default::default();
            for (line, s) in (1..).zip(steps) {
                match s {
                    Step::Event(k, s, m, sec) => {
                        let kind = [EventKind::Dispatch, EventKind::Claim, EventKind::Completion,
                            EventKind::Release][usize::from(k)];
                        let id = format!("s{s}");
                        let mut e = ev(kind, &id, m, Runner::Go);
                        e.time = Timestamp(m * MIN + sec * 1000);
                        if c.session(&SessionId::new(&id).unwrap_or_else(|| unreachable!())).is_none() {
                            due.insert(id, e.time.saturating_add_ms(SLACK_MS));
                        }
                        c.on_event(e, at(line));
                    }
                    Step::Settle(_) | Step::Near(..) => {
                        let low = match s {
                            Step::Near(n, ms) if !due.is_empty() => {
                                let at = due.values().nth(n % due.len()).copied();
                                at.unwrap_or(Timestamp(0)).saturating_add_ms(ms)
                            }
                            Step::Settle(m) => Timestamp(m * MIN + 999),
                            _ => Timestamp(0),
                        };
                        let mut want = Vec::new();
                        for (id, at) in &mut due {
                            if *at > low {
                                continue;
                            }
                            let sid = SessionId::new(id).unwrap_or_else(|| unreachable!());
                            let Some(session) = c.session(&sid) else { continue };
                            let h = horizon(session, c.timeouts());
                            if h > low {
                                *at = h;
                            } else {
                                want.push(id.clone());
                            }
                        }
                        for id in &want {
                            due.remove(id);
                        }
                        let got = c.settle(low);
                        proptest::prop_assert_eq!(ids(&got), want.iter().map(String::as_str).collect::<Vec<_>>());
                    }
                }
            }
        }
    }

    #[test]
    fn without_settling_nothing_settles() {
        let mut c = Correlator::new(CorrelateConfig::default());
        c.on_event(ev(EventKind::Dispatch, "s", 0, Runner::Go), at(1));
        assert!(c.settle(Timestamp(i64::MAX)).is_empty());
        assert_eq!(c.session_count(), 1);
        assert!(!c.late_evidence());
    }
}
