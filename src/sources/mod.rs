//! sources: bytes in, line-aligned chunks out. Sources never parse.
//!
//! An [`Input`] is a file or stdin, gzip-compressed or not (detected by its magic bytes, so a
//! `.gz` without the extension works too). [`ChunkReader`] cuts its stream into chunks of whole
//! lines and numbers them, so parsing can run on several cores and still cite `file:line`.

pub mod batch;
mod chunks;
pub mod file;
pub mod lines;

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use chunks::{Chunk, ChunkReader, Overlong, Spent};

use crate::event::Runner;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot open {path}: {source}")]
    Open { path: String, source: io::Error },
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: io::Error },
    #[error("cannot start a reader thread: {0}")]
    Thread(#[from] io::Error),
}

/// Which flag an input came from. Only the default runtime differs: every line of every input
/// is parsed the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Dispatch,
    Claims,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Dispatch => "dispatch",
            Role::Claims => "claims",
        }
    }
}

/// One input named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// `None` is stdin (`-`).
    pub path: Option<PathBuf>,
    pub role: Role,
    pub default_runtime: Option<Runner>,
}

impl Input {
    /// `PATH`, `-`, or for claims `RUNTIME=PATH` (`go=daemon.log`).
    pub fn parse(spec: &str, role: Role) -> Result<Input, String> {
        let (runtime, path) = match spec.split_once('=') {
            Some((r @ ("go" | "ts"), p)) if role == Role::Claims => {
                (Some(Runner::from_value(r)), p)
            }
            // `xx=daemon.log`: a runtime that does not exist, not a file named so.
            Some((r, _))
                if role == Role::Claims
                    && !r.is_empty()
                    && r.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                    && !std::path::Path::new(spec).exists() =>
            {
                return Err(format!("unknown runtime {r:?} in {spec:?} (go or ts)"));
            }
            _ => (None, spec),
        };
        if path.is_empty() {
            return Err(format!("empty path in {spec:?}"));
        }
        Ok(Input {
            path: (path != "-").then(|| PathBuf::from(path)),
            role,
            default_runtime: runtime,
        })
    }

    pub fn name(&self) -> String {
        match &self.path {
            Some(p) => p.display().to_string(),
            None => "<stdin>".into(),
        }
    }

    /// Size on disk, for the progress bar; `None` for stdin.
    pub fn size_on_disk(&self) -> Option<u64> {
        let p = self.path.as_ref()?;
        std::fs::metadata(p).ok().map(|m| m.len())
    }

    /// Opens the input, decompressing gzip transparently. `read_bytes` counts raw bytes read
    /// (before decompression), for progress.
    pub fn open(&self, read_bytes: Arc<AtomicU64>) -> Result<Box<dyn Read + Send>, SourceError> {
        let raw: Box<dyn Read + Send> = match &self.path {
            Some(p) => Box::new(File::open(p).map_err(|source| SourceError::Open {
                path: self.name(),
                source,
            })?),
            None => Box::new(io::stdin()),
        };
        let mut buffered = BufReader::with_capacity(
            1 << 16,
            Counting {
                inner: raw,
                read_bytes,
            },
        );
        let magic = buffered.fill_buf().map_err(|source| SourceError::Read {
            path: self.name(),
            source,
        })?;
        Ok(if magic.starts_with(&[0x1f, 0x8b]) {
            Box::new(flate2::bufread::MultiGzDecoder::new(buffered))
        } else {
            Box::new(buffered)
        })
    }
}

struct Counting<R> {
    inner: R,
    read_bytes: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read_bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_specs() {
        let i = Input::parse("go=/var/log/d.log", Role::Claims).unwrap();
        assert_eq!(i.default_runtime, Some(Runner::Go));
        assert_eq!(i.path, Some(PathBuf::from("/var/log/d.log")));
        let i = Input::parse("-", Role::Claims).unwrap();
        assert_eq!((i.path, i.default_runtime), (None, None));
        let i = Input::parse("ts=-", Role::Claims).unwrap();
        assert_eq!((i.path, i.default_runtime), (None, Some(Runner::Ts)));
        // a dispatch path may contain '=' and never sets a runtime
        let i = Input::parse("go=x.log", Role::Dispatch).unwrap();
        assert_eq!(i.path, Some(PathBuf::from("go=x.log")));
        assert!(Input::parse("go=", Role::Claims).is_err());
    }

    #[test]
    fn gzip_is_read_transparently() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let mut gz =
            flate2::write::GzEncoder::new(File::create(&path).unwrap(), Default::default());
        gz.write_all(b"hello\nworld\n").unwrap();
        gz.finish().unwrap();
        let input = Input {
            path: Some(path),
            role: Role::Claims,
            default_runtime: None,
        };
        let mut s = String::new();
        input
            .open(Arc::default())
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "hello\nworld\n");
    }
}
