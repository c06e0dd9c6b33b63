use std::time::Duration;

use serde_json::json;

use super::*;

const GRACE: Duration = Duration::from_secs(30);
const T0: i64 = 1_795_428_000_000;

fn t(secs: i64) -> Timestamp {
    Timestamp(T0 + secs * 1000)
}

fn org(id: &str, features: Value, updated: i64) -> OrgFlag {
    OrgFlag {
        id: id.into(),
        slug: Some(format!("{id}-slug")),
        flag: resolve(Some(&features), "runner_default"),
        updated_at: Some(t(updated)),
    }
}

fn snap(at: i64, orgs: Vec<OrgFlag>) -> FlagSnapshot {
    FlagSnapshot {
        observed_at: t(at),
        orgs,
    }
}

#[test]
fn resolution_mirrors_the_failure_closed_resolver() {
    let cases: Vec<(Option<Value>, Runner, Option<&str>)> = vec![
        (None, Runner::Ts, None),
        (Some(Value::Null), Runner::Ts, None),
        (Some(json!({})), Runner::Ts, None),
        (Some(json!({"runner_default": null})), Runner::Ts, None),
        (Some(json!({"runner_default": "ts"})), Runner::Ts, None),
        (Some(json!({"runner_default": "go"})), Runner::Go, None),
        (
            Some(json!({"runner_default": "Go"})),
            Runner::Ts,
            Some("\"Go\""),
        ),
        (
            Some(json!({"runner_default": " go"})),
            Runner::Ts,
            Some("\" go\""),
        ),
        (Some(json!({"runner_default": 42})), Runner::Ts, Some("42")),
        (Some(json!({"runner_default": {}})), Runner::Ts, Some("{}")),
        (
            Some(json!({"runner_default": true})),
            Runner::Ts,
            Some("true"),
        ),
        (Some(json!({"other": "go"})), Runner::Ts, None),
        (Some(json!("go")), Runner::Ts, Some("\"go\"")),
        (Some(json!([1])), Runner::Ts, Some("[1]")),
    ];
    for (features, expected, malformed) in cases {
        let f = resolve(features.as_ref(), "runner_default");
        assert_eq!(f.expected, expected, "{features:?}");
        assert_eq!(f.malformed.as_deref(), malformed, "{features:?}");
    }
}

#[test]
fn first_snapshot_is_a_baseline_then_a_change_is_one_flip() {
    let mut book = FlagBook::new();
    let base = book.apply(&snap(0, vec![org("o1", json!({}), -3600)]));
    assert!(base.baseline && base.flips.is_empty());
    // the same table again: nothing
    assert_eq!(
        book.apply(&snap(10, vec![org("o1", json!({}), -3600)])),
        FlagChanges::default()
    );
    // flipped at +15 s, seen at +20 s: dated by updated_at
    let go = vec![org("o1", json!({"runner_default": "go"}), 15)];
    let c = book.apply(&snap(20, go.clone()));
    assert_eq!(c.flips.len(), 1);
    let f = &c.flips[0];
    assert_eq!(
        (f.from, f.to, f.at, f.earliest),
        (Runner::Ts, Runner::Go, t(15), t(15))
    );
    assert_eq!(f.observed_at, t(20));
    // seen again: not repeated
    assert!(book.apply(&snap(30, go)).flips.is_empty());
    assert_eq!(book.flips_of("o1").len(), 1);
    assert_eq!(book.last_flip("o1-slug").map(|f| f.to), Some(Runner::Go));
}

#[test]
fn expected_runner_over_time_and_drift_with_grace() {
    let mut book = FlagBook::new();
    book.apply(&snap(0, vec![org("o1", json!({}), -3600)]));
    book.apply(&snap(
        100,
        vec![org("o1", json!({"runner_default": "go"}), 60)],
    ));
    assert_eq!(book.expected_at("o1", t(-10)), Some(Runner::Ts));
    assert_eq!(book.expected_at("o1", t(59)), Some(Runner::Ts));
    assert_eq!(book.expected_at("o1", t(60)), Some(Runner::Go));
    // before the book knew the org, and after the last snapshot: unknown
    assert_eq!(book.expected_at("o1", t(-4000)), None);
    assert_eq!(book.expected_at("o1", t(101)), None);
    let cases = [
        // (dispatched, at, verdict)
        (Runner::Ts, 30, DriftVerdict::Agree),
        (
            Runner::Go,
            30,
            DriftVerdict::Drift {
                expected: Runner::Ts,
            },
        ),
        (Runner::Go, 70, DriftVerdict::Agree),
        (Runner::Ts, 70, DriftVerdict::Agree), // within 30 s of the flip
        (Runner::Ts, 89, DriftVerdict::Agree),
        (
            Runner::Ts,
            90,
            DriftVerdict::Drift {
                expected: Runner::Go,
            },
        ),
        (
            Runner::Other,
            70,
            DriftVerdict::Drift {
                expected: Runner::Go,
            },
        ),
        (Runner::Ts, 101, DriftVerdict::Unknown { retry: true }),
        (Runner::Ts, -4000, DriftVerdict::Unknown { retry: false }),
    ];
    for (runner, at, want) in cases {
        assert_eq!(
            book.drift("o1", runner, t(at), GRACE),
            want,
            "{runner} at {at}"
        );
    }
}

