//! cli: one short function per mode; flags become validated options here and nowhere else.

mod demo;
pub mod logging;
mod report;
mod serve;
mod signals;
mod simulate;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::report::Verdict;

/// Proves that every dispatched agent session was claimed by the runtime it was dispatched to.
#[derive(Debug, Parser)]
#[command(name = "claimcheck", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    log: LogArgs,
}

/// Flags over the `[log]` table (every mode).
#[derive(Debug, Clone, clap::Args)]
struct LogArgs {
    /// Log lines as `text` or `json` (one object per line) [default: text].
    #[arg(long, global = true, value_enum, env = "CLAIMCHECK_LOG_FORMAT")]
    log_format: Option<crate::config::LogFormat>,
    /// Log filter: `info`, `debug`, `info,claimcheck=debug` [default: info; also `CLAIMCHECK_LOG`].
    #[arg(
        long,
        global = true,
        value_name = "FILTER",
        env = "CLAIMCHECK_LOG_LEVEL"
    )]
    log_level: Option<String>,
    /// Write logs to this file instead of stderr (reopened on SIGHUP).
    #[arg(long, global = true, value_name = "PATH", env = "CLAIMCHECK_LOG_FILE")]
    log_file: Option<std::path::PathBuf>,
}

impl LogArgs {
    /// Merges the flags into the file's `[log]` table, then validates it.
    fn apply(
        &self,
        mut raw: crate::config::RawLogConfig,
    ) -> anyhow::Result<crate::config::LogConfig> {
        if let Some(f) = self.log_format {
            raw.format = match f {
                crate::config::LogFormat::Text => "text".into(),
                crate::config::LogFormat::Json => "json".into(),
            };
        }
        match (&self.log_level, std::env::var("CLAIMCHECK_LOG")) {
            (Some(level), _) => raw.level.clone_from(level),
            (None, Ok(level)) if !level.is_empty() => raw.level = level,
            _ => {}
        }
        if let Some(p) = &self.log_file {
            raw.file = p.display().to_string();
        }
        Ok(crate::config::LogConfig::new(&raw)?)
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Verify exported dispatcher and worker logs; exit 0 pass, 1 fail or inconclusive, 2 error.
    Verify(verify::VerifyArgs),
    /// Post-flip (or rollback) verification report for one org; exit 0 pass, 1 fail,
    /// 3 inconclusive, 2 error.
    Report(report::ReportArgs),
    /// Run serve on an embedded default, fed by a simulated platform writing its logs live.
    Demo(demo::DemoArgs),
    /// Run the live sidecar: correlate as lines arrive, serve metrics and the API.
    Serve(serve::ServeArgs),
    /// Write a realistic platform workload with injected faults and its ground truth.
    Simulate(simulate::SimulateArgs),
}

/// The `--config` file, or the defaults without one.
fn load_config(path: Option<&std::path::Path>) -> anyhow::Result<crate::config::Config> {
    use anyhow::Context;
    let Some(p) = path else {
        return Ok(crate::config::Config::default());
    };
    let text = std::fs::read_to_string(p)
        .with_context(|| format!("cannot read config {}", p.display()))?;
    crate::config::Config::from_toml(&text).with_context(|| format!("in {}", p.display()))
}

/// Exit codes: 0 pass, 1 verification failed (or, for verify, inconclusive), 2 usage or I/O
/// error, 3 report inconclusive.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let result = start_logging(&cli).and_then(|log| run(cli.command, log));
    result.unwrap_or_else(|e| {
        #[allow(clippy::print_stderr)] // the one place errors reach the user
        {
            eprintln!("claimcheck: error: {e:#}");
        }
        ExitCode::from(2)
    })
}

/// The `[log]` table of the command's config file (if it has one) under the log flags.
fn start_logging(cli: &Cli) -> anyhow::Result<signals::Reload> {
    let path = match &cli.command {
        Command::Serve(a) => a.config.as_deref(),
        _ => None,
    };
    let raw = match path {
        Some(p) => read_raw(p)?.log,
        None => crate::config::RawLogConfig::default(),
    };
    let handle = logging::init(&cli.log.apply(raw)?)?;
    Ok(signals::Reload::new(
        path.map(ToOwned::to_owned),
        cli.log.clone(),
        handle,
    ))
}

/// The config file, parsed but not validated.
fn read_raw(p: &std::path::Path) -> anyhow::Result<crate::config::RawConfig> {
    use anyhow::Context;
    let text = std::fs::read_to_string(p)
        .with_context(|| format!("cannot read config {}", p.display()))?;
    toml::from_str(&text)
        .map_err(crate::config::ConfigError::from)
        .with_context(|| format!("in {}", p.display()))
}

fn run(command: Command, log: signals::Reload) -> anyhow::Result<ExitCode> {
    match command {
        Command::Verify(args) => verify::run(args).map(|r| match r.verdict {
            Verdict::Pass => ExitCode::SUCCESS,
            Verdict::Fail | Verdict::Inconclusive => ExitCode::from(1),
        }),
        // Inconclusive is never 0, and not 1 either: a rollout gate waits and re-runs on 3,
        // rolls back on 1.
        Command::Report(args) => report::run(args).map(|r| match r.verdict {
            Verdict::Pass => ExitCode::SUCCESS,
            Verdict::Fail => ExitCode::from(1),
            Verdict::Inconclusive => ExitCode::from(3),
        }),
        Command::Demo(args) => demo::run(args, log).map(|()| ExitCode::SUCCESS),
        Command::Serve(args) => serve::run(args, log).map(|()| ExitCode::SUCCESS),
        Command::Simulate(args) => simulate::run(args).map(|()| ExitCode::SUCCESS),
    }
}
