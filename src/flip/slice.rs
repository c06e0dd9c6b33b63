//! One replica's share of a post-flip report's evidence, as it travels between replicas
//! (`serve --cluster`), and the shares put back together.
//!
//! Each replica holds only its own sources' lines, so each reads its share from its own store
//! (`stored::read_share`): its sources as counted, and the events of them that bear on the
//! org. The shares of every replica, merged, are the evidence the log files of all of them
//! would give (`logs::read`), so the report built from them is the batch report's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{FlipEvidence, SourceEvidence};
use crate::event::{Event, EventKind, Origin, Runner, SessionId, Timestamp};

/// A source as a share carries it.
#[derive(Debug, Serialize, Deserialize)]
struct Source {
    name: String,
    role: String,
    runtime: Option<String>,
    lines: u64,
    events: u64,
    rejected: u64,
    rejected_by: BTreeMap<String, u64>,
    first: Option<i64>,
    last: Option<i64>,
    /// (epoch minute, events)
    per_minute: Vec<(i64, u64)>,
}

/// An event as a share carries it, with its origin (`i` indexes the share's sources).
#[derive(Debug, Serialize, Deserialize)]
struct Carried {
    k: String,
    s: Option<String>,
    r: String,
    t: i64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    o: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    w: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    v: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    d: Option<String>,
    i: u16,
    l: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct Share {
    sources: Vec<Source>,
    events: Vec<Carried>,
}

/// A share that could not be read back (written by another version, or damaged).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unreadable share of flip evidence: {0}")]
pub struct BadShare(String);

/// `ev` as text.
pub fn encode(ev: &FlipEvidence) -> String {
    let share = Share {
        sources: ev
            .sources
            .iter()
            .map(|s| Source {
                name: s.name.clone(),
                role: s.role.clone(),
                runtime: s.default_runtime.map(|r| r.as_str().to_owned()),
                lines: s.lines,
                events: s.events,
                rejected: s.rejected,
                rejected_by: s.rejected_by.clone(),
                first: s.first_event.map(Timestamp::millis),
                last: s.last_event.map(Timestamp::millis),
                per_minute: s.per_minute.iter().map(|(&m, &n)| (m, n)).collect(),
            })
            .collect(),
        events: ev
            .events
            .iter()
            .map(|(e, o)| Carried {
                k: e.kind.as_str().to_owned(),
                s: e.session.as_ref().map(|s| s.as_str().to_owned()),
                r: e.runner.as_str().to_owned(),
                t: e.time.millis(),
                o: e.org.as_deref().map(str::to_owned),
                w: e.worker.as_deref().map(str::to_owned),
                v: e.version.as_deref().map(str::to_owned),
                d: e.detail.as_deref().map(str::to_owned),
                i: o.input,
                l: o.line,
            })
            .collect(),
    };
    serde_json::to_string(&share).unwrap_or_default()
}

fn runner_named(s: &str) -> Option<Runner> {
    Runner::ALL.into_iter().find(|r| r.as_str() == s)
}

/// A share read back.
pub fn decode(text: &str) -> Result<FlipEvidence, BadShare> {
    let bad = |what: &str| BadShare(what.to_owned());
    let share: Share = serde_json::from_str(text).map_err(|e| bad(&e.to_string()))?;
    let sources = share
        .sources
        .into_iter()
        .map(|s| {
            let default_runtime = match s.runtime.as_deref() {
                None => None,
                Some(r) => Some(runner_named(r).ok_or_else(|| bad(r))?),
            };
            Ok(SourceEvidence {
                name: s.name,
                role: s.role,
                default_runtime,
                lines: s.lines,
                events: s.events,
                rejected: s.rejected,
                rejected_by: s.rejected_by,
                first_event: s.first.map(Timestamp),
                last_event: s.last.map(Timestamp),
                per_minute: s.per_minute.into_iter().collect(),
            })
        })
        .collect::<Result<Vec<_>, BadShare>>()?;
    let events = share
        .events
        .into_iter()
        .map(|c| {
            let kind = EventKind::ALL
                .into_iter()
                .find(|k| k.as_str() == c.k)
                .ok_or_else(|| bad(&c.k))?;
            let session = match c.s.as_deref() {
                None => None,
                Some(s) => Some(SessionId::new(s).ok_or_else(|| bad(s))?),
            };
            if usize::from(c.i) >= sources.len() {
                return Err(bad("an event of no source"));
            }
            let ev = Event {
                kind,
                session,
                runner: runner_named(&c.r).ok_or_else(|| bad(&c.r))?,
                time: Timestamp(c.t),
                org: c.o.map(Into::into),
                worker: c.w.map(Into::into),
                version: c.v.map(Into::into),
                detail: c.d.map(Into::into),
            };
            Ok((
                ev,
                Origin {
                    input: c.i,
                    line: c.l,
                },
            ))
        })
        .collect::<Result<Vec<_>, BadShare>>()?;
    Ok(FlipEvidence { events, sources })
}

/// Every replica's share as one evidence: the dispatch sources first, then the others, each
/// group by name (the order the sources are listed in, whichever replica reads which), every
/// event's origin renumbered to match. `absent` names sources whose replica gave no share:
/// each is listed with nothing delivered (silent), so the report says the evidence is
/// incomplete instead of judging without it.
pub fn merge(shares: Vec<FlipEvidence>, absent: &[(String, String)]) -> FlipEvidence {
    // (share, its source index) of every source, in the merged order.
    let mut order: Vec<(usize, usize)> = shares
        .iter()
        .enumerate()
        .flat_map(|(i, s)| (0..s.sources.len()).map(move |j| (i, j)))
        .collect();
    let key = |&(i, j): &(usize, usize)| {
        let s: &SourceEvidence = &shares[i].sources[j];
        (s.role != "dispatch", s.name.clone(), i, j)
    };
    order.sort_by_key(key);
    let at: BTreeMap<(usize, usize), u16> = order
        .iter()
        .enumerate()
        .map(|(n, &ij)| (ij, u16::try_from(n).unwrap_or(u16::MAX)))
        .collect();
    let mut sources: Vec<SourceEvidence> = order
        .iter()
        .map(|&(i, j)| shares[i].sources[j].clone())
        .collect();
    for (name, role) in absent {
        if !sources.iter().any(|s| &s.name == name) {
            sources.push(SourceEvidence::new(name.clone(), role.clone()));
        }
    }
    let events = shares
        .into_iter()
        .enumerate()
        .flat_map(|(i, s)| {
            let at = &at;
            s.events.into_iter().map(move |(e, o)| {
                let input = at
                    .get(&(i, usize::from(o.input)))
                    .copied()
                    .unwrap_or(u16::MAX);
                (e, Origin { input, ..o })
            })
        })
        .collect();
    FlipEvidence { events, sources }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flip::EvidenceBuilder;

    fn ev(kind: EventKind, session: &str, runner: Runner, t: i64) -> Event {
        Event {
            kind,
            session: SessionId::new(session),
            runner,
            time: Timestamp(t),
            org: (kind == EventKind::Dispatch).then(|| "acme".into()),
            worker: (kind != EventKind::Dispatch).then(|| "w-1".into()),
            version: (kind == EventKind::Heartbeat).then(|| "0.5.2".into()),
            detail: (kind == EventKind::Release).then(|| "oauth\nexpired".into()),
        }
    }

    /// Two replicas' shares, merged, give the evidence one builder reading both replicas'
    /// sources gives (the batch report's), whatever order the shares come in.
    #[test]
    fn shares_merged_are_the_evidence_of_all_the_sources() {
        let dispatch = vec![
            (ev(EventKind::Dispatch, "s-1", Runner::Go, 1_000), 1),
            (ev(EventKind::Dispatch, "s-2", Runner::Ts, 2_000), 2),
        ];
        let claims = vec![
            (ev(EventKind::Claim, "s-1", Runner::Go, 1_500), 1),
            (ev(EventKind::Heartbeat, "", Runner::Go, 1_600), 2),
            (ev(EventKind::Release, "s-2", Runner::Go, 2_500), 3),
            (ev(EventKind::Claim, "other", Runner::Go, 2_600), 4),
        ];
        let source = |name: &str, role: &str, rt: Option<Runner>| SourceEvidence {
            default_runtime: rt,
            ..SourceEvidence::new(name, role)
        };
        // What one builder over both makes (claims first: the order does not matter).
        let mut all = EvidenceBuilder::new(
            "acme",
            vec![
                source("d.log", "dispatch", None),
                source("go.log", "claims", Some(Runner::Go)),
            ],
        );
        for (e, l) in &claims {
            all.event(e, Origin { input: 1, line: *l });
        }
        for (e, l) in &dispatch {
            all.event(e, Origin { input: 0, line: *l });
        }
        all.source_mut(0).unwrap().lines = 2;
        all.source_mut(1).unwrap().lines = 5;
        all.source_mut(1).unwrap().rejected = 1;
        let all = all.finish();

        let mut d = EvidenceBuilder::new("acme", vec![source("d.log", "dispatch", None)]);
        for (e, l) in &dispatch {
            d.event(e, Origin { input: 0, line: *l });
        }
        d.source_mut(0).unwrap().lines = 2;
        let sessions = ["s-1", "s-2"].map(|s| SessionId::new(s).unwrap());
        let mut c = EvidenceBuilder::knowing(
            "acme",
            vec![source("go.log", "claims", Some(Runner::Go))],
            sessions,
        );
        for (e, l) in &claims {
            c.event(e, Origin { input: 0, line: *l });
        }
        c.source_mut(0).unwrap().lines = 5;
        c.source_mut(0).unwrap().rejected = 1;
        let (d, c) = (d.finish(), c.finish());
        let round = |e: &FlipEvidence| decode(&encode(e)).unwrap();
        assert_eq!(round(&c), c, "a share reads back as it was");
        for shares in [vec![round(&d), round(&c)], vec![round(&c), round(&d)]] {
            let mut merged = merge(shares, &[]);
            let mut want = all.clone();
            merged.events.sort_by_key(|(e, o)| (e.time, *o));
            want.events.sort_by_key(|(e, o)| (e.time, *o));
            assert_eq!(merged, want);
        }
        // A replica that gave no share: its source is there, silent.
        let merged = merge(
            vec![d.clone()],
            &[("go.log".to_owned(), "claims".to_owned())],
        );
        assert_eq!(merged.sources.len(), 2);
        assert_eq!(merged.sources[1].name, "go.log");
        assert_eq!(merged.sources[1].events, 0);
        assert!(decode("{").is_err());
        assert!(
            decode(r#"{"sources":[],"events":[{"k":"claim","r":"go","t":1,"i":0,"l":1}]}"#)
                .is_err()
        );
    }
}
