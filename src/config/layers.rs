//! The layered configuration model: the file, then `CLAIMCHECK_<SECTION>_<KEY>` environment
//! variables, then flags (applied by `cli` on the raw result), merged key by key before
//! anything is validated, so setting one key never discards the rest of its table.
//!
//! Every key of the file has an environment name: its dotted path upper-cased with `_` for
//! `.` (`serve.alertmanager.url` → `CLAIMCHECK_SERVE_ALERTMANAGER_URL`). `<NAME>_FILE` reads
//! the value from a file instead (one trailing newline dropped): how container platforms
//! hand over secrets. Lists take comma-separated items. A key of an optional table
//! (`[platform.postgres]`) switches the table on, with defaults for the rest.
//!
//! The environment is an argument (a map), never read here: tests pass their own.

use std::collections::BTreeMap;

use super::{ConfigError, RawConfig};

/// Older names, kept working: each stands for one key.
const ALIASES: [(&str, &str); 3] = [
    ("CLAIMCHECK_STORE", "serve.store"),
    ("CLAIMCHECK_ALERTMANAGER_URL", "serve.alertmanager.url"),
    ("CLAIMCHECK_LOG", "log.level"),
];

/// `CLAIMCHECK_*` variables that are not file keys: flags' own (secrets given to `serve`),
/// and the build's (`build.rs` reads them at compile time; `cargo test` passes them on).
pub const FLAG_VARS: [&str; 11] = [
    "CLAIMCHECK_REVISION",
    "CLAIMCHECK_RUSTC",
    "CLAIMCHECK_INGEST_TOKEN",
    "CLAIMCHECK_INGEST_TOKEN_FILE",
    "CLAIMCHECK_VERCEL_SECRET",
    "CLAIMCHECK_VERCEL_SECRET_FILE",
    "CLAIMCHECK_VERCEL_VERIFY_CODE",
    "CLAIMCHECK_METRICS_TOKEN",
    "CLAIMCHECK_METRICS_TOKEN_FILE",
    "CLAIMCHECK_API_TOKEN",
    "CLAIMCHECK_API_TOKEN_FILE",
];

/// The file and the environment merged, not yet validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Layered {
    pub raw: RawConfig,
    /// `CLAIMCHECK_*` variables that name no key (a typo, most likely): reported, not fatal.
    pub unknown_env: Vec<String>,
}

/// The kind of value a key holds, from the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    String,
    Integer,
    Bool,
    List,
}

/// Every key of the file (optional tables included, as if present) with its kind.
fn keys() -> BTreeMap<String, (Vec<String>, Kind)> {
    let mut full = RawConfig::default();
    full.platform.postgres = Some(Default::default());
    full.platform.redis = Some(Default::default());
    full.cluster = Some(Default::default());
    let mut out = BTreeMap::new();
    if let Ok(toml::Value::Table(t)) = toml::Value::try_from(&full) {
        walk(&t, &mut Vec::new(), &mut out);
    }
    out
}

fn walk(t: &toml::Table, path: &mut Vec<String>, out: &mut BTreeMap<String, (Vec<String>, Kind)>) {
    for (k, v) in t {
        path.push(k.clone());
        let kind = match v {
            toml::Value::Table(inner) => {
                walk(inner, path, out);
                None
            }
            toml::Value::Integer(_) => Some(Kind::Integer),
            toml::Value::Boolean(_) => Some(Kind::Bool),
            toml::Value::Array(_) => Some(Kind::List),
            _ => Some(Kind::String),
        };
        if let Some(kind) = kind {
            out.insert(env_name(path), (path.clone(), kind));
        }
        path.pop();
    }
}

/// `["serve", "alertmanager", "url"]` → `CLAIMCHECK_SERVE_ALERTMANAGER_URL`.
fn env_name(path: &[String]) -> String {
    format!("CLAIMCHECK_{}", path.join("_").to_ascii_uppercase())
}

