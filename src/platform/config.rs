//! The `[platform]` table in two layers, like every stage's table: a raw serde mirror
//! (`deny_unknown_fields`, every key optional, defaults = the platform's own names from the
//! migration guide) and the validated [`PlatformConfig`] the tasks run on. Table and column
//! names are checked to be plain SQL identifiers before they reach a query string.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum PlatformConfigError {
    #[error(
        "platform.{key}: {value:?} is not a SQL identifier (letters, digits, _, one optional schema.)"
    )]
    Identifier { key: &'static str, value: String },
    #[error("platform.{key}: {value:?}: {message}")]
    Duration {
        key: &'static str,
        value: String,
        message: String,
    },
    #[error("platform.{key}: {message}")]
    Invalid { key: &'static str, message: String },
}

/// `[platform]`: both halves are optional; an absent half is simply not polled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawPlatformConfig {
    pub postgres: Option<RawPostgres>,
    pub redis: Option<RawRedis>,
    /// How long after a flip a dispatch to the old runner is still propagation, not drift.
    pub drift_grace: String,
    /// First and last delay of the reconnect backoff (doubling, with jitter).
    pub backoff_min: String,
    pub backoff_max: String,
}

impl RawPlatformConfig {
    fn defaults() -> RawPlatformConfig {
        RawPlatformConfig {
            postgres: None,
            redis: None,
            drift_grace: "30s".into(),
            backoff_min: "500ms".into(),
            backoff_max: "30s".into(),
        }
    }
}

/// `[platform.postgres]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawPostgres {
    /// `postgres://user@host/db`; give it a read-only role (README, "Platform integrations").
    pub url: String,
    /// Deadline of every call, also sent as the server-side `statement_timeout`.
    pub call_timeout: String,
    pub organizations: RawOrganizations,
    pub sessions: RawSessions,
}

impl Default for RawPostgres {
    fn default() -> RawPostgres {
        RawPostgres {
            url: "postgres://127.0.0.1/postgres".into(),
            call_timeout: "5s".into(),
            organizations: RawOrganizations::default(),
            sessions: RawSessions::default(),
        }
    }
}

/// `[platform.postgres.organizations]`: where the resolver reads the flag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawOrganizations {
    pub table: String,
    pub id: String,
    pub slug: String,
    pub features: String,
    pub updated_at: String,
    /// The key inside `features` (`features.runner_default`).
    pub key: String,
    pub poll_interval: String,
}

impl Default for RawOrganizations {
    fn default() -> RawOrganizations {
        RawOrganizations {
            table: "organizations".into(),
            id: "id".into(),
            slug: "slug".into(),
            features: "features".into(),
            updated_at: "updated_at".into(),
            key: "runner_default".into(),
            poll_interval: "10s".into(),
        }
    }
}

/// `[platform.postgres.sessions]`: the platform's session rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSessions {
    pub table: String,
    pub id: String,
    pub status: String,
    pub created_at: String,
    pub organization_id: String,
    pub poll_interval: String,
    /// A session created this long ago that never appeared as a dispatch is missing from logs.
    pub grace: String,
    /// Each poll re-reads this much before the newest row seen, for rows committed late.
    pub lookback: String,
    /// Statuses of sessions that are never dispatched (e.g. `"cancelled"`): not expected in logs.
    pub exclude_statuses: Vec<String>,
}

impl Default for RawSessions {
    fn default() -> RawSessions {
        RawSessions {
            table: "agent_sessions".into(),
            id: "id".into(),
            status: "status".into(),
            created_at: "created_at".into(),
            organization_id: "organization_id".into(),
            poll_interval: "10s".into(),
            grace: "10m".into(),
            lookback: "60s".into(),
            exclude_statuses: Vec::new(),
        }
    }
}

/// `[platform.redis]`: the platform's queue keys, read-only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRedis {
    pub url: String,
    /// Prepended to every key name below (a deployment's namespace; tests use it to stay apart).
    pub key_prefix: String,
    pub queue: String,
    pub items: String,
    pub claim_prefix: String,
    pub poll_interval: String,
    pub call_timeout: String,
    /// At most this many queued items are read per poll (oldest first); depth is still exact.
    pub max_scan: usize,
}

