//! Post-flip reports made once for every replica (`serve --cluster`): each replica holds only
//! its own sources' lines, so a report is built from every replica's share of the evidence
//! and then stored here once, for every replica to take into its own store.
//!
//! - The flips: a replica that detects one (from the platform's Postgres) adds it to one hash
//!   (`HSETNX`, by report id), which every replica's reporter reads, so every replica knows
//!   every flip, with or without a platform of its own.
//! - The shares: once a flip's report is due, each replica writes its share of the evidence
//!   (`flip::slice`) under its instance name. When every replica that named sources has
//!   written one (or a while after the report was due: a replica that is down), whichever
//!   reads them first builds the report. A replica none of whose sources was heard from
//!   within the retention is not waited for.
//! - The report: stored with `SET NX`, so of two replicas that built it, one's stands and the
//!   other takes it; only the one that stored it counts the verdict in
//!   `claimcheck_flip_verifications_total` and alerts.
//!
//! Shares and reports expire after the retention; a flip is dropped from the hash once it is
//! older than the retention. Nothing is kept per session: the evidence is read from each
//! replica's store when the report is due.

use std::collections::{BTreeMap, BTreeSet};

use super::conn::Redis;
use super::inputs;
use super::keys::{BadPrefix, Keys};
use super::state::SharedConfig;
use super::watermarks;
use crate::event::Timestamp;
use crate::state::StateError;

/// The shared side of post-flip reports of one replica.
#[derive(Debug)]
pub struct SharedReports {
    redis: Redis,
    keys: Keys,
    instance: String,
    /// How long shares and reports are kept (the retention).
    keep_ms: i64,
}

/// A source that named itself to the shared state: its replica, and the name its lines are
/// cited by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedSource {
    pub instance: String,
    pub name: Option<String>,
}

