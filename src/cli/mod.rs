//! cli: one short function per mode; flags become validated options here and nowhere else.

mod demo;
mod report;
mod serve;
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
    // Diagnostics go to stderr; `CLAIMCHECK_LOG` filters them (`debug`, `claimcheck=trace`, …).
    let filter = tracing_subscriber::EnvFilter::try_from_env("CLAIMCHECK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let result = match cli.command {
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
        Command::Demo(args) => demo::run(args).map(|()| ExitCode::SUCCESS),
        Command::Serve(args) => serve::run(args).map(|()| ExitCode::SUCCESS),
        Command::Simulate(args) => simulate::run(args).map(|()| ExitCode::SUCCESS),
    };
    result.unwrap_or_else(|e| {
        #[allow(clippy::print_stderr)] // the one place errors reach the user
        {
            eprintln!("claimcheck: error: {e:#}");
        }
        ExitCode::from(2)
    })
}