#[test]
fn rollback_is_a_second_flip_back() {
    let mut book = FlagBook::new();
    book.apply(&snap(
        0,
        vec![org("o1", json!({"runner_default": "go"}), -50)],
    ));
    let c = book.apply(&snap(
        100,
        vec![org("o1", json!({"runner_default": "ts"}), 90)],
    ));
    assert_eq!(c.flips[0].to, Runner::Ts);
    let c = book.apply(&snap(200, vec![org("o1", json!({}), 150)]));
    assert!(c.flips.is_empty(), "ts written two ways is still ts");
    assert_eq!(book.expected_at("o1", t(0)), Some(Runner::Go));
    assert_eq!(book.expected_at("o1", t(95)), Some(Runner::Ts));
}

#[test]
fn malformed_flags_are_reported_once_and_mean_ts() {
    let mut book = FlagBook::new();
    let c = book.apply(&snap(
        0,
        vec![org("o1", json!({"runner_default": "Go"}), -5)],
    ));
    assert_eq!(c.malformed.len(), 1, "the baseline reports malformed flags");
    assert_eq!(c.malformed[0].raw, "\"Go\"");
    let c = book.apply(&snap(
        10,
        vec![org("o1", json!({"runner_default": "Go"}), -5)],
    ));
    assert!(c.malformed.is_empty());
    let c = book.apply(&snap(
        20,
        vec![org("o1", json!({"runner_default": 42}), 15)],
    ));
    assert_eq!(c.malformed[0].raw, "42");
    assert!(c.flips.is_empty(), "malformed to malformed is ts to ts");
    let c = book.apply(&snap(
        30,
        vec![org("o2", json!({"runner_default": {}}), 25)],
    ));
    assert_eq!(
        c.malformed[0].org, "o2",
        "a new org's malformed flag is reported"
    );
}

#[test]
fn a_deleted_row_falls_back_to_ts_and_a_returning_one_flips_again() {
    let mut book = FlagBook::new();
    book.apply(&snap(
        0,
        vec![
            org("o1", json!({"runner_default": "go"}), -50),
            org("o2", json!({}), -50),
        ],
    ));
    let c = book.apply(&snap(10, vec![org("o2", json!({}), -50)]));
    assert_eq!(
        c.flips.len(),
        1,
        "o2 (ts) deleted would not change anything"
    );
    let f = &c.flips[0];
    assert_eq!(
        (f.org.as_str(), f.from, f.to, f.cause),
        ("o1", Runner::Go, Runner::Ts, FlipCause::RowDeleted)
    );
    // undated: anywhere between the two snapshots, so both runners agree there
    assert_eq!((f.earliest, f.at), (t(0), t(10)));
    assert_eq!(
        book.drift("o1", Runner::Ts, t(5), GRACE),
        DriftVerdict::Agree
    );
    assert_eq!(
        book.drift("o1", Runner::Go, t(5), GRACE),
        DriftVerdict::Agree
    );
    assert!(!book.org("o1").unwrap().present);
    let c = book.apply(&snap(20, vec![org("o2", json!({}), -50)]));
    assert!(c.flips.is_empty(), "a deletion is found once");
    let c = book.apply(&snap(
        30,
        vec![
            org("o1", json!({"runner_default": "go"}), 25),
            org("o2", json!({}), -50),
        ],
    ));
    assert_eq!(c.flips[0].to, Runner::Go);
    assert!(book.org("o1").unwrap().present);
}

#[test]
fn unknown_orgs_had_no_row_and_resolve_to_ts() {
    let mut book = FlagBook::new();
    assert_eq!(
        book.drift("o9", Runner::Go, t(0), GRACE),
        DriftVerdict::Unknown { retry: true },
        "no snapshot yet: deferred"
    );
    book.apply(&snap(0, vec![org("o1", json!({}), -50)]));
    assert_eq!(
        book.drift("o9", Runner::Go, t(0), GRACE),
        DriftVerdict::Drift {
            expected: Runner::Ts
        }
    );
    assert_eq!(
        book.drift("o9", Runner::Go, t(-1), GRACE),
        DriftVerdict::Unknown { retry: false }
    );
}

