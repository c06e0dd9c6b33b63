//! The feed: every judgement's changes as one entry of its bucket's stream, appended by
//! `judge.lua` in the same script call that commits the judgement (so an entry exists exactly
//! when its judgement does), and read by every replica (`feed.lua`) into its own store. So
//! each replica's outcome rows and findings are every replica's, and the filtered
//! `/api/summary` and `/api/findings`, answered from the store, are the same on each.
//!
//! Only the changes that write outcome rows or findings go in (`encode`); an entry also
//! carries the clock of the replica that judged (a finding's time) and its number in the
//! bucket. Streams are trimmed to the retention. A reader keeps, per bucket, the id and number
//! of the last entry it read: if a failover took that entry back, it reads again from the
//! last one still there (writing an entry twice changes nothing: a row is keyed by its
//! session and when the session was first seen, which each change carries, and a finding by
//! its kind and key), and if the next entry it reads is numbered past the next number,
//! entries were trimmed before it read them, and it says so (`FeedPage::gaps`).
//!
//! Findings made beside the judgements — the platform's, by the replica that watches it — go
//! in too (`publish`, `publish.lua`): each write (found, resolved, annotated) is an entry of
//! the bucket of its key, numbered by the same counter, so every replica, one without a
//! platform too, writes it into its store with the fields it was found with (the finding
//! replica's clock). They ride the feed rather than a path of their own (beside
//! `reports.rs`) because the feed is already what each replica's findings are written from:
//! one cursor, committed with what it wrote, one reading, its gaps and its trimming. The
//! port's local state has nothing to publish to (`CorrelationState::publish` does nothing).
//! A publish is not remembered (`memo.rs`): sent again after a lost answer, its entries are
//! appended twice, and the second writes nothing new, since a finding is keyed (kind, key)
//! and carries its found time — the store keeps the first, a resolution keeps its first time
//! (`state_shared::platform_findings_published_twice_are_stored_once`). A finding keyed by a
//! session goes to the session's bucket, after the judgement entries of that session: a
//! Redis witness's note follows the unclaimed finding it annotates.

use std::sync::LazyLock;

use futures_util::future::try_join_all;
use redis::Script;
use serde::{Deserialize, Serialize};

use super::conn::Redis;
use super::keys::{BUCKETS, Keys, finding_bucket};
use crate::correlate::Outcome;
use crate::correlate::live::Change;
use crate::event::{FindingKind, Runner, SessionId, Timestamp};
use crate::state::{FeedCursor, FeedPage, StateError};
use crate::store::{FindingWrite, NewFinding};

static READ: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("feed.lua")));
static PUBLISH: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("publish.lua")));

/// Entries read from one bucket per page at most: a page is at most 256 × this.
const PAGE: usize = 200;

/// A change as an entry carries it (the few that write rows or findings).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "c")]
enum Entry {
    #[serde(rename = "d")]
    Dispatched {
        s: String,
        /// The session's first-seen time ([`Change::Dispatched`]); absent in an entry of a
        /// replica from before it was carried, read as the entry's clock.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        f: Option<i64>,
        r: String,
        o: Option<String>,
        at: i64,
    },
    #[serde(rename = "j")]
    Judged {
        s: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        f: Option<i64>,
        r: String,
        o: Option<String>,
        at: i64,
        out: String,
        lat: Option<i64>,
        skew: bool,
    },
    #[serde(rename = "u")]
    Overdue {
        s: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        f: Option<i64>,
        r: String,
        o: Option<String>,
        at: i64,
    },
    #[serde(rename = "ur")]
    OverdueResolved {
        s: String,
        r: String,
        o: Option<String>,
    },
    #[serde(rename = "2")]
    Duplicate {
        s: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        f: Option<i64>,
        r: String,
        x: bool,
        o: Option<String>,
    },
    #[serde(rename = "2x")]
    DuplicateCrossRuntime {
        s: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        f: Option<i64>,
        o: Option<String>,
    },
    #[serde(rename = "rc")]
    Reclaimed {
        s: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        f: Option<i64>,
        r: String,
        n: u32,
    },
    #[serde(rename = "or")]
    Orphan { s: String, r: String, n: u32 },
}

