//! Reports `serve` writes on its own: once a detected flip's window (plus the claim timeout
//! and a minute of slack for late lines) has passed, the report is built from the store and
//! stored beside it. Flips come from the actor as they are detected and, after a restart,
//! from the flag book in the store, so a flip whose window passes while claimcheck is down
//! still gets its report, once.
//!
//! With `serve --cluster` ([`Reporter::share`]) a replica holds only its own sources' lines:
//! flips are shared through the shared state (every replica knows every flip, platform or
//! not), each replica writes its share of a due report's evidence there, and the report built
//! from all the shares is stored there once and taken into every replica's store, so each
//! answers the same report (`state::shared::reports`).

use std::time::Duration;

use prometheus::{IntCounterVec, Opts, Registry};
use serde::Serialize;
use sha1::Digest;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::{FlipParams, render, slice};
use crate::clock::Clock;
use crate::correlate::ClaimTimeouts;
use crate::event::{Runner, Timestamp};
use crate::parse::Parser;
use crate::platform::{Flip, SavedBook};
use crate::serve::PLATFORM_BOOK;
use crate::state::shared::reports::{self, SharedReports};
use crate::store::{Store, StoredReport};

/// How long after a report is due, with `serve --cluster`, it waits for the shares of every
/// replica that named sources; past it, it is built without those still missing (their
/// sources listed as silent: the report says the evidence is incomplete).
pub const SHARES_WAIT_MS: i64 = 60_000;

/// What became of a due report.
enum Written {
    Done,
    /// Waiting for other replicas' shares of its evidence.
    Waiting,
}

/// Why a due report was not written.
enum NotWritten {
    /// The store or the shared state failed: tried again at the next tick.
    Retry(String),
    /// The report cannot be built: given up.
    GiveUp(String),
}

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

