//! A session's [`Mark`] as the shared state stores it: one line of `|`-separated fields, the
//! first being the mark's version, which the judge script compares and bumps (the
//! compare-and-set that makes one replica's judgement the one that counts).
//!
//! Absent values are `-`; runners and outcomes by their names; flags `0`/`1`.

use crate::correlate::Outcome;
use crate::correlate::live::{Counted, Mark, MaybeTime};
use crate::event::{Runner, Timestamp};

/// A stored mark that could not be read back (written by another version, or damaged).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unreadable mark {0:?}")]
pub struct BadMark(pub String);

/// How many fields an encoded mark has, its version first.
const FIELDS: usize = 23;

/// `mark` at `version`, encoded.
pub fn encode(version: u64, m: &Mark) -> String {
    let c = &m.counted;
    let fields: [String; FIELDS] = [
        version.to_string(),
        m.first_seen.millis().to_string(),
        flag(m.dispatched),
        runner(c.dispatched),
        c.outcome.map_or("-", Outcome::as_str).to_owned(),
        flag(c.skew_clamped),
        flag(c.duplicate),
        flag(c.duplicate_cross_runtime),
        c.reclaims.to_string(),
        c.orphan_claims.to_string(),
        flag(m.judged),
        runner(m.pending),
        runner(m.overdue),
        flag(m.duplicate),
        m.reclaims.to_string(),
        m.orphan_claims.map_or("-".to_owned(), |n| n.to_string()),
        time(m.settled_through.get()),
        time(m.settle_key.get()),
        time(m.hold_until.get()),
        time(m.orphan_key.get()),
        time(m.orphan_hold.get()),
        time(m.deadline.get()),
        // Room for a field a later version adds without a new layout.
        String::new(),
    ];
    fields.join("|")
}

/// Reads an encoded mark back: its version and the mark.
pub fn decode(s: &str) -> Result<(u64, Mark), BadMark> {
    let bad = || BadMark(s.to_owned());
    let f: Vec<&str> = s.split('|').collect();
    if f.len() != FIELDS {
        return Err(bad());
    }
    let num = |i: usize| f[i].parse::<u32>().map_err(|_| bad());
    let flag = |i: usize| match f[i] {
        "0" => Ok(false),
        "1" => Ok(true),
        _ => Err(bad()),
    };
    let runner = |i: usize| match f[i] {
        "-" => Ok(None),
        r => Runner::ALL
            .into_iter()
            .find(|x| x.as_str() == r)
            .map(Some)
            .ok_or_else(bad),
    };
    // `Timestamp::MIN` reads as none, as in a mark (an older replica could have written it as
    // a settled time, where it means the same).
    let time = |i: usize| match f[i] {
        "-" => Ok(MaybeTime::NONE),
        t => t
            .parse()
            .map(|t| MaybeTime::from(Timestamp(t)))
            .map_err(|_| bad()),
    };
    let version = f[0].parse().map_err(|_| bad())?;
    let mark = Mark {
        first_seen: Timestamp(f[1].parse().map_err(|_| bad())?),
        dispatched: flag(2)?,
        counted: Counted {
            dispatched: runner(3)?,
            outcome: match f[4] {
                "-" => None,
                o => Some(
                    Outcome::ALL
                        .into_iter()
                        .find(|x| x.as_str() == o)
                        .ok_or_else(bad)?,
                ),
            },
            skew_clamped: flag(5)?,
            duplicate: flag(6)?,
            duplicate_cross_runtime: flag(7)?,
            reclaims: num(8)?,
            orphan_claims: num(9)?,
        },
        judged: flag(10)?,
        pending: runner(11)?,
        overdue: runner(12)?,
        duplicate: flag(13)?,
        // Not kept: the feed's judgements always set the dispatch columns again.
        refile: false,
        reclaims: num(14)?,
        orphan_claims: match f[15] {
            "-" => None,
            _ => Some(num(15)?),
        },
        settled_through: time(16)?,
        settle_key: time(17)?,
        hold_until: time(18)?,
        orphan_key: time(19)?,
        orphan_hold: time(20)?,
        deadline: time(21)?,
    };
    Ok((version, mark))
}

fn flag(b: bool) -> String {
    if b { "1" } else { "0" }.to_owned()
}

fn runner(r: Option<Runner>) -> String {
    r.map_or("-", Runner::as_str).to_owned()
}

fn time(t: Option<Timestamp>) -> String {
    t.map_or("-".to_owned(), |t| t.millis().to_string())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn runner() -> impl Strategy<Value = Option<Runner>> {
        proptest::option::of(proptest::sample::select(Runner::ALL.to_vec()))
    }

    fn time() -> impl Strategy<Value = MaybeTime> {
        proptest::option::of((i64::MIN + 1..=i64::MAX).prop_map(Timestamp))
            .prop_map(MaybeTime::from)
    }

    prop_compose! {
        fn counted()(
            dispatched in runner(),
            outcome in proptest::option::of(proptest::sample::select(Outcome::ALL.to_vec())),
            flags in any::<[bool; 3]>(),
            reclaims in any::<u32>(),
            orphan_claims in any::<u32>(),
        ) -> Counted {
            Counted {
                dispatched,
                outcome,
                skew_clamped: flags[0],
                duplicate: flags[1],
                duplicate_cross_runtime: flags[2],
                reclaims,
                orphan_claims,
            }
        }
    }

    prop_compose! {
        fn mark()(
            first_seen in any::<i64>(),
            counted in counted(),
            flags in any::<[bool; 3]>(),
            pending in runner(),
            overdue in runner(),
            reclaims in any::<u32>(),
            orphan_claims in proptest::option::of(any::<u32>()),
            times in proptest::array::uniform6(time()),
        ) -> Mark {
            Mark {
                first_seen: Timestamp(first_seen),
                dispatched: flags[0],
                counted,
                judged: flags[1],
                pending,
                overdue,
                duplicate: flags[2],
                refile: false,
                reclaims,
                orphan_claims,
                settled_through: times[0],
                settle_key: times[1],
                hold_until: times[2],
                orphan_key: times[3],
                orphan_hold: times[4],
                deadline: times[5],
            }
        }
    }

    proptest! {
        #[test]
        fn every_mark_round_trips(version in any::<u64>(), m in mark()) {
            prop_assert_eq!(decode(&encode(version, &m)), Ok((version, m)));
        }
    }

    #[test]
    fn damaged_marks_are_refused() {
        let good = encode(3, &Mark::default());
        assert!(decode(&good).is_ok());
        for bad in [
            String::new(),
            good.replacen('|', "", 1),
            format!("{good}|"),
            good.replacen("|-|", "|x|", 1),
            good.replacen('3', "x", 1),
        ] {
            assert!(decode(&bad).is_err(), "{bad:?}");
        }
    }

    /// A time of `Timestamp::MIN` (which an older replica could have written as a settled
    /// time) reads as none, which it means.
    #[test]
    fn a_time_of_timestamp_min_reads_as_none() {
        let good = encode(3, &Mark::default());
        let min = i64::MIN.to_string();
        let mut f: Vec<&str> = good.split('|').collect();
        f[16] = &min;
        assert_eq!(decode(&f.join("|")), Ok((3, Mark::default())));
    }
}
