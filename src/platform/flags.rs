//! Org flags: which runner each org *should* be on, mirroring the platform's resolver
//! (`runner-default.ts`, failure-closed), and the history of flips that [`FlagBook`] keeps from
//! successive snapshots of the `organizations` table.
//!
//! Everything but [`poll_flags`] is pure: snapshots come in with the time they were observed,
//! and questions (`expected_at`, `drift`) take the dispatch time as an argument.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{PgPool, Row};

use super::PlatformError;
use super::config::OrganizationsConfig;
use crate::event::{Runner, Timestamp};

/// Serialises a [`Timestamp`] as epoch milliseconds, for saved state.
mod millis {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::event::Timestamp;

    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(t.millis())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        i64::deserialize(d).map(Timestamp)
    }

    pub mod opt {
        use serde::{Deserialize, Deserializer, Serializer};

        use crate::event::Timestamp;

        pub fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_some(&t.millis()),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
            Option::<i64>::deserialize(d).map(|o| o.map(Timestamp))
        }
    }
}

/// Serialises a [`Runner`] as its label (`"go"`, `"ts"`), for saved state.
mod runner_label {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::event::Runner;

    pub fn serialize<S: Serializer>(r: &Runner, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(r.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Runner, D::Error> {
        let s = String::deserialize(d)?;
        Ok(Runner::from_value(&s))
    }
}

/// One org's flag as the resolver reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flag {
    /// `go` or `ts`, never `other`.
    #[serde(with = "runner_label")]
    pub expected: Runner,
    /// The raw JSON of a present but malformed value (`"Go"`, `42`, `{}`): the resolver read
    /// it as `ts`, so whoever wrote it believes the org opted in and it silently did not.
    pub malformed: Option<String>,
}

/// The resolver's rule, failure-closed: only the JSON string `"go"` at `key` means go; an
/// absent key, JSON `null`, SQL NULL `features` and `"ts"` mean ts; anything else means ts
/// *and* is malformed. A `features` value that is not an object cannot hold the key at all:
/// ts, and malformed (its raw value is kept), since someone wrote something there.
pub fn resolve(features: Option<&Value>, key: &str) -> Flag {
    let ts = Flag {
        expected: Runner::Ts,
        malformed: None,
    };
    let malformed = |v: &Value| Flag {
        expected: Runner::Ts,
        malformed: Some(v.to_string()),
    };
    match features {
        None | Some(Value::Null) => ts,
        Some(Value::Object(map)) => match map.get(key) {
            None | Some(Value::Null) => ts,
            Some(Value::String(s)) if s == "go" => Flag {
                expected: Runner::Go,
                malformed: None,
            },
            Some(Value::String(s)) if s == "ts" => ts,
            Some(other) => malformed(other),
        },
        Some(other) => malformed(other),
    }
}

/// One row of the organizations table, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgFlag {
    pub id: String,
    pub slug: Option<String>,
    pub flag: Flag,
    #[serde(with = "millis::opt")]
    pub updated_at: Option<Timestamp>,
}

/// The whole table at one moment (the sidecar's clock when the query returned).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlagSnapshot {
    #[serde(with = "millis")]
    pub observed_at: Timestamp,
    pub orgs: Vec<OrgFlag>,
}

/// Why an org's expected runner changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FlipCause {
    /// `runner_default` changed (or a deleted row came back with another value).
    Flag,
    /// The row disappeared: the resolver falls back to ts for a missing org.
    RowDeleted,
}

/// An org's expected runner changed from `from` to `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flip {
    pub org: String,
    #[serde(with = "runner_label")]
    pub from: Runner,
    #[serde(with = "runner_label")]
    pub to: Runner,
    /// The row's `updated_at` when it moved forward with the change, else `observed_at`.
    #[serde(with = "millis")]
    pub at: Timestamp,
    /// The earliest the change can have happened: `at` when `updated_at` dates it, else the
    /// previous snapshot. Dispatches in `[earliest, at + grace)` may use either runner.
    #[serde(with = "millis")]
    pub earliest: Timestamp,
    /// When the sidecar saw it.
    #[serde(with = "millis")]
    pub observed_at: Timestamp,
    pub cause: FlipCause,
}

/// An org whose flag became malformed (or changed to another malformed value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedFlag {
    pub org: String,
    pub raw: String,
}

/// What one snapshot changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlagChanges {
    /// The first snapshot ever: it sets the baseline and yields no flips.
    pub baseline: bool,
    pub flips: Vec<Flip>,
    pub malformed: Vec<MalformedFlag>,
}

/// What the book knows of one org.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgEntry {
    pub id: String,
    pub slug: Option<String>,
    /// The current flag; ts (not malformed) once the row is deleted.
    pub flag: Flag,
    #[serde(with = "millis::opt")]
    pub updated_at: Option<Timestamp>,
    /// `false` once the row has disappeared from the table.
    pub present: bool,
    /// From when the earliest state in the book held (the row's `updated_at` when first seen).
    #[serde(with = "millis")]
    pub known_from: Timestamp,
}

