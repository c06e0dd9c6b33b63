//! The sidecar's only clock.

use crate::event::Timestamp;

/// The sidecar's clock: wall time at start plus tokio's monotonic time since, so tests that
/// pause tokio time control it completely.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    wall_at_start: Timestamp,
    started: tokio::time::Instant,
}

impl Clock {
    #[allow(clippy::disallowed_methods)] // the one place the sidecar reads the wall clock
    pub fn system() -> Clock {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Clock::starting_at(Timestamp(wall))
    }

    pub fn starting_at(wall: Timestamp) -> Clock {
        Clock {
            wall_at_start: wall,
            started: tokio::time::Instant::now(),
        }
    }

    pub fn now(&self) -> Timestamp {
        let ms = i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX);
        self.wall_at_start.saturating_add_ms(ms)
    }
}
