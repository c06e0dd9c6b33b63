//! The `[cluster]` table in two layers, like every stage's table: the raw serde mirror
//! (`deny_unknown_fields`, every key optional) and the validated [`ClusterConfig`] that `serve`
//! builds its [`SharedConfig`] from. The table is optional: without it (and without
//! `serve --cluster`) the correlation state stays in the process.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::conn::Timeouts;
use super::keys::Keys;
use super::state::{SharedConfig, Wait};

/// `[cluster]`: where the shared correlation state is and who this replica is among those
/// sharing it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawClusterConfig {
    /// `redis://HOST:PORT`: seed nodes of a Redis Cluster, or one standalone server.
    pub urls: Vec<String>,
    /// This replica's name, unique among the replicas sharing `key_prefix`; empty takes the
    /// host name.
    pub instance: String,
    /// Replicas that correlate together share it; others on the same Redis use their own.
    pub key_prefix: String,
    /// Every replica sharing `key_prefix`, by instance name, when known: until each has
    /// published its sources once, nothing is judged as settled (a replica that joins late
    /// would find claims judged without its evidence); the maximum hold still applies.
    /// Empty: judge on the replicas heard from so far.
    pub instances: Vec<String>,
    /// Establishing a connection to a Redis node.
    pub connect_timeout: String,
    /// One command's answer.
    pub response_timeout: String,
    /// A replica's sweep lease on a bucket lasts this long unless renewed: a dead replica's
    /// deadlines wait at most this long for another to take them over.
    pub lease: String,
    /// A batch is acknowledged only once this many Redis replicas have its writes (`WAIT`),
    /// so a master's failover loses no acknowledged line; 0 trusts the master alone.
    pub wait_replicas: u32,
    /// How long a batch waits for `wait_replicas`; fewer in time and it is applied again.
    pub wait_timeout: String,
}

impl Default for RawClusterConfig {
    fn default() -> Self {
        RawClusterConfig {
            urls: Vec::new(),
            instance: String::new(),
            key_prefix: "claimcheck".into(),
            instances: Vec::new(),
            connect_timeout: "2s".into(),
            response_timeout: "2s".into(),
            lease: "10s".into(),
            wait_replicas: 0,
            wait_timeout: "1s".into(),
        }
    }
}

/// Why `[cluster]` is refused.
#[derive(Debug, thiserror::Error)]
#[error("cluster.{key}: {message}")]
pub struct ClusterConfigError {
    pub key: &'static str,
    pub message: String,
}

/// Validated `[cluster]`; `instance` is still empty when the host name is to be taken.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub urls: Vec<String>,
    pub instance: String,
    pub key_prefix: String,
    pub instances: Vec<String>,
    pub timeouts: Timeouts,
    pub lease: Duration,
    pub wait: Option<Wait>,
}

fn duration(key: &'static str, v: &str) -> Result<Duration, ClusterConfigError> {
    match humantime::parse_duration(v) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err(ClusterConfigError {
            key,
            message: format!("{v:?}: must be more than 0"),
        }),
        Err(e) => Err(ClusterConfigError {
            key,
            message: format!("{v:?}: {e}"),
        }),
    }
}

