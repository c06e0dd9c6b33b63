//! Reports `serve` writes on its own: once a detected flip's window (plus the claim timeout
//! and a minute of slack for late lines) has passed, the report is built from the store and
//! stored beside it. Flips come from the actor as they are detected and, after a restart,
//! from the flag book in the store, so a flip whose window passes while claimcheck is down
//! still gets its report, once.

use std::time::Duration;

use prometheus::{IntCounterVec, Opts, Registry};
use serde::Serialize;
use sha1::Digest;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::{FlipParams, render};
use crate::clock::Clock;
use crate::correlate::ClaimTimeouts;
use crate::event::{Runner, Timestamp};
use crate::parse::Parser;
use crate::platform::{Flip, SavedBook};
use crate::serve::PLATFORM_BOOK;
use crate::store::{Store, StoredReport};

/// How reports are made.
#[derive(Debug, Clone)]
pub struct AutoConfig {
    pub window_ms: i64,
    pub grace_ms: i64,
    pub timeouts: ClaimTimeouts,
}

/// A flip whose report is not written yet (`GET /api/orgs/{org}/verification` says `pending`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingReport {
    pub org: String,
    pub id: String,
    pub flip_at: String,
    pub due: String,
}

/// A report's id: the flip's moment and a hash of the org (org ids are not URL-safe).
pub fn report_id(org: &str, at: Timestamp) -> String {
    let digest = sha1::Sha1::digest(org.as_bytes());
    format!("{}-{}", at.millis(), hex::encode(&digest[..4]))
}

/// `claimcheck_flip_verifications_total{verdict}`, each verdict's series at 0 from the start.
pub fn register_metrics(registry: &Registry) -> prometheus::Result<IntCounterVec> {
    let verifications = IntCounterVec::new(
        Opts::new(
            "claimcheck_flip_verifications_total",
            "Post-flip verification reports written by serve, by verdict.",
        ),
        &["verdict"],
    )?;
    registry.register(Box::new(verifications.clone()))?;
    for v in ["pass", "fail", "inconclusive"] {
        verifications.with_label_values(&[v]);
    }
    Ok(verifications)
}

#[derive(Debug)]
pub struct Reporter {
    store: Store,
    parser: Parser,
    config: AutoConfig,
    clock: Clock,
    verifications: IntCounterVec,
    pending: watch::Sender<Vec<PendingReport>>,
    inbox: mpsc::Receiver<Flip>,
    flips: Vec<Flip>,
    /// A report that does not pass is also pushed to Alertmanager, when configured.
    alerts: Option<crate::sinks::alertmanager::AlertHandle>,
}

impl Reporter {
    /// Registers `claimcheck_flip_verifications_total{verdict}` and returns the reporter, the
    /// sender the actor hands detected flips to, and the pending list for the API.
    pub fn new(
        store: Store,
        parser: Parser,
        config: AutoConfig,
        clock: Clock,
        registry: &Registry,
    ) -> prometheus::Result<(
        Reporter,
        mpsc::Sender<Flip>,
        watch::Receiver<Vec<PendingReport>>,
    )> {
        let verifications = register_metrics(registry)?;
        let (pending, pending_rx) = watch::channel(Vec::new());
        let (tx, rx) = mpsc::channel(1024);
        let reporter = Reporter {
            store,
            parser,
            config,
            clock,
            verifications,
            pending,
            inbox: rx,
            flips: Vec::new(),
            alerts: None,
        };
        Ok((reporter, tx, pending_rx))
    }

    /// Pushes every report that does not pass to Alertmanager through `alerts`.
    pub fn alert_to(&mut self, alerts: crate::sinks::alertmanager::AlertHandle) {
        self.alerts = Some(alerts);
    }

    fn due(&self, f: &Flip) -> Timestamp {
        let slack = self
            .config
            .timeouts
            .millis(Runner::Go)
            .max(self.config.timeouts.millis(Runner::Ts));
        // Late lines get a minute (or one window, when shorter) after the last claim deadline.
        f.at.saturating_add_ms(self.config.window_ms + slack + self.config.window_ms.min(60_000))
    }