/// Every environment name a key can be set by, with its dotted path (for docs and tests).
pub fn env_names() -> Vec<(String, String)> {
    keys()
        .into_iter()
        .map(|(name, (path, _))| (name, path.join(".")))
        .collect()
}

/// Merges `file` (TOML text, or none) and the `CLAIMCHECK_*` entries of `env`.
/// `read_file` reads a `*_FILE` variable's file.
pub fn layer(
    file: Option<&str>,
    env: &BTreeMap<String, String>,
    read_file: impl Fn(&str) -> std::io::Result<String>,
) -> Result<Layered, ConfigError> {
    let mut doc: toml::Table = match file {
        Some(text) => toml::from_str(text)?,
        None => toml::Table::new(),
    };
    // Reject unknown file keys before the environment can hide them.
    let _: RawConfig = toml::Value::Table(doc.clone()).try_into()?;
    let keys = keys();
    let mut unknown_env = Vec::new();
    // Aliases first, so the canonical name wins when both are set.
    let ordered = env
        .iter()
        .filter(|(k, _)| ALIASES.iter().any(|(a, _)| a == k))
        .chain(
            env.iter()
                .filter(|(k, _)| !ALIASES.iter().any(|(a, _)| a == k)),
        );
    for (name, value) in ordered {
        if !name.starts_with("CLAIMCHECK_") || FLAG_VARS.contains(&name.as_str()) {
            continue;
        }
        let alias = ALIASES
            .iter()
            .find(|(a, _)| a == name)
            .map(|(_, key)| key.split('.').map(str::to_owned).collect::<Vec<String>>());
        let (path, kind, value) = if let Some(path) = alias {
            (path, Kind::String, value.clone())
        } else if let Some((path, kind)) = keys.get(name) {
            (path.clone(), *kind, value.clone())
        } else if let Some((path, kind)) = name.strip_suffix("_FILE").and_then(|n| keys.get(n)) {
            let text = read_file(value).map_err(|e| ConfigError::Env {
                var: name.clone(),
                message: format!("cannot read {value}: {e}"),
            })?;
            let text = text.strip_suffix('\n').unwrap_or(&text);
            let text = text.strip_suffix('\r').unwrap_or(text);
            (path.clone(), *kind, text.to_owned())
        } else {
            unknown_env.push(name.clone());
            continue;
        };
        let v = typed(name, kind, &value)?;
        set(&mut doc, &path, v);
    }
    let raw: RawConfig = toml::Value::Table(doc).try_into()?;
    Ok(Layered { raw, unknown_env })
}

fn typed(name: &str, kind: Kind, value: &str) -> Result<toml::Value, ConfigError> {
    let bad = |what: &str| ConfigError::Env {
        var: name.to_owned(),
        message: format!("{value:?} is not {what}"),
    };
    Ok(match kind {
        Kind::String => toml::Value::String(value.to_owned()),
        Kind::Integer => toml::Value::Integer(value.trim().parse().map_err(|_| bad("an integer"))?),
        Kind::Bool => toml::Value::Boolean(value.trim().parse().map_err(|_| bad("true or false"))?),
        Kind::List => toml::Value::Array(
            value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_owned()))
                .collect(),
        ),
    })
}