fn entry(c: &Change) -> Option<Entry> {
    let s = |id: &SessionId| id.as_str().to_owned();
    let r = |r: &Runner| r.as_str().to_owned();
    Some(match c {
        Change::Dispatched {
            session,
            first_seen,
            runner,
            org,
            at,
        } => Entry::Dispatched {
            s: s(session),
            f: Some(first_seen.millis()),
            r: r(runner),
            o: org.clone(),
            at: at.millis(),
        },
        Change::Judged {
            session,
            first_seen,
            runner,
            org,
            dispatched_at,
            outcome,
            latency_ms,
            skew_clamped,
            refile: _,
        } => Entry::Judged {
            s: s(session),
            f: Some(first_seen.millis()),
            r: r(runner),
            o: org.clone(),
            at: dispatched_at.millis(),
            out: outcome.as_str().to_owned(),
            lat: *latency_ms,
            skew: *skew_clamped,
        },
        Change::Overdue {
            session,
            first_seen,
            runner,
            org,
            dispatched_at,
            refile: _,
        } => Entry::Overdue {
            s: s(session),
            f: Some(first_seen.millis()),
            r: r(runner),
            o: org.clone(),
            at: dispatched_at.millis(),
        },
        Change::OverdueResolved {
            session,
            runner,
            org,
        } => Entry::OverdueResolved {
            s: s(session),
            r: r(runner),
            o: org.clone(),
        },
        Change::Duplicate {
            session,
            first_seen,
            runtime,
            cross_runtime,
            org,
        } => Entry::Duplicate {
            s: s(session),
            f: Some(first_seen.millis()),
            r: r(runtime),
            x: *cross_runtime,
            o: org.clone(),
        },
        Change::DuplicateCrossRuntime {
            session,
            first_seen,
            org,
        } => Entry::DuplicateCrossRuntime {
            s: s(session),
            f: Some(first_seen.millis()),
            o: org.clone(),
        },
        Change::Reclaimed {
            session,
            first_seen,
            runtime,
            total,
        } => Entry::Reclaimed {
            s: s(session),
            f: Some(first_seen.millis()),
            r: r(runtime),
            n: *total,
        },
        Change::Orphan {
            session,
            runtime,
            claim,
        } => Entry::Orphan {
            s: s(session),
            r: r(runtime),
            n: *claim,
        },
        _ => return None,
    })
}

/// The change an entry carries; `now` is the entry's clock (an older replica's entry has no
/// first-seen time: its dispatch's receive time is the nearest the entry knows).
fn change(e: Entry, now: i64) -> Option<Change> {
    let id = |s: &str| SessionId::new(s);
    let seen = |f: Option<i64>| Timestamp(f.unwrap_or(now));
    let runner = |r: &str| Runner::from_value(r);
    Some(match e {
        Entry::Dispatched { s, f, r, o, at } => Change::Dispatched {
            session: id(&s)?,
            first_seen: seen(f),
            runner: runner(&r),
            org: o,
            at: Timestamp(at),
        },
        Entry::Judged {
            s,
            f,
            r,
            o,
            at,
            out,
            lat,
            skew,
        } => Change::Judged {
            session: id(&s)?,
            first_seen: seen(f),
            runner: runner(&r),
            org: o,
            dispatched_at: Timestamp(at),
            outcome: Outcome::ALL.into_iter().find(|x| x.as_str() == out)?,
            latency_ms: lat,
            skew_clamped: skew,
            // The feed does not say which rows another replica's store wrote: every
            // replica's store sets a judgement's dispatch columns again.
            refile: true,
        },
        Entry::Overdue { s, f, r, o, at } => Change::Overdue {
            session: id(&s)?,
            first_seen: seen(f),
            runner: runner(&r),
            org: o,
            dispatched_at: Timestamp(at),
            refile: true,
        },
        Entry::OverdueResolved { s, r, o } => Change::OverdueResolved {
            session: id(&s)?,
            runner: runner(&r),
            org: o,
        },
        Entry::Duplicate { s, f, r, x, o } => Change::Duplicate {
            session: id(&s)?,
            first_seen: seen(f),
            runtime: runner(&r),
            cross_runtime: x,
            org: o,
        },
        Entry::DuplicateCrossRuntime { s, f, o } => Change::DuplicateCrossRuntime {
            session: id(&s)?,
            first_seen: seen(f),
            org: o,
        },
        Entry::Reclaimed { s, f, r, n } => Change::Reclaimed {
            session: id(&s)?,
            first_seen: seen(f),
            runtime: runner(&r),
            total: n,
        },
        Entry::Orphan { s, r, n } => Change::Orphan {
            session: id(&s)?,
            runtime: runner(&r),
            claim: n,
        },
    })
}

