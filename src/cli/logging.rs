//! Diagnostics: `tracing` to stderr (or a file), as text or one JSON object per line.
//!
//! In: the `[log]` table after layering (file → `CLAIMCHECK_LOG_*` → `--log-*` flags).
//! Out: a global subscriber and a [`LogHandle`] that SIGHUP uses to apply a changed level and
//! to reopen the log file (what logrotate's `postrotate` expects). Colour only when the
//! output is a terminal and `NO_COLOR` is unset: ANSI codes in a file or a pipe are noise.

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

use crate::config::{LogConfig, LogFormat};

/// What SIGHUP may change after start: the filter and the file (reopened, same path).
#[derive(Debug, Clone)]
pub struct LogHandle {
    filter: reload::Handle<EnvFilter, Registry>,
    level: Arc<Mutex<String>>,
    sink: Sink,
}

impl LogHandle {
    /// Applies `level` (an `EnvFilter` directive: `debug`, `info,sqlx=warn`); true when it
    /// differs from the level in force.
    pub fn set_level(&self, level: &str) -> anyhow::Result<bool> {
        let filter = EnvFilter::try_new(level).with_context(|| format!("log level {level:?}"))?;
        let mut current = self
            .level
            .lock()
            .map_err(|_| anyhow::anyhow!("log level lock"))?;
        if *current == level {
            return Ok(false);
        }
        self.filter
            .reload(filter)
            .context("cannot apply the log level")?;
        level.clone_into(&mut current);
        Ok(true)
    }

    /// Reopens the log file at its path (after logrotate moved it); a no-op on stderr.
    pub fn reopen(&self) -> anyhow::Result<()> {
        self.sink.reopen()
    }

    pub fn level(&self) -> String {
        self.level.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

/// Where lines go: stderr, or a file that can be reopened under the same path.
#[derive(Debug, Clone)]
struct Sink(Option<Arc<ReopenFile>>);

#[derive(Debug)]
struct ReopenFile {
    path: PathBuf,
    file: Mutex<File>,
}

fn open_append(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

impl Sink {
    fn reopen(&self) -> anyhow::Result<()> {
        let Some(f) = &self.0 else { return Ok(()) };
        let fresh = open_append(&f.path)
            .with_context(|| format!("cannot reopen the log file {}", f.path.display()))?;
        if let Ok(mut file) = f.file.lock() {
            *file = fresh;
        }
        Ok(())
    }
}

/// One line's writer: stderr, or the shared file (each event is written with one call).
#[derive(Debug)]
enum LineWriter {
    Stderr(std::io::Stderr),
    File(Arc<ReopenFile>),
}

impl Write for LineWriter {
    /// Every line loses its URL passwords on the way out (`crate::redact`): whatever an
    /// error quoted, no log shows a secret.
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let shown = crate::redact::secrets_in_bytes(buf);
        match self {
            LineWriter::Stderr(s) => s.write_all(&shown)?,
            LineWriter::File(f) => {
                if let Ok(mut file) = f.file.lock() {
                    file.write_all(&shown)?;
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            LineWriter::Stderr(s) => s.flush(),
            LineWriter::File(_) => Ok(()),
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Sink {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        match &self.0 {
            Some(f) => LineWriter::File(f.clone()),
            None => LineWriter::Stderr(std::io::stderr()),
        }
    }
}

/// Installs the global subscriber. `CLAIMCHECK_LOG` (the older name) is read as the level
/// when `[log] level` was not set by any layer.
pub fn init(config: &LogConfig) -> anyhow::Result<LogHandle> {
    let level = config.level.clone();
    let filter = EnvFilter::try_new(&level).with_context(|| format!("log level {level:?}"))?;
    let (filter, handle) = reload::Layer::new(filter);
    let sink = match &config.file {
        Some(path) => {
            let file = open_append(path)
                .with_context(|| format!("cannot open the log file {}", path.display()))?;
            Sink(Some(Arc::new(ReopenFile {
                path: path.clone(),
                file: Mutex::new(file),
            })))
        }
        None => Sink(None),
    };
    let colour = sink.0.is_none()
        && std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let registry = tracing_subscriber::registry().with(filter);
    // A second init (tests running `cli::main` twice) keeps the first subscriber.
    let _ = match config.format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(colour)
                    .with_writer(sink.clone()),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false)
                    .with_writer(sink.clone()),
            )
            .try_init(),
    };
    Ok(LogHandle {
        filter: handle,
        level: Arc::new(Mutex::new(level)),
        sink,
    })
}
