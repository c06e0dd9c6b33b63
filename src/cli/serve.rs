//! `claimcheck serve`: the live sidecar. Sources — followed files and globs (rotation and
//! checkpoints), stdin, `POST /ingest/ndjson`, the Vercel drain — feed the actor, which
//! correlates live, commits to the store (SQLite or Postgres) when one is given, watches the
//! platform (Postgres flags, Redis queue) when configured, pushes per-finding alerts, writes
//! post-flip reports and answers the HTTP API, `/metrics` and the status page. This file
//! turns flags into the layered config and wires those tasks together.

use anyhow::{Context, bail};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::Config;
use crate::correlate::CorrelateConfig;
use crate::correlate::live::LiveConfig;
use crate::event::Runner;
use crate::http::{AppState, VercelDrain, router};
use crate::parse::Parser;
use crate::platform;
use crate::serve::Actor;
use crate::serve::cluster::ClusterHealth;
use crate::serve::store_health::StoreHealth;
use crate::sinks::alertmanager::AlertPusher;
use crate::sinks::self_metrics::{ClusterMetrics, QueueDepths, RecoveryMetrics, StoreMetrics};
use crate::sources::batch::Batch;
use crate::sources::file::FollowConfig;
use crate::sources::{Input, Role};
use crate::state::CorrelationState;
use crate::state::shared::SharedState;
use crate::state::shared::reports::SharedReports;
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// TOML config (`claimcheck.example.toml` lists every option); `CLAIMCHECK_<SECTION>_<KEY>`
    /// variables override its keys, flags override both.
    #[arg(long, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    /// Address for HTTP (metrics, API, ingest): `127.0.0.1:9464`, `localhost:9464`, `[::]:9464`
    /// [default: 127.0.0.1:9464].
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// Follow a log file (repeatable): `dispatch.log`, or `go=daemon.log` to give lines that
    /// name no runtime a default. Rotation (rename + create, copytruncate) is followed.
    #[arg(long, value_name = "[RUNTIME=]PATH")]
    pub file: Vec<String>,
    /// Follow the dispatcher's log (path or glob, repeatable): the same as `--file`.
    #[arg(long, value_name = "PATH")]
    pub dispatch: Vec<String>,
    /// Follow a worker log (path or glob, repeatable), `go=daemon-*.log` to give lines that
    /// name no runtime a default: the same as `--file`.
    #[arg(long, value_name = "[RUNTIME=]PATH")]
    pub claims: Vec<String>,
    /// Read log lines from stdin; lines that name no runtime get this one.
    #[arg(long, value_name = "RUNTIME")]
    pub stdin: Option<StdinRuntime>,
    /// Sessions held in memory at once; past it those whose latest evidence is oldest are
    /// judged early and dropped, counted in `claimcheck_sessions_evicted_total`
    /// [`serve.max_sessions`, default 1000000].
    #[arg(long, value_name = "N")]
    pub max_sessions: Option<usize>,
    /// Claim timeout T: `120s`, `2m`, or per runner `go=90s` (repeatable).
    #[arg(long, value_name = "DURATION")]
    pub claim_timeout: Vec<String>,
    /// Bearer token for `POST /ingest/ndjson` (without it the endpoint answers 401); also
    /// read from the file `CLAIMCHECK_INGEST_TOKEN_FILE` names.
    #[arg(long, env = "CLAIMCHECK_INGEST_TOKEN", hide_env_values = true)]
    pub ingest_token: Option<String>,
    /// Bearer token Prometheus must present on `GET /metrics` (its `authorization` scrape
    /// config); without it `/metrics` is open. Also read from `CLAIMCHECK_METRICS_TOKEN_FILE`.
    #[arg(long, env = "CLAIMCHECK_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// Bearer token for the API (`/api/*` and the status page `/`); without it they are open.
    /// Also read from `CLAIMCHECK_API_TOKEN_FILE`.
    #[arg(long, env = "CLAIMCHECK_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
    /// Durable state: a SQLite file path, a `sqlite://` URL or a `postgres://` URL
    /// [`serve.store`, `CLAIMCHECK_SERVE_STORE`]. Without it, state lives in memory and a
    /// restart starts over.
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Vercel drain secret: enables `POST /ingest/vercel` (bodies signed with it); also read
    /// from the file `CLAIMCHECK_VERCEL_SECRET_FILE` names.
    #[arg(long, env = "CLAIMCHECK_VERCEL_SECRET", hide_env_values = true)]
    pub vercel_secret: Option<String>,
    /// Code echoed in `x-vercel-verify` when Vercel checks the drain endpoint.
    #[arg(long, env = "CLAIMCHECK_VERCEL_VERIFY_CODE")]
    pub vercel_verify_code: Option<String>,
    /// Alertmanager base URL (`http://127.0.0.1:9093`): push per-finding alerts there; the
    /// rest of `[serve.alertmanager]` still applies [`CLAIMCHECK_SERVE_ALERTMANAGER_URL`].
    #[arg(long, value_name = "URL")]
    pub alertmanager: Option<String>,
    /// Serve HTTPS with this certificate chain (PEM), reloaded when it changes and on SIGHUP
    /// [`serve.tls.cert_file`, `CLAIMCHECK_SERVE_TLS_CERT_FILE`]; needs `--tls-key`.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<String>,
    /// The TLS certificate's private key (PEM) [`serve.tls.key_file`,
    /// `CLAIMCHECK_SERVE_TLS_KEY_FILE`].
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<String>,
    /// Correlate together with other sidecars on Redis: a Redis Cluster's seed node
    /// (repeatable) or one standalone server; the rest of `[cluster]` still applies
    /// [`cluster.urls`, `CLAIMCHECK_CLUSTER_URLS`]. Without it the state stays in the process.
    #[arg(long, value_name = "redis://HOST:PORT")]
    pub cluster: Vec<String>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum StdinRuntime {
    /// Dispatcher lines (no default runtime).
    Dispatch,
    Go,
    Ts,
}