impl PendingReport {
    fn of(f: &Flip, id: String, due: Timestamp) -> PendingReport {
        PendingReport {
            org: f.org.clone(),
            id,
            flip_at: f.at.to_rfc3339(),
            due: due.to_rfc3339(),
        }
    }
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
    /// With `serve --cluster`: flips and reports shared with the other replicas.
    shared: Option<SharedReports>,
    /// Flips detected here and not yet added to the shared ones.
    unshared: Vec<Flip>,
    /// Reports whose evidence share this process wrote.
    shared_done: std::collections::BTreeSet<String>,
    /// Reports given up (they cannot be built): not tried again for a shared flip.
    given_up: std::collections::BTreeSet<String>,
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
            shared: None,
            unshared: Vec::new(),
            shared_done: Default::default(),
            given_up: Default::default(),
        };
        Ok((reporter, tx, pending_rx))
    }

    /// Pushes every report that does not pass to Alertmanager through `alerts`.
    pub fn alert_to(&mut self, alerts: crate::sinks::alertmanager::AlertHandle) {
        self.alerts = Some(alerts);
    }

    /// Shares flips and reports with the other replicas of `serve --cluster`.
    pub fn share(&mut self, shared: SharedReports) {
        self.shared = Some(shared);
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
                Ok(book) => {
                    if self.shared.is_some() {
                        self.unshared.clone_from(&book.flips);
                    }
                    self.flips = book.flips;
                }
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
                    if self.shared.is_some() {
                        self.unshared.push(f.clone());
                    }
                    if !self.flips.contains(&f) {
                        self.flips.push(f);
                    }
                }
                _ = tick.tick() => self.write_due().await,
            }
        }
    }

    /// Adds the flips detected here to the shared ones, and takes every shared flip not
    /// reported here yet (dropping those past the retention).
    async fn sync_flips(&mut self, now: Timestamp) {
        let Some(sh) = &self.shared else { return };
        let mut left = Vec::new();
        for f in std::mem::take(&mut self.unshared) {
            let id = report_id(&f.org, f.at);
            let added = match serde_json::to_string(&f) {
                Ok(json) => sh.add_flip(&id, &json).await.is_ok(),
                Err(_) => true,
            };
            if !added {
                left.push(f);
            }
        }
        self.unshared = left;
        let all = match sh.flips().await {
            Ok(all) => all,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the shared flips; retrying");
                return;
            }
        };
        let keep = now.saturating_add_ms(-sh.keep_ms());
        let mut old = Vec::new();
        for (id, json) in all {
            match serde_json::from_str::<Flip>(&json) {
                Ok(f) if f.at < keep => old.push(id),
                Ok(f) => {
                    let known = self.flips.iter().any(|g| report_id(&g.org, g.at) == id);
                    if !known && !self.given_up.contains(&id) {
                        self.flips.push(f);
                    }
                }
                Err(e) => tracing::warn!(report = %id, error = %e, "unreadable shared flip"),
            }
        }
        if let Err(e) = sh.drop_flips(&old).await {
            tracing::warn!(error = %e, "cannot drop the shared flips past the retention");
        }
    }

    async fn write_due(&mut self) {
        let now = self.clock.now();
        self.sync_flips(now).await;
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
                pending.push(PendingReport::of(&f, id, due));
                i += 1;
                continue;
            }
            let written = match &self.shared {
                None => self.write(&f, &id, now).await.map(|()| Written::Done),
                Some(_) => self.write_shared(&f, &id, now).await,
            };
            match written {
                Ok(Written::Done) => {
                    self.flips.remove(i);
                }
                Ok(Written::Waiting) => {
                    pending.push(PendingReport::of(&f, id, due));
                    i += 1;
                }
                // A store error is retried next tick; a report that cannot be built is given
                // up (and said so).
                Err(NotWritten::Retry(e)) => {
                    tracing::warn!(org = %f.org, error = %e, "post-flip report not written");
                    i += 1;
                }
                Err(NotWritten::GiveUp(e)) => {
                    tracing::warn!(org = %f.org, error = %e, "post-flip report not written");
                    self.given_up.insert(id);
                    self.flips.remove(i);
                }
            }
        }
        self.pending.send_replace(pending);
    }

    async fn write(&self, f: &Flip, id: &str, now: Timestamp) -> Result<(), NotWritten> {
        let report = report_flip(&self.store, &self.parser, &self.config, f, id, now)
            .await
            .map_err(|e| match e.starts_with("store") {
                true => NotWritten::Retry(e),
                false => NotWritten::GiveUp(e),
            })?;
        self.verdict(f, id, &report);
        Ok(())
    }

    /// `serve --cluster`: the report stored in the shared state, taken into this replica's
    /// store; or, with none stored yet, this replica's share of its evidence written, and
    /// the report built from every replica's share once each gave one (or `SHARES_WAIT_MS`
    /// after it was due) and stored there, once.
    async fn write_shared(
        &mut self,
        f: &Flip,
        id: &str,
        now: Timestamp,
    ) -> Result<Written, NotWritten> {
        let Some(sh) = &self.shared else {
            return Ok(Written::Waiting);
        };
        let retry = |e: crate::state::StateError| NotWritten::Retry(e.to_string());
        if let Some((created, json)) = sh.report(id).await.map_err(retry)? {
            self.take(f, id, created, json).await?;
            return Ok(Written::Done);
        }
        if !self.shared_done.contains(id) {
            let share = super::stored::read_share(&self.store, &self.parser, &f.org)
                .await
                .map_err(|e| NotWritten::Retry(e.to_string()))?;
            sh.share(id, &slice::encode(&share)).await.map_err(retry)?;
            self.shared_done.insert(id.to_owned());
        }
        let shares = sh.shares(id).await.map_err(retry)?;
        let sources = sh.sources(now).await.map_err(retry)?;
        let (missing, names) = reports::absent(&sources, &shares.keys().cloned().collect());
        if !missing.is_empty() && now < self.due(f).saturating_add_ms(SHARES_WAIT_MS) {
            return Ok(Written::Waiting);
        }
        if !missing.is_empty() {
            tracing::warn!(org = %f.org, report = id, missing = ?missing, "post-flip report built without the evidence of replicas that gave none: their sources are listed as silent");
        }
        let mut evidence = Vec::with_capacity(shares.len());
        for (instance, text) in &shares {
            let share = slice::decode(text)
                .map_err(|e| NotWritten::GiveUp(format!("the share of {instance}: {e}")))?;
            evidence.push(share);
        }
        let absent: Vec<(String, String)> = names
            .into_iter()
            .map(|n| (n, "unknown".to_owned()))
            .collect();
        let evidence = slice::merge(evidence, &absent);
        let report = build(&self.config, f, &evidence).map_err(NotWritten::GiveUp)?;
        let (won, (created, json)) = sh
            .settle(id, now, &render::json(&report))
            .await
            .map_err(retry)?;
        // Counted by the replica whose report stands: once across replicas.
        if won {
            self.verdict(f, id, &report);
        }
        self.take(f, id, created, json).await?;
        Ok(Written::Done)
    }

    /// Stores the shared report `json` in this replica's store.
    async fn take(
        &self,
        f: &Flip,
        id: &str,
        created: Timestamp,
        json: String,
    ) -> Result<(), NotWritten> {
        let report: super::FlipReport = serde_json::from_str(&json)
            .map_err(|e| NotWritten::GiveUp(format!("the shared report {id}: {e}")))?;
        self.store
            .put_report(&StoredReport {
                id: id.to_owned(),
                org: f.org.clone(),
                flip_at: f.at,
                verdict: report.verdict.as_str().to_owned(),
                created_at: created,
                json,
            })
            .await
            .map_err(|e| NotWritten::Retry(e.to_string()))
    }

    /// Counts and logs a report's verdict.
    fn verdict(&self, f: &Flip, id: &str, report: &super::FlipReport) {
        let verdict = report.verdict.as_str();
        self.verifications.with_label_values(&[verdict]).inc();
        match verdict {
            "pass" => tracing::info!(org = %f.org, report = id, "post-flip verification passed"),
            _ => {
                tracing::error!(org = %f.org, report = id, verdict, reason = %report.reason, "post-flip verification did not pass")
            }
        }
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
    let report = build(config, f, &evidence)?;
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

/// The report of flip `f` on `evidence`.
fn build(
    config: &AutoConfig,
    f: &Flip,
    evidence: &super::FlipEvidence,
) -> Result<super::FlipReport, String> {
    let params = FlipParams {
        at: Some(f.at),
        to: Some(f.to),
        window_ms: config.window_ms,
        grace_ms: config.grace_ms,
        timeouts: config.timeouts,
        ..FlipParams::new(f.org.clone())
    };
    super::build(evidence, &params).map_err(|e| e.to_string())
}
