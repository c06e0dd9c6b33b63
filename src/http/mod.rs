//! HTTP: `fn router(state)` is separate from serving, so tests call it without a socket.
//! Handlers never touch correlation state: they send batches to the actor and read the
//! summary it publishes.
//!
//! `ingest.rs` takes lines in (NDJSON, the Vercel drain), `api.rs` answers queries and probes,
//! `reports.rs` serves post-flip reports and verdicts, `page.rs` the status page; `error.rs`
//! turns every refusal into a status and a JSON `code` (`extract.rs`: also the query strings
//! and path segments that do not decode); `limits.rs` bounds what a client may
//! cost; `listen.rs` serves the router on a socket within those limits, over TLS (`tls.rs`)
//! when configured.

mod api;
pub mod auth;
mod body;
pub mod error;
mod extract;
mod ingest;
pub mod limits;
pub mod listen;
mod openapi;
mod page;
mod reports;
pub mod tls;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use prometheus::Registry;
use tokio::sync::{mpsc, watch};

use crate::serve::{Lookup, Summary};
use crate::sources::batch::Batch;

pub use api::SUMMARY_SLOTS;
pub use error::{ApiError, ErrorBody};
pub use limits::{HttpConfig, HttpConfigError, MAX_BODY_BYTES, REQUEST_TIMEOUT, RawHttpConfig};
pub use openapi::{document as openapi_document, document_text as openapi_text};

#[derive(Debug, Clone)]
pub struct AppState {
    pub registry: Registry,
    pub batches: mpsc::Sender<Batch>,
    pub queries: mpsc::Sender<Lookup>,
    pub summary: watch::Receiver<Summary>,
    /// Bearer token for `POST /ingest/ndjson`; `None` leaves it closed.
    pub ingest_token: Option<String>,
    /// The Vercel drain: its secret and verification code; `None` leaves it closed.
    pub vercel: Option<VercelDrain>,
    /// The platform dependencies' states (`/readyz`); `None` without a platform configured.
    pub readiness: Option<watch::Receiver<crate::platform::Readiness>>,
    /// The store's state (`/readyz`); `None` without a store.
    pub store_health: Option<watch::Receiver<crate::serve::store_health::StoreState>>,
    /// The shared correlation state's health (`/readyz`); `None` without `serve --cluster`.
    pub cluster: Option<watch::Receiver<crate::serve::cluster::ClusterState>>,
    /// The replay of the store after a start (`/readyz`); `None` without a store. While it
    /// runs, the totals and ingest answer 503 `recovering`.
    pub recovery: Option<watch::Receiver<crate::serve::recovery::RecoveryState>>,
    /// Where post-flip reports are kept; `None` without a store (no reports then).
    pub store: Option<crate::store::Store>,
    /// Flips whose report is not due yet.
    pub pending_reports: Option<watch::Receiver<Vec<crate::flip::auto::PendingReport>>>,
    /// Filtered `/api/summary` queries running at once, at most; beyond it, 429.
    pub summary_slots: std::sync::Arc<tokio::sync::Semaphore>,
    /// Limits on requests (the connection limits are `listen`'s).
    pub http: HttpConfig,
    /// Tokens for `/metrics` and the API.
    pub access: auth::Access,
}

impl AppState {
    /// Whether the store is still being replayed after a start.
    pub fn recovering(&self) -> bool {
        self.recovery
            .as_ref()
            .is_some_and(|r| r.borrow().recovering)
    }
}

#[derive(Debug, Clone)]
pub struct VercelDrain {
    /// Signs each body: `x-vercel-signature` = hex HMAC-SHA1(secret, body).
    pub secret: String,
    /// Echoed in `x-vercel-verify` when Vercel checks the endpoint.
    pub verify_code: String,
}

pub fn router(state: AppState) -> Router {
    let limits = state.http.clone();
    // Ingest requests beyond the in-flight cap wait before their bodies are read, so memory
    // for bodies is bounded by the cap times the body limits.
    let ingest = Router::new()
        .route("/ingest/ndjson", post(ingest::ndjson))
        .route(
            "/ingest/vercel",
            get(ingest::vercel_probe).post(ingest::vercel),
        )
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            limits.max_ingest_in_flight,
        ));
    let metrics = Router::new()
        .route("/metrics", get(api::metrics))
        .route_layer(axum::middleware::from_fn_with_state(
            state.access.metrics.clone(),
            auth::require,
        ));
    let api = Router::new()
        .route("/", get(page::status_page))
        .route("/api/orgs", get(api::orgs))
        .route("/api/orgs/{org}/verification", get(reports::verification))
        .route("/api/reports", get(reports::reports))
        .route("/api/reports/{id}", get(reports::report))
        .route("/api/summary", get(api::summary))
        .route("/api/sessions/{id}", get(api::session))
        .route("/api/findings", get(api::findings))
        .route("/api/openapi.json", get(openapi::openapi_json))
        .route_layer(axum::middleware::from_fn_with_state(
            state.access.api.clone(),
            auth::require,
        ));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(api::readyz))
        .merge(metrics)
        .merge(api)
        .merge(ingest)
        .fallback(|| async { ApiError::NotFound })
        // A slow client or a stalled actor cannot hold a connection forever; ingest senders
        // retry what was not acknowledged.
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .with_state(state)
}