impl ServeArgs {
    /// Flags over the layered file and environment, key by key: a flag replaces its key and
    /// nothing else (`--alertmanager` keeps the rest of `[serve.alertmanager]`); file
    /// options are appended to the file's.
    pub fn merge_into(&mut self, raw: &mut crate::config::RawConfig) {
        let sc = &mut raw.serve;
        if let Some(listen) = self.listen.take() {
            sc.listen = listen;
        }
        if let Some(n) = self.max_sessions.take() {
            sc.max_sessions = n;
        }
        if !self.claim_timeout.is_empty() {
            sc.claim_timeout = std::mem::take(&mut self.claim_timeout);
        }
        if let Some(store) = self.store.take() {
            sc.store = store;
        }
        if let Some(url) = self.alertmanager.take() {
            sc.alertmanager.url = url;
        }
        if let Some(cert) = self.tls_cert.take() {
            sc.tls.cert_file = cert;
        }
        if let Some(key) = self.tls_key.take() {
            sc.tls.key_file = key;
        }
        if !self.cluster.is_empty() {
            raw.cluster.get_or_insert_with(Default::default).urls =
                std::mem::take(&mut self.cluster);
        }
        sc.files.append(&mut self.dispatch);
        sc.files.append(&mut self.claims);
        sc.files.append(&mut self.file);
    }

    /// Secrets given as `CLAIMCHECK_*_FILE` (a mounted secret) when the flag and its
    /// variable are absent.
    fn secrets_from_files(&mut self) -> anyhow::Result<()> {
        for (slot, var) in [
            (&mut self.ingest_token, "CLAIMCHECK_INGEST_TOKEN_FILE"),
            (&mut self.vercel_secret, "CLAIMCHECK_VERCEL_SECRET_FILE"),
            (&mut self.metrics_token, "CLAIMCHECK_METRICS_TOKEN_FILE"),
            (&mut self.api_token, "CLAIMCHECK_API_TOKEN_FILE"),
        ] {
            if slot.is_none()
                && let Some(path) = std::env::var_os(var)
            {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("{var}: cannot read {}", path.to_string_lossy()))?;
                *slot = Some(text.trim_end_matches(['\n', '\r']).to_owned());
            }
        }
        Ok(())
    }
}

