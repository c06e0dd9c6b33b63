//! cli: one short function per mode; flags become validated options here and nowhere else.

mod check_config;
mod demo;
mod generate;
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
    /// Log lines as `text` or `json` (one object per line) [default: text; `[log] format`,
    /// `CLAIMCHECK_LOG_FORMAT`].
    #[arg(long, global = true, value_enum)]
    log_format: Option<crate::config::LogFormat>,
    /// Log filter: `info`, `debug`, `info,claimcheck=debug` [default: info; `[log] level`,
    /// `CLAIMCHECK_LOG_LEVEL`].
    #[arg(long, global = true, value_name = "FILTER")]
    log_level: Option<String>,
    /// Write logs to this file instead of stderr, reopened on SIGHUP [`[log] file`,
    /// `CLAIMCHECK_LOG_FILE`].
    #[arg(long, global = true, value_name = "PATH")]
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
        if let Some(level) = &self.log_level {
            raw.level.clone_from(level);
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
    /// Validate a config (file, then `CLAIMCHECK_*` environment) and print the effective
    /// result with secrets redacted; exit 0 valid, 2 invalid.
    CheckConfig(check_config::CheckConfigArgs),
    /// Print shell completions to stdout (`claimcheck completions bash > …`).
    Completions(generate::CompletionsArgs),
    /// Print the man page (roff) to stdout (`claimcheck man > claimcheck.1`).
    Man,
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
            eprintln!(
                "claimcheck: error: {}",
                crate::redact::secrets(&describe(&e))
            );
        }
        ExitCode::from(2)
    })
}

/// An error and its causes on one line, each cause once: a message that already quotes its
/// source (`cannot open x: No such file…`) is not followed by that source again.
pub fn describe(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if out.contains(&s) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&s);
    }
    out
}

/// The `[log]` table of the command's config file (if it has one) under the log flags.
fn start_logging(cli: &Cli) -> anyhow::Result<signals::Reload> {
    let path = match &cli.command {
        Command::Serve(a) => a.config.as_deref(),
        Command::CheckConfig(a) => a.file.as_deref(),
        Command::Verify(a) => a.input.config.as_deref(),
        _ => None,
    };
    let layered = load_raw(path)?;
    let handle = logging::init(&cli.log.apply(layered.raw.log)?)?;
    for var in &layered.unknown_env {
        tracing::warn!(var = %var, "environment variable names no config key; ignored");
    }
    Ok(signals::Reload::new(
        path.map(ToOwned::to_owned),
        cli.log.clone(),
        handle,
    ))
}

/// The config file (if any) under the `CLAIMCHECK_*` environment, merged, not yet validated.
fn load_raw(path: Option<&std::path::Path>) -> anyhow::Result<crate::config::layers::Layered> {
    use anyhow::Context;
    let text = match path {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .with_context(|| format!("cannot read config {}", p.display()))?,
        ),
        None => None,
    };
    // Variables that are not valid UTF-8 cannot be ours.
    let env: std::collections::BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| k.starts_with("CLAIMCHECK_"))
        .collect();
    let layered =
        crate::config::layers::layer(text.as_deref(), &env, |p: &str| std::fs::read_to_string(p));
    match path {
        Some(p) => layered.with_context(|| format!("in {}", p.display())),
        None => Ok(layered?),
    }
}

/// The layered config, validated (before any flag: for modes whose flags do not touch it).
fn load_config(path: Option<&std::path::Path>) -> anyhow::Result<crate::config::Config> {
    use anyhow::Context;
    let layered = load_raw(path)?;
    let config = crate::config::Config::from_raw(&layered.raw);
    match path {
        Some(p) => config.with_context(|| format!("in {}", p.display())),
        None => Ok(config?),
    }
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
        Command::CheckConfig(args) => check_config::run(args).map(|()| ExitCode::SUCCESS),
        Command::Completions(args) => generate::completions(args).map(|()| ExitCode::SUCCESS),
        Command::Man => generate::man().map(|()| ExitCode::SUCCESS),
    }
}
