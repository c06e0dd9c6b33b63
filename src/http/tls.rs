//! TLS on the listener, `[serve.tls]`: rustls with a certificate that can be replaced while
//! serving.
//!
//! The certificate and key are read from PEM files. [`Certificates`] is rustls's certificate
//! resolver: every handshake takes the current [`CertifiedKey`] from an [`ArcSwap`], so a
//! reload swaps it whole without touching open connections. A reload happens on SIGHUP and
//! when the files' contents change (checked every `check_interval`: reading two small files
//! survives what file events miss — a Kubernetes secret's symlink swap, an editor's rename).
//! A new pair that does not load (unreadable, not PEM, a key that does not fit the
//! certificate, half-written) is logged and counted, and the served certificate stays.
//!
//! The handshake is bounded by `[serve.http] header_read_timeout` in `listen`, so a client
//! that opens a connection and sends nothing (or a trickle) holds it no longer than a
//! plain-HTTP slowloris would.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use prometheus::{IntCounterVec, Opts, Registry};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::limits::HttpConfigError;

/// `[serve.tls]` as written; both files empty leaves TLS off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTlsConfig {
    /// The certificate chain (PEM), leaf first.
    pub cert_file: String,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: String,
    /// How often the files are compared with what was loaded.
    pub check_interval: String,
}

impl Default for RawTlsConfig {
    fn default() -> Self {
        RawTlsConfig {
            cert_file: String::new(),
            key_file: String::new(),
            check_interval: "10s".into(),
        }
    }
}

/// Validated `[serve.tls]`.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub check_interval: Duration,
}

impl TlsConfig {
    /// `None` when neither file is set; one without the other is an error.
    pub fn from_raw(raw: &RawTlsConfig) -> Result<Option<TlsConfig>, HttpConfigError> {
        let invalid = |key, message: &str| HttpConfigError {
            key,
            message: message.into(),
        };
        match (raw.cert_file.is_empty(), raw.key_file.is_empty()) {
            (true, true) => return Ok(None),
            (true, false) => {
                return Err(invalid("serve.tls.cert_file", "key_file is set without it"));
            }
            (false, true) => {
                return Err(invalid("serve.tls.key_file", "cert_file is set without it"));
            }
            (false, false) => {}
        }
        let check_interval = match humantime::parse_duration(&raw.check_interval) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                return Err(invalid(
                    "serve.tls.check_interval",
                    "must be more than zero",
                ));
            }
            Err(e) => {
                return Err(invalid(
                    "serve.tls.check_interval",
                    &format!("{:?}: {e}", raw.check_interval),
                ));
            }
        };
        Ok(Some(TlsConfig {
            cert_file: raw.cert_file.clone().into(),
            key_file: raw.key_file.clone().into(),
            check_interval,
        }))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: no PEM certificate in it")]
    NoCertificate { path: PathBuf },
    #[error("{path}: not a PEM certificate chain: {message}")]
    BadCertificate { path: PathBuf, message: String },
    #[error("{path}: no PEM private key in it ({message})")]
    BadKey { path: PathBuf, message: String },
    #[error("the key does not fit the certificate: {0}")]
    Mismatch(rustls::Error),
    #[error("cannot set up TLS: {0}")]
    Setup(rustls::Error),
}

/// The two files' bytes, as last read: a check compares them before parsing anything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Contents {
    cert: Vec<u8>,
    key: Vec<u8>,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Parses a certificate chain and its key, checking that they belong together.
fn certified(config: &TlsConfig, c: &Contents) -> Result<CertifiedKey, TlsError> {
    let cert_path = || config.cert_file.clone();
    let chain = CertificateDer::pem_slice_iter(&c.cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadCertificate {
            path: cert_path(),
            message: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate { path: cert_path() });
    }
    let key = PrivateKeyDer::from_pem_slice(&c.key).map_err(|e| TlsError::BadKey {
        path: config.key_file.clone(),
        message: e.to_string(),
    })?;
    CertifiedKey::from_der(chain, key, &provider()).map_err(TlsError::Mismatch)
}

/// `claimcheck_tls_certificate_loads_total{outcome}`: loads of the certificate pair, at start
/// and on reload, by `loaded` / `failed`.
#[derive(Debug, Clone)]
pub struct TlsMetrics {
    loads: IntCounterVec,
}

impl TlsMetrics {
    pub fn register(reg: &Registry) -> prometheus::Result<TlsMetrics> {
        let loads = IntCounterVec::new(
            Opts::new(
                "claimcheck_tls_certificate_loads_total",
                "Loads of the TLS certificate and key, at start and on reload, by outcome.",
            ),
            &["outcome"],
        )?;
        reg.register(Box::new(loads.clone()))?;
        for outcome in ["loaded", "failed"] {
            loads.with_label_values(&[outcome]);
        }
        Ok(TlsMetrics { loads })
    }

