//! Where the shared state keeps what: every key name, and the bucket a session or a daemon
//! falls in.
//!
//! A Redis Cluster runs a script only on keys of one slot, and a key's slot is the hash of its
//! `{hash tag}`. So keys are grouped in [`BUCKETS`] buckets, each under the tag
//! `{<prefix>:b<N>}`: a session's records, the bucket's deadline sets, its sweep lease and its
//! counters share one slot, and one script call per bucket applies every event of a batch that
//! falls in it. 256 buckets spread over the 16,384 slots keep every master busy (about 85
//! buckets each on three masters) while a batch of a few hundred events still needs at most a
//! few hundred calls, sent together on one multiplexed connection.

use crate::event::{Runner, SessionId};

/// How many buckets the keys are spread over. Part of the key layout: changing it moves
/// every session to another key, so replicas sharing a prefix must agree on it.
pub const BUCKETS: u16 = 256;

/// A session's bucket: a hash of its id that every replica computes the same way.
pub fn session_bucket(id: &SessionId) -> u16 {
    bucket_of(id.as_str().as_bytes())
}

/// The bucket of a daemon's recent heartbeats (events without a session are deduplicated per
/// runner and worker, as the in-process correlator does).
pub fn daemon_bucket(runner: Runner, worker: Option<&str>) -> u16 {
    let mut key = Vec::with_capacity(32);
    key.extend_from_slice(runner.as_str().as_bytes());
    key.push(b'\0');
    key.extend_from_slice(worker.unwrap_or_default().as_bytes());
    bucket_of(&key)
}

/// The bucket of a finding published beside the judgements (`feed::publish`): a hash of its
/// key, so findings spread over the buckets, and a finding keyed by a session (drift, missing
/// from the logs, a witness's note) goes to the session's bucket, after its judgements.
pub fn finding_bucket(key: &str) -> u16 {
    bucket_of(key.as_bytes())
}

fn bucket_of(bytes: &[u8]) -> u16 {
    (crc32fast::hash(bytes) % u32::from(BUCKETS)) as u16
}

/// A key prefix that cannot be used: it would break the hash tags.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("key prefix {0:?}: must be 1-64 characters without '{{', '}}' or whitespace")]
pub struct BadPrefix(pub String);

