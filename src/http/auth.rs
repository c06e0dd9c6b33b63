//! Bearer tokens at the edge: one for `/metrics` (Prometheus's `authorization` scrape
//! config), one for the API (`/api/*` and the status page at `/`), each optional and
//! separate. `/healthz` and `/readyz` stay open for probes; ingest has its own token and the
//! drain its signature.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;

/// The tokens that guard `/metrics` and the API; `None` leaves that class open.
#[derive(Clone, Default)]
pub struct Access {
    pub metrics: Option<Arc<str>>,
    pub api: Option<Arc<str>>,
}

impl std::fmt::Debug for Access {
    // Never the tokens themselves.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("metrics", &self.metrics.as_ref().map(|_| "set"))
            .field("api", &self.api.as_ref().map(|_| "set"))
            .finish()
    }
}

/// Equal-length comparison that looks at every byte, so the time taken does not say how much
/// of a guessed token was right. (Two lines do not justify a crate.)
pub(super) fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether the request's `Authorization: Bearer …` is `want`.
pub(super) fn bearer_is(headers: &axum::http::HeaderMap, want: &str) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|got| same_secret(want.as_bytes(), got.as_bytes()))
}

/// Middleware: passes the request on when no token is set or the right one is presented;
/// otherwise 401 `invalid_token` with `WWW-Authenticate: Bearer`.
pub(super) async fn require(
    State(token): State<Option<Arc<str>>>,
    req: Request,
    next: Next,
) -> Response {
    match token {
        Some(want) if !bearer_is(req.headers(), &want) => (
            [(header::WWW_AUTHENTICATE, "Bearer")],
            ApiError::InvalidToken,
        )
            .into_response(),
        _ => next.run(req).await,
    }
}