impl SharedReports {
    pub fn new(shared: &SharedConfig, keep_ms: i64) -> Result<SharedReports, BadPrefix> {
        Ok(SharedReports {
            redis: Redis::new(shared.urls.clone(), shared.timeouts),
            keys: Keys::new(&shared.prefix)?,
            instance: shared.instance.clone(),
            keep_ms,
        })
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// How long shares, reports and flips are kept (the retention).
    pub fn keep_ms(&self) -> i64 {
        self.keep_ms
    }

    /// Adds a flip (as JSON) under its report id, unless it is there already.
    pub async fn add_flip(&self, id: &str, flip: &str) -> Result<(), StateError> {
        let key = self.keys.flips();
        self.redis
            .call("reports", |mut c| async move {
                redis::cmd("HSETNX")
                    .arg(key)
                    .arg(id)
                    .arg(flip)
                    .query_async::<i64>(&mut c)
                    .await
            })
            .await?;
        Ok(())
    }

    /// Every flip, by report id.
    pub async fn flips(&self) -> Result<BTreeMap<String, String>, StateError> {
        let key = self.keys.flips();
        self.redis
            .call("reports", |mut c| async move {
                redis::cmd("HGETALL").arg(key).query_async(&mut c).await
            })
            .await
    }

    /// Drops flips (past the retention) from the hash.
    pub async fn drop_flips(&self, ids: &[String]) -> Result<(), StateError> {
        if ids.is_empty() {
            return Ok(());
        }
        let key = self.keys.flips();
        self.redis
            .call("reports", |mut c| async move {
                redis::cmd("HDEL")
                    .arg(key)
                    .arg(ids)
                    .query_async::<i64>(&mut c)
                    .await
            })
            .await?;
        Ok(())
    }

    /// Writes this replica's share of report `id`'s evidence.
    pub async fn share(&self, id: &str, share: &str) -> Result<(), StateError> {
        let key = self.keys.report_shares(id);
        let (instance, keep) = (&self.instance, self.keep_ms);
        self.redis
            .call("reports", |mut c| async move {
                redis::pipe()
                    .cmd("HSET")
                    .arg(&key)
                    .arg(instance)
                    .arg(share)
                    .ignore()
                    .cmd("PEXPIRE")
                    .arg(&key)
                    .arg(keep)
                    .ignore()
                    .query_async::<()>(&mut c)
                    .await
            })
            .await
    }

    /// Every replica's share of report `id`'s evidence, by instance.
    pub async fn shares(&self, id: &str) -> Result<BTreeMap<String, String>, StateError> {
        let key = self.keys.report_shares(id);
        self.redis
            .call("reports", |mut c| async move {
                redis::cmd("HGETALL").arg(key).query_async(&mut c).await
            })
            .await
    }

    /// The sources named to the shared state that were heard from within the retention
    /// before `now` (each replica publishes its sources' watermarks), by global id: the
    /// replicas whose shares a report waits for. A replica gone for longer (renamed, removed)
    /// is not waited for.
    pub async fn sources(&self, now: Timestamp) -> Result<BTreeMap<u16, NamedSource>, StateError> {
        let since = now.saturating_add_ms(-self.keep_ms);
        let heard: BTreeSet<String> = watermarks::read(&self.redis, &self.keys)
            .await?
            .sources
            .into_iter()
            .filter(|(_, _, seen, _)| *seen >= since)
            .map(|(source, ..)| source)
            .collect();
        let ids = inputs::read(&self.redis, &self.keys).await?;
        let mut names = inputs::names(&self.redis, &self.keys).await?;
        Ok(ids
            .into_iter()
            .filter(|(_, source)| heard.contains(source))
            .map(|(id, source)| {
                let instance = source
                    .rsplit_once('/')
                    .map_or(source.as_str(), |(i, _)| i)
                    .to_owned();
                (
                    id,
                    NamedSource {
                        instance,
                        name: names.remove(&id),
                    },
                )
            })
            .collect())
    }

    /// Stores report `id` unless one is stored already; returns whether this one was, and
    /// the report that stands (created at, JSON).
    pub async fn settle(
        &self,
        id: &str,
        created: Timestamp,
        json: &str,
    ) -> Result<(bool, (Timestamp, String)), StateError> {
        let key = self.keys.report(id);
        let value = format!("{}\n{json}", created.millis());
        let keep = self.keep_ms;
        let (set, stored): (Option<String>, Option<String>) = self
            .redis
            .call("reports", |mut c| async move {
                redis::pipe()
                    .cmd("SET")
                    .arg(&key)
                    .arg(&value)
                    .arg("NX")
                    .arg("PX")
                    .arg(keep)
                    .cmd("GET")
                    .arg(&key)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        let stored = stored.ok_or_else(|| {
            StateError::Unavailable(format!("report {id} gone right after it was stored"))
        })?;
        Ok((set.is_some(), split(&stored)?))
    }

    /// Report `id`, if it was stored (created at, JSON).
    pub async fn report(&self, id: &str) -> Result<Option<(Timestamp, String)>, StateError> {
        let key = self.keys.report(id);
        let stored: Option<String> = self
            .redis
            .call("reports", |mut c| async move {
                redis::cmd("GET").arg(key).query_async(&mut c).await
            })
            .await?;
        stored.as_deref().map(split).transpose()
    }
}

/// The replicas that named sources and gave no share yet, with those sources' names (`id`
/// when a source was never named).
pub fn absent(
    sources: &BTreeMap<u16, NamedSource>,
    shares: &BTreeSet<String>,
) -> (BTreeSet<String>, Vec<String>) {
    let missing: BTreeSet<String> = sources
        .values()
        .filter(|s| !shares.contains(&s.instance))
        .map(|s| s.instance.clone())
        .collect();
    let names = sources
        .iter()
        .filter(|(_, s)| missing.contains(&s.instance))
        .map(|(id, s)| {
            s.name
                .clone()
                .unwrap_or_else(|| format!("{}/{id}", s.instance))
        })
        .collect();
    (missing, names)
}

fn split(stored: &str) -> Result<(Timestamp, String), StateError> {
    let bad = || StateError::Corrupt(format!("stored report {:.40?}", stored));
    let (created, json) = stored.split_once('\n').ok_or_else(bad)?;
    let created = created.parse().map_err(|_| bad())?;
    Ok((Timestamp(created), json.to_owned()))
}