impl Default for RawRedis {
    fn default() -> RawRedis {
        RawRedis {
            url: "redis://127.0.0.1:6379/".into(),
            key_prefix: String::new(),
            queue: "work:queue".into(),
            items: "work:items".into(),
            claim_prefix: "work:claim:".into(),
            poll_interval: "5s".into(),
            call_timeout: "2s".into(),
            max_scan: 10_000,
        }
    }
}

impl Default for RawPlatformConfig {
    fn default() -> RawPlatformConfig {
        RawPlatformConfig::defaults()
    }
}

/// A checked SQL identifier, optionally schema-qualified, rendered double-quoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident(String);

impl Ident {
    pub fn new(key: &'static str, value: &str) -> Result<Ident, PlatformConfigError> {
        let bad = || PlatformConfigError::Identifier {
            key,
            value: value.to_owned(),
        };
        let parts: Vec<&str> = value.split('.').collect();
        if parts.len() > 2 {
            return Err(bad());
        }
        for p in &parts {
            let mut chars = p.chars();
            let first_ok = chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
            if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(bad());
            }
        }
        Ok(Ident(
            parts
                .iter()
                .map(|p| format!("\"{p}\""))
                .collect::<Vec<_>>()
                .join("."),
        ))
    }

    /// The quoted form, safe to splice into SQL.
    pub fn sql(&self) -> &str {
        &self.0
    }

    /// The name without quotes (`schema.table`), for catalog lookups.
    pub fn plain(&self) -> String {
        self.0.replace('"', "")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrganizationsConfig {
    pub table: Ident,
    pub id: Ident,
    pub slug: Ident,
    pub features: Ident,
    pub updated_at: Ident,
    pub key: String,
    pub poll_interval: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SessionsConfig {
    pub table: Ident,
    pub id: Ident,
    pub status: Ident,
    pub created_at: Ident,
    pub organization_id: Ident,
    pub poll_interval: Duration,
    pub grace: Duration,
    pub lookback: Duration,
    pub exclude_statuses: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PostgresConfig {
    pub url: String,
    pub call_timeout: Duration,
    pub organizations: OrganizationsConfig,
    pub sessions: SessionsConfig,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RedisConfig {
    pub url: String,
    pub queue: String,
    pub items: String,
    pub claim_prefix: String,
    pub poll_interval: Duration,
    pub call_timeout: Duration,
    pub max_scan: usize,
}

impl RedisConfig {
    /// The claim key of one session (`work:claim:<sessionId>`, after the prefix).
    pub fn claim_key(&self, session: &str) -> String {
        format!("{}{session}", self.claim_prefix)
    }
}

/// The validated `[platform]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct PlatformConfig {
    pub postgres: Option<PostgresConfig>,
    pub redis: Option<RedisConfig>,
    pub drift_grace: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

fn duration(key: &'static str, v: &str) -> Result<Duration, PlatformConfigError> {
    humantime::parse_duration(v).map_err(|e| PlatformConfigError::Duration {
        key,
        value: v.to_owned(),
        message: e.to_string(),
    })
}

fn positive(key: &'static str, v: &str) -> Result<Duration, PlatformConfigError> {
    let d = duration(key, v)?;
    if d.is_zero() {
        return Err(PlatformConfigError::Invalid {
            key,
            message: "must be more than 0".into(),
        });
    }
    Ok(d)
}

impl PlatformConfig {
    pub fn new(raw: &RawPlatformConfig) -> Result<PlatformConfig, PlatformConfigError> {
        let postgres = raw.postgres.as_ref().map(postgres).transpose()?;
        let redis = raw.redis.as_ref().map(redis).transpose()?;
        let backoff_min = positive("backoff_min", &raw.backoff_min)?;
        let backoff_max = positive("backoff_max", &raw.backoff_max)?;
        if backoff_max < backoff_min {
            return Err(PlatformConfigError::Invalid {
                key: "backoff_max",
                message: "must not be less than backoff_min".into(),
            });
        }
        Ok(PlatformConfig {
            postgres,
            redis,
            drift_grace: duration("drift_grace", &raw.drift_grace)?,
            backoff_min,
            backoff_max,
        })
    }
}

fn postgres(raw: &RawPostgres) -> Result<PostgresConfig, PlatformConfigError> {
    let o = &raw.organizations;
    let s = &raw.sessions;
    if o.key.is_empty() {
        return Err(PlatformConfigError::Invalid {
            key: "postgres.organizations.key",
            message: "must not be empty".into(),
        });
    }
    Ok(PostgresConfig {
        url: raw.url.clone(),
        call_timeout: positive("postgres.call_timeout", &raw.call_timeout)?,
        organizations: OrganizationsConfig {
            table: Ident::new("postgres.organizations.table", &o.table)?,
            id: Ident::new("postgres.organizations.id", &o.id)?,
            slug: Ident::new("postgres.organizations.slug", &o.slug)?,
            features: Ident::new("postgres.organizations.features", &o.features)?,
            updated_at: Ident::new("postgres.organizations.updated_at", &o.updated_at)?,
            key: o.key.clone(),
            poll_interval: positive("postgres.organizations.poll_interval", &o.poll_interval)?,
        },
        sessions: SessionsConfig {
            table: Ident::new("postgres.sessions.table", &s.table)?,
            id: Ident::new("postgres.sessions.id", &s.id)?,
            status: Ident::new("postgres.sessions.status", &s.status)?,
            created_at: Ident::new("postgres.sessions.created_at", &s.created_at)?,
            organization_id: Ident::new("postgres.sessions.organization_id", &s.organization_id)?,
            poll_interval: positive("postgres.sessions.poll_interval", &s.poll_interval)?,
            grace: duration("postgres.sessions.grace", &s.grace)?,
            lookback: duration("postgres.sessions.lookback", &s.lookback)?,
            exclude_statuses: s.exclude_statuses.clone(),
        },
    })
}

fn redis(raw: &RawRedis) -> Result<RedisConfig, PlatformConfigError> {
    if raw.max_scan == 0 {
        return Err(PlatformConfigError::Invalid {
            key: "redis.max_scan",
            message: "must be more than 0".into(),
        });
    }
    let p = &raw.key_prefix;
    Ok(RedisConfig {
        url: raw.url.clone(),
        queue: format!("{p}{}", raw.queue),
        items: format!("{p}{}", raw.items),
        claim_prefix: format!("{p}{}", raw.claim_prefix),
        poll_interval: positive("redis.poll_interval", &raw.poll_interval)?,
        call_timeout: positive("redis.call_timeout", &raw.call_timeout)?,
        max_scan: raw.max_scan,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_platforms_names() {
        let raw: RawPlatformConfig = toml::from_str(
            "[postgres]\nurl = \"postgres://ro@db/app\"\n[redis]\nkey_prefix = \"t1:\"\n",
        )
        .unwrap();
        let c = PlatformConfig::new(&raw).unwrap();
        let pg = c.postgres.unwrap();
        assert_eq!(pg.organizations.table.sql(), "\"organizations\"");
        assert_eq!(pg.organizations.key, "runner_default");
        assert_eq!(pg.sessions.table.sql(), "\"agent_sessions\"");
        let r = c.redis.unwrap();
        assert_eq!(r.queue, "t1:work:queue");
        assert_eq!(r.items, "t1:work:items");
        assert_eq!(r.claim_key("ses_1"), "t1:work:claim:ses_1");
        assert_eq!(c.drift_grace, Duration::from_secs(30));
    }

    #[test]
    fn identifiers_are_checked_before_they_reach_sql() {
        assert_eq!(
            Ident::new("t", "platform.organizations").unwrap().sql(),
            "\"platform\".\"organizations\""
        );
        for bad in ["", "a;drop", "x\"y", "a.b.c", "1abc", "a b"] {
            assert!(Ident::new("t", bad).is_err(), "{bad:?}");
        }
        let raw: RawPlatformConfig =
            toml::from_str("[postgres.organizations]\ntable = \"orgs; drop table x\"\n").unwrap();
        let e = PlatformConfig::new(&raw).unwrap_err().to_string();
        assert!(e.contains("postgres.organizations.table"), "{e}");
    }

    #[test]
    fn unknown_keys_and_bad_durations_are_errors() {
        assert!(toml::from_str::<RawPlatformConfig>("[redis]\nqueue_name = \"q\"\n").is_err());
        let raw: RawPlatformConfig = toml::from_str("drift_grace = \"soon\"\n").unwrap();
        assert!(PlatformConfig::new(&raw).is_err());
        let raw: RawPlatformConfig =
            toml::from_str("backoff_min = \"10s\"\nbackoff_max = \"1s\"\n").unwrap();
        assert!(PlatformConfig::new(&raw).is_err());
    }
}
