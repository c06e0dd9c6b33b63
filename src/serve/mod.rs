//! `serve`'s core: one actor owns the live correlation state; HTTP handlers and sources talk
//! to it through bounded channels.
//!
//! - `actor` — the `select!` loop: batches in, platform updates, queries, a tick, shutdown.
//! - `ingest` — a batch's lines through dedupe, parse and the live correlator; the replay of
//!   stored lines.
//! - `recovery` — the store read in bounded pages while HTTP answers, and THE emitter of
//!   recovery's progress (`claimcheck_recovering`, `/readyz`'s `recovering`, its log lines).
//! - `telemetry` — THE emitter: each correlator change and platform event becomes metrics,
//!   summary, findings, alerts and one tracing line, in one place.
//! - `findings` — `FindingKind` and the finding log.
//! - `cluster` — a batch the shared correlation state refused, applied again with backoff;
//!   THE emitter of its health: `claimcheck_cluster_up`, call latency, `/readyz`, one log
//!   line per change.
//! - `durable` — commits with backoff (healing the store between tries), the flag book.
//! - `store_health` — THE emitter of the store's state: `claimcheck_store_up`, commit
//!   failures, `/readyz`, one log line per change; and the probe task.
//! - `view` — what queries answer.

mod actor;
pub mod cluster;
mod committer;
mod durable;
mod findings;
mod ingest;
pub mod recovery;
pub mod store_health;
mod telemetry;
mod view;

pub use actor::Actor;
pub use durable::PLATFORM_BOOK;
pub use findings::{FindingKind, FindingsPage, LiveFinding};
pub use view::{Lookup, SessionView, Summary, Witness};
