//! Limits at the HTTP edge: how long a request may take and how large a body may be.

use std::time::Duration;

/// Longest any request may take, body upload included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest accepted ingest body.
pub const MAX_BODY_BYTES: usize = 8 << 20;