#[test]
fn an_undated_change_is_dated_by_the_snapshots_around_it() {
    let mut book = FlagBook::new();
    book.apply(&snap(0, vec![org("o1", json!({}), -50)]));
    // updated_at not moved by whoever flipped it
    let c = book.apply(&snap(
        10,
        vec![org("o1", json!({"runner_default": "go"}), -50)],
    ));
    let f = &c.flips[0];
    assert_eq!((f.earliest, f.at), (t(0), t(10)));
}

#[test]
fn a_restored_book_neither_loses_nor_repeats_a_flip() {
    let mut book = FlagBook::new();
    book.apply(&snap(
        0,
        vec![org("o1", json!({}), -50), org("o2", json!({}), -50)],
    ));
    book.apply(&snap(
        10,
        vec![
            org("o1", json!({"runner_default": "go"}), 5),
            org("o2", json!({}), -50),
        ],
    ));
    let saved = book.saved();
    let json = serde_json::to_string(&saved).unwrap();
    let mut back = FlagBook::from_saved(serde_json::from_str(&json).unwrap());
    assert_eq!(back.saved(), saved);
    // while down, o2 was flipped too; o1 is unchanged
    let c = back.apply(&snap(
        100,
        vec![
            org("o1", json!({"runner_default": "go"}), 5),
            org("o2", json!({"runner_default": "go"}), 50),
        ],
    ));
    assert!(!c.baseline);
    assert_eq!(c.flips.len(), 1);
    assert_eq!((c.flips[0].org.as_str(), c.flips[0].at), ("o2", t(50)));
    assert_eq!(back.expected_at("o1", t(3)), Some(Runner::Ts));
    assert_eq!(back.expected_at("o1", t(7)), Some(Runner::Go));
}

#[test]
fn an_older_snapshot_is_ignored() {
    let mut book = FlagBook::new();
    book.apply(&snap(10, vec![org("o1", json!({}), -50)]));
    let c = book.apply(&snap(
        5,
        vec![org("o1", json!({"runner_default": "go"}), 1)],
    ));
    assert_eq!(c, FlagChanges::default());
    assert_eq!(book.last_observed(), Some(t(10)));
}

mod model {
    use proptest::prelude::*;

    use super::*;

    /// One org's row in a snapshot: absent, or a `runner_default` value.
    fn cell() -> impl Strategy<Value = Option<Value>> {
        prop_oneof![
            Just(None),
            Just(Some(json!({}))),
            Just(Some(json!({"runner_default": "go"}))),
            Just(Some(json!({"runner_default": "ts"}))),
            Just(Some(json!({"runner_default": "Go"}))),
            Just(Some(json!({"runner_default": null}))),
        ]
    }

    fn snapshots(rows: &[Vec<Option<Value>>]) -> Vec<FlagSnapshot> {
        rows.iter()
            .enumerate()
            .map(|(i, row)| {
                let i = i as i64;
                snap(
                    i * 10,
                    row.iter()
                        .enumerate()
                        .filter_map(|(o, v)| {
                            v.as_ref()
                                .map(|v| org(&format!("o{o}"), v.clone(), i * 10 - 5))
                        })
                        .collect(),
                )
            })
            .collect()
    }

    fn runner_of(v: &Option<Value>) -> Runner {
        v.as_ref()
            .map_or(Runner::Ts, |v| resolve(Some(v), "runner_default").expected)
    }

    proptest! {
        /// Flips are exactly the changes of the resolved runner between consecutive snapshots
        /// (an org first seen after the baseline is no flip), and saving and restoring the
        /// book at any point neither loses nor repeats one.
        #[test]
        fn flips_match_the_model_across_any_restart(
            rows in proptest::collection::vec(proptest::collection::vec(cell(), 3), 1..12),
            split in 0usize..12,
        ) {
            let snaps = snapshots(&rows);
            let mut whole = FlagBook::new();
            let all: Vec<Flip> = snaps.iter().flat_map(|s| whole.apply(s).flips).collect();

            let mut expected = 0;
            for o in 0..3 {
                let mut seen = false;
                for w in rows.windows(2) {
                    seen |= w[0][o].is_some();
                    if seen && runner_of(&w[0][o]) != runner_of(&w[1][o]) {
                        expected += 1;
                    }
                }
            }
            prop_assert_eq!(all.len(), expected);

            let split = split.min(snaps.len());
            let mut first = FlagBook::new();
            let mut flips: Vec<Flip> = snaps[..split].iter().flat_map(|s| first.apply(s).flips).collect();
            let json = serde_json::to_string(&first.saved()).unwrap();
            let mut second = FlagBook::from_saved(serde_json::from_str(&json).unwrap());
            flips.extend(snaps[split..].iter().flat_map(|s| second.apply(s).flips));
            prop_assert_eq!(flips, all);
        }
    }
}