/// Is a dispatch on its org's expected runner?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriftVerdict {
    Agree,
    Drift {
        expected: Runner,
    },
    /// The flag at that time is not known: never guessed. `retry` is true when a later
    /// snapshot can answer (the dispatch is newer than the last one), false when nothing ever
    /// will (it predates what the book knows).
    Unknown {
        retry: bool,
    },
}

/// The book's durable form: restoring it after a restart neither loses nor repeats a flip
/// (the next snapshot is compared with the last one, not taken as a new baseline).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedBook {
    pub orgs: Vec<OrgEntry>,
    pub flips: Vec<Flip>,
    #[serde(with = "millis::opt")]
    pub first_observed: Option<Timestamp>,
    #[serde(with = "millis::opt")]
    pub last_observed: Option<Timestamp>,
}

/// The orgs' flags over time, built from successive snapshots.
#[derive(Debug, Clone, Default)]
pub struct FlagBook {
    orgs: BTreeMap<String, OrgEntry>,
    slugs: HashMap<String, String>,
    /// Per org, in the order found (which is time order: a flip is only found after the last).
    flips: BTreeMap<String, Vec<Flip>>,
    first_observed: Option<Timestamp>,
    last_observed: Option<Timestamp>,
}

/// The time a flip is dated: `updated_at` if it moved forward with the change (and is not in
/// the future of the observation), else the observation, with the previous one as lower bound.
fn date(
    updated_at: Option<Timestamp>,
    before: Option<Timestamp>,
    observed_at: Timestamp,
    prev_observed: Timestamp,
) -> (Timestamp, Timestamp) {
    match updated_at {
        Some(u) if before.is_none_or(|b| u > b) && u <= observed_at => (u, u),
        _ => (observed_at, prev_observed),
    }
}

impl FlagBook {
    pub fn new() -> FlagBook {
        FlagBook::default()
    }

    pub fn from_saved(saved: SavedBook) -> FlagBook {
        let mut book = FlagBook {
            first_observed: saved.first_observed,
            last_observed: saved.last_observed,
            ..FlagBook::default()
        };
        for e in saved.orgs {
            if let Some(slug) = &e.slug {
                book.slugs.insert(slug.clone(), e.id.clone());
            }
            book.orgs.insert(e.id.clone(), e);
        }
        for f in saved.flips {
            book.flips.entry(f.org.clone()).or_default().push(f);
        }
        book
    }

    pub fn saved(&self) -> SavedBook {
        SavedBook {
            orgs: self.orgs.values().cloned().collect(),
            flips: self.flips.values().flatten().cloned().collect(),
            first_observed: self.first_observed,
            last_observed: self.last_observed,
        }
    }

    /// The time of the last snapshot applied: flags are known up to here.
    pub fn last_observed(&self) -> Option<Timestamp> {
        self.last_observed
    }

    pub fn orgs(&self) -> impl Iterator<Item = &OrgEntry> {
        self.orgs.values()
    }

    /// An org by id, or by slug.
    pub fn org(&self, key: &str) -> Option<&OrgEntry> {
        self.orgs
            .get(key)
            .or_else(|| self.slugs.get(key).and_then(|id| self.orgs.get(id)))
    }

    pub fn flips_of(&self, org: &str) -> &[Flip] {
        let id = self.org(org).map_or(org, |e| e.id.as_str());
        self.flips.get(id).map_or(&[], Vec::as_slice)
    }

    pub fn last_flip(&self, org: &str) -> Option<&Flip> {
        self.flips_of(org).last()
    }

