//! claimcheck proves that every dispatched agent session was claimed by the runtime it was
//! dispatched to, promptly and exactly once.
//!
//! ```text
//! sources ──chunks──▶ parse ──Event──▶ correlate ──Judgement──▶ report · sinks (metrics · alerts)
//! ```
//!
//! `parse` and `correlate` are pure: no I/O, no clock. See ARCHITECTURE.md.

pub mod backoff;
pub mod cli;
pub mod clock;
pub mod config;
pub mod correlate;
pub mod event;
pub mod flip;
pub mod html;
pub mod http;
pub mod newlines;
pub mod overlong;
pub mod parse;
pub mod pipeline;
pub mod platform;
pub mod redact;
pub mod replay;
pub mod report;
pub mod serve;
pub mod simulate;
pub mod sinks;
pub mod sources;
pub mod state;
pub mod store;
pub mod verify;
