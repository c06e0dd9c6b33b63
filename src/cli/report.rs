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
    /// The runner the org moved to (`ts` for a rollback). Default: the runner of its latest
    /// dispatch, or with --flip-at the one its baseline was not on.
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

    /// The evidence. Log files today; a `--store URL` (serve's store, whose accepted lines
    /// re-parse into the same [`FlipEvidence`]) plugs in here.
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
    let params = args.params()?;
    let evidence = args.evidence(&params.org)?;
    let report = build(&evidence, &params)?;
    write_output(args.output.as_deref(), &render(&report, args.format))?;
    Ok(report)
}
