//! `claimcheck simulate`: write a workload and its truth, then say how to verify it.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use crate::simulate::{NoiseProfile, SimConfig, generate};

#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Directory to write the logs and truth.json into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Number of dispatched sessions.
    #[arg(long, default_value_t = 10_000)]
    pub sessions: u64,
    /// Seed: the same seed and size give byte-identical files.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// A clean platform: no injected faults, broken lines or outdated daemons.
    #[arg(long)]
    pub no_faults: bool,
    /// The noise around the events: `classic` (text and JSON, as the golden tests use) or
    /// `realistic` (adds the services' own JSON event lines, about ten lines per session; the
    /// speed comparison's workload). The truth is the same for both.
    #[arg(long, value_enum, default_value_t = Noise::Classic)]
    pub noise: Noise,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Noise {
    Classic,
    Realistic,
}

pub fn run(args: SimulateArgs) -> anyhow::Result<()> {
    let cfg = SimConfig {
        sessions: args.sessions,
        seed: args.seed,
        faults: !args.no_faults,
        noise: match args.noise {
            Noise::Classic => NoiseProfile::Classic,
            Noise::Realistic => NoiseProfile::Realistic,
        },
        ..SimConfig::default()
    };
    let truth = generate(&cfg, &args.out)
        .with_context(|| format!("cannot write the workload to {}", args.out.display()))?;
    let d = args.out.display();
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "wrote {} sessions ({} go, {} ts, {} other dispatches) to {d}; verify with:\n  \
         claimcheck verify --dispatch {d}/dispatch.log --dispatch {d}/vercel-drain.ndjson \
         --claims go={d}/go-daemon.log --claims ts={d}/ts-worker.log",
        truth.sessions,
        truth.totals.dispatched.go,
        truth.totals.dispatched.ts,
        truth.totals.dispatched.other,
    );
    Ok(())
}
