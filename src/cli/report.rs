//! `claimcheck report`: flags → [`FlipParams`], evidence from the logs, the report, its
//! rendering; the verdict decides the exit code (see `cli::main`).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};

use super::verify::{ExpectRunner, InputArgs, progress_bar, time_flag, write_output};
use crate::event::Runner;
use crate::flip::render::{Format, render};
use crate::flip::{FlipEvidence, FlipParams, FlipReport, build, logs};

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The org, as its dispatches name it (`organizationId`).
    #[arg(long, value_name = "ORG")]
    pub org: String,
    /// When the org's flag changed (RFC 3339). Default: located in the logs, at the first
    /// dispatch to the new runner.
    #[arg(long, value_name = "TIME")]
    pub flip_at: Option<String>,
    /// The runner the org moved to (`ts` for a rollback). Default: the store's detected flip
    /// (with --store); else, with --flip-at, away from the runner its baseline was on, or with
    /// no dispatch before the flip the runner its dispatches after the grace went to; without
    /// --flip-at, the runner of its latest dispatch. With no dispatch at all, the report is
    /// `inconclusive` (no sessions in the window).
    #[arg(long, value_name = "RUNNER")]
    pub to: Option<ExpectRunner>,
    /// The window after the flip checked; the baseline is as long, before it.
    #[arg(long, value_name = "DURATION", default_value = "30m")]
    pub window: String,
    /// How long after the flip a dispatch may still go to the old runner.
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    pub grace: String,
    #[command(flatten)]
    pub input: InputArgs,
    #[arg(long, value_enum, default_value = "markdown")]
    pub format: Format,
    /// Write the report here instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Sessions listed per check (the total is always given).
    #[arg(long, default_value_t = 50)]
    pub max_listed: usize,
    /// Read the evidence from `serve`'s store (SQLite path or URL, `postgres://…`) instead of
    /// log files; without `--flip-at`, the flip is the org's last one serve detected.
    #[arg(long, value_name = "URL", env = "CLAIMCHECK_STORE")]
    pub store: Option<String>,
}

fn millis(flag: &str, v: &str) -> anyhow::Result<i64> {
    let d: Duration = humantime::parse_duration(v)
        .with_context(|| format!("--{flag} {v:?} is not a duration (30m, 90s)"))?;
    i64::try_from(d.as_millis()).with_context(|| format!("--{flag} {v:?} is too long"))
}

impl ReportArgs {
    fn params(&self) -> anyhow::Result<FlipParams> {
        if self.org.is_empty() {
            bail!("--org must not be empty");
        }
        let mut p = FlipParams::new(self.org.clone());
        p.at = time_flag("flip-at", &self.flip_at)?;
        p.to = self.to.map(|r| match r {
            ExpectRunner::Go => Runner::Go,
            ExpectRunner::Ts => Runner::Ts,
        });
        p.window_ms = millis("window", &self.window)?;
        p.grace_ms = millis("grace", &self.grace)?;
        if p.window_ms <= p.grace_ms {
            bail!("--window must be longer than --grace");
        }
        p.timeouts = self.input.timeouts()?;
        p.max_listed = self.max_listed;
        Ok(p)
    }

    /// The evidence and, from a store, the flip serve detected (unless one was given).
    fn evidence_from_store(
        &self,
        url: &str,
        params: &mut FlipParams,
    ) -> anyhow::Result<FlipEvidence> {
        if !self.input.dispatch.is_empty() || !self.input.claims.is_empty() {
            bail!(
                "--store reads serve's store: give it instead of --dispatch/--claims, not with them"
            );
        }
        let config = self.input.config()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        runtime.block_on(async {
            let store = crate::store::Store::open(url).await.with_context(|| {
                format!("cannot open the store {}", crate::redact::secrets(url))
            })?;
            if params.at.is_none() || params.to.is_none() {
                let book = store
                    .state(crate::serve::PLATFORM_BOOK)
                    .await?
                    .map(|j| serde_json::from_str::<crate::platform::SavedBook>(&j))
                    .transpose()
                    .context("the store's flag book is unreadable")?;
                let flips: Vec<_> = book
                    .map(|b| b.flips)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|f| f.org == params.org)
                    .collect();
                match params.at {
                    None => {
                        let flip = flips.last().with_context(|| {
                            format!(
                                "the store has no detected flip of org {:?}; give --flip-at",
                                params.org
                            )
                        })?;
                        params.at = Some(flip.at);
                        params.to = params.to.or(Some(flip.to));
                    }
                    // A given flip time serve also detected: its direction is the detected one
                    // (within the grace, as the flag reaches dispatchers at slightly different
                    // times); otherwise it is found in the dispatches.
                    Some(at) => {
                        params.to = flips
                            .iter()
                            .filter(|f| (f.at.millis() - at.millis()).abs() <= params.grace_ms)
                            .min_by_key(|f| (f.at.millis() - at.millis()).abs())
                            .map(|f| f.to);
                    }
                }
            }
            let parser = crate::parse::Parser::new(config.parse.clone());
            Ok(crate::flip::stored::read(&store, &parser, &params.org).await?)
        })
    }

    /// The evidence from log files.
    fn evidence(&self, org: &str) -> anyhow::Result<FlipEvidence> {
        let inputs = self.input.inputs()?;
        let config = self.input.config()?;
        let read_bytes = Arc::new(AtomicU64::new(0));
        let bar =
            std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| progress_bar(&inputs));
        let counter = read_bytes.clone();
        let mut tick = || {
            if let Some(b) = &bar {
                b.set_position(counter.load(Ordering::Relaxed));
            }
        };
        let evidence = logs::read(&inputs, &config.parse, org, read_bytes.clone(), &mut tick)?;
        if let Some(b) = &bar {
            b.finish_and_clear();
        }
        Ok(evidence)
    }
}

/// Builds the report and writes it; the caller turns its verdict into the exit code.
pub fn run(args: ReportArgs) -> anyhow::Result<FlipReport> {
    let mut params = args.params()?;
    let evidence = match &args.store {
        Some(url) => args.evidence_from_store(url, &mut params)?,
        None => args.evidence(&params.org)?,
    };
    let report = build(&evidence, &params)?;
    write_output(args.output.as_deref(), &render(&report, args.format))?;
    Ok(report)
}