/// Sets `path` in `doc`, creating the tables on the way.
fn set(doc: &mut toml::Table, path: &[String], v: toml::Value) {
    let Some((last, tables)) = path.split_last() else {
        return;
    };
    let mut t = doc;
    for k in tables {
        let entry = t
            .entry(k.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        let toml::Value::Table(inner) = entry else {
            return;
        };
        t = inner;
    }
    t.insert(last.clone(), v);
}

/// The raw config as TOML with secrets hidden: URL passwords become `REDACTED`, and keys
/// named like a secret (`*token*`, `*secret*`, `*password*`) are replaced whole.
pub fn redacted_toml(raw: &RawConfig) -> String {
    let Ok(toml::Value::Table(mut t)) = toml::Value::try_from(raw) else {
        return String::new();
    };
    redact_table(&mut t);
    toml::to_string_pretty(&t).unwrap_or_default()
}

fn redact_table(t: &mut toml::Table) {
    for (k, v) in t.iter_mut() {
        match v {
            toml::Value::Table(inner) => redact_table(inner),
            toml::Value::String(s) if !s.is_empty() => {
                let key = k.to_ascii_lowercase();
                if ["token", "secret", "password"]
                    .iter()
                    .any(|w| key.contains(w))
                {
                    *s = "REDACTED".into();
                } else {
                    *s = crate::redact::secrets(s).into_owned();
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn no_files(_: &str) -> std::io::Result<String> {
        Err(std::io::Error::other("no files here"))
    }

    #[test]
    fn every_key_has_one_env_name() {
        let names = env_names();
        let paths: std::collections::BTreeSet<_> = names.iter().map(|(_, p)| p).collect();
        assert_eq!(paths.len(), names.len(), "two keys share an env name");
        for (name, path) in [
            ("CLAIMCHECK_SERVE_LISTEN", "serve.listen"),
            (
                "CLAIMCHECK_SERVE_ALERTMANAGER_EXTERNAL_URL",
                "serve.alertmanager.external_url",
            ),
            ("CLAIMCHECK_PLATFORM_POSTGRES_URL", "platform.postgres.url"),
            ("CLAIMCHECK_PLATFORM_REDIS_URL", "platform.redis.url"),
            ("CLAIMCHECK_PARSE_EVENTS_CLAIM", "parse.events.claim"),
            ("CLAIMCHECK_LOG_FORMAT", "log.format"),
        ] {
            assert!(names.contains(&(name.into(), path.into())), "{name}");
        }
    }

    /// One key per section from the environment over a file that sets its neighbours: the
    /// env key wins, the file's other keys of the same table stay.
    #[test]
    fn env_overrides_one_key_and_keeps_its_table_in_every_section() {
        let file = r#"
[parse]
message_path = "msg"
max_line_bytes = 4096
[parse.events]
dispatch = ["queued"]
claim = ["picked"]
[serve]
listen = "127.0.0.1:1"
retention = "2h"
[serve.alertmanager]
url = "http://am.file:9093"
external_url = "http://claimcheck.example"
[platform]
drift_grace = "1m"
backoff_max = "10s"
[platform.postgres]
url = "postgres://file@db/platform"
call_timeout = "3s"
[platform.postgres.organizations]
table = "orgs"
poll_interval = "30s"
[platform.postgres.sessions]
table = "sessions"
grace = "20m"
[platform.redis]
url = "redis://file:6379/"
key_prefix = "x:"
[log]
format = "json"
level = "debug"
"#;
        let e = env(&[
            ("CLAIMCHECK_PARSE_MAX_LINE_BYTES", "8192"),
            ("CLAIMCHECK_PARSE_EVENTS_CLAIM", "took, grabbed"),
            ("CLAIMCHECK_SERVE_LISTEN", "localhost:9999"),
            ("CLAIMCHECK_ALERTMANAGER_URL", "http://am.env:9093"),
            ("CLAIMCHECK_PLATFORM_DRIFT_GRACE", "45s"),
            (
                "CLAIMCHECK_PLATFORM_POSTGRES_URL",
                "postgres://env@db/platform",
            ),
            (
                "CLAIMCHECK_PLATFORM_POSTGRES_ORGANIZATIONS_POLL_INTERVAL",
                "5s",
            ),
            ("CLAIMCHECK_PLATFORM_POSTGRES_SESSIONS_GRACE", "1m"),
            ("CLAIMCHECK_PLATFORM_REDIS_URL", "redis://env:6379/"),
            ("CLAIMCHECK_LOG_LEVEL", "warn"),
            ("CLAIMCHECK_SERVE_LISTN", "typo"),
            ("HOME", "/root"),
        ]);
        let l = layer(Some(file), &e, no_files).unwrap();
        let r = &l.raw;
        assert_eq!(
            (r.parse.max_line_bytes, r.parse.message_path.as_str()),
            (8192, "msg")
        );
        assert_eq!(r.parse.events.claim, ["took", "grabbed"]);
        assert_eq!(r.parse.events.dispatch, ["queued"]);
        assert_eq!(
            (r.serve.listen.as_str(), r.serve.retention.as_str()),
            ("localhost:9999", "2h")
        );
        let am = &r.serve.alertmanager;
        assert_eq!(
            (am.url.as_str(), am.external_url.as_str()),
            ("http://am.env:9093", "http://claimcheck.example")
        );
        assert_eq!(
            (
                r.platform.drift_grace.as_str(),
                r.platform.backoff_max.as_str()
            ),
            ("45s", "10s")
        );
        let pg = r.platform.postgres.as_ref().unwrap();
        assert_eq!(
            (pg.url.as_str(), pg.call_timeout.as_str()),
            ("postgres://env@db/platform", "3s")
        );
        assert_eq!(
            (
                pg.organizations.poll_interval.as_str(),
                pg.organizations.table.as_str()
            ),
            ("5s", "orgs")
        );
        assert_eq!(
            (pg.sessions.grace.as_str(), pg.sessions.table.as_str()),
            ("1m", "sessions")
        );
        let redis = r.platform.redis.as_ref().unwrap();
        assert_eq!(
            (redis.url.as_str(), redis.key_prefix.as_str()),
            ("redis://env:6379/", "x:")
        );
        assert_eq!(
            (r.log.format.as_str(), r.log.level.as_str()),
            ("json", "warn")
        );
        assert_eq!(l.unknown_env, ["CLAIMCHECK_SERVE_LISTN"]);
        // and the result validates, `localhost` included
        let c = crate::config::Config::from_raw(r).unwrap();
        assert_eq!(c.serve.listen.port(), 9999);
    }

    #[test]
    fn env_alone_switches_an_optional_table_on() {
        let l = layer(
            None,
            &env(&[("CLAIMCHECK_PLATFORM_REDIS_KEY_PREFIX", "t:")]),
            no_files,
        )
        .unwrap();
        let redis = l.raw.platform.redis.unwrap();
        assert_eq!(redis.key_prefix, "t:");
        assert_eq!(redis.url, crate::platform::config::RawRedis::default().url);
        assert!(l.raw.platform.postgres.is_none());
    }

    #[test]
    fn secrets_come_from_files_and_are_redacted() {
        let read = |p: &str| {
            assert_eq!(p, "/run/secrets/pg");
            Ok("postgres://ro:hunter2@db.internal/platform\n".to_owned())
        };
        let e = env(&[("CLAIMCHECK_PLATFORM_POSTGRES_URL_FILE", "/run/secrets/pg")]);
        let l = layer(None, &e, read).unwrap();
        let pg = l.raw.platform.postgres.as_ref().unwrap();
        assert_eq!(pg.url, "postgres://ro:hunter2@db.internal/platform");
        let shown = redacted_toml(&l.raw);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("postgres://ro:REDACTED@db.internal/platform"),
            "{shown}"
        );
        let e = layer(None, &e, no_files).unwrap_err().to_string();
        assert!(e.contains("CLAIMCHECK_PLATFORM_POSTGRES_URL_FILE"), "{e}");
    }

    #[test]
    fn bad_env_values_name_their_variable() {
        let e = layer(
            None,
            &env(&[("CLAIMCHECK_SERVE_ORG_LABEL_CAP", "many")]),
            no_files,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "CLAIMCHECK_SERVE_ORG_LABEL_CAP: \"many\" is not an integer"
        );
    }

    #[test]
    fn unknown_file_keys_are_still_refused() {
        let e = env(&[("CLAIMCHECK_SERVE_LISTEN", "127.0.0.1:1")]);
        assert!(layer(Some("[serve]\nlistn = \"x\"\n"), &e, no_files).is_err());
    }
}