    /// Compares `snap` with the book. The first snapshot is the baseline: no flips, but its
    /// malformed flags are reported. A snapshot older than the last one is ignored.
    pub fn apply(&mut self, snap: &FlagSnapshot) -> FlagChanges {
        let mut out = FlagChanges::default();
        let observed = snap.observed_at;
        let prev = match self.last_observed {
            Some(p) if observed < p => return out,
            Some(p) => p,
            None => {
                out.baseline = true;
                self.first_observed = Some(observed);
                observed
            }
        };
        self.last_observed = Some(observed);
        let mut seen = std::collections::HashSet::with_capacity(snap.orgs.len());
        for o in &snap.orgs {
            seen.insert(o.id.as_str());
            if let Some(slug) = &o.slug {
                self.slugs.insert(slug.clone(), o.id.clone());
            }
            let Some(e) = self.orgs.get_mut(&o.id) else {
                let known_from = o.updated_at.filter(|u| *u <= observed).unwrap_or(observed);
                if let Some(raw) = &o.flag.malformed {
                    out.malformed.push(MalformedFlag {
                        org: o.id.clone(),
                        raw: raw.clone(),
                    });
                }
                self.orgs.insert(
                    o.id.clone(),
                    OrgEntry {
                        id: o.id.clone(),
                        slug: o.slug.clone(),
                        flag: o.flag.clone(),
                        updated_at: o.updated_at,
                        present: true,
                        known_from,
                    },
                );
                continue;
            };
            if e.flag.expected != o.flag.expected {
                let (at, earliest) = date(o.updated_at, e.updated_at, observed, prev);
                out.flips.push(Flip {
                    org: o.id.clone(),
                    from: e.flag.expected,
                    to: o.flag.expected,
                    at,
                    earliest,
                    observed_at: observed,
                    cause: FlipCause::Flag,
                });
            }
            if let Some(raw) = &o.flag.malformed
                && e.flag.malformed.as_ref() != Some(raw)
            {
                out.malformed.push(MalformedFlag {
                    org: o.id.clone(),
                    raw: raw.clone(),
                });
            }
            e.slug = o.slug.clone();
            e.flag = o.flag.clone();
            e.updated_at = o.updated_at;
            e.present = true;
        }
        for e in self.orgs.values_mut() {
            if !e.present || seen.contains(e.id.as_str()) {
                continue;
            }
            e.present = false;
            if e.flag.expected != Runner::Ts {
                out.flips.push(Flip {
                    org: e.id.clone(),
                    from: e.flag.expected,
                    to: Runner::Ts,
                    at: observed,
                    earliest: prev,
                    observed_at: observed,
                    cause: FlipCause::RowDeleted,
                });
            }
            e.flag = Flag {
                expected: Runner::Ts,
                malformed: None,
            };
        }
        for f in &out.flips {
            self.flips.entry(f.org.clone()).or_default().push(f.clone());
        }
        out
    }

    /// The runner `org` was expected on at time `t`, if the book can tell: `None` when `t` is
    /// after the last snapshot (not known yet) or before the book's knowledge of the org. An
    /// org that is in no snapshot covering `t` had no row, and the resolver said ts.
    pub fn expected_at(&self, org: &str, t: Timestamp) -> Option<Runner> {
        let (first, last) = (self.first_observed?, self.last_observed?);
        if t > last {
            return None;
        }
        let Some(e) = self.org(org) else {
            return (t >= first).then_some(Runner::Ts);
        };
        let flips = self.flips.get(&e.id).map_or(&[][..], Vec::as_slice);
        if let Some(f) = flips.iter().rev().find(|f| f.at <= t) {
            return Some(f.to);
        }
        if t < e.known_from {
            return None;
        }
        Some(flips.first().map_or(e.flag.expected, |f| f.from))
    }

    /// Judges one dispatch: on the expected runner, or within `grace` after a flip (from its
    /// `earliest` to `at + grace`) on either side of it, agrees; otherwise it is drift.
    pub fn drift(
        &self,
        org: &str,
        dispatched: Runner,
        t: Timestamp,
        grace: Duration,
    ) -> DriftVerdict {
        let Some(expected) = self.expected_at(org, t) else {
            let retry = self.last_observed.is_none_or(|last| t > last);
            return DriftVerdict::Unknown { retry };
        };
        if dispatched == expected {
            return DriftVerdict::Agree;
        }
        let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
        let in_grace = self.flips_of(org).iter().any(|f| {
            f.earliest <= t
                && t < f.at.saturating_add_ms(grace_ms)
                && (dispatched == f.from || dispatched == f.to)
        });
        if in_grace {
            DriftVerdict::Agree
        } else {
            DriftVerdict::Drift { expected }
        }
    }
}

/// Reads the whole organizations table and resolves each row's flag. The pool's connections
/// carry the server-side `statement_timeout` (see `supervise::connect_postgres`).
pub async fn poll_flags(
    pool: &PgPool,
    cfg: &OrganizationsConfig,
) -> Result<Vec<OrgFlag>, PlatformError> {
    let sql = format!(
        "SELECT {id}::text AS id, {slug}::text AS slug, {features}::jsonb AS features, \
         (EXTRACT(EPOCH FROM {updated_at}) * 1000)::bigint AS updated_ms FROM {table}",
        id = cfg.id.sql(),
        slug = cfg.slug.sql(),
        features = cfg.features.sql(),
        updated_at = cfg.updated_at.sql(),
        table = cfg.table.sql(),
    );
    let rows = sqlx::query(&sql).fetch_all(pool).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let id: Option<String> = row.try_get("id")?;
        let Some(id) = id else { continue };
        let features: Option<Value> = row.try_get("features")?;
        out.push(OrgFlag {
            id,
            slug: row.try_get("slug")?,
            flag: resolve(features.as_ref(), &cfg.key),
            updated_at: row.try_get::<Option<i64>, _>("updated_ms")?.map(Timestamp),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
