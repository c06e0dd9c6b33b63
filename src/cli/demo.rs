//! `claimcheck demo`: `serve` on the embedded default (a SQLite file in a temporary
//! directory), fed by a simulated platform that writes its logs live — flips, faults and all.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use super::serve::{ServeArgs, serve};
use crate::config::Config;
use crate::simulate::{SimConfig, generate};

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Address for the status page, metrics and API.
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub listen: std::net::SocketAddr,
    /// Sessions the simulated platform dispatches.
    #[arg(long, default_value_t = 20_000)]
    pub sessions: u64,
    /// Seconds over which the platform writes its logs.
    #[arg(long, default_value_t = 120)]
    pub seconds: u64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

const FILES: [(&str, Option<&str>); 4] = [
    ("dispatch.log", None),
    ("vercel-drain.ndjson", None),
    ("go-daemon.log", Some("go")),
    ("ts-worker.log", Some("ts")),
];

pub fn run(args: DemoArgs, reload: super::signals::Reload) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("claimcheck-demo-{}", std::process::id()));
    let source = dir.join("platform");
    let live = dir.join("live");
    std::fs::create_dir_all(&live).with_context(|| format!("cannot create {}", live.display()))?;
    let truth = generate(
        &SimConfig {
            sessions: args.sessions,
            seed: args.seed,
            ..SimConfig::default()
        },
        &source,
    )
    .context("cannot simulate the platform")?;
    let mut config = Config::default();
    config.serve.listen = args.listen;
    config.serve.store = Some(dir.join("state.db").display().to_string());
    config.serve.files = FILES
        .iter()
        .map(|(f, rt)| {
            let p = live.join(f).display().to_string();
            rt.map_or(p.clone(), |rt| format!("{rt}={p}"))
        })
        .collect();
    #[allow(clippy::print_stderr)] // the CLI talking to the person who started it
    {
        eprintln!(
            "claimcheck demo: a simulated platform writes {} sessions into {} over {} s\n  \
             status page  http://{a}/\n  metrics      http://{a}/metrics\n  \
             summary      http://{a}/api/summary\n  findings     http://{a}/api/findings\n  \
             reports      http://{a}/api/reports (once the platform has written everything)\n\
             Ctrl-C stops it.",
            args.sessions,
            live.display(),
            args.seconds,
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
        ingest_token: None,
        metrics_token: None,
        api_token: None,
        store: None,
        vercel_secret: None,
        vercel_verify_code: None,
        alertmanager: None,
        tls_cert: None,
        tls_key: None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (from, to) = (source.clone(), live.clone());
    let store_url = config.serve.store.clone().unwrap_or_default();
    let parse = config.parse.clone();
    let served = runtime.block_on(async move {
        let mut writers = tokio::task::JoinSet::new();
        for (f, _) in FILES {
            writers.spawn(write_live(
                from.join(f),
                to.join(f),
                Duration::from_secs(args.seconds.max(1)),
            ));
        }
        tokio::spawn(async move {
            while writers.join_next().await.is_some() {}
            // The platform has written everything; give serve a moment to read the tail.
            tokio::time::sleep(Duration::from_secs(3)).await;
            demo_reports(&store_url, parse, &truth.flips, args.listen).await;
        });
        serve(serve_args, config, reload).await
    });
    // A demo leaves nothing behind when it is stopped.
    let _ = std::fs::remove_dir_all(&dir);
    served
}

/// The post-flip reports of the simulated flips, from serve's store (the demo has no
/// Postgres to detect them, so the simulation's own record of them stands in).
async fn demo_reports(
    store_url: &str,
    parse: crate::config::ParseConfig,
    flips: &[crate::simulate::Flip],
    listen: std::net::SocketAddr,
) {
    use crate::event::{Runner, Timestamp};
    use crate::flip::auto::{AutoConfig, report_flip, report_id};
    let Ok(store) = crate::store::Store::open(store_url).await else {
        return;
    };
    let parser = crate::parse::Parser::new(parse);
    let config = AutoConfig {
        window_ms: 2 * 60 * 1000,
        grace_ms: 30 * 1000,
        timeouts: crate::config::ClaimTimeouts::default(),
    };
    let now = crate::clock::Clock::system().now();
    for f in flips {
        let Some(at) = crate::parse::time::parse_rfc3339(&f.at) else {
            continue;
        };
        let flip = crate::platform::Flip {
            org: f.org.clone(),
            from: Runner::from_value(&f.from),
            to: Runner::from_value(&f.to),
            at,
            earliest: at,
            observed_at: at,
            cause: crate::platform::flags::FlipCause::Flag,
        };
        let id = report_id(&f.org, at);
        if let Ok(r) = report_flip(
            &store,
            &parser,
            &config,
            &flip,
            &id,
            Timestamp(now.millis()),
        )
        .await
        {
            tracing::info!(
                org = %f.org,
                verdict = r.verdict.as_str(),
                "post-flip report: http://{listen}/api/reports/{id}.html"
            );
        }
    }
}

/// Appends `from`'s lines to `to` evenly over `over`, as a running platform would.
async fn write_live(from: PathBuf, to: PathBuf, over: Duration) {
    let Ok(text) = std::fs::read(&from) else {
        return;
    };
    let lines: Vec<&[u8]> = text.split_inclusive(|&b| b == b'\n').collect();
    let steps = (over.as_millis() / 100).max(1) as usize;
    let per_step = lines.len().div_ceil(steps).max(1);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    for chunk in lines.chunks(per_step) {
        tick.tick().await;
        if append(&to, chunk).is_err() {
            return;
        }
    }
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
