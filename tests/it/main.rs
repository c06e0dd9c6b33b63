//! The one integration-test binary (one link step instead of one per file).

// Tests may panic on what they set up themselves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod alerting;
mod catch_up_kills;
mod dashboards;
mod demo;
mod drain_props;
mod findings;
mod follow_model;
mod follow_signals;
mod hostile;
mod hostile_paths;
mod http_edge;
mod http_load;
mod http_tls;
mod kill_loop;
mod live;
mod lossy_link;
mod ops;
mod overlong;
mod packaging;
mod platform;
mod reasons;
mod redaction;
mod redis_cluster;
mod report;
mod schemathesis;
mod scratch_db;
mod serve;
mod serve_bounded;
mod serve_cluster;
mod serve_files;
mod serve_idle;
mod serve_platform;
mod serve_recovery;
mod serve_settled;
mod simulate;
mod state;
mod state_shared;
mod store;
mod store_faults;
mod summary_bounds;
mod support;
mod tidy;
mod verify;
