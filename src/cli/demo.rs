//! `claimcheck demo`: `serve` on the embedded default (a SQLite file in a temporary
//! directory), fed by a simulated platform that writes its logs live, on the wall clock.
//!
//! The platform has been running for [`HISTORY`] when the demo starts (those lines are
//! written at once), then writes each line when its time comes. Two orgs migrate to go while
//! you watch: a healthy migration [`HEALTHY_AFTER`] in, a broken one (its sessions claimed by
//! ts workers, some by nobody) [`BROKEN_AFTER`] in. Each flip is handed to serve's own
//! reporter as it happens, as the platform's Postgres watcher would hand it over, so the
//! reports, `claimcheck_flip_verifications_total` and its alert work as in production. The
//! claim timeout and report window are short ([`CLAIM_TIMEOUT`], [`REPORT_WINDOW`]) so the
//! verdicts come within about a minute.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::mpsc;

use super::serve::{ServeArgs, serve};
use crate::clock::Clock;
use crate::config::{ClaimTimeouts, Config};
use crate::event::{Runner, Timestamp};
use crate::parse::{LineContext, Parsed, Parser};
use crate::simulate::{ScriptedFlip, SimConfig, generate};

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Address for the status page, metrics and API.
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub listen: std::net::SocketAddr,
    /// Seconds the simulated platform keeps dispatching (about 15 sessions a second) after
    /// the demo starts; at least 60, so both migrations' windows are full.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(60..=86_400))]
    pub seconds: u64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// How long the simulated platform has been running when the demo starts.
pub const HISTORY: Duration = Duration::from_secs(150);
/// The healthy migration, after the demo starts.
pub const HEALTHY_AFTER: Duration = Duration::from_secs(15);
/// The broken migration, after the demo starts.
pub const BROKEN_AFTER: Duration = Duration::from_secs(25);
/// The demo's claim timeout T (production default: 120 s).
pub const CLAIM_TIMEOUT: Duration = Duration::from_secs(10);
/// The window a post-flip report judges (production default: 30 min), and its grace.
pub const REPORT_WINDOW: Duration = Duration::from_secs(15);
pub const REPORT_GRACE: Duration = Duration::from_secs(3);
/// Dispatches a second at the start of the simulated day (the rate ebbs over hours).
const RATE: u64 = 15;

const FILES: [(&str, Option<&str>); 4] = [
    ("dispatch.log", None),
    ("vercel-drain.ndjson", None),
    ("go-daemon.log", Some("go")),
    ("ts-worker.log", Some("ts")),
];

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

