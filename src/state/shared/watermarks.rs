//! Per-source watermarks shared by every replica: one hash, each source's largest event time,
//! when it was last heard from and whether it has a backlog. The low watermark is computed
//! from it with the in-process rules (`correlate::live::watermark::Watermarks`, rebuilt from
//! the hash), so live judging waits for settled evidence across replicas as it does in one
//! process.
//!
//! A source is named by its replica's instance and its input there (`instance/input`):
//! `Origin::input` numbers a replica's own sources only. Beside them each replica keeps a
//! sign of life (`@instance`), renewed at each tick: a source its replica said was behind
//! stops holding the others back once that replica has given no sign of life for as long as
//! a session may be held (it died in the middle of a batch, or while catching up).

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

impl News {
    /// Replica `instance` is alive at `now` (its sign of life, `@instance`).
    pub fn alive(instance: &str, now: Timestamp) -> News {
        News {
            source: format!("@{instance}"),
            high: None,
            now,
            backlog: Some(false),
        }
    }
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

/// Every source's stored watermark, sorted by name, and each replica's last sign of life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shared {
    pub sources: Vec<(String, Option<Timestamp>, Timestamp, bool)>,
    pub alive: std::collections::BTreeMap<String, Timestamp>,
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
    /// any, not because the sources went quiet). A source whose replica gave no sign of life
    /// since `dead_before` (the source's own news counts) is not behind, whatever it said.
    pub fn rebuild(
        &self,
        idle_after_ms: i64,
        heard_since: Timestamp,
        dead_before: Timestamp,
    ) -> Watermarks {
        let mut w = Watermarks::new(idle_after_ms);
        for (i, (name, high, seen, backlog)) in self.sources.iter().enumerate() {
            let i = u16::try_from(i).unwrap_or(u16::MAX);
            let instance = name.rsplit_once('/').map_or(name.as_str(), |(i, _)| i);
            let life = self
                .alive
                .get(instance)
                .map_or(*seen, |a| (*a).max(*seen))
                .max(heard_since);
            w.seen(i, (*seen).max(heard_since), *backlog && life >= dead_before);
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
    let (mut sources, mut alive) = (Vec::new(), std::collections::BTreeMap::new());
    for (src, v) in all {
        let (high, seen, backlog) = parse(&v)?;
        match src.strip_prefix('@') {
            Some(instance) => {
                alive.insert(instance.to_owned(), seen);
            }
            None => sources.push((src, high, seen, backlog)),
        }
    }
    sources.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Shared { sources, alive })
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
