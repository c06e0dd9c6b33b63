//! backoff: the one retry delay — capped exponential backoff with jitter — for every loop
//! that waits out a failing dependency (platform polls, store commits, the shared
//! correlation state).

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Capped exponential backoff: `min`, doubling to `max`, each delay drawn uniformly from its
/// upper half (jitter, so replicas do not reconnect in lockstep).
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
    seed: u64,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        Backoff {
            min,
            max: max.max(min),
            next: min,
            seed: seed | 1,
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.next;
        self.next = (self.next * 2).min(self.max);
        // xorshift: a cheap private random stream, no shared generator needed
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let half = ceiling / 2;
        let span = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
        half + Duration::from_millis(self.seed % (span + 1))
    }

    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let ceilings = [100, 200, 400, 800, 1000, 1000];
        for c in ceilings {
            let d = b.next_delay().as_millis() as u64;
            assert!(c / 2 <= d && d <= c, "{d} not in [{}, {c}]", c / 2);
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