    /// Runs until `shutdown`: takes flips, writes each report when it is due.
    pub async fn run(mut self, shutdown: CancellationToken) {
        // Flips detected before a restart and not yet reported.
        match self.store.state(PLATFORM_BOOK).await {
            Ok(Some(json)) => match serde_json::from_str::<SavedBook>(&json) {
                Ok(book) => self.flips = book.flips,
                Err(e) => {
                    tracing::warn!(error = %e, "stored flag book unreadable; no past flips to report")
                }
            },
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read the flag book"),
        }
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                Some(f) = self.inbox.recv() => {
                    if !self.flips.contains(&f) {
                        self.flips.push(f);
                    }
                }
                _ = tick.tick() => self.write_due().await,
            }
        }
    }

    async fn write_due(&mut self) {
        if self.flips.is_empty() {
            if !self.pending.borrow().is_empty() {
                self.pending.send_replace(Vec::new());
            }
            return;
        }
        let done: std::collections::BTreeSet<String> = match self.store.report_ids().await {
            Ok(ids) => ids.into_iter().collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list stored reports; retrying");
                return;
            }
        };
        let now = self.clock.now();
        let mut pending = Vec::new();
        let mut i = 0;
        while i < self.flips.len() {
            let f = self.flips[i].clone();
            let id = report_id(&f.org, f.at);
            if done.contains(&id) {
                self.flips.remove(i);
                continue;
            }
            let due = self.due(&f);
            if now < due {
                pending.push(PendingReport {
                    org: f.org.clone(),
                    id,
                    flip_at: f.at.to_rfc3339(),
                    due: due.to_rfc3339(),
                });
                i += 1;
                continue;
            }
            match self.write(&f, &id, now).await {
                Ok(()) => {
                    self.flips.remove(i);
                }
                Err(e) => {
                    // A store error is retried next tick; a report that cannot be built is
                    // given up (and said so).
                    tracing::warn!(org = %f.org, error = %e, "post-flip report not written");
                    if !e.starts_with("store") {
                        self.flips.remove(i);
                    } else {
                        i += 1;
                    }
                }
            }
        }
        self.pending.send_replace(pending);
    }

    async fn write(&self, f: &Flip, id: &str, now: Timestamp) -> Result<(), String> {
        let report = report_flip(&self.store, &self.parser, &self.config, f, id, now).await?;
        let verdict = report.verdict.as_str();
        self.verifications.with_label_values(&[verdict]).inc();
        match verdict {
            "pass" => tracing::info!(org = %f.org, report = id, "post-flip verification passed"),
            _ => {
                tracing::error!(org = %f.org, report = id, verdict, reason = %report.reason, "post-flip verification did not pass")
            }
        }
        Ok(())
    }
}

/// Builds the report of flip `f` from what `store` holds and stores it under `id`. Errors
/// starting with `store` are worth retrying; the others mean the report cannot be built.
pub async fn report_flip(
    store: &Store,
    parser: &Parser,
    config: &AutoConfig,
    f: &Flip,
    id: &str,
    now: Timestamp,
) -> Result<super::FlipReport, String> {
    let evidence = super::stored::read(store, parser, &f.org)
        .await
        .map_err(|e| e.to_string())?;
    let params = FlipParams {
        at: Some(f.at),
        to: Some(f.to),
        window_ms: config.window_ms,
        grace_ms: config.grace_ms,
        timeouts: config.timeouts,
        ..FlipParams::new(f.org.clone())
    };
    let report = super::build(&evidence, &params).map_err(|e| e.to_string())?;
    store
        .put_report(&StoredReport {
            id: id.to_owned(),
            org: f.org.clone(),
            flip_at: f.at,
            verdict: report.verdict.as_str().to_owned(),
            created_at: now,
            json: render::json(&report),
        })
        .await
        .map_err(|e| e.to_string())?;
    Ok(report)
}
