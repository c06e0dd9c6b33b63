//! The claim timeout `T` (PRODUCT.md §2), with an optional value per runner.

use std::time::Duration;

use crate::event::Runner;

/// A claim timeout that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("claim-timeout: {0}")]
pub struct ClaimTimeoutError(pub String);

/// The claim timeout `T`, with an optional value per runner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimTimeouts {
    pub go: Duration,
    pub ts: Duration,
    pub other: Duration,
}

impl ClaimTimeouts {
    pub const DEFAULT: Duration = Duration::from_secs(120);

    pub fn uniform(d: Duration) -> ClaimTimeouts {
        ClaimTimeouts {
            go: d,
            ts: d,
            other: d,
        }
    }

    pub fn for_runner(&self, r: Runner) -> Duration {
        match r {
            Runner::Go => self.go,
            Runner::Ts => self.ts,
            Runner::Other => self.other,
        }
    }

    pub fn millis(&self, r: Runner) -> i64 {
        i64::try_from(self.for_runner(r).as_millis()).unwrap_or(i64::MAX)
    }

    /// `120s` sets every runner; `go=90s` sets one. Later settings override earlier ones.
    pub fn apply(&mut self, spec: &str) -> Result<(), ClaimTimeoutError> {
        let invalid = ClaimTimeoutError;
        let (runner, value) = match spec.split_once('=') {
            Some((r, v)) => (Some(r), v),
            None => (None, spec),
        };
        let d = humantime::parse_duration(value).map_err(|e| invalid(format!("{value:?}: {e}")))?;
        if d.is_zero() {
            return Err(invalid(format!(
                "{value:?}: must be more than zero (every claim would be late)"
            )));
        }
        match runner {
            None => *self = ClaimTimeouts::uniform(d),
            Some("go") => self.go = d,
            Some("ts") => self.ts = d,
            Some(other) => return Err(invalid(format!("unknown runner {other:?} (go or ts)"))),
        }
        Ok(())
    }
}

impl Default for ClaimTimeouts {
    fn default() -> Self {
        ClaimTimeouts::uniform(Self::DEFAULT)
    }
}