    /// A new certificate is served from now on.
    fn loaded(&self, config: &TlsConfig, why: &'static str) {
        self.loads.with_label_values(&["loaded"]).inc();
        tracing::info!(
            cert_file = %config.cert_file.display(),
            why,
            "TLS certificate loaded"
        );
    }

    /// A new pair did not load; the served certificate stays.
    fn failed(&self, e: &TlsError, why: &'static str) {
        self.loads.with_label_values(&["failed"]).inc();
        tracing::error!(
            error = %e,
            why,
            "TLS certificate not reloaded: the served one stays"
        );
    }
}

/// The certificate being served, replaced whole on reload.
#[derive(Debug)]
pub struct Certificates {
    config: TlsConfig,
    current: ArcSwap<CertifiedKey>,
    /// The files' contents at the last load attempt (loaded or not), so a bad pair is
    /// reported once, not on every check.
    seen: Mutex<Contents>,
    metrics: TlsMetrics,
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

impl Certificates {
    /// Loads the pair once; serve does not start without a certificate that loads.
    pub fn open(config: TlsConfig, metrics: TlsMetrics) -> Result<Arc<Certificates>, TlsError> {
        let contents = Contents {
            cert: read(&config.cert_file)?,
            key: read(&config.key_file)?,
        };
        let key = certified(&config, &contents)?;
        metrics.loaded(&config, "start");
        Ok(Arc::new(Certificates {
            config,
            current: ArcSwap::from_pointee(key),
            seen: Mutex::new(contents),
            metrics,
        }))
    }

    /// Reads the files and serves the pair they hold now, whatever was seen before (SIGHUP).
    pub fn reload(&self) {
        self.load(true, "sighup");
    }

    /// Reloads when the files differ from the last attempt.
    fn check(&self) {
        self.load(false, "changed");
    }

    fn load(&self, always: bool, why: &'static str) {
        let contents = match (read(&self.config.cert_file), read(&self.config.key_file)) {
            (Ok(cert), Ok(key)) => Contents { cert, key },
            (Err(e), _) | (_, Err(e)) => {
                // A file being replaced can be missing for a moment: said once per change.
                let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
                if always || *seen != Contents::default() {
                    *seen = Contents::default();
                    self.metrics.failed(&e, why);
                }
                return;
            }
        };
        {
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            if !always && *seen == contents {
                return;
            }
            seen.clone_from(&contents);
        }
        match certified(&self.config, &contents) {
            Ok(key) => {
                self.current.store(Arc::new(key));
                self.metrics.loaded(&self.config, why);
            }
            Err(e) => self.metrics.failed(&e, why),
        }
    }

    /// Compares the files with what was loaded every `check_interval` until `shutdown`.
    pub async fn watch(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.config.check_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let me = self.clone();
            // File reads block: off the runtime's workers.
            if tokio::task::spawn_blocking(move || me.check())
                .await
                .is_err()
            {
                tracing::error!("the TLS certificate check panicked");
            }
        }
    }

    /// The acceptor `listen` wraps connections with: HTTP/1.1 only, certificate from `self`.
    pub fn acceptor(self: &Arc<Self>) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Setup)?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_files_or_neither() {
        assert_eq!(
            TlsConfig::from_raw(&RawTlsConfig::default()).ok(),
            Some(None)
        );
        for (raw, key) in [
            (
                RawTlsConfig {
                    cert_file: "c.pem".into(),
                    ..Default::default()
                },
                "serve.tls.key_file",
            ),
            (
                RawTlsConfig {
                    key_file: "k.pem".into(),
                    ..Default::default()
                },
                "serve.tls.cert_file",
            ),
            (
                RawTlsConfig {
                    cert_file: "c.pem".into(),
                    key_file: "k.pem".into(),
                    check_interval: "0s".into(),
                },
                "serve.tls.check_interval",
            ),
        ] {
            let e = TlsConfig::from_raw(&raw).unwrap_err().to_string();
            assert!(e.contains(key), "{e}");
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let config = TlsConfig {
            cert_file: "c.pem".into(),
            key_file: "k.pem".into(),
            check_interval: Duration::from_secs(1),
        };
        for (cert, key) in [
            (&b""[..], &b""[..]),
            (b"not pem", b"not pem"),
            (
                b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
                b"",
            ),
            (
                b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            ),
        ] {
            let c = Contents {
                cert: cert.to_vec(),
                key: key.to_vec(),
            };
            assert!(certified(&config, &c).is_err());
        }
    }
}
