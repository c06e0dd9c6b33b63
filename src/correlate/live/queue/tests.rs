//! The queue against the `BTreeSet` it replaces, driven as `Live` drives it: each session
//! has at most one key (its mark), moved, cleared or popped; keys follow a clock that mostly
//! moves forward, with another timeout's offset interleaved and the clock stepping back now
//! and then.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;

#[derive(Debug, Clone)]
enum Op {
    /// The clock moves on.
    Advance(i64),
    /// A session is scheduled at the clock plus an offset (moved there if it was scheduled).
    Schedule { id: u8, offset: i64 },
    /// A session's key is cleared without a pop (settled, forgotten).
    Clear(u8),
    /// Whatever is due by the clock plus `ahead` is popped, in order, as a tick does.
    Pop { ahead: i64 },
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0i64..3).prop_map(Op::Advance),
        5 => (0u8..12, prop_oneof![Just(0i64), Just(0), Just(5), Just(-1), 0i64..8])
            .prop_map(|(id, offset)| Op::Schedule { id, offset }),
        2 => (0u8..12).prop_map(Op::Clear),
        2 => (-2i64..10).prop_map(|ahead| Op::Pop { ahead }),
    ]
}

fn sid(n: u8) -> SessionId {
    // Ids whose order differs from the order they are scheduled in.
    SessionId::new(&format!("s{}", (n * 7) % 12)).unwrap()
}

/// Runs `ops` on a queue and on the model; each pop must agree, and after every step the
/// earliest key must be the model's.
fn check(ops: &[Op]) -> Result<(), TestCaseError> {
    let mut q = Queue::default();
    let mut model: BTreeSet<Entry> = BTreeSet::new();
    let mut marks: BTreeMap<SessionId, Timestamp> = BTreeMap::new();
    let mut clock = 1_000i64;
    for op in ops {
        match op {
            Op::Advance(d) => clock += d,
            Op::Schedule { id, offset } => {
                let (id, key) = (sid(*id), Timestamp(clock + offset));
                let old = marks.insert(id.clone(), key);
                if old != Some(key) {
                    model.insert((key, id.clone()));
                    q.push(key, id.clone());
                    if let Some(old) = old {
                        model.remove(&(old, id.clone()));
                        q.remove(old, &id, &|k, i| marks.get(i) == Some(&k));
                    }
                }
            }
            Op::Clear(id) => {
                let id = sid(*id);
                if let Some(old) = marks.remove(&id) {
                    model.remove(&(old, id.clone()));
                    q.remove(old, &id, &|k, i| marks.get(i) == Some(&k));
                }
            }
            Op::Pop { ahead } => {
                let at = Timestamp(clock + ahead);
                loop {
                    let want = model
                        .first()
                        .filter(|(k, _)| *k <= at)
                        .cloned()
                        .inspect(|e| {
                            model.remove(e);
                        })
                        .map(|(_, id)| id);
                    let got = q.pop_due(at, &|k, i| marks.get(i) == Some(&k));
                    prop_assert_eq!(&got, &want, "popped at {:?}", at);
                    let Some(id) = got else { break };
                    // The caller clears the popped key in the mark.
                    marks.remove(&id);
                }
            }
        }
        prop_assert_eq!(
            q.first_key(),
            model.first().map(|e| e.0),
            "earliest key after {:?}",
            op
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Pops in `(key, id)` order, stale entries never come out, and the earliest key is
    /// exact after every step.
    #[test]
    fn pops_and_first_key_as_a_btreeset(ops in proptest::collection::vec(arb_op(), 0..120)) {
        check(&ops)?;
    }
}

/// One batch's sessions (the same receive time) scheduled in reverse id order, with a
/// second timeout's keys interleaved and the clock stepping back: popped in `(key, id)`
/// order.
#[test]
fn ties_pop_in_id_order_across_lanes() {
    let mut q = Queue::default();
    let marks: BTreeMap<SessionId, Timestamp> = (0..40u8)
        .rev()
        .map(|n| {
            let key = match n % 3 {
                0 => 100,
                1 => 130,
                _ => 99,
            };
            (SessionId::new(&format!("s{n:02}")).unwrap(), Timestamp(key))
        })
        .collect();
    for n in (0..40u8).rev() {
        let id = SessionId::new(&format!("s{n:02}")).unwrap();
        q.push(marks[&id], id);
    }
    let mut want: Vec<_> = marks.iter().map(|(id, k)| (*k, id.clone())).collect();
    want.sort();
    let mut got = Vec::new();
    while let Some(id) = q.pop_due(Timestamp(200), &|k, i| marks.get(i) == Some(&k)) {
        got.push((marks[&id], id));
    }
    assert_eq!(got, want);
}

/// Sessions scheduled and cleared by the thousand: the stale entries do not outnumber the
/// live ones (plus the slack) for long, so memory follows the sessions scheduled.
#[test]
fn stale_entries_are_dropped() {
    let mut q = Queue::default();
    let mut marks: BTreeMap<SessionId, Timestamp> = BTreeMap::new();
    for n in 0..50_000u32 {
        let id = SessionId::new(&format!("s{n}")).unwrap();
        let key = Timestamp(i64::from(n / 10));
        marks.insert(id.clone(), key);
        q.push(key, id);
        // All but every tenth session is cleared soon after, out of order.
        if n >= 7 && n % 10 != 0 {
            let old = SessionId::new(&format!("s{}", n - 7)).unwrap();
            if (n - 7) % 10 != 0
                && let Some(k) = marks.remove(&old)
            {
                q.remove(k, &old, &|k, i| marks.get(i) == Some(&k));
            }
        }
        assert!(
            q.len() <= 2 * marks.len() + COMPACT_AFTER + 1,
            "{} entries for {} sessions",
            q.len(),
            marks.len()
        );
    }
    assert!(q.len() < 3 * marks.len(), "{} for {}", q.len(), marks.len());
}
