//! `claimcheck verify`: flags → [`VerifyOptions`], run, render, exit code.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::ClaimTimeouts;
use crate::correlate::CorrelateConfig;
use crate::event::{Runner, Timestamp};
use crate::parse::time::parse_rfc3339;
use crate::report::render::{Format, render};
use crate::report::{Report, Selection};
use crate::sources::{Input, Role};
use crate::verify::{VerifyOptions, verify};

/// The log inputs and how to read and judge them: shared by `verify` and `report`.
#[derive(Debug, clap::Args)]
pub struct InputArgs {
    /// Dispatcher log (repeatable; `-` for stdin; `.gz` is read transparently).
    #[arg(long, value_name = "PATH")]
    pub dispatch: Vec<String>,
    /// Worker log, optionally with the runtime of lines that do not name one: `go=daemon.log`
    /// (repeatable; `-` for stdin).
    #[arg(long, value_name = "[RUNTIME=]PATH")]
    pub claims: Vec<String>,
    /// Claim timeout T: `120s`, `2m`, or per runner `go=90s` (repeatable).
    #[arg(long, value_name = "DURATION", default_value = "120s")]
    pub claim_timeout: Vec<String>,
    /// TOML config file (`[parse]` field paths and event names).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl InputArgs {
    /// The inputs, dispatch logs first; at least one, stdin at most once.
    pub fn inputs(&self) -> anyhow::Result<Vec<Input>> {
        let mut inputs = Vec::new();
        for d in &self.dispatch {
            inputs.push(Input::parse(d, Role::Dispatch).map_err(anyhow::Error::msg)?);
        }
        for c in &self.claims {
            inputs.push(Input::parse(c, Role::Claims).map_err(anyhow::Error::msg)?);
        }
        if inputs.is_empty() {
            bail!("nothing to verify: give at least one --dispatch or --claims input");
        }
        if inputs.iter().filter(|i| i.path.is_none()).count() > 1 {
            bail!("stdin (-) can be given only once");
        }
        Ok(inputs)
    }

    pub fn timeouts(&self) -> anyhow::Result<ClaimTimeouts> {
        let mut timeouts = ClaimTimeouts::default();
        for spec in &self.claim_timeout {
            timeouts.apply(spec)?;
        }
        Ok(timeouts)
    }

    pub fn config(&self) -> anyhow::Result<crate::config::Config> {
        super::load_config(self.config.as_deref())
    }
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Only sessions of these orgs (repeatable).
    #[arg(long, value_name = "ID")]
    pub org: Vec<String>,
    /// Only sessions dispatched at or after this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only sessions dispatched before this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Fail if a selected session was dispatched to the other runner.
    #[arg(long, value_name = "RUNNER")]
    pub expect_runner: Option<ExpectRunner>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Write the report here instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Findings listed in the report (the total is always given).
    #[arg(long, default_value_t = 100)]
    pub max_findings: usize,
    /// Sessions held in memory at once; past it the oldest are judged early and counted.
    #[arg(long, default_value_t = 20_000_000)]
    pub max_sessions: usize,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ExpectRunner {
    Go,
    Ts,
}

pub(super) fn time_flag(name: &str, v: &Option<String>) -> anyhow::Result<Option<Timestamp>> {
    v.as_deref()
        .map(|s| {
            parse_rfc3339(s).with_context(|| format!("--{name} {s:?} is not an RFC 3339 time"))
        })
        .transpose()
}

impl VerifyArgs {
    fn options(&self) -> anyhow::Result<VerifyOptions> {
        let config = self.input.config()?;
        let timeouts = self.input.timeouts()?;
        if self.max_sessions == 0 {
            bail!("--max-sessions must be at least 1");
        }
        let selection = Selection {
            orgs: self.org.iter().cloned().collect(),
            since: time_flag("since", &self.since)?,
            until: time_flag("until", &self.until)?,
            expect_runner: self.expect_runner.map(|r| match r {
                ExpectRunner::Go => Runner::Go,
                ExpectRunner::Ts => Runner::Ts,
            }),
        };
        if let (Some(since), Some(until)) = (selection.since, selection.until)
            && since > until
        {
            bail!(
                "--since {} is later than --until {}: nothing could be selected",
                self.since.as_deref().unwrap_or_default(),
                self.until.as_deref().unwrap_or_default()
            );
        }
        Ok(VerifyOptions {
            parse: config.parse,
            correlate: CorrelateConfig {
                timeouts,
                max_sessions: self.max_sessions,
                expected_sessions: 0,
            },
            selection,
            max_findings: self.max_findings,
        })
    }
}

/// Runs the verification and writes the report; the report's verdict decides the exit code.
pub fn run(args: VerifyArgs) -> anyhow::Result<Report> {
    let inputs = args.input.inputs()?;
    let options = args.options()?;
    let read_bytes = Arc::new(AtomicU64::new(0));
    let bar = std::io::stderr()
        .is_terminal()
        .then(|| progress_bar(&inputs));
    let counter = read_bytes.clone();
    let mut tick = || {
        if let Some(b) = &bar {
            b.set_position(counter.load(Ordering::Relaxed));
        }
    };
    let report = verify(&inputs, &options, read_bytes.clone(), &mut tick)?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    write_output(args.output.as_deref(), &render(&report, args.format))?;
    Ok(report)
}

/// Writes a rendered report to `output`, or to stdout.
pub(super) fn write_output(output: Option<&std::path::Path>, rendered: &str) -> anyhow::Result<()> {
    match output {
        Some(path) => std::fs::write(path, rendered)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(rendered.as_bytes())
                .context("cannot write the report")?;
            out.flush().context("cannot write the report")?;
        }
    }
    Ok(())
}

pub(super) fn progress_bar(inputs: &[Input]) -> ProgressBar {
    let sizes: Option<u64> = inputs.iter().map(Input::size_on_disk).sum();
    let bar = match sizes {
        Some(total) => ProgressBar::new(total).with_style(
            ProgressStyle::with_template(
                "{spinner} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {wide_bar}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {bytes} {bytes_per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    bar
}
