//! Configuration in two layers: the raw serde mirror of the TOML file (`deny_unknown_fields`,
//! every key optional) and the validated types the pipeline runs on. Nothing downstream of
//! `Config::from_toml` sees a string that should have been a type.

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::correlate::{ClaimTimeoutError, ClaimTimeouts};
pub use crate::parse::config::{
    FieldPath, ParseConfig, ParseConfigError, RawEventNames, RawParseConfig,
};

pub mod layers;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid config: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("{key}: {message}")]
    Invalid { key: &'static str, message: String },
    #[error(transparent)]
    Parse(#[from] ParseConfigError),
    #[error(transparent)]
    ClaimTimeout(#[from] ClaimTimeoutError),
    #[error(transparent)]
    Http(#[from] crate::http::HttpConfigError),
    #[error(transparent)]
    Alertmanager(#[from] crate::sinks::alertmanager::AlertmanagerConfigError),
    #[error("[platform] {0}")]
    Platform(#[from] crate::platform::PlatformConfigError),
    #[error(transparent)]
    Cluster(#[from] crate::state::shared::ClusterConfigError),
    #[error("{var}: {message}")]
    Env { var: String, message: String },
}

/// The `--config` file: `[parse]` for every mode, `[serve]` for the sidecar. Secrets (ingest
/// token, drain secret) are not read from it: they come from flags or `CLAIMCHECK_*`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub parse: RawParseConfig,
    pub serve: RawServeConfig,
    pub platform: crate::platform::RawPlatformConfig,
    pub log: RawLogConfig,
    /// Off without `urls` (`serve --cluster`): the correlation state stays in the process.
    pub cluster: Option<crate::state::shared::RawClusterConfig>,
}

/// The `[log]` table: claimcheck's own diagnostics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLogConfig {
    /// `text` or `json` (one object per line).
    pub format: String,
    /// An `EnvFilter` directive: `info`, `debug`, `info,claimcheck=debug`.
    pub level: String,
    /// Write to this file instead of stderr (reopened on SIGHUP); empty = stderr.
    pub file: String,
}

impl Default for RawLogConfig {
    fn default() -> Self {
        RawLogConfig {
            format: "text".into(),
            level: "info".into(),
            file: String::new(),
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Validated `[log]`.
#[derive(Debug, Clone)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
    pub file: Option<std::path::PathBuf>,
}

impl LogConfig {
    pub fn new(raw: &RawLogConfig) -> Result<LogConfig, ConfigError> {
        let format = match raw.format.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(ConfigError::Invalid {
                    key: "log.format",
                    message: format!("{other:?}: text or json"),
                });
            }
        };
        tracing_subscriber::EnvFilter::try_new(&raw.level).map_err(|e| ConfigError::Invalid {
            key: "log.level",
            message: format!("{:?}: {e}", raw.level),
        })?;
        Ok(LogConfig {
            format,
            level: raw.level.clone(),
            file: (!raw.file.is_empty()).then(|| raw.file.clone().into()),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServeConfig {
    pub listen: String,
    /// SQLite path or `sqlite://` URL; empty keeps state in memory.
    pub store: String,
    /// `[RUNTIME=]PATH_OR_GLOB`, as `--file`.
    pub files: Vec<String>,
    /// As `--claim-timeout`: `120s`, or per runner `go=90s`.
    pub claim_timeout: Vec<String>,
    /// A claim whose session has no dispatch stamped this long after it is an orphan (judged
    /// on settled evidence, or after this plus `max_hold` on the sidecar's clock).
    pub orphan_grace: String,
    /// Sessions are forgotten this long after they were first seen.
    pub retention: String,
    /// A session is judged once every active source has delivered past its first claim's
    /// event time plus this (events stamped earlier may still arrive from a slower source).
    pub allowed_lateness: String,
    /// A source that delivered nothing for this long stops holding judgements back (a
    /// followed file only once its follower has read to its end).
    pub source_idle_after: String,
    /// A session is judged after at most this long, settled or not (then counted in
    /// `claimcheck_judged_before_settled_total`).
    pub max_hold: String,
    /// Sessions held in memory at once; past it those whose latest evidence is oldest are
    /// judged early on the evidence so far and dropped (`claimcheck_sessions_evicted_total`).
    pub max_sessions: usize,
    /// Distinct `org` label values on `claimcheck_dispatches_total`; the rest are `other`.
    pub org_label_cap: usize,
    /// After a detected flip, the window its post-flip report covers (and the baseline before).
    pub report_window: String,
    /// A worker's `claimcheck_daemon_*` series are removed after this much silence (event
    /// time) while other workers still heartbeat.
    pub worker_series_ttl: String,
    /// Per-finding alerts pushed to Alertmanager (off while `url` is empty).
    pub alertmanager: crate::sinks::alertmanager::RawAlertmanagerConfig,
    /// Limits at the HTTP edge.
    pub http: crate::http::RawHttpConfig,
    /// TLS on the listener (off while its files are empty).
    pub tls: crate::http::tls::RawTlsConfig,
    /// A followed file no path names any more (rotated away) is read until it has not grown
    /// for this long (or is deleted and read to its end).
    pub close_inactive: String,
    /// SIGTERM exits within this, even with the store down (what was not committed is
    /// logged, never acknowledged).
    pub shutdown_grace: String,
}

impl Default for RawServeConfig {
    fn default() -> Self {
        RawServeConfig {
            listen: "127.0.0.1:9464".into(),
            store: String::new(),
            files: Vec::new(),
            claim_timeout: vec!["120s".into()],
            orphan_grace: "5m".into(),
            retention: "1h".into(),
            allowed_lateness: "3s".into(),
            source_idle_after: "5s".into(),
            max_hold: "1m".into(),
            max_sessions: 1_000_000,
            org_label_cap: 200,
            report_window: "30m".into(),
            worker_series_ttl: "1h".into(),
            alertmanager: Default::default(),
            http: Default::default(),
            tls: Default::default(),
            close_inactive: "30s".into(),
            shutdown_grace: "10s".into(),
        }
    }
}

/// Validated `[serve]`.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: std::net::SocketAddr,
    pub store: Option<String>,
    pub files: Vec<String>,
    pub timeouts: ClaimTimeouts,
    pub orphan_grace: Duration,
    pub retention: Duration,
    pub allowed_lateness: Duration,
    pub source_idle_after: Duration,
    pub max_hold: Duration,
    pub max_sessions: usize,
    pub org_label_cap: usize,
    pub report_window: Duration,
    pub worker_series_ttl: Duration,
    pub alertmanager: Option<crate::sinks::alertmanager::AlertmanagerConfig>,
    pub http: crate::http::HttpConfig,
    pub tls: Option<crate::http::tls::TlsConfig>,
    pub close_inactive: Duration,
    pub shutdown_grace: Duration,
}

fn duration(key: &'static str, v: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(v).map_err(|e| ConfigError::Invalid {
        key,
        message: format!("{v:?}: {e}"),
    })
}

/// `127.0.0.1:9464`, `[::1]:9464` or `localhost:9464` (a name resolves to its first address).
fn listen_addr(v: &str) -> Result<std::net::SocketAddr, ConfigError> {
    use std::net::ToSocketAddrs;
    let invalid = |message: String| ConfigError::Invalid {
        key: "serve.listen",
        message: format!("{v:?}: {message}"),
    };
    if let Ok(a) = v.parse() {
        return Ok(a);
    }
    if v.rsplit_once(':')
        .is_none_or(|(_, port)| port.parse::<u16>().is_err())
    {
        return Err(invalid("expected HOST:PORT".into()));
    }
    let mut addrs = v
        .to_socket_addrs()
        .map_err(|e| invalid(format!("cannot resolve: {e}")))?;
    addrs
        .next()
        .ok_or_else(|| invalid("resolves to no address".into()))
}

impl ServeConfig {
    pub fn new(raw: &RawServeConfig) -> Result<ServeConfig, ConfigError> {
        let listen = listen_addr(&raw.listen)?;
        let mut timeouts = ClaimTimeouts::default();
        for spec in &raw.claim_timeout {
            timeouts.apply(spec)?;
        }
        if raw.max_sessions == 0 {
            return Err(ConfigError::Invalid {
                key: "serve.max_sessions",
                message: "must be at least 1".into(),
            });
        }
        if raw.org_label_cap == 0 {
            return Err(ConfigError::Invalid {
                key: "serve.org_label_cap",
                message: "must be at least 1".into(),
            });
        }
        Ok(ServeConfig {
            listen,
            store: (!raw.store.is_empty()).then(|| raw.store.clone()),
            files: raw.files.clone(),
            timeouts,
            orphan_grace: duration("serve.orphan_grace", &raw.orphan_grace)?,
            retention: duration("serve.retention", &raw.retention)?,
            allowed_lateness: duration("serve.allowed_lateness", &raw.allowed_lateness)?,
            source_idle_after: duration("serve.source_idle_after", &raw.source_idle_after)?,
            max_hold: duration("serve.max_hold", &raw.max_hold)?,
            max_sessions: raw.max_sessions,
            org_label_cap: raw.org_label_cap,
            report_window: duration("serve.report_window", &raw.report_window)?,
            worker_series_ttl: duration("serve.worker_series_ttl", &raw.worker_series_ttl)?,
            alertmanager: crate::sinks::alertmanager::AlertmanagerConfig::from_raw(
                &raw.alertmanager,
            )?,
            http: crate::http::HttpConfig::from_raw(&raw.http)?,
            tls: crate::http::tls::TlsConfig::from_raw(&raw.tls)?,
            close_inactive: duration("serve.close_inactive", &raw.close_inactive)?,
            shutdown_grace: duration("serve.shutdown_grace", &raw.shutdown_grace)?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub parse: ParseConfig,
    pub serve: ServeConfig,
    pub platform: crate::platform::PlatformConfig,
    pub log: LogConfig,
    /// The shared correlation state; `None` keeps it in the process.
    pub cluster: Option<crate::state::shared::ClusterConfig>,
}

impl Default for Config {
    fn default() -> Self {
        // The defaults are valid by construction; a test keeps it that way.
        Config::from_raw(&RawConfig::default()).unwrap_or_else(|e| unreachable!("{e}"))
    }
}

impl Config {
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        Config::from_raw(&toml::from_str(text)?)
    }

    pub fn from_raw(raw: &RawConfig) -> Result<Config, ConfigError> {
        Ok(Config {
            parse: ParseConfig::new(&raw.parse)?,
            serve: ServeConfig::new(&raw.serve)?,
            platform: crate::platform::PlatformConfig::new(&raw.platform)?,
            log: LogConfig::new(&raw.log)?,
            cluster: raw
                .cluster
                .as_ref()
                .map(crate::state::shared::ClusterConfig::new)
                .transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;

    #[test]
    fn defaults_validate() {
        let c = ParseConfig::new(&RawParseConfig::default()).unwrap();
        assert_eq!(c.event_names.get("claimed"), Some(&EventKind::Claim));
        assert_eq!(c.event_names.get("nack"), Some(&EventKind::Release));
        assert_eq!(c.session_id[2].0, vec!["context", "sessionId"]);
    }

    #[test]
    fn rejects_bad_config_with_clear_errors() {
        let e = Config::from_toml("[parse]\nsession_id_paths = [\"a..b\"]\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid field path \"a..b\": segments must be non-empty"
        );
        let e = Config::from_toml("[parse.events]\nclaim = [\"dispatch\"]\n").unwrap_err();
        assert!(
            e.to_string().contains("mapped to both dispatch and claim"),
            "{e}"
        );
        assert!(Config::from_toml("[parse]\nnope = 1\n").is_err());
        let c = Config::from_toml("[parse.events]\nclaim = [\"picked\"]\n").unwrap();
        assert_eq!(c.parse.event_names.get("picked"), Some(&EventKind::Claim));
        assert_eq!(c.parse.event_names.get("claimed"), None);
    }

    /// The example file in the repository is the defaults, written out: editing one without
    /// the other fails here.
    #[test]
    fn example_config_equals_the_defaults() {
        let text = include_str!("../claimcheck.example.toml");
        let raw: RawConfig = toml::from_str(text).unwrap();
        assert_eq!(raw, RawConfig::default());
        Config::from_raw(&raw).unwrap();
    }

    /// Every key the example sets has a comment just above it, and every key of the model
    /// (the optional platform tables included) appears in it, set or commented out.
    #[test]
    fn example_config_comments_every_key() {
        let text = include_str!("../claimcheck.example.toml");
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let is_key = line.split_once(" = ").is_some_and(|(k, _)| {
                !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
            });
            if is_key {
                assert!(
                    i > 0 && lines[i - 1].starts_with('#'),
                    "no comment above {line:?} in claimcheck.example.toml"
                );
            }
        }
        for (_, path) in layers::env_names() {
            let key = path.rsplit('.').next().unwrap_or_default();
            let table = &path[..path.len() - key.len()].trim_end_matches('.');
            let header = format!("[{table}]");
            let at = text
                .find(&header)
                .unwrap_or_else(|| panic!("{header} missing"));
            assert!(
                text[at..].contains(&format!("{key} = ")),
                "{path} is not in claimcheck.example.toml"
            );
        }
    }

    #[test]
    fn listen_takes_a_host_name() {
        let c = Config::from_toml("[serve]\nlisten = \"localhost:9999\"\n").unwrap();
        assert_eq!(c.serve.listen.port(), 9999);
        assert!(c.serve.listen.ip().is_loopback());
        let e = Config::from_toml("[serve]\nlisten = \"localhost\"\n").unwrap_err();
        assert!(e.to_string().contains("HOST:PORT"), "{e}");
    }

    #[test]
    fn serve_config_is_validated() {
        let bad = [
            ("[serve]\nlisten = \"nowhere\"\n", "serve.listen"),
            ("[serve]\nretention = \"forever\"\n", "serve.retention"),
            ("[serve]\norg_label_cap = 0\n", "serve.org_label_cap"),
            ("[serve]\nclaim_timeout = [\"rust=1s\"]\n", "claim-timeout"),
        ];
        for (text, key) in bad {
            let e = Config::from_toml(text).unwrap_err().to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
        let c = Config::from_toml("[serve]\nstore = \"state.db\"\nclaim_timeout = [\"go=90s\"]\n")
            .unwrap();
        assert_eq!(c.serve.store.as_deref(), Some("state.db"));
        assert_eq!(c.serve.timeouts.go, Duration::from_secs(90));
    }

    /// `[cluster]` is off by default, on with its urls, and refused without them (`serve
    /// --cluster` or `CLAIMCHECK_CLUSTER_URLS` give them).
    #[test]
    fn cluster_is_optional_and_validated() {
        assert!(Config::default().cluster.is_none());
        let c = Config::from_toml(
            "[cluster]\nurls = [\"redis://a:7000\", \"redis://b:7000\"]\ninstance = \"drain-0\"\nwait_replicas = 1\n",
        )
        .unwrap();
        let cluster = c.cluster.unwrap();
        assert_eq!(cluster.urls.len(), 2);
        assert_eq!(
            cluster.shared("drain-0".into()).wait.map(|w| w.replicas),
            Some(1)
        );
        let e = Config::from_toml("[cluster]\nwait_replicas = 1\n").unwrap_err();
        assert!(e.to_string().starts_with("cluster.urls"), "{e}");
        let env = [(
            "CLAIMCHECK_CLUSTER_URLS".to_owned(),
            "redis://a:7000, redis://b:7000".to_owned(),
        )]
        .into_iter()
        .collect();
        let l = layers::layer(None, &env, |_| Err(std::io::Error::other("no files"))).unwrap();
        let c = Config::from_raw(&l.raw).unwrap();
        assert_eq!(
            c.cluster.unwrap().urls,
            ["redis://a:7000", "redis://b:7000"]
        );
    }

    #[test]
    fn claim_timeouts_per_runner() {
        let mut t = ClaimTimeouts::default();
        t.apply("2m").unwrap();
        t.apply("go=90s").unwrap();
        assert_eq!(t.ts, Duration::from_secs(120));
        assert_eq!(t.go, Duration::from_secs(90));
        assert!(t.apply("rust=1s").is_err());
        assert!(t.apply("soon").is_err());
        assert!(t.apply("0s").is_err());
        assert!(t.apply("go=0s").is_err());
    }
}