/// The feed entry of one session's judgement at `now`: its changes that write rows or
/// findings; `None` when it has none.
pub fn encode(changes: &[Change], now: Timestamp) -> Option<String> {
    let entries: Vec<Entry> = changes.iter().filter_map(entry).collect();
    if entries.is_empty() {
        return None;
    }
    serde_json::to_string(&(now.millis(), entries)).ok()
}

/// An entry's clock and changes.
fn decode(text: &str) -> Result<(Timestamp, Vec<Change>), StateError> {
    let corrupt = || StateError::Corrupt(format!("feed entry {text:?}"));
    let (now, entries): (i64, Vec<Entry>) = serde_json::from_str(text).map_err(|_| corrupt())?;
    let changes = entries
        .into_iter()
        .map(|e| change(e, now).ok_or_else(corrupt))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((Timestamp(now), changes))
}

/// A finding write as an entry carries it (field `p`).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "w")]
enum Written {
    #[serde(rename = "f")]
    Found {
        k: String,
        key: String,
        s: Option<String>,
        o: Option<String>,
        r: String,
        at: i64,
        d: Option<String>,
    },
    #[serde(rename = "r")]
    Resolved { k: String, key: String, at: i64 },
    #[serde(rename = "a")]
    Annotated { k: String, key: String, d: String },
}

fn encode_finding(f: &FindingWrite) -> Option<String> {
    let k = |kind: &FindingKind| kind.as_str().to_owned();
    let w = match f.clone() {
        FindingWrite::Found(f) => Written::Found {
            k: k(&f.kind),
            key: f.key,
            s: f.session,
            o: f.org,
            r: f.runner.to_owned(),
            at: f.found_at.millis(),
            d: f.detail,
        },
        FindingWrite::Resolved { kind, key, at } => Written::Resolved {
            k: k(&kind),
            key,
            at: at.millis(),
        },
        FindingWrite::Annotated { kind, key, detail } => Written::Annotated {
            k: k(&kind),
            key,
            d: detail,
        },
    };
    serde_json::to_string(&w).ok()
}

fn decode_finding(text: &str) -> Result<FindingWrite, StateError> {
    let corrupt = || StateError::Corrupt(format!("feed finding {text:?}"));
    let kind = |k: &str| {
        FindingKind::ALL
            .into_iter()
            .find(|x| x.as_str() == k)
            .ok_or_else(corrupt)
    };
    Ok(
        match serde_json::from_str::<Written>(text).map_err(|_| corrupt())? {
            Written::Found {
                k,
                key,
                s,
                o,
                r,
                at,
                d,
            } => FindingWrite::Found(NewFinding {
                kind: kind(&k)?,
                key,
                session: s,
                org: o,
                runner: runner_label(&r),
                found_at: Timestamp(at),
                detail: d,
            }),
            Written::Resolved { k, key, at } => FindingWrite::Resolved {
                kind: kind(&k)?,
                key,
                at: Timestamp(at),
            },
            Written::Annotated { k, key, d } => FindingWrite::Annotated {
                kind: kind(&k)?,
                key,
                detail: d,
            },
        },
    )
}

/// The runner label a published finding names, as this version writes it (a label it does
/// not know reads as `unknown`).
fn runner_label(label: &str) -> &'static str {
    match label {
        "go" => Runner::Go.as_str(),
        "ts" => Runner::Ts.as_str(),
        "other" => Runner::Other.as_str(),
        _ => "unknown",
    }
}

