//! Per-source watermarks shared by every replica: one hash, each source's largest event time,
//! when it was last heard from and whether it has a backlog. The low watermark is computed
//! from it with the in-process rules (`correlate::live::watermark::Watermarks`, rebuilt from
//! the hash), so live judging waits for settled evidence across replicas as it does in one
//! process.
//!
//! A source is named by its replica's instance and its input there (`instance/input`):
//! `Origin::input` numbers a replica's own sources only.

use std::sync::LazyLock;

use redis::Script;

use super::conn::Redis;
use super::keys::Keys;
use crate::correlate::live::watermark::Watermarks;
use crate::event::Timestamp;
use crate::state::StateError;

static MERGE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("watermark.lua")));

/// One source's news: what it delivered (its largest event time, if any) at `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct News {
    pub source: String,
    pub high: Option<Timestamp>,
    pub now: Timestamp,
    /// `None`: unknown (leaves the stored flag as it is).
    pub backlog: Option<bool>,
}

/// Merges `news` into the shared hash, in one script call, and returns every source after it.
pub async fn merge(redis: &Redis, keys: &Keys, news: &[News]) -> Result<Shared, StateError> {
    if news.is_empty() {
        return read(redis, keys).await;
    }
    let mut inv = MERGE.prepare_invoke();
    inv.key(keys.watermarks());
    for n in news {
        inv.arg(&n.source)
            .arg(n.high.map_or(String::new(), |h| h.millis().to_string()))
            .arg(n.now.millis())
            .arg(match n.backlog {
                Some(true) => "1",
                Some(false) => "0",
                None => "",
            });
    }
    let all: Vec<(String, String)> = redis
        .call("watermarks", |mut conn| async move {
            inv.invoke_async(&mut conn).await
        })
        .await?;
    shared(all)
}

/// Every source's stored watermark, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shared {
    pub sources: Vec<(String, Option<Timestamp>, Timestamp, bool)>,
}

impl Shared {
    /// Whether every one of `instances` (replica names) has published a source.
    pub fn joined(&self, instances: &[String]) -> bool {
        instances.iter().all(|i| {
            self.sources.iter().any(|(name, ..)| {
                name.strip_prefix(i.as_str())
                    .is_some_and(|input| input.starts_with('/'))
            })
        })
    }

    /// The sources as the in-process rules see them, numbered in name order. None was heard
    /// from before `heard_since`: a replica counts a source's silence only from when it could
    /// hear it (after an outage every source's last news is old, because nobody could give
    /// any, not because the sources went quiet).
    pub fn rebuild(&self, idle_after_ms: i64, heard_since: Timestamp) -> Watermarks {
        let mut w = Watermarks::new(idle_after_ms);
        for (i, (_, high, seen, backlog)) in self.sources.iter().enumerate() {
            let i = u16::try_from(i).unwrap_or(u16::MAX);
            w.seen(i, (*seen).max(heard_since), *backlog);
            if let Some(h) = high {
                w.event(i, *h, *seen);
            }
        }
        w
    }
}

/// Reads the shared hash.
pub async fn read(redis: &Redis, keys: &Keys) -> Result<Shared, StateError> {
    let key = keys.watermarks();
    let all: Vec<(String, String)> = redis
        .call("watermarks", |mut conn| async move {
            redis::cmd("HGETALL").arg(key).query_async(&mut conn).await
        })
        .await?;
    shared(all)
}

fn shared(all: Vec<(String, String)>) -> Result<Shared, StateError> {
    let mut sources = all
        .into_iter()
        .map(|(src, v)| parse(&v).map(|(h, s, b)| (src, h, s, b)))
        .collect::<Result<Vec<_>, _>>()?;
    sources.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Shared { sources })
}

fn parse(v: &str) -> Result<(Option<Timestamp>, Timestamp, bool), StateError> {
    let bad = || StateError::Corrupt(format!("watermark {v:?}"));
    let mut p = v.split('|');
    let high = match p.next().ok_or_else(bad)? {
        "" => None,
        h => Some(Timestamp(h.parse().map_err(|_| bad())?)),
    };
    let seen = Timestamp(p.next().ok_or_else(bad)?.parse().map_err(|_| bad())?);
    let backlog = match p.next() {
        Some("1") => true,
        Some("0") => false,
        _ => return Err(bad()),
    };
    Ok((high, seen, backlog))
}