/// The key names under one prefix (one correlation state; tests use one prefix each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Result<Keys, BadPrefix> {
        let ok = (1..=64).contains(&prefix.len())
            && !prefix
                .chars()
                .any(|c| c == '{' || c == '}' || c.is_whitespace());
        if !ok {
            return Err(BadPrefix(prefix.to_owned()));
        }
        Ok(Keys {
            prefix: prefix.to_owned(),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The hash tag of bucket `b`: every key of the bucket starts with it.
    pub fn tag(&self, b: u16) -> String {
        format!("{{{}:b{b}}}", self.prefix)
    }

    /// A session's records: a hash from each event's identity to its origin and name.
    pub fn records(&self, b: u16, id: &SessionId) -> String {
        format!("{}:r:{}", self.tag(b), id.as_str())
    }

    /// A daemon's recent heartbeat times: a sorted set, the latest kept.
    pub fn heartbeats(&self, b: u16, runner: Runner, worker: Option<&str>) -> String {
        match worker {
            Some(w) => format!("{}:hb:{}:={w}", self.tag(b), runner.as_str()),
            None => format!("{}:hb:{}:-", self.tag(b), runner.as_str()),
        }
    }

    /// A session's records not yet taken in by the rules: a hash from each one's identity (as
    /// in [`Keys::records`]) to `receive time:position in its batch`.
    pub fn arrivals(&self, b: u16, id: &SessionId) -> String {
        format!("{}:a:{}", self.tag(b), id.as_str())
    }

    /// The bucket's sessions with arrivals (a set of session ids).
    pub fn arriving(&self, b: u16) -> String {
        format!("{}:as", self.tag(b))
    }

    /// The bucket's marks: a hash from session id to its encoded mark (`mark.rs`).
    pub fn marks(&self, b: u16) -> String {
        format!("{}:m", self.tag(b))
    }

    /// The bucket's sessions by their earliest key on the sidecar's clock (hold, orphan hold,
    /// deadline, expiry): a sorted set.
    pub fn due(&self, b: u16) -> String {
        format!("{}:due", self.tag(b))
    }

    /// The bucket's sessions by their earliest key on event time (settle, orphan settle),
    /// woken by the low watermark: a sorted set.
    pub fn settle(&self, b: u16) -> String {
        format!("{}:settle", self.tag(b))
    }

    /// The bucket's counters (a hash: distinct events, re-deliveries, sessions, pending,
    /// overdue).
    pub fn counts(&self, b: u16) -> String {
        format!("{}:n", self.tag(b))
    }

    /// The bucket's feed: a stream of its judgements' changes, every replica's (`feed.rs`).
    pub fn feed(&self, b: u16) -> String {
        format!("{}:f", self.tag(b))
    }

    /// The feed's version: counted up after each cycle that appended to the feed, so a
    /// reader reads the 256 buckets only when something was appended (a hint).
    pub fn feed_version(&self) -> String {
        format!("{{{}:fv}}", self.prefix)
    }

    /// The answers this bucket's scripts remember (a hash: a replica's memo field -> its
    /// last call's token and answer; `memo.rs`).
    pub fn memo(&self, b: u16) -> String {
        format!("{}:memo", self.tag(b))
    }

    /// The bucket's sweep lease: the instance holding it, expiring unless renewed.
    pub fn lease(&self, b: u16) -> String {
        format!("{}:lease", self.tag(b))
    }

    /// Every source's watermark (one hash, read by every replica).
    pub fn watermarks(&self) -> String {
        format!("{{{}:w}}", self.prefix)
    }

    /// Each bucket's work as last written (a hash: bucket -> `version|due|settle|arriving`,
    /// `index.lua`), read in one call so a cycle sweeps only the buckets with work to do.
    pub fn index(&self) -> String {
        format!("{{{}:x}}", self.prefix)
    }

    /// Every replica's sources numbered once for all (a hash: `instance/input` -> global id,
    /// and the counter `#next`), so an origin stored by one replica reads back on another.
    pub fn inputs(&self) -> String {
        format!("{{{}:i}}", self.prefix)
    }

    /// The names sources' lines are cited by (a hash: global id -> name), in the slot of
    /// [`Keys::inputs`].
    pub fn input_names(&self) -> String {
        format!("{{{}:i}}:n", self.prefix)
    }

    /// The flips every replica reports on (a hash: report id -> the flip as JSON), in the
    /// slot of the other report keys (`reports.rs`).
    pub fn flips(&self) -> String {
        format!("{{{}:rep}}", self.prefix)
    }

    /// Each replica's share of a report's evidence (a hash: instance -> share).
    pub fn report_shares(&self, id: &str) -> String {
        format!("{{{}:rep}}:s:{id}", self.prefix)
    }

    /// A report as built once for every replica (`created ms`, a newline, its JSON).
    pub fn report(&self, id: &str) -> String {
        format!("{{{}:rep}}:r:{id}", self.prefix)
    }

    /// A pattern matching every key under the prefix (`SCAN MATCH`), for cleaning up.
    pub fn pattern(&self) -> String {
        format!("{{{}:*", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_that_would_break_the_hash_tag_are_refused() {
        for bad in ["", "a{b", "a}b", "a b", &"x".repeat(65)] {
            assert_eq!(Keys::new(bad), Err(BadPrefix(bad.to_owned())));
        }
        assert!(Keys::new("claimcheck").is_ok());
    }

    #[test]
    fn a_sessions_keys_share_its_buckets_tag() {
        let k = Keys::new("p").unwrap();
        let id = SessionId::new("sess-{1}").unwrap();
        let b = session_bucket(&id);
        let tag = k.tag(b);
        // Redis hashes the first {…} of a key: the tag must come first, whatever the id holds.
        for key in [
            k.records(b, &id),
            k.counts(b),
            k.lease(b),
            k.arrivals(b, &id),
            k.arriving(b),
            k.marks(b),
            k.due(b),
            k.settle(b),
            k.feed(b),
            k.memo(b),
            k.heartbeats(b, Runner::Go, Some("w{x}")),
        ] {
            assert!(key.starts_with(&tag), "{key}");
        }
        assert!(
            k.records(b, &id)
                .starts_with(&k.pattern()[..k.pattern().len() - 1])
        );
    }

    #[test]
    fn sessions_spread_over_every_bucket() {
        let mut seen = vec![0u32; usize::from(BUCKETS)];
        for i in 0..20_000 {
            let id = SessionId::new(&format!("sess-{i}")).unwrap();
            seen[usize::from(session_bucket(&id))] += 1;
        }
        // 78 per bucket on average: none empty, none more than twice its share.
        assert!(seen.iter().all(|&n| n > 0 && n < 160), "{seen:?}");
    }
}
