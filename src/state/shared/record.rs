//! The canonical form of one event in the shared state: a hash field that is the event's
//! identity and a value that is what may differ between two deliveries of it.
//!
//! Two deliveries are the same event when time, kind, runner and worker agree (PRODUCT.md
//! §1.2, `correlate::Session::insert`), so the identity is exactly those; `HSETNX` on it is
//! the exact re-delivery test, done by the server. The value carries the origin first, as
//! decimal numbers the apply script compares (the earliest origin is kept, as in process),
//! then the event's name (a dispatch's org, a claim's version, another event's detail).
//! Optional strings are written `-` (absent) or `=` and the text, last in their part, so any
//! byte a log line holds round-trips.

use crate::event::{Event, EventKind, Origin, Runner, Timestamp};

/// One record as the shared state holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canonical {
    pub time: Timestamp,
    pub kind: EventKind,
    pub runner: Runner,
    pub worker: Option<String>,
    /// Dispatch: org. Claim: version. Others: detail.
    pub name: Option<String>,
    pub origin: Origin,
}

/// A stored record that could not be read back (written by another version, or damaged).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unreadable record {field:?} = {value:?}")]
pub struct BadRecord {
    pub field: String,
    pub value: String,
}

impl Canonical {
    /// The record of `ev`, delivered from `origin`.
    pub fn of(ev: &Event, origin: Origin) -> Canonical {
        let name = match ev.kind {
            EventKind::Dispatch => ev.org.as_deref(),
            EventKind::Claim => ev.version.as_deref(),
            _ => ev.detail.as_deref(),
        };
        Canonical {
            time: ev.time,
            kind: ev.kind,
            runner: ev.runner,
            worker: ev.worker.as_deref().map(str::to_owned),
            name: name.map(str::to_owned),
            origin,
        }
    }

    /// The hash field: `time|kind|runner|worker`.
    pub fn field(&self) -> String {
        format!(
            "{}|{}|{}|{}",
            self.time.millis(),
            self.kind.as_str(),
            self.runner.as_str(),
            opt(self.worker.as_deref())
        )
    }

    /// The hash value: `input:line:name` (the apply script reads the two numbers).
    pub fn value(&self) -> String {
        format!(
            "{}:{}:{}",
            self.origin.input,
            self.origin.line,
            opt(self.name.as_deref())
        )
    }

    /// Reads a field and value back.
    pub fn parse(field: &str, value: &str) -> Result<Canonical, BadRecord> {
        let bad = || BadRecord {
            field: field.to_owned(),
            value: value.to_owned(),
        };
        let mut f = field.splitn(4, '|');
        let time = f.next().and_then(|t| t.parse().ok()).ok_or_else(bad)?;
        let kind = f.next().and_then(kind_named).ok_or_else(bad)?;
        let runner = f.next().and_then(runner_named).ok_or_else(bad)?;
        let worker = f.next().and_then(parse_opt).ok_or_else(bad)?;
        let mut v = value.splitn(3, ':');
        let input = v.next().and_then(|n| n.parse().ok()).ok_or_else(bad)?;
        let line = v.next().and_then(|n| n.parse().ok()).ok_or_else(bad)?;
        let name = v.next().and_then(parse_opt).ok_or_else(bad)?;
        Ok(Canonical {
            time: Timestamp(time),
            kind,
            runner,
            worker,
            name,
            origin: Origin { input, line },
        })
    }
}

fn opt(s: Option<&str>) -> String {
    match s {
        Some(s) => format!("={s}"),
        None => "-".to_owned(),
    }
}

fn parse_opt(s: &str) -> Option<Option<String>> {
    match s.as_bytes().first() {
        Some(b'-') if s.len() == 1 => Some(None),
        Some(b'=') => Some(Some(s[1..].to_owned())),
        _ => None,
    }
}

fn kind_named(s: &str) -> Option<EventKind> {
    EventKind::ALL.into_iter().find(|k| k.as_str() == s)
}

fn runner_named(s: &str) -> Option<Runner> {
    Runner::ALL.into_iter().find(|r| r.as_str() == s)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn canonical() -> impl Strategy<Value = Canonical> {
        (
            any::<i64>(),
            0..EventKind::ALL.len(),
            0..Runner::ALL.len(),
            proptest::option::of(any::<String>()),
            proptest::option::of(any::<String>()),
            any::<u16>(),
            any::<u32>(),
        )
            .prop_map(|(time, k, r, worker, name, input, line)| Canonical {
                time: Timestamp(time),
                kind: EventKind::ALL[k],
                runner: Runner::ALL[r],
                worker,
                name,
                origin: Origin { input, line },
            })
    }

    proptest! {
        #[test]
        fn every_record_round_trips(c in canonical()) {
            prop_assert_eq!(Canonical::parse(&c.field(), &c.value()), Ok(c));
        }

        /// The field is the identity and nothing else: equal exactly when the identities are.
        #[test]
        fn the_field_is_the_identity(a in canonical(), b in canonical()) {
            let same = (a.time, a.kind, a.runner, &a.worker) == (b.time, b.kind, b.runner, &b.worker);
            prop_assert_eq!(a.field() == b.field(), same);
        }

        #[test]
        fn garbage_is_refused_never_a_panic(field in ".*", value in ".*") {
            let _ = Canonical::parse(&field, &value);
        }
    }

    #[test]
    fn the_name_is_the_kinds() {
        let ev = Event {
            kind: EventKind::Dispatch,
            session: None,
            runner: Runner::Go,
            time: Timestamp(5),
            org: Some("acme".into()),
            worker: None,
            version: Some("v1".into()),
            detail: Some("oauth".into()),
        };
        let c = Canonical::of(&ev, Origin { input: 2, line: 9 });
        assert_eq!(c.name.as_deref(), Some("acme"));
        assert_eq!(
            (c.field(), c.value()),
            ("5|dispatch|go|-".into(), "2:9:=acme".into())
        );
        let claim = Event {
            kind: EventKind::Claim,
            ..ev.clone()
        };
        assert_eq!(
            Canonical::of(&claim, Origin::default()).name.as_deref(),
            Some("v1")
        );
        let other = Event {
            kind: EventKind::Release,
            ..ev
        };
        assert_eq!(
            Canonical::of(&other, Origin::default()).name.as_deref(),
            Some("oauth")
        );
    }
}
