//! Live correlation replaying a simulated platform, as a sidecar would see it.

use claimcheck::correlate::Outcome;
use claimcheck::correlate::live::{Change, Live, LiveConfig};
use claimcheck::event::{
    Origin,
    Runner::{Go, Ts},
};
use claimcheck::parse::{LineContext, Parsed, Parser};
use claimcheck::simulate::{SimConfig, generate};

fn live() -> Live {
    Live::new(LiveConfig::default())
}

/// Replaying a simulated workload in time order, as a live sidecar sees it, judges every
/// session as `verify` does (truth.json), and every session ends judged, overdue or pending.
#[test]
fn time_ordered_replay_matches_the_truth() {
    let dir = tempfile::tempdir().unwrap();
    let truth = generate(
        &SimConfig {
            sessions: 3000,
            seed: 11,
            ..SimConfig::default()
        },
        dir.path(),
    )
    .unwrap();
    let parser = Parser::new(Default::default());
    let mut events = Vec::new();
    for (file, runtime) in [
        ("dispatch.log", None),
        ("vercel-drain.ndjson", None),
        ("go-daemon.log", Some(Go)),
        ("ts-worker.log", Some(Ts)),
    ] {
        let ctx = LineContext {
            default_runtime: runtime,
            received_at: None,
        };
        for line in std::fs::read(dir.path().join(file))
            .unwrap()
            .split(|&b| b == b'\n')
        {
            if let Parsed::Event(e) = parser.parse_line(line, &ctx) {
                events.push(e);
            }
        }
    }
    events.sort_by_key(|e| e.time);
    let mut l = live();
    let (mut outcomes, mut duplicates, mut overdue) = ([0u64; 5], 0u64, 0u64);
    for e in events {
        // the sidecar receives each event when it happens
        let now = e.time;
        let mut changes = l.on_tick(now);
        changes.extend(l.on_event(e, Origin::default(), now).unwrap_or_default());
        for c in changes {
            match c {
                Change::Judged { outcome, .. } => outcomes[outcome as usize] += 1,
                Change::Duplicate { .. } => duplicates += 1,
                Change::Overdue { .. } => overdue += 1,
                Change::OverdueResolved { .. } => overdue -= 1,
                _ => {}
            }
        }
    }
    let t = &truth.totals;
    assert_eq!(outcomes[Outcome::Matched as usize], t.matched);
    assert_eq!(outcomes[Outcome::Late as usize], t.late);
    assert_eq!(outcomes[Outcome::Mismatched as usize], t.mismatched);
    assert_eq!(duplicates, t.duplicate_claims);
    // in time order, an unclaimed session is overdue exactly when batch calls it unclaimed
    assert_eq!(overdue, t.unclaimed);
}