pub fn run(args: DemoArgs, reload: super::signals::Reload) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("claimcheck-demo-{}", std::process::id()));
    let source = dir.join("platform");
    let live = dir.join("live");
    std::fs::create_dir_all(&live).with_context(|| format!("cannot create {}", live.display()))?;
    let clock = Clock::system();
    // Whole seconds, so the simulated times read well.
    let started = Timestamp(clock.now().millis() / 1000 * 1000);
    let at = |d: Duration| started.saturating_add_ms(millis(d));
    let script = vec![
        ScriptedFlip {
            at: at(HEALTHY_AFTER),
            broken: false,
        },
        ScriptedFlip {
            at: at(BROKEN_AFTER),
            broken: true,
        },
    ];
    let truth = generate(
        &SimConfig {
            sessions: (HISTORY.as_secs() + args.seconds) * RATE,
            seed: args.seed,
            claim_timeout: CLAIM_TIMEOUT,
            faults: false,
            start: started.saturating_add_ms(-millis(HISTORY)),
            script: Some(script.clone()),
            ..SimConfig::default()
        },
        &source,
    )
    .context("cannot simulate the platform")?;
    let flips: Vec<crate::platform::Flip> = truth
        .flips
        .iter()
        .zip(&script)
        .map(|(f, s)| crate::platform::Flip {
            org: f.org.clone(),
            from: Runner::Ts,
            to: Runner::Go,
            at: s.at,
            earliest: s.at,
            observed_at: s.at,
            cause: crate::platform::flags::FlipCause::Flag,
        })
        .collect();
    let mut config = Config::default();
    config.serve.listen = args.listen;
    config.serve.store = Some(dir.join("state.db").display().to_string());
    config.serve.timeouts = ClaimTimeouts::uniform(CLAIM_TIMEOUT);
    config.serve.report_window = REPORT_WINDOW;
    config.platform.drift_grace = REPORT_GRACE;
    config.serve.files = FILES
        .iter()
        .map(|(f, rt)| {
            let p = live.join(f).display().to_string();
            rt.map_or(p.clone(), |rt| format!("{rt}={p}"))
        })
        .collect();
    #[allow(clippy::print_stderr)] // the CLI talking to the person who started it
    {
        let org = |i: usize| flips.get(i).map_or("?", |f| f.org.as_str());
        eprintln!(
            "claimcheck demo: a simulated platform (running for {h} s already, then live for {s} s, \
             about {RATE} sessions a second) writes its logs into {}\n  \
             in {ok} s   org {} migrates to go cleanly\n  \
             in {bad} s   org {} migrates to go and breaks (ts workers keep claiming its sessions)\n  \
             each post-flip report follows about {due} s after its flip (claim timeout {t} s, \
             window {w} s: short for the demo)\n  \
             status page  http://{a}/\n  metrics      http://{a}/metrics\n  \
             reports      http://{a}/api/reports\n  findings     http://{a}/api/findings\n\
             Ctrl-C stops it.",
            live.display(),
            org(0),
            org(1),
            h = HISTORY.as_secs(),
            s = args.seconds,
            ok = HEALTHY_AFTER.as_secs(),
            bad = BROKEN_AFTER.as_secs(),
            due = 2 * REPORT_WINDOW.as_secs() + CLAIM_TIMEOUT.as_secs(),
            t = CLAIM_TIMEOUT.as_secs(),
            w = REPORT_WINDOW.as_secs(),
            a = args.listen,
        );
    }
    let serve_args = ServeArgs {
        config: None,
        listen: None,
        file: Vec::new(),
        dispatch: Vec::new(),
        claims: Vec::new(),
        stdin: None,
        claim_timeout: Vec::new(),
        max_sessions: None,
        ingest_token: None,
        metrics_token: None,
        api_token: None,
        store: None,
        vercel_secret: None,
        vercel_verify_code: None,
        alertmanager: None,
        tls_cert: None,
        tls_key: None,
        cluster: Vec::new(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let parser = Parser::new(config.parse.clone());
    let served = runtime.block_on(async move {
        let (flips_tx, flips_rx) = mpsc::channel(flips.len().max(1));
        let mut platform = tokio::task::JoinSet::new();
        let parser = std::sync::Arc::new(parser);
        for (f, _) in FILES {
            platform.spawn(write_live(
                parser.clone(),
                source.join(f),
                live.join(f),
                clock,
            ));
        }
        platform.spawn(flip_live(flips, flips_tx, clock));
        let served = serve(serve_args, config, reload, Some(flips_rx)).await;
        platform.abort_all();
        served
    });
    // Whatever still runs (a store call that never answers) is not waited for.
    runtime.shutdown_timeout(Duration::from_secs(1));
    // A demo leaves nothing behind when it is stopped.
    let _ = std::fs::remove_dir_all(&dir);
    served
}

/// Hands each flip to serve when its moment comes, as the platform watcher would.
async fn flip_live(
    flips: Vec<crate::platform::Flip>,
    to: mpsc::Sender<crate::platform::Flip>,
    clock: Clock,
) {
    for f in flips {
        sleep_until(&clock, f.at).await;
        tracing::info!(org = %f.org, from = f.from.as_str(), to = f.to.as_str(), "simulated platform: org flipped");
        if to.send(f).await.is_err() {
            return;
        }
    }
}

async fn sleep_until(clock: &Clock, t: Timestamp) {
    let wait = t.millis().saturating_sub(clock.now().millis());
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(u64::try_from(wait).unwrap_or(0))).await;
    }
}

/// Appends `from`'s lines to `to` as a running platform would: each line once the wall clock
/// reaches its event time (lines with no time go with the line before them).
async fn write_live(parser: std::sync::Arc<Parser>, from: PathBuf, to: PathBuf, clock: Clock) {
    let Ok(text) = std::fs::read(&from) else {
        return;
    };
    let ctx = LineContext::default();
    let mut chunk: Vec<&[u8]> = Vec::new();
    for line in text.split_inclusive(|&b| b == b'\n') {
        if let Parsed::Event(e) = parser.parse_line(line.trim_ascii_end(), &ctx)
            && e.time > clock.now()
        {
            if append(&to, &chunk).is_err() {
                return;
            }
            chunk.clear();
            sleep_until(&clock, e.time).await;
        }
        chunk.push(line);
    }
    let _ = append(&to, &chunk);
}

fn append(path: &Path, lines: &[&[u8]]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    for l in lines {
        f.write_all(l)?;
    }
    Ok(())
}