impl ClusterConfig {
    pub fn new(raw: &RawClusterConfig) -> Result<ClusterConfig, ClusterConfigError> {
        if raw.urls.is_empty() {
            return Err(ClusterConfigError {
                key: "urls",
                message: "give at least one redis://HOST:PORT (serve --cluster)".into(),
            });
        }
        for url in &raw.urls {
            let parsed = redis::parse_redis_url(url);
            if parsed.is_none_or(|u| !matches!(u.scheme(), "redis" | "rediss")) {
                return Err(ClusterConfigError {
                    key: "urls",
                    message: format!("{:?} is not a redis:// URL", crate::redact::secrets(url)),
                });
            }
        }
        if raw.instance.contains(['/', '{', '}']) {
            return Err(ClusterConfigError {
                key: "instance",
                message: format!("{:?}: no '/', '{{' or '}}'", raw.instance),
            });
        }
        if let Some(bad) = raw
            .instances
            .iter()
            .find(|i| i.is_empty() || i.contains(['/', '{', '}']))
        {
            return Err(ClusterConfigError {
                key: "instances",
                message: format!("{bad:?}: a name, with no '/', '{{' or '}}'"),
            });
        }
        Keys::new(&raw.key_prefix).map_err(|e| ClusterConfigError {
            key: "key_prefix",
            message: e.to_string(),
        })?;
        let timeouts = Timeouts {
            connect: duration("connect_timeout", &raw.connect_timeout)?,
            response: duration("response_timeout", &raw.response_timeout)?,
        };
        let wait_timeout = duration("wait_timeout", &raw.wait_timeout)?;
        Ok(ClusterConfig {
            urls: raw.urls.clone(),
            instance: raw.instance.clone(),
            key_prefix: raw.key_prefix.clone(),
            instances: raw.instances.clone(),
            timeouts,
            lease: duration("lease", &raw.lease)?,
            wait: (raw.wait_replicas > 0).then_some(Wait {
                replicas: raw.wait_replicas,
                timeout: wait_timeout,
            }),
        })
    }

    /// The shared state's settings, `instance` naming this replica.
    pub fn shared(&self, instance: String) -> SharedConfig {
        SharedConfig {
            urls: self.urls.clone(),
            prefix: self.key_prefix.clone(),
            instance,
            instances: self.instances.clone(),
            timeouts: self.timeouts,
            lease: self.lease,
            wait: self.wait,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(urls: &[&str]) -> RawClusterConfig {
        RawClusterConfig {
            urls: urls.iter().map(|u| (*u).to_owned()).collect(),
            ..RawClusterConfig::default()
        }
    }

    #[test]
    fn defaults_with_a_url_validate() {
        let c = ClusterConfig::new(&raw(&["redis://127.0.0.1:6379"])).unwrap();
        assert_eq!(c.key_prefix, "claimcheck");
        assert_eq!(c.lease, Duration::from_secs(10));
        assert!(c.wait.is_none());
        let mut r = raw(&["redis://a:7000", "redis://b:7000"]);
        r.wait_replicas = 1;
        let c = ClusterConfig::new(&r).unwrap();
        assert_eq!(
            c.wait,
            Some(Wait {
                replicas: 1,
                timeout: Duration::from_secs(1)
            })
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        let bad: [(RawClusterConfig, &str); 8] = [
            (raw(&[]), "cluster.urls"),
            (raw(&["http://127.0.0.1:6379"]), "cluster.urls"),
            (
                RawClusterConfig {
                    instance: "a/b".into(),
                    ..raw(&["redis://h:1"])
                },
                "cluster.instance",
            ),
            (
                RawClusterConfig {
                    key_prefix: "a}b".into(),
                    ..raw(&["redis://h:1"])
                },
                "cluster.key_prefix",
            ),
            (
                RawClusterConfig {
                    response_timeout: "0s".into(),
                    ..raw(&["redis://h:1"])
                },
                "cluster.response_timeout",
            ),
            (
                RawClusterConfig {
                    wait_timeout: "soon".into(),
                    ..raw(&["redis://h:1"])
                },
                "cluster.wait_timeout",
            ),
            (
                RawClusterConfig {
                    instances: vec!["go".into(), String::new()],
                    ..raw(&["redis://h:1"])
                },
                "cluster.instances",
            ),
            (
                RawClusterConfig {
                    instances: vec!["go/0".into()],
                    ..raw(&["redis://h:1"])
                },
                "cluster.instances",
            ),
        ];
        for (r, key) in bad {
            let e = ClusterConfig::new(&r).unwrap_err().to_string();
            assert!(e.starts_with(key), "{r:?}: {e}");
        }
    }
}