pub fn run(mut args: ServeArgs, reload: super::signals::Reload) -> anyhow::Result<()> {
    let mut layered = super::load_raw(args.config.as_deref())?;
    args.merge_into(&mut layered.raw);
    args.secrets_from_files()?;
    let config = Config::from_raw(&layered.raw);
    let config = match &args.config {
        Some(p) => {
            config.with_context(|| format!("in {} (with flags and environment)", p.display()))?
        }
        None => config?,
    };
    let sc = &config.serve;
    if args.stdin.is_none()
        && args.ingest_token.is_none()
        && sc.files.is_empty()
        && args.vercel_secret.is_none()
    {
        bail!(
            "nothing to ingest: give --dispatch/--claims/--file, --stdin RUNTIME or --ingest-token (for POST /ingest/ndjson)"
        );
    }
    no_huge_pages();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(serve(args, config, reload, None));
    // Whatever still runs (a store call that never answers) is not waited for.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}

/// Turns transparent huge pages off for this process. mimalloc advises its memory for huge
/// pages, and `main.rs` has it give freed pages back soon, so a batch buffer allocated
/// again was faulted in as a 2 MiB page the kernel zeroed whole: 13 % of the CPU a tailed
/// line (docs/speed-history.md). `verify` keeps them. `prctl` rather than mimalloc's `allow_thp`
/// option: mimalloc makes this same call for it only when the option is read as the
/// allocator starts, before `main` (`MIMALLOC_ALLOW_THP=0` in the environment); set later, it
/// only stops advising memory reserved from then on.
fn no_huge_pages() {
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::debug!(error = %e, "cannot turn transparent huge pages off");
    }
}

fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Runs serve until SIGTERM/SIGINT. `flips` are flips detected outside serve (the demo's
/// simulated platform), reported like those of the platform's Postgres watcher.
pub(super) async fn serve(
    args: ServeArgs,
    config: Config,
    reload: super::signals::Reload,
    flips: Option<mpsc::Receiver<platform::Flip>>,
) -> anyhow::Result<()> {
    // Before anything can say "serving": from here SIGHUP reloads instead of killing.
    let signals = super::signals::Signals::install();
    let registry = prometheus::Registry::new();
    let sc = &config.serve;
    let live = LiveConfig {
        correlate: CorrelateConfig {
            timeouts: sc.timeouts,
            max_sessions: sc.max_sessions,
            ..CorrelateConfig::default()
        },
        orphan_grace_ms: millis(sc.orphan_grace),
        retention_ms: millis(sc.retention),
        allowed_lateness_ms: millis(sc.allowed_lateness),
        idle_after_ms: millis(sc.source_idle_after),
        max_hold_ms: millis(sc.max_hold),
    };
    let parser = Parser::new(config.parse.clone());
    let Some(cluster) = &config.cluster else {
        let (actor, summary) =
            Actor::new(parser, live, &registry, Clock::system(), sc.org_label_cap)
                .context("cannot register metrics")?;
        return serve_with(
            args, config, reload, flips, signals, registry, actor, summary, None,
        )
        .await;
    };
    let instance = match cluster.instance.as_str() {
        "" => host_name().unwrap_or_else(|| sc.listen.to_string()),
        name => name.to_owned(),
    };
    let shared = cluster.shared(instance.clone());
    tracing::info!(
        urls = ?shared.urls.iter().map(|u| crate::redact::secrets(u).into_owned()).collect::<Vec<_>>(),
        instance = %instance,
        key_prefix = %shared.prefix,
        wait_replicas = shared.wait.map_or(0, |w| w.replicas),
        "correlating on the shared state"
    );
    // With the state shared, so are flips and reports: every replica answers the same.
    let reports =
        SharedReports::new(&shared, millis(sc.retention)).context("[cluster] key_prefix")?;
    let state = SharedState::new(live, shared).context("[cluster] key_prefix")?;
    let (mut actor, summary) =
        Actor::with_state(parser, state, &registry, Clock::system(), sc.org_label_cap)
            .context("cannot register metrics")?;
    let metrics =
        ClusterMetrics::register(&registry).context("cannot register the cluster metrics")?;
    let (health, cluster_state) = ClusterHealth::new(instance, metrics, Clock::system());
    actor.report_cluster_to(health);
    serve_with(
        args,
        config,
        reload,
        flips,
        signals,
        registry,
        actor,
        summary,
        Some((cluster_state, reports)),
    )
    .await
}

/// The host's name, the default name of a replica (`[cluster] instance`).
fn host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.replace(['/', '{', '}'], "_"))
}

