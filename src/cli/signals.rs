//! Signals of a long-running mode: SIGTERM and SIGINT stop it (flushing state), SIGHUP never
//! does. SIGHUP is what `systemctl reload` and logrotate's `postrotate` send: it re-reads the
//! config file, applies what is safe to change while running, and reopens the log file.
//!
//! Safe to change today: the log level (and the log file, reopened at its path), and the TLS
//! certificate (read again from its files; one that does not load leaves the served one). Everything
//! else in the file (listen address, store, sources, platform) needs a restart; a reload
//! that finds them changed says so in one line rather than half-applying them.

use std::path::PathBuf;

use super::LogArgs;
use super::logging::LogHandle;
use crate::config::RawConfig;

/// What a SIGHUP reloads, and from where.
#[derive(Debug, Clone)]
pub struct Reload {
    config: Option<PathBuf>,
    flags: LogArgs,
    log: LogHandle,
    /// The file as it was read at start (or at the last reload): what needs a restart is
    /// compared against it.
    loaded: Option<RawConfig>,
    /// The served TLS certificate, read again from its files on every reload.
    tls: Option<std::sync::Arc<crate::http::tls::Certificates>>,
}

impl Reload {
    pub(super) fn new(config: Option<PathBuf>, flags: LogArgs, log: LogHandle) -> Reload {
        let loaded = config
            .as_deref()
            .and_then(|p| super::load_raw(Some(p)).ok())
            .map(|l| l.raw);
        Reload {
            config,
            flags,
            log,
            loaded,
            tls: None,
        }
    }

    /// Reloads also re-read this certificate pair.
    pub fn reload_tls(&mut self, certs: std::sync::Arc<crate::http::tls::Certificates>) {
        self.tls = Some(certs);
    }

    /// Re-reads the file and applies it. A file that no longer parses changes nothing: the
    /// process keeps running on what it has, and says why.
    pub fn reload(&mut self) {
        // The certificate's files are not the config file: reloaded even when it is broken.
        if let Some(certs) = &self.tls {
            certs.reload();
        }
        let raw = match &self.config {
            Some(p) => match super::load_raw(Some(p)) {
                Ok(l) => Some(l.raw),
                Err(e) => {
                    tracing::error!(
                        error = super::describe(&e),
                        "reload failed: the running configuration stays"
                    );
                    return;
                }
            },
            None => None,
        };
        let log = match self
            .flags
            .apply(raw.as_ref().map(|r| r.log.clone()).unwrap_or_default())
        {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(
                    error = super::describe(&e),
                    "reload failed: the running configuration stays"
                );
                return;
            }
        };
        if let Err(e) = self.log.reopen() {
            tracing::error!(error = super::describe(&e), "cannot reopen the log file");
        }
        let level_changed = match self.log.set_level(&log.level) {
            Ok(changed) => changed,
            Err(e) => {
                tracing::error!(error = super::describe(&e), "log level not applied");
                false
            }
        };
        if let (Some(old), Some(new)) = (&self.loaded, &raw) {
            let restart: Vec<&str> = [
                ("parse", old.parse != new.parse),
                ("serve", old.serve != new.serve),
                ("platform", old.platform != new.platform),
                ("log.format", old.log.format != new.log.format),
            ]
            .into_iter()
            .filter_map(|(k, changed)| changed.then_some(k))
            .collect();
            if !restart.is_empty() {
                tracing::warn!(
                    tables = restart.join(","),
                    "changed in the config file but only applied on restart"
                );
            }
        }
        if raw.is_some() {
            self.loaded = raw;
        }
        tracing::info!(
            log_level = %self.log.level(),
            level_changed,
            "reloaded on SIGHUP"
        );
    }
}

/// The stop and reload signals, installed: from here on SIGHUP no longer kills the process.
#[derive(Debug)]
pub struct Signals {
    term: Option<tokio::signal::unix::Signal>,
    hup: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Installs the handlers (inside the runtime). Call it before saying "serving": a
    /// SIGHUP that arrives before would still have its default action.
    pub fn install() -> Signals {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let hup = signal(SignalKind::hangup());
        if term.is_err() || hup.is_err() {
            tracing::warn!("cannot install the SIGTERM/SIGHUP handlers");
        }
        Signals {
            term: term.ok(),
            hup: hup.ok(),
        }
    }

    /// Waits for SIGTERM or SIGINT, reloading on every SIGHUP meanwhile.
    pub async fn until_stopped(mut self, mut reload: Reload) {
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        loop {
            tokio::select! {
                _ = &mut ctrl_c => return,
                Some(()) = recv(&mut self.term) => return,
                Some(()) = recv(&mut self.hup) => reload.reload(),
            }
        }
    }
}

/// The next delivery of a signal; never, when it has no handler.
async fn recv(s: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match s {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}