/// Appends `findings` to the feed: each to the bucket of its key, in order, one script call
/// per bucket, the calls sent together; then counts the feed's version up. Entries are kept
/// `keep_ms` (the retention), as the judgements' are.
pub async fn publish(
    redis: &Redis,
    keys: &Keys,
    keep_ms: i64,
    findings: &[FindingWrite],
) -> Result<(), StateError> {
    let mut by_bucket: std::collections::BTreeMap<u16, Vec<String>> = Default::default();
    for f in findings {
        let text = encode_finding(f)
            .ok_or_else(|| StateError::Corrupt(format!("finding {f:?} not encodable")))?;
        by_bucket
            .entry(finding_bucket(f.key()))
            .or_default()
            .push(text);
    }
    if by_bucket.is_empty() {
        return Ok(());
    }
    let by_bucket = &by_bucket;
    redis
        .call("feed", |conn| {
            try_join_all(by_bucket.iter().map(move |(&b, entries)| {
                let mut conn = conn.clone();
                async move {
                    PUBLISH
                        .key(keys.counts(b))
                        .key(keys.feed(b))
                        .arg(keep_ms)
                        .arg(entries)
                        .invoke_async::<i64>(&mut conn)
                        .await
                }
            }))
        })
        .await?;
    appended(redis, keys).await
}

/// What `feed.lua` answers for one bucket: how it found the cursor, then (id, fields) entries.
type Raw = (i64, Vec<(String, Vec<(String, String)>)>);

/// Counts the feed's version up: entries were appended (after the cycle that appended them,
/// so a reader that sees the new version reads them).
pub async fn appended(redis: &Redis, keys: &Keys) -> Result<(), StateError> {
    let key = keys.feed_version();
    redis
        .call("feed", |mut conn| async move {
            redis::cmd("INCR")
                .arg(key)
                .query_async::<i64>(&mut conn)
                .await
        })
        .await?;
    Ok(())
}

