//! The correlation state shared by several sidecars, kept in Redis (standalone for one node,
//! Redis Cluster for many), so the dispatch one replica reads and the claim another reads
//! meet, and each outcome is counted once.
//!
//! The server does what must be atomic, in scripts (Lua, `EVALSHA`); the rules stay in Rust,
//! in `correlate`. Every key of a session lives under its bucket's hash tag (`keys.rs`), so a
//! script touches one slot. What is here so far:
//! - `keys.rs`: the key layout (256 buckets by a hash of the sessionId);
//! - `record.rs`: one event as stored — its identity as a hash field, so `HSETNX` is the exact
//!   re-delivery test, and its origin and name as the value;
//! - `config.rs`: the `[cluster]` table, raw and validated;
//! - `conn.rs`: one connection to standalone Redis or a Redis Cluster, opened afresh after a
//!   failed call;
//! - `memo.rs`: the answers the changing scripts remember, so a call whose answer was lost
//!   is sent again and answered as the first time, not applied twice;
//! - `events.rs` with `apply.lua`: a batch stored with one script call per bucket, each event
//!   told new or re-delivered by the server, the earliest origin kept, and the bucket's
//!   counters kept with it;
//! - `watermarks.rs` with `watermark.lua`: every replica's sources in one hash, the low
//!   watermark computed from it with the in-process rules;
//! - `leases.rs` with `lease.lua`: one sweep lease per bucket (taken, renewed, given up;
//!   expired when its holder stops renewing);
//! - `mark.rs`: a session's `Mark` (the live rules' memory of it) as stored, with the
//!   version the judge compares;
//! - `judge.rs` with `sweep.lua`, `load.lua` and `judge.lua`: the sessions with work to do
//!   found, loaded and judged with `correlate::live::rules`, each committed by a
//!   compare-and-set on its mark, so one replica wins and only the winner emits the change;
//! - `feed.rs` with `feed.lua` and `publish.lua`: each judgement's changes appended to its
//!   bucket's stream by the script that commits it, and the platform's findings published
//!   by the replica that made them, read by every replica into its own store;
//! - `inputs.rs` with `input.lua`: every replica's sources numbered once for all, so a stored
//!   origin reads back on any replica as the source it came from;
//! - `reports.rs`: post-flip reports made once for every replica — the flips, each
//!   replica's share of a report's evidence, and the report built from them;
//! - `state.rs`: [`SharedState`], the `CorrelationState` implementation on top.

pub mod config;
pub mod conn;
pub mod events;
pub mod feed;
pub mod inputs;
pub mod judge;
pub mod keys;
pub mod leases;
pub mod mark;
pub mod memo;
pub mod record;
pub mod reports;
pub mod state;
pub mod watermarks;

pub use config::{ClusterConfig, ClusterConfigError, RawClusterConfig};
pub use conn::{Conn, Redis, Timeouts};
pub use keys::{BUCKETS, Keys};
pub use state::{SharedConfig, SharedState, Wait};
