//! Limits at the HTTP edge, `[serve.http]`: how long a client may take to send a request
//! head (which also bounds an idle keep-alive connection), how many connections are open at
//! once (in all and per client address), how long a request may take and how large a body
//! may be, before and after gzip decoding.
//!
//! The defaults keep `/healthz` answering while any single client misbehaves: one address
//! can hold at most `max_connections_per_client` connections, fewer than `max_connections`,
//! and every connection that does not send a complete head within `header_read_timeout` is
//! closed.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A `[serve.http]` or `[serve.tls]` setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct HttpConfigError {
    pub key: &'static str,
    pub message: String,
}

/// Longest any request may take by default, body upload included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest accepted ingest body by default (as sent, before decoding).
pub const MAX_BODY_BYTES: usize = 8 << 20;

/// `[serve.http]` as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawHttpConfig {
    /// A connection that has not sent a whole request head this long after it opened, or
    /// after its previous response, is closed: this is also the idle keep-alive timeout
    /// (hyper starts the head timer when it starts waiting for the next request).
    pub header_read_timeout: String,
    /// Longest a request may take, body upload and the actor's answer included (408).
    pub request_timeout: String,
    /// Open connections in all; past it serve stops accepting until one closes.
    pub max_connections: usize,
    /// Open connections from one client address; past it new ones are closed at once.
    pub max_connections_per_client: usize,
    /// Largest request body as sent (413).
    pub max_body_bytes: usize,
    /// Largest ingest body once gzip is decoded (413).
    pub max_decoded_bytes: usize,
    /// Ingest requests handled at once; the others wait, their bodies unread.
    pub max_ingest_in_flight: usize,
}

impl Default for RawHttpConfig {
    fn default() -> Self {
        RawHttpConfig {
            header_read_timeout: "10s".into(),
            request_timeout: "30s".into(),
            max_connections: 1024,
            max_connections_per_client: 64,
            max_body_bytes: MAX_BODY_BYTES,
            max_decoded_bytes: 32 << 20,
            max_ingest_in_flight: 16,
        }
    }
}

/// Validated `[serve.http]`.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    pub header_read_timeout: Duration,
    pub request_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_client: usize,
    pub max_body_bytes: usize,
    pub max_decoded_bytes: usize,
    pub max_ingest_in_flight: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        // The defaults are valid by construction; a test keeps it that way.
        HttpConfig::from_raw(&RawHttpConfig::default()).unwrap_or_else(|e| unreachable!("{e}"))
    }
}

fn duration(key: &'static str, v: &str) -> Result<Duration, HttpConfigError> {
    match humantime::parse_duration(v) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err(invalid(key, "must be more than zero")),
        Err(e) => Err(invalid(key, &format!("{v:?}: {e}"))),
    }
}

fn invalid(key: &'static str, message: &str) -> HttpConfigError {
    HttpConfigError {
        key,
        message: message.into(),
    }
}

impl HttpConfig {
    pub fn from_raw(raw: &RawHttpConfig) -> Result<HttpConfig, HttpConfigError> {
        let c = HttpConfig {
            header_read_timeout: duration(
                "serve.http.header_read_timeout",
                &raw.header_read_timeout,
            )?,
            request_timeout: duration("serve.http.request_timeout", &raw.request_timeout)?,
            max_connections: raw.max_connections,
            max_connections_per_client: raw.max_connections_per_client,
            max_body_bytes: raw.max_body_bytes,
            max_decoded_bytes: raw.max_decoded_bytes,
            max_ingest_in_flight: raw.max_ingest_in_flight,
        };
        for (key, n) in [
            ("serve.http.max_connections", c.max_connections),
            (
                "serve.http.max_connections_per_client",
                c.max_connections_per_client,
            ),
            ("serve.http.max_body_bytes", c.max_body_bytes),
            ("serve.http.max_decoded_bytes", c.max_decoded_bytes),
            ("serve.http.max_ingest_in_flight", c.max_ingest_in_flight),
        ] {
            if n == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        if c.max_connections_per_client > c.max_connections {
            return Err(invalid(
                "serve.http.max_connections_per_client",
                "must not exceed max_connections",
            ));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_name_their_key() {
        let d = HttpConfig::default();
        assert!(d.max_connections_per_client < d.max_connections);
        for (raw, key) in [
            (
                RawHttpConfig {
                    max_connections: 0,
                    ..Default::default()
                },
                "serve.http.max_connections",
            ),
            (
                RawHttpConfig {
                    max_connections_per_client: 2000,
                    ..Default::default()
                },
                "serve.http.max_connections_per_client",
            ),
            (
                RawHttpConfig {
                    header_read_timeout: "0s".into(),
                    ..Default::default()
                },
                "serve.http.header_read_timeout",
            ),
        ] {
            let e = HttpConfig::from_raw(&raw).unwrap_err().to_string();
            assert!(e.contains(key), "{e}");
        }
    }
}