/// The entries after `cursor` in every bucket, at most 200 (`PAGE`) per bucket, one script call
/// per bucket, the calls sent together; unless `full`, only if the feed's version moved since
/// the cursor's reading (one call when it did not).
pub async fn read(
    redis: &Redis,
    keys: &Keys,
    cursor: &FeedCursor,
    full: bool,
) -> Result<FeedPage, StateError> {
    let key = keys.feed_version();
    // Read before the buckets: an entry appended after it moves the version again.
    let version: Option<i64> = redis
        .call("feed", |mut conn| async move {
            redis::cmd("GET").arg(key).query_async(&mut conn).await
        })
        .await?;
    let mut page = FeedPage {
        cursor: FeedCursor {
            buckets: cursor.buckets.clone(),
            version,
        },
        ..FeedPage::default()
    };
    if !full && version == cursor.version {
        return Ok(page);
    }
    // A cursor's value: the id of the last entry read, and its number.
    let last = |b: u16| -> (&str, Option<u64>) {
        match cursor.buckets.get(&b).and_then(|c| c.split_once(' ')) {
            Some((id, n)) => (id, n.parse().ok()),
            None => ("0", None),
        }
    };
    let raw: Vec<Raw> = redis
        .call("feed", |conn| {
            try_join_all((0..BUCKETS).map(move |b| {
                let mut conn = conn.clone();
                let after = last(b).0;
                async move {
                    READ.key(keys.feed(b))
                        .arg(after)
                        .arg(PAGE)
                        .invoke_async::<Raw>(&mut conn)
                        .await
                }
            }))
        })
        .await?;
    for (b, (_, entries)) in (0..BUCKETS).zip(raw) {
        page.more |= entries.len() >= PAGE;
        let mut prev = last(b).1;
        for (id, fields) in entries {
            let field = |name: &str| fields.iter().find(|(f, _)| f == name).map(|(_, v)| v);
            let n: u64 = field("n")
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| StateError::Corrupt(format!("feed entry {id} without a number")))?;
            // Numbered past the next: trimmed before they were read. (Numbered before it:
            // read again after a failover took them back.)
            if prev.is_some_and(|p| n > p + 1) {
                page.gaps += 1;
            }
            prev = Some(n);
            if let Some(text) = field("e") {
                page.entries.push(decode(text)?);
            }
            if let Some(text) = field("p") {
                page.findings.push(decode_finding(text)?);
            }
            page.cursor.buckets.insert(b, format!("{id} {n}"));
        }
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_change_that_writes_rows_or_findings_reads_back_as_it_was() {
        let id = SessionId::new("s-1").unwrap();
        let org = Some("org-a".to_owned());
        let changes = vec![
            Change::Dispatched {
                session: id.clone(),
                first_seen: Timestamp(100),
                runner: Runner::Go,
                org: org.clone(),
                at: Timestamp(5),
            },
            Change::Judged {
                session: id.clone(),
                first_seen: Timestamp(200),
                runner: Runner::Ts,
                org: None,
                dispatched_at: Timestamp(6),
                outcome: Outcome::Late,
                latency_ms: Some(70),
                skew_clamped: true,
                // What the feed's judgements always say (see `change`).
                refile: true,
            },
            Change::Overdue {
                session: id.clone(),
                first_seen: Timestamp(300),
                runner: Runner::Other,
                org: org.clone(),
                dispatched_at: Timestamp(7),
                refile: true,
            },
            Change::OverdueResolved {
                session: id.clone(),
                runner: Runner::Go,
                org: org.clone(),
            },
            Change::Duplicate {
                session: id.clone(),
                first_seen: Timestamp(400),
                runtime: Runner::Ts,
                cross_runtime: true,
                org: org.clone(),
            },
            Change::DuplicateCrossRuntime {
                session: id.clone(),
                first_seen: Timestamp(500),
                org: None,
            },
            Change::Reclaimed {
                session: id.clone(),
                first_seen: Timestamp(600),
                runtime: Runner::Go,
                total: 3,
            },
            Change::Orphan {
                session: id.clone(),
                runtime: Runner::Ts,
                claim: 2,
            },
        ];
        let mut with_others = changes.clone();
        with_others.push(Change::PendingStarted { runner: Runner::Go });
        with_others.push(Change::Forgotten { session: id });
        let text = encode(&with_others, Timestamp(99)).unwrap();
        assert_eq!(decode(&text).unwrap(), (Timestamp(99), changes));
        assert_eq!(
            encode(
                &[Change::Claimed {
                    runtime: Runner::Go
                }],
                Timestamp(1)
            ),
            None,
            "nothing to write: no entry"
        );
        assert!(decode("[1,[{\"c\":\"j\"}]]").is_err());
    }

    /// An entry written by a replica from before changes carried the session's first-seen
    /// time reads with the entry's clock in its place.
    #[test]
    fn an_entry_without_a_first_seen_time_reads_as_the_entry_clock() {
        let text = r#"[42,[{"c":"d","s":"s-1","r":"go","o":null,"at":5},
            {"c":"rc","s":"s-1","r":"ts","n":2}]]"#;
        let (now, changes) = decode(text).unwrap();
        assert_eq!(now, Timestamp(42));
        let seen: Vec<Timestamp> = changes
            .iter()
            .filter_map(|c| match c {
                Change::Dispatched { first_seen, .. } | Change::Reclaimed { first_seen, .. } => {
                    Some(*first_seen)
                }
                _ => None,
            })
            .collect();
        assert_eq!(seen, [Timestamp(42), Timestamp(42)]);
    }

    #[test]
    fn every_finding_write_reads_back_as_it_was() {
        let writes = [
            FindingWrite::Found(NewFinding {
                kind: FindingKind::MalformedFlag,
                key: "org-c\nGo\n12".into(),
                session: None,
                org: Some("org-c".into()),
                runner: "ts",
                found_at: Timestamp(12),
                detail: Some("runner_default = Go (read as ts)".into()),
            }),
            FindingWrite::Found(NewFinding {
                kind: FindingKind::FlagDrift,
                key: "s-1".into(),
                session: Some("s-1".into()),
                org: Some("org-a".into()),
                runner: "go",
                found_at: Timestamp(13),
                detail: None,
            }),
            FindingWrite::Resolved {
                kind: FindingKind::MissingFromLogs,
                key: "s-2".into(),
                at: Timestamp(14),
            },
            FindingWrite::Annotated {
                kind: FindingKind::Unclaimed,
                key: "s-3".into(),
                detail: "held by w".into(),
            },
        ];
        for w in writes {
            let text = encode_finding(&w).unwrap();
            assert_eq!(decode_finding(&text).unwrap(), w, "{text}");
        }
        assert!(decode_finding("{\"w\":\"r\",\"k\":\"nope\",\"key\":\"s\",\"at\":1}").is_err());
        // A session's finding goes to the session's bucket, after its judgements.
        let id = SessionId::new("s-1").unwrap();
        assert_eq!(
            finding_bucket("s-1"),
            super::super::keys::session_bucket(&id)
        );
    }
}