/// Serve with `actor` over its correlation state: the store, the platform, the sources and
/// HTTP wired to it, until SIGTERM/SIGINT.
#[allow(clippy::too_many_arguments)]
async fn serve_with<S: CorrelationState + 'static>(
    args: ServeArgs,
    config: Config,
    mut reload: super::signals::Reload,
    mut flips: Option<mpsc::Receiver<platform::Flip>>,
    signals: super::signals::Signals,
    registry: prometheus::Registry,
    mut actor: Actor<S>,
    summary: tokio::sync::watch::Receiver<crate::serve::Summary>,
    cluster: Option<(
        tokio::sync::watch::Receiver<crate::serve::cluster::ClusterState>,
        SharedReports,
    )>,
) -> anyhow::Result<()> {
    let (cluster, mut shared_reports) = cluster.map_or((None, None), |(c, r)| (Some(c), Some(r)));
    let sc = &config.serve;
    // The one rule for over-long lines, for the readers that skip them.
    let limit = Parser::new(config.parse.clone()).line_limit().clone();
    let shutdown = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    let store = match &sc.store {
        Some(url) => Some(open_store(url).await?),
        None => None,
    };
    let readiness = attach_platform(
        &config,
        &registry,
        store.as_ref(),
        &mut actor,
        &mut tasks,
        &shutdown,
    )
    .await?;
    // The replay itself runs inside the actor once it starts, while HTTP answers.
    let recovery = match &store {
        Some(store) => {
            let metrics = RecoveryMetrics::register(&registry)
                .context("cannot register the recovery metrics")?;
            Some(
                actor
                    .recover(store.clone(), Some(metrics))
                    .await
                    .context("cannot recover state from the store")?,
            )
        }
        None => None,
    };
    // Followed files are read from their start (or their checkpoint): until each source has
    // caught up, judgements wait for all the evidence.
    let (mut follows, runtimes) = file_sources(&sc.files, &limit, sc.close_inactive)?;
    follows.retention = sc.retention;
    actor.catching_up(follows.patterns.iter().cloned()).await;
    let checkpoints = match &store {
        Some(s) => s
            .checkpoints()
            .await
            .context("cannot read file checkpoints from the store")?,
        None => Vec::new(),
    };
    let file_metrics = crate::sources::file::FileMetrics::register(&registry)
        .context("cannot register the file metrics")?;
    // Batches waiting for the actor: enough for sources to read ahead while a commit runs,
    // few enough that a backlog waits in its files, not in memory (≤ 8 MiB of file lines).
    let (tx, rx) = mpsc::channel::<Batch>(8);
    let mut alert_handle = None;
    if let Some(am) = &sc.alertmanager {
        tracing::info!(url = %crate::redact::secrets(am.url.as_str()), "pushing per-finding alerts to Alertmanager");
        let (pusher, handle) = AlertPusher::new(am.clone(), &registry, Clock::system())
            .context("cannot register the Alertmanager metrics")?;
        tasks.spawn(pusher.run(shutdown.clone()));
        actor.alert_to(handle.clone());
        alert_handle = Some(handle);
    }
    let pending_reports = match &store {
        Some(store) => {
            let auto = crate::flip::auto::AutoConfig {
                window_ms: millis(sc.report_window),
                grace_ms: millis(config.platform.drift_grace),
                timeouts: sc.timeouts,
            };
            let (mut reporter, flips_tx, pending) = crate::flip::auto::Reporter::new(
                store.clone(),
                Parser::new(config.parse.clone()),
                auto,
                Clock::system(),
                &registry,
            )
            .context("cannot register the report metrics")?;
            if let Some(h) = &alert_handle {
                reporter.alert_to(h.clone());
            }
            if let Some(shared) = shared_reports.take() {
                reporter.share(shared);
            }
            tasks.spawn(reporter.run(shutdown.clone()));
            if let Some(mut outside) = flips.take() {
                let (to, stop) = (flips_tx.clone(), shutdown.clone());
                tasks.spawn(async move {
                    loop {
                        let f = tokio::select! {
                            () = stop.cancelled() => return,
                            f = outside.recv() => f,
                        };
                        let Some(f) = f else { return };
                        if to.send(f).await.is_err() {
                            return;
                        }
                    }
                });
            }
            actor.report_flips_to(flips_tx);
            Some(pending)
        }
        None => None,
    };
    let (query_tx, query_rx) = mpsc::channel(16);
    let mut queues = vec![
        ("batches", QueueDepths::probe(&tx)),
        ("queries", QueueDepths::probe(&query_tx)),
    ];
    if let Some(h) = &alert_handle {
        queues.push(("alerts", h.depth_probe()));
    }
    QueueDepths::register(&registry, queues).context("cannot register the queue metrics")?;
    let store_metrics =
        StoreMetrics::register(&registry).context("cannot register the store metrics")?;
    let store_health = match &store {
        Some(store) => {
            let (health, state) = StoreHealth::new(
                store.backend(),
                Some(store_metrics.clone()),
                Clock::system(),
            );
            tasks.spawn(crate::serve::store_health::probe(
                store.clone(),
                health.clone(),
                std::time::Duration::from_secs(1),
                shutdown.clone(),
            ));
            actor.report_store_health(health);
            Some(state)
        }
        None => None,
    };
    actor.shutdown_within(sc.shutdown_grace);
    actor.retire_workers_after(sc.worker_series_ttl);
    tasks.spawn(actor.run(rx, query_rx, shutdown.clone()));
    if let Some(rt) = args.stdin {
        let runtime = match rt {
            StdinRuntime::Dispatch => None,
            StdinRuntime::Go => Some(Runner::Go),
            StdinRuntime::Ts => Some(Runner::Ts),
        };
        tasks.spawn(read_stdin(
            tx.clone(),
            runtime,
            limit.clone(),
            shutdown.clone(),
        ));
    }
    if !follows.patterns.is_empty() {
        tasks.spawn(crate::sources::file::follow::run(
            follows,
            runtimes,
            checkpoints,
            file_metrics.clone(),
            tx.clone(),
            shutdown.clone(),
        ));
    }
    let state = AppState {
        registry,
        batches: tx,
        queries: query_tx,
        summary,
        ingest_token: args.ingest_token,
        vercel: args.vercel_secret.map(|secret| VercelDrain {
            secret,
            verify_code: args.vercel_verify_code.unwrap_or_default(),
        }),
        readiness,
        store_health,
        cluster,
        recovery,
        store: store.clone(),
        pending_reports,
        summary_slots: std::sync::Arc::new(tokio::sync::Semaphore::new(crate::http::SUMMARY_SLOTS)),
        http: sc.http.clone(),
        access: crate::http::auth::Access {
            metrics: args.metrics_token.map(Into::into),
            api: args.api_token.map(Into::into),
        },
    };
    let tls = match &sc.tls {
        Some(tc) => {
            let metrics = crate::http::tls::TlsMetrics::register(&state.registry)
                .context("cannot register the TLS metrics")?;
            let certs = crate::http::tls::Certificates::open(tc.clone(), metrics)
                .context("cannot load the TLS certificate")?;
            tasks.spawn(certs.clone().watch(shutdown.clone()));
            reload.reload_tls(certs.clone());
            Some(certs.acceptor().context("cannot set up TLS")?)
        }
        None => None,
    };
    let listen_metrics = crate::http::listen::ListenMetrics::register(&state.registry)
        .context("cannot register the connection metrics")?;
    let listener = crate::http::listen::bind(sc.listen)
        .with_context(|| format!("cannot listen on {}", sc.listen))?;
    let bound = listener.local_addr().unwrap_or(sc.listen);
    tracing::info!(
        listen = %bound,
        tls = tls.is_some(),
        store = sc.store.is_some(),
        cluster = config.cluster.is_some(),
        files = sc.files.len(),
        "serving"
    );
    let stop = shutdown.clone();
    let app = crate::sinks::self_metrics::HttpMetrics::register(&state.registry)
        .context("cannot register the HTTP metrics")?
        .layer(router(state));
    crate::http::listen::serve(
        listener,
        app,
        sc.http.clone(),
        tls,
        listen_metrics,
        async move {
            signals.until_stopped(reload).await;
            tracing::info!("shutting down: flushing state");
            stop.cancel();
        },
    )
    .await;
    shutdown.cancel();
    // Commits stop trying a little before the grace ends; this is the backstop.
    let grace = sc.shutdown_grace;
    let joined =
        tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    if joined.is_err() {
        tracing::error!(
            grace = ?grace,
            "the shutdown grace ran out with tasks still running; exiting without them (nothing they held was acknowledged)"
        );
        tasks.abort_all();
    }
    tracing::info!("stopped");
    Ok(())
}

/// Opens the store, saying where (without its password) and giving up with a message when
/// it does not answer, instead of waiting silently.
async fn open_store(url: &str) -> anyhow::Result<Store> {
    const DEADLINE: std::time::Duration = std::time::Duration::from_secs(15);
    let shown = crate::redact::secrets(url);
    tracing::info!(store = %shown, "opening the store");
    match tokio::time::timeout(DEADLINE, Store::open(url)).await {
        Ok(Ok(store)) => Ok(store),
        Ok(Err(e)) => Err(anyhow::Error::from(e).context(format!("cannot open the store {shown}"))),
        Err(_) => bail!("cannot open the store {shown}: no answer within {DEADLINE:?}"),
    }
}

/// Starts the platform tasks (Postgres flags and sessions, Redis queue) when configured and
/// joins them to the actor, restoring the flag book from the store.
async fn attach_platform<S: CorrelationState>(
    config: &Config,
    registry: &prometheus::Registry,
    store: Option<&Store>,
    actor: &mut Actor<S>,
    tasks: &mut tokio::task::JoinSet<()>,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<tokio::sync::watch::Receiver<platform::Readiness>>> {
    let pc = &config.platform;
    if pc.postgres.is_none() && pc.redis.is_none() {
        return Ok(None);
    }
    let saved = match store {
        Some(s) => match s.state(crate::serve::PLATFORM_BOOK).await? {
            Some(json) => Some(serde_json::from_str(&json).context("stored flag book")?),
            None => None,
        },
        None => None,
    };
    let metrics = platform::PlatformMetrics::new(registry).context("platform metrics")?;
    let clock = Clock::system();
    // Sessions created since the oldest dispatch evidence kept are checked against the logs.
    let horizon = clock
        .now()
        .saturating_add_ms(-millis(config.serve.retention));
    let handle = platform::spawn(pc, metrics.clone(), clock, horizon, tasks, shutdown.clone());
    let p = platform::Platform::new(pc, metrics, handle.requests, saved, horizon);
    actor.attach_platform(p, handle.updates);
    tracing::info!(
        postgres = pc.postgres.is_some(),
        redis = pc.redis.is_some(),
        "platform integrations on"
    );
    Ok(Some(handle.readiness))
}

/// What to follow: each `[RUNTIME=]PATH_OR_GLOB`'s pattern (also its source label), in one
/// follower (a file two patterns match is followed once), and the runtime each pattern's
/// lines default to.
fn file_sources(
    specs: &[String],
    limit: &crate::overlong::LineLimit,
    close_inactive: std::time::Duration,
) -> anyhow::Result<(FollowConfig, Vec<Option<Runner>>)> {
    let mut cfg = FollowConfig::new("", limit.clone());
    cfg.patterns.clear();
    cfg.close_inactive = close_inactive;
    let mut runtimes = Vec::new();
    for spec in specs {
        let input = Input::parse(spec, Role::Claims).map_err(anyhow::Error::msg)?;
        let Some(path) = input.path else {
            bail!("--file needs a path; use --stdin for stdin")
        };
        let pattern = path.to_string_lossy().into_owned();
        glob::Pattern::new(&pattern)
            .with_context(|| format!("--file {pattern:?} is not a valid glob"))?;
        cfg.patterns.push(pattern);
        runtimes.push(input.default_runtime);
    }
    Ok((cfg, runtimes))
}

/// Sends stdin on in batches of what each read brought, cut into lines in bounded memory
/// (an over-long line is skipped and judged as the file sources and `verify` judge it).
async fn read_stdin(
    tx: mpsc::Sender<Batch>,
    runtime: Option<Runner>,
    limit: crate::overlong::LineLimit,
    shutdown: CancellationToken,
) {
    use tokio::io::AsyncReadExt;
    let mut stdin = tokio::io::stdin();
    let mut cutter = crate::sources::lines::Cutter::new(limit);
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let read = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = stdin.read(&mut buf) => r,
        };
        let mut cut = crate::sources::lines::Cut::default();
        let eof = match read {
            Ok(n) if n > 0 => {
                cutter.push(&buf[..n], &mut cut);
                false
            }
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read stdin: no more lines from it");
                true
            }
        };
        if eof {
            cutter.finish(&mut cut);
        }
        let batch = Batch::of_cut("stdin", runtime, cut);
        if !batch.is_empty() && tx.send(batch).await.is_err() {
            break;
        }
        if eof {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    /// A flag replaces its key only: `--alertmanager` keeps `external_url` and the rest of
    /// `[serve.alertmanager]`; files add to the file's; `--listen` takes a host name.
    #[test]
    fn flags_merge_into_their_tables() {
        let cli = crate::cli::Cli::try_parse_from([
            "claimcheck",
            "serve",
            "--alertmanager",
            "http://am.flag:9093",
            "--listen",
            "localhost:9999",
            "--claims",
            "go=daemon.log",
            "--claim-timeout",
            "go=90s",
            "--cluster",
            "redis://flag-0:7000",
            "--cluster",
            "redis://flag-1:7000",
        ])
        .unwrap();
        let crate::cli::Command::Serve(mut args) = cli.command else {
            panic!("not serve")
        };
        let file = "[serve]\nfiles = [\"dispatch.log\"]\nretention = \"2h\"\n\
                    [serve.alertmanager]\nurl = \"http://am.file:9093\"\nexternal_url = \"http://cc.example\"\nresend_interval = \"30s\"\n\
                    [cluster]\nurls = [\"redis://file:7000\"]\ninstance = \"claims-0\"\n";
        let mut raw: crate::config::RawConfig = toml::from_str(file).unwrap();
        args.merge_into(&mut raw);
        let c = crate::config::Config::from_raw(&raw).unwrap();
        let am = c.serve.alertmanager.unwrap();
        assert_eq!(am.url.as_str(), "http://am.flag:9093/");
        assert_eq!(am.generator_base.as_deref(), Some("http://cc.example"));
        assert_eq!(am.resend_interval, std::time::Duration::from_secs(30));
        assert_eq!(c.serve.files, ["dispatch.log", "go=daemon.log"]);
        assert_eq!(c.serve.listen.port(), 9999);
        assert_eq!(c.serve.timeouts.go, std::time::Duration::from_secs(90));
        assert_eq!(c.serve.retention, std::time::Duration::from_secs(7200));
        let cluster = c.cluster.unwrap();
        assert_eq!(cluster.urls, ["redis://flag-0:7000", "redis://flag-1:7000"]);
        assert_eq!(cluster.instance, "claims-0");
    }
}
